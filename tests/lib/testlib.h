/* Helpers every unit test may use, built once into ep_testlib (with the
 * fake registry, fake_registry.h; a standalone mirror's modules, stack.h;
 * the two-daemon fixture, nodes.h): a temporary directory per fixture and
 * its removal, the port a socket is bound to. Test code only: aborts the test (returns -1)
 * rather than reporting through ep_err. */
#ifndef EP_TESTS_TESTLIB_H
#define EP_TESTS_TESTLIB_H

#include <stddef.h>
#include <stdint.h>

/* Creates /tmp/<prefix>XXXXXX into dir (cap bytes): 0 or -1. */
int ep_test_tmpdir(char *dir, size_t cap, const char *prefix);
/* Removes path and everything below it, without following symlinks:
 * 0, or -1 when something could not be removed. A missing path is 0. */
int ep_test_rm_rf(const char *path);
/* The port an IPv4 socket is bound to (0 on error). */
uint16_t ep_test_fd_port(int fd);

#endif
