/* The unary client: connect, send the HTTP/2 preface with the request (HEADERS + one DATA frame
 * carrying the length-prefixed message, END_STREAM), then read until the stream closes, keeping
 * the response message and the grpc-status trailer. nghttp2 does the framing, flow control and
 * HPACK; the loop only moves bytes between it and the socket. */
#include "plugin/grpc/grpc_client.h"
#include "plugin/grpc/grpc_int.h"

#include <errno.h>
#include <inttypes.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/escape.h"

struct client_state {
  int fd;
  const uint8_t *out; /* the framed request */
  size_t out_len, out_off;
  struct ep_buf raw; /* response DATA, length prefixes included */
  bool discard;      /* the caller wants only the status */
  size_t max;        /* the largest message the caller takes */
  uint32_t too_big;  /* the length the first message's prefix announced, when over max */
  int status;        /* -1 until the grpc-status header */
  bool bad_status;   /* a grpc-status that is not a code */
  char *msg;
  size_t msgcap;
  bool closed;
  uint32_t close_code;
  int64_t deadline;
  atomic_bool *cancel; /* the caller's, or NULL */
};

/* The caller's flag is looked at this often while a call waits: how late a cancel may act. */
#define CANCEL_POLL_MS 50

/* The call's end when it was cancelled or its deadline passed; 0 while it may go on. */
static int stopped(const struct client_state *st, ep_err *err) {
  if (st->cancel != NULL && atomic_load(st->cancel))
    return ep_error(err, EP_ECANCELED, "gRPC call cancelled");
  return ep_mono_ms() >= st->deadline ? ep_error(err, EP_ECANCELED, "gRPC call timed out") : 0;
}

/* How long one poll may wait. */
static int poll_ms(const struct client_state *st) {
  int64_t left = st->deadline - ep_mono_ms();
  int64_t cap = st->cancel != NULL ? CANCEL_POLL_MS : 1000;
  return (int)(left < 0 ? 0 : left < cap ? left : cap);
}

