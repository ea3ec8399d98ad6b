/* Unit tests for the coordinator core (coordinator/coord.c, coord_recover.c)
 * without a broker: messages go in as (topic, payload), the retained
 * messages it publishes are captured and replayed the way a broker would
 * hold them. Its command line: test_coord_opts.c. */
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

#include "coordinator/coord.h"
#include "locality/proto.h"
#include "locality/topo.h"

#define LOC "site1"
#define MAXPUB 4096
#define GRACE 2000

struct pub {
  char topic[PROTO_TOPIC_MAX];
  char *payload; /* NULL for a clear */
  size_t len;
};

/* What the test's "broker" holds and what was published since the last
 * reset. */
struct fixture {
  coord *c;
  struct pub pubs[MAXPUB];
  size_t npubs;
  int64_t now;
  size_t gw_pubs;    /* coord/gateway publications, kept apart from pubs */
  char gw_last[256]; /* the last one's payload */
};

static int capture(const char *topic, const void *payload, size_t len, void *ud) {
  struct fixture *f = ud;
  if (strcmp(topic, "edgepull/v1/" LOC "/coord/gateway") == 0) {
    assert_true(len < sizeof f->gw_last);
    memcpy(f->gw_last, payload, len);
    f->gw_last[len] = '\0';
    f->gw_pubs++;
    return 0;
  }
  assert_true(f->npubs < MAXPUB);
  struct pub *p = &f->pubs[f->npubs++];
  snprintf(p->topic, sizeof p->topic, "%s", topic);
  p->len = len;
  p->payload = NULL;
  if (len > 0) {
    p->payload = malloc(len);
    assert_non_null(p->payload);
    memcpy(p->payload, payload, len);
  }
  return 0;
}

static void pubs_reset(struct fixture *f) {
  for (size_t i = 0; i < f->npubs; i++)
    free(f->pubs[i].payload);
  f->npubs = 0;
}

static struct fixture *fixture_new(enum topo_strategy st, unsigned k, unsigned timeout) {
  struct fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  struct coord_config cfg = {.locality = LOC,
                             .gateway = "gw",
                             .strategy = st,
                             .k = k,
                             .heartbeat_timeout_s = timeout,
                             .grace_ms = GRACE,
                             .publish = capture,
                             .ud = f};
  ep_err e = {0};
  assert_int_equal(coord_new(&cfg, &f->c, &e), 0);
  f->now = 1000000;
  return f;
}

static void fixture_free(struct fixture *f) {
  pubs_reset(f);
  coord_free(f->c);
  free(f);
}

/* Subscribes and lets the (empty or fed) grace period pass. */
static void recover(struct fixture *f) {
  coord_subscribed(f->c, f->now);
  f->now += GRACE;
  coord_tick(f->c, f->now);
  assert_false(coord_recovering(f->c));
}

static void send_state(struct fixture *f, const char *id, bool online, bool gateway, uint32_t mbps,
                       bool retained) {
  struct proto_state s = {0};
  snprintf(s.id, sizeof s.id, "%s", id);
  s.online = online;
  s.gateway = gateway;
  s.link_mbps = mbps;
  snprintf(s.addr, sizeof s.addr, "10.0.0.%zu", strlen(id) + (size_t)(unsigned char)id[1]);
  s.peer_port = 5051;
  snprintf(s.arch, sizeof s.arch, "arm64");
  snprintf(s.version, sizeof s.version, "0.1.0");
  s.ts = (int64_t)time(NULL);
  char *json = NULL;
  size_t len = 0;
  ep_err e = {0};
  assert_int_equal(proto_state_build(&s, &json, &len, &e), 0);
  char topic[PROTO_TOPIC_MAX];
  assert_int_equal(proto_topic(PROTO_T_STATE, LOC, id, topic, sizeof topic, &e), 0);
  coord_message(f->c, topic, json, len, retained, f->now);
  free(json);
  if (!online && !retained && coord_recovering(f->c) == false) {
    /* Departures are held briefly (a broker shutting down publishes every
     * Will): let the hold pass. */
    f->now += COORD_LEAVE_HOLD_MS + 1;
    coord_tick(f->c, f->now);
  }
}

static void join(struct fixture *f, const char *id, uint32_t mbps) {
  send_state(f, id, true, false, mbps, false);
}

