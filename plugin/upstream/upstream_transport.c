/* The transport of the upstream client, beneath authentication
 * (upstream_auth.c), the registry client (upstream.c) and the peer client
 * (upstream_peer.c), and calling none of them: names, the xfer, curl
 * handles, one request with its redirects, and reading answers.
 *
 * How: every logical request takes an easy handle from a small pool (idle
 * handles keep their live connections, so pulls reuse TLS sessions), resets
 * it, and sets every option afresh for every hop. Redirects are followed by
 * hand so that credentials go on the first hop only: a CDN behind a 307 never
 * sees the registry's Authorization header. Headers are captured by the
 * header callback into fixed-size fields (oversize is recorded, never
 * grown); when the last header of the final answer arrives the status is
 * known, so a 2xx blob body is streamed straight to the caller's sink from
 * curl's write callback with no buffering, while a manifest body or an error
 * body is kept in a buffer created with the most it may ever hold.
 *
 * Threads: the upstream handle is shared; the handle pool has its own mutex,
 * held only to move a handle in or out. upstream_cancel_all sets a flag that
 * curl's progress callback polls. */
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "pki/pki.h"
#include "plugin/upstream/upstream_int.h"

const char upstream_default_accept[] =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

void upstream_free_secret(char *s) {
  if (s != NULL)
    explicit_bzero(s, strlen(s));
  free(s);
}
void upstream_cancel_all(upstream *u) {
  atomic_store(&u->canceled, true);
}

/* ---- buffers and the xfer ---------------------------------------------- */

struct upstream_xfer *upstream_xfer_new(upstream *u, const struct upstream_req *r) {
  struct upstream_xfer *x = calloc(1, sizeof *x);
  if (x == NULL)
    return NULL;
  x->u = u;
  x->req = r;
  x->body.max = r->body_max;
  x->errbody.max = UPSTREAM_ERRBODY_MAX;
  return x;
}

void upstream_xfer_free(struct upstream_xfer *x) {
  if (x == NULL)
    return;
  free(x->body.data);
  free(x->errbody.data);
  free(x);
}

static void xfer_reset_headers(struct upstream_xfer *x) {
  x->status = 0;
  x->headers_done = x->streaming = false;
  x->content_length = -1;
  x->content_type[0] = x->docker_digest[0] = x->content_range[0] = '\0';
  x->location[0] = x->www_auth[0] = '\0';
  x->location_too_long = x->www_auth_bearer = x->www_auth_too_long = false;
}

static void xfer_reset(struct upstream_xfer *x) {
  xfer_reset_headers(x);
  ep_buf_reset(&x->body);
  ep_buf_reset(&x->errbody);
  x->abort_code = 0;
  ep_err_clear(&x->abort_err);
  x->refused = false;
  ep_err_clear(&x->refused_err);
  x->curl_msg[0] = '\0';
}

static size_t xfer_abort(struct upstream_xfer *x, int code, const char *msg) {
  if (x->abort_code == 0) {
    x->abort_code = code;
    if (code == EP_ETOOBIG)
      ep_error(&x->abort_err, code, "%s: %s (%zu bytes)", x->req->what, msg, x->req->body_max);
    else
      ep_error(&x->abort_err, code, "%s: %s", x->req->what, msg);
  }
  return 0;
}

/* ---- curl callbacks ---------------------------------------------------- */

static void set_field(char *dst, size_t cap, const char *v, size_t n, bool *too_long) {
  if (n >= cap) {
    if (too_long != NULL)
      *too_long = true;
    n = 0;
  }
  memcpy(dst, v, n);
  dst[n] = '\0';
}

/* Decimal digits at p, at most 18 of them (no overflow); NULL if none. */
static const char *scan_u63(const char *p, int64_t *v) {
  int64_t n = 0;
  const char *s = p;
  for (; isdigit((unsigned char)*p); p++) {
    if (p - s >= 18)
      return NULL;
    n = n * 10 + (*p - '0');
  }
  *v = n;
  return p == s ? NULL : p;
}

static int64_t parse_u63(const char *s) {
  int64_t v;
  const char *e = scan_u63(s, &v);
  return e != NULL && *e == '\0' ? v : -1;
}

