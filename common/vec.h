/* Growing an array of elements, overflow-checked, on reallocarray: the one
 * way edgepull grows a list whose length comes from outside (blobs of a
 * manifest, nodes of a locality, rows of a query). Every array has a most
 * it may hold; the capacity doubles from EP_VEC_FIRST, clamped to it.
 *
 *   struct node *v = NULL; size_t n = 0, cap = 0;
 *   if ((r = ep_vec_reserve(&v, &cap, n + 1, NODES_MAX)) < 0) return r;
 *   v[n++] = x;
 */
#ifndef EP_COMMON_VEC_H
#define EP_COMMON_VEC_H

#include <stddef.h>

#define EP_VEC_FIRST 16

/* Makes *arr (of *cap elements of size bytes) hold at least need elements,
 * never more than max. 0; -EP_ETOOBIG when need > max or need * size
 * overflows; -EP_EINTERNAL when out of memory. On failure *arr and *cap are
 * unchanged, the old array still valid. */
int ep_vec_reserve_(void **arr, size_t *cap, size_t need, size_t size, size_t max);

/* Type-safe front: arr is a T * lvalue, cap a size_t lvalue. */
#define ep_vec_reserve(arrp, capp, need, max)                                                      \
  ({                                                                                               \
    void *ep_vec_p_ = *(arrp);                                                                     \
    int ep_vec_r_ = ep_vec_reserve_(&ep_vec_p_, (capp), (need), sizeof **(arrp), (max));           \
    *(arrp) = ep_vec_p_;                                                                           \
    ep_vec_r_;                                                                                     \
  })

#endif
