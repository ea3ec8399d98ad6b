/* The HTTP vocabulary every answer shares: the registry API version header,
 * OCI error documents and the mapping from an ep_err code to the status a
 * container runtime understands (never 401: containerd would then hand us
 * its registry credentials, see server.c). Kept apart from server.c so
 * the routing there reads as routing, and so the peer endpoint and the
 * mirror answer errors alike. */
#include "plugin/http/http.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"

unsigned http_status_for(int code) {
  switch (code < 0 ? -code : code) {
  case EP_EINVAL:
  case EP_EUNSUPPORTED:
    return MHD_HTTP_BAD_REQUEST;
  case EP_ENOTFOUND:
    return MHD_HTTP_NOT_FOUND;
  case EP_ERANGE:
    return MHD_HTTP_RANGE_NOT_SATISFIABLE;
  case EP_EAUTH:
  case EP_EDENIED:
    return MHD_HTTP_FORBIDDEN; /* never 401: see server.c */
  case EP_EUNREACH:
  case EP_ECANCELED:
    return MHD_HTTP_SERVICE_UNAVAILABLE;
  case EP_EDIGEST:
  case EP_EUPSTREAM:
  case EP_ETOOBIG:
    return MHD_HTTP_BAD_GATEWAY;
  case EP_ENOSPC:
    return MHD_HTTP_INSUFFICIENT_STORAGE;
  default:
    return MHD_HTTP_INTERNAL_SERVER_ERROR;
  }
}

static const char *code_for(int code, const char *not_found_code) {
  switch (code < 0 ? -code : code) {
  case EP_ENOTFOUND:
    return not_found_code;
  case EP_EINVAL:
  case EP_EUNSUPPORTED:
    return "UNSUPPORTED";
  case EP_EAUTH:
  case EP_EDENIED:
    return "DENIED";
  case EP_EUNREACH:
  case EP_ECANCELED:
  case EP_ENOSPC:
    return "UNAVAILABLE";
  default:
    return "UNKNOWN";
  }
}

bool http_common_headers(struct MHD_Response *r) {
  return MHD_add_response_header(r, "Docker-Distribution-API-Version", "registry/2.0") == MHD_YES;
}

/* Queues an OCI error document, with one extra header when hname is set. */
static enum MHD_Result queue_error(struct MHD_Connection *c, unsigned status, const char *code,
                                   const char *message, const char *hname, const char *hvalue) {
  json_t *doc = json_pack("{s:[{s:s,s:s}]}", "errors", "code", code, "message",
                          message != NULL ? message : "");
  char *body = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  if (body == NULL)
    return MHD_NO;
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
  if (r == NULL) {
    free(body);
    return MHD_NO;
  }
  if (!http_common_headers(r) ||
      MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") != MHD_YES ||
      (hname != NULL && MHD_add_response_header(r, hname, hvalue) != MHD_YES)) {
    MHD_destroy_response(r); /* out of memory: MHD closes the connection */
    return MHD_NO;
  }
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

enum MHD_Result http_error(struct MHD_Connection *c, unsigned status, const char *code,
                           const char *message) {
  return queue_error(c, status, code, message, NULL, NULL);
}

enum MHD_Result http_error_header(struct MHD_Connection *c, unsigned status, const char *code,
                                  const char *message, const char *hname, const char *hvalue) {
  return queue_error(c, status, code, message, hname, hvalue);
}

/* What a client is told. The details (which host, which address, what curl
 * said) would make the endpoint a probe: "connection refused" and "TLS
 * handshake failed" tell a closed port from an open one. They go to the log
 * instead; the status and the OCI code still say what kind of failure it
 * was. */
static const char *generic_message(int code) {
  switch (code < 0 ? -code : code) {
  case EP_ENOTFOUND:
    return "not found";
  case EP_EINVAL:
  case EP_EUNSUPPORTED:
    return "invalid request";
  case EP_ERANGE:
    return "range not satisfiable";
  case EP_EAUTH:
    return "the upstream refused access";
  case EP_EDENIED:
    return "refused by policy";
  case EP_EUNREACH:
  case EP_ECANCELED:
    return "upstream unavailable";
  case EP_EDIGEST:
  case EP_EUPSTREAM:
  case EP_ETOOBIG:
    return "upstream error";
  case EP_ENOSPC:
    return "insufficient storage";
  default:
    return "internal error";
  }
}

enum MHD_Result http_error_from(struct MHD_Connection *c, const ep_err *e,
                                const char *not_found_code) {
  unsigned status = http_status_for(e->code);
  if (e->code != EP_ENOTFOUND)
    ep_log_info("answered %u: %s", status, e->msg[0] != '\0' ? e->msg : ep_errcode_name(e->code));
  else
    ep_log_debug("answered %u: %s", status, e->msg);
  return http_error(c, status, code_for(e->code, not_found_code), generic_message(e->code));
}

enum MHD_Result http_error_detail(struct MHD_Connection *c, unsigned status, const char *code,
                                  const ep_err *e) {
  ep_log_info("answered %u: %s", status, e->msg);
  return http_error(c, status, code, generic_message(e->code));
}

const char *http_code_for_parse_error(const ep_err *e) {
  if (e->code == EP_ENOTFOUND)
    return "UNSUPPORTED";
  if (e->code == EP_EUNSUPPORTED || strstr(e->msg, "digest") != NULL)
    return "DIGEST_INVALID";
  if (strstr(e->msg, "tag") != NULL || strstr(e->msg, "reference") != NULL)
    return "TAG_INVALID";
  return "NAME_INVALID";
}

enum MHD_Result http_range_unsatisfiable(struct MHD_Connection *c, uint64_t size) {
  char cr[64];
  snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)size);
  return queue_error(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, "RANGE_INVALID",
                     "requested range not satisfiable", MHD_HTTP_HEADER_CONTENT_RANGE, cr);
}

