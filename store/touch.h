/* Last-access times of blobs served from the store, batched: a warm GET
 * records its touch in memory, and a thread of its own writes what is
 * pending in one transaction every period_ms or once TOUCH_BATCH blobs are
 * pending, and at touch_batch_free. So no request thread waits on sqlite
 * (its lock, a WAL checkpoint, the disk) for bookkeeping no client waits
 * for; the index learns each access at most period_ms late.
 *
 * Bounded: at most TOUCH_MAX distinct blobs pending; a touch that finds the
 * set full (the writer far behind) is written at once on the caller's
 * thread, as without batching, so no access is ever lost. The recorded
 * value keeps its meaning: last_access only grows (max), whatever the order
 * in which touches reach the index. */
#ifndef EP_STORE_TOUCH_H
#define EP_STORE_TOUCH_H

#include <stdint.h>

#include "common/err.h"
#include "store/digest.h"
#include "store/index.h"

#define TOUCH_MAX 256        /* distinct blobs pending, at most */
#define TOUCH_BATCH 64       /* pending blobs that wake the writer early */
#define TOUCH_PERIOD_MS 5000 /* default */

typedef struct touch_batch touch_batch;

/* Starts the writer thread for idx (which must outlive the batch).
 * period_ms <= 0: TOUCH_PERIOD_MS. */
int touch_batch_new(index_db *idx, int period_ms, touch_batch **out, ep_err *err);
/* Blob d was served at now (unix seconds). Thread-safe; never blocks on
 * the index unless the pending set is full. */
void touch_batch_add(touch_batch *t, const digest_t *d, int64_t now);
/* Writes what is pending now (tests, and the writer thread). */
int touch_batch_flush(touch_batch *t, ep_err *err);
/* Stops the writer, writes what is pending, frees. NULL is a no-op. */
void touch_batch_free(touch_batch *t);

#endif
