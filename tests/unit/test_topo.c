/* Unit tests for locality/topo.c: fixed scenarios, then properties over
 * thousands of random join/leave sequences for chain and tree:K, checked
 * after every operation against a model of the membership: every node
 * reaches the root, no cycle, fan-out <= K, a join lands on the shallowest
 * free slot and moves nobody else, a leave moves only the orphans, recovery
 * keeps every valid assignment and fixes the corrupted ones, a rebuild puts
 * faster links no deeper than slower ones.
 * The PRNG seed is fixed so CI is deterministic; EP_TOPO_SEED overrides it
 * and the seed is printed so a failure can be replayed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "locality/topo.h"

#define MAXN 256
#define IDLEN 64
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const unsigned ks[] = {1, 2, 3, 4, 8};

/* ---- PRNG (splitmix64) ---- */

static uint64_t rnd(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static unsigned rn(uint64_t *s, unsigned n) {
  return (unsigned)(rnd(s) % n);
}

static uint64_t seed_for(unsigned salt) {
  static const uint64_t dflt = 0x70b0c0ffee5eedull;
  const char *e = getenv("EP_TOPO_SEED");
  uint64_t seed = e != NULL ? strtoull(e, NULL, 0) : dflt;
  if (salt == 0)
    print_message("topology seed 0x%llx (set EP_TOPO_SEED to replay)\n", (unsigned long long)seed);
  return seed ^ ((uint64_t)salt * 0x100000001b3ull);
}

/* Few distinct speeds, so ties are common. */
static uint32_t rlink(uint64_t *s) {
  static const uint32_t speeds[] = {10, 100, 100, 1000, 1000, 10000};
  return rn(s, 4) == 0 ? 1 + rn(s, 20000) : speeds[rn(s, ARRAY_LEN(speeds))];
}

/* ---- model of a membership, and snapshots ---- */

struct model {
  size_t n;
  int root; /* index in ids, -1 if none */
  char ids[MAXN][IDLEN];
  uint32_t link[MAXN];
};

struct snap {
  char parent[MAXN][IDLEN]; /* "" for none */
  uint64_t epoch[MAXN];
  unsigned depth[MAXN], kids[MAXN];
};

static void take(const topo *t, const struct model *m, struct snap *s) {
  for (size_t i = 0; i < m->n; i++) {
    const char *p = topo_parent(t, m->ids[i], &s->epoch[i]);
    snprintf(s->parent[i], IDLEN, "%s", p != NULL ? p : "");
    s->depth[i] = topo_depth(t, m->ids[i]);
    s->kids[i] = topo_children(t, m->ids[i]);
  }
}

static void checked(const topo *t, const struct model *m, const char *what) {
  ep_err e = {0};
  if (topo_check(t, &e) != 0)
    fail_msg("after %s: %s", what, e.msg);
  assert_int_equal(topo_count(t), m->n);
  const char *r = topo_root(t);
  if (m->root < 0)
    assert_null(r);
  else
    assert_string_equal(r, m->ids[m->root]);
}

/* Nodes other than skip (a set given as a flag array) kept parent and epoch. */
static void unchanged_but(const topo *t, const struct model *m, const struct snap *before,
                          const bool *skip, const char *what) {
  struct snap *now = malloc(sizeof(*now));
  assert_non_null(now);
  take(t, m, now);
  for (size_t i = 0; i < m->n; i++) {
    if (skip != NULL && skip[i])
      continue;
    if (strcmp(before->parent[i], now->parent[i]) != 0 || before->epoch[i] != now->epoch[i])
      fail_msg("after %s: %s moved from '%s'@%llu to '%s'@%llu", what, m->ids[i], before->parent[i],
               (unsigned long long)before->epoch[i], now->parent[i],
               (unsigned long long)now->epoch[i]);
  }
  free(now);
}

static bool faster(const struct model *m, size_t a, size_t b) {
  if (m->link[a] != m->link[b])
    return m->link[a] > m->link[b];
  return strcmp(m->ids[a], m->ids[b]) < 0;
}

/* The node a joiner must land under: shallowest free slot, faster, id. */
static int expected_slot(const struct model *m, const struct snap *s, unsigned k) {
  int best = -1;
  for (size_t i = 0; i < m->n; i++) {
    if (s->kids[i] >= k || (s->parent[i][0] == '\0' && (int)i != m->root))
      continue;
    if (best < 0 || s->depth[i] < s->depth[best] ||
        (s->depth[i] == s->depth[best] && faster(m, i, (size_t)best)))
      best = (int)i;
  }
  return best;
}

/* ---- operations, each followed by its property checks ---- */

static void op_join(topo *t, struct model *m, struct snap *s, unsigned k, uint64_t *rs,
                    unsigned *serial) {
  if (m->n >= MAXN)
    return;
  take(t, m, s);
  int slot = m->root >= 0 ? expected_slot(m, s, k) : -1;
  size_t i = m->n;
  snprintf(m->ids[i], IDLEN, "node-%u", (*serial)++);
  m->link[i] = rlink(rs);
  ep_err e = {0};
  if (topo_join(t, m->ids[i], m->link[i], &e) != 0)
    fail_msg("join: %s", e.msg);
  m->n++;
  checked(t, m, "join");
  bool skip[MAXN] = {false};
  skip[i] = true;
  unchanged_but(t, m, s, skip, "join");
  const char *p = topo_parent(t, m->ids[i], NULL);
  if (m->root < 0) {
    assert_null(p);
  } else {
    assert_non_null(p);
    assert_string_equal(p, m->ids[slot]);
  }
}

static void op_update(topo *t, struct model *m, struct snap *s, uint64_t *rs) {
  if (m->n == 0)
    return;
  size_t i = rn(rs, (unsigned)m->n);
  take(t, m, s);
  m->link[i] = rlink(rs);
  ep_err e = {0};
  assert_int_equal(topo_join(t, m->ids[i], m->link[i], &e), 0);
  checked(t, m, "link update");
  unchanged_but(t, m, s, NULL, "link update");
}

static void remove_at(struct model *m, size_t i) {
  m->n--;
  if (m->root == (int)m->n)
    m->root = (int)i;
  if (i != m->n) {
    memcpy(m->ids[i], m->ids[m->n], IDLEN);
    m->link[i] = m->link[m->n];
  }
}

static void op_leave(topo *t, struct model *m, struct snap *s, uint64_t *rs, bool root) {
  if (m->n == 0 || (root && m->root < 0) || (!root && m->n == (m->root >= 0 ? 1u : 0u)))
    return;
  size_t x = root ? (size_t)m->root : rn(rs, (unsigned)m->n);
  while (!root && (int)x == m->root)
    x = rn(rs, (unsigned)m->n);
  take(t, m, s);
  char xid[IDLEN], xparent[IDLEN];
  memcpy(xid, m->ids[x], IDLEN);
  memcpy(xparent, s->parent[x], IDLEN);
  bool orphan[MAXN] = {false};
  int first = -1;
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(s->parent[i], xid) == 0) {
      orphan[i] = true;
      if (first < 0 || faster(m, i, (size_t)first))
        first = (int)i;
    }
  ep_err e = {0};
  assert_int_equal(topo_leave(t, xid, &e), 0);
  if (root)
    m->root = -1;
  orphan[x] = true; /* the model still holds x until remove_at: skip it */
  unchanged_but(t, m, s, orphan, "leave");
  for (size_t i = 0; i < m->n; i++) {
    if (!orphan[i] || i == x)
      continue;
    uint64_t ep;
    const char *p = topo_parent(t, m->ids[i], &ep);
    if (ep <= s->epoch[i])
      fail_msg("leave of %s: orphan %s kept epoch %llu", xid, m->ids[i], (unsigned long long)ep);
    if (m->root >= 0)
      assert_non_null(p);
    if ((int)i == first && xparent[0] != '\0') {
      assert_non_null(p);
      assert_string_equal(p, xparent);
    }
  }
  remove_at(m, x);
  assert_null(topo_parent(t, xid, NULL));
  checked(t, m, "leave");
}

