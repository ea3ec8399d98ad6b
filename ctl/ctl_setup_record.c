/* Applying and undoing `edgepullctl setup` (the backup and undo record
 * scheme is described atop ctl_setup_file.c). The record is JSON:
 *   {"edgepull-setup": 1,
 *    "files": [{"path": P, "existed": true, "backup": "P.edgepull-backup"},
 *              {"path": Q, "existed": false}],
 *    "dirs": [directories setup created, parents first]}
 * Each file entry also has "written": a hash (FNV-1a 64, to notice edits,
 * not an integrity check) of what setup last wrote there. A file that was
 * edited since is not lost by --undo: it is kept as FILE.edgepull-replaced
 * before the original comes back. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/cleanup_json.h"
#include "ctl/ctl_setup.h"

#define BACKUP_SUFFIX ".edgepull-backup"

static int record_load(const char *record, json_t **out, ep_err *err) {
  struct setup_file f;
  int r = setup_file_load(&f, record, err);
  *out = NULL;
  if (r < 0)
    return r;
  if (!f.exists) {
    setup_file_release(&f);
    return 0;
  }
  json_error_t je;
  json_t *j = json_loadb(f.old, f.oldlen, 0, &je);
  setup_file_release(&f);
  if (j == NULL || !json_is_object(j) || !json_is_array(json_object_get(j, "files")) ||
      !json_is_array(json_object_get(j, "dirs"))) {
    json_decref(j);
    return ep_error(err, EP_EINVAL, "%s: not an edgepullctl setup record; move it away", record);
  }
  *out = j;
  return 1;
}

static void fnv_hex(const char *s, size_t n, char out[17]) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t k = 0; k < n; k++)
    h = (h ^ (unsigned char)s[k]) * 0x100000001b3ull;
  snprintf(out, 17, "%016" PRIx64, h);
}

static json_t *record_file(json_t *rec, const char *path) {
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(rec, "files"), i, v) {
    const char *p = json_string_value(json_object_get(v, "path"));
    if (p != NULL && strcmp(p, path) == 0)
      return v;
  }
  return NULL;
}

/* mkdir -p of path's parent, appending what it created to dirs. */
static int make_parents(const char *path, json_t *dirs, ep_err *err) {
  char d[4096];
  snprintf(d, sizeof d, "%s", path);
  char *slash = strrchr(d, '/');
  if (slash == NULL || slash == d)
    return 0;
  *slash = '\0';
  for (char *p = d + 1;; p++) {
    if (*p != '/' && *p != '\0')
      continue;
    char c = *p;
    *p = '\0';
    if (mkdir(d, 0755) == 0) {
      printf("created directory %s\n", d);
      if (json_array_append_new(dirs, json_string(d)) < 0)
        return ep_error(err, EP_EINTERNAL, "out of memory");
    } else if (errno != EEXIST) {
      return ep_syserror(err, EP_EIO, "%s: mkdir", d);
    }
    *p = c;
    if (c == '\0')
      return 0;
  }
}

static int backup(json_t *rec, const struct setup_file *f, ep_err *err) {
  json_t *e = json_pack("{s:s, s:b}", "path", f->path, "existed", f->exists);
  if (e == NULL || json_array_append_new(json_object_get(rec, "files"), e) < 0)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  if (!f->exists)
    return 0;
  char b[4200];
  snprintf(b, sizeof b, "%s" BACKUP_SUFFIX, f->path);
  if (access(b, F_OK) == 0)
    return ep_error(err, EP_EINVAL,
                    "%s exists but no setup record names it: move it away (it may be the only "
                    "copy of an earlier original) and rerun",
                    b);
  int r = setup_write_atomic(b, f->old, f->oldlen, &f->st, err);
  if (r < 0)
    return r;
  printf("backup: %s\n", b);
  return json_object_set_new(e, "backup", json_string(b)) < 0
             ? ep_error(err, EP_EINTERNAL, "out of memory")
             : 0;
}

