/* The fake registry; see fake_registry.h. Part of ep_testlib, which every
 * unit test links. The handler holds f->lock for the whole request, so the
 * knobs and counters need no other care. */
#include "tests/lib/fake_registry.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/digest.h"

const char fake_manifest_json[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"size\":2,"
    "\"digest\":\"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\"},"
    "\"layers\":[]}";

void fake_basic(const char *user, const char *pass, char *out, size_t cap) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char in[256];
  int n = snprintf(in, sizeof in, "%s:%s", user, pass);
  size_t o = (size_t)snprintf(out, cap, "Basic ");
  for (int i = 0; i < n && o + 5 < cap; i += 3) {
    unsigned v = (unsigned char)in[i] << 16;
    if (i + 1 < n)
      v |= (unsigned char)in[i + 1] << 8;
    if (i + 2 < n)
      v |= (unsigned char)in[i + 2];
    out[o++] = tab[(v >> 18) & 63];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? tab[v & 63] : '=';
  }
  out[o] = '\0';
}

static enum MHD_Result fake_reply(struct MHD_Connection *c, unsigned status, const void *body,
                                  size_t len, const char *const *hdrs) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
  for (size_t i = 0; hdrs != NULL && hdrs[i] != NULL; i += 2)
    MHD_add_response_header(r, hdrs[i], hdrs[i + 1]);
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result fake_token(struct fake *f, struct MHD_Connection *c, const char *authz) {
  f->token_calls++;
  const char *scope = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "scope");
  const char *service = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "service");
  snprintf(f->last_scope, sizeof f->last_scope, "%s", scope ? scope : "");
  snprintf(f->last_service, sizeof f->last_service, "%s", service ? service : "");
  if (f->token_needs_basic) {
    char want[256];
    fake_basic(f->user, f->pass, want, sizeof want);
    if (authz == NULL || strcmp(authz, want) != 0)
      return fake_reply(c, 401, "{}", 2, NULL);
  }
  if (f->token_status != 0)
    return fake_reply(c, (unsigned)f->token_status, "oops", 4, NULL);
  char body[256];
  if (f->token_json != NULL)
    snprintf(body, sizeof body, "%s", f->token_json);
  else
    snprintf(body, sizeof body, "{\"token\":\"tok-%d\",\"expires_in\":300}", f->token_calls);
  return fake_reply(c, 200, body, strlen(body), NULL);
}

static bool fake_authorized(struct fake *f, const char *authz) {
  char want[256];
  switch (f->auth) {
  case FAKE_AUTH_NONE:
    return true;
  case FAKE_AUTH_BEARER:
    return authz != NULL && strncmp(authz, "Bearer tok-", 11) == 0 && !f->reject_tokens;
  case FAKE_AUTH_BASIC:
    fake_basic(f->user, f->pass, want, sizeof want);
    return authz != NULL && strcmp(authz, want) == 0;
  }
  return false;
}

static enum MHD_Result fake_challenge(struct fake *f, struct MHD_Connection *c, const char *url) {
  char value[512];
  const char *v = f->challenge;
  if (v == NULL && f->auth == FAKE_AUTH_BASIC) {
    v = "Basic realm=\"fake\"";
  } else if (v == NULL) {
    const char *s = url + 4, *e = strstr(s, "/manifests/");
    if (e == NULL)
      e = strstr(s, "/blobs/");
    snprintf(value, sizeof value,
             "Bearer realm=\"http://127.0.0.1:%u/token\",service=\"fake registry\","
             "scope=\"repository:%.*s:pull\"",
             f->port, e ? (int)(e - s) : 0, s);
    v = value;
  }
  const char *hdrs[] = {"WWW-Authenticate", v, "Content-Type", "application/json", NULL};
  static const char body[] = "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"no\"}]}";
  return fake_reply(c, 401, body, sizeof body - 1, hdrs);
}

struct fake_stream {
  const char *data;
  size_t len;
};

static ssize_t fake_stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  struct fake_stream *s = cls;
  if (pos >= s->len)
    return MHD_CONTENT_READER_END_OF_STREAM;
  size_t n = s->len - (size_t)pos < max ? s->len - (size_t)pos : max;
  memcpy(buf, s->data + pos, n);
  return (ssize_t)n;
}

