/* edgepull-coordinator's options, declared once in a table that drives
 * getopt_long, the value checks and --help alike. Every error names the
 * flag at fault; the caller turns it into exit code 2. */
#include "coordinator/opts.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

enum opt_type { T_BROKER, T_ID, T_TOPOLOGY, T_STR, T_PATH, T_UINT, T_HELP, T_VERSION };

struct opt_spec {
  const char *name;
  enum opt_type type;
  size_t off, size; /* field in struct coord_opts */
  unsigned min, max;
  const char *metavar;
  const char *help;
};

#define FIELD(f) offsetof(struct coord_opts, f), sizeof(((struct coord_opts *)0)->f)

static const struct opt_spec opt_table[] = {
    {"broker", T_BROKER, FIELD(broker_host), 0, 0, "HOST:PORT",
     "MQTT broker of the locality (port 1883, 8883 with --ca-file)"},
    {"locality", T_ID, FIELD(locality), 0, 0, "NAME", "locality name ([A-Za-z0-9._-], 1-63)"},
    {"gateway", T_ID, FIELD(gateway), 0, 0, "NODE",
     "node id of the locality's gateway: the root, and who resolves tags (required)"},
    {"topology", T_TOPOLOGY, 0, 0, 0, 0, "chain|tree:K", "distribution topology (default chain)"},
    {"username", T_STR, FIELD(username), 0, 0, "USER", "broker username"},
    {"password-file", T_PATH, FIELD(password_file), 0, 0, "FILE",
     "file holding the broker password (first line)"},
    {"ca-file", T_PATH, FIELD(ca_file), 0, 0, "FILE", "CA certificates: connect with TLS"},
    {"heartbeat-timeout", T_UINT, FIELD(heartbeat_timeout), 5, 86400, "SECONDS",
     "a node without a state message for this long is gone (default 90)"},
    {"keepalive", T_UINT, FIELD(keepalive), 5, 3600, "SECONDS", "MQTT keepalive (default 10)"},
    {"client-id", T_STR, FIELD(client_id), 0, 0, "ID",
     "MQTT client id (default edgepull-coordinator-<locality>)"},
    {"help", T_HELP, 0, 0, 0, 0, NULL, "print this help and exit"},
    {"version", T_VERSION, 0, 0, 0, 0, NULL, "print the version and exit"},
};
#define NOPTS (sizeof opt_table / sizeof opt_table[0])

void coord_opts_usage(FILE *out) {
  fprintf(out, "usage: edgepull-coordinator --broker HOST:PORT --locality NAME --gateway NODE "
               "[options]\n\n"
               "Keeps the membership and the distribution topology of an edgepull locality\n"
               "and publishes every node's parent over MQTT.\n\noptions:\n");
  for (size_t i = 0; i < NOPTS; i++) {
    char left[64];
    snprintf(left, sizeof left, "--%s%s%s", opt_table[i].name, opt_table[i].metavar ? " " : "",
             opt_table[i].metavar ? opt_table[i].metavar : "");
    fprintf(out, "  %-30s %s\n", left, opt_table[i].help);
  }
  fprintf(out, "\nexit codes: 0 ok, 1 runtime failure, 2 usage or configuration error\n");
}

static bool printable(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s <= ' ' || *s == 0x7f)
      return false;
  return true;
}

static int parse_uint(const char *v, unsigned min, unsigned max, unsigned *out) {
  if (*v < '0' || *v > '9')
    return -1;
  errno = 0;
  char *end = NULL;
  unsigned long n = strtoul(v, &end, 10);
  if (errno != 0 || *end != '\0' || n < min || n > max)
    return -1;
  *out = (unsigned)n;
  return 0;
}

/* HOST, HOST:PORT or [V6]:PORT, by the one grammar in common/names.h. */
static int parse_broker(struct coord_opts *o, const char *v, ep_err *err) {
  struct names_hostport hp;
  if (names_hostport_parse(v, NAMES_PORT_OPTIONAL, &hp, err) < 0)
    return ep_wrap(err, "--broker");
  if (strlen(hp.host) >= sizeof o->broker_host)
    return ep_error(err, EP_EINVAL, "--broker %s: host too long", v);
  memcpy(o->broker_host, hp.host, strlen(hp.host) + 1);
  o->broker_port = hp.port;
  return 0;
}

