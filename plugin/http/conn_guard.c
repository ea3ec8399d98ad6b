/* The request-header deadline.
 *
 * Why: libmicrohttpd 0.9.75 (Debian 12) has only MHD_OPTION_CONNECTION_TIMEOUT,
 * an idle timeout that any byte resets, so a client sending one header byte
 * every few seconds (slowloris) holds a connection, and in
 * thread-per-connection mode a thread, for as long as it likes; a few
 * hundred such clients take the endpoint down. Nothing in that version
 * bounds the time to a complete request.
 *
 * How: MHD_OPTION_NOTIFY_CONNECTION tells us when a connection starts and
 * closes; we keep each open connection on a list with the time its current
 * request may have begun (the connection's start, or the end of the
 * previous request on a kept-alive connection) and whether its headers are
 * complete (the access handler's first call says so). A sweeper thread
 * looks once a second and shutdown()s the socket of every connection whose
 * headers are overdue: its own connection thread then sees the end of the
 * stream and closes it the ordinary way. shutdown() rather than close():
 * the fd stays MHD's, and a connection leaves our list (under our lock)
 * before MHD closes its fd, so we never touch a reused fd.
 *
 * An idle kept-alive connection is thereby closed after the deadline too;
 * HTTP clients reopen one when needed (Go's transport retries a GET on a
 * connection the server closed).
 *
 * Shedding: at its connection limit libmicrohttpd accepts and closes every
 * new connection, so a few hundred slow clients would still lock everyone
 * else out for a whole deadline (and a local attacker reconnecting for
 * good: every local client is 127.0.0.1, a per-address limit cannot help
 * there). So libmicrohttpd's own limit is set a little above ours, and a
 * connection that takes us past ours sheds the connection that has been
 * waiting longest for its headers — a slowloris one, never a request being
 * served; the new one itself when no other waits. */
#include "plugin/http/conn_guard.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"

struct guard_conn {
  struct guard_conn *prev, *next;
  int fd;
  int64_t since_ms; /* when the current request may have begun */
  bool waiting;     /* headers not complete yet */
  bool cut;         /* shut down by the sweeper */
};

struct conn_guard {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  bool stop;
  pthread_t thread;
  int timeout_ms;
  void (*tick)(void *ud);
  void *tick_ud;
  int tick_ms;
  struct guard_conn head; /* list sentinel */
  uint64_t cuts;
  unsigned max_conns; /* 0 = no shedding */
  unsigned live;      /* connections not cut */
};

static void sweep(conn_guard *g, int64_t now) {
  pthread_mutex_lock(&g->lock);
  for (struct guard_conn *k = g->head.next; k != &g->head; k = k->next) {
    if (!k->waiting || k->cut || now - k->since_ms < g->timeout_ms)
      continue;
    shutdown(k->fd, SHUT_RDWR);
    k->cut = true;
    g->cuts++;
    g->live--;
    ep_log_debug("http: closing a connection whose request headers were not complete within %d s",
                 g->timeout_ms / 1000);
  }
  pthread_mutex_unlock(&g->lock);
}

static void *sweeper(void *arg) {
  conn_guard *g = arg;
  int64_t last_tick = ep_mono_ms() - g->tick_ms; /* the first tick at once */
  pthread_mutex_lock(&g->lock);
  while (!g->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&g->wake, &g->lock, &ts);
    if (g->stop)
      break;
    pthread_mutex_unlock(&g->lock);
    int64_t now = ep_mono_ms();
    sweep(g, now);
    if (g->tick != NULL && now - last_tick >= g->tick_ms) {
      last_tick = now;
      g->tick(g->tick_ud);
    }
    pthread_mutex_lock(&g->lock);
  }
  pthread_mutex_unlock(&g->lock);
  return NULL;
}

