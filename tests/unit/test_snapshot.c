/* Unit tests for the snapshotter core (plugin/snapshot/snap*.c), without the gRPC transport:
 * kinds and parents, commit, remove with children, labels and update masks, containerd's filter
 * language, usage, the mount each kind gets, cleanup of orphans, and a crash simulated between
 * every two steps of Prepare and Remove (the state left must be invisible and cleaned up). */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
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

#include "ep_test.h"
#include "plugin/snapshot/snap.h"
#include "plugin/snapshot/snap_filter.h"
#include "plugin/snapshot/snap_int.h"

struct fx {
  char dir[64];
  char root[96];
  snap *s;
  const char *crash_at; /* step the crash hook fires at */
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  assert_int_equal(ep_test_tmpdir(f->dir, sizeof f->dir, "ep-test-snapshot-"), 0);
  snprintf(f->root, sizeof f->root, "%s/root", f->dir);
  ep_err err = {0};
  struct snap_opts o = {.root = f->root};
  assert_int_equal(snap_open(&o, &f->s, &err), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  snap_close(f->s);
  ep_test_rm_rf(f->dir);
  free(f);
  return 0;
}

static void reopen(struct fx *f) {
  snap_close(f->s);
  ep_err err = {0};
  struct snap_opts o = {.root = f->root};
  assert_int_equal(snap_open(&o, &f->s, &err), 0);
}

static int prep(struct fx *f, enum snap_kind kind, const char *key, const char *parent,
                struct snap_mount *m) {
  ep_err err = {0};
  struct snap_mount tmp = {0};
  int r = snap_prepare(f->s, kind, key, parent, NULL, m != NULL ? m : &tmp, &err);
  snap_mount_free(&tmp);
  return r;
}

static int commit(struct fx *f, const char *name, const char *key) {
  ep_err err = {0};
  return snap_commit(f->s, name, key, NULL, &err);
}

/* base <- mid <- top, all committed. */
static void chain3(struct fx *f) {
  assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "a1", "", NULL), 0);
  assert_int_equal(commit(f, "base", "a1"), 0);
  assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "a2", "base", NULL), 0);
  assert_int_equal(commit(f, "mid", "a2"), 0);
  assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "a3", "mid", NULL), 0);
  assert_int_equal(commit(f, "top", "a3"), 0);
}

static enum snap_kind kind_of(struct fx *f, const char *key) {
  ep_err err = {0};
  struct snap_info i = {0};
  if (snap_stat(f->s, key, &i, &err) < 0)
    return SNAP_KIND_UNKNOWN;
  enum snap_kind k = i.kind;
  snap_info_free(&i);
  return k;
}

/* Number of entries in ROOT/snapshots, and whether `name` is one. */
static int entries(struct fx *f, const char *name, bool *found) {
  char p[160];
  snprintf(p, sizeof p, "%s/snapshots", f->root);
  DIR *d = opendir(p);
  assert_non_null(d);
  int n = 0;
  if (found != NULL)
    *found = false;
  for (struct dirent *de; (de = readdir(d)) != NULL;) {
    if (de->d_name[0] == '.')
      continue;
    n++;
    if (found != NULL && name != NULL && strcmp(de->d_name, name) == 0)
      *found = true;
  }
  closedir(d);
  return n;
}

static void test_kinds_and_parents(void **state) {
  struct fx *f = *state;
  ep_err err = {0};
  struct snap_mount m = {0};
  assert_int_equal(snap_prepare(f->s, SNAP_KIND_ACTIVE, "k", "", NULL, &m, &err), 0);
  assert_string_equal(m.type, "bind");
  assert_int_equal(m.n_options, 2);
  assert_string_equal(m.options[0], "rw");
  assert_string_equal(m.options[1], "rbind");
  char want[200];
  snprintf(want, sizeof want, "%s/snapshots/1/fs", f->root);
  assert_string_equal(m.source, want);
  snap_mount_free(&m);
  assert_int_equal(kind_of(f, "k"), SNAP_KIND_ACTIVE);

  assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "k", "", NULL), -SNAP_EEXISTS);
  assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "x", "missing", NULL), -EP_ENOTFOUND);
  assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "x", "k", NULL), -EP_EINVAL); /* not committed */
  assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "", "", NULL), -EP_EINVAL);
  assert_int_equal(prep(f, SNAP_KIND_COMMITTED, "x", "", NULL), -EP_EINVAL);

  assert_int_equal(snap_prepare(f->s, SNAP_KIND_VIEW, "v", "", NULL, &m, &err), 0);
  assert_string_equal(m.options[0], "ro");
  snap_mount_free(&m);
  assert_int_equal(kind_of(f, "v"), SNAP_KIND_VIEW);
  /* a view has fs/ only, an active snapshot fs/ and work/ */
  char p[200];
  struct stat st;
  snprintf(p, sizeof p, "%s/snapshots/2/work", f->root);
  assert_int_not_equal(stat(p, &st), 0);
  snprintf(p, sizeof p, "%s/snapshots/1/work", f->root);
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0711);
}

