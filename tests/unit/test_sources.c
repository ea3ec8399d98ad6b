/* Unit tests for source selection (plugin/fetch/sources.c) on a real locality
 * index in a temporary directory: the parent first, then online holders
 * (never this node, the excluded node, a suspect, an offline node or one
 * without a peer port), the upstream only when allowed, the bound on the
 * list, and the gateway lookup used for tags. The parent comes from the
 * test hook sources_set_parent, so no broker or agent is involved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "plugin/daemon/daemon.h"
#include "plugin/fetch/sources.h"
#include "tests/lib/testlib.h"

struct fx {
  char dir[64];
  struct edgepulld d;
  struct sources_deps deps;
  digest_t blob;
};

static void put_node(index_db *db, const char *id, const char *addr, uint16_t port, bool online,
                     bool gateway) {
  struct index_node n = {0};
  snprintf(n.id, sizeof n.id, "%s", id);
  snprintf(n.addr, sizeof n.addr, "%s", addr);
  n.peer_port = port;
  n.online = online;
  n.gateway = gateway;
  n.link_mbps = 100;
  n.last_seen = (int64_t)time(NULL);
  ep_err e = {0};
  assert_int_equal(index_node_put(db, &n, &e), 0);
}

static void holds(index_db *db, const char *id, const digest_t *d) {
  struct index_inv_entry v = {.digest = *d, .size = 10};
  ep_err e = {0};
  assert_int_equal(index_inventory_replace(db, id, &v, 1, &e), 0);
}

static int setup(void **state) {
  struct fx *x = calloc(1, sizeof *x);
  if (ep_test_tmpdir(x->dir, sizeof x->dir, "ep-sources-") < 0)
    return -1;
  config_defaults(&x->d.cfg);
  snprintf(x->d.cfg.node_id, sizeof x->d.cfg.node_id, "self");
  char path[128];
  snprintf(path, sizeof path, "%s/index.db", x->dir);
  ep_err e = {0};
  if (index_open(path, &x->d.idx, &e) < 0)
    return -1;
  x->deps = (struct sources_deps){.idx = x->d.idx, .node_id = x->d.cfg.node_id};
  if (sources_new(&x->deps, &x->d.src, &e) < 0)
    return -1;
  digest_buffer("blob", 4, &x->blob);
  index_db *db = x->d.idx;
  put_node(db, "gw", "198.18.0.1", 5051, true, true);
  put_node(db, "a", "198.18.0.2", 5051, true, false);
  put_node(db, "b", "198.18.0.3", 5051, false, false); /* offline */
  put_node(db, "c", "198.18.0.4", 0, true, false);     /* no peer endpoint */
  put_node(db, "d", "fd00::5", 5051, true, false);
  put_node(db, "self", "198.18.0.9", 5051, true, false);
  const char *holders[] = {"a", "b", "c", "d", "self"};
  for (size_t i = 0; i < sizeof holders / sizeof holders[0]; i++)
    holds(db, holders[i], &x->blob);
  *state = x;
  return 0;
}

static int teardown(void **state) {
  struct fx *x = *state;
  sources_free(x->d.src);
  index_close(x->d.idx);
  if (ep_test_rm_rf(x->dir) != 0)
    fprintf(stderr, "cleanup of %s failed\n", x->dir);
  free(x);
  return 0;
}

static void set_parent(struct fx *x, const char *id, const char *addr, uint16_t port) {
  struct proto_parent p = {.has_parent = true, .peer_port = port};
  snprintf(p.id, sizeof p.id, "self");
  snprintf(p.parent, sizeof p.parent, "%s", id);
  snprintf(p.addr, sizeof p.addr, "%s", addr);
  sources_set_parent(x->d.src, &p);
}

static void test_standalone_is_upstream_only(void **state) {
  struct fx *x = *state;
  struct fetch_source out[FETCH_SOURCES_MAX];
  assert_false(sources_in_locality(x->d.src));
  assert_int_equal(sources_pick(x->d.src, &x->blob, NULL, out, FETCH_SOURCES_MAX), 1);
  assert_int_equal(out[0].kind, SRC_UPSTREAM);
}

static void test_parent_then_holders(void **state) {
  struct fx *x = *state;
  set_parent(x, "gw", "198.18.0.1", 5051);
  struct fetch_source out[FETCH_SOURCES_MAX];
  int n = sources_pick(x->d.src, &x->blob, NULL, out, FETCH_SOURCES_MAX);
  assert_int_equal(n, 3); /* gw (parent), a, d; not b, c, self; no upstream */
  assert_int_equal(out[0].kind, SRC_PEER);
  assert_string_equal(out[0].node, "gw");
  assert_string_equal(out[0].base_url, "http://198.18.0.1:5051");
  assert_string_equal(out[1].node, "a");
  assert_string_equal(out[2].node, "d");
  assert_string_equal(out[2].base_url, "http://[fd00::5]:5051");
}

static void test_parent_holding_it_is_listed_once(void **state) {
  struct fx *x = *state;
  set_parent(x, "a", "198.18.0.2", 5051);
  struct fetch_source out[FETCH_SOURCES_MAX];
  int n = sources_pick(x->d.src, &x->blob, NULL, out, FETCH_SOURCES_MAX);
  assert_int_equal(n, 2);
  assert_string_equal(out[0].node, "a");
  assert_string_equal(out[1].node, "d");
}

