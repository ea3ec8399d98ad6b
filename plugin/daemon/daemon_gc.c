/* The daemon's side of the disk GC (store/gc.h): the limits from the
 * configuration, the readers' holds the endpoints take, the layers the
 * snapshotter keeps unpacked (evicted first), removals announced
 * to the locality (inventory deltas with `del`) and counted in /metrics,
 * and the local endpoint's admin routes (edgepullctl gc, pin, unpin). */
#include <inttypes.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "common/log.h"
#include "common/size.h"
#include "plugin/agent/agent.h"
#include "plugin/daemon/daemon.h"
#include "plugin/mirror/chains.h"
#include "plugin/snapshot/remote.h"
#include "plugin/snapshot/service.h"
#include "store/index_gc.h"

#define GC_MIN_FREE_DEFAULT (512ull << 20) /* at most; 5 % of a smaller disk */

/* GC thread or an admin request: a blob was removed; the locality learns
 * it (an inventory delta with `del`), /metrics counts it. */
static void gc_removed(void *ud, const digest_t *dg, uint64_t size) {
  struct edgepulld *d = ud;
  metrics_add(&d->metrics.gc_evictions, 1);
  metrics_add(&d->metrics.gc_evicted_bytes, size);
  pthread_mutex_lock(&d->agent_mu);
  agent_blob_removed(d->agent, dg);
  pthread_mutex_unlock(&d->agent_mu);
}

/* GC thread or an admin request: a pass ended; /metrics shows what it could not remove and why. */
static void gc_passed(void *ud, const struct gc_report *rep) {
  struct edgepulld *d = ud;
  atomic_store(&d->metrics.gc_short_bytes, rep->short_bytes);
  atomic_store(&d->metrics.gc_held_bytes, rep->held_bytes);
  if (rep->short_bytes > 0)
    metrics_add(&d->metrics.gc_short_passes, 1);
}

/* The compressed layers the snapshotter keeps unpacked. A committed snapshot names its layer by
 * CRI's layer-digest label (containerd's CRI pulls, the remote path given CRI's labels), or only
 * by its chain ID (`ctr images pull`, nerdctl, CRI with snapshot annotations off): the layer is
 * then the one with that chain ID in an image this node holds, as plugin/mirror/chains.c finds it
 * for the snapshotter. */
struct digests {
  digest_t *v;
  size_t n, cap;
};

struct unpacked {
  struct digests layers, chains;
  bool oom;
};

