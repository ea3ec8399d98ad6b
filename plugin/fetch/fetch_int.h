/* Internals of the fetch engine shared by its two files: fetch.c (the
 * fetch thread: sources, transfers, commit) and fetch_state.c (the fetcher
 * itself: creation, stop and the waits it wakes, the failure ring, counters
 * and the watchdog's view). Not part of the contract: only those files
 * include it.
 *
 * Threads: the job struct belongs to its fetch thread. The fetcher's mutex
 * guards the thread count (fetcher_free waits on `idle` for it to reach 0),
 * the small ring of recent failures, the list of jobs in flight that
 * fetcher_health walks, and the waits on `wake`. `stopping`, the byte
 * counters and each job's heartbeat are atomic so data callbacks never take
 * the lock. */
#ifndef EP_PLUGIN_FETCH_INT_H
#define EP_PLUGIN_FETCH_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/clock.h"
#include "plugin/fetch/fetch.h"

#define FETCH_FAILURES 64

/* A source that failed, and when it may be asked again. */
struct fetch_retry {
  struct fetch_source src;
  int64_t at;
  unsigned fails;
};

struct fetch_failure {
  digest_t digest;
  ep_err err;
};

struct fetcher {
  struct fetcher_deps deps;
  atomic_bool stopping;
  pthread_mutex_t lock;
  pthread_cond_t idle; /* running reached 0 (fetcher_free waits) */
  /* Broadcast by fetcher_stop: a fetch waiting for a source or out a
   * backoff (fetch_nap) ends its wait at once instead of sleeping it out. */
  pthread_cond_t wake;
  unsigned running;
  unsigned long started;
  struct fetch_failure failures[FETCH_FAILURES];
  unsigned next_failure;
  atomic_uint_least64_t upstream_bytes, peer_bytes, served_peer_bytes;
  struct fetch_job *jobs; /* in flight, for fetcher_health (under lock) */
};

struct fetch_job {
  fetcher *f;
  blob_pipe *pipe;
  digest_t digest;
  char host[256];
  char repo[256];
  char exclude[64];
  unsigned hops;
  struct fetch_source src; /* the source being read */
  struct fetch_retry retry[FETCH_SOURCES_MAX];
  size_t nretry;                     /* failed sources, waiting their backoff */
  char blame[FETCH_SOURCES_MAX][64]; /* peers that gave us bytes */
  size_t nblame;
  store_ingest *in;
  uint64_t total;
  uint64_t skip;      /* bytes of a 200 answer we already hold */
  uint64_t committed; /* size of the blob once committed */
  uint64_t published; /* what readers were last told they may read */
  int64_t published_ms;
  uint64_t known; /* trusted size (descriptor, locality index); 0 = unknown */
  bool lied;      /* the current source broke the size bound: blame it */
  int64_t win_ms; /* the current transfer's rate window */
  uint64_t win_bytes;
  int64_t orphan_checked_ms; /* last look at the pipe's readers */
  int64_t orphan_since_ms;   /* when the last reader left; 0 = has readers */
  ep_err err;
  int64_t start_ms;               /* for the duration histogram */
  atomic_uint_least64_t *src_ctr; /* the current source's byte counters; NULL = none */
  atomic_uint_least64_t *peer_ctr;
  struct fetch_job *next_job;   /* fetcher->jobs */
  atomic_int_least64_t beat_ms; /* last sign of progress (fetcher_health) */
  /* When a request last joined this fetch. The budget runs from the later of
   * this and the last byte: a reader that joins a fetch near the end of its
   * budget (a deploy started while an old fetch still waits for its source)
   * gets the whole budget, not the old fetch's remainder. */
  atomic_int_least64_t demand_ms;
};

static inline void beat(struct fetch_job *j) {
  atomic_store(&j->beat_ms, ep_mono_ms());
}

/* Remembers why the fetch of d failed, for fetcher_last_error. */
void fetch_record_failure(fetcher *f, const digest_t *d, const ep_err *e);
/* Waits ms, or less when the fetcher stops meanwhile. Returns false when it
 * is stopping (the caller gives up). */
bool fetch_nap(fetcher *f, int64_t ms);

#endif
