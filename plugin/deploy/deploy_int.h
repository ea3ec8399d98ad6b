/* Internals of the deploy worker shared by plugin/deploy/deploy*.c and
 * tests/unit/test_deploy.c. */
#ifndef EP_PLUGIN_DEPLOY_INT_H
#define EP_PLUGIN_DEPLOY_INT_H

#include <stdatomic.h>

#include "plugin/deploy/deploy.h"

/* The platforms this node fetches for req: the requested ones, else
 * `present` (the locality's online nodes), else its own; on a node that is
 * not the gateway, only its own platform, when it is among them. out has
 * room for PROTO_PLATFORMS_MAX entries. */
int deploy_wanted(const struct deploy_options *o, const struct proto_deploy *req,
                  const struct deploy_platform *present, size_t npresent,
                  struct deploy_platform *out, size_t *nout, ep_err *err);
/* Resolves req's image through the mirror and lists the blobs to fetch
 * (*blobs malloc'd). */
int deploy_plan(const struct deploy_deps *d, const struct deploy_options *o,
                const struct proto_deploy *req, struct deploy_ref *ref, struct deploy_blob **blobs,
                size_t *nblobs, ep_err *err);

/* Loads ref's manifest (by dg, else by ref's tag) through the mirror. */
int deploy_load_manifest(const struct deploy_deps *d, const struct deploy_ref *ref,
                         const digest_t *dg, struct mirror_manifest *m, ep_err *err);
/* "registry/repo:tag[@digest]", the name containerd's image record gets. */
void deploy_full_name(const struct deploy_ref *ref, char *buf, size_t cap);

/* The hosts.toml that sends every registry's pulls to mirror ("host:port"). */
int deploy_hosts_toml(const char *mirror, char *buf, size_t cap, ep_err *err);
/* The image name under which Docker pulls from the local mirror, and the
 * name it is tagged with afterwards ("alpine", "ghcr.io/org/x"). */
int deploy_docker_names(const char *mirror, const struct deploy_ref *ref, char *from,
                        size_t fromcap, char *repo, size_t repocap, ep_err *err);
/* Imports ref into the node's runtime through the local mirror. */
int deploy_import(const struct deploy_options *o, enum proto_import imp,
                  const struct deploy_ref *ref, atomic_bool *stop, ep_err *err);

/* Imports ref into containerd without a layer in its content store: the image record, manifest
 * and config through containerd's API, each layer a snapshot that o->snapshotter (edgepulld's own)
 * unpacks (deploy_ctrd.c). */
int deploy_import_snapshotter(const struct deploy_deps *d, const struct deploy_options *o,
                              const struct deploy_ref *ref, atomic_bool *stop, atomic_ulong *seq,
                              ep_err *err);
/* "edgepull-import-<pid>-<n>" with n the next of *seq (the worker's counter): the name of an
 * import's lease, and the prefix of its snapshot keys and content refs, unique in this process
 * without a clock or a lock. */
void deploy_import_id(atomic_ulong *seq, char *out, size_t cap);

#endif
