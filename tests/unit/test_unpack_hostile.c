/* Unit tests for store/unpack, hostile side: every escape of issue 10
 * point 4 (".." names, absolute names, a symlink followed by a write, a
 * hardlink to outside, a symlinked parent directory, a later entry replacing
 * a symlink, whiteouts and opaque markers through symlinks), each run with
 * openat2 and with the O_NOFOLLOW walker; limits (gzip bomb, entry count,
 * name and link length, xattr size); truncated and garbage streams; and
 * streaming from a pipe written by another thread, including one that fails
 * mid-way. The fixture's teardown asserts nothing outside fs/ changed.
 * Runs as root: exits 77 otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/unpack_layers.h"

/* Empties fs/ for a second run of the same layer. */
static void reset_fs(struct fx *f) {
  close(f->fsfd);
  assert_int_equal(ep_test_rm_rf(f->fs), 0);
  assert_int_equal(mkdir(f->fs, 0755), 0);
  f->fsfd = open(f->fs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(f->fsfd >= 0);
}

/* Whether the kernel (or qemu-user, which lacks it before 8.0) has openat2;
 * without it the unpacker always walks, so "openat2" expects the walker's. */
static bool have_openat2(void) {
  struct open_how how = {.flags = O_RDONLY | O_DIRECTORY, .resolve = RESOLVE_IN_ROOT};
  long fd = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
  if (fd >= 0)
    close((int)fd);
  return !(fd < 0 && errno == ENOSYS);
}

/* Builds the layer from ents, runs it with openat2 then with the walker,
 * expecting the given results (0 or -EP_E*), and checks containment. */
static void hostile(struct fx *f, const struct ent *ents, size_t n, int want_openat2,
                    int want_walker) {
  layer_begin(f, F_GZIP);
  for (size_t i = 0; i < n; i++)
    layer_add(f, &ents[i]);
  layer_end(f);
  for (int walker = 0; walker < 2; walker++) {
    unpack_opts o = {.flags = walker ? UNPACK_NO_OPENAT2 : 0};
    ep_err err = {0};
    int r = run_opts(f, &o, NULL, NULL, &err);
    int want = walker || !have_openat2() ? want_walker : want_openat2;
    if (r != want)
      fail_msg("%s: got %d (%s), want %d", walker ? "walker" : "openat2", r, err.msg, want);
    if (r != 0)
      assert_true(strlen(err.msg) > 0);
    assert_contained(f);
    if (walker == 0)
      reset_fs(f);
  }
}

#define HOSTILE(f, a, w, ...)                                                                      \
  do {                                                                                             \
    const struct ent ents_[] = {__VA_ARGS__};                                                      \
    hostile(f, ents_, sizeof ents_ / sizeof ents_[0], a, w);                                       \
  } while (0)

static void test_dotdot(void **state) {
  struct fx *f = *state;
  HOSTILE(f, -EP_EINVAL, -EP_EINVAL, {.name = "../sentinel/evil", .data = "x"});
  HOSTILE(f, -EP_EINVAL, -EP_EINVAL, {.name = "a/b/../../../sentinel/evil", .data = "x"});
  HOSTILE(f, -EP_EINVAL, -EP_EINVAL, {.name = "..", .type = AE_IFDIR});
}

static void test_absolute(void **state) {
  struct fx *f = *state;
  char abs[160];
  snprintf(abs, sizeof abs, "%s/evil", f->sentinel);
  HOSTILE(f, -EP_EINVAL, -EP_EINVAL, {.name = abs, .data = "x"});
  HOSTILE(f, -EP_EINVAL, -EP_EINVAL, {.name = "/", .type = AE_IFDIR});
}

/* A symlinked parent is resolved inside the root (openat2, as containerd's
 * fs.RootPath) or refused (walker). One whose target does not exist in the
 * root is refused by both (containerd would create the target's parents). */
static void test_symlink_parent(void **state) {
  struct fx *f = *state;
  HOSTILE(f, -EP_EINVAL, -EP_EINVAL, {.name = "l", .type = AE_IFLNK, .data = f->sentinel},
          {.name = "l/evil", .data = "x"});
  HOSTILE(f, -EP_EINVAL, -EP_EINVAL, {.name = "l", .type = AE_IFLNK, .data = "../sentinel"},
          {.name = "l/evil", .data = "x"});
  HOSTILE(f, 0, -EP_EINVAL, {.name = "a", .type = AE_IFLNK, .data = "b"},
          {.name = "b", .type = AE_IFLNK, .data = "../../.."}, {.name = "a/evil", .data = "x"});
  reset_fs(f);
  HOSTILE(f, 0, -EP_EINVAL, {.name = "inside/", .type = AE_IFDIR},
          {.name = "l", .type = AE_IFLNK, .data = "/inside"}, {.name = "l/evil", .data = "x"});
  reset_fs(f);
  layer_begin(f, F_NONE);
  layer_add(f, &(struct ent){.name = "inside/", .type = AE_IFDIR});
  layer_add(f, &(struct ent){.name = "l", .type = AE_IFLNK, .data = "/inside"});
  layer_add(f, &(struct ent){.name = "l/evil", .data = "x"});
  layer_end(f);
  ep_err err = {0};
  if (!have_openat2()) { /* the walker refuses every symlinked parent */
    assert_int_equal(run(f, &err), -EP_EINVAL);
    return;
  }
  assert_int_equal(run(f, &err), 0);
  assert_true(exists_at(f, "inside/evil"));
}

static void test_write_through_symlink(void **state) {
  struct fx *f = *state;
  char canary[160];
  snprintf(canary, sizeof canary, "%s/canary", f->sentinel);
  HOSTILE(f, 0, 0, {.name = "l", .type = AE_IFLNK, .data = canary},
          {.name = "l", .data = "pwned", .perm = 0777, .uid = 1234});
  struct stat st;
  st_at(f, "l", &st);
  assert_true(S_ISREG(st.st_mode));
  /* chown/chmod/xattr/times of a hardlink to a symlink stay on the link. */
  HOSTILE(f, 0, 0, {.name = "s", .type = AE_IFLNK, .data = canary},
          {.name = "h", .hardlink = "s", .perm = 0777, .uid = 1234, .xkey = "user.x", .xval = "1"});
  HOSTILE(f, 0, 0, {.name = "s", .type = AE_IFLNK, .data = canary},
          {.name = "s", .type = AE_IFCHR, .perm = 0666, .major = 1, .minor = 3});
}

static void test_hardlink_outside(void **state) {
  struct fx *f = *state;
  char canary[160];
  snprintf(canary, sizeof canary, "%s/canary", f->sentinel);
  HOSTILE(f, -EP_EINVAL, -EP_EINVAL, {.name = "h", .hardlink = "../sentinel/canary"});
  HOSTILE(f, -EP_EINVAL, -EP_EINVAL, {.name = "h", .hardlink = canary});
  HOSTILE(f, -EP_EINVAL, -EP_EINVAL, {.name = "s", .type = AE_IFLNK, .data = f->sentinel},
          {.name = "h", .hardlink = "s/canary"});
  HOSTILE(f, -EP_EINVAL, -EP_EINVAL, {.name = "h", .hardlink = "missing"});
}

/* A later entry replaces a symlink: the new node, never the link's target. */
static void test_replace_symlink(void **state) {
  struct fx *f = *state;
  HOSTILE(f, 0, 0, {.name = "d", .type = AE_IFLNK, .data = f->sentinel},
          {.name = "d/", .type = AE_IFDIR, .perm = 0700}, {.name = "d/evil", .data = "x"},
          {.name = "d/.wh.canary"});
  struct stat st;
  st_at(f, "d", &st);
  assert_true(S_ISDIR(st.st_mode));
  st_at(f, "d/canary", &st);
  assert_true(S_ISCHR(st.st_mode));
}

static void test_whiteout_through_symlink(void **state) {
  struct fx *f = *state;
  HOSTILE(f, -EP_EINVAL, -EP_EINVAL, {.name = "o", .type = AE_IFLNK, .data = "../sentinel"},
          {.name = "o/.wh..wh..opq"});
  HOSTILE(f, -EP_EINVAL, -EP_EINVAL, {.name = "w", .type = AE_IFLNK, .data = "../sentinel"},
          {.name = "w/.wh.canary"});
  HOSTILE(f, -EP_EINVAL, -EP_EINVAL, {.name = ".wh.."});
  HOSTILE(f, -EP_EINVAL, -EP_EINVAL, {.name = "x/.wh.."});
}

/* A raw ustar header: shapes the writer is not asked for. */
static void raw_header(char h[512], const char *name, char type, size_t size, const char *link) {
  memset(h, 0, 512);
  snprintf(h, 100, "%s", name);
  snprintf(h + 100, 8, "%07o", 0644);
  snprintf(h + 108, 8, "%07o", 0);
  snprintf(h + 116, 8, "%07o", 0);
  snprintf(h + 124, 12, "%011zo", size);
  snprintf(h + 136, 12, "%011o", 0);
  h[156] = type;
  if (link != NULL)
    snprintf(h + 157, 100, "%s", link);
  memcpy(h + 257,
         "ustar\0"
         "00",
         8);
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; i++)
    sum += (unsigned char)h[i];
  snprintf(h + 148, 8, "%06o", sum);
}