/* Count of publications to id's parent topic since the last reset. */
static size_t pubs_for(const struct fixture *f, const char *id) {
  char topic[PROTO_TOPIC_MAX];
  snprintf(topic, sizeof topic, "edgepull/v1/" LOC "/node/%s/parent", id);
  size_t n = 0;
  for (size_t i = 0; i < f->npubs; i++)
    n += strcmp(f->pubs[i].topic, topic) == 0;
  return n;
}

/* The last assignment published for id: 1 set, 0 cleared, -1 none. */
static int last_parent(const struct fixture *f, const char *id, struct proto_parent *out) {
  char topic[PROTO_TOPIC_MAX];
  snprintf(topic, sizeof topic, "edgepull/v1/" LOC "/node/%s/parent", id);
  for (size_t i = f->npubs; i-- > 0;) {
    if (strcmp(f->pubs[i].topic, topic) != 0)
      continue;
    if (f->pubs[i].len == 0)
      return 0;
    ep_err e = {0};
    assert_int_equal(proto_parent_parse(f->pubs[i].payload, f->pubs[i].len, id, out, &e), 0);
    return 1;
  }
  return -1;
}

static void expect_parent(const struct fixture *f, const char *id, const char *parent) {
  struct proto_parent p;
  assert_int_equal(last_parent(f, id, &p), 1);
  if (parent == NULL) {
    assert_false(p.has_parent);
  } else {
    assert_true(p.has_parent);
    assert_string_equal(p.parent, parent);
    assert_true(p.addr[0] != '\0');
    assert_int_equal(p.peer_port, 5051);
  }
}

static void assert_valid_topology(const struct fixture *f) {
  ep_err e = {0};
  int r = topo_check(coord_topology(f->c), &e);
  if (r != 0)
    fail_msg("invalid topology: %s", e.msg);
}

/* Every publication's epoch is above all the ones before it. */
static void assert_epochs_grow(const struct fixture *f) {
  uint64_t last = 0;
  for (size_t i = 0; i < f->npubs; i++) {
    if (f->pubs[i].len == 0)
      continue;
    struct proto_parent p;
    ep_err e = {0};
    assert_int_equal(proto_parent_parse(f->pubs[i].payload, f->pubs[i].len, NULL, &p, &e), 0);
    assert_true(p.epoch > last);
    last = p.epoch;
  }
}

static void test_join_chain(void **state) {
  (void)state;
  struct fixture *f = fixture_new(TOPO_CHAIN, 1, 90);
  recover(f);
  assert_int_equal(f->npubs, 0);
  send_state(f, "gw", true, true, 1000, false);
  expect_parent(f, "gw", NULL);
  const char *ids[] = {"n1", "n2", "n3", "n4", "n5"};
  for (size_t i = 0; i < 5; i++)
    join(f, ids[i], 100);
  expect_parent(f, "n1", "gw");
  for (size_t i = 1; i < 5; i++)
    expect_parent(f, ids[i], ids[i - 1]);
  /* Nobody moved while the chain grew: one publication each. */
  assert_int_equal(f->npubs, 6);
  assert_epochs_grow(f);
  assert_int_equal(coord_epoch(f->c), 6);
  assert_valid_topology(f);
  /* A heartbeat (same state again) changes nothing. */
  pubs_reset(f);
  join(f, "n3", 100);
  send_state(f, "gw", true, true, 1000, false);
  assert_int_equal(f->npubs, 0);
  fixture_free(f);
}

static void build_tree(struct fixture *f) {
  send_state(f, "gw", true, true, 1000, false);
  const char *ids[] = {"n1", "n2", "n3", "n4", "n5", "n6"};
  for (size_t i = 0; i < 6; i++)
    join(f, ids[i], 100);
}

static void test_join_tree(void **state) {
  (void)state;
  struct fixture *f = fixture_new(TOPO_TREE, 2, 90);
  recover(f);
  build_tree(f);
  assert_int_equal(f->npubs, 7);
  expect_parent(f, "gw", NULL);
  expect_parent(f, "n1", "gw");
  expect_parent(f, "n2", "gw");
  const topo *t = coord_topology(f->c);
  assert_int_equal(topo_children(t, "gw"), 2);
  assert_int_equal(topo_children(t, "n1") + topo_children(t, "n2"), 4);
  for (int i = 3; i <= 6; i++) {
    char id[8];
    snprintf(id, sizeof id, "n%d", i);
    assert_int_equal(topo_depth(t, id), 2);
    struct proto_parent p;
    assert_int_equal(last_parent(f, id, &p), 1);
    assert_true(strcmp(p.parent, "n1") == 0 || strcmp(p.parent, "n2") == 0);
  }
  assert_epochs_grow(f);
  assert_valid_topology(f);
  fixture_free(f);
}

