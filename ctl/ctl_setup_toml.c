/* A small, strict TOML reader for `edgepullctl setup`.
 *
 * Why our own: Debian 12 ships no C TOML library (only C++, Perl, Ruby and
 * Rust ones), and setup needs less than a full one. It must find whether a
 * key or a table of containerd's config.toml exists, where, and with what
 * value, so that the editor can insert lines or replace one value's bytes
 * and leave the rest of the file, comments included, byte for byte. It
 * never re-serialises a document.
 *
 * What it reads: [tables], [[arrays of tables]], bare, quoted and dotted
 * keys, the four kinds of strings (with escapes decoded to UTF-8),
 * integers, floats, booleans, arrays (over several lines, with comments)
 * and inline tables. What it does not (date-times), and anything malformed,
 * is an error naming file:line: setup refuses to edit a file it cannot
 * read rather than guess. Duplicate keys and tables are errors too, as
 * they are for containerd. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "ctl/ctl_setup.h"

#define TOML_PATH_MAX 4096
#define TOML_DEPTH_MAX 32
#define TOML_ENTRIES_MAX 100000

struct tp {
  const char *s;
  size_t n, i;
  int line;
  const char *name;
  ep_err *err;
  struct setup_toml *out;
  size_t cap_keys, cap_tables;
  char hdr[TOML_PATH_MAX]; /* the current table's path */
  size_t hdr_ncomp;
  char *scratch; /* n + 1 bytes: room for any decoded string */
};

static int perr(struct tp *p, const char *what) {
  return ep_error(p->err, EP_EINVAL, "%s:%d: %s", p->name, p->line, what);
}

static bool at_eol(const struct tp *p) {
  return p->i >= p->n || p->s[p->i] == '\n' ||
         (p->s[p->i] == '\r' && p->i + 1 < p->n && p->s[p->i + 1] == '\n');
}

static void skip_ws(struct tp *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t'))
    p->i++;
}

/* A comment (if any) and the end of the line. */
static int end_line(struct tp *p) {
  skip_ws(p);
  if (p->i < p->n && p->s[p->i] == '#') {
    for (p->i++; !at_eol(p); p->i++) {
      unsigned char c = (unsigned char)p->s[p->i];
      if ((c < 0x20 && c != '\t') || c == 0x7f)
        return perr(p, "control character in a comment");
    }
  }
  if (!at_eol(p))
    return perr(p, "expected the end of the line");
  if (p->i < p->n) {
    p->i += p->s[p->i] == '\r' ? 2 : 1;
    p->line++;
  }
  return 0;
}

