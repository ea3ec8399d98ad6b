/* Path resolution for the unpacker: every directory an entry lands in is
 * opened beneath the layer's root fd, never by a path string.
 *
 * With openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) a symlink inside the
 * layer resolves as if the root were "/", which is what containerd's
 * fs.RootPath does, so `lib -> /usr/lib` followed by `lib/x` lands in
 * <root>/usr/lib/x and `d -> /etc` followed by `d/passwd` lands in
 * <root>/etc/passwd, never on the host. When openat2 is missing (ENOSYS,
 * kernels before 5.6, or a seccomp filter) the walker opens one component
 * at a time with O_NOFOLLOW and refuses a symlinked parent: stricter, never
 * unsafe. The final component of an entry is handled by the caller with
 * *at() calls that do not follow it.
 *
 * Missing parents are created like containerd's mkparent: mode 0755, or a
 * copy of the owner, mode, times and (non-trusted) xattrs of the same
 * directory in the topmost lower layer that has it. */
#include "store/unpack_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/cleanup.h"

int unpack_clean_name(const char *name, char *out, ep_err *err) {
  if (name[0] == '/')
    return ep_error(err, EP_EINVAL, "absolute name refused");
  size_t n = 0;
  const char *p = name;
  while (*p != '\0') {
    const char *e = strchrnul(p, '/');
    size_t len = (size_t)(e - p);
    if (len == 2 && p[0] == '.' && p[1] == '.')
      return ep_error(err, EP_EINVAL, "name with a \"..\" component refused");
    if (len > 0 && !(len == 1 && p[0] == '.')) {
      if (n > 0)
        out[n++] = '/';
      memcpy(out + n, p, len);
      n += len;
    }
    p = *e == '/' ? e + 1 : e;
  }
  out[n] = '\0';
  return 0;
}

static int fs_openat2(int dirfd, const char *path, int flags) {
  struct open_how how = {
      .flags = (uint64_t)(flags | O_CLOEXEC),
      .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
  };
  for (int tries = 0; tries < 16; tries++) {
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0 || errno != EAGAIN)
      return (int)fd;
  }
  return -1;
}

/* Opens one component of a directory walk. In openat2 mode the prefix
 * rel[0..end) is resolved from the root; otherwise comp is opened under cur
 * without following it. Sets errno on failure. */
static int fs_open_step(struct unpack_fs *fs, int root, int cur, char *rel, size_t end,
                        const char *comp) {
  if (!fs->no_openat2) {
    char saved = rel[end];
    rel[end] = '\0';
    int fd = fs_openat2(root, rel, O_RDONLY | O_DIRECTORY);
    rel[end] = saved;
    if (fd >= 0 || errno != ENOSYS)
      return fd;
    fs->no_openat2 = true;
  }
  int fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ELOOP)
    errno = ENOTDIR; /* a symlinked parent: refused by the walker */
  return fd;
}

/* Resolves rel beneath root (any directory fd, also a lower layer). */
static int fs_resolve(struct unpack_fs *fs, int root, const char *rel) {
  size_t len = strlen(rel);
  ep_cleanup_free char *buf = malloc(len + 1);
  if (buf == NULL) {
    errno = ENOMEM;
    return -1;
  }
  memcpy(buf, rel, len + 1);
  if (len > 0 && !fs->no_openat2) {
    int fd = fs_openat2(root, buf, O_RDONLY | O_DIRECTORY);
    if (fd >= 0 || errno != ENOSYS)
      return fd;
    fs->no_openat2 = true;
  }
  int cur = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  char *save = NULL;
  for (char *c = strtok_r(buf, "/", &save); c != NULL && cur >= 0; c = strtok_r(NULL, "/", &save)) {
    int next = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(cur);
    cur = next;
    errno = e == ELOOP ? ENOTDIR : e;
  }
  return cur;
}

static int copy_xattrs(struct unpack_fs *fs, int src, int dst) {
  ssize_t n = flistxattr(src, fs->lbuf, UNPACK_XATTR_BUF);
  if (n < 0)
    return errno == ENOTSUP ? 0 : -errno;
  for (ssize_t off = 0; off < n; off += (ssize_t)strlen(fs->lbuf + off) + 1) {
    const char *key = fs->lbuf + off;
    if (strncmp(key, "trusted.", 8) == 0)
      continue; /* as containerd's copyUpXAttrs */
    ssize_t v = fgetxattr(src, key, fs->xbuf, UNPACK_XATTR_BUF);
    if (v < 0) {
      if (errno == ENOTSUP || errno == ENODATA)
        continue;
      return -errno;
    }
    if (fsetxattr(dst, key, fs->xbuf, (size_t)v, XATTR_CREATE) < 0 && errno != EEXIST)
      return -errno;
  }
  return 0;
}