static void on_header_field(struct upstream_xfer *x, const char *name, size_t nlen, const char *v,
                            size_t vlen) {
#define IS(h) (nlen == sizeof(h) - 1 && strncasecmp(name, h, nlen) == 0)
  char num[24];
  if (IS("Content-Type")) {
    set_field(x->content_type, sizeof x->content_type, v, vlen, NULL);
  } else if (IS("Docker-Content-Digest")) {
    set_field(x->docker_digest, sizeof x->docker_digest, v, vlen, NULL);
  } else if (IS("Content-Range")) {
    set_field(x->content_range, sizeof x->content_range, v, vlen, NULL);
  } else if (IS("Location")) {
    set_field(x->location, sizeof x->location, v, vlen, &x->location_too_long);
  } else if (IS("Content-Length")) {
    set_field(num, sizeof num, v, vlen, NULL);
    x->content_length = parse_u63(num);
  } else if (IS("WWW-Authenticate")) {
    bool bearer = vlen >= 7 && strncasecmp(v, "bearer ", 7) == 0;
    if (x->www_auth[0] != '\0' && (x->www_auth_bearer || !bearer))
      return; /* keep the first challenge, or the first Bearer one */
    x->www_auth_too_long = false;
    set_field(x->www_auth, sizeof x->www_auth, v, vlen, &x->www_auth_too_long);
    x->www_auth_bearer = bearer;
  }
#undef IS
}

/* Content-Range: bytes A-B/T (T may be '*', reported as 0). */
static bool parse_content_range(const char *s, uint64_t *start, uint64_t *total) {
  int64_t a, b, t = 0;
  const char *p = strncasecmp(s, "bytes ", 6) == 0 ? scan_u63(s + 6, &a) : NULL;
  if (p == NULL || *p++ != '-' || (p = scan_u63(p, &b)) == NULL || *p++ != '/' || a > b)
    return false;
  if (strcmp(p, "*") != 0 && ((p = scan_u63(p, &t)) == NULL || *p != '\0' || t <= b))
    return false;
  *start = (uint64_t)a;
  *total = (uint64_t)t;
  return true;
}

/* Whether the server of this TLS connection is the node the request is
 * for. libcurl has verified its certificate against the locality CA but
 * not its name (the URL holds an address): that is checked here, on every
 * answer, because a kept-alive connection to an address may have been made
 * for another node id. Fails closed with any TLS library but OpenSSL. */
static bool peer_is_expected(struct upstream_xfer *x) {
  struct curl_tlssessioninfo *ti = NULL;
  if (curl_easy_getinfo(x->h, CURLINFO_TLS_SSL_PTR, &ti) != CURLE_OK || ti == NULL ||
      ti->backend != CURLSSLBACKEND_OPENSSL || ti->internals == NULL)
    return false;
  X509 *cert = SSL_get0_peer_certificate(ti->internals);
  unsigned char *der = NULL;
  int n = cert != NULL ? i2d_X509(cert, &der) : -1;
  bool ok = n > 0 && pki_der_names(der, (size_t)n, x->req->peer_node);
  OPENSSL_free(der);
  return ok;
}

static size_t on_headers_end(struct upstream_xfer *x) {
  curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
  if (x->req->peer_node != NULL && !peer_is_expected(x))
    return xfer_abort(x, EP_EAUTH, "the peer's certificate does not name the node expected there");
  if (x->status >= 100 && x->status < 200)
    return 1; /* interim answer; the real one follows */
  x->headers_done = true;
  const struct upstream_req *r = x->req;
  if (r->head || x->status < 200 || x->status > 299)
    return 1;
  if (r->body_max > 0 && x->content_length > (int64_t)r->body_max)
    return xfer_abort(x, EP_ETOOBIG, "answer larger than the bound");
  if (r->sink == NULL)
    return 1;
  uint64_t start = 0, total = x->content_length > 0 ? (uint64_t)x->content_length : 0;
  if (x->status == 206) {
    if (!parse_content_range(x->content_range, &start, &total))
      return xfer_abort(x, EP_EUPSTREAM, "206 without a valid Content-Range");
    if (start != r->range_from)
      return xfer_abort(x, EP_EUPSTREAM, "206 Content-Range does not start at the offset asked");
  } else if (x->status != 200) {
    return 1;
  }
  x->streaming = true;
  if (r->sink->on_start != NULL && r->sink->on_start(r->sink->ud, start, total) < 0)
    return xfer_abort(x, EP_ECANCELED, "transfer aborted by the receiver");
  return 1;
}

