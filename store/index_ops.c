/* The index queries: blobs, manifests and their references, tags, stats,
 * and the checking / binding / row-reading helpers every index_*.c shares
 * (declared in index_db.h).
 *
 * Every string and size is checked before it is bound (names and media
 * types under 256 bytes, sizes within sqlite's signed 64 bits), and every
 * row read back is checked again, since an operator may edit the file with
 * the sqlite3 shell: a malformed row is an error naming the index, never a
 * truncated or overflowed buffer.
 *
 * The foreach walks read a page of rows under the handle's mutex, then call
 * the callback for each row with the mutex released, and continue after the
 * last key seen (keyset paging). So callbacks may call into the index, other
 * threads are never blocked for a whole walk, and memory stays bounded; a row
 * added or removed during a walk may or may not be visited, none twice. */
#include "common/vec.h"
#include "store/index_db.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { INDEX_REFS_MAX = 65536 };

int index_check_digest(const digest_t *d, ep_err *err) {
  if (d == NULL)
    return ep_error(err, EP_EINVAL, "index: missing digest");
  digest_t tmp;
  if (strnlen(d->hex, sizeof d->hex) >= sizeof d->hex)
    return ep_error(err, EP_EINVAL, "index: digest is not terminated");
  return digest_parse_hex(d->hex, &tmp, err);
}

int index_check_str(const char *s, size_t cap, bool allow_empty, const char *what, ep_err *err) {
  if (s == NULL)
    return ep_error(err, EP_EINVAL, "index: missing %s", what);
  size_t n = strnlen(s, cap);
  if (n >= cap)
    return ep_error(err, EP_EINVAL, "index: %s longer than %zu bytes", what, cap - 1);
  if (n == 0 && !allow_empty)
    return ep_error(err, EP_EINVAL, "index: empty %s", what);
  return 0;
}

int index_check_size(uint64_t size, const char *what, ep_err *err) {
  if (size > (uint64_t)INT64_MAX)
    return ep_error(err, EP_EINVAL, "index: %s %llu out of range", what, (unsigned long long)size);
  return 0;
}

int index_check_writable(index_db *db, ep_err *err) {
  if (db->readonly)
    return ep_error(err, EP_EINVAL, "index %s is open read-only", db->path);
  return 0;
}

void index_bind_digest(sqlite3_stmt *st, int col, const digest_t *d) {
  char s[DIGEST_STR_LEN + 1];
  digest_format(d, s);
  sqlite3_bind_text(st, col, s, -1, SQLITE_TRANSIENT);
}

void index_bind_str(sqlite3_stmt *st, int col, const char *s) {
  sqlite3_bind_text(st, col, s, -1, SQLITE_TRANSIENT);
}

int index_row_digest(index_db *db, sqlite3_stmt *st, int col, digest_t *out, ep_err *err) {
  const char *s = (const char *)sqlite3_column_text(st, col);
  if (s == NULL || digest_parse(s, out, err) < 0)
    return ep_error(err, EP_EINVAL, "index %s: malformed digest '%.80s' in %s", db->path,
                    s != NULL ? s : "NULL", sqlite3_column_name(st, col));
  return 0;
}

int index_row_str(index_db *db, sqlite3_stmt *st, int col, char *out, size_t cap, ep_err *err) {
  const char *s = (const char *)sqlite3_column_text(st, col);
  size_t n = s != NULL ? (size_t)sqlite3_column_bytes(st, col) : 0;
  if (n >= cap || (s != NULL && strlen(s) != n))
    return ep_error(err, EP_EINVAL, "index %s: malformed %s value '%.40s...'", db->path,
                    sqlite3_column_name(st, col), s != NULL ? s : "");
  memcpy(out, s != NULL ? s : "", n);
  out[n] = '\0';
  return 0;
}

int index_row_size(index_db *db, sqlite3_stmt *st, int col, uint64_t *out, ep_err *err) {
  sqlite3_int64 v = sqlite3_column_int64(st, col);
  if (v < 0)
    return ep_error(err, EP_EINVAL, "index %s: negative %s %lld", db->path,
                    sqlite3_column_name(st, col), (long long)v);
  *out = (uint64_t)v;
  return 0;
}

