/* The coordinator's MQTT client: libmosquitto on its own network thread
 * (mosquitto_loop_start), reconnecting with exponential backoff, feeding
 * every message to the coord core and publishing what it decides. */
#ifndef EP_COORDINATOR_MQTT_H
#define EP_COORDINATOR_MQTT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "coordinator/coord.h"
#include "coordinator/opts.h"

struct coord_mqtt;

/* Creates the client (not connected yet). o must outlive it. */
int coord_mqtt_new(const struct coord_opts *o, struct coord_mqtt **out, ep_err *err);
/* coord_publish_fn for coord_config.publish, ud = the struct coord_mqtt. */
int coord_mqtt_publish(const char *topic, const void *payload, size_t len, void *ud);
/* Starts the network thread and the first connection attempt; messages go
 * to c from then on. A broker that is not reachable yet is retried. */
int coord_mqtt_start(struct coord_mqtt *m, coord *c, ep_err *err);
/* Called from the main thread every tick: when the broker has been away
 * for a minute, restarts the network thread (libmosquitto ends it for good
 * on some errors, a failed DNS lookup or TLS handshake among them). */
int coord_mqtt_watchdog(struct coord_mqtt *m, int64_t now_ms); /* -1: client dead */
/* Disconnects, joins the thread, frees. */
void coord_mqtt_free(struct coord_mqtt *m);
/* Monotonic milliseconds, the clock coord_* is driven with. */
int64_t coord_mqtt_now_ms(void);

#endif
