/* The pipe table: single flight per digest, and readers that follow a blob
 * while it is still being written.
 *
 * Why: one fetch per digest per node, however many clients ask for it, and
 * every client streams the bytes as soon as they are on local disk. The
 * pipe holds no data: readers pread() the partial file itself up to the
 * length the writer has published, so memory stays bounded by the readers'
 * own buffers whatever the blob size.
 *
 * Threads and locks:
 *  - the table's mutex guards the list of in-flight pipes, every pipe's
 *    reference count and its in_table flag, and the table's count of live
 *    pipes. Taking it for ref/unref is cheap: that happens per connection,
 *    not per chunk. Because a reference is only ever taken under this lock,
 *    a join can never revive a pipe whose last unref is freeing it.
 *  - each pipe's mutex guards its progress (fd, size, avail, state); its
 *    condition variable (CLOCK_MONOTONIC, so wall-clock jumps do not break
 *    timeouts) is broadcast on every change.
 *  - lock order: table, then pipe. The writer never holds a pipe lock while
 *    taking the table lock.
 *
 * Lifetime: the table holds no reference. pipe_finish() unlinks the pipe at
 * once, so the next join creates a new one (a refetch after a failure),
 * while readers that still hold the old pipe finish with it. The first
 * terminal state wins: a pipe failed by pipe_table_cancel_all() stays
 * failed even if its writer later reports success. Cancelled pipes stay in
 * the table until their writer finishes, so no second writer starts on the
 * same partial while the first is still inside it.
 *
 * Verified before durable: pipe_complete() ends a pipe with success as soon
 * as the writer has verified the digest, while the pipe stays in the table;
 * readers finish from the partial's fd (the same inode once renamed) and a
 * join meanwhile gets the complete pipe instead of a second writer. The
 * writer's pipe_finish() after fsync/rename/index only unlinks it.
 *
 * Two conditions: `cond` is broadcast on every change (each publish wakes
 * the readers that stream the bytes on), `end_cond` only when the pipe ends
 * or its writer finishes. A waiter that wants the end and not the bytes (a
 * deploy, which only counts them) sleeps on end_cond, so it is not woken
 * for every block of every blob it follows. */
#include "store/pipe.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

enum pipe_state { PIPE_RUNNING = 0, PIPE_ENDED_OK = 1, PIPE_ENDED_FAILED = 2 };

struct blob_pipe {
  pipe_table *t;
  digest_t d;
  /* guarded by t->lock */
  unsigned refs;
  bool in_table;
  blob_pipe *prev, *next;
  /* guarded by lock (fd is also atomic so pipe_fd() needs no lock) */
  pthread_mutex_t lock;
  pthread_cond_t cond;     /* any change: bytes, size, the end */
  pthread_cond_t end_cond; /* the end, or pipe_finish */
  atomic_int fd;
  bool size_known;
  uint64_t size;
  uint64_t avail;
  enum pipe_state state;
  int error;     /* the writer's EP_E* code once failed (0: none given) */
  bool finished; /* the writer called pipe_finish: done with the store */
};

struct pipe_table {
  pthread_mutex_t lock;
  blob_pipe *head;
  unsigned count; /* pipes in the list */
  unsigned live;  /* pipes not yet freed, in the list or not */
};

pipe_table *pipe_table_new(void) {
  pipe_table *t = calloc(1, sizeof *t);
  if (t == NULL)
    return NULL;
  if (pthread_mutex_init(&t->lock, NULL) != 0) {
    free(t);
    return NULL;
  }
  return t;
}

void pipe_table_free(pipe_table *t) {
  if (t == NULL)
    return;
  pthread_mutex_lock(&t->lock);
  unsigned live = t->live;
  pthread_mutex_unlock(&t->lock);
  if (live > 0) {
    /* Freeing would leave those pipes pointing at freed memory. */
    ep_log_err("pipe table freed with %u pipes still referenced; leaking it", live);
    return;
  }
  pthread_mutex_destroy(&t->lock);
  free(t);
}

static void unlink_locked(pipe_table *t, blob_pipe *p) {
  if (!p->in_table)
    return;
  if (p->prev != NULL)
    p->prev->next = p->next;
  else
    t->head = p->next;
  if (p->next != NULL)
    p->next->prev = p->prev;
  p->prev = p->next = NULL;
  p->in_table = false;
  t->count--;
}