static size_t header_cb(char *b, size_t size, size_t n, void *ud) {
  struct upstream_xfer *x = ud;
  size_t len = size * n;
  if (len >= 5 && strncmp(b, "HTTP/", 5) == 0) {
    xfer_reset_headers(x);
    return len;
  }
  if (x->headers_done)
    return len; /* trailers */
  size_t l = len;
  while (l > 0 && (b[l - 1] == '\r' || b[l - 1] == '\n'))
    l--;
  if (l == 0)
    return on_headers_end(x) ? len : 0;
  const char *colon = memchr(b, ':', l);
  if (colon == NULL)
    return len;
  size_t nlen = (size_t)(colon - b);
  const char *v = colon + 1;
  size_t vlen = l - nlen - 1;
  while (vlen > 0 && (*v == ' ' || *v == '\t'))
    v++, vlen--;
  while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
    vlen--;
  on_header_field(x, b, nlen, v, vlen);
  return len;
}

/* Registry bytes pay the shared --upstream-max-rate bucket here, before the
 * sink sees them: sleeping in the callback stops curl reading the socket,
 * so TCP slows the sender down. Peer transfers are not charged: the
 * serving peer's --peer-max-rate paces them. */
static size_t write_cb(char *b, size_t size, size_t n, void *ud) {
  struct upstream_xfer *x = ud;
  size_t len = size * n;
  if (!x->req->peer && ep_ratelimit_take(x->u->rate, len) < 0)
    return xfer_abort(x, EP_ECANCELED, "shutting down");
  if (x->streaming) {
    if (atomic_load(&x->u->canceled))
      return xfer_abort(x, EP_ECANCELED, "shutting down");
    if (x->req->sink->on_data(x->req->sink->ud, b, len) < 0)
      return xfer_abort(x, EP_ECANCELED, "transfer aborted by the receiver");
    return len;
  }
  if (x->headers_done && x->status >= 200 && x->status <= 299 && x->req->body_max > 0) {
    if (ep_buf_append(&x->body, b, len) < 0)
      return xfer_abort(x, EP_ETOOBIG, "answer larger than the bound");
    return len;
  }
  ep_buf_append_trunc(&x->errbody, b, len); /* the rest is dropped */
  return len;
}

static int progress_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
  struct upstream_xfer *x = ud;
  return atomic_load(&x->u->canceled) ? 1 : 0;
}

/* ---- one hop, and the redirect loop ------------------------------------ */

