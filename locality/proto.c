/* The locality control protocol, version 1: topic names and JSON payloads.
 *
 * Why: every node parses messages published by every other node of the
 * locality, through a broker that anyone holding locality credentials can
 * write to. A payload is therefore hostile bytes until proven otherwise, and
 * this module is the one place that proves it, so the agent and the
 * coordinator only ever see bounded, typed, range-checked C structs.
 *
 * How: a parser first checks the payload against the size limit of its kind
 * (before jansson allocates anything) and refuses NUL bytes, then lets
 * jansson parse it with duplicate keys rejected (jansson also refuses
 * invalid UTF-8, \u0000 and nesting deeper than JSON_PARSER_MAX_DEPTH),
 * checks "v" == 1 before looking at anything else, checks that the id
 * matches the topic's, then reads each known field with its type, length
 * and range. Unknown fields are ignored: a v1 sender may add fields, and
 * only an incompatible change bumps "v".
 * Every integer is bounded by 2^53 so it survives any JSON implementation.
 *
 * Builders run the same checks on what they are given, so a node can never
 * publish something its peers would drop. A NULL expected_id skips the id
 * comparison (tools that read a payload without its topic). docs/protocol.md
 * is the reference for topics, schemas and limits. */
#include "locality/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "common/escape.h"
#include "common/names.h"
#include "locality/proto_int.h"

#define PROTO_LINK_MBPS_MAX 1000000 /* 1 Tbit/s */
/* The smallest snapshot entry, ["sha256:<64 hex>",0] plus a comma, is 78
 * bytes, so no snapshot within PROTO_INVENTORY_MAX holds more entries. */
#define PROTO_SNAPSHOT_BLOBS (PROTO_INVENTORY_MAX / 78)

/* ---- character classes --------------------------------------------------- */

static bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Here, not in proto_deploy.c, because topic parsing needs it: proto.c
 * never calls into proto_deploy.c. */
bool proto_deploy_id_valid(const char *id) {
  if (id == NULL || strnlen(id, PROTO_DEPLOY_ID_LEN + 1) != PROTO_DEPLOY_ID_LEN)
    return false;
  for (size_t i = 0; i < PROTO_DEPLOY_ID_LEN; i++)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
      return false;
  return true;
}

/* Host name, IPv4 or IPv6 literal (no brackets, optional %zone); may be "". */
bool proto_addr_valid(const char *s) {
  for (; *s != '\0'; s++) {
    if (!is_alnum(*s) && strchr(".-_:%", *s) == NULL)
      return false;
  }
  return true;
}

/* arch / variant: lowercase GOARCH style tokens; may be "". */
bool proto_token_valid(const char *s) {
  for (; *s != '\0'; s++) {
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
      return false;
  }
  return true;
}

/* version: printable ASCII without spaces; may be "". */
static bool version_valid(const char *s) {
  for (; *s != '\0'; s++) {
    if (*s < 0x21 || *s > 0x7e)
      return false;
  }
  return true;
}

static bool nonempty_id_valid(const char *s) {
  return names_node_id_valid(s);
}

/* ---- topics -------------------------------------------------------------- */

static const char *const kind_suffix[] = {
    [PROTO_T_STATE] = "state",           [PROTO_T_INVENTORY] = "inventory",
    [PROTO_T_DELTA] = "inventory/delta", [PROTO_T_PARENT] = "parent",
    [PROTO_T_REPORT] = "report",
};

static int check_ids(const char *locality, const char *node, ep_err *err) {
  char q[EP_QUOTE_BUF];
  if (!names_locality_valid(locality)) {
    ep_quote(q, sizeof q, locality != NULL ? locality : "");
    return ep_error(err, EP_EINVAL, "locality id \"%s\": must match [A-Za-z0-9._-]{1,%d}", q,
                    PROTO_ID_MAX);
  }
  if (node != NULL && !names_node_id_valid(node)) {
    ep_quote(q, sizeof q, node);
    return ep_error(err, EP_EINVAL, "node id \"%s\": must match [A-Za-z0-9._-]{1,%d}", q,
                    PROTO_ID_MAX);
  }
  return 0;
}

int proto_topic(enum proto_topic_kind kind, const char *locality, const char *node, char *buf,
                size_t len, ep_err *err) {
  if ((unsigned)kind > PROTO_T_REPORT)
    return ep_error(err, EP_EINVAL, "topic: kind %d is not a node topic", (int)kind);
  if (node == NULL)
    return ep_error(err, EP_EINVAL, "topic: missing node id");
  int r = check_ids(locality, node, err);
  if (r < 0)
    return r;
  int n = snprintf(buf, len, "edgepull/v1/%s/node/%s/%s", locality, node, kind_suffix[kind]);
  if (n < 0 || (size_t)n >= len)
    return ep_error(err, EP_ETOOBIG, "topic: buffer of %zu bytes too small", len);
  return 0;
}

