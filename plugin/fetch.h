/* The fetch engine: one upstream fetch per blob digest per node (single
 * flight), written into the store while any number of readers follow it
 * through its pipe. The fetch runs on its own thread, independent of the
 * request that started it, so a client hanging up never wastes the bytes
 * already on their way: the blob is finished and kept for the next pull. */
#ifndef EP_PLUGIN_FETCH_H
#define EP_PLUGIN_FETCH_H

#include "common/err.h"
#include "plugin/upstream.h"
#include "store/digest.h"
#include "store/index.h"
#include "store/pipe.h"
#include "store/store.h"

typedef struct fetcher fetcher;

struct fetcher_deps {
  store *st;
  index_db *idx;
  upstream *up;
  pipe_table *pipes;
  int max_attempts; /* per fetch, resuming from the last offset; default 4 */
  /* Called on the fetch thread after a blob was committed (may be NULL):
   * the node agent announces it to the locality. */
  void (*on_commit)(void *ud, const digest_t *d, uint64_t size);
  void *on_commit_ud;
};

int fetcher_new(const struct fetcher_deps *deps, fetcher **out, ep_err *err);
/* Stops taking work, cancels readers and in-flight fetches, waits for the
 * fetch threads, then frees. Partials stay on disk for resuming. */
void fetcher_free(fetcher *f);
/* Refuse new fetches and wake every reader with a failure (shutdown). */
void fetcher_stop(fetcher *f);

/* Returns a referenced pipe for blob d: the one in flight, or a new fetch
 * from host/repo started on a fetch thread. The caller reads with pipe_read
 * and drops the reference with pipe_unref. */
int fetcher_open(fetcher *f, const char *host, const char *repo, const digest_t *d, blob_pipe **out,
                 ep_err *err);
/* Why the most recent fetch of d failed (copies the error; 0 if none is
 * recorded). Readers use it to choose the status code of their answer. */
int fetcher_last_error(fetcher *f, const digest_t *d, ep_err *out);
/* Fetches in flight and in total (for stats and tests). */
void fetcher_counts(fetcher *f, unsigned *in_flight, unsigned long *started);

#endif
