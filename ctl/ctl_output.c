/* Output helpers for edgepullctl: aligned tables for people, jansson
 * documents for programs, and the small formatters both use.
 *
 * Everything printed comes from the index, which holds names and media types
 * an upstream registry chose; human output replaces control and non-ASCII
 * bytes so that nothing in the index can move the operator's cursor or
 * change the terminal, and JSON output replaces invalid UTF-8 (jansson would
 * otherwise refuse the string). */
#include "ctl/ctl.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/escape.h"
#include "common/vec.h"

struct ctl_table {
  const struct ctl_col *cols;
  size_t ncols;
  char **cells;      /* nrows * ncols, row-major */
  size_t nrows, cap; /* cap counts cells, not rows */
};

void ctl_errorf(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "edgepullctl: %s\n", msg);
}

int ctl_usage_err(const char *cmd, const char *msg, const char *arg) {
  ctl_errorf("%s: %s%s%s", cmd, msg, arg ? ": " : "", arg ? arg : "");
  fprintf(stderr, "Try 'edgepullctl %s --help'.\n", cmd);
  return CTL_EXIT_USAGE;
}

int ctl_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
               bool nonempty, const char *cmd, void (*usage)(FILE *out), int *exit_code) {
  int c = getopt_long(argc, argv, shortopts, longopts, NULL);
  if (c == -1)
    return -1;
  if (c == 'h') {
    usage(stdout);
    *exit_code = CTL_EXIT_OK;
  } else if (c == ':') {
    *exit_code = ctl_usage_err(cmd, "option needs an argument", argv[optind - 1]);
  } else if (c == '?') {
    *exit_code = ctl_usage_err(cmd, "unknown option", argv[optind - 1]);
  } else if (nonempty && optarg != NULL && (optarg[0] == '\0' || strlen(optarg) >= 4000)) {
    *exit_code = ctl_usage_err(cmd, "empty or too long", argv[optind - 1]);
  } else {
    return c;
  }
  return -2;
}

ctl_table *ctl_table_new(const struct ctl_col *cols, size_t ncols) {
  ctl_table *t = calloc(1, sizeof *t);
  if (t != NULL) {
    t->cols = cols;
    t->ncols = ncols;
  }
  return t;
}

static char *sanitized(const char *s) {
  char *c = strdup(s != NULL ? s : "");
  if (c != NULL)
    ep_sanitize(c, SIZE_MAX);
  return c;
}

int ctl_table_add(ctl_table *t, const char *const *cells) {
  if (t->nrows + 1 > SIZE_MAX / t->ncols)
    return -1;
  if (ep_vec_reserve(&t->cells, &t->cap, (t->nrows + 1) * t->ncols, SIZE_MAX) < 0)
    return -1;
  char **row = &t->cells[t->nrows * t->ncols];
  for (size_t i = 0; i < t->ncols; i++) {
    if ((row[i] = sanitized(cells[i])) == NULL) {
      while (i > 0)
        free(row[--i]);
      return -1;
    }
  }
  t->nrows++;
  return 0;
}

static void print_row(const ctl_table *t, const size_t *w, const char *const *row, FILE *out) {
  for (size_t c = 0; c < t->ncols; c++) {
    bool last = c + 1 == t->ncols;
    const char *sep = last ? "\n" : "  ";
    if (t->cols[c].right)
      fprintf(out, "%*s%s", (int)w[c], row[c], sep);
    else if (last)
      fprintf(out, "%s%s", row[c], sep);
    else
      fprintf(out, "%-*s%s", (int)w[c], row[c], sep);
  }
}

void ctl_table_print(const ctl_table *t, FILE *out) {
  size_t *w = calloc(t->ncols, sizeof *w);
  const char **head = calloc(t->ncols, sizeof *head);
  if (w == NULL || head == NULL) {
    free(w);
    free(head);
    return;
  }
  for (size_t c = 0; c < t->ncols; c++) {
    head[c] = t->cols[c].name;
    w[c] = strlen(head[c]);
  }
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t c = 0; c < t->ncols; c++) {
      size_t n = strlen(t->cells[r * t->ncols + c]);
      if (n > w[c])
        w[c] = n < 1024 ? n : 1024;
    }
  print_row(t, w, head, out);
  for (size_t r = 0; r < t->nrows; r++)
    print_row(t, w, (const char *const *)&t->cells[r * t->ncols], out);
  free(w);
  free(head);
}

size_t ctl_table_rows(const ctl_table *t) {
  return t != NULL ? t->nrows : 0;
}

