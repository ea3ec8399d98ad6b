/* `edgepullctl deploy IMAGE`: asks a locality to deploy an image over MQTT
 * (docs/deploy.md) and, with --wait, follows it to the end.
 *
 * Broker, locality and credentials come from the options, else from
 * edgepulld's configuration file (--config, default
 * /etc/edgepull/edgepulld.conf when it exists; keys broker, locality,
 * broker-username, broker-password-file, broker-ca-file), read with libinih.
 *
 * With --wait the order matters: subscribe to the deploy's progress topic
 * and to every node's retained state first, let the retained states arrive
 * (the nodes online now are the ones expected to report), then publish the
 * deploy (QoS 1) and wait for its acknowledgement, so no progress message
 * can be missed. A node that reports without having been expected is added;
 * one that goes offline before its final message counts as failed. The
 * client runs libmosquitto's loop on this one thread (mosquitto_loop), so
 * the callbacks and the view need no locking. */
#include <getopt.h>
#include <ini.h>
#include <mosquitto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/names.h"
#include "ctl/ctl.h"
#include "ctl/ctl_deploy.h"

#define CTL_DEFAULT_CONFIG "/etc/edgepull/edgepulld.conf"
#define CTL_STATES_MS 1000      /* at most, to collect retained states after the SUBACK */
#define CTL_STATES_QUIET_MS 100 /* ... or until none came for this long */
/* A live node publishes its first progress message as soon as the deploy
 * reaches it (plugin/deploy/deploy.c, job_main), before it resolves
 * anything: this long without a single one means nobody is there. */
#define CTL_ANSWER_MS 10000

struct dopts {
  const char *image;
  struct proto_deploy req;
  bool wait, json;
  long timeout_s;
  char broker[256], locality[PROTO_ID_MAX + 1], username[128], password_file[1024], ca_file[1024];
  bool set_broker, set_locality, set_username, set_password_file, set_ca_file;
  const char *config;
};

struct dclient {
  struct dopts *o;
  struct ctl_dview v;
  bool connected, refused, subscribed, acked;
  int pub_mid;
  int64_t last_state_ms; /* when the last retained state arrived */
};

/* ---- configuration ---- */

static void set_str(char *dst, size_t cap, bool already, const char *v) {
  if (!already)
    snprintf(dst, cap, "%s", v);
}

static int on_ini(void *ud, const char *section, const char *name, const char *value) {
  struct dopts *o = ud;
  if (section[0] != '\0')
    return 1;
  if (strcmp(name, "broker") == 0)
    set_str(o->broker, sizeof o->broker, o->set_broker, value);
  else if (strcmp(name, "locality") == 0)
    set_str(o->locality, sizeof o->locality, o->set_locality, value);
  else if (strcmp(name, "broker-username") == 0)
    set_str(o->username, sizeof o->username, o->set_username, value);
  else if (strcmp(name, "broker-password-file") == 0)
    set_str(o->password_file, sizeof o->password_file, o->set_password_file, value);
  else if (strcmp(name, "broker-ca-file") == 0)
    set_str(o->ca_file, sizeof o->ca_file, o->set_ca_file, value);
  return 1;
}

static int load_config(struct dopts *o) {
  const char *path = o->config != NULL ? o->config : CTL_DEFAULT_CONFIG;
  if (o->config == NULL && access(path, F_OK) != 0)
    return 0;
  int r = ini_parse(path, on_ini, o);
  if (r < 0) {
    ctl_errorf("--config %s: cannot be read", path);
    return CTL_EXIT_USAGE;
  }
  if (r > 0) {
    ctl_errorf("%s:%d: syntax error", path, r);
    return CTL_EXIT_USAGE;
  }
  return 0;
}

/* ---- options ---- */

