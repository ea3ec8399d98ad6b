/* The Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/). Written
 * by hand: a few dozen lines of printf, where the C client library
 * (libprom, not in Debian) would bring its own registry and a thread. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "plugin/metrics/metrics.h"

__attribute__((format(printf, 2, 3))) static int put(struct ep_buf *out, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof line)
    return -EP_EINTERNAL;
  return ep_buf_append(out, line, (size_t)n);
}

static int lit(struct ep_buf *out, const char *s) {
  return ep_buf_append(out, s, strlen(s));
}

int metrics_append_label(struct ep_buf *out, const char *v) {
  int r = 0;
  for (const char *p = v; *p != '\0' && r == 0; p++) {
    const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
    r = esc != NULL ? ep_buf_append(out, esc, 2) : ep_buf_append(out, p, 1);
  }
  return r;
}

static int head(struct ep_buf *out, const char *name, const char *type, const char *help) {
  return put(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static uint64_t ld(atomic_uint_least64_t *c) {
  return atomic_load_explicit(c, memory_order_relaxed);
}

static int scalar(struct ep_buf *out, const char *name, const char *type, const char *help,
                  uint64_t v) {
  int r = head(out, name, type, help);
  return r < 0 ? r : put(out, "%s %llu\n", name, (unsigned long long)v);
}

/* One histogram's series; label is `key="value",` or "" (values here are
 * our own constants, never escaped). */
static int hist(struct ep_buf *out, const char *name, const char *label, struct metrics_hist *h) {
  uint64_t cum = 0;
  int r = 0;
  for (size_t i = 0; i <= METRICS_BUCKETS && r == 0; i++) {
    cum += ld(&h->bucket[i]);
    if (i < METRICS_BUCKETS)
      r = put(out, "%s_bucket{%sle=\"%g\"} %llu\n", name, label, metrics_bucket_le[i],
              (unsigned long long)cum);
    else
      r = put(out, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, label, (unsigned long long)cum);
  }
  size_t n = strlen(label);
  char braces[80] = "";
  if (n > 0) /* `k="v",` -> `{k="v"}` */
    snprintf(braces, sizeof braces, "{%.*s}", (int)(n - 1), label);
  if (r == 0)
    r = put(out, "%s_sum%s %.6f\n%s_count%s %llu\n", name, braces, (double)ld(&h->sum_us) / 1e6,
            name, braces, (unsigned long long)cum);
  return r;
}

static int render_bytes(struct metrics *m, struct ep_buf *out) {
  static const char *const names[METRICS_SRC_N] = {"local", "parent", "peer", "upstream"};
  int r = head(out, "edgepull_source_bytes_total", "counter",
               "Blob bytes by source: local = served from the store on the local endpoint; "
               "parent, peer, upstream = received by fetches from there.");
  for (size_t i = 0; i < METRICS_SRC_N && r == 0; i++)
    r = put(out, "edgepull_source_bytes_total{source=\"%s\"} %llu\n", names[i],
            (unsigned long long)ld(&m->source_bytes[i]));
  if (r == 0)
    r = head(out, "edgepull_peer_received_bytes_total", "counter",
             "Blob bytes received from each peer node (parent included); past 32 nodes the "
             "rest count as peer=\"_other\".");
  for (size_t i = 0; i < METRICS_PEERS_MAX && r == 0; i++) {
    struct metrics_peer *p = &m->peers[i];
    if (!atomic_load_explicit(&p->ready, memory_order_acquire))
      break;
    r = lit(out, "edgepull_peer_received_bytes_total{peer=\"");
    if (r == 0)
      r = metrics_append_label(out, p->node);
    if (r == 0)
      r = put(out, "\"} %llu\n", (unsigned long long)ld(&p->bytes));
  }
  uint64_t other = ld(&m->other_peer_bytes);
  if (r == 0 && other > 0)
    r = put(out, "edgepull_peer_received_bytes_total{peer=\"_other\"} %llu\n",
            (unsigned long long)other);
  if (r == 0)
    r = scalar(out, "edgepull_peer_served_bytes_total", "counter",
               "Blob bytes sent to other nodes from the peer endpoint.", ld(&m->served_peer_bytes));
  return r;
}

