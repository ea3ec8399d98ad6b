/* plugin/grpc's unary client against peers that misbehave on purpose: raw sockets that write
 * hand-made HTTP/2 frames (or nothing) and never read, and the grpc-message it hands back. The
 * well-behaved server side is test_grpc's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/escape.h"
#include "plugin/grpc/grpc_client.h"
#include "plugin/grpc/grpc_int.h"

#include "ep_test.h"

enum { BOUND_S = 20 /* a call that outlives this hangs: the test fails rather than waits */ };

/* A peer on a temp unix socket that accepts one connection, writes its script of raw frames and
 * then neither reads nor closes until the test is over. */
struct peer {
  char dir[64], sock[96];
  int lfd, cfd;
  const uint8_t *script;
  size_t script_len;
  pthread_t th;
  sem_t quit;
};

static void *peer_main(void *ud) {
  struct peer *p = ud;
  p->cfd = accept(p->lfd, NULL, NULL);
  if (p->cfd >= 0 && p->script_len > 0)
    assert_int_equal(write(p->cfd, p->script, p->script_len), (ssize_t)p->script_len);
  sem_wait(&p->quit);
  return NULL;
}

static void peer_start(struct peer *p, const uint8_t *script, size_t len) {
  memset(p, 0, sizeof *p);
  assert_int_equal(ep_test_tmpdir(p->dir, sizeof p->dir, "ep-grpcc-"), 0);
  snprintf(p->sock, sizeof p->sock, "%s/p.sock", p->dir);
  p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p->sock);
  assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(p->lfd, 4), 0);
  p->cfd = -1;
  p->script = script;
  p->script_len = len;
  sem_init(&p->quit, 0, 0);
  assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
}

static void peer_stop(struct peer *p) {
  sem_post(&p->quit);
  pthread_join(p->th, NULL);
  if (p->cfd >= 0)
    close(p->cfd);
  close(p->lfd);
  sem_destroy(&p->quit);
  ep_test_rm_rf(p->dir);
}

/* One grpc_client_unary on a thread of its own, so that a call that never returns fails the test
 * after BOUND_S instead of hanging it. */
struct bg_call {
  struct grpc_client_call c;
  const uint8_t *req;
  size_t req_len;
  struct ep_buf resp;
  int status, rc;
  char msg[64];
  ep_err err;
  sem_t done;
  pthread_t th;
};

static void *bg_main(void *ud) {
  struct bg_call *b = ud;
  b->rc = grpc_client_unary(&b->c, b->req, b->req_len, &b->resp, &b->status, b->msg, sizeof b->msg,
                            &b->err);
  sem_post(&b->done);
  return NULL;
}

static void bg_start(struct bg_call *b, const char *sock, const uint8_t *req, size_t len,
                     size_t max) {
  b->c.socket = sock;
  b->c.path = "/t.T/Echo";
  b->req = req;
  b->req_len = len;
  ep_buf_init(&b->resp, max);
  sem_init(&b->done, 0, 0);
  assert_int_equal(pthread_create(&b->th, NULL, bg_main, b), 0);
}

/* The call's result, once it returned within BOUND_S. */
static int bg_wait(struct bg_call *b) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += BOUND_S;
  assert_int_equal(sem_timedwait(&b->done, &ts), 0);
  pthread_join(b->th, NULL);
  sem_destroy(&b->done);
  ep_buf_free(&b->resp);
  return b->rc;
}