static void usage(FILE *out) {
  fprintf(out,
          "Usage: edgepullctl deploy IMAGE [OPTIONS]\n"
          "\n"
          "Ask the locality to deploy IMAGE: the gateway pulls the missing layers once,\n"
          "every node prefetches them through the topology.\n"
          "\n"
          "  --platform OS/ARCH[/VARIANT]  only these platforms (repeatable; default: every\n"
          "                                platform present in the locality)\n"
          "  --import none|containerd|docker  make the image runnable on every node\n"
          "  --wait               follow the deploy: live progress, then a final report\n"
          "  --timeout S          give up waiting after S seconds (default 1800)\n"
          "  --broker HOST:PORT   MQTT broker (default: edgepulld's configuration)\n"
          "  --locality NAME      locality (default: edgepulld's configuration)\n"
          "  --username U         broker user (the ACL's `deployer`)\n"
          "  --password-file F    file holding its password\n"
          "  --ca-file F          CA bundle: TLS to the broker\n"
          "  --config FILE        edgepulld's configuration (default %s)\n"
          "  -j, --json           JSON lines instead of the live display\n"
          "\n"
          "Exit status: 0 every node done (or sent, without --wait), 1 a node failed or\n"
          "the wait timed out, 2 usage error.\n",
          CTL_DEFAULT_CONFIG);
}

static int usage_err(const char *msg, const char *arg) {
  return ctl_usage_err("deploy", msg, arg);
}

enum {
  O_PLATFORM = 1000,
  O_IMPORT,
  O_WAIT,
  O_TIMEOUT,
  O_BROKER,
  O_LOCALITY,
  O_USER,
  O_PWFILE,
  O_CA,
  O_CONFIG,
  O_NOTRUNC,
};

static int copy_opt(char *dst, size_t cap, bool *set, const char *v, const char *name) {
  if (v[0] == '\0' || strlen(v) >= cap)
    return usage_err("empty or too long", name);
  snprintf(dst, cap, "%s", v);
  *set = true;
  return 0;
}

static int one_option(struct dopts *o, int c, const char *arg) {
  ep_err e = {0};
  char *end = NULL;
  switch (c) {
  case O_PLATFORM:
    if (!proto_platform_valid(arg))
      return usage_err("--platform must be os/arch[/variant]", arg);
    if (o->req.nplatforms >= PROTO_PLATFORMS_MAX)
      return usage_err("too many --platform", NULL);
    snprintf(o->req.platforms[o->req.nplatforms++], PROTO_PLATFORM_MAX + 1, "%s", arg);
    return 0;
  case O_IMPORT:
    return proto_import_parse(arg, &o->req.import, &e) < 0 ? usage_err(e.msg, NULL) : 0;
  case O_WAIT:
    o->wait = true;
    return 0;
  case O_TIMEOUT:
    o->timeout_s = strtol(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || o->timeout_s < 1 || o->timeout_s > 7 * 86400)
      return usage_err("--timeout must be 1..604800 seconds", arg);
    return 0;
  case O_BROKER:
    return copy_opt(o->broker, sizeof o->broker, &o->set_broker, arg, "--broker");
  case O_LOCALITY:
    return copy_opt(o->locality, sizeof o->locality, &o->set_locality, arg, "--locality");
  case O_USER:
    return copy_opt(o->username, sizeof o->username, &o->set_username, arg, "--username");
  case O_PWFILE:
    return copy_opt(o->password_file, sizeof o->password_file, &o->set_password_file, arg,
                    "--password-file");
  case O_CA:
    return copy_opt(o->ca_file, sizeof o->ca_file, &o->set_ca_file, arg, "--ca-file");
  case O_CONFIG:
    o->config = arg;
    return 0;
  case 'j':
    o->json = true;
    return 0;
  case 'd':
  case O_NOTRUNC:
    return 0; /* global options, meaningless here */
  }
  return usage_err("unknown option", NULL);
}

