/* Unit tests of the GC's side of the index (schema v3): pins (put, move,
 * delete, list, refused on a read-only handle) and the facts per complete
 * blob: holders among other online nodes, "needed" (another node holds a
 * manifest referencing it, not the blob), pinned through an index and a
 * child manifest, manifests and image configs marked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/ep_test.h"
#include <sqlite3.h>

#include "store/index.h"
#include "store/index_gc.h"

static digest_t dg(unsigned n) {
  digest_t d;
  snprintf(d.hex, sizeof d.hex, "%064x", n);
  return d;
}

static void put_blob(index_db *db, unsigned n, uint64_t size, int64_t at) {
  struct index_blob b = {.digest = dg(n),
                         .size = size,
                         .state = INDEX_BLOB_COMPLETE,
                         .created = at,
                         .last_access = at};
  assert_int_equal(index_blob_put(db, &b, NULL), 0);
}

static void put_node(index_db *db, const char *id, bool online) {
  struct index_node n = {.online = online};
  snprintf(n.id, sizeof n.id, "%s", id);
  assert_int_equal(index_node_put(db, &n, NULL), 0);
}

static const struct index_gc_blob *find(const struct index_gc_blob *v, size_t n, unsigned id) {
  digest_t d = dg(id);
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i].digest.hex, d.hex) == 0)
      return &v[i];
  fail_msg("blob %u not listed", id);
  return NULL;
}

static void test_gc_facts(void **state) {
  (void)state;
  char dir[64], path[128];
  assert_int_equal(ep_test_tmpdir(dir, sizeof dir, "ep-test-idxgc-"), 0);
  snprintf(path, sizeof path, "%s/index.db", dir);
  index_db *db = NULL;
  ep_err e = {0};
  assert_int_equal(index_open(path, &db, &e), 0);
  assert_true(index_latest_schema_version() >= 3);
  /* an index (100) -> a manifest (101) -> config 1, layer 2; manifest 102 -> 3 */
  for (unsigned i = 1; i <= 4; i++)
    put_blob(db, i, 1000 * i, 100 + i);
  put_blob(db, 100, 10, 1);
  put_blob(db, 101, 10, 1);
  put_blob(db, 102, 10, 1);
  digest_t r100[] = {dg(101)}, r101[] = {dg(1), dg(2)}, r102[] = {dg(3)};
  assert_int_equal(index_manifest_put(db, &r100[0], "m", 10, "r.io", "a", r101, 2, &e), 0);
  digest_t i100 = dg(100), i102 = dg(102);
  assert_int_equal(index_manifest_put(db, &i100, "i", 10, "r.io", "a", r100, 1, &e), 0);
  assert_int_equal(index_manifest_put(db, &i102, "m", 10, "r.io", "b", r102, 1, &e), 0);
  /* an OCI index (103) listing 5 and 6: an index has no config */
  put_blob(db, 5, 50, 1);
  put_blob(db, 6, 6000, 1);
  put_blob(db, 103, 10, 1);
  digest_t i103 = dg(103), r103[] = {dg(5), dg(6)};
  assert_int_equal(index_manifest_put(db, &i103, "application/vnd.oci.image.index.v1+json", 10,
                                      "r.io", "c", r103, 2, &e),
                   0);
  /* self holds all; n1 (online) holds 102 and 1 but not 3: it needs 3;
   * n2 (offline) holds 2 and 102: counts for nothing */
  put_node(db, "self", true);
  put_node(db, "n1", true);
  put_node(db, "n2", false);
  struct index_inv_entry n1[] = {{dg(102), 10}, {dg(1), 1000}};
  struct index_inv_entry n2[] = {{dg(102), 10}, {dg(2), 2000}};
  assert_int_equal(index_inventory_replace(db, "n1", n1, 2, &e), 0);
  assert_int_equal(index_inventory_replace(db, "n2", n2, 2, &e), 0);
  struct index_pin pin = {
      .registry = "r.io", .repository = "a", .reference = "v1", .digest = dg(100), .created = 5};
  assert_int_equal(index_pin_put(db, &pin, &e), 0);

  struct index_gc_blob *v = NULL;
  size_t n = 0;
  assert_int_equal(index_gc_blobs(db, "self", &v, &n, &e), 0);
  assert_int_equal(n, 10);
  /* a manifest's first reference is its config, none of an index's is */
  assert_true(find(v, n, 1)->config);
  assert_false(find(v, n, 2)->config);
  assert_false(find(v, n, 5)->config || find(v, n, 6)->config);
  const struct index_gc_blob *b1 = find(v, n, 1), *b3 = find(v, n, 3), *b4 = find(v, n, 4);
  assert_int_equal(b1->holders, 1);
  assert_true(b1->pinned);
  assert_false(b1->needed);
  assert_true(find(v, n, 2)->pinned);
  assert_int_equal(find(v, n, 2)->holders, 0); /* n2 is offline */
  assert_true(b3->needed);
  assert_false(b3->pinned);
  assert_false(b4->needed || b4->pinned || b4->manifest);
  assert_int_equal(b4->size, 4000);
  assert_int_equal(b4->last_access, 104);
  assert_true(find(v, n, 101)->manifest && find(v, n, 101)->pinned);
  free(v);

  /* an image's blobs: the root and what it reaches, each once, in digest order; a partial
   * is not counted, an unknown root reaches nothing */
  struct index_sized_blob *ib = NULL;
  size_t ni = 0;
  assert_int_equal(index_image_blobs(db, &i100, &ib, &ni, &e), 0);
  assert_int_equal(ni, 4);
  assert_string_equal(ib[0].digest.hex, dg(1).hex);
  assert_string_equal(ib[1].digest.hex, dg(2).hex);
  assert_int_equal(ib[1].size, 2000);
  assert_string_equal(ib[3].digest.hex, dg(101).hex);
  free(ib);
  struct index_blob part = {.digest = dg(2), .size = 2000, .state = INDEX_BLOB_PARTIAL};
  assert_int_equal(index_blob_put(db, &part, &e), 0);
  assert_int_equal(index_image_blobs(db, &i100, &ib, &ni, &e), 0);
  assert_int_equal(ni, 3);
  free(ib);
  put_blob(db, 2, 2000, 102);
  digest_t nowhere = dg(999);
  assert_int_equal(index_image_blobs(db, &nowhere, &ib, &ni, &e), 0);
  assert_int_equal(ni, 0);
  free(ib);

  /* pins: listed, moved, removed; unpinned blobs are no longer pinned */
  struct index_pin *pins = NULL;
  size_t np = 0;
  assert_int_equal(index_pins(db, &pins, &np, &e), 0);
  assert_int_equal(np, 1);
  assert_string_equal(pins[0].reference, "v1");
  assert_string_equal(pins[0].digest.hex, dg(100).hex);
  free(pins);
  assert_int_equal(index_pin_delete(db, &pin, &e), 1);
  assert_int_equal(index_pin_delete(db, &pin, &e), 0);
  assert_int_equal(index_gc_blobs(db, "self", &v, &n, &e), 0);
  assert_false(find(v, n, 1)->pinned);
  free(v);
  /* a pin without a registry is refused */
  struct index_pin bad = {.repository = "a", .reference = "v1", .digest = dg(1)};
  assert_true(index_pin_put(db, &bad, &e) < 0);
  index_close(db);

  /* read-only: listing works, pinning is refused */
  assert_int_equal(index_open_readonly(path, &db, &e), 0);
  assert_int_equal(index_pins(db, &pins, &np, &e), 0);
  assert_int_equal(np, 0);
  free(pins);
  assert_true(index_pin_put(db, &pin, &e) < 0);
  index_close(db);
  assert_int_equal(ep_test_rm_rf(dir), 0);
}

