/* Unit tests of the sqlite index: schema creation and migration, version
 * refusal, every query, bounds on input and on rows edited by hand, and a
 * handle shared by two writer threads while a read-only handle reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/ep_test.h"
#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>

#include "store/index.h"

struct fix {
  char dir[64];
  char path[128];
};

static int setup(void **state) {
  struct fix *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -1;
  if (ep_test_tmpdir(f->dir, sizeof f->dir, "ep-test-index-") < 0) {
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

/* A digest whose hex is `c` repeated, or the number n spread over hex. */
static digest_t dg(unsigned n) {
  digest_t d;
  snprintf(d.hex, sizeof d.hex, "%064x", n);
  return d;
}

/* Run SQL on the file with plain sqlite, as an operator or old binary would. */
static void raw_sql(const char *path, const char *sql) {
  sqlite3 *h = NULL;
  assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
  char *emsg = NULL;
  int rc = sqlite3_exec(h, sql, NULL, NULL, &emsg);
  if (rc != SQLITE_OK)
    fail_msg("sql failed: %s", emsg);
  sqlite3_close(h);
}

static index_db *open_rw(const char *path) {
  index_db *db = NULL;
  ep_err e = {0};
  int r = index_open(path, &db, &e);
  if (r != 0)
    fail_msg("index_open: %s", e.msg);
  return db;
}

static void put_blob(index_db *db, unsigned n, uint64_t size, int state, const char *mt) {
  struct index_blob b = {
      .digest = dg(n), .size = size, .state = state, .created = 100, .last_access = 100};
  snprintf(b.media_type, sizeof b.media_type, "%s", mt);
  ep_err e = {0};
  if (index_blob_put(db, &b, &e) != 0)
    fail_msg("blob_put: %s", e.msg);
}

static void test_fresh_open(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  assert_true(index_latest_schema_version() >= 1);
  assert_int_equal(index_schema_version(db), index_latest_schema_version());
  index_close(db);
  /* WAL is a property of the file, seen by any later reader. */
  sqlite3 *h = NULL;
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  sqlite3_close(h);
}

static void test_reopen_idempotent(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  put_blob(db, 1, 10, INDEX_BLOB_COMPLETE, "");
  index_close(db);
  for (int i = 0; i < 2; i++) {
    db = open_rw(f->path);
    assert_int_equal(index_schema_version(db), index_latest_schema_version());
    struct index_blob b;
    digest_t d = dg(1);
    assert_int_equal(index_blob_get(db, &d, &b, NULL), 1);
    index_close(db);
  }
}

static void test_migrate_from_v0(void **state) {
  struct fix *f = *state;
  raw_sql(f->path, "PRAGMA user_version = 0; VACUUM;");
  index_db *db = open_rw(f->path);
  assert_int_equal(index_schema_version(db), index_latest_schema_version());
  put_blob(db, 7, 70, INDEX_BLOB_COMPLETE, "x/y");
  index_close(db);
}

static void test_exported_schema_matches(void **state) {
  struct fix *f = *state;
  /* What `edgepullctl schema | sqlite3 FILE` does. */
  for (int v = 1; v <= index_latest_schema_version(); v++) {
    char sql[64];
    raw_sql(f->path, index_migration_sql(v));
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v);
    raw_sql(f->path, sql);
  }
  assert_null(index_migration_sql(0));
  assert_null(index_migration_sql(index_latest_schema_version() + 1));
  index_db *db = NULL;
  ep_err e = {0};
  assert_int_equal(index_open_readonly(f->path, &db, &e), 0);
  assert_int_equal(index_schema_version(db), index_latest_schema_version());
  index_close(db);
  db = open_rw(f->path); /* nothing to migrate, and nothing fails */
  index_close(db);
}

static void test_future_version_refused(void **state) {
  struct fix *f = *state;
  raw_sql(f->path, "PRAGMA user_version = 99; CREATE TABLE future (x);");
  index_db *db = NULL;
  ep_err e = {0};
  assert_int_equal(index_open_readonly(f->path, &db, &e), -EP_EUNSUPPORTED);
  assert_null(db);
  assert_non_null(strstr(e.msg, "99"));
  assert_non_null(strstr(e.msg, f->path));
  ep_err_clear(&e);
  assert_int_equal(index_open(f->path, &db, &e), -EP_EUNSUPPORTED);
  assert_null(db);
}

