/* What the disk GC asks the index (schema v3): pinned images, and for each
 * complete blob the facts store/gc_policy.h decides on (last access, how
 * many other online nodes hold it, whether one of them still needs it,
 * whether a pin reaches it, whether it is a manifest or an image's config).
 *
 * Why one query for all blobs: a GC runs at most every few seconds and the
 * store holds thousands of blobs, not millions; one statement with indexed
 * subqueries (inventory_by_digest, manifest_refs_by_child) reads them in
 * milliseconds, and the statement is prepared per call rather than cached
 * because it runs so rarely. */
#include <stdlib.h>
#include <string.h>

#include "store/index_db.h"
#include "store/index_gc.h"

static int check_v3(index_db *db, ep_err *err) {
  if (db->version < 3)
    return ep_error(err, EP_EUNSUPPORTED, "index %s has no pins table yet (schema v%d)", db->path,
                    db->version);
  return 0;
}

static int prepare(index_db *db, const char *sql, sqlite3_stmt **st, ep_err *err) {
  int rc = sqlite3_prepare_v2(db->h, sql, -1, st, NULL);
  return rc == SQLITE_OK ? 0 : index_sql_error(db, rc, err, "preparing a GC query");
}

static int check_pin_key(const struct index_pin *p, ep_err *err) {
  int r;
  if ((r = index_check_str(p->registry, sizeof p->registry, false, "registry", err)) < 0 ||
      (r = index_check_str(p->repository, sizeof p->repository, false, "repository", err)) < 0 ||
      (r = index_check_str(p->reference, sizeof p->reference, false, "reference", err)) < 0)
    return r;
  return 0;
}

int index_pin_put(index_db *db, const struct index_pin *p, ep_err *err) {
  int r;
  if ((r = index_check_writable(db, err)) < 0 || (r = check_v3(db, err)) < 0 ||
      (r = check_pin_key(p, err)) < 0 || (r = index_check_digest(&p->digest, err)) < 0)
    return r;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  if ((r = prepare(db,
                   "INSERT OR REPLACE INTO pins (registry, repository, reference, digest, created)"
                   " VALUES (?1, ?2, ?3, ?4, ?5)",
                   &st, err)) == 0) {
    index_bind_str(st, 1, p->registry);
    index_bind_str(st, 2, p->repository);
    index_bind_str(st, 3, p->reference);
    index_bind_digest(st, 4, &p->digest);
    sqlite3_bind_int64(st, 5, p->created);
    r = index_step_done(db, st, "recording a pin", err);
  }
  sqlite3_finalize(st);
  index_unlock(db);
  return r;
}

int index_pin_delete(index_db *db, const struct index_pin *p, ep_err *err) {
  int r;
  if ((r = index_check_writable(db, err)) < 0 || (r = check_v3(db, err)) < 0 ||
      (r = check_pin_key(p, err)) < 0)
    return r;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  if ((r = prepare(db,
                   "DELETE FROM pins WHERE registry = ?1 AND repository = ?2 AND reference = ?3",
                   &st, err)) == 0) {
    index_bind_str(st, 1, p->registry);
    index_bind_str(st, 2, p->repository);
    index_bind_str(st, 3, p->reference);
    if ((r = index_step_done(db, st, "removing a pin", err)) == 0)
      r = sqlite3_changes(db->h) > 0 ? 1 : 0;
  }
  sqlite3_finalize(st);
  index_unlock(db);
  return r;
}

static int row_pin(index_db *db, sqlite3_stmt *st, void *out, ep_err *err) {
  struct index_pin *p = out;
  int r;
  memset(p, 0, sizeof *p);
  if ((r = index_row_str(db, st, 0, p->registry, sizeof p->registry, err)) < 0 ||
      (r = index_row_str(db, st, 1, p->repository, sizeof p->repository, err)) < 0 ||
      (r = index_row_str(db, st, 2, p->reference, sizeof p->reference, err)) < 0 ||
      (r = index_row_digest(db, st, 3, &p->digest, err)) < 0)
    return r;
  p->created = sqlite3_column_int64(st, 4);
  return 0;
}

/* Reads every row of sql (bound by bind) into a growing array of elem-byte
 * rows through row(); *out malloc'd, freed again on failure. */
static int collect(index_db *db, const char *sql, const char *bind, size_t elem,
                   int (*row)(index_db *db, sqlite3_stmt *st, void *out, ep_err *err), void **out,
                   size_t *n, const char *what, ep_err *err) {
  *out = NULL;
  *n = 0;
  int r = check_v3(db, err);
  if (r < 0)
    return r;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  size_t cap = 0;
  if ((r = prepare(db, sql, &st, err)) == 0) {
    if (bind != NULL)
      index_bind_str(st, 1, bind);
    int rc;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
      if (*n == cap) {
        cap = cap == 0 ? 64 : 2 * cap;
        void *v = realloc(*out, cap * elem);
        if (v == NULL) {
          r = ep_error(err, EP_EINTERNAL, "out of memory");
          break;
        }
        *out = v;
      }
      if ((r = row(db, st, (char *)*out + *n * elem, err)) == 0)
        (*n)++;
    }
    if (r == 0 && rc != SQLITE_DONE)
      r = index_sql_error(db, rc, err, what);
  }
  sqlite3_finalize(st);
  index_unlock(db);
  if (r < 0) {
    free(*out);
    *out = NULL;
    *n = 0;
  }
  return r;
}

