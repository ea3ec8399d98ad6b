/* Helpers shared by the unit tests: ep_testlib's (tests/lib/testlib.h),
 * and a PRNG small enough to stay inline. */
#ifndef EP_TESTS_EP_TEST_H
#define EP_TESTS_EP_TEST_H

#include <stdint.h>

#include "tests/lib/testlib.h"

/* A small deterministic PRNG: reproducible data and chunk sizes. */
static inline uint64_t ep_test_xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

#endif
