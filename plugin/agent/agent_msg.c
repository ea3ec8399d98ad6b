/* The node agent's protocol side, without any network: what it builds
 * (state and inventory payloads, deltas from the queue of committed and
 * removed blobs) and what it does with a received message (index writes).
 *
 * Received messages go through agent_handle_message(), a pure function of
 * (agent, topic, bytes) so tests drive it with hostile input.
 *
 * Roles are configured, not claimed: the index marks as gateway (the node
 * source selection asks to resolve tags) only the node --gateway-id or the
 * coordinator's coord/gateway names, which only the coordinator may write;
 * the `gateway` flag of a node's own state is ignored. Addresses come from
 * each node's own state topic, which only that node may write, and the
 * payload's id must be the topic's, so an address is bound to its node. Every message
 * that is not one of ours, malformed, oversized or of another version is
 * dropped with exactly one warning naming the topic and the reason. A
 * zero-length payload on a retained topic is MQTT's way of clearing it: the
 * node (state), its inventory or its parent is forgotten.
 *
 * Inventory streams: a snapshot replaces a node's inventory and records
 * (gen, seq), unless it is older than what was applied (same gen, lower
 * seq); a delta applies only when it continues that stream (same gen,
 * seq = last + 1). Anything else is ignored until the node's next snapshot,
 * which it sends at least every AGENT_SNAPSHOT_EVERY deltas and after a
 * quiet heartbeat, so a receiver that missed a delta converges soon. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/cleanup.h"
#include "common/escape.h"
#include "common/names.h"
#include "common/vec.h"
#include "common/log.h"
#include "plugin/agent/agent_int.h"
#include "plugin/ref/ref.h"

/* ---- parameters ---- */

static bool wildcard_host(const char *h) {
  unsigned char v6[16];
  struct in_addr v4;
  if (inet_pton(AF_INET, h, &v4) == 1)
    return v4.s_addr == htonl(INADDR_ANY);
  if (inet_pton(AF_INET6, h, v6) == 1)
    return memcmp(v6, &in6addr_any, sizeof v6) == 0;
  return false;
}

int agent_params_from_config(const struct edgepulld_config *c, struct agent_params *out,
                             ep_err *err) {
  memset(out, 0, sizeof *out);
  if (!names_locality_valid(c->locality) || !names_node_id_valid(c->node_id))
    return ep_error(err, EP_EINVAL, "--locality and --node-id must be 1-%d of [A-Za-z0-9._-]",
                    PROTO_ID_MAX);
  snprintf(out->locality, sizeof out->locality, "%s", c->locality);
  snprintf(out->node, sizeof out->node, "%s", c->node_id);
  snprintf(out->state_dir, sizeof out->state_dir, "%s", c->state_dir);
  struct names_hostport hp;
  if (names_hostport_parse(c->broker, 0, &hp, err) < 0 ||
      strlen(hp.host) >= sizeof out->broker_host)
    return ep_error(err, EP_EINVAL, "--broker must be HOST:PORT");
  memcpy(out->broker_host, hp.host, strlen(hp.host) + 1);
  out->broker_port = hp.port;
  if (c->peer_listen[0] != '\0') {
    if (names_hostport_parse(c->peer_listen, 0, &hp, err) < 0)
      return ep_error(err, EP_EINVAL, "--peer-listen must be ADDR:PORT");
    out->peer_port = hp.port;
    size_t hl = strlen(hp.host);
    if (!wildcard_host(hp.host) && hl < sizeof out->addr) {
      memcpy(out->addr, hp.host, hl + 1);
    }
  }
  if (c->advertise_addr[0] != '\0') {
    if (strlen(c->advertise_addr) > PROTO_ADDR_MAX)
      return ep_error(err, EP_EINVAL, "--advertise-addr longer than %d", PROTO_ADDR_MAX);
    snprintf(out->addr, sizeof out->addr, "%s", c->advertise_addr);
  }
  out->link_mbps = (uint32_t)c->link_mbps;
  out->gateway = c->gateway;
  snprintf(out->gateway_id, sizeof out->gateway_id, "%s", c->gateway_id);
  out->heartbeat_s = c->heartbeat_s > 0 ? c->heartbeat_s : 30;
  out->keepalive_s = c->keepalive_s >= 2 ? c->keepalive_s : 10;
  snprintf(out->username, sizeof out->username, "%s", c->broker_username);
  snprintf(out->password_file, sizeof out->password_file, "%s", c->broker_password_file);
  snprintf(out->ca_file, sizeof out->ca_file, "%s", c->broker_ca_file);
  return 0;
}

