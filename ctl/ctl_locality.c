/* edgepullctl subcommands on the locality-wide index (schema v2): nodes,
 * where DIGEST (topology is in ctl_topology.c).
 *
 * The tables are filled by the node agent from other nodes' MQTT messages,
 * so nothing here trusts them: names are sanitized for the terminal (as in
 * ctl_output.c) and every walk is one read-only pass. A v1 index (the
 * daemon has not upgraded it yet) is reported as such, exit 1. */
#include "ctl/ctl.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/names.h"
#include "store/index.h"

index_db *ctl_open_locality(const struct ctl_opts *o) {
  char path[PATH_MAX];
  index_db *db = ctl_open_index(o, path, sizeof path);
  if (db != NULL && index_schema_version(db) < 2) {
    ctl_errorf("index %s has no locality tables yet (schema v%d); edgepulld adds them when it "
               "next starts",
               path, index_schema_version(db));
    index_close(db);
    return NULL;
  }
  return db;
}

void ctl_fmt_address(const struct index_node *n, char *buf, size_t cap) {
  if (n->addr[0] == '\0')
    snprintf(buf, cap, "-");
  else if (n->peer_port == 0)
    snprintf(buf, cap, "%s", n->addr);
  else if (names_hostport_format(buf, cap, n->addr, n->peer_port, NULL) < 0)
    snprintf(buf, cap, "-");
}

json_t *ctl_node_json(const struct index_node *n) {
  char address[96];
  ctl_fmt_address(n, address, sizeof address);
  json_t *j = json_pack(
      "{s:o, s:o, s:o, s:i, s:o, s:o, s:I, s:I, s:o, s:b, s:b, s:I, s:o, s:I, s:I, s:I}", "id",
      ctl_json_str(n->id), "address", ctl_json_str(n->addr[0] != '\0' ? address : ""), "addr",
      ctl_json_str(n->addr), "peer_port", (int)n->peer_port, "arch", ctl_json_str(n->arch),
      "variant", ctl_json_str(n->variant), "link_mbps", (json_int_t)n->link_mbps, "free_bytes",
      (json_int_t)n->free_bytes, "version", ctl_json_str(n->version), "online", n->online,
      "gateway", n->gateway, "last_seen", (json_int_t)n->last_seen, "parent",
      n->parent[0] != '\0' ? ctl_json_str(n->parent) : json_null(), "epoch", (json_int_t)n->epoch,
      "blobs", (json_int_t)n->blobs, "blob_bytes", (json_int_t)n->blob_bytes);
  return j;
}

/* Output of nodes / where: a table or a JSON list. */
struct out {
  const struct ctl_opts *o;
  ctl_table *table;
  json_t *list;
  ep_err err;
};

static int out_init(struct out *w, const struct ctl_opts *o, const struct ctl_col *cols,
                    size_t ncols) {
  memset(w, 0, sizeof *w);
  w->o = o;
  if (o->json)
    w->list = json_array();
  else
    w->table = ctl_table_new(cols, ncols);
  if (w->list == NULL && w->table == NULL) {
    ctl_errorf("out of memory");
    return -1;
  }
  return 0;
}

static void out_free(struct out *w) {
  json_decref(w->list);
  ctl_table_free(w->table);
}

static const char *state_str(const struct index_node *n) {
  if (n->gateway)
    return n->online ? "online,gateway" : "offline,gateway";
  return n->online ? "online" : "offline";
}

static int node_row(const struct index_node *n, void *ud) {
  struct out *w = ud;
  if (w->list != NULL)
    return json_array_append_new(w->list, ctl_node_json(n)) == 0 ? 0 : -EP_EINTERNAL;
  char address[96], blobs[32], held[32], freeb[32], seen[32];
  ctl_fmt_address(n, address, sizeof address);
  snprintf(blobs, sizeof blobs, "%" PRIu64, n->blobs);
  ctl_fmt_size(n->blob_bytes, held, sizeof held);
  ctl_fmt_size(n->free_bytes, freeb, sizeof freeb);
  ctl_fmt_time(n->last_seen, seen, sizeof seen);
  const char *cells[] = {n->id, address, state_str(n), n->parent[0] != '\0' ? n->parent : "-",
                         blobs, held,    freeb,        seen};
  return ctl_table_add(w->table, cells) == 0 ? 0 : -EP_EINTERNAL;
}

