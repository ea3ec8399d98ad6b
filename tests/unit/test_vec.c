/* Unit tests for common/vec and common/buf: growth, the configured bound,
 * overflow (SIZE_MAX counts and sizes), failure leaving the old data
 * intact, and the cleanup headers for jansson, libcurl and sqlite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/cleanup_curl.h"
#include "common/cleanup_json.h"
#include "common/cleanup_sqlite.h"
#include "common/err.h"
#include "common/vec.h"

struct item {
  uint64_t a, b;
};

static void test_vec_grow(void **state) {
  struct item *v = NULL;
  size_t n = 0, cap = 0;
  (void)state;
  for (size_t i = 0; i < 1000; i++) {
    assert_int_equal(ep_vec_reserve(&v, &cap, n + 1, 1000), 0);
    assert_true(cap >= n + 1 && cap <= 1000);
    v[n++] = (struct item){i, ~i};
  }
  assert_int_equal(cap, 1000); /* clamped to the bound, not doubled past it */
  for (size_t i = 0; i < n; i++)
    assert_true(v[i].a == i && v[i].b == ~i);
  /* the bound: nothing changes */
  struct item *before = v;
  assert_int_equal(ep_vec_reserve(&v, &cap, 1001, 1000), -EP_ETOOBIG);
  assert_ptr_equal(v, before);
  assert_int_equal(cap, 1000);
  /* a need already met allocates nothing */
  assert_int_equal(ep_vec_reserve(&v, &cap, 10, 1000), 0);
  assert_int_equal(ep_vec_reserve(&v, &cap, 0, 0), 0);
  free(v);
}

static void test_vec_first(void **state) {
  int *v = NULL;
  size_t cap = 0;
  (void)state;
  assert_int_equal(ep_vec_reserve(&v, &cap, 1, SIZE_MAX), 0);
  assert_int_equal(cap, EP_VEC_FIRST);
  assert_int_equal(ep_vec_reserve(&v, &cap, EP_VEC_FIRST + 1, SIZE_MAX), 0);
  assert_int_equal(cap, 2 * EP_VEC_FIRST);
  assert_int_equal(ep_vec_reserve(&v, &cap, 1000, SIZE_MAX), 0);
  assert_int_equal(cap, 1024);
  free(v);
  /* a bound below the first step */
  v = NULL;
  cap = 0;
  assert_int_equal(ep_vec_reserve(&v, &cap, 1, 3), 0);
  assert_int_equal(cap, 3);
  assert_int_equal(ep_vec_reserve(&v, &cap, 4, 3), -EP_ETOOBIG);
  free(v);
}

static void test_vec_overflow(void **state) {
  struct item *v = NULL;
  size_t cap = 0;
  (void)state;
  /* counts whose byte size wraps */
  assert_int_equal(ep_vec_reserve(&v, &cap, SIZE_MAX, SIZE_MAX), -EP_ETOOBIG);
  assert_int_equal(ep_vec_reserve(&v, &cap, SIZE_MAX / 16 + 1, SIZE_MAX), -EP_ETOOBIG);
  assert_int_equal(ep_vec_reserve(&v, &cap, SIZE_MAX / 2, SIZE_MAX), -EP_ETOOBIG);
  assert_null(v);
  assert_int_equal(cap, 0);
  /* (out of memory is not provoked: ASan aborts on an absurd allocation) */
  void *raw = NULL;
  assert_int_equal(ep_vec_reserve_(&raw, &cap, 1, 0, 10), -EP_ETOOBIG); /* size 0 */
}