static int set_string(char *dst, size_t size, const char *name, const char *v, ep_err *err) {
  size_t len = strlen(v);
  if (len == 0 || len >= size)
    return ep_error(err, EP_EINVAL, "--%s: value empty or longer than %zu bytes", name, size - 1);
  if (!printable(v))
    return ep_error(err, EP_EINVAL, "--%s: value holds spaces or control characters", name);
  memcpy(dst, v, len + 1);
  return 0;
}

static int apply(struct coord_opts *o, const struct opt_spec *s, const char *v, FILE *out,
                 ep_err *err) {
  char *field = (char *)o + s->off;
  switch (s->type) {
  case T_BROKER:
    return parse_broker(o, v, err);
  case T_ID:
    if (!names_node_id_valid(v))
      return ep_error(err, EP_EINVAL, "--%s %s: expected [A-Za-z0-9._-]{1,63}", s->name, v);
    return set_string(field, s->size, s->name, v, err);
  case T_TOPOLOGY:
    if (topo_parse_strategy(v, &o->strategy, &o->k, err) < 0)
      return ep_wrap(err, "--%s %s", s->name, v);
    return 0;
  case T_STR:
  case T_PATH:
    return set_string(field, s->size, s->name, v, err);
  case T_UINT:
    if (parse_uint(v, s->min, s->max, (unsigned *)(void *)field) < 0)
      return ep_error(err, EP_EINVAL, "--%s %s: expected an integer in %u..%u", s->name, v, s->min,
                      s->max);
    return 0;
  case T_HELP:
    coord_opts_usage(out);
    return 1;
  case T_VERSION:
    fprintf(out, "edgepull-coordinator %s\n", EDGEPULL_VERSION);
    return 1;
  }
  return ep_error(err, EP_EINTERNAL, "--%s: unhandled option type", s->name);
}

static int read_password(struct coord_opts *o, ep_err *err) {
  if (names_secret_read_first_line(o->password_file, o->password, sizeof o->password, err) < 0)
    return ep_wrap(err, "--password-file %s", o->password_file);
  return 0;
}

static int validate(struct coord_opts *o, ep_err *err) {
  if (o->broker_host[0] == '\0')
    return ep_error(err, EP_EINVAL, "--broker is required");
  if (o->locality[0] == '\0')
    return ep_error(err, EP_EINVAL, "--locality is required");
  /* Roles are configured, not claimed: no default, and never "whoever says so". */
  if (o->gateway[0] == '\0')
    return ep_error(err, EP_EINVAL, "--gateway is required (the gateway's node id)");
  if (o->password_file[0] != '\0' && o->username[0] == '\0')
    return ep_error(err, EP_EINVAL, "--password-file needs --username");
  if (o->broker_port == 0)
    o->broker_port = o->ca_file[0] != '\0' ? 8883 : 1883;
  if (o->ca_file[0] != '\0' && access(o->ca_file, R_OK) < 0)
    return ep_syserror(err, EP_EINVAL, "--ca-file %s", o->ca_file);
  if (o->client_id[0] == '\0')
    snprintf(o->client_id, sizeof o->client_id, "edgepull-coordinator-%s", o->locality);
  if (o->password_file[0] != '\0')
    return read_password(o, err);
  return 0;
}

int coord_opts_parse(struct coord_opts *o, int argc, char **argv, FILE *out, ep_err *err) {
  memset(o, 0, sizeof *o);
  o->strategy = TOPO_CHAIN;
  o->k = 1;
  o->heartbeat_timeout = 90;
  o->keepalive = 10;
  struct option lopts[NOPTS + 1];
  memset(lopts, 0, sizeof lopts);
  for (size_t i = 0; i < NOPTS; i++) {
    lopts[i].name = opt_table[i].name;
    lopts[i].has_arg = opt_table[i].metavar ? required_argument : no_argument;
    lopts[i].val = (int)i + 256;
  }
  optind = 0; /* glibc: full reinitialisation, so tests can parse twice */
  opterr = 0;
  for (;;) {
    int c = getopt_long(argc, argv, ":", lopts, NULL);
    if (c == -1)
      break;
    const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    if (c == ':')
      return ep_error(err, EP_EINVAL, "%s: missing value", arg);
    if (c < 256 || c >= 256 + (int)NOPTS)
      return ep_error(err, EP_EINVAL, "%s: unknown option (see --help)", arg);
    int r = apply(o, &opt_table[c - 256], optarg, out, err);
    if (r != 0)
      return r;
  }
  if (optind < argc)
    return ep_error(err, EP_EINVAL, "%s: unexpected argument", argv[optind]);
  return validate(o, err);
}

void coord_opts_clear(struct coord_opts *o) {
  explicit_bzero(o->password, sizeof o->password);
}
