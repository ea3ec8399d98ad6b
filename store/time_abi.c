/* The shim of store/time_abi.h. Built with the toolchain's default time_t
 * (store/CMakeLists.txt adds -U_TIME_BITS where the top CMakeLists.txt set
 * _TIME_BITS=64), which is the one the distribution's libraries use. Include
 * nothing of edgepull's here that holds a time_t. */
#include "store/time_abi.h"

#include <time.h>

#include "store/archive_dl.h"

/* libarchive's function NAME, typed as this file's time_t sees it. An
 * archive_entry exists only once libarchive is loaded (by the unpacker or,
 * in tests, linked in), so loading here cannot fail where it matters. */
#define LIB(name) ((__typeof__(name) *)lib_sym(#name))
static void *lib_sym(const char *name) {
  ep_err e = {0};
  (void)archive_dl_load(&e);
  return archive_dl_sym(name);
}

/* A 32-bit library time_t holds the low half of the tar's value. */
static int64_t from_lib(time_t t) {
  if (sizeof(time_t) < sizeof(int64_t))
    return (int64_t)(uint32_t)t;
  return (int64_t)t;
}

int64_t ep_archive_entry_mtime(struct archive_entry *ae) {
  return from_lib(LIB(archive_entry_mtime)(ae));
}

int64_t ep_archive_entry_atime(struct archive_entry *ae) {
  return from_lib(LIB(archive_entry_atime)(ae));
}

int ep_archive_entry_set_mtime(struct archive_entry *ae, int64_t sec, long nsec) {
  time_t t = (time_t)sec;
  if ((int64_t)t != sec)
    return -1;
  LIB(archive_entry_set_mtime)(ae, t, nsec);
  return 0;
}

int ep_lib_time_bits(void) {
  return (int)(sizeof(time_t) * 8);
}
