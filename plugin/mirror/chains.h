/* Chain IDs of the images this node holds (issue 10 point 3, clients without CRI labels).
 *
 * containerd names a layer's snapshot by its chain ID (identity.ChainID over the config's
 * rootfs.diff_ids), and a plain `ctr images pull --snapshotter edgepull` sends only that:
 * Prepare(labels containerd.io/snapshot.ref=<chainID>), no layer digest. The manifests and
 * configs that went through the mirror are in the store and the index, so the layer digest can
 * be found again: the manifest's layer i is the one whose chain ID is chains[i]. */
#ifndef EP_PLUGIN_MIRROR_CHAINS_H
#define EP_PLUGIN_MIRROR_CHAINS_H

#include <stddef.h>

#include "common/err.h"
#include "store/digest.h"
#include "store/index.h"
#include "store/store.h"

/* Largest image config read (the registry's bytes: bounded). */
#define CHAINS_CONFIG_MAX (4u << 20)

/* chains[i] = identity.ChainID(diff_ids[0..i]) from an image config's rootfs.diff_ids, which
 * must hold exactly nlayers entries (EP_EINVAL otherwise). */
int chains_from_config(const void *cfg, size_t len, size_t nlayers, digest_t *chains, ep_err *err);

struct chain_hit {
  digest_t layer;                /* the compressed layer blob */
  char registry[INDEX_NAME_MAX]; /* where the manifest came from, as the mirror names it */
  char repository[INDEX_NAME_MAX];
};

/* Looks chain up in every image manifest of the index whose config is in the store. 1 found,
 * 0 not found, < 0 error. A chain several images share: the first manifest in digest order. */
int chains_lookup(index_db *idx, store *st, const digest_t *chain, struct chain_hit *out,
                  ep_err *err);

/* Calls fn for each layer of every image manifest of the index whose config is in the store,
 * with the layer's chain ID, in manifest digest order; a non-zero return stops the walk and is
 * returned. */
typedef int (*chains_fn)(const struct index_manifest *m, const digest_t *chain,
                         const digest_t *layer, void *ud);
int chains_foreach(index_db *idx, store *st, chains_fn fn, void *ud, ep_err *err);

#endif