static void test_commit(void **state) {
  struct fx *f = *state;
  assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "k", "", NULL), 0);
  assert_int_equal(prep(f, SNAP_KIND_VIEW, "v", "", NULL), 0);
  assert_int_equal(commit(f, "c", "missing"), -EP_ENOTFOUND);
  assert_int_equal(commit(f, "c2", "v"), -SNAP_EPRECOND);
  assert_int_equal(commit(f, "v", "k"), -SNAP_EEXISTS);
  assert_int_equal(commit(f, "c", "k"), 0);
  assert_int_equal(kind_of(f, "k"), SNAP_KIND_UNKNOWN);
  assert_int_equal(kind_of(f, "c"), SNAP_KIND_COMMITTED);
  assert_int_equal(commit(f, "c3", "c"), -SNAP_EPRECOND);

  ep_err err = {0};
  struct snap_mount m = {0};
  assert_int_equal(snap_mounts(f->s, "c", &m, &err), -SNAP_EPRECOND);
  assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "child", "c", NULL), 0);
  struct snap_info i = {0};
  assert_int_equal(snap_stat(f->s, "child", &i, &err), 0);
  assert_string_equal(i.parent, "c");
  assert_true(i.created_ns > 0 && i.updated_ns >= i.created_ns);
  snap_info_free(&i);
}

static void test_mounts(void **state) {
  struct fx *f = *state;
  chain3(f); /* ids 1, 2, 3 */
  ep_err err = {0};
  struct snap_mount m = {0};
  assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "work", "top", NULL), 0); /* id 4 */
  assert_int_equal(snap_mounts(f->s, "work", &m, &err), 0);
  assert_string_equal(m.type, "overlay");
  assert_string_equal(m.source, "overlay");
  char want[600];
  size_t o = m.n_options - 3; /* after "index=off" when the kernel has it */
  assert_true(m.n_options == 3 || (m.n_options == 4 && !strcmp(m.options[0], "index=off")));
  snprintf(want, sizeof want, "workdir=%s/snapshots/4/work", f->root);
  assert_string_equal(m.options[o], want);
  snprintf(want, sizeof want, "upperdir=%s/snapshots/4/fs", f->root);
  assert_string_equal(m.options[o + 1], want);
  snprintf(want, sizeof want, "lowerdir=%s/snapshots/3/fs:%s/snapshots/2/fs:%s/snapshots/1/fs",
           f->root, f->root, f->root);
  assert_string_equal(m.options[o + 2], want);
  snap_mount_free(&m);

  /* a view of one layer binds that layer read-only */
  assert_int_equal(snap_prepare(f->s, SNAP_KIND_VIEW, "v1", "base", NULL, &m, &err), 0);
  snprintf(want, sizeof want, "%s/snapshots/1/fs", f->root);
  assert_string_equal(m.type, "bind");
  assert_string_equal(m.source, want);
  assert_string_equal(m.options[0], "ro");
  snap_mount_free(&m);
  /* a view of more: an overlay with lowerdir only */
  assert_int_equal(snap_prepare(f->s, SNAP_KIND_VIEW, "v2", "mid", NULL, &m, &err), 0);
  assert_string_equal(m.type, "overlay");
  snprintf(want, sizeof want, "lowerdir=%s/snapshots/2/fs:%s/snapshots/1/fs", f->root, f->root);
  assert_string_equal(m.options[m.n_options - 1], want);
  for (size_t k = 0; k < m.n_options; k++)
    assert_null(strstr(m.options[k], "upperdir"));
  snap_mount_free(&m);
}