/* White space, newlines and comments (inside arrays). */
static int skip_ws_nl(struct tp *p) {
  for (;;) {
    skip_ws(p);
    if (p->i < p->n && (p->s[p->i] == '#' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) {
      int r = end_line(p);
      if (r < 0)
        return r;
      continue;
    }
    return 0;
  }
}

static bool utf8_put(char *dst, size_t cap, size_t *len, uint32_t cp) {
  char b[4];
  size_t k;
  if (cp < 0x80) {
    b[0] = (char)cp;
    k = 1;
  } else if (cp < 0x800) {
    b[0] = (char)(0xc0 | (cp >> 6));
    b[1] = (char)(0x80 | (cp & 0x3f));
    k = 2;
  } else if (cp < 0x10000) {
    b[0] = (char)(0xe0 | (cp >> 12));
    b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    b[2] = (char)(0x80 | (cp & 0x3f));
    k = 3;
  } else {
    b[0] = (char)(0xf0 | (cp >> 18));
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    b[3] = (char)(0x80 | (cp & 0x3f));
    k = 4;
  }
  if (*len + k >= cap)
    return false;
  memcpy(dst + *len, b, k);
  *len += k;
  return true;
}

static int escape(struct tp *p, char *dst, size_t cap, size_t *len) {
  char c = p->i < p->n ? p->s[p->i++] : '\0';
  const char *from = "btnfr\"\\", *to = "\b\t\n\f\r\"\\";
  const char *e = c != '\0' ? strchr(from, c) : NULL;
  if (e != NULL)
    return utf8_put(dst, cap, len, (unsigned char)to[e - from]) ? 0 : perr(p, "string too long");
  int digits = c == 'u' ? 4 : c == 'U' ? 8 : 0;
  if (digits == 0)
    return perr(p, "unknown escape in a string");
  uint32_t cp = 0;
  for (int k = 0; k < digits; k++, p->i++) {
    char h = p->i < p->n ? p->s[p->i] : '\0';
    int v = h >= '0' && h <= '9'   ? h - '0'
            : h >= 'a' && h <= 'f' ? h - 'a' + 10
            : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                   : -1;
    if (v < 0)
      return perr(p, "bad \\u escape in a string");
    cp = cp * 16 + (uint32_t)v;
  }
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return perr(p, "\\u escape is not a Unicode scalar value");
  return utf8_put(dst, cap, len, cp) ? 0 : perr(p, "string too long");
}

/* Any of the four string forms at p->i; the decoded text into dst. */
static int string(struct tp *p, char *dst, size_t cap, bool allow_multi) {
  char q = p->s[p->i];
  bool multi = p->i + 2 < p->n && p->s[p->i + 1] == q && p->s[p->i + 2] == q;
  size_t len = 0;
  if (multi && !allow_multi)
    return perr(p, "multi-line string used as a key");
  p->i += multi ? 3 : 1;
  if (multi && at_eol(p) && p->i < p->n) { /* a newline right after the quotes is dropped */
    p->i += p->s[p->i] == '\r' ? 2 : 1;
    p->line++;
  }
  for (;;) {
    if (p->i >= p->n)
      return perr(p, "unterminated string");
    unsigned char c = (unsigned char)p->s[p->i];
    if (c == (unsigned char)q) {
      if (!multi) {
        p->i++;
        break;
      }
      if (p->i + 2 < p->n && p->s[p->i + 1] == q && p->s[p->i + 2] == q) {
        size_t run = 3; /* up to two quotes may end the content */
        while (run < 5 && p->i + run < p->n && p->s[p->i + run] == q)
          run++;
        for (size_t k = 3; k < run; k++)
          if (!utf8_put(dst, cap, &len, (unsigned char)q))
            return perr(p, "string too long");
        p->i += run;
        break;
      }
    }
    if (c == '\n' || c == '\r') {
      if (!multi)
        return perr(p, "newline in a string");
      if (c == '\r' && !(p->i + 1 < p->n && p->s[p->i + 1] == '\n'))
        return perr(p, "bare carriage return");
      p->line++;
    } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
      return perr(p, "control character in a string");
    }
    if (c == '\\' && q == '"') {
      p->i++;
      if (multi && (at_eol(p) || p->s[p->i] == ' ' || p->s[p->i] == '\t')) {
        size_t save = p->i; /* line-ending backslash: trim to the next text */
        skip_ws(p);
        if (!at_eol(p) || p->i >= p->n) {
          p->i = save;
          return perr(p, "unknown escape in a string");
        }
        while (p->i < p->n && strchr(" \t\r\n", p->s[p->i]) != NULL) {
          if (p->s[p->i] == '\n')
            p->line++;
          p->i++;
        }
        continue;
      }
      int r = escape(p, dst, cap, &len);
      if (r < 0)
        return r;
      continue;
    }
    if (len + 1 >= cap)
      return perr(p, "string too long");
    dst[len++] = (char)c;
    p->i++;
  }
  dst[len] = '\0';
  return 0;
}

static bool bare_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

