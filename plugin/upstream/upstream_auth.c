/* Registry map, credentials and authentication for the upstream client.
 *
 * The map (host → endpoint URL, credentials) is a small array under
 * reg_lock. It is also the allowlist (issue 12): a registry is fetched from
 * only when it is in the map (a --registry mapping, credentials, or a host
 * named by upstream_allow_registry) or is docker.io, so neither a peer's
 * `ns` nor a runtime's request can aim this node at an arbitrary host:port.
 * Authentication is the 401 dance.
 *
 * A request goes out with the token cached for (host, repository:<repo>:pull)
 * if there is one. On 401 the WWW-Authenticate challenge is parsed (RFC 7235
 * auth-params, quoted strings with escapes, bounded sizes, anything odd
 * refused with EP_EAUTH):
 *  - Bearer: a token for (host, scope) comes from the cache or from the realm
 *    (GET realm?service=…&scope=…, with the registry's basic credentials when
 *    configured, else anonymous), is cached until expires_in (default 60 s,
 *    as the Docker token spec says) minus a margin, and the request is retried
 *    once with it. A cached token the registry refused is dropped first.
 *  - Basic: retried once with the configured credentials.
 * A second 401 is EP_EAUTH. Credentials and tokens never appear in messages,
 * and buffers holding them are wiped before they are freed.
 *
 * The token cache is a fixed array of UPSTREAM_TOKENS_MAX entries under
 * tok_lock; when it is full the oldest entry goes. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/cleanup_json.h"
#include "common/cleanup.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/vec.h"
#include "plugin/upstream/upstream_int.h"

/* ---- registry map and credentials ------------------------------------ */

/* Caller holds reg_lock. */
static struct upstream_registry *reg_find(upstream *u, const char *host, bool create) {
  for (size_t i = 0; i < u->nregs; i++)
    if (strcasecmp(u->regs[i].host, host) == 0)
      return &u->regs[i];
  if (!create || ep_vec_reserve(&u->regs, &u->regs_cap, u->nregs + 1, UPSTREAM_REGISTRIES_MAX) < 0)
    return NULL;
  struct upstream_registry *r = &u->regs[u->nregs];
  memset(r, 0, sizeof *r);
  if ((r->host = strdup(host)) == NULL)
    return NULL;
  u->nregs++;
  return r;
}

