/*
 * cc/poll.h -- polls of the CryptoCompare REST API: current prices or candle
 * series, request by request, printed as they come, once or again on
 * wall-clock boundaries, with each series' cursor kept in a state file.
 *
 * One poll fetches everything asked for: prices in one request (split up
 * when the API refuses it for a pair that does not exist, cc/price.c),
 * candles series by series in as many pages as cc/series.c plans.  With
 * every_ms 0 there is one poll (for cron); else polls repeat at whole
 * multiples of every_ms since the epoch (plus settle_ms for candles),
 * forever or count times.
 *
 * The caller's state machine drives the poller one step at a time.  Each
 * step does one thing (a request, the printing of its answer, a wait) and
 * returns what follows (enum dp_ccpoll_next), which is the event of the
 * caller's next transition:
 *
 *   dp_ccpoll_begin     start a poll and make its first request
 *   dp_ccpoll_fetch     make the planned request
 *   dp_ccpoll_emit      print the answer, and move the cursor past it
 *   dp_ccpoll_missing   report a pair or market the API does not have
 *   dp_ccpoll_error     after a failed request: retry, the next poll, or give up
 *   dp_ccpoll_backoff   wait before the retry
 *   dp_ccpoll_wait      wait for the next poll
 *
 * Durability.  Candles are written and flushed before their series' cursor
 * moves past them, in memory and, with a state file, on disk (atomically,
 * cc/rest.h), so a run that dies repeats candles and never skips one.
 * Backward collections are printed and committed DP_CC_MAX_LIMIT candles
 * (page_size) at a time.
 *
 * Signals.  Requests and waits end within about a second of *stop turning
 * non-zero; the step then says INTERRUPTED (one poll: the run is
 * incomplete) or STOPPED (repeating polls: their normal end).
 *
 * The API key goes only into the Authorization header (cc/http.h: never
 * logged, wiped).  Diagnostics go to stderr (core/log.h); nothing exits.
 */
#ifndef DP_CCPOLL_H
#define DP_CCPOLL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc/rest.h"
#include "core/buf.h"

struct dp_out;
struct dp_ccpoll;

struct dp_ccpoll_opts {
	bool ohlcv;                     /* candle series; else current prices */
	/* The pairs: every fsym with every tsym (borrowed for the poller's life). */
	char *const *fsyms, *const *tsyms;
	size_t nf, nt;
	const char *market;             /* the API's e; NULL: CCCAGG (borrowed) */
	bool raw;                       /* print the API's own objects */
	/* ohlcv */
	enum dp_cc_interval iv;
	bool has_since, has_until;
	int64_t since_ms, until_ms;     /* ms since the epoch */
	bool include_open;              /* print the open candles too */
	int64_t settle_ms;              /* a candle is closed so long after its end */
	unsigned page_size;             /* candles per request, 1..DP_CC_MAX_LIMIT */
	const char *state_path;         /* the cursors' file; NULL: none (borrowed) */
	/* repetition */
	int64_t every_ms;               /* > 0: poll forever at its multiples; 0: once */
	uint64_t count;                 /* with every_ms: polls in all; 0: no end */
	bool has_now;
	int64_t now_ms;                 /* the clock of the one poll (tests, replays) */
	/* the API */
	const char *base_url;           /* http(s)://, checked (dp_cc_check_url); copied */
	const char *user_agent;         /* copied */
	const char *key;                /* NULL: none; only in the header, never kept */
	int64_t timeout_ms;             /* one request */
	int64_t connect_timeout_ms;
	int64_t retry_base_ms;          /* the first retry's delay, doubled up to 30 s */
	uint64_t max_retries;           /* retries of a request that failed for a passing reason */
	struct dp_out *out;             /* where records go (borrowed) */
	const atomic_int *stop;         /* a signal came (core/sig.h); may be NULL */
};

/* What follows a step: the event of the caller's next transition. */
enum dp_ccpoll_next {
	DP_CCPOLL_RESPONSE,             /* begin, fetch: an answer: emit it */
	DP_CCPOLL_MISSING,              /* begin, fetch: a pair or market the API lacks */
	DP_CCPOLL_TRANSIENT,            /* begin, fetch: failed; trying again may help: error */
	DP_CCPOLL_FAILED,               /* begin, fetch: failed for good: error */
	DP_CCPOLL_MORE,                 /* emit, missing: more requests in this poll: fetch */
	DP_CCPOLL_POLL_DONE,            /* the poll is over, another comes: wait */
	DP_CCPOLL_FINISHED,             /* the last poll is over */
	DP_CCPOLL_FINISHED_PARTIAL,     /* ... and something was missing in it */
	DP_CCPOLL_RETRY,                /* error: back off, then fetch again */
	DP_CCPOLL_POLL_FAILED,          /* error: this poll failed, another comes: wait */
	DP_CCPOLL_GIVE_UP,              /* error: the run fails (dp_ccpoll_status, said) */
	DP_CCPOLL_WAKE,                 /* backoff: time to fetch again */
	DP_CCPOLL_TICK,                 /* wait: the next poll is due: begin */
	DP_CCPOLL_CLOSED,               /* emit: stdout's reader left (a quiet end) */
	DP_CCPOLL_OUTPUT,               /* emit: writing stdout failed (dp_out_error; not said) */
	DP_CCPOLL_FATAL,                /* emit: the state file or memory failed
	                                   (dp_ccpoll_status, said) */
	DP_CCPOLL_INTERRUPTED,          /* a signal before the end of the one poll */
	DP_CCPOLL_STOPPED,              /* a signal while polls repeat: their end */
	DP_CCPOLL_NNEXT
};

/*
 * A poller for o (the struct is copied; see its fields for what is
 * borrowed): takes the state file's lock and reads it, makes the HTTP
 * client and sets the key.  Returns 0 with *out (free with
 * dp_ccpoll_free), or an exit status after saying why on stderr: 75 the
 * state file is in use, 74 its lock cannot be made, 65 it is corrupt, 78
 * the key cannot go into a header, 70 no memory.  *out may be set even
 * then: free it.
 */
int dp_ccpoll_new(const struct dp_ccpoll_opts *o, struct dp_ccpoll **out);
void dp_ccpoll_free(struct dp_ccpoll *p);

/* The steps (see above). */
enum dp_ccpoll_next dp_ccpoll_begin(struct dp_ccpoll *p);
enum dp_ccpoll_next dp_ccpoll_fetch(struct dp_ccpoll *p);
enum dp_ccpoll_next dp_ccpoll_emit(struct dp_ccpoll *p);
enum dp_ccpoll_next dp_ccpoll_missing(struct dp_ccpoll *p);
enum dp_ccpoll_next dp_ccpoll_error(struct dp_ccpoll *p);
enum dp_ccpoll_next dp_ccpoll_backoff(struct dp_ccpoll *p);
enum dp_ccpoll_next dp_ccpoll_wait(struct dp_ccpoll *p);

/* The exit status of GIVE_UP and FATAL. */
int dp_ccpoll_status(const struct dp_ccpoll *p);

/*
 * After a signal in the one poll: false when the poll had come to its end
 * all the same; else true, with what it left undone appended to said
 * ("the fetch was not complete: 2 of 3 series not fetched to their end").
 */
bool dp_ccpoll_unfinished(const struct dp_ccpoll *p, struct dp_buf *said);

#endif
