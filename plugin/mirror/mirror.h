/* Manifests through the mirror: tags resolved upstream and cached with a
 * TTL (served stale when the upstream cannot be reached), manifests by
 * digest kept in the store like blobs. */
#ifndef EP_PLUGIN_MIRROR_H
#define EP_PLUGIN_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

#include "plugin/daemon/daemon.h"
#include "plugin/ref/ref.h"

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
int mirror_manifest(struct edgepulld *d, const struct ref_target *t, const char *accept,
                    struct mirror_manifest *out, ep_err *err);
/* mirror_manifest for a request from a peer (rq may be NULL): the asking
 * node is never asked back, hops are forwarded + 1. */
int mirror_manifest_req(struct edgepulld *d, const struct ref_target *t, const char *accept,
                        const struct fetch_request *rq, struct mirror_manifest *out, ep_err *err);
void mirror_manifest_clear(struct mirror_manifest *m);

#endif
