/* Where edgepulld listens: an ADDR:PORT from the configuration, or the
 * sockets systemd passed by name. The address grammar lives in
 * common/names.h (IP literals only here, port 0 lets the kernel pick), so
 * the daemon, the coordinator and edgepullctl read host:port alike; this
 * file only turns it into a sockaddr and a listening socket. */
#include "plugin/http/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/names.h"
#include "common/sd_proto.h"

int listen_parse(const char *spec, struct sockaddr_storage *ss, socklen_t *len, ep_err *err) {
  struct names_hostport hp;
  memset(ss, 0, sizeof *ss);
  if (spec == NULL)
    return ep_error(err, EP_EINVAL, "listen address missing");
  int r = names_hostport_parse(spec, NAMES_IP_ONLY | NAMES_PORT_ZERO, &hp, err);
  if (r < 0) {
    ep_wrap(err, "listen address");
    return r;
  }
  struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
  if (!hp.ipv6 && inet_pton(AF_INET, hp.host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(hp.port);
    *len = sizeof *v4;
  } else if (hp.ipv6 && inet_pton(AF_INET6, hp.host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(hp.port);
    *len = sizeof *v6;
  } else {
    return ep_error(err, EP_EINVAL, "listen address: not an IP address");
  }
  return 0;
}

/* The backlog is SOMAXCONN (the kernel caps it at net.core.somaxconn): a
 * burst of connections waits in it instead of having its SYNs dropped and
 * retried seconds later. */
int listen_open(const char *spec, int *fd_out, ep_err *err) {
  struct sockaddr_storage ss;
  socklen_t len = 0;
  int r = listen_parse(spec, &ss, &len, err);
  if (r < 0)
    return r;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return ep_syserror(err, EP_EIO, "socket for %s", spec);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, SOMAXCONN) < 0) {
    r = ep_syserror(err, EP_EIO, "listen on %s", spec);
    close(fd);
    return r;
  }
  *fd_out = fd;
  return 0;
}

int listen_from_systemd(int *local_fd, int *peer_fd, int *snap_fd, int *metrics_fd, ep_err *err) {
  *local_fd = *peer_fd = *snap_fd = *metrics_fd = -1;
  char **names = NULL;
  int n = sdp_listen_fds_with_names(&names);
  if (n < 0)
    return ep_error(err, EP_EINVAL, "systemd socket activation: %s", strerror(-n));
  for (int i = 0; i < n; i++) {
    int fd = SDP_LISTEN_FDS_START + i;
    const char *name = names != NULL ? names[i] : "unknown";
    if (strcmp(name, "peer") == 0 && *peer_fd < 0)
      *peer_fd = fd;
    else if (strcmp(name, "snapshotter") == 0 && *snap_fd < 0)
      *snap_fd = fd;
    else if (strcmp(name, "metrics") == 0 && *metrics_fd < 0)
      *metrics_fd = fd;
    else if (*local_fd < 0 && (strcmp(name, "local") == 0 || strcmp(name, "unknown") == 0 ||
                               strcmp(name, "edgepulld.socket") == 0))
      *local_fd = fd;
    else
      close(fd);
  }
  if (names != NULL) {
    for (int i = 0; i < n; i++)
      free(names[i]);
    free(names);
  }
  return n;
}

/* Only a stale socket is removed: a regular file or directory at path is an error, never deleted.
 */
static int unlink_stale_socket(const char *path, ep_err *err) {
  struct stat st;
  if (lstat(path, &st) < 0)
    return errno == ENOENT ? 0 : ep_syserror(err, EP_EIO, "stat %s", path);
  if (!S_ISSOCK(st.st_mode))
    return ep_error(err, EP_EINVAL, "%s exists and is not a socket", path);
  if (unlink(path) < 0)
    return ep_syserror(err, EP_EIO, "removing stale socket %s", path);
  return 0;
}

int listen_unix(const char *path, int *fd_out, ep_err *err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (path[0] != '/' || strlen(path) >= sizeof sa.sun_path)
    return ep_error(err, EP_EINVAL, "socket path '%s' is not absolute or too long", path);
  strcpy(sa.sun_path, path);
  int r = unlink_stale_socket(path, err);
  if (r < 0)
    return r;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return ep_syserror(err, EP_EIO, "socket");
  mode_t old = umask(0177); /* 0600 from the start: never a moment it is wider */
  r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  umask(old);
  if (r < 0 || listen(fd, 128) < 0) {
    r = ep_syserror(err, EP_EIO, "listen on %s", path);
    close(fd);
    return r;
  }
  *fd_out = fd;
  return 0;
}