/* The Last Will of a node with children: its retained parent is cleared
 * and only its children get a new parent. */
static void test_lwt_moves_only_orphans(void **state) {
  (void)state;
  struct fixture *f = fixture_new(TOPO_TREE, 2, 90);
  recover(f);
  build_tree(f);
  const topo *t = coord_topology(f->c);
  char kids[2][PROTO_ID_MAX + 1];
  size_t nk = 0;
  for (int i = 3; i <= 6; i++) {
    char id[8];
    snprintf(id, sizeof id, "n%d", i);
    const char *p = topo_parent(t, id, NULL);
    if (p != NULL && strcmp(p, "n1") == 0)
      snprintf(kids[nk++], sizeof kids[0], "%s", id);
  }
  assert_int_equal(nk, 2);
  uint64_t before = coord_epoch(f->c);
  pubs_reset(f);
  send_state(f, "n1", false, false, 100, false);
  struct proto_parent p;
  assert_int_equal(last_parent(f, "n1", &p), 0);
  for (size_t i = 0; i < nk; i++) {
    assert_int_equal(last_parent(f, kids[i], &p), 1);
    assert_string_not_equal(p.parent, "n1");
    assert_true(p.epoch > before);
    assert_true(strcmp(p.parent, "gw") == 0 || topo_parent(t, p.parent, NULL) != NULL);
  }
  /* The clear plus one publication per orphan, nothing else. */
  assert_int_equal(f->npubs, 1 + nk);
  assert_int_equal(pubs_for(f, "gw") + pubs_for(f, "n2"), 0);
  assert_int_equal(topo_count(t), 6);
  assert_valid_topology(f);
  /* The node comes back: it joins, nobody else moves. */
  pubs_reset(f);
  join(f, "n1", 100);
  assert_int_equal(f->npubs, 1);
  assert_int_equal(pubs_for(f, "n1"), 1);
  assert_valid_topology(f);
  fixture_free(f);
}

/* Replays f's last publications (and the states) into g as retained. */
static void replay_retained(struct fixture *from, struct fixture *to, const char *const *ids,
                            size_t n) {
  for (size_t i = n; i-- > 0;) { /* any order: children before parents */
    char topic[PROTO_TOPIC_MAX];
    snprintf(topic, sizeof topic, "edgepull/v1/" LOC "/node/%s/parent", ids[i]);
    for (size_t j = from->npubs; j-- > 0;) {
      if (strcmp(from->pubs[j].topic, topic) != 0)
        continue;
      if (from->pubs[j].len > 0)
        coord_message(to->c, topic, from->pubs[j].payload, from->pubs[j].len, true, to->now);
      break;
    }
    send_state(to, ids[i], true, strcmp(ids[i], "gw") == 0, 100, true);
  }
}

static const char *const tree_ids[] = {"gw", "n1", "n2", "n3", "n4", "n5", "n6"};

static void test_recovery_valid(void **state) {
  (void)state;
  struct fixture *f = fixture_new(TOPO_TREE, 2, 90);
  recover(f);
  build_tree(f);
  send_state(f, "n2", false, false, 100, false); /* some history */
  join(f, "n2", 100);
  uint64_t epoch = coord_epoch(f->c);
  struct fixture *g = fixture_new(TOPO_TREE, 2, 90);
  coord_subscribed(g->c, g->now);
  replay_retained(f, g, tree_ids, 7);
  assert_true(coord_recovering(g->c));
  g->now += GRACE - 1;
  coord_tick(g->c, g->now);
  assert_true(coord_recovering(g->c));
  g->now += 1;
  coord_tick(g->c, g->now);
  assert_false(coord_recovering(g->c));
  assert_int_equal(g->npubs, 0); /* nothing that was valid changes */
  assert_int_equal(coord_epoch(g->c), epoch);
  for (size_t i = 1; i < 7; i++)
    assert_string_equal(topo_parent(coord_topology(g->c), tree_ids[i], NULL),
                        topo_parent(coord_topology(f->c), tree_ids[i], NULL));
  assert_valid_topology(g);
  /* The epoch goes on from the highest one seen. */
  join(g, "n7", 100);
  struct proto_parent p;
  assert_int_equal(last_parent(g, "n7", &p), 1);
  assert_int_equal(p.epoch, epoch + 1);
  fixture_free(g);
  fixture_free(f);
}

