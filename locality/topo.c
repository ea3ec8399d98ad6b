/* Distribution topology: which node fetches from which (see topo.h).
 *
 * Why: the coordinator must heal a locality within seconds of a node's loss
 * and must never move a node that did not need to move, because every move
 * restarts that node's streams. So joins and leaves are local edits of a
 * tree, not recomputations, and each is cheap enough for 100,000 nodes.
 *
 * How: nodes live in a chained hash map by id. Each node has a parent, an
 * intrusive doubly-linked list of children, its depth and its epoch. The
 * candidate parents (attached nodes with fewer than K children) sit in a
 * binary min-heap keyed by (depth, faster link, id), so "the shallowest node
 * with a free slot" is the heap's top: a join is O(log n). A leave detaches
 * the orphans' subtrees (taking their nodes out of the heap), gives the first
 * orphan the leaver's slot and places the others at the heap's top; as the
 * orphans' own subtrees are out of the heap, no orphan can land inside its
 * own subtree, so no cycle can form. Subtrees are walked iteratively through
 * the parent/sibling pointers, never recursively: a chain is as deep as it is
 * long. Scratch arrays are grown at join time so that leave, repair and
 * rebuild never allocate and cannot fail.
 *
 * topo_assign() only records links (it may create cycles or over-full
 * nodes) and marks the topology dirty; topo_repair() trims over-full nodes
 * (latest epochs go), breaks cycles at their latest-epoch node, places every
 * loose subtree like a joiner, and rebuilds depths and the heap.
 *
 * Not thread safe: one owner thread (the coordinator's loop). */
#include "locality/topo.h"

#include "common/vec.h"

#include <stdlib.h>
#include <string.h>

#define TOPO_ID_MAX 63
#define TOPO_K_MAX 64
#define NO_HEAP SIZE_MAX

struct tnode {
  char id[TOPO_ID_MAX + 1];
  uint32_t hash;
  uint32_t link;
  uint64_t epoch;
  struct tnode *parent;
  struct tnode *first, *last; /* children */
  struct tnode *prev, *next;  /* siblings */
  struct tnode *hnext;        /* hash chain */
  struct tnode *was;          /* parent before a repair or rebuild */
  size_t heap;                /* index in the free-slot heap or NO_HEAP */
  unsigned nchildren;
  unsigned depth;      /* distance to the top of its tree (the root if attached) */
  unsigned char color; /* cycle search in repair */
  bool assigned;       /* linked by topo_assign() since the last repair */
  bool attached;       /* reachable from the root */
};

struct topo {
  enum topo_strategy st;
  unsigned k;
  bool dirty; /* topo_assign() since the last repair */
  struct tnode *root;
  struct tnode **buckets;
  size_t nbuckets, count;
  /* heap, scratch and queue each hold cap pointers, cap >= count */
  struct tnode **heap, **scratch, **queue;
  size_t nheap, cap;
  uint64_t epoch;
};

/* ---- ids and the hash map ---- */

static bool id_ok(const char *id) {
  return id != NULL && id[0] != '\0' && strnlen(id, TOPO_ID_MAX + 1) <= TOPO_ID_MAX;
}