int proto_topic_filter(const char *locality, char *buf, size_t len, ep_err *err) {
  int r = check_ids(locality, NULL, err);
  if (r < 0)
    return r;
  int n = snprintf(buf, len, "edgepull/v1/%s/node/#", locality);
  if (n < 0 || (size_t)n >= len)
    return ep_error(err, EP_ETOOBIG, "topic filter: buffer of %zu bytes too small", len);
  return 0;
}

#define TOPIC_LEVELS_MAX 7

/* Splits topic at '/' into at most TOPIC_LEVELS_MAX levels of at most
 * PROTO_ID_MAX characters; returns the level count or -1. */
static int split_levels(const char *topic, char levels[TOPIC_LEVELS_MAX][PROTO_ID_MAX + 1]) {
  int nl = 0;
  const char *p = topic;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t seg = slash != NULL ? (size_t)(slash - p) : strlen(p);
    if (nl == TOPIC_LEVELS_MAX || seg > PROTO_ID_MAX)
      return -1;
    memcpy(levels[nl], p, seg);
    levels[nl][seg] = '\0';
    nl++;
    if (slash == NULL)
      return nl;
    p = slash + 1;
  }
}

static int topic_kind(char levels[TOPIC_LEVELS_MAX][PROTO_ID_MAX + 1], int nl,
                      enum proto_topic_kind *kind) {
  if (nl == 6) {
    if (strcmp(levels[5], "state") == 0)
      *kind = PROTO_T_STATE;
    else if (strcmp(levels[5], "inventory") == 0)
      *kind = PROTO_T_INVENTORY;
    else if (strcmp(levels[5], "parent") == 0)
      *kind = PROTO_T_PARENT;
    else if (strcmp(levels[5], "report") == 0)
      *kind = PROTO_T_REPORT;
    else
      return -1;
    return 0;
  }
  if (nl == 7 && strcmp(levels[5], "inventory") == 0 && strcmp(levels[6], "delta") == 0) {
    *kind = PROTO_T_DELTA;
    return 0;
  }
  return -1;
}

/* edgepull/v1/<loc>/deploy and edgepull/v1/<loc>/deploy/<id>/progress/<node>. */
static int proto_deploy_topic_parse(char levels[TOPIC_LEVELS_MAX][PROTO_ID_MAX + 1], int nl,
                                    const char *q, struct proto_topic *out, ep_err *err) {
  bool progress = nl == 7 && strcmp(levels[5], "progress") == 0;
  if (nl != 4 && !progress)
    return ep_error(err, EP_EINVAL,
                    "topic \"%s\": not edgepull/v1/<loc>/deploy[/<id>/progress/<node>]", q);
  if (strcmp(levels[1], "v1") != 0)
    return ep_error(err, EP_EINVAL, "topic \"%s\": unsupported protocol level", q);
  if (!names_node_id_valid(levels[2]) || (progress && !names_node_id_valid(levels[6])))
    return ep_error(err, EP_EINVAL, "topic \"%s\": ids must match [A-Za-z0-9._-]{1,%d}", q,
                    PROTO_ID_MAX);
  if (progress && !proto_deploy_id_valid(levels[4]))
    return ep_error(err, EP_EINVAL, "topic \"%s\": a deploy id is %d lowercase hex digits", q,
                    PROTO_DEPLOY_ID_LEN);
  out->kind = progress ? PROTO_T_PROGRESS : PROTO_T_DEPLOY;
  memcpy(out->locality, levels[2], sizeof out->locality);
  if (progress) {
    memcpy(out->deploy, levels[4], sizeof out->deploy);
    memcpy(out->node, levels[6], sizeof out->node);
  }
  return 0;
}

/* edgepull/v1/<loc>/coord/gateway: the coordinator's own topic. */
static int coord_topic_parse(char levels[TOPIC_LEVELS_MAX][PROTO_ID_MAX + 1], const char *q,
                             struct proto_topic *out, ep_err *err) {
  if (strcmp(levels[1], "v1") != 0)
    return ep_error(err, EP_EINVAL, "topic \"%s\": unsupported protocol level", q);
  if (!names_locality_valid(levels[2]))
    return ep_error(err, EP_EINVAL, "topic \"%s\": ids must match [A-Za-z0-9._-]{1,%d}", q,
                    PROTO_ID_MAX);
  out->kind = PROTO_T_GATEWAY;
  memcpy(out->locality, levels[2], sizeof out->locality);
  return 0;
}

