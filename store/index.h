/* The sqlite index of what this node holds (and, later, what the locality
 * holds). WAL mode, so `sqlite3 index.db` and edgepullctl can read it while
 * the daemon writes. The schema is versioned with PRAGMA user_version and
 * upgraded by an ordered list of migrations at open; docs/index.md documents
 * every table. Thread safety: one index handle may be shared by threads; each
 * call takes the handle's mutex. */
#ifndef EP_STORE_INDEX_H
#define EP_STORE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/digest.h"

#define INDEX_MEDIA_TYPE_MAX 256
#define INDEX_NAME_MAX 256

typedef struct index_db index_db;

enum index_blob_state { INDEX_BLOB_PARTIAL = 0, INDEX_BLOB_COMPLETE = 1 };

struct index_blob {
  digest_t digest;
  uint64_t size;
  char media_type[INDEX_MEDIA_TYPE_MAX]; /* "" when unknown */
  int state;                             /* enum index_blob_state */
  int64_t created;                       /* unix seconds */
  int64_t last_access;
};

struct index_tag {
  char registry[INDEX_NAME_MAX];
  char repository[INDEX_NAME_MAX];
  char tag[INDEX_NAME_MAX];
  digest_t digest;
  char media_type[INDEX_MEDIA_TYPE_MAX];
  uint64_t size;
  int64_t updated;    /* when last confirmed upstream */
  int64_t expires_at; /* serve from cache without asking upstream until then */
};

struct index_stats {
  int schema_version;
  uint64_t blobs, blob_bytes; /* complete blobs */
  uint64_t partial_blobs;
  uint64_t manifests, tags;
};

/* Creates the file if needed and runs migrations. */
int index_open(const char *path, index_db **out, ep_err *err);
/* Read-only, for edgepullctl; never migrates (EP_EUNSUPPORTED if the file's
 * schema is newer than this binary knows). */
int index_open_readonly(const char *path, index_db **out, ep_err *err);
void index_close(index_db *db);
int index_schema_version(index_db *db);
int index_latest_schema_version(void);

int index_blob_put(index_db *db, const struct index_blob *b, ep_err *err);
/* 1 found, 0 absent, <0 error */
int index_blob_get(index_db *db, const digest_t *d, struct index_blob *out, ep_err *err);
int index_blob_touch(index_db *db, const digest_t *d, int64_t now, ep_err *err);
/* A blob served at `at` (unix seconds): its last_access becomes at least that. */
struct index_touch {
  digest_t digest;
  int64_t at;
};
/* index_blob_touch for n blobs in one transaction (store/touch.h batches
 * them); a blob not recorded (deleted since) is passed over. */
int index_blobs_touch(index_db *db, const struct index_touch *v, size_t n, ep_err *err);
int index_blob_delete(index_db *db, const digest_t *d, ep_err *err);
int index_foreach_blob(index_db *db, int (*cb)(const struct index_blob *b, void *ud), void *ud,
                       ep_err *err);

/* A manifest held in the store (also recorded as a blob), where it came
 * from, and the digests it references (layers, config, child manifests). */
int index_manifest_put(index_db *db, const digest_t *d, const char *media_type, uint64_t size,
                       const char *registry, const char *repository, const digest_t *refs,
                       size_t nrefs, ep_err *err);
/* 1 found (media type copied, size set), 0 absent. */
int index_manifest_get(index_db *db, const digest_t *d, char media_type[INDEX_MEDIA_TYPE_MAX],
                       uint64_t *size, ep_err *err);

int index_tag_put(index_db *db, const struct index_tag *t, ep_err *err);
/* 1 found, 0 absent. */
int index_tag_get(index_db *db, const char *registry, const char *repository, const char *tag,
                  struct index_tag *out, ep_err *err);
int index_foreach_tag(index_db *db, int (*cb)(const struct index_tag *t, void *ud), void *ud,
                      ep_err *err);

int index_stats(index_db *db, struct index_stats *out, ep_err *err);

