/* edgepullctl against a snapshotter root built with the snapshot core (plugin/snapshot/snap.h):
 * `snapshots` in table and --json form (a committed remote-style snapshot with layer labels, an
 * active child, a view), the message and exit code without snapshotter state, and the unpacked
 * column of `layers` and count of `images` against an index built with store/index.h. The
 * binary is the one the build made (EP_CTL_PATH), run with popen. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "ep_test.h"
#include "plugin/snapshot/snap.h"
#include "store/index.h"

#define HEX(c)                                                                                     \
  c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
      c c c c c c c c c c c c c c c c
#define LAYER_A "sha256:" HEX("a") /* unpacked */
#define LAYER_B "sha256:" HEX("b") /* not unpacked */
#define CONFIG "sha256:" HEX("c")
#define MANIFEST "sha256:" HEX("d")
#define CHAIN "sha256:" HEX("e")
#define SNAP_NAME "edgepull/remote/root/" CHAIN
_Static_assert(sizeof LAYER_A == DIGEST_STR_LEN + 1, "64 hex digits");

struct fx {
  char dir[64];
  char out[1 << 16];
  int rc;
};

static int fill(void *ud, int fs_fd, const int *parent_fds, size_t n_parents, ep_err *err) {
  (void)ud, (void)parent_fds, (void)n_parents;
  int fd = openat(fs_fd, "hello", O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0 || write(fd, "hello\n", 6) != 6)
    return ep_syserror(err, EP_EIO, "writing hello");
  close(fd);
  return 0;
}

static void put_blob(index_db *db, const char *d, uint64_t size, const char *mt) {
  struct index_blob b = {
      .size = size, .state = INDEX_BLOB_COMPLETE, .created = 1700000000, .last_access = 1700000000};
  assert_int_equal(digest_parse(d, &b.digest, NULL), 0);
  snprintf(b.media_type, sizeof b.media_type, "%s", mt);
  assert_int_equal(index_blob_put(db, &b, NULL), 0);
}

static void build_index(const char *dir) {
  char path[128];
  snprintf(path, sizeof path, "%s/index.db", dir);
  index_db *db = NULL;
  assert_int_equal(index_open(path, &db, NULL), 0);
  put_blob(db, LAYER_A, 1000, "application/vnd.oci.image.layer.v1.tar+gzip");
  put_blob(db, LAYER_B, 2000, "application/vnd.oci.image.layer.v1.tar+gzip");
  put_blob(db, CONFIG, 100, "application/vnd.oci.image.config.v1+json");
  put_blob(db, MANIFEST, 500, "application/vnd.oci.image.manifest.v1+json");
  digest_t refs[3], m;
  assert_int_equal(digest_parse(CONFIG, &refs[0], NULL), 0);
  assert_int_equal(digest_parse(LAYER_A, &refs[1], NULL), 0);
  assert_int_equal(digest_parse(LAYER_B, &refs[2], NULL), 0);
  assert_int_equal(digest_parse(MANIFEST, &m, NULL), 0);
  assert_int_equal(index_manifest_put(db, &m, "application/vnd.oci.image.manifest.v1+json", 500,
                                      "docker.io", "library/app", refs, 3, NULL),
                   0);
  struct index_tag t = {.registry = "docker.io",
                        .repository = "library/app",
                        .tag = "1",
                        .digest = m,
                        .media_type = "application/vnd.oci.image.manifest.v1+json",
                        .size = 500,
                        .updated = 1700000000,
                        .expires_at = 4000000000};
  assert_int_equal(index_tag_put(db, &t, NULL), 0);
  index_close(db);
}