static int render_fetch(struct metrics *m, const struct metrics_sample *s, struct ep_buf *out) {
  int r = scalar(out, "edgepull_cache_hits_total", "counter", "Blob GETs answered from the store.",
                 ld(&m->cache_hits));
  if (r == 0)
    r = scalar(out, "edgepull_cache_misses_total", "counter",
               "Blob GETs that joined or started a fetch.", ld(&m->cache_misses));
  if (r == 0)
    r = scalar(out, "edgepull_fetches_in_flight", "gauge", "Blob fetches running now.",
               s->fetches_in_flight);
  if (r == 0)
    r = scalar(out, "edgepull_fetches_started_total", "counter", "Blob fetches started.",
               s->fetches_started);
  if (r == 0)
    r = scalar(out, "edgepull_fetch_failures_total", "counter",
               "Blob fetches that ended without the blob.", ld(&m->fetch_failures));
  int64_t readers = atomic_load_explicit(&m->readers, memory_order_relaxed);
  if (r == 0)
    r = scalar(out, "edgepull_readers_in_flight", "gauge",
               "Responses streaming a blob that is being fetched.",
               readers > 0 ? (uint64_t)readers : 0);
  if (r == 0)
    r = head(out, "edgepull_fetch_duration_seconds", "histogram",
             "Duration of blob fetches that committed the blob.");
  if (r == 0)
    r = hist(out, "edgepull_fetch_duration_seconds", "", &m->fetch_seconds);
  if (r == 0)
    r = scalar(out, "edgepull_fetch_resumes_total", "counter",
               "Transfers that resumed a partial blob with a Range request.", ld(&m->resumes));
  if (r == 0)
    r = scalar(out, "edgepull_suspect_reports_total", "counter",
               "Peers marked suspect by this node's fetches: bytes that failed verification or "
               "broke the size bound.",
               ld(&m->suspects));
  if (r == 0)
    r = scalar(out, "edgepull_verification_failures_total", "counter",
               "Fetched blobs whose digest did not match (nothing committed).",
               ld(&m->verify_failures));
  return r;
}

static int render_store(struct metrics *m, const struct metrics_sample *s, struct ep_buf *out) {
  int r = 0;
  if (s->store_known) {
    r = scalar(out, "edgepull_store_size_bytes", "gauge",
               "Bytes of the complete blobs in the store.", s->store_bytes);
    if (r == 0)
      r = scalar(out, "edgepull_store_blobs", "gauge", "Complete blobs in the store.",
                 s->store_blobs);
    if (r == 0)
      r = scalar(out, "edgepull_store_free_bytes", "gauge",
                 "Free bytes on the store's file system (statvfs f_bfree).", s->store_free_bytes);
    if (r == 0)
      r = scalar(out, "edgepull_store_available_bytes", "gauge",
                 "Bytes the daemon may still write on the store's file system (statvfs f_bavail).",
                 s->store_avail_bytes);
  }
  if (r == 0)
    r = scalar(out, "edgepull_store_max_bytes", "gauge",
               "The disk GC's quota on the store (--store-max; 0 = none).", s->store_max);
  if (r == 0)
    r = scalar(out, "edgepull_store_min_free_bytes", "gauge",
               "Free space the disk GC keeps on the store's file system (--store-min-free; 0 = "
               "none).",
               s->store_min_free);
  if (r == 0)
    r = scalar(out, "edgepull_gc_evictions_total", "counter", "Blobs removed by the disk GC.",
               ld(&m->gc_evictions));
  if (r == 0)
    r = scalar(out, "edgepull_gc_evicted_bytes_total", "counter",
               "Bytes of the blobs removed by the disk GC.", ld(&m->gc_evicted_bytes));
  if (r == 0)
    r = scalar(out, "edgepull_gc_over_quota_bytes", "gauge",
               "Bytes the last disk GC pass could not remove of what the quota asked (the store "
               "stays over a watermark).",
               ld(&m->gc_short_bytes));
  if (r == 0)
    r = scalar(out, "edgepull_gc_held_bytes", "gauge",
               "Bytes the last disk GC pass kept only because they were in flight or being read.",
               ld(&m->gc_held_bytes));
  if (r == 0)
    r = scalar(out, "edgepull_gc_short_passes_total", "counter",
               "Disk GC passes that ended over a watermark.", ld(&m->gc_short_passes));
  return r;
}

