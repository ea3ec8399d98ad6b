/* What `edgepullctl deploy --wait` shows: one line per node plus a total
 * line, redrawn in place on a terminal (ANSI cursor up + erase line, at
 * most every 200 ms), or one JSON object per line otherwise; then the final
 * report (wall time, uplink bytes from the gateway, bytes per node,
 * failures, nodes that never finished). Node ids and error texts come from
 * the protocol parser (bounded, printable ASCII), and are sanitized again
 * before they reach a terminal. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/escape.h"
#include "ctl/ctl.h"
#include "ctl/ctl_deploy.h"

#define DRAW_EVERY_MS 200

static const char *state_name(const struct ctl_dnode *n) {
  if (!n->have)
    return n->online ? "waiting" : "offline";
  switch (n->p.state) {
  case PROTO_PROGRESS_RUNNING:
    return "running";
  case PROTO_PROGRESS_DONE:
    return "done";
  case PROTO_PROGRESS_FAILED:
    return "failed";
  }
  return "?";
}

struct ctl_dnode *ctl_dview_node(struct ctl_dview *v, const char *id, bool create) {
  for (size_t i = 0; i < v->n; i++)
    if (strcmp(v->nodes[i].id, id) == 0)
      return &v->nodes[i];
  if (!create || v->n >= CTL_DEPLOY_NODES_MAX)
    return NULL;
  if (v->nodes == NULL && (v->nodes = calloc(CTL_DEPLOY_NODES_MAX, sizeof *v->nodes)) == NULL)
    return NULL;
  struct ctl_dnode *n = &v->nodes[v->n++];
  memset(n, 0, sizeof *n);
  snprintf(n->id, sizeof n->id, "%s", id);
  return n;
}

void ctl_dview_state(struct ctl_dview *v, const char *id, bool online) {
  struct ctl_dnode *n = ctl_dview_node(v, id, online);
  if (n == NULL)
    return;
  n->online = online;
  /* An expected node that goes offline (its Last Will) will never send its
   * final message: count it as failed so the wait ends with the others. */
  if (!online && n->expected && !n->final && v->start_ms > 0) {
    n->have = true;
    n->final = true;
    n->p.state = PROTO_PROGRESS_FAILED;
    snprintf(n->p.error, sizeof n->p.error, "node went offline before finishing");
  }
}

void ctl_dview_expect(struct ctl_dview *v, int64_t now_ms) {
  v->start_ms = now_ms;
  for (size_t i = 0; i < v->n; i++)
    v->nodes[i].expected = v->nodes[i].online;
}

static void json_line(struct ctl_dview *v, const struct proto_progress *p) {
  json_t *j = json_pack(
      "{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "event", "progress", "id", p->id, "node",
      p->node, "state", state_name(&(struct ctl_dnode){.have = true, .p = *p}), "blobs_total",
      (json_int_t)p->blobs_total, "blobs_done", (json_int_t)p->blobs_done, "bytes_total",
      (json_int_t)p->bytes_total, "bytes_done", (json_int_t)p->bytes_done, "uplink_bytes",
      (json_int_t)p->uplink_bytes, "peer_bytes", (json_int_t)p->peer_bytes);
  if (j == NULL)
    return;
  if (p->state == PROTO_PROGRESS_FAILED)
    json_object_set_new(j, "error", ctl_json_str(p->error));
  json_dumpf(j, v->out, JSON_COMPACT);
  fputc('\n', v->out);
  fflush(v->out);
  json_decref(j);
}

static void draw(struct ctl_dview *v, int64_t now_ms) {
  char done[32], total[32], rate[32], line[256];
  uint64_t sum_done = 0, sum_total = 0;
  size_t nexp = 0, nfin = 0;
  if (v->drawn > 0)
    fprintf(v->out, "\033[%dA", v->drawn);
  v->drawn = 0;
  for (size_t i = 0; i < v->n; i++) {
    const struct ctl_dnode *n = &v->nodes[i];
    if (!n->expected)
      continue;
    nexp++;
    nfin += n->final;
    sum_done += n->p.bytes_done;
    sum_total += n->p.bytes_total;
    ctl_fmt_size(n->p.bytes_done, done, sizeof done);
    ctl_fmt_size(n->p.bytes_total, total, sizeof total);
    int pct = n->p.bytes_total > 0 ? (int)(n->p.bytes_done * 100 / n->p.bytes_total) : 0;
    snprintf(line, sizeof line, "%-20.20s %-8s %4" PRIu64 "/%-4" PRIu64 " blobs %10s / %-10s %3d%%",
             n->id, state_name(n), n->p.blobs_done, n->p.blobs_total, done, total,
             n->final && n->p.state == PROTO_PROGRESS_DONE ? 100 : pct);
    ep_sanitize(line, SIZE_MAX);
    fprintf(v->out, "\033[2K%s\n", line);
    v->drawn++;
  }
  double secs = (double)(now_ms - v->start_ms) / 1000.0;
  ctl_fmt_size(sum_done, done, sizeof done);
  ctl_fmt_size(sum_total, total, sizeof total);
  ctl_fmt_size(secs > 0.1 ? (uint64_t)((double)sum_done / secs) : 0, rate, sizeof rate);
  fprintf(v->out, "\033[2Ktotal %s / %s, %s/s, %zu/%zu nodes finished, %.1f s\n", done, total, rate,
          nfin, nexp, secs);
  v->drawn++;
  fflush(v->out);
  v->last_draw_ms = now_ms;
}