int setup_apply(const char *record, struct setup_file *files, size_t n, ep_err *err) {
  ep_cleanup_json json_t *rec = NULL;
  int r = record_load(record, &rec, err);
  if (r < 0)
    return r;
  if (rec == NULL) {
    rec = json_pack("{s:i, s:[], s:[]}", "edgepull-setup", 1, "files", "dirs");
    if (rec == NULL)
      return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  json_t *dirs = json_object_get(rec, "dirs");
  r = make_parents(record, dirs, err);
  for (size_t k = 0; k < n && r == 0; k++) {
    if (files[k].new == NULL)
      continue;
    r = make_parents(files[k].path, dirs, err);
    if (r == 0 && record_file(rec, files[k].path) == NULL)
      r = backup(rec, &files[k], err);
    char h[17];
    fnv_hex(files[k].new, files[k].newlen, h);
    if (r == 0 &&
        json_object_set_new(record_file(rec, files[k].path), "written", json_string(h)) < 0)
      r = ep_error(err, EP_EINTERNAL, "out of memory");
  }
  ep_cleanup_free char *s = r == 0 ? json_dumps(rec, JSON_PRESERVE_ORDER | JSON_INDENT(2)) : NULL;
  if (r == 0 && s == NULL)
    r = ep_error(err, EP_EINTERNAL, "out of memory");
  if (r == 0)
    r = setup_write_atomic(record, s, strlen(s), NULL, err);
  for (size_t k = 0; k < n && r == 0; k++) {
    if (files[k].new == NULL)
      continue;
    r = setup_write_atomic(files[k].path, files[k].new, files[k].newlen,
                           files[k].exists ? &files[k].st : NULL, err);
    if (r == 0)
      printf("%s %s\n", files[k].exists ? "updated" : "created", files[k].path);
  }
  return r;
}

/* Keeps a file edited since setup wrote it as FILE.edgepull-replaced. */
static int keep_edits(json_t *e, const char *path, bool dry_run, ep_err *err) {
  const char *written = json_string_value(json_object_get(e, "written"));
  struct setup_file f;
  int r = setup_file_load(&f, path, err);
  char h[17];
  if (r == 0 && f.exists && written != NULL) {
    fnv_hex(f.old, f.oldlen, h);
    if (strcmp(h, written) != 0) {
      char keep[4200];
      snprintf(keep, sizeof keep, "%s.edgepull-replaced", path);
      printf("%s was changed after setup: %s its current content as %s\n", path,
             dry_run ? "would keep" : "keeping", keep);
      if (!dry_run)
        r = setup_write_atomic(keep, f.old, f.oldlen, &f.st, err);
    }
  }
  setup_file_release(&f);
  return r;
}

static int undo_file(json_t *e, bool dry_run, ep_err *err) {
  const char *path = json_string_value(json_object_get(e, "path"));
  const char *b = json_string_value(json_object_get(e, "backup"));
  if (path == NULL || (json_is_true(json_object_get(e, "existed")) && b == NULL))
    return ep_error(err, EP_EINVAL, "the setup record has a malformed entry");
  int r = keep_edits(e, path, dry_run, err);
  if (r < 0)
    return r;
  if (b == NULL) {
    printf("%s %s\n", dry_run ? "would remove" : "removed", path);
    if (!dry_run && unlink(path) < 0 && errno != ENOENT)
      return ep_syserror(err, EP_EIO, "%s: unlink", path);
    return dry_run ? 0 : setup_fsync_dir(path, err);
  }
  printf("%s %s from %s\n", dry_run ? "would restore" : "restored", path, b);
  if (dry_run)
    return 0;
  struct setup_file f;
  r = setup_file_load(&f, b, err);
  if (r == 0 && !f.exists)
    r = ep_error(err, EP_ENOTFOUND, "%s: the backup is missing; %s left as it is", b, path);
  if (r == 0)
    r = setup_write_atomic(path, f.old, f.oldlen, &f.st, err);
  setup_file_release(&f);
  if (r == 0 && unlink(b) < 0)
    r = ep_syserror(err, EP_EIO, "%s: unlink", b);
  return r < 0 ? r : setup_fsync_dir(b, err);
}

int setup_undo(const char *record, bool dry_run, ep_err *err) {
  ep_cleanup_json json_t *rec = NULL;
  int r = record_load(record, &rec, err);
  if (r <= 0) {
    if (r == 0)
      printf("nothing to undo: no setup record %s\n", record);
    return r;
  }
  json_t *files = json_object_get(rec, "files"), *dirs = json_object_get(rec, "dirs");
  for (size_t k = json_array_size(files); k-- > 0 && r >= 0;)
    r = undo_file(json_array_get(files, k), dry_run, err);
  if (r < 0)
    return r;
  printf("%s %s\n", dry_run ? "would remove" : "removed", record);
  if (!dry_run && unlink(record) < 0)
    return ep_syserror(err, EP_EIO, "%s: unlink", record);
  if (!dry_run && (r = setup_fsync_dir(record, err)) < 0)
    return r;
  for (size_t k = json_array_size(dirs); k-- > 0;) {
    const char *d = json_string_value(json_array_get(dirs, k));
    if (d == NULL)
      continue;
    if (dry_run)
      printf("would remove directory %s (when empty)\n", d);
    else if (rmdir(d) == 0)
      printf("removed directory %s\n", d);
    else if (errno != ENOENT)
      printf("kept directory %s: %s\n", d, errno == ENOTEMPTY ? "not empty" : strerror(errno));
  }
  return 0;
}
