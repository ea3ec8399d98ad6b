/* The disk GC's runner (store/gc.h): facts in, store/gc_policy.h decides,
 * removals out. */
#include "store/gc.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "common/cleanup_json.h"
#include "common/log.h"
#include "store/index_gc.h"
#include "store/prune.h"

struct gc_runner {
  struct gc_deps d;
  char self[INDEX_NODE_ID_MAX];
  pthread_mutex_t pass_mu; /* one pass at a time */
  pthread_mutex_t mu;      /* guards kicked, stopping */
  pthread_cond_t cv;
  bool kicked, stopping;
  pthread_t thread;
};

static int add_blob(const digest_t *d, uint64_t size, void *ud) {
  (void)d;
  *(uint64_t *)ud += size;
  return 0;
}

int gc_usage_now(store *st, index_db *idx, struct gc_usage *out, ep_err *err) {
  (void)idx;
  memset(out, 0, sizeof *out);
  /* The store itself, not the index: what is on the disk is what a quota
   * is about, and /metrics counts the same way. */
  if (store_foreach_blob(st, add_blob, &out->store_bytes, err) < 0)
    return ep_wrap(err, "sizing the store");
  struct statvfs vfs;
  if (fstatvfs(store_dirfd(st), &vfs) < 0)
    return ep_syserror(err, EP_EIO, "statvfs on the store");
  out->free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
  return 0;
}

/* The policy's view of every complete blob the index knows. */
static int gather(gc_runner *g, struct gc_candidate **out, size_t *n, ep_err *err) {
  struct index_gc_blob *v = NULL;
  int r = index_gc_blobs(g->d.idx, g->self, &v, n, err);
  if (r < 0)
    return r;
  *out = *n > 0 ? calloc(*n, sizeof **out) : NULL;
  if (*n > 0 && *out == NULL) {
    free(v);
    return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  for (size_t i = 0; i < *n; i++) {
    struct gc_candidate *c = &(*out)[i];
    *c = (struct gc_candidate){.digest = v[i].digest,
                               .size = v[i].size,
                               .last_access = v[i].last_access,
                               .holders = v[i].holders};
    c->flags |= v[i].pinned ? GC_PINNED : 0;
    c->flags |= v[i].needed ? GC_NEEDED : 0;
    c->flags |= v[i].manifest ? GC_MANIFEST : 0;
    c->flags |= v[i].config ? GC_CONFIG : 0;
    blob_pipe *p = g->d.pipes != NULL ? pipe_table_find(g->d.pipes, &c->digest) : NULL;
    if (p != NULL) {
      c->flags |= GC_IN_FLIGHT;
      pipe_unref(p);
    }
    c->flags |= hold_count(g->d.holds, &c->digest) > 0 ? GC_READING : 0;
  }
  free(v);
  if (g->d.mark_unpacked != NULL && *n > 0)
    g->d.mark_unpacked(g->d.ud, *out, *n);
  return 0;
}

/* A blob chosen a moment ago may have been joined or opened since: look
 * again right before removing it. A reader that opens it during the
 * removal keeps a valid fd (the inode lives until its close). */
static bool still_free(gc_runner *g, const digest_t *d) {
  blob_pipe *p = g->d.pipes != NULL ? pipe_table_find(g->d.pipes, d) : NULL;
  if (p != NULL) {
    pipe_unref(p);
    return false;
  }
  return hold_count(g->d.holds, d) == 0;
}

static int evict(gc_runner *g, const struct gc_candidate *c, ep_err *err) {
  int r = store_remove(g->d.st, &c->digest, err);
  if (r < 0)
    return r;
  if ((r = index_blob_delete(g->d.idx, &c->digest, err)) < 0)
    return r;
  if (g->d.removed != NULL)
    g->d.removed(g->d.ud, &c->digest, c->size);
  return 0;
}

static json_t *report_json(const struct gc_report *rep, json_t *blobs) {
  return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:o}", "dry_run",
                   rep->dry_run, "store_bytes", (json_int_t)rep->store_bytes, "free_bytes",
                   (json_int_t)rep->free_bytes, "want_bytes", (json_int_t)rep->want_bytes,
                   "evicted_bytes", (json_int_t)rep->evicted_bytes, "kept_bytes",
                   (json_int_t)rep->kept_bytes, "held_bytes", (json_int_t)rep->held_bytes,
                   "short_bytes", (json_int_t)rep->short_bytes, "unpacked_bytes",
                   (json_int_t)rep->unpacked_bytes, "evicted", (int)rep->evicted, "candidates",
                   (int)rep->candidates, "partials", (int)rep->partials, "blobs", blobs);
}

/* Removes the plan's blobs (or lists them, dry run) into rep and blobs. */
static void apply(gc_runner *g, const struct gc_candidate *c, const struct gc_plan *p, bool dry_run,
                  struct gc_report *rep, json_t *blobs) {
  for (size_t k = 0; k < p->nevict; k++) {
    const struct gc_candidate *b = &c[p->evict[k]];
    ep_err e = {0};
    if (!dry_run && !still_free(g, &b->digest)) {
      rep->held_bytes += b->size; /* joined or opened since the plan */
      continue;
    }
    if (!dry_run && evict(g, b, &e) < 0) {
      ep_log_warn("gc: removing %.19s...: %s", b->digest.hex, e.msg);
      continue;
    }
    rep->evicted++;
    rep->evicted_bytes += b->size;
    char dg[DIGEST_STR_LEN + 1];
    digest_format(&b->digest, dg);
    if (blobs != NULL)
      json_array_append_new(blobs, json_string(dg));
  }
}

