/* Filesystem work of the snapshotter (internal to plugin/snapshot), always relative to the
 * snapshots/ directory fd and to names the snapshotter made itself ("<id>", "new-*", "rm-*"):
 * nothing from a request ever becomes a path. Symlinks are never followed. */
#ifndef EP_PLUGIN_SNAPSHOT_SNAP_FS_H
#define EP_PLUGIN_SNAPSHOT_SNAP_FS_H

#include "plugin/snapshot/snap.h"

enum { SNAP_FS_NAME = 64, SNAP_FS_MAX_DEPTH = 512 };

/* Makes "new-<unique>" with fs/ (0755) and, for an active snapshot, work/ (0711); name[] gets it.
 */
int snap_fs_mktemp(int dirfd, enum snap_kind kind, char name[SNAP_FS_NAME], ep_err *err);
/* renameat2(RENAME_NOREPLACE); -SNAP_EEXISTS when `to` exists. */
int snap_fs_rename(int dirfd, const char *from, const char *to, ep_err *err);
/* Removes `name` and everything under it; a missing entry is no error. */
int snap_fs_rmrf(int dirfd, const char *name, ep_err *err);
/* Disk usage of the tree at `path` as continuity's fs.DiskUsage counts it. */
int snap_fs_usage(int dirfd, const char *path, struct snap_usage *out, ep_err *err);

#endif
