/* Unit tests for the upstream registry client against an in-process fake
 * registry (libmicrohttpd on 127.0.0.1, see fake_registry.h): the registry
 * map, the Bearer and Basic flows, token caching, redirects without
 * Authorization, manifests (HEAD/GET fallback, bounds, digests), blobs with
 * Range, error mapping and hostile challenges. No network beyond loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/lib/fake_registry.h"
#include "plugin/upstream/upstream.h"
#include "plugin/upstream/upstream_int.h"

#define HOST "reg.test"
#define REPO "library/alpine"
#define BLOB_LEN 100000

static const char manifest_json[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"config\":{},\"layers\":[]}";
static const char oci_manifest[] = "application/vnd.oci.image.manifest.v1+json";

struct fx {
  struct fake reg;
  struct fake cdn;
  upstream *u;
  unsigned char blob[BLOB_LEN];
  digest_t blob_digest;
  digest_t manifest_digest;
};

static int setup(void **state) {
  struct fx *x = calloc(1, sizeof *x);
  for (size_t i = 0; i < BLOB_LEN; i++)
    x->blob[i] = (unsigned char)(i * 7 + i / 251);
  digest_buffer(x->blob, BLOB_LEN, &x->blob_digest);
  digest_buffer(manifest_json, strlen(manifest_json), &x->manifest_digest);
  struct fake *fs[] = {&x->reg, &x->cdn};
  for (int i = 0; i < 2; i++) {
    fs[i]->manifest = manifest_json;
    fs[i]->manifest_len = strlen(manifest_json);
    fs[i]->manifest_ctype = oci_manifest;
    fs[i]->head_digest = fs[i]->get_digest = true;
    fs[i]->blob = x->blob;
    fs[i]->blob_len = BLOB_LEN;
    fs[i]->honour_range = true;
    if (fake_start(fs[i]) != 0)
      return -1;
  }
  x->reg.cdn_port = x->cdn.port;
  ep_err err = {0};
  struct upstream_options o = {.connect_timeout_s = 5, .low_speed_time_s = 10};
  if (upstream_new(&o, &x->u, &err) < 0)
    return -1;
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/", x->reg.port);
  if (upstream_add_registry(x->u, HOST, url, &err) < 0)
    return -1;
  *state = x;
  return 0;
}

static int teardown(void **state) {
  struct fx *x = *state;
  upstream_free(x->u);
  fake_stop(&x->reg);
  fake_stop(&x->cdn);
  free(x);
  return 0;
}

struct sink_state {
  unsigned char *buf;
  size_t len;
  uint64_t offset, total;
  int starts;
  size_t abort_after; /* 0: never */
};

static int sink_start(void *ud, uint64_t offset, uint64_t total) {
  struct sink_state *s = ud;
  s->starts++;
  s->offset = offset;
  s->total = total;
  return 0;
}

static int sink_data(void *ud, const void *buf, size_t len) {
  struct sink_state *s = ud;
  if (s->len + len > BLOB_LEN)
    return -1;
  memcpy(s->buf + s->len, buf, len);
  s->len += len;
  return s->abort_after && s->len >= s->abort_after ? -1 : 0;
}

static int get_blob(struct fx *x, uint64_t off, struct sink_state *s, ep_err *err) {
  s->buf = malloc(BLOB_LEN);
  struct upstream_blob_sink sink = {sink_start, sink_data, s};
  return upstream_blob_get(x->u, HOST, REPO, &x->blob_digest, off, &sink, err);
}

/* ---- registry map ------------------------------------------------------ */

static void test_endpoint_map(void **state) {
  struct fx *x = *state;
  char buf[300];
  ep_err err = {0};
  assert_int_equal(upstream_endpoint(x->u, "docker.io", buf, sizeof buf, &err), 0);
  assert_string_equal(buf, "https://registry-1.docker.io");
  assert_int_equal(upstream_endpoint(x->u, "ghcr.io", buf, sizeof buf, &err), 0);
  assert_string_equal(buf, "https://ghcr.io");
  assert_int_equal(upstream_add_registry(x->u, "docker.io", "HTTP://mirror.lan:5000/", &err), 0);
  assert_int_equal(upstream_endpoint(x->u, "docker.io", buf, sizeof buf, &err), 0);
  assert_string_equal(buf, "http://mirror.lan:5000");
  assert_int_equal(upstream_endpoint(x->u, "[::1]:5000", buf, sizeof buf, &err), 0);
  assert_string_equal(buf, "https://[::1]:5000");
  assert_int_equal(upstream_endpoint(x->u, "ghcr.io", buf, 8, &err), -EP_ETOOBIG);
  assert_int_equal(upstream_endpoint(x->u, "bad host/x", buf, sizeof buf, &err), -EP_EINVAL);
}