static void test_remove(void **state) {
  struct fx *f = *state;
  chain3(f);
  ep_err err = {0};
  assert_int_equal(snap_remove(f->s, "mid", &err), -SNAP_EPRECOND);
  assert_int_equal(snap_remove(f->s, "nothing", &err), -EP_ENOTFOUND);
  assert_int_equal(prep(f, SNAP_KIND_VIEW, "v", "base", NULL), 0); /* id 4 */
  assert_int_equal(snap_remove(f->s, "base", &err), -SNAP_EPRECOND);
  assert_int_equal(snap_remove(f->s, "v", &err), 0);
  assert_int_equal(snap_remove(f->s, "top", &err), 0);
  assert_int_equal(snap_remove(f->s, "mid", &err), 0);
  bool found;
  assert_int_equal(entries(f, "1", &found), 1);
  assert_true(found);
  assert_int_equal(snap_remove(f->s, "base", &err), 0);
  assert_int_equal(entries(f, NULL, NULL), 0);
  /* ids are never reused: the next snapshot gets 5 */
  assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "again", "", NULL), 0);
  assert_int_equal(entries(f, "5", &found), 1);
  assert_true(found);
}

static void set_label(struct snap_labels *l, const char *k, const char *v) {
  ep_err err = {0};
  assert_int_equal(snap_labels_set(l, k, v, &err), 0);
}

