/* The endpoint's self-probe for the systemd watchdog. A wedged server (its
 * polling thread stuck, no thread left to answer) still holds its listening
 * socket, so only asking it proves it serves. The probe is a plain socket
 * rather than libcurl: one small request every few seconds, no handle, no
 * DNS, and nothing shared with the fetch engine whose health is checked
 * separately. The whole exchange is bounded by one deadline. */
#include "plugin/http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"

#define PROBE_REQUEST "GET /v2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"

/* The address to connect to for what listen_fd is bound to. */
static int probe_target(int listen_fd, struct sockaddr_storage *ss, socklen_t *sl, ep_err *err) {
  *sl = sizeof *ss;
  if (getsockname(listen_fd, (struct sockaddr *)ss, sl) < 0)
    return ep_syserror(err, EP_EIO, "getsockname");
  if (ss->ss_family == AF_INET) {
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    if (v4->sin_addr.s_addr == htonl(INADDR_ANY))
      v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } else if (ss->ss_family == AF_INET6) {
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr))
      v6->sin6_addr = in6addr_loopback;
  } else if (ss->ss_family != AF_UNIX) {
    return ep_error(err, EP_EUNSUPPORTED, "address family %d", ss->ss_family);
  }
  return 0;
}

/* Waits for events on fd until deadline (monotonic ms). */
static int probe_wait(int fd, short events, int64_t deadline, const char *what, ep_err *err) {
  for (;;) {
    int64_t left = deadline - ep_mono_ms();
    if (left <= 0)
      return ep_error(err, EP_EUNREACH, "no answer within the deadline while %s", what);
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, (int)left);
    if (n > 0)
      return 0;
    if (n < 0 && errno != EINTR)
      return ep_syserror(err, EP_EIO, "poll while %s", what);
  }
}

static int probe_connect(int fd, const struct sockaddr_storage *ss, socklen_t sl, int64_t deadline,
                         ep_err *err) {
  if (connect(fd, (const struct sockaddr *)ss, sl) == 0)
    return 0;
  if (errno != EINPROGRESS && errno != EAGAIN)
    return ep_syserror(err, EP_EUNREACH, "connecting");
  int r = probe_wait(fd, POLLOUT, deadline, "connecting", err);
  if (r < 0)
    return r;
  int soerr = 0;
  socklen_t len = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
    errno = soerr;
    return ep_syserror(err, EP_EUNREACH, "connecting");
  }
  return 0;
}

/* Sends the request and reads the status line. */
static int probe_exchange(int fd, int64_t deadline, ep_err *err) {
  size_t sent = 0, want = sizeof PROBE_REQUEST - 1;
  while (sent < want) {
    ssize_t n = send(fd, PROBE_REQUEST + sent, want - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR)
      return ep_syserror(err, EP_EIO, "sending the request");
    if (n < 0 && probe_wait(fd, POLLOUT, deadline, "sending", err) < 0)
      return -err->code;
    if (n > 0)
      sent += (size_t)n;
  }
  char buf[64];
  size_t got = 0;
  while (got < 12) { /* "HTTP/1.1 200" */
    ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
    if (n == 0)
      return ep_error(err, EP_EUPSTREAM, "connection closed before an answer");
    if (n < 0 && errno != EAGAIN && errno != EINTR)
      return ep_syserror(err, EP_EIO, "reading the answer");
    if (n < 0 && probe_wait(fd, POLLIN, deadline, "waiting for the answer", err) < 0)
      return -err->code;
    if (n > 0)
      got += (size_t)n;
  }
  buf[got] = '\0';
  if (strncmp(buf, "HTTP/1.", 7) != 0 || strncmp(buf + 8, " 200", 4) != 0)
    return ep_error(err, EP_EUPSTREAM, "GET /v2/ answered '%.12s'", buf);
  return 0;
}

int http_probe(int listen_fd, int timeout_ms, ep_err *err) {
  struct sockaddr_storage ss;
  socklen_t sl;
  int r = probe_target(listen_fd, &ss, &sl, err);
  if (r < 0)
    return r;
  ep_cleanup_close int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return ep_syserror(err, EP_EIO, "socket");
  int64_t deadline = ep_mono_ms() + timeout_ms;
  if ((r = probe_connect(fd, &ss, sl, deadline, err)) < 0)
    return r;
  return probe_exchange(fd, deadline, err);
}
