/* The fetch engine.
 *
 * fetcher_open() joins the pipe of a digest in the pipe table; the caller
 * that creates it starts a detached fetch thread that owns the writer side:
 *
 *   store_ingest_begin (resumes a partial left by a crash or a failed try)
 *   -> attach a reader fd on the partial to the pipe, publish what is there
 *   -> upstream_blob_get from the current offset (Range), each chunk written,
 *      hashed and published to the pipe as it arrives
 *   -> on a transfer error, retry from the new offset (up to max_attempts)
 *   -> store_ingest_commit verifies the digest; pipe_finish(ok) wakes readers.
 *
 * A source that ignores our Range and sends the blob from byte 0 does not
 * make the pipe go backwards: the bytes we already hold are skipped as they
 * arrive (the final digest check still covers every byte on disk).
 *
 * Threads: the job struct belongs to its fetch thread. The fetcher's mutex
 * guards the thread count (fetcher_free waits on `idle` for it to reach 0)
 * and the small ring of recent failures. `stopping` is atomic so data
 * callbacks can abort a transfer without taking the lock. */
#include "plugin/fetch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

#define FETCH_FAILURES 64

struct fetch_failure {
  digest_t digest;
  ep_err err;
};

struct fetcher {
  struct fetcher_deps deps;
  atomic_bool stopping;
  pthread_mutex_t lock;
  pthread_cond_t idle;
  unsigned running;
  unsigned long started;
  struct fetch_failure failures[FETCH_FAILURES];
  unsigned next_failure;
};

struct fetch_job {
  fetcher *f;
  blob_pipe *pipe;
  digest_t digest;
  char host[256];
  char repo[256];
  store_ingest *in;
  uint64_t total;
  uint64_t skip;      /* bytes of a 200 answer we already hold */
  uint64_t committed; /* size of the blob once committed */
  ep_err err;
};

