/*
 * publish/feed.h -- lines read and prepared in a thread of their own, handed
 * over in batches.
 *
 * When the work on each line (validation, jq) costs about as much as
 * what a command then does with the result (produce it, write it to a
 * database), the two run on two cores: the feed's thread reads lines and
 * calls the command's prepare callback on each, filling batches of the
 * command's records; the command's thread takes the full batches in
 * order, uses them and gives them back.  dp-publish is built on it
 * (prepare: JSON check and jq; use: produce).
 *
 * Order is kept: batches travel in a FIFO, records inside a batch are in
 * line order.  Memory is bounded: DP_FEED_NBATCH batches, each handed
 * over at max_recs records or max_bytes of arena, and lines capped by
 * the line reader (core/lines.h).
 *
 * Zero copy: a record's value may be its line itself (dp_feed_keep).
 * The line reader reads into its buffer again only once no complete
 * line is left, and a batch ends there, so every kept line is still in
 * place when the batch is complete.  The batch then takes the reader's
 * buffer over (and gives it one back) when its lines fill more of it
 * than is left to read; otherwise, as with short lines, it copies its
 * lines out.  Either way no more than the smaller part is copied.
 *
 * Threads: prepare and ready run in the feed's thread; everything else
 * here is called from one other thread, the command's.
 */
#ifndef DP_FEED_H
#define DP_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/lines.h"

#define DP_FEED_NBATCH 4
#define DP_FEED_NONE ((size_t)-1)       /* no arena offset */

struct dp_feed;

/* One batch.  recs and arena are the caller's to fill; the rest is the feed's. */
struct dp_feed_batch {
	void *recs;              /* max_recs records of rec_size bytes */
	size_t n;                /* records filled */
	struct dp_buf arena;     /* bytes the records point at; emptied before each fill */
	bool oom;                /* a dp_feed_add failed since the caller last looked */
	int end;                 /* 0, or the event that ended the input after this batch */
	bool quiet;              /* handed over because the writer paused */

	/* the feed's */
	const char **line;       /* per record: its kept line, or NULL */
	size_t *len;
	char *lines;             /* the lines kept, once the batch is complete */
	size_t lines_cap;
	bool in_lines;
};

struct dp_feed_conf {
	struct dp_lines *in;     /* borrowed; the feed sets its idle callback */
	size_t rec_size;
	size_t max_recs;         /* a batch goes when it holds this many records */
	size_t max_bytes;        /* ... or its arena this many bytes */
	/*
	 * Record i of b (zeroed, b->n is i + 1) from the line just read:
	 * got is DP_LINES_OK, DP_LINES_BAD (line failed the strict checks)
	 * or DP_LINES_LONG (line is NULL, len its length).  Empty lines
	 * never come.  Returns 0, or the event that ends the input after
	 * this record; to drop the record, lower b->n.
	 */
	int (*prepare)(void *arg, struct dp_feed_batch *b, size_t i, const char *line,
	               size_t len, int got);
	/*
	 * Reading failed (status DP_EX_IOERR, why "cannot read stdin: ...")
	 * or memory ran out (DP_EX_SOFTWARE): fill record i with it.
	 * Returns the event that ends the input.
	 */
	int (*failed)(void *arg, struct dp_feed_batch *b, size_t i, int status, const char *why);
	/* The batch is complete and its bytes stay put; may be NULL. */
	void (*ready)(void *arg, struct dp_feed_batch *b);
	int eof;                 /* the event for the end of input */
	int stop;                /* the event for a stop (signal, dp_feed_stop) */
	void *arg;
};

/*
 * Start the feed's thread.  conf is copied.  Returns the feed, or NULL
 * with a message in err.  On SIGINT/SIGTERM (core/sig.h) the feed stops
 * reading but still hands over the complete lines it already took from
 * the descriptor (they are gone from a pipe), then ends with conf.stop;
 * an incomplete last line is named in a warning.
 */
struct dp_feed *dp_feed_start(const struct dp_feed_conf *conf, struct dp_buf *err);

/*
 * The next full batch, waiting up to ms (the wait ends early when the
 * writer goes quiet); NULL when none came.
 */
struct dp_feed_batch *dp_feed_next(struct dp_feed *f, int ms);

/*
 * No full batch is waiting and the thread waits on a quiet writer: the
 * caller may send what it holds now instead of waiting for more.
 */
bool dp_feed_quiet(struct dp_feed *f);

/* Give a batch back to be filled again. */
void dp_feed_release(struct dp_feed *f, struct dp_feed_batch *b);

/*
 * Stop reading: the thread ends at the next line or batch, and whatever
 * it holds is not handed over.  Call it before giving back the batch
 * that ended the input, so that no more is read.
 */
void dp_feed_halt(struct dp_feed *f);

/* Halt, join the thread, free everything.  Accepts NULL. */
void dp_feed_free(struct dp_feed *f);

/*
 * The number of the line the thread's prepare callback works on now; 0
 * when it is in none.  Sampled over time, it lets a command that was told
 * to stop tell a prepare that never ends (a jq program such as
 * last(range(infinite))) from a slow one.
 */
uint64_t dp_feed_busy_line(const struct dp_feed *f);

/*
 * For a thread that never comes back from prepare: halt it and let it
 * be, without joining or freeing.  Everything prepare uses (conf.arg,
 * conf.in, the command's jq programs) must stay allocated too: the
 * process is expected to exit.  Accepts NULL.
 */
void dp_feed_abandon(struct dp_feed *f);

/* Lines read so far (empty ones too); any thread. */
uint64_t dp_feed_lines(const struct dp_feed *f);

/*
 * For prepare: copy n bytes (and a NUL) into the arena.  Returns their
 * offset, or DP_FEED_NONE with b->oom set when memory ran out.
 */
size_t dp_feed_add(struct dp_feed_batch *b, const void *p, size_t n);
/* The bytes at an arena offset (valid after ready); DP_FEED_NONE: "(out of memory)". */
const char *dp_feed_at(const struct dp_feed_batch *b, size_t off);

/* For prepare: record i's value is line[0..len), kept in place, not copied. */
void dp_feed_keep(struct dp_feed_batch *b, size_t i, const char *line, size_t len);

/*
 * Record i's kept line (from ready on), or NULL; when memory for the
 * hand-over ran out it is a copy in the arena, or NULL with b->oom set.
 */
const char *dp_feed_line(const struct dp_feed_batch *b, size_t i);

#endif
