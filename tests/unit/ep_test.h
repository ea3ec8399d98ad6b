/* Helpers shared by the unit tests (header-only: tests/CMakeLists.txt makes
 * an executable of every test_*.c, nothing else). */
#ifndef EP_TESTS_EP_TEST_H
#define EP_TESTS_EP_TEST_H

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/* The port an IPv4 socket is bound to (0 on error). */
static inline uint16_t ep_test_fd_port(int fd) {
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
    return 0;
  return ntohs(sa.sin_port);
}

/* A small deterministic PRNG: reproducible data and chunk sizes. */
static inline uint64_t ep_test_xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static inline int ep_test_rm_one(const char *path, const struct stat *st, int flag,
                                 struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* Removes a test's temp dir and everything in it, without a shell; symlinks
 * are removed, never followed. 0 on success. */
static inline int ep_test_rmrf(const char *dir) {
  return nftw(dir, ep_test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
