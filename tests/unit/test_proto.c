/* Unit tests for locality/proto: every payload kind round-trips through its
 * builder and parser; hostile topics and payloads (truncated, wrong types,
 * other versions, huge numbers, duplicate keys, NUL bytes, deep nesting,
 * oversized, bad digests, overlong strings) are refused with the right code;
 * and a few thousand random mutations of valid payloads never crash or leak
 * (run under ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/ep_test.h"

#include "common/escape.h"
#include "locality/proto.h"

#define HEXA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEXB "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HEXC "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define DA "sha256:" HEXA
#define DB "sha256:" HEXB
#define DC "sha256:" HEXC

enum kind { K_STATE, K_SNAP, K_DELTA, K_PARENT };

static const struct proto_state state_full = {
    .id = "n1",
    .online = true,
    .addr = "198.18.0.7",
    .peer_port = 5051,
    .arch = "arm",
    .variant = "v6",
    .link_mbps = 100,
    .free_bytes = (UINT64_C(1) << 53),
    .version = "0.3.0-dev+g1a2b",
    .gateway = true,
    .ts = 1718000000,
};
static const struct proto_parent parent_full = {.id = "n1",
                                                .has_parent = true,
                                                .parent = "gw",
                                                .addr = "198.18.0.1",
                                                .peer_port = 65535,
                                                .epoch = (UINT64_C(1) << 53)};

/* Parses len bytes as kind; copies into an exact-size heap buffer so ASan
 * sees any read past the payload. */
static int parse_as(enum kind k, const void *buf, size_t len, const char *id, ep_err *e) {
  char *copy = malloc(len > 0 ? len : 1);
  assert_non_null(copy);
  if (len > 0)
    memcpy(copy, buf, len);
  int r;
  struct proto_state s;
  struct proto_inventory inv;
  struct proto_parent p;
  switch (k) {
  case K_STATE:
    r = proto_state_parse(copy, len, id, &s, e);
    if (r == 0) {
      assert_true(names_node_id_valid(s.id));
      assert_non_null(memchr(s.addr, '\0', sizeof s.addr));
      assert_non_null(memchr(s.version, '\0', sizeof s.version));
    }
    break;
  case K_SNAP:
  case K_DELTA:
    r = proto_inventory_parse(copy, len, id, k == K_SNAP, &inv, e);
    if (r == 0) {
      assert_true(names_node_id_valid(inv.id));
      assert_true(inv.nadd + inv.ndel <= (k == K_SNAP ? 30000u : PROTO_DELTA_BLOBS));
      for (size_t i = 0; i < inv.nadd; i++)
        assert_int_equal(strlen(inv.add[i].digest.hex), DIGEST_HEX_LEN);
      proto_inventory_clear(&inv);
    } else {
      assert_null(inv.add);
      assert_null(inv.del);
    }
    break;
  default:
    r = proto_parent_parse(copy, len, id, &p, e);
    if (r == 0)
      assert_true(names_node_id_valid(p.id));
    break;
  }
  free(copy);
  if (r < 0)
    assert_true(e->msg[0] != '\0');
  return r;
}

static int parse_str(enum kind k, const char *s, ep_err *e) {
  return parse_as(k, s, strlen(s), "n1", e);
}

/* ---- topics -------------------------------------------------------------- */