static void test_add_registry_invalid(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  static const char *const bad[] = {
      "ftp://h",       "https://",    "https://h/path",     "https://u:p@h",
      "https://h?x=1", "https://h:0", "https://h:65536",    "https://h:80x",
      "//h",           "h:5000",      "https://h//",        "https://h#f",
      "https://h /",   "file:///etc", "https://h:5000/v2/", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(upstream_add_registry(x->u, "h.example", bad[i], &err), -EP_EINVAL);
    assert_int_equal(err.code, EP_EINVAL);
  }
  char longurl[300];
  snprintf(longurl, sizeof longurl, "http://%0255d/x", 0); /* one char past the host bound */
  assert_int_equal(upstream_add_registry(x->u, "h.example", longurl, &err), -EP_EINVAL);
  assert_int_equal(upstream_add_registry(x->u, "bad/host", "https://h", &err), -EP_EINVAL);
  assert_int_equal(upstream_add_registry(x->u, "h.example", "https://10.0.0.1:443", &err), 0);
  assert_int_equal(upstream_set_credentials(x->u, "h.example", "a:b", "p", &err), -EP_EINVAL);
}

/* ---- challenge parser -------------------------------------------------- */

static void test_parse_challenge_ok(void **state) {
  struct upstream_challenge c;
  ep_err err = {0};
  assert_int_equal(upstream_parse_challenge("bEaReR realm=\"https://auth.docker.io/token\","
                                            "service=\"registry.docker.io\","
                                            "scope=\"repository:a/b:pull,push\"",
                                            &c, &err),
                   0);
  assert_int_equal(c.scheme, UPSTREAM_AUTH_BEARER);
  assert_string_equal(c.realm, "https://auth.docker.io/token");
  assert_string_equal(c.service, "registry.docker.io");
  assert_string_equal(c.scope, "repository:a/b:pull,push");
  assert_int_equal(upstream_parse_challenge(
                       "Bearer  scope = \"x\\\"y\" , realm=http://h/t ,error=\"bad\"", &c, &err),
                   0);
  assert_string_equal(c.realm, "http://h/t");
  assert_string_equal(c.scope, "x\"y");
  assert_string_equal(c.service, "");
  assert_int_equal(
      upstream_parse_challenge("Bearer realm=\"http://h/t\", Basic realm=\"x\"", &c, &err), 0);
  assert_string_equal(c.realm, "http://h/t");
  assert_int_equal(upstream_parse_challenge("Basic realm=\"Registry Realm\"", &c, &err), 0);
  assert_int_equal(c.scheme, UPSTREAM_AUTH_BASIC);
}