static void op_set_root(topo *t, struct model *m, struct snap *s, uint64_t *rs, unsigned *serial) {
  int r;
  if (m->n > 0 && rn(rs, 2) == 0) {
    r = (int)rn(rs, (unsigned)m->n);
  } else {
    if (m->n >= MAXN)
      return;
    r = (int)m->n;
    snprintf(m->ids[r], IDLEN, "gw-%u", (*serial)++);
    m->n++;
  }
  m->link[r] = rlink(rs);
  ep_err e = {0};
  if (topo_set_root(t, m->ids[r], m->link[r], &e) != 0)
    fail_msg("set_root: %s", e.msg);
  m->root = r;
  checked(t, m, "set_root");
  assert_null(topo_parent(t, m->ids[r], NULL));
  (void)s;
}

/* Faster links are never deeper than slower ones. */
static void assert_rebuilt(const topo *t, const struct model *m, const struct snap *s) {
  for (size_t i = 0; i < m->n; i++)
    for (size_t j = 0; j < m->n; j++)
      if ((int)i != m->root && (int)j != m->root && m->link[i] > m->link[j] &&
          s->depth[i] > s->depth[j])
        fail_msg("rebuild: %s (%u Mbit/s) deeper than %s (%u Mbit/s)", m->ids[i], m->link[i],
                 m->ids[j], m->link[j]);
}