static ssize_t send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud) {
  (void)s, (void)flags;
  struct client_state *st = ud;
  /* never blocks (like the server's sessions): a peer that stops reading leaves the bytes in
   * nghttp2, and pump waits for POLLOUT no longer than the call's deadline */
  ssize_t n = send(st->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? NGHTTP2_ERR_WOULDBLOCK
                                                                     : NGHTTP2_ERR_CALLBACK_FAILURE;
  return n;
}

static ssize_t body_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *ud) {
  (void)s, (void)sid, (void)src;
  struct client_state *st = ud;
  size_t n = st->out_len - st->out_off < len ? st->out_len - st->out_off : len;
  memcpy(buf, st->out + st->out_off, n);
  st->out_off += n;
  if (st->out_off == st->out_len)
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

static int data_cb(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
                   void *ud) {
  (void)s, (void)flags, (void)sid;
  struct client_state *st = ud;
  if (st->discard)
    return 0;
  /* The first message's prefix says how big it is: one over the caller's limit fails the call
   * right there, rather than after buffering up to the limit (or waiting for a body that may
   * never come). Prefix bytes may arrive split across DATA frames. */
  size_t had = st->raw.len;
  size_t take = had < GRPC_FRAME_HDR ? GRPC_FRAME_HDR - had : 0;
  if (ep_buf_append(&st->raw, data, take < len ? take : len) < 0)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  if (had < GRPC_FRAME_HDR && st->raw.len == GRPC_FRAME_HDR &&
      grpc_frame_get((const uint8_t *)st->raw.data) > st->max) {
    st->too_big = grpc_frame_get((const uint8_t *)st->raw.data);
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  /* a bigger answer than the caller allows is an error, not a silent cut */
  return take < len && ep_buf_append(&st->raw, data + take, len - take) < 0
             ? NGHTTP2_ERR_CALLBACK_FAILURE
             : 0;
}

static int header_cb(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *ud) {
  (void)s, (void)f, (void)flags;
  struct client_state *st = ud;
  if (grpc_name_is(name, nlen, "grpc-status")) {
    st->status = grpc_status_parse(value, vlen);
    st->bad_status = st->status < 0;
  } else if (grpc_name_is(name, nlen, "grpc-message") && st->msgcap > 0) {
    /* The peer's text goes into logs and error strings: decoded (it is percent-encoded on the
     * wire), cut to the caller's buffer, and masked so no control byte reaches a terminal. */
    size_t n = grpc_percent_decode(value, vlen, st->msg, st->msgcap - 1);
    ep_escape(st->msg, st->msgcap, st->msg, n, EP_ESCAPE_MASK);
  }
  return 0;
}

static int close_cb(nghttp2_session *s, int32_t sid, uint32_t code, void *ud) {
  (void)s, (void)sid;
  struct client_state *st = ud;
  st->closed = true;
  st->close_code = code;
  return 0;
}

/* A nonblocking unix connect does not go in progress: it succeeds, or fails with EAGAIN while the
 * listener's backlog is full (a peer that stopped accepting), which is tried again until the
 * deadline rather than waited out in a blocking connect. */
static int connect_unix(const char *path, const struct client_state *st, ep_err *err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return ep_error(err, EP_EINVAL, "socket path too long: %s", path);
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return ep_syserror(err, EP_EIO, "socket");
  while (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    bool busy = errno == EAGAIN || errno == EINTR;
    int r = busy ? stopped(st, err) : ep_syserror(err, EP_EUNREACH, "connecting to %s", path);
    if (r < 0) {
      close(fd);
      return busy ? ep_wrap(err, "connecting to %s (backlog full)", path) : r;
    }
    poll(NULL, 0, 10);
  }
  return fd;
}

/* Moves bytes until the stream closes, the peer goes away, the deadline passes or the caller
 * cancels. */
static int pump(nghttp2_session *ses, struct client_state *st, ep_err *err) {
  uint8_t buf[16384];
  while (!st->closed) {
    int rv = nghttp2_session_send(ses);
    if (rv != 0)
      return ep_error(err, EP_EIO, "h2 send: %s", nghttp2_strerror(rv));
    if ((rv = stopped(st, err)) < 0)
      return rv;
    struct pollfd p = {.fd = st->fd, .events = POLLIN};
    if (nghttp2_session_want_write(ses))
      p.events |= POLLOUT;
    int pr = poll(&p, 1, poll_ms(st));
    if (pr < 0 && errno != EINTR)
      return ep_syserror(err, EP_EIO, "poll");
    if (pr <= 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR)))
      continue;
    ssize_t n = recv(st->fd, buf, sizeof buf, 0);
    if (n == 0)
      return ep_error(err, EP_EIO, "connection closed before the answer");
    if (n < 0 && errno != EINTR && errno != EAGAIN)
      return ep_syserror(err, EP_EIO, "recv");
    if (n > 0 && (rv = (int)nghttp2_session_mem_recv(ses, buf, (size_t)n)) < 0 && st->too_big)
      return ep_error(err, EP_ETOOBIG,
                      "gRPC answer of %" PRIu32 " bytes is over the limit of %zu "
                      "(RESOURCE_EXHAUSTED)",
                      st->too_big, st->max);
    if (rv < 0)
      return ep_error(err, EP_EIO, "h2 protocol: %s", nghttp2_strerror(rv));
  }
  return 0;
}

static int submit(nghttp2_session *ses, const struct grpc_client_call *c, struct client_state *st,
                  ep_err *err) {
  nghttp2_nv nv[6 + GRPC_CLIENT_MAX_MD] = {
      GRPC_NV(":method", "POST"), GRPC_NV(":scheme", "http"),
      GRPC_NV(":path", c->path),  GRPC_NV(":authority", "localhost"),
      GRPC_NV("te", "trailers"),  GRPC_NV("content-type", "application/grpc"),
  };
  size_t n = 6;
  for (size_t i = 0; i < GRPC_CLIENT_MAX_MD && c->md_name[i] != NULL; i++) {
    nghttp2_nv m = GRPC_NV(c->md_name[i], c->md_value[i]);
    nv[n++] = m;
  }
  int rv = nghttp2_submit_settings(ses, NGHTTP2_FLAG_NONE, NULL, 0);
  nghttp2_data_provider dp = {.read_callback = body_cb};
  if (rv == 0)
    rv = nghttp2_submit_request(ses, NULL, nv, n, &dp, st);
  return rv < 0 ? ep_error(err, EP_EINTERNAL, "h2 request: %s", nghttp2_strerror(rv)) : 0;
}

