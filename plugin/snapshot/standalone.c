/* edgepull-snapshotd: the snapshot service on its own, for tests and for trying it with
 * containerd before edgepulld serves it (built only with EDGEPULL_TESTS).
 *
 *   edgepull-snapshotd --root /var/lib/edgepull/snapshotter --socket /run/edgepull/snap.sock
 *                      [--layers-from http://127.0.0.1:5055]
 *
 * With --layers-from, the remote path is on: Prepares with layer labels fetch the layer from that
 * one registry (standalone_src.c) and unpack it while it streams in.
 *
 * Binds the unix socket with mode 0600 (listen_unix: umask around bind, no moment it is wider),
 * serves until SIGINT or SIGTERM, then stops and removes the socket. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "plugin/http/listen.h"
#include "plugin/snapshot/remote.h"
#include "plugin/snapshot/service.h"
#include "plugin/snapshot/standalone_src.h"

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
  int fd = -1;
  snapshot_service *svc = NULL;
  if (listen_unix(sock, &fd, &err) == 0) {
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