static void op_rebuild(topo *t, struct model *m, struct snap *s) {
  topo_rebuild(t);
  checked(t, m, "rebuild");
  if (m->root < 0)
    return;
  take(t, m, s);
  assert_rebuilt(t, m, s);
  topo_rebuild(t); /* idempotent: nobody moves the second time */
  checked(t, m, "second rebuild");
  unchanged_but(t, m, s, NULL, "second rebuild");
}

static void op_leave_unknown(topo *t, const struct model *m, struct snap *s) {
  take(t, m, s);
  ep_err e = {0};
  assert_int_equal(topo_leave(t, "no-such-node", &e), 0);
  checked(t, m, "leave of an unknown node");
  unchanged_but(t, m, s, NULL, "leave of an unknown node");
}

struct world {
  struct model m;
  struct snap s;
};

static void run_sequence(enum topo_strategy st, unsigned k, uint64_t *rs, struct world *w) {
  topo *t = topo_new(st, k);
  assert_non_null(t);
  struct model *m = &w->m;
  m->n = 0;
  m->root = -1;
  unsigned serial = 0, nops = 1 + rn(rs, 200);
  if (rn(rs, 4) != 0)
    op_set_root(t, m, &w->s, rs, &serial);
  for (unsigned i = 0; i < nops; i++) {
    unsigned r = rn(rs, 100);
    if (m->root < 0 && rn(rs, 10) == 0)
      op_set_root(t, m, &w->s, rs, &serial);
    else if (r < 55)
      op_join(t, m, &w->s, k, rs, &serial);
    else if (r < 85)
      op_leave(t, m, &w->s, rs, false);
    else if (r < 90)
      op_update(t, m, &w->s, rs);
    else if (r < 92)
      op_leave_unknown(t, m, &w->s);
    else if (r < 94)
      op_leave(t, m, &w->s, rs, true);
    else if (r < 96)
      op_set_root(t, m, &w->s, rs, &serial);
    else
      op_rebuild(t, m, &w->s);
  }
  topo_free(t);
}

#define SEQUENCES 340 /* per strategy: 6 strategies, about 2000 sequences */

static void check_sequences(enum topo_strategy st, unsigned k, unsigned salt) {
  uint64_t rs = seed_for(salt);
  struct world *w = malloc(sizeof(*w));
  assert_non_null(w);
  for (unsigned i = 0; i < SEQUENCES; i++)
    run_sequence(st, k, &rs, w);
  free(w);
}

static void test_sequences_chain(void **state) {
  check_sequences(TOPO_CHAIN, 1, 0);
}

static void test_sequences_tree(void **state) {
  for (size_t i = 0; i < ARRAY_LEN(ks); i++)
    check_sequences(TOPO_TREE, ks[i], 1 + (unsigned)i);
}

/* ---- recovery: assign + repair ---- */

struct plan {
  char parent[MAXN][IDLEN]; /* "" for the root */
  uint64_t epoch[MAXN];
  bool bad[MAXN], skip[MAXN];
  uint64_t maxep;
};

static int pick_nonroot(const struct model *m, uint64_t *rs) {
  int i;
  do
    i = (int)rn(rs, (unsigned)m->n);
  while (i == m->root);
  return i;
}

