/* The sqlite index: opening, schema migrations, the statement cache.
 *
 * Why sqlite in WAL mode: the daemon writes from several threads while an
 * operator's `sqlite3 index.db` or edgepullctl reads; with WAL readers never
 * block the writer and see a consistent snapshot. synchronous=NORMAL is safe
 * in WAL (a power cut may lose the last commits, never corrupt the file) and
 * the index is a cache of what the store holds anyway.
 *
 * Concurrency: the sqlite connection is opened FULLMUTEX, and each index
 * call also holds the handle's own mutex for its whole duration, because the
 * prepared statements cached in the handle are shared state and a multi-
 * statement write (a manifest and its refs) must not interleave with another
 * thread's statements on the same connection.
 *
 * Schema: PRAGMA user_version is the schema version; index_schema.c holds the
 * ordered migrations. index_open() applies the missing ones, each in its own
 * BEGIN IMMEDIATE transaction that re-reads the version first, so two
 * processes opening the same new file never both migrate it.
 * index_open_readonly() never writes and refuses a schema it does not know;
 * an older one opens (edgepullctl keeps working on a file the daemon has not
 * upgraded yet), and the calls needing newer tables refuse with
 * EP_EUNSUPPORTED (index_locality.c checks db->version). */
#include "store/index_db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cleanup_sqlite.h"
#include "common/log.h"

enum { INDEX_BUSY_TIMEOUT_MS = 5000 };

/* A node row with its inventory totals (index_locality.c reads columns 0-14
 * in this order). The byte total saturates instead of failing on overflow:
 * sizes come from other nodes. */
#define NODE_COLS                                                                                  \
  "n.id, n.addr, n.peer_port, n.arch, n.variant, n.link_mbps, n.free_bytes, n.version,"            \
  " n.online, n.gateway, n.last_seen, n.parent, n.epoch,"                                          \
  " (SELECT count(*) FROM inventory c WHERE c.node_id = n.id),"                                    \
  " (SELECT CAST(min(total(c.size), 9.0e18) AS INTEGER) FROM inventory c"                          \
  "  WHERE c.node_id = n.id)"

