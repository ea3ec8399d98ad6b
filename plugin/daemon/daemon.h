/* The daemon's context: everything one edgepulld instance owns, passed
 * explicitly so that tests can run two instances in one process. */
#ifndef EP_PLUGIN_DAEMON_H
#define EP_PLUGIN_DAEMON_H

#include <pthread.h>
#include <stdbool.h>

#include "plugin/config/config.h"
#include "plugin/fetch/fetch.h"
#include "plugin/upstream/upstream.h"
#include "store/index.h"
#include "store/pipe.h"
#include "store/store.h"

struct server;
struct agent;
struct sources;

#define EDGEPULLD_SECRET_MAX 4096

struct edgepulld {
  struct edgepulld_config cfg;
  store *st;
  index_db *idx;
  upstream *up;
  pipe_table *pipes;
  fetcher *fetch;
  struct server *local;                       /* the runtime's endpoint (loopback) */
  struct server *peer;                        /* the peer endpoint (--peer-listen), NULL when off */
  struct sources *src;                        /* source order and suspect peers */
  char peer_secret[EDGEPULLD_SECRET_MAX + 1]; /* --peer-secret-file, "" = none */
  int source_wait_ms;  /* fetcher: wait for a source to appear; 0 = default (tests shorten it) */
  struct agent *agent; /* locality member over MQTT; NULL when standalone */
  /* Guards `agent` against fetch threads announcing commits while
   * edgepulld_close stops it (initialized by edgepulld_open). */
  pthread_mutex_t agent_mu;
  bool agent_mu_ready;
};

/* Opens the store, index and upstream client from d->cfg, the fetcher, and
 * the node agent when a broker is configured. */
int edgepulld_open(struct edgepulld *d, ep_err *err);
/* Stops the agent first (the locality sees this node offline at once), then
 * fetches and readers; frees everything opened. Safe on partial opens. */
void edgepulld_close(struct edgepulld *d);

#endif