int proto_topic_parse(const char *topic, struct proto_topic *out, ep_err *err) {
  char q[EP_QUOTE_BUF];
  char levels[TOPIC_LEVELS_MAX][PROTO_ID_MAX + 1];
  if (topic == NULL)
    return ep_error(err, EP_EINVAL, "topic: missing");
  ep_quote(q, sizeof q, topic);
  if (strnlen(topic, PROTO_TOPIC_MAX) >= PROTO_TOPIC_MAX)
    return ep_error(err, EP_EINVAL, "topic \"%s\": longer than %d bytes", q, PROTO_TOPIC_MAX - 1);
  int nl = split_levels(topic, levels);
  enum proto_topic_kind kind;
  memset(out, 0, sizeof *out);
  if (nl >= 4 && strcmp(levels[0], "edgepull") == 0 && strcmp(levels[3], "deploy") == 0)
    return proto_deploy_topic_parse(levels, nl, q, out, err);
  if (nl == 5 && strcmp(levels[0], "edgepull") == 0 && strcmp(levels[3], "coord") == 0 &&
      strcmp(levels[4], "gateway") == 0)
    return coord_topic_parse(levels, q, out, err);
  if (nl < 6 || strcmp(levels[0], "edgepull") != 0 || strcmp(levels[3], "node") != 0 ||
      topic_kind(levels, nl, &kind) < 0)
    return ep_error(err, EP_EINVAL,
                    "topic \"%s\": not edgepull/v1/<loc>/node/<id>/"
                    "(state|inventory|inventory/delta|parent|report) nor a deploy or coord topic",
                    q);
  if (strcmp(levels[1], "v1") != 0)
    return ep_error(err, EP_EINVAL, "topic \"%s\": unsupported protocol level", q);
  if (!names_node_id_valid(levels[2]) || !names_node_id_valid(levels[4]))
    return ep_error(err, EP_EINVAL, "topic \"%s\": ids must match [A-Za-z0-9._-]{1,%d}", q,
                    PROTO_ID_MAX);
  out->kind = kind;
  memcpy(out->locality, levels[2], sizeof out->locality);
  memcpy(out->node, levels[4], sizeof out->node);
  return 0;
}

/* ---- payload fields ------------------------------------------------------ */

/* Parses buf as a JSON object of protocol version 1 within limit bytes whose
 * "id" equals expected_id (unless NULL); *root and id[] are set on success. */
int proto_payload_open(const char *what, const void *buf, size_t len, size_t limit,
                       const char *expected_id, json_t **root, char id[PROTO_ID_MAX + 1],
                       ep_err *err) {
  char q[EP_QUOTE_BUF];
  if (buf == NULL && len > 0)
    return ep_error(err, EP_EINVAL, "%s payload: missing", what);
  if (len > limit)
    return ep_error(err, EP_ETOOBIG, "%s payload: %zu bytes, over the limit of %zu", what, len,
                    limit);
  /* jansson reads a NUL as the end of a buffer, so bytes after one would be
   * silently ignored: refuse them instead. */
  if (len > 0 && memchr(buf, '\0', len) != NULL)
    return ep_error(err, EP_EINVAL, "%s payload: contains a NUL byte", what);
  json_error_t je;
  json_auto_t *j = json_loadb(buf != NULL ? buf : "", len, JSON_REJECT_DUPLICATES, &je);
  if (j == NULL) {
    ep_quote(q, sizeof q, je.text);
    return ep_error(err, EP_EINVAL, "%s payload: invalid JSON at byte %d: %s", what, je.position,
                    q);
  }
  if (!json_is_object(j))
    return ep_error(err, EP_EINVAL, "%s payload: not a JSON object", what);
  json_t *v = json_object_get(j, "v");
  if (!json_is_integer(v))
    return ep_error(err, EP_EINVAL, "%s payload: \"v\" missing or not an integer", what);
  if (json_integer_value(v) != PROTO_VERSION)
    return ep_error(err, EP_EUNSUPPORTED, "%s payload: unknown protocol version %lld", what,
                    (long long)json_integer_value(v));
  const char *s = json_string_value(json_object_get(j, "id"));
  if (s == NULL)
    return ep_error(err, EP_EINVAL, "%s payload: \"id\" missing or not a string", what);
  if (!names_node_id_valid(s)) {
    ep_quote(q, sizeof q, s);
    return ep_error(err, EP_EINVAL, "%s payload: id \"%s\" must match [A-Za-z0-9._-]{1,%d}", what,
                    q, PROTO_ID_MAX);
  }
  if (expected_id != NULL && strcmp(s, expected_id) != 0) {
    char q2[EP_QUOTE_BUF];
    ep_quote(q2, sizeof q2, expected_id);
    return ep_error(err, EP_EINVAL, "%s payload: id \"%s\" does not match topic id \"%s\"", what, s,
                    q2);
  }
  memcpy(id, s, strlen(s) + 1);
  *root = ep_steal_ptr(j);
  return 0;
}

