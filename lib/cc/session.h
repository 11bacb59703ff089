/*
 * cc/session.h -- a run of CryptoCompare's streamer: connect, subscribe,
 * stream, and on any loss connect again after a backoff, until a signal,
 * max_records, or a failure that another connection would not mend.
 *
 * It ties together the WebSocket client (cc/ws.h), the streaming engine
 * that turns messages into records (cc/stream.h) and one connection's
 * message pump (cc/pump.c).  The caller's state machine drives it one
 * step at a time; each step returns what follows (enum dp_ccsession_next),
 * the event of the caller's next transition:
 *
 *   dp_ccsession_connect     open a connection (the key in its upgrade request)
 *   dp_ccsession_subscribe   ask for the subscriptions, print records until
 *                            they are answered
 *   dp_ccsession_stream      print records until the connection ends
 *   dp_ccsession_reconnect   count the loss (a gap in the data), wait, or give up
 *   dp_ccsession_finish      the summary, after the machine
 *
 * Losses.  A connection that could not be made (no answer, HTTP 408, 429
 * or 5xx), ended, went quiet for idle_ms, or was ended by the server (429,
 * FORCE_DISCONNECT) is LOST: connect again after base, 2 base, ... up to
 * 30 s (with jitter), max_retries times in a row; a connection that got
 * its subscriptions answered starts the count anew.  A refused key (401,
 * 403), a refusal of every subscription, or another refused upgrade is
 * FAILED.
 *
 * The API key goes only into the upgrade request's Authorization header
 * (cc/ws.h: never logged, wiped).  Diagnostics go to stderr
 * (core/log.h); nothing exits.
 */
#ifndef DP_CCSESSION_H
#define DP_CCSESSION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct dp_out;
struct dp_ccsession;

struct dp_ccsession_opts {
	/* The subscriptions: subs (TYPE~MARKET~FSYM~TSYM[~PERIOD], comma-
	 * separated), or every channel of channels with every pair of fsyms
	 * and tsyms on market (cc/stream.h, dp_ccs_subscribe_pairs). */
	const char *subs;
	const char *channels;           /* NULL: aggregate */
	const char *market;             /* NULL: CCCAGG */
	char *const *fsyms, *const *tsyms;
	size_t nf, nt;
	const char *period;             /* ohlc candles: "m", "H" or "D" */
	bool raw;                       /* print the server's messages */
	uint64_t max_records;           /* 0: no limit */
	/* The connection */
	const char *url;                /* ws(s)://, checked (dp_ws_check_url); borrowed */
	const char *user_agent;         /* copied */
	int64_t connect_timeout_ms;
	int64_t idle_ms;                /* connect again after so long without a message */
	int64_t retry_base_ms;          /* the first reconnect's delay */
	uint64_t max_retries;           /* reconnects in a row; UINT64_MAX: forever */
	bool progress;                  /* records, gaps, reconnects on stderr every second */
	const atomic_int *stop;         /* a signal came (core/sig.h); may be NULL */
};

/* What follows a step: the event of the caller's next transition. */
enum dp_ccsession_next {
	DP_CCSESSION_CONNECTED,         /* connect: subscribe */
	DP_CCSESSION_SUBSCRIBED,        /* subscribe: every subscription answered: stream */
	DP_CCSESSION_LOST,              /* connect, subscribe, stream: reconnect */
	DP_CCSESSION_FAILED,            /* the run fails (dp_ccsession_status, said) */
	DP_CCSESSION_FINISHED,          /* max_records printed */
	DP_CCSESSION_CLOSED,            /* stdout's reader left (a quiet end) */
	DP_CCSESSION_OUTPUT,            /* writing stdout failed (dp_out_error; not said) */
	DP_CCSESSION_STOPPED,           /* a signal: the normal end */
	DP_CCSESSION_WAKE,              /* reconnect: time to connect again */
	DP_CCSESSION_GIVE_UP,           /* reconnect: max_retries in a row (status, said) */
	DP_CCSESSION_NNEXT
};

/*
 * A session for o (the struct is copied; see its fields for what is
 * borrowed) with its subscriptions checked, not yet connected.  NULL with
 * the reason in err: a malformed or duplicate subscription, a channel or
 * market that does not fit, too many, no memory.
 */
struct dp_ccsession *dp_ccsession_new(const struct dp_ccsession_opts *o, struct dp_buf *err);
void dp_ccsession_free(struct dp_ccsession *s);

/*
 * Where records go (borrowed), and the key (NULL: none; copied into the
 * header only): 0, or an exit status after saying why (70 the client
 * cannot be made, 78 the key cannot go into a header).
 */
int dp_ccsession_open(struct dp_ccsession *s, struct dp_out *out, const char *key);

/* The steps (see above). */
enum dp_ccsession_next dp_ccsession_connect(struct dp_ccsession *s);
enum dp_ccsession_next dp_ccsession_subscribe(struct dp_ccsession *s);
enum dp_ccsession_next dp_ccsession_stream(struct dp_ccsession *s);
enum dp_ccsession_next dp_ccsession_reconnect(struct dp_ccsession *s);

/* The exit status of FAILED and GIVE_UP. */
int dp_ccsession_status(const struct dp_ccsession *s);

/*
 * After the machine: report a gap still open, the last --progress line
 * and the totals on stderr.  Returns the run's status: status, except
 * that a run that ended well (0 or 1) is 65 when messages had to be
 * skipped (data was lost) and 1 when subscriptions were refused.
 */
int dp_ccsession_finish(struct dp_ccsession *s, int status);

#endif
