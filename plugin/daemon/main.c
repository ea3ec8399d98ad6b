/* edgepulld: wiring only. Configuration, the daemon context, the listening
 * socket (ours or systemd's), the HTTP server, then wait for a signal. The
 * main thread handles signals synchronously with sigwait(); every other
 * thread starts with them blocked. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <malloc.h>
#include <mosquitto.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/names.h"
#include "common/sd_proto.h"
#include "plugin/daemon/daemon.h"
#include "plugin/http/listen.h"

/* The local socket and, when configured or passed by systemd, the peer
 * and metrics ones (-1 when off); *snap: systemd's snapshotter socket or -1. */
static int open_sockets(const struct edgepulld_config *cfg, int *fd, int *peer, int *snap, int *mfd,
                        ep_err *err) {
  int n = listen_from_systemd(fd, peer, snap, mfd, err);
  if (n < 0)
    return n;
  if (*peer < 0 && cfg->peer_listen[0] != '\0' && listen_open(cfg->peer_listen, peer, err) < 0)
    return ep_wrap(err, "peer-listen");
  /* config_validate asks peer TLS of --peer-listen; a socket systemd
   * passes (edgepulld-peer.socket) must meet the same rule. */
  if (*peer >= 0 && cfg->peer_cert[0] == '\0' && !cfg->peer_insecure)
    return ep_error(err, EP_EINVAL,
                    "systemd passed a peer socket, which needs peer TLS: set peer-ca, peer-cert "
                    "and peer-key (edgepullctl ca init, edgepullctl ca issue %s), or "
                    "peer-insecure for plain HTTP",
                    cfg->node_id);
  if (*mfd < 0 && cfg->metrics_listen[0] != '\0' && listen_open(cfg->metrics_listen, mfd, err) < 0)
    return ep_wrap(err, "metrics-listen");
  if (*fd >= 0) {
    ep_log_info("using the socket passed by systemd");
    return 0;
  }
  return listen_open(cfg->listen, fd, err);
}

/* The address actually served, which differs from --listen under socket
 * activation. */
static void local_address(int fd, char *buf, size_t len) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  snprintf(buf, len, "fd %d", fd);
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
    return;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    port = ntohs(v4->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    port = ntohs(v6->sin6_port);
  } else {
    return;
  }
  names_hostport_format(buf, len, host, port, NULL);
}

/* containerd's snapshotter: systemd's "snapshotter" socket (sfd), else --snapshotter-socket
 * bound here (and removed at exit), else off. */
static int serve_snapshots(struct edgepulld *d, int sfd, ep_err *err) {
  const char *path = d->cfg.snapshotter_socket;
  if (sfd >= 0) {
    ep_log_info("snapshotter on the socket passed by systemd");
    return edgepulld_serve_snapshots(d, sfd, NULL, err);
  }
  if (path[0] == '\0')
    return 0;
  if (listen_unix(path, &sfd, err) < 0)
    return ep_wrap(err, "snapshotter-socket");
  ep_log_info("snapshotter on %s", path);
  return edgepulld_serve_snapshots(d, sfd, path, err);
}

static void wait_for_stop(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0)
      continue;
    if (sig == SIGHUP) {
      ep_log_info("SIGHUP: configuration reload is not supported; restart to apply changes");
      continue;
    }
    ep_log_info("received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    return;
  }
}

static int run(struct edgepulld *d) {
  ep_err e = {0};
  if (edgepulld_open(d, NULL, &e) < 0) {
    ep_log_err("%s", e.msg);
    return 1;
  }
  int fd = -1, pfd = -1, sfd = -1, mfd = -1;
  if (open_sockets(&d->cfg, &fd, &pfd, &sfd, &mfd, &e) < 0) {
    if (pfd >= 0)
      close(pfd);
    if (sfd >= 0)
      close(sfd);
    if (mfd >= 0)
      close(mfd);
    ep_log_err("%s", e.msg);
    return 1;
  }
  char where[160], pwhere[160], mwhere[160];
  local_address(fd, where, sizeof where);
  if (pfd >= 0)
    local_address(pfd, pwhere, sizeof pwhere);
  if (mfd >= 0)
    local_address(mfd, mwhere, sizeof mwhere);
  if (edgepulld_serve(d, fd, SERVER_LOCAL, &e) < 0 ||
      (pfd >= 0 && edgepulld_serve(d, ep_steal_fd(pfd), SERVER_PEER, &e) < 0) ||
      (mfd >= 0 && edgepulld_serve(d, ep_steal_fd(mfd), SERVER_METRICS, &e) < 0) ||
      serve_snapshots(d, ep_steal_fd(sfd), &e) < 0) {
    if (pfd >= 0)
      close(pfd);
    if (sfd >= 0)
      close(sfd);
    if (mfd >= 0)
      close(mfd);
    ep_log_err("%s", e.msg);
    return 1; /* main's edgepulld_close stops what was started */
  }
  ep_log_info("edgepulld %s serving the registry mirror on %s, state in %s", EDGEPULL_VERSION,
              where, d->cfg.state_dir);
  if (d->peer != NULL)
    ep_log_info("peer endpoint on %s (%s%s)", pwhere,
                d->peer_tls_cert != NULL ? "mutual TLS" : "plain HTTP, --peer-insecure",
                d->peer_secret[0] != '\0' ? ", locality secret required" : "");
  if (d->metrics_srv != NULL)
    ep_log_info("metrics on http://%s/metrics", mwhere);
  char status[WATCHDOG_STATUS_MAX];
  snprintf(status, sizeof status, "serving on %s", where);
  sdp_notifyf("READY=1\nSTATUS=%s", status);
  if (edgepulld_watch(d, status, &e) < 0) {
    ep_log_err("%s", e.msg);
    return 1;
  }
  wait_for_stop();
  sdp_notify("STOPPING=1");
  edgepulld_stop(d);
  return 0;
}

int main(int argc, char **argv) {
  /* glibc gives every thread that allocates its own arena; with a thread per
   * connection that is megabytes of mostly empty heap. Two arenas hold
   * edgepulld's few, buffer-sized allocations (measured: the gateway's peak
   * anonymous memory at N = 21 fell from 8.8 to 7.3 MiB, docs/evaluation.md).
   * One arena is worse: its single heap fragments (bench/rss_fanout.sh
   * --size 64 --clients 4, 16 KiB response blocks: VmHWM 13.03 -> 13.19 MiB,
   * docs/benchmarks.md). */
  mallopt(M_ARENA_MAX, 2);
  struct edgepulld *d = calloc(1, sizeof *d);
  if (d == NULL)
    return 1;
  ep_err e = {0};
  config_defaults(&d->cfg);
  int r = config_parse_args(&d->cfg, argc, argv, &e);
  if (r != 0 || config_validate(&d->cfg, &e) < 0) {
    if (r != 1)
      fprintf(stderr, "edgepulld: %s\n", e.msg);
    free(d);
    return r == 1 ? 0 : 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  mosquitto_lib_init();
  r = run(d);
  edgepulld_close(d);
  free(d);
  mosquitto_lib_cleanup();
  curl_global_cleanup();
  return r;
}
