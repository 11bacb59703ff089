/*
 * cc/rest.h -- the CryptoCompare min-api: URLs, response checks, normalized
 * records, and dp-fetch's cursor state file.
 *
 * Responses are checked with json/scan.h first, the JSON every dp path accepts
 * (a body libjq alone would take, such as nan or 01, is malformed), then
 * parsed with libjq's jv API.  Functions that take a jv
 * say whether they consume it ("consumed") or only look at it
 * ("borrowed"); functions that return a jv hand over a reference the
 * caller must jv_free().
 *
 * Records are written as one line of compact JSON (no newline) into a
 * dp_buf.  Numbers are printed in the shortest form that reads back as
 * the same double; integral values print as integers.  Nothing here
 * exits; errors come back with a message appended to a dp_buf.
 */
#ifndef DP_CC_H
#define DP_CC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jv.h>

#include "core/buf.h"

#define DP_CC_DEFAULT_URL "https://min-api.cryptocompare.com"
#define DP_CC_MAX_LIMIT 2000        /* the most points one histo call may ask */
/* The longest wait before a request or a connection is tried again (ms). */
#define DP_CC_RETRY_CAP_MS 30000

/* ------------------------------------------------------------------ */
/* Intervals */

/*
 * Candles of 1 minute, 1 hour and 1 day come from histominute, histohour
 * and histoday; the other sizes from the same endpoints with the API's
 * aggregate parameter, N base candles per candle (the API allows 1..30).
 *
 * Alignment.  With aggregatePredictableTimePeriods=true, the API's
 * default, which dp-fetch sends explicitly, aggregated candles open on
 * whole multiples of their size since the epoch (1970-01-01T00:00:00Z),
 * not relative to the time of the request: the API documentation's own
 * example, aggregate 2 on hours asked between 1 and 2 pm, gives the slots
 * "... 8am, 10am, 12pm" (quoted in joancaron/cryptocompare-api,
 * src/CryptoCompare/Clients/IHistoryClient.cs), and the recorded histoday
 * answer with aggregate=3 in shared/fixtures/cryptocompare/
 * joancaron__History.json has every time a multiple of 3 days since the
 * epoch.  So 4h candles open at 00, 04, ... 20 UTC, 3d candles on days
 * divisible by 3 since the epoch, and 1w candles on Thursdays, 00:00 UTC
 * (the epoch was a Thursday), not on Mondays.
 *
 * Size of an answer.  "If limit * aggregate > 2000 we reduce the limit
 * param on our side" (the API documentation of limit on the histo
 * endpoints): one request holds at most 2000 / aggregate candles
 * (dp_cc_interval_max_limit).
 */
enum dp_cc_interval {
	DP_CC_MINUTE,
	DP_CC_5M,
	DP_CC_15M,
	DP_CC_30M,
	DP_CC_HOUR,
	DP_CC_2H,
	DP_CC_4H,
	DP_CC_12H,
	DP_CC_DAY,
	DP_CC_3D,
	DP_CC_1W,
	DP_CC_NINTERVALS
};

/*
 * "minute" / "1m", "5m", "15m", "30m", "hour" / "1h", "2h", "4h", "12h",
 * "day" / "1d", "3d", "1w".  Returns 0 or -1.
 */
int dp_cc_interval_parse(const char *s, enum dp_cc_interval *iv);
int64_t dp_cc_interval_secs(enum dp_cc_interval iv);       /* the size of a candle */
const char *dp_cc_interval_label(enum dp_cc_interval iv);  /* "1m", "15m": static */
const char *dp_cc_interval_name(enum dp_cc_interval iv);   /* "minute", "15m": static */
/* The endpoint's own interval (DP_CC_MINUTE, _HOUR or _DAY) and the aggregate. */
enum dp_cc_interval dp_cc_interval_base(enum dp_cc_interval iv);
unsigned dp_cc_interval_aggregate(enum dp_cc_interval iv);
/* The most candles one request returns besides the newest: 2000 / aggregate. */
unsigned dp_cc_interval_max_limit(enum dp_cc_interval iv);
/* Every accepted spelling, for messages: "1m, 5m, ... or 1w". */
#define DP_CC_INTERVALS "1m, 5m, 15m, 30m, 1h, 2h, 4h, 12h, 1d, 3d or 1w " \
	"(also minute, hour, day)"

