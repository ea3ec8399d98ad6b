/* Unit tests for the fetch engine (plugin/fetch/fetch.h) on its own: no
 * daemon, no sources module. The engine takes its sources from the
 * pick_sources callback of its deps, which the test scripts; the sources
 * themselves are fakes (tests/lib/fake_registry.h) that the engine reaches
 * through the upstream client, as peers (the same blob route) or as the
 * upstream registry. The engine's sink is the store and the readers of its
 * pipe: the tests read the pipe as a client would and check the store.
 *
 * Shown here: a source dropping the connection mid-blob is resumed at that
 * offset from the next source; readers get every byte in order; bytes that
 * fail the digest are never committed, the readers are cut short and the
 * peer that sent them is blamed, and the next fetch is clean; any number
 * of readers share one fetch in flight (single flight); shutdown wakes the
 * readers of a fetch in flight and of one waiting for a source. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugin/fetch/fetch.h"
#include "tests/lib/fake_registry.h"
#include "tests/lib/stack.h"
#include "tests/lib/testlib.h"

#define BLOB_LEN (1024 * 1024 + 7)
#define REG "reg.test"
#define REPO "library/test"
#define NPEERS 3
#define READ_TIMEOUT_MS 30000
#define READERS 4

enum { P_CUT, P_GOOD, P_EVIL };
static const char *const peer_names[NPEERS] = {"p-cut", "p-good", "p-evil"};

struct fx {
  char dir[64];
  store *st;
  index_db *idx;
  upstream *up;
  pipe_table *pipes;
  fetcher *f;
  struct fake reg;
  struct fake peer[NPEERS];
  unsigned char *blob, *bad;
  digest_t dg;

  pthread_mutex_t mu; /* the scripted sources and what the engine reported */
  struct fetch_source src[FETCH_SOURCES_MAX];
  size_t nsrc;
  int picks;
  char blamed[8][64];
  int nblamed;
  int commits;
};

static int pick(void *ud, const digest_t *d, const char *exclude, struct fetch_source *out,
                size_t max) {
  (void)d, (void)exclude;
  struct fx *x = ud;
  pthread_mutex_lock(&x->mu);
  size_t n = x->nsrc < max ? x->nsrc : max;
  memcpy(out, x->src, n * sizeof *out);
  x->picks++;
  pthread_mutex_unlock(&x->mu);
  return (int)n;
}

static void blame(void *ud, const char *node, const digest_t *d, const char *why) {
  (void)d, (void)why;
  struct fx *x = ud;
  pthread_mutex_lock(&x->mu);
  if (x->nblamed < 8)
    snprintf(x->blamed[x->nblamed++], sizeof x->blamed[0], "%s", node);
  pthread_mutex_unlock(&x->mu);
}

static void committed(void *ud, const digest_t *d, uint64_t size) {
  struct fx *x = ud;
  pthread_mutex_lock(&x->mu);
  x->commits += digest_equal(d, &x->dg) && size == BLOB_LEN;
  pthread_mutex_unlock(&x->mu);
}

/* The sources the engine gets from now on: peers by index, -1 the upstream. */
static void set_sources(struct fx *x, const int *which, size_t n) {
  pthread_mutex_lock(&x->mu);
  x->nsrc = n;
  for (size_t i = 0; i < n; i++) {
    struct fetch_source *s = &x->src[i];
    memset(s, 0, sizeof *s);
    if (which[i] < 0) {
      s->kind = SRC_UPSTREAM;
      continue;
    }
    s->kind = SRC_PEER;
    snprintf(s->node, sizeof s->node, "%s", peer_names[which[i]]);
    snprintf(s->base_url, sizeof s->base_url, "http://127.0.0.1:%u", x->peer[which[i]].port);
  }
  pthread_mutex_unlock(&x->mu);
}

