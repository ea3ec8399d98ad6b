/* The daemon: the one place where modules meet. It opens the shared handles
 * (store, index, upstream client, pipes), builds each module's *_deps from
 * them and from the configuration, and wires the callbacks that would
 * otherwise make modules call each other in a circle: parent assignments
 * and deploy requests flow out of the agent, suspect reports and commit
 * announcements into it, each through a function here that takes the
 * mutex guarding the agent (or the worker) against edgepulld_close. */
#include "plugin/daemon/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/names.h"
#include "plugin/agent/agent.h"

static int make_state_dir(const char *dir, ep_err *err) {
  if (dir[0] != '/')
    return ep_error(err, EP_EINVAL, "state-dir '%s' must be an absolute path", dir);
  if (mkdir(dir, 0750) < 0 && errno != EEXIST)
    return ep_syserror(err, EP_EIO, "creating state-dir %s", dir);
  return 0;
}

static int open_upstream(struct edgepulld *d, ep_err *err) {
  struct upstream_options uo = {
      .connect_timeout_s = d->cfg.connect_timeout_s,
      .ca_file = d->cfg.ca_file[0] != '\0' ? d->cfg.ca_file : NULL,
      .peer_low_speed_time_s = d->cfg.peer_stall_timeout_s,
  };
  int r = upstream_new(&uo, &d->up, err);
  if (r < 0)
    return r;
  for (size_t i = 0; i < d->cfg.nregistries; i++) {
    const struct config_registry *reg = &d->cfg.registries[i];
    if (reg->url[0] != '\0' && (r = upstream_add_registry(d->up, reg->host, reg->url, err)) < 0)
      return ep_wrap(err, "registry %s", reg->host);
    if (reg->username[0] != '\0' &&
        (r = upstream_set_credentials(d->up, reg->host, reg->username, reg->password, err)) < 0)
      return ep_wrap(err, "registry %s", reg->host);
  }
  return 0;
}

/* Fetch thread: a blob was committed; the agent announces it. */
static void announce_commit(void *ud, const digest_t *dg, uint64_t size) {
  struct edgepulld *d = ud;
  pthread_mutex_lock(&d->agent_mu);
  agent_blob_added(d->agent, dg, size);
  pthread_mutex_unlock(&d->agent_mu);
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

void edgepulld_deploy_deps(struct edgepulld *d, struct deploy_deps *out) {
  *out = (struct deploy_deps){.fetch = d->fetch, .st = d->st, .idx = d->idx, .mirror = &d->mirror};
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
                            .peer_secret = d->peer_secret[0] != '\0' ? d->peer_secret : NULL};
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
    if (pthread_mutex_init(&d->agent_mu, NULL) != 0 || pthread_mutex_init(&d->deploy_mu, NULL) != 0)
      return ep_error(err, EP_EINTERNAL, "cannot create the daemon's mutexes");
    d->mu_ready = true;
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
  if ((r = open_upstream(d, err)) < 0)
    return r;
  if (d->cfg.peer_secret_file[0] != '\0' &&
      (r = names_secret_read(d->cfg.peer_secret_file, d->peer_secret, sizeof d->peer_secret, err)) <
          0)
    return ep_wrap(err, "peer-secret-file %s", d->cfg.peer_secret_file);
  if ((r = open_sources(d, err)) < 0 || (r = open_fetcher(d, opt, err)) < 0)
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
                           .up = d->up,
                           .pipes = d->pipes,
                           .fetch = d->fetch,
                           .mirror = &d->mirror,
                           .src = d->src,
                           .peer_secret = d->peer_secret,
                           .default_registry = d->cfg.default_registry,
                           .max_connections = (unsigned)d->cfg.max_connections};
  return server_start_mode(&sd, listen_fd, mode, mode == SERVER_PEER ? &d->peer : &d->local, err);
}

void edgepulld_stop(struct edgepulld *d) {
  server_quiesce(d->local);
  server_quiesce(d->peer);
  if (d->fetch != NULL)
    fetcher_stop(d->fetch);
  server_stop(d->local);
  server_stop(d->peer);
  d->local = d->peer = NULL;
}

void edgepulld_close(struct edgepulld *d) {
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
  fetcher_free(d->fetch); /* waits for fetch threads: after it nothing writes */
  d->fetch = NULL;
  if (d->pipes != NULL)
    pipe_table_free(d->pipes);
  d->pipes = NULL;
  upstream_free(d->up);
  d->up = NULL;
  sources_free(d->src);
  d->src = NULL;
  explicit_bzero(d->peer_secret, sizeof d->peer_secret);
  if (d->idx != NULL)
    index_close(d->idx);
  d->idx = NULL;
  if (d->st != NULL)
    store_close(d->st);
  d->st = NULL;
  if (d->mu_ready) {
    pthread_mutex_destroy(&d->agent_mu);
    pthread_mutex_destroy(&d->deploy_mu);
  }
  d->mu_ready = false;
}
