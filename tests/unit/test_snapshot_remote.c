/* Unit tests for the snapshotter's remote path (plugin/snapshot/remote.c) over the real core:
 * a fake layer source serves generated layers through real store/pipe.h pipes, written chunk by
 * chunk by a thread, so the unpack runs while the blob "arrives". Covered: a Prepare answered
 * AlreadyExists with the layer committed under containerd's label and parent (found with
 * containerd's own List filter); a second Prepare finding it; two concurrent Prepares of one
 * chain making one fetch (and a Cleanup meanwhile taking nothing); a diffID that does not make
 * the chain, a pipe failing mid-way and a hostile tar each falling back with nothing committed
 * and no directory left; a chain of three layers with whiteouts and an opaque directory, merged
 * by a real overlay mount of an active snapshot on top; lookup_chain for clients without CRI
 * labels; image reference parsing; a crash before the commit. Runs as root: exits 77 otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mount.h>

#include <cmocka.h>

#include "tests/lib/testlib.h"

#include "tests/unit/unpack_layers.h"

#include "common/names.h"
#include "plugin/snapshot/remote.h"
#include "plugin/snapshot/snap.h"
#include "plugin/snapshot/snap_int.h"

enum { MAX_BLOBS = 8, MAX_WRITERS = 16, CHUNK = 1024 };

struct blob {
  digest_t digest, diffid;
  char path[128];
};

/* The fake layer source and the snapshotter under test. */
struct rt {
  struct fx *gen; /* unpack_layers.h's fixture, used to generate layers */
  char dir[64], root[96];
  snap *s;
  snap_remote *rm;
  pipe_table *pt;
  struct blob blobs[MAX_BLOBS];
  size_t n_blobs;
  atomic_int opens;
  long fail_at; /* the writer fails the pipe after this many bytes; <0 never */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool gate; /* writers wait while it is closed */
  pthread_t writers[MAX_WRITERS];
  size_t n_writers;
  char host[NAMES_HOST_MAX + 1], repo[NAMES_REPO_MAX + 1];
  bool lookup; /* lookup_chain knows every blob's chain as a base layer */
  hold_table *holds;
  atomic_uint held_at_open; /* holds on the layer when open_layer was last called */
};

struct writer {
  struct rt *t;
  const struct blob *b;
  blob_pipe *p;
  int wfd;
};

