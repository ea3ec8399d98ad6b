/* Two edgepulld instances in one process on 127.0.0.1, forming a locality
 * without a broker: a gateway whose upstream is the in-process fake
 * registry (fake_registry.h), and a node whose parent is the gateway (set
 * through the sources_set_parent test hook, the gateway listed in the
 * node's locality index). Shows the node-to-node data path end to end:
 * blobs through the gateway's peer endpoint (the registry serves one GET),
 * tags resolved only through the gateway, the peer endpoint's Basic auth
 * (401 there, never on the local port), the hop limit (508), the asking
 * node never used as a source, and a peer serving wrong bytes marked
 * suspect while clean data is then fetched from another source. Then
 * parents that misbehave (issue 11): dying at 5/50/95/100 %, dying with no
 * other source until a re-parent, no Content-Length, a body longer than the
 * blob, a 10 GB Content-Length, a 2 KB/s drip, 416 on resume, a complete
 * partial, and a disk that fills up. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/ep_test.h"

#include "common/clock.h"
#include <curl/curl.h>

#include "tests/lib/fake_registry.h"
#include "tests/lib/nodes.h"
#include "plugin/daemon/daemon.h"

#define BLOB_LEN (3 * 1024 * 1024 + 77)
#define REG "reg.test"
#define REPO "library/test"
#define SECRET "locality-s3cret"

static const char oci_manifest[] = "application/vnd.oci.image.manifest.v1+json";

struct fx {
  struct fake reg;  /* the upstream registry */
  struct fake evil; /* a "peer" serving flipped bytes */
  struct ep_test_node gw, n1;
  unsigned char *blob, *bad;
  digest_t blob_digest, manifest_digest;
};

/* test_peer's nodes: stalls noticed in 2 s, the locality secret, and a
 * blob cap that a 10 GB Content-Length is over. */
static int node_open(struct ep_test_node *n, const char *id, bool gateway, uint16_t reg_port) {
  if (ep_test_node_init(n, id, gateway) < 0)
    return -1;
  n->d.cfg.peer_stall_timeout_s = 2;
  n->d.cfg.max_blob_mb = 64;
  snprintf(n->d.peer_secret, sizeof n->d.peer_secret, "%s", SECRET);
  return ep_test_node_start(n, REG, reg_port);
}

static int setup(void **state) {
  struct fx *x = calloc(1, sizeof *x);
  x->blob = malloc(BLOB_LEN);
  x->bad = malloc(BLOB_LEN);
  for (size_t i = 0; i < BLOB_LEN; i++)
    x->blob[i] = (unsigned char)(i * 13 + i / 4093);
  memcpy(x->bad, x->blob, BLOB_LEN);
  x->bad[BLOB_LEN / 2] ^= 0x5a;
  digest_buffer(x->blob, BLOB_LEN, &x->blob_digest);
  digest_buffer(fake_manifest_json, strlen(fake_manifest_json), &x->manifest_digest);
  struct fake *fs[] = {&x->reg, &x->evil};
  for (int i = 0; i < 2; i++) {
    fs[i]->manifest = fake_manifest_json;
    fs[i]->manifest_len = strlen(fake_manifest_json);
    fs[i]->manifest_ctype = oci_manifest;
    fs[i]->head_digest = fs[i]->get_digest = true;
    fs[i]->blob = i == 0 ? x->blob : x->bad;
    fs[i]->blob_len = BLOB_LEN;
    fs[i]->honour_range = true;
    if (fake_start(fs[i]) != 0)
      return -1;
  }
  if (node_open(&x->gw, "gw", true, x->reg.port) < 0 || node_open(&x->n1, "n1", false, 0) < 0)
    return -1;
  if (ep_test_node_join(&x->n1, &x->gw) < 0)
    return -1;
  *state = x;
  return 0;
}

static int teardown(void **state) {
  struct fx *x = *state;
  ep_test_node_close(&x->n1);
  ep_test_node_close(&x->gw);
  fake_stop(&x->reg);
  fake_stop(&x->evil);
  free(x->blob);
  free(x->bad);
  free(x);
  return 0;
}

/* ---- a small HTTP client ---- */

struct resp {
  long status;
  CURLcode rc;
  char *body;
  size_t len;
  char www_auth[128];
  char digest[128];
};