/* ------------------------------------------------------------------ */
/* Command-line values */

/*
 * Split a comma-separated symbol list (BTC,ETH) into *out (caller frees
 * with dp_cc_symbols_free): symbols are non-empty, at most 64 bytes, with
 * no spaces, controls, '/', '&', '?', '#' or '~'.  name ("--fsyms") is for
 * messages.  Returns 0, or -1 with the reason in err.
 */
int dp_cc_symbols(const char *name, const char *arg, char ***out, size_t *n,
                  struct dp_buf *err);
void dp_cc_symbols_free(char **v, size_t n);

/* A market name: 1..64 bytes without spaces, controls or '~'.  0, or -1 with err. */
int dp_cc_check_name(const char *name, const char *s, struct dp_buf *err);

/*
 * A server URL: one of the schemes (a NULL-ended list, "http://"), no
 * spaces, no query or fragment with query false, and never an api_key
 * parameter: the key is secret and goes in a header.  0, or -1 with err.
 */
int dp_cc_check_url(const char *what, const char *url, const char *const *schemes,
                    bool query, struct dp_buf *err);

/* Append the value of the header that carries the key: "Apikey KEY". */
int dp_cc_auth_value(struct dp_buf *v, const char *key) DP_MUST_CHECK;

/* ------------------------------------------------------------------ */
/* URLs (base has no trailing slash; every value is percent-encoded) */

/* base/data/pricemultifull?fsyms=A,B&tsyms=X,Y[&e=market]; market may be NULL. */
int dp_cc_url_price(struct dp_buf *url, const char *base, const char *const *fsyms,
                    size_t nf, const char *const *tsyms, size_t nt, const char *market);

/*
 * base/data/v2/histo<base>?fsym=&tsym=&limit=[&aggregate=N
 * &aggregatePredictableTimePeriods=true][&toTs=][&e=]; to_ts < 0: none.
 * to_ts is the open time of the newest candle wanted.  For an aggregated
 * interval the URL asks up to the last base candle of that candle instead
 * (to_ts + size - base size): an API that aggregates only the base
 * candles up to toTs would otherwise hand out that candle cut short.
 */
int dp_cc_url_histo(struct dp_buf *url, const char *base, enum dp_cc_interval iv,
                    const char *fsym, const char *tsym, const char *market,
                    unsigned limit, int64_t to_ts);

/* ------------------------------------------------------------------ */
/* Responses */

/*
 * What an answer means.  The API's "Type" alone does not say: the same
 * condition has come with different Types over the years ("... market
 * does not exist for this coin pair" with Type 1 in 2018, cryptocompy
 * issue #12, and with Type 2 later, see tests/fixtures/cryptocompare).
 * So errors are told apart by their Message first, by ParamWithError
 * next, and by Type only for rate limits (99, stable since 2018):
 *
 *   Message has "market does not exist for this coin pair"  NOPAIR
 *   Message has "rate limit", or Type 99                    RATELIMIT
 *   Message has "api key", "api_key", "apikey", "auth key"  AUTH
 *   ParamWithError present                                  PARAM
 *   anything else with "Response":"Error"                   APIERR
 *
 * (case ignored).  An HTTP status says more than the body where it
 * speaks (401, 403, 429, 5xx): that is the caller's part.
 */
enum dp_cc_verdict {
	DP_CC_OK = 0,
	DP_CC_RATELIMIT,   /* try again later */
	DP_CC_NOPAIR,      /* the market or pair does not exist: a data problem of that pair */
	DP_CC_AUTH,        /* the API wants a valid key */
	DP_CC_PARAM,       /* a parameter was refused (named in ParamWithError) */
	DP_CC_APIERR,      /* any other "Response":"Error" */
	DP_CC_MALFORMED,   /* not one JSON object */
};

