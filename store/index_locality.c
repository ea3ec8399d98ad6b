/* The locality-wide index (schema v2): the nodes of the locality and which
 * complete blobs each one holds, as the node agent learns them over MQTT.
 *
 * Why in the node's own sqlite file: the fetch engine asks "which peer holds
 * this digest" (index_where) on every miss, and operators ask the same with
 * edgepullctl or the sqlite3 shell; one indexed join answers both.
 *
 * How: everything here comes from other machines, so every id, string, size
 * and count is checked before it is bound (ids are [A-Za-z0-9._-]{1,63}, as
 * in the protocol), and every row read back is checked again. A snapshot
 * (index_inventory_replace) and a delta (index_inventory_apply) are each one
 * transaction on cached statements: a reader never sees half an inventory,
 * and 20,000 entries take tens of milliseconds. Inventory rows reference
 * their node, so a snapshot or delta for a node whose state has not arrived
 * yet creates a bare (offline, addressless) node row first. Walks page like
 * index_ops.c's: rows are read under the handle's mutex and handed to the
 * callback with the mutex released.
 *
 * A handle on a v1 file (edgepullctl on an index the daemon has not
 * upgraded yet) refuses every call here with EP_EUNSUPPORTED. */
#include "store/index_db.h"

#include <stdlib.h>
#include <string.h>

#include "common/names.h"

/* Entries in one snapshot or delta call (the protocol's are far smaller). */
enum { INDEX_INVENTORY_MAX = 1 << 20 };

static int check_locality(index_db *db, ep_err *err) {
  if (db->version < 2)
    return ep_error(err, EP_EUNSUPPORTED, "index %s has no locality tables yet (schema v%d)",
                    db->path, db->version);
  return 0;
}

static int check_node_id(const char *id, const char *what, ep_err *err) {
  int r = index_check_str(id, INDEX_NODE_ID_MAX, false, what, err);
  if (r < 0)
    return r;
  /* length and emptiness were checked above, so only a byte can fail here */
  if (!names_node_id_valid(id))
    return ep_error(err, EP_EINVAL, "index: %s '%.63s' has a byte outside [A-Za-z0-9._-]", what,
                    id);
  return 0;
}

static int check_node(const struct index_node *n, ep_err *err) {
  int r;
  if (n == NULL)
    return ep_error(err, EP_EINVAL, "index: missing node");
  if ((r = check_node_id(n->id, "node id", err)) < 0 ||
      (r = index_check_str(n->addr, sizeof n->addr, true, "node address", err)) < 0 ||
      (r = index_check_str(n->arch, sizeof n->arch, true, "node arch", err)) < 0 ||
      (r = index_check_str(n->variant, sizeof n->variant, true, "node variant", err)) < 0 ||
      (r = index_check_str(n->version, sizeof n->version, true, "node version", err)) < 0 ||
      (r = index_check_size(n->free_bytes, "node free bytes", err)) < 0)
    return ep_wrap(err, "node %.63s", n->id);
  return 0;
}

static int row_int(index_db *db, sqlite3_stmt *st, int col, int64_t max, int64_t *out,
                   ep_err *err) {
  sqlite3_int64 v = sqlite3_column_int64(st, col);
  if (v < 0 || v > max)
    return ep_error(err, EP_EINVAL, "index %s: %s %lld out of range", db->path,
                    sqlite3_column_name(st, col), (long long)v);
  *out = v;
  return 0;
}

