/* edgepulld's configuration, driven by one static table.
 *
 * Each option is declared once in cfg_options[]: its name (both the
 * `--name` flag and the `name =` key in [edgepulld]), type, where it lives in
 * struct edgepulld_config, bounds, default, a value check and the help text.
 * The command-line parser, the INI handler, config_defaults(),
 * config_validate() and config_usage() all walk that table, so a new option
 * is one line and cannot be parsed differently in two places.
 *
 * The command line is read in two passes: the first only tokenizes (so
 * errors and --help come before any file is touched) and collects --config;
 * the files are loaded; the second pass applies the flags on top, so a flag
 * wins over the file wherever it stands.
 *
 * Files are parsed by libinih through our own line reader. The reader counts
 * lines (the packaged libinih does not pass line numbers to handlers),
 * rejects NUL bytes and over-long lines (libinih would silently split them
 * into two lines), strips indentation (which libinih would otherwise take as
 * a continuation of the previous value) and tracks the current section in
 * full (libinih truncates section names to 50 bytes). Every value is bounded
 * by its field size and may not hold control characters. */
#include "plugin/config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/escape.h"
#include "common/log.h"
#include "common/names.h"
#include "common/size.h"
#include "plugin/ref/ref.h"

#define CFG_FILE_MAX (1u << 20) /* a config file larger than this is refused */
#define CFG_WHERE_MAX 1200      /* "file:line: key NAME" */

enum cfg_type {
  CFG_STRING,
  CFG_BOOL,
  CFG_INT,
  CFG_REGISTRY,
  CFG_ALLOW,
  CFG_CONFIG,
  CFG_HELP,
  CFG_VERSION
};

/* How a string value is checked, at set time and again by config_validate. */
enum cfg_check {
  CHK_NONE,
  CHK_ABSPATH,       /* non-empty absolute path */
  CHK_ADDR,          /* ADDR:PORT or [v6]:PORT */
  CHK_ADDR_OR_EMPTY, /* same, or "" for off */
  CHK_HOST,          /* host[:port] */
  CHK_IDENT,         /* [A-Za-z0-9._-]{0,63}: goes into MQTT topics */
  CHK_ABSPATH_OR_EMPTY,
  CHK_HOSTNAME_OR_EMPTY, /* a host name or IP address, no port, or "" */
  CHK_RATE_OR_EMPTY,     /* bytes per second as common/size.h reads them, or "" */
  CHK_SIZE_OR_EMPTY,     /* bytes as common/size.h reads them, or "" */
};

struct cfg_option {
  const char *name;
  const char *group;
  enum cfg_type type;
  size_t off;
  size_t size; /* string buffer size */
  long min, max;
  enum cfg_check check;
  const char *def; /* default, as it would be written in the file; NULL = empty */
  const char *metavar;
  const char *help;
};

#define FIELD_SIZE(f) sizeof(((struct edgepulld_config *)0)->f)
#define OPT_STR(n, g, f, chk, d, mv, h)                                                            \
  { n, g, CFG_STRING, offsetof(struct edgepulld_config, f), FIELD_SIZE(f), 0, 0, chk, d, mv, h }
#define OPT_BOOL(n, g, f, h)                                                                       \
  { n, g, CFG_BOOL, offsetof(struct edgepulld_config, f), 0, 0, 1, CHK_NONE, "false", NULL, h }
#define OPT_INT(n, g, f, lo, hi, d, mv, h)                                                         \
  { n, g, CFG_INT, offsetof(struct edgepulld_config, f), 0, lo, hi, CHK_NONE, d, mv, h }
#define OPT_SPECIAL(n, g, t, mv, h)                                                                \
  { n, g, t, 0, 0, 0, 0, CHK_NONE, NULL, mv, h }

static const char G_LOCAL[] = "Local endpoint and store";
static const char G_PEER[] = "Peers and locality";
static const char G_UP[] = "Upstream registries";
static const char G_BOUND[] = "Connection and fetch bounds";
static const char G_GEN[] = "General";

