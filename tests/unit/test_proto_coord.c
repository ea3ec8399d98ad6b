/* Unit tests for locality/proto_coord.c and the coord/gateway topic: the
 * gateway message round-trips, only the exact coord/gateway shape parses as
 * PROTO_T_GATEWAY, and hostile payloads are refused with one reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/ep_test.h"

#include "locality/proto.h"

static void test_gateway_topic(void **state) {
  (void)state;
  char t[PROTO_TOPIC_MAX];
  ep_err e = {0};
  struct proto_topic pt;
  assert_int_equal(proto_gateway_topic("site-1", t, sizeof t, &e), 0);
  assert_string_equal(t, "edgepull/v1/site-1/coord/gateway");
  assert_int_equal(proto_topic_parse(t, &pt, &e), 0);
  assert_int_equal(pt.kind, PROTO_T_GATEWAY);
  assert_string_equal(pt.locality, "site-1");
  assert_string_equal(pt.node, "");
  assert_int_equal(proto_gateway_topic("a/b", t, sizeof t, &e), -EP_EINVAL);
  assert_int_equal(proto_gateway_topic("site", t, 10, &e), -EP_ETOOBIG);
  const char *bad[] = {
      "edgepull/v1/site/coord",        "edgepull/v1/site/coord/gateway/x",
      "edgepull/v1/site/coord/gw",     "edgepull/v2/site/coord/gateway",
      "edgepull/v1/+/coord/gateway",   "edgepull/v1//coord/gateway",
      "edgepull/v1/s i/coord/gateway", "edgepull/v1/site/node/gw/gateway",
      "edgepull/v1/site/coord/parent",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ep_err_clear(&e);
    if (proto_topic_parse(bad[i], &pt, &e) != -EP_EINVAL)
      fail_msg("accepted topic %s", bad[i]);
  }
}

static void test_gateway_roundtrip(void **state) {
  (void)state;
  struct proto_gateway g = {.id = "gw.1"}, back;
  char *js = NULL;
  size_t len = 0;
  ep_err e = {0};
  assert_int_equal(proto_gateway_build(&g, &js, &len, &e), 0);
  assert_string_equal(js, "{\"v\":1,\"id\":\"gw.1\"}");
  assert_int_equal(proto_gateway_parse(js, len, &back, &e), 0);
  assert_string_equal(back.id, "gw.1");
  free(js);
  /* Fields a later v1 may add are ignored. */
  const char *ext = "{ \"id\" : \"gw\", \"v\" : 1, \"addr\": \"x\", \"epoch\": 3 }";
  assert_int_equal(proto_gateway_parse(ext, strlen(ext), &back, &e), 0);
  assert_string_equal(back.id, "gw");
  struct proto_gateway empty = {.id = ""};
  assert_int_equal(proto_gateway_build(&empty, &js, &len, &e), -EP_EINVAL);
}

static void test_gateway_hostile(void **state) {
  (void)state;
  struct proto_gateway g;
  ep_err e = {0};
  static const struct {
    const char *json;
    int code;
  } bad[] = {
      {"", -EP_EINVAL},
      {"null", -EP_EINVAL},
      {"[]", -EP_EINVAL},
      {"{\"v\":1}", -EP_EINVAL},
      {"{\"v\":2,\"id\":\"gw\"}", -EP_EUNSUPPORTED},
      {"{\"v\":\"1\",\"id\":\"gw\"}", -EP_EINVAL},
      {"{\"v\":1,\"id\":\"\"}", -EP_EINVAL},
      {"{\"v\":1,\"id\":\"g/w\"}", -EP_EINVAL},
      {"{\"v\":1,\"id\":\"+\"}", -EP_EINVAL},
      {"{\"v\":1,\"id\":7}", -EP_EINVAL},
      {"{\"v\":1,\"id\":\"gw\",\"id\":\"rogue\"}", -EP_EINVAL},
      {"{\"v\":1,\"id\":\"gw\"} x", -EP_EINVAL},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ep_err_clear(&e);
    int r = proto_gateway_parse(bad[i].json, strlen(bad[i].json), &g, &e);
    if (r != bad[i].code)
      fail_msg("payload %s gave %d, not %d", bad[i].json, r, bad[i].code);
    assert_true(e.msg[0] != '\0');
  }
  const char nul[] = "{\"v\":1,\"id\":\"gw\"}\0";
  assert_int_equal(proto_gateway_parse(nul, sizeof nul - 1, &g, &e), -EP_EINVAL);
  char big[PROTO_GATEWAY_MAX + 2];
  memset(big, ' ', sizeof big);
  memcpy(big, "{\"v\":1,\"id\":\"gw\"", 16);
  big[sizeof big - 1] = '}';
  assert_int_equal(proto_gateway_parse(big, sizeof big, &g, &e), -EP_ETOOBIG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gateway_topic),
      cmocka_unit_test(test_gateway_roundtrip),
      cmocka_unit_test(test_gateway_hostile),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
