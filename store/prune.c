/* Pruning stale partials.
 *
 * Why: a fetch that fails or is abandoned keeps its partial so that the
 * next pull resumes instead of starting over, but partials of blobs nobody
 * asks for again would otherwise fill the disk for good (and a disk-full
 * store must not stay full because of them).
 *
 * How: walk <root>/ingest, skip every partial an ingest is writing (it holds
 * flock(LOCK_EX) for its whole life, see store.c), delete those older than
 * the age bound, then the oldest beyond the count bound. A partial is
 * deleted only while we hold its lock and its name still points to the
 * inode we locked, so an ingest that opens it meanwhile retries on a fresh
 * file (store.c's open_partial). */
#include "store/prune.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define PRUNE_SCAN_MAX 4096 /* partials looked at per call */

struct prune_entry {
  char name[80]; /* <64 hex>.partial */
  int64_t mtime;
};

static bool partial_name(const char *n) {
  size_t len = strlen(n);
  return len == 64 + 8 && strcmp(n + 64, ".partial") == 0 && strspn(n, "0123456789abcdef") == 64;
}

/* Deletes ingest/name when no ingest holds it; true when deleted. */
static bool drop_if_idle(int dfd, const char *name) {
  int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0)
    return false;
  bool dropped = false;
  struct stat mine, named;
  if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &mine) == 0 &&
      fstatat(dfd, name, &named, AT_SYMLINK_NOFOLLOW) == 0 && named.st_ino == mine.st_ino &&
      named.st_dev == mine.st_dev)
    dropped = unlinkat(dfd, name, 0) == 0;
  close(fd); /* releases the lock */
  return dropped;
}

static int by_age(const void *a, const void *b) {
  const struct prune_entry *x = a, *y = b;
  return x->mtime < y->mtime ? 1 : x->mtime > y->mtime ? -1 : 0; /* newest first */
}

/* Reads up to PRUNE_SCAN_MAX partial names and mtimes into *out. */
static int scan(int dfd, struct prune_entry **out, size_t *n, ep_err *err) {
  int dup_fd = dup(dfd);
  DIR *dir = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
  if (dir == NULL) {
    if (dup_fd >= 0)
      close(dup_fd);
    return ep_syserror(err, EP_EIO, "prune: reading ingest/");
  }
  struct prune_entry *v = calloc(PRUNE_SCAN_MAX, sizeof *v);
  if (v == NULL) {
    closedir(dir);
    return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  size_t k = 0;
  struct dirent *de;
  while (k < PRUNE_SCAN_MAX && (de = readdir(dir)) != NULL) {
    struct stat st;
    if (!partial_name(de->d_name) || fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !S_ISREG(st.st_mode))
      continue;
    memcpy(v[k].name, de->d_name, strlen(de->d_name) + 1);
    v[k++].mtime = (int64_t)st.st_mtim.tv_sec;
  }
  closedir(dir);
  *out = v;
  *n = k;
  return 0;
}

int store_prune_partials(store *s, int64_t max_age_s, unsigned max_keep, unsigned *removed,
                         ep_err *err) {
  if (removed != NULL)
    *removed = 0;
  int dfd = openat(store_dirfd(s), "ingest", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (dfd < 0)
    return ep_syserror(err, EP_EIO, "prune: opening ingest/");
  struct prune_entry *v = NULL;
  size_t n = 0;
  int r = scan(dfd, &v, &n, err);
  if (r < 0) {
    close(dfd);
    return r;
  }
  qsort(v, n, sizeof *v, by_age);
  int64_t now = (int64_t)time(NULL);
  unsigned kept = 0, gone = 0;
  for (size_t i = 0; i < n; i++) {
    bool stale = now - v[i].mtime > max_age_s || kept >= max_keep;
    if (stale && drop_if_idle(dfd, v[i].name)) {
      ep_log_info("store: dropped stale partial %.64s", v[i].name);
      gone++;
    } else {
      kept++;
    }
  }
  free(v);
  close(dfd);
  if (removed != NULL)
    *removed = gone;
  return 0;
}
