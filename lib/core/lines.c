#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/lines.h"

#define BLOCK (256 * 1024)

struct dp_lines {
	int fd;
	unsigned flags;
	char *buf;
	size_t cap;
	size_t start;       /* first byte not yet handed out */
	size_t end;         /* end of valid data */
	size_t scanned;     /* bytes after start known to hold no '\n' */
	int eof;
	int stopped;        /* hand out buffered lines only, read no more */
	size_t max;         /* longest line handed out */
	size_t skipped;     /* > 0: inside a line over max, this many bytes of it gone */
	unsigned long lineno;
	const char *why;
	size_t why_off;
	int (*idle)(void *);
	void *idle_ctx;
};

struct dp_lines *
dp_lines_new(int fd, unsigned flags)
{
	struct dp_lines *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->fd = fd;
	r->flags = flags;
	r->max = DP_LINES_MAX_DEFAULT;
	r->cap = BLOCK;
	r->buf = malloc(r->cap + 1);
	if (!r->buf) {
		free(r);
		return NULL;
	}
	return r;
}

void
dp_lines_free(struct dp_lines *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}

unsigned long dp_lines_lineno(const struct dp_lines *r) { return r->lineno; }
void dp_lines_set_max(struct dp_lines *r, size_t max) { r->max = max ? max : 1; }
void dp_lines_stop(struct dp_lines *r) { r->stopped = 1; }

int
dp_lines_has_line(struct dp_lines *r)
{
	size_t avail = r->end - r->start - r->scanned;

	if (memchr(r->buf + r->start + r->scanned, '\n', avail))
		return 1;
	r->scanned += avail;    /* next time, look only at new bytes */
	return r->eof && r->end > r->start;
}