static size_t body_cb(char *b, size_t sz, size_t n, void *ud) {
  struct resp *r = ud;
  char *nb = realloc(r->body, r->len + sz * n + 1);
  if (nb == NULL)
    return 0;
  memcpy(nb + r->len, b, sz * n);
  r->body = nb;
  r->len += sz * n;
  r->body[r->len] = '\0';
  return sz * n;
}

static size_t header_cb(char *b, size_t sz, size_t n, void *ud) {
  struct resp *r = ud;
  size_t len = sz * n;
  const char *names[] = {"WWW-Authenticate: ", "Docker-Content-Digest: "};
  char *dst[] = {r->www_auth, r->digest};
  for (int i = 0; i < 2; i++) {
    size_t k = strlen(names[i]);
    if (len > k && strncasecmp(b, names[i], k) == 0)
      snprintf(dst[i], 128, "%.*s", (int)(len - k - 2), b + k);
  }
  return len;
}

static void get(uint16_t port, const char *path, const char *userpwd, const char *h1,
                const char *h2, struct resp *r) {
  memset(r, 0, sizeof *r);
  char url[512];
  snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
  CURL *c = curl_easy_init();
  struct curl_slist *hl = NULL;
  if (h1 != NULL)
    hl = curl_slist_append(hl, h1);
  if (h2 != NULL)
    hl = curl_slist_append(hl, h2);
  hl = curl_slist_append(hl, "Accept: application/vnd.oci.image.manifest.v1+json");
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  if (userpwd != NULL)
    curl_easy_setopt(c, CURLOPT_USERPWD, userpwd);
  r->rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  curl_slist_free_all(hl);
  curl_easy_cleanup(c);
}

static void blob_path(const digest_t *d, char *buf, size_t len) {
  snprintf(buf, len, "/v2/%s/blobs/sha256:%s?ns=%s", REPO, d->hex, REG);
}

/* ---- tests ---- */

static void test_blob_through_gateway(void **state) {
  struct fx *x = *state;
  char path[256];
  blob_path(&x->blob_digest, path, sizeof path);
  struct resp r;
  get(x->n1.local_port, path, NULL, NULL, NULL, &r);
  assert_int_equal(r.rc, CURLE_OK);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.len, BLOB_LEN);
  assert_memory_equal(r.body, x->blob, BLOB_LEN);
  free(r.body);
  assert_int_equal(x->reg.blob_gets, 1);
  /* The gateway kept it: its own runtime gets it without the uplink. */
  get(x->gw.local_port, path, NULL, NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.len, BLOB_LEN);
  free(r.body);
  assert_int_equal(x->reg.blob_gets, 1);
  struct fetch_stats ns, gs;
  fetcher_stats(x->n1.d.fetch, &ns);
  fetcher_stats(x->gw.d.fetch, &gs);
  assert_int_equal(ns.peer_bytes, BLOB_LEN);
  assert_int_equal(ns.upstream_bytes, 0);
  assert_int_equal(gs.upstream_bytes, BLOB_LEN);
  assert_int_equal(gs.served_peer_bytes, BLOB_LEN);
  /* The same bytes in /metrics: from the parent (and by its node id) on
   * n1, from the upstream then the store on the gateway. */
  struct metrics *nm = &x->n1.d.metrics, *gm = &x->gw.d.metrics;
  assert_int_equal(atomic_load(&nm->source_bytes[METRICS_SRC_PARENT]), BLOB_LEN);
  assert_int_equal(atomic_load(&nm->source_bytes[METRICS_SRC_PEER]), 0);
  assert_int_equal(atomic_load(metrics_peer_counter(nm, "gw")), BLOB_LEN);
  assert_int_equal(atomic_load(&nm->cache_misses), 1);
  assert_int_equal(atomic_load(&gm->source_bytes[METRICS_SRC_UPSTREAM]), BLOB_LEN);
  assert_int_equal(atomic_load(&gm->source_bytes[METRICS_SRC_LOCAL]), BLOB_LEN);
  assert_int_equal(atomic_load(&gm->served_peer_bytes), BLOB_LEN);
  assert_int_equal(atomic_load(&gm->cache_hits), 1);
}

