/* Unit tests of the locality tables of the index (schema v2): the upgrade of
 * a v1 file, v1 files opened read-only, node upserts that keep the parent,
 * parents that create rows, inventory snapshots and deltas, index_where and
 * its order, totals, deletes that take the inventory along, bounds on input
 * and on rows edited by hand, and a 20,000-entry snapshot timed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "tests/unit/ep_test.h"
#include <sqlite3.h>

#include "store/index.h"

struct fix {
  char dir[64];
  char path[128];
};

static int setup(void **state) {
  struct fix *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -1;
  if (ep_test_tmpdir(f->dir, sizeof f->dir, "ep-test-idxloc-") < 0) {
    free(f);
    return -1;
  }
  snprintf(f->path, sizeof f->path, "%s/index.db", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fix *f = *state;
  int rc = ep_test_rm_rf(f->dir);
  free(f);
  return rc == 0 ? 0 : -1;
}

static digest_t dg(unsigned n) {
  digest_t d;
  snprintf(d.hex, sizeof d.hex, "%064x", n);
  return d;
}

static void raw_sql(const char *path, const char *sql) {
  sqlite3 *h = NULL;
  assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
  char *emsg = NULL;
  if (sqlite3_exec(h, sql, NULL, NULL, &emsg) != SQLITE_OK)
    fail_msg("sql failed: %s", emsg);
  sqlite3_close(h);
}

static long long raw_count(const char *path, const char *sql) {
  sqlite3 *h = NULL;
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  long long n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

static index_db *open_rw(const char *path) {
  index_db *db = NULL;
  ep_err e = {0};
  if (index_open(path, &db, &e) != 0)
    fail_msg("index_open: %s", e.msg);
  return db;
}

static index_db *open_ro(const char *path) {
  index_db *db = NULL;
  ep_err e = {0};
  if (index_open_readonly(path, &db, &e) != 0)
    fail_msg("index_open_readonly: %s", e.msg);
  return db;
}

static struct index_node node(const char *id, bool online) {
  struct index_node n = {.peer_port = 5051,
                         .link_mbps = 100,
                         .free_bytes = 1u << 30,
                         .online = online,
                         .last_seen = 1700000000};
  snprintf(n.id, sizeof n.id, "%s", id);
  snprintf(n.addr, sizeof n.addr, "198.18.0.%zu", strlen(id));
  snprintf(n.arch, sizeof n.arch, "arm64");
  snprintf(n.version, sizeof n.version, "0.3.0");
  return n;
}

static void put_node(index_db *db, const struct index_node *n) {
  ep_err e = {0};
  if (index_node_put(db, n, &e) != 0)
    fail_msg("node_put %s: %s", n->id, e.msg);
}

static void replace_inv(index_db *db, const char *id, unsigned first, unsigned count,
                        uint64_t size) {
  struct index_inv_entry *v = calloc(count + 1, sizeof *v);
  assert_non_null(v);
  for (unsigned i = 0; i < count; i++)
    v[i] = (struct index_inv_entry){.digest = dg(first + i), .size = size};
  ep_err e = {0};
  if (index_inventory_replace(db, id, v, count, &e) != 0)
    fail_msg("inventory_replace %s: %s", id, e.msg);
  free(v);
}

/* Collects index_where's answer as "id:size,id:size". */
struct holders {
  char s[512];
  int stop_after;
  int seen;
};

static int holder_cb(const struct index_node *n, uint64_t size, void *ud) {
  struct holders *h = ud;
  size_t len = strlen(h->s);
  snprintf(h->s + len, sizeof h->s - len, "%s%s:%llu", len > 0 ? "," : "", n->id,
           (unsigned long long)size);
  h->seen++;
  return h->stop_after > 0 && h->seen >= h->stop_after ? 7 : 0;
}

static const char *where(index_db *db, unsigned n, struct holders *h) {
  memset(h, 0, sizeof *h);
  digest_t d = dg(n);
  ep_err e = {0};
  if (index_where(db, &d, holder_cb, h, &e) != 0)
    fail_msg("where: %s", e.msg);
  return h->s;
}

