/* A layer source for edgepull-snapshotd (tests only): the remote path's open_layer answered by
 * plain HTTP GETs of /v2/<repo>/blobs/<digest> from ONE registry, whatever host the image names
 * (the test's local registry stands in for the mirror). It streams: a thread per blob writes
 * into an unlinked temp file and publishes each chunk on a store/pipe.h pipe, and finishes the
 * pipe DONE only when the sha256 of what arrived is the digest asked for. edgepulld wires the
 * real fetch engine instead. */
#include "plugin/snapshot/standalone_src.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/log.h"

enum { SRC_MAX_THREADS = 256 };

struct http_src {
  char base[256];
  pipe_table *pt;
  pthread_mutex_t mu;
  pthread_t threads[SRC_MAX_THREADS];
  size_t n_threads;
};

struct dl {
  struct http_src *src;
  blob_pipe *p;
  int fd;
  char url[1024];
  digest_ctx *dc;
  uint64_t got;
  bool io_failed;
};

static size_t on_data(char *buf, size_t size, size_t n, void *ud) {
  struct dl *d = ud;
  size_t len = size * n;
  if (write(d->fd, buf, len) != (ssize_t)len) {
    d->io_failed = true;
    return 0;
  }
  digest_ctx_update(d->dc, buf, len);
  d->got += len;
  pipe_publish(d->p, d->got);
  return len;
}

static void *download(void *ud) {
  struct dl *d = ud;
  CURL *c = curl_easy_init();
  long status = 0;
  CURLcode cr = CURLE_FAILED_INIT;
  if (c != NULL) {
    if (curl_easy_setopt(c, CURLOPT_URL, d->url) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_WRITEDATA, d) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L) != CURLE_OK)
      cr = CURLE_FAILED_INIT; /* an option refused: no transfer */
    else
      cr = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
  }
  digest_t got;
  digest_ctx_final(d->dc, &got);
  bool ok =
      cr == CURLE_OK && status == 200 && !d->io_failed && digest_equal(&got, pipe_digest(d->p));
  if (!ok)
    ep_log_warn("layer source: %s: curl %d, HTTP %ld, %s", d->url, (int)cr, status,
                d->io_failed ? "write failed" : "digest or transfer failed");
  pipe_finish(d->p, ok); /* DONE only once the digest matched */
  pipe_unref(d->p);
  digest_ctx_free(d->dc);
  free(d);
  return NULL;
}

static int start(struct http_src *s, blob_pipe *p, const char *repo, ep_err *err) {
  struct dl *d = calloc(1, sizeof *d);
  if (d == NULL || (d->dc = digest_ctx_new()) == NULL) {
    free(d);
    return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  d->src = s;
  d->p = p;
  snprintf(d->url, sizeof d->url, "%s/v2/%s/blobs/sha256:%s", s->base, repo, pipe_digest(p)->hex);
  d->fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  int rfd = d->fd >= 0 ? dup(d->fd) : -1;
  if (rfd < 0) {
    if (d->fd >= 0)
      close(d->fd);
    digest_ctx_free(d->dc);
    free(d);
    return ep_syserror(err, EP_EIO, "layer source: temp file");
  }
  pipe_attach_fd(p, rfd); /* readers pread it; the writer appends through d->fd */
  pipe_ref(p);
  pthread_mutex_lock(&s->mu);
  int r = s->n_threads < SRC_MAX_THREADS
              ? pthread_create(&s->threads[s->n_threads], NULL, download, d)
              : -1;
  if (r == 0)
    s->n_threads++;
  pthread_mutex_unlock(&s->mu);
  if (r != 0) {
    pipe_unref(p);
    close(d->fd);
    digest_ctx_free(d->dc);
    free(d);
    return ep_error(err, EP_EINTERNAL, "layer source: no thread");
  }
  return 0;
}

static int open_layer(void *ud, const char *host, const char *repo, const digest_t *layer,
                      blob_pipe **out, ep_err *err) {
  struct http_src *s = ud;
  (void)host; /* one registry stands in for every host */
  bool created = false;
  blob_pipe *p = pipe_table_join(s->pt, layer, &created);
  if (p == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  if (created) {
    int r = start(s, p, repo, err);
    if (r < 0) {
      pipe_finish(p, false);
      pipe_unref(p);
      return r;
    }
  }
  *out = p;
  return 0;
}

int http_src_new(const char *base, struct snap_remote_deps *deps, http_src **out, ep_err *err) {
  http_src *s = calloc(1, sizeof *s);
  if (s == NULL || (s->pt = pipe_table_new()) == NULL) {
    free(s);
    return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  snprintf(s->base, sizeof s->base, "%s", base);
  if (pthread_mutex_init(&s->mu, NULL) != 0) {
    pipe_table_free(s->pt);
    free(s);
    return ep_error(err, EP_EINTERNAL, "layer source: cannot create a mutex");
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  *deps = (struct snap_remote_deps){.open_layer = open_layer, .ud = s};
  *out = s;
  return 0;
}

void http_src_free(http_src *s) {
  if (s == NULL)
    return;
  pipe_table_cancel_all(s->pt);
  for (size_t i = 0; i < s->n_threads; i++)
    pthread_join(s->threads[i], NULL);
  pipe_table_free(s->pt);
  pthread_mutex_destroy(&s->mu);
  curl_global_cleanup();
  free(s);
}
