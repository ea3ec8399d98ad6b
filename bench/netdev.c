/* Interface byte counters from /proc/<pid>/net/dev.
 *
 * /proc/<pid>/net/dev lists the interfaces of the network namespace the
 * process lives in, so one sampler outside the namespaces can watch every
 * emulated node of the locality benchmark by pid. The text is treated as
 * untrusted: it is read into a bounded buffer, every line is checked (a name
 * of at most 15 chars followed by ':' and at least 16 decimal counters, the
 * first being rx bytes and the ninth tx bytes), numbers are overflow-checked
 * and a last line without its newline counts as truncated, since a cut
 * number would otherwise read as a smaller one. */
#include "bench/netdev.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"

#define NETDEV_FIELDS 16
#define NETDEV_TX_FIELD 8

struct netdev_line {
  const char *name;
  size_t name_len;
  uint64_t rx;
  uint64_t tx;
};

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int netdev_iface_valid(const char *name) {
  if (name == NULL)
    return 0;
  size_t n = 0;
  for (; name[n] != '\0'; n++) {
    if (n >= NETDEV_IFACE_MAX || name[n] == '/' || name[n] == ':' || is_space(name[n]))
      return 0;
  }
  return n > 0;
}

/* Parses the decimal number at *pp, advancing *pp past it. */
static int parse_u64(const char **pp, uint64_t *out) {
  const char *p = *pp;
  uint64_t v = 0;
  if (!is_digit(*p))
    return -EINVAL;
  for (; is_digit(*p); p++) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -EINVAL;
    v = v * 10 + d;
  }
  *pp = p;
  *out = v;
  return 0;
}

/* Parses the interface line [p, end); *end is its '\n'. */
static int parse_line(const char *p, const char *end, struct netdev_line *out) {
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  out->name = p;
  while (p < end && *p != ':' && !is_space(*p))
    p++;
  out->name_len = (size_t)(p - out->name);
  if (p == end || *p != ':' || out->name_len == 0 || out->name_len > NETDEV_IFACE_MAX)
    return -EINVAL;
  p++;
  unsigned fields = 0;
  for (;;) {
    while (p < end && (*p == ' ' || *p == '\t'))
      p++;
    if (p == end)
      break;
    uint64_t v;
    /* The '\n' at end stops the digits, so parse_u64 never passes it. */
    if (parse_u64(&p, &v) < 0 || (p < end && *p != ' ' && *p != '\t'))
      return -EINVAL;
    if (fields == 0)
      out->rx = v;
    else if (fields == NETDEV_TX_FIELD)
      out->tx = v;
    fields++;
  }
  return fields >= NETDEV_FIELDS ? 0 : -EINVAL;
}

int netdev_parse(const char *text, const char *iface, uint64_t *rx_bytes, uint64_t *tx_bytes) {
  if (text == NULL || !netdev_iface_valid(iface))
    return -EINVAL;
  const char *p = text;
  for (int i = 0; i < 2; i++) {
    p = strchr(p, '\n');
    if (p == NULL)
      return -EINVAL;
    p++;
  }
  size_t iface_len = strlen(iface);
  bool found = false;
  uint64_t rx = 0, tx = 0;
  while (*p != '\0') {
    const char *end = strchr(p, '\n');
    if (end == NULL)
      return -EINVAL;
    struct netdev_line line = {0};
    int rc = parse_line(p, end, &line);
    if (rc < 0)
      return rc;
    if (line.name_len == iface_len && memcmp(line.name, iface, iface_len) == 0) {
      if (found)
        return -EINVAL;
      found = true;
      rx = line.rx;
      tx = line.tx;
    }
    p = end + 1;
  }
  if (!found)
    return -ENOENT;
  if (rx_bytes != NULL)
    *rx_bytes = rx;
  if (tx_bytes != NULL)
    *tx_bytes = tx;
  return 0;
}

/* Reads all of fd into buf (room for max + 1 bytes): -EFBIG past max. */
static int read_bounded(int fd, char *buf, size_t max, size_t *len) {
  size_t n = 0;
  while (n <= max) {
    ssize_t r = read(fd, buf + n, max + 1 - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      break;
    n += (size_t)r;
  }
  if (n > max)
    return -EFBIG;
  *len = n;
  return 0;
}

int netdev_read(int pid, const char *iface, uint64_t *rx_bytes, uint64_t *tx_bytes) {
  if (pid <= 0 || !netdev_iface_valid(iface))
    return -EINVAL;
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/net/dev", pid);
  ep_cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  ep_cleanup_free char *buf = malloc(NETDEV_READ_MAX + 2);
  if (buf == NULL)
    return -ENOMEM;
  size_t len = 0;
  int rc = read_bounded(fd, buf, NETDEV_READ_MAX, &len);
  if (rc < 0)
    return rc;
  if (memchr(buf, '\0', len) != NULL)
    return -EINVAL;
  buf[len] = '\0';
  return netdev_parse(buf, iface, rx_bytes, tx_bytes);
}

/* Parses a positive decimal int of [p, end). */
static int parse_pid(const char *p, const char *end, int *out) {
  uint64_t v = 0;
  if (p == end)
    return -EINVAL;
  for (; p < end; p++) {
    if (!is_digit(*p))
      return -EINVAL;
    v = v * 10 + (uint64_t)(*p - '0');
    if (v > INT32_MAX)
      return -EINVAL;
  }
  if (v == 0)
    return -EINVAL;
  *out = (int)v;
  return 0;
}

static bool name_char(char c) {
  return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '.' ||
         c == '-';
}

int netdev_spec_parse(const char *arg, struct netdev_spec *out) {
  if (arg == NULL || out == NULL)
    return -EINVAL;
  struct netdev_spec s = {0};
  const char *eq = strchr(arg, '=');
  if (eq == NULL || eq == arg || eq - arg > NETDEV_NAME_MAX)
    return -EINVAL;
  for (const char *c = arg; c < eq; c++)
    if (!name_char(*c))
      return -EINVAL;
  memcpy(s.name, arg, (size_t)(eq - arg));

  const char *pid = eq + 1;
  const char *c1 = strchr(pid, ':');
  if (c1 == NULL || parse_pid(pid, c1, &s.pid) < 0)
    return -EINVAL;

  const char *iface = c1 + 1;
  const char *c2 = strchr(iface, ':');
  if (c2 == NULL || c2 - iface > NETDEV_IFACE_MAX)
    return -EINVAL;
  memcpy(s.iface, iface, (size_t)(c2 - iface));
  if (!netdev_iface_valid(s.iface))
    return -EINVAL;

  if (strcmp(c2 + 1, "rx") == 0)
    s.dir = NETDEV_RX;
  else if (strcmp(c2 + 1, "tx") == 0)
    s.dir = NETDEV_TX;
  else
    return -EINVAL;
  *out = s;
  return 0;
}
