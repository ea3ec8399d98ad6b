/* edgepullctl topology: the distribution tree as the locality index knows
 * it (parents as the coordinator assigned them), as ASCII art or nested JSON.
 *
 * The parent links come from MQTT messages and may be broken, so they are
 * treated as an arbitrary graph. Every node is loaded (sorted by id, so a
 * parent is found by binary search) and its children indexed; trees are
 * drawn from the roots with an explicit stack (no recursion, whatever the
 * depth) and a visited mark set when a node is pushed, so each node is drawn
 * once and a stored cycle (a -> b -> a) ends. Roots are the gateways without
 * a parent (or, when the index knows no such gateway, every node without a
 * parent). What no root reaches is listed as unattached: first nodes whose
 * parent is unset or unknown to the index, each with its subtree, then each
 * cycle from its smallest id (found by one colouring walk, O(n)). */
#include "ctl/ctl.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/cleanup_json.h"
#include "common/escape.h"
#include "common/vec.h"
#include "store/index.h"

enum { CTL_NODES_MAX = 1 << 20, CTL_INDENT_MAX = 48 };

struct view {
  struct index_node *nodes; /* sorted by id */
  size_t n, cap;
  long *parent;        /* index of the parent, -1 when none or unknown */
  size_t *kid_start;   /* children of i: kids[kid_start[i] .. kid_start[i + 1]) */
  size_t *kids;        /* child indexes, in id order */
  bool *visited;       /* drawn, or pushed to be drawn */
  size_t *stamp;       /* colouring walk for cycles: 1 + start index */
  bool *last_at;       /* per depth: was that ancestor its parent's last child */
  struct frame *stack; /* at most n frames: each node is pushed once */
  size_t max_depth;
  bool json;
};

/* Deeper trees are printed as compact JSON: indenting every level makes the
 * output quadratic in the depth (a chain of 10,000 nodes would be 2 GB). */
enum { CTL_JSON_INDENT_DEPTH = 32 };

struct frame {
  size_t idx, depth;
  bool last;
  json_t *dest; /* array the node's object goes into (JSON) */
};

static int add_node(const struct index_node *n, void *ud) {
  struct view *v = ud;
  int r = ep_vec_reserve(&v->nodes, &v->cap, v->n + 1, CTL_NODES_MAX);
  if (r < 0)
    return r;
  v->nodes[v->n++] = *n;
  return 0;
}

static int cmp_id(const void *key, const void *elem) {
  return strcmp(key, ((const struct index_node *)elem)->id);
}

static long find(const struct view *v, const char *id) {
  if (id[0] == '\0')
    return -1;
  const struct index_node *p = bsearch(id, v->nodes, v->n, sizeof *v->nodes, cmp_id);
  return p != NULL ? (long)(p - v->nodes) : -1;
}

/* Parent indexes and the children index (counting sort by parent). */
static int view_link(struct view *v) {
  size_t n = v->n;
  v->parent = calloc(n + 1, sizeof *v->parent);
  v->kid_start = calloc(n + 2, sizeof *v->kid_start);
  v->kids = calloc(n + 1, sizeof *v->kids);
  v->visited = calloc(n + 1, sizeof *v->visited);
  v->stamp = calloc(n + 1, sizeof *v->stamp);
  v->last_at = calloc(n + 1, sizeof *v->last_at);
  v->stack = calloc(n + 1, sizeof *v->stack);
  if (!v->parent || !v->kid_start || !v->kids || !v->visited || !v->stamp || !v->last_at ||
      !v->stack)
    return -EP_EINTERNAL;
  for (size_t i = 0; i < n; i++) {
    v->parent[i] = find(v, v->nodes[i].parent);
    if (v->parent[i] >= 0)
      v->kid_start[v->parent[i] + 2]++;
  }
  for (size_t i = 2; i < n + 2; i++)
    v->kid_start[i] += v->kid_start[i - 1];
  for (size_t i = 0; i < n; i++)
    if (v->parent[i] >= 0)
      v->kids[v->kid_start[v->parent[i] + 1]++] = i;
  return 0;
}

static void view_free(struct view *v) {
  free(v->nodes);
  free(v->parent);
  free(v->kid_start);
  free(v->kids);
  free(v->visited);
  free(v->stamp);
  free(v->last_at);
  free(v->stack);
}