/* Columns: NODE_COLS in index.c (0-14). */
static int row_node(index_db *db, sqlite3_stmt *st, struct index_node *n, ep_err *err) {
  int64_t port = 0, mbps = 0, online = 0, gw = 0;
  int r;
  memset(n, 0, sizeof *n);
  if ((r = index_row_str(db, st, 0, n->id, sizeof n->id, err)) < 0 ||
      (r = index_row_str(db, st, 1, n->addr, sizeof n->addr, err)) < 0 ||
      (r = row_int(db, st, 2, UINT16_MAX, &port, err)) < 0 ||
      (r = index_row_str(db, st, 3, n->arch, sizeof n->arch, err)) < 0 ||
      (r = index_row_str(db, st, 4, n->variant, sizeof n->variant, err)) < 0 ||
      (r = row_int(db, st, 5, UINT32_MAX, &mbps, err)) < 0 ||
      (r = index_row_size(db, st, 6, &n->free_bytes, err)) < 0 ||
      (r = index_row_str(db, st, 7, n->version, sizeof n->version, err)) < 0 ||
      (r = row_int(db, st, 8, 1, &online, err)) < 0 || (r = row_int(db, st, 9, 1, &gw, err)) < 0 ||
      (r = index_row_str(db, st, 11, n->parent, sizeof n->parent, err)) < 0 ||
      (r = index_row_size(db, st, 12, &n->epoch, err)) < 0 ||
      (r = index_row_size(db, st, 13, &n->blobs, err)) < 0 ||
      (r = index_row_size(db, st, 14, &n->blob_bytes, err)) < 0)
    return r;
  n->peer_port = (uint16_t)port;
  n->link_mbps = (uint32_t)mbps;
  n->online = online != 0;
  n->gateway = gw != 0;
  n->last_seen = sqlite3_column_int64(st, 10);
  return 0;
}

int index_node_put(index_db *db, const struct index_node *n, ep_err *err) {
  int r;
  if ((r = index_check_writable(db, err)) < 0 || (r = check_locality(db, err)) < 0 ||
      (r = check_node(n, err)) < 0)
    return r;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  if ((r = index_stmt_get(db, IST_NODE_PUT, &st, err)) == 0) {
    index_bind_str(st, 1, n->id);
    index_bind_str(st, 2, n->addr);
    sqlite3_bind_int(st, 3, n->peer_port);
    index_bind_str(st, 4, n->arch);
    index_bind_str(st, 5, n->variant);
    sqlite3_bind_int64(st, 6, n->link_mbps);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)n->free_bytes);
    index_bind_str(st, 8, n->version);
    sqlite3_bind_int(st, 9, n->online ? 1 : 0);
    sqlite3_bind_int(st, 10, n->gateway ? 1 : 0);
    sqlite3_bind_int64(st, 11, n->last_seen);
    r = index_step_done(db, st, "recording a node", err);
  }
  index_unlock(db);
  return r;
}

int index_node_set_parent(index_db *db, const char *id, const char *parent, uint64_t epoch,
                          ep_err *err) {
  int r;
  if (parent == NULL)
    parent = "";
  if ((r = index_check_writable(db, err)) < 0 || (r = check_locality(db, err)) < 0 ||
      (r = check_node_id(id, "node id", err)) < 0 ||
      (parent[0] != '\0' && (r = check_node_id(parent, "parent id", err)) < 0) ||
      (r = index_check_size(epoch, "parent epoch", err)) < 0)
    return r;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  if ((r = index_stmt_get(db, IST_NODE_PARENT, &st, err)) == 0) {
    index_bind_str(st, 1, id);
    index_bind_str(st, 2, parent);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)epoch);
    r = index_step_done(db, st, "recording a parent", err);
  }
  index_unlock(db);
  return r;
}

int index_set_gateway(index_db *db, const char *id, ep_err *err) {
  int r;
  if ((r = index_check_writable(db, err)) < 0 || (r = check_locality(db, err)) < 0 ||
      (id != NULL && (r = check_node_id(id, "gateway id", err)) < 0))
    return r;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  if ((r = index_stmt_get(db, IST_NODE_GATEWAY, &st, err)) == 0) {
    if (id != NULL)
      index_bind_str(st, 1, id);
    else
      sqlite3_bind_null(st, 1);
    r = index_step_done(db, st, "recording the gateway", err);
  }
  index_unlock(db);
  return r;
}

int index_node_get(index_db *db, const char *id, struct index_node *out, ep_err *err) {
  int r;
  if ((r = check_locality(db, err)) < 0 || (r = check_node_id(id, "node id", err)) < 0)
    return r;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  if ((r = index_stmt_get(db, IST_NODE_GET, &st, err)) == 0) {
    index_bind_str(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      r = row_node(db, st, out, err);
      if (r == 0)
        r = 1;
    } else if (rc != SQLITE_DONE) {
      r = index_sql_error(db, rc, err, "reading a node");
    }
    index_stmt_done(st);
  }
  index_unlock(db);
  return r;
}

