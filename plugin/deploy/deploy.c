/* The node-side deploy worker (plugin/deploy/deploy.h, docs/deploy.md).
 *
 * Threads: deploy_submit() runs on the agent's mosquitto thread and only
 * starts a job thread (at most DEPLOY_RUNNING_MAX at once; finished jobs are
 * joined lazily by the next submit or by deploy_free). A job thread resolves
 * the manifests, then starts up to DEPLOY_PARALLEL fetch threads that take
 * blobs from the job's list, and itself wakes every DEPLOY_TICK_MS to publish
 * progress until they are done. Counters and the first error live under the
 * job's mutex. Stopping (deploy_free) is an atomic flag the fetch threads
 * look at between pipe reads, which time out every second, so a stalled
 * source never holds up edgepulld's shutdown.
 *
 * Bytes land in the store through the fetcher's single-flight pipes: reading
 * a pipe to its end and throwing the bytes away is all a prefetch needs, and
 * the same fetch serves the runtime and child peers at the same time.
 *
 * Uplink and peer bytes: deltas of the fetcher's per-source counters
 * (fetcher_stats) over the deploy, so a resumed blob counts only what really
 * crossed; a pull running at the same time on this node is counted too. */
#include "plugin/deploy/deploy.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/escape.h"
#include "common/log.h"
#include "plugin/deploy/deploy_int.h"
#include "plugin/mirror/mirror.h"

#define DEPLOY_SEEN_MAX 64
#define DEPLOY_PIPE_WAIT_MS 1000

struct deploy_job {
  deployer *w;
  struct proto_deploy req;
  struct deploy_ref ref;
  pthread_t th;
  bool finished; /* under w->mu */

  pthread_mutex_t mu; /* guards the fields below */
  pthread_cond_t cv;
  struct deploy_blob *blobs;
  size_t nblobs, next;
  unsigned active; /* fetch threads running */
  uint64_t blobs_done, bytes_done, bytes_total;
  struct fetch_stats stats0; /* the fetcher's counters when the deploy began */
  size_t nheld;              /* blobs[0..nheld) held against the disk GC (job thread only) */
  bool failed;
  char error[PROTO_TEXT_MAX + 1];
};

struct deployer {
  struct deploy_deps d;
  struct deploy_options o;
  deploy_progress_fn progress;
  void *ud;
  atomic_bool stopping;
  atomic_ulong import_seq; /* deploy_import_id's counter */
  pthread_mutex_t mu;      /* guards jobs and seen */
  struct deploy_job *jobs[DEPLOY_RUNNING_MAX];
  char seen[DEPLOY_SEEN_MAX][PROTO_ID_MAX + 1];
  size_t nseen;
};

static void job_fail(struct deploy_job *j, const char *fmt, ...) EP_PRINTF(2, 3);
static void job_fail(struct deploy_job *j, const char *fmt, ...) {
  pthread_mutex_lock(&j->mu);
  if (!j->failed) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->error, sizeof j->error, fmt, ap);
    va_end(ap);
    ep_sanitize(j->error, PROTO_TEXT_MAX);
    if (j->error[0] == '\0')
      snprintf(j->error, sizeof j->error, "failed");
    j->failed = true;
  }
  pthread_mutex_unlock(&j->mu);
}

static void job_publish(struct deploy_job *j, bool final) {
  struct proto_progress p;
  memset(&p, 0, sizeof p);
  snprintf(p.id, sizeof p.id, "%s", j->req.id);
  snprintf(p.node, sizeof p.node, "%s", j->w->o.node);
  pthread_mutex_lock(&j->mu);
  p.state =
      !final ? PROTO_PROGRESS_RUNNING : (j->failed ? PROTO_PROGRESS_FAILED : PROTO_PROGRESS_DONE);
  p.blobs_total = j->nblobs;
  p.blobs_done = j->blobs_done;
  p.bytes_total = j->bytes_total;
  p.bytes_done = j->bytes_done;
  struct fetch_stats now;
  fetcher_stats(j->w->d.fetch, &now);
  p.uplink_bytes = now.upstream_bytes - j->stats0.upstream_bytes;
  p.peer_bytes = now.peer_bytes - j->stats0.peer_bytes;
  if (final && j->failed)
    snprintf(p.error, sizeof p.error, "%s", j->error);
  pthread_mutex_unlock(&j->mu);
  p.ts = (int64_t)time(NULL);
  if (j->w->progress != NULL)
    j->w->progress(j->w->ud, &p, final);
}

