/* The snapshotter core: containerd's overlayfs snapshotter (snapshots/overlay/overlay.go) over the
 * sqlite metastore of snap_meta.c.
 *
 * Layout: ROOT/snapshots.db and ROOT/snapshots/<id>/{fs,work}; <id> is the row id, never a key
 * from a request. Temp names "new-*" (being created) and "rm-*" (being removed) are never
 * referenced by a row, so Cleanup removes them with every other unreferenced entry.
 *
 * Crash safety (docs/snapshotter.md): Prepare makes new-X with fs/ and work/, then in ONE
 * transaction inserts the row and renames new-X to <id> before COMMIT. A kill before the COMMIT
 * leaves a directory with no row (an orphan), never a row without a directory. Remove commits the
 * row's deletion first, then renames <id> to rm-<id> and removes it: a kill leaves an orphan.
 *
 * Locking: one writer mutex serializes the short write transactions (and the temp-dir creation,
 * so Cleanup never takes a directory a Prepare is about to rename). Slow work runs outside it:
 * Commit measures usage before it locks, Remove and Cleanup delete trees after unlocking, and
 * readers (Stat, List, Mounts, Usage) use their own sqlite connections and never take it. */
#include "plugin/snapshot/snap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "plugin/snapshot/snap_filter.h"
#include "plugin/snapshot/snap_fs.h"
#include "plugin/snapshot/snap_int.h"
#include "plugin/snapshot/snap_meta.h"

enum { WALK_PAGE = 100 };

struct snap {
  pthread_mutex_t wmu; /* the writer: see the opening comment */
  snap_meta *meta;
  int snaps_fd; /* ROOT/snapshots */
  char *root;
  bool index_off; /* overlay.go: "index=off" when the kernel has the parameter */
  snap_remote_fn remote;
  void *remote_ud;
  struct metrics *metrics;
  snap_crash_fn crash;
  void *crash_ud;
  /* temp dirs of snap_create_committed being filled outside the mutex: Cleanup skips them */
  char (*busy)[SNAP_FS_NAME];
  size_t n_busy, cap_busy;
};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool crashed(snap *s, const char *step) {
  return s->crash != NULL && s->crash(s->crash_ud, step) != 0;
}

void snap_set_crash_hook(snap *s, snap_crash_fn fn, void *ud) {
  s->crash = fn;
  s->crash_ud = ud;
}