static void corrupt(const struct model *m, const struct snap *s, struct plan *pl, unsigned k,
                    uint64_t *rs) {
  int c = pick_nonroot(m, rs), d = c;
  switch (rn(rs, 5)) {
  case 0: /* cycle: c under one of its descendants (or itself) */
    for (unsigned n = rn(rs, 4); n > 0; n--) {
      int kid = -1;
      for (size_t i = 0; i < m->n && kid < 0; i++)
        if (strcmp(pl->parent[i], m->ids[d]) == 0)
          kid = (int)i;
      if (kid >= 0)
        d = kid;
    }
    snprintf(pl->parent[c], IDLEN, "%s", m->ids[d]);
    break;
  case 1: /* one child too many at a full node */
    d = (int)rn(rs, (unsigned)m->n);
    for (size_t i = 0; i < m->n; i++)
      if (s->kids[i] >= k && (int)i != c)
        d = (int)i;
    if (d == c)
      return;
    snprintf(pl->parent[c], IDLEN, "%s", m->ids[d]);
    break;
  case 2:
    snprintf(pl->parent[c], IDLEN, "ghost-%u", rn(rs, 1000));
    break;
  case 3: /* the root under someone */
    c = m->root;
    snprintf(pl->parent[c], IDLEN, "%s", m->ids[pick_nonroot(m, rs)]);
    break;
  default: /* no retained assignment */
    pl->skip[c] = pl->bad[c] = true;
    return;
  }
  pl->epoch[c] = ++pl->maxep;
  pl->bad[c] = true;
}

static topo *restarted(enum topo_strategy st, unsigned k, const struct model *m,
                       const struct plan *pl, uint64_t *rs) {
  topo *b = topo_new(st, k);
  assert_non_null(b);
  ep_err e = {0};
  bool root_first = rn(rs, 2) == 0;
  if (root_first)
    assert_int_equal(topo_set_root(b, m->ids[m->root], m->link[m->root], &e), 0);
  size_t off = rn(rs, (unsigned)m->n);
  for (size_t j = 0; j < m->n; j++) {
    size_t i = (j + off) % m->n;
    assert_int_equal(topo_join(b, m->ids[i], m->link[i], &e), 0);
  }
  if (!root_first)
    assert_int_equal(topo_set_root(b, m->ids[m->root], m->link[m->root], &e), 0);
  for (size_t j = 0; j < m->n; j++) {
    size_t i = (off + m->n - j) % m->n;
    if (!pl->skip[i] &&
        topo_assign(b, m->ids[i], pl->parent[i][0] ? pl->parent[i] : NULL, pl->epoch[i], &e) != 0)
      fail_msg("assign: %s", e.msg);
  }
  return b;
}

static void recover_one(enum topo_strategy st, unsigned k, uint64_t *rs, struct world *w,
                        struct plan *pl, struct snap *pre) {
  /* a topology shaped by a random history */
  topo *a = topo_new(st, k);
  struct model *m = &w->m;
  unsigned serial = 0, nops = 2 + rn(rs, 150);
  m->n = 0;
  m->root = -1;
  op_set_root(a, m, &w->s, rs, &serial);
  for (unsigned i = 0; i < nops; i++)
    if (rn(rs, 3) != 0)
      op_join(a, m, &w->s, k, rs, &serial);
    else
      op_leave(a, m, &w->s, rs, false);
  take(a, m, &w->s);
  topo_free(a);
  if (m->n < 2)
    return;

  memset(pl, 0, sizeof(*pl));
  for (size_t i = 0; i < m->n; i++) {
    memcpy(pl->parent[i], w->s.parent[i], IDLEN);
    pl->epoch[i] = w->s.epoch[i];
    if (pl->epoch[i] > pl->maxep)
      pl->maxep = pl->epoch[i];
  }
  unsigned ncorrupt = rn(rs, 3) == 0 ? 0 : 1 + rn(rs, 4);
  for (unsigned i = 0; i < ncorrupt; i++)
    corrupt(m, &w->s, pl, k, rs);

  topo *b = restarted(st, k, m, pl, rs);
  take(b, m, pre);
  uint64_t premax = 0; /* repair's bumps go past every epoch it was given */
  for (size_t i = 0; i < m->n; i++)
    if (pre->epoch[i] > premax)
      premax = pre->epoch[i];
  int moved = topo_repair(b);
  checked(b, m, "repair");
  unchanged_but(b, m, &w->s, pl->bad, "repair"); /* the valid ones stayed */
  struct snap *post = &w->s;
  take(b, m, post);
  int changed = 0;
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(pre->parent[i], post->parent[i]) != 0) {
      changed++;
      assert_true(post->epoch[i] > premax);
    }
  assert_int_equal(moved, changed);
  if (ncorrupt == 0)
    assert_int_equal(moved, 0);
  assert_int_equal(topo_repair(b), 0);
  topo_free(b);
}

