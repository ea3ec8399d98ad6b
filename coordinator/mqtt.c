/* libmosquitto wiring of the coordinator. The network thread is
 * libmosquitto's own (mosquitto_loop_start); it calls on_connect (then
 * subscribes to the state, parent, report and coord/gateway topics at QoS 1), on_subscribe (which
 * starts recovery or a resync in the core), on_message and on_disconnect.
 * Reconnects back off exponentially from 1 to 10 s. coord_mqtt_publish runs
 * on whichever thread holds the coordinator lock: mosquitto_publish is
 * thread safe. The only state shared with the main thread is `connected`
 * and `down_since`, both atomics, for the watchdog; the main thread alone
 * starts and stops the network thread. */
#include "coordinator/mqtt.h"

#include <mosquitto.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "locality/proto.h"

#define RECONNECT_MIN_S 1
#define RECONNECT_MAX_S 10
#define WATCHDOG_MS 60000

struct coord_mqtt {
  struct mosquitto *mosq;
  const struct coord_opts *o;
  coord *c;
  char sub_state[PROTO_TOPIC_MAX];
  char sub_parent[PROTO_TOPIC_MAX];
  char sub_report[PROTO_TOPIC_MAX];
  char sub_gateway[PROTO_TOPIC_MAX];
  bool running;      /* main thread only, like the three below */
  bool loop_running; /* the network thread is started */
  int64_t next_try;  /* next connect attempt while it is not */
  unsigned backoff_s;
  atomic_bool connected;
  _Atomic int64_t down_since;
};

int64_t coord_mqtt_now_ms(void) {
  return ep_mono_ms();
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc) {
  struct coord_mqtt *m = obj;
  if (rc != 0) {
    ep_log_err("broker %s:%u refused the connection: %s", m->o->broker_host, m->o->broker_port,
               mosquitto_connack_string(rc));
    return;
  }
  atomic_store(&m->connected, true);
  ep_log_info("connected to broker %s:%u as %s", m->o->broker_host, m->o->broker_port,
              m->o->client_id);
  char *subs[4] = {m->sub_state, m->sub_parent, m->sub_report, m->sub_gateway};
  int r = mosquitto_subscribe_multiple(mosq, NULL, 4, subs, 1, 0, NULL);
  if (r != MOSQ_ERR_SUCCESS)
    ep_log_err("subscribing to %s, %s, %s and %s: %s", subs[0], subs[1], subs[2], subs[3],
               mosquitto_strerror(r));
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count,
                         const int *granted) {
  (void)mosq;
  (void)mid;
  struct coord_mqtt *m = obj;
  for (int i = 0; i < count; i++)
    if (granted[i] < 0 || granted[i] > 2)
      ep_log_err("the broker refused subscription %d (check the ACL of user %s)", i,
                 m->o->username[0] ? m->o->username : "(anonymous)");
  coord_subscribed(m->c, coord_mqtt_now_ms());
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg) {
  (void)mosq;
  struct coord_mqtt *m = obj;
  if (msg->payloadlen < 0)
    return;
  coord_message(m->c, msg->topic, msg->payload, (size_t)msg->payloadlen, msg->retain,
                coord_mqtt_now_ms());
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc) {
  (void)mosq;
  struct coord_mqtt *m = obj;
  if (atomic_exchange(&m->connected, false))
    atomic_store(&m->down_since, coord_mqtt_now_ms());
  coord_disconnected(m->c);
  if (rc != 0)
    ep_log_warn("lost the connection to broker %s:%u (%s); reconnecting", m->o->broker_host,
                m->o->broker_port, mosquitto_strerror(rc));
}