/* Prints the walk's result; returns the exit code. */
static int out_finish(struct out *w, int r, json_t *doc) {
  if (r < 0) {
    ctl_errorf("%s", w->err.msg[0] != '\0' ? w->err.msg : ep_errcode_name(-r));
    json_decref(doc);
    return CTL_EXIT_FAIL;
  }
  if (doc != NULL)
    return ctl_json_print(doc);
  ctl_table_print(w->table, stdout);
  return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}

int ctl_cmd_nodes(const struct ctl_opts *o) {
  static const struct ctl_col cols[] = {
      {"ID", false},   {"ADDRESS", false}, {"STATE", false}, {"PARENT", false},
      {"BLOBS", true}, {"HELD", true},     {"FREE", true},   {"LAST SEEN", false},
  };
  struct out w;
  index_db *db = ctl_open_locality(o);
  if (db == NULL)
    return CTL_EXIT_FAIL;
  if (out_init(&w, o, cols, sizeof cols / sizeof cols[0]) < 0) {
    index_close(db);
    return CTL_EXIT_FAIL;
  }
  int r = index_foreach_node(db, node_row, &w, &w.err);
  index_close(db);
  json_t *doc = NULL;
  if (r >= 0 && o->json) {
    doc = json_pack("{s:O}", "nodes", w.list);
  }
  int rc = out_finish(&w, r, doc);
  out_free(&w);
  return rc;
}

static int holder_row(const struct index_node *n, uint64_t size, void *ud) {
  struct out *w = ud;
  if (w->list != NULL) {
    json_t *j = ctl_node_json(n);
    if (j == NULL || json_object_set_new(j, "size", json_integer((json_int_t)size)) < 0) {
      json_decref(j);
      return -EP_EINTERNAL;
    }
    return json_array_append_new(w->list, j) == 0 ? 0 : -EP_EINTERNAL;
  }
  char address[96], sz[32];
  ctl_fmt_address(n, address, sizeof address);
  ctl_fmt_size(size, sz, sizeof sz);
  const char *cells[] = {n->id, address, state_str(n), sz};
  return ctl_table_add(w->table, cells) == 0 ? 0 : -EP_EINTERNAL;
}

int ctl_cmd_where(const struct ctl_opts *o) {
  static const struct ctl_col cols[] = {
      {"NODE", false}, {"ADDRESS", false}, {"STATE", false}, {"SIZE", true}};
  digest_t d;
  ep_err e = {0};
  if (o->arg == NULL || digest_parse(o->arg, &d, &e) < 0) {
    ctl_errorf("where: %s", e.msg[0] != '\0' ? e.msg : "missing digest");
    fprintf(stderr, "Try 'edgepullctl --help'.\n");
    return CTL_EXIT_USAGE;
  }
  index_db *db = ctl_open_locality(o);
  if (db == NULL)
    return CTL_EXIT_FAIL;
  struct out w;
  if (out_init(&w, o, cols, sizeof cols / sizeof cols[0]) < 0) {
    index_close(db);
    return CTL_EXIT_FAIL;
  }
  int r = index_where(db, &d, holder_row, &w, &w.err);
  index_close(db);
  char ds[DIGEST_STR_LEN + 1];
  digest_format(&d, ds);
  json_t *doc = NULL;
  int rc;
  if (r >= 0 && o->json) {
    doc = json_pack("{s:s, s:O}", "digest", ds, "nodes", w.list);
    rc = out_finish(&w, r, doc);
  } else if (r >= 0 && ctl_table_rows(w.table) == 0) {
    printf("no node of the locality holds %s\n", ds);
    rc = fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
  } else {
    rc = out_finish(&w, r, NULL);
  }
  out_free(&w);
  return rc;
}
