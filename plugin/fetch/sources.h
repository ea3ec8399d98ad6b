/* Where a node takes a blob from (DESIGN §4): its parent, then other peers
 * that the locality index says hold the blob complete, then the upstream
 * registry when this node may use it (the gateway, --upstream-fallback, or a
 * standalone mirror). Peers that served bytes failing verification are
 * suspect for SOURCES_SUSPECT_S seconds and not chosen meanwhile. */
#ifndef EP_PLUGIN_SOURCES_H
#define EP_PLUGIN_SOURCES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "locality/proto.h"
#include "plugin/fetch/fetch.h"
#include "store/digest.h"

#define SOURCES_SUSPECT_MAX 32
#define SOURCES_SUSPECT_S 600
#define SOURCES_PEERS_MAX 4 /* holders other than the parent, at most */

struct edgepulld;
struct sources;

int sources_new(struct sources **out, ep_err *err);
void sources_free(struct sources *s);

/* The suspect list (thread-safe). The oldest entry makes room when full. */
void sources_mark_suspect(struct sources *s, const char *node, int64_t now);
bool sources_is_suspect(struct sources *s, const char *node, int64_t now);

/* Test hook: act as a locality member whose parent is p (NULL: the agent's
 * assignment again). Lets two daemons in one process form a locality
 * without a broker. */
void sources_set_parent(struct sources *s, const struct proto_parent *p);

/* A member of a locality (--broker, or a parent set by the test hook). */
bool sources_in_locality(struct edgepulld *d);
/* The gateway, --upstream-fallback, or standalone. */
bool sources_upstream_allowed(struct edgepulld *d);

/* The ordered sources for dg, never exclude_node (may be NULL) nor this
 * node nor a suspect. Returns how many were written (<= max). */
int sources_pick(struct edgepulld *d, const digest_t *dg, const char *exclude_node,
                 struct fetch_source *out, size_t max);
/* The locality's gateway as a peer source (online, with an address and a
 * peer port, not this node): 1 and *out when known, else 0. */
int sources_gateway(struct edgepulld *d, struct fetch_source *out);
/* "http://addr:port" ([addr] for IPv6); EP_EINVAL for an address with
 * characters an address cannot hold, or no port. */
int sources_base_url(const char *addr, uint16_t port, char *buf, size_t len, ep_err *err);

/* For the fetcher's deps: pick_sources and on_bad_source with ud = d. */
int sources_pick_cb(void *ud, const digest_t *dg, const char *exclude_node,
                    struct fetch_source *out, size_t max);
void sources_bad_cb(void *ud, const char *node, const digest_t *dg, const char *why);

#endif
