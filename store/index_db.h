/* Internals shared by the index's .c files (index.c: open, migrations,
 * statement cache; index_ops.c: the local queries and the checking and
 * binding helpers; index_locality.c: nodes and inventory). Not a public
 * header: nothing outside store/index*.c includes it. */
#ifndef EP_STORE_INDEX_DB_H
#define EP_STORE_INDEX_DB_H

#include <pthread.h>
#include <sqlite3.h>

#include "store/index.h"

/* Cached prepared statements, one per query; SQL text in index.c. */
enum index_stmt {
  IST_BEGIN,
  IST_COMMIT,
  IST_ROLLBACK,
  IST_BLOB_PUT,
  IST_BLOB_GET,
  IST_BLOB_TOUCH,
  IST_BLOB_DELETE,
  IST_BLOB_PAGE,
  IST_MANIFEST_BLOB,
  IST_MANIFEST_PUT,
  IST_REFS_DELETE,
  IST_REF_ADD,
  IST_MANIFEST_GET,
  IST_REFS_GET,
  IST_MANIFEST_PAGE,
  IST_IMAGE_SIZE,
  IST_TAG_PUT,
  IST_TAG_GET,
  IST_TAG_PAGE,
  IST_STATS,
  IST_NODE_PUT,
  IST_NODE_PARENT,
  IST_NODE_ENSURE,
  IST_NODE_GET,
  IST_NODE_PAGE,
  IST_NODE_DELETE,
  IST_NODE_GATEWAY,
  IST_INV_CLEAR,
  IST_INV_ADD,
  IST_INV_DEL,
  IST_WHERE_PAGE,
  IST__COUNT
};

struct index_db {
  pthread_mutex_t mu; /* guards h's use, stmts[] and errmsg reads */
  sqlite3 *h;
  sqlite3_stmt *stmts[IST__COUNT];
  int version;
  int readonly;
  char path[512];
};

/* Lock before, unlock after every use of db->h and db->stmts. */
void index_lock(index_db *db);
void index_unlock(index_db *db);
/* The cached statement id, prepared on first use, reset and unbound. */
int index_stmt_get(index_db *db, enum index_stmt id, sqlite3_stmt **out, ep_err *err);
/* Reset and clear bindings so the next user starts clean. */
void index_stmt_done(sqlite3_stmt *st);
/* Map a sqlite result code to an ep_err naming the index file and `what`. */
int index_sql_error(index_db *db, int rc, ep_err *err, const char *what);

/* Rows a foreach walk reads under the mutex before calling back unlocked. */
enum { INDEX_PAGE_ROWS = 128 };

/* Input checks (index_ops.c): each returns 0 or a negative EP_EINVAL. */
int index_check_digest(const digest_t *d, ep_err *err);
int index_check_str(const char *s, size_t cap, bool allow_empty, const char *what, ep_err *err);
int index_check_size(uint64_t size, const char *what, ep_err *err); /* <= INT64_MAX */
int index_check_writable(index_db *db, ep_err *err);
void index_bind_digest(sqlite3_stmt *st, int col, const digest_t *d);
void index_bind_str(sqlite3_stmt *st, int col, const char *s);
/* Row readers: a value past its bound (edited by hand) is an error. */
int index_row_digest(index_db *db, sqlite3_stmt *st, int col, digest_t *out, ep_err *err);
int index_row_str(index_db *db, sqlite3_stmt *st, int col, char *out, size_t cap, ep_err *err);
int index_row_size(index_db *db, sqlite3_stmt *st, int col, uint64_t *out, ep_err *err);
/* Step a statement that returns no rows, then reset it; the caller holds
 * the lock. index_run does it for a cached parameterless one (BEGIN ...). */
int index_step_done(index_db *db, sqlite3_stmt *st, const char *what, ep_err *err);
int index_run(index_db *db, enum index_stmt id, const char *what, ep_err *err);
/* Runs body inside BEGIN IMMEDIATE ... COMMIT under the handle's mutex,
 * rolling back on any failure; what names the commit in errors. */
int index_in_tx(index_db *db, int (*body)(index_db *db, const void *ud, ep_err *err),
                const void *ud, const char *what, ep_err *err);

#endif
