/* Unit tests for plugin/ref/ref.c: hostile request paths and Range headers.
 * The name, tag and host grammars it applies are common/names.c's, tested
 * in test_names.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/escape.h"
#include "plugin/ref/ref.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEX128 HEX64 HEX64
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static char *repeat(char c, size_t n) {
  char *s = malloc(n + 1);
  assert_non_null(s);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

static void assert_clean_msg(const ep_err *e) {
  for (const char *p = e->msg; *p != '\0'; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      fail_msg("control character in message: %s", e->msg);
}

struct req_case {
  const char *path;
  const char *ns;
  int rc;
  enum ref_kind kind;
  const char *registry;
  const char *name;
  const char *tag; /* NULL: by digest */
};

static void test_request_routes(void **state) {
  static const struct req_case cases[] = {
      {"/v2/", NULL, 0, REF_BASE, "docker.io", "", NULL},
      {"/v2", NULL, 0, REF_BASE, "docker.io", "", NULL},
      {"/v2/", "ghcr.io", 0, REF_BASE, "ghcr.io", "", NULL},
      {"/v2/library/alpine/manifests/3.19", NULL, 0, REF_MANIFEST, "docker.io", "library/alpine",
       "3.19"},
      {"/v2/alpine/manifests/latest", NULL, 0, REF_MANIFEST, "docker.io", "library/alpine",
       "latest"},
      {"/v2/alpine/manifests/latest", "docker.io", 0, REF_MANIFEST, "docker.io", "library/alpine",
       "latest"},
      {"/v2/alpine/manifests/latest", "ghcr.io", 0, REF_MANIFEST, "ghcr.io", "alpine", "latest"},
      {"/v2/alpine/manifests/latest", "GHCR.IO", 0, REF_MANIFEST, "ghcr.io", "alpine", "latest"},
      {"/v2/alpine/manifests/latest", "index.docker.io", 0, REF_MANIFEST, "docker.io",
       "library/alpine", "latest"},
      /* names may contain the route words */
      {"/v2/foo/blobs/manifests/latest", NULL, 0, REF_MANIFEST, "docker.io", "foo/blobs", "latest"},
      {"/v2/foo/manifests/blobs/sha256:" HEX64, NULL, 0, REF_BLOB, "docker.io", "foo/manifests",
       NULL},
      {"/v2/blobs/manifests/x", NULL, 0, REF_MANIFEST, "docker.io", "library/blobs", "x"},
      {"/v2/manifests/manifests/manifests", NULL, 0, REF_MANIFEST, "docker.io", "library/manifests",
       "manifests"},
      /* podman / CRI-O: upstream encoded in the path */
      {"/v2/ghcr.io/org/app/manifests/v1", NULL, 0, REF_MANIFEST, "ghcr.io", "org/app", "v1"},
      {"/v2/docker.io/alpine/manifests/3.19", NULL, 0, REF_MANIFEST, "docker.io", "library/alpine",
       "3.19"},
      {"/v2/docker.io/library/alpine/blobs/sha256:" HEX64, NULL, 0, REF_BLOB, "docker.io",
       "library/alpine", NULL},
      {"/v2/localhost/foo/blobs/sha256:" HEX64, NULL, 0, REF_BLOB, "localhost", "foo", NULL},
      {"/v2/localhost:5000/foo/manifests/x", NULL, 0, REF_MANIFEST, "localhost:5000", "foo", "x"},
      {"/v2/127.0.0.1:5000/a/b/manifests/x", NULL, 0, REF_MANIFEST, "127.0.0.1:5000", "a/b", "x"},
      /* HOST_PORT (issue 14 point 2): podman cannot put ':' in a path */
      {"/v2/127.0.0.1_15000/a/b/manifests/x", NULL, 0, REF_MANIFEST, "127.0.0.1:15000", "a/b", "x"},
      {"/v2/registry.local_5000/app/blobs/sha256:" HEX64, NULL, 0, REF_BLOB, "registry.local:5000",
       "app", NULL},
      {"/v2/localhost_5000/foo/manifests/x", NULL, 0, REF_MANIFEST, "localhost:5000", "foo", "x"},
      /* no '.' and not localhost: a Docker Hub name, as before */
      {"/v2/foo_5000/bar/manifests/x", NULL, 0, REF_MANIFEST, "docker.io", "foo_5000/bar", "x"},
      /* one component is never a host (Docker's rule) */
      {"/v2/foo.bar/manifests/x", NULL, 0, REF_MANIFEST, "docker.io", "library/foo.bar", "x"},
      /* with ns, the path is the plain name, dots and all */
      {"/v2/ghcr.io/x/manifests/y", "quay.io", 0, REF_MANIFEST, "quay.io", "ghcr.io/x", "y"},
      {"/v2/a/manifests/sha256:" HEX64, NULL, 0, REF_MANIFEST, "docker.io", "library/a", NULL},
      /* not pull routes */
      {"/v2/a.b_0/x/manifests/y", NULL, -EP_EINVAL, 0, NULL, NULL, NULL},     /* port 0 */
      {"/v2/a.b_65536/x/manifests/y", NULL, -EP_EINVAL, 0, NULL, NULL, NULL}, /* port too big */
      {"/v2/a.b_x/x/manifests/y", NULL, -EP_EINVAL, 0, NULL, NULL, NULL},     /* '_' in a host */
      {"/v2/foo/blobs/uploads/", NULL, -EP_ENOTFOUND, 0, NULL, NULL, NULL},
      {"/v2/foo/blobs/uploads/0f4f-uuid", NULL, -EP_ENOTFOUND, 0, NULL, NULL, NULL},
      {"/v2/foo/tags/list", NULL, -EP_ENOTFOUND, 0, NULL, NULL, NULL},
      {"/v2/_catalog", NULL, -EP_ENOTFOUND, 0, NULL, NULL, NULL},
      {"/v2/foo/referrers/sha256:" HEX64, NULL, -EP_ENOTFOUND, 0, NULL, NULL, NULL},
      {"/v3/", NULL, -EP_ENOTFOUND, 0, NULL, NULL, NULL},
      {"/", NULL, -EP_ENOTFOUND, 0, NULL, NULL, NULL},
      {"", NULL, -EP_ENOTFOUND, 0, NULL, NULL, NULL},
      {"/v2x/a/manifests/b", NULL, -EP_ENOTFOUND, 0, NULL, NULL, NULL},
      {"v2/a/manifests/b", NULL, -EP_ENOTFOUND, 0, NULL, NULL, NULL},
      {"/v2/a/manifests/b/c", NULL, -EP_ENOTFOUND, 0, NULL, NULL, NULL},
      /* malformed */
      {"/v2/foo/blobs/sha512:" HEX128, NULL, -EP_EUNSUPPORTED, 0, NULL, NULL, NULL},
      {"/v2/foo/manifests/sha512:" HEX128, NULL, -EP_EUNSUPPORTED, 0, NULL, NULL, NULL},
      {"/v2/../../etc/passwd/blobs/sha256:" HEX64, NULL, -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2/a/../../etc/blobs/sha256:" HEX64, NULL, -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2/../manifests/x", NULL, -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2/foo/blobs/sha256:xyz", NULL, -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2/foo/blobs/latest", NULL, -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2/foo/manifests/-bad", NULL, -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2/foo/manifests/", NULL, -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2/manifests/latest", NULL, -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2//a/manifests/x", NULL, -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2/a//b/manifests/x", NULL, -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2/Alpine/manifests/x", NULL, -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2/a/manifests/x", "a/b", -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2/a/manifests/x", "", -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2/a/manifests/x", "evil.com@good.com", -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2/bad_host.io/a/manifests/x", NULL, -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2/a.b:0/c/manifests/x", NULL, -EP_EINVAL, 0, NULL, NULL, NULL},
      {"/v2/a\x01"
       "b/manifests/x",
       NULL, -EP_EINVAL, 0, NULL, NULL, NULL},
  };
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    const struct req_case *c = &cases[i];
    struct ref_target t;
    ep_err e = {0};
    int r = ref_parse_request(c->path, c->ns, "docker.io", &t, &e);
    if (r != c->rc)
      fail_msg("%s (ns %s): got %d want %d (%s)", c->path, c->ns ? c->ns : "-", r, c->rc, e.msg);
    if (r < 0) {
      assert_true(e.msg[0] != '\0');
      assert_clean_msg(&e);
      continue;
    }
    if (t.kind != c->kind || strcmp(t.registry, c->registry) != 0 || strcmp(t.name, c->name) != 0)
      fail_msg("%s: got kind %d registry %s name %s", c->path, t.kind, t.registry, t.name);
    if (c->kind == REF_BASE)
      continue;
    if (c->tag != NULL) {
      assert_false(t.by_digest);
      assert_string_equal(t.tag, c->tag);
    } else {
      assert_true(t.by_digest);
      assert_string_equal(t.digest.hex, HEX64);
    }
  }
}