static void retained_parent(struct fixture *f, const char *id, const char *parent, uint64_t epoch) {
  struct proto_parent p = {0};
  snprintf(p.id, sizeof p.id, "%s", id);
  p.has_parent = parent != NULL;
  if (parent != NULL) {
    snprintf(p.parent, sizeof p.parent, "%s", parent);
    snprintf(p.addr, sizeof p.addr, "10.9.9.9");
    p.peer_port = 5051;
  }
  p.epoch = epoch;
  char *json = NULL;
  size_t len = 0;
  ep_err e = {0};
  assert_int_equal(proto_parent_build(&p, &json, &len, &e), 0);
  char topic[PROTO_TOPIC_MAX];
  snprintf(topic, sizeof topic, "edgepull/v1/" LOC "/node/%s/parent", id);
  coord_message(f->c, topic, json, len, true, f->now);
  free(json);
}

/* Corrupted retained assignments: only the broken ones are fixed. */
static void test_recovery_corrupt(void **state) {
  (void)state;
  struct fixture *f = fixture_new(TOPO_TREE, 2, 90);
  recover(f);
  build_tree(f);
  /* n3..n6 are the leaves of f's tree. */
  const char *a = "n3", *b = "n4", *x = "n5";
  struct fixture *g = fixture_new(TOPO_TREE, 2, 90);
  coord_subscribed(g->c, g->now);
  replay_retained(f, g, tree_ids, 7);
  /* Overwrite: a and b form a cycle, x points at a ghost, the root has a
   * parent, and a dead node keeps an assignment. */
  retained_parent(g, a, b, 3);
  retained_parent(g, b, a, 4);
  retained_parent(g, x, "ghost", 500);
  retained_parent(g, "gw", "n1", 2);
  retained_parent(g, "dead", "n2", 5);
  send_state(g, "dead", false, false, 100, true);
  g->now += GRACE;
  coord_tick(g->c, g->now);
  assert_false(coord_recovering(g->c));
  expect_parent(g, "gw", NULL);
  assert_int_equal(pubs_for(g, a), 1);
  assert_int_equal(pubs_for(g, b), 1);
  assert_int_equal(pubs_for(g, x), 1);
  assert_int_equal(pubs_for(g, "n1") + pubs_for(g, "n2"), 0);
  struct proto_parent p;
  assert_int_equal(last_parent(g, "dead", &p), 0);
  assert_int_equal(g->npubs, 5);
  assert_valid_topology(g);
  /* Every fix carries an epoch above all the retained ones. */
  for (size_t i = 0; i < g->npubs; i++) {
    if (g->pubs[i].len == 0)
      continue;
    ep_err e = {0};
    assert_int_equal(proto_parent_parse(g->pubs[i].payload, g->pubs[i].len, NULL, &p, &e), 0);
    assert_true(p.epoch > 500);
  }
  fixture_free(g);
  fixture_free(f);
}

static void test_heartbeat_timeout(void **state) {
  (void)state;
  struct fixture *f = fixture_new(TOPO_CHAIN, 1, 30);
  recover(f);
  send_state(f, "gw", true, true, 1000, false);
  join(f, "n1", 100);
  join(f, "n2", 100);
  join(f, "n3", 100);
  f->now += 20000;
  coord_tick(f->c, f->now);
  send_state(f, "gw", true, true, 1000, false);
  join(f, "n1", 100);
  join(f, "n3", 100); /* n2 stays silent */
  pubs_reset(f);
  f->now += 10001; /* n2 last heard 30.001 s ago */
  coord_tick(f->c, f->now);
  struct proto_parent p;
  assert_int_equal(last_parent(f, "n2", &p), 0);
  expect_parent(f, "n3", "n1");
  assert_int_equal(f->npubs, 2);
  assert_int_equal(topo_count(coord_topology(f->c)), 3);
  pubs_reset(f);
  f->now += 5000;
  coord_tick(f->c, f->now);
  assert_int_equal(f->npubs, 0);
  /* No timeouts while the broker is away; a full period after resubscribing. */
  coord_disconnected(f->c);
  f->now += 60000;
  coord_tick(f->c, f->now);
  assert_int_equal(f->npubs, 0);
  assert_int_equal(topo_count(coord_topology(f->c)), 3);
  fixture_free(f);
}

