/* Unit tests for store/unpack, functional side: every entry type, mode,
 * owner, xattr and time; whiteouts and opaque directories; containerd's
 * replacement rules; the three compressions; diffID; a large file; copy-up
 * of parent attributes from lower layers. The hostile side, the limits and
 * the streaming from a pipe are in test_unpack_hostile.c. Runs as root
 * (mknod, chown, trusted.* xattrs): exits 77 otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <locale.h>

#include "tests/unit/unpack_layers.h"

static void check_tree(struct fx *f) {
  struct stat st;
  st_at(f, "etc", &st);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0751);
  assert_int_equal(st.st_mtim.tv_sec, 1500000000); /* restored after its contents */
  st_at(f, "etc/passwd", &st);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0644);
  assert_int_equal(st.st_size, 9);
  assert_int_equal(st.st_mtim.tv_sec, 1600000000);
  st_at(f, "bin/su", &st);
  assert_int_equal(st.st_mode & 07777, 04755);
  assert_int_equal(st.st_nlink, 2);
  struct stat st2;
  st_at(f, "bin/su2", &st2);
  assert_int_equal(st.st_ino, st2.st_ino);
  st_at(f, "tmp", &st);
  assert_int_equal(st.st_mode & 07777, 01777);
  st_at(f, "home/user/file", &st);
  assert_int_equal(st.st_uid, 1000);
  assert_int_equal(st.st_gid, 1001);
  assert_int_equal(st.st_mode & 07777, 02640);
  st_at(f, "home", &st); /* a parent no entry listed */
  assert_int_equal(st.st_mode & 07777, 0755);
  st_at(f, "lib", &st);
  assert_true(S_ISLNK(st.st_mode));
  assert_int_equal(st.st_uid, 33);
  assert_int_equal(st.st_mtim.tv_sec, 1400000000);
  char target[64] = {0};
  assert_int_equal(readlinkat(f->fsfd, "lib", target, sizeof target), 7);
  assert_string_equal(target, "usr/lib");
  st_at(f, "dev/null", &st);
  assert_true(S_ISCHR(st.st_mode));
  assert_int_equal(major(st.st_rdev), 1);
  assert_int_equal(minor(st.st_rdev), 3);
  assert_int_equal(st.st_mode & 07777, 0666);
  st_at(f, "dev/loop0", &st);
  assert_true(S_ISBLK(st.st_mode));
  assert_int_equal(major(st.st_rdev), 7);
  st_at(f, "run/fifo", &st);
  assert_true(S_ISFIFO(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0600);
  char v[64] = {0};
  char p[256];
  snprintf(p, sizeof p, "%s/etc/passwd", f->fs);
  assert_int_equal(lgetxattr(p, "user.origin", v, sizeof v), 4);
  assert_memory_equal(v, "test", 4);
  assert_true(lgetxattr(p, "trusted.evil", v, sizeof v) < 0); /* skipped, as containerd */
  st_at(f, "bin/ping", &st);
  assert_int_equal(st.st_mode & 07777, 0755);
}

static const char caps[] = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                           "\x00\x00\x00\x00";

static void build_tree(struct fx *f, int filter) {
  layer_begin(f, filter);
  layer_add(f, &(struct ent){.name = "etc/", .type = AE_IFDIR, .perm = 0751, .mtime = 1500000000});
  layer_add(f,
            &(struct ent){
                .name = "etc/passwd", .data = "root:x:0\n", .xkey = "user.origin", .xval = "test"});
  layer_add(f,
            &(struct ent){.name = "etc/passwd2", .data = "x", .xkey = "trusted.evil", .xval = "1"});
  layer_add(f, &(struct ent){.name = "./bin/su", .data = "su", .perm = 04755});
  layer_add(f, &(struct ent){.name = "bin/su2", .hardlink = "bin/su", .perm = 04755});
  layer_add(f, &(struct ent){.name = "bin/ping", .data = "ping", .perm = 0755});
  layer_add(f, &(struct ent){.name = "tmp", .type = AE_IFDIR, .perm = 01777});
  layer_add(f,
            &(struct ent){
                .name = "home/user/file", .data = "hi", .perm = 02640, .uid = 1000, .gid = 1001});
  layer_add(
      f, &(struct ent){
             .name = "lib", .type = AE_IFLNK, .data = "usr/lib", .uid = 33, .mtime = 1400000000});
  layer_add(
      f, &(struct ent){.name = "dev/null", .type = AE_IFCHR, .perm = 0666, .major = 1, .minor = 3});
  layer_add(f, &(struct ent){.name = "dev/loop0", .type = AE_IFBLK, .perm = 0660, .major = 7});
  layer_add(f, &(struct ent){.name = "run/fifo", .type = AE_IFIFO, .perm = 0600});
  layer_end(f);
  /* security.capability is cleared by chown: set after it, as containerd. */
  f->w = NULL;
}