void ctl_table_free(ctl_table *t) {
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->nrows * t->ncols; i++)
    free(t->cells[i]);
  free(t->cells);
  free(t);
}

void ctl_fmt_size(uint64_t n, char *buf, size_t cap) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (n < 1024) {
    snprintf(buf, cap, "%llu B", (unsigned long long)n);
    return;
  }
  double v = (double)n;
  size_t u = 0;
  while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024.0;
    u++;
  }
  snprintf(buf, cap, "%.1f %s", v, units[u]);
}

void ctl_fmt_time(int64_t t, char *buf, size_t cap) {
  struct tm tm;
  time_t tt = (time_t)t;
  if (t <= 0 || gmtime_r(&tt, &tm) == NULL || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(buf, cap, "-");
}

void ctl_fmt_duration(int64_t secs, char *buf, size_t cap) {
  if (secs < 0)
    secs = 0;
  if (secs < 120)
    snprintf(buf, cap, "%llds", (long long)secs);
  else if (secs < 2 * 3600)
    snprintf(buf, cap, "%lldm", (long long)(secs / 60));
  else if (secs < 2 * 86400)
    snprintf(buf, cap, "%lldh", (long long)(secs / 3600));
  else
    snprintf(buf, cap, "%lldd", (long long)(secs / 86400));
}

void ctl_fmt_digest(const digest_t *d, bool full, char *buf, size_t cap) {
  snprintf(buf, cap, "sha256:%.*s", full ? DIGEST_HEX_LEN : 12, d->hex);
}

int ctl_digest_cmp(const void *a, const void *b) {
  return strcmp(((const digest_t *)a)->hex, ((const digest_t *)b)->hex);
}

static bool is_hex64(const char *s) {
  for (int i = 0; i < DIGEST_HEX_LEN; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

void ctl_short_digests(const char *s, bool full, char *buf, size_t cap) {
  static const char pre[] = "sha256:";
  size_t k = 0;
  if (cap == 0)
    return;
  while (*s != '\0' && k + 1 < cap) {
    if (!full && strncmp(s, pre, sizeof pre - 1) == 0 && is_hex64(s + sizeof pre - 1)) {
      int n = snprintf(buf + k, cap - k, "%s%.12s", pre, s + sizeof pre - 1);
      k = n < 0 || (size_t)n >= cap - k ? cap - 1 : k + (size_t)n;
      s += sizeof pre - 1 + DIGEST_HEX_LEN;
      continue;
    }
    buf[k++] = *s++;
  }
  buf[k] = '\0';
}

const char *ctl_short_media_type(const char *mt) {
  static const char *const names[][2] = {
      {"application/vnd.oci.image.index.v1+json", "oci index"},
      {"application/vnd.oci.image.manifest.v1+json", "oci manifest"},
      {"application/vnd.oci.image.config.v1+json", "oci config"},
      {"application/vnd.oci.image.layer.v1.tar", "oci layer"},
      {"application/vnd.oci.image.layer.v1.tar+gzip", "oci layer gzip"},
      {"application/vnd.oci.image.layer.v1.tar+zstd", "oci layer zstd"},
      {"application/vnd.docker.distribution.manifest.list.v2+json", "docker list"},
      {"application/vnd.docker.distribution.manifest.v2+json", "docker manifest"},
      {"application/vnd.docker.container.image.v1+json", "docker config"},
      {"application/vnd.docker.image.rootfs.diff.tar.gzip", "docker layer gzip"},
      {"", "-"},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(mt, names[i][0]) == 0)
      return names[i][1];
  return mt;
}

json_t *ctl_json_str(const char *s) {
  json_t *j = json_string(s != NULL ? s : "");
  if (j != NULL)
    return j;
  char *c = sanitized(s); /* invalid UTF-8: keep what is ASCII */
  j = json_string(c != NULL ? c : "");
  free(c);
  return j;
}

int ctl_json_print(json_t *root) {
  return ctl_json_print_flags(root, JSON_INDENT(2));
}

int ctl_json_print_flags(json_t *root, size_t flags) {
  if (root == NULL) {
    ctl_errorf("out of memory building JSON");
    return CTL_EXIT_FAIL;
  }
  int r = json_dumpf(root, stdout, flags);
  json_decref(root);
  if (r < 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
    ctl_errorf("writing JSON to stdout failed");
    return CTL_EXIT_FAIL;
  }
  return CTL_EXIT_OK;
}
