/* Internals of the upstream module, shared by its files, which call one
 * way: upstream.c (the handle, the registry API) -> upstream_auth.c
 * (registry map, challenges, tokens, the authenticated call) ->
 * upstream_transport.c (names, the xfer, one request and its redirects,
 * answers) <- upstream_peer.c (the peer client). Not part of the contract:
 * only those files and the unit test include it. */
#ifndef EP_PLUGIN_UPSTREAM_INT_H
#define EP_PLUGIN_UPSTREAM_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/escape.h"
#include "common/names.h"
#include "plugin/upstream/netclass.h"
#include "plugin/upstream/upstream.h"

#define UPSTREAM_MAX_REDIRECTS 5
#define UPSTREAM_POOL_MAX 8     /* idle easy handles kept for connection reuse */
#define UPSTREAM_TOKENS_MAX 256 /* token cache entries; the oldest is evicted */
#define UPSTREAM_REGISTRIES_MAX 256
#define UPSTREAM_URL_MAX 8192      /* registry, Location and realm URLs */
#define UPSTREAM_WWW_AUTH_MAX 4096 /* longer challenges are refused */
#define UPSTREAM_TOKEN_MAX 16384
#define UPSTREAM_TOKEN_BODY_MAX (64u << 10)
#define UPSTREAM_ERRBODY_MAX (16u << 10) /* kept of an error answer, for its JSON */

struct upstream_registry {
  char *host;
  char *url;  /* NULL: default mapping */
  char *user; /* NULL: no credentials */
  char *pass;
};

struct upstream_token {
  char *host; /* NULL: free slot */
  char *scope;
  char *token;
  int64_t expires_ms; /* CLOCK_MONOTONIC */
  uint64_t seq;       /* insertion order, for eviction */
};

struct upstream {
  long connect_timeout_s;
  long low_speed_time_s;
  long peer_low_speed_time_s;
  char *user_agent;
  char *ca_file;
  char *peer_ca, *peer_cert, *peer_key; /* all or none: peer TLS */
  atomic_bool canceled;
  ep_ratelimit *rate; /* --upstream-max-rate, NULL = none; not ours */

  pthread_mutex_t reg_lock;
  struct upstream_registry *regs; /* also the allowlist: every host here may be fetched from */
  size_t nregs, regs_cap;
  bool open_local; /* upstream_open_local: the local endpoint may name any registry */

  pthread_mutex_t pool_lock;
  CURL *pool[UPSTREAM_POOL_MAX];
  size_t npool;

  pthread_mutex_t tok_lock;
  struct upstream_token tokens[UPSTREAM_TOKENS_MAX];
  uint64_t tok_seq;
};

/* What one logical request is; redirects and the auth retry reuse it. */
struct upstream_req {
  const char *host; /* registry host: credentials and token cache key */
  const char *repo; /* for the default scope; NULL for token requests */
  const char *url;
  const char *what; /* for messages, e.g. "manifest library/alpine:3" */
  bool head;
  const char *accept;  /* NULL: no Accept header */
  uint64_t range_from; /* > 0: Range: bytes=N- */
  size_t body_max;     /* 2xx body kept in x->body up to this; 0 when streaming */
  const struct upstream_blob_sink *sink;
  /* Peer requests (upstream_peer.c): extra header lines (NULL-terminated
   * list, may be NULL), redirects answered as they are, and timeouts of
   * their own (0: the handle's). */
  const char *const *headers;
  const char *peer_node; /* over TLS: the node id the server's certificate must name */
  bool no_redirects;
  bool peer; /* a peer transfer: not charged to --upstream-max-rate (TLS or not) */
  long connect_timeout_s;
  long low_speed_time_s;
  /* 0: the first hop goes to the registry (or peer) itself, wherever it is.
   * Else the first hop is a URL the registry handed us (its token realm),
   * held to the redirect policy: origin_class is the registry's address
   * class (enum netclass) and origin_https whether it spoke https. */
  unsigned origin_class;
  bool origin_https;
};

/* Credentials sent on the first hop only, never after a redirect. */
struct upstream_auth {
  const char *bearer;
  const char *user; /* Basic when non-NULL */
  const char *pass;
};