int upstream_add_registry(upstream *u, const char *host, const char *url, ep_err *err) {
  if (host == NULL || !names_registry_valid(host))
    return ep_error(err, EP_EINVAL, "registry host is not a valid host[:port]");
  if (url == NULL)
    return ep_error(err, EP_EINVAL, "registry %s: no URL", host);
  char buf[NAMES_URL_MAX + 1];
  int r = names_url_parse(url, buf, sizeof buf, err);
  if (r < 0)
    return ep_wrap(err, "registry %s", host);
  ep_cleanup_free char *norm = strdup(buf);
  if (norm == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  pthread_mutex_lock(&u->reg_lock);
  struct upstream_registry *reg = reg_find(u, host, true);
  if (reg != NULL) {
    free(reg->url);
    reg->url = ep_steal_ptr(norm);
  }
  pthread_mutex_unlock(&u->reg_lock);
  if (reg == NULL)
    return ep_error(err, EP_ETOOBIG, "registry %s: too many registries or out of memory", host);
  return 0;
}

int upstream_set_credentials(upstream *u, const char *host, const char *username,
                             const char *password, ep_err *err) {
  if (host == NULL || !names_registry_valid(host))
    return ep_error(err, EP_EINVAL, "credentials: registry host is not a valid host[:port]");
  if (username == NULL || username[0] == '\0' || strchr(username, ':') != NULL)
    return ep_error(err, EP_EINVAL, "credentials for %s: username empty or contains ':'", host);
  char *us = strdup(username), *pw = strdup(password ? password : "");
  pthread_mutex_lock(&u->reg_lock);
  struct upstream_registry *reg = us && pw ? reg_find(u, host, true) : NULL;
  if (reg != NULL) {
    upstream_free_secret(reg->user);
    upstream_free_secret(reg->pass);
    reg->user = us;
    reg->pass = pw;
  }
  pthread_mutex_unlock(&u->reg_lock);
  if (reg == NULL) {
    upstream_free_secret(us);
    upstream_free_secret(pw);
    return ep_error(err, EP_ETOOBIG, "credentials for %s: too many registries or out of memory",
                    host);
  }
  return 0;
}

int upstream_creds_get(upstream *u, const char *host, char **user, char **pass, ep_err *err) {
  *user = *pass = NULL;
  pthread_mutex_lock(&u->reg_lock);
  struct upstream_registry *reg = reg_find(u, host, false);
  if (reg != NULL && reg->user != NULL) {
    *user = strdup(reg->user);
    *pass = strdup(reg->pass);
  }
  pthread_mutex_unlock(&u->reg_lock);
  if (reg != NULL && reg->user != NULL && (*user == NULL || *pass == NULL)) {
    upstream_free_secret(*user);
    upstream_free_secret(*pass);
    *user = *pass = NULL;
    return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  return 0;
}

/* ---- the allowlist ----------------------------------------------------- */

int upstream_allow_registry(upstream *u, const char *host, ep_err *err) {
  if (host == NULL || !names_registry_valid(host))
    return ep_error(err, EP_EINVAL, "allowed registry: not a valid host[:port]");
  pthread_mutex_lock(&u->reg_lock);
  struct upstream_registry *reg = reg_find(u, host, true);
  pthread_mutex_unlock(&u->reg_lock);
  if (reg == NULL)
    return ep_error(err, EP_ETOOBIG, "registry %s: too many registries or out of memory", host);
  return 0;
}

void upstream_open_local(upstream *u, bool open) {
  pthread_mutex_lock(&u->reg_lock);
  u->open_local = open;
  pthread_mutex_unlock(&u->reg_lock);
}

bool upstream_registry_allowed(upstream *u, const char *host, bool from_peer) {
  if (host == NULL)
    return false;
  if (strcasecmp(host, "docker.io") == 0)
    return true;
  pthread_mutex_lock(&u->reg_lock);
  bool ok = reg_find(u, host, false) != NULL || (!from_peer && u->open_local);
  pthread_mutex_unlock(&u->reg_lock);
  return ok;
}

int upstream_endpoint(upstream *u, const char *host, char *buf, size_t len, ep_err *err) {
  if (host == NULL || !names_registry_valid(host))
    return ep_error(err, EP_EINVAL, "registry host is not a valid host[:port]");
  char tmp[NAMES_HOST_MAX + 16];
  pthread_mutex_lock(&u->reg_lock);
  struct upstream_registry *reg = reg_find(u, host, false);
  if (reg != NULL && reg->url != NULL)
    snprintf(tmp, sizeof tmp, "%s", reg->url);
  else if (strcasecmp(host, "docker.io") == 0)
    snprintf(tmp, sizeof tmp, "https://registry-1.docker.io");
  else
    snprintf(tmp, sizeof tmp, "https://%s", host);
  pthread_mutex_unlock(&u->reg_lock);
  if (strlen(tmp) >= len)
    return ep_error(err, EP_ETOOBIG, "registry %s: endpoint URL does not fit", host);
  memcpy(buf, tmp, strlen(tmp) + 1);
  return 0;
}

/* ---- challenge parsing ------------------------------------------------- */

static bool tchar(char c) {
  return isalnum((unsigned char)c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *skip_ws(const char *p) {
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

/* Reads a token or quoted-string value at *pp into out (cap bytes). */
static int parse_value(const char **pp, char *out, size_t cap, const char *name, ep_err *err) {
  const char *p = *pp;
  size_t o = 0;
  if (*p == '"') {
    for (p++; *p != '"'; p++) {
      if (*p == '\\' && p[1] != '\0')
        p++;
      if (*p == '\0')
        return ep_error(err, EP_EAUTH, "challenge: unterminated quoted string in %s", name);
      if ((unsigned char)*p < 0x20 || *p == 0x7f)
        return ep_error(err, EP_EAUTH, "challenge: control character in %s", name);
      if (o + 1 >= cap)
        return ep_error(err, EP_EAUTH, "challenge: %s longer than %zu bytes", name, cap - 1);
      out[o++] = *p;
    }
    p++;
  } else {
    for (; tchar(*p) || *p == '/' || *p == ':' || *p == '='; p++) {
      if (o + 1 >= cap)
        return ep_error(err, EP_EAUTH, "challenge: %s longer than %zu bytes", name, cap - 1);
      out[o++] = *p;
    }
    if (o == 0)
      return ep_error(err, EP_EAUTH, "challenge: empty or malformed value for %s", name);
  }
  out[o] = '\0';
  *pp = p;
  return 0;
}

static int parse_params(const char *p, struct upstream_challenge *c, ep_err *err) {
  char scratch[UPSTREAM_WWW_AUTH_MAX + 1];
  for (;;) {
    p = skip_ws(p);
    while (*p == ',' || *p == ' ' || *p == '\t')
      p++;
    if (*p == '\0')
      return 0;
    const char *name = p;
    while (tchar(*p))
      p++;
    size_t nlen = (size_t)(p - name);
    if (nlen == 0)
      return ep_error(err, EP_EAUTH, "challenge: malformed parameter list");
    p = skip_ws(p);
    if (*p != '=') {
      if (p > name + nlen)
        return 0; /* "…, Basic realm=…": the next challenge starts; one is enough */
      return ep_error(err, EP_EAUTH, "challenge: parameter without '='");
    }
    p = skip_ws(p + 1);
    char *dst = scratch;
    size_t cap = sizeof scratch;
    const char *label = "parameter";
    if (nlen == 5 && strncasecmp(name, "realm", 5) == 0)
      dst = c->realm, cap = sizeof c->realm, label = "realm";
    else if (nlen == 7 && strncasecmp(name, "service", 7) == 0)
      dst = c->service, cap = sizeof c->service, label = "service";
    else if (nlen == 5 && strncasecmp(name, "scope", 5) == 0)
      dst = c->scope, cap = sizeof c->scope, label = "scope";
    int r = parse_value(&p, dst, cap, label, err);
    if (r < 0)
      return r;
    p = skip_ws(p);
    if (*p != ',' && *p != '\0')
      return ep_error(err, EP_EAUTH, "challenge: garbage after the %s value", label);
  }
}

int upstream_parse_challenge(const char *hdr, struct upstream_challenge *c, ep_err *err) {
  memset(c, 0, sizeof *c);
  if (strnlen(hdr, UPSTREAM_WWW_AUTH_MAX + 1) > UPSTREAM_WWW_AUTH_MAX)
    return ep_error(err, EP_EAUTH, "challenge longer than %d bytes refused", UPSTREAM_WWW_AUTH_MAX);
  const char *p = skip_ws(hdr);
  const char *s = p;
  while (tchar(*p))
    p++;
  size_t n = (size_t)(p - s);
  if (n == 6 && strncasecmp(s, "Bearer", 6) == 0)
    c->scheme = UPSTREAM_AUTH_BEARER;
  else if (n == 5 && strncasecmp(s, "Basic", 5) == 0)
    c->scheme = UPSTREAM_AUTH_BASIC;
  else {
    char shown[40];
    snprintf(shown, sizeof shown, "%.*s", (int)(n < 32 ? n : 32), s);
    ep_escape(shown, sizeof shown, shown, strlen(shown), EP_ESCAPE_MASK);
    return ep_error(err, EP_EAUTH, "unsupported authentication scheme \"%s\"", shown);
  }
  if (*p != '\0' && *p != ' ' && *p != '\t')
    return ep_error(err, EP_EAUTH, "challenge: malformed scheme");
  if (c->scheme == UPSTREAM_AUTH_BASIC)
    return 0; /* its realm is only a label */
  int r = parse_params(p, c, err);
  if (r < 0)
    return r;
  if (c->realm[0] == '\0')
    return ep_error(err, EP_EAUTH, "Bearer challenge without a realm");
  if (strncasecmp(c->realm, "https://", 8) != 0 && strncasecmp(c->realm, "http://", 7) != 0)
    return ep_error(err, EP_EAUTH, "Bearer realm is not an http(s) URL; refused");
  return 0;
}

/* ---- token cache ------------------------------------------------------- */

static void slot_clear(struct upstream_token *t) {
  free(t->host);
  free(t->scope);
  upstream_free_secret(t->token);
  memset(t, 0, sizeof *t);
}

/* Caller holds tok_lock. */
static struct upstream_token *slot_find(upstream *u, const char *host, const char *scope) {
  for (size_t i = 0; i < UPSTREAM_TOKENS_MAX; i++) {
    struct upstream_token *t = &u->tokens[i];
    if (t->host != NULL && strcasecmp(t->host, host) == 0 && strcmp(t->scope, scope) == 0)
      return t;
  }
  return NULL;
}

char *upstream_token_get(upstream *u, const char *host, const char *scope) {
  char *tok = NULL;
  pthread_mutex_lock(&u->tok_lock);
  struct upstream_token *t = slot_find(u, host, scope);
  if (t != NULL && t->expires_ms <= ep_mono_ms())
    slot_clear(t);
  else if (t != NULL)
    tok = strdup(t->token);
  pthread_mutex_unlock(&u->tok_lock);
  return tok;
}

void upstream_token_put(upstream *u, const char *host, const char *scope, const char *token,
                        int64_t lifetime_s) {
  int64_t margin = lifetime_s / 4 < 10 ? lifetime_s / 4 : 10;
  if (lifetime_s - margin <= 0)
    return;
  char *h = strdup(host), *s = strdup(scope), *k = strdup(token);
  if (h == NULL || s == NULL || k == NULL) {
    free(h);
    free(s);
    upstream_free_secret(k);
    return; /* not caching is always correct */
  }
  pthread_mutex_lock(&u->tok_lock);
  struct upstream_token *t = slot_find(u, host, scope);
  for (size_t i = 0; t == NULL && i < UPSTREAM_TOKENS_MAX; i++)
    if (u->tokens[i].host == NULL)
      t = &u->tokens[i];
  if (t == NULL) { /* full: evict the oldest */
    t = &u->tokens[0];
    for (size_t i = 1; i < UPSTREAM_TOKENS_MAX; i++)
      if (u->tokens[i].seq < t->seq)
        t = &u->tokens[i];
  }
  slot_clear(t);
  *t = (struct upstream_token){.host = h,
                               .scope = s,
                               .token = k,
                               .seq = ++u->tok_seq,
                               .expires_ms = ep_mono_ms() + (lifetime_s - margin) * 1000};
  pthread_mutex_unlock(&u->tok_lock);
}

void upstream_token_drop(upstream *u, const char *host, const char *scope, const char *token) {
  pthread_mutex_lock(&u->tok_lock);
  struct upstream_token *t = slot_find(u, host, scope);
  if (t != NULL && strcmp(t->token, token) == 0)
    slot_clear(t);
  pthread_mutex_unlock(&u->tok_lock);
}

void upstream_tokens_clear(upstream *u) {
  pthread_mutex_lock(&u->tok_lock);
  for (size_t i = 0; i < UPSTREAM_TOKENS_MAX; i++)
    if (u->tokens[i].host != NULL)
      slot_clear(&u->tokens[i]);
  pthread_mutex_unlock(&u->tok_lock);
}

/* ---- token endpoint ---------------------------------------------------- */

/* Seconds the token has left: expires_in less the age issued_at gives, when
 * issued_at is sane by our clock (a skewed clock is ignored, not trusted). */
static int64_t token_lifetime(json_t *j) {
  json_t *e = json_object_get(j, "expires_in");
  int64_t life = json_is_integer(e) && json_integer_value(e) > 0 ? json_integer_value(e) : 60;
  if (life > 86400)
    life = 86400;
  const char *iat = json_string_value(json_object_get(j, "issued_at"));
  struct tm tm = {0};
  const char *end = iat ? strptime(iat, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
  if (end != NULL) {
    time_t issued = timegm(&tm), now = time(NULL);
    if (issued != (time_t)-1 && issued <= now && now - issued < life)
      life -= now - issued;
  }
  return life;
}

int upstream_token_parse(const struct ep_buf *b, char **tok, int64_t *life, ep_err *err) {
  json_error_t je;
  ep_cleanup_json json_t *j = json_loadb(b->data ? b->data : "", b->len, 0, &je);
  if (!json_is_object(j))
    return ep_error(err, EP_EAUTH, "token endpoint answer is not a JSON object");
  const char *t = json_string_value(json_object_get(j, "token"));
  if (t == NULL || t[0] == '\0')
    t = json_string_value(json_object_get(j, "access_token"));
  int rc = 0;
  size_t n = t ? strnlen(t, UPSTREAM_TOKEN_MAX + 1) : 0;
  if (n == 0)
    rc = ep_error(err, EP_EAUTH, "token endpoint answer has no token");
  else if (n > UPSTREAM_TOKEN_MAX)
    rc = ep_error(err, EP_EAUTH, "token longer than %d bytes refused", UPSTREAM_TOKEN_MAX);
  for (size_t i = 0; rc == 0 && i < n; i++)
    if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
      rc = ep_error(err, EP_EAUTH, "token contains characters not allowed in a header");
  if (rc == 0 && (*tok = strdup(t)) == NULL)
    rc = ep_error(err, EP_EINTERNAL, "out of memory");
  if (rc == 0)
    *life = token_lifetime(j);
  return rc;
}

static int token_url(const struct upstream_challenge *c, const char *scope, char **out,
                     ep_err *err) {
  CURLU *cu = curl_url();
  char *scheme = NULL, *url = NULL;
  ep_cleanup_free char *sv = NULL, *sc = NULL;
  int rc = 0;
  if (cu == NULL || asprintf(&sv, "service=%s", c->service) < 0 ||
      asprintf(&sc, "scope=%s", scope) < 0) {
    curl_url_cleanup(cu);
    return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  if (curl_url_set(cu, CURLUPART_URL, c->realm, 0) != CURLUE_OK ||
      curl_url_get(cu, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
    rc = ep_error(err, EP_EAUTH, "Bearer realm is not a valid URL");
  else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
    rc = ep_error(err, EP_EAUTH, "Bearer realm is not an http(s) URL; refused");
  else if ((c->service[0] && curl_url_set(cu, CURLUPART_QUERY, sv,
                                          CURLU_APPENDQUERY | CURLU_URLENCODE) != CURLUE_OK) ||
           (scope[0] && curl_url_set(cu, CURLUPART_QUERY, sc,
                                     CURLU_APPENDQUERY | CURLU_URLENCODE) != CURLUE_OK) ||
           curl_url_get(cu, CURLUPART_URL, &url, 0) != CURLUE_OK)
    rc = ep_error(err, EP_EAUTH, "cannot build the token URL");
  else if ((*out = strdup(url)) == NULL)
    rc = ep_error(err, EP_EINTERNAL, "out of memory");
  curl_free(scheme);
  curl_free(url);
  curl_url_cleanup(cu);
  return rc;
}

/* The realm is a URL the registry gave us: its request is held to the
 * redirect policy, from the registry's address class and scheme (origin). */
static int token_fetch(upstream *u, const char *host, const struct upstream_challenge *c,
                       const char *scope, const struct upstream_xfer *origin, char **tok,
                       int64_t *life, ep_err *err) {
  ep_cleanup_free char *url = NULL;
  int rc = token_url(c, scope, &url, err);
  if (rc < 0)
    return rc;
  char *user = NULL, *pass = NULL;
  if ((rc = upstream_creds_get(u, host, &user, &pass, err)) < 0)
    return rc;
  char what[NAMES_HOST_MAX + 64];
  snprintf(what, sizeof what, "token for %s from its realm", host);
  struct upstream_req req = {.host = host,
                             .url = url,
                             .what = what,
                             .accept = "application/json",
                             .body_max = UPSTREAM_TOKEN_BODY_MAX,
                             .origin_class =
                                 origin->origin_class ? origin->origin_class : NETCLASS_PUBLIC,
                             .origin_https = origin->origin_https};
  struct upstream_auth a = {.user = user, .pass = pass};
  struct upstream_xfer *x = upstream_xfer_new(u, &req);
  if (x == NULL)
    rc = ep_error(err, EP_EINTERNAL, "out of memory");
  else
    rc = upstream_perform(u, &req, &a, x, err);
  if (rc == 0 && x->status != 200)
    rc = ep_error(err, EP_EAUTH, "%s: token endpoint answered %ld%s", what, x->status,
                  x->status == 401 || x->status == 403
                      ? (user ? " (credentials refused)" : " (anonymous access refused)")
                      : "");
  else if (rc == 0)
    rc = upstream_token_parse(&x->body, tok, life, err) < 0 ? ep_wrap(err, "%s", what) : 0;
  if (x != NULL && x->body.data != NULL)
    explicit_bzero(x->body.data, x->body.len);
  upstream_xfer_free(x);
  upstream_free_secret(user);
  upstream_free_secret(pass);
  return rc;
}

/* ---- the authenticated call -------------------------------------------- */

struct auth_state {
  char scope[NAMES_REPO_MAX + 32]; /* default: repository:<repo>:pull */
  char *token;
  char *user, *pass;
  struct upstream_auth a;
};

static void auth_state_clear(struct auth_state *s) {
  upstream_free_secret(s->token);
  upstream_free_secret(s->user);
  upstream_free_secret(s->pass);
}

static int answer_challenge(upstream *u, const struct upstream_req *r,
                            const struct upstream_xfer *x, struct auth_state *s, ep_err *err) {
  struct upstream_challenge c;
  int rc;
  if (x->www_auth_too_long)
    return ep_error(err, EP_EAUTH, "%s: WWW-Authenticate challenge longer than %d bytes refused",
                    r->what, UPSTREAM_WWW_AUTH_MAX);
  if (x->www_auth[0] == '\0')
    return ep_error(err, EP_EAUTH, "%s: %s answered 401 without a challenge", r->what, r->host);
  if ((rc = upstream_parse_challenge(x->www_auth, &c, err)) < 0)
    return ep_wrap(err, "%s: %s", r->what, r->host);
  if (c.scheme == UPSTREAM_AUTH_BASIC) {
    if ((rc = upstream_creds_get(u, r->host, &s->user, &s->pass, err)) < 0)
      return rc;
    if (s->user == NULL)
      return ep_error(err, EP_EAUTH, "%s: %s requires credentials and none are configured", r->what,
                      r->host);
    s->a = (struct upstream_auth){.user = s->user, .pass = s->pass};
    return 0;
  }
  const char *scope = c.scope[0] ? c.scope : s->scope;
  char *tok = upstream_token_get(u, r->host, scope);
  if (tok != NULL && s->token != NULL && strcmp(tok, s->token) == 0) {
    upstream_token_drop(u, r->host, scope, tok); /* refused: it was revoked */
    upstream_free_secret(tok);
    tok = NULL;
  }
  if (tok == NULL) {
    int64_t life = 60;
    if ((rc = token_fetch(u, r->host, &c, scope, x, &tok, &life, err)) < 0)
      return err != NULL && err->code == EP_EUNREACH ? rc : ep_wrap(err, "%s", r->what);
    upstream_token_put(u, r->host, scope, tok, life);
  }
  upstream_free_secret(s->token);
  s->token = tok;
  s->a = (struct upstream_auth){.bearer = tok};
  return 0;
}

int upstream_call(upstream *u, const struct upstream_req *r, struct upstream_xfer *x, ep_err *err) {
  struct auth_state s = {0};
  if (r->repo != NULL) {
    snprintf(s.scope, sizeof s.scope, "repository:%s:pull", r->repo);
    s.token = upstream_token_get(u, r->host, s.scope);
    s.a.bearer = s.token;
  }
  int rc;
  for (int attempt = 0;; attempt++) {
    if ((rc = upstream_perform(u, r, &s.a, x, err)) < 0 || x->status != 401)
      break;
    if (attempt > 0) {
      rc = ep_error(err, EP_EAUTH, "%s: %s refused our credentials (401 after authenticating)",
                    r->what, r->host);
      break;
    }
    if ((rc = answer_challenge(u, r, x, &s, err)) < 0)
      break;
  }
  auth_state_clear(&s);
  return rc;
}
