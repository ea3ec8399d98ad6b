/* The remote path: a Prepare carrying containerd.io/snapshot.ref=<chainID> becomes a fetch of
 * the layer through the injected source, an unpack into a new snapshot while the blob streams
 * in, a verification and a commit; the Prepare then answers AlreadyExists.
 *
 * Why it is shaped this way:
 * - containerd 1.6 (metadata/snapshot.go) turns AlreadyExists into a List with
 *   labels."containerd.io/snapshot.ref"==<chainID>,parent=="<parent>" and takes the first
 *   committed match. So the committed snapshot carries that label and exactly the requested
 *   parent; its name is ours to choose ("edgepull/remote/<parent tag>/<chainID>": one per chain
 *   and parent, never one of containerd's "<ns>/<n>/…" keys).
 * - Any failure must let containerd do the work itself: with 1.6's unpacker an error other than
 *   AlreadyExists fails the pull, so failures answer -EP_EUNSUPPORTED (an ordinary Prepare).
 * - Verification: the pipe ends DONE only once the compressed digest matched; the unpacker
 *   computes the diffID, and the chain ID requested must equal identity.ChainID(parent chain ID,
 *   diffID). The parent's chain ID is its own snapshot.ref label.
 * - Single flight: concurrent Prepares of one chain (CRI pulls of two images sharing a base) wait
 *   for the one unpack running instead of starting another.
 * - The tree is written by snap_create_committed: a temp directory that List never shows, so a
 *   failure or a kill leaves nothing half-visible. */
#include "plugin/snapshot/remote.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/names.h"

enum { REMOTE_STALL_MS = 60000, REMOTE_NAME = 128, REMOTE_MAX_ROUNDS = 3 };

/* One unpack in progress; freed by the last of the leader and its waiters. */
struct flight {
  digest_t chain;
  bool done, ok;
  unsigned refs;
  struct flight *next;
};

struct snap_remote {
  struct snap_remote_deps deps;
  struct snap_remote_opts opts;
  pthread_mutex_t mu; /* flights and stats */
  pthread_cond_t cv;  /* a flight ended */
  struct flight *flights;
  struct snap_remote_stats st;
};