static const struct cfg_option cfg_options[] = {
    OPT_STR("state-dir", G_LOCAL, state_dir, CHK_ABSPATH, "/var/lib/edgepull", "DIR",
            "blob store and index.db (absolute path)"),
    OPT_STR("listen", G_LOCAL, listen, CHK_ADDR, "127.0.0.1:5050", "ADDR:PORT",
            "mirror endpoint for the local runtime (loopback)"),
    OPT_STR("metrics-listen", G_LOCAL, metrics_listen, CHK_ADDR_OR_EMPTY, NULL, "ADDR:PORT",
            "also serve GET /metrics (Prometheus) here; empty = on --listen only"),
    OPT_INT("max-connections", G_LOCAL, max_connections, 1, 16384, "256", "N",
            "concurrent connections per endpoint (raises RLIMIT_NOFILE to fit)"),
    OPT_INT("header-timeout", G_BOUND, header_timeout_s, 1, 300, "15", "SECONDS",
            "a request's headers must be complete this long after it may start"),
    OPT_INT("local-max-per-ip", G_BOUND, local_max_per_ip, 0, 16384, "0", "N",
            "connections per client address on --listen; 0 = --max-connections"),
    OPT_INT("peer-max-per-ip", G_BOUND, peer_max_per_ip, 0, 16384, "32", "N",
            "connections per client address on --peer-listen; 0 = --max-connections"),
    OPT_INT("max-fetches", G_BOUND, max_fetches, 1, 4096, "64", "N",
            "concurrent fetch jobs; past it a new blob answers 503"),
    OPT_INT("fetch-orphan-grace", G_BOUND, fetch_orphan_grace_s, 1, 3600, "30", "SECONDS",
            "abandon a fetch every reader left this long ago (partial kept)"),
    OPT_INT("partial-max-age", G_BOUND, partial_max_age_s, 60, 2592000, "86400", "SECONDS",
            "drop partials not written for this long (and beyond 2 x --max-fetches)"),
    OPT_STR("store-max", G_LOCAL, store_max, CHK_SIZE_OR_EMPTY, "0", "SIZE",
            "disk GC: keep the store's blobs within this (2G, 500M; 0 = no quota)"),
    OPT_STR("store-min-free", G_LOCAL, store_min_free, CHK_SIZE_OR_EMPTY, NULL, "SIZE",
            "disk GC: keep this much free on the store's disk (default: 5 % of it, at most "
            "512M; 0 = off)"),
    OPT_STR("peer-listen", G_PEER, peer_listen, CHK_ADDR_OR_EMPTY, NULL, "ADDR:PORT",
            "peer endpoint other nodes pull from; empty = off"),
    OPT_BOOL("gateway", G_PEER, gateway, "this node is the locality's gateway (uplink, tags)"),
    OPT_BOOL("upstream-fallback", G_PEER, upstream_fallback,
             "non-gateway node may use upstream if no peer can"),
    OPT_STR("broker", G_PEER, broker, CHK_ADDR_OR_EMPTY, NULL, "HOST:PORT",
            "MQTT broker of the locality; empty = standalone"),
    OPT_STR("locality", G_PEER, locality, CHK_IDENT, NULL, "NAME",
            "locality name, required with --broker"),
    OPT_STR("node-id", G_PEER, node_id, CHK_IDENT, NULL, "ID", "node id (default: hostname)"),
    OPT_STR("gateway-id", G_PEER, gateway_id, CHK_IDENT, NULL, "ID",
            "the locality's gateway (default: as the coordinator names it)"),
    OPT_STR("broker-username", G_PEER, broker_username, CHK_NONE, NULL, "NAME",
            "MQTT username; empty = anonymous"),
    OPT_STR("broker-password-file", G_PEER, broker_password_file, CHK_ABSPATH_OR_EMPTY, NULL,
            "FILE", "file holding the MQTT password (absolute path, read at start)"),
    OPT_STR("broker-ca-file", G_PEER, broker_ca_file, CHK_ABSPATH_OR_EMPTY, NULL, "FILE",
            "CA bundle (PEM): connect to the broker over TLS"),
    OPT_STR("advertise-addr", G_PEER, advertise_addr, CHK_HOSTNAME_OR_EMPTY, NULL, "HOST",
            "address peers reach this node at (default: host of --peer-listen)"),
    OPT_INT("link-mbps", G_PEER, link_mbps, 1, 1000000, "100", "MBIT/S",
            "advertised LAN link speed"),
    OPT_INT("keepalive", G_PEER, keepalive_s, 5, 600, "10", "SECONDS",
            "MQTT keepalive: how fast the broker notices this node is gone"),
    OPT_INT("heartbeat", G_PEER, heartbeat_s, 1, 3600, "30", "SECONDS",
            "republish this node's state this often"),
    OPT_STR("peer-secret-file", G_PEER, peer_secret_file, CHK_ABSPATH_OR_EMPTY, NULL, "FILE",
            "locality secret the peer endpoint requires and peer requests send"),
    OPT_STR("peer-ca", G_PEER, peer_ca, CHK_ABSPATH_OR_EMPTY, NULL, "FILE",
            "locality CA (PEM) peer certificates must chain to: mutual TLS with peers"),
    OPT_STR("peer-cert", G_PEER, peer_cert, CHK_ABSPATH_OR_EMPTY, NULL, "FILE",
            "this node's certificate (PEM, names --node-id): edgepullctl ca issue"),
    OPT_STR("peer-key", G_PEER, peer_key, CHK_ABSPATH_OR_EMPTY, NULL, "FILE",
            "this node's private key (PEM) for --peer-cert"),
    OPT_BOOL("peer-insecure", G_PEER, peer_insecure,
             "plain HTTP between peers, unauthenticated and readable (tests only)"),
    OPT_INT("peer-stall-timeout", G_PEER, peer_stall_timeout_s, 1, 300, "5", "SECONDS",
            "abandon a peer that sends nothing for this long (and its connect)"),
    OPT_INT("fetch-budget", G_PEER, fetch_budget_s, 1, 3600, "60", "SECONDS",
            "a fetch that lost its source tries others this long without a byte"),
    OPT_INT("peer-min-rate", G_PEER, peer_min_rate_kbs, 0, 1000000, "16", "KB/S",
            "drop a peer averaging less over 2 stall timeouts (0 = no check)"),
    OPT_INT("max-blob-size", G_PEER, max_blob_mb, 1, 16777216, "16384", "MB",
            "cap on a blob whose size no manifest, index or header gives"),
    OPT_STR("peer-max-rate", G_PEER, peer_max_rate, CHK_RATE_OR_EMPTY, "0", "RATE",
            "cap on all answers served to peers together, bytes/s (20M, 2.5MiB; 0 = off)"),
    OPT_STR("containerd-address", G_PEER, containerd_address, CHK_ABSPATH,
            "/run/containerd/containerd.sock", "SOCKET",
            "containerd's socket, for deploys with --import containerd"),
    OPT_STR("docker-socket", G_PEER, docker_socket, CHK_ABSPATH, "/var/run/docker.sock", "SOCKET",
            "Docker Engine API socket, for deploys with --import docker"),
    OPT_STR("snapshotter-socket", G_LOCAL, snapshotter_socket, CHK_ABSPATH_OR_EMPTY, NULL, "PATH",
            "serve containerd's snapshotter API on this unix socket; empty = off"),
    OPT_STR("snapshotter-root", G_LOCAL, snapshotter_root, CHK_ABSPATH_OR_EMPTY, NULL, "DIR",
            "snapshot store (default: <state-dir>/snapshots)"),
    OPT_STR("default-registry", G_UP, default_registry, CHK_HOST, "docker.io", "HOST",
            "upstream when a request names none"),
    OPT_SPECIAL("registry", G_UP, CFG_REGISTRY, "HOST=URL",
                "endpoint of HOST: http(s)://host[:port]; repeatable"),
    OPT_SPECIAL("allow-registry", G_UP, CFG_ALLOW, "HOST",
                "also fetch from HOST[:port] (at https://HOST); repeatable"),
    OPT_BOOL("local-any-registry", G_UP, local_any_registry,
             "the local endpoint may fetch from any registry (peers: never)"),
    OPT_STR("ca-file", G_UP, ca_file, CHK_NONE, NULL, "FILE", "extra CA bundle for upstreams"),
    OPT_INT("tag-ttl", G_UP, tag_ttl_s, 0, 604800, "300", "SECONDS",
            "trust a resolved tag this long"),
    OPT_STR("upstream-max-rate", G_UP, upstream_max_rate, CHK_RATE_OR_EMPTY, "0", "RATE",
            "cap on all transfers from registries together, bytes/s (20M, 2.5MiB; 0 = off)"),
    OPT_INT("connect-timeout", G_UP, connect_timeout_s, 1, 300, "10", "SECONDS",
            "upstream connect timeout"),
    OPT_SPECIAL("config", G_GEN, CFG_CONFIG, "FILE",
                "INI file loaded before the other flags (flags win)"),
    OPT_SPECIAL("help", G_GEN, CFG_HELP, NULL, "print this help and exit"),
    OPT_SPECIAL("version", G_GEN, CFG_VERSION, NULL, "print the version and exit"),
};