static const char *const stmt_sql[IST__COUNT] = {
    [IST_BEGIN] = "BEGIN IMMEDIATE",
    [IST_COMMIT] = "COMMIT",
    [IST_ROLLBACK] = "ROLLBACK",
    /* A blob seen again keeps its first `created` and a known media type
     * when the new record does not carry one (the fetcher does not know it). */
    [IST_BLOB_PUT] = "INSERT INTO blobs (digest, size, media_type, state, created, last_access)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                     " ON CONFLICT (digest) DO UPDATE SET size = excluded.size,"
                     " media_type = CASE WHEN excluded.media_type <> ''"
                     "   THEN excluded.media_type ELSE blobs.media_type END,"
                     " state = excluded.state,"
                     " last_access = max(blobs.last_access, excluded.last_access)",
    [IST_BLOB_GET] = "SELECT digest, size, media_type, state, created, last_access"
                     " FROM blobs WHERE digest = ?1",
    [IST_BLOB_TOUCH] = "UPDATE blobs SET last_access = max(last_access, ?2) WHERE digest = ?1",
    [IST_BLOB_DELETE] = "DELETE FROM blobs WHERE digest = ?1",
    [IST_BLOB_PAGE] = "SELECT digest, size, media_type, state, created, last_access"
                      " FROM blobs WHERE digest > ?1 ORDER BY digest LIMIT ?2",
    /* A manifest is also a blob; record it if the caller has not yet. */
    [IST_MANIFEST_BLOB] = "INSERT INTO blobs (digest, size, media_type, state, created,"
                          " last_access) VALUES (?1, ?2, ?3, 'complete', ?4, ?4)"
                          " ON CONFLICT (digest) DO UPDATE SET media_type = CASE"
                          " WHEN blobs.media_type = '' THEN excluded.media_type"
                          " ELSE blobs.media_type END",
    /* The first source of a manifest is kept: content is immutable. */
    [IST_MANIFEST_PUT] = "INSERT INTO manifests (digest, media_type, size, registry, repository,"
                         " created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                         " ON CONFLICT (digest) DO UPDATE SET media_type = excluded.media_type,"
                         " size = excluded.size",
    [IST_REFS_DELETE] = "DELETE FROM manifest_refs WHERE manifest = ?1",
    [IST_REF_ADD] = "INSERT INTO manifest_refs (manifest, position, child) VALUES (?1, ?2, ?3)",
    [IST_MANIFEST_GET] = "SELECT media_type, size FROM manifests WHERE digest = ?1",
    [IST_REFS_GET] = "SELECT child FROM manifest_refs WHERE manifest = ?1 ORDER BY position",
    [IST_MANIFEST_PAGE] = "SELECT digest, media_type, registry, repository FROM manifests"
                          " WHERE digest > ?1 ORDER BY digest LIMIT ?2",
    /* UNION (not UNION ALL) visits each digest once, so cycles end. */
    [IST_IMAGE_SIZE] =
        "WITH RECURSIVE reach (d) AS (SELECT ?1 UNION"
        " SELECT r.child FROM manifest_refs r JOIN reach ON r.manifest = reach.d)"
        " SELECT count(*), coalesce(sum(b.state = 'complete'), 0),"
        " coalesce(sum(b.size), 0) FROM reach LEFT JOIN blobs b ON b.digest = reach.d",
    [IST_TAG_PUT] = "INSERT INTO tags (registry, repository, tag, digest, media_type, size,"
                    " updated, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                    " ON CONFLICT (registry, repository, tag) DO UPDATE SET"
                    " digest = excluded.digest, media_type = excluded.media_type,"
                    " size = excluded.size, updated = excluded.updated,"
                    " expires_at = excluded.expires_at",
    [IST_TAG_GET] = "SELECT registry, repository, tag, digest, media_type, size, updated,"
                    " expires_at FROM tags WHERE registry = ?1 AND repository = ?2 AND tag = ?3",
    [IST_TAG_PAGE] = "SELECT registry, repository, tag, digest, media_type, size, updated,"
                     " expires_at FROM tags WHERE (registry, repository, tag) > (?1, ?2, ?3)"
                     " ORDER BY registry, repository, tag LIMIT ?4",
    [IST_STATS] = "SELECT (SELECT count(*) FROM blobs WHERE state = 'complete'),"
                  " (SELECT coalesce(sum(size), 0) FROM blobs WHERE state = 'complete'),"
                  " (SELECT count(*) FROM blobs WHERE state = 'partial'),"
                  " (SELECT count(*) FROM manifests), (SELECT count(*) FROM tags)",
    /* Locality (schema v2). A state message never moves a node's parent. */
    [IST_NODE_PUT] = "INSERT INTO nodes (id, addr, peer_port, arch, variant, link_mbps,"
                     " free_bytes, version, online, gateway, last_seen)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                     " ON CONFLICT (id) DO UPDATE SET addr = excluded.addr,"
                     " peer_port = excluded.peer_port, arch = excluded.arch,"
                     " variant = excluded.variant, link_mbps = excluded.link_mbps,"
                     " free_bytes = excluded.free_bytes, version = excluded.version,"
                     " online = excluded.online, gateway = excluded.gateway,"
                     " last_seen = excluded.last_seen",
    [IST_NODE_PARENT] = "INSERT INTO nodes (id, parent, epoch) VALUES (?1, ?2, ?3)"
                        " ON CONFLICT (id) DO UPDATE SET parent = excluded.parent,"
                        " epoch = excluded.epoch",
    [IST_NODE_ENSURE] = "INSERT INTO nodes (id) VALUES (?1) ON CONFLICT (id) DO NOTHING",
    [IST_NODE_GET] = "SELECT " NODE_COLS " FROM nodes n WHERE n.id = ?1",
    [IST_NODE_PAGE] = "SELECT " NODE_COLS " FROM nodes n WHERE n.id > ?1 ORDER BY n.id LIMIT ?2",
    [IST_NODE_DELETE] = "DELETE FROM nodes WHERE id = ?1",
    /* One statement: there is never a moment with two gateways. */
    [IST_NODE_GATEWAY] = "UPDATE nodes SET gateway = (id IS ?1) WHERE gateway != (id IS ?1)",
    [IST_INV_CLEAR] = "DELETE FROM inventory WHERE node_id = ?1",
    [IST_INV_ADD] = "INSERT INTO inventory (node_id, digest, size) VALUES (?1, ?2, ?3)"
                    " ON CONFLICT (node_id, digest) DO UPDATE SET size = excluded.size",
    [IST_INV_DEL] = "DELETE FROM inventory WHERE node_id = ?1 AND digest = ?2",
    /* Keyset paging on (offline, id): online holders first. */
    [IST_WHERE_PAGE] = "SELECT " NODE_COLS ", i.size FROM inventory i"
                       " JOIN nodes n ON n.id = i.node_id WHERE i.digest = ?1"
                       " AND (1 - n.online, n.id) > (?2, ?3)"
                       " ORDER BY 1 - n.online, n.id LIMIT ?4",
};

