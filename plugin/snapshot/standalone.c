/* edgepull-snapshotd: the snapshot service on its own, for tests and for trying it with
 * containerd before edgepulld serves it (built only with EDGEPULL_TESTS).
 *
 *   edgepull-snapshotd --root /var/lib/edgepull/snapshotter --socket /run/edgepull/snap.sock
 *                      [--layers-from http://127.0.0.1:5055]
 *
 * With --layers-from, the remote path is on: Prepares with layer labels fetch the layer from that
 * one registry (standalone_src.c) and unpack it while it streams in.
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
#include "plugin/snapshot/remote.h"
#include "plugin/snapshot/service.h"
#include "plugin/snapshot/standalone_src.h"

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
  const char *root = NULL, *sock = NULL, *layers = NULL;
  static const struct option longopts[] = {{"root", required_argument, NULL, 'r'},
                                           {"socket", required_argument, NULL, 's'},
                                           {"layers-from", required_argument, NULL, 'l'},
                                           {NULL, 0, NULL, 0}};
  for (int c; (c = getopt_long(argc, argv, "r:s:l:", longopts, NULL)) != -1;) {
    if (c == 'r')
      root = optarg;
    else if (c == 's')
      sock = optarg;
    else if (c == 'l')
      layers = optarg;
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
  http_src *src = NULL;
  snap_remote *rm = NULL;
  struct snap_remote_deps deps;
  if (layers != NULL && (http_src_new(layers, &deps, &src, &err) < 0 ||
                         snap_remote_new(&deps, NULL, &rm, &err) < 0)) {
    ep_log_err("edgepull-snapshotd: %s", err.msg);
    http_src_free(src);
    return 1;
  }
  int fd = bind_unix(sock, &err);
  snapshot_service *svc = NULL;
  if (fd >= 0) {
    struct snapshot_service_opts o = {.root = root,
                                      .listen_fd = fd,
                                      .remote = rm != NULL ? snap_remote_prepare : NULL,
                                      .remote_ud = rm};
    if (snapshot_service_start(&o, &svc, &err) < 0)
      svc = NULL;
  }
  if (svc == NULL) {
    ep_log_err("edgepull-snapshotd: %s", err.msg);
    if (fd >= 0)
      close(fd);
    snap_remote_free(rm);
    http_src_free(src);
    return 1;
  }
  ep_log_info("edgepull-snapshotd: serving %s on %s", root, sock);
  int sig = 0;
  sigwait(&set, &sig);
  snapshot_service_stop(svc);
  close(fd);
  unlink(sock);
  if (rm != NULL) {
    struct snap_remote_stats st;
    snap_remote_stats_get(rm, &st);
    ep_log_info("edgepull-snapshotd: remote unpacked %llu, existed %llu, joined %llu, "
                "unknown %llu, fallbacks %llu, compressed bytes %llu",
                (unsigned long long)st.unpacked, (unsigned long long)st.existed,
                (unsigned long long)st.joined, (unsigned long long)st.unknown,
                (unsigned long long)st.fallbacks, (unsigned long long)st.compressed);
  }
  snap_remote_free(rm);
  http_src_free(src);
  return 0;
}
