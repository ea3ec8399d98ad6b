/* Unit tests for edgepull-coordinator's command line (coordinator/opts.c):
 * values, defaults, the password file, and that every bad value names its
 * flag; --gateway is required (roles are configured, not claimed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "coordinator/opts.h"

static int parse(struct coord_opts *o, ep_err *e, char **argv) {
  int argc = 0;
  while (argv[argc] != NULL)
    argc++;
  FILE *devnull = fopen("/dev/null", "w");
  assert_non_null(devnull);
  int r = coord_opts_parse(o, argc, argv, devnull, e);
  fclose(devnull);
  return r;
}

static void test_opts(void **state) {
  (void)state;
  struct coord_opts o;
  ep_err e = {0};
  char *ok[] = {"x",    "--broker",   "gw.lan:1884", "--locality",          "s1", "--gateway",
                "gw-1", "--topology", "tree:3",      "--heartbeat-timeout", "30", NULL};
  assert_int_equal(parse(&o, &e, ok), 0);
  assert_string_equal(o.broker_host, "gw.lan");
  assert_int_equal(o.broker_port, 1884);
  assert_int_equal(o.strategy, TOPO_TREE);
  assert_int_equal(o.k, 3);
  assert_int_equal(o.heartbeat_timeout, 30);
  assert_int_equal(o.keepalive, 10);
  assert_string_equal(o.client_id, "edgepull-coordinator-s1");
  assert_string_equal(o.gateway, "gw-1");
  char *v6[] = {"x", "--broker=[fd00::1]:1883", "--locality=s1", "--gateway=gw", NULL};
  assert_int_equal(parse(&o, &e, v6), 0);
  assert_string_equal(o.broker_host, "fd00::1");
  assert_int_equal(o.strategy, TOPO_CHAIN);
  char *help[] = {"x", "--help", NULL};
  assert_int_equal(parse(&o, &e, help), 1);

  char pw[] = "/tmp/test_coord_pw_XXXXXX";
  int fd = mkstemp(pw);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "s3cret\nignored\n", 15), 15);
  close(fd);
  char *auth[] = {"x",  "--broker",  "h",  "--locality", "s1",          "--gateway",
                  "gw", "--gateway", "gw", "--username", "coordinator", "--password-file",
                  pw,   NULL};
  assert_int_equal(parse(&o, &e, auth), 0);
  assert_string_equal(o.password, "s3cret");
  assert_int_equal(o.broker_port, 1883);
  coord_opts_clear(&o);
  assert_int_equal(o.password[0], '\0');
  unlink(pw);

  static const struct {
    const char *args[8];
    const char *flag;
  } bad[] = {
      {{"--locality", "s1"}, "--broker"},
      {{"--broker", "h"}, "--locality"},
      {{"--broker", "h:0", "--locality", "s1", "--gateway", "gw"}, "--broker"},
      {{"--broker", "h:x", "--locality", "s1", "--gateway", "gw"}, "--broker"},
      {{"--broker", ":1883", "--locality", "s1", "--gateway", "gw"}, "--broker"},
      {{"--broker", "h", "--locality", "a/b", "--gateway", "gw"}, "--locality"},
      {{"--broker", "h", "--locality", "s1", "--gateway", "gw", "--topology", "ring"},
       "--topology"},
      {{"--broker", "h", "--locality", "s1", "--gateway", "gw", "--keepalive", "1"}, "--keepalive"},
      {{"--broker", "h", "--locality", "s1", "--gateway", "gw", "--heartbeat-timeout", "9x"},
       "--heartbeat-timeout"},
      {{"--broker", "h", "--locality", "s1", "--gateway", "gw", "--password-file", "/nonexistent"},
       "--password-file"},
      {{"--broker", "h", "--locality", "s1", "--gateway", "gw", "--ca-file", "/nonexistent"},
       "--ca-file"},
      {{"--broker", "h", "--locality", "s1", "--gateway", "gw", "--nope"}, "--nope"},
      {{"--broker", "h", "--locality", "s1", "--gateway", "gw", "extra"}, "extra"},
      /* Roles are configured: no default gateway, and only a node id. */
      {{"--broker", "h", "--locality", "s1"}, "--gateway"},
      {{"--broker", "h", "--locality", "s1", "--gateway", "a/b"}, "--gateway"},
      {{"--broker", "h", "--locality", "s1", "--gateway", ""}, "--gateway"},
      {{"--broker", "h", "--locality", "s1", "--gateway"}, "--gateway"},
      {{"--broker"}, "--broker"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *argv[10] = {"x"};
    for (size_t j = 0; j < 8 && bad[i].args[j] != NULL; j++)
      argv[j + 1] = (char *)bad[i].args[j];
    ep_err be = {0};
    assert_true(parse(&o, &be, argv) < 0);
    if (strstr(be.msg, bad[i].flag) == NULL)
      fail_msg("case %zu: '%s' does not name %s", i, be.msg, bad[i].flag);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_opts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