/* Columns: digest, size, media_type, state, created, last_access. */
static int row_blob(index_db *db, sqlite3_stmt *st, struct index_blob *b, ep_err *err) {
  int r;
  if ((r = index_row_digest(db, st, 0, &b->digest, err)) < 0 ||
      (r = index_row_size(db, st, 1, &b->size, err)) < 0 ||
      (r = index_row_str(db, st, 2, b->media_type, sizeof b->media_type, err)) < 0)
    return r;
  const char *state = (const char *)sqlite3_column_text(st, 3);
  b->state =
      state != NULL && strcmp(state, "complete") == 0 ? INDEX_BLOB_COMPLETE : INDEX_BLOB_PARTIAL;
  b->created = sqlite3_column_int64(st, 4);
  b->last_access = sqlite3_column_int64(st, 5);
  return 0;
}

/* Columns: registry, repository, tag, digest, media_type, size, updated, expires_at. */
static int row_tag(index_db *db, sqlite3_stmt *st, struct index_tag *t, ep_err *err) {
  int r;
  if ((r = index_row_str(db, st, 0, t->registry, sizeof t->registry, err)) < 0 ||
      (r = index_row_str(db, st, 1, t->repository, sizeof t->repository, err)) < 0 ||
      (r = index_row_str(db, st, 2, t->tag, sizeof t->tag, err)) < 0 ||
      (r = index_row_digest(db, st, 3, &t->digest, err)) < 0 ||
      (r = index_row_str(db, st, 4, t->media_type, sizeof t->media_type, err)) < 0 ||
      (r = index_row_size(db, st, 5, &t->size, err)) < 0)
    return r;
  t->updated = sqlite3_column_int64(st, 6);
  t->expires_at = sqlite3_column_int64(st, 7);
  return 0;
}

/* Run a statement that returns no rows; the caller holds the lock. */
int index_step_done(index_db *db, sqlite3_stmt *st, const char *what, ep_err *err) {
  int rc = sqlite3_step(st);
  int r = rc == SQLITE_DONE ? 0 : index_sql_error(db, rc, err, what);
  index_stmt_done(st);
  return r;
}

/* Run a cached statement with no parameters (BEGIN, COMMIT, ROLLBACK). */
int index_run(index_db *db, enum index_stmt id, const char *what, ep_err *err) {
  sqlite3_stmt *st = NULL;
  int r = index_stmt_get(db, id, &st, err);
  return r < 0 ? r : index_step_done(db, st, what, err);
}

int index_blob_put(index_db *db, const struct index_blob *b, ep_err *err) {
  int r;
  if (b == NULL)
    return ep_error(err, EP_EINVAL, "index: missing blob");
  if ((r = index_check_writable(db, err)) < 0 || (r = index_check_digest(&b->digest, err)) < 0 ||
      (r = index_check_size(b->size, "blob size", err)) < 0 ||
      (r = index_check_str(b->media_type, sizeof b->media_type, true, "media type", err)) < 0)
    return r;
  if (b->state != INDEX_BLOB_PARTIAL && b->state != INDEX_BLOB_COMPLETE)
    return ep_error(err, EP_EINVAL, "index: blob state %d unknown", b->state);
  int64_t now = (int64_t)time(NULL);
  index_lock(db);
  sqlite3_stmt *st = NULL;
  if ((r = index_stmt_get(db, IST_BLOB_PUT, &st, err)) == 0) {
    index_bind_digest(st, 1, &b->digest);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)b->size);
    index_bind_str(st, 3, b->media_type);
    index_bind_str(st, 4, b->state == INDEX_BLOB_COMPLETE ? "complete" : "partial");
    sqlite3_bind_int64(st, 5, b->created != 0 ? b->created : now);
    sqlite3_bind_int64(st, 6, b->last_access != 0 ? b->last_access : now);
    r = index_step_done(db, st, "recording a blob", err);
  }
  index_unlock(db);
  return r;
}

int index_blob_get(index_db *db, const digest_t *d, struct index_blob *out, ep_err *err) {
  int r = index_check_digest(d, err);
  if (r < 0)
    return r;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  if ((r = index_stmt_get(db, IST_BLOB_GET, &st, err)) == 0) {
    index_bind_digest(st, 1, d);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
      r = row_blob(db, st, out, err) == 0 ? 1 : -EP_EINVAL;
    else if (rc != SQLITE_DONE)
      r = index_sql_error(db, rc, err, "reading a blob");
    index_stmt_done(st);
  }
  index_unlock(db);
  return r;
}