int snap_open(const struct snap_opts *o, snap **out, ep_err *err) {
  if (o->root == NULL || o->root[0] != '/')
    return ep_error(err, EP_EINVAL, "snapshotter root must be an absolute path");
  if (mkdir(o->root, 0700) < 0 && errno != EEXIST)
    return ep_syserror(err, EP_EIO, "creating snapshotter root %s", o->root);
  ep_cleanup_close int root_fd = open(o->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0)
    return ep_syserror(err, EP_EIO, "opening snapshotter root %s", o->root);
  if (mkdirat(root_fd, "snapshots", 0700) < 0 && errno != EEXIST)
    return ep_syserror(err, EP_EIO, "creating %s/snapshots", o->root);
  snap *s = calloc(1, sizeof *s);
  if (s == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  if (pthread_mutex_init(&s->wmu, NULL) != 0) {
    free(s);
    return ep_error(err, EP_EINTERNAL, "snapshotter: cannot create a mutex");
  }
  s->remote = o->remote;
  s->remote_ud = o->remote_ud;
  s->metrics = o->metrics;
  s->index_off = access("/sys/module/overlay/parameters/index", F_OK) == 0;
  s->snaps_fd = openat(root_fd, "snapshots", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  s->root = realpath(o->root, NULL);
  int r = 0;
  if (s->snaps_fd < 0)
    r = ep_syserror(err, EP_EIO, "opening %s/snapshots", o->root);
  else if (s->root == NULL || strlen(s->root) > 1024) /* mount options carry it, 128 times */
    r = ep_error(err, EP_EINVAL, "snapshotter root %s: unusable path", o->root);
  if (r == 0) {
    char db[1100];
    snprintf(db, sizeof db, "%s/snapshots.db", s->root);
    if ((r = snap_meta_open(db, &s->meta, err)) < 0)
      ep_wrap(err, "snapshotter root %s", o->root);
  }
  if (r < 0) {
    snap_close(s);
    return r;
  }
  *out = s;
  return 0;
}

void snap_close(snap *s) {
  if (s == NULL)
    return;
  snap_meta_close(s->meta);
  if (s->snaps_fd >= 0)
    close(s->snaps_fd);
  free(s->root);
  free(s->busy);
  pthread_mutex_destroy(&s->wmu);
  free(s);
}

static char *fs_path(snap *s, int64_t id) {
  char *p = NULL;
  if (asprintf(&p, "%s/snapshots/%lld/fs", s->root, (long long)id) < 0)
    return NULL;
  return p;
}

static int add_opt(struct snap_mount *m, char *opt, ep_err *err) {
  if (opt == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  m->options[m->n_options++] = opt;
  return 0;
}

static int bind_mount(snap *s, int64_t id, bool ro, struct snap_mount *m, ep_err *err) {
  m->type = "bind";
  if ((m->source = fs_path(s, id)) == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  int r = add_opt(m, strdup(ro ? "ro" : "rw"), err);
  return r < 0 ? r : add_opt(m, strdup("rbind"), err);
}

static char *lowerdir(snap *s, const int64_t *parents, size_t n) {
  size_t cap = 16 + n * (strlen(s->root) + 40);
  char *o = malloc(cap);
  if (o == NULL)
    return NULL;
  size_t k = (size_t)snprintf(o, cap, "lowerdir=");
  for (size_t i = 0; i < n; i++)
    k += (size_t)snprintf(o + k, cap - k, "%s%s/snapshots/%lld/fs", i ? ":" : "", s->root,
                          (long long)parents[i]);
  return o;
}

/* overlay.go's mounts(): parents are the ancestors' ids, closest first. */
static int build_mounts(snap *s, enum snap_kind kind, int64_t id, const int64_t *parents, size_t n,
                        struct snap_mount *m, ep_err *err) {
  memset(m, 0, sizeof *m);
  int r;
  if (n == 0)
    r = bind_mount(s, id, kind == SNAP_KIND_VIEW, m, err);
  else if (kind != SNAP_KIND_ACTIVE && n == 1)
    r = bind_mount(s, parents[0], true, m, err);
  else {
    m->type = "overlay";
    r = (m->source = strdup("overlay")) == NULL ? ep_error(err, EP_EINTERNAL, "out of memory") : 0;
    if (r == 0 && s->index_off)
      r = add_opt(m, strdup("index=off"), err);
    if (r == 0 && kind == SNAP_KIND_ACTIVE) {
      char *w = NULL, *u = NULL;
      if (asprintf(&w, "workdir=%s/snapshots/%lld/work", s->root, (long long)id) < 0)
        w = NULL;
      if ((r = add_opt(m, w, err)) == 0 &&
          asprintf(&u, "upperdir=%s/snapshots/%lld/fs", s->root, (long long)id) < 0)
        u = NULL;
      if (r == 0)
        r = add_opt(m, u, err);
    }
    if (r == 0)
      r = add_opt(m, lowerdir(s, parents, n), err);
  }
  if (r < 0)
    snap_mount_free(m);
  return r;
}

static int remote_prepare(snap *s, const char *key, const char *parent,
                          const struct snap_labels *labels, ep_err *err) {
  if (s->remote == NULL || snap_labels_get(labels, "containerd.io/snapshot.ref") == NULL)
    return -EP_EUNSUPPORTED;
  int r = s->remote(s->remote_ud, s, key, parent, labels, err);
  if (r == -EP_EUNSUPPORTED)
    ep_err_clear(err);
  return r;
}

/* The end of every create, under the writer mutex inside the open transaction: renames temp dir
 * `tmp` to "<id>", makes the rename durable, then commits the row. On failure the directory is
 * back at `tmp` (the caller removes it) and the transaction is for the caller to roll back. */
static int install_locked(snap *s, const char *tmp, int64_t id, const char *step, ep_err *err) {
  char name[32];
  snprintf(name, sizeof name, "%lld", (long long)id);
  int r = snap_fs_rename(s->snaps_fd, tmp, name, err);
  if (r == -SNAP_EEXISTS) {
    /* a directory left by an id whose transaction never committed (a crash): unreferenced */
    char stale[64];
    snprintf(stale, sizeof stale, "rm-stale-%s", tmp + 4);
    ep_err_clear(err);
    if ((r = snap_fs_rename(s->snaps_fd, name, stale, err)) == 0) {
      snap_fs_rmrf(s->snaps_fd, stale, NULL);
      r = snap_fs_rename(s->snaps_fd, tmp, name, err);
    }
  }
  if (r < 0)
    return r;
  /* the rename must be on disk before the row is (a power cut after COMMIT) */
  if (fsync(s->snaps_fd) < 0) {
    r = ep_syserror(err, EP_EIO, "syncing the snapshots directory");
    snap_fs_rename(s->snaps_fd, name, tmp, NULL); /* back, so the caller removes it */
    return r;
  }
  if (crashed(s, step))
    return ep_error(err, EP_ECANCELED, "simulated crash");
  if ((r = snap_meta_w_commit(s->meta, err)) < 0)
    snap_fs_rename(s->snaps_fd, name, tmp, NULL); /* back, so the caller removes it */
  return r;
}

/* overlay.go: the new upper dir gets the parent's owner. */
static int own_like_parent(snap *s, const char *tmp, int64_t parent_id, const char *key,
                           ep_err *err) {
  char pfs[64], tfs[SNAP_FS_NAME + 8];
  struct stat st;
  snprintf(pfs, sizeof pfs, "%lld/fs", (long long)parent_id);
  snprintf(tfs, sizeof tfs, "%s/fs", tmp);
  if (fstatat(s->snaps_fd, pfs, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
      fchownat(s->snaps_fd, tfs, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
    return ep_syserror(err, EP_EIO, "giving snapshot %s its parent's owner", key);
  return 0;
}

/* The write half of Prepare/View, under the writer mutex. On success *id and the parent chain
 * (ancestors, closest first) are set; `tmp` has become snapshots/<id>. */
static int create_locked(snap *s, enum snap_kind kind, const char *key, const char *parent,
                         const struct snap_labels *labels, const char *tmp, int64_t *id,
                         int64_t **chain, size_t *n_chain, ep_err *err) {
  struct snap_row p = {0}, k = {0};
  int r = snap_meta_w_begin(s->meta, err);
  if (r == 0 && parent[0] != '\0') {
    if ((r = snap_meta_w_get(s->meta, parent, &p, err)) == -EP_ENOTFOUND)
      ep_wrap(err, "missing parent %s", parent);
    else if (r == 0 && p.info.kind != SNAP_KIND_COMMITTED)
      r = ep_error(err, EP_EINVAL, "parent %s is not a committed snapshot", parent);
  }
  if (r == 0) {
    if ((r = snap_meta_w_get(s->meta, key, &k, err)) == 0)
      r = ep_error(err, SNAP_EEXISTS, "snapshot %s already exists", key);
    else if (r == -EP_ENOTFOUND)
      ep_err_clear(err), r = 0;
  }
  if (r == 0)
    r = snap_meta_w_insert(s->meta, key, p.id, kind, now_ns(), id, err);
  if (r == 0)
    r = snap_meta_w_set_labels(s->meta, *id, labels, err);
  if (r == 0 && p.id != 0)
    r = snap_meta_w_chain(s->meta, p.id, chain, n_chain, err);
  if (r == 0 && p.id != 0)
    r = own_like_parent(s, tmp, p.id, key, err);
  snap_row_free(&p);
  snap_row_free(&k);
  if (r < 0)
    return r;
  return r < 0 ? r : install_locked(s, tmp, *id, "prepare-rename", err);
}

int snap_prepare(snap *s, enum snap_kind kind, const char *key, const char *parent,
                 const struct snap_labels *labels, struct snap_mount *out, ep_err *err) {
  parent = parent != NULL ? parent : "";
  int r = snap_check_key(key, "key", false, err);
  if (r == 0)
    r = snap_check_key(parent, "parent", true, err);
  if (r == 0)
    r = snap_check_labels(labels, err);
  if (r == 0 && kind != SNAP_KIND_ACTIVE && kind != SNAP_KIND_VIEW)
    r = ep_error(err, EP_EINVAL, "only active or view snapshots can be created");
  if (r == 0 && kind == SNAP_KIND_ACTIVE &&
      (r = remote_prepare(s, key, parent, labels, err)) == -EP_EUNSUPPORTED)
    r = 0;
  if (r < 0)
    return r;

  char tmp[SNAP_FS_NAME];
  int64_t id = 0, *chain = NULL;
  size_t n_chain = 0;
  pthread_mutex_lock(&s->wmu);
  r = snap_fs_mktemp(s->snaps_fd, kind, tmp, err);
  if (r == 0 && crashed(s, "prepare-mkdir")) {
    pthread_mutex_unlock(&s->wmu);
    return ep_error(err, EP_ECANCELED, "simulated crash");
  }
  if (r == 0)
    r = create_locked(s, kind, key, parent, labels, tmp, &id, &chain, &n_chain, err);
  bool simulated = (r == -EP_ECANCELED);
  snap_meta_w_rollback(s->meta);
  pthread_mutex_unlock(&s->wmu);
  if (r < 0 && !simulated)
    snap_fs_rmrf(s->snaps_fd, tmp, NULL);
  if (r == 0)
    r = build_mounts(s, kind, id, chain, n_chain, out, err);
  free(chain);
  return r < 0 ? ep_wrap(err, "%s %s", kind == SNAP_KIND_VIEW ? "view" : "prepare", key) : 0;
}

static int mounts_of(snap *s, const struct snap_row *row, struct snap_mount *out, ep_err *err) {
  int64_t *chain = NULL;
  size_t n = 0;
  int r = 0;
  if (row->parent_id != 0)
    r = snap_meta_chain(s->meta, row->parent_id, &chain, &n, err);
  if (r == 0)
    r = build_mounts(s, row->info.kind, row->id, chain, n, out, err);
  free(chain);
  return r;
}

int snap_mounts(snap *s, const char *key, struct snap_mount *out, ep_err *err) {
  struct snap_row row;
  int r = snap_meta_get(s->meta, key, &row, err);
  if (r < 0)
    return r;
  if (row.info.kind != SNAP_KIND_ACTIVE && row.info.kind != SNAP_KIND_VIEW)
    r = ep_error(err, SNAP_EPRECOND, "snapshot %s is not active or view", key);
  else
    r = mounts_of(s, &row, out, err);
  snap_row_free(&row);
  return r;
}

static int usage_of(snap *s, int64_t id, struct snap_usage *u, ep_err *err) {
  char path[64];
  snprintf(path, sizeof path, "%lld/fs", (long long)id);
  return snap_fs_usage(s->snaps_fd, path, u, err);
}

static int commit_locked(snap *s, const char *name, const char *key, int64_t id,
                         const struct snap_labels *labels, const struct snap_usage *u,
                         ep_err *err) {
  struct snap_row row = {0}, other = {0};
  int r = snap_meta_w_begin(s->meta, err);
  if (r == 0 && (r = snap_meta_w_get(s->meta, key, &row, err)) == 0 && row.id != id)
    r = ep_error(err, EP_ENOTFOUND, "snapshot %s was replaced", key);
  if (r == 0) {
    if ((r = snap_meta_w_get(s->meta, name, &other, err)) == 0)
      r = ep_error(err, SNAP_EEXISTS, "committed snapshot %s already exists", name);
    else if (r == -EP_ENOTFOUND)
      ep_err_clear(err), r = 0;
  }
  if (r == 0 && row.info.kind != SNAP_KIND_ACTIVE)
    r = ep_error(err, SNAP_EPRECOND, "snapshot %s is not active", key);
  if (r == 0)
    r = snap_meta_w_to_committed(s->meta, id, name, now_ns(), u, err);
  if (r == 0)
    r = snap_meta_w_set_labels(s->meta, id, labels, err);
  if (r == 0)
    r = snap_meta_w_commit(s->meta, err);
  snap_row_free(&row);
  snap_row_free(&other);
  return r;
}

int snap_commit(snap *s, const char *name, const char *key, const struct snap_labels *labels,
                ep_err *err) {
  int r = snap_check_key(name, "name", false, err);
  if (r == 0)
    r = snap_check_key(key, "key", false, err);
  if (r == 0)
    r = snap_check_labels(labels, err);
  struct snap_row row;
  if (r == 0 && (r = snap_meta_get(s->meta, key, &row, err)) == 0) {
    /* measured before locking: a big tree takes a while, and the others must not wait */
    struct snap_usage u = {0};
    r = usage_of(s, row.id, &u, err);
    if (r == 0) {
      pthread_mutex_lock(&s->wmu);
      r = commit_locked(s, name, key, row.id, labels, &u, err);
      snap_meta_w_rollback(s->meta);
      pthread_mutex_unlock(&s->wmu);
    }
    snap_row_free(&row);
  }
  return r < 0 ? ep_wrap(err, "commit %s as %s", key, name) : 0;
}

int snap_remove(snap *s, const char *key, ep_err *err) {
  int r = snap_check_key(key, "key", false, err);
  if (r < 0)
    return r;
  struct snap_row row = {0};
  bool child = false;
  pthread_mutex_lock(&s->wmu);
  r = snap_meta_w_begin(s->meta, err);
  if (r == 0)
    r = snap_meta_w_get(s->meta, key, &row, err);
  if (r == 0 && (r = snap_meta_w_has_child(s->meta, row.id, &child, err)) == 0 && child)
    r = ep_error(err, SNAP_EPRECOND, "cannot remove snapshot %s with child", key);
  if (r == 0)
    r = snap_meta_w_delete(s->meta, row.id, err);
  if (r == 0)
    r = snap_meta_w_commit(s->meta, err);
  snap_meta_w_rollback(s->meta);
  char name[32], gone[40];
  snprintf(name, sizeof name, "%lld", (long long)row.id);
  snprintf(gone, sizeof gone, "rm-%lld", (long long)row.id);
  bool simulated = r == 0 && crashed(s, "remove-commit");
  if (r == 0 && !simulated && snap_fs_rename(s->snaps_fd, name, gone, NULL) < 0)
    ep_log_warn("snapshot %s: directory %s could not be renamed for removal", key, name);
  pthread_mutex_unlock(&s->wmu);
  simulated = simulated || (r == 0 && crashed(s, "remove-rename"));
  if (r == 0 && !simulated) {
    ep_err rm_err = {0};
    if (snap_fs_rmrf(s->snaps_fd, gone, &rm_err) < 0)
      ep_log_warn("snapshot %s: %s (Cleanup will retry)", key, rm_err.msg);
  }
  snap_row_free(&row);
  return r < 0 ? ep_wrap(err, "remove %s", key) : 0;
}

int snap_stat(snap *s, const char *key, struct snap_info *out, ep_err *err) {
  struct snap_row row;
  int r = snap_meta_get(s->meta, key, &row, err);
  if (r < 0)
    return r;
  *out = row.info;
  return 0;
}

/* storage.UpdateInfo: "labels.<k>" copies one label (absent = removed), "labels" all of them. */
static int apply_mask(struct snap_labels *cur, const struct snap_info *in, const char *const *paths,
                      size_t n_paths, ep_err *err) {
  int r = 0;
  if (n_paths == 0) {
    snap_labels_free(cur);
    return snap_labels_copy(cur, &in->labels, err);
  }
  for (size_t i = 0; r == 0 && i < n_paths; i++) {
    if (strncmp(paths[i], "labels.", 7) == 0) {
      const char *v = snap_labels_get(&in->labels, paths[i] + 7);
      r = snap_labels_set(cur, paths[i] + 7, v != NULL ? v : "", err);
    } else if (strcmp(paths[i], "labels") == 0) {
      snap_labels_free(cur);
      r = snap_labels_copy(cur, &in->labels, err);
    } else {
      r = ep_error(err, EP_EINVAL, "cannot update %.64s field on snapshot %s", paths[i], in->name);
    }
  }
  return r;
}

int snap_update(snap *s, const struct snap_info *in, const char *const *paths, size_t n_paths,
                struct snap_info *out, ep_err *err) {
  int r = snap_check_key(in->name, "name", false, err);
  if (r == 0)
    r = snap_check_labels(&in->labels, err);
  if (r < 0)
    return r;
  struct snap_row row = {0};
  pthread_mutex_lock(&s->wmu);
  r = snap_meta_w_begin(s->meta, err);
  if (r == 0)
    r = snap_meta_w_get(s->meta, in->name, &row, err);
  if (r == 0)
    r = apply_mask(&row.info.labels, in, paths, n_paths, err);
  if (r == 0)
    r = snap_meta_w_touch(s->meta, row.id, row.info.updated_ns = now_ns(), err);
  if (r == 0)
    r = snap_meta_w_set_labels(s->meta, row.id, &row.info.labels, err);
  if (r == 0)
    r = snap_meta_w_commit(s->meta, err);
  snap_meta_w_rollback(s->meta);
  pthread_mutex_unlock(&s->wmu);
  if (r < 0) {
    snap_row_free(&row);
    return ep_wrap(err, "update %s", in->name);
  }
  *out = row.info;
  return 0;
}

int snap_walk(snap *s, const char *const *filters, size_t n_filters, snap_walk_fn fn, void *ud,
              ep_err *err) {
  snap_filter *f = NULL;
  int r = snap_filter_parse(filters, n_filters, &f, err);
  struct snap_row rows[WALK_PAGE];
  int64_t after = 0;
  size_t n = WALK_PAGE;
  while (r == 0 && n == WALK_PAGE) {
    if ((r = snap_meta_page(s->meta, after, rows, WALK_PAGE, &n, err)) < 0)
      break;
    for (size_t i = 0; i < n; i++) {
      after = rows[i].id;
      if (r == 0 && snap_filter_match(f, &rows[i].info))
        r = fn(&rows[i].info, ud);
      snap_row_free(&rows[i]);
    }
  }
  snap_filter_free(f);
  return r;
}

int snap_usage(snap *s, const char *key, struct snap_usage *out, ep_err *err) {
  struct snap_row row;
  int r = snap_meta_get(s->meta, key, &row, err);
  if (r < 0)
    return r;
  if (row.info.kind == SNAP_KIND_ACTIVE)
    r = usage_of(s, row.id, out, err);
  else
    *out = row.usage;
  snap_row_free(&row);
  return r;
}

/* ---- snap_create_committed: a committed snapshot whose tree is written outside the mutex ---- */

static bool is_busy(snap *s, const char *name) {
  for (size_t i = 0; i < s->n_busy; i++)
    if (strcmp(s->busy[i], name) == 0)
      return true;
  return false;
}

/* Under the writer mutex. */
static int busy_add(snap *s, const char *name, ep_err *err) {
  if (s->n_busy == s->cap_busy) {
    size_t cap = s->cap_busy ? s->cap_busy * 2 : 8;
    void *v = realloc(s->busy, cap * sizeof *s->busy);
    if (v == NULL)
      return ep_error(err, EP_EINTERNAL, "out of memory");
    s->busy = v;
    s->cap_busy = cap;
  }
  snprintf(s->busy[s->n_busy++], SNAP_FS_NAME, "%s", name);
  return 0;
}

static void busy_del(snap *s, const char *name) {
  for (size_t i = 0; i < s->n_busy; i++)
    if (strcmp(s->busy[i], name) == 0) {
      memmove(&s->busy[i], &s->busy[i + 1], (s->n_busy - i - 1) * sizeof *s->busy);
      s->n_busy--;
      return;
    }
}

/* The parent chain's fs/ directories, closest first (at most SNAP_MAX_FILL_PARENTS). */
static int open_parents(snap *s, int64_t parent_id, int *fds, size_t *n, ep_err *err) {
  int64_t *chain = NULL;
  size_t nc = 0;
  *n = 0;
  int r = snap_meta_chain(s->meta, parent_id, &chain, &nc, err);
  for (size_t i = 0; r == 0 && i < nc && i < SNAP_MAX_FILL_PARENTS; i++) {
    char pfs[64];
    snprintf(pfs, sizeof pfs, "%lld/fs", (long long)chain[i]);
    fds[i] = openat(s->snaps_fd, pfs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fds[i] < 0)
      r = ep_syserror(err, EP_EIO, "opening the directory of parent snapshot %lld",
                      (long long)chain[i]);
    else
      (*n)++;
  }
  free(chain);
  return r;
}

/* The parent must still be the committed snapshot it was when the fill began. */
static int ingest_locked(snap *s, const char *name, const char *parent, int64_t parent_id,
                         const struct snap_labels *labels, const struct snap_usage *u,
                         const char *tmp, ep_err *err) {
  struct snap_row p = {0}, other = {0};
  int64_t id = 0;
  int r = snap_meta_w_begin(s->meta, err);
  if (r == 0 && parent[0] != '\0' && (r = snap_meta_w_get(s->meta, parent, &p, err)) == 0 &&
      (p.id != parent_id || p.info.kind != SNAP_KIND_COMMITTED))
    r = ep_error(err, EP_ENOTFOUND, "parent %s was replaced", parent);
  if (r == 0) {
    if ((r = snap_meta_w_get(s->meta, name, &other, err)) == 0)
      r = ep_error(err, SNAP_EEXISTS, "snapshot %s already exists", name);
    else if (r == -EP_ENOTFOUND)
      ep_err_clear(err), r = 0;
  }
  int64_t now = now_ns();
  if (r == 0)
    r = snap_meta_w_insert(s->meta, name, parent_id, SNAP_KIND_COMMITTED, now, &id, err);
  if (r == 0)
    r = snap_meta_w_to_committed(s->meta, id, name, now, u, err);
  if (r == 0)
    r = snap_meta_w_set_labels(s->meta, id, labels, err);
  snap_row_free(&p);
  snap_row_free(&other);
  return r < 0 ? r : install_locked(s, tmp, id, "ingest-rename", err);
}

/* Writes the tree: fill, then everything it wrote is made durable and measured. */
static int ingest_fill(snap *s, const char *tmp, int64_t parent_id, snap_fill_fn fill, void *ud,
                       struct snap_usage *u, ep_err *err) {
  int pfds[SNAP_MAX_FILL_PARENTS];
  size_t np = 0;
  char tfs[SNAP_FS_NAME + 8];
  snprintf(tfs, sizeof tfs, "%s/fs", tmp);
  ep_cleanup_close int fsfd =
      openat(s->snaps_fd, tfs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  int r = fsfd < 0 ? ep_syserror(err, EP_EIO, "opening %s", tfs) : 0;
  if (r == 0 && parent_id != 0)
    r = open_parents(s, parent_id, pfds, &np, err);
  if (r == 0)
    r = fill(ud, fsfd, pfds, np, err);
  for (size_t i = 0; i < np; i++)
    close(pfds[i]);
  /* the files' data must be on disk before a row names them (a power cut after COMMIT) */
  if (r == 0 && syncfs(fsfd) < 0)
    r = ep_syserror(err, EP_EIO, "syncing %s", tfs);
  return r < 0 ? r : snap_fs_usage(s->snaps_fd, tfs, u, err);
}

int snap_create_committed(snap *s, const char *name, const char *parent,
                          const struct snap_labels *labels, snap_fill_fn fill, void *ud,
                          ep_err *err) {
  parent = parent != NULL ? parent : "";
  int r = snap_check_key(name, "name", false, err);
  if (r == 0)
    r = snap_check_key(parent, "parent", true, err);
  if (r == 0)
    r = snap_check_labels(labels, err);
  struct snap_row p = {0};
  if (r == 0 && parent[0] != '\0' && (r = snap_meta_get(s->meta, parent, &p, err)) == 0 &&
      p.info.kind != SNAP_KIND_COMMITTED)
    r = ep_error(err, EP_EINVAL, "parent %s is not a committed snapshot", parent);
  int64_t parent_id = p.id;
  snap_row_free(&p);
  if (r < 0)
    return ep_wrap(err, "create %s", name);

  char tmp[SNAP_FS_NAME];
  pthread_mutex_lock(&s->wmu);
  if ((r = snap_fs_mktemp(s->snaps_fd, SNAP_KIND_VIEW, tmp, err)) == 0 &&
      (r = busy_add(s, tmp, err)) < 0)
    snap_fs_rmrf(s->snaps_fd, tmp, NULL);
  pthread_mutex_unlock(&s->wmu);
  if (r < 0)
    return ep_wrap(err, "create %s", name);

  struct snap_usage u = {0};
  if (parent_id != 0)
    r = own_like_parent(s, tmp, parent_id, name, err);
  if (r == 0)
    r = ingest_fill(s, tmp, parent_id, fill, ud, &u, err);
  bool filled = (r == 0);
  pthread_mutex_lock(&s->wmu);
  if (r == 0)
    r = ingest_locked(s, name, parent, parent_id, labels, &u, tmp, err);
  bool simulated = filled && r == -EP_ECANCELED; /* only the crash hook cancels there */
  snap_meta_w_rollback(s->meta);
  busy_del(s, tmp);
  pthread_mutex_unlock(&s->wmu);
  if (r < 0 && !simulated)
    snap_fs_rmrf(s->snaps_fd, tmp, NULL);
  return r < 0 ? ep_wrap(err, "create %s", name) : 0;
}

static bool referenced(snap *s, const char *name, ep_err *err, int *r) {
  char *end;
  errno = 0;
  long long id = strtoll(name, &end, 10);
  if (name[0] < '1' || name[0] > '9' || *end != '\0' || errno != 0)
    return false;
  bool exists = false;
  *r = snap_meta_id_exists(s->meta, id, &exists, err);
  return exists;
}

/* Under the writer mutex: renames every unreferenced entry to rm-* and lists the rm-* names. */
static int collect_orphans(snap *s, char ***out, size_t *n, ep_err *err) {
  int fd = openat(s->snaps_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (d == NULL) {
    if (fd >= 0)
      close(fd);
    return ep_syserror(err, EP_EIO, "cleanup: reading %s/snapshots", s->root);
  }
  int r = 0;
  struct dirent *de;
  while (r == 0 && (de = readdir(d)) != NULL) {
    const char *nm = de->d_name;
    if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0 || is_busy(s, nm) ||
        referenced(s, nm, err, &r) || r < 0)
      continue;
    char *gone = NULL;
    if (asprintf(&gone, "%s%s", strncmp(nm, "rm-", 3) == 0 ? "" : "rm-", nm) < 0) {
      r = ep_error(err, EP_EINTERNAL, "out of memory");
      break;
    }
    if (strcmp(gone, nm) != 0 && snap_fs_rename(s->snaps_fd, nm, gone, NULL) < 0) {
      free(gone); /* another Cleanup took it, or a name clash: next time */
      continue;
    }
    char **v = realloc(*out, (*n + 1) * sizeof *v);
    if (v == NULL) {
      free(gone);
      r = ep_error(err, EP_EINTERNAL, "out of memory");
      break;
    }
    *out = v;
    v[(*n)++] = gone;
  }
  closedir(d);
  return r;
}

int snap_cleanup(snap *s, ep_err *err) {
  char **names = NULL;
  size_t n = 0;
  pthread_mutex_lock(&s->wmu);
  int r = collect_orphans(s, &names, &n, err);
  pthread_mutex_unlock(&s->wmu);
  for (size_t i = 0; i < n; i++) {
    if (r == 0)
      r = snap_fs_rmrf(s->snaps_fd, names[i], err);
    free(names[i]);
  }
  free(names);
  return r < 0 ? ep_wrap(err, "cleanup") : 0;
}

struct metrics *snap_metrics(snap *s) {
  return s->metrics;
}
