/* The systemd watchdog against a fake NOTIFY_SOCKET: a unix datagram
 * socket the test binds, named in NOTIFY_SOCKET, with WATCHDOG_USEC=400000
 * so that pings are due every 200 ms. Shown: READY=1 and STATUS= arrive,
 * WATCHDOG=1 pings arrive while healthy, none while the fetch engine is
 * wedged (STATUS= says why), and they resume once it is healthy again.
 *
 * Two wedges: a fake health check (the watchdog module alone), and the
 * daemon's own checks with a real fetch stuck on a registry that accepts
 * the connection and never answers, under a short stall bound; closing
 * that registry lets the fetch fail and the pings come back. (The bound,
 * 1.5 s, is above the fetch's longest legitimate silence here: a source
 * wait of 200 ms, retry back-offs of up to 1 s.) The HTTP
 * self-probe passes on a real endpoint and fails on a socket that never
 * accepts. Counts, not speeds, are asserted: at least 3 pings in a
 * healthy second (5 are due), exactly 0 in a wedged one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/clock.h"
#include "common/sd_proto.h"
#include "plugin/daemon/daemon.h"
#include "plugin/daemon/watchdog.h"
#include "plugin/http/http.h"
#include "plugin/http/listen.h"
#include "tests/unit/ep_test.h"

#define REG "reg.test"

struct notify {
  char dir[64];
  int fd;
};

/* What arrived on the notify socket during one window. */
struct seen {
  int pings, ready;
  char status[512]; /* the last STATUS= */
};

