/* Bounds on the partials left in <root>/ingest by failed or abandoned
 * fetches: they are kept for resuming, but not forever and not without
 * limit. */
#ifndef EP_STORE_PRUNE_H
#define EP_STORE_PRUNE_H

#include <stdint.h>

#include "common/err.h"
#include "store/store.h"

/* Deletes every partial not being written (no ingest holds its lock) that
 * was last written more than max_age_s seconds ago, then the oldest ones
 * beyond max_keep. *removed (may be NULL) counts the deletions. */
int store_prune_partials(store *s, int64_t max_age_s, unsigned max_keep, unsigned *removed,
                         ep_err *err);

#endif