static void push(struct unpacked *u, struct digests *s, const digest_t *dg) {
  if (s->n == s->cap) {
    size_t cap = s->cap == 0 ? 64 : 2 * s->cap;
    digest_t *v = realloc(s->v, cap * sizeof *v);
    if (v == NULL) {
      u->oom = true; /* the pass goes on as if nothing were unpacked */
      return;
    }
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = *dg;
}

static int digest_cmp(const void *a, const void *b) {
  return memcmp(((const digest_t *)a)->hex, ((const digest_t *)b)->hex, DIGEST_HEX_LEN);
}

static void sort(struct digests *s) {
  if (s->n > 1)
    qsort(s->v, s->n, sizeof *s->v, digest_cmp);
}

static bool has(const struct digests *s, const digest_t *dg) {
  return s->n > 0 && bsearch(dg, s->v, s->n, sizeof *s->v, digest_cmp) != NULL;
}

static int unpacked_row(const struct snap_info *i, void *ud) {
  struct unpacked *u = ud;
  const char *ld = snap_labels_get(&i->labels, SNAP_LABEL_LAYER_DIGEST);
  const char *ref = snap_labels_get(&i->labels, SNAP_LABEL_REF);
  digest_t dg;
  if (ld != NULL && digest_parse(ld, &dg, NULL) == 0)
    push(u, &u->layers, &dg);
  else if (ref != NULL && digest_parse(ref, &dg, NULL) == 0)
    push(u, &u->chains, &dg);
  return 0;
}

static int chain_layer(const struct index_manifest *m, const digest_t *chain, const digest_t *layer,
                       void *ud) {
  (void)m;
  struct unpacked *u = ud;
  if (has(&u->chains, chain))
    push(u, &u->layers, layer);
  return 0;
}

/* GC thread, once per pass: a compressed layer whose unpacked snapshot is kept goes first (the
 * runtime runs from the snapshot; the blob is needed again only to serve a peer). */
static void gc_mark_unpacked(void *ud, struct gc_candidate *c, size_t n) {
  struct edgepulld *d = ud;
  struct unpacked u = {0};
  static const char *const committed[] = {"kind==committed"};
  pthread_mutex_lock(&d->snaps_mu);
  snap *s = d->snaps != NULL ? snapshot_service_core(d->snaps) : NULL;
  int r = s != NULL ? snap_walk(s, committed, 1, unpacked_row, &u, NULL) : 0;
  pthread_mutex_unlock(&d->snaps_mu);
  sort(&u.chains);
  if (r == 0 && !u.oom && u.chains.n > 0)
    r = chains_foreach(d->idx, d->st, chain_layer, &u, NULL);
  sort(&u.layers);
  for (size_t i = 0; r == 0 && !u.oom && i < n; i++)
    if (has(&u.layers, &c[i].digest))
      c[i].flags |= GC_UNPACKED;
  free(u.layers.v);
  free(u.chains.v);
}

static int parse_size(const char *flag, const char *v, uint64_t *out, ep_err *err) {
  if (ep_size_parse(v, out) < 0)
    return ep_error(err, EP_EINVAL, "--%s %s: not a size", flag, v);
  return 0;
}

/* --store-min-free unset: 5 % of the store's file system, at most 512 MiB,
 * so a small SD card is not emptied to keep half a gigabyte free. */
static int default_min_free(store *st, uint64_t *out, ep_err *err) {
  struct statvfs vfs;
  if (fstatvfs(store_dirfd(st), &vfs) < 0)
    return ep_syserror(err, EP_EIO, "statvfs on the store");
  uint64_t five = (uint64_t)vfs.f_blocks * vfs.f_frsize / 20;
  *out = five < GC_MIN_FREE_DEFAULT ? five : GC_MIN_FREE_DEFAULT;
  return 0;
}

int daemon_gc_open(struct edgepulld *d, ep_err *err) {
  struct gc_limits lim = {0};
  int r = parse_size("store-max", d->cfg.store_max, &lim.store_max, err);
  if (r < 0)
    return r;
  if (d->cfg.store_min_free[0] != '\0')
    r = parse_size("store-min-free", d->cfg.store_min_free, &lim.min_free, err);
  else
    r = default_min_free(d->st, &lim.min_free, err);
  if (r < 0)
    return r;
  if ((d->holds = hold_table_new()) == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  d->gc_lim = lim;
  struct gc_deps gd = {.st = d->st,
                       .idx = d->idx,
                       .pipes = d->pipes,
                       .holds = d->holds,
                       .self = d->cfg.broker[0] != '\0' ? d->cfg.node_id : "",
                       .lim = lim,
                       .partial_max_age_s = d->cfg.partial_max_age_s,
                       .partial_keep = 2 * (unsigned)d->cfg.max_fetches,
                       .removed = gc_removed,
                       .passed = gc_passed,
                       .mark_unpacked = gc_mark_unpacked,
                       .ud = d};
  if ((r = gc_runner_new(&gd, &d->gc, err)) < 0)
    return r;
  ep_log_info("gc: store-max %" PRIu64 " bytes (0 = none), store-min-free %" PRIu64
              " bytes; high/low watermarks %d/%d %%",
              lim.store_max, lim.min_free, GC_HIGH_PCT, GC_LOW_PCT);
  return 0;
}

void daemon_gc_close(struct edgepulld *d) {
  gc_runner_free(d->gc);
  d->gc = NULL;
}

void daemon_gc_free_holds(struct edgepulld *d) {
  hold_table_free(d->holds);
  d->holds = NULL;
}

/* The pin's key for an image reference and, when want_digest, the
 * manifest digest it names on this node: the digest it carries, else the
 * tag as this node last resolved it. */
static int resolve(struct edgepulld *d, const char *image, bool want_digest, struct index_pin *p,
                   ep_err *err) {
  struct deploy_ref ref;
  int r = deploy_ref_parse(image, &ref, err);
  if (r < 0)
    return r;
  memset(p, 0, sizeof *p);
  snprintf(p->registry, sizeof p->registry, "%s", ref.registry);
  snprintf(p->repository, sizeof p->repository, "%s", ref.repo);
  if (ref.has_digest) {
    digest_format(&ref.digest, p->reference);
    p->digest = ref.digest;
    return 0;
  }
  snprintf(p->reference, sizeof p->reference, "%s", ref.tag);
  if (!want_digest)
    return 0;
  struct index_tag t;
  if ((r = index_tag_get(d->idx, ref.registry, ref.repo, ref.tag, &t, err)) < 0)
    return r;
  if (r == 0)
    return ep_error(err, EP_ENOTFOUND,
                    "%s/%s:%s is not in this node's index: pull it first, or pin it by digest",
                    ref.registry, ref.repo, ref.tag);
  p->digest = t.digest;
  return 0;
}

static int pin_answer(const struct index_pin *p, bool pinned, int changed, char **json,
                      ep_err *err) {
  char dg[DIGEST_STR_LEN + 1];
  digest_format(&p->digest, dg);
  json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "registry", p->registry, "repository",
                        p->repository, "reference", p->reference, "digest", pinned ? dg : "",
                        "pinned", pinned, "changed", changed > 0);
  *json = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return *json != NULL ? 0 : ep_error(err, EP_EINTERNAL, "out of memory");
}

/* Request thread of the local endpoint: POST /_edgepull/{gc,pin,unpin}. */
int daemon_gc_admin(void *ud, const char *op, const char *image, bool dry_run, char **json,
                    ep_err *err) {
  struct edgepulld *d = ud;
  if (strcmp(op, "gc") == 0)
    return gc_run(d->gc, true, dry_run, NULL, json, err);
  struct index_pin p;
  int r = resolve(d, image, strcmp(op, "pin") == 0, &p, err);
  if (r < 0)
    return r;
  if (strcmp(op, "pin") == 0) {
    p.created = (int64_t)time(NULL);
    if ((r = index_pin_put(d->idx, &p, err)) < 0)
      return r;
    ep_log_info("gc: pinned %s (%s/%s %.19s...)", image, p.registry, p.repository, p.digest.hex);
    return pin_answer(&p, true, 1, json, err);
  }
  if ((r = index_pin_delete(d->idx, &p, err)) < 0)
    return r;
  ep_log_info("gc: unpinned %s%s", image, r == 0 ? " (was not pinned)" : "");
  gc_kick(d->gc); /* what the pin kept may be over the quota */
  return pin_answer(&p, false, r, json, err);
}
