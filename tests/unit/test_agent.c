/* Unit tests for the node agent (plugin/agent/agent*.c).
 *
 * Without a broker: an agent built by agent_create (no network) gets
 * messages through agent_handle_message and writes a real index in a temp
 * dir: state rows, snapshots then deltas in order, out-of-order deltas
 * ignored, parents, cleared topics, and hostile topics and payloads (fixed
 * cases plus mutated and random bytes) that must be dropped without harm.
 * The delta queue is driven directly: batching, coalescing, overflow.
 *
 * With a broker: the test starts Debian's `mosquitto` on a free loopback
 * port, runs two agents with their own index files, waits (bounded) until
 * each index shows both nodes and both inventories, kills the broker,
 * restarts it on the same port, and checks that they converge again. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/lib/testlib.h"

#include "plugin/agent/agent_int.h"
#include "plugin/daemon/daemon.h"

struct fx {
  char dir[64];
  index_db *idx;
  struct agent *a;
};

static void params_for(struct agent_params *p, const char *node, const char *dir) {
  memset(p, 0, sizeof *p);
  snprintf(p->locality, sizeof p->locality, "loc");
  snprintf(p->node, sizeof p->node, "%s", node);
  snprintf(p->state_dir, sizeof p->state_dir, "%s", dir);
  snprintf(p->addr, sizeof p->addr, "192.0.2.1");
  p->peer_port = 5051;
  p->link_mbps = 100;
  p->heartbeat_s = 30;
  p->keepalive_s = 10;
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  char path[128];
  struct agent_params p;
  ep_err e = {0};
  assert_non_null(f);
  assert_int_equal(ep_test_tmpdir(f->dir, sizeof f->dir, "ep-test-agent-"), 0);
  snprintf(path, sizeof path, "%s/index.db", f->dir);
  assert_int_equal(index_open(path, &f->idx, &e), 0);
  params_for(&p, "me", f->dir);
  assert_int_equal(agent_create(&p, f->idx, &f->a, &e), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  agent_stop(f->a);
  index_close(f->idx);
  ep_test_rm_rf(f->dir);
  free(f);
  return 0;
}

static void digest_n(unsigned n, digest_t *d) {
  char buf[32];
  snprintf(buf, sizeof buf, "blob-%u", n);
  digest_buffer(buf, strlen(buf), d);
}

static char *topic_of(enum proto_topic_kind k, const char *node) {
  static char t[4][PROTO_TOPIC_MAX]; /* read-only after each call in one test */
  ep_err e = {0};
  assert_int_equal(proto_topic(k, "loc", node, t[k], sizeof t[k], &e), 0);
  return t[k];
}

static int send_json(struct fx *f, enum proto_topic_kind k, const char *node, char *json,
                     size_t len) {
  int r = agent_handle_message(f->a, topic_of(k, node), json, len);
  free(json);
  return r;
}

static int send_state(struct fx *f, const char *node, bool online, uint32_t mbps) {
  struct proto_state s = {.online = online, .peer_port = 5051, .link_mbps = mbps, .ts = 1};
  char *json;
  size_t len;
  ep_err e = {0};
  snprintf(s.id, sizeof s.id, "%s", node);
  snprintf(s.addr, sizeof s.addr, "198.18.0.7");
  snprintf(s.arch, sizeof s.arch, "arm64");
  assert_int_equal(proto_state_build(&s, &json, &len, &e), 0);
  return send_json(f, PROTO_T_STATE, node, json, len);
}

/* Snapshot (ndel == 0 and snapshot) or delta of blobs [from, to) added and
 * [dfrom, dto) deleted. */
static int send_inv(struct fx *f, const char *node, bool snapshot, uint64_t gen, uint64_t seq,
                    unsigned from, unsigned to, unsigned dfrom, unsigned dto) {
  struct proto_blob add[64];
  digest_t del[64];
  struct proto_inventory inv = {
      .snapshot = snapshot, .gen = gen, .seq = seq, .add = add, .del = del};
  char *json;
  size_t len;
  ep_err e = {0};
  snprintf(inv.id, sizeof inv.id, "%s", node);
  for (unsigned i = from; i < to; i++, inv.nadd++) {
    digest_n(i, &add[inv.nadd].digest);
    add[inv.nadd].size = 1000 + i;
  }
  for (unsigned i = dfrom; i < dto; i++, inv.ndel++)
    digest_n(i, &del[inv.ndel]);
  assert_int_equal(proto_inventory_build(&inv, &json, &len, &e), 0);
  return send_json(f, snapshot ? PROTO_T_INVENTORY : PROTO_T_DELTA, node, json, len);
}

