/* Distribution topology of a locality: a tree rooted at the gateway along
 * which blobs stream (each node fetches from its parent). Strategies:
 *   chain   — the paper's chain: every node has at most one child;
 *   tree:K  — at most K children per node.
 * Nodes with faster advertised links sit closer to the root when a topology
 * is built from scratch (topo_rebuild). Changes after that are minimal:
 *   - a joining node is attached to the shallowest node with a free slot
 *     (ties: faster link first, then id), nobody else moves;
 *   - when a node leaves, only its children (the orphans) move: each is
 *     re-attached, with its whole subtree, to the shallowest node with a free
 *     slot outside that subtree (the first orphan can take the leaver's own
 *     slot), so there is never a cycle;
 *   - topo_assign() restores a known assignment (a restarted coordinator
 *     reading retained messages); topo_repair() then fixes only what is
 *     invalid (unknown parent, cycle, over fan-out, root with a parent).
 * Every change bumps the epoch of the nodes whose parent changed.
 * Not thread safe: the coordinator owns it from one thread.
 * Complexity: join O(log n); leave O(size of the moved subtrees); rebuild
 * O(n log n). */
#ifndef EP_LOCALITY_TOPO_H
#define EP_LOCALITY_TOPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct topo topo;

enum topo_strategy { TOPO_CHAIN, TOPO_TREE };

/* "chain" or "tree:K" (1 <= K <= 64). */
int topo_parse_strategy(const char *s, enum topo_strategy *st, unsigned *k, ep_err *err);

topo *topo_new(enum topo_strategy st, unsigned k);
void topo_free(topo *t);

/* Sets the root (the gateway). A root that changes re-roots the tree (the
 * old root, if still present, is attached like a joiner). */
int topo_set_root(topo *t, const char *id, uint32_t link_mbps, ep_err *err);
/* Adds a node (or updates its link speed) and attaches it. Adding the root
 * id is the same as topo_set_root. */
int topo_join(topo *t, const char *id, uint32_t link_mbps, ep_err *err);
/* Removes a node; its children are re-attached. Unknown id: no-op, 0. */
int topo_leave(topo *t, const char *id, ep_err *err);
/* Records parent as id's parent (recovery); NULL parent for the root. Both
 * must have been added. Does not check validity: call topo_repair after. */
int topo_assign(topo *t, const char *id, const char *parent, uint64_t epoch, ep_err *err);
/* Fixes invalid assignments only; returns the number of nodes moved. */
int topo_repair(topo *t);
/* Recomputes everything from scratch, fastest links nearest the root. */
void topo_rebuild(topo *t);

size_t topo_count(const topo *t);
const char *topo_root(const topo *t); /* NULL when no root */
/* The parent of id (NULL for the root, for an unknown id, or while there is
 * no root to attach to); *epoch set when non-NULL. */
const char *topo_parent(const topo *t, const char *id, uint64_t *epoch);
unsigned topo_depth(const topo *t, const char *id); /* root = 0 */
unsigned topo_children(const topo *t, const char *id);
/* Visits nodes in breadth-first order from the root, then any detached
 * nodes. cb returns non-zero to stop. */
void topo_foreach(const topo *t,
                  int (*cb)(const char *id, const char *parent, uint64_t epoch, void *ud),
                  void *ud);
/* Checks every invariant (reachability from the root, no cycles, fan-out);
 * 0 when valid, else EP_EINTERNAL with what is wrong. For tests. */
int topo_check(const topo *t, ep_err *err);

#endif
