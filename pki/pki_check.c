/* The checks on locality certificates (pki.h): the name rule both TLS ends
 * apply, and the start-up check of a node's files. libcrypto parses and
 * verifies; the rule itself is ours because a hostname check would not do:
 * node ids are case-sensitive and may look like IP addresses ("10.0.0.1"
 * is a valid node id), which hostname matching treats differently. */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pki/pki.h"

static bool same(const ASN1_STRING *s, const char *node) {
  size_t n = strlen(node);
  return s != NULL && (size_t)ASN1_STRING_length(s) == n &&
         memcmp(ASN1_STRING_get0_data(s), node, n) == 0;
}

/* 1 when a DNS subjectAltName equals node, 0 when none does, -1 when the
 * certificate has no DNS subjectAltName at all. */
static int san_names(X509 *x, const char *node) {
  GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  if (gens == NULL)
    return -1;
  int found = -1;
  for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    if (g->type != GEN_DNS)
      continue;
    found = found < 0 ? 0 : found;
    if (same(g->d.dNSName, node))
      found = 1;
  }
  GENERAL_NAMES_free(gens);
  return found;
}

/* Exactly one CN, equal to node. */
static bool cn_names(X509 *x, const char *node) {
  const X509_NAME *subj = X509_get_subject_name(x);
  int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
  if (i < 0 || X509_NAME_get_index_by_NID(subj, NID_commonName, i) >= 0)
    return false;
  return same(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)), node);
}

static bool x509_names(X509 *x, const char *node) {
  if (node == NULL || node[0] == '\0')
    return false;
  int san = san_names(x, node);
  return san >= 0 ? san == 1 : cn_names(x, node);
}

bool pki_der_names(const unsigned char *der, size_t len, const char *node) {
  if (der == NULL || len == 0 || len > (1u << 20))
    return false;
  const unsigned char *p = der;
  X509 *x = d2i_X509(NULL, &p, (long)len);
  bool ok = x != NULL && x509_names(x, node);
  X509_free(x);
  ERR_clear_error();
  return ok;
}

static X509 *read_cert(const char *path, ep_err *err) {
  FILE *f = fopen(path, "re");
  if (f == NULL) {
    ep_syserror(err, EP_EINVAL, "reading %s", path);
    return NULL;
  }
  X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  if (x == NULL)
    ep_error(err, EP_EINVAL, "%s: not a PEM certificate", path);
  ERR_clear_error();
  return x;
}

/* cert chains to ca alone (the locality CA is the only trust anchor). */
static int verify_chain(X509 *ca, X509 *cert, const char *cert_path, const char *ca_path,
                        ep_err *err) {
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  int rc = 0;
  if (store == NULL || ctx == NULL || X509_STORE_add_cert(store, ca) != 1 ||
      X509_STORE_CTX_init(ctx, store, cert, NULL) != 1)
    rc = ep_error(err, EP_EINTERNAL, "out of memory");
  else if (X509_verify_cert(ctx) != 1)
    rc = ep_error(err, EP_EINVAL, "%s is not valid under the CA %s: %s", cert_path, ca_path,
                  X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  ERR_clear_error();
  return rc;
}

int pki_check_node_files(const char *ca, const char *cert, const char *key, const char *node_id,
                         ep_err *err) {
  X509 *cax = read_cert(ca, err), *x = NULL;
  EVP_PKEY *k = NULL;
  int rc = cax == NULL ? -err->code : 0;
  if (rc == 0 && (x = read_cert(cert, err)) == NULL)
    rc = -err->code;
  FILE *f = rc == 0 ? fopen(key, "re") : NULL;
  if (rc == 0 && f == NULL)
    rc = ep_syserror(err, EP_EINVAL, "reading %s", key);
  if (f != NULL) {
    k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (k == NULL)
      rc = ep_error(err, EP_EINVAL, "%s: not a PEM private key (or one with a passphrase)", key);
  }
  if (rc == 0 && X509_check_private_key(x, k) != 1)
    rc = ep_error(err, EP_EINVAL, "%s is not the key of %s", key, cert);
  if (rc == 0)
    rc = verify_chain(cax, x, cert, ca, err);
  if (rc == 0 && !x509_names(x, node_id))
    rc = ep_error(err, EP_EINVAL,
                  "%s does not name this node '%s' (issue one with 'edgepullctl ca "
                  "issue %s')",
                  cert, node_id, node_id);
  ERR_clear_error();
  EVP_PKEY_free(k);
  X509_free(x);
  X509_free(cax);
  return rc;
}
