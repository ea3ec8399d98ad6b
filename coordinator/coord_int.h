/* Internals shared by coord.c (membership), coord_nodes.c (the node table,
 * publishing), coord_recover.c (recovery from retained messages, resync
 * after a reconnect) and coord_report.c (suspect reports). Calls go one way:
 * coord.c calls coord_recover.c, coord_report.c and coord_nodes.c;
 * coord_recover.c and coord_report.c call coord_nodes.c; coord_nodes.c
 * calls none of them.
 * Not a public header: nothing outside coordinator/coord*.c includes it. */
#ifndef EP_COORDINATOR_COORD_INT_H
#define EP_COORDINATOR_COORD_INT_H

#include <pthread.h>

#include "coordinator/coord.h"
#include "locality/proto.h"

/* An assignment as the broker holds it (what we published or recovered). */
struct coord_assign {
  bool valid;
  bool has_parent;
  char parent[PROTO_ID_MAX + 1];
  char addr[PROTO_ADDR_MAX + 1];
  uint16_t peer_port;
  uint64_t epoch;
};

struct coord_node {
  char id[PROTO_ID_MAX + 1];
  bool has_state;
  struct proto_state st; /* the last valid state */
  bool live;             /* online, not stale, not timed out */
  bool in_topo;
  int64_t last_seen_ms;
  struct coord_assign pub;
  bool confirmed;      /* resync: the broker still holds pub */
  bool junk;           /* the broker holds a parent message for it that is not pub */
  bool leaving;        /* an offline state arrived: gone at leave_at_ms unless it */
  int64_t leave_at_ms; /* comes back online or our own connection drops first */
  bool claim_warned;   /* we logged its state's false claim of the gateway role */
  bool suspended;      /* reported: out of the topology until suspended_until_ms */
  int64_t suspended_until_ms;
};

struct coord {
  pthread_mutex_t mu;
  char loc[PROTO_ID_MAX + 1];
  char gateway[PROTO_ID_MAX + 1]; /* --gateway: the root, configured */
  bool gw_held;                   /* the broker holds our coord/gateway */
  enum topo_strategy strategy;
  unsigned fanout;
  int64_t timeout_ms;
  int64_t grace_ms;
  int64_t suspend_ms;
  coord_publish_fn publish;
  void *ud;
  topo *t;
  struct coord_node **nodes; /* sorted by id */
  size_t n, cap;
  uint64_t epoch;    /* highest epoch published or seen */
  bool recovered;    /* the initial recovery has completed */
  bool grace_on;     /* recovery grace period running */
  int64_t grace_end; /* ... until then */
  bool resyncing;
  int64_t resync_end;
  bool connected;
};

/* ---- coord_nodes.c ---- */

struct coord_node *coord_node_find(coord *c, const char *id);
/* Finds or creates; NULL when the table is full. */
struct coord_node *coord_node_get(coord *c, const char *id);
void coord_node_drop(coord *c, struct coord_node *n);

/* id is the configured gateway (never what a node's state claims). */
bool coord_is_gateway(const coord *c, const char *id);
/* Publishes the retained coord/gateway message naming c->gateway. */
void coord_publish_gateway(coord *c);

/* Publishes the assignment of every attached node whose parent (or the
 * parent's address) differs from what the broker holds. Returns how many. */
size_t coord_sync(coord *c, const char *reason);
/* Clears n's retained parent message when the broker holds one. */
void coord_clear_parent(coord *c, struct coord_node *n, const char *reason);

/* ---- coord_recover.c ---- */

void coord_recover(coord *c, int64_t now_ms);
void coord_resync_begin(coord *c, int64_t now_ms);
void coord_resync_end(coord *c);
/* A valid parent message for id received after the initial recovery. */
void coord_parent_seen(coord *c, const char *id, const struct proto_parent *p, bool retained);

/* coord_report.c: a valid report message from node `reporter`. */
void coord_report(coord *c, const char *reporter, const void *payload, size_t len, int64_t now_ms);
/* Suspended nodes whose period is over rejoin as joiners. */
void coord_suspend_tick(coord *c, int64_t now_ms);

#endif
