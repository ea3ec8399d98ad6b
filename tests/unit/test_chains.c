/* plugin/mirror/chains: chain IDs from the configs the mirror stored (issue 10 point 3, clients
 * that send no CRI labels). A real store and index in a temp dir hold two images that share a
 * base layer; the lookup finds each layer by its chain ID (identity.ChainID, the sums containerd
 * computes), with the registry and repository the manifest came from; a chain of no image, an
 * index manifest, a missing config and a config that doesn't match its manifest find nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ep_test.h"
#include "plugin/mirror/chains.h"
#include "plugin/mirror/manifest.h"
#include "store/index.h"
#include "store/store.h"

struct fx {
  char dir[128];
  store *st;
  index_db *idx;
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  if (f == NULL || ep_test_tmpdir(f->dir, sizeof f->dir, "ep-test-chains-") < 0)
    return -1;
  char p[192];
  snprintf(p, sizeof p, "%s/store", f->dir);
  if (store_open(p, &f->st, NULL) < 0)
    return -1;
  snprintf(p, sizeof p, "%s/index.db", f->dir);
  if (index_open(p, &f->idx, NULL) < 0)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  index_close(f->idx);
  store_close(f->st);
  ep_test_rm_rf(f->dir);
  free(f);
  return 0;
}

/* A digest standing for a blob the test never stores (a layer or diffID). */
static digest_t fake(const char *name) {
  digest_t d;
  digest_buffer(name, strlen(name), &d);
  return d;
}

static digest_t chain_of(const digest_t *parent, const digest_t *diff) {
  if (parent == NULL)
    return *diff;
  char b[2 * DIGEST_STR_LEN + 2], p[DIGEST_STR_LEN + 1], d[DIGEST_STR_LEN + 1];
  digest_format(parent, p);
  digest_format(diff, d);
  int n = snprintf(b, sizeof b, "%s %s", p, d);
  digest_t out;
  digest_buffer(b, (size_t)n, &out);
  return out;
}

/* Stores a config with diffs[0..n) (put_config false: only the manifest), records a manifest of
 * media type mt, registry/repo, referencing it and layers[0..n); returns the config digest. */
static digest_t add_image_mt(struct fx *f, const char *mt, const char *reg, const char *repo,
                             const digest_t *diffs, const digest_t *layers, size_t n,
                             bool put_config) {
  char cfg[2048];
  size_t len = (size_t)snprintf(cfg, sizeof cfg, "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[");
  for (size_t i = 0; i < n; i++) {
    char d[DIGEST_STR_LEN + 1];
    digest_format(&diffs[i], d);
    len += (size_t)snprintf(cfg + len, sizeof cfg - len, "%s\"%s\"", i ? "," : "", d);
  }
  len += (size_t)snprintf(cfg + len, sizeof cfg - len, "]},\"repo\":\"%s\"}", repo);
  digest_t c;
  digest_buffer(cfg, len, &c);
  if (put_config)
    assert_int_equal(store_put(f->st, &c, cfg, len, NULL), 0);
  digest_t refs[8], m;
  refs[0] = c;
  for (size_t i = 0; i < n; i++)
    refs[1 + i] = layers[i];
  char mname[256];
  snprintf(mname, sizeof mname, "%s/%s manifest %d", reg, repo, put_config);
  digest_buffer(mname, strlen(mname), &m);
  assert_int_equal(index_manifest_put(f->idx, &m, mt, 500, reg, repo, refs, 1 + n, NULL), 0);
  return c;
}

static digest_t add_image(struct fx *f, const char *reg, const char *repo, const digest_t *diffs,
                          const digest_t *layers, size_t n, bool put_config) {
  return add_image_mt(f, MT_OCI_MANIFEST, reg, repo, diffs, layers, n, put_config);
}

