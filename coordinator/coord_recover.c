/* Recovery of a restarted coordinator, and resync after a reconnect.
 *
 * Recovery: for a grace period after the first subscription is
 * acknowledged, coord.c only collects the retained states and parent
 * assignments. Then the topology is rebuilt the way it was: the root, then,
 * breadth first from it, every live node whose retained parent is already
 * placed and still has a free slot, pinned there with topo_assign(). Nodes
 * left over (no assignment, parent gone, part of a cycle, over fan-out) join
 * like newcomers, fastest links first, and topo_repair() fixes what remains.
 * coord_sync() then publishes only what differs from the broker, so a
 * restart over a valid topology publishes nothing. Parent messages of nodes
 * that are not live are cleared.
 *
 * Resync: after a reconnect the broker redelivers the retained parents; an
 * assignment it no longer holds (a broker restarted without persistence) is
 * published again when the grace period ends. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "coordinator/coord_int.h"

static int cmp_by_parent(const void *a, const void *b) {
  const struct coord_node *x = *(struct coord_node *const *)a;
  const struct coord_node *y = *(struct coord_node *const *)b;
  int r = strcmp(x->pub.parent, y->pub.parent);
  return r != 0 ? r : strcmp(x->id, y->id);
}

static int cmp_by_speed(const void *a, const void *b) {
  const struct coord_node *x = *(struct coord_node *const *)a;
  const struct coord_node *y = *(struct coord_node *const *)b;
  if (x->st.link_mbps != y->st.link_mbps)
    return x->st.link_mbps > y->st.link_mbps ? -1 : 1;
  return strcmp(x->id, y->id);
}

/* The configured gateway when it is live; never a node that only claims it. */
static struct coord_node *pick_root(coord *c) {
  struct coord_node *root = coord_node_find(c, c->gateway);
  return root != NULL && root->live ? root : NULL;
}

