/* What `edgepullctl setup` wants each runtime's configuration to be.
 *
 * containerd's config.toml is edited as text: a missing key is a line
 * inserted after its table's header (or, when the table has no header, a
 * new table appended at the end), a key with another value has only that
 * value's bytes replaced. Everything else, comments and layout included,
 * stays as it was. A key or table that is defined in a form we cannot
 * extend safely (a dotted key, an inline table) is an error naming the
 * line. The result is parsed again and each key checked before it is
 * handed back. Docker's daemon.json is JSON, merged with jansson (other
 * keys kept in their order); the podman drop-in is ours entirely. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/cleanup_json.h"
#include "common/names.h"
#include "ctl/ctl_setup.h"

struct edit {
  size_t off, del;
  char *ins;
  size_t seq; /* insertions at one offset keep their order */
};

struct edits {
  struct edit v[16];
  size_t n;
  struct ep_buf tail;    /* new tables, appended at the end */
  char tail_table[1024]; /* the path of the last table appended */
};

static void edits_free(struct edits *e) {
  for (size_t k = 0; k < e->n; k++)
    free(e->v[k].ins);
  ep_buf_free(&e->tail);
}

static int edit_add(struct edits *e, size_t off, size_t del, char *ins, ep_err *err) {
  if (ins == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  if (e->n >= sizeof e->v / sizeof e->v[0]) {
    free(ins);
    return ep_error(err, EP_EINTERNAL, "too many edits");
  }
  e->v[e->n] = (struct edit){off, del, ins, e->n};
  e->n++;
  return 0;
}

static bool bare_key(const char *s) {
  if (*s == '\0')
    return false;
  for (; *s != '\0'; s++)
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
          *s == '_' || *s == '-'))
      return false;
  return true;
}

/* "plugins\x1fio.containerd.grpc.v1.cri" as `plugins."io.containerd.grpc.v1.cri"`.
 * Our own paths hold no quote or backslash. */
static void toml_path(const char *path, char *out, size_t cap) {
  size_t o = 0;
  out[0] = '\0';
  for (const char *c = path; o + 4 < cap;) {
    const char *e = strchr(c, SETUP_SEP[0]);
    size_t l = e != NULL ? (size_t)(e - c) : strlen(c);
    char comp[512];
    snprintf(comp, sizeof comp, "%.*s", (int)l, c);
    int w = snprintf(out + o, cap - o, bare_key(comp) ? "%s%s" : "%s\"%s\"", o ? "." : "", comp);
    if (w < 0 || (size_t)w >= cap - o)
      break;
    o += (size_t)w;
    if (e == NULL)
      break;
    c = e + 1;
  }
}

static char *join(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *r = malloc(la + lb + 2);
  if (r != NULL) {
    memcpy(r, a, la);
    r[la] = SETUP_SEP[0];
    memcpy(r + la + 1, b, lb + 1);
  }
  return r;
}

static char *dupf(const char *f, ...) EP_PRINTF(1, 2);
static char *dupf(const char *f, ...) {
  char *r = NULL;
  va_list ap;
  va_start(ap, f);
  if (vasprintf(&r, f, ap) < 0)
    r = NULL;
  va_end(ap);
  return r;
}