static void test_lookup(void **state) {
  struct fx *f = *state;
  digest_t base = fake("diff base"), app = fake("diff app"), tool = fake("diff tool");
  digest_t lbase = fake("layer base"), lapp = fake("layer app"), ltool = fake("layer tool");
  digest_t d1[] = {base, app}, l1[] = {lbase, lapp};
  digest_t d2[] = {base, tool}, l2[] = {lbase, ltool};
  add_image(f, "docker.io", "library/app", d1, l1, 2, true);
  add_image(f, "ghcr.io", "org/tool", d2, l2, 2, true);

  struct chain_hit hit;
  digest_t c = chain_of(NULL, &base);
  assert_int_equal(chains_lookup(f->idx, f->st, &c, &hit, NULL), 1);
  assert_true(digest_equal(&hit.layer, &lbase));

  digest_t top = chain_of(&base, &tool); /* the second layer of ghcr.io/org/tool */
  assert_int_equal(chains_lookup(f->idx, f->st, &top, &hit, NULL), 1);
  assert_true(digest_equal(&hit.layer, &ltool));
  assert_string_equal(hit.registry, "ghcr.io");
  assert_string_equal(hit.repository, "org/tool");

  top = chain_of(&base, &app);
  assert_int_equal(chains_lookup(f->idx, f->st, &top, &hit, NULL), 1);
  assert_true(digest_equal(&hit.layer, &lapp));
  assert_string_equal(hit.registry, "docker.io");
  assert_string_equal(hit.repository, "library/app");

  /* app's diffID on top of nothing is no chain of either image */
  assert_int_equal(chains_lookup(f->idx, f->st, &app, &hit, NULL), 0);
  /* nor is a chain with the layers swapped */
  c = chain_of(&app, &base);
  assert_int_equal(chains_lookup(f->idx, f->st, &c, &hit, NULL), 0);
}

static void test_not_ours(void **state) {
  struct fx *f = *state;
  digest_t a = fake("diff a"), b = fake("diff b"), la = fake("layer a"), lb = fake("layer b");
  /* the config is not in the store */
  digest_t d[] = {a}, l[] = {la};
  add_image(f, "docker.io", "library/noconfig", d, l, 1, false);
  struct chain_hit hit;
  assert_int_equal(chains_lookup(f->idx, f->st, &a, &hit, NULL), 0);

  /* an index lists manifests, not a config and layers, even where it would parse as one */
  digest_t d2[] = {b, a}, l2[] = {lb, la};
  add_image_mt(f, MT_OCI_INDEX, "docker.io", "library/x", d2, l2, 2, true);
  assert_int_equal(chains_lookup(f->idx, f->st, &b, &hit, NULL), 0);

  /* a config with two diffIDs under a manifest with one layer */
  digest_t cfg = add_image(f, "docker.io", "library/two", d2, l2, 2, false);
  digest_t m = fake("short manifest"), refs[] = {cfg, lb};
  add_image(f, "docker.io", "library/two", d2, l2, 2, true); /* stores cfg */
  assert_int_equal(index_manifest_put(f->idx, &m, MT_DOCKER_MANIFEST, 400, "docker.io",
                                      "library/short", refs, 2, NULL),
                   0);
  assert_int_equal(chains_lookup(f->idx, f->st, &b, &hit, NULL), 1);
  assert_string_equal(hit.repository, "library/two");
  digest_t top = chain_of(&b, &a);
  assert_int_equal(chains_lookup(f->idx, f->st, &top, &hit, NULL), 1);
  assert_string_equal(hit.repository, "library/two"); /* never library/short */
  assert_true(digest_equal(&hit.layer, &la));
}

static void test_from_config(void **state) {
  (void)state;
  digest_t ch[3];
  const char *ok = "{\"rootfs\":{\"diff_ids\":[\"sha256:"
                   "1111111111111111111111111111111111111111111111111111111111111111\"]}}";
  assert_int_equal(chains_from_config(ok, strlen(ok), 1, ch, NULL), 0);
  assert_string_equal(ch[0].hex,
                      "1111111111111111111111111111111111111111111111111111111111111111");
  ep_err e = {0};
  assert_int_equal(chains_from_config(ok, strlen(ok), 2, ch, &e), -EP_EINVAL);
  const char *bad[] = {"", "[]", "{\"rootfs\":{}}", "{\"rootfs\":{\"diff_ids\":[\"md5:00\"]}}",
                       "{\"rootfs\":{\"diff_ids\":[7]}}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(chains_from_config(bad[i], strlen(bad[i]), 1, ch, NULL), -EP_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_lookup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_ours, setup, teardown),
      cmocka_unit_test(test_from_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