static void test_exclude(void **state) {
  struct fx *x = *state;
  set_parent(x, "gw", "198.18.0.1", 5051);
  struct fetch_source out[FETCH_SOURCES_MAX];
  int n = sources_pick(x->d.src, &x->blob, "gw", out, FETCH_SOURCES_MAX);
  assert_int_equal(n, 2);
  assert_string_equal(out[0].node, "a");
  n = sources_pick(x->d.src, &x->blob, "a", out, FETCH_SOURCES_MAX);
  assert_int_equal(n, 2);
  assert_string_equal(out[0].node, "gw");
  assert_string_equal(out[1].node, "d");
}

static void test_suspects_skipped_and_expire(void **state) {
  struct fx *x = *state;
  set_parent(x, "gw", "198.18.0.1", 5051);
  int64_t now = ep_mono_ms() / 1000; /* the clock sources_pick reads */
  sources_mark_suspect(x->d.src, "gw", now);
  sources_mark_suspect(x->d.src, "d", now - SOURCES_SUSPECT_S - 1); /* already expired */
  assert_true(sources_is_suspect(x->d.src, "gw", now));
  assert_false(sources_is_suspect(x->d.src, "d", now));
  assert_false(sources_is_suspect(x->d.src, "gw", now + SOURCES_SUSPECT_S + 1));
  struct fetch_source out[FETCH_SOURCES_MAX];
  int n = sources_pick(x->d.src, &x->blob, NULL, out, FETCH_SOURCES_MAX);
  assert_int_equal(n, 2);
  assert_string_equal(out[0].node, "a");
  assert_string_equal(out[1].node, "d");
}

static void test_suspect_list_is_bounded(void **state) {
  struct fx *x = *state;
  int64_t now = (int64_t)time(NULL);
  char id[16];
  for (int i = 0; i < SOURCES_SUSPECT_MAX * 3; i++) {
    snprintf(id, sizeof id, "n%d", i);
    sources_mark_suspect(x->d.src, id, now + i);
  }
  snprintf(id, sizeof id, "n%d", SOURCES_SUSPECT_MAX * 3 - 1);
  assert_true(sources_is_suspect(x->d.src, id, now));
  assert_false(sources_is_suspect(x->d.src, "n0", now)); /* the oldest made room */
}

static void test_upstream_when_allowed(void **state) {
  struct fx *x = *state;
  set_parent(x, "gw", "198.18.0.1", 5051);
  x->deps.upstream_fallback = true;
  struct fetch_source out[FETCH_SOURCES_MAX];
  int n = sources_pick(x->d.src, &x->blob, NULL, out, FETCH_SOURCES_MAX);
  assert_int_equal(n, 4);
  assert_int_equal(out[3].kind, SRC_UPSTREAM);
  x->deps.upstream_fallback = false;
  x->deps.gateway = true;
  digest_t other;
  digest_buffer("nobody holds it", 15, &other);
  n = sources_pick(x->d.src, &other, NULL, out, FETCH_SOURCES_MAX);
  assert_int_equal(n, 2); /* parent, upstream */
  assert_int_equal(out[1].kind, SRC_UPSTREAM);
  x->deps.gateway = false;
}

static void test_bounded_by_max(void **state) {
  struct fx *x = *state;
  set_parent(x, "gw", "198.18.0.1", 5051);
  x->deps.upstream_fallback = true;
  struct fetch_source out[2];
  assert_int_equal(sources_pick(x->d.src, &x->blob, NULL, out, 2), 2);
  assert_string_equal(out[1].node, "a");
  x->deps.upstream_fallback = false;
}

static void test_no_parent_no_holder_is_empty(void **state) {
  struct fx *x = *state;
  struct proto_parent root = {.has_parent = false};
  sources_set_parent(x->d.src, &root); /* a member without a parent */
  digest_t other;
  digest_buffer("nobody holds it", 15, &other);
  struct fetch_source out[FETCH_SOURCES_MAX];
  assert_int_equal(sources_pick(x->d.src, &other, NULL, out, FETCH_SOURCES_MAX), 0);
}

static void test_gateway_lookup(void **state) {
  struct fx *x = *state;
  struct fetch_source gw;
  assert_int_equal(sources_gateway(x->d.src, &gw), 1);
  assert_string_equal(gw.node, "gw");
  assert_string_equal(gw.base_url, "http://198.18.0.1:5051");
  put_node(x->d.idx, "gw", "198.18.0.1", 5051, false, true);
  assert_int_equal(sources_gateway(x->d.src, &gw), 0);
}

static void test_base_url_hostile(void **state) {
  (void)state;
  char buf[128];
  ep_err e = {0};
  assert_int_equal(sources_base_url("198.18.0.1", 80, buf, sizeof buf, &e), 0);
  assert_string_equal(buf, "http://198.18.0.1:80");
  assert_int_equal(sources_base_url("a/b", 80, buf, sizeof buf, &e), -EP_EINVAL);
  assert_int_equal(sources_base_url("a@b", 80, buf, sizeof buf, &e), -EP_EINVAL);
  assert_int_equal(sources_base_url("", 80, buf, sizeof buf, &e), -EP_EINVAL);
  assert_int_equal(sources_base_url("host", 0, buf, sizeof buf, &e), -EP_EINVAL);
  assert_int_equal(sources_base_url("host", 80, buf, 8, &e), -EP_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_standalone_is_upstream_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parent_then_holders, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parent_holding_it_is_listed_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_exclude, setup, teardown),
      cmocka_unit_test_setup_teardown(test_suspects_skipped_and_expire, setup, teardown),
      cmocka_unit_test_setup_teardown(test_suspect_list_is_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_upstream_when_allowed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bounded_by_max, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_parent_no_holder_is_empty, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gateway_lookup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_base_url_hostile, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
