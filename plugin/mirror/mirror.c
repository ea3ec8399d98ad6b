/* Manifest resolution for the mirror.
 *
 * A tag is answered from the index while its entry is fresh (expires_at in
 * the future) and admitted by the client's Accept header; otherwise it is
 * resolved upstream (HEAD, GET fallback) and the answer cached for tag-ttl
 * seconds. When the upstream cannot answer (unreachable, 5xx, or
 * shutting down) an expired entry is still served, and the log says it is
 * stale, so a locality keeps working while its uplink is down. Only a 404
 * from the upstream makes a cached tag unknown.
 *
 * Manifests themselves are content-addressed: whatever resolves a tag, the
 * body is fetched by digest, verified, stored in the blob store and recorded
 * in the index with the digests it references.
 *
 * In a locality (a node with a broker that is not the gateway) tags are
 * resolved only by the gateway: we ask the gateway's peer endpoint, never
 * another peer, and trust its answer for the tag alone. When the gateway
 * cannot answer, the stale cache is served; with no cache, the upstream
 * itself only with --upstream-fallback, else the tag is unknown (404: the
 * runtime then tries the registry on its own). Manifests by digest come from
 * the store, else the sources the fetcher would use for a blob (parent,
 * holders, upstream when allowed) plus the gateway, each verified against
 * the digest. */
#include "plugin/mirror/mirror.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "plugin/mirror/manifest.h"
#include "plugin/fetch/sources.h"

void mirror_manifest_clear(struct mirror_manifest *m) {
  free(m->body);
  memset(m, 0, sizeof *m);
}

static int load_stored(const struct mirror_deps *d, const digest_t *dg, struct mirror_manifest *out,
                       ep_err *err) {
  uint64_t size = 0;
  if (index_manifest_get(d->idx, dg, out->media_type, &size, err) <= 0)
    return -EP_ENOTFOUND;
  void *buf = NULL;
  size_t len = 0;
  int r = store_read_all(d->st, dg, UPSTREAM_MANIFEST_MAX, &buf, &len, err);
  if (r < 0)
    return r;
  out->digest = *dg;
  out->body = buf;
  out->len = len;
  return 0;
}

