/* gRPC server transport: h2c with prior knowledge on a unix socket (what containerd's proxy plugins
 * speak).
 *
 * Threads. One I/O thread runs a poll loop over the listening socket, an eventfd and every
 * connection; it alone owns the nghttp2 sessions (they are not thread-safe), so no session needs a
 * lock. One loop rather than a thread per connection because grpc-go multiplexes every RPC onto one
 * connection anyway, the thread count stays fixed whatever the number of clients, and stopping is
 * one join. The loop never blocks on a handler: handlers run on a fixed pool of max_workers threads
 * fed by a bounded queue (a full queue answers RESOURCE_EXHAUSTED), so a slow unpack never stalls
 * Stat or List on the same connection.
 *
 * Hand-off. A worker queues framed response bytes and its final status in the call under the server
 * mutex, puts the call on the server's dirty list and writes the eventfd; the I/O thread then
 * submits headers, resumes the deferred data provider or sends trailers. grpc_call_send blocks
 * while the call's queue holds GRPC_SENDQ_MAX bytes, so a server-streaming List to a slow reader
 * holds a bounded amount of memory: HTTP/2 flow control stops nghttp2 draining the queue, and the
 * queue stops the handler.
 *
 * Lifetime. A call is created at a request's HEADERS, dispatched at its END_STREAM, and freed when
 * both the stream closed and the handler finished (a reference count, see grpc_call.c). A reset
 * stream, a closed connection or grpc_server_stop mark the call closed: sends fail and
 * grpc_call_cancelled turns true.
 * grpc-timeout is not enforced here: a grpc-go client whose deadline passes resets the stream
 * itself, which cancels the call the same way.
 *
 * Hostile peers. A bad preface, a protocol error or a flood makes nghttp2 fail the session: that
 * connection alone is closed. Request messages are bounded by max_message and, together, by a
 * server-wide byte budget; metadata by count and bytes; connections by GRPC_MAX_CONNS; a connection
 * that sends no SETTINGS in GRPC_PREFACE_MS is closed. */
#include "plugin/grpc/grpc_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

void grpc_dispatch(grpc_call *c) {
  grpc_server *s = c->srv;
  c->dispatched = true;
  pthread_mutex_lock(&s->mu);
  bool full = s->n_pending >= GRPC_MAX_PENDING;
  if (!full) {
    c->refs++; /* the handler's */
    c->work_next = NULL;
    if (s->work_tail != NULL)
      s->work_tail->work_next = c;
    else
      s->work_head = c;
    s->work_tail = c;
    s->n_pending++;
    pthread_cond_signal(&s->work_cv);
  }
  pthread_mutex_unlock(&s->mu);
  if (full)
    grpc_call_fail_early(c, GRPC_RESOURCE_EXHAUSTED, "too many calls waiting for a worker");
}

