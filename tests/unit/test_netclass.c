/* Unit tests for plugin/upstream/netclass: every range of the table at its
 * edges, IPv4 hidden in IPv6, socket addresses, and what is not an address. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "plugin/upstream/netclass.h"

struct want {
  const char *addr;
  enum netclass cls;
};

static const struct want cases[] = {
    /* IPv4 */
    {"8.8.8.8", NETCLASS_PUBLIC},
    {"1.1.1.1", NETCLASS_PUBLIC},
    {"100.0.0.1", NETCLASS_PUBLIC}, /* just below carrier-grade NAT */
    {"100.63.255.255", NETCLASS_PUBLIC},
    {"100.64.0.0", NETCLASS_PRIVATE},
    {"100.127.255.255", NETCLASS_PRIVATE},
    {"100.128.0.0", NETCLASS_PUBLIC},
    {"0.0.0.0", NETCLASS_LOOPBACK},
    {"0.1.2.3", NETCLASS_LOOPBACK},
    {"127.0.0.1", NETCLASS_LOOPBACK},
    {"127.255.255.254", NETCLASS_LOOPBACK},
    {"10.0.0.1", NETCLASS_PRIVATE},
    {"10.255.255.255", NETCLASS_PRIVATE},
    {"11.0.0.0", NETCLASS_PUBLIC},
    {"172.15.255.255", NETCLASS_PUBLIC},
    {"172.16.0.0", NETCLASS_PRIVATE},
    {"172.31.255.255", NETCLASS_PRIVATE},
    {"172.32.0.0", NETCLASS_PUBLIC},
    {"192.168.1.1", NETCLASS_PRIVATE},
    {"192.169.0.0", NETCLASS_PUBLIC},
    {"169.254.169.254", NETCLASS_LINKLOCAL}, /* cloud metadata */
    {"169.253.255.255", NETCLASS_PUBLIC},
    {"198.18.0.10", NETCLASS_PRIVATE},
    {"198.19.255.255", NETCLASS_PRIVATE},
    {"198.20.0.0", NETCLASS_PUBLIC},
    {"192.0.0.8", NETCLASS_OTHER},
    {"192.0.2.1", NETCLASS_OTHER},
    {"198.51.100.7", NETCLASS_OTHER},
    {"203.0.113.9", NETCLASS_OTHER},
    {"224.0.0.1", NETCLASS_OTHER},
    {"239.255.255.250", NETCLASS_OTHER},
    {"240.0.0.1", NETCLASS_OTHER},
    {"255.255.255.255", NETCLASS_OTHER},
    {"223.255.255.255", NETCLASS_PUBLIC},
    /* IPv6 */
    {"::1", NETCLASS_LOOPBACK},
    {"::", NETCLASS_LOOPBACK},
    {"fe80::1", NETCLASS_LINKLOCAL},
    {"febf::1", NETCLASS_LINKLOCAL},
    {"fec0::1", NETCLASS_PRIVATE},
    {"fc00::1", NETCLASS_PRIVATE},
    {"fd12:3456::1", NETCLASS_PRIVATE},
    {"ff02::1", NETCLASS_OTHER},
    {"2001:db8::1", NETCLASS_OTHER},
    {"2001:0::1", NETCLASS_OTHER}, /* Teredo */
    {"100::1", NETCLASS_OTHER},
    {"2a00:1450:4001::1", NETCLASS_PUBLIC},
    {"2606:4700::1111", NETCLASS_PUBLIC},
    {"4000::1", NETCLASS_OTHER}, /* not global unicast (yet) */
    /* IPv4 inside IPv6: the IPv4 address decides */
    {"::ffff:127.0.0.1", NETCLASS_LOOPBACK},
    {"::ffff:10.1.2.3", NETCLASS_PRIVATE},
    {"::ffff:169.254.169.254", NETCLASS_LINKLOCAL},
    {"::ffff:8.8.8.8", NETCLASS_PUBLIC},
    {"64:ff9b::127.0.0.1", NETCLASS_LOOPBACK},
    {"64:ff9b::8.8.4.4", NETCLASS_PUBLIC},
    {"2002:7f00:1::1", NETCLASS_LOOPBACK},    /* 6to4 of 127.0.0.1 */
    {"2002:a9fe:a9fe::", NETCLASS_LINKLOCAL}, /* 6to4 of 169.254.169.254 */
    {"2002:0808:0808::1", NETCLASS_PUBLIC},
    {"::10.0.0.1", NETCLASS_PRIVATE}, /* IPv4-compatible, deprecated */
};

static void test_text(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    enum netclass c = 0;
    if (!netclass_of_text(cases[i].addr, &c) || c != cases[i].cls) {
      fprintf(stderr, "%s: want %s, got %s\n", cases[i].addr, netclass_name(cases[i].cls),
              netclass_name(c));
      fail();
    }
  }
}

static void test_not_addresses(void **state) {
  (void)state;
  static const char *const bad[] = {"",           "localhost",    "example.com",
                                    "[::1]",      "127.0.0.1:80", "127.1",
                                    "fe80::1%lo", " 10.0.0.1",    "1.2.3.4.5"};
  enum netclass c;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_false(netclass_of_text(bad[i], &c));
  assert_false(netclass_of_text(NULL, &c));
}

static void test_sockaddr(void **state) {
  (void)state;
  struct sockaddr_in in = {.sin_family = AF_INET};
  inet_pton(AF_INET, "169.254.169.254", &in.sin_addr);
  assert_int_equal(netclass_of_sockaddr((struct sockaddr *)&in, sizeof in), NETCLASS_LINKLOCAL);
  inet_pton(AF_INET, "93.184.216.34", &in.sin_addr);
  assert_int_equal(netclass_of_sockaddr((struct sockaddr *)&in, sizeof in), NETCLASS_PUBLIC);
  /* too short for its family */
  assert_int_equal(netclass_of_sockaddr((struct sockaddr *)&in, 4), NETCLASS_OTHER);
  struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
  inet_pton(AF_INET6, "::ffff:192.168.0.1", &in6.sin6_addr);
  assert_int_equal(netclass_of_sockaddr((struct sockaddr *)&in6, sizeof in6), NETCLASS_PRIVATE);
  struct sockaddr un = {.sa_family = AF_UNIX};
  assert_int_equal(netclass_of_sockaddr(&un, sizeof un), NETCLASS_OTHER);
  assert_int_equal(netclass_of_sockaddr(NULL, 0), NETCLASS_OTHER);
  assert_string_equal(netclass_name(NETCLASS_LINKLOCAL), "link-local");
  assert_string_equal(netclass_name(NETCLASS_OTHER), "reserved");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_text),
      cmocka_unit_test(test_not_addresses),
      cmocka_unit_test(test_sockaddr),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
