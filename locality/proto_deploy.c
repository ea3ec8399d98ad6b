/* The locality protocol's deploy messages: a client's deploy request, the
 * nodes' progress reports, and a node's report of a peer that served wrong
 * bytes (docs/protocol.md, "Deploy" and "Suspect peers").
 *
 * Same rules as proto.c, whose helpers this file shares (proto_int.h): size
 * limit before parsing, "v" first, ids checked against the topic, every
 * field typed and bounded, and builders refuse what parsers would drop.
 * Free text (a reason, an error) is printable ASCII only, so nothing a node
 * sends can drive an operator's terminal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/escape.h"
#include "common/names.h"
#include "locality/proto_int.h"

/* ---- value classes --------------------------------------------------------- */

bool proto_image_valid(const char *s) {
  if (s == NULL)
    return false;
  size_t n = strnlen(s, PROTO_IMAGE_MAX + 1);
  if (n == 0 || n > PROTO_IMAGE_MAX)
    return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] < 0x21 || s[i] > 0x7e)
      return false;
  return true;
}

bool proto_platform_valid(const char *s) {
  if (s == NULL)
    return false;
  size_t n = strnlen(s, PROTO_PLATFORM_MAX + 1);
  if (n == 0 || n > PROTO_PLATFORM_MAX)
    return false;
  unsigned slashes = 0;
  size_t tok = 0; /* length of the current token */
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '/') {
      if (tok == 0 || ++slashes > 2)
        return false;
      tok = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') {
      tok++;
    } else {
      return false;
    }
  }
  return slashes >= 1 && tok > 0;
}

static bool text_valid(const char *s) {
  for (; *s != '\0'; s++)
    if (*s < 0x20 || *s > 0x7e)
      return false;
  return true;
}

static bool nonempty_id(const char *s) {
  return names_node_id_valid(s);
}

static bool deploy_id(const char *s) {
  return proto_deploy_id_valid(s);
}

static const char *const import_names[] = {
    [PROTO_IMPORT_NONE] = "none",
    [PROTO_IMPORT_CONTAINERD] = "containerd",
    [PROTO_IMPORT_DOCKER] = "docker",
};

int proto_import_parse(const char *s, enum proto_import *out, ep_err *err) {
  for (size_t i = 0; s != NULL && i < sizeof import_names / sizeof import_names[0]; i++) {
    if (strcmp(s, import_names[i]) == 0) {
      *out = (enum proto_import)i;
      return 0;
    }
  }
  char q[EP_QUOTE_BUF];
  ep_quote(q, sizeof q, s != NULL ? s : "");
  return ep_error(err, EP_EINVAL, "import \"%s\": must be none, containerd or docker", q);
}

const char *proto_import_name(enum proto_import imp) {
  return (unsigned)imp <= PROTO_IMPORT_DOCKER ? import_names[imp] : "none";
}

static bool ts_ok(int64_t ts) {
  return ts >= 0 && (uint64_t)ts <= PROTO_INT_MAX;
}

/* ---- topics ---------------------------------------------------------------- */

int proto_deploy_topic(const char *locality, char *buf, size_t len, ep_err *err) {
  if (!names_locality_valid(locality))
    return ep_error(err, EP_EINVAL, "deploy topic: invalid locality id");
  int n = snprintf(buf, len, "edgepull/v1/%s/deploy", locality);
  if (n < 0 || (size_t)n >= len)
    return ep_error(err, EP_ETOOBIG, "deploy topic: buffer of %zu bytes too small", len);
  return 0;
}

int proto_progress_topic(const char *locality, const char *deploy, const char *node, char *buf,
                         size_t len, ep_err *err) {
  if (!names_locality_valid(locality) || !proto_deploy_id_valid(deploy) ||
      (node != NULL && !names_node_id_valid(node)))
    return ep_error(err, EP_EINVAL, "progress topic: invalid locality, deploy or node id");
  int n = snprintf(buf, len, "edgepull/v1/%s/deploy/%s/progress/%s", locality, deploy,
                   node != NULL ? node : "+");
  if (n < 0 || (size_t)n >= len)
    return ep_error(err, EP_ETOOBIG, "progress topic: buffer of %zu bytes too small", len);
  return 0;
}

/* ---- deploy ---------------------------------------------------------------- */