static blob_pipe *find_locked(pipe_table *t, const digest_t *d) {
  for (blob_pipe *p = t->head; p != NULL; p = p->next)
    if (digest_equal(&p->d, d))
      return p;
  return NULL;
}

/* Wakes every waiter (lock held) after the pipe ended or its writer
 * finished: the readers on `cond` and those waiting only for the end. */
static void wake_end_locked(blob_pipe *p) {
  pthread_cond_broadcast(&p->cond);
  pthread_cond_broadcast(&p->end_cond);
}

static blob_pipe *pipe_new(pipe_table *t, const digest_t *d) {
  blob_pipe *p = calloc(1, sizeof *p);
  if (p == NULL)
    return NULL;
  if (ep_cond_init_mono(&p->cond) != 0) {
    free(p);
    return NULL;
  }
  if (ep_cond_init_mono(&p->end_cond) != 0) {
    pthread_cond_destroy(&p->cond);
    free(p);
    return NULL;
  }
  if (pthread_mutex_init(&p->lock, NULL) != 0) {
    pthread_cond_destroy(&p->end_cond);
    pthread_cond_destroy(&p->cond);
    free(p);
    return NULL;
  }
  p->t = t;
  p->d = *d;
  atomic_init(&p->fd, -1);
  return p;
}

static void pipe_destroy(blob_pipe *p) {
  int fd = atomic_load(&p->fd);
  if (fd >= 0)
    close(fd);
  pthread_cond_destroy(&p->end_cond);
  pthread_cond_destroy(&p->cond);
  pthread_mutex_destroy(&p->lock);
  free(p);
}

blob_pipe *pipe_table_join(pipe_table *t, const digest_t *d, bool *created) {
  pthread_mutex_lock(&t->lock);
  blob_pipe *p = find_locked(t, d);
  if (p != NULL) {
    p->refs++;
    *created = false;
  } else if ((p = pipe_new(t, d)) != NULL) {
    p->refs = 1;
    p->in_table = true;
    p->next = t->head;
    if (t->head != NULL)
      t->head->prev = p;
    t->head = p;
    t->count++;
    t->live++;
    *created = true;
  }
  pthread_mutex_unlock(&t->lock);
  return p;
}

blob_pipe *pipe_table_find(pipe_table *t, const digest_t *d) {
  pthread_mutex_lock(&t->lock);
  blob_pipe *p = find_locked(t, d);
  if (p != NULL)
    p->refs++;
  pthread_mutex_unlock(&t->lock);
  return p;
}

unsigned pipe_table_count(pipe_table *t) {
  pthread_mutex_lock(&t->lock);
  unsigned n = t->count;
  pthread_mutex_unlock(&t->lock);
  return n;
}

void pipe_table_cancel_all(pipe_table *t) {
  pthread_mutex_lock(&t->lock);
  for (blob_pipe *p = t->head; p != NULL; p = p->next) {
    pthread_mutex_lock(&p->lock);
    if (p->state == PIPE_RUNNING)
      p->state = PIPE_ENDED_FAILED;
    wake_end_locked(p);
    pthread_mutex_unlock(&p->lock);
  }
  pthread_mutex_unlock(&t->lock);
}

void pipe_ref(blob_pipe *p) {
  pthread_mutex_lock(&p->t->lock);
  p->refs++;
  pthread_mutex_unlock(&p->t->lock);
}

unsigned pipe_refs(blob_pipe *p) {
  pthread_mutex_lock(&p->t->lock);
  unsigned n = p->refs;
  pthread_mutex_unlock(&p->t->lock);
  return n;
}

void pipe_unref(blob_pipe *p) {
  if (p == NULL)
    return;
  pipe_table *t = p->t;
  pthread_mutex_lock(&t->lock);
  bool last = --p->refs == 0;
  if (last) {
    if (p->in_table)
      ep_log_warn("pipe sha256:%s released by everyone before its writer finished", p->d.hex);
    unlink_locked(t, p);
    t->live--;
  }
  pthread_mutex_unlock(&t->lock);
  if (last)
    pipe_destroy(p);
}

const digest_t *pipe_digest(const blob_pipe *p) {
  return &p->d;
}