static void test_formats(void **state, int filter) {
  struct fx *f = *state;
  build_tree(f, filter);
  ep_err err = {0};
  unpack_result res;
  digest_t want;
  file_digest(f->tar, &want);
  int r = run_opts(f, NULL, &want, &res, &err);
  if (r != 0)
    fail_msg("%s", err.msg);
  assert_true(digest_equal(&res.diffid, &want));
  assert_int_equal(res.entries, 12);
  struct stat st;
  assert_int_equal(stat(f->tar, &st), 0);
  assert_int_equal(res.bytes, (uint64_t)st.st_size);
  assert_int_equal(stat(f->layer, &st), 0);
  assert_int_equal(res.compressed, (uint64_t)st.st_size);
  check_tree(f);
}

static void test_none(void **state) {
  test_formats(state, F_NONE);
}
static void test_gzip(void **state) {
  test_formats(state, F_GZIP);
}
static void test_zstd(void **state) {
  test_formats(state, F_ZSTD);
}

static void test_capability(void **state) {
  struct fx *f = *state;
  layer_begin(f, F_GZIP);
  struct archive_entry *ae = archive_entry_new();
  archive_entry_set_pathname(ae, "ping");
  archive_entry_set_filetype(ae, AE_IFREG);
  archive_entry_set_perm(ae, 0755);
  archive_entry_set_uid(ae, 0);
  archive_entry_set_size(ae, 1);
  archive_entry_xattr_add_entry(ae, "security.capability", caps, sizeof caps - 1);
  assert_int_equal(archive_write_header(f->w, ae), ARCHIVE_OK);
  assert_int_equal(archive_write_data(f->w, "p", 1), 1);
  archive_entry_free(ae);
  layer_end(f);
  ep_err err = {0};
  if (run(f, &err) != 0)
    fail_msg("%s", err.msg);
  char p[256], v[64];
  snprintf(p, sizeof p, "%s/ping", f->fs);
  assert_int_equal(getxattr(p, "security.capability", v, sizeof v), (ssize_t)(sizeof caps - 1));
  assert_memory_equal(v, caps, sizeof caps - 1);
}

static void test_whiteouts(void **state) {
  struct fx *f = *state;
  layer_begin(f, F_GZIP);
  layer_add(f, &(struct ent){.name = ".wh.gone", .uid = 5, .gid = 6});
  layer_add(f, &(struct ent){.name = "opaque/", .type = AE_IFDIR});
  layer_add(f, &(struct ent){.name = "opaque/.wh..wh..opq"});
  layer_add(f, &(struct ent){.name = "unlisted/sub/.wh..wh..opq"});
  layer_add(f, &(struct ent){.name = "deep/er/.wh.x"});
  layer_add(f, &(struct ent){.name = ".wh..wh.plnk"}); /* a whiteout of ".wh.plnk" */
  layer_end(f);
  ep_err err = {0};
  if (run(f, &err) != 0)
    fail_msg("%s", err.msg);
  struct stat st;
  st_at(f, "gone", &st);
  assert_true(S_ISCHR(st.st_mode));
  assert_int_equal(st.st_rdev, makedev(0, 0));
  assert_int_equal(st.st_uid, 5);
  assert_int_equal(st.st_gid, 6);
  assert_false(exists_at(f, ".wh.gone"));
  assert_false(exists_at(f, "opaque/.wh..wh..opq"));
  char p[256], v[8] = {0};
  snprintf(p, sizeof p, "%s/opaque", f->fs);
  assert_int_equal(getxattr(p, "trusted.overlay.opaque", v, sizeof v), 1);
  assert_int_equal(v[0], 'y');
  snprintf(p, sizeof p, "%s/unlisted/sub", f->fs);
  assert_int_equal(getxattr(p, "trusted.overlay.opaque", v, sizeof v), 1);
  st_at(f, "deep/er/x", &st);
  assert_true(S_ISCHR(st.st_mode));
  st_at(f, ".wh.plnk", &st);
  assert_true(S_ISCHR(st.st_mode));
}

static void test_bad_whiteout(void **state) {
  struct fx *f = *state;
  layer_begin(f, F_NONE);
  layer_add(f, &(struct ent){.name = "a/.wh."});
  layer_end(f);
  ep_err err = {0};
  assert_int_equal(run(f, &err), -EP_EINVAL);
  assert_non_null(strstr(err.msg, "a/.wh."));
}