static void test_parse_challenge_hostile(void **state) {
  struct upstream_challenge c;
  ep_err err = {0};
  char big[12000];
  memset(big, 'A', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  memcpy(big, "Bearer realm=\"", 14);
  char longrealm[3000];
  snprintf(longrealm, sizeof longrealm, "Bearer realm=\"http://h/%02900d\"", 0);
  static const char *const bad[] = {
      "Bearer realm=\"http://h/token",       /* unterminated */
      "Bearer realm=\"http://h/t\\",         /* escape at the end */
      "Bearer service=\"x\",scope=\"y\"",    /* no realm */
      "Bearer realm=\"file:///etc/passwd\"", /* not http(s) */
      "Bearer realm=\"gopher://h/\"",        /* not http(s) */
      "Bearer realm=",                       /* empty value */
      "Bearer =\"x\"",                       /* no name */
      "Bearer realm=\"http://h/\"junk",      /* garbage after value */
      "Bearer realm=\"http://h/\x01\"",      /* control character */
      "Negotiate abc",                       /* unknown scheme */
      "",                                    /* nothing */
      "Bearer",                              /* nothing after the scheme */
      "Bearer\"realm=x",                     /* malformed scheme */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ep_err_clear(&err);
    assert_int_equal(upstream_parse_challenge(bad[i], &c, &err), -EP_EAUTH);
    assert_true(err.msg[0] != '\0');
  }
  assert_int_equal(upstream_parse_challenge(big, &c, &err), -EP_EAUTH);
  assert_int_equal(upstream_parse_challenge(longrealm, &c, &err), -EP_EAUTH);
}

/* ---- auth flows -------------------------------------------------------- */

static void test_bearer_anonymous_cached(void **state) {
  struct fx *x = *state;
  x->reg.auth = FAKE_AUTH_BEARER;
  struct upstream_manifest m = {0};
  ep_err err = {0};
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "latest", NULL, &m, &err), 0);
  assert_int_equal(x->reg.token_calls, 1);
  assert_string_equal(x->reg.last_scope, "repository:" REPO ":pull");
  assert_string_equal(x->reg.last_service, "fake registry");
  assert_int_equal(m.len, strlen(manifest_json));
  assert_memory_equal(m.body, manifest_json, m.len);
  assert_true(digest_equal(&m.digest, &x->manifest_digest));
  assert_string_equal(m.media_type, oci_manifest);
  upstream_manifest_clear(&m);
  /* Cached: no second token call, and no 401 round trip either. */
  int gets = x->reg.manifest_gets;
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "latest", NULL, &m, &err), 0);
  assert_int_equal(x->reg.token_calls, 1);
  assert_int_equal(x->reg.manifest_gets, gets + 1);
  upstream_manifest_clear(&m);
  uint64_t size = 0;
  assert_int_equal(upstream_blob_head(x->u, HOST, REPO, &x->blob_digest, &size, &err), 1);
  assert_int_equal(size, BLOB_LEN);
  assert_int_equal(x->reg.token_calls, 1);
}

static void test_bearer_basic_credentials(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  x->reg.auth = FAKE_AUTH_BEARER;
  x->reg.token_needs_basic = true;
  x->reg.user = "alice";
  x->reg.pass = "s3cr3t-pw";
  struct upstream_manifest m = {0};
  /* Anonymous is refused by the token endpoint. */
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "latest", NULL, &m, &err), -EP_EAUTH);
  assert_non_null(strstr(err.msg, "anonymous access refused"));
  assert_int_equal(upstream_set_credentials(x->u, HOST, "alice", "wrong", &err), 0);
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "latest", NULL, &m, &err), -EP_EAUTH);
  assert_null(strstr(err.msg, "wrong"));
  assert_int_equal(upstream_set_credentials(x->u, HOST, "alice", "s3cr3t-pw", &err), 0);
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "latest", NULL, &m, &err), 0);
  assert_int_equal(x->reg.token_calls, 3);
  upstream_manifest_clear(&m);
}

static void test_basic_challenge(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  x->reg.auth = FAKE_AUTH_BASIC;
  x->reg.user = "bob";
  x->reg.pass = "hunter2";
  uint64_t size = 0;
  assert_int_equal(upstream_blob_head(x->u, HOST, REPO, &x->blob_digest, &size, &err), -EP_EAUTH);
  assert_non_null(strstr(err.msg, "none are configured"));
  assert_int_equal(upstream_set_credentials(x->u, HOST, "bob", "nope", &err), 0);
  assert_int_equal(upstream_blob_head(x->u, HOST, REPO, &x->blob_digest, &size, &err), -EP_EAUTH);
  assert_null(strstr(err.msg, "nope"));
  assert_int_equal(upstream_set_credentials(x->u, HOST, "bob", "hunter2", &err), 0);
  assert_int_equal(upstream_blob_head(x->u, HOST, REPO, &x->blob_digest, &size, &err), 1);
  assert_int_equal(size, BLOB_LEN);
  assert_int_equal(x->reg.token_calls, 0);
}

static void test_second_401(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  x->reg.auth = FAKE_AUTH_BEARER;
  x->reg.reject_tokens = true;
  struct upstream_manifest m = {0};
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "v1", NULL, &m, &err), -EP_EAUTH);
  assert_non_null(strstr(err.msg, "401"));
  assert_int_equal(x->reg.token_calls, 1);
  assert_int_equal(x->reg.manifest_gets, 0);
  assert_null(strstr(err.msg, "tok-"));
}

