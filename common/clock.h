/* Milliseconds of CLOCK_MONOTONIC: for timeouts, ages and rate limits that
 * must not jump with the wall clock. One definition for the daemon, the
 * coordinator and edgepullctl. */
#ifndef EP_COMMON_CLOCK_H
#define EP_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t ep_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
