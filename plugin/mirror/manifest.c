/* Reading a manifest or an index only as far as the mirror needs: its
 * media type and the digests it refers to (config, layers, child
 * manifests), so those can be kept, prefetched or refused. The body is the
 * registry's, untrusted and bounded by the caller; nothing here rewrites
 * it, because its bytes are what the digest covers. */
#include "plugin/mirror/manifest.h"

#include <jansson.h>
#include <string.h>
#include <strings.h>

static int add_ref(struct manifest_info *m, json_t *desc, ep_err *err) {
  const char *s = json_string_value(json_object_get(desc, "digest"));
  if (s == NULL)
    return ep_error(err, EP_EINVAL, "manifest descriptor without a digest");
  if (m->nrefs >= MANIFEST_MAX_REFS)
    return ep_error(err, EP_ETOOBIG, "manifest references more than %d blobs", MANIFEST_MAX_REFS);
  ep_err e = {0};
  int r = digest_parse(s, &m->refs[m->nrefs], &e);
  if (r == -EP_EUNSUPPORTED)
    return 0;
  if (r < 0)
    return ep_error(err, EP_EINVAL, "manifest references a malformed digest");
  m->nrefs++;
  return 0;
}

static int add_array(struct manifest_info *m, json_t *root, const char *key, ep_err *err) {
  json_t *arr = json_object_get(root, key);
  if (arr == NULL)
    return 0;
  if (!json_is_array(arr))
    return ep_error(err, EP_EINVAL, "manifest field '%s' is not an array", key);
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) {
    if (!json_is_object(v))
      return ep_error(err, EP_EINVAL, "manifest field '%s' holds a non-object", key);
    int r = add_ref(m, v, err);
    if (r < 0)
      return r;
  }
  return 0;
}

int manifest_parse(const void *body, size_t len, struct manifest_info *out, ep_err *err) {
  memset(out, 0, sizeof *out);
  json_error_t je;
  json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (root == NULL)
    return ep_error(err, EP_EINVAL, "manifest is not valid JSON (line %d: %s)", je.line, je.text);
  int r = 0;
  if (!json_is_object(root)) {
    r = ep_error(err, EP_EINVAL, "manifest is not a JSON object");
    goto out;
  }
  const char *mt = json_string_value(json_object_get(root, "mediaType"));
  if (mt != NULL && strlen(mt) < sizeof out->media_type)
    strcpy(out->media_type, mt);
  json_t *config = json_object_get(root, "config");
  if (json_is_object(config) && (r = add_ref(out, config, err)) < 0)
    goto out;
  if ((r = add_array(out, root, "layers", err)) < 0)
    goto out;
  r = add_array(out, root, "manifests", err);
out:
  json_decref(root);
  return r;
}

bool manifest_accept_allows(const char *accept, const char *media_type) {
  if (accept == NULL || *accept == '\0' || media_type == NULL || *media_type == '\0')
    return true;
  size_t mlen = strlen(media_type);
  const char *p = accept;
  while (*p != '\0') {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    const char *end = p;
    while (*end != '\0' && *end != ',' && *end != ';')
      end++;
    const char *tail = end;
    while (tail > p && (tail[-1] == ' ' || tail[-1] == '\t'))
      tail--;
    size_t n = (size_t)(tail - p);
    if ((n == 3 && strncmp(p, "*/*", 3) == 0) || (n == mlen && strncasecmp(p, media_type, n) == 0))
      return true;
    p = end;
    while (*p != '\0' && *p != ',')
      p++;
  }
  return false;
}
