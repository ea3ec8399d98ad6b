/* The coordinator's decision core, without any network: MQTT messages go in
 * as (topic, payload) and the retained parent assignments it decides come
 * out through the publish callback. edgepull-coordinator feeds it from its
 * libmosquitto thread and ticks it from the main thread; the unit tests feed
 * it directly and capture what it publishes.
 *
 * Every entry point takes the coordinator's one mutex, and the publish
 * callback is called with it held (it must not call back into coord_*).
 * Times are milliseconds of a monotonic clock chosen by the caller. */
#ifndef EP_COORDINATOR_COORD_H
#define EP_COORDINATOR_COORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "locality/topo.h"

#define COORD_GRACE_MS 2000               /* collect-only period after a subscription */
#define COORD_NODES_MAX 65536u            /* node ids tracked at once */
#define COORD_SUSPEND_MS (10 * 60 * 1000) /* a reported node is no parent this long */

typedef struct coord coord;

/* Publishes one retained QoS 1 message; len 0 clears the retained message
 * of topic. Returns 0 or a negative value when it could not be queued. */
typedef int (*coord_publish_fn)(const char *topic, const void *payload, size_t len, void *ud);

struct coord_config {
  const char *locality; /* copied */
  /* The locality's gateway, a node id (copied; required): the root of the
   * tree and the node every other node asks to resolve tags. Configured,
   * never taken from a node's own state: a node that sets `gateway` in its
   * state is only warned about. Published retained on coord/gateway. */
  const char *gateway;
  enum topo_strategy strategy;
  unsigned k;                   /* children per node for TOPO_TREE */
  unsigned heartbeat_timeout_s; /* a node silent this long is gone */
  unsigned grace_ms;            /* 0 = COORD_GRACE_MS */
  unsigned suspend_ms;          /* 0 = COORD_SUSPEND_MS */
  coord_publish_fn publish;
  void *ud;
};

int coord_new(const struct coord_config *cfg, coord **out, ep_err *err);
void coord_free(coord *c);

/* The broker acknowledged our subscriptions: the first time, the recovery
 * grace period starts (retained messages are only collected until it ends);
 * after a reconnect, a resync starts (assignments the broker no longer holds
 * are published again when it ends). */
void coord_subscribed(coord *c, int64_t now_ms);
/* The connection to the broker was lost: no heartbeat timeouts until the
 * next coord_subscribed. */
void coord_disconnected(coord *c);
/* One received message (node states, parents, reports, and our own
 * coord/gateway). retained: delivered from the broker's retained store.
 * Malformed messages are dropped with one log line. */
void coord_message(coord *c, const char *topic, const void *payload, size_t len, bool retained,
                   int64_t now_ms);
/* Periodic work (call about once a second): ends the grace period or a
 * resync, applies the heartbeat timeout, lets suspended nodes rejoin, and
 * (re)publishes coord/gateway when the broker does not hold ours. */
void coord_tick(coord *c, int64_t now_ms);

/* True while id is suspended after a report (out of the topology). */
bool coord_suspended(coord *c, const char *id);
/* True until the initial recovery has completed. */
bool coord_recovering(coord *c);
/* The epoch of the last assignment published (or the highest seen). */
uint64_t coord_epoch(coord *c);
/* The topology itself, for tests and diagnostics: the caller must make sure
 * no other thread is using the coordinator. */
const topo *coord_topology(const coord *c);

/* An offline state is acted on only after this hold: a broker that shuts
 * down cleanly publishes every client's Last Will just before it closes our
 * own connection, and those wills must not reshuffle the locality. After a
 * reconnect the hold runs from the end of the resync, so nodes have time to
 * reconnect too. Costs at most hold + one tick on a real loss. */
#define COORD_LEAVE_HOLD_MS 1000
#define COORD_RECONNECT_HOLD_MS 5000

#endif
