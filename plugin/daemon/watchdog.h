/* The systemd watchdog: while systemd asks for one (WatchdogSec=, seen as
 * WATCHDOG_USEC), a thread sends WATCHDOG=1 at half the interval, but only
 * after every health check passed. A failing check withholds the ping and
 * says why in STATUS=; systemd then kills and restarts the daemon once the
 * interval passes without a ping. */
#ifndef EP_PLUGIN_WATCHDOG_H
#define EP_PLUGIN_WATCHDOG_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct watchdog watchdog;

struct watchdog_check {
  const char *failing; /* STATUS= prefix when it fails: "fetch engine stuck" */
  /* 0 when healthy, else <0 with why; must return within timeout_ms. */
  int (*check)(void *ud, int64_t now_ms, int timeout_ms, ep_err *why);
  void *ud;
};

#define WATCHDOG_CHECKS_MAX 4
#define WATCHDOG_STATUS_MAX 200

struct watchdog_deps {
  struct watchdog_check checks[WATCHDOG_CHECKS_MAX];
  size_t nchecks;
  char status_ok[WATCHDOG_STATUS_MAX]; /* STATUS= once healthy again */
};

/* Starts the pinging thread when systemd enabled the watchdog for this
 * process (sd_watchdog_enabled); otherwise *out is NULL and 0 is
 * returned. deps is copied. */
int watchdog_start(const struct watchdog_deps *deps, watchdog **out, ep_err *err);
/* Stops the thread (it finishes the tick in progress) and frees; NULL is a
 * no-op. */
void watchdog_stop(watchdog *w);

#endif