#define CFG_NOPTIONS (sizeof cfg_options / sizeof cfg_options[0])

static const struct cfg_option *opt_find(const char *name, size_t len) {
  for (size_t i = 0; i < CFG_NOPTIONS; i++)
    if (strlen(cfg_options[i].name) == len && memcmp(cfg_options[i].name, name, len) == 0)
      return &cfg_options[i];
  return NULL;
}

static bool flag_only(const struct cfg_option *o) {
  return o->type == CFG_CONFIG || o->type == CFG_HELP || o->type == CFG_VERSION;
}

static bool has_ctl(const char *s) {
  for (; *s != '\0'; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return true;
  return false;
}

/* An optional node id: "" (unset) or names_node_id_valid. */
static bool ident_valid(const char *s) {
  return s[0] == '\0' || names_node_id_valid(s);
}

static const char *check_string(enum cfg_check chk, const char *v) {
  switch (chk) {
  case CHK_NONE:
    return NULL;
  case CHK_ABSPATH:
    return v[0] == '/' ? NULL : "must be an absolute path";
  case CHK_ADDR_OR_EMPTY:
    if (v[0] == '\0')
      return NULL;
    /* fall through */
  case CHK_ADDR:
    return names_hostport_parse(v, 0, NULL, NULL) == 0
               ? NULL
               : "must be ADDR:PORT or [IPv6]:PORT with a port 1-65535";
  case CHK_HOST:
    return names_registry_valid(v) ? NULL : "must be a registry host[:port]";
  case CHK_IDENT:
    return ident_valid(v) ? NULL : "must be 0-63 characters of [A-Za-z0-9._-]";
  case CHK_ABSPATH_OR_EMPTY:
    return v[0] == '\0' || v[0] == '/' ? NULL : "must be an absolute path";
  case CHK_HOSTNAME_OR_EMPTY:
    return v[0] == '\0' || names_addr_valid(v) ? NULL : "must be a host name or an IP address";
  case CHK_RATE_OR_EMPTY: {
    uint64_t rate;
    return v[0] == '\0' || ep_size_parse(v, &rate) == 0
               ? NULL
               : "must be bytes per second such as 4M, 2.5MiB or 500k (0 = off)";
  }
  case CHK_SIZE_OR_EMPTY: {
    uint64_t size;
    return v[0] == '\0' || ep_size_parse(v, &size) == 0
               ? NULL
               : "must be a size such as 2G, 500M or 1.5GiB (0 = off)";
  }
  }
  return NULL;
}

static int parse_bool(const char *v, bool *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(v, yes[i]) == 0)
      return *out = true, 0;
    if (strcasecmp(v, no[i]) == 0)
      return *out = false, 0;
  }
  return -1;
}