/*
 * Parse a body and classify it.  On DP_CC_OK *root is the parsed object
 * (caller frees with jv_free); otherwise *root is jv_null().  *type gets
 * the API's Type (-1 when absent, or not a whole number from 0 to INT_MAX).  For the error verdicts a message is
 * appended to msg: what it means and the Type, then the API's Message and
 * ParamWithError quoted, for rate limits also the windows whose limit was
 * reached; for MALFORMED the scanner's complaint and the byte.
 * api_message (may be NULL) gets the API's Message as sent, for
 * dp_cc_names_pair().
 */
enum dp_cc_verdict dp_cc_parse(const char *body, size_t len, jv *root, int *type,
                               struct dp_buf *msg, struct dp_buf *api_message);

/*
 * What an answer means for a client: an HTTP status speaks where it can
 * (401 and 403 are about the key, 408, 429 and 5xx pass), the body's
 * verdict otherwise.
 */
enum dp_cc_outcome {
	DP_CC_ANSWER,       /* use the body */
	DP_CC_MISSING,      /* a pair or market that does not exist */
	DP_CC_RETRY,        /* a passing failure: try again */
	DP_CC_FAIL,         /* a lasting one */
};

/*
 * Judge the answer with HTTP status to url whose body got verdict v (msg
 * says what the body said, see dp_cc_parse).  For RETRY and FAIL the exit
 * status goes to *status and the message, naming url, to out; for MISSING
 * out gets msg.
 */
enum dp_cc_outcome dp_cc_judge(long http_status, enum dp_cc_verdict v, const char *url,
                               const char *msg, int *status, struct dp_buf *out);

struct dp_http;

/* One request: dp_cc_get() fills it, dp_cc_reply_free() empties it. */
struct dp_cc_reply {
	jv root;                /* ANSWER: the parsed body (freed with the reply) */
	int status;             /* RETRY, FAIL: the exit status */
	int64_t retry_after_ms; /* the server's Retry-After; -1: none */
	bool cancelled;         /* FAIL: the stop flag ended the request */
	struct dp_buf msg;      /* RETRY, FAIL, MISSING: what to say */
	struct dp_buf api_message;  /* the API's Message of an error, as sent */
};

/* All zero (root is then jv_invalid(), which jv_free() accepts). */
#define DP_CC_REPLY_INIT { .retry_after_ms = -1 }

/*
 * GET url with h, parse the body (dp_cc_parse) and judge it
 * (dp_cc_judge); a request that got no answer is RETRY when trying again
 * may help, else FAIL (69), cancelled when the stop flag ended it.  The
 * reply is emptied first.
 */
enum dp_cc_outcome dp_cc_get(struct dp_http *h, const char *url, struct dp_cc_reply *r);
void dp_cc_reply_free(struct dp_cc_reply *r);

/*
 * 1 when an error Message names the pair as "(FSYM-TSYM)", ignoring case,
 * as the NOPAIR messages do; else 0.  One Message may name several pairs.
 */
int dp_cc_names_pair(const char *api_message, const char *fsym, const char *tsym);

/* Append the compact JSON text of v (borrowed): what --raw prints. */
int dp_cc_dump(struct dp_buf *out, jv v) DP_MUST_CHECK;

/* Append a number as JSON: shortest round-trip form; NaN prints null. */
int dp_cc_number(struct dp_buf *out, double v) DP_MUST_CHECK;

/* ------------------------------------------------------------------ */
/* Current prices (pricemultifull) */

/*
 * Find RAW.{fsym}.{tsym} in root (borrowed): the exact keys first, then
 * ignoring case.  Returns 1 and sets *obj (caller frees) and the keys as
 * the API spells them in fkey/tkey (appended); 0 when the pair is absent;
 * -1 when RAW is missing or the pair is not an object (message in err).
 */
int dp_cc_price_find(jv root, const char *fsym, const char *tsym, jv *obj,
                     struct dp_buf *fkey, struct dp_buf *tkey, struct dp_buf *err);

