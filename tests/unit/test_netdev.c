/* Unit tests for bench/netdev: /proc/<pid>/net/dev parsing against normal,
 * compact, truncated, overflowing and garbage text; column spec parsing; and
 * a live read of this process's "lo". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/netdev.h"

#define HDR                                                                                        \
  "Inter-|   Receive                                                |  Transmit\n"                 \
  " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop "  \
  "fifo colls carrier compressed\n"

static const char normal_text[] =
    HDR "    lo:    3267      29    0    0    0     0          0         0     3268      29    0  "
        "  0    0     0       0          0\n"
        "  lan0: 123 4 0 0 0 0 0 0 456 7 0 0 0 0 0 0\n"
        "  eth0: 47660863    1310    0    0    0     0          0         0    43873     519    0 "
        "   0    0     0       0          0\n";

/* Every text of cases must be refused as malformed for "lo". */
static void expect_rejected(const char *const *cases, size_t n) {
  uint64_t rx, tx;
  for (size_t i = 0; i < n; i++) {
    if (netdev_parse(cases[i], "lo", &rx, &tx) != -EINVAL)
      fail_msg("case %zu accepted: %s", i, cases[i]);
  }
}

static void test_parse_normal(void **state) {
  (void)state;
  uint64_t rx = 1, tx = 1;
  assert_int_equal(netdev_parse(normal_text, "lo", &rx, &tx), 0);
  assert_int_equal(rx, 3267);
  assert_int_equal(tx, 3268);
  assert_int_equal(netdev_parse(normal_text, "lan0", &rx, &tx), 0);
  assert_int_equal(rx, 123);
  assert_int_equal(tx, 456);
  assert_int_equal(netdev_parse(normal_text, "eth0", &rx, &tx), 0);
  assert_int_equal(rx, 47660863);
  assert_int_equal(tx, 43873);
  /* Either output may be NULL. */
  assert_int_equal(netdev_parse(normal_text, "eth0", NULL, &tx), 0);
  assert_int_equal(netdev_parse(normal_text, "eth0", &rx, NULL), 0);
}

static void test_parse_no_space(void **state) {
  (void)state;
  uint64_t rx = 0, tx = 0;
  const char *t = HDR "  eth0:1234 5 0 0 0 0 0 0 5678 9 0 0 0 0 0 0\n"
                      "verylongname15:99\t1 0 0 0 0 0 0\t77 1 0 0 0 0 0 0\n";
  assert_int_equal(netdev_parse(t, "eth0", &rx, &tx), 0);
  assert_int_equal(rx, 1234);
  assert_int_equal(tx, 5678);
  assert_int_equal(netdev_parse(t, "verylongname15", &rx, &tx), 0);
  assert_int_equal(rx, 99);
  assert_int_equal(tx, 77);
  /* Extra trailing counters (a future kernel) are accepted. */
  t = HDR "eth0: 1 0 0 0 0 0 0 0 2 0 0 0 0 0 0 0 0 0\n";
  assert_int_equal(netdev_parse(t, "eth0", &rx, &tx), 0);
  assert_int_equal(rx, 1);
  assert_int_equal(tx, 2);
}

static void test_parse_missing(void **state) {
  (void)state;
  uint64_t rx = 42, tx = 43;
  assert_int_equal(netdev_parse(normal_text, "wlan0", &rx, &tx), -ENOENT);
  /* No prefix or suffix matches. */
  assert_int_equal(netdev_parse(normal_text, "eth", &rx, &tx), -ENOENT);
  assert_int_equal(netdev_parse(normal_text, "l", &rx, &tx), -ENOENT);
  assert_int_equal(netdev_parse(normal_text, "lan0x", &rx, &tx), -ENOENT);
  /* A header and no interface at all. */
  assert_int_equal(netdev_parse(HDR, "lo", &rx, &tx), -ENOENT);
  /* Outputs untouched on failure. */
  assert_int_equal(rx, 42);
  assert_int_equal(tx, 43);
}

