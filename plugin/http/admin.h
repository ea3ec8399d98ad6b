/* The local endpoint's admin routes (edgepullctl gc, pin, unpin): POST
 * /_edgepull/gc[?dry_run=1], /_edgepull/pin?image=REF and
 * /_edgepull/unpin?image=REF. Internal to plugin/http (server.c). */
#ifndef EP_PLUGIN_HTTP_ADMIN_H
#define EP_PLUGIN_HTTP_ADMIN_H

#include <microhttpd.h>
#include <stdbool.h>

#include "plugin/http/server.h"

#define ADMIN_PREFIX "/_edgepull/"

/* Answers an admin request. MHD's per-request protocol (the first call
 * with the headers, then the body, then the last call) is followed through
 * *req_cls (set to marker after the first call); a body is read and
 * ignored. Only POST, and only from a loopback address. */
enum MHD_Result admin_handle(const struct server_deps *d, struct MHD_Connection *c, const char *url,
                             const char *method, size_t *upload_size, void **req_cls, void *marker);

#endif
