/* The node-side deploy worker (docs/deploy.md): a deploy request received by
 * the agent is handed to deploy_submit(), which runs it on a worker thread
 * of its own: resolve the image's manifest through this node's mirror logic
 * (upstream on the gateway, through the gateway elsewhere), choose the
 * platform manifests (those requested, else those of the locality's online
 * nodes; a non-gateway node only its own), fetch every blob not yet in the
 * store through the fetcher (bytes land in the store, the topology streams
 * them), optionally import the image into the local runtime, and report
 * progress every 500 ms plus one final done/failed message.
 *
 * At most DEPLOY_RUNNING_MAX deploys run at once; a deploy id seen before is
 * ignored. The pure parts (image references, platform selection, manifest
 * reading) are exposed for the unit tests. */
#ifndef EP_PLUGIN_DEPLOY_H
#define EP_PLUGIN_DEPLOY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "locality/proto.h"
#include "plugin/fetch/fetch.h"
#include "plugin/mirror/mirror.h"
#include "plugin/ref/ref.h"
#include "store/digest.h"
#include "store/holds.h"
#include "store/index.h"
#include "store/store.h"

#define DEPLOY_RUNNING_MAX 2  /* deploys at once per node */
#define DEPLOY_PARALLEL 3     /* blobs fetched at once per deploy */
#define DEPLOY_TICK_MS 500    /* progress period */
#define DEPLOY_BLOBS_MAX 4096 /* blobs in one deploy, all platforms */
#define DEPLOY_IMPORT_TIMEOUT_S 1800

typedef struct deployer deployer;

/* What the worker uses, owned by the caller (the daemon) and outliving the
 * worker: blobs go through the fetcher into the store, manifests through
 * the mirror, the locality's platforms come from the index. */
struct deploy_deps {
  fetcher *fetch;
  store *st;
  index_db *idx;
  const struct mirror_deps *mirror;
  /* A deploy holds every blob of its image here from its plan until its import ends: fetched
   * first and read by the runtime's pull later, a blob must not be evicted in between. NULL = no
   * holds. */
  hold_table *holds;
};

struct deploy_options {
  char node[PROTO_ID_MAX + 1];
  bool gateway;
  char arch[16], variant[8];     /* this node's platform (linux/<arch>[/<variant>]) */
  char mirror[128];              /* this node's local endpoint, "127.0.0.1:5050" */
  char containerd_address[1024]; /* --containerd-address */
  char docker_socket[1024];      /* --docker-socket */
  /* containerd's name for edgepulld's snapshotter (its proxy_plugins entry), when edgepulld serves
   * one: deploy --import containerd then goes through it; "" = `ctr images pull` */
  char snapshotter[32];
  int import_timeout_s; /* 0 = DEPLOY_IMPORT_TIMEOUT_S */
};

/* Called on a worker thread with every progress message (final: the last
 * one of the deploy, to be sent with QoS 1). */
typedef void (*deploy_progress_fn)(void *ud, const struct proto_progress *p, bool final);

/* deps is copied. */
int deploy_new(const struct deploy_deps *deps, const struct deploy_options *o,
               deploy_progress_fn progress, void *ud, deployer **out, ep_err *err);
/* Cancels running deploys (they report failed), joins their threads, frees. */
void deploy_free(deployer *w);
/* Thread-safe, never blocks on the work: 0 started, 1 ignored (duplicate id
 * or DEPLOY_RUNNING_MAX running, logged), <0 error. */
int deploy_submit(deployer *w, const struct proto_deploy *req, ep_err *err);

/* ---- pure parts ---- */

struct deploy_ref {
  char registry[NAMES_HOST_MAX + 1]; /* "docker.io", "ghcr.io", "127.0.0.1:5000" */
  char repo[NAMES_REPO_MAX + 1];     /* "library/alpine" */
  char tag[NAMES_TAG_MAX + 1];       /* "" when only a digest was given */
  bool has_digest;
  digest_t digest;
};

/* Docker's reference rules: "alpine:3" is docker.io/library/alpine:3, a
 * first component with '.' or ':' or "localhost" is a registry, no tag and
 * no digest means ":latest", "@sha256:…" pins the digest. */
int deploy_ref_parse(const char *image, struct deploy_ref *out, ep_err *err);

struct deploy_platform {
  char os[16], arch[16], variant[8];
};
/* "linux/arm/v7" → {linux, arm, v7}. */
int deploy_platform_parse(const char *s, struct deploy_platform *out, ep_err *err);

struct deploy_blob {
  digest_t digest;
  uint64_t size;
};

/* An image manifest's blobs (config first, then layers), appended to *blobs
 * (realloc'd, at most DEPLOY_BLOBS_MAX, duplicates skipped). */
int deploy_manifest_blobs(const void *body, size_t len, struct deploy_blob **blobs, size_t *n,
                          ep_err *err);
/* 1 when body is an OCI index / Docker manifest list, 0 for an image
 * manifest, <0 when it is not a manifest. */
int deploy_is_index(const void *body, size_t len, const char *media_type, ep_err *err);
/* From an index, the child manifest digests for the wanted platforms: for
 * each, the first entry matching os and arch (and variant when the wanted
 * one has a variant). Platforms without a match are skipped; out has room
 * for nwanted digests; *nout set (duplicates removed). */
int deploy_select(const void *body, size_t len, const struct deploy_platform *wanted,
                  size_t nwanted, digest_t *out, size_t *nout, ep_err *err);

#endif