/* After a reconnect, assignments the broker lost are published again. */
static void test_resync(void **state) {
  (void)state;
  struct fixture *f = fixture_new(TOPO_CHAIN, 1, 90);
  recover(f);
  send_state(f, "gw", true, true, 1000, false);
  join(f, "n1", 100);
  join(f, "n2", 100);
  struct pub keep[3];
  assert_int_equal(f->npubs, 3);
  memcpy(keep, f->pubs, sizeof keep);
  f->npubs = 0; /* keep owns the payloads now */
  coord_disconnected(f->c);
  coord_subscribed(f->c, f->now);
  /* The broker still holds gw and n2, not n1. */
  coord_message(f->c, keep[0].topic, keep[0].payload, keep[0].len, true, f->now);
  coord_message(f->c, keep[2].topic, keep[2].payload, keep[2].len, true, f->now);
  send_state(f, "gw", true, true, 1000, true);
  send_state(f, "n1", true, false, 100, true);
  send_state(f, "n2", true, false, 100, true);
  f->now += GRACE;
  coord_tick(f->c, f->now);
  assert_int_equal(f->npubs, 1);
  expect_parent(f, "n1", "gw");
  for (int i = 0; i < 3; i++)
    free(keep[i].payload);
  fixture_free(f);
}

static void feed(struct fixture *f, const char *topic, const char *payload) {
  coord_message(f->c, topic, payload, strlen(payload), false, f->now);
}

static void test_hostile(void **state) {
  (void)state;
  struct fixture *f = fixture_new(TOPO_TREE, 3, 90);
  recover(f);
  build_tree(f);
  pubs_reset(f);
  const char *st = "edgepull/v1/" LOC "/node/n9/state";
  const char *pt = "edgepull/v1/" LOC "/node/n1/parent";
  feed(f, st, "");
  feed(f, st, "{");
  feed(f, st, "null");
  feed(f, st, "[]");
  feed(f, st, "{\"v\":2,\"id\":\"n9\",\"status\":\"online\"}");
  feed(f, st, "{\"v\":1,\"id\":\"n8\",\"status\":\"online\",\"addr\":\"1.2.3.4\"}");
  feed(f, st, "{\"v\":1,\"id\":\"n9\",\"status\":\"online\",\"link_mbps\":-5}");
  feed(f, st, "{\"v\":1,\"id\":\"n9\",\"status\":\"online\",\"addr\":\"a b\"}");
  feed(f, pt, "{\"v\":1,\"id\":\"n1\",\"parent\":\"n1\",\"addr\":\"x\",\"epoch\":1}");
  feed(f, pt, "{\"v\":1,\"id\":\"n1\",\"parent\":\"gw\",\"addr\":\"x\",\"epoch\":1e300}");
  feed(f, "edgepull/v1/other/node/n9/state", "{\"v\":1,\"id\":\"n9\",\"status\":\"online\"}");
  feed(f, "edgepull/v1/" LOC "/node/../state", "{}");
  feed(f, "edgepull/v1/" LOC "/node/n9/state/x", "{}");
  feed(f, "edgepull/v1//node/n9/state", "{}");
  feed(f, "#", "{}");
  feed(f, "", "{}");
  coord_message(f->c, NULL, "x", 1, false, f->now);
  coord_message(f->c, st, NULL, 5, false, f->now);
  char *big = malloc(PROTO_STATE_MAX * 4 + 1);
  assert_non_null(big);
  memset(big, ' ', PROTO_STATE_MAX * 4);
  big[PROTO_STATE_MAX * 4] = '\0';
  feed(f, st, big);
  free(big);
  unsigned char bytes[512];
  unsigned seed = 7;
  for (int i = 0; i < 2000; i++) {
    for (size_t j = 0; j < sizeof bytes; j++)
      bytes[j] = (unsigned char)(rand_r(&seed) & 0xff);
    size_t len = 1 + (size_t)rand_r(&seed) % sizeof bytes;
    coord_message(f->c, i % 2 ? st : pt, bytes, len, i % 3 == 0, f->now);
  }
  assert_int_equal(f->npubs, 0);
  assert_int_equal(topo_count(coord_topology(f->c)), 7);
  assert_valid_topology(f);
  fixture_free(f);
}

/* A broker shutting down cleanly publishes every client's Will just before
 * it drops the coordinator's own connection: nobody must move. */
