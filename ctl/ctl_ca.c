/* edgepullctl ca init|issue NODE: the locality's certificate authority
 * for mutual TLS on the peer port (pki/pki.h, docs/security.md). Run it
 * where the CA key is kept (an admin host, not every node); copy ca.crt,
 * NODE.crt and NODE.key to node NODE. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "pki/pki.h"

struct ca_opts {
  const char *dir;  /* ca.key and ca.crt */
  const char *out;  /* issue: where NODE.key and NODE.crt go; NULL = dir */
  const char *name; /* init: the CA's CN */
  int days;
  bool force;
};

static void usage(FILE *out) {
  fprintf(out,
          "Usage: edgepullctl ca init [--dir DIR] [--name CN] [--days N] [--force]\n"
          "       edgepullctl ca issue NODE [--dir DIR] [--out DIR] [--days N] [--force]\n"
          "\n"
          "The locality's certificate authority, for mutual TLS between peers.\n"
          "  init        make DIR/ca.key (0600) and DIR/ca.crt: an EC P-256 CA\n"
          "  issue NODE  make OUT/NODE.key (0600) and OUT/NODE.crt, signed by the CA in\n"
          "              DIR, naming node id NODE (CN and DNS subjectAltName)\n"
          "\n"
          "Options:\n"
          "      --dir DIR   where ca.key and ca.crt are (default: the current directory)\n"
          "      --out DIR   issue: where the node's files go (default: --dir)\n"
          "      --name CN   init: the CA's common name (default \"edgepull locality CA\")\n"
          "      --days N    lifetime in days (default %d)\n"
          "      --force     replace existing files\n"
          "  -h, --help      show this help\n"
          "\n"
          "Node NODE then runs edgepulld with --peer-ca ca.crt --peer-cert NODE.crt\n"
          "--peer-key NODE.key. docs/security.md has the same steps with openssl.\n",
          PKI_NODE_DAYS);
}

static int usage_err(const char *msg, const char *what) {
  return ctl_usage_err("ca", msg, what);
}

static int parse(int argc, char **argv, struct ca_opts *o) {
  enum { O_DIR = 1000, O_OUT, O_NAME, O_DAYS, O_FORCE };
  static const struct option longopts[] = {
      {"dir", required_argument, NULL, O_DIR},     {"out", required_argument, NULL, O_OUT},
      {"name", required_argument, NULL, O_NAME},   {"days", required_argument, NULL, O_DAYS},
      {"force", no_argument, NULL, O_FORCE},       {"help", no_argument, NULL, 'h'},
      {"state-dir", required_argument, NULL, 'd'}, {NULL, 0, NULL, 0},
  };
  int c, code = 0;
  optind = 1;
  opterr = 0;
  while ((c = ctl_getopt(argc, argv, ":hd:", longopts, true, "ca", usage, &code)) != -1) {
    if (c == -2)
      return code;
    char *end = NULL;
    switch (c) {
    case O_DIR:
      o->dir = optarg;
      break;
    case O_OUT:
      o->out = optarg;
      break;
    case O_NAME:
      o->name = optarg;
      break;
    case O_DAYS:
      o->days = (int)strtol(optarg, &end, 10);
      if (*end != '\0' || o->days <= 0 || o->days > 36500)
        return usage_err("--days: a number of days from 1 to 36500", optarg);
      break;
    case O_FORCE:
      o->force = true;
      break;
    default:
      break; /* -d: the global option, meaningless here */
    }
  }
  return -1;
}

int ctl_ca_main(int argc, char **argv) {
  struct ca_opts o = {.dir = "."};
  int r = parse(argc, argv, &o);
  if (r >= 0)
    return r;
  /* argv[optind] is "ca" (getopt moved the options before it). */
  const char *verb = optind + 1 < argc ? argv[optind + 1] : NULL;
  ep_err e = {0};
  if (verb != NULL && strcmp(verb, "init") == 0) {
    if (optind + 2 != argc)
      return usage_err("init takes no argument", NULL);
    if (pki_ca_init(o.dir, o.name, o.days, o.force, &e) < 0) {
      ctl_errorf("ca init: %s", e.msg);
      return CTL_EXIT_FAIL;
    }
    printf("%s/ca.key\n%s/ca.crt\n", o.dir, o.dir);
    return CTL_EXIT_OK;
  }
  if (verb != NULL && strcmp(verb, "issue") == 0) {
    if (optind + 3 != argc)
      return usage_err("issue takes one node id", NULL);
    const char *node = argv[optind + 2], *out = o.out != NULL ? o.out : o.dir;
    if (pki_issue(o.dir, node, out, o.days, o.force, &e) < 0) {
      ctl_errorf("ca issue: %s", e.msg);
      return CTL_EXIT_FAIL;
    }
    printf("%s/%s.key\n%s/%s.crt\n", out, node, out, node);
    return CTL_EXIT_OK;
  }
  return usage_err(verb == NULL ? "init or issue?" : "unknown verb (init or issue)", verb);
}