int coord_mqtt_new(const struct coord_opts *o, struct coord_mqtt **out, ep_err *err) {
  struct coord_mqtt *m = calloc(1, sizeof *m);
  if (m == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  m->o = o;
  atomic_init(&m->connected, false);
  atomic_init(&m->down_since, coord_mqtt_now_ms());
  snprintf(m->sub_state, sizeof m->sub_state, "edgepull/v1/%s/node/+/state", o->locality);
  snprintf(m->sub_parent, sizeof m->sub_parent, "edgepull/v1/%s/node/+/parent", o->locality);
  snprintf(m->sub_report, sizeof m->sub_report, "edgepull/v1/%s/node/+/report", o->locality);
  snprintf(m->sub_gateway, sizeof m->sub_gateway, "edgepull/v1/%s/coord/gateway", o->locality);
  m->mosq = mosquitto_new(o->client_id, true, m);
  if (m->mosq == NULL) {
    free(m);
    return ep_error(err, EP_EINTERNAL, "cannot create the MQTT client");
  }
  int r = MOSQ_ERR_SUCCESS;
  if (o->username[0] != '\0')
    r = mosquitto_username_pw_set(m->mosq, o->username, o->password[0] ? o->password : NULL);
  if (r == MOSQ_ERR_SUCCESS && o->ca_file[0] != '\0')
    r = mosquitto_tls_set(m->mosq, o->ca_file, NULL, NULL, NULL, NULL);
  if (r == MOSQ_ERR_SUCCESS)
    r = mosquitto_reconnect_delay_set(m->mosq, RECONNECT_MIN_S, RECONNECT_MAX_S, true);
  if (r != MOSQ_ERR_SUCCESS) {
    mosquitto_destroy(m->mosq);
    free(m);
    return ep_error(err, EP_EINVAL, "%s: %s", o->ca_file[0] ? "--ca-file" : "--username",
                    mosquitto_strerror(r));
  }
  mosquitto_connect_callback_set(m->mosq, on_connect);
  mosquitto_subscribe_callback_set(m->mosq, on_subscribe);
  mosquitto_message_callback_set(m->mosq, on_message);
  mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
  *out = m;
  return 0;
}

int coord_mqtt_publish(const char *topic, const void *payload, size_t len, void *ud) {
  struct coord_mqtt *m = ud;
  if (len > (size_t)PROTO_PARENT_MAX)
    return -1;
  int r = mosquitto_publish(m->mosq, NULL, topic, (int)len, payload, 1, true);
  if (r != MOSQ_ERR_SUCCESS && r != MOSQ_ERR_NO_CONN) {
    ep_log_warn("publish %s: %s", topic, mosquitto_strerror(r));
    return -1;
  }
  return r == MOSQ_ERR_SUCCESS ? 0 : -1;
}

/* A connect that fails at once (connection refused on the LAN) leaves
 * libmosquitto with nothing to retry, so until one succeeds the main thread
 * retries with backoff and only then starts the network thread, which
 * handles every later reconnect itself. Returns -1 when the thread cannot
 * be started. */
static int try_connect(struct coord_mqtt *m, int64_t now) {
  int r =
      mosquitto_connect_async(m->mosq, m->o->broker_host, m->o->broker_port, (int)m->o->keepalive);
  if (r != MOSQ_ERR_SUCCESS) {
    ep_log_warn("broker %s:%u not reachable (%s): retrying in %u s", m->o->broker_host,
                m->o->broker_port,
                r == MOSQ_ERR_ERRNO ? "connection failed" : mosquitto_strerror(r), m->backoff_s);
    m->next_try = now + (int64_t)m->backoff_s * 1000;
    m->backoff_s = m->backoff_s * 2 > RECONNECT_MAX_S ? RECONNECT_MAX_S : m->backoff_s * 2;
    return 0;
  }
  m->backoff_s = RECONNECT_MIN_S;
  r = mosquitto_loop_start(m->mosq);
  if (r != MOSQ_ERR_SUCCESS) {
    ep_log_err("starting the MQTT thread: %s", mosquitto_strerror(r));
    return -1;
  }
  m->loop_running = true;
  return 0;
}

int coord_mqtt_start(struct coord_mqtt *m, coord *c, ep_err *err) {
  m->c = c;
  m->backoff_s = RECONNECT_MIN_S;
  m->running = true;
  if (try_connect(m, coord_mqtt_now_ms()) < 0)
    return ep_error(err, EP_EINTERNAL, "cannot start the MQTT thread");
  return 0;
}

int coord_mqtt_watchdog(struct coord_mqtt *m, int64_t now_ms) {
  if (!m->running)
    return -1;
  if (!m->loop_running)
    return now_ms >= m->next_try ? try_connect(m, now_ms) : 0;
  if (atomic_load(&m->connected) || now_ms - atomic_load(&m->down_since) < WATCHDOG_MS)
    return 0;
  ep_log_warn("no connection to broker %s:%u for %d s: restarting the MQTT client",
              m->o->broker_host, m->o->broker_port, WATCHDOG_MS / 1000);
  atomic_store(&m->down_since, now_ms);
  mosquitto_disconnect(m->mosq); /* makes the network thread end */
  mosquitto_loop_stop(m->mosq, false);
  m->loop_running = false;
  return try_connect(m, now_ms);
}

void coord_mqtt_free(struct coord_mqtt *m) {
  if (m == NULL)
    return;
  if (m->loop_running) {
    mosquitto_disconnect(m->mosq);
    mosquitto_loop_stop(m->mosq, false);
  }
  mosquitto_destroy(m->mosq);
  free(m);
}
