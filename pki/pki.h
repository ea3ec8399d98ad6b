/* The locality's certificate authority (docs/security.md).
 *
 * Peers authenticate each other with mutual TLS: every node holds a key and
 * a certificate naming its node id (CN and a DNS subjectAltName), signed by
 * the locality's CA. pki_ca_init and pki_issue make those files
 * (`edgepullctl ca init|issue NODE`); the same files can be made with the
 * openssl commands docs/security.md lists. Keys are EC P-256, written 0600
 * and never over an existing file unless force is set. */
#ifndef EP_PKI_PKI_H
#define EP_PKI_PKI_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define PKI_CA_DAYS 3650   /* default lifetime of the CA */
#define PKI_NODE_DAYS 3650 /* default lifetime of a node certificate */

/* DIR/ca.key and DIR/ca.crt: a self-signed CA (basicConstraints CA:TRUE,
 * pathlen 0; keyCertSign). name goes in its CN (NULL: "edgepull locality
 * CA"). */
int pki_ca_init(const char *dir, const char *name, int days, bool force, ep_err *err);
/* OUT/NODE.key and OUT/NODE.crt, signed by CA_DIR/ca.key and ca.crt: CN and
 * a DNS subjectAltName = node, CA:FALSE, serverAuth and clientAuth, a
 * random 128-bit serial. node must be a valid node id. */
int pki_issue(const char *ca_dir, const char *node, const char *out_dir, int days, bool force,
              ep_err *err);

/* The name check both ends of a peer connection apply: true when the
 * certificate (DER) names node exactly, by a DNS subjectAltName, or by its
 * CN when it carries no DNS subjectAltName. Byte for byte: node ids are
 * case-sensitive, and no wildcard matches. */
bool pki_der_names(const unsigned char *der, size_t len, const char *node);

/* What edgepulld checks at start, so that a wrong file is a clear error
 * instead of a failing handshake later: ca, cert and key are readable PEM
 * files, key is cert's key, cert chains to ca and names node_id. */
int pki_check_node_files(const char *ca, const char *cert, const char *key, const char *node_id,
                         ep_err *err);

#endif
