/* Making the locality's CA and node certificates with OpenSSL libcrypto
 * (pki.h). libcrypto does the cryptography and the X.509 encoding; this
 * file only chooses what goes in the certificates and writes the files
 * carefully: keys 0600 from the moment they exist, nothing overwritten
 * unless asked, and no half-written pair left behind on failure. */
#include "pki/pki.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/names.h"

#define PKI_PATH_MAX 4096

static int ssl_error(ep_err *err, const char *what) {
  char buf[256] = "unknown error";
  unsigned long e = ERR_get_error();
  if (e != 0)
    ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return ep_error(err, EP_EINTERNAL, "%s: %s", what, buf);
}

static int join(char *out, const char *dir, const char *name, const char *ext, ep_err *err) {
  int n = snprintf(out, PKI_PATH_MAX, "%s/%s%s", dir, name, ext);
  if (n < 0 || n >= PKI_PATH_MAX)
    return ep_error(err, EP_EINVAL, "path %s/%s%s too long", dir, name, ext);
  return 0;
}

/* Opens path for writing with mode; refuses an existing file unless force. */
static FILE *open_out(const char *path, mode_t mode, bool force, ep_err *err) {
  int fd =
      open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (force ? O_TRUNC : O_EXCL), mode);
  if (fd < 0) {
    if (errno == EEXIST)
      ep_error(err, EP_EINVAL, "%s exists (--force replaces it)", path);
    else
      ep_syserror(err, EP_EIO, "creating %s", path);
    return NULL;
  }
  if (force)
    (void)fchmod(fd, mode); /* a replaced key narrower than it was, never wider */
  FILE *f = fdopen(fd, "w");
  if (f == NULL) {
    ep_syserror(err, EP_EIO, "opening %s", path);
    close(fd);
  }
  return f;
}

/* The key (0600) then the certificate (0644); on failure neither is left. */
static int write_pair(const char *key_path, const char *crt_path, EVP_PKEY *key, X509 *crt,
                      bool force, ep_err *err) {
  if (!force && (access(key_path, F_OK) == 0 || access(crt_path, F_OK) == 0))
    return ep_error(err, EP_EINVAL, "%s or %s exists (--force replaces them)", key_path, crt_path);
  FILE *f = open_out(key_path, 0600, force, err);
  if (f == NULL)
    return -err->code;
  bool ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
  ok = (fclose(f) == 0) && ok;
  if (!ok) {
    unlink(key_path);
    return ssl_error(err, key_path);
  }
  if ((f = open_out(crt_path, 0644, force, err)) == NULL) {
    unlink(key_path);
    return -err->code;
  }
  ok = PEM_write_X509(f, crt) == 1;
  ok = (fclose(f) == 0) && ok;
  if (!ok) {
    unlink(key_path);
    unlink(crt_path);
    return ssl_error(err, crt_path);
  }
  return 0;
}

static bool add_ext(X509 *crt, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, crt, NULL, NULL, 0);
  X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  bool ok = ex != NULL && X509_add_ext(crt, ex, -1) == 1;
  X509_EXTENSION_free(ex);
  return ok;
}

