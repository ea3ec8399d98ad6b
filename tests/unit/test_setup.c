/* `edgepullctl setup`'s file handling: the strict TOML reader on odd and
 * hostile input, containerd's config.toml edits (only inserted lines or
 * replaced values, idempotent, reparsed), Docker's daemon.json merge, the
 * podman drop-in, and apply + undo restoring files byte for byte. */
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

#include "ctl/ctl_setup.h"
#include "ep_test.h"

#define CRI "[plugins.\"io.containerd.grpc.v1.cri\"]"
#define REG "[plugins.\"io.containerd.grpc.v1.cri\".registry]"

static int parse(const char *s, ep_err *e) {
  struct setup_toml t;
  int r = setup_toml_parse(s, strlen(s), "t.toml", &t, e);
  if (r == 0)
    setup_toml_free(&t);
  return r;
}

static void test_toml_accepts(void **state) {
  (void)state;
  static const char *const ok[] = {
      "",
      "# only a comment\n",
      "a = 1\r\nb = 'x'\r\n[t]\r\nc = true\r\n",
      "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"\"\n",
      "\"k\u00e9y\" = \"v\\u00e9\\U0001F600\" # caf\u00e9 \xe2\x98\x95\n",
      "s = \"\"\"\nmulti\n  \"quoted\" \\\n  line\"\"\"\nl = '''\nraw \\n'''\n",
      "arr = [\n  1, # one\n  \"two\",\n  [3.5, -4e2], {x = 1},\n]\n",
      "it = { a = 1, b.c = \"d\", e = { f = [1] } }\n",
      "[[registry]]\nprefix = \"a\"\n[[registry.mirror]]\nlocation = \"m\"\n"
      "[[registry]]\nprefix = \"b\"\n",
      "[a.b.c]\nx = 1\n[a]\ny = 2\n",
  };
  ep_err e = {0};
  for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
    if (parse(ok[k], &e) != 0)
      fail_msg("rejected case %zu: %s", k, e.msg);
  }
  struct setup_toml t;
  const char *s = "[[registry]]\nprefix = \"a\"\n[[registry]]\nprefix = \"b\"\n"
                  "x.y = { z = \"w\" }\n";
  assert_int_equal(setup_toml_parse(s, strlen(s), "t", &t, &e), 0);
  const struct setup_tkey *k = setup_toml_key(&t, "registry" SETUP_SEP "\x1e"
                                                  "1" SETUP_SEP "prefix");
  assert_non_null(k);
  assert_string_equal(k->str, "b");
  k = setup_toml_key(&t, "registry" SETUP_SEP "\x1e"
                         "1" SETUP_SEP "x" SETUP_SEP "y" SETUP_SEP "z");
  assert_non_null(k);
  assert_int_equal(k->line, 5);
  setup_toml_free(&t);
}

