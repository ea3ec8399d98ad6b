/* Applying one tar entry, with containerd's semantics (archive/tar.go
 * applyNaive + createTarFile, and OverlayConvertWhiteout):
 *  - `.wh..wh..opq` sets trusted.overlay.opaque=y on its directory;
 *    `.wh.<name>` creates <name> as a 0/0 character device owned like the
 *    marker; neither marker is written itself;
 *  - an existing entry is removed (recursively) and replaced, except a
 *    directory over a directory, which is kept and takes the new metadata;
 *  - then owner (lchown), xattrs (trusted.* skipped; ENOTSUP skipped; EPERM
 *    on user.* of a non-regular, non-directory skipped), mode with
 *    setuid/setgid/sticky (after the chown, which clears them), then times.
 *
 * Files are written here rather than with libarchive's archive_write_disk:
 * that API takes path strings resolved from the process's cwd, so it
 * cannot be confined to a directory fd (its SECURE_* flags check symlinks
 * with lstat and then act on the path, a check-then-use race, and cannot
 * express RESOLVE_IN_ROOT), and it does not do overlay whiteouts. Every
 * call below works on (parent dir fd, one name) and never follows that
 * name: O_NOFOLLOW|O_EXCL, AT_SYMLINK_NOFOLLOW, mknodat, symlinkat,
 * linkat without AT_SYMLINK_FOLLOW, and lsetxattr through the parent's
 * /proc/self/fd link for nodes that cannot be opened. */
#include "store/unpack_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "store/archive_dl.h"
#include "store/time_abi.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

void unpack_entry_times(struct archive_entry *ae, struct timespec ts[2]) {
  struct timespec m = {ep_archive_entry_mtime(ae), archive_entry_mtime_nsec(ae)};
  if (m.tv_sec < 0 || m.tv_nsec < 0 || m.tv_nsec > 999999999)
    m = (struct timespec){0, 0};
  struct timespec a = m;
  if (archive_entry_atime_is_set(ae)) {
    struct timespec t = {ep_archive_entry_atime(ae), archive_entry_atime_nsec(ae)};
    if (t.tv_sec > m.tv_sec || (t.tv_sec == m.tv_sec && t.tv_nsec > m.tv_nsec))
      a = t.tv_nsec >= 0 && t.tv_nsec <= 999999999 ? t : m;
  }
  ts[0] = a;
  ts[1] = m;
}

static int whiteout(int pfd, const char *path, const char *base, struct archive_entry *ae,
                    ep_err *err) {
  if (strcmp(base, WH_OPAQUE) == 0) {
    if (fsetxattr(pfd, "trusted.overlay.opaque", "y", 1, 0) < 0)
      return ep_syserror(err, EP_EIO, "%s: setting trusted.overlay.opaque", path);
    return 0;
  }
  const char *orig = base + strlen(WH_PREFIX);
  if (orig[0] == '\0' || strcmp(orig, ".") == 0 || strcmp(orig, "..") == 0)
    return ep_error(err, EP_EINVAL, "%s: invalid whiteout name", path);
  if (mknodat(pfd, orig, S_IFCHR, makedev(0, 0)) < 0) /* EEXIST fails, as in containerd */
    return ep_syserror(err, errno == EEXIST ? EP_EINVAL : EP_EIO, "%s: creating the whiteout",
                       path);
  if (fchownat(pfd, orig, (uid_t)archive_entry_uid(ae), (gid_t)archive_entry_gid(ae),
               AT_SYMLINK_NOFOLLOW) < 0)
    return ep_syserror(err, EP_EIO, "%s: chown of the whiteout", path);
  return 0;
}

