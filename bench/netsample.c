/* ep_bench_netsample: interface throughput of processes in other network
 * namespaces, sampled at a fixed rate into a CSV file for the locality
 * benchmark.
 *
 * Each column is NAME=PID:IFACE:rx|tx and reads /proc/PID/net/dev. Ticks are
 * absolute CLOCK_MONOTONIC deadlines start + k/hz, so the period does not
 * drift; a late wake-up skips the ticks it missed rather than bunching rows.
 * Each column's rate is its byte delta over the time between its own two
 * reads (taken at the midpoint of each read), so a slow read or a late tick
 * does not skew the figure. A column whose process or interface is gone, or
 * whose counter went backwards, prints an empty cell and takes a new
 * baseline on its next good read. Rows are flushed one by one so a script
 * can tail the file. Nothing goes to stdout except --help. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/netdev.h"

#define PROG "ep_bench_netsample"
#define MAX_COLUMNS 256
#define MAX_SECONDS 10000000UL /* ~115 days; keeps tick arithmetic far from overflow */
#define NS_PER_S 1000000000LL
#define ALL_FAIL_NS (2 * NS_PER_S)

/* The one mutable global: a signal handler can reach nothing else. It is only
 * set by the handler and read by the sampling loop. */
static volatile sig_atomic_t stop_requested;

struct column {
  struct netdev_spec spec;
  bool have_prev;
  uint64_t prev_bytes;
  int64_t prev_ns;
  int last_rc; /* last reported read status, to log changes only */
};

struct sampler {
  unsigned long hz;
  unsigned long max_seconds;
  const char *out_path;
  const char *ready_path;
  struct column *cols;
  size_t ncols;
  FILE *out;
  int64_t start_ns;
  int64_t last_ok_ns; /* last time any column read successfully */
  bool ready_done;
};

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void usage(FILE *f) {
  fprintf(f, "usage: " PROG " [--hz N] [--max-seconds S] [--ready FILE] --out FILE SPEC...\n"
             "  SPEC         NAME=PID:IFACE:rx|tx, one CSV column: the throughput of IFACE\n"
             "               in the network namespace of process PID, in Mbit/s\n"
             "               (NAME: [A-Za-z0-9_.-]{1,32}, unique)\n"
             "  --hz N       samples per second, 1..1000 (default 20)\n"
             "  --max-seconds S  stop after S seconds (default 3600)\n"
             "  --out FILE   the CSV: t_s,NAME...; one row per interval, t_s at its end\n"
             "  --ready FILE create FILE once the first baseline read succeeded\n"
             "Stops cleanly on SIGTERM/SIGINT, or when every column has failed for 2 s.\n");
}

/* Strict decimal in [min, max]: no sign, no spaces, no trailing garbage. */
static int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out) {
  if (s == NULL || s[0] < '0' || s[0] > '9')
    return -EINVAL;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max)
    return -EINVAL;
  *out = (unsigned long)v;
  return 0;
}

static int add_columns(struct sampler *s, char **specs, int n) {
  if (n <= 0 || n > MAX_COLUMNS) {
    fprintf(stderr, PROG ": need 1..%d column specs\n", MAX_COLUMNS);
    return -EINVAL;
  }
  s->cols = calloc((size_t)n, sizeof(*s->cols));
  if (s->cols == NULL) {
    fprintf(stderr, PROG ": out of memory\n");
    return -ENOMEM;
  }
  for (int i = 0; i < n; i++) {
    struct column *c = &s->cols[i];
    if (netdev_spec_parse(specs[i], &c->spec) < 0) {
      fprintf(stderr, PROG ": bad column spec '%s' (want NAME=PID:IFACE:rx|tx)\n", specs[i]);
      return -EINVAL;
    }
    for (int j = 0; j < i; j++) {
      if (strcmp(s->cols[j].spec.name, c->spec.name) == 0) {
        fprintf(stderr, PROG ": duplicate column name '%s'\n", c->spec.name);
        return -EINVAL;
      }
    }
    s->ncols++;
  }
  return 0;
}