static int blob_change(index_db *db, enum index_stmt id, const digest_t *d, int64_t now,
                       int *changes, ep_err *err) {
  int r;
  if ((r = index_check_writable(db, err)) < 0 || (r = index_check_digest(d, err)) < 0)
    return r;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  if ((r = index_stmt_get(db, id, &st, err)) == 0) {
    index_bind_digest(st, 1, d);
    if (id == IST_BLOB_TOUCH)
      sqlite3_bind_int64(st, 2, now);
    r = index_step_done(db, st, id == IST_BLOB_TOUCH ? "touching a blob" : "deleting a blob", err);
    *changes = sqlite3_changes(db->h);
  }
  index_unlock(db);
  return r;
}

int index_blob_touch(index_db *db, const digest_t *d, int64_t now, ep_err *err) {
  int changes = 0;
  int r = blob_change(db, IST_BLOB_TOUCH, d, now, &changes, err);
  if (r == 0 && changes == 0)
    return ep_error(err, EP_ENOTFOUND, "index: blob sha256:%s not recorded", d->hex);
  return r;
}

struct touches {
  const struct index_touch *v;
  size_t n;
};

static int touches_body(index_db *db, const void *ud, ep_err *err) {
  const struct touches *t = ud;
  int r = 0;
  sqlite3_stmt *st = NULL;
  for (size_t i = 0; i < t->n && r == 0; i++)
    if ((r = index_stmt_get(db, IST_BLOB_TOUCH, &st, err)) == 0) {
      index_bind_digest(st, 1, &t->v[i].digest);
      sqlite3_bind_int64(st, 2, t->v[i].at);
      r = index_step_done(db, st, "touching a blob", err);
    }
  return r;
}

int index_blobs_touch(index_db *db, const struct index_touch *v, size_t n, ep_err *err) {
  if (n == 0)
    return 0;
  int r = index_check_writable(db, err);
  for (size_t i = 0; i < n && r == 0; i++)
    r = index_check_digest(&v[i].digest, err);
  if (r < 0)
    return r;
  struct touches t = {.v = v, .n = n};
  return index_in_tx(db, touches_body, &t, "committing touches", err);
}

/* Deleting an absent blob is not an error; its manifest row and references
 * go with it (ON DELETE CASCADE). */
int index_blob_delete(index_db *db, const digest_t *d, ep_err *err) {
  int changes = 0;
  return blob_change(db, IST_BLOB_DELETE, d, 0, &changes, err);
}

/* Fills buf with up to INDEX_PAGE_ROWS blobs after *last; *n rows read. */
static int blob_page(index_db *db, const char *last, struct index_blob *buf, size_t *n,
                     ep_err *err) {
  *n = 0;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  int r = index_stmt_get(db, IST_BLOB_PAGE, &st, err);
  if (r == 0) {
    index_bind_str(st, 1, last);
    sqlite3_bind_int(st, 2, INDEX_PAGE_ROWS);
    int rc;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
      if ((r = row_blob(db, st, &buf[*n], err)) == 0)
        (*n)++;
    if (r == 0 && rc != SQLITE_DONE)
      r = index_sql_error(db, rc, err, "listing blobs");
    index_stmt_done(st);
  }
  index_unlock(db);
  return r;
}

int index_foreach_blob(index_db *db, int (*cb)(const struct index_blob *b, void *ud), void *ud,
                       ep_err *err) {
  struct index_blob *buf = calloc(INDEX_PAGE_ROWS, sizeof *buf);
  if (buf == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  char last[DIGEST_STR_LEN + 1] = "";
  int r = 0;
  for (;;) {
    size_t n = 0;
    if ((r = blob_page(db, last, buf, &n, err)) < 0)
      break;
    for (size_t i = 0; i < n && r == 0; i++)
      r = cb(&buf[i], ud);
    if (r != 0 || n < INDEX_PAGE_ROWS)
      break;
    digest_format(&buf[n - 1].digest, last);
  }
  free(buf);
  return r;
}

static int manifest_rows(index_db *db, const digest_t *d, const char *media_type, uint64_t size,
                         const char *registry, const char *repository, ep_err *err) {
  int64_t now = (int64_t)time(NULL);
  sqlite3_stmt *st = NULL;
  int r = index_stmt_get(db, IST_MANIFEST_BLOB, &st, err);
  if (r < 0)
    return r;
  index_bind_digest(st, 1, d);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)size);
  index_bind_str(st, 3, media_type);
  sqlite3_bind_int64(st, 4, now);
  if ((r = index_step_done(db, st, "recording a manifest blob", err)) < 0)
    return r;
  if ((r = index_stmt_get(db, IST_MANIFEST_PUT, &st, err)) < 0)
    return r;
  index_bind_digest(st, 1, d);
  index_bind_str(st, 2, media_type);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)size);
  index_bind_str(st, 4, registry);
  index_bind_str(st, 5, repository);
  sqlite3_bind_int64(st, 6, now);
  return index_step_done(db, st, "recording a manifest", err);
}

