/* Scope-bound end of a sqlite statement. Two kinds, because the index keeps
 * prepared statements cached (index_stmt_get):
 *   ep_cleanup_stmt        sqlite3_finalize: a statement prepared here;
 *   ep_cleanup_stmt_reset  sqlite3_reset + clear bindings: a cached one,
 *                          ready for its next use and holding no read lock.
 * Header-only: ep_common does not link sqlite; include it where sqlite
 * already is. sqlite3_finalize accepts NULL; the reset is skipped for NULL. */
#ifndef EP_COMMON_CLEANUP_SQLITE_H
#define EP_COMMON_CLEANUP_SQLITE_H

#include <sqlite3.h>

static inline void ep_sqlite_finalizep(sqlite3_stmt **st) {
  sqlite3_finalize(*st);
}
static inline void ep_sqlite_resetp(sqlite3_stmt **st) {
  if (*st != NULL) {
    sqlite3_reset(*st);
    sqlite3_clear_bindings(*st);
  }
}

#define ep_cleanup_stmt __attribute__((cleanup(ep_sqlite_finalizep)))
#define ep_cleanup_stmt_reset __attribute__((cleanup(ep_sqlite_resetp)))

#endif