/* 0 to run, 1 after --help, -EINVAL on bad usage (already reported). */
static int parse_args(int argc, char **argv, struct sampler *s) {
  static const struct option opts[] = {
      {"hz", required_argument, NULL, 'h'},  {"max-seconds", required_argument, NULL, 'm'},
      {"out", required_argument, NULL, 'o'}, {"ready", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'H'},      {NULL, 0, NULL, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (opt) {
    case 'h':
      if (parse_ulong(optarg, 1, 1000, &s->hz) < 0) {
        fprintf(stderr, PROG ": --hz wants an integer in 1..1000, not '%s'\n", optarg);
        return -EINVAL;
      }
      break;
    case 'm':
      if (parse_ulong(optarg, 1, MAX_SECONDS, &s->max_seconds) < 0) {
        fprintf(stderr, PROG ": --max-seconds wants an integer in 1..%lu, not '%s'\n", MAX_SECONDS,
                optarg);
        return -EINVAL;
      }
      break;
    case 'o':
      s->out_path = optarg;
      break;
    case 'r':
      s->ready_path = optarg;
      break;
    case 'H':
      usage(stdout);
      return 1;
    default:
      usage(stderr);
      return -EINVAL;
    }
  }
  if (s->out_path == NULL || s->out_path[0] == '\0') {
    fprintf(stderr, PROG ": --out FILE is required\n");
    usage(stderr);
    return -EINVAL;
  }
  return add_columns(s, argv + optind, argc - optind);
}

static void report_status(struct column *c, int rc) {
  if (rc == c->last_rc)
    return;
  const struct netdev_spec *sp = &c->spec;
  if (rc == 0 && c->last_rc != -ERANGE)
    fprintf(stderr, PROG ": %s: pid %d iface %s readable again\n", sp->name, sp->pid, sp->iface);
  else if (rc == -ENOENT || rc == -ESRCH)
    fprintf(stderr, PROG ": %s: pid %d gone or iface %s absent\n", sp->name, sp->pid, sp->iface);
  else if (rc == -ERANGE)
    fprintf(stderr, PROG ": %s: pid %d iface %s: counter went backwards, new baseline\n", sp->name,
            sp->pid, sp->iface);
  else
    fprintf(stderr, PROG ": %s: pid %d iface %s: %s\n", sp->name, sp->pid, sp->iface,
            strerror(-rc));
  c->last_rc = rc;
}

/* Reads one column; *mbps gets its rate (and *has true) when it had a
 * baseline. Returns the read status. */
static int sample_column(struct column *c, bool *has, double *mbps) {
  uint64_t rx = 0, tx = 0;
  *has = false;
  int64_t before = mono_ns();
  int rc = netdev_read(c->spec.pid, c->spec.iface, &rx, &tx);
  int64_t now = before + (mono_ns() - before) / 2;
  if (rc < 0) {
    c->have_prev = false;
    report_status(c, rc);
    return rc;
  }
  uint64_t bytes = c->spec.dir == NETDEV_RX ? rx : tx;
  if (c->have_prev && bytes < c->prev_bytes) {
    report_status(c, -ERANGE);
  } else {
    if (c->have_prev && now > c->prev_ns) {
      *mbps = (double)(bytes - c->prev_bytes) * 8.0 / 1e6 / ((double)(now - c->prev_ns) / 1e9);
      *has = true;
    }
    report_status(c, 0);
  }
  c->have_prev = true;
  c->prev_bytes = bytes;
  c->prev_ns = now;
  return 0;
}

static int make_ready(struct sampler *s) {
  if (s->ready_done || s->ready_path == NULL)
    return 0;
  int fd = open(s->ready_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
  if (fd < 0 || close(fd) < 0) {
    int err = errno;
    fprintf(stderr, PROG ": create ready file %s: %s\n", s->ready_path, strerror(err));
    return -err;
  }
  s->ready_done = true;
  return 0;
}

/* One pass over the columns; with t_end >= 0 also writes the row ending at
 * t_end. Returns the number of columns read, or a negative errno when the
 * output or the ready file failed. */
static int sample_all(struct sampler *s, int64_t t_end) {
  int ok = 0;
  if (t_end >= 0)
    fprintf(s->out, "%.3f", (double)(t_end - s->start_ns) / 1e9);
  for (size_t i = 0; i < s->ncols; i++) {
    bool has;
    double mbps = 0;
    if (sample_column(&s->cols[i], &has, &mbps) == 0)
      ok++;
    if (t_end < 0)
      continue;
    if (has)
      fprintf(s->out, ",%.3f", mbps);
    else
      fputc(',', s->out);
  }
  if (t_end >= 0 && (fputc('\n', s->out) == EOF || fflush(s->out) != 0 || ferror(s->out))) {
    fprintf(stderr, PROG ": write %s: %s\n", s->out_path, strerror(errno));
    return -EIO;
  }
  if (ok > 0) {
    s->last_ok_ns = mono_ns();
    int rc = make_ready(s);
    if (rc < 0)
      return rc;
  }
  return ok;
}

static int64_t tick_ns(const struct sampler *s, uint64_t k) {
  uint64_t hz = s->hz;
  return s->start_ns + (int64_t)(k / hz) * NS_PER_S + (int64_t)((k % hz) * NS_PER_S / hz);
}

/* The first tick after k whose deadline is still ahead. */
static uint64_t next_tick(const struct sampler *s, uint64_t k) {
  int64_t now = mono_ns();
  if (tick_ns(s, k + 1) > now)
    return k + 1;
  uint64_t el = (uint64_t)(now - s->start_ns);
  uint64_t j = (el / NS_PER_S) * s->hz + (el % NS_PER_S) * s->hz / NS_PER_S;
  while (tick_ns(s, j) <= now)
    j++;
  return j;
}

/* 0 on a clean stop, 1 on a failure (already reported). */
static int run(struct sampler *s) {
  s->start_ns = mono_ns();
  s->last_ok_ns = s->start_ns;
  if (sample_all(s, -1) < 0)
    return 1;
  uint64_t last = (uint64_t)s->max_seconds * s->hz;
  uint64_t k = 1;
  while (k <= last && !stop_requested) {
    int64_t dl = tick_ns(s, k);
    struct timespec ts = {.tv_sec = dl / NS_PER_S, .tv_nsec = dl % NS_PER_S};
    int e = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    if (e == EINTR)
      continue;
    if (e != 0) {
      fprintf(stderr, PROG ": clock_nanosleep: %s\n", strerror(e));
      return 1;
    }
    int64_t t_end = mono_ns();
    int ok = sample_all(s, t_end);
    if (ok < 0)
      return 1;
    if (ok == 0 && t_end - s->last_ok_ns >= ALL_FAIL_NS) {
      fprintf(stderr, PROG ": every column has failed for 2 s, stopping\n");
      return 0;
    }
    k = next_tick(s, k);
  }
  return 0;
}

static int install_signals(void) {
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
    return -errno;
  /* A closed FIFO reader shows as a write error, not a silent death. */
  sa.sa_handler = SIG_IGN;
  if (sigaction(SIGPIPE, &sa, NULL) < 0)
    return -errno;
  return 0;
}

static int open_out(struct sampler *s) {
  s->out = fopen(s->out_path, "we");
  if (s->out == NULL) {
    fprintf(stderr, PROG ": open %s: %s\n", s->out_path, strerror(errno));
    return -errno;
  }
  fputs("t_s", s->out);
  for (size_t i = 0; i < s->ncols; i++)
    fprintf(s->out, ",%s", s->cols[i].spec.name);
  if (fputc('\n', s->out) == EOF || fflush(s->out) != 0) {
    fprintf(stderr, PROG ": write %s: %s\n", s->out_path, strerror(errno));
    return -EIO;
  }
  return 0;
}

int main(int argc, char **argv) {
  struct sampler s = {.hz = 20, .max_seconds = 3600};
  int rc = parse_args(argc, argv, &s);
  if (rc != 0) {
    free(s.cols);
    return rc > 0 ? 0 : 2;
  }
  int status = 1;
  rc = install_signals();
  if (rc < 0)
    fprintf(stderr, PROG ": sigaction: %s\n", strerror(-rc));
  else if (open_out(&s) == 0)
    status = run(&s);
  if (s.out != NULL && fclose(s.out) != 0 && status == 0) {
    fprintf(stderr, PROG ": close %s: %s\n", s.out_path, strerror(errno));
    status = 1;
  }
  free(s.cols);
  return status;
}
