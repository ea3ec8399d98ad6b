/* Fuzz target: plugin/manifest. The whole input is parsed as a manifest
 * body; every digest it yields must be a valid sha256 that formats back to
 * itself, and there are never more than MANIFEST_MAX_REFS. The first two
 * lines also go to manifest_accept_allows as an Accept header and a media
 * type. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Includes of the code under test, in one place (paths move with plugin/). */
#include "fuzz/fuzz.h"
#include "plugin/mirror/manifest.h"
#include "store/digest.h"

/* A media type as a token: printable, no space, ',' or ';'. */
static bool plain_token(const char *s) {
  if (*s == '\0')
    return false;
  for (; *s != '\0'; s++)
    if (*s <= 0x20 || *s >= 0x7f || *s == ',' || *s == ';')
      return false;
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct manifest_info m; /* 70 KiB: not on the stack */
  ep_err err = {0};
  int rc = manifest_parse(data, size, &m, &err);
  fuzz_check_err(rc, &err, "manifest_parse");
  if (rc == 0) {
    FUZZ_TERMINATED(m.media_type, "manifest");
    if (m.nrefs > MANIFEST_MAX_REFS)
      fuzz_fail("%zu refs", m.nrefs);
    for (size_t i = 0; i < m.nrefs; i++) {
      char s[DIGEST_STR_LEN + 1];
      digest_t d;
      ep_err e = {0};
      digest_format(&m.refs[i], s);
      if (digest_parse(s, &d, &e) != 0 || !digest_equal(&d, &m.refs[i]))
        fuzz_fail("ref %zu \"%s\" does not re-parse", i, s);
    }
  }
  char *part[2];
  fuzz_split(data, size, part, 2);
  (void)manifest_accept_allows(part[0], part[1] != NULL ? part[1] : MT_OCI_MANIFEST);
  if (part[1] != NULL && plain_token(part[1]) && !manifest_accept_allows(part[1], part[1]))
    fuzz_fail("Accept \"%s\" does not admit itself", part[1]);
  fuzz_free_parts(part, 2);
  return 0;
}
