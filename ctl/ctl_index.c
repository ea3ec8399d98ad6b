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

#include "common/buf.h"
#include "store/index.h"

struct walk {
  const struct ctl_opts *o;
  index_db *db;
  ctl_table *table;
  json_t *list;
  int64_t now;
  struct ctl_unpacked unpacked; /* layers, images: what the snapshotter unpacked */
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

/* JSON: true/false, or null when the snapshotter's state could not be read. */
static json_t *unpacked_json(const struct walk *w, const digest_t *d) {
  return w->unpacked.known ? json_boolean(ctl_unpacked_has(&w->unpacked, d)) : json_null();
}

static json_t *blob_json(const struct walk *w, const struct index_blob *b) {
  char d[DIGEST_STR_LEN + 1];
  digest_format(&b->digest, d);
  return json_pack("{s:s, s:I, s:o, s:s, s:I, s:I, s:o}", "digest", d, "size", (json_int_t)b->size,
                   "media_type", ctl_json_str(b->media_type), "state",
                   b->state == INDEX_BLOB_COMPLETE ? "complete" : "partial", "created",
                   (json_int_t)b->created, "last_access", (json_int_t)b->last_access, "unpacked",
                   unpacked_json(w, &b->digest));
}

static int layer_row(const struct index_blob *b, void *ud) {
  struct walk *w = ud;
  if (w->list != NULL)
    return json_array_append_new(w->list, blob_json(w, b)) == 0 ? 0 : -EP_EINTERNAL;
  char d[DIGEST_STR_LEN + 1], size[32], at[32];
  ctl_fmt_digest(&b->digest, w->o->no_trunc, d, sizeof d);
  ctl_fmt_size(b->size, size, sizeof size);
  ctl_fmt_time(b->last_access, at, sizeof at);
  const char *mt = w->o->no_trunc ? b->media_type : ctl_short_media_type(b->media_type);
  const char *unpacked = !w->unpacked.known                           ? "-"
                         : ctl_unpacked_has(&w->unpacked, &b->digest) ? "yes"
                                                                      : "no";
  const char *cells[] = {d,
                         size,
                         mt[0] != '\0' ? mt : "-",
                         b->state == INDEX_BLOB_COMPLETE ? "complete" : "partial",
                         at,
                         unpacked};
  return ctl_table_add(w->table, cells) == 0 ? 0 : -EP_EINTERNAL;
}

/* Runs a walk over the index into a table or a JSON list, then prints it. */
static int run_walk(const struct ctl_opts *o, const char *key, const struct ctl_col *cols,
                    size_t ncols, int (*walk_fn)(struct walk *w)) {
  char path[PATH_MAX];
  struct walk w = {.o = o, .now = (int64_t)time(NULL)};
  if ((w.db = ctl_open_index(o, path, sizeof path)) == NULL)
    return CTL_EXIT_FAIL;
  ctl_unpacked_load(o, &w.unpacked);
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
  ctl_unpacked_free(&w.unpacked);
  return rc;
}

static int walk_layers(struct walk *w) {
  return index_foreach_blob(w->db, layer_row, w, &w->err);
}

int ctl_cmd_layers(const struct ctl_opts *o) {
  static const struct ctl_col cols[] = {
      {"DIGEST", false}, {"SIZE", true},         {"MEDIA TYPE", false},
      {"STATE", false},  {"LAST ACCESS", false}, {"UNPACKED", false},
  };
  return run_walk(o, "layers", cols, sizeof cols / sizeof cols[0], walk_layers);
}

/* Unpacked layers reachable from manifest d (child manifests followed one level, as an index
 * holds manifests), appended to hit. A digest that is no manifest has no refs: one query each. */
static int collect_unpacked(struct walk *w, const digest_t *d, int depth,
                            struct ctl_unpacked *hit) {
  digest_t *refs = NULL;
  size_t n = 0;
  int r = index_manifest_refs(w->db, d, &refs, &n, &w->err);
  for (size_t i = 0; r > 0 && i < n; i++) {
    if (ctl_unpacked_has(&w->unpacked, &refs[i])) {
      digest_t *v = realloc(hit->v, (hit->n + 1) * sizeof *v);
      if (v == NULL)
        r = ep_error(&w->err, EP_EINTERNAL, "out of memory");
      else
        (hit->v = v)[hit->n++] = refs[i];
    } else if (depth < 1) {
      int c = collect_unpacked(w, &refs[i], depth + 1, hit);
      r = c < 0 ? c : r;
    }
  }
  free(refs);
  return r < 0 ? r : 0;
}

/* The number of distinct unpacked layers of the image rooted at d. */
static int count_unpacked(struct walk *w, const digest_t *d, uint64_t *out) {
  struct ctl_unpacked hit = {0};
  *out = 0;
  if (w->unpacked.n == 0)
    return 0;
  int r = collect_unpacked(w, d, 0, &hit);
  if (r == 0 && hit.n > 0) {
    qsort(hit.v, hit.n, sizeof *hit.v, ctl_digest_cmp);
    *out = 1;
    for (size_t i = 1; i < hit.n; i++)
      *out += strcmp(hit.v[i].hex, hit.v[i - 1].hex) != 0;
  }
  ctl_unpacked_free(&hit);
  return r;
}

static json_t *image_json(const struct walk *w, const struct index_tag *t, const char *ref,
                          const struct index_image_size *is, bool stale, uint64_t unpacked) {
  char d[DIGEST_STR_LEN + 1];
  digest_format(&t->digest, d);
  return json_pack("{s:o, s:o, s:o, s:o, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:o}",
                   "reference", ctl_json_str(ref), "registry", ctl_json_str(t->registry),
                   "repository", ctl_json_str(t->repository), "tag", ctl_json_str(t->tag), "digest",
                   d, "media_type", ctl_json_str(t->media_type), "manifest_size",
                   (json_int_t)t->size, "total_size", (json_int_t)is->bytes, "blobs_complete",
                   (json_int_t)is->complete, "blobs_referenced", (json_int_t)is->referenced,
                   "updated", (json_int_t)t->updated, "expires_at", (json_int_t)t->expires_at,
                   "stale", stale, "layers_unpacked",
                   w->unpacked.known ? json_integer((json_int_t)unpacked) : json_null());
}

static int image_row(const struct index_tag *t, void *ud) {
  struct walk *w = ud;
  struct index_image_size is;
  uint64_t unpacked = 0;
  int r = index_image_size(w->db, &t->digest, &is, &w->err);
  if (r == 0)
    r = count_unpacked(w, &t->digest, &unpacked);
  if (r < 0)
    return r;
  char ref[3 * INDEX_NAME_MAX + 4];
  snprintf(ref, sizeof ref, "%s/%s:%s", t->registry, t->repository, t->tag);
  bool stale = t->expires_at <= w->now;
  if (w->list != NULL)
    return json_array_append_new(w->list, image_json(w, t, ref, &is, stale, unpacked)) == 0
               ? 0
               : -EP_EINTERNAL;
  char d[DIGEST_STR_LEN + 1], size[32], blobs[48], at[32], dur[16], exp[32], unp[24] = "-";
  ctl_fmt_digest(&t->digest, w->o->no_trunc, d, sizeof d);
  ctl_fmt_size(is.bytes, size, sizeof size);
  snprintf(blobs, sizeof blobs, "%" PRIu64 "/%" PRIu64, is.complete, is.referenced);
  ctl_fmt_time(t->updated, at, sizeof at);
  ctl_fmt_duration(stale ? w->now - t->expires_at : t->expires_at - w->now, dur, sizeof dur);
  snprintf(exp, sizeof exp, stale ? "stale %s" : "in %s", dur);
  const char *mt = w->o->no_trunc ? t->media_type : ctl_short_media_type(t->media_type);
  if (w->unpacked.known)
    snprintf(unp, sizeof unp, "%" PRIu64, unpacked);
  const char *cells[] = {ref, d, mt[0] != '\0' ? mt : "-", size, blobs, at, exp, unp};
  return ctl_table_add(w->table, cells) == 0 ? 0 : -EP_EINTERNAL;
}

static int walk_images(struct walk *w) {
  return index_foreach_tag(w->db, image_row, w, &w->err);
}

int ctl_cmd_images(const struct ctl_opts *o) {
  static const struct ctl_col cols[] = {
      {"IMAGE", false}, {"DIGEST", false},  {"MEDIA TYPE", false}, {"SIZE", true},
      {"BLOBS", true},  {"UPDATED", false}, {"EXPIRES", false},    {"UNPACKED", true},
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
  /* The daemon's figures when it answers; the index alone (and a word on
   * stderr) when it does not run. */
  char url[160];
  snprintf(url, sizeof url, "http://%s/metrics",
           o->endpoint != NULL ? o->endpoint : CTL_DEFAULT_ENDPOINT);
  ep_cleanup_buf struct ep_buf body = {0};
  ep_buf_init(&body, 1 << 20);
  bool live = ctl_metrics_fetch(url, &body, &e) == 0;
  if (!live)
    ctl_errorf("stat: no figures from edgepulld (%s); the index only", e.msg);
  if (!o->json) {
    r = print_stat(path, &s, fbytes);
    if (r == CTL_EXIT_OK && live && ctl_metrics_show(body.data, url, NULL) < 0)
      r = CTL_EXIT_FAIL;
    return fflush(stdout) == 0 ? r : CTL_EXIT_FAIL;
  }
  json_t *j = json_pack(
      "{s:o, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "index", ctl_json_str(path),
      "schema_version", s.schema_version, "latest_schema_version", index_latest_schema_version(),
      "blobs", (json_int_t)s.blobs, "blob_bytes", (json_int_t)s.blob_bytes, "partial_blobs",
      (json_int_t)s.partial_blobs, "manifests", (json_int_t)s.manifests, "tags", (json_int_t)s.tags,
      "file_bytes", (json_int_t)fbytes);
  if (j != NULL && live && ctl_metrics_show(body.data, url, j) < 0) {
    json_decref(j);
    j = NULL;
  }
  return ctl_json_print(j);
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