static void test_v1_file_upgrade(void **state) {
  struct fix *f = *state;
  raw_sql(f->path, index_migration_sql(1));
  raw_sql(f->path, "PRAGMA user_version = 1;"
                   "INSERT INTO blobs VALUES ('sha256:" /* a v1 row to keep */
                   "0000000000000000000000000000000000000000000000000000000000000005',"
                   " 50, 'x/y', 'complete', 1, 2);");
  /* Read-only on v1: v1 queries work, locality ones say why they cannot. */
  index_db *db = open_ro(f->path);
  assert_int_equal(index_schema_version(db), 1);
  struct index_blob b;
  digest_t d5 = dg(5);
  assert_int_equal(index_blob_get(db, &d5, &b, NULL), 1);
  ep_err e = {0};
  struct index_node n;
  assert_int_equal(index_node_get(db, "n1", &n, &e), -EP_EUNSUPPORTED);
  assert_non_null(strstr(e.msg, "has no locality tables yet (schema v1)"));
  struct holders h;
  assert_int_equal(index_where(db, &d5, holder_cb, &h, &e), -EP_EUNSUPPORTED);
  index_close(db);

  db = open_rw(f->path);
  assert_int_equal(index_schema_version(db), index_latest_schema_version());
  assert_true(index_latest_schema_version() >= 2);
  assert_int_equal(index_blob_get(db, &d5, &b, NULL), 1);
  assert_int_equal(b.size, 50);
  assert_string_equal(b.media_type, "x/y");
  struct index_node n1 = node("n1", true);
  put_node(db, &n1);
  replace_inv(db, "n1", 5, 1, 50);
  assert_string_equal(where(db, 5, &h), "n1:50");
  index_close(db);
  assert_int_equal(raw_count(f->path, "PRAGMA user_version"), index_latest_schema_version());
}

static void test_node_put_keeps_parent(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  ep_err e = {0};
  struct index_node n;
  assert_int_equal(index_node_get(db, "n1", &n, &e), 0);
  /* A parent assignment may come before the node's state: creates the row. */
  assert_int_equal(index_node_set_parent(db, "n1", "gw", 7, &e), 0);
  assert_int_equal(index_node_get(db, "n1", &n, &e), 1);
  assert_string_equal(n.parent, "gw");
  assert_int_equal(n.epoch, 7);
  assert_false(n.online);
  assert_string_equal(n.addr, "");
  assert_int_equal(n.blobs, 0);

  struct index_node in = node("n1", true);
  snprintf(in.parent, sizeof in.parent, "ignored");
  in.epoch = 99;
  in.gateway = false;
  in.link_mbps = UINT32_MAX;
  in.free_bytes = (uint64_t)INT64_MAX;
  in.peer_port = 65535;
  snprintf(in.variant, sizeof in.variant, "v8");
  put_node(db, &in);
  assert_int_equal(index_node_get(db, "n1", &n, &e), 1);
  assert_string_equal(n.parent, "gw");
  assert_int_equal(n.epoch, 7);
  assert_true(n.online);
  assert_string_equal(n.addr, in.addr);
  assert_int_equal(n.peer_port, 65535);
  assert_string_equal(n.arch, "arm64");
  assert_string_equal(n.variant, "v8");
  assert_int_equal(n.link_mbps, UINT32_MAX);
  assert_int_equal(n.free_bytes, (uint64_t)INT64_MAX);
  assert_string_equal(n.version, "0.3.0");
  assert_int_equal(n.last_seen, 1700000000);

  in.online = false; /* a Last Will */
  in.gateway = true;
  in.last_seen = 1700000100;
  put_node(db, &in);
  assert_int_equal(index_node_get(db, "n1", &n, &e), 1);
  assert_false(n.online);
  assert_true(n.gateway);
  assert_int_equal(n.last_seen, 1700000100);
  assert_string_equal(n.parent, "gw");

  assert_int_equal(index_node_set_parent(db, "n1", NULL, 8, &e), 0);
  assert_int_equal(index_node_get(db, "n1", &n, &e), 1);
  assert_string_equal(n.parent, "");
  assert_int_equal(n.epoch, 8);
  assert_int_equal(index_node_set_parent(db, "n1", "n2", 9, &e), 0);
  assert_int_equal(index_node_set_parent(db, "n1", "", 10, &e), 0);
  assert_int_equal(index_node_get(db, "n1", &n, &e), 1);
  assert_string_equal(n.parent, "");
  index_close(db);
}

