/* The index schema, as an ordered list of migrations.
 *
 * Why here, apart from index.c: the schema is the part of the index that
 * operators, edgepullctl (`edgepullctl schema`) and future engineers read,
 * so it lives on its own with nothing else around it.
 *
 * How: migrations[i] upgrades a database from user_version i to i + 1.
 * index_open() applies each missing step in its own transaction and sets
 * PRAGMA user_version in that same transaction, so a crash leaves the file at
 * a whole version. To change the schema, APPEND a string; never edit one that
 * has shipped (databases in the field already ran it). docs/index.md
 * documents every table and says how to write a migration. */
#include "store/index.h"

#include <stddef.h>

static const char *const migrations[] = {
    /* v1: the node's own store: blobs, manifests and what they reference,
     * tag -> digest resolutions with expiry. */
    "CREATE TABLE blobs (\n"
    "  digest      TEXT PRIMARY KEY NOT NULL\n"
    "              CHECK (length(digest) = 71 AND substr(digest, 1, 7) = 'sha256:'\n"
    "                     AND substr(digest, 8) NOT GLOB '*[^0-9a-f]*'),\n"
    "  size        INTEGER NOT NULL CHECK (size >= 0),\n"
    "  media_type  TEXT NOT NULL DEFAULT '',\n"
    "  state       TEXT NOT NULL CHECK (state IN ('partial', 'complete')),\n"
    "  created     INTEGER NOT NULL,\n"
    "  last_access INTEGER NOT NULL\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX blobs_by_access ON blobs (state, last_access);\n"
    "\n"
    "CREATE TABLE manifests (\n"
    "  digest     TEXT PRIMARY KEY NOT NULL REFERENCES blobs (digest) ON DELETE CASCADE,\n"
    "  media_type TEXT NOT NULL,\n"
    "  size       INTEGER NOT NULL CHECK (size >= 0),\n"
    "  registry   TEXT NOT NULL,\n"
    "  repository TEXT NOT NULL,\n"
    "  created    INTEGER NOT NULL\n"
    ") WITHOUT ROWID;\n"
    "\n"
    "CREATE TABLE manifest_refs (\n"
    "  manifest TEXT NOT NULL REFERENCES manifests (digest) ON DELETE CASCADE,\n"
    "  position INTEGER NOT NULL CHECK (position >= 0),\n"
    "  child    TEXT NOT NULL,\n"
    "  PRIMARY KEY (manifest, position)\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX manifest_refs_by_child ON manifest_refs (child);\n"
    "\n"
    "CREATE TABLE tags (\n"
    "  registry   TEXT NOT NULL,\n"
    "  repository TEXT NOT NULL,\n"
    "  tag        TEXT NOT NULL,\n"
    "  digest     TEXT NOT NULL,\n"
    "  media_type TEXT NOT NULL DEFAULT '',\n"
    "  size       INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),\n"
    "  updated    INTEGER NOT NULL,\n"
    "  expires_at INTEGER NOT NULL,\n"
    "  PRIMARY KEY (registry, repository, tag)\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX tags_by_digest ON tags (digest);\n",

    /* v2: the locality-wide index, filled by the node agent from MQTT:
     * every node as its state messages describe it, its parent as the
     * coordinator assigned it, and the complete blobs it holds. parent is
     * not a foreign key: an assignment may arrive before the parent's state. */
    "CREATE TABLE nodes (\n"
    "  id         TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 63),\n"
    "  addr       TEXT NOT NULL DEFAULT '',\n"
    "  peer_port  INTEGER NOT NULL DEFAULT 0 CHECK (peer_port BETWEEN 0 AND 65535),\n"
    "  arch       TEXT NOT NULL DEFAULT '',\n"
    "  variant    TEXT NOT NULL DEFAULT '',\n"
    "  link_mbps  INTEGER NOT NULL DEFAULT 0 CHECK (link_mbps BETWEEN 0 AND 4294967295),\n"
    "  free_bytes INTEGER NOT NULL DEFAULT 0 CHECK (free_bytes >= 0),\n"
    "  version    TEXT NOT NULL DEFAULT '',\n"
    "  online     INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),\n"
    "  gateway    INTEGER NOT NULL DEFAULT 0 CHECK (gateway IN (0, 1)),\n"
    "  last_seen  INTEGER NOT NULL DEFAULT 0,\n"
    "  parent     TEXT NOT NULL DEFAULT '',\n"
    "  epoch      INTEGER NOT NULL DEFAULT 0 CHECK (epoch >= 0)\n"
    ") WITHOUT ROWID;\n"
    "\n"
    "CREATE TABLE inventory (\n"
    "  node_id TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,\n"
    "  digest  TEXT NOT NULL\n"
    "          CHECK (length(digest) = 71 AND substr(digest, 1, 7) = 'sha256:'\n"
    "                 AND substr(digest, 8) NOT GLOB '*[^0-9a-f]*'),\n"
    "  size    INTEGER NOT NULL CHECK (size >= 0),\n"
    "  PRIMARY KEY (node_id, digest)\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX inventory_by_digest ON inventory (digest);\n",

    /* v3: images pinned by edgepullctl pin: the disk GC never removes a
     * blob reachable from a pinned manifest (through manifest_refs). The
     * digest is the manifest the reference resolved to when pinned. */
    "CREATE TABLE pins (\n"
    "  registry   TEXT NOT NULL,\n"
    "  repository TEXT NOT NULL,\n"
    "  reference  TEXT NOT NULL,\n"
    "  digest     TEXT NOT NULL\n"
    "             CHECK (length(digest) = 71 AND substr(digest, 1, 7) = 'sha256:'\n"
    "                    AND substr(digest, 8) NOT GLOB '*[^0-9a-f]*'),\n"
    "  created    INTEGER NOT NULL,\n"
    "  PRIMARY KEY (registry, repository, reference)\n"
    ") WITHOUT ROWID;\n",
};

int index_latest_schema_version(void) {
  return (int)(sizeof migrations / sizeof migrations[0]);
}

const char *index_migration_sql(int version) {
  if (version < 1 || version > index_latest_schema_version())
    return NULL;
  return migrations[version - 1];
}
