/* edgepull's snapshotter core: containerd's overlayfs snapshotter semantics (snapshots/overlay and
 * snapshots/storage in containerd 1.6) over a sqlite metastore and a directory per snapshot under
 * ROOT/snapshots/<id>. Transport-free: snap_service.c maps it onto containerd's gRPC API, tests
 * call it directly. Every function is safe to call from many threads at once. docs/snapshotter.md
 * describes the layout, the crash safety and the locking. */
#ifndef EP_PLUGIN_SNAPSHOT_SNAP_H
#define EP_PLUGIN_SNAPSHOT_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct metrics;

typedef struct snap snap;

/* Values as in containerd's snapshots API (Kind enum). */
enum snap_kind {
  SNAP_KIND_UNKNOWN = 0,
  SNAP_KIND_VIEW = 1,
  SNAP_KIND_ACTIVE = 2,
  SNAP_KIND_COMMITTED = 3
};

/* ep_err codes the snapshotter adds to enum ep_errcode (containerd's errdefs has them, edgepull's
 * common errors do not). snap_grpc_status() maps every code to a gRPC status. */
enum snap_errcode {
  SNAP_EEXISTS = 64,  /* key or name already exists: AlreadyExists */
  SNAP_EPRECOND = 65, /* wrong kind, has children: FailedPrecondition */
};

/* Bounds on what a request may carry (containerd's labels package: key + value <= 4096). */
enum {
  SNAP_MAX_KEY = 4096,
  SNAP_MAX_LABEL = 4096,
  SNAP_MAX_LABELS = 1024,
  SNAP_MAX_FILTERS = 64,
  SNAP_MAX_CHAIN = 4096,
};

struct snap_label {
  char *key;
  char *value;
};

struct snap_labels {
  struct snap_label *v;
  size_t n;
};

struct snap_info {
  char *name;
  char *parent; /* "" when none */
  enum snap_kind kind;
  int64_t created_ns; /* since the epoch, UTC */
  int64_t updated_ns;
  struct snap_labels labels; /* sorted by key, no empty values */
};

struct snap_usage {
  int64_t size; /* bytes allocated (st_blocks * 512), each inode once */
  int64_t inodes;
};

/* One mount, as overlay.go's mounts() builds it: "bind" or "overlay". */
enum { SNAP_MAX_OPTIONS = 4 };
struct snap_mount {
  const char *type;
  char *source;
  char *options[SNAP_MAX_OPTIONS];
  size_t n_options;
};

/* The remote-prepare hook (issue 10 point 3): called by snap_prepare for an active snapshot whose
 * labels carry containerd.io/snapshot.ref, before anything is created. Return -SNAP_EEXISTS
 * after committing the target snapshot (Prepare then answers AlreadyExists), -EP_EUNSUPPORTED to
 * let an ordinary local Prepare go on, or any other error to fail the Prepare. */
typedef int (*snap_remote_fn)(void *ud, snap *s, const char *key, const char *parent,
                              const struct snap_labels *labels, ep_err *err);

struct snap_opts {
  const char *root; /* absolute; created 0700 if missing */
  snap_remote_fn remote;
  void *remote_ud;
  struct metrics *metrics; /* the service times its calls into it; NULL = none */
};

int snap_open(const struct snap_opts *o, snap **out, ep_err *err);
void snap_close(snap *s);
/* snap_opts.metrics (the service's handlers see only the core). */
struct metrics *snap_metrics(snap *s);

/* Prepare (kind ACTIVE) or View (kind VIEW): parent "" or a committed snapshot's name. */
int snap_prepare(snap *s, enum snap_kind kind, const char *key, const char *parent,
                 const struct snap_labels *labels, struct snap_mount *out, ep_err *err);
int snap_mounts(snap *s, const char *key, struct snap_mount *out, ep_err *err);
/* Commit active `key` as `name`; its labels become `labels`; usage is measured and stored. */
int snap_commit(snap *s, const char *name, const char *key, const struct snap_labels *labels,
                ep_err *err);
int snap_remove(snap *s, const char *key, ep_err *err);
int snap_stat(snap *s, const char *key, struct snap_info *out, ep_err *err);
/* Update labels per field paths ("labels", "labels.<key>"); n_paths 0 replaces all labels. */
int snap_update(snap *s, const struct snap_info *in, const char *const *paths, size_t n_paths,
                struct snap_info *out, ep_err *err);
/* Calls fn for each snapshot matching any of the filters (containerd's filter syntax); no filter
 * matches all. A non-zero return from fn stops the walk and is returned. No lock is held while fn
 * runs, so fn may block (a slow gRPC reader). */
typedef int (*snap_walk_fn)(const struct snap_info *info, void *ud);
int snap_walk(snap *s, const char *const *filters, size_t n_filters, snap_walk_fn fn, void *ud,
              ep_err *err);
int snap_usage(snap *s, const char *key, struct snap_usage *out, ep_err *err);
/* Writes the tree of a snapshot being created: fs_fd is its empty fs/ directory, parent_fds the
 * fs/ directories of the parent chain, closest first (none without a parent, at most
 * SNAP_MAX_FILL_PARENTS). Runs with no lock held, for as long as it needs. */
enum { SNAP_MAX_FILL_PARENTS = 128 };
typedef int (*snap_fill_fn)(void *ud, int fs_fd, const int *parent_fds, size_t n_parents,
                            ep_err *err);
/* Creates committed snapshot `name` on `parent` ("" or a committed snapshot) carrying `labels`,
 * its tree written by `fill` (the remote path: a layer unpacked as it streams in). Crash-safe as
 * Prepare is: the tree is written in a temp directory that no row names, so List never shows it
 * and a kill leaves only an orphan; Cleanup leaves it alone while fill runs. Then the files are
 * synced, usage is measured, and one transaction inserts the row and renames the directory.
 * Any failure, fill's included, commits nothing and removes the directory. -SNAP_EEXISTS when
 * `name` exists; -EP_ENOTFOUND when the parent is missing or was replaced meanwhile. */
int snap_create_committed(snap *s, const char *name, const char *parent,
                          const struct snap_labels *labels, snap_fill_fn fill, void *ud,
                          ep_err *err);
/* Removes every directory under snapshots/ that no snapshot references. */
int snap_cleanup(snap *s, ep_err *err);

void snap_info_free(struct snap_info *i);
void snap_mount_free(struct snap_mount *m);
void snap_labels_free(struct snap_labels *l);
/* The value of label `key`, or NULL. */
const char *snap_labels_get(const struct snap_labels *l, const char *key);

/* gRPC status code (enum grpc_status values) for an ep_err code. */
int snap_grpc_status(int code);

#endif
