/* The fetcher itself, beside the fetch threads of fetch.c: creation and
 * defaults, the stop that wakes every wait, the ring of recent failures that
 * readers ask for their status code, the counters, and the watchdog's view
 * of the jobs in flight. */
#include <stdlib.h>

#include "plugin/fetch/fetch_int.h"

#define FETCH_RATE_WINDOW_MS 10000 /* default */
#define FETCH_BUDGET_MS 60000
#define FETCH_MAX_BLOB (16ull << 30)

int fetcher_new(const struct fetcher_deps *deps, fetcher **out, ep_err *err) {
  fetcher *f = calloc(1, sizeof *f);
  if (f == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  f->deps = *deps;
  if (f->deps.max_attempts <= 0)
    f->deps.max_attempts = 4;
  if (pthread_mutex_init(&f->lock, NULL) != 0) {
    free(f);
    return ep_error(err, EP_EINTERNAL, "fetcher: cannot create a mutex");
  }
  if (pthread_cond_init(&f->idle, NULL) != 0 || ep_cond_init_mono(&f->wake) != 0) {
    pthread_mutex_destroy(&f->lock);
    free(f);
    return ep_error(err, EP_EINTERNAL, "fetcher: cannot create a condition");
  }
  if (f->deps.source_wait_ms <= 0)
    f->deps.source_wait_ms = 3000;
  if (f->deps.budget_ms <= 0)
    f->deps.budget_ms = FETCH_BUDGET_MS;
  if (f->deps.max_blob == 0)
    f->deps.max_blob = FETCH_MAX_BLOB;
  if (f->deps.rate_window_ms <= 0)
    f->deps.rate_window_ms = FETCH_RATE_WINDOW_MS;
  if (f->deps.stall_ms <= 0)
    f->deps.stall_ms = FETCH_STALL_MS_DEFAULT;
  atomic_init(&f->stopping, false);
  atomic_init(&f->upstream_bytes, 0);
  atomic_init(&f->peer_bytes, 0);
  atomic_init(&f->served_peer_bytes, 0);
  *out = f;
  return 0;
}

void fetcher_stop(fetcher *f) {
  atomic_store(&f->stopping, true);
  /* Under the lock: a fetch_nap that saw `stopping` false is already
   * waiting, so the broadcast reaches it. */
  pthread_mutex_lock(&f->lock);
  pthread_cond_broadcast(&f->wake);
  pthread_mutex_unlock(&f->lock);
  upstream_cancel_all(f->deps.up);
  pipe_table_cancel_all(f->deps.pipes);
}

bool fetch_nap(fetcher *f, int64_t ms) {
  int64_t until = ep_mono_ms() + ms;
  struct timespec at = ep_mono_timespec(until);
  pthread_mutex_lock(&f->lock);
  while (!atomic_load(&f->stopping) && ep_mono_ms() < until)
    pthread_cond_timedwait(&f->wake, &f->lock, &at);
  pthread_mutex_unlock(&f->lock);
  return !atomic_load(&f->stopping);
}

void fetcher_free(fetcher *f) {
  if (f == NULL)
    return;
  fetcher_stop(f);
  pthread_mutex_lock(&f->lock);
  while (f->running > 0)
    pthread_cond_wait(&f->idle, &f->lock);
  pthread_mutex_unlock(&f->lock);
  pthread_cond_destroy(&f->idle);
  pthread_cond_destroy(&f->wake);
  pthread_mutex_destroy(&f->lock);
  free(f);
}

void fetch_record_failure(fetcher *f, const digest_t *d, const ep_err *e) {
  pthread_mutex_lock(&f->lock);
  struct fetch_failure *slot = &f->failures[f->next_failure++ % FETCH_FAILURES];
  slot->digest = *d;
  slot->err = *e;
  pthread_mutex_unlock(&f->lock);
}

int fetcher_last_error(fetcher *f, const digest_t *d, ep_err *out) {
  int found = 0;
  pthread_mutex_lock(&f->lock);
  for (unsigned i = 0; i < FETCH_FAILURES && i < f->next_failure; i++) {
    unsigned k = (f->next_failure - 1 - i) % FETCH_FAILURES;
    if (digest_equal(&f->failures[k].digest, d)) {
      *out = f->failures[k].err;
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&f->lock);
  return found;
}

void fetcher_counts(fetcher *f, unsigned *in_flight, unsigned long *started) {
  pthread_mutex_lock(&f->lock);
  if (in_flight)
    *in_flight = f->running;
  if (started)
    *started = f->started;
  pthread_mutex_unlock(&f->lock);
}

void fetcher_stats(fetcher *f, struct fetch_stats *out) {
  out->upstream_bytes = atomic_load(&f->upstream_bytes);
  out->peer_bytes = atomic_load(&f->peer_bytes);
  out->served_peer_bytes = atomic_load(&f->served_peer_bytes);
}

void fetcher_count_served(fetcher *f, uint64_t n) {
  atomic_fetch_add(&f->served_peer_bytes, n);
  if (f->deps.metrics != NULL)
    metrics_add(&f->deps.metrics->served_peer_bytes, n);
}

/* The watchdog's view: every fetch in flight must have shown progress (a
 * chunk, a (re)start, a source pick, a retry round) within stall_ms. Each
 * of those steps is bounded by a libcurl timeout or a short sleep, so a
 * longer silence means a thread blocked where nothing bounds it. */
int fetcher_health(fetcher *f, int64_t now_ms, ep_err *why) {
  int r = 0;
  pthread_mutex_lock(&f->lock);
  for (struct fetch_job *j = f->jobs; j != NULL && r == 0; j = j->next_job) {
    int64_t idle = now_ms - atomic_load(&j->beat_ms);
    if (idle > f->deps.stall_ms)
      r = ep_error(why, EP_EINTERNAL, "fetch of %.12s from %s/%s made no progress for %lld ms",
                   j->digest.hex, j->host, j->repo, (long long)idle);
  }
  pthread_mutex_unlock(&f->lock);
  return r;
}