static void test_token_endpoint_failures(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  struct upstream_manifest m = {0};
  x->reg.auth = FAKE_AUTH_BEARER;
  x->reg.token_status = 500;
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "v1", NULL, &m, &err), -EP_EAUTH);
  assert_non_null(strstr(err.msg, "token endpoint answered 500"));
  x->reg.token_status = 0;
  static const char *const bodies[] = {"not json", "{\"expires_in\":300}", "{\"token\":\"\"}",
                                       "{\"token\":\"a\\r\\nX-Evil: 1\"}", "[1,2]"};
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    x->reg.token_json = bodies[i];
    assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "v1", NULL, &m, &err), -EP_EAUTH);
  }
  /* access_token is accepted too, and issued_at is fine. */
  x->reg.token_json = "{\"access_token\":\"tok-abc\",\"issued_at\":\"2020-01-01T00:00:00Z\"}";
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "v1", NULL, &m, &err), 0);
  upstream_manifest_clear(&m);
}

static void test_hostile_challenges(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  char big[10 * 1024 + 64];
  snprintf(big, sizeof big, "Bearer realm=\"http://127.0.0.1/token\",service=\"%010240d\"", 0);
  const char *const bad[] = {"Bearer realm=\"http://127.0.0.1:1/token,service=x", big,
                             "Bearer service=\"x\",scope=\"repository:a:pull\"",
                             "Bearer realm=\"file:///etc/passwd\",service=\"x\"",
                             "Digest realm=\"x\", nonce=\"y\""};
  x->reg.auth = FAKE_AUTH_BEARER;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    x->reg.challenge = bad[i];
    struct upstream_manifest m = {0};
    ep_err_clear(&err);
    assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "v1", NULL, &m, &err), -EP_EAUTH);
    assert_null(m.body);
    assert_true(strlen(err.msg) < 400);
  }
  assert_int_equal(x->reg.token_calls, 0);
}

/* ---- redirects --------------------------------------------------------- */

static void test_redirect_cdn_without_auth(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  x->reg.auth = FAKE_AUTH_BEARER;
  x->reg.redirect = FAKE_REDIR_CDN;
  struct sink_state s = {0};
  assert_int_equal(get_blob(x, 0, &s, &err), 0);
  assert_int_equal(x->cdn.cdn_requests, 1);
  assert_int_equal(x->cdn.cdn_saw_auth, 0);
  assert_int_equal(x->reg.token_calls, 1);
  assert_int_equal(s.len, BLOB_LEN);
  assert_memory_equal(s.buf, x->blob, BLOB_LEN);
  assert_int_equal(s.starts, 1);
  assert_int_equal(s.total, BLOB_LEN);
  free(s.buf);
  /* With basic credentials too: none of them reach the CDN. */
  x->reg.auth = FAKE_AUTH_BASIC;
  x->reg.user = "bob";
  x->reg.pass = "pw";
  assert_int_equal(upstream_set_credentials(x->u, HOST, "bob", "pw", &err), 0);
  s = (struct sink_state){0};
  assert_int_equal(get_blob(x, 0, &s, &err), 0);
  assert_int_equal(x->cdn.cdn_requests, 2);
  assert_int_equal(x->cdn.cdn_saw_auth, 0);
  free(s.buf);
}

static void test_redirect_relative(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  x->reg.auth = FAKE_AUTH_BEARER;
  x->reg.redirect = FAKE_REDIR_RELATIVE;
  struct sink_state s = {0};
  assert_int_equal(get_blob(x, 4096, &s, &err), 0);
  assert_int_equal(x->reg.cdn_requests, 1);
  assert_int_equal(x->reg.cdn_saw_auth, 0);
  assert_string_equal(x->reg.last_range, "bytes=4096-");
  assert_int_equal(s.offset, 4096);
  assert_int_equal(s.len, BLOB_LEN - 4096);
  assert_memory_equal(s.buf, x->blob + 4096, s.len);
  free(s.buf);
}

static void test_redirect_loop(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  x->reg.redirect = FAKE_REDIR_LOOP;
  struct sink_state s = {0};
  assert_int_equal(get_blob(x, 0, &s, &err), -EP_EUPSTREAM);
  assert_non_null(strstr(err.msg, "redirects"));
  assert_int_equal(x->reg.blob_gets, 6);
  assert_int_equal(s.starts, 0);
  free(s.buf);
}

/* ---- the allowlist and the redirect policy (issue 12) -------------------- */