static void test_tag_through_gateway(void **state) {
  struct fx *x = *state;
  char path[256], want[DIGEST_STR_LEN + 1];
  snprintf(path, sizeof path, "/v2/%s/manifests/latest?ns=%s", REPO, REG);
  digest_format(&x->manifest_digest, want);
  struct resp r;
  /* The node has no route to reg.test at all: only the gateway can answer. */
  get(x->n1.local_port, path, NULL, NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.digest, want);
  assert_int_equal(r.len, strlen(fake_manifest_json));
  free(r.body);
  int asked = x->reg.manifest_heads + x->reg.manifest_gets;
  assert_true(asked >= 1);
  get(x->n1.local_port, path, NULL, NULL, NULL, &r); /* cached on the node */
  assert_int_equal(r.status, 200);
  free(r.body);
  assert_int_equal(x->reg.manifest_heads + x->reg.manifest_gets, asked);
  /* by digest: from the node's store now */
  snprintf(path, sizeof path, "/v2/%s/manifests/%s?ns=%s", REPO, want, REG);
  get(x->n1.local_port, path, NULL, NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  free(r.body);
}

static void test_tag_unknown_without_gateway(void **state) {
  struct fx *x = *state;
  ep_err e = {0};
  assert_int_equal(index_node_delete(x->n1.d.idx, "gw", &e), 0);
  char path[256];
  snprintf(path, sizeof path, "/v2/%s/manifests/latest?ns=%s", REPO, REG);
  struct resp r;
  get(x->n1.local_port, path, NULL, NULL, NULL, &r);
  assert_int_equal(r.status, 404); /* the runtime falls back to the registry itself */
  assert_non_null(strstr(r.body, "MANIFEST_UNKNOWN"));
  free(r.body);
  assert_int_equal(x->reg.manifest_heads + x->reg.manifest_gets, 0);
}

static void test_peer_auth(void **state) {
  struct fx *x = *state;
  struct resp r;
  get(x->gw.peer_port, "/v2/", NULL, NULL, NULL, &r);
  assert_int_equal(r.status, 401);
  assert_string_equal(r.www_auth, "Basic realm=\"edgepull-peer\"");
  assert_non_null(strstr(r.body, "UNAUTHORIZED"));
  free(r.body);
  get(x->gw.peer_port, "/v2/", "n1:wrong", NULL, NULL, &r);
  assert_int_equal(r.status, 401);
  free(r.body);
  get(x->gw.peer_port, "/v2/", "n1:" SECRET "x", NULL, NULL, &r);
  assert_int_equal(r.status, 401);
  free(r.body);
  get(x->gw.peer_port, "/v2/", "n1:" SECRET, NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  free(r.body);
  get(x->gw.local_port, "/v2/", NULL, NULL, NULL, &r); /* never 401 locally */
  assert_int_equal(r.status, 200);
  free(r.body);
  char path[256];
  blob_path(&x->blob_digest, path, sizeof path);
  get(x->gw.peer_port, path, "n1:wrong", NULL, NULL, &r);
  assert_int_equal(r.status, 401);
  free(r.body);
  assert_int_equal(x->reg.blob_gets, 0);
}

static void test_hops_and_node_header(void **state) {
  struct fx *x = *state;
  struct resp r;
  get(x->gw.peer_port, "/v2/", "n1:" SECRET, "X-Edgepull-Hops: 33", NULL, &r);
  assert_int_equal(r.status, 508);
  assert_non_null(strstr(r.body, "errors"));
  free(r.body);
  get(x->gw.peer_port, "/v2/", "n1:" SECRET, "X-Edgepull-Hops: 99999999999999999999", NULL, &r);
  assert_int_equal(r.status, 508);
  free(r.body);
  get(x->gw.peer_port, "/v2/", "n1:" SECRET, "X-Edgepull-Hops: -1", NULL, &r);
  assert_int_equal(r.status, 400);
  free(r.body);
  get(x->gw.peer_port, "/v2/", "n1:" SECRET, "X-Edgepull-Hops: 32", NULL, &r);
  assert_int_equal(r.status, 200);
  free(r.body);
  get(x->gw.peer_port, "/v2/", "n1:" SECRET, "X-Edgepull-Node: ../etc", NULL, &r);
  assert_int_equal(r.status, 400);
  free(r.body);
}

static void test_asking_node_is_never_a_source(void **state) {
  struct fx *x = *state;
  /* The gateway asks n1 for a blob n1 lacks: n1's only source is its
   * parent, the gateway itself, which must not be asked back. */
  char path[256];
  blob_path(&x->blob_digest, path, sizeof path);
  struct resp r;
  get(x->n1.peer_port, path, "gw:" SECRET, "X-Edgepull-Node: gw", "X-Edgepull-Hops: 1", &r);
  assert_true(r.status >= 500);
  free(r.body);
  assert_int_equal(x->reg.blob_gets, 0);
  struct fetch_stats gs;
  fetcher_stats(x->gw.d.fetch, &gs);
  assert_int_equal(gs.served_peer_bytes, 0);
}

static void test_lying_peer_is_suspect(void **state) {
  struct fx *x = *state;
  ep_test_node_set_parent(&x->n1, "evil", x->evil.port);
  char path[256];
  blob_path(&x->blob_digest, path, sizeof path);
  struct resp r;
  get(x->n1.local_port, path, NULL, NULL, NULL, &r);
  /* Cut short: the runtime never gets the whole (wrong) blob. */
  assert_true(r.rc != CURLE_OK || r.status != 200 || r.len != BLOB_LEN);
  free(r.body);
  assert_true(sources_is_suspect(x->n1.d.src, "evil", ep_mono_ms() / 1000));
  /* With the good parent back the next pull is clean. */
  ep_test_node_set_parent(&x->n1, "gw", x->gw.peer_port);
  for (int i = 0; i < 50; i++) { /* the failed fetch is gone */
    blob_pipe *p = pipe_table_find(x->n1.d.pipes, &x->blob_digest);
    if (p == NULL)
      break;
    pipe_unref(p);
    usleep(100 * 1000);
  }
  get(x->n1.local_port, path, NULL, NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.len, BLOB_LEN);
  assert_memory_equal(r.body, x->blob, BLOB_LEN);
  free(r.body);
  assert_int_equal(x->reg.blob_gets, 1);
}

/* ---- misbehaving parents (issue 11); the parent dying at 50 % is the
 * former test_resume_after_parent_dies ---- */

enum bad_mode {
  BAD_DIE,        /* Content-Length right, connection cut after `cut` bytes */
  BAD_NO_LENGTH,  /* no Content-Length, the blob then `extra` junk bytes */
  BAD_BIG_LENGTH, /* Content-Length 10 GB, then the blob */
  BAD_DRIP,       /* 512 bytes every 250 ms (2 KB/s): never stalls, never ends */
  BAD_416,        /* every request answered 416 */
};

struct bad_parent {
  struct fx *x;
  enum bad_mode mode;
  size_t cut, extra;
  struct MHD_Daemon *d;
  uint16_t port;
  atomic_int gets;
};

static ssize_t bad_read(void *cls, uint64_t pos, char *buf, size_t max) {
  struct bad_parent *b = cls;
  size_t end = b->mode == BAD_DIE ? b->cut : BLOB_LEN + b->extra;
  if (b->mode == BAD_DRIP) {
    usleep(250 * 1000);
    max = max < 512 ? max : 512;
  }
  if (pos >= end)
    return b->mode == BAD_DIE ? MHD_CONTENT_READER_END_WITH_ERROR
                              : MHD_CONTENT_READER_END_OF_STREAM;
  size_t n = end - (size_t)pos < max ? end - (size_t)pos : max;
  for (size_t i = 0; i < n; i++)
    buf[i] = pos + i < BLOB_LEN ? (char)b->x->blob[pos + i] : 'j';
  return (ssize_t)n;
}

static enum MHD_Result bad_handler(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload,
                                   size_t *upload_size, void **con_cls) {
  static int first;
  struct bad_parent *b = cls;
  if (*con_cls == NULL) {
    *con_cls = &first;
    return MHD_YES;
  }
  atomic_fetch_add(&b->gets, 1);
  struct MHD_Response *r;
  unsigned status = 200;
  if (b->mode == BAD_416) {
    status = 416;
    r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
  } else {
    uint64_t len = b->mode == BAD_DIE ? BLOB_LEN : MHD_SIZE_UNKNOWN;
    r = MHD_create_response_from_callback(len, 16 * 1024, bad_read, b, NULL);
    if (b->mode == BAD_BIG_LENGTH) { /* MHD refuses this header unless told to allow it */
      MHD_set_response_options(r, MHD_RF_INSANITY_HEADER_CONTENT_LENGTH, MHD_RO_END);
      MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH, "10000000000");
    }
  }
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static void bad_start(struct fx *x, struct bad_parent *b) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  b->x = x;
  b->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                          NULL, bad_handler, b, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
  assert_non_null(b->d);
  b->port = MHD_get_daemon_info(b->d, MHD_DAEMON_INFO_BIND_PORT)->port;
  ep_test_node_set_parent(&x->n1, "bad", b->port);
}

/* The gateway as a holder in n1's index: the next source, and the size. */
static void gw_holds_blob(struct fx *x) {
  struct index_inv_entry v = {.digest = x->blob_digest, .size = BLOB_LEN};
  ep_err e = {0};
  assert_int_equal(index_inventory_replace(x->n1.d.idx, "gw", &v, 1, &e), 0);
}

/* n1's runtime pulls the blob: it completes, right, and n1 received each
 * byte about once (peer bytes ≤ the blob + what the bad parent cut). */
static void pull_completes(struct fx *x, uint64_t max_peer_bytes) {
  char path[256];
  blob_path(&x->blob_digest, path, sizeof path);
  struct resp r;
  get(x->n1.local_port, path, NULL, NULL, NULL, &r);
  assert_int_equal(r.rc, CURLE_OK);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.len, BLOB_LEN);
  assert_memory_equal(r.body, x->blob, BLOB_LEN);
  free(r.body);
  struct fetch_stats ns;
  fetcher_stats(x->n1.d.fetch, &ns);
  assert_true(ns.peer_bytes <= max_peer_bytes); /* ≥ the blob unless it was on disk */
  assert_true(max_peer_bytes == 0 || ns.peer_bytes >= BLOB_LEN);
  assert_true(x->reg.blob_gets <= 1);
  ep_err e = {0};
  for (int i = 0; i < 50 && store_has(x->n1.d.st, &x->blob_digest, NULL, &e) != 1; i++)
    usleep(100 * 1000); /* the commit follows the last byte */
  assert_int_equal(store_has(x->n1.d.st, &x->blob_digest, NULL, &e), 1);
}

