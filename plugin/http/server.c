/* The registry endpoint.
 *
 * libmicrohttpd runs one thread per connection (MHD_USE_THREAD_PER_CONNECTION):
 * a response that follows a blob still being fetched simply blocks in its
 * content callback on the blob's pipe until bytes land, which keeps the
 * streaming path short and obvious. Threads get small stacks and each
 * connection a bounded memory pool, so memory grows with connections, never
 * with blob sizes. Complete blobs are answered from their file descriptor,
 * which MHD sends with sendfile().
 *
 * Bounds (issue 11): a thread per connection makes every idle or slow
 * connection cost a thread, so connections are bounded three ways:
 * --max-connections per endpoint (with poll(), not select(), so it holds
 * past FD_SETSIZE, and RLIMIT_NOFILE raised to fit), a connection limit per
 * client address (--peer-max-per-ip on the peer endpoint; off on the local
 * one, where every client is 127.0.0.1), and a deadline for the request
 * headers that no trickle of bytes resets (conn_guard.c). So a peer that
 * has not authenticated holds a thread for at most --header-timeout, and
 * one address at most --peer-max-per-ip of them. A streamed answer sends
 * its status line only once the first byte is there, so a fetch that fails
 * first (disk full: 507) is answered with its own status.
 *
 * Every answer carries Docker-Distribution-API-Version; every error is the
 * OCI error JSON. The runtime is never answered 401: on any error status
 * containerd moves on to the next host (the upstream), and a 401 would make
 * it hand us its credentials.
 *
 * The same code serves the peer endpoint (SERVER_PEER), where other nodes
 * pull: a parent is just a registry for its children. There, a request must
 * carry Basic auth with the locality secret (any username: the node id), and
 * 401 is the right answer without it; X-Edgepull-Node names the asking node,
 * which the fetch this request may start never asks back; X-Edgepull-Hops
 * counts forwarding hops, so a loop through stale parent assignments ends
 * with 508 instead of circling. A blob this node lacks goes through its own
 * fetcher — join the fetch in flight or start one — which is what makes the
 * chain cut-through: bytes flow on as they arrive. */
#include "plugin/http/server.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "plugin/fetch/sources.h"
#include "plugin/http/admin.h"
#include "plugin/http/conn_guard.h"
#include "plugin/http/http.h"
#include "plugin/http/peer_tls.h"
#include "plugin/mirror/mirror.h"
#include "plugin/ref/ref.h"
#include "store/prune.h"

/* A connection thread's stack: 256 KiB reserved, only touched pages are
 * resident. Measured (issue 14): at most 20 KiB resident in a RelWithDebInfo
 * build during integration.test_peer_tls (GnuTLS handshakes, sqlite, curl
 * HEADs), and that test and test_http_bounds pass under ASan with 64 KiB. */
#define SERVER_STACK_SIZE (256 * 1024)
/* libmicrohttpd zeroes a connection's whole pool when a kept-alive
 * connection starts its next request, so every open connection holds all of
 * it resident: 32 KiB, not 128 KiB (issue 14: ~96 KiB less per runtime, child
 * or peer connection). It still holds the request line and headers up to
 * HTTP_HEADERS_TOTAL_MAX (16 KiB: bearer tokens of several KiB fit) for our
 * own JSON 431; past ~28 KiB libmicrohttpd answers 431 itself. The read
 * buffer grows inside the pool in libmicrohttpd's default 1 KiB steps
 * (MHD_OPTION_CONNECTION_MEMORY_INCREMENT), fine for a 32 KiB pool. */
#define SERVER_POOL_SIZE (32 * 1024)
/* The buffer a callback response is read into: libmicrohttpd malloc()s it
 * with the response (not from the pool above) and frees it with the
 * response, so only a response being streamed holds it. 64 KiB, not 16: a
 * block is a pread(), a poll() and a send(), and on a node that forwards
 * while it receives CPU binds before memory does (bench/locality_import's
 * CPU table). */
#define SERVER_BLOCK_SIZE (64 * 1024)
#define SERVER_WAIT_MS (120 * 1000)
#define SERVER_METRICS_MAX (1 << 20) /* the exposition is tens of kB */

