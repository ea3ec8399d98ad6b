/* systemd's service protocol without libsystemd: see sd_proto.h for why. */
#include "common/sd_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A decimal number in [1, max] that is the whole string, else -EINVAL. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
  if (s == NULL || *s < '0' || *s > '9')
    return -EINVAL;
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v == 0 || v > max)
    return -EINVAL;
  *out = v;
  return 0;
}

int sdp_notify(const char *state) {
  if (state == NULL)
    return -EINVAL;
  const char *path = getenv("NOTIFY_SOCKET");
  if (path == NULL)
    return 0;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t len = strlen(path);
  if ((path[0] != '/' && path[0] != '@') || len < 2 || len >= sizeof sa.sun_path)
    return -EINVAL;
  memcpy(sa.sun_path, path, len);
  if (path[0] == '@')
    sa.sun_path[0] = '\0'; /* an abstract socket: no trailing NUL counts */
  else
    len++;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
  int r = n < 0 ? -errno : 1;
  close(fd);
  return r;
}

int sdp_notifyf(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof buf)
    return -ENOMEM;
  return sdp_notify(buf);
}

/* WATCHDOG_PID or LISTEN_PID: 1 unset or us, 0 another process, -EINVAL. */
static int pid_is_us(const char *var, int unset_ok) {
  const char *s = getenv(var);
  if (s == NULL)
    return unset_ok;
  uint64_t pid = 0;
  if (parse_u64(s, INT_MAX, &pid) < 0)
    return -EINVAL;
  return (pid_t)pid == getpid();
}

int sdp_watchdog_enabled(uint64_t *usec) {
  const char *s = getenv("WATCHDOG_USEC");
  if (s == NULL)
    return 0;
  uint64_t v = 0;
  if (parse_u64(s, UINT64_MAX - 1, &v) < 0)
    return -EINVAL;
  int r = pid_is_us("WATCHDOG_PID", 1);
  if (r <= 0)
    return r;
  *usec = v;
  return 1;
}

/* LISTEN_FDNAMES split at ':' into exactly n names, as libsystemd wants
 * them ("unknown" for every socket when unset). */
static int split_names(const char *s, int n, char ***names) {
  char **v = calloc((size_t)n + 1, sizeof *v);
  if (v == NULL)
    return -ENOMEM;
  int i = 0, r = 0;
  for (; i < n && r == 0; i++) {
    const char *end = s != NULL ? strchrnul(s, ':') : NULL;
    v[i] = s == NULL ? strdup("unknown") : strndup(s, (size_t)(end - s));
    if (v[i] == NULL)
      r = -ENOMEM;
    else if (s != NULL && *end == '\0' && i + 1 < n)
      r = -EINVAL; /* fewer names than sockets */
    else if (s != NULL)
      s = *end == ':' ? end + 1 : end;
  }
  if (r == 0 && s != NULL && *s != '\0')
    r = -EINVAL; /* more names than sockets */
  if (r < 0) {
    for (int k = 0; k < i; k++)
      free(v[k]);
    free(v);
    return r;
  }
  *names = v;
  return 0;
}

static int listen_fds(char ***names) {
  int r = pid_is_us("LISTEN_PID", 0);
  if (r <= 0)
    return r;
  uint64_t n = 0;
  const char *s = getenv("LISTEN_FDS");
  if (s == NULL || strcmp(s, "0") == 0)
    return 0;
  if (parse_u64(s, INT_MAX - SDP_LISTEN_FDS_START, &n) < 0)
    return -EINVAL;
  for (int fd = SDP_LISTEN_FDS_START; fd < SDP_LISTEN_FDS_START + (int)n; fd++) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
      return -errno;
  }
  r = split_names(getenv("LISTEN_FDNAMES"), (int)n, names);
  return r < 0 ? r : (int)n;
}

int sdp_listen_fds_with_names(char ***names) {
  *names = NULL;
  int r = listen_fds(names);
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  return r;
}