/* Added for edgepullctl and GC (source-compatible additions). */

/* SQL that upgrades a database from version - 1 to version (1 ..
 * index_latest_schema_version()), NULL otherwise; static, never freed. */
const char *index_migration_sql(int version);

/* Digests a manifest references, in manifest order (*out malloc'd, caller
 * frees). 1 found, 0 manifest absent (*out NULL, *n 0), <0 error. */
int index_manifest_refs(index_db *db, const digest_t *d, digest_t **out, size_t *n, ep_err *err);

/* Every manifest recorded, in digest order, with where it came from. cb returns non-zero to
 * stop (that value is returned). */
struct index_manifest {
  digest_t digest;
  char media_type[INDEX_MEDIA_TYPE_MAX];
  char registry[INDEX_NAME_MAX];
  char repository[INDEX_NAME_MAX];
};
int index_foreach_manifest(index_db *db, int (*cb)(const struct index_manifest *m, void *ud),
                           void *ud, ep_err *err);

/* What the index knows of the image rooted at a manifest digest, following
 * manifest_refs through child manifests (best effort: only what was seen). */
struct index_image_size {
  uint64_t bytes;      /* sum of the sizes of the reachable blobs the index holds */
  uint64_t complete;   /* reachable digests held complete, root included */
  uint64_t referenced; /* reachable digests known, root included */
};
int index_image_size(index_db *db, const digest_t *root, struct index_image_size *out, ep_err *err);

/* The locality-wide index (schema v2): every node of the locality as its
 * state messages describe it, its parent as the coordinator assigned it, and
 * which complete blobs it holds. Filled by the node agent from MQTT. */
#define INDEX_NODE_ID_MAX 64

struct index_node {
  char id[INDEX_NODE_ID_MAX];
  char addr[64];
  uint16_t peer_port;
  char arch[16];
  char variant[8];
  uint32_t link_mbps;
  uint64_t free_bytes;
  char version[32];
  bool online;
  bool gateway;
  int64_t last_seen;              /* unix seconds of the last state message */
  char parent[INDEX_NODE_ID_MAX]; /* "" = none (root or unassigned) */
  uint64_t epoch;                 /* of the parent assignment */
  uint64_t blobs, blob_bytes;     /* inventory totals (filled on read) */
};

struct index_inv_entry {
  digest_t digest;
  uint64_t size;
};

/* gateway marks the locality's gateway as the node agent learnt it from a
 * trusted source (the coordinator's coord/gateway or --gateway-id), never
 * from the node's own state; index_set_gateway() moves it. */

/* Upserts everything but parent/epoch (kept). */
int index_node_put(index_db *db, const struct index_node *n, ep_err *err);
/* Creates the row if missing. parent NULL or "" = none. */
int index_node_set_parent(index_db *db, const char *id, const char *parent, uint64_t epoch,
                          ep_err *err);
/* Marks id as the only gateway (NULL: none); rows added later get the flag
 * from index_node_put. */
int index_set_gateway(index_db *db, const char *id, ep_err *err);
/* 1 found, 0 absent. */
int index_node_get(index_db *db, const char *id, struct index_node *out, ep_err *err);
int index_node_delete(index_db *db, const char *id, ep_err *err); /* and its inventory */
int index_foreach_node(index_db *db, int (*cb)(const struct index_node *n, void *ud), void *ud,
                       ep_err *err);
/* Replaces a node's whole inventory (a snapshot), in one transaction. */
int index_inventory_replace(index_db *db, const char *node, const struct index_inv_entry *blobs,
                            size_t n, ep_err *err);
/* Applies a delta, in one transaction. */
int index_inventory_apply(index_db *db, const char *node, const struct index_inv_entry *add,
                          size_t nadd, const digest_t *del, size_t ndel, ep_err *err);
/* Nodes holding d complete (online ones first). cb returns non-zero to stop. */
int index_where(index_db *db, const digest_t *d,
                int (*cb)(const struct index_node *n, uint64_t size, void *ud), void *ud,
                ep_err *err);

#endif
