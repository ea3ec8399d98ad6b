/* edgepull-coordinator: wiring only. Options, the coordinator core, the
 * MQTT client on its own thread; the main thread ticks the core once a
 * second and takes SIGTERM/SIGINT synchronously (sigtimedwait), so every
 * other thread starts with them blocked. */
#include <mosquitto.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "common/log.h"
#include "coordinator/coord.h"
#include "coordinator/mqtt.h"
#include "coordinator/opts.h"

/* Returns the signal that ended the loop, or 0 when the MQTT client died. */
static int run_loop(coord *c, struct coord_mqtt *m, const sigset_t *set) {
  for (;;) {
    struct timespec tick = {.tv_sec = 1};
    int sig = sigtimedwait(set, NULL, &tick);
    if (sig == SIGTERM || sig == SIGINT)
      return sig;
    if (sig == SIGHUP)
      ep_log_info("SIGHUP: nothing to reload; restart to apply new options");
    int64_t now = coord_mqtt_now_ms();
    coord_tick(c, now);
    if (coord_mqtt_watchdog(m, now) < 0)
      return 0;
  }
}

static int run(const struct coord_opts *o, const sigset_t *set) {
  ep_err e = {0};
  struct coord_mqtt *m = NULL;
  coord *c = NULL;
  if (coord_mqtt_new(o, &m, &e) < 0) {
    fprintf(stderr, "edgepull-coordinator: %s\n", e.msg);
    return 2;
  }
  struct coord_config cfg = {
      .locality = o->locality,
      .gateway = o->gateway,
      .strategy = o->strategy,
      .k = o->k,
      .heartbeat_timeout_s = o->heartbeat_timeout,
      .publish = coord_mqtt_publish,
      .ud = m,
  };
  int rc = 1;
  if (coord_new(&cfg, &c, &e) < 0 || coord_mqtt_start(m, c, &e) < 0) {
    ep_log_err("%s", e.msg);
    goto out;
  }
  ep_log_info("edgepull-coordinator %s for locality %s, gateway %s, topology %s%.0u, broker "
              "%s:%u%s",
              EDGEPULL_VERSION, o->locality, o->gateway,
              o->strategy == TOPO_CHAIN ? "chain" : "tree:", o->strategy == TOPO_CHAIN ? 0u : o->k,
              o->broker_host, o->broker_port, o->ca_file[0] ? " (TLS)" : "");
  int sig = run_loop(c, m, set);
  if (sig != 0) {
    ep_log_info("received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    rc = 0;
  }
out:
  coord_mqtt_free(m); /* joins the network thread before the core goes */
  coord_free(c);
  return rc;
}

int main(int argc, char **argv) {
  struct coord_opts o;
  ep_err e = {0};
  int r = coord_opts_parse(&o, argc, argv, stdout, &e);
  if (r != 0) {
    if (r < 0)
      fprintf(stderr, "edgepull-coordinator: %s\n", e.msg);
    coord_opts_clear(&o);
    return r == 1 ? 0 : 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  mosquitto_lib_init();
  r = run(&o, &set);
  mosquitto_lib_cleanup();
  coord_opts_clear(&o);
  return r;
}
