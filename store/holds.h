/* Blobs being read from the store: a count per digest that a reader takes
 * for as long as it reads, so the disk GC leaves the blob alone. The readers:
 * a client's response (plugin/http), the snapshotter's unpack of a layer
 * (plugin/snapshot/remote.c, from before its fetch), a deploy (its image's
 * blobs from its plan until its import ends). Removing a blob under an open fd would not hurt the
 * reader on Linux (the inode lives until the last close), but the GC would then free nothing while
 * the reader runs and the next request would fetch the blob again: a blob in use is not a
 * candidate.
 *
 * Bounded by the connections that read (hundreds) and the blobs of the
 * running deploys (a few images): a plain array searched linearly under one
 * mutex is enough. Thread-safe. */
#ifndef EP_STORE_HOLDS_H
#define EP_STORE_HOLDS_H

#include "store/digest.h"

typedef struct hold_table hold_table;

hold_table *hold_table_new(void); /* NULL: out of memory */
void hold_table_free(hold_table *t);
/* 0, or -1 out of memory (the caller reads on without a hold). */
int hold_take(hold_table *t, const digest_t *d);
void hold_release(hold_table *t, const digest_t *d);
/* Readers holding d now. NULL t: 0. */
unsigned hold_count(hold_table *t, const digest_t *d);

#endif
