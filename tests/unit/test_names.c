/* Unit tests for common/names: every grammar's edges and hostile inputs,
 * including the cases the older copies (plugin/ref.c, plugin/listen.c,
 * plugin/upstream*.c, plugin/config.c, coordinator/opts.c) are tested with,
 * so switching a caller cannot change what it accepts unnoticed. */
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

#include "common/names.h"
#include "ep_test.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static char *repeat(char c, size_t n) {
  char *s = malloc(n + 1);
  assert_non_null(s);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

static void assert_clean_msg(const ep_err *e) {
  assert_true(e->msg[0] != '\0');
  for (const char *p = e->msg; *p != '\0'; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      fail_msg("control character in message: %s", e->msg);
}

/* ---- hosts ---------------------------------------------------------------- */

static void test_registry_hosts(void **state) {
  static const char *const ok[] = {"docker.io",
                                   "ghcr.io",
                                   "localhost",
                                   "localhost:5000",
                                   "127.0.0.1",
                                   "127.0.0.1:5000",
                                   "[::1]",
                                   "[::1]:5000",
                                   "a",
                                   "A.B",
                                   "host:1",
                                   "[2001:db8::1]:65535",
                                   "registry-1.docker.io",
                                   "my-registry.example.com:443",
                                   "xn--bcher-kva.example"};
  static const char *const bad[] = {"",           "localhost:0",
                                    "a b",        "host:99999",
                                    "host:",      ":5000",
                                    "host:65536", "host:+80",
                                    "host:080",   "host/x",
                                    "user@host",  "host%2f",
                                    "host?x",     "host#x",
                                    "-a.com",     "a-.com",
                                    "a..b",       "a.",
                                    ".a",         "[::1",
                                    "[::1]x",     "[zz::1]",
                                    "256.1.1.1",  "1.2.3",
                                    "1.2.3.4.5",  "[fe80::1%eth0]",
                                    "a_b.com",    "host:1:2",
                                    "[]",         "[::1]:",
                                    "h\tx",       "h\n",
                                    "::1",        "123",
                                    "host: 80",   "999.1.1.1",
                                    "[1.2.3.4]",  "host:-1",
                                    "host:0080",  "[::1]:0",
                                    "host:00"};
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(ok); i++)
    if (!names_registry_valid(ok[i]))
      fail_msg("registry \"%s\" should be valid", ok[i]);
  for (size_t i = 0; i < ARRAY_LEN(bad); i++)
    if (names_registry_valid(bad[i]))
      fail_msg("registry \"%s\" should be invalid", bad[i]);
  assert_false(names_registry_valid(NULL));
}

