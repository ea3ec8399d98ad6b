/* The coordinator's core: membership, and the diff between the topology it
 * computes and the parent assignments the broker holds.
 *
 * Membership comes from `state` messages: online joins, offline (a clean
 * stop or the Last Will) leaves; a node silent for longer than the
 * heartbeat timeout leaves too. The root is the gateway the configuration
 * names (--gateway), never a node whose own state says `gateway: true`:
 * any node with broker credentials can write that into its state, and the
 * root resolves every tag of the locality. The configured gateway is also
 * published on the retained coord/gateway topic, which only the coordinator
 * may write, so nodes learn it from us and not from the node itself. Every change goes
 * through locality/topo, which moves as few nodes as possible; coord_sync()
 * then walks the topology and publishes the retained parent message of each
 * node whose parent (or parent's address) differs from what the broker
 * holds, with a fresh epoch. The epoch counter starts above every epoch seen
 * on the broker, so it never goes backwards across restarts.
 *
 * The broker's view is kept per node (struct coord_assign): filled from
 * retained messages at recovery, updated at every publish. The node table
 * and publishing live in coord_nodes.c beneath this file, recovery and
 * resync in coord_recover.c, suspect reports in coord_report.c: coord.c
 * calls them, never the other way round.
 *
 * Threads: every entry point takes c->mu; the libmosquitto thread calls
 * coord_message/coord_subscribed, the main thread coord_tick. */
#include "coordinator/coord.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "coordinator/coord_int.h"

#define REASON_MAX 200