/* A dotted key, appended to path (SETUP_SEP between components). */
static int key(struct tp *p, char *path, size_t *plen) {
  char comp[1024];
  for (int ncomp = 0;; ncomp++) {
    if (ncomp >= TOML_DEPTH_MAX)
      return perr(p, "key has too many components");
    skip_ws(p);
    if (p->i < p->n && (p->s[p->i] == '"' || p->s[p->i] == '\'')) {
      int r = string(p, comp, sizeof comp, false);
      if (r < 0)
        return r;
    } else {
      size_t k = 0;
      while (p->i < p->n && bare_char(p->s[p->i]) && k + 1 < sizeof comp)
        comp[k++] = p->s[p->i++];
      comp[k] = '\0';
      if (k == 0)
        return perr(p, "expected a key");
    }
    for (const char *c = comp; *c != '\0'; c++)
      if ((unsigned char)*c < 0x20)
        return perr(p, "control character in a key");
    size_t cl = strlen(comp);
    if (*plen + cl + 2 >= TOML_PATH_MAX)
      return perr(p, "key too long");
    if (*plen > 0)
      path[(*plen)++] = SETUP_SEP[0];
    memcpy(path + *plen, comp, cl + 1);
    *plen += cl;
    skip_ws(p);
    if (p->i >= p->n || p->s[p->i] != '.')
      return 0;
    p->i++;
  }
}

static int grow(struct tp *p, void **v, size_t *cap, size_t n, size_t size) {
  if (n < *cap)
    return 0;
  if (n >= TOML_ENTRIES_MAX)
    return perr(p, "too many keys and tables");
  size_t nc = *cap ? *cap * 2 : 32;
  void *nv = realloc(*v, nc * size);
  if (nv == NULL)
    return ep_error(p->err, EP_EINTERNAL, "out of memory");
  *v = nv;
  *cap = nc;
  return 0;
}

static int add_key(struct tp *p, const char *path, const struct setup_tkey *k) {
  int r = grow(p, (void **)&p->out->keys, &p->cap_keys, p->out->nkeys, sizeof *k);
  if (r < 0)
    return r;
  struct setup_tkey *d = &p->out->keys[p->out->nkeys];
  *d = *k;
  d->path = strdup(path);
  if (d->path == NULL)
    return ep_error(p->err, EP_EINTERNAL, "out of memory");
  p->out->nkeys++;
  return 0;
}

static int value(struct tp *p, const char *path, int depth);

static int scalar(struct tp *p, struct setup_tkey *k, char *buf, size_t cap) {
  const char *s = p->s + p->i;
  size_t rest = p->n - p->i;
  if (*s == '"' || *s == '\'') {
    k->type = SETUP_T_STRING;
    return string(p, buf, cap, true);
  }
  if (rest >= 4 && strncmp(s, "true", 4) == 0 && (rest == 4 || !bare_char(s[4]))) {
    k->type = SETUP_T_BOOL;
    k->boolean = true;
    p->i += 4;
    return 0;
  }
  if (rest >= 5 && strncmp(s, "false", 5) == 0 && (rest == 5 || !bare_char(s[5]))) {
    k->type = SETUP_T_BOOL;
    p->i += 5;
    return 0;
  }
  size_t j = 0;
  bool flt = false;
  while (j < rest && (bare_char(s[j]) || s[j] == '+' || s[j] == '.' || s[j] == ':')) {
    if (s[j] == ':' || (j > 0 && s[j] == '-' && s[j - 1] != 'e' && s[j - 1] != 'E'))
      return perr(p, "date-times are not supported by this reader");
    flt |= s[j] == '.' || ((s[j] == 'e' || s[j] == 'E') && !(j > 1 && s[1] == 'x'));
    j++;
  }
  if (j == 0)
    return perr(p, "expected a value");
  char num[128];
  size_t m = 0;
  for (size_t t = 0; t < j; t++) {
    if (s[t] == '_') {
      if (t == 0 || t + 1 == j || !isxdigit((unsigned char)s[t - 1]) ||
          !isxdigit((unsigned char)s[t + 1]))
        return perr(p, "misplaced '_' in a number");
      continue;
    }
    if (m + 1 >= sizeof num)
      return perr(p, "number too long");
    num[m++] = s[t];
  }
  num[m] = '\0';
  const char *u = num + (num[0] == '+' || num[0] == '-');
  char *end = NULL;
  if (strcmp(u, "inf") == 0 || strcmp(u, "nan") == 0) {
    flt = true;
  } else if (!flt) {
    int base = u[0] == '0' && u[1] == 'x'   ? 16
               : u[0] == '0' && u[1] == 'o' ? 8
               : u[0] == '0' && u[1] == 'b' ? 2
                                            : 10;
    if (base != 10 && u != num)
      return perr(p, "sign on a non-decimal integer");
    if (base == 10 && u[0] == '0' && u[1] != '\0')
      return perr(p, "leading zero in an integer");
    (void)strtoll(base == 10 ? num : u + 2, &end, base);
    if (end == NULL || *end != '\0' || end == (base == 10 ? num : u + 2))
      return perr(p, "bad integer");
  } else {
    (void)strtod(num, &end);
    if (end == NULL || *end != '\0' || !(u[0] >= '0' && u[0] <= '9'))
      return perr(p, "bad float");
  }
  k->type = flt ? SETUP_T_FLOAT : SETUP_T_INT;
  p->i += j;
  return 0;
}

