/* Small helpers for the registry endpoint's answers: OCI error JSON, the
 * status code for an edgepull error, common headers and request bounds. */
#ifndef EP_PLUGIN_HTTP_H
#define EP_PLUGIN_HTTP_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

#define HTTP_HEADER_VALUE_MAX (8 * 1024)
#define HTTP_HEADERS_TOTAL_MAX (16 * 1024)
#define HTTP_ACCEPT_MAX 2048

/* Queues `{"errors":[{"code":code,"message":message}]}` with status. */
enum MHD_Result http_error(struct MHD_Connection *c, unsigned status, const char *code,
                           const char *message);
/* http_error with one extra header (e.g. WWW-Authenticate). */
enum MHD_Result http_error_header(struct MHD_Connection *c, unsigned status, const char *code,
                                  const char *message, const char *hname, const char *hvalue);
/* Status and code chosen from e->code; not_found_code names a 404. The
 * client gets a generic message for the code, e->msg goes to the log. */
enum MHD_Result http_error_from(struct MHD_Connection *c, const ep_err *e,
                                const char *not_found_code);
/* The same with the status and code chosen by the caller. */
enum MHD_Result http_error_detail(struct MHD_Connection *c, unsigned status, const char *code,
                                  const ep_err *e);
/* The OCI error code for a request that did not parse. */
const char *http_code_for_parse_error(const ep_err *e);
/* HTTP status for an edgepull error code. */
unsigned http_status_for(int code);
enum MHD_Result http_range_unsatisfiable(struct MHD_Connection *c, uint64_t size);
enum MHD_Result http_method_not_allowed(struct MHD_Connection *c);
enum MHD_Result http_json_ok(struct MHD_Connection *c, const char *json);
/* Adds the headers every answer carries; false when MHD could not. */
bool http_common_headers(struct MHD_Response *r);
/* Joins every value of header name with ", " into buf (truncated at a
 * value boundary when it does not fit); "" when absent. */
void http_join_header(struct MHD_Connection *c, const char *name, char *buf, size_t len);
/* True when one header value or all headers together exceed the bounds. */
bool http_headers_too_large(struct MHD_Connection *c);
/* GET /v2/ on the address listen_fd is bound to (a wildcard address
 * becomes loopback) over a plain socket, answered 200 within timeout_ms:
 * 0, else <0 with err (probe.c). */
int http_probe(int listen_fd, int timeout_ms, ep_err *err);

#endif
