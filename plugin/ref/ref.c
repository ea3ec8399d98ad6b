/* Request parsing for the registry endpoint: repository names, tags, hosts,
 * the pull routes and Range headers.
 *
 * Why hand-written scanners rather than <regex.h>: the grammars are tiny and
 * regular, a scanner over an explicit length is bounded (one pass, no
 * backtracking), allocation-free, cannot fail at runtime and treats a NUL
 * byte as just another invalid character. POSIX regcomp would allocate, need
 * error handling for compile failures and give no control over complexity.
 *
 * Routing splits the path at its last two '/': the last component is the
 * reference and the one before it must be "manifests" or "blobs"; everything
 * in between is the name. Names may therefore contain components called
 * "manifests" or "blobs" ("/v2/foo/blobs/manifests/latest" is manifest
 * "latest" of "foo/blobs"), and the upload, tag list, referrers and catalog
 * routes fall out as "not a pull route". All output goes into fixed buffers
 * in struct ref_target; every length is checked before copying. */
#include "plugin/ref/ref.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/escape.h"

#define REF_PATH_MAX 4096 /* longer request paths are rejected outright */
/* Smaller than EP_QUOTE_BUF: a request error stays under 400 bytes (the
 * escaper cuts with "..." at the buffer's end). */
#define REF_QUOTE_BUF 256

static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

/* Copies a validated host, lowercased; index.docker.io is Docker Hub. */
static void set_registry(struct ref_target *out, const char *host, size_t n) {
  for (size_t i = 0; i < n; i++)
    out->registry[i] = (char)tolower((unsigned char)host[i]);
  out->registry[n] = '\0';
  if (strcmp(out->registry, "index.docker.io") == 0)
    strcpy(out->registry, "docker.io");
}

static int host_error(ep_err *err, const char *what, const char *s, size_t n) {
  char q[REF_QUOTE_BUF];
  ep_escape(q, sizeof q, s, n, EP_ESCAPE_QUOTE);
  return ep_error(err, EP_EINVAL, "%s \"%s\" is not a valid registry host[:port]", what, q);
}

/* Chooses out->registry and returns the name part in *name, *nlen. */
static int pick_registry(const char *ns, const char *default_registry, const char **name,
                         size_t *nlen, struct ref_target *out, ep_err *err) {
  if (ns != NULL) {
    if (!names_registry_valid(ns))
      return host_error(err, "invalid ns:", ns, strnlen(ns, REF_PATH_MAX));
    set_registry(out, ns, strlen(ns));
    return 0;
  }
  const char *slash = memchr(*name, '/', *nlen);
  if (slash != NULL) {
    size_t hlen = (size_t)(slash - *name);
    /* HOST_PORT stands for HOST:PORT (a path component cannot hold ':');
     * a registry host never holds '_', so this cannot be a real name. */
    const char *us = memrchr(*name, '_', hlen);
    size_t blen = us != NULL ? (size_t)(us - *name) : hlen;
    bool port = us != NULL && us + 1 < slash && strspn(us + 1, "0123456789") == hlen - blen - 1;
    if (!port)
      blen = hlen;
    bool is_host = memchr(*name, '.', blen) != NULL || memchr(*name, ':', hlen) != NULL ||
                   (blen == 9 && memcmp(*name, "localhost", 9) == 0);
    if (is_host) {
      char host[NAMES_HOST_MAX + 1];
      if (hlen > NAMES_HOST_MAX)
        return host_error(err, "registry in path", *name, hlen);
      memcpy(host, *name, hlen);
      host[hlen] = '\0';
      if (port && memchr(*name, ':', hlen) == NULL)
        host[blen] = ':';
      if (!names_registry_valid(host))
        return host_error(err, "registry in path", *name, hlen);
      set_registry(out, host, hlen);
      *name = slash + 1;
      *nlen -= hlen + 1;
      return 0;
    }
  }
  const char *def = default_registry != NULL ? default_registry : "docker.io";
  if (!names_registry_valid(def))
    return host_error(err, "default registry", def, strnlen(def, REF_PATH_MAX));
  set_registry(out, def, strlen(def));
  return 0;
}

