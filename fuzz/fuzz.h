/* Helpers shared by the fuzz targets (header-only). A target is one file,
 * fuzz_<name>.c, defining LLVMFuzzerTestOneInput; its seed corpus lives in
 * corpus/<name>/. fuzz_fail() aborts so libFuzzer records a crash and the
 * replay a failed test. */
#ifndef EP_FUZZ_FUZZ_H
#define EP_FUZZ_FUZZ_H

#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

__attribute__((noreturn, format(printf, 1, 2))) static inline void fuzz_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("fuzz: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

/* A fresh directory for one input, under $TMPDIR or /tmp. */
static inline void fuzz_tmpdir(char *out, size_t cap, const char *target) {
  const char *base = getenv("TMPDIR");
  snprintf(out, cap, "%s/ep-fuzz-%s-XXXXXX", base != NULL ? base : "/tmp", target);
  if (mkdtemp(out) == NULL)
    fuzz_fail("mkdtemp %s", out);
}

static inline int fuzz_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* Removes dir and everything below it; never follows a symlink. */
static inline void fuzz_rmrf(const char *dir) {
  if (nftw(dir, fuzz_rm_one, 64, FTW_DEPTH | FTW_PHYS) != 0)
    fuzz_fail("cannot remove %s", dir);
}

/* Splits data at the first n-1 '\n' into n malloc'd NUL-terminated parts
 * (the last one takes the rest, newlines included); parts past the end of
 * the input are NULL. A NUL byte inside a part stays, so the callee sees the
 * prefix as a C string would. Returns how many parts are non-NULL. */
static inline size_t fuzz_split(const uint8_t *data, size_t size, char **parts, size_t n) {
  size_t got = 0, off = 0;
  for (size_t i = 0; i < n; i++) {
    parts[i] = NULL;
    if (off > size)
      continue;
    const uint8_t *nl = i + 1 < n ? memchr(data + off, '\n', size - off) : NULL;
    size_t len = nl != NULL ? (size_t)(nl - (data + off)) : size - off;
    parts[i] = malloc(len + 1);
    if (parts[i] == NULL)
      fuzz_fail("out of memory");
    memcpy(parts[i], data + off, len);
    parts[i][len] = '\0';
    got++;
    off += len + 1;
  }
  return got;
}

static inline void fuzz_free_parts(char **parts, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(parts[i]);
}

/* A 0600 memfd holding data, readable by path (out: "/proc/self/fd/N"), so
 * file-reading code runs without touching the disk. Returns the fd; close
 * it after use. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, char *out, size_t cap) {
  int fd = memfd_create("ep-fuzz", MFD_CLOEXEC);
  if (fd < 0 || fchmod(fd, 0600) != 0)
    fuzz_fail("memfd_create");
  for (size_t off = 0; off < size;) {
    ssize_t n = write(fd, data + off, size - off);
    if (n <= 0)
      fuzz_fail("write to memfd");
    off += (size_t)n;
  }
  snprintf(out, cap, "/proc/self/fd/%d", fd);
  return fd;
}

/* The error contract of every ep_err function: a negative return is
 * -err.code with a NUL-terminated message; 0 leaves no code. */
static inline void fuzz_check_err(int rc, const ep_err *err, const char *what) {
  if (rc < 0 && (err->code == 0 || rc != -err->code))
    fuzz_fail("%s: returned %d but err.code is %d", what, rc, err->code);
  if (memchr(err->msg, '\0', sizeof err->msg) == NULL)
    fuzz_fail("%s: error message not terminated", what);
}

/* s is NUL-terminated within cap bytes. */
#define FUZZ_TERMINATED(s, what)                                                                   \
  do {                                                                                             \
    if (memchr((s), '\0', sizeof(s)) == NULL)                                                      \
      fuzz_fail("%s: %s not terminated", (what), #s);                                              \
  } while (0)

#endif
