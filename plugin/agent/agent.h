/* The node agent: edgepulld's member of the locality over MQTT
 * (libmosquitto, its own network thread, reconnecting with backoff).
 *
 * It publishes this node's retained `state` (with a Last Will that marks it
 * offline, and refreshed every heartbeat as a second liveness signal), its
 * retained `inventory` snapshot of complete blobs plus `inventory/delta`
 * messages as blobs are committed, and subscribes to every node's state,
 * inventory and parent topics of the locality, keeping the locality-wide
 * index (nodes, parents, node × blob) in the node's sqlite database, so it
 * converges after a restart of any node, the broker or the coordinator.
 * It also receives the locality's deploy requests and hands them out through
 * agent_deps.on_deploy (the daemon gives them to the deploy worker),
 * publishes their progress, hands this node's parent assignments out through
 * agent_deps.on_parent (the daemon gives them to source selection), and
 * reports peers that served wrong bytes to the coordinator. */
#ifndef EP_PLUGIN_AGENT_H
#define EP_PLUGIN_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "locality/proto.h"
#include "store/digest.h"
#include "store/index.h"

struct agent;
struct edgepulld_config;
struct deploy_options;

/* What the agent uses beyond its configuration, owned by the caller. The
 * callbacks run on the mosquitto thread and may be NULL. */
struct agent_deps {
  index_db *idx; /* the locality-wide index the agent keeps */
  /* A valid deploy request arrived: 0 started, 1 ignored, <0 error (the
   * agent logs it). NULL: requests are ignored. */
  int (*on_deploy)(void *ud, const struct proto_deploy *req, ep_err *err);
  /* This node's parent assignment is p (NULL: forgotten). */
  void (*on_parent)(void *ud, const struct proto_parent *p);
  void *ud;
};

/* Starts the agent when cfg->broker is set (else *out = NULL, 0). */
int agent_start(const struct edgepulld_config *cfg, const struct agent_deps *deps,
                struct agent **out, ep_err *err);
/* The deploy worker's options for the node cfg describes (see
 * agent_deploy_options), with cfg's runtime sockets. Checks the agent's
 * parameters as agent_start does. */
int agent_config_deploy_options(const struct edgepulld_config *cfg, struct deploy_options *o,
                                ep_err *err);
/* Publishes offline state, disconnects, joins the threads, frees. */
void agent_stop(struct agent *a);
/* Thread-safe: announce a committed / removed blob (batched into deltas). */
void agent_blob_added(struct agent *a, const digest_t *d, uint64_t size);
void agent_blob_removed(struct agent *a, const digest_t *d);
/* This node's current parent assignment: 1 and *out when assigned. */
int agent_parent(struct agent *a, struct proto_parent *out);
/* Whether the broker accepted the connection and it has not dropped since
 * (false for NULL). */
bool agent_connected(struct agent *a);
/* Thread-safe: tells the coordinator that peer `node` served bytes that did
 * not match blob d (why: a short reason, sanitized here). Publishes
 * node/<self>/report, QoS 1, not retained; a NULL agent, an invalid node id
 * or this node's own id are ignored (logged). */
void agent_report_suspect(struct agent *a, const char *node, const digest_t *d, const char *why);
/* Thread-safe: publishes a deploy progress message of this node (QoS 0 for
 * periodic ticks, QoS 1 when final). The deploy worker calls it. */
void agent_publish_progress(struct agent *a, const struct proto_progress *p, bool final);

#endif