/* Decimal digits only, no sign, no spaces, within [min, max]. */
static int parse_int(const char *v, long min, long max, int *out) {
  long acc = 0;
  if (*v == '\0')
    return -1;
  for (; *v != '\0'; v++) {
    if (*v < '0' || *v > '9')
      return -1;
    acc = acc * 10 + (*v - '0');
    if (acc > max)
      return -2;
  }
  if (acc < min)
    return -2;
  *out = (int)acc;
  return 0;
}

/* Applies one value; `where` names the flag or file:line and key. */
static int opt_set(struct edgepulld_config *c, const struct cfg_option *o, const char *value,
                   const char *where, ep_err *err) {
  char q[128];
  char *field = (char *)c + o->off;
  int r;
  if (o->type == CFG_REGISTRY || o->type == CFG_ALLOW) {
    r = o->type == CFG_REGISTRY ? config_add_registry_mapping(c, value, err)
                                : config_allow_registry(c, value, err);
    if (r < 0 && err != NULL)
      return ep_wrap(err, "%s", where);
    return r;
  }
  ep_quote(q, sizeof q, value);
  if (has_ctl(value))
    return ep_error(err, EP_EINVAL, "%s: value \"%s\" contains control characters", where, q);
  switch (o->type) {
  case CFG_STRING: {
    if (strlen(value) >= o->size)
      return ep_error(err, EP_EINVAL, "%s: value \"%s\" is longer than %zu characters", where, q,
                      o->size - 1);
    const char *why = check_string(o->check, value);
    if (why != NULL)
      return ep_error(err, EP_EINVAL, "%s: value \"%s\" %s", where, q, why);
    memcpy(field, value, strlen(value) + 1);
    return 0;
  }
  case CFG_BOOL:
    if (parse_bool(value, (bool *)(void *)field) < 0)
      return ep_error(err, EP_EINVAL, "%s: value \"%s\" is not a boolean (true/false/yes/no/1/0)",
                      where, q);
    return 0;
  case CFG_INT:
    r = parse_int(value, o->min, o->max, (int *)(void *)field);
    if (r == -1)
      return ep_error(err, EP_EINVAL, "%s: value \"%s\" is not a decimal integer", where, q);
    if (r < 0)
      return ep_error(err, EP_EINVAL, "%s: value \"%s\" is out of range %ld..%ld", where, q, o->min,
                      o->max);
    return 0;
  default:
    return ep_error(err, EP_EINVAL, "%s: only valid on the command line", where);
  }
}

void config_defaults(struct edgepulld_config *c) {
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < CFG_NOPTIONS; i++)
    if (cfg_options[i].def != NULL && !flag_only(&cfg_options[i]))
      opt_set(c, &cfg_options[i], cfg_options[i].def, "default", NULL);
  char host[256];
  if (gethostname(host, sizeof host) == 0) {
    host[sizeof host - 1] = '\0';
    if (strlen(host) < sizeof c->node_id && ident_valid(host))
      strcpy(c->node_id, host);
  }
}

/* ---- registries ---- */

static int registry_find_or_add(struct edgepulld_config *c, const char *host,
                                struct config_registry **out, ep_err *err) {
  char lower[sizeof c->registries[0].host];
  size_t n = strlen(host);
  for (size_t i = 0; i <= n; i++)
    lower[i] = (char)((host[i] >= 'A' && host[i] <= 'Z') ? host[i] + 32 : host[i]);
  for (size_t i = 0; i < c->nregistries; i++) {
    if (strcmp(c->registries[i].host, lower) == 0) {
      *out = &c->registries[i];
      return 0;
    }
  }
  if (c->nregistries >= CONFIG_MAX_REGISTRIES)
    return ep_error(err, EP_ETOOBIG, "more than %d registries configured", CONFIG_MAX_REGISTRIES);
  *out = &c->registries[c->nregistries++];
  memset(*out, 0, sizeof **out);
  memcpy((*out)->host, lower, n + 1);
  return 0;
}