static void test_toml_rejects(void **state) {
  (void)state;
  static const struct {
    const char *in;
    const char *msg;
  } bad[] = {
      {"a = \"open\n", "t.toml:1: newline in a string"},
      {"a = 1\na = 2\n", "t.toml:2: key defined twice"},
      {"[t]\n[t]\n", "t.toml:2: table defined twice"},
      {"d = 1979-05-27\n", "date-times"},
      {"a = 1\rb = 2\n", "t.toml:1:"},
      {"a = \"\\q\"\n", "unknown escape"},
      {"a = \"\xff\"\n", "not UTF-8"},
      {"a\n", "expected '='"},
      {"[t\n", "expected ']'"},
      {"a = [1, 2\n", "expected ',' or ']'"},
      {"a = {b = 1,}\n", "expected a key"},
      {"a = 1 b = 2\n", "end of the line"},
      {"# bell \x07\n", "control character"},
      {"n = 0x_ff\n", "misplaced '_'"},
      {"n = 012\n", "leading zero"},
      {"a = \"\\ud800\"\n", "Unicode scalar"},
      {"\xef\xbb\xbf"
       "a = 1\n",
       "byte order mark"},
      {"x = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n", "too deep"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    ep_err e = {0};
    if (parse(bad[k].in, &e) >= 0)
      fail_msg("accepted case %zu", k);
    if (strstr(e.msg, bad[k].msg) == NULL)
      fail_msg("case %zu: message '%s' lacks '%s'", k, e.msg, bad[k].msg);
  }
  char deep[400] = "x = ";
  for (int k = 0; k < 60; k++)
    strcat(deep, "{a = ");
  strcat(deep, "1");
  for (int k = 0; k < 60; k++)
    strcat(deep, "}");
  ep_err e = {0};
  assert_true(parse(deep, &e) < 0);
  assert_non_null(strstr(e.msg, "too deep"));
  assert_true(setup_toml_parse("a\0b", 3, "t.toml", &(struct setup_toml){0}, &e) < 0);
}

/* Runs the containerd edit; returns its result and the new text in *out. */
static int cd_edit(const char *in, bool snap, char **out, struct setup_cd *cd, ep_err *e) {
  *cd = (struct setup_cd){.mirror = "127.0.0.1:5050", .snapshotter = snap};
  size_t len = 0;
  return setup_containerd_edit(in, strlen(in), "config.toml", cd, out, &len, e);
}

/* Edits, checks the result is expected, and that a second run changes
 * nothing. */
static void cd_expect(const char *in, bool snap, const char *want) {
  char *out = NULL, *again = NULL;
  struct setup_cd cd;
  ep_err e = {0};
  if (cd_edit(in, snap, &out, &cd, &e) != 1)
    fail_msg("edit failed: %s", e.msg);
  assert_string_equal(out, want);
  assert_int_equal(cd_edit(out, snap, &again, &cd, &e), 0);
  assert_null(again);
  free(out);
}

static void test_containerd_edits(void **state) {
  (void)state;
  cd_expect("", false, "version = 2\n\n" REG "\n  config_path = \"/etc/containerd/certs.d\"\n");
  /* Comments, layout and CRLF kept; the key goes under the header. */
  cd_expect("# top \xc3\xa9\r\nversion = 2 # v\r\n\r\n" REG "  # reg\r\n    other = 1\r\n", false,
            "# top \xc3\xa9\r\nversion = 2 # v\r\n\r\n" REG "  # reg\r\n"
            "  config_path = \"/etc/containerd/certs.d\"\r\n    other = 1\r\n");
  /* An empty config_path (containerd config default) has its value replaced. */
  cd_expect("version = 2\n" REG "\n  config_path = \"\"  # keep\n", false,
            "version = 2\n" REG "\n  config_path = \"/etc/containerd/certs.d\"  # keep\n");
  /* Set through a dotted key: only the value changes. */
  cd_expect("version = 2\n" CRI "\n  registry.config_path = ''\n", false,
            "version = 2\n" CRI "\n  registry.config_path = \"/etc/containerd/certs.d\"\n");
  /* Only sub-tables exist: the table is appended; header on the last line. */
  cd_expect("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors]", false,
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors]\n\n" REG
            "\n  config_path = \"/etc/containerd/certs.d\"\n");
  cd_expect("version = 2\n" REG, false,
            "version = 2\n" REG "\n  config_path = \"/etc/containerd/certs.d\"\n");
  /* The snapshotter: existing values replaced, the proxy plugin appended. */
  cd_expect("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n"
            "  snapshotter = \"overlayfs\"\n  disable_snapshot_annotations = true\n"
            "[proxy_plugins.other]\n  type = \"snapshot\"\n",
            true,
            "version = 2\n"
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n"
            "  snapshotter = \"edgepull\"\n  disable_snapshot_annotations = false\n"
            "[proxy_plugins.other]\n  type = \"snapshot\"\n\n" REG
            "\n  config_path = \"/etc/containerd/certs.d\"\n\n[proxy_plugins.edgepull]\n"
            "  type = \"snapshot\"\n  address = \"/run/edgepull/snapshotter.sock\"\n");
}

