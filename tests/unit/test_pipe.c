/* Unit tests for store/pipe: many readers following a writer through a real
 * file, a failing writer aborting every reader, late readers, single
 * flight under contention, cancel_all and timeouts.
 *
 * cmocka asserts must run on the main thread, so worker threads only record
 * what happened; main checks it after joining them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/ep_test.h"
#include "tests/lib/testlib.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/pipe.h"

#define BLOB_LEN (4 * 1024 * 1024 + 321)
#define NREADERS 8
#define NJOINERS 16
#define READ_TIMEOUT_MS 30000

struct fx {
  char dir[64];
  char path[128];
  unsigned char *blob;
  size_t len;
  digest_t d;
  pipe_table *t;
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -1;
  if (ep_test_tmpdir(f->dir, sizeof f->dir, "ep-test-pipe-") < 0)
    return -1;
  snprintf(f->path, sizeof f->path, "%s/blob.partial", f->dir);
  f->len = BLOB_LEN;
  f->blob = malloc(f->len);
  if (f->blob == NULL)
    return -1;
  uint64_t seed = 0x243f6a8885a308d3ULL;
  for (size_t i = 0; i < f->len; i++)
    f->blob[i] = (unsigned char)ep_test_xorshift(&seed);
  digest_buffer(f->blob, f->len, &f->d);
  f->t = pipe_table_new();
  if (f->t == NULL)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  assert_int_equal(pipe_table_count(f->t), 0);
  pipe_table_free(f->t);
  ep_test_rm_rf(f->dir);
  free(f->blob);
  free(f);
  return 0;
}

static void sleep_ms(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- writer ---- */

struct writer {
  struct fx *f;
  blob_pipe *p; /* the writer's reference, dropped at the end */
  pthread_barrier_t *start;
  size_t stop_at; /* bytes written before finishing */
  bool ok;
  uint64_t seed;
  int error; /* errno-ish, 0 when all writes landed */
};

static void *writer_main(void *arg) {
  struct writer *w = arg;
  struct fx *f = w->f;
  if (w->start != NULL)
    pthread_barrier_wait(w->start);
  int wfd = open(f->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int rfd = open(f->path, O_RDONLY | O_CLOEXEC);
  if (wfd < 0 || rfd < 0) {
    w->error = 1;
    pipe_finish(w->p, false);
    pipe_unref(w->p);
    return NULL;
  }
  pipe_attach_fd(w->p, rfd);
  pipe_set_size(w->p, f->len);
  size_t off = 0;
  unsigned chunks = 0;
  while (off < w->stop_at) {
    size_t n = 1 + (size_t)(ep_test_xorshift(&w->seed) % (64 * 1024));
    if (n > w->stop_at - off)
      n = w->stop_at - off;
    if (pwrite(wfd, f->blob + off, n, (off_t)off) != (ssize_t)n) {
      w->error = 2;
      break;
    }
    off += n;
    pipe_publish(w->p, off);
    if (++chunks % 8 == 0)
      sleep_ms(1); /* let readers catch up and wait again */
    else
      sched_yield();
  }
  close(wfd);
  pipe_finish(w->p, w->ok && w->error == 0);
  pipe_unref(w->p);
  return NULL;
}

/* ---- readers ---- */

struct reader {
  pipe_table *t;
  const digest_t *d;
  blob_pipe *p; /* NULL: join in the thread */
  pthread_barrier_t *start;
  uint64_t seed;
  bool joined_created; /* must stay false */
  bool join_failed;
  long result; /* 0 when the blob ended, else the negative status */
  uint64_t bytes;
  digest_t got;
};

static void *reader_main(void *arg) {
  struct reader *r = arg;
  blob_pipe *p = r->p;
  if (p == NULL) {
    bool created = false;
    p = pipe_table_join(r->t, r->d, &created);
    r->join_failed = p == NULL;
    r->joined_created = created;
  }
  if (r->start != NULL)
    pthread_barrier_wait(r->start);
  if (p == NULL)
    return NULL;
  digest_ctx *c = digest_ctx_new();
  unsigned char buf[4096];
  for (;;) {
    size_t want = 1 + (size_t)(ep_test_xorshift(&r->seed) % sizeof buf);
    long n = pipe_read(p, r->bytes, buf, want, READ_TIMEOUT_MS);
    if (n <= 0) {
      r->result = n;
      break;
    }
    if (c != NULL)
      digest_ctx_update(c, buf, (size_t)n);
    r->bytes += (uint64_t)n;
  }
  if (c != NULL)
    digest_ctx_final(c, &r->got);
  digest_ctx_free(c);
  pipe_unref(p);
  return NULL;
}

/* Starts a writer and NREADERS readers that all join before it writes. */
static void run_stream(struct fx *f, size_t stop_at, bool ok, struct reader *rd) {
  bool created = false;
  blob_pipe *p = pipe_table_join(f->t, &f->d, &created);
  assert_non_null(p);
  assert_true(created);
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, NREADERS + 1);
  struct writer w = {.f = f, .p = p, .start = &start, .stop_at = stop_at, .ok = ok, .seed = 77};
  pthread_t rt[NREADERS], wt;
  for (int i = 0; i < NREADERS; i++) {
    rd[i] = (struct reader){.t = f->t, .d = &f->d, .start = &start, .seed = 1000u + (unsigned)i};
    assert_int_equal(pthread_create(&rt[i], NULL, reader_main, &rd[i]), 0);
  }
  assert_int_equal(pthread_create(&wt, NULL, writer_main, &w), 0);
  for (int i = 0; i < NREADERS; i++)
    pthread_join(rt[i], NULL);
  pthread_join(wt, NULL);
  pthread_barrier_destroy(&start);
  assert_int_equal(w.error, 0);
  for (int i = 0; i < NREADERS; i++) {
    assert_false(rd[i].join_failed);
    assert_false(rd[i].joined_created);
  }
  assert_int_equal(pipe_table_count(f->t), 0);
}

