/* Suspect peers (issue 4, point 3): a node whose fetch from a peer failed
 * verification publishes node/<self>/report naming the peer. The broker's
 * ACL lets a node write only its own report topic, so the reporter's id is
 * the topic's; the coordinator further ignores reports from nodes that are
 * not live members, about nodes it does not know, about the root (the
 * gateway is the locality's only upstream source: taking it out would stop
 * every pull) and while it is still recovering.
 *
 * A reported node is suspended for suspend_ms: it leaves the topology
 * (topo_leave: only its children move, to new parents), its retained parent
 * message is cleared like any non-member's (it fetches from the other
 * holders the locality index names, and the gateway), and its heartbeats
 * keep it live without letting it rejoin. When the period ends it rejoins as
 * an ordinary joiner. A report about an already suspended node extends the
 * period. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "coordinator/coord_int.h"

#define REASON_MAX 200

static void suspend(coord *c, struct coord_node *s, const struct proto_report *rp, int64_t now) {
  char reason[REASON_MAX], ds[DIGEST_STR_LEN + 1];
  ep_err e = {0};
  digest_format(&rp->digest, ds);
  bool again = s->suspended;
  s->suspended = true;
  s->suspended_until_ms = now + c->suspend_ms;
  ep_log_warn("%s reported by %s (blob %s: %s): %s as a parent for %" PRId64 " s", s->id, rp->id,
              ds, rp->reason[0] ? rp->reason : "no reason given",
              again ? "still suspended" : "suspended", c->suspend_ms / 1000);
  if (!s->in_topo)
    return;
  snprintf(reason, sizeof reason, "%s reported by %s", s->id, rp->id);
  if (topo_leave(c->t, s->id, &e) < 0) {
    ep_log_err("%s: leaving the topology: %s", s->id, e.msg);
    return;
  }
  s->in_topo = false;
  coord_clear_parent(c, s, reason);
  coord_sync(c, reason);
}

void coord_report(coord *c, const char *reporter, const void *payload, size_t len, int64_t now_ms) {
  struct proto_report rp;
  ep_err e = {0};
  if (proto_report_parse(payload, len, reporter, &rp, &e) < 0) {
    ep_log_warn("%s: dropped a report: %s", reporter, e.msg);
    return;
  }
  if (!c->recovered) {
    ep_log_info("%s: report about %s ignored while recovering", reporter, rp.suspect);
    return;
  }
  const struct coord_node *r = coord_node_find(c, reporter);
  if (r == NULL || !r->live) {
    ep_log_warn("%s: report about %s ignored: the reporter is not a live member", reporter,
                rp.suspect);
    return;
  }
  struct coord_node *s = coord_node_find(c, rp.suspect);
  if (s == NULL || !s->has_state) {
    ep_log_warn("%s: report about %s ignored: no such node", reporter, rp.suspect);
    return;
  }
  const char *root = topo_root(c->t);
  if ((root != NULL && strcmp(root, s->id) == 0) || coord_is_gateway(c, s->id)) {
    ep_log_warn("%s: report about %s ignored: the gateway stays the root (check it!)", reporter,
                s->id);
    return;
  }
  suspend(c, s, &rp, now_ms);
}

void coord_suspend_tick(coord *c, int64_t now_ms) {
  char reason[REASON_MAX];
  for (size_t i = 0; i < c->n; i++) {
    struct coord_node *n = c->nodes[i];
    if (!n->suspended || now_ms < n->suspended_until_ms)
      continue;
    n->suspended = false;
    ep_log_info("%s: suspension over, rejoining", n->id);
    if (!n->live || n->in_topo)
      continue;
    ep_err e = {0};
    if (topo_join(c->t, n->id, n->st.link_mbps, &e) < 0) {
      ep_log_err("%s: joining the topology: %s", n->id, e.msg);
      continue;
    }
    n->in_topo = true;
    snprintf(reason, sizeof reason, "%s rejoined after its suspension", n->id);
    coord_sync(c, reason);
  }
}
