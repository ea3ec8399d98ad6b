/* The pipe: a blob being written that any number of readers follow.
 *
 * One fetch per digest per node (single flight): pipe_table_join() returns
 * the in-flight pipe for a digest, creating it when there is none and
 * telling the caller it is now the writer. The writer attaches a read fd on
 * the partial file, publishes the total size once known, and publishes the
 * committed length after each write; readers pread() the fd up to that
 * length and sleep on a condition variable until more lands (no polling).
 * The pipe itself holds no data, so memory is bounded by the readers' own
 * buffers whatever the blob size.
 *
 * Threading: all fields are guarded by the pipe's mutex; the table by its
 * own. A pipe is reference counted: the table does not hold a reference, a
 * finished pipe leaves the table at once so the next join starts afresh. */
#ifndef EP_STORE_PIPE_H
#define EP_STORE_PIPE_H

#include <stdbool.h>
#include <stdint.h>

#include "store/digest.h"

typedef struct pipe_table pipe_table;
typedef struct blob_pipe blob_pipe;

enum pipe_status {
  PIPE_MORE = 0,    /* *avail grew beyond what the reader had */
  PIPE_DONE = 1,    /* writer verified: *avail is the full size (maybe not yet durable) */
  PIPE_FAILED = -1, /* writer failed: abort the reader's connection */
  PIPE_TIMEOUT = -2,
};

pipe_table *pipe_table_new(void);
/* All pipes must have been unreferenced. */
void pipe_table_free(pipe_table *t);
/* Returns a referenced pipe for d; *created is true when the caller must
 * write it (and eventually call pipe_finish). NULL on allocation failure. */
blob_pipe *pipe_table_join(pipe_table *t, const digest_t *d, bool *created);
/* A referenced pipe for d if one is in flight, else NULL. */
blob_pipe *pipe_table_find(pipe_table *t, const digest_t *d);
/* Number of pipes in flight. */
unsigned pipe_table_count(pipe_table *t);
/* Wakes every reader of every pipe with PIPE_FAILED (shutdown). */
void pipe_table_cancel_all(pipe_table *t);

void pipe_ref(blob_pipe *p);
void pipe_unref(blob_pipe *p);
/* Scope cleanup of a reference (NULL: nothing), for functions that leave
 * by several exits; hand the pipe on with ep_steal_ptr. */
static inline void pipe_unrefp(blob_pipe **p) {
  pipe_unref(*p);
}
#define ep_cleanup_pipe __attribute__((cleanup(pipe_unrefp)))
const digest_t *pipe_digest(const blob_pipe *p);
/* References held now (the writer's and every reader's): the fetch uses it
 * to notice that every reader has hung up. */
unsigned pipe_refs(blob_pipe *p);

/* Writer side. The fd is owned by the pipe from then on and closed when the
 * last reference goes. */
void pipe_attach_fd(blob_pipe *p, int fd);
void pipe_set_size(blob_pipe *p, uint64_t total);
void pipe_publish(blob_pipe *p, uint64_t avail);
/* ok=true: committed and verified. Removes the pipe from its table. */
void pipe_finish(blob_pipe *p, bool ok);
/* Verified, complete in the partial file (size bytes): readers get the last
 * byte and PIPE_DONE at once; the pipe stays in the table (joins get it)
 * until pipe_finish once the blob is durable. Needs the read fd. */
void pipe_complete(blob_pipe *p, uint64_t size);
/* pipe_finish(p, false) with the reason (an EP_E* code, e.g. EP_ENOSPC),
 * which readers get from pipe_error. */
void pipe_fail(blob_pipe *p, int code);
/* The failed writer's EP_E* code; 0 while running, after success, or when
 * none was given. */
int pipe_error(blob_pipe *p);

/* Reader side. Wait until the size is known (or the pipe ended).
 * Returns PIPE_MORE with *size set, PIPE_DONE, PIPE_FAILED or PIPE_TIMEOUT. */
int pipe_wait_size(blob_pipe *p, uint64_t *size, int timeout_ms);
/* Wait until more than `have` bytes are available or the pipe ended.
 * timeout_ms < 0 waits without limit. */
int pipe_wait(blob_pipe *p, uint64_t have, uint64_t *avail, int timeout_ms);
/* Waits until the pipe ends, without waking for every byte published:
 * PIPE_DONE or PIPE_FAILED, or PIPE_TIMEOUT while it runs. *avail is what
 * is available then, for progress. */
int pipe_wait_end(blob_pipe *p, uint64_t *avail, int timeout_ms);
/* Waits until the writer is done with the store (pipe_finish: after a
 * complete pipe, the blob is durable or its commit failed). 0, or
 * PIPE_TIMEOUT. */
int pipe_wait_finished(blob_pipe *p, int timeout_ms);
/* The read fd (valid once pipe_wait/pipe_wait_size returned MORE or DONE). */
int pipe_fd(const blob_pipe *p);
/* Reads up to len bytes at off, waiting for them to arrive. Returns the byte
 * count (>0), 0 at the end of a complete blob, or a negative pipe_status. */
long pipe_read(blob_pipe *p, uint64_t off, void *buf, size_t len, int timeout_ms);

#endif
