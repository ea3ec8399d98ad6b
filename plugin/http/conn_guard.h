/* The request-header deadline for libmicrohttpd connections: a request's
 * headers must be complete within a fixed time, whatever trickles in. */
#ifndef EP_PLUGIN_CONN_GUARD_H
#define EP_PLUGIN_CONN_GUARD_H

#include <microhttpd.h>
#include <stdint.h>

#include "common/err.h"

typedef struct conn_guard conn_guard;

/* Starts the sweeper thread. Past max_conns live connections (0 = never),
 * the one waiting longest for its headers is cut: give libmicrohttpd a
 * higher limit (conn_guard_mhd_limit). tick (may be NULL) is called on the
 * sweeper about every tick_ms for housekeeping that belongs to the endpoint. */
int conn_guard_new(int header_timeout_ms, unsigned max_conns, void (*tick)(void *ud), void *ud,
                   int tick_ms, conn_guard **out, ep_err *err);
/* libmicrohttpd's connection limit for our max_conns: the margin holds the
 * connections arriving while shed ones close. */
static inline unsigned conn_guard_mhd_limit(unsigned max_conns) {
  unsigned margin = max_conns / 16 > 16 ? max_conns / 16 : 16;
  return max_conns + margin;
}
/* Stops the sweeper; call after MHD_stop_daemon (no connection is left). */
void conn_guard_free(conn_guard *g);

/* MHD_OPTION_NOTIFY_CONNECTION callback (cls = the guard). */
void conn_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe);
/* The access handler saw a request's headers complete. */
void conn_guard_headers_done(conn_guard *g, struct MHD_Connection *c);
/* A request ended (MHD_OPTION_NOTIFY_COMPLETED): on a kept-alive connection
 * the next request's headers are due within the deadline from now. */
void conn_guard_request_done(conn_guard *g, struct MHD_Connection *c);
/* Connections cut by the deadline so far. */
uint64_t conn_guard_cut_count(conn_guard *g);

#endif