#define PEER_AUTH_B64_MAX 6000 /* base64 of "node:secret", secret <= 4 KiB */

struct server {
  struct server_deps d;
  struct MHD_Daemon *mhd;
  enum server_mode mode;
  bool tls;          /* peer mode with mutual TLS */
  conn_guard *guard; /* the request-header deadline */
};

/* What a request is, beyond its URL: who asks (peer mode). */
struct req_ctx {
  bool peer;
  char node[PROTO_ID_MAX + 1];
  struct fetch_request fr;
};

/* *req_cls after a request's first call (its headers), unless it holds a
 * blob: then a malloc'd digest_t that request_completed releases. */
static const int headers_seen = 1;

struct pipe_reader {
  blob_pipe *pipe;
  uint64_t first;
  fetcher *served;         /* peer mode: counts the bytes sent */
  struct metrics *metrics; /* counts this reader while it lives; NULL = none */
  ep_ratelimit *rate;      /* peer mode: --peer-max-rate, NULL = none */
};

static ssize_t pipe_reader_cb(void *cls, uint64_t pos, char *buf, size_t max) {
  struct pipe_reader *r = cls;
  long n = pipe_read(r->pipe, r->first + pos, buf, max, SERVER_WAIT_MS);
  if (n > 0 && ep_ratelimit_take(r->rate, (size_t)n) < 0)
    return MHD_CONTENT_READER_END_WITH_ERROR; /* shutting down */
  if (n > 0 && r->served != NULL)
    fetcher_count_served(r->served, (uint64_t)n);
  if (n > 0)
    return n;
  if (n == 0)
    return MHD_CONTENT_READER_END_OF_STREAM;
  return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* A stored blob served to peers under --peer-max-rate: read in blocks that
 * each pay the bucket (sendfile would send the range in one go). */
struct fd_reader {
  int fd;
  uint64_t first;
  ep_ratelimit *rate;
};

static ssize_t fd_reader_cb(void *cls, uint64_t pos, char *buf, size_t max) {
  struct fd_reader *r = cls;
  ssize_t n = pread(r->fd, buf, max, (off_t)(r->first + pos));
  if (n <= 0 || ep_ratelimit_take(r->rate, (size_t)n) < 0)
    return MHD_CONTENT_READER_END_WITH_ERROR; /* the store lost it, or shutting down */
  return n;
}

static void fd_reader_free(void *cls) {
  struct fd_reader *r = cls;
  close(r->fd);
  free(r);
}

static struct MHD_Response *stored_blob_response(struct server *s, int fd, uint64_t first,
                                                 uint64_t len) {
  if (s->mode != SERVER_PEER || s->d.peer_rate == NULL) {
    /* Once the response exists MHD owns fd and closes it with the response;
     * when creation fails the fd is still ours. */
    struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64(len, fd, first);
    if (resp == NULL)
      close(fd);
    return resp;
  }
  struct fd_reader *r = calloc(1, sizeof *r);
  if (r == NULL) {
    close(fd);
    return NULL;
  }
  *r = (struct fd_reader){.fd = fd, .first = first, .rate = s->d.peer_rate};
  struct MHD_Response *resp =
      MHD_create_response_from_callback(len, SERVER_BLOCK_SIZE, fd_reader_cb, r, fd_reader_free);
  if (resp == NULL)
    fd_reader_free(r);
  return resp;
}

static ssize_t no_body_cb(void *cls, uint64_t pos, char *buf, size_t max) {
  return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void pipe_reader_free(void *cls) {
  struct pipe_reader *r = cls;
  if (r->metrics != NULL)
    atomic_fetch_sub_explicit(&r->metrics->readers, 1, memory_order_relaxed);
  pipe_unref(r->pipe);
  free(r);
}

/* Works out the byte range to answer; queues 416/400 itself. Returns 1 to
 * go on (status set to 200 or 206), 0 when an answer was queued. */
static int choose_range(struct MHD_Connection *c, uint64_t size, uint64_t *first, uint64_t *len,
                        unsigned *status, enum MHD_Result *queued) {
  const char *hdr = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
  *first = 0;
  *len = size;
  *status = MHD_HTTP_OK;
  if (hdr == NULL)
    return 1;
  uint64_t a = 0, b = 0;
  ep_err e = {0};
  int r = ref_parse_range(hdr, size, &a, &b, &e);
  if (r == -EP_ERANGE) {
    *queued = http_range_unsatisfiable(c, size);
    return 0;
  }
  if (r < 0) {
    *queued = http_error(c, MHD_HTTP_BAD_REQUEST, "RANGE_INVALID", e.msg);
    return 0;
  }
  *first = a;
  *len = b - a + 1;
  *status = MHD_HTTP_PARTIAL_CONTENT;
  return 1;
}

static enum MHD_Result queue_blob(struct MHD_Connection *c, struct MHD_Response *resp,
                                  const digest_t *d, uint64_t size, uint64_t first, uint64_t len,
                                  unsigned status) {
  if (resp == NULL)
    return http_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "UNKNOWN", "cannot build a response");
  char dg[DIGEST_STR_LEN + 1];
  digest_format(d, dg);
  char cr[96];
  snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)first,
           (unsigned long long)(first + len - 1), (unsigned long long)size);
  if (!http_common_headers(resp) ||
      MHD_add_response_header(resp, "Docker-Content-Digest", dg) != MHD_YES ||
      MHD_add_response_header(resp, "ETag", dg) != MHD_YES ||
      MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream") !=
          MHD_YES ||
      MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes") != MHD_YES ||
      (status == MHD_HTTP_PARTIAL_CONTENT &&
       MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr) != MHD_YES)) {
    MHD_destroy_response(resp);
    return http_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "UNKNOWN", "cannot set a header");
  }
  enum MHD_Result ret = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static void count_hit(struct server *s, uint64_t len, bool local) {
  if (s->d.metrics == NULL)
    return;
  metrics_add(&s->d.metrics->cache_hits, 1);
  if (local)
    metrics_count_source(s->d.metrics, METRICS_SRC_LOCAL, len);
}

