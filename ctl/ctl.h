/* edgepullctl internals: the subcommands (ctl_index.c) and the output
 * helpers they share (ctl_output.c). Not used outside ctl/. */
#ifndef EP_CTL_CTL_H
#define EP_CTL_CTL_H

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
  bool no_trunc; /* full digests and media types in human output */
};

/* Each returns a process exit code. */
int ctl_cmd_layers(const struct ctl_opts *o);
int ctl_cmd_images(const struct ctl_opts *o);
int ctl_cmd_stat(const struct ctl_opts *o);
int ctl_cmd_schema(const struct ctl_opts *o);

/* "edgepullctl: <message>\n" on stderr. */
void ctl_errorf(const char *fmt, ...) EP_PRINTF(1, 2);

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
void ctl_table_free(ctl_table *t);

/* "512 B", "1.5 KiB", "3.2 GiB". */
void ctl_fmt_size(uint64_t n, char *buf, size_t cap);
/* "2024-05-01T12:00:00Z", "-" for 0. */
void ctl_fmt_time(int64_t t, char *buf, size_t cap);
/* "45s", "12m", "5h", "3d". */
void ctl_fmt_duration(int64_t secs, char *buf, size_t cap);
/* "sha256:<12 hex>" unless full; then "sha256:<64 hex>". */
void ctl_fmt_digest(const digest_t *d, bool full, char *buf, size_t cap);
/* A short name for well-known media types ("oci layer gzip"), else mt. */
const char *ctl_short_media_type(const char *mt);

/* A JSON string; invalid UTF-8 is replaced rather than dropped. */
json_t *ctl_json_str(const char *s);
/* Print root (indented, newline-terminated) on stdout and release it. */
int ctl_json_print(json_t *root);

#endif
