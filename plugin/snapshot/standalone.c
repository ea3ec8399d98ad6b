/* edgepull-snapshotd: the snapshot service on its own, for tests and for trying it with
 * containerd before edgepulld serves it (built only with EDGEPULL_TESTS).
 *
 *   edgepull-snapshotd --root /var/lib/edgepull/snapshotter --socket /run/edgepull/snap.sock
 *
 * Binds the unix socket with mode 0600 (umask around bind, so there is no moment it is wider),
 * serves until SIGINT or SIGTERM, then stops and removes the socket. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "plugin/snapshot/service.h"

static int bind_unix(const char *path, ep_err *err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return ep_error(err, EP_EINVAL, "socket path too long: %s", path);
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return ep_syserror(err, EP_EIO, "socket");
  if (unlink(path) < 0 && errno != ENOENT) {
    close(fd);
    return ep_syserror(err, EP_EIO, "removing stale socket %s", path);
  }
  mode_t old = umask(0177);
  int r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  umask(old);
  if (r < 0 || listen(fd, 64) < 0) {
    r = ep_syserror(err, EP_EIO, "binding %s", path);
    close(fd);
    return r;
  }
  return fd;
}

int main(int argc, char **argv) {
  const char *root = NULL, *sock = NULL;
  static const struct option longopts[] = {{"root", required_argument, NULL, 'r'},
                                           {"socket", required_argument, NULL, 's'},
                                           {NULL, 0, NULL, 0}};
  for (int c; (c = getopt_long(argc, argv, "r:s:", longopts, NULL)) != -1;) {
    if (c == 'r')
      root = optarg;
    else if (c == 's')
      sock = optarg;
    else
      return 2;
  }
  if (root == NULL || sock == NULL) {
    fprintf(stderr, "usage: %s --root DIR --socket PATH\n", argv[0]);
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts: they inherit it */
  signal(SIGPIPE, SIG_IGN);

  ep_err err = {0};
  int fd = bind_unix(sock, &err);
  snapshot_service *svc = NULL;
  if (fd >= 0) {
    struct snapshot_service_opts o = {.root = root, .listen_fd = fd};
    if (snapshot_service_start(&o, &svc, &err) < 0)
      svc = NULL;
  }
  if (svc == NULL) {
    ep_log_err("edgepull-snapshotd: %s", err.msg);
    if (fd >= 0)
      close(fd);
    return 1;
  }
  ep_log_info("edgepull-snapshotd: serving %s on %s", root, sock);
  int sig = 0;
  sigwait(&set, &sig);
  snapshot_service_stop(svc);
  close(fd);
  unlink(sock);
  return 0;
}