static int set_name(const char *name, size_t nlen, struct ref_target *out, ep_err *err) {
  char q[REF_QUOTE_BUF];
  size_t off = 0;
  if (nlen == 0)
    return ep_error(err, EP_EINVAL, "empty repository name");
  if (strcmp(out->registry, "docker.io") == 0 && memchr(name, '/', nlen) == NULL) {
    memcpy(out->name, "library/", 8);
    off = 8;
  }
  if (nlen > NAMES_REPO_MAX - off || !names_repo_valid_n(name, nlen)) {
    ep_escape(q, sizeof q, name, nlen, EP_ESCAPE_QUOTE);
    return ep_error(err, EP_EINVAL,
                    "invalid repository name \"%s\" (lowercase [a-z0-9] "
                    "components joined by '/', '.', '_', '__' or '-', at most %d chars)",
                    q, NAMES_REPO_MAX);
  }
  memcpy(out->name + off, name, nlen);
  out->name[off + nlen] = '\0';
  return 0;
}

static int pass_digest_error(int r, ep_err *err, const char *what) {
  if (err == NULL)
    return r;
  return ep_wrap(err, "%s", what);
}

static int set_reference(const char *ref, struct ref_target *out, ep_err *err) {
  char q[REF_QUOTE_BUF];
  if (out->kind == REF_BLOB || strchr(ref, ':') != NULL) {
    int r = digest_parse(ref, &out->digest, err);
    if (r < 0)
      return pass_digest_error(r, err, out->kind == REF_BLOB ? "blob digest" : "manifest digest");
    out->by_digest = true;
    return 0;
  }
  if (!names_tag_valid(ref)) {
    ep_escape(q, sizeof q, ref, strnlen(ref, REF_PATH_MAX), EP_ESCAPE_QUOTE);
    return ep_error(err, EP_EINVAL,
                    "invalid tag \"%s\" ([a-zA-Z0-9_][a-zA-Z0-9._-], at most %d chars)", q,
                    NAMES_TAG_MAX);
  }
  strcpy(out->tag, ref);
  return 0;
}

static int not_a_route(ep_err *err, const char *path, size_t plen) {
  char q[REF_QUOTE_BUF];
  ep_escape(q, sizeof q, path, plen, EP_ESCAPE_QUOTE);
  return ep_error(err, EP_ENOTFOUND, "not a pull route: \"%s\"", q);
}

int ref_parse_request(const char *path, const char *ns, const char *default_registry,
                      struct ref_target *out, ep_err *err) {
  memset(out, 0, sizeof *out);
  if (path == NULL)
    return ep_error(err, EP_EINVAL, "no request path");
  size_t plen = strnlen(path, REF_PATH_MAX + 1);
  if (plen > REF_PATH_MAX)
    return ep_error(err, EP_EINVAL, "request path longer than %d bytes", REF_PATH_MAX);
  if (strncmp(path, "/v2", 3) != 0 || (path[3] != '\0' && path[3] != '/'))
    return not_a_route(err, path, plen);
  const char *rest = path[3] == '/' ? path + 4 : path + 3;
  const char *end = path + plen;
  if (rest == end) {
    out->kind = REF_BASE;
    size_t zero = 0;
    return pick_registry(ns, default_registry, &rest, &zero, out, err);
  }
  const char *s1 = memrchr(rest, '/', (size_t)(end - rest));
  if (s1 == NULL)
    return not_a_route(err, path, plen); /* "/v2/_catalog" and the like */
  const char *s0 = memrchr(rest, '/', (size_t)(s1 - rest));
  const char *kind = s0 != NULL ? s0 + 1 : rest;
  size_t klen = (size_t)(s1 - kind);
  if (klen == 9 && memcmp(kind, "manifests", 9) == 0)
    out->kind = REF_MANIFEST;
  else if (klen == 5 && memcmp(kind, "blobs", 5) == 0)
    out->kind = REF_BLOB;
  else
    return not_a_route(err, path, plen); /* uploads, tags/list, referrers, ... */
  if (s1 + 1 == end)
    return ep_error(err, EP_EINVAL, "empty %s reference",
                    out->kind == REF_BLOB ? "blob" : "manifest");
  const char *name = rest;
  size_t nlen = s0 != NULL ? (size_t)(s0 - rest) : 0;
  if (nlen == 0)
    return ep_error(err, EP_EINVAL, "empty repository name");
  int r = pick_registry(ns, default_registry, &name, &nlen, out, err);
  if (r < 0)
    return r;
  r = set_name(name, nlen, out, err);
  if (r < 0)
    return r;
  return set_reference(s1 + 1, out, err);
}

