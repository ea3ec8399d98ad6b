/* The node agent's network side: one libmosquitto client per edgepulld.
 *
 * Threads and what each touches:
 *  - the caller of agent_start/agent_stop (edgepulld's main thread) creates
 *    and destroys everything; agent_stop sets `stopping`, joins the agent
 *    thread, publishes the offline state, disconnects and joins the
 *    mosquitto thread before freeing;
 *  - the mosquitto thread (mosquitto_loop_start) runs the socket, keepalive
 *    and reconnects with exponential backoff (1 s .. 30 s), and calls
 *    on_connect (subscribe, online state, snapshot), on_disconnect and
 *    on_message (agent_handle_message: index writes; it alone owns the
 *    peers table);
 *  - the agent thread sleeps on `cv` until the heartbeat is due or blob
 *    changes are queued, then publishes state, deltas and snapshots; until
 *    the first connection is made it also retries it (then starts the
 *    mosquitto thread: `loop_started` is written under `mu`);
 *  - fetch threads call agent_blob_added/removed, which only append to the
 *    bounded queue under `mu` and signal `cv`, and agent_report_suspect,
 *    which publishes at once;
 *  - deploy requests and this node's parent assignments are handed out
 *    from the mosquitto thread through the callbacks of agent_deps; the
 *    deploy worker's threads publish progress through
 *    agent_publish_progress (the daemon stops the worker before the agent).
 * mosquitto_publish is thread-safe with a threaded loop. Inventory messages
 * (snapshots from on_connect or the agent thread, deltas from the agent
 * thread) are serialized by `pub_mu`, so a snapshot's seq always names the
 * last delta sent before it.
 *
 * mosquitto_connect_async never blocks on a missing broker: the agent thread
 * retries the first connection, the loop thread every later one. The Last Will is this node's
 * offline state, retained, so the locality sees a crash within ~1.5 keepalives; a clean stop
 * publishes the same offline state itself (a clean DISCONNECT suppresses the Will). The process
 * calls mosquitto_lib_init once (edgepulld's main, the tests). */
#include <errno.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/names.h"
#include "plugin/agent/agent_int.h"
#include "plugin/config/config.h"

static int publish(struct agent *a, const char *topic, const char *buf, size_t len, bool retain) {
  int rc = mosquitto_publish(a->mosq, NULL, topic, (int)len, buf, 1, retain);
  if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN)
    ep_log_warn("agent: publishing on %s: %s", topic, mosquitto_strerror(rc));
  return rc;
}

static void publish_state(struct agent *a, bool online) {
  char *buf = NULL;
  size_t len = 0;
  ep_err e = {0};
  if (agent_state_payload(a, online, &buf, &len, &e) < 0) {
    ep_log_warn("agent: building the state message: %s", e.msg);
    return;
  }
  publish(a, a->t_state, buf, len, true);
  free(buf);
}

static void mark_resnap(struct agent *a) {
  pthread_mutex_lock(&a->mu);
  a->resnap = true;
  pthread_mutex_unlock(&a->mu);
}

static void publish_snapshot(struct agent *a) {
  char *buf = NULL;
  size_t len = 0;
  ep_err e = {0};
  pthread_mutex_lock(&a->pub_mu);
  if (agent_snapshot_payload(a, &buf, &len, &e) < 0) {
    ep_log_warn("agent: building the inventory snapshot: %s", e.msg);
  } else if (publish(a, a->t_inv, buf, len, true) != MOSQ_ERR_SUCCESS) {
    mark_resnap(a); /* on_connect sends one anyway */
  } else {
    a->deltas_since_snap = 0;
  }
  pthread_mutex_unlock(&a->pub_mu);
  free(buf);
}

