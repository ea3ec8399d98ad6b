/* See stack.h. The wiring follows open_sources / open_fetcher and the
 * mirror deps of plugin/daemon/daemon.c, less the agent, the deploy worker
 * and the servers. */
#include "tests/lib/stack.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tests/lib/testlib.h"

static int stack_fail(const char *what, const ep_err *e) {
  fprintf(stderr, "test stack: %s: %s\n", what, e->msg);
  return -1;
}

static int open_upstream(struct ep_test_stack *s, const char *host, uint16_t reg_port) {
  ep_err e = {0};
  if (upstream_new(&(struct upstream_options){0}, &s->up, &e) < 0)
    return stack_fail("upstream", &e);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", reg_port);
  if (reg_port != 0 && upstream_add_registry(s->up, host, url, &e) < 0)
    return stack_fail("registry mapping", &e);
  return 0;
}

static int open_engine(struct ep_test_stack *s, const struct ep_test_stack_options *o,
                       const char *node) {
  ep_err e = {0};
  s->src_deps = (struct sources_deps){.idx = s->idx,
                                      .node_id = node,
                                      .gateway = o->gateway,
                                      .upstream_fallback = o->upstream_fallback};
  if (sources_new(&s->src_deps, &s->src, &e) < 0)
    return stack_fail("sources", &e);
  if ((s->pipes = pipe_table_new()) == NULL)
    return stack_fail("pipes", &(ep_err){.msg = "out of memory"});
  struct fetcher_deps fd = {.st = s->st,
                            .idx = s->idx,
                            .up = s->up,
                            .pipes = s->pipes,
                            .pick_sources = sources_pick_cb,
                            .on_bad_source = sources_bad_cb,
                            .sources_ud = s->src,
                            .node_id = node,
                            .peer_secret = o->peer_secret,
                            .source_wait_ms = o->source_wait_ms > 0 ? o->source_wait_ms : 200};
  if (fetcher_new(&fd, &s->fetch, &e) < 0)
    return stack_fail("fetcher", &e);
  return 0;
}

int ep_test_stack_open(struct ep_test_stack *s, const char *host, uint16_t reg_port,
                       const struct ep_test_stack_options *o) {
  static const struct ep_test_stack_options none = {0};
  o = o != NULL ? o : &none;
  const char *node = o->node_id != NULL ? o->node_id : "n1";
  memset(s, 0, sizeof *s);
  ep_err e = {0};
  char path[128];
  if (ep_test_tmpdir(s->dir, sizeof s->dir, "ep-stack-") < 0)
    return stack_fail("temp dir", &(ep_err){.msg = "mkdtemp failed"});
  snprintf(path, sizeof path, "%s/index.db", s->dir);
  if (store_open(s->dir, &s->st, &e) < 0 || index_open(path, &s->idx, &e) < 0)
    return stack_fail("store", &e);
  if (open_upstream(s, host, reg_port) < 0 || open_engine(s, o, node) < 0)
    return -1;
  s->mirror = (struct mirror_deps){.st = s->st,
                                   .idx = s->idx,
                                   .up = s->up,
                                   .src = s->src,
                                   .node_id = node,
                                   .peer_secret = o->peer_secret,
                                   .tag_ttl_s = o->tag_ttl_s > 0 ? o->tag_ttl_s : 300,
                                   .gateway = o->gateway,
                                   .upstream_fallback = o->upstream_fallback};
  return 0;
}

void ep_test_stack_close(struct ep_test_stack *s) {
  if (s->fetch != NULL)
    fetcher_free(s->fetch);
  if (s->pipes != NULL)
    pipe_table_free(s->pipes);
  if (s->src != NULL)
    sources_free(s->src);
  if (s->up != NULL)
    upstream_free(s->up);
  if (s->idx != NULL)
    index_close(s->idx);
  if (s->st != NULL)
    store_close(s->st);
  if (s->dir[0] != '\0' && ep_test_rm_rf(s->dir) < 0)
    fprintf(stderr, "test stack: cleanup of %s failed\n", s->dir);
  memset(s, 0, sizeof *s);
}

int ep_test_fetcher_idle(fetcher *f, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 10) {
    unsigned in_flight = 1;
    fetcher_counts(f, &in_flight, NULL);
    if (in_flight == 0)
      return 0;
    nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
  }
  return -1;
}