static void test_readers_follow_writer(void **state) {
  struct fx *f = *state;
  struct reader rd[NREADERS];
  run_stream(f, f->len, true, rd);
  for (int i = 0; i < NREADERS; i++) {
    assert_int_equal(rd[i].result, 0);
    assert_int_equal(rd[i].bytes, f->len);
    assert_string_equal(rd[i].got.hex, f->d.hex);
  }
}

static void test_failing_writer_aborts_readers(void **state) {
  struct fx *f = *state;
  struct reader rd[NREADERS];
  run_stream(f, f->len / 2, false, rd);
  for (int i = 0; i < NREADERS; i++) {
    assert_int_equal(rd[i].result, PIPE_FAILED);
    assert_true(rd[i].bytes <= f->len / 2);
  }
}

static void test_reader_after_done(void **state) {
  struct fx *f = *state;
  bool created = false;
  blob_pipe *p = pipe_table_join(f->t, &f->d, &created);
  assert_true(created);
  pipe_ref(p); /* ours, kept across the finish */
  struct writer w = {.f = f, .p = p, .stop_at = f->len, .ok = true, .seed = 5};
  writer_main(&w);
  assert_int_equal(w.error, 0);
  assert_int_equal(pipe_table_count(f->t), 0);
  assert_null(pipe_table_find(f->t, &f->d));

  uint64_t size = 0, avail = 0;
  assert_int_equal(pipe_wait_size(p, &size, 0), PIPE_DONE);
  assert_int_equal(size, f->len);
  assert_int_equal(pipe_wait(p, f->len, &avail, 0), PIPE_DONE);
  assert_int_equal(avail, f->len);
  assert_true(pipe_fd(p) >= 0);
  struct reader r = {.p = p, .seed = 3};
  pipe_ref(p); /* the reader drops one */
  reader_main(&r);
  assert_int_equal(r.result, 0);
  assert_int_equal(r.bytes, f->len);
  assert_string_equal(r.got.hex, f->d.hex);
  char b[16];
  assert_int_equal(pipe_read(p, f->len, b, sizeof b, 0), 0);
  assert_int_equal(pipe_read(p, f->len + 100, b, sizeof b, 0), 0);
  assert_int_equal(pipe_read(p, f->len - 3, b, sizeof b, 0), 3);
  assert_memory_equal(b, f->blob + f->len - 3, 3);

  /* The finished pipe left the table: the next join starts afresh. */
  blob_pipe *again = pipe_table_join(f->t, &f->d, &created);
  assert_true(created);
  assert_ptr_not_equal(again, p);
  pipe_finish(again, false);
  pipe_unref(again);
  pipe_unref(p);
}

