/* Fuzz target: common/names, the one home of every name grammar. The first
 * line is checked by every validator and parser, the rest of the input is a
 * secret file (memfd). Invariants:
 *  - a host:port that parses formats back to text that parses to the same;
 *  - a URL's normal form is a fixed point of names_url_parse;
 *  - names_repo_valid and names_repo_valid_n agree, and the plugin's copies
 *    of the repository and tag grammars (there is one home for them now);
 *  - an accepted secret is non-empty, within NAMES_SECRET_MAX, one line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Includes of the code under test, in one place (paths move with plugin/). */
#include "common/names.h"
#include "fuzz/fuzz.h"

static void one_hostport(const char *s, unsigned flags) {
  struct names_hostport hp;
  ep_err err = {0};
  int rc = names_hostport_parse(s, flags, &hp, &err);
  fuzz_check_err(rc, &err, "names_hostport_parse");
  if (rc != 0 || !hp.has_port)
    return;
  FUZZ_TERMINATED(hp.host, "hostport");
  char buf[NAMES_HOST_MAX + 16];
  if (names_hostport_format(buf, sizeof buf, hp.host, hp.port, &err) != 0)
    fuzz_fail("\"%s\" parsed but does not format: %s", s, err.msg);
  struct names_hostport again;
  if (names_hostport_parse(buf, flags, &again, &err) != 0)
    fuzz_fail("\"%s\" formatted as \"%s\" does not re-parse: %s", s, buf, err.msg);
  if (strcmp(again.host, hp.host) != 0 || again.port != hp.port || again.ipv6 != hp.ipv6)
    fuzz_fail("\"%s\" changed in a round trip through \"%s\"", s, buf);
}

static void one_url(const char *s) {
  char out[NAMES_URL_MAX + 1], again[NAMES_URL_MAX + 1];
  ep_err err = {0};
  int rc = names_url_parse(s, out, sizeof out, &err);
  fuzz_check_err(rc, &err, "names_url_parse");
  if (rc != 0)
    return;
  if (names_url_parse(out, again, sizeof again, &err) != 0 || strcmp(out, again) != 0)
    fuzz_fail("URL \"%s\" normalised to \"%s\" is not a fixed point", s, out);
}

static void one_name(const char *s) {
  (void)names_host_valid(s);
  (void)names_registry_valid(s);
  (void)names_addr_valid(s);
  (void)names_node_id_valid(s);
  (void)names_locality_valid(s);
  (void)names_tag_valid(s);
  if (names_repo_valid(s) != names_repo_valid_n(s, strlen(s)))
    fuzz_fail("names_repo_valid and names_repo_valid_n disagree on \"%s\"", s);
  static const unsigned flags[] = {0, NAMES_PORT_OPTIONAL, NAMES_PORT_ZERO,
                                   NAMES_PORT_OPTIONAL | NAMES_IP_ONLY};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
    one_hostport(s, flags[i]);
  one_url(s);
}

static void one_secret(const uint8_t *data, size_t size) {
  char path[64], out[NAMES_SECRET_MAX + 1];
  int fd = fuzz_memfile(data, size, path, sizeof path);
  ep_err err = {0};
  int rc = names_secret_read(path, out, sizeof out, &err);
  fuzz_check_err(rc, &err, "names_secret_read");
  if (rc == 0) {
    size_t n = strnlen(out, sizeof out);
    if (n == 0 || n == sizeof out)
      fuzz_fail("secret of %zu bytes", n);
    for (size_t i = 0; i < n; i++)
      if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
        fuzz_fail("secret holds control byte 0x%02x", (unsigned char)out[i]);
  }
  close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *part[2];
  fuzz_split(data, size, part, 2);
  one_name(part[0]);
  fuzz_free_parts(part, 2);
  const uint8_t *nl = memchr(data, '\n', size);
  if (nl != NULL)
    one_secret(nl + 1, size - (size_t)(nl + 1 - data));
  return 0;
}
