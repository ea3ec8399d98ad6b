/* The bounded byte buffer (see buf.h). Capacity doubles from EP_BUF_FIRST,
 * clamped to max + 1 (the NUL), so a small body costs one allocation and a
 * large one O(log n); every sum is checked against max before it is made. */
#include "common/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#define EP_BUF_FIRST 256

void ep_buf_init(struct ep_buf *b, size_t max) {
  memset(b, 0, sizeof *b);
  b->max = max < SIZE_MAX ? max : SIZE_MAX - 1;
}

/* Room for want more bytes plus the NUL; want <= max - len already. */
static int grow(struct ep_buf *b, size_t want) {
  size_t need = b->len + want + 1;
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap != 0 ? b->cap : EP_BUF_FIRST;
  while (cap < need)
    cap = cap > (b->max + 1) / 2 ? b->max + 1 : cap * 2;
  if (cap > b->max + 1)
    cap = b->max + 1;
  char *d = realloc(b->data, cap);
  if (d == NULL)
    return -EP_EINTERNAL;
  b->data = d;
  b->cap = cap;
  return 0;
}

int ep_buf_append(struct ep_buf *b, const void *p, size_t n) {
  if (n > b->max - b->len)
    return -EP_ETOOBIG;
  if (n == 0 && b->data != NULL)
    return 0;
  if (grow(b, n) < 0)
    return -EP_EINTERNAL;
  if (n > 0)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int ep_buf_append_trunc(struct ep_buf *b, const void *p, size_t n) {
  size_t room = b->max - b->len;
  if (n > room) {
    b->truncated = true;
    n = room;
  }
  return ep_buf_append(b, p, n);
}

void ep_buf_reset(struct ep_buf *b) {
  b->len = 0;
  b->truncated = false;
  if (b->data != NULL)
    b->data[0] = '\0';
}

char *ep_buf_steal(struct ep_buf *b, size_t *len) {
  char *d = b->data != NULL ? b->data : calloc(1, 1);
  if (len != NULL)
    *len = d != NULL ? b->len : 0;
  size_t max = b->max;
  memset(b, 0, sizeof *b);
  b->max = max;
  return d;
}

void ep_buf_free(struct ep_buf *b) {
  free(b->data);
  size_t max = b->max;
  memset(b, 0, sizeof *b);
  b->max = max;
}
