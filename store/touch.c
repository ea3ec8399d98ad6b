/* Batched last-access writes (see touch.h). The pending set is a small
 * array searched linearly: it holds the distinct blobs served within one
 * period, a few dozen on a node, and a hash table would cost more code than
 * the scan costs time. The writer swaps the set out under the mutex and
 * writes it without, so adds wait at most for a copy, never for sqlite. */
#include "store/touch.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

struct touch_batch {
  index_db *idx;
  int period_ms;
  pthread_mutex_t mu;
  pthread_cond_t wake; /* CLOCK_MONOTONIC; a full batch, or stop */
  bool stop;
  pthread_t thread;
  struct index_touch pending[TOUCH_MAX];
  size_t n;
  /* The writer's copy, used under flush_mu only. */
  pthread_mutex_t flush_mu;
  struct index_touch out[TOUCH_MAX];
};

void touch_batch_add(touch_batch *t, const digest_t *d, int64_t now) {
  pthread_mutex_lock(&t->mu);
  size_t i = 0;
  while (i < t->n && !digest_equal(&t->pending[i].digest, d))
    i++;
  bool full = i == TOUCH_MAX;
  if (!full && i == t->n)
    t->pending[t->n++] = (struct index_touch){.digest = *d, .at = now};
  else if (!full && t->pending[i].at < now)
    t->pending[i].at = now;
  if (t->n >= TOUCH_BATCH)
    pthread_cond_signal(&t->wake);
  pthread_mutex_unlock(&t->mu);
  if (!full)
    return;
  ep_err e = {0}; /* the writer is far behind: this one goes in at once */
  if (index_blob_touch(t->idx, d, now, &e) < 0 && e.code != EP_ENOTFOUND)
    ep_log_debug("index: touching %s: %s", d->hex, e.msg);
}

int touch_batch_flush(touch_batch *t, ep_err *err) {
  pthread_mutex_lock(&t->flush_mu);
  pthread_mutex_lock(&t->mu);
  size_t n = t->n;
  memcpy(t->out, t->pending, n * sizeof t->out[0]);
  t->n = 0;
  pthread_mutex_unlock(&t->mu);
  int r = index_blobs_touch(t->idx, t->out, n, err);
  pthread_mutex_unlock(&t->flush_mu);
  return r;
}

static void flush_logged(touch_batch *t) {
  ep_err e = {0};
  if (touch_batch_flush(t, &e) < 0)
    ep_log_warn("index: recording blob accesses: %s", e.msg);
}

static void *writer(void *arg) {
  touch_batch *t = arg;
  pthread_mutex_lock(&t->mu);
  while (!t->stop) {
    struct timespec at = ep_mono_timespec(ep_mono_ms() + t->period_ms);
    int rc = 0;
    while (!t->stop && t->n < TOUCH_BATCH && rc == 0)
      rc = pthread_cond_timedwait(&t->wake, &t->mu, &at);
    pthread_mutex_unlock(&t->mu);
    flush_logged(t);
    pthread_mutex_lock(&t->mu);
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

int touch_batch_new(index_db *idx, int period_ms, touch_batch **out, ep_err *err) {
  touch_batch *t = calloc(1, sizeof *t);
  if (t == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  t->idx = idx;
  t->period_ms = period_ms > 0 ? period_ms : TOUCH_PERIOD_MS;
  int rc = pthread_mutex_init(&t->mu, NULL);
  if (rc == 0 && (rc = pthread_mutex_init(&t->flush_mu, NULL)) != 0)
    pthread_mutex_destroy(&t->mu);
  if (rc == 0 && (rc = ep_cond_init_mono(&t->wake)) != 0) {
    pthread_mutex_destroy(&t->flush_mu);
    pthread_mutex_destroy(&t->mu);
  }
  if (rc != 0) {
    free(t);
    return ep_error(err, EP_EINTERNAL, "index touches: cannot create a mutex or condition");
  }
  if ((rc = pthread_create(&t->thread, NULL, writer, t)) != 0) {
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->flush_mu);
    pthread_mutex_destroy(&t->mu);
    free(t);
    return ep_error(err, EP_EINTERNAL, "index touches: cannot start the writer: error %d", rc);
  }
  *out = t;
  return 0;
}

void touch_batch_free(touch_batch *t) {
  if (t == NULL)
    return;
  pthread_mutex_lock(&t->mu);
  t->stop = true;
  pthread_cond_signal(&t->wake);
  pthread_mutex_unlock(&t->mu);
  pthread_join(t->thread, NULL); /* its last round flushed what was pending */
  flush_logged(t);               /* a touch added during that round */
  pthread_cond_destroy(&t->wake);
  pthread_mutex_destroy(&t->flush_mu);
  pthread_mutex_destroy(&t->mu);
  free(t);
}
