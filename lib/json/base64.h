/*
 * json/base64.h -- RFC 4648 base64 (standard alphabet, padded), used to carry
 * binary keys, values and headers inside NDJSON envelopes.
 */
#ifndef DP_BASE64_H
#define DP_BASE64_H

#include <stddef.h>

#include "core/buf.h"

int dp_base64_encode(struct dp_buf *out, const void *p, size_t n) DP_MUST_CHECK;
/* Returns 0, or -1 when s is not valid padded base64 (out unchanged then). */
int dp_base64_decode(struct dp_buf *out, const char *s, size_t n) DP_MUST_CHECK;

#endif