int config_add_registry_mapping(struct edgepulld_config *c, const char *spec, ep_err *err) {
  char q[128], host[NAMES_HOST_MAX + 1], url[sizeof c->registries[0].url];
  ep_quote(q, sizeof q, spec);
  const char *eq = spec != NULL ? strchr(spec, '=') : NULL;
  if (eq == NULL)
    return ep_error(err, EP_EINVAL, "registry mapping \"%s\" is not HOST=URL", q);
  size_t hlen = (size_t)(eq - spec);
  if (hlen > NAMES_HOST_MAX || hlen >= sizeof c->registries[0].host)
    return ep_error(err, EP_EINVAL, "registry mapping \"%s\": host too long", q);
  memcpy(host, spec, hlen);
  host[hlen] = '\0';
  if (!names_registry_valid(host))
    return ep_error(err, EP_EINVAL, "registry mapping \"%s\": invalid host[:port]", q);
  int r = names_url_parse(eq + 1, url, sizeof url, err);
  if (r < 0)
    return r;
  struct config_registry *reg;
  if ((r = registry_find_or_add(c, host, &reg, err)) < 0)
    return r;
  strcpy(reg->url, url);
  return 0;
}

int config_allow_registry(struct edgepulld_config *c, const char *host, ep_err *err) {
  char q[128];
  ep_quote(q, sizeof q, host != NULL ? host : "");
  if (host == NULL || strlen(host) >= sizeof c->registries[0].host || !names_registry_valid(host))
    return ep_error(err, EP_EINVAL, "allowed registry \"%s\": invalid host[:port]", q);
  struct config_registry *reg;
  return registry_find_or_add(c, host, &reg, err);
}

/* ---- INI files ---- */

struct ini_ctx {
  struct edgepulld_config *c;
  const char *path;     /* quoted, for messages */
  const char *raw_path; /* as given, to resolve relative password-files */
  FILE *f;
  int lineno;   /* lines handed to libinih so far */
  int err_line; /* line of the first error we reported, 0 = none */
  int rc;       /* first error, 0 = none */
  ep_err *err;
  char section[NAMES_HOST_MAX + 16];
};

static int ctx_fail(struct ini_ctx *x, int line, int rc) {
  if (x->rc == 0) {
    x->rc = rc;
    x->err_line = line;
  }
  return 0;
}

/* "edgepulld" → 1, `registry "HOST"` → 2 (host written out), else 0. */
static int section_kind(const char *s, char host[NAMES_HOST_MAX + 1]) {
  if (strcmp(s, "edgepulld") == 0)
    return 1;
  if (strncmp(s, "registry", 8) != 0 || (s[8] != ' ' && s[8] != '\t'))
    return 0;
  s += 9;
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strlen(s);
  if (n < 3 || s[0] != '"' || s[n - 1] != '"' || n - 2 > NAMES_HOST_MAX)
    return 0;
  memcpy(host, s + 1, n - 2);
  host[n - 2] = '\0';
  return names_registry_valid(host) ? 2 : 0;
}

/* Tracks section headers; libinih sees the same line and agrees. */
static void reader_section(struct ini_ctx *x, const char *line) {
  char q[128], host[NAMES_HOST_MAX + 1];
  if (line[0] != '[')
    return;
  const char *end = strchr(line, ']');
  if (end == NULL)
    return; /* libinih reports the syntax error */
  size_t n = (size_t)(end - line - 1);
  char name[sizeof x->section];
  if (n >= sizeof name) {
    ep_error(x->err, EP_EINVAL, "%s:%d: section name too long", x->path, x->lineno);
    ctx_fail(x, x->lineno, -EP_EINVAL);
    return;
  }
  memcpy(name, line + 1, n);
  name[n] = '\0';
  if (section_kind(name, host) == 0) {
    ep_quote(q, sizeof q, name);
    ep_error(x->err, EP_EINVAL,
             "%s:%d: unknown section [%s] (expected [edgepulld] or [registry \"HOST\"])", x->path,
             x->lineno, q);
    ctx_fail(x, x->lineno, -EP_EINVAL);
    return;
  }
  memcpy(x->section, name, n + 1);
}

