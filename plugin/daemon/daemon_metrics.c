/* GET /metrics: the counters the modules keep in d->metrics, and the
 * gauges sampled at scrape time (the store's size from its directory, free
 * space from statvfs, fetches in flight, the broker connection, the
 * parent). A scrape runs on an endpoint's connection thread. */
#include <pthread.h>
#include <sys/statvfs.h>

#include "common/log.h"
#include "plugin/agent/agent.h"
#include "plugin/daemon/daemon.h"

static int add_blob(const digest_t *dg, uint64_t size, void *ud) {
  struct metrics_sample *s = ud;
  (void)dg;
  s->store_blobs++;
  s->store_bytes += size;
  return 0;
}

/* The directory, not the index: it is what the disk holds, blobs recorded
 * or not (one fstatat per blob: thousands take milliseconds). */
static void sample_store(struct edgepulld *d, struct metrics_sample *s) {
  ep_err e = {0};
  struct statvfs vfs;
  if (d->st == NULL || store_foreach_blob(d->st, add_blob, s, &e) < 0 ||
      fstatvfs(store_dirfd(d->st), &vfs) < 0) {
    if (e.msg[0] != '\0')
      ep_log_debug("metrics: %s", e.msg);
    return;
  }
  s->store_free_bytes = (uint64_t)vfs.f_bfree * vfs.f_frsize;
  s->store_avail_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
  s->store_known = true;
}

int edgepulld_render_metrics(void *ud, struct ep_buf *out) {
  struct edgepulld *d = ud;
  struct metrics_sample s = {.mqtt_configured = d->cfg.broker[0] != '\0'};
  if (d->fetch != NULL)
    fetcher_counts(d->fetch, &s.fetches_in_flight, &s.fetches_started);
  sample_store(d, &s);
  s.store_max = d->gc_lim.store_max;
  s.store_min_free = d->gc_lim.min_free;
  struct proto_parent p = {0};
  pthread_mutex_lock(&d->agent_mu);
  s.mqtt_connected = agent_connected(d->agent);
  bool has = agent_parent(d->agent, &p) && p.has_parent;
  pthread_mutex_unlock(&d->agent_mu);
  s.parent = has ? p.parent : NULL;
  s.rate_limit_bps[0] = ep_ratelimit_rate(d->up_rate);
  s.rate_limit_bps[1] = ep_ratelimit_rate(d->peer_rate);
  s.rate_limited_ns[0] = ep_ratelimit_throttled_ns(d->up_rate);
  s.rate_limited_ns[1] = ep_ratelimit_throttled_ns(d->peer_rate);
  return metrics_render(&d->metrics, &s, out);
}
