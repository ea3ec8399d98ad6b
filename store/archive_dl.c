/* libarchive loaded on first use: see archive_dl.h for why. */
#define ARCHIVE_DL_IMPL
#include "store/archive_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* libarchive 3.x has had this soname since 3.0; another major version would
 * need a look at the functions above first. */
#if ARCHIVE_VERSION_NUMBER < 3000000 || ARCHIVE_VERSION_NUMBER >= 4000000
#error "libarchive 3 expected (soname libarchive.so.13)"
#endif
#define ARCHIVE_DL_SONAME "libarchive.so.13"

/* Written once under pthread_once, read-only afterwards: the process has
 * one libarchive, as it would have had one linked in. */
static struct archive_dl table;
static char load_error[256];
static void *handle;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
  /* Never closed: the library stays for the life of the process, as a
   * linked one would. RTLD_LOCAL keeps its symbols out of later lookups. */
  void *h = dlopen(ARCHIVE_DL_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    snprintf(load_error, sizeof load_error, "%s", dlerror());
    return;
  }
  handle = h;
  struct archive_dl t;
#define ARCHIVE_DL_SYM(name)                                                                       \
  if ((t.name = (__typeof__(t.name))dlsym(h, #name)) == NULL) {                                    \
    snprintf(load_error, sizeof load_error, "%s: no %s", ARCHIVE_DL_SONAME, #name);                \
    return;                                                                                        \
  }
  ARCHIVE_DL_FUNCTIONS(ARCHIVE_DL_SYM)
#undef ARCHIVE_DL_SYM
  table = t;
}

int archive_dl_load(ep_err *err) {
  pthread_once(&once, load);
  if (table.archive_read_new == NULL)
    return ep_error(err, EP_EINTERNAL, "cannot load libarchive to unpack layers: %s", load_error);
  return 0;
}

const struct archive_dl *archive_dl(void) {
  return &table;
}

void *archive_dl_sym(const char *name) {
  return handle != NULL ? dlsym(handle, name) : NULL;
}