static void test_replace(void **state) {
  struct fx *f = *state;
  layer_begin(f, F_GZIP);
  layer_add(f, &(struct ent){.name = "a", .data = "file"});
  layer_add(f, &(struct ent){.name = "a/", .type = AE_IFDIR, .perm = 0700}); /* file -> dir */
  layer_add(f, &(struct ent){.name = "d/", .type = AE_IFDIR});
  layer_add(f, &(struct ent){.name = "d/keep", .data = "k"});
  layer_add(f, &(struct ent){.name = "d", .type = AE_IFDIR, .perm = 0711}); /* dir over dir */
  layer_add(f, &(struct ent){.name = "t/", .type = AE_IFDIR});
  layer_add(f, &(struct ent){.name = "t/x", .data = "x"});
  layer_add(f, &(struct ent){.name = "t", .type = AE_IFLNK, .data = "d"}); /* dir -> symlink */
  layer_add(f, &(struct ent){.name = "s", .type = AE_IFLNK, .data = "a"});
  layer_add(f, &(struct ent){.name = "s", .data = "now a file"}); /* symlink -> file */
  layer_add(f, &(struct ent){.name = "f", .data = "old"});
  layer_add(f, &(struct ent){.name = "f", .data = "new!"}); /* file -> file */
  layer_end(f);
  ep_err err = {0};
  if (run(f, &err) != 0)
    fail_msg("%s", err.msg);
  struct stat st;
  st_at(f, "a", &st);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0700);
  st_at(f, "d", &st);
  assert_int_equal(st.st_mode & 07777, 0711);
  assert_true(exists_at(f, "d/keep"));
  st_at(f, "t", &st);
  assert_true(S_ISLNK(st.st_mode));
  st_at(f, "s", &st);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_size, 10);
  st_at(f, "f", &st);
  assert_int_equal(st.st_size, 4);
  assert_int_equal(st.st_nlink, 1);
}

/* A parent created for "usr/bin/x" takes usr/bin's attributes from the
 * topmost lower layer that has it (containerd's mkparent). */