static void test_recovery(void **state) {
  uint64_t rs = seed_for(10);
  struct world *w = malloc(sizeof(*w));
  struct plan *pl = malloc(sizeof(*pl));
  struct snap *pre = malloc(sizeof(*pre));
  assert_true(w != NULL && pl != NULL && pre != NULL);
  for (unsigned i = 0; i < 150; i++) {
    recover_one(TOPO_CHAIN, 1, &rs, w, pl, pre);
    for (size_t j = 0; j < ARRAY_LEN(ks); j++)
      recover_one(TOPO_TREE, ks[j], &rs, w, pl, pre);
  }
  free(w);
  free(pl);
  free(pre);
}

/* ---- rebuild ---- */

static void test_rebuild(void **state) {
  uint64_t rs = seed_for(20);
  struct world *w = malloc(sizeof(*w));
  assert_non_null(w);
  for (unsigned it = 0; it < 120; it++) {
    bool chain = it % 6 == 5;
    unsigned k = chain ? 1 : ks[it % ARRAY_LEN(ks)], serial = 0, n = 1 + rn(&rs, MAXN - 1);
    topo *t = topo_new(chain ? TOPO_CHAIN : TOPO_TREE, k);
    w->m.n = 0;
    w->m.root = -1;
    for (unsigned i = 0; i < n; i++)
      op_join(t, &w->m, &w->s, k, &rs, &serial);
    op_set_root(t, &w->m, &w->s, &rs, &serial);
    op_rebuild(t, &w->m, &w->s);
    for (unsigned i = 0; i < 20; i++)
      op_join(t, &w->m, &w->s, k, &rs, &serial);
    topo_free(t);
  }
  free(w);
}

/* ---- fixed scenarios ---- */

static void join(topo *t, const char *id, uint32_t link) {
  ep_err e = {0};
  if (topo_join(t, id, link, &e) != 0)
    fail_msg("join %s: %s", id, e.msg);
}

static void assert_parent(const topo *t, const char *id, const char *want) {
  const char *p = topo_parent(t, id, NULL);
  if (want == NULL)
    assert_null(p);
  else if (p == NULL || strcmp(p, want) != 0)
    fail_msg("parent of %s: %s, expected %s", id, p != NULL ? p : "(none)", want);
}

static void test_chain(void **state) {
  topo *t = topo_new(TOPO_CHAIN, 7);
  ep_err e = {0};
  assert_int_equal(topo_set_root(t, "gw", 1000, &e), 0);
  join(t, "a", 100);
  join(t, "b", 10);
  join(t, "c", 1000);
  assert_parent(t, "a", "gw");
  assert_parent(t, "b", "a");
  assert_parent(t, "c", "b");
  assert_int_equal(topo_depth(t, "c"), 3);
  uint64_t ea, ec, ec2;
  topo_parent(t, "a", &ea);
  topo_parent(t, "c", &ec);
  assert_int_equal(topo_leave(t, "b", &e), 0);
  assert_parent(t, "c", "a");
  assert_int_equal(topo_depth(t, "c"), 2);
  topo_parent(t, "c", &ec2);
  assert_true(ec2 > ec);
  uint64_t ea2;
  topo_parent(t, "a", &ea2);
  assert_int_equal(ea, ea2);
  assert_int_equal(topo_check(t, &e), 0);
  topo_rebuild(t); /* c is faster than a */
  assert_parent(t, "c", "gw");
  assert_parent(t, "a", "c");
  topo_free(t);
}

static void test_tree_leave(void **state) {
  topo *t = topo_new(TOPO_TREE, 2);
  ep_err e = {0};
  assert_int_equal(topo_set_root(t, "gw", 1000, &e), 0);
  join(t, "a", 100); /* gw: a b; a: c d; b: e f */
  join(t, "b", 10);
  join(t, "c", 10);
  join(t, "d", 500);
  join(t, "e", 10);
  join(t, "f", 10);
  assert_parent(t, "c", "a");
  assert_parent(t, "e", "b");
  assert_int_equal(topo_leave(t, "a", &e), 0);
  assert_parent(t, "d", "gw"); /* the fastest orphan takes a's slot */
  assert_parent(t, "c", "d");  /* the shallowest free slot, not b's */
  assert_parent(t, "e", "b");
  assert_int_equal(topo_check(t, &e), 0);
  assert_int_equal(topo_leave(t, "gw", &e), 0); /* no root: detached */
  assert_null(topo_root(t));
  assert_parent(t, "d", NULL);
  assert_parent(t, "c", "d");
  assert_int_equal(topo_check(t, &e), 0);
  assert_int_equal(topo_set_root(t, "gw2", 1000, &e), 0);
  assert_parent(t, "d", "gw2");
  assert_parent(t, "b", "gw2");
  assert_int_equal(topo_check(t, &e), 0);
  assert_int_equal(topo_set_root(t, "gw3", 1000, &e), 0); /* old root joins */
  assert_parent(t, "gw2", "gw3");
  assert_parent(t, "d", "gw2");
  assert_int_equal(topo_count(t), 7);
  topo_free(t);
}