static int array(struct tp *p, const char *path, int depth) {
  p->i++; /* '[' */
  for (;;) {
    int r = skip_ws_nl(p);
    if (r < 0)
      return r;
    if (p->i < p->n && p->s[p->i] == ']') {
      p->i++;
      return 0;
    }
    r = value(p, path, depth + 1); /* elements are read, not recorded */
    if (r < 0)
      return r;
    if ((r = skip_ws_nl(p)) < 0)
      return r;
    if (p->i < p->n && p->s[p->i] == ',') {
      p->i++;
      continue;
    }
    if (p->i < p->n && p->s[p->i] == ']') {
      p->i++;
      return 0;
    }
    return perr(p, "expected ',' or ']' in an array");
  }
}

static int keyval(struct tp *p, const char *base, size_t base_ncomp, int depth, bool record);

static int inline_table(struct tp *p, const char *path, int depth, bool record) {
  if (depth > TOML_DEPTH_MAX)
    return perr(p, "values nested too deep");
  p->i++; /* '{' */
  skip_ws(p);
  if (p->i < p->n && p->s[p->i] == '}') {
    p->i++;
    return 0;
  }
  for (;;) {
    int r = keyval(p, path, 0, depth + 1, record);
    if (r < 0)
      return r;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ',') {
      p->i++;
      continue;
    }
    if (p->i < p->n && p->s[p->i] == '}') {
      p->i++;
      return 0;
    }
    return perr(p, "expected ',' or '}' in an inline table");
  }
}

/* A value; path NULL inside arrays (nothing recorded). */
static int value(struct tp *p, const char *path, int depth) {
  if (depth > TOML_DEPTH_MAX)
    return perr(p, "values nested too deep");
  skip_ws(p);
  if (p->i >= p->n)
    return perr(p, "expected a value");
  if (p->s[p->i] == '[')
    return array(p, path, depth);
  if (p->s[p->i] == '{')
    return inline_table(p, path != NULL ? path : "", depth, false);
  struct setup_tkey k = {0};
  return scalar(p, &k, p->scratch, p->n + 1);
}

static int keyval(struct tp *p, const char *base, size_t base_ncomp, int depth, bool record) {
  char path[TOML_PATH_MAX];
  size_t plen = strlen(base);
  memcpy(path, base, plen + 1);
  int line = p->line;
  int r = key(p, path, &plen);
  if (r < 0)
    return r;
  if (p->i >= p->n || p->s[p->i] != '=')
    return perr(p, "expected '=' after a key");
  p->i++;
  skip_ws(p);
  struct setup_tkey k = {.line = line, .voff = p->i, .hdr_ncomp = base_ncomp};
  if (p->i < p->n && p->s[p->i] == '[') {
    k.type = SETUP_T_ARRAY;
    r = array(p, NULL, depth);
  } else if (p->i < p->n && p->s[p->i] == '{') {
    k.type = SETUP_T_INLINE;
    r = inline_table(p, path, depth, record);
  } else {
    r = scalar(p, &k, p->scratch, p->n + 1);
  }
  if (r < 0)
    return r;
  k.vlen = p->i - k.voff;
  if (!record)
    return 0;
  if (k.type == SETUP_T_STRING && (k.str = strdup(p->scratch)) == NULL)
    return ep_error(p->err, EP_EINTERNAL, "out of memory");
  r = add_key(p, path, &k);
  if (r < 0)
    free(k.str);
  return r;
}