enum MHD_Result http_method_not_allowed(struct MHD_Connection *c) {
  return queue_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "UNSUPPORTED",
                     "edgepull is a pull-only mirror: only GET and HEAD are served",
                     MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
}

enum MHD_Result http_json_ok(struct MHD_Connection *c, const char *json) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_PERSISTENT);
  if (r == NULL)
    return MHD_NO;
  if (!http_common_headers(r) ||
      MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") != MHD_YES) {
    MHD_destroy_response(r);
    return MHD_NO;
  }
  enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

struct header_sizes {
  size_t total;
  bool too_large;
};

static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value) {
  struct header_sizes *hs = cls;
  size_t k = strlen(key), v = value != NULL ? strlen(value) : 0;
  hs->total += k + v + 4;
  if (v > HTTP_HEADER_VALUE_MAX || hs->total > HTTP_HEADERS_TOTAL_MAX) {
    hs->too_large = true;
    return MHD_NO;
  }
  return MHD_YES;
}

bool http_headers_too_large(struct MHD_Connection *c) {
  struct header_sizes hs = {0};
  MHD_get_connection_values(c, MHD_HEADER_KIND, add_header_size, &hs);
  return hs.too_large;
}

struct header_join {
  const char *name;
  char *buf;
  size_t len, used;
};

static enum MHD_Result join_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value) {
  struct header_join *hj = cls;
  if (value == NULL || strcasecmp(key, hj->name) != 0 || value[0] == '\0')
    return MHD_YES;
  size_t v = strlen(value), sep = hj->used > 0 ? 2 : 0;
  if (hj->used + sep + v + 1 > hj->len)
    return MHD_YES; /* keep whole values only */
  if (sep)
    memcpy(hj->buf + hj->used, ", ", 2);
  memcpy(hj->buf + hj->used + sep, value, v + 1);
  hj->used += sep + v;
  return MHD_YES;
}

void http_join_header(struct MHD_Connection *c, const char *name, char *buf, size_t len) {
  struct header_join hj = {.name = name, .buf = buf, .len = len, .used = 0};
  if (len > 0)
    buf[0] = '\0';
  MHD_get_connection_values(c, MHD_HEADER_KIND, join_value, &hj);
}
