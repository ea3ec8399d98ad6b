/* One connection's HTTP/2 server session, driven only by the I/O thread: nghttp2 callbacks build a
 * call from a request's HEADERS and DATA (one length-prefixed message, bounded by max_message and a
 * server-wide byte budget), validate it, and hand it to grpc_dispatch at END_STREAM. Responses go
 * out lazily: HEADERS when the handler first sends or finishes, DATA from the call's queue through
 * a data provider that defers while the queue is empty, and trailers from that provider once the
 * queue drained after grpc_call_finish. A status decided before any message goes out as a
 * trailers-only response. */
#include "plugin/grpc/grpc_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"

/* Builds the status nvs after `head` fixed entries; returns the count. bufs hold the formatted
 * values. */
static size_t status_nv(grpc_call *c, nghttp2_nv *nv, char *code, char *msg) {
  pthread_mutex_lock(&c->srv->mu);
  snprintf(code, 16, "%d", c->status);
  if (c->status_msg != NULL)
    grpc_percent_encode(c->status_msg, msg, 3 * GRPC_MAX_STATUS_MSG + 1);
  else
    msg[0] = '\0';
  pthread_mutex_unlock(&c->srv->mu);
  nghttp2_nv st = GRPC_NV("grpc-status", code);
  nv[0] = st;
  if (msg[0] == '\0')
    return 1;
  nghttp2_nv m = GRPC_NV("grpc-message", msg);
  nv[1] = m;
  return 2;
}

static void submit_trailers(nghttp2_session *ses, grpc_call *c) {
  char code[16], msg[3 * GRPC_MAX_STATUS_MSG + 1];
  nghttp2_nv nv[2];
  size_t n = status_nv(c, nv, code, msg);
  int rv = nghttp2_submit_trailer(ses, c->stream_id, nv, n);
  if (rv != 0)
    ep_log_debug("grpc: stream %d trailers: %s", c->stream_id, nghttp2_strerror(rv));
}