static void test_inventory_where(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  ep_err e = {0};
  struct holders h;
  struct index_node a = node("a", false), b = node("b", true), c = node("c", true);
  put_node(db, &a);
  put_node(db, &b);
  put_node(db, &c);
  replace_inv(db, "a", 1, 3, 100); /* 1 2 3 */
  replace_inv(db, "b", 2, 2, 100); /* 2 3 */
  replace_inv(db, "c", 3, 1, 100); /* 3 */
  assert_string_equal(where(db, 1, &h), "a:100");
  /* Online holders first, then by id. */
  assert_string_equal(where(db, 2, &h), "b:100,a:100");
  assert_string_equal(where(db, 3, &h), "b:100,c:100,a:100");
  assert_string_equal(where(db, 9, &h), "");
  /* A callback's non-zero stops the walk and is returned. */
  memset(&h, 0, sizeof h);
  h.stop_after = 1;
  digest_t d3 = dg(3);
  assert_int_equal(index_where(db, &d3, holder_cb, &h, &e), 7);
  assert_string_equal(h.s, "b:100");

  /* Delta: removals first, then additions (a digest in both is held). */
  struct index_inv_entry add[] = {{dg(4), 40}, {dg(1), 11}, {dg(5), 5}};
  digest_t del[] = {dg(1), dg(2), dg(77)};
  assert_int_equal(index_inventory_apply(db, "a", add, 3, del, 3, &e), 0);
  assert_string_equal(where(db, 1, &h), "a:11");
  assert_string_equal(where(db, 2, &h), "b:100");
  assert_string_equal(where(db, 4, &h), "a:40");
  struct index_node n;
  assert_int_equal(index_node_get(db, "a", &n, &e), 1);
  assert_int_equal(n.blobs, 4); /* 1 3 4 5 */
  assert_int_equal(n.blob_bytes, 11 + 100 + 40 + 5);
  assert_int_equal(index_inventory_apply(db, "a", NULL, 0, NULL, 0, &e), 0);

  /* A snapshot replaces everything, duplicates included once. */
  struct index_inv_entry snap[] = {{dg(8), 8}, {dg(8), 9}};
  assert_int_equal(index_inventory_replace(db, "a", snap, 2, &e), 0);
  assert_int_equal(index_node_get(db, "a", &n, &e), 1);
  assert_int_equal(n.blobs, 1);
  assert_int_equal(n.blob_bytes, 9);
  assert_string_equal(where(db, 1, &h), "");
  assert_int_equal(index_inventory_replace(db, "a", NULL, 0, &e), 0);
  assert_int_equal(index_node_get(db, "a", &n, &e), 1);
  assert_int_equal(n.blobs, 0);
  assert_int_equal(n.blob_bytes, 0);

  /* An inventory before the node's state creates a bare row. */
  replace_inv(db, "late", 3, 1, 100);
  assert_int_equal(index_node_get(db, "late", &n, &e), 1);
  assert_false(n.online);
  assert_int_equal(n.blobs, 1);
  assert_string_equal(where(db, 3, &h), "b:100,c:100,late:100");
  struct index_inv_entry one = {dg(6), 6};
  assert_int_equal(index_inventory_apply(db, "later", &one, 1, NULL, 0, &e), 0);
  assert_string_equal(where(db, 6, &h), "later:6");
  index_close(db);
}

static void test_delete_cascades(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  ep_err e = {0};
  struct holders h;
  struct index_node a = node("a", true), b = node("b", true);
  put_node(db, &a);
  put_node(db, &b);
  replace_inv(db, "a", 1, 50, 10);
  replace_inv(db, "b", 1, 5, 10);
  assert_int_equal(index_node_delete(db, "a", &e), 0);
  struct index_node n;
  assert_int_equal(index_node_get(db, "a", &n, &e), 0);
  assert_string_equal(where(db, 1, &h), "b:10");
  assert_string_equal(where(db, 40, &h), "");
  assert_int_equal(index_node_delete(db, "a", &e), 0); /* idempotent */
  index_close(db);
  assert_int_equal(raw_count(f->path, "SELECT count(*) FROM inventory WHERE node_id = 'a'"), 0);
  assert_int_equal(raw_count(f->path, "SELECT count(*) FROM inventory"), 5);
  /* The schema's cascade, for shell users with foreign_keys on. */
  raw_sql(f->path, "PRAGMA foreign_keys = ON; DELETE FROM nodes WHERE id = 'b';");
  assert_int_equal(raw_count(f->path, "SELECT count(*) FROM inventory"), 0);
}