static void publish_delta(struct agent *a) {
  struct proto_inventory inv;
  char *buf = NULL;
  size_t len = 0;
  ep_err e = {0};
  pthread_mutex_lock(&a->pub_mu);
  if (agent_take_delta(a, &inv) > 0) {
    inv.seq = a->seq + 1;
    if (proto_inventory_build(&inv, &buf, &len, &e) < 0) {
      ep_log_warn("agent: building an inventory delta: %s", e.msg);
      mark_resnap(a);
    } else if (publish(a, a->t_delta, buf, len, false) != MOSQ_ERR_SUCCESS) {
      mark_resnap(a);
    } else {
      a->seq++;
      a->deltas_since_snap++;
    }
  }
  proto_inventory_clear(&inv);
  free(buf);
  bool snap = a->deltas_since_snap >= AGENT_SNAPSHOT_EVERY;
  pthread_mutex_unlock(&a->pub_mu);
  if (snap)
    publish_snapshot(a);
}

static void heartbeat(struct agent *a) {
  publish_state(a, true);
  pthread_mutex_lock(&a->pub_mu);
  bool stale = a->deltas_since_snap > 0;
  pthread_mutex_unlock(&a->pub_mu);
  if (stale) /* keep the retained snapshot current for nodes that join later */
    publish_snapshot(a);
}

static struct timespec mono_after(int seconds) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += seconds;
  return ts;
}

static bool mono_passed(const struct timespec *t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* ---- mosquitto callbacks (mosquitto thread) ---- */

static void on_connect(struct mosquitto *mosq, void *ud, int rc) {
  struct agent *a = ud;
  if (rc != 0) {
    ep_log_warn("agent: broker %s:%d refused the connection: %s", a->p.broker_host,
                a->p.broker_port, mosquitto_connack_string(rc));
    return;
  }
  ep_log_info("agent: connected to broker %s:%d as %s in locality %s", a->p.broker_host,
              a->p.broker_port, a->p.node, a->p.locality);
  char *subs[3] = {a->filter, a->t_deploy, a->t_gateway};
  int s = mosquitto_subscribe_multiple(mosq, NULL, 3, subs, 1, 0, NULL);
  if (s != MOSQ_ERR_SUCCESS)
    ep_log_warn("agent: subscribing to %s, %s and %s: %s", a->filter, a->t_deploy, a->t_gateway,
                mosquitto_strerror(s));
  publish_state(a, true);
  publish_snapshot(a);
  pthread_mutex_lock(&a->mu);
  a->connected = true;
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
}

static void on_disconnect(struct mosquitto *mosq, void *ud, int rc) {
  struct agent *a = ud;
  (void)mosq;
  pthread_mutex_lock(&a->mu);
  bool was = a->connected, stopping = a->stopping;
  a->connected = false;
  pthread_mutex_unlock(&a->mu);
  if (was && !stopping)
    ep_log_warn("agent: lost the broker %s:%d (%s); reconnecting", a->p.broker_host,
                a->p.broker_port, rc == MOSQ_ERR_SUCCESS ? "disconnected" : mosquitto_strerror(rc));
}

static void on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *m) {
  (void)mosq;
  if (m->payloadlen < 0)
    return;
  agent_handle_message(ud, m->topic, m->payload, (size_t)m->payloadlen);
}

static void on_log(struct mosquitto *mosq, void *ud, int level, const char *msg) {
  (void)mosq, (void)ud, (void)level;
  ep_log_debug("agent: mosquitto: %s", msg);
}

/* The first connection. libmosquitto's loop thread retries only a connection
 * it has once made, so until connect_async succeeds the agent thread tries
 * again with backoff, and starts the loop thread then. */
