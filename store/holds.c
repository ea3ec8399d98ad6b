/* Counts of readers per blob (store/holds.h). */
#include "store/holds.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct hold {
  digest_t d;
  unsigned n;
};

struct hold_table {
  pthread_mutex_t mu;
  struct hold *v;
  size_t n, cap;
};

hold_table *hold_table_new(void) {
  hold_table *t = calloc(1, sizeof *t);
  if (t != NULL)
    pthread_mutex_init(&t->mu, NULL);
  return t;
}

void hold_table_free(hold_table *t) {
  if (t == NULL)
    return;
  pthread_mutex_destroy(&t->mu);
  free(t->v);
  free(t);
}

static struct hold *find(hold_table *t, const digest_t *d) {
  for (size_t i = 0; i < t->n; i++)
    if (memcmp(t->v[i].d.hex, d->hex, DIGEST_HEX_LEN) == 0)
      return &t->v[i];
  return NULL;
}

int hold_take(hold_table *t, const digest_t *d) {
  int r = 0;
  pthread_mutex_lock(&t->mu);
  struct hold *h = find(t, d);
  if (h == NULL && t->n == t->cap) {
    size_t cap = t->cap == 0 ? 16 : 2 * t->cap;
    struct hold *v = realloc(t->v, cap * sizeof *v);
    if (v != NULL) {
      t->v = v;
      t->cap = cap;
    }
  }
  if (h == NULL && t->n < t->cap) {
    h = &t->v[t->n++];
    h->d = *d;
    h->n = 0;
  }
  if (h != NULL)
    h->n++;
  else
    r = -1;
  pthread_mutex_unlock(&t->mu);
  return r;
}

void hold_release(hold_table *t, const digest_t *d) {
  pthread_mutex_lock(&t->mu);
  struct hold *h = find(t, d);
  if (h != NULL && --h->n == 0)
    *h = t->v[--t->n]; /* order does not matter */
  pthread_mutex_unlock(&t->mu);
}

unsigned hold_count(hold_table *t, const digest_t *d) {
  if (t == NULL)
    return 0;
  pthread_mutex_lock(&t->mu);
  struct hold *h = find(t, d);
  unsigned n = h != NULL ? h->n : 0;
  pthread_mutex_unlock(&t->mu);
  return n;
}
