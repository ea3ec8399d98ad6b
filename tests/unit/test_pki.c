/* Unit tests for pki/: the CA and node files `edgepullctl ca` writes, the
 * start-up check of a node's files, and the name rule both TLS ends apply
 * (a certificate names a node id exactly, by DNS subjectAltName, else CN). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ep_test.h"
#include "pki/pki.h"
#include "tests/lib/testlib.h"

struct fx {
  char dir[256];
  char other[256]; /* a second CA */
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  if (f == NULL || ep_test_tmpdir(f->dir, sizeof f->dir, "ep-pki-") < 0 ||
      ep_test_tmpdir(f->other, sizeof f->other, "ep-pki2-") < 0)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  ep_test_rm_rf(f->dir);
  ep_test_rm_rf(f->other);
  free(f);
  return 0;
}

static void path(char *out, size_t cap, const char *dir, const char *name) {
  snprintf(out, cap, "%s/%s", dir, name);
}

static mode_t mode_of(const char *dir, const char *name) {
  char p[512];
  struct stat st;
  path(p, sizeof p, dir, name);
  assert_int_equal(stat(p, &st), 0);
  return st.st_mode & 07777;
}

/* The DER of a PEM certificate file. */
static size_t der_of(const char *dir, const char *name, unsigned char **der) {
  char p[512];
  path(p, sizeof p, dir, name);
  FILE *fp = fopen(p, "r");
  assert_non_null(fp);
  X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
  fclose(fp);
  assert_non_null(x);
  *der = NULL;
  int n = i2d_X509(x, der);
  X509_free(x);
  assert_true(n > 0);
  return (size_t)n;
}

static void test_ca_files(void **state) {
  struct fx *f = *state;
  ep_err e = {0};
  assert_int_equal(pki_ca_init(f->dir, NULL, 0, false, &e), 0);
  assert_int_equal(mode_of(f->dir, "ca.key"), 0600);
  assert_int_equal(mode_of(f->dir, "ca.crt"), 0644);
  /* Never over an existing CA without --force: its certificates would die. */
  assert_true(pki_ca_init(f->dir, NULL, 0, false, &e) < 0);
  assert_non_null(strstr(e.msg, "--force"));
  assert_int_equal(pki_ca_init(f->dir, "my CA", 30, true, &e), 0);
  assert_int_equal(mode_of(f->dir, "ca.key"), 0600);
}

static void test_issue_and_check(void **state) {
  struct fx *f = *state;
  ep_err e = {0};
  char ca[512], crt[512], key[512], ca2[512], key2[512];
  assert_int_equal(pki_ca_init(f->dir, NULL, 0, false, &e), 0);
  assert_int_equal(pki_issue(f->dir, "node-1", f->dir, 0, false, &e), 0);
  assert_int_equal(pki_issue(f->dir, "node-2", f->dir, 0, false, &e), 0);
  assert_int_equal(mode_of(f->dir, "node-1.key"), 0600);
  assert_true(pki_issue(f->dir, "node-1", f->dir, 0, false, &e) < 0);
  path(ca, sizeof ca, f->dir, "ca.crt");
  path(crt, sizeof crt, f->dir, "node-1.crt");
  path(key, sizeof key, f->dir, "node-1.key");
  path(key2, sizeof key2, f->dir, "node-2.key");
  assert_int_equal(pki_check_node_files(ca, crt, key, "node-1", &e), 0);
  /* Another node's name, another node's key, another CA. */
  assert_true(pki_check_node_files(ca, crt, key, "node-2", &e) < 0);
  assert_non_null(strstr(e.msg, "does not name"));
  assert_true(pki_check_node_files(ca, crt, key2, "node-1", &e) < 0);
  assert_non_null(strstr(e.msg, "not the key"));
  assert_int_equal(pki_ca_init(f->other, NULL, 0, false, &e), 0);
  path(ca2, sizeof ca2, f->other, "ca.crt");
  assert_true(pki_check_node_files(ca2, crt, key, "node-1", &e) < 0);
  assert_non_null(strstr(e.msg, "not valid under the CA"));
  assert_true(pki_check_node_files(ca, "/nonexistent", key, "node-1", &e) < 0);
}

