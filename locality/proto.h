/* The locality control protocol over MQTT, version 1 (docs/protocol.md is
 * the reference). Topics:
 *
 *   edgepull/v1/<loc>/node/<id>/state            retained, LWT "offline"   node
 *   edgepull/v1/<loc>/node/<id>/inventory        retained snapshot         node
 *   edgepull/v1/<loc>/node/<id>/inventory/delta  not retained              node
 *   edgepull/v1/<loc>/node/<id>/parent           retained                  coordinator
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
#include "store/digest.h"

#define PROTO_VERSION 1
#define PROTO_ID_MAX 63 /* locality and node ids: [A-Za-z0-9._-]{1,63} */
#define PROTO_ADDR_MAX 63
#define PROTO_TOPIC_MAX 256
#define PROTO_STATE_MAX (4 * 1024) /* bytes of a state payload */
#define PROTO_PARENT_MAX (1 * 1024)
#define PROTO_DELTA_MAX (64 * 1024)
#define PROTO_INVENTORY_MAX (2 * 1024 * 1024) /* ~24k blobs */
#define PROTO_DELTA_BLOBS 512                 /* entries in one delta */

enum proto_topic_kind {
  PROTO_T_STATE,
  PROTO_T_INVENTORY,
  PROTO_T_DELTA,
  PROTO_T_PARENT,
};

struct proto_topic {
  enum proto_topic_kind kind;
  char locality[PROTO_ID_MAX + 1];
  char node[PROTO_ID_MAX + 1];
};

bool proto_id_valid(const char *id);
/* Builds the topic of kind for (locality, node) into buf. */
int proto_topic(enum proto_topic_kind kind, const char *locality, const char *node, char *buf,
                size_t len, ep_err *err);
/* Subscription filter for every node's topics of a locality:
 * "edgepull/v1/<loc>/node/#". */
int proto_topic_filter(const char *locality, char *buf, size_t len, ep_err *err);
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

#endif