static void build_snapshots(const char *dir) {
  char root[128];
  snprintf(root, sizeof root, "%s/snapshots", dir);
  snap *s = NULL;
  ep_err err = {0};
  assert_int_equal(snap_open(&(struct snap_opts){.root = root}, &s, &err), 0);
  struct snap_label lv[] = {
      {"containerd.io/snapshot.ref", CHAIN},
      {"containerd.io/snapshot/cri.image-ref", "docker.io/library/app:1"},
      {"containerd.io/snapshot/cri.layer-digest", LAYER_A},
  };
  struct snap_labels labels = {lv, 3};
  assert_int_equal(snap_create_committed(s, SNAP_NAME, "", &labels, fill, NULL, &err), 0);
  struct snap_mount mnt;
  assert_int_equal(snap_prepare(s, SNAP_KIND_ACTIVE, "k8s.io/7/ctr", SNAP_NAME, NULL, &mnt, &err),
                   0);
  snap_mount_free(&mnt);
  assert_int_equal(snap_prepare(s, SNAP_KIND_VIEW, "k8s.io/8/view", SNAP_NAME, NULL, &mnt, &err),
                   0);
  snap_mount_free(&mnt);
  snap_close(s);
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  assert_int_equal(ep_test_tmpdir(f->dir, sizeof f->dir, "ep-test-ctlsnap-"), 0);
  build_index(f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  ep_test_rm_rf(f->dir);
  free(f);
  return 0;
}

/* Runs edgepullctl --state-dir DIR <args> 2>&1 into f->out and f->rc. */
static void ctl(struct fx *f, const char *args) {
  char cmd[768];
  /* EP_EMULATOR: scripts/test's cross step runs the ARM edgepullctl under qemu-user. */
  const char *emu = getenv("EP_EMULATOR");
  snprintf(cmd, sizeof cmd, "%s '%s' --state-dir '%s' %s 2>&1", emu != NULL ? emu : "", EP_CTL_PATH,
           f->dir, args);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t n = fread(f->out, 1, sizeof f->out - 1, p);
  f->out[n] = '\0';
  int st = pclose(p);
  f->rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static json_t *ctl_json(struct fx *f, const char *args) {
  ctl(f, args);
  assert_int_equal(f->rc, 0);
  json_t *j = json_loads(f->out, 0, NULL);
  if (j == NULL)
    fail_msg("not JSON: %s", f->out);
  return j;
}

/* The line of f->out that starts with prefix. */
static const char *line_of(struct fx *f, const char *prefix) {
  for (const char *l = f->out; l != NULL && *l != '\0'; l = strchr(l, '\n'), l = l ? l + 1 : l)
    if (strncmp(l, prefix, strlen(prefix)) == 0)
      return l;
  fail_msg("no line starting with %s in:\n%s", prefix, f->out);
  return NULL;
}

static void test_no_snapshotter_state(void **state) {
  struct fx *f = *state;
  ctl(f, "snapshots");
  assert_int_equal(f->rc, 1);
  char want[160];
  snprintf(want, sizeof want,
           "no snapshotter state under %s/snapshots: is --snapshotter-socket set?", f->dir);
  assert_non_null(strstr(f->out, want));
  ctl(f, "--snapshotter-root /nonexistent-ep snapshots --json");
  assert_int_equal(f->rc, 1);
  assert_non_null(strstr(f->out, "no snapshotter state under /nonexistent-ep:"));
  ctl(f, "snapshots extra");
  assert_int_equal(f->rc, 2);
  ctl(f, "snapshots --snapshotter-root ''");
  assert_int_equal(f->rc, 2);
  /* Without a snapshotter nothing is unpacked, and layers still works. */
  json_t *j = ctl_json(f, "layers --json");
  json_t *l;
  size_t i;
  json_array_foreach(json_object_get(j, "layers"), i, l) {
    assert_true(json_is_false(json_object_get(l, "unpacked")));
  }
  json_decref(j);
}

static void test_snapshots_table(void **state) {
  struct fx *f = *state;
  build_snapshots(f->dir);
  ctl(f, "snapshots");
  assert_int_equal(f->rc, 0);
  print_message("%s", f->out);
  assert_non_null(strstr(f->out, "NAME"));
  assert_non_null(strstr(f->out, "CHAIN ID"));
  const char *l = line_of(f, "edgepull/remote/root/sha256:eeeeeeeeeeee ");
  assert_non_null(strstr(l, "committed"));
  assert_non_null(strstr(l, "sha256:aaaaaaaaaaaa "));
  assert_null(strstr(l, "sha256:aaaaaaaaaaaaa")); /* shortened */
  l = line_of(f, "k8s.io/7/ctr ");
  assert_non_null(strstr(l, "active"));
  assert_non_null(strstr(l, "edgepull/remote/root/sha256:eeeeeeeeeeee "));
  assert_non_null(strstr(line_of(f, "k8s.io/8/view "), "view"));
  ctl(f, "--no-trunc snapshots");
  assert_non_null(strstr(line_of(f, SNAP_NAME " "), LAYER_A));
  /* An explicit root works the same. */
  char args[160];
  snprintf(args, sizeof args, "snapshots --snapshotter-root %s/snapshots", f->dir);
  ctl(f, args);
  assert_int_equal(f->rc, 0);
  line_of(f, "k8s.io/8/view ");
}

static void test_snapshots_json(void **state) {
  struct fx *f = *state;
  build_snapshots(f->dir);
  json_t *j = ctl_json(f, "snapshots --json");
  json_t *list = json_object_get(j, "snapshots");
  assert_int_equal(json_array_size(list), 3);
  json_t *c = json_array_get(list, 0); /* id order: the committed one first */
  assert_string_equal(json_string_value(json_object_get(c, "name")), SNAP_NAME);
  assert_string_equal(json_string_value(json_object_get(c, "kind")), "committed");
  assert_true(json_is_null(json_object_get(c, "parent")));
  assert_string_equal(json_string_value(json_object_get(c, "chain_id")), CHAIN);
  assert_string_equal(json_string_value(json_object_get(c, "layer_digest")), LAYER_A);
  assert_string_equal(json_string_value(json_object_get(c, "image_ref")),
                      "docker.io/library/app:1");
  assert_true(json_is_true(json_object_get(c, "remote")));
  assert_true(json_integer_value(json_object_get(c, "size")) > 0);
  assert_int_equal(json_integer_value(json_object_get(c, "inodes")), 2); /* fs/ and hello */
  assert_true(json_integer_value(json_object_get(c, "created")) > 1700000000);
  assert_string_equal(json_string_value(json_object_get(json_object_get(c, "labels"),
                                                        "containerd.io/snapshot.ref")),
                      CHAIN);
  json_t *a = json_array_get(list, 1);
  assert_string_equal(json_string_value(json_object_get(a, "kind")), "active");
  assert_string_equal(json_string_value(json_object_get(a, "parent")), SNAP_NAME);
  assert_true(json_is_null(json_object_get(a, "size")));
  assert_true(json_is_null(json_object_get(a, "layer_digest")));
  assert_true(json_is_false(json_object_get(a, "remote")));
  assert_string_equal(json_string_value(json_object_get(json_array_get(list, 2), "kind")), "view");
  json_decref(j);
}

static void test_layers_and_images_unpacked(void **state) {
  struct fx *f = *state;
  build_snapshots(f->dir);
  ctl(f, "layers");
  assert_int_equal(f->rc, 0);
  print_message("%s", f->out);
  const char *h = line_of(f, "DIGEST ");
  assert_non_null(strstr(h, "LAST ACCESS "));
  assert_true(strstr(h, "LAST ACCESS ") < strstr(h, " UNPACKED\n"));
  const char *l = line_of(f, "sha256:aaaaaaaaaaaa ");
  assert_int_equal(strncmp(strchr(l, '\n') - 4, " yes", 4), 0);
  l = line_of(f, "sha256:bbbbbbbbbbbb ");
  assert_int_equal(strncmp(strchr(l, '\n') - 3, " no", 3), 0);
  json_t *j = ctl_json(f, "layers --json");
  json_t *b;
  size_t i, yes = 0;
  json_array_foreach(json_object_get(j, "layers"), i, b) {
    const char *d = json_string_value(json_object_get(b, "digest"));
    bool unpacked = json_is_true(json_object_get(b, "unpacked"));
    assert_true(json_is_boolean(json_object_get(b, "unpacked")));
    assert_int_equal(unpacked, strcmp(d, LAYER_A) == 0);
    yes += unpacked;
  }
  assert_int_equal(yes, 1);
  json_decref(j);
  ctl(f, "images");
  assert_int_equal(f->rc, 0);
  print_message("%s", f->out);
  h = line_of(f, "IMAGE ");
  assert_non_null(strstr(h, "EXPIRES "));
  assert_true(strstr(h, "EXPIRES ") < strstr(h, " UNPACKED\n"));
  l = line_of(f, "docker.io/library/app:1 ");
  assert_int_equal(strncmp(strchr(l, '\n') - 2, " 1", 2), 0);
  j = ctl_json(f, "images --json");
  json_t *img = json_array_get(json_object_get(j, "images"), 0);
  assert_int_equal(json_integer_value(json_object_get(img, "layers_unpacked")), 1);
  assert_int_equal(json_integer_value(json_object_get(img, "blobs_referenced")), 4);
  json_decref(j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_no_snapshotter_state, setup, teardown),
      cmocka_unit_test_setup_teardown(test_snapshots_table, setup, teardown),
      cmocka_unit_test_setup_teardown(test_snapshots_json, setup, teardown),
      cmocka_unit_test_setup_teardown(test_layers_and_images_unpacked, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
