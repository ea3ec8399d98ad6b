/* Unit tests for issue 12 point 1 in the node agent (plugin/agent/agent_msg.c)
 * and source selection (plugin/fetch/sources.c): roles are configured, not
 * claimed.
 *
 * An agent built by agent_create (no network) gets messages through
 * agent_handle_message and writes a real index; sources_gateway() then says
 * whom this node would ask to resolve a tag. A node whose own state claims
 * the gateway role is never that node; the coordinator's coord/gateway
 * names it, unless --gateway-id pins it; its address comes from its own
 * state topic only; a mark left in the index by an earlier run is reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/lib/testlib.h"

#include "plugin/agent/agent_int.h"
#include "plugin/fetch/sources.h"

struct rx {
  char dir[64];
  index_db *idx;
  struct agent *a;
  struct sources_deps deps;
  struct sources *src;
};

static struct rx *rx_new(const char *pinned) {
  struct rx *x = calloc(1, sizeof *x);
  struct agent_params p = {.peer_port = 5051, .heartbeat_s = 30, .keepalive_s = 10};
  char path[128];
  ep_err e = {0};
  assert_non_null(x);
  assert_int_equal(ep_test_tmpdir(x->dir, sizeof x->dir, "ep-roles-"), 0);
  snprintf(path, sizeof path, "%s/index.db", x->dir);
  assert_int_equal(index_open(path, &x->idx, &e), 0);
  snprintf(p.locality, sizeof p.locality, "loc");
  snprintf(p.node, sizeof p.node, "me");
  snprintf(p.state_dir, sizeof p.state_dir, "%s", x->dir);
  snprintf(p.addr, sizeof p.addr, "192.0.2.1");
  snprintf(p.gateway_id, sizeof p.gateway_id, "%s", pinned);
  assert_int_equal(agent_create(&p, x->idx, &x->a, &e), 0);
  x->deps = (struct sources_deps){.idx = x->idx, .node_id = "me", .member = true};
  assert_int_equal(sources_new(&x->deps, &x->src, &e), 0);
  return x;
}

static void rx_free(struct rx *x) {
  sources_free(x->src);
  agent_stop(x->a);
  index_close(x->idx);
  ep_test_rm_rf(x->dir);
  free(x);
}

/* A state of node on topic_node's state topic, claiming the role or not. */
static int state_as(struct rx *x, const char *topic_node, const char *node, const char *addr,
                    bool gateway) {
  struct proto_state s = {.online = true, .peer_port = 5051, .gateway = gateway, .ts = 1};
  char topic[PROTO_TOPIC_MAX], *json = NULL;
  size_t len = 0;
  ep_err e = {0};
  snprintf(s.id, sizeof s.id, "%s", node);
  snprintf(s.addr, sizeof s.addr, "%s", addr);
  assert_int_equal(proto_state_build(&s, &json, &len, &e), 0);
  assert_int_equal(proto_topic(PROTO_T_STATE, "loc", topic_node, topic, sizeof topic, &e), 0);
  int r = agent_handle_message(x->a, topic, json, len);
  free(json);
  return r;
}

static int named(struct rx *x, const char *payload) {
  return agent_handle_message(x->a, "edgepull/v1/loc/coord/gateway", payload, strlen(payload));
}

/* Whom a tag would be resolved through: "" when nobody. */
static const char *tag_source(struct rx *x) {
  static struct fetch_source gw;
  memset(&gw, 0, sizeof gw);
  return sources_gateway(x->src, &gw) ? gw.node : "";
}

static bool marked(struct rx *x, const char *id) {
  struct index_node n;
  ep_err e = {0};
  return index_node_get(x->idx, id, &n, &e) == 1 && n.gateway;
}

static void test_claim_is_ignored(void **state) {
  (void)state;
  struct rx *x = rx_new("");
  assert_int_equal(state_as(x, "a-rogue", "a-rogue", "198.18.0.66", true), 0);
  assert_false(marked(x, "a-rogue"));
  assert_string_equal(tag_source(x), "");
  /* The coordinator names gw: gw, whatever it and the rogue claim. */
  assert_int_equal(named(x, "{\"v\":1,\"id\":\"gw\"}"), 0);
  assert_string_equal(tag_source(x), ""); /* gw's state (its address) not seen yet */
  assert_int_equal(state_as(x, "gw", "gw", "198.18.0.1", false), 0);
  assert_string_equal(tag_source(x), "gw");
  struct fetch_source s;
  assert_int_equal(sources_gateway(x->src, &s), 1);
  assert_string_equal(s.base_url, "http://198.18.0.1:5051");
  assert_int_equal(state_as(x, "a-rogue", "a-rogue", "198.18.0.66", true), 0);
  assert_false(marked(x, "a-rogue"));
  assert_string_equal(tag_source(x), "gw");
  /* Another node's state, or its address, cannot be forged from the
   * rogue's own topic (the broker's ACL keeps it off gw's topic). */
  assert_true(state_as(x, "a-rogue", "gw", "198.18.0.66", false) < 0);
  assert_int_equal(sources_gateway(x->src, &s), 1);
  assert_string_equal(s.base_url, "http://198.18.0.1:5051");
  rx_free(x);
}