/* ---- construction ---- */

static uint64_t random_gen(void) {
  uint64_t g = 0;
  if (getrandom(&g, sizeof g, 0) != (ssize_t)sizeof g) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    g = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32;
  }
  return g & ((UINT64_C(1) << 53) - 1); /* exact in JSON numbers everywhere */
}

int agent_create(const struct agent_params *p, index_db *idx, struct agent **out, ep_err *err) {
  *out = NULL;
  if (!names_locality_valid(p->locality) || !names_node_id_valid(p->node))
    return ep_error(err, EP_EINVAL, "invalid locality or node id");
  struct agent *a = calloc(1, sizeof *a);
  if (a == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  a->p = *p;
  a->idx = idx;
  a->gen = random_gen();
  int ir = pthread_mutex_init(&a->mu, NULL);
  if (ir == 0)
    ir = pthread_mutex_init(&a->pub_mu, NULL);
  if (ir == 0)
    ir = ep_cond_init_mono(&a->cv);
  if (ir != 0) {
    free(a);
    return ep_error(err, EP_EINTERNAL, "agent: cannot create a mutex or condition");
  }
  *out = a; /* from here agent_stop frees it */
  a->queue = calloc(AGENT_QUEUE_MAX, sizeof *a->queue);
  if (a->queue == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  int r;
  if ((r = proto_topic(PROTO_T_STATE, p->locality, p->node, a->t_state, sizeof a->t_state, err)) <
          0 ||
      (r = proto_topic(PROTO_T_INVENTORY, p->locality, p->node, a->t_inv, sizeof a->t_inv, err)) <
          0 ||
      (r = proto_topic(PROTO_T_DELTA, p->locality, p->node, a->t_delta, sizeof a->t_delta, err)) <
          0 ||
      (r = proto_topic_filter(p->locality, a->filter, sizeof a->filter, err)) < 0 ||
      (r = proto_topic(PROTO_T_REPORT, p->locality, p->node, a->t_report, sizeof a->t_report,
                       err)) < 0 ||
      (r = proto_deploy_topic(p->locality, a->t_deploy, sizeof a->t_deploy, err)) < 0 ||
      (r = proto_gateway_topic(p->locality, a->t_gateway, sizeof a->t_gateway, err)) < 0)
    return r;
  if (p->gateway_id[0] != '\0' && !names_node_id_valid(p->gateway_id))
    return ep_error(err, EP_EINVAL, "--gateway-id: must be 1-%d of [A-Za-z0-9._-]", PROTO_ID_MAX);
  snprintf(a->gw_id, sizeof a->gw_id, "%s", p->gateway_id);
  return 0;
}

/* ---- payloads we send ---- */

void agent_platform(char arch[16], char variant[8]) {
  variant[0] = '\0';
#if defined(__x86_64__)
  snprintf(arch, 16, "amd64");
#elif defined(__aarch64__)
  snprintf(arch, 16, "arm64");
  snprintf(variant, 8, "v8");
#elif defined(__arm__)
  snprintf(arch, 16, "arm");
#if defined(__ARM_ARCH) && __ARM_ARCH >= 7
  snprintf(variant, 8, "v7");
#else
  snprintf(variant, 8, "v6");
#endif
#elif defined(__i386__)
  snprintf(arch, 16, "386");
#elif defined(__riscv) && __riscv_xlen == 64
  snprintf(arch, 16, "riscv64");
#else
  snprintf(arch, 16, "unknown");
#endif
}

#define AGENT_BYTES_MAX (UINT64_C(1) << 53) /* exact in JSON numbers */

static uint64_t free_bytes(const char *dir) {
  struct statvfs sv;
  uint64_t n;
  if (statvfs(dir, &sv) < 0)
    return 0;
  if (__builtin_mul_overflow((uint64_t)sv.f_bavail, (uint64_t)sv.f_frsize, &n) ||
      n > AGENT_BYTES_MAX)
    return AGENT_BYTES_MAX;
  return n;
}

static void own_state(struct agent *a, bool online, struct proto_state *s) {
  memset(s, 0, sizeof *s);
  snprintf(s->id, sizeof s->id, "%s", a->p.node);
  s->online = online;
  snprintf(s->addr, sizeof s->addr, "%s", a->p.addr);
  s->peer_port = a->p.peer_port;
  agent_platform(s->arch, s->variant);
  s->link_mbps = a->p.link_mbps;
  s->free_bytes = free_bytes(a->p.state_dir);
  snprintf(s->version, sizeof s->version, "%s", EDGEPULL_VERSION);
  s->gateway = a->p.gateway;
  s->ts = (int64_t)time(NULL);
}

/* gateway: s->id is the gateway a trusted source named (not s->gateway). */
static void state_to_node(const struct proto_state *s, bool gateway, struct index_node *n) {
  memset(n, 0, sizeof *n);
  snprintf(n->id, sizeof n->id, "%s", s->id);
  snprintf(n->addr, sizeof n->addr, "%s", s->addr);
  n->peer_port = s->peer_port;
  snprintf(n->arch, sizeof n->arch, "%s", s->arch);
  snprintf(n->variant, sizeof n->variant, "%s", s->variant);
  n->link_mbps = s->link_mbps;
  n->free_bytes = s->free_bytes;
  snprintf(n->version, sizeof n->version, "%s", s->version);
  n->online = s->online;
  n->gateway = gateway;
  n->last_seen = (int64_t)time(NULL);
}

int agent_state_payload(struct agent *a, bool online, char **out, size_t *len, ep_err *err) {
  struct proto_state s;
  own_state(a, online, &s);
  return proto_state_build(&s, out, len, err);
}

int agent_mark_self(struct agent *a, ep_err *err) {
  struct proto_state s;
  struct index_node n;
  own_state(a, true, &s);
  state_to_node(&s, strcmp(a->p.node, a->gw_id) == 0, &n);
  int r = index_node_put(a->idx, &n, err);
  if (r == 0)
    r = index_set_gateway(a->idx, a->gw_id[0] != '\0' ? a->gw_id : NULL, err);
  return r;
}

struct snap_collect {
  struct proto_blob *v;
  size_t n, cap;
  bool truncated;
};

static int snap_cb(const struct index_blob *b, void *ud) {
  struct snap_collect *c = ud;
  if (b->state != INDEX_BLOB_COMPLETE)
    return 0;
  int r = ep_vec_reserve(&c->v, &c->cap, c->n + 1, AGENT_SNAPSHOT_BLOBS);
  if (r == -EP_ETOOBIG) {
    c->truncated = true;
    return 0;
  }
  if (r < 0)
    return r;
  c->v[c->n].digest = b->digest;
  c->v[c->n].size = b->size;
  c->n++;
  return 0;
}

int agent_snapshot_payload(struct agent *a, char **out, size_t *len, ep_err *err) {
  pthread_mutex_lock(&a->mu);
  a->nqueue = 0; /* every queued change is already in the index */
  a->resnap = false;
  pthread_mutex_unlock(&a->mu);
  struct snap_collect c = {0};
  int r = index_foreach_blob(a->idx, snap_cb, &c, err);
  if (r < 0) {
    free(c.v);
    return r;
  }
  struct proto_inventory inv = {.snapshot = true, .gen = a->gen, .seq = a->seq, .add = c.v};
  snprintf(inv.id, sizeof inv.id, "%s", a->p.node);
  size_t total = c.n;
  /* too many blobs for one message: announce as many as fit */
  for (inv.nadd = c.n;; inv.nadd /= 2) {
    r = proto_inventory_build(&inv, out, len, err);
    if (r != -EP_ETOOBIG || inv.nadd == 0)
      break;
    c.truncated = true;
  }
  if (r == 0 && c.truncated)
    ep_log_warn("agent: inventory of %zu%s blobs exceeds one snapshot; announcing %zu", total,
                total >= AGENT_SNAPSHOT_BLOBS ? "+" : "", inv.nadd);
  free(c.v);
  return r;
}

size_t agent_take_delta(struct agent *a, struct proto_inventory *inv) {
  memset(inv, 0, sizeof *inv);
  snprintf(inv->id, sizeof inv->id, "%s", a->p.node);
  inv->gen = a->gen;
  pthread_mutex_lock(&a->mu);
  size_t n = a->nqueue < PROTO_DELTA_BLOBS ? a->nqueue : PROTO_DELTA_BLOBS;
  size_t nadd = 0;
  for (size_t i = 0; i < n; i++)
    nadd += a->queue[i].add;
  inv->add = nadd > 0 ? calloc(nadd, sizeof *inv->add) : NULL;
  inv->del = n - nadd > 0 ? calloc(n - nadd, sizeof *inv->del) : NULL;
  if ((nadd > 0 && inv->add == NULL) || (n - nadd > 0 && inv->del == NULL)) {
    free(inv->add), free(inv->del);
    inv->add = NULL, inv->del = NULL;
    a->resnap = true; /* out of memory: let a snapshot carry it */
    a->nqueue = 0;
    pthread_mutex_unlock(&a->mu);
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    const struct agent_op *op = &a->queue[i];
    if (op->add)
      inv->add[inv->nadd++] = (struct proto_blob){.digest = op->digest, .size = op->size};
    else
      inv->del[inv->ndel++] = op->digest;
  }
  memmove(a->queue, a->queue + n, (a->nqueue - n) * sizeof *a->queue);
  a->nqueue -= n;
  pthread_mutex_unlock(&a->mu);
  return n;
}

/* ---- messages we receive ---- */

static int drop(const char *topic, const char *why) {
  char q[PROTO_TOPIC_MAX + 64];
  ep_escape(q, sizeof q, topic, strnlen(topic, PROTO_TOPIC_MAX + 1), EP_ESCAPE_QUOTE);
  ep_log_warn("agent: dropping message on \"%s\": %s", q, why);
  return -EP_EINVAL;
}

static struct agent_peer *peer_find(struct agent *a, const char *id, bool create) {
  for (size_t i = 0; i < a->npeers; i++)
    if (strcmp(a->peers[i].id, id) == 0)
      return &a->peers[i];
  if (!create || a->npeers >= AGENT_PEERS_MAX)
    return NULL;
  if (a->peers == NULL && (a->peers = calloc(AGENT_PEERS_MAX, sizeof *a->peers)) == NULL)
    return NULL;
  struct agent_peer *p = &a->peers[a->npeers++];
  memset(p, 0, sizeof *p);
  snprintf(p->id, sizeof p->id, "%s", id);
  return p;
}

static void peer_forget(struct agent *a, const char *id) {
  struct agent_peer *p = peer_find(a, id, false);
  if (p != NULL)
    *p = a->peers[--a->npeers];
}

static int on_state(struct agent *a, const char *topic, const struct proto_topic *t,
                    const void *buf, size_t len) {
  struct proto_state s;
  struct index_node n;
  ep_err e = {0};
  if (proto_state_parse(buf, len, t->node, &s, &e) < 0)
    return drop(topic, e.msg);
  if (s.online || index_node_get(a->idx, t->node, &n, &e) != 1) {
    state_to_node(&s, strcmp(s.id, a->gw_id) == 0, &n);
  } else { /* an offline state (a Last Will) says only that: keep the rest */
    n.online = false;
    n.last_seen = (int64_t)time(NULL);
  }
  if (index_node_put(a->idx, &n, &e) < 0) {
    ep_log_warn("agent: index: node %s: %s", t->node, e.msg);
    return -e.code;
  }
  return 0;
}

static int apply_inventory(struct agent *a, const char *node, const struct proto_inventory *inv,
                           ep_err *e) {
  ep_cleanup_free struct index_inv_entry *add =
      inv->nadd > 0 ? calloc(inv->nadd, sizeof *add) : NULL;
  if (inv->nadd > 0 && add == NULL)
    return ep_error(e, EP_EINTERNAL, "out of memory");
  for (size_t i = 0; i < inv->nadd; i++)
    add[i] = (struct index_inv_entry){.digest = inv->add[i].digest, .size = inv->add[i].size};
  if (inv->snapshot)
    return index_inventory_replace(a->idx, node, add, inv->nadd, e);
  return index_inventory_apply(a->idx, node, add, inv->nadd, inv->del, inv->ndel, e);
}

static int on_inventory(struct agent *a, const char *topic, const struct proto_topic *t,
                        const void *buf, size_t len) {
  bool snapshot = t->kind == PROTO_T_INVENTORY;
  struct proto_inventory inv = {0};
  ep_err e = {0};
  if (proto_inventory_parse(buf, len, t->node, snapshot, &inv, &e) < 0)
    return drop(topic, e.msg);
  struct agent_peer *p = peer_find(a, t->node, snapshot);
  int r = 0;
  if (snapshot && p == NULL) {
    r = drop(topic, "too many nodes tracked");
  } else if (snapshot && p->gen == inv.gen && inv.seq < p->seq) {
    /* The broker's retained snapshot lags the deltas by up to a heartbeat;
     * after a reconnect it must not undo the deltas already applied (a dead
     * node sends no newer one). */
    ep_log_debug("agent: snapshot %llu of %s is older than the %llu applied; ignored",
                 (unsigned long long)inv.seq, t->node, (unsigned long long)p->seq);
    r = 1;
  } else if (!snapshot && (p == NULL || p->gen != inv.gen || inv.seq != p->seq + 1)) {
    ep_log_debug("agent: delta %llu of %s does not follow its stream; waiting for a snapshot",
                 (unsigned long long)inv.seq, t->node);
    r = 1;
  } else if ((r = apply_inventory(a, t->node, &inv, &e)) < 0) {
    ep_log_warn("agent: index: inventory of %s: %s", t->node, e.msg);
  } else {
    p->gen = inv.gen;
    p->seq = inv.seq;
  }
  proto_inventory_clear(&inv);
  return r;
}

static int on_parent(struct agent *a, const char *topic, const struct proto_topic *t,
                     const void *buf, size_t len) {
  struct proto_parent pp;
  ep_err e = {0};
  if (proto_parent_parse(buf, len, t->node, &pp, &e) < 0)
    return drop(topic, e.msg);
  if (index_node_set_parent(a->idx, t->node, pp.has_parent ? pp.parent : NULL, pp.epoch, &e) < 0) {
    ep_log_warn("agent: index: parent of %s: %s", t->node, e.msg);
    return -e.code;
  }
  if (strcmp(t->node, a->p.node) != 0)
    return 0;
  pthread_mutex_lock(&a->mu);
  bool changed = !a->have_parent || a->parent.epoch != pp.epoch ||
                 a->parent.has_parent != pp.has_parent || strcmp(a->parent.parent, pp.parent) != 0;
  a->parent = pp;
  a->have_parent = true;
  pthread_mutex_unlock(&a->mu);
  if (a->deps.on_parent != NULL)
    a->deps.on_parent(a->deps.ud, &pp);
  if (changed && pp.has_parent)
    ep_log_info("agent: parent is now %s at %s:%u (epoch %llu)", pp.parent, pp.addr,
                (unsigned)pp.peer_port, (unsigned long long)pp.epoch);
  else if (changed)
    ep_log_info("agent: this node is the root of the locality (epoch %llu)",
                (unsigned long long)pp.epoch);
  return 0;
}

/* Who the gateway is: the coordinator's word (only it may write the topic),
 * unless --gateway-id pins it. id NULL: the retained message was cleared. */
static int set_gateway(struct agent *a, const char *id) {
  const char *want = id != NULL ? id : "";
  if (a->p.gateway_id[0] != '\0') {
    if (strcmp(want, a->p.gateway_id) != 0)
      ep_log_warn("agent: the coordinator names gateway \"%s\", --gateway-id pins %s: keeping %s",
                  want, a->p.gateway_id, a->p.gateway_id);
    return 1;
  }
  if (strcmp(want, a->gw_id) == 0)
    return 1;
  ep_err e = {0};
  if (index_set_gateway(a->idx, id, &e) < 0) {
    ep_log_warn("agent: index: gateway: %s", e.msg);
    return -e.code;
  }
  snprintf(a->gw_id, sizeof a->gw_id, "%s", want);
  if (id != NULL)
    ep_log_info("agent: the locality's gateway is %s (named by the coordinator)", id);
  else
    ep_log_warn("agent: the coordinator's gateway message was cleared: no gateway known");
  return 0;
}

static int on_gateway(struct agent *a, const char *topic, const void *buf, size_t len) {
  struct proto_gateway g;
  ep_err e = {0};
  if (proto_gateway_parse(buf, len, &g, &e) < 0)
    return drop(topic, e.msg);
  return set_gateway(a, g.id);
}

static int on_deploy(struct agent *a, const char *topic, const void *buf, size_t len) {
  struct proto_deploy dep;
  ep_err e = {0};
  if (proto_deploy_parse(buf, len, &dep, &e) < 0)
    return drop(topic, e.msg);
  if (a->deps.on_deploy == NULL)
    return 1;
  int r = a->deps.on_deploy(a->deps.ud, &dep, &e);
  if (r < 0)
    ep_log_warn("agent: deploy %s: %s", dep.id, e.msg);
  return r;
}

/* ---- suspect peers, deploy options ---- */

int agent_report_payload(struct agent *a, const char *node, const digest_t *d, const char *why,
                         char **out, size_t *len, ep_err *err) {
  struct proto_report rp;
  memset(&rp, 0, sizeof rp);
  if (node == NULL || d == NULL || !names_node_id_valid(node))
    return ep_error(err, EP_EINVAL, "report: invalid suspect node id");
  snprintf(rp.id, sizeof rp.id, "%s", a->p.node);
  snprintf(rp.suspect, sizeof rp.suspect, "%s", node);
  rp.digest = *d;
  snprintf(rp.reason, sizeof rp.reason, "%s", why != NULL ? why : "");
  ep_sanitize(rp.reason, PROTO_TEXT_MAX);
  rp.ts = (int64_t)time(NULL);
  return proto_report_build(&rp, out, len, err);
}

int agent_deploy_options(const struct agent *a, const char *listen, struct deploy_options *o,
                         ep_err *err) {
  return agent_params_deploy_options(&a->p, listen, o, err);
}

int agent_params_deploy_options(const struct agent_params *p, const char *listen,
                                struct deploy_options *o, ep_err *err) {
  struct names_hostport hp;
  memset(o, 0, sizeof *o);
  snprintf(o->node, sizeof o->node, "%s", p->node);
  o->gateway = p->gateway;
  agent_platform(o->arch, o->variant);
  if (names_hostport_parse(listen, 0, &hp, err) < 0)
    return ep_error(err, EP_EINVAL, "--listen %s: not HOST:PORT", listen);
  if (wildcard_host(hp.host))
    snprintf(hp.host, sizeof hp.host, "127.0.0.1");
  if (names_hostport_format(o->mirror, sizeof o->mirror, hp.host, hp.port, err) < 0)
    return ep_error(err, EP_EINVAL, "--listen %s: host too long", listen);
  snprintf(o->containerd_address, sizeof o->containerd_address, "%s",
           "/run/containerd/containerd.sock");
  snprintf(o->docker_socket, sizeof o->docker_socket, "%s", "/var/run/docker.sock");
  o->import_timeout_s = DEPLOY_IMPORT_TIMEOUT_S;
  return 0;
}

/* A retained topic cleared with an empty payload. */
static int on_cleared(struct agent *a, const char *topic, const struct proto_topic *t) {
  ep_err e = {0};
  int r = 0;
  switch (t->kind) {
  case PROTO_T_STATE:
    peer_forget(a, t->node);
    r = index_node_delete(a->idx, t->node, &e);
    break;
  case PROTO_T_INVENTORY:
    peer_forget(a, t->node);
    r = index_inventory_replace(a->idx, t->node, NULL, 0, &e);
    break;
  case PROTO_T_PARENT:
    r = index_node_set_parent(a->idx, t->node, NULL, 0, &e);
    if (strcmp(t->node, a->p.node) == 0) {
      pthread_mutex_lock(&a->mu);
      a->have_parent = false;
      pthread_mutex_unlock(&a->mu);
      if (a->deps.on_parent != NULL)
        a->deps.on_parent(a->deps.ud, NULL);
    }
    break;
  case PROTO_T_DELTA:
    return drop(topic, "empty delta");
  case PROTO_T_GATEWAY:
    return set_gateway(a, NULL);
  case PROTO_T_REPORT:
  case PROTO_T_DEPLOY:
  case PROTO_T_PROGRESS:
    return drop(topic, "empty message");
  }
  if (r < 0)
    ep_log_warn("agent: index: clearing %s of %s: %s",
                t->kind == PROTO_T_STATE    ? "node"
                : t->kind == PROTO_T_PARENT ? "parent"
                                            : "inventory",
                t->node, e.msg);
  else
    ep_log_info("agent: %s cleared on the broker", topic);
  return r;
}

int agent_handle_message(struct agent *a, const char *topic, const void *payload, size_t len) {
  struct proto_topic t;
  ep_err e = {0};
  if (topic == NULL)
    return drop("(null)", "no topic");
  if (proto_topic_parse(topic, &t, &e) < 0)
    return drop(topic, e.msg[0] != '\0' ? e.msg : "not an edgepull topic");
  if (strcmp(t.locality, a->p.locality) != 0)
    return drop(topic, "another locality");
  if (len == 0 || payload == NULL)
    return on_cleared(a, topic, &t);
  switch (t.kind) {
  case PROTO_T_STATE:
    return on_state(a, topic, &t, payload, len);
  case PROTO_T_INVENTORY:
  case PROTO_T_DELTA:
    return on_inventory(a, topic, &t, payload, len);
  case PROTO_T_PARENT:
    return on_parent(a, topic, &t, payload, len);
  case PROTO_T_DEPLOY:
    return on_deploy(a, topic, payload, len);
  case PROTO_T_GATEWAY:
    return on_gateway(a, topic, payload, len);
  case PROTO_T_REPORT:   /* for the coordinator */
  case PROTO_T_PROGRESS: /* for the deploying client */
    return 1;
  }
  return drop(topic, "unknown topic kind");
}