/* Reads string field key into buf[size] when present (1), absent (0). */
int proto_get_str(const char *what, json_t *o, const char *key, bool required, char *buf,
                  size_t size, bool (*valid)(const char *), ep_err *err) {
  char q[EP_QUOTE_BUF];
  json_t *v = json_object_get(o, key);
  if (v == NULL) {
    if (required)
      return ep_error(err, EP_EINVAL, "%s payload: \"%s\" missing", what, key);
    return 0;
  }
  if (!json_is_string(v))
    return ep_error(err, EP_EINVAL, "%s payload: \"%s\" is not a string", what, key);
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  if (n >= size)
    return ep_error(err, EP_EINVAL, "%s payload: \"%s\" longer than %zu characters", what, key,
                    size - 1);
  if (!valid(s)) {
    ep_quote(q, sizeof q, s);
    return ep_error(err, EP_EINVAL, "%s payload: \"%s\" value \"%s\" has invalid characters", what,
                    key, q);
  }
  memcpy(buf, s, n + 1);
  return 1;
}

static int check_uint(const char *what, const char *key, json_t *v, uint64_t max, uint64_t *out,
                      ep_err *err) {
  if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
    return ep_error(err, EP_EINVAL, "%s payload: \"%s\" must be an integer in 0..%llu", what, key,
                    (unsigned long long)max);
  *out = (uint64_t)json_integer_value(v);
  return 0;
}

int proto_get_uint(const char *what, json_t *o, const char *key, bool required, uint64_t max,
                   uint64_t *out, ep_err *err) {
  json_t *v = json_object_get(o, key);
  if (v == NULL) {
    if (required)
      return ep_error(err, EP_EINVAL, "%s payload: \"%s\" missing", what, key);
    return 0;
  }
  int r = check_uint(what, key, v, max, out, err);
  return r < 0 ? r : 1;
}

static int get_bool(const char *what, json_t *o, const char *key, bool *out, ep_err *err) {
  json_t *v = json_object_get(o, key);
  if (v == NULL)
    return 0;
  if (!json_is_boolean(v))
    return ep_error(err, EP_EINVAL, "%s payload: \"%s\" is not a boolean", what, key);
  *out = json_is_true(v);
  return 1;
}

/* Builders: a char array field of a caller's struct must be terminated. */
int proto_check_field(const char *what, const char *key, const char *s, size_t size,
                      bool (*valid)(const char *), ep_err *err) {
  char q[EP_QUOTE_BUF];
  if (memchr(s, '\0', size) == NULL)
    return ep_error(err, EP_EINVAL, "%s: \"%s\" is not terminated within %zu bytes", what, key,
                    size);
  if (!valid(s)) {
    ep_quote(q, sizeof q, s);
    return ep_error(err, EP_EINVAL, "%s: \"%s\" value \"%s\" is not valid", what, key, q);
  }
  return 0;
}

/* Dumps root compactly, refusing output over limit. Consumes root. */
int proto_dump(const char *what, json_t *root, size_t limit, char **out, size_t *len, ep_err *err) {
  json_auto_t *j = root;
  if (j == NULL)
    return ep_error(err, EP_EINTERNAL, "%s: cannot build JSON (out of memory?)", what);
  char *s = json_dumps(j, JSON_COMPACT);
  if (s == NULL)
    return ep_error(err, EP_EINTERNAL, "%s: cannot serialize JSON", what);
  size_t n = strlen(s);
  if (n > limit) {
    free(s);
    return ep_error(err, EP_ETOOBIG, "%s: %zu bytes, over the limit of %zu", what, n, limit);
  }
  *out = s;
  if (len != NULL)
    *len = n;
  return 0;
}

/* ---- state --------------------------------------------------------------- */