static void test_labels_update(void **state) {
  struct fx *f = *state;
  ep_err err = {0};
  struct snap_labels l = {0};
  struct snap_mount m = {0};
  set_label(&l, "a", "1");
  set_label(&l, "b", "2");
  set_label(&l, "empty", "");
  assert_int_equal(l.n, 2);
  assert_int_equal(snap_prepare(f->s, SNAP_KIND_ACTIVE, "k", "", &l, &m, &err), 0);
  snap_mount_free(&m);
  snap_labels_free(&l);

  struct snap_info in = {.name = "k"}, out = {0};
  set_label(&in.labels, "a", "10");
  set_label(&in.labels, "c", "3");
  const char *one[] = {"labels.a"};
  assert_int_equal(snap_update(f->s, &in, one, 1, &out, &err), 0);
  assert_string_equal(snap_labels_get(&out.labels, "a"), "10");
  assert_string_equal(snap_labels_get(&out.labels, "b"), "2");
  assert_null(snap_labels_get(&out.labels, "c"));
  assert_true(out.updated_ns >= out.created_ns);
  snap_info_free(&out);

  const char *gone[] = {"labels.b"}; /* absent from the request: removed */
  assert_int_equal(snap_update(f->s, &in, gone, 1, &out, &err), 0);
  assert_null(snap_labels_get(&out.labels, "b"));
  snap_info_free(&out);

  assert_int_equal(snap_update(f->s, &in, NULL, 0, &out, &err), 0); /* no mask: replace */
  assert_int_equal(out.labels.n, 2);
  assert_string_equal(snap_labels_get(&out.labels, "c"), "3");
  snap_info_free(&out);

  const char *bad[] = {"name"};
  assert_int_equal(snap_update(f->s, &in, bad, 1, &out, &err), -EP_EINVAL);
  in.name = "missing";
  assert_int_equal(snap_update(f->s, &in, NULL, 0, &out, &err), -EP_ENOTFOUND);
  snap_labels_free(&in.labels);

  char big[5000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  set_label(&l, "big", big);
  assert_int_equal(snap_prepare(f->s, SNAP_KIND_ACTIVE, "k2", "", &l, &m, &err), -EP_EINVAL);
  snap_labels_free(&l);

  /* commit replaces the labels with the commit's */
  set_label(&l, "committed", "yes");
  assert_int_equal(snap_commit(f->s, "c", "k", &l, &err), 0);
  snap_labels_free(&l);
  assert_int_equal(snap_stat(f->s, "c", &out, &err), 0);
  assert_int_equal(out.labels.n, 1);
  assert_string_equal(snap_labels_get(&out.labels, "committed"), "yes");
  snap_info_free(&out);
}

static int collect(const struct snap_info *i, void *ud) {
  char *acc = ud;
  strcat(acc, i->name);
  strcat(acc, " ");
  return 0;
}

static const char *walk(struct fx *f, char *acc, int n, const char *const *fl) {
  ep_err err = {0};
  acc[0] = '\0';
  assert_int_equal(snap_walk(f->s, fl, (size_t)n, collect, acc, &err), 0);
  return acc;
}

static void test_filters(void **state) {
  struct fx *f = *state;
  ep_err err = {0};
  struct snap_labels l = {0};
  struct snap_mount m = {0};
  set_label(&l, "containerd.io/snapshot.ref", "sha256:abc");
  set_label(&l, "l", "2");
  assert_int_equal(snap_prepare(f->s, SNAP_KIND_ACTIVE, "a", "", NULL, &m, &err), 0);
  snap_mount_free(&m);
  assert_int_equal(snap_commit(f->s, "p", "a", &l, &err), 0);
  assert_int_equal(snap_prepare(f->s, SNAP_KIND_ACTIVE, "b", "p", &l, &m, &err), 0);
  snap_mount_free(&m);
  assert_int_equal(prep(f, SNAP_KIND_VIEW, "v.1", "p", NULL), 0);
  snap_labels_free(&l);

  char acc[256];
  assert_string_equal(walk(f, acc, 0, NULL), "p b v.1 ");
  const char *f1[] = {"labels.\"containerd.io/snapshot.ref\"==sha256:abc,parent==p"};
  assert_string_equal(walk(f, acc, 1, f1), "b ");
  const char *f2[] = {"kind==committed"};
  assert_string_equal(walk(f, acc, 1, f2), "p ");
  const char *f3[] = {"name==p", "name==v.1"}; /* OR of two filters; '.' inside a value */
  assert_string_equal(walk(f, acc, 2, f3), "p v.1 ");
  const char *f4[] = {"labels.l"}; /* presence */
  assert_string_equal(walk(f, acc, 1, f4), "p b ");
  const char *f5[] = {"parent!=\"\",kind!=view"};
  assert_string_equal(walk(f, acc, 1, f5), "b ");
  const char *f6[] = {"name~=/^v.[0-9]$/"}; /* containerd allows no "\\." here */
  assert_string_equal(walk(f, acc, 1, f6), "v.1 ");
  const char *f7[] = {"labels.l==3"};
  assert_string_equal(walk(f, acc, 1, f7), "");

  static const char *const bad[] = {"name==", "==x",      "name==a,",      "labels.\"unterminated",
                                    "name=x", "na me==x", "name~=/^v\\.$/"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snap_filter *flt = NULL;
    assert_int_equal(snap_filter_parse(&bad[i], 1, &flt, &err), -EP_EINVAL);
    assert_int_equal(snap_walk(f->s, &bad[i], 1, collect, acc, &err), -EP_EINVAL);
  }
}

static int count_one(const struct snap_info *i, void *ud) {
  (void)i;
  return ++*(int *)ud == 1000 ? -EP_ECANCELED : 0;
}

static int stop_at_5(const struct snap_info *i, void *ud) {
  (void)i;
  return ++*(int *)ud == 5 ? -EP_ECANCELED : 0;
}

/* More snapshots than one page of the walk (100): each is seen once, and a callback's error
 * stops the walk and comes back. */
static void test_walk_pages(void **state) {
  struct fx *f = *state;
  ep_err err = {0};
  char key[32];
  for (int i = 0; i < 250; i++) {
    snprintf(key, sizeof key, "v-%03d", i);
    assert_int_equal(prep(f, SNAP_KIND_VIEW, key, "", NULL), 0);
  }
  int n = 0;
  assert_int_equal(snap_walk(f->s, NULL, 0, count_one, &n, &err), 0);
  assert_int_equal(n, 250);
  const char *fl[] = {"name~=^v-1"};
  n = 0;
  assert_int_equal(snap_walk(f->s, fl, 1, count_one, &n, &err), 0);
  assert_int_equal(n, 100);
  n = 0;
  assert_int_equal(snap_walk(f->s, NULL, 0, stop_at_5, &n, &err), -EP_ECANCELED);
  assert_int_equal(n, 5);
}

static void write_file(const char *path, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  char buf[4096];
  memset(buf, 'x', sizeof buf);
  for (size_t done = 0; done < len; done += sizeof buf)
    assert_int_equal(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
  close(fd);
}

static void test_usage(void **state) {
  struct fx *f = *state;
  ep_err err = {0};
  struct snap_usage u0, u1, u2;
  assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "k", "", NULL), 0);
  assert_int_equal(snap_usage(f->s, "k", &u0, &err), 0);
  assert_int_equal(u0.inodes, 1); /* fs/ itself */
  char p[200], q[200];
  snprintf(p, sizeof p, "%s/snapshots/1/fs/data", f->root);
  snprintf(q, sizeof q, "%s/snapshots/1/fs/link", f->root);
  write_file(p, 64 * 1024);
  assert_int_equal(link(p, q), 0); /* the same inode twice counts once */
  assert_int_equal(snap_usage(f->s, "k", &u1, &err), 0);
  assert_int_equal(u1.inodes, 2);
  assert_true(u1.size >= u0.size + 64 * 1024);
  assert_int_equal(commit(f, "c", "k"), 0);
  write_file(p, 128 * 1024); /* stored at commit: later writes do not count */
  assert_int_equal(snap_usage(f->s, "c", &u2, &err), 0);
  assert_int_equal(u2.inodes, u1.inodes);
  assert_int_equal(u2.size, u1.size);
  assert_int_equal(snap_usage(f->s, "missing", &u2, &err), -EP_ENOTFOUND);
}

