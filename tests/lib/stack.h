/* A standalone mirror's modules wired together without the daemon, for the
 * unit tests of the layers above the fetch engine (mirror, HTTP): a store
 * and index in a temp dir, the upstream client with one registry mapped to
 * a fake registry (fake_registry.h), the pipe table, source selection, the
 * fetch engine and the mirror's deps, as plugin/daemon/daemon.c builds
 * them. Part of ep_testlib. */
#ifndef EP_TESTS_STACK_H
#define EP_TESTS_STACK_H

#include <stdbool.h>
#include <stdint.h>

#include "plugin/fetch/fetch.h"
#include "plugin/fetch/sources.h"
#include "plugin/mirror/mirror.h"

struct ep_test_stack {
  char dir[64];
  store *st;
  index_db *idx;
  upstream *up;
  pipe_table *pipes;
  struct sources *src;
  struct sources_deps src_deps; /* referenced by src */
  fetcher *fetch;
  struct mirror_deps mirror;
};

/* What differs between the tests' stacks (zero: a standalone mirror). */
struct ep_test_stack_options {
  const char *node_id;     /* default "n1"; must outlive the stack */
  bool gateway;            /* --gateway */
  bool upstream_fallback;  /* --upstream-fallback */
  int64_t tag_ttl_s;       /* default 300 */
  int source_wait_ms;      /* default 200 */
  const char *peer_secret; /* NULL: none; must outlive the stack */
};

/* Opens everything, registry host mapped to http://127.0.0.1:reg_port
 * (none when reg_port is 0): 0, or -1 with the reason on stderr. */
int ep_test_stack_open(struct ep_test_stack *s, const char *host, uint16_t reg_port,
                       const struct ep_test_stack_options *o);
/* Waits (at most timeout_ms) until f has no fetch in flight: a blob it
 * served is then committed, or its failure recorded. 0, or -1. */
int ep_test_fetcher_idle(fetcher *f, int timeout_ms);
/* Frees everything in the daemon's order (the fetcher first, which waits
 * for its threads) and removes the temp dir. */
void ep_test_stack_close(struct ep_test_stack *s);

#endif
