/* Names and grammars (see names.h for the rules and why each was chosen).
 *
 * Why hand-written scanners rather than <regex.h>: the grammars are tiny and
 * regular, a scanner over an explicit length is one bounded pass, cannot
 * fail at runtime and treats a NUL byte as just another invalid character.
 * IP literals are left to inet_pton, the libc's own reading of them. */
#include "common/names.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/escape.h"

static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

static bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || is_digit(c);
}

static bool is_alnum(char c) {
  return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool ipv4_n(const char *s, size_t n) {
  char buf[INET_ADDRSTRLEN];
  struct in_addr a;
  if (n == 0 || n >= sizeof buf)
    return false;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return inet_pton(AF_INET, buf, &a) == 1;
}

static bool ipv6_n(const char *s, size_t n) {
  char buf[INET6_ADDRSTRLEN];
  struct in6_addr a;
  if (n == 0 || n >= sizeof buf)
    return false;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return inet_pton(AF_INET6, buf, &a) == 1; /* also refuses "%zone" */
}

/* LDH labels of 1..63 characters, no hyphen at either end, at most 253 in
 * all. A name whose last label is numeric must be a dotted-quad IPv4. */
static bool dns_or_ipv4_n(const char *s, size_t n) {
  if (n == 0 || n > NAMES_DNS_MAX)
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
  return !last_numeric || ipv4_n(s, n);
}

/* "1".."65535" (or "0" when zero_ok): digits only, no leading zero. */
static bool port_parse(const char *p, bool zero_ok, uint16_t *out) {
  unsigned v = 0;
  size_t i = 0;
  if (p[0] == '0' && p[1] == '\0' && zero_ok) {
    *out = 0;
    return true;
  }
  if (p[0] == '0')
    return false;
  for (; p[i] != '\0'; i++) {
    if (!is_digit(p[i]) || i >= 5)
      return false;
    v = v * 10 + (unsigned)(p[i] - '0');
  }
  if (i == 0 || v < 1 || v > 65535)
    return false;
  *out = (uint16_t)v;
  return true;
}

/* Splits s into host (bracketed or not) and what follows; false if the
 * host part is invalid. *rest points at '\0' or ':'. */
static bool host_part(const char *s, size_t n, struct names_hostport *hp, const char **rest) {
  const char *h = s;
  size_t hlen;
  if (s[0] == '[') {
    const char *rb = memchr(s, ']', n);
    if (rb == NULL)
      return false;
    h = s + 1;
    hlen = (size_t)(rb - h);
    if (!ipv6_n(h, hlen))
      return false;
    hp->ipv6 = true;
    *rest = rb + 1;
  } else {
    const char *colon = memchr(s, ':', n);
    hlen = colon != NULL ? (size_t)(colon - s) : n;
    if (!dns_or_ipv4_n(s, hlen))
      return false;
    *rest = s + hlen;
  }
  memcpy(hp->host, h, hlen);
  hp->host[hlen] = '\0';
  return true;
}

static bool hostport_ok(const char *s, unsigned flags, struct names_hostport *hp) {
  memset(hp, 0, sizeof *hp);
  if (s == NULL)
    return false;
  size_t n = strnlen(s, NAMES_HOST_MAX + 1);
  const char *rest = NULL;
  if (n == 0 || n > NAMES_HOST_MAX || !host_part(s, n, hp, &rest))
    return false;
  if ((flags & NAMES_IP_ONLY) && !hp->ipv6 && !ipv4_n(hp->host, strlen(hp->host)))
    return false;
  if (*rest == '\0')
    return (flags & NAMES_PORT_OPTIONAL) != 0;
  if (*rest != ':' || !port_parse(rest + 1, (flags & NAMES_PORT_ZERO) != 0, &hp->port))
    return false;
  hp->has_port = true;
  return true;
}

int names_hostport_parse(const char *s, unsigned flags, struct names_hostport *out, ep_err *err) {
  struct names_hostport local;
  struct names_hostport *hp = out != NULL ? out : &local;
  if (hostport_ok(s, flags, hp))
    return 0;
  char q[EP_QUOTE_BUF];
  ep_quote(q, sizeof q, s);
  memset(hp, 0, sizeof *hp);
  return ep_error(err, EP_EINVAL, "\"%s\" is not %s%s with a port %d-65535", q,
                  (flags & NAMES_IP_ONLY) ? "ADDR" : "HOST",
                  (flags & NAMES_PORT_OPTIONAL) ? "[:PORT] or [IPv6][:PORT]"
                                                : ":PORT or [IPv6]:PORT",
                  (flags & NAMES_PORT_ZERO) ? 0 : 1);
}

int names_hostport_format(char *buf, size_t len, const char *host, unsigned port, ep_err *err) {
  bool v6 = strchr(host, ':') != NULL;
  int n = snprintf(buf, len, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", port);
  if (n < 0 || (size_t)n >= len) {
    if (len > 0)
      buf[0] = '\0';
    return ep_error(err, EP_ETOOBIG, "address %.64s:%u is longer than %zu bytes", host, port,
                    len > 0 ? len - 1 : 0);
  }
  return 0;
}

bool names_host_valid(const char *host) {
  struct names_hostport hp;
  return hostport_ok(host, NAMES_PORT_OPTIONAL, &hp) && !hp.has_port;
}

bool names_registry_valid(const char *hostport) {
  struct names_hostport hp;
  return hostport_ok(hostport, NAMES_PORT_OPTIONAL, &hp);
}

bool names_addr_valid(const char *addr) {
  if (addr == NULL)
    return false;
  size_t n = strnlen(addr, NAMES_HOST_MAX + 1);
  if (memchr(addr, ':', n) != NULL)
    return ipv6_n(addr, n);
  return dns_or_ipv4_n(addr, n);
}

bool names_repo_valid_n(const char *s, size_t n) {
  if (s == NULL || n == 0 || n > NAMES_REPO_MAX)
    return false;
  size_t i = 0;
  for (;;) {
    /* a run of [a-z0-9]+ starts here: at the start, after '/' or a separator */
    if (i >= n || !is_lower_alnum(s[i]))
      return false;
    while (i < n && is_lower_alnum(s[i]))
      i++;
    if (i == n)
      return true;
    if (s[i] == '/' || s[i] == '.') {
      i++;
    } else if (s[i] == '_') {
      i += i + 1 < n && s[i + 1] == '_' ? 2 : 1;
    } else if (s[i] == '-') {
      while (i < n && s[i] == '-')
        i++;
    } else {
      return false;
    }
  }
}

bool names_repo_valid(const char *name) {
  return name != NULL && names_repo_valid_n(name, strnlen(name, NAMES_REPO_MAX + 1));
}

bool names_tag_valid(const char *tag) {
  if (tag == NULL)
    return false;
  size_t n = strnlen(tag, NAMES_TAG_MAX + 1);
  if (n == 0 || n > NAMES_TAG_MAX || (!is_alnum(tag[0]) && tag[0] != '_'))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!is_alnum(tag[i]) && tag[i] != '_' && tag[i] != '.' && tag[i] != '-')
      return false;
  return true;
}

static bool id_valid(const char *id) {
  if (id == NULL)
    return false;
  size_t n = strnlen(id, NAMES_ID_MAX + 1);
  if (n == 0 || n > NAMES_ID_MAX)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!is_alnum(id[i]) && id[i] != '.' && id[i] != '_' && id[i] != '-')
      return false;
  return true;
}

