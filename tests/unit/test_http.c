/* Unit tests for the registry endpoint (plugin/http: server.c, http.c) on
 * a standalone stack (tests/lib/stack.h) whose upstream is a fake registry,
 * spoken to over a plain socket so that every byte of the request is the
 * test's: no HTTP client rewrites or hides anything.
 *
 * Shown here: the base route and the headers every answer carries; OCI
 * error documents with the right status for a method that is not served,
 * malformed names and digests and routes that are not the pull API; blobs
 * cold (through the fetch engine) and warm (from the store) with single
 * ranges, suffix ranges, 416 and 400; HEAD answering lengths without a
 * body and without fetching; manifests by tag; request headers bounded
 * per value and in total; and the peer endpoint's admission (Basic auth
 * with the locality secret, X-Edgepull-Node, X-Edgepull-Hops). */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "plugin/http/http.h"
#include "plugin/http/listen.h"
#include "plugin/http/server.h"
#include "plugin/mirror/manifest.h"
#include "tests/lib/fake_registry.h"
#include "tests/lib/stack.h"
#include "tests/lib/testlib.h"

#define BLOB_LEN (300 * 1024 + 11)
#define REG "reg.test"
#define SECRET "locality-s3cret"
#define RESP_MAX (BLOB_LEN + 64 * 1024)

struct fx {
  struct fake reg;
  struct ep_test_stack s;
  struct server *srv;
  uint16_t port;
  unsigned char *blob;
  digest_t dg;
  char blob_path[256];
};

struct resp {
  int status;
  char *head; /* status line and headers, NUL-terminated */
  const char *body;
  size_t body_len;
  char *raw;
};

static int setup_mode(void **state, enum server_mode mode) {
  struct fx *x = calloc(1, sizeof *x);
  if (x == NULL)
    return -1;
  x->blob = malloc(BLOB_LEN);
  for (size_t i = 0; i < BLOB_LEN; i++)
    x->blob[i] = (unsigned char)(i * 7 + i / 251);
  digest_buffer(x->blob, BLOB_LEN, &x->dg);
  snprintf(x->blob_path, sizeof x->blob_path, "/v2/library/test/blobs/sha256:%s?ns=" REG,
           x->dg.hex);
  x->reg.blob = x->blob;
  x->reg.blob_len = BLOB_LEN;
  x->reg.honour_range = true;
  x->reg.manifest = fake_manifest_json;
  x->reg.manifest_len = strlen(fake_manifest_json);
  x->reg.manifest_ctype = MT_OCI_MANIFEST;
  x->reg.head_digest = x->reg.get_digest = true;
  if (fake_start(&x->reg) < 0 || ep_test_stack_open(&x->s, REG, x->reg.port, NULL) < 0)
    return -1;
  struct server_deps d = {.st = x->s.st,
                          .idx = x->s.idx,
                          .up = x->s.up,
                          .pipes = x->s.pipes,
                          .fetch = x->s.fetch,
                          .mirror = &x->s.mirror,
                          .src = x->s.src,
                          .peer_secret = mode == SERVER_PEER ? SECRET : "",
                          .default_registry = "docker.io",
                          .max_connections = 64,
                          .endpoints = 1,
                          .max_fetches = 8,
                          .partial_max_age_s = 3600};
  int fd = -1;
  ep_err e = {0};
  if (listen_open("127.0.0.1:0", &fd, &e) < 0)
    return -1;
  x->port = ep_test_fd_port(fd);
  if (server_start_mode(&d, fd, mode, &x->srv, &e) < 0) {
    fprintf(stderr, "server: %s\n", e.msg);
    return -1;
  }
  *state = x;
  return 0;
}

static int setup_local(void **state) {
  return setup_mode(state, SERVER_LOCAL);
}

static int setup_peer(void **state) {
  return setup_mode(state, SERVER_PEER);
}

static int teardown(void **state) {
  struct fx *x = *state;
  server_quiesce(x->srv);
  fetcher_stop(x->s.fetch); /* wakes the connections following a fetch */
  server_stop(x->srv);
  ep_test_stack_close(&x->s);
  fake_stop(&x->reg);
  free(x->blob);
  free(x);
  return 0;
}

static void resp_free(struct resp *r) {
  free(r->raw);
  free(r->head);
  memset(r, 0, sizeof *r);
}

/* Sends req (a whole request, "Connection: close" added before the blank
 * line) and reads the answer until the server closes. */
