/* Two edgepulld instances in one process on 127.0.0.1, forming a locality
 * without a broker: a gateway whose upstream is the in-process fake
 * registry (fake_registry.h), and a node whose parent is the gateway (set
 * through the sources_set_parent test hook, the gateway listed in the
 * node's locality index). Shows the node-to-node data path end to end:
 * blobs through the gateway's peer endpoint (the registry serves one GET),
 * tags resolved only through the gateway, the peer endpoint's Basic auth
 * (401 there, never on the local port), the hop limit (508), the asking
 * node never used as a source, and a peer serving wrong bytes marked
 * suspect while clean data is then fetched from another source. */
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

#include "tests/unit/ep_test.h"

#include "common/clock.h"
#include <curl/curl.h>

#include "tests/lib/fake_registry.h"
#include "plugin/daemon/daemon.h"
#include "plugin/http/listen.h"

#define BLOB_LEN (3 * 1024 * 1024 + 77)
#define REG "reg.test"
#define REPO "library/test"
#define SECRET "locality-s3cret"

static const char manifest_json[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"size\":2,"
    "\"digest\":\"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\"},"
    "\"layers\":[]}";
static const char oci_manifest[] = "application/vnd.oci.image.manifest.v1+json";

struct node {
  char dir[64];
  struct edgepulld d;
  uint16_t local_port, peer_port;
};

struct fx {
  struct fake reg;  /* the upstream registry */
  struct fake evil; /* a "peer" serving flipped bytes */
  struct node gw, n1;
  unsigned char *blob, *bad;
  digest_t blob_digest, manifest_digest;
};

static uint16_t fd_port(int fd) {
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
    return 0;
  return ntohs(sa.sin_port);
}

static int start_server(struct node *n, enum server_mode mode, uint16_t *port) {
  int fd = -1;
  ep_err e = {0};
  if (listen_open("127.0.0.1:0", &fd, &e) < 0)
    return -1;
  *port = fd_port(fd);
  return edgepulld_serve(&n->d, fd, mode, &e);
}

static int node_open(struct node *n, const char *id, bool gateway, uint16_t reg_port) {
  snprintf(n->dir, sizeof n->dir, "/tmp/ep-peer-XXXXXX");
  if (mkdtemp(n->dir) == NULL)
    return -1;
  config_defaults(&n->d.cfg);
  snprintf(n->d.cfg.state_dir, sizeof n->d.cfg.state_dir, "%s", n->dir);
  snprintf(n->d.cfg.node_id, sizeof n->d.cfg.node_id, "%s", id);
  n->d.cfg.gateway = gateway;
  n->d.cfg.peer_stall_timeout_s = 2;
  snprintf(n->d.peer_secret, sizeof n->d.peer_secret, "%s", SECRET);
  ep_err e = {0};
  char spec[128];
  snprintf(spec, sizeof spec, "%s=http://127.0.0.1:%u", REG, reg_port);
  if (reg_port != 0 && config_add_registry_mapping(&n->d.cfg, spec, &e) < 0)
    return -1;
  if (edgepulld_open(&n->d, &(struct edgepulld_options){.source_wait_ms = 200}, &e) < 0) {
    fprintf(stderr, "open %s: %s\n", id, e.msg);
    return -1;
  }
  if (start_server(n, SERVER_LOCAL, &n->local_port) < 0 ||
      start_server(n, SERVER_PEER, &n->peer_port) < 0)
    return -1;
  return 0;
}

static void node_close(struct node *n) {
  edgepulld_close(&n->d);
  if (ep_test_rmrf(n->dir) != 0)
    fprintf(stderr, "cleanup of %s failed\n", n->dir);
}

static void set_parent(struct node *n, const char *id, uint16_t port) {
  struct proto_parent p = {.has_parent = true, .peer_port = port};
  snprintf(p.id, sizeof p.id, "%s", n->d.cfg.node_id);
  snprintf(p.parent, sizeof p.parent, "%s", id);
  snprintf(p.addr, sizeof p.addr, "127.0.0.1");
  sources_set_parent(n->d.src, &p);
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
  digest_buffer(manifest_json, strlen(manifest_json), &x->manifest_digest);
  struct fake *fs[] = {&x->reg, &x->evil};
  for (int i = 0; i < 2; i++) {
    fs[i]->manifest = manifest_json;
    fs[i]->manifest_len = strlen(manifest_json);
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
  set_parent(&x->n1, "gw", x->gw.peer_port);
  struct index_node g = {.online = true, .gateway = true, .peer_port = x->gw.peer_port};
  snprintf(g.id, sizeof g.id, "gw");
  snprintf(g.addr, sizeof g.addr, "127.0.0.1");
  ep_err e = {0};
  if (index_node_put(x->n1.d.idx, &g, &e) < 0)
    return -1;
  *state = x;
  return 0;
}

static int teardown(void **state) {
  struct fx *x = *state;
  node_close(&x->n1);
  node_close(&x->gw);
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
  assert_int_equal(r.len, strlen(manifest_json));
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
  set_parent(&x->n1, "evil", x->evil.port);
  char path[256];
  blob_path(&x->blob_digest, path, sizeof path);
  struct resp r;
  get(x->n1.local_port, path, NULL, NULL, NULL, &r);
  /* Cut short: the runtime never gets the whole (wrong) blob. */
  assert_true(r.rc != CURLE_OK || r.status != 200 || r.len != BLOB_LEN);
  free(r.body);
  assert_true(sources_is_suspect(x->n1.d.src, "evil", ep_mono_ms() / 1000));
  /* With the good parent back the next pull is clean. */
  set_parent(&x->n1, "gw", x->gw.peer_port);
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

/* A parent that dies at half of the blob: its connection is cut. */
static ssize_t dying_read(void *cls, uint64_t pos, char *buf, size_t max) {
  struct fx *x = cls;
  if (pos >= BLOB_LEN / 2)
    return MHD_CONTENT_READER_END_WITH_ERROR;
  size_t n = BLOB_LEN / 2 - (size_t)pos < max ? BLOB_LEN / 2 - (size_t)pos : max;
  memcpy(buf, x->blob + pos, n);
  return (ssize_t)n;
}

static enum MHD_Result dying_handler(void *cls, struct MHD_Connection *c, const char *url,
                                     const char *method, const char *version, const char *upload,
                                     size_t *upload_size, void **con_cls) {
  static int first;
  if (*con_cls == NULL) {
    *con_cls = &first;
    return MHD_YES;
  }
  struct MHD_Response *r =
      MHD_create_response_from_callback(BLOB_LEN, 64 * 1024, dying_read, cls, NULL);
  enum MHD_Result ret = MHD_queue_response(c, 200, r);
  MHD_destroy_response(r);
  return ret;
}

static void test_resume_after_parent_dies(void **state) {
  struct fx *x = *state;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct MHD_Daemon *dying =
      MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                       NULL, dying_handler, x, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
  assert_non_null(dying);
  const union MHD_DaemonInfo *i = MHD_get_daemon_info(dying, MHD_DAEMON_INFO_BIND_PORT);
  set_parent(&x->n1, "dying", i->port);
  /* The index says the gateway holds it: the next source after the parent. */
  struct index_inv_entry v = {.digest = x->blob_digest, .size = BLOB_LEN};
  ep_err e = {0};
  assert_int_equal(index_inventory_replace(x->n1.d.idx, "gw", &v, 1, &e), 0);
  char path[256];
  blob_path(&x->blob_digest, path, sizeof path);
  struct resp r;
  get(x->n1.local_port, path, NULL, NULL, NULL, &r);
  assert_int_equal(r.rc, CURLE_OK);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.len, BLOB_LEN);
  assert_memory_equal(r.body, x->blob, BLOB_LEN);
  free(r.body);
  /* Resumed, not restarted: the node received each byte once. */
  struct fetch_stats ns;
  fetcher_stats(x->n1.d.fetch, &ns);
  assert_int_equal(ns.peer_bytes, BLOB_LEN);
  assert_int_equal(x->reg.blob_gets, 1);
  MHD_stop_daemon(dying);
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
      cmocka_unit_test_setup_teardown(test_resume_after_parent_dies, setup, teardown),
  };
  int r = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return r;
}