void ctl_dview_progress(struct ctl_dview *v, const struct proto_progress *p, int64_t now_ms) {
  struct ctl_dnode *n = ctl_dview_node(v, p->node, true);
  if (n == NULL || n->final)
    return; /* a late tick after the final message changes nothing */
  n->expected = true;
  n->have = true;
  n->p = *p;
  n->final = p->state != PROTO_PROGRESS_RUNNING;
  if (!v->tty)
    json_line(v, p);
  else if (n->final || now_ms - v->last_draw_ms >= DRAW_EVERY_MS)
    draw(v, now_ms);
}

void ctl_dview_tick(struct ctl_dview *v, int64_t now_ms) {
  if (v->tty && now_ms - v->last_draw_ms >= 1000)
    draw(v, now_ms);
}

bool ctl_dview_complete(const struct ctl_dview *v) {
  size_t nexp = 0;
  for (size_t i = 0; i < v->n; i++) {
    if (!v->nodes[i].expected)
      continue;
    nexp++;
    if (!v->nodes[i].final)
      return false;
  }
  return nexp > 0;
}

bool ctl_dview_answered(const struct ctl_dview *v) {
  for (size_t i = 0; i < v->n; i++)
    if (v->nodes[i].have && v->nodes[i].p.id[0] != '\0')
      return true;
  return false;
}

size_t ctl_dview_expected(const struct ctl_dview *v) {
  size_t n = 0;
  for (size_t i = 0; i < v->n; i++)
    n += v->nodes[i].expected;
  return n;
}

static int report_json(struct ctl_dview *v, double secs, uint64_t uplink, size_t ndone, size_t nexp,
                       bool timed_out) {
  json_t *nodes = json_array();
  for (size_t i = 0; nodes != NULL && i < v->n; i++) {
    const struct ctl_dnode *n = &v->nodes[i];
    if (!n->expected)
      continue;
    json_t *o =
        json_pack("{s:o,s:s,s:I,s:I,s:I,s:I}", "node", ctl_json_str(n->id), "state",
                  n->final ? state_name(n) : "unfinished", "bytes", (json_int_t)n->p.bytes_done,
                  "blobs", (json_int_t)n->p.blobs_done, "uplink_bytes",
                  (json_int_t)n->p.uplink_bytes, "peer_bytes", (json_int_t)n->p.peer_bytes);
    if (o != NULL && n->final && n->p.state == PROTO_PROGRESS_FAILED)
      json_object_set_new(o, "error", ctl_json_str(n->p.error));
    json_array_append_new(nodes, o);
  }
  json_t *j =
      json_pack("{s:s,s:s,s:o,s:f,s:I,s:I,s:I,s:b,s:b,s:o}", "event", "report", "id", v->id,
                "image", ctl_json_str(v->image), "wall_s", secs, "uplink_bytes", (json_int_t)uplink,
                "nodes_done", (json_int_t)ndone, "nodes_total", (json_int_t)nexp, "timed_out",
                timed_out, "ok", !timed_out && ndone == nexp && nexp > 0, "nodes", nodes);
  if (j != NULL && v->reason[0] != '\0')
    json_object_set_new(j, "reason", ctl_json_str(v->reason));
  if (j == NULL)
    return CTL_EXIT_FAIL;
  json_dumpf(j, v->out, JSON_COMPACT);
  fputc('\n', v->out);
  json_decref(j);
  return 0;
}

static void report_human(struct ctl_dview *v, double secs, uint64_t uplink, size_t ndone,
                         size_t nexp, bool timed_out) {
  char up[32], b[32], line[512];
  ctl_fmt_size(uplink, up, sizeof up);
  fprintf(v->out, "\ndeploy %s: %zu/%zu nodes done in %.1f s%s; uplink %s\n", v->id, ndone, nexp,
          secs, timed_out ? " (timed out)" : "", up);
  if (v->reason[0] != '\0')
    fprintf(v->out, "  %s\n", v->reason);
  for (size_t i = 0; i < v->n; i++) {
    const struct ctl_dnode *n = &v->nodes[i];
    if (!n->expected)
      continue;
    ctl_fmt_size(n->p.bytes_done, b, sizeof b);
    snprintf(line, sizeof line, "  %-20.20s %-10s %10s%s%s", n->id,
             n->final ? state_name(n) : "unfinished", b,
             n->final && n->p.state == PROTO_PROGRESS_FAILED ? "  " : "",
             n->final && n->p.state == PROTO_PROGRESS_FAILED ? n->p.error : "");
    ep_sanitize(line, SIZE_MAX);
    fprintf(v->out, "%s\n", line);
  }
}

int ctl_dview_report(struct ctl_dview *v, int64_t now_ms, bool timed_out) {
  uint64_t uplink = 0;
  size_t ndone = 0, nexp = 0;
  for (size_t i = 0; i < v->n; i++) {
    const struct ctl_dnode *n = &v->nodes[i];
    if (!n->expected)
      continue;
    nexp++;
    ndone += n->final && n->p.state == PROTO_PROGRESS_DONE;
    uplink += n->p.uplink_bytes; /* only the gateway fetches upstream */
  }
  double secs = (double)(now_ms - v->start_ms) / 1000.0;
  if (v->tty) {
    draw(v, now_ms);
    report_human(v, secs, uplink, ndone, nexp, timed_out);
  } else if (report_json(v, secs, uplink, ndone, nexp, timed_out) != 0) {
    return CTL_EXIT_FAIL;
  }
  fflush(v->out);
  return !timed_out && nexp > 0 && ndone == nexp ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}

void ctl_dview_free(struct ctl_dview *v) {
  free(v->nodes);
  v->nodes = NULL;
  v->n = 0;
}
