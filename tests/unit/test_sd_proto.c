/* systemd's service protocol as common/sd_proto.c speaks it, checked
 * against what libsystemd does: a notification arrives on a unix datagram
 * socket named by NOTIFY_SOCKET (a path or an abstract '@' name), nothing
 * is sent without one; WATCHDOG_USEC/WATCHDOG_PID and
 * LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES are read as sd_watchdog_enabled and
 * sd_listen_fds_with_names read them, malformed values are refused, and
 * the LISTEN_ variables are gone afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/sd_proto.h"
#include "tests/unit/ep_test.h"

/* A datagram socket bound to addr; returns the fd. */
static int bound(struct sockaddr_un *sa, socklen_t len) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  assert_int_equal(0, bind(fd, (struct sockaddr *)sa, len));
  return fd;
}

static void expect_datagram(int fd, const char *want) {
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
  assert_true(n >= 0);
  buf[n] = '\0';
  assert_string_equal(want, buf);
}

static void test_notify_path_and_abstract(void **state) {
  (void)state;
  char dir[64];
  assert_int_equal(0, ep_test_tmpdir(dir, sizeof dir, "ep-sdp-"));
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify", dir);
  int fd = bound(&sa, sizeof sa);
  unsetenv("NOTIFY_SOCKET");
  assert_int_equal(0, sdp_notify("READY=1")); /* not under systemd */
  setenv("NOTIFY_SOCKET", sa.sun_path, 1);
  assert_int_equal(1, sdp_notifyf("READY=1\nSTATUS=%s", "serving on x"));
  expect_datagram(fd, "READY=1\nSTATUS=serving on x");
  close(fd);

  char name[64];
  snprintf(name, sizeof name, "@ep-sdp-%d", (int)getpid());
  struct sockaddr_un ab = {.sun_family = AF_UNIX};
  memcpy(ab.sun_path + 1, name + 1, strlen(name) - 1);
  fd = bound(&ab, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name)));
  setenv("NOTIFY_SOCKET", name, 1);
  assert_int_equal(1, sdp_notify("WATCHDOG=1"));
  expect_datagram(fd, "WATCHDOG=1");
  close(fd);

  setenv("NOTIFY_SOCKET", "relative/path", 1);
  assert_true(sdp_notify("READY=1") < 0);
  unsetenv("NOTIFY_SOCKET");
  ep_test_rm_rf(dir);
}

static void test_watchdog_env(void **state) {
  (void)state;
  uint64_t usec = 0;
  char pid[32];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  unsetenv("WATCHDOG_PID");
  unsetenv("WATCHDOG_USEC");
  assert_int_equal(0, sdp_watchdog_enabled(&usec));
  setenv("WATCHDOG_USEC", "400000", 1);
  assert_int_equal(1, sdp_watchdog_enabled(&usec));
  assert_int_equal(400000, usec);
  setenv("WATCHDOG_PID", pid, 1);
  assert_int_equal(1, sdp_watchdog_enabled(&usec));
  setenv("WATCHDOG_PID", "1", 1); /* for another process */
  assert_int_equal(0, sdp_watchdog_enabled(&usec));
  unsetenv("WATCHDOG_PID");
  const char *bad[] = {"0", "-5", "12x", "", "99999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    setenv("WATCHDOG_USEC", bad[i], 1);
    assert_true(sdp_watchdog_enabled(&usec) < 0);
  }
  unsetenv("WATCHDOG_USEC");
}

static void set_listen(const char *pid, const char *fds, const char *names) {
  setenv("LISTEN_PID", pid, 1);
  setenv("LISTEN_FDS", fds, 1);
  if (names != NULL)
    setenv("LISTEN_FDNAMES", names, 1);
  else
    unsetenv("LISTEN_FDNAMES");
}

static void free_names(char **names) {
  for (size_t i = 0; names != NULL && names[i] != NULL; i++)
    free(names[i]);
  free(names);
}

/* Two sockets at fds 3 and 4 (dup2'd over whatever the runner has there). */
static void test_listen_fds(void **state) {
  (void)state;
  int saved[2] = {fcntl(3, F_DUPFD_CLOEXEC, 10), fcntl(4, F_DUPFD_CLOEXEC, 10)};
  for (int fd = 3; fd <= 4; fd++) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0); /* not close-on-exec */
    assert_true(s >= 0);
    if (s != fd) { /* socket() may hand out fd itself when it was free */
      assert_int_equal(fd, dup2(s, fd));
      close(s);
    }
  }
  char pid[32];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  char **names = NULL;

  set_listen(pid, "2", "peer:local");
  assert_int_equal(2, sdp_listen_fds_with_names(&names));
  assert_string_equal("peer", names[0]);
  assert_string_equal("local", names[1]);
  assert_null(names[2]);
  assert_true(fcntl(3, F_GETFD) & FD_CLOEXEC);
  assert_true(fcntl(4, F_GETFD) & FD_CLOEXEC);
  assert_null(getenv("LISTEN_PID"));
  assert_null(getenv("LISTEN_FDS"));
  assert_null(getenv("LISTEN_FDNAMES"));
  free_names(names);

  set_listen(pid, "2", NULL);
  assert_int_equal(2, sdp_listen_fds_with_names(&names));
  assert_string_equal("unknown", names[0]);
  assert_string_equal("unknown", names[1]);
  free_names(names);

  set_listen("1", "2", "peer:local"); /* meant for another process */
  assert_int_equal(0, sdp_listen_fds_with_names(&names));
  assert_null(names);
  assert_null(getenv("LISTEN_FDS"));

  const char *bad[][2] = {{"2", "peer"}, {"1", "peer:local"}, {"x", NULL}, {"-1", NULL}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    set_listen(pid, bad[i][0], bad[i][1]);
    assert_true(sdp_listen_fds_with_names(&names) < 0);
    assert_null(names);
  }
  unsetenv("LISTEN_PID");
  assert_int_equal(0, sdp_listen_fds_with_names(&names));

  for (int i = 0; i < 2; i++) {
    if (saved[i] >= 0) {
      dup2(saved[i], 3 + i);
      close(saved[i]);
    } else {
      close(3 + i);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_notify_path_and_abstract),
      cmocka_unit_test(test_watchdog_env),
      cmocka_unit_test(test_listen_fds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
