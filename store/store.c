/* The content-addressed blob store.
 *
 * Why: every byte edgepull serves must be exactly what its digest names,
 * even after power loss in the middle of a write, and no name a client sends
 * may reach a file outside the state directory.
 *
 * How: the store keeps O_DIRECTORY fds on <root>, <root>/blobs/sha256 and
 * <root>/ingest, and touches files only with *at() calls relative to them,
 * with O_NOFOLLOW, under names built from validated digests (64 lowercase
 * hex) — so there is no path a client controls. A blob is written into
 * ingest/<hex>.partial while being hashed; commit compares the digest,
 * fsyncs, makes the file 0444, renames it into blobs/sha256/<hex> and fsyncs
 * both directories: a file in blobs/ is always complete and verified.
 *
 * Resume: a partial left by a crash or a failed source is opened again
 * (never O_EXCL, that would forbid resuming), its bytes re-hashed in 64 KiB
 * chunks, and writing continues at its end.
 *
 * Concurrent ingests of one digest: callers prevent them (single flight in
 * the pipe table), but the store must stay correct if it happens anyway (a
 * bug, or two daemons on one state dir). An ingest holds flock(LOCK_EX) on
 * its partial's open file description for its whole life; a second ingest
 * of the same digest fails cleanly instead of interleaving its writes with
 * ours. After taking the lock we check that the name still points to the
 * inode we locked (the holder may have renamed or unlinked it meanwhile) and
 * retry otherwise, so a late opener never appends to a committed blob.
 *
 * Threads: a store is shared; its fds are read-only after store_open. An
 * ingest belongs to one thread at a time. */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"

#define STORE_HASH_CHUNK (64 * 1024)
#define STORE_DIR_MODE 0755
#define STORE_PARTIAL_MODE 0644
#define STORE_BLOB_MODE 0444
#define STORE_PARTIAL_SUFFIX ".partial"
#define STORE_OPEN_TRIES 8
/* Write-behind: every STORE_WRITEBEHIND bytes an ingest asks the kernel to
 * start writing back what it wrote (sync_file_range(SYNC_FILE_RANGE_WRITE),
 * which does not wait for the disk), so the commit's fsync finds at most
 * that much dirty instead of the whole blob. On an SD card (~20 MiB/s) the
 * page cache otherwise holds tens of MB when the last byte arrives, and a
 * node's commit, hence its deploy's `done`, waited ~0.9 s for them; the card
 * is faster than a 100 Mbit/s port, so writing behind the transfer costs it
 * nothing. It also keeps a Pi's page cache from filling with dirty pages. */
#define STORE_WRITEBEHIND (4u << 20)

struct store {
  int root_fd;
  int blobs_fd;
  int ingest_fd;
  char *root;
};

struct store_ingest {
  store *s;
  digest_t d;
  int fd;
  digest_ctx *ctx;
  uint64_t off;
  uint64_t written_back; /* bytes before it handed to write-back */
  bool verified;         /* store_ingest_verify passed: commit only makes it durable */
  char name[DIGEST_HEX_LEN + sizeof STORE_PARTIAL_SUFFIX];
};

/* mkdir -p for the root path itself (everything below it uses mkdirat). */
static int mkdir_p(const char *path, ep_err *err) {
  size_t n = strnlen(path, PATH_MAX);
  if (n == 0)
    return ep_error(err, EP_EINVAL, "store: empty state directory path");
  if (n >= PATH_MAX)
    return ep_error(err, EP_EINVAL, "store: state directory path too long");
  char buf[PATH_MAX];
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0')
      continue;
    char saved = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, STORE_DIR_MODE) < 0 && errno != EEXIST)
      return ep_syserror(err, EP_EIO, "store: cannot create directory %s", buf);
    buf[i] = saved;
  }
  return 0;
}

static int open_subdir(int parent, const char *name, const char *root, int *fd_out, ep_err *err) {
  if (mkdirat(parent, name, STORE_DIR_MODE) < 0 && errno != EEXIST)
    return ep_syserror(err, EP_EIO, "store: cannot create %s/%s", root, name);
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return ep_syserror(err, EP_EIO, "store: cannot open directory %s/%s", root, name);
  *fd_out = fd;
  return 0;
}

