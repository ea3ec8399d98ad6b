/* edgepulld's metrics: one struct owned by the daemon and handed to the
 * modules through their *_deps (NULL = not counted). Counters and
 * histograms are C11 atomics so that data callbacks and request threads
 * count without a lock; only the first sight of a peer takes a mutex, to
 * claim its slot. Gauges that are cheaper to read than to keep (store size,
 * free space, fetches in flight, the MQTT state, the parent) are sampled
 * by the daemon at scrape time and handed to metrics_render.
 *
 * docs/metrics.md lists every metric. */
#ifndef EP_PLUGIN_METRICS_H
#define EP_PLUGIN_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"

/* Where the bytes a client received came from. */
enum metrics_source {
  METRICS_SRC_LOCAL,    /* the store: a cache hit on the local endpoint */
  METRICS_SRC_PARENT,   /* the parent the coordinator assigned */
  METRICS_SRC_PEER,     /* another node of the locality */
  METRICS_SRC_UPSTREAM, /* the registry */
  METRICS_SRC_N,
};

/* Upper bounds of a histogram's buckets, in seconds (+Inf is implicit). */
#define METRICS_BUCKETS 12
struct metrics_hist {
  /* Not cumulative: the last one is past every bound. The count is their
   * sum at render, so _count and the +Inf bucket always agree. */
  atomic_uint_least64_t bucket[METRICS_BUCKETS + 1];
  atomic_uint_least64_t sum_us;
};

/* Per-peer byte counters. The label's cardinality is bounded: past
 * METRICS_PEERS_MAX distinct nodes the bytes go to peer="_other". */
#define METRICS_PEERS_MAX 32
#define METRICS_PEER_ID_MAX 64
struct metrics_peer {
  atomic_int ready; /* 1 once node is written; node never changes after */
  char node[METRICS_PEER_ID_MAX];
  atomic_uint_least64_t bytes;
};

enum metrics_snap_op {
  METRICS_SNAP_PREPARE,
  METRICS_SNAP_COMMIT,
  METRICS_SNAP_REMOVE,
  METRICS_SNAP_N
};

struct metrics {
  atomic_uint_least64_t source_bytes[METRICS_SRC_N];
  atomic_uint_least64_t served_peer_bytes; /* sent to other nodes from the peer endpoint */
  atomic_uint_least64_t cache_hits, cache_misses;
  atomic_int_least64_t readers; /* responses following a blob in flight */
  struct metrics_hist fetch_seconds;
  atomic_uint_least64_t fetch_failures;
  atomic_uint_least64_t resumes;
  atomic_uint_least64_t suspects;
  atomic_uint_least64_t verify_failures;
  atomic_uint_least64_t gc_evictions;     /* blobs the disk GC removed */
  atomic_uint_least64_t gc_evicted_bytes; /* and their bytes */
  /* The last GC pass: bytes it could not remove of what the limits asked (the store stays over a
   * watermark), and of the protected bytes those only readers hold (in flight, being read). */
  atomic_uint_least64_t gc_short_bytes;
  atomic_uint_least64_t gc_held_bytes;
  atomic_uint_least64_t gc_short_passes; /* passes that ended short */
  struct metrics_hist snap_seconds[METRICS_SNAP_N];
  struct metrics_hist unpack_seconds; /* remote unpacks (layers from the fetch engine) */
  atomic_uint_least64_t unpack_failures;
  pthread_mutex_t peers_mu; /* only to claim a slot */
  struct metrics_peer peers[METRICS_PEERS_MAX];
  atomic_uint_least64_t other_peer_bytes;
};

/* What the daemon samples at scrape time. */
struct metrics_sample {
  unsigned fetches_in_flight;
  unsigned long fetches_started;
  bool store_known; /* the two below were read */
  uint64_t store_bytes, store_blobs;
  uint64_t store_free_bytes, store_avail_bytes;
  uint64_t store_max, store_min_free; /* the disk GC's limits in bytes, 0 = none */
  bool mqtt_configured;
  bool mqtt_connected;
  const char *parent; /* the node's parent, NULL or "" = none */
  /* --upstream-max-rate and --peer-max-rate ([0] upstream, [1] peer): the
   * cap (0 = none) and the time transfers were told to wait for it */
  uint64_t rate_limit_bps[2];
  uint64_t rate_limited_ns[2];
};

int metrics_init(struct metrics *m);
void metrics_destroy(struct metrics *m);

static inline void metrics_add(atomic_uint_least64_t *c, uint64_t n) {
  atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}
/* m may be NULL in every function below. */
void metrics_count_source(struct metrics *m, enum metrics_source src, uint64_t n);
/* The counter for bytes from peer node (claimed on first use; the
 * "_other" one past the bound). Resolve once per transfer, then add. */
atomic_uint_least64_t *metrics_peer_counter(struct metrics *m, const char *node);
/* Records one observation of seconds given in microseconds. */
void metrics_observe_us(struct metrics_hist *h, uint64_t us);
/* The buckets' upper bounds, seconds. */
extern const double metrics_bucket_le[METRICS_BUCKETS];

/* The Prometheus text exposition (version 0.0.4) of m and s into out. */
int metrics_render(struct metrics *m, const struct metrics_sample *s, struct ep_buf *out);
/* Appends v as a label value: backslash, double quote and newline escaped. */
int metrics_append_label(struct ep_buf *out, const char *v);

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