static void test_host_bounds(void **state) {
  char label[80];
  (void)state;
  snprintf(label, sizeof label, "%s.com",
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  assert_true(names_host_valid(label)); /* a 63-character label */
  snprintf(label, sizeof label, "%s.com",
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  assert_false(names_host_valid(label)); /* 64 */
  char name[300] = "";
  for (int i = 0; i < 50; i++)
    strcat(name, "abcd.");
  strcat(name, "com"); /* 253 */
  assert_true(names_host_valid(name));
  strcat(name, "x"); /* 254 */
  assert_false(names_host_valid(name));
  char *huge = repeat('a', 100000);
  assert_false(names_host_valid(huge));
  assert_false(names_registry_valid(huge));
  free(huge);
  /* a host of 253 plus ":65535" is 259 > NAMES_HOST_MAX */
  name[253] = '\0';
  strcat(name, ":65535");
  assert_false(names_registry_valid(name));
  name[249] = '\0';
  strcat(name, ":65535"); /* 255 */
  assert_true(names_registry_valid(name));
}

static void test_host_no_port(void **state) {
  (void)state;
  assert_true(names_host_valid("docker.io"));
  assert_true(names_host_valid("[::1]"));
  assert_true(names_host_valid("10.0.0.1"));
  assert_false(names_host_valid("docker.io:443"));
  assert_false(names_host_valid("[::1]:5"));
  assert_false(names_host_valid("::1"));
  assert_false(names_host_valid(NULL));
  assert_false(names_host_valid(""));
}

static void test_addr(void **state) {
  static const char *const ok[] = {"node1.lan", "10.0.0.7",       "::1", "fe80::1", "2001:db8::5",
                                   "n",         "::ffff:10.0.0.1"};
  static const char *const bad[] = {"",       "[::1]",          "10.0.0.7:80", "fe80::1%eth0",
                                    "a b",    "node_1",         "1.2.3",       "zz::1",
                                    "host/x", "999.999.999.999"};
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(ok); i++)
    if (!names_addr_valid(ok[i]))
      fail_msg("addr \"%s\" should be valid", ok[i]);
  for (size_t i = 0; i < ARRAY_LEN(bad); i++)
    if (names_addr_valid(bad[i]))
      fail_msg("addr \"%s\" should be invalid", bad[i]);
  assert_false(names_addr_valid(NULL));
}

/* ---- host:port -------------------------------------------------------------- */

static void test_hostport_parse(void **state) {
  struct names_hostport hp;
  ep_err e = {0};
  (void)state;
  assert_int_equal(names_hostport_parse("127.0.0.1:5050", 0, &hp, &e), 0);
  assert_string_equal(hp.host, "127.0.0.1");
  assert_int_equal(hp.port, 5050);
  assert_true(hp.has_port);
  assert_false(hp.ipv6);
  assert_int_equal(names_hostport_parse("[::1]:80", 0, &hp, &e), 0);
  assert_string_equal(hp.host, "::1");
  assert_int_equal(hp.port, 80);
  assert_true(hp.ipv6);
  assert_int_equal(names_hostport_parse("broker.lan:1", 0, &hp, &e), 0);
  assert_int_equal(hp.port, 1);
  assert_int_equal(names_hostport_parse("broker.lan:65535", 0, &hp, &e), 0);
  assert_int_equal(hp.port, 65535);
  /* the port is required by default */
  assert_int_equal(names_hostport_parse("broker.lan", 0, &hp, &e), -EP_EINVAL);
  assert_clean_msg(&e);
  assert_string_equal(hp.host, ""); /* cleared on failure */
  assert_int_equal(names_hostport_parse("[::1]", 0, &hp, &e), -EP_EINVAL);
  /* optional: absent is port 0, has_port false */
  assert_int_equal(names_hostport_parse("broker.lan", NAMES_PORT_OPTIONAL, &hp, &e), 0);
  assert_false(hp.has_port);
  assert_int_equal(hp.port, 0);
  assert_int_equal(names_hostport_parse("[fe80::2]", NAMES_PORT_OPTIONAL, &hp, &e), 0);
  assert_string_equal(hp.host, "fe80::2");
  assert_int_equal(names_hostport_parse("host:", NAMES_PORT_OPTIONAL, &hp, &e), -EP_EINVAL);
  /* port 0 only when asked */
  assert_int_equal(names_hostport_parse("0.0.0.0:0", 0, &hp, &e), -EP_EINVAL);
  assert_int_equal(names_hostport_parse("0.0.0.0:0", NAMES_PORT_ZERO, &hp, &e), 0);
  assert_true(hp.has_port);
  assert_int_equal(hp.port, 0);
  assert_int_equal(names_hostport_parse("0.0.0.0:00", NAMES_PORT_ZERO, &hp, &e), -EP_EINVAL);
  /* out may be NULL, err may be NULL */
  assert_int_equal(names_hostport_parse("a:1", 0, NULL, NULL), 0);
  assert_int_equal(names_hostport_parse("a", 0, NULL, NULL), -EP_EINVAL);
  assert_int_equal(names_hostport_parse(NULL, 0, NULL, &e), -EP_EINVAL);
  assert_clean_msg(&e);
}

/* listen.c's own cases: an IP literal and a port, 0 allowed. */
static void test_hostport_listen(void **state) {
  static const char *const bad[] = {
      "",           "127.0.0.1",    "127.0.0.1:", ":80",       "localhost:80", "127.0.0.1:65536",
      "1.2.3.4:-1", "1.2.3.4:+80",  "[::1:80",    "[::1]80",   "::1:80x",      "1.2.3.4:80 ",
      "[zz]:80",    "999.1.1.1:80", "::1:80",     "[::1]:080", "\n:80",        "1.2.3.4:8\n"};
  const unsigned f = NAMES_IP_ONLY | NAMES_PORT_ZERO;
  struct names_hostport hp;
  ep_err e = {0};
  (void)state;
  assert_int_equal(names_hostport_parse("127.0.0.1:5050", f, &hp, &e), 0);
  assert_int_equal(names_hostport_parse("[::1]:80", f, &hp, &e), 0);
  assert_int_equal(names_hostport_parse("0.0.0.0:0", f, &hp, &e), 0);
  assert_int_equal(names_hostport_parse("[::]:5051", f, &hp, &e), 0);
  assert_string_equal(hp.host, "::");
  for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
    memset(&e, 0, sizeof e);
    if (names_hostport_parse(bad[i], f, &hp, &e) != -EP_EINVAL)
      fail_msg("listen \"%s\" should be invalid", bad[i]);
    assert_clean_msg(&e);
  }
  char *long_spec = repeat('1', 299);
  assert_int_equal(names_hostport_parse(long_spec, f, &hp, NULL), -EP_EINVAL);
  free(long_spec);
}