/* A v2 file (as the last release left it): read-only, pins are refused as
 * unsupported; the daemon's open upgrades it to v3 with no pins. */
static void test_upgrade_v2(void **state) {
  (void)state;
  char dir[64], path[128];
  assert_int_equal(ep_test_tmpdir(dir, sizeof dir, "ep-test-idxgc2-"), 0);
  snprintf(path, sizeof path, "%s/index.db", dir);
  sqlite3 *h = NULL;
  assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
  assert_int_equal(sqlite3_exec(h, index_migration_sql(1), NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_exec(h, index_migration_sql(2), NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_exec(h, "PRAGMA user_version = 2", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(h);
  index_db *db = NULL;
  ep_err e = {0};
  assert_int_equal(index_open_readonly(path, &db, &e), 0);
  struct index_pin *pins = NULL;
  size_t np = 0;
  assert_int_equal(index_pins(db, &pins, &np, &e), -EP_EUNSUPPORTED);
  struct index_gc_blob *v = NULL;
  assert_int_equal(index_gc_blobs(db, "", &v, &np, &e), -EP_EUNSUPPORTED);
  index_close(db);
  assert_int_equal(index_open(path, &db, &e), 0);
  assert_int_equal(index_schema_version(db), 3);
  assert_int_equal(index_pins(db, &pins, &np, &e), 0);
  assert_int_equal(np, 0);
  free(pins);
  index_close(db);
  assert_int_equal(ep_test_rm_rf(dir), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_gc_facts),
                                     cmocka_unit_test(test_upgrade_v2)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