/* Sets table.key to literal (a TOML string or boolean as text). */
static int set_key(const struct setup_toml *t, const char *text, size_t len, const char *name,
                   struct edits *e, const char *table, const char *key, const char *literal,
                   ep_err *err) {
  ep_cleanup_free char *full = join(table, key);
  if (full == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  char shown[1024];
  toml_path(full, shown, sizeof shown);
  const struct setup_tkey *k = setup_toml_key(t, full);
  if (k != NULL) {
    if (k->vlen == strlen(literal) && memcmp(text + k->voff, literal, k->vlen) == 0)
      return 0;
    bool want_str = literal[0] == '"';
    if (k->type != (want_str ? SETUP_T_STRING : SETUP_T_BOOL))
      return ep_error(err, EP_EINVAL, "%s:%d: %s is not a %s; fix it by hand", name, k->line, shown,
                      want_str ? "string" : "boolean");
    return edit_add(e, k->voff, k->vlen, strdup(literal), err);
  }
  for (size_t a = 0; a < t->ntables; a++) {
    size_t l = strlen(t->tables[a].path);
    if (t->tables[a].array && strncmp(t->tables[a].path, table, l) == 0 &&
        (table[l] == '\0' || table[l] == SETUP_SEP[0]))
      return ep_error(err, EP_EINVAL, "%s:%d: an array of tables where %s belongs; fix it by hand",
                      name, t->tables[a].line, shown);
  }
  const struct setup_tkey *by = setup_toml_defined_by_key(t, table);
  if (by != NULL) {
    char tshown[1024];
    toml_path(table, tshown, sizeof tshown);
    return ep_error(err, EP_EINVAL,
                    "%s:%d: [%s] is defined by a dotted key or an inline table here; add %s = %s "
                    "by hand",
                    name, by->line, tshown, key, literal);
  }
  const struct setup_ttable *h = setup_toml_table(t, table);
  if (h != NULL) {
    bool need_eol = h->end == len && (len == 0 || text[len - 1] != '\n');
    char line[2048];
    snprintf(line, sizeof line, "%s%*s%s = %s%s", need_eol ? t->eol : "", (int)(h->indent + 2), "",
             key, literal, t->eol);
    char *ins = strdup(line);
    return edit_add(e, h->end, 0, ins, err);
  }
  char line[2048];
  if (strcmp(e->tail_table, table) != 0) {
    char tshown[1024];
    toml_path(table, tshown, sizeof tshown);
    snprintf(line, sizeof line, "%s[%s]%s", t->eol, tshown, t->eol);
    if (ep_buf_append(&e->tail, line, strlen(line)) < 0)
      return ep_error(err, EP_EINTERNAL, "out of memory");
    snprintf(e->tail_table, sizeof e->tail_table, "%s", table);
  }
  snprintf(line, sizeof line, "  %s = %s%s", key, literal, t->eol);
  if (ep_buf_append(&e->tail, line, strlen(line)) < 0)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  return 0;
}

static int cmp_edit(const void *a, const void *b) {
  const struct edit *x = a, *y = b;
  return x->off < y->off ? -1 : x->off > y->off ? 1 : x->seq < y->seq ? -1 : 1;
}

static int apply(const char *text, size_t len, const char *eol, struct edits *e, char **out,
                 size_t *outlen, ep_err *err) {
  qsort(e->v, e->n, sizeof e->v[0], cmp_edit);
  ep_cleanup_buf struct ep_buf b;
  ep_buf_init(&b, SETUP_FILE_MAX * 2);
  size_t at = 0;
  int r = 0;
  for (size_t k = 0; k < e->n && r == 0; k++) {
    r = ep_buf_append(&b, text + at, e->v[k].off - at);
    if (r == 0)
      r = ep_buf_append(&b, e->v[k].ins, strlen(e->v[k].ins));
    at = e->v[k].off + e->v[k].del;
  }
  if (r == 0)
    r = ep_buf_append(&b, text + at, len - at);
  if (r == 0 && e->tail.len > 0) {
    size_t skip = 0;
    if (b.len == 0)
      skip = strlen(eol); /* no blank line at the top of a new file */
    else if (b.data[b.len - 1] != '\n')
      r = ep_buf_append(&b, eol, strlen(eol));
    if (r == 0)
      r = ep_buf_append(&b, e->tail.data + skip, e->tail.len - skip);
  }
  if (r < 0)
    return ep_error(err, -r, "the new configuration is too large");
  *out = ep_buf_steal(&b, outlen);
  return *out != NULL ? 1 : ep_error(err, EP_EINTERNAL, "out of memory");
}

static int check_version(const struct setup_toml *t, const char *name, const char *text,
                         ep_err *err) {
  const struct setup_tkey *v = setup_toml_key(t, "version");
  if (v == NULL && (t->nkeys > 0 || t->ntables > 0))
    return ep_error(err, EP_EUNSUPPORTED,
                    "%s: no `version = 2`: a version 1 configuration (containerd < 1.5 style); "
                    "convert it to version 2 first (`containerd config migrate` in 1.7+, or by "
                    "hand)",
                    name);
  if (v != NULL && !(v->type == SETUP_T_INT && v->vlen == 1 && text[v->voff] == '2'))
    return ep_error(err, EP_EUNSUPPORTED, "%s:%d: unsupported config version", name, v->line);
  return 0;
}

static int check_registry(const struct setup_toml *t, const char *name, ep_err *err) {
  static const char *const subs[] = {"mirrors", "configs"};
  for (size_t s = 0; s < 2; s++) {
    char path[256];
    snprintf(path, sizeof path, "%s" SETUP_SEP "registry" SETUP_SEP "%s", SETUP_CRI, subs[s]);
    const struct setup_tkey *k = setup_toml_first_below(t, path);
    if (k != NULL && (s == 0 || strstr(k->path, SETUP_SEP "tls") != NULL))
      return ep_error(err, EP_EINVAL,
                      "%s:%d: the CRI registry has `%s`%s, which containerd refuses together "
                      "with config_path; move it to hosts.toml files under certs.d and rerun",
                      name, k->line, subs[s], s == 1 ? " with tls settings" : "");
  }
  return 0;
}

/* config_path: the first directory of a ':'-separated list, as containerd
 * reads it; the default when empty or unset (then set). */
static int config_path(const struct setup_toml *t, const char *text, size_t len, const char *name,
                       struct edits *e, struct setup_cd *cd, ep_err *err) {
  const char *reg = SETUP_CRI SETUP_SEP "registry";
  const struct setup_tkey *k =
      setup_toml_key(t, SETUP_CRI SETUP_SEP "registry" SETUP_SEP "config_path");
  if (k != NULL && k->type == SETUP_T_STRING && k->str[0] != '\0') {
    size_t l = strcspn(k->str, ":");
    if (k->str[0] != '/' || l >= sizeof cd->certs_dir)
      return ep_error(err, EP_EINVAL, "%s:%d: config_path is not an absolute path", name, k->line);
    snprintf(cd->certs_dir, sizeof cd->certs_dir, "%.*s", (int)l, k->str);
    cd->certs_dir_existing = true;
    return 0;
  }
  snprintf(cd->certs_dir, sizeof cd->certs_dir, "/etc/containerd/certs.d");
  return set_key(t, text, len, name, e, reg, "config_path", "\"/etc/containerd/certs.d\"", err);
}

static int snapshotter(const struct setup_toml *t, const char *text, size_t len, const char *name,
                       struct edits *e, ep_err *err) {
  const char *pp = "proxy_plugins" SETUP_SEP "edgepull";
  const char *cri = SETUP_CRI SETUP_SEP "containerd";
  int r = set_key(t, text, len, name, e, pp, "type", "\"snapshot\"", err);
  if (r == 0)
    r = set_key(t, text, len, name, e, pp, "address", "\"" SETUP_SNAP_SOCKET "\"", err);
  if (r == 0)
    r = set_key(t, text, len, name, e, cri, "snapshotter", "\"edgepull\"", err);
  if (r == 0)
    r = set_key(t, text, len, name, e, cri, "disable_snapshot_annotations", "false", err);
  return r;
}

/* The result must parse and hold what we set. */
static int verify(const char *text, size_t len, const char *name, const struct setup_cd *cd,
                  ep_err *err) {
  struct setup_toml t;
  int r = setup_toml_parse(text, len, name, &t, err);
  if (r < 0)
    return ep_wrap(err, "internal error: the edited configuration does not parse");
  const struct setup_tkey *k =
      setup_toml_key(&t, SETUP_CRI SETUP_SEP "registry" SETUP_SEP "config_path");
  const struct setup_tkey *s =
      setup_toml_key(&t, SETUP_CRI SETUP_SEP "containerd" SETUP_SEP "snapshotter");
  const struct setup_tkey *v = setup_toml_key(&t, "version");
  bool ok = k != NULL && k->str != NULL &&
            strncmp(k->str, cd->certs_dir, strlen(cd->certs_dir)) == 0 && v != NULL &&
            (!cd->snapshotter || (s != NULL && s->str != NULL && strcmp(s->str, "edgepull") == 0));
  setup_toml_free(&t);
  return ok ? 0
            : ep_error(err, EP_EINTERNAL, "internal error: the edited %s lacks a setting", name);
}

int setup_containerd_edit(const char *text, size_t len, const char *name, struct setup_cd *cd,
                          char **out, size_t *outlen, ep_err *err) {
  struct setup_toml t;
  *out = NULL;
  int r = setup_toml_parse(text, len, name, &t, err);
  if (r < 0)
    return r;
  struct edits e = {0};
  ep_buf_init(&e.tail, SETUP_FILE_MAX);
  r = check_version(&t, name, text, err);
  if (r == 0 && setup_toml_key(&t, "version") == NULL)
    r = edit_add(&e, 0, 0, dupf("version = 2%s", t.eol), err);
  if (r == 0)
    r = check_registry(&t, name, err);
  if (r == 0)
    r = config_path(&t, text, len, name, &e, cd, err);
  if (r == 0 && cd->snapshotter)
    r = snapshotter(&t, text, len, name, &e, err);
  const struct setup_tkey *dis = setup_toml_key(&t, "disabled_plugins");
  cd->cri_disabled = dis != NULL && dis->type == SETUP_T_ARRAY &&
                     memmem(text + dis->voff, dis->vlen, "io.containerd.grpc.v1.cri\"", 26) != NULL;
  cd->imports = setup_toml_key(&t, "imports") != NULL;
  const char *eol = t.eol;
  setup_toml_free(&t);
  if (r == 0 && e.n == 0 && e.tail.len == 0) {
    edits_free(&e);
    return 0;
  }
  if (r == 0)
    r = apply(text, len, eol, &e, out, outlen, err);
  edits_free(&e);
  if (r >= 0 && verify(*out, *outlen, name, cd, err) < 0) {
    free(*out);
    *out = NULL;
    return -EP_EINTERNAL;
  }
  return r;
}

char *setup_hosts_toml(const char *mirror) {
  return dupf("# Written by `edgepullctl setup containerd`: every registry's pulls go to\n"
              "# edgepulld first; containerd falls back to the registry itself when it\n"
              "# fails. `edgepullctl setup containerd --undo` removes this file.\n\n"
              "[host.\"http://%s\"]\n"
              "  capabilities = [\"pull\", \"resolve\"]\n",
              mirror);
}

/* ---- Docker ---- */

static bool same_mirror(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  while (la > 0 && a[la - 1] == '/')
    la--;
  while (lb > 0 && b[lb - 1] == '/')
    lb--;
  return la == lb && strncmp(a, b, la) == 0;
}

int setup_docker_merge(const char *text, size_t len, const char *name, const char *mirror,
                       char **out, size_t *outlen, ep_err *err) {
  char url[300];
  snprintf(url, sizeof url, "http://%s", mirror);
  *out = NULL;
  size_t ws = strspn(text, " \t\r\n");
  json_error_t je;
  ep_cleanup_json json_t *root =
      ws == len ? json_object() : json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (root == NULL)
    return ep_error(err, EP_EINVAL, "%s:%d: %s; fix it first (Docker would not start either)", name,
                    je.line, je.text);
  if (!json_is_object(root))
    return ep_error(err, EP_EINVAL, "%s: not a JSON object", name);
  json_t *m = json_object_get(root, "registry-mirrors");
  if (m == NULL) {
    m = json_array();
    if (m == NULL || json_object_set_new(root, "registry-mirrors", m) < 0)
      return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  if (!json_is_array(m))
    return ep_error(err, EP_EINVAL, "%s: \"registry-mirrors\" is not an array", name);
  size_t i;
  json_t *v;
  json_array_foreach(m, i, v) {
    if (!json_is_string(v))
      return ep_error(err, EP_EINVAL, "%s: \"registry-mirrors\" holds a non-string", name);
    if (same_mirror(json_string_value(v), url))
      return 0;
  }
  if (json_array_append_new(m, json_string(url)) < 0)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  size_t indent = 2; /* as the file's first indented line, when it has one */
  const char *nl = memchr(text, '\n', len);
  if (nl != NULL) {
    size_t sp = strspn(nl + 1, " ");
    indent = sp >= 1 && sp <= 8 ? sp : indent;
  }
  ep_cleanup_free char *s = json_dumps(root, JSON_PRESERVE_ORDER | JSON_INDENT(indent));
  if (s == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  *out = dupf("%s\n", s);
  if (*out == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  *outlen = strlen(*out);
  return 1;
}

/* ---- podman, CRI-O ---- */

char *setup_podman_dropin(const char *mirror, const char *const *hosts, size_t nhosts,
                          ep_err *err) {
  ep_cleanup_buf struct ep_buf b;
  ep_buf_init(&b, SETUP_FILE_MAX);
  const char *head =
      "# Written by `edgepullctl setup podman`: podman, buildah, skopeo and CRI-O\n"
      "# try edgepulld first for these registries and fall back to the registry.\n"
      "# edgepulld reads the upstream from the first path component (a host with\n"
      "# a '.'), docker.io otherwise. `edgepullctl setup podman --undo` removes it.\n";
  int r = ep_buf_append(&b, head, strlen(head));
  for (size_t k = 0; k < nhosts && r == 0; k++) {
    const char *h = hosts[k];
    bool hub = strcmp(h, "docker.io") == 0;
    if (strchr(h, '[') != NULL) {
      ep_error(err, EP_EUNSUPPORTED,
               "--registry %s: an IPv6 literal cannot be put in a mirror location; give it a "
               "name (edgepulld --registry NAME=URL)",
               h);
      return NULL;
    }
    /* HOST:PORT goes into the location as HOST_PORT (a path component
     * cannot hold ':'); edgepulld reads it back (plugin/ref/ref.c). */
    char enc[NAMES_HOST_MAX + 1];
    snprintf(enc, sizeof enc, "%s", h);
    char *colon = strchr(enc, ':');
    if (colon != NULL)
      *colon = '\0';
    bool dotted = strchr(enc, '.') != NULL || strcmp(enc, "localhost") == 0;
    if (colon != NULL)
      *colon = '_';
    if (!names_registry_valid(h) || (!hub && !dotted)) {
      ep_error(err, EP_EINVAL,
               "--registry %s: not a registry host edgepulld can tell from a Docker Hub "
               "namespace (it needs a '.')",
               h);
      return NULL;
    }
    for (size_t j = 0; j < k; j++)
      if (strcmp(hosts[j], h) == 0) {
        ep_error(err, EP_EINVAL, "--registry %s: given twice", h);
        return NULL;
      }
    char entry[1024];
    snprintf(entry, sizeof entry,
             "\n[[registry]]\nprefix = \"%s\"\nlocation = \"%s\"\n\n[[registry.mirror]]\n"
             "location = \"%s%s%s\"\ninsecure = true\n",
             h, h, mirror, hub ? "" : "/", hub ? "" : enc);
    r = ep_buf_append(&b, entry, strlen(entry));
  }
  if (r < 0) {
    ep_error(err, EP_EINTERNAL, "out of memory");
    return NULL;
  }
  size_t len = 0;
  char *s = ep_buf_steal(&b, &len);
  struct setup_toml t;
  if (s != NULL && setup_toml_parse(s, len, "drop-in", &t, err) < 0) {
    free(s);
    return NULL;
  }
  if (s != NULL)
    setup_toml_free(&t);
  return s;
}