static int notify_open(struct notify *n) {
  if (ep_test_tmpdir(n->dir, sizeof n->dir, "ep-wd-") < 0)
    return -1;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify", n->dir);
  n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (n->fd < 0 || bind(n->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    return -1;
  setenv("NOTIFY_SOCKET", sa.sun_path, 1);
  setenv("WATCHDOG_USEC", "400000", 1);
  unsetenv("WATCHDOG_PID");
  return 0;
}

static void notify_close(struct notify *n) {
  close(n->fd);
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  ep_test_rm_rf(n->dir);
}

static void account(struct seen *s, char *msg) {
  for (char *save = NULL, *l = strtok_r(msg, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    if (strcmp(l, "WATCHDOG=1") == 0)
      s->pings++;
    else if (strcmp(l, "READY=1") == 0)
      s->ready++;
    else if (strncmp(l, "STATUS=", 7) == 0)
      snprintf(s->status, sizeof s->status, "%s", l + 7);
  }
}

/* Collects for ms milliseconds; or, with until set, stops early once a
 * STATUS= containing it arrived. */
static void collect(struct notify *n, int ms, const char *until, struct seen *s) {
  memset(s, 0, sizeof *s);
  int64_t end = ep_mono_ms() + ms;
  for (int64_t left; (left = end - ep_mono_ms()) > 0;) {
    struct pollfd p = {.fd = n->fd, .events = POLLIN};
    if (poll(&p, 1, (int)left) <= 0)
      continue;
    char buf[1024];
    ssize_t len = recv(n->fd, buf, sizeof buf - 1, 0);
    if (len <= 0)
      continue;
    buf[len] = '\0';
    account(s, buf);
    if (until != NULL && strstr(s->status, until) != NULL)
      break;
  }
  fprintf(stderr, "  %-22s %4lld ms: %d ping(s), READY %d, STATUS '%s'\n",
          until != NULL ? until : "window", (long long)(ep_mono_ms() - end + ms), s->pings,
          s->ready, s->status);
}

/* Drops what is queued: once the watchdog thread is joined, every ping it
 * sent is already in the socket, so none may arrive after this. */
static void drain(struct notify *n) {
  char buf[1024];
  while (recv(n->fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
    ;
}

static atomic_bool fake_wedged;

static int fake_fetch_check(void *ud, int64_t now_ms, int timeout_ms, ep_err *why) {
  (void)ud, (void)now_ms, (void)timeout_ms;
  return atomic_load(&fake_wedged) ? ep_error(why, EP_EINTERNAL, "fake fetch wedged") : 0;
}

static void test_no_watchdog_requested(void **state) {
  (void)state;
  unsetenv("WATCHDOG_USEC");
  struct watchdog_deps d = {.nchecks = 0};
  watchdog *w = (watchdog *)&d; /* must be overwritten */
  ep_err e = {0};
  assert_int_equal(watchdog_start(&d, &w, &e), 0);
  assert_null(w);
  watchdog_stop(NULL);
}

static void test_fake_wedge(void **state) {
  (void)state;
  struct notify n;
  assert_int_equal(notify_open(&n), 0);
  struct watchdog_deps d = {
      .checks = {{.failing = "fetch engine stuck", .check = fake_fetch_check}},
      .nchecks = 1,
      .status_ok = "serving on test",
  };
  atomic_store(&fake_wedged, false);
  watchdog *w = NULL;
  ep_err e = {0};
  assert_int_equal(watchdog_start(&d, &w, &e), 0);
  assert_non_null(w);
  struct seen s;
  collect(&n, 1000, NULL, &s);
  assert_true(s.pings >= 3);

  atomic_store(&fake_wedged, true);
  collect(&n, 3000, "fetch engine stuck", &s);
  assert_string_equal(s.status, "fetch engine stuck: fake fetch wedged");
  collect(&n, 1000, NULL, &s);
  assert_int_equal(s.pings, 0);
  assert_string_equal(s.status, ""); /* said once, not every tick */

  atomic_store(&fake_wedged, false);
  collect(&n, 3000, "serving on test", &s);
  assert_string_equal(s.status, "serving on test");
  collect(&n, 1000, NULL, &s);
  assert_true(s.pings >= 3);

  watchdog_stop(w);
  drain(&n);
  collect(&n, 600, NULL, &s);
  assert_int_equal(s.pings, 0);
  notify_close(&n);
}

static void test_probe_unanswered(void **state) {
  (void)state;
  int fd = -1;
  ep_err e = {0};
  assert_int_equal(listen_open("127.0.0.1:0", &fd, &e), 0);
  /* Listening but never accepting: the probe connects, no answer comes. */
  assert_true(http_probe(fd, 200, &e) < 0);
  assert_non_null(strstr(e.msg, "no answer"));
  close(fd);
}

/* The daemon's checks: a real endpoint, a real fetch stuck on a registry
 * that never answers. */
static void test_daemon_fetch_wedge(void **state) {
  (void)state;
  struct notify n;
  assert_int_equal(notify_open(&n), 0);
  int reg = -1, lfd = -1;
  ep_err e = {0};
  assert_int_equal(listen_open("127.0.0.1:0", &reg, &e), 0);
  struct edgepulld *d = calloc(1, sizeof *d);
  assert_non_null(d);
  char dir[64];
  assert_int_equal(ep_test_tmpdir(dir, sizeof dir, "ep-wd-state-"), 0);
  config_defaults(&d->cfg);
  snprintf(d->cfg.state_dir, sizeof d->cfg.state_dir, "%s", dir);
  char spec[128];
  snprintf(spec, sizeof spec, "%s=http://127.0.0.1:%u", REG, ep_test_fd_port(reg));
  assert_int_equal(config_add_registry_mapping(&d->cfg, spec, &e), 0);
  struct edgepulld_options o = {.source_wait_ms = 200, .fetch_stall_ms = 1500};
  assert_int_equal(edgepulld_open(d, &o, &e), 0);
  assert_int_equal(listen_open("127.0.0.1:0", &lfd, &e), 0);
  assert_int_equal(edgepulld_serve(d, lfd, SERVER_LOCAL, &e), 0);
  assert_int_equal(server_probe(d->local, 1000, &e), 0);

  sdp_notifyf("READY=1\nSTATUS=%s", "serving on test"); /* as main.c does */
  assert_int_equal(edgepulld_watch(d, "serving on test", &e), 0);
  struct seen s;
  collect(&n, 1000, NULL, &s);
  assert_int_equal(s.ready, 1);
  assert_string_equal(s.status, "serving on test");
  assert_true(s.pings >= 3); /* the HTTP self-probe passes */

  digest_t dg;
  assert_int_equal(digest_parse_hex("0123456789abcdef0123456789abcdef"
                                    "0123456789abcdef0123456789abcdef",
                                    &dg, &e),
                   0);
  blob_pipe *p = NULL;
  assert_int_equal(fetcher_open(d->fetch, REG, "library/stuck", &dg, &p, &e), 0);
  collect(&n, 5000, "fetch engine stuck", &s);
  assert_non_null(strstr(s.status, "fetch engine stuck: fetch of 0123456789ab"));
  collect(&n, 1000, NULL, &s);
  assert_int_equal(s.pings, 0);

  close(reg); /* resets the pending connection: the fetch fails, then ends */
  collect(&n, 10000, "serving on test", &s);
  assert_string_equal(s.status, "serving on test");
  collect(&n, 1000, NULL, &s);
  assert_true(s.pings >= 3);

  pipe_unref(p);
  edgepulld_close(d); /* stops the watchdog first */
  drain(&n);
  collect(&n, 600, NULL, &s);
  assert_int_equal(s.pings, 0);
  free(d);
  ep_test_rm_rf(dir);
  notify_close(&n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_watchdog_requested),
      cmocka_unit_test(test_fake_wedge),
      cmocka_unit_test(test_probe_unanswered),
      cmocka_unit_test(test_daemon_fetch_wedge),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