static size_t ncomp(const char *path) {
  size_t n = path[0] != '\0';
  for (const char *c = path; *c != '\0'; c++)
    n += *c == SETUP_SEP[0];
  return n;
}

static int header(struct tp *p, size_t indent) {
  struct setup_ttable t = {.line = p->line, .indent = indent};
  t.array = p->i + 1 < p->n && p->s[p->i + 1] == '[';
  p->i += t.array ? 2 : 1;
  char path[TOML_PATH_MAX];
  size_t plen = 0;
  path[0] = '\0';
  int r = key(p, path, &plen);
  if (r < 0)
    return r;
  if (p->i >= p->n || p->s[p->i] != ']' || (t.array && (p->i + 1 >= p->n || p->s[p->i + 1] != ']')))
    return perr(p,
                t.array ? "expected ']]' after a table name" : "expected ']' after a table name");
  p->i += t.array ? 2 : 1;
  if ((r = end_line(p)) < 0)
    return r;
  t.end = p->i;
  if (t.array) { /* the element index makes each element's keys distinct */
    size_t idx = 0;
    for (size_t k = 0; k < p->out->ntables; k++)
      idx += p->out->tables[k].array && strcmp(p->out->tables[k].path, path) == 0;
    int w = snprintf(p->hdr, sizeof p->hdr, "%s" SETUP_SEP "\x1e%zu", path, idx);
    if (w < 0 || (size_t)w >= sizeof p->hdr)
      return perr(p, "table name too long");
  } else {
    for (size_t k = 0; k < p->out->ntables; k++)
      if (!p->out->tables[k].array && strcmp(p->out->tables[k].path, path) == 0)
        return ep_error(p->err, EP_EINVAL, "%s:%d: table defined twice (first at line %d)", p->name,
                        t.line, p->out->tables[k].line);
    memcpy(p->hdr, path, plen + 1);
  }
  p->hdr_ncomp = ncomp(p->hdr);
  if ((r = grow(p, (void **)&p->out->tables, &p->cap_tables, p->out->ntables, sizeof t)) < 0)
    return r;
  if ((t.path = strdup(path)) == NULL)
    return ep_error(p->err, EP_EINTERNAL, "out of memory");
  p->out->tables[p->out->ntables++] = t;
  return 0;
}

static int cmp_keys(const void *a, const void *b) {
  const struct setup_tkey *const *x = a, *const *y = b;
  int c = strcmp((*x)->path, (*y)->path);
  return c != 0 ? c : (*x)->line - (*y)->line;
}

static int check_duplicates(struct tp *p) {
  size_t n = p->out->nkeys;
  if (n < 2)
    return 0;
  ep_cleanup_free const struct setup_tkey **v = malloc(n * sizeof *v);
  if (v == NULL)
    return ep_error(p->err, EP_EINTERNAL, "out of memory");
  for (size_t k = 0; k < n; k++)
    v[k] = &p->out->keys[k];
  qsort(v, n, sizeof *v, cmp_keys);
  for (size_t k = 1; k < n; k++)
    if (strcmp(v[k]->path, v[k - 1]->path) == 0)
      return ep_error(p->err, EP_EINVAL, "%s:%d: key defined twice (first at line %d)", p->name,
                      v[k]->line, v[k - 1]->line);
  return 0;
}

static int parse_lines(struct tp *p) {
  while (p->i < p->n) {
    size_t start = p->i;
    skip_ws(p);
    size_t indent = p->i - start;
    int r;
    if (p->i < p->n && p->s[p->i] == '[')
      r = header(p, indent);
    else if (p->i >= p->n || p->s[p->i] == '#' || at_eol(p))
      r = end_line(p);
    else if ((r = keyval(p, p->hdr, p->hdr_ncomp, 0, true)) == 0)
      r = end_line(p);
    if (r < 0)
      return r;
  }
  return check_duplicates(p);
}