struct reparent {
  struct fx *x;
  int after_ms;
};

static void *reparent_later(void *arg) {
  struct reparent *rp = arg;
  usleep((useconds_t)rp->after_ms * 1000);
  ep_test_node_set_parent(&rp->x->n1, "gw", rp->x->gw.peer_port);
  return NULL;
}

/* n1's parent misbehaves as b says; the gateway is the next source: listed
 * in n1's index as a holder (which also gives the size) when indexed, else
 * assigned as the new parent after reparent_ms. The pull completes; the
 * bad parent ends suspect or not. Returns how often it was asked. */
static int bad_parent_case(void **state, struct bad_parent b, bool indexed, int reparent_ms,
                           bool suspect) {
  struct fx *x = *state;
  bad_start(x, &b);
  if (indexed)
    gw_holds_blob(x);
  pthread_t t;
  struct reparent rp = {.x = x, .after_ms = reparent_ms};
  if (reparent_ms > 0)
    assert_int_equal(pthread_create(&t, NULL, reparent_later, &rp), 0);
  pull_completes(x, BLOB_LEN);
  if (reparent_ms > 0)
    pthread_join(t, NULL);
  assert_int_equal(sources_is_suspect(x->n1.d.src, "bad", ep_mono_ms() / 1000), suspect);
  MHD_stop_daemon(b.d);
  return atomic_load(&b.gets);
}

