/* Source selection for the fetch engine.
 *
 * Order: (1) the parent the coordinator assigned (cut-through: it joins or
 * starts its own fetch and forwards as bytes arrive), (2) up to
 * SOURCES_PEERS_MAX other online nodes that the locality index says hold
 * the blob complete, (3) the upstream registry when allowed. Never this
 * node, never the node asking us (it would ask us back), never a suspect.
 * The list is recomputed every time the fetcher needs it, so a parent
 * reassigned by the coordinator after a failure is picked up at once.
 *
 * The suspect list is a small fixed array under its own mutex: a handful
 * of bad peers at a time is all a locality should ever see, and the oldest
 * entry makes room when it is full. */
#include "plugin/fetch/sources.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/names.h"

struct suspect {
  char node[PROTO_ID_MAX + 1];
  int64_t until;
};

struct sources {
  const struct sources_deps *deps;
  pthread_mutex_t mu;
  struct suspect suspects[SOURCES_SUSPECT_MAX];
  bool parent_set; /* an assignment is known */
  struct proto_parent parent;
};

int sources_new(const struct sources_deps *deps, struct sources **out, ep_err *err) {
  struct sources *s = calloc(1, sizeof *s);
  if (s == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  s->deps = deps;
  if (pthread_mutex_init(&s->mu, NULL) != 0) {
    free(s);
    return ep_error(err, EP_EINTERNAL, "sources: cannot create a mutex");
  }
  *out = s;
  return 0;
}

void sources_free(struct sources *s) {
  if (s == NULL)
    return;
  pthread_mutex_destroy(&s->mu);
  free(s);
}

void sources_mark_suspect(struct sources *s, const char *node, int64_t now) {
  if (s == NULL || node == NULL || node[0] == '\0')
    return;
  pthread_mutex_lock(&s->mu);
  struct suspect *slot = &s->suspects[0];
  for (size_t i = 0; i < SOURCES_SUSPECT_MAX; i++) {
    struct suspect *e = &s->suspects[i];
    if (strcmp(e->node, node) == 0) {
      slot = e;
      break;
    }
    if (e->until < slot->until)
      slot = e; /* a free (0) or the oldest entry */
  }
  snprintf(slot->node, sizeof slot->node, "%s", node);
  slot->until = now + SOURCES_SUSPECT_S;
  pthread_mutex_unlock(&s->mu);
}

bool sources_is_suspect(struct sources *s, const char *node, int64_t now) {
  if (s == NULL || node == NULL)
    return false;
  bool found = false;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < SOURCES_SUSPECT_MAX && !found; i++)
    found = s->suspects[i].until > now && strcmp(s->suspects[i].node, node) == 0;
  pthread_mutex_unlock(&s->mu);
  return found;
}

void sources_set_parent(struct sources *s, const struct proto_parent *p) {
  pthread_mutex_lock(&s->mu);
  s->parent_set = p != NULL;
  if (p != NULL)
    s->parent = *p;
  pthread_mutex_unlock(&s->mu);
}

static bool known_parent(struct sources *s, struct proto_parent *out) {
  pthread_mutex_lock(&s->mu);
  bool set = s->parent_set;
  if (set)
    *out = s->parent;
  pthread_mutex_unlock(&s->mu);
  return set;
}

static int current_parent(struct sources *s, struct proto_parent *out) {
  return known_parent(s, out) && out->has_parent;
}

bool sources_in_locality(struct sources *s) {
  struct proto_parent p;
  return s->deps->member || known_parent(s, &p);
}

bool sources_upstream_allowed(struct sources *s) {
  return s->deps->gateway || s->deps->upstream_fallback || !sources_in_locality(s);
}

int sources_base_url(const char *addr, uint16_t port, char *buf, size_t len, ep_err *err) {
  if (strnlen(addr, PROTO_ADDR_MAX + 1) > PROTO_ADDR_MAX || !names_addr_valid(addr) || port == 0)
    return ep_error(err, EP_EINVAL, "peer without a valid address or port");
  char hp[NAMES_HOST_MAX + 8];
  if (names_hostport_format(hp, sizeof hp, addr, port, err) < 0 ||
      (size_t)snprintf(buf, len, "http://%s", hp) >= len)
    return ep_error(err, EP_EINVAL, "peer address too long");
  return 0;
}

