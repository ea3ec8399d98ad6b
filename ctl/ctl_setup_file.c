/* Files for `edgepullctl setup`: crash-safe writes, the backup, the undo
 * record, and the diff --dry-run prints.
 *
 * Every write is a temp file in the target's directory, fsync, rename over
 * the target, fsync of the directory, with the original's mode and owner:
 * a crash leaves the old file or the new one, never half of one.
 *
 * Before the first change to a runtime, setup writes FILE.edgepull-backup
 * (a byte-for-byte copy of each file it is about to change, same mode and
 * owner) and the undo record RECORD (JSON: for each file whether it existed
 * and where its backup is, and the directories setup created). Both are
 * written once, before any configuration file, and only added to by later
 * runs, so the backup is always the file as it was before edgepull first
 * touched it. `--undo` puts each backup back (or removes a file setup
 * created), removes the directories it created when they are empty, then
 * the record. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "ctl/ctl_setup.h"

#define DIFF_CELLS_MAX (4u << 20) /* the LCS table's cells; larger: print the new text */

int setup_file_load(struct setup_file *f, const char *path, ep_err *err) {
  memset(f, 0, sizeof *f);
  snprintf(f->path, sizeof f->path, "%s", path);
  struct stat lst;
  if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
    /* Write where the link points: a rename over the link would replace it. */
    char real[PATH_MAX];
    if (realpath(path, real) == NULL)
      return ep_syserror(err, EP_EIO, "%s: cannot resolve the symbolic link", path);
    snprintf(f->path, sizeof f->path, "%s", real);
  }
  ep_cleanup_close int fd = open(f->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    f->old = strdup("");
    return f->old != NULL ? 0 : ep_error(err, EP_EINTERNAL, "out of memory");
  }
  if (fd < 0 || fstat(fd, &f->st) < 0)
    return ep_syserror(err, EP_EIO, "%s", path);
  if (!S_ISREG(f->st.st_mode))
    return ep_error(err, EP_EINVAL, "%s: not a regular file", path);
  if (f->st.st_size > (off_t)SETUP_FILE_MAX)
    return ep_error(err, EP_ETOOBIG, "%s: larger than %u bytes", path, SETUP_FILE_MAX);
  f->old = malloc((size_t)f->st.st_size + 1);
  if (f->old == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  size_t got = 0;
  while (got < (size_t)f->st.st_size) {
    ssize_t r = read(fd, f->old + got, (size_t)f->st.st_size - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return ep_syserror(err, EP_EIO, "%s: read", path);
    got += (size_t)r;
  }
  f->old[got] = '\0';
  f->oldlen = got;
  f->exists = true;
  return 0;
}

void setup_file_release(struct setup_file *f) {
  free(f->old);
  free(f->new);
  f->old = f->new = NULL;
}

int setup_fsync_dir(const char *path, ep_err *err) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  ep_cleanup_close int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) < 0)
    return ep_syserror(err, EP_EIO, "%s: fsync", dir);
  return 0;
}

int setup_write_atomic(const char *path, const char *data, size_t len, const struct stat *like,
                       ep_err *err) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.edgepull-XXXXXX", path);
  ep_cleanup_close int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0)
    return ep_syserror(err, EP_EIO, "%s: cannot create a temp file", path);
  int r = 0;
  for (size_t off = 0; off < len && r == 0;) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      r = ep_syserror(err, EP_EIO, "%s: write", tmp);
    else
      off += (size_t)w;
  }
  if (r == 0 && fchmod(fd, like != NULL ? like->st_mode & 07777 : 0644) < 0)
    r = ep_syserror(err, EP_EIO, "%s: chmod", tmp);
  if (r == 0 && like != NULL && fchown(fd, like->st_uid, like->st_gid) < 0)
    r = ep_syserror(err, EP_EIO, "%s: chown", tmp);
  if (r == 0 && fsync(fd) < 0)
    r = ep_syserror(err, EP_EIO, "%s: fsync", tmp);
  if (r == 0 && rename(tmp, path) < 0)
    r = ep_syserror(err, EP_EIO, "%s: rename", path);
  if (r < 0) {
    unlink(tmp);
    return r;
  }
  return setup_fsync_dir(path, err);
}

/* ---- diff ---- */

