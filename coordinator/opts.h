/* edgepull-coordinator's command line. */
#ifndef EP_COORDINATOR_OPTS_H
#define EP_COORDINATOR_OPTS_H

#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "locality/proto.h"
#include "locality/topo.h"

#define COORD_OPTS_PATH_MAX 4096

struct coord_opts {
  char broker_host[256];
  uint16_t broker_port; /* 0 until parsed: 1883, or 8883 with --ca-file */
  char locality[PROTO_ID_MAX + 1];
  char gateway[PROTO_ID_MAX + 1]; /* the gateway's node id (required) */
  enum topo_strategy strategy;
  unsigned k;
  char username[256];
  char password_file[COORD_OPTS_PATH_MAX];
  char password[NAMES_SECRET_MAX + 1]; /* read from password_file */
  char ca_file[COORD_OPTS_PATH_MAX];
  unsigned heartbeat_timeout; /* seconds */
  unsigned keepalive;         /* seconds */
  char client_id[128];
};

/* Parses argv into o (defaults first), reads the password file and checks
 * every value. Returns 0, 1 when --help or --version was printed to out, or
 * a negative EP_E* with err naming the flag at fault. Resets getopt. */
int coord_opts_parse(struct coord_opts *o, int argc, char **argv, FILE *out, ep_err *err);
void coord_opts_usage(FILE *out);
/* Wipes the password. */
void coord_opts_clear(struct coord_opts *o);

#endif