/* The broker forms of coordinator/opts.c and ctl_deploy.c. */
static void test_hostport_broker(void **state) {
  struct names_hostport hp;
  (void)state;
  assert_int_equal(names_hostport_parse("127.0.0.1", NAMES_PORT_OPTIONAL, &hp, NULL), 0);
  assert_int_equal(names_hostport_parse("mqtt.lan:8883", NAMES_PORT_OPTIONAL, &hp, NULL), 0);
  assert_int_equal(hp.port, 8883);
  assert_int_equal(names_hostport_parse("[::1]:1883", NAMES_PORT_OPTIONAL, &hp, NULL), 0);
  static const char *const bad[] = {"::1",   "fe80::1:1883", "a/b:1", "a b:1",   "mqtt:0",
                                    "mqtt:", "[::1]x",       "[]:1",  "m\x7f:1", "mqtt:1883 "};
  for (size_t i = 0; i < ARRAY_LEN(bad); i++)
    if (names_hostport_parse(bad[i], NAMES_PORT_OPTIONAL, &hp, NULL) == 0)
      fail_msg("broker \"%s\" should be invalid", bad[i]);
}

static void test_hostport_format(void **state) {
  char buf[64];
  ep_err e = {0};
  (void)state;
  assert_int_equal(names_hostport_format(buf, sizeof buf, "127.0.0.1", 5050, &e), 0);
  assert_string_equal(buf, "127.0.0.1:5050");
  assert_int_equal(names_hostport_format(buf, sizeof buf, "::1", 80, &e), 0);
  assert_string_equal(buf, "[::1]:80");
  assert_int_equal(names_hostport_format(buf, 8, "docker.io", 443, &e), -EP_ETOOBIG);
  assert_string_equal(buf, "");
  assert_clean_msg(&e);
  assert_int_equal(names_hostport_format(buf, 0, "a", 1, NULL), -EP_ETOOBIG);
  /* what format writes, parse reads back */
  struct names_hostport hp;
  assert_int_equal(names_hostport_format(buf, sizeof buf, "2001:db8::7", 65535, &e), 0);
  assert_int_equal(names_hostport_parse(buf, 0, &hp, &e), 0);
  assert_string_equal(hp.host, "2001:db8::7");
  assert_int_equal(hp.port, 65535);
}

/* ---- repository, tag, ids ----------------------------------------------------- */

