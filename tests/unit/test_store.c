/* Unit tests for store/store: ingest, verify and commit; resume; reset;
 * store_put; readers across a commit; foreach; hostile files planted in
 * the store. Every test runs in its own mkdtemp dir and the teardown checks
 * that nothing was created outside the store root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/ep_test.h"
#include "tests/lib/testlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"

struct fx {
  char parent[64];
  char root[128];
  store *s;
};

static unsigned char *make_data(uint64_t seed, size_t len, digest_t *d) {
  unsigned char *b = malloc(len ? len : 1);
  assert_non_null(b);
  seed = seed * 2 + 1;
  for (size_t i = 0; i < len; i++)
    b[i] = (unsigned char)ep_test_xorshift(&seed);
  digest_buffer(b, len, d);
  return b;
}

static void rm_rf(const char *path) {
  ep_test_rm_rf(path);
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -1;
  if (ep_test_tmpdir(f->parent, sizeof f->parent, "ep-test-store-") < 0)
    return -1;
  /* Nested and missing: store_open must create it (mkdir -p). */
  snprintf(f->root, sizeof f->root, "%s/state/nested", f->parent);
  ep_err e = {0};
  if (store_open(f->root, &f->s, &e) < 0) {
    fprintf(stderr, "store_open: %s\n", e.msg);
    return -1;
  }
  *state = f;
  return 0;
}

/* Every entry below the root must be part of the store's layout:
 * blobs/sha256/<name> or ingest/<name>, nothing deeper. */
static int check_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  const char *base = path + ftw->base;
  bool ok = false;
  switch (ftw->level) {
  case 0:
    ok = true;
    break;
  case 1:
    ok = strcmp(base, "blobs") == 0 || strcmp(base, "ingest") == 0;
    break;
  case 2:
    ok = strstr(path, "/nested/ingest/") != NULL || strstr(path, "/nested/blobs/sha256") != NULL;
    break;
  case 3:
    ok = strstr(path, "/nested/blobs/sha256/") != NULL;
    break;
  default:
    ok = false;
  }
  if (!ok)
    fprintf(stderr, "unexpected entry in the store: %s\n", path);
  return ok ? 0 : 1;
}

static void assert_confined(struct fx *f) {
  DIR *d = opendir(f->parent);
  assert_non_null(d);
  struct dirent *de;
  int n = 0;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    assert_string_equal(de->d_name, "state");
    n++;
  }
  closedir(d);
  assert_int_equal(n, 1);
  char sub[256];
  snprintf(sub, sizeof sub, "%s/state", f->parent);
  d = opendir(sub);
  assert_non_null(d);
  n = 0;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    assert_string_equal(de->d_name, "nested");
    n++;
  }
  closedir(d);
  assert_int_equal(n, 1);
  d = opendir(f->root);
  assert_non_null(d);
  while ((de = readdir(d)) != NULL) {
    const char *nm = de->d_name;
    assert_true(strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0 || strcmp(nm, "blobs") == 0 ||
                strcmp(nm, "ingest") == 0);
  }
  closedir(d);
  assert_int_equal(nftw(f->root, check_entry, 16, FTW_PHYS), 0);
}

static int teardown(void **state) {
  struct fx *f = *state;
  store_close(f->s);
  assert_confined(f);
  rm_rf(f->parent);
  free(f);
  return 0;
}

