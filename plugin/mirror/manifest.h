/* Manifests as edgepulld needs to understand them: their media type, the
 * digests they reference (config, layers, child manifests of an index), and
 * whether a client's Accept header admits a media type. */
#ifndef EP_PLUGIN_MANIFEST_H
#define EP_PLUGIN_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "store/digest.h"

#define MANIFEST_MAX_REFS 1024

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

struct manifest_info {
  char media_type[256]; /* from the body's mediaType, "" if absent */
  digest_t refs[MANIFEST_MAX_REFS];
  size_t nrefs;
};

/* Parses a manifest or index body. EP_EINVAL when it is not a JSON object or
 * a referenced digest is malformed; references with another algorithm are
 * skipped (we cannot hold them). */
int manifest_parse(const void *body, size_t len, struct manifest_info *out, ep_err *err);
/* True when accept (a comma-separated Accept header, may be NULL or empty)
 * admits media_type. */
bool manifest_accept_allows(const char *accept, const char *media_type);

#endif