/* Digits only (no sign, no space), overflow-checked. Returns chars used, 0
 * when there is no digit, -1 on overflow. */
static int parse_u64(const char *s, uint64_t *v) {
  uint64_t acc = 0;
  int i = 0;
  for (; is_digit(s[i]); i++) {
    unsigned d = (unsigned)(s[i] - '0');
    if (acc > (UINT64_MAX - d) / 10)
      return -1;
    acc = acc * 10 + d;
    if (i > 64)
      return -1;
  }
  *v = acc;
  return i;
}

static const char *skip_ows(const char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  return s;
}

static int range_malformed(ep_err *err, const char *header, const char *why) {
  char q[REF_QUOTE_BUF];
  ep_escape(q, sizeof q, header, strnlen(header, REF_PATH_MAX), EP_ESCAPE_QUOTE);
  return ep_error(err, EP_EINVAL, "malformed Range \"%s\": %s", q, why);
}

/* Syntax only: fills first/last, *suffix for "-n", *open for "a-". */
static int range_syntax(const char *header, uint64_t *a, uint64_t *b, bool *suffix, bool *open,
                        ep_err *err) {
  const char *p = skip_ows(header);
  if (strncasecmp(p, "bytes", 5) != 0)
    return range_malformed(err, header, "only the \"bytes\" unit is supported");
  p = skip_ows(p + 5);
  if (*p++ != '=')
    return range_malformed(err, header, "expected '=' after \"bytes\"");
  p = skip_ows(p);
  if (strchr(p, ',') != NULL)
    return range_malformed(err, header, "multiple ranges are not supported");
  *suffix = *p == '-';
  if (*suffix)
    p++;
  int n = parse_u64(p, *suffix ? b : a);
  if (n < 0)
    return range_malformed(err, header, "number too large");
  if (n == 0)
    return range_malformed(err, header, "expected a number");
  p += n;
  *open = false;
  if (!*suffix) {
    if (*p++ != '-')
      return range_malformed(err, header, "expected '-'");
    n = parse_u64(p, b);
    if (n < 0)
      return range_malformed(err, header, "number too large");
    *open = n == 0;
    p += n;
  }
  if (*skip_ows(p) != '\0')
    return range_malformed(err, header, "unexpected characters after the range");
  if (!*suffix && !*open && *b < *a)
    return range_malformed(err, header, "last byte before first byte");
  return 0;
}

int ref_parse_range(const char *header, uint64_t size, uint64_t *first, uint64_t *last,
                    ep_err *err) {
  uint64_t a = 0, b = 0;
  bool suffix = false, open = false;
  if (header == NULL)
    return ep_error(err, EP_EINVAL, "no Range header");
  int r = range_syntax(header, &a, &b, &suffix, &open, err);
  if (r < 0)
    return r;
  if (size == 0)
    return ep_error(err, EP_ERANGE, "range not satisfiable: the blob is empty");
  if (suffix) {
    if (b == 0)
      return ep_error(err, EP_ERANGE, "range not satisfiable: empty suffix range");
    *first = b >= size ? 0 : size - b;
    *last = size - 1;
    return 0;
  }
  if (a >= size)
    return ep_error(err, EP_ERANGE,
                    "range not satisfiable: first byte %llu is beyond the size %llu",
                    (unsigned long long)a, (unsigned long long)size);
  *first = a;
  *last = (open || b >= size) ? size - 1 : b;
  return 0;
}