static int render_snap(struct metrics *m, struct ep_buf *out) {
  static const char *const ops[METRICS_SNAP_N] = {"op=\"prepare\",", "op=\"commit\",",
                                                  "op=\"remove\","};
  int r = head(out, "edgepull_snapshot_duration_seconds", "histogram",
               "Snapshotter calls from containerd, by operation (_count is how many).");
  for (size_t i = 0; i < METRICS_SNAP_N && r == 0; i++)
    r = hist(out, "edgepull_snapshot_duration_seconds", ops[i], &m->snap_seconds[i]);
  if (r == 0)
    r = head(out, "edgepull_unpack_duration_seconds", "histogram",
             "Remote unpacks: layers unpacked by the snapshotter from the fetch engine "
             "(_count is how many succeeded).");
  if (r == 0)
    r = hist(out, "edgepull_unpack_duration_seconds", "", &m->unpack_seconds);
  if (r == 0)
    r = scalar(out, "edgepull_unpack_failures_total", "counter",
               "Remote unpacks that failed (containerd then fetches the layer itself).",
               ld(&m->unpack_failures));
  return r;
}

static int render_locality(const struct metrics_sample *s, struct ep_buf *out) {
  int r = scalar(out, "edgepull_mqtt_connected", "gauge",
                 "1 while connected to the locality's MQTT broker; 0 otherwise or standalone.",
                 s->mqtt_configured && s->mqtt_connected);
  if (r == 0)
    r = head(out, "edgepull_parent_info", "gauge",
             "The node's parent as the coordinator assigned it (no series while it has none).");
  if (r == 0 && s->parent != NULL && s->parent[0] != '\0') {
    r = lit(out, "edgepull_parent_info{parent=\"");
    if (r == 0)
      r = metrics_append_label(out, s->parent);
    if (r == 0)
      r = lit(out, "\"} 1\n");
  }
  return r;
}

/* Seconds summed over transfers: two transfers waiting one second each
 * count two. */
static int render_rates(const struct metrics_sample *s, struct ep_buf *out) {
  static const char *const dir[2] = {"upstream", "peer"};
  int r = head(out, "edgepull_rate_limit_bytes_per_second", "gauge",
               "Bandwidth cap shared by all transfers in a direction (0 = none): "
               "upstream = from registries, peer = served to peers.");
  for (size_t i = 0; i < 2 && r == 0; i++)
    r = put(out, "edgepull_rate_limit_bytes_per_second{direction=\"%s\"} %llu\n", dir[i],
            (unsigned long long)s->rate_limit_bps[i]);
  if (r == 0)
    r = head(out, "edgepull_rate_limited_seconds_total", "counter",
             "Time transfers waited for their direction's cap, summed over transfers.");
  for (size_t i = 0; i < 2 && r == 0; i++)
    r = put(out, "edgepull_rate_limited_seconds_total{direction=\"%s\"} %.6f\n", dir[i],
            (double)s->rate_limited_ns[i] / 1e9);
  return r;
}

int metrics_render(struct metrics *m, const struct metrics_sample *s, struct ep_buf *out) {
  int r = render_bytes(m, out);
  if (r == 0)
    r = render_fetch(m, s, out);
  if (r == 0)
    r = render_store(m, s, out);
  if (r == 0)
    r = render_snap(m, out);
  if (r == 0)
    r = render_locality(s, out);
  if (r == 0)
    r = render_rates(s, out);
  return r;
}