int proto_deploy_build(const struct proto_deploy *d, char **out, size_t *len, ep_err *err) {
  static const char what[] = "deploy";
  int r;
  if ((r = proto_check_field(what, "id", d->id, sizeof d->id, deploy_id, err)) < 0 ||
      (r = proto_check_field(what, "image", d->image, sizeof d->image, proto_image_valid, err)) < 0)
    return r;
  if (d->nplatforms > PROTO_PLATFORMS_MAX)
    return ep_error(err, EP_ETOOBIG, "deploy: %zu platforms, over the limit of %d", d->nplatforms,
                    PROTO_PLATFORMS_MAX);
  if ((unsigned)d->import > PROTO_IMPORT_DOCKER || !ts_ok(d->ts))
    return ep_error(err, EP_EINVAL, "deploy: import or ts out of range");
  json_auto_t *pl = json_array();
  if (pl == NULL)
    return ep_error(err, EP_EINTERNAL, "deploy: out of memory");
  for (size_t i = 0; i < d->nplatforms; i++) {
    if ((r = proto_check_field(what, "platforms", d->platforms[i], sizeof d->platforms[i],
                               proto_platform_valid, err)) < 0)
      return r;
    if (json_array_append_new(pl, json_string(d->platforms[i])) < 0)
      return ep_error(err, EP_EINTERNAL, "deploy: out of memory");
  }
  return proto_dump(what,
                    json_pack("{s:i,s:s,s:s,s:O,s:s,s:I}", "v", PROTO_VERSION, "id", d->id, "image",
                              d->image, "platforms", pl, "import", import_names[d->import], "ts",
                              (json_int_t)d->ts),
                    PROTO_DEPLOY_MAX, out, len, err);
}

static int deploy_fields(json_t *j, struct proto_deploy *d, ep_err *err) {
  static const char what[] = "deploy";
  char imp[16] = "none";
  uint64_t ts = 0;
  int r;
  if (!proto_deploy_id_valid(d->id))
    return ep_error(err, EP_EINVAL, "deploy payload: id must be %d lowercase hex digits",
                    PROTO_DEPLOY_ID_LEN);
  if ((r = proto_get_str(what, j, "image", true, d->image, sizeof d->image, proto_image_valid,
                         err)) < 0 ||
      (r = proto_get_str(what, j, "import", false, imp, sizeof imp, proto_token_valid, err)) < 0 ||
      (r = proto_get_uint(what, j, "ts", false, PROTO_INT_MAX, &ts, err)) < 0)
    return r;
  if ((r = proto_import_parse(imp, &d->import, err)) < 0)
    return ep_wrap(err, "deploy payload");
  d->ts = (int64_t)ts;
  json_t *pl = json_object_get(j, "platforms");
  if (pl == NULL)
    return 0;
  if (!json_is_array(pl))
    return ep_error(err, EP_EINVAL, "deploy payload: \"platforms\" is not an array");
  if (json_array_size(pl) > PROTO_PLATFORMS_MAX)
    return ep_error(err, EP_ETOOBIG, "deploy payload: %zu platforms, over the limit of %d",
                    json_array_size(pl), PROTO_PLATFORMS_MAX);
  for (size_t i = 0; i < json_array_size(pl); i++) {
    json_t *v = json_array_get(pl, i);
    const char *s = json_string_value(v);
    if (s == NULL || json_string_length(v) > PROTO_PLATFORM_MAX || !proto_platform_valid(s))
      return ep_error(err, EP_EINVAL,
                      "deploy payload: \"platforms\"[%zu] is not \"os/arch[/variant]\"", i);
    memcpy(d->platforms[i], s, json_string_length(v) + 1);
    d->nplatforms++;
  }
  return 0;
}

int proto_deploy_parse(const void *buf, size_t len, struct proto_deploy *out, ep_err *err) {
  ep_cleanup_free struct proto_deploy *d = calloc(1, sizeof *d);
  if (d == NULL)
    return ep_error(err, EP_EINTERNAL, "deploy payload: out of memory");
  json_auto_t *j = NULL;
  int r = proto_payload_open("deploy", buf, len, PROTO_DEPLOY_MAX, NULL, &j, d->id, err);
  if (r < 0 || (r = deploy_fields(j, d, err)) < 0)
    return r;
  *out = *d;
  return 0;
}

