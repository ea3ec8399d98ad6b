/* The disk GC: keeps the store within --store-max and the filesystem above
 * --store-min-free, and removes stale partials.
 *
 * A thread of its own runs a pass when woken (gc_kick: a blob was
 * committed) or every GC_PERIOD_MS; edgepullctl gc runs one at once
 * (gc_run, forced down to the low watermarks, or only planned with
 * dry_run). A pass gathers the facts (the index's gc blobs, the pipes in
 * flight, the readers' holds, the snapshotter's unpacked layers), lets
 * store/gc_policy.h decide, and removes each chosen blob: the store's file,
 * then the index row, then it tells the locality (deps.removed: an
 * inventory delta with `del`). Passes are serialized by one mutex. */
#ifndef EP_STORE_GC_H
#define EP_STORE_GC_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "store/gc_policy.h"
#include "store/holds.h"
#include "store/index.h"
#include "store/pipe.h"
#include "store/store.h"

#define GC_PERIOD_MS 30000

struct gc_report;

struct gc_deps {
  store *st;
  index_db *idx;
  pipe_table *pipes; /* blobs in flight; may be NULL */
  hold_table *holds; /* blobs being read; may be NULL */
  const char *self;  /* this node's id in the locality, "" when standalone */
  struct gc_limits lim;
  int64_t partial_max_age_s; /* partials not written for this long go */
  unsigned partial_keep;     /* and the oldest beyond this many */
  /* Sets GC_UNPACKED on the candidates whose layer the snapshotter keeps unpacked, once per
   * pass on the GC's thread (NULL: none is). */
  void (*mark_unpacked)(void *ud, struct gc_candidate *c, size_t n);
  /* d (size bytes) was removed from the store and the index (NULL: nobody
   * listens). */
  void (*removed)(void *ud, const digest_t *d, uint64_t size);
  /* A pass (not a dry run) ended with this report (NULL: nobody listens). */
  void (*passed)(void *ud, const struct gc_report *rep);
  void *ud;
};

struct gc_report {
  uint64_t store_bytes, free_bytes; /* before the pass */
  uint64_t want_bytes;              /* what the limits asked to remove */
  uint64_t evicted_bytes;
  uint64_t kept_bytes; /* protected */
  /* Of those, in flight or being read: not evictable now, evictable once their readers end. */
  uint64_t held_bytes;
  /* What the pass could not remove of want_bytes (the store stays over a watermark): held by
   * readers (held_bytes), else pinned, manifests, configs or the locality's last copy. */
  uint64_t short_bytes;
  /* Compressed layers whose unpacked snapshot the snapshotter keeps (the first to go). */
  uint64_t unpacked_bytes;
  unsigned evicted;    /* blobs removed (or, dry run, that would be) */
  unsigned candidates; /* complete blobs considered */
  unsigned partials;   /* stale partials removed (0 in a dry run) */
  bool dry_run;
};

typedef struct gc_runner gc_runner;

/* Starts the thread (deps copied; self copied too). */
int gc_runner_new(const struct gc_deps *deps, gc_runner **out, ep_err *err);
/* Stops the thread, waits for a pass in progress, frees. NULL: no-op. */
void gc_runner_free(gc_runner *g);
/* Wakes the thread for a pass (thread-safe, never blocks on a pass). */
void gc_kick(gc_runner *g);
/* One pass now, on the caller's thread. force: down to the low watermarks
 * even if no high one is crossed; dry_run: plan only, remove nothing.
 * json (may be NULL) gets the report and the blobs as a JSON object
 * (malloc'd, caller frees). */
int gc_run(gc_runner *g, bool force, bool dry_run, struct gc_report *rep, char **json, ep_err *err);
/* Bytes of complete blobs (the index's count) and available on the store's
 * filesystem, as a pass sees them. */
int gc_usage_now(store *st, index_db *idx, struct gc_usage *out, ep_err *err);

#endif
