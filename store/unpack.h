/* The layer unpacker: an OCI layer (tar, tar+gzip or tar+zstd, detected
 * from the bytes) is pulled from a read callback and applied into a
 * directory fd, the way containerd's archive.Apply does it for overlay
 * (whiteouts become 0/0 character devices, opaque markers become
 * trusted.overlay.opaque=y), while the sha256 of the uncompressed stream
 * (the diffID) is computed on the way.
 *
 * It reads a blob in flight: unpack_read_pipe follows a store/pipe.h pipe,
 * so the unpack runs while the bytes arrive. It knows nothing of HTTP, MQTT
 * or gRPC.
 *
 * Hostile layers: no entry can create, follow or write anything outside the
 * directory (parents are resolved with openat2 RESOLVE_IN_ROOT, every final
 * component is handled with *at() calls that never follow it). Names with
 * ".." components and absolute names are refused. Memory is bounded (fixed
 * buffers; no entry is held in memory) and entry count, name length, total
 * uncompressed bytes and xattr size are limited, each with an error naming
 * the entry.
 *
 * On any error the directory holds a partial tree: the caller must discard
 * it. One call is single-threaded; calls on different directories may run
 * in parallel. */
#ifndef EP_STORE_UNPACK_H
#define EP_STORE_UNPACK_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/digest.h"
#include "store/pipe.h"

/* Reads up to len bytes into buf: >0 bytes read, 0 at the end of the
 * (complete, verified) input, <0 a negated EP_E* code. */
typedef long (*unpack_read_fn)(void *ud, void *buf, size_t len);

/* Zero fields take the defaults below. */
typedef struct unpack_limits {
  uint64_t max_entries; /* tar entries, default 1,000,000 */
  uint64_t max_bytes;   /* uncompressed stream, and the sum of entry sizes; default 64 GiB */
  size_t max_name;      /* bytes of a path or link target, default 4096 */
  size_t max_xattr;     /* bytes of one xattr value, default 65536 */
} unpack_limits;

#define UNPACK_DEFAULT_MAX_ENTRIES 1000000ULL
#define UNPACK_DEFAULT_MAX_BYTES (64ULL << 30)
#define UNPACK_DEFAULT_MAX_NAME 4096
#define UNPACK_DEFAULT_MAX_XATTR 65536

enum unpack_flags {
  /* Resolve parents with the O_NOFOLLOW walker even when openat2 works
   * (tests; the walker refuses symlinked parents instead of resolving them
   * inside the root). */
  UNPACK_NO_OPENAT2 = 1u << 0,
};

typedef struct unpack_opts {
  unpack_limits limits;
  unsigned flags; /* enum unpack_flags */
  /* The lower layers' directories, topmost first (may be NULL/0). A parent
   * directory the layer does not list is created with the owner, mode,
   * times and xattrs of the same directory in the first lower layer that
   * has it, as containerd's overlay apply does; 0755 root when none has. */
  const int *parent_fds;
  size_t n_parents;
} unpack_opts;

typedef struct unpack_result {
  digest_t diffid;     /* sha256 of the uncompressed tar stream */
  uint64_t entries;    /* tar entries read (whiteouts and skipped ones included) */
  uint64_t bytes;      /* uncompressed stream bytes */
  uint64_t compressed; /* bytes read from the source */
} unpack_result;

/* Unpacks the stream read by rd into dirfd (an O_DIRECTORY fd the caller
 * created for this layer). opts may be NULL. When expect_diffid is non-NULL
 * a different diffID fails with EP_EDIGEST (after the whole stream was
 * applied: the caller discards the directory). res may be NULL.
 * Errors: EP_EINVAL malformed or hostile archive, EP_ETOOBIG over a limit,
 * EP_EDIGEST diffID mismatch, EP_EIO/EP_ENOSPC local I/O, or the source's
 * code. */
int unpack_stream(int dirfd, unpack_read_fn rd, void *ud, const unpack_opts *opts,
                  const digest_t *expect_diffid, unpack_result *res, ep_err *err);

/* Source: a file descriptor (a complete blob, a test file). */
typedef struct unpack_fd_src {
  int fd;
} unpack_fd_src;
long unpack_read_fd(void *ud, void *buf, size_t len);

/* Source: a blob in flight. Reads from off (start at 0), waiting up to
 * timeout_ms for each chunk (<0: no limit). End of input only when the
 * writer committed the verified blob (PIPE_DONE); PIPE_FAILED and timeouts
 * are errors (EP_EIO). The caller holds a reference on the pipe. */
typedef struct unpack_pipe_src {
  blob_pipe *pipe;
  uint64_t off;
  int timeout_ms;
} unpack_pipe_src;
long unpack_read_pipe(void *ud, void *buf, size_t len);

/* Shorthands for the two sources. */
int unpack_fd(int dirfd, int srcfd, const unpack_opts *opts, const digest_t *expect_diffid,
              unpack_result *res, ep_err *err);
int unpack_pipe(int dirfd, blob_pipe *p, int timeout_ms, const unpack_opts *opts,
                const digest_t *expect_diffid, unpack_result *res, ep_err *err);

/* Removes name under dirfd and everything below it without following any
 * symlink: for discarding a layer directory whose contents came from an
 * untrusted archive. Absent is not an error. */
int unpack_remove_tree(int dirfd, const char *name, ep_err *err);

#endif