static void test_parent_dies_at_5(void **state) {
  bad_parent_case(state, (struct bad_parent){.mode = BAD_DIE, .cut = BLOB_LEN / 20}, true, 0,
                  false);
}
static void test_parent_dies_at_50(void **state) {
  bad_parent_case(state, (struct bad_parent){.mode = BAD_DIE, .cut = BLOB_LEN / 2}, true, 0, false);
}
static void test_parent_dies_at_95(void **state) {
  bad_parent_case(state, (struct bad_parent){.mode = BAD_DIE, .cut = BLOB_LEN / 20 * 19}, true, 0,
                  false);
}
/* a parent holds its last byte back until verified: it dies one short */
static void test_parent_dies_at_100(void **state) {
  bad_parent_case(state, (struct bad_parent){.mode = BAD_DIE, .cut = BLOB_LEN - 1}, true, 0, false);
}

/* The parent dies and no other source is known until the coordinator
 * assigns a new parent 3 s later (a heal with the default keepalive): the
 * fetch waits within its budget instead of failing after 4 quick rounds,
 * retries the dead parent only with a backoff, and resumes from the new
 * parent. */
static void test_parent_dies_then_reparented(void **state) {
  int gets = bad_parent_case(state, (struct bad_parent){.mode = BAD_DIE, .cut = BLOB_LEN / 3},
                             false, 3000, false);
  assert_true(gets <= 8);
}

