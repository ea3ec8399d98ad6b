/* containerd.services.snapshots.v1.Snapshots served over plugin/grpc: what containerd's
 * [proxy_plugins.X] type = "snapshot" talks to. edgepulld (or tests/snapshotd) owns the listening
 * socket; the service owns the snapshotter core and the gRPC server. */
#ifndef EP_PLUGIN_SNAPSHOT_SERVICE_H
#define EP_PLUGIN_SNAPSHOT_SERVICE_H

#include "common/err.h"
#include "plugin/metrics/metrics.h"
#include "plugin/snapshot/snap.h"

typedef struct snapshot_service snapshot_service;

struct snapshot_service_opts {
  const char *root;      /* snapshotter root (absolute), e.g. /var/lib/edgepull/snapshotter */
  int listen_fd;         /* bound, listening unix socket; stays the caller's */
  unsigned max_workers;  /* concurrent RPCs; 0 = the transport's default */
  snap_remote_fn remote; /* the remote-prepare hook; NULL = a plain overlay snapshotter */
  void *remote_ud;
  struct metrics *metrics; /* Prepare, Commit and Remove are timed into it; NULL = none */
};

int snapshot_service_start(const struct snapshot_service_opts *o, snapshot_service **out,
                           ep_err *err);
/* Stops serving (in-flight calls are cancelled and waited for) and closes the core. */
void snapshot_service_stop(snapshot_service *s);
/* The core, for in-process users (the remote path, edgepullctl snapshots through the daemon). */
snap *snapshot_service_core(snapshot_service *s);

#endif