static int hop_setup(struct upstream_xfer *x, const struct upstream_auth *a, const char *url,
                     struct curl_slist **hdrs, char **authz) {
  upstream *u = x->u;
  const struct upstream_req *r = x->req;
  CURL *h = x->h;
  CURLcode c = CURLE_OK;
#define SET(opt, val)                                                                              \
  if (c == CURLE_OK)                                                                               \
  c = curl_easy_setopt(h, opt, val)
  SET(CURLOPT_URL, url);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_FOLLOWLOCATION, 0L);
  SET(CURLOPT_CONNECTTIMEOUT,
      r->connect_timeout_s > 0 ? r->connect_timeout_s : u->connect_timeout_s);
  SET(CURLOPT_LOW_SPEED_LIMIT, 1024L);
  SET(CURLOPT_LOW_SPEED_TIME, r->low_speed_time_s > 0 ? r->low_speed_time_s : u->low_speed_time_s);
  SET(CURLOPT_USERAGENT, u->user_agent);
  SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  SET(CURLOPT_HEADERFUNCTION, header_cb);
  SET(CURLOPT_HEADERDATA, x);
  SET(CURLOPT_WRITEFUNCTION, write_cb);
  SET(CURLOPT_WRITEDATA, x);
  SET(CURLOPT_NOPROGRESS, 0L);
  SET(CURLOPT_XFERINFOFUNCTION, progress_cb);
  SET(CURLOPT_XFERINFODATA, x);
  SET(CURLOPT_ERRORBUFFER, x->curl_msg);
  if (r->peer_node != NULL) {
    /* The locality CA and nothing else (no system CAs); the name is
     * checked per answer (peer_is_expected), not against the address. */
    SET(CURLOPT_CAINFO, u->peer_ca);
    SET(CURLOPT_CAPATH, NULL);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 0L);
    SET(CURLOPT_SSLCERT, u->peer_cert);
    SET(CURLOPT_SSLKEY, u->peer_key);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
  } else if (u->ca_file != NULL) {
    SET(CURLOPT_CAINFO, u->ca_file);
  }
  if (r->head)
    SET(CURLOPT_NOBODY, 1L);
  char line[96];
  struct curl_slist *l = NULL, *t;
  if (r->accept != NULL) {
    ep_cleanup_free char *acc = NULL;
    if (asprintf(&acc, "Accept: %s", r->accept) < 0 || (t = curl_slist_append(l, acc)) == NULL)
      c = CURLE_OUT_OF_MEMORY;
    else
      l = t;
  }
  for (size_t i = 0; r->headers != NULL && r->headers[i] != NULL && c == CURLE_OK; i++) {
    if ((t = curl_slist_append(l, r->headers[i])) == NULL)
      c = CURLE_OUT_OF_MEMORY;
    else
      l = t;
  }
  if (r->range_from > 0 && c == CURLE_OK) {
    snprintf(line, sizeof line, "Range: bytes=%" PRIu64 "-", r->range_from);
    if ((t = curl_slist_append(l, line)) == NULL)
      c = CURLE_OUT_OF_MEMORY;
    else
      l = t;
  }
  if (a != NULL && a->bearer != NULL && c == CURLE_OK) {
    if (asprintf(authz, "Authorization: Bearer %s", a->bearer) < 0) {
      *authz = NULL;
      c = CURLE_OUT_OF_MEMORY;
    } else if ((t = curl_slist_append(l, *authz)) == NULL) {
      c = CURLE_OUT_OF_MEMORY;
    } else {
      l = t;
    }
  } else if (a != NULL && a->user != NULL) {
    SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    SET(CURLOPT_USERNAME, a->user);
    SET(CURLOPT_PASSWORD, a->pass);
  }
  *hdrs = l;
  SET(CURLOPT_HTTPHEADER, l);
#undef SET
  if (c == CURLE_OK && upstream_policy_setopt(h, x) < 0)
    c = CURLE_FAILED_INIT;
  return c == CURLE_OK ? 0 : -1;
}

static int hop(struct upstream_xfer *x, const struct upstream_auth *a, const char *url,
               ep_err *err) {
  struct curl_slist *hdrs = NULL;
  char *authz = NULL;
  curl_easy_reset(x->h);
  xfer_reset(x);
  int r = hop_setup(x, a, url, &hdrs, &authz);
  CURLcode c = r == 0 ? curl_easy_perform(x->h) : CURLE_OUT_OF_MEMORY;
  /* Unset before the list is freed; clearing an option cannot fail, and the
   * next hop's curl_easy_reset clears it again anyway. */
  (void)curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(hdrs);
  upstream_free_secret(authz);
  if (c == CURLE_OK)
    return 0;
  if (x->abort_code != 0) {
    if (err != NULL)
      *err = x->abort_err;
    return -x->abort_code;
  }
  if (c == CURLE_ABORTED_BY_CALLBACK || atomic_load(&x->u->canceled))
    return ep_error(err, EP_ECANCELED, "%s: canceled (shutting down)", x->req->what);
  if (x->refused && c == CURLE_COULDNT_CONNECT) { /* every address was refused */
    if (err != NULL)
      *err = x->refused_err;
    return -EP_EDENIED;
  }
  char where[256];
  ep_escape(where, sizeof where, url, strcspn(url, "?"), EP_ESCAPE_MASK);
  /* The cause first: callers prepend context and messages get cut. */
  return ep_error(err, c == CURLE_OUT_OF_MEMORY ? EP_EINTERNAL : EP_EUNREACH, "%s: %s (%s %s)",
                  x->req->what, x->curl_msg[0] ? x->curl_msg : curl_easy_strerror(c),
                  x->req->head ? "HEAD" : "GET", where);
}

static bool is_redirect(long s) {
  return s == 301 || s == 302 || s == 303 || s == 307 || s == 308;
}

