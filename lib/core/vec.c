/*
 * core/vec.c -- growing an array by doubling (core/vec.h).
 */
#include <stdint.h>
#include <stdlib.h>

#include "core/vec.h"

void *
dp_grow(void *v, size_t *cap, size_t need, size_t size, size_t first)
{
	size_t n = *cap ? *cap : first ? first : 1;

	if (need <= *cap)
		return v;
	while (n < need) {
		if (n > SIZE_MAX / 2)
			return NULL;
		n *= 2;
	}
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *q = realloc(v, n * size);
	if (q)
		*cap = n;
	return q;
}