int proto_state_build(const struct proto_state *s, char **out, size_t *len, ep_err *err) {
  static const char what[] = "state";
  int r;
  if ((r = proto_check_field(what, "id", s->id, sizeof s->id, nonempty_id_valid, err)) < 0)
    return r;
  if (!s->online)
    return proto_dump(
        what, json_pack("{s:i,s:s,s:s}", "v", PROTO_VERSION, "id", s->id, "status", "offline"),
        PROTO_STATE_MAX, out, len, err);
  if ((r = proto_check_field(what, "addr", s->addr, sizeof s->addr, proto_addr_valid, err)) < 0 ||
      (r = proto_check_field(what, "arch", s->arch, sizeof s->arch, proto_token_valid, err)) < 0 ||
      (r = proto_check_field(what, "variant", s->variant, sizeof s->variant, proto_token_valid,
                             err)) < 0 ||
      (r = proto_check_field(what, "version", s->version, sizeof s->version, version_valid, err)) <
          0)
    return r;
  if (s->link_mbps > PROTO_LINK_MBPS_MAX || s->free_bytes > PROTO_INT_MAX || s->ts < 0 ||
      (uint64_t)s->ts > PROTO_INT_MAX)
    return ep_error(err, EP_EINVAL, "state: link_mbps, free_bytes or ts out of range");
  json_t *j = json_pack("{s:i,s:s,s:s,s:s,s:i,s:s,s:s,s:I,s:I,s:s,s:b,s:I}", "v", PROTO_VERSION,
                        "id", s->id, "status", "online", "addr", s->addr, "peer_port",
                        (int)s->peer_port, "arch", s->arch, "variant", s->variant, "link_mbps",
                        (json_int_t)s->link_mbps, "free_bytes", (json_int_t)s->free_bytes,
                        "version", s->version, "gateway", (int)s->gateway, "ts", (json_int_t)s->ts);
  return proto_dump(what, j, PROTO_STATE_MAX, out, len, err);
}

static int state_fields(json_t *j, struct proto_state *s, ep_err *err) {
  static const char what[] = "state";
  char status[8];
  uint64_t u = 0;
  int r;
  if ((r = proto_get_str(what, j, "status", true, status, sizeof status, proto_token_valid, err)) <
      0)
    return r;
  if (strcmp(status, "online") != 0 && strcmp(status, "offline") != 0)
    return ep_error(err, EP_EINVAL, "state payload: \"status\" must be \"online\" or \"offline\"");
  s->online = strcmp(status, "online") == 0;
  if ((r = proto_get_str(what, j, "addr", false, s->addr, sizeof s->addr, proto_addr_valid, err)) <
          0 ||
      (r = proto_get_str(what, j, "arch", false, s->arch, sizeof s->arch, proto_token_valid, err)) <
          0 ||
      (r = proto_get_str(what, j, "variant", false, s->variant, sizeof s->variant,
                         proto_token_valid, err)) < 0 ||
      (r = proto_get_str(what, j, "version", false, s->version, sizeof s->version, version_valid,
                         err)) < 0 ||
      (r = get_bool(what, j, "gateway", &s->gateway, err)) < 0)
    return r;
  if ((r = proto_get_uint(what, j, "peer_port", false, UINT16_MAX, &u, err)) < 0)
    return r;
  s->peer_port = (uint16_t)u;
  u = 0;
  if ((r = proto_get_uint(what, j, "link_mbps", false, PROTO_LINK_MBPS_MAX, &u, err)) < 0)
    return r;
  s->link_mbps = (uint32_t)u;
  if ((r = proto_get_uint(what, j, "free_bytes", false, PROTO_INT_MAX, &s->free_bytes, err)) < 0)
    return r;
  u = 0;
  if ((r = proto_get_uint(what, j, "ts", false, PROTO_INT_MAX, &u, err)) < 0)
    return r;
  s->ts = (int64_t)u;
  return 0;
}

int proto_state_parse(const void *buf, size_t len, const char *expected_id, struct proto_state *out,
                      ep_err *err) {
  struct proto_state s;
  memset(&s, 0, sizeof s);
  json_auto_t *j = NULL;
  int r = proto_payload_open("state", buf, len, PROTO_STATE_MAX, expected_id, &j, s.id, err);
  if (r < 0 || (r = state_fields(j, &s, err)) < 0)
    return r;
  *out = s;
  return 0;
}

/* ---- inventory ----------------------------------------------------------- */

