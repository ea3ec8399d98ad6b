/* The upstream registry client (libcurl).
 *
 * Maps a registry host to an endpoint URL (default https://<host>, docker.io
 * → https://registry-1.docker.io, overridden by --registry HOST=URL) and
 * speaks the pull side of the distribution API to it:
 *  - anonymous Bearer token flow as Docker Hub does it: a 401 with
 *    `WWW-Authenticate: Bearer realm=…,service=…,scope=…` makes us fetch a
 *    token from the realm (with basic credentials when configured for that
 *    registry) and retry; tokens are cached per (registry, scope) until they
 *    expire;
 *  - `WWW-Authenticate: Basic` is answered with the configured credentials;
 *  - redirects (301/302/303/307/308, e.g. to a CDN) are followed by hand,
 *    at most 5, and never carry the Authorization header; a redirect or a
 *    token realm may lead only to public addresses or to the registry's own
 *    kind of network, never from https to http (upstream_policy.c).
 * Every size read from the network is bounded. Thread safety: an upstream
 * handle is shared by all threads; each call uses its own curl easy handle;
 * the token cache has its own mutex. */
#ifndef EP_PLUGIN_UPSTREAM_H
#define EP_PLUGIN_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/ratelimit.h"
#include "store/digest.h"

#define UPSTREAM_MANIFEST_MAX (4u << 20) /* distribution spec suggests 4 MiB */
#define UPSTREAM_MEDIA_TYPE_MAX 256

typedef struct upstream upstream;

struct upstream_options {
  long connect_timeout_s;     /* default 10 */
  long low_speed_time_s;      /* abort a transfer slower than 1 KB/s for this long; default 30 */
  const char *user_agent;     /* default "edgepull/<version>" */
  const char *ca_file;        /* extra CA bundle, may be NULL */
  long peer_low_speed_time_s; /* peer transfers: stall timeout; default 5 */
  /* Mutual TLS to peers (all three or none; NULL: plain HTTP, the
   * --peer-insecure mode): the locality CA, the only one a peer's
   * certificate may chain to, and this node's certificate and key. */
  const char *peer_ca;
  const char *peer_cert;
  const char *peer_key;
  /* --upstream-max-rate: shared by every registry transfer (not peers'),
   * owned by the caller, outliving the handle; NULL = no cap. */
  ep_ratelimit *rate;
};

int upstream_new(const struct upstream_options *opt, upstream **out, ep_err *err);
void upstream_free(upstream *u);
/* Aborts every transfer in progress and refuses new ones (shutdown); the
 * calls return EP_ECANCELED. */
void upstream_cancel_all(upstream *u);
/* "HOST=URL": URL is http:// or https:// with no path beyond "/". */
int upstream_add_registry(upstream *u, const char *host, const char *url, ep_err *err);
int upstream_set_credentials(upstream *u, const char *host, const char *username,
                             const char *password, ep_err *err);
/* The allowlist (issue 12): the registry API (below) fetches only from
 * docker.io and from hosts given to upstream_add_registry,
 * upstream_set_credentials or upstream_allow_registry; any other host is
 * EP_EDENIED before a connection is made. upstream_open_local(u, true) lets
 * requests from this node's own runtime (the local endpoint, the
 * snapshotter, deploys) name any registry; a peer's never. */
int upstream_allow_registry(upstream *u, const char *host, ep_err *err);
void upstream_open_local(upstream *u, bool open);
/* Whether host may be fetched from for a request from a peer (from_peer)
 * or from this node. */
bool upstream_registry_allowed(upstream *u, const char *host, bool from_peer);
/* Base URL (no trailing slash) for a host, written into buf. */
int upstream_endpoint(upstream *u, const char *host, char *buf, size_t len, ep_err *err);

struct upstream_manifest {
  digest_t digest; /* from Docker-Content-Digest, or computed from the body */
  bool have_digest;
  char media_type[UPSTREAM_MEDIA_TYPE_MAX];
  uint64_t size;
  void *body; /* malloc'd, NULL after HEAD; caller frees */
  size_t len;
};

/* HEAD, falling back to GET when the registry gives no digest on HEAD.
 * accept is passed through as the Accept header (may be NULL for a default
 * listing every manifest type edgepull knows). EP_ENOTFOUND on 404,
 * EP_EUPSTREAM for other statuses, EP_EUNREACH when no answer came. */
int upstream_manifest_resolve(upstream *u, const char *host, const char *repo, const char *ref,
                              const char *accept, struct upstream_manifest *out, ep_err *err);
/* GET a manifest (by tag or digest), body bounded by UPSTREAM_MANIFEST_MAX.
 * When ref is a digest the body is verified against it (EP_EDIGEST). */
int upstream_manifest_get(upstream *u, const char *host, const char *repo, const char *ref,
                          const char *accept, struct upstream_manifest *out, ep_err *err);
void upstream_manifest_clear(struct upstream_manifest *m);

/* Streaming blob download.
 * on_start(ud, offset, total): called once with the byte offset the body
 * starts at (the requested offset when the server honoured Range with 206,
 * 0 when it sent the whole blob with 200) and the blob's total size
 * (0 if unknown). Return <0 to abort.
 * on_data(ud, buf, len): body bytes in order. Return <0 to abort. */
struct upstream_blob_sink {
  int (*on_start)(void *ud, uint64_t offset, uint64_t total);
  int (*on_data)(void *ud, const void *buf, size_t len);
  void *ud;
};
int upstream_blob_get(upstream *u, const char *host, const char *repo, const digest_t *d,
                      uint64_t offset, const struct upstream_blob_sink *sink, ep_err *err);
/* 1 and *size when present upstream, 0 when 404, <0 on error. */
int upstream_blob_head(upstream *u, const char *host, const char *repo, const digest_t *d,
                       uint64_t *size, ep_err *err);

/* ---- peers (upstream_peer.c) -------------------------------------------
 * Another edgepulld's peer endpoint, the same pull API: no token flow, no
 * redirects (a 3xx is an error), Basic auth with this node's id and the
 * locality secret, X-Edgepull-Node (so the peer never asks us back for the
 * blob) and X-Edgepull-Hops (loop breaker). base_url is "http://addr:port".
 * ns_registry is sent as ?ns= so the peer knows the upstream. With peer TLS
 * configured the request goes over https to that address, and the answer
 * is taken only from a server whose certificate, issued by the locality
 * CA, names auth->peer: an advertised address is bound to a node id. */
#define UPSTREAM_PEER_HOPS_MAX 32

struct upstream_peer_auth {
  const char *node;   /* this node's id: Basic username and X-Edgepull-Node */
  const char *secret; /* NULL or "": no Authorization header */
  const char *peer;   /* the node id expected at base_url (required with peer TLS) */
};

int upstream_peer_blob_get(upstream *u, const char *base_url, const char *ns_registry,
                           const char *repo, const digest_t *d, uint64_t offset,
                           const struct upstream_peer_auth *auth, unsigned hops,
                           const struct upstream_blob_sink *sink, ep_err *err);
/* GET a manifest by tag or digest from a peer; a digest reference is
 * verified against the body (EP_EDIGEST). EP_ENOTFOUND on 404. */
int upstream_peer_manifest_get(upstream *u, const char *base_url, const char *ns_registry,
                               const char *repo, const char *ref, const char *accept,
                               const struct upstream_peer_auth *auth, unsigned hops,
                               struct upstream_manifest *out, ep_err *err);

#endif
