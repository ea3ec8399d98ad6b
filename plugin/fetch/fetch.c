/* The fetch engine.
 *
 * fetcher_open() joins the pipe of a digest in the pipe table; the caller
 * that creates it starts a detached fetch thread that owns the writer side:
 *
 *   store_ingest_begin (resumes a partial left by a crash or a failed try)
 *   -> attach a reader fd on the partial to the pipe, publish what is there
 *   -> pick the sources (parent, peers holding it, upstream: deps.pick_sources)
 *   -> GET from the first one at the current offset (Range), each chunk
 *      written, hashed and published to the pipe as it arrives
 *   -> on a transfer error, the next source, resuming from the new offset;
 *      the failed source waits a backoff (250 ms doubling to 2 s) while any
 *      other one (a new parent, the gateway, a holder) is taken at once;
 *      the fetch gives up only after budget_ms without a byte (max_attempts
 *      quick rounds while it is upstream-only and holds nothing)
 *   -> store_ingest_verify checks the digest and pipe_complete releases the
 *      last byte to readers at once; fsync, rename and the index follow
 *      (store_ingest_commit), then pipe_finish drops the pipe from the table.
 *
 * Bounds: the size is taken from the request (a manifest descriptor) or the
 * locality index when known, else from the first answer, capped by
 * max_blob. A source announcing another size, or sending more, is cut and
 * blamed like a digest mismatch (suspect + report); a peer averaging less
 * than min_rate over rate_window_ms is dropped like a stalled one. A body
 * of unknown length is cut once it hashes to the digest. A
 * partial that already hashes to the digest is committed without a request;
 * one at or past the known size that does not is discarded.
 *
 * The pipe never restarts: readers (the runtime, child peers) keep
 * following it while the source changes underneath. A digest mismatch is
 * the one exception: the readers already hold bad bytes, so the pipe fails
 * (their connections are cut short), the peers that contributed are
 * reported as suspect, and the next request starts a clean fetch.
 *
 * A source that ignores our Range and sends the blob from byte 0 does not
 * make the pipe go backwards: the bytes we already hold are skipped as they
 * arrive (the final digest check still covers every byte on disk).
 *
 * Every wait of a fetch (for a source to appear, out a backoff) is on the
 * fetcher's `wake` condition, which fetcher_stop broadcasts: shutdown never
 * sits out a sleep. Threads and the fetcher's state: fetch_int.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "plugin/fetch/fetch_int.h"

/* Publishing wakes every reader of the pipe (the runtime's connection, the
 * child peers). On a paced link data arrives about a packet per callback,
 * and waking every reader per packet costs far more CPU than the bytes do
 * (measured with bench/locality: see docs/evaluation.md). So the fetch
 * publishes every FETCH_PUBLISH_BYTES or FETCH_PUBLISH_MS, whichever comes
 * first, and whatever is left when a transfer ends. */
#define FETCH_PUBLISH_BYTES (64 * 1024)
#define FETCH_PUBLISH_MS 10
#define FETCH_BACKOFF_MS 250
#define FETCH_BACKOFF_MAX_MS 2000
#define FETCH_IDLE_MS 100

static const char *src_name(const struct fetch_job *j) {
  return j->src.kind == SRC_PEER ? j->src.node : j->host;
}

static void blame_add(struct fetch_job *j) {
  if (j->src.kind != SRC_PEER)
    return;
  for (size_t i = 0; i < j->nblame; i++)
    if (strcmp(j->blame[i], j->src.node) == 0)
      return;
  if (j->nblame < FETCH_SOURCES_MAX)
    snprintf(j->blame[j->nblame++], sizeof j->blame[0], "%s", j->src.node);
}