static void test_allowlist(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  assert_true(upstream_registry_allowed(x->u, "docker.io", true));
  assert_true(upstream_registry_allowed(x->u, HOST, true)); /* a --registry mapping */
  assert_true(upstream_registry_allowed(x->u, "REG.test", true));
  assert_false(upstream_registry_allowed(x->u, "ghcr.io", true));
  assert_false(upstream_registry_allowed(x->u, "ghcr.io", false));
  assert_false(upstream_registry_allowed(x->u, NULL, false));
  /* Refused before any connection, with the host in the message. */
  struct upstream_manifest m = {0};
  char host[32];
  snprintf(host, sizeof host, "127.0.0.1:%u", x->reg.port);
  assert_int_equal(upstream_manifest_resolve(x->u, host, REPO, "v1", NULL, &m, &err), -EP_EDENIED);
  assert_non_null(strstr(err.msg, "allowlist"));
  struct sink_state s = {.buf = malloc(BLOB_LEN)};
  struct upstream_blob_sink sink = {sink_start, sink_data, &s};
  assert_int_equal(upstream_blob_get(x->u, host, REPO, &x->blob_digest, 0, &sink, &err),
                   -EP_EDENIED);
  free(s.buf);
  assert_int_equal(x->reg.manifest_heads + x->reg.manifest_gets + x->reg.blob_gets, 0);
  /* Named without a URL (--allow-registry, credentials): allowed, and its
   * default endpoint stays https://HOST. */
  assert_int_equal(upstream_allow_registry(x->u, "ghcr.io", &err), 0);
  assert_true(upstream_registry_allowed(x->u, "ghcr.io", true));
  char buf[300];
  assert_int_equal(upstream_endpoint(x->u, "ghcr.io", buf, sizeof buf, &err), 0);
  assert_string_equal(buf, "https://ghcr.io");
  assert_int_equal(upstream_set_credentials(x->u, "quay.io", "u", "p", &err), 0);
  assert_true(upstream_registry_allowed(x->u, "quay.io", true));
  assert_int_equal(upstream_allow_registry(x->u, "bad host", &err), -EP_EINVAL);
  /* --local-any-registry opens this node's own requests, never a peer's. */
  upstream_open_local(x->u, true);
  assert_true(upstream_registry_allowed(x->u, host, false));
  assert_false(upstream_registry_allowed(x->u, host, true));
  /* let through: its default endpoint is https://, which the fake does not speak */
  assert_int_equal(upstream_manifest_resolve(x->u, host, REPO, "v1", NULL, &m, &err), -EP_EUNREACH);
  upstream_open_local(x->u, false);
  assert_false(upstream_registry_allowed(x->u, host, false));
}

/* One GET of the fake's manifest at url, as a hop the registry led us to
 * (origin set) or as the registry's own (origin 0). */
static int policy_get(struct fx *x, const char *url, unsigned origin, bool origin_https,
                      ep_err *err) {
  struct upstream_req r = {.host = HOST,
                           .url = url,
                           .what = "policy test",
                           .body_max = UPSTREAM_MANIFEST_MAX,
                           .origin_class = origin,
                           .origin_https = origin_https};
  struct upstream_xfer *xf = upstream_xfer_new(x->u, &r);
  assert_non_null(xf);
  int rc = upstream_perform(x->u, &r, NULL, xf, err);
  if (rc == 0 && xf->status != 200)
    rc = -1000 - (int)xf->status;
  if (rc == 0 && origin == 0)
    assert_int_equal(xf->origin_class, NETCLASS_LOOPBACK); /* learnt on its own hop */
  upstream_xfer_free(xf);
  return rc;
}