static uint64_t blobs_of(index_db *idx, const char *node) {
  struct index_node n;
  ep_err e = {0};
  int r = index_node_get(idx, node, &n, &e);
  assert_true(r >= 0);
  return r == 1 ? n.blobs : UINT64_MAX;
}

struct holds {
  const char *node;
  bool found;
};

static int holds_cb(const struct index_node *n, uint64_t size, void *ud) {
  struct holds *h = ud;
  (void)size;
  if (strcmp(n->id, h->node) == 0)
    h->found = true;
  return 0;
}

static bool holds(index_db *idx, const char *node, unsigned blob) {
  struct holds h = {.node = node};
  digest_t d;
  ep_err e = {0};
  digest_n(blob, &d);
  assert_true(index_where(idx, &d, holds_cb, &h, &e) >= 0);
  return h.found;
}

static void test_state_rows(void **state) {
  struct fx *f = *state;
  struct index_node n;
  ep_err e = {0};
  assert_int_equal(send_state(f, "n2", true, 1000), 0);
  assert_int_equal(index_node_get(f->idx, "n2", &n, &e), 1);
  assert_true(n.online);
  assert_string_equal(n.addr, "198.18.0.7");
  assert_int_equal(n.peer_port, 5051);
  assert_int_equal(n.link_mbps, 1000);
  assert_string_equal(n.arch, "arm64");
  assert_true(n.last_seen >= time(NULL) - 5);
  assert_int_equal(send_state(f, "n2", false, 1000), 0);
  assert_int_equal(index_node_get(f->idx, "n2", &n, &e), 1);
  assert_false(n.online);
  assert_string_equal(n.addr, "198.18.0.7"); /* an offline state carries no address */
  assert_int_equal(n.link_mbps, 1000);
  /* a Last Will for a node never seen online makes a bare offline row */
  assert_int_equal(send_state(f, "n9", false, 0), 0);
  assert_int_equal(index_node_get(f->idx, "n9", &n, &e), 1);
  assert_false(n.online);
  /* an empty retained payload clears the node */
  assert_int_equal(agent_handle_message(f->a, topic_of(PROTO_T_STATE, "n2"), "", 0), 0);
  assert_int_equal(index_node_get(f->idx, "n2", &n, &e), 0);
  /* our own row, as agent_start writes it */
  assert_int_equal(agent_mark_self(f->a, &e), 0);
  assert_int_equal(index_node_get(f->idx, "me", &n, &e), 1);
  assert_true(n.online);
  assert_string_equal(n.addr, "192.0.2.1");
}

static void test_inventory_stream(void **state) {
  struct fx *f = *state;
  /* a delta before any snapshot is ignored */
  assert_int_equal(send_inv(f, "n2", false, 7, 1, 0, 2, 0, 0), 1);
  assert_int_equal(blobs_of(f->idx, "n2"), UINT64_MAX);
  assert_int_equal(send_inv(f, "n2", true, 7, 0, 0, 3, 0, 0), 0);
  assert_int_equal(blobs_of(f->idx, "n2"), 3);
  assert_int_equal(send_inv(f, "n2", false, 7, 1, 3, 5, 0, 1), 0); /* +3 +4 -0 */
  assert_int_equal(blobs_of(f->idx, "n2"), 4);
  assert_false(holds(f->idx, "n2", 0));
  assert_true(holds(f->idx, "n2", 4));
  /* a gap, a replay and another generation are ignored */
  assert_int_equal(send_inv(f, "n2", false, 7, 3, 10, 12, 0, 0), 1);
  assert_int_equal(send_inv(f, "n2", false, 7, 1, 10, 12, 0, 0), 1);
  assert_int_equal(send_inv(f, "n2", false, 8, 2, 10, 12, 0, 0), 1);
  assert_int_equal(blobs_of(f->idx, "n2"), 4);
  assert_int_equal(send_inv(f, "n2", false, 7, 2, 5, 6, 1, 2), 0);
  assert_int_equal(blobs_of(f->idx, "n2"), 4);
  assert_true(holds(f->idx, "n2", 5));
  /* after a gap, the stream continues only from the next snapshot */
  assert_int_equal(send_inv(f, "n2", false, 7, 4, 20, 21, 0, 0), 1);
  assert_int_equal(send_inv(f, "n2", true, 9, 40, 30, 32, 0, 0), 0); /* restarted node */
  assert_int_equal(blobs_of(f->idx, "n2"), 2);
  assert_false(holds(f->idx, "n2", 5));
  assert_int_equal(send_inv(f, "n2", false, 9, 41, 32, 33, 30, 31), 0);
  assert_int_equal(blobs_of(f->idx, "n2"), 2);
  assert_true(holds(f->idx, "n2", 32));
  /* the older retained snapshot, again after a reconnect, is ignored */
  assert_int_equal(send_inv(f, "n2", true, 9, 40, 30, 32, 0, 0), 1);
  assert_int_equal(blobs_of(f->idx, "n2"), 2);
  assert_true(holds(f->idx, "n2", 32)); /* not in the older snapshot */
  /* streams are per node */
  assert_int_equal(send_inv(f, "n3", true, 9, 0, 0, 1, 0, 0), 0);
  assert_int_equal(send_inv(f, "n3", false, 9, 1, 1, 2, 0, 0), 0);
  assert_int_equal(blobs_of(f->idx, "n3"), 2);
  assert_int_equal(blobs_of(f->idx, "n2"), 2);
  /* a cleared snapshot empties the node's inventory */
  assert_int_equal(agent_handle_message(f->a, topic_of(PROTO_T_INVENTORY, "n3"), NULL, 0), 0);
  assert_int_equal(blobs_of(f->idx, "n3"), 0);
  assert_int_equal(send_inv(f, "n3", false, 9, 2, 2, 3, 0, 0), 1);
}