void index_lock(index_db *db) {
  pthread_mutex_lock(&db->mu);
}

void index_unlock(index_db *db) {
  pthread_mutex_unlock(&db->mu);
}

int index_sql_error(index_db *db, int rc, ep_err *err, const char *what) {
  int code = EP_EIO;
  switch (rc & 0xff) {
  case SQLITE_FULL:
    code = EP_ENOSPC;
    break;
  case SQLITE_CONSTRAINT:
  case SQLITE_TOOBIG:
    code = EP_EINVAL;
    break;
  case SQLITE_NOMEM:
  case SQLITE_MISUSE:
    code = EP_EINTERNAL;
    break;
  default:
    break;
  }
  const char *msg = db->h != NULL ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc);
  return ep_error(err, code, "index %s: %s: %s", db->path, what, msg);
}

int index_stmt_get(index_db *db, enum index_stmt id, sqlite3_stmt **out, ep_err *err) {
  if (db->stmts[id] == NULL) {
    int rc = sqlite3_prepare_v3(db->h, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &db->stmts[id],
                                NULL);
    if (rc != SQLITE_OK)
      return index_sql_error(db, rc, err, "preparing a query");
  }
  *out = db->stmts[id];
  return 0;
}

/* Runs body inside BEGIN IMMEDIATE ... COMMIT under the handle's mutex,
 * rolling back on any failure. */
int index_in_tx(index_db *db, int (*body)(index_db *db, const void *ud, ep_err *err),
                const void *ud, const char *what, ep_err *err) {
  index_lock(db);
  int r = index_run(db, IST_BEGIN, "starting a transaction", err);
  if (r == 0) {
    if ((r = body(db, ud, err)) == 0)
      r = index_run(db, IST_COMMIT, what, err);
    if (r < 0 && !sqlite3_get_autocommit(db->h))
      index_run(db, IST_ROLLBACK, "rolling back", NULL);
  }
  index_unlock(db);
  return r;
}

void index_stmt_done(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

static int exec(index_db *db, const char *sql, const char *what, ep_err *err) {
  char *emsg = NULL;
  int rc = sqlite3_exec(db->h, sql, NULL, NULL, &emsg);
  if (rc == SQLITE_OK)
    return 0;
  int r = ep_error(err, (rc & 0xff) == SQLITE_FULL ? EP_ENOSPC : EP_EIO, "index %s: %s: %s",
                   db->path, what, emsg != NULL ? emsg : sqlite3_errstr(rc));
  sqlite3_free(emsg);
  return r;
}

static int read_version(index_db *db, int *out, ep_err *err) {
  ep_cleanup_stmt sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    *out = sqlite3_column_int(st, 0);
    rc = SQLITE_OK;
  }
  return rc == SQLITE_OK ? 0 : index_sql_error(db, rc, err, "reading the schema version");
}

static int too_new(index_db *db, int version, ep_err *err) {
  return ep_error(err, EP_EUNSUPPORTED,
                  "index %s has schema version %d, newer than this edgepull knows (%d): "
                  "upgrade edgepull or point it at another state directory",
                  db->path, version, index_latest_schema_version());
}

/* One step: re-read the version inside the write transaction, so a second
 * process that migrated meanwhile is noticed. Sets *done at the latest. */
static int migrate_step(index_db *db, bool *done, ep_err *err) {
  int r = exec(db, "BEGIN IMMEDIATE", "starting a migration", err);
  if (r < 0)
    return r;
  int v = 0;
  if ((r = read_version(db, &v, err)) < 0)
    goto fail;
  int latest = index_latest_schema_version();
  if (v > latest || v < 0) {
    r = too_new(db, v, err);
    goto fail;
  }
  if (v == latest) {
    *done = true;
    db->version = v;
    return exec(db, "COMMIT", "ending a migration", err);
  }
  char what[64];
  snprintf(what, sizeof what, "migrating to schema v%d", v + 1);
  if ((r = exec(db, index_migration_sql(v + 1), what, err)) < 0)
    goto fail;
  char set[64];
  snprintf(set, sizeof set, "PRAGMA user_version = %d", v + 1);
  if ((r = exec(db, set, what, err)) < 0 || (r = exec(db, "COMMIT", what, err)) < 0)
    goto fail;
  ep_log_info("index %s: migrated to schema v%d", db->path, v + 1);
  return 0;
fail:
  sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
  return r;
}