/* Runs a cached statement whose only parameter is a node id. */
static int node_stmt(index_db *db, enum index_stmt id, const char *node, const char *what,
                     ep_err *err) {
  sqlite3_stmt *st = NULL;
  int r = index_stmt_get(db, id, &st, err);
  if (r < 0)
    return r;
  index_bind_str(st, 1, node);
  return index_step_done(db, st, what, err);
}

static int node_delete_body(index_db *db, const void *ud, ep_err *err) {
  int r = node_stmt(db, IST_INV_CLEAR, ud, "deleting a node's inventory", err);
  return r < 0 ? r : node_stmt(db, IST_NODE_DELETE, ud, "deleting a node", err);
}

/* The inventory goes too, explicitly: the foreign key's cascade only acts
 * where foreign_keys is on, and a shell user may not have turned it on. */
int index_node_delete(index_db *db, const char *id, ep_err *err) {
  int r;
  if ((r = index_check_writable(db, err)) < 0 || (r = check_locality(db, err)) < 0 ||
      (r = check_node_id(id, "node id", err)) < 0)
    return r;
  return index_in_tx(db, node_delete_body, id, "deleting a node", err);
}

/* Fills buf with up to INDEX_PAGE_ROWS nodes after last; *n rows read. */
static int node_page(index_db *db, const char *last, struct index_node *buf, size_t *n,
                     ep_err *err) {
  *n = 0;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  int r = index_stmt_get(db, IST_NODE_PAGE, &st, err);
  if (r == 0) {
    index_bind_str(st, 1, last);
    sqlite3_bind_int(st, 2, INDEX_PAGE_ROWS);
    int rc;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
      if ((r = row_node(db, st, &buf[*n], err)) == 0)
        (*n)++;
    if (r == 0 && rc != SQLITE_DONE)
      r = index_sql_error(db, rc, err, "listing nodes");
    index_stmt_done(st);
  }
  index_unlock(db);
  return r;
}