void pipe_attach_fd(blob_pipe *p, int fd) {
  pthread_mutex_lock(&p->lock);
  bool taken = atomic_load(&p->fd) < 0;
  if (taken) {
    atomic_store(&p->fd, fd);
    pthread_cond_broadcast(&p->cond);
  }
  pthread_mutex_unlock(&p->lock);
  if (!taken) {
    /* Readers may be in pread() on the first fd: keep it, drop this one. */
    ep_log_warn("pipe sha256:%s: a read fd is already attached", p->d.hex);
    if (fd >= 0)
      close(fd);
  }
}

void pipe_set_size(blob_pipe *p, uint64_t total) {
  pthread_mutex_lock(&p->lock);
  if (p->state == PIPE_RUNNING && !p->size_known) {
    p->size_known = true;
    p->size = total;
    pthread_cond_broadcast(&p->cond);
  }
  pthread_mutex_unlock(&p->lock);
}

void pipe_publish(blob_pipe *p, uint64_t avail) {
  pthread_mutex_lock(&p->lock);
  /* Never backwards: readers may already have sent those bytes on. */
  if (p->state == PIPE_RUNNING && avail > p->avail) {
    p->avail = avail;
    pthread_cond_broadcast(&p->cond);
  }
  pthread_mutex_unlock(&p->lock);
}

void pipe_finish(blob_pipe *p, bool ok) {
  pthread_mutex_lock(&p->t->lock);
  unlink_locked(p->t, p);
  pthread_mutex_unlock(&p->t->lock);

  pthread_mutex_lock(&p->lock);
  p->finished = true;
  if (p->state == PIPE_RUNNING) {
    if (ok && p->avail > 0 && atomic_load(&p->fd) < 0) {
      ep_log_err("pipe sha256:%s finished with data but no read fd", p->d.hex);
      ok = false;
    }
    p->state = ok ? PIPE_ENDED_OK : PIPE_ENDED_FAILED;
    if (ok) {
      p->size_known = true;
      p->size = p->avail;
    }
  }
  wake_end_locked(p);
  pthread_mutex_unlock(&p->lock);
}

void pipe_complete(blob_pipe *p, uint64_t size) {
  pthread_mutex_lock(&p->lock);
  if (p->state == PIPE_RUNNING && atomic_load(&p->fd) >= 0) {
    p->avail = size > p->avail ? size : p->avail;
    p->size_known = true;
    p->size = p->avail;
    p->state = PIPE_ENDED_OK;
  }
  wake_end_locked(p);
  pthread_mutex_unlock(&p->lock);
}

void pipe_fail(blob_pipe *p, int code) {
  pthread_mutex_lock(&p->lock);
  if (p->state == PIPE_RUNNING)
    p->error = code;
  pthread_mutex_unlock(&p->lock);
  pipe_finish(p, false);
}

int pipe_error(blob_pipe *p) {
  pthread_mutex_lock(&p->lock);
  int e = p->state == PIPE_ENDED_FAILED ? p->error : 0;
  pthread_mutex_unlock(&p->lock);
  return e;
}

static void deadline_after(int timeout_ms, struct timespec *ts) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += timeout_ms / 1000;
  ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* Sleeps on the pipe's condition (lock held). Returns false once the
 * deadline has passed; the caller re-checks its condition either way. */
static bool sleep_on(blob_pipe *p, pthread_cond_t *c, int timeout_ms,
                     const struct timespec *deadline) {
  if (timeout_ms < 0) {
    pthread_cond_wait(c, &p->lock);
    return true;
  }
  if (timeout_ms == 0)
    return false;
  return pthread_cond_timedwait(c, &p->lock, deadline) != ETIMEDOUT;
}

static bool sleep_locked(blob_pipe *p, int timeout_ms, const struct timespec *deadline) {
  return sleep_on(p, &p->cond, timeout_ms, deadline);
}