static void test_repo(void **state) {
  static const char *const ok[] = {"a",
                                   "alpine",
                                   "library/alpine",
                                   "a/b/c",
                                   "a.b",
                                   "a_b",
                                   "a__b",
                                   "a-b",
                                   "a--b",
                                   "a---b",
                                   "0",
                                   "9a",
                                   "foo/blobs",
                                   "manifests",
                                   "v2",
                                   "my-org/my.repo",
                                   "a0.b1_c2__d3-e4",
                                   "library/ubuntu-22.04",
                                   "k8s.gcr.io/pause",
                                   "team/sub/sub2/image",
                                   "foo/manifests",
                                   "blobs",
                                   "x1/y2/z3",
                                   "a.b.c/d-e/f__g",
                                   "ab-cd_ef"};
  static const char *const bad[] = {
      "",       "../etc", "a//b", "A",    "a..b", "-a",   "a/",        "/a",  "%2e%2e", "a_",
      "a___b",  "a.-b",   "a-.b", "_a",   ".a",   "a b",  "a\tb",      "a:b", "a@b",    "a/./b",
      "a/../b", "..",     ".",    "a/-b", "ab/",  "a\\b", "a\xc3\xa9", "a/B", "a._b",   "a\nb",
      "ab-_cd", "a-",     "a/b/", "a//",  "%2F",  "a?b",  "a#b"};
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(ok); i++)
    if (!names_repo_valid(ok[i]))
      fail_msg("repo \"%s\" should be valid", ok[i]);
  for (size_t i = 0; i < ARRAY_LEN(bad); i++)
    if (names_repo_valid(bad[i]))
      fail_msg("repo \"%s\" should be invalid", bad[i]);
  assert_false(names_repo_valid(NULL));
  char *max = repeat('a', 255);
  assert_true(names_repo_valid(max));
  free(max);
  char *big = repeat('a', 256);
  assert_false(names_repo_valid(big));
  free(big);
  assert_false(names_repo_valid_n("a\0b", 3));
  assert_false(names_repo_valid_n("a/\0", 3));
  assert_true(names_repo_valid_n("abc/", 3));
  assert_false(names_repo_valid_n("abc", 0));
  assert_false(names_repo_valid_n(NULL, 3));
  assert_false(names_repo_valid_n("a_", 2));
  assert_true(names_repo_valid_n("a__b", 4));
  assert_false(names_repo_valid_n("a__", 3));
}

static void test_tag(void **state) {
  static const char *const ok[] = {"latest", "3.19",   "_",    "v1.0.0-rc1", "A",
                                   "1",      "_x.y-z", "a..b", "LATEST",     "a-"};
  static const char *const bad[] = {"",    ".a",       "-a",  "a/b", "a:b", "a b",
                                    "a\n", "\xc3\xa9", "a+b", "a@b", "a%20"};
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(ok); i++)
    if (!names_tag_valid(ok[i]))
      fail_msg("tag \"%s\" should be valid", ok[i]);
  for (size_t i = 0; i < ARRAY_LEN(bad); i++)
    if (names_tag_valid(bad[i]))
      fail_msg("tag \"%s\" should be invalid", bad[i]);
  char *t = repeat('a', 128);
  assert_true(names_tag_valid(t));
  free(t);
  t = repeat('a', 129);
  assert_false(names_tag_valid(t));
  free(t);
  assert_false(names_tag_valid(NULL));
}

static void test_ids(void **state) {
  static const char *const ok[] = {"n1", "gw", "node-1.lan_a", "A", "0", "...", "-", "_x"};
  static const char *const bad[] = {"",    "a b",      "a/b", "a+b", "a#",
                                    "a\n", "\xc3\xa9", "a:b", "a*",  "a$"};
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
    assert_true(names_node_id_valid(ok[i]));
    assert_true(names_locality_valid(ok[i]));
  }
  for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
    if (names_node_id_valid(bad[i]) || names_locality_valid(bad[i]))
      fail_msg("id \"%s\" should be invalid", bad[i]);
  }
  char *id = repeat('x', 63);
  assert_true(names_node_id_valid(id));
  free(id);
  id = repeat('x', 64);
  assert_false(names_node_id_valid(id));
  assert_false(names_locality_valid(id));
  free(id);
  assert_false(names_node_id_valid(NULL));
  assert_false(names_locality_valid(NULL));
}

/* ---- URLs ------------------------------------------------------------------- */