static void test_copy_up(void **state) {
  struct fx *f = *state;
  char lower[128];
  snprintf(lower, sizeof lower, "%s/fs/lower", f->dir);
  assert_int_equal(mkdirat(f->fsfd, "lower", 0755), 0);
  assert_int_equal(mkdirat(f->fsfd, "lower/usr", 0755), 0);
  assert_int_equal(mkdirat(f->fsfd, "lower/usr/bin", 0750), 0);
  assert_int_equal(chown(lower, 0, 0), 0);
  char p[256];
  snprintf(p, sizeof p, "%s/usr/bin", lower);
  assert_int_equal(chmod(p, 0750), 0);
  assert_int_equal(chown(p, 7, 8), 0);
  assert_int_equal(setxattr(p, "user.layer", "low", 3, 0), 0);
  struct timespec ts[2] = {{1300000000, 0}, {1300000000, 0}};
  assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
  int lfd = open(lower, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(lfd >= 0);
  assert_int_equal(mkdirat(f->fsfd, "upper", 0755), 0);
  int ufd = openat(f->fsfd, "upper", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  layer_begin(f, F_NONE);
  layer_add(f, &(struct ent){.name = "usr/bin/x", .data = "x"});
  layer_end(f);
  int fd = open(f->layer, O_RDONLY | O_CLOEXEC);
  ep_err err = {0};
  unpack_opts o = {.parent_fds = &lfd, .n_parents = 1};
  if (unpack_fd(ufd, fd, &o, NULL, NULL, &err) != 0)
    fail_msg("%s", err.msg);
  close(fd);
  struct stat st;
  st_at(f, "upper/usr/bin", &st);
  assert_int_equal(st.st_mode & 07777, 0750);
  assert_int_equal(st.st_uid, 7);
  assert_int_equal(st.st_gid, 8);
  /* (its mtime is now x's creation, as with containerd) */
  st_at(f, "upper/usr", &st);
  assert_int_equal(st.st_mode & 07777, 0755);
  char v[8] = {0};
  snprintf(p, sizeof p, "%s/upper/usr/bin", f->fs);
  assert_int_equal(getxattr(p, "user.layer", v, sizeof v), 3);
  close(lfd);
  close(ufd);
}

static void test_large_file(void **state) {
  struct fx *f = *state;
  size_t len = 5 * 1024 * 1024 + 12345;
  char *data = malloc(len);
  assert_non_null(data);
  uint64_t seed = 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i < len; i++)
    data[i] = (char)(i % 3 == 0 ? 0 : ep_test_xorshift(&seed));
  layer_begin(f, F_ZSTD);
  layer_add(f, &(struct ent){.name = "big/blob", .data = data, .len = len});
  layer_add(f, &(struct ent){.name = "big/after", .data = "z"});
  layer_end(f);
  digest_t want, got;
  digest_buffer(data, len, &want);
  free(data);
  ep_err err = {0};
  unpack_result res;
  if (run_opts(f, NULL, NULL, &res, &err) != 0)
    fail_msg("%s", err.msg);
  assert_true(res.bytes > len);
  char p[256];
  snprintf(p, sizeof p, "%s/big/blob", f->fs);
  file_digest(p, &got);
  assert_true(digest_equal(&want, &got));
}

static void test_diffid_mismatch(void **state) {
  struct fx *f = *state;
  layer_begin(f, F_GZIP);
  layer_add(f, &(struct ent){.name = "x", .data = "x"});
  layer_end(f);
  digest_t wrong;
  digest_buffer("other", 5, &wrong);
  ep_err err = {0};
  assert_int_equal(run_opts(f, NULL, &wrong, NULL, &err), -EP_EDIGEST);
  assert_non_null(strstr(err.msg, "diffID"));
  assert_non_null(strstr(err.msg, wrong.hex));
}

static void test_empty_and_root(void **state) {
  struct fx *f = *state;
  layer_begin(f, F_GZIP);
  layer_add(f, &(struct ent){.name = "./", .type = AE_IFDIR, .perm = 0700});
  layer_end(f);
  ep_err err = {0};
  unpack_result res;
  if (run_opts(f, NULL, NULL, &res, &err) != 0)
    fail_msg("%s", err.msg);
  assert_int_equal(res.entries, 1);
  struct stat st;
  assert_int_equal(fstat(f->fsfd, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0755); /* the root is the caller's */
  /* A zero-byte layer is an empty tar. */
  int fd = open(f->layer, O_WRONLY | O_TRUNC | O_CLOEXEC);
  close(fd);
  if (run_opts(f, NULL, NULL, &res, &err) != 0)
    fail_msg("%s", err.msg);
  assert_int_equal(res.entries, 0);
  digest_t empty;
  digest_buffer("", 0, &empty);
  assert_true(digest_equal(&res.diffid, &empty));
}

/* A pax UTF-8 name comes out byte for byte in the C locale the daemon runs
 * in (the writer needs a UTF-8 locale to produce it). */
static void test_utf8_names(void **state) {
  struct fx *f = *state;
  locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
  assert_true(utf8 != (locale_t)0);
  uselocale(utf8);
  layer_begin(f, F_GZIP);
  layer_add(f, &(struct ent){.name = "caf\xc3\xa9/\xc3\xbc", .data = "u"});
  layer_add(f, &(struct ent){.name = "l", .type = AE_IFLNK, .data = "\xc3\xa9t\xc3\xa9"});
  layer_end(f);
  uselocale(LC_GLOBAL_LOCALE);
  freelocale(utf8);
  ep_err err = {0};
  if (run(f, &err) != 0)
    fail_msg("%s", err.msg);
  assert_true(exists_at(f, "caf\xc3\xa9/\xc3\xbc"));
  char t[16] = {0};
  assert_int_equal(readlinkat(f->fsfd, "l", t, sizeof t), 5);
  assert_string_equal(t, "\xc3\xa9t\xc3\xa9");
}

/* Discarding an unpacked tree never follows its symlinks. */
static void test_remove_tree(void **state) {
  struct fx *f = *state;
  layer_begin(f, F_NONE);
  layer_add(f, &(struct ent){.name = "a/b/c", .data = "x", .perm = 0400});
  layer_add(f, &(struct ent){.name = "a/out", .type = AE_IFLNK, .data = f->sentinel});
  layer_add(f, &(struct ent){.name = "a/ro", .type = AE_IFDIR, .perm = 0});
  layer_add(f, &(struct ent){.name = "a/ro/f", .data = "x"});
  layer_end(f);
  ep_err err = {0};
  if (run(f, &err) != 0)
    fail_msg("%s", err.msg);
  assert_int_equal(unpack_remove_tree(f->fsfd, "a", &err), 0);
  assert_false(exists_at(f, "a"));
  assert_int_equal(unpack_remove_tree(f->fsfd, "a", &err), 0);
}

int main(void) {
  if (geteuid() != 0) {
    fprintf(stderr, "test_unpack needs root (mknod, chown, trusted xattrs)\n");
    return 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_none, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gzip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_zstd, setup, teardown),
      cmocka_unit_test_setup_teardown(test_capability, setup, teardown),
      cmocka_unit_test_setup_teardown(test_whiteouts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_whiteout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
      cmocka_unit_test_setup_teardown(test_copy_up, setup, teardown),
      cmocka_unit_test_setup_teardown(test_large_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_diffid_mismatch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_empty_and_root, setup, teardown),
      cmocka_unit_test_setup_teardown(test_utf8_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_remove_tree, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
