/* The daemon's side of the disk GC (store/gc.h): the limits from the
 * configuration, the readers' holds the endpoints take, removals announced
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