static int keep_manifest(const struct mirror_deps *d, const struct ref_target *t,
                         struct upstream_manifest *um, ep_err *err) {
  struct manifest_info *mi = malloc(sizeof *mi);
  if (mi == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  int r = manifest_parse(um->body, um->len, mi, err);
  if (r < 0)
    goto out;
  if (um->media_type[0] == '\0' || strcmp(um->media_type, "application/json") == 0 ||
      strcmp(um->media_type, "application/octet-stream") == 0)
    snprintf(um->media_type, sizeof um->media_type, "%s", mi->media_type);
  if ((r = store_put(d->st, &um->digest, um->body, um->len, err)) < 0)
    goto out;
  struct index_blob b = {.digest = um->digest, .size = um->len, .state = INDEX_BLOB_COMPLETE};
  snprintf(b.media_type, sizeof b.media_type, "%s", um->media_type);
  b.created = b.last_access = (int64_t)time(NULL);
  if ((r = index_blob_put(d->idx, &b, err)) < 0)
    goto out;
  r = index_manifest_put(d->idx, &um->digest, um->media_type, um->len, t->registry, t->name,
                         mi->refs, mi->nrefs, err);
out:
  free(mi);
  return r;
}

/* One source's copy of manifest ref (a digest or, from the gateway, a tag). */
static int get_from(const struct mirror_deps *d, const struct ref_target *t,
                    const struct fetch_source *src, const char *ref, const char *accept,
                    unsigned hops, struct upstream_manifest *um, ep_err *err) {
  if (src->kind == SRC_UPSTREAM)
    return upstream_manifest_get(d->up, t->registry, t->name, ref, accept, um, err);
  struct upstream_peer_auth a = {.node = d->node_id, .secret = d->peer_secret, .peer = src->node};
  return upstream_peer_manifest_get(d->up, src->base_url, t->registry, t->name, ref, accept, &a,
                                    hops + 1, um, err);
}

/* The sources for a manifest by digest: the blob order, then the gateway. */
static size_t manifest_sources(const struct mirror_deps *d, const digest_t *dg,
                               const struct fetch_request *rq, struct fetch_source *list) {
  const char *ex = rq != NULL ? rq->exclude_node : NULL;
  int n = sources_pick(d->src, dg, ex, list, FETCH_SOURCES_MAX);
  size_t k = n > 0 ? (size_t)n : 0;
  struct fetch_source gw;
  if (!sources_in_locality(d->src) || !sources_gateway(d->src, &gw) ||
      (ex != NULL && !strcmp(gw.node, ex)))
    return k;
  for (size_t i = 0; i < k; i++)
    if (list[i].kind == SRC_PEER && strcmp(list[i].node, gw.node) == 0)
      return k;
  /* before the upstream: the gateway is on the LAN */
  size_t at = k > 0 && list[k - 1].kind == SRC_UPSTREAM ? k - 1 : k;
  memmove(&list[at + 1], &list[at], (k - at) * sizeof *list);
  list[at] = gw;
  return k + 1;
}

static int fetch_by_digest(const struct mirror_deps *d, const struct ref_target *t,
                           const digest_t *dg, const char *accept, const struct fetch_request *rq,
                           struct mirror_manifest *out, ep_err *err) {
  if (load_stored(d, dg, out, NULL) == 0)
    return 0;
  char ref[DIGEST_STR_LEN + 1];
  digest_format(dg, ref);
  struct fetch_source list[FETCH_SOURCES_MAX + 1];
  size_t n = manifest_sources(d, dg, rq, list);
  unsigned hops = rq != NULL ? rq->hops : 0;
  struct upstream_manifest um = {0};
  int r = ep_error(err, EP_ENOTFOUND, "manifest %s: no source can serve it", ref);
  for (size_t i = 0; i < n; i++) {
    if (list[i].kind == SRC_PEER && hops + 1 > UPSTREAM_PEER_HOPS_MAX)
      continue;
    if ((r = get_from(d, t, &list[i], ref, accept, hops, &um, err)) == 0)
      break;
    if (r == -EP_EDIGEST && list[i].kind == SRC_PEER)
      sources_report_bad(d->src, list[i].node, dg, "manifest failed verification");
    if (list[i].kind == SRC_PEER)
      ep_log_warn("manifest %s from peer %s: %s", ref, list[i].node, err ? err->msg : "failed");
  }
  if (r < 0)
    return r;
  um.digest = *dg; /* verified by upstream_manifest_get / upstream_peer_manifest_get */
  r = keep_manifest(d, t, &um, err);
  if (r == 0) {
    out->digest = *dg;
    snprintf(out->media_type, sizeof out->media_type, "%s", um.media_type);
    out->body = um.body;
    out->len = um.len;
    um.body = NULL;
  }
  upstream_manifest_clear(&um);
  return r;
}

static bool upstream_down(int code) {
  return code == EP_EUNREACH || code == EP_EUPSTREAM || code == EP_ECANCELED;
}

static void cache_tag(const struct mirror_deps *d, const struct ref_target *t,
                      const struct upstream_manifest *um, int64_t now) {
  struct index_tag nt = {0};
  snprintf(nt.registry, sizeof nt.registry, "%s", t->registry);
  snprintf(nt.repository, sizeof nt.repository, "%s", t->name);
  snprintf(nt.tag, sizeof nt.tag, "%s", t->tag);
  nt.digest = um->digest;
  snprintf(nt.media_type, sizeof nt.media_type, "%s", um->media_type);
  nt.size = um->size;
  nt.updated = now;
  nt.expires_at = now + d->tag_ttl_s;
  ep_err ie = {0};
  if (index_tag_put(d->idx, &nt, &ie) < 0)
    ep_log_warn("index: caching tag %s/%s:%s: %s", t->registry, t->name, t->tag, ie.msg);
}

/* Asks the gateway's peer endpoint for the tag (GET: the body comes along
 * and is stored under its digest). EP_EUNREACH when no gateway is known. */
static int resolve_via_gateway(const struct mirror_deps *d, const struct ref_target *t,
                               const char *accept, const struct fetch_request *rq,
                               struct upstream_manifest *um, ep_err *err) {
  struct fetch_source gw;
  if (!sources_gateway(d->src, &gw))
    return ep_error(err, EP_EUNREACH, "no gateway known in the locality");
  unsigned hops = rq != NULL ? rq->hops : 0;
  if (hops + 1 > UPSTREAM_PEER_HOPS_MAX)
    return ep_error(err, EP_EUNREACH, "too many peer hops");
  int r = get_from(d, t, &gw, t->tag, accept, hops, um, err);
  if (r < 0)
    return r;
  ep_err ke = {0};
  if (keep_manifest(d, t, um, &ke) < 0)
    ep_log_warn("keeping manifest sha256:%s from the gateway: %s", um->digest.hex, ke.msg);
  return 0;
}

/* A tag resolution's answer (r, um): cached and its digest taken when it
 * names one (0); um cleared either way. */
static int take_resolved(const struct mirror_deps *d, const struct ref_target *t, int r,
                         struct upstream_manifest *um, int64_t now, digest_t *dg, ep_err *err) {
  bool got = r == 0 && um->have_digest;
  if (got) {
    cache_tag(d, t, um, now);
    *dg = um->digest;
  }
  upstream_manifest_clear(um);
  if (r == 0 && !got)
    r = ep_error(err, EP_EUPSTREAM, "upstream gave no digest for the tag");
  return r;
}

static int resolve_tag(const struct mirror_deps *d, const struct ref_target *t, const char *accept,
                       const struct fetch_request *rq, digest_t *dg, bool *stale, ep_err *err) {
  struct index_tag cached = {0};
  int have = index_tag_get(d->idx, t->registry, t->name, t->tag, &cached, NULL) > 0 &&
             manifest_accept_allows(accept, cached.media_type);
  int64_t now = (int64_t)time(NULL);
  if (have && now < cached.expires_at) {
    *dg = cached.digest;
    return 0;
  }
  struct upstream_manifest um = {0};
  ep_err ue = {0};
  bool via_gateway = sources_in_locality(d->src) && !d->gateway;
  int r = via_gateway
              ? resolve_via_gateway(d, t, accept, rq, &um, &ue)
              : upstream_manifest_resolve(d->up, t->registry, t->name, t->tag, accept, &um, &ue);
  if ((r = take_resolved(d, t, r, &um, now, dg, &ue)) == 0)
    return 0;
  if (have && upstream_down(ue.code)) {
    ep_log_warn("serving stale tag %s/%s:%s -> sha256:%s (%s: %s)", t->registry, t->name, t->tag,
                cached.digest.hex, via_gateway ? "gateway" : "upstream", ue.msg);
    *dg = cached.digest;
    *stale = true;
    return 0;
  }
  if (via_gateway && ue.code != EP_ENOTFOUND && d->upstream_fallback) {
    ep_log_warn("tag %s/%s:%s: gateway: %s; resolving upstream (--upstream-fallback)", t->registry,
                t->name, t->tag, ue.msg);
    r = upstream_manifest_resolve(d->up, t->registry, t->name, t->tag, accept, &um, &ue);
    if ((r = take_resolved(d, t, r, &um, now, dg, &ue)) == 0)
      return 0;
  } else if (via_gateway && ue.code != EP_ENOTFOUND) {
    char why[256];
    snprintf(why, sizeof why, "%.200s", ue.msg);
    r = ep_error(&ue, EP_ENOTFOUND, "tag %s unknown: the gateway cannot answer (%s)", t->tag, why);
  }
  if (err)
    *err = ue;
  return r;
}

int mirror_manifest_req(const struct mirror_deps *d, const struct ref_target *t, const char *accept,
                        const struct fetch_request *rq, struct mirror_manifest *out, ep_err *err) {
  memset(out, 0, sizeof *out);
  digest_t dg = t->digest;
  if (!t->by_digest) {
    int r = resolve_tag(d, t, accept, rq, &dg, &out->stale, err);
    if (r < 0)
      return r;
  }
  return fetch_by_digest(d, t, &dg, accept, rq, out, err);
}

int mirror_manifest(const struct mirror_deps *d, const struct ref_target *t, const char *accept,
                    struct mirror_manifest *out, ep_err *err) {
  return mirror_manifest_req(d, t, accept, NULL, out, err);
}