int store_open(const char *root, store **out, ep_err *err) {
  if (root == NULL)
    return ep_error(err, EP_EINVAL, "store: no state directory given");
  int r = mkdir_p(root, err);
  if (r < 0)
    return r;
  store *s = calloc(1, sizeof *s);
  if (s == NULL || (s->root = strdup(root)) == NULL) {
    free(s);
    return ep_error(err, EP_EINTERNAL, "store: out of memory");
  }
  s->blobs_fd = s->ingest_fd = -1;
  ep_cleanup_close int blobs_parent = -1;
  s->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s->root_fd < 0)
    r = ep_syserror(err, EP_EIO, "store: cannot open directory %s", root);
  if (r == 0)
    r = open_subdir(s->root_fd, "blobs", root, &blobs_parent, err);
  if (r == 0)
    r = open_subdir(blobs_parent, "sha256", root, &s->blobs_fd, err);
  if (r == 0)
    r = open_subdir(s->root_fd, "ingest", root, &s->ingest_fd, err);
  if (r < 0) {
    store_close(s);
    return r;
  }
  *out = s;
  return 0;
}

void store_close(store *s) {
  if (s == NULL)
    return;
  ep_closep(&s->root_fd);
  ep_closep(&s->blobs_fd);
  ep_closep(&s->ingest_fd);
  free(s->root);
  free(s);
}

int store_dirfd(const store *s) {
  return s->root_fd;
}

static int fsync_dir(int fd, const char *root, const char *what, ep_err *err) {
  if (fsync(fd) < 0)
    return ep_syserror(err, EP_EIO, "store: fsync %s/%s", root, what);
  return 0;
}

/* pwrite()s all of buf at off, retrying short writes and EINTR; *done is
 * the number of bytes that did land (also on error). */
static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off, size_t *done) {
  const char *p = buf;
  *done = 0;
  while (*done < len) {
    ssize_t n = pwrite(fd, p + *done, len - *done, (off_t)(off + *done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0) {
      errno = EIO;
      return -1;
    }
    *done += (size_t)n;
  }
  return 0;
}

/* 1 and the stat when blobs/sha256/<hex> is a regular file, 0 when absent. */
static int stat_blob(store *s, const digest_t *d, struct stat *st, ep_err *err) {
  if (fstatat(s->blobs_fd, d->hex, st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT)
      return 0;
    return ep_syserror(err, EP_EIO, "store: stat blob sha256:%s", d->hex);
  }
  if (!S_ISREG(st->st_mode))
    return ep_error(err, EP_EIO, "store: blob sha256:%s is not a regular file", d->hex);
  return 1;
}

int store_has(store *s, const digest_t *d, uint64_t *size, ep_err *err) {
  struct stat st;
  int r = stat_blob(s, d, &st, err);
  if (r == 1 && size != NULL)
    *size = (uint64_t)st.st_size;
  return r;
}

int store_open_blob(store *s, const digest_t *d, int *fd_out, uint64_t *size_out, ep_err *err) {
  ep_cleanup_close int fd = openat(s->blobs_fd, d->hex, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT)
    return ep_error(err, EP_ENOTFOUND, "blob sha256:%s is not in the store", d->hex);
  if (fd < 0)
    return ep_syserror(err, EP_EIO, "store: open blob sha256:%s", d->hex);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return ep_syserror(err, EP_EIO, "store: stat blob sha256:%s", d->hex);
  if (!S_ISREG(st.st_mode))
    return ep_error(err, EP_EIO, "store: blob sha256:%s is not a regular file", d->hex);
  if (size_out != NULL)
    *size_out = (uint64_t)st.st_size;
  *fd_out = ep_steal_fd(fd);
  return 0;
}

int store_remove(store *s, const digest_t *d, ep_err *err) {
  if (unlinkat(s->blobs_fd, d->hex, 0) < 0 && errno != ENOENT)
    return ep_syserror(err, EP_EIO, "store: remove blob sha256:%s", d->hex);
  return 0;
}

/* Writes a verified buffer to a uniquely named temp file in ingest/,
 * fsyncs it and renames it into blobs/: crash-safe, never half-visible. */
static int put_file(store *s, const digest_t *d, const void *buf, size_t len, ep_err *err) {
  uint64_t rnd = 0;
  if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    rnd = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)getpid();
  }
  char tmp[DIGEST_HEX_LEN + 32];
  snprintf(tmp, sizeof tmp, "%s.put.%016llx", d->hex, (unsigned long long)rnd);
  ep_cleanup_close int fd = openat(
      s->ingest_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, STORE_PARTIAL_MODE);
  if (fd < 0)
    return ep_syserror(err, EP_EIO, "store: create %s/ingest/%s", s->root, tmp);
  size_t done = 0;
  int r = 0;
  if (pwrite_all(fd, buf, len, 0, &done) < 0)
    r = ep_syserror(err, EP_EIO, "store: write %s/ingest/%s", s->root, tmp);
  else if (fsync(fd) < 0)
    r = ep_syserror(err, EP_EIO, "store: fsync %s/ingest/%s", s->root, tmp);
  else if (fchmod(fd, STORE_BLOB_MODE) < 0)
    r = ep_syserror(err, EP_EIO, "store: chmod %s/ingest/%s", s->root, tmp);
  else if (renameat(s->ingest_fd, tmp, s->blobs_fd, d->hex) < 0)
    r = ep_syserror(err, EP_EIO, "store: rename %s into blobs/sha256", tmp);
  if (r < 0) {
    unlinkat(s->ingest_fd, tmp, 0);
    return r;
  }
  return fsync_dir(s->blobs_fd, s->root, "blobs/sha256", err);
}

