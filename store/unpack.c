/* The unpacker's stream: two libarchive readers in a chain.
 *
 *   source (read callback) -> outer reader: gzip/zstd filters + "raw"
 *   format, i.e. just decompression (none for a plain tar) -> our buffer,
 *   hashed into the diffID and counted against the size limit -> inner
 *   reader: tar format only, no filters -> entries applied by unpack_entry.c
 *
 * Splitting decompression from tar parsing is what lets us hash exactly the
 * uncompressed bytes: libarchive does not expose the filtered stream of a
 * tar reader. After the tar's end-of-archive the rest of the uncompressed
 * stream (the tar's block padding) is drained through the hash too, since
 * the diffID covers every byte.
 *
 * Only the gzip and zstd filters are enabled: support_filter_all would let
 * a hostile blob run external programs (lrzip, lzop, grzip) and decoders
 * no OCI layer uses. Memory is two fixed 64 KiB buffers plus libarchive's
 * own bounded state; a directory list (bounded) keeps the directories
 * whose times are restored at the end, after their contents were written,
 * as containerd does. */
#include "store/unpack.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "store/archive_dl.h"
#include "store/unpack_fs.h"

#define UNPACK_BUF (64 * 1024)
#define UNPACK_DIRS_BUDGET (64u << 20) /* bytes of directory names kept for the end */

struct dir_time {
  char *path;
  struct timespec ts[2];
};

struct unpack_run {
  unpack_read_fn rd;
  void *ud;
  struct archive *outer;
  struct archive *inner;
  digest_ctx *hash;
  unsigned char *inbuf;
  unsigned char *midbuf;
  bool stream_eof;
  uint64_t compressed, bytes, sizes, entries;
  unpack_limits lim;
  ep_err stream_err; /* set by a callback: the source failed, or a limit */
  struct unpack_fs fs;
  struct dir_time *dirs;
  size_t ndirs, capdirs, dirbytes;
  char *name; /* max_name + 1 bytes */
};

static la_ssize_t outer_read(struct archive *a, void *cd, const void **buf) {
  struct unpack_run *u = cd;
  long n = u->rd(u->ud, u->inbuf, UNPACK_BUF);
  if (n < 0) {
    int code = -n > 0 && -n <= EP_ECANCELED ? (int)-n : EP_EIO;
    ep_error(&u->stream_err, code, "the layer's source failed (%s)", ep_errcode_name(code));
    archive_set_error(a, EIO, "source failed");
    return ARCHIVE_FATAL;
  }
  u->compressed += (uint64_t)n;
  *buf = u->inbuf;
  return n;
}

static la_ssize_t inner_read(struct archive *a, void *cd, const void **buf) {
  struct unpack_run *u = cd;
  if (u->stream_eof)
    return 0;
  la_ssize_t n = archive_read_data(u->outer, u->midbuf, UNPACK_BUF);
  if (n < 0) {
    if (u->stream_err.code == 0)
      ep_error(&u->stream_err, EP_EINVAL, "decompressing the layer: %s",
               archive_error_string(u->outer));
    archive_set_error(a, EIO, "decompression failed");
    return ARCHIVE_FATAL;
  }
  if (n == 0) {
    u->stream_eof = true;
    return 0;
  }
  u->bytes += (uint64_t)n;
  if (u->bytes > u->lim.max_bytes) {
    ep_error(&u->stream_err, EP_ETOOBIG, "layer larger than the limit of %llu bytes uncompressed",
             (unsigned long long)u->lim.max_bytes);
    archive_set_error(a, EFBIG, "too big");
    return ARCHIVE_FATAL;
  }
  digest_ctx_update(u->hash, u->midbuf, (size_t)n);
  *buf = u->midbuf;
  return n;
}

