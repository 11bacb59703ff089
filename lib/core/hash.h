/*
 * core/hash.h -- the one hash of dp's in-memory tables: 64-bit FNV-1a.
 *
 * Fowler, Noll and Vo's function (http://www.isthe.com/chongo/tech/comp/fnv/,
 * also draft-eastlake-fnv): offset basis 14695981039346656037, prime
 * 1099511628211.  Fast on the short keys dp hashes (column names, topic
 * names, request ids, JSON member names); not for anything an adversary
 * chooses to collide on a large scale, nor for anything stored.
 */
#ifndef DP_HASH_H
#define DP_HASH_H

#include <stddef.h>
#include <stdint.h>

#define DP_HASH_FNV_BASIS UINT64_C(14695981039346656037)
#define DP_HASH_FNV_PRIME UINT64_C(1099511628211)

/* The hash of the n bytes at p. */
static inline uint64_t
dp_hash(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = DP_HASH_FNV_BASIS;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * DP_HASH_FNV_PRIME;
	return h;
}

#endif