int store_put(store *s, const digest_t *d, const void *buf, size_t len, ep_err *err) {
  digest_t got;
  digest_buffer(buf, len, &got);
  if (!digest_equal(&got, d))
    return ep_error(err, EP_EDIGEST,
                    "store: content does not match its digest: expected sha256:%s, "
                    "got sha256:%s (%zu bytes)",
                    d->hex, got.hex, len);
  struct stat st;
  int r = stat_blob(s, d, &st, err);
  if (r != 0)
    return r < 0 ? r : 0; /* already stored: content addressed, nothing to do */
  return put_file(s, d, buf, len, err);
}

int store_read_all(store *s, const digest_t *d, size_t max, void **buf_out, size_t *len_out,
                   ep_err *err) {
  ep_cleanup_close int fd = -1;
  uint64_t size = 0;
  int r = store_open_blob(s, d, &fd, &size, err);
  if (r < 0)
    return r;
  if (size > max || size > SIZE_MAX - 1)
    return ep_error(err, EP_ETOOBIG, "blob sha256:%s is %llu bytes, more than the %zu allowed",
                    d->hex, (unsigned long long)size, max);
  ep_cleanup_free char *buf = malloc((size_t)size + 1);
  if (buf == NULL)
    return ep_error(err, EP_EINTERNAL, "store: out of memory reading sha256:%s", d->hex);
  size_t got = 0;
  while (got < size) {
    ssize_t n = pread(fd, buf + got, (size_t)size - got, (off_t)got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return ep_syserror(err, EP_EIO, "store: read blob sha256:%s", d->hex);
    if (n == 0)
      return ep_error(err, EP_EIO, "store: blob sha256:%s shrank while being read", d->hex);
    got += (size_t)n;
  }
  buf[got] = '\0'; /* convenience for text blobs; not counted in len */
  *len_out = got;
  *buf_out = ep_steal_ptr(buf);
  return 0;
}

/* ---- ingest ---- */

static void ingest_free(store_ingest *in) {
  ep_closep(&in->fd); /* also releases the flock */
  digest_ctx_free(in->ctx);
  free(in);
}

/* A partial left 0444 by a crash between chmod and rename: make it writable
 * again, through an fd so a symlink can never redirect the chmod. */
static int make_writable(store *s, const char *name, ep_err *err) {
  ep_cleanup_close int fd =
      openat(s->ingest_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0)
    return ep_syserror(err, EP_EIO, "store: open %s/ingest/%s", s->root, name);
  if (!S_ISREG(st.st_mode))
    return ep_error(err, EP_EIO, "store: %s/ingest/%s is not a regular file", s->root, name);
  if (fchmod(fd, STORE_PARTIAL_MODE) < 0)
    return ep_syserror(err, EP_EIO, "store: chmod %s/ingest/%s", s->root, name);
  return 0;
}

/* Opens and locks the partial; see the comment at the top on the retry. */
static int open_partial(store *s, const char *name, int *fd_out, ep_err *err) {
  bool chmodded = false;
  for (int tries = 0; tries < STORE_OPEN_TRIES; tries++) {
    ep_cleanup_close int fd =
        openat(s->ingest_fd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, STORE_PARTIAL_MODE);
    if (fd < 0 && errno == EACCES && !chmodded) {
      chmodded = true;
      int r = make_writable(s, name, err);
      if (r < 0)
        return r;
      continue;
    }
    if (fd < 0)
      return ep_syserror(err, EP_EIO, "store: open %s/ingest/%s", s->root, name);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
      if (errno == EWOULDBLOCK)
        return ep_error(err, EP_EINTERNAL, "store: %s/ingest/%s is being written by another ingest",
                        s->root, name);
      return ep_syserror(err, EP_EIO, "store: lock %s/ingest/%s", s->root, name);
    }
    struct stat mine, named;
    if (fstat(fd, &mine) < 0)
      return ep_syserror(err, EP_EIO, "store: stat %s/ingest/%s", s->root, name);
    if (!S_ISREG(mine.st_mode))
      return ep_error(err, EP_EIO, "store: %s/ingest/%s is not a regular file", s->root, name);
    if (fstatat(s->ingest_fd, name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
        named.st_dev == mine.st_dev && named.st_ino == mine.st_ino) {
      *fd_out = ep_steal_fd(fd);
      return 0;
    }
  }
  return ep_error(err, EP_EIO, "store: %s/ingest/%s keeps changing under us", s->root, name);
}

/* Re-hashes what a previous attempt left, so the final digest covers it. */
static int rehash_partial(store_ingest *in, ep_err *err) {
  ep_cleanup_free char *buf = malloc(STORE_HASH_CHUNK);
  if (buf == NULL)
    return ep_error(err, EP_EINTERNAL, "store: out of memory");
  for (;;) {
    ssize_t n = pread(in->fd, buf, STORE_HASH_CHUNK, (off_t)in->off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return ep_syserror(err, EP_EIO, "store: read %s/ingest/%s", in->s->root, in->name);
    if (n == 0)
      return 0;
    digest_ctx_update(in->ctx, buf, (size_t)n);
    in->off += (uint64_t)n;
  }
}

int store_ingest_begin(store *s, const digest_t *d, store_ingest **out, ep_err *err) {
  store_ingest *in = calloc(1, sizeof *in);
  if (in == NULL)
    return ep_error(err, EP_EINTERNAL, "store: out of memory");
  in->s = s;
  in->fd = -1;
  if (digest_parse_hex(d->hex, &in->d, err) < 0) {
    free(in);
    return ep_wrap(err, "store: ingest");
  }
  snprintf(in->name, sizeof in->name, "%s%s", in->d.hex, STORE_PARTIAL_SUFFIX);
  in->ctx = digest_ctx_new();
  int r = in->ctx == NULL ? ep_error(err, EP_EINTERNAL, "store: out of memory")
                          : open_partial(s, in->name, &in->fd, err);
  if (r == 0)
    r = rehash_partial(in, err);
  if (r < 0) {
    ingest_free(in);
    return r;
  }
  if (in->off > 0)
    ep_log_debug("store: resuming sha256:%s at %llu bytes", in->d.hex, (unsigned long long)in->off);
  in->written_back = in->off;
  *out = in;
  return 0;
}

uint64_t store_ingest_offset(const store_ingest *in) {
  return in->off;
}

int store_ingest_write(store_ingest *in, const void *buf, size_t len, ep_err *err) {
  if (len == 0)
    return 0;
  if (in->verified)
    return ep_error(err, EP_EINTERNAL, "store: sha256:%s is verified, no more bytes", in->d.hex);
  if ((uint64_t)len > (uint64_t)INT64_MAX - in->off)
    return ep_error(err, EP_ETOOBIG, "store: blob sha256:%s would exceed the largest file size",
                    in->d.hex);
  size_t done = 0;
  int r = pwrite_all(in->fd, buf, len, in->off, &done);
  int saved = errno;
  /* Hash exactly what landed, so offset and hash keep matching the file. */
  digest_ctx_update(in->ctx, buf, done);
  in->off += done;
  if (in->off - in->written_back >= STORE_WRITEBEHIND) {
    /* A hint: a failure here is the commit's fsync's to report. */
    (void)sync_file_range(in->fd, (off_t)in->written_back, (off_t)(in->off - in->written_back),
                          SYNC_FILE_RANGE_WRITE);
    in->written_back = in->off;
  }
  if (r < 0) {
    errno = saved;
    return ep_syserror(err, EP_EIO, "store: write %s/ingest/%s at %llu", in->s->root, in->name,
                       (unsigned long long)in->off);
  }
  return 0;
}

int store_ingest_reset(store_ingest *in, ep_err *err) {
  if (ftruncate(in->fd, 0) < 0)
    return ep_syserror(err, EP_EIO, "store: truncate %s/ingest/%s", in->s->root, in->name);
  digest_ctx_reset(in->ctx);
  in->off = 0;
  in->written_back = 0;
  in->verified = false;
  return 0;
}

int store_ingest_open_reader(store_ingest *in, ep_err *err) {
  ep_cleanup_close int fd = openat(in->s->ingest_fd, in->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return ep_syserror(err, EP_EIO, "store: open %s/ingest/%s for reading", in->s->root, in->name);
  struct stat a, b;
  if (fstat(fd, &a) < 0 || fstat(in->fd, &b) < 0)
    return ep_syserror(err, EP_EIO, "store: stat %s/ingest/%s", in->s->root, in->name);
  if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
    return ep_error(err, EP_EIO, "store: %s/ingest/%s was replaced during the ingest", in->s->root,
                    in->name);
  return ep_steal_fd(fd);
}

/* fsync, 0444, rename into blobs/, fsync both directories. */
static int publish_partial(store_ingest *in, ep_err *err) {
  store *s = in->s;
  if (fsync(in->fd) < 0)
    return ep_syserror(err, EP_EIO, "store: fsync %s/ingest/%s", s->root, in->name);
  if (fchmod(in->fd, STORE_BLOB_MODE) < 0)
    return ep_syserror(err, EP_EIO, "store: chmod %s/ingest/%s", s->root, in->name);
  if (renameat(s->ingest_fd, in->name, s->blobs_fd, in->d.hex) < 0) {
    int r =
        ep_syserror(err, EP_EIO, "store: rename %s/ingest/%s into blobs/sha256", s->root, in->name);
    if (fchmod(in->fd, STORE_PARTIAL_MODE) < 0) /* keep it resumable */
      ep_log_warn("store: cannot restore the mode of %s/ingest/%s", s->root, in->name);
    return r;
  }
  int r = fsync_dir(s->blobs_fd, s->root, "blobs/sha256", err);
  if (r == 0)
    r = fsync_dir(s->ingest_fd, s->root, "ingest", err);
  return r;
}

bool store_ingest_complete(const store_ingest *in) {
  if (in->verified)
    return true;
  digest_t got;
  digest_ctx_peek(in->ctx, &got);
  return digest_equal(&got, &in->d);
}

int store_ingest_verify(store_ingest *in, ep_err *err) {
  if (in->verified)
    return 0;
  digest_t got;
  digest_ctx_final(in->ctx, &got);
  if (!digest_equal(&got, &in->d)) {
    unlinkat(in->s->ingest_fd, in->name, 0);
    return ep_error(err, EP_EDIGEST,
                    "digest mismatch: expected sha256:%s, got sha256:%s over %llu bytes; "
                    "partial discarded",
                    in->d.hex, got.hex, (unsigned long long)in->off);
  }
  in->verified = true;
  return 0;
}

int store_ingest_commit(store_ingest *in, ep_err *err) {
  store *s = in->s;
  digest_t got = in->d;
  if (!in->verified)
    digest_ctx_final(in->ctx, &got);
  int r = 0;
  if (!digest_equal(&got, &in->d)) {
    unlinkat(s->ingest_fd, in->name, 0);
    r = ep_error(err, EP_EDIGEST,
                 "digest mismatch: expected sha256:%s, got sha256:%s over %llu bytes; "
                 "partial discarded",
                 in->d.hex, got.hex, (unsigned long long)in->off);
    ingest_free(in);
    return r;
  }
  struct stat st;
  r = stat_blob(s, &in->d, &st, err);
  if (r == 1) { /* committed meanwhile (another process?): ours is redundant */
    unlinkat(s->ingest_fd, in->name, 0);
    r = 0;
  } else if (r == 0) {
    r = publish_partial(in, err);
    if (r < 0 && err != NULL && err->code == EP_ENOSPC) /* do not keep the disk full */
      unlinkat(s->ingest_fd, in->name, 0);
  }
  ingest_free(in);
  return r;
}

void store_ingest_abort(store_ingest *in, bool keep_partial) {
  if (in == NULL)
    return;
  if (!keep_partial && unlinkat(in->s->ingest_fd, in->name, 0) < 0 && errno != ENOENT)
    ep_log_warn("store: cannot remove %s/ingest/%s: %s", in->s->root, in->name, strerror(errno));
  ingest_free(in);
}

/* One partial found at startup: committed when it holds the whole blob. */
static int recover_one(store *s, const char *name,
                       int (*cb)(const digest_t *d, uint64_t size, void *ud), void *ud) {
  digest_t d;
  size_t n = strlen(name);
  if (n != DIGEST_HEX_LEN + strlen(STORE_PARTIAL_SUFFIX) ||
      strcmp(name + DIGEST_HEX_LEN, STORE_PARTIAL_SUFFIX) != 0)
    return 0;
  char hex[DIGEST_HEX_LEN + 1];
  memcpy(hex, name, DIGEST_HEX_LEN);
  hex[DIGEST_HEX_LEN] = '\0';
  if (digest_parse_hex(hex, &d, NULL) < 0)
    return 0;
  store_ingest *in = NULL;
  ep_err e = {0};
  if (store_ingest_begin(s, &d, &in, &e) < 0) {
    ep_log_warn("store: recovering %s: %s", name, e.msg);
    return 0;
  }
  if (!store_ingest_complete(in)) {
    store_ingest_abort(in, true); /* a real partial: the next fetch resumes it */
    return 0;
  }
  uint64_t size = in->off;
  if (store_ingest_commit(in, &e) < 0) {
    ep_log_warn("store: committing the complete partial %s: %s", name, e.msg);
    return 0;
  }
  ep_log_info("store: committed sha256:%s (%llu bytes), complete in ingest/", d.hex,
              (unsigned long long)size);
  return cb != NULL ? cb(&d, size, ud) : 0;
}

/* A fresh open file description: a dup() would share the position with
 * dirfd and with every other iteration running at the same time. */
static int open_listing(store *s, int dirfd, const char *what, DIR **out, ep_err *err) {
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return ep_syserror(err, EP_EIO, "store: open %s/%s", s->root, what);
  *out = fdopendir(fd);
  if (*out == NULL) {
    int r = ep_syserror(err, EP_EIO, "store: list %s/%s", s->root, what);
    close(fd);
    return r;
  }
  return 0;
}

int store_recover_partials(store *s, int (*cb)(const digest_t *d, uint64_t size, void *ud),
                           void *ud, ep_err *err) {
  DIR *dir = NULL;
  int r = open_listing(s, s->ingest_fd, "ingest", &dir, err);
  if (r < 0)
    return r;
  struct dirent *de;
  while (r == 0 && (de = readdir(dir)) != NULL)
    r = recover_one(s, de->d_name, cb, ud);
  closedir(dir);
  return 0;
}

int store_foreach_blob(store *s, int (*cb)(const digest_t *d, uint64_t size, void *ud), void *ud,
                       ep_err *err) {
  DIR *dir = NULL;
  int r = open_listing(s, s->blobs_fd, "blobs/sha256", &dir, err);
  if (r < 0)
    return r;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(dir);
    if (de == NULL) {
      if (errno != 0)
        r = ep_syserror(err, EP_EIO, "store: list %s/blobs/sha256", s->root);
      break;
    }
    digest_t d;
    struct stat st;
    if (digest_parse_hex(de->d_name, &d, NULL) < 0 || de->d_name[DIGEST_HEX_LEN] != '\0')
      continue; /* junk, temp files, "." and ".." */
    if (fstatat(s->blobs_fd, d.hex, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
      continue; /* removed meanwhile, or not ours */
    if (cb(&d, (uint64_t)st.st_size, ud) != 0)
      break;
  }
  closedir(dir);
  return r;
}
