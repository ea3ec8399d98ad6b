/* Unit tests for plugin/metrics: the exposition's shape (HELP and TYPE
 * before every family, counters ending _total), label escaping, histogram
 * buckets cumulative up to +Inf with _sum and _count, the bounded peer
 * label, and counting from many threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "plugin/metrics/metrics.h"

#define EXPO_MAX (1 << 20)

static char *render(struct metrics *m, const struct metrics_sample *s) {
  struct ep_buf b;
  ep_buf_init(&b, EXPO_MAX);
  assert_int_equal(metrics_render(m, s, &b), 0);
  return ep_buf_steal(&b, NULL);
}

/* The value of the series written exactly as `series` (name and labels). */
static double value_of(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p)
    if (strncmp(p, series, n) == 0 && p[n] == ' ')
      return strtod(p + n + 1, NULL);
  fail_msg("no series %s", series);
  return -1;
}

static void test_label_escaping(void **state) {
  (void)state;
  struct ep_buf b;
  ep_buf_init(&b, 256);
  assert_int_equal(metrics_append_label(&b, "a\\b\"c\nd"), 0);
  assert_string_equal(b.data, "a\\\\b\\\"c\\nd");
  ep_buf_free(&b);

  struct metrics m;
  assert_int_equal(metrics_init(&m), 0);
  struct metrics_sample s = {.parent = "par\"ent"};
  metrics_add(metrics_peer_counter(&m, "no\\de"), 7);
  char *t = render(&m, &s);
  assert_non_null(strstr(t, "edgepull_peer_received_bytes_total{peer=\"no\\\\de\"} 7\n"));
  assert_non_null(strstr(t, "edgepull_parent_info{parent=\"par\\\"ent\"} 1\n"));
  free(t);
  metrics_destroy(&m);
}

/* Every sample line belongs to a family announced by HELP then TYPE just
 * before it; counters end in _total; no name is announced twice. */
static void test_format(void **state) {
  (void)state;
  struct metrics m;
  assert_int_equal(metrics_init(&m), 0);
  struct metrics_sample s = {.store_known = true,
                             .store_bytes = 5,
                             .mqtt_configured = true,
                             .mqtt_connected = true,
                             .rate_limit_bps = {4000000},
                             .rate_limited_ns = {0, 1500000000}};
  metrics_count_source(&m, METRICS_SRC_UPSTREAM, 123);
  metrics_count_source(&m, METRICS_SRC_LOCAL, 9);
  char *t = render(&m, &s);
  char family[128] = "", type[32] = "", seen[4096] = " ";
  int families = 0;
  for (char *line = strtok(t, "\n"); line != NULL; line = strtok(NULL, "\n")) {
    char name[128], word[32];
    if (sscanf(line, "# HELP %127s", name) == 1) {
      char key[132];
      snprintf(key, sizeof key, " %s ", name);
      assert_null(strstr(seen, key));
      strncat(seen, key + 1, sizeof seen - strlen(seen) - 1);
      snprintf(family, sizeof family, "%s", name);
      type[0] = '\0';
      families++;
      continue;
    }
    if (sscanf(line, "# TYPE %127s %31s", name, word) == 2) {
      assert_string_equal(name, family);
      snprintf(type, sizeof type, "%s", word);
      if (strcmp(type, "counter") == 0)
        assert_non_null(strstr(family, "_total"));
      continue;
    }
    assert_true(type[0] != '\0');
    assert_int_equal(strncmp(line, family, strlen(family)), 0);
    char c = line[strlen(family)];
    assert_true(c == ' ' || c == '{' || c == '_');
  }
  assert_true(families >= 20);
  free(t);
  atomic_store(&m.gc_short_bytes, 5000); /* what daemon_gc.c sets after a pass */
  atomic_store(&m.gc_held_bytes, 4000);
  t = render(&m, &s);
  assert_true(value_of(t, "edgepull_source_bytes_total{source=\"upstream\"}") == 123);
  assert_true(value_of(t, "edgepull_source_bytes_total{source=\"local\"}") == 9);
  assert_true(value_of(t, "edgepull_mqtt_connected") == 1);
  assert_true(value_of(t, "edgepull_rate_limit_bytes_per_second{direction=\"upstream\"}") ==
              4000000);
  assert_true(value_of(t, "edgepull_rate_limit_bytes_per_second{direction=\"peer\"}") == 0);
  assert_true(value_of(t, "edgepull_rate_limited_seconds_total{direction=\"peer\"}") == 1.5);
  assert_true(value_of(t, "edgepull_gc_evictions_total") == 0);
  assert_true(value_of(t, "edgepull_gc_over_quota_bytes") == 5000);
  assert_true(value_of(t, "edgepull_gc_held_bytes") == 4000);
  assert_null(strstr(t, "edgepull_parent_info{")); /* no parent: no series */
  free(t);
  metrics_destroy(&m);
}