static size_t lower_bound(struct coord_node **kids, size_t nk, const char *parent) {
  size_t lo = 0, hi = nk;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(kids[mid]->pub.parent, parent) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Places one child under the parent the broker says it has. */
static bool restore_one(coord *c, struct coord_node *k, const struct coord_node *p) {
  if (k->in_topo || topo_children(c->t, p->id) >= c->fanout)
    return false;
  ep_err e = {0};
  if (topo_join(c->t, k->id, k->st.link_mbps, &e) < 0) {
    ep_log_err("%s: joining the topology: %s", k->id, e.msg);
    return false;
  }
  k->in_topo = true;
  if (topo_assign(c->t, k->id, p->id, k->pub.epoch, &e) < 0) {
    ep_log_err("%s: restoring parent %s: %s", k->id, p->id, e.msg);
    return false;
  }
  return true;
}

static void restore_tree(coord *c, struct coord_node *root) {
  struct coord_node **kids = calloc(c->n + 1, sizeof *kids);
  struct coord_node **queue = calloc(c->n + 1, sizeof *queue);
  if (kids == NULL || queue == NULL) {
    ep_log_err("out of memory restoring the topology: every node joins anew");
    free(kids);
    free(queue);
    return;
  }
  size_t nk = 0;
  for (size_t i = 0; i < c->n; i++) {
    struct coord_node *n = c->nodes[i];
    if (n->live && n != root && n->pub.valid && n->pub.has_parent)
      kids[nk++] = n;
  }
  qsort(kids, nk, sizeof *kids, cmp_by_parent);
  size_t head = 0, tail = 0;
  queue[tail++] = root;
  while (head < tail) {
    const struct coord_node *p = queue[head++];
    for (size_t i = lower_bound(kids, nk, p->id); i < nk; i++) {
      if (strcmp(kids[i]->pub.parent, p->id) != 0)
        break;
      if (restore_one(c, kids[i], p))
        queue[tail++] = kids[i];
    }
  }
  free(kids);
  free(queue);
}

/* Live nodes that could not be restored join like newcomers. */
static void join_rest(coord *c) {
  struct coord_node **rest = calloc(c->n + 1, sizeof *rest);
  size_t nr = 0;
  for (size_t i = 0; i < c->n; i++) {
    struct coord_node *n = c->nodes[i];
    if (!n->live || n->in_topo)
      continue;
    if (rest != NULL)
      rest[nr++] = n;
    else if (topo_join(c->t, n->id, n->st.link_mbps, NULL) == 0)
      n->in_topo = true;
  }
  if (rest == NULL)
    return;
  qsort(rest, nr, sizeof *rest, cmp_by_speed);
  ep_err e = {0};
  for (size_t i = 0; i < nr; i++) {
    if (topo_join(c->t, rest[i]->id, rest[i]->st.link_mbps, &e) < 0)
      ep_log_err("%s: joining the topology: %s", rest[i]->id, e.msg);
    else
      rest[i]->in_topo = true;
  }
  free(rest);
}

void coord_recover(coord *c, int64_t now_ms) {
  (void)now_ms;
  c->grace_on = false;
  struct coord_node *root = pick_root(c);
  ep_err e = {0};
  if (root != NULL) {
    if (topo_set_root(c->t, root->id, root->st.link_mbps, &e) < 0) {
      ep_log_err("%s: setting the root: %s", root->id, e.msg);
    } else {
      root->in_topo = true;
      restore_tree(c, root);
    }
  }
  join_rest(c);
  int repaired = topo_count(c->t) > 0 ? topo_repair(c->t) : 0;
  c->recovered = true;
  size_t published = coord_sync(c, "recovery");
  size_t live = 0;
  char reason[PROTO_ID_MAX + 32];
  for (size_t i = c->n; i-- > 0;) {
    struct coord_node *n = c->nodes[i];
    if (n->live) {
      live++;
      continue;
    }
    snprintf(reason, sizeof reason, "%s is offline", n->id);
    coord_clear_parent(c, n, reason);
    coord_node_drop(c, n);
  }
  ep_log_info("recovered locality %s: %zu live nodes, root %s, %zu assignments published "
              "(%d repaired), epoch %" PRIu64,
              c->loc, live, root ? root->id : "(none yet)", published, repaired > 0 ? repaired : 0,
              c->epoch);
}

void coord_resync_begin(coord *c, int64_t now_ms) {
  c->resyncing = true;
  c->resync_end = now_ms + c->grace_ms;
  c->gw_held = false; /* until the broker redelivers it */
  /* Nobody could be heard while we were away: everybody gets a full
   * timeout from now; nodes that died meanwhile have an offline state. */
  for (size_t i = 0; i < c->n; i++) {
    c->nodes[i]->confirmed = false;
    c->nodes[i]->last_seen_ms = now_ms;
  }
  ep_log_info("resubscribed: checking the retained assignments for %" PRId64 " ms", c->grace_ms);
}

void coord_resync_end(coord *c) {
  c->resyncing = false;
  size_t lost = 0;
  for (size_t i = 0; i < c->n; i++) {
    struct coord_node *n = c->nodes[i];
    if (n->in_topo && n->pub.valid && !n->confirmed) {
      memset(&n->pub, 0, sizeof n->pub);
      lost++;
    }
  }
  if (lost == 0)
    return;
  ep_log_warn("the broker lost %zu parent assignments: publishing them again", lost);
  coord_sync(c, "the broker lost the assignment");
}

void coord_parent_seen(coord *c, const char *id, const struct proto_parent *p, bool retained) {
  struct coord_node *n = coord_node_find(c, id);
  if (n == NULL || !n->in_topo) {
    /* Our own echo of an assignment made just before the node left is
     * live; a retained one is a leftover that would mislead the node. */
    if (!retained)
      return;
    struct coord_node tmp = {.junk = true};
    snprintf(tmp.id, sizeof tmp.id, "%s", id);
    coord_clear_parent(c, &tmp, "not a member of the locality");
    return;
  }
  const struct coord_assign *a = &n->pub;
  if (!a->valid || a->has_parent != p->has_parent || a->epoch != p->epoch)
    return;
  if (a->has_parent && (strcmp(a->parent, p->parent) != 0 || strcmp(a->addr, p->addr) != 0 ||
                        a->peer_port != p->peer_port))
    return;
  n->confirmed = true;
}
