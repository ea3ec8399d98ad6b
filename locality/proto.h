/* The locality control protocol over MQTT, version 1 (docs/protocol.md is
 * the reference). Topics:
 *
 *   edgepull/v1/<loc>/node/<id>/state            retained, LWT "offline"   node
 *   edgepull/v1/<loc>/node/<id>/inventory        retained snapshot         node
 *   edgepull/v1/<loc>/node/<id>/inventory/delta  not retained              node
 *   edgepull/v1/<loc>/node/<id>/parent           retained                  coordinator
 *   edgepull/v1/<loc>/node/<id>/report           not retained, QoS 1       node
 *   edgepull/v1/<loc>/deploy                     not retained, QoS 1       client
 *   edgepull/v1/<loc>/deploy/<d>/progress/<id>   not retained, QoS 0/1     node
 *   edgepull/v1/<loc>/coord/gateway              retained                  coordinator
 *
 * Payloads are JSON objects with "v": 1. A receiver drops (with one log
 * line) any payload over its size limit, not valid JSON, of another "v", or
 * whose id disagrees with its topic. This module only builds and parses:
 * it never touches the network, so it is tested with hostile bytes alone. */
#ifndef EP_LOCALITY_PROTO_H
#define EP_LOCALITY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/names.h"
#include "store/digest.h"

#define PROTO_VERSION 1
#define PROTO_ID_MAX NAMES_ID_MAX /* locality and node ids: names_node_id_valid */
#define PROTO_ADDR_MAX 63
#define PROTO_TOPIC_MAX 256
#define PROTO_STATE_MAX (4 * 1024) /* bytes of a state payload */
#define PROTO_PARENT_MAX (1 * 1024)
#define PROTO_DELTA_MAX (64 * 1024)
#define PROTO_INVENTORY_MAX (2 * 1024 * 1024) /* ~24k blobs */
#define PROTO_DELTA_BLOBS 512                 /* entries in one delta */
#define PROTO_DEPLOY_MAX (8 * 1024)
#define PROTO_PROGRESS_MAX (2 * 1024)
#define PROTO_REPORT_MAX (1 * 1024)
#define PROTO_GATEWAY_MAX (1 * 1024)
#define PROTO_DEPLOY_ID_LEN 16 /* lowercase hex digits */
#define PROTO_IMAGE_MAX 511    /* an image reference as a user writes it */
#define PROTO_PLATFORMS_MAX 16 /* platforms in one deploy */
#define PROTO_PLATFORM_MAX 31  /* "os/arch[/variant]" */
#define PROTO_TEXT_MAX 255     /* a reason or an error message */

enum proto_topic_kind {
  PROTO_T_STATE,
  PROTO_T_INVENTORY,
  PROTO_T_DELTA,
  PROTO_T_PARENT,
  PROTO_T_REPORT,   /* node/<id>/report */
  PROTO_T_DEPLOY,   /* deploy (node is "") */
  PROTO_T_PROGRESS, /* deploy/<deploy>/progress/<node> */
  PROTO_T_GATEWAY,  /* coord/gateway (node is "") */
};

struct proto_topic {
  enum proto_topic_kind kind;
  char locality[PROTO_ID_MAX + 1];
  char node[PROTO_ID_MAX + 1];
  char deploy[PROTO_ID_MAX + 1]; /* PROTO_T_PROGRESS only, else "" */
};

/* Builds the topic of kind for (locality, node) into buf; node topics only
 * (state, inventory, delta, parent, report). */
int proto_topic(enum proto_topic_kind kind, const char *locality, const char *node, char *buf,
                size_t len, ep_err *err);
/* Subscription filter for every node's topics of a locality:
 * "edgepull/v1/<loc>/node/#". */
int proto_topic_filter(const char *locality, char *buf, size_t len, ep_err *err);
/* "edgepull/v1/<loc>/deploy". */
int proto_deploy_topic(const char *locality, char *buf, size_t len, ep_err *err);
/* "edgepull/v1/<loc>/deploy/<deploy>/progress/<node>"; node NULL gives the
 * subscription filter with "+" as the last level. */
int proto_progress_topic(const char *locality, const char *deploy, const char *node, char *buf,
                         size_t len, ep_err *err);
/* Parses a received topic; EP_EINVAL when it is not one of ours. */
int proto_topic_parse(const char *topic, struct proto_topic *out, ep_err *err);

struct proto_state {
  char id[PROTO_ID_MAX + 1];
  bool online;                   /* "status": "online" | "offline" */
  char addr[PROTO_ADDR_MAX + 1]; /* peer address others connect to */
  uint16_t peer_port;            /* 0 = none */
  char arch[16];                 /* GOARCH style: amd64, arm64, arm */
  char variant[8];               /* v6, v7, v8 or "" */
  uint32_t link_mbps;            /* advertised LAN link speed */
  uint64_t free_bytes;           /* free space in the state dir */
  char version[32];              /* edgepull version */
  bool gateway;
  int64_t ts; /* sender's unix time; heartbeats refresh it */
};

struct proto_blob {
  digest_t digest;
  uint64_t size;
};

/* Inventory snapshot (retained) or delta: gen identifies one run of a node
 * (changes at every start), seq orders deltas within it; a snapshot carries
 * the seq of the last delta it includes. */
struct proto_inventory {
  char id[PROTO_ID_MAX + 1];
  bool snapshot;
  uint64_t gen;
  uint64_t seq;
  struct proto_blob *add; /* snapshot: every blob; delta: added */
  size_t nadd;
  digest_t *del; /* delta only */
  size_t ndel;
};

