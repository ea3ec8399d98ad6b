/* The pure parts of a deploy: image references as users write them, the
 * platform strings of a deploy request, and reading manifests (which blobs
 * an image manifest names, which child manifests of an index serve the
 * wanted platforms). No I/O: tested with hostile bytes alone. Manifests are
 * bounded by whoever loaded them (the mirror); here every array is walked
 * with its bounds and every digest parsed before use. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "common/escape.h"
#include "common/vec.h"
#include "plugin/deploy/deploy.h"

#define DEPLOY_DEFAULT_REGISTRY "docker.io"

static int copy_checked(char *dst, size_t cap, const char *s, size_t n, const char *what,
                        const char *image, ep_err *err) {
  char q[96];
  if (n >= cap) {
    ep_escape(q, sizeof q, image, strlen(image), EP_ESCAPE_QUOTE);
    return ep_error(err, EP_EINVAL, "image \"%s\": %s longer than %zu characters", q, what,
                    cap - 1);
  }
  memcpy(dst, s, n);
  dst[n] = '\0';
  return 0;
}

static bool is_registry(const char *first, size_t n) {
  return memchr(first, '.', n) != NULL || memchr(first, ':', n) != NULL ||
         (n == 9 && memcmp(first, "localhost", 9) == 0);
}

/* Splits "name[:tag]" (no digest) into out->repo / out->tag. */
static int split_tag(const char *image, const char *s, struct deploy_ref *out, ep_err *err) {
  const char *slash = strrchr(s, '/');
  const char *colon = strrchr(slash != NULL ? slash : s, ':');
  size_t nlen = colon != NULL ? (size_t)(colon - s) : strlen(s);
  int r = copy_checked(out->repo, sizeof out->repo, s, nlen, "repository", image, err);
  if (r < 0 || colon == NULL)
    return r;
  if (colon[1] == '\0')
    return ep_error(err, EP_EINVAL, "image reference: empty tag after ':'");
  return copy_checked(out->tag, sizeof out->tag, colon + 1, strlen(colon + 1), "tag", image, err);
}

int deploy_ref_parse(const char *image, struct deploy_ref *out, ep_err *err) {
  char q[96];
  memset(out, 0, sizeof *out);
  if (image == NULL || !proto_image_valid(image))
    return ep_error(err, EP_EINVAL, "image reference: empty, too long or not printable ASCII");
  ep_escape(q, sizeof q, image, strlen(image), EP_ESCAPE_QUOTE);
  char buf[PROTO_IMAGE_MAX + 1];
  snprintf(buf, sizeof buf, "%s", image);
  char *at = strchr(buf, '@');
  if (at != NULL) {
    *at = '\0';
    if (digest_parse(at + 1, &out->digest, NULL) < 0)
      return ep_error(err, EP_EINVAL, "image \"%s\": the digest is not sha256:<64 hex>", q);
    out->has_digest = true;
  }
  const char *rest = buf;
  const char *slash = strchr(buf, '/');
  if (slash != NULL && is_registry(buf, (size_t)(slash - buf))) {
    int r = copy_checked(out->registry, sizeof out->registry, buf, (size_t)(slash - buf),
                         "registry", image, err);
    if (r < 0)
      return r;
    rest = slash + 1;
  } else {
    snprintf(out->registry, sizeof out->registry, "%s", DEPLOY_DEFAULT_REGISTRY);
  }
  if (strcmp(out->registry, "index.docker.io") == 0 ||
      strcmp(out->registry, "registry-1.docker.io") == 0)
    snprintf(out->registry, sizeof out->registry, "%s", DEPLOY_DEFAULT_REGISTRY);
  int r = split_tag(image, rest, out, err);
  if (r < 0)
    return r;
  if (strcmp(out->registry, DEPLOY_DEFAULT_REGISTRY) == 0 && strchr(out->repo, '/') == NULL) {
    char tmp[NAMES_REPO_MAX + 1];
    if (snprintf(tmp, sizeof tmp, "library/%s", out->repo) >= (int)sizeof tmp)
      return ep_error(err, EP_EINVAL, "image \"%s\": repository too long", q);
    memcpy(out->repo, tmp, sizeof tmp);
  }
  if (!names_registry_valid(out->registry))
    return ep_error(err, EP_EINVAL, "image \"%s\": invalid registry host", q);
  if (!names_repo_valid(out->repo))
    return ep_error(err, EP_EINVAL, "image \"%s\": invalid repository name", q);
  if (out->tag[0] != '\0' && !names_tag_valid(out->tag))
    return ep_error(err, EP_EINVAL, "image \"%s\": invalid tag", q);
  if (out->tag[0] == '\0' && !out->has_digest)
    snprintf(out->tag, sizeof out->tag, "latest");
  return 0;
}

int deploy_platform_parse(const char *s, struct deploy_platform *out, ep_err *err) {
  memset(out, 0, sizeof *out);
  if (!proto_platform_valid(s))
    return ep_error(err, EP_EINVAL, "platform: must be os/arch[/variant] in [a-z0-9_]");
  const char *a = strchr(s, '/');
  const char *v = strchr(a + 1, '/');
  size_t nos = (size_t)(a - s);
  size_t narch = v != NULL ? (size_t)(v - a - 1) : strlen(a + 1);
  size_t nvar = v != NULL ? strlen(v + 1) : 0;
  if (nos >= sizeof out->os || narch >= sizeof out->arch || nvar >= sizeof out->variant)
    return ep_error(err, EP_EINVAL, "platform: a component is too long");
  memcpy(out->os, s, nos);
  memcpy(out->arch, a + 1, narch);
  if (v != NULL)
    memcpy(out->variant, v + 1, nvar);
  return 0;
}

