/* edgepullctl snapshots, and which layers the snapshotter has unpacked (issue 10 point 5).
 *
 * The snapshotter keeps its own sqlite database, ROOT/snapshots.db, next to ROOT/snapshots/<id>/
 * (ROOT is edgepulld's --snapshotter-root, <state-dir>/snapshots by default). Its schema belongs
 * to plugin/snapshot/snap_meta.c: edgepullctl links that file's library (ep_snapshot_meta:
 * sqlite, no gRPC) and opens the database read-only with snap_meta_open_readonly, so it is safe
 * while edgepulld writes (WAL readers) and refuses a schema it does not know.
 *
 * A layer blob counts as unpacked when a committed snapshot carries its digest in the
 * containerd.io/snapshot/cri.layer-digest label, which CRI pulls pass and the remote path keeps
 * on the snapshot it commits. A snapshot that has only a chain ID (snapshot.ref) is not mapped to
 * a blob: that needs the image config's diffIDs, which the index does not keep. */
#include "ctl/ctl.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/snapshot/snap_meta.h"

#define LABEL_REF "containerd.io/snapshot.ref"
#define LABEL_LAYER "containerd.io/snapshot/cri.layer-digest"
#define LABEL_IMAGE "containerd.io/snapshot/cri.image-ref"
#define REMOTE_PREFIX "edgepull/remote/"

static const char *const kind_names[] = {"unknown", "view", "active", "committed"};

static const char *kind_name(enum snap_kind k) {
  return (unsigned)k < sizeof kind_names / sizeof kind_names[0] ? kind_names[k] : "unknown";
}

/* ROOT/snapshots.db into buf; -1 after printing why. */
static int db_path(const struct ctl_opts *o, char *root, char *buf, size_t cap) {
  int n = o->snap_root != NULL ? snprintf(root, PATH_MAX, "%s", o->snap_root)
                               : snprintf(root, PATH_MAX, "%s/snapshots", o->state_dir);
  if (n < 0 || n >= PATH_MAX || (size_t)snprintf(buf, cap, "%s/snapshots.db", root) >= cap) {
    ctl_errorf("snapshotter root path too long");
    return -1;
  }
  return 0;
}

/* 0 opened; 1 no snapshotter state (printed unless quiet); -1 another failure (printed). */
static int open_meta(const struct ctl_opts *o, bool quiet, snap_meta **out) {
  char root[PATH_MAX], path[PATH_MAX + 16];
  if (db_path(o, root, path, sizeof path) < 0)
    return -1;
  ep_err e = {0};
  int r = snap_meta_open_readonly(path, out, &e);
  if (r == -EP_ENOTFOUND) {
    if (!quiet)
      ctl_errorf("no snapshotter state under %s: is --snapshotter-socket set?", root);
    return 1;
  }
  if (r < 0) {
    ctl_errorf("%s", e.msg);
    return -1;
  }
  return 0;
}

static json_t *json_str_or_null(const char *s) {
  return s != NULL && s[0] != '\0' ? ctl_json_str(s) : json_null();
}

static json_t *labels_json(const struct snap_labels *l) {
  json_t *o = json_object();
  for (size_t i = 0; o != NULL && i < l->n; i++)
    if (json_object_set_new(o, l->v[i].key, ctl_json_str(l->v[i].value)) < 0) {
      json_decref(o); /* a key that is not UTF-8 */
      return NULL;
    }
  return o;
}

static json_t *snapshot_json(const struct snap_row *row) {
  const struct snap_info *i = &row->info;
  bool committed = i->kind == SNAP_KIND_COMMITTED;
  json_t *labels = labels_json(&i->labels);
  return json_pack(
      "{s:o, s:s, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:I, s:I, s:o}", "name", ctl_json_str(i->name),
      "kind", kind_name(i->kind), "parent", json_str_or_null(i->parent), "chain_id",
      json_str_or_null(snap_labels_get(&i->labels, LABEL_REF)), "layer_digest",
      json_str_or_null(snap_labels_get(&i->labels, LABEL_LAYER)), "image_ref",
      json_str_or_null(snap_labels_get(&i->labels, LABEL_IMAGE)), "remote",
      strncmp(i->name, REMOTE_PREFIX, strlen(REMOTE_PREFIX)) == 0, "size",
      committed ? json_integer(row->usage.size) : json_null(), "inodes",
      committed ? json_integer(row->usage.inodes) : json_null(), "created",
      (json_int_t)(i->created_ns / 1000000000), "updated", (json_int_t)(i->updated_ns / 1000000000),
      "labels", labels != NULL ? labels : json_object());
}

struct snap_walk {
  const struct ctl_opts *o;
  ctl_table *table;
  json_t *list;
};