static void test_histogram(void **state) {
  (void)state;
  struct metrics m;
  assert_int_equal(metrics_init(&m), 0);
  metrics_observe_us(&m.fetch_seconds, 5000);      /* 0.005 s: first bucket */
  metrics_observe_us(&m.fetch_seconds, 100000);    /* 0.1 s: exactly a bound, le is inclusive */
  metrics_observe_us(&m.fetch_seconds, 2000000);   /* 2 s */
  metrics_observe_us(&m.fetch_seconds, 900000000); /* 900 s: past every bound */
  metrics_observe_us(&m.snap_seconds[METRICS_SNAP_COMMIT], 30000);
  struct metrics_sample s = {0};
  char *t = render(&m, &s);
  const char *h = "edgepull_fetch_duration_seconds";
  char series[160];
  double prev = 0;
  for (size_t i = 0; i < METRICS_BUCKETS; i++) {
    snprintf(series, sizeof series, "%s_bucket{le=\"%g\"}", h, metrics_bucket_le[i]);
    double v = value_of(t, series);
    assert_true(v >= prev); /* cumulative */
    prev = v;
  }
  assert_true(value_of(t, "edgepull_fetch_duration_seconds_bucket{le=\"0.01\"}") == 1);
  assert_true(value_of(t, "edgepull_fetch_duration_seconds_bucket{le=\"0.1\"}") == 2);
  assert_true(value_of(t, "edgepull_fetch_duration_seconds_bucket{le=\"1\"}") == 2);
  assert_true(value_of(t, "edgepull_fetch_duration_seconds_bucket{le=\"2.5\"}") == 3);
  assert_true(value_of(t, "edgepull_fetch_duration_seconds_bucket{le=\"300\"}") == 3);
  assert_true(value_of(t, "edgepull_fetch_duration_seconds_bucket{le=\"+Inf\"}") == 4);
  assert_true(value_of(t, "edgepull_fetch_duration_seconds_count") == 4);
  assert_float_equal(value_of(t, "edgepull_fetch_duration_seconds_sum"), 902.105, 1e-6);
  assert_true(value_of(t, "edgepull_snapshot_duration_seconds_bucket{op=\"commit\",le=\"0.05\"}") ==
              1);
  assert_true(value_of(t, "edgepull_snapshot_duration_seconds_count{op=\"commit\"}") == 1);
  assert_true(value_of(t, "edgepull_snapshot_duration_seconds_count{op=\"prepare\"}") == 0);
  free(t);
  metrics_destroy(&m);
}

static void test_peer_bound(void **state) {
  (void)state;
  struct metrics m;
  assert_int_equal(metrics_init(&m), 0);
  char id[32];
  for (int i = 0; i < METRICS_PEERS_MAX + 10; i++) {
    snprintf(id, sizeof id, "node-%d", i);
    metrics_add(metrics_peer_counter(&m, id), 1);
    metrics_add(metrics_peer_counter(&m, id), 1); /* the same slot again */
  }
  struct metrics_sample s = {0};
  char *t = render(&m, &s);
  assert_true(value_of(t, "edgepull_peer_received_bytes_total{peer=\"node-0\"}") == 2);
  assert_true(value_of(t, "edgepull_peer_received_bytes_total{peer=\"node-31\"}") == 2);
  assert_null(strstr(t, "peer=\"node-32\""));
  assert_true(value_of(t, "edgepull_peer_received_bytes_total{peer=\"_other\"}") == 20);
  free(t);
  metrics_destroy(&m);
  assert_null(metrics_peer_counter(NULL, "x"));
  metrics_count_source(NULL, METRICS_SRC_PEER, 1); /* no metrics: nothing counted, no crash */
}

struct race {
  struct metrics *m;
  int id;
};

static void *count_thread(void *arg) {
  struct race *r = arg;
  char id[32];
  for (int i = 0; i < 10000; i++) {
    snprintf(id, sizeof id, "n%d", i % 8);
    metrics_add(metrics_peer_counter(r->m, id), 1);
    metrics_count_source(r->m, METRICS_SRC_PEER, 2);
    metrics_observe_us(&r->m->unpack_seconds, (uint64_t)i);
  }
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  struct metrics m;
  assert_int_equal(metrics_init(&m), 0);
  pthread_t t[4];
  struct race r[4];
  for (int i = 0; i < 4; i++) {
    r[i] = (struct race){&m, i};
    assert_int_equal(pthread_create(&t[i], NULL, count_thread, &r[i]), 0);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  struct metrics_sample s = {0};
  char *txt = render(&m, &s);
  assert_true(value_of(txt, "edgepull_source_bytes_total{source=\"peer\"}") == 80000);
  assert_true(value_of(txt, "edgepull_unpack_duration_seconds_count") == 40000);
  for (int i = 0; i < 8; i++) {
    char series[96];
    snprintf(series, sizeof series, "edgepull_peer_received_bytes_total{peer=\"n%d\"}", i);
    assert_true(value_of(txt, series) == 5000); /* one slot per node, never two */
  }
  assert_null(strstr(txt, "{peer=\"_other\"}"));
  free(txt);
  metrics_destroy(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_label_escaping), cmocka_unit_test(test_format),
      cmocka_unit_test(test_histogram),      cmocka_unit_test(test_peer_bound),
      cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