static void test_id_valid(void **state) {
  (void)state;
  assert_true(names_node_id_valid("n1"));
  assert_true(names_node_id_valid("Node_1.lab-A"));
  char max[PROTO_ID_MAX + 2];
  memset(max, 'x', sizeof max);
  max[PROTO_ID_MAX] = '\0';
  assert_true(names_node_id_valid(max));
  max[PROTO_ID_MAX] = 'x';
  max[PROTO_ID_MAX + 1] = '\0';
  assert_false(names_node_id_valid(max));
  const char *bad[] = {"", "a/b", "a+", "#", "a b", "é", "a\n", "a:b", "a*", "a$"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_false(names_node_id_valid(bad[i]));
  assert_false(names_node_id_valid(NULL));
}

static void test_topic_build(void **state) {
  (void)state;
  char t[PROTO_TOPIC_MAX];
  ep_err e = {0};
  assert_int_equal(proto_topic(PROTO_T_STATE, "lab", "n1", t, sizeof t, &e), 0);
  assert_string_equal(t, "edgepull/v1/lab/node/n1/state");
  assert_int_equal(proto_topic(PROTO_T_INVENTORY, "lab", "n1", t, sizeof t, &e), 0);
  assert_string_equal(t, "edgepull/v1/lab/node/n1/inventory");
  assert_int_equal(proto_topic(PROTO_T_DELTA, "lab", "n1", t, sizeof t, &e), 0);
  assert_string_equal(t, "edgepull/v1/lab/node/n1/inventory/delta");
  assert_int_equal(proto_topic(PROTO_T_PARENT, "lab", "n1", t, sizeof t, &e), 0);
  assert_string_equal(t, "edgepull/v1/lab/node/n1/parent");
  assert_int_equal(proto_topic_filter("lab", t, sizeof t, &e), 0);
  assert_string_equal(t, "edgepull/v1/lab/node/#");

  assert_int_equal(proto_topic(PROTO_T_STATE, "l+b", "n1", t, sizeof t, &e), -EP_EINVAL);
  assert_int_equal(proto_topic(PROTO_T_STATE, "lab", "n/1", t, sizeof t, &e), -EP_EINVAL);
  assert_int_equal(proto_topic(PROTO_T_STATE, "lab", "#", t, sizeof t, &e), -EP_EINVAL);
  assert_int_equal(proto_topic(PROTO_T_STATE, "lab", NULL, t, sizeof t, &e), -EP_EINVAL);
  assert_int_equal(proto_topic((enum proto_topic_kind)9, "lab", "n1", t, sizeof t, &e), -EP_EINVAL);
  assert_int_equal(proto_topic_filter("", t, sizeof t, &e), -EP_EINVAL);
  assert_int_equal(proto_topic(PROTO_T_STATE, "lab", "n1", t, 10, &e), -EP_ETOOBIG);
  assert_int_equal(proto_topic_filter("lab", t, 10, &e), -EP_ETOOBIG);

  /* The longest ids still fit PROTO_TOPIC_MAX. */
  char id[PROTO_ID_MAX + 1];
  memset(id, 'z', PROTO_ID_MAX);
  id[PROTO_ID_MAX] = '\0';
  assert_int_equal(proto_topic(PROTO_T_DELTA, id, id, t, sizeof t, &e), 0);
  struct proto_topic pt;
  assert_int_equal(proto_topic_parse(t, &pt, &e), 0);
  assert_int_equal(pt.kind, PROTO_T_DELTA);
  assert_string_equal(pt.node, id);
}

static void test_topic_parse_good(void **state) {
  (void)state;
  static const enum proto_topic_kind kinds[] = {PROTO_T_STATE, PROTO_T_INVENTORY, PROTO_T_DELTA,
                                                PROTO_T_PARENT};
  for (size_t i = 0; i < 4; i++) {
    char t[PROTO_TOPIC_MAX];
    ep_err e = {0};
    struct proto_topic pt;
    assert_int_equal(proto_topic(kinds[i], "loc-1", "node.7_x", t, sizeof t, &e), 0);
    assert_int_equal(proto_topic_parse(t, &pt, &e), 0);
    assert_int_equal(pt.kind, kinds[i]);
    assert_string_equal(pt.locality, "loc-1");
    assert_string_equal(pt.node, "node.7_x");
  }
}

static void test_topic_parse_hostile(void **state) {
  (void)state;
  char longid[300];
  memset(longid, 'a', sizeof longid);
  memcpy(longid, "edgepull/v1/lab/node/", 21);
  memcpy(longid + sizeof longid - 7, "/state", 7);
  char id64[128];
  snprintf(id64, sizeof id64, "edgepull/v1/lab/node/%064d/state", 1);
  const char *bad[] = {
      "",
      "/",
      "edgepull",
      "edgepull/v1/lab/node/n1",
      "edgepull/v1/lab/node/n1/",
      "edgepull/v1/lab/node/n1/state/",
      "/edgepull/v1/lab/node/n1/state",
      "edgepull/v2/lab/node/n1/state",
      "edgepull/V1/lab/node/n1/state",
      "edgepul/v1/lab/node/n1/state",
      "edgepull/v1/lab/nodes/n1/state",
      "edgepull/v1/lab/node/n1/State",
      "edgepull/v1/lab/node/n1/status",
      "edgepull/v1/lab/node/n1/inventory/delta/x",
      "edgepull/v1/lab/node/n1/inventory/snapshot",
      "edgepull/v1/lab/node/n1/parent/delta",
      "edgepull/v1/lab/node/+/state",
      "edgepull/v1/lab/node/#",
      "edgepull/v1/+/node/n1/state",
      "edgepull/v1/lab/node//state",
      "edgepull//lab/node/n1/state",
      "edgepull/v1//node/n1/state",
      "edgepull/v1/lab/node/n 1/state",
      "edgepull/v1/lab/node/n\x01/state",
      "edgepull/v1/lab/node/n\xc3\xa9/state",
      "edgepull/v1/lab/node/n1/state\n",
      "edgepull/v1/lab/deploy/x",
      "edgepull/v1/lab/node/n1/x/y/z/w",
      "edgepull/v1/lab/node/n1/inventory/",
      id64,
      longid,
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ep_err e = {0};
    struct proto_topic pt;
    int r = proto_topic_parse(bad[i], &pt, &e);
    if (r != -EP_EINVAL)
      fail_msg("topic %zu \"%s\" gave %d", i, bad[i], r);
    assert_non_null(strstr(e.msg, "topic"));
    assert_null(strchr(e.msg, '\n'));
  }
  ep_err e = {0};
  struct proto_topic pt;
  assert_int_equal(proto_topic_parse(NULL, &pt, &e), -EP_EINVAL);
}

/* ---- round trips --------------------------------------------------------- */

static void test_state_roundtrip(void **state) {
  (void)state;
  struct proto_state s = state_full;
  char *json = NULL;
  size_t len = 0;
  ep_err e = {0};
  assert_int_equal(proto_state_build(&s, &json, &len, &e), 0);
  assert_int_equal(strlen(json), len);
  assert_null(strchr(json, ' '));
  struct proto_state o;
  assert_int_equal(proto_state_parse(json, len, "n1", &o, &e), 0);
  free(json);
  assert_string_equal(o.id, "n1");
  assert_true(o.online);
  assert_string_equal(o.addr, s.addr);
  assert_int_equal(o.peer_port, 5051);
  assert_string_equal(o.arch, "arm");
  assert_string_equal(o.variant, "v6");
  assert_int_equal(o.link_mbps, 100);
  assert_true(o.free_bytes == (UINT64_C(1) << 53));
  assert_string_equal(o.version, s.version);
  assert_true(o.gateway);
  assert_true(o.ts == 1718000000);

  /* IPv6 address, empty variant, largest link. */
  struct proto_state s6 = {
      .id = "n-2", .online = true, .addr = "fd00::1%eth0", .arch = "amd64", .link_mbps = 1000000};
  assert_int_equal(proto_state_build(&s6, &json, &len, &e), 0);
  assert_int_equal(proto_state_parse(json, len, "n-2", &o, &e), 0);
  free(json);
  assert_string_equal(o.addr, "fd00::1%eth0");
  assert_string_equal(o.variant, "");
  assert_false(o.gateway);

  /* Offline builds the Last Will exactly; the LWT parses with defaults. */
  s.online = false;
  assert_int_equal(proto_state_build(&s, &json, &len, &e), 0);
  assert_string_equal(json, "{\"v\":1,\"id\":\"n1\",\"status\":\"offline\"}");
  free(json);
  const char *lwt = "{\"v\":1,\"id\":\"n1\",\"status\":\"offline\"}";
  memset(&o, 0x5a, sizeof o);
  assert_int_equal(proto_state_parse(lwt, strlen(lwt), "n1", &o, &e), 0);
  assert_false(o.online);
  assert_string_equal(o.addr, "");
  assert_string_equal(o.arch, "");
  assert_int_equal(o.peer_port, 0);
  assert_int_equal(o.link_mbps, 0);
  assert_true(o.free_bytes == 0 && o.ts == 0 && !o.gateway);

  /* NULL expected_id skips the topic comparison. */
  assert_int_equal(proto_state_parse(lwt, strlen(lwt), NULL, &o, &e), 0);
}

static void test_forward_compat(void **state) {
  (void)state;
  ep_err e = {0};
  const char *s = "{\"v\":1,\"id\":\"n1\",\"status\":\"online\",\"future\":{\"x\":[1,2,{}]},"
                  "\"addr\":\"10.0.0.1\",\"zz\":null}";
  struct proto_state o;
  assert_int_equal(proto_state_parse(s, strlen(s), "n1", &o, &e), 0);
  assert_string_equal(o.addr, "10.0.0.1");
  const char *p = "{\"epoch\":3,\"extra\":\"x\",\"parent\":null,\"id\":\"n1\",\"v\":1}";
  struct proto_parent pp;
  assert_int_equal(proto_parent_parse(p, strlen(p), "n1", &pp, &e), 0);
  assert_false(pp.has_parent);
  assert_true(pp.epoch == 3);
  const char *d = "{\"v\":1,\"id\":\"n1\",\"gen\":1,\"seq\":2,\"add\":[],\"del\":[],\"x\":1}";
  assert_int_equal(parse_str(K_DELTA, d, &e), 0);
  /* Exactly at the size limit is accepted. */
  char big[PROTO_STATE_MAX];
  const char *lwt = "{\"v\":1,\"id\":\"n1\",\"status\":\"offline\"";
  memset(big, ' ', sizeof big);
  memcpy(big, lwt, strlen(lwt));
  big[sizeof big - 1] = '}';
  assert_int_equal(parse_as(K_STATE, big, sizeof big, "n1", &e), 0);
}

static void fill_blobs(struct proto_blob *b, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++) {
    snprintf(b[i].digest.hex, sizeof b[i].digest.hex, "%016llx%048zx", (unsigned long long)seed, i);
    b[i].size = (ep_test_xorshift(&seed) >> 11) % 100000000u;
  }
}

static void test_snapshot_roundtrip(void **state) {
  (void)state;
  ep_err e = {0};
  char *json = NULL;
  size_t len = 0;
  struct proto_inventory o;

  struct proto_inventory empty = {.id = "n1", .snapshot = true, .gen = 7, .seq = 0};
  assert_int_equal(proto_inventory_build(&empty, &json, &len, &e), 0);
  assert_string_equal(json, "{\"v\":1,\"id\":\"n1\",\"gen\":7,\"seq\":0,\"blobs\":[]}");
  assert_int_equal(proto_inventory_parse(json, len, "n1", true, &o, &e), 0);
  free(json);
  assert_int_equal(o.nadd, 0);
  assert_null(o.add);
  proto_inventory_clear(&o);

  /* ~24k blobs with 8-digit sizes fit the 2 MiB limit. */
  size_t n = 24000;
  struct proto_blob *b = calloc(n, sizeof *b);
  assert_non_null(b);
  fill_blobs(b, n, 99);
  for (size_t i = 0; i < n; i++)
    b[i].size = 10000000 + i;
  struct proto_inventory inv = {
      .id = "n1", .snapshot = true, .gen = 1718000000123ull, .seq = 42, .add = b, .nadd = n};
  assert_int_equal(proto_inventory_build(&inv, &json, &len, &e), 0);
  assert_true(len <= PROTO_INVENTORY_MAX);
  assert_int_equal(proto_inventory_parse(json, len, "n1", true, &o, &e), 0);
  free(json);
  assert_true(o.snapshot);
  assert_true(o.gen == inv.gen && o.seq == 42);
  assert_int_equal(o.nadd, n);
  assert_int_equal(o.ndel, 0);
  for (size_t i = 0; i < n; i++) {
    assert_true(digest_equal(&o.add[i].digest, &b[i].digest));
    assert_true(o.add[i].size == b[i].size);
  }
  proto_inventory_clear(&o);
  assert_null(o.add);
  proto_inventory_clear(&o); /* idempotent */

  /* One that does not fit is refused by the builder, not truncated. */
  struct proto_blob *big = calloc(27000, sizeof *big);
  assert_non_null(big);
  fill_blobs(big, 27000, 5);
  inv.add = big;
  inv.nadd = 27000;
  json = NULL;
  assert_int_equal(proto_inventory_build(&inv, &json, &len, &e), -EP_ETOOBIG);
  assert_null(json);
  free(big);
  free(b);
}