static void test_containerd_existing_and_refused(void **state) {
  (void)state;
  char *out = NULL;
  struct setup_cd cd;
  ep_err e = {0};
  assert_int_equal(
      cd_edit("version = 2\n" REG "\nconfig_path = \"/opt/certs:/etc/x\"\n", false, &out, &cd, &e),
      0);
  assert_string_equal(cd.certs_dir, "/opt/certs");
  assert_true(cd.certs_dir_existing);
  static const struct {
    const char *in;
    const char *msg;
  } bad[] = {
      {"[plugins]\nx = 1\n", "no `version = 2`"},
      {"version = 3\n", "config.toml:1: unsupported config version"},
      {"version = 2\n" CRI "\nregistry = { mirrors = {} }\n", "config.toml:3:"},
      {"version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n"
       "endpoint = [\"https://x\"]\n",
       "config.toml:3: the CRI registry has `mirrors`"},
      {"version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r\".tls]\n"
       "insecure_skip_verify = true\n",
       "`configs` with tls"},
      {"version = 2\n" REG "\nconfig_path = 5\n", "config.toml:3: "},
      {"version = 2\nplugins = 1\n", "config.toml:2:"},
      {"version = 2\n[[plugins.\"io.containerd.grpc.v1.cri\"]]\n", "config.toml:2: an array"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    e = (ep_err){0};
    if (cd_edit(bad[k].in, false, &out, &cd, &e) >= 0)
      fail_msg("accepted case %zu", k);
    if (strstr(e.msg, bad[k].msg) == NULL)
      fail_msg("case %zu: message '%s' lacks '%s'", k, e.msg, bad[k].msg);
    assert_null(out);
  }
}

static void docker_expect(const char *in, int rc, const char *want) {
  char *out = NULL;
  size_t len = 0;
  ep_err e = {0};
  int r = setup_docker_merge(in, strlen(in), "daemon.json", "127.0.0.1:5050", &out, &len, &e);
  if (r != rc)
    fail_msg("merge returned %d (%s), wanted %d", r, e.msg, rc);
  if (want != NULL && r == 1)
    assert_string_equal(out, want);
  if (want != NULL && r < 0 && strstr(e.msg, want) == NULL)
    fail_msg("message '%s' lacks '%s'", e.msg, want);
  free(out);
}

static void test_docker(void **state) {
  (void)state;
  docker_expect("", 1, "{\n  \"registry-mirrors\": [\n    \"http://127.0.0.1:5050\"\n  ]\n}\n");
  docker_expect("{\n    \"z\": 1, \"a\": {\"k\": \"\xc3\xa9\"},\n    \"registry-mirrors\": "
                "[\"https://m.example\"]\n}",
                1,
                "{\n    \"z\": 1,\n    \"a\": {\n        \"k\": \"\xc3\xa9\"\n    },\n"
                "    \"registry-mirrors\": [\n        \"https://m.example\",\n"
                "        \"http://127.0.0.1:5050\"\n    ]\n}\n");
  docker_expect("{\"registry-mirrors\": [\"http://127.0.0.1:5050/\"]}", 0, NULL);
  docker_expect("{\"registry-mirrors\": \"http://x\"}", -EP_EINVAL, "not an array");
  docker_expect("{\"a\": 1, \"a\": 2}", -EP_EINVAL, "daemon.json:1:");
  docker_expect("{\n\"a\": 1,\n}", -EP_EINVAL, "daemon.json:3:");
  docker_expect("[1]", -EP_EINVAL, "daemon.json:");
}

static void test_podman(void **state) {
  (void)state;
  ep_err e = {0};
  const char *hosts[] = {"docker.io", "ghcr.io"};
  char *s = setup_podman_dropin("127.0.0.1:5050", hosts, 2, &e);
  assert_non_null(s);
  assert_non_null(strstr(s, "prefix = \"ghcr.io\"\nlocation = \"ghcr.io\"\n\n[[registry.mirror]]\n"
                            "location = \"127.0.0.1:5050/ghcr.io\"\ninsecure = true\n"));
  assert_non_null(strstr(s, "location = \"127.0.0.1:5050\"\n"));
  free(s);
  /* A registry with a port: podman cannot hold ':' in a path component, so
   * the mirror location carries it as HOST_PORT (runtime-integration.md). */
  const char *port[] = {"127.0.0.1:5000"};
  s = setup_podman_dropin("127.0.0.1:5050", port, 1, &e);
  assert_non_null(s);
  assert_non_null(strstr(s, "location = \"127.0.0.1:5050/127.0.0.1_5000\"\n"));
  free(s);
  static const char *const bad[] = {"myregistry", "[::1]:5000", "a b.c"};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
    assert_null(setup_podman_dropin("127.0.0.1:5050", &bad[k], 1, &e));
  const char *twice[] = {"ghcr.io", "ghcr.io"};
  assert_null(setup_podman_dropin("127.0.0.1:5050", twice, 2, &e));
}

static char *slurp(const char *path, size_t *len) {
  struct setup_file f;
  ep_err e = {0};
  assert_int_equal(setup_file_load(&f, path, &e), 0);
  *len = f.oldlen;
  char *r = f.exists ? f.old : NULL;
  if (!f.exists)
    free(f.old);
  return r;
}

static void write_file(const char *path, const char *s, mode_t mode) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(s, f);
  fclose(f);
  chmod(path, mode);
}