static int on_start(void *ud, uint64_t offset, uint64_t total) {
  struct fetch_job *j = ud;
  uint64_t have = store_ingest_offset(j->in);
  beat(j);
  if (offset > have)
    return ep_error(&j->err, EP_EUPSTREAM, "upstream resumed at %llu, we hold %llu",
                    (unsigned long long)offset, (unsigned long long)have);
  if (total > 0 && j->known > 0 && total != j->known) {
    j->lied = true;
    return ep_error(&j->err, EP_EUPSTREAM, "%s announced %llu bytes, the blob is %llu", src_name(j),
                    (unsigned long long)total, (unsigned long long)j->known);
  }
  if (total > j->f->deps.max_blob) {
    j->lied = true;
    return ep_error(&j->err, EP_EUPSTREAM, "%s announced %llu bytes, over the %llu allowed",
                    src_name(j), (unsigned long long)total,
                    (unsigned long long)j->f->deps.max_blob);
  }
  if (total > 0 && j->total > 0 && total != j->total)
    return ep_error(&j->err, EP_EUPSTREAM, "upstream size changed from %llu to %llu",
                    (unsigned long long)j->total, (unsigned long long)total);
  if (total > 0 && total < have)
    return ep_error(&j->err, EP_EUPSTREAM, "upstream blob is %llu bytes, we already hold %llu",
                    (unsigned long long)total, (unsigned long long)have);
  j->skip = have - offset;
  if (offset > 0)
    ep_log_info("fetch %s: resuming at offset %llu from %s", j->digest.hex,
                (unsigned long long)offset, src_name(j));
  else if (j->skip > 0)
    ep_log_info("fetch %s: %s ignored the range, skipping %llu bytes we hold", j->digest.hex,
                src_name(j), (unsigned long long)j->skip);
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

/* Tells the readers what they may read: at once with force, else once
 * enough bytes or time have gathered since the last time. */
static void publish(struct fetch_job *j, bool force) {
  uint64_t avail = publishable(j);
  if (avail <= j->published)
    return;
  int64_t now = ep_mono_ms();
  if (!force && avail - j->published < FETCH_PUBLISH_BYTES &&
      now - j->published_ms < FETCH_PUBLISH_MS)
    return;
  pipe_publish(j->pipe, avail);
  j->published = avail;
  j->published_ms = now;
}

/* A peer that keeps the connection alive with a trickle (which the stall
 * timeout never catches) is dropped once its average over a window falls
 * below min_rate; the fetch resumes elsewhere, or from it again later. */
static int check_rate(struct fetch_job *j, size_t len) {
  uint64_t min = j->f->deps.min_rate;
  j->win_bytes += len;
  if (min == 0 || j->src.kind != SRC_PEER)
    return 0;
  int64_t dt = ep_mono_ms() - j->win_ms;
  if (dt < j->f->deps.rate_window_ms)
    return 0;
  uint64_t rate = j->win_bytes * 1000 / (uint64_t)dt;
  if (rate < min)
    return ep_error(&j->err, EP_EUNREACH, "%s sent %llu B/s over %lld ms, below %llu B/s",
                    src_name(j), (unsigned long long)rate, (long long)dt, (unsigned long long)min);
  j->win_ms += dt;
  j->win_bytes = 0;
  return 0;
}

/* A fetch nobody follows any more (no request, child peer or deploy holds
 * its pipe: only our own reference is left) is abandoned once that has
 * lasted orphan_grace_ms: the locality gains nothing from finishing it, and
 * hang-ups would otherwise pile up fetch threads, fds and disk. Looked at
 * about once a second. Returns true when the fetch should stop. */
static bool orphaned(struct fetch_job *j) {
  int grace = j->f->deps.orphan_grace_ms;
  int64_t now = ep_mono_ms();
  if (grace <= 0 || now - j->orphan_checked_ms < 1000)
    return false;
  j->orphan_checked_ms = now;
  if (pipe_refs(j->pipe) > 1) {
    j->orphan_since_ms = 0;
    return false;
  }
  if (j->orphan_since_ms == 0)
    j->orphan_since_ms = now;
  return now - j->orphan_since_ms >= grace;
}

static int on_data(void *ud, const void *buf, size_t len) {
  struct fetch_job *j = ud;
  beat(j);
  if (atomic_load(&j->f->stopping))
    return ep_error(&j->err, EP_ECANCELED, "shutting down");
  if (orphaned(j))
    return ep_error(&j->err, EP_ECANCELED, "every reader left %d s ago: fetch abandoned",
                    j->f->deps.orphan_grace_ms / 1000);
  if (j->skip > 0) {
    size_t n = len < j->skip ? len : (size_t)j->skip;
    j->skip -= n;
    buf = (const char *)buf + n;
    len -= n;
    if (len == 0)
      return 0;
  }
  if (j->total > 0 && store_ingest_offset(j->in) + len > j->total) {
    j->lied = true;
    return ep_error(&j->err, EP_EUPSTREAM, "%s sent more than the %llu bytes of the blob",
                    src_name(j), (unsigned long long)j->total);
  }
  if (j->total == 0 && store_ingest_offset(j->in) > 0 && store_ingest_complete(j->in)) {
    j->lied = true; /* no length given, and bytes past the blob */
    return ep_error(&j->err, EP_EUPSTREAM, "%s sent more than the %llu bytes of the blob",
                    src_name(j), (unsigned long long)store_ingest_offset(j->in));
  }
  if (store_ingest_offset(j->in) + len > j->f->deps.max_blob)
    return ep_error(&j->err, EP_ETOOBIG, "%s sent more than the %llu bytes a blob may have",
                    src_name(j), (unsigned long long)j->f->deps.max_blob);
  if (store_ingest_write(j->in, buf, len, &j->err) < 0)
    return -1;
  blame_add(j);
  atomic_fetch_add(j->src.kind == SRC_PEER ? &j->f->peer_bytes : &j->f->upstream_bytes, len);
  if (j->src_ctr != NULL)
    metrics_add(j->src_ctr, len);
  if (j->peer_ctr != NULL)
    metrics_add(j->peer_ctr, len);
  publish(j, false);
  return check_rate(j, len);
}

static bool retryable(int code) {
  return code == EP_EUNREACH || code == EP_EUPSTREAM || code == EP_EIO;
}

/* The current source list, waiting up to source_wait_ms for one to appear
 * (a node between parents, or whose parent has not yet announced itself). */
static size_t pick(struct fetch_job *j, struct fetch_source *list) {
  fetcher *f = j->f;
  if (f->deps.pick_sources == NULL) {
    memset(list, 0, sizeof *list);
    list[0].kind = SRC_UPSTREAM;
    return 1;
  }
  for (int waited = 0;; waited += 200) {
    beat(j);
    int n = f->deps.pick_sources(f->deps.sources_ud, &j->digest, j->exclude[0] ? j->exclude : NULL,
                                 list, FETCH_SOURCES_MAX);
    if (n > 0)
      return (size_t)n > FETCH_SOURCES_MAX ? FETCH_SOURCES_MAX : (size_t)n;
    if (waited >= f->deps.source_wait_ms || !fetch_nap(f, 200))
      return 0;
  }
}

static bool same_source(const struct fetch_source *a, const struct fetch_source *b) {
  return a->kind == b->kind && strcmp(a->node, b->node) == 0;
}

/* The first source of list not waiting out a backoff, NULL when none. */
static const struct fetch_source *
next_source(const struct fetch_job *j, const struct fetch_source *list, size_t n, int64_t now) {
  for (size_t i = 0; i < n; i++) {
    bool waiting = false;
    for (size_t k = 0; k < j->nretry && !waiting; k++)
      waiting = same_source(&list[i], &j->retry[k].src) && j->retry[k].at > now;
    if (!waiting)
      return &list[i];
  }
  return NULL;
}

/* s failed: not asked again before a backoff that doubles per failure. */
static void retry_later(struct fetch_job *j, const struct fetch_source *s, int64_t now) {
  struct fetch_retry *r = NULL;
  for (size_t k = 0; k < j->nretry && r == NULL; k++)
    if (same_source(s, &j->retry[k].src))
      r = &j->retry[k];
  if (r == NULL && j->nretry < FETCH_SOURCES_MAX) {
    r = &j->retry[j->nretry++];
    *r = (struct fetch_retry){.src = *s};
  }
  if (r == NULL) { /* full: the one due soonest makes room */
    r = &j->retry[0];
    for (size_t k = 1; k < j->nretry; k++)
      if (j->retry[k].at < r->at)
        r = &j->retry[k];
    *r = (struct fetch_retry){.src = *s};
  }
  int64_t wait = FETCH_BACKOFF_MS << (r->fails < 3 ? r->fails : 3);
  r->fails++;
  r->at = now + (wait < FETCH_BACKOFF_MAX_MS ? wait : FETCH_BACKOFF_MAX_MS);
}

/* A source broke the size bound: as for a digest mismatch, a peer is marked
 * suspect and reported (the upstream cannot be avoided, only logged). */
static void blame_source(struct fetch_job *j, const struct fetch_source *s, const char *why) {
  j->lied = false;
  ep_log_err("fetch %s: %s: %s; dropping it", j->digest.hex, src_name(j), why);
  if (s->kind == SRC_PEER && j->f->deps.metrics != NULL)
    metrics_add(&j->f->deps.metrics->suspects, 1);
  if (s->kind == SRC_PEER && j->f->deps.on_bad_source != NULL)
    j->f->deps.on_bad_source(j->f->deps.sources_ud, s->node, &j->digest, why);
}

/* Resolved once per transfer, so that each chunk costs two atomic adds. */
static void count_source(struct fetch_job *j, const struct fetch_source *s, uint64_t off) {
  struct metrics *m = j->f->deps.metrics;
  if (m == NULL)
    return;
  if (off > 0)
    metrics_add(&m->resumes, 1);
  enum metrics_source k = s->kind == SRC_UPSTREAM ? METRICS_SRC_UPSTREAM
                          : s->parent             ? METRICS_SRC_PARENT
                                                  : METRICS_SRC_PEER;
  j->src_ctr = &m->source_bytes[k];
  j->peer_ctr = s->kind == SRC_PEER ? metrics_peer_counter(m, s->node) : NULL;
}

/* The partial holds the whole blob: at the known size, or (size unknown)
 * already hashing to the digest. Commit verifies either way. */
static bool holds_all(struct fetch_job *j) {
  uint64_t have = store_ingest_offset(j->in);
  if (j->total > 0)
    return have == j->total;
  return have > 0 && store_ingest_complete(j->in);
}

static int transfer_from(struct fetch_job *j, const struct fetch_source *s, ep_err *e) {
  fetcher *f = j->f;
  struct upstream_blob_sink sink = {.on_start = on_start, .on_data = on_data, .ud = j};
  uint64_t off = store_ingest_offset(j->in);
  j->src = *s;
  j->lied = false;
  j->win_ms = ep_mono_ms();
  j->win_bytes = 0;
  ep_err_clear(&j->err);
  count_source(j, s, off);
  if (s->kind == SRC_UPSTREAM)
    return upstream_blob_get(f->deps.up, j->host, j->repo, &j->digest, off, &sink, e);
  struct upstream_peer_auth a = {
      .node = f->deps.node_id, .secret = f->deps.peer_secret, .peer = s->node};
  return upstream_peer_blob_get(f->deps.up, s->base_url, j->host, j->repo, &j->digest, off, &a,
                                j->hops + 1, &sink, e);
}

/* One try from s: 0 when the ingest holds the whole blob, else <0 and e. */
static int try_source(struct fetch_job *j, const struct fetch_source *s, ep_err *e) {
  uint64_t off = store_ingest_offset(j->in);
  int r = transfer_from(j, s, e);
  if (r == -EP_ERANGE && off > 0)
    return 0; /* the source has nothing past our bytes: verify what we hold */
  if (r == 0 && (j->total == 0 || store_ingest_offset(j->in) == j->total))
    return 0;
  if (r == 0)
    r = ep_error(e, EP_EUPSTREAM, "transfer ended at %llu of %llu bytes",
                 (unsigned long long)store_ingest_offset(j->in), (unsigned long long)j->total);
  if (j->err.code != 0) /* a callback's own reason is the better one */
    *e = j->err;
  return -e->code;
}

/* Whether e ends the fetch rather than moving on to the next source. */
static bool fatal(const struct fetch_job *j, const struct fetch_source *s, const ep_err *e) {
  return atomic_load(&j->f->stopping) || e->code == EP_ECANCELED || e->code == EP_ENOSPC ||
         e->code == EP_ETOOBIG || e->code == EP_EDIGEST ||
         (s->kind == SRC_UPSTREAM && !retryable(e->code));
}

/* No source to ask now. Returns <0 (j->err set) when the fetch gives up:
 * after budget_ms without a byte once it has bytes or a peer to wait for,
 * else (upstream only, nothing held: an offline registry should answer
 * fast) after max_attempts rounds with a growing backoff. */
static int wait_for_source(struct fetch_job *j, bool budget, int64_t progress_ms, int *rounds,
                           const ep_err *last) {
  fetcher *f = j->f;
  int64_t now = ep_mono_ms();
  bool over = budget ? now - progress_ms >= f->deps.budget_ms : ++*rounds >= f->deps.max_attempts;
  if (atomic_load(&f->stopping) || over) {
    j->err = *last;
    return -last->code;
  }
  long ms = budget ? FETCH_IDLE_MS : FETCH_BACKOFF_MS * *rounds;
  if (!budget)
    j->nretry = 0; /* a new round: everyone again */
  if (!fetch_nap(f, ms)) {
    j->err = *last;
    return -last->code;
  }
  return 0;
}

/* Transfers until the ingest holds the whole blob. */
static int fetch_transfer(struct fetch_job *j) {
  struct fetch_source list[FETCH_SOURCES_MAX];
  ep_err last = {0};
  int rounds = 0;
  bool peers = false;
  int64_t progress_ms = ep_mono_ms();
  uint64_t progress_at = store_ingest_offset(j->in);
  for (;;) {
    beat(j);
    if (holds_all(j))
      return 0;
    size_t n = pick(j, list);
    for (size_t i = 0; i < n; i++)
      peers |= list[i].kind == SRC_PEER;
    if (n == 0 && last.code == 0)
      ep_error(&last, EP_EUNREACH,
               "no source: no parent, no peer holding the blob, and the upstream not allowed");
    int64_t now = ep_mono_ms();
    const struct fetch_source *s = n > 0 ? next_source(j, list, n, now) : NULL;
    if (s == NULL) {
      bool budget = peers || store_ingest_offset(j->in) > 0;
      int64_t since = atomic_load(&j->demand_ms);
      since = since > progress_ms ? since : progress_ms;
      if (wait_for_source(j, budget, since, &rounds, &last) < 0)
        return -j->err.code;
      continue;
    }
    struct fetch_source src = *s; /* list is re-picked below */
    ep_err e = {0};
    int tr = try_source(j, &src, &e);
    publish(j, true);
    if (store_ingest_offset(j->in) > progress_at) {
      progress_at = store_ingest_offset(j->in);
      progress_ms = ep_mono_ms();
      rounds = 0;
      j->nretry = 0;
    }
    if (tr == 0)
      return 0;
    last = e;
    if (j->lied)
      blame_source(j, &src, e.msg);
    if (fatal(j, &src, &e)) {
      j->err = e;
      return -e.code;
    }
    ep_log_warn("fetch %s from %s: %s; trying the next source", j->digest.hex, src_name(j), e.msg);
    retry_later(j, &src, ep_mono_ms());
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

static int size_cb(const struct index_node *n, uint64_t size, void *ud) {
  (void)n;
  *(uint64_t *)ud = size;
  return size > 0;
}

/* The blob's size from the locality index (a node announced it complete). */
static uint64_t indexed_size(fetcher *f, const digest_t *d) {
  uint64_t size = 0;
  ep_err e = {0};
  if (f->deps.idx != NULL && index_where(f->deps.idx, d, size_cb, &size, &e) < 0)
    return 0;
  return size;
}

/* A partial at or past the known size that does not hash to the digest can
 * never become the blob: start over (nothing was published yet). */
static int check_partial(struct fetch_job *j) {
  uint64_t have = store_ingest_offset(j->in);
  if (j->known == 0 || have < j->known || store_ingest_complete(j->in))
    return 0;
  ep_log_warn("fetch %s: the partial holds %llu bytes of %llu and is wrong; discarding it",
              j->digest.hex, (unsigned long long)have, (unsigned long long)j->known);
  return store_ingest_reset(j->in, &j->err);
}

static int fetch_run(struct fetch_job *j) {
  fetcher *f = j->f;
  if (store_ingest_begin(f->deps.st, &j->digest, &j->in, &j->err) < 0)
    return -j->err.code;
  if (j->known == 0)
    j->known = indexed_size(f, &j->digest);
  if (j->known > f->deps.max_blob)
    return ep_error(&j->err, EP_ETOOBIG, "blob of %llu bytes, over the %llu allowed",
                    (unsigned long long)j->known, (unsigned long long)f->deps.max_blob);
  if (check_partial(j) < 0)
    return -j->err.code;
  int fd = store_ingest_open_reader(j->in, &j->err);
  if (fd < 0)
    return fd;
  pipe_attach_fd(j->pipe, fd);
  if (j->known > 0) {
    j->total = j->known;
    pipe_set_size(j->pipe, j->known);
  }
  publish(j, true);
  int r = fetch_transfer(j);
  if (r < 0)
    return r;
  /* Verified is enough to forward: readers and children get the last byte
   * now, from the partial's fd; durability follows off their path. */
  if (store_ingest_verify(j->in, &j->err) < 0)
    return -j->err.code;
  j->committed = store_ingest_offset(j->in);
  pipe_complete(j->pipe, j->committed);
  return fetch_commit(j);
}

/* The bytes on disk were wrong: every peer that contributed is suspect
 * (with Range resumes more than one may have; the upstream cannot be
 * avoided and is only logged). */
static void report_bad_sources(struct fetch_job *j) {
  ep_log_err("fetch %s from %s/%s: %s; nothing committed, readers aborted", j->digest.hex, j->host,
             j->repo, j->err.msg);
  for (size_t i = 0; i < j->nblame; i++) {
    ep_log_err("fetch %s: peer %s served bytes that failed verification; marking it suspect",
               j->digest.hex, j->blame[i]);
    if (j->f->deps.metrics != NULL)
      metrics_add(&j->f->deps.metrics->suspects, 1);
    if (j->f->deps.on_bad_source != NULL)
      j->f->deps.on_bad_source(j->f->deps.sources_ud, j->blame[i], &j->digest, j->err.msg);
  }
}

static void jobs_remove(fetcher *f, struct fetch_job *j) {
  for (struct fetch_job **p = &f->jobs; *p != NULL; p = &(*p)->next_job)
    if (*p == j) {
      *p = j->next_job;
      return;
    }
}

static void count_end(struct fetch_job *j, int r) {
  struct metrics *m = j->f->deps.metrics;
  if (m == NULL)
    return;
  if (r == 0)
    metrics_observe_us(&m->fetch_seconds, (uint64_t)(ep_mono_ms() - j->start_ms) * 1000);
  else
    metrics_add(&m->fetch_failures, 1);
  if (r < 0 && j->err.code == EP_EDIGEST)
    metrics_add(&m->verify_failures, 1);
}

static void *fetch_thread(void *arg) {
  struct fetch_job *j = arg;
  fetcher *f = j->f;
  int r = fetch_run(j);
  if (r < 0) {
    /* a wrong, oversized or disk-filling partial is dropped; others resume */
    bool keep = j->err.code != EP_EDIGEST && j->err.code != EP_ETOOBIG && j->err.code != EP_ENOSPC;
    if (j->in != NULL)
      store_ingest_abort(j->in, keep);
    if (j->err.code == EP_EDIGEST)
      report_bad_sources(j);
    else
      ep_log_warn("fetch %s from %s/%s failed: %s%s", j->digest.hex, j->host, j->repo, j->err.msg,
                  keep ? " (partial kept for resuming)" : "");
    fetch_record_failure(f, &j->digest, &j->err);
  } else {
    ep_log_info("fetched %s from %s/%s (%llu bytes)", j->digest.hex, j->host, j->repo,
                (unsigned long long)j->total);
  }
  count_end(j, r);
  if (r == 0)
    pipe_publish(j->pipe, j->committed); /* verified: now the last byte too */
  if (r == 0)
    pipe_finish(j->pipe, true);
  else
    pipe_fail(j->pipe, j->err.code); /* a verified pipe stays complete */
  pipe_unref(j->pipe);
  pthread_mutex_lock(&f->lock);
  jobs_remove(f, j);
  free(j);
  if (--f->running == 0)
    pthread_cond_broadcast(&f->idle);
  pthread_mutex_unlock(&f->lock);
  return NULL;
}

static int start_job(fetcher *f, blob_pipe *p, const char *host, const char *repo,
                     const digest_t *d, const struct fetch_request *rq, ep_err *err) {
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
  if (rq != NULL && rq->exclude_node != NULL)
    snprintf(j->exclude, sizeof j->exclude, "%s", rq->exclude_node);
  j->hops = rq != NULL ? rq->hops : 0;
  j->known = rq != NULL ? rq->size : 0;
  pipe_ref(p); /* the writer's reference, dropped by the thread */

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  atomic_init(&j->beat_ms, ep_mono_ms());
  atomic_init(&j->demand_ms, ep_mono_ms());
  j->start_ms = ep_mono_ms();
  pthread_mutex_lock(&f->lock);
  bool full = f->deps.max_jobs > 0 && f->running >= f->deps.max_jobs;
  if (!full) {
    f->running++;
    f->started++;
    j->next_job = f->jobs;
    f->jobs = j;
  }
  pthread_mutex_unlock(&f->lock);
  if (full) {
    pthread_attr_destroy(&attr);
    pipe_unref(p);
    free(j);
    return ep_error(err, EP_ECANCELED, "too many fetches in flight (%u, --max-fetches)",
                    f->deps.max_jobs);
  }
  pthread_t tid;
  int rc = pthread_create(&tid, &attr, fetch_thread, j);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    pthread_mutex_lock(&f->lock);
    jobs_remove(f, j);
    if (--f->running == 0)
      pthread_cond_broadcast(&f->idle);
    pthread_mutex_unlock(&f->lock);
    pipe_unref(p);
    free(j);
    return ep_error(err, EP_EINTERNAL, "cannot start fetch thread: error %d", rc);
  }
  return 0;
}

/* A new reader of a fetch in flight: its budget starts now (demand_ms). */
static void renew_demand(fetcher *f, const blob_pipe *p) {
  pthread_mutex_lock(&f->lock);
  for (struct fetch_job *j = f->jobs; j != NULL; j = j->next_job)
    if (j->pipe == p)
      atomic_store(&j->demand_ms, ep_mono_ms());
  pthread_mutex_unlock(&f->lock);
}

int fetcher_open(fetcher *f, const char *host, const char *repo, const digest_t *d, blob_pipe **out,
                 ep_err *err) {
  return fetcher_open_req(f, host, repo, d, NULL, out, err);
}

int fetcher_open_req(fetcher *f, const char *host, const char *repo, const digest_t *d,
                     const struct fetch_request *rq, blob_pipe **out, ep_err *err) {
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
    int r = start_job(f, p, host, repo, d, rq, err);
    if (r < 0) {
      if (err != NULL) /* requests that joined meanwhile answer the same */
        fetch_record_failure(f, d, err);
      pipe_finish(p, false);
      pipe_unref(p);
      return r;
    }
  } else {
    renew_demand(f, p);
  }
  *out = p;
  return 0;
}
