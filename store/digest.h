/* Content digests. edgepull addresses every blob by "sha256:<64 lowercase
 * hex>"; any other algorithm, case or length is rejected with a clear error
 * so that a hostile name can never become a path. Hashing is OpenSSL's EVP
 * sha256, streamed. */
#ifndef EP_STORE_DIGEST_H
#define EP_STORE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define DIGEST_HEX_LEN 64
#define DIGEST_STR_LEN (7 + DIGEST_HEX_LEN) /* "sha256:" + hex */

typedef struct digest {
  char hex[DIGEST_HEX_LEN + 1]; /* NUL-terminated lowercase hex */
} digest_t;

/* Parse "sha256:<hex>". EP_EUNSUPPORTED for another algorithm (sha512, …),
 * EP_EINVAL for anything malformed. */
int digest_parse(const char *s, digest_t *out, ep_err *err);
/* Parse a bare 64-char lowercase hex string. */
int digest_parse_hex(const char *hex, digest_t *out, ep_err *err);
/* Writes "sha256:<hex>" into out (DIGEST_STR_LEN + 1 bytes). */
void digest_format(const digest_t *d, char out[DIGEST_STR_LEN + 1]);
bool digest_equal(const digest_t *a, const digest_t *b);

typedef struct digest_ctx digest_ctx;
digest_ctx *digest_ctx_new(void); /* NULL on allocation failure */
void digest_ctx_reset(digest_ctx *c);
void digest_ctx_update(digest_ctx *c, const void *buf, size_t len);
void digest_ctx_final(digest_ctx *c, digest_t *out); /* ctx may be reset after */
/* The digest of what was hashed so far, leaving c to go on hashing. */
void digest_ctx_peek(const digest_ctx *c, digest_t *out);
void digest_ctx_free(digest_ctx *c);

void digest_buffer(const void *buf, size_t len, digest_t *out);

/* identity.ChainID, containerd's name for a layer stack: diffid without a parent, else
 * sha256("<parent> <diffid>") of the two "sha256:<hex>" strings. Here because the snapshotter
 * (checking an unpacked layer) and the mirror (chain IDs from an image config, which deploy's
 * import uses) must compute it identically. */
void digest_chain_id(const digest_t *parent, const digest_t *diffid, digest_t *out);

#endif