struct joiner {
  pipe_table *t;
  const digest_t *d;
  pthread_barrier_t *start;
  blob_pipe *p;
  bool created;
};

static void *joiner_main(void *arg) {
  struct joiner *j = arg;
  pthread_barrier_wait(j->start);
  j->p = pipe_table_join(j->t, j->d, &j->created);
  return NULL;
}

static void test_single_flight(void **state) {
  struct fx *f = *state;
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, NJOINERS);
  struct joiner j[NJOINERS];
  pthread_t th[NJOINERS];
  for (int i = 0; i < NJOINERS; i++) {
    j[i] = (struct joiner){.t = f->t, .d = &f->d, .start = &start};
    assert_int_equal(pthread_create(&th[i], NULL, joiner_main, &j[i]), 0);
  }
  int creators = 0;
  for (int i = 0; i < NJOINERS; i++) {
    pthread_join(th[i], NULL);
    assert_non_null(j[i].p);
    assert_ptr_equal(j[i].p, j[0].p);
    creators += j[i].created;
  }
  pthread_barrier_destroy(&start);
  assert_int_equal(creators, 1);
  assert_int_equal(pipe_table_count(f->t), 1);
  blob_pipe *p = j[0].p;
  assert_true(digest_equal(pipe_digest(p), &f->d));
  blob_pipe *found = pipe_table_find(f->t, &f->d);
  assert_ptr_equal(found, p);
  pipe_unref(found);
  digest_t other;
  digest_buffer("other", 5, &other);
  assert_null(pipe_table_find(f->t, &other));

  pipe_finish(p, false);
  assert_int_equal(pipe_table_count(f->t), 0);
  bool created = false;
  blob_pipe *fresh = pipe_table_join(f->t, &f->d, &created);
  assert_true(created);
  assert_ptr_not_equal(fresh, p);
  uint64_t avail;
  assert_int_equal(pipe_wait(p, 0, &avail, 0), PIPE_FAILED);
  assert_int_equal(pipe_wait(fresh, 0, &avail, 0), PIPE_TIMEOUT);
  pipe_finish(fresh, false);
  pipe_unref(fresh);
  for (int i = 0; i < NJOINERS; i++)
    pipe_unref(j[i].p);
}

struct waiter {
  blob_pipe *p;
  bool size_only;
  long result;
};

static void *waiter_main(void *arg) {
  struct waiter *w = arg;
  if (w->size_only) {
    uint64_t size;
    w->result = pipe_wait_size(w->p, &size, -1);
  } else {
    char b[64];
    w->result = pipe_read(w->p, 0, b, sizeof b, -1);
  }
  return NULL;
}

static void test_cancel_all(void **state) {
  struct fx *f = *state;
  bool created = false;
  blob_pipe *p = pipe_table_join(f->t, &f->d, &created);
  digest_t d2;
  digest_buffer("second", 6, &d2);
  blob_pipe *p2 = pipe_table_join(f->t, &d2, &created);
  assert_int_equal(pipe_table_count(f->t), 2);
  struct waiter w[5];
  pthread_t th[5];
  for (int i = 0; i < 5; i++) {
    w[i] = (struct waiter){.p = i % 2 ? p2 : p, .size_only = i == 4, .result = 12345};
    pipe_ref(w[i].p);
    assert_int_equal(pthread_create(&th[i], NULL, waiter_main, &w[i]), 0);
  }
  sleep_ms(50); /* let them block (no timeout: only the cancel ends them) */
  pipe_table_cancel_all(f->t);
  for (int i = 0; i < 5; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].result, PIPE_FAILED);
    pipe_unref(w[i].p);
  }
  /* Cancelled stays failed, whatever the writer reports afterwards. */
  pipe_publish(p, 10);
  pipe_finish(p, true);
  uint64_t v;
  assert_int_equal(pipe_wait(p, 0, &v, 0), PIPE_FAILED);
  assert_int_equal(pipe_wait_size(p, &v, 0), PIPE_FAILED);
  pipe_finish(p2, false);
  assert_int_equal(pipe_table_count(f->t), 0);
  pipe_unref(p);
  pipe_unref(p2);
}

