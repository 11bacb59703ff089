/*
 * core/vec.h -- growing an array: one function for every array dp
 * appends to, so that each grows by doubling (appends cost O(1)
 * amortized) and no size computation can overflow.
 *
 *   struct item *v = dp_grow(t->items, &t->cap, t->n + 1, sizeof(*v), 16);
 *   if (!v)
 *           return nomem(err);          // t->items is unchanged
 *   t->items = v;
 *   t->items[t->n++] = item;
 */
#ifndef DP_VEC_H
#define DP_VEC_H

#include <stddef.h>

/*
 * Make room for at least need elements of size bytes in the array v
 * (allocated with malloc, or NULL) whose capacity is *cap elements:
 * returns v when it has room, else the array grown (first elements at
 * least, then doubled until need fits) with *cap updated, or NULL when
 * memory runs out or the size would overflow (v and *cap unchanged, as
 * realloc leaves them).
 */
void *dp_grow(void *v, size_t *cap, size_t need, size_t size, size_t first);

#endif
