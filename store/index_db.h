/* Internals shared by the index's .c files (index.c: open, migrations,
 * statement cache; index_ops.c: the queries). Not a public header: nothing
 * outside store/index*.c includes it. */
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
  IST_IMAGE_SIZE,
  IST_TAG_PUT,
  IST_TAG_GET,
  IST_TAG_PAGE,
  IST_STATS,
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

#endif