static void test_broker_shutdown_wills(void **state) {
  (void)state;
  struct fixture *f = fixture_new(TOPO_TREE, 2, 90);
  recover(f);
  build_tree(f);
  size_t n0 = f->npubs; /* what the broker holds retained */
  for (size_t i = 0; i < 7; i++) {
    char topic[PROTO_TOPIC_MAX];
    ep_err e = {0};
    assert_int_equal(proto_topic(PROTO_T_STATE, LOC, tree_ids[i], topic, sizeof topic, &e), 0);
    char will[128];
    int n =
        snprintf(will, sizeof will, "{\"v\":1,\"id\":\"%s\",\"status\":\"offline\"}", tree_ids[i]);
    coord_message(f->c, topic, will, (size_t)n, false, f->now);
  }
  f->now += 5; /* the connection drops a few ms later */
  coord_disconnected(f->c);
  f->now += 1500;
  coord_tick(f->c, f->now);
  /* Reconnected: the broker redelivers the wills (it stored them) and the
   * parents as retained messages, then the nodes come back one by one. */
  coord_subscribed(f->c, f->now);
  for (size_t i = 0; i < 7; i++) {
    send_state(f, tree_ids[i], false, i == 0, 100, true);
    char topic[PROTO_TOPIC_MAX];
    snprintf(topic, sizeof topic, "edgepull/v1/" LOC "/node/%s/parent", tree_ids[i]);
    for (size_t j = n0; j-- > 0;) {
      if (strcmp(f->pubs[j].topic, topic) == 0) {
        if (f->pubs[j].len > 0)
          coord_message(f->c, topic, f->pubs[j].payload, f->pubs[j].len, true, f->now);
        break;
      }
    }
  }
  f->now += 800;
  coord_tick(f->c, f->now);
  for (size_t i = 0; i < 7; i++)
    send_state(f, tree_ids[i], true, i == 0, 100, false);
  f->now += GRACE + COORD_RECONNECT_HOLD_MS + 1000;
  coord_tick(f->c, f->now);
  assert_int_equal(f->npubs, n0);
  assert_int_equal(topo_count(coord_topology(f->c)), 7);
  assert_valid_topology(f);
  fixture_free(f);
}

/* Random joins, losses and returns keep the topology valid and move only
 * the orphans of the node that left. */
static void test_random_churn(void **state) {
  (void)state;
  /* No heartbeat timeouts here: time only moves by the departure holds. */
  struct fixture *f = fixture_new(TOPO_TREE, 3, 100000);
  recover(f);
  send_state(f, "gw", true, true, 1000, false);
  bool up[40] = {0};
  unsigned seed = 42;
  for (int step = 0; step < 600; step++) {
    int i = rand_r(&seed) % 40;
    char id[8];
    snprintf(id, sizeof id, "m%d", i);
    const topo *t = coord_topology(f->c);
    unsigned kids = up[i] ? topo_children(t, id) : 0;
    pubs_reset(f);
    send_state(f, id, !up[i], false, (uint32_t)(10 + rand_r(&seed) % 1000), false);
    if (up[i])
      assert_int_equal(f->npubs, 1 + kids); /* the clear + the orphans */
    else
      assert_int_equal(f->npubs, 1);
    up[i] = !up[i];
    assert_valid_topology(f);
  }
  fixture_free(f);
}

/* ---- suspect reports ---- */

static void send_report(struct fixture *f, const char *reporter, const char *suspect) {
  struct proto_report rp = {0};
  snprintf(rp.id, sizeof rp.id, "%s", reporter);
  snprintf(rp.suspect, sizeof rp.suspect, "%s", suspect);
  memset(rp.digest.hex, 'a', 64);
  snprintf(rp.reason, sizeof rp.reason, "digest mismatch");
  rp.ts = 1;
  char *json = NULL;
  size_t len = 0;
  ep_err e = {0};
  assert_int_equal(proto_report_build(&rp, &json, &len, &e), 0);
  char topic[PROTO_TOPIC_MAX];
  assert_int_equal(proto_topic(PROTO_T_REPORT, LOC, reporter, topic, sizeof topic, &e), 0);
  coord_message(f->c, topic, json, len, false, f->now);
  free(json);
}

/* A reported node loses its children and its place; heartbeats do not bring
 * it back before the period ends; then it rejoins as a joiner. */
