#include "common/ratelimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "common/clock.h"

#define NS_PER_S 1000000000.0

struct ep_ratelimit {
  pthread_mutex_t mu;
  pthread_cond_t closed_cv; /* signalled once, by ep_ratelimit_close */
  atomic_bool closed;       /* written under mu; read without it on the fast path */
  double rate;              /* bytes per second */
  double burst;             /* most tokens the bucket holds */
  double tokens;            /* may go negative: the debt takers are sleeping off */
  int64_t last_ns;
  atomic_uint_fast64_t throttled_ns;
};

ep_ratelimit *ep_ratelimit_new(uint64_t bytes_per_s) {
  if (bytes_per_s == 0)
    return NULL;
  ep_ratelimit *rl = calloc(1, sizeof *rl);
  if (rl == NULL)
    return NULL;
  if (pthread_mutex_init(&rl->mu, NULL) != 0) {
    free(rl);
    return NULL;
  }
  if (ep_cond_init_mono(&rl->closed_cv) != 0) {
    pthread_mutex_destroy(&rl->mu);
    free(rl);
    return NULL;
  }
  rl->rate = (double)bytes_per_s;
  rl->burst = rl->rate / 10 > EP_RATELIMIT_MIN_BURST ? rl->rate / 10 : EP_RATELIMIT_MIN_BURST;
  rl->tokens = rl->burst;
  rl->last_ns = ep_mono_ns();
  atomic_init(&rl->throttled_ns, 0);
  return rl;
}

void ep_ratelimit_free(ep_ratelimit *rl) {
  if (rl == NULL)
    return;
  pthread_cond_destroy(&rl->closed_cv);
  pthread_mutex_destroy(&rl->mu);
  free(rl);
}

void ep_ratelimit_close(ep_ratelimit *rl) {
  if (rl == NULL)
    return;
  pthread_mutex_lock(&rl->mu);
  atomic_store(&rl->closed, true);
  pthread_cond_broadcast(&rl->closed_cv);
  pthread_mutex_unlock(&rl->mu);
}

int64_t ep_ratelimit_reserve(ep_ratelimit *rl, size_t n, int64_t now_ns) {
  if (rl == NULL)
    return 0;
  pthread_mutex_lock(&rl->mu);
  if (now_ns > rl->last_ns) { /* a clock read before another thread's is no refill */
    rl->tokens += (double)(now_ns - rl->last_ns) * rl->rate / NS_PER_S;
    if (rl->tokens > rl->burst)
      rl->tokens = rl->burst;
    rl->last_ns = now_ns;
  }
  rl->tokens -= (double)n;
  int64_t wait = rl->tokens < 0 ? (int64_t)(-rl->tokens / rl->rate * NS_PER_S) + 1 : 0;
  pthread_mutex_unlock(&rl->mu);
  if (wait > 0)
    atomic_fetch_add(&rl->throttled_ns, (uint_fast64_t)wait);
  return wait;
}

/* Sleeps on the closed condition rather than nanosleep so that shutdown
 * never waits out a long debt. */
int ep_ratelimit_take(ep_ratelimit *rl, size_t n) {
  if (rl == NULL)
    return 0;
  int64_t wait = ep_ratelimit_reserve(rl, n, ep_mono_ns());
  if (wait == 0) /* the common case with a cap: no lock, no clock again */
    return atomic_load(&rl->closed) ? -1 : 0;
  int64_t until_ms = ep_mono_ms() + (wait + 999999) / 1000000;
  pthread_mutex_lock(&rl->mu);
  while (!atomic_load(&rl->closed) && ep_mono_ms() < until_ms) {
    struct timespec at = ep_mono_timespec(until_ms);
    pthread_cond_timedwait(&rl->closed_cv, &rl->mu, &at);
  }
  bool closed = atomic_load(&rl->closed);
  pthread_mutex_unlock(&rl->mu);
  return closed ? -1 : 0;
}

uint64_t ep_ratelimit_rate(const ep_ratelimit *rl) {
  return rl != NULL ? (uint64_t)rl->rate : 0;
}

uint64_t ep_ratelimit_burst(const ep_ratelimit *rl) {
  return rl != NULL ? (uint64_t)rl->burst : 0;
}

uint64_t ep_ratelimit_throttled_ns(ep_ratelimit *rl) {
  return rl != NULL ? (uint64_t)atomic_load(&rl->throttled_ns) : 0;
}