static void test_url(void **state) {
  char out[NAMES_URL_MAX + 1];
  ep_err e = {0};
  (void)state;
  struct {
    const char *in, *want;
  } ok[] = {{"http://127.0.0.1:5000", "http://127.0.0.1:5000"},
            {"https://mirror.example:8443/", "https://mirror.example:8443"},
            {"HTTP://mirror.lan:5000/", "http://mirror.lan:5000"},
            {"HttpS://Quay.io", "https://Quay.io"},
            {"https://[::1]:5000", "https://[::1]:5000"},
            {"https://10.0.0.1:443", "https://10.0.0.1:443"}};
  for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
    assert_int_equal(names_url_parse(ok[i].in, out, sizeof out, &e), 0);
    assert_string_equal(out, ok[i].want);
  }
  static const char *const bad[] = {
      "ftp://h",       "https://",    "https://h/path",     "https://u:p@h",
      "https://h?x=1", "https://h:0", "https://h:65536",    "https://h:80x",
      "//h",           "h:5000",      "https://h//",        "https://h#f",
      "https://h /",   "file:///etc", "https://h:5000/v2/", "",
      "http:/h",       "https:h",     "http://h\n",         "http://a_b",
      "https://[::1",  "http://h:",   " http://h"};
  for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
    memset(&e, 0, sizeof e);
    if (names_url_parse(bad[i], out, sizeof out, &e) != -EP_EINVAL)
      fail_msg("URL \"%s\" should be invalid", bad[i]);
    assert_clean_msg(&e);
  }
  assert_int_equal(names_url_parse("ftp://h", out, sizeof out, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "http://"));
  /* what plugin/config.c's tests look for in the message */
  assert_int_equal(names_url_parse("http://x/path", out, sizeof out, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "path"));
  assert_int_equal(names_url_parse("http://user@x", out, sizeof out, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "host"));
  assert_int_equal(names_url_parse("", out, sizeof out, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "http://"));
  char longurl[300];
  snprintf(longurl, sizeof longurl, "http://%0255d/x", 0);
  assert_int_equal(names_url_parse(longurl, out, sizeof out, &e), -EP_EINVAL);
  char *huge = malloc(100008);
  assert_non_null(huge);
  memcpy(huge, "http://", 7);
  memset(huge + 7, 'a', 100000);
  huge[100007] = '\0';
  assert_int_equal(names_url_parse(huge, out, sizeof out, &e), -EP_EINVAL);
  assert_true(strlen(e.msg) < sizeof e.msg);
  free(huge);
  assert_int_equal(names_url_parse(NULL, out, sizeof out, &e), -EP_EINVAL);
  /* a valid URL that does not fit */
  assert_int_equal(names_url_parse("https://docker.io", out, 10, &e), -EP_ETOOBIG);
  assert_int_equal(names_url_parse("https://docker.io", out, 18, &e), 0);
  assert_int_equal(names_url_parse("https://docker.io", out, 17, &e), -EP_ETOOBIG);
}

/* ---- secret files ------------------------------------------------------------ */

struct fx {
  char dir[64];
  char path[128];
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -1;
  if (ep_test_tmpdir(f->dir, sizeof f->dir, "ep-names-") < 0) {
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  ep_test_rm_rf(f->dir);
  free(f);
  return 0;
}

static const char *write_n(struct fx *f, const char *name, const void *data, size_t n, int mode) {
  snprintf(f->path, sizeof f->path, "%s/%s", f->dir, name);
  FILE *fp = fopen(f->path, "we");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, n, fp), n);
  fclose(fp);
  chmod(f->path, (mode_t)mode);
  return f->path;
}

static void test_secret_ok(void **state) {
  struct fx *f = *state;
  char out[NAMES_SECRET_MAX + 1];
  ep_err e = {0};
  struct {
    const char *data, *want;
  } ok[] = {{"s3cr3t\n", "s3cr3t"}, {"pw2\r\n", "pw2"}, {"nonl", "nonl"},
            {"a b:c\n", "a b:c"},   {"x\r", "x"},       {" lead", " lead"}};
  for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
    const char *p = write_n(f, "s", ok[i].data, strlen(ok[i].data), 0600);
    assert_int_equal(names_secret_read(p, out, sizeof out, &e), 0);
    assert_string_equal(out, ok[i].want);
  }
  /* world-readable: warned, accepted */
  const char *p = write_n(f, "w", "pw\n", 3, 0644);
  assert_int_equal(names_secret_read(p, out, sizeof out, &e), 0);
  /* a symlink is followed */
  char link[160];
  snprintf(link, sizeof link, "%s/link", f->dir);
  assert_int_equal(symlink(p, link), 0);
  assert_int_equal(names_secret_read(link, out, sizeof out, &e), 0);
  assert_string_equal(out, "pw");
  /* exactly the bound, and the bound plus its newline */
  char *big = repeat('x', NAMES_SECRET_MAX + 1);
  p = write_n(f, "max", big, NAMES_SECRET_MAX, 0600);
  assert_int_equal(names_secret_read(p, out, sizeof out, &e), 0);
  assert_int_equal(strlen(out), NAMES_SECRET_MAX);
  free(big);
}