static bool utf8_valid(const unsigned char *s, size_t n, size_t *bad) {
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    size_t k = c < 0x80             ? 1
               : (c & 0xe0) == 0xc0 ? 2
               : (c & 0xf0) == 0xe0 ? 3
               : (c & 0xf8) == 0xf0 ? 4
                                    : 0;
    if (k == 0 || i + k > n || (k == 2 && c < 0xc2) || (k == 4 && c > 0xf4)) {
      *bad = i;
      return false;
    }
    for (size_t j = 1; j < k; j++)
      if ((s[i + j] & 0xc0) != 0x80) {
        *bad = i;
        return false;
      }
    if ((k == 3 && c == 0xe0 && s[i + 1] < 0xa0) || (k == 3 && c == 0xed && s[i + 1] > 0x9f) ||
        (k == 4 && c == 0xf0 && s[i + 1] < 0x90) || (k == 4 && c == 0xf4 && s[i + 1] > 0x8f)) {
      *bad = i;
      return false;
    }
    i += k;
  }
  return true;
}

int setup_toml_parse(const char *text, size_t len, const char *name, struct setup_toml *out,
                     ep_err *err) {
  struct tp p = {.s = text, .n = len, .line = 1, .name = name, .err = err, .out = out};
  memset(out, 0, sizeof *out);
  const char *nl = memchr(text, '\n', len);
  out->eol = nl != NULL && nl > text && nl[-1] == '\r' ? "\r\n" : "\n";
  size_t bad = 0;
  if (!utf8_valid((const unsigned char *)text, len, &bad)) {
    p.line = 1;
    for (size_t k = 0; k < bad; k++)
      p.line += text[k] == '\n';
    return perr(&p, "not UTF-8");
  }
  if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
    return perr(&p, "byte order mark at the start of the file");
  if (memchr(text, '\0', len) != NULL)
    return ep_error(err, EP_EINVAL, "%s: NUL byte in the file", name);
  ep_cleanup_free char *scratch = malloc(len + 1);
  if (scratch == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  p.scratch = scratch;
  int r = parse_lines(&p);
  if (r < 0)
    setup_toml_free(out);
  return r;
}

void setup_toml_free(struct setup_toml *t) {
  for (size_t k = 0; k < t->nkeys; k++) {
    free(t->keys[k].path);
    free(t->keys[k].str);
  }
  for (size_t k = 0; k < t->ntables; k++)
    free(t->tables[k].path);
  free(t->keys);
  free(t->tables);
  memset(t, 0, sizeof *t);
}

const struct setup_tkey *setup_toml_key(const struct setup_toml *t, const char *path) {
  for (size_t k = 0; k < t->nkeys; k++)
    if (strcmp(t->keys[k].path, path) == 0)
      return &t->keys[k];
  return NULL;
}

const struct setup_ttable *setup_toml_table(const struct setup_toml *t, const char *path) {
  for (size_t k = 0; k < t->ntables; k++)
    if (!t->tables[k].array && strcmp(t->tables[k].path, path) == 0)
      return &t->tables[k];
  return NULL;
}

/* path is a (component-wise) prefix of, or equal to, full. */
static bool path_covers(const char *path, const char *full) {
  size_t l = strlen(path);
  return strncmp(path, full, l) == 0 && (full[l] == '\0' || full[l] == SETUP_SEP[0]);
}

const struct setup_tkey *setup_toml_defined_by_key(const struct setup_toml *t, const char *path) {
  size_t nc = ncomp(path);
  for (size_t k = 0; k < t->nkeys; k++)
    if (path_covers(path, t->keys[k].path) && t->keys[k].hdr_ncomp < nc)
      return &t->keys[k];
  for (size_t k = 0; k < t->nkeys; k++) /* a key that is itself a prefix: a value, not a table */
    if (path_covers(t->keys[k].path, path))
      return &t->keys[k];
  return NULL;
}

const struct setup_tkey *setup_toml_first_below(const struct setup_toml *t, const char *path) {
  size_t l = strlen(path);
  for (size_t k = 0; k < t->nkeys; k++)
    if (path_covers(path, t->keys[k].path) && t->keys[k].path[l] != '\0')
      return &t->keys[k];
  return NULL;
}