/* The answer to the last hop of a request. */
struct upstream_xfer {
  const struct upstream_req *req;
  upstream *u;
  CURL *h;
  long status;
  bool headers_done;
  bool streaming;         /* body goes to req->sink */
  int64_t content_length; /* -1 when absent or invalid */
  char content_type[UPSTREAM_MEDIA_TYPE_MAX * 2];
  char docker_digest[128];
  char content_range[128];
  char location[UPSTREAM_URL_MAX];
  bool location_too_long;
  char www_auth[UPSTREAM_WWW_AUTH_MAX + 1];
  bool www_auth_bearer;
  bool www_auth_too_long;
  struct ep_buf body;
  struct ep_buf errbody;
  int abort_code; /* set by a callback that stopped the transfer */
  ep_err abort_err;
  /* The redirect policy (issue 12): the classes this hop may connect to,
   * the registry's own class and scheme (learnt on the first hop), and an
   * address refused before connecting (curl then tries the next one). */
  unsigned hop_allow;
  unsigned origin_class;
  bool origin_https;
  bool refused;
  ep_err refused_err;
  char curl_msg[CURL_ERROR_SIZE];
};

struct upstream_xfer *upstream_xfer_new(upstream *u, const struct upstream_req *r);
void upstream_xfer_free(struct upstream_xfer *x);

/* upstream_policy.c: the redirect policy. Installs the socket callbacks
 * that check each address against x->hop_allow (and learn the registry's
 * class on its own hop); -1 when curl refuses an option. */
int upstream_policy_setopt(CURL *h, struct upstream_xfer *x);
/* Before a hop that follows the registry's lead: no https -> http, and an
 * IP literal host must be in x->hop_allow. EP_EDENIED otherwise. */
int upstream_policy_check_url(const struct upstream_xfer *x, const char *url, bool from_https,
                              ep_err *err);
bool upstream_url_https(const char *url);

/* One request, following redirects by hand. 0 with x holding the final
 * answer (any status), <0 when no answer came. */
int upstream_perform(upstream *u, const struct upstream_req *r, const struct upstream_auth *a,
                     struct upstream_xfer *x, ep_err *err);
/* upstream_perform plus the 401 dance: at most one retry with a token or
 * basic credentials. EP_EAUTH when that fails. */
int upstream_call(upstream *u, const struct upstream_req *r, struct upstream_xfer *x, ep_err *err);

/* upstream_transport.c: names and answers, for every client. */
/* Checks a manifest reference (tag or digest); sets *by_digest and, for a
 * digest, *want. Shared by the registry and the peer client. */
int upstream_manifest_ref(const char *ref, bool *by_digest, digest_t *want, ep_err *err);
/* After a manifest transfer: status check, body into out (verified against
 * want when by_digest), x freed; out cleared on failure. */
int upstream_manifest_finish(struct upstream_xfer *x, int rc, bool by_digest, const digest_t *want,
                             struct upstream_manifest *out, ep_err *err);
/* The error for a final answer that is not the expected 2xx. */
int upstream_status_error(const struct upstream_xfer *x, ep_err *err);
/* Fills out from a manifest answer; by_digest verifies the body against want. */
int upstream_manifest_fill(const struct upstream_xfer *x, bool by_digest, const digest_t *want,
                           struct upstream_manifest *out, ep_err *err);
/* Default Accept for manifests. */
extern const char upstream_default_accept[];

/* Copies of the credentials configured for host (both NULL when none);
 * free them with upstream_free_secret. */
int upstream_creds_get(upstream *u, const char *host, char **user, char **pass, ep_err *err);
void upstream_free_secret(char *s);

enum upstream_scheme { UPSTREAM_AUTH_BEARER = 1, UPSTREAM_AUTH_BASIC = 2 };
struct upstream_challenge {
  int scheme;
  char realm[2048];
  char service[256];
  char scope[1024];
};
/* Parses one WWW-Authenticate value. EP_EAUTH with a clear message for
 * anything malformed, oversized, an unknown scheme, a Bearer challenge
 * without realm or with a realm that is not an http(s) URL. */
int upstream_parse_challenge(const char *hdr, struct upstream_challenge *c, ep_err *err);

/* Reads a token endpoint's JSON answer: *tok (malloc'd) from "token" or
 * "access_token", header-safe and at most UPSTREAM_TOKEN_MAX bytes; *life
 * its remaining seconds (1..86400). EP_EAUTH for anything else. Exported
 * for fuzz/fuzz_upstream_auth.c. */
int upstream_token_parse(const struct ep_buf *b, char **tok, int64_t *life, ep_err *err);

/* Token cache, guarded by tok_lock. get returns a malloc'd copy or NULL. */
char *upstream_token_get(upstream *u, const char *host, const char *scope);
void upstream_token_put(upstream *u, const char *host, const char *scope, const char *token,
                        int64_t lifetime_s);
void upstream_token_drop(upstream *u, const char *host, const char *scope, const char *token);
void upstream_tokens_clear(upstream *u);

#endif
