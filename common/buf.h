/* A growable byte buffer in curl's manner: created with the most it may
 * ever hold, so a hostile peer cannot make it grow without end. The data is
 * always NUL-terminated (one byte past len, not counted in max), so a text
 * body can be handed to string functions as it is. A zeroed struct with
 * max 0 holds nothing; use ep_buf_init. With ep_cleanup_buf, initialise
 * at the declaration (`= {0}` or ep_buf_init before any return). */
#ifndef EP_COMMON_BUF_H
#define EP_COMMON_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct ep_buf {
  char *data; /* NULL until the first append */
  size_t len;
  size_t cap;     /* allocated bytes, NUL included */
  size_t max;     /* the most len may reach */
  bool truncated; /* ep_buf_append_trunc dropped bytes */
};

void ep_buf_init(struct ep_buf *b, size_t max);
/* Appends n bytes: 0, -EP_ETOOBIG (len would pass max; nothing appended)
 * or -EP_EINTERNAL (out of memory; nothing appended). */
int ep_buf_append(struct ep_buf *b, const void *p, size_t n);
/* Appends what fits under max and drops the rest (setting truncated):
 * 0 or -EP_EINTERNAL. For bodies kept only to be shown. */
int ep_buf_append_trunc(struct ep_buf *b, const void *p, size_t n);
/* Empties b, keeping its memory and its max. */
void ep_buf_reset(struct ep_buf *b);
/* Hands the data out (NUL-terminated, "" when empty; NULL when out of
 * memory) and leaves b empty; *len (if non-NULL) gets its length. */
char *ep_buf_steal(struct ep_buf *b, size_t *len);
void ep_buf_free(struct ep_buf *b);

#define ep_cleanup_buf __attribute__((cleanup(ep_buf_free)))

#endif
