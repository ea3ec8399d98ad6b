/* Helpers shared by the unpacker's unit tests (header-only, like ep_test.h):
 * a fixture <tmp>/{fs,sentinel/canary}, layers generated with libarchive's
 * writer (the tar, then the same bytes through gzip or zstd), and the check
 * that nothing outside fs/ was created or changed. Include after cmocka.h. */
#ifndef EP_TESTS_UNPACK_LAYERS_H
#define EP_TESTS_UNPACK_LAYERS_H

#include "tests/unit/ep_test.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "store/time_abi.h"
#include "store/unpack.h"

enum { F_NONE, F_GZIP, F_ZSTD };

struct fx {
  char dir[64];
  char fs[96];
  char sentinel[96];
  char layer[96];
  char tar[96]; /* the uncompressed twin of layer */
  int fsfd;
  struct archive *w;
  int filter;
  off_t pad; /* zero bytes appended to the tar before compressing */
};

struct ent {
  const char *name;
  unsigned type; /* AE_IF*, 0 = AE_IFREG */
  unsigned perm;
  const char *data; /* file content, or a symlink's target */
  size_t len;       /* 0: strlen(data) */
  const char *hardlink;
  int64_t uid, gid;
  time_t mtime;
  unsigned major, minor;
  const char *xkey, *xval;
};

static inline int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -1;
  if (ep_test_tmpdir(f->dir, sizeof f->dir, "ep-test-unpack-") < 0)
    return -1;
  snprintf(f->fs, sizeof f->fs, "%s/fs", f->dir);
  snprintf(f->sentinel, sizeof f->sentinel, "%s/sentinel", f->dir);
  snprintf(f->layer, sizeof f->layer, "%s/layer", f->dir);
  snprintf(f->tar, sizeof f->tar, "%s/layer.tar", f->dir);
  char canary[128];
  snprintf(canary, sizeof canary, "%s/canary", f->sentinel);
  if (mkdir(f->fs, 0755) < 0 || mkdir(f->sentinel, 0755) < 0)
    return -1;
  FILE *c = fopen(canary, "w");
  if (c == NULL || fputs("canary", c) < 0 || fclose(c) != 0 || chmod(canary, 0644) < 0)
    return -1;
  f->fsfd = open(f->fs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  *state = f;
  return f->fsfd < 0 ? -1 : 0;
}

/* Nothing outside fs/ was created or changed. */
static inline void assert_contained(struct fx *f) {
  DIR *d = opendir(f->dir);
  assert_non_null(d);
  for (struct dirent *de = readdir(d); de != NULL; de = readdir(d)) {
    const char *n = de->d_name;
    bool ok = !strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "fs") || !strcmp(n, "sentinel") ||
              !strcmp(n, "layer") || !strcmp(n, "layer.tar");
    if (!ok)
      fail_msg("unexpected %s/%s", f->dir, n);
  }
  closedir(d);
  d = opendir(f->sentinel);
  assert_non_null(d);
  int n = 0;
  for (struct dirent *de = readdir(d); de != NULL; de = readdir(d)) {
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
      assert_string_equal(de->d_name, "canary");
      n++;
    }
  }
  closedir(d);
  assert_int_equal(n, 1);
  char p[160], buf[16] = {0};
  snprintf(p, sizeof p, "%s/canary", f->sentinel);
  struct stat st;
  assert_int_equal(lstat(p, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0644);
  assert_int_equal(st.st_uid, 0);
  assert_int_equal(st.st_nlink, 1);
  FILE *c = fopen(p, "r");
  assert_non_null(c);
  assert_int_equal(fread(buf, 1, sizeof buf - 1, c), 6);
  fclose(c);
  assert_string_equal(buf, "canary");
  assert_true(getxattr(f->sentinel, "trusted.overlay.opaque", buf, sizeof buf) < 0);
}

static inline int teardown(void **state) {
  struct fx *f = *state;
  assert_contained(f);
  close(f->fsfd);
  ep_test_rm_rf(f->dir);
  free(f);
  return 0;
}

/* ---- generating layers ---- */

static inline void layer_begin(struct fx *f, int filter) {
  f->filter = filter;
  f->w = archive_write_new();
  assert_non_null(f->w);
  assert_int_equal(archive_write_set_format_pax_restricted(f->w), ARCHIVE_OK);
  assert_int_equal(archive_write_open_filename(f->w, f->tar), ARCHIVE_OK);
}