static void write_raw(struct fx *f, const char *hdrs, size_t n) {
  FILE *o = fopen(f->layer, "w");
  assert_non_null(o);
  assert_int_equal(fwrite(hdrs, 1, n, o), n);
  static const char zero[1024];
  assert_int_equal(fwrite(zero, 1, sizeof zero, o), sizeof zero);
  assert_int_equal(fclose(o), 0);
}

static void test_raw_shapes(void **state) {
  struct fx *f = *state;
  char h[3][512];
  raw_header(h[0], "../raw-evil", '0', 0, NULL);
  write_raw(f, h[0], 512);
  ep_err err = {0};
  assert_int_equal(run(f, &err), -EP_EINVAL);
  assert_non_null(strstr(err.msg, "../raw-evil"));
  /* A symlink named "." (the root) is ignored; a hardlink to "." refused. */
  raw_header(h[0], ".", '2', 0, "/");
  raw_header(h[1], "./", '5', 0, NULL);
  raw_header(h[2], "hl", '1', 0, ".");
  write_raw(f, h[0], sizeof h);
  assert_int_equal(run(f, &err), -EP_EINVAL);
  assert_non_null(strstr(err.msg, "hl"));
  struct stat st;
  assert_int_equal(fstat(f->fsfd, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  /* An unknown type flag is a regular file to libarchive, as to tar. */
  raw_header(h[0], "odd", 'Z', 0, NULL);
  raw_header(h[1], "raw\xff\xfe", '0', 0, NULL); /* not UTF-8: kept as bytes */
  write_raw(f, h[0], 1024);
  assert_int_equal(run(f, &err), 0);
  assert_true(exists_at(f, "odd"));
  assert_true(exists_at(f, "raw\xff\xfe"));
}

static void test_gzip_bomb(void **state) {
  struct fx *f = *state;
  size_t len = 64u << 20;
  char *zeros = calloc(1, len);
  assert_non_null(zeros);
  layer_begin(f, F_GZIP);
  layer_add(f, &(struct ent){.name = "bomb", .data = zeros, .len = len});
  layer_end(f);
  free(zeros);
  struct stat st;
  assert_int_equal(stat(f->layer, &st), 0);
  assert_true(st.st_size < (1 << 20));
  unpack_opts o = {.limits = {.max_bytes = 8u << 20}};
  ep_err err = {0};
  assert_int_equal(run_opts(f, &o, NULL, NULL, &err), -EP_ETOOBIG);
  assert_non_null(strstr(err.msg, "limit"));
  /* The entry's declared size is caught before its data. */
  assert_false(exists_at(f, "bomb"));
  o.limits.max_bytes = 80u << 20;
  assert_int_equal(run_opts(f, &o, NULL, NULL, &err), 0);

  /* Zeros after the end-of-archive: caught by the stream's own count. */
  reset_fs(f);
  layer_begin(f, F_GZIP);
  layer_add(f, &(struct ent){.name = "small", .data = "x"});
  f->pad = 64 << 20;
  layer_end(f);
  o.limits.max_bytes = 8u << 20;
  assert_int_equal(run_opts(f, &o, NULL, NULL, &err), -EP_ETOOBIG);
  assert_non_null(strstr(err.msg, "uncompressed"));
  f->pad = 0;
}

static void test_limits(void **state) {
  struct fx *f = *state;
  layer_begin(f, F_NONE);
  for (int i = 0; i < 5; i++) {
    char name[16];
    snprintf(name, sizeof name, "e%d", i);
    layer_add(f, &(struct ent){.name = name, .data = "x"});
  }
  layer_add(f, &(struct ent){.name = "a-rather-long-name-of-36-bytes-xxxxx", .data = "x"});
  layer_add(f, &(struct ent){.name = "l",
                             .type = AE_IFLNK,
                             .data = "a-rather-long-target-of-forty-bytes-xxxx"});
  layer_end(f);
  ep_err err = {0};
  unpack_opts o = {.limits = {.max_entries = 3}};
  assert_int_equal(run_opts(f, &o, NULL, NULL, &err), -EP_ETOOBIG);
  assert_non_null(strstr(err.msg, "e3"));
  assert_non_null(strstr(err.msg, "entries"));
  reset_fs(f);
  o = (unpack_opts){.limits = {.max_name = 32}};
  assert_int_equal(run_opts(f, &o, NULL, NULL, &err), -EP_ETOOBIG);
  assert_non_null(strstr(err.msg, "a-rather-long-name"));
  reset_fs(f);
  o = (unpack_opts){.limits = {.max_name = 38}};
  assert_int_equal(run_opts(f, &o, NULL, NULL, &err), -EP_ETOOBIG);
  assert_non_null(strstr(err.msg, "link target"));

  char big[2001];
  memset(big, 'v', 2000);
  big[2000] = '\0';
  layer_begin(f, F_NONE);
  layer_add(f, &(struct ent){.name = "x", .data = "x", .xkey = "user.big", .xval = big});
  layer_end(f);
  reset_fs(f);
  o = (unpack_opts){.limits = {.max_xattr = 1024}};
  assert_int_equal(run_opts(f, &o, NULL, NULL, &err), -EP_ETOOBIG);
  assert_non_null(strstr(err.msg, "user.big"));
  reset_fs(f);
  assert_int_equal(run_opts(f, NULL, NULL, NULL, &err), 0);
}

static void truncate_layer(struct fx *f, double keep) {
  struct stat st;
  assert_int_equal(stat(f->layer, &st), 0);
  assert_int_equal(truncate(f->layer, (off_t)((double)st.st_size * keep)), 0);
}

static void test_truncated(void **state) {
  struct fx *f = *state;
  char data[100000];
  uint64_t seed = 42;
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (char)ep_test_xorshift(&seed);
  for (int filter = F_NONE; filter <= F_ZSTD; filter++) {
    layer_begin(f, filter);
    layer_add(f, &(struct ent){.name = "a", .data = data, .len = sizeof data});
    layer_add(f, &(struct ent){.name = "b", .data = data, .len = sizeof data});
    layer_end(f);
    truncate_layer(f, 0.6);
    ep_err err = {0};
    reset_fs(f);
    assert_int_equal(run(f, &err), -EP_EINVAL);
    assert_true(strlen(err.msg) > 0);
  }
  /* Garbage: no tar inside. */
  FILE *o = fopen(f->layer, "w");
  assert_non_null(o);
  assert_int_equal(fwrite(data, 1, 5000, o), 5000);
  fclose(o);
  ep_err err = {0};
  assert_int_equal(run(f, &err), -EP_EINVAL);
}

/* ---- streaming from a pipe ---- */

struct writer {
  struct fx *f;
  blob_pipe *p;
  const char *src;
  size_t fail_at; /* 0: write everything */
  bool saw_early; /* fs/stream/first existed before the last byte */
  int error;
};

static void *writer_main(void *arg) {
  struct writer *w = arg;
  char path[128];
  snprintf(path, sizeof path, "%s/partial", w->f->dir);
  int in = open(w->src, O_RDONLY | O_CLOEXEC);
  int wfd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int rfd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (in < 0 || wfd < 0 || rfd < 0 || fstat(in, &st) < 0) {
    w->error = 1;
    pipe_finish(w->p, false);
    return NULL;
  }
  unlink(path); /* the fixture checks that nothing else is in the dir */
  pipe_attach_fd(w->p, rfd);
  pipe_set_size(w->p, (uint64_t)st.st_size);
  size_t total = (size_t)st.st_size, off = 0, half = total / 2;
  static char buf[4096];
  while (off < total) {
    if (w->fail_at != 0 && off >= w->fail_at)
      break;
    ssize_t n = read(in, buf, sizeof buf);
    if (n <= 0 || pwrite(wfd, buf, (size_t)n, (off_t)off) != n) {
      w->error = 2;
      break;
    }
    off += (size_t)n;
    pipe_publish(w->p, off);
    if (w->fail_at == 0 && off >= half && !w->saw_early) {
      /* The unpack must have created the first entry from the first half. */
      for (int i = 0; i < 20000 && !w->saw_early; i++) {
        w->saw_early = exists_at(w->f, "stream/first");
        usleep(1000);
      }
      if (!w->saw_early) {
        w->error = 3;
        break;
      }
    }
  }
  close(in);
  close(wfd);
  pipe_finish(w->p, w->error == 0 && off == total);
  return NULL;
}

static void stream_layer(struct fx *f) {
  size_t len = 1 << 20;
  char *data = malloc(len);
  assert_non_null(data);
  uint64_t seed = 7;
  for (size_t i = 0; i < len; i++)
    data[i] = (char)ep_test_xorshift(&seed);
  layer_begin(f, F_GZIP);
  layer_add(f, &(struct ent){.name = "stream/first", .data = "first"});
  layer_add(f, &(struct ent){.name = "stream/big", .data = data, .len = len});
  layer_end(f);
  free(data);
}

static void run_stream(struct fx *f, size_t fail_at, int want) {
  pipe_table *t = pipe_table_new();
  assert_non_null(t);
  digest_t d, diffid;
  file_digest(f->layer, &d);
  file_digest(f->tar, &diffid);
  bool created = false;
  blob_pipe *p = pipe_table_join(t, &d, &created);
  assert_true(created);
  pipe_ref(p); /* the writer's; p stays ours */
  struct writer w = {.f = f, .p = p, .src = f->layer, .fail_at = fail_at};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
  ep_err err = {0};
  unpack_result res = {0};
  int r = unpack_pipe(f->fsfd, p, 30000, NULL, &diffid, &res, &err);
  assert_int_equal(pthread_join(th, NULL), 0);
  pipe_unref(p);
  pipe_unref(p);
  pipe_table_free(t);
  if (r != want)
    fail_msg("got %d (%s), want %d", r, err.msg, want);
  if (want == 0) {
    assert_int_equal(w.error, 0);
    assert_true(w.saw_early);
    assert_true(digest_equal(&res.diffid, &diffid));
    assert_true(exists_at(f, "stream/big"));
  } else {
    assert_non_null(strstr(err.msg, "source failed"));
  }
}

static void test_stream_pipe(void **state) {
  struct fx *f = *state;
  stream_layer(f);
  run_stream(f, 0, 0);
}

static void test_stream_pipe_fails(void **state) {
  struct fx *f = *state;
  stream_layer(f);
  struct stat st;
  assert_int_equal(stat(f->layer, &st), 0);
  run_stream(f, (size_t)st.st_size / 3, -EP_EIO);
}

int main(void) {
  if (geteuid() != 0) {
    fprintf(stderr, "test_unpack_hostile needs root (mknod, chown, trusted xattrs)\n");
    return 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_dotdot, setup, teardown),
      cmocka_unit_test_setup_teardown(test_absolute, setup, teardown),
      cmocka_unit_test_setup_teardown(test_symlink_parent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_write_through_symlink, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hardlink_outside, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replace_symlink, setup, teardown),
      cmocka_unit_test_setup_teardown(test_whiteout_through_symlink, setup, teardown),
      cmocka_unit_test_setup_teardown(test_raw_shapes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gzip_bomb, setup, teardown),
      cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stream_pipe, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stream_pipe_fails, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
