/* Internals of the node agent (plugin/agent/agent*.c), shared by its files and by
 * tests/unit/test_agent.c, which builds an agent without a broker
 * (agent_create) and drives its message handling and delta batching
 * directly. Nothing outside plugin/agent/agent*.c and its test includes this. */
#ifndef EP_PLUGIN_AGENT_INT_H
#define EP_PLUGIN_AGENT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plugin/agent/agent.h"
#include "plugin/config/config.h"
#include "plugin/deploy/deploy.h"
#include "store/index.h"

#define AGENT_QUEUE_MAX 4096            /* pending blob changes; beyond: resend a snapshot */
#define AGENT_PEERS_MAX 4096            /* nodes whose inventory sequence we track */
#define AGENT_SNAPSHOT_EVERY 64         /* deltas between two snapshots at most */
#define AGENT_SNAPSHOT_BLOBS (1u << 20) /* collected for a snapshot at most */

/* Everything the agent needs from the configuration, resolved. */
struct agent_params {
  char locality[PROTO_ID_MAX + 1];
  char node[PROTO_ID_MAX + 1];
  char state_dir[1024];
  char addr[PROTO_ADDR_MAX + 1]; /* advertised peer address, "" = none */
  uint16_t peer_port;            /* 0 = no peer endpoint */
  uint32_t link_mbps;
  bool gateway;                      /* this node is a gateway (--gateway) */
  char gateway_id[PROTO_ID_MAX + 1]; /* --gateway-id: pinned; "" = coord/gateway's */
  int heartbeat_s;
  int keepalive_s;
  char broker_host[256];
  int broker_port;
  char username[128]; /* "" = anonymous */
  char password_file[1024];
  char ca_file[1024]; /* "" = plain MQTT */
};

struct agent_op {
  digest_t digest;
  uint64_t size;
  bool add;
};

/* What we know of a node's inventory stream: its run (gen) and the last
 * delta applied (seq). Owned by the thread that handles messages. */
struct agent_peer {
  char id[PROTO_ID_MAX + 1];
  uint64_t gen, seq;
};

struct agent {
  struct agent_params p;
  index_db *idx;
  uint64_t gen; /* random per start */
  char t_state[PROTO_TOPIC_MAX], t_inv[PROTO_TOPIC_MAX], t_delta[PROTO_TOPIC_MAX];
  char filter[PROTO_TOPIC_MAX];
  char t_deploy[PROTO_TOPIC_MAX], t_report[PROTO_TOPIC_MAX], t_gateway[PROTO_TOPIC_MAX];
  struct agent_deps deps; /* callbacks; agent_create leaves them NULL */

  struct mosquitto *mosq; /* NULL when built by agent_create alone */
  pthread_t thread;
  bool thread_started;

  pthread_mutex_t mu; /* guards the fields below it */
  pthread_cond_t cv;
  struct agent_op *queue;
  size_t nqueue;
  bool resnap; /* queue overflowed or a publish failed: send a snapshot */
  bool stopping;
  bool connected;    /* CONNACK accepted, not yet disconnected */
  bool loop_started; /* the mosquitto thread runs */
  bool have_parent;
  struct proto_parent parent;

  pthread_mutex_t pub_mu; /* serializes inventory publishing; guards below */
  uint64_t seq;           /* deltas published in this gen */
  unsigned deltas_since_snap;

  /* handled-message thread only (the mosquitto thread, or a test) */
  struct agent_peer *peers;
  size_t npeers;
  /* The locality's gateway: --gateway-id, else what the coordinator says on
   * coord/gateway; "" = unknown. Never what a state claims. Written before
   * the mosquitto thread starts, then only by it. */
  char gw_id[PROTO_ID_MAX + 1];
};

/* Resolves the agent's parameters from the configuration (advertise-addr
 * default, peer port, broker host and port). */
int agent_params_from_config(const struct edgepulld_config *c, struct agent_params *out,
                             ep_err *err);
/* Builds an agent that is not connected to anything; agent_stop frees it. */
int agent_create(const struct agent_params *p, index_db *idx, struct agent **out, ep_err *err);
/* Applies one received message to the index. 0 applied, 1 ignored on
 * purpose (an out-of-order delta), <0 dropped (logged once, with reason). */
int agent_handle_message(struct agent *a, const char *topic, const void *payload, size_t len);
/* Moves up to PROTO_DELTA_BLOBS queued changes into inv (add/del malloc'd,
 * freed by proto_inventory_clear); returns how many were taken. */
size_t agent_take_delta(struct agent *a, struct proto_inventory *inv);
/* Writes this node's own row (online) into the index, before any broker,
 * and resets the index's gateway mark to --gateway-id (or none until the
 * coordinator's coord/gateway arrives): a mark left by an earlier run, or
 * by a release that believed the nodes' own claims, is not trusted. */
int agent_mark_self(struct agent *a, ep_err *err);
/* This node's state payload (free space measured now). */
int agent_state_payload(struct agent *a, bool online, char **out, size_t *len, ep_err *err);
/* The snapshot payload of the complete blobs in the index, at seq; clears
 * the queue first (the index already holds every queued change). */
int agent_snapshot_payload(struct agent *a, char **out, size_t *len, ep_err *err);

/* The platform this binary runs on (GOARCH style, variant or ""). */
void agent_platform(char arch[16], char variant[8]);
/* The report payload agent_report_suspect publishes. */
int agent_report_payload(struct agent *a, const char *node, const digest_t *d, const char *why,
                         char **out, size_t *len, ep_err *err);
/* The deploy worker's options for this node: its id, role and platform, the
 * local endpoint (from --listen, a wildcard host becomes 127.0.0.1) and the
 * runtime sockets' defaults. */
int agent_deploy_options(const struct agent *a, const char *listen, struct deploy_options *o,
                         ep_err *err);
/* The same from resolved parameters, before any agent exists. */
int agent_params_deploy_options(const struct agent_params *p, const char *listen,
                                struct deploy_options *o, ep_err *err);

#endif