/* ---- manifests ------------------------------------------------------------- */

static json_t *load(const void *body, size_t len, ep_err *err) {
  json_error_t je;
  if (body == NULL || len == 0 || memchr(body, '\0', len) != NULL) {
    ep_error(err, EP_EINVAL, "manifest: empty or contains a NUL byte");
    return NULL;
  }
  json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (j == NULL || !json_is_object(j)) {
    json_decref(j);
    ep_error(err, EP_EINVAL, "manifest: not a JSON object");
    return NULL;
  }
  return j;
}

int deploy_is_index(const void *body, size_t len, const char *media_type, ep_err *err) {
  json_auto_t *j = load(body, len, err);
  if (j == NULL)
    return -EP_EINVAL;
  const char *mt = json_string_value(json_object_get(j, "mediaType"));
  if (mt == NULL)
    mt = media_type != NULL ? media_type : "";
  if (strstr(mt, "image.index") != NULL || strstr(mt, "manifest.list") != NULL)
    return 1;
  if (json_is_array(json_object_get(j, "manifests")) && json_object_get(j, "layers") == NULL)
    return 1;
  if (json_is_object(json_object_get(j, "config")) && json_is_array(json_object_get(j, "layers")))
    return 0;
  return ep_error(err, EP_EINVAL, "manifest: neither an image manifest nor an index");
}

/* {"digest": "sha256:…", "size": N} */
static int descriptor(json_t *d, struct deploy_blob *out, const char *what, size_t i, ep_err *err) {
  const char *s = json_string_value(json_object_get(d, "digest"));
  json_t *sz = json_object_get(d, "size");
  if (s == NULL || digest_parse(s, &out->digest, NULL) < 0)
    return ep_error(err, EP_EINVAL, "manifest: %s %zu: digest missing or not sha256:<64 hex>", what,
                    i);
  if (!json_is_integer(sz) || json_integer_value(sz) < 0)
    return ep_error(err, EP_EINVAL, "manifest: %s %zu: size missing or negative", what, i);
  out->size = (uint64_t)json_integer_value(sz);
  return 0;
}

static int append(struct deploy_blob **blobs, size_t *n, size_t *cap, const struct deploy_blob *b,
                  ep_err *err) {
  for (size_t i = 0; i < *n; i++)
    if (digest_equal(&(*blobs)[i].digest, &b->digest))
      return 0;
  int r = ep_vec_reserve(blobs, cap, *n + 1, DEPLOY_BLOBS_MAX);
  if (r == -EP_ETOOBIG)
    return ep_error(err, EP_ETOOBIG, "deploy: more than %d blobs", DEPLOY_BLOBS_MAX);
  if (r < 0)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  (*blobs)[(*n)++] = *b;
  return 0;
}

int deploy_manifest_blobs(const void *body, size_t len, struct deploy_blob **blobs, size_t *n,
                          ep_err *err) {
  json_auto_t *j = load(body, len, err);
  if (j == NULL)
    return -EP_EINVAL;
  json_t *cfg = json_object_get(j, "config");
  json_t *layers = json_object_get(j, "layers");
  if (!json_is_object(cfg) || !json_is_array(layers))
    return ep_error(err, EP_EINVAL, "manifest: \"config\" or \"layers\" missing");
  struct deploy_blob b;
  size_t cap = *n; /* what the caller's array holds at least */
  int r = descriptor(cfg, &b, "config", 0, err);
  if (r < 0 || (r = append(blobs, n, &cap, &b, err)) < 0)
    return r;
  for (size_t i = 0; i < json_array_size(layers); i++) {
    if ((r = descriptor(json_array_get(layers, i), &b, "layer", i, err)) < 0 ||
        (r = append(blobs, n, &cap, &b, err)) < 0)
      return r;
  }
  return 0;
}

static bool entry_matches(json_t *e, const struct deploy_platform *w) {
  json_t *p = json_object_get(e, "platform");
  const char *os = json_string_value(json_object_get(p, "os"));
  const char *arch = json_string_value(json_object_get(p, "architecture"));
  const char *var = json_string_value(json_object_get(p, "variant"));
  if (os == NULL || arch == NULL || strcmp(os, w->os) != 0 || strcmp(arch, w->arch) != 0)
    return false;
  return w->variant[0] == '\0' || (var != NULL && strcmp(var, w->variant) == 0) ||
         (var == NULL && strcmp(w->arch, "arm64") == 0 && strcmp(w->variant, "v8") == 0);
}

int deploy_select(const void *body, size_t len, const struct deploy_platform *wanted,
                  size_t nwanted, digest_t *out, size_t *nout, ep_err *err) {
  *nout = 0;
  json_auto_t *j = load(body, len, err);
  if (j == NULL)
    return -EP_EINVAL;
  json_t *ms = json_object_get(j, "manifests");
  if (!json_is_array(ms))
    return ep_error(err, EP_EINVAL, "index: \"manifests\" missing or not an array");
  for (size_t w = 0; w < nwanted; w++) {
    for (size_t i = 0; i < json_array_size(ms); i++) {
      json_t *e = json_array_get(ms, i);
      if (!json_is_object(e) || !entry_matches(e, &wanted[w]))
        continue;
      struct deploy_blob b;
      int r = descriptor(e, &b, "index entry", i, err);
      if (r < 0)
        return r;
      bool dup = false;
      for (size_t k = 0; k < *nout; k++)
        dup = dup || digest_equal(&out[k], &b.digest);
      if (!dup)
        out[(*nout)++] = b.digest;
      break;
    }
  }
  return 0;
}
