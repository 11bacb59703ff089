/*
 * cc/stream.h -- CryptoCompare's streaming API (the v2 WebSocket streamer):
 * subscriptions, the server's messages, and the normalized records made of
 * them.  The connection itself is cc/ws.h's; this module only reads and
 * writes message text, so it runs as well on a recorded stream.
 *
 * Facts from the API documentation (min-api.cryptocompare.com/
 * documentation/websockets, now developers.coindesk.com/documentation/
 * legacy-websockets), checked against public client code (see
 * tests/fixtures/cryptocompare-stream/README.txt):
 *
 * - The client sends {"action":"SubAdd","subs":[...]} and SubRemove;
 *   a subscription is TYPE~MARKET~FSYM~TSYM, for OHLC candles with a
 *   fourth part, the period (m, H or D): 24~CCCAGG~BTC~USD~m.
 * - Messages are JSON objects with a TYPE, sent as a string ("5") in the
 *   documentation and the recorded messages; a number is read too.
 *   Data: 0 trade, 2 ticker, 5 aggregate index (CCCAGG), 24 OHLC candles.
 *   Control: 20 welcome, 16 subscribe complete (SUB), 3 load complete,
 *   17 and 18 unsubscribe complete, 999 heartbeat, 401 unauthorized,
 *   429 rate limits (RATE_LIMIT_OPENING_SOCKETS_TOO_FAST,
 *   TOO_MANY_SOCKETS_MAX_n_PER_CLIENT, TOO_MANY_SUBSCRIPTIONS_...), and
 *   500 errors with MESSAGE (INVALID_SUB, INVALID_JSON, INVALID_PARAMETER,
 *   SUBSCRIPTION_UNRECOGNIZED, SUBSCRIPTION_ALREADY_ACTIVE,
 *   FORCE_DISCONNECT) and PARAMETER (for INVALID_SUB: the subscription).
 * - Ticker and aggregate updates carry only the fields that changed, with
 *   TYPE, MARKET, FROMSYMBOL, TOSYMBOL and FLAGS (a bitmask of which way
 *   PRICE, BID, ASK and MEDIAN moved).
 * - Trades carry M, FSYM, TSYM, F (1 sell, 2 buy, 4 unknown, 8 reversed),
 *   ID (the exchange's trade id), TS and TSNS, Q, P, TOTAL, RTS, CCSEQ.
 *   The last trades are sent again on every subscription, so after a
 *   reconnect some arrive twice.
 * - OHLC candles: TS (the open time), UNIT, ACTION, OPEN, HIGH, LOW,
 *   CLOSE, VOLUMEFROM, VOLUMETO, TOTALTRADES.
 * - The server sends a heartbeat every 30 seconds (the documentation's
 *   stale-connection advice; its table says every minute): a connection
 *   without one for longer is stale.
 *
 * Records (one line each, written to a dp_out):
 *   {"type":"tick","source":"cryptocompare","channel":"aggregate"|"ticker",
 *    "market","fsym","tsym","ts", then every field of dp_ccs_tick_fields,
 *    "flags"}
 *   {"type":"trade","source":"cryptocompare","market","fsym","tsym","ts",
 *    "id","side","price","quantity","total","flags","recv_ts","ccseq"}
 *   {"type":"ohlcv","source":"cryptocompare","market","fsym","tsym",
 *    "interval","ts","open","high","low","close","volume_from",
 *    "volume_to","trades"}
 * Numbers are printed as the server sent them (a number in a string
 * without its quotes); times as RFC 3339 UTC; what is not known is null.
 *
 * Merging.  Each (TYPE, MARKET, FSYM, TSYM[, UNIT]) has a state of its
 * own; a tick update is merged into it and the whole state printed, so no
 * value ever comes from another pair, and a field never sent is null.
 * A candle update is merged into the state of the candle with the same TS;
 * another TS starts a new candle.  A trade whose ID was among the last
 * DP_CCS_DEDUP of its pair is not printed again.
 *
 * Gaps.  dp_ccs_lost() marks the end of a connection after data came;
 * the next data message ends the gap, which is then reported on stderr
 * with its span (from the last message of the lost connection) and
 * counted.
 *
 * Bad messages (not JSON, not an object, a field of the wrong type) are
 * reported on stderr with the reason and a piece of the text, counted,
 * and skipped: nothing of them is merged or printed.
 */
#ifndef DP_CCSTREAM_H
#define DP_CCSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define DP_CCS_DEFAULT_URL "wss://streamer.cryptocompare.com/v2"
#define DP_CCS_HEARTBEAT_MS 30000
#define DP_CCS_DEDUP 256           /* trade ids remembered per pair */
#define DP_CCS_MAX_SUBS 10000

struct dp_out;
struct dp_ccs;

/* "trade" 0, "ticker" 2, "aggregate" 5, "ohlc" 24; -1 for anything else. */
int dp_ccs_channel(const char *name);

/*
 * The period part of an OHLC subscription for an interval label: "1m" m,
 * "1h" H, "1d" D; NULL for others.
 */
const char *dp_ccs_ohlc_period(const char *label);

struct dp_ccs_opts {
	struct dp_out *out;        /* borrowed: where records go; may come later */
	bool raw;                  /* print the server's messages instead */
	uint64_t max_records;      /* 0: no limit; else DP_CCS_DONE after that many */
};

/* A new engine (caller frees with dp_ccs_free), or NULL (out of memory). */
struct dp_ccs *dp_ccs_new(const struct dp_ccs_opts *o);
void dp_ccs_free(struct dp_ccs *c);
/* Where records go from now on (borrowed), and where they go. */
void dp_ccs_set_output(struct dp_ccs *c, struct dp_out *out);
struct dp_out *dp_ccs_output(const struct dp_ccs *c);