int index_foreach_node(index_db *db, int (*cb)(const struct index_node *n, void *ud), void *ud,
                       ep_err *err) {
  int r = check_locality(db, err);
  if (r < 0)
    return r;
  struct index_node *buf = calloc(INDEX_PAGE_ROWS, sizeof *buf);
  if (buf == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  char last[INDEX_NODE_ID_MAX] = "";
  for (;;) {
    size_t n = 0;
    if ((r = node_page(db, last, buf, &n, err)) < 0)
      break;
    for (size_t i = 0; i < n && r == 0; i++)
      r = cb(&buf[i], ud);
    if (r != 0 || n < INDEX_PAGE_ROWS)
      break;
    memcpy(last, buf[n - 1].id, sizeof last);
  }
  free(buf);
  return r;
}

struct inv_change {
  const char *node;
  bool replace; /* clear the node's inventory first */
  const struct index_inv_entry *add;
  size_t nadd;
  const digest_t *del;
  size_t ndel;
};

static int check_inv_change(index_db *db, const struct inv_change *c, ep_err *err) {
  int r;
  if ((r = index_check_writable(db, err)) < 0 || (r = check_locality(db, err)) < 0 ||
      (r = check_node_id(c->node, "node id", err)) < 0)
    return r;
  if (c->nadd > INDEX_INVENTORY_MAX || c->ndel > INDEX_INVENTORY_MAX ||
      (c->nadd > 0 && c->add == NULL) || (c->ndel > 0 && c->del == NULL))
    return ep_error(err, EP_EINVAL,
                    "index: inventory of node '%s': %zu added, %zu removed "
                    "(at most %d each, with entries)",
                    c->node, c->nadd, c->ndel, INDEX_INVENTORY_MAX);
  for (size_t i = 0; i < c->nadd; i++)
    if ((r = index_check_digest(&c->add[i].digest, err)) < 0 ||
        (r = index_check_size(c->add[i].size, "blob size", err)) < 0)
      return ep_wrap(err, "inventory of node '%s', entry %zu", c->node, i);
  for (size_t i = 0; i < c->ndel; i++)
    if ((r = index_check_digest(&c->del[i], err)) < 0)
      return ep_wrap(err, "inventory of node '%s', removal %zu", c->node, i);
  return 0;
}

/* Removals first, then additions: a digest in both ends up held. */
static int inv_change_body(index_db *db, const void *ud, ep_err *err) {
  const struct inv_change *c = ud;
  int r = node_stmt(db, IST_NODE_ENSURE, c->node, "recording a node", err);
  if (r == 0 && c->replace)
    r = node_stmt(db, IST_INV_CLEAR, c->node, "clearing an inventory", err);
  sqlite3_stmt *st = NULL;
  if (r == 0 && c->ndel > 0 && (r = index_stmt_get(db, IST_INV_DEL, &st, err)) == 0)
    for (size_t i = 0; i < c->ndel && r == 0; i++) {
      index_bind_str(st, 1, c->node);
      index_bind_digest(st, 2, &c->del[i]);
      r = index_step_done(db, st, "removing an inventory entry", err);
    }
  if (r == 0 && c->nadd > 0 && (r = index_stmt_get(db, IST_INV_ADD, &st, err)) == 0)
    for (size_t i = 0; i < c->nadd && r == 0; i++) {
      index_bind_str(st, 1, c->node);
      index_bind_digest(st, 2, &c->add[i].digest);
      sqlite3_bind_int64(st, 3, (sqlite3_int64)c->add[i].size);
      r = index_step_done(db, st, "adding an inventory entry", err);
    }
  return r;
}

int index_inventory_replace(index_db *db, const char *node, const struct index_inv_entry *blobs,
                            size_t n, ep_err *err) {
  struct inv_change c = {.node = node, .replace = true, .add = blobs, .nadd = n};
  int r = check_inv_change(db, &c, err);
  return r < 0 ? r : index_in_tx(db, inv_change_body, &c, "committing an inventory", err);
}

int index_inventory_apply(index_db *db, const char *node, const struct index_inv_entry *add,
                          size_t nadd, const digest_t *del, size_t ndel, ep_err *err) {
  struct inv_change c = {.node = node, .add = add, .nadd = nadd, .del = del, .ndel = ndel};
  int r = check_inv_change(db, &c, err);
  return r < 0 ? r : index_in_tx(db, inv_change_body, &c, "committing an inventory delta", err);
}

struct holder {
  struct index_node node;
  uint64_t size;
};

/* Up to INDEX_PAGE_ROWS holders of d after (last_off, last_id). */
static int where_page(index_db *db, const digest_t *d, int last_off, const char *last_id,
                      struct holder *buf, size_t *n, ep_err *err) {
  *n = 0;
  index_lock(db);
  sqlite3_stmt *st = NULL;
  int r = index_stmt_get(db, IST_WHERE_PAGE, &st, err);
  if (r == 0) {
    index_bind_digest(st, 1, d);
    sqlite3_bind_int(st, 2, last_off);
    index_bind_str(st, 3, last_id);
    sqlite3_bind_int(st, 4, INDEX_PAGE_ROWS);
    int rc;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
      if ((r = row_node(db, st, &buf[*n].node, err)) == 0 &&
          (r = index_row_size(db, st, 15, &buf[*n].size, err)) == 0)
        (*n)++;
    if (r == 0 && rc != SQLITE_DONE)
      r = index_sql_error(db, rc, err, "finding holders of a blob");
    index_stmt_done(st);
  }
  index_unlock(db);
  return r;
}

int index_where(index_db *db, const digest_t *d,
                int (*cb)(const struct index_node *n, uint64_t size, void *ud), void *ud,
                ep_err *err) {
  int r;
  if ((r = check_locality(db, err)) < 0 || (r = index_check_digest(d, err)) < 0)
    return r;
  struct holder *buf = calloc(INDEX_PAGE_ROWS, sizeof *buf);
  if (buf == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  int last_off = -1; /* before (0 = online, 1 = offline) */
  char last_id[INDEX_NODE_ID_MAX] = "";
  for (;;) {
    size_t n = 0;
    if ((r = where_page(db, d, last_off, last_id, buf, &n, err)) < 0)
      break;
    for (size_t i = 0; i < n && r == 0; i++)
      r = cb(&buf[i].node, buf[i].size, ud);
    if (r != 0 || n < INDEX_PAGE_ROWS)
      break;
    last_off = buf[n - 1].node.online ? 0 : 1;
    memcpy(last_id, buf[n - 1].node.id, sizeof last_id);
  }
  free(buf);
  return r;
}