static int parse(int argc, char **argv, struct dopts *o) {
  static const struct option longopts[] = {
      {"platform", required_argument, NULL, O_PLATFORM},
      {"import", required_argument, NULL, O_IMPORT},
      {"wait", no_argument, NULL, O_WAIT},
      {"timeout", required_argument, NULL, O_TIMEOUT},
      {"broker", required_argument, NULL, O_BROKER},
      {"locality", required_argument, NULL, O_LOCALITY},
      {"username", required_argument, NULL, O_USER},
      {"password-file", required_argument, NULL, O_PWFILE},
      {"ca-file", required_argument, NULL, O_CA},
      {"config", required_argument, NULL, O_CONFIG},
      {"json", no_argument, NULL, 'j'},
      {"state-dir", required_argument, NULL, 'd'},
      {"no-trunc", no_argument, NULL, O_NOTRUNC},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int c, r, code = 0;
  optind = 1;
  opterr = 0;
  while ((c = ctl_getopt(argc, argv, ":jhd:", longopts, false, "deploy", usage, &code)) != -1) {
    if (c == -2)
      return code;
    if ((r = one_option(o, c, optarg)) != 0)
      return r;
  }
  /* argv[optind] is "deploy" (getopt moved the options before it). */
  if (optind + 2 != argc)
    return usage_err(optind + 2 > argc ? "needs an argument: IMAGE" : "takes one IMAGE", NULL);
  o->image = argv[optind + 1];
  if (!proto_image_valid(o->image))
    return usage_err("IMAGE must be 1..511 printable characters without spaces", o->image);
  return -1;
}

/* ---- MQTT ---- */

static void on_connect(struct mosquitto *m, void *ud, int rc) {
  (void)m;
  struct dclient *c = ud;
  if (rc != 0) {
    ctl_errorf("broker %s refused the connection: %s", c->o->broker, mosquitto_connack_string(rc));
    c->refused = true;
    return;
  }
  c->connected = true;
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted) {
  (void)m, (void)mid;
  struct dclient *c = ud;
  for (int i = 0; i < n; i++)
    if (granted[i] > 2)
      ctl_errorf("the broker refused a subscription (check the ACL of %s)",
                 c->o->username[0] ? c->o->username : "anonymous clients");
  c->subscribed = true;
}

static void on_publish(struct mosquitto *m, void *ud, int mid) {
  (void)m;
  struct dclient *c = ud;
  if (mid == c->pub_mid)
    c->acked = true;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg) {
  (void)m;
  struct dclient *c = ud;
  struct proto_topic t;
  if (msg->payloadlen < 0 || proto_topic_parse(msg->topic, &t, NULL) < 0 ||
      strcmp(t.locality, c->o->locality) != 0)
    return;
  if (t.kind == PROTO_T_STATE) {
    struct proto_state st;
    bool online =
        msg->payloadlen > 0 &&
        proto_state_parse(msg->payload, (size_t)msg->payloadlen, t.node, &st, NULL) == 0 &&
        st.online;
    ctl_dview_state(&c->v, t.node, online);
    c->last_state_ms = ep_mono_ms();
  } else if (t.kind == PROTO_T_PROGRESS && strcmp(t.deploy, c->v.id) == 0) {
    struct proto_progress p;
    ep_err e = {0};
    if (proto_progress_parse(msg->payload, (size_t)msg->payloadlen, t.deploy, t.node, &p, &e) == 0)
      ctl_dview_progress(&c->v, &p, ep_mono_ms());
    else
      ctl_errorf("ignored a progress message of %s: %s", t.node, e.msg);
  }
}

static int credentials(struct mosquitto *m, const struct dopts *o) {
  if (o->username[0] == '\0')
    return 0;
  char *pw = NULL;
  if (o->password_file[0] != '\0') {
    if ((pw = calloc(1, NAMES_SECRET_MAX + 1)) == NULL)
      return CTL_EXIT_FAIL;
    ep_err e = {0};
    if (names_secret_read(o->password_file, pw, NAMES_SECRET_MAX + 1, &e) < 0) {
      free(pw);
      ctl_errorf("--password-file: %s", e.msg);
      return CTL_EXIT_USAGE;
    }
  }
  int rc = mosquitto_username_pw_set(m, o->username, pw);
  if (pw != NULL) {
    explicit_bzero(pw, NAMES_SECRET_MAX + 1);
    free(pw);
  }
  return rc == MOSQ_ERR_SUCCESS ? 0 : CTL_EXIT_FAIL;
}

/* Runs the loop until *flag or the deadline; false on timeout or failure. */
static bool loop_until(struct mosquitto *m, struct dclient *c, const bool *flag, int64_t deadline) {
  while (!*flag && !c->refused && ep_mono_ms() < deadline) {
    int rc = mosquitto_loop(m, 100, 1);
    if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
      ctl_errorf("broker %s: %s", c->o->broker, mosquitto_strerror(rc));
      return false;
    }
  }
  return *flag;
}