static enum MHD_Result serve_stored_blob(struct server *s, struct MHD_Connection *c,
                                         const digest_t *d, int fd, uint64_t size, bool count,
                                         bool head) {
  uint64_t first, len;
  unsigned status;
  enum MHD_Result queued = MHD_NO;
  if (!choose_range(c, size, &first, &len, &status, &queued)) {
    close(fd);
    return queued;
  }
  ep_err e = {0};
  if (s->d.touch != NULL)
    touch_batch_add(s->d.touch, d, (int64_t)time(NULL));
  else if (index_blob_touch(s->d.idx, d, (int64_t)time(NULL), &e) < 0)
    ep_log_debug("index: touching %s: %s", d->hex, e.msg);
  if (count) /* sendfile gives no progress: counted when queued */
    fetcher_count_served(s->d.fetch, len);
  if (!head)
    count_hit(s, len, s->mode == SERVER_LOCAL);
  struct MHD_Response *resp = stored_blob_response(s, fd, first, len);
  return queue_blob(c, resp, d, size, first, len, status);
}

static enum MHD_Result fetch_failed(struct server *s, struct MHD_Connection *c, const digest_t *d,
                                    int pipe_status) {
  ep_err e = {0};
  if (pipe_status == PIPE_TIMEOUT)
    return http_error(c, MHD_HTTP_GATEWAY_TIMEOUT, "UNAVAILABLE",
                      "timed out waiting for the upstream");
  if (!fetcher_last_error(s->d.fetch, d, &e))
    ep_error(&e, EP_EUPSTREAM, "fetch failed");
  return http_error_from(c, &e, "BLOB_UNKNOWN");
}