static int blob_array(const struct proto_blob *b, size_t n, json_t **out, ep_err *err) {
  json_auto_t *a = json_array();
  if (a == NULL)
    return ep_error(err, EP_EINTERNAL, "inventory: out of memory");
  for (size_t i = 0; i < n; i++) {
    char d[DIGEST_STR_LEN + 1];
    int r = digest_parse_hex(b[i].digest.hex, NULL, err);
    if (r < 0)
      return ep_wrap(err, "inventory: blob %zu", i);
    if (b[i].size > PROTO_INT_MAX)
      return ep_error(err, EP_EINVAL, "inventory: blob %zu size over 2^53", i);
    digest_format(&b[i].digest, d);
    if (json_array_append_new(a, json_pack("[s,I]", d, (json_int_t)b[i].size)) < 0)
      return ep_error(err, EP_EINTERNAL, "inventory: out of memory");
  }
  *out = ep_steal_ptr(a);
  return 0;
}

static int digest_array(const digest_t *del, size_t n, json_t **out, ep_err *err) {
  json_auto_t *a = json_array();
  if (a == NULL)
    return ep_error(err, EP_EINTERNAL, "inventory: out of memory");
  for (size_t i = 0; i < n; i++) {
    char d[DIGEST_STR_LEN + 1];
    if (digest_parse_hex(del[i].hex, NULL, err) < 0)
      return ep_wrap(err, "inventory: deleted blob %zu", i);
    digest_format(&del[i], d);
    if (json_array_append_new(a, json_string(d)) < 0)
      return ep_error(err, EP_EINTERNAL, "inventory: out of memory");
  }
  *out = ep_steal_ptr(a);
  return 0;
}

int proto_inventory_build(const struct proto_inventory *inv, char **out, size_t *len, ep_err *err) {
  const char *what = inv->snapshot ? "inventory snapshot" : "inventory delta";
  int r = proto_check_field(what, "id", inv->id, sizeof inv->id, nonempty_id_valid, err);
  if (r < 0)
    return r;
  if (inv->gen > PROTO_INT_MAX || inv->seq > PROTO_INT_MAX)
    return ep_error(err, EP_EINVAL, "%s: gen or seq over 2^53", what);
  if ((inv->nadd > 0 && inv->add == NULL) || (inv->ndel > 0 && inv->del == NULL))
    return ep_error(err, EP_EINVAL, "%s: blob count without an array", what);
  if (inv->snapshot && inv->ndel > 0)
    return ep_error(err, EP_EINVAL, "%s: a snapshot has no deleted blobs", what);
  if (inv->snapshot ? inv->nadd > PROTO_SNAPSHOT_BLOBS
                    : inv->nadd > PROTO_DELTA_BLOBS || inv->ndel > PROTO_DELTA_BLOBS - inv->nadd)
    return ep_error(err, EP_ETOOBIG, "%s: too many blobs (%zu)", what, inv->nadd + inv->ndel);
  json_auto_t *add = NULL;
  json_auto_t *del = NULL;
  if ((r = blob_array(inv->add, inv->nadd, &add, err)) < 0)
    return r;
  if (inv->snapshot)
    return proto_dump(what,
                      json_pack("{s:i,s:s,s:I,s:I,s:O}", "v", PROTO_VERSION, "id", inv->id, "gen",
                                (json_int_t)inv->gen, "seq", (json_int_t)inv->seq, "blobs", add),
                      PROTO_INVENTORY_MAX, out, len, err);
  if ((r = digest_array(inv->del, inv->ndel, &del, err)) < 0)
    return r;
  return proto_dump(what,
                    json_pack("{s:i,s:s,s:I,s:I,s:O,s:O}", "v", PROTO_VERSION, "id", inv->id, "gen",
                              (json_int_t)inv->gen, "seq", (json_int_t)inv->seq, "add", add, "del",
                              del),
                    PROTO_DELTA_MAX, out, len, err);
}

static int parse_digest_value(const char *what, json_t *v, const char *key, size_t i, digest_t *out,
                              ep_err *err) {
  const char *s = json_string_value(v);
  if (s == NULL)
    return ep_error(err, EP_EINVAL, "%s payload: \"%s\"[%zu]: digest is not a string", what, key,
                    i);
  if (json_string_length(v) != DIGEST_STR_LEN || digest_parse(s, out, err) < 0) {
    char q[EP_QUOTE_BUF];
    ep_quote(q, sizeof q, s);
    return ep_error(err, EP_EINVAL, "%s payload: \"%s\"[%zu]: \"%s\" is not sha256:<64 hex>", what,
                    key, i, q);
  }
  return 0;
}

