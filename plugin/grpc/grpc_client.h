/* A unary gRPC client over h2c with prior knowledge on a unix socket (libnghttp2), for edgepulld's
 * own calls to containerd's API (deploy --import). One call per connection, blocking its thread,
 * bounded by a timeout and a cancel flag: the few calls an import makes do not justify a connection
 * pool. Message-agnostic like the server: the caller serializes the request and parses the
 * response. */
#ifndef EP_PLUGIN_GRPC_CLIENT_H
#define EP_PLUGIN_GRPC_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define GRPC_CLIENT_MAX_MD 4

struct grpc_client_call {
  const char *socket; /* unix socket path */
  const char *path;   /* "/containerd.services.images.v1.Images/Create" */
  /* request metadata (lower-case names), e.g. containerd-namespace; NULL names end the list */
  const char *md_name[GRPC_CLIENT_MAX_MD];
  const char *md_value[GRPC_CLIENT_MAX_MD];
  int timeout_ms; /* whole call; 0 = 60 s */
  /* NULL, or a flag the caller (another thread) sets to abort the call: it then ends within
   * about 50 ms with EP_ECANCELED, "cancelled" where a deadline says "timed out" */
  atomic_bool *cancel;
};

/* Sends one request message and reads the answer: *status is the grpc-status (0 OK), msg its
 * grpc-message (may be empty; percent-decoded, every byte outside printable ASCII shown as '?',
 * cut to msgcap - 1 bytes: safe to log as it is), resp the first response message (ep_buf with a
 * max; NULL discards it, for calls whose answer the caller does not read). Returns 0 when the call
 * completed with any status, <0 when the transport failed (connect, protocol, timeout,
 * cancel). */
int grpc_client_unary(const struct grpc_client_call *c, const uint8_t *req, size_t req_len,
                      struct ep_buf *resp, int *status, char *msg, size_t msgcap, ep_err *err);

#endif
