/* Internals of `edgepullctl setup` (docs/runtime-integration.md):
 * ctl_setup_toml.c reads TOML, ctl_setup_edit.c computes each runtime's new
 * configuration, ctl_setup_file.c writes it crash-safely, keeps the backup
 * and the record `--undo` follows, ctl_setup.c is the command. */
#ifndef EP_CTL_CTL_SETUP_H
#define EP_CTL_CTL_SETUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/err.h"

#define SETUP_FILE_MAX (1u << 20) /* the most of a configuration file we read */
#define SETUP_SEP "\x1f"          /* joins the components of a key path */
#define SETUP_DEFAULT_MIRROR "127.0.0.1:5050"
#define SETUP_SNAP_SOCKET "/run/edgepull/snapshotter.sock"
#define SETUP_CRI "plugins" SETUP_SEP "io.containerd.grpc.v1.cri"

/* ---- TOML reader (ctl_setup_toml.c) ---- */

enum setup_tval {
  SETUP_T_STRING,
  SETUP_T_INT,
  SETUP_T_FLOAT,
  SETUP_T_BOOL,
  SETUP_T_ARRAY,
  SETUP_T_INLINE
};

/* One key with its value, also each key inside an inline table. The path
 * of a key inside the n-th [[array]] element has the component "\x1en". */
struct setup_tkey {
  char *path; /* components joined by SETUP_SEP */
  int line;   /* 1-based */
  enum setup_tval type;
  size_t voff, vlen; /* the value's bytes in the text */
  char *str;         /* the decoded string (SETUP_T_STRING), else NULL */
  bool boolean;
  size_t hdr_ncomp; /* components that come from the [table] header */
};

struct setup_ttable {
  char *path;
  int line;
  bool array;
  size_t indent; /* bytes of white space before '[' */
  size_t end;    /* offset just past the header line */
};

struct setup_toml {
  struct setup_tkey *keys;
  size_t nkeys;
  struct setup_ttable *tables;
  size_t ntables;
  const char *eol; /* "\n" or "\r\n": what the file's first line ends with */
};

/* Parses text (len bytes; name is for messages). Anything it does not
 * understand is -EP_EINVAL naming name:line. */
int setup_toml_parse(const char *text, size_t len, const char *name, struct setup_toml *out,
                     ep_err *err);
void setup_toml_free(struct setup_toml *t);
const struct setup_tkey *setup_toml_key(const struct setup_toml *t, const char *path);
/* The explicit [path] header, NULL when there is none. */
const struct setup_ttable *setup_toml_table(const struct setup_toml *t, const char *path);
/* The first key defined at or below path other than by a [header] of its
 * own (a dotted key or an inline table), so that `[path]` may not be
 * written: NULL when there is none. */
const struct setup_tkey *setup_toml_defined_by_key(const struct setup_toml *t, const char *path);
/* The first key strictly below path (any form), NULL when none. */
const struct setup_tkey *setup_toml_first_below(const struct setup_toml *t, const char *path);

/* ---- computing the new configurations (ctl_setup_edit.c) ---- */

/* Each returns 1 when text changes (*out, *outlen: the new text), 0 when it
 * is already as wanted (*out NULL), <0 with err naming name:line. */
struct setup_cd {
  const char *mirror;      /* "127.0.0.1:5050" */
  bool snapshotter;        /* add the proxy snapshotter and the CRI settings */
  char certs_dir[4096];    /* out: config_path (the first of a list), or the default */
  bool certs_dir_existing; /* out: config_path was already set */
  bool cri_disabled;       /* out: disabled_plugins names the CRI plugin */
  bool imports;            /* out: the file imports others (not read) */
};
int setup_containerd_edit(const char *text, size_t len, const char *name, struct setup_cd *cd,
                          char **out, size_t *outlen, ep_err *err);
/* The hosts.toml that sends every registry to the mirror first. */
char *setup_hosts_toml(const char *mirror);
int setup_docker_merge(const char *text, size_t len, const char *name, const char *mirror,
                       char **out, size_t *outlen, ep_err *err);
/* The registries.conf.d drop-in for these registry hosts (docker.io or
 * dotted hosts without a port). NULL with err for a host it cannot encode. */
char *setup_podman_dropin(const char *mirror, const char *const *hosts, size_t nhosts, ep_err *err);

/* ---- files (ctl_setup_file.c) ---- */

struct setup_file {
  char path[4096];
  bool exists;
  struct stat st;
  char *old; /* the current content ("" when absent) */
  size_t oldlen;
  char *new; /* the wanted content; NULL: leave the file as it is */
  size_t newlen;
};

/* Reads path (at most SETUP_FILE_MAX bytes) into f; a missing file is
 * exists = false and old "". */
int setup_file_load(struct setup_file *f, const char *path, ep_err *err);
void setup_file_release(struct setup_file *f);
/* Writes data to path: a temp file in the same directory, fsync, rename,
 * fsync of the directory. Mode and owner from like, else 0644. */
int setup_write_atomic(const char *path, const char *data, size_t len, const struct stat *like,
                       ep_err *err);
/* fsync of the directory holding path (after a rename or unlink). */
int setup_fsync_dir(const char *path, ep_err *err);
/* A unified diff of a and b (3 lines of context), or the whole new text
 * when the files are too large to compare. */
void setup_print_diff(FILE *out, const char *path, const char *a, size_t alen, const char *b,
                      size_t blen);

/* Applies the plan: backups and the undo record (RECORD) first, then the
 * files, creating missing directories. Prints what it did. */
int setup_apply(const char *record, struct setup_file *files, size_t n, ep_err *err);
/* Undoes what the record at RECORD says; dry_run only prints. */
int setup_undo(const char *record, bool dry_run, ep_err *err);

#endif
