/* Milliseconds of CLOCK_MONOTONIC: for timeouts, ages and rate limits that
 * must not jump with the wall clock. One definition for the daemon, the
 * coordinator and edgepullctl; and the two pieces every timed wait on it
 * needs, since pthread conditions time out on CLOCK_REALTIME unless told
 * otherwise (a wall clock step would stretch or cut the wait). */
#ifndef EP_COMMON_CLOCK_H
#define EP_COMMON_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Nanoseconds of CLOCK_MONOTONIC: for durations (histograms, the token
 * bucket) where milliseconds are too coarse. */
static inline int64_t ep_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t ep_mono_ms(void) {
  return ep_mono_ns() / 1000000;
}

/* The CLOCK_MONOTONIC instant at_ms (as ep_mono_ms counts), for
 * pthread_cond_timedwait on a condition made by ep_cond_init_mono. */
static inline struct timespec ep_mono_timespec(int64_t at_ms) {
  return (struct timespec){.tv_sec = (time_t)(at_ms / 1000),
                           .tv_nsec = (long)(at_ms % 1000) * 1000000L};
}

/* A condition whose timed waits run on CLOCK_MONOTONIC. 0 or an errno. */
static inline int ep_cond_init_mono(pthread_cond_t *c) {
  pthread_condattr_t ca;
  int rc = pthread_condattr_init(&ca);
  if (rc != 0)
    return rc;
  rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  if (rc == 0)
    rc = pthread_cond_init(c, &ca);
  pthread_condattr_destroy(&ca);
  return rc;
}

#endif