static inline void layer_add(struct fx *f, const struct ent *e) {
  struct archive_entry *ae = archive_entry_new();
  unsigned type = e->type != 0 ? e->type : AE_IFREG;
  size_t len = e->data != NULL && type == AE_IFREG ? (e->len != 0 ? e->len : strlen(e->data)) : 0;
  archive_entry_set_pathname(ae, e->name);
  archive_entry_set_filetype(ae, type);
  archive_entry_set_perm(ae, e->perm != 0 ? e->perm : (type == AE_IFDIR ? 0755 : 0644));
  archive_entry_set_uid(ae, e->uid);
  archive_entry_set_gid(ae, e->gid);
  assert_int_equal(ep_archive_entry_set_mtime(ae, e->mtime != 0 ? e->mtime : 1600000000, 0), 0);
  archive_entry_set_size(ae, (la_int64_t)len);
  if (type == AE_IFLNK)
    archive_entry_set_symlink(ae, e->data);
  if (e->hardlink != NULL) {
    archive_entry_set_hardlink(ae, e->hardlink);
    archive_entry_set_size(ae, 0);
    len = 0;
  }
  if (type == AE_IFCHR || type == AE_IFBLK)
    archive_entry_set_rdev(ae, makedev(e->major, e->minor));
  if (e->xkey != NULL)
    archive_entry_xattr_add_entry(ae, e->xkey, e->xval, strlen(e->xval));
  assert_int_equal(archive_write_header(f->w, ae), ARCHIVE_OK);
  if (len > 0)
    assert_int_equal(archive_write_data(f->w, e->data, len), (la_ssize_t)len);
  archive_entry_free(ae);
}

/* Closes the tar and writes `layer`: the tar through the filter. */
static inline void layer_end(struct fx *f) {
  assert_int_equal(archive_write_free(f->w), ARCHIVE_OK);
  if (f->pad > 0) {
    struct stat st;
    assert_int_equal(stat(f->tar, &st), 0);
    assert_int_equal(truncate(f->tar, st.st_size + f->pad), 0);
  }
  struct archive *w = archive_write_new();
  assert_int_equal(archive_write_set_format_raw(w), ARCHIVE_OK);
  if (f->filter == F_GZIP)
    assert_int_equal(archive_write_add_filter_gzip(w), ARCHIVE_OK);
  if (f->filter == F_ZSTD)
    assert_int_equal(archive_write_add_filter_zstd(w), ARCHIVE_OK);
  assert_int_equal(archive_write_set_bytes_in_last_block(w, 1), ARCHIVE_OK);
  assert_int_equal(archive_write_open_filename(w, f->layer), ARCHIVE_OK);
  struct archive_entry *ae = archive_entry_new();
  archive_entry_set_pathname(ae, "data");
  archive_entry_set_filetype(ae, AE_IFREG);
  assert_int_equal(archive_write_header(w, ae), ARCHIVE_OK);
  archive_entry_free(ae);
  int in = open(f->tar, O_RDONLY | O_CLOEXEC);
  assert_true(in >= 0);
  static char buf[65536];
  ssize_t n;
  while ((n = read(in, buf, sizeof buf)) > 0)
    assert_int_equal(archive_write_data(w, buf, (size_t)n), n);
  close(in);
  assert_int_equal(archive_write_free(w), ARCHIVE_OK);
}

static inline void file_digest(const char *path, digest_t *out) {
  digest_ctx *c = digest_ctx_new();
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  static char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    digest_ctx_update(c, buf, (size_t)n);
  close(fd);
  digest_ctx_final(c, out);
  digest_ctx_free(c);
}

static inline int run_opts(struct fx *f, const unpack_opts *o, const digest_t *expect,
                           unpack_result *res, ep_err *err) {
  int fd = open(f->layer, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  int r = unpack_fd(f->fsfd, fd, o, expect, res, err);
  close(fd);
  return r;
}

static inline int run(struct fx *f, ep_err *err) {
  return run_opts(f, NULL, NULL, NULL, err);
}

static inline void st_at(struct fx *f, const char *name, struct stat *st) {
  if (fstatat(f->fsfd, name, st, AT_SYMLINK_NOFOLLOW) != 0)
    fail_msg("%s: %s", name, strerror(errno));
}

static inline bool exists_at(struct fx *f, const char *name) {
  struct stat st;
  return fstatat(f->fsfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

#endif
