/* Fuzz target: what an upstream registry says about authentication. The
 * first line is a WWW-Authenticate value for upstream_parse_challenge; the
 * whole input is also a token endpoint's answer for upstream_token_parse.
 * An accepted challenge has a known scheme, terminated fields and, for
 * Bearer, an http(s) realm; an accepted token is non-empty, bounded,
 * header-safe, and lives 1..86400 s. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Includes of the code under test, in one place (paths move with plugin/). */
#include "fuzz/fuzz.h"
#include "plugin/upstream/upstream_int.h"

static void one_challenge(const char *hdr) {
  struct upstream_challenge c;
  ep_err err = {0};
  int rc = upstream_parse_challenge(hdr, &c, &err);
  fuzz_check_err(rc, &err, "upstream_parse_challenge");
  if (rc != 0)
    return;
  FUZZ_TERMINATED(c.realm, "challenge");
  FUZZ_TERMINATED(c.service, "challenge");
  FUZZ_TERMINATED(c.scope, "challenge");
  if (c.scheme == UPSTREAM_AUTH_BEARER) {
    if (strncasecmp(c.realm, "https://", 8) != 0 && strncasecmp(c.realm, "http://", 7) != 0)
      fuzz_fail("Bearer realm \"%s\" accepted", c.realm);
  } else if (c.scheme != UPSTREAM_AUTH_BASIC) {
    fuzz_fail("scheme %d", c.scheme);
  }
}

static void one_token(const uint8_t *data, size_t size) {
  struct ep_buf b = {.data = malloc(size + 1), .len = size, .cap = size + 1, .max = size};
  if (b.data == NULL)
    return;
  memcpy(b.data, data, size);
  b.data[size] = '\0';
  char *tok = NULL;
  int64_t life = 0;
  ep_err err = {0};
  int rc = upstream_token_parse(&b, &tok, &life, &err);
  fuzz_check_err(rc, &err, "upstream_token_parse");
  if (rc == 0) {
    size_t n = strlen(tok);
    if (n == 0 || n > UPSTREAM_TOKEN_MAX)
      fuzz_fail("token of %zu bytes", n);
    for (size_t i = 0; i < n; i++)
      if ((unsigned char)tok[i] <= 0x20 || (unsigned char)tok[i] >= 0x7f)
        fuzz_fail("token byte 0x%02x", (unsigned char)tok[i]);
    if (life < 1 || life > 86400)
      fuzz_fail("token lifetime %lld", (long long)life);
  }
  free(tok);
  free(b.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *part[2];
  fuzz_split(data, size, part, 2);
  one_challenge(part[0]);
  fuzz_free_parts(part, 2);
  one_token(data, size);
  return 0;
}