static void fill_limits(unpack_limits *l, const unpack_opts *o) {
  *l = o != NULL ? o->limits : (unpack_limits){0};
  if (l->max_entries == 0)
    l->max_entries = UNPACK_DEFAULT_MAX_ENTRIES;
  if (l->max_bytes == 0)
    l->max_bytes = UNPACK_DEFAULT_MAX_BYTES;
  if (l->max_name == 0)
    l->max_name = UNPACK_DEFAULT_MAX_NAME;
  if (l->max_xattr == 0 || l->max_xattr > UNPACK_XATTR_BUF)
    l->max_xattr = UNPACK_DEFAULT_MAX_XATTR;
}

static int run_open(struct unpack_run *u, ep_err *err) {
  int r = archive_dl_load(err);
  if (r < 0)
    return r;
  u->hash = digest_ctx_new();
  u->inbuf = malloc(UNPACK_BUF);
  u->midbuf = malloc(UNPACK_BUF);
  u->fs.xbuf = malloc(UNPACK_XATTR_BUF);
  u->fs.lbuf = malloc(UNPACK_XATTR_BUF);
  u->name = malloc(u->lim.max_name + 1);
  u->outer = archive_read_new();
  u->inner = archive_read_new();
  if (u->hash == NULL || u->inbuf == NULL || u->midbuf == NULL || u->fs.xbuf == NULL ||
      u->fs.lbuf == NULL || u->name == NULL || u->outer == NULL || u->inner == NULL)
    return ep_error(err, EP_EIO, "out of memory");
  /* ARCHIVE_WARN means an external program would be run: refused. */
  if (archive_read_support_filter_gzip(u->outer) != ARCHIVE_OK ||
      archive_read_support_filter_zstd(u->outer) != ARCHIVE_OK ||
      archive_read_support_format_raw(u->outer) != ARCHIVE_OK ||
      archive_read_support_format_tar(u->inner) != ARCHIVE_OK ||
      archive_read_support_format_empty(u->inner) != ARCHIVE_OK)
    return ep_error(err, EP_EUNSUPPORTED, "libarchive lacks built-in gzip/zstd/tar");
  /* The raw format refuses a zero-byte stream: that is an empty layer. */
  struct archive_entry *raw;
  r = archive_read_open(u->outer, u, NULL, outer_read, NULL);
  if (r == ARCHIVE_OK)
    r = archive_read_next_header(u->outer, &raw);
  if (r == ARCHIVE_EOF || (r < ARCHIVE_WARN && u->compressed == 0 && u->stream_err.code == 0))
    u->stream_eof = true;
  else if (r < ARCHIVE_WARN)
    return u->stream_err.code != 0 ? ep_error(err, u->stream_err.code, "%s", u->stream_err.msg)
                                   : ep_error(err, EP_EINVAL, "%s", archive_error_string(u->outer));
  if (archive_read_open(u->inner, u, NULL, inner_read, NULL) != ARCHIVE_OK)
    return u->stream_err.code != 0
               ? ep_error(err, u->stream_err.code, "%s", u->stream_err.msg)
               : ep_error(err, EP_EINVAL, "not a tar: %s", archive_error_string(u->inner));
  return 0;
}

static void run_close(struct unpack_run *u) {
  if (u->inner != NULL)
    archive_read_free(u->inner);
  if (u->outer != NULL)
    archive_read_free(u->outer);
  digest_ctx_free(u->hash);
  free(u->inbuf);
  free(u->midbuf);
  free(u->fs.xbuf);
  free(u->fs.lbuf);
  free(u->name);
  for (size_t i = 0; i < u->ndirs; i++)
    free(u->dirs[i].path);
  free(u->dirs);
}