static int fx_open_fetcher_budget(struct fx *x, int source_wait_ms, int budget_ms) {
  struct fetcher_deps deps = {.st = x->st,
                              .idx = x->idx,
                              .up = x->up,
                              .pipes = x->pipes,
                              .on_commit = committed,
                              .on_commit_ud = x,
                              .pick_sources = pick,
                              .on_bad_source = blame,
                              .sources_ud = x,
                              .node_id = "n1",
                              .source_wait_ms = source_wait_ms,
                              .budget_ms = budget_ms};
  ep_err e = {0};
  return fetcher_new(&deps, &x->f, &e);
}

static int fx_open_fetcher(struct fx *x, int source_wait_ms) {
  return fx_open_fetcher_budget(x, source_wait_ms, 20000);
}

static void fake_init(struct fake *f, const unsigned char *blob) {
  f->blob = blob;
  f->blob_len = BLOB_LEN;
  f->honour_range = true;
}

static int setup(void **state) {
  struct fx *x = calloc(1, sizeof *x);
  if (x == NULL || ep_test_tmpdir(x->dir, sizeof x->dir, "ep-fetch-") < 0)
    return -1;
  pthread_mutex_init(&x->mu, NULL);
  x->blob = malloc(BLOB_LEN);
  x->bad = malloc(BLOB_LEN);
  for (size_t i = 0; i < BLOB_LEN; i++)
    x->blob[i] = (unsigned char)(i * 31 + i / 997);
  memcpy(x->bad, x->blob, BLOB_LEN);
  x->bad[BLOB_LEN / 2] ^= 0x20;
  digest_buffer(x->blob, BLOB_LEN, &x->dg);
  fake_init(&x->reg, x->blob);
  for (int i = 0; i < NPEERS; i++)
    fake_init(&x->peer[i], i == P_EVIL ? x->bad : x->blob);
  if (fake_start(&x->reg) < 0)
    return -1;
  for (int i = 0; i < NPEERS; i++)
    if (fake_start(&x->peer[i]) < 0)
      return -1;
  char path[128], url[64];
  ep_err e = {0};
  snprintf(path, sizeof path, "%s/index.db", x->dir);
  snprintf(url, sizeof url, "http://127.0.0.1:%u", x->reg.port);
  if (store_open(x->dir, &x->st, &e) < 0 || index_open(path, &x->idx, &e) < 0 ||
      upstream_new(&(struct upstream_options){0}, &x->up, &e) < 0 ||
      upstream_add_registry(x->up, REG, url, &e) < 0 || (x->pipes = pipe_table_new()) == NULL) {
    fprintf(stderr, "setup: %s\n", e.msg);
    return -1;
  }
  *state = x;
  return 0;
}

static int teardown(void **state) {
  struct fx *x = *state;
  fetcher_free(x->f);
  for (int i = 0; i < NPEERS; i++)
    fake_stop(&x->peer[i]);
  fake_stop(&x->reg);
  pipe_table_free(x->pipes);
  upstream_free(x->up);
  index_close(x->idx);
  store_close(x->st);
  assert_int_equal(ep_test_rm_rf(x->dir), 0);
  pthread_mutex_destroy(&x->mu);
  free(x->blob);
  free(x->bad);
  free(x);
  return 0;
}

/* Reads the pipe from byte 0 as a client would: the byte count once it is
 * complete, else the negative pipe status (*got: the bytes read before). */
static long read_all(blob_pipe *p, unsigned char *buf, size_t cap, size_t *got) {
  size_t off = 0;
  for (;;) {
    size_t want = cap - off < 65536 ? cap - off : 65536;
    long n = pipe_read(p, off, buf + off, want, READ_TIMEOUT_MS);
    if (got != NULL)
      *got = off;
    if (n == 0)
      return (long)off;
    if (n < 0)
      return n;
    off += (size_t)n;
    if (off > cap)
      return -100;
  }
}

static blob_pipe *open_blob(struct fx *x) {
  blob_pipe *p = NULL;
  ep_err e = {0};
  if (fetcher_open(x->f, REG, REPO, &x->dg, &p, &e) < 0)
    fail_msg("fetcher_open: %s", e.msg);
  return p;
}