static char *ini_reader_fn(char *str, int num, void *stream) {
  struct ini_ctx *x = stream;
  int ch = EOF, n = 0;
  if (x->rc < 0 || num < 4)
    return NULL;
  while ((ch = getc(x->f)) != EOF) {
    if (ch == '\0') {
      ep_error(x->err, EP_EINVAL, "%s:%d: NUL byte in line", x->path, x->lineno + 1);
      return ctx_fail(x, x->lineno + 1, -EP_EINVAL), NULL;
    }
    if (n >= num - 2) {
      ep_error(x->err, EP_EINVAL, "%s:%d: line longer than %d characters", x->path, x->lineno + 1,
               num - 3);
      return ctx_fail(x, x->lineno + 1, -EP_EINVAL), NULL;
    }
    str[n++] = (char)ch;
    if (ch == '\n')
      break;
  }
  if (ferror(x->f)) {
    ep_syserror(x->err, EP_EIO, "%s:%d: read error", x->path, x->lineno + 1);
    return ctx_fail(x, x->lineno + 1, -EP_EIO), NULL;
  }
  if (n == 0)
    return NULL;
  str[n] = '\0';
  x->lineno++;
  if (x->lineno == 1 && strncmp(str, "\xEF\xBB\xBF", 3) == 0) {
    memmove(str, str + 3, (size_t)n - 2);
    n -= 3;
  }
  size_t lead = strspn(str, " \t");
  memmove(str, str + lead, (size_t)n - lead + 1);
  reader_section(x, str);
  return x->rc < 0 ? NULL : str;
}

