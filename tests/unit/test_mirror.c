/* Unit tests for manifests through the mirror (plugin/mirror/mirror.h) on
 * a standalone stack (tests/lib/stack.h) whose upstream is a fake registry
 * (tests/lib/fake_registry.h), and, in a locality, a second fake as the
 * gateway's peer endpoint.
 *
 * Shown here: a tag is resolved upstream once and then answered from the
 * cache while fresh, and the manifest from the store; an expired tag is
 * resolved again, served stale while the upstream cannot answer, and
 * unknown once the upstream says 404; a client whose Accept does not admit
 * the cached media type makes the mirror ask again; manifests by digest are
 * verified and kept; a node in a locality resolves tags through its gateway
 * only, and goes upstream when the gateway cannot answer only with
 * --upstream-fallback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugin/mirror/manifest.h"
#include "plugin/mirror/mirror.h"
#include "tests/lib/fake_registry.h"
#include "tests/lib/stack.h"

#define REG "reg.test"
#define REPO "library/test"

struct fx {
  struct fake reg; /* the upstream registry */
  struct fake gw;  /* the locality's gateway, as its peer endpoint */
  struct ep_test_stack s;
  digest_t dg;
};

static void fake_manifest_init(struct fake *f) {
  f->manifest = fake_manifest_json;
  f->manifest_len = strlen(fake_manifest_json);
  f->manifest_ctype = MT_OCI_MANIFEST;
  f->head_digest = f->get_digest = true;
}

static int setup(void **state) {
  struct fx *x = calloc(1, sizeof *x);
  if (x == NULL)
    return -1;
  fake_manifest_init(&x->reg);
  fake_manifest_init(&x->gw);
  digest_buffer(fake_manifest_json, strlen(fake_manifest_json), &x->dg);
  if (fake_start(&x->reg) < 0 || fake_start(&x->gw) < 0)
    return -1;
  *state = x;
  return 0;
}

static int teardown(void **state) {
  struct fx *x = *state;
  ep_test_stack_close(&x->s);
  fake_stop(&x->reg);
  fake_stop(&x->gw);
  free(x);
  return 0;
}

static void open_stack(struct fx *x, const struct ep_test_stack_options *o) {
  assert_int_equal(ep_test_stack_open(&x->s, REG, x->reg.port, o), 0);
}

static struct ref_target tag_target(const char *tag) {
  struct ref_target t = {.kind = REF_MANIFEST};
  snprintf(t.registry, sizeof t.registry, "%s", REG);
  snprintf(t.name, sizeof t.name, "%s", REPO);
  snprintf(t.tag, sizeof t.tag, "%s", tag);
  return t;
}

static struct ref_target digest_target(const digest_t *d) {
  struct ref_target t = tag_target("");
  t.by_digest = true;
  t.digest = *d;
  return t;
}

/* mirror_manifest of t: its result, and on success the body checked. */
static int get(struct fx *x, const struct ref_target *t, const char *accept, bool *stale,
               ep_err *e) {
  struct mirror_manifest m;
  ep_err_clear(e);
  int r = mirror_manifest(&x->s.mirror, t, accept, &m, e);
  if (r < 0)
    return r;
  assert_memory_equal(m.body, fake_manifest_json, strlen(fake_manifest_json));
  assert_int_equal(m.len, strlen(fake_manifest_json));
  assert_true(digest_equal(&m.digest, &x->dg));
  assert_string_equal(m.media_type, MT_OCI_MANIFEST);
  if (stale != NULL)
    *stale = m.stale;
  mirror_manifest_clear(&m);
  return 0;
}

static void set_status(struct fake *f, int status) {
  pthread_mutex_lock(&f->lock);
  f->force_status = status;
  pthread_mutex_unlock(&f->lock);
}

static void test_tag_cached_while_fresh(void **state) {
  struct fx *x = *state;
  open_stack(x, NULL);
  struct ref_target t = tag_target("1");
  ep_err e = {0};
  bool stale = true;
  assert_int_equal(get(x, &t, NULL, &stale, &e), 0);
  assert_false(stale);
  assert_int_equal(x->reg.manifest_heads, 1); /* the tag */
  assert_int_equal(x->reg.manifest_gets, 1);  /* the body, by digest */
  assert_int_equal(store_has(x->s.st, &x->dg, NULL, &e), 1);
  /* Fresh: neither the tag nor the manifest is asked for again, even with
   * the upstream gone. */
  set_status(&x->reg, 503);
  assert_int_equal(get(x, &t, NULL, &stale, &e), 0);
  assert_false(stale);
  assert_int_equal(x->reg.manifest_heads, 1);
  assert_int_equal(x->reg.manifest_gets, 1);
}

static void test_tag_expired_stale_then_gone(void **state) {
  struct fx *x = *state;
  open_stack(x, NULL);
  x->s.mirror.tag_ttl_s = 0; /* every answer expires at once */
  struct ref_target t = tag_target("1");
  ep_err e = {0};
  bool stale = true;
  assert_int_equal(get(x, &t, NULL, &stale, &e), 0);
  /* Expired: resolved again; the manifest itself comes from the store. */
  assert_int_equal(get(x, &t, NULL, &stale, &e), 0);
  assert_false(stale);
  assert_int_equal(x->reg.manifest_heads, 2);
  assert_int_equal(x->reg.manifest_gets, 1);
  /* The upstream cannot answer: the expired entry is served, marked. */
  set_status(&x->reg, 503);
  assert_int_equal(get(x, &t, NULL, &stale, &e), 0);
  assert_true(stale);
  /* The upstream says the tag is gone: gone. */
  set_status(&x->reg, 404);
  assert_int_equal(get(x, &t, NULL, &stale, &e), -EP_ENOTFOUND);
  assert_int_equal(e.code, EP_ENOTFOUND);
  /* A tag never cached while the upstream is down: an upstream error, not
   * a 404 (the runtime should not conclude the tag does not exist). */
  set_status(&x->reg, 503);
  struct ref_target other = tag_target("2");
  assert_true(get(x, &other, NULL, NULL, &e) < 0);
  assert_int_not_equal(e.code, EP_ENOTFOUND);
}