static void test_request_messages(void **state) {
  struct ref_target t;
  ep_err e = {0};
  (void)state;
  assert_int_equal(ref_parse_request("/v2/a/manifests/x", "bad ns/\x1b[31m", NULL, &t, &e),
                   -EP_EINVAL);
  assert_non_null(strstr(e.msg, "invalid ns"));
  assert_non_null(strstr(e.msg, "\\x1b"));
  assert_clean_msg(&e);

  assert_int_equal(ref_parse_request("/v2/a\x01"
                                     "b/manifests/x",
                                     NULL, NULL, &t, &e),
                   -EP_EINVAL);
  assert_non_null(strstr(e.msg, "a\\x01b"));
  assert_clean_msg(&e);

  assert_int_equal(ref_parse_request("/v2/a/manifests/bad\ttag", NULL, NULL, &t, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "tag"));
  assert_clean_msg(&e);

  assert_int_equal(ref_parse_request("/v2/foo/tags/list", NULL, NULL, &t, &e), -EP_ENOTFOUND);
  assert_non_null(strstr(e.msg, "not a pull route"));

  /* a huge path is refused before anything is parsed; the message stays short */
  char *big = repeat('a', 5000);
  memcpy(big, "/v2/", 4);
  assert_int_equal(ref_parse_request(big, NULL, NULL, &t, &e), -EP_EINVAL);
  free(big);
  big = repeat('\xff', 3000);
  memcpy(big, "/v2/", 4);
  memcpy(big + 2980, "/manifests/latest", 17);
  assert_int_equal(ref_parse_request(big, NULL, NULL, &t, &e), -EP_EINVAL);
  assert_true(strlen(e.msg) < 400);
  assert_clean_msg(&e);
  free(big);

  /* NULL err: the code still comes back */
  assert_int_equal(ref_parse_request("/v2/foo/blobs/sha512:" HEX128, NULL, NULL, &t, NULL),
                   -EP_EUNSUPPORTED);
  assert_int_equal(ref_parse_request(NULL, NULL, NULL, &t, NULL), -EP_EINVAL);
}

