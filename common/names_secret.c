/* The one secret-file reader (rules in names.h). Why its own file: it is the
 * only part of names that touches the file system and the log.
 *
 * The file is read through one fd (open, fstat, read), so what is checked is
 * what is read; the read stops one byte past NAMES_SECRET_MAX, so a huge
 * file or a device costs nothing. The stack buffer is wiped on every path. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/escape.h"
#include "common/log.h"
#include "common/names.h"

struct secret_buf {
  char b[NAMES_SECRET_MAX + 1];
  size_t len;
};

static void secret_wipe(struct secret_buf *s) {
  explicit_bzero(s, sizeof *s);
}

/* Reads at most sizeof s->b bytes of fd. */
static int read_bounded(int fd, struct secret_buf *s) {
  while (s->len < sizeof s->b) {
    ssize_t k = read(fd, s->b + s->len, sizeof s->b - s->len);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      return -1;
    if (k == 0)
      break;
    s->len += (size_t)k;
  }
  return 0;
}

static int secret_check(struct secret_buf *s, const char *q, bool first_line, size_t outsz,
                        ep_err *err) {
  if (s->len > NAMES_SECRET_MAX)
    return ep_error(err, EP_ETOOBIG, "secret file \"%s\" is larger than %d bytes", q,
                    NAMES_SECRET_MAX);
  if (memchr(s->b, '\0', s->len) != NULL)
    return ep_error(err, EP_EINVAL, "secret file \"%s\" holds control characters (a NUL byte)", q);
  const char *nl = first_line ? memchr(s->b, '\n', s->len) : NULL;
  if (nl != NULL)
    s->len = (size_t)(nl - s->b) + 1; /* the rest is not the secret */
  if (s->len > 0 && s->b[s->len - 1] == '\n')
    s->len--;
  if (s->len > 0 && s->b[s->len - 1] == '\r')
    s->len--;
  s->b[s->len] = '\0';
  if (s->len == 0)
    return ep_error(err, EP_EINVAL, "secret file \"%s\" is empty", q);
  for (size_t i = 0; i < s->len; i++)
    if ((unsigned char)s->b[i] < 0x20 || s->b[i] == 0x7f)
      return ep_error(err, EP_EINVAL,
                      "secret file \"%s\" holds control characters or more than one line", q);
  if (s->len >= outsz)
    return ep_error(err, EP_ETOOBIG, "secret file \"%s\": secret longer than %zu bytes", q,
                    outsz > 0 ? outsz - 1 : 0);
  return 0;
}

static int secret_read(const char *path, bool first_line, char *out, size_t outsz, ep_err *err) {
  char q[EP_QUOTE_BUF];
  ep_quote(q, sizeof q, path);
  if (path == NULL || path[0] == '\0' || out == NULL || outsz == 0)
    return ep_error(err, EP_EINVAL, "no secret file");
  ep_cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return ep_syserror(err, errno == ENOENT ? EP_ENOTFOUND : EP_EIO, "secret file \"%s\"", q);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return ep_syserror(err, EP_EIO, "secret file \"%s\"", q);
  if (!S_ISREG(st.st_mode))
    return ep_error(err, EP_EINVAL, "secret file \"%s\" is not a regular file", q);
  if (st.st_mode & S_IROTH)
    ep_log_warn("secret file %s is world-readable; chmod o-r it", q);
  struct secret_buf s = {.len = 0};
  int r = 0;
  if (read_bounded(fd, &s) < 0)
    r = ep_syserror(err, EP_EIO, "secret file \"%s\"", q);
  else if ((r = secret_check(&s, q, first_line, outsz, err)) == 0)
    memcpy(out, s.b, s.len + 1);
  secret_wipe(&s);
  return r;
}

int names_secret_read(const char *path, char *out, size_t outsz, ep_err *err) {
  return secret_read(path, false, out, outsz, err);
}

int names_secret_read_first_line(const char *path, char *out, size_t outsz, ep_err *err) {
  return secret_read(path, true, out, outsz, err);
}