bool names_node_id_valid(const char *id) {
  return id_valid(id);
}

bool names_locality_valid(const char *name) {
  return id_valid(name);
}

int names_url_parse(const char *url, char *out, size_t outsz, ep_err *err) {
  char q[EP_QUOTE_BUF], host[NAMES_HOST_MAX + 1];
  ep_quote(q, sizeof q, url);
  if (url == NULL)
    return ep_error(err, EP_EINVAL, "no URL");
  size_t skip = strncasecmp(url, "https://", 8) == 0  ? 8
                : strncasecmp(url, "http://", 7) == 0 ? 7
                                                      : 0;
  if (skip == 0)
    return ep_error(err, EP_EINVAL, "URL \"%s\" must start with http:// or https://", q);
  const char *h = url + skip;
  size_t hlen = strnlen(h, NAMES_HOST_MAX + 2);
  if (hlen > 0 && h[hlen - 1] == '/')
    hlen--;
  if (hlen > NAMES_HOST_MAX)
    return ep_error(err, EP_EINVAL, "URL \"%s\" is too long", q);
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  if (!names_registry_valid(host))
    return ep_error(err, EP_EINVAL,
                    "URL \"%s\" must be http(s)://host[:port] with a valid host[:port] and no "
                    "user, path, query or fragment",
                    q);
  if (skip + hlen >= outsz)
    return ep_error(err, EP_ETOOBIG, "URL \"%s\" is longer than %zu bytes", q,
                    outsz > 0 ? outsz - 1 : 0);
  snprintf(out, outsz, "%s%s", skip == 8 ? "https://" : "http://", host);
  return 0;
}