static int count_cb(const struct index_node *n, void *ud) {
  struct index_db *db = ((void **)ud)[0];
  unsigned *count = ((void **)ud)[1];
  char want[16];
  snprintf(want, sizeof want, "n%04u", *count);
  assert_string_equal(n->id, want);
  struct index_node again;
  assert_int_equal(index_node_get(db, n->id, &again, NULL), 1); /* unlocked */
  assert_int_equal(again.blobs, n->blobs);
  (*count)++;
  return 0;
}

static void test_foreach_nodes(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  for (unsigned i = 0; i < 300; i++) {
    char id[16];
    snprintf(id, sizeof id, "n%04u", i);
    struct index_node n = node(id, i % 2 == 0);
    put_node(db, &n);
    if (i % 7 == 0)
      replace_inv(db, id, i, 3, 1);
  }
  unsigned count = 0;
  void *ud[2] = {db, &count};
  ep_err e = {0};
  assert_int_equal(index_foreach_node(db, count_cb, ud, &e), 0);
  assert_int_equal(count, 300);
  index_close(db);
  /* A read-only handle reads the same. */
  db = open_ro(f->path);
  count = 0;
  ud[0] = db;
  assert_int_equal(index_foreach_node(db, count_cb, ud, &e), 0);
  assert_int_equal(count, 300);
  index_close(db);
}

static void test_bounds(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  ep_err e = {0};
  char id63[64], id64[65];
  memset(id63, 'x', 63);
  id63[63] = '\0';
  memset(id64, 'y', 64);
  id64[64] = '\0';
  assert_int_equal(index_node_set_parent(db, id63, id63, 1, &e), 0);
  assert_int_equal(index_node_set_parent(db, id64, "gw", 1, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "node id longer than 63 bytes"));
  assert_int_equal(index_node_set_parent(db, "n1", id64, 1, &e), -EP_EINVAL);
  assert_int_equal(index_node_set_parent(db, "n1", "gw", (uint64_t)INT64_MAX + 1, &e), -EP_EINVAL);
  assert_int_equal(index_node_set_parent(db, "", "gw", 1, &e), -EP_EINVAL);
  assert_int_equal(index_node_set_parent(db, "a b", "gw", 1, &e), -EP_EINVAL);
  assert_int_equal(index_node_set_parent(db, "n/../x", "gw", 1, &e), -EP_EINVAL);
  assert_int_equal(index_node_set_parent(db, NULL, "gw", 1, &e), -EP_EINVAL);
  struct index_node n = node("ok", true);
  memcpy(n.id, id64, sizeof n.id); /* unterminated */
  assert_int_equal(index_node_put(db, &n, &e), -EP_EINVAL);
  n = node("ok", true);
  memset(n.addr, 'a', sizeof n.addr); /* unterminated */
  assert_int_equal(index_node_put(db, &n, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "node address"));
  n = node("ok", true);
  n.free_bytes = UINT64_MAX;
  assert_int_equal(index_node_put(db, &n, &e), -EP_EINVAL);
  assert_int_equal(index_node_put(db, NULL, &e), -EP_EINVAL);
  struct index_node out;
  assert_int_equal(index_node_get(db, id64, &out, &e), -EP_EINVAL);
  assert_int_equal(index_node_delete(db, id64, &e), -EP_EINVAL);

  /* A bad entry anywhere refuses the whole snapshot; nothing changes. */
  replace_inv(db, "n1", 1, 2, 10);
  struct index_inv_entry bad[] = {{dg(3), 1}, {dg(4), 1}};
  snprintf(bad[1].digest.hex, sizeof bad[1].digest.hex, "%s", "XYZ");
  assert_int_equal(index_inventory_replace(db, "n1", bad, 2, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "entry 1"));
  bad[1].digest = dg(4);
  bad[1].size = (uint64_t)INT64_MAX + 1;
  assert_int_equal(index_inventory_replace(db, "n1", bad, 2, &e), -EP_EINVAL);
  assert_int_equal(index_inventory_replace(db, "n1", NULL, 2, &e), -EP_EINVAL);
  assert_int_equal(index_inventory_replace(db, "n1", bad, (size_t)1 << 30, &e), -EP_EINVAL);
  assert_int_equal(index_inventory_replace(db, id64, bad, 1, &e), -EP_EINVAL);
  digest_t bad_del = dg(1);
  bad_del.hex[0] = 'G';
  assert_int_equal(index_inventory_apply(db, "n1", NULL, 0, &bad_del, 1, &e), -EP_EINVAL);
  assert_int_equal(index_node_get(db, "n1", &out, &e), 1);
  assert_int_equal(out.blobs, 2);
  assert_int_equal(index_where(db, NULL, holder_cb, NULL, &e), -EP_EINVAL);
  index_close(db);

  /* Read-only handles refuse every write. */
  db = open_ro(f->path);
  n = node("ro", true);
  assert_int_equal(index_node_put(db, &n, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "read-only"));
  assert_int_equal(index_node_set_parent(db, "ro", "gw", 1, &e), -EP_EINVAL);
  assert_int_equal(index_node_delete(db, "n1", &e), -EP_EINVAL);
  assert_int_equal(index_inventory_replace(db, "n1", NULL, 0, &e), -EP_EINVAL);
  assert_int_equal(index_inventory_apply(db, "n1", NULL, 0, NULL, 0, &e), -EP_EINVAL);
  index_close(db);
}

