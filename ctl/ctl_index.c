/* edgepullctl subcommands on the local layer index: layers, images, stat,
 * schema.
 *
 * The index is opened read-only (index_open_readonly): edgepullctl never
 * migrates or writes it, so it is safe to run while edgepulld writes (WAL
 * readers see a consistent snapshot per query) and it refuses an index
 * written by a newer edgepull instead of misreading it. Each subcommand walks
 * the index once and emits either an aligned table or one JSON document; the
 * JSON keys are a stable interface documented in docs/index.md. */
#include "ctl/ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store/index.h"

struct walk {
  const struct ctl_opts *o;
  index_db *db;
  ctl_table *table;
  json_t *list;
  int64_t now;
  ep_err err;
};

static int index_path(const struct ctl_opts *o, char *buf, size_t cap) {
  if ((size_t)snprintf(buf, cap, "%s/index.db", o->state_dir) >= cap) {
    ctl_errorf("--state-dir %.64s...: path too long", o->state_dir);
    return -1;
  }
  return 0;
}

index_db *ctl_open_index(const struct ctl_opts *o, char *path, size_t cap) {
  if (index_path(o, path, cap) < 0)
    return NULL;
  index_db *db = NULL;
  ep_err e = {0};
  if (index_open_readonly(path, &db, &e) < 0) {
    if (e.code == EP_ENOTFOUND)
      ctl_errorf("%s (is --state-dir %s the daemon's state directory?)", e.msg, o->state_dir);
    else
      ctl_errorf("%s", e.msg);
    return NULL;
  }
  return db;
}

static json_t *blob_json(const struct index_blob *b) {
  char d[DIGEST_STR_LEN + 1];
  digest_format(&b->digest, d);
  return json_pack("{s:s, s:I, s:o, s:s, s:I, s:I}", "digest", d, "size", (json_int_t)b->size,
                   "media_type", ctl_json_str(b->media_type), "state",
                   b->state == INDEX_BLOB_COMPLETE ? "complete" : "partial", "created",
                   (json_int_t)b->created, "last_access", (json_int_t)b->last_access);
}

static int layer_row(const struct index_blob *b, void *ud) {
  struct walk *w = ud;
  if (w->list != NULL)
    return json_array_append_new(w->list, blob_json(b)) == 0 ? 0 : -EP_EINTERNAL;
  char d[DIGEST_STR_LEN + 1], size[32], at[32];
  ctl_fmt_digest(&b->digest, w->o->no_trunc, d, sizeof d);
  ctl_fmt_size(b->size, size, sizeof size);
  ctl_fmt_time(b->last_access, at, sizeof at);
  const char *mt = w->o->no_trunc ? b->media_type : ctl_short_media_type(b->media_type);
  const char *cells[] = {d, size, mt[0] != '\0' ? mt : "-",
                         b->state == INDEX_BLOB_COMPLETE ? "complete" : "partial", at};
  return ctl_table_add(w->table, cells) == 0 ? 0 : -EP_EINTERNAL;
}

/* Runs a walk over the index into a table or a JSON list, then prints it. */
static int run_walk(const struct ctl_opts *o, const char *key, const struct ctl_col *cols,
                    size_t ncols, int (*walk_fn)(struct walk *w)) {
  char path[PATH_MAX];
  struct walk w = {.o = o, .now = (int64_t)time(NULL)};
  if ((w.db = ctl_open_index(o, path, sizeof path)) == NULL)
    return CTL_EXIT_FAIL;
  if (o->json)
    w.list = json_array();
  else
    w.table = ctl_table_new(cols, ncols);
  int r = w.list == NULL && w.table == NULL ? -EP_EINTERNAL : walk_fn(&w);
  index_close(w.db);
  int rc = CTL_EXIT_OK;
  if (r < 0) {
    ctl_errorf("%s", w.err.msg[0] != '\0' ? w.err.msg : ep_errcode_name(r));
    rc = CTL_EXIT_FAIL;
  } else if (o->json) {
    rc = ctl_json_print(json_pack("{s:o}", key, w.list));
    w.list = NULL;
  } else {
    ctl_table_print(w.table, stdout);
    if (fflush(stdout) != 0)
      rc = CTL_EXIT_FAIL;
  }
  json_decref(w.list);
  ctl_table_free(w.table);
  return rc;
}

static int walk_layers(struct walk *w) {
  return index_foreach_blob(w->db, layer_row, w, &w->err);
}

int ctl_cmd_layers(const struct ctl_opts *o) {
  static const struct ctl_col cols[] = {
      {"DIGEST", false}, {"SIZE", true},         {"MEDIA TYPE", false},
      {"STATE", false},  {"LAST ACCESS", false},
  };
  return run_walk(o, "layers", cols, sizeof cols / sizeof cols[0], walk_layers);
}

static json_t *image_json(const struct index_tag *t, const char *ref,
                          const struct index_image_size *is, bool stale) {
  char d[DIGEST_STR_LEN + 1];
  digest_format(&t->digest, d);
  return json_pack("{s:o, s:o, s:o, s:o, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "reference",
                   ctl_json_str(ref), "registry", ctl_json_str(t->registry), "repository",
                   ctl_json_str(t->repository), "tag", ctl_json_str(t->tag), "digest", d,
                   "media_type", ctl_json_str(t->media_type), "manifest_size", (json_int_t)t->size,
                   "total_size", (json_int_t)is->bytes, "blobs_complete", (json_int_t)is->complete,
                   "blobs_referenced", (json_int_t)is->referenced, "updated",
                   (json_int_t)t->updated, "expires_at", (json_int_t)t->expires_at, "stale", stale);
}