static void test_redirect_policy(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  char lit[128], name[128];
  snprintf(lit, sizeof lit, "http://127.0.0.1:%u/v2/%s/manifests/v1", x->reg.port, REPO);
  snprintf(name, sizeof name, "http://localhost:%u/v2/%s/manifests/v1", x->reg.port, REPO);
  /* The registry's own hop may be on loopback; so may what a loopback
   * registry leads to. */
  assert_int_equal(policy_get(x, lit, 0, false, &err), 0);
  assert_int_equal(policy_get(x, lit, NETCLASS_LOOPBACK, false, &err), 0);
  int seen = x->reg.manifest_gets;
  assert_int_equal(seen, 2);
  /* A public registry leading to loopback: an IP literal is refused up
   * front, a name at the socket (localhost resolves to loopback). */
  assert_int_equal(policy_get(x, lit, NETCLASS_PUBLIC, false, &err), -EP_EDENIED);
  assert_non_null(strstr(err.msg, "loopback"));
  assert_int_equal(policy_get(x, name, NETCLASS_PUBLIC, false, &err), -EP_EDENIED);
  assert_non_null(strstr(err.msg, "loopback"));
  /* A private or link-local registry may not lead to loopback either. */
  assert_int_equal(policy_get(x, name, NETCLASS_PRIVATE, false, &err), -EP_EDENIED);
  assert_int_equal(policy_get(x, name, NETCLASS_LINKLOCAL, false, &err), -EP_EDENIED);
  /* Never from https to http, even to where the registry itself is. */
  assert_int_equal(policy_get(x, lit, NETCLASS_LOOPBACK, true, &err), -EP_EDENIED);
  assert_non_null(strstr(err.msg, "https to http"));
  assert_int_equal(x->reg.manifest_gets, seen);
  /* A connection curl keeps from an allowed request is checked again when
   * a refused one would reuse it (CURLOPT_PREREQFUNCTION). */
  assert_int_equal(policy_get(x, name, 0, false, &err), 0);
  seen = x->reg.manifest_gets;
  assert_int_equal(policy_get(x, name, NETCLASS_PUBLIC, false, &err), -EP_EDENIED);
  assert_int_equal(x->reg.manifest_gets, seen);
}

/* ---- manifests --------------------------------------------------------- */

static void test_manifest_resolve_head(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  struct upstream_manifest m = {0};
  assert_int_equal(upstream_manifest_resolve(x->u, HOST, REPO, "latest", NULL, &m, &err), 0);
  assert_true(m.have_digest);
  assert_true(digest_equal(&m.digest, &x->manifest_digest));
  assert_null(m.body);
  assert_int_equal(m.size, strlen(manifest_json));
  assert_int_equal(x->reg.manifest_heads, 1);
  assert_int_equal(x->reg.manifest_gets, 0);
  upstream_manifest_clear(&m);
  /* Trailing whitespace after the digest is not part of it. */
  char hdr[DIGEST_STR_LEN + 8];
  digest_format(&x->manifest_digest, hdr);
  strcat(hdr, "  ");
  x->reg.digest_header = hdr;
  assert_int_equal(upstream_manifest_resolve(x->u, HOST, REPO, "latest", NULL, &m, &err), 0);
  assert_true(m.have_digest);
  assert_true(digest_equal(&m.digest, &x->manifest_digest));
  assert_int_equal(x->reg.manifest_gets, 0);
  upstream_manifest_clear(&m);
}

static void test_manifest_resolve_fallback(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  struct upstream_manifest m = {0};
  x->reg.head_digest = false;
  x->reg.get_digest = false;
  x->reg.manifest_ctype = "application/vnd.oci.image.manifest.v1+json; charset=utf-8";
  assert_int_equal(upstream_manifest_resolve(x->u, HOST, REPO, "latest", NULL, &m, &err), 0);
  assert_int_equal(x->reg.manifest_heads, 1);
  assert_int_equal(x->reg.manifest_gets, 1);
  assert_true(m.have_digest);
  assert_true(digest_equal(&m.digest, &x->manifest_digest));
  assert_non_null(m.body);
  assert_string_equal(m.media_type, oci_manifest);
  upstream_manifest_clear(&m);
  x->reg.head_405 = true;
  x->reg.head_digest = true;
  assert_int_equal(upstream_manifest_resolve(x->u, HOST, REPO, "latest", NULL, &m, &err), 0);
  assert_int_equal(x->reg.manifest_gets, 2);
  assert_true(digest_equal(&m.digest, &x->manifest_digest));
  upstream_manifest_clear(&m);
}

static void test_manifest_digest(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  struct upstream_manifest m = {0};
  char ref[DIGEST_STR_LEN + 1];
  digest_format(&x->manifest_digest, ref);
  x->reg.digest_header = "sha256:"
                         "1111111111111111111111111111111111111111111111111111111111111111 \t";
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, ref, NULL, &m, &err), 0);
  assert_true(digest_equal(&m.digest, &x->manifest_digest));
  upstream_manifest_clear(&m);
  digest_format(&x->blob_digest, ref); /* some other digest */
  x->reg.digest_header = NULL;
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, ref, NULL, &m, &err), -EP_EDIGEST);
  assert_null(m.body);
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "sha512:ab", NULL, &m, &err),
                   -EP_EUNSUPPORTED);
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "../x", NULL, &m, &err), -EP_EINVAL);
  assert_int_equal(upstream_manifest_get(x->u, HOST, "a/../b", "v1", NULL, &m, &err), -EP_EINVAL);
}

