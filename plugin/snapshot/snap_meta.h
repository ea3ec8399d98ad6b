/* The snapshotter's metastore (internal to plugin/snapshot, and read by edgepullctl through the
 * ep_snapshot_meta library, so the schema has one home): the snapshot rows and their labels in
 * ROOT/snapshots.db, the equivalent of containerd's snapshots/storage bolt metastore. Reads go
 * through a small pool of connections; writes through one connection that the caller serializes
 * (snap.c holds its writer mutex around every snap_meta_w_* call and transaction). */
#ifndef EP_PLUGIN_SNAPSHOT_SNAP_META_H
#define EP_PLUGIN_SNAPSHOT_SNAP_META_H

#include "plugin/snapshot/snap.h"

typedef struct snap_meta snap_meta;

struct snap_row {
  int64_t id;
  int64_t parent_id; /* 0 when none */
  struct snap_info info;
  struct snap_usage usage; /* as stored at commit; zero otherwise */
};

int snap_meta_open(const char *path, snap_meta **out, ep_err *err);
/* For edgepullctl, while the daemon runs: read-only connections (WAL readers, never waiting for
 * the writer), no migration; -EP_ENOTFOUND when there is no database (or an empty one),
 * -EP_EUNSUPPORTED for a schema version other than this build's. Only the readers below work. */
int snap_meta_open_readonly(const char *path, snap_meta **out, ep_err *err);
void snap_meta_close(snap_meta *m);
int snap_meta_schema_version(void);

/* Readers (any thread, no lock needed). */
int snap_meta_get(snap_meta *m, const char *key, struct snap_row *out, ep_err *err);
/* Ids of snapshot `id` and its ancestors, itself first (the overlay lowerdir order). */
int snap_meta_chain(snap_meta *m, int64_t id, int64_t **out, size_t *n, ep_err *err);
/* Up to `cap` rows with id > after, in id order, labels included. */
int snap_meta_page(snap_meta *m, int64_t after, struct snap_row *rows, size_t cap, size_t *n,
                   ep_err *err);
/* Calls fn for every row in id order (parents before children), a page per read transaction; a
 * non-zero return from fn stops the walk and is returned. The row is freed after fn returns. */
typedef int (*snap_meta_fn)(const struct snap_row *row, void *ud);
int snap_meta_foreach(snap_meta *m, snap_meta_fn fn, void *ud, ep_err *err);
int snap_meta_id_exists(snap_meta *m, int64_t id, bool *out, ep_err *err);
void snap_row_free(struct snap_row *r);

/* Writer (caller holds the writer mutex). begin is BEGIN IMMEDIATE; every write between begin and
 * commit is one transaction; rollback is safe after any failure. */
int snap_meta_w_begin(snap_meta *m, ep_err *err);
int snap_meta_w_commit(snap_meta *m, ep_err *err);
void snap_meta_w_rollback(snap_meta *m);
int snap_meta_w_get(snap_meta *m, const char *key, struct snap_row *out, ep_err *err);
int snap_meta_w_chain(snap_meta *m, int64_t id, int64_t **out, size_t *n, ep_err *err);
int snap_meta_w_insert(snap_meta *m, const char *key, int64_t parent_id, enum snap_kind kind,
                       int64_t now_ns, int64_t *id_out, ep_err *err);
/* Replaces the labels of snapshot id (empty values are dropped, as containerd does). */
int snap_meta_w_set_labels(snap_meta *m, int64_t id, const struct snap_labels *l, ep_err *err);
int snap_meta_w_to_committed(snap_meta *m, int64_t id, const char *name, int64_t now_ns,
                             const struct snap_usage *u, ep_err *err);
int snap_meta_w_touch(snap_meta *m, int64_t id, int64_t now_ns, ep_err *err);
int snap_meta_w_has_child(snap_meta *m, int64_t id, bool *out, ep_err *err);
int snap_meta_w_delete(snap_meta *m, int64_t id, ep_err *err);

#endif