static int manifest_refs_write(index_db *db, const digest_t *d, const digest_t *refs, size_t nrefs,
                               ep_err *err) {
  sqlite3_stmt *st = NULL;
  int r = index_stmt_get(db, IST_REFS_DELETE, &st, err);
  if (r < 0)
    return r;
  index_bind_digest(st, 1, d);
  if ((r = index_step_done(db, st, "replacing manifest references", err)) < 0)
    return r;
  if ((r = index_stmt_get(db, IST_REF_ADD, &st, err)) < 0)
    return r;
  for (size_t i = 0; i < nrefs && r == 0; i++) {
    index_bind_digest(st, 1, d);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
    index_bind_digest(st, 3, &refs[i]);
    r = index_step_done(db, st, "recording a manifest reference", err);
  }
  return r;
}

int index_manifest_put(index_db *db, const digest_t *d, const char *media_type, uint64_t size,
                       const char *registry, const char *repository, const digest_t *refs,
                       size_t nrefs, ep_err *err) {
  int r;
  if ((r = index_check_writable(db, err)) < 0 || (r = index_check_digest(d, err)) < 0 ||
      (r = index_check_str(media_type, INDEX_MEDIA_TYPE_MAX, true, "media type", err)) < 0 ||
      (r = index_check_size(size, "manifest size", err)) < 0 ||
      (r = index_check_str(registry, INDEX_NAME_MAX, false, "registry", err)) < 0 ||
      (r = index_check_str(repository, INDEX_NAME_MAX, false, "repository", err)) < 0)
    return r;
  if (nrefs > INDEX_REFS_MAX || (nrefs > 0 && refs == NULL))
    return ep_error(err, EP_EINVAL, "index: manifest sha256:%s has %zu references (at most %d)",
                    d->hex, nrefs, INDEX_REFS_MAX);
  for (size_t i = 0; i < nrefs; i++)
    if ((r = index_check_digest(&refs[i], err)) < 0)
      return ep_wrap(err, "manifest sha256:%s reference %zu", d->hex, i);
  index_lock(db);
  if ((r = index_run(db, IST_BEGIN, "starting a transaction", err)) == 0) {
    if ((r = manifest_rows(db, d, media_type, size, registry, repository, err)) == 0)
      r = manifest_refs_write(db, d, refs, nrefs, err);
    if (r == 0)
      r = index_run(db, IST_COMMIT, "committing a manifest", err);
    if (r < 0 && !sqlite3_get_autocommit(db->h))
      index_run(db, IST_ROLLBACK, "rolling back", NULL);
  }
  index_unlock(db);
  return r;
}

int index_manifest_get(index_db *db, const digest_t *d, char media_type[INDEX_MEDIA_TYPE_MAX],
                       uint64_t *size, ep_err *err) {
  int r = index_check_digest(d, err);
  if (r < 0)
    return r;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  if ((r = index_stmt_get(db, IST_MANIFEST_GET, &st, err)) == 0) {
    index_bind_digest(st, 1, d);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      r = index_row_str(db, st, 0, media_type, INDEX_MEDIA_TYPE_MAX, err);
      if (r == 0)
        r = index_row_size(db, st, 1, size, err);
      if (r == 0)
        r = 1;
    } else if (rc != SQLITE_DONE) {
      r = index_sql_error(db, rc, err, "reading a manifest");
    }
    index_stmt_done(st);
  }
  index_unlock(db);
  return r;
}

