#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "plugin/mirror/manifest.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static void test_image_manifest(void **state) {
  const char *body = "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\","
                     "\"config\":{\"digest\":\"" D1 "\",\"size\":1},"
                     "\"layers\":[{\"digest\":\"" D2 "\"},{\"digest\":\"" D3 "\"}]}";
  struct manifest_info *m = test_malloc(sizeof *m);
  ep_err e = {0};
  assert_int_equal(manifest_parse(body, strlen(body), m, &e), 0);
  assert_string_equal(m->media_type, MT_OCI_MANIFEST);
  assert_int_equal(m->nrefs, 3);
  assert_string_equal(m->refs[0].hex, D1 + 7);
  assert_string_equal(m->refs[2].hex, D3 + 7);
  test_free(m);
}

static void test_index(void **state) {
  const char *body = "{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"" D1 "\"},"
                     "{\"digest\":\"sha512:abcd\"}]}";
  struct manifest_info *m = test_malloc(sizeof *m);
  ep_err e = {0};
  assert_int_equal(manifest_parse(body, strlen(body), m, &e), 0);
  assert_string_equal(m->media_type, "");
  assert_int_equal(m->nrefs, 1); /* other algorithms are skipped */
  test_free(m);
}

static void test_hostile(void **state) {
  static const char *const bad[] = {
      "",
      "[]",
      "not json",
      "{\"layers\":{}}",
      "{\"layers\":[1]}",
      "{\"layers\":[{\"size\":1}]}",
      "{\"layers\":[{\"digest\":\"sha256:../../etc\"}]}",
      "{\"config\":{\"digest\":\"" D1 "\"},\"config\":{}}",
      "{\"manifests\":[{\"digest\":7}]}",
      "{\"a\":",
  };
  struct manifest_info *m = test_malloc(sizeof *m);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ep_err e = {0};
    assert_true(manifest_parse(bad[i], strlen(bad[i]), m, &e) < 0);
    assert_true(e.msg[0] != '\0');
  }
  /* an embedded NUL is not JSON */
  ep_err e = {0};
  assert_true(manifest_parse("{}\0{}", 5, m, &e) < 0);
  test_free(m);
}

static void test_accept(void **state) {
  assert_true(manifest_accept_allows(NULL, MT_OCI_MANIFEST));
  assert_true(manifest_accept_allows("", MT_OCI_MANIFEST));
  assert_true(manifest_accept_allows("*/*", MT_OCI_MANIFEST));
  assert_true(manifest_accept_allows(MT_DOCKER_LIST ", " MT_OCI_MANIFEST, MT_OCI_MANIFEST));
  assert_true(manifest_accept_allows(MT_OCI_MANIFEST "; q=0.5", MT_OCI_MANIFEST));
  assert_true(manifest_accept_allows("text/html; q=0.1, */*;q=0.1", MT_OCI_INDEX));
  assert_false(manifest_accept_allows(MT_DOCKER_MANIFEST, MT_DOCKER_LIST));
  assert_false(manifest_accept_allows(MT_OCI_MANIFEST "x", MT_OCI_MANIFEST));
  assert_false(manifest_accept_allows(",,, ;", MT_OCI_MANIFEST));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_image_manifest),
      cmocka_unit_test(test_index),
      cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_accept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
