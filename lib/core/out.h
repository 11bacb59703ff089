/*
 * core/out.h -- buffered output for data on stdout.
 *
 * Commands write records with dp_out_write() and flush at points that
 * matter (before committing offsets, when idle).  Every write is checked.
 * When the reader has gone away (EPIPE) the writer remembers it,
 * dp_out_closed() turns true, and the command ends quietly.
 */
#ifndef DP_OUT_H
#define DP_OUT_H

#include <stddef.h>

struct dp_out;

/* fd is borrowed.  Returns NULL when memory runs out. */
struct dp_out *dp_out_new(int fd, size_t bufsize);
/* Flushes, then frees; returns the flush result.  Accepts NULL. */
int dp_out_free(struct dp_out *o);

/* 0 or -1 with errno (EPIPE when the reader is gone). */
int dp_out_write(struct dp_out *o, const void *p, size_t n);
int dp_out_flush(struct dp_out *o);
size_t dp_out_pending(const struct dp_out *o);
/* Bytes that fit before the buffer must be written out. */
size_t dp_out_room(const struct dp_out *o);
int dp_out_closed(const struct dp_out *o);
/* errno of the first failed write, 0 if none. */
int dp_out_error(const struct dp_out *o);

/*
 * Whether the reader has gone away although nothing was written since:
 * for a command that waits for records, so that `dp-tail ... | head -1`
 * ends when head does, not at the next record.  1 (and dp_out_closed()
 * turns true) when fd is a pipe with no reader or a socket whose peer
 * hung up; else 0.  Costs one poll(2) without waiting.
 */
int dp_out_gone(struct dp_out *o);

/*
 * Flush and close stdout's stdio stream too, checking for errors (some
 * only appear at close).  Returns 0, or -1 with errno.  Only the first
 * call closes; later ones return 0.
 */
int dp_out_close_stdout(void);

#endif
