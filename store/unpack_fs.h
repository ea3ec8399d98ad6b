/* Internal to the unpacker (store/unpack*.c): safe path resolution beneath
 * a directory fd, and applying one tar entry. Not a public interface. */
#ifndef EP_STORE_UNPACK_FS_H
#define EP_STORE_UNPACK_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "common/err.h"
#include "store/unpack.h"

struct archive;
struct archive_entry;

#define UNPACK_XATTR_BUF 65536 /* XATTR_SIZE_MAX and XATTR_LIST_MAX */

struct unpack_fs {
  int root;        /* the layer's directory */
  bool no_openat2; /* walk with O_NOFOLLOW per component */
  const int *parents;
  size_t n_parents;
  const unpack_limits *lim;
  char *xbuf; /* UNPACK_XATTR_BUF bytes: copy-up xattr values */
  char *lbuf; /* UNPACK_XATTR_BUF bytes: copy-up xattr name lists */
};

/* Cleans a tar member name into out (at least strlen(name)+1 bytes): drops
 * "." and empty components and any trailing '/'. Refuses absolute names and
 * ".." components (EP_EINVAL). An empty result names the root. */
int unpack_clean_name(const char *name, char *out, ep_err *err);

/* Opens the directory rel (a cleaned name, "" for the root) beneath the
 * root, resolving symlinks inside the root (openat2 RESOLVE_IN_ROOT), or
 * refusing them (the walker). With create, missing components are created
 * like containerd's mkparent. Returns an O_DIRECTORY fd or <0. */
int unpack_fs_open_dir(struct unpack_fs *fs, const char *rel, bool create, ep_err *err);

/* Removes name under dirfd and, for a directory, everything below it;
 * never follows a symlink. Absent is not an error. 0 or -errno. */
int unpack_fs_remove_all(int dirfd, const char *name);

/* Applies one entry whose cleaned, non-empty name is path. Returns 1 when
 * it created or merged a directory (whose times must be restored once the
 * archive is done), 0 otherwise, <0 on error. Archive read errors are
 * reported as EP_EINVAL with libarchive's message. */
int unpack_entry_apply(struct unpack_fs *fs, struct archive *ar, struct archive_entry *ae,
                       const char *path, ep_err *err);

/* containerd's boundTime: times before the epoch become the epoch. */
void unpack_entry_times(struct archive_entry *ae, struct timespec ts[2]);

#endif