static void test_secret_bad(void **state) {
  struct fx *f = *state;
  char out[NAMES_SECRET_MAX + 1];
  ep_err e = {0};
  struct {
    const char *data;
    size_t n;
    int rc;
    const char *msg;
  } bad[] = {{"", 0, -EP_EINVAL, "empty"},
             {"\n", 1, -EP_EINVAL, "empty"},
             {"\r\n", 2, -EP_EINVAL, "empty"},
             {"a\nb\n", 4, -EP_EINVAL, "control characters"},
             {"a\n\n", 3, -EP_EINVAL, "control characters"},
             {"a\0b", 3, -EP_EINVAL, "control characters"},
             {"bell\a", 5, -EP_EINVAL, "control characters"},
             {"a\tb", 3, -EP_EINVAL, "control characters"},
             {"del\x7f", 4, -EP_EINVAL, "control characters"}};
  for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
    const char *p = write_n(f, "bad", bad[i].data, bad[i].n, 0600);
    memset(&e, 0, sizeof e);
    assert_int_equal(names_secret_read(p, out, sizeof out, &e), bad[i].rc);
    assert_non_null(strstr(e.msg, bad[i].msg));
    assert_non_null(strstr(e.msg, "/bad")); /* names the file */
    assert_clean_msg(&e);
  }
  char *big = repeat('x', 5000);
  const char *p = write_n(f, "huge", big, 5000, 0600);
  assert_int_equal(names_secret_read(p, out, sizeof out, &e), -EP_ETOOBIG);
  assert_non_null(strstr(e.msg, "huge"));
  p = write_n(f, "over", big, NAMES_SECRET_MAX + 1, 0600);
  assert_int_equal(names_secret_read(p, out, sizeof out, &e), -EP_ETOOBIG);
  /* fits the file bound, not the caller's buffer */
  p = write_n(f, "long", big, 300, 0600);
  char small[256];
  assert_int_equal(names_secret_read(p, small, sizeof small, &e), -EP_ETOOBIG);
  free(big);
  /* not there, not a file, no path */
  snprintf(f->path, sizeof f->path, "%s/missing", f->dir);
  assert_int_equal(names_secret_read(f->path, out, sizeof out, &e), -EP_ENOTFOUND);
  assert_non_null(strstr(e.msg, "missing"));
  assert_int_equal(names_secret_read(f->dir, out, sizeof out, &e), -EP_EINVAL);
  assert_non_null(strstr(e.msg, "not a regular file"));
  assert_int_equal(names_secret_read("/dev/null", out, sizeof out, &e), -EP_EINVAL);
  snprintf(f->path, sizeof f->path, "%s/fifo", f->dir);
  assert_int_equal(mkfifo(f->path, 0600), 0);
  assert_int_equal(names_secret_read(f->path, out, sizeof out, &e), -EP_EINVAL); /* no hang */
  assert_int_equal(names_secret_read(NULL, out, sizeof out, &e), -EP_EINVAL);
  assert_int_equal(names_secret_read("", out, sizeof out, &e), -EP_EINVAL);
  assert_int_equal(names_secret_read("/x", NULL, 0, &e), -EP_EINVAL);
  /* a hostile file name is quoted */
  assert_int_equal(names_secret_read("/nonexistent/\x1b[2J", out, sizeof out, &e), -EP_ENOTFOUND);
  assert_clean_msg(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_registry_hosts),
      cmocka_unit_test(test_host_bounds),
      cmocka_unit_test(test_host_no_port),
      cmocka_unit_test(test_addr),
      cmocka_unit_test(test_hostport_parse),
      cmocka_unit_test(test_hostport_listen),
      cmocka_unit_test(test_hostport_broker),
      cmocka_unit_test(test_hostport_format),
      cmocka_unit_test(test_repo),
      cmocka_unit_test(test_tag),
      cmocka_unit_test(test_ids),
      cmocka_unit_test(test_url),
      cmocka_unit_test_setup_teardown(test_secret_ok, setup, teardown),
      cmocka_unit_test_setup_teardown(test_secret_bad, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