static int remember_dir(struct unpack_run *u, struct archive_entry *ae, ep_err *err) {
  size_t len = strlen(u->name) + 1;
  if (u->dirbytes + len > UNPACK_DIRS_BUDGET)
    return ep_error(err, EP_ETOOBIG, "%s: too many directory names (over %u bytes)", u->name,
                    UNPACK_DIRS_BUDGET);
  if (u->ndirs == u->capdirs) {
    size_t cap = u->capdirs == 0 ? 64 : u->capdirs * 2;
    struct dir_time *d = realloc(u->dirs, cap * sizeof *d);
    if (d == NULL)
      return ep_error(err, EP_EIO, "out of memory");
    u->dirs = d;
    u->capdirs = cap;
  }
  struct dir_time *d = &u->dirs[u->ndirs];
  d->path = strdup(u->name);
  if (d->path == NULL)
    return ep_error(err, EP_EIO, "out of memory");
  unpack_entry_times(ae, d->ts);
  u->ndirs++;
  u->dirbytes += len;
  return 0;
}

static int restore_dir_times(struct unpack_run *u, ep_err *err) {
  for (size_t i = 0; i < u->ndirs; i++) {
    char *path = u->dirs[i].path;
    char *slash = strrchr(path, '/');
    if (slash != NULL)
      *slash = '\0';
    ep_cleanup_close int pfd = unpack_fs_open_dir(&u->fs, slash != NULL ? path : "", false, err);
    if (slash != NULL)
      *slash = '/';
    if (pfd < 0)
      return ep_wrap(err, "%s: restoring times", path);
    if (utimensat(pfd, slash != NULL ? slash + 1 : path, u->dirs[i].ts, AT_SYMLINK_NOFOLLOW) < 0)
      return ep_syserror(err, EP_EIO, "%s: restoring times", path);
  }
  return 0;
}

/* Checks an entry against the limits and cleans its name into u->name. */
static int check_entry(struct unpack_run *u, struct archive_entry *ae, ep_err *err) {
  const char *name = archive_entry_pathname(ae);
  if (name == NULL)
    return ep_error(err, EP_EINVAL, "entry %llu has no name", (unsigned long long)u->entries);
  if (++u->entries > u->lim.max_entries)
    return ep_error(err, EP_ETOOBIG, "%.200s: over the limit of %llu entries", name,
                    (unsigned long long)u->lim.max_entries);
  size_t len = strlen(name);
  if (len > u->lim.max_name)
    return ep_error(err, EP_ETOOBIG, "%.200s...: name of %zu bytes over the limit of %zu", name,
                    len, u->lim.max_name);
  const char *links[2] = {archive_entry_hardlink(ae), archive_entry_symlink(ae)};
  for (int i = 0; i < 2; i++) {
    if (links[i] != NULL && strlen(links[i]) > u->lim.max_name)
      return ep_error(err, EP_ETOOBIG, "%.200s: link target of %zu bytes over the limit of %zu",
                      name, strlen(links[i]), u->lim.max_name);
  }
  uint64_t size = archive_entry_size_is_set(ae) && archive_entry_size(ae) > 0
                      ? (uint64_t)archive_entry_size(ae)
                      : 0;
  u->sizes += size;
  if (size > u->lim.max_bytes || u->sizes > u->lim.max_bytes)
    return ep_error(err, EP_ETOOBIG, "%.200s: entry sizes over the limit of %llu bytes", name,
                    (unsigned long long)u->lim.max_bytes);
  int r = unpack_clean_name(name, u->name, err);
  return r < 0 ? ep_wrap(err, "%.200s", name) : 0;
}

/* An error while libarchive was reading: the callback's cause if any. */
static int stream_error(struct unpack_run *u, const char *what, ep_err *err) {
  if (u->stream_err.code != 0) {
    if (err != NULL)
      *err = u->stream_err;
    return ep_wrap(err, "%s", what);
  }
  return ep_error(err, EP_EINVAL, "%s: %s", what, archive_error_string(u->inner));
}

