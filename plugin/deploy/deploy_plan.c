/* Planning a deploy on this node: which platforms it fetches, and the blobs
 * of their manifests, resolved through the node's own mirror logic
 * (mirror_manifest: upstream on the gateway, through the gateway elsewhere;
 * tags are never taken from a peer's word). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "plugin/deploy/deploy_int.h"
#include "plugin/mirror/mirror.h"

#define DEPLOY_ACCEPT                                                                              \
  "application/vnd.oci.image.index.v1+json, "                                                      \
  "application/vnd.docker.distribution.manifest.list.v2+json, "                                    \
  "application/vnd.oci.image.manifest.v1+json, "                                                   \
  "application/vnd.docker.distribution.manifest.v2+json"

static bool platform_matches(const struct deploy_platform *want, const struct deploy_platform *p) {
  return strcmp(want->os, p->os) == 0 && strcmp(want->arch, p->arch) == 0 &&
         (want->variant[0] == '\0' || strcmp(want->variant, p->variant) == 0);
}

static void add_platform(struct deploy_platform *out, size_t *n, const struct deploy_platform *p) {
  for (size_t i = 0; i < *n; i++)
    if (platform_matches(&out[i], p) && platform_matches(p, &out[i]))
      return;
  if (*n < PROTO_PLATFORMS_MAX)
    out[(*n)++] = *p;
}

int deploy_wanted(const struct deploy_options *o, const struct proto_deploy *req,
                  const struct deploy_platform *present, size_t npresent,
                  struct deploy_platform *out, size_t *nout, ep_err *err) {
  struct deploy_platform all[PROTO_PLATFORMS_MAX];
  size_t nall = 0;
  struct deploy_platform own = {.os = "linux"};
  snprintf(own.arch, sizeof own.arch, "%s", o->arch);
  snprintf(own.variant, sizeof own.variant, "%s", o->variant);
  *nout = 0;
  for (size_t i = 0; i < req->nplatforms && i < PROTO_PLATFORMS_MAX; i++) {
    struct deploy_platform p;
    if (deploy_platform_parse(req->platforms[i], &p, err) < 0)
      return ep_wrap(err, "deploy %s: platform %zu", req->id, i);
    add_platform(all, &nall, &p);
  }
  for (size_t i = 0; req->nplatforms == 0 && i < npresent; i++)
    add_platform(all, &nall, &present[i]);
  if (nall == 0)
    add_platform(all, &nall, &own);
  if (o->gateway) {
    memcpy(out, all, nall * sizeof *all);
    *nout = nall;
    return 0;
  }
  for (size_t i = 0; i < nall; i++) {
    if (platform_matches(&all[i], &own)) {
      out[0] = own;
      *nout = 1;
      break;
    }
  }
  return 0;
}

struct present_ctx {
  struct deploy_platform p[PROTO_PLATFORMS_MAX];
  size_t n;
};

static int present_cb(const struct index_node *n, void *ud) {
  struct present_ctx *c = ud;
  if (!n->online || n->arch[0] == '\0')
    return 0;
  struct deploy_platform p = {.os = "linux"};
  snprintf(p.arch, sizeof p.arch, "%s", n->arch);
  snprintf(p.variant, sizeof p.variant, "%s", n->variant);
  add_platform(c->p, &c->n, &p);
  return 0;
}

int deploy_load_manifest(const struct deploy_deps *d, const struct deploy_ref *ref,
                         const digest_t *dg, struct mirror_manifest *m, ep_err *err) {
  struct ref_target t;
  memset(&t, 0, sizeof t);
  t.kind = REF_MANIFEST;
  snprintf(t.registry, sizeof t.registry, "%s", ref->registry);
  snprintf(t.name, sizeof t.name, "%s", ref->repo);
  if (dg != NULL) {
    t.by_digest = true;
    t.digest = *dg;
  } else {
    snprintf(t.tag, sizeof t.tag, "%s", ref->tag);
  }
  int r = mirror_manifest(d->mirror, &t, DEPLOY_ACCEPT, m, err);
  if (r < 0)
    return ep_wrap(err, "manifest of %s/%s%s%s", ref->registry, ref->repo, dg ? "@" : ":",
                   dg ? dg->hex : ref->tag);
  return 0;
}

static int plan_index(const struct deploy_deps *d, const struct deploy_ref *ref,
                      const struct mirror_manifest *top, const struct deploy_platform *want,
                      size_t nwant, struct deploy_blob **blobs, size_t *nblobs, ep_err *err) {
  digest_t kids[PROTO_PLATFORMS_MAX];
  size_t nk = 0;
  int r = deploy_select(top->body, top->len, want, nwant, kids, &nk, err);
  if (r < 0)
    return r;
  if (nk == 0 && nwant > 0)
    return ep_error(err, EP_ENOTFOUND, "the image has no manifest for %s/%s%s%s%s", want[0].os,
                    want[0].arch, want[0].variant[0] ? "/" : "", want[0].variant,
                    nwant > 1 ? " (nor the other platforms wanted)" : "");
  for (size_t i = 0; i < nk; i++) {
    struct mirror_manifest m;
    memset(&m, 0, sizeof m);
    if ((r = deploy_load_manifest(d, ref, &kids[i], &m, err)) < 0)
      return r;
    r = deploy_manifest_blobs(m.body, m.len, blobs, nblobs, err);
    mirror_manifest_clear(&m);
    if (r < 0)
      return r;
  }
  return 0;
}

int deploy_plan(const struct deploy_deps *d, const struct deploy_options *o,
                const struct proto_deploy *req, struct deploy_ref *ref, struct deploy_blob **blobs,
                size_t *nblobs, ep_err *err) {
  struct present_ctx pc;
  struct deploy_platform want[PROTO_PLATFORMS_MAX];
  size_t nwant = 0;
  memset(&pc, 0, sizeof pc);
  int r = deploy_ref_parse(req->image, ref, err);
  if (r < 0)
    return r;
  ep_err e = {0};
  if (req->nplatforms == 0 && index_foreach_node(d->idx, present_cb, &pc, &e) < 0)
    ep_log_warn("deploy %s: reading the locality's nodes: %s", req->id, e.msg);
  if ((r = deploy_wanted(o, req, pc.p, pc.n, want, &nwant, err)) < 0)
    return r;
  if (nwant == 0) {
    ep_log_info("deploy %s: no platform of this node requested, nothing to fetch", req->id);
    return 0;
  }
  struct mirror_manifest top;
  memset(&top, 0, sizeof top);
  if ((r = deploy_load_manifest(d, ref, ref->has_digest ? &ref->digest : NULL, &top, err)) < 0)
    return r;
  r = deploy_is_index(top.body, top.len, top.media_type, err);
  if (r == 1)
    r = plan_index(d, ref, &top, want, nwant, blobs, nblobs, err);
  else if (r == 0)
    r = deploy_manifest_blobs(top.body, top.len, blobs, nblobs, err);
  mirror_manifest_clear(&top);
  return r;
}
