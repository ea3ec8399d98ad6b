/* The upstream registry client, on top of the upstream module: the handle's
 * lifecycle and the registry API (manifests and blobs by host and
 * repository), each call one authenticated request (upstream_call in
 * upstream_auth.c) over the transport (upstream_transport.c). The files call
 * downwards only: upstream.c -> upstream_auth.c -> upstream_transport.c, and
 * upstream_peer.c -> upstream_transport.c. Names (host, repository, tag,
 * URL) are checked with common/names.h, as everywhere else.
 *
 * Threads: the upstream handle is shared; the registry map, the handle pool
 * and the token cache each have their own mutex, held only to copy in or out.
 * upstream_cancel_all sets a flag that curl's progress callback polls. */
#include "plugin/upstream/upstream.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "plugin/upstream/upstream_int.h"

/* ---- lifecycle --------------------------------------------------------- */

int upstream_new(const struct upstream_options *opt, upstream **out, ep_err *err) {
  struct upstream_options def = {0};
  if (opt == NULL)
    opt = &def;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return ep_error(err, EP_EINTERNAL, "curl_global_init failed");
  upstream *u = calloc(1, sizeof *u);
  if (u == NULL) {
    curl_global_cleanup();
    return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  u->connect_timeout_s = opt->connect_timeout_s > 0 ? opt->connect_timeout_s : 10;
  u->low_speed_time_s = opt->low_speed_time_s > 0 ? opt->low_speed_time_s : 30;
  u->peer_low_speed_time_s = opt->peer_low_speed_time_s > 0 ? opt->peer_low_speed_time_s : 5;
  u->user_agent = strdup(opt->user_agent ? opt->user_agent : "edgepull/" EDGEPULL_VERSION);
  u->rate = opt->rate;
  u->ca_file = opt->ca_file && opt->ca_file[0] ? strdup(opt->ca_file) : NULL;
  int ntls = (opt->peer_ca != NULL) + (opt->peer_cert != NULL) + (opt->peer_key != NULL);
  if (ntls == 3) {
    u->peer_ca = strdup(opt->peer_ca);
    u->peer_cert = strdup(opt->peer_cert);
    u->peer_key = strdup(opt->peer_key);
  }
  atomic_init(&u->canceled, false);
  int mr = pthread_mutex_init(&u->reg_lock, NULL);
  if (mr == 0)
    mr = pthread_mutex_init(&u->pool_lock, NULL);
  if (mr == 0)
    mr = pthread_mutex_init(&u->tok_lock, NULL);
  if (mr != 0 || u->user_agent == NULL || (opt->ca_file && opt->ca_file[0] && u->ca_file == NULL) ||
      (ntls == 3 && (u->peer_ca == NULL || u->peer_cert == NULL || u->peer_key == NULL))) {
    upstream_free(u);
    return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  if (ntls != 0 && ntls != 3) {
    upstream_free(u);
    return ep_error(err, EP_EINVAL, "peer TLS needs the CA, the certificate and the key");
  }
  *out = u;
  return 0;
}

void upstream_free(upstream *u) {
  if (u == NULL)
    return;
  for (size_t i = 0; i < u->npool; i++)
    curl_easy_cleanup(u->pool[i]);
  for (size_t i = 0; i < u->nregs; i++) {
    free(u->regs[i].host);
    free(u->regs[i].url);
    upstream_free_secret(u->regs[i].user);
    upstream_free_secret(u->regs[i].pass);
  }
  free(u->regs);
  upstream_tokens_clear(u);
  pthread_mutex_destroy(&u->reg_lock);
  pthread_mutex_destroy(&u->pool_lock);
  pthread_mutex_destroy(&u->tok_lock);
  free(u->user_agent);
  free(u->ca_file);
  free(u->peer_ca);
  free(u->peer_cert);
  free(u->peer_key);
  free(u);
  curl_global_cleanup();
}

/* ---- the registry API ------------------------------------------------- */

static int base_url(upstream *u, const char *host, const char *repo, ep_err *err, char *buf,
                    size_t len) {
  if (repo == NULL || !names_repo_valid(repo))
    return ep_error(err, EP_EINVAL, "invalid repository name");
  if (!upstream_registry_allowed(u, host, false))
    return ep_error(err, EP_EDENIED,
                    "registry %s is not in the allowlist (--registry, "
                    "--allow-registry)",
                    host != NULL && names_registry_valid(host) ? host : "?");
  return upstream_endpoint(u, host, buf, len, err);
}

static int manifest_request(upstream *u, const char *host, const char *repo, const char *ref,
                            const char *accept, bool head, struct upstream_manifest *out,
                            ep_err *err) {
  memset(out, 0, sizeof *out);
  char base[NAMES_HOST_MAX + 16];
  int rc = base_url(u, host, repo, err, base, sizeof base);
  if (rc < 0)
    return rc;
  digest_t want = {{0}};
  bool by_digest = false;
  if ((rc = upstream_manifest_ref(ref, &by_digest, &want, err)) < 0)
    return rc;
  ep_cleanup_free char *url = NULL, *what = NULL;
  if (asprintf(&url, "%s/v2/%s/manifests/%s", base, repo, ref) < 0 ||
      asprintf(&what, "manifest %s%s%s", repo, by_digest ? "@" : ":", ref) < 0)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  struct upstream_req req = {.host = host,
                             .repo = repo,
                             .url = url,
                             .what = what,
                             .head = head,
                             .accept = accept ? accept : upstream_default_accept,
                             .body_max = head ? 0 : UPSTREAM_MANIFEST_MAX};
  struct upstream_xfer *x = upstream_xfer_new(u, &req);
  if (x == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  rc = upstream_call(u, &req, x, err);
  return upstream_manifest_finish(x, rc, by_digest, &want, out, err);
}

int upstream_manifest_get(upstream *u, const char *host, const char *repo, const char *ref,
                          const char *accept, struct upstream_manifest *out, ep_err *err) {
  return manifest_request(u, host, repo, ref, accept, false, out, err);
}

int upstream_manifest_resolve(upstream *u, const char *host, const char *repo, const char *ref,
                              const char *accept, struct upstream_manifest *out, ep_err *err) {
  ep_err herr = {0};
  int rc = manifest_request(u, host, repo, ref, accept, true, out, &herr);
  if (rc == 0 && out->have_digest)
    return 0;
  /* A registry without Docker-Content-Digest on HEAD, or one refusing HEAD
   * (405 and the like), still answers GET. */
  if (rc < 0 && herr.code != EP_EUPSTREAM) {
    if (err != NULL)
      *err = herr;
    return rc;
  }
  if (rc < 0)
    ep_log_debug("%s; trying GET", herr.msg);
  upstream_manifest_clear(out);
  return manifest_request(u, host, repo, ref, accept, false, out, err);
}

/* ---- blobs ------------------------------------------------------------- */

static int blob_request(upstream *u, const char *host, const char *repo, const digest_t *d,
                        bool head, uint64_t offset, const struct upstream_blob_sink *sink,
                        struct upstream_xfer **xo, ep_err *err) {
  char base[NAMES_HOST_MAX + 16];
  int rc = base_url(u, host, repo, err, base, sizeof base);
  if (rc < 0)
    return rc;
  ep_err de = {0};
  if (d == NULL || digest_parse_hex(d->hex, &(digest_t){0}, &de) < 0)
    return ep_error(err, EP_EINVAL, "invalid blob digest");
  if (!head && (sink == NULL || sink->on_data == NULL))
    return ep_error(err, EP_EINVAL, "blob download without a data callback");
  struct {
    struct upstream_req req;
    char url[NAMES_HOST_MAX + NAMES_REPO_MAX + 128];
    char what[NAMES_REPO_MAX + 96];
  } *s = calloc(1, sizeof *s);
  if (s == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  snprintf(s->url, sizeof s->url, "%s/v2/%s/blobs/sha256:%s", base, repo, d->hex);
  snprintf(s->what, sizeof s->what, "blob %s@sha256:%s", repo, d->hex);
  s->req = (struct upstream_req){.host = host,
                                 .repo = repo,
                                 .url = s->url,
                                 .what = s->what,
                                 .head = head,
                                 .range_from = offset,
                                 .sink = sink};
  struct upstream_xfer *x = upstream_xfer_new(u, &s->req);
  if (x == NULL) {
    free(s);
    return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  rc = upstream_call(u, &s->req, x, err);
  *xo = x; /* s is the first member's storage: freed with blob_done */
  return rc;
}

static void blob_done(struct upstream_xfer *x) {
  if (x == NULL)
    return;
  void *s = (void *)x->req;
  upstream_xfer_free(x);
  free(s);
}

int upstream_blob_get(upstream *u, const char *host, const char *repo, const digest_t *d,
                      uint64_t offset, const struct upstream_blob_sink *sink, ep_err *err) {
  struct upstream_xfer *x = NULL;
  int rc = blob_request(u, host, repo, d, false, offset, sink, &x, err);
  /* a 416 is "nothing past offset", even when its body was cut short */
  if (x != NULL && !x->streaming && x->status == 416)
    rc = 0;
  if (rc == 0 && !x->streaming) {
    if (x->status == 416)
      rc = ep_error(err, EP_ERANGE, "%s: range from byte %" PRIu64 " not satisfiable (416)",
                    x->req->what, offset);
    else
      rc = upstream_status_error(x, err);
  }
  blob_done(x);
  return rc;
}

int upstream_blob_head(upstream *u, const char *host, const char *repo, const digest_t *d,
                       uint64_t *size, ep_err *err) {
  struct upstream_xfer *x = NULL;
  int rc = blob_request(u, host, repo, d, true, 0, NULL, &x, err);
  if (rc == 0) {
    if (x->status == 404)
      rc = 0;
    else if (x->status != 200)
      rc = upstream_status_error(x, err);
    else if (x->content_length < 0)
      rc = ep_error(err, EP_EUPSTREAM, "%s: HEAD answer without Content-Length", x->req->what);
    else {
      *size = (uint64_t)x->content_length;
      rc = 1;
    }
  }
  blob_done(x);
  return rc;
}