static bool try_connect(struct agent *a, unsigned attempt) {
  int rc = mosquitto_connect_async(a->mosq, a->p.broker_host, a->p.broker_port, a->p.keepalive_s);
  if (rc == MOSQ_ERR_SUCCESS) {
    rc = mosquitto_loop_start(a->mosq);
    if (rc == MOSQ_ERR_SUCCESS)
      return true;
    ep_log_err("agent: starting the MQTT thread: %s", mosquitto_strerror(rc));
  } else if (attempt == 0 || attempt % 20 == 0) {
    ep_log_warn("agent: broker %s:%d not reachable yet (%s); retrying in the background",
                a->p.broker_host, a->p.broker_port,
                rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
  }
  return false;
}

static struct timespec earlier(struct timespec x, struct timespec y) {
  return x.tv_sec < y.tv_sec || (x.tv_sec == y.tv_sec && x.tv_nsec < y.tv_nsec) ? x : y;
}

static void *agent_main(void *ud) {
  struct agent *a = ud;
  struct timespec next_hb = mono_after(a->p.heartbeat_s);
  struct timespec next_try = mono_after(1);
  unsigned attempt = 1, delay = 1;
  pthread_mutex_lock(&a->mu);
  while (!a->stopping) {
    bool conn = a->connected;
    if (!a->loop_started && mono_passed(&next_try)) {
      pthread_mutex_unlock(&a->mu);
      bool ok = try_connect(a, attempt++);
      delay = delay < 16 ? delay * 2 : 30;
      next_try = mono_after((int)delay);
      pthread_mutex_lock(&a->mu);
      a->loop_started = ok;
    } else if (conn && (a->resnap || a->nqueue > 0)) {
      bool snap = a->resnap;
      pthread_mutex_unlock(&a->mu);
      if (snap)
        publish_snapshot(a);
      else
        publish_delta(a);
      pthread_mutex_lock(&a->mu);
    } else if (mono_passed(&next_hb)) {
      pthread_mutex_unlock(&a->mu);
      if (conn)
        heartbeat(a);
      next_hb = mono_after(a->p.heartbeat_s);
      pthread_mutex_lock(&a->mu);
    } else {
      struct timespec until = a->loop_started ? next_hb : earlier(next_hb, next_try);
      pthread_cond_timedwait(&a->cv, &a->mu, &until);
    }
  }
  pthread_mutex_unlock(&a->mu);
  return NULL;
}

/* ---- start / stop ---- */

static int mosq_fail(ep_err *err, const char *what, int rc) {
  return ep_error(err, rc == MOSQ_ERR_NOMEM ? EP_EINTERNAL : EP_EINVAL, "%s: %s", what,
                  rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
}

static int set_credentials(struct agent *a, ep_err *err) {
  if (a->p.username[0] == '\0') {
    /* Everything a node trusts on the broker (who the gateway is, its
     * parent, the other nodes' addresses) is guarded by the broker's ACL,
     * which needs a user per client. */
    ep_log_warn("agent: INSECURE: no --broker-username: on a broker that admits anonymous "
                "clients, anyone on the network can name the gateway, forge parents and other "
                "nodes' states, and so substitute images; use the users and ACL of "
                "contrib/mosquitto (docs/security.md)");
    return 0;
  }
  char *pw = NULL;
  if (a->p.password_file[0] != '\0') {
    pw = calloc(1, NAMES_SECRET_MAX + 1);
    if (pw == NULL)
      return ep_error(err, EP_EINTERNAL, "out of memory");
    if (names_secret_read(a->p.password_file, pw, NAMES_SECRET_MAX + 1, err) < 0) {
      free(pw);
      return ep_wrap(err, "--broker-password-file");
    }
  }
  int rc = mosquitto_username_pw_set(a->mosq, a->p.username, pw);
  if (pw != NULL) {
    explicit_bzero(pw, NAMES_SECRET_MAX + 1);
    free(pw);
  }
  return rc == MOSQ_ERR_SUCCESS ? 0 : mosq_fail(err, "broker credentials", rc);
}

static int configure(struct agent *a, ep_err *err) {
  char id[16 + 2 * PROTO_ID_MAX];
  snprintf(id, sizeof id, "edgepull-%s-%s", a->p.locality, a->p.node);
  a->mosq = mosquitto_new(id, true, a);
  if (a->mosq == NULL)
    return ep_syserror(err, EP_EINTERNAL, "creating the MQTT client");
  int rc = mosquitto_int_option(a->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
  if (rc != MOSQ_ERR_SUCCESS)
    return mosq_fail(err, "MQTT protocol version", rc);
  if ((rc = set_credentials(a, err)) < 0)
    return rc;
  if (a->p.ca_file[0] != '\0' && access(a->p.ca_file, R_OK) < 0)
    return ep_syserror(err, EP_EINVAL, "--broker-ca-file %s", a->p.ca_file);
  if (a->p.ca_file[0] != '\0' &&
      (rc = mosquitto_tls_set(a->mosq, a->p.ca_file, NULL, NULL, NULL, NULL)) != MOSQ_ERR_SUCCESS)
    return ep_error(err, EP_EINVAL, "--broker-ca-file %s: %s", a->p.ca_file,
                    mosquitto_strerror(rc));
  ep_cleanup_free char *will = NULL;
  size_t len = 0;
  if ((rc = agent_state_payload(a, false, &will, &len, err)) < 0)
    return ep_wrap(err, "the Last Will");
  if ((rc = mosquitto_will_set(a->mosq, a->t_state, (int)len, will, 1, true)) != MOSQ_ERR_SUCCESS)
    return mosq_fail(err, "the Last Will", rc);
  mosquitto_reconnect_delay_set(a->mosq, 1, 30, true);
  mosquitto_connect_callback_set(a->mosq, on_connect);
  mosquitto_disconnect_callback_set(a->mosq, on_disconnect);
  mosquitto_message_callback_set(a->mosq, on_message);
  mosquitto_log_callback_set(a->mosq, on_log);
  return 0;
}

static int agent_connect(struct agent *a, ep_err *err) {
  ep_err e = {0};
  if (agent_mark_self(a, &e) < 0)
    ep_log_warn("agent: recording this node in the index: %s", e.msg);
  int r = configure(a, err);
  if (r < 0)
    return r;
  a->loop_started = try_connect(a, 0);
  if (pthread_create(&a->thread, NULL, agent_main, a) != 0)
    return ep_error(err, EP_EINTERNAL, "starting the agent thread");
  a->thread_started = true;
  ep_log_info("agent: node %s of locality %s, broker %s:%d%s, inventory generation %llu", a->p.node,
              a->p.locality, a->p.broker_host, a->p.broker_port,
              a->p.ca_file[0] != '\0' ? " (TLS)" : "", (unsigned long long)a->gen);
  return 0;
}

int agent_config_deploy_options(const struct edgepulld_config *cfg, struct deploy_options *o,
                                ep_err *err) {
  struct agent_params p;
  int r = agent_params_from_config(cfg, &p, err);
  if (r < 0)
    return r;
  if ((r = agent_params_deploy_options(&p, cfg->listen, o, err)) < 0)
    return ep_wrap(err, "deploy worker");
  snprintf(o->containerd_address, sizeof o->containerd_address, "%s", cfg->containerd_address);
  snprintf(o->docker_socket, sizeof o->docker_socket, "%s", cfg->docker_socket);
  /* containerd names the proxy plugin "edgepull" in the documented config (docs/snapshotter.md) */
  if (cfg->snapshotter_socket[0] != '\0')
    snprintf(o->snapshotter, sizeof o->snapshotter, "%s", "edgepull");
  return 0;
}

int agent_start(const struct edgepulld_config *cfg, const struct agent_deps *deps,
                struct agent **out, ep_err *err) {
  struct agent_params p;
  struct agent *a = NULL;
  *out = NULL;
  if (cfg->broker[0] == '\0')
    return 0;
  int r = agent_params_from_config(cfg, &p, err);
  if (r < 0)
    return r;
  if ((r = agent_create(&p, deps->idx, &a, err)) < 0) {
    agent_stop(a);
    return r;
  }
  a->deps = *deps;
  if ((r = agent_connect(a, err)) < 0) {
    agent_stop(a);
    return r;
  }
  *out = a;
  return 0;
}

void agent_stop(struct agent *a) {
  if (a == NULL)
    return;
  pthread_mutex_lock(&a->mu);
  a->stopping = true;
  bool conn = a->connected;
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
  if (a->thread_started)
    pthread_join(a->thread, NULL);
  if (a->mosq != NULL) {
    if (a->loop_started) {
      if (conn) /* a clean DISCONNECT suppresses the Will: say it ourselves */
        publish_state(a, false);
      mosquitto_disconnect(a->mosq);
      mosquitto_loop_stop(a->mosq, false);
    }
    mosquitto_destroy(a->mosq);
  }
  pthread_cond_destroy(&a->cv);
  pthread_mutex_destroy(&a->mu);
  pthread_mutex_destroy(&a->pub_mu);
  free(a->queue);
  free(a->peers);
  free(a);
}

static void enqueue(struct agent *a, const digest_t *d, uint64_t size, bool add) {
  if (a == NULL || d == NULL)
    return;
  pthread_mutex_lock(&a->mu);
  size_t i = 0;
  while (i < a->nqueue && !digest_equal(&a->queue[i].digest, d))
    i++;
  if (i < a->nqueue || a->nqueue < AGENT_QUEUE_MAX) {
    a->queue[i] = (struct agent_op){.digest = *d, .size = size, .add = add};
    if (i == a->nqueue)
      a->nqueue++;
  } else {
    a->resnap = true; /* the index holds the change: a snapshot carries it */
  }
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
}

void agent_blob_added(struct agent *a, const digest_t *d, uint64_t size) {
  enqueue(a, d, size, true);
}

void agent_blob_removed(struct agent *a, const digest_t *d) {
  enqueue(a, d, 0, false);
}

int agent_parent(struct agent *a, struct proto_parent *out) {
  if (a == NULL)
    return 0;
  pthread_mutex_lock(&a->mu);
  int has = a->have_parent;
  if (has && out != NULL)
    *out = a->parent;
  pthread_mutex_unlock(&a->mu);
  return has;
}

bool agent_connected(struct agent *a) {
  if (a == NULL)
    return false;
  pthread_mutex_lock(&a->mu);
  bool up = a->connected;
  pthread_mutex_unlock(&a->mu);
  return up;
}

void agent_report_suspect(struct agent *a, const char *node, const digest_t *d, const char *why) {
  if (a == NULL)
    return;
  char *buf = NULL;
  size_t len = 0;
  ep_err e = {0};
  if (node != NULL && strcmp(node, a->p.node) == 0) {
    ep_log_warn("agent: not reporting this node itself as a suspect");
    return;
  }
  if (agent_report_payload(a, node, d, why, &buf, &len, &e) < 0) {
    ep_log_warn("agent: building a suspect report: %s", e.msg);
    return;
  }
  char ds[DIGEST_STR_LEN + 1];
  digest_format(d, ds);
  ep_log_warn("agent: reporting peer %s to the coordinator: blob %s: %s", node, ds,
              why != NULL ? why : "");
  if (a->mosq != NULL)
    publish(a, a->t_report, buf, len, false);
  free(buf);
}

void agent_publish_progress(struct agent *a, const struct proto_progress *p, bool final) {
  char topic[PROTO_TOPIC_MAX];
  char *buf = NULL;
  size_t len = 0;
  ep_err e = {0};
  if (a == NULL || a->mosq == NULL)
    return;
  if (proto_progress_topic(a->p.locality, p->id, a->p.node, topic, sizeof topic, &e) < 0 ||
      proto_progress_build(p, &buf, &len, &e) < 0) {
    ep_log_warn("agent: deploy %s: building a progress message: %s", p->id, e.msg);
    return;
  }
  int rc = mosquitto_publish(a->mosq, NULL, topic, (int)len, buf, final ? 1 : 0, false);
  if (rc != MOSQ_ERR_SUCCESS && (final || rc != MOSQ_ERR_NO_CONN))
    ep_log_warn("agent: publishing on %s: %s", topic, mosquitto_strerror(rc));
  free(buf);
}
