/* The local endpoint's admin routes (plugin/http/admin.h).
 *
 * Why on the registry endpoint and not a socket of its own: edgepullctl
 * already talks to it (stat's /metrics), it listens on loopback, and the
 * daemon owns the index it writes. Loopback is checked per request all the
 * same, since --listen may name another address; a browser page that posts
 * here cross-site could unpin an image and then run a GC, so a request that
 * carries an Origin header (every browser's cross-site POST does;
 * edgepullctl and curl never send one) is refused. */
#include "plugin/http/admin.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "plugin/http/http.h"

static bool loopback(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (ci == NULL || ci->client_addr == NULL)
    return false;
  const struct sockaddr *sa = ci->client_addr;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a))
      return true;
    return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
  }
  return false;
}

static enum MHD_Result json_answer(struct MHD_Connection *c, char *json) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
  if (r == NULL) {
    free(json);
    return MHD_NO;
  }
  enum MHD_Result ret = MHD_NO;
  if (http_common_headers(r) &&
      MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") == MHD_YES)
    ret = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

enum MHD_Result admin_handle(const struct server_deps *d, struct MHD_Connection *c, const char *url,
                             const char *method, size_t *upload_size, void **req_cls,
                             void *marker) {
  if (*req_cls == NULL) {
    *req_cls = marker;
    return MHD_YES;
  }
  if (*upload_size > 0) { /* nothing is read from a body */
    *upload_size = 0;
    return MHD_YES;
  }
  if (!loopback(c))
    return http_error(c, MHD_HTTP_FORBIDDEN, "DENIED", "admin requests only from loopback");
  if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin") != NULL)
    return http_error(c, MHD_HTTP_FORBIDDEN, "DENIED",
                      "admin requests from a web page are refused");
  if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
    return http_method_not_allowed(c);
  const char *op = url + strlen(ADMIN_PREFIX);
  if (d->admin == NULL ||
      (strcmp(op, "gc") != 0 && strcmp(op, "pin") != 0 && strcmp(op, "unpin") != 0))
    return http_error(c, MHD_HTTP_NOT_FOUND, "UNSUPPORTED", "no such admin route");
  const char *image = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "image");
  const char *dry = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "dry_run");
  bool dry_run = dry != NULL && strcmp(dry, "0") != 0 && strcmp(dry, "false") != 0;
  if (strcmp(op, "gc") != 0 && (image == NULL || image[0] == '\0'))
    return http_error(c, MHD_HTTP_BAD_REQUEST, "NAME_INVALID", "image=REF is required");
  char *json = NULL;
  ep_err e = {0};
  if (d->admin(d->admin_ud, op, image, dry_run, &json, &e) < 0)
    return http_error_from(c, &e, "UNSUPPORTED");
  return json_answer(c, json);
}