/*
 * Append the normalized price record for the RAW object raw (borrowed):
 * {"type":"price","source":"cryptocompare","market","fsym","tsym","ts",
 *  "price","open_24h","high_24h","low_24h","volume_24h","volume_24h_to",
 *  "change_24h","change_pct_24h","mktcap"}.
 * Missing and null fields print null; numeric strings are read as
 * numbers.  Returns -1 with a message in err when a field has another
 * type (a malformed response).
 */
int dp_cc_price_record(struct dp_buf *out, jv raw, const char *fsym, const char *tsym,
                       struct dp_buf *err) DP_MUST_CHECK;

/* ------------------------------------------------------------------ */
/* Price requests (lib/cc/price.c) */

/*
 * Which pairs of a poll to ask /data/pricemultifull for, in which
 * requests.  The first request of a poll asks for every pair.  When the
 * API refuses a request because a pair or market does not exist, the
 * pairs its Message names are missing, and the others are asked for again,
 * one request per fsym, or pair by pair for an fsym whose refusal named no
 * pair asked for.  Every poll starts again with one request for all.
 */
enum dp_cc_pair_state { DP_CC_WANTED, DP_CC_DONE, DP_CC_ABSENT };

struct dp_cc_prices {
	char *const *fsyms, *const *tsyms;    /* borrowed */
	size_t nf, nt;
	unsigned char *pairs;   /* enum dp_cc_pair_state, f * nt + t */
	bool *single;           /* per fsym: ask pair by pair */
	const char **req;       /* the tsyms of the request */
	size_t cur;             /* the fsym asked, SIZE_MAX: all */
	size_t cur_t;           /* the one tsym asked, SIZE_MAX: several */
	bool missing;           /* a pair was missing in this poll */
};

/* 0, or -1 when memory runs out.  Free with dp_cc_prices_free. */
int dp_cc_prices_init(struct dp_cc_prices *p, char *const *fsyms, size_t nf,
                      char *const *tsyms, size_t nt);
void dp_cc_prices_free(struct dp_cc_prices *p);
/* A new poll: every pair wanted, all in the first request. */
void dp_cc_prices_start(struct dp_cc_prices *p);
/* After an answer: plan the next request; false when every pair is settled. */
bool dp_cc_prices_next(struct dp_cc_prices *p);
/* The URL of the planned request. */
int dp_cc_prices_url(struct dp_cc_prices *p, struct dp_buf *url, const char *base,
                     const char *market) DP_MUST_CHECK;
/*
 * The answer root (borrowed): append one record (or, raw, the RAW object)
 * per pair of the request found in it, in the order of the lists, each on
 * a line, to batch.  Pairs it lacks are reported on stderr and missing.
 * Returns 0, or -1 with err when the answer is malformed (nothing counts).
 */
int dp_cc_prices_take(struct dp_cc_prices *p, jv root, bool raw, struct dp_buf *batch,
                      struct dp_buf *err);
/*
 * The request was refused because a pair or market does not exist:
 * api_message is the API's Message, msg what to say about each pair.
 */
void dp_cc_prices_refused(struct dp_cc_prices *p, const char *api_message, const char *msg);

/* ------------------------------------------------------------------ */
/* Candles (histominute, histohour, histoday; v2 and v1 layouts) */

enum { DP_CC_OPEN, DP_CC_HIGH, DP_CC_LOW, DP_CC_CLOSE, DP_CC_VFROM, DP_CC_VTO, DP_CC_NV };

struct dp_cc_candle {
	int64_t time;           /* open time, seconds since the epoch, UTC */
	double v[DP_CC_NV];     /* NaN when the API gave null or nothing */
	char *raw;              /* compact JSON of the API's object, or NULL; owned */
};

/*
 * Extract Data.Data[] (v2) or Data[] (v1) from root (borrowed) into a new
 * array (caller frees with dp_cc_candles_free), in the API's order.  With
 * keep_raw each candle also keeps its original object as text.  Returns 0,
 * or -1 with a message in err when the shape is wrong (no array, a
 * non-numeric price) or a "time" is no open time of an iv candle: not an
 * integral number of seconds, after the year 9999, or not on a whole
 * multiple of the interval since the epoch, as the API's candles always
 * are (see Intervals).
 */
