/* gRPC over h2c with prior knowledge on a unix socket, built on libnghttp2. Message-agnostic: a
 * handler gets the serialized request and sends serialized responses; protobuf-c (de)serialization
 * is the service's business. Unary and server-streaming calls only (what containerd's snapshots API
 * needs): the request is one message. */
#ifndef EP_PLUGIN_GRPC_GRPC_H
#define EP_PLUGIN_GRPC_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct grpc_server grpc_server;
typedef struct grpc_call grpc_call;

/* gRPC status codes (the subset containerd's errdefs maps). */
enum grpc_status {
  GRPC_OK = 0,
  GRPC_CANCELLED = 1,
  GRPC_UNKNOWN = 2,
  GRPC_INVALID_ARGUMENT = 3,
  GRPC_DEADLINE_EXCEEDED = 4,
  GRPC_NOT_FOUND = 5,
  GRPC_ALREADY_EXISTS = 6,
  GRPC_PERMISSION_DENIED = 7,
  GRPC_RESOURCE_EXHAUSTED = 8,
  GRPC_FAILED_PRECONDITION = 9,
  GRPC_ABORTED = 10,
  GRPC_OUT_OF_RANGE = 11,
  GRPC_UNIMPLEMENTED = 12,
  GRPC_INTERNAL = 13,
  GRPC_UNAVAILABLE = 14,
  GRPC_DATA_LOSS = 15,
  GRPC_UNAUTHENTICATED = 16
};

/* Runs on a worker thread (never the connection's I/O thread), so a slow handler (an unpack) never
 * blocks other RPCs. It must end the call exactly once with grpc_call_finish(); before that it may
 * call grpc_call_send() once (unary) or many times (server streaming). `req` is valid until
 * grpc_call_finish. */
typedef void (*grpc_handler_fn)(grpc_call *call, const uint8_t *req, size_t req_len, void *ud);

struct grpc_method {
  const char *path; /* "/containerd.services.snapshots.v1.Snapshots/Prepare" */
  grpc_handler_fn fn;
  void *ud;
};

struct grpc_server_opts {
  int listen_fd; /* a bound, listening unix stream socket; owned by the caller */
  const struct grpc_method *methods; /* table, must outlive the server */
  size_t n_methods;
  unsigned max_workers; /* concurrent handler threads; 0 = default (16) */
  /* Every handler holds a worker until it finishes, a blocked grpc_call_send included: when more
   * than max_workers handlers are slow at once (remote unpacks), further calls wait in a queue
   * (1024 deep, then RESOURCE_EXHAUSTED). The service should bound its own slow work below
   * max_workers. */
  size_t max_message; /* largest request message accepted; 0 = default 4 MiB (gRPC's default) */
};

int grpc_server_start(const struct grpc_server_opts *o, grpc_server **out, ep_err *err);
/* Stops accepting, cancels calls (handlers see grpc_call_cancelled), waits for workers, frees. The
 * caller's listen_fd stays open. */
void grpc_server_stop(grpc_server *s);

/* Request metadata (lower-case header name), e.g. "containerd-namespace"; NULL when absent. Valid
 * until grpc_call_finish. */
const char *grpc_call_metadata(const grpc_call *c, const char *name);
/* Sends one length-prefixed response message. Returns 0, or <0 when the peer went away/cancelled
 * (stop sending). May block while the stream's bounded send queue is full (flow control from a slow
 * reader). */
int grpc_call_send(grpc_call *c, const uint8_t *msg, size_t len);
/* Ends the call with trailers grpc-status / grpc-message (message percent-encoded by the transport;
 * NULL for none). After it returns the handler must not touch `call`, `req` or metadata again. */
void grpc_call_finish(grpc_call *c, int status, const char *message);
bool grpc_call_cancelled(const grpc_call *c);

#endif
