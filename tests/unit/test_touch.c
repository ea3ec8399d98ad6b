/* Unit tests of store/touch.c, the batched last-access writes of warm GETs:
 * a touch reaches the index at the latest when the batch is flushed or
 * freed, the later of two touches wins whatever their order, a blob deleted
 * meanwhile is passed over, and more distinct blobs than the pending set
 * holds are all recorded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "store/index.h"
#include "store/touch.h"
#include "tests/lib/testlib.h"

/* Long enough that the writer's timer never fires during a test: what is
 * asserted follows from flush and free alone. */
#define NEVER_MS (600 * 1000)

struct fix {
  char dir[64];
  index_db *idx;
};

static int setup(void **state) {
  struct fix *f = calloc(1, sizeof *f);
  char path[128];
  ep_err e = {0};
  if (f == NULL || ep_test_tmpdir(f->dir, sizeof f->dir, "ep-test-touch-") < 0)
    return -1;
  snprintf(path, sizeof path, "%s/index.db", f->dir);
  if (index_open(path, &f->idx, &e) < 0)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fix *f = *state;
  index_close(f->idx);
  int rc = ep_test_rm_rf(f->dir);
  free(f);
  return rc;
}

static digest_t dg(unsigned n) {
  digest_t d;
  snprintf(d.hex, sizeof d.hex, "%064x", n);
  return d;
}

static void put(index_db *idx, unsigned n, int64_t at) {
  struct index_blob b = {.digest = dg(n), .size = 1, .state = INDEX_BLOB_COMPLETE};
  b.created = b.last_access = at;
  ep_err e = {0};
  assert_int_equal(index_blob_put(idx, &b, &e), 0);
}

static int64_t last_access(index_db *idx, unsigned n) {
  struct index_blob b;
  digest_t d = dg(n);
  ep_err e = {0};
  assert_int_equal(index_blob_get(idx, &d, &b, &e), 1);
  return b.last_access;
}

static void test_flush_and_order(void **state) {
  struct fix *f = *state;
  put(f->idx, 1, 100);
  put(f->idx, 2, 100);
  touch_batch *t = NULL;
  ep_err e = {0};
  assert_int_equal(touch_batch_new(f->idx, NEVER_MS, &t, &e), 0);
  digest_t d1 = dg(1), d2 = dg(2), gone = dg(3);
  touch_batch_add(t, &d1, 500);
  touch_batch_add(t, &d1, 400); /* older: the later access stays */
  touch_batch_add(t, &gone, 700);
  assert_int_equal(last_access(f->idx, 1), 100); /* pending, not written */
  assert_int_equal(touch_batch_flush(t, &e), 0);
  assert_int_equal(last_access(f->idx, 1), 500);
  assert_int_equal(last_access(f->idx, 2), 100);
  touch_batch_add(t, &d2, 900);
  touch_batch_add(t, &d1, 300); /* never moves last_access back */
  touch_batch_free(t);          /* flushes what is pending */
  assert_int_equal(last_access(f->idx, 1), 500);
  assert_int_equal(last_access(f->idx, 2), 900);
}

static void test_more_than_the_set_holds(void **state) {
  struct fix *f = *state;
  enum { N = TOUCH_MAX * 2 + 3 };
  for (unsigned i = 0; i < N; i++)
    put(f->idx, i, 10);
  touch_batch *t = NULL;
  ep_err e = {0};
  assert_int_equal(touch_batch_new(f->idx, NEVER_MS, &t, &e), 0);
  for (unsigned i = 0; i < N; i++) {
    digest_t d = dg(i);
    touch_batch_add(t, &d, 1000 + i);
  }
  touch_batch_free(t);
  for (unsigned i = 0; i < N; i++)
    assert_int_equal(last_access(f->idx, i), 1000 + i);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_flush_and_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_more_than_the_set_holds, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