static struct resp request(struct fx *x, const char *method, const char *path,
                           const char *headers) {
  struct resp r = {0};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct timeval tv = {.tv_sec = 30};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(x->port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  size_t hl = headers != NULL ? strlen(headers) : 0;
  char *req = malloc(strlen(path) + hl + 256);
  int n = sprintf(req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n", method,
                  path, headers != NULL ? headers : "");
  for (int off = 0; off < n;) {
    ssize_t w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
    if (w <= 0)
      break; /* the server may answer and close before reading it all */
    off += (int)w;
  }
  free(req);
  r.raw = malloc(RESP_MAX + 1);
  size_t len = 0;
  ssize_t got;
  while (len < RESP_MAX && (got = recv(fd, r.raw + len, RESP_MAX - len, 0)) > 0)
    len += (size_t)got;
  close(fd);
  r.raw[len] = '\0';
  char *end = strstr(r.raw, "\r\n\r\n");
  if (end == NULL || sscanf(r.raw, "HTTP/1.%*d %d", &r.status) != 1)
    fail_msg("no HTTP answer to %s %s (%zu bytes)", method, path, len);
  r.head = strndup(r.raw, (size_t)(end - r.raw) + 2);
  r.body = end + 4;
  r.body_len = len - (size_t)(r.body - r.raw);
  return r;
}

/* The value of header name in r (a static copy), NULL when absent. */
static const char *header(const struct resp *r, const char *name) {
  static char value[512];
  size_t k = strlen(name);
  for (const char *p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
    if (strncasecmp(p + 2, name, k) != 0 || p[2 + k] != ':')
      continue;
    const char *v = p + 3 + k, *e = strstr(v, "\r\n");
    while (*v == ' ')
      v++;
    snprintf(value, sizeof value, "%.*s", (int)(e - v), v);
    return value;
  }
  return NULL;
}

/* An OCI error document whose first error has this code. */
static void expect_error(const struct resp *r, int status, const char *code) {
  if (r->status != status)
    fail_msg("status %d, expected %d: %s", r->status, status, r->body);
  json_error_t je;
  json_t *doc = json_loadb(r->body, r->body_len, 0, &je);
  assert_non_null(doc);
  json_t *first = json_array_get(json_object_get(doc, "errors"), 0);
  assert_string_equal(json_string_value(json_object_get(first, "code")), code);
  assert_non_null(json_string_value(json_object_get(first, "message")));
  json_decref(doc);
  assert_string_equal(header(r, "Content-Type"), "application/json");
  assert_string_equal(header(r, "Docker-Distribution-API-Version"), "registry/2.0");
}

static void wait_fetched(struct fx *x) {
  assert_int_equal(ep_test_fetcher_idle(x->s.fetch, 30000), 0);
}

static void test_base_and_errors(void **state) {
  struct fx *x = *state;
  struct resp r = request(x, "GET", "/v2/", NULL);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, 2);
  assert_memory_equal(r.body, "{}", 2);
  assert_string_equal(header(&r, "Docker-Distribution-API-Version"), "registry/2.0");
  resp_free(&r);

  /* Pull only: a push is refused at once, saying what is allowed. */
  r = request(x, "POST", "/v2/library/test/blobs/uploads/", "Content-Length: 0\r\n");
  expect_error(&r, 405, "UNSUPPORTED");
  assert_string_equal(header(&r, "Allow"), "GET, HEAD");
  resp_free(&r);
  r = request(x, "DELETE", x->blob_path, NULL);
  expect_error(&r, 405, "UNSUPPORTED");
  resp_free(&r);

  r = request(x, "GET", "/v2/library/test/blobs/sha256:abc?ns=" REG, NULL);
  expect_error(&r, 400, "DIGEST_INVALID");
  resp_free(&r);
  r = request(x, "GET", "/v2/library/test/blobs/md5:d41d8cd98f00b204e9800998ecf8427e?ns=" REG,
              NULL);
  expect_error(&r, 400, "DIGEST_INVALID");
  resp_free(&r);
  r = request(x, "GET", "/v2/Library/Test/manifests/1?ns=" REG, NULL);
  expect_error(&r, 400, "NAME_INVALID");
  resp_free(&r);
  r = request(x, "GET", "/v2/library/test/manifests/-bad?ns=" REG, NULL);
  expect_error(&r, 400, "TAG_INVALID");
  resp_free(&r);
  r = request(x, "GET", "/v2/library/test/tags/list?ns=" REG, NULL);
  expect_error(&r, 404, "UNSUPPORTED");
  resp_free(&r);
  r = request(x, "GET", "/v3/", NULL);
  expect_error(&r, 404, "UNSUPPORTED");
  resp_free(&r);
  assert_int_equal(x->reg.blob_gets + x->reg.manifest_gets + x->reg.manifest_heads, 0);
}