static enum MHD_Result fake_manifest(struct fake *f, struct MHD_Connection *c, bool head) {
  head ? f->manifest_heads++ : f->manifest_gets++;
  if (head && f->head_405)
    return fake_reply(c, 405, "", 0, NULL);
  digest_t d;
  char dg[DIGEST_STR_LEN + 1];
  digest_buffer(f->manifest, f->manifest_len, &d);
  digest_format(&d, dg);
  bool with_digest = head ? f->head_digest : f->get_digest;
  const char *hdrs[] = {"Content-Type", f->manifest_ctype, "Docker-Content-Digest",
                        f->digest_header ? f->digest_header : dg, NULL};
  if (!with_digest)
    hdrs[2] = NULL;
  if (!f->chunked || head)
    return fake_reply(c, 200, f->manifest, f->manifest_len, hdrs);
  struct fake_stream *s = malloc(sizeof *s);
  *s = (struct fake_stream){f->manifest, f->manifest_len};
  struct MHD_Response *r =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, fake_stream_read, s, free);
  MHD_add_response_header(r, "Content-Type", f->manifest_ctype);
  enum MHD_Result ret = MHD_queue_response(c, 200, r);
  MHD_destroy_response(r);
  return ret;
}

/* A blob body sent in pieces, so that it can stop at hold_at and drop at
 * cut_at (both offsets in the blob). */
struct fake_body {
  struct fake *f;
  uint64_t from; /* the first byte sent */
  bool cut;
};

static ssize_t fake_body_read(void *cls, uint64_t pos, char *buf, size_t max) {
  struct fake_body *b = cls;
  struct fake *f = b->f;
  uint64_t off = b->from + pos;
  pthread_mutex_lock(&f->lock);
  if (f->hold_at > 0 && off >= f->hold_at && !f->released) {
    f->holding++;
    pthread_cond_broadcast(&f->cv);
    while (!f->released)
      pthread_cond_wait(&f->cv, &f->lock);
    f->holding--;
  }
  uint64_t end = f->blob_len;
  if (b->cut && f->cut_at < end)
    end = f->cut_at;
  if (f->hold_at > off && f->hold_at < end && !f->released)
    end = f->hold_at;
  pthread_mutex_unlock(&f->lock);
  if (off >= f->blob_len)
    return MHD_CONTENT_READER_END_OF_STREAM;
  if (off >= end)
    return MHD_CONTENT_READER_END_WITH_ERROR; /* cut: the connection drops */
  size_t n = end - off < max ? (size_t)(end - off) : max;
  memcpy(buf, f->blob + off, n);
  return (ssize_t)n;
}

