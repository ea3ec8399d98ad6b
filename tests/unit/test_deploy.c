/* Unit tests for the deploy worker's pure parts (plugin/deploy/deploy_ref.c,
 * deploy_plan.c, deploy_import.c): image references with Docker's rules,
 * platform strings, which platforms a node fetches, reading image
 * manifests and indexes (hostile ones included), and the names and files
 * the runtime import uses.
 *
 * End to end, without a broker: a gateway whose upstream is the in-process
 * fake registry (fake_registry.h) and a node whose parent is the gateway
 * (tests/lib/nodes.h, as test_peer has them) each run a deploy through the
 * worker: the gateway fetches from the registry (uplink bytes = the blob),
 * the node through the gateway (peer bytes), the registry serves the blob
 * once, a repeated deploy id is ignored, a second deploy finds everything
 * in the store, and an unknown image ends "failed" with the reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/ep_test.h"

#include "tests/lib/fake_registry.h"
#include "tests/lib/nodes.h"
#include "plugin/daemon/daemon.h"
#include "plugin/deploy/deploy_int.h"
#include "plugin/http/listen.h"

#define HEXA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEXB "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HEXC "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define HEXD "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"

static void expect_ref(const char *image, const char *reg, const char *repo, const char *tag,
                       const char *digest_hex) {
  struct deploy_ref r;
  ep_err e = {0};
  if (deploy_ref_parse(image, &r, &e) != 0)
    fail_msg("%s: %s", image, e.msg);
  assert_string_equal(r.registry, reg);
  assert_string_equal(r.repo, repo);
  assert_string_equal(r.tag, tag);
  assert_int_equal(r.has_digest, digest_hex != NULL);
  if (digest_hex != NULL)
    assert_string_equal(r.digest.hex, digest_hex);
}

static void test_ref_parse(void **state) {
  (void)state;
  expect_ref("alpine:3", "docker.io", "library/alpine", "3", NULL);
  expect_ref("alpine", "docker.io", "library/alpine", "latest", NULL);
  expect_ref("bitnami/redis:7.2", "docker.io", "bitnami/redis", "7.2", NULL);
  expect_ref("docker.io/alpine", "docker.io", "library/alpine", "latest", NULL);
  expect_ref("index.docker.io/library/alpine:edge", "docker.io", "library/alpine", "edge", NULL);
  expect_ref("ghcr.io/org/app/sub:v1.0", "ghcr.io", "org/app/sub", "v1.0", NULL);
  expect_ref("localhost/app", "localhost", "app", "latest", NULL);
  expect_ref("127.0.0.1:5000/team/app:2", "127.0.0.1:5000", "team/app", "2", NULL);
  expect_ref("reg.example:443/app@sha256:" HEXA, "reg.example:443", "app", "", HEXA);
  expect_ref("alpine:3@sha256:" HEXB, "docker.io", "library/alpine", "3", HEXB);
  const char *bad[] = {
      "",
      "Alpine",
      "alpine:",
      "alpine:-bad",
      "alpine@sha256:abc",
      "alpine@md5:" HEXA,
      "ghcr.io/",
      "/alpine",
      "a b",
      "alpine:3\n",
      "ex..ample/app",
      "bad_host:99999/app",
      "ghcr.io//app",
      NULL,
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct deploy_ref r;
    ep_err e = {0};
    if (deploy_ref_parse(bad[i], &r, &e) == 0)
      fail_msg("accepted image %s", bad[i] ? bad[i] : "(null)");
    assert_true(e.msg[0] != '\0');
  }
  char longname[700];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  struct deploy_ref r;
  assert_true(deploy_ref_parse(longname, &r, NULL) < 0);
}

static void test_platforms(void **state) {
  (void)state;
  struct deploy_platform p;
  ep_err e = {0};
  assert_int_equal(deploy_platform_parse("linux/arm/v7", &p, &e), 0);
  assert_string_equal(p.os, "linux");
  assert_string_equal(p.arch, "arm");
  assert_string_equal(p.variant, "v7");
  assert_int_equal(deploy_platform_parse("linux/amd64", &p, &e), 0);
  assert_string_equal(p.variant, "");
  assert_true(deploy_platform_parse("linux", &p, &e) < 0);
  assert_true(deploy_platform_parse("linux/", &p, &e) < 0);
  assert_true(deploy_platform_parse("Linux/amd64", &p, &e) < 0);
  assert_true(deploy_platform_parse("verylongosname123/amd64", &p, &e) < 0);

  struct deploy_options gw = {.gateway = true, .arch = "amd64"};
  struct deploy_options arm = {.gateway = false, .arch = "arm", .variant = "v7"};
  struct deploy_platform present[3] = {
      {"linux", "amd64", ""}, {"linux", "arm", "v7"}, {"linux", "arm", "v7"}};
  struct deploy_platform out[PROTO_PLATFORMS_MAX];
  size_t n = 0;
  struct proto_deploy req = {.id = "0123456789abcdef", .image = "alpine"};
  /* None requested: the gateway takes every platform present (deduplicated). */
  assert_int_equal(deploy_wanted(&gw, &req, present, 3, out, &n, &e), 0);
  assert_int_equal(n, 2);
  assert_string_equal(out[1].arch, "arm");
  /* A node only its own. */
  assert_int_equal(deploy_wanted(&arm, &req, present, 3, out, &n, &e), 0);
  assert_int_equal(n, 1);
  assert_string_equal(out[0].arch, "arm");
  assert_string_equal(out[0].variant, "v7");
  /* Requested platforms replace the present ones. */
  req.nplatforms = 1;
  snprintf(req.platforms[0], sizeof req.platforms[0], "linux/arm64");
  assert_int_equal(deploy_wanted(&gw, &req, present, 3, out, &n, &e), 0);
  assert_int_equal(n, 1);
  assert_string_equal(out[0].arch, "arm64");
  assert_int_equal(deploy_wanted(&arm, &req, present, 3, out, &n, &e), 0);
  assert_int_equal(n, 0); /* not this node's platform: nothing to fetch */
  snprintf(req.platforms[0], sizeof req.platforms[0], "linux/arm");
  assert_int_equal(deploy_wanted(&arm, &req, present, 3, out, &n, &e), 0);
  assert_int_equal(n, 1); /* no variant requested: any arm */
  /* Nothing known at all: the node's own. */
  req.nplatforms = 0;
  assert_int_equal(deploy_wanted(&gw, &req, NULL, 0, out, &n, &e), 0);
  assert_int_equal(n, 1);
  assert_string_equal(out[0].arch, "amd64");
}