static void test_readonly_errors(void **state) {
  struct fix *f = *state;
  index_db *db = NULL;
  ep_err e = {0};
  assert_int_equal(index_open_readonly(f->path, &db, &e), -EP_ENOTFOUND);
  assert_non_null(strstr(e.msg, f->path));
  /* An empty sqlite file is not an edgepull index. */
  raw_sql(f->path, "VACUUM;");
  ep_err_clear(&e);
  assert_int_equal(index_open_readonly(f->path, &db, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "no edgepull schema"));
  /* A file that is not sqlite at all. */
  char junk[160];
  snprintf(junk, sizeof junk, "%s/junk.db", f->dir);
  FILE *fp = fopen(junk, "w");
  assert_non_null(fp);
  for (int i = 0; i < 200; i++)
    fputs("this is not a database ", fp);
  fclose(fp);
  ep_err_clear(&e);
  assert_true(index_open_readonly(junk, &db, &e) < 0);
  assert_non_null(strstr(e.msg, junk));
  /* A symlinked index is refused (SQLITE_OPEN_NOFOLLOW). */
  char link[160];
  snprintf(link, sizeof link, "%s/link.db", f->dir);
  assert_int_equal(symlink(f->path, link), 0);
  ep_err_clear(&e);
  assert_true(index_open(link, &db, &e) < 0);
  assert_non_null(strstr(e.msg, link));
  assert_true(index_open_readonly(link, &db, &e) < 0);
  /* A read-only handle refuses writes with a clear error. */
  unlink(f->path);
  index_close(open_rw(f->path));
  assert_int_equal(index_open_readonly(f->path, &db, &e), 0);
  struct index_blob b = {.digest = dg(1), .size = 1, .state = INDEX_BLOB_COMPLETE};
  ep_err_clear(&e);
  assert_int_equal(index_blob_put(db, &b, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "read-only"));
  index_close(db);
}