static void test_parent(void **state) {
  struct fx *f = *state;
  struct proto_parent p = {.has_parent = true, .peer_port = 5051, .epoch = 3}, got;
  struct index_node n;
  char *json;
  size_t len;
  ep_err e = {0};
  assert_int_equal(agent_parent(f->a, &got), 0);
  snprintf(p.id, sizeof p.id, "me");
  snprintf(p.parent, sizeof p.parent, "gw");
  snprintf(p.addr, sizeof p.addr, "198.18.0.1");
  assert_int_equal(proto_parent_build(&p, &json, &len, &e), 0);
  assert_int_equal(send_json(f, PROTO_T_PARENT, "me", json, len), 0);
  assert_int_equal(agent_parent(f->a, &got), 1);
  assert_string_equal(got.parent, "gw");
  assert_string_equal(got.addr, "198.18.0.1");
  assert_int_equal(got.epoch, 3);
  assert_int_equal(index_node_get(f->idx, "me", &n, &e), 1);
  assert_string_equal(n.parent, "gw");
  /* someone else's parent goes to the index only */
  snprintf(p.id, sizeof p.id, "n2");
  snprintf(p.parent, sizeof p.parent, "me");
  p.epoch = 4;
  assert_int_equal(proto_parent_build(&p, &json, &len, &e), 0);
  assert_int_equal(send_json(f, PROTO_T_PARENT, "n2", json, len), 0);
  assert_int_equal(index_node_get(f->idx, "n2", &n, &e), 1);
  assert_string_equal(n.parent, "me");
  assert_int_equal(agent_parent(f->a, &got), 1);
  assert_string_equal(got.parent, "gw");
  /* the root has no parent; a cleared assignment forgets ours */
  struct proto_parent root = {.has_parent = false, .epoch = 5};
  snprintf(root.id, sizeof root.id, "me");
  assert_int_equal(proto_parent_build(&root, &json, &len, &e), 0);
  assert_int_equal(send_json(f, PROTO_T_PARENT, "me", json, len), 0);
  assert_int_equal(agent_parent(f->a, &got), 1);
  assert_false(got.has_parent);
  assert_int_equal(agent_handle_message(f->a, topic_of(PROTO_T_PARENT, "me"), "", 0), 0);
  assert_int_equal(agent_parent(f->a, &got), 0);
  assert_int_equal(agent_parent(NULL, &got), 0);
}