/* Resolves x->location against base into *next (malloc'd). */
static int resolve_location(const struct upstream_xfer *x, const char *base, char **next,
                            ep_err *err) {
  const char *what = x->req->what;
  if (x->location_too_long)
    return ep_error(err, EP_EUPSTREAM, "%s: redirect Location longer than %d bytes", what,
                    UPSTREAM_URL_MAX);
  if (x->location[0] == '\0')
    return ep_error(err, EP_EUPSTREAM, "%s: redirect %ld without Location", what, x->status);
  CURLU *cu = curl_url();
  char *scheme = NULL, *out = NULL;
  int rc = 0;
  if (cu == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  if (curl_url_set(cu, CURLUPART_URL, base, 0) != CURLUE_OK ||
      curl_url_set(cu, CURLUPART_URL, x->location, 0) != CURLUE_OK ||
      curl_url_get(cu, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      curl_url_get(cu, CURLUPART_URL, &out, 0) != CURLUE_OK)
    rc = ep_error(err, EP_EUPSTREAM, "%s: redirect to an invalid Location", what);
  else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
    rc = ep_error(err, EP_EUPSTREAM, "%s: redirect to a non-http(s) URL refused", what);
  else if (strlen(out) > UPSTREAM_URL_MAX)
    rc = ep_error(err, EP_EUPSTREAM, "%s: redirect URL too long", what);
  else if ((*next = strdup(out)) == NULL)
    rc = ep_error(err, EP_EINTERNAL, "out of memory");
  curl_free(scheme);
  curl_free(out);
  curl_url_cleanup(cu);
  return rc;
}

static CURL *pool_get(upstream *u) {
  CURL *h = NULL;
  pthread_mutex_lock(&u->pool_lock);
  if (u->npool > 0)
    h = u->pool[--u->npool];
  pthread_mutex_unlock(&u->pool_lock);
  return h != NULL ? h : curl_easy_init();
}

static void pool_put(upstream *u, CURL *h) {
  pthread_mutex_lock(&u->pool_lock);
  if (u->npool < UPSTREAM_POOL_MAX) {
    u->pool[u->npool++] = h;
    h = NULL;
  }
  pthread_mutex_unlock(&u->pool_lock);
  if (h != NULL)
    curl_easy_cleanup(h);
}

int upstream_perform(upstream *u, const struct upstream_req *r, const struct upstream_auth *a,
                     struct upstream_xfer *x, ep_err *err) {
  if (atomic_load(&u->canceled))
    return ep_error(err, EP_ECANCELED, "%s: canceled (shutting down)", r->what);
  ep_cleanup_free char *url = strdup(r->url);
  if (url == NULL || (x->h = pool_get(u)) == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  int rc;
  x->origin_class = r->origin_class;
  x->origin_https = r->origin_class != 0 && r->origin_https;
  bool from_https = x->origin_https;
  for (int n = 0;; n++) {
    /* The registry's own hop may go anywhere the allowlist let it; what it
     * leads to is held to the redirect policy (upstream_policy.c). */
    bool own = n == 0 && r->origin_class == 0;
    x->hop_allow = own ? NETCLASS_ALL : NETCLASS_PUBLIC | x->origin_class;
    if (!own && (rc = upstream_policy_check_url(x, url, from_https, err)) < 0)
      break;
    /* Credentials on the first hop only: a redirect target is not the registry. */
    if ((rc = hop(x, n == 0 ? a : NULL, url, err)) < 0 || !is_redirect(x->status) ||
        r->no_redirects)
      break;
    from_https = upstream_url_https(url);
    if (own)
      x->origin_https = from_https;
    if (n >= UPSTREAM_MAX_REDIRECTS) {
      rc = ep_error(err, EP_EUPSTREAM, "%s: more than %d redirects", r->what,
                    UPSTREAM_MAX_REDIRECTS);
      break;
    }
    char *next = NULL;
    if ((rc = resolve_location(x, url, &next, err)) < 0)
      break;
    free(url);
    url = next;
  }
  curl_easy_reset(x->h); /* drops pointers into x before the handle is shared again */
  pool_put(u, x->h);
  x->h = NULL;
  return rc;
}

/* ---- answers ----------------------------------------------------------- */

/* The first error of a distribution-spec error body, e.g. " (NAME: msg)". */
static void registry_error(const struct ep_buf *b, char *out, size_t cap) {
  out[0] = '\0';
  if (b->len == 0)
    return;
  json_t *j = json_loadb(b->data, b->len, 0, NULL);
  json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
  const char *code = json_string_value(json_object_get(e0, "code"));
  const char *msg = json_string_value(json_object_get(e0, "message"));
  if (code != NULL) {
    char c[64], m[160];
    ep_escape(c, sizeof c, code, strlen(code), EP_ESCAPE_MASK);
    ep_escape(m, sizeof m, msg ? msg : "", msg ? strlen(msg) : 0, EP_ESCAPE_MASK);
    snprintf(out, cap, " (%s%s%s)", c, m[0] ? ": " : "", m);
  }
  json_decref(j);
}

int upstream_status_error(const struct upstream_xfer *x, ep_err *err) {
  char detail[256];
  registry_error(&x->errbody, detail, sizeof detail);
  const struct upstream_req *r = x->req;
  if (x->status == 404)
    return ep_error(err, EP_ENOTFOUND, "%s: not found on %s (404)%s", r->what, r->host, detail);
  return ep_error(err, EP_EUPSTREAM, "%s: %s answered %ld%s", r->what, r->host, x->status, detail);
}

void upstream_manifest_clear(struct upstream_manifest *m) {
  if (m == NULL)
    return;
  free(m->body);
  memset(m, 0, sizeof *m);
}

/* Content-Type without parameters, when it looks like a media type. */
static void media_type(const char *ct, char *out, size_t cap) {
  size_t n = strcspn(ct, ";");
  while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
    n--;
  out[0] = '\0';
  if (n >= cap)
    return;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)ct[i]) && !strchr("!#$&^_.+-/", ct[i]))
      return;
  memcpy(out, ct, n);
  out[n] = '\0';
}

