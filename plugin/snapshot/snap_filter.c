/* containerd's filter language, ported from filters/{scanner,parser,quote}.go so that List
 * answers what containerd's bolt metastore (storage.WalkInfo + adaptSnapshot) would: the same
 * tokens (a value after an operator may hold '.', a field may not), the same quoting (",
 * and the slash or bar quotes for regexes), presence, ==, != (absent compares as ""), ~=.
 *
 * Differences: the scanner works on bytes (a byte >= 0x80 counts as a value byte, as a printable
 * rune does in Go), and ~= uses POSIX extended regexes instead of RE2; containerd and its
 * conformance suite only use == and presence. A regex that fails to compile matches nothing,
 * as in containerd. */
#include "plugin/snapshot/snap_filter.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum op { OP_PRESENT, OP_EQ, OP_NE, OP_MATCH };
enum tok {
  T_EOF = -1,
  T_QUOTED = -2,
  T_VALUE = -3,
  T_FIELD = -4,
  T_SEP = -5,
  T_OP = -6,
  T_ILLEGAL = -7
};

struct sel {
  char **path;
  size_t n_path;
  enum op op;
  char *value;
  regex_t re;
  bool re_ok;
};

struct conj {
  struct sel *v;
  size_t n;
};

struct snap_filter {
  struct conj *v;
  size_t n;
  bool always; /* one of the strings was "" (containerd's Always) */
};

struct scanner {
  const char *in;
  size_t len, pos, ppos;
  bool value;
  const char *err;
};

static int sc_next(struct scanner *s) {
  if (s->ppos >= s->len)
    return T_EOF;
  s->pos = s->ppos;
  unsigned char c = (unsigned char)s->in[s->ppos++];
  if (c == 0) {
    s->err = "unexpected null";
    return T_ILLEGAL;
  }
  return c;
}

static int sc_peek(struct scanner *s) {
  size_t pos = s->pos, ppos = s->ppos;
  int c = sc_next(s);
  s->pos = pos;
  s->ppos = ppos;
  return c;
}