/* ---- fetching ---------------------------------------------------------------- */

/* Follows the blob's fetch to its verified end, counting what arrives. It
 * waits on the pipe and never reads the bytes: the fetch already hashed
 * them into the store, and reading them back cost every node a pread() of
 * every blob it deployed. */
static int wait_to_end(struct deploy_job *j, blob_pipe *p, const digest_t *dg, ep_err *err) {
  deployer *w = j->w;
  uint64_t have = 0;
  for (;;) {
    /* Sleeps until the end, looking at the progress once a second: the
     * fetch streams the bytes on by itself, and waking here for each block
     * would cost every node a context switch per 64 KiB it receives. */
    uint64_t avail = have;
    int st = pipe_wait_end(p, &avail, DEPLOY_PIPE_WAIT_MS);
    if (st != PIPE_FAILED && avail > have) {
      pthread_mutex_lock(&j->mu);
      j->bytes_done += avail - have;
      pthread_mutex_unlock(&j->mu);
      have = avail;
    }
    if (st == PIPE_DONE) {
      return 0;
    } else if (st == PIPE_TIMEOUT) {
      if (atomic_load(&w->stopping))
        return ep_error(err, EP_ECANCELED, "edgepulld is stopping");
    } else if (st == PIPE_FAILED) {
      ep_err e = {0};
      if (fetcher_last_error(w->d.fetch, dg, &e) != 0 && e.msg[0] != '\0')
        return ep_error(err, e.code != 0 ? e.code : EP_EIO, "%s", e.msg);
      return ep_error(err, EP_EIO, "the fetch failed");
    }
  }
}

static int fetch_one(struct deploy_job *j, const struct deploy_blob *b, ep_err *err) {
  deployer *w = j->w;
  char ds[DIGEST_STR_LEN + 1];
  digest_format(&b->digest, ds);
  if (store_has(w->d.st, &b->digest, NULL, NULL) == 1) {
    pthread_mutex_lock(&j->mu);
    j->bytes_done += b->size;
    pthread_mutex_unlock(&j->mu);
    return 0;
  }
  blob_pipe *p = NULL;
  struct fetch_request rq = {.size = b->size}; /* the descriptor bounds the transfer */
  int r = fetcher_open_req(w->d.fetch, j->ref.registry, j->ref.repo, &b->digest, &rq, &p, err);
  if (r < 0)
    return ep_wrap(err, "blob %.19s", ds);
  r = wait_to_end(j, p, &b->digest, err);
  /* done means stored: wait for the commit that follows verification */
  while (r == 0 && pipe_wait_finished(p, DEPLOY_PIPE_WAIT_MS) == PIPE_TIMEOUT)
    if (atomic_load(&w->stopping))
      r = ep_error(err, EP_ECANCELED, "edgepulld is stopping");
  if (r == 0 && store_has(w->d.st, &b->digest, NULL, NULL) != 1)
    r = ep_error(err, EP_EIO, "verified but not stored");
  pipe_unref(p);
  return r < 0 ? ep_wrap(err, "blob %.19s", ds) : 0;
}

static void *fetch_main(void *ud) {
  struct deploy_job *j = ud;
  for (;;) {
    pthread_mutex_lock(&j->mu);
    bool stop = j->failed || j->next >= j->nblobs;
    struct deploy_blob b = stop ? (struct deploy_blob){0} : j->blobs[j->next++];
    pthread_mutex_unlock(&j->mu);
    if (stop)
      break;
    ep_err e = {0};
    if (atomic_load(&j->w->stopping)) {
      job_fail(j, "edgepulld is stopping");
      break;
    }
    if (fetch_one(j, &b, &e) < 0) {
      job_fail(j, "%s", e.msg);
      break;
    }
    pthread_mutex_lock(&j->mu);
    j->blobs_done++;
    pthread_mutex_unlock(&j->mu);
  }
  pthread_mutex_lock(&j->mu);
  j->active--;
  pthread_cond_signal(&j->cv);
  pthread_mutex_unlock(&j->mu);
  return NULL;
}

static void timespec_add_ms(struct timespec *t, long ms) {
  t->tv_sec += ms / 1000;
  t->tv_nsec += (ms % 1000) * 1000000L;
  if (t->tv_nsec >= 1000000000L) {
    t->tv_sec++;
    t->tv_nsec -= 1000000000L;
  }
}

