/* Unit tests for store/prune: stale partials go by age and by count, a
 * partial being written never goes, other files in ingest/ are left alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/lib/testlib.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/prune.h"
#include "store/store.h"

static char root[64];

static void plant(const char *name, int64_t age_s) {
  char path[1024];
  snprintf(path, sizeof path, "%s/ingest/%s", root, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "abc", 3), 3);
  struct timespec t[2] = {{.tv_sec = time(NULL) - age_s}, {.tv_sec = time(NULL) - age_s}};
  assert_int_equal(futimens(fd, t), 0);
  close(fd);
}

static bool exists(const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/ingest/%s", root, name);
  return access(path, F_OK) == 0;
}

static const char *pname(int i) {
  static char buf[8][80];
  char *b = buf[i % 8];
  snprintf(b, 80, "%064x.partial", i + 1);
  return b;
}

static void test_prune(void **state) {
  (void)state;
  assert_int_equal(ep_test_tmpdir(root, sizeof root, "ep-test-prune-"), 0);
  store *s = NULL;
  assert_int_equal(store_open(root, &s, NULL), 0);
  plant(pname(0), 10);    /* young */
  plant(pname(1), 20);    /* young, older */
  plant(pname(2), 30);    /* young, oldest: over the count of 2 */
  plant(pname(3), 99999); /* too old */
  plant("notes.txt", 99999);
  /* a partial being written: an ingest holds its lock */
  digest_t d;
  memset(&d, 0, sizeof d);
  memset(d.hex, 'a', 64);
  store_ingest *in = NULL;
  assert_int_equal(store_ingest_begin(s, &d, &in, NULL), 0);
  unsigned gone = 0;
  assert_int_equal(store_prune_partials(s, 3600, 2, &gone, NULL), 0);
  /* the ingest's partial (the newest) counts as kept: with it, the youngest */
  assert_true(exists(pname(0)));
  assert_false(exists(pname(2)));
  assert_false(exists(pname(3)));
  assert_true(exists("notes.txt"));
  char busy[80];
  snprintf(busy, sizeof busy, "%.64s.partial", d.hex);
  assert_true(exists(busy));
  assert_false(exists(pname(1)));
  assert_int_equal(gone, 3);
  store_ingest_abort(in, false);
  assert_int_equal(ep_test_rm_rf(root), 0);
  store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_prune)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