static void test_report_suspends(void **state) {
  (void)state;
  struct fixture *f = fixture_new(TOPO_CHAIN, 1, 90);
  recover(f);
  send_state(f, "gw", true, true, 1000, false);
  join(f, "n1", 100);
  join(f, "n2", 100);
  join(f, "n3", 100);
  expect_parent(f, "n2", "n1");
  pubs_reset(f);
  send_report(f, "n2", "n1");
  assert_true(coord_suspended(f->c, "n1"));
  struct proto_parent p;
  assert_int_equal(last_parent(f, "n1", &p), 0); /* cleared */
  expect_parent(f, "n2", "gw");                  /* the orphan moved */
  assert_int_equal(pubs_for(f, "n3"), 0);        /* nobody else */
  const topo *t = coord_topology(f->c);
  assert_null(topo_parent(t, "n1", NULL));
  assert_int_equal(topo_count(t), 3);
  assert_valid_topology(f);
  /* Heartbeats keep it live but out; nobody gets it as parent. */
  pubs_reset(f);
  for (int i = 0; i < 5; i++) {
    f->now += 60 * 1000;
    join(f, "n1", 100);
    join(f, "n2", 100);
    join(f, "n3", 100);
    send_state(f, "gw", true, true, 1000, false);
    coord_tick(f->c, f->now);
    join(f, "n4", 100);
  }
  assert_int_equal(pubs_for(f, "n1"), 0);
  assert_true(coord_suspended(f->c, "n1"));
  assert_string_not_equal(topo_parent(t, "n4", NULL), "n1");
  /* The period ends: it rejoins at the end, and nobody else moves. */
  pubs_reset(f);
  f->now += 6 * 60 * 1000;
  join(f, "n1", 100);
  join(f, "n2", 100);
  join(f, "n3", 100);
  join(f, "n4", 100);
  send_state(f, "gw", true, true, 1000, false);
  coord_tick(f->c, f->now);
  assert_false(coord_suspended(f->c, "n1"));
  assert_int_equal(last_parent(f, "n1", &p), 1);
  assert_int_equal(f->npubs, 1);
  assert_int_equal(topo_count(t), 5);
  assert_valid_topology(f);
  fixture_free(f);
}

/* Reports from non-members, about unknown nodes or the gateway, during
 * recovery, or malformed, change nothing. */