static void test_request_name_lengths(void **state) {
  char path[600];
  struct ref_target t;
  ep_err e = {0};
  (void)state;
  /* docker.io one-component names get "library/" (8 chars): 247 + 8 = 255 */
  char *n = repeat('a', 247);
  snprintf(path, sizeof path, "/v2/%s/manifests/x", n);
  assert_int_equal(ref_parse_request(path, NULL, NULL, &t, &e), 0);
  assert_int_equal(strlen(t.name), 255);
  free(n);
  n = repeat('a', 248);
  snprintf(path, sizeof path, "/v2/%s/manifests/x", n);
  assert_int_equal(ref_parse_request(path, NULL, NULL, &t, &e), -EP_EINVAL);
  assert_int_equal(ref_parse_request(path, "ghcr.io", NULL, &t, &e), 0);
  free(n);
  n = repeat('a', 256);
  snprintf(path, sizeof path, "/v2/%s/manifests/x", n);
  assert_int_equal(ref_parse_request(path, "ghcr.io", NULL, &t, &e), -EP_EINVAL);
  free(n);
  /* the tag bound */
  n = repeat('t', 129);
  snprintf(path, sizeof path, "/v2/a/manifests/%s", n);
  assert_int_equal(ref_parse_request(path, NULL, NULL, &t, &e), -EP_EINVAL);
  free(n);
}

static void test_quote(void **state) {
  char out[32];
  (void)state;
  ep_escape(out, sizeof out, "ab\x01\"\\", 5, EP_ESCAPE_QUOTE);
  assert_string_equal(out, "ab\\x01\\x22\\x5c");
  ep_escape(out, sizeof out, "0123456789012345678901234567890123456789", 40, EP_ESCAPE_QUOTE);
  assert_true(strlen(out) < sizeof out);
  assert_non_null(strstr(out, "..."));
  ep_escape(out, 4, "abcdef", 6, EP_ESCAPE_QUOTE);
  assert_true(strlen(out) < 4);
  ep_escape(out, sizeof out, NULL, 0, EP_ESCAPE_QUOTE);
  assert_string_equal(out, "(null)");
}

struct range_case {
  const char *hdr;
  uint64_t size;
  int rc;
  uint64_t first, last;
};