/* The first length-prefixed message of the answer into resp. */
static int first_message(const struct client_state *st, struct ep_buf *resp, ep_err *err) {
  if (st->raw.len == 0)
    return 0;
  const uint8_t *p = (const uint8_t *)st->raw.data;
  if (st->raw.len < GRPC_FRAME_HDR)
    return ep_error(err, EP_EIO, "gRPC answer: truncated frame");
  if (p[0] != 0)
    return ep_error(err, EP_EUNSUPPORTED, "gRPC answer: compressed message");
  size_t len = grpc_frame_get(p);
  if (len > st->raw.len - GRPC_FRAME_HDR)
    return ep_error(err, EP_EIO, "gRPC answer: truncated message");
  return ep_buf_append(resp, p + GRPC_FRAME_HDR, len) < 0
             ? ep_error(err, EP_ETOOBIG, "gRPC answer too big")
             : 0;
}

int grpc_client_unary(const struct grpc_client_call *c, const uint8_t *req, size_t req_len,
                      struct ep_buf *resp, int *status, char *msg, size_t msgcap, ep_err *err) {
  if (req_len > UINT32_MAX)
    return ep_error(err, EP_ETOOBIG, "gRPC request too big");
  uint8_t *framed = malloc(req_len + GRPC_FRAME_HDR);
  if (framed == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  grpc_frame_put(framed, (uint32_t)req_len);
  if (req_len > 0)
    memcpy(framed + GRPC_FRAME_HDR, req, req_len);
  if (msgcap > 0)
    msg[0] = '\0';
  struct client_state st = {.out = framed,
                            .out_len = req_len + GRPC_FRAME_HDR,
                            .status = -1,
                            .msg = msg,
                            .msgcap = msgcap};
  st.discard = resp == NULL;
  st.max = st.discard || resp->len > resp->max ? 0 : resp->max - resp->len;
  ep_buf_init(&st.raw, st.discard ? 0 : resp->max + GRPC_FRAME_HDR * 64);
  nghttp2_session *ses = NULL;
  nghttp2_session_callbacks *cb = NULL;
  st.deadline = ep_mono_ms() + (c->timeout_ms > 0 ? c->timeout_ms : 60000);
  st.cancel = c->cancel;
  int r = st.fd = stopped(&st, err);
  if (r >= 0)
    r = st.fd = connect_unix(c->socket, &st, err);
  if (r >= 0 && nghttp2_session_callbacks_new(&cb) != 0)
    r = ep_error(err, EP_EINTERNAL, "out of memory");
  if (r >= 0) {
    nghttp2_session_callbacks_set_send_callback(cb, send_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, data_cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, header_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, close_cb);
    if (nghttp2_session_client_new(&ses, cb, &st) != 0)
      r = ep_error(err, EP_EINTERNAL, "out of memory");
  }
  if (r >= 0)
    r = submit(ses, c, &st, err);
  if (r >= 0)
    r = pump(ses, &st, err);
  if (r >= 0 && st.bad_status)
    r = ep_error(err, EP_EIO, "gRPC answer: grpc-status is not a status code");
  if (r >= 0 && st.status < 0)
    r = ep_error(err, EP_EIO, "gRPC answer without grpc-status (h2 code %u)", st.close_code);
  if (r >= 0 && !st.discard)
    r = first_message(&st, resp, err);
  if (r >= 0)
    *status = st.status;
  nghttp2_session_del(ses);
  nghttp2_session_callbacks_del(cb);
  if (st.fd >= 0)
    close(st.fd);
  ep_buf_free(&st.raw);
  free(framed);
  return r < 0 ? r : 0;
}