static void expect_range(struct fx *x, const char *range, uint64_t first, uint64_t last) {
  char h[96], cr[96];
  snprintf(h, sizeof h, "Range: %s\r\n", range);
  struct resp r = request(x, "GET", x->blob_path, h);
  if (r.status != 206)
    fail_msg("%s: status %d", range, r.status);
  snprintf(cr, sizeof cr, "bytes %llu-%llu/%d", (unsigned long long)first, (unsigned long long)last,
           BLOB_LEN);
  assert_string_equal(header(&r, "Content-Range"), cr);
  assert_int_equal(r.body_len, last - first + 1);
  assert_memory_equal(r.body, x->blob + first, last - first + 1);
  resp_free(&r);
}

static void test_blob_cold_warm_ranges(void **state) {
  struct fx *x = *state;
  /* Cold: the first request is a range, served as the fetch brings it. */
  expect_range(x, "bytes=100-199", 100, 199);
  wait_fetched(x);
  assert_int_equal(x->reg.blob_gets, 1);
  ep_err e = {0};
  assert_int_equal(store_has(x->s.st, &x->dg, NULL, &e), 1);

  /* Warm: the whole blob from the store. */
  struct resp r = request(x, "GET", x->blob_path, NULL);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, BLOB_LEN);
  assert_memory_equal(r.body, x->blob, BLOB_LEN);
  char dg[DIGEST_STR_LEN + 1];
  digest_format(&x->dg, dg);
  assert_string_equal(header(&r, "Docker-Content-Digest"), dg);
  assert_string_equal(header(&r, "Accept-Ranges"), "bytes");
  assert_string_equal(header(&r, "Content-Type"), "application/octet-stream");
  resp_free(&r);

  expect_range(x, "bytes=0-0", 0, 0);
  expect_range(x, "bytes=-10", BLOB_LEN - 10, BLOB_LEN - 1);
  expect_range(x, "bytes=300000-", 300000, BLOB_LEN - 1);
  expect_range(x, "bytes=5-99999999", 5, BLOB_LEN - 1); /* clamped to the size */

  /* Past the end: 416 with the size; malformed: 400. */
  char h[64], cr[64];
  snprintf(h, sizeof h, "Range: bytes=%d-\r\n", BLOB_LEN);
  r = request(x, "GET", x->blob_path, h);
  expect_error(&r, 416, "RANGE_INVALID");
  snprintf(cr, sizeof cr, "bytes */%d", BLOB_LEN);
  assert_string_equal(header(&r, "Content-Range"), cr);
  resp_free(&r);
  const char *bad[] = {"bytes=9-3", "bytes=0-1,5-6", "items=0-1", "bytes=x-"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(h, sizeof h, "Range: %s\r\n", bad[i]);
    r = request(x, "GET", x->blob_path, h);
    expect_error(&r, 400, "RANGE_INVALID");
    resp_free(&r);
  }
  assert_int_equal(x->reg.blob_gets, 1); /* all from the store */
}