static void new_id(char id[PROTO_ID_MAX + 1]) {
  unsigned char b[8];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20 ^ (uint64_t)getpid() << 40;
    memcpy(b, &x, sizeof b);
  }
  for (size_t i = 0; i < sizeof b; i++)
    snprintf(id + 2 * i, 3, "%02x", b[i]);
}

/* The broker sends the retained states right after the SUBACK, back to back:
 * wait until they stop coming (CTL_STATES_QUIET_MS without one), at most
 * CTL_STATES_MS. A late one costs little: a node that reports progress
 * without having been expected is added to the view. */
static void collect_states(struct mosquitto *m, struct dclient *c) {
  int64_t start = ep_mono_ms();
  c->last_state_ms = start;
  while (!c->refused && ep_mono_ms() - c->last_state_ms < CTL_STATES_QUIET_MS &&
         ep_mono_ms() - start < CTL_STATES_MS) {
    int rc = mosquitto_loop(m, 10, 1); /* short: the quiet period is what we measure */
    if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN)
      break; /* publishing the deploy reports the broker's error */
  }
}

static int subscribe_all(struct mosquitto *m, struct dclient *c) {
  char prog[PROTO_TOPIC_MAX], states[PROTO_TOPIC_MAX];
  if (proto_progress_topic(c->o->locality, c->v.id, NULL, prog, sizeof prog, NULL) < 0)
    return CTL_EXIT_FAIL;
  snprintf(states, sizeof states, "edgepull/v1/%s/node/+/state", c->o->locality);
  char *subs[2] = {prog, states};
  if (mosquitto_subscribe_multiple(m, NULL, 2, subs, 1, 0, NULL) != MOSQ_ERR_SUCCESS ||
      !loop_until(m, c, &c->subscribed, ep_mono_ms() + 10000)) {
    ctl_errorf("broker %s: subscribing failed", c->o->broker);
    return CTL_EXIT_FAIL;
  }
  collect_states(m, c);
  return 0;
}

static int send_deploy(struct mosquitto *m, struct dclient *c) {
  char topic[PROTO_TOPIC_MAX];
  char *buf = NULL;
  size_t len = 0;
  ep_err e = {0};
  c->o->req.ts = (int64_t)time(NULL);
  if (proto_deploy_topic(c->o->locality, topic, sizeof topic, &e) < 0 ||
      proto_deploy_build(&c->o->req, &buf, &len, &e) < 0) {
    ctl_errorf("deploy: %s", e.msg);
    return CTL_EXIT_USAGE;
  }
  int rc = mosquitto_publish(m, &c->pub_mid, topic, (int)len, buf, 1, false);
  free(buf);
  if (rc != MOSQ_ERR_SUCCESS || !loop_until(m, c, &c->acked, ep_mono_ms() + 10000)) {
    ctl_errorf("broker %s: publishing the deploy failed", c->o->broker);
    return CTL_EXIT_FAIL;
  }
  return 0;
}

/* No node answered within CTL_ANSWER_MS: an empty locality (no node online)
 * or a silent one (online by their retained states, but not listening).
 * Says so rather than waiting out --timeout. */
static bool nobody_answered(struct dclient *c, int64_t answer_by) {
  if (ctl_dview_answered(&c->v) || ep_mono_ms() < answer_by)
    return false;
  size_t n = ctl_dview_expected(&c->v);
  if (n == 0)
    snprintf(c->v.reason, sizeof c->v.reason,
             "no node of locality %s is online, and none answered in %d s: nothing to deploy to",
             c->o->locality, CTL_ANSWER_MS / 1000);
  else
    snprintf(c->v.reason, sizeof c->v.reason,
             "none of the %zu online nodes of locality %s answered in %d s: is edgepulld running "
             "there, with this broker and locality?",
             n, c->o->locality, CTL_ANSWER_MS / 1000);
  ctl_errorf("deploy %s: %s", c->v.id, c->v.reason);
  return true;
}

