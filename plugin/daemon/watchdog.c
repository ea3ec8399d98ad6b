/* The watchdog thread.
 *
 * A tick every half interval (what sd_watchdog_enabled(3) recommends) runs
 * the checks in order; the first failure ends the tick without a ping.
 * STATUS= changes only on a transition (healthy -> failing, another check
 * failing, failing -> healthy), so `systemctl status` shows the reason
 * while the log does not fill with one line per tick. Each check gets a
 * quarter of the interval, capped at WATCHDOG_CHECK_MS, so a tick is over
 * well before the next one.
 *
 * The thread sleeps on a condition variable on CLOCK_MONOTONIC, which
 * watchdog_stop signals: stopping never waits out a tick period. */
#include "plugin/daemon/watchdog.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/sd_proto.h"

#define WATCHDOG_CHECK_MS 5000

struct watchdog {
  struct watchdog_deps d;
  int64_t period_ms;
  int timeout_ms;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  bool stopping; /* under lock */
  int failing;   /* the check that failed last tick, -1 = healthy; watchdog thread only */
};

/* Runs the checks: -1 when all pass, else the index of the first that
 * failed; status is the STATUS= line either way. */
static int run_checks(struct watchdog *w, char *status, size_t len) {
  for (size_t i = 0; i < w->d.nchecks; i++) {
    const struct watchdog_check *c = &w->d.checks[i];
    ep_err why = {0};
    if (c->check(c->ud, ep_mono_ms(), w->timeout_ms, &why) < 0) {
      /* A STATUS= line cut short is fine; testing the count says so to gcc. */
      if (snprintf(status, len, "%s: %s", c->failing, why.msg) >= (int)len)
        status[len - 1] = '\0';
      return (int)i;
    }
  }
  snprintf(status, len, "%s", w->d.status_ok);
  return -1;
}

static void tick(struct watchdog *w) {
  char status[WATCHDOG_STATUS_MAX * 2];
  int failing = run_checks(w, status, sizeof status);
  if (failing < 0)
    sdp_notify("WATCHDOG=1");
  if (failing == w->failing)
    return; /* the same state: its STATUS= is out already */
  if (failing < 0)
    ep_log_info("watchdog: healthy again, pinging systemd");
  else
    ep_log_warn("watchdog: %s; withholding WATCHDOG=1", status);
  sdp_notifyf("STATUS=%s", status);
  w->failing = failing;
}

static void *watchdog_thread(void *arg) {
  struct watchdog *w = arg;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  pthread_mutex_lock(&w->lock);
  while (!w->stopping) {
    pthread_mutex_unlock(&w->lock);
    tick(w);
    pthread_mutex_lock(&w->lock);
    int64_t ns = next.tv_nsec + (w->period_ms % 1000) * 1000000;
    next.tv_sec += (time_t)(w->period_ms / 1000 + ns / 1000000000);
    next.tv_nsec = (long)(ns % 1000000000);
    while (!w->stopping && pthread_cond_timedwait(&w->wake, &w->lock, &next) == 0)
      ; /* woken early, not by stop: sleep on */
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

int watchdog_start(const struct watchdog_deps *deps, watchdog **out, ep_err *err) {
  *out = NULL;
  uint64_t usec = 0;
  if (sdp_watchdog_enabled(&usec) <= 0 || usec == 0)
    return 0;
  struct watchdog *w = calloc(1, sizeof *w);
  if (w == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  w->d = *deps;
  w->period_ms = (int64_t)(usec / 2000) > 0 ? (int64_t)(usec / 2000) : 1;
  w->timeout_ms = (int)(usec / 4000 < WATCHDOG_CHECK_MS ? usec / 4000 : WATCHDOG_CHECK_MS);
  if (w->timeout_ms <= 0)
    w->timeout_ms = 1;
  w->failing = -1; /* healthy: READY=1 came with its STATUS= */
  int rc = pthread_mutex_init(&w->lock, NULL);
  if (rc == 0 && (rc = ep_cond_init_mono(&w->wake)) != 0)
    pthread_mutex_destroy(&w->lock);
  if (rc != 0) {
    free(w);
    return ep_error(err, EP_EINTERNAL, "watchdog: cannot create its lock: error %d", rc);
  }
  rc = pthread_create(&w->thread, NULL, watchdog_thread, w);
  if (rc != 0) {
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
    return ep_error(err, EP_EINTERNAL, "cannot start the watchdog thread: error %d", rc);
  }
  ep_log_info("watchdog: pinging systemd every %lld ms while healthy", (long long)w->period_ms);
  *out = w;
  return 0;
}

void watchdog_stop(watchdog *w) {
  if (w == NULL)
    return;
  pthread_mutex_lock(&w->lock);
  w->stopping = true;
  pthread_cond_broadcast(&w->wake);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  pthread_cond_destroy(&w->wake);
  pthread_mutex_destroy(&w->lock);
  free(w);
}
