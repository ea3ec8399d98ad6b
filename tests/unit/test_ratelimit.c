/* Unit tests for common/ratelimit and common/size: tokens over simulated
 * time, the burst bound, several threads sharing one bucket staying under
 * its rate, close waking a sleeper, and the size and rate parser. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/ratelimit.h"
#include "common/size.h"

#define S 1000000000LL

static void test_off(void **state) {
  (void)state;
  assert_null(ep_ratelimit_new(0));
  assert_int_equal(ep_ratelimit_reserve(NULL, 1 << 30, 0), 0);
  assert_int_equal(ep_ratelimit_take(NULL, 1 << 30), 0);
  assert_int_equal(ep_ratelimit_rate(NULL), 0);
}

/* Simulated time: after the first burst, n bytes cost n / rate seconds. */
static void test_tokens_over_time(void **state) {
  (void)state;
  ep_ratelimit *rl = ep_ratelimit_new(1000000); /* 1 MB/s: burst 100 kB */
  assert_non_null(rl);
  assert_int_equal(ep_ratelimit_burst(rl), 100000);
  int64_t t0 = ep_mono_ms() * 1000000 + S;                   /* after the bucket's own clock read */
  assert_int_equal(ep_ratelimit_reserve(rl, 100000, t0), 0); /* the full bucket */
  int64_t w = ep_ratelimit_reserve(rl, 500000, t0);          /* 0.5 s of debt */
  assert_in_range(w, S / 2, S / 2 + 10);
  w = ep_ratelimit_reserve(rl, 500000, t0 + S / 2); /* debt paid; 0.5 s more */
  assert_in_range(w, S / 2, S / 2 + 10);
  /* 10 s idle refill only the burst, not 10 MB */
  assert_int_equal(ep_ratelimit_reserve(rl, 100000, t0 + 11 * S), 0);
  w = ep_ratelimit_reserve(rl, 1000, t0 + 11 * S);
  assert_in_range(w, S / 1000, S / 1000 + 10);
  assert_true(ep_ratelimit_throttled_ns(rl) >= (uint64_t)S);
  ep_ratelimit_free(rl);
}

/* A small rate still gets the 64 KiB burst; a clock read older than the
 * last one never refills. */
static void test_burst_floor(void **state) {
  (void)state;
  ep_ratelimit *rl = ep_ratelimit_new(1000);
  assert_int_equal(ep_ratelimit_burst(rl), EP_RATELIMIT_MIN_BURST);
  int64_t t0 = ep_mono_ms() * 1000000 + S;
  assert_int_equal(ep_ratelimit_reserve(rl, EP_RATELIMIT_MIN_BURST, t0), 0);
  assert_in_range(ep_ratelimit_reserve(rl, 1000, t0 - S), S, S + 10);
  ep_ratelimit_free(rl);
}

struct taker {
  ep_ratelimit *rl;
  atomic_llong *bytes;
  int64_t end_ms;
};

static void *take_loop(void *arg) {
  struct taker *t = arg;
  while (ep_mono_ms() < t->end_ms) {
    if (ep_ratelimit_take(t->rl, 16384) < 0)
      break;
    atomic_fetch_add(t->bytes, 16384);
  }
  return NULL;
}

/* Four threads on one 2 MB/s bucket for a second: together never more than
 * rate x elapsed + burst (+ the chunks in flight); the lower bound is loose
 * because a loaded machine may oversleep. */
static void test_threads_share_the_rate(void **state) {
  (void)state;
  const uint64_t rate = 2000000;
  ep_ratelimit *rl = ep_ratelimit_new(rate);
  atomic_llong bytes;
  atomic_init(&bytes, 0);
  int64_t start = ep_mono_ms();
  struct taker t = {rl, &bytes, start + 1000};
  pthread_t th[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&th[i], NULL, take_loop, &t), 0);
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  double secs = (double)(ep_mono_ms() - start) / 1000.0;
  double got = (double)atomic_load(&bytes);
  assert_true(got <= (double)rate * secs + (double)ep_ratelimit_burst(rl) + 4 * 16384);
  assert_true(got >= 0.5 * (double)rate * 1.0);
  ep_ratelimit_free(rl);
}

static void *take_big(void *arg) {
  ep_ratelimit *rl = arg;
  return (void *)(intptr_t)ep_ratelimit_take(rl, 100000000); /* 100 s of debt at 1 MB/s */
}

static void test_close_wakes(void **state) {
  (void)state;
  ep_ratelimit *rl = ep_ratelimit_new(1000000);
  pthread_t th;
  int64_t start = ep_mono_ms();
  assert_int_equal(pthread_create(&th, NULL, take_big, rl), 0);
  struct timespec ts = {0, 100000000};
  nanosleep(&ts, NULL);
  ep_ratelimit_close(rl);
  void *ret = NULL;
  pthread_join(th, &ret);
  assert_int_equal((intptr_t)ret, -1);
  assert_true(ep_mono_ms() - start < 10000);
  assert_int_equal(ep_ratelimit_take(rl, 1), -1);
  ep_ratelimit_free(rl);
}

static void test_size_parse(void **state) {
  (void)state;
  static const struct {
    const char *s;
    uint64_t v;
  } ok[] = {{"0", 0},           {"1048576", 1048576},      {"20M", 20000000}, {"20MB", 20000000},
            {"4m", 4000000},    {"2.5MiB", 2621440},       {"64k", 64000},    {"64KiB", 65536},
            {"1G", 1000000000}, {"1Ti", 1099511627776ULL}, {"7b", 7}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    uint64_t v = 1;
    assert_int_equal(ep_size_parse(ok[i].s, &v), 0);
    assert_int_equal(v, ok[i].v);
  }
  static const char *const bad[] = {"",
                                    "M",
                                    "-1",
                                    "+1",
                                    "1.",
                                    ".5",
                                    "1X",
                                    "1MiBs",
                                    "1 M",
                                    "1Mi B",
                                    "99999999999999999999",
                                    "5000000000T",
                                    "1e6"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint64_t v = 0;
    assert_int_equal(ep_size_parse(bad[i], &v), -1);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_off),         cmocka_unit_test(test_tokens_over_time),
      cmocka_unit_test(test_burst_floor), cmocka_unit_test(test_threads_share_the_rate),
      cmocka_unit_test(test_close_wakes), cmocka_unit_test(test_size_parse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
