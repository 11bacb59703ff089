/*
 * core/buf.h -- a growable byte buffer (after git's strbuf).
 *
 * The buffer owns its memory; dp_buf_free() releases it and accepts NULL.
 * data is NULL until the first successful call and NUL-terminated after
 * it, so it can be used as a C string when it holds text.
 *
 * Data: functions that allocate return 0 on success and -1 when memory
 * runs out (the buffer is unchanged).  Their results must be used (the
 * compiler checks): a record, a line or a file built here must never go
 * out with a piece missing.
 *
 * Messages: error text for a person goes through dp_buf_msgf(), which
 * cannot fail, so that an error path needs no error path of its own.
 * When memory runs out the buffer is marked instead, and dp_buf_str()
 * then reads "out of memory".  Print messages with dp_buf_str().
 */
#ifndef DP_BUF_H
#define DP_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define DP_MUST_CHECK __attribute__((warn_unused_result))

struct dp_buf {
	char *data;
	size_t len;
	size_t cap;
	bool lost;          /* a message did not fit in memory */
};

#define DP_BUF_INIT { NULL, 0, 0, false }

int dp_buf_grow(struct dp_buf *b, size_t extra) DP_MUST_CHECK;
int dp_buf_add(struct dp_buf *b, const void *p, size_t n) DP_MUST_CHECK;
int dp_buf_addstr(struct dp_buf *b, const char *s) DP_MUST_CHECK;
int dp_buf_addch(struct dp_buf *b, char c) DP_MUST_CHECK;
int dp_buf_addf(struct dp_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3))) DP_MUST_CHECK;
int dp_buf_vaddf(struct dp_buf *b, const char *fmt, va_list ap) DP_MUST_CHECK;

/* Append a message; never fails (see above). */
void dp_buf_msgf(struct dp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dp_buf_vmsgf(struct dp_buf *b, const char *fmt, va_list ap);

/* The text: "" when empty, "out of memory" when a message was lost. */
const char *dp_buf_str(const struct dp_buf *b);

/* Forget the contents (and a lost message); keeps the memory. */
void dp_buf_reset(struct dp_buf *b);
/* Cut back to len bytes (len <= b->len). */
void dp_buf_truncate(struct dp_buf *b, size_t len);
/* Hand the bytes to the caller (caller frees); the buffer becomes empty. */
char *dp_buf_detach(struct dp_buf *b, size_t *len);
void dp_buf_free(struct dp_buf *b);

#endif