static void test_hostile(void **state) {
  struct fx *f = *state;
  static const char *const topics[] = {
      "edgepull/v1/loc/node/n2/state",
      "edgepull/v1/loc/node/n2/inventory",
      "edgepull/v1/loc/node/n2/inventory/delta",
      "edgepull/v1/loc/node/n2/parent",
  };
  static const char *const bad_topics[] = {
      "",
      "edgepull",
      "edgepull/v1/loc/node/n2",
      "edgepull/v2/loc/node/n2/state",
      "edgepull/v1/other/node/n2/state",
      "edgepull/v1/loc/node/../state",
      "edgepull/v1/loc/node/n2/state/x",
      "edgepull/v1/loc/node//state",
      "edgepull/v1/loc/node/n\xff/state",
      "edgepull/v1/loc/node/+/state",
      "edgepull/v1/loc/node/#",
  };
  static const char *const bad_payloads[] = {
      "{",
      "null",
      "[]",
      "\"x\"",
      "{}",
      "{\"v\":2,\"id\":\"n2\",\"status\":\"online\"}",
      "{\"v\":1,\"id\":\"n3\",\"status\":\"online\"}",
      "{\"v\":1,\"id\":\"n2\",\"status\":\"maybe\"}",
      "{\"v\":1,\"id\":\"n2\",\"gen\":-1,\"seq\":0,\"blobs\":[]}",
      "{\"v\":1,\"id\":\"n2\",\"gen\":1e300,\"seq\":0,\"blobs\":[]}",
      "{\"v\":1,\"id\":\"n2\",\"gen\":1,\"seq\":0,\"blobs\":[{\"digest\":\"sha256:zz\"}]}",
      "{\"v\":1,\"id\":\"n2\",\"gen\":1,\"seq\":1,\"add\":{},\"del\":[]}",
      "{\"v\":1,\"id\":\"n2\",\"has_parent\":true,\"parent\":\"../x\",\"epoch\":1}",
      "{\"v\":1,\"id\":\"n2\",\"parent\":\"gw\",\"addr\":\"a b\",\"epoch\":-5}",
  };
  char msg[64];
  for (size_t t = 0; t < sizeof bad_topics / sizeof bad_topics[0]; t++)
    assert_true(agent_handle_message(f->a, bad_topics[t], "{\"v\":1}", 7) < 0);
  assert_true(agent_handle_message(f->a, NULL, "x", 1) < 0);
  for (size_t t = 0; t < 4; t++) {
    for (size_t p = 0; p < sizeof bad_payloads / sizeof bad_payloads[0]; p++)
      assert_true(agent_handle_message(f->a, topics[t], bad_payloads[p], strlen(bad_payloads[p])) <
                  0);
    memcpy(msg, "{\"v\":1,\"id\":\"n2\"\0garbage", 25); /* embedded NUL */
    assert_true(agent_handle_message(f->a, topics[t], msg, 25) < 0);
  }
  /* oversized payloads are refused before parsing */
  size_t big = PROTO_INVENTORY_MAX + 2;
  char *huge = malloc(big);
  assert_non_null(huge);
  memset(huge, ' ', big);
  huge[0] = '{';
  huge[big - 1] = '}';
  for (size_t t = 0; t < 4; t++)
    assert_true(agent_handle_message(f->a, topics[t], huge, big) < 0);
  free(huge);
  /* random bytes and mutations of valid payloads: no crash, no bogus rows */
  struct proto_state s = {.online = true, .link_mbps = 10};
  char *valid;
  size_t vlen;
  ep_err e = {0};
  snprintf(s.id, sizeof s.id, "n2");
  assert_int_equal(proto_state_build(&s, &valid, &vlen, &e), 0);
  srand(12345);
  char buf[512];
  for (int i = 0; i < 4000; i++) {
    size_t len;
    if (i % 2 == 0) {
      len = (size_t)rand() % sizeof buf + 1;
      for (size_t k = 0; k < len; k++)
        buf[k] = (char)rand();
    } else {
      len = vlen < sizeof buf ? vlen : sizeof buf;
      memcpy(buf, valid, len);
      for (int k = 0; k < 3; k++)
        buf[(size_t)rand() % len] = (char)rand();
    }
    agent_handle_message(f->a, topics[i % 4], buf, len);
  }
  free(valid);
  struct index_node n;
  int r = index_node_get(f->idx, "n3", &n, &e);
  assert_int_equal(r, 0);
}

static void test_queue(void **state) {
  struct fx *f = *state;
  struct proto_inventory inv;
  digest_t d;
  /* nothing queued: an empty take */
  assert_int_equal(agent_take_delta(f->a, &inv), 0);
  proto_inventory_clear(&inv);
  /* 1200 adds, one removal, one add-then-remove: batches of PROTO_DELTA_BLOBS */
  for (unsigned i = 0; i < 1200; i++) {
    digest_n(i, &d);
    agent_blob_added(f->a, &d, i);
  }
  digest_n(7, &d);
  agent_blob_removed(f->a, &d); /* coalesces with the add of 7 */
  digest_n(5000, &d);
  agent_blob_removed(f->a, &d);
  agent_blob_added(NULL, &d, 1); /* no agent: ignored */
  agent_blob_added(f->a, NULL, 1);
  size_t total = 0, adds = 0, dels = 0;
  bool saw7 = false;
  for (;;) {
    size_t n = agent_take_delta(f->a, &inv);
    if (n == 0) {
      proto_inventory_clear(&inv);
      break;
    }
    assert_true(n <= PROTO_DELTA_BLOBS);
    assert_int_equal(n, inv.nadd + inv.ndel);
    assert_int_equal(inv.gen, f->a->gen);
    for (size_t i = 0; i < inv.ndel; i++) {
      digest_n(7, &d);
      saw7 |= digest_equal(&inv.del[i], &d);
    }
    /* every batch is a valid delta message */
    char *json;
    size_t len;
    ep_err e = {0};
    inv.seq = 1;
    assert_int_equal(proto_inventory_build(&inv, &json, &len, &e), 0);
    assert_true(len <= PROTO_DELTA_MAX);
    free(json);
    total += n, adds += inv.nadd, dels += inv.ndel;
    proto_inventory_clear(&inv);
  }
  assert_int_equal(total, 1201);
  assert_int_equal(adds, 1199);
  assert_int_equal(dels, 2);
  assert_true(saw7);
  /* overflow: the queue stays bounded and a snapshot is asked for */
  assert_false(f->a->resnap);
  for (unsigned i = 0; i < AGENT_QUEUE_MAX + 10; i++) {
    digest_n(i, &d);
    agent_blob_added(f->a, &d, i);
  }
  assert_int_equal(f->a->nqueue, AGENT_QUEUE_MAX);
  assert_true(f->a->resnap);
}