static enum MHD_Result fake_body_reply(struct fake *f, struct MHD_Connection *c, unsigned status,
                                       uint64_t from, const char *const *hdrs) {
  struct fake_body *b = malloc(sizeof *b);
  if (b == NULL)
    return MHD_NO;
  *b = (struct fake_body){.f = f, .from = from};
  if (f->cut_at > 0 && f->cuts > 0 && from < f->cut_at) {
    f->cuts--;
    b->cut = true;
  }
  struct MHD_Response *r =
      MHD_create_response_from_callback(f->blob_len - from, 16384, fake_body_read, b, free);
  for (size_t i = 0; hdrs != NULL && hdrs[i] != NULL; i += 2)
    MHD_add_response_header(r, hdrs[i], hdrs[i + 1]);
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result fake_blob(struct fake *f, struct MHD_Connection *c) {
  const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
  snprintf(f->last_range, sizeof f->last_range, "%s", range ? range : "");
  unsigned long long from = 0;
  char cr[96], len[32];
  snprintf(len, sizeof len, "%zu", f->blob_len);
  bool streamed = f->cut_at > 0 || f->hold_at > 0;
  if (range == NULL || !f->honour_range || sscanf(range, "bytes=%llu-", &from) != 1)
    return streamed ? fake_body_reply(f, c, 200, 0, NULL)
                    : fake_reply(c, 200, f->blob, f->blob_len, NULL);
  if (from >= f->blob_len) {
    snprintf(cr, sizeof cr, "bytes */%zu", f->blob_len);
    const char *hdrs[] = {"Content-Range", cr, NULL};
    return fake_reply(c, 416, "", 0, hdrs);
  }
  unsigned long long shown = f->bad_range_start ? from + 1 : from;
  snprintf(cr, sizeof cr, "bytes %llu-%zu/%zu", shown, f->blob_len - 1, f->blob_len);
  const char *hdrs[] = {"Content-Range", cr, NULL};
  if (streamed)
    return fake_body_reply(f, c, 206, from, hdrs);
  return fake_reply(c, 206, f->blob + from, f->blob_len - from, hdrs);
}

static enum MHD_Result fake_route(struct fake *f, struct MHD_Connection *c, const char *url,
                                  bool head) {
  const char *authz = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  if (strncmp(url, "/token", 6) == 0)
    return fake_token(f, c, authz);
  if (strncmp(url, "/cdn/", 5) == 0) {
    f->cdn_requests++;
    f->cdn_saw_auth += authz != NULL;
    return fake_blob(f, c);
  }
  if (f->force_status != 0) {
    f->forced++;
    const char *b = f->force_body ? f->force_body : "";
    return fake_reply(c, (unsigned)f->force_status, b, strlen(b), NULL);
  }
  if (!fake_authorized(f, authz))
    return fake_challenge(f, c, url);
  if (strstr(url, "/manifests/") != NULL)
    return fake_manifest(f, c, head);
  if (strstr(url, "/blobs/") == NULL)
    return fake_reply(c, 404, "", 0, NULL);
  f->blob_gets += !head;
  char loc[256];
  if (f->redirect == FAKE_REDIR_CDN)
    snprintf(loc, sizeof loc, "http://127.0.0.1:%u/cdn/blob?sig=s3cret", f->cdn_port);
  else if (f->redirect == FAKE_REDIR_RELATIVE)
    snprintf(loc, sizeof loc, "/cdn/blob");
  else if (f->redirect == FAKE_REDIR_LOOP)
    snprintf(loc, sizeof loc, "%s", url);
  else
    return fake_blob(f, c);
  const char *hdrs[] = {"Location", loc, NULL};
  return fake_reply(c, f->redirect == FAKE_REDIR_LOOP ? 302 : 307, "", 0, hdrs);
}

static enum MHD_Result fake_handler(void *cls, struct MHD_Connection *c, const char *url,
                                    const char *method, const char *version, const char *upload,
                                    size_t *upload_size, void **con_cls) {
  static int first;
  if (*con_cls == NULL) {
    *con_cls = &first;
    return MHD_YES;
  }
  struct fake *f = cls;
  pthread_mutex_lock(&f->lock);
  enum MHD_Result r = fake_route(f, c, url, strcmp(method, "HEAD") == 0);
  pthread_mutex_unlock(&f->lock);
  return r;
}

int fake_wait_held(struct fake *f, int n, int timeout_ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  int r = 0;
  pthread_mutex_lock(&f->lock);
  while (f->holding < n && r == 0)
    r = pthread_cond_timedwait(&f->cv, &f->lock, &until);
  int ok = f->holding >= n ? 0 : -1;
  pthread_mutex_unlock(&f->lock);
  return ok;
}

void fake_release(struct fake *f) {
  pthread_mutex_lock(&f->lock);
  f->released = true;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->lock);
}

int fake_start(struct fake *f) {
  pthread_mutex_init(&f->lock, NULL);
  pthread_cond_init(&f->cv, NULL);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                          NULL, fake_handler, f, MHD_OPTION_SOCK_ADDR, &sa,
                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024), MHD_OPTION_END);
  if (f->d == NULL)
    return -1;
  const union MHD_DaemonInfo *i = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
  f->port = i ? i->port : 0;
  return f->port ? 0 : -1;
}

void fake_stop(struct fake *f) {
  fake_release(f); /* a held body would keep its connection thread */
  if (f->d != NULL)
    MHD_stop_daemon(f->d);
  f->d = NULL;
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->lock);
}
