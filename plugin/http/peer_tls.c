/* Mutual TLS on the peer endpoint, the GnuTLS side of it (peer_tls.h).
 *
 * libmicrohttpd only *requests* a client certificate when given a trust
 * list (GNUTLS_CERT_REQUEST) and leaves its verification to the
 * application, after the handshake. Here the session is tightened as soon
 * as MHD has made it, before any byte of the handshake: REQUIRE, and
 * GnuTLS's own verification against the trust list during the handshake
 * (gnutls_session_set_verify_cert), so a client without a certificate of
 * the locality's CA is refused by the handshake itself — no request is
 * parsed, no handler runs. What remains for the handler is which node the
 * certificate names. */
#include "plugin/http/peer_tls.h"

#include <gnutls/gnutls.h>

#include "pki/pki.h"

static gnutls_session_t session_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  return ci != NULL ? (gnutls_session_t)ci->tls_session : NULL;
}

bool peer_tls_require_client_cert(struct MHD_Connection *c) {
  gnutls_session_t s = session_of(c);
  if (s == NULL)
    return false;
  gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
  /* No host name: the client's name is checked per request (X-Edgepull-Node). */
  gnutls_session_set_verify_cert(s, NULL, 0);
  return true;
}

bool peer_tls_client_is(struct MHD_Connection *c, const char *node) {
  gnutls_session_t s = session_of(c);
  if (s == NULL || gnutls_session_get_verify_cert_status(s) != 0)
    return false;
  unsigned n = 0;
  const gnutls_datum_t *chain = gnutls_certificate_get_peers(s, &n);
  return chain != NULL && n > 0 && pki_der_names(chain[0].data, chain[0].size, node);
}