static void test_parent_without_length(void **state) {
  bad_parent_case(state, (struct bad_parent){.mode = BAD_NO_LENGTH}, false, 0, false);
}

/* No Content-Length and bytes past the blob, size unknown (nothing to cut
 * at but the hash, checked where curl's chunks end): the bytes fail
 * verification, the partial is dropped, the runtime gets an error (never a
 * 200 with a wrong body), the parent is blamed, and the next pull takes the
 * blob from elsewhere. */
static void test_parent_longer_body(void **state) {
  struct fx *x = *state;
  struct bad_parent b = {.mode = BAD_NO_LENGTH, .extra = 1 << 20};
  bad_start(x, &b);
  char path[256];
  blob_path(&x->blob_digest, path, sizeof path);
  struct resp r;
  get(x->n1.local_port, path, NULL, NULL, NULL, &r);
  assert_true(r.rc != CURLE_OK || r.status != 200 || r.len != BLOB_LEN ||
              memcmp(r.body, x->blob, BLOB_LEN) == 0);
  free(r.body);
  assert_true(sources_is_suspect(x->n1.d.src, "bad", ep_mono_ms() / 1000));
  char partial[512];
  snprintf(partial, sizeof partial, "%s/ingest/%s.partial", x->n1.dir, x->blob_digest.hex);
  for (int i = 0; i < 50 && access(partial, F_OK) == 0; i++)
    usleep(100 * 1000);
  gw_holds_blob(x);
  pull_completes(x, 2 * BLOB_LEN + (1 << 20));
  MHD_stop_daemon(b.d);
}

/* Size known from the index: a longer body is cut at it, and blamed. */
static void test_parent_longer_body_known_size(void **state) {
  bad_parent_case(state, (struct bad_parent){.mode = BAD_NO_LENGTH, .extra = 1 << 20}, true, 0,
                  true);
}

/* A 10 GB Content-Length against the size in the index: cut before a byte
 * is kept, blamed, the blob taken from the gateway; the runtime is told
 * the real size. */
static void test_parent_too_large_length(void **state) {
  bad_parent_case(state, (struct bad_parent){.mode = BAD_BIG_LENGTH}, true, 0, true);
}

/* Size unknown: a Content-Length over --max-blob-size is refused. */
static void test_parent_length_over_cap(void **state) {
  bad_parent_case(state, (struct bad_parent){.mode = BAD_BIG_LENGTH}, false, 500, true);
}

/* 2 KB/s never trips curl's 1 KB/s stall guard: the rate floor drops it. */
static void test_parent_drips(void **state) {
  bad_parent_case(state, (struct bad_parent){.mode = BAD_DRIP}, true, 0, false);
}

/* A partial of len bytes of the blob in n1's ingest/ (path written). */
static void plant_partial(struct fx *x, size_t len, char *path, size_t cap) {
  snprintf(path, cap, "%s/ingest/%s.partial", x->n1.dir, x->blob_digest.hex);
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  assert_int_equal(fwrite(x->blob, 1, len, fp), len);
  fclose(fp);
}

/* A partial holding the whole blob (a crash between the last byte and the
 * commit) is committed without asking anyone, even a parent answering 416. */
static void test_complete_partial_commits(void **state) {
  struct fx *x = *state;
  struct bad_parent b = {.mode = BAD_416};
  bad_start(x, &b);
  char path[512];
  plant_partial(x, BLOB_LEN, path, sizeof path);
  pull_completes(x, 0);
  assert_int_equal(atomic_load(&b.gets), 0);
  MHD_stop_daemon(b.d);
}

/* A partial one byte short, the source answering 416 to the resume: what we
 * hold is verified (it is wrong: dropped, the reader cut), never taken as
 * "unreachable" and kept to fail every later request. */