int conn_guard_new(int header_timeout_ms, unsigned max_conns, void (*tick)(void *ud), void *ud,
                   int tick_ms, conn_guard **out, ep_err *err) {
  conn_guard *g = calloc(1, sizeof *g);
  if (g == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  g->timeout_ms = header_timeout_ms;
  g->max_conns = max_conns;
  g->tick = tick;
  g->tick_ud = ud;
  g->tick_ms = tick_ms;
  g->head.next = g->head.prev = &g->head;
  int rc = pthread_mutex_init(&g->lock, NULL);
  if (rc == 0 && (rc = pthread_cond_init(&g->wake, NULL)) != 0)
    pthread_mutex_destroy(&g->lock);
  if (rc != 0) {
    free(g);
    return ep_error(err, EP_EINTERNAL, "cannot create the connection sweeper's lock: error %d", rc);
  }
  rc = pthread_create(&g->thread, NULL, sweeper, g);
  if (rc != 0) {
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
    free(g);
    return ep_error(err, EP_EINTERNAL, "cannot start the connection sweeper: error %d", rc);
  }
  *out = g;
  return 0;
}

void conn_guard_free(conn_guard *g) {
  if (g == NULL)
    return;
  pthread_mutex_lock(&g->lock);
  g->stop = true;
  pthread_cond_signal(&g->wake);
  pthread_mutex_unlock(&g->lock);
  pthread_join(g->thread, NULL);
  while (g->head.next != &g->head) { /* none left after MHD_stop_daemon */
    struct guard_conn *k = g->head.next;
    g->head.next = k->next;
    free(k);
  }
  pthread_cond_destroy(&g->wake);
  pthread_mutex_destroy(&g->lock);
  free(g);
}

/* Over the limit: cuts the connection waiting longest for its headers.
 * Called with the lock held. */
static void shed_locked(conn_guard *g) {
  struct guard_conn *oldest = NULL;
  for (struct guard_conn *k = g->head.next; k != &g->head; k = k->next)
    if (k->waiting && !k->cut && (oldest == NULL || k->since_ms < oldest->since_ms))
      oldest = k;
  if (oldest == NULL)
    return; /* every connection is being served: libmicrohttpd's margin takes it */
  shutdown(oldest->fd, SHUT_RDWR);
  oldest->cut = true;
  g->cuts++;
  g->live--;
}

void conn_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe) {
  conn_guard *g = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct guard_conn *k = calloc(1, sizeof *k);
    if (k == NULL || ci == NULL) { /* unguarded, as before: the idle timeout still holds */
      free(k);
      *socket_context = NULL;
      return;
    }
    k->fd = ci->connect_fd;
    k->since_ms = ep_mono_ms();
    k->waiting = true;
    pthread_mutex_lock(&g->lock);
    k->next = &g->head;
    k->prev = g->head.prev;
    g->head.prev->next = k;
    g->head.prev = k;
    if (++g->live > g->max_conns && g->max_conns > 0)
      shed_locked(g);
    pthread_mutex_unlock(&g->lock);
    *socket_context = k;
    return;
  }
  struct guard_conn *k = *socket_context;
  if (k == NULL)
    return;
  pthread_mutex_lock(&g->lock);
  k->prev->next = k->next;
  k->next->prev = k->prev;
  if (!k->cut)
    g->live--;
  pthread_mutex_unlock(&g->lock);
  free(k);
  *socket_context = NULL;
}

static struct guard_conn *conn_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci != NULL ? ci->socket_context : NULL;
}

void conn_guard_headers_done(conn_guard *g, struct MHD_Connection *c) {
  struct guard_conn *k = g != NULL ? conn_of(c) : NULL;
  if (k == NULL)
    return;
  pthread_mutex_lock(&g->lock);
  k->waiting = false;
  pthread_mutex_unlock(&g->lock);
}

void conn_guard_request_done(conn_guard *g, struct MHD_Connection *c) {
  struct guard_conn *k = g != NULL ? conn_of(c) : NULL;
  if (k == NULL)
    return;
  pthread_mutex_lock(&g->lock);
  k->waiting = true;
  k->since_ms = ep_mono_ms();
  pthread_mutex_unlock(&g->lock);
}

uint64_t conn_guard_cut_count(conn_guard *g) {
  pthread_mutex_lock(&g->lock);
  uint64_t n = g->cuts;
  pthread_mutex_unlock(&g->lock);
  return n;
}