int index_pins(index_db *db, struct index_pin **out, size_t *n, ep_err *err) {
  void *v = NULL;
  int r = collect(db,
                  "SELECT registry, repository, reference, digest, created FROM pins"
                  " ORDER BY registry, repository, reference",
                  NULL, sizeof **out, row_pin, &v, n, "reading pins", err);
  *out = v;
  return r;
}

/* ?1: this node's id, never counted as a holder of its own blobs. A node
 * "needs" a blob when it holds a manifest referencing it but not the blob.
 * A config is the first reference of a manifest that is no index (manifest_parse
 * lists it first): what plugin/mirror/chains.c reads as one. */
static const char gc_blobs_sql[] =
    "WITH RECURSIVE pinned(d) AS (\n"
    "  SELECT digest FROM pins\n"
    "  UNION SELECT r.child FROM manifest_refs r JOIN pinned p ON r.manifest = p.d)\n"
    "SELECT b.digest, b.size, b.last_access,\n"
    "  (SELECT count(*) FROM inventory i JOIN nodes n ON n.id = i.node_id\n"
    "    WHERE i.digest = b.digest AND i.node_id <> ?1 AND n.online = 1),\n"
    "  EXISTS (SELECT 1 FROM manifest_refs r JOIN inventory i ON i.digest = r.manifest\n"
    "    JOIN nodes n ON n.id = i.node_id\n"
    "    WHERE r.child = b.digest AND i.node_id <> ?1 AND n.online = 1\n"
    "      AND NOT EXISTS (SELECT 1 FROM inventory j\n"
    "                      WHERE j.node_id = i.node_id AND j.digest = b.digest)),\n"
    "  b.digest IN (SELECT d FROM pinned),\n"
    "  EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest),\n"
    "  EXISTS (SELECT 1 FROM manifest_refs r JOIN manifests m ON m.digest = r.manifest\n"
    "    WHERE r.child = b.digest AND r.position = 0 AND m.media_type NOT IN\n"
    "      ('application/vnd.oci.image.index.v1+json',\n"
    "       'application/vnd.docker.distribution.manifest.list.v2+json'))\n"
    "FROM blobs b WHERE b.state = 'complete'";

static int row_gc(index_db *db, sqlite3_stmt *st, void *out, ep_err *err) {
  struct index_gc_blob *b = out;
  int r;
  memset(b, 0, sizeof *b);
  if ((r = index_row_digest(db, st, 0, &b->digest, err)) < 0 ||
      (r = index_row_size(db, st, 1, &b->size, err)) < 0)
    return r;
  b->last_access = sqlite3_column_int64(st, 2);
  sqlite3_int64 h = sqlite3_column_int64(st, 3);
  b->holders = h < 0 ? 0 : h > 1000000 ? 1000000 : (unsigned)h;
  b->needed = sqlite3_column_int(st, 4) != 0;
  b->pinned = sqlite3_column_int(st, 5) != 0;
  b->manifest = sqlite3_column_int(st, 6) != 0;
  b->config = sqlite3_column_int(st, 7) != 0;
  return 0;
}

int index_gc_blobs(index_db *db, const char *self, struct index_gc_blob **out, size_t *n,
                   ep_err *err) {
  void *v = NULL;
  int r = collect(db, gc_blobs_sql, self != NULL ? self : "", sizeof **out, row_gc, &v, n,
                  "reading the blobs for GC", err);
  *out = v;
  return r;
}

static int row_sized(index_db *db, sqlite3_stmt *st, void *out, ep_err *err) {
  struct index_sized_blob *b = out;
  int r;
  memset(b, 0, sizeof *b);
  if ((r = index_row_digest(db, st, 0, &b->digest, err)) < 0)
    return r;
  return index_row_size(db, st, 1, &b->size, err);
}

int index_image_blobs(index_db *db, const digest_t *root, struct index_sized_blob **out, size_t *n,
                      ep_err *err) {
  *out = NULL;
  *n = 0;
  int r = index_check_digest(root, err);
  if (r < 0)
    return r;
  char dg[DIGEST_STR_LEN + 1];
  digest_format(root, dg);
  void *v = NULL;
  r = collect(db,
              "WITH RECURSIVE reach (d) AS (SELECT ?1 UNION"
              " SELECT r.child FROM manifest_refs r JOIN reach ON r.manifest = reach.d)"
              " SELECT b.digest, b.size FROM reach JOIN blobs b ON b.digest = reach.d"
              " WHERE b.state = 'complete' ORDER BY b.digest",
              dg, sizeof **out, row_sized, &v, n, "listing an image's blobs", err);
  *out = v;
  return r;
}