/* An HTTP/2 frame header: 24-bit length, type, flags, stream. */
static size_t h2_frame(uint8_t *p, uint32_t len, uint8_t type, uint8_t flags, uint32_t sid) {
  const uint8_t h[9] = {
      (uint8_t)(len >> 16), (uint8_t)(len >> 8),  (uint8_t)len,        type,        flags,
      (uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};
  memcpy(p, h, sizeof h);
  return sizeof h;
}

static void test_percent_decode(void **state) {
  (void)state;
  char out[32];
  const char *in = "caf%C3%a9 100%25 %zz %4 %";
  size_t n = grpc_percent_decode((const uint8_t *)in, strlen(in), out, sizeof out);
  assert_int_equal(n, 19);
  assert_memory_equal(out, "caf\xc3\xa9 100% %zz %4 %", n);
  /* NUL and escape bytes decode like any other; the cap holds */
  n = grpc_percent_decode((const uint8_t *)"%00%1B[2J", 9, out, 3);
  assert_int_equal(n, 3);
  assert_memory_equal(out, "\0\x1b[", 3);
}

/* The first message's prefix announces 100 MB to a caller who takes 1 KiB, and the body never
 * comes: the call fails on the prefix with EP_ETOOBIG, not at its deadline. */
static void test_too_big_at_prefix(void **state) {
  (void)state;
  uint8_t s[64];
  size_t n = h2_frame(s, 0, 4 /* SETTINGS */, 0, 0);
  n += h2_frame(s + n, 1, 1 /* HEADERS */, 4 /* END_HEADERS */, 1);
  s[n++] = 0x88; /* HPACK static entry 8: ":status: 200" */
  n += h2_frame(s + n, 5, 0 /* DATA */, 0, 1);
  grpc_frame_put(s + n, 100u * 1000 * 1000); /* uncompressed, 100 MB */
  n += GRPC_FRAME_HDR;
  struct peer p;
  peer_start(&p, s, n);
  struct bg_call b = {.c.timeout_ms = 3 * BOUND_S * 1000};
  bg_start(&b, p.sock, (const uint8_t *)"q", 1, 1024);
  assert_int_equal(bg_wait(&b), -EP_ETOOBIG);
  assert_non_null(strstr(b.err.msg, "100000000"));
  peer_stop(&p);
}

/* The peer opens both flow-control windows wide and then stops reading: the client's 8 MB request
 * fills the socket, and the call still ends at its deadline instead of blocking in send. */
static void test_peer_stops_reading(void **state) {
  (void)state;
  uint8_t s[32];
  size_t n = h2_frame(s, 6, 4 /* SETTINGS */, 0, 0);
  const uint8_t window[6] = {0, 4 /* INITIAL_WINDOW_SIZE */, 0x7f, 0xff, 0xff, 0xff};
  memcpy(s + n, window, sizeof window);
  n += sizeof window;
  n += h2_frame(s + n, 4, 8 /* WINDOW_UPDATE */, 0, 0);
  const uint8_t inc[4] = {0x7f, 0xfe, 0xff, 0xff}; /* to 2^31 - 1 from 65535 */
  memcpy(s + n, inc, sizeof inc);
  n += sizeof inc;
  struct peer p;
  peer_start(&p, s, n);
  enum { BIG = 8 << 20 };
  uint8_t *big = calloc(1, BIG);
  assert_non_null(big);
  struct bg_call b = {.c.timeout_ms = 300};
  bg_start(&b, p.sock, big, BIG, 16);
  assert_int_equal(bg_wait(&b), -EP_ECANCELED);
  assert_non_null(strstr(b.err.msg, "timed out"));
  free(big);
  peer_stop(&p);
}

/* A listener whose backlog is full and that never accepts: the connect ends at the deadline. */
static void test_backlog_full(void **state) {
  (void)state;
  char dir[64], sock[96];
  assert_int_equal(ep_test_tmpdir(dir, sizeof dir, "ep-grpcc-"), 0);
  snprintf(sock, sizeof sock, "%s/full.sock", dir);
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(lfd, 0), 0);
  /* fill the backlog: connect until one would block */
  int fds[8], nf = 0;
  for (; nf < 8; nf++) {
    fds[nf] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (connect(fds[nf], (struct sockaddr *)&sa, sizeof sa) < 0) {
      close(fds[nf]);
      break;
    }
  }
  assert_true(nf < 8);
  struct bg_call b = {.c.timeout_ms = 300};
  bg_start(&b, sock, (const uint8_t *)"q", 1, 16);
  assert_int_equal(bg_wait(&b), -EP_ECANCELED);
  while (nf > 0)
    close(fds[--nf]);
  close(lfd);
  ep_test_rm_rf(dir);
}

/* A caller shutting down sets the call's cancel flag: a call to a peer that never answers ends
 * then, long before its deadline, and says it was cancelled. A flag set before the call stops it
 * before it connects. */
static void test_cancel_flag(void **state) {
  (void)state;
  struct peer p;
  peer_start(&p, NULL, 0);
  atomic_bool cancel;
  atomic_init(&cancel, false);
  struct bg_call b = {.c.timeout_ms = 3 * BOUND_S * 1000, .c.cancel = &cancel};
  bg_start(&b, p.sock, (const uint8_t *)"q", 1, 16);
  usleep(100 * 1000);
  atomic_store(&cancel, true);
  assert_int_equal(bg_wait(&b), -EP_ECANCELED);
  assert_non_null(strstr(b.err.msg, "cancelled"));
  peer_stop(&p);

  struct bg_call early = {.c.timeout_ms = 3 * BOUND_S * 1000, .c.cancel = &cancel};
  bg_start(&early, "/nonexistent/edgepull.sock", (const uint8_t *)"q", 1, 16);
  assert_int_equal(bg_wait(&early), -EP_ECANCELED);
  assert_non_null(strstr(early.err.msg, "cancelled"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_percent_decode),     cmocka_unit_test(test_too_big_at_prefix),
      cmocka_unit_test(test_peer_stops_reading), cmocka_unit_test(test_backlog_full),
      cmocka_unit_test(test_cancel_flag),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
