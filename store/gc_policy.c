/* The disk GC's decision (store/gc_policy.h): pure, so the rules are
 * tested without a store, an index or a clock. */
#include "store/gc_policy.h"

#include <stdlib.h>
#include <string.h>

unsigned gc_protected(const struct gc_candidate *c) {
  unsigned hard = c->flags & (GC_IN_FLIGHT | GC_READING | GC_PINNED | GC_MANIFEST | GC_CONFIG);
  /* Needed elsewhere matters only for the locality's last copy: another
   * holder can serve the node that needs it. */
  if ((c->flags & GC_NEEDED) && c->holders == 0)
    hard |= GC_NEEDED;
  return hard;
}

static uint64_t pct(uint64_t v, unsigned p) {
  return v / 100 * p + v % 100 * p / 100; /* no overflow near 2^64 */
}

bool gc_due(const struct gc_limits *lim, const struct gc_usage *use) {
  if (lim->store_max > 0 && use->store_bytes > pct(lim->store_max, GC_HIGH_PCT))
    return true;
  return lim->min_free > 0 && use->free_bytes < lim->min_free;
}

uint64_t gc_want_bytes(const struct gc_limits *lim, const struct gc_usage *use, bool force) {
  if (!force && !gc_due(lim, use))
    return 0;
  uint64_t want = 0;
  if (lim->store_max > 0) {
    uint64_t low = pct(lim->store_max, GC_LOW_PCT);
    if (use->store_bytes > low)
      want = use->store_bytes - low;
  }
  if (lim->min_free > 0) {
    uint64_t goal = lim->min_free + lim->min_free / 4;
    if (use->free_bytes < goal && goal - use->free_bytes > want)
      want = goal - use->free_bytes;
  }
  return want;
}

/* Removal order: unpacked layers first (the snapshotter keeps what the
 * runtime uses), then the blobs held by the most other nodes, then the
 * least recently used; the digest breaks ties so a plan is reproducible. */
static int order(const struct gc_candidate *a, const struct gc_candidate *b) {
  bool ua = (a->flags & GC_UNPACKED) != 0, ub = (b->flags & GC_UNPACKED) != 0;
  if (ua != ub)
    return ua ? -1 : 1;
  if (a->holders != b->holders)
    return a->holders > b->holders ? -1 : 1;
  if (a->last_access != b->last_access)
    return a->last_access < b->last_access ? -1 : 1;
  return memcmp(a->digest.hex, b->digest.hex, sizeof a->digest.hex);
}

/* qsort has no context argument in C11: sort (index, pointer) pairs. */
struct ranked {
  size_t i;
  const struct gc_candidate *c;
};

static int cmp_ranked(const void *x, const void *y) {
  const struct ranked *a = x, *b = y;
  return order(a->c, b->c);
}

int gc_plan_make(const struct gc_candidate *c, size_t n, const struct gc_limits *lim,
                 const struct gc_usage *use, bool force, struct gc_plan *out) {
  memset(out, 0, sizeof *out);
  out->want_bytes = gc_want_bytes(lim, use, force);
  struct ranked *r = n > 0 ? calloc(n, sizeof *r) : NULL;
  if (n > 0 && r == NULL)
    return -1;
  size_t nr = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned why = gc_protected(&c[i]);
    if (why != 0)
      out->kept_bytes += c[i].size;
    /* Held only by readers: the one reason a store stays over its quota for a while that the
     * next pass, after they end, can fix (the report says so). */
    if (why != 0 && (why & ~(unsigned)(GC_IN_FLIGHT | GC_READING)) == 0)
      out->held_bytes += c[i].size;
    if (why == 0)
      r[nr++] = (struct ranked){.i = i, .c = &c[i]};
  }
  if (out->want_bytes == 0 || nr == 0) {
    free(r);
    return 0;
  }
  qsort(r, nr, sizeof *r, cmp_ranked);
  if ((out->evict = calloc(nr, sizeof *out->evict)) == NULL) {
    free(r);
    return -1;
  }
  for (size_t k = 0; k < nr && out->evict_bytes < out->want_bytes; k++) {
    out->evict[out->nevict++] = r[k].i;
    out->evict_bytes += r[k].c->size;
  }
  free(r);
  return 0;
}

void gc_plan_free(struct gc_plan *p) {
  free(p->evict);
  p->evict = NULL;
  p->nevict = 0;
}
