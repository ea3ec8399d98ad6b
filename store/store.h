/* Content-addressed blob store.
 *
 *   <root>/blobs/sha256/<hex>     complete, verified, read-only (0444)
 *   <root>/ingest/<hex>.partial   being written; kept across crashes so a
 *                                 fetch can resume from its length
 *
 * Every path is opened relative to the root's directory fd (openat), and
 * names are built only from validated digests, so nothing a client sends can
 * name a file outside the store. An ingest hashes as it writes; commit checks
 * the digest, fsyncs the file, renames it into blobs/ and fsyncs the
 * directory, so a blob in blobs/ is always complete and correct, even after
 * power loss. Thread safety: a store may be used from many threads; one
 * ingest belongs to one thread (the fetcher) at a time. */
#ifndef EP_STORE_STORE_H
#define EP_STORE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "store/digest.h"

typedef struct store store;
typedef struct store_ingest store_ingest;

/* Creates root, blobs/sha256 and ingest if missing (mode 0755). */
int store_open(const char *root, store **out, ep_err *err);
void store_close(store *s);
int store_dirfd(const store *s); /* the root's O_DIRECTORY fd */

/* 1 when the blob is complete in the store (size set if non-NULL),
 * 0 when absent, <0 on error. */
int store_has(store *s, const digest_t *d, uint64_t *size, ep_err *err);
/* Opens a complete blob O_RDONLY|O_CLOEXEC. EP_ENOTFOUND when absent. */
int store_open_blob(store *s, const digest_t *d, int *fd_out, uint64_t *size_out, ep_err *err);
/* Removes a complete blob; absent is not an error. */
int store_remove(store *s, const digest_t *d, ep_err *err);
/* Stores a small in-memory blob (a manifest) after verifying its digest. */
int store_put(store *s, const digest_t *d, const void *buf, size_t len, ep_err *err);
/* Reads a complete blob of at most max bytes into a malloc'd buffer. */
int store_read_all(store *s, const digest_t *d, size_t max, void **buf_out, size_t *len_out,
                   ep_err *err);

/* Starts (or resumes) writing a blob. If ingest/<hex>.partial exists its
 * bytes are re-hashed and writing continues at its end (offset). */
int store_ingest_begin(store *s, const digest_t *d, store_ingest **out, ep_err *err);
uint64_t store_ingest_offset(const store_ingest *in); /* bytes written so far */
/* Appends and hashes. */
int store_ingest_write(store_ingest *in, const void *buf, size_t len, ep_err *err);
/* Drops everything written so far (a source ignored our Range request). */
int store_ingest_reset(store_ingest *in, ep_err *err);
/* A new O_RDONLY fd on the partial file for readers following the write.
 * It stays valid after commit (same inode, renamed). */
int store_ingest_open_reader(store_ingest *in, ep_err *err);
/* Whether the bytes so far hash to the digest (the partial holds the whole
 * blob: commit it, no request needed). Costs a copy of the hash state. */
bool store_ingest_complete(const store_ingest *in);
/* Checks the digest over every byte written, without touching the disk: on
 * a match the blob may be served (from the reader fd) before it is durable,
 * and no more bytes are accepted; on a mismatch the partial is deleted and
 * EP_EDIGEST returned (the ingest stays to be aborted). */
int store_ingest_verify(store_ingest *in, ep_err *err);
/* Verifies the digest (unless store_ingest_verify did), fsyncs, renames into
 * blobs/, fsyncs directories and frees the ingest. On mismatch the partial is deleted and
 * EP_EDIGEST is returned (the ingest is freed in every case). */
int store_ingest_commit(store_ingest *in, ep_err *err);
/* Frees the ingest; keep_partial=false deletes the partial file. */
void store_ingest_abort(store_ingest *in, bool keep_partial);

/* At startup: every ingest/<hex>.partial that holds its whole blob (a crash
 * after the last byte, before or during the commit) is verified and
 * committed; cb (may be NULL) is called for each. Others stay for resuming. */
int store_recover_partials(store *s, int (*cb)(const digest_t *d, uint64_t size, void *ud),
                           void *ud, ep_err *err);

/* Visit complete blobs (used by index rebuild and GC). cb returns non-zero
 * to stop. */
int store_foreach_blob(store *s, int (*cb)(const digest_t *d, uint64_t size, void *ud), void *ud,
                       ep_err *err);

#endif