static uint32_t id_hash(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s != '\0'; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

static struct tnode *lookup(const topo *t, const char *id) {
  if (!id_ok(id) || t->nbuckets == 0)
    return NULL;
  uint32_t h = id_hash(id);
  for (struct tnode *n = t->buckets[h & (t->nbuckets - 1)]; n != NULL; n = n->hnext)
    if (n->hash == h && strcmp(n->id, id) == 0)
      return n;
  return NULL;
}

static int hash_grow(topo *t) {
  size_t nb = t->nbuckets == 0 ? 64 : t->nbuckets * 2;
  struct tnode **b = calloc(nb, sizeof(*b));
  if (b == NULL)
    return -1;
  for (size_t i = 0; i < t->nbuckets; i++) {
    struct tnode *n = t->buckets[i], *nx;
    for (; n != NULL; n = nx) {
      nx = n->hnext;
      n->hnext = b[n->hash & (nb - 1)];
      b[n->hash & (nb - 1)] = n;
    }
  }
  free(t->buckets);
  t->buckets = b;
  t->nbuckets = nb;
  return 0;
}

static void hash_remove(topo *t, struct tnode *x) {
  struct tnode **pp = &t->buckets[x->hash & (t->nbuckets - 1)];
  while (*pp != x)
    pp = &(*pp)->hnext;
  *pp = x->hnext;
  t->count--;
}

/* Room for one more node everywhere, so later steps cannot fail. */
static int reserve_one(topo *t, ep_err *err) {
  if (t->count >= SIZE_MAX / 4 / sizeof(struct tnode *))
    return ep_error(err, EP_ETOOBIG, "topology: too many nodes");
  if (t->count + 1 > t->nbuckets && hash_grow(t) < 0)
    return ep_error(err, EP_EINTERNAL, "topology: out of memory");
  if (t->count + 1 > t->cap) {
    /* three arrays of one length: each grows the same way from t->cap */
    size_t max = SIZE_MAX / 4 / sizeof(struct tnode *);
    size_t ch = t->cap, cs = t->cap, cq = t->cap;
    if (ep_vec_reserve(&t->heap, &ch, t->count + 1, max) < 0 ||
        ep_vec_reserve(&t->scratch, &cs, t->count + 1, max) < 0 ||
        ep_vec_reserve(&t->queue, &cq, t->count + 1, max) < 0)
      return ep_error(err, EP_EINTERNAL, "topology: out of memory");
    t->cap = ch;
  }
  return 0;
}

static struct tnode *node_new(topo *t, const char *id, uint32_t link) {
  struct tnode *n = calloc(1, sizeof(*n));
  if (n == NULL)
    return NULL;
  memcpy(n->id, id, strlen(id) + 1);
  n->hash = id_hash(id);
  n->link = link;
  n->heap = NO_HEAP;
  size_t b = n->hash & (t->nbuckets - 1);
  n->hnext = t->buckets[b];
  t->buckets[b] = n;
  t->count++;
  return n;
}

/* ---- the free-slot heap: (depth, faster link, id) ---- */

static bool key_less(const struct tnode *a, const struct tnode *b) {
  if (a->depth != b->depth)
    return a->depth < b->depth;
  if (a->link != b->link)
    return a->link > b->link;
  return strcmp(a->id, b->id) < 0;
}

static void heap_set(topo *t, size_t i, struct tnode *n) {
  t->heap[i] = n;
  n->heap = i;
}

static void sift_up(topo *t, size_t i) {
  struct tnode *n = t->heap[i];
  while (i > 0 && key_less(n, t->heap[(i - 1) / 2])) {
    heap_set(t, i, t->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  heap_set(t, i, n);
}

static void sift_down(topo *t, size_t i) {
  struct tnode *n = t->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= t->nheap)
      break;
    if (c + 1 < t->nheap && key_less(t->heap[c + 1], t->heap[c]))
      c++;
    if (!key_less(t->heap[c], n))
      break;
    heap_set(t, i, t->heap[c]);
    i = c;
  }
  heap_set(t, i, n);
}

static void heap_remove(topo *t, struct tnode *n) {
  size_t i = n->heap;
  n->heap = NO_HEAP;
  struct tnode *last = t->heap[--t->nheap];
  if (i == t->nheap)
    return;
  heap_set(t, i, last);
  sift_up(t, i);
  sift_down(t, last->heap);
}

static void heap_clear(topo *t) {
  for (size_t i = 0; i < t->nheap; i++)
    t->heap[i]->heap = NO_HEAP;
  t->nheap = 0;
}

/* Puts n in the heap iff it is attached with a free slot; re-sorts it. */
static void slot_update(topo *t, struct tnode *n) {
  bool want = n->attached && n->nchildren < t->k;
  if (want && n->heap == NO_HEAP) {
    heap_set(t, t->nheap++, n);
    sift_up(t, n->heap);
  } else if (!want && n->heap != NO_HEAP) {
    heap_remove(t, n);
  } else if (want) {
    sift_up(t, n->heap);
    sift_down(t, n->heap);
  }
}

/* ---- tree edits ---- */

static void child_link(struct tnode *p, struct tnode *c) {
  c->parent = p;
  c->next = NULL;
  c->prev = p->last;
  if (p->last != NULL)
    p->last->next = c;
  else
    p->first = c;
  p->last = c;
  p->nchildren++;
}

static void child_unlink(struct tnode *c) {
  struct tnode *p = c->parent;
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    p->first = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  else
    p->last = c->prev;
  p->nchildren--;
  c->parent = c->prev = c->next = NULL;
}

/* Pre-order successor of n within the subtree of top; no stack needed. */
static struct tnode *walk_next(const struct tnode *top, struct tnode *n) {
  if (n->first != NULL)
    return n->first;
  while (n != top && n->next == NULL)
    n = n->parent;
  return n == top ? NULL : n->next;
}

static void subtree_unslot(topo *t, struct tnode *top) {
  for (struct tnode *n = top; n != NULL; n = walk_next(top, n)) {
    if (n->heap != NO_HEAP)
      heap_remove(t, n);
    n->attached = false;
  }
}

/* Recomputes depth and attachment below top (top's parent already set). */
static void subtree_settle(topo *t, struct tnode *top) {
  bool att = top->parent != NULL ? top->parent->attached : top == t->root;
  for (struct tnode *n = top; n != NULL; n = walk_next(top, n)) {
    n->depth = n == top && top->parent == NULL ? 0 : n->parent->depth + 1;
    n->attached = att;
    slot_update(t, n);
  }
}

static void bump(topo *t, struct tnode *n) {
  n->epoch = ++t->epoch;
}

/* n is a loose subtree top: hang it under p. */
static void attach(topo *t, struct tnode *n, struct tnode *p, bool bump_epoch) {
  child_link(p, n);
  slot_update(t, p);
  subtree_settle(t, n);
  if (bump_epoch)
    bump(t, n);
}

/* n is a loose subtree top: the shallowest free slot, or stay detached. */
static void place(topo *t, struct tnode *n, bool bump_epoch) {
  if (t->root != NULL && t->nheap > 0) {
    attach(t, n, t->heap[0], bump_epoch);
    return;
  }
  subtree_settle(t, n);
  if (bump_epoch)
    bump(t, n);
}

static int cmp_link(const void *a, const void *b) {
  const struct tnode *x = *(struct tnode *const *)a, *y = *(struct tnode *const *)b;
  if (x->link != y->link)
    return x->link > y->link ? -1 : 1;
  return strcmp(x->id, y->id);
}

/* Recovered links (topo_assign) first, then the earliest epochs. */
static int cmp_epoch(const void *a, const void *b) {
  const struct tnode *x = *(struct tnode *const *)a, *y = *(struct tnode *const *)b;
  if (x->assigned != y->assigned)
    return x->assigned ? -1 : 1;
  if (x->epoch != y->epoch)
    return x->epoch < y->epoch ? -1 : 1;
  return strcmp(x->id, y->id);
}

/* Takes x out of the tree (it stays in the map). Its children move: the
 * fastest takes x's slot, the others go to the shallowest free slots. */
static void unhook(topo *t, struct tnode *x) {
  struct tnode *p = x->parent;
  size_t no = 0;
  for (struct tnode *c = x->first; c != NULL; c = c->next)
    t->scratch[no++] = c;
  if (no > 1)
    qsort(t->scratch, no, sizeof(*t->scratch), cmp_link);
  if (p != NULL) {
    child_unlink(x);
    slot_update(t, p);
  }
  if (x->heap != NO_HEAP)
    heap_remove(t, x);
  for (size_t i = 0; i < no; i++) {
    child_unlink(t->scratch[i]);
    subtree_unslot(t, t->scratch[i]);
  }
  if (x == t->root)
    t->root = NULL;
  x->attached = false;
  x->depth = 0;
  for (size_t i = 0; i < no; i++) {
    if (i == 0 && p != NULL)
      attach(t, t->scratch[i], p, true);
    else
      place(t, t->scratch[i], true);
  }
}

/* Every loose top but the root, fastest first, placed like joiners. */
static void place_tops(topo *t, bool bump_epoch) {
  size_t no = 0;
  for (size_t b = 0; b < t->nbuckets; b++)
    for (struct tnode *n = t->buckets[b]; n != NULL; n = n->hnext)
      if (n->parent == NULL && n != t->root)
        t->scratch[no++] = n;
  if (no > 1)
    qsort(t->scratch, no, sizeof(*t->scratch), cmp_link);
  for (size_t i = 0; i < no; i++)
    place(t, t->scratch[i], bump_epoch);
}

static void set_link(topo *t, struct tnode *n, uint32_t link) {
  n->link = link;
  if (n->heap != NO_HEAP)
    slot_update(t, n);
}

/* ---- repair ---- */

/* Over-full nodes keep their earliest-epoch children. */
static void trim_fanout(topo *t, struct tnode *n) {
  size_t no = 0;
  for (struct tnode *c = n->first; c != NULL; c = c->next)
    t->scratch[no++] = c;
  if (no > 1)
    qsort(t->scratch, no, sizeof(*t->scratch), cmp_epoch);
  for (size_t i = t->k; i < no; i++)
    child_unlink(t->scratch[i]);
}

static bool later(const struct tnode *a, const struct tnode *b) {
  if (a->assigned != b->assigned)
    return b->assigned;
  if (a->epoch != b->epoch)
    return a->epoch > b->epoch;
  return strcmp(a->id, b->id) > 0;
}

/* The parent pointers form a functional graph: follow them from each node
 * (colour 1 = on this walk, 2 = done); a walk that meets itself has found
 * a cycle, cut at its latest-epoch node. */
static void break_cycles(topo *t) {
  for (size_t b = 0; b < t->nbuckets; b++)
    for (struct tnode *n = t->buckets[b]; n != NULL; n = n->hnext)
      n->color = 0;
  for (size_t b = 0; b < t->nbuckets; b++) {
    for (struct tnode *n = t->buckets[b]; n != NULL; n = n->hnext) {
      struct tnode *x = n, *cut = NULL;
      while (x != NULL && x->color == 0) {
        x->color = 1;
        x = x->parent;
      }
      if (x != NULL && x->color == 1) {
        cut = x;
        for (struct tnode *c = x->parent; c != x; c = c->parent)
          if (later(c, cut))
            cut = c;
      }
      for (x = n; x != NULL && x->color == 1; x = x->parent)
        x->color = 2;
      if (cut != NULL)
        child_unlink(cut);
    }
  }
}

static int repair(topo *t) {
  heap_clear(t);
  for (size_t b = 0; b < t->nbuckets; b++)
    for (struct tnode *n = t->buckets[b]; n != NULL; n = n->hnext) {
      n->was = n->parent;
      n->attached = false;
    }
  if (t->root != NULL && t->root->parent != NULL)
    child_unlink(t->root);
  for (size_t b = 0; b < t->nbuckets; b++)
    for (struct tnode *n = t->buckets[b]; n != NULL; n = n->hnext)
      if (n->nchildren > t->k)
        trim_fanout(t, n);
  break_cycles(t);
  if (t->root != NULL)
    subtree_settle(t, t->root);
  place_tops(t, false);
  int moved = 0;
  for (size_t b = 0; b < t->nbuckets; b++)
    for (struct tnode *n = t->buckets[b]; n != NULL; n = n->hnext) {
      n->assigned = false;
      if (n->parent != n->was) {
        bump(t, n);
        moved++;
      }
    }
  t->dirty = false;
  return moved;
}

/* ---- public API ---- */

int topo_parse_strategy(const char *s, enum topo_strategy *st, unsigned *k, ep_err *err) {
  if (s != NULL && strcmp(s, "chain") == 0) {
    *st = TOPO_CHAIN;
    *k = 1;
    return 0;
  }
  if (s == NULL || strncmp(s, "tree:", 5) != 0)
    return ep_error(err, EP_EINVAL, "topology strategy '%.64s': expected chain or tree:K",
                    s != NULL ? s : "");
  unsigned v = 0;
  const char *p = s + 5;
  if (*p == '\0')
    return ep_error(err, EP_EINVAL, "topology strategy '%.64s': missing K", s);
  for (; *p != '\0'; p++) {
    if (*p < '0' || *p > '9')
      return ep_error(err, EP_EINVAL, "topology strategy '%.64s': K is not a number", s);
    v = v * 10 + (unsigned)(*p - '0');
    if (v > TOPO_K_MAX)
      break;
  }
  if (v < 1 || v > TOPO_K_MAX)
    return ep_error(err, EP_EINVAL, "topology strategy '%.64s': K must be 1 to %d", s, TOPO_K_MAX);
  *st = TOPO_TREE;
  *k = v;
  return 0;
}

topo *topo_new(enum topo_strategy st, unsigned k) {
  if (st == TOPO_CHAIN)
    k = 1;
  else if (st != TOPO_TREE || k < 1 || k > TOPO_K_MAX)
    return NULL;
  topo *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return NULL;
  t->st = st;
  t->k = k;
  return t;
}

void topo_free(topo *t) {
  if (t == NULL)
    return;
  for (size_t b = 0; b < t->nbuckets; b++) {
    struct tnode *n = t->buckets[b], *nx;
    for (; n != NULL; n = nx) {
      nx = n->hnext;
      free(n);
    }
  }
  free(t->buckets);
  free(t->heap);
  free(t->scratch);
  free(t->queue);
  free(t);
}

int topo_set_root(topo *t, const char *id, uint32_t link_mbps, ep_err *err) {
  if (!id_ok(id))
    return ep_error(err, EP_EINVAL, "topology: bad node id");
  if (t->dirty)
    repair(t);
  if (t->root != NULL && strcmp(t->root->id, id) == 0) {
    set_link(t, t->root, link_mbps);
    return 0;
  }
  int rc = reserve_one(t, err);
  if (rc < 0)
    return rc;
  struct tnode *n = lookup(t, id);
  if (n == NULL) {
    n = node_new(t, id, link_mbps);
    if (n == NULL)
      return ep_error(err, EP_EINTERNAL, "topology: out of memory");
  } else {
    set_link(t, n, link_mbps);
    if (t->root != NULL)
      unhook(t, n); /* a member becomes the root: its children move */
    else if (n->parent != NULL)
      child_unlink(n); /* keeps its detached subtree */
  }
  struct tnode *old = t->root;
  if (old != NULL)
    subtree_unslot(t, old);
  t->root = n;
  bump(t, n);
  subtree_settle(t, n);
  place_tops(t, true); /* the old root and whatever waited for a root */
  return 0;
}

int topo_join(topo *t, const char *id, uint32_t link_mbps, ep_err *err) {
  if (!id_ok(id))
    return ep_error(err, EP_EINVAL, "topology: bad node id");
  if (t->root != NULL && strcmp(t->root->id, id) == 0)
    return topo_set_root(t, id, link_mbps, err);
  if (t->dirty)
    repair(t);
  struct tnode *n = lookup(t, id);
  if (n != NULL) {
    set_link(t, n, link_mbps);
    return 0;
  }
  int rc = reserve_one(t, err);
  if (rc < 0)
    return rc;
  n = node_new(t, id, link_mbps);
  if (n == NULL)
    return ep_error(err, EP_EINTERNAL, "topology: out of memory");
  place(t, n, t->root != NULL);
  return 0;
}

int topo_leave(topo *t, const char *id, ep_err *err) {
  if (t->dirty)
    repair(t);
  struct tnode *x = lookup(t, id);
  if (x == NULL)
    return 0;
  unhook(t, x);
  hash_remove(t, x);
  free(x);
  return 0;
}

int topo_assign(topo *t, const char *id, const char *parent, uint64_t epoch, ep_err *err) {
  struct tnode *n = lookup(t, id);
  if (n == NULL)
    return ep_error(err, EP_ENOTFOUND, "topology: assignment for unknown node %.64s",
                    id != NULL ? id : "");
  /* An unknown parent is recorded as no parent: topo_repair moves the node. */
  struct tnode *p = parent != NULL ? lookup(t, parent) : NULL;
  if (n->parent != NULL)
    child_unlink(n);
  if (p != NULL)
    child_link(p, n);
  n->epoch = epoch;
  n->assigned = true;
  if (epoch > t->epoch)
    t->epoch = epoch;
  t->dirty = true;
  return 0;
}

int topo_repair(topo *t) {
  return repair(t);
}

void topo_rebuild(topo *t) {
  if (t->dirty)
    repair(t);
  if (t->root == NULL)
    return;
  size_t no = 0;
  heap_clear(t);
  for (size_t b = 0; b < t->nbuckets; b++)
    for (struct tnode *n = t->buckets[b]; n != NULL; n = n->hnext) {
      n->was = n->parent;
      n->parent = n->first = n->last = n->prev = n->next = NULL;
      n->nchildren = 0;
      if (n != t->root)
        t->scratch[no++] = n;
    }
  if (no > 1)
    qsort(t->scratch, no, sizeof(*t->scratch), cmp_link);
  /* Breadth-first fill: in this order keys only grow, so each push is O(1). */
  struct tnode *r = t->root;
  r->depth = 0;
  r->attached = true;
  slot_update(t, r);
  for (size_t i = 0; i < no; i++) {
    struct tnode *n = t->scratch[i], *p = i / t->k == 0 ? r : t->scratch[i / t->k - 1];
    child_link(p, n);
    n->depth = p->depth + 1;
    n->attached = true;
    if (p->nchildren == t->k && p->heap != NO_HEAP)
      heap_remove(t, p);
    slot_update(t, n);
    if (n->parent != n->was)
      bump(t, n);
  }
}

size_t topo_count(const topo *t) {
  return t->count;
}

const char *topo_root(const topo *t) {
  return t->root != NULL ? t->root->id : NULL;
}

const char *topo_parent(const topo *t, const char *id, uint64_t *epoch) {
  const struct tnode *n = lookup(t, id);
  if (epoch != NULL)
    *epoch = n != NULL ? n->epoch : 0;
  return n != NULL && n->parent != NULL ? n->parent->id : NULL;
}

unsigned topo_depth(const topo *t, const char *id) {
  const struct tnode *n = lookup(t, id);
  return n != NULL ? n->depth : 0;
}

unsigned topo_children(const topo *t, const char *id) {
  const struct tnode *n = lookup(t, id);
  return n != NULL ? n->nchildren : 0;
}

/* Breadth-first from top; returns non-zero when cb asked to stop. */
static int bfs(const topo *t, struct tnode *top,
               int (*cb)(const char *, const char *, uint64_t, void *), void *ud) {
  size_t head = 0, tail = 0;
  t->queue[tail++] = top;
  while (head < tail) {
    struct tnode *n = t->queue[head++];
    if (cb(n->id, n->parent != NULL ? n->parent->id : NULL, n->epoch, ud) != 0)
      return 1;
    for (struct tnode *c = n->first; c != NULL && tail < t->cap; c = c->next)
      t->queue[tail++] = c;
  }
  return 0;
}

void topo_foreach(const topo *t,
                  int (*cb)(const char *id, const char *parent, uint64_t epoch, void *ud),
                  void *ud) {
  if (t->root != NULL && bfs(t, t->root, cb, ud) != 0)
    return;
  for (size_t b = 0; b < t->nbuckets; b++)
    for (struct tnode *n = t->buckets[b]; n != NULL; n = n->hnext)
      if (n->parent == NULL && n != t->root && bfs(t, n, cb, ud) != 0)
        return;
}

/* Parent and child links agree, fan-out within K. */
static int check_links(const topo *t, const struct tnode *n, ep_err *err) {
  unsigned len = 0;
  const struct tnode *prev = NULL;
  for (const struct tnode *c = n->first; c != NULL; prev = c, c = c->next) {
    if (c->parent != n || c->prev != prev || ++len > t->count)
      return ep_error(err, EP_EINTERNAL, "topology: child list of %s is corrupt", n->id);
  }
  if (prev != n->last || len != n->nchildren)
    return ep_error(err, EP_EINTERNAL, "topology: child count of %s is wrong", n->id);
  if (len > t->k)
    return ep_error(err, EP_EINTERNAL, "topology: %s has %u children, more than %u", n->id, len,
                    t->k);
  if (n->parent != NULL && n == t->root)
    return ep_error(err, EP_EINTERNAL, "topology: the root %s has a parent", n->id);
  if (n->parent == NULL && n != t->root && t->root != NULL)
    return ep_error(err, EP_EINTERNAL, "topology: %s does not reach the root", n->id);
  return 0;
}

/* Walks the tree under top: depths, attachment and heap membership. */
static int check_tree(const topo *t, struct tnode *top, size_t *seen, size_t *slots, ep_err *err) {
  bool att = top == t->root;
  for (struct tnode *n = top; n != NULL; n = walk_next(top, n)) {
    unsigned d = n == top ? 0 : n->parent->depth + 1;
    if (n->depth != d || n->attached != att)
      return ep_error(err, EP_EINTERNAL, "topology: stale depth or attachment at %s", n->id);
    bool want = att && n->nchildren < t->k;
    if (want != (n->heap != NO_HEAP) || (want && t->heap[n->heap] != n))
      return ep_error(err, EP_EINTERNAL, "topology: free-slot heap wrong at %s", n->id);
    *slots += want;
    (*seen)++;
  }
  return 0;
}

int topo_check(const topo *t, ep_err *err) {
  size_t total = 0, seen = 0, slots = 0;
  int rc;
  if (t->dirty)
    return ep_error(err, EP_EINTERNAL, "topology: assignments not repaired yet");
  for (size_t b = 0; b < t->nbuckets; b++)
    for (struct tnode *n = t->buckets[b]; n != NULL; n = n->hnext) {
      total++;
      if ((rc = check_links(t, n, err)) < 0)
        return rc;
    }
  if (total != t->count)
    return ep_error(err, EP_EINTERNAL, "topology: %zu nodes in the map, count %zu", total,
                    t->count);
  if (t->root != NULL && (rc = check_tree(t, t->root, &seen, &slots, err)) < 0)
    return rc;
  for (size_t b = 0; b < t->nbuckets; b++)
    for (struct tnode *n = t->buckets[b]; n != NULL; n = n->hnext)
      if (n->parent == NULL && n != t->root && (rc = check_tree(t, n, &seen, &slots, err)) < 0)
        return rc;
  if (seen != total)
    return ep_error(err, EP_EINTERNAL, "topology: %zu nodes are on a cycle", total - seen);
  if (slots != t->nheap)
    return ep_error(err, EP_EINTERNAL, "topology: heap holds %zu, expected %zu", t->nheap, slots);
  for (size_t i = 1; i < t->nheap; i++)
    if (key_less(t->heap[i], t->heap[(i - 1) / 2]))
      return ep_error(err, EP_EINTERNAL, "topology: heap order broken at %s", t->heap[i]->id);
  return 0;
}