static void test_accept_not_admitting_cache(void **state) {
  struct fx *x = *state;
  open_stack(x, NULL);
  struct ref_target t = tag_target("1");
  ep_err e = {0};
  assert_int_equal(get(x, &t, MT_OCI_MANIFEST, NULL, &e), 0);
  assert_int_equal(get(x, &t, MT_OCI_INDEX ", " MT_OCI_MANIFEST, NULL, &e), 0);
  assert_int_equal(x->reg.manifest_heads, 1); /* admitted: from the cache */
  /* A client that only takes Docker manifests: the cached OCI answer is
   * not for it, so the upstream is asked with its Accept. */
  (void)get(x, &t, MT_DOCKER_MANIFEST, NULL, &e);
  assert_int_equal(x->reg.manifest_heads, 2);
}

static void test_by_digest_verified_and_kept(void **state) {
  struct fx *x = *state;
  open_stack(x, NULL);
  struct ref_target t = digest_target(&x->dg);
  ep_err e = {0};
  assert_int_equal(get(x, &t, NULL, NULL, &e), 0);
  assert_int_equal(x->reg.manifest_heads, 0);
  assert_int_equal(x->reg.manifest_gets, 1);
  char mt[256];
  uint64_t size = 0;
  assert_int_equal(index_manifest_get(x->s.idx, &x->dg, mt, &size, &e), 1);
  assert_string_equal(mt, MT_OCI_MANIFEST);
  assert_int_equal(size, strlen(fake_manifest_json));
  /* Kept: served without the upstream. */
  set_status(&x->reg, 503);
  assert_int_equal(get(x, &t, NULL, NULL, &e), 0);
  assert_int_equal(x->reg.manifest_gets, 1);

  /* A body that does not hash to the digest asked for is refused and not
   * kept. */
  set_status(&x->reg, 0);
  digest_t other;
  digest_buffer("something else", 14, &other);
  struct ref_target wrong = digest_target(&other);
  assert_true(get(x, &wrong, NULL, NULL, &e) < 0);
  assert_int_equal(e.code, EP_EDIGEST);
  assert_int_equal(store_has(x->s.st, &other, NULL, &e), 0);
}

/* Joins a locality as node n1 whose parent and gateway is x->gw. */
static void join_locality(struct fx *x) {
  struct proto_parent p = {.has_parent = true, .peer_port = x->gw.port};
  snprintf(p.id, sizeof p.id, "n1");
  snprintf(p.parent, sizeof p.parent, "gw");
  snprintf(p.addr, sizeof p.addr, "127.0.0.1");
  sources_set_parent(x->s.src, &p);
  struct index_node g = {.online = true, .gateway = true, .peer_port = x->gw.port};
  snprintf(g.id, sizeof g.id, "gw");
  snprintf(g.addr, sizeof g.addr, "127.0.0.1");
  ep_err e = {0};
  assert_int_equal(index_node_put(x->s.idx, &g, &e), 0);
}

static void test_locality_tags_through_gateway(void **state) {
  struct fx *x = *state;
  open_stack(x, NULL);
  join_locality(x);
  struct ref_target t = tag_target("1");
  ep_err e = {0};
  assert_int_equal(get(x, &t, NULL, NULL, &e), 0);
  assert_int_equal(x->gw.manifest_gets, 1); /* tag and body in one GET */
  assert_int_equal(x->reg.manifest_heads + x->reg.manifest_gets, 0);
  assert_int_equal(store_has(x->s.st, &x->dg, NULL, &e), 1);

  /* The gateway cannot answer and nothing is cached: unknown (404), and
   * the upstream is not asked without --upstream-fallback. */
  set_status(&x->gw, 503);
  struct ref_target other = tag_target("2");
  assert_int_equal(get(x, &other, NULL, NULL, &e), -EP_ENOTFOUND);
  assert_int_equal(x->gw.forced, 1);
  assert_int_equal(x->reg.manifest_heads + x->reg.manifest_gets + x->reg.forced, 0);
}

static void test_locality_upstream_fallback(void **state) {
  struct fx *x = *state;
  open_stack(x, &(struct ep_test_stack_options){.upstream_fallback = true});
  join_locality(x);
  set_status(&x->gw, 503);
  struct ref_target t = tag_target("1");
  ep_err e = {0};
  assert_int_equal(get(x, &t, NULL, NULL, &e), 0);
  assert_true(x->gw.forced >= 1); /* asked first */
  assert_int_equal(x->reg.manifest_heads, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_tag_cached_while_fresh, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tag_expired_stale_then_gone, setup, teardown),
      cmocka_unit_test_setup_teardown(test_accept_not_admitting_cache, setup, teardown),
      cmocka_unit_test_setup_teardown(test_by_digest_verified_and_kept, setup, teardown),
      cmocka_unit_test_setup_teardown(test_locality_tags_through_gateway, setup, teardown),
      cmocka_unit_test_setup_teardown(test_locality_upstream_fallback, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
