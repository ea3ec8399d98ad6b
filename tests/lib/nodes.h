/* The two-daemon fixture: edgepulld instances in this process on
 * 127.0.0.1, each with a local and a peer endpoint on free ports, forming
 * a locality without a broker (a gateway whose upstream is a fake
 * registry, nodes whose parent it is). Used by test_peer and test_deploy;
 * part of ep_testlib. */
#ifndef EP_TESTS_NODES_H
#define EP_TESTS_NODES_H

#include <stdbool.h>
#include <stdint.h>

#include "plugin/daemon/daemon.h"

struct ep_test_node {
  /* The state dir: empty for a new temp dir, else one the test prepared
   * (a small tmpfs, say), which ep_test_node_close empties. */
  char dir[64];
  struct edgepulld d;
  uint16_t local_port, peer_port;
};

/* The configuration's defaults for node id (a gateway or not), its state
 * dir created unless prepared: 0 or -1. The test may then change
 * n->d.cfg and n->d.peer_secret before ep_test_node_start. */
int ep_test_node_init(struct ep_test_node *n, const char *id, bool gateway);
/* Maps reg_host to http://127.0.0.1:reg_port (when reg_port is 0 it is
 * only allowed, as every node of a locality names it),
 * opens the daemon (a 200 ms source wait) and serves both endpoints: 0, or
 * -1 with the reason on stderr. */
int ep_test_node_start(struct ep_test_node *n, const char *reg_host, uint16_t reg_port);
/* Closes the daemon and removes the state dir's contents (the dir too
 * when it is not a mount point). */
void ep_test_node_close(struct ep_test_node *n);
/* n's parent is now node parent_id, whose peer endpoint is
 * 127.0.0.1:peer_port (the agent's assignment, without a broker). */
void ep_test_node_set_parent(struct ep_test_node *n, const char *parent_id, uint16_t peer_port);
/* n joins gw's locality: gw is its parent and, in n's index, the online
 * gateway. 0 or -1. */
int ep_test_node_join(struct ep_test_node *n, const struct ep_test_node *gw);

#endif
