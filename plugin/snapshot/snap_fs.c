/* Directory work for the snapshotter: temp directories, no-replace renames, removal and disk usage
 * of a snapshot tree. Everything walks by directory fd with O_NOFOLLOW, so a symlink inside a
 * snapshot (the container wrote it) can never make us remove or count anything outside.
 *
 * Recursion holds one fd per level; SNAP_FS_MAX_DEPTH bounds it (an error past it, never a silent
 * partial result). */
#include "plugin/snapshot/snap_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"

int snap_fs_mktemp(int dirfd, enum snap_kind kind, char name[SNAP_FS_NAME], ep_err *err) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  for (unsigned attempt = 0;; attempt++) {
    snprintf(name, SNAP_FS_NAME, "new-%d-%lx-%lx-%u", (int)getpid(), (unsigned long)ts.tv_sec,
             (unsigned long)ts.tv_nsec, attempt);
    if (mkdirat(dirfd, name, 0700) == 0)
      break;
    if (errno != EEXIST || attempt >= 100)
      return ep_syserror(err, EP_EIO, "creating snapshot directory %s", name);
  }
  ep_cleanup_close int fd = openat(dirfd, name, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return ep_syserror(err, EP_EIO, "opening snapshot directory %s", name);
  /* mkdirat's mode is masked by the umask; the modes must be overlay.go's exactly. */
  if (mkdirat(fd, "fs", 0755) < 0 || fchmodat(fd, "fs", 0755, 0) < 0)
    return ep_syserror(err, EP_EIO, "creating %s/fs", name);
  if (kind == SNAP_KIND_ACTIVE && (mkdirat(fd, "work", 0711) < 0 || fchmodat(fd, "work", 0711, 0)))
    return ep_syserror(err, EP_EIO, "creating %s/work", name);
  if (fsync(fd) < 0) /* fs/ and work/ are durable before any row can name them */
    return ep_syserror(err, EP_EIO, "syncing %s", name);
  return 0;
}

int snap_fs_rename(int dirfd, const char *from, const char *to, ep_err *err) {
  if (syscall(SYS_renameat2, dirfd, from, dirfd, to, 1 /* RENAME_NOREPLACE */) == 0)
    return 0;
  if (errno == EEXIST || errno == ENOTEMPTY)
    return ep_error(err, SNAP_EEXISTS, "snapshot directory %s exists", to);
  return ep_syserror(err, EP_EIO, "renaming snapshot directory %s to %s", from, to);
}

static bool is_dir_entry(int fd, const struct dirent *de) {
  if (de->d_type != DT_UNKNOWN)
    return de->d_type == DT_DIR;
  struct stat st;
  return fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static int rmrf_depth(int dirfd, const char *name, int depth, ep_err *err) {
  if (depth > SNAP_FS_MAX_DEPTH)
    return ep_error(err, EP_ETOOBIG, "removing: tree deeper than %d", SNAP_FS_MAX_DEPTH);
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return 0;
    if (errno == ENOTDIR || errno == ELOOP)
      return (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
                 ? 0
                 : ep_syserror(err, EP_EIO, "removing %s", name);
    return ep_syserror(err, EP_EIO, "opening %s for removal", name);
  }
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    close(fd);
    return ep_syserror(err, EP_EIO, "reading %s for removal", name);
  }
  int r = 0;
  struct dirent *de;
  while (r == 0 && (errno = 0, de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    if (is_dir_entry(fd, de))
      r = rmrf_depth(fd, de->d_name, depth + 1, err);
    else if (unlinkat(fd, de->d_name, 0) < 0 && errno != ENOENT)
      r = ep_syserror(err, EP_EIO, "removing %s", de->d_name);
  }
  closedir(d);
  if (r == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    r = ep_syserror(err, EP_EIO, "removing directory %s", name);
  return r;
}

int snap_fs_rmrf(int dirfd, const char *name, ep_err *err) {
  return rmrf_depth(dirfd, name, 0, err);
}

/* Inodes seen with more than one link: each counts once, as in continuity's diskUsage. */
struct linked {
  dev_t dev;
  ino_t ino;
  int64_t bytes;
};

struct du {
  struct snap_usage u;
  struct linked *v;
  size_t n, cap;
};

static int du_add(struct du *du, const struct stat *st, ep_err *err) {
  int64_t bytes = (int64_t)st->st_blocks * 512;
  du->u.size += bytes;
  du->u.inodes++;
  if (S_ISDIR(st->st_mode) || st->st_nlink < 2)
    return 0;
  if (du->n == du->cap) {
    size_t cap = du->cap ? du->cap * 2 : 64;
    struct linked *v = realloc(du->v, cap * sizeof *v);
    if (v == NULL)
      return ep_error(err, EP_EINTERNAL, "out of memory");
    du->v = v;
    du->cap = cap;
  }
  du->v[du->n++] = (struct linked){st->st_dev, st->st_ino, bytes};
  return 0;
}

static int du_walk(struct du *du, int dirfd, const char *name, int depth, ep_err *err) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return ep_syserror(err, EP_EIO, "usage: stat %s", name);
  int r = du_add(du, &st, err);
  if (r < 0 || !S_ISDIR(st.st_mode))
    return r;
  if (depth > SNAP_FS_MAX_DEPTH)
    return ep_error(err, EP_ETOOBIG, "usage: tree deeper than %d", SNAP_FS_MAX_DEPTH);
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return ep_syserror(err, EP_EIO, "usage: opening %s", name);
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    close(fd);
    return ep_syserror(err, EP_EIO, "usage: reading %s", name);
  }
  struct dirent *de;
  while (r == 0 && (de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      r = du_walk(du, fd, de->d_name, depth + 1, err);
  closedir(d);
  return r;
}

static int linked_cmp(const void *a, const void *b) {
  const struct linked *x = a, *y = b;
  if (x->dev != y->dev)
    return x->dev < y->dev ? -1 : 1;
  return x->ino < y->ino ? -1 : (x->ino > y->ino);
}

int snap_fs_usage(int dirfd, const char *path, struct snap_usage *out, ep_err *err) {
  struct du du = {0};
  int r = du_walk(&du, dirfd, path, 0, err);
  if (r == 0) {
    if (du.n > 1)
      qsort(du.v, du.n, sizeof *du.v, linked_cmp);
    for (size_t i = 1; i < du.n; i++)
      if (du.v[i].dev == du.v[i - 1].dev && du.v[i].ino == du.v[i - 1].ino) {
        du.u.size -= du.v[i].bytes;
        du.u.inodes--;
      }
    *out = du.u;
  }
  free(du.v);
  return r;
}