static void test_delta_roundtrip(void **state) {
  (void)state;
  ep_err e = {0};
  char *json = NULL;
  size_t len = 0;
  struct proto_blob add[2] = {{.size = 0}, {.size = 123456789}};
  digest_t del[2];
  assert_int_equal(digest_parse(DA, &add[0].digest, &e), 0);
  assert_int_equal(digest_parse(DB, &add[1].digest, &e), 0);
  assert_int_equal(digest_parse(DC, &del[0], &e), 0);
  assert_int_equal(digest_parse_hex("0123456789abcdef0123456789abcdef"
                                    "0123456789abcdef0123456789abcdef",
                                    &del[1], &e),
                   0);
  struct proto_inventory inv = {
      .id = "n1", .gen = 3, .seq = 9, .add = add, .nadd = 2, .del = del, .ndel = 2};
  assert_int_equal(proto_inventory_build(&inv, &json, &len, &e), 0);
  struct proto_inventory o;
  assert_int_equal(proto_inventory_parse(json, len, "n1", false, &o, &e), 0);
  /* The same bytes are not a snapshot (no "blobs"). */
  struct proto_inventory o2;
  assert_int_equal(proto_inventory_parse(json, len, "n1", true, &o2, &e), -EP_EINVAL);
  free(json);
  assert_false(o.snapshot);
  assert_true(o.gen == 3 && o.seq == 9);
  assert_int_equal(o.nadd, 2);
  assert_int_equal(o.ndel, 2);
  assert_true(digest_equal(&o.add[1].digest, &add[1].digest));
  assert_true(o.add[1].size == 123456789);
  assert_true(digest_equal(&o.del[0], &del[0]));
  assert_true(digest_equal(&o.del[1], &del[1]));
  proto_inventory_clear(&o);

  /* A full delta: 512 entries fit 64 KiB; 513 are refused both ways. */
  struct proto_blob *b = calloc(513, sizeof *b);
  assert_non_null(b);
  fill_blobs(b, 513, 17);
  struct proto_inventory full = {.id = "n1", .gen = 1, .seq = 1, .add = b, .nadd = 512};
  assert_int_equal(proto_inventory_build(&full, &json, &len, &e), 0);
  assert_true(len <= PROTO_DELTA_MAX);
  assert_int_equal(proto_inventory_parse(json, len, "n1", false, &o, &e), 0);
  assert_int_equal(o.nadd, 512);
  proto_inventory_clear(&o);
  free(json);
  full.nadd = 513;
  assert_int_equal(proto_inventory_build(&full, &json, &len, &e), -EP_ETOOBIG);
  full.nadd = 511;
  full.del = del;
  full.ndel = 2;
  assert_int_equal(proto_inventory_build(&full, &json, &len, &e), -EP_ETOOBIG);
  free(b);
}

static void test_delta_513(void **state) {
  (void)state;
  /* Hand-made, under the byte limit, one entry over the count limit. */
  size_t cap = PROTO_DELTA_MAX;
  char *s = malloc(cap);
  assert_non_null(s);
  size_t o = (size_t)snprintf(s, cap, "{\"v\":1,\"id\":\"n1\",\"gen\":1,\"seq\":1,\"add\":[");
  for (int i = 0; i < 513; i++)
    o += (size_t)snprintf(s + o, cap - o, "%s[\"sha256:%064x\",1]", i ? "," : "", i);
  o += (size_t)snprintf(s + o, cap - o, "],\"del\":[]}");
  assert_true(o < cap);
  ep_err e = {0};
  assert_int_equal(parse_as(K_DELTA, s, o, "n1", &e), -EP_ETOOBIG);
  /* 256 added + 257 deleted is also 513. */
  o = (size_t)snprintf(s, cap, "{\"v\":1,\"id\":\"n1\",\"gen\":1,\"seq\":1,\"add\":[");
  for (int i = 0; i < 256; i++)
    o += (size_t)snprintf(s + o, cap - o, "%s[\"sha256:%064x\",1]", i ? "," : "", i);
  o += (size_t)snprintf(s + o, cap - o, "],\"del\":[");
  for (int i = 0; i < 257; i++)
    o += (size_t)snprintf(s + o, cap - o, "%s\"sha256:%064x\"", i ? "," : "", 1000 + i);
  o += (size_t)snprintf(s + o, cap - o, "]}");
  assert_int_equal(parse_as(K_DELTA, s, o, "n1", &e), -EP_ETOOBIG);
  free(s);
}

static void test_parent_roundtrip(void **state) {
  (void)state;
  ep_err e = {0};
  char *json = NULL;
  size_t len = 0;
  struct proto_parent p = parent_full;
  assert_int_equal(proto_parent_build(&p, &json, &len, &e), 0);
  struct proto_parent o;
  assert_int_equal(proto_parent_parse(json, len, "n1", &o, &e), 0);
  assert_int_equal(proto_parent_parse(json, len, "n4", &o, &e), -EP_EINVAL);
  free(json);
  assert_true(o.has_parent);
  assert_string_equal(o.id, "n1");
  assert_string_equal(o.parent, "gw");
  assert_string_equal(o.addr, "198.18.0.1");
  assert_int_equal(o.peer_port, 65535);
  assert_true(o.epoch == (UINT64_C(1) << 53));

  struct proto_parent root = {.id = "gw", .epoch = 1};
  assert_int_equal(proto_parent_build(&root, &json, &len, &e), 0);
  assert_string_equal(json, "{\"v\":1,\"id\":\"gw\",\"parent\":null,\"epoch\":1}");
  assert_int_equal(proto_parent_parse(json, len, "gw", &o, &e), 0);
  free(json);
  assert_false(o.has_parent);
  assert_string_equal(o.parent, "");
  assert_true(o.epoch == 1);
}

