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
#include "store/index.h"
#include "store/digest.h"

#define SOURCES_SUSPECT_MAX 32
#define SOURCES_SUSPECT_S 600
#define SOURCES_PEERS_MAX 4 /* holders other than the parent, at most */

struct sources;

/* What source selection reads, all owned by the caller. Referenced, not
 * copied: it must outlive the sources (the daemon keeps it beside them). */
struct sources_deps {
  index_db *idx;       /* the locality index (holders, the gateway); may be NULL */
  const char *node_id; /* this node, never a source */
  bool member;         /* --broker: a member of a locality */
  bool gateway;
  bool upstream_fallback;
  /* A peer served bytes that failed verification (may be NULL): the agent
   * tells the coordinator. Called without any lock of the sources held. */
  void (*report_suspect)(void *ud, const char *node, const digest_t *d, const char *why);
  void *report_ud;
};

int sources_new(const struct sources_deps *deps, struct sources **out, ep_err *err);
void sources_free(struct sources *s);

/* The suspect list (thread-safe). The oldest entry makes room when full.
 * now is in seconds of CLOCK_MONOTONIC (ep_mono_ms() / 1000), so a wall
 * clock step neither ends nor stretches the window. */
void sources_mark_suspect(struct sources *s, const char *node, int64_t now);
bool sources_is_suspect(struct sources *s, const char *node, int64_t now);

/* This node's parent assignment is p (NULL: none known, forgotten). The
 * agent calls it as assignments arrive; a node with a parent set is a
 * member of a locality even without a broker, which lets two daemons in one
 * process form a locality (the tests). */
void sources_set_parent(struct sources *s, const struct proto_parent *p);

/* A member of a locality (deps->member, or a parent set). */
bool sources_in_locality(struct sources *s);
/* The gateway, --upstream-fallback, or standalone. */
bool sources_upstream_allowed(struct sources *s);

/* The ordered sources for dg, never exclude_node (may be NULL) nor this
 * node nor a suspect. Returns how many were written (<= max). */
int sources_pick(struct sources *s, const digest_t *dg, const char *exclude_node,
                 struct fetch_source *out, size_t max);
/* The locality's gateway as a peer source (online, with an address and a
 * peer port, not this node): 1 and *out when known, else 0. */
int sources_gateway(struct sources *s, struct fetch_source *out);
/* "http://addr:port" ([addr] for IPv6); EP_EINVAL for an address with
 * characters an address cannot hold, or no port. */
int sources_base_url(const char *addr, uint16_t port, char *buf, size_t len, ep_err *err);

/* Marks node suspect and reports it through deps->report_suspect. */
void sources_report_bad(struct sources *s, const char *node, const digest_t *dg, const char *why);

/* For the fetcher's deps: pick_sources and on_bad_source with ud = s. */
int sources_pick_cb(void *ud, const digest_t *dg, const char *exclude_node,
                    struct fetch_source *out, size_t max);
void sources_bad_cb(void *ud, const char *node, const digest_t *dg, const char *why);

#endif
