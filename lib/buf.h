/*
 * buf.h -- a growable byte buffer (after git's strbuf).
 *
 * The buffer owns its memory; dp_buf_free() releases it and accepts NULL.
 * data is NULL until the first successful call and NUL-terminated after
 * it, so it can be used as a C string when it holds text.  Functions that allocate return
 * 0 on success and -1 when memory runs out (the buffer is unchanged).
 */
#ifndef DP_BUF_H
#define DP_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct dp_buf {
	char *data;
	size_t len;
	size_t cap;
};

#define DP_BUF_INIT { NULL, 0, 0 }

int dp_buf_grow(struct dp_buf *b, size_t extra);
int dp_buf_add(struct dp_buf *b, const void *p, size_t n);
int dp_buf_addstr(struct dp_buf *b, const char *s);
int dp_buf_addch(struct dp_buf *b, char c);
int dp_buf_addf(struct dp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dp_buf_reset(struct dp_buf *b);
/* Hand the bytes to the caller (caller frees); the buffer becomes empty. */
char *dp_buf_detach(struct dp_buf *b, size_t *len);
void dp_buf_free(struct dp_buf *b);

#endif
