/* The snapshot metastore in sqlite: containerd's bolt metastore (snapshots/storage/bolt.go) as two
 * tables, migrated like the store's index (docs/snapshotter.md says why it is a file of its own).
 *
 * Concurrency: one writer connection, used only under snap.c's writer mutex, and a pool of reader
 * connections, each with its own mutex. In WAL mode a reader sees the last committed state and
 * never waits for the writer, so Stat and List go on while a Prepare or Commit writes.
 *
 * Ids: INTEGER PRIMARY KEY AUTOINCREMENT, so an id is never handed out again once a transaction
 * that used it committed, even after the snapshot is removed (its directory name stays unique).
 * A rolled-back id may come again; snap.c copes with a stale directory of that name. */
#include "plugin/snapshot/snap_meta.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { META_READERS = 4, META_BUSY_MS = 10000 };

static const char *const migrations[] = {
    /* v1: snapshots (key is the containerd key or, once committed, its name) and labels. */
    "CREATE TABLE snapshots (\n"
    "  id         INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  key        TEXT NOT NULL UNIQUE CHECK (length(key) BETWEEN 1 AND 4096),\n"
    "  parent_id  INTEGER REFERENCES snapshots (id),\n"
    "  kind       INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),\n"
    "  created_ns INTEGER NOT NULL,\n"
    "  updated_ns INTEGER NOT NULL,\n"
    "  size       INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),\n"
    "  inodes     INTEGER NOT NULL DEFAULT 0 CHECK (inodes >= 0)\n"
    ");\n"
    "CREATE INDEX snapshots_by_parent ON snapshots (parent_id);\n"
    "CREATE TABLE snapshot_labels (\n"
    "  snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,\n"
    "  key         TEXT NOT NULL,\n"
    "  value       TEXT NOT NULL CHECK (length(key) + length(value) <= 4096),\n"
    "  PRIMARY KEY (snapshot_id, key)\n"
    ") WITHOUT ROWID;\n",
};

#define ROW_COLS                                                                                   \
  "SELECT s.id, coalesce(s.parent_id, 0), s.key, coalesce(p.key, ''), s.kind, s.created_ns,"       \
  " s.updated_ns, s.size, s.inodes FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id"

enum meta_stmt {
  MS_GET,
  MS_PAGE,
  MS_LABELS,
  MS_CHAIN,
  MS_ID_EXISTS,
  MS_BEGIN,
  MS_COMMIT,
  MS_ROLLBACK,
  MS_INSERT,
  MS_LABELS_CLEAR,
  MS_LABEL_PUT,
  MS_TO_COMMITTED,
  MS_TOUCH,
  MS_HAS_CHILD,
  MS_DELETE,
  MS__COUNT
};

static const char *const stmt_sql[MS__COUNT] = {
    [MS_GET] = ROW_COLS " WHERE s.key = ?1",
    [MS_PAGE] = ROW_COLS " WHERE s.id > ?1 ORDER BY s.id LIMIT ?2",
    [MS_LABELS] = "SELECT key, value FROM snapshot_labels WHERE snapshot_id = ?1 ORDER BY key",
    /* A parent always has a smaller id than its child, so the chain has no cycle; the LIMIT
     * bounds it anyway. */
    [MS_CHAIN] = "WITH RECURSIVE c(id, parent_id, depth) AS ("
                 " SELECT id, parent_id, 0 FROM snapshots WHERE id = ?1"
                 " UNION ALL SELECT s.id, s.parent_id, c.depth + 1 FROM snapshots s"
                 " JOIN c ON s.id = c.parent_id WHERE c.depth < ?2)"
                 " SELECT id FROM c ORDER BY depth",
    [MS_ID_EXISTS] = "SELECT 1 FROM snapshots WHERE id = ?1",
    [MS_BEGIN] = "BEGIN IMMEDIATE",
    [MS_COMMIT] = "COMMIT",
    [MS_ROLLBACK] = "ROLLBACK",
    [MS_INSERT] = "INSERT INTO snapshots (key, parent_id, kind, created_ns, updated_ns)"
                  " VALUES (?1, nullif(?2, 0), ?3, ?4, ?4)",
    [MS_LABELS_CLEAR] = "DELETE FROM snapshot_labels WHERE snapshot_id = ?1",
    [MS_LABEL_PUT] = "INSERT OR REPLACE INTO snapshot_labels (snapshot_id, key, value)"
                     " VALUES (?1, ?2, ?3)",
    [MS_TO_COMMITTED] = "UPDATE snapshots SET key = ?2, kind = 3, created_ns = ?3,"
                        " updated_ns = ?3, size = ?4, inodes = ?5 WHERE id = ?1",
    [MS_TOUCH] = "UPDATE snapshots SET updated_ns = ?2 WHERE id = ?1",
    [MS_HAS_CHILD] = "SELECT 1 FROM snapshots WHERE parent_id = ?1 LIMIT 1",
    [MS_DELETE] = "DELETE FROM snapshots WHERE id = ?1",
};

