/* Unit tests for store/gc_policy: watermarks, what is never removed, and
 * the removal order (unpacked, most holders, least recently used). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "store/gc_policy.h"

#define MB (1000u * 1000u)

static struct gc_candidate cand(int id, uint64_t size, int64_t at, unsigned holders,
                                unsigned flags) {
  struct gc_candidate c = {.size = size, .last_access = at, .holders = holders, .flags = flags};
  snprintf(c.digest.hex, sizeof c.digest.hex, "%064x", id);
  return c;
}

static void test_watermarks(void **state) {
  (void)state;
  struct gc_limits lim = {.store_max = 100 * MB};
  struct gc_usage use = {.store_bytes = 90 * MB, .free_bytes = 1000 * MB};
  assert_false(gc_due(&lim, &use)); /* at the high watermark, not above */
  assert_int_equal(gc_want_bytes(&lim, &use, false), 0);
  assert_int_equal(gc_want_bytes(&lim, &use, true), 15 * MB); /* forced: down to 75 % */
  use.store_bytes = 95 * MB;
  assert_true(gc_due(&lim, &use));
  assert_int_equal(gc_want_bytes(&lim, &use, false), 20 * MB);
  /* free space: below --store-min-free, up to 1.25x it */
  lim = (struct gc_limits){.min_free = 400 * MB};
  use = (struct gc_usage){.store_bytes = 10 * MB, .free_bytes = 300 * MB};
  assert_true(gc_due(&lim, &use));
  assert_int_equal(gc_want_bytes(&lim, &use, false), 200 * MB);
  /* both: the larger need wins */
  lim.store_max = 100 * MB;
  use.store_bytes = 99 * MB;
  assert_int_equal(gc_want_bytes(&lim, &use, false), 200 * MB);
  /* no limits: never due, a forced GC removes nothing */
  lim = (struct gc_limits){0};
  assert_false(gc_due(&lim, &use));
  assert_int_equal(gc_want_bytes(&lim, &use, true), 0);
  /* no overflow near the top of the range */
  lim.store_max = UINT64_MAX;
  use.store_bytes = UINT64_MAX;
  assert_true(gc_due(&lim, &use));
}

static void test_protected(void **state) {
  (void)state;
  struct gc_candidate c[] = {
      cand(1, 10 * MB, 100, 0, GC_IN_FLIGHT),
      cand(2, 10 * MB, 100, 0, GC_READING),
      cand(3, 10 * MB, 100, 0, GC_PINNED),
      cand(4, 1000, 100, 0, GC_MANIFEST),
      cand(5, 10 * MB, 100, 0, GC_NEEDED), /* the last copy another node needs */
      cand(6, 10 * MB, 100, 1, GC_NEEDED), /* needed, but another node holds it */
      cand(7, 10 * MB, 200, 0, 0),
      cand(8, 2000, 100, 0, GC_CONFIG), /* an image's config */
  };
  struct gc_limits lim = {.store_max = 10 * MB};
  struct gc_usage use = {.store_bytes = 60 * MB + 3000, .free_bytes = 1000 * MB};
  struct gc_plan p;
  assert_int_equal(gc_plan_make(c, 8, &lim, &use, false, &p), 0);
  /* wants 60 MB + 3000 - 7.5 MB, can only have 6 and 7 */
  assert_int_equal(p.nevict, 2);
  assert_int_equal(p.evict[0], 5); /* one holder goes before none */
  assert_int_equal(p.evict[1], 6);
  assert_int_equal(p.evict_bytes, 20 * MB);
  assert_true(p.evict_bytes < p.want_bytes);
  assert_int_equal(p.kept_bytes, 40 * MB + 3000);
  /* of which in flight or being read: kept only for now */
  assert_int_equal(p.held_bytes, 20 * MB);
  for (size_t i = 0; i < p.nevict; i++)
    assert_int_equal(gc_protected(&c[p.evict[i]]), 0);
  gc_plan_free(&p);
  assert_int_equal(gc_protected(&c[4]), GC_NEEDED);
  assert_int_equal(gc_protected(&c[5]), 0);
  assert_int_equal(gc_protected(&c[7]), GC_CONFIG);
}

static void test_order(void **state) {
  (void)state;
  struct gc_candidate c[] = {
      cand(1, 10 * MB, 50, 0, 0),            /* oldest, only copy */
      cand(2, 10 * MB, 300, 2, 0),           /* recent, two other holders */
      cand(3, 10 * MB, 100, 1, 0),           /* one other holder */
      cand(4, 10 * MB, 400, 0, GC_UNPACKED), /* newest, but unpacked: first */
      cand(5, 10 * MB, 80, 1, 0),            /* one holder, older than 3 */
      cand(6, 10 * MB, 10, 0, 0),            /* the least recently used of all */
  };
  struct gc_limits lim = {.store_max = 80 * MB};
  struct gc_usage use = {.store_bytes = 120 * MB, .free_bytes = 1000 * MB};
  struct gc_plan p;
  /* want 120 - 60 = 60 MB: everything, in order */
  assert_int_equal(gc_plan_make(c, 6, &lim, &use, false, &p), 0);
  size_t want[] = {3, 1, 4, 2, 5, 0};
  assert_int_equal(p.nevict, 6);
  for (size_t i = 0; i < 6; i++)
    assert_int_equal(p.evict[i], want[i]);
  gc_plan_free(&p);
  /* want 25 MB: the fewest in that order that cover it */
  use.store_bytes = 85 * MB;
  assert_int_equal(gc_plan_make(c, 6, &lim, &use, false, &p), 0);
  assert_int_equal(p.want_bytes, 25 * MB);
  assert_int_equal(p.nevict, 3);
  assert_int_equal(p.evict_bytes, 30 * MB);
  gc_plan_free(&p);
  /* under the high watermark: nothing, unless forced */
  use.store_bytes = 70 * MB;
  assert_int_equal(gc_plan_make(c, 6, &lim, &use, false, &p), 0);
  assert_int_equal(p.nevict, 0);
  gc_plan_free(&p);
  assert_int_equal(gc_plan_make(c, 6, &lim, &use, true, &p), 0);
  assert_int_equal(p.nevict, 1); /* 70 - 60 = 10 MB: the unpacked one */
  assert_int_equal(p.evict[0], 3);
  gc_plan_free(&p);
  /* without LRU ties: equal holders and access go by digest */
  struct gc_candidate t[] = {cand(9, MB, 5, 0, 0), cand(8, MB, 5, 0, 0)};
  use = (struct gc_usage){.store_bytes = 100 * MB, .free_bytes = 1000 * MB};
  assert_int_equal(gc_plan_make(t, 2, &lim, &use, false, &p), 0);
  assert_int_equal(p.evict[0], 1);
  gc_plan_free(&p);
  /* no candidates */
  assert_int_equal(gc_plan_make(NULL, 0, &lim, &use, false, &p), 0);
  assert_int_equal(p.nevict, 0);
  gc_plan_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_watermarks),
                                     cmocka_unit_test(test_protected),
                                     cmocka_unit_test(test_order)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
