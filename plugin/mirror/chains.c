/* Chain IDs from the manifests and configs the mirror stored. A full scan of the index's
 * manifests per lookup: an edge node holds tens of images, and the lookup runs once per layer of
 * a pull by a client that sends no CRI labels, so a cache would cost more (invalidation when GC
 * drops an image) than it saves. */
#include "plugin/mirror/chains.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/mirror/manifest.h"

int chains_from_config(const void *cfg, size_t len, size_t nlayers, digest_t *chains, ep_err *err) {
  json_error_t je;
  json_t *j = json_loadb(cfg, len, 0, &je);
  json_t *ids = json_object_get(json_object_get(j, "rootfs"), "diff_ids");
  int r = 0;
  if (!json_is_array(ids) || json_array_size(ids) != nlayers)
    r = ep_error(err, EP_EINVAL, "image config: rootfs.diff_ids missing or not one per layer");
  for (size_t i = 0; r == 0 && i < nlayers; i++) {
    digest_t diff;
    const char *s = json_string_value(json_array_get(ids, i));
    if (s == NULL || digest_parse(s, &diff, NULL) < 0) {
      r = ep_error(err, EP_EINVAL, "image config: diff_id %zu not sha256:<hex>", i);
    } else {
      digest_chain_id(i ? &chains[i - 1] : NULL, &diff, &chains[i]);
    }
  }
  json_decref(j);
  return r;
}

struct scan {
  index_db *idx;
  store *st;
  chains_fn fn;
  void *ud;
  ep_err *err;
};

/* Calls s->fn for each layer of manifest m with its chain ID; manifests that can't be read (an
 * index, a config not held, a config that doesn't match the manifest) have none: they aren't
 * ours. */
static int scan_one(const struct index_manifest *m, void *ud) {
  struct scan *s = ud;
  if (strcmp(m->media_type, MT_OCI_INDEX) == 0 || strcmp(m->media_type, MT_DOCKER_LIST) == 0)
    return 0;
  digest_t *refs = NULL;
  size_t n = 0;
  int r = index_manifest_refs(s->idx, &m->digest, &refs, &n, s->err);
  if (r < 0) {
    free(refs);
    return r; /* the index failed: say so rather than answer "unknown" */
  }
  void *cfg = NULL;
  size_t len = 0;
  digest_t *chains = n >= 2 ? calloc(n - 1, sizeof *chains) : NULL;
  r = 0;
  ep_err e = {0};
  /* refs[0] is the config (manifest_parse lists it first), then the layers in order */
  if (chains != NULL && store_read_all(s->st, &refs[0], CHAINS_CONFIG_MAX, &cfg, &len, &e) == 0 &&
      chains_from_config(cfg, len, n - 1, chains, &e) == 0) {
    for (size_t i = 0; i < n - 1 && r == 0; i++)
      r = s->fn(m, &chains[i], &refs[1 + i], s->ud);
  }
  free(cfg);
  free(chains);
  free(refs);
  return r;
}

int chains_foreach(index_db *idx, store *st, chains_fn fn, void *ud, ep_err *err) {
  struct scan s = {.idx = idx, .st = st, .fn = fn, .ud = ud, .err = err};
  return index_foreach_manifest(idx, scan_one, &s, err);
}

struct lookup {
  const digest_t *chain;
  struct chain_hit *out;
};

static int lookup_one(const struct index_manifest *m, const digest_t *chain, const digest_t *layer,
                      void *ud) {
  struct lookup *l = ud;
  if (!digest_equal(chain, l->chain))
    return 0;
  l->out->layer = *layer;
  snprintf(l->out->registry, sizeof l->out->registry, "%s", m->registry);
  snprintf(l->out->repository, sizeof l->out->repository, "%s", m->repository);
  return 1;
}

int chains_lookup(index_db *idx, store *st, const digest_t *chain, struct chain_hit *out,
                  ep_err *err) {
  struct lookup l = {.chain = chain, .out = out};
  return chains_foreach(idx, st, lookup_one, &l, err);
}