static void test_snapshot_payload(void **state) {
  struct fx *f = *state;
  ep_err e = {0};
  for (unsigned i = 0; i < 40; i++) {
    struct index_blob b = {.size = 100 + i,
                           .state = i % 4 == 3 ? INDEX_BLOB_PARTIAL : INDEX_BLOB_COMPLETE};
    digest_n(i, &b.digest);
    assert_int_equal(index_blob_put(f->idx, &b, &e), 0);
    agent_blob_added(f->a, &b.digest, b.size);
  }
  f->a->seq = 17;
  char *json;
  size_t len;
  assert_int_equal(agent_snapshot_payload(f->a, &json, &len, &e), 0);
  assert_int_equal(f->a->nqueue, 0); /* the snapshot carries the queued changes */
  struct proto_inventory inv = {0};
  assert_int_equal(proto_inventory_parse(json, len, "me", true, &inv, &e), 0);
  assert_int_equal(inv.nadd, 30);
  assert_int_equal(inv.seq, 17);
  assert_int_equal(inv.gen, f->a->gen);
  proto_inventory_clear(&inv);
  /* our own snapshot, coming back from the broker, fills our inventory */
  assert_int_equal(agent_handle_message(f->a, f->a->t_inv, json, len), 0);
  assert_int_equal(blobs_of(f->idx, "me"), 30);
  free(json);
  assert_int_equal(agent_state_payload(f->a, false, &json, &len, &e), 0);
  struct proto_state s;
  assert_int_equal(proto_state_parse(json, len, "me", &s, &e), 0);
  assert_false(s.online);
  free(json);
  assert_int_equal(agent_state_payload(f->a, true, &json, &len, &e), 0);
  assert_int_equal(proto_state_parse(json, len, "me", &s, &e), 0);
  assert_true(s.online);
  assert_int_equal(s.peer_port, 5051);
  assert_string_equal(s.addr, "192.0.2.1");
  assert_true(s.free_bytes > 0);
  free(json);
}

static void test_params(void **state) {
  struct edgepulld_config c;
  struct agent_params p;
  ep_err e = {0};
  (void)state;
  static const struct {
    const char *peer, *adv, *addr;
    int port;
  } cases[] = {
      {"", "", "", 0},
      {"0.0.0.0:5051", "", "", 5051},
      {"[::]:5052", "", "", 5052},
      {"192.168.1.5:5051", "", "192.168.1.5", 5051},
      {"[fd00::1]:5051", "", "fd00::1", 5051},
      {"0.0.0.0:5051", "node1.lan", "node1.lan", 5051},
      {"10.0.0.1:5051", "10.0.0.2", "10.0.0.2", 5051},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    config_defaults(&c);
    strcpy(c.broker, "[::1]:1883");
    strcpy(c.locality, "loc");
    strcpy(c.node_id, "n1");
    strcpy(c.peer_listen, cases[i].peer);
    strcpy(c.advertise_addr, cases[i].adv);
    assert_int_equal(agent_params_from_config(&c, &p, &e), 0);
    assert_string_equal(p.addr, cases[i].addr);
    assert_int_equal(p.peer_port, cases[i].port);
    assert_string_equal(p.broker_host, "::1");
    assert_int_equal(p.broker_port, 1883);
    assert_int_equal(p.heartbeat_s, 30);
    assert_int_equal(p.keepalive_s, 10);
    assert_int_equal(p.link_mbps, 100);
  }
  config_defaults(&c);
  strcpy(c.broker, "127.0.0.1:1883");
  strcpy(c.locality, "loc");
  c.node_id[0] = '\0';
  assert_int_equal(agent_params_from_config(&c, &p, &e), -EP_EINVAL);
  /* no broker: no agent */
  struct edgepulld d = {0};
  struct agent *a = (struct agent *)&d;
  config_defaults(&d.cfg);
  assert_int_equal(agent_start(&d.cfg, &(struct agent_deps){.idx = d.idx}, &a, &e), 0);
  assert_null(a);
}