static long elapsed_ms(const struct timespec *a) {
  struct timespec b;
  clock_gettime(CLOCK_MONOTONIC, &b);
  return (b.tv_sec - a->tv_sec) * 1000L + (b.tv_nsec - a->tv_nsec) / 1000000L;
}

static void test_wait_and_timeouts(void **state) {
  struct fx *f = *state;
  bool created = false;
  blob_pipe *p = pipe_table_join(f->t, &f->d, &created);
  assert_true(created);
  uint64_t v = 0;
  char b[32];
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  assert_int_equal(pipe_wait(p, 0, &v, 60), PIPE_TIMEOUT);
  assert_true(elapsed_ms(&t0) >= 55);
  assert_int_equal(pipe_wait_size(p, &v, 20), PIPE_TIMEOUT);
  assert_int_equal(pipe_read(p, 0, b, sizeof b, 0), PIPE_TIMEOUT);

  int wfd = open(f->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true(wfd >= 0);
  assert_int_equal(pwrite(wfd, f->blob, 10, 0), 10);
  pipe_publish(p, 10); /* no fd yet: readers cannot read, so not MORE */
  assert_int_equal(pipe_wait(p, 0, &v, 0), PIPE_TIMEOUT);
  pipe_attach_fd(p, open(f->path, O_RDONLY | O_CLOEXEC));
  pipe_attach_fd(p, open(f->path, O_RDONLY | O_CLOEXEC)); /* second: dropped */
  assert_int_equal(pipe_wait(p, 0, &v, 0), PIPE_MORE);
  assert_int_equal(v, 10);
  assert_int_equal(pipe_wait(p, 10, &v, 0), PIPE_TIMEOUT);
  assert_int_equal(pipe_wait_size(p, &v, 0), PIPE_TIMEOUT); /* size unknown */
  pipe_set_size(p, 20);
  assert_int_equal(pipe_wait_size(p, &v, 0), PIPE_MORE);
  assert_int_equal(v, 20);
  pipe_publish(p, 5); /* never backwards */
  assert_int_equal(pipe_wait(p, 0, &v, 0), PIPE_MORE);
  assert_int_equal(v, 10);
  assert_int_equal(pipe_read(p, 4, b, sizeof b, 0), 6);
  assert_memory_equal(b, f->blob + 4, 6);
  assert_int_equal(pipe_read(p, 10, b, sizeof b, 10), PIPE_TIMEOUT);
  assert_int_equal(pwrite(wfd, f->blob + 10, 10, 10), 10);
  close(wfd);
  pipe_publish(p, 20);
  pipe_finish(p, true);
  assert_int_equal(pipe_read(p, 10, b, sizeof b, 0), 10);
  assert_memory_equal(b, f->blob + 10, 10);
  assert_int_equal(pipe_read(p, 20, b, sizeof b, 0), 0);
  pipe_unref(p);

  /* A writer that drops its last reference without finishing leaves no
   * stale entry behind. */
  p = pipe_table_join(f->t, &f->d, &created);
  assert_true(created);
  pipe_unref(p);
  assert_int_equal(pipe_table_count(f->t), 0);
  pipe_unref(NULL);
}

/* A new pipe whose file already holds the whole blob, its fd attached;
 * nothing published yet. */
static blob_pipe *join_whole_blob(struct fx *f) {
  bool created = false;
  blob_pipe *p = pipe_table_join(f->t, &f->d, &created);
  assert_true(created);
  int fd = open(f->path, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, f->blob, f->len, 0), (ssize_t)f->len);
  pipe_attach_fd(p, fd);
  return p;
}

/* Verified is enough: pipe_complete gives readers the last byte and DONE
 * while the pipe stays in the table (a join gets it, no second writer);
 * pipe_finish afterwards only unlinks it and wakes pipe_wait_finished. A
 * failure reason given with pipe_fail reaches readers through pipe_error. */
