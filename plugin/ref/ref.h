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
#include "store/digest.h"

#define REF_NAME_MAX 255 /* repository name, per distribution spec */
#define REF_TAG_MAX 128
#define REF_HOST_MAX 255

enum ref_kind {
  REF_BASE,     /* /v2/ */
  REF_MANIFEST, /* /v2/<name>/manifests/<reference> */
  REF_BLOB,     /* /v2/<name>/blobs/<digest> */
};

struct ref_target {
  enum ref_kind kind;
  char
      registry[REF_HOST_MAX + 1]; /* upstream host, e.g. "docker.io", "ghcr.io", "127.0.0.1:5000" */
  char name[REF_NAME_MAX + 1];    /* repository within it, e.g. "library/alpine" */
  bool by_digest;                 /* reference is a digest (always for blobs) */
  char tag[REF_TAG_MAX + 1];      /* when !by_digest */
  digest_t digest;                /* when by_digest */
};

/* Name component grammar: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*, joined by '/'. */
bool ref_name_valid(const char *name);
/* Tag grammar: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}. */
bool ref_tag_valid(const char *tag);
/* A registry host[:port] as containerd passes it in ns: DNS name or IPv4, or
 * [IPv6], optional port 1-65535. */
bool ref_host_valid(const char *host);

/* Same as ref_name_valid for exactly len bytes (a NUL byte inside is invalid). */
bool ref_name_valid_n(const char *name, size_t len);

/* Writes a printable, bounded copy of s (len bytes) for error messages:
 * bytes outside 0x20..0x7e and '"', '\\' become \xNN, at most ~60 input
 * bytes are shown and "..." marks a cut. Always NUL-terminates out (outsz > 0). */
void ref_quote(char *out, size_t outsz, const char *s, size_t len);

/* Parses a request path (already URL-decoded by the HTTP server) plus the
 * value of the `ns` query argument (NULL when absent).
 *
 * The upstream registry is chosen as follows:
 *  - ns present (containerd): ns is the registry, path is the plain name;
 *  - ns absent, the name has two or more components and the first one
 *    contains a '.' or ':' or is "localhost" (podman/CRI-O mirror location
 *    "127.0.0.1:5050/ghcr.io"): that component is the registry and is removed
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
