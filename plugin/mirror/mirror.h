/* Manifests through the mirror: tags resolved upstream and cached with a
 * TTL (served stale when the upstream cannot be reached), manifests by
 * digest kept in the store like blobs. */
#ifndef EP_PLUGIN_MIRROR_H
#define EP_PLUGIN_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

#include "plugin/fetch/fetch.h"
#include "plugin/fetch/sources.h"
#include "plugin/ref/ref.h"
#include "plugin/upstream/upstream.h"
#include "store/index.h"
#include "store/store.h"

/* What the mirror uses, owned by the caller (the daemon), which passes the
 * same struct to every call. */
struct mirror_deps {
  store *st;
  index_db *idx;
  upstream *up;
  struct sources *src;     /* source order for manifests by digest, the gateway */
  const char *node_id;     /* this node, sent to peers */
  const char *peer_secret; /* locality secret for peers, NULL = none */
  int64_t tag_ttl_s;       /* a resolved tag is fresh this long */
  bool gateway;            /* resolves tags upstream itself */
  bool upstream_fallback;  /* --upstream-fallback */
};

struct mirror_manifest {
  digest_t digest;
  char media_type[256];
  void *body; /* malloc'd */
  size_t len;
  bool stale; /* tag answered from an expired cache entry */
};

/* Resolves t (a manifest target) and loads the manifest body. accept is the
 * client's Accept header (may be NULL). EP_ENOTFOUND when neither the
 * upstream nor the cache knows it. */
int mirror_manifest(const struct mirror_deps *d, const struct ref_target *t, const char *accept,
                    struct mirror_manifest *out, ep_err *err);
/* mirror_manifest for a request from a peer (rq may be NULL): the asking
 * node is never asked back, hops are forwarded + 1. */
int mirror_manifest_req(const struct mirror_deps *d, const struct ref_target *t, const char *accept,
                        const struct fetch_request *rq, struct mirror_manifest *out, ep_err *err);
void mirror_manifest_clear(struct mirror_manifest *m);

#endif
