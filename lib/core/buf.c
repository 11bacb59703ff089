/*
 * core/buf.c -- the growable byte buffer of core/buf.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

int
dp_buf_grow(struct dp_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (extra > (size_t)-1 - b->len - 1)
		return -1;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > (size_t)-1 / 2 ? need : cap * 2;
	p = realloc(b->cap ? b->data : NULL, cap);
	if (!p)
		return -1;
	if (!b->cap)
		p[0] = '\0';
	b->data = p;
	b->cap = cap;
	return 0;
}

int
dp_buf_add(struct dp_buf *b, const void *p, size_t n)
{
	if (dp_buf_grow(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int dp_buf_addstr(struct dp_buf *b, const char *s) { return dp_buf_add(b, s, strlen(s)); }
int dp_buf_addch(struct dp_buf *b, char c) { return dp_buf_add(b, &c, 1); }

int
dp_buf_vaddf(struct dp_buf *b, const char *fmt, va_list ap)
{
	va_list aq;
	int n;

	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0 || dp_buf_grow(b, (size_t)n) < 0)
		return -1;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int
dp_buf_addf(struct dp_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = dp_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void
dp_buf_vmsgf(struct dp_buf *b, const char *fmt, va_list ap)
{
	if (dp_buf_vaddf(b, fmt, ap) < 0)
		b->lost = true;
}

void
dp_buf_msgf(struct dp_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dp_buf_vmsgf(b, fmt, ap);
	va_end(ap);
}

const char *
dp_buf_str(const struct dp_buf *b)
{
	if (b->lost)
		return "out of memory";
	return b->len ? b->data : "";
}

void
dp_buf_reset(struct dp_buf *b)
{
	b->len = 0;
	b->lost = false;
	if (b->cap)
		b->data[0] = '\0';
}

void
dp_buf_truncate(struct dp_buf *b, size_t len)
{
	if (len >= b->len)
		return;
	b->len = len;
	b->data[len] = '\0';
}

char *
dp_buf_detach(struct dp_buf *b, size_t *len)
{
	char *p;

	if (!b->cap && dp_buf_grow(b, 0) < 0)
		return NULL;
	p = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	b->lost = false;
	return p;
}

void
dp_buf_free(struct dp_buf *b)
{
	if (!b)
		return;
	if (b->cap)
		free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->lost = false;
}