static int manifest_page(index_db *db, const char *last, struct index_manifest *buf, size_t *n,
                         ep_err *err) {
  *n = 0;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  int r = index_stmt_get(db, IST_MANIFEST_PAGE, &st, err);
  if (r == 0) {
    index_bind_str(st, 1, last);
    sqlite3_bind_int(st, 2, INDEX_PAGE_ROWS);
    int rc;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
      struct index_manifest *m = &buf[*n];
      if ((r = index_row_digest(db, st, 0, &m->digest, err)) < 0 ||
          (r = index_row_str(db, st, 1, m->media_type, sizeof m->media_type, err)) < 0 ||
          (r = index_row_str(db, st, 2, m->registry, sizeof m->registry, err)) < 0 ||
          (r = index_row_str(db, st, 3, m->repository, sizeof m->repository, err)) < 0)
        break;
      (*n)++;
    }
    if (r == 0 && rc != SQLITE_DONE)
      r = index_sql_error(db, rc, err, "listing manifests");
    index_stmt_done(st);
  }
  index_unlock(db);
  return r;
}

int index_foreach_manifest(index_db *db, int (*cb)(const struct index_manifest *m, void *ud),
                           void *ud, ep_err *err) {
  struct index_manifest *buf = calloc(INDEX_PAGE_ROWS, sizeof *buf);
  if (buf == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  char last[DIGEST_STR_LEN + 1] = "";
  int r = 0;
  for (;;) {
    size_t n = 0;
    if ((r = manifest_page(db, last, buf, &n, err)) < 0)
      break;
    for (size_t i = 0; i < n && r == 0; i++)
      r = cb(&buf[i], ud);
    if (r != 0 || n < INDEX_PAGE_ROWS)
      break;
    digest_format(&buf[n - 1].digest, last);
  }
  free(buf);
  return r;
}

static int refs_read(index_db *db, sqlite3_stmt *st, digest_t **out, size_t *n, ep_err *err) {
  size_t cap = 0;
  int rc, r = 0;
  while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    int vr = ep_vec_reserve(out, &cap, *n + 1, INDEX_REFS_MAX);
    if (vr == -EP_ETOOBIG)
      return ep_error(err, EP_ETOOBIG, "index %s: over %d references", db->path, INDEX_REFS_MAX);
    if (vr < 0)
      return ep_error(err, EP_EINTERNAL, "out of memory");
    if ((r = index_row_digest(db, st, 0, &(*out)[*n], err)) == 0)
      (*n)++;
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = index_sql_error(db, rc, err, "reading manifest references");
  return r;
}

int index_manifest_refs(index_db *db, const digest_t *d, digest_t **out, size_t *n, ep_err *err) {
  *out = NULL;
  *n = 0;
  char mt[INDEX_MEDIA_TYPE_MAX];
  uint64_t size;
  int r = index_manifest_get(db, d, mt, &size, err);
  if (r <= 0)
    return r;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  if ((r = index_stmt_get(db, IST_REFS_GET, &st, err)) == 0) {
    index_bind_digest(st, 1, d);
    r = refs_read(db, st, out, n, err);
    index_stmt_done(st);
  }
  index_unlock(db);
  if (r < 0) {
    free(*out);
    *out = NULL;
    *n = 0;
    return r;
  }
  return 1;
}

int index_image_size(index_db *db, const digest_t *root, struct index_image_size *out,
                     ep_err *err) {
  int r = index_check_digest(root, err);
  if (r < 0)
    return r;
  memset(out, 0, sizeof *out);
  index_lock(db);
  sqlite3_stmt *st = NULL;
  if ((r = index_stmt_get(db, IST_IMAGE_SIZE, &st, err)) == 0) {
    index_bind_digest(st, 1, root);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      if ((r = index_row_size(db, st, 0, &out->referenced, err)) == 0 &&
          (r = index_row_size(db, st, 1, &out->complete, err)) == 0)
        r = index_row_size(db, st, 2, &out->bytes, err);
    } else {
      r = index_sql_error(db, rc, err, "sizing an image");
    }
    index_stmt_done(st);
  }
  index_unlock(db);
  return r;
}

static int check_tag_key(const char *registry, const char *repository, const char *tag,
                         ep_err *err) {
  int r;
  if ((r = index_check_str(registry, INDEX_NAME_MAX, false, "registry", err)) < 0 ||
      (r = index_check_str(repository, INDEX_NAME_MAX, false, "repository", err)) < 0 ||
      (r = index_check_str(tag, INDEX_NAME_MAX, false, "tag", err)) < 0)
    return r;
  return 0;
}