static void print_line(const struct view *v, const struct frame *f, const char *lead,
                       const char *label) {
  fputs(lead, stdout);
  size_t from = 1;
  if (f->depth > CTL_INDENT_MAX) {
    printf("[%zu] ", f->depth - CTL_INDENT_MAX);
    from = f->depth - CTL_INDENT_MAX + 1;
  }
  for (size_t d = from; d < f->depth; d++)
    fputs(v->last_at[d] ? "    " : "\u2502   ", stdout);
  if (f->depth > 0)
    fputs(f->last ? "\u2514\u2500\u2500 " : "\u251c\u2500\u2500 ", stdout);
  printf("%s\n", label);
}

/* "n1 (gateway, online, 12 blobs; parent x unknown)", sanitized. */
static void label(const struct index_node *n, const char *why, char *buf, size_t cap) {
  char blobs[48] = "";
  if (n->blobs > 0)
    snprintf(blobs, sizeof blobs, ", %" PRIu64 " blob%s", n->blobs, n->blobs == 1 ? "" : "s");
  snprintf(buf, cap, "%s (%s%s%s%s%s)", n->id, n->gateway ? "gateway, " : "",
           n->online ? "online" : "offline", blobs, why[0] != '\0' ? "; " : "", why);
  ep_sanitize(buf, SIZE_MAX);
}

/* Why a tree's top is where it is. */
enum why { WHY_ROOT, WHY_NO_PARENT, WHY_UNKNOWN_PARENT, WHY_CYCLE };

static const char *const why_key[] = {NULL, "no_parent", "unknown_parent", "cycle"};

static void why_text(enum why w, const char *parent, char *buf, size_t cap) {
  switch (w) {
  case WHY_ROOT:
    buf[0] = '\0';
    break;
  case WHY_NO_PARENT:
    snprintf(buf, cap, "no parent");
    break;
  case WHY_UNKNOWN_PARENT:
    snprintf(buf, cap, "parent %s unknown", parent);
    break;
  case WHY_CYCLE:
    snprintf(buf, cap, "parent %s, in a cycle", parent);
    break;
  }
}