static void test_blobs(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  digest_t d = dg(0xabc);
  struct index_blob b = {0};
  ep_err e = {0};
  assert_int_equal(index_blob_get(db, &d, &b, &e), 0);
  put_blob(db, 0xabc, 1234, INDEX_BLOB_PARTIAL, "application/vnd.oci.image.layer.v1.tar+gzip");
  assert_int_equal(index_blob_get(db, &d, &b, &e), 1);
  assert_string_equal(b.digest.hex, d.hex);
  assert_int_equal(b.size, 1234);
  assert_int_equal(b.state, INDEX_BLOB_PARTIAL);
  assert_int_equal(b.created, 100);
  assert_string_equal(b.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
  /* Completed by the fetcher, which does not know the media type. */
  struct index_blob c = {
      .digest = d, .size = 1300, .state = INDEX_BLOB_COMPLETE, .created = 500, .last_access = 500};
  assert_int_equal(index_blob_put(db, &c, &e), 0);
  assert_int_equal(index_blob_get(db, &d, &b, &e), 1);
  assert_int_equal(b.size, 1300);
  assert_int_equal(b.state, INDEX_BLOB_COMPLETE);
  assert_int_equal(b.created, 100); /* first seen */
  assert_int_equal(b.last_access, 500);
  assert_string_equal(b.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
  /* Touch moves last_access forward only. */
  assert_int_equal(index_blob_touch(db, &d, 900, &e), 0);
  assert_int_equal(index_blob_touch(db, &d, 800, &e), 0);
  assert_int_equal(index_blob_get(db, &d, &b, &e), 1);
  assert_int_equal(b.last_access, 900);
  digest_t absent = dg(0xdead);
  assert_int_equal(index_blob_touch(db, &absent, 900, &e), -EP_ENOTFOUND);
  /* Zero timestamps mean "now". */
  struct index_blob z = {.digest = absent, .size = 1, .state = INDEX_BLOB_COMPLETE};
  assert_int_equal(index_blob_put(db, &z, &e), 0);
  assert_int_equal(index_blob_get(db, &absent, &b, &e), 1);
  assert_true(b.created > 1600000000 && b.last_access == b.created);
  assert_string_equal(b.media_type, "");
  assert_int_equal(index_blob_delete(db, &d, &e), 0);
  assert_int_equal(index_blob_get(db, &d, &b, &e), 0);
  assert_int_equal(index_blob_delete(db, &d, &e), 0); /* idempotent */
  index_close(db);
}

static void test_tags(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  struct index_tag t = {.registry = "docker.io",
                        .repository = "library/alpine",
                        .tag = "3.19",
                        .digest = dg(1),
                        .media_type = "application/vnd.oci.image.index.v1+json",
                        .size = 1638,
                        .updated = 1000,
                        .expires_at = 1300};
  struct index_tag out = {0};
  ep_err e = {0};
  assert_int_equal(index_tag_get(db, "docker.io", "library/alpine", "3.19", &out, &e), 0);
  assert_int_equal(index_tag_put(db, &t, &e), 0);
  assert_int_equal(index_tag_get(db, "docker.io", "library/alpine", "3.19", &out, &e), 1);
  assert_string_equal(out.registry, "docker.io");
  assert_string_equal(out.repository, "library/alpine");
  assert_string_equal(out.tag, "3.19");
  assert_string_equal(out.digest.hex, dg(1).hex);
  assert_string_equal(out.media_type, t.media_type);
  assert_int_equal(out.size, 1638);
  assert_int_equal(out.updated, 1000);
  assert_int_equal(out.expires_at, 1300);
  /* The tag moved upstream: upsert replaces every field. */
  t.digest = dg(2);
  t.size = 99;
  t.updated = 2000;
  t.expires_at = 2300;
  snprintf(t.media_type, sizeof t.media_type, "application/vnd.oci.image.manifest.v1+json");
  assert_int_equal(index_tag_put(db, &t, &e), 0);
  assert_int_equal(index_tag_get(db, "docker.io", "library/alpine", "3.19", &out, &e), 1);
  assert_string_equal(out.digest.hex, dg(2).hex);
  assert_int_equal(out.size, 99);
  assert_int_equal(out.updated, 2000);
  assert_int_equal(out.expires_at, 2300);
  assert_string_equal(out.media_type, "application/vnd.oci.image.manifest.v1+json");
  /* Same name in another registry is another row. */
  assert_int_equal(index_tag_get(db, "ghcr.io", "library/alpine", "3.19", &out, &e), 0);
  index_close(db);
}

static void test_manifests_refs(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  ep_err e = {0};
  const char *idx_mt = "application/vnd.oci.image.index.v1+json";
  const char *man_mt = "application/vnd.oci.image.manifest.v1+json";
  /* index 100 -> manifest 200 (and 201, never fetched);
   * manifest 200 -> config 1, layers 2, 3, 2 again (duplicates happen). */
  digest_t root = dg(100), child = dg(200);
  digest_t irefs[] = {dg(200), dg(201)};
  digest_t mrefs[] = {dg(1), dg(2), dg(3), dg(2)};
  assert_int_equal(
      index_manifest_put(db, &root, idx_mt, 500, "docker.io", "library/alpine", irefs, 2, &e), 0);
  put_blob(db, 200, 700, INDEX_BLOB_COMPLETE, "");
  assert_int_equal(
      index_manifest_put(db, &child, man_mt, 700, "docker.io", "library/alpine", mrefs, 4, &e), 0);
  put_blob(db, 1, 10, INDEX_BLOB_COMPLETE, "");
  put_blob(db, 2, 2000, INDEX_BLOB_COMPLETE, "");
  put_blob(db, 3, 30000, INDEX_BLOB_PARTIAL, "");

  char mt[INDEX_MEDIA_TYPE_MAX];
  uint64_t size = 0;
  assert_int_equal(index_manifest_get(db, &root, mt, &size, &e), 1);
  assert_string_equal(mt, idx_mt);
  assert_int_equal(size, 500);
  /* manifest_put recorded the manifest as a blob, with its media type. */
  struct index_blob b;
  assert_int_equal(index_blob_get(db, &root, &b, &e), 1);
  assert_int_equal(b.state, INDEX_BLOB_COMPLETE);
  assert_string_equal(b.media_type, idx_mt);
  assert_int_equal(index_blob_get(db, &child, &b, &e), 1);
  assert_string_equal(b.media_type, man_mt); /* filled in where it was unknown */

  digest_t *refs = NULL;
  size_t n = 0;
  assert_int_equal(index_manifest_refs(db, &child, &refs, &n, &e), 1);
  assert_int_equal(n, 4);
  for (size_t i = 0; i < n; i++)
    assert_string_equal(refs[i].hex, mrefs[i].hex);
  free(refs);
  /* Re-putting replaces the references, it does not append. */
  assert_int_equal(
      index_manifest_put(db, &child, man_mt, 700, "ghcr.io", "other/name", mrefs, 3, &e), 0);
  assert_int_equal(index_manifest_refs(db, &child, &refs, &n, &e), 1);
  assert_int_equal(n, 3);
  free(refs);
  digest_t none = dg(999);
  assert_int_equal(index_manifest_get(db, &none, mt, &size, &e), 0);
  assert_int_equal(index_manifest_refs(db, &none, &refs, &n, &e), 0);
  assert_null(refs);

  struct index_image_size is;
  assert_int_equal(index_image_size(db, &root, &is, &e), 0);
  /* reach: 100, 200, 201, 1, 2, 3 -> 6 digests; 201 unknown; 3 partial. */
  assert_int_equal(is.referenced, 6);
  assert_int_equal(is.complete, 4);
  assert_int_equal(is.bytes, 500 + 700 + 10 + 2000 + 30000);
  assert_int_equal(index_image_size(db, &none, &is, &e), 0);
  assert_int_equal(is.referenced, 1);
  assert_int_equal(is.complete, 0);
  assert_int_equal(is.bytes, 0);

  /* Deleting the manifest's blob drops the manifest and its references. */
  assert_int_equal(index_blob_delete(db, &child, &e), 0);
  assert_int_equal(index_manifest_get(db, &child, mt, &size, &e), 0);
  assert_int_equal(index_image_size(db, &root, &is, &e), 0);
  assert_int_equal(is.referenced, 3); /* 100, 200, 201 */
  index_close(db);
}

static void test_stats(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  ep_err e = {0};
  struct index_stats s;
  assert_int_equal(index_stats(db, &s, &e), 0);
  assert_int_equal(s.schema_version, index_latest_schema_version());
  assert_int_equal(s.blobs + s.blob_bytes + s.partial_blobs + s.manifests + s.tags, 0);
  put_blob(db, 1, 100, INDEX_BLOB_COMPLETE, "");
  put_blob(db, 2, 250, INDEX_BLOB_COMPLETE, "");
  put_blob(db, 3, 999, INDEX_BLOB_PARTIAL, "");
  digest_t d4 = dg(4);
  assert_int_equal(index_manifest_put(db, &d4, "m", 50, "r", "n", NULL, 0, &e), 0);
  struct index_tag t = {.registry = "r", .repository = "n", .tag = "t", .digest = dg(4)};
  assert_int_equal(index_tag_put(db, &t, &e), 0);
  assert_int_equal(index_stats(db, &s, &e), 0);
  assert_int_equal(s.blobs, 3);
  assert_int_equal(s.blob_bytes, 400);
  assert_int_equal(s.partial_blobs, 1);
  assert_int_equal(s.manifests, 1);
  assert_int_equal(s.tags, 1);
  index_close(db);
}

struct walk {
  index_db *db;
  unsigned seen;
  char last[2 * INDEX_NAME_MAX];
  int stop_at;
  bool ordered;
};

static int walk_blob(const struct index_blob *b, void *ud) {
  struct walk *w = ud;
  if (strcmp(b->digest.hex, w->last) <= 0)
    w->ordered = false;
  snprintf(w->last, sizeof w->last, "%s", b->digest.hex);
  /* Callbacks may call into the same handle. */
  struct index_blob again;
  if (index_blob_get(w->db, &b->digest, &again, NULL) != 1)
    return -EP_EINTERNAL;
  if (index_blob_touch(w->db, &b->digest, 5000, NULL) != 0)
    return -EP_EINTERNAL;
  w->seen++;
  return w->stop_at != 0 && (int)w->seen == w->stop_at ? 7 : 0;
}

static int walk_tag(const struct index_tag *t, void *ud) {
  struct walk *w = ud;
  char key[2 * INDEX_NAME_MAX];
  snprintf(key, sizeof key, "%s/%s", t->repository, t->tag);
  if (strcmp(key, w->last) <= 0)
    w->ordered = false;
  snprintf(w->last, sizeof w->last, "%s", key);
  w->seen++;
  return 0;
}

static void test_foreach(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  ep_err e = {0};
  struct walk w = {.db = db, .ordered = true};
  assert_int_equal(index_foreach_blob(db, walk_blob, &w, &e), 0);
  assert_int_equal(w.seen, 0);
  for (unsigned i = 1; i <= 300; i++) /* more than two pages */
    put_blob(db, i * 7919, i, INDEX_BLOB_COMPLETE, "");
  assert_int_equal(index_foreach_blob(db, walk_blob, &w, &e), 0);
  assert_int_equal(w.seen, 300);
  assert_true(w.ordered);
  w = (struct walk){.db = db, .ordered = true, .stop_at = 130};
  assert_int_equal(index_foreach_blob(db, walk_blob, &w, &e), 7);
  assert_int_equal(w.seen, 130);

  for (unsigned i = 0; i < 260; i++) {
    struct index_tag t = {.registry = "docker.io", .digest = dg(i)};
    snprintf(t.repository, sizeof t.repository, "repo%03u", i % 3);
    snprintf(t.tag, sizeof t.tag, "v%03u", i);
    assert_int_equal(index_tag_put(db, &t, &e), 0);
  }
  w = (struct walk){.db = db, .ordered = true};
  assert_int_equal(index_foreach_tag(db, walk_tag, &w, &e), 0);
  assert_int_equal(w.seen, 260);
  assert_true(w.ordered);
  index_close(db);
}

static void test_bounds(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  ep_err e = {0};
  struct index_blob b = {.digest = dg(1), .size = 1, .state = INDEX_BLOB_COMPLETE};
  memset(b.media_type, 'a', sizeof b.media_type - 1);
  assert_int_equal(index_blob_put(db, &b, &e), 0); /* 255 bytes: fine */
  memset(b.media_type, 'a', sizeof b.media_type);  /* not terminated */
  assert_int_equal(index_blob_put(db, &b, &e), -EP_EINVAL);
  b.media_type[0] = '\0';
  b.size = (uint64_t)INT64_MAX + 1;
  assert_int_equal(index_blob_put(db, &b, &e), -EP_EINVAL);
  b.size = 1;
  b.state = 5;
  assert_int_equal(index_blob_put(db, &b, &e), -EP_EINVAL);
  b.state = INDEX_BLOB_COMPLETE;
  b.digest.hex[3] = 'A'; /* upper case is not a digest we store */
  assert_int_equal(index_blob_put(db, &b, &e), -EP_EINVAL);
  assert_int_equal(index_blob_get(db, &b.digest, &b, &e), -EP_EINVAL);

  char long_name[300];
  memset(long_name, 'n', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  digest_t d = dg(2);
  assert_int_equal(index_manifest_put(db, &d, "m", 1, long_name, "repo", NULL, 0, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "registry"));
  assert_int_equal(index_manifest_put(db, &d, "m", 1, "reg", "", NULL, 0, &e), -EP_EINVAL);
  assert_int_equal(index_manifest_put(db, &d, long_name, 1, "reg", "repo", NULL, 0, &e),
                   -EP_EINVAL);
  assert_int_equal(index_manifest_put(db, &d, "m", 1, "reg", "repo", NULL, 3, &e), -EP_EINVAL);
  assert_int_equal(index_manifest_put(db, &d, "m", 1, "reg", "repo", &d, 1000000, &e), -EP_EINVAL);
  assert_int_equal(index_tag_get(db, "reg", long_name, "t", &(struct index_tag){0}, &e),
                   -EP_EINVAL);
  assert_int_equal(index_tag_get(db, "reg", "repo", "", &(struct index_tag){0}, &e), -EP_EINVAL);
  struct index_tag t = {.registry = "reg", .repository = "repo", .digest = dg(3)};
  memset(t.tag, 't', sizeof t.tag); /* not terminated */
  assert_int_equal(index_tag_put(db, &t, &e), -EP_EINVAL);
  index_close(db);

  /* Rows edited by hand beyond the bounds are an error, never an overflow. */
  char sql[700];
  snprintf(sql, sizeof sql,
           "INSERT INTO tags VALUES ('reg', '%s', 't', 'sha256:%064x', '', 0, 0, 0);"
           "INSERT INTO tags VALUES ('reg', 'repo', 'bad', 'sha256:XYZ', '', 0, 0, 0);",
           long_name, 1);
  raw_sql(f->path, sql);
  db = open_rw(f->path);
  struct walk w = {.db = db, .ordered = true};
  ep_err_clear(&e);
  assert_int_equal(index_foreach_tag(db, walk_tag, &w, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, f->path));
  assert_int_equal(index_tag_get(db, "reg", "repo", "bad", &t, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "digest"));
  index_close(db);
}

struct conc {
  index_db *db;
  const char *path;
  unsigned base;
  int errors;
  volatile int *writers_left;
  pthread_mutex_t *mu;
  unsigned reads;
};

static int count_blob(const struct index_blob *b, void *ud) {
  (*(unsigned *)ud)++;
  return 0;
}

static void *writer(void *arg) {
  struct conc *c = arg;
  for (unsigned i = 0; i < 200; i++) {
    ep_err e = {0};
    struct index_blob b = {.digest = dg(c->base + i), .size = i, .state = INDEX_BLOB_COMPLETE};
    struct index_tag t = {.registry = "r", .repository = "n", .digest = dg(c->base + i)};
    snprintf(t.tag, sizeof t.tag, "t%u", c->base + i);
    digest_t ref = dg(c->base + i);
    if (index_blob_put(c->db, &b, &e) != 0 || index_tag_put(c->db, &t, &e) != 0 ||
        index_manifest_put(c->db, &ref, "m", i, "r", "n", &ref, 1, &e) != 0 ||
        index_blob_touch(c->db, &ref, 10, &e) != 0) {
      fprintf(stderr, "writer: %s\n", e.msg);
      c->errors++;
    }
  }
  pthread_mutex_lock(c->mu);
  (*c->writers_left)--;
  pthread_mutex_unlock(c->mu);
  return NULL;
}

static void *reader(void *arg) {
  struct conc *c = arg;
  index_db *ro = NULL;
  ep_err e = {0};
  if (index_open_readonly(c->path, &ro, &e) != 0) {
    fprintf(stderr, "reader open: %s\n", e.msg);
    c->errors++;
    return NULL;
  }
  for (;;) {
    pthread_mutex_lock(c->mu);
    int left = *c->writers_left;
    pthread_mutex_unlock(c->mu);
    struct index_stats s;
    unsigned n = 0;
    if (index_stats(ro, &s, &e) != 0 || index_foreach_blob(ro, count_blob, &n, &e) != 0) {
      fprintf(stderr, "reader: %s\n", e.msg);
      c->errors++;
      break;
    }
    c->reads++;
    if (left == 0)
      break;
  }
  index_close(ro);
  return NULL;
}

static void test_concurrent(void **state) {
  struct fix *f = *state;
  index_db *db = open_rw(f->path);
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  volatile int left = 2;
  struct conc w1 = {.db = db, .base = 1000, .writers_left = &left, .mu = &mu};
  struct conc w2 = {.db = db, .base = 5000, .writers_left = &left, .mu = &mu};
  struct conc rd = {.path = f->path, .writers_left = &left, .mu = &mu};
  pthread_t t1, t2, t3;
  assert_int_equal(pthread_create(&t3, NULL, reader, &rd), 0);
  assert_int_equal(pthread_create(&t1, NULL, writer, &w1), 0);
  assert_int_equal(pthread_create(&t2, NULL, writer, &w2), 0);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  pthread_join(t3, NULL);
  assert_int_equal(w1.errors + w2.errors + rd.errors, 0);
  assert_true(rd.reads >= 1);
  struct index_stats s;
  ep_err e = {0};
  assert_int_equal(index_stats(db, &s, &e), 0);
  assert_int_equal(s.blobs, 400);
  assert_int_equal(s.manifests, 400);
  assert_int_equal(s.tags, 400);
  index_close(db);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_fresh_open, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reopen_idempotent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migrate_from_v0, setup, teardown),
      cmocka_unit_test_setup_teardown(test_exported_schema_matches, setup, teardown),
      cmocka_unit_test_setup_teardown(test_future_version_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_readonly_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_blobs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tags, setup, teardown),
      cmocka_unit_test_setup_teardown(test_manifests_refs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
      cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