static void test_416_on_resume_verifies(void **state) {
  struct fx *x = *state;
  struct bad_parent b = {.mode = BAD_416};
  bad_start(x, &b);
  char path[512];
  plant_partial(x, BLOB_LEN - 1, path, sizeof path);
  char url[256];
  blob_path(&x->blob_digest, url, sizeof url);
  struct resp r;
  get(x->n1.local_port, url, NULL, NULL, NULL, &r);
  assert_true(r.rc != CURLE_OK || r.status != 200 || r.len != BLOB_LEN);
  free(r.body);
  assert_true(atomic_load(&b.gets) >= 1);
  for (int i = 0; i < 50 && access(path, F_OK) == 0; i++)
    usleep(100 * 1000);
  assert_int_not_equal(access(path, F_OK), 0); /* dropped: the next pull starts clean */
  ep_test_node_set_parent(&x->n1, "gw", x->gw.peer_port);
  pull_completes(x, 2 * BLOB_LEN);
  MHD_stop_daemon(b.d);
}

/* Disk full: n2's state directory is a 2 MB tmpfs, the blob 3 MB. The
 * write failing with ENOSPC fails the pipe with EP_ENOSPC (which the
 * endpoint turns into an error, never a 200 with a short body), the partial
 * is dropped (the disk is free again) and what n2 holds is still served. */
static void test_disk_full(void **state) {
  struct fx *x = *state;
  struct ep_test_node n2 = {0};
  assert_int_equal(ep_test_tmpdir(n2.dir, sizeof n2.dir, "ep-peer-"), 0);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=2m edgepull-test %s 2>/dev/null", n2.dir);
  if (system(cmd) != 0) {
    rmdir(n2.dir);
    skip(); /* needs root (CAP_SYS_ADMIN) */
  }
  assert_int_equal(node_open(&n2, "n2", false, 0), 0);
  ep_test_node_set_parent(&n2, "gw", x->gw.peer_port);
  ep_err e = {0};
  assert_int_equal(
      store_put(n2.d.st, &x->manifest_digest, fake_manifest_json, strlen(fake_manifest_json), &e),
      0);
  char path[256];
  blob_path(&x->blob_digest, path, sizeof path);
  struct resp r;
  get(n2.local_port, path, NULL, NULL, NULL, &r);
  assert_true(r.rc != CURLE_OK || r.status != 200);
  free(r.body);
  blob_pipe *p = NULL;
  for (int i = 0; i < 50 && (p = pipe_table_find(n2.d.pipes, &x->blob_digest)) != NULL; i++) {
    pipe_unref(p);
    usleep(100 * 1000);
  }
  assert_null(p);
  ep_err last = {0};
  assert_int_equal(fetcher_last_error(n2.d.fetch, &x->blob_digest, &last), 1);
  assert_int_equal(last.code, EP_ENOSPC);
  char partial[512];
  snprintf(partial, sizeof partial, "%s/ingest/%s.partial", n2.dir, x->blob_digest.hex);
  assert_int_not_equal(access(partial, F_OK), 0);
  /* what it has is still served */
  snprintf(path, sizeof path, "/v2/%s/blobs/sha256:%s?ns=%s", REPO, x->manifest_digest.hex, REG);
  get(n2.local_port, path, NULL, NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.len, strlen(fake_manifest_json));
  free(r.body);
  ep_test_node_close(&n2);
  snprintf(cmd, sizeof cmd, "umount %s && rmdir %s", n2.dir, n2.dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_blob_through_gateway, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tag_through_gateway, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tag_unknown_without_gateway, setup, teardown),
      cmocka_unit_test_setup_teardown(test_peer_auth, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hops_and_node_header, setup, teardown),
      cmocka_unit_test_setup_teardown(test_asking_node_is_never_a_source, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lying_peer_is_suspect, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parent_dies_at_5, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parent_dies_at_50, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parent_dies_at_95, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parent_dies_at_100, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parent_dies_then_reparented, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parent_without_length, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parent_longer_body, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parent_longer_body_known_size, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parent_too_large_length, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parent_length_over_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_parent_drips, setup, teardown),
      cmocka_unit_test_setup_teardown(test_complete_partial_commits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_416_on_resume_verifies, setup, teardown),
      cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
  };
  int r = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return r;
}
