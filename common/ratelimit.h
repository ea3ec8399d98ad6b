/* One token bucket shared by every transfer of a node in one direction
 * (--upstream-max-rate, --peer-max-rate): libcurl's
 * CURLOPT_MAX_RECV_SPEED_LARGE and MHD cap one connection each, never
 * their sum.
 *
 * A taker takes its bytes at once and, when that leaves the bucket in
 * debt, sleeps until the debt is paid back at the rate: so n threads
 * together get the rate, and each waits its turn in proportion to what it
 * took. The bucket holds at most a burst of tokens (100 ms worth, at least
 * 64 KiB), so an idle spell never saves up more than that.
 *
 * Thread-safe; time is CLOCK_MONOTONIC. A NULL bucket is "no cap": every
 * function accepts it. */
#ifndef EP_COMMON_RATELIMIT_H
#define EP_COMMON_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ep_ratelimit ep_ratelimit;

#define EP_RATELIMIT_MIN_BURST (64 * 1024)

/* A full bucket of bytes_per_s (> 0); NULL when out of memory. */
ep_ratelimit *ep_ratelimit_new(uint64_t bytes_per_s);
void ep_ratelimit_free(ep_ratelimit *rl);
/* Wakes every taker and makes every later take fail at once (shutdown). */
void ep_ratelimit_close(ep_ratelimit *rl);

/* Takes n bytes at now_ns (monotonic nanoseconds) and returns how many
 * nanoseconds the taker must wait before sending them (0: at once). No
 * sleeping: the unit tests drive it with their own clock. */
int64_t ep_ratelimit_reserve(ep_ratelimit *rl, size_t n, int64_t now_ns);
/* ep_ratelimit_reserve now, then sleeps that long. 0, or -1 when the
 * bucket was closed (the caller aborts its transfer). */
int ep_ratelimit_take(ep_ratelimit *rl, size_t n);

uint64_t ep_ratelimit_rate(const ep_ratelimit *rl);  /* 0 for NULL */
uint64_t ep_ratelimit_burst(const ep_ratelimit *rl); /* 0 for NULL */
/* Total nanoseconds takers have been told to wait, summed over takers. */
uint64_t ep_ratelimit_throttled_ns(ep_ratelimit *rl);

#endif