static void test_head(void **state) {
  struct fx *x = *state;
  char len[32];
  snprintf(len, sizeof len, "%d", BLOB_LEN);
  /* A cold blob: the length from the upstream, no body, no fetch. */
  struct resp r = request(x, "HEAD", x->blob_path, NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(header(&r, "Content-Length"), len);
  assert_int_equal(r.body_len, 0);
  resp_free(&r);
  unsigned long started = 1;
  fetcher_counts(x->s.fetch, NULL, &started);
  assert_int_equal(started, 0);
  assert_int_equal(x->reg.blob_gets, 0);

  /* A manifest by tag: length and digest, no body. */
  char mlen[32], dg[DIGEST_STR_LEN + 1];
  digest_t md;
  digest_buffer(fake_manifest_json, strlen(fake_manifest_json), &md);
  digest_format(&md, dg);
  snprintf(mlen, sizeof mlen, "%zu", strlen(fake_manifest_json));
  r = request(x, "HEAD", "/v2/library/test/manifests/1?ns=" REG, NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(header(&r, "Content-Length"), mlen);
  assert_string_equal(header(&r, "Docker-Content-Digest"), dg);
  assert_int_equal(r.body_len, 0);
  resp_free(&r);
  r = request(x, "GET", "/v2/library/test/manifests/1?ns=" REG, "Accept: " MT_OCI_MANIFEST "\r\n");
  assert_int_equal(r.status, 200);
  assert_string_equal(header(&r, "Content-Type"), MT_OCI_MANIFEST);
  assert_string_equal(header(&r, "Docker-Content-Digest"), dg);
  assert_int_equal(r.body_len, strlen(fake_manifest_json));
  assert_memory_equal(r.body, fake_manifest_json, r.body_len);
  resp_free(&r);

  /* Unknown upstream: 404 for both, an error document for the GET. */
  pthread_mutex_lock(&x->reg.lock);
  x->reg.force_status = 404;
  pthread_mutex_unlock(&x->reg.lock);
  digest_t other;
  digest_buffer("other", 5, &other);
  char path[256];
  snprintf(path, sizeof path, "/v2/library/test/blobs/sha256:%s?ns=" REG, other.hex);
  r = request(x, "HEAD", path, NULL);
  assert_int_equal(r.status, 404);
  assert_int_equal(r.body_len, 0);
  resp_free(&r);
  r = request(x, "GET", "/v2/library/test/manifests/gone?ns=" REG, NULL);
  expect_error(&r, 404, "MANIFEST_UNKNOWN");
  resp_free(&r);
}

/* n headers X-Pad-i of len bytes each. */
static char *pad_headers(int n, size_t len) {
  char *h = malloc((size_t)n * (len + 32) + 1), *p = h;
  for (int i = 0; i < n; i++) {
    p += sprintf(p, "X-Pad-%d: ", i);
    memset(p, 'a', len);
    p += len;
    p += sprintf(p, "\r\n");
  }
  *p = '\0';
  return h;
}

static void test_bounded_headers(void **state) {
  struct fx *x = *state;
  /* The connection's memory pool (32 KiB) must hold headers up to our own
   * bounds, so that our JSON 431 answers everything short of ~28 KiB. */
  struct {
    int n;
    size_t len;
    int status;
    bool ours; /* our JSON 431, not libmicrohttpd's HTML one */
  } cases[] = {
      {1, 7000, 200, false},                     /* under both bounds */
      {2, 8000, 200, false},                     /* two values at the bound: 16 KB together */
      {1, HTTP_HEADER_VALUE_MAX + 1, 431, true}, /* one value too long */
      {5, 4000, 431, true},                      /* together over the total */
      {3, 8000, 431, true},                      /* 24 KB: still read whole, still ours */
      {1, 200 * 1024, 431, false},               /* past the connection's memory: MHD's own 431 */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *h = pad_headers(cases[i].n, cases[i].len);
    struct resp r = request(x, "GET", "/v2/", h);
    free(h);
    if (r.status != cases[i].status)
      fail_msg("%d header(s) of %zu bytes: %d, expected %d", cases[i].n, cases[i].len, r.status,
               cases[i].status);
    if (cases[i].ours)
      expect_error(&r, 431, "UNSUPPORTED");
    resp_free(&r);
  }
  /* A registry's bearer token of 8 KB (long JWTs) passes. */
  char *bearer = malloc(HTTP_HEADER_VALUE_MAX + 64);
  int n = sprintf(bearer, "Authorization: Bearer ");
  memset(bearer + n, 'e', HTTP_HEADER_VALUE_MAX - 8);
  strcpy(bearer + n + HTTP_HEADER_VALUE_MAX - 8, "\r\n");
  struct resp rb = request(x, "GET", "/v2/", bearer);
  free(bearer);
  assert_int_equal(rb.status, 200);
  resp_free(&rb);
  /* And the endpoint still answers. */
  struct resp r = request(x, "GET", "/v2/", NULL);
  assert_int_equal(r.status, 200);
  resp_free(&r);
}

/* Admin routes: loopback only, POST only, and never from a web page (a
 * cross-site POST carries Origin): the fixture has no admin hooks, so what
 * passes these checks ends at "no such admin route". */
static void test_admin_refuses_web_pages(void **state) {
  struct fx *x = *state;
  struct resp r =
      request(x, "POST", "/_edgepull/unpin?image=a/b:c", "Origin: http://attacker.example\r\n");
  expect_error(&r, 403, "DENIED");
  resp_free(&r);
  r = request(x, "POST", "/_edgepull/gc", NULL);
  expect_error(&r, 404, "UNSUPPORTED");
  resp_free(&r);
  r = request(x, "GET", "/_edgepull/gc", NULL);
  assert_int_equal(r.status, 405);
  resp_free(&r);
}

static void test_peer_admission(void **state) {
  struct fx *x = *state;
  char good[256], wrong[256], h[512];
  fake_basic("n2", SECRET, good, sizeof good);
  fake_basic("n2", "not-the-secret", wrong, sizeof wrong);
  struct resp r = request(x, "GET", "/v2/", NULL);
  expect_error(&r, 401, "UNAUTHORIZED");
  assert_string_equal(header(&r, "WWW-Authenticate"), "Basic realm=\"edgepull-peer\"");
  resp_free(&r);
  snprintf(h, sizeof h, "Authorization: %s\r\n", wrong);
  r = request(x, "GET", "/v2/", h);
  expect_error(&r, 401, "UNAUTHORIZED");
  resp_free(&r);
  r = request(x, "GET", "/v2/", "Authorization: Basic !!!!\r\n");
  expect_error(&r, 401, "UNAUTHORIZED");
  resp_free(&r);
  snprintf(h, sizeof h, "Authorization: %s\r\n", good);
  r = request(x, "GET", "/v2/", h);
  assert_int_equal(r.status, 200);
  resp_free(&r);

  struct {
    const char *extra;
    int status;
    const char *code;
  } cases[] = {
      {"X-Edgepull-Hops: 3\r\n", 200, NULL},
      {"X-Edgepull-Hops: 33\r\n", 508, "UNAVAILABLE"},
      {"X-Edgepull-Hops: 99999999999999999999\r\n", 508, "UNAVAILABLE"},
      {"X-Edgepull-Hops: 3x\r\n", 400, "UNSUPPORTED"},
      {"X-Edgepull-Hops: \r\n", 400, "UNSUPPORTED"},
      {"X-Edgepull-Node: n3\r\n", 200, NULL},
      {"X-Edgepull-Node: bad node/..\r\n", 400, "UNSUPPORTED"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(h, sizeof h, "Authorization: %s\r\n%s", good, cases[i].extra);
    r = request(x, "GET", "/v2/", h);
    if (cases[i].code != NULL)
      expect_error(&r, cases[i].status, cases[i].code);
    else
      assert_int_equal(r.status, cases[i].status);
    resp_free(&r);
  }

  /* An admitted peer gets blobs like the runtime does. */
  snprintf(h, sizeof h, "Authorization: %s\r\nX-Edgepull-Node: n2\r\nX-Edgepull-Hops: 1\r\n", good);
  r = request(x, "GET", x->blob_path, h);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, BLOB_LEN);
  assert_memory_equal(r.body, x->blob, BLOB_LEN);
  resp_free(&r);
  wait_fetched(x);
  struct fetch_stats st;
  fetcher_stats(x->s.fetch, &st);
  assert_int_equal(st.served_peer_bytes, BLOB_LEN);
}

static void test_status_mapping(void **state) {
  (void)state;
  struct {
    int code;
    unsigned status;
  } m[] = {
      {EP_EINVAL, 400},    {EP_EUNSUPPORTED, 400}, {EP_ENOTFOUND, 404}, {EP_ERANGE, 416},
      {EP_EAUTH, 403},     {EP_EUNREACH, 503},     {EP_ECANCELED, 503}, {EP_EDIGEST, 502},
      {EP_EUPSTREAM, 502}, {EP_ETOOBIG, 502},      {EP_ENOSPC, 507},    {EP_EINTERNAL, 500},
  };
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
    assert_int_equal(http_status_for(m[i].code), m[i].status);
    assert_int_equal(http_status_for(-m[i].code), m[i].status);
  }
  /* Never 401 for the runtime: it would hand us its credentials. */
  for (int c = 0; c < 64; c++)
    assert_int_not_equal(http_status_for(c), 401);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_base_and_errors, setup_local, teardown),
      cmocka_unit_test_setup_teardown(test_blob_cold_warm_ranges, setup_local, teardown),
      cmocka_unit_test_setup_teardown(test_head, setup_local, teardown),
      cmocka_unit_test_setup_teardown(test_bounded_headers, setup_local, teardown),
      cmocka_unit_test_setup_teardown(test_admin_refuses_web_pages, setup_local, teardown),
      cmocka_unit_test_setup_teardown(test_peer_admission, setup_peer, teardown),
      cmocka_unit_test(test_status_mapping),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
