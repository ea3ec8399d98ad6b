/* containerd's filter syntax (filters/parser.go, scanner.go, quote.go in containerd 1.6) over
 * snapshot infos (internal to plugin/snapshot). A list of filter strings matches when any one
 * matches; in one string, selectors joined by ',' must all match. Selectors: `field`, `a.b`,
 * `labels."quoted key"`, operators == != ~= (~= takes a POSIX extended regex, quoted in slashes or
 * bars quoting allowed) and no operator for presence. Fields: name, parent, kind, labels.<key>. */
#ifndef EP_PLUGIN_SNAPSHOT_SNAP_FILTER_H
#define EP_PLUGIN_SNAPSHOT_SNAP_FILTER_H

#include "plugin/snapshot/snap.h"

typedef struct snap_filter snap_filter;

/* EP_EINVAL with containerd's kind of message for a malformed filter. */
int snap_filter_parse(const char *const *ss, size_t n, snap_filter **out, ep_err *err);
bool snap_filter_match(const snap_filter *f, const struct snap_info *i);
void snap_filter_free(snap_filter *f);

#endif
