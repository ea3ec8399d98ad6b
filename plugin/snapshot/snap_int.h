/* Internals shared by plugin/snapshot's .c files; not a public header. */
#ifndef EP_PLUGIN_SNAPSHOT_SNAP_INT_H
#define EP_PLUGIN_SNAPSHOT_SNAP_INT_H

#include "plugin/snapshot/snap.h"

int snap_check_key(const char *key, const char *what, bool allow_empty, ep_err *err);
int snap_check_labels(const struct snap_labels *l, ep_err *err);
/* Sets key to value in a sorted label vector; an empty value removes the key. */
int snap_labels_set(struct snap_labels *l, const char *key, const char *value, ep_err *err);
int snap_labels_copy(struct snap_labels *dst, const struct snap_labels *src, ep_err *err);

/* Test hook: called at each step of a write; a non-zero return makes the operation stop right
 * there as if the process had been killed (no rollback of the filesystem, no cleanup), so unit
 * tests can check that every intermediate state is invisible and cleaned up. Steps:
 * "prepare-mkdir", "prepare-rename", "ingest-rename", "remove-commit", "remove-rename". */
typedef int (*snap_crash_fn)(void *ud, const char *step);
void snap_set_crash_hook(snap *s, snap_crash_fn fn, void *ud);

#endif