static void test_manifest_too_big(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  struct upstream_manifest m = {0};
  size_t n = UPSTREAM_MANIFEST_MAX + 1;
  char *big = malloc(n);
  memset(big, ' ', n);
  x->reg.manifest = big;
  x->reg.manifest_len = n;
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "v1", NULL, &m, &err), -EP_ETOOBIG);
  x->reg.chunked = true; /* no Content-Length: counted while it arrives */
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "v1", NULL, &m, &err), -EP_ETOOBIG);
  x->reg.manifest_len = UPSTREAM_MANIFEST_MAX; /* exactly the bound is fine */
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "v1", NULL, &m, &err), 0);
  assert_int_equal(m.len, UPSTREAM_MANIFEST_MAX);
  upstream_manifest_clear(&m);
  free(big);
}

/* ---- error mapping ----------------------------------------------------- */

static void test_errors(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  struct upstream_manifest m = {0};
  x->reg.force_status = 404;
  x->reg.force_body = "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"unknown\"}]}";
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "v1", NULL, &m, &err), -EP_ENOTFOUND);
  assert_int_equal(upstream_manifest_resolve(x->u, HOST, REPO, "v1", NULL, &m, &err),
                   -EP_ENOTFOUND);
  uint64_t size = 7;
  assert_int_equal(upstream_blob_head(x->u, HOST, REPO, &x->blob_digest, &size, &err), 0);
  x->reg.force_status = 500;
  x->reg.force_body = "{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"disk on fire\"}]}";
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "v1", NULL, &m, &err), -EP_EUPSTREAM);
  assert_non_null(strstr(err.msg, "500"));
  assert_non_null(strstr(err.msg, "UNKNOWN"));
  struct sink_state s = {0};
  assert_int_equal(get_blob(x, 0, &s, &err), -EP_EUPSTREAM);
  assert_int_equal(s.starts, 0);
  free(s.buf);
}

static void test_unreachable(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  struct fake gone = {0};
  assert_int_equal(fake_start(&gone), 0);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", gone.port);
  fake_stop(&gone);
  assert_int_equal(upstream_add_registry(x->u, "gone.test", url, &err), 0);
  struct upstream_manifest m = {0};
  assert_int_equal(upstream_manifest_resolve(x->u, "gone.test", REPO, "v1", NULL, &m, &err),
                   -EP_EUNREACH);
  assert_non_null(strstr(err.msg, "127.0.0.1"));
  assert_true(strlen(err.msg) > 20);
}

static void test_cancel_all(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  upstream_cancel_all(x->u);
  struct upstream_manifest m = {0};
  assert_int_equal(upstream_manifest_get(x->u, HOST, REPO, "v1", NULL, &m, &err), -EP_ECANCELED);
}

/* ---- blobs ------------------------------------------------------------- */

static void test_blob_range(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  struct sink_state s = {0};
  assert_int_equal(get_blob(x, 1000, &s, &err), 0);
  assert_int_equal(s.starts, 1);
  assert_int_equal(s.offset, 1000);
  assert_int_equal(s.total, BLOB_LEN);
  assert_int_equal(s.len, BLOB_LEN - 1000);
  assert_memory_equal(s.buf, x->blob + 1000, s.len);
  free(s.buf);
  x->reg.honour_range = false;
  s = (struct sink_state){0};
  assert_int_equal(get_blob(x, 1000, &s, &err), 0);
  assert_int_equal(s.offset, 0);
  assert_int_equal(s.total, BLOB_LEN);
  assert_int_equal(s.len, BLOB_LEN);
  free(s.buf);
  x->reg.honour_range = true;
  x->reg.bad_range_start = true;
  s = (struct sink_state){0};
  assert_int_equal(get_blob(x, 1000, &s, &err), -EP_EUPSTREAM);
  assert_int_equal(s.starts, 0);
  assert_int_equal(s.len, 0);
  free(s.buf);
  x->reg.bad_range_start = false;
  s = (struct sink_state){0};
  assert_int_equal(get_blob(x, BLOB_LEN, &s, &err), -EP_ERANGE);
  free(s.buf);
}

