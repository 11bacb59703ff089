/*
 * json/write.h -- a small JSON writer: objects, arrays and scalars appended
 * to a dp_buf, with the commas and the quoting done for you.
 *
 *   struct dp_jw w;
 *   dp_jw_init(&w, &line);
 *   dp_jw_obj(&w);
 *   dp_jw_kstr(&w, "topic", name);
 *   dp_jw_kint(&w, "partition", 3);
 *   dp_jw_end(&w);
 *   if (dp_jw_finish(&w) < 0) ... out of memory, or unbalanced
 *
 * Errors are sticky: after the first failed append nothing more is
 * written, and dp_jw_finish() reports it once, so building a record needs
 * one check, not one per field.  Strings are escaped as RFC 8259 asks
 * (json/scan.h's dp_json_quote); they must be valid UTF-8.  The writer does
 * not own the buffer.
 */
#ifndef DP_JSONW_H
#define DP_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define DP_JW_MAX_DEPTH 32

struct dp_jw {
	struct dp_buf *out;         /* borrowed */
	int err;                    /* -1 after the first failure */
	int depth;
	bool first[DP_JW_MAX_DEPTH + 1];   /* no member written yet at this depth */
	char close[DP_JW_MAX_DEPTH + 1];   /* what ends the container at this depth */
	bool key;                   /* a key was written; its value comes next */
};

void dp_jw_init(struct dp_jw *w, struct dp_buf *out);

void dp_jw_obj(struct dp_jw *w);            /* { */
void dp_jw_arr(struct dp_jw *w);            /* [ */
void dp_jw_end(struct dp_jw *w);            /* } or ], whichever is open */
void dp_jw_key(struct dp_jw *w, const char *k);

void dp_jw_str(struct dp_jw *w, const char *s);          /* NULL writes null */
void dp_jw_strn(struct dp_jw *w, const char *s, size_t n);
void dp_jw_int(struct dp_jw *w, int64_t v);
void dp_jw_uint(struct dp_jw *w, uint64_t v);
/* Shortest text that reads back as the same double; NaN and infinities: null. */
void dp_jw_double(struct dp_jw *w, double v);
void dp_jw_bool(struct dp_jw *w, bool v);
void dp_jw_null(struct dp_jw *w);
/* Valid JSON text, written as it is. */
void dp_jw_raw(struct dp_jw *w, const char *json, size_t n);

/* key + value in one call. */
void dp_jw_kstr(struct dp_jw *w, const char *k, const char *s);
void dp_jw_kint(struct dp_jw *w, const char *k, int64_t v);
void dp_jw_kuint(struct dp_jw *w, const char *k, uint64_t v);
void dp_jw_kdouble(struct dp_jw *w, const char *k, double v);
void dp_jw_kbool(struct dp_jw *w, const char *k, bool v);
void dp_jw_knull(struct dp_jw *w, const char *k);
/* A count or an offset: v, or null when it is unknown (v < 0). */
void dp_jw_kcount(struct dp_jw *w, const char *k, int64_t v);
void dp_jw_kraw(struct dp_jw *w, const char *k, const char *json, size_t n);

/*
 * Keys quoted once, for records written many times with the same keys
 * (dp-fetch stream writes one per message): dp_jw_pkey() checks and
 * quotes name into k and returns 0, or -1 when name is longer than
 * DP_JW_PKEY_MAX or needs escapes (then use the plain calls).  The
 * dp_jw_p* calls write the member as dp_jw_kraw/knull/kstr do.
 */
#define DP_JW_PKEY_MAX 48

struct dp_jw_pkey {
	size_t len;
	char text[DP_JW_PKEY_MAX + 4];      /* "name": */
};

int dp_jw_pkey(struct dp_jw_pkey *k, const char *name);
void dp_jw_praw(struct dp_jw *w, const struct dp_jw_pkey *k, const char *json, size_t n);
void dp_jw_pnull(struct dp_jw *w, const struct dp_jw_pkey *k);
/* s must be valid UTF-8; one that needs escapes takes the general path. */
void dp_jw_pstr(struct dp_jw *w, const struct dp_jw_pkey *k, const char *s, size_t n);

/* 0 when everything was written and every object and array closed; else -1. */
int dp_jw_finish(const struct dp_jw *w) DP_MUST_CHECK;

/* The shortest round-trip text of v into buf (at least 32 bytes); "null" for NaN. */
const char *dp_jw_format_double(double v, char buf[32]);

#endif
