/* Names and grammars, one home for each rule: hosts, host:port, repository
 * names, tags, node ids and locality names, registry URLs and secret files.
 * edgepulld, the coordinator and edgepullctl all check with these, so a name
 * one program accepts the others accept too.
 *
 * Every check is pure, bounded (strnlen against the grammar's maximum) and
 * rejects rather than repairs. Where the older copies disagreed, the answer
 * chosen is written next to the function:
 *  - host: DNS labels (LDH, 1-63 characters, no hyphen at either end, at most
 *    253 in all, a numeric last label must make a dotted-quad IPv4), or an
 *    IPv6 literal in brackets (inet_pton, no %zone). Underscores, "a..b",
 *    "999.1.1.1", "[]" and unvalidated bracket contents are refused
 *    everywhere (upstream.c and the coordinator's --broker took them).
 *  - port: 1-65535 in decimal digits, no sign, no space, no leading zero
 *    ("080" is refused; listen.c, the coordinator and ctl took it); 0 only
 *    with NAMES_PORT_ZERO (a listen address: the kernel picks).
 *  - IPv6 in a host:port must be bracketed ("::1:80" is refused; listen.c
 *    took it when the host part happened to parse).
 *  - repository: the OCI distribution grammar, at most 255 characters
 *    (upstream.c's looser character check is gone).
 *  - URL: http:// or https:// (scheme case-insensitive, written back in
 *    lower case), a host[:port], at most one trailing '/' (dropped); no
 *    userinfo, path, query or fragment.
 *  - secret file: see names_secret_read. */
#ifndef EP_COMMON_NAMES_H
#define EP_COMMON_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define NAMES_HOST_MAX 255    /* host[:port] as text, brackets included */
#define NAMES_DNS_MAX 253     /* a DNS name */
#define NAMES_REPO_MAX 255    /* repository name */
#define NAMES_TAG_MAX 128     /* tag */
#define NAMES_ID_MAX 63       /* node id, locality name */
#define NAMES_URL_MAX 263     /* "https://" + NAMES_HOST_MAX */
#define NAMES_SECRET_MAX 4096 /* bytes of a secret file */

/* A host without a port: DNS name, dotted-quad IPv4 or [IPv6]. */
bool names_host_valid(const char *host);
/* A host with an optional port, as containerd names a registry in ?ns=:
 * "docker.io", "127.0.0.1:5000", "[::1]:5000". */
bool names_registry_valid(const char *hostport);
/* The form a socket API takes: DNS name, IPv4 or a bare IPv6 literal (no
 * brackets, no port), e.g. --advertise-addr. */
bool names_addr_valid(const char *addr);

enum names_hostport_flags {
  NAMES_PORT_OPTIONAL = 1, /* "host" alone is accepted; port 0 / has_port false */
  NAMES_PORT_ZERO = 2,     /* port 0 is accepted (listen: the kernel picks one) */
  NAMES_IP_ONLY = 4,       /* the host must be an IPv4 or IPv6 literal */
};

struct names_hostport {
  char host[NAMES_HOST_MAX + 1]; /* without brackets: "::1", "docker.io" */
  uint16_t port;                 /* 0 when absent (or written as 0 with NAMES_PORT_ZERO) */
  bool has_port;
  bool ipv6; /* host was written in brackets */
};

/* Parses HOST:PORT or [IPV6]:PORT (and, by flags, HOST or [IPV6] alone).
 * -EP_EINVAL with a message quoting s when it is not one. out may be NULL
 * to only check. */
int names_hostport_parse(const char *s, unsigned flags, struct names_hostport *out, ep_err *err);
/* Writes host and port back as "host:port" or "[v6]:port" (brackets added
 * when host holds a ':'). -EP_ETOOBIG when it does not fit in len. */
int names_hostport_format(char *buf, size_t len, const char *host, unsigned port, ep_err *err);

/* Repository name, OCI distribution grammar:
 * [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*,
 * 1..NAMES_REPO_MAX characters. */
bool names_repo_valid(const char *name);
/* Same for exactly n bytes (a NUL byte inside is invalid). */
bool names_repo_valid_n(const char *name, size_t n);
/* Tag: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}. */
bool names_tag_valid(const char *tag);
/* Node id and locality name: [A-Za-z0-9._-]{1,63}; they go into MQTT
 * topics and sqlite rows. An option that may be unset checks "" itself. */
bool names_node_id_valid(const char *id);
bool names_locality_valid(const char *name);

/* Checks a registry URL (see the top of this file) and writes its normal
 * form, "scheme://host[:port]", into out. -EP_EINVAL naming the fault,
 * -EP_ETOOBIG when out is too small. */
int names_url_parse(const char *url, char *out, size_t outsz, ep_err *err);

/* Reads a secret (a password, the locality secret) from path:
 *  - symlinks are followed, the target must be a regular file;
 *  - at most NAMES_SECRET_MAX bytes, a larger file is -EP_ETOOBIG;
 *  - one trailing "\n" or "\r\n" is dropped; what remains must be non-empty
 *    and free of control characters and NUL bytes (so one line only);
 *  - a world-readable file is accepted with a warning in the log;
 *  - errors name the file: -EP_ENOTFOUND (missing), -EP_EIO, -EP_EINVAL,
 *    -EP_ETOOBIG (also when the secret does not fit in outsz).
 * The buffer used is wiped; the caller wipes out (explicit_bzero). */
int names_secret_read(const char *path, char *out, size_t outsz, ep_err *err);
/* The same rules for the file's first line, the rest ignored: the
 * coordinator's --password-file, documented so since its first release
 * (docs/coordinator.md). */
int names_secret_read_first_line(const char *path, char *out, size_t outsz, ep_err *err);

#endif