static enum MHD_Result serve_streamed_blob(struct server *s, struct MHD_Connection *c,
                                           const struct ref_target *t, bool head,
                                           const struct req_ctx *rc) {
  ep_cleanup_pipe blob_pipe *p = NULL;
  ep_err e = {0};
  if (fetcher_open_req(s->d.fetch, t->registry, t->name, &t->digest, &rc->fr, &p, &e) < 0)
    return http_error_from(c, &e, "BLOB_UNKNOWN");
  uint64_t size = 0;
  int st = pipe_wait_size(p, &size, SERVER_WAIT_MS);
  if (st != PIPE_MORE && st != PIPE_DONE)
    return fetch_failed(s, c, &t->digest, st);
  uint64_t first, len;
  unsigned status;
  enum MHD_Result queued = MHD_NO;
  if (!choose_range(c, size, &first, &len, &status, &queued))
    return queued;
  /* The status line waits for the first byte of the range: a fetch that
   * fails before it (disk full, no source) is answered with its own status
   * (507, 503...) instead of a 200 whose body is then cut at once. A
   * failure later cuts the connection short of Content-Length: the last
   * byte is only published once verified, so a client never mistakes a cut
   * body for a whole one. A HEAD sends no body: it answers at once. */
  uint64_t avail = 0;
  if (!head && len > 0 && (st = pipe_wait(p, first, &avail, SERVER_WAIT_MS)) < 0)
    return fetch_failed(s, c, &t->digest, st);
  struct pipe_reader *r = calloc(1, sizeof *r);
  if (r == NULL)
    return http_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "UNKNOWN", "out of memory");
  r->pipe = ep_steal_ptr(p); /* pipe_reader_free drops it */
  r->first = first;
  r->served = rc->peer && !head ? s->d.fetch : NULL;
  r->rate = s->mode == SERVER_PEER ? s->d.peer_rate : NULL;
  if (!head && s->d.metrics != NULL) {
    r->metrics = s->d.metrics;
    atomic_fetch_add_explicit(&r->metrics->readers, 1, memory_order_relaxed);
    metrics_add(&r->metrics->cache_misses, 1);
  }
  /* For a HEAD, MHD sends no body and never calls the reader. */
  struct MHD_Response *resp = MHD_create_response_from_callback(
      len, SERVER_BLOCK_SIZE, pipe_reader_cb, r, pipe_reader_free);
  if (resp == NULL)
    pipe_reader_free(r);
  return queue_blob(c, resp, &t->digest, size, first, len, status);
}

static enum MHD_Result head_remote_blob(struct server *s, struct MHD_Connection *c,
                                        const struct ref_target *t) {
  uint64_t size = 0;
  ep_err e = {0};
  int r = upstream_blob_head(s->d.up, t->registry, t->name, &t->digest, &size, &e);
  if (r == 0)
    return http_error(c, MHD_HTTP_NOT_FOUND, "BLOB_UNKNOWN", "blob unknown to the upstream");
  if (r < 0)
    return http_error_from(c, &e, "BLOB_UNKNOWN");
  /* A HEAD must carry the blob's length: a callback response of that size
   * whose reader MHD never calls for HEAD. */
  struct MHD_Response *resp =
      MHD_create_response_from_callback(size, 1, no_body_cb, NULL, NULL); /* never read */
  return queue_blob(c, resp, &t->digest, size, 0, size, MHD_HTTP_OK);
}

static enum MHD_Result serve_blob(struct server *s, struct MHD_Connection *c,
                                  const struct ref_target *t, bool head, const struct req_ctx *rc) {
  int fd = -1;
  uint64_t size = 0;
  ep_err e = {0};
  int r = store_open_blob(s->d.st, &t->digest, &fd, &size, &e);
  if (r == 0)
    return serve_stored_blob(s, c, &t->digest, fd, size, rc->peer && !head, head);
  if (r != -EP_ENOTFOUND)
    return http_error_from(c, &e, "BLOB_UNKNOWN");
  if (head) {
    blob_pipe *p = pipe_table_find(s->d.pipes, &t->digest);
    /* A node that may not go upstream learns the size through the
     * locality: the HEAD starts the fetch the GET will join. */
    if (p == NULL && sources_upstream_allowed(s->d.src))
      return head_remote_blob(s, c, t);
    if (p != NULL)
      pipe_unref(p);
  }
  return serve_streamed_blob(s, c, t, head, rc);
}

