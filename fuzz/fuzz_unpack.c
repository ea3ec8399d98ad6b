/* Fuzz target: store/unpack. Each input is unpacked, as a layer stream, into
 * a fresh <tmp>/fs next to <tmp>/sentinel/canary; afterwards nothing but fs/
 * and an unchanged sentinel may exist in <tmp>, whatever the unpack
 * returned (errors are expected: most inputs are not valid layers). An
 * escape aborts, which libFuzzer reports as a crash and the replay as a
 * failed test. The input is fed in small chunks so the streaming paths are
 * exercised, and its size's parity picks openat2 or the O_NOFOLLOW walker.
 * Limits are small so a bomb cannot fill the disk. Needs root for the
 * device nodes and trusted xattrs a layer may hold (non-root runs still
 * exercise the parser; mknod/chown errors just end those inputs). */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fuzz/fuzz.h"
#include "store/unpack.h"

struct mem_src {
  const uint8_t *data;
  size_t len, off;
};

static long mem_read(void *ud, void *buf, size_t len) {
  struct mem_src *s = ud;
  size_t n = s->len - s->off;
  if (n > len)
    n = len;
  if (n > 1000)
    n = 1000 + (s->off % 3000); /* uneven chunks */
  if (n > s->len - s->off)
    n = s->len - s->off;
  memcpy(buf, s->data + s->off, n);
  s->off += n;
  return (long)n;
}

static void check_contained(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL)
    fuzz_fail("opendir %s", dir);
  for (struct dirent *de = readdir(d); de != NULL; de = readdir(d)) {
    const char *n = de->d_name;
    if (strcmp(n, ".") && strcmp(n, "..") && strcmp(n, "fs") && strcmp(n, "sentinel"))
      fuzz_fail("escaped: %s/%s", dir, n);
  }
  closedir(d);
  char p[256], buf[16] = {0};
  snprintf(p, sizeof p, "%s/sentinel", dir);
  d = opendir(p);
  if (d == NULL)
    fuzz_fail("sentinel dir gone");
  for (struct dirent *de = readdir(d); de != NULL; de = readdir(d)) {
    const char *n = de->d_name;
    if (strcmp(n, ".") && strcmp(n, "..") && strcmp(n, "canary"))
      fuzz_fail("escaped into the sentinel: %s", n);
  }
  closedir(d);
  if (getxattr(p, "trusted.overlay.opaque", buf, sizeof buf) >= 0)
    fuzz_fail("sentinel made opaque");
  snprintf(p, sizeof p, "%s/sentinel/canary", dir);
  struct stat st;
  if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 07777) != 0644 ||
      st.st_nlink != 1 || st.st_uid != geteuid() || st.st_size != 6)
    fuzz_fail("canary changed");
  FILE *c = fopen(p, "r");
  if (c == NULL || fread(buf, 1, 6, c) != 6 || memcmp(buf, "canary", 6) != 0)
    fuzz_fail("canary content changed");
  fclose(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char dir[64], p[128];
  fuzz_tmpdir(dir, sizeof dir, "unpack");
  snprintf(p, sizeof p, "%s/sentinel", dir);
  if (mkdir(p, 0755) < 0)
    fuzz_fail("mkdir sentinel");
  snprintf(p, sizeof p, "%s/sentinel/canary", dir);
  FILE *c = fopen(p, "w");
  if (c == NULL || fputs("canary", c) < 0 || fclose(c) != 0 || chmod(p, 0644) < 0)
    fuzz_fail("canary");
  snprintf(p, sizeof p, "%s/fs", dir);
  if (mkdir(p, 0755) < 0)
    fuzz_fail("mkdir fs");
  int fsfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fsfd < 0)
    fuzz_fail("open fs");
  struct mem_src src = {.data = data, .len = size};
  unpack_opts o = {
      .limits = {.max_entries = 2000, .max_bytes = 16u << 20, .max_xattr = 4096},
      .flags = size % 2 ? UNPACK_NO_OPENAT2 : 0,
  };
  ep_err err = {0};
  unpack_result res;
  unpack_stream(fsfd, mem_read, &src, &o, NULL, &res, &err);
  close(fsfd);
  check_contained(dir);
  fuzz_rmrf(dir);
  return 0;
}

#ifdef EP_LIBFUZZER
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max, unsigned seed);

/* libarchive is not instrumented, so coverage cannot teach the fuzzer tar's
 * header checksum: after each mutation every block that looks like a ustar
 * header gets its checksum fixed, or nearly all mutated headers would be
 * refused as damaged before reaching the unpacker's own code. */
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max, unsigned seed) {
  (void)seed;
  size = LLVMFuzzerMutate(data, size, max);
  for (size_t off = 0; off + 512 <= size; off += 512) {
    uint8_t *h = data + off;
    if (memcmp(h + 257, "ustar", 5) != 0)
      continue;
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
      sum += h[i];
    char buf[8];
    snprintf(buf, sizeof buf, "%06o", sum & 0777777);
    memcpy(h + 148, buf, 7);
  }
  return size;
}
#endif
