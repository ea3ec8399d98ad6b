/* Corpus replay for builds without libFuzzer: a cmocka executable that runs
 * every file of the directories (or files) given on the command line
 * through the target's LLVMFuzzerTestOneInput, one cmocka test per file,
 * so ctest (and scripts/test) keep the corpus passing with gcc. Linked with
 * exactly one fuzz_<name>.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/fuzz.h"

#define REPLAY_MAX_INPUT (16u << 20)
#define REPLAY_MAX_FILES 4096

static void replay_one(void **state) {
  const char *path = *state;
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  struct stat st;
  assert_int_equal(fstat(fileno(f), &st), 0);
  assert_true(st.st_size >= 0 && (uint64_t)st.st_size <= REPLAY_MAX_INPUT);
  size_t len = (size_t)st.st_size;
  uint8_t *buf = malloc(len > 0 ? len : 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, len, f), len);
  fclose(f);
  LLVMFuzzerTestOneInput(buf, len);
  free(buf);
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const struct CMUnitTest *)a)->name, ((const struct CMUnitTest *)b)->name);
}

static size_t add_path(struct CMUnitTest *tests, size_t n, const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "replay: %s: not found\n", path);
    exit(1);
  }
  DIR *d = S_ISDIR(st.st_mode) ? opendir(path) : NULL;
  if (d == NULL) {
    if (n < REPLAY_MAX_FILES)
      tests[n++] = (struct CMUnitTest){
          .name = strdup(path), .test_func = replay_one, .initial_state = (void *)strdup(path)};
    return n;
  }
  for (struct dirent *de = readdir(d); de != NULL; de = readdir(d)) {
    if (de->d_name[0] == '.')
      continue;
    char *p = NULL;
    if (asprintf(&p, "%s/%s", path, de->d_name) < 0)
      exit(1);
    if (n < REPLAY_MAX_FILES)
      tests[n++] = (struct CMUnitTest){
          .name = strdup(de->d_name), .test_func = replay_one, .initial_state = p};
    else
      free(p);
  }
  closedir(d);
  return n;
}

int main(int argc, char **argv) {
  static struct CMUnitTest tests[REPLAY_MAX_FILES];
  size_t n = 0;
  for (int i = 1; i < argc; i++)
    n = add_path(tests, n, argv[i]);
  if (n == 0) {
    fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
    return 1;
  }
  qsort(tests, n, sizeof tests[0], by_name);
  return _cmocka_run_group_tests("fuzz corpus replay", tests, n, NULL, NULL);
}
