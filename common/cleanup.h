/* Scope-bound cleanup, as crun does it: a variable declared with one of these
 * is released on every return path, so early returns need no repeated frees.
 * Hand ownership out explicitly: `*out = p; p = NULL;`. */
#ifndef EP_COMMON_CLEANUP_H
#define EP_COMMON_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void ep_freep(void *p) {
  free(*(void **)p);
}
static inline void ep_closep(int *fd) {
  if (*fd >= 0)
    close(*fd);
}
static inline void ep_fclosep(FILE **f) {
  if (*f != NULL)
    fclose(*f);
}

#define ep_cleanup_free __attribute__((cleanup(ep_freep)))
#define ep_cleanup_close __attribute__((cleanup(ep_closep)))
#define ep_cleanup_fclose __attribute__((cleanup(ep_fclosep)))

/* Take the value out of a cleanup variable so it is not released. */
#define ep_steal_ptr(p)                                                                            \
  ({                                                                                               \
    __typeof__(p) ep_tmp_ = (p);                                                                   \
    (p) = NULL;                                                                                    \
    ep_tmp_;                                                                                       \
  })
#define ep_steal_fd(fd)                                                                            \
  ({                                                                                               \
    int ep_tmp_ = (fd);                                                                            \
    (fd) = -1;                                                                                     \
    ep_tmp_;                                                                                       \
  })

#endif
