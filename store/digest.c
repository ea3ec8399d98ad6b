/* Digest parsing and sha256 hashing.
 *
 * A digest string comes from the network (URLs, manifests, MQTT payloads)
 * and ends up as a file name in the store, so the parser is strict: exactly
 * "sha256:" followed by 64 lowercase hex characters. A well-formed name of
 * another algorithm (OCI allows e.g. sha512) is refused as unsupported, so
 * the client learns why; everything else is invalid input. Error messages
 * quote the input escaped and truncated, so a hostile string cannot inject
 * control characters into logs.
 *
 * Hashing wraps OpenSSL's EVP interface. A context that ever fails inside
 * OpenSSL (practically only on allocation failure) remembers it and yields
 * an all-zero digest, which matches no real content, so a commit fails
 * closed instead of accepting unhashed bytes. */
#include "store/digest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/escape.h"
#include "common/log.h"

struct digest_ctx {
  EVP_MD_CTX *md;
  bool broken;
};

static bool is_lower_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Validates 64 lowercase hex at hex; `whole` is what the message quotes. */
static int parse_hex(const char *hex, const char *whole, digest_t *out, ep_err *err) {
  char q[EP_QUOTE_BUF];
  size_t n = strnlen(hex, DIGEST_HEX_LEN + 1);
  if (n != DIGEST_HEX_LEN) {
    ep_quote(q, sizeof q, whole);
    return ep_error(err, EP_EINVAL,
                    "digest \"%s\": sha256 needs exactly %d lowercase hex characters", q,
                    DIGEST_HEX_LEN);
  }
  for (size_t i = 0; i < DIGEST_HEX_LEN; i++) {
    if (!is_lower_hex(hex[i])) {
      ep_quote(q, sizeof q, whole);
      return ep_error(err, EP_EINVAL, "digest \"%s\": hex character %zu is not in [0-9a-f]", q,
                      i + 1);
    }
  }
  if (out != NULL) {
    memcpy(out->hex, hex, DIGEST_HEX_LEN);
    out->hex[DIGEST_HEX_LEN] = '\0';
  }
  return 0;
}

int digest_parse_hex(const char *hex, digest_t *out, ep_err *err) {
  if (hex == NULL)
    return ep_error(err, EP_EINVAL, "digest: missing hex value");
  return parse_hex(hex, hex, out, err);
}

/* OCI: algorithm := component ([+._-] component)*, component := [a-z0-9]+ */
static bool is_oci_algorithm(const char *s, size_t n) {
  if (n == 0 || n > 32)
    return false;
  bool need_component = true;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      need_component = false;
    } else if (c == '+' || c == '.' || c == '_' || c == '-') {
      if (need_component)
        return false;
      need_component = true;
    } else {
      return false;
    }
  }
  return !need_component;
}

int digest_parse(const char *s, digest_t *out, ep_err *err) {
  char q[EP_QUOTE_BUF];
  if (s == NULL || s[0] == '\0')
    return ep_error(err, EP_EINVAL, "digest: empty");
  const char *colon = strchr(s, ':');
  if (colon == NULL) {
    ep_quote(q, sizeof q, s);
    return ep_error(err, EP_EINVAL, "digest \"%s\": expected \"sha256:<64 hex>\"", q);
  }
  size_t alen = (size_t)(colon - s);
  if (alen == 6 && memcmp(s, "sha256", 6) == 0)
    return parse_hex(colon + 1, s, out, err);
  ep_quote(q, sizeof q, s);
  if (is_oci_algorithm(s, alen))
    return ep_error(err, EP_EUNSUPPORTED,
                    "digest \"%s\": algorithm \"%.*s\" is not supported (only sha256)", q,
                    (int)alen, s);
  return ep_error(err, EP_EINVAL, "digest \"%s\": malformed algorithm", q);
}

void digest_format(const digest_t *d, char out[DIGEST_STR_LEN + 1]) {
  memcpy(out, "sha256:", 7);
  memcpy(out + 7, d->hex, DIGEST_HEX_LEN);
  out[DIGEST_STR_LEN] = '\0';
}

bool digest_equal(const digest_t *a, const digest_t *b) {
  return memcmp(a->hex, b->hex, DIGEST_HEX_LEN) == 0;
}

static void to_hex(const unsigned char *md, unsigned len, digest_t *out) {
  static const char xd[] = "0123456789abcdef";
  memset(out->hex, '0', DIGEST_HEX_LEN);
  for (unsigned i = 0; i < len && i * 2 + 1 < DIGEST_HEX_LEN; i++) {
    out->hex[2 * i] = xd[md[i] >> 4];
    out->hex[2 * i + 1] = xd[md[i] & 0xf];
  }
  out->hex[DIGEST_HEX_LEN] = '\0';
}

digest_ctx *digest_ctx_new(void) {
  digest_ctx *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->md = EVP_MD_CTX_new();
  if (c->md == NULL || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(c->md);
    free(c);
    return NULL;
  }
  return c;
}

void digest_ctx_reset(digest_ctx *c) {
  c->broken = EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1;
  if (c->broken)
    ep_log_err("sha256: cannot initialise the hash context");
}

void digest_ctx_update(digest_ctx *c, const void *buf, size_t len) {
  if (len == 0 || c->broken)
    return;
  if (EVP_DigestUpdate(c->md, buf, len) != 1) {
    c->broken = true;
    ep_log_err("sha256: hash update failed");
  }
}

void digest_ctx_final(digest_ctx *c, digest_t *out) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (c->broken || EVP_DigestFinal_ex(c->md, md, &len) != 1 || len != DIGEST_HEX_LEN / 2)
    len = 0; /* all zeros: matches nothing */
  to_hex(md, len, out);
  digest_ctx_reset(c);
}

void digest_ctx_peek(const digest_ctx *c, digest_t *out) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_MD_CTX *copy = EVP_MD_CTX_new();
  if (c->broken || copy == NULL || EVP_MD_CTX_copy_ex(copy, c->md) != 1 ||
      EVP_DigestFinal_ex(copy, md, &len) != 1 || len != DIGEST_HEX_LEN / 2)
    len = 0; /* all zeros: matches nothing */
  EVP_MD_CTX_free(copy);
  to_hex(md, len, out);
}

void digest_ctx_free(digest_ctx *c) {
  if (c == NULL)
    return;
  EVP_MD_CTX_free(c->md);
  free(c);
}

void digest_buffer(const void *buf, size_t len, digest_t *out) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  static const unsigned char empty;
  if (buf == NULL)
    buf = &empty;
  if (EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != DIGEST_HEX_LEN / 2) {
    ep_log_err("sha256: one-shot hash failed");
    mdlen = 0;
  }
  to_hex(md, mdlen, out);
}

void digest_chain_id(const digest_t *parent, const digest_t *diffid, digest_t *out) {
  if (parent == NULL) {
    *out = *diffid;
    return;
  }
  char s[2 * DIGEST_STR_LEN + 2];
  int n = snprintf(s, sizeof s, "sha256:%s sha256:%s", parent->hex, diffid->hex);
  digest_buffer(s, (size_t)n, out);
}
