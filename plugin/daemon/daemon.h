/* The daemon's context: everything one edgepulld instance owns, passed
 * explicitly so that tests can run two instances in one process.
 *
 * This is the one place that knows every module: edgepulld_open builds each
 * module's small *_deps struct from the configuration and the handles it
 * opened, and wires the callbacks between them (the agent hands parent
 * assignments to source selection and deploy requests to the deploy worker;
 * source selection reports suspect peers to the agent; the fetcher
 * announces committed blobs through the agent). No module below includes
 * this header. edgepulld_stop and edgepulld_close hold the one shutdown
 * order, used by main.c and by the tests. */
#ifndef EP_PLUGIN_DAEMON_H
#define EP_PLUGIN_DAEMON_H

#include <pthread.h>
#include <stdbool.h>

#include "plugin/config/config.h"
#include "plugin/daemon/watchdog.h"
#include "plugin/deploy/deploy.h"
#include "plugin/fetch/fetch.h"
#include "plugin/fetch/sources.h"
#include "plugin/http/server.h"
#include "plugin/metrics/metrics.h"
#include "plugin/mirror/mirror.h"
#include "plugin/upstream/upstream.h"
#include "store/index.h"
#include "store/gc.h"
#include "store/holds.h"
#include "store/pipe.h"
#include "store/store.h"
#include "store/touch.h"

struct agent;
struct snapshot_service;
struct snap_remote;

/* What the configuration does not say (the tests set these). */
struct edgepulld_options {
  int source_wait_ms; /* fetcher: wait for a source to appear; 0 = its default */
  int fetch_stall_ms; /* fetcher: a fetch this long without progress is stuck; 0 = default */
};

struct edgepulld {
  struct edgepulld_config cfg;
  store *st;
  index_db *idx;
  touch_batch *touch; /* warm GETs' last-access writes, off the request threads */
  /* The disk GC (--store-max, --store-min-free; daemon_gc.c) and the blobs
   * the endpoints' responses read, which it leaves alone. */
  gc_runner *gc;
  hold_table *holds;
  struct gc_limits gc_lim;
  upstream *up;
  /* --upstream-max-rate and --peer-max-rate: one bucket per direction that
   * every transfer of this node in it shares; NULL = no cap. */
  ep_ratelimit *up_rate, *peer_rate;
  pipe_table *pipes;
  fetcher *fetch;
  struct server *local;       /* the runtime's endpoint (loopback) */
  struct server *peer;        /* the peer endpoint (--peer-listen), NULL when off */
  struct server *metrics_srv; /* --metrics-listen, NULL when off */
  struct metrics metrics;     /* every module counts into it (metrics_ready) */
  bool metrics_ready;
  struct sources *src;                    /* source order and suspect peers */
  struct sources_deps src_deps;           /* referenced by src */
  struct mirror_deps mirror;              /* manifests: what the mirror uses */
  char peer_secret[NAMES_SECRET_MAX + 1]; /* --peer-secret-file, "" = none */
  /* Peer TLS (--peer-ca, --peer-cert, --peer-key) as PEM text for the
   * peer endpoint; NULL with --peer-insecure. The key is wiped at close. */
  char *peer_tls_ca, *peer_tls_cert, *peer_tls_key;
  /* Guards `agent` against fetch and deploy threads reporting while
   * edgepulld_close stops it (initialized by edgepulld_open). */
  pthread_mutex_t agent_mu;
  struct agent *agent; /* locality member over MQTT; NULL when standalone */
  /* Guards `deploy` against the agent handing a request over while
   * edgepulld_close stops the worker. */
  pthread_mutex_t deploy_mu;
  deployer *deploy; /* the deploy worker; NULL when standalone */
  bool mu_ready;    /* agent_mu, deploy_mu and snaps_mu initialized */
  watchdog *wd;     /* the systemd watchdog; NULL when systemd asks for none */
  /* containerd's snapshotter (--snapshotter-socket), NULL when off. snaps_mu guards it against
   * the disk GC's thread asking which layers are unpacked while it starts or stops. */
  pthread_mutex_t snaps_mu;
  struct snapshot_service *snaps;
  struct snap_remote *snap_remote; /* its layer source: the fetch engine */
  int snap_fd;                     /* its listening socket, when snap_remote != NULL */
  char snap_unlink[108];           /* the socket path to remove at close, "" = none (systemd's) */
};

/* Opens the store, index and upstream client from d->cfg, the fetcher, and
 * the node agent and deploy worker when a broker is configured. opt may be
 * NULL (defaults). */
int edgepulld_open(struct edgepulld *d, const struct edgepulld_options *opt, ep_err *err);
/* Serves mode's endpoint on listen_fd (owned from then on, also on
 * failure): d->local for SERVER_LOCAL, d->peer for SERVER_PEER,
 * d->metrics_srv for SERVER_METRICS. */
int edgepulld_serve(struct edgepulld *d, int listen_fd, enum server_mode mode, ep_err *err);
/* Serves containerd's snapshotter API on listen_fd (owned from then on, also
 * on failure), layers fetched through the fetch engine. unlink_path: the
 * socket file to remove at close (NULL for systemd's). */
int edgepulld_serve_snapshots(struct edgepulld *d, int listen_fd, const char *unlink_path,
                              ep_err *err);
/* The deploy worker's view of the daemon (the fetcher, store, index and
 * mirror). */
void edgepulld_deploy_deps(struct edgepulld *d, struct deploy_deps *out);
/* Starts the systemd watchdog when WATCHDOG_USEC asks for it: pings while
 * the fetch engine makes progress and the local endpoint answers; status
 * is the STATUS= line for healthy. A no-op (0) without WATCHDOG_USEC. */
int edgepulld_watch(struct edgepulld *d, const char *status, ep_err *err);
/* Stops the watchdog, then serving: both endpoints stop accepting, fetches
 * stop (waking every reader, the snapshotter's remote unpacks too), the
 * snapshotter stops, then the endpoints' connection threads are joined.
 * Idempotent. */
void edgepulld_stop(struct edgepulld *d);
/* edgepulld_stop, then stops the deploy worker and the agent (the locality
 * sees this node offline at once), then fetches and readers; frees
 * everything opened. Safe on partial opens. */
void edgepulld_close(struct edgepulld *d);
/* daemon_gc.c: opens the GC (after the fetcher: it reads the pipes), stops
 * it (first in edgepulld_close), frees the holds (after the endpoints), and
 * answers the local endpoint's admin routes (server_deps.admin). */
int daemon_gc_open(struct edgepulld *d, ep_err *err);
void daemon_gc_close(struct edgepulld *d);
void daemon_gc_free_holds(struct edgepulld *d);
int daemon_gc_admin(void *ud, const char *op, const char *image, bool dry_run, char **json,
                    ep_err *err);

/* The exposition of d's metrics, with the store, fetch and locality
 * gauges sampled now (daemon_metrics.c; the endpoints' render_metrics). */
int edgepulld_render_metrics(void *d, struct ep_buf *out);

#endif