static void test_coordinator_names_it(void **state) {
  (void)state;
  struct rx *x = rx_new("");
  assert_int_equal(state_as(x, "gw", "gw", "198.18.0.1", true), 0);
  assert_int_equal(state_as(x, "n2", "n2", "198.18.0.2", false), 0);
  assert_string_equal(tag_source(x), ""); /* nobody named yet */
  assert_int_equal(named(x, "{\"v\":1,\"id\":\"gw\"}"), 0);
  assert_string_equal(tag_source(x), "gw");
  assert_int_equal(named(x, "{\"v\":1,\"id\":\"gw\"}"), 1); /* the same again */
  assert_int_equal(named(x, "{\"v\":1,\"id\":\"n2\"}"), 0); /* moved by the coordinator */
  assert_string_equal(tag_source(x), "n2");
  assert_false(marked(x, "gw"));
  /* Hostile or foreign messages change nothing. */
  const char *bad[] = {"{\"v\":1,\"id\":\"a/b\"}", "{\"v\":2,\"id\":\"gw\"}", "{\"id\":\"gw\"}",
                       "[]", "{\"v\":1,\"id\":\"gw\",\"id\":\"gw\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_true(named(x, bad[i]) < 0);
  const char *g = "{\"v\":1,\"id\":\"gw\"}";
  assert_true(agent_handle_message(x->a, "edgepull/v1/other/coord/gateway", g, strlen(g)) < 0);
  assert_true(agent_handle_message(x->a, "edgepull/v1/loc/coord/gw", g, strlen(g)) < 0);
  assert_string_equal(tag_source(x), "n2");
  /* Cleared: nobody. */
  assert_int_equal(agent_handle_message(x->a, "edgepull/v1/loc/coord/gateway", "", 0), 0);
  assert_string_equal(tag_source(x), "");
  assert_false(marked(x, "n2"));
  rx_free(x);
}

static void test_pinned_gateway(void **state) {
  (void)state;
  struct rx *x = rx_new("gw");
  assert_int_equal(state_as(x, "gw", "gw", "198.18.0.1", false), 0);
  assert_string_equal(tag_source(x), "gw");
  assert_int_equal(state_as(x, "n2", "n2", "198.18.0.2", true), 0);
  assert_int_equal(named(x, "{\"v\":1,\"id\":\"n2\"}"), 1); /* logged, ignored */
  assert_int_equal(agent_handle_message(x->a, "edgepull/v1/loc/coord/gateway", "", 0), 1);
  assert_string_equal(tag_source(x), "gw");
  ep_err e = {0};
  struct agent *bad = NULL;
  struct agent_params p = x->a->p;
  snprintf(p.gateway_id, sizeof p.gateway_id, "a/b");
  assert_int_equal(agent_create(&p, x->idx, &bad, &e), -EP_EINVAL);
  agent_stop(bad);
  rx_free(x);
}

/* A mark from an earlier run (or from a release that believed claims) is
 * reset at start: the pinned id, or nobody until the coordinator speaks. */
static void test_stale_mark_reset(void **state) {
  (void)state;
  for (int pinned = 0; pinned < 2; pinned++) {
    struct rx *x = rx_new(pinned ? "gw" : "");
    struct index_node old = {
        .id = "a-rogue", .addr = "198.18.0.66", .peer_port = 5051, .online = true, .gateway = true};
    struct index_node gw = {.id = "gw", .addr = "198.18.0.1", .peer_port = 5051, .online = true};
    ep_err e = {0};
    assert_int_equal(index_node_put(x->idx, &old, &e), 0);
    assert_int_equal(index_node_put(x->idx, &gw, &e), 0);
    assert_string_equal(tag_source(x), "a-rogue");
    assert_int_equal(agent_mark_self(x->a, &e), 0);
    assert_false(marked(x, "a-rogue"));
    assert_string_equal(tag_source(x), pinned ? "gw" : "");
    rx_free(x);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_claim_is_ignored),
      cmocka_unit_test(test_coordinator_names_it),
      cmocka_unit_test(test_pinned_gateway),
      cmocka_unit_test(test_stale_mark_reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
