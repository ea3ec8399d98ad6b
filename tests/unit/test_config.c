/* Unit tests for plugin/config/config.c: defaults, flags, INI files (registry
 * sections, password files) and hostile or broken configuration. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/lib/testlib.h"

#include "common/names.h"
#include "plugin/config/config.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

struct fx {
  char dir[64];
  char path[256]; /* last file written */
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  assert_int_equal(ep_test_tmpdir(f->dir, sizeof f->dir, "ep-test-config-"), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  ep_test_rm_rf(f->dir);
  free(f);
  return 0;
}

/* Writes len bytes into dir/name with mode; returns the path (in f->path). */
static const char *write_n(struct fx *f, const char *name, const char *data, size_t len,
                           mode_t mode) {
  snprintf(f->path, sizeof f->path, "%s/%s", f->dir, name);
  int fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  assert_int_equal(fchmod(fd, mode), 0);
  close(fd);
  return f->path;
}

static const char *write_s(struct fx *f, const char *name, const char *data) {
  return write_n(f, name, data, strlen(data), 0600);
}

static void assert_contains(const char *hay, const char *needle) {
  if (strstr(hay, needle) == NULL)
    fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static void test_defaults(void **state) {
  struct edgepulld_config c;
  ep_err e = {0};
  char host[256] = "";
  (void)state;
  config_defaults(&c);
  assert_string_equal(c.state_dir, "/var/lib/edgepull");
  assert_string_equal(c.listen, "127.0.0.1:5050");
  assert_string_equal(c.peer_listen, "");
  assert_string_equal(c.default_registry, "docker.io");
  assert_string_equal(c.broker, "");
  assert_false(c.gateway);
  assert_false(c.upstream_fallback);
  assert_int_equal(c.tag_ttl_s, 300);
  assert_int_equal(c.max_connections, 256);
  assert_int_equal(c.connect_timeout_s, 10);
  assert_int_equal(c.nregistries, 0);
  gethostname(host, sizeof host - 1);
  if (strlen(host) < sizeof c.node_id)
    assert_string_equal(c.node_id, host);
  assert_int_equal(config_validate(&c, &e), 0);
  char *argv[] = {"edgepulld"};
  assert_int_equal(config_parse_args(&c, ARGC(argv), argv, &e), 0);
  assert_string_equal(c.listen, "127.0.0.1:5050");
}

static void test_cli_flags(void **state) {
  struct edgepulld_config c;
  ep_err e = {0};
  (void)state;
  config_defaults(&c);
  char *argv[] = {"edgepulld",
                  "--state-dir",
                  "/srv/ep",
                  "--listen=0.0.0.0:6000",
                  "--peer-listen",
                  "[::]:5051",
                  "--gateway",
                  "--upstream-fallback=yes",
                  "--tag-ttl",
                  "5",
                  "--max-connections=16384",
                  "--connect-timeout",
                  "1",
                  "--registry",
                  "127.0.0.1:5000=http://127.0.0.1:5000",
                  "--registry=ghcr.io=https://ghcr.io/",
                  "--registry",
                  "GHCR.io=https://mirror.example:8443",
                  "--broker",
                  "127.0.0.1:1883",
                  "--locality",
                  "loc-1",
                  "--node-id",
                  "n1",
                  "--default-registry",
                  "registry.example.com",
                  "--ca-file",
                  "/etc/ssl/extra.pem",
                  "--peer-insecure",
                  "--upstream-max-rate=2.5MiB",
                  "--peer-max-rate",
                  "20M",
                  "--allow-registry",
                  "quay.io",
                  "--allow-registry=ghcr.io",
                  "--local-any-registry",
                  "--store-max=2G",
                  "--store-min-free",
                  "500M"};
  assert_int_equal(config_parse_args(&c, ARGC(argv), argv, &e), 0);
  assert_string_equal(c.store_max, "2G");
  assert_string_equal(c.store_min_free, "500M");
  assert_string_equal(c.upstream_max_rate, "2.5MiB");
  assert_string_equal(c.peer_max_rate, "20M");
  assert_string_equal(c.state_dir, "/srv/ep");
  assert_string_equal(c.listen, "0.0.0.0:6000");
  assert_string_equal(c.peer_listen, "[::]:5051");
  assert_true(c.gateway);
  assert_true(c.upstream_fallback);
  assert_int_equal(c.tag_ttl_s, 5);
  assert_int_equal(c.max_connections, 16384);
  assert_int_equal(c.connect_timeout_s, 1);
  assert_string_equal(c.broker, "127.0.0.1:1883");
  assert_string_equal(c.locality, "loc-1");
  assert_string_equal(c.node_id, "n1");
  assert_string_equal(c.default_registry, "registry.example.com");
  assert_string_equal(c.ca_file, "/etc/ssl/extra.pem");
  assert_int_equal(c.nregistries, 3); /* ghcr.io updated, not added twice */
  assert_string_equal(c.registries[0].host, "127.0.0.1:5000");
  assert_string_equal(c.registries[0].url, "http://127.0.0.1:5000");
  assert_string_equal(c.registries[1].host, "ghcr.io");
  assert_string_equal(c.registries[1].url, "https://mirror.example:8443"); /* kept */
  assert_string_equal(c.registries[2].host, "quay.io"); /* allowed, default endpoint */
  assert_string_equal(c.registries[2].url, "");
  assert_true(c.local_any_registry);
  assert_int_equal(config_validate(&c, &e), 0);

  char *neg[] = {"edgepulld", "--gateway", "--no-gateway", "--upstream-fallback=false"};
  assert_int_equal(config_parse_args(&c, ARGC(neg), neg, &e), 0);
  assert_false(c.gateway);
  assert_false(c.upstream_fallback);
}

struct bad_cli {
  const char *args[4];
  const char *msg;
};

static void test_cli_errors(void **state) {
  static const struct bad_cli cases[] = {
      {{"--bogus"}, "--bogus"},
      {{"--listen"}, "needs a value"},
      {{"positional"}, "unexpected argument"},
      {{"-x"}, "unexpected argument"},
      {{"--"}, "unexpected argument"},
      {{"--tag-ttl", "-1"}, "not a decimal integer"},
      {{"--tag-ttl", "604801"}, "out of range"},
      {{"--tag-ttl", "99999999999999999999999"}, "out of range"},
      {{"--tag-ttl", " 5"}, "not a decimal integer"},
      {{"--tag-ttl", "+5"}, "not a decimal integer"},
      {{"--tag-ttl", ""}, "not a decimal integer"},
      {{"--max-connections", "0"}, "out of range"},
      {{"--gateway=maybe"}, "not a boolean"},
      {{"--upstream-max-rate", "4 M"}, "bytes per second"},
      {{"--peer-max-rate", "-1"}, "bytes per second"},
      {{"--store-max", "2 G"}, "a size such as"},
      {{"--store-min-free", "lots"}, "a size such as"},
      {{"--no-gateway=1"}, "takes no value"},
      {{"--no-listen"}, "unknown option"},
      {{"--help=1"}, "takes no value"},
      {{"--state-dir", "relative/dir"}, "absolute"},
      {{"--listen", "127.0.0.1"}, "ADDR:PORT"},
      {{"--listen", "127.0.0.1:0"}, "ADDR:PORT"},
      {{"--listen", "127.0.0.1:65536"}, "ADDR:PORT"},
      {{"--locality", "a/b"}, "A-Za-z0-9"},
      {{"--node-id", "n+#"}, "A-Za-z0-9"},
      {{"--default-registry", "a b"}, "registry host"},
      {{"--node-id", "a\nb"}, "control characters"},
      {{"--registry", "noequals"}, "HOST=URL"},
      {{"--registry", "bad host=http://x"}, "invalid host"},
      {{"--registry", "h=ftp://x"}, "http://"},
      {{"--registry", "h=http://x/path"}, "path"},
      {{"--registry", "h=http://user@x"}, "host"},
      {{"--registry", "h="}, "http://"},
      {{"--allow-registry", "a b"}, "invalid host"},
      {{"--allow-registry", "h=http://x"}, "invalid host"},
      {{"--local-any-registry=perhaps"}, "not a boolean"},
      {{"--config", "/nonexistent/edgepull.conf"}, "/nonexistent/edgepull.conf"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct edgepulld_config c;
    ep_err e = {0};
    char *argv[6] = {"edgepulld"};
    int argc = 1;
    for (int k = 0; k < 4 && cases[i].args[k] != NULL; k++)
      argv[argc++] = (char *)cases[i].args[k];
    config_defaults(&c);
    int r = config_parse_args(&c, argc, argv, &e);
    if (r >= 0)
      fail_msg("case %zu (%s) accepted", i, cases[i].args[0]);
    assert_contains(e.msg, cases[i].msg);
  }
  /* too long for the field */
  char longv[2000];
  memset(longv, 'a', sizeof longv - 1);
  longv[0] = '/';
  longv[sizeof longv - 1] = '\0';
  struct edgepulld_config c;
  ep_err e = {0};
  config_defaults(&c);
  char *argv[] = {"edgepulld", "--state-dir", longv};
  assert_true(config_parse_args(&c, ARGC(argv), argv, &e) < 0);
  assert_contains(e.msg, "longer than 1023");
}

static void test_help_version(void **state) {
  struct edgepulld_config c;
  ep_err e = {0};
  (void)state;
  config_defaults(&c);
  char *h1[] = {"edgepulld", "--help"};
  assert_int_equal(config_parse_args(&c, ARGC(h1), h1, &e), 1);
  char *h2[] = {"edgepulld", "--listen", "1.2.3.4:5", "-h", "--config", "/nonexistent"};
  assert_int_equal(config_parse_args(&c, ARGC(h2), h2, &e), 1);
  assert_string_equal(c.listen, "127.0.0.1:5050"); /* nothing applied */
  char *v[] = {"edgepulld", "--version"};
  assert_int_equal(config_parse_args(&c, ARGC(v), v, &e), 1);

  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  assert_non_null(out);
  config_usage(out, "edgepulld");
  fclose(out);
  static const char *const must[] = {"Usage: edgepulld",
                                     "--state-dir DIR",
                                     "--listen ADDR:PORT",
                                     "--peer-listen",
                                     "--[no-]gateway",
                                     "--[no-]upstream-fallback",
                                     "--broker HOST:PORT",
                                     "--locality NAME",
                                     "--node-id ID",
                                     "--default-registry HOST",
                                     "--registry HOST=URL",
                                     "--ca-file FILE",
                                     "--tag-ttl SECONDS",
                                     "--max-connections N",
                                     "--connect-timeout SECONDS",
                                     "--config FILE",
                                     "-h, --help",
                                     "--version",
                                     "[0-604800, default 300]",
                                     "[default 127.0.0.1:5050]",
                                     "Upstream registries:"};
  for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
    assert_contains(buf, must[i]);
  free(buf);
}

static void test_file_and_override(void **state) {
  struct fx *f = *state;
  struct edgepulld_config c;
  ep_err e = {0};
  write_n(f, "secret", "s3cr3t\n", 7, 0600);
  write_n(f, "secret-crlf", "pw2\r\n", 5, 0644); /* world-readable: warned, accepted */
  const char *conf =
      write_s(f, "edgepulld.conf",
              "; comment\n"
              "# another\n"
              "[edgepulld]\n"
              "state-dir = /var/lib/ep-test   ; inline comment\n"
              "listen = 127.0.0.1:6000\n"
              "  tag-ttl = 100\n" /* indented: a key, not a continuation */
              "gateway = yes\n"
              "registry = 127.0.0.1:5000=http://127.0.0.1:5000\n"
              "registry = quay.io=https://quay.io\n"
              "\n"
              "[registry \"registry.example.com\"]\n"
              "url = https://registry.example.com\n"
              "username = robot\n"
              "password-file = secret\n"
              "[registry \"a-very-long-registry-host-name-beyond-fifty.example.com:8443\"]\n"
              "username = u2\n"
              "password-file = secret-crlf\n"
              "[registry \"ghcr.io\"]\n"
              "username = me\n"
              "password = inline-pw\n");
  char confpath[256];
  strcpy(confpath, conf);
  config_defaults(&c);
  /* the flag before --config still wins */
  char *argv[] = {"edgepulld", "--tag-ttl", "7", "--config", confpath, "--no-gateway"};
  assert_int_equal(config_parse_args(&c, ARGC(argv), argv, &e), 0);
  assert_int_equal(c.tag_ttl_s, 7);
  assert_false(c.gateway);
  assert_string_equal(c.state_dir, "/var/lib/ep-test");
  assert_string_equal(c.listen, "127.0.0.1:6000");
  assert_int_equal(c.nregistries, 5);
  assert_string_equal(c.registries[0].host, "127.0.0.1:5000");
  assert_string_equal(c.registries[1].url, "https://quay.io");
  assert_string_equal(c.registries[2].host, "registry.example.com");
  assert_string_equal(c.registries[2].url, "https://registry.example.com");
  assert_string_equal(c.registries[2].username, "robot");
  assert_string_equal(c.registries[2].password, "s3cr3t");
  assert_string_equal(c.registries[3].host,
                      "a-very-long-registry-host-name-beyond-fifty.example.com:8443");
  assert_string_equal(c.registries[3].password, "pw2");
  assert_string_equal(c.registries[4].username, "me");
  assert_string_equal(c.registries[4].password, "inline-pw");
  assert_int_equal(config_validate(&c, &e), 0);

  /* file alone: its values hold */
  config_defaults(&c);
  char *argv2[] = {"edgepulld", "--config="
                                "/nonexistent"};
  assert_int_equal(config_parse_args(&c, ARGC(argv2), argv2, &e), -EP_ENOTFOUND);
  assert_contains(e.msg, "/nonexistent");
  config_defaults(&c);
  assert_int_equal(config_load_file(&c, confpath, &e), 0);
  assert_int_equal(c.tag_ttl_s, 100);
  assert_true(c.gateway);
}

static void test_file_bom_crlf(void **state) {
  struct fx *f = *state;
  struct edgepulld_config c;
  ep_err e = {0};
  const char *p = write_s(f, "crlf.conf", "\xEF\xBB\xBF[edgepulld]\r\ntag-ttl = 42\r\n");
  config_defaults(&c);
  assert_int_equal(config_load_file(&c, p, &e), 0);
  assert_int_equal(c.tag_ttl_s, 42);
}

struct bad_file {
  const char *text;
  int line;
  const char *msg;
};

static void test_file_errors(void **state) {
  static const struct bad_file cases[] = {
      {"[edgepulld]\nlisten = 127.0.0.1:1\nbogus = 1\n", 3, "\"bogus\""},
      {"[edgepulld]\ntag-ttl = 9999999\n", 2, "out of range"},
      {"[edgepulld]\ntag-ttl = ten\n", 2, "tag-ttl"},
      {"[edgepulld]\nthis line is not ini\n", 2, "syntax error"},
      {"[edgepulld]\n[nope\n", 2, "syntax error"},
      {"tag-ttl = 1\n", 1, "outside of any section"},
      {"[edgepulld]\n[other]\ntag-ttl = 1\n", 2, "unknown section [other]"},
      {"[registry]\nurl = http://x\n", 1, "unknown section"},
      {"[registry \"bad host\"]\nurl = http://x\n", 1, "unknown section"},
      {"[registry \"h.io\"]\nurl = ftp://h.io\n", 2, "http://"},
      {"[registry \"h.io\"]\ntoken = x\n", 2, "unknown key"},
      {"[registry \"h.io\"]\nusername = a:b\n", 2, "':'"},
      {"[registry \"h.io\"]\npassword-file = missing\n", 2, "missing"},
      {"[edgepulld]\nconfig = /etc/x\n", 2, "only valid on the command line"},
      {"[edgepulld]\nhelp = 1\n", 2, "only valid on the command line"},
      {"[edgepulld]\ngateway = maybe\n", 2, "not a boolean"},
      {"[edgepulld]\nregistry = h.io\n", 2, "HOST=URL"},
      {"[edgepulld]\nstate-dir = relative\n", 2, "absolute"},
      {"[EdgePulld]\ntag-ttl = 1\n", 1, "unknown section"},
  };
  struct fx *f = *state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct edgepulld_config c;
    ep_err e = {0};
    char want[512];
    const char *p = write_s(f, "bad.conf", cases[i].text);
    config_defaults(&c);
    int r = config_load_file(&c, p, &e);
    if (r >= 0)
      fail_msg("case %zu accepted", i);
    snprintf(want, sizeof want, "%s:%d:", p, cases[i].line);
    assert_contains(e.msg, want);
    assert_contains(e.msg, cases[i].msg);
  }
}

static void test_file_hostile(void **state) {
  struct fx *f = *state;
  struct edgepulld_config c;
  ep_err e = {0};
  char want[300];

  /* an over-long line is refused, never split into two */
  char big[600];
  memset(big, 'a', sizeof big);
  memcpy(big, "[edgepulld]\nstate-dir = /", 25);
  memcpy(big + sizeof big - 16, "\ngateway = true\n", 16);
  const char *p = write_n(f, "long.conf", big, sizeof big, 0600);
  config_defaults(&c);
  assert_int_equal(config_load_file(&c, p, &e), -EP_EINVAL);
  snprintf(want, sizeof want, "%s:2: line longer than", p);
  assert_contains(e.msg, want);
  assert_false(c.gateway);

  p = write_n(f, "nul.conf", "[edgepulld]\ntag-ttl = 1\0 2\n", 26, 0600);
  config_defaults(&c);
  assert_int_equal(config_load_file(&c, p, &e), -EP_EINVAL);
  assert_contains(e.msg, ":2: NUL byte");

  /* password files: bounded, single line */
  char secret[5000];
  memset(secret, 'x', sizeof secret);
  write_n(f, "huge-secret", secret, sizeof secret, 0600);
  p = write_s(f, "pw.conf", "[registry \"h.io\"]\nusername = u\npassword-file = huge-secret\n");
  config_defaults(&c);
  assert_int_equal(config_load_file(&c, p, &e), -EP_ETOOBIG);
  assert_contains(e.msg, "pw.conf:3:");
  write_n(f, "two-lines", "a\nb\n", 4, 0600);
  p = write_s(f, "pw.conf", "[registry \"h.io\"]\npassword-file = two-lines\n");
  config_defaults(&c);
  assert_int_equal(config_load_file(&c, p, &e), -EP_EINVAL);
  assert_contains(e.msg, "control characters");
  write_n(f, "long-secret", secret, 300, 0600);
  p = write_s(f, "pw.conf", "[registry \"h.io\"]\npassword-file = long-secret\n");
  config_defaults(&c);
  assert_true(config_load_file(&c, p, &e) < 0);
  p = write_s(f, "pw.conf", "[registry \"h.io\"]\npassword-file = /\n");
  config_defaults(&c);
  assert_true(config_load_file(&c, p, &e) < 0);
  assert_contains(e.msg, "not a regular file");

  /* a directory or a device is not a config file */
  config_defaults(&c);
  assert_int_equal(config_load_file(&c, f->dir, &e), -EP_EINVAL);
  assert_int_equal(config_load_file(&c, "/dev/zero", &e), -EP_EINVAL);
  assert_int_equal(config_load_file(&c, "/nonexistent/x.conf", &e), -EP_ENOTFOUND);
}

static void test_validate(void **state) {
  struct edgepulld_config c;
  ep_err e = {0};
  (void)state;

  config_defaults(&c);
  strcpy(c.broker, "127.0.0.1:1883");
  assert_int_equal(config_validate(&c, &e), -EP_EINVAL);
  assert_contains(e.msg, "--broker needs --locality");
  strcpy(c.locality, "loc");
  assert_int_equal(config_validate(&c, &e), -EP_EINVAL);
  assert_contains(e.msg, "--broker needs peer TLS");
  c.peer_insecure = true;
  assert_int_equal(config_validate(&c, &e), 0);
  c.node_id[0] = '\0';
  assert_int_equal(config_validate(&c, &e), -EP_EINVAL);

  config_defaults(&c);
  strcpy(c.state_dir, "var/lib");
  assert_int_equal(config_validate(&c, &e), -EP_EINVAL);
  assert_contains(e.msg, "--state-dir");

  config_defaults(&c);
  strcpy(c.listen, "[::1]:5050");
  assert_int_equal(config_validate(&c, &e), 0);
  strcpy(c.peer_listen, "[::1]:5050");
  assert_int_equal(config_validate(&c, &e), -EP_EINVAL);
  strcpy(c.peer_listen, "[::1]");
  assert_int_equal(config_validate(&c, &e), -EP_EINVAL);
  strcpy(c.peer_listen, "0.0.0.0:5051");
  assert_int_equal(config_validate(&c, &e), -EP_EINVAL);
  assert_contains(e.msg, "edgepullctl ca init");
  strcpy(c.peer_ca, "/etc/edgepull/ca.crt");
  assert_int_equal(config_validate(&c, &e), -EP_EINVAL);
  assert_contains(e.msg, "go together");
  strcpy(c.peer_cert, "/etc/edgepull/n1.crt");
  strcpy(c.peer_key, "/etc/edgepull/n1.key");
  assert_int_equal(config_validate(&c, &e), 0);
  c.peer_insecure = true;
  assert_int_equal(config_validate(&c, &e), -EP_EINVAL);
  assert_contains(e.msg, "contradict");
  c.peer_ca[0] = c.peer_cert[0] = c.peer_key[0] = '\0';
  assert_int_equal(config_validate(&c, &e), 0);
  strcpy(c.listen, "localhost:99999");
  assert_int_equal(config_validate(&c, &e), -EP_EINVAL);

  config_defaults(&c);
  assert_int_equal(config_add_registry_mapping(&c, "h.io=https://h.io", &e), 0);
  strcpy(c.registries[0].username, "u");
  assert_int_equal(config_validate(&c, &e), -EP_EINVAL);
  assert_contains(e.msg, "username and password");

  /* the registry table is bounded */
  config_defaults(&c);
  for (int i = 0; i < CONFIG_MAX_REGISTRIES; i++) {
    char spec[64];
    snprintf(spec, sizeof spec, "r%d.io=https://r%d.io", i, i);
    assert_int_equal(config_add_registry_mapping(&c, spec, &e), 0);
  }
  assert_int_equal(config_add_registry_mapping(&c, "one-more.io=https://x.io", &e), -EP_ETOOBIG);
  assert_int_equal(config_add_registry_mapping(&c, "r3.io=http://r3.io:8080/", &e), 0);
  assert_string_equal(c.registries[3].url, "http://r3.io:8080");
  assert_int_equal(config_add_registry_mapping(&c, NULL, NULL), -EP_EINVAL);
}

/* The locality (node agent) options: defaults, bounds, file keys, secrets. */
static void test_locality_options(void **state) {
  struct fx *f = *state;
  struct edgepulld_config c;
  ep_err e = {0};
  char pw[64];

  config_defaults(&c);
  assert_string_equal(c.broker_username, "");
  assert_string_equal(c.broker_password_file, "");
  assert_string_equal(c.broker_ca_file, "");
  assert_string_equal(c.advertise_addr, "");
  assert_int_equal(c.link_mbps, 100);
  assert_int_equal(c.keepalive_s, 10);
  assert_int_equal(c.heartbeat_s, 30);

  const char *secret = write_s(f, "broker.pw", "s3cret:pw\n");
  char secret_path[256];
  snprintf(secret_path, sizeof secret_path, "%s", secret);
  char *argv[] = {"edgepulld",
                  "--broker",
                  "127.0.0.1:1883",
                  "--locality",
                  "loc",
                  "--node-id",
                  "n1",
                  "--broker-username",
                  "node:n1",
                  "--broker-password-file",
                  secret_path,
                  "--broker-ca-file",
                  "/etc/edgepull/ca.pem",
                  "--advertise-addr",
                  "fd00::1",
                  "--link-mbps",
                  "1000000",
                  "--keepalive=5",
                  "--heartbeat",
                  "3600",
                  "--peer-ca=/etc/edgepull/ca.crt",
                  "--peer-cert=/etc/edgepull/n1.crt",
                  "--peer-key",
                  "/etc/edgepull/n1.key"};
  assert_int_equal(config_parse_args(&c, ARGC(argv), argv, &e), 0);
  assert_string_equal(c.broker_username, "node:n1");
  assert_string_equal(c.broker_password_file, secret_path);
  assert_string_equal(c.broker_ca_file, "/etc/edgepull/ca.pem");
  assert_string_equal(c.advertise_addr, "fd00::1");
  assert_int_equal(c.link_mbps, 1000000);
  assert_int_equal(c.keepalive_s, 5);
  assert_int_equal(c.heartbeat_s, 3600);
  assert_string_equal(c.peer_cert, "/etc/edgepull/n1.crt");
  assert_false(c.peer_insecure);
  assert_int_equal(config_validate(&c, &e), 0);
  assert_int_equal(names_secret_read(c.broker_password_file, pw, sizeof pw, &e), 0);
  assert_string_equal(pw, "s3cret:pw");

  /* the same keys in a file */
  config_defaults(&c);
  const char *conf = write_s(f, "loc.conf",
                             "[edgepulld]\nbroker-username = u\nadvertise-addr = node1.lan\n"
                             "link-mbps = 1000\nkeepalive = 600\nheartbeat = 1\n");
  assert_int_equal(config_load_file(&c, conf, &e), 0);
  assert_string_equal(c.broker_username, "u");
  assert_string_equal(c.advertise_addr, "node1.lan");
  assert_int_equal(c.link_mbps, 1000);
  assert_int_equal(c.keepalive_s, 600);
  assert_int_equal(c.heartbeat_s, 1);

  /* bounds and forms */
  static const char *const bad[][2] = {
      {"--link-mbps", "0"},           {"--link-mbps", "1000001"},
      {"--keepalive", "4"},           {"--keepalive", "601"},
      {"--heartbeat", "0"},           {"--heartbeat", "3601"},
      {"--advertise-addr", "a:b"},    {"--advertise-addr", "[::1]"},
      {"--advertise-addr", "h:80"},   {"--broker-password-file", "rel/pw"},
      {"--broker-ca-file", "ca.pem"}, {"--broker-username", "a\tb"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *args[] = {"edgepulld", (char *)bad[i][0], (char *)bad[i][1]};
    config_defaults(&c);
    assert_int_equal(config_parse_args(&c, ARGC(args), args, &e), -EP_EINVAL);
    assert_contains(e.msg, bad[i][0]);
  }

  /* a password needs a username */
  config_defaults(&c);
  strcpy(c.broker_password_file, "/etc/edgepull/broker.pw");
  assert_int_equal(config_validate(&c, &e), -EP_EINVAL);
  assert_contains(e.msg, "--broker-password-file needs --broker-username");

  /* the secret file is bounded (4 KiB) and never echoed */
  char big[5000];
  memset(big, 'x', sizeof big);
  const char *p = write_n(f, "big.pw", big, sizeof big, 0600);
  assert_int_equal(names_secret_read(p, pw, sizeof pw, &e), -EP_ETOOBIG);
  p = write_s(f, "long.pw",
              "0123456789012345678901234567890123456789012345678901234567890123456789");
  assert_int_equal(names_secret_read(p, pw, sizeof pw, &e), -EP_ETOOBIG);
  assert_null(strstr(e.msg, "0123456789"));
  p = write_s(f, "ctl.pw",
              "a\x01"
              "b");
  assert_int_equal(names_secret_read(p, pw, sizeof pw, &e), -EP_EINVAL);
  assert_int_equal(names_secret_read("/nonexistent/pw", pw, sizeof pw, &e), -EP_ENOTFOUND);
  assert_int_equal(names_secret_read(NULL, pw, sizeof pw, &e), -EP_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_cli_flags),
      cmocka_unit_test(test_cli_errors),
      cmocka_unit_test(test_help_version),
      cmocka_unit_test_setup_teardown(test_file_and_override, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_bom_crlf, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_hostile, setup, teardown),
      cmocka_unit_test(test_validate),
      cmocka_unit_test_setup_teardown(test_locality_options, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
