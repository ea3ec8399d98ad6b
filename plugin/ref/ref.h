/* Parsing what a client sends to the registry endpoint: the request path,
 * containerd's `?ns=` query, repository names and references as the OCI
 * distribution spec defines them, and Range headers. Everything here is pure
 * and bounded, and rejects rather than repairs: a name that is not valid by
 * the spec never reaches a URL or a file name. */
#ifndef EP_PLUGIN_REF_H
#define EP_PLUGIN_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/names.h"
#include "store/digest.h"

enum ref_kind {
  REF_BASE,     /* /v2/ */
  REF_MANIFEST, /* /v2/<name>/manifests/<reference> */
  REF_BLOB,     /* /v2/<name>/blobs/<digest> */
};

struct ref_target {
  enum ref_kind kind;
  char registry[NAMES_HOST_MAX +
                1];              /* upstream host, e.g. "docker.io", "ghcr.io", "127.0.0.1:5000" */
  char name[NAMES_REPO_MAX + 1]; /* repository within it, e.g. "library/alpine" */
  bool by_digest;                /* reference is a digest (always for blobs) */
  char tag[NAMES_TAG_MAX + 1];   /* when !by_digest */
  digest_t digest;               /* when by_digest */
};

/* Parses a request path (already URL-decoded by the HTTP server) plus the
 * value of the `ns` query argument (NULL when absent).
 *
 * The upstream registry is chosen as follows:
 *  - ns present (containerd): ns is the registry, path is the plain name;
 *  - ns absent, the name has two or more components and the first one
 *    contains a '.' or ':' or is "localhost" (podman/CRI-O mirror location
 *    "127.0.0.1:5050/ghcr.io"; HOST_PORT for HOST:PORT, since a path
 *    component cannot hold ':', e.g. "127.0.0.1_15000" for 127.0.0.1:15000
 *    — a registry host never holds '_'): that component is the registry and is removed
 *    from the name. Docker Hub namespaces never contain a '.', so this cannot
 *    be mistaken for one (the same rule as Docker's own reference parsing);
 *  - otherwise (Docker's registry-mirrors): default_registry (docker.io).
 * For docker.io a one-component name gets "library/" in front.
 * EP_EINVAL (with a message naming the fault) for anything malformed,
 * EP_EUNSUPPORTED for a digest algorithm other than sha256, EP_ENOTFOUND for
 * a path that is not a pull API route. */
int ref_parse_request(const char *path, const char *ns, const char *default_registry,
                      struct ref_target *out, ep_err *err);

/* Range header, single range only ("bytes=a-b", "bytes=a-", "bytes=-n").
 * Returns 0 and sets [*first, *last] (inclusive) when satisfiable,
 * -EP_ERANGE when unsatisfiable for size (answer 416 bytes * /size),
 * -EP_EINVAL when malformed or multi-range. */
int ref_parse_range(const char *header, uint64_t size, uint64_t *first, uint64_t *last,
                    ep_err *err);

#endif