static void test_complete_before_durable(void **state) {
  struct fx *f = *state;
  bool created = false;
  blob_pipe *p = join_whole_blob(f);
  pipe_set_size(p, f->len);
  pipe_publish(p, f->len - 1);
  assert_int_equal(pipe_wait_finished(p, 0), PIPE_TIMEOUT);
  pipe_complete(p, f->len);
  uint64_t avail = 0;
  assert_int_equal(pipe_wait(p, 0, &avail, 0), PIPE_DONE);
  assert_int_equal(avail, f->len);
  blob_pipe *again = pipe_table_join(f->t, &f->d, &created);
  assert_false(created);
  assert_ptr_equal(again, p);
  unsigned char last = 0;
  assert_int_equal(pipe_read(again, f->len - 1, &last, 1, 0), 1);
  assert_int_equal(last, f->blob[f->len - 1]);
  pipe_unref(again);
  assert_int_equal(pipe_table_count(f->t), 1);
  pipe_fail(p, EP_EIO); /* the commit failed afterwards: readers keep DONE */
  assert_int_equal(pipe_wait_finished(p, 0), 0);
  assert_int_equal(pipe_table_count(f->t), 0);
  assert_int_equal(pipe_wait(p, 0, &avail, 0), PIPE_DONE);
  assert_int_equal(pipe_error(p), 0);
  pipe_unref(p);

  p = pipe_table_join(f->t, &f->d, &created);
  assert_true(created);
  assert_int_equal(pipe_error(p), 0);
  pipe_fail(p, EP_ENOSPC);
  assert_int_equal(pipe_wait(p, 0, &avail, 0), PIPE_FAILED);
  assert_int_equal(pipe_error(p), EP_ENOSPC);
  pipe_unref(p);
}

struct end_waiter {
  blob_pipe *p;
  uint64_t avail;
  int r;
  atomic_bool returned;
};

static void *end_waiter_main(void *ud) {
  struct end_waiter *w = ud;
  w->r = pipe_wait_end(w->p, &w->avail, -1);
  atomic_store(&w->returned, true);
  return NULL;
}

/* pipe_wait_end (a deploy following a fetch): publishes and the size do
 * not end its wait (pipe_wait would return at the first of them), a timeout
 * gives the progress, and the end wakes it: verified (DONE), failed or
 * cancelled (FAILED). */
static void test_wait_end(void **state) {
  struct fx *f = *state;
  bool created = false;
  blob_pipe *p = join_whole_blob(f);
  pipe_publish(p, 10);
  uint64_t avail = 0;
  assert_int_equal(pipe_wait_end(p, &avail, 0), PIPE_TIMEOUT);
  assert_int_equal(avail, 10);

  struct end_waiter w = {.p = p};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, end_waiter_main, &w), 0);
  usleep(20 * 1000); /* let it sleep first, so the publishes reach a waiter */
  for (uint64_t off = 4096; off < f->len; off += 65536)
    pipe_publish(p, off);
  pipe_set_size(p, f->len);
  usleep(50 * 1000);
  bool early = atomic_load(&w.returned);
  pipe_complete(p, f->len);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_false(early);
  assert_int_equal(w.r, PIPE_DONE);
  assert_int_equal(w.avail, f->len);
  pipe_finish(p, true);
  pipe_unref(p);

  /* Failed, and cancelled while waiting. */
  p = pipe_table_join(f->t, &f->d, &created);
  assert_true(created);
  pipe_fail(p, EP_EIO);
  assert_int_equal(pipe_wait_end(p, &avail, 0), PIPE_FAILED);
  pipe_unref(p);
  p = pipe_table_join(f->t, &f->d, &created);
  assert_true(created);
  struct end_waiter c = {.p = p};
  assert_int_equal(pthread_create(&th, NULL, end_waiter_main, &c), 0);
  usleep(20 * 1000);
  pipe_table_cancel_all(f->t);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(c.r, PIPE_FAILED);
  pipe_finish(p, false);
  pipe_unref(p);
  assert_int_equal(pipe_table_count(f->t), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_wait_end, setup, teardown),
      cmocka_unit_test_setup_teardown(test_readers_follow_writer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failing_writer_aborts_readers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reader_after_done, setup, teardown),
      cmocka_unit_test_setup_teardown(test_single_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_all, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wait_and_timeouts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_complete_before_durable, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