static void test_parse_truncated(void **state) {
  (void)state;
  uint64_t rx, tx;
  static const char *const cases[] = {
      /* Header cut short. */
      "Inter-|   Receive",
      "Inter-|   Receive\n face |bytes",
      /* Last line without its newline: a cut number would read smaller. */
      HDR "  lo: 123 4 0 0 0 0 0 0 456 7 0 0 0 0 0 0",
      HDR "  lo: 123 4 0 0 0 0 0 0 456 7 0 0 0 0 0 0\n  eth0: 12",
      /* Too few counters. */
      HDR "  lo: 123 4 0 0 0 0 0 0 456 7 0 0 0 0 0\n",
      HDR "  lo: 123 4\n",
      HDR "  lo:\n",
      HDR "  lo",
      HDR "  lo\n",
  };
  expect_rejected(cases, sizeof(cases) / sizeof(cases[0]));
  /* A malformed line elsewhere spoils the whole text, even after a match. */
  const char *t = HDR "  lo: 1 0 0 0 0 0 0 0 2 0 0 0 0 0 0 0\n  eth0: 1 2 3\n";
  assert_int_equal(netdev_parse(t, "lo", &rx, &tx), -EINVAL);
}

static void test_parse_overflow(void **state) {
  (void)state;
  uint64_t rx = 0, tx = 0;
  const char *max =
      HDR "lo: 18446744073709551615 0 0 0 0 0 0 0 18446744073709551615 0 0 0 0 0 0 0\n";
  assert_int_equal(netdev_parse(max, "lo", &rx, &tx), 0);
  assert_true(rx == UINT64_MAX);
  assert_true(tx == UINT64_MAX);
  static const char *const cases[] = {
      HDR "lo: 18446744073709551616 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n",
      HDR "lo: 1 0 0 0 0 0 0 0 18446744073709551620 0 0 0 0 0 0 0\n",
      HDR "lo: 1 0 0 0 0 0 0 0 1 0 0 0 0 0 0 99999999999999999999999999999999999999\n",
      HDR "lo: 184467440737095516150 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n",
  };
  expect_rejected(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_parse_garbage(void **state) {
  (void)state;
  uint64_t rx, tx;
  static const char *const cases[] = {
      "",
      "\n",
      "\n\n\n",
      "hello\nworld\nthis is not a netdev file\n",
      HDR "lo: -1 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n",
      HDR "lo: +1 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n",
      HDR "lo: 12x 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n",
      HDR "lo: 0x10 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n",
      HDR "lo: 1.5 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n",
      HDR "lo : 1 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n",
      HDR ": 1 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n",
      HDR "abcdefghijklmnop: 1 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n",
      HDR "lo: 1 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n\n",
      HDR "lo: 1 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\r\n",
      /* The same name twice is ambiguous. */
      HDR "lo: 1 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\nlo: 2 0 0 0 0 0 0 0 2 0 0 0 0 0 0 0\n",
  };
  expect_rejected(cases, sizeof(cases) / sizeof(cases[0]));
  /* Bad arguments. */
  assert_int_equal(netdev_parse(NULL, "lo", &rx, &tx), -EINVAL);
  assert_int_equal(netdev_parse(normal_text, NULL, &rx, &tx), -EINVAL);
  assert_int_equal(netdev_parse(normal_text, "", &rx, &tx), -EINVAL);
  assert_int_equal(netdev_parse(normal_text, "lo:", &rx, &tx), -EINVAL);
  assert_int_equal(netdev_parse(normal_text, "abcdefghijklmnop", &rx, &tx), -EINVAL);
}

static void test_parse_random_bytes(void **state) {
  (void)state;
  enum { LEN = 100000 };
  char *buf = malloc(LEN + 1);
  assert_non_null(buf);
  /* A long line without a newline, then random bytes: never a crash. */
  memset(buf, 'a', LEN);
  buf[LEN] = '\0';
  assert_int_equal(netdev_parse(buf, "lo", NULL, NULL), -EINVAL);
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (int round = 0; round < 200; round++) {
    for (size_t i = 0; i < 4096; i++) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      buf[i] = (char)(" 0123456789:\nlo"[s % 15]);
    }
    buf[4096] = '\0';
    int rc = netdev_parse(buf, "lo", NULL, NULL);
    assert_true(rc == 0 || rc == -EINVAL || rc == -ENOENT);
  }
  free(buf);
}

static void test_spec_good(void **state) {
  (void)state;
  struct netdev_spec sp;
  assert_int_equal(netdev_spec_parse("ping=123:lo:rx", &sp), 0);
  assert_string_equal(sp.name, "ping");
  assert_int_equal(sp.pid, 123);
  assert_string_equal(sp.iface, "lo");
  assert_int_equal(sp.dir, NETDEV_RX);
  assert_int_equal(netdev_spec_parse("node-1.up_A=4194304:verylongname15:tx", &sp), 0);
  assert_string_equal(sp.name, "node-1.up_A");
  assert_int_equal(sp.pid, 4194304);
  assert_string_equal(sp.iface, "verylongname15");
  assert_int_equal(sp.dir, NETDEV_TX);
  assert_int_equal(netdev_spec_parse("abcdefghijklmnopqrstuvwxyz012345=2147483647:e:rx", &sp), 0);
  assert_string_equal(sp.name, "abcdefghijklmnopqrstuvwxyz012345");
  assert_int_equal(sp.pid, 2147483647);
}

static void test_spec_bad(void **state) {
  (void)state;
  static const char *const cases[] = {
      "",
      "ping",
      "ping=",
      "=1:lo:rx",
      "pi ng=1:lo:rx",
      "pi,ng=1:lo:rx",
      "pi/ng=1:lo:rx",
      "abcdefghijklmnopqrstuvwxyz0123456=1:lo:rx", /* 33 chars */
      "ping=0:lo:rx",
      "ping=-1:lo:rx",
      "ping=+1:lo:rx",
      "ping=1x:lo:rx",
      "ping=:lo:rx",
      "ping=2147483648:lo:rx",
      "ping=99999999999999999999999:lo:rx",
      "ping=1::rx",
      "ping=1:lo",
      "ping=1:lo:",
      "ping=1:lo:RX",
      "ping=1:lo:rxx",
      "ping=1:lo:rx:",
      "ping=1:lo:both",
      "ping=1:l o:rx",
      "ping=1:l/o:rx",
      "ping=1:l\to:rx",
      "ping=1:abcdefghijklmnop:rx", /* 16 chars */
      "ping=1=2:lo:rx",
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct netdev_spec sp = {.pid = -7};
    if (netdev_spec_parse(cases[i], &sp) != -EINVAL)
      fail_msg("case %zu accepted: %s", i, cases[i]);
    assert_int_equal(sp.pid, -7);
  }
  struct netdev_spec sp;
  assert_int_equal(netdev_spec_parse(NULL, &sp), -EINVAL);
  assert_int_equal(netdev_spec_parse("a=1:lo:rx", NULL), -EINVAL);
}

/* Sends one UDP datagram to 127.0.0.1; 0 when it went out. */
static int send_loopback(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char payload[1000] = {0};
  ssize_t n = sendto(fd, payload, sizeof(payload), 0, (struct sockaddr *)&a, sizeof(a));
  close(fd);
  return n == (ssize_t)sizeof(payload) ? 0 : -1;
}

static void test_read_self(void **state) {
  (void)state;
  uint64_t rx1, tx1, rx2, tx2;
  int pid = (int)getpid();
  assert_int_equal(netdev_read(pid, "lo", &rx1, &tx1), 0);
  int sent = send_loopback();
  assert_int_equal(netdev_read(pid, "lo", &rx2, &tx2), 0);
  assert_true(rx2 >= rx1);
  assert_true(tx2 >= tx1);
  /* Loopback counts on transmit, synchronously: the datagram shows. */
  if (sent == 0)
    assert_true(tx2 >= tx1 + 1000);

  assert_int_equal(netdev_read(pid, "nosuchif0", &rx1, &tx1), -ENOENT);
  assert_int_equal(netdev_read(0, "lo", &rx1, &tx1), -EINVAL);
  assert_int_equal(netdev_read(-1, "lo", &rx1, &tx1), -EINVAL);
  assert_int_equal(netdev_read(pid, "l/o", &rx1, &tx1), -EINVAL);
  /* Above the kernel's pid limit (2^22): never a live process. */
  assert_int_equal(netdev_read(2147483647, "lo", &rx1, &tx1), -ENOENT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_normal),       cmocka_unit_test(test_parse_no_space),
      cmocka_unit_test(test_parse_missing),      cmocka_unit_test(test_parse_truncated),
      cmocka_unit_test(test_parse_overflow),     cmocka_unit_test(test_parse_garbage),
      cmocka_unit_test(test_parse_random_bytes), cmocka_unit_test(test_spec_good),
      cmocka_unit_test(test_spec_bad),           cmocka_unit_test(test_read_self),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
