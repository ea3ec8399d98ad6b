/* The registry endpoint (libmicrohttpd): the pull side of the OCI
 * distribution API, served from the store, from blobs in flight, or through
 * the fetch engine. */
#ifndef EP_PLUGIN_SERVER_H
#define EP_PLUGIN_SERVER_H

#include "common/err.h"
#include "common/ratelimit.h"
#include "plugin/fetch/fetch.h"
#include "plugin/fetch/sources.h"
#include "plugin/metrics/metrics.h"
#include "plugin/mirror/mirror.h"
#include "store/holds.h"
#include "store/touch.h"

struct server;

/* What the endpoint serves from, owned by the caller (the daemon) and
 * outliving the server; copied by server_start. */
struct server_deps {
  store *st;
  index_db *idx;
  /* Where a blob served from the store records its access, off the request
   * thread; NULL: written at once into idx. */
  touch_batch *touch;
  upstream *up;
  pipe_table *pipes;
  fetcher *fetch;
  const struct mirror_deps *mirror;
  struct sources *src;
  const char *peer_secret; /* the locality secret, "" = none */
  /* Mutual TLS on the peer endpoint (PEM text, all three or none): this
   * node's certificate and key, and the locality CA that client
   * certificates must chain to. NULL: plain HTTP (--peer-insecure). */
  const char *tls_cert;
  const char *tls_key;
  const char *tls_ca;
  const char *default_registry; /* for names without a registry */
  unsigned max_connections;
  /* Bounds (issue 11; docs/design.md). */
  int header_timeout_s;      /* whole request headers within; 0 = 15 */
  unsigned local_max_per_ip; /* connections per client address, local mode; 0 = no limit */
  unsigned peer_max_per_ip;  /* idem, peer mode */
  unsigned endpoints;        /* endpoints sharing RLIMIT_NOFILE (local, peer): 1 or 2 */
  unsigned max_fetches;      /* fetch jobs: their fds, and 2x the partials kept */
  int partial_max_age_s;     /* the local endpoint prunes partials older than this */
  /* Cache hits and misses, local bytes and readers are counted here (NULL:
   * not counted); GET /metrics on the local and metrics endpoints answers
   * what render_metrics writes (NULL: 404). */
  struct metrics *metrics;
  int (*render_metrics)(void *ud, struct ep_buf *out);
  void *metrics_ud;
  /* --peer-max-rate: every body the peer endpoint sends pays this one
   * bucket (so stored blobs go through a reader, not sendfile); NULL = no
   * cap. Ignored in local mode. Owned by the caller. */
  ep_ratelimit *peer_rate;
  /* A GET of a blob holds it here until the response is done, so the disk
   * GC leaves it alone; NULL = no holds. Owned by the caller. */
  hold_table *holds;
  /* The local endpoint's admin routes (plugin/http/admin.h): op is "gc",
   * "pin" or "unpin"; image the reference (NULL for gc); *json the answer
   * (malloc'd). NULL: 404. Local mode only. */
  int (*admin)(void *ud, const char *op, const char *image, bool dry_run, char **json, ep_err *err);
  void *admin_ud;
};

enum server_mode {
  SERVER_LOCAL, /* the runtime's endpoint: never 401, anonymous */
  /* Other nodes' endpoint: mutual TLS with the locality CA (when
   * deps->tls_cert is set; X-Edgepull-Node must then be a name of the
   * client's certificate, else 403), Basic auth with the locality secret
   * (when deps->peer_secret is set), X-Edgepull-Node excluded as a source
   * for the fetch it starts, X-Edgepull-Hops over UPSTREAM_PEER_HOPS_MAX →
   * 508. */
  SERVER_PEER,
  SERVER_METRICS, /* --metrics-listen: GET /metrics only */
};

/* Serves on listen_fd (a bound, listening socket; the server owns it from
 * then on, also on failure). server_start is the local mode. */
int server_start(const struct server_deps *deps, int listen_fd, struct server **out, ep_err *err);
int server_start_mode(const struct server_deps *deps, int listen_fd, enum server_mode mode,
                      struct server **out, ep_err *err);
/* Stops accepting connections; requests in progress go on. */
void server_quiesce(struct server *s);
/* Waits for the connection threads (their readers must have been woken,
 * see fetcher_stop) and frees. */
void server_stop(struct server *s);
/* Liveness for the watchdog: a GET /v2/ over loopback to the endpoint's
 * own listening socket must be answered 200 within timeout_ms. 0 when it
 * is (or s is NULL, quiesced, or at max_connections), else <0 with err
 * saying what failed. */
int server_probe(struct server *s, int timeout_ms, ep_err *err);

#endif