static enum MHD_Result serve_manifest(struct server *s, struct MHD_Connection *c,
                                      const struct ref_target *t, bool head,
                                      const struct req_ctx *rc) {
  /* Go clients (skopeo, podman) send one Accept line per media type;
   * containerd joins them with commas. Pass them all upstream as one. */
  char accept[HTTP_ACCEPT_MAX];
  http_join_header(c, MHD_HTTP_HEADER_ACCEPT, accept, sizeof accept);
  struct mirror_manifest m;
  ep_err e = {0};
  if (mirror_manifest_req(s->d.mirror, t, accept[0] != '\0' ? accept : NULL, &rc->fr, &m, &e) < 0) {
    if (e.code == EP_EUNREACH || e.code == EP_EUPSTREAM || e.code == EP_ECANCELED)
      return http_error_detail(c, MHD_HTTP_NOT_FOUND, "MANIFEST_UNKNOWN", &e);
    return http_error_from(c, &e, "MANIFEST_UNKNOWN");
  }
  char dg[DIGEST_STR_LEN + 1];
  digest_format(&m.digest, dg);
  struct MHD_Response *resp = MHD_create_response_from_buffer(m.len, m.body, MHD_RESPMEM_MUST_FREE);
  if (resp == NULL) {
    mirror_manifest_clear(&m);
    return http_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "UNKNOWN", "out of memory");
  }
  m.body = NULL;
  /* A HEAD needs the manifest too (its digest and length); MHD drops the body. */
  (void)head;
  if (!http_common_headers(resp) ||
      MHD_add_response_header(resp, "Docker-Content-Digest", dg) != MHD_YES ||
      MHD_add_response_header(resp, "ETag", dg) != MHD_YES ||
      (m.media_type[0] != '\0' &&
       MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, m.media_type) != MHD_YES) ||
      (m.stale && MHD_add_response_header(resp, MHD_HTTP_HEADER_WARNING,
                                          "110 edgepull \"Response is Stale\"") != MHD_YES)) {
    MHD_destroy_response(resp);
    return http_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "UNKNOWN", "cannot set a header");
  }
  enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* Basic credentials whose password is the locality secret; the username
 * (the node id) is not checked here: X-Edgepull-Node carries it. */
static bool peer_credentials_ok(struct server *s, struct MHD_Connection *c) {
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (h == NULL || strncasecmp(h, "Basic ", 6) != 0)
    return false;
  h += 6;
  while (*h == ' ')
    h++;
  size_t n = strnlen(h, PEER_AUTH_B64_MAX + 1);
  if (n == 0 || n > PEER_AUTH_B64_MAX || n % 4 != 0)
    return false;
  unsigned char raw[PEER_AUTH_B64_MAX / 4 * 3 + 1];
  int len = EVP_DecodeBlock(raw, (const unsigned char *)h, (int)n);
  if (len < 0)
    return false;
  len -= (h[n - 1] == '=') + (h[n - 2] == '=');
  const unsigned char *colon = memchr(raw, ':', (size_t)len);
  const char *secret = s->d.peer_secret;
  size_t want = strlen(secret);
  bool ok = false;
  if (colon != NULL) {
    size_t plen = (size_t)len - (size_t)(colon + 1 - raw);
    ok = plen == want && CRYPTO_memcmp(colon + 1, secret, want) == 0;
  }
  OPENSSL_cleanse(raw, sizeof raw);
  return ok;
}

/* Peer-mode checks before routing: credentials, node id, hops. Returns
 * true to go on, false with *queued set when an answer was queued. */
static bool peer_admit(struct server *s, struct MHD_Connection *c, struct req_ctx *rc,
                       enum MHD_Result *queued) {
  if (s->d.peer_secret[0] != '\0' && !peer_credentials_ok(s, c)) {
    *queued = http_error_header(c, MHD_HTTP_UNAUTHORIZED, "UNAUTHORIZED",
                                "the peer endpoint needs the locality's credentials",
                                MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"edgepull-peer\"");
    return false;
  }
  const char *node = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Edgepull-Node");
  if (node != NULL && !names_node_id_valid(node)) {
    *queued = http_error(c, MHD_HTTP_BAD_REQUEST, "UNSUPPORTED", "invalid X-Edgepull-Node");
    return false;
  }
  /* The node a request speaks for is the one its certificate names: no
   * member of the locality can have itself excluded in another's name. */
  if (s->tls && node != NULL && !peer_tls_client_is(c, node)) {
    *queued = http_error(c, MHD_HTTP_FORBIDDEN, "DENIED",
                         "X-Edgepull-Node is not a name of the client certificate");
    return false;
  }
  if (node != NULL) {
    snprintf(rc->node, sizeof rc->node, "%s", node);
    rc->fr.exclude_node = rc->node;
  }
  const char *hops = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Edgepull-Hops");
  if (hops != NULL) {
    size_t n = strspn(hops, "0123456789");
    if (n == 0 || hops[n] != '\0') {
      *queued = http_error(c, MHD_HTTP_BAD_REQUEST, "UNSUPPORTED", "invalid X-Edgepull-Hops");
      return false;
    }
    if (n > 3 || strtoul(hops, NULL, 10) > UPSTREAM_PEER_HOPS_MAX) {
      *queued = http_error(c, MHD_HTTP_LOOP_DETECTED, "UNAVAILABLE",
                           "too many peer hops: stale parent assignments form a loop");
      return false;
    }
    rc->fr.hops = (unsigned)strtoul(hops, NULL, 10);
  }
  return true;
}