/* A certificate for key with subject CN=cn, issued by issuer (NULL:
 * self-signed). Valid from an hour ago (clocks on edge devices drift) for
 * days. The serial is random, as CAs must make them. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *issuer, int days) {
  X509 *x = X509_new();
  BIGNUM *bn = BN_new();
  X509_NAME *name = X509_NAME_new();
  bool ok = x != NULL && bn != NULL && name != NULL && X509_set_version(x, X509_VERSION_3) == 1 &&
            BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
            BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL &&
            X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
            X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) != NULL &&
            X509_set_pubkey(x, key) == 1 &&
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                       0) == 1 &&
            X509_set_subject_name(x, name) == 1 &&
            X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name) == 1;
  BN_free(bn);
  X509_NAME_free(name);
  if (!ok) {
    X509_free(x);
    return NULL;
  }
  return x;
}

int pki_ca_init(const char *dir, const char *name, int days, bool force, ep_err *err) {
  char kp[PKI_PATH_MAX], cp[PKI_PATH_MAX];
  if (days <= 0)
    days = PKI_CA_DAYS;
  if (join(kp, dir, "ca", ".key", err) < 0 || join(cp, dir, "ca", ".crt", err) < 0)
    return -err->code;
  EVP_PKEY *key = EVP_EC_gen("P-256");
  if (key == NULL)
    return ssl_error(err, "generating the CA key");
  X509 *x = new_cert(key, name != NULL ? name : "edgepull locality CA", NULL, days);
  int rc = 0;
  if (x == NULL || !add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
      !add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !add_ext(x, x, NID_subject_key_identifier, "hash") ||
      !add_ext(x, x, NID_authority_key_identifier, "keyid:always") ||
      X509_sign(x, key, EVP_sha256()) <= 0)
    rc = ssl_error(err, "making the CA certificate");
  else
    rc = write_pair(kp, cp, key, x, force, err);
  X509_free(x);
  EVP_PKEY_free(key);
  return rc;
}

/* CA_DIR/ca.key and CA_DIR/ca.crt, checked to belong together. */
static int load_ca(const char *dir, EVP_PKEY **key, X509 **crt, ep_err *err) {
  char kp[PKI_PATH_MAX], cp[PKI_PATH_MAX];
  if (join(kp, dir, "ca", ".key", err) < 0 || join(cp, dir, "ca", ".crt", err) < 0)
    return -err->code;
  FILE *f = fopen(kp, "re");
  if (f == NULL)
    return ep_syserror(err, EP_ENOTFOUND, "reading %s (make it with 'edgepullctl ca init')", kp);
  *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
  fclose(f);
  if (*key == NULL)
    return ssl_error(err, kp);
  if ((f = fopen(cp, "re")) == NULL)
    return ep_syserror(err, EP_ENOTFOUND, "reading %s", cp);
  *crt = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  if (*crt == NULL)
    return ssl_error(err, cp);
  if (X509_check_private_key(*crt, *key) != 1) {
    ERR_clear_error();
    return ep_error(err, EP_EINVAL, "%s is not the key of %s", kp, cp);
  }
  return 0;
}

int pki_issue(const char *ca_dir, const char *node, const char *out_dir, int days, bool force,
              ep_err *err) {
  char kp[PKI_PATH_MAX], cp[PKI_PATH_MAX], san[NAMES_ID_MAX + 8];
  if (!names_node_id_valid(node))
    return ep_error(err, EP_EINVAL, "'%s' is not a valid node id", node);
  if (days <= 0)
    days = PKI_NODE_DAYS;
  if (join(kp, out_dir, node, ".key", err) < 0 || join(cp, out_dir, node, ".crt", err) < 0)
    return -err->code;
  snprintf(san, sizeof san, "DNS:%s", node);
  EVP_PKEY *ca_key = NULL, *key = NULL;
  X509 *ca = NULL, *x = NULL;
  int rc = load_ca(ca_dir, &ca_key, &ca, err);
  if (rc == 0 && (key = EVP_EC_gen("P-256")) == NULL)
    rc = ssl_error(err, "generating the node key");
  if (rc == 0 && ((x = new_cert(key, node, ca, days)) == NULL ||
                  !add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") ||
                  !add_ext(x, ca, NID_key_usage, "critical,digitalSignature") ||
                  !add_ext(x, ca, NID_ext_key_usage, "serverAuth,clientAuth") ||
                  !add_ext(x, ca, NID_subject_alt_name, san) ||
                  !add_ext(x, ca, NID_subject_key_identifier, "hash") ||
                  !add_ext(x, ca, NID_authority_key_identifier, "keyid:always") ||
                  X509_sign(x, ca_key, EVP_sha256()) <= 0))
    rc = ssl_error(err, "making the node certificate");
  if (rc == 0)
    rc = write_pair(kp, cp, key, x, force, err);
  X509_free(x);
  X509_free(ca);
  EVP_PKEY_free(key);
  EVP_PKEY_free(ca_key);
  return rc;
}