struct pick_ctx {
  struct sources *s;
  const char *exclude;
  int64_t now;
  struct fetch_source *out;
  size_t max, n, peers;
};

/* Whether node may serve us, and not in the list already. */
static bool eligible(struct pick_ctx *c, const char *node) {
  if (node[0] == '\0' || strcmp(node, c->s->deps->node_id) == 0 ||
      (c->exclude != NULL && strcmp(node, c->exclude) == 0) ||
      sources_is_suspect(c->s, node, c->now))
    return false;
  for (size_t i = 0; i < c->n; i++)
    if (c->out[i].kind == SRC_PEER && strcmp(c->out[i].node, node) == 0)
      return false;
  return true;
}

static void add_peer(struct pick_ctx *c, const char *node, const char *addr, uint16_t port,
                     bool parent) {
  if (c->n >= c->max || !eligible(c, node))
    return;
  struct fetch_source *s = &c->out[c->n];
  memset(s, 0, sizeof *s);
  s->kind = SRC_PEER;
  s->parent = parent;
  if (strlen(node) >= sizeof s->node ||
      sources_base_url(addr, port, s->base_url, sizeof s->base_url, NULL) < 0)
    return;
  memcpy(s->node, node, strlen(node) + 1);
  c->n++;
}

static int holder_cb(const struct index_node *n, uint64_t size, void *ud) {
  struct pick_ctx *c = ud;
  (void)size;
  if (!n->online || c->peers >= SOURCES_PEERS_MAX || c->n >= c->max)
    return c->n >= c->max ? 1 : 0;
  size_t before = c->n;
  add_peer(c, n->id, n->addr, n->peer_port, false);
  c->peers += c->n > before;
  return 0;
}

int sources_pick(struct sources *s, const digest_t *dg, const char *exclude_node,
                 struct fetch_source *out, size_t max) {
  struct pick_ctx c = {
      .s = s, .exclude = exclude_node, .now = ep_mono_ms() / 1000, .out = out, .max = max};
  bool member = sources_in_locality(s);
  struct proto_parent p;
  if (member && current_parent(s, &p))
    add_peer(&c, p.parent, p.addr, p.peer_port, true);
  if (member && s->deps->idx != NULL) {
    ep_err e = {0};
    if (index_where(s->deps->idx, dg, holder_cb, &c, &e) < 0)
      ep_log_warn("sources: locality index: %s", e.msg);
  }
  if (sources_upstream_allowed(s) && c.n < max) {
    memset(&out[c.n], 0, sizeof out[c.n]);
    out[c.n++].kind = SRC_UPSTREAM;
  }
  return (int)c.n;
}

struct gw_ctx {
  const char *self;
  struct index_node found;
  bool have;
};

static int gateway_cb(const struct index_node *n, void *ud) {
  struct gw_ctx *g = ud;
  if (!n->online || !n->gateway || n->addr[0] == '\0' || n->peer_port == 0 ||
      strcmp(n->id, g->self) == 0)
    return 0;
  g->found = *n;
  g->have = true;
  return 1;
}

int sources_gateway(struct sources *s, struct fetch_source *out) {
  struct gw_ctx g = {.self = s->deps->node_id};
  ep_err e = {0};
  if (s->deps->idx == NULL || index_foreach_node(s->deps->idx, gateway_cb, &g, &e) < 0 || !g.have)
    return 0;
  memset(out, 0, sizeof *out);
  out->kind = SRC_PEER;
  snprintf(out->node, sizeof out->node, "%s", g.found.id);
  return sources_base_url(g.found.addr, g.found.peer_port, out->base_url, sizeof out->base_url,
                          NULL) == 0;
}

int sources_pick_cb(void *ud, const digest_t *dg, const char *exclude_node,
                    struct fetch_source *out, size_t max) {
  return sources_pick(ud, dg, exclude_node, out, max);
}

void sources_report_bad(struct sources *s, const char *node, const digest_t *dg, const char *why) {
  sources_mark_suspect(s, node, ep_mono_ms() / 1000);
  if (s->deps->report_suspect != NULL)
    s->deps->report_suspect(s->deps->report_ud, node, dg, why);
}

void sources_bad_cb(void *ud, const char *node, const digest_t *dg, const char *why) {
  sources_report_bad(ud, node, dg, why);
}