static int pass(gc_runner *g, bool force, bool dry_run, struct gc_report *rep, json_t *blobs,
                ep_err *err) {
  memset(rep, 0, sizeof *rep);
  rep->dry_run = dry_run;
  struct gc_usage use;
  int r = gc_usage_now(g->d.st, g->d.idx, &use, err);
  if (r < 0)
    return r;
  rep->store_bytes = use.store_bytes;
  rep->free_bytes = use.free_bytes;
  if (!dry_run) {
    unsigned gone = 0;
    ep_err e = {0};
    if (store_prune_partials(g->d.st, g->d.partial_max_age_s, g->d.partial_keep, &gone, &e) < 0)
      ep_log_warn("gc: pruning partials: %s", e.msg);
    rep->partials = gone;
  }
  if (!force && !gc_due(&g->d.lim, &use))
    return 0;
  struct gc_candidate *c = NULL;
  size_t n = 0;
  if ((r = gather(g, &c, &n, err)) < 0)
    return r;
  struct gc_plan p;
  if (gc_plan_make(c, n, &g->d.lim, &use, force, &p) < 0) {
    free(c);
    return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  rep->candidates = (unsigned)n;
  for (size_t i = 0; i < n; i++)
    rep->unpacked_bytes += (c[i].flags & GC_UNPACKED) ? c[i].size : 0;
  rep->want_bytes = p.want_bytes;
  rep->kept_bytes = p.kept_bytes;
  rep->held_bytes = p.held_bytes;
  apply(g, c, &p, dry_run, rep, blobs);
  gc_plan_free(&p);
  free(c);
  rep->short_bytes =
      rep->want_bytes > rep->evicted_bytes ? rep->want_bytes - rep->evicted_bytes : 0;
  if (!dry_run && rep->short_bytes > 0)
    ep_log_warn("gc: the store stays over its quota by %" PRIu64 " bytes (removed %" PRIu64
                " of %" PRIu64 "): %" PRIu64 " bytes are in flight or being read and go once "
                "their readers end; %" PRIu64 " bytes in all are pinned, manifests, configs, "
                "the locality's last copy or held",
                rep->short_bytes, rep->evicted_bytes, rep->want_bytes, rep->held_bytes,
                rep->kept_bytes);
  if (!dry_run && rep->evicted > 0)
    ep_log_info("gc: removed %u blobs, %" PRIu64 " bytes (store was %" PRIu64 " bytes)",
                rep->evicted, rep->evicted_bytes, rep->store_bytes);
  return 0;
}

int gc_run(gc_runner *g, bool force, bool dry_run, struct gc_report *rep, char **json,
           ep_err *err) {
  struct gc_report local;
  rep = rep != NULL ? rep : &local;
  ep_cleanup_json json_t *blobs = json != NULL ? json_array() : NULL;
  if (json != NULL && blobs == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  pthread_mutex_lock(&g->pass_mu);
  int r = pass(g, force, dry_run, rep, blobs, err);
  if (r == 0 && !dry_run && g->d.passed != NULL)
    g->d.passed(g->d.ud, rep);
  pthread_mutex_unlock(&g->pass_mu);
  if (r < 0 || json == NULL)
    return r;
  json_t *o = report_json(rep, json_incref(blobs));
  *json = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return *json != NULL ? 0 : ep_error(err, EP_EINTERNAL, "out of memory");
}

static void *gc_thread(void *ud) {
  gc_runner *g = ud;
  pthread_mutex_lock(&g->mu);
  while (!g->stopping) {
    if (!g->kicked) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      ts.tv_sec += GC_PERIOD_MS / 1000;
      pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    if (g->stopping)
      break;
    g->kicked = false;
    pthread_mutex_unlock(&g->mu);
    ep_err e = {0};
    if (gc_run(g, false, false, NULL, NULL, &e) < 0)
      ep_log_warn("gc: %s", e.msg);
    pthread_mutex_lock(&g->mu);
  }
  pthread_mutex_unlock(&g->mu);
  return NULL;
}

int gc_runner_new(const struct gc_deps *deps, gc_runner **out, ep_err *err) {
  gc_runner *g = calloc(1, sizeof *g);
  if (g == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  g->d = *deps;
  snprintf(g->self, sizeof g->self, "%s", deps->self != NULL ? deps->self : "");
  g->d.self = g->self;
  pthread_mutex_init(&g->pass_mu, NULL);
  pthread_mutex_init(&g->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&g->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  int rc = pthread_create(&g->thread, &attr, gc_thread, g);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    pthread_mutex_destroy(&g->pass_mu);
    free(g);
    return ep_error(err, EP_EINTERNAL, "cannot start the GC thread: error %d", rc);
  }
  *out = g;
  return 0;
}

void gc_runner_free(gc_runner *g) {
  if (g == NULL)
    return;
  pthread_mutex_lock(&g->mu);
  g->stopping = true;
  pthread_cond_signal(&g->cv);
  pthread_mutex_unlock(&g->mu);
  pthread_join(g->thread, NULL);
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
  pthread_mutex_destroy(&g->pass_mu);
  free(g);
}

void gc_kick(gc_runner *g) {
  if (g == NULL)
    return;
  pthread_mutex_lock(&g->mu);
  g->kicked = true;
  pthread_cond_signal(&g->cv);
  pthread_mutex_unlock(&g->mu);
}
