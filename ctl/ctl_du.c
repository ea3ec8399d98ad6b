/* edgepullctl du: what the store uses, what the disk has left, what pins
 * keep, and each cached image's share, from the index alone (read-only,
 * with or without the daemon running). An image's bytes are those of the
 * blobs it reaches that the node holds; layers shared by images count for
 * each of them, so the per-image column may sum to more than the store. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "ctl/ctl.h"
#include "store/index.h"
#include "store/index_gc.h"

struct du {
  const struct ctl_opts *o;
  index_db *db;
  ctl_table *table;
  json_t *list;
  ep_err err;
};

static int image_row(const struct index_tag *t, void *ud) {
  struct du *u = ud;
  struct index_image_size sz;
  if (index_image_size(u->db, &t->digest, &sz, &u->err) < 0)
    return 1;
  char image[3 * INDEX_NAME_MAX], dg[DIGEST_STR_LEN + 1], size[32];
  snprintf(image, sizeof image, "%s/%s:%s", t->registry, t->repository, t->tag);
  digest_format(&t->digest, dg);
  if (u->list != NULL)
    return json_array_append_new(u->list, json_pack("{s:o, s:s, s:I}", "image", ctl_json_str(image),
                                                    "digest", dg, "bytes", (json_int_t)sz.bytes)) <
           0;
  char shown[DIGEST_STR_LEN + 1];
  ctl_fmt_digest(&t->digest, u->o->no_trunc, shown, sizeof shown);
  ctl_fmt_size(sz.bytes, size, sizeof size);
  const char *cells[] = {image, shown, size};
  return ctl_table_add(u->table, cells) < 0;
}

/* Bytes and blobs a pin keeps (0 on an index older than v3). */
static void pinned_usage(index_db *db, uint64_t *bytes, uint64_t *blobs) {
  struct index_gc_blob *v = NULL;
  size_t n = 0;
  *bytes = *blobs = 0;
  if (index_gc_blobs(db, "", &v, &n, NULL) < 0)
    return;
  for (size_t i = 0; i < n; i++)
    if (v[i].pinned) {
      *bytes += v[i].size;
      (*blobs)++;
    }
  free(v);
}

static json_t *pins_json(index_db *db, bool print) {
  struct index_pin *p = NULL;
  size_t n = 0;
  json_t *list = json_array();
  if (index_pins(db, &p, &n, NULL) < 0)
    n = 0;
  for (size_t i = 0; i < n; i++) {
    char dg[DIGEST_STR_LEN + 1], image[3 * INDEX_NAME_MAX + 2];
    digest_format(&p[i].digest, dg);
    bool by_digest = strncmp(p[i].reference, "sha256:", 7) == 0;
    snprintf(image, sizeof image, "%s/%s%s%s", p[i].registry, p[i].repository,
             by_digest ? "@" : ":", p[i].reference);
    if (print)
      printf("pinned  %s (%s)\n", image, dg);
    json_array_append_new(list,
                          json_pack("{s:o, s:s}", "image", ctl_json_str(image), "digest", dg));
  }
  free(p);
  return list;
}

int ctl_cmd_du(const struct ctl_opts *o) {
  char path[PATH_MAX];
  index_db *db = ctl_open_index(o, path, sizeof path);
  if (db == NULL)
    return CTL_EXIT_FAIL;
  struct index_stats s;
  struct statvfs vfs;
  ep_err e = {0};
  if (index_stats(db, &s, &e) < 0 || statvfs(o->state_dir, &vfs) < 0) {
    ctl_errorf("du: %s", e.msg[0] != '\0' ? e.msg : "statvfs on the state directory failed");
    index_close(db);
    return CTL_EXIT_FAIL;
  }
  uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize,
           total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
  uint64_t pbytes, pblobs;
  pinned_usage(db, &pbytes, &pblobs);
  static const struct ctl_col cols[] = {{"IMAGE", false}, {"DIGEST", false}, {"SIZE", true}};
  struct du u = {.o = o, .db = db};
  if (o->json)
    u.list = json_array();
  else
    u.table = ctl_table_new(cols, 3);
  if (!o->json) {
    char a[32], b[32], c[32];
    ctl_fmt_size(s.blob_bytes, a, sizeof a);
    printf("store   %s in %llu blobs (%s)\n", a, (unsigned long long)s.blobs, path);
    ctl_fmt_size(avail, b, sizeof b);
    ctl_fmt_size(total, c, sizeof c);
    printf("disk    %s available of %s\n", b, c);
    ctl_fmt_size(pbytes, a, sizeof a);
    printf("pins    keep %s in %llu blobs\n", a, (unsigned long long)pblobs);
  }
  json_t *pins = pins_json(db, !o->json);
  int r = index_foreach_tag(db, image_row, &u, &e);
  index_close(db);
  if (r < 0 || u.err.msg[0] != '\0') {
    ctl_errorf("du: %s", r < 0 ? e.msg : u.err.msg);
    json_decref(pins);
    json_decref(u.list);
    ctl_table_free(u.table);
    return CTL_EXIT_FAIL;
  }
  if (o->json)
    return ctl_json_print(json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "store_bytes", (json_int_t)s.blob_bytes,
        "blobs", (json_int_t)s.blobs, "available_bytes", (json_int_t)avail, "disk_bytes",
        (json_int_t)total, "pinned_bytes", (json_int_t)pbytes, "pinned_blobs", (json_int_t)pblobs,
        "pins", pins, "images", u.list));
  json_decref(pins);
  if (ctl_table_rows(u.table) > 0) {
    printf("\n");
    ctl_table_print(u.table, stdout);
  }
  ctl_table_free(u.table);
  return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}
