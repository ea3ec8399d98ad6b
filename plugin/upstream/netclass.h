/* Which kind of network an IP address belongs to, for the upstream client's
 * redirect policy (issue 12): a registry's redirect, or its token realm, may
 * lead only to public addresses, or to the kind of network the registry
 * itself is on. Pure functions, no allocation, no DNS. */
#ifndef EP_PLUGIN_UPSTREAM_NETCLASS_H
#define EP_PLUGIN_UPSTREAM_NETCLASS_H

#include <stdbool.h>
#include <sys/socket.h>

/* Bits, so a policy is a mask of the classes it lets through. */
enum netclass {
  NETCLASS_PUBLIC = 1,   /* global unicast */
  NETCLASS_LOOPBACK = 2, /* 127/8, ::1, and "this host" (0/8, ::), which reach it too */
  NETCLASS_PRIVATE = 4, /* 10/8, 172.16/12, 192.168/16, 100.64/10, 198.18/15, fc00::/7, fec0::/10 */
  NETCLASS_LINKLOCAL = 8, /* 169.254/16 (cloud metadata), fe80::/10 */
  NETCLASS_OTHER = 16,    /* multicast, broadcast, reserved, documentation, Teredo: never */
};
#define NETCLASS_ALL 31u

/* The class of an IPv4 or IPv6 socket address. IPv4 embedded in IPv6
 * (::ffff:a.b.c.d, 64:ff9b::/96 NAT64, 2002::/16 6to4, ::a.b.c.d) is
 * classified as that IPv4 address. Any other family is NETCLASS_OTHER. */
enum netclass netclass_of_sockaddr(const struct sockaddr *sa, socklen_t len);
/* The class of an address written as text ("10.0.0.1", "::1", no brackets,
 * no zone). false when s is not an IP literal. */
bool netclass_of_text(const char *s, enum netclass *out);
/* "public", "loopback", ... for log lines. */
const char *netclass_name(enum netclass c);

#endif