static int migrate(index_db *db, ep_err *err) {
  bool done = false;
  for (int i = 0; !done; i++) {
    if (i > index_latest_schema_version())
      return ep_error(err, EP_EINTERNAL, "index %s: migrations do not converge", db->path);
    int r = migrate_step(db, &done, err);
    if (r < 0)
      return r;
  }
  return 0;
}

static int set_pragmas(index_db *db, ep_err *err) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db->h, "PRAGMA journal_mode = WAL", -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char *mode = sqlite3_column_text(st, 0);
    /* Some filesystems (network mounts) cannot do WAL: still usable. */
    if (mode == NULL || strcmp((const char *)mode, "wal") != 0)
      ep_log_warn("index %s: journal mode is %s, not wal: readers may block the daemon", db->path,
                  mode != NULL ? (const char *)mode : "unknown");
    rc = SQLITE_OK;
  }
  int r = rc == SQLITE_OK ? 0 : index_sql_error(db, rc, err, "enabling WAL");
  sqlite3_finalize(st);
  if (r < 0)
    return r;
  if ((r = exec(db, "PRAGMA synchronous = NORMAL", "setting synchronous", err)) < 0)
    return r;
  if ((r = exec(db, "PRAGMA foreign_keys = ON", "enabling foreign keys", err)) < 0)
    return r;
  /* The index holds thousands of rows, not millions: 512 KiB of page cache
   * instead of SQLite's default 2 MiB keeps a node's memory small. */
  return exec(db, "PRAGMA cache_size = -512", "setting the page cache size", err);
}

static int db_new(const char *path, bool readonly, index_db **out, ep_err *err) {
  if (path == NULL || path[0] == '\0')
    return ep_error(err, EP_EINVAL, "index: empty path");
  index_db *db = calloc(1, sizeof *db);
  if (db == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  if ((size_t)snprintf(db->path, sizeof db->path, "%s", path) >= sizeof db->path) {
    free(db);
    return ep_error(err, EP_EINVAL, "index path too long: %.64s...", path);
  }
  if (pthread_mutex_init(&db->mu, NULL) != 0) {
    free(db);
    return ep_error(err, EP_EINTERNAL, "index: cannot create a mutex");
  }
  db->readonly = readonly;
  int flags = SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW |
              (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  int rc = sqlite3_open_v2(path, &db->h, flags, NULL);
  if (rc != SQLITE_OK) {
    int r = index_sql_error(db, rc, err, "opening");
    index_close(db);
    return r;
  }
  sqlite3_extended_result_codes(db->h, 1);
  sqlite3_busy_timeout(db->h, INDEX_BUSY_TIMEOUT_MS);
  *out = db;
  return 0;
}

int index_open(const char *path, index_db **out, ep_err *err) {
  index_db *db = NULL;
  int r = db_new(path, false, &db, err);
  if (r < 0)
    return r;
  if ((r = set_pragmas(db, err)) < 0 || (r = migrate(db, err)) < 0) {
    index_close(db);
    return r;
  }
  *out = db;
  return 0;
}

int index_open_readonly(const char *path, index_db **out, ep_err *err) {
  struct stat sb;
  if (path != NULL && lstat(path, &sb) < 0) {
    if (errno == ENOENT)
      return ep_error(err, EP_ENOTFOUND, "index %s does not exist", path);
    return ep_syserror(err, EP_EIO, "index %s", path);
  }
  index_db *db = NULL;
  int r = db_new(path, true, &db, err);
  if (r < 0)
    return r;
  int v = 0;
  if ((r = read_version(db, &v, err)) < 0)
    goto fail;
  if (v > index_latest_schema_version() || v < 0) {
    r = too_new(db, v, err);
    goto fail;
  }
  if (v == 0) {
    r = ep_error(err, EP_EINVAL, "index %s has no edgepull schema (user_version 0)", path);
    goto fail;
  }
  db->version = v;
  *out = db;
  return 0;
fail:
  index_close(db);
  return r;
}

void index_close(index_db *db) {
  if (db == NULL)
    return;
  for (size_t i = 0; i < IST__COUNT; i++)
    sqlite3_finalize(db->stmts[i]);
  sqlite3_close(db->h);
  pthread_mutex_destroy(&db->mu);
  free(db);
}

int index_schema_version(index_db *db) {
  return db->version;
}
