/*
 * fuzz.h -- what the libFuzzer harnesses in fuzz/ share.
 *
 * A harness checks properties, not just survival: when one does not hold
 * it calls FUZZ_CHECK's abort, which libFuzzer reports as a crash and
 * keeps the input (see HACKING.md, Fuzzing).
 */
#ifndef DP_FUZZ_H
#define DP_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define FUZZ_CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
	abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Silence lib/core/log.h: bad input is the point, not news. */
static inline void
fuzz_quiet(void)
{
	dp_log_init("fuzz");
	dp_log_set_level(DP_LOG_QUIET - 1);
}

/* A NUL-terminated copy of data[0..size) (caller frees). */
static inline char *
fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
