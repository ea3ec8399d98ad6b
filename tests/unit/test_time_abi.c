/* Unit tests for the 64-bit time_t of edgepull's objects and for the shim
 * that passes times to and from the libraries (store/time_abi.c): time_t
 * and off_t are 8 bytes on every target (on armhf through _TIME_BITS=64 and
 * _FILE_OFFSET_BITS=64), and a tar entry's mtime after 2038 survives the
 * unpacker, also where libarchive keeps a 32-bit time_t (Debian 12 armhf,
 * run by scripts/test's cross step under qemu-arm). The tar is written by
 * hand, as a 64-bit tool would write it: a 32-bit libarchive cannot write
 * such a time itself. Runs as root (the unpacker chowns): exits 77 otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/unpack_layers.h"

#define T2100 INT64_C(4102444800) /* 2100-01-01T00:00:00Z */

static void test_sizes(void **state) {
  (void)state;
  struct stat st;
  struct timespec ts;
  assert_int_equal(sizeof(time_t), 8);
  assert_int_equal(sizeof(off_t), 8);
  assert_int_equal(sizeof ts.tv_sec, 8);
  assert_int_equal(sizeof st.st_mtim.tv_sec, 8);
  assert_int_equal(sizeof st.st_size, 8);
  assert_true(ep_lib_time_bits() == 32 || ep_lib_time_bits() == 64);
  print_message("edgepull's time_t: 64 bits; the libraries': %d bits\n", ep_lib_time_bits());
}

/* One 512-byte ustar header (POSIX.1-1988) for a regular file or directory. */
static void ustar_header(unsigned char h[512], const char *name, char type, size_t size,
                         int64_t mtime) {
  memset(h, 0, 512);
  snprintf((char *)h, 100, "%s", name);
  snprintf((char *)h + 100, 8, "%07o", type == '5' ? 0755u : 0644u);
  snprintf((char *)h + 108, 8, "%07o", 0u);
  snprintf((char *)h + 116, 8, "%07o", 0u);
  snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
  snprintf((char *)h + 136, 12, "%011llo", (unsigned long long)mtime);
  h[156] = (unsigned char)type;
  memcpy(h + 257, "ustar", 6);
  memcpy(h + 263, "00", 2);
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; i++)
    sum += h[i];
  snprintf((char *)h + 148, 8, "%06o", sum);
}

/* future/ and future/file ("hi"), both with mtime T2100, then the end. */
static size_t tar_2100(unsigned char *buf, size_t cap) {
  assert_true(cap >= 512 * 5);
  memset(buf, 0, 512 * 5);
  ustar_header(buf, "future/", '5', 0, T2100);
  ustar_header(buf + 512, "future/file", '0', 2, T2100);
  memcpy(buf + 1024, "hi", 2);
  return 512 * 5; /* two headers, one data block, two zero blocks */
}

static void test_shim_reads_2100(void **state) {
  (void)state;
  static unsigned char tar[512 * 5];
  size_t len = tar_2100(tar, sizeof tar);
  struct archive *a = archive_read_new();
  assert_non_null(a);
  assert_int_equal(archive_read_support_format_tar(a), ARCHIVE_OK);
  assert_int_equal(archive_read_open_memory(a, tar, len), ARCHIVE_OK);
  struct archive_entry *ae;
  assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
  assert_string_equal(archive_entry_pathname(ae), "future/");
  assert_int_equal(ep_archive_entry_mtime(ae), T2100);
  assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
  assert_int_equal(ep_archive_entry_mtime(ae), T2100);
  assert_int_equal(archive_read_free(a), ARCHIVE_OK);
}

static void test_shim_set(void **state) {
  (void)state;
  struct archive_entry *ae = archive_entry_new();
  assert_int_equal(ep_archive_entry_set_mtime(ae, 1600000000, 5), 0);
  assert_int_equal(ep_archive_entry_mtime(ae), 1600000000);
  assert_int_equal(archive_entry_mtime_nsec(ae), 5);
  /* Beyond a 32-bit library's time_t: refused rather than cut. */
  int r = ep_archive_entry_set_mtime(ae, T2100, 0);
  assert_int_equal(r, ep_lib_time_bits() == 64 ? 0 : -1);
  assert_int_equal(ep_archive_entry_mtime(ae), r == 0 ? T2100 : 1600000000);
  archive_entry_free(ae);
}

static void test_unpack_keeps_2100(void **state) {
  struct fx *f = *state;
  static unsigned char tar[512 * 5];
  size_t len = tar_2100(tar, sizeof tar);
  int fd = open(f->layer, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, tar, len), (ssize_t)len);
  close(fd);
  ep_err err = {0};
  if (run(f, &err) != 0)
    fail_msg("%s", err.msg);
  struct stat st;
  st_at(f, "future/file", &st);
  assert_int_equal(st.st_size, 2);
  assert_int_equal(st.st_mtim.tv_sec, T2100);
  assert_int_equal(st.st_atim.tv_sec, T2100); /* no atime in the tar: the mtime */
  st_at(f, "future", &st);
  assert_int_equal(st.st_mtim.tv_sec, T2100); /* restored after its contents */
}

int main(void) {
  const struct CMUnitTest plain[] = {
      cmocka_unit_test(test_sizes),
      cmocka_unit_test(test_shim_reads_2100),
      cmocka_unit_test(test_shim_set),
  };
  int r = cmocka_run_group_tests(plain, NULL, NULL);
  if (geteuid() != 0) {
    fprintf(stderr, "test_unpack_keeps_2100 needs root (the unpacker chowns)\n");
    return r != 0 ? r : 77;
  }
  const struct CMUnitTest root[] = {
      cmocka_unit_test_setup_teardown(test_unpack_keeps_2100, setup, teardown),
  };
  return r + cmocka_run_group_tests(root, NULL, NULL);
}
