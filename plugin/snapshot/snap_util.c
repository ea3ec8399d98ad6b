/* Small pieces of the snapshotter API: labels (sorted vectors with containerd's bounds), freeing
 * infos and mounts. Part of ep_snapshot_meta with snap_meta.c: nothing here knows of gRPC. */
#include "plugin/snapshot/snap_int.h"

#include <stdlib.h>
#include <string.h>

const char *snap_labels_get(const struct snap_labels *l, const char *key) {
  for (size_t i = 0; l != NULL && i < l->n; i++)
    if (strcmp(l->v[i].key, key) == 0)
      return l->v[i].value;
  return NULL;
}

void snap_labels_free(struct snap_labels *l) {
  if (l == NULL)
    return;
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].key);
    free(l->v[i].value);
  }
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

void snap_info_free(struct snap_info *i) {
  if (i == NULL)
    return;
  free(i->name);
  free(i->parent);
  snap_labels_free(&i->labels);
  memset(i, 0, sizeof *i);
}

void snap_mount_free(struct snap_mount *m) {
  if (m == NULL)
    return;
  free(m->source);
  for (size_t i = 0; i < m->n_options; i++)
    free(m->options[i]);
  memset(m, 0, sizeof *m);
}

int snap_check_key(const char *key, const char *what, bool allow_empty, ep_err *err) {
  size_t n = key != NULL ? strlen(key) : 0;
  if (n == 0 && !allow_empty)
    return ep_error(err, EP_EINVAL, "%s must not be empty", what);
  if (n > SNAP_MAX_KEY)
    return ep_error(err, EP_EINVAL, "%s longer than %d bytes", what, SNAP_MAX_KEY);
  return 0;
}

int snap_check_labels(const struct snap_labels *l, ep_err *err) {
  if (l == NULL)
    return 0;
  if (l->n > SNAP_MAX_LABELS)
    return ep_error(err, EP_EINVAL, "more than %d labels", SNAP_MAX_LABELS);
  for (size_t i = 0; i < l->n; i++)
    if (strlen(l->v[i].key) + strlen(l->v[i].value) > SNAP_MAX_LABEL)
      return ep_error(err, EP_EINVAL,
                      "label key and value greater than maximum size (%d bytes), key: %.64s",
                      SNAP_MAX_LABEL, l->v[i].key);
  return 0;
}

/* Sets key to value ("" removes it), keeping l sorted by key. */
int snap_labels_set(struct snap_labels *l, const char *key, const char *value, ep_err *err) {
  size_t i = 0;
  while (i < l->n && strcmp(l->v[i].key, key) < 0)
    i++;
  bool found = i < l->n && strcmp(l->v[i].key, key) == 0;
  if (value[0] == '\0') {
    if (found) {
      free(l->v[i].key);
      free(l->v[i].value);
      memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
      l->n--;
    }
    return 0;
  }
  char *v = strdup(value);
  if (v == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  if (found) {
    free(l->v[i].value);
    l->v[i].value = v;
    return 0;
  }
  if (l->n >= SNAP_MAX_LABELS) {
    free(v);
    return ep_error(err, EP_EINVAL, "more than %d labels", SNAP_MAX_LABELS);
  }
  struct snap_label *nv = realloc(l->v, (l->n + 1) * sizeof *nv);
  char *k = strdup(key);
  if (nv != NULL)
    l->v = nv;
  if (nv == NULL || k == NULL) {
    free(v);
    free(k);
    return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  memmove(&l->v[i + 1], &l->v[i], (l->n - i) * sizeof *l->v);
  l->v[i] = (struct snap_label){k, v};
  l->n++;
  return 0;
}

int snap_labels_copy(struct snap_labels *dst, const struct snap_labels *src, ep_err *err) {
  for (size_t i = 0; src != NULL && i < src->n; i++) {
    int r = snap_labels_set(dst, src->v[i].key, src->v[i].value, err);
    if (r < 0)
      return r;
  }
  return 0;
}