/* ---- progress -------------------------------------------------------------- */

static const char *const state_names[] = {
    [PROTO_PROGRESS_RUNNING] = "running",
    [PROTO_PROGRESS_DONE] = "done",
    [PROTO_PROGRESS_FAILED] = "failed",
};

static int progress_check(const struct proto_progress *p, ep_err *err) {
  if ((unsigned)p->state > PROTO_PROGRESS_FAILED)
    return ep_error(err, EP_EINVAL, "progress: unknown state %d", (int)p->state);
  if (p->blobs_total > PROTO_INT_MAX || p->blobs_done > p->blobs_total ||
      p->bytes_total > PROTO_INT_MAX || p->bytes_done > PROTO_INT_MAX ||
      p->uplink_bytes > PROTO_INT_MAX || p->peer_bytes > PROTO_INT_MAX || !ts_ok(p->ts))
    return ep_error(err, EP_EINVAL, "progress: a counter is out of range (or blobs_done > total)");
  if ((p->state == PROTO_PROGRESS_FAILED) != (p->error[0] != '\0'))
    return ep_error(err, EP_EINVAL, "progress: \"error\" is required for failed, else absent");
  return 0;
}

int proto_progress_build(const struct proto_progress *p, char **out, size_t *len, ep_err *err) {
  static const char what[] = "progress";
  int r;
  if ((r = proto_check_field(what, "id", p->id, sizeof p->id, deploy_id, err)) < 0 ||
      (r = proto_check_field(what, "node", p->node, sizeof p->node, nonempty_id, err)) < 0 ||
      (r = proto_check_field(what, "error", p->error, sizeof p->error, text_valid, err)) < 0 ||
      (r = progress_check(p, err)) < 0)
    return r;
  json_t *j = json_pack("{s:i,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "v", PROTO_VERSION, "id",
                        p->id, "node", p->node, "state", state_names[p->state], "blobs_total",
                        (json_int_t)p->blobs_total, "blobs_done", (json_int_t)p->blobs_done,
                        "bytes_total", (json_int_t)p->bytes_total, "bytes_done",
                        (json_int_t)p->bytes_done, "uplink_bytes", (json_int_t)p->uplink_bytes,
                        "peer_bytes", (json_int_t)p->peer_bytes, "ts", (json_int_t)p->ts);
  if (j != NULL && p->state == PROTO_PROGRESS_FAILED &&
      json_object_set_new(j, "error", json_string(p->error)) < 0) {
    json_decref(j);
    j = NULL;
  }
  return proto_dump(what, j, PROTO_PROGRESS_MAX, out, len, err);
}

static int progress_fields(json_t *j, struct proto_progress *p, ep_err *err) {
  static const char what[] = "progress";
  char state[16];
  uint64_t ts = 0;
  int r;
  if (!proto_deploy_id_valid(p->id))
    return ep_error(err, EP_EINVAL, "progress payload: id must be %d lowercase hex digits",
                    PROTO_DEPLOY_ID_LEN);
  if ((r = proto_get_str(what, j, "node", true, p->node, sizeof p->node, nonempty_id, err)) < 0 ||
      (r = proto_get_str(what, j, "state", true, state, sizeof state, proto_token_valid, err)) <
          0 ||
      (r = proto_get_str(what, j, "error", false, p->error, sizeof p->error, text_valid, err)) <
          0 ||
      (r = proto_get_uint(what, j, "blobs_total", true, PROTO_INT_MAX, &p->blobs_total, err)) < 0 ||
      (r = proto_get_uint(what, j, "blobs_done", true, PROTO_INT_MAX, &p->blobs_done, err)) < 0 ||
      (r = proto_get_uint(what, j, "bytes_total", true, PROTO_INT_MAX, &p->bytes_total, err)) < 0 ||
      (r = proto_get_uint(what, j, "bytes_done", true, PROTO_INT_MAX, &p->bytes_done, err)) < 0 ||
      (r = proto_get_uint(what, j, "uplink_bytes", false, PROTO_INT_MAX, &p->uplink_bytes, err)) <
          0 ||
      (r = proto_get_uint(what, j, "peer_bytes", false, PROTO_INT_MAX, &p->peer_bytes, err)) < 0 ||
      (r = proto_get_uint(what, j, "ts", false, PROTO_INT_MAX, &ts, err)) < 0)
    return r;
  p->ts = (int64_t)ts;
  size_t i = 0;
  while (i < 3 && strcmp(state, state_names[i]) != 0)
    i++;
  if (i == 3)
    return ep_error(err, EP_EINVAL, "progress payload: \"state\" must be running, done or failed");
  p->state = (enum proto_progress_state)i;
  if ((r = progress_check(p, err)) < 0)
    return ep_wrap(err, "progress payload");
  return 0;
}