/* Runs the fetch threads and ticks progress until they are all done. */
static void fetch_all(struct deploy_job *j) {
  pthread_t th[DEPLOY_PARALLEL];
  size_t nth = 0;
  size_t want = j->nblobs < DEPLOY_PARALLEL ? j->nblobs : DEPLOY_PARALLEL;
  for (size_t i = 0; i < want; i++) {
    pthread_mutex_lock(&j->mu);
    j->active++;
    pthread_mutex_unlock(&j->mu);
    if (pthread_create(&th[nth], NULL, fetch_main, j) != 0) {
      pthread_mutex_lock(&j->mu);
      j->active--;
      pthread_mutex_unlock(&j->mu);
      break;
    }
    nth++;
  }
  if (nth == 0 && want > 0)
    job_fail(j, "cannot start a fetch thread");
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  pthread_mutex_lock(&j->mu);
  while (j->active > 0) {
    timespec_add_ms(&next, DEPLOY_TICK_MS);
    int rc = 0;
    while (j->active > 0 && rc == 0)
      rc = pthread_cond_timedwait(&j->cv, &j->mu, &next);
    if (j->active > 0) {
      pthread_mutex_unlock(&j->mu);
      job_publish(j, false);
      pthread_mutex_lock(&j->mu);
    }
  }
  pthread_mutex_unlock(&j->mu);
  for (size_t i = 0; i < nth; i++)
    pthread_join(th[i], NULL);
}

/* ---- the job ----------------------------------------------------------------- */

/* The import through the snapshotter runs beside the fetch: each layer's Prepare joins the
 * deploy's fetch of that layer, so edgepull unpacks it while it streams in (docs/deploy.md). */
struct snap_import {
  struct deploy_job *j;
  int rc;
  ep_err e;
};

static void *snap_import_main(void *ud) {
  struct snap_import *si = ud;
  deployer *w = si->j->w;
  si->rc =
      deploy_import_snapshotter(&w->d, &w->o, &si->j->ref, &w->stopping, &w->import_seq, &si->e);
  return NULL;
}

/* Holds the plan's blobs against the disk GC until the import is done (take), or lets them go. A
 * hold that cannot be taken (out of memory) leaves the rest unheld: the deploy goes on, and a blob
 * evicted meanwhile is fetched again by the runtime's pull. */
static void hold_blobs(struct deploy_job *j, bool take) {
  hold_table *t = j->w->d.holds;
  if (t == NULL)
    return;
  if (take) {
    while (j->nheld < j->nblobs && hold_take(t, &j->blobs[j->nheld].digest) == 0)
      j->nheld++;
    return;
  }
  for (size_t i = 0; i < j->nheld; i++)
    hold_release(t, &j->blobs[i].digest);
  j->nheld = 0;
}

static void *job_main(void *ud) {
  struct deploy_job *j = ud;
  deployer *w = j->w;
  ep_err e = {0};
  ep_log_info("deploy %s: %s (import %s)", j->req.id, j->req.image,
              proto_import_name(j->req.import));
  fetcher_stats(w->d.fetch, &j->stats0);
  job_publish(j, false);
  bool via_snap = j->req.import == PROTO_IMPORT_CONTAINERD && w->o.snapshotter[0] != '\0';
  struct snap_import si = {.j = j};
  pthread_t sth;
  bool snap_started = false;
  if (deploy_plan(&w->d, &w->o, &j->req, &j->ref, &j->blobs, &j->nblobs, &e) < 0) {
    job_fail(j, "%s", e.msg);
  } else {
    for (size_t i = 0; i < j->nblobs; i++)
      j->bytes_total += j->blobs[i].size;
    hold_blobs(j, true);
    snap_started =
        via_snap && j->nblobs > 0 && pthread_create(&sth, NULL, snap_import_main, &si) == 0;
    if (via_snap && j->nblobs > 0 && !snap_started)
      job_fail(j, "import into containerd: cannot start its thread");
    fetch_all(j);
  }
  int ir = 0;
  if (snap_started) {
    pthread_join(sth, NULL);
    ir = si.rc;
    e = si.e;
  } else if (!j->failed && !via_snap && j->req.import != PROTO_IMPORT_NONE) {
    ir = deploy_import(&w->o, j->req.import, &j->ref, &w->stopping, &e);
  }
  if (ir < 0 && !j->failed)
    job_fail(j, "import into %s: %s", proto_import_name(j->req.import), e.msg);
  hold_blobs(j, false);
  if (j->failed)
    ep_log_warn("deploy %s: failed: %s", j->req.id, j->error);
  else
    ep_log_info("deploy %s: done, %zu blobs", j->req.id, j->nblobs);
  /* Finished before the final answer goes out: whoever reads it may submit
   * the next deploy at once, and must find this slot reapable (the join
   * then waits only for the publish below, which never takes w->mu). */
  pthread_mutex_lock(&w->mu);
  j->finished = true;
  pthread_mutex_unlock(&w->mu);
  job_publish(j, true);
  return NULL;
}