int upstream_manifest_fill(const struct upstream_xfer *x, bool by_digest, const digest_t *want,
                           struct upstream_manifest *out, ep_err *err) {
  const char *what = x->req->what;
  digest_t hdr;
  ep_err ignored = {0};
  bool have_hdr = x->docker_digest[0] && digest_parse(x->docker_digest, &hdr, &ignored) == 0;
  media_type(x->content_type, out->media_type, sizeof out->media_type);
  if (x->req->head) {
    if (x->content_length > (int64_t)UPSTREAM_MANIFEST_MAX)
      return ep_error(err, EP_ETOOBIG, "%s: manifest of %" PRId64 " bytes exceeds %u", what,
                      x->content_length, UPSTREAM_MANIFEST_MAX);
    out->size = x->content_length > 0 ? (uint64_t)x->content_length : 0;
    if (have_hdr && by_digest && !digest_equal(&hdr, want))
      return ep_error(err, EP_EDIGEST, "%s: registry reports digest sha256:%s", what, hdr.hex);
    out->have_digest = have_hdr;
    if (have_hdr)
      out->digest = hdr;
    return 0;
  }
  digest_buffer(x->body.data ? x->body.data : "", x->body.len, &out->digest);
  if (by_digest && !digest_equal(&out->digest, want))
    return ep_error(err, EP_EDIGEST, "%s: body digest sha256:%s does not match", what,
                    out->digest.hex);
  if (have_hdr && !digest_equal(&hdr, &out->digest))
    ep_log_warn("%s: Docker-Content-Digest sha256:%s differs from the body's sha256:%s; using "
                "the body's",
                what, hdr.hex, out->digest.hex);
  out->have_digest = true;
  out->len = x->body.len;
  out->size = x->body.len;
  out->body = malloc(x->body.len ? x->body.len : 1);
  if (out->body == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  if (x->body.len)
    memcpy(out->body, x->body.data, x->body.len);
  return 0;
}

int upstream_manifest_ref(const char *ref, bool *by_digest, digest_t *want, ep_err *err) {
  *by_digest = ref != NULL && strchr(ref, ':') != NULL;
  if (ref == NULL || (*by_digest ? digest_parse(ref, want, err) < 0 : !names_tag_valid(ref)))
    return *by_digest ? ep_wrap(err, "manifest reference")
                      : ep_error(err, EP_EINVAL, "invalid manifest reference");
  return 0;
}

int upstream_manifest_finish(struct upstream_xfer *x, int rc, bool by_digest, const digest_t *want,
                             struct upstream_manifest *out, ep_err *err) {
  if (rc == 0 && x->status != 200)
    rc = upstream_status_error(x, err);
  if (rc == 0)
    rc = upstream_manifest_fill(x, by_digest, want, out, err);
  upstream_xfer_free(x);
  if (rc < 0)
    upstream_manifest_clear(out);
  return rc;
}