static int snapshot_row(const struct snap_row *row, void *ud) {
  struct snap_walk *w = ud;
  if (w->list != NULL)
    return json_array_append_new(w->list, snapshot_json(row)) == 0 ? 0 : -EP_EINTERNAL;
  const struct snap_info *i = &row->info;
  const char *ref = snap_labels_get(&i->labels, LABEL_REF);
  const char *layer = snap_labels_get(&i->labels, LABEL_LAYER);
  char name[SNAP_MAX_KEY + 1], parent[SNAP_MAX_KEY + 1], chain[SNAP_MAX_LABEL + 1];
  char ld[SNAP_MAX_LABEL + 1], size[32] = "-", inodes[32] = "-", at[32];
  bool full = w->o->no_trunc;
  ctl_short_digests(i->name, full, name, sizeof name);
  ctl_short_digests(i->parent[0] != '\0' ? i->parent : "-", full, parent, sizeof parent);
  ctl_short_digests(ref != NULL ? ref : "-", full, chain, sizeof chain);
  ctl_short_digests(layer != NULL ? layer : "-", full, ld, sizeof ld);
  if (i->kind == SNAP_KIND_COMMITTED) {
    ctl_fmt_size((uint64_t)row->usage.size, size, sizeof size);
    snprintf(inodes, sizeof inodes, "%lld", (long long)row->usage.inodes);
  }
  ctl_fmt_time(i->created_ns / 1000000000, at, sizeof at);
  const char *cells[] = {name, kind_name(i->kind), parent, ld, chain, size, inodes, at};
  return ctl_table_add(w->table, cells) == 0 ? 0 : -EP_EINTERNAL;
}

int ctl_cmd_snapshots(const struct ctl_opts *o) {
  static const struct ctl_col cols[] = {
      {"NAME", false},     {"KIND", false}, {"PARENT", false}, {"LAYER", false},
      {"CHAIN ID", false}, {"SIZE", true},  {"INODES", true},  {"CREATED", false},
  };
  snap_meta *m = NULL;
  if (open_meta(o, false, &m) != 0)
    return CTL_EXIT_FAIL;
  struct snap_walk w = {.o = o};
  if (o->json)
    w.list = json_array();
  else
    w.table = ctl_table_new(cols, sizeof cols / sizeof cols[0]);
  ep_err e = {0};
  int r = w.list == NULL && w.table == NULL ? ep_error(&e, EP_EINTERNAL, "out of memory")
                                            : snap_meta_foreach(m, snapshot_row, &w, &e);
  snap_meta_close(m);
  int rc = CTL_EXIT_OK;
  if (r < 0) {
    ctl_errorf("%s", e.msg[0] != '\0' ? e.msg : ep_errcode_name(-r));
    rc = CTL_EXIT_FAIL;
  } else if (o->json) {
    rc = ctl_json_print(json_pack("{s:o}", "snapshots", w.list));
    w.list = NULL;
  } else {
    ctl_table_print(w.table, stdout);
    rc = fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
  }
  json_decref(w.list);
  ctl_table_free(w.table);
  return rc;
}

static int unpacked_row(const struct snap_row *row, void *ud) {
  struct ctl_unpacked *u = ud;
  const char *ld = snap_labels_get(&row->info.labels, LABEL_LAYER);
  digest_t d;
  if (row->info.kind != SNAP_KIND_COMMITTED || ld == NULL || digest_parse(ld, &d, NULL) < 0)
    return 0;
  digest_t *v = realloc(u->v, (u->n + 1) * sizeof *v);
  if (v == NULL)
    return -EP_EINTERNAL;
  u->v = v;
  u->v[u->n++] = d;
  return 0;
}

void ctl_unpacked_load(const struct ctl_opts *o, struct ctl_unpacked *u) {
  memset(u, 0, sizeof *u);
  snap_meta *m = NULL;
  int r = open_meta(o, true, &m);
  if (r == 1) { /* no snapshotter here: nothing is unpacked */
    u->known = true;
    return;
  }
  if (r < 0) {
    ctl_errorf("warning: which layers are unpacked is unknown");
    return;
  }
  ep_err e = {0};
  r = snap_meta_foreach(m, unpacked_row, u, &e);
  snap_meta_close(m);
  if (r < 0) {
    ctl_errorf("warning: reading snapshots: %s", e.msg[0] != '\0' ? e.msg : ep_errcode_name(-r));
    ctl_unpacked_free(u);
    return;
  }
  qsort(u->v, u->n, sizeof *u->v, ctl_digest_cmp);
  u->known = true;
}

bool ctl_unpacked_has(const struct ctl_unpacked *u, const digest_t *d) {
  return u->n > 0 && bsearch(d, u->v, u->n, sizeof *u->v, ctl_digest_cmp) != NULL;
}

void ctl_unpacked_free(struct ctl_unpacked *u) {
  free(u->v);
  memset(u, 0, sizeof *u);
}
