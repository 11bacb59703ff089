/*
 * lines.h -- NDJSON line reader.
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
 */
#ifndef DP_LINES_H
#define DP_LINES_H

#include <stddef.h>

#define DP_LINES_STRICT 0x1

enum {
	DP_LINES_EOF = 0,
	DP_LINES_OK = 1,
	DP_LINES_BAD = 2,   /* line returned, but it failed the strict checks */
	DP_LINES_ERR = -1,  /* read(2) failed; errno is set (EINTR included) */
	DP_LINES_NOMEM = -2,
};

struct dp_lines;

/* fd is borrowed.  Returns NULL when memory runs out. */
struct dp_lines *dp_lines_new(int fd, unsigned flags);
void dp_lines_free(struct dp_lines *r);

int dp_lines_next(struct dp_lines *r, const char **line, size_t *len);

/*
 * Read nothing more from the descriptor: the complete lines already
 * buffered are still returned, then DP_LINES_EOF.  A graceful stop uses
 * it so that no line taken from a pipe is dropped.
 */
void dp_lines_stop(struct dp_lines *r);

/*
 * Call fn(ctx) about every 100 ms while waiting for input, so a command
 * can do other work while its writer is quiet.  When fn returns non-zero
 * the wait ends: dp_lines_next() returns DP_LINES_ERR with errno EINTR.
 */
void dp_lines_set_idle(struct dp_lines *r, int (*fn)(void *), void *ctx);

/* 1 when the next dp_lines_next() returns without reading (a complete
 * line, or the last one, is buffered). */
int dp_lines_has_line(struct dp_lines *r);

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

#endif