static int ingest_fd(struct fx *f) {
  return openat(store_dirfd(f->s), "ingest", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static bool partial_exists(struct fx *f, const digest_t *d, off_t *size) {
  int dfd = ingest_fd(f);
  assert_true(dfd >= 0);
  char name[128];
  snprintf(name, sizeof name, "%s.partial", d->hex);
  struct stat st;
  int r = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW);
  close(dfd);
  if (r == 0 && size != NULL)
    *size = st.st_size;
  return r == 0;
}

static int count_ingest_entries(struct fx *f) {
  int dfd = ingest_fd(f);
  assert_true(dfd >= 0);
  DIR *d = fdopendir(dfd);
  assert_non_null(d);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (de->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

static void write_chunks(store_ingest *in, const unsigned char *b, size_t len, uint64_t seed) {
  ep_err e = {0};
  size_t off = 0;
  uint64_t base = store_ingest_offset(in);
  seed = seed * 2 + 1;
  while (off < len) {
    size_t n = 1 + (size_t)(ep_test_xorshift(&seed) % 70000);
    if (n > len - off)
      n = len - off;
    assert_int_equal(store_ingest_write(in, b + off, n, &e), 0);
    off += n;
    assert_int_equal(store_ingest_offset(in), base + off);
  }
}

static void assert_blob_content(struct fx *f, const digest_t *d, const unsigned char *b,
                                size_t len) {
  int fd = -1;
  uint64_t size = 0;
  ep_err e = {0};
  assert_int_equal(store_open_blob(f->s, d, &fd, &size, &e), 0);
  assert_int_equal(size, len);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0444);
  unsigned char *got = malloc(len + 1);
  assert_non_null(got);
  assert_int_equal(pread(fd, got, len + 1, 0), (ssize_t)len);
  assert_memory_equal(got, b, len);
  free(got);
  close(fd);
}

static void test_open_layout(void **state) {
  struct fx *f = *state;
  int root = store_dirfd(f->s);
  assert_true(root >= 0);
  struct stat st;
  assert_int_equal(fstatat(root, "blobs/sha256", &st, 0), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(fstatat(root, "ingest", &st, 0), 0);
  assert_true(S_ISDIR(st.st_mode));
  /* Opening again is fine; a file as root or an empty path is not. */
  store *again = NULL;
  ep_err e = {0};
  assert_int_equal(store_open(f->root, &again, &e), 0);
  store_close(again);
  assert_int_equal(store_open("", &again, &e), -EP_EINVAL);
  char file[256];
  snprintf(file, sizeof file, "%s/blobs/sha256/notadir", f->root);
  int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  close(fd);
  assert_true(store_open(file, &again, &e) < 0);
  assert_true(e.msg[0] != '\0');
  unlink(file);
}

static void test_ingest_commit(void **state) {
  struct fx *f = *state;
  digest_t d;
  size_t len = 300 * 1024 + 3;
  unsigned char *b = make_data(1, len, &d);
  ep_err e = {0};
  assert_int_equal(store_has(f->s, &d, NULL, &e), 0);
  int fd = -1;
  assert_int_equal(store_open_blob(f->s, &d, &fd, NULL, &e), -EP_ENOTFOUND);

  store_ingest *in = NULL;
  assert_int_equal(store_ingest_begin(f->s, &d, &in, &e), 0);
  assert_int_equal(store_ingest_offset(in), 0);
  assert_true(partial_exists(f, &d, NULL));
  write_chunks(in, b, len, 7);
  assert_int_equal(store_ingest_commit(in, &e), 0);

  uint64_t size = 0;
  assert_int_equal(store_has(f->s, &d, &size, &e), 1);
  assert_int_equal(size, len);
  assert_false(partial_exists(f, &d, NULL));
  assert_blob_content(f, &d, b, len);
  assert_int_equal(count_ingest_entries(f), 0);

  /* Committing the same digest again just drops the new partial. */
  assert_int_equal(store_ingest_begin(f->s, &d, &in, &e), 0);
  write_chunks(in, b, len, 9);
  assert_int_equal(store_ingest_commit(in, &e), 0);
  assert_int_equal(count_ingest_entries(f), 0);
  assert_blob_content(f, &d, b, len);

  assert_int_equal(store_remove(f->s, &d, &e), 0);
  assert_int_equal(store_has(f->s, &d, NULL, &e), 0);
  assert_int_equal(store_remove(f->s, &d, &e), 0); /* absent: fine */
  free(b);
}

static void test_empty_blob(void **state) {
  struct fx *f = *state;
  digest_t d;
  digest_buffer("", 0, &d);
  store_ingest *in = NULL;
  ep_err e = {0};
  assert_int_equal(store_ingest_begin(f->s, &d, &in, &e), 0);
  assert_int_equal(store_ingest_write(in, "", 0, &e), 0);
  assert_int_equal(store_ingest_commit(in, &e), 0);
  uint64_t size = 99;
  assert_int_equal(store_has(f->s, &d, &size, &e), 1);
  assert_int_equal(size, 0);
}

static void test_mismatch(void **state) {
  struct fx *f = *state;
  digest_t want, other;
  size_t len = 100000;
  unsigned char *b = make_data(2, len, &want);
  unsigned char *bad = make_data(3, len, &other);
  store_ingest *in = NULL;
  ep_err e = {0};
  assert_int_equal(store_ingest_begin(f->s, &want, &in, &e), 0);
  write_chunks(in, bad, len, 5);
  assert_int_equal(store_ingest_commit(in, &e), -EP_EDIGEST);
  assert_int_equal(e.code, EP_EDIGEST);
  assert_non_null(strstr(e.msg, want.hex));
  assert_non_null(strstr(e.msg, other.hex));
  assert_int_equal(store_has(f->s, &want, NULL, &e), 0);
  assert_int_equal(store_has(f->s, &other, NULL, &e), 0);
  assert_false(partial_exists(f, &want, NULL));
  free(b);
  free(bad);
}

static void test_resume(void **state) {
  struct fx *f = *state;
  digest_t d;
  size_t len = 1024 * 1024 + 123, half = len / 2;
  unsigned char *b = make_data(4, len, &d);
  store_ingest *in = NULL;
  ep_err e = {0};
  assert_int_equal(store_ingest_begin(f->s, &d, &in, &e), 0);
  write_chunks(in, b, half, 11);
  store_ingest_abort(in, true);
  off_t psize = 0;
  assert_true(partial_exists(f, &d, &psize));
  assert_int_equal(psize, half);
  assert_int_equal(store_has(f->s, &d, NULL, &e), 0);

  assert_int_equal(store_ingest_begin(f->s, &d, &in, &e), 0);
  assert_int_equal(store_ingest_offset(in), half);
  write_chunks(in, b + half, len - half, 13);
  assert_int_equal(store_ingest_commit(in, &e), 0);
  assert_blob_content(f, &d, b, len);

  /* A resumed partial with wrong bytes in its first part is caught too:
   * the re-hash covers what is on disk. */
  digest_t d2;
  unsigned char *b2 = make_data(5, len, &d2);
  assert_int_equal(store_ingest_begin(f->s, &d2, &in, &e), 0);
  write_chunks(in, b, half, 17); /* wrong content */
  store_ingest_abort(in, true);
  assert_int_equal(store_ingest_begin(f->s, &d2, &in, &e), 0);
  assert_int_equal(store_ingest_offset(in), half);
  write_chunks(in, b2 + half, len - half, 19);
  assert_int_equal(store_ingest_commit(in, &e), -EP_EDIGEST);
  assert_false(partial_exists(f, &d2, NULL));
  assert_int_equal(store_has(f->s, &d2, NULL, &e), 0);
  free(b);
  free(b2);
}

static void test_abort_and_reset(void **state) {
  struct fx *f = *state;
  digest_t d, junk_d;
  size_t len = 200000;
  unsigned char *b = make_data(6, len, &d);
  unsigned char *junk = make_data(7, len, &junk_d);
  store_ingest *in = NULL;
  ep_err e = {0};
  assert_int_equal(store_ingest_begin(f->s, &d, &in, &e), 0);
  write_chunks(in, junk, len / 3, 1);
  store_ingest_abort(in, false);
  assert_false(partial_exists(f, &d, NULL));
  store_ingest_abort(NULL, false);

  assert_int_equal(store_ingest_begin(f->s, &d, &in, &e), 0);
  assert_int_equal(store_ingest_offset(in), 0);
  write_chunks(in, junk, len, 3);
  assert_int_equal(store_ingest_reset(in, &e), 0);
  assert_int_equal(store_ingest_offset(in), 0);
  off_t psize = 1;
  assert_true(partial_exists(f, &d, &psize));
  assert_int_equal(psize, 0);
  write_chunks(in, b, len, 5);
  assert_int_equal(store_ingest_commit(in, &e), 0);
  assert_blob_content(f, &d, b, len);
  free(b);
  free(junk);
}

static void test_put_and_read_all(void **state) {
  struct fx *f = *state;
  static const char manifest[] = "{\"schemaVersion\":2,\"layers\":[]}";
  digest_t d, wrong;
  digest_buffer(manifest, strlen(manifest), &d);
  digest_buffer("x", 1, &wrong);
  ep_err e = {0};
  assert_int_equal(store_put(f->s, &wrong, manifest, strlen(manifest), &e), -EP_EDIGEST);
  assert_non_null(strstr(e.msg, wrong.hex));
  assert_non_null(strstr(e.msg, d.hex));
  assert_int_equal(store_has(f->s, &wrong, NULL, &e), 0);
  assert_int_equal(store_has(f->s, &d, NULL, &e), 0);

  assert_int_equal(store_put(f->s, &d, manifest, strlen(manifest), &e), 0);
  assert_int_equal(store_put(f->s, &d, manifest, strlen(manifest), &e), 0); /* idempotent */
  assert_int_equal(count_ingest_entries(f), 0);                             /* no temp left */
  assert_blob_content(f, &d, (const unsigned char *)manifest, strlen(manifest));

  void *buf = NULL;
  size_t len = 0;
  assert_int_equal(store_read_all(f->s, &d, 4096, &buf, &len, &e), 0);
  assert_int_equal(len, strlen(manifest));
  assert_memory_equal(buf, manifest, len);
  free(buf);
  buf = NULL;
  assert_int_equal(store_read_all(f->s, &d, len, &buf, &len, &e), 0);
  free(buf);
  buf = NULL;
  assert_int_equal(store_read_all(f->s, &d, strlen(manifest) - 1, &buf, &len, &e), -EP_ETOOBIG);
  assert_null(buf);
  assert_int_equal(store_read_all(f->s, &wrong, 4096, &buf, &len, &e), -EP_ENOTFOUND);
  assert_null(buf);
}

static void test_reader_survives_commit(void **state) {
  struct fx *f = *state;
  digest_t d;
  size_t len = 512 * 1024, part = 100000;
  unsigned char *b = make_data(8, len, &d);
  store_ingest *in = NULL;
  ep_err e = {0};
  assert_int_equal(store_ingest_begin(f->s, &d, &in, &e), 0);
  write_chunks(in, b, part, 3);
  int rfd = store_ingest_open_reader(in, &e);
  assert_true(rfd >= 0);
  write_chunks(in, b + part, len - part, 5);
  assert_int_equal(store_ingest_commit(in, &e), 0);
  unsigned char *got = malloc(len);
  assert_non_null(got);
  assert_int_equal(pread(rfd, got, len, 0), (ssize_t)len);
  assert_memory_equal(got, b, len);
  free(got);
  close(rfd);
  free(b);
}

static void test_double_ingest(void **state) {
  struct fx *f = *state;
  digest_t d;
  size_t len = 50000;
  unsigned char *b = make_data(9, len, &d);
  store_ingest *a = NULL, *c = NULL;
  ep_err e = {0};
  assert_int_equal(store_ingest_begin(f->s, &d, &a, &e), 0);
  write_chunks(a, b, 1000, 1);
  /* Single flight is the caller's job; the store refuses, never mixes. */
  assert_true(store_ingest_begin(f->s, &d, &c, &e) < 0);
  assert_non_null(strstr(e.msg, "another ingest"));
  write_chunks(a, b + 1000, len - 1000, 2);
  assert_int_equal(store_ingest_commit(a, &e), 0);
  assert_blob_content(f, &d, b, len);
  free(b);
}

struct visit {
  int n;
  int stop_after;
  uint64_t total;
};

static int visit_cb(const digest_t *d, uint64_t size, void *ud) {
  struct visit *v = ud;
  assert_int_equal(strlen(d->hex), DIGEST_HEX_LEN);
  v->n++;
  v->total += size;
  return v->stop_after > 0 && v->n >= v->stop_after;
}

static void plant(int dfd, const char *name) {
  int fd = openat(dfd, name, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "junk", 4), 4);
  close(fd);
}

static void test_foreach_skips_junk(void **state) {
  struct fx *f = *state;
  ep_err e = {0};
  uint64_t want_total = 0;
  for (int i = 0; i < 3; i++) {
    digest_t d;
    size_t len = 1000u * (size_t)(i + 1);
    unsigned char *b = make_data(20 + (uint64_t)i, len, &d);
    assert_int_equal(store_put(f->s, &d, b, len, &e), 0);
    want_total += len;
    free(b);
  }
  int bfd = openat(store_dirfd(f->s), "blobs/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(bfd >= 0);
  plant(bfd, "README");
  plant(bfd, "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855");
  plant(bfd, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85");
  plant(bfd, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.tmp");
  plant(bfd, ".e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85");
  /* Valid names that are not regular files are skipped too. */
  assert_int_equal(
      mkdirat(bfd, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 0755), 0);
  assert_int_equal(
      symlinkat("README", bfd, "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3"),
      0);
  struct visit v = {0};
  assert_int_equal(store_foreach_blob(f->s, visit_cb, &v, &e), 0);
  assert_int_equal(v.n, 3);
  assert_int_equal(v.total, want_total);
  struct visit stop = {.stop_after = 1};
  assert_int_equal(store_foreach_blob(f->s, visit_cb, &stop, &e), 0);
  assert_int_equal(stop.n, 1);

  /* A planted symlink or directory under a blob name is an error, not a
   * blob, and never followed. */
  digest_t sym, dir;
  assert_int_equal(
      digest_parse_hex("a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3", &sym,
                       &e),
      0);
  assert_int_equal(
      digest_parse_hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", &dir,
                       &e),
      0);
  int fd = -1;
  assert_true(store_open_blob(f->s, &sym, &fd, NULL, &e) < 0);
  assert_true(store_has(f->s, &sym, NULL, &e) < 0);
  assert_true(store_open_blob(f->s, &dir, &fd, NULL, &e) < 0);
  close(bfd);
}

static void test_hostile_partial_symlink(void **state) {
  struct fx *f = *state;
  char outside[64];
  assert_int_equal(ep_test_tmpdir(outside, sizeof outside, "ep-test-outside-"), 0);
  char target[128];
  snprintf(target, sizeof target, "%s/victim", outside);
  int tfd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  assert_true(tfd >= 0);
  assert_int_equal(write(tfd, "precious", 8), 8);
  close(tfd);

  digest_t d;
  size_t len = 4096;
  unsigned char *b = make_data(30, len, &d);
  char name[128];
  snprintf(name, sizeof name, "%s.partial", d.hex);
  int dfd = ingest_fd(f);
  assert_int_equal(symlinkat(target, dfd, name), 0);
  store_ingest *in = NULL;
  ep_err e = {0};
  assert_true(store_ingest_begin(f->s, &d, &in, &e) < 0);
  assert_true(e.msg[0] != '\0');
  struct stat st;
  assert_int_equal(stat(target, &st), 0);
  assert_int_equal(st.st_size, 8);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(unlinkat(dfd, name, 0), 0);

  /* A partial left read-only by a crash between chmod and rename resumes. */
  int pfd = openat(dfd, name, O_CREAT | O_WRONLY | O_CLOEXEC, 0444);
  assert_true(pfd >= 0);
  assert_int_equal(write(pfd, b, 100), 100);
  close(pfd);
  assert_int_equal(store_ingest_begin(f->s, &d, &in, &e), 0);
  assert_int_equal(store_ingest_offset(in), 100);
  write_chunks(in, b + 100, len - 100, 3);
  assert_int_equal(store_ingest_commit(in, &e), 0);
  assert_blob_content(f, &d, b, len);
  close(dfd);
  rm_rf(outside);
  free(b);
}

/* A write that cannot complete (here the file size limit, as a stand-in
 * for a full disk) fails cleanly; offset and hash keep matching the bytes
 * that did land, so the partial resumes and commits correctly. */
static void test_write_failure_resumes(void **state) {
  struct fx *f = *state;
  digest_t d;
  size_t len = 20000, limit = 5000;
  unsigned char *b = make_data(50, len, &d);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = limit, .rlim_max = limit};
    store_ingest *in = NULL;
    ep_err e = {0};
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0 || store_ingest_begin(f->s, &d, &in, &e) < 0)
      _exit(10);
    int r = store_ingest_write(in, b, len, &e);
    if (r >= 0 || e.sys_errno != EFBIG)
      _exit(11);
    if (store_ingest_offset(in) != limit)
      _exit(12);
    store_ingest_abort(in, true);
    _exit(0);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  store_ingest *in = NULL;
  ep_err e = {0};
  assert_int_equal(store_ingest_begin(f->s, &d, &in, &e), 0);
  assert_int_equal(store_ingest_offset(in), limit);
  write_chunks(in, b + limit, len - limit, 4);
  assert_int_equal(store_ingest_commit(in, &e), 0);
  assert_blob_content(f, &d, b, len);
  free(b);
}

/* The 0444-partial resume again without root's privilege to ignore modes
 * (the daemon may run as its own user): in a child with a plain uid. */
static int readonly_partial_child(void) {
  char dir[64];
  if (ep_test_tmpdir(dir, sizeof dir, "ep-test-store-ro-") < 0)
    return 10;
  int rc = 0;
  store *s = NULL;
  ep_err e = {0};
  digest_t d;
  size_t len = 10000;
  unsigned char *b = make_data(40, len, &d);
  char name[128];
  snprintf(name, sizeof name, "ingest/%s.partial", d.hex);
  if (store_open(dir, &s, &e) < 0) {
    rc = 11;
    goto out;
  }
  int pfd = openat(store_dirfd(s), name, O_CREAT | O_WRONLY | O_CLOEXEC, 0444);
  if (pfd < 0 || write(pfd, b, 300) != 300)
    rc = 12;
  if (pfd >= 0)
    close(pfd);
  store_ingest *in = NULL;
  if (rc == 0 && store_ingest_begin(s, &d, &in, &e) < 0) {
    fprintf(stderr, "begin: %s\n", e.msg);
    rc = 13;
  }
  if (rc == 0 && store_ingest_offset(in) != 300)
    rc = 14;
  if (rc == 0 && store_ingest_write(in, b + 300, len - 300, &e) < 0)
    rc = 15;
  if (in != NULL && store_ingest_commit(in, &e) < 0 && rc == 0)
    rc = 16;
  uint64_t size = 0;
  if (rc == 0 && (store_has(s, &d, &size, &e) != 1 || size != len))
    rc = 17;
out:
  store_close(s);
  free(b);
  rm_rf(dir);
  return rc;
}

static void test_readonly_partial_unprivileged(void **state) {
  (void)state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (getuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
      _exit(20);
    _exit(readonly_partial_child());
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* verify before commit: complete() says whether the bytes so far are the
 * blob, verify() checks without touching the disk and refuses more bytes,
 * commit() then only makes it durable. A mismatch drops the partial. */
static void test_verify_then_commit(void **state) {
  struct fx *f = *state;
  digest_t d;
  size_t len = 100 * 1024 + 7;
  unsigned char *b = make_data(31, len, &d);
  store_ingest *in = NULL;
  ep_err e = {0};
  assert_int_equal(store_ingest_begin(f->s, &d, &in, &e), 0);
  assert_int_equal(store_ingest_write(in, b, len - 1, &e), 0);
  assert_false(store_ingest_complete(in));
  assert_int_equal(store_ingest_write(in, b + len - 1, 1, &e), 0);
  assert_true(store_ingest_complete(in));
  assert_int_equal(store_ingest_verify(in, &e), 0);
  assert_true(store_ingest_write(in, b, 1, &e) < 0); /* nothing after verification */
  assert_int_equal(store_has(f->s, &d, NULL, &e), 0);
  assert_int_equal(store_ingest_commit(in, &e), 0);
  assert_blob_content(f, &d, b, len);

  digest_t d2;
  unsigned char *b2 = make_data(32, len, &d2);
  assert_int_equal(store_ingest_begin(f->s, &d2, &in, &e), 0);
  assert_int_equal(store_ingest_write(in, b, len, &e), 0); /* the wrong bytes */
  assert_int_equal(store_ingest_verify(in, &e), -EP_EDIGEST);
  store_ingest_abort(in, false);
  assert_false(partial_exists(f, &d2, NULL));
  free(b);
  free(b2);
}

static int count_cb(const digest_t *d, uint64_t size, void *ud) {
  (void)d;
  (void)size;
  (*(int *)ud)++;
  return 0;
}

/* A crash after the last byte (or during the commit) leaves a complete
 * partial: at start it is committed without a request; a real partial
 * stays for resuming. */
static void test_recover_partials(void **state) {
  struct fx *f = *state;
  digest_t full, half;
  size_t len = 64 * 1024 + 5;
  unsigned char *a = make_data(41, len, &full);
  unsigned char *h = make_data(42, len, &half);
  store_ingest *in = NULL;
  ep_err e = {0};
  assert_int_equal(store_ingest_begin(f->s, &full, &in, &e), 0);
  assert_int_equal(store_ingest_write(in, a, len, &e), 0);
  store_ingest_abort(in, true);
  assert_int_equal(store_ingest_begin(f->s, &half, &in, &e), 0);
  assert_int_equal(store_ingest_write(in, h, len / 2, &e), 0);
  store_ingest_abort(in, true);
  int n = 0;
  assert_int_equal(store_recover_partials(f->s, count_cb, &n, &e), 0);
  assert_int_equal(n, 1);
  assert_blob_content(f, &full, a, len);
  assert_false(partial_exists(f, &full, NULL));
  off_t size = 0;
  assert_true(partial_exists(f, &half, &size));
  assert_int_equal(size, (off_t)(len / 2));
  assert_int_equal(store_has(f->s, &half, NULL, &e), 0);
  free(a);
  free(h);
}

/* Disk full on a 256 KiB tmpfs: the write fails with EP_ENOSPC, dropping
 * the partial frees the space, and the store keeps working. */
static void test_disk_full(void **state) {
  struct fx *f = *state;
  (void)f;
  char dir[64], cmd[256];
  assert_int_equal(ep_test_tmpdir(dir, sizeof dir, "ep-test-full-"), 0);
  snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=256k edgepull-test %s 2>/dev/null", dir);
  if (system(cmd) != 0) {
    rmdir(dir);
    skip(); /* needs root */
  }
  store *s = NULL;
  ep_err e = {0};
  assert_int_equal(store_open(dir, &s, &e), 0);
  digest_t d, small;
  size_t len = 1024 * 1024;
  unsigned char *b = make_data(51, len, &d);
  unsigned char *sb = make_data(52, 1000, &small);
  store_ingest *in = NULL;
  assert_int_equal(store_ingest_begin(s, &d, &in, &e), 0);
  int r = 0;
  for (size_t off = 0; off < len && r == 0; off += 64 * 1024)
    r = store_ingest_write(in, b + off, 64 * 1024, &e);
  assert_int_equal(r, -EP_ENOSPC);
  store_ingest_abort(in, false);
  assert_int_equal(store_put(s, &small, sb, 1000, &e), 0);
  assert_int_equal(store_has(s, &small, NULL, &e), 1);
  store_close(s);
  free(b);
  free(sb);
  snprintf(cmd, sizeof cmd, "umount %s && rmdir %s", dir, dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_open_layout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ingest_commit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_empty_blob, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mismatch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
      cmocka_unit_test_setup_teardown(test_abort_and_reset, setup, teardown),
      cmocka_unit_test_setup_teardown(test_verify_then_commit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_recover_partials, setup, teardown),
      cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
      cmocka_unit_test_setup_teardown(test_put_and_read_all, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reader_survives_commit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_double_ingest, setup, teardown),
      cmocka_unit_test_setup_teardown(test_foreach_skips_junk, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hostile_partial_symlink, setup, teardown),
      cmocka_unit_test_setup_teardown(test_write_failure_resumes, setup, teardown),
      cmocka_unit_test(test_readonly_partial_unprivileged),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