static void test_report_ignored(void **state) {
  (void)state;
  struct fixture *f = fixture_new(TOPO_CHAIN, 1, 90);
  send_report(f, "n1", "n2"); /* still recovering */
  recover(f);
  send_state(f, "gw", true, true, 1000, false);
  join(f, "n1", 100);
  join(f, "n2", 100);
  pubs_reset(f);
  send_report(f, "ghost", "n1"); /* reporter unknown */
  send_report(f, "n2", "ghost"); /* suspect unknown */
  send_report(f, "n2", "gw");    /* the root stays */
  send_state(f, "n3", false, false, 100, false);
  send_report(f, "n3", "n1"); /* reporter offline */
  const char *topic = "edgepull/v1/" LOC "/node/n2/report";
  const char *bad[] = {
      "{\"v\":1,\"id\":\"n2\",\"suspect\":\"n2\",\"digest\":\"sha256:" /* itself */
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
      "{\"v\":1,\"id\":\"n1\",\"suspect\":\"n1\",\"digest\":\"sha256:" /* forged id */
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
      "{\"v\":1,\"id\":\"n2\",\"suspect\":\"n1\",\"digest\":\"sha256:xyz\"}",
      "{\"v\":2,\"id\":\"n2\",\"suspect\":\"n1\"}",
      "",
      "[]",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    coord_message(f->c, topic, bad[i], strlen(bad[i]), false, f->now);
  assert_int_equal(f->npubs, 0);
  assert_false(coord_suspended(f->c, "n1"));
  assert_false(coord_suspended(f->c, "gw"));
  assert_string_equal(topo_parent(coord_topology(f->c), "n2", NULL), "n1");
  fixture_free(f);
}

/* ---- roles ---- */

/* A node whose own state claims the gateway role is an ordinary member:
 * the root is the configured gateway, announced on coord/gateway, and a
 * retained claim from before a restart does not make it the root either. */
static void test_gateway_claim_ignored(void **state) {
  (void)state;
  struct fixture *f = fixture_new(TOPO_CHAIN, 1, 90);
  recover(f);
  assert_int_equal(f->gw_pubs, 1);
  assert_string_equal(f->gw_last, "{\"v\":1,\"id\":\"gw\"}");
  send_state(f, "a-rogue", true, true, 10000, false); /* first, fastest, claims */
  assert_null(topo_root(coord_topology(f->c)));
  send_state(f, "gw", true, false, 1000, false); /* the flag is not what counts */
  expect_parent(f, "gw", NULL);
  expect_parent(f, "a-rogue", "gw");
  join(f, "n1", 100);
  expect_parent(f, "n1", "a-rogue"); /* a member like any other */
  assert_string_equal(topo_root(coord_topology(f->c)), "gw");
  pubs_reset(f);
  send_state(f, "a-rogue", true, true, 10000, false); /* heartbeats change nothing */
  assert_int_equal(f->npubs, 0);
  send_report(f, "a-rogue", "gw"); /* nor can it report the gateway away */
  assert_false(coord_suspended(f->c, "gw"));
  assert_int_equal(f->npubs, 0);
  /* A restarted coordinator: the rogue's retained claim and a forged root
   * assignment of it (an anonymous broker) do not make it the root. */
  struct fixture *g = fixture_new(TOPO_CHAIN, 1, 90);
  coord_subscribed(g->c, g->now);
  const char *forged = "{\"v\":1,\"id\":\"a-rogue\",\"parent\":null,\"epoch\":99}";
  coord_message(g->c, "edgepull/v1/" LOC "/node/a-rogue/parent", forged, strlen(forged), true,
                g->now);
  send_state(g, "a-rogue", true, true, 10000, true);
  send_state(g, "gw", true, false, 1000, true);
  g->now += GRACE;
  coord_tick(g->c, g->now);
  assert_string_equal(topo_root(coord_topology(g->c)), "gw");
  expect_parent(g, "a-rogue", "gw");
  expect_parent(g, "gw", NULL);
  fixture_free(g);
  fixture_free(f);
}

/* coord/gateway: published once the broker does not hold ours (after the
 * recovery, after a resync, after somebody else wrote it), at most once a
 * tick, and not while our own is what the broker holds. */
static void test_gateway_topic(void **state) {
  (void)state;
  struct fixture *f = fixture_new(TOPO_CHAIN, 1, 90);
  const char *topic = "edgepull/v1/" LOC "/coord/gateway";
  const char *ours = "{\"v\":1,\"id\":\"gw\"}";
  coord_subscribed(f->c, f->now);
  coord_message(f->c, topic, ours, strlen(ours), true, f->now); /* held from before */
  f->now += GRACE;
  coord_tick(f->c, f->now);
  assert_false(coord_recovering(f->c));
  assert_int_equal(f->gw_pubs, 0);
  const char *forged = "{\"v\":1,\"id\":\"a-rogue\"}";
  coord_message(f->c, topic, forged, strlen(forged), false, f->now);
  coord_message(f->c, topic, "junk", 4, false, f->now);
  f->now += 1000;
  coord_tick(f->c, f->now);
  assert_int_equal(f->gw_pubs, 1);
  assert_string_equal(f->gw_last, ours);
  coord_tick(f->c, f->now + 1000);
  assert_int_equal(f->gw_pubs, 1);
  coord_message(f->c, topic, "", 0, false, f->now); /* cleared */
  coord_tick(f->c, f->now + 2000);
  assert_int_equal(f->gw_pubs, 2);
  /* A resync: the broker lost it (no retained copy comes back). */
  coord_disconnected(f->c);
  coord_tick(f->c, f->now + 3000);
  assert_int_equal(f->gw_pubs, 2); /* not while away */
  f->now += 4000;
  coord_subscribed(f->c, f->now);
  f->now += GRACE;
  coord_tick(f->c, f->now);
  assert_int_equal(f->gw_pubs, 3);
  fixture_free(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_join_chain),
      cmocka_unit_test(test_join_tree),
      cmocka_unit_test(test_lwt_moves_only_orphans),
      cmocka_unit_test(test_recovery_valid),
      cmocka_unit_test(test_recovery_corrupt),
      cmocka_unit_test(test_heartbeat_timeout),
      cmocka_unit_test(test_resync),
      cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_broker_shutdown_wills),
      cmocka_unit_test(test_random_churn),
      cmocka_unit_test(test_report_suspends),
      cmocka_unit_test(test_report_ignored),
      cmocka_unit_test(test_gateway_claim_ignored),
      cmocka_unit_test(test_gateway_topic),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