int pipe_wait_size(blob_pipe *p, uint64_t *size, int timeout_ms) {
  struct timespec deadline;
  if (timeout_ms > 0)
    deadline_after(timeout_ms, &deadline);
  int r;
  bool waiting = true;
  pthread_mutex_lock(&p->lock);
  for (;;) {
    if (p->state == PIPE_ENDED_FAILED) {
      r = PIPE_FAILED;
    } else if (p->state == PIPE_ENDED_OK) {
      *size = p->avail;
      r = PIPE_DONE;
    } else if (p->size_known && atomic_load(&p->fd) >= 0) {
      *size = p->size;
      r = PIPE_MORE;
    } else if (!waiting) {
      r = PIPE_TIMEOUT;
    } else {
      waiting = sleep_locked(p, timeout_ms, &deadline);
      continue;
    }
    break;
  }
  pthread_mutex_unlock(&p->lock);
  return r;
}

int pipe_wait(blob_pipe *p, uint64_t have, uint64_t *avail, int timeout_ms) {
  struct timespec deadline;
  if (timeout_ms > 0)
    deadline_after(timeout_ms, &deadline);
  int r;
  bool waiting = true;
  pthread_mutex_lock(&p->lock);
  for (;;) {
    if (p->state == PIPE_ENDED_FAILED) {
      r = PIPE_FAILED;
    } else if (p->state == PIPE_ENDED_OK) {
      *avail = p->avail;
      r = PIPE_DONE;
    } else if (p->avail > have && atomic_load(&p->fd) >= 0) {
      *avail = p->avail;
      r = PIPE_MORE;
    } else if (!waiting) {
      r = PIPE_TIMEOUT;
    } else {
      waiting = sleep_locked(p, timeout_ms, &deadline);
      continue;
    }
    break;
  }
  pthread_mutex_unlock(&p->lock);
  return r;
}

int pipe_wait_end(blob_pipe *p, uint64_t *avail, int timeout_ms) {
  struct timespec deadline;
  if (timeout_ms > 0)
    deadline_after(timeout_ms, &deadline);
  bool waiting = true;
  pthread_mutex_lock(&p->lock);
  while (p->state == PIPE_RUNNING && waiting)
    waiting = sleep_on(p, &p->end_cond, timeout_ms, &deadline);
  int r = p->state == PIPE_ENDED_OK       ? PIPE_DONE
          : p->state == PIPE_ENDED_FAILED ? PIPE_FAILED
                                          : PIPE_TIMEOUT;
  *avail = p->avail;
  pthread_mutex_unlock(&p->lock);
  return r;
}

int pipe_wait_finished(blob_pipe *p, int timeout_ms) {
  struct timespec deadline;
  if (timeout_ms > 0)
    deadline_after(timeout_ms, &deadline);
  bool waiting = true;
  pthread_mutex_lock(&p->lock);
  while (!p->finished && waiting)
    waiting = sleep_on(p, &p->end_cond, timeout_ms, &deadline);
  int r = p->finished ? 0 : PIPE_TIMEOUT;
  pthread_mutex_unlock(&p->lock);
  return r;
}

int pipe_fd(const blob_pipe *p) {
  return atomic_load(&p->fd);
}

static bool pipe_failed(blob_pipe *p) {
  pthread_mutex_lock(&p->lock);
  bool failed = p->state == PIPE_ENDED_FAILED;
  pthread_mutex_unlock(&p->lock);
  return failed;
}

long pipe_read(blob_pipe *p, uint64_t off, void *buf, size_t len, int timeout_ms) {
  uint64_t avail = 0;
  int st = pipe_wait(p, off, &avail, timeout_ms);
  if (st == PIPE_FAILED || st == PIPE_TIMEOUT)
    return st;
  if (off >= avail)
    return 0; /* DONE, and nothing past the end */
  if (len == 0)
    return 0;
  uint64_t n = avail - off;
  if (n > len)
    n = len;
  if (n > LONG_MAX)
    n = LONG_MAX;
  if (off > (uint64_t)INT64_MAX)
    return PIPE_FAILED;
  int fd = atomic_load(&p->fd);
  if (fd < 0)
    return PIPE_FAILED;
  ssize_t got;
  do
    got = pread(fd, buf, (size_t)n, (off_t)off);
  while (got < 0 && errno == EINTR);
  if (got <= 0) {
    ep_log_err("pipe sha256:%s: reading at %llu of %llu published bytes failed", p->d.hex,
               (unsigned long long)off, (unsigned long long)avail);
    return PIPE_FAILED;
  }
  /* A writer that failed while we read: its bytes must not go on. */
  if (pipe_failed(p))
    return PIPE_FAILED;
  return (long)got;
}