int dp_cc_candles(jv root, enum dp_cc_interval iv, bool keep_raw,
                  struct dp_cc_candle **out, size_t *n, struct dp_buf *err);
void dp_cc_candles_free(struct dp_cc_candle *c, size_t n);

/* 1 when every price and volume is 0: a candle from before the coin existed. */
int dp_cc_candle_is_zero(const struct dp_cc_candle *c);

/*
 * Append the normalized candle record:
 * {"type":"ohlcv","source":"cryptocompare","fsym","tsym","interval","ts",
 *  "open","high","low","close","volume_from","volume_to"}.
 */
int dp_cc_ohlcv_record(struct dp_buf *out, const char *fsym, const char *tsym,
                       enum dp_cc_interval iv, const struct dp_cc_candle *c) DP_MUST_CHECK;

/* ------------------------------------------------------------------ */
/* Paging one candle series (lib/cc/series.c) */

/*
 * Which candles of one series (pair and interval) a poll asks for, in
 * which pages, and which of the answers it prints and may record as
 * printed for good.  Pure computation: the caller makes the requests.
 *
 * Closed candles.  A candle is closed when its end is at least settle_ms
 * before the poll's clock: aggregators keep updating a candle for a few
 * seconds after its period ends, and the local clock may run ahead of the
 * API's.  Moreover, when the wanted range reaches the present, the last
 * request asks up to the current period (toTs = the open time of the
 * candle that is open by the local clock), and the newest candle of that
 * answer counts as open whatever the local clock says: it is the one the
 * API itself is still filling.  Open candles are printed only with
 * include_open and are never "closed" (dp_cc_series_closed), so that a
 * cursor never passes a candle whose final values were not printed.
 *
 * Direction.  When the first wanted candle is known (a cursor or a
 * since), pages go forward from it, each printed as it comes.  Otherwise
 * they go backward from the newest until the API has nothing older, hands
 * out all-zero candles (before the coin existed) or, for minutes, 7 days
 * back (all the minute history the API keeps); then everything collected
 * is handed out at once, oldest first.
 */
struct dp_cc_window {
	int64_t now_ms;          /* the clock of the poll */
	int64_t settle_ms;       /* >= 0; at most max_limit - 2 intervals count */
	bool has_cursor;
	int64_t cursor;          /* open time (s) of the last closed candle printed */
	bool has_since, has_until;
	int64_t since_ms;        /* the first candle opening at or after it */
	int64_t until_ms;        /* only candles opening before it */
	bool include_open;
	unsigned page_size;      /* candles per request, 1..DP_CC_MAX_LIMIT; at
	                            most dp_cc_interval_max_limit() are asked */
};

/* Read-only for callers, apart from dp_cc_series_clear(). */
struct dp_cc_series {
	enum dp_cc_interval iv;
	int64_t step;            /* seconds per candle */
	unsigned max_limit;      /* dp_cc_interval_max_limit(iv) */
	unsigned page_size;
	bool include_open;
	bool forward;
	bool live;               /* the range reaches the present */
	int64_t lo;              /* forward: first candle time still wanted */
	int64_t hi;              /* the newest candle time to print */
	int64_t top;             /* toTs of the request that reaches the present */
	int64_t open_from;       /* candles from here on are open */
	int64_t floor_s;         /* backward: oldest time worth asking; -1 none */
	int64_t req_to;          /* the request planned: toTs ... */
	unsigned req_limit;      /* ... and limit */
	bool req_live;           /* ... and whether it reaches the present */
	struct dp_cc_candle *coll;   /* backward: collected, newest first; owned */
	size_t ncoll, capcoll;
	bool no_newer;           /* forward: the API had nothing from lo on */
};

/*
 * Plan series iv for a poll with window w; s is reset first (any earlier
 * plan is cleared).  Returns 1 when requests are needed, 0 when there is
 * nothing new to print yet.
 */
int dp_cc_series_plan(struct dp_cc_series *s, enum dp_cc_interval iv,
                      const struct dp_cc_window *w);

/* The next request: its toTs (seconds) and limit (the API answers limit+1 candles). */
void dp_cc_series_request(struct dp_cc_series *s, int64_t *to_ts, unsigned *limit);