/* The exposition, rendered per scrape: a scrape is rare and small (tens of
 * kB), so nothing is cached. */
static enum MHD_Result serve_metrics(struct server *s, struct MHD_Connection *c) {
  if (s->d.render_metrics == NULL)
    return http_error(c, MHD_HTTP_NOT_FOUND, "UNSUPPORTED", "no metrics");
  struct ep_buf b;
  ep_buf_init(&b, SERVER_METRICS_MAX);
  if (s->d.render_metrics(s->d.metrics_ud, &b) < 0) {
    ep_buf_free(&b);
    return http_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "UNKNOWN", "cannot render the metrics");
  }
  size_t len = 0;
  char *body = ep_buf_steal(&b, &len);
  struct MHD_Response *resp =
      body != NULL ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE) : NULL;
  if (resp == NULL) {
    free(body);
    return http_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "UNKNOWN", "cannot build a response");
  }
  enum MHD_Result ret = MHD_NO;
  if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, METRICS_CONTENT_TYPE) == MHD_YES)
    ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* A GET of a blob holds it for the disk GC until request_completed. */
static void hold_blob(struct server *s, const digest_t *d, bool head, void **req_cls) {
  if (head || s->d.holds == NULL || *req_cls != &headers_seen)
    return;
  digest_t *h = malloc(sizeof *h);
  if (h == NULL || hold_take(s->d.holds, d) < 0) {
    free(h);
    return;
  }
  *h = *d;
  *req_cls = h;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_size, void **req_cls) {
  struct server *s = cls;
  if (*req_cls == NULL) /* the first call: the headers are complete */
    conn_guard_headers_done(s->guard, c);
  if (s->mode == SERVER_LOCAL && strncmp(url, ADMIN_PREFIX, strlen(ADMIN_PREFIX)) == 0)
    return admin_handle(&s->d, c, url, method, upload_size, req_cls, (void *)&headers_seen);
  bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
  if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
    return http_method_not_allowed(c); /* at once: the body is never read */
  /* Answering on the first call (headers only) makes libmicrohttpd close
   * the connection afterwards; answering on the second keeps it alive. */
  if (*req_cls == NULL) {
    *req_cls = (void *)&headers_seen;
    return MHD_YES;
  }
  if (http_headers_too_large(c))
    return http_error(c, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE, "UNSUPPORTED",
                      "request headers too large");
  /* Never on the peer endpoint: it faces the network, the figures are the operator's. */
  if (s->mode != SERVER_PEER && strcmp(url, "/metrics") == 0)
    return serve_metrics(s, c);
  if (s->mode == SERVER_METRICS)
    return http_error(c, MHD_HTTP_NOT_FOUND, "UNSUPPORTED", "only /metrics is served here");
  struct req_ctx rc = {.peer = s->mode == SERVER_PEER};
  enum MHD_Result early = MHD_NO;
  if (rc.peer && !peer_admit(s, c, &rc, &early))
    return early;
  const char *ns = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ns");
  struct ref_target t;
  ep_err e = {0};
  /* The OCI code names what was malformed (NAME_INVALID, DIGEST_INVALID,
   * TAG_INVALID), and the message what is wrong: it is about the request's
   * own text, never about the network. */
  if (ref_parse_request(url, ns, s->d.default_registry, &t, &e) < 0)
    return http_error(c, http_status_for(e.code), http_code_for_parse_error(&e), e.msg);
  ep_log_debug("%s %s (registry %s)", method, url, t.registry);
  if (t.kind != REF_BASE && !upstream_registry_allowed(s->d.up, t.registry, rc.peer)) {
    ep_log_info("%s request for %s/%s refused: registry %s is not in the allowlist%s",
                rc.peer ? "peer" : "local", t.registry, t.name, t.registry,
                rc.peer ? "" : " (--allow-registry, --local-any-registry)");
    return http_error(c, MHD_HTTP_FORBIDDEN, "DENIED", "registry not allowed");
  }
  switch (t.kind) {
  case REF_BASE:
    return http_json_ok(c, "{}");
  case REF_MANIFEST:
    return serve_manifest(s, c, &t, head, &rc);
  case REF_BLOB:
    hold_blob(s, &t.digest, head, req_cls);
    return serve_blob(s, c, &t, head, &rc);
  }
  return http_error(c, MHD_HTTP_NOT_FOUND, "UNSUPPORTED", "not a pull route");
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  ep_log_debug("http: %s", msg);
}

