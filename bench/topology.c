/* ep_bench_topology: how long the coordinator's topology computations take
 * (locality/topo.c), for chain and tree:K at 1,000 / 10,000 / 100,000 nodes:
 * building a locality by sequential joins, a rebuild from scratch of a
 * locality built that way, and 1,000 random leaves at 10,000 nodes (each
 * re-attaching the leaver's orphans). Each figure is the median of --runs
 * runs (default 5), in milliseconds, printed as markdown tables. Link speeds
 * are drawn from a fixed seed so runs are comparable. topo_check() runs on
 * every result outside the timed part, reported as PASS/FAIL lines; the
 * benchmark asserts no times. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "locality/topo.h"

#define MAX_RUNS 51

struct strategy {
  const char *name;
  enum topo_strategy st;
  unsigned k;
};

static const struct strategy strategies[] = {{"chain", TOPO_CHAIN, 1},
                                             {"tree:2", TOPO_TREE, 2},
                                             {"tree:4", TOPO_TREE, 4},
                                             {"tree:8", TOPO_TREE, 8},
                                             {"tree:16", TOPO_TREE, 16}};
static const unsigned sizes[] = {1000, 10000, 100000};

static uint64_t next_rand(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void verify(const topo *t, const char *what, const char *strategy, unsigned n,
                   int *failures) {
  ep_err e = {0};
  if (topo_check(t, &e) != 0) {
    printf("FAIL %s %s n=%u: %s\n", what, strategy, n, e.msg);
    (*failures)++;
  }
}

/* A root and n-1 joined nodes; returns the time the joins took. */
static topo *build(const struct strategy *s, unsigned n, double *ms) {
  topo *t = topo_new(s->st, s->k);
  ep_err e = {0};
  uint64_t rs = 42;
  char id[32];
  if (t == NULL || topo_set_root(t, "gateway", 10000, &e) != 0) {
    fprintf(stderr, "ep_bench_topology: cannot create the topology\n");
    exit(1);
  }
  double t0 = now_ms();
  for (unsigned i = 1; i < n; i++) {
    snprintf(id, sizeof(id), "node-%06u", i);
    if (topo_join(t, id, 10 + (uint32_t)(next_rand(&rs) % 10000), &e) != 0) {
      fprintf(stderr, "ep_bench_topology: join: %s\n", e.msg);
      exit(1);
    }
  }
  *ms = now_ms() - t0;
  return t;
}

static unsigned max_depth(const topo *t, unsigned n) {
  unsigned d = 0;
  char id[32];
  for (unsigned i = 1; i < n; i++) {
    snprintf(id, sizeof(id), "node-%06u", i);
    unsigned x = topo_depth(t, id);
    d = x > d ? x : d;
  }
  return d;
}

static double time_leaves(const struct strategy *s, unsigned n, unsigned leaves, int *failures) {
  double ms;
  topo *t = build(s, n, &ms);
  uint64_t rs = 7;
  char *gone = calloc(n, 1);
  char id[32];
  ep_err e = {0};
  if (gone == NULL)
    exit(1);
  double t0 = now_ms();
  for (unsigned i = 0; i < leaves; i++) {
    unsigned v;
    do
      v = 1 + (unsigned)(next_rand(&rs) % (n - 1));
    while (gone[v]);
    gone[v] = 1;
    snprintf(id, sizeof(id), "node-%06u", v);
    topo_leave(t, id, &e);
  }
  ms = now_ms() - t0;
  verify(t, "leaves", s->name, n, failures);
  free(gone);
  topo_free(t);
  return ms;
}

static void bench_build(int runs, int *failures) {
  printf("| strategy | nodes N | N joins (ms) | per join (us) | rebuild (ms) | max depth |\n");
  printf("| --- | ---: | ---: | ---: | ---: | ---: |\n");
  for (size_t si = 0; si < sizeof(strategies) / sizeof(strategies[0]); si++) {
    const struct strategy *s = &strategies[si];
    for (size_t ni = 0; ni < sizeof(sizes) / sizeof(sizes[0]); ni++) {
      unsigned n = sizes[ni], depth = 0;
      double join[MAX_RUNS], rebuild[MAX_RUNS];
      for (int r = 0; r < runs; r++) {
        topo *t = build(s, n, &join[r]);
        verify(t, "joins", s->name, n, failures);
        double t0 = now_ms();
        topo_rebuild(t);
        rebuild[r] = now_ms() - t0;
        verify(t, "rebuild", s->name, n, failures);
        depth = max_depth(t, n);
        topo_free(t);
      }
      double jm = median(join, runs);
      printf("| %s | %u | %.2f | %.3f | %.2f | %u |\n", s->name, n, jm, jm * 1e3 / (n - 1),
             median(rebuild, runs), depth);
    }
  }
}

static void bench_leaves(int runs, int *failures) {
  printf("\n| strategy | 1,000 random leaves at 10,000 nodes (ms) |\n");
  printf("| --- | ---: |\n");
  for (size_t si = 0; si < sizeof(strategies) / sizeof(strategies[0]); si++) {
    double v[MAX_RUNS];
    for (int r = 0; r < runs; r++)
      v[r] = time_leaves(&strategies[si], 10000, 1000, failures);
    double m = median(v, runs);
    printf("| %s | %.2f |\n", strategies[si].name, m);
  }
}

int main(int argc, char **argv) {
  int runs = 5;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
      runs = atoi(argv[++i]);
    } else {
      fprintf(stderr, "usage: %s [--runs N]   (1 <= N <= %d, default 5)\n", argv[0], MAX_RUNS);
      return 2;
    }
  }
  if (runs < 1 || runs > MAX_RUNS) {
    fprintf(stderr, "ep_bench_topology: --runs must be 1 to %d\n", MAX_RUNS);
    return 2;
  }
  printf("ep_bench_topology: median of %d runs\n\n", runs);
  int failures = 0;
  bench_build(runs, &failures);
  bench_leaves(runs, &failures);
  printf("\n%s topology checks\n", failures == 0 ? "PASS" : "FAIL");
  return failures == 0 ? 0 : 1;
}
