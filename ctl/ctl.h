/* edgepullctl internals: the subcommands that take the common options
 * (ctl_index.c: the node's own store; ctl_locality.c: nodes, where;
 * ctl_topology.c: topology) and the output helpers they share
 * (ctl_output.c). deploy and setup parse their own command line
 * (ctl_deploy.h, ctl_setup.h). Not used outside ctl/. */
#ifndef EP_CTL_CTL_H
#define EP_CTL_CTL_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "common/err.h"
#include "store/digest.h"

enum { CTL_EXIT_OK = 0, CTL_EXIT_FAIL = 1, CTL_EXIT_USAGE = 2 };

#define CTL_DEFAULT_STATE_DIR "/var/lib/edgepull"

struct ctl_opts {
  const char *state_dir;
  bool json;
  bool no_trunc;         /* full digests and media types in human output */
  const char *arg;       /* the command's argument (where DIGEST), else NULL */
  const char *snap_root; /* --snapshotter-root; NULL: <state_dir>/snapshots */
  const char *endpoint;  /* --endpoint: edgepulld's local endpoint, for stat's /metrics */
  bool dry_run;          /* gc --dry-run */
};

#define CTL_DEFAULT_ENDPOINT "127.0.0.1:5050"

struct ep_buf;
/* GET url into out (ctl_metrics.c): 0, or <0 with err saying why. */
int ctl_metrics_fetch(const char *url, struct ep_buf *out, ep_err *err);
/* The samples of the exposition body, buckets left out: a table on stdout
 * (json_out NULL), else json_out's "daemon" key. <0: out of memory. */
int ctl_metrics_show(const char *body, const char *url, json_t *json_out);

/* Each returns a process exit code. */
int ctl_cmd_layers(const struct ctl_opts *o);
int ctl_cmd_images(const struct ctl_opts *o);
int ctl_cmd_stat(const struct ctl_opts *o);
int ctl_cmd_schema(const struct ctl_opts *o);
int ctl_cmd_nodes(const struct ctl_opts *o);
int ctl_cmd_where(const struct ctl_opts *o);
int ctl_cmd_topology(const struct ctl_opts *o);
int ctl_cmd_snapshots(const struct ctl_opts *o); /* ctl_snapshots.c */
/* Through edgepulld's local endpoint (ctl_gc.c). */
int ctl_cmd_gc(const struct ctl_opts *o);
int ctl_cmd_pin(const struct ctl_opts *o);
int ctl_cmd_unpin(const struct ctl_opts *o);
int ctl_cmd_du(const struct ctl_opts *o); /* ctl_du.c, the index alone */
/* `deploy` parses its own options from the whole command line (ctl_deploy.c). */
int ctl_deploy_main(int argc, char **argv);
/* So does `setup` (ctl_setup.c). */
int ctl_setup_main(int argc, char **argv);
/* And `ca` (ctl_ca.c). */
int ctl_ca_main(int argc, char **argv);

typedef struct index_db index_db;
/* Opens DIR/index.db read-only (path filled in); NULL after printing why. */
index_db *ctl_open_index(const struct ctl_opts *o, char *path, size_t cap);
/* The same, refusing (with the reason printed) an index without the
 * locality tables (schema v1). */
index_db *ctl_open_locality(const struct ctl_opts *o);

/* The layer digests the snapshotter has unpacked: those of its committed snapshots
 * (ctl_snapshots.c). known is false, after a warning on stderr, when its database could not be
 * read; a node without snapshotter state has an empty, known set. */
struct ctl_unpacked {
  digest_t *v; /* sorted */
  size_t n;
  bool known;
};
void ctl_unpacked_load(const struct ctl_opts *o, struct ctl_unpacked *u);
bool ctl_unpacked_has(const struct ctl_unpacked *u, const digest_t *d);
void ctl_unpacked_free(struct ctl_unpacked *u);

struct index_node;
/* "addr:port", "[v6]:port", "addr" (no port) or "-" (no address). */
void ctl_fmt_address(const struct index_node *n, char *buf, size_t cap);
/* One node's JSON object (keys: docs/index.md); NULL when out of memory. */
json_t *ctl_node_json(const struct index_node *n);

/* "edgepullctl: <message>\n" on stderr. */
void ctl_errorf(const char *fmt, ...) EP_PRINTF(1, 2);

/* A subcommand's usage error: "edgepullctl: CMD: MSG[: ARG]" and where help
 * is. Returns CTL_EXIT_USAGE. */
int ctl_usage_err(const char *cmd, const char *msg, const char *arg);
/* One step of a subcommand's getopt_long loop (optind and opterr are set
 * up by the caller), with the rules every subcommand shares: -h prints
 * usage on stdout; a missing argument, an unknown option and (with
 * nonempty) an empty or overlong value are usage errors. Returns the
 * option, -1 after the last one, or -2 with *exit_code to return. */
int ctl_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
               bool nonempty, const char *cmd, void (*usage)(FILE *out), int *exit_code);

/* Aligned columns for human output. Cells are copied with control and
 * non-ASCII bytes replaced by '?', so hostile names cannot drive the
 * operator's terminal. */
struct ctl_col {
  const char *name;
  bool right; /* right-aligned (numbers) */
};
typedef struct ctl_table ctl_table;
ctl_table *ctl_table_new(const struct ctl_col *cols, size_t ncols); /* NULL: out of memory */
int ctl_table_add(ctl_table *t, const char *const *cells);          /* <0: out of memory */
void ctl_table_print(const ctl_table *t, FILE *out);
size_t ctl_table_rows(const ctl_table *t);
void ctl_table_free(ctl_table *t);

/* "512 B", "1.5 KiB", "3.2 GiB". */
void ctl_fmt_size(uint64_t n, char *buf, size_t cap);
/* "2024-05-01T12:00:00Z", "-" for 0. */
void ctl_fmt_time(int64_t t, char *buf, size_t cap);
/* "45s", "12m", "5h", "3d". */
void ctl_fmt_duration(int64_t secs, char *buf, size_t cap);
/* s with every "sha256:<64 hex>" in it cut to "sha256:<12 hex>" unless full (truncated to cap). */
void ctl_short_digests(const char *s, bool full, char *buf, size_t cap);
/* qsort/bsearch order of digest_t. */
int ctl_digest_cmp(const void *a, const void *b);
/* "sha256:<12 hex>" unless full; then "sha256:<64 hex>". */
void ctl_fmt_digest(const digest_t *d, bool full, char *buf, size_t cap);
/* A short name for well-known media types ("oci layer gzip"), else mt. */
const char *ctl_short_media_type(const char *mt);

/* A JSON string; invalid UTF-8 is replaced rather than dropped. */
json_t *ctl_json_str(const char *s);
/* Print root (indented, newline-terminated) on stdout and release it. */
int ctl_json_print(json_t *root);
/* The same with json_dumpf flags (JSON_COMPACT for very deep documents). */
int ctl_json_print_flags(json_t *root, size_t flags);

#endif
