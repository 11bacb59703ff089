/*
 * core/lines.h -- NDJSON line reader.
 *
 * Reads a file descriptor in large blocks and hands out one line at a
 * time, of any length.  The terminating "\n" and a "\r" before it are
 * removed; a last line without "\n" is still a line.  Empty lines are
 * returned (len 0) so that line numbers stay right; callers skip them.
 *
 * With DP_LINES_STRICT each line is checked for NUL bytes and invalid
 * UTF-8 before it is returned; a bad line is returned with DP_LINES_BAD
 * and dp_lines_error() says why, so the caller can name the line.
 *
 * The line pointer is borrowed: valid until the next call.  It is
 * NUL-terminated (the terminator is not counted in len).
 *
 * Lines are capped (dp_lines_set_max, DP_LINES_MAX_DEFAULT): a longer
 * one is not buffered but skipped to its end and reported as
 * DP_LINES_LONG, so one runaway line (a missing newline in a huge file)
 * costs neither unbounded memory nor the lines after it.
 */
#ifndef DP_LINES_H
#define DP_LINES_H

#include <stddef.h>

#define DP_LINES_STRICT 0x1

/* The cap on a line's length unless set: 64 MiB (and "64M" for users). */
#define DP_LINES_MAX_DEFAULT ((size_t)64 << 20)
#define DP_LINES_MAX_DEFAULT_ARG "64M"

enum {
	DP_LINES_EOF = 0,
	DP_LINES_OK = 1,
	DP_LINES_BAD = 2,   /* line returned, but it failed the strict checks */
	DP_LINES_LONG = 3,  /* a line over the cap was skipped: *line is NULL, *len
	                     * its length (without "\n"); it counts as a line */
	DP_LINES_ERR = -1,  /* read(2) failed; errno is set (EINTR included) */
	DP_LINES_NOMEM = -2,
};

struct dp_lines;

/* fd is borrowed.  Returns NULL when memory runs out. */
struct dp_lines *dp_lines_new(int fd, unsigned flags);
void dp_lines_free(struct dp_lines *r);

int dp_lines_next(struct dp_lines *r, const char **line, size_t *len);

/* Cap lines at max bytes (>= 1, without the "\n"); see DP_LINES_LONG. */
void dp_lines_set_max(struct dp_lines *r, size_t max);

/*
 * Read nothing more from the descriptor: the complete lines already
 * buffered are still returned, then DP_LINES_EOF.  A graceful stop uses
 * it so that no line taken from a pipe is dropped.
 */
void dp_lines_stop(struct dp_lines *r);

/*
 * The lines not handed out yet, for saying what a stop left behind: the
 * ones buffered and, when the descriptor is a regular file, those after
 * its offset (read with pread(2): the offset stays).  A last line
 * without "\n" counts.  -1 when the descriptor is not a regular file (a
 * pipe: what is left cannot be known without taking it) or reading
 * failed.  Reads the rest of the file: for the end of a run only.
 */
long long dp_lines_unread(struct dp_lines *r);

/*
 * Call fn(ctx) about every 100 ms while waiting for input, so a command
 * can do other work while its writer is quiet.  When fn returns non-zero
 * the wait ends: dp_lines_next() returns DP_LINES_ERR with errno EINTR.
 */
void dp_lines_set_idle(struct dp_lines *r, int (*fn)(void *), void *ctx);

/* 1 when the next dp_lines_next() returns without reading (a complete
 * line, or the last one, is buffered). */
int dp_lines_has_line(struct dp_lines *r);

/*
 * 1 when the writer is quiet: no complete line is buffered and the
 * descriptor has nothing to read right now (a regular file never is).
 * Lets a caller that batches send what it holds instead of waiting.
 */
int dp_lines_quiet(struct dp_lines *r);

/*
 * Zero-copy hand-over.  Lines point into the reader's buffer, and the
 * reader reads into it again only once no complete line is left (see
 * dp_lines_has_line).  A caller that stops taking lines there may keep
 * them instead of copying: dp_lines_swap() gives it the buffer holding
 * every line returned so far (*buf, *cap: now owned by the caller) and
 * goes on in the buffer passed in, which may be NULL (the reader owns it
 * from then on; it is grown if too small).  Bytes not yet returned move
 * to the new buffer.  Returns 0, or -1 when memory runs out (nothing
 * changed).
 */
int dp_lines_swap(struct dp_lines *r, char **buf, size_t *cap);

/* Bytes buffered but not returned (after a stop: an incomplete line). */
size_t dp_lines_pending(const struct dp_lines *r);

/* 1-based number of the line last returned. */
unsigned long dp_lines_lineno(const struct dp_lines *r);

/* Why the last line was DP_LINES_BAD (borrowed, static storage). */
const char *dp_lines_error(const struct dp_lines *r);

/* Byte offset within the last line where the problem starts. */
size_t dp_lines_error_offset(const struct dp_lines *r);

/*
 * Check that s[0..n) is valid UTF-8 without NUL bytes.  Returns 0, or -1
 * with *why (static string) and *off set.  Used by the reader; exported
 * for values that come from elsewhere.
 */
int dp_utf8_check(const char *s, size_t n, const char **why, size_t *off);

/*
 * Length (2..4) of the valid UTF-8 sequence that starts with the non-ASCII
 * byte at p, or 0: no overlong forms, no surrogates, nothing past
 * U+10FFFF.  Inline because both the line reader and the JSON scanner
 * call it in their innermost loops.
 */
static inline size_t
dp_utf8_seq(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	size_t need;
	unsigned cp, min;

	if (c >= 0xc2 && c <= 0xdf) {
		need = 1; cp = c & 0x1f; min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2; cp = c & 0x0f; min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3; cp = c & 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if ((size_t)(end - p) <= need)
		return 0;
	for (size_t k = 1; k <= need; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need + 1;
}

#endif