static void test_build_rejects(void **state) {
  (void)state;
  ep_err e = {0};
  char *json = NULL;
  size_t len = 0;
  struct proto_state s = {.id = "n1", .online = true, .addr = "10.0.0.1"};
  strcpy(s.id, "n/1");
  assert_int_equal(proto_state_build(&s, &json, &len, &e), -EP_EINVAL);
  strcpy(s.id, "n1");
  strcpy(s.addr, "a b");
  assert_int_equal(proto_state_build(&s, &json, &len, &e), -EP_EINVAL);
  strcpy(s.addr, "10.0.0.1");
  memset(s.version, 'x', sizeof s.version); /* unterminated */
  assert_int_equal(proto_state_build(&s, &json, &len, &e), -EP_EINVAL);
  s.version[0] = '\0';
  s.link_mbps = 1000001;
  assert_int_equal(proto_state_build(&s, &json, &len, &e), -EP_EINVAL);
  s.link_mbps = 1;
  s.free_bytes = (UINT64_C(1) << 53) + 1;
  assert_int_equal(proto_state_build(&s, &json, &len, &e), -EP_EINVAL);
  s.free_bytes = 0;
  s.ts = -1;
  assert_int_equal(proto_state_build(&s, &json, &len, &e), -EP_EINVAL);
  strcpy(s.arch, "ARM");
  s.ts = 0;
  assert_int_equal(proto_state_build(&s, &json, &len, &e), -EP_EINVAL);

  struct proto_blob b = {.size = 1};
  memset(b.digest.hex, 'A', DIGEST_HEX_LEN);
  b.digest.hex[DIGEST_HEX_LEN] = '\0';
  struct proto_inventory inv = {.id = "n1", .snapshot = true, .add = &b, .nadd = 1};
  assert_int_equal(proto_inventory_build(&inv, &json, &len, &e), -EP_EINVAL);
  memset(b.digest.hex, 'a', DIGEST_HEX_LEN);
  b.size = (UINT64_C(1) << 53) + 1;
  assert_int_equal(proto_inventory_build(&inv, &json, &len, &e), -EP_EINVAL);
  b.size = 1;
  digest_t d = b.digest;
  inv.del = &d;
  inv.ndel = 1;
  assert_int_equal(proto_inventory_build(&inv, &json, &len, &e), -EP_EINVAL);
  inv.del = NULL;
  inv.snapshot = false;
  assert_int_equal(proto_inventory_build(&inv, &json, &len, &e), -EP_EINVAL);
  inv.ndel = 0;
  inv.gen = (UINT64_C(1) << 53) + 1;
  assert_int_equal(proto_inventory_build(&inv, &json, &len, &e), -EP_EINVAL);

  struct proto_parent p = {.id = "n1", .has_parent = true, .parent = "n1", .addr = "h"};
  assert_int_equal(proto_parent_build(&p, &json, &len, &e), -EP_EINVAL);
  strcpy(p.parent, "gw");
  p.addr[0] = '\0';
  assert_int_equal(proto_parent_build(&p, &json, &len, &e), -EP_EINVAL);
  strcpy(p.addr, "h");
  strcpy(p.parent, "g+w");
  assert_int_equal(proto_parent_build(&p, &json, &len, &e), -EP_EINVAL);
  strcpy(p.parent, "gw");
  p.epoch = UINT64_MAX;
  assert_int_equal(proto_parent_build(&p, &json, &len, &e), -EP_EINVAL);
  assert_null(json);
}

/* ---- hostile payloads ---------------------------------------------------- */

struct hostile {
  enum kind kind;
  const char *json;
  int code; /* positive EP_E* */
};

#define ST "{\"v\":1,\"id\":\"n1\",\"status\":\"online\""
#define SN "{\"v\":1,\"id\":\"n1\",\"gen\":1,\"seq\":1"
#define PA "{\"v\":1,\"id\":\"n1\",\"epoch\":1"