static size_t split_lines(const char *s, size_t len, const char ***out) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    n += s[i] == '\n';
  n += len > 0 && s[len - 1] != '\n';
  const char **v = malloc((n + 1) * sizeof *v);
  if (v == NULL)
    return (size_t)-1;
  size_t k = 0;
  for (size_t i = 0; i < len;) {
    v[k++] = s + i;
    const char *nl = memchr(s + i, '\n', len - i);
    i = nl != NULL ? (size_t)(nl - s) + 1 : len;
  }
  v[k] = s + len;
  *out = v;
  return n;
}

static bool line_eq(const char **a, size_t i, const char **b, size_t j) {
  size_t la = (size_t)(a[i + 1] - a[i]), lb = (size_t)(b[j + 1] - b[j]);
  return la == lb && memcmp(a[i], b[j], la) == 0;
}

static void put_line(FILE *out, char tag, const char *s, const char *e) {
  fputc(tag, out);
  fwrite(s, 1, (size_t)(e - s), out);
  if (e == s || e[-1] != '\n')
    fputs("\n\\ No newline at end of file\n", out);
}

/* ops: 0 same, 1 delete (a), 2 insert (b); printed as hunks with 3 lines
 * of context. */
static void print_hunks(FILE *out, const char **a, const char **b, const unsigned char *ops,
                        size_t nops) {
  size_t i = 0, ai = 0, bi = 0;
  while (i < nops) {
    size_t c = i;
    while (c < nops && ops[c] == 0)
      c++;
    if (c == nops)
      return;
    size_t start = c >= 3 ? c - 3 : 0, last = c;
    for (size_t k = c; k < nops && k - last <= 6; k++)
      if (ops[k] != 0)
        last = k; /* changes up to 6 lines apart share a hunk */
    size_t end = last + 4 < nops ? last + 4 : nops;
    for (; i < start; i++)
      ai += ops[i] != 2, bi += ops[i] != 1;
    size_t na = 0, nb = 0;
    for (size_t k = start; k < end; k++)
      na += ops[k] != 2, nb += ops[k] != 1;
    fprintf(out, "@@ -%zu,%zu +%zu,%zu @@\n", ai + (na > 0), na, bi + (nb > 0), nb);
    for (; i < end; i++) {
      if (ops[i] == 2) {
        put_line(out, '+', b[bi], b[bi + 1]);
        bi++;
      } else {
        put_line(out, ops[i] == 0 ? ' ' : '-', a[ai], a[ai + 1]);
        if (ops[i] == 0)
          bi++;
        ai++;
      }
    }
  }
}

void setup_print_diff(FILE *out, const char *path, const char *a, size_t alen, const char *b,
                      size_t blen) {
  ep_cleanup_free const char **la = NULL;
  ep_cleanup_free const char **lb = NULL;
  size_t n = split_lines(a, alen, &la), m = split_lines(b, blen, &lb);
  fprintf(out, "--- %s\n+++ %s (edgepull)\n", path, path);
  if (n == (size_t)-1 || m == (size_t)-1 || (n + 1) * (m + 1) > DIFF_CELLS_MAX) {
    fprintf(out, "(too large to compare; the new content:)\n");
    fwrite(b, 1, blen, out);
    return;
  }
  /* L[i][j]: longest common subsequence of a[i..] and b[j..]. */
  ep_cleanup_free unsigned *L = calloc((n + 1) * (m + 1), sizeof *L);
  ep_cleanup_free unsigned char *ops = malloc(n + m + 1);
  if (L == NULL || ops == NULL)
    return;
  for (size_t i = n; i-- > 0;)
    for (size_t j = m; j-- > 0;)
      L[i * (m + 1) + j] = line_eq(la, i, lb, j) ? L[(i + 1) * (m + 1) + j + 1] + 1
                           : L[(i + 1) * (m + 1) + j] > L[i * (m + 1) + j + 1]
                               ? L[(i + 1) * (m + 1) + j]
                               : L[i * (m + 1) + j + 1];
  size_t i = 0, j = 0, k = 0;
  while (i < n || j < m) {
    if (i < n && j < m && line_eq(la, i, lb, j))
      ops[k++] = 0, i++, j++;
    else if (i < n && (j == m || L[(i + 1) * (m + 1) + j] >= L[i * (m + 1) + j + 1]))
      ops[k++] = 1, i++;
    else
      ops[k++] = 2, j++;
  }
  print_hunks(out, la, lb, ops, k);
}
