/* The index's side of the disk GC (schema v3, store/index_gc.c): pinned
 * images, and the facts the GC policy (store/gc_policy.h) decides on. */
#ifndef EP_STORE_INDEX_GC_H
#define EP_STORE_INDEX_GC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/digest.h"
#include "store/index.h"

/* An image pinned by `edgepullctl pin`: the reference as given and the
 * manifest digest it resolved to then. */
struct index_pin {
  char registry[INDEX_NAME_MAX];
  char repository[INDEX_NAME_MAX];
  char reference[INDEX_NAME_MAX]; /* a tag or "sha256:..." */
  digest_t digest;
  int64_t created;
};

/* Records (or moves) a pin. */
int index_pin_put(index_db *db, const struct index_pin *p, ep_err *err);
/* Removes the pin with p's registry, repository and reference: 1 removed,
 * 0 there was none. */
int index_pin_delete(index_db *db, const struct index_pin *p, ep_err *err);
/* Every pin (*out malloc'd, caller frees). */
int index_pins(index_db *db, struct index_pin **out, size_t *n, ep_err *err);

struct index_gc_blob {
  digest_t digest;
  uint64_t size;
  int64_t last_access;
  unsigned holders; /* other online nodes whose inventory holds it */
  bool needed;      /* another online node holds a manifest referencing it, not it */
  bool pinned;      /* reachable from a pinned manifest */
  bool manifest;
  bool config; /* an image manifest's config (plugin/mirror/chains.c reads it) */
};

/* Every complete blob with its GC facts; self is this node's id ("" when
 * standalone). *out malloc'd, caller frees. */
int index_gc_blobs(index_db *db, const char *self, struct index_gc_blob **out, size_t *n,
                   ep_err *err);

/* The complete blobs reachable from manifest root (root included, through manifest_refs), each
 * once, in digest order: what edgepullctl du sizes an image by. *out malloc'd, caller frees. */
struct index_sized_blob {
  digest_t digest;
  uint64_t size;
};
int index_image_blobs(index_db *db, const digest_t *root, struct index_sized_blob **out, size_t *n,
                      ep_err *err);

#endif