static ssize_t data_read_cb(nghttp2_session *ses, int32_t sid, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *ud) {
  grpc_call *c = src->ptr;
  pthread_mutex_lock(&c->srv->mu);
  size_t n = len < c->out_len ? len : c->out_len;
  memcpy(buf, c->out + c->out_off, n);
  c->out_off += n;
  c->out_len -= n;
  if (c->out_len == 0)
    c->out_off = 0;
  if (n > 0)
    pthread_cond_broadcast(&c->cv);
  bool fin = c->finished && c->out_len == 0;
  pthread_mutex_unlock(&c->srv->mu);
  if (fin) {
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    submit_trailers(ses, c);
    return (ssize_t)n;
  }
  if (n == 0) {
    c->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return (ssize_t)n;
}

void grpc_call_kick(grpc_call *c) {
  nghttp2_session *ses = c->conn->ses;
  if (c->responded) {
    if (c->deferred) {
      c->deferred = false;
      nghttp2_session_resume_data(ses, c->stream_id);
    }
    return;
  }
  pthread_mutex_lock(&c->srv->mu);
  bool trailers_only = c->finished && c->out_len == 0;
  pthread_mutex_unlock(&c->srv->mu);
  bool bad_ctype = c->bad_ctype && !c->dispatched;
  nghttp2_nv nv[5] = {GRPC_NV(":status", bad_ctype ? "415" : "200"),
                      GRPC_NV("content-type", "application/grpc"),
                      GRPC_NV("grpc-accept-encoding", "identity")};
  int rv;
  c->responded = true;
  if (trailers_only) {
    char code[16], msg[3 * GRPC_MAX_STATUS_MSG + 1];
    size_t n = 3 + status_nv(c, nv + 3, code, msg);
    rv = nghttp2_submit_response(ses, c->stream_id, nv, n, NULL);
  } else {
    nghttp2_data_provider prd = {.source.ptr = c, .read_callback = data_read_cb};
    rv = nghttp2_submit_response(ses, c->stream_id, nv, 3, &prd);
  }
  if (rv != 0)
    ep_log_debug("grpc: stream %d response: %s", c->stream_id, nghttp2_strerror(rv));
}

void grpc_call_fail_early(grpc_call *c, int status, const char *msg) {
  c->early = true;
  if (c->responded)
    return;
  pthread_mutex_lock(&c->srv->mu);
  c->finished = true;
  c->status = status;
  c->status_msg = strdup(msg);
  pthread_mutex_unlock(&c->srv->mu);
  grpc_call_kick(c);
  c->want_rst = true;
}

static int on_begin_headers(nghttp2_session *ses, const nghttp2_frame *f, void *ud) {
  struct grpc_conn *cn = ud;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  grpc_call *c = grpc_call_new(cn->srv, f->hd.stream_id);
  if (c == NULL)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  c->conn = cn;
  c->conn_next = cn->calls;
  if (cn->calls != NULL)
    cn->calls->conn_prev = c;
  cn->calls = c;
  nghttp2_session_set_stream_user_data(ses, f->hd.stream_id, c);
  return 0;
}

static bool ctype_ok(const uint8_t *v, size_t vlen) {
  static const char want[] = "application/grpc";
  size_t w = sizeof(want) - 1;
  return vlen >= w && memcmp(v, want, w) == 0 && (vlen == w || v[w] == '+' || v[w] == ';');
}

static void keep_md(grpc_call *c, const uint8_t *n, size_t nlen, const uint8_t *v, size_t vlen) {
  if (c->n_md == GRPC_MAX_MD || c->md_bytes + nlen + vlen > GRPC_MAX_MD_BYTES) {
    c->md_overflow = true;
    return;
  }
  char *name = strndup((const char *)n, nlen), *value = strndup((const char *)v, vlen);
  if (name == NULL || value == NULL) {
    free(name);
    free(value);
    c->md_overflow = true;
    return;
  }
  c->md[c->n_md++] = (struct grpc_md){name, value};
  c->md_bytes += nlen + vlen;
}

static int on_header(nghttp2_session *ses, const nghttp2_frame *f, const uint8_t *n, size_t nlen,
                     const uint8_t *v, size_t vlen, uint8_t flags, void *ud) {
  grpc_call *c = nghttp2_session_get_stream_user_data(ses, f->hd.stream_id);
  if (c == NULL || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  if (grpc_name_is(n, nlen, ":method")) {
    c->bad_method = !grpc_name_is(v, vlen, "POST");
  } else if (grpc_name_is(n, nlen, ":path")) {
    const struct grpc_server_opts *o = &c->srv->o;
    for (size_t i = 0; i < o->n_methods && c->method == NULL; i++)
      if (grpc_name_is(v, vlen, o->methods[i].path))
        c->method = &o->methods[i];
  } else if (grpc_name_is(n, nlen, "content-type")) {
    c->bad_ctype = !ctype_ok(v, vlen);
  } else if (grpc_name_is(n, nlen, "grpc-encoding")) {
    c->bad_encoding = !grpc_name_is(v, vlen, "identity");
  } else if (nlen > 0 && n[0] != ':') {
    keep_md(c, n, nlen, v, vlen);
  }
  return 0;
}

/* END_HEADERS of a request: the checks that need no message. */
static void request_headers_done(grpc_call *c) {
  if (c->bad_ctype)
    grpc_call_fail_early(c, GRPC_INTERNAL, "content-type is not application/grpc");
  else if (c->bad_method)
    grpc_call_fail_early(c, GRPC_INTERNAL, "gRPC requires POST");
  else if (c->method == NULL)
    grpc_call_fail_early(c, GRPC_UNIMPLEMENTED, "unknown method");
  else if (c->bad_encoding)
    grpc_call_fail_early(c, GRPC_UNIMPLEMENTED, "only the identity grpc-encoding is supported");
  else if (c->md_overflow)
    grpc_call_fail_early(c, GRPC_RESOURCE_EXHAUSTED, "request metadata too large");
}

static void request_end(grpc_call *c) {
  if (c->early || c->dispatched)
    return;
  if (!c->msg_done || c->hdr_len != 0)
    grpc_call_fail_early(c, GRPC_INTERNAL, "incomplete request message");
  else
    grpc_dispatch(c);
}

static int on_frame_recv(nghttp2_session *ses, const nghttp2_frame *f, void *ud) {
  struct grpc_conn *cn = ud;
  if (f->hd.type == NGHTTP2_SETTINGS)
    cn->got_settings = true;
  if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
    return 0;
  grpc_call *c = nghttp2_session_get_stream_user_data(ses, f->hd.stream_id);
  if (c == NULL)
    return 0;
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
    request_headers_done(c);
  if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
    request_end(c);
  return 0;
}

/* The message header is complete: check it. Returns false after failing the call. */
static bool msg_header(grpc_call *c) {
  if (c->msg_done) {
    grpc_call_fail_early(c, GRPC_UNIMPLEMENTED, "client streaming is not supported");
    return false;
  }
  if (c->hdr[0] != 0) {
    grpc_call_fail_early(c, GRPC_INTERNAL,
                         "compressed message, but no grpc-encoding was negotiated");
    return false;
  }
  uint32_t len = grpc_frame_get(c->hdr);
  if (len > c->srv->o.max_message) {
    char m[96];
    snprintf(m, sizeof(m), "request message of %u bytes exceeds %zu", len, c->srv->o.max_message);
    grpc_call_fail_early(c, GRPC_RESOURCE_EXHAUSTED, m);
    return false;
  }
  c->req_need = len;
  return true;
}

/* Append up to len message bytes, growing the buffer inside the server-wide budget; returns bytes
 * taken or -1. */
static ssize_t msg_append(grpc_call *c, const uint8_t *d, size_t len) {
  grpc_server *s = c->srv;
  size_t take = c->req_need - c->req_len < len ? c->req_need - c->req_len : len;
  pthread_mutex_lock(&s->mu);
  if (c->req_len + take > c->req_cap) {
    size_t cap = c->req_cap ? c->req_cap : 16384;
    while (cap < c->req_len + take)
      cap *= 2;
    cap = cap > c->req_need ? c->req_need : cap;
    uint8_t *p = NULL;
    if (s->req_bytes - c->req_cap + cap <= s->req_budget)
      p = realloc(c->req, cap);
    if (p == NULL) {
      pthread_mutex_unlock(&s->mu);
      return -1;
    }
    s->req_bytes += cap - c->req_cap;
    c->req = p;
    c->req_cap = cap;
  }
  memcpy(c->req + c->req_len, d, take);
  c->req_len += take;
  pthread_mutex_unlock(&s->mu);
  return (ssize_t)take;
}

static int on_data_chunk_recv(nghttp2_session *ses, uint8_t flags, int32_t sid, const uint8_t *d,
                              size_t len, void *ud) {
  grpc_call *c = nghttp2_session_get_stream_user_data(ses, sid);
  while (c != NULL && !c->early && !c->dispatched && len > 0) {
    if (c->hdr_len < GRPC_FRAME_HDR) {
      size_t take = GRPC_FRAME_HDR - c->hdr_len < len ? GRPC_FRAME_HDR - c->hdr_len : len;
      memcpy(c->hdr + c->hdr_len, d, take);
      c->hdr_len += take, d += take, len -= take;
      if (c->hdr_len < GRPC_FRAME_HDR || !msg_header(c))
        continue;
    } else {
      ssize_t took = msg_append(c, d, len);
      if (took < 0) {
        grpc_call_fail_early(c, GRPC_RESOURCE_EXHAUSTED, "server is out of request buffer space");
        break;
      }
      d += took, len -= (size_t)took;
    }
    if (c->req_len == c->req_need) {
      c->msg_done = true;
      c->hdr_len = 0;
    }
  }
  return 0;
}

static int on_stream_close(nghttp2_session *ses, int32_t sid, uint32_t code, void *ud) {
  struct grpc_conn *cn = ud;
  grpc_call *c = nghttp2_session_get_stream_user_data(ses, sid);
  if (c == NULL)
    return 0;
  nghttp2_session_set_stream_user_data(ses, sid, NULL);
  if (c->conn_prev != NULL)
    c->conn_prev->conn_next = c->conn_next;
  else
    cn->calls = c->conn_next;
  if (c->conn_next != NULL)
    c->conn_next->conn_prev = c->conn_prev;
  grpc_call_closed(c);
  return 0;
}

/* A refused request may still be uploading: once our trailers-only response is out, reset the
 * stream (NO_ERROR), as gRPC servers do. Not earlier: a queued RST_STREAM makes nghttp2 drop the
 * response HEADERS. */
static int on_frame_send(nghttp2_session *ses, const nghttp2_frame *f, void *ud) {
  if (f->hd.type != NGHTTP2_HEADERS || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  grpc_call *c = nghttp2_session_get_stream_user_data(ses, f->hd.stream_id);
  if (c != NULL && c->want_rst &&
      nghttp2_session_get_stream_remote_close(ses, f->hd.stream_id) == 0)
    nghttp2_submit_rst_stream(ses, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
  return 0;
}

static ssize_t send_cb(nghttp2_session *ses, const uint8_t *data, size_t len, int flags, void *ud) {
  struct grpc_conn *cn = ud;
  for (;;) {
    ssize_t n = send(cn->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0)
      return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return NGHTTP2_ERR_WOULDBLOCK;
    if (errno != EINTR)
      return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
}

static int session_settings(nghttp2_session *ses) {
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, GRPC_MAX_STREAMS},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, GRPC_STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 2 * GRPC_MAX_MD_BYTES},
  };
  int rv = nghttp2_submit_settings(ses, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
  if (rv == 0)
    rv = nghttp2_session_set_local_window_size(ses, NGHTTP2_FLAG_NONE, 0, 4 * GRPC_STREAM_WINDOW);
  return rv;
}

int grpc_conn_session_new(struct grpc_conn *cn, ep_err *err) {
  grpc_server *s = cn->srv;
  if (s->cbs == NULL) {
    if (nghttp2_session_callbacks_new(&s->cbs) != 0)
      return ep_error(err, EP_EINTERNAL, "nghttp2 callbacks");
    nghttp2_session_callbacks_set_send_callback(s->cbs, send_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(s->cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(s->cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(s->cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(s->cbs, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(s->cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(s->cbs, on_frame_send);
  }
  int rv = nghttp2_session_server_new2(&cn->ses, s->cbs, cn, s->ngopt);
  if (rv != 0)
    return ep_error(err, EP_EINTERNAL, "nghttp2 session: %s", nghttp2_strerror(rv));
  rv = session_settings(cn->ses);
  if (rv != 0)
    return ep_error(err, EP_EINTERNAL, "nghttp2 settings: %s", nghttp2_strerror(rv));
  return 0;
}