/*
 * Take the answer to the request: k[0..n) (consumed, in any order; the
 * array is freed).  *out gets the candles to print now, ascending, unique
 * and never all-zero (caller frees with dp_cc_candles_free; may be none):
 * a forward page at once, a backward collection when complete.  *done
 * tells whether the series needs no more requests in this poll.  Returns
 * 0, or -1 when memory runs out (nothing is handed out).
 */
int dp_cc_series_take(struct dp_cc_series *s, struct dp_cc_candle *k, size_t n,
                      struct dp_cc_candle **out, size_t *nout, bool *done);

/* 1 when the candle opening at t is closed (may be recorded as printed). */
int dp_cc_series_closed(const struct dp_cc_series *s, int64_t t);

struct dp_out;

/*
 * Write candles k[0..n) (ascending) of the pair fsym/tsym to out, each as
 * a record (or, raw, its own object) on a line, and flush.  Then *cursor
 * moves to the newest closed one printed that is newer than it (and *have
 * turns true).  Returns 1 when the cursor moved, 0 when not, -1 when
 * writing failed (see dp_out_closed, dp_out_error), -2 when memory ran out.
 */
int dp_cc_series_write(const struct dp_cc_series *s, struct dp_out *out, const char *fsym,
                       const char *tsym, bool raw, const struct dp_cc_candle *k, size_t n,
                       bool *have, int64_t *cursor);

/* Free what s holds; s can be planned again.  Accepts a zeroed s. */
void dp_cc_series_clear(struct dp_cc_series *s);

/* ------------------------------------------------------------------ */
/* Cursor state (lib/cc/state.c): the last candle emitted per series */

struct dp_cc_state;

/*
 * Read path into a new state (caller frees with dp_cc_state_free).  A
 * missing file gives an empty state.  Returns 0, or -1 with
 * "PATH:LINE: reason" in err.  Format (one series per line, fields
 * separated by single spaces, '#' starts a comment line):
 *   FSYM TSYM INTERVAL MARKET LAST_EPOCH_SECONDS [LAST_RFC3339]
 * MARKET is "-" when none was given; the RFC 3339 column is informative.
 */
int dp_cc_state_load(const char *path, struct dp_cc_state **st, struct dp_buf *err);
void dp_cc_state_free(struct dp_cc_state *st);

/* 1 and *last when the series is known, else 0.  market may be NULL. */
int dp_cc_state_get(const struct dp_cc_state *st, const char *fsym, const char *tsym,
                    enum dp_cc_interval iv, const char *market, int64_t *last);
/* Set (or add) a series' last candle time.  Returns 0 or -1 (no memory). */
int dp_cc_state_set(struct dp_cc_state *st, const char *fsym, const char *tsym,
                    enum dp_cc_interval iv, const char *market, int64_t last);

/*
 * Write the whole state to path atomically: a temporary file in the same
 * directory, fsync, rename over path, fsync of the directory.  Either the
 * old or the new file is there afterwards, never a mix.  Returns 0 or -1
 * with a message in err.
 */
int dp_cc_state_save(const struct dp_cc_state *st, const char *path, struct dp_buf *err);

/*
 * Lock the state file path (see dp_cc_state_lock) and read it.  Returns 0
 * with *st and *lock_fd (close it to unlock), or an exit status after
 * saying why on stderr: 75 another process holds the lock, 74 the lock
 * file cannot be made, 65 the state file is corrupt.
 */
int dp_cc_state_open(const char *path, struct dp_cc_state **st, int *lock_fd);

/*
 * Take an exclusive lock on "PATH.lock" (created if needed) without
 * waiting.  Returns a file descriptor to keep open while the lock is
 * needed (close it to release), -2 when another process holds the lock,
 * or -1 with a message in err.
 */
int dp_cc_state_lock(const char *path, struct dp_buf *err);

/* "libcurl 7.88.1, libwebsockets 4.1.6": the HTTP and WebSocket
 * libraries' versions, for --version (static). */
const char *dp_cc_libs(void);

#endif