int index_tag_put(index_db *db, const struct index_tag *t, ep_err *err) {
  int r;
  if (t == NULL)
    return ep_error(err, EP_EINVAL, "index: missing tag");
  if ((r = index_check_writable(db, err)) < 0 ||
      (r = check_tag_key(t->registry, t->repository, t->tag, err)) < 0 ||
      (r = index_check_digest(&t->digest, err)) < 0 ||
      (r = index_check_str(t->media_type, sizeof t->media_type, true, "media type", err)) < 0 ||
      (r = index_check_size(t->size, "tag size", err)) < 0)
    return r;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  if ((r = index_stmt_get(db, IST_TAG_PUT, &st, err)) == 0) {
    index_bind_str(st, 1, t->registry);
    index_bind_str(st, 2, t->repository);
    index_bind_str(st, 3, t->tag);
    index_bind_digest(st, 4, &t->digest);
    index_bind_str(st, 5, t->media_type);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)t->size);
    sqlite3_bind_int64(st, 7, t->updated);
    sqlite3_bind_int64(st, 8, t->expires_at);
    r = index_step_done(db, st, "recording a tag", err);
  }
  index_unlock(db);
  return r;
}

int index_tag_get(index_db *db, const char *registry, const char *repository, const char *tag,
                  struct index_tag *out, ep_err *err) {
  int r = check_tag_key(registry, repository, tag, err);
  if (r < 0)
    return r;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  if ((r = index_stmt_get(db, IST_TAG_GET, &st, err)) == 0) {
    index_bind_str(st, 1, registry);
    index_bind_str(st, 2, repository);
    index_bind_str(st, 3, tag);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
      r = row_tag(db, st, out, err) == 0 ? 1 : -EP_EINVAL;
    else if (rc != SQLITE_DONE)
      r = index_sql_error(db, rc, err, "reading a tag");
    index_stmt_done(st);
  }
  index_unlock(db);
  return r;
}

static int tag_page(index_db *db, const struct index_tag *last, struct index_tag *buf, size_t *n,
                    ep_err *err) {
  *n = 0;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  int r = index_stmt_get(db, IST_TAG_PAGE, &st, err);
  if (r == 0) {
    index_bind_str(st, 1, last->registry);
    index_bind_str(st, 2, last->repository);
    index_bind_str(st, 3, last->tag);
    sqlite3_bind_int(st, 4, INDEX_PAGE_ROWS);
    int rc;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
      if ((r = row_tag(db, st, &buf[*n], err)) == 0)
        (*n)++;
    if (r == 0 && rc != SQLITE_DONE)
      r = index_sql_error(db, rc, err, "listing tags");
    index_stmt_done(st);
  }
  index_unlock(db);
  return r;
}

int index_foreach_tag(index_db *db, int (*cb)(const struct index_tag *t, void *ud), void *ud,
                      ep_err *err) {
  struct index_tag *buf = calloc(INDEX_PAGE_ROWS + 1, sizeof *buf);
  if (buf == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  struct index_tag *last = &buf[INDEX_PAGE_ROWS]; /* zeroed: before every key */
  int r = 0;
  for (;;) {
    size_t n = 0;
    if ((r = tag_page(db, last, buf, &n, err)) < 0)
      break;
    for (size_t i = 0; i < n && r == 0; i++)
      r = cb(&buf[i], ud);
    if (r != 0 || n < INDEX_PAGE_ROWS)
      break;
    *last = buf[n - 1];
  }
  free(buf);
  return r;
}

int index_stats(index_db *db, struct index_stats *out, ep_err *err) {
  memset(out, 0, sizeof *out);
  out->schema_version = db->version;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  int r = index_stmt_get(db, IST_STATS, &st, err);
  if (r == 0) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      uint64_t *cols[] = {&out->blobs, &out->blob_bytes, &out->partial_blobs, &out->manifests,
                          &out->tags};
      for (int i = 0; i < 5 && r == 0; i++)
        r = index_row_size(db, st, i, cols[i], err);
    } else {
      r = index_sql_error(db, rc, err, "counting");
    }
    index_stmt_done(st);
  }
  index_unlock(db);
  return r;
}
