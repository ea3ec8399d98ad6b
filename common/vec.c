/* Array growth (see vec.h): reallocarray does the multiplication with its
 * own overflow check; the bound and the doubling are checked here first so
 * that no intermediate count can wrap either. */
#include "common/vec.h"

#include <stdint.h>
#include <stdlib.h>

#include "common/err.h"

int ep_vec_reserve_(void **arr, size_t *cap, size_t need, size_t size, size_t max) {
  if (need <= *cap)
    return 0;
  if (size == 0 || need > max || need > SIZE_MAX / size)
    return -EP_ETOOBIG;
  size_t nc = *cap != 0 ? *cap : EP_VEC_FIRST;
  while (nc < need)
    nc = nc > max / 2 ? max : nc * 2;
  if (nc > max)
    nc = max;
  if (nc > SIZE_MAX / size)
    nc = need; /* the doubling overflows, need itself does not */
  void *p = reallocarray(*arr, nc, size);
  if (p == NULL)
    return -EP_EINTERNAL;
  *arr = p;
  *cap = nc;
  return 0;
}
