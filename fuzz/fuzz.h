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

#endif
