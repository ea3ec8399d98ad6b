/* The daemon: the one place where modules meet. It opens the shared handles
 * (store, index, upstream client, pipes), builds each module's *_deps from
 * them and from the configuration, and wires the callbacks that would
 * otherwise make modules call each other in a circle: parent assignments
 * and deploy requests flow out of the agent, suspect reports and commit
 * announcements into it, each through a function here that takes the
 * mutex guarding the agent (or the worker) against edgepulld_close. */
#include "plugin/daemon/daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/names.h"
#include "common/size.h"
#include "pki/pki.h"
#include "plugin/agent/agent.h"
#include "plugin/ref/ref.h"
#include "plugin/mirror/chains.h"
#include "plugin/snapshot/remote.h"
#include "plugin/snapshot/service.h"

static int make_state_dir(const char *dir, ep_err *err) {
  if (dir[0] != '/')
    return ep_error(err, EP_EINVAL, "state-dir '%s' must be an absolute path", dir);
  if (mkdir(dir, 0750) < 0 && errno != EEXIST)
    return ep_syserror(err, EP_EIO, "creating state-dir %s", dir);
  return 0;
}

/* A PEM file into memory (for libmicrohttpd), at most 1 MiB. */
static int read_pem(const char *path, char **out, ep_err *err) {
  ep_cleanup_fclose FILE *f = fopen(path, "re");
  if (f == NULL)
    return ep_syserror(err, EP_EINVAL, "reading %s", path);
  char *buf = calloc(1, (1u << 20) + 1);
  if (buf == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  size_t n = fread(buf, 1, 1u << 20, f);
  if (ferror(f) || !feof(f) || memchr(buf, '\0', n) != NULL) {
    explicit_bzero(buf, n);
    free(buf);
    return ep_error(err, EP_EINVAL, "%s: unreadable, over 1 MiB or not PEM text", path);
  }
  *out = buf;
  return 0;
}

static void free_pem(char **p) {
  if (*p != NULL)
    explicit_bzero(*p, strlen(*p));
  free(*p);
  *p = NULL;
}

/* Peer TLS: the files checked together (they chain to the CA, name this
 * node, the key is the certificate's), so a mistake stops the start with a
 * message saying which, then read for the peer endpoint. */
static int open_peer_tls(struct edgepulld *d, ep_err *err) {
  const struct edgepulld_config *c = &d->cfg;
  if (c->peer_cert[0] == '\0')
    return 0;
  int r = pki_check_node_files(c->peer_ca, c->peer_cert, c->peer_key, c->node_id, err);
  if (r < 0)
    return ep_wrap(err, "peer TLS");
  if ((r = read_pem(c->peer_ca, &d->peer_tls_ca, err)) < 0 ||
      (r = read_pem(c->peer_cert, &d->peer_tls_cert, err)) < 0 ||
      (r = read_pem(c->peer_key, &d->peer_tls_key, err)) < 0)
    return ep_wrap(err, "peer TLS");
  return 0;
}

/* One bucket of the rate a config value names, or NULL when it is "" or 0. */
static int open_rate(const char *flag, const char *value, ep_ratelimit **out, ep_err *err) {
  uint64_t rate = 0;
  *out = NULL;
  if (value[0] == '\0')
    return 0;
  if (ep_size_parse(value, &rate) < 0)
    return ep_error(err, EP_EINVAL, "--%s %s: not a rate", flag, value);
  if (rate > 0 && (*out = ep_ratelimit_new(rate)) == NULL)
    return ep_error(err, EP_EINTERNAL, "--%s: out of memory", flag);
  if (rate > 0)
    ep_log_info("%s: %" PRIu64 " bytes/s for all transfers together", flag, rate);
  return 0;
}

static int open_upstream(struct edgepulld *d, ep_err *err) {
  int r = open_rate("upstream-max-rate", d->cfg.upstream_max_rate, &d->up_rate, err);
  if (r < 0 || (r = open_rate("peer-max-rate", d->cfg.peer_max_rate, &d->peer_rate, err)) < 0)
    return r;
  bool tls = d->cfg.peer_cert[0] != '\0';
  struct upstream_options uo = {
      .connect_timeout_s = d->cfg.connect_timeout_s,
      .ca_file = d->cfg.ca_file[0] != '\0' ? d->cfg.ca_file : NULL,
      .peer_low_speed_time_s = d->cfg.peer_stall_timeout_s,
      .peer_ca = tls ? d->cfg.peer_ca : NULL,
      .peer_cert = tls ? d->cfg.peer_cert : NULL,
      .peer_key = tls ? d->cfg.peer_key : NULL,
      .rate = d->up_rate,
  };
  r = upstream_new(&uo, &d->up, err);
  if (r < 0)
    return r;
  /* The allowlist: every registry the configuration names, and the default
   * one; docker.io is always in it. */
  if ((r = upstream_allow_registry(d->up, d->cfg.default_registry, err)) < 0)
    return ep_wrap(err, "default registry");
  upstream_open_local(d->up, d->cfg.local_any_registry);
  for (size_t i = 0; i < d->cfg.nregistries; i++) {
    const struct config_registry *reg = &d->cfg.registries[i];
    if ((r = upstream_allow_registry(d->up, reg->host, err)) < 0)
      return ep_wrap(err, "registry %s", reg->host);
    if (reg->url[0] != '\0' && (r = upstream_add_registry(d->up, reg->host, reg->url, err)) < 0)
      return ep_wrap(err, "registry %s", reg->host);
    if (reg->username[0] != '\0' &&
        (r = upstream_set_credentials(d->up, reg->host, reg->username, reg->password, err)) < 0)
      return ep_wrap(err, "registry %s", reg->host);
  }
  return 0;
}

/* At start: a partial found complete was committed; the index records it. */
static int record_recovered(const digest_t *dg, uint64_t size, void *ud) {
  struct edgepulld *d = ud;
  struct index_blob b = {.digest = *dg, .size = size, .state = INDEX_BLOB_COMPLETE};
  b.created = b.last_access = (int64_t)time(NULL);
  ep_err e = {0};
  if (index_blob_put(d->idx, &b, &e) < 0)
    ep_log_warn("index: recording blob %s: %s", dg->hex, e.msg);
  return 0;
}

/* Fetch thread: a blob was committed; the agent announces it. */
static void announce_commit(void *ud, const digest_t *dg, uint64_t size) {
  struct edgepulld *d = ud;
  pthread_mutex_lock(&d->agent_mu);
  agent_blob_added(d->agent, dg, size);
  pthread_mutex_unlock(&d->agent_mu);
  gc_kick(d->gc); /* the store grew: over a watermark now? */
}

/* Fetch or request thread: a peer served bad bytes; the agent reports it. */
static void report_suspect(void *ud, const char *node, const digest_t *dg, const char *why) {
  struct edgepulld *d = ud;
  pthread_mutex_lock(&d->agent_mu);
  if (d->agent != NULL)
    agent_report_suspect(d->agent, node, dg, why);
  pthread_mutex_unlock(&d->agent_mu);
}

/* Mosquitto thread: this node's parent assignment changed. */
static void parent_changed(void *ud, const struct proto_parent *p) {
  struct edgepulld *d = ud;
  sources_set_parent(d->src, p);
}

/* Mosquitto thread: a deploy request for the worker. */
static int deploy_requested(void *ud, const struct proto_deploy *req, ep_err *err) {
  struct edgepulld *d = ud;
  int r = 1;
  pthread_mutex_lock(&d->deploy_mu); /* edgepulld_close takes the worker away under it */
  if (d->deploy != NULL)
    r = deploy_submit(d->deploy, req, err);
  pthread_mutex_unlock(&d->deploy_mu);
  return r;
}

/* Deploy thread: progress goes out through the agent. */
static void deploy_progress(void *ud, const struct proto_progress *p, bool final) {
  struct edgepulld *d = ud;
  pthread_mutex_lock(&d->agent_mu);
  agent_publish_progress(d->agent, p, final);
  pthread_mutex_unlock(&d->agent_mu);
}

/* Snapshotter thread: containerd Prepared a layer of image host/repo. The blob is named as a
 * containerd mirror request with ?ns=<host> would name it (same validation, same Docker Hub
 * normalization), then taken from the fetch engine: store, in flight, parent, peers, upstream. */
static int snap_open_layer(void *ud, const char *host, const char *repo, const digest_t *layer,
                           blob_pipe **out, ep_err *err) {
  struct edgepulld *d = ud;
  char dg[DIGEST_STR_LEN + 1], path[NAMES_REPO_MAX + DIGEST_STR_LEN + 16];
  digest_format(layer, dg);
  snprintf(path, sizeof path, "/v2/%s/blobs/%s", repo, dg);
  struct ref_target t;
  int r = ref_parse_request(path, host, d->cfg.default_registry, &t, err);
  if (r < 0)
    return ep_wrap(err, "layer of %s/%s", host, repo);
  return fetcher_open(d->fetch, t.registry, t.name, &t.digest, out, err);
}

/* Snapshotter thread: a Prepare with a chain ID and no CRI labels (a plain `ctr images pull
 * --snapshotter edgepull`). The image's manifest and config came through the mirror before
 * containerd unpacks, so the index and store name the layer. */
static int snap_lookup_chain(void *ud, const digest_t *chain, digest_t *layer, char *host,
                             size_t hostlen, char *repo, size_t repolen, ep_err *err) {
  struct edgepulld *d = ud;
  struct chain_hit hit;
  int r = chains_lookup(d->idx, d->st, chain, &hit, err);
  if (r < 0)
    return ep_wrap(err, "chain sha256:%s", chain->hex);
  if (r == 0)
    return ep_error(err, EP_ENOTFOUND, "chain sha256:%s: in no image this node holds", chain->hex);
  if (snprintf(host, hostlen, "%s", hit.registry) >= (int)hostlen ||
      snprintf(repo, repolen, "%s", hit.repository) >= (int)repolen)
    return ep_error(err, EP_EINVAL, "chain sha256:%s: repository name too long", chain->hex);
  *layer = hit.layer;
  return 0;
}

static void snap_log_stats(struct edgepulld *d) {
  struct snap_remote_stats st;
  snap_remote_stats_get(d->snap_remote, &st);
  ep_log_info("snapshotter: remote unpacked %llu, existed %llu, joined %llu, unknown %llu, "
              "fallbacks %llu, compressed bytes %llu",
              (unsigned long long)st.unpacked, (unsigned long long)st.existed,
              (unsigned long long)st.joined, (unsigned long long)st.unknown,
              (unsigned long long)st.fallbacks, (unsigned long long)st.compressed);
}

int edgepulld_serve_snapshots(struct edgepulld *d, int listen_fd, const char *unlink_path,
                              ep_err *err) {
  struct snap_remote_deps deps = {.open_layer = snap_open_layer,
                                  .lookup_chain = snap_lookup_chain,
                                  .ud = d,
                                  .metrics = &d->metrics,
                                  .holds = d->holds};
  int r = snap_remote_new(&deps, NULL, &d->snap_remote, err);
  if (r < 0) {
    close(listen_fd);
    return ep_wrap(err, "snapshotter");
  }
  d->snap_fd = listen_fd; /* from here on snap_free closes it */
  snprintf(d->snap_unlink, sizeof d->snap_unlink, "%s", unlink_path != NULL ? unlink_path : "");
  char root[sizeof d->cfg.state_dir + 16];
  if (d->cfg.snapshotter_root[0] != '\0')
    snprintf(root, sizeof root, "%s", d->cfg.snapshotter_root);
  else
    snprintf(root, sizeof root, "%s/snapshots", d->cfg.state_dir);
  struct snapshot_service_opts o = {.root = root,
                                    .listen_fd = listen_fd,
                                    .remote = snap_remote_prepare,
                                    .remote_ud = d->snap_remote,
                                    .metrics = &d->metrics};
  struct snapshot_service *ss = NULL;
  if ((r = snapshot_service_start(&o, &ss, err)) < 0)
    return ep_wrap(err, "snapshotter in %s", root);
  pthread_mutex_lock(&d->snaps_mu);
  d->snaps = ss;
  pthread_mutex_unlock(&d->snaps_mu);
  return 0;
}

/* After fetcher_stop, so that a remote unpack waiting for bytes fails at once (containerd then
 * fetches that layer itself) instead of holding the shutdown for its stall timeout. */
static void snap_stop(struct edgepulld *d) {
  if (!d->mu_ready)
    return;                         /* never opened: nothing was served */
  pthread_mutex_lock(&d->snaps_mu); /* a GC pass may be walking its snapshots */
  struct snapshot_service *ss = d->snaps;
  d->snaps = NULL;
  pthread_mutex_unlock(&d->snaps_mu);
  snapshot_service_stop(ss);
}

static void snap_free(struct edgepulld *d) {
  snap_stop(d);
  if (d->snap_remote == NULL)
    return; /* never served */
  snap_log_stats(d);
  snap_remote_free(d->snap_remote);
  d->snap_remote = NULL;
  close(d->snap_fd);
  if (d->snap_unlink[0] != '\0')
    unlink(d->snap_unlink);
  d->snap_unlink[0] = '\0';
}

void edgepulld_deploy_deps(struct edgepulld *d, struct deploy_deps *out) {
  *out = (struct deploy_deps){
      .fetch = d->fetch, .st = d->st, .idx = d->idx, .mirror = &d->mirror, .holds = d->holds};
}

static int open_sources(struct edgepulld *d, ep_err *err) {
  d->src_deps = (struct sources_deps){.idx = d->idx,
                                      .node_id = d->cfg.node_id,
                                      .member = d->cfg.broker[0] != '\0',
                                      .gateway = d->cfg.gateway,
                                      .upstream_fallback = d->cfg.upstream_fallback,
                                      .report_suspect = report_suspect,
                                      .report_ud = d};
  return sources_new(&d->src_deps, &d->src, err);
}

static int open_fetcher(struct edgepulld *d, const struct edgepulld_options *opt, ep_err *err) {
  d->pipes = pipe_table_new();
  if (d->pipes == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  struct fetcher_deps fd = {.st = d->st,
                            .idx = d->idx,
                            .up = d->up,
                            .pipes = d->pipes,
                            .on_commit = announce_commit,
                            .on_commit_ud = d,
                            .pick_sources = sources_pick_cb,
                            .on_bad_source = sources_bad_cb,
                            .sources_ud = d->src,
                            .node_id = d->cfg.node_id,
                            .source_wait_ms = opt != NULL ? opt->source_wait_ms : 0,
                            .budget_ms = d->cfg.fetch_budget_s * 1000,
                            .min_rate = (uint64_t)d->cfg.peer_min_rate_kbs * 1024,
                            .rate_window_ms = d->cfg.peer_stall_timeout_s * 2000,
                            .max_blob = (uint64_t)d->cfg.max_blob_mb << 20,
                            .max_jobs = (unsigned)d->cfg.max_fetches,
                            .orphan_grace_ms = d->cfg.fetch_orphan_grace_s * 1000,
                            .stall_ms = opt != NULL ? opt->fetch_stall_ms : 0,
                            .peer_secret = d->peer_secret[0] != '\0' ? d->peer_secret : NULL,
                            .metrics = &d->metrics};
  return fetcher_new(&fd, &d->fetch, err);
}

/* The deploy worker, then the agent that hands it requests (a broker is
 * configured). */
static int open_locality(struct edgepulld *d, ep_err *err) {
  if (d->cfg.broker[0] == '\0')
    return 0;
  struct deploy_options o;
  struct deploy_deps dd;
  edgepulld_deploy_deps(d, &dd);
  deployer *w = NULL;
  int r = agent_config_deploy_options(&d->cfg, &o, err);
  if (r < 0)
    return ep_wrap(err, "locality agent");
  if ((r = deploy_new(&dd, &o, deploy_progress, d, &w, err)) < 0)
    return ep_wrap(err, "locality agent: deploy worker");
  pthread_mutex_lock(&d->deploy_mu);
  d->deploy = w;
  pthread_mutex_unlock(&d->deploy_mu);
  struct agent_deps ad = {
      .idx = d->idx, .on_deploy = deploy_requested, .on_parent = parent_changed, .ud = d};
  struct agent *a = NULL;
  if ((r = agent_start(&d->cfg, &ad, &a, err)) < 0)
    return ep_wrap(err, "locality agent");
  pthread_mutex_lock(&d->agent_mu);
  d->agent = a;
  pthread_mutex_unlock(&d->agent_mu);
  return 0;
}

int edgepulld_open(struct edgepulld *d, const struct edgepulld_options *opt, ep_err *err) {
  if (!d->mu_ready) {
    if (pthread_mutex_init(&d->agent_mu, NULL) != 0 ||
        pthread_mutex_init(&d->deploy_mu, NULL) != 0 || pthread_mutex_init(&d->snaps_mu, NULL) != 0)
      return ep_error(err, EP_EINTERNAL, "cannot create the daemon's mutexes");
    d->mu_ready = true;
  }
  if (!d->metrics_ready) {
    if (metrics_init(&d->metrics) < 0)
      return ep_error(err, EP_EINTERNAL, "cannot create the metrics");
    d->metrics_ready = true;
  }
  int r = make_state_dir(d->cfg.state_dir, err);
  if (r < 0)
    return r;
  if ((r = store_open(d->cfg.state_dir, &d->st, err)) < 0)
    return ep_wrap(err, "opening the store in %s", d->cfg.state_dir);
  char path[sizeof d->cfg.state_dir + 16];
  snprintf(path, sizeof path, "%s/index.db", d->cfg.state_dir);
  if ((r = index_open(path, &d->idx, err)) < 0)
    return ep_wrap(err, "opening the index %s", path);
  if ((r = touch_batch_new(d->idx, 0, &d->touch, err)) < 0)
    return r;
  ep_err re = {0}; /* complete partials left by a crash: commit, no request needed */
  if (store_recover_partials(d->st, record_recovered, d, &re) < 0)
    ep_log_warn("store: recovering partials: %s", re.msg);
  if ((r = open_peer_tls(d, err)) < 0 || (r = open_upstream(d, err)) < 0)
    return r;
  if (d->cfg.peer_secret_file[0] != '\0' &&
      (r = names_secret_read(d->cfg.peer_secret_file, d->peer_secret, sizeof d->peer_secret, err)) <
          0)
    return ep_wrap(err, "peer-secret-file %s", d->cfg.peer_secret_file);
  if ((r = open_sources(d, err)) < 0 || (r = open_fetcher(d, opt, err)) < 0 ||
      (r = daemon_gc_open(d, err)) < 0)
    return r;
  d->mirror = (struct mirror_deps){
      .st = d->st,
      .idx = d->idx,
      .up = d->up,
      .src = d->src,
      .node_id = d->cfg.node_id,
      .peer_secret = d->peer_secret[0] != '\0' ? d->peer_secret : NULL,
      .tag_ttl_s = d->cfg.tag_ttl_s,
      .gateway = d->cfg.gateway,
      .upstream_fallback = d->cfg.upstream_fallback,
  };
  return open_locality(d, err);
}

int edgepulld_serve(struct edgepulld *d, int listen_fd, enum server_mode mode, ep_err *err) {
  struct server_deps sd = {.st = d->st,
                           .idx = d->idx,
                           .touch = d->touch,
                           .up = d->up,
                           .pipes = d->pipes,
                           .fetch = d->fetch,
                           .mirror = &d->mirror,
                           .src = d->src,
                           .peer_secret = d->peer_secret,
                           .tls_cert = d->peer_tls_cert,
                           .tls_key = d->peer_tls_key,
                           .tls_ca = d->peer_tls_ca,
                           .default_registry = d->cfg.default_registry,
                           .max_connections = (unsigned)d->cfg.max_connections,
                           .header_timeout_s = d->cfg.header_timeout_s,
                           .local_max_per_ip = (unsigned)d->cfg.local_max_per_ip,
                           .peer_max_per_ip = (unsigned)d->cfg.peer_max_per_ip,
                           .endpoints = d->cfg.peer_listen[0] != '\0' ? 2 : 1,
                           .max_fetches = (unsigned)d->cfg.max_fetches,
                           .partial_max_age_s = d->cfg.partial_max_age_s,
                           .metrics = &d->metrics,
                           .render_metrics = edgepulld_render_metrics,
                           .metrics_ud = d,
                           .peer_rate = d->peer_rate,
                           .holds = d->holds,
                           .admin = daemon_gc_admin,
                           .admin_ud = d};
  struct server **slot = mode == SERVER_PEER      ? &d->peer
                         : mode == SERVER_METRICS ? &d->metrics_srv
                                                  : &d->local;
  return server_start_mode(&sd, listen_fd, mode, slot, err);
}

/* Watchdog thread: no fetch stuck. */
static int fetch_check(void *ud, int64_t now_ms, int timeout_ms, ep_err *why) {
  struct edgepulld *d = ud;
  (void)timeout_ms;
  return d->fetch != NULL ? fetcher_health(d->fetch, now_ms, why) : 0;
}

/* Watchdog thread: the runtime's endpoint answers (the peer one may want
 * credentials and shares the same code and process). */
static int http_check(void *ud, int64_t now_ms, int timeout_ms, ep_err *why) {
  struct edgepulld *d = ud;
  (void)now_ms;
  return server_probe(d->local, timeout_ms, why);
}

int edgepulld_watch(struct edgepulld *d, const char *status, ep_err *err) {
  struct watchdog_deps wd = {
      .checks = {{.failing = "fetch engine stuck", .check = fetch_check, .ud = d},
                 {.failing = "HTTP server not answering", .check = http_check, .ud = d}},
      .nchecks = 2,
  };
  snprintf(wd.status_ok, sizeof wd.status_ok, "%s", status);
  return watchdog_start(&wd, &d->wd, err);
}

void edgepulld_stop(struct edgepulld *d) {
  watchdog_stop(d->wd); /* its checks use what is stopped below */
  d->wd = NULL;
  server_quiesce(d->local);
  server_quiesce(d->peer);
  server_quiesce(d->metrics_srv);
  ep_ratelimit_close(d->up_rate); /* wakes transfers sleeping off a debt */
  ep_ratelimit_close(d->peer_rate);
  if (d->fetch != NULL)
    fetcher_stop(d->fetch);
  snap_stop(d);
  server_stop(d->local);
  server_stop(d->peer);
  server_stop(d->metrics_srv); /* its scrapes read what edgepulld_close frees */
  d->local = d->peer = d->metrics_srv = NULL;
}

void edgepulld_close(struct edgepulld *d) {
  daemon_gc_close(d); /* no pass runs while the rest goes */
  edgepulld_stop(d);
  if (d->mu_ready) {
    pthread_mutex_lock(&d->deploy_mu);
    deployer *w = d->deploy;
    d->deploy = NULL;
    pthread_mutex_unlock(&d->deploy_mu);
    deploy_free(w); /* its final messages still go out through the agent */
    pthread_mutex_lock(&d->agent_mu);
    struct agent *a = d->agent;
    d->agent = NULL;
    pthread_mutex_unlock(&d->agent_mu);
    agent_stop(a);
  }
  snap_free(d);
  fetcher_free(d->fetch); /* waits for fetch threads: after it nothing writes */
  d->fetch = NULL;
  daemon_gc_free_holds(d); /* the endpoints are stopped: nobody reads */
  if (d->pipes != NULL)
    pipe_table_free(d->pipes);
  d->pipes = NULL;
  upstream_free(d->up);
  d->up = NULL;
  ep_ratelimit_free(d->up_rate);
  ep_ratelimit_free(d->peer_rate);
  d->up_rate = d->peer_rate = NULL;
  sources_free(d->src);
  d->src = NULL;
  explicit_bzero(d->peer_secret, sizeof d->peer_secret);
  free_pem(&d->peer_tls_key);
  free_pem(&d->peer_tls_cert);
  free_pem(&d->peer_tls_ca);
  touch_batch_free(d->touch); /* the endpoints are stopped: the last touches go in */
  d->touch = NULL;
  if (d->idx != NULL)
    index_close(d->idx);
  d->idx = NULL;
  if (d->st != NULL)
    store_close(d->st);
  d->st = NULL;
  if (d->mu_ready) {
    pthread_mutex_destroy(&d->agent_mu);
    pthread_mutex_destroy(&d->deploy_mu);
    pthread_mutex_destroy(&d->snaps_mu);
  }
  d->mu_ready = false;
  if (d->metrics_ready)
    metrics_destroy(&d->metrics);
  d->metrics_ready = false;
}
