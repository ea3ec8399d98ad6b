/* Mutual TLS on the peer endpoint (libmicrohttpd with GnuTLS; the choice
 * and its reasons are in docs/security.md). */
#ifndef EP_PLUGIN_PEER_TLS_H
#define EP_PLUGIN_PEER_TLS_H

#include <microhttpd.h>
#include <stdbool.h>

/* On a new connection, before its handshake: a client certificate is
 * required and verified against the locality CA (MHD_OPTION_HTTPS_MEM_TRUST),
 * so a client without one fails the handshake and never reaches a handler.
 * false when the connection has no TLS session (it is then refused). */
bool peer_tls_require_client_cert(struct MHD_Connection *c);
/* The verified client certificate names node (pki_der_names). */
bool peer_tls_client_is(struct MHD_Connection *c, const char *node);
/* GnuTLS priorities for the peer port: TLS 1.3 and 1.2 only. */
#define PEER_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

#endif
