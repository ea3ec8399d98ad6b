/* edgepullctl: the admin CLI. This file only parses the command line and
 * dispatches; the subcommands live in ctl_index.c (layers, images, stat,
 * schema), ctl_locality.c (nodes, where), ctl_topology.c (topology),
 * ctl_snapshots.c (snapshots), ctl_gc.c (gc, pin, unpin), ctl_du.c (du),
 * ctl_deploy.c with ctl_deploy_view.c (deploy)
 * ctl_setup*.c (setup) and ctl_ca.c (ca). Options may come before
 * or after the subcommand (GNU getopt permutes), so both
 * `edgepullctl --json layers` and `edgepullctl layers --json` work.
 * Exit codes: 0 ok, 1 runtime failure, 2 usage error. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ctl/ctl.h"
#include "store/index.h"

struct ctl_cmd {
  const char *name;
  int (*run)(const struct ctl_opts *o);
  const char *arg; /* name of its one argument, NULL when it takes none */
};

static const struct ctl_cmd commands[] = {
    {"layers", ctl_cmd_layers, NULL},
    {"images", ctl_cmd_images, NULL},
    {"stat", ctl_cmd_stat, NULL},
    {"schema", ctl_cmd_schema, NULL},
    {"nodes", ctl_cmd_nodes, NULL},
    {"where", ctl_cmd_where, "DIGEST"},
    {"topology", ctl_cmd_topology, NULL},
    {"snapshots", ctl_cmd_snapshots, NULL},
    {"du", ctl_cmd_du, NULL},
    {"gc", ctl_cmd_gc, NULL},
    {"pin", ctl_cmd_pin, "IMAGE"},
    {"unpin", ctl_cmd_unpin, "IMAGE"},
};

/* Commands that parse the whole command line themselves. */
static const struct {
  const char *name;
  int (*main)(int argc, char **argv);
} own_options[] = {
    {"deploy", ctl_deploy_main},
    {"setup", ctl_setup_main},
    {"ca", ctl_ca_main},
};

static void usage(FILE *out) {
  fprintf(out,
          "Usage: edgepullctl [OPTIONS] COMMAND [ARGUMENT]\n"
          "\n"
          "Query the edgepull index of this node and its locality (read-only; safe\n"
          "while edgepulld runs); gc, pin and unpin ask edgepulld to act.\n"
          "\n"
          "Commands:\n"
          "  layers      one row per blob: digest, size, media type, state, last access,\n"
          "              unpacked by the snapshotter\n"
          "  images      one row per cached tag: image, digest, size, freshness, layers\n"
          "              unpacked\n"
          "  stat        schema version, counts and bytes; and edgepulld's figures (its\n"
          "              GET /metrics: bytes by source, hits, fetches, store, MQTT)\n"
          "  schema      print the index schema as SQL (for sqlite3 and operators)\n"
          "  nodes       the locality's nodes: address, state, parent, blobs held, free disk\n"
          "  where DIGEST  the nodes holding that blob complete\n"
          "  topology    the distribution tree, from the gateway down by parent links\n"
          "  snapshots   the snapshotter's snapshots: name, kind, parent, layer, chain ID,\n"
          "              size, inodes, created\n"
          "  du          store size, free disk, what pins keep, bytes per cached image\n"
          "  gc [--dry-run]  run the disk GC now, down to the low watermarks\n"
          "              (edgepulld removes; --dry-run lists what would go)\n"
          "  pin IMAGE   the disk GC never removes IMAGE's blobs (edgepulld records it)\n"
          "  unpin IMAGE   undo pin\n"
          "  deploy IMAGE  deploy an image to the locality over MQTT\n"
          "              (see 'edgepullctl deploy --help')\n"
          "  setup containerd|docker|podman  configure the runtime to pull through\n"
          "              edgepulld; --dry-run, --undo (see 'edgepullctl setup --help')\n"
          "  ca init|issue NODE  the locality's CA and node certificates for mutual\n"
          "              TLS between peers (see 'edgepullctl ca --help')\n"
          "\n"
          "Options:\n"
          "  -d, --state-dir DIR  edgepulld's state directory (default %s);\n"
          "                       the index is DIR/index.db\n"
          "      --snapshotter-root DIR  the snapshotter's root (default STATE-DIR/snapshots);\n"
          "                       its database is DIR/snapshots.db\n"
          "  -j, --json           print one JSON document (keys: docs/index.md)\n"
          "      --no-trunc       full digests and media types in tables\n"
          "      --endpoint ADDR:PORT  edgepulld's local endpoint, for stat, gc, pin and\n"
          "                       unpin (default %s)\n"
          "      --dry-run        gc: plan only, remove nothing\n"
          "  -h, --help           show this help\n"
          "  -V, --version        show the version\n"
          "\n"
          "Exit status: 0 ok, 1 runtime failure, 2 usage error.\n",
          CTL_DEFAULT_STATE_DIR, CTL_DEFAULT_ENDPOINT);
}