/* A freshly created parent dir takes the attributes of the same directory
 * in the topmost lower layer that has it (containerd's mkparent). */
static int copy_up(struct unpack_fs *fs, const char *rel, int dst) {
  for (size_t i = 0; i < fs->n_parents; i++) {
    ep_cleanup_close int src = fs_resolve(fs, fs->parents[i], rel);
    if (src < 0) {
      if (errno == ENOENT)
        continue;
      return errno == ENOTDIR ? 0 : -errno; /* replaced below: defaults */
    }
    struct stat st;
    if (fstat(src, &st) < 0 || fchown(dst, st.st_uid, st.st_gid) < 0 ||
        fchmod(dst, st.st_mode & 07777) < 0)
      return -errno;
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    if (futimens(dst, ts) < 0)
      return -errno;
    return copy_xattrs(fs, src, dst);
  }
  return 0;
}

static int fs_mkparent(struct unpack_fs *fs, int cur, char *rel, size_t end, const char *comp,
                       ep_err *err) {
  if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST)
    return ep_syserror(err, EP_EIO, "creating parent directory %.*s", (int)end, rel);
  int fd = fs_open_step(fs, fs->root, cur, rel, end, comp);
  if (fd < 0)
    return ep_syserror(err, errno == ENOENT ? EP_EINVAL : EP_EIO,
                       "parent %.*s is not a directory we can create", (int)end, rel);
  char saved = rel[end];
  rel[end] = '\0';
  int r = fchmod(fd, 0755) < 0 ? -errno : copy_up(fs, rel, fd);
  rel[end] = saved;
  if (r < 0) {
    close(fd);
    errno = -r;
    return ep_syserror(err, EP_EIO, "copying the attributes of parent %.*s", (int)end, rel);
  }
  return fd;
}

int unpack_fs_open_dir(struct unpack_fs *fs, const char *rel, bool create, ep_err *err) {
  int fd = fs_resolve(fs, fs->root, rel);
  if (fd >= 0)
    return fd;
  if (errno != ENOENT || !create)
    return ep_syserror(err,
                       errno == ENOTDIR || errno == EXDEV || errno == ENOENT ? EP_EINVAL : EP_EIO,
                       "opening directory %s", rel);
  size_t len = strlen(rel);
  ep_cleanup_free char *buf = malloc(len + 1);
  if (buf == NULL)
    return ep_error(err, EP_EIO, "out of memory");
  memcpy(buf, rel, len + 1);
  int cur = openat(fs->root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cur < 0)
    return ep_syserror(err, EP_EIO, "opening the layer directory");
  for (size_t start = 0; start < len;) {
    size_t end = start;
    while (end < len && buf[end] != '/')
      end++;
    char comp[256];
    if (end - start >= sizeof comp) {
      close(cur);
      return ep_error(err, EP_EINVAL, "component of %s too long", rel);
    }
    memcpy(comp, buf + start, end - start);
    comp[end - start] = '\0';
    int next = fs_open_step(fs, fs->root, cur, buf, end, comp);
    if (next < 0 && errno == ENOENT)
      next = fs_mkparent(fs, cur, buf, end, comp, err);
    else if (next < 0)
      next = ep_syserror(err, errno == ENOTDIR || errno == EXDEV ? EP_EINVAL : EP_EIO,
                         "parent %.*s", (int)end, buf);
    close(cur);
    if (next < 0)
      return next;
    cur = next;
    start = end + 1;
  }
  return cur;
}

int unpack_fs_remove_all(int dirfd, const char *name) {
  if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
    return 0;
  if (errno != EISDIR && errno != EPERM)
    return -errno;
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    int e = errno;
    close(fd);
    return -e;
  }
  int r = 0;
  for (struct dirent *de = readdir(d); de != NULL && r == 0; de = readdir(d)) {
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      r = unpack_fs_remove_all(fd, de->d_name);
  }
  closedir(d);
  if (r == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
    r = -errno;
  return r;
}