/* ["sha256:<hex>", size] */
static int parse_blob(const char *what, json_t *e, const char *key, size_t i,
                      struct proto_blob *out, ep_err *err) {
  if (!json_is_array(e) || json_array_size(e) != 2)
    return ep_error(err, EP_EINVAL, "%s payload: \"%s\"[%zu] is not [digest, size]", what, key, i);
  int r = parse_digest_value(what, json_array_get(e, 0), key, i, &out->digest, err);
  if (r < 0)
    return r;
  json_t *sz = json_array_get(e, 1);
  if (!json_is_integer(sz) || json_integer_value(sz) < 0 ||
      (uint64_t)json_integer_value(sz) > PROTO_INT_MAX)
    return ep_error(err, EP_EINVAL, "%s payload: \"%s\"[%zu]: size must be an integer in 0..2^53",
                    what, key, i);
  out->size = (uint64_t)json_integer_value(sz);
  return 0;
}

static json_t *get_array(const char *what, json_t *o, const char *key, ep_err *err) {
  json_t *a = json_object_get(o, key);
  if (!json_is_array(a)) {
    ep_error(err, EP_EINVAL, "%s payload: \"%s\" missing or not an array", what, key);
    return NULL;
  }
  return a;
}

static int cmp_hex(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A digest listed twice (or both added and deleted) is ambiguous. */
static int check_unique(const char *what, const struct proto_inventory *inv, ep_err *err) {
  size_t n = inv->nadd + inv->ndel;
  if (n < 2)
    return 0;
  ep_cleanup_free const char **v = calloc(n, sizeof *v);
  if (v == NULL)
    return ep_error(err, EP_EINTERNAL, "%s payload: out of memory", what);
  for (size_t i = 0; i < inv->nadd; i++)
    v[i] = inv->add[i].digest.hex;
  for (size_t i = 0; i < inv->ndel; i++)
    v[inv->nadd + i] = inv->del[i].hex;
  qsort(v, n, sizeof *v, cmp_hex);
  for (size_t i = 1; i < n; i++) {
    if (strcmp(v[i - 1], v[i]) == 0)
      return ep_error(err, EP_EINVAL, "%s payload: blob sha256:%s listed twice", what, v[i]);
  }
  return 0;
}

static int inventory_fields(const char *what, json_t *j, struct proto_inventory *inv, ep_err *err) {
  int r;
  if ((r = proto_get_uint(what, j, "gen", true, PROTO_INT_MAX, &inv->gen, err)) < 0 ||
      (r = proto_get_uint(what, j, "seq", true, PROTO_INT_MAX, &inv->seq, err)) < 0)
    return r;
  const char *akey = inv->snapshot ? "blobs" : "add";
  json_t *add = get_array(what, j, akey, err);
  if (add == NULL)
    return -EP_EINVAL;
  json_t *del = NULL;
  if (!inv->snapshot && (del = get_array(what, j, "del", err)) == NULL)
    return -EP_EINVAL;
  size_t nadd = json_array_size(add);
  size_t ndel = json_array_size(del);
  if (inv->snapshot ? nadd > PROTO_SNAPSHOT_BLOBS
                    : nadd > PROTO_DELTA_BLOBS || ndel > PROTO_DELTA_BLOBS - nadd)
    return ep_error(err, EP_ETOOBIG, "%s payload: %zu blobs, over the limit of %d", what,
                    nadd + ndel, inv->snapshot ? PROTO_SNAPSHOT_BLOBS : PROTO_DELTA_BLOBS);
  if (nadd > 0 && (inv->add = calloc(nadd, sizeof *inv->add)) == NULL)
    return ep_error(err, EP_EINTERNAL, "%s payload: out of memory", what);
  if (ndel > 0 && (inv->del = calloc(ndel, sizeof *inv->del)) == NULL)
    return ep_error(err, EP_EINTERNAL, "%s payload: out of memory", what);
  for (size_t i = 0; i < nadd; i++, inv->nadd++) {
    if ((r = parse_blob(what, json_array_get(add, i), akey, i, &inv->add[i], err)) < 0)
      return r;
  }
  for (size_t i = 0; i < ndel; i++, inv->ndel++) {
    if ((r = parse_digest_value(what, json_array_get(del, i), "del", i, &inv->del[i], err)) < 0)
      return r;
  }
  return check_unique(what, inv, err);
}

int proto_inventory_parse(const void *buf, size_t len, const char *expected_id, bool snapshot,
                          struct proto_inventory *out, ep_err *err) {
  const char *what = snapshot ? "inventory snapshot" : "inventory delta";
  struct proto_inventory inv;
  memset(&inv, 0, sizeof inv);
  memset(out, 0, sizeof *out);
  inv.snapshot = snapshot;
  json_auto_t *j = NULL;
  int r = proto_payload_open(what, buf, len, snapshot ? PROTO_INVENTORY_MAX : PROTO_DELTA_MAX,
                             expected_id, &j, inv.id, err);
  if (r < 0)
    return r;
  if ((r = inventory_fields(what, j, &inv, err)) < 0) {
    proto_inventory_clear(&inv);
    return r;
  }
  *out = inv;
  return 0;
}

void proto_inventory_clear(struct proto_inventory *inv) {
  if (inv == NULL)
    return;
  free(inv->add);
  free(inv->del);
  inv->add = NULL;
  inv->del = NULL;
  inv->nadd = 0;
  inv->ndel = 0;
}

/* ---- parent -------------------------------------------------------------- */

int proto_parent_build(const struct proto_parent *p, char **out, size_t *len, ep_err *err) {
  static const char what[] = "parent";
  int r;
  if ((r = proto_check_field(what, "id", p->id, sizeof p->id, nonempty_id_valid, err)) < 0)
    return r;
  if (p->epoch > PROTO_INT_MAX)
    return ep_error(err, EP_EINVAL, "parent: epoch over 2^53");
  if (!p->has_parent)
    return proto_dump(what,
                      json_pack("{s:i,s:s,s:n,s:I}", "v", PROTO_VERSION, "id", p->id, "parent",
                                "epoch", (json_int_t)p->epoch),
                      PROTO_PARENT_MAX, out, len, err);
  if ((r = proto_check_field(what, "parent", p->parent, sizeof p->parent, nonempty_id_valid, err)) <
          0 ||
      (r = proto_check_field(what, "addr", p->addr, sizeof p->addr, proto_addr_valid, err)) < 0)
    return r;
  if (strcmp(p->id, p->parent) == 0)
    return ep_error(err, EP_EINVAL, "parent: node %s cannot be its own parent", p->id);
  if (p->addr[0] == '\0')
    return ep_error(err, EP_EINVAL, "parent: parent %s has no address", p->parent);
  return proto_dump(what,
                    json_pack("{s:i,s:s,s:s,s:s,s:i,s:I}", "v", PROTO_VERSION, "id", p->id,
                              "parent", p->parent, "addr", p->addr, "peer_port", (int)p->peer_port,
                              "epoch", (json_int_t)p->epoch),
                    PROTO_PARENT_MAX, out, len, err);
}

static int parent_fields(json_t *j, struct proto_parent *p, ep_err *err) {
  static const char what[] = "parent";
  uint64_t port = 0;
  int r;
  json_t *pv = json_object_get(j, "parent");
  if (pv == NULL)
    return ep_error(err, EP_EINVAL, "parent payload: \"parent\" missing");
  p->has_parent = !json_is_null(pv);
  if (p->has_parent) {
    if ((r = proto_get_str(what, j, "parent", true, p->parent, sizeof p->parent, nonempty_id_valid,
                           err)) < 0)
      return r;
    if (strcmp(p->parent, p->id) == 0)
      return ep_error(err, EP_EINVAL, "parent payload: node %s assigned to itself", p->id);
  }
  if ((r = proto_get_str(what, j, "addr", p->has_parent, p->addr, sizeof p->addr, proto_addr_valid,
                         err)) < 0 ||
      (r = proto_get_uint(what, j, "peer_port", p->has_parent, UINT16_MAX, &port, err)) < 0 ||
      (r = proto_get_uint(what, j, "epoch", true, PROTO_INT_MAX, &p->epoch, err)) < 0)
    return r;
  if (p->has_parent && p->addr[0] == '\0')
    return ep_error(err, EP_EINVAL, "parent payload: \"addr\" is empty");
  /* A root has no parent to reach: an addr or peer_port sent with it is
   * dropped, so the struct is what proto_parent_build would send. */
  if (!p->has_parent) {
    memset(p->addr, 0, sizeof p->addr);
    port = 0;
  }
  p->peer_port = (uint16_t)port;
  return 0;
}

int proto_parent_parse(const void *buf, size_t len, const char *expected_id,
                       struct proto_parent *out, ep_err *err) {
  struct proto_parent p;
  memset(&p, 0, sizeof p);
  json_auto_t *j = NULL;
  int r = proto_payload_open("parent", buf, len, PROTO_PARENT_MAX, expected_id, &j, p.id, err);
  if (r < 0 || (r = parent_fields(j, &p, err)) < 0)
    return r;
  *out = p;
  return 0;
}
