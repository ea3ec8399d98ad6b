/* Where the upstream client may connect (issue 12, point 3): the redirect
 * policy, beneath the transport (upstream_transport.c), which calls it for
 * every hop.
 *
 * The first hop of a request goes to the registry's configured endpoint
 * (the allowlist, in upstream_auth.c, has already said the registry may be
 * asked) and may be anywhere: a registry on 127.0.0.1 is fine. What the
 * registry hands us next — a redirect's Location, its token realm — may lead
 * only to a public address, or to the same class of network as the
 * registry's own (a registry on 127.0.0.1 may redirect to 127.0.0.1, one on
 * 10.0.0.5 to another private address), and never from https to http.
 * Otherwise any registry, or anyone who can make one redirect, could aim the
 * gateway at loopback services, the LAN or the cloud metadata address.
 *
 * Why at the socket and not on the URL: a name is resolved by curl, and
 * could resolve to a public address when we look and to 127.0.0.1 when curl
 * connects (DNS rebinding). So the address is checked where curl uses it:
 *  - CURLOPT_OPENSOCKETFUNCTION sees each address curl is about to connect
 *    to and refuses a forbidden one before a packet is sent (curl then tries
 *    the name's next address);
 *  - CURLOPT_PREREQFUNCTION sees the address the connection actually has,
 *    also for a connection curl reuses from its cache (one opened for
 *    another registry, or before a redirect), and aborts the request
 *    before it is sent. On the first hop it learns the registry's class.
 * An IP literal in a redirect is also refused up front, which holds even
 * when curl talks through an HTTP proxy (then the sockets see only the
 * proxy; a name behind a proxy is the proxy's to resolve and is not
 * checked — docs/security.md). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "plugin/upstream/upstream_int.h"

static bool allowed(const struct upstream_xfer *x, enum netclass c) {
  return (x->hop_allow & (unsigned)c) != 0;
}

static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
  struct upstream_xfer *x = ud;
  if (purpose != CURLSOCKTYPE_IPCXN)
    return CURL_SOCKET_BAD;
  enum netclass c = netclass_of_sockaddr(&a->addr, a->addrlen);
  if (!allowed(x, c)) {
    char ip[INET6_ADDRSTRLEN + 1] = "?";
    const void *p = a->family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)&a->addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)&a->addr)->sin_addr;
    inet_ntop(a->family, p, ip, sizeof ip);
    x->refused = true;
    ep_error(&x->refused_err, EP_EDENIED,
             "%s: a redirect or realm led to %s address %s; refused (only public "
             "addresses, or the registry's own kind of network)",
             x->req->what, netclass_name(c), ip);
    return CURL_SOCKET_BAD;
  }
  int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static int prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port) {
  struct upstream_xfer *x = ud;
  (void)local_ip;
  (void)primary_port;
  (void)local_port;
  enum netclass c = NETCLASS_OTHER;
  if (!netclass_of_text(primary_ip, &c))
    c = NETCLASS_OTHER;
  if (x->hop_allow == NETCLASS_ALL) { /* the registry itself */
    x->origin_class = (unsigned)c;
    return CURL_PREREQFUNC_OK;
  }
  if (allowed(x, c))
    return CURL_PREREQFUNC_OK;
  char shown[INET6_ADDRSTRLEN + 1];
  ep_escape(shown, sizeof shown, primary_ip, strnlen(primary_ip, INET6_ADDRSTRLEN), EP_ESCAPE_MASK);
  if (x->abort_code == 0) {
    x->abort_code = EP_EDENIED;
    ep_error(&x->abort_err, EP_EDENIED,
             "%s: connected to %s address %s after a redirect or realm; refused", x->req->what,
             netclass_name(c), shown);
  }
  return CURL_PREREQFUNC_ABORT;
}

int upstream_policy_setopt(CURL *h, struct upstream_xfer *x) {
  CURLcode c = curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  if (c == CURLE_OK)
    c = curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, x);
  if (c == CURLE_OK)
    c = curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, prereq);
  if (c == CURLE_OK)
    c = curl_easy_setopt(h, CURLOPT_PREREQDATA, x);
  return c == CURLE_OK ? 0 : -1;
}

bool upstream_url_https(const char *url) {
  return strncasecmp(url, "https://", 8) == 0;
}

int upstream_policy_check_url(const struct upstream_xfer *x, const char *url, bool from_https,
                              ep_err *err) {
  const char *what = x->req->what;
  if (from_https && !upstream_url_https(url))
    return ep_error(err, EP_EDENIED, "%s: a redirect or realm from https to http; refused", what);
  CURLU *cu = curl_url();
  char *host = NULL;
  int rc = 0;
  if (cu == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  if (curl_url_set(cu, CURLUPART_URL, url, 0) != CURLUE_OK ||
      curl_url_get(cu, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
    rc = ep_error(err, EP_EUPSTREAM, "%s: a redirect or realm to an invalid URL", what);
  } else {
    size_t n = strlen(host);
    char lit[INET6_ADDRSTRLEN + 1];
    enum netclass c;
    if (host[0] == '[' && n > 2 && n - 2 < sizeof lit)
      snprintf(lit, sizeof lit, "%.*s", (int)(n - 2), host + 1);
    else
      snprintf(lit, sizeof lit, "%s", n < sizeof lit ? host : "");
    if (netclass_of_text(lit, &c) && !allowed(x, c))
      rc = ep_error(err, EP_EDENIED, "%s: a redirect or realm to %s address %s; refused", what,
                    netclass_name(c), lit);
  }
  curl_free(host);
  curl_url_cleanup(cu);
  return rc;
}