static void job_free(struct deploy_job *j) {
  pthread_cond_destroy(&j->cv);
  pthread_mutex_destroy(&j->mu);
  free(j->blobs);
  free(j);
}

/* Joins the finished jobs (with w->mu held; they no longer take it). */
static void reap(deployer *w, bool all) {
  for (size_t i = 0; i < DEPLOY_RUNNING_MAX; i++) {
    struct deploy_job *j = w->jobs[i];
    if (j == NULL || (!all && !j->finished))
      continue;
    if (all && !j->finished) {
      pthread_mutex_unlock(&w->mu);
      pthread_join(j->th, NULL);
      pthread_mutex_lock(&w->mu);
    } else {
      pthread_join(j->th, NULL);
    }
    job_free(j);
    w->jobs[i] = NULL;
  }
}

int deploy_new(const struct deploy_deps *d, const struct deploy_options *o,
               deploy_progress_fn progress, void *ud, deployer **out, ep_err *err) {
  *out = NULL;
  deployer *w = calloc(1, sizeof *w);
  if (w == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  w->d = *d;
  w->o = *o;
  w->progress = progress;
  w->ud = ud;
  atomic_init(&w->stopping, false);
  atomic_init(&w->import_seq, 0);
  if (pthread_mutex_init(&w->mu, NULL) != 0) {
    free(w);
    return ep_error(err, EP_EINTERNAL, "deploy: cannot create a mutex");
  }
  *out = w;
  return 0;
}

void deploy_free(deployer *w) {
  if (w == NULL)
    return;
  atomic_store(&w->stopping, true);
  pthread_mutex_lock(&w->mu);
  reap(w, true);
  pthread_mutex_unlock(&w->mu);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

static bool seen_before(deployer *w, const char *id) {
  size_t n = w->nseen < DEPLOY_SEEN_MAX ? w->nseen : DEPLOY_SEEN_MAX;
  for (size_t i = 0; i < n; i++)
    if (strcmp(w->seen[i], id) == 0)
      return true;
  return false;
}

int deploy_submit(deployer *w, const struct proto_deploy *req, ep_err *err) {
  if (atomic_load(&w->stopping))
    return 1;
  pthread_mutex_lock(&w->mu);
  reap(w, false);
  size_t slot = DEPLOY_RUNNING_MAX;
  for (size_t i = 0; i < DEPLOY_RUNNING_MAX && slot == DEPLOY_RUNNING_MAX; i++)
    if (w->jobs[i] == NULL)
      slot = i;
  int r = 1;
  if (seen_before(w, req->id)) {
    ep_log_info("deploy %s: already seen, ignored", req->id);
  } else if (slot == DEPLOY_RUNNING_MAX) {
    ep_log_warn("deploy %s: %d deploys already running, ignored", req->id, DEPLOY_RUNNING_MAX);
  } else {
    struct deploy_job *j = calloc(1, sizeof *j);
    r = j == NULL ? ep_error(err, EP_EINTERNAL, "out of memory") : 0;
    if (j != NULL) {
      j->w = w;
      j->req = *req;
      int ir = pthread_mutex_init(&j->mu, NULL);
      if (ir == 0)
        ir = ep_cond_init_mono(&j->cv);
      if (ir != 0) {
        free(j);
        r = ep_error(err, EP_EINTERNAL, "deploy %s: cannot create a mutex or condition", req->id);
      } else if (pthread_create(&j->th, NULL, job_main, j) != 0) {
        job_free(j);
        r = ep_error(err, EP_EINTERNAL, "deploy %s: cannot start its thread", req->id);
      } else {
        w->jobs[slot] = j;
        snprintf(w->seen[w->nseen++ % DEPLOY_SEEN_MAX], PROTO_ID_MAX + 1, "%s", req->id);
      }
    }
  }
  pthread_mutex_unlock(&w->mu);
  return r;
}
