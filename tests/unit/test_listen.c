#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "plugin/http/listen.h"

static void test_parse_good(void **state) {
  struct sockaddr_storage ss;
  socklen_t len;
  ep_err e = {0};
  assert_int_equal(listen_parse("127.0.0.1:5050", &ss, &len, &e), 0);
  assert_int_equal(ss.ss_family, AF_INET);
  assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 5050);
  assert_int_equal(listen_parse("[::1]:80", &ss, &len, &e), 0);
  assert_int_equal(ss.ss_family, AF_INET6);
  assert_int_equal(listen_parse("0.0.0.0:0", &ss, &len, &e), 0);
}

static void test_parse_bad(void **state) {
  static const char *const bad[] = {
      "",           "127.0.0.1",   "127.0.0.1:", ":80",     "localhost:80", "127.0.0.1:65536",
      "1.2.3.4:-1", "1.2.3.4:+80", "[::1:80",    "[::1]80", "::1:80x",      "1.2.3.4:80 ",
      "[zz]:80",    "999.1.1.1:80"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct sockaddr_storage ss;
    socklen_t len;
    ep_err e = {0};
    assert_int_equal(listen_parse(bad[i], &ss, &len, &e), -EP_EINVAL);
    assert_true(e.msg[0] != '\0');
  }
  char long_spec[300];
  memset(long_spec, '1', sizeof long_spec - 1);
  long_spec[sizeof long_spec - 1] = '\0';
  struct sockaddr_storage ss;
  socklen_t len;
  assert_int_equal(listen_parse(long_spec, &ss, &len, NULL), -EP_EINVAL);
}

static void test_open(void **state) {
  int fd = -1;
  ep_err e = {0};
  assert_int_equal(listen_open("127.0.0.1:0", &fd, &e), 0);
  assert_true(fd >= 0);
  struct sockaddr_in sin;
  socklen_t len = sizeof sin;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
  char spec[64];
  snprintf(spec, sizeof spec, "127.0.0.1:%u", ntohs(sin.sin_port));
  int fd2 = -1;
  assert_true(listen_open(spec, &fd2, &e) < 0); /* in use: clear error */
  assert_non_null(strstr(e.msg, spec));
  close(fd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_good),
      cmocka_unit_test(test_parse_bad),
      cmocka_unit_test(test_open),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