static void *worker_main(void *arg) {
  grpc_server *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (s->work_head == NULL && !s->workers_quit)
      pthread_cond_wait(&s->work_cv, &s->mu);
    grpc_call *c = s->work_head;
    if (c == NULL)
      break;
    s->work_head = c->work_next;
    if (s->work_head == NULL)
      s->work_tail = NULL;
    s->n_pending--;
    bool skip = c->closed;
    const uint8_t *req = c->req;
    size_t req_len = c->req_len;
    pthread_mutex_unlock(&s->mu);
    if (skip)
      grpc_call_finish(c, GRPC_CANCELLED, NULL);
    else
      c->method->fn(c, req != NULL ? req : (const uint8_t *)"", req_len, c->method->ud);
    pthread_mutex_lock(&s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static void conn_close(struct grpc_conn *cn) {
  while (cn->calls != NULL) {
    grpc_call *c = cn->calls;
    cn->calls = c->conn_next;
    grpc_call_closed(c);
  }
  nghttp2_session_del(cn->ses);
  close(cn->fd);
  cn->srv->n_conns--;
  free(cn);
}

static void accept_conns(grpc_server *s) {
  /* The listening socket is the caller's and may be blocking: accept only what poll says is there.
   */
  struct pollfd p = {.fd = s->o.listen_fd, .events = POLLIN};
  for (int i = 0; i < 16 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN); i++) {
    int fd = accept4(s->o.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
        ep_log_warn("grpc: accept: %s", strerror(errno));
      return;
    }
    struct grpc_conn *cn = s->n_conns < GRPC_MAX_CONNS ? calloc(1, sizeof(*cn)) : NULL;
    if (cn == NULL) {
      ep_log_warn("grpc: refusing a connection: %zu open", s->n_conns);
      close(fd);
      continue;
    }
    *cn = (struct grpc_conn){.srv = s, .fd = fd, .born_ms = ep_mono_ms(), .next = s->conns};
    ep_err err = {0};
    s->n_conns++;
    if (grpc_conn_session_new(cn, &err) < 0) {
      ep_log_warn("grpc: %s", err.msg);
      nghttp2_session_del(cn->ses);
      close(fd);
      s->n_conns--;
      free(cn);
      continue;
    }
    s->conns = cn;
  }
}

static void conn_read(struct grpc_conn *cn) {
  uint8_t buf[16384];
  for (int i = 0; i < 8 && !cn->dead; i++) {
    ssize_t n = recv(cn->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
      return;
    if (n <= 0) {
      cn->dead = true;
      return;
    }
    ssize_t rv = nghttp2_session_mem_recv(cn->ses, buf, (size_t)n);
    if (rv < 0) {
      ep_log_debug("grpc: closing a connection: %s", nghttp2_strerror((int)rv));
      nghttp2_session_send(cn->ses); /* a GOAWAY, if nghttp2 queued one */
      cn->dead = true;
    }
  }
}

/* Take the dirty list and submit what each call has for its stream. */
static void run_dirty(grpc_server *s) {
  uint64_t v;
  while (read(s->wake_fd, &v, sizeof(v)) < 0 && errno == EINTR)
    ;
  pthread_mutex_lock(&s->mu);
  grpc_call *list = s->dirty;
  s->dirty = NULL;
  for (grpc_call *c = list; c != NULL; c = c->dirty_next) {
    c->run_next = c->dirty_next;
    c->dirty = false;
  }
  pthread_mutex_unlock(&s->mu);
  while (list != NULL) {
    grpc_call *c = list;
    list = c->run_next;
    if (c->conn != NULL && !c->conn->dead)
      grpc_call_kick(c);
    grpc_call_unref(c);
  }
}

/* Flush each session; drop the connections that are done, failed or silent since they connected. */
static void conns_settle(grpc_server *s) {
  int64_t now = ep_mono_ms();
  for (struct grpc_conn **pp = &s->conns; *pp != NULL;) {
    struct grpc_conn *cn = *pp;
    if (!cn->dead && nghttp2_session_send(cn->ses) != 0)
      cn->dead = true;
    if (!nghttp2_session_want_read(cn->ses) && !nghttp2_session_want_write(cn->ses))
      cn->dead = true;
    if (!cn->got_settings && now - cn->born_ms > GRPC_PREFACE_MS)
      cn->dead = true;
    if (cn->dead) {
      *pp = cn->next;
      conn_close(cn);
    } else {
      pp = &cn->next;
    }
  }
}

static void io_poll_once(grpc_server *s, struct pollfd *pfd, struct grpc_conn **pconn) {
  size_t n = 0;
  pfd[n++] = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};
  pfd[n++] = (struct pollfd){.fd = s->o.listen_fd, .events = POLLIN};
  for (struct grpc_conn *cn = s->conns; cn != NULL; cn = cn->next) {
    short ev = 0;
    if (nghttp2_session_want_read(cn->ses))
      ev |= POLLIN;
    if (nghttp2_session_want_write(cn->ses))
      ev |= POLLOUT;
    pconn[n] = cn;
    pfd[n++] = (struct pollfd){.fd = cn->fd, .events = ev};
  }
  if (poll(pfd, n, 1000) < 0)
    return;
  for (size_t i = 2; i < n; i++)
    if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
      conn_read(pconn[i]);
  if (pfd[0].revents & POLLIN)
    run_dirty(s);
  if (pfd[1].revents & POLLIN)
    accept_conns(s);
}

/* Stopping: GOAWAY on every connection, one flush, then close them all (which cancels their calls).
 */
static void io_shutdown(grpc_server *s) {
  for (struct grpc_conn *cn = s->conns; cn != NULL; cn = cn->next) {
    nghttp2_submit_goaway(cn->ses, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(cn->ses), NGHTTP2_NO_ERROR, NULL,
                          0);
    nghttp2_session_send(cn->ses);
  }
  while (s->conns != NULL) {
    struct grpc_conn *cn = s->conns;
    s->conns = cn->next;
    conn_close(cn);
  }
}

static void *io_main(void *arg) {
  grpc_server *s = arg;
  struct pollfd pfd[GRPC_MAX_CONNS + 2];
  struct grpc_conn *pconn[GRPC_MAX_CONNS + 2];
  for (;;) {
    pthread_mutex_lock(&s->mu);
    bool stop = s->stopping;
    pthread_mutex_unlock(&s->mu);
    if (stop)
      break;
    io_poll_once(s, pfd, pconn);
    conns_settle(s);
  }
  io_shutdown(s);
  return NULL;
}

static void server_free(grpc_server *s) {
  while (s->dirty != NULL) {
    grpc_call *c = s->dirty;
    s->dirty = c->dirty_next;
    grpc_call_unref(c);
  }
  if (s->wake_fd >= 0)
    close(s->wake_fd);
  nghttp2_session_callbacks_del(s->cbs);
  nghttp2_option_del(s->ngopt);
  pthread_cond_destroy(&s->work_cv);
  pthread_mutex_destroy(&s->mu);
  free(s->workers);
  free(s);
}

static void workers_join(grpc_server *s) {
  pthread_mutex_lock(&s->mu);
  s->workers_quit = true;
  pthread_cond_broadcast(&s->work_cv);
  pthread_mutex_unlock(&s->mu);
  for (unsigned i = 0; i < s->n_workers; i++)
    pthread_join(s->workers[i], NULL);
  s->n_workers = 0;
}

static int server_threads(grpc_server *s, unsigned n, ep_err *err) {
  s->workers = calloc(n, sizeof(*s->workers));
  if (s->workers == NULL)
    return ep_error(err, EP_EINTERNAL, "grpc: out of memory");
  for (; s->n_workers < n; s->n_workers++) {
    int rv = pthread_create(&s->workers[s->n_workers], NULL, worker_main, s);
    if (rv != 0) {
      errno = rv;
      return ep_syserror(err, EP_EINTERNAL, "grpc: worker thread");
    }
  }
  int rv = pthread_create(&s->io, NULL, io_main, s);
  if (rv != 0) {
    errno = rv;
    return ep_syserror(err, EP_EINTERNAL, "grpc: I/O thread");
  }
  return 0;
}

int grpc_server_start(const struct grpc_server_opts *o, grpc_server **out, ep_err *err) {
  if (o->listen_fd < 0 || (o->n_methods > 0 && o->methods == NULL))
    return ep_error(err, EP_EINVAL, "grpc: no listening socket or method table");
  grpc_server *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return ep_error(err, EP_EINTERNAL, "grpc: out of memory");
  s->o = *o;
  if (s->o.max_message == 0)
    s->o.max_message = GRPC_DEFAULT_MAX_MESSAGE;
  if (s->o.max_message > UINT32_MAX)
    s->o.max_message = UINT32_MAX;
  unsigned workers = o->max_workers ? o->max_workers : GRPC_DEFAULT_WORKERS;
  uint64_t budget = 4 * (uint64_t)s->o.max_message;
  s->req_budget = budget > 64u << 20 ? budget : 64u << 20;
  int rc = pthread_mutex_init(&s->mu, NULL);
  if (rc == 0 && (rc = pthread_cond_init(&s->work_cv, NULL)) != 0)
    pthread_mutex_destroy(&s->mu);
  if (rc != 0) {
    free(s);
    return ep_error(err, EP_EINTERNAL, "grpc: cannot create a mutex or condition");
  }
  s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->wake_fd < 0) {
    int rv = ep_syserror(err, EP_EIO, "grpc: eventfd");
    server_free(s);
    return rv;
  }
  if (nghttp2_option_new(&s->ngopt) != 0) {
    server_free(s);
    return ep_error(err, EP_EINTERNAL, "grpc: nghttp2 options");
  }
  nghttp2_option_set_max_outbound_ack(s->ngopt, 1000);
  int rv = server_threads(s, workers, err);
  if (rv < 0) {
    workers_join(s);
    server_free(s);
    return rv;
  }
  *out = s;
  return 0;
}

void grpc_server_stop(grpc_server *s) {
  if (s == NULL)
    return;
  pthread_mutex_lock(&s->mu);
  s->stopping = true;
  pthread_mutex_unlock(&s->mu);
  grpc_server_wake(s);
  pthread_join(s->io, NULL);
  workers_join(s);
  server_free(s);
}
