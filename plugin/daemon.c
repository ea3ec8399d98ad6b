#include "plugin/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "plugin/agent.h"
#include "plugin/sources.h"

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

int edgepulld_open(struct edgepulld *d, ep_err *err) {
  if (!d->agent_mu_ready) {
    pthread_mutex_init(&d->agent_mu, NULL);
    d->agent_mu_ready = true;
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
      (r = config_read_secret(d->cfg.peer_secret_file, d->peer_secret, sizeof d->peer_secret,
                              err)) < 0)
    return ep_wrap(err, "peer-secret-file %s", d->cfg.peer_secret_file);
  if (d->src == NULL && (r = sources_new(&d->src, err)) < 0)
    return r;
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
                            .sources_ud = d,
                            .node_id = d->cfg.node_id,
                            .source_wait_ms = d->source_wait_ms,
                            .max_jobs = d->cfg.max_fetches,
                            .orphan_grace_ms = d->cfg.fetch_orphan_grace_s * 1000,
                            .peer_secret = d->peer_secret[0] != '\0' ? d->peer_secret : NULL};
  if ((r = fetcher_new(&fd, &d->fetch, err)) < 0)
    return r;
  struct agent *a = NULL;
  if ((r = agent_start(d, &a, err)) < 0)
    return ep_wrap(err, "locality agent");
  pthread_mutex_lock(&d->agent_mu);
  d->agent = a;
  pthread_mutex_unlock(&d->agent_mu);
  return 0;
}

void edgepulld_close(struct edgepulld *d) {
  if (d->agent_mu_ready) {
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
  if (d->agent_mu_ready)
    pthread_mutex_destroy(&d->agent_mu);
  d->agent_mu_ready = false;
}
