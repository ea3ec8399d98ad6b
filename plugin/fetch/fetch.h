/* The fetch engine: one upstream fetch per blob digest per node (single
 * flight), written into the store while any number of readers follow it
 * through its pipe. The fetch runs on its own thread, independent of the
 * request that started it, so a client hanging up never wastes the bytes
 * already on their way: the blob is finished and kept for the next pull,
 * unless no reader at all has followed it for orphan_grace_ms. */
#ifndef EP_PLUGIN_FETCH_H
#define EP_PLUGIN_FETCH_H

#include "common/err.h"
#include "plugin/metrics/metrics.h"
#include "plugin/upstream/upstream.h"
#include "store/digest.h"
#include "store/index.h"
#include "store/pipe.h"
#include "store/store.h"

typedef struct fetcher fetcher;

/* Where a fetch may take a blob from: the upstream registry of the request,
 * or another node's peer endpoint. */
struct fetch_source {
  enum { SRC_UPSTREAM, SRC_PEER } kind;
  char node[64];      /* peer node id; "" for the upstream */
  char base_url[128]; /* peer: http://addr:port */
  bool parent;        /* peer: the parent the coordinator assigned (for the metrics) */
};
#define FETCH_SOURCES_MAX 8

/* Bytes received from each kind of source and served to peers. */
struct fetch_stats {
  uint64_t upstream_bytes;
  uint64_t peer_bytes;
  uint64_t served_peer_bytes;
};

/* Who asked, for requests that come from a peer. */
struct fetch_request {
  const char *exclude_node; /* never take the blob from this node; NULL = none */
  unsigned hops;            /* X-Edgepull-Hops of the request (0 = local) */
  uint64_t size;            /* the blob's size from its descriptor; 0 = unknown */
};

struct fetcher_deps {
  store *st;
  index_db *idx;
  upstream *up;
  pipe_table *pipes;
  int max_attempts; /* per fetch, resuming from the last offset; default 4 */
  /* Called on the fetch thread after a blob was committed (may be NULL):
   * the node agent announces it to the locality. */
  void (*on_commit)(void *ud, const digest_t *d, uint64_t size);
  void *on_commit_ud;
  /* Source order for a blob, best first (at most max written; the count
   * returned). NULL: the upstream only, as a standalone mirror. Called again
   * after a source fails, since the parent may have changed meanwhile. */
  int (*pick_sources)(void *ud, const digest_t *d, const char *exclude_node,
                      struct fetch_source *out, size_t max);
  /* A peer served bytes that failed verification (may be NULL). */
  void (*on_bad_source)(void *ud, const char *node, const digest_t *d, const char *why);
  void *sources_ud;
  const char *node_id;     /* this node, sent to peers; must outlive the fetcher */
  const char *peer_secret; /* locality secret for peers, NULL = none; idem */
  int source_wait_ms;      /* wait this long for a source to appear; default 3000 */
  /* Once a fetch has a peer among its sources or holds bytes, it fails only
   * after budget_ms without receiving a byte (default 60000); before that,
   * after max_attempts rounds (an offline upstream answers fast). */
  int budget_ms;
  uint64_t min_rate;  /* bytes/s a peer must average over rate_window_ms; 0 = none */
  int rate_window_ms; /* default 10000 */
  uint64_t max_blob;  /* cap when no size is known; 0 = 16 GiB */
  /* Concurrent fetch jobs; a new blob past it fails with EP_ECANCELED (503).
   * 0 = no cap. */
  unsigned max_jobs;
  /* A fetch whose pipe has had no reader (no request, peer or deploy) for
   * this long is abandoned, its partial kept for resuming. 0 = never. */
  int orphan_grace_ms;
  /* A fetch with no sign of progress for this long is stuck (see
   * fetcher_health); default FETCH_STALL_MS_DEFAULT. Must exceed the
   * silences a healthy fetch has: libcurl's timeouts, the 200 ms source
   * wait, back-offs of 250 ms x max_attempts. */
  int stall_ms;
  /* Where bytes, resumes, suspects, verification failures and fetch
   * durations are counted; NULL = nowhere. Outlives the fetcher. */
  struct metrics *metrics;
};

/* Longer than any silence a healthy fetch can have: each step is bounded
 * by libcurl's connect and low-speed timeouts (30 s by default; a blob GET
 * may take a token request and a redirect first), or a sub-second sleep. */
#define FETCH_STALL_MS_DEFAULT (300 * 1000)

int fetcher_new(const struct fetcher_deps *deps, fetcher **out, ep_err *err);
/* Stops taking work, cancels readers and in-flight fetches, waits for the
 * fetch threads, then frees. Partials stay on disk for resuming. */
void fetcher_free(fetcher *f);
/* Refuse new fetches and wake every reader with a failure (shutdown). */
void fetcher_stop(fetcher *f);

/* Returns a referenced pipe for blob d: the one in flight, or a new fetch
 * from host/repo started on a fetch thread. The caller reads with pipe_read
 * and drops the reference with pipe_unref. */
int fetcher_open(fetcher *f, const char *host, const char *repo, const digest_t *d, blob_pipe **out,
                 ep_err *err);
/* fetcher_open for a request from a peer: the fetch (if this call starts
 * it) never asks rq->exclude_node, and forwards rq->hops + 1. A fetch in
 * flight is joined whatever its sources. */
int fetcher_open_req(fetcher *f, const char *host, const char *repo, const digest_t *d,
                     const struct fetch_request *rq, blob_pipe **out, ep_err *err);
/* Statistics since the fetcher started (thread-safe). */
void fetcher_stats(fetcher *f, struct fetch_stats *out);
/* Counts bytes served to peers (called by the peer endpoint). */
void fetcher_count_served(fetcher *f, uint64_t n);
/* Why the most recent fetch of d failed (copies the error; 0 if none is
 * recorded). Readers use it to choose the status code of their answer. */
int fetcher_last_error(fetcher *f, const digest_t *d, ep_err *out);
/* Fetches in flight and in total (for stats and tests). */
void fetcher_counts(fetcher *f, unsigned *in_flight, unsigned long *started);
/* 0 while every fetch in flight made progress within stall_ms; else <0
 * with why naming the stuck fetch (for the systemd watchdog). */
int fetcher_health(fetcher *f, int64_t now_ms, ep_err *why);

#endif