static void test_buf(void **state) {
  ep_cleanup_buf struct ep_buf b = {0};
  (void)state;
  ep_buf_init(&b, 10);
  assert_null(b.data);
  assert_int_equal(ep_buf_append(&b, "hello", 5), 0);
  assert_string_equal(b.data, "hello");
  assert_int_equal(ep_buf_append(&b, "world", 5), 0);
  assert_int_equal(b.len, 10);
  assert_string_equal(b.data, "helloworld");
  assert_true(b.cap <= 11); /* max + NUL, however it grew */
  assert_int_equal(ep_buf_append(&b, "!", 1), -EP_ETOOBIG);
  assert_int_equal(b.len, 10);
  assert_int_equal(ep_buf_append(&b, "", 0), 0);
  assert_int_equal(ep_buf_append(&b, "x", SIZE_MAX), -EP_ETOOBIG);
  ep_buf_reset(&b);
  assert_int_equal(b.len, 0);
  assert_string_equal(b.data, "");
  assert_int_equal(b.max, 10);
  /* keep what fits, drop the rest */
  assert_int_equal(ep_buf_append_trunc(&b, "0123456", 7), 0);
  assert_false(b.truncated);
  assert_int_equal(ep_buf_append_trunc(&b, "789abc", 6), 0);
  assert_true(b.truncated);
  assert_string_equal(b.data, "0123456789");
  assert_int_equal(ep_buf_append_trunc(&b, "x", SIZE_MAX), 0);
  assert_int_equal(b.len, 10);
  size_t len = 0;
  char *s = ep_buf_steal(&b, &len);
  assert_string_equal(s, "0123456789");
  assert_int_equal(len, 10);
  free(s);
  assert_null(b.data);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.max, 10);
  /* stealing an empty buffer gives "" */
  s = ep_buf_steal(&b, &len);
  assert_string_equal(s, "");
  assert_int_equal(len, 0);
  free(s);
}

static void test_buf_big(void **state) {
  ep_cleanup_buf struct ep_buf b = {0};
  char chunk[1000];
  (void)state;
  memset(chunk, 'q', sizeof chunk);
  ep_buf_init(&b, 100000);
  for (int i = 0; i < 100; i++)
    assert_int_equal(ep_buf_append(&b, chunk, sizeof chunk), 0);
  assert_int_equal(b.len, 100000);
  assert_int_equal(b.cap, 100001);
  assert_int_equal(b.data[b.len], '\0');
  assert_int_equal(ep_buf_append(&b, chunk, 1), -EP_ETOOBIG);
  /* max 0 holds nothing; SIZE_MAX is clamped so max + 1 cannot wrap */
  struct ep_buf z;
  ep_buf_init(&z, 0);
  assert_int_equal(ep_buf_append(&z, "a", 1), -EP_ETOOBIG);
  assert_int_equal(ep_buf_append(&z, "", 0), 0);
  assert_string_equal(z.data, "");
  ep_buf_free(&z);
  ep_buf_init(&z, SIZE_MAX);
  assert_int_equal(ep_buf_append(&z, "ab", 2), 0);
  assert_int_equal(ep_buf_append(&z, "x", SIZE_MAX), -EP_ETOOBIG);
  assert_string_equal(z.data, "ab");
  ep_buf_free(&z);
  ep_buf_free(&z); /* twice is harmless */
}

/* The cleanup attributes release on scope exit (ASan reports a leak if not). */
static void test_cleanups(void **state) {
  (void)state;
  {
    ep_cleanup_json json_t *j = json_pack("{s:i}", "a", 1);
    assert_non_null(j);
    ep_cleanup_json json_t *none = NULL;
    (void)none;
  }
  {
    ep_cleanup_curl CURL *h = curl_easy_init();
    assert_non_null(h);
    ep_cleanup_curl_slist struct curl_slist *l = curl_slist_append(NULL, "X-A: 1");
    assert_non_null(l);
    ep_cleanup_curl CURL *none = NULL;
    (void)none;
  }
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
  {
    ep_cleanup_stmt sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT ?1", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int(st, 1, 7);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  }
  sqlite3_stmt *cached = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT ?1", -1, &cached, NULL), SQLITE_OK);
  {
    ep_cleanup_stmt_reset sqlite3_stmt *st = cached;
    sqlite3_bind_int(st, 1, 9);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  }
  assert_int_equal(sqlite3_stmt_busy(cached), 0); /* reset */
  assert_int_equal(sqlite3_step(cached), SQLITE_ROW);
  assert_int_equal(sqlite3_column_type(cached, 0), SQLITE_NULL); /* bindings cleared */
  sqlite3_finalize(cached);
  {
    ep_cleanup_stmt_reset sqlite3_stmt *none = NULL;
    (void)none;
  }
  /* every statement is finalized, so the close succeeds */
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vec_grow),     cmocka_unit_test(test_vec_first),
      cmocka_unit_test(test_vec_overflow), cmocka_unit_test(test_buf),
      cmocka_unit_test(test_buf_big),      cmocka_unit_test(test_cleanups),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