static const struct hostile hostile[] = {
    {K_STATE, "", EP_EINVAL},
    {K_STATE, ST, EP_EINVAL}, /* truncated */
    {K_STATE, "{\"v\":1,\"id\":\"n", EP_EINVAL},
    {K_STATE, "[1,2]", EP_EINVAL},
    {K_STATE, "null", EP_EINVAL},
    {K_STATE, "\"v\"", EP_EINVAL},
    {K_STATE, ST "} {}", EP_EINVAL}, /* trailing garbage */
    {K_STATE, "{\"v\":2,\"id\":\"n1\",\"status\":\"online\"}", EP_EUNSUPPORTED},
    {K_STATE, "{\"v\":0,\"id\":\"n1\",\"status\":\"online\"}", EP_EUNSUPPORTED},
    {K_STATE, "{\"v\":-1}", EP_EUNSUPPORTED},
    {K_STATE, "{\"v\":\"1\",\"id\":\"n1\",\"status\":\"online\"}", EP_EINVAL},
    {K_STATE, "{\"v\":1.0,\"id\":\"n1\",\"status\":\"online\"}", EP_EINVAL},
    {K_STATE, "{\"v\":true,\"id\":\"n1\",\"status\":\"online\"}", EP_EINVAL},
    {K_STATE, "{\"v\":18446744073709551617,\"id\":\"n1\"}", EP_EINVAL},
    {K_STATE, "{\"v\":1e400,\"id\":\"n1\"}", EP_EINVAL},
    {K_STATE, "{\"id\":\"n1\",\"status\":\"online\"}", EP_EINVAL},
    {K_STATE, "{\"v\":1,\"status\":\"online\"}", EP_EINVAL}, /* missing id */
    {K_STATE, "{\"v\":1,\"id\":\"n2\",\"status\":\"online\"}", EP_EINVAL},
    {K_STATE, "{\"v\":1,\"id\":\"\",\"status\":\"online\"}", EP_EINVAL},
    {K_STATE, "{\"v\":1,\"id\":\"n/1\",\"status\":\"online\"}", EP_EINVAL},
    {K_STATE, "{\"v\":1,\"id\":7,\"status\":\"online\"}", EP_EINVAL},
    {K_STATE, "{\"v\":1,\"id\":\"n1\",\"id\":\"n1\",\"status\":\"online\"}", EP_EINVAL},
    {K_STATE, "{\"v\":1,\"v\":1,\"id\":\"n1\",\"status\":\"online\"}", EP_EINVAL},
    {K_STATE, "{\"v\":1,\"id\":\"n1\"}", EP_EINVAL}, /* no status */
    {K_STATE, "{\"v\":1,\"id\":\"n1\",\"status\":\"sleeping\"}", EP_EINVAL},
    {K_STATE, "{\"v\":1,\"id\":\"n1\",\"status\":true}", EP_EINVAL},
    {K_STATE, "{\"v\":1,\"id\":\"n1\",\"status\":\"online-but-very-long\"}", EP_EINVAL},
    {K_STATE, ST ",\"peer_port\":65536}", EP_EINVAL},
    {K_STATE, ST ",\"peer_port\":-1}", EP_EINVAL},
    {K_STATE, ST ",\"peer_port\":\"80\"}", EP_EINVAL},
    {K_STATE, ST ",\"link_mbps\":1000001}", EP_EINVAL},
    {K_STATE, ST ",\"free_bytes\":9007199254740993}", EP_EINVAL},
    {K_STATE, ST ",\"free_bytes\":-5}", EP_EINVAL},
    {K_STATE, ST ",\"free_bytes\":1e9}", EP_EINVAL},
    {K_STATE, ST ",\"free_bytes\":99999999999999999999999999}", EP_EINVAL},
    {K_STATE, ST ",\"free_bytes\":null}", EP_EINVAL},
    {K_STATE, ST ",\"ts\":\"now\"}", EP_EINVAL},
    {K_STATE, ST ",\"ts\":-1}", EP_EINVAL},
    {K_STATE, ST ",\"gateway\":\"yes\"}", EP_EINVAL},
    {K_STATE, ST ",\"gateway\":1}", EP_EINVAL},
    {K_STATE, ST ",\"addr\":\"1234567890123456789012345678901234567890123456789012345678901234\"}",
     EP_EINVAL},
    {K_STATE, ST ",\"addr\":\"a b\"}", EP_EINVAL},
    {K_STATE, ST ",\"addr\":\"http://x/\"}", EP_EINVAL},
    {K_STATE, ST ",\"addr\":[\"10.0.0.1\"]}", EP_EINVAL},
    {K_STATE, ST ",\"arch\":\"abcdefghijklmnop\"}", EP_EINVAL},
    {K_STATE, ST ",\"arch\":\"x86 64\"}", EP_EINVAL},
    {K_STATE, ST ",\"variant\":\"v7xxxxxx\"}", EP_EINVAL},
    {K_STATE, ST ",\"version\":\"123456789012345678901234567890123\"}", EP_EINVAL},
    {K_STATE, ST ",\"version\":\"1.0\\n<3>forged log line\"}", EP_EINVAL},
    {K_STATE, ST ",\"addr\":\"a\\u0000b\"}", EP_EINVAL},
    {K_STATE, ST ",\"addr\":\"a\x01\"}", EP_EINVAL},
    {K_STATE, ST ",\"version\":\"\xff\xfe\"}", EP_EINVAL},
    {K_STATE, ST ",\"version\":\"\\ud800\"}", EP_EINVAL},
    {K_SNAP, SN "}", EP_EINVAL}, /* no blobs */
    {K_SNAP, SN ",\"blobs\":{}}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":null}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[\"" DA "\"]}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[[\"" DA "\"]]}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[[\"" DA "\",1,2]]}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[[1,\"" DA "\"]]}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[[\"sha256:xyz\",1]]}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[[\"sha256:" HEXA "a\",1]]}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[[\"SHA256:" HEXA "\",1]]}", EP_EINVAL},
    {K_SNAP,
     SN ",\"blobs\":[[\"sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "\",1]]}",
     EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[[\"sha512:" HEXA HEXA "\",1]]}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[[\"" HEXA "\",1]]}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[[\"sha256:../../../../etc/passwd\",1]]}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[[\"" DA "\",-1]]}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[[\"" DA "\",\"1\"]]}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[[\"" DA "\",1.5]]}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[[\"" DA "\",9007199254740993]]}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[[\"" DA "\",1],[\"" DA "\",1]]}", EP_EINVAL},
    {K_SNAP, SN ",\"blobs\":[[\"" DA "\",1],[\"" DB "\",1],7]}", EP_EINVAL},
    {K_SNAP, "{\"v\":1,\"id\":\"n1\",\"seq\":1,\"blobs\":[]}", EP_EINVAL},
    {K_SNAP, "{\"v\":1,\"id\":\"n1\",\"gen\":1,\"seq\":-1,\"blobs\":[]}", EP_EINVAL},
    {K_SNAP, "{\"v\":1,\"id\":\"n1\",\"gen\":\"1\",\"seq\":1,\"blobs\":[]}", EP_EINVAL},
    {K_SNAP, "{\"v\":2,\"id\":\"n1\",\"gen\":1,\"seq\":1,\"blobs\":[]}", EP_EUNSUPPORTED},
    {K_SNAP, "{\"v\":1,\"id\":\"other\",\"gen\":1,\"seq\":1,\"blobs\":[]}", EP_EINVAL},
    {K_DELTA, SN ",\"add\":[]}", EP_EINVAL}, /* no del */
    {K_DELTA, SN ",\"del\":[]}", EP_EINVAL}, /* no add */
    {K_DELTA, SN ",\"blobs\":[]}", EP_EINVAL},
    {K_DELTA, SN ",\"add\":[],\"del\":[[\"" DA "\",1]]}", EP_EINVAL},
    {K_DELTA, SN ",\"add\":[],\"del\":[1]}", EP_EINVAL},
    {K_DELTA, SN ",\"add\":[[\"" DA "\",1]],\"del\":[\"" DA "\"]}", EP_EINVAL},
    {K_DELTA, SN ",\"add\":[],\"del\":[\"" DB "\",\"" DB "\"]}", EP_EINVAL},
    {K_DELTA, SN ",\"add\":[],\"del\":[],\"del\":[]}", EP_EINVAL},
    {K_DELTA, "{\"v\":2,\"id\":\"n1\",\"gen\":1,\"seq\":1,\"add\":[],\"del\":[]}", EP_EUNSUPPORTED},
    {K_PARENT, PA "}", EP_EINVAL}, /* no parent */
    {K_PARENT, PA ",\"parent\":5}", EP_EINVAL},
    {K_PARENT, PA ",\"parent\":\"a/b\",\"addr\":\"h\",\"peer_port\":1}", EP_EINVAL},
    {K_PARENT, PA ",\"parent\":\"\",\"addr\":\"h\",\"peer_port\":1}", EP_EINVAL},
    {K_PARENT, PA ",\"parent\":\"n1\",\"addr\":\"h\",\"peer_port\":1}", EP_EINVAL},
    {K_PARENT, PA ",\"parent\":\"gw\",\"peer_port\":1}", EP_EINVAL},
    {K_PARENT, PA ",\"parent\":\"gw\",\"addr\":\"h\"}", EP_EINVAL},
    {K_PARENT, PA ",\"parent\":\"gw\",\"addr\":\"\",\"peer_port\":1}", EP_EINVAL},
    {K_PARENT, PA ",\"parent\":\"gw\",\"addr\":\"h\",\"peer_port\":70000}", EP_EINVAL},
    {K_PARENT, "{\"v\":1,\"id\":\"n1\",\"parent\":null}", EP_EINVAL},
    {K_PARENT, "{\"v\":1,\"id\":\"n1\",\"parent\":null,\"epoch\":-1}", EP_EINVAL},
    {K_PARENT, "{\"v\":1,\"id\":\"n1\",\"parent\":null,\"epoch\":1.5}", EP_EINVAL},
    {K_PARENT, "{\"v\":2,\"id\":\"n1\",\"parent\":null,\"epoch\":1}", EP_EUNSUPPORTED},
    {K_PARENT, "{\"v\":1,\"id\":\"n9\",\"parent\":null,\"epoch\":1}", EP_EINVAL},
};

static void test_hostile_payloads(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
    ep_err e = {0};
    int r = parse_str(hostile[i].kind, hostile[i].json, &e);
    if (r != -hostile[i].code)
      fail_msg("hostile %zu (%s) gave %d, want %d: %s", i, hostile[i].json, r, -hostile[i].code,
               e.msg);
    /* Messages quote input escaped: no control characters reach a log. */
    for (const char *p = e.msg; *p != '\0'; p++)
      assert_true((unsigned char)*p >= 0x20);
  }
}

static void test_nul_bytes(void **state) {
  (void)state;
  ep_err e = {0};
  static const char lwt[] = "{\"v\":1,\"id\":\"n1\",\"status\":\"offline\"}";
  char buf[sizeof lwt + 1];
  /* A raw NUL inside a string, between tokens, and after the object. */
  size_t at[] = {14, 6, sizeof lwt - 1};
  for (size_t i = 0; i < 3; i++) {
    memcpy(buf, lwt, sizeof lwt - 1);
    memmove(buf + at[i] + 1, buf + at[i], sizeof lwt - 1 - at[i]);
    buf[at[i]] = '\0';
    assert_int_equal(parse_as(K_STATE, buf, sizeof lwt, "n1", &e), -EP_EINVAL);
    assert_non_null(strstr(e.msg, "NUL"));
  }
  /* The expected id is compared whole: "n1\0x" is not "n1x". */
  assert_int_equal(parse_as(K_STATE, lwt, sizeof lwt - 1, "n1x", &e), -EP_EINVAL);
  /* NULL buffer. */
  struct proto_state s;
  assert_int_equal(proto_state_parse(NULL, 5, "n1", &s, &e), -EP_EINVAL);
  assert_int_equal(proto_state_parse(NULL, 0, "n1", &s, &e), -EP_EINVAL);
}

static char *nested(size_t depth, const char *prefix, const char *suffix, size_t *len) {
  size_t pl = strlen(prefix);
  size_t sl = strlen(suffix);
  char *s = malloc(pl + 2 * depth + sl + 1);
  assert_non_null(s);
  memcpy(s, prefix, pl);
  memset(s + pl, '[', depth);
  memset(s + pl + depth, ']', depth);
  memcpy(s + pl + 2 * depth, suffix, sl + 1);
  *len = pl + 2 * depth + sl;
  return s;
}

static void test_deep_nesting(void **state) {
  (void)state;
  ep_err e = {0};
  size_t len;
  /* 10000 deep: jansson stops at JSON_PARSER_MAX_DEPTH (2048) with an
   * error, no stack exhaustion. The snapshot limit lets it reach the
   * parser; the state limit refuses it before. */
  char *s = nested(10000, "", "", &len);
  assert_int_equal(parse_as(K_SNAP, s, len, "n1", &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "depth"));
  assert_int_equal(parse_as(K_STATE, s, len, "n1", &e), -EP_ETOOBIG);
  free(s);
  s = nested(10000, SN ",\"blobs\":[],\"x\":", "}", &len);
  assert_int_equal(parse_as(K_SNAP, s, len, "n1", &e), -EP_EINVAL);
  free(s);
  s = nested(10000, SN ",\"blobs\":", "}", &len);
  assert_int_equal(parse_as(K_SNAP, s, len, "n1", &e), -EP_EINVAL);
  free(s);
  /* Shallow nesting in an ignored field is fine. */
  s = nested(100, SN ",\"blobs\":[],\"x\":", "}", &len);
  assert_int_equal(parse_as(K_SNAP, s, len, "n1", &e), 0);
  free(s);
  /* Nested inside a blob entry is a type error. */
  s = nested(50, SN ",\"blobs\":", "}", &len);
  assert_int_equal(parse_as(K_SNAP, s, len, "n1", &e), -EP_EINVAL);
  free(s);
}

static void test_oversized(void **state) {
  (void)state;
  ep_err e = {0};
  size_t n = 3 * 1024 * 1024;
  char *s = malloc(n);
  assert_non_null(s);
  /* A syntactically valid 3 MB snapshot: refused before parsing. */
  size_t o = (size_t)snprintf(s, n, SN ",\"blobs\":[],\"pad\":\"");
  memset(s + o, 'x', n - o - 2);
  memcpy(s + n - 2, "\"}", 2);
  for (int k = K_STATE; k <= K_PARENT; k++) {
    assert_int_equal(parse_as((enum kind)k, s, n, "n1", &e), -EP_ETOOBIG);
    assert_non_null(strstr(e.msg, "limit"));
  }
  /* Each kind's limit, one byte over. */
  static const struct {
    enum kind k;
    size_t max;
  } lim[] = {{K_STATE, PROTO_STATE_MAX},
             {K_SNAP, PROTO_INVENTORY_MAX},
             {K_DELTA, PROTO_DELTA_MAX},
             {K_PARENT, PROTO_PARENT_MAX}};
  for (size_t i = 0; i < 4; i++)
    assert_int_equal(parse_as(lim[i].k, s, lim[i].max + 1, "n1", &e), -EP_ETOOBIG);
  free(s);

  /* Strings too long for their buffers but within the payload limit. */
  char st[2048];
  snprintf(st, sizeof st, ST ",\"version\":\"%01000d\"}", 0);
  assert_int_equal(parse_str(K_STATE, st, &e), -EP_EINVAL);
  snprintf(st, sizeof st, "{\"v\":1,\"id\":\"%0100d\",\"status\":\"online\"}", 0);
  assert_int_equal(parse_as(K_STATE, st, strlen(st), NULL, &e), -EP_EINVAL);
  snprintf(st, sizeof st, PA ",\"parent\":\"%064d\",\"addr\":\"h\",\"peer_port\":1}", 0);
  assert_int_equal(parse_str(K_PARENT, st, &e), -EP_EINVAL);
}

/* ---- mutation fuzzing ---------------------------------------------------- */

static size_t mutate(const char *src, size_t n, char *dst, size_t cap, uint64_t *rng) {
  static const char interesting[] = "{}[]\",:0123456789-.eE\\ntrufalsn\x00\xff/ +#";
  memcpy(dst, src, n);
  int ops = 1 + (int)(ep_test_xorshift(rng) % 4);
  for (int k = 0; k < ops && n > 0; k++) {
    size_t pos = (size_t)(ep_test_xorshift(rng) % n);
    size_t span = 1 + (size_t)(ep_test_xorshift(rng) % 16);
    switch (ep_test_xorshift(rng) % 7) {
    case 0: /* random byte */
      dst[pos] = (char)ep_test_xorshift(rng);
      break;
    case 1: /* JSON-significant byte */
      dst[pos] = interesting[ep_test_xorshift(rng) % (sizeof interesting - 1)];
      break;
    case 2: /* delete a span */
      if (pos + span > n)
        span = n - pos;
      memmove(dst + pos, dst + pos + span, n - pos - span);
      n -= span;
      break;
    case 3: /* insert a byte */
      if (n + 1 <= cap) {
        memmove(dst + pos + 1, dst + pos, n - pos);
        dst[pos] = interesting[ep_test_xorshift(rng) % (sizeof interesting - 1)];
        n++;
      }
      break;
    case 4: /* duplicate a span (duplicate keys, repeated entries) */
      if (pos + span > n)
        span = n - pos;
      if (n + span <= cap) {
        memmove(dst + pos + span, dst + pos, n - pos);
        n += span;
      }
      break;
    case 5: /* truncate */
      n = pos;
      break;
    default: /* digit runs: huge numbers */
      for (size_t i = 0; i < span && pos + i < n; i++)
        dst[pos + i] = (char)('0' + ep_test_xorshift(rng) % 10);
      break;
    }
  }
  return n;
}

static void test_fuzz_mutations(void **state) {
  (void)state;
  ep_err e = {0};
  char *seeds[6];
  size_t lens[6];
  struct proto_state s = state_full;
  assert_int_equal(proto_state_build(&s, &seeds[0], &lens[0], &e), 0);
  s.online = false;
  assert_int_equal(proto_state_build(&s, &seeds[1], &lens[1], &e), 0);
  struct proto_blob b[3];
  fill_blobs(b, 3, 3);
  digest_t d[2] = {b[0].digest, b[1].digest};
  d[0].hex[0] = 'f';
  d[1].hex[0] = 'e';
  struct proto_inventory snap = {
      .id = "n1", .snapshot = true, .gen = 5, .seq = 6, .add = b, .nadd = 3};
  assert_int_equal(proto_inventory_build(&snap, &seeds[2], &lens[2], &e), 0);
  struct proto_inventory delta = {
      .id = "n1", .gen = 5, .seq = 7, .add = b, .nadd = 2, .del = d, .ndel = 2};
  assert_int_equal(proto_inventory_build(&delta, &seeds[3], &lens[3], &e), 0);
  struct proto_parent p = parent_full;
  assert_int_equal(proto_parent_build(&p, &seeds[4], &lens[4], &e), 0);
  p.has_parent = false;
  assert_int_equal(proto_parent_build(&p, &seeds[5], &lens[5], &e), 0);

  uint64_t rng = 0x9e3779b97f4a7c15ull;
  char buf[2048];
  int ok = 0;
  int total = 0;
  for (int round = 0; round < 800; round++) {
    for (size_t i = 0; i < 6; i++) {
      assert_true(lens[i] * 2 < sizeof buf);
      size_t n = mutate(seeds[i], lens[i], buf, sizeof buf, &rng);
      for (int k = K_STATE; k <= K_PARENT; k++) {
        ep_err fe = {0};
        int r = parse_as((enum kind)k, buf, n, (round & 1) ? "n1" : NULL, &fe);
        assert_true(r == 0 || r == -EP_EINVAL || r == -EP_EUNSUPPORTED || r == -EP_ETOOBIG);
        ok += r == 0;
        total++;
      }
    }
  }
  print_message("fuzz: %d parses, %d accepted\n", total, ok);
  assert_true(ok > 0);
  for (size_t i = 0; i < 6; i++)
    free(seeds[i]);
}

/* ---- deploy, progress, report ---- */

#define DID "0123456789abcdef"

static void test_deploy_topics(void **state) {
  (void)state;
  char buf[PROTO_TOPIC_MAX];
  ep_err e = {0};
  struct proto_topic t;
  assert_int_equal(proto_deploy_topic("site1", buf, sizeof buf, &e), 0);
  assert_string_equal(buf, "edgepull/v1/site1/deploy");
  assert_int_equal(proto_topic_parse(buf, &t, &e), 0);
  assert_int_equal(t.kind, PROTO_T_DEPLOY);
  assert_string_equal(t.locality, "site1");
  assert_string_equal(t.node, "");
  assert_int_equal(proto_progress_topic("site1", DID, "n1", buf, sizeof buf, &e), 0);
  assert_string_equal(buf, "edgepull/v1/site1/deploy/" DID "/progress/n1");
  assert_int_equal(proto_topic_parse(buf, &t, &e), 0);
  assert_int_equal(t.kind, PROTO_T_PROGRESS);
  assert_string_equal(t.deploy, DID);
  assert_string_equal(t.node, "n1");
  assert_int_equal(proto_progress_topic("site1", DID, NULL, buf, sizeof buf, &e), 0);
  assert_string_equal(buf, "edgepull/v1/site1/deploy/" DID "/progress/+");
  assert_int_equal(proto_topic(PROTO_T_REPORT, "site1", "n2", buf, sizeof buf, &e), 0);
  assert_string_equal(buf, "edgepull/v1/site1/node/n2/report");
  assert_int_equal(proto_topic_parse(buf, &t, &e), 0);
  assert_int_equal(t.kind, PROTO_T_REPORT);
  assert_string_equal(t.node, "n2");
  /* Deploy kinds are not node topics; bad ids refused. */
  assert_int_equal(proto_topic(PROTO_T_DEPLOY, "site1", "n2", buf, sizeof buf, &e), -EP_EINVAL);
  assert_int_equal(proto_progress_topic("site1", "0123", "n1", buf, sizeof buf, &e), -EP_EINVAL);
  assert_int_equal(proto_progress_topic("site1", DID, "a/b", buf, sizeof buf, &e), -EP_EINVAL);
  assert_int_equal(proto_progress_topic("site1", DID, "n1", buf, 20, &e), -EP_ETOOBIG);
  const char *bad[] = {
      "edgepull/v1/site1/deploy/" DID,
      "edgepull/v1/site1/deploy/" DID "/progress",
      "edgepull/v1/site1/deploy/" DID "/progress/n1/x",
      "edgepull/v1/site1/deploy/0123456789ABCDEF/progress/n1",
      "edgepull/v1/site1/deploy/" DID "/status/n1",
      "edgepull/v1/site1/deploy/" DID "/progress/+",
      "edgepull/v2/site1/deploy",
      "edgepull/v1/s+1/deploy",
      "edgepull/v1/site1/node/n1/report/x",
      "edgepull/v1/site1/deploy/",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ep_err_clear(&e);
    if (proto_topic_parse(bad[i], &t, &e) != -EP_EINVAL)
      fail_msg("accepted topic %s", bad[i]);
    assert_true(e.msg[0] != '\0');
  }
}

static void test_deploy_roundtrip(void **state) {
  (void)state;
  struct proto_deploy d = {.id = DID,
                           .image = "ghcr.io/org/app:1.2@sha256:" HEXA,
                           .nplatforms = 2,
                           .import = PROTO_IMPORT_CONTAINERD,
                           .ts = 1718000000};
  snprintf(d.platforms[0], sizeof d.platforms[0], "linux/amd64");
  snprintf(d.platforms[1], sizeof d.platforms[1], "linux/arm/v7");
  char *json = NULL;
  size_t len = 0;
  ep_err e = {0};
  assert_int_equal(proto_deploy_build(&d, &json, &len, &e), 0);
  struct proto_deploy out;
  assert_int_equal(proto_deploy_parse(json, len, &out, &e), 0);
  assert_string_equal(out.id, DID);
  assert_string_equal(out.image, d.image);
  assert_int_equal(out.nplatforms, 2);
  assert_string_equal(out.platforms[1], "linux/arm/v7");
  assert_int_equal(out.import, PROTO_IMPORT_CONTAINERD);
  assert_int_equal(out.ts, 1718000000);
  free(json);
  /* Minimal: no platforms, no import. */
  const char *min = "{\"v\":1,\"id\":\"" DID "\",\"image\":\"alpine\"}";
  assert_int_equal(proto_deploy_parse(min, strlen(min), &out, &e), 0);
  assert_int_equal(out.nplatforms, 0);
  assert_int_equal(out.import, PROTO_IMPORT_NONE);
  /* Builder refusals. */
  struct proto_deploy b = d;
  snprintf(b.id, sizeof b.id, "n1");
  assert_int_equal(proto_deploy_build(&b, &json, &len, &e), -EP_EINVAL);
  b = d;
  snprintf(b.image, sizeof b.image, "has space");
  assert_int_equal(proto_deploy_build(&b, &json, &len, &e), -EP_EINVAL);
  b = d;
  snprintf(b.platforms[0], sizeof b.platforms[0], "amd64");
  assert_int_equal(proto_deploy_build(&b, &json, &len, &e), -EP_EINVAL);
  b = d;
  b.nplatforms = PROTO_PLATFORMS_MAX + 1;
  assert_int_equal(proto_deploy_build(&b, &json, &len, &e), -EP_ETOOBIG);
  enum proto_import imp;
  assert_int_equal(proto_import_parse("docker", &imp, &e), 0);
  assert_int_equal(imp, PROTO_IMPORT_DOCKER);
  assert_int_equal(proto_import_parse("podman", &imp, &e), -EP_EINVAL);
  assert_string_equal(proto_import_name(PROTO_IMPORT_NONE), "none");
}

static void test_progress_roundtrip(void **state) {
  (void)state;
  struct proto_progress p = {.id = DID,
                             .node = "gw",
                             .state = PROTO_PROGRESS_FAILED,
                             .blobs_total = 5,
                             .blobs_done = 3,
                             .bytes_total = 1000,
                             .bytes_done = 600,
                             .uplink_bytes = 600,
                             .peer_bytes = 0,
                             .error = "blob sha256:aa: upstream unreachable",
                             .ts = 7};
  char *json = NULL;
  size_t len = 0;
  ep_err e = {0};
  assert_int_equal(proto_progress_build(&p, &json, &len, &e), 0);
  struct proto_progress out;
  assert_int_equal(proto_progress_parse(json, len, DID, "gw", &out, &e), 0);
  assert_int_equal(out.state, PROTO_PROGRESS_FAILED);
  assert_int_equal(out.blobs_done, 3);
  assert_int_equal(out.bytes_done, 600);
  assert_int_equal(out.uplink_bytes, 600);
  assert_string_equal(out.error, p.error);
  /* topic mismatches */
  assert_int_equal(proto_progress_parse(json, len, DID, "n1", &out, &e), -EP_EINVAL);
  assert_int_equal(proto_progress_parse(json, len, "fedcba9876543210", "gw", &out, &e), -EP_EINVAL);
  free(json);
  struct proto_progress b = p;
  b.state = PROTO_PROGRESS_DONE; /* done with an error */
  assert_int_equal(proto_progress_build(&b, &json, &len, &e), -EP_EINVAL);
  b.error[0] = '\0';
  assert_int_equal(proto_progress_build(&b, &json, &len, &e), 0);
  assert_int_equal(proto_progress_parse(json, len, NULL, NULL, &out, &e), 0);
  assert_int_equal(out.state, PROTO_PROGRESS_DONE);
  free(json);
  b.blobs_done = 6; /* more than total */
  assert_int_equal(proto_progress_build(&b, &json, &len, &e), -EP_EINVAL);
  b = p;
  snprintf(b.error, sizeof b.error, "bell\a");
  assert_int_equal(proto_progress_build(&b, &json, &len, &e), -EP_EINVAL);
  ep_sanitize(b.error, PROTO_TEXT_MAX);
  assert_string_equal(b.error, "bell?");
}

static void test_report_roundtrip(void **state) {
  (void)state;
  struct proto_report r = {.id = "n2", .suspect = "n1", .reason = "digest mismatch", .ts = 9};
  ep_err e = {0};
  assert_int_equal(digest_parse(DC, &r.digest, &e), 0);
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(proto_report_build(&r, &json, &len, &e), 0);
  struct proto_report out;
  assert_int_equal(proto_report_parse(json, len, "n2", &out, &e), 0);
  assert_string_equal(out.suspect, "n1");
  assert_true(digest_equal(&out.digest, &r.digest));
  assert_string_equal(out.reason, "digest mismatch");
  /* Another node's topic: a forged reporter id. */
  assert_int_equal(proto_report_parse(json, len, "n3", &out, &e), -EP_EINVAL);
  free(json);
  struct proto_report b = r;
  snprintf(b.suspect, sizeof b.suspect, "n2");
  assert_int_equal(proto_report_build(&b, &json, &len, &e), -EP_EINVAL);
}

static void test_deploy_hostile(void **state) {
  (void)state;
  static const char *const deploys[] = {
      "{\"v\":1,\"id\":\"" DID "\"}",
      "{\"v\":1,\"id\":\"n1\",\"image\":\"alpine\"}",
      "{\"v\":1,\"id\":\"" DID "\",\"image\":\"\"}",
      "{\"v\":1,\"id\":\"" DID "\",\"image\":\"a b\"}",
      "{\"v\":1,\"id\":\"" DID "\",\"image\":\"\\u00e9\"}",
      "{\"v\":1,\"id\":\"" DID "\",\"image\":7}",
      "{\"v\":1,\"id\":\"" DID "\",\"image\":\"alpine\",\"platforms\":\"linux/amd64\"}",
      "{\"v\":1,\"id\":\"" DID "\",\"image\":\"alpine\",\"platforms\":[1]}",
      "{\"v\":1,\"id\":\"" DID "\",\"image\":\"alpine\",\"platforms\":[\"linux//x\"]}",
      "{\"v\":1,\"id\":\"" DID "\",\"image\":\"alpine\",\"platforms\":[\"linux/a/b/c\"]}",
      "{\"v\":1,\"id\":\"" DID "\",\"image\":\"alpine\",\"import\":\"podman\"}",
      "{\"v\":1,\"id\":\"" DID "\",\"image\":\"alpine\",\"ts\":-1}",
      "{\"v\":2,\"id\":\"" DID "\",\"image\":\"alpine\"}",
      "{\"v\":1,\"id\":\"" DID "\",\"image\":\"alpine\",\"image\":\"x\"}",
  };
  ep_err e = {0};
  struct proto_deploy d;
  for (size_t i = 0; i < sizeof deploys / sizeof deploys[0]; i++) {
    ep_err_clear(&e);
    if (proto_deploy_parse(deploys[i], strlen(deploys[i]), &d, &e) >= 0)
      fail_msg("accepted deploy %s", deploys[i]);
    assert_true(e.msg[0] != '\0');
  }
  /* 17 platforms */
  char big[2048];
  size_t o = (size_t)snprintf(big, sizeof big,
                              "{\"v\":1,\"id\":\"" DID "\",\"image\":\"a\",\"platforms\":[");
  for (int i = 0; i < PROTO_PLATFORMS_MAX + 1; i++)
    o += (size_t)snprintf(big + o, sizeof big - o, "%s\"linux/amd64\"", i ? "," : "");
  o += (size_t)snprintf(big + o, sizeof big - o, "]}");
  assert_int_equal(proto_deploy_parse(big, o, &d, &e), -EP_ETOOBIG);
  /* Oversized before parsing. */
  char *huge = malloc(PROTO_DEPLOY_MAX + 2);
  assert_non_null(huge);
  memset(huge, ' ', PROTO_DEPLOY_MAX + 1);
  assert_int_equal(proto_deploy_parse(huge, PROTO_DEPLOY_MAX + 1, &d, &e), -EP_ETOOBIG);
  struct proto_progress p;
  assert_int_equal(proto_progress_parse(huge, PROTO_PROGRESS_MAX + 1, NULL, NULL, &p, &e),
                   -EP_ETOOBIG);
  struct proto_report r;
  assert_int_equal(proto_report_parse(huge, PROTO_REPORT_MAX + 1, NULL, &r, &e), -EP_ETOOBIG);
  free(huge);
  static const char *const progress[] = {
      "{\"v\":1,\"id\":\"" DID "\",\"node\":\"n1\",\"state\":\"running\"}",
      "{\"v\":1,\"id\":\"" DID "\",\"node\":\"n1\",\"state\":\"paused\",\"blobs_total\":1,"
      "\"blobs_done\":0,\"bytes_total\":1,\"bytes_done\":0}",
      "{\"v\":1,\"id\":\"" DID "\",\"node\":\"n1\",\"state\":\"running\",\"blobs_total\":1,"
      "\"blobs_done\":2,\"bytes_total\":1,\"bytes_done\":0}",
      "{\"v\":1,\"id\":\"" DID "\",\"node\":\"n1\",\"state\":\"failed\",\"blobs_total\":1,"
      "\"blobs_done\":0,\"bytes_total\":1,\"bytes_done\":0}",
      "{\"v\":1,\"id\":\"" DID "\",\"node\":\"n1\",\"state\":\"failed\",\"blobs_total\":1,"
      "\"blobs_done\":0,\"bytes_total\":1,\"bytes_done\":0,\"error\":\"\\u001b[2J\"}",
      "{\"v\":1,\"id\":\"" DID "\",\"node\":\"n1\",\"state\":\"done\",\"blobs_total\":1,"
      "\"blobs_done\":1,\"bytes_total\":1,\"bytes_done\":9007199254740993}",
      "{\"v\":1,\"id\":\"" DID "\",\"node\":\"../x\",\"state\":\"done\",\"blobs_total\":1,"
      "\"blobs_done\":1,\"bytes_total\":1,\"bytes_done\":1}",
  };
  for (size_t i = 0; i < sizeof progress / sizeof progress[0]; i++) {
    ep_err_clear(&e);
    if (proto_progress_parse(progress[i], strlen(progress[i]), NULL, NULL, &p, &e) >= 0)
      fail_msg("accepted progress %s", progress[i]);
    assert_true(e.msg[0] != '\0');
  }
  static const char *const reports[] = {
      "{\"v\":1,\"id\":\"n2\",\"suspect\":\"n1\"}",
      "{\"v\":1,\"id\":\"n2\",\"suspect\":\"n1\",\"digest\":\"sha256:abc\"}",
      "{\"v\":1,\"id\":\"n2\",\"suspect\":\"n1\",\"digest\":\"md5:" HEXA "\"}",
      "{\"v\":1,\"id\":\"n2\",\"suspect\":\"n2\",\"digest\":\"" DA "\"}",
      "{\"v\":1,\"id\":\"n2\",\"suspect\":\"\",\"digest\":\"" DA "\"}",
      "{\"v\":1,\"id\":\"n2\",\"suspect\":\"n1\",\"digest\":\"" DA "\",\"reason\":\"\\n\"}",
      "{\"v\":1,\"id\":\"n2\",\"suspect\":[],\"digest\":\"" DA "\"}",
  };
  for (size_t i = 0; i < sizeof reports / sizeof reports[0]; i++) {
    ep_err_clear(&e);
    if (proto_report_parse(reports[i], strlen(reports[i]), "n2", &r, &e) >= 0)
      fail_msg("accepted report %s", reports[i]);
    assert_true(e.msg[0] != '\0');
  }
  /* Random truncations never crash nor leak. */
  const char *good = "{\"v\":1,\"id\":\"" DID "\",\"image\":\"alpine\",\"platforms\":"
                     "[\"linux/amd64\"],\"import\":\"docker\",\"ts\":5}";
  for (size_t n = 0; n < strlen(good); n++)
    (void)proto_deploy_parse(good, n, &d, &e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_id_valid),           cmocka_unit_test(test_topic_build),
      cmocka_unit_test(test_topic_parse_good),   cmocka_unit_test(test_topic_parse_hostile),
      cmocka_unit_test(test_state_roundtrip),    cmocka_unit_test(test_forward_compat),
      cmocka_unit_test(test_snapshot_roundtrip), cmocka_unit_test(test_delta_roundtrip),
      cmocka_unit_test(test_delta_513),          cmocka_unit_test(test_parent_roundtrip),
      cmocka_unit_test(test_build_rejects),      cmocka_unit_test(test_hostile_payloads),
      cmocka_unit_test(test_nul_bytes),          cmocka_unit_test(test_deep_nesting),
      cmocka_unit_test(test_oversized),          cmocka_unit_test(test_fuzz_mutations),
      cmocka_unit_test(test_deploy_topics),      cmocka_unit_test(test_deploy_roundtrip),
      cmocka_unit_test(test_progress_roundtrip), cmocka_unit_test(test_report_roundtrip),
      cmocka_unit_test(test_deploy_hostile),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