static int write_data(struct archive *ar, struct archive_entry *ae, int fd, const char *path,
                      ep_err *err) {
  int64_t size = archive_entry_size_is_set(ae) ? archive_entry_size(ae) : 0;
  int64_t end = 0;
  for (;;) {
    const void *buf;
    size_t len;
    la_int64_t off;
    int r = archive_read_data_block(ar, &buf, &len, &off);
    if (r == ARCHIVE_EOF)
      break;
    if (r < ARCHIVE_WARN)
      return ep_error(err, EP_EINVAL, "%s: %s", path, archive_error_string(ar));
    if (off < 0 || (uint64_t)off + len > (uint64_t)size)
      return ep_error(err, EP_EINVAL, "%s: data beyond the entry's size", path);
    for (size_t done = 0; done < len;) {
      ssize_t w = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return ep_syserror(err, EP_EIO, "%s: write", path);
      done += (size_t)w;
    }
    end = off + (int64_t)len;
  }
  if (end < size && ftruncate(fd, size) < 0) /* a sparse tail */
    return ep_syserror(err, EP_EIO, "%s: truncate", path);
  return 0;
}

static int set_xattrs(struct archive_entry *ae, int fd, int pfd, const char *base, mode_t type,
                      const char *path, size_t max, ep_err *err) {
  archive_entry_xattr_reset(ae);
  const char *key;
  const void *val;
  size_t len;
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d/", pfd);
  while (archive_entry_xattr_next(ae, &key, &val, &len) == ARCHIVE_OK) {
    if (len > max)
      return ep_error(err, EP_ETOOBIG, "%s: xattr %.64s of %zu bytes over the limit %zu", path, key,
                      len, max);
    if (strncmp(key, "trusted.", 8) == 0) {
      ep_log_warn("unpack: %s: trusted xattr %.64s ignored", path, key);
      continue;
    }
    int r;
    if (fd >= 0) {
      r = fsetxattr(fd, key, val, len, 0);
    } else {
      /* The parent by its fd link, the node itself not followed. */
      ep_cleanup_free char *p = NULL;
      if (asprintf(&p, "%s%s", proc, base) < 0)
        return ep_error(err, EP_EIO, "out of memory");
      r = lsetxattr(p, key, val, len, 0);
    }
    if (r == 0)
      continue;
    if (errno == ENOTSUP ||
        (errno == EPERM && strncmp(key, "user.", 5) == 0 && type != S_IFREG && type != S_IFDIR)) {
      ep_log_warn("unpack: %s: xattr %.64s ignored: %s", path, key, strerror(errno));
      continue;
    }
    return ep_syserror(err, errno == E2BIG || errno == ERANGE ? EP_EINVAL : EP_EIO,
                       "%s: setting xattr %.64s", path, key);
  }
  return 0;
}

/* Owner, xattrs, mode: on fd when the node could be opened, else by name. */
static int set_meta(struct archive_entry *ae, int fd, int pfd, const char *base, const char *path,
                    size_t max_xattr, ep_err *err) {
  struct stat st;
  if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return ep_syserror(err, EP_EIO, "%s: stat", path);
  uid_t uid = (uid_t)archive_entry_uid(ae);
  gid_t gid = (gid_t)archive_entry_gid(ae);
  int r = fd >= 0 ? fchown(fd, uid, gid) : fchownat(pfd, base, uid, gid, AT_SYMLINK_NOFOLLOW);
  if (r < 0)
    return ep_syserror(err, EP_EIO, "%s: chown to %u:%u", path, (unsigned)uid, (unsigned)gid);
  r = set_xattrs(ae, fd, pfd, base, st.st_mode & S_IFMT, path, max_xattr, err);
  if (r < 0)
    return r;
  mode_t mode = archive_entry_perm(ae) & 07777;
  if (S_ISLNK(st.st_mode))
    return 0;
  /* Not a symlink (checked just above, and no one else writes here). */
  r = fd >= 0 ? fchmod(fd, mode) : fchmodat(pfd, base, mode, 0);
  if (r < 0)
    return ep_syserror(err, EP_EIO, "%s: chmod", path);
  return 0;
}