int snap_remote_new(const struct snap_remote_deps *deps, const struct snap_remote_opts *opts,
                    snap_remote **out, ep_err *err) {
  if (deps == NULL || deps->open_layer == NULL)
    return ep_error(err, EP_EINVAL, "remote snapshots: no layer source");
  snap_remote *rm = calloc(1, sizeof *rm);
  if (rm == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  rm->deps = *deps;
  if (opts != NULL)
    rm->opts = *opts;
  if (rm->opts.stall_timeout_ms <= 0)
    rm->opts.stall_timeout_ms = REMOTE_STALL_MS;
  if (pthread_mutex_init(&rm->mu, NULL) != 0) {
    free(rm);
    return ep_error(err, EP_EINTERNAL, "remote snapshots: cannot create a mutex");
  }
  if (pthread_cond_init(&rm->cv, NULL) != 0) {
    pthread_mutex_destroy(&rm->mu);
    free(rm);
    return ep_error(err, EP_EINTERNAL, "remote snapshots: cannot create a condition");
  }
  *out = rm;
  return 0;
}

void snap_remote_free(snap_remote *rm) {
  if (rm == NULL)
    return;
  pthread_cond_destroy(&rm->cv);
  pthread_mutex_destroy(&rm->mu);
  free(rm);
}

void snap_remote_stats_get(snap_remote *rm, struct snap_remote_stats *out) {
  pthread_mutex_lock(&rm->mu);
  *out = rm->st;
  pthread_mutex_unlock(&rm->mu);
}

static void count(snap_remote *rm, uint64_t *field) {
  pthread_mutex_lock(&rm->mu);
  (*field)++;
  pthread_mutex_unlock(&rm->mu);
}

/* ---- image references --------------------------------------------------- */

static bool is_registry(const char *first, size_t n) {
  return memchr(first, '.', n) != NULL || memchr(first, ':', n) != NULL ||
         (n == 9 && memcmp(first, "localhost", 9) == 0);
}

static int put(char *dst, size_t cap, const char *s, size_t n) {
  if (n >= cap)
    return -1;
  memcpy(dst, s, n);
  dst[n] = '\0';
  return 0;
}

int snap_remote_parse_image(const char *image, char *host, size_t hostlen, char *repo,
                            size_t repolen, ep_err *err) {
  size_t len = image != NULL ? strnlen(image, SNAP_MAX_LABEL + 1) : 0;
  if (len == 0 || len > SNAP_MAX_LABEL)
    return ep_error(err, EP_EINVAL, "image reference: empty or too long");
  const char *at = memchr(image, '@', len);
  size_t n = at != NULL ? (size_t)(at - image) : len; /* the digest is not needed */
  const char *slash = memchr(image, '/', n);
  const char *name = image;
  int r = 0;
  if (slash != NULL && is_registry(image, (size_t)(slash - image))) {
    r = put(host, hostlen, image, (size_t)(slash - image));
    name = slash + 1;
  } else {
    r = put(host, hostlen, "docker.io", 9);
  }
  if (r == 0 && (strcmp(host, "index.docker.io") == 0 || strcmp(host, "registry-1.docker.io") == 0))
    r = put(host, hostlen, "docker.io", 9);
  size_t nn = (size_t)(image + n - name);
  const char *last = name;
  for (const char *p = name; p < name + nn; p++)
    if (*p == '/')
      last = p + 1;
  const char *colon = memchr(last, ':', (size_t)(name + nn - last));
  char tag[NAMES_TAG_MAX + 1] = "latest";
  if (colon != NULL) {
    r = r < 0 ? r : put(tag, sizeof tag, colon + 1, (size_t)(name + nn - colon - 1));
    nn = (size_t)(colon - name);
  }
  bool library = strcmp(host, "docker.io") == 0 && memchr(name, '/', nn) == NULL;
  if (r == 0 && library)
    r = repolen > 8 ? put(repo, repolen, "library/", 8) : -1;
  if (r == 0)
    r = put(repo + (library ? 8 : 0), repolen - (library ? 8 : 0), name, nn);
  if (r < 0 || !names_registry_valid(host) || !names_repo_valid(repo) || !names_tag_valid(tag))
    return ep_error(err, EP_EINVAL, "image reference %.128s: no valid registry and repository",
                    image);
  return 0;
}

/* ---- finding what to fetch ------------------------------------------------ */

struct layer_src {
  digest_t layer;
  char host[NAMES_HOST_MAX + 1];
  char repo[NAMES_REPO_MAX + 1];
};

/* From CRI's labels, else from what the node saw in manifests. -EP_ENOTFOUND when unknown. */
static int find_layer(snap_remote *rm, const digest_t *chain, const struct snap_labels *labels,
                      struct layer_src *out, ep_err *err) {
  const char *ld = snap_labels_get(labels, SNAP_LABEL_LAYER_DIGEST);
  const char *img = snap_labels_get(labels, SNAP_LABEL_IMAGE_REF);
  if (ld != NULL && img != NULL) {
    int r = digest_parse(ld, &out->layer, err);
    if (r == 0)
      r = snap_remote_parse_image(img, out->host, sizeof out->host, out->repo, sizeof out->repo,
                                  err);
    return r < 0 ? ep_wrap(err, "labels of chain sha256:%s", chain->hex) : 0;
  }
  if (rm->deps.lookup_chain == NULL)
    return ep_error(err, EP_ENOTFOUND, "chain sha256:%s: no layer labels", chain->hex);
  return rm->deps.lookup_chain(rm->deps.ud, chain, &out->layer, out->host, sizeof out->host,
                               out->repo, sizeof out->repo, err);
}

struct find {
  const char *ref, *parent;
  bool found;
};

static int find_cb(const struct snap_info *i, void *ud) {
  struct find *f = ud;
  const char *v = snap_labels_get(&i->labels, SNAP_LABEL_REF);
  if (i->kind == SNAP_KIND_COMMITTED && v != NULL && strcmp(v, f->ref) == 0 &&
      strcmp(i->parent, f->parent) == 0)
    f->found = true;
  return f->found ? 1 : 0;
}

/* Is there a committed snapshot with this chain ID on this parent? (The parent is compared in C:
 * a key may hold characters the filter language would need escaped.) */
static int find_committed(snap *s, const char *ref, const char *parent, bool *found, ep_err *err) {
  char filter[DIGEST_STR_LEN + 64];
  snprintf(filter, sizeof filter, "labels.\"%s\"==%s,kind==committed", SNAP_LABEL_REF, ref);
  const char *fl[] = {filter};
  struct find f = {.ref = ref, .parent = parent};
  int r = snap_walk(s, fl, 1, find_cb, &f, err);
  *found = f.found;
  return r < 0 ? r : 0;
}

/* ---- the unpack --------------------------------------------------------------- */

struct job {
  snap_remote *rm;
  const struct layer_src *src;
  const digest_t *chain;
  const digest_t *parent_chain; /* NULL without a parent */
  unpack_result res;
};

static int fill_layer(void *ud, int fs_fd, const int *parent_fds, size_t n_parents, ep_err *err) {
  struct job *j = ud;
  blob_pipe *p = NULL;
  hold_table *holds = j->rm->deps.holds;
  /* Taken before the open: the blob may be complete in the store, and a GC pass between the
   * open and a later hold would see it unread. Out of memory: read on, unheld. */
  bool held = holds != NULL && hold_take(holds, &j->src->layer) == 0;
  int r =
      j->rm->deps.open_layer(j->rm->deps.ud, j->src->host, j->src->repo, &j->src->layer, &p, err);
  if (r == 0) {
    unpack_opts o = {.limits = j->rm->opts.limits,
                     .flags = j->rm->opts.unpack_flags,
                     .parent_fds = parent_fds,
                     .n_parents = n_parents};
    r = unpack_pipe(fs_fd, p, j->rm->opts.stall_timeout_ms, &o, NULL, &j->res, err);
    pipe_unref(p);
    if (r < 0)
      r = ep_wrap(err, "unpacking layer sha256:%s", j->src->layer.hex);
  } else {
    r = ep_wrap(err, "fetching layer sha256:%s", j->src->layer.hex);
  }
  if (held)
    hold_release(holds, &j->src->layer);
  if (r < 0)
    return r;
  digest_t got;
  digest_chain_id(j->parent_chain, &j->res.diffid, &got);
  if (!digest_equal(&got, j->chain))
    return ep_error(err, EP_EDIGEST,
                    "layer sha256:%s has diffID sha256:%s, which does not make chain sha256:%s",
                    j->src->layer.hex, j->res.diffid.hex, j->chain->hex);
  return 0;
}

/* The parent's chain ID: its snapshot.ref label (containerd's unpacker and this module both
 * commit layers with it). */
static int parent_chain_of(snap *s, const char *parent, digest_t *out, ep_err *err) {
  struct snap_info pi = {0};
  int r = snap_stat(s, parent, &pi, err);
  if (r == 0) {
    const char *v = snap_labels_get(&pi.labels, SNAP_LABEL_REF);
    r = v == NULL ? ep_error(err, EP_ENOTFOUND, "parent %s has no chain ID label", parent)
                  : digest_parse(v, out, err);
  }
  snap_info_free(&pi);
  return r;
}

/* The leader's work: fetch, unpack, verify, commit. 0 when committed (or found committed). */
static int unpack_commit(snap_remote *rm, snap *s, const digest_t *chain, const char *parent,
                         const struct snap_labels *labels, const struct layer_src *src,
                         ep_err *err) {
  digest_t pchain, ptag;
  struct job j = {.rm = rm, .src = src, .chain = chain};
  if (parent[0] != '\0') {
    int r = parent_chain_of(s, parent, &pchain, err);
    if (r < 0)
      return r;
    j.parent_chain = &pchain;
    digest_buffer(parent, strlen(parent), &ptag);
  }
  char name[REMOTE_NAME];
  snprintf(name, sizeof name, "edgepull/remote/%.16s/sha256:%s",
           parent[0] != '\0' ? ptag.hex : "root", chain->hex);
  uint64_t t0 = (uint64_t)ep_mono_ns();
  int r = snap_create_committed(s, name, parent, labels, fill_layer, &j, err);
  if (r == 0) {
    pthread_mutex_lock(&rm->mu);
    rm->st.unpacked++;
    rm->st.compressed += j.res.compressed;
    rm->st.uncompressed += j.res.bytes;
    uint64_t ns = (uint64_t)ep_mono_ns() - t0;
    rm->st.unpack_ns += ns;
    pthread_mutex_unlock(&rm->mu);
    if (rm->deps.metrics != NULL)
      metrics_observe_us(&rm->deps.metrics->unpack_seconds, ns / 1000);
    ep_log_info("remote snapshot %s: layer sha256:%s from %s/%s, %llu entries", name,
                src->layer.hex, src->host, src->repo, (unsigned long long)j.res.entries);
  } else if (r == -SNAP_EEXISTS) { /* the same chain and parent, committed meanwhile */
    ep_err_clear(err);
    r = 0;
  } else if (rm->deps.metrics != NULL) {
    metrics_add(&rm->deps.metrics->unpack_failures, 1);
  }
  return r;
}

/* ---- single flight ------------------------------------------------------------ */

/* Under rm->mu. */
static struct flight *flight_find(snap_remote *rm, const digest_t *chain) {
  for (struct flight *f = rm->flights; f != NULL; f = f->next)
    if (digest_equal(&f->chain, chain))
      return f;
  return NULL;
}

/* Under rm->mu. */
static void flight_put(struct flight *f) {
  if (--f->refs == 0)
    free(f);
}

/* Under rm->mu: waits until flight f ends; *ok tells whether it committed. */
static void flight_wait(snap_remote *rm, struct flight *f, bool *ok) {
  f->refs++;
  rm->st.joined++;
  while (!f->done)
    pthread_cond_wait(&rm->cv, &rm->mu);
  *ok = f->ok;
  flight_put(f);
}

/* Runs the unpack as the leader of a new flight. Under rm->mu on entry and return. */
static int flight_lead(snap_remote *rm, snap *s, const digest_t *chain, const char *parent,
                       const struct snap_labels *labels, const struct layer_src *src, ep_err *err) {
  struct flight *f = calloc(1, sizeof *f);
  if (f == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  f->chain = *chain;
  f->refs = 1;
  f->next = rm->flights;
  rm->flights = f;
  rm->st.in_flight++;
  pthread_mutex_unlock(&rm->mu);
  int r = unpack_commit(rm, s, chain, parent, labels, src, err);
  pthread_mutex_lock(&rm->mu);
  rm->st.in_flight--;
  for (struct flight **pp = &rm->flights; *pp != NULL; pp = &(*pp)->next)
    if (*pp == f) {
      *pp = f->next;
      break;
    }
  f->done = true;
  f->ok = (r == 0);
  pthread_cond_broadcast(&rm->cv);
  flight_put(f);
  return r;
}

static int fallback(snap_remote *rm, const char *ref, ep_err *err) {
  ep_log_warn("remote snapshot %s: %s; containerd fetches the layer itself", ref, err->msg);
  count(rm, &rm->st.fallbacks);
  return ep_error(err, EP_EUNSUPPORTED, "remote snapshot %s: fallback", ref);
}

int snap_remote_prepare(void *ud, snap *s, const char *key, const char *parent,
                        const struct snap_labels *labels, ep_err *errp) {
  snap_remote *rm = ud;
  ep_err local = {0};
  ep_err *err = errp != NULL ? errp : &local; /* fallback() logs the message */
  const char *ref = snap_labels_get(labels, SNAP_LABEL_REF);
  digest_t chain;
  if (ref == NULL || digest_parse(ref, &chain, NULL) < 0)
    return ep_error(err, EP_EUNSUPPORTED, "prepare %s: no chain ID", key);
  parent = parent != NULL ? parent : "";
  struct layer_src src;
  bool found = false, have_src = false;
  for (int round = 0; round < REMOTE_MAX_ROUNDS; round++) {
    if (find_committed(s, ref, parent, &found, err) < 0)
      return fallback(rm, ref, err);
    if (found) {
      count(rm, &rm->st.existed);
      return ep_error(err, SNAP_EEXISTS, "snapshot %s exists", ref);
    }
    if (!have_src) {
      if (find_layer(rm, &chain, labels, &src, err) < 0) {
        ep_log_debug("remote snapshot %s: %s", ref, err->msg);
        count(rm, &rm->st.unknown);
        return ep_error(err, EP_EUNSUPPORTED, "prepare %s: no layer to fetch", key);
      }
      have_src = true;
    }
    pthread_mutex_lock(&rm->mu);
    struct flight *f = flight_find(rm, &chain);
    bool ok = false;
    int r = 0;
    if (f != NULL)
      flight_wait(rm, f, &ok);
    else
      r = flight_lead(rm, s, &chain, parent, labels, &src, err);
    pthread_mutex_unlock(&rm->mu);
    if (f == NULL && r < 0)
      return fallback(rm, ref, err);
    if (f == NULL)
      return ep_error(err, SNAP_EEXISTS, "snapshot %s exists", ref);
    if (!ok) {
      ep_error(err, EP_EIO, "the unpack of the same chain failed");
      return fallback(rm, ref, err);
    }
    /* it committed: on our parent the next round finds it; else (another parent) we lead */
  }
  ep_error(err, EP_EINTERNAL, "no snapshot after %d rounds", REMOTE_MAX_ROUNDS);
  return fallback(rm, ref, err);
}
