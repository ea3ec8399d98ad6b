/* The client side of the peer endpoint: another edgepulld is a registry that
 * speaks the same pull API, reached with the same curl machinery as an
 * upstream (upstream.c) but with a different contract:
 *  - no token flow and no redirects: a peer answers itself or not at all;
 *  - mutual TLS with the locality CA when configured: this node's
 *    certificate, and the server's must name the node expected at that
 *    address (upstream_transport.c);
 *  - Basic auth with (this node's id, the locality secret) on every request,
 *    and X-Edgepull-Node / X-Edgepull-Hops so the peer excludes us as a
 *    source and a stale parent assignment cannot loop forever;
 *  - short timeouts (the LAN): a peer that stops sending for the stall
 *    timeout (--peer-stall-timeout) is abandoned, so a child notices a
 *    powered-off parent within seconds and resumes elsewhere.
 * Nothing a peer says is trusted: blobs are verified by the fetcher before
 * commit, manifests by digest here. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "locality/proto.h"
#include "plugin/upstream/upstream_int.h"

/* What sources_base_url builds: an http:// URL of the one URL grammar. */
static bool peer_base_valid(const char *b) {
  char norm[NAMES_URL_MAX + 1];
  return strncmp(b, "http://", 7) == 0 && names_url_parse(b, norm, sizeof norm, NULL) == 0;
}

/* Checks the common arguments and builds the two edgepull header lines. */
static int peer_args(upstream *u, const char *base_url, const char *ns, const char *repo,
                     const struct upstream_peer_auth *auth, unsigned hops, char node_hdr[96],
                     char hops_hdr[48], ep_err *err) {
  if (base_url == NULL || !peer_base_valid(base_url))
    return ep_error(err, EP_EINVAL, "invalid peer URL");
  if (ns == NULL || !names_registry_valid(ns))
    return ep_error(err, EP_EINVAL, "invalid registry host");
  if (repo == NULL || !names_repo_valid(repo))
    return ep_error(err, EP_EINVAL, "invalid repository name");
  if (auth == NULL || auth->node == NULL || !names_node_id_valid(auth->node))
    return ep_error(err, EP_EINVAL, "peer request without a valid node id");
  if (hops > UPSTREAM_PEER_HOPS_MAX)
    return ep_error(err, EP_EINVAL, "peer request over %d hops", UPSTREAM_PEER_HOPS_MAX);
  if (u->peer_ca != NULL && (auth->peer == NULL || !names_node_id_valid(auth->peer)))
    return ep_error(err, EP_EINVAL, "peer request over TLS without the node id expected");
  snprintf(node_hdr, 96, "X-Edgepull-Node: %s", auth->node);
  snprintf(hops_hdr, 48, "X-Edgepull-Hops: %u", hops);
  return 0;
}

/* base_url says where (http://addr:port); the handle says how. */
static const char *peer_scheme(const upstream *u) {
  return u->peer_ca != NULL ? "https://" : "http://";
}

static int peer_perform(upstream *u, struct upstream_req *req, const struct upstream_peer_auth *a,
                        struct upstream_xfer *x, ep_err *err) {
  req->no_redirects = true;
  req->peer = true;
  req->peer_node = u->peer_ca != NULL ? a->peer : NULL;
  req->connect_timeout_s = u->peer_low_speed_time_s;
  req->low_speed_time_s = u->peer_low_speed_time_s;
  struct upstream_auth ua = {0};
  if (a->secret != NULL && a->secret[0] != '\0') {
    ua.user = a->node;
    ua.pass = a->secret;
  }
  return upstream_perform(u, req, &ua, x, err);
}

int upstream_peer_blob_get(upstream *u, const char *base_url, const char *ns_registry,
                           const char *repo, const digest_t *d, uint64_t offset,
                           const struct upstream_peer_auth *auth, unsigned hops,
                           const struct upstream_blob_sink *sink, ep_err *err) {
  char nh[96], hh[48];
  int rc = peer_args(u, base_url, ns_registry, repo, auth, hops, nh, hh, err);
  if (rc < 0)
    return rc;
  ep_err de = {0};
  if (d == NULL || digest_parse_hex(d->hex, &(digest_t){0}, &de) < 0)
    return ep_error(err, EP_EINVAL, "invalid blob digest");
  if (sink == NULL || sink->on_data == NULL)
    return ep_error(err, EP_EINVAL, "blob download without a data callback");
  ep_cleanup_free char *url = NULL, *what = NULL;
  if (asprintf(&url, "%s%s/v2/%s/blobs/sha256:%s?ns=%s", peer_scheme(u), base_url + 7, repo, d->hex,
               ns_registry) < 0)
    url = NULL;
  if (asprintf(&what, "blob %s@sha256:%s from %s", repo, d->hex, base_url) < 0)
    what = NULL;
  if (url == NULL || what == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  const char *hdrs[] = {nh, hh, NULL};
  struct upstream_req req = {.host = base_url,
                             .repo = repo,
                             .url = url,
                             .what = what,
                             .range_from = offset,
                             .sink = sink,
                             .headers = hdrs};
  struct upstream_xfer *x = upstream_xfer_new(u, &req);
  if (x == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  rc = peer_perform(u, &req, auth, x, err);
  if (!x->streaming && x->status == 416) /* even with its body cut short */
    rc = 0;
  if (rc == 0 && !x->streaming) {
    if (x->status == 416)
      rc = ep_error(err, EP_ERANGE, "%s: range from byte %" PRIu64 " not satisfiable (416)", what,
                    offset);
    else
      rc = upstream_status_error(x, err);
  }
  upstream_xfer_free(x);
  return rc;
}

int upstream_peer_manifest_get(upstream *u, const char *base_url, const char *ns_registry,
                               const char *repo, const char *ref, const char *accept,
                               const struct upstream_peer_auth *auth, unsigned hops,
                               struct upstream_manifest *out, ep_err *err) {
  memset(out, 0, sizeof *out);
  char nh[96], hh[48];
  int rc = peer_args(u, base_url, ns_registry, repo, auth, hops, nh, hh, err);
  if (rc < 0)
    return rc;
  digest_t want = {{0}};
  bool by_digest = false;
  if ((rc = upstream_manifest_ref(ref, &by_digest, &want, err)) < 0)
    return rc;
  ep_cleanup_free char *url = NULL, *what = NULL;
  if (asprintf(&url, "%s%s/v2/%s/manifests/%s?ns=%s", peer_scheme(u), base_url + 7, repo, ref,
               ns_registry) < 0)
    url = NULL;
  if (asprintf(&what, "manifest %s%s%s from %s", repo, by_digest ? "@" : ":", ref, base_url) < 0)
    what = NULL;
  if (url == NULL || what == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  const char *hdrs[] = {nh, hh, NULL};
  struct upstream_req req = {.host = base_url,
                             .repo = repo,
                             .url = url,
                             .what = what,
                             .accept = accept ? accept : upstream_default_accept,
                             .body_max = UPSTREAM_MANIFEST_MAX,
                             .headers = hdrs};
  struct upstream_xfer *x = upstream_xfer_new(u, &req);
  if (x == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  rc = peer_perform(u, &req, auth, x, err);
  return upstream_manifest_finish(x, rc, by_digest, &want, out, err);
}