static int image_row(const struct index_tag *t, void *ud) {
  struct walk *w = ud;
  struct index_image_size is;
  int r = index_image_size(w->db, &t->digest, &is, &w->err);
  if (r < 0)
    return r;
  char ref[3 * INDEX_NAME_MAX + 4];
  snprintf(ref, sizeof ref, "%s/%s:%s", t->registry, t->repository, t->tag);
  bool stale = t->expires_at <= w->now;
  if (w->list != NULL)
    return json_array_append_new(w->list, image_json(t, ref, &is, stale)) == 0 ? 0 : -EP_EINTERNAL;
  char d[DIGEST_STR_LEN + 1], size[32], blobs[48], at[32], dur[16], exp[32];
  ctl_fmt_digest(&t->digest, w->o->no_trunc, d, sizeof d);
  ctl_fmt_size(is.bytes, size, sizeof size);
  snprintf(blobs, sizeof blobs, "%" PRIu64 "/%" PRIu64, is.complete, is.referenced);
  ctl_fmt_time(t->updated, at, sizeof at);
  ctl_fmt_duration(stale ? w->now - t->expires_at : t->expires_at - w->now, dur, sizeof dur);
  snprintf(exp, sizeof exp, stale ? "stale %s" : "in %s", dur);
  const char *mt = w->o->no_trunc ? t->media_type : ctl_short_media_type(t->media_type);
  const char *cells[] = {ref, d, mt[0] != '\0' ? mt : "-", size, blobs, at, exp};
  return ctl_table_add(w->table, cells) == 0 ? 0 : -EP_EINTERNAL;
}

static int walk_images(struct walk *w) {
  return index_foreach_tag(w->db, image_row, w, &w->err);
}

int ctl_cmd_images(const struct ctl_opts *o) {
  static const struct ctl_col cols[] = {
      {"IMAGE", false}, {"DIGEST", false},  {"MEDIA TYPE", false}, {"SIZE", true},
      {"BLOBS", true},  {"UPDATED", false}, {"EXPIRES", false},
  };
  return run_walk(o, "images", cols, sizeof cols / sizeof cols[0], walk_images);
}

/* index.db plus its WAL: what the index costs on disk right now. */
static uint64_t file_bytes(const char *path) {
  struct stat sb;
  uint64_t n = 0;
  char wal[PATH_MAX + 8];
  if (stat(path, &sb) == 0)
    n += (uint64_t)sb.st_size;
  snprintf(wal, sizeof wal, "%s-wal", path);
  if (stat(wal, &sb) == 0)
    n += (uint64_t)sb.st_size;
  return n;
}

static int print_stat(const char *path, const struct index_stats *s, uint64_t fbytes) {
  char bytes[32], fb[32];
  ctl_fmt_size(s->blob_bytes, bytes, sizeof bytes);
  ctl_fmt_size(fbytes, fb, sizeof fb);
  printf("index           %s (%s on disk)\n", path, fb);
  printf("schema version  %d (this edgepullctl knows up to %d)\n", s->schema_version,
         index_latest_schema_version());
  printf("blobs           %" PRIu64 " complete (%s, %" PRIu64 " bytes), %" PRIu64 " partial\n",
         s->blobs, bytes, s->blob_bytes, s->partial_blobs);
  printf("manifests       %" PRIu64 "\n", s->manifests);
  printf("tags            %" PRIu64 "\n", s->tags);
  return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}

int ctl_cmd_stat(const struct ctl_opts *o) {
  char path[PATH_MAX];
  index_db *db = ctl_open_index(o, path, sizeof path);
  if (db == NULL)
    return CTL_EXIT_FAIL;
  struct index_stats s;
  ep_err e = {0};
  int r = index_stats(db, &s, &e);
  index_close(db);
  if (r < 0) {
    ctl_errorf("%s", e.msg);
    return CTL_EXIT_FAIL;
  }
  uint64_t fbytes = file_bytes(path);
  if (!o->json)
    return print_stat(path, &s, fbytes);
  return ctl_json_print(json_pack(
      "{s:o, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "index", ctl_json_str(path),
      "schema_version", s.schema_version, "latest_schema_version", index_latest_schema_version(),
      "blobs", (json_int_t)s.blobs, "blob_bytes", (json_int_t)s.blob_bytes, "partial_blobs",
      (json_int_t)s.partial_blobs, "manifests", (json_int_t)s.manifests, "tags", (json_int_t)s.tags,
      "file_bytes", (json_int_t)fbytes));
}

int ctl_cmd_schema(const struct ctl_opts *o) {
  int latest = index_latest_schema_version();
  if (o->json) {
    json_t *list = json_array();
    for (int v = 1; v <= latest; v++)
      json_array_append_new(list,
                            json_pack("{s:i, s:s}", "version", v, "sql", index_migration_sql(v)));
    return ctl_json_print(
        json_pack("{s:i, s:o}", "latest_schema_version", latest, "migrations", list));
  }
  printf("-- edgepull index schema v%d, from edgepullctl %s.\n"
         "-- Each migration runs in its own transaction and sets user_version;\n"
         "-- edgepulld also sets PRAGMA journal_mode = WAL when it opens the file.\n",
         latest, EDGEPULL_VERSION);
  for (int v = 1; v <= latest; v++)
    printf("\n-- migration to v%d\nBEGIN;\n%sPRAGMA user_version = %d;\nCOMMIT;\n", v,
           index_migration_sql(v), v);
  return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}