static const char index_json[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
    "\"manifests\":["
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":500,"
    "\"digest\":\"sha256:" HEXA "\",\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":500,"
    "\"digest\":\"sha256:" HEXB "\",\"platform\":{\"architecture\":\"arm\",\"os\":\"linux\","
    "\"variant\":\"v6\"}},"
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":500,"
    "\"digest\":\"sha256:" HEXC "\",\"platform\":{\"architecture\":\"arm\",\"os\":\"linux\","
    "\"variant\":\"v7\"}},"
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":500,"
    "\"digest\":\"sha256:" HEXD "\",\"platform\":{\"architecture\":\"unknown\","
    "\"os\":\"unknown\"}}]}";

static const char manifest_json[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"config\":{\"digest\":\"sha256:" HEXA "\",\"size\":10},"
    "\"layers\":[{\"digest\":\"sha256:" HEXB "\",\"size\":2000},"
    "{\"digest\":\"sha256:" HEXC "\",\"size\":3000},"
    "{\"digest\":\"sha256:" HEXB "\",\"size\":2000}]}";

static void test_manifests(void **state) {
  (void)state;
  ep_err e = {0};
  assert_int_equal(deploy_is_index(index_json, strlen(index_json), NULL, &e), 1);
  assert_int_equal(deploy_is_index(manifest_json, strlen(manifest_json), NULL, &e), 0);
  struct deploy_platform want[3] = {
      {"linux", "arm", "v7"}, {"linux", "amd64", ""}, {"linux", "s390x", ""}};
  digest_t kids[3];
  size_t nk = 0;
  assert_int_equal(deploy_select(index_json, strlen(index_json), want, 3, kids, &nk, &e), 0);
  assert_int_equal(nk, 2);
  assert_string_equal(kids[0].hex, HEXC);
  assert_string_equal(kids[1].hex, HEXA);
  /* arm without a variant: the first arm entry only. */
  struct deploy_platform anyarm = {"linux", "arm", ""};
  assert_int_equal(deploy_select(index_json, strlen(index_json), &anyarm, 1, kids, &nk, &e), 0);
  assert_int_equal(nk, 1);
  assert_string_equal(kids[0].hex, HEXB);

  struct deploy_blob *blobs = NULL;
  size_t nb = 0;
  assert_int_equal(deploy_manifest_blobs(manifest_json, strlen(manifest_json), &blobs, &nb, &e), 0);
  assert_int_equal(nb, 3); /* config first, the repeated layer once */
  assert_string_equal(blobs[0].digest.hex, HEXA);
  assert_int_equal(blobs[2].size, 3000);
  /* A second manifest sharing blobs adds only the new ones. */
  assert_int_equal(deploy_manifest_blobs(manifest_json, strlen(manifest_json), &blobs, &nb, &e), 0);
  assert_int_equal(nb, 3);
  free(blobs);

  const char *bad[] = {
      "",
      "[]",
      "{}",
      "{\"config\":{},\"layers\":[]}",
      "{\"config\":{\"digest\":\"sha256:" HEXA "\",\"size\":-1},\"layers\":[]}",
      "{\"config\":{\"digest\":\"sha256:xyz\",\"size\":1},\"layers\":[]}",
      "{\"config\":{\"digest\":\"sha256:" HEXA "\",\"size\":1},\"layers\":{}}",
      "{\"config\":{\"digest\":\"sha256:" HEXA "\",\"size\":1},\"layers\":[7]}",
      "{\"config\":{\"digest\":\"sha256:" HEXA "\",\"size\":1},\"layers\":[],\"layers\":[]}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    blobs = NULL;
    nb = 0;
    ep_err_clear(&e);
    if (deploy_manifest_blobs(bad[i], strlen(bad[i]), &blobs, &nb, &e) == 0)
      fail_msg("accepted manifest %s", bad[i]);
    assert_true(e.msg[0] != '\0');
    free(blobs);
  }
  assert_true(deploy_is_index("{\"a\":1}", 7, NULL, &e) < 0);
  assert_true(deploy_is_index("x\0y", 3, NULL, &e) < 0);
  const char *bad_index = "{\"manifests\":[{\"digest\":\"sha256:zz\",\"size\":1,"
                          "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\"}}]}";
  assert_true(deploy_select(bad_index, strlen(bad_index), &anyarm, 1, kids, &nk, &e) < 0);
  assert_true(deploy_select("{\"manifests\":5}", 15, &anyarm, 1, kids, &nk, &e) < 0);
  /* Every truncation of a valid index fails cleanly (ASan watches). */
  for (size_t n = 0; n < strlen(index_json); n++)
    (void)deploy_select(index_json, n, want, 3, kids, &nk, NULL);
}

static void test_import_names(void **state) {
  (void)state;
  char from[512], repo[512], toml[512];
  ep_err e = {0};
  struct deploy_ref r;
  assert_int_equal(deploy_ref_parse("alpine:3", &r, &e), 0);
  assert_int_equal(
      deploy_docker_names("127.0.0.1:5050", &r, from, sizeof from, repo, sizeof repo, &e), 0);
  assert_string_equal(from, "127.0.0.1:5050/library/alpine");
  assert_string_equal(repo, "alpine");
  assert_int_equal(deploy_ref_parse("ghcr.io/org/app:1", &r, &e), 0);
  assert_int_equal(
      deploy_docker_names("127.0.0.1:5050", &r, from, sizeof from, repo, sizeof repo, &e), 0);
  assert_string_equal(from, "127.0.0.1:5050/ghcr.io/org/app");
  assert_string_equal(repo, "ghcr.io/org/app");
  assert_true(deploy_docker_names("127.0.0.1:5050", &r, from, 8, repo, sizeof repo, &e) < 0);
  assert_int_equal(deploy_hosts_toml("127.0.0.1:5050", toml, sizeof toml, &e), 0);
  assert_non_null(strstr(toml, "[host.\"http://127.0.0.1:5050\"]"));
  assert_non_null(strstr(toml, "capabilities = [\"pull\", \"resolve\"]"));
  assert_true(deploy_hosts_toml("127.0.0.1:5050", toml, 16, &e) < 0);
}

/* ---- end to end through the worker ---- */

#define E2E_BLOB_LEN (256 * 1024 + 7)
#define E2E_REG "reg.test"

struct e2e_node {
  struct ep_test_node n;
  deployer *w;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct proto_progress finals[8];
  size_t nfinal, nticks;
};

struct e2e {
  struct fake reg;
  struct e2e_node gw, n1;
  unsigned char *blob;
  char manifest[1024];
  digest_t blob_digest;
};

static void on_progress(void *ud, const struct proto_progress *p, bool final) {
  struct e2e_node *n = ud;
  pthread_mutex_lock(&n->mu);
  if (final && n->nfinal < 8)
    n->finals[n->nfinal++] = *p;
  else if (!final)
    n->nticks++;
  pthread_cond_broadcast(&n->cv);
  pthread_mutex_unlock(&n->mu);
}

static int e2e_open(struct e2e_node *n, const char *id, bool gateway, uint16_t reg_port) {
  pthread_mutex_init(&n->mu, NULL);
  pthread_cond_init(&n->cv, NULL);
  if (ep_test_node_init(&n->n, id, gateway) < 0 || ep_test_node_start(&n->n, E2E_REG, reg_port) < 0)
    return -1;
  struct deploy_options o = {.gateway = gateway, .arch = "amd64"};
  snprintf(o.node, sizeof o.node, "%s", id);
  snprintf(o.mirror, sizeof o.mirror, "127.0.0.1:%u", n->n.local_port);
  snprintf(o.containerd_address, sizeof o.containerd_address, "%s/no-containerd.sock", n->n.dir);
  snprintf(o.docker_socket, sizeof o.docker_socket, "%s/no-docker.sock", n->n.dir);
  o.import_timeout_s = 20;
  struct deploy_deps dd;
  edgepulld_deploy_deps(&n->n.d, &dd);
  ep_err e = {0};
  return deploy_new(&dd, &o, on_progress, n, &n->w, &e);
}

static void e2e_close(struct e2e_node *n) {
  deploy_free(n->w);
  ep_test_node_close(&n->n);
  pthread_cond_destroy(&n->cv);
  pthread_mutex_destroy(&n->mu);
}

static int e2e_setup(void **state) {
  struct e2e *x = calloc(1, sizeof *x);
  x->blob = malloc(E2E_BLOB_LEN);
  for (size_t i = 0; i < E2E_BLOB_LEN; i++)
    x->blob[i] = (unsigned char)(i * 7 + i / 1021);
  digest_buffer(x->blob, E2E_BLOB_LEN, &x->blob_digest);
  snprintf(
      x->manifest, sizeof x->manifest,
      "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
      "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"size\":%d,"
      "\"digest\":\"sha256:%s\"},\"layers\":[{\"mediaType\":"
      "\"application/vnd.oci.image.layer.v1.tar+gzip\",\"size\":%d,\"digest\":\"sha256:%s\"}]}",
      E2E_BLOB_LEN, x->blob_digest.hex, E2E_BLOB_LEN, x->blob_digest.hex);
  x->reg.manifest = x->manifest;
  x->reg.manifest_len = strlen(x->manifest);
  x->reg.manifest_ctype = "application/vnd.oci.image.manifest.v1+json";
  x->reg.head_digest = x->reg.get_digest = true;
  x->reg.blob = x->blob;
  x->reg.blob_len = E2E_BLOB_LEN;
  x->reg.honour_range = true;
  if (fake_start(&x->reg) != 0 || e2e_open(&x->gw, "gw", true, x->reg.port) < 0 ||
      e2e_open(&x->n1, "n1", false, 0) < 0)
    return -1;
  if (ep_test_node_join(&x->n1.n, &x->gw.n) < 0)
    return -1;
  *state = x;
  return 0;
}

static int e2e_teardown(void **state) {
  struct e2e *x = *state;
  e2e_close(&x->n1);
  e2e_close(&x->gw);
  fake_stop(&x->reg);
  free(x->blob);
  free(x);
  return 0;
}

/* Submits a deploy and waits (bounded) for its final message. */
static struct proto_progress run_deploy(struct e2e_node *n, const char *id, const char *image,
                                        enum proto_import imp) {
  struct proto_deploy req = {.ts = 1, .import = imp};
  snprintf(req.id, sizeof req.id, "%s", id);
  snprintf(req.image, sizeof req.image, "%s", image);
  ep_err e = {0};
  pthread_mutex_lock(&n->mu);
  size_t before = n->nfinal;
  pthread_mutex_unlock(&n->mu);
  assert_int_equal(deploy_submit(n->w, &req, &e), 0);
  assert_int_equal(deploy_submit(n->w, &req, &e), 1); /* the same id again: ignored */
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 30;
  pthread_mutex_lock(&n->mu);
  while (n->nfinal == before && pthread_cond_timedwait(&n->cv, &n->mu, &until) == 0)
    ;
  assert_true(n->nfinal > before);
  struct proto_progress p = n->finals[before];
  pthread_mutex_unlock(&n->mu);
  assert_string_equal(p.id, id);
  return p;
}

/* Import names (lease, snapshot key and content ref prefix) from four threads at once: all
 * distinct, with this process's pid in them. */
struct id_batch {
  atomic_ulong *seq;
  char ids[500][64];
};

static void *id_thread(void *ud) {
  struct id_batch *b = ud;
  for (size_t i = 0; i < 500; i++)
    deploy_import_id(b->seq, b->ids[i], sizeof b->ids[i]);
  return NULL;
}

static int id_cmp(const void *a, const void *b) {
  return strcmp(a, b);
}

static void test_import_ids(void **state) {
  (void)state;
  atomic_ulong seq;
  atomic_init(&seq, 0);
  struct id_batch *b = calloc(4, sizeof *b);
  assert_non_null(b);
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    b[i].seq = &seq;
    assert_int_equal(pthread_create(&th[i], NULL, id_thread, &b[i]), 0);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  char prefix[64];
  snprintf(prefix, sizeof prefix, "edgepull-import-%ld-", (long)getpid());
  char(*ids)[64] = calloc(2000, 64);
  assert_non_null(ids);
  for (int i = 0; i < 4; i++)
    memcpy(ids[i * 500], b[i].ids, sizeof b[i].ids);
  qsort(ids, 2000, 64, id_cmp);
  for (size_t i = 0; i < 2000; i++) {
    assert_int_equal(strncmp(ids[i], prefix, strlen(prefix)), 0);
    if (i > 0)
      assert_string_not_equal(ids[i - 1], ids[i]);
  }
  free(ids);
  free(b);
}

static void test_end_to_end(void **state) {
  struct e2e *x = *state;
  struct proto_progress p =
      run_deploy(&x->gw, "00000000000000a1", E2E_REG "/library/test:1", PROTO_IMPORT_NONE);
  if (p.state != PROTO_PROGRESS_DONE)
    fail_msg("gateway deploy failed: %s", p.error);
  assert_int_equal(p.blobs_total, 1); /* config and layer are the same blob */
  assert_int_equal(p.blobs_done, 1);
  assert_int_equal(p.bytes_done, E2E_BLOB_LEN);
  assert_int_equal(p.uplink_bytes, E2E_BLOB_LEN);
  ep_err e = {0};
  assert_int_equal(store_has(x->gw.n.d.st, &x->blob_digest, NULL, &e), 1);
  /* the deploy held its blobs against the disk GC until it ended, and let them go */
  assert_non_null(x->gw.n.d.holds);
  assert_int_equal(hold_count(x->gw.n.d.holds, &x->blob_digest), 0);

  p = run_deploy(&x->n1, "00000000000000a2", E2E_REG "/library/test:1", PROTO_IMPORT_NONE);
  if (p.state != PROTO_PROGRESS_DONE)
    fail_msg("node deploy failed: %s", p.error);
  assert_int_equal(p.blobs_done, 1);
  assert_int_equal(p.uplink_bytes, 0);
  assert_int_equal(p.peer_bytes, E2E_BLOB_LEN);
  assert_int_equal(store_has(x->n1.n.d.st, &x->blob_digest, NULL, &e), 1);
  assert_int_equal(x->reg.blob_gets, 1); /* the uplink carried it once */

  /* Again: everything is in the store already. */
  p = run_deploy(&x->gw, "00000000000000a3", E2E_REG "/library/test:1", PROTO_IMPORT_NONE);
  assert_int_equal(p.state, PROTO_PROGRESS_DONE);
  assert_int_equal(p.uplink_bytes, 0);
  assert_int_equal(p.bytes_done, E2E_BLOB_LEN);

  /* A registry nobody knows: failed, with the reason. */
  p = run_deploy(&x->gw, "00000000000000a4", "nowhere.invalid/app:1", PROTO_IMPORT_NONE);
  assert_int_equal(p.state, PROTO_PROGRESS_FAILED);
  assert_true(p.error[0] != '\0');

  /* Imports into runtimes that are not there: failed, saying which. */
  p = run_deploy(&x->gw, "00000000000000a5", E2E_REG "/library/test:1", PROTO_IMPORT_DOCKER);
  assert_int_equal(p.state, PROTO_PROGRESS_FAILED);
  assert_non_null(strstr(p.error, "import into docker"));
  assert_int_equal(p.blobs_done, 1);
  assert_int_equal(hold_count(x->gw.n.d.holds, &x->blob_digest), 0); /* a failed one too */
  p = run_deploy(&x->gw, "00000000000000a6", E2E_REG "/library/test:1", PROTO_IMPORT_CONTAINERD);
  assert_int_equal(p.state, PROTO_PROGRESS_FAILED);
  assert_non_null(strstr(p.error, "import into containerd"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ref_parse),
      cmocka_unit_test(test_platforms),
      cmocka_unit_test(test_manifests),
      cmocka_unit_test(test_import_names),
      cmocka_unit_test(test_import_ids),
      cmocka_unit_test_setup_teardown(test_end_to_end, e2e_setup, e2e_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