/* Reads the whole blob through a new fetcher_open and checks every byte. */
static void expect_blob(struct fx *x) {
  unsigned char *buf = malloc(BLOB_LEN + 1);
  blob_pipe *p = open_blob(x);
  long n = read_all(p, buf, BLOB_LEN + 1, NULL);
  pipe_unref(p);
  assert_int_equal(n, BLOB_LEN);
  assert_memory_equal(buf, x->blob, BLOB_LEN);
  free(buf);
}

/* Until the fetch is committed (the pipe finishes after its readers saw
 * the last byte): the store and the index agree afterwards. */
static void wait_idle(struct fx *x) {
  assert_int_equal(ep_test_fetcher_idle(x->f, READ_TIMEOUT_MS), 0);
}

static void test_resume_from_next_source(void **state) {
  struct fx *x = *state;
  assert_int_equal(fx_open_fetcher(x, 200), 0);
  uint64_t cut = BLOB_LEN / 3;
  x->peer[P_CUT].cut_at = cut;
  x->peer[P_CUT].cuts = 1;
  set_sources(x, (int[]){P_CUT, P_GOOD}, 2);

  expect_blob(x);
  wait_idle(x);
  /* One request to each: the second resumed where the first stopped. */
  assert_int_equal(x->peer[P_CUT].blob_gets, 1);
  assert_int_equal(x->peer[P_GOOD].blob_gets, 1);
  char want[64];
  snprintf(want, sizeof want, "bytes=%llu-", (unsigned long long)cut);
  assert_string_equal(x->peer[P_GOOD].last_range, want);
  assert_int_equal(x->reg.blob_gets, 0);
  struct fetch_stats st;
  fetcher_stats(x->f, &st);
  assert_int_equal(st.peer_bytes, BLOB_LEN);
  assert_int_equal(st.upstream_bytes, 0);
  assert_int_equal(x->nblamed, 0); /* a dropped connection is no lie */
  assert_int_equal(x->commits, 1);
  uint64_t size = 0;
  ep_err e = {0};
  assert_int_equal(store_has(x->st, &x->dg, &size, &e), 1);
  assert_int_equal(size, BLOB_LEN);

  /* Committed: the next open is served from the store, no source asked. */
  expect_blob(x);
  unsigned long started = 0;
  fetcher_counts(x->f, NULL, &started);
  assert_int_equal(started, 1);
}

/* The upstream is a source like a peer: a cut there resumes from a peer,
 * and the bytes are counted by where they came from. */
static void test_resume_upstream_to_peer(void **state) {
  struct fx *x = *state;
  assert_int_equal(fx_open_fetcher(x, 200), 0);
  x->reg.cut_at = BLOB_LEN / 2;
  x->reg.cuts = 1;
  set_sources(x, (int[]){-1, P_GOOD}, 2);
  expect_blob(x);
  wait_idle(x);
  struct fetch_stats st;
  fetcher_stats(x->f, &st);
  assert_int_equal(st.upstream_bytes, BLOB_LEN / 2);
  assert_int_equal(st.peer_bytes, BLOB_LEN - BLOB_LEN / 2);
  assert_int_equal(x->reg.blob_gets, 1);
}

static void test_digest_mismatch(void **state) {
  struct fx *x = *state;
  assert_int_equal(fx_open_fetcher(x, 200), 0);
  set_sources(x, (int[]){P_EVIL}, 1);
  unsigned char *buf = malloc(BLOB_LEN + 1);
  blob_pipe *p = open_blob(x);
  size_t got = 0;
  long n = read_all(p, buf, BLOB_LEN + 1, &got);
  pipe_unref(p);
  /* Cut short: a reader never gets the last byte of a wrong blob. */
  assert_int_equal(n, PIPE_FAILED);
  assert_true(got < BLOB_LEN);
  wait_idle(x);
  ep_err e = {0};
  assert_int_equal(store_has(x->st, &x->dg, NULL, &e), 0);
  assert_int_equal(fetcher_last_error(x->f, &x->dg, &e), 1);
  assert_int_equal(e.code, EP_EDIGEST);
  assert_int_equal(x->nblamed, 1);
  assert_string_equal(x->blamed[0], "p-evil");
  assert_int_equal(x->commits, 0);

  /* The next request starts a clean fetch (the wrong partial is gone). */
  set_sources(x, (int[]){P_GOOD}, 1);
  expect_blob(x);
  wait_idle(x);
  char want[64] = "";
  assert_string_equal(x->peer[P_GOOD].last_range, want);
  assert_int_equal(store_has(x->st, &x->dg, NULL, &e), 1);
  assert_int_equal(x->commits, 1);
  free(buf);
}

