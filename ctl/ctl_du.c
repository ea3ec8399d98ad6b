/* edgepullctl du: what the store uses, what the disk has left, what pins
 * keep, and each cached image's share, from the index alone (read-only,
 * with or without the daemon running). An image's bytes are those of the
 * blobs it reaches that the node holds. A layer shared by images counts in
 * each image's SIZE and SHARED columns, and once in the images' total, so
 * the total never exceeds the store. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "ctl/ctl.h"
#include "store/index.h"
#include "store/index_gc.h"

/* One cached image (a tag) and the complete blobs it reaches. */
struct du_image {
  char image[3 * INDEX_NAME_MAX];
  digest_t digest;
  struct index_sized_blob *blobs;
  size_t n;
  uint64_t bytes, shared; /* shared: of bytes, those another image reaches too */
};

struct du {
  index_db *db;
  struct du_image *v;
  size_t n, cap;
  uint64_t bytes, shared; /* the images together, each blob once */
  ep_err err;
};

static int image_row(const struct index_tag *t, void *ud) {
  struct du *u = ud;
  if (u->n == u->cap) {
    size_t cap = u->cap == 0 ? 16 : 2 * u->cap;
    struct du_image *v = realloc(u->v, cap * sizeof *v);
    if (v == NULL) {
      ep_error(&u->err, EP_EINTERNAL, "out of memory");
      return 1;
    }
    u->v = v;
    u->cap = cap;
  }
  struct du_image *im = &u->v[u->n];
  memset(im, 0, sizeof *im);
  snprintf(im->image, sizeof im->image, "%s/%s:%s", t->registry, t->repository, t->tag);
  im->digest = t->digest;
  if (index_image_blobs(u->db, &t->digest, &im->blobs, &im->n, &u->err) < 0)
    return 1;
  for (size_t i = 0; i < im->n; i++)
    im->bytes += im->blobs[i].size;
  u->n++;
  return 0;
}

struct du_ref {
  const struct index_sized_blob *b;
  size_t image;
};

static int cmp_ref(const void *x, const void *y) {
  const struct du_ref *a = x, *b = y;
  return memcmp(a->b->digest.hex, b->b->digest.hex, sizeof a->b->digest.hex);
}

/* Which blobs more than one image reaches: every image's blobs sorted together, a run of one
 * digest is one blob. The total counts each blob once, so it never exceeds the store. */
static int share(struct du *u) {
  size_t total = 0;
  for (size_t i = 0; i < u->n; i++)
    total += u->v[i].n;
  struct du_ref *r = total > 0 ? calloc(total, sizeof *r) : NULL;
  if (total > 0 && r == NULL)
    return ep_error(&u->err, EP_EINTERNAL, "out of memory");
  size_t k = 0;
  for (size_t i = 0; i < u->n; i++)
    for (size_t j = 0; j < u->v[i].n; j++)
      r[k++] = (struct du_ref){.b = &u->v[i].blobs[j], .image = i};
  if (total > 0)
    qsort(r, total, sizeof *r, cmp_ref);
  for (size_t i = 0, end; i < total; i = end) {
    for (end = i + 1; end < total && cmp_ref(&r[i], &r[end]) == 0; end++)
      ;
    u->bytes += r[i].b->size;
    if (end - i < 2)
      continue;
    u->shared += r[i].b->size;
    for (size_t j = i; j < end; j++)
      u->v[r[j].image].shared += r[j].b->size;
  }
  free(r);
  return 0;
}

static void du_free(struct du *u) {
  for (size_t i = 0; i < u->n; i++)
    free(u->v[i].blobs);
  free(u->v);
}

static json_t *images_json(const struct du *u) {
  json_t *list = json_array();
  for (size_t i = 0; list != NULL && i < u->n; i++) {
    char dg[DIGEST_STR_LEN + 1];
    digest_format(&u->v[i].digest, dg);
    json_array_append_new(list,
                          json_pack("{s:o, s:s, s:I, s:I}", "image", ctl_json_str(u->v[i].image),
                                    "digest", dg, "bytes", (json_int_t)u->v[i].bytes,
                                    "shared_bytes", (json_int_t)u->v[i].shared));
  }
  return list;
}

static int images_print(const struct ctl_opts *o, const struct du *u) {
  static const struct ctl_col cols[] = {
      {"IMAGE", false}, {"DIGEST", false}, {"SIZE", true}, {"SHARED", true}};
  char a[32], b[32];
  ctl_fmt_size(u->bytes, a, sizeof a);
  ctl_fmt_size(u->shared, b, sizeof b);
  printf("images  %s in %zu images, %s of it shared by two or more (counted once)\n", a, u->n, b);
  if (u->n == 0)
    return 0;
  ctl_table *t = ctl_table_new(cols, 4);
  for (size_t i = 0; t != NULL && i < u->n; i++) {
    char shown[DIGEST_STR_LEN + 1];
    ctl_fmt_digest(&u->v[i].digest, o->no_trunc, shown, sizeof shown);
    ctl_fmt_size(u->v[i].bytes, a, sizeof a);
    ctl_fmt_size(u->v[i].shared, b, sizeof b);
    const char *cells[] = {u->v[i].image, shown, a, b};
    if (ctl_table_add(t, cells) < 0) {
      ctl_table_free(t);
      t = NULL;
    }
  }
  if (t == NULL)
    return -1;
  printf("\n");
  ctl_table_print(t, stdout);
  ctl_table_free(t);
  return 0;
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
  struct du u = {.db = db};
  int r = index_foreach_tag(db, image_row, &u, &e);
  if (r == 0 && u.err.msg[0] == '\0')
    share(&u);
  if (r < 0 || u.err.msg[0] != '\0') {
    ctl_errorf("du: %s", r < 0 ? e.msg : u.err.msg);
    du_free(&u);
    index_close(db);
    return CTL_EXIT_FAIL;
  }
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
  index_close(db);
  if (o->json) {
    json_t *images = images_json(&u);
    du_free(&u);
    return ctl_json_print(json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "store_bytes",
        (json_int_t)s.blob_bytes, "blobs", (json_int_t)s.blobs, "available_bytes",
        (json_int_t)avail, "disk_bytes", (json_int_t)total, "pinned_bytes", (json_int_t)pbytes,
        "pinned_blobs", (json_int_t)pblobs, "images_bytes", (json_int_t)u.bytes, "shared_bytes",
        (json_int_t)u.shared, "pins", pins, "images", images));
  }
  json_decref(pins);
  r = images_print(o, &u);
  du_free(&u);
  return r == 0 && fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}