static int noop_cb(const struct index_node *n, void *ud) {
  (void)n;
  (void)ud;
  return 0;
}

/* Rows edited by hand past the struct's bounds are errors, never overflows. */
static void test_hand_edited_rows(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  index_close(db);
  raw_sql(f->path, "INSERT INTO nodes (id, addr) VALUES ('n1', printf('%.200c', 'a'));");
  db = open_ro(f->path);
  ep_err e = {0};
  struct index_node n;
  assert_int_equal(index_node_get(db, "n1", &n, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "malformed addr"));
  assert_int_equal(index_foreach_node(db, noop_cb, NULL, &e), -EP_EINVAL);
  index_close(db);
  raw_sql(f->path, "PRAGMA ignore_check_constraints = ON;"
                   "UPDATE nodes SET addr = '', peer_port = 70000 WHERE id = 'n1';");
  db = open_ro(f->path);
  assert_int_equal(index_node_get(db, "n1", &n, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "peer_port 70000 out of range"));
  index_close(db);
  /* Sizes that would overflow a sum saturate instead of failing. */
  raw_sql(f->path, "UPDATE nodes SET peer_port = 1 WHERE id = 'n1';"
                   "INSERT INTO inventory VALUES ('n1', 'sha256:"
                   "0000000000000000000000000000000000000000000000000000000000000001',"
                   " 9223372036854775807);"
                   "INSERT INTO inventory VALUES ('n1', 'sha256:"
                   "0000000000000000000000000000000000000000000000000000000000000002',"
                   " 9223372036854775807);");
  db = open_ro(f->path);
  assert_int_equal(index_node_get(db, "n1", &n, &e), 1);
  assert_int_equal(n.blobs, 2);
  assert_true(n.blob_bytes >= 8000000000000000000ull);
  index_close(db);
}

static void test_snapshot_20000(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  enum { N = 20000 };
  /* Behaviour only: a second snapshot of 20,000 entries replaces the first.
   * How fast that is belongs in bench/, not in a test that a loaded CI
   * machine or qemu would fail. */
  for (int round = 0; round < 2; round++)
    replace_inv(db, "big", (unsigned)round * 10000, N, 1000);
  struct index_node n;
  ep_err e = {0};
  assert_int_equal(index_node_get(db, "big", &n, &e), 1);
  assert_int_equal(n.blobs, N);
  assert_int_equal(n.blob_bytes, (uint64_t)N * 1000);
  struct holders h;
  assert_string_equal(where(db, 10000 + N - 1, &h), "big:1000");
  assert_string_equal(where(db, 9999, &h), "");
  index_close(db);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_v1_file_upgrade, setup, teardown),
      cmocka_unit_test_setup_teardown(test_node_put_keeps_parent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_inventory_where, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete_cascades, setup, teardown),
      cmocka_unit_test_setup_teardown(test_foreach_nodes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hand_edited_rows, setup, teardown),
      cmocka_unit_test_setup_teardown(test_snapshot_20000, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