static void test_issue_refuses(void **state) {
  struct fx *f = *state;
  ep_err e = {0};
  assert_true(pki_issue(f->dir, "n1", f->dir, 0, false, &e) < 0); /* no CA yet */
  assert_non_null(strstr(e.msg, "ca init"));
  assert_int_equal(pki_ca_init(f->dir, NULL, 0, false, &e), 0);
  static const char *const bad[] = {"", "../x", "a/b", "a b", "a,DNS:b", "x\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_true(pki_issue(f->dir, bad[i], f->dir, 0, false, &e) < 0);
  /* A CA key that does not match its certificate. */
  assert_int_equal(pki_ca_init(f->other, NULL, 0, false, &e), 0);
  char a[512], b[512];
  path(a, sizeof a, f->other, "ca.key");
  path(b, sizeof b, f->dir, "ca.key");
  assert_int_equal(rename(a, b), 0);
  assert_true(pki_issue(f->dir, "n1", f->dir, 0, false, &e) < 0);
  assert_non_null(strstr(e.msg, "not the key"));
}

static void test_names_issued(void **state) {
  struct fx *f = *state;
  ep_err e = {0};
  assert_int_equal(pki_ca_init(f->dir, NULL, 0, false, &e), 0);
  assert_int_equal(pki_issue(f->dir, "10.0.0.1", f->dir, 0, false, &e), 0);
  assert_int_equal(pki_issue(f->dir, "gw_A", f->dir, 0, false, &e), 0);
  unsigned char *der = NULL;
  size_t n = der_of(f->dir, "gw_A.crt", &der);
  assert_true(pki_der_names(der, n, "gw_A"));
  static const char *const no[] = {"gw_a", "GW_A", "gw", "gw_A ", "gw_AA", "*", ""};
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
    assert_false(pki_der_names(der, n, no[i]));
  assert_false(pki_der_names(der, n, NULL));
  assert_false(pki_der_names(der, n - 1, "gw_A")); /* cut short */
  assert_false(pki_der_names(der, 0, "gw_A"));
  OPENSSL_free(der);
  /* An id that looks like an IP address is a name like any other. */
  n = der_of(f->dir, "10.0.0.1.crt", &der);
  assert_true(pki_der_names(der, n, "10.0.0.1"));
  assert_false(pki_der_names(der, n, "10.0.0.10"));
  OPENSSL_free(der);
  static const unsigned char junk[] = {0x30, 0x82, 0xff, 0xff, 0x00};
  assert_false(pki_der_names(junk, sizeof junk, "gw_A"));
}

/* A self-signed certificate with CN cn and, when san is set, that
 * subjectAltName: how openssl-made certificates may look. */
static size_t make_cert(const char *cn, const char *san, unsigned char **der) {
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  assert_non_null(k);
  assert_non_null(x);
  X509_NAME *nm = X509_get_subject_name(x);
  assert_int_equal(
      X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0), 1);
  X509_set_issuer_name(x, nm);
  X509_set_pubkey(x, k);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  if (san != NULL) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
    assert_non_null(ex);
    X509_add_ext(x, ex, -1);
    X509_EXTENSION_free(ex);
  }
  assert_true(X509_sign(x, k, EVP_sha256()) > 0);
  *der = NULL;
  int n = i2d_X509(x, der);
  X509_free(x);
  EVP_PKEY_free(k);
  assert_true(n > 0);
  return (size_t)n;
}

static void test_names_rule(void **state) {
  (void)state;
  unsigned char *der = NULL;
  /* CN alone names the node when there is no DNS subjectAltName. */
  size_t n = make_cert("n1", NULL, &der);
  assert_true(pki_der_names(der, n, "n1"));
  assert_false(pki_der_names(der, n, "n2"));
  OPENSSL_free(der);
  /* With DNS subjectAltNames the CN is not looked at. */
  n = make_cert("n1", "DNS:n2,DNS:n3", &der);
  assert_false(pki_der_names(der, n, "n1"));
  assert_true(pki_der_names(der, n, "n2"));
  assert_true(pki_der_names(der, n, "n3"));
  OPENSSL_free(der);
  /* An IP subjectAltName is no DNS name: the CN counts; no wildcard matches. */
  n = make_cert("n1", "IP:10.0.0.1", &der);
  assert_true(pki_der_names(der, n, "n1"));
  assert_false(pki_der_names(der, n, "10.0.0.1"));
  OPENSSL_free(der);
  n = make_cert("*", "DNS:*", &der);
  assert_false(pki_der_names(der, n, "n1"));
  OPENSSL_free(der);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_ca_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_issue_and_check, setup, teardown),
      cmocka_unit_test_setup_teardown(test_issue_refuses, setup, teardown),
      cmocka_unit_test_setup_teardown(test_names_issued, setup, teardown),
      cmocka_unit_test(test_names_rule),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