int proto_progress_parse(const void *buf, size_t len, const char *expected_id,
                         const char *expected_node, struct proto_progress *out, ep_err *err) {
  struct proto_progress p;
  memset(&p, 0, sizeof p);
  json_auto_t *j = NULL;
  int r = proto_payload_open("progress", buf, len, PROTO_PROGRESS_MAX, expected_id, &j, p.id, err);
  if (r < 0 || (r = progress_fields(j, &p, err)) < 0)
    return r;
  if (expected_node != NULL && strcmp(p.node, expected_node) != 0)
    return ep_error(err, EP_EINVAL, "progress payload: node \"%s\" does not match the topic's",
                    p.node);
  *out = p;
  return 0;
}

/* ---- report ---------------------------------------------------------------- */

int proto_report_build(const struct proto_report *rp, char **out, size_t *len, ep_err *err) {
  static const char what[] = "report";
  char d[DIGEST_STR_LEN + 1];
  int r;
  if ((r = proto_check_field(what, "id", rp->id, sizeof rp->id, nonempty_id, err)) < 0 ||
      (r = proto_check_field(what, "suspect", rp->suspect, sizeof rp->suspect, nonempty_id, err)) <
          0 ||
      (r = proto_check_field(what, "reason", rp->reason, sizeof rp->reason, text_valid, err)) < 0)
    return r;
  if (strcmp(rp->id, rp->suspect) == 0)
    return ep_error(err, EP_EINVAL, "report: node %s cannot report itself", rp->id);
  if (digest_parse_hex(rp->digest.hex, NULL, err) < 0)
    return ep_wrap(err, "report: digest");
  if (!ts_ok(rp->ts))
    return ep_error(err, EP_EINVAL, "report: ts out of range");
  digest_format(&rp->digest, d);
  return proto_dump(what,
                    json_pack("{s:i,s:s,s:s,s:s,s:s,s:I}", "v", PROTO_VERSION, "id", rp->id,
                              "suspect", rp->suspect, "digest", d, "reason", rp->reason, "ts",
                              (json_int_t)rp->ts),
                    PROTO_REPORT_MAX, out, len, err);
}

static int report_fields(json_t *j, struct proto_report *rp, ep_err *err) {
  static const char what[] = "report";
  char d[DIGEST_STR_LEN + 1];
  uint64_t ts = 0;
  int r;
  if ((r = proto_get_str(what, j, "suspect", true, rp->suspect, sizeof rp->suspect, nonempty_id,
                         err)) < 0 ||
      (r = proto_get_str(what, j, "digest", true, d, sizeof d, text_valid, err)) < 0 ||
      (r = proto_get_str(what, j, "reason", false, rp->reason, sizeof rp->reason, text_valid,
                         err)) < 0 ||
      (r = proto_get_uint(what, j, "ts", false, PROTO_INT_MAX, &ts, err)) < 0)
    return r;
  if (strcmp(rp->id, rp->suspect) == 0)
    return ep_error(err, EP_EINVAL, "report payload: node %s reports itself", rp->id);
  if (digest_parse(d, &rp->digest, err) < 0)
    return ep_wrap(err, "report payload: \"digest\"");
  rp->ts = (int64_t)ts;
  return 0;
}

int proto_report_parse(const void *buf, size_t len, const char *expected_id,
                       struct proto_report *out, ep_err *err) {
  struct proto_report rp;
  memset(&rp, 0, sizeof rp);
  json_auto_t *j = NULL;
  int r = proto_payload_open("report", buf, len, PROTO_REPORT_MAX, expected_id, &j, rp.id, err);
  if (r < 0 || (r = report_fields(j, &rp, err)) < 0)
    return r;
  *out = rp;
  return 0;
}
