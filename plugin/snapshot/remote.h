/* The snapshotter's remote path (issue 10 point 3): containerd Prepares a layer's snapshot with
 * containerd.io/snapshot.ref=<chainID> before it fetches the layer; edgepull fetches the layer
 * itself, unpacks it while it streams in, verifies it, commits it under that label and answers
 * AlreadyExists, so containerd never downloads nor applies it.
 *
 * The module knows nothing of HTTP, MQTT or the fetch engine: the daemon injects a layer source
 * (struct snap_remote_deps) and installs snap_remote_prepare as the core's remote hook:
 *
 *   snap_remote_new(&deps, &opts, &rm, &err);
 *   snap_open(&(struct snap_opts){.root = …, .remote = snap_remote_prepare, .remote_ud = rm}, …);
 *
 * The snap_remote must outlive the snap (free it after snap_close). docs/snapshotter.md
 * describes the behaviour: single flight, verification, fallback. */
#ifndef EP_PLUGIN_SNAPSHOT_REMOTE_H
#define EP_PLUGIN_SNAPSHOT_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "plugin/metrics/metrics.h"
#include "plugin/snapshot/snap.h"
#include "store/digest.h"
#include "store/holds.h"
#include "store/pipe.h"
#include "store/unpack.h"

typedef struct snap_remote snap_remote;

/* Label keys (containerd's snapshots package and CRI's image pull). */
#define SNAP_LABEL_REF "containerd.io/snapshot.ref"
#define SNAP_LABEL_LAYER_DIGEST "containerd.io/snapshot/cri.layer-digest"
#define SNAP_LABEL_IMAGE_REF "containerd.io/snapshot/cri.image-ref"

struct snap_remote_deps {
  /* Starts or joins the fetch of blob `layer` of repository `repo` on registry `host` (as the
   * mirror names them: "docker.io" + "library/busybox"), returning a referenced pipe that the
   * caller reads and unrefs. The pipe must end PIPE_DONE only once the compressed digest has
   * been verified. Required. The daemon wires it to the fetch engine. */
  int (*open_layer)(void *ud, const char *host, const char *repo, const digest_t *layer,
                    blob_pipe **out, ep_err *err);
  /* Optional: the layer digest and host/repository of a chain ID the node has seen in an image
   * manifest + config (for clients that pass no cri.* labels). 0 found, -EP_ENOTFOUND not. */
  int (*lookup_chain)(void *ud, const digest_t *chain_id, digest_t *layer, char *host,
                      size_t hostlen, char *repo, size_t repolen, ep_err *err);
  void *ud;
  struct metrics *metrics; /* unpacks counted and timed; NULL = none */
  /* The layer is held here from before its fetch until its unpack ends, so the disk GC does not
   * remove a blob the unpack reads (or is about to read from the store). NULL = no holds. */
  hold_table *holds;
};

struct snap_remote_opts {
  int stall_timeout_ms; /* longest wait for the next bytes of a layer; 0: 60 s */
  unpack_limits limits; /* zeros take store/unpack.h's defaults */
  unsigned unpack_flags;
};

/* Counters since snap_remote_new, for /metrics. */
struct snap_remote_stats {
  uint64_t unpacked;     /* layers fetched, unpacked, verified and committed */
  uint64_t existed;      /* Prepares answered by a snapshot committed before */
  uint64_t joined;       /* Prepares that waited for the same chain's unpack */
  uint64_t unknown;      /* Prepares with no layer to fetch (no cri.* labels, lookup failed) */
  uint64_t fallbacks;    /* failed fetches, unpacks or verifications: left to containerd */
  uint64_t compressed;   /* bytes read from layer pipes by committed unpacks */
  uint64_t uncompressed; /* tar bytes of committed unpacks */
  uint64_t unpack_ns;    /* time spent in committed unpacks, fetch included */
  uint64_t in_flight;    /* unpacks running now */
};

int snap_remote_new(const struct snap_remote_deps *deps, const struct snap_remote_opts *opts,
                    snap_remote **out, ep_err *err);
void snap_remote_free(snap_remote *rm);

/* The core's remote hook (snap_remote_fn; ud is the snap_remote). Returns -SNAP_EEXISTS once a
 * committed snapshot with the label and parent exists, -EP_EUNSUPPORTED for an ordinary Prepare
 * (no layer known, or any failure: containerd then fetches and applies the layer itself). */
int snap_remote_prepare(void *ud, snap *s, const char *key, const char *parent,
                        const struct snap_labels *labels, ep_err *err);

void snap_remote_stats_get(snap_remote *rm, struct snap_remote_stats *out);

/* Registry host and repository of an image reference as CRI writes cri.image-ref
 * ("docker.io/library/busybox:1.36", "busybox", "ghcr.io/o/r@sha256:…"), normalized the way the
 * mirror names them: Docker Hub is "docker.io" and its one-component names get "library/". */
int snap_remote_parse_image(const char *image, char *host, size_t hostlen, char *repo,
                            size_t repolen, ep_err *err);

#endif