/* apply twice (the second adds a file), then undo: byte for byte. */
static void test_apply_undo(void **state) {
  (void)state;
  char dir[64];
  assert_int_equal(ep_test_tmpdir(dir, sizeof dir, "ep-test-setup-"), 0);
  char conf[256], rec[300], created[300], bak[300];
  snprintf(conf, sizeof conf, "%s/config.toml", dir);
  snprintf(rec, sizeof rec, "%s.edgepull-setup", conf);
  snprintf(created, sizeof created, "%s/new/sub/hosts.toml", dir);
  snprintf(bak, sizeof bak, "%s.edgepull-backup", conf);
  const char *orig = "# \xe2\x98\x83 odd\r\nversion = 2\r\n[a]\r\nx = 1";
  write_file(conf, orig, 0640);
  ep_err e = {0};
  struct setup_file f[2];
  assert_int_equal(setup_file_load(&f[0], conf, &e), 0);
  struct setup_cd cd = {.mirror = "127.0.0.1:5050"};
  assert_int_equal(
      setup_containerd_edit(f[0].old, f[0].oldlen, conf, &cd, &f[0].new, &f[0].newlen, &e), 1);
  assert_int_equal(setup_apply(rec, f, 1, &e), 0);
  struct stat st;
  assert_int_equal(stat(conf, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0640);
  size_t len;
  char *now = slurp(conf, &len);
  assert_memory_equal(now, f[0].new, len);
  free(now);
  setup_file_release(&f[0]);

  assert_int_equal(setup_file_load(&f[0], conf, &e), 0);
  assert_int_equal(setup_file_load(&f[1], created, &e), 0);
  f[0].new = strdup("changed again\n"); /* recorded already: the backup is kept */
  f[0].newlen = strlen(f[0].new);
  f[1].new = strdup("hello\n");
  f[1].newlen = 6;
  assert_int_equal(setup_apply(rec, f, 2, &e), 0);
  setup_file_release(&f[0]);
  setup_file_release(&f[1]);
  char *b = slurp(bak, &len);
  assert_int_equal(len, strlen(orig));
  assert_memory_equal(b, orig, len);
  free(b);

  assert_int_equal(setup_undo(rec, true, &e), 0); /* dry run: nothing moves */
  assert_int_equal(access(created, F_OK), 0);
  assert_int_equal(setup_undo(rec, false, &e), 0);
  now = slurp(conf, &len);
  assert_int_equal(len, strlen(orig));
  assert_memory_equal(now, orig, len);
  free(now);
  assert_int_equal(stat(conf, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0640);
  assert_int_not_equal(access(created, F_OK), 0);
  assert_int_not_equal(access(rec, F_OK), 0);
  assert_int_not_equal(access(bak, F_OK), 0);
  snprintf(created, sizeof created, "%s/new", dir);
  assert_int_not_equal(access(created, F_OK), 0);
  assert_int_equal(setup_undo(rec, false, &e), 0); /* nothing left to undo */

  /* A stray backup no record names is never overwritten. */
  write_file(bak, "precious", 0600);
  assert_int_equal(setup_file_load(&f[0], conf, &e), 0);
  f[0].new = strdup("x\n");
  f[0].newlen = 2;
  assert_true(setup_apply(rec, f, 1, &e) < 0);
  assert_non_null(strstr(e.msg, "move it away"));
  setup_file_release(&f[0]);
  now = slurp(conf, &len);
  assert_memory_equal(now, orig, len);
  free(now);
  assert_int_equal(ep_test_rm_rf(dir), 0);
}

/* Truncated and mutated documents: the reader never crashes, and whatever
 * it accepts the editor either refuses or turns into a document that
 * parses again and needs no second edit. */
static void test_mutations(void **state) {
  (void)state;
  const char *doc = "version = 2 # \xc3\xa9\r\n[plugins.\"io.containerd.grpc.v1.cri\"]\r\n"
                    "  x = [1, \"a\", {b = 'c'}]\r\n  s = \"\"\"m\\\r\n l\"\"\"\r\n"
                    "[plugins.\"io.containerd.grpc.v1.cri\".registry]\r\n  config_path = \"\"\r\n"
                    "[[r]]\r\n  y = 0x1f\r\n";
  size_t n = strlen(doc);
  char *buf = malloc(n + 1);
  assert_non_null(buf);
  uint64_t seed = 42;
  size_t edited = 0;
  static const char alphabet[] = "[]{}\"'=.,#\\\r\n \t0x_a\xc3";
  for (size_t it = 0; it < 4000; it++) {
    size_t len = n;
    memcpy(buf, doc, n + 1);
    if (it < n) {
      len = it; /* every prefix */
    } else {
      for (int m = 0; m < 3; m++)
        buf[ep_test_xorshift(&seed) % n] =
            alphabet[ep_test_xorshift(&seed) % (sizeof alphabet - 1)];
    }
    buf[len] = '\0';
    ep_err e = {0};
    char *out = NULL;
    size_t outlen = 0;
    struct setup_cd cd = {.mirror = "127.0.0.1:5050", .snapshotter = it % 2 == 0};
    int r = setup_containerd_edit(buf, len, "m.toml", &cd, &out, &outlen, &e);
    if (r == 1) {
      edited++;
      char *again = NULL;
      assert_int_equal(setup_containerd_edit(out, outlen, "m.toml", &cd, &again, &outlen, &e), 0);
      free(out);
    }
  }
  free(buf);
  assert_true(edited > 50); /* not vacuous: many variants were edited */
}

/* setup docker on path with its record at rec; the path written (a
 * link's target). */
static const char *docker_setup(const char *path, const char *rec) {
  static struct setup_file f;
  ep_err e = {0};
  assert_int_equal(setup_file_load(&f, path, &e), 0);
  assert_int_equal(
      setup_docker_merge(f.old, f.oldlen, path, "127.0.0.1:5050", &f.new, &f.newlen, &e), 1);
  assert_int_equal(setup_apply(rec, &f, 1, &e), 0);
  setup_file_release(&f);
  return f.path;
}

/* An edit made after setup survives --undo as FILE.edgepull-replaced. */
static void test_undo_keeps_edits(void **state) {
  (void)state;
  char dir[64];
  assert_int_equal(ep_test_tmpdir(dir, sizeof dir, "ep-test-setup-"), 0);
  char conf[256], rec[300], keep[300];
  snprintf(conf, sizeof conf, "%s/daemon.json", dir);
  snprintf(rec, sizeof rec, "%s.edgepull-setup", conf);
  snprintf(keep, sizeof keep, "%s.edgepull-replaced", conf);
  write_file(conf, "{\"debug\": true}", 0644);
  ep_err e = {0};
  docker_setup(conf, rec);
  write_file(conf, "{\"edited\": 1}\n", 0644);
  assert_int_equal(setup_undo(rec, false, &e), 0);
  size_t len;
  char *now = slurp(conf, &len);
  assert_int_equal(len, strlen("{\"debug\": true}"));
  assert_memory_equal(now, "{\"debug\": true}", len);
  free(now);
  now = slurp(keep, &len);
  assert_non_null(now);
  assert_memory_equal(now, "{\"edited\": 1}\n", len);
  free(now);
  assert_int_equal(ep_test_rm_rf(dir), 0);
}

/* A configuration that is a symbolic link stays one: its target changes. */
static void test_symlink(void **state) {
  (void)state;
  char dir[64];
  assert_int_equal(ep_test_tmpdir(dir, sizeof dir, "ep-test-setup-"), 0);
  char real[256], link[256], rec[300];
  snprintf(real, sizeof real, "%s/real.json", dir);
  snprintf(link, sizeof link, "%s/daemon.json", dir);
  snprintf(rec, sizeof rec, "%s.edgepull-setup", link);
  write_file(real, "{}", 0600);
  assert_int_equal(symlink("real.json", link), 0);
  ep_err e = {0};
  assert_string_equal(docker_setup(link, rec), real);
  struct stat st;
  assert_int_equal(lstat(link, &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  size_t len;
  char *now = slurp(link, &len);
  assert_non_null(strstr(now, "127.0.0.1:5050"));
  free(now);
  assert_int_equal(setup_undo(rec, false, &e), 0);
  assert_int_equal(lstat(link, &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  now = slurp(real, &len);
  assert_int_equal(len, 2);
  assert_memory_equal(now, "{}", 2);
  free(now);
  assert_int_equal(ep_test_rm_rf(dir), 0);
}

static void test_diff(void **state) {
  (void)state;
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  const char *a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n", *b = "1\n2\n3\n4\nnew\n5\n6\n7\n8\n9\n";
  setup_print_diff(m, "f", a, strlen(a), b, strlen(b));
  fclose(m);
  assert_string_equal(buf,
                      "--- f\n+++ f (edgepull)\n@@ -2,6 +2,7 @@\n 2\n 3\n 4\n+new\n 5\n 6\n 7\n");
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_toml_accepts),
      cmocka_unit_test(test_toml_rejects),
      cmocka_unit_test(test_containerd_edits),
      cmocka_unit_test(test_containerd_existing_and_refused),
      cmocka_unit_test(test_docker),
      cmocka_unit_test(test_podman),
      cmocka_unit_test(test_apply_undo),
      cmocka_unit_test(test_undo_keeps_edits),
      cmocka_unit_test(test_symlink),
      cmocka_unit_test(test_mutations),
      cmocka_unit_test(test_diff),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
