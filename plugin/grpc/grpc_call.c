/* The handler-facing half of a call: a handler on a worker thread queues framed response bytes and
 * its status under the server mutex and wakes the I/O thread through the eventfd; only the I/O
 * thread touches nghttp2. A call is reference-counted: one reference for the open stream (dropped
 * by the I/O thread when the stream closes), one for the handler (dropped by grpc_call_finish, or
 * by the worker when it skips a call cancelled while queued), one while it waits on the server's
 * dirty list. */
#include "plugin/grpc/grpc_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

grpc_call *grpc_call_new(grpc_server *s, int32_t stream_id) {
  grpc_call *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  if (pthread_cond_init(&c->cv, NULL) != 0) {
    free(c);
    return NULL;
  }
  c->srv = s;
  c->stream_id = stream_id;
  c->refs = 1;
  return c;
}

/* Under srv->mu. */
static void call_drop_req_locked(grpc_call *c) {
  c->srv->req_bytes -= c->req_cap;
  free(c->req);
  c->req = NULL;
  c->req_len = c->req_cap = 0;
}

void grpc_call_unref(grpc_call *c) {
  grpc_server *s = c->srv;
  pthread_mutex_lock(&s->mu);
  bool last = --c->refs == 0;
  if (last)
    call_drop_req_locked(c);
  pthread_mutex_unlock(&s->mu);
  if (!last)
    return;
  for (size_t i = 0; i < c->n_md; i++) {
    free(c->md[i].name);
    free(c->md[i].value);
  }
  free(c->out);
  free(c->status_msg);
  pthread_cond_destroy(&c->cv);
  free(c);
}

bool grpc_call_mark_dirty_locked(grpc_call *c) {
  if (c->dirty || c->closed)
    return false;
  c->dirty = true;
  c->refs++;
  c->dirty_next = c->srv->dirty;
  c->srv->dirty = c;
  return true;
}

void grpc_server_wake(grpc_server *s) {
  uint64_t one = 1;
  while (write(s->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
    ;
}

void grpc_call_closed(grpc_call *c) {
  pthread_mutex_lock(&c->srv->mu);
  c->closed = true;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->srv->mu);
  c->conn = NULL;
  grpc_call_unref(c);
}

const char *grpc_call_metadata(const grpc_call *c, const char *name) {
  for (size_t i = 0; i < c->n_md; i++)
    if (strcmp(c->md[i].name, name) == 0)
      return c->md[i].value;
  return NULL;
}

bool grpc_call_cancelled(const grpc_call *c) {
  pthread_mutex_lock(&c->srv->mu);
  bool v = c->closed;
  pthread_mutex_unlock(&c->srv->mu);
  return v;
}

/* Under srv->mu: room for need more bytes at the end of the queue. */
static int call_out_reserve_locked(grpc_call *c, size_t need) {
  if (c->out_off > 0 && c->out_off + c->out_len + need > c->out_cap) {
    memmove(c->out, c->out + c->out_off, c->out_len);
    c->out_off = 0;
  }
  if (c->out_len + need <= c->out_cap)
    return 0;
  size_t cap = c->out_cap ? c->out_cap : 4096;
  while (cap < c->out_len + need)
    cap *= 2;
  uint8_t *p = realloc(c->out, cap);
  if (p == NULL)
    return -1;
  c->out = p;
  c->out_cap = cap;
  return 0;
}

int grpc_call_send(grpc_call *c, const uint8_t *msg, size_t len) {
  if (len > UINT32_MAX || len > SIZE_MAX - GRPC_FRAME_HDR)
    return -EP_ETOOBIG;
  grpc_server *s = c->srv;
  size_t framed = GRPC_FRAME_HDR + len;
  pthread_mutex_lock(&s->mu);
  /* One message larger than the bound still goes once the queue is empty. */
  while (!c->closed && c->out_len > 0 && c->out_len + framed > GRPC_SENDQ_MAX)
    pthread_cond_wait(&c->cv, &s->mu);
  if (c->closed || c->finished || call_out_reserve_locked(c, framed) < 0) {
    pthread_mutex_unlock(&s->mu);
    return -EP_ECANCELED;
  }
  uint8_t *p = c->out + c->out_off + c->out_len;
  grpc_frame_put(p, (uint32_t)len);
  if (len > 0)
    memcpy(p + GRPC_FRAME_HDR, msg, len);
  c->out_len += framed;
  bool wake = grpc_call_mark_dirty_locked(c);
  pthread_mutex_unlock(&s->mu);
  if (wake)
    grpc_server_wake(s);
  return 0;
}

void grpc_call_finish(grpc_call *c, int status, const char *message) {
  grpc_server *s = c->srv;
  char *m = NULL;
  if (message != NULL && *message != '\0')
    m = strndup(message, GRPC_MAX_STATUS_MSG);
  pthread_mutex_lock(&s->mu);
  bool wake = false;
  if (!c->finished) {
    c->finished = true;
    c->status = status;
    c->status_msg = m;
    m = NULL;
    call_drop_req_locked(c);
    wake = grpc_call_mark_dirty_locked(c);
  }
  pthread_mutex_unlock(&s->mu);
  free(m);
  if (wake)
    grpc_server_wake(s);
  grpc_call_unref(c);
}

void grpc_percent_encode(const char *msg, char *out, size_t cap) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++) {
    bool plain = *p >= 0x20 && *p <= 0x7e && *p != '%';
    size_t need = plain ? 1 : 3;
    if (o + need >= cap)
      break;
    if (plain) {
      out[o++] = (char)*p;
    } else {
      out[o++] = '%';
      out[o++] = hex[*p >> 4];
      out[o++] = hex[*p & 15];
    }
  }
  if (cap > 0)
    out[o] = '\0';
}

static int hex_digit(uint8_t ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

size_t grpc_percent_decode(const uint8_t *v, size_t len, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < len && o < cap; i++) {
    int hi = v[i] == '%' && i + 2 < len ? hex_digit(v[i + 1]) : -1;
    int lo = hi >= 0 ? hex_digit(v[i + 2]) : -1;
    if (lo >= 0) {
      out[o++] = (char)(hi << 4 | lo);
      i += 2;
    } else {
      /* the spec: a bad sequence is kept as it came, never an error */
      out[o++] = (char)v[i];
    }
  }
  return o;
}