/* The '\n' in p[0..n). */
static long long
newlines(const char *p, size_t n)
{
	long long k = 0;
	const char *e = p + n;

	while (p < e && (p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
		k++;
		p++;
	}
	return k;
}

long long
dp_lines_unread(struct dp_lines *r)
{
	struct stat st;
	long long n;
	bool any = r->skipped > 0;      /* inside a long line: its start is gone */
	char last = '\n', b[64 * 1024];
	off_t off;
	ssize_t k;

	if (fstat(r->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return -1;
	n = newlines(r->buf + r->start, r->end - r->start);
	if (r->end > r->start) {
		any = true;
		last = r->buf[r->end - 1];
	}
	if (!r->eof) {
		if ((off = lseek(r->fd, 0, SEEK_CUR)) < 0)
			return -1;
		while ((k = pread(r->fd, b, sizeof(b), off)) != 0) {
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				return -1;
			n += newlines(b, (size_t)k);
			any = true;
			last = b[k - 1];
			off += k;
		}
	}
	return n + (any && last != '\n');
}

void
dp_lines_set_idle(struct dp_lines *r, int (*fn)(void *), void *ctx)
{
	r->idle = fn;
	r->idle_ctx = ctx;
}
size_t dp_lines_pending(const struct dp_lines *r) { return r->end - r->start; }
const char *dp_lines_error(const struct dp_lines *r) { return r->why ? r->why : ""; }
size_t dp_lines_error_offset(const struct dp_lines *r) { return r->why_off; }

int
dp_utf8_check(const char *str, size_t n, const char **why, size_t *off)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		/* Fast path: eight ASCII bytes, none of them NUL. */
		if (i + 8 <= n) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (!(w & 0x8080808080808080ull) &&
			    !((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull)) {
				i += 8;
				continue;
			}
		}
		unsigned c = s[i];
		if (c == 0) {
			*why = "NUL byte";
			*off = i;
			return -1;
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t seq = dp_utf8_seq(s + i, s + n);
		if (!seq)
			goto bad;
		i += seq;
	}
	return 0;
bad:
	*why = "invalid UTF-8";
	*off = i;
	return -1;
}

static int
fill(struct dp_lines *r)
{
	ssize_t n;

	if (r->start > 0 && (r->end == r->cap || r->start >= r->cap / 2)) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->end == r->cap) {
		size_t ncap = r->cap * 2;
		char *p = realloc(r->buf, ncap + 1);
		if (!p)
			return DP_LINES_NOMEM;
		r->buf = p;
		r->cap = ncap;
	}
	while (r->idle) {
		struct pollfd pfd = { r->fd, POLLIN, 0 };
		int ready = poll(&pfd, 1, 100);
		if (ready > 0)
			break;
		if (ready < 0)
			return DP_LINES_ERR;    /* EINTR: the caller looks at its flags */
		if (r->idle(r->idle_ctx)) {
			errno = EINTR;
			return DP_LINES_ERR;
		}
	}
	n = read(r->fd, r->buf + r->end, r->cap - r->end);
	if (n < 0)
		return DP_LINES_ERR;
	if (n == 0)
		r->eof = 1;
	r->end += (size_t)n;
	return DP_LINES_OK;
}

int
dp_lines_swap(struct dp_lines *r, char **buf, size_t *cap)
{
	size_t tail = r->end - r->start;
	/*
	 * As large as the bytes left, at least a block; a buffer that grew
	 * for one long line is not copied to every other one.
	 */
	size_t need = tail > BLOCK ? tail : BLOCK;
	size_t ncap = *buf && *cap >= need ? *cap : need;
	char *nb = *buf;

	if (!nb || ncap != *cap) {
		nb = realloc(nb, ncap + 1);     /* +1: room for a last line's NUL */
		if (!nb)
			return -1;
	}
	memcpy(nb, r->buf + r->start, tail);
	*buf = r->buf;
	*cap = r->cap;
	r->buf = nb;
	r->cap = ncap;
	r->end = tail;
	r->start = 0;
	return 0;
}

int
dp_lines_quiet(struct dp_lines *r)
{
	struct pollfd pfd = { r->fd, POLLIN, 0 };

	if (dp_lines_has_line(r) || r->eof || r->stopped)
		return 0;
	return poll(&pfd, 1, 0) == 0;
}

int
dp_lines_next(struct dp_lines *r, const char **line, size_t *len)
{
	char *nl;
	size_t n;
	int rc;

	for (;;) {
		char *from = r->buf + r->start + r->scanned;
		nl = memchr(from, '\n', r->end - r->start - r->scanned);
		if (nl)
			break;
		r->scanned = r->end - r->start;
		/*
		 * A last '\r' may be the CR of a CRLF whose LF is in the next
		 * read: the cap counts a line without it, as len does, so it
		 * is neither counted nor forgotten until that read says.
		 */
		size_t cr = r->scanned && r->buf[r->end - 1] == '\r';
		if (r->scanned - cr > r->max) {
			/* Over the cap: forget the bytes, find the line's end. */
			r->skipped += r->scanned - cr;
			r->start = r->end - cr;
			r->scanned = cr;
		}
		if (r->stopped)
			return DP_LINES_EOF;
		if (r->eof) {
			if (r->end == r->start && !r->skipped)
				return DP_LINES_EOF;
			nl = r->buf + r->end;   /* the +1 in the allocation */
			break;
		}
		rc = fill(r);
		if (rc != DP_LINES_OK)
			return rc;
	}
	*line = r->buf + r->start;
	n = (size_t)(nl - *line);
	r->start = (size_t)(nl - r->buf) + (nl < r->buf + r->end ? 1 : 0);
	r->scanned = 0;
	if (n > 0 && (*line)[n - 1] == '\r')
		n--;
	r->lineno++;
	if (r->skipped || n > r->max) {
		*line = NULL;
		*len = n + r->skipped;
		r->skipped = 0;
		r->why = "line too long";
		r->why_off = r->max;
		return DP_LINES_LONG;
	}
	((char *)*line)[n] = '\0';
	*len = n;
	r->why = NULL;
	r->why_off = 0;
	if ((r->flags & DP_LINES_STRICT) &&
	    dp_utf8_check(*line, n, &r->why, &r->why_off) < 0)
		return DP_LINES_BAD;
	return DP_LINES_OK;
}