static void mkdir_in(struct fx *f, const char *name) {
  char p[200];
  snprintf(p, sizeof p, "%s/snapshots/%s", f->root, name);
  assert_int_equal(mkdir(p, 0700), 0);
  snprintf(p, sizeof p, "%s/snapshots/%s/fs", f->root, name);
  assert_int_equal(mkdir(p, 0700), 0);
  snprintf(p, sizeof p, "%s/snapshots/%s/fs/file", f->root, name);
  write_file(p, 4096);
}

static void test_cleanup(void **state) {
  struct fx *f = *state;
  chain3(f);
  mkdir_in(f, "new-123");
  mkdir_in(f, "99");
  mkdir_in(f, "rm-7");
  mkdir_in(f, "0");
  mkdir_in(f, "junk");
  assert_int_equal(entries(f, NULL, NULL), 8);
  ep_err err = {0};
  assert_int_equal(snap_cleanup(f->s, &err), 0);
  bool found;
  assert_int_equal(entries(f, "3", &found), 3);
  assert_true(found);
  assert_int_equal(kind_of(f, "top"), SNAP_KIND_COMMITTED);
}

static int crash_hook(void *ud, const char *step) {
  struct fx *f = ud;
  return f->crash_at != NULL && strcmp(step, f->crash_at) == 0;
}

/* A kill at each step of Prepare: nothing visible, and Cleanup (or the next Prepare with the
 * same id) takes what was left. */
static void test_crash_prepare(void **state) {
  struct fx *f = *state;
  ep_err err = {0};
  static const char *const steps[] = {"prepare-mkdir", "prepare-rename"};
  for (size_t i = 0; i < 2; i++) {
    f->crash_at = steps[i];
    snap_set_crash_hook(f->s, crash_hook, f);
    assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "k", "", NULL), -EP_ECANCELED);
    reopen(f); /* the process died */
    assert_int_equal(kind_of(f, "k"), SNAP_KIND_UNKNOWN);
    assert_int_equal(entries(f, NULL, NULL), 1); /* the orphan */
    assert_int_equal(snap_cleanup(f->s, &err), 0);
    assert_int_equal(entries(f, NULL, NULL), 0);
  }
  /* an orphan "<id>" left by a rolled-back id is replaced, not reused, by the next Prepare */
  f->crash_at = "prepare-rename";
  snap_set_crash_hook(f->s, crash_hook, f);
  assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "k", "", NULL), -EP_ECANCELED);
  reopen(f);
  bool found;
  assert_int_equal(entries(f, NULL, NULL), 1);
  char p[200];
  DIR *d;
  assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "k2", "", NULL), 0);
  struct snap_mount m = {0};
  assert_int_equal(snap_mounts(f->s, "k2", &m, &err), 0);
  snprintf(p, sizeof p, "%s", m.source);
  snap_mount_free(&m);
  assert_non_null(d = opendir(p));
  closedir(d);
  assert_int_equal(entries(f, NULL, &found), 1);
}

static void test_crash_remove(void **state) {
  struct fx *f = *state;
  ep_err err = {0};
  static const char *const steps[] = {"remove-commit", "remove-rename"};
  for (size_t i = 0; i < 2; i++) {
    assert_int_equal(prep(f, SNAP_KIND_ACTIVE, "k", "", NULL), 0);
    f->crash_at = steps[i];
    snap_set_crash_hook(f->s, crash_hook, f);
    assert_int_equal(snap_remove(f->s, "k", &err), 0);
    reopen(f);
    assert_int_equal(kind_of(f, "k"), SNAP_KIND_UNKNOWN);
    assert_int_equal(entries(f, NULL, NULL), 1);
    assert_int_equal(snap_cleanup(f->s, &err), 0);
    assert_int_equal(entries(f, NULL, NULL), 0);
  }
}

