/* Internals shared by grpc.c (server, I/O loop, workers), grpc_session.c (nghttp2 callbacks) and
 * grpc_call.c (the handler-facing call API). Ownership rules are in grpc.c's opening comment. */
#ifndef EP_PLUGIN_GRPC_GRPC_INT_H
#define EP_PLUGIN_GRPC_GRPC_INT_H

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "plugin/grpc/grpc.h"

enum {
  GRPC_DEFAULT_WORKERS = 16,
  GRPC_DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024,
  GRPC_SENDQ_MAX = 64 * 1024,       /* bytes queued per call before grpc_call_send blocks */
  GRPC_MAX_STREAMS = 100,           /* SETTINGS_MAX_CONCURRENT_STREAMS per connection */
  GRPC_STREAM_WINDOW = 1024 * 1024, /* our initial receive window per stream */
  GRPC_MAX_CONNS = 256,
  GRPC_MAX_PENDING = 1024,       /* dispatched calls waiting for a worker */
  GRPC_MAX_MD = 64,              /* request metadata entries kept */
  GRPC_MAX_MD_BYTES = 16 * 1024, /* request metadata bytes kept */
  GRPC_MAX_STATUS_MSG = 1024,    /* grpc-message bytes before encoding */
  GRPC_PREFACE_MS = 10000,       /* a connection must send its SETTINGS within this */
  GRPC_FRAME_HDR = 5,            /* compressed flag + 4-byte big-endian length */
};

/* One header entry for nghttp2 (the strings must outlive the submit). */
#define GRPC_NV(n, v)                                                                              \
  { (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }

/* An HTTP/2 header name or value (not NUL-terminated) equals want. */
static inline bool grpc_name_is(const uint8_t *n, size_t nlen, const char *want) {
  return nlen == strlen(want) && memcmp(n, want, nlen) == 0;
}

/* The length prefix of a gRPC message: a compressed flag (0: we negotiate identity only) and the
 * length, 4 bytes big-endian, in GRPC_FRAME_HDR bytes at p. */
static inline void grpc_frame_put(uint8_t *p, uint32_t len) {
  p[0] = 0;
  p[1] = (uint8_t)(len >> 24);
  p[2] = (uint8_t)(len >> 16);
  p[3] = (uint8_t)(len >> 8);
  p[4] = (uint8_t)len;
}

/* The length of the prefix at p (its flag is p[0]). */
static inline uint32_t grpc_frame_get(const uint8_t *p) {
  return (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
}

/* A grpc-status value: 1-2 decimal digits naming a code of 0..16, or -1. Strict because an empty or
 * garbled status read as 0 would turn a failed call into a success. */
static inline int grpc_status_parse(const uint8_t *v, size_t len) {
  if (len == 0 || len > 2 || v[0] < '0' || v[0] > '9' || (len == 2 && (v[1] < '0' || v[1] > '9')))
    return -1;
  int s = len == 1 ? v[0] - '0' : (v[0] - '0') * 10 + (v[1] - '0');
  return s <= GRPC_UNAUTHENTICATED ? s : -1;
}

struct grpc_md {
  char *name;
  char *value;
};

struct grpc_conn;

struct grpc_call {
  grpc_server *srv;
  int32_t stream_id;

  /* I/O thread only. */
  struct grpc_conn *conn; /* NULL once the stream closed */
  struct grpc_call *conn_prev, *conn_next;
  const struct grpc_method *method;
  bool bad_method, bad_ctype, bad_encoding, md_overflow;
  bool want_rst;   /* reset the stream once the early response went out */
  bool early;      /* an error response was decided before dispatch: ignore further input */
  bool dispatched; /* handed to the worker pool */
  bool msg_done;   /* one complete request message received */
  bool responded;  /* response HEADERS submitted */
  bool deferred;   /* the data provider returned NGHTTP2_ERR_DEFERRED */
  uint8_t hdr[GRPC_FRAME_HDR];
  size_t hdr_len;
  size_t req_need; /* declared length of the message being received */

  /* Written by the I/O thread before dispatch, then read-only until free. */
  struct grpc_md md[GRPC_MAX_MD];
  size_t n_md, md_bytes;

  /* Under srv->mu. */
  uint8_t *req; /* request message; freed by grpc_call_finish */
  size_t req_len, req_cap;
  pthread_cond_t cv; /* the send queue drained or the stream closed */
  uint8_t *out;      /* framed response bytes not yet taken by nghttp2 */
  size_t out_off, out_len, out_cap;
  bool finished; /* grpc_call_finish ran (or the I/O thread decided the status) */
  int status;
  char *status_msg;
  bool closed; /* the stream is gone (reset, connection closed, server stopping) */
  bool dirty;  /* on srv->dirty, holding a reference */
  struct grpc_call *dirty_next;
  /* run_dirty's own link, for the list it took: once dirty is cleared a
   * handler may mark the call again, which rewrites dirty_next. */
  struct grpc_call *run_next;
  struct grpc_call *work_next;
  unsigned refs;
};

struct grpc_conn {
  grpc_server *srv;
  int fd;
  nghttp2_session *ses;
  struct grpc_call *calls; /* open streams that have a call */
  int64_t born_ms;
  bool got_settings;
  bool dead; /* close at the end of this loop iteration */
  struct grpc_conn *next;
};

struct grpc_server {
  struct grpc_server_opts o;
  int wake_fd; /* eventfd: handlers wake the I/O thread */
  pthread_t io;
  pthread_t *workers;
  unsigned n_workers;
  struct grpc_conn *conns; /* I/O thread only */
  size_t n_conns;
  nghttp2_session_callbacks *cbs;
  nghttp2_option *ngopt;
  uint64_t req_budget; /* bytes of request messages held at once, server-wide */

  pthread_mutex_t mu;
  pthread_cond_t work_cv;
  struct grpc_call *work_head, *work_tail;
  size_t n_pending;
  uint64_t req_bytes;
  struct grpc_call *dirty;
  bool stopping; /* the I/O thread is shutting down */
  bool workers_quit;
};

/* grpc_call.c */
grpc_call *grpc_call_new(grpc_server *s, int32_t stream_id);
void grpc_call_unref(grpc_call *c);
/* Under srv->mu: queue c for the I/O thread; returns true when the caller should wake it. */
bool grpc_call_mark_dirty_locked(grpc_call *c);
void grpc_server_wake(grpc_server *s);
/* I/O thread: the stream went away; wakes a blocked sender and drops the stream's reference. */
void grpc_call_closed(grpc_call *c);
/* Percent-encode msg per the gRPC spec into out (cap bytes, NUL-terminated, truncated on a
 * character). */
void grpc_percent_encode(const char *msg, char *out, size_t cap);
/* The inverse, of a grpc-message as received: at most cap bytes into out (not NUL-terminated, and
 * they may hold any byte, NUL included); returns their count. */
size_t grpc_percent_decode(const uint8_t *v, size_t len, char *out, size_t cap);

/* grpc_session.c */
int grpc_conn_session_new(struct grpc_conn *cn, ep_err *err);
/* Submit what a dirty call has for its stream: response headers, resumed data, trailers. */
void grpc_call_kick(grpc_call *c);
/* Decide the call's status on the I/O thread (an error found in the request) and respond. */
void grpc_call_fail_early(grpc_call *c, int status, const char *msg);

/* grpc.c */
/* Queue a complete request for a worker; responds RESOURCE_EXHAUSTED when the queue is full. */
void grpc_dispatch(grpc_call *c);

#endif