static void *writer_main(void *ud) {
  struct writer *w = ud;
  struct rt *t = w->t;
  pthread_mutex_lock(&t->mu);
  while (t->gate)
    pthread_cond_wait(&t->cv, &t->mu);
  pthread_mutex_unlock(&t->mu);
  int in = open(w->b->path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  bool ok = in >= 0 && fstat(in, &st) == 0;
  if (ok)
    pipe_set_size(w->p, (uint64_t)st.st_size);
  char buf[CHUNK];
  uint64_t off = 0;
  ssize_t n;
  while (ok && (n = read(in, buf, sizeof buf)) > 0) {
    if (t->fail_at >= 0 && off + (uint64_t)n > (uint64_t)t->fail_at) {
      ok = false;
      break;
    }
    ok = write(w->wfd, buf, (size_t)n) == n;
    off += (uint64_t)n;
    pipe_publish(w->p, off);
    sched_yield();
  }
  if (in >= 0)
    close(in);
  close(w->wfd);
  pipe_finish(w->p, ok); /* a real fetcher verifies the digest here; the blobs are ours */
  pipe_unref(w->p);
  free(w);
  return NULL;
}

static int fake_open(void *ud, const char *host, const char *repo, const digest_t *layer,
                     blob_pipe **out, ep_err *err) {
  struct rt *t = ud;
  atomic_fetch_add(&t->opens, 1);
  atomic_store(&t->held_at_open, hold_count(t->holds, layer));
  snprintf(t->host, sizeof t->host, "%s", host);
  snprintf(t->repo, sizeof t->repo, "%s", repo);
  const struct blob *b = NULL;
  for (size_t i = 0; i < t->n_blobs; i++)
    if (digest_equal(&t->blobs[i].digest, layer))
      b = &t->blobs[i];
  if (b == NULL)
    return ep_error(err, EP_ENOTFOUND, "no blob sha256:%s", layer->hex);
  bool created = false;
  blob_pipe *p = pipe_table_join(t->pt, layer, &created);
  assert_non_null(p);
  if (created) {
    char part[160];
    snprintf(part, sizeof part, "%s/part-%.12s-%d", t->dir, layer->hex, atomic_load(&t->opens));
    int wfd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rfd = open(part, O_RDONLY | O_CLOEXEC);
    assert_true(wfd >= 0 && rfd >= 0);
    pipe_attach_fd(p, rfd);
    struct writer *w = calloc(1, sizeof *w);
    assert_non_null(w);
    *w = (struct writer){.t = t, .b = b, .p = p, .wfd = wfd};
    pipe_ref(p);
    pthread_mutex_lock(&t->mu);
    assert_true(t->n_writers < MAX_WRITERS);
    assert_int_equal(pthread_create(&t->writers[t->n_writers++], NULL, writer_main, w), 0);
    pthread_mutex_unlock(&t->mu);
  }
  *out = p;
  return 0;
}

static int fake_lookup(void *ud, const digest_t *chain, digest_t *layer, char *host, size_t hostlen,
                       char *repo, size_t repolen, ep_err *err) {
  struct rt *t = ud;
  for (size_t i = 0; t->lookup && i < t->n_blobs; i++)
    if (digest_equal(&t->blobs[i].diffid, chain)) {
      *layer = t->blobs[i].digest;
      snprintf(host, hostlen, "127.0.0.1:5000");
      snprintf(repo, repolen, "team/app");
      return 0;
    }
  return ep_error(err, EP_ENOTFOUND, "chain sha256:%s never seen", chain->hex);
}

static void open_all(struct rt *t) {
  ep_err err = {0};
  struct snap_remote_deps d = {
      .open_layer = fake_open, .lookup_chain = fake_lookup, .ud = t, .holds = t->holds};
  struct snap_remote_opts o = {.stall_timeout_ms = 10000};
  assert_int_equal(snap_remote_new(&d, &o, &t->rm, &err), 0);
  struct snap_opts so = {.root = t->root, .remote = snap_remote_prepare, .remote_ud = t->rm};
  assert_int_equal(snap_open(&so, &t->s, &err), 0);
}

static void close_all(struct rt *t) {
  snap_close(t->s);
  snap_remote_free(t->rm);
  t->s = NULL;
  t->rm = NULL;
}

static int rt_setup(void **state) {
  if (geteuid() != 0) {
    print_message("not root: skipped\n");
    exit(77);
  }
  struct rt *t = calloc(1, sizeof *t);
  assert_non_null(t);
  void *g = NULL;
  assert_int_equal(setup(&g), 0);
  t->gen = g;
  assert_int_equal(ep_test_tmpdir(t->dir, sizeof t->dir, "ep-test-snapremote-"), 0);
  snprintf(t->root, sizeof t->root, "%s/root", t->dir);
  t->pt = pipe_table_new();
  t->holds = hold_table_new();
  assert_non_null(t->holds);
  t->fail_at = -1;
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  open_all(t);
  *state = t;
  return 0;
}

static void join_writers(struct rt *t) {
  for (size_t i = 0; i < t->n_writers; i++)
    pthread_join(t->writers[i], NULL);
  t->n_writers = 0;
}

static int rt_teardown(void **state) {
  struct rt *t = *state;
  join_writers(t);
  close_all(t);
  pipe_table_free(t->pt);
  hold_table_free(t->holds);
  void *g = t->gen;
  teardown(&g);
  ep_test_rm_rf(t->dir);
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
  free(t);
  return 0;
}

/* Generates a layer from ents (gzip) and registers it with the fake source. */
static struct blob *make_layer(struct rt *t, const struct ent *ents, size_t n) {
  assert_true(t->n_blobs < MAX_BLOBS);
  struct blob *b = &t->blobs[t->n_blobs];
  layer_begin(t->gen, F_GZIP);
  for (size_t i = 0; i < n; i++)
    layer_add(t->gen, &ents[i]);
  layer_end(t->gen);
  snprintf(b->path, sizeof b->path, "%s/blob-%zu", t->dir, t->n_blobs);
  assert_int_equal(rename(t->gen->layer, b->path), 0);
  file_digest(b->path, &b->digest);
  file_digest(t->gen->tar, &b->diffid);
  t->n_blobs++;
  return b;
}

#define LAYER(t, ...)                                                                              \
  ({                                                                                               \
    const struct ent ents_[] = {__VA_ARGS__};                                                      \
    make_layer(t, ents_, sizeof ents_ / sizeof ents_[0]);                                          \
  })

static void set(struct snap_labels *l, const char *k, const char *v) {
  ep_err err = {0};
  assert_int_equal(snap_labels_set(l, k, v, &err), 0);
}

/* CRI's labels for a layer of docker.io/library/busybox:1.36 making chain `chain`. */
static void cri_labels(struct snap_labels *l, const struct blob *b, const digest_t *chain) {
  char c[DIGEST_STR_LEN + 1], d[DIGEST_STR_LEN + 1];
  digest_format(chain, c);
  digest_format(&b->digest, d);
  set(l, SNAP_LABEL_REF, c);
  set(l, SNAP_LABEL_LAYER_DIGEST, d);
  set(l, SNAP_LABEL_IMAGE_REF, "docker.io/library/busybox:1.36");
  set(l, "containerd.io/snapshot/cri.manifest-digest", "sha256:feed");
}

static int prepare(struct rt *t, const char *key, const char *parent, const struct snap_labels *l) {
  ep_err err = {0};
  struct snap_mount m = {0};
  int r = snap_prepare(t->s, SNAP_KIND_ACTIVE, key, parent, l, &m, &err);
  snap_mount_free(&m);
  return r;
}

struct found {
  int n;
  char name[256];
  struct snap_info info;
};

static int found_cb(const struct snap_info *i, void *ud) {
  struct found *f = ud;
  if (i->kind != SNAP_KIND_COMMITTED) /* containerd takes committed matches only */
    return 0;
  if (f->n++ == 0) {
    snprintf(f->name, sizeof f->name, "%s", i->name);
    f->info.kind = i->kind;
    f->info.parent = strdup(i->parent);
    ep_err err = {0};
    assert_int_equal(snap_labels_copy(&f->info.labels, &i->labels, &err), 0);
  }
  return 0;
}

/* containerd's own lookup after AlreadyExists (metadata/snapshot.go): its filter, then the
 * committed ones. */
static int find(struct rt *t, const digest_t *chain, const char *parent, struct found *out) {
  char fl[512], c[DIGEST_STR_LEN + 1];
  digest_format(chain, c);
  snprintf(fl, sizeof fl, "labels.\"containerd.io/snapshot.ref\"==%s,parent==\"%s\"", c, parent);
  const char *fv[] = {fl};
  memset(out, 0, sizeof *out);
  ep_err err = {0};
  assert_int_equal(snap_walk(t->s, fv, 1, found_cb, out, &err), 0);
  return out->n;
}

static void found_free(struct found *f) {
  free(f->info.parent);
  f->info.parent = NULL;
  snap_labels_free(&f->info.labels);
}

/* Entries of ROOT/snapshots. */
static int dir_entries(struct rt *t) {
  char p[160];
  snprintf(p, sizeof p, "%s/snapshots", t->root);
  DIR *d = opendir(p);
  assert_non_null(d);
  int n = 0;
  for (struct dirent *de; (de = readdir(d)) != NULL;)
    n += de->d_name[0] != '.';
  closedir(d);
  return n;
}

/* The fs/ path of committed snapshot `name`, through a View of it: a bind of its fs/, or an
 * overlay whose first lowerdir it is. */
static void fs_of(struct rt *t, const char *name, char *out, size_t len) {
  ep_err err = {0};
  struct snap_mount m = {0};
  char key[300];
  snprintf(key, sizeof key, "view-of-%s", name);
  assert_int_equal(snap_prepare(t->s, SNAP_KIND_VIEW, key, name, NULL, &m, &err), 0);
  snprintf(out, len, "%s", m.source);
  for (size_t i = 0; i < m.n_options; i++)
    if (strncmp(m.options[i], "lowerdir=", 9) == 0)
      snprintf(out, len, "%.*s", (int)strcspn(m.options[i] + 9, ":"), m.options[i] + 9);
  snap_mount_free(&m);
  assert_int_equal(snap_remove(t->s, key, &err), 0);
}

static void assert_file(const char *dir, const char *name, const char *content) {
  char p[512], buf[256] = "";
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *fp = fopen(p, "r");
  if (fp == NULL)
    fail_msg("%s: %s", p, strerror(errno));
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  buf[n] = '\0';
  fclose(fp);
  assert_string_equal(buf, content);
}

static bool exists(const char *dir, const char *name) {
  char p[512];
  struct stat st;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return lstat(p, &st) == 0;
}

static void test_one_layer(void **state) {
  struct rt *t = *state;
  static char big[200000];
  memset(big, 'z', sizeof big - 1);
  struct blob *b = LAYER(t, {.name = "etc", .type = AE_IFDIR},
                         {.name = "etc/hostname", .data = "edge\n", .uid = 7, .gid = 8},
                         {.name = "bin/big", .data = big, .perm = 0755},
                         {.name = "bin/sh", .type = AE_IFLNK, .data = "big"});
  struct snap_labels l = {0};
  cri_labels(&l, b, &b->diffid);
  assert_int_equal(prepare(t, "default/1/extract-1 sha256:x", "", &l), -SNAP_EEXISTS);
  assert_int_equal(atomic_load(&t->opens), 1);
  /* the layer was held for the disk GC from before its open, and is no longer */
  assert_int_equal(atomic_load(&t->held_at_open), 1);
  assert_int_equal(hold_count(t->holds, &b->digest), 0);
  assert_string_equal(t->host, "docker.io");
  assert_string_equal(t->repo, "library/busybox");
  ep_err err = {0};
  struct snap_info i = {0};
  assert_int_equal(snap_stat(t->s, "default/1/extract-1 sha256:x", &i, &err), -EP_ENOTFOUND);

  struct found f;
  assert_int_equal(find(t, &b->diffid, "", &f), 1);
  assert_int_equal(f.info.kind, SNAP_KIND_COMMITTED);
  assert_string_equal(f.info.parent, "");
  assert_string_equal(snap_labels_get(&f.info.labels, "containerd.io/snapshot/cri.manifest-digest"),
                      "sha256:feed");
  char fs[256];
  fs_of(t, f.name, fs, sizeof fs);
  assert_file(fs, "etc/hostname", "edge\n");
  struct stat st;
  char p[300];
  snprintf(p, sizeof p, "%s/etc/hostname", fs);
  assert_int_equal(lstat(p, &st), 0);
  assert_int_equal(st.st_uid, 7);
  assert_int_equal(st.st_gid, 8);
  snprintf(p, sizeof p, "%s/bin/sh", fs);
  assert_int_equal(lstat(p, &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  struct snap_usage u = {0};
  assert_int_equal(snap_usage(t->s, f.name, &u, &err), 0);
  assert_true(u.size >= (int64_t)sizeof big - 1);
  assert_true(u.inodes >= 5);

  /* again: found committed, nothing fetched */
  assert_int_equal(prepare(t, "default/2/extract-2 sha256:x", "", &l), -SNAP_EEXISTS);
  assert_int_equal(atomic_load(&t->opens), 1);
  struct snap_remote_stats rs;
  snap_remote_stats_get(t->rm, &rs);
  assert_int_equal(rs.unpacked, 1);
  assert_int_equal(rs.existed, 1);
  assert_int_equal(rs.fallbacks, 0);
  assert_int_equal(rs.in_flight, 0);
  struct stat bs;
  assert_int_equal(stat(b->path, &bs), 0);
  assert_int_equal(rs.compressed, (uint64_t)bs.st_size);
  assert_true(rs.uncompressed > sizeof big);
  found_free(&f);
  snap_labels_free(&l);
}

struct racer {
  struct rt *t;
  const char *key;
  const struct snap_labels *l;
  int r;
};

static void *race(void *ud) {
  struct racer *r = ud;
  r->r = prepare(r->t, r->key, "", r->l);
  return NULL;
}

static void test_single_flight(void **state) {
  struct rt *t = *state;
  struct blob *b = LAYER(t, {.name = "shared", .data = "one copy"});
  struct snap_labels l = {0};
  cri_labels(&l, b, &b->diffid);
  t->gate = true;
  struct racer a = {t, "k8s.io/1/extract-a", &l, 1}, c = {t, "k8s.io/2/extract-b", &l, 1};
  pthread_t ta, tc;
  assert_int_equal(pthread_create(&ta, NULL, race, &a), 0);
  assert_int_equal(pthread_create(&tc, NULL, race, &c), 0);
  struct snap_remote_stats rs = {0};
  for (int i = 0; i < 2000 && (rs.in_flight != 1 || rs.joined != 1); i++) {
    usleep(5000);
    snap_remote_stats_get(t->rm, &rs);
  }
  assert_int_equal(rs.in_flight, 1);
  assert_int_equal(rs.joined, 1);
  /* the unpack's temp directory is not an orphan to Cleanup */
  ep_err err = {0};
  assert_int_equal(snap_cleanup(t->s, &err), 0);
  pthread_mutex_lock(&t->mu);
  t->gate = false;
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
  pthread_join(ta, NULL);
  pthread_join(tc, NULL);
  assert_int_equal(a.r, -SNAP_EEXISTS);
  assert_int_equal(c.r, -SNAP_EEXISTS);
  assert_int_equal(atomic_load(&t->opens), 1);
  struct found f;
  assert_int_equal(find(t, &b->diffid, "", &f), 1);
  char fs[256];
  fs_of(t, f.name, fs, sizeof fs);
  assert_file(fs, "shared", "one copy");
  assert_int_equal(dir_entries(t), 1);
  found_free(&f);
  snap_labels_free(&l);
}

/* A fallback: Prepare went on as an ordinary one (an active snapshot `key`), nothing with the
 * label was committed, and no directory is left besides the active one. */
static void assert_fell_back(struct rt *t, int r, const char *key, const digest_t *chain) {
  assert_int_equal(r, 0);
  ep_err err = {0};
  struct snap_info i = {0};
  assert_int_equal(snap_stat(t->s, key, &i, &err), 0);
  assert_int_equal(i.kind, SNAP_KIND_ACTIVE);
  snap_info_free(&i);
  struct found f;
  assert_int_equal(find(t, chain, "", &f), 0);
  assert_int_equal(dir_entries(t), 1);
  assert_int_equal(snap_remove(t->s, key, &err), 0);
}

static void test_fallbacks(void **state) {
  struct rt *t = *state;
  struct blob *b = LAYER(t, {.name = "a", .data = "aaa"});
  /* a diffID that does not make the requested chain */
  digest_t wrong;
  digest_buffer("not this layer", 14, &wrong);
  struct snap_labels l = {0};
  cri_labels(&l, b, &wrong);
  assert_fell_back(t, prepare(t, "k1", "", &l), "k1", &wrong);
  snap_labels_free(&l);

  /* the pipe fails mid-way (the digest did not verify, the peer went away) */
  static char big[300000]; /* incompressible, so the pipe fails inside it */
  uint64_t seed = 42;
  for (size_t i = 0; i + 1 < sizeof big; i++)
    big[i] = (char)('!' + ep_test_xorshift(&seed) % 90);
  struct blob *b2 = LAYER(t, {.name = "big", .data = big});
  t->fail_at = 20000;
  cri_labels(&l, b2, &b2->diffid);
  assert_fell_back(t, prepare(t, "k2", "", &l), "k2", &b2->diffid);
  assert_int_equal(hold_count(t->holds, &b2->digest), 0); /* a failed unpack lets go too */
  snap_labels_free(&l);
  t->fail_at = -1;

  /* a hostile tar */
  struct blob *b3 = LAYER(t, {.name = "ok", .data = "x"}, {.name = "../escape", .data = "x"});
  cri_labels(&l, b3, &b3->diffid);
  assert_fell_back(t, prepare(t, "k3", "", &l), "k3", &b3->diffid);
  snap_labels_free(&l);

  /* a layer the source does not have */
  digest_t none;
  digest_buffer("absent", 6, &none);
  struct blob absent = {.digest = none, .diffid = none};
  cri_labels(&l, &absent, &none);
  assert_fell_back(t, prepare(t, "k4", "", &l), "k4", &none);
  assert_int_equal(hold_count(t->holds, &none), 0); /* and a failed open */
  snap_labels_free(&l);

  /* no layer labels and a chain the node never saw: ordinary, not a failure */
  set(&l, SNAP_LABEL_REF,
      "sha256:0123456789012345678901234567890123456789012345678901234567890123");
  assert_int_equal(prepare(t, "k5", "", &l), 0);
  snap_labels_free(&l);

  struct snap_remote_stats rs;
  snap_remote_stats_get(t->rm, &rs);
  assert_int_equal(rs.fallbacks, 4);
  assert_int_equal(rs.unknown, 1);
  assert_int_equal(rs.unpacked, 0);
  assert_int_equal(atomic_load(&t->opens), 4);
}

/* Commits layer b on parent (chain pchain, NULL for none) and returns the committed name. */
static void remote_layer(struct rt *t, const struct blob *b, const char *parent,
                         const digest_t *pchain, digest_t *chain, char *name, size_t len) {
  digest_chain_id(pchain, &b->diffid, chain);
  struct snap_labels l = {0};
  cri_labels(&l, b, chain);
  assert_int_equal(prepare(t, "ns/9/extract", parent, &l), -SNAP_EEXISTS);
  snap_labels_free(&l);
  struct found f;
  assert_int_equal(find(t, chain, parent, &f), 1);
  assert_string_equal(f.info.parent, parent);
  snprintf(name, len, "%s", f.name);
  found_free(&f);
}

static void test_chain_overlay(void **state) {
  struct rt *t = *state;
  struct blob *l1 = LAYER(t, {.name = "a", .type = AE_IFDIR, .perm = 0750, .uid = 3},
                          {.name = "a/keep", .data = "v1"}, {.name = "a/gone", .data = "bye"},
                          {.name = "opq", .type = AE_IFDIR}, {.name = "opq/old", .data = "old"},
                          {.name = "d/x", .data = "x"});
  struct blob *l2 =
      LAYER(t, {.name = "a/.wh.gone", .data = ""}, {.name = "opq/.wh..wh..opq", .data = ""},
            {.name = "opq/new", .data = "new"}, {.name = "b/file", .data = "b"});
  struct blob *l3 = LAYER(t, {.name = "a/keep", .data = "v3"},
                          {.name = "a/link", .type = AE_IFLNK, .data = "keep"},
                          {.name = "d/y", .data = "y"}, {.name = "d/hard", .hardlink = "d/y"});
  digest_t c1, c2, c3;
  char n1[256], n2[256], n3[256];
  remote_layer(t, l1, "", NULL, &c1, n1, sizeof n1);
  remote_layer(t, l2, n1, &c1, &c2, n2, sizeof n2);
  remote_layer(t, l3, n2, &c2, &c3, n3, sizeof n3);
  assert_int_equal(atomic_load(&t->opens), 3);

  /* l2 names a/ only through its whiteout: the directory it gets is l1's */
  char fs2[256];
  fs_of(t, n2, fs2, sizeof fs2);
  char p[400];
  struct stat st;
  snprintf(p, sizeof p, "%s/a", fs2);
  assert_int_equal(lstat(p, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0750);
  assert_int_equal(st.st_uid, 3);

  /* a container on top, through the overlay mount the snapshotter gives */
  ep_err err = {0};
  struct snap_mount m = {0};
  assert_int_equal(snap_prepare(t->s, SNAP_KIND_ACTIVE, "ctr", n3, NULL, &m, &err), 0);
  assert_string_equal(m.type, "overlay");
  char opts[4096] = "";
  for (size_t i = 0; i < m.n_options; i++)
    snprintf(opts + strlen(opts), sizeof opts - strlen(opts), "%s%s", i ? "," : "", m.options[i]);
  char mnt[128];
  snprintf(mnt, sizeof mnt, "%s/mnt", t->dir);
  assert_int_equal(mkdir(mnt, 0755), 0);
  if (mount("overlay", mnt, "overlay", 0, opts) < 0) {
    snap_mount_free(&m);
    skip(); /* no overlayfs here */
  }
  assert_file(mnt, "a/keep", "v3");
  assert_false(exists(mnt, "a/gone"));
  assert_false(exists(mnt, "opq/old"));
  assert_file(mnt, "opq/new", "new");
  assert_file(mnt, "b/file", "b");
  assert_file(mnt, "a/link", "v3");
  assert_file(mnt, "d/x", "x");
  assert_file(mnt, "d/hard", "y");
  snprintf(p, sizeof p, "%s/a/gone", mnt);
  assert_int_equal(lstat(p, &st), -1);
  assert_int_equal(umount(mnt), 0);
  snap_mount_free(&m);
}

static void test_lookup_chain(void **state) {
  struct rt *t = *state;
  struct blob *b = LAYER(t, {.name = "from-lookup", .data = "yes"});
  struct snap_labels l = {0};
  char c[DIGEST_STR_LEN + 1];
  digest_format(&b->diffid, c);
  set(&l, SNAP_LABEL_REF, c);
  assert_int_equal(prepare(t, "k-unknown", "", &l), 0); /* lookup does not know it yet */
  t->lookup = true;
  assert_int_equal(prepare(t, "k-known", "", &l), -SNAP_EEXISTS);
  assert_string_equal(t->host, "127.0.0.1:5000");
  assert_string_equal(t->repo, "team/app");
  struct found f;
  assert_int_equal(find(t, &b->diffid, "", &f), 1);
  found_free(&f);
  snap_labels_free(&l);
}

static int crash_at(void *ud, const char *step) {
  return strcmp(ud, step) == 0;
}

static void test_crash_before_commit(void **state) {
  struct rt *t = *state;
  struct blob *b = LAYER(t, {.name = "f", .data = "f"});
  snap_set_crash_hook(t->s, crash_at, (void *)"ingest-rename");
  struct snap_labels l = {0};
  cri_labels(&l, b, &b->diffid);
  assert_int_equal(prepare(t, "k", "", &l), 0); /* fell back: the "crash" failed the commit */
  snap_labels_free(&l);
  close_all(t);
  open_all(t);
  struct found f;
  assert_int_equal(find(t, &b->diffid, "", &f), 0);
  ep_err err = {0};
  assert_int_equal(snap_cleanup(t->s, &err), 0);
  /* only the ordinary Prepare's "k" (made after the simulated crash) is left */
  assert_int_equal(dir_entries(t), 1);
}

static void test_parse_image(void **state) {
  (void)state;
  static const char *cases[][3] = {
      {"docker.io/library/busybox:1.36", "docker.io", "library/busybox"},
      {"busybox", "docker.io", "library/busybox"},
      {"index.docker.io/user/app:v1", "docker.io", "user/app"},
      {"ghcr.io/o/r@sha256:0123456789012345678901234567890123456789012345678901234567890123",
       "ghcr.io", "o/r"},
      {"127.0.0.1:5000/team/app:latest", "127.0.0.1:5000", "team/app"},
      {"localhost/app", "localhost", "app"},
      {"user/app:tag", "docker.io", "user/app"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char host[NAMES_HOST_MAX + 1], repo[NAMES_REPO_MAX + 1];
    ep_err err = {0};
    if (snap_remote_parse_image(cases[i][0], host, sizeof host, repo, sizeof repo, &err) != 0)
      fail_msg("%s: %s", cases[i][0], err.msg);
    assert_string_equal(host, cases[i][1]);
    assert_string_equal(repo, cases[i][2]);
  }
  static const char *bad[] = {"", "Upper/Case", "docker.io/", "host:99999/x", "a//b", "x:"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char host[NAMES_HOST_MAX + 1], repo[NAMES_REPO_MAX + 1];
    ep_err err = {0};
    if (snap_remote_parse_image(bad[i], host, sizeof host, repo, sizeof repo, &err) == 0)
      fail_msg("%s accepted as %s %s", bad[i], host, repo);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_image),
      cmocka_unit_test_setup_teardown(test_one_layer, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_single_flight, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_fallbacks, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_chain_overlay, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_lookup_chain, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_crash_before_commit, rt_setup, rt_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