/* The remote-prepare hook: a slow one (it waits until the main thread has done a Stat, a List, a
 * Prepare and a Commit of its own) must hold up none of them; its answer decides Prepare's. */
struct slow {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool entered, release;
  int answer;
  struct fx *f;
  int result;
};

static int slow_remote(void *ud, snap *s, const char *key, const char *parent,
                       const struct snap_labels *labels, ep_err *err) {
  struct slow *w = ud;
  pthread_mutex_lock(&w->mu);
  w->entered = true;
  pthread_cond_broadcast(&w->cv);
  while (!w->release)
    pthread_cond_wait(&w->cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
  if (w->answer == -SNAP_EEXISTS) {
    struct snap_mount m = {0};
    int r = snap_prepare(s, SNAP_KIND_ACTIVE, "remote-tmp", parent, NULL, &m, err);
    snap_mount_free(&m);
    if (r == 0)
      r = snap_commit(s, "remote-layer", "remote-tmp", labels, err);
    if (r < 0)
      return r;
    return ep_error(err, SNAP_EEXISTS, "snapshot %s already exists", "remote-layer");
  }
  return ep_error(err, -w->answer, "not handled");
}

static void *slow_prepare(void *ud) {
  struct slow *w = ud;
  struct snap_labels l = {0};
  set_label(&l, "containerd.io/snapshot.ref", "sha256:chain");
  ep_err err = {0};
  struct snap_mount m = {0};
  w->result = snap_prepare(w->f->s, SNAP_KIND_ACTIVE, "extract-1", "", &l, &m, &err);
  snap_mount_free(&m);
  snap_labels_free(&l);
  return NULL;
}

static void test_remote_hook(void **state) {
  struct fx *f = *state;
  static const int answers[] = {-SNAP_EEXISTS, -EP_EUNSUPPORTED};
  for (size_t i = 0; i < 2; i++) {
    struct slow w = {.f = f, .answer = answers[i]};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    snap_close(f->s);
    ep_err err = {0};
    struct snap_opts o = {.root = f->root, .remote = slow_remote, .remote_ud = &w};
    assert_int_equal(snap_open(&o, &f->s, &err), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slow_prepare, &w), 0);
    pthread_mutex_lock(&w.mu);
    while (!w.entered)
      pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    /* the remote prepare is in progress: everything else goes on */
    char key[32], name[32], acc[256];
    snprintf(key, sizeof key, "other-%zu", i);
    snprintf(name, sizeof name, "other-c-%zu", i);
    assert_int_equal(prep(f, SNAP_KIND_ACTIVE, key, "", NULL), 0);
    assert_int_equal(commit(f, name, key), 0);
    assert_int_equal(kind_of(f, name), SNAP_KIND_COMMITTED);
    walk(f, acc, 0, NULL);
    assert_non_null(strstr(acc, name));
    pthread_mutex_lock(&w.mu);
    w.release = true;
    pthread_cond_broadcast(&w.cv);
    pthread_mutex_unlock(&w.mu);
    pthread_join(t, NULL);
    assert_int_equal(w.result, answers[i] == -SNAP_EEXISTS ? -SNAP_EEXISTS : 0);
    assert_int_equal(kind_of(f, "extract-1"),
                     answers[i] == -SNAP_EEXISTS ? SNAP_KIND_UNKNOWN : SNAP_KIND_ACTIVE);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
  }
  const char *fl[] = {"labels.\"containerd.io/snapshot.ref\"==sha256:chain,kind==committed"};
  char acc[256];
  assert_string_equal(walk(f, acc, 1, fl), "remote-layer ");
  reopen(f); /* without the hook, which points into this frame */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_kinds_and_parents, setup, teardown),
      cmocka_unit_test_setup_teardown(test_commit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mounts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
      cmocka_unit_test_setup_teardown(test_labels_update, setup, teardown),
      cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
      cmocka_unit_test_setup_teardown(test_walk_pages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cleanup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_crash_prepare, setup, teardown),
      cmocka_unit_test_setup_teardown(test_crash_remove, setup, teardown),
      cmocka_unit_test_setup_teardown(test_remote_hook, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