static void test_blob_abort(void **state) {
  struct fx *x = *state;
  ep_err err = {0};
  struct sink_state s = {.abort_after = 1};
  assert_int_equal(get_blob(x, 0, &s, &err), -EP_ECANCELED);
  assert_true(s.len > 0 && s.len < BLOB_LEN);
  free(s.buf);
  /* The handle goes back to the pool and works afterwards. */
  s = (struct sink_state){0};
  assert_int_equal(get_blob(x, 0, &s, &err), 0);
  assert_int_equal(s.len, BLOB_LEN);
  free(s.buf);
  digest_t bad = {{0}};
  assert_int_equal(upstream_blob_get(x->u, HOST, REPO, &bad, 0,
                                     &(struct upstream_blob_sink){sink_start, sink_data, &s}, &err),
                   -EP_EINVAL);
}

static void test_token_cache(void **state) {
  struct fx *x = *state;
  char scope[64];
  for (int i = 0; i < UPSTREAM_TOKENS_MAX + 44; i++) {
    snprintf(scope, sizeof scope, "repository:r%d:pull", i);
    upstream_token_put(x->u, HOST, scope, "tok", 300);
  }
  char *t = upstream_token_get(x->u, HOST, "repository:r0:pull"); /* evicted, oldest */
  assert_null(t);
  t = upstream_token_get(x->u, HOST, scope);
  assert_string_equal(t, "tok");
  free(t);
  upstream_token_drop(x->u, HOST, scope, "other"); /* not the token we hold: kept */
  t = upstream_token_get(x->u, HOST, scope);
  assert_non_null(t);
  upstream_token_drop(x->u, HOST, scope, t);
  free(t);
  assert_null(upstream_token_get(x->u, HOST, scope));
  upstream_token_put(x->u, HOST, "s", "tok", 0); /* already expired: not cached */
  assert_null(upstream_token_get(x->u, HOST, "s"));
}

struct worker {
  struct fx *x;
  int failures;
};

static void *worker_run(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < 5; i++) {
    struct sink_state s = {0};
    ep_err err = {0};
    if (get_blob(w->x, (uint64_t)i * 1000, &s, &err) != 0 || s.len != BLOB_LEN - (size_t)s.offset ||
        memcmp(s.buf, w->x->blob + s.offset, s.len) != 0)
      w->failures++;
    free(s.buf);
  }
  return NULL;
}

static void test_concurrent(void **state) {
  struct fx *x = *state;
  x->reg.auth = FAKE_AUTH_BEARER;
  x->reg.redirect = FAKE_REDIR_CDN;
  struct worker w[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (struct worker){x, 0};
    assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].failures, 0);
  }
  assert_int_equal(x->cdn.cdn_requests, 20);
  assert_int_equal(x->cdn.cdn_saw_auth, 0);
  assert_in_range(x->reg.token_calls, 1, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_endpoint_map, setup, teardown),
      cmocka_unit_test_setup_teardown(test_add_registry_invalid, setup, teardown),
      cmocka_unit_test(test_parse_challenge_ok),
      cmocka_unit_test(test_parse_challenge_hostile),
      cmocka_unit_test_setup_teardown(test_bearer_anonymous_cached, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bearer_basic_credentials, setup, teardown),
      cmocka_unit_test_setup_teardown(test_basic_challenge, setup, teardown),
      cmocka_unit_test_setup_teardown(test_second_401, setup, teardown),
      cmocka_unit_test_setup_teardown(test_token_endpoint_failures, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hostile_challenges, setup, teardown),
      cmocka_unit_test_setup_teardown(test_redirect_cdn_without_auth, setup, teardown),
      cmocka_unit_test_setup_teardown(test_redirect_relative, setup, teardown),
      cmocka_unit_test_setup_teardown(test_redirect_loop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_allowlist, setup, teardown),
      cmocka_unit_test_setup_teardown(test_redirect_policy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_manifest_resolve_head, setup, teardown),
      cmocka_unit_test_setup_teardown(test_manifest_resolve_fallback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_manifest_digest, setup, teardown),
      cmocka_unit_test_setup_teardown(test_manifest_too_big, setup, teardown),
      cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unreachable, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_all, setup, teardown),
      cmocka_unit_test_setup_teardown(test_blob_range, setup, teardown),
      cmocka_unit_test_setup_teardown(test_blob_abort, setup, teardown),
      cmocka_unit_test_setup_teardown(test_token_cache, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
