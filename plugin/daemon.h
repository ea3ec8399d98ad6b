/* The daemon's context: everything one edgepulld instance owns, passed
 * explicitly so that tests can run two instances in one process. */
#ifndef EP_PLUGIN_DAEMON_H
#define EP_PLUGIN_DAEMON_H

#include "plugin/config.h"
#include "plugin/fetch.h"
#include "plugin/upstream.h"
#include "store/index.h"
#include "store/pipe.h"
#include "store/store.h"

struct server;

struct edgepulld {
  struct edgepulld_config cfg;
  store *st;
  index_db *idx;
  upstream *up;
  pipe_table *pipes;
  fetcher *fetch;
  struct server *local; /* the runtime's endpoint (loopback) */
};

/* Opens the store, index and upstream client from d->cfg. */
int edgepulld_open(struct edgepulld *d, ep_err *err);
/* Stops fetches and readers; frees everything opened. Safe on partial opens. */
void edgepulld_close(struct edgepulld *d);

#endif