static int usage_error(const char *fmt, ...) EP_PRINTF(1, 2);
static int usage_error(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ctl_errorf("%s", msg);
  fprintf(stderr, "Try 'edgepullctl --help'.\n");
  return CTL_EXIT_USAGE;
}

/* Returns -1 to go on, or the exit code for --help, --version, bad usage. */
static int parse_options(int argc, char **argv, struct ctl_opts *o) {
  enum { OPT_NO_TRUNC = 1000, OPT_SNAP_ROOT, OPT_ENDPOINT, OPT_DRY_RUN };
  static const struct option longopts[] = {
      {"state-dir", required_argument, NULL, 'd'},
      {"json", no_argument, NULL, 'j'},
      {"no-trunc", no_argument, NULL, OPT_NO_TRUNC},
      {"snapshotter-root", required_argument, NULL, OPT_SNAP_ROOT},
      {"endpoint", required_argument, NULL, OPT_ENDPOINT},
      {"dry-run", no_argument, NULL, OPT_DRY_RUN},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0},
  };
  int c;
  opterr = 0; /* our messages say "edgepullctl:", not the full argv[0] */
  while ((c = getopt_long(argc, argv, ":d:jhV", longopts, NULL)) != -1) {
    switch (c) {
    case 'd':
      if (optarg[0] == '\0')
        return usage_error("--state-dir: empty directory name");
      o->state_dir = optarg;
      break;
    case 'j':
      o->json = true;
      break;
    case OPT_NO_TRUNC:
      o->no_trunc = true;
      break;
    case OPT_SNAP_ROOT:
      if (optarg[0] == '\0')
        return usage_error("--snapshotter-root: empty directory name");
      o->snap_root = optarg;
      break;
    case OPT_ENDPOINT:
      if (optarg[0] == '\0')
        return usage_error("--endpoint: empty address");
      o->endpoint = optarg;
      break;
    case OPT_DRY_RUN:
      o->dry_run = true;
      break;
    case 'h':
      usage(stdout);
      return CTL_EXIT_OK;
    case 'V':
      printf("edgepullctl %s (index schema v%d)\n", EDGEPULL_VERSION,
             index_latest_schema_version());
      return CTL_EXIT_OK;
    case ':':
      return usage_error("option '%s' needs an argument", argv[optind - 1]);
    default:
      if (optopt > ' ' && optopt < 0x7f)
        return usage_error("unknown option '-%c'", optopt);
      return usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }
  return -1;
}

/* The command word: the first argument that is neither an option nor the
 * value of -d/--state-dir or --snapshotter-root. */
static const char *command_word(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0)
      return i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(argv[i], "-d") == 0 || strcmp(argv[i], "--state-dir") == 0 ||
        strcmp(argv[i], "--snapshotter-root") == 0 || strcmp(argv[i], "--endpoint") == 0) {
      i++;
      continue;
    }
    if (argv[i][0] != '-')
      return argv[i];
  }
  return NULL;
}

int main(int argc, char **argv) {
  struct ctl_opts o = {.state_dir = CTL_DEFAULT_STATE_DIR};
  const char *cmd = command_word(argc, argv);
  for (size_t i = 0; cmd != NULL && i < sizeof own_options / sizeof own_options[0]; i++)
    if (strcmp(cmd, own_options[i].name) == 0)
      return own_options[i].main(argc, argv);
  int rc = parse_options(argc, argv, &o);
  if (rc >= 0)
    return rc;
  if (optind >= argc)
    return usage_error("no command given");
  const char *name = argv[optind];
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    if (strcmp(name, commands[i].name) != 0)
      continue;
    if (commands[i].run == NULL)
      return usage_error("%s: not implemented yet in this version", name);
    int nargs = commands[i].arg != NULL ? 1 : 0;
    if (optind + 1 + nargs > argc)
      return usage_error("%s needs an argument: %s", name, commands[i].arg);
    if (optind + 1 + nargs < argc) {
      if (nargs == 0)
        return usage_error("%s takes no arguments (got '%s')", name, argv[optind + 1]);
      return usage_error("%s takes one argument, %s (got also '%s')", name, commands[i].arg,
                         argv[optind + 2]);
    }
    o.arg = nargs > 0 ? argv[optind + 1] : NULL;
    return commands[i].run(&o);
  }
  return usage_error("unknown command '%s'", name);
}