struct meta_conn {
  pthread_mutex_t mu;
  sqlite3 *h;
  sqlite3_stmt *st[MS__COUNT];
};

struct snap_meta {
  struct meta_conn w;
  struct meta_conn r[META_READERS];
  unsigned next_reader; /* round robin; a racy read is harmless */
  char path[4096];
};

int snap_meta_schema_version(void) {
  return (int)(sizeof migrations / sizeof migrations[0]);
}

static int sql_err(struct meta_conn *c, int rc, ep_err *err, const char *what) {
  int code = (rc == SQLITE_FULL) ? EP_ENOSPC : EP_EIO;
  return ep_error(err, code, "snapshot metadata: %s: %s", what,
                  c->h != NULL ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc));
}

static int stmt(struct meta_conn *c, enum meta_stmt id, sqlite3_stmt **out, ep_err *err) {
  if (c->st[id] == NULL) {
    int rc =
        sqlite3_prepare_v3(c->h, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->st[id], NULL);
    if (rc != SQLITE_OK)
      return sql_err(c, rc, err, "preparing a statement");
  }
  *out = c->st[id];
  return 0;
}

static void stmt_done(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

static int exec(struct meta_conn *c, const char *sql, const char *what, ep_err *err) {
  int rc = sqlite3_exec(c->h, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : sql_err(c, rc, err, what);
}

/* Steps a statement that returns no rows and resets it. */
static int step_done(struct meta_conn *c, sqlite3_stmt *st, const char *what, ep_err *err) {
  int rc = sqlite3_step(st);
  int r = (rc == SQLITE_DONE) ? 0 : sql_err(c, rc, err, what);
  stmt_done(st);
  return r;
}

/* How a connection opens: the daemon's writer and readers, or a reader of edgepullctl that must
 * never write (SQLITE_OPEN_READONLY is sqlite's mode=ro: WAL-safe, it reads the -wal and -shm the
 * daemon keeps). */
enum conn_mode { CONN_WRITER, CONN_READER, CONN_READONLY };

static int conn_open(struct meta_conn *c, const char *path, enum conn_mode mode, ep_err *err) {
  bool writer = mode == CONN_WRITER;
  int flags = SQLITE_OPEN_NOMUTEX |
              (mode == CONN_READONLY ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
              (writer ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path, &c->h, flags, NULL);
  if (rc != SQLITE_OK)
    return sql_err(c, rc, err, "opening the database");
  sqlite3_busy_timeout(c->h, META_BUSY_MS);
  int r = exec(c, "PRAGMA foreign_keys = ON", "enabling foreign keys", err);
  if (r == 0 && writer)
    r = exec(c, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL", "setting WAL mode", err);
  return r;
}

static void conn_close(struct meta_conn *c) {
  for (int i = 0; i < MS__COUNT; i++)
    sqlite3_finalize(c->st[i]);
  if (c->h != NULL)
    sqlite3_close(c->h);
  pthread_mutex_destroy(&c->mu);
}

static int read_version(struct meta_conn *c, int *out, ep_err *err) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(c->h, "PRAGMA user_version", -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
    *out = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : sql_err(c, rc, err, "reading the schema version");
}

/* Applies each missing migration in its own transaction that re-reads the version first. */
static int migrate(struct meta_conn *c, ep_err *err) {
  for (;;) {
    int r = exec(c, "BEGIN IMMEDIATE", "starting a migration", err);
    if (r < 0)
      return r;
    int version = -1;
    if (read_version(c, &version, NULL) < 0)
      version = -1;
    if (version < 0 || version > snap_meta_schema_version()) {
      exec(c, "ROLLBACK", "rollback", NULL);
      return ep_error(err, EP_EUNSUPPORTED, "snapshot metadata: schema version %d unknown",
                      version);
    }
    if (version == snap_meta_schema_version())
      return exec(c, "COMMIT", "ending the migration check", err);
    char set[64];
    snprintf(set, sizeof set, "PRAGMA user_version = %d", version + 1);
    if ((r = exec(c, migrations[version], "migrating the schema", err)) < 0 ||
        (r = exec(c, set, "setting the schema version", err)) < 0 ||
        (r = exec(c, "COMMIT", "committing the migration", err)) < 0) {
      exec(c, "ROLLBACK", "rollback", NULL);
      return r;
    }
  }
}

static snap_meta *meta_new(const char *path) {
  snap_meta *m = calloc(1, sizeof *m);
  if (m == NULL)
    return NULL;
  snprintf(m->path, sizeof m->path, "%s", path);
  int i = -1; /* the writer's mutex, then each reader's */
  for (; i < META_READERS; i++)
    if (pthread_mutex_init(i < 0 ? &m->w.mu : &m->r[i].mu, NULL) != 0)
      break;
  if (i == META_READERS)
    return m;
  while (--i >= -1) /* the ones made before the failure */
    pthread_mutex_destroy(i < 0 ? &m->w.mu : &m->r[i].mu);
  free(m);
  return NULL;
}

int snap_meta_open(const char *path, snap_meta **out, ep_err *err) {
  snap_meta *m = meta_new(path);
  if (m == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  int r = conn_open(&m->w, path, CONN_WRITER, err);
  if (r == 0)
    r = migrate(&m->w, err);
  for (int i = 0; r == 0 && i < META_READERS; i++)
    r = conn_open(&m->r[i], path, CONN_READER, err);
  if (r < 0) {
    snap_meta_close(m);
    return r;
  }
  *out = m;
  return 0;
}

/* Readers only, none of them able to write; the writer connection stays closed, so the
 * snap_meta_w_* functions must not be called on it. The version check makes a newer schema an error
 * rather than a misreading, and an older one too (this process never migrates). */
int snap_meta_open_readonly(const char *path, snap_meta **out, ep_err *err) {
  struct stat sb;
  if (stat(path, &sb) < 0)
    return ep_syserror(err, errno == ENOENT ? EP_ENOTFOUND : EP_EIO, "snapshot metadata %s", path);
  snap_meta *m = meta_new(path);
  if (m == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  int r = 0, v = 0;
  for (int i = 0; r == 0 && i < META_READERS; i++)
    r = conn_open(&m->r[i], path, CONN_READONLY, err);
  if (r == 0)
    r = read_version(&m->r[0], &v, err);
  if (r == 0 && v != snap_meta_schema_version())
    r = ep_error(err, v == 0 ? EP_ENOTFOUND : EP_EUNSUPPORTED,
                 "snapshot metadata %s: schema version %d, this edgepull reads version %d", path, v,
                 snap_meta_schema_version());
  if (r < 0) {
    snap_meta_close(m);
    return r;
  }
  *out = m;
  return 0;
}

void snap_meta_close(snap_meta *m) {
  if (m == NULL)
    return;
  for (int i = 0; i < META_READERS; i++)
    conn_close(&m->r[i]);
  conn_close(&m->w);
  free(m);
}

static struct meta_conn *reader_get(snap_meta *m) {
  struct meta_conn *c =
      &m->r[__atomic_fetch_add(&m->next_reader, 1, __ATOMIC_RELAXED) % META_READERS];
  pthread_mutex_lock(&c->mu);
  return c;
}

static void reader_put(struct meta_conn *c) {
  pthread_mutex_unlock(&c->mu);
}

static char *col_dup(sqlite3_stmt *st, int col) {
  const unsigned char *t = sqlite3_column_text(st, col);
  return strdup(t != NULL ? (const char *)t : "");
}

void snap_row_free(struct snap_row *r) {
  if (r != NULL)
    snap_info_free(&r->info);
}

static int read_labels(struct meta_conn *c, int64_t id, struct snap_labels *out, ep_err *err) {
  sqlite3_stmt *st = NULL;
  int r = stmt(c, MS_LABELS, &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_int64(st, 1, id);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (out->n >= SNAP_MAX_LABELS) {
      r = ep_error(err, EP_ETOOBIG, "snapshot metadata: more than %d labels", SNAP_MAX_LABELS);
      break;
    }
    struct snap_label *v = realloc(out->v, (out->n + 1) * sizeof *v);
    if (v == NULL) {
      r = ep_error(err, EP_EINTERNAL, "out of memory");
      break;
    }
    out->v = v;
    v[out->n].key = col_dup(st, 0);
    v[out->n].value = col_dup(st, 1);
    out->n++;
    if (v[out->n - 1].key == NULL || v[out->n - 1].value == NULL) {
      r = ep_error(err, EP_EINTERNAL, "out of memory");
      break;
    }
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = sql_err(c, rc, err, "reading labels");
  stmt_done(st);
  return r;
}

/* Reads the current row of st (ROW_COLS) and its labels into out. */
static int read_row(struct meta_conn *c, sqlite3_stmt *st, struct snap_row *out, ep_err *err) {
  memset(out, 0, sizeof *out);
  out->id = sqlite3_column_int64(st, 0);
  out->parent_id = sqlite3_column_int64(st, 1);
  out->info.name = col_dup(st, 2);
  out->info.parent = col_dup(st, 3);
  out->info.kind = (enum snap_kind)sqlite3_column_int(st, 4);
  out->info.created_ns = sqlite3_column_int64(st, 5);
  out->info.updated_ns = sqlite3_column_int64(st, 6);
  out->usage.size = sqlite3_column_int64(st, 7);
  out->usage.inodes = sqlite3_column_int64(st, 8);
  if (out->info.name == NULL || out->info.parent == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  return 0;
}

static int get_on(struct meta_conn *c, const char *key, struct snap_row *out, ep_err *err) {
  sqlite3_stmt *st = NULL;
  int r = stmt(c, MS_GET, &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    r = read_row(c, st, out, err);
  else if (rc == SQLITE_DONE)
    r = ep_error(err, EP_ENOTFOUND, "snapshot %s does not exist", key);
  else
    r = sql_err(c, rc, err, "reading a snapshot");
  stmt_done(st);
  if (r == 0)
    r = read_labels(c, out->id, &out->info.labels, err);
  if (r < 0 && rc == SQLITE_ROW)
    snap_row_free(out);
  return r;
}

int snap_meta_get(snap_meta *m, const char *key, struct snap_row *out, ep_err *err) {
  struct meta_conn *c = reader_get(m);
  int r = get_on(c, key, out, err);
  reader_put(c);
  return r;
}

int snap_meta_w_get(snap_meta *m, const char *key, struct snap_row *out, ep_err *err) {
  return get_on(&m->w, key, out, err);
}

static int chain_on(struct meta_conn *c, int64_t id, int64_t **out, size_t *n, ep_err *err) {
  sqlite3_stmt *st = NULL;
  int r = stmt(c, MS_CHAIN, &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int(st, 2, SNAP_MAX_CHAIN);
  int64_t *ids = NULL;
  size_t k = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t *v = realloc(ids, (k + 1) * sizeof *v);
    if (v == NULL) {
      r = ep_error(err, EP_EINTERNAL, "out of memory");
      break;
    }
    ids = v;
    ids[k++] = sqlite3_column_int64(st, 0);
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = sql_err(c, rc, err, "reading a parent chain");
  stmt_done(st);
  if (r == 0 && k > SNAP_MAX_CHAIN)
    r = ep_error(err, EP_ETOOBIG, "parent chain longer than %d", SNAP_MAX_CHAIN);
  if (r < 0) {
    free(ids);
    return r;
  }
  *out = ids;
  *n = k;
  return 0;
}

int snap_meta_chain(snap_meta *m, int64_t id, int64_t **out, size_t *n, ep_err *err) {
  struct meta_conn *c = reader_get(m);
  int r = chain_on(c, id, out, n, err);
  reader_put(c);
  return r;
}

int snap_meta_w_chain(snap_meta *m, int64_t id, int64_t **out, size_t *n, ep_err *err) {
  return chain_on(&m->w, id, out, n, err);
}

int snap_meta_page(snap_meta *m, int64_t after, struct snap_row *rows, size_t cap, size_t *n,
                   ep_err *err) {
  struct meta_conn *c = reader_get(m);
  sqlite3_stmt *st = NULL;
  size_t k = 0;
  int r = exec(c, "BEGIN", "starting a read", err);
  if (r == 0)
    r = stmt(c, MS_PAGE, &st, err);
  if (r == 0) {
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)cap);
    int rc = SQLITE_DONE;
    while (r == 0 && k < cap && (rc = sqlite3_step(st)) == SQLITE_ROW)
      if ((r = read_row(c, st, &rows[k], err)) == 0)
        k++;
    if (r == 0 && k < cap && rc != SQLITE_DONE)
      r = sql_err(c, rc, err, "listing snapshots");
    stmt_done(st);
  }
  for (size_t i = 0; r == 0 && i < k; i++)
    r = read_labels(c, rows[i].id, &rows[i].info.labels, err);
  exec(c, "COMMIT", "ending a read", NULL);
  reader_put(c);
  if (r < 0) {
    for (size_t i = 0; i < k; i++)
      snap_row_free(&rows[i]);
    return r;
  }
  *n = k;
  return 0;
}

int snap_meta_foreach(snap_meta *m, snap_meta_fn fn, void *ud, ep_err *err) {
  enum { PAGE = 64 };
  struct snap_row rows[PAGE];
  int64_t after = 0;
  for (;;) {
    size_t n = 0;
    int r = snap_meta_page(m, after, rows, PAGE, &n, err);
    for (size_t i = 0; i < n; i++) {
      if (r == 0)
        r = fn(&rows[i], ud);
      snap_row_free(&rows[i]);
    }
    if (r != 0 || n < PAGE)
      return r;
    after = rows[n - 1].id;
  }
}

static int exists_on(struct meta_conn *c, enum meta_stmt id_stmt, int64_t id, bool *out,
                     ep_err *err) {
  sqlite3_stmt *st = NULL;
  int r = stmt(c, id_stmt, &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_int64(st, 1, id);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE)
    *out = (rc == SQLITE_ROW);
  else
    r = sql_err(c, rc, err, "looking up a snapshot id");
  stmt_done(st);
  return r;
}

int snap_meta_id_exists(snap_meta *m, int64_t id, bool *out, ep_err *err) {
  struct meta_conn *c = reader_get(m);
  int r = exists_on(c, MS_ID_EXISTS, id, out, err);
  reader_put(c);
  return r;
}

static int w_run(snap_meta *m, enum meta_stmt id, const char *what, ep_err *err) {
  sqlite3_stmt *st = NULL;
  int r = stmt(&m->w, id, &st, err);
  return r < 0 ? r : step_done(&m->w, st, what, err);
}

int snap_meta_w_begin(snap_meta *m, ep_err *err) {
  return w_run(m, MS_BEGIN, "starting a transaction", err);
}

int snap_meta_w_commit(snap_meta *m, ep_err *err) {
  return w_run(m, MS_COMMIT, "committing", err);
}

void snap_meta_w_rollback(snap_meta *m) {
  if (!sqlite3_get_autocommit(m->w.h))
    w_run(m, MS_ROLLBACK, "rolling back", NULL);
}

int snap_meta_w_insert(snap_meta *m, const char *key, int64_t parent_id, enum snap_kind kind,
                       int64_t now_ns, int64_t *id_out, ep_err *err) {
  sqlite3_stmt *st = NULL;
  int r = stmt(&m->w, MS_INSERT, &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, parent_id);
  sqlite3_bind_int(st, 3, (int)kind);
  sqlite3_bind_int64(st, 4, now_ns);
  if ((r = step_done(&m->w, st, "inserting a snapshot", err)) < 0)
    return r;
  *id_out = sqlite3_last_insert_rowid(m->w.h);
  return 0;
}

int snap_meta_w_set_labels(snap_meta *m, int64_t id, const struct snap_labels *l, ep_err *err) {
  sqlite3_stmt *st = NULL;
  int r = stmt(&m->w, MS_LABELS_CLEAR, &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_int64(st, 1, id);
  if ((r = step_done(&m->w, st, "clearing labels", err)) < 0)
    return r;
  if ((r = stmt(&m->w, MS_LABEL_PUT, &st, err)) < 0)
    return r;
  for (size_t i = 0; l != NULL && i < l->n; i++) {
    if (l->v[i].value[0] == '\0')
      continue;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, l->v[i].key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, l->v[i].value, -1, SQLITE_STATIC);
    if ((r = step_done(&m->w, st, "writing a label", err)) < 0)
      return r;
  }
  return 0;
}

int snap_meta_w_to_committed(snap_meta *m, int64_t id, const char *name, int64_t now_ns,
                             const struct snap_usage *u, ep_err *err) {
  sqlite3_stmt *st = NULL;
  int r = stmt(&m->w, MS_TO_COMMITTED, &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, now_ns);
  sqlite3_bind_int64(st, 4, u->size);
  sqlite3_bind_int64(st, 5, u->inodes);
  return step_done(&m->w, st, "committing a snapshot", err);
}

int snap_meta_w_touch(snap_meta *m, int64_t id, int64_t now_ns, ep_err *err) {
  sqlite3_stmt *st = NULL;
  int r = stmt(&m->w, MS_TOUCH, &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, now_ns);
  return step_done(&m->w, st, "updating a snapshot", err);
}

int snap_meta_w_has_child(snap_meta *m, int64_t id, bool *out, ep_err *err) {
  return exists_on(&m->w, MS_HAS_CHILD, id, out, err);
}

int snap_meta_w_delete(snap_meta *m, int64_t id, ep_err *err) {
  sqlite3_stmt *st = NULL;
  int r = stmt(&m->w, MS_DELETE, &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_int64(st, 1, id);
  return step_done(&m->w, st, "removing a snapshot", err);
}