/* Every connection: the header deadline; on the TLS peer endpoint, a
 * client certificate required before the handshake starts. */
static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe) {
  struct server *s = cls;
  if (s->tls && toe == MHD_CONNECTION_NOTIFY_STARTED && !peer_tls_require_client_cert(c))
    ep_log_warn("peer endpoint: a connection without a TLS session");
  conn_guard_notify(s->guard, c, socket_context, toe);
}

static void request_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                              enum MHD_RequestTerminationCode toe) {
  struct server *s = cls;
  (void)toe;
  if (req_cls != NULL && *req_cls != NULL && *req_cls != &headers_seen) {
    hold_release(s->d.holds, *req_cls);
    free(*req_cls);
    *req_cls = NULL;
  }
  conn_guard_request_done(s->guard, c);
}

/* Housekeeping on the local endpoint's sweeper, once a minute: partials
 * left by failed or abandoned fetches are kept for resuming, within an age
 * and a count bound (store/prune.c). */
static void prune_partials(void *ud) {
  struct server *s = ud;
  unsigned keep = 2 * s->d.max_fetches, gone = 0;
  ep_err e = {0};
  if (store_prune_partials(s->d.st, s->d.partial_max_age_s, keep, &gone, &e) < 0)
    ep_log_warn("pruning partials: %s", e.msg);
  else if (gone > 0)
    ep_log_info("dropped %u stale partials", gone);
}

/* Each connection costs a socket and, while it sends a stored blob, that
 * blob's fd; each fetch job a few more (its source's socket, the partial,
 * its reader fd, curl's cached connection). The soft RLIMIT_NOFILE (often
 * 1024) is raised to the hard one to fit; when even that is short, the
 * connection limit is lowered to what fits and the log says so, instead of
 * accept() failing at random. Returns the connection limit to use. */
static unsigned fit_fd_limit(const struct server_deps *d, unsigned want) {
  unsigned endpoints = d->endpoints > 1 ? d->endpoints : 1;
  rlim_t need =
      (rlim_t)conn_guard_mhd_limit(want) * 2 * endpoints + (rlim_t)d->max_fetches * 6 + 128;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
    return want;
  if (rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
      getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur >= need)
    return want;
  rlim_t spare = rl.rlim_cur > (rlim_t)d->max_fetches * 6 + 128
                     ? rl.rlim_cur - (rlim_t)d->max_fetches * 6 - 128
                     : 0;
  unsigned fit = (unsigned)(spare / (2 * endpoints)) * 16 / 17; /* conn_guard's margin */
  fit = fit < 16 ? 16 : fit;
  ep_log_warn("--max-connections %u needs %llu open files but RLIMIT_NOFILE allows %llu: "
              "serving at most %u connections per endpoint (raise LimitNOFILE)",
              want, (unsigned long long)need, (unsigned long long)rl.rlim_cur, fit);
  return fit;
}

int server_start(const struct server_deps *d, int listen_fd, struct server **out, ep_err *err) {
  return server_start_mode(d, listen_fd, SERVER_LOCAL, out, err);
}