static int hardlink(struct unpack_fs *fs, int pfd, const char *base, const char *target,
                    const char *path, ep_err *err) {
  ep_cleanup_free char *clean = malloc(strlen(target) + 1);
  if (clean == NULL)
    return ep_error(err, EP_EIO, "out of memory");
  int r = unpack_clean_name(target, clean, err);
  if (r < 0)
    return ep_wrap(err, "%s: hardlink target", path);
  if (clean[0] == '\0')
    return ep_error(err, EP_EINVAL, "%s: hardlink to the root", path);
  char *slash = strrchr(clean, '/');
  const char *tbase = slash != NULL ? slash + 1 : clean;
  if (slash != NULL)
    *slash = '\0';
  ep_cleanup_close int tfd = unpack_fs_open_dir(fs, slash != NULL ? clean : "", false, err);
  if (tfd < 0)
    return ep_wrap(err, "%s: hardlink target", path);
  if (linkat(tfd, tbase, pfd, base, 0) < 0)
    return ep_syserror(err, errno == ENOENT || errno == EPERM ? EP_EINVAL : EP_EIO,
                       "%s: hardlink to %s", path, target);
  return 0;
}

/* Creates the node (and writes a file's data); *fd gets a regular file's or
 * directory's fd. */
static int create(struct unpack_fs *fs, struct archive *ar, struct archive_entry *ae, int pfd,
                  const char *base, const char *path, int *fd, ep_err *err) {
  mode_t type = archive_entry_filetype(ae);
  const char *link = archive_entry_hardlink(ae);
  if (link != NULL)
    return hardlink(fs, pfd, base, link, path, err);
  switch (type) {
  case AE_IFDIR:
    if (mkdirat(pfd, base, 0700) < 0 && errno != EEXIST)
      return ep_syserror(err, EP_EIO, "%s: mkdir", path);
    *fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (*fd < 0)
      return ep_syserror(err, EP_EIO, "%s: open directory", path);
    return 0;
  case AE_IFREG:
    *fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (*fd < 0)
      return ep_syserror(err, EP_EIO, "%s: create", path);
    return write_data(ar, ae, *fd, path, err);
  case AE_IFLNK: {
    const char *target = archive_entry_symlink(ae);
    if (target == NULL)
      return ep_error(err, EP_EINVAL, "%s: symlink without a target", path);
    if (symlinkat(target, pfd, base) < 0)
      return ep_syserror(err, EP_EIO, "%s: symlink", path);
    return 0;
  }
  case AE_IFCHR:
  case AE_IFBLK:
  case AE_IFIFO: {
    dev_t dev = makedev(archive_entry_rdevmajor(ae), archive_entry_rdevminor(ae));
    if (mknodat(pfd, base, type | (archive_entry_perm(ae) & 07777), dev) < 0)
      return ep_syserror(err, EP_EIO, "%s: mknod", path);
    return 0;
  }
  default:
    return ep_error(err, EP_EINVAL, "%s: unsupported entry type 0%o", path, (unsigned)type);
  }
}

int unpack_entry_apply(struct unpack_fs *fs, struct archive *ar, struct archive_entry *ae,
                       const char *path, ep_err *err) {
  const char *slash = strrchr(path, '/');
  const char *base = slash != NULL ? slash + 1 : path;
  ep_cleanup_free char *parent = strndup(path, slash != NULL ? (size_t)(slash - path) : 0);
  if (parent == NULL)
    return ep_error(err, EP_EIO, "out of memory");
  ep_cleanup_close int pfd = unpack_fs_open_dir(fs, parent, true, err);
  if (pfd < 0)
    return ep_wrap(err, "%s", path);
  if (strncmp(base, WH_PREFIX, strlen(WH_PREFIX)) == 0)
    return whiteout(pfd, path, base, ae, err);

  bool is_dir = archive_entry_hardlink(ae) == NULL && archive_entry_filetype(ae) == AE_IFDIR;
  struct stat st;
  if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && !(S_ISDIR(st.st_mode) && is_dir)) {
    int r = unpack_fs_remove_all(pfd, base);
    if (r < 0) {
      errno = -r;
      return ep_syserror(err, EP_EIO, "%s: removing the entry it replaces", path);
    }
  }
  ep_cleanup_close int fd = -1;
  int r = create(fs, ar, ae, pfd, base, path, &fd, err);
  if (r < 0)
    return r;
  r = set_meta(ae, fd, pfd, base, path, fs->lim->max_xattr, err);
  if (r < 0)
    return r;
  struct timespec ts[2];
  unpack_entry_times(ae, ts);
  if (utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return ep_syserror(err, EP_EIO, "%s: setting times", path);
  return is_dir ? 1 : 0;
}
