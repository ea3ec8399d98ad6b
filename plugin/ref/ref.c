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

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define REF_PATH_MAX 4096 /* longer request paths are rejected outright */
#define REF_QUOTE_SHOW 60 /* input bytes shown in an error message */
#define REF_QUOTE_BUF 256

static bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c) {
  return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

void ref_quote(char *out, size_t outsz, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  if (outsz == 0)
    return;
  if (s == NULL) {
    snprintf(out, outsz, "(null)");
    return;
  }
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    bool plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
    size_t need = plain ? 1 : 4;
    /* keep room for "..." and the NUL */
    if (i >= REF_QUOTE_SHOW || o + need + 4 > outsz) {
      for (int k = 0; k < 3 && o + 1 < outsz; k++)
        out[o++] = '.';
      break;
    }
    if (plain) {
      out[o++] = (char)c;
    } else {
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  out[o] = '\0';
}

bool ref_name_valid_n(const char *s, size_t n) {
  if (s == NULL || n == 0 || n > REF_NAME_MAX)
    return false;
  size_t i = 0;
  for (;;) {
    /* here a run of [a-z0-9]+ must start: after start, '/' or a separator */
    if (i >= n || !is_lower_alnum(s[i]))
      return false;
    while (i < n && is_lower_alnum(s[i]))
      i++;
    if (i == n)
      return true;
    switch (s[i]) {
    case '/':
    case '.':
      i++;
      break;
    case '_':
      i++;
      if (i < n && s[i] == '_')
        i++;
      break;
    case '-':
      while (i < n && s[i] == '-')
        i++;
      break;
    default:
      return false;
    }
  }
}

bool ref_name_valid(const char *name) {
  if (name == NULL)
    return false;
  return ref_name_valid_n(name, strnlen(name, REF_NAME_MAX + 1));
}

bool ref_tag_valid(const char *tag) {
  if (tag == NULL)
    return false;
  size_t n = strnlen(tag, REF_TAG_MAX + 1);
  if (n == 0 || n > REF_TAG_MAX)
    return false;
  if (!is_alnum(tag[0]) && tag[0] != '_')
    return false;
  for (size_t i = 1; i < n; i++)
    if (!is_alnum(tag[i]) && tag[i] != '_' && tag[i] != '.' && tag[i] != '-')
      return false;
  return true;
}

/* "1".."65535", digits only, no leading zero, nothing after. */
static bool port_valid(const char *p) {
  unsigned v = 0;
  size_t i = 0;
  if (p[0] == '0')
    return false;
  for (; p[i] != '\0'; i++) {
    if (!is_digit(p[i]) || i >= 5)
      return false;
    v = v * 10 + (unsigned)(p[i] - '0');
  }
  return i > 0 && v >= 1 && v <= 65535;
}

/* LDH labels of 1..63 chars, no hyphen at either end, total <= 253. A name
 * whose last label is numeric must be a dotted-quad IPv4 address. */
static bool dns_or_ipv4_valid(const char *s, size_t n) {
  if (n == 0 || n > 253)
    return false;
  size_t start = 0;
  bool last_numeric = true;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && s[i] != '.') {
      if (!is_alnum(s[i]) && s[i] != '-')
        return false;
      continue;
    }
    size_t llen = i - start;
    if (llen == 0 || llen > 63 || s[start] == '-' || s[i - 1] == '-')
      return false;
    last_numeric = true;
    for (size_t k = start; k < i; k++)
      if (!is_digit(s[k]))
        last_numeric = false;
    start = i + 1;
  }
  if (!last_numeric)
    return true;
  char buf[16];
  struct in_addr a;
  if (n >= sizeof buf)
    return false;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return inet_pton(AF_INET, buf, &a) == 1;
}

bool ref_host_valid(const char *host) {
  if (host == NULL)
    return false;
  size_t n = strnlen(host, REF_HOST_MAX + 1);
  if (n == 0 || n > REF_HOST_MAX)
    return false;
  if (host[0] == '[') {
    const char *rb = memchr(host, ']', n);
    if (rb == NULL)
      return false;
    size_t alen = (size_t)(rb - host - 1);
    char buf[INET6_ADDRSTRLEN];
    struct in6_addr a;
    if (alen == 0 || alen >= sizeof buf)
      return false;
    memcpy(buf, host + 1, alen);
    buf[alen] = '\0';
    if (inet_pton(AF_INET6, buf, &a) != 1) /* also rejects "%zone" */
      return false;
    if (rb[1] == '\0')
      return true;
    return rb[1] == ':' && port_valid(rb + 2);
  }
  const char *colon = memchr(host, ':', n);
  if (colon != NULL && !port_valid(colon + 1))
    return false;
  return dns_or_ipv4_valid(host, colon ? (size_t)(colon - host) : n);
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
  ref_quote(q, sizeof q, s, n);
  return ep_error(err, EP_EINVAL, "%s \"%s\" is not a valid registry host[:port]", what, q);
}

/* Chooses out->registry and returns the name part in *name, *nlen. */
static int pick_registry(const char *ns, const char *default_registry, const char **name,
                         size_t *nlen, struct ref_target *out, ep_err *err) {
  if (ns != NULL) {
    if (!ref_host_valid(ns))
      return host_error(err, "invalid ns:", ns, strnlen(ns, REF_PATH_MAX));
    set_registry(out, ns, strlen(ns));
    return 0;
  }
  const char *slash = memchr(*name, '/', *nlen);
  if (slash != NULL) {
    size_t hlen = (size_t)(slash - *name);
    bool is_host = memchr(*name, '.', hlen) != NULL || memchr(*name, ':', hlen) != NULL ||
                   (hlen == 9 && memcmp(*name, "localhost", 9) == 0);
    if (is_host) {
      char host[REF_HOST_MAX + 1];
      if (hlen > REF_HOST_MAX)
        return host_error(err, "registry in path", *name, hlen);
      memcpy(host, *name, hlen);
      host[hlen] = '\0';
      if (!ref_host_valid(host))
        return host_error(err, "registry in path", *name, hlen);
      set_registry(out, host, hlen);
      *name = slash + 1;
      *nlen -= hlen + 1;
      return 0;
    }
  }
  const char *def = default_registry != NULL ? default_registry : "docker.io";
  if (!ref_host_valid(def))
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
  if (nlen > REF_NAME_MAX - off || !ref_name_valid_n(name, nlen)) {
    ref_quote(q, sizeof q, name, nlen);
    return ep_error(err, EP_EINVAL,
                    "invalid repository name \"%s\" (lowercase [a-z0-9] "
                    "components joined by '/', '.', '_', '__' or '-', at most %d chars)",
                    q, REF_NAME_MAX);
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
  if (!ref_tag_valid(ref)) {
    ref_quote(q, sizeof q, ref, strnlen(ref, REF_PATH_MAX));
    return ep_error(err, EP_EINVAL,
                    "invalid tag \"%s\" ([a-zA-Z0-9_][a-zA-Z0-9._-], at most %d chars)", q,
                    REF_TAG_MAX);
  }
  strcpy(out->tag, ref);
  return 0;
}

static int not_a_route(ep_err *err, const char *path, size_t plen) {
  char q[REF_QUOTE_BUF];
  ref_quote(q, sizeof q, path, plen);
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
  ref_quote(q, sizeof q, header, strnlen(header, REF_PATH_MAX));
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
