/* Which blobs the disk GC removes: a pure function of the candidates (what
 * the store holds, with what the index, the fetch engine, the readers and
 * the locality say of each) and the limits (--store-max, --store-min-free).
 * No I/O, no clock: the GC runner (plugin/gc) gathers the facts, this
 * decides, so every rule is unit-tested on its own (tests/unit/test_gc_policy.c).
 *
 * Watermarks: with --store-max M, a GC is due once the store holds more than
 * the high watermark (GC_HIGH_PCT of M) and removes down to the low one
 * (GC_LOW_PCT of M); with --store-min-free F, once the filesystem has less
 * than F free, and removes until F + F/4 is free. A forced GC (edgepullctl
 * gc) removes down to the low watermarks even when none is crossed.
 *
 * Never removed: a blob in flight (being fetched), one being read (a
 * client's response, the snapshotter's unpack), a pinned one (edgepullctl
 * pin), a manifest (small, and what pins and image views are resolved
 * through), an image's config (small, and what the chain-ID lookup of a
 * client without CRI labels reads, plugin/mirror/chains.c), and the locality's only copy of a blob
 * another online node still needs. Among the others, first those whose layer the snapshotter keeps
 * unpacked, then those held by the most other nodes (the layer held by the fewest is kept longest),
 * then the least recently used. */
#ifndef EP_STORE_GC_POLICY_H
#define EP_STORE_GC_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/digest.h"

#define GC_HIGH_PCT 90 /* of --store-max: a GC is due above it */
#define GC_LOW_PCT 75  /* of --store-max: a GC removes down to it */

enum gc_flag {
  GC_IN_FLIGHT = 1u << 0, /* being fetched */
  GC_READING = 1u << 1,   /* being read from the store */
  GC_PINNED = 1u << 2,    /* reachable from a pinned image */
  GC_MANIFEST = 1u << 3,  /* a manifest or index */
  GC_NEEDED = 1u << 4,    /* another online node needs it (holds an image referencing it) */
  GC_UNPACKED = 1u << 5,  /* the snapshotter keeps its layer unpacked */
  GC_CONFIG = 1u << 6,    /* an image's config */
};

struct gc_candidate {
  digest_t digest;
  uint64_t size;
  int64_t last_access; /* unix seconds */
  unsigned holders;    /* other online nodes of the locality holding it complete */
  unsigned flags;      /* enum gc_flag */
};

struct gc_limits {
  uint64_t store_max; /* bytes; 0 = no quota */
  uint64_t min_free;  /* bytes; 0 = none */
};

struct gc_usage {
  uint64_t store_bytes; /* complete blobs */
  uint64_t free_bytes;  /* available to the daemon on the store's filesystem */
};

struct gc_plan {
  size_t *evict; /* indexes into the candidates, in removal order (malloc'd) */
  size_t nevict;
  uint64_t want_bytes;  /* what the limits ask to remove */
  uint64_t evict_bytes; /* what the plan removes */
  uint64_t kept_bytes;  /* protected bytes (in flight, read, pinned, needed, manifests, configs) */
  uint64_t held_bytes;  /* of those, in flight or being read: evictable once the readers end */
};

/* Why a candidate may not go (a GC_* flag set), or 0 when it may. */
unsigned gc_protected(const struct gc_candidate *c);
/* Bytes the limits ask to remove now (0: no GC is due, unless forced). */
uint64_t gc_want_bytes(const struct gc_limits *lim, const struct gc_usage *use, bool force);
/* Whether a GC is due (a high watermark crossed). */
bool gc_due(const struct gc_limits *lim, const struct gc_usage *use);
/* Orders the candidates and picks the fewest, in that order, that remove
 * gc_want_bytes(); never a protected one. The candidates are not changed.
 * 0, or -1 out of memory. gc_plan_free frees. */
int gc_plan_make(const struct gc_candidate *c, size_t n, const struct gc_limits *lim,
                 const struct gc_usage *use, bool force, struct gc_plan *out);
void gc_plan_free(struct gc_plan *p);

#endif