int coord_new(const struct coord_config *cfg, coord **out, ep_err *err) {
  if (cfg->locality == NULL || !names_locality_valid(cfg->locality))
    return ep_error(err, EP_EINVAL, "invalid locality name");
  if (cfg->publish == NULL)
    return ep_error(err, EP_EINVAL, "no publish callback");
  if (cfg->gateway == NULL || !names_node_id_valid(cfg->gateway))
    return ep_error(err, EP_EINVAL, "no valid gateway node id configured (--gateway)");
  if (cfg->strategy == TOPO_TREE && (cfg->k < 1 || cfg->k > 64))
    return ep_error(err, EP_EINVAL, "tree fan-out %u out of range 1..64", cfg->k);
  coord *c = calloc(1, sizeof *c);
  if (c == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  c->t = topo_new(cfg->strategy, cfg->k);
  if (c->t == NULL) {
    free(c);
    return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  if (pthread_mutex_init(&c->mu, NULL) != 0) {
    topo_free(c->t);
    free(c);
    return ep_error(err, EP_EINTERNAL, "cannot create a mutex");
  }
  snprintf(c->loc, sizeof c->loc, "%s", cfg->locality);
  snprintf(c->gateway, sizeof c->gateway, "%s", cfg->gateway);
  c->strategy = cfg->strategy;
  c->fanout = cfg->strategy == TOPO_CHAIN ? 1 : cfg->k;
  c->timeout_ms = (int64_t)(cfg->heartbeat_timeout_s ? cfg->heartbeat_timeout_s : 90) * 1000;
  c->grace_ms = cfg->grace_ms ? cfg->grace_ms : COORD_GRACE_MS;
  c->suspend_ms = cfg->suspend_ms ? cfg->suspend_ms : COORD_SUSPEND_MS;
  c->publish = cfg->publish;
  c->ud = cfg->ud;
  *out = c;
  return 0;
}

void coord_free(coord *c) {
  if (c == NULL)
    return;
  for (size_t i = 0; i < c->n; i++)
    free(c->nodes[i]);
  free(c->nodes);
  topo_free(c->t);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* --- membership (the node table and publishing: coord_nodes.c) ------------ */

static void node_gone(coord *c, struct coord_node *n, const char *reason) {
  bool was = n->in_topo;
  ep_err e = {0};
  if (was && topo_leave(c->t, n->id, &e) < 0)
    ep_log_err("%s: leaving the topology: %s", n->id, e.msg);
  n->in_topo = false;
  n->live = false;
  coord_clear_parent(c, n, reason);
  if (was)
    coord_sync(c, reason);
  coord_node_drop(c, n);
}

static void node_online(coord *c, struct coord_node *n, const struct proto_state *st, int64_t now) {
  struct proto_state prev = n->st;
  bool had = n->has_state;
  n->st = *st;
  n->has_state = true;
  n->live = true;
  n->last_seen_ms = now;
  bool gw = coord_is_gateway(c, n->id);
  if (n->suspended && !gw)
    return; /* rejoins when its suspension ends (coord_suspend_tick) */
  const char *root = topo_root(c->t);
  char reason[REASON_MAX] = "";
  ep_err e = {0};
  int r = 0;
  if (gw && (root == NULL || strcmp(root, n->id) != 0)) {
    snprintf(reason, sizeof reason, "%s is the gateway", n->id);
    r = topo_set_root(c->t, n->id, st->link_mbps, &e);
  } else if (!n->in_topo) {
    snprintf(reason, sizeof reason, "%s joined", n->id);
    r = topo_join(c->t, n->id, st->link_mbps, &e);
  } else if (had && prev.link_mbps != st->link_mbps && !gw) {
    snprintf(reason, sizeof reason, "link speed of %s changed", n->id);
    r = topo_join(c->t, n->id, st->link_mbps, &e);
  } else if (had && (strcmp(prev.addr, st->addr) != 0 || prev.peer_port != st->peer_port)) {
    snprintf(reason, sizeof reason, "address of %s changed", n->id);
  }
  if (r < 0) {
    ep_log_err("%s: %s", n->id, e.msg);
    return;
  }
  if (reason[0] != '\0') {
    n->in_topo = true;
    coord_sync(c, reason);
  }
}

/* A retained online state older than the timeout is a node that died
 * without its Last Will reaching the broker (or a broker restored from an
 * old persistence file). */
static bool state_stale(const coord *c, const struct proto_state *st, bool retained) {
  if (!retained || st->ts <= 0)
    return false;
  int64_t age = (int64_t)time(NULL) - st->ts;
  if (age * 1000 <= c->timeout_ms)
    return false;
  ep_log_info("%s: retained state is %" PRId64 " s old, taking the node as offline", st->id, age);
  return true;
}

static void hold_departure(coord *c, struct coord_node *n, int64_t now) {
  if (n->leaving)
    return;
  n->leaving = true;
  n->live = false;
  n->leave_at_ms = now + COORD_LEAVE_HOLD_MS;
  if (c->resyncing && n->leave_at_ms < c->resync_end + COORD_RECONNECT_HOLD_MS)
    n->leave_at_ms = c->resync_end + COORD_RECONNECT_HOLD_MS;
  ep_log_debug("%s: offline; leaving unless back by then", n->id);
}

static void check_departures(coord *c, int64_t now) {
  char reason[REASON_MAX];
  for (size_t i = c->n; i-- > 0;) {
    if (i >= c->n)
      continue; /* a drop during the previous step shrank the table */
    struct coord_node *n = c->nodes[i];
    if (!n->leaving || now < n->leave_at_ms)
      continue;
    n->leaving = false;
    snprintf(reason, sizeof reason, "%s lost", n->id);
    node_gone(c, n, reason);
  }
}

static void on_state(coord *c, const char *id, const void *payload, size_t len, bool retained,
                     int64_t now) {
  char reason[REASON_MAX];
  if (len == 0) {
    struct coord_node *n = coord_node_find(c, id);
    if (n == NULL)
      return;
    if (!c->recovered) {
      n->has_state = false;
      n->live = false;
      return;
    }
    snprintf(reason, sizeof reason, "state of %s removed", id);
    node_gone(c, n, reason);
    return;
  }
  ep_err e = {0};
  struct proto_state st;
  if (proto_state_parse(payload, len, id, &st, &e) < 0) {
    ep_log_warn("%s: dropped a state message: %s", id, e.msg);
    return;
  }
  bool online = st.online && !state_stale(c, &st, retained);
  struct coord_node *n = online ? coord_node_get(c, id) : coord_node_find(c, id);
  if (n == NULL)
    return;
  if (st.gateway && !coord_is_gateway(c, id) && !n->claim_warned) {
    ep_log_warn("%s claims the gateway role in its state: ignored, the gateway is %s "
                "(--gateway); check that node",
                id, c->gateway);
    n->claim_warned = true;
  }
  if (!c->recovered) {
    n->st = st;
    n->has_state = true;
    n->live = online;
    n->last_seen_ms = now;
    return;
  }
  if (!online) {
    hold_departure(c, n, now);
    return;
  }
  n->leaving = false;
  node_online(c, n, &st, now);
}

static void on_parent(coord *c, const char *id, const void *payload, size_t len, bool retained) {
  ep_err e = {0};
  struct proto_parent p;
  if (len == 0) {
    struct coord_node *n = coord_node_find(c, id);
    if (n != NULL && !c->recovered) {
      memset(&n->pub, 0, sizeof n->pub);
      n->junk = false;
    }
    return;
  }
  if (proto_parent_parse(payload, len, id, &p, &e) < 0) {
    ep_log_warn("%s: dropped a parent message: %s", id, e.msg);
    struct coord_node *n = c->recovered ? coord_node_find(c, id) : coord_node_get(c, id);
    if (n != NULL && !c->recovered) {
      memset(&n->pub, 0, sizeof n->pub);
      n->junk = true;
    }
    return;
  }
  if (p.epoch > c->epoch)
    c->epoch = p.epoch;
  if (c->recovered) {
    coord_parent_seen(c, id, &p, retained);
    return;
  }
  struct coord_node *n = coord_node_get(c, id);
  if (n == NULL)
    return;
  n->pub = (struct coord_assign){.valid = true, .has_parent = p.has_parent, .epoch = p.epoch};
  if (p.has_parent) {
    snprintf(n->pub.parent, sizeof n->pub.parent, "%s", p.parent);
    snprintf(n->pub.addr, sizeof n->pub.addr, "%s", p.addr);
    n->pub.peer_port = p.peer_port;
  }
  n->junk = false;
}

/* What the broker holds on coord/gateway: ours, or (on a broker whose ACL
 * lets somebody else write it) not, and then coord_tick publishes ours
 * again, at most once a tick. */
static void on_gateway(coord *c, const void *payload, size_t len) {
  struct proto_gateway g;
  ep_err e = {0};
  if (len == 0) {
    c->gw_held = false;
    return;
  }
  if (proto_gateway_parse(payload, len, &g, &e) < 0) {
    ep_log_warn("dropped a gateway message: %s", e.msg);
    c->gw_held = false;
    return;
  }
  c->gw_held = coord_is_gateway(c, g.id);
  if (!c->gw_held)
    ep_log_warn("the broker says the gateway is %s, but it is %s (--gateway): somebody else "
                "writes coord/gateway (check the broker ACL)",
                g.id, c->gateway);
}

void coord_message(coord *c, const char *topic, const void *payload, size_t len, bool retained,
                   int64_t now_ms) {
  if (topic == NULL || (payload == NULL && len > 0))
    return;
  ep_err e = {0};
  struct proto_topic pt;
  if (proto_topic_parse(topic, &pt, &e) < 0) {
    ep_log_warn("dropped a message on %.*s: %s", PROTO_TOPIC_MAX, topic, e.msg);
    return;
  }
  pthread_mutex_lock(&c->mu);
  if (strcmp(pt.locality, c->loc) != 0)
    ep_log_warn("dropped a message of locality %s (this is %s)", pt.locality, c->loc);
  else if (pt.kind == PROTO_T_STATE)
    on_state(c, pt.node, payload, len, retained, now_ms);
  else if (pt.kind == PROTO_T_PARENT)
    on_parent(c, pt.node, payload, len, retained);
  else if (pt.kind == PROTO_T_REPORT && len > 0)
    coord_report(c, pt.node, payload, len, now_ms);
  else if (pt.kind == PROTO_T_GATEWAY)
    on_gateway(c, payload, len);
  pthread_mutex_unlock(&c->mu);
}

/* --- time ------------------------------------------------------------------ */

static void check_timeouts(coord *c, int64_t now) {
  char reason[REASON_MAX];
  for (size_t i = c->n; i-- > 0;) {
    if (i >= c->n)
      continue; /* a drop during the previous step shrank the table */
    struct coord_node *n = c->nodes[i];
    if (!n->live || now - n->last_seen_ms <= c->timeout_ms)
      continue;
    snprintf(reason, sizeof reason, "%s silent for %" PRId64 " s", n->id,
             (now - n->last_seen_ms) / 1000);
    ep_log_warn("%s: no state message for %" PRId64 " s: taking it as gone", n->id,
                (now - n->last_seen_ms) / 1000);
    node_gone(c, n, reason);
  }
}

void coord_tick(coord *c, int64_t now_ms) {
  pthread_mutex_lock(&c->mu);
  if (!c->recovered) {
    if (c->grace_on && now_ms >= c->grace_end)
      coord_recover(c, now_ms);
  } else {
    if (c->resyncing && now_ms >= c->resync_end)
      coord_resync_end(c);
    if (c->connected && !c->resyncing) {
      check_departures(c, now_ms);
      check_timeouts(c, now_ms);
    }
    coord_suspend_tick(c, now_ms);
  }
  if (c->recovered && c->connected && !c->resyncing && !c->gw_held)
    coord_publish_gateway(c);
  pthread_mutex_unlock(&c->mu);
}

void coord_subscribed(coord *c, int64_t now_ms) {
  pthread_mutex_lock(&c->mu);
  c->connected = true;
  if (!c->recovered) {
    if (!c->grace_on) {
      c->grace_on = true;
      c->grace_end = now_ms + c->grace_ms;
      ep_log_info("subscribed: collecting the retained state of locality %s for %" PRId64 " ms",
                  c->loc, c->grace_ms);
    }
  } else {
    coord_resync_begin(c, now_ms);
  }
  pthread_mutex_unlock(&c->mu);
}

void coord_disconnected(coord *c) {
  pthread_mutex_lock(&c->mu);
  c->connected = false;
  c->resyncing = false;
  /* Departures that arrived just before we lost the broker were most likely
   * its shutdown publishing every Will: forget them; the resync that follows
   * the reconnect tells who is really gone. */
  for (size_t i = 0; i < c->n; i++) {
    struct coord_node *n = c->nodes[i];
    if (n->leaving) {
      n->leaving = false;
      n->live = true;
    }
  }
  pthread_mutex_unlock(&c->mu);
}

bool coord_suspended(coord *c, const char *id) {
  pthread_mutex_lock(&c->mu);
  const struct coord_node *n = coord_node_find(c, id);
  bool s = n != NULL && n->suspended;
  pthread_mutex_unlock(&c->mu);
  return s;
}

bool coord_recovering(coord *c) {
  pthread_mutex_lock(&c->mu);
  bool r = !c->recovered;
  pthread_mutex_unlock(&c->mu);
  return r;
}

uint64_t coord_epoch(coord *c) {
  pthread_mutex_lock(&c->mu);
  uint64_t e = c->epoch;
  pthread_mutex_unlock(&c->mu);
  return e;
}

const topo *coord_topology(const coord *c) {
  return c->t;
}