static int run_entries(struct unpack_run *u, ep_err *err) {
  for (;;) {
    struct archive_entry *ae;
    int r = archive_read_next_header(u->inner, &ae);
    if (r == ARCHIVE_EOF)
      break;
    if (r < ARCHIVE_WARN)
      return stream_error(u, "reading the tar", err);
    r = check_entry(u, ae, err);
    if (r < 0)
      return r;
    if (u->name[0] == '\0')
      continue; /* the root itself: ignored, as containerd does */
    r = unpack_entry_apply(&u->fs, u->inner, ae, u->name, err);
    if (r < 0 && u->stream_err.code != 0)
      return stream_error(u, u->name, err);
    if (r < 0)
      return r;
    if (r == 1 && (r = remember_dir(u, ae, err)) < 0)
      return r;
  }
  /* Hash the padding after the end-of-archive marker, up to the end. */
  const void *buf;
  la_ssize_t n;
  while ((n = inner_read(u->inner, u, &buf)) > 0)
    ;
  if (n < 0)
    return stream_error(u, "reading past the end of the tar", err);
  return restore_dir_times(u, err);
}

int unpack_stream(int dirfd, unpack_read_fn rd, void *ud, const unpack_opts *opts,
                  const digest_t *expect_diffid, unpack_result *res, ep_err *err) {
  struct unpack_run u = {.rd = rd, .ud = ud};
  fill_limits(&u.lim, opts);
  u.fs = (struct unpack_fs){
      .root = dirfd,
      .no_openat2 = opts != NULL && (opts->flags & UNPACK_NO_OPENAT2) != 0,
      .parents = opts != NULL ? opts->parent_fds : NULL,
      .n_parents = opts != NULL && opts->parent_fds != NULL ? opts->n_parents : 0,
      .lim = &u.lim,
  };
  int r = run_open(&u, err);
  if (r == 0)
    r = run_entries(&u, err);
  digest_t got = {{0}};
  if (u.hash != NULL)
    digest_ctx_final(u.hash, &got);
  run_close(&u);
  if (r < 0)
    return ep_wrap(err, "unpack");
  if (res != NULL)
    *res = (unpack_result){
        .diffid = got, .entries = u.entries, .bytes = u.bytes, .compressed = u.compressed};
  if (expect_diffid != NULL && !digest_equal(expect_diffid, &got))
    return ep_error(err, EP_EDIGEST, "unpack: diffID sha256:%s, expected sha256:%s", got.hex,
                    expect_diffid->hex);
  return 0;
}

long unpack_read_fd(void *ud, void *buf, size_t len) {
  unpack_fd_src *s = ud;
  for (;;) {
    ssize_t n = read(s->fd, buf, len);
    if (n >= 0)
      return n;
    if (errno != EINTR)
      return -EP_EIO;
  }
}

long unpack_read_pipe(void *ud, void *buf, size_t len) {
  unpack_pipe_src *s = ud;
  long n = pipe_read(s->pipe, s->off, buf, len, s->timeout_ms);
  if (n > 0)
    s->off += (uint64_t)n;
  return n >= 0 ? n : -EP_EIO;
}

int unpack_fd(int dirfd, int srcfd, const unpack_opts *opts, const digest_t *expect_diffid,
              unpack_result *res, ep_err *err) {
  unpack_fd_src s = {.fd = srcfd};
  return unpack_stream(dirfd, unpack_read_fd, &s, opts, expect_diffid, res, err);
}

int unpack_pipe(int dirfd, blob_pipe *p, int timeout_ms, const unpack_opts *opts,
                const digest_t *expect_diffid, unpack_result *res, ep_err *err) {
  unpack_pipe_src s = {.pipe = p, .timeout_ms = timeout_ms};
  return unpack_stream(dirfd, unpack_read_pipe, &s, opts, expect_diffid, res, err);
}

int unpack_remove_tree(int dirfd, const char *name, ep_err *err) {
  int r = unpack_fs_remove_all(dirfd, name);
  if (r < 0) {
    errno = -r;
    return ep_syserror(err, EP_EIO, "unpack: removing %s", name);
  }
  return 0;
}
