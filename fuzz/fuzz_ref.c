/* Fuzz target: plugin/ref, what a client sends to the registry endpoint.
 * Input: "<path>\n<ns>\n<default registry>" (missing lines: ns absent,
 * default "docker.io"). Whatever ref_parse_request accepts must satisfy the
 * grammars it promises (repository name, host, tag) and a digest must format
 * back to the same digest, so a hostile path can never become a bad URL or
 * file name. The quoting of messages (ep_escape) is checked on the raw bytes: printable, bounded,
 * terminated. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Includes of the code under test, in one place (paths move with plugin/). */
#include "common/escape.h"
#include "common/names.h"
#include "fuzz/fuzz.h"
#include "plugin/ref/ref.h"
#include "store/digest.h"

static void check_target(const struct ref_target *t, const char *ns) {
  FUZZ_TERMINATED(t->registry, "ref");
  FUZZ_TERMINATED(t->name, "ref");
  FUZZ_TERMINATED(t->tag, "ref");
  if (t->kind != REF_BASE && !names_repo_valid(t->name))
    fuzz_fail("accepted an invalid repository name \"%s\"", t->name);
  if (t->kind != REF_BASE && !names_registry_valid(t->registry))
    fuzz_fail("accepted an invalid registry \"%s\" (ns %s)", t->registry, ns ? ns : "(none)");
  if (t->kind == REF_BLOB && !t->by_digest)
    fuzz_fail("a blob by tag");
  if (t->kind != REF_BASE && !t->by_digest && !names_tag_valid(t->tag))
    fuzz_fail("accepted an invalid tag \"%s\"", t->tag);
  if (t->by_digest) {
    char s[DIGEST_STR_LEN + 1];
    digest_t d;
    ep_err err = {0};
    digest_format(&t->digest, s);
    if (digest_parse(s, &d, &err) != 0 || !digest_equal(&d, &t->digest))
      fuzz_fail("digest \"%s\" does not re-parse", s);
  }
}

static void check_quote(const uint8_t *data, size_t size) {
  char q[128];
  memset(q, 'X', sizeof q);
  ep_escape(q, sizeof q, (const char *)data, size, EP_ESCAPE_QUOTE);
  size_t n = strnlen(q, sizeof q);
  if (n == sizeof q)
    fuzz_fail("ep_escape: not terminated");
  for (size_t i = 0; i < n; i++)
    if (q[i] < 0x20 || q[i] > 0x7e)
      fuzz_fail("ep_escape: unprintable byte 0x%02x", (unsigned char)q[i]);
  char small[5];
  ep_escape(small, sizeof small, (const char *)data, size, EP_ESCAPE_QUOTE);
  if (strnlen(small, sizeof small) == sizeof small)
    fuzz_fail("ep_escape: small buffer not terminated");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *part[3];
  fuzz_split(data, size, part, 3);
  const char *def = part[2] != NULL ? part[2] : "docker.io";
  struct ref_target t;
  ep_err err = {0};
  int rc = ref_parse_request(part[0], part[1], def, &t, &err);
  fuzz_check_err(rc, &err, "ref_parse_request");
  if (rc == 0)
    check_target(&t, part[1]);
  if (part[0] != NULL) {
    bool v = names_repo_valid(part[0]);
    if (v != names_repo_valid_n(part[0], strlen(part[0])))
      fuzz_fail("names_repo_valid and names_repo_valid_n disagree");
    (void)names_tag_valid(part[0]);
    (void)names_registry_valid(part[0]);
  }
  check_quote(data, size);
  fuzz_free_parts(part, 3);
  return 0;
}