/* ---- with a real broker ---- */

struct broker {
  char dir[64];
  int port;
  pid_t pid;
};

static int free_port(void) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
  close(fd);
  return ntohs(sa.sin_port);
}

static bool port_open(int port) {
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  close(fd);
  return ok;
}

static void sleep_ms(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static const char *mosquitto_bin(void) {
  static const char *const paths[] = {"/usr/sbin/mosquitto", "/usr/bin/mosquitto",
                                      "/usr/local/sbin/mosquitto"};
  for (size_t i = 0; i < 3; i++)
    if (access(paths[i], X_OK) == 0)
      return paths[i];
  return NULL;
}

static void broker_start(struct broker *b) {
  char conf[128], text[256];
  snprintf(conf, sizeof conf, "%s/mosquitto.conf", b->dir);
  FILE *cf = fopen(conf, "w");
  assert_non_null(cf);
  snprintf(text, sizeof text, "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n",
           b->port);
  fputs(text, cf);
  fclose(cf);
  b->pid = fork();
  assert_true(b->pid >= 0);
  if (b->pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0 && getenv("EDGEPULL_DEBUG") == NULL)
      dup2(null, 2), dup2(null, 1);
    execl(mosquitto_bin(), "mosquitto", "-c", conf, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 100 && !port_open(b->port); i++)
    sleep_ms(50);
  assert_true(port_open(b->port));
}

static void broker_kill(struct broker *b) {
  if (b->pid > 0) {
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
  }
  b->pid = 0;
}

struct node {
  char dir[64];
  struct edgepulld d;
};

static void node_start(struct node *n, const char *id, int port, unsigned first_blob) {
  char path[128];
  ep_err e = {0};
  assert_int_equal(ep_test_tmpdir(n->dir, sizeof n->dir, "ep-test-agent-node-"), 0);
  snprintf(path, sizeof path, "%s/index.db", n->dir);
  assert_int_equal(index_open(path, &n->d.idx, &e), 0);
  for (unsigned i = first_blob; i < first_blob + 3; i++) {
    struct index_blob b = {.size = i, .state = INDEX_BLOB_COMPLETE};
    digest_n(i, &b.digest);
    assert_int_equal(index_blob_put(n->d.idx, &b, &e), 0);
  }
  config_defaults(&n->d.cfg);
  snprintf(n->d.cfg.state_dir, sizeof n->d.cfg.state_dir, "%s", n->dir);
  snprintf(n->d.cfg.broker, sizeof n->d.cfg.broker, "127.0.0.1:%d", port);
  snprintf(n->d.cfg.locality, sizeof n->d.cfg.locality, "loc");
  snprintf(n->d.cfg.node_id, sizeof n->d.cfg.node_id, "%s", id);
  snprintf(n->d.cfg.peer_listen, sizeof n->d.cfg.peer_listen, "127.0.0.1:%d", port + 1);
  n->d.cfg.keepalive_s = 5;
  n->d.cfg.heartbeat_s = 1;
  if (agent_start(&n->d.cfg, &(struct agent_deps){.idx = n->d.idx}, &n->d.agent, &e) < 0)
    fail_msg("agent_start: %s", e.msg);
  assert_non_null(n->d.agent);
}

static void node_stop(struct node *n) {
  agent_stop(n->d.agent);
  n->d.agent = NULL;
  index_close(n->d.idx);
  n->d.idx = NULL;
  ep_test_rm_rf(n->dir);
}

/* Does idx show node online holding blobs [from, from + count)? */
static bool sees(index_db *idx, const char *node, unsigned from, unsigned count) {
  struct index_node n;
  ep_err e = {0};
  if (index_node_get(idx, node, &n, &e) != 1 || !n.online || n.blobs != count)
    return false;
  for (unsigned i = from; i < from + count; i++)
    if (!holds(idx, node, i))
      return false;
  return true;
}

static bool converged(struct node *a, struct node *b, unsigned na, unsigned nb, int max_ms) {
  for (int t = 0; t < max_ms; t += 50) {
    if (sees(a->d.idx, "n1", 100, na) && sees(a->d.idx, "n2", 200, nb) &&
        sees(b->d.idx, "n1", 100, na) && sees(b->d.idx, "n2", 200, nb))
      return true;
    sleep_ms(50);
  }
  return false;
}

/* Owned by setup/teardown, so a failed assertion still kills the broker. */
struct bfx {
  struct broker b;
  struct node n1, n2;
};

static int broker_setup(void **state) {
  struct bfx *x = calloc(1, sizeof *x);
  assert_non_null(x);
  assert_int_equal(ep_test_tmpdir(x->b.dir, sizeof x->b.dir, "ep-test-agent-broker-"), 0);
  x->b.port = free_port();
  *state = x;
  return 0;
}

static int broker_teardown(void **state) {
  struct bfx *x = *state;
  broker_kill(&x->b);
  if (x->n1.dir[0] != '\0' && x->n1.d.idx != NULL)
    node_stop(&x->n1);
  if (x->n2.dir[0] != '\0' && x->n2.d.idx != NULL)
    node_stop(&x->n2);
  ep_test_rm_rf(x->b.dir);
  free(x);
  return 0;
}

static void test_broker(void **state) {
  struct bfx *x = *state;
  struct timespec t0, t1;
  ep_err e = {0};
  if (mosquitto_bin() == NULL) {
    fprintf(stderr, "mosquitto binary not installed\n");
    skip();
  }
  /* n1 starts before the broker: startup never waits for it */
  node_start(&x->n1, "n1", x->b.port, 100);
  broker_start(&x->b);
  node_start(&x->n2, "n2", x->b.port, 200);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  assert_true(converged(&x->n1, &x->n2, 3, 3, 15000));
  clock_gettime(CLOCK_MONOTONIC, &t1);
  fprintf(stderr, "converged in %lld ms\n",
          (long long)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);

  /* a committed blob travels as a delta */
  struct index_blob nb = {.size = 103, .state = INDEX_BLOB_COMPLETE};
  digest_n(103, &nb.digest);
  assert_int_equal(index_blob_put(x->n1.d.idx, &nb, &e), 0);
  agent_blob_added(x->n1.d.agent, &nb.digest, nb.size);
  assert_true(converged(&x->n1, &x->n2, 4, 3, 5000));

  /* broker restart (no persistence: every retained message is gone) while a
   * blob is committed: both converge again, with the change */
  broker_kill(&x->b);
  digest_n(203, &nb.digest);
  assert_int_equal(index_blob_put(x->n2.d.idx, &nb, &e), 0);
  agent_blob_added(x->n2.d.agent, &nb.digest, nb.size);
  sleep_ms(300);
  broker_start(&x->b);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  assert_true(converged(&x->n1, &x->n2, 4, 4, 20000));
  clock_gettime(CLOCK_MONOTONIC, &t1);
  fprintf(stderr, "re-converged after the broker restart in %lld ms\n",
          (long long)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);

  /* a clean stop is seen at once as offline */
  agent_stop(x->n2.d.agent);
  x->n2.d.agent = NULL;
  struct index_node row = {0};
  bool offline = false;
  for (int t = 0; t < 5000 && !offline; t += 50) {
    offline = index_node_get(x->n1.d.idx, "n2", &row, &e) == 1 && !row.online;
    if (!offline)
      sleep_ms(50);
  }
  assert_true(offline);
  node_stop(&x->n2);
  /* stopping while the broker is gone (reconnect backoff running) is prompt */
  broker_kill(&x->b);
  sleep_ms(1500);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  node_stop(&x->n1);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  assert_true(t1.tv_sec - t0.tv_sec < 5);
}

/* Stopping an agent whose broker never answered returns promptly. */
static void test_no_broker(void **state) {
  struct node n = {0};
  struct timespec t0, t1;
  (void)state;
  node_start(&n, "n1", free_port(), 100);
  sleep_ms(1500);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  node_stop(&n);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  assert_true(t1.tv_sec - t0.tv_sec < 5);
}

/* ---- deploys and suspect reports ---- */

struct got_deploy {
  int calls;
  struct proto_deploy last;
};

static int deploy_hook(void *ud, const struct proto_deploy *d, ep_err *err) {
  struct got_deploy *g = ud;
  g->calls++;
  g->last = *d;
  return 0;
}

static void test_deploy_dispatch(void **state) {
  struct fx *f = *state;
  struct got_deploy g = {0};
  f->a->deps.on_deploy = deploy_hook;
  f->a->deps.ud = &g;
  const char *topic = "edgepull/v1/loc/deploy";
  const char *good = "{\"v\":1,\"id\":\"00112233aabbccdd\",\"image\":\"alpine:3\","
                     "\"platforms\":[\"linux/arm/v7\"],\"import\":\"docker\",\"ts\":1}";
  assert_int_equal(agent_handle_message(f->a, topic, good, strlen(good)), 0);
  assert_int_equal(g.calls, 1);
  assert_string_equal(g.last.id, "00112233aabbccdd");
  assert_string_equal(g.last.image, "alpine:3");
  assert_int_equal(g.last.nplatforms, 1);
  assert_int_equal(g.last.import, PROTO_IMPORT_DOCKER);
  const char *bad[] = {
      "{\"v\":1,\"id\":\"xyz\",\"image\":\"alpine\"}",
      "{\"v\":1,\"id\":\"00112233aabbccdd\",\"image\":\"al pine\"}",
      "{\"v\":1,\"id\":\"00112233aabbccdd\",\"image\":\"alpine\",\"import\":\"rkt\"}",
      "not json",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_true(agent_handle_message(f->a, topic, bad[i], strlen(bad[i])) < 0);
  assert_true(agent_handle_message(f->a, topic, "", 0) < 0);
  assert_true(agent_handle_message(f->a, "edgepull/v1/other/deploy", good, strlen(good)) < 0);
  assert_int_equal(g.calls, 1);
  /* Without a hook nor a worker (no daemon): ignored, not an error. */
  f->a->deps.on_deploy = NULL;
  assert_int_equal(agent_handle_message(f->a, topic, good, strlen(good)), 1);
  /* Reports and progress are for others. */
  const char *rep = "{\"v\":1,\"id\":\"n2\",\"suspect\":\"n1\",\"digest\":\"sha256:"
                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}";
  assert_int_equal(agent_handle_message(f->a, "edgepull/v1/loc/node/n2/report", rep, strlen(rep)),
                   1);
  assert_int_equal(
      agent_handle_message(f->a, "edgepull/v1/loc/deploy/00112233aabbccdd/progress/n2", "{}", 2),
      1);
}

static void test_report_suspect(void **state) {
  struct fx *f = *state;
  digest_t d;
  digest_n(7, &d);
  char *json = NULL;
  size_t len = 0;
  ep_err e = {0};
  assert_int_equal(agent_report_payload(f->a, "n1", &d, "digest\x01 mismatch", &json, &len, &e), 0);
  struct proto_report r;
  assert_int_equal(proto_report_parse(json, len, "me", &r, &e), 0);
  assert_string_equal(r.suspect, "n1");
  assert_true(digest_equal(&r.digest, &d));
  assert_string_equal(r.reason, "digest? mismatch");
  free(json);
  assert_true(agent_report_payload(f->a, "me", &d, "x", &json, &len, &e) < 0);
  assert_true(agent_report_payload(f->a, "a/b", &d, "x", &json, &len, &e) < 0);
  assert_true(agent_report_payload(f->a, NULL, &d, "x", &json, &len, &e) < 0);
  /* Never crash, whatever the input, with or without a broker. */
  agent_report_suspect(f->a, "n1", &d, NULL);
  agent_report_suspect(f->a, "me", &d, "self");
  agent_report_suspect(f->a, "+", &d, "bad id");
  agent_report_suspect(NULL, "n1", &d, "no agent");
  assert_string_equal(f->a->t_report, "edgepull/v1/loc/node/me/report");
  assert_string_equal(f->a->t_deploy, "edgepull/v1/loc/deploy");
}

static void test_deploy_options(void **state) {
  struct fx *f = *state;
  struct deploy_options o;
  ep_err e = {0};
  assert_int_equal(agent_deploy_options(f->a, "0.0.0.0:5050", &o, &e), 0);
  assert_string_equal(o.mirror, "127.0.0.1:5050");
  assert_string_equal(o.node, "me");
  assert_string_equal(o.containerd_address, "/run/containerd/containerd.sock");
  assert_string_equal(o.docker_socket, "/var/run/docker.sock");
  assert_true(o.arch[0] != '\0');
  assert_int_equal(agent_deploy_options(f->a, "[::1]:6000", &o, &e), 0);
  assert_string_equal(o.mirror, "[::1]:6000");
  assert_int_equal(agent_deploy_options(f->a, "127.0.0.2:5050", &o, &e), 0);
  assert_string_equal(o.mirror, "127.0.0.2:5050");
  assert_true(agent_deploy_options(f->a, "nonsense", &o, &e) < 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_state_rows, setup, teardown),
      cmocka_unit_test_setup_teardown(test_inventory_stream, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
      cmocka_unit_test_setup_teardown(test_queue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_snapshot_payload, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deploy_dispatch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_report_suspect, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deploy_options, setup, teardown),
      cmocka_unit_test(test_params),
      cmocka_unit_test(test_no_broker),
      cmocka_unit_test_setup_teardown(test_broker, broker_setup, broker_teardown),
  };
  signal(SIGPIPE, SIG_IGN);
  mosquitto_lib_init();
  int r = cmocka_run_group_tests(tests, NULL, NULL);
  mosquitto_lib_cleanup();
  return r;
}