static bool is_field(int c) {
  return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
static bool is_space(int c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
static bool is_value(int c) {
  return c >= 0 && c != ',' && !is_space(c) && (c > 0x20 && c != 0x7f);
}
static bool is_op(int c) {
  return c == '=' || c == '!' || c == '~';
}

static bool sc_quoted(struct scanner *s, int quote) {
  for (int c = sc_next(s); c != quote; c = sc_next(s)) {
    if (c == '\n' || c < 0) {
      s->err = "quoted literal not terminated";
      return false;
    }
    if (c == '\\') {
      c = sc_next(s);
      if (c != quote && (c < 0 || !strchr("abfnrtv\\01234567xuU", c))) {
        s->err = "illegal escape sequence";
        return false;
      }
    }
  }
  return true;
}

/* One token; start and n give its text. */
static int sc_scan(struct scanner *s, size_t *start, size_t *n) {
  int c = sc_next(s);
  while (c >= 0 && is_space(c))
    c = sc_next(s);
  *start = s->pos;
  *n = 0;
  int tok = c;
  if (c == T_EOF || c == T_ILLEGAL)
    return c;
  if (c == '/' || c == '|' || c == '"') {
    tok = sc_quoted(s, c) ? T_QUOTED : T_ILLEGAL;
  } else if (c == ',' || c == '.') {
    s->value = false;
    tok = T_SEP;
  } else if (is_op(c)) {
    while (is_op(sc_peek(s)))
      sc_next(s);
    s->value = true;
    tok = T_OP;
  } else if (s->value) {
    while (is_value(sc_peek(s)))
      sc_next(s);
    s->value = false;
    tok = T_VALUE;
  } else if (is_field(c)) {
    while (is_field(sc_peek(s)))
      sc_next(s);
    tok = T_FIELD;
  } else {
    return c;
  }
  *n = s->ppos - *start;
  return tok;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static size_t put_utf8(char *o, unsigned long cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xc0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xe0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (char)(0xf0 | ((cp >> 18) & 0x07));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
  o[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

/* Decodes one escape after '\\' at t[*i]; appends to o. false on a syntax error. */
static bool unescape(const char *t, size_t n, size_t *i, char quote, char *o, size_t *k) {
  static const char from[] = "abfnrtv\\", to[] = "\a\b\f\n\r\t\v\\";
  char c = t[(*i)++];
  const char *p = c != '\0' ? strchr(from, c) : NULL;
  if (p != NULL || c == quote) {
    o[(*k)++] = p != NULL ? to[p - from] : c;
    return true;
  }
  int digits = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : (c >= '0' && c <= '7') ? 2 : 0;
  int base = (c >= '0' && c <= '7') ? 8 : 16;
  unsigned long v = base == 8 ? (unsigned long)(c - '0') : 0;
  if (digits == 0 || *i + (size_t)digits > n)
    return false;
  for (int d = 0; d < digits; d++) {
    int h = hexval(t[(*i)++]);
    if (h < 0 || h >= base)
      return false;
    v = v * (unsigned long)base + (unsigned long)h;
  }
  if ((base == 8 && v > 255) || v > 0x10ffff)
    return false;
  if (c == 'x' || base == 8)
    o[(*k)++] = (char)v;
  else
    *k += put_utf8(o + *k, v);
  return true;
}

/* Unquotes t[0..n) (quotes included); alt allows / and | quoting. NULL on a syntax error. */
static char *unquote(const char *t, size_t n, bool alt) {
  char q = t[0];
  if (n < 2 || t[n - 1] != q || (!alt && q != '"'))
    return NULL;
  char *o = malloc(n * 2 + 1);
  size_t k = 0;
  for (size_t i = 1; o != NULL && i < n - 1;) {
    if (t[i] == q || t[i] == '\n') {
      free(o);
      return NULL;
    }
    if (t[i] != '\\') {
      o[k++] = t[i++];
      continue;
    }
    i++;
    if (!unescape(t, n - 1, &i, q, o, &k)) {
      free(o);
      return NULL;
    }
  }
  if (o != NULL)
    o[k] = '\0';
  return o;
}

static int perr(ep_err *err, const struct scanner *s, const char *msg) {
  return ep_error(err, EP_EINVAL, "filters: parse error: [%.*s] at %zu: %s",
                  (int)(s->len > 200 ? 200 : s->len), s->in, s->pos, s->err != NULL ? s->err : msg);
}

static int field(struct scanner *s, struct sel *sel, ep_err *err) {
  size_t st, n;
  int tok = sc_scan(s, &st, &n);
  char *f = NULL;
  if (tok == T_FIELD)
    f = strndup(s->in + st, n);
  else if (tok == T_QUOTED && (f = unquote(s->in + st, n, false)) == NULL)
    return perr(err, s, "unquoting failed");
  if (f == NULL)
    return perr(err, s, tok == T_ILLEGAL ? "illegal token" : "expected field or quoted");
  char **p = realloc(sel->path, (sel->n_path + 1) * sizeof *p);
  if (p == NULL) {
    free(f);
    return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  sel->path = p;
  p[sel->n_path++] = f;
  return 0;
}

static int selector(struct scanner *s, struct sel *sel, ep_err *err) {
  int r = field(s, sel, err);
  while (r == 0 && sc_peek(s) == '.') {
    size_t st, n;
    sc_scan(s, &st, &n);
    r = field(s, sel, err);
  }
  if (r < 0)
    return r;
  int c = sc_peek(s);
  if (c == ',' || c == T_EOF) {
    sel->op = OP_PRESENT;
    return 0;
  }
  size_t st, n;
  int tok = sc_scan(s, &st, &n);
  if (tok != T_OP)
    return perr(err, s, "expected an operator (\"==\"|\"!=\"|\"~=\")");
  if (n == 2 && memcmp(s->in + st, "==", 2) == 0)
    sel->op = OP_EQ;
  else if (n == 2 && memcmp(s->in + st, "!=", 2) == 0)
    sel->op = OP_NE;
  else if (n == 2 && memcmp(s->in + st, "~=", 2) == 0)
    sel->op = OP_MATCH;
  else
    return perr(err, s, "unsupported operator");
  tok = sc_scan(s, &st, &n);
  if (tok == T_VALUE || tok == T_FIELD)
    sel->value = strndup(s->in + st, n);
  else if (tok == T_QUOTED && (sel->value = unquote(s->in + st, n, sel->op == OP_MATCH)) == NULL)
    return perr(err, s, "unquoting failed");
  if (sel->value == NULL)
    return perr(err, s, "expected value or quoted");
  if (sel->op == OP_MATCH)
    sel->re_ok = regcomp(&sel->re, sel->value, REG_EXTENDED | REG_NOSUB) == 0;
  return 0;
}

static int parse_one(const char *in, struct conj *out, ep_err *err) {
  struct scanner s = {.in = in, .len = strlen(in)};
  for (;;) {
    struct sel *v = realloc(out->v, (out->n + 1) * sizeof *v);
    if (v == NULL)
      return ep_error(err, EP_EINTERNAL, "out of memory");
    out->v = v;
    memset(&v[out->n], 0, sizeof *v);
    int r = selector(&s, &v[out->n++], err);
    if (r < 0)
      return r;
    int c = sc_peek(&s);
    if (c == T_EOF)
      return 0;
    if (c != ',')
      return perr(err, &s, "unexpected input");
    size_t st, n;
    sc_scan(&s, &st, &n);
  }
}

int snap_filter_parse(const char *const *ss, size_t n, snap_filter **out, ep_err *err) {
  if (n > SNAP_MAX_FILTERS)
    return ep_error(err, EP_EINVAL, "more than %d filters", SNAP_MAX_FILTERS);
  snap_filter *f = calloc(1, sizeof *f);
  if (f == NULL || (n > 0 && (f->v = calloc(n, sizeof *f->v)) == NULL)) {
    free(f);
    return ep_error(err, EP_EINTERNAL, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    if (ss[i][0] == '\0') {
      f->always = true;
      continue;
    }
    int r = parse_one(ss[i], &f->v[f->n++], err);
    if (r < 0) {
      snap_filter_free(f);
      return r;
    }
  }
  *out = f;
  return 0;
}

static const char *kind_name(enum snap_kind k) {
  switch (k) {
  case SNAP_KIND_ACTIVE:
    return "active";
  case SNAP_KIND_VIEW:
    return "view";
  case SNAP_KIND_COMMITTED:
    return "committed";
  default:
    return NULL;
  }
}

/* adaptSnapshot in storage/bolt.go. The joined label key is built in `buf`. */
static const char *field_value(const struct sel *s, const struct snap_info *i, char *buf,
                               size_t cap) {
  const char *f = s->path[0];
  if (strcmp(f, "kind") == 0)
    return kind_name(i->kind);
  if (strcmp(f, "name") == 0)
    return i->name;
  if (strcmp(f, "parent") == 0)
    return i->parent;
  if (strcmp(f, "labels") != 0 || i->labels.n == 0)
    return NULL;
  size_t k = 0;
  buf[0] = '\0';
  for (size_t p = 1; p < s->n_path; p++) {
    int w = snprintf(buf + k, cap - k, "%s%s", p > 1 ? "." : "", s->path[p]);
    if (w < 0 || (size_t)w >= cap - k)
      return NULL;
    k += (size_t)w;
  }
  return snap_labels_get(&i->labels, buf);
}

static bool sel_match(const struct sel *s, const struct snap_info *i) {
  char buf[SNAP_MAX_LABEL + 1];
  const char *v = field_value(s, i, buf, sizeof buf);
  switch (s->op) {
  case OP_PRESENT:
    return v != NULL;
  case OP_EQ:
    return v != NULL && strcmp(v, s->value) == 0;
  case OP_NE:
    return strcmp(v != NULL ? v : "", s->value) != 0;
  case OP_MATCH:
    return s->re_ok && regexec(&s->re, v != NULL ? v : "", 0, NULL, 0) == 0;
  }
  return false;
}

bool snap_filter_match(const snap_filter *f, const struct snap_info *i) {
  if (f == NULL || f->n == 0 || f->always)
    return true;
  for (size_t a = 0; a < f->n; a++) {
    bool all = true;
    for (size_t k = 0; all && k < f->v[a].n; k++)
      all = sel_match(&f->v[a].v[k], i);
    if (all)
      return true;
  }
  return false;
}

void snap_filter_free(snap_filter *f) {
  if (f == NULL)
    return;
  for (size_t a = 0; a < f->n; a++) {
    struct conj *c = &f->v[a];
    for (size_t k = 0; k < c->n; k++) {
      for (size_t p = 0; p < c->v[k].n_path; p++)
        free(c->v[k].path[p]);
      free(c->v[k].path);
      free(c->v[k].value);
      if (c->v[k].re_ok)
        regfree(&c->v[k].re);
    }
    free(c->v);
  }
  free(f->v);
  free(f);
}