int server_start_mode(const struct server_deps *d, int listen_fd, enum server_mode mode,
                      struct server **out, ep_err *err) {
  struct server *s = calloc(1, sizeof *s);
  if (s == NULL) {
    close(listen_fd);
    return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  s->d = *d;
  s->mode = mode;
  s->tls = mode == SERVER_PEER && d->tls_cert != NULL;
  if (s->tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
    close(listen_fd);
    free(s);
    return ep_error(err, EP_EUNSUPPORTED,
                    "this libmicrohttpd has no TLS: the peer endpoint "
                    "cannot do mutual TLS");
  }
  if (mode == SERVER_PEER && !s->tls)
    ep_log_warn("the peer endpoint is plain HTTP (--peer-insecure): anyone on the network can "
                "read what it serves%s",
                d->peer_secret[0] == '\0' ? ", and pull from it" : "");
  int header_ms = d->header_timeout_s > 0 ? d->header_timeout_s * 1000 : 15000;
  unsigned limit = fit_fd_limit(d, d->max_connections);
  int r = conn_guard_new(header_ms, limit, mode == SERVER_LOCAL ? prune_partials : NULL, s,
                         60 * 1000, &s->guard, err);
  if (r < 0) {
    close(listen_fd);
    free(s);
    return r;
  }
  /* poll(), not select(): select cannot watch an fd >= FD_SETSIZE (1024),
   * which made every connection past about a thousand fail. */
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD |
                   MHD_USE_ERROR_LOG | MHD_USE_ITC;
  unsigned per_ip = mode == SERVER_PEER ? d->peer_max_per_ip : d->local_max_per_ip;
  /* TLS options, or none: MHD reads the PEM text during MHD_start_daemon. */
  struct MHD_OptionItem tls[] = {
      {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)d->tls_key},
      {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)d->tls_cert},
      {MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)d->tls_ca},
      {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)PEER_TLS_PRIORITIES},
      {MHD_OPTION_END, 0, NULL},
  };
  if (s->tls)
    flags |= MHD_USE_TLS;
  s->mhd = MHD_start_daemon(
      flags, 0, NULL, NULL, handle, s, MHD_OPTION_LISTEN_SOCKET, listen_fd,
      MHD_OPTION_CONNECTION_LIMIT, conn_guard_mhd_limit(limit), MHD_OPTION_PER_IP_CONNECTION_LIMIT,
      per_ip, MHD_OPTION_ARRAY, s->tls ? tls : &tls[4], MHD_OPTION_NOTIFY_CONNECTION,
      notify_connection, s, MHD_OPTION_NOTIFY_COMPLETED, request_completed, s,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SERVER_POOL_SIZE, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)300, MHD_OPTION_THREAD_STACK_SIZE, (size_t)SERVER_STACK_SIZE,
      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
  if (s->mhd == NULL) {
    close(listen_fd);
    conn_guard_free(s->guard);
    free(s);
    return ep_error(err, EP_EINTERNAL, "cannot start the HTTP server%s",
                    mode == SERVER_PEER && d->tls_cert != NULL
                        ? " (with TLS: is --peer-key the key of --peer-cert?)"
                        : "");
  }
  *out = s;
  return 0;
}

void server_quiesce(struct server *s) {
  if (s == NULL || s->mhd == NULL)
    return;
  MHD_socket fd = MHD_quiesce_daemon(s->mhd);
  if (fd != MHD_INVALID_SOCKET)
    close(fd);
}

void server_stop(struct server *s) {
  if (s == NULL)
    return;
  if (s->mhd != NULL)
    MHD_stop_daemon(s->mhd);
  conn_guard_free(s->guard);
  free(s);
}

int server_probe(struct server *s, int timeout_ms, ep_err *err) {
  if (s == NULL || s->mhd == NULL)
    return 0;
  const union MHD_DaemonInfo *i = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_LISTEN_FD);
  if (i == NULL || i->listen_fd == MHD_INVALID_SOCKET)
    return 0; /* quiesced: shutting down */
  int fd = i->listen_fd;
  /* Every slot taken by clients (each bounded by the connection timeout)
   * is busy, not wedged: the probe would only wait in the backlog. */
  i = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
  if (i != NULL && s->d.max_connections > 0 && i->num_connections >= s->d.max_connections)
    return 0;
  return http_probe(fd, timeout_ms, err);
}