/*
 * Add a subscription, TYPE~MARKET~FSYM~TSYM[~PERIOD]: 0, or -1 with the
 * reason in err (malformed, a type that cannot be normalized without
 * raw, a duplicate, too many).
 */
int dp_ccs_subscribe(struct dp_ccs *c, const char *sub, struct dp_buf *err);
size_t dp_ccs_nsubs(const struct dp_ccs *c);

/* Every subscription of a comma-separated list, as dp_ccs_subscribe(). */
int dp_ccs_subscribe_list(struct dp_ccs *c, const char *list, struct dp_buf *err);

/*
 * The subscriptions for each channel of the comma-separated list channels
 * ("aggregate,trade", see dp_ccs_channel) and each pair of fsyms and
 * tsyms, on market (NULL: CCCAGG; trade and ticker need one); candles of
 * the period (dp_ccs_ohlc_period).  0, or -1 with the reason in err.
 */
int dp_ccs_subscribe_pairs(struct dp_ccs *c, const char *channels, const char *market,
                           char *const *fsyms, size_t nf, char *const *tsyms, size_t nt,
                           const char *period, struct dp_buf *err);

/*
 * A new connection is up: every subscription not refused is asked for
 * again.  Appends the SubAdd message for them to msg; returns 0, or -1
 * when memory runs out.
 */
int dp_ccs_connected(struct dp_ccs *c, struct dp_buf *msg) DP_MUST_CHECK;

enum dp_ccs_event {
	DP_CCS_NOTHING = 0,
	DP_CCS_SUBSCRIBED,     /* every subscription answered, or LOADCOMPLETE */
	DP_CCS_ALL_REFUSED,    /* every subscription refused */
	DP_CCS_UNAUTHORIZED,   /* 401 (dp_ccs_reason) */
	DP_CCS_RATELIMITED,    /* 429: back off, connect again (dp_ccs_reason) */
	DP_CCS_RECONNECT,      /* 500 FORCE_DISCONNECT: connect again */
	DP_CCS_OUTPUT,         /* writing a record failed: see the dp_out */
	DP_CCS_DONE,           /* max_records were printed */
	DP_CCS_NOMEM,
};

/*
 * One message from the server (borrowed).  now_ms is the wall clock (for
 * gaps).  Returns what it means for the connection.
 */
enum dp_ccs_event dp_ccs_message(struct dp_ccs *c, const char *msg, size_t n, int64_t now_ms);

/*
 * Tell obs/obs.h what came since the last call (per burst, from the
 * pump): dp_records_out_total, dp_records_bad_total{reason="malformed"},
 * and per subscription ("5~CCCAGG~BTC~USD") a feed of health's and
 * dp_last_record_timestamp_seconds.  Nothing while the registry is off.
 */
void dp_ccs_observe(struct dp_ccs *c);

/* What the last 401, 429 or FORCE_DISCONNECT said ("" when nothing). */
const char *dp_ccs_reason(const struct dp_ccs *c);

/*
 * The connection ended at now_ms for the reason why (copied): a gap starts
 * at the last message received, unless one is open already.
 */
void dp_ccs_lost(struct dp_ccs *c, int64_t now_ms, const char *why);

/* Report a gap still open at the end (to now_ms) on stderr. */
void dp_ccs_finish(struct dp_ccs *c, int64_t now_ms);

struct dp_ccs_stats {
	uint64_t messages;      /* all messages */
	uint64_t records;       /* records printed (or raw messages with raw) */
	uint64_t duplicates;    /* trades not printed again */
	uint64_t malformed;     /* messages skipped */
	uint64_t gaps;          /* gaps reported */
	int64_t gap_ms;         /* their total length */
	size_t refused;         /* subscriptions the server refused */
	size_t active;          /* subscriptions the server confirmed */
	uint64_t connections;   /* dp_ccs_connected() calls */
};

const struct dp_ccs_stats *dp_ccs_stats(const struct dp_ccs *c);

/* The counters for --progress: "N messages, N duplicate trades, ...". */
const char *dp_ccs_stats_line(const struct dp_ccs *c, char *buf, size_t n);

/* ------------------------------------------------------------------ */
/* One connection's messages (lib/cc/pump.c) */

struct dp_ws;
struct dp_progress;

enum dp_ccs_end {
	DP_CCS_END_SUBSCRIBED,     /* every subscription answered */
	DP_CCS_END_LOST,           /* connect again: the connection ended, went quiet,
	                              or the server asked for it (429, FORCE_DISCONNECT) */
	DP_CCS_END_REFUSED,        /* every subscription refused */
	DP_CCS_END_UNAUTHORIZED,   /* 401 */
	DP_CCS_END_DONE,           /* max_records printed */
	DP_CCS_END_OUTPUT,         /* writing stdout failed: see the dp_out */
	DP_CCS_END_STOPPED,        /* the stop flag (a signal) */
	DP_CCS_END_NOMEM,
};

/*
 * Hand the messages of the open connection ws to c, flushing the records
 * after each burst (and ticking prog, which may be NULL), until something
 * decides what comes next: with until_subscribed the answer to the
 * subscriptions, no message for idle_ms, the end of the connection, a
 * message that ends it, max_records, a failed write, or a signal.  The
 * connection is closed for every end but SUBSCRIBED (cleanly,
 * except after idle_ms).  why gets the reason for LOST and UNAUTHORIZED.
 */
enum dp_ccs_end dp_ccs_pump(struct dp_ccs *c, struct dp_ws *ws, bool until_subscribed,
                            int64_t idle_ms, struct dp_progress *prog, struct dp_buf *why);

#endif