struct reader {
  struct fx *x;
  blob_pipe *p;
  pthread_t tid;
  long n;
  size_t got;
  bool same;
};

static void *reader_main(void *arg) {
  struct reader *r = arg;
  unsigned char *buf = malloc(BLOB_LEN + 1);
  r->n = read_all(r->p, buf, BLOB_LEN + 1, &r->got);
  r->same = r->n == BLOB_LEN && memcmp(buf, r->x->blob, BLOB_LEN) == 0;
  pipe_unref(r->p);
  free(buf);
  return NULL;
}

static void test_concurrent_readers(void **state) {
  struct fx *x = *state;
  assert_int_equal(fx_open_fetcher(x, 200), 0);
  x->peer[P_GOOD].hold_at = BLOB_LEN / 2;
  set_sources(x, (int[]){P_GOOD}, 1);
  struct reader r[READERS];
  for (int i = 0; i < READERS; i++) {
    r[i] = (struct reader){.x = x, .p = open_blob(x)};
    assert_ptr_equal(r[i].p, r[0].p); /* one pipe: they joined the fetch */
    assert_int_equal(pthread_create(&r[i].tid, NULL, reader_main, &r[i]), 0);
  }
  /* The source is stopped half way: every reader is waiting on one fetch. */
  assert_int_equal(fake_wait_held(&x->peer[P_GOOD], 1, READ_TIMEOUT_MS), 0);
  unsigned in_flight = 0;
  unsigned long started = 0;
  fetcher_counts(x->f, &in_flight, &started);
  assert_int_equal(in_flight, 1);
  assert_int_equal(started, 1);
  /* A reader arriving now joins too, and starts from byte 0. */
  struct reader late = {.x = x, .p = open_blob(x)};
  assert_ptr_equal(late.p, r[0].p);
  assert_int_equal(pthread_create(&late.tid, NULL, reader_main, &late), 0);
  fake_release(&x->peer[P_GOOD]);
  for (int i = 0; i < READERS; i++) {
    pthread_join(r[i].tid, NULL);
    assert_int_equal(r[i].n, BLOB_LEN);
    assert_true(r[i].same);
  }
  pthread_join(late.tid, NULL);
  assert_true(late.same);
  wait_idle(x);
  assert_int_equal(x->peer[P_GOOD].blob_gets, 1);
  fetcher_counts(x->f, NULL, &started);
  assert_int_equal(started, 1);
}

static void test_shutdown_wakes_readers(void **state) {
  struct fx *x = *state;
  assert_int_equal(fx_open_fetcher(x, 200), 0);
  x->peer[P_GOOD].hold_at = BLOB_LEN / 2;
  set_sources(x, (int[]){P_GOOD}, 1);
  struct reader r = {.x = x, .p = open_blob(x)};
  assert_int_equal(pthread_create(&r.tid, NULL, reader_main, &r), 0);
  assert_int_equal(fake_wait_held(&x->peer[P_GOOD], 1, READ_TIMEOUT_MS), 0);
  fetcher_stop(x->f);
  pthread_join(r.tid, NULL); /* woken, not timed out */
  assert_int_equal(r.n, PIPE_FAILED);
  assert_true(r.got <= BLOB_LEN / 2);
  ep_err e = {0};
  blob_pipe *p = NULL;
  assert_true(fetcher_open(x->f, REG, REPO, &x->dg, &p, &e) < 0);
  assert_int_equal(e.code, EP_ECANCELED);
  /* fetcher_free (teardown) waits for the fetch thread: the transfer is
   * canceled although the source still holds its body. */
}