/* A relative password-file is relative to the config file's directory. */
static int secret_path(const char *cfg_path, const char *value, char *out, size_t outsz) {
  const char *slash = strrchr(cfg_path, '/');
  int n;
  if (value[0] == '/' || slash == NULL)
    n = snprintf(out, outsz, "%s", value);
  else
    n = snprintf(out, outsz, "%.*s/%s", (int)(slash - cfg_path), cfg_path, value);
  return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

static int registry_key(struct ini_ctx *x, const char *host, const char *key, const char *value,
                        const char *where) {
  struct config_registry *reg;
  char path[4096];
  ep_err *err = x->err;
  int r = registry_find_or_add(x->c, host, &reg, err);
  if (r < 0)
    return r;
  if (strcmp(key, "url") == 0)
    r = names_url_parse(value, reg->url, sizeof reg->url, err);
  else if (strcmp(key, "password-file") == 0)
    r = secret_path(x->raw_path, value, path, sizeof path) < 0
            ? ep_error(err, EP_EINVAL, "path too long")
            : names_secret_read(path, reg->password, sizeof reg->password, err);
  else if (strcmp(key, "username") == 0 || strcmp(key, "password") == 0) {
    bool user = key[0] == 'u';
    char *dst = user ? reg->username : reg->password;
    size_t cap = user ? sizeof reg->username : sizeof reg->password;
    if (strlen(value) >= cap)
      r = ep_error(err, EP_EINVAL, "value longer than %zu characters", cap - 1);
    else if (has_ctl(value) || (user && strchr(value, ':') != NULL))
      r = ep_error(err, EP_EINVAL, "value holds a control character%s", user ? " or ':'" : "");
    else
      memcpy(dst, value, strlen(value) + 1);
  } else {
    return ep_error(err, EP_EINVAL,
                    "%s: unknown key (expected url, username, password or password-file)", where);
  }
  return r < 0 && err != NULL ? ep_wrap(err, "%s", where) : r;
}

static int ini_handler_fn(void *user, const char *inih_section, const char *name,
                          const char *value) {
  struct ini_ctx *x = user;
  char where[CFG_WHERE_MAX], qn[128], host[NAMES_HOST_MAX + 1];
  (void)inih_section; /* may be truncated by libinih; x->section is complete */
  if (x->rc < 0)
    return 0;
  ep_quote(qn, sizeof qn, name);
  snprintf(where, sizeof where, "%s:%d: key \"%s\"", x->path, x->lineno, qn);
  int kind = x->section[0] != '\0' ? section_kind(x->section, host) : 0;
  int r;
  if (kind == 0) {
    r = ep_error(x->err, EP_EINVAL, "%s: outside of any section ([edgepulld] expected)", where);
  } else if (kind == 2) {
    r = registry_key(x, host, name, value, where);
  } else {
    const struct cfg_option *o = opt_find(name, strlen(name));
    if (o == NULL || flag_only(o))
      r = ep_error(x->err, EP_EINVAL, "%s: unknown key in [edgepulld]%s", where,
                   o != NULL ? " (only valid on the command line)" : "");
    else
      r = opt_set(x->c, o, value, where, x->err);
  }
  return r < 0 ? ctx_fail(x, x->lineno, r) : 1;
}

int config_load_file(struct edgepulld_config *c, const char *path, ep_err *err) {
  char q[128];
  if (path == NULL)
    return ep_error(err, EP_EINVAL, "no config file path");
  ep_quote(q, sizeof q, path);
  ep_cleanup_fclose FILE *f = fopen(path, "re");
  struct stat st;
  if (f == NULL)
    return ep_syserror(err, errno == ENOENT ? EP_ENOTFOUND : EP_EIO, "config file %s", q);
  if (fstat(fileno(f), &st) < 0)
    return ep_syserror(err, EP_EIO, "config file %s", q);
  if (!S_ISREG(st.st_mode))
    return ep_error(err, EP_EINVAL, "config file %s is not a regular file", q);
  if ((uint64_t)st.st_size > CFG_FILE_MAX)
    return ep_error(err, EP_ETOOBIG, "config file %s is larger than %u bytes", q, CFG_FILE_MAX);
  ep_err local = {0};
  struct ini_ctx x = {
      .c = c, .path = q, .raw_path = path, .f = f, .err = err != NULL ? err : &local};
  int r = ini_parse_stream(ini_reader_fn, &x, ini_handler_fn, &x);
  if (r == -2)
    return ep_error(err, EP_EINTERNAL, "config file %s: out of memory", q);
  if (r > 0 && (x.rc == 0 || r < x.err_line))
    return ep_error(err, EP_EINVAL, "%s:%d: syntax error (expected \"key = value\" or [section])",
                    q, r);
  return x.rc;
}

/* ---- command line ---- */

struct cli_arg {
  const struct cfg_option *opt;
  const char *value; /* NULL for a flag without value */
  bool negated;      /* --no-BOOL */
  char where[160];   /* "option --name" */
};

/* Reads the option at argv[*i] (and its value), advancing *i. */
static int cli_next(int argc, char **argv, int *i, struct cli_arg *a, ep_err *err) {
  const char *arg = argv[*i];
  char q[128];
  ep_quote(q, sizeof q, arg);
  memset(a, 0, sizeof *a);
  (*i)++;
  if (strcmp(arg, "-h") == 0) {
    a->opt = opt_find("help", 4);
    return 0;
  }
  if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
    return ep_error(err, EP_EINVAL, "unexpected argument \"%s\" (see --help)", q);
  const char *name = arg + 2;
  const char *eq = strchr(name, '=');
  size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
  a->opt = opt_find(name, len);
  if (a->opt == NULL && len > 3 && strncmp(name, "no-", 3) == 0) {
    a->opt = opt_find(name + 3, len - 3);
    a->negated = true;
    if (a->opt != NULL && a->opt->type != CFG_BOOL)
      a->opt = NULL;
  }
  if (a->opt == NULL)
    return ep_error(err, EP_EINVAL, "unknown option \"%s\" (see --help)", q);
  snprintf(a->where, sizeof a->where, "option --%s%s", a->negated ? "no-" : "", a->opt->name);
  bool takes_value =
      a->opt->type != CFG_BOOL && a->opt->type != CFG_HELP && a->opt->type != CFG_VERSION;
  if (eq != NULL) {
    if (a->negated || a->opt->type == CFG_HELP || a->opt->type == CFG_VERSION)
      return ep_error(err, EP_EINVAL, "%s takes no value", a->where);
    a->value = eq + 1;
  } else if (takes_value) {
    if (*i >= argc)
      return ep_error(err, EP_EINVAL, "%s needs a value (%s)", a->where, a->opt->metavar);
    a->value = argv[(*i)++];
  }
  return 0;
}

static int cli_apply(struct edgepulld_config *c, const struct cli_arg *a, ep_err *err) {
  if (a->opt->type == CFG_BOOL && a->value == NULL) {
    *(bool *)(void *)((char *)c + a->opt->off) = !a->negated;
    return 0;
  }
  return opt_set(c, a->opt, a->value, a->where, err);
}

int config_parse_args(struct edgepulld_config *c, int argc, char **argv, ep_err *err) {
  const char *argv0 = argc > 0 && argv[0] != NULL ? argv[0] : "edgepulld";
  struct cli_arg a;
  bool help = false, version = false;
  int r;
  /* pass 1: tokenize everything, find --help/--version */
  for (int i = 1; i < argc;) {
    if ((r = cli_next(argc, argv, &i, &a, err)) < 0)
      return r;
    help |= a.opt->type == CFG_HELP;
    version |= a.opt->type == CFG_VERSION;
  }
  if (help) {
    config_usage(stdout, argv0);
    return 1;
  }
  if (version) {
    printf("edgepulld %s\n", EDGEPULL_VERSION);
    return 1;
  }
  /* pass 2: files, in the order given */
  for (int i = 1; i < argc;) {
    cli_next(argc, argv, &i, &a, err);
    if (a.opt->type == CFG_CONFIG && (r = config_load_file(c, a.value, err)) < 0)
      return r;
  }
  /* pass 3: every other flag on top */
  for (int i = 1; i < argc;) {
    cli_next(argc, argv, &i, &a, err);
    if (a.opt->type != CFG_CONFIG && (r = cli_apply(c, &a, err)) < 0)
      return r;
  }
  return 0;
}

/* ---- validation and usage ---- */

int config_validate(const struct edgepulld_config *c, ep_err *err) {
  char q[128];
  for (size_t i = 0; i < CFG_NOPTIONS; i++) {
    const struct cfg_option *o = &cfg_options[i];
    if (o->type != CFG_STRING)
      continue;
    const char *v = (const char *)c + o->off;
    if (strnlen(v, o->size) >= o->size)
      return ep_error(err, EP_EINVAL, "--%s: value not terminated", o->name);
    const char *why = has_ctl(v) ? "contains control characters" : check_string(o->check, v);
    ep_quote(q, sizeof q, v);
    if (why != NULL)
      return ep_error(err, EP_EINVAL, "--%s \"%s\" %s", o->name, q, why);
  }
  if (strcmp(c->listen, c->peer_listen) == 0)
    return ep_error(err, EP_EINVAL, "--listen and --peer-listen must differ");
  if (c->metrics_listen[0] != '\0' &&
      (strcmp(c->metrics_listen, c->listen) == 0 || strcmp(c->metrics_listen, c->peer_listen) == 0))
    return ep_error(err, EP_EINVAL, "--metrics-listen must differ from --listen and --peer-listen");
  if (c->broker[0] != '\0' && c->locality[0] == '\0')
    return ep_error(err, EP_EINVAL, "--broker needs --locality");
  if (c->broker[0] != '\0' && c->node_id[0] == '\0')
    return ep_error(err, EP_EINVAL, "--broker needs --node-id (the hostname was not usable)");
  int ntls = (c->peer_ca[0] != '\0') + (c->peer_cert[0] != '\0') + (c->peer_key[0] != '\0');
  if (ntls != 0 && ntls != 3)
    return ep_error(err, EP_EINVAL, "--peer-ca, --peer-cert and --peer-key go together");
  if (ntls != 0 && c->peer_insecure)
    return ep_error(err, EP_EINVAL, "--peer-insecure and --peer-cert contradict each other");
  /* Peers authenticate each other, or the operator said plainly they do
   * not: a peer port never falls back to plain HTTP silently. */
  if (ntls == 0 && !c->peer_insecure && (c->peer_listen[0] != '\0' || c->broker[0] != '\0'))
    return ep_error(err, EP_EINVAL,
                    "%s needs peer TLS: make the locality CA once with 'edgepullctl ca init', "
                    "this node's files with 'edgepullctl ca issue %s', then pass --peer-ca "
                    "ca.crt --peer-cert %s.crt --peer-key %s.key (docs/security.md); or "
                    "--peer-insecure for plain HTTP (tests only)",
                    c->peer_listen[0] != '\0' ? "--peer-listen" : "--broker", c->node_id,
                    c->node_id, c->node_id);
  if (c->broker_password_file[0] != '\0' && c->broker_username[0] == '\0')
    return ep_error(err, EP_EINVAL, "--broker-password-file needs --broker-username");
  if (c->nregistries > CONFIG_MAX_REGISTRIES)
    return ep_error(err, EP_EINVAL, "too many registries");
  for (size_t i = 0; i < c->nregistries; i++) {
    const struct config_registry *reg = &c->registries[i];
    ep_quote(q, sizeof q, reg->host);
    if (!names_registry_valid(reg->host))
      return ep_error(err, EP_EINVAL, "registry \"%s\": invalid host", q);
    if ((reg->username[0] == '\0') != (reg->password[0] == '\0'))
      return ep_error(err, EP_EINVAL,
                      "registry \"%s\": username and password (or password-file) go together", q);
  }
  return 0;
}

static const char *opt_metavar(const struct cfg_option *o) {
  return o->metavar != NULL ? o->metavar : "";
}

static int opt_label(const struct cfg_option *o, char *buf, size_t len) {
  if (o->type == CFG_HELP)
    return snprintf(buf, len, "-h, --help");
  if (o->type == CFG_BOOL)
    return snprintf(buf, len, "--[no-]%s", o->name);
  return snprintf(buf, len, "--%s %s", o->name, opt_metavar(o));
}

void config_usage(FILE *out, const char *argv0) {
  char label[96];
  int width = 0;
  for (size_t i = 0; i < CFG_NOPTIONS; i++) {
    int n = opt_label(&cfg_options[i], label, sizeof label);
    if (n > width)
      width = n;
  }
  fprintf(out,
          "Usage: %s [OPTIONS]\n"
          "Node daemon of edgepull: a streaming pull-through registry mirror.\n"
          "Every option is also a key in section [edgepulld] of the --config file.\n",
          argv0 != NULL ? argv0 : "edgepulld");
  const char *group = NULL;
  for (size_t i = 0; i < CFG_NOPTIONS; i++) {
    const struct cfg_option *o = &cfg_options[i];
    if (group == NULL || strcmp(group, o->group) != 0) {
      group = o->group;
      fprintf(out, "\n%s:\n", group);
    }
    opt_label(o, label, sizeof label);
    fprintf(out, "  %-*s  %s", width, label, o->help);
    if (o->type == CFG_INT)
      fprintf(out, " [%ld-%ld, default %s]", o->min, o->max, o->def);
    else if (o->type == CFG_STRING && o->def != NULL)
      fprintf(out, " [default %s]", o->def);
    fputc('\n', out);
  }
  fprintf(out, "\nExit status: 0 ok, 1 runtime failure, 2 usage or configuration error.\n");
}