struct proto_parent {
  char id[PROTO_ID_MAX + 1];
  bool has_parent; /* false for the root (gateway) */
  char parent[PROTO_ID_MAX + 1];
  char addr[PROTO_ADDR_MAX + 1];
  uint16_t peer_port;
  uint64_t epoch; /* grows with every assignment the coordinator makes */
};

/* Builders return a malloc'd NUL-terminated JSON string (*len without NUL). */
int proto_state_build(const struct proto_state *s, char **out, size_t *len, ep_err *err);
int proto_inventory_build(const struct proto_inventory *inv, char **out, size_t *len, ep_err *err);
int proto_parent_build(const struct proto_parent *p, char **out, size_t *len, ep_err *err);

/* Parsers take the raw payload bytes (not NUL-terminated) and check limits,
 * version, field types and ranges, and that the id equals expected_id. */
int proto_state_parse(const void *buf, size_t len, const char *expected_id, struct proto_state *out,
                      ep_err *err);
/* out->add / out->del are malloc'd; free with proto_inventory_clear. */
int proto_inventory_parse(const void *buf, size_t len, const char *expected_id, bool snapshot,
                          struct proto_inventory *out, ep_err *err);
void proto_inventory_clear(struct proto_inventory *inv);
int proto_parent_parse(const void *buf, size_t len, const char *expected_id,
                       struct proto_parent *out, ep_err *err);

/* ---- deploy, progress, report (locality/proto_deploy.c) ---- */

/* Exactly PROTO_DEPLOY_ID_LEN lowercase hex digits. */
bool proto_deploy_id_valid(const char *id);
/* Printable ASCII without spaces, 1..PROTO_IMAGE_MAX characters; the
 * reference itself is parsed by whoever resolves it. */
bool proto_image_valid(const char *s);
/* "os/arch" or "os/arch/variant", lowercase [a-z0-9_] tokens. */
bool proto_platform_valid(const char *s);

enum proto_import { PROTO_IMPORT_NONE, PROTO_IMPORT_CONTAINERD, PROTO_IMPORT_DOCKER };
/* "none" | "containerd" | "docker" (EP_EINVAL otherwise). */
int proto_import_parse(const char *s, enum proto_import *out, ep_err *err);
const char *proto_import_name(enum proto_import imp);

struct proto_deploy {
  char id[PROTO_ID_MAX + 1]; /* deploy id: PROTO_DEPLOY_ID_LEN hex */
  char image[PROTO_IMAGE_MAX + 1];
  char platforms[PROTO_PLATFORMS_MAX][PROTO_PLATFORM_MAX + 1];
  size_t nplatforms; /* 0 = every platform present in the locality */
  enum proto_import import;
  int64_t ts;
};

enum proto_progress_state { PROTO_PROGRESS_RUNNING, PROTO_PROGRESS_DONE, PROTO_PROGRESS_FAILED };

struct proto_progress {
  char id[PROTO_ID_MAX + 1];   /* deploy id */
  char node[PROTO_ID_MAX + 1]; /* reporting node */
  enum proto_progress_state state;
  uint64_t blobs_total, blobs_done;
  uint64_t bytes_total, bytes_done;
  uint64_t uplink_bytes;          /* gateway: bytes fetched from the upstream */
  uint64_t peer_bytes;            /* bytes received from peers */
  char error[PROTO_TEXT_MAX + 1]; /* failed only (required then) */
  int64_t ts;
};

struct proto_report {
  char id[PROTO_ID_MAX + 1];      /* reporting node (the topic's) */
  char suspect[PROTO_ID_MAX + 1]; /* node that served wrong bytes */
  digest_t digest;                /* the blob it served */
  char reason[PROTO_TEXT_MAX + 1];
  int64_t ts;
};

int proto_deploy_build(const struct proto_deploy *d, char **out, size_t *len, ep_err *err);
int proto_deploy_parse(const void *buf, size_t len, struct proto_deploy *out, ep_err *err);
int proto_progress_build(const struct proto_progress *p, char **out, size_t *len, ep_err *err);
/* expected_id: the deploy id of the topic, expected_node its node (each may be NULL). */
int proto_progress_parse(const void *buf, size_t len, const char *expected_id,
                         const char *expected_node, struct proto_progress *out, ep_err *err);
int proto_report_build(const struct proto_report *r, char **out, size_t *len, ep_err *err);
int proto_report_parse(const void *buf, size_t len, const char *expected_id,
                       struct proto_report *out, ep_err *err);

/* ---- the locality's roles (locality/proto_coord.c) ---- */

/* Which node is the gateway (the root, and the only node other nodes ask to
 * resolve a tag) is configuration: the coordinator's --gateway, published
 * by the coordinator alone (broker ACL) on the retained
 * "edgepull/v1/<loc>/coord/gateway". A node's own state never makes it the
 * gateway. */
struct proto_gateway {
  char id[PROTO_ID_MAX + 1]; /* the gateway's node id */
};

/* "edgepull/v1/<loc>/coord/gateway". */
int proto_gateway_topic(const char *locality, char *buf, size_t len, ep_err *err);
int proto_gateway_build(const struct proto_gateway *g, char **out, size_t *len, ep_err *err);
int proto_gateway_parse(const void *buf, size_t len, struct proto_gateway *out, ep_err *err);

#endif
