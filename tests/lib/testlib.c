/* See testlib.h. nftw depth-first without following links, so a test that
 * made a symlink to somewhere else never removes what it points to. */
#include "tests/lib/testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

int ep_test_tmpdir(char *dir, size_t cap, const char *prefix) {
  int n = snprintf(dir, cap, "/tmp/%sXXXXXX", prefix);
  if (n < 0 || (size_t)n >= cap)
    return -1;
  return mkdtemp(dir) != NULL ? 0 : -1;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(p) < 0 && errno != ENOENT ? -1 : 0;
}

int ep_test_rm_rf(const char *path) {
  struct stat st;
  if (lstat(path, &st) < 0)
    return errno == ENOENT ? 0 : -1;
  return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

uint16_t ep_test_fd_port(int fd) {
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
    return 0;
  return ntohs(sa.sin_port);
}