static void test_ranges(void **state) {
  static const struct range_case cases[] = {
      {"bytes=0-99", 1000, 0, 0, 99},
      {"bytes=500-", 1000, 0, 500, 999},
      {"bytes=-100", 1000, 0, 900, 999},
      {"bytes=-2000", 1000, 0, 0, 999},
      {"bytes=-1000", 1000, 0, 0, 999},
      {"bytes=0-5000", 1000, 0, 0, 999},
      {"bytes=999-999", 1000, 0, 999, 999},
      {"bytes=0-0", 1, 0, 0, 0},
      {"  bytes = 1-2  ", 1000, 0, 1, 2},
      {"\tbytes=1-2\t", 1000, 0, 1, 2},
      {"BYTES=1-2", 1000, 0, 1, 2},
      {"bytes=0-18446744073709551615", 10, 0, 0, 9},
      {"bytes=0-", UINT64_MAX, 0, 0, UINT64_MAX - 1},
      {"bytes=-0", 1000, -EP_ERANGE, 0, 0},
      {"bytes=1000-", 1000, -EP_ERANGE, 0, 0},
      {"bytes=1000-2000", 1000, -EP_ERANGE, 0, 0},
      {"bytes=0-", 0, -EP_ERANGE, 0, 0},
      {"bytes=-5", 0, -EP_ERANGE, 0, 0},
      {"bytes=18446744073709551615-", 1000, -EP_ERANGE, 0, 0},
      {"bytes=0-99999999999999999999999", 1000, -EP_EINVAL, 0, 0},
      {"bytes=99999999999999999999-", 1000, -EP_EINVAL, 0, 0},
      {"bytes=18446744073709551616-", 1000, -EP_EINVAL, 0, 0},
      {"bytes=-99999999999999999999999", 1000, -EP_EINVAL, 0, 0},
      {"bytes=5-3", 1000, -EP_EINVAL, 0, 0},
      {"bytes=0-1,3-4", 1000, -EP_EINVAL, 0, 0},
      {"bytes=0-1, 3-4", 1000, -EP_EINVAL, 0, 0},
      {"items=0-1", 1000, -EP_EINVAL, 0, 0},
      {"bytes=+1-2", 1000, -EP_EINVAL, 0, 0},
      {"bytes=1-+2", 1000, -EP_EINVAL, 0, 0},
      {"bytes=1 0-20", 1000, -EP_EINVAL, 0, 0},
      {"bytes=1- 2", 1000, -EP_EINVAL, 0, 0},
      {"bytes=", 1000, -EP_EINVAL, 0, 0},
      {"bytes=-", 1000, -EP_EINVAL, 0, 0},
      {"bytes", 1000, -EP_EINVAL, 0, 0},
      {"bytes 0-1", 1000, -EP_EINVAL, 0, 0},
      {"", 1000, -EP_EINVAL, 0, 0},
      {"bytes=a-b", 1000, -EP_EINVAL, 0, 0},
      {"bytes=--1", 1000, -EP_EINVAL, 0, 0},
      {"bytes=1-2-3", 1000, -EP_EINVAL, 0, 0},
      {"bytes=0x10-", 1000, -EP_EINVAL, 0, 0},
      {"bytes=-1-2", 1000, -EP_EINVAL, 0, 0},
      {"bytes=1-2\n", 1000, -EP_EINVAL, 0, 0},
      {"bytesx=1-2", 1000, -EP_EINVAL, 0, 0},
  };
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    const struct range_case *c = &cases[i];
    uint64_t a = 77, b = 77;
    ep_err e = {0};
    int r = ref_parse_range(c->hdr, c->size, &a, &b, &e);
    if (r != c->rc)
      fail_msg("\"%s\" size %llu: got %d want %d (%s)", c->hdr, (unsigned long long)c->size, r,
               c->rc, e.msg);
    if (r == 0 && (a != c->first || b != c->last))
      fail_msg("\"%s\": got %llu-%llu", c->hdr, (unsigned long long)a, (unsigned long long)b);
    if (r < 0)
      assert_clean_msg(&e);
  }
  uint64_t a, b;
  assert_int_equal(ref_parse_range(NULL, 10, &a, &b, NULL), -EP_EINVAL);
  char *huge = repeat('9', 10000);
  assert_int_equal(ref_parse_range(huge, 10, &a, &b, NULL), -EP_EINVAL);
  free(huge);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_request_routes),
      cmocka_unit_test(test_request_messages),
      cmocka_unit_test(test_request_name_lengths),
      cmocka_unit_test(test_quote),
      cmocka_unit_test(test_ranges),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
