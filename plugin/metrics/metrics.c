/* The counters: lock-free adds, and a mutex only to claim a peer's slot. */
#include "plugin/metrics/metrics.h"

#include <string.h>

/* From a cached blob's milliseconds to a cold gigabyte over a slow link. */
const double metrics_bucket_le[METRICS_BUCKETS] = {0.01, 0.05, 0.1, 0.25, 0.5, 1,
                                                   2.5,  5,    10,  30,   60,  300};

int metrics_init(struct metrics *m) {
  memset(m, 0, sizeof *m); /* all-zero is a valid atomic zero on every target we build */
  return pthread_mutex_init(&m->peers_mu, NULL) == 0 ? 0 : -1;
}

void metrics_destroy(struct metrics *m) {
  pthread_mutex_destroy(&m->peers_mu);
}

void metrics_count_source(struct metrics *m, enum metrics_source src, uint64_t n) {
  if (m != NULL && src < METRICS_SRC_N)
    metrics_add(&m->source_bytes[src], n);
}

static atomic_uint_least64_t *find_peer(struct metrics *m, const char *node) {
  for (size_t i = 0; i < METRICS_PEERS_MAX; i++) {
    struct metrics_peer *p = &m->peers[i];
    if (!atomic_load_explicit(&p->ready, memory_order_acquire))
      return NULL; /* slots are claimed in order: the rest are free */
    if (strcmp(p->node, node) == 0)
      return &p->bytes;
  }
  return NULL;
}

atomic_uint_least64_t *metrics_peer_counter(struct metrics *m, const char *node) {
  if (m == NULL)
    return NULL;
  if (node == NULL || node[0] == '\0' || strlen(node) >= METRICS_PEER_ID_MAX)
    return &m->other_peer_bytes;
  atomic_uint_least64_t *c = find_peer(m, node);
  if (c != NULL)
    return c;
  pthread_mutex_lock(&m->peers_mu);
  c = find_peer(m, node); /* another thread may have claimed it meanwhile */
  for (size_t i = 0; c == NULL && i < METRICS_PEERS_MAX; i++) {
    struct metrics_peer *p = &m->peers[i];
    if (atomic_load_explicit(&p->ready, memory_order_relaxed))
      continue;
    strcpy(p->node, node);
    atomic_store_explicit(&p->ready, 1, memory_order_release);
    c = &p->bytes;
  }
  pthread_mutex_unlock(&m->peers_mu);
  return c != NULL ? c : &m->other_peer_bytes;
}

void metrics_observe_us(struct metrics_hist *h, uint64_t us) {
  if (h == NULL)
    return;
  double s = (double)us / 1e6;
  size_t i = 0;
  while (i < METRICS_BUCKETS && s > metrics_bucket_le[i])
    i++;
  metrics_add(&h->bucket[i], 1);
  metrics_add(&h->sum_us, us);
}
