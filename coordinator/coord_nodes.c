/* The coordinator's node table and what it publishes, beneath coord.c
 * (membership), coord_recover.c and coord_report.c, which all use it and
 * none of which it calls back: the table is an array of node pointers sorted
 * by id (binary search, at most COORD_NODES_MAX), and coord_sync() walks the
 * topology and publishes the retained parent message of each node whose
 * parent (or the parent's address) differs from what the broker holds
 * (struct coord_assign), with a fresh epoch.
 *
 * Threads: callers hold c->mu. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/vec.h"
#include "coordinator/coord_int.h"

/* --- the node table: pointers sorted by id ------------------------------ */

static size_t node_pos(const coord *c, const char *id, bool *found) {
  size_t lo = 0, hi = c->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int r = strcmp(c->nodes[mid]->id, id);
    if (r == 0) {
      *found = true;
      return mid;
    }
    if (r < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = false;
  return lo;
}

struct coord_node *coord_node_find(coord *c, const char *id) {
  bool found;
  size_t i = node_pos(c, id, &found);
  return found ? c->nodes[i] : NULL;
}

struct coord_node *coord_node_get(coord *c, const char *id) {
  bool found;
  size_t i = node_pos(c, id, &found);
  if (found)
    return c->nodes[i];
  if (c->n >= COORD_NODES_MAX) {
    ep_log_warn("%s: dropped: already tracking %u nodes", id, COORD_NODES_MAX);
    return NULL;
  }
  if (ep_vec_reserve(&c->nodes, &c->cap, c->n + 1, COORD_NODES_MAX) < 0)
    return NULL;
  struct coord_node *n = calloc(1, sizeof *n);
  if (n == NULL)
    return NULL;
  snprintf(n->id, sizeof n->id, "%s", id);
  memmove(c->nodes + i + 1, c->nodes + i, (c->n - i) * sizeof *c->nodes);
  c->nodes[i] = n;
  c->n++;
  return n;
}

void coord_node_drop(coord *c, struct coord_node *n) {
  bool found;
  size_t i = node_pos(c, n->id, &found);
  if (!found)
    return;
  memmove(c->nodes + i, c->nodes + i + 1, (c->n - i - 1) * sizeof *c->nodes);
  c->n--;
  free(n);
}

/* --- publishing ----------------------------------------------------------- */

bool coord_is_gateway(const coord *c, const char *id) {
  return strcmp(c->gateway, id) == 0;
}

void coord_publish_gateway(coord *c) {
  struct proto_gateway g;
  char topic[PROTO_TOPIC_MAX];
  char *json = NULL;
  size_t len = 0;
  ep_err e = {0};
  snprintf(g.id, sizeof g.id, "%s", c->gateway);
  if (proto_gateway_topic(c->loc, topic, sizeof topic, &e) < 0 ||
      proto_gateway_build(&g, &json, &len, &e) < 0) {
    ep_log_err("building the gateway message: %s", e.msg);
    return;
  }
  if (c->publish(topic, json, len, c->ud) < 0)
    ep_log_warn("publishing the gateway (%s) failed; retrying", c->gateway);
  else
    c->gw_held = true; /* until the broker shows us something else */
  free(json);
}

static const char *assign_text(const struct coord_assign *a) {
  if (!a->valid)
    return "(none)";
  return a->has_parent ? a->parent : "(root)";
}

static bool assign_same(const struct coord_assign *a, const struct coord_assign *b) {
  if (a->valid != b->valid || a->has_parent != b->has_parent)
    return false;
  if (a->has_parent && strcmp(a->parent, b->parent) != 0)
    return false;
  return strcmp(a->addr, b->addr) == 0 && a->peer_port == b->peer_port;
}

static int publish_raw(coord *c, const char *id, const void *payload, size_t len) {
  ep_err e = {0};
  char topic[PROTO_TOPIC_MAX];
  if (proto_topic(PROTO_T_PARENT, c->loc, id, topic, sizeof topic, &e) < 0) {
    ep_log_err("%s: cannot build the parent topic: %s", id, e.msg);
    return -1;
  }
  if (c->publish(topic, payload, len, c->ud) < 0) {
    ep_log_warn("%s: publishing the parent assignment failed; it is checked again after the "
                "next reconnect",
                id);
    return -1;
  }
  return 0;
}

static int publish_assign(coord *c, struct coord_node *n, const struct coord_assign *want,
                          const char *reason) {
  struct proto_parent p = {0};
  snprintf(p.id, sizeof p.id, "%s", n->id);
  p.has_parent = want->has_parent;
  if (want->has_parent) {
    snprintf(p.parent, sizeof p.parent, "%s", want->parent);
    snprintf(p.addr, sizeof p.addr, "%s", want->addr);
    p.peer_port = want->peer_port;
  }
  p.epoch = c->epoch + 1;
  ep_err e = {0};
  char *json = NULL;
  size_t len = 0;
  if (proto_parent_build(&p, &json, &len, &e) < 0) {
    ep_log_err("%s: cannot build the parent assignment: %s", n->id, e.msg);
    return -1;
  }
  int r = publish_raw(c, n->id, json, len);
  free(json);
  c->epoch = p.epoch;
  ep_log_info("%s: parent %s -> %s (epoch %" PRIu64 ", reason: %s)", n->id, assign_text(&n->pub),
              assign_text(want), p.epoch, reason);
  n->pub = *want;
  n->pub.epoch = p.epoch;
  n->junk = false;
  n->confirmed = r == 0;
  return 0;
}

void coord_clear_parent(coord *c, struct coord_node *n, const char *reason) {
  if (!n->pub.valid && !n->junk)
    return;
  publish_raw(c, n->id, NULL, 0);
  ep_log_info("%s: parent %s -> (none) (cleared, reason: %s)", n->id, assign_text(&n->pub), reason);
  memset(&n->pub, 0, sizeof n->pub);
  n->junk = false;
}

struct sync_ctx {
  coord *c;
  const char *reason;
  const char *root;
  size_t count;
};

static int sync_one(const char *id, const char *parent, uint64_t epoch, void *ud) {
  (void)epoch; /* topo's own counter; ours is the one on the wire */
  struct sync_ctx *s = ud;
  struct coord_node *n = coord_node_find(s->c, id);
  if (n == NULL)
    return 0;
  bool is_root = s->root != NULL && strcmp(s->root, id) == 0;
  if (parent == NULL && !is_root)
    return 0; /* detached until there is a root: leave the broker as it is */
  struct coord_assign want = {.valid = true, .has_parent = parent != NULL};
  if (parent != NULL) {
    snprintf(want.parent, sizeof want.parent, "%s", parent);
    const struct coord_node *p = coord_node_find(s->c, parent);
    if (p != NULL && p->has_state) {
      snprintf(want.addr, sizeof want.addr, "%s", p->st.addr);
      want.peer_port = p->st.peer_port;
    }
  }
  if (assign_same(&n->pub, &want))
    return 0;
  if (publish_assign(s->c, n, &want, s->reason) == 0)
    s->count++;
  return 0;
}

size_t coord_sync(coord *c, const char *reason) {
  struct sync_ctx s = {.c = c, .reason = reason, .root = topo_root(c->t)};
  topo_foreach(c->t, sync_one, &s);
  return s.count;
}
