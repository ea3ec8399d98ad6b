/* Address classes for the redirect policy. The IPv4 ranges are the special
 * purpose registry's (RFC 6890 and its updates) that are not global; every
 * IPv6 form that carries an IPv4 address is classified by that address, so
 * ::ffff:127.0.0.1 is loopback like 127.0.0.1. glibc's IN6_IS_ADDR_* macros
 * cover the IPv6 scopes; no Debian library classifies "private" ranges, so
 * the table is here. */
#include "plugin/upstream/netclass.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

struct v4_range {
  uint32_t net;
  unsigned bits;
  enum netclass cls;
};

#define V4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

static const struct v4_range v4_ranges[] = {
    {V4(0, 0, 0, 0), 8, NETCLASS_LOOPBACK}, /* "this host": connect() reaches the host itself */
    {V4(10, 0, 0, 0), 8, NETCLASS_PRIVATE},
    {V4(100, 64, 0, 0), 10, NETCLASS_PRIVATE}, /* carrier-grade NAT */
    {V4(127, 0, 0, 0), 8, NETCLASS_LOOPBACK},
    {V4(169, 254, 0, 0), 16, NETCLASS_LINKLOCAL},
    {V4(172, 16, 0, 0), 12, NETCLASS_PRIVATE},
    {V4(192, 0, 0, 0), 24, NETCLASS_OTHER}, /* IETF protocol assignments */
    {V4(192, 0, 2, 0), 24, NETCLASS_OTHER}, /* documentation */
    {V4(192, 88, 99, 0), 24, NETCLASS_OTHER},
    {V4(192, 168, 0, 0), 16, NETCLASS_PRIVATE},
    {V4(198, 18, 0, 0), 15, NETCLASS_PRIVATE}, /* benchmarking; our emulated localities */
    {V4(198, 51, 100, 0), 24, NETCLASS_OTHER},
    {V4(203, 0, 113, 0), 24, NETCLASS_OTHER},
    {V4(224, 0, 0, 0), 4, NETCLASS_OTHER}, /* multicast */
    {V4(240, 0, 0, 0), 4, NETCLASS_OTHER}, /* reserved, and the broadcast address */
};

static enum netclass classify_v4(uint32_t a) {
  for (size_t i = 0; i < sizeof v4_ranges / sizeof v4_ranges[0]; i++) {
    uint32_t mask = ~(uint32_t)0 << (32 - v4_ranges[i].bits);
    if ((a & mask) == v4_ranges[i].net)
      return v4_ranges[i].cls;
  }
  return NETCLASS_PUBLIC;
}

static uint32_t v4_at(const uint8_t *b) {
  return V4(b[0], b[1], b[2], b[3]);
}

static enum netclass classify_v6(const struct in6_addr *a) {
  const uint8_t *b = a->s6_addr;
  static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
  if (IN6_IS_ADDR_V4MAPPED(a) || memcmp(b, nat64, 12) == 0)
    return classify_v4(v4_at(b + 12));
  if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a))
    return NETCLASS_LOOPBACK;
  if (IN6_IS_ADDR_V4COMPAT(a)) /* ::a.b.c.d, deprecated */
    return classify_v4(v4_at(b + 12));
  if (b[0] == 0x20 && b[1] == 0x02) /* 6to4 */
    return classify_v4(v4_at(b + 2));
  if (IN6_IS_ADDR_LINKLOCAL(a))
    return NETCLASS_LINKLOCAL;
  if ((b[0] & 0xfe) == 0xfc || IN6_IS_ADDR_SITELOCAL(a))
    return NETCLASS_PRIVATE;
  if (IN6_IS_ADDR_MULTICAST(a))
    return NETCLASS_OTHER;
  /* Teredo 2001::/32 hides its client's address; 2001:db8::/32 is
   * documentation; 100::/64 discards. */
  if ((b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00) ||
      (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) ||
      (b[0] == 0x01 && b[1] == 0x00 && memcmp(b + 2, "\0\0\0\0\0\0", 6) == 0))
    return NETCLASS_OTHER;
  /* Only 2000::/3 is global unicast today. */
  return (b[0] & 0xe0) == 0x20 ? NETCLASS_PUBLIC : NETCLASS_OTHER;
}

enum netclass netclass_of_sockaddr(const struct sockaddr *sa, socklen_t len) {
  if (sa == NULL)
    return NETCLASS_OTHER;
  if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
    return classify_v4(ntohl(in->sin_addr.s_addr));
  }
  if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
    return classify_v6(&in6->sin6_addr);
  }
  return NETCLASS_OTHER;
}

bool netclass_of_text(const char *s, enum netclass *out) {
  struct in_addr a4;
  struct in6_addr a6;
  if (s == NULL)
    return false;
  if (inet_pton(AF_INET, s, &a4) == 1) {
    *out = classify_v4(ntohl(a4.s_addr));
    return true;
  }
  if (inet_pton(AF_INET6, s, &a6) == 1) {
    *out = classify_v6(&a6);
    return true;
  }
  return false;
}

const char *netclass_name(enum netclass c) {
  switch (c) {
  case NETCLASS_PUBLIC:
    return "public";
  case NETCLASS_LOOPBACK:
    return "loopback";
  case NETCLASS_PRIVATE:
    return "private";
  case NETCLASS_LINKLOCAL:
    return "link-local";
  case NETCLASS_OTHER:
    break;
  }
  return "reserved";
}