static json_t *tree_obj(const struct view *v, size_t i, const char *reason) {
  const struct index_node *n = &v->nodes[i];
  char address[96];
  ctl_fmt_address(n, address, sizeof address);
  json_t *o = json_pack("{s:o, s:o, s:b, s:b, s:I, s:I, s:o}", "id", ctl_json_str(n->id), "address",
                        ctl_json_str(n->addr[0] != '\0' ? address : ""), "online", n->online,
                        "gateway", n->gateway, "blobs", (json_int_t)n->blobs, "blob_bytes",
                        (json_int_t)n->blob_bytes, "children", json_array());
  if (o != NULL && reason != NULL &&
      (json_object_set_new(o, "reason", json_string(reason)) < 0 ||
       json_object_set_new(o, "parent",
                           n->parent[0] != '\0' ? ctl_json_str(n->parent) : json_null()) < 0)) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* Draws the tree under top (not yet visited), each line after lead. */
static int draw(struct view *v, size_t top, enum why why, const char *lead, json_t *dest) {
  size_t sp = 0;
  v->visited[top] = true;
  v->stack[sp++] = (struct frame){.idx = top, .depth = 0, .last = true, .dest = dest};
  while (sp > 0) {
    struct frame f = v->stack[--sp];
    const struct index_node *n = &v->nodes[f.idx];
    json_t *kids_dest = NULL;
    if (f.depth > v->max_depth)
      v->max_depth = f.depth;
    if (v->json) {
      json_t *o = tree_obj(v, f.idx, f.idx == top ? why_key[why] : NULL);
      if (o == NULL || json_array_append_new(f.dest, o) < 0)
        return -EP_EINTERNAL;
      kids_dest = json_object_get(o, "children");
    } else {
      char buf[INDEX_NODE_ID_MAX * 3 + 128];
      char whybuf[INDEX_NODE_ID_MAX + 64] = "";
      if (f.idx == top)
        why_text(why, n->parent, whybuf, sizeof whybuf);
      label(n, whybuf, buf, sizeof buf);
      v->last_at[f.depth] = f.last;
      print_line(v, &f, lead, buf);
    }
    /* Push children last-first so they pop in id order. */
    size_t b = v->kid_start[f.idx], e = v->kid_start[f.idx + 1];
    bool first_pushed = true;
    for (size_t k = e; k > b; k--) {
      size_t c = v->kids[k - 1];
      if (v->visited[c])
        continue;
      v->visited[c] = true;
      v->stack[sp++] =
          (struct frame){.idx = c, .depth = f.depth + 1, .last = first_pushed, .dest = kids_dest};
      first_pushed = false;
    }
  }
  return 0;
}

/* Nodes on a cycle no root reached: one colouring walk up the parent links
 * from each unvisited node; a walk that meets its own colour found a cycle,
 * drawn from its smallest index (ids are sorted). */
static int draw_cycles(struct view *v, bool *header, json_t *dest) {
  for (size_t i = 0; i < v->n; i++) {
    long j = (long)i;
    while (j >= 0 && !v->visited[j] && v->stamp[j] == 0) {
      v->stamp[j] = i + 1;
      j = v->parent[j];
    }
    if (j < 0 || v->visited[j] || v->stamp[j] != i + 1)
      continue;
    size_t top = (size_t)j;
    for (long k = v->parent[j]; k != j; k = v->parent[k])
      if ((size_t)k < top)
        top = (size_t)k;
    if (!v->json && !*header) {
      printf("unattached:\n");
      *header = true;
    }
    int r = draw(v, top, WHY_CYCLE, "  ", dest);
    if (r < 0)
      return r;
  }
  return 0;
}

static int draw_all(struct view *v, json_t *roots, json_t *unattached) {
  bool gw_root = false, header = false;
  for (size_t i = 0; i < v->n; i++)
    gw_root |= v->nodes[i].parent[0] == '\0' && v->nodes[i].gateway;
  int r = 0;
  for (size_t i = 0; i < v->n && r == 0; i++)
    if (v->nodes[i].parent[0] == '\0' && (v->nodes[i].gateway || !gw_root))
      r = draw(v, i, WHY_ROOT, "", roots);
  for (size_t i = 0; i < v->n && r == 0; i++) {
    if (v->visited[i] || v->parent[i] >= 0)
      continue;
    if (!v->json && !header) {
      printf("unattached:\n");
      header = true;
    }
    r = draw(v, i, v->nodes[i].parent[0] == '\0' ? WHY_NO_PARENT : WHY_UNKNOWN_PARENT, "  ",
             unattached);
  }
  return r < 0 ? r : draw_cycles(v, &header, unattached);
}

int ctl_cmd_topology(const struct ctl_opts *o) {
  index_db *db = ctl_open_locality(o);
  if (db == NULL)
    return CTL_EXIT_FAIL;
  struct view v = {.json = o->json};
  ep_err e = {0};
  int r = index_foreach_node(db, add_node, &v, &e);
  index_close(db);
  if (r == -EP_ETOOBIG && e.msg[0] == '\0')
    snprintf(e.msg, sizeof e.msg, "over %d nodes in the index", CTL_NODES_MAX);
  ep_cleanup_json json_t *roots = json_array();
  ep_cleanup_json json_t *unattached = json_array();
  if (r == 0 && (roots == NULL || unattached == NULL))
    r = -EP_EINTERNAL;
  if (r == 0)
    r = view_link(&v);
  if (r == 0 && v.n == 0 && !o->json)
    printf("no nodes in the locality index yet\n");
  else if (r == 0)
    r = draw_all(&v, roots, unattached);
  size_t flags = v.max_depth > CTL_JSON_INDENT_DEPTH ? JSON_COMPACT : JSON_INDENT(2);
  view_free(&v);
  if (r < 0) {
    ctl_errorf("topology: %s", e.msg[0] != '\0' ? e.msg : ep_errcode_name(-r));
    return CTL_EXIT_FAIL;
  }
  if (o->json)
    return ctl_json_print_flags(json_pack("{s:o, s:o}", "roots", ep_steal_ptr(roots), "unattached",
                                          ep_steal_ptr(unattached)),
                                flags);
  return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}