static void test_no_root(void **state) {
  topo *t = topo_new(TOPO_TREE, 3);
  ep_err e = {0};
  join(t, "slow", 10);
  join(t, "fast", 1000);
  assert_parent(t, "slow", NULL);
  assert_null(topo_root(t));
  assert_int_equal(topo_check(t, &e), 0);
  topo_rebuild(t);
  join(t, "gw", 1); /* not the root: a member */
  assert_int_equal(topo_set_root(t, "gw", 1, &e), 0);
  assert_parent(t, "fast", "gw");
  assert_parent(t, "slow", "gw");
  assert_int_equal(topo_children(t, "gw"), 2);
  assert_int_equal(topo_check(t, &e), 0);
  assert_int_equal(topo_leave(t, "nobody", &e), 0);
  assert_int_equal(topo_join(t, "", 1, &e), -EP_EINVAL);
  char long_id[70];
  memset(long_id, 'x', 64);
  long_id[64] = '\0';
  assert_int_equal(topo_join(t, long_id, 1, &e), -EP_EINVAL);
  long_id[63] = '\0';
  assert_int_equal(topo_join(t, long_id, 1, &e), 0);
  assert_int_equal(topo_assign(t, "nobody", "gw", 1, &e), -EP_ENOTFOUND);
  assert_int_equal(topo_check(t, &e), 0);
  assert_null(topo_new(TOPO_TREE, 0));
  assert_null(topo_new(TOPO_TREE, 65));
  topo_free(t);
}

static int visit(const char *id, const char *parent, uint64_t epoch, void *ud) {
  char *out = ud;
  strcat(out, id);
  strcat(out, parent != NULL ? "<" : ".");
  strcat(out, parent != NULL ? parent : "");
  strcat(out, " ");
  return strcmp(id, "e") == 0;
}

static void test_foreach(void **state) {
  topo *t = topo_new(TOPO_TREE, 2);
  ep_err e = {0};
  assert_int_equal(topo_set_root(t, "gw", 1000, &e), 0);
  join(t, "a", 100);
  join(t, "b", 10);
  join(t, "c", 10);
  join(t, "d", 10);
  join(t, "e", 10);
  join(t, "f", 10);
  char out[256] = "";
  topo_foreach(t, visit, out);
  assert_string_equal(out, "gw. a<gw b<gw c<a d<a e<b ");
  topo_free(t);
}

static void test_parse_strategy(void **state) {
  static const char *const bad[] = {"tree:0", "tree:65", "tree:",   "tree:2x", "ring",
                                    "",       "tree:-1", "tree: 2", "tree:+2", "tree:99999999999",
                                    "chain ", "Tree:2"};
  enum topo_strategy st;
  unsigned k;
  ep_err e = {0};
  assert_int_equal(topo_parse_strategy("chain", &st, &k, &e), 0);
  assert_int_equal(st, TOPO_CHAIN);
  assert_int_equal(k, 1);
  assert_int_equal(topo_parse_strategy("tree:1", &st, &k, &e), 0);
  assert_int_equal(k, 1);
  assert_int_equal(topo_parse_strategy("tree:64", &st, &k, &e), 0);
  assert_int_equal(st, TOPO_TREE);
  assert_int_equal(k, 64);
  assert_int_equal(topo_parse_strategy("tree:8", &st, &k, &e), 0);
  assert_int_equal(k, 8);
  for (size_t i = 0; i < ARRAY_LEN(bad); i++)
    if (topo_parse_strategy(bad[i], &st, &k, &e) != -EP_EINVAL)
      fail_msg("accepted '%s'", bad[i]);
  assert_int_equal(topo_parse_strategy(NULL, &st, &k, &e), -EP_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_strategy), cmocka_unit_test(test_chain),
      cmocka_unit_test(test_tree_leave),     cmocka_unit_test(test_no_root),
      cmocka_unit_test(test_foreach),        cmocka_unit_test(test_sequences_chain),
      cmocka_unit_test(test_sequences_tree), cmocka_unit_test(test_recovery),
      cmocka_unit_test(test_rebuild),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