static void test_shutdown_while_waiting_for_a_source(void **state) {
  struct fx *x = *state;
  /* No source for a minute: the fetch waits for a parent to appear. */
  assert_int_equal(fx_open_fetcher(x, 60000), 0);
  set_sources(x, NULL, 0);
  struct reader r = {.x = x, .p = open_blob(x)};
  assert_int_equal(pthread_create(&r.tid, NULL, reader_main, &r), 0);
  for (int i = 0; i < 3000; i++) { /* until the engine asked for sources */
    pthread_mutex_lock(&x->mu);
    int picks = x->picks;
    pthread_mutex_unlock(&x->mu);
    if (picks > 0)
      break;
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  }
  fetcher_stop(x->f);
  pthread_join(r.tid, NULL);
  assert_int_equal(r.n, PIPE_FAILED);
  assert_int_equal(r.got, 0);
  fetcher_free(x->f); /* returns: the source wait ends on shutdown */
  x->f = NULL;
  ep_err e = {0};
  assert_int_equal(store_has(x->st, &x->dg, NULL, &e), 0);
}

/* No source at all (a node between parents, upstream not allowed): the
 * fetch fails once source_wait_ms has passed, and readers learn why. */
static void test_no_source(void **state) {
  struct fx *x = *state;
  assert_int_equal(fx_open_fetcher(x, 200), 0);
  set_sources(x, NULL, 0);
  unsigned char buf[16];
  blob_pipe *p = open_blob(x);
  assert_int_equal(read_all(p, buf, sizeof buf, NULL), PIPE_FAILED);
  assert_int_equal(pipe_error(p), EP_EUNREACH);
  pipe_unref(p);
  wait_idle(x);
  ep_err e = {0};
  assert_int_equal(fetcher_last_error(x->f, &x->dg, &e), 1);
  assert_int_equal(e.code, EP_EUNREACH);
}

/* A request that joins a fetch whose source is down gets the whole budget,
 * not what is left of it: a deploy that starts while an older fetch still
 * waits for its parent must not fail with that fetch a moment later. */
static void test_join_renews_budget(void **state) {
  struct fx *x = *state;
  const int budget = 3000;
  assert_int_equal(fx_open_fetcher_budget(x, 200, budget), 0);
  pthread_mutex_lock(&x->mu);
  x->nsrc = 1;
  x->src[0] = (struct fetch_source){.kind = SRC_PEER};
  snprintf(x->src[0].node, sizeof x->src[0].node, "%s", "gone");
  snprintf(x->src[0].base_url, sizeof x->src[0].base_url, "http://127.0.0.1:1"); /* refused */
  pthread_mutex_unlock(&x->mu);
  blob_pipe *first = open_blob(x);
  nanosleep(&(struct timespec){2, 0}, NULL); /* two thirds of the budget */
  blob_pipe *second = open_blob(x);
  assert_ptr_equal(first, second); /* joined the same fetch */
  /* Past the first request's budget, well within the second's. */
  nanosleep(&(struct timespec){1, 500 * 1000 * 1000}, NULL);
  uint64_t avail = 0;
  assert_int_equal(pipe_wait(second, 0, &avail, 0), PIPE_TIMEOUT); /* still running */
  unsigned char buf[16];
  assert_int_equal(read_all(second, buf, sizeof buf, NULL), PIPE_FAILED); /* it does end */
  pipe_unref(first);
  pipe_unref(second);
  wait_idle(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_resume_from_next_source, setup, teardown),
      cmocka_unit_test_setup_teardown(test_resume_upstream_to_peer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_digest_mismatch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_readers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shutdown_wakes_readers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shutdown_while_waiting_for_a_source, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_source, setup, teardown),
      cmocka_unit_test_setup_teardown(test_join_renews_budget, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