int fetcher_new(const struct fetcher_deps *deps, fetcher **out, ep_err *err) {
  fetcher *f = calloc(1, sizeof *f);
  if (f == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  f->deps = *deps;
  if (f->deps.max_attempts <= 0)
    f->deps.max_attempts = 4;
  pthread_mutex_init(&f->lock, NULL);
  pthread_cond_init(&f->idle, NULL);
  atomic_init(&f->stopping, false);
  *out = f;
  return 0;
}

void fetcher_stop(fetcher *f) {
  atomic_store(&f->stopping, true);
  upstream_cancel_all(f->deps.up);
  pipe_table_cancel_all(f->deps.pipes);
}

void fetcher_free(fetcher *f) {
  if (f == NULL)
    return;
  fetcher_stop(f);
  pthread_mutex_lock(&f->lock);
  while (f->running > 0)
    pthread_cond_wait(&f->idle, &f->lock);
  pthread_mutex_unlock(&f->lock);
  pthread_cond_destroy(&f->idle);
  pthread_mutex_destroy(&f->lock);
  free(f);
}

static void record_failure(fetcher *f, const digest_t *d, const ep_err *e) {
  pthread_mutex_lock(&f->lock);
  struct fetch_failure *slot = &f->failures[f->next_failure++ % FETCH_FAILURES];
  slot->digest = *d;
  slot->err = *e;
  pthread_mutex_unlock(&f->lock);
}

int fetcher_last_error(fetcher *f, const digest_t *d, ep_err *out) {
  int found = 0;
  pthread_mutex_lock(&f->lock);
  for (unsigned i = 0; i < FETCH_FAILURES && i < f->next_failure; i++) {
    unsigned k = (f->next_failure - 1 - i) % FETCH_FAILURES;
    if (digest_equal(&f->failures[k].digest, d)) {
      *out = f->failures[k].err;
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&f->lock);
  return found;
}

void fetcher_counts(fetcher *f, unsigned *in_flight, unsigned long *started) {
  pthread_mutex_lock(&f->lock);
  if (in_flight)
    *in_flight = f->running;
  if (started)
    *started = f->started;
  pthread_mutex_unlock(&f->lock);
}

static int on_start(void *ud, uint64_t offset, uint64_t total) {
  struct fetch_job *j = ud;
  uint64_t have = store_ingest_offset(j->in);
  if (offset > have)
    return ep_error(&j->err, EP_EUPSTREAM, "upstream resumed at %llu, we hold %llu",
                    (unsigned long long)offset, (unsigned long long)have);
  if (total > 0 && j->total > 0 && total != j->total)
    return ep_error(&j->err, EP_EUPSTREAM, "upstream size changed from %llu to %llu",
                    (unsigned long long)j->total, (unsigned long long)total);
  if (total > 0 && total < have)
    return ep_error(&j->err, EP_EUPSTREAM, "upstream blob is %llu bytes, we already hold %llu",
                    (unsigned long long)total, (unsigned long long)have);
  j->skip = have - offset;
  if (offset > 0)
    ep_log_info("fetch %s: resuming at offset %llu from %s", j->digest.hex,
                (unsigned long long)offset, j->host);
  else if (j->skip > 0)
    ep_log_info("fetch %s: %s ignored the range, skipping %llu bytes we hold", j->digest.hex,
                j->host, (unsigned long long)j->skip);
  if (total > 0 && j->total == 0) {
    j->total = total;
    pipe_set_size(j->pipe, total);
  }
  return 0;
}

/* Readers may have every byte but the last before the digest is checked:
 * holding the last one back until commit means a reader can never finish a
 * blob that then turns out wrong; its connection is cut one byte short. */
static uint64_t publishable(const struct fetch_job *j) {
  uint64_t have = store_ingest_offset(j->in);
  bool may_be_last = j->total == 0 || have >= j->total;
  return may_be_last && have > 0 ? have - 1 : have;
}

static int on_data(void *ud, const void *buf, size_t len) {
  struct fetch_job *j = ud;
  if (atomic_load(&j->f->stopping))
    return ep_error(&j->err, EP_ECANCELED, "shutting down");
  if (j->skip > 0) {
    size_t n = len < j->skip ? len : (size_t)j->skip;
    j->skip -= n;
    buf = (const char *)buf + n;
    len -= n;
    if (len == 0)
      return 0;
  }
  if (j->total > 0 && store_ingest_offset(j->in) + len > j->total)
    return ep_error(&j->err, EP_EUPSTREAM, "upstream sent more than the %llu bytes announced",
                    (unsigned long long)j->total);
  if (store_ingest_write(j->in, buf, len, &j->err) < 0)
    return -1;
  pipe_publish(j->pipe, publishable(j));
  return 0;
}

static bool retryable(int code) {
  return code == EP_EUNREACH || code == EP_EUPSTREAM || code == EP_EIO;
}

/* Transfers until the ingest holds the whole blob. */
static int fetch_transfer(struct fetch_job *j) {
  fetcher *f = j->f;
  struct upstream_blob_sink sink = {.on_start = on_start, .on_data = on_data, .ud = j};
  for (int attempt = 1;; attempt++) {
    ep_err e = {0};
    ep_err_clear(&j->err);
    uint64_t off = store_ingest_offset(j->in);
    if (j->total > 0 && off == j->total)
      return 0;
    int r = upstream_blob_get(f->deps.up, j->host, j->repo, &j->digest, off, &sink, &e);
    if (r == -EP_ERANGE && off > 0)
      return 0; /* the partial already holds the whole blob: commit verifies */
    if (r == 0 && (j->total == 0 || store_ingest_offset(j->in) == j->total))
      return 0;
    if (r == 0)
      ep_error(&e, EP_EUPSTREAM, "transfer ended at %llu of %llu bytes",
               (unsigned long long)store_ingest_offset(j->in), (unsigned long long)j->total);
    if (j->err.code != 0) /* a callback's own reason is the better one */
      e = j->err;
    if (atomic_load(&f->stopping) || !retryable(e.code) || attempt >= f->deps.max_attempts) {
      j->err = e;
      return -e.code;
    }
    ep_log_warn("fetch %s from %s: %s; retrying (attempt %d of %d)", j->digest.hex, j->host, e.msg,
                attempt + 1, f->deps.max_attempts);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 250000000L * attempt};
    nanosleep(&ts, NULL);
  }
}

static int fetch_commit(struct fetch_job *j) {
  uint64_t size = store_ingest_offset(j->in);
  j->committed = size;
  store_ingest *in = j->in;
  j->in = NULL;
  if (store_ingest_commit(in, &j->err) < 0)
    return -j->err.code;
  struct index_blob b = {.digest = j->digest, .size = size, .state = INDEX_BLOB_COMPLETE};
  b.created = b.last_access = (int64_t)time(NULL);
  ep_err ie = {0};
  if (index_blob_put(j->f->deps.idx, &b, &ie) < 0)
    ep_log_warn("index: recording blob %s: %s", j->digest.hex, ie.msg);
  if (j->f->deps.on_commit != NULL)
    j->f->deps.on_commit(j->f->deps.on_commit_ud, &j->digest, size);
  return 0;
}

static int fetch_run(struct fetch_job *j) {
  fetcher *f = j->f;
  if (store_ingest_begin(f->deps.st, &j->digest, &j->in, &j->err) < 0)
    return -j->err.code;
  int fd = store_ingest_open_reader(j->in, &j->err);
  if (fd < 0)
    return fd;
  pipe_attach_fd(j->pipe, fd);
  pipe_publish(j->pipe, publishable(j));
  int r = fetch_transfer(j);
  if (r < 0)
    return r;
  return fetch_commit(j);
}

static void *fetch_thread(void *arg) {
  struct fetch_job *j = arg;
  fetcher *f = j->f;
  int r = fetch_run(j);
  if (r < 0) {
    bool keep = j->err.code != EP_EDIGEST;
    if (j->in != NULL)
      store_ingest_abort(j->in, keep);
    if (j->err.code == EP_EDIGEST)
      ep_log_err("fetch %s from %s/%s: %s; nothing committed, readers aborted", j->digest.hex,
                 j->host, j->repo, j->err.msg);
    else
      ep_log_warn("fetch %s from %s/%s failed: %s%s", j->digest.hex, j->host, j->repo, j->err.msg,
                  keep ? " (partial kept for resuming)" : "");
    record_failure(f, &j->digest, &j->err);
  } else {
    ep_log_info("fetched %s from %s/%s (%llu bytes)", j->digest.hex, j->host, j->repo,
                (unsigned long long)j->total);
  }
  if (r == 0)
    pipe_publish(j->pipe, j->committed); /* verified: now the last byte too */
  pipe_finish(j->pipe, r == 0);
  pipe_unref(j->pipe);
  free(j);
  pthread_mutex_lock(&f->lock);
  if (--f->running == 0)
    pthread_cond_broadcast(&f->idle);
  pthread_mutex_unlock(&f->lock);
  return NULL;
}

static int start_job(fetcher *f, blob_pipe *p, const char *host, const char *repo,
                     const digest_t *d, ep_err *err) {
  struct fetch_job *j = calloc(1, sizeof *j);
  if (j == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  if (strlen(host) >= sizeof j->host || strlen(repo) >= sizeof j->repo) {
    free(j);
    return ep_error(err, EP_EINVAL, "registry host or repository name too long");
  }
  j->f = f;
  j->pipe = p;
  j->digest = *d;
  strcpy(j->host, host);
  strcpy(j->repo, repo);
  pipe_ref(p); /* the writer's reference, dropped by the thread */

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_mutex_lock(&f->lock);
  f->running++;
  f->started++;
  pthread_mutex_unlock(&f->lock);
  pthread_t tid;
  int rc = pthread_create(&tid, &attr, fetch_thread, j);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    pthread_mutex_lock(&f->lock);
    if (--f->running == 0)
      pthread_cond_broadcast(&f->idle);
    pthread_mutex_unlock(&f->lock);
    pipe_unref(p);
    free(j);
    return ep_error(err, EP_EINTERNAL, "cannot start fetch thread: error %d", rc);
  }
  return 0;
}

int fetcher_open(fetcher *f, const char *host, const char *repo, const digest_t *d, blob_pipe **out,
                 ep_err *err) {
  if (atomic_load(&f->stopping))
    return ep_error(err, EP_ECANCELED, "shutting down");
  bool created = false;
  blob_pipe *p = pipe_table_join(f->deps.pipes, d, &created);
  if (p == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  if (created) {
    /* The blob may have been committed between the caller's store check and
     * our join: serve it from the store rather than fetch it twice. */
    int fd = -1;
    uint64_t size = 0;
    if (store_open_blob(f->deps.st, d, &fd, &size, NULL) == 0) {
      pipe_attach_fd(p, fd);
      pipe_set_size(p, size);
      pipe_publish(p, size);
      pipe_finish(p, true);
      *out = p;
      return 0;
    }
    int r = start_job(f, p, host, repo, d, err);
    if (r < 0) {
      pipe_finish(p, false);
      pipe_unref(p);
      return r;
    }
  }
  *out = p;
  return 0;
}