static int follow(struct mosquitto *m, struct dclient *c) {
  int64_t deadline = c->v.start_ms + (int64_t)c->o->timeout_s * 1000;
  int64_t answer_by = ep_mono_ms() + CTL_ANSWER_MS;
  while (!ctl_dview_complete(&c->v) && ep_mono_ms() < deadline && !nobody_answered(c, answer_by)) {
    int rc = mosquitto_loop(m, 100, 1);
    if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST) {
      mosquitto_reconnect(m); /* the subscriptions were not clean-session bound */
    } else if (rc != MOSQ_ERR_SUCCESS) {
      ctl_errorf("broker %s: %s", c->o->broker, mosquitto_strerror(rc));
      break;
    }
    ctl_dview_tick(&c->v, ep_mono_ms());
  }
  bool timed_out = !ctl_dview_complete(&c->v) && c->v.reason[0] == '\0';
  return ctl_dview_report(&c->v, ep_mono_ms(), timed_out);
}

static int run(struct dopts *o) {
  struct names_hostport hp;
  ep_err be = {0};
  if (names_hostport_parse(o->broker, NAMES_PORT_OPTIONAL, &hp, &be) < 0)
    return usage_err("--broker must be HOST[:PORT]", o->broker);
  const char *host = hp.host;
  int port = hp.has_port ? hp.port : 1883;
  struct dclient c = {.o = o};
  new_id(o->req.id);
  snprintf(c.v.id, sizeof c.v.id, "%s", o->req.id);
  snprintf(o->req.image, sizeof o->req.image, "%s", o->image);
  c.v.image = o->image;
  c.v.out = stdout;
  c.v.tty = !o->json && isatty(STDOUT_FILENO);
  char cid[96];
  snprintf(cid, sizeof cid, "edgepullctl-%s", o->req.id);
  struct mosquitto *m = mosquitto_new(cid, false, &c); /* keep subscriptions over a reconnect */
  if (m == NULL)
    return CTL_EXIT_FAIL;
  int r = credentials(m, o);
  if (r == 0 && o->ca_file[0] != '\0' &&
      mosquitto_tls_set(m, o->ca_file, NULL, NULL, NULL, NULL) != MOSQ_ERR_SUCCESS)
    r = usage_err("--ca-file cannot be used", o->ca_file);
  mosquitto_connect_callback_set(m, on_connect);
  mosquitto_subscribe_callback_set(m, on_subscribe);
  mosquitto_publish_callback_set(m, on_publish);
  mosquitto_message_callback_set(m, on_message);
  if (r == 0 && (mosquitto_connect(m, host, port, 30) != MOSQ_ERR_SUCCESS ||
                 !loop_until(m, &c, &c.connected, ep_mono_ms() + 10000))) {
    ctl_errorf("cannot connect to the broker %s", o->broker);
    r = CTL_EXIT_FAIL;
  }
  if (r == 0 && o->wait)
    r = subscribe_all(m, &c);
  if (r == 0) {
    ctl_dview_expect(&c.v, ep_mono_ms());
    r = send_deploy(m, &c);
  }
  if (r == 0 && o->wait) {
    r = follow(m, &c);
  } else if (r == 0) {
    if (o->json)
      printf("{\"event\":\"sent\",\"id\":\"%s\"}\n", o->req.id);
    else
      printf("%s\n", o->req.id);
  }
  mosquitto_disconnect(m);
  mosquitto_destroy(m);
  ctl_dview_free(&c.v);
  return r;
}

int ctl_deploy_main(int argc, char **argv) {
  struct dopts o;
  memset(&o, 0, sizeof o);
  o.timeout_s = 1800;
  int r = parse(argc, argv, &o);
  if (r >= 0)
    return r;
  if ((r = load_config(&o)) != 0)
    return r;
  if (o.broker[0] == '\0')
    return usage_err("no broker: give --broker or set broker in the configuration", NULL);
  if (!names_locality_valid(o.locality))
    return usage_err("no valid locality: give --locality or set it in the configuration",
                     o.locality[0] ? o.locality : NULL);
  mosquitto_lib_init();
  r = run(&o);
  mosquitto_lib_cleanup();
  return r;
}
