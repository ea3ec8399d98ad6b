/* edgepull-snapshotd's test layer source (standalone_src.c): blobs over plain HTTP from one
 * registry, streamed through store/pipe.h pipes. Not part of edgepulld. */
#ifndef EP_PLUGIN_SNAPSHOT_STANDALONE_SRC_H
#define EP_PLUGIN_SNAPSHOT_STANDALONE_SRC_H

#include "plugin/snapshot/remote.h"

typedef struct http_src http_src;

/* base: "http://127.0.0.1:5055". Fills deps for snap_remote_new. */
int http_src_new(const char *base, struct snap_remote_deps *deps, http_src **out, ep_err *err);
/* After the snapshotter using it has stopped. */
void http_src_free(http_src *s);

#endif
