/*
 * dp-fetch -- CryptoCompare -> NDJSON on stdout.
 *
 *   dp-fetch price --fsyms BTC,ETH --tsyms USD,EUR
 *   dp-fetch ohlcv --fsym BTC --tsym USD --interval 4h --state FILE
 *   dp-fetch stream --fsyms BTC,ETH --tsyms USD --channel aggregate
 *
 * price and ohlcv poll the REST API (lib/cc/poll.h): one poll fetches
 * everything asked for; without --every there is one poll (for cron), with
 * it polls repeat on wall-clock boundaries.  With --state every printed
 * batch is flushed before the state file moves past it (see the man page,
 * GUARANTEES).  stream keeps a WebSocket to the streamer open and turns its
 * messages into records as they come (lib/cc/session.h): connecting ->
 * subscribing -> streaming, and on any loss reconnecting after a backoff.
 *
 * Each subcommand's machine is the behaviour: every action is one step of
 * the engine, whose answer is the event that follows.
 *
 * The API key never leaves memory except in the Authorization header:
 * it is not accepted on the command line, never logged, and wiped at exit.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc/poll.h"
#include "cc/rest.h"
#include "cc/session.h"
#include "cc/stream.h"
#include "cc/ws.h"
#include "core/buf.h"
#include "core/cli.h"
#include "core/exit.h"
#include "core/frame.h"
#include "core/fsm.h"
#include "core/log.h"
#include "core/out.h"
#include "core/parse.h"
#include "core/secret.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "status/watch.h"

#define PROG "dp-fetch"
#define SETTLE_DEFAULT "5s"         /* for --help; the same as ... */
#define SETTLE_DEFAULT_MS 5000     /* ... this */
#define SETTLE_MAX_MS 3600000   /* keeps the page that reaches the present in one request */
/* The streamer asks to wait at least 5 s before connecting again; the
 * first delay is between half and all of this. */
#define STREAM_RETRY_BASE "10s"
#define STREAM_RETRY_BASE_MS 10000
#define IDLE_DEFAULT "1m30s"       /* three heartbeats (cc/stream.h) */
#define IDLE_DEFAULT_MS (3 * DP_CCS_HEARTBEAT_MS)

/* ------------------------------------------------------------------ */
/* The state machines */

/* The events of both machines: each engine's answers, by their names. */
enum event {
	EV_START, EV_RESPONSE, EV_MISSING, EV_TRANSIENT, EV_FAILED, EV_RETRY, EV_WAKE,
	EV_MORE, EV_POLL_DONE, EV_POLL_FAILED, EV_TICK, EV_FINISHED, EV_FINISHED_PARTIAL,
	EV_GIVE_UP, EV_CLOSED, EV_INTERRUPT, EV_STOP,
	EV_CONNECTED, EV_SUBSCRIBED, EV_LOST, NEVENTS
};

static const char *const event_names[NEVENTS] = {
	"start", "response", "missing", "transient", "failed", "retry", "wake",
	"more", "poll_done", "poll_failed", "tick", "finished", "finished_partial",
	"give_up", "closed", "interrupt", "stop",
	"connected", "subscribed", "lost",
};

/* price and ohlcv: polls of the REST API. */
enum poll_state {
	ST_IDLE, ST_FETCHING, ST_EMITTING, ST_ERROR, ST_BACKOFF, ST_WAITING,
	ST_DONE, ST_PARTIAL, ST_FAILED, ST_INTERRUPTED, NSTATES
};

static const char *const state_names[NSTATES] = {
	"idle", "fetching", "emitting", "error", "backoff", "waiting",
	"done", "partial", "failed", "interrupted",
};

static int act_poll(struct dp_fsm *m, void *ctx);
static int act_fetch(struct dp_fsm *m, void *ctx);
static int act_emit(struct dp_fsm *m, void *ctx);
static int act_missing(struct dp_fsm *m, void *ctx);
static int act_error(struct dp_fsm *m, void *ctx);
static int act_backoff(struct dp_fsm *m, void *ctx);
static int act_wait(struct dp_fsm *m, void *ctx);

/*
 * interrupt: a signal in a one-shot run, which is then incomplete (75,
 * and 130/143 from the frame); stop: a signal with --every, the normal
 * way to end it (0).  poll_done and finished from fetching: a poll that
 * found nothing to ask for.
 */
static const struct dp_fsm_row rows[] = {
	/* state          event                next             action */
	{ ST_IDLE,        EV_START,            ST_FETCHING,     act_poll },
	{ ST_FETCHING,    EV_RESPONSE,         ST_EMITTING,     act_emit },
	{ ST_FETCHING,    EV_MISSING,          ST_EMITTING,     act_missing },
	{ ST_FETCHING,    EV_TRANSIENT,        ST_ERROR,        act_error },
	{ ST_FETCHING,    EV_FAILED,           ST_ERROR,        act_error },
	{ ST_FETCHING,    EV_POLL_DONE,        ST_WAITING,      act_wait },
	{ ST_FETCHING,    EV_FINISHED,         ST_DONE,         NULL },
	{ ST_FETCHING,    EV_INTERRUPT,        ST_INTERRUPTED,  NULL },
	{ ST_FETCHING,    EV_STOP,             ST_DONE,         NULL },
	{ ST_EMITTING,    EV_MORE,             ST_FETCHING,     act_fetch },
	{ ST_EMITTING,    EV_POLL_DONE,        ST_WAITING,      act_wait },
	{ ST_EMITTING,    EV_FINISHED,         ST_DONE,         NULL },
	{ ST_EMITTING,    EV_FINISHED_PARTIAL, ST_PARTIAL,      NULL },
	{ ST_EMITTING,    EV_CLOSED,           ST_DONE,         NULL },
	{ ST_EMITTING,    EV_FAILED,           ST_FAILED,       NULL },
	{ ST_ERROR,       EV_RETRY,            ST_BACKOFF,      act_backoff },
	{ ST_ERROR,       EV_POLL_FAILED,      ST_WAITING,      act_wait },
	{ ST_ERROR,       EV_GIVE_UP,          ST_FAILED,       NULL },
	{ ST_BACKOFF,     EV_WAKE,             ST_FETCHING,     act_fetch },
	{ ST_BACKOFF,     EV_INTERRUPT,        ST_INTERRUPTED,  NULL },
	{ ST_BACKOFF,     EV_STOP,             ST_DONE,         NULL },
	{ ST_WAITING,     EV_TICK,             ST_FETCHING,     act_poll },
	{ ST_WAITING,     EV_STOP,             ST_DONE,         NULL },
};

static const struct dp_fsm_final finals[] = {
	{ ST_DONE, DP_EX_OK },
	{ ST_PARTIAL, DP_EX_PARTIAL },
	{ ST_FAILED, DP_FSM_REASON },
	{ ST_INTERRUPTED, DP_EX_TEMPFAIL },
};

static const struct dp_fsm_def machine = {
	PROG, state_names, NSTATES, event_names, NEVENTS,
	rows, DP_FSM_COUNT(rows), ST_IDLE, finals, DP_FSM_COUNT(finals),
};

/* stream: one connection to the streamer after another. */
enum stream_state {
	SS_IDLE, SS_CONNECTING, SS_SUBSCRIBING, SS_STREAMING, SS_RECONNECTING,
	SS_DONE, SS_FAILED, SS_NSTATES
};

static const char *const stream_state_names[SS_NSTATES] = {
	"idle", "connecting", "subscribing", "streaming", "reconnecting", "done", "failed",
};

static int act_connect(struct dp_fsm *m, void *ctx);
static int act_subscribe(struct dp_fsm *m, void *ctx);
static int act_stream(struct dp_fsm *m, void *ctx);
static int act_reconnect(struct dp_fsm *m, void *ctx);

/*
 * lost: a connection ended or could not be made; failed: nothing to
 * retry (the key refused, every subscription refused); stop: a signal,
 * the normal end.
 */
static const struct dp_fsm_row stream_rows[] = {
	/* state           event           next             action */
	{ SS_IDLE,         EV_START,       SS_CONNECTING,   act_connect },
	{ SS_CONNECTING,   EV_CONNECTED,   SS_SUBSCRIBING,  act_subscribe },
	{ SS_CONNECTING,   EV_LOST,        SS_RECONNECTING, act_reconnect },
	{ SS_CONNECTING,   EV_FAILED,      SS_FAILED,       NULL },
	{ SS_CONNECTING,   EV_STOP,        SS_DONE,         NULL },
	{ SS_SUBSCRIBING,  EV_SUBSCRIBED,  SS_STREAMING,    act_stream },
	{ SS_SUBSCRIBING,  EV_LOST,        SS_RECONNECTING, act_reconnect },
	{ SS_SUBSCRIBING,  EV_FAILED,      SS_FAILED,       NULL },
	{ SS_SUBSCRIBING,  EV_FINISHED,    SS_DONE,         NULL },
	{ SS_SUBSCRIBING,  EV_CLOSED,      SS_DONE,         NULL },
	{ SS_SUBSCRIBING,  EV_STOP,        SS_DONE,         NULL },
	{ SS_STREAMING,    EV_LOST,        SS_RECONNECTING, act_reconnect },
	{ SS_STREAMING,    EV_FAILED,      SS_FAILED,       NULL },
	{ SS_STREAMING,    EV_FINISHED,    SS_DONE,         NULL },
	{ SS_STREAMING,    EV_CLOSED,      SS_DONE,         NULL },
	{ SS_STREAMING,    EV_STOP,        SS_DONE,         NULL },
	{ SS_RECONNECTING, EV_WAKE,        SS_CONNECTING,   act_connect },
	{ SS_RECONNECTING, EV_GIVE_UP,     SS_FAILED,       NULL },
	{ SS_RECONNECTING, EV_STOP,        SS_DONE,         NULL },
};

static const struct dp_fsm_final stream_finals[] = {
	{ SS_DONE, DP_EX_OK },
	{ SS_FAILED, DP_FSM_REASON },
};

static const struct dp_fsm_def stream_machine = {
	PROG " stream", stream_state_names, SS_NSTATES, event_names, NEVENTS,
	stream_rows, DP_FSM_COUNT(stream_rows), SS_IDLE, stream_finals,
	DP_FSM_COUNT(stream_finals),
};

/* The engines' answers, as the events they are. */
static const int poll_events[DP_CCPOLL_NNEXT] = {
	[DP_CCPOLL_RESPONSE] = EV_RESPONSE, [DP_CCPOLL_MISSING] = EV_MISSING,
	[DP_CCPOLL_TRANSIENT] = EV_TRANSIENT, [DP_CCPOLL_FAILED] = EV_FAILED,
	[DP_CCPOLL_MORE] = EV_MORE, [DP_CCPOLL_POLL_DONE] = EV_POLL_DONE,
	[DP_CCPOLL_FINISHED] = EV_FINISHED, [DP_CCPOLL_FINISHED_PARTIAL] = EV_FINISHED_PARTIAL,
	[DP_CCPOLL_RETRY] = EV_RETRY, [DP_CCPOLL_POLL_FAILED] = EV_POLL_FAILED,
	[DP_CCPOLL_GIVE_UP] = EV_GIVE_UP, [DP_CCPOLL_WAKE] = EV_WAKE, [DP_CCPOLL_TICK] = EV_TICK,
	[DP_CCPOLL_CLOSED] = EV_CLOSED, [DP_CCPOLL_OUTPUT] = EV_FAILED,
	[DP_CCPOLL_FATAL] = EV_FAILED, [DP_CCPOLL_INTERRUPTED] = EV_INTERRUPT,
	[DP_CCPOLL_STOPPED] = EV_STOP,
};

static const int session_events[DP_CCSESSION_NNEXT] = {
	[DP_CCSESSION_CONNECTED] = EV_CONNECTED, [DP_CCSESSION_SUBSCRIBED] = EV_SUBSCRIBED,
	[DP_CCSESSION_LOST] = EV_LOST, [DP_CCSESSION_FAILED] = EV_FAILED,
	[DP_CCSESSION_FINISHED] = EV_FINISHED, [DP_CCSESSION_CLOSED] = EV_CLOSED,
	[DP_CCSESSION_OUTPUT] = EV_FAILED, [DP_CCSESSION_STOPPED] = EV_STOP,
	[DP_CCSESSION_WAKE] = EV_WAKE, [DP_CCSESSION_GIVE_UP] = EV_GIVE_UP,
};

/* ------------------------------------------------------------------ */
/* Options and run-time context */

enum { SUB_PRICE, SUB_OHLCV, SUB_STREAM };

static const struct dp_subcmd subs[] = {
	{ "price", NULL }, { "ohlcv", NULL }, { "stream", &stream_machine },
};

struct fetch {
	struct dp_common common;
	struct dp_fsm fsm;
	char **argv;                        /* for --api-key-file's check */

	/* options, as given */
	int sub;                            /* SUB_* */
	const char *fsyms_arg, *tsyms_arg, *market, *interval_arg;
	const char *since_arg, *until_arg, *now_arg;
	bool include_open, raw, progress;
	int64_t settle_ms, every_ms, timeout_ms, connect_timeout_ms, retry_base_ms, idle_ms;
	uint64_t count, max_retries, page_size;
	const char *state_path, *base_url, *key_file;
	const char *channel_arg, *subs_arg, *stream_url;

	/* validated */
	char **fsyms, **tsyms;              /* owned, split from the lists */
	size_t nf, nt;
	enum dp_cc_interval iv;
	int64_t since_ms, until_ms, now_ms;

	/* the engine of the run */
	struct dp_ccpoll *poll;             /* price, ohlcv */
	struct dp_ccsession *session;       /* stream; made by validate() */
	struct dp_watch_opts watch;         /* --status-topic ($DP_BROKERS), --metrics ... */
};

/* Never the key itself: getopt takes --api-key=KEY for --api-key-file. */
static int
opt_key_file(void *ctx, const struct dp_opt *o, char *arg)
{
	struct fetch *c = ctx;

	(void)o;
	if (dp_secret_check_option(c->argv, optind, "--api-key-file", "key",
	                           "CRYPTOCOMPARE_API_KEY") < 0)
		return -1;
	c->key_file = arg;
	return 0;
}

#define F(field) .off = offsetof(struct fetch, field)

static const struct dp_opt opts[] = {
	DP_OPT_GROUP("Selection"),
	{ DP_ARG_STRING, 0, "fsyms", "LIST", "base symbols, comma-separated (BTC,ETH); or --fsym",
	  F(fsyms_arg) },
	{ DP_ARG_STRING, 0, "fsym", "LIST", NULL, F(fsyms_arg), .flags = DP_OPT_HIDDEN },
	{ DP_ARG_STRING, 0, "tsyms", "LIST", "quote symbols, comma-separated (USD,EUR); or --tsym",
	  F(tsyms_arg) },
	{ DP_ARG_STRING, 0, "tsym", "LIST", NULL, F(tsyms_arg), .flags = DP_OPT_HIDDEN },
	{ DP_ARG_STRING, 0, "market", "NAME", "exchange (the API's e; default CCCAGG, the aggregate)",
	  F(market) },
	{ DP_ARG_STRING, 0, "interval", "INTERVAL",
	  "ohlcv: 1m, 5m, 15m, 30m, 1h, 2h, 4h, 12h, 1d, 3d or 1w\n"
	  "(also minute, hour, day); aligned to the epoch;\n"
	  "stream --channel ohlc: 1m, 1h or 1d (default 1m)", F(interval_arg) },
	{ DP_ARG_STRING, 0, "since", "TIME", "ohlcv: first candle wanted (default: all history the\n"
	  "API has; 7 days for minutes)", F(since_arg) },
	{ DP_ARG_STRING, 0, "until", "TIME", "ohlcv: only candles that open before TIME",
	  F(until_arg) },
	{ DP_ARG_FLAG, 0, "include-open", NULL, "ohlcv: also print the candles that are still open",
	  F(include_open) },
	{ DP_ARG_DURATION, 0, "settle", "DURATION", "ohlcv: a candle is closed DURATION after its end\n"
	  "(default " SETTLE_DEFAULT ", at most 1h)", F(settle_ms) },
	{ DP_ARG_STRING, 0, "state", "FILE", "ohlcv: remember the last candle printed per series and\n"
	  "print only newer ones (for cron; see the man page\nbefore piping into dp-publish)",
	  F(state_path) },
	{ DP_ARG_FLAG, 0, "raw", NULL, "print the API's own objects (stream: the server's\n"
	  "messages) instead of records", F(raw) },

	DP_OPT_GROUP("Streaming"),
	{ DP_ARG_STRING, 0, "channel", "LIST", "aggregate (the default), ticker, trade, ohlc;\n"
	  "ticker and trade need --market", F(channel_arg) },
	{ DP_ARG_STRING, 0, "subs", "LIST", "raw subscriptions, comma-separated (5~CCCAGG~BTC~USD)",
	  F(subs_arg) },
	{ DP_ARG_STRING, 0, "stream-url", "URL", "streamer (default $DP_CRYPTOCOMPARE_STREAM_URL, else\n"
	  DP_CCS_DEFAULT_URL ")", F(stream_url) },
	{ DP_ARG_TIMEOUT, 0, "idle-timeout", "DURATION", "reconnect after so long without a message\n"
	  "(default " IDLE_DEFAULT ", three heartbeats)", F(idle_ms), .max = INT32_MAX,
	  .max_label = "24d" },
	{ DP_ARG_FLAG, 0, "progress", NULL, "report records, gaps and reconnects every second",
	  F(progress) },

	DP_OPT_GROUP("Repetition"),
	{ DP_ARG_DURATION, 0, "every", "DURATION", "poll forever, aligned to the wall clock (1m: at :00;\n"
	  "ohlcv: --settle later)", F(every_ms) },
	{ DP_ARG_U64, 0, "count", "N", "with --every: stop after N polls; stream: after N\nrecords",
	  F(count), .min = 1, .max = UINT32_MAX },

	DP_OPT_GROUP("API access"),
	{ DP_ARG_STRING, 0, "base-url", "URL", "API server (default $DP_CRYPTOCOMPARE_URL, else\n"
	  DP_CC_DEFAULT_URL ")", F(base_url) },
	{ DP_ARG_CALL, 0, "api-key-file", "FILE", "read the API key from FILE (default\n"
	  "$CRYPTOCOMPARE_API_KEY; never on the command line)", .fn = opt_key_file },
	{ DP_ARG_TIMEOUT, 0, "timeout", "DURATION", "time limit of one request (default 30s)",
	  F(timeout_ms), .max = INT32_MAX, .max_label = "24d" },
	{ DP_ARG_TIMEOUT, 0, "connect-timeout", "DURATION", "time limit to connect (default 10s)",
	  F(connect_timeout_ms), .max = INT32_MAX, .max_label = "24d" },
	{ DP_ARG_U64, 0, "max-retries", "N", "retries of a request that failed for a transient\n"
	  "reason: rate limit, HTTP 5xx, network (default 5);\n"
	  "stream: reconnects in a row (default: forever)", F(max_retries), .min = 0,
	  .max = UINT32_MAX },
	{ DP_ARG_DURATION, 0, "retry-base", "DURATION", "first retry delay, doubled per retry up to 30s,\n"
	  "with jitter (default 500ms; stream " STREAM_RETRY_BASE ")", F(retry_base_ms) },
	{ DP_ARG_U64, 0, "page-size", "N", "ohlcv: candles per request, 1..2000 (default 2000)",
	  F(page_size), .min = 1, .max = DP_CC_MAX_LIMIT },
	{ DP_ARG_STRING, 0, "now", "TIME", "take TIME as the current time (tests, replays)",
	  F(now_arg) },
	DP_OPT_WATCH_ROWS(struct fetch, watch, 0),
	DP_OPT_END,
};

#undef F

static const char about[] =
	"Fetch market data from CryptoCompare and print one JSON record per line on\n"
	"stdout.\n"
	"\n"
	"Commands:\n"
	"  price                   current prices: one record per FSYM/TSYM pair\n"
	"  ohlcv                   candles, oldest first; only closed ones by default\n"
	"  stream                  real-time ticks, trades or candles from the streamer,\n"
	"                          until stopped\n";

static const char epilogue[] =
	"TIME is RFC 3339, epoch seconds or milliseconds, 'now', or -DURATION (-2h).\n";

/* The options that belong to some subcommands only, and theirs. */
static const struct { const char *name; unsigned subs; } scope[] = {
	{ "interval", DP_SUB(SUB_OHLCV) | DP_SUB(SUB_STREAM) },
	{ "since", DP_SUB(SUB_OHLCV) },
	{ "until", DP_SUB(SUB_OHLCV) },
	{ "include-open", DP_SUB(SUB_OHLCV) },
	{ "settle", DP_SUB(SUB_OHLCV) },
	{ "state", DP_SUB(SUB_OHLCV) },
	{ "page-size", DP_SUB(SUB_OHLCV) },
	{ "every", DP_SUB(SUB_PRICE) | DP_SUB(SUB_OHLCV) },
	{ "now", DP_SUB(SUB_PRICE) | DP_SUB(SUB_OHLCV) },
	{ "base-url", DP_SUB(SUB_PRICE) | DP_SUB(SUB_OHLCV) },
	{ "timeout", DP_SUB(SUB_PRICE) | DP_SUB(SUB_OHLCV) },
	{ "channel", DP_SUB(SUB_STREAM) },
	{ "subs", DP_SUB(SUB_STREAM) },
	{ "stream-url", DP_SUB(SUB_STREAM) },
	{ "idle-timeout", DP_SUB(SUB_STREAM) },
	{ "progress", DP_SUB(SUB_STREAM) },
};

static const struct dp_cmd cmd;

/* ------------------------------------------------------------------ */
/* Validating options */

/* Say why an option is wrong; -1. */
static int
bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
bad(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dp_vlog(DP_LOG_QUIET, fmt, ap);
	va_end(ap);
	return -1;
}

/* err's message, once, and -1. */
static int
said(struct dp_buf *err)
{
	dp_err("%s", dp_buf_str(err));
	dp_buf_free(err);
	return -1;
}

static bool
given(const struct fetch *c, const char *name)
{
	return dp_cmd_given(&cmd, &c->common, name);
}

/* The base URL from --base-url, $DP_CRYPTOCOMPARE_URL or the default. */
static int
check_base_url(struct fetch *c)
{
	static const char *const schemes[] = { "http://", "https://", NULL };
	const char *url = c->base_url, *env = getenv("DP_CRYPTOCOMPARE_URL");
	struct dp_buf err = DP_BUF_INIT;

	if (!url)
		url = env && *env ? env : DP_CC_DEFAULT_URL;
	if (dp_cc_check_url("base URL", url, schemes, false, &err) < 0)
		return said(&err);
	c->base_url = url;
	return 0;
}

/* stream: the URL, and the subscriptions from --subs or the pairs and channels. */
static int
check_stream(struct fetch *c)
{
	static const char *const schemes[] = { "ws://", "wss://", NULL };
	const char *env = getenv("DP_CRYPTOCOMPARE_STREAM_URL");
	const char *period = "m";
	struct dp_buf err = DP_BUF_INIT;

	if (!c->stream_url)
		c->stream_url = env && *env ? env : DP_CCS_DEFAULT_URL;
	if (dp_cc_check_url("stream URL", c->stream_url, schemes, true, &err) < 0 ||
	    dp_ws_check_url(c->stream_url, &err) < 0)
		return said(&err);
	if (!c->subs_arg && (!c->fsyms_arg || !c->tsyms_arg))
		return bad("missing %s", c->fsyms_arg ? "--tsyms" : c->tsyms_arg ? "--fsyms"
		                                              : "--fsyms and --tsyms, or --subs");
	if (!c->fsyms_arg && (c->channel_arg || c->market))
		return bad("%s is for --fsyms and --tsyms; --subs names the channel and market "
		           "itself", c->channel_arg ? "--channel" : "--market");
	if (c->interval_arg && !strstr(c->channel_arg ? c->channel_arg : "", "ohlc"))
		return bad("--interval is for --channel ohlc");
	if (c->interval_arg && (dp_cc_interval_parse(c->interval_arg, &c->iv) < 0 ||
	                        !(period = dp_ccs_ohlc_period(dp_cc_interval_label(c->iv)))))
		return bad("invalid --interval '%s' for stream: expected 1m, 1h or 1d",
		           c->interval_arg);
	if (!given(c, "retry-base"))
		c->retry_base_ms = STREAM_RETRY_BASE_MS;
	if (!given(c, "max-retries"))
		c->max_retries = UINT64_MAX;
	c->session = dp_ccsession_new(&(struct dp_ccsession_opts){
		.subs = c->subs_arg, .channels = c->channel_arg, .market = c->market,
		.fsyms = c->fsyms, .tsyms = c->tsyms, .nf = c->nf, .nt = c->nt,
		.period = period, .raw = c->raw, .max_records = c->count,
		.url = c->stream_url, .user_agent = PROG "/" DP_VERSION,
		.connect_timeout_ms = c->connect_timeout_ms, .idle_ms = c->idle_ms,
		.retry_base_ms = c->retry_base_ms, .max_retries = c->max_retries,
		.progress = c->progress, .stop = &dp_sig_stop }, &err);
	return c->session ? 0 : said(&err);
}

/* The one place where option values and combinations are checked. */
static int
validate(void *ctx)
{
	struct fetch *c = ctx;
	struct dp_buf err = DP_BUF_INIT;
	bool price = c->sub == SUB_PRICE;

	if (c->state_path && !*c->state_path)
		return bad("invalid --state: empty file name");
	if (dp_watch_validate(&c->watch, NULL, 0) < 0)
		return -1;
	for (size_t i = 0; i < DP_FSM_COUNT(scope); i++)
		if (given(c, scope[i].name) && !(scope[i].subs & DP_SUB(c->sub)))
			return bad("--%s is not for %s", scope[i].name, subs[c->sub].name);
	if (c->sub != SUB_STREAM && (!c->fsyms_arg || !c->tsyms_arg))
		return bad("missing %s", !c->fsyms_arg ? (price ? "--fsyms" : "--fsym")
		                                     : (price ? "--tsyms" : "--tsym"));
	if ((c->fsyms_arg && dp_cc_symbols("--fsyms", c->fsyms_arg, &c->fsyms, &c->nf, &err) < 0) ||
	    (c->tsyms_arg && dp_cc_symbols("--tsyms", c->tsyms_arg, &c->tsyms, &c->nt, &err) < 0) ||
	    (c->market && dp_cc_check_name("--market", c->market, &err) < 0))
		return said(&err);
	if (c->retry_base_ms <= 0)
		return bad("invalid --retry-base: must be more than 0");
	if (c->retry_base_ms > DP_CC_RETRY_CAP_MS)
		return bad("invalid --retry-base: at most 30s");
	if (c->sub == SUB_STREAM)
		return check_stream(c);
	if (c->sub == SUB_OHLCV) {
		if (!c->interval_arg)
			return bad("missing --interval: " DP_CC_INTERVALS);
		if (dp_cc_interval_parse(c->interval_arg, &c->iv) < 0)
			return bad("invalid --interval '%s': expected " DP_CC_INTERVALS, c->interval_arg);
	}
	if (c->max_retries > 100)
		return bad("invalid --max-retries '%" PRIu64 "': must be between 0 and 100",
		           c->max_retries);
	if (c->settle_ms > SETTLE_MAX_MS)
		return bad("invalid --settle: at most 1h");
	if (c->now_arg && c->every_ms)
		return bad("--now cannot be combined with --every (polls follow the real clock)");
	c->now_ms = dp_time_now_ms();
	if ((c->now_arg && dp_parse_time("--now", c->now_arg, c->now_ms, &c->now_ms) < 0) ||
	    (c->since_arg && dp_parse_time("--since", c->since_arg, c->now_ms, &c->since_ms) < 0) ||
	    (c->until_arg && dp_parse_time("--until", c->until_arg, c->now_ms, &c->until_ms) < 0))
		return -1;
	if (c->since_arg && c->until_arg && c->since_ms >= c->until_ms)
		return bad("--since must be before --until");
	if (given(c, "count") && !c->every_ms)
		return bad("--count needs --every");
	if (given(c, "every") && c->every_ms < 1000)
		return bad("invalid --every: must be at least 1s");
	return check_base_url(c);
}

/* ------------------------------------------------------------------ */
/* Resources */

static int
open_fetch(void *ctx)
{
	struct fetch *c = ctx;
	struct dp_buf err = DP_BUF_INIT;
	char *key = NULL;
	int status;

	if ((status = dp_watch_start(&c->watch, &c->common.kafka, &c->fsm, PROG, "api")) != 0)
		return status;
	/* Never from the command line; see dp_secret_check_option(). */
	status = dp_secret_load(c->key_file, "CRYPTOCOMPARE_API_KEY", "api key", &key, &err);
	if (status) {
		dp_err("%s", dp_buf_str(&err));
		dp_buf_free(&err);
		return status;
	}
	if (c->session)
		status = dp_ccsession_open(c->session, c->common.out, key);
	else
		status = dp_ccpoll_new(&(struct dp_ccpoll_opts){
			.ohlcv = c->sub == SUB_OHLCV, .fsyms = c->fsyms, .tsyms = c->tsyms,
			.nf = c->nf, .nt = c->nt, .market = c->market, .raw = c->raw, .iv = c->iv,
			.has_since = c->since_arg != NULL, .since_ms = c->since_ms,
			.has_until = c->until_arg != NULL, .until_ms = c->until_ms,
			.include_open = c->include_open, .settle_ms = c->settle_ms,
			.page_size = (unsigned)c->page_size, .state_path = c->state_path,
			.every_ms = c->every_ms, .count = c->count,
			.has_now = c->now_arg != NULL, .now_ms = c->now_ms,
			.base_url = c->base_url, .user_agent = PROG "/" DP_VERSION, .key = key,
			.timeout_ms = c->timeout_ms, .connect_timeout_ms = c->connect_timeout_ms,
			.retry_base_ms = c->retry_base_ms, .max_retries = c->max_retries,
			.out = c->common.out, .stop = &dp_sig_stop }, &c->poll);
	dp_secret_free(key);
	return status;
}

/* After the machine: the stream's summary, and its exit status. */
static int
finish_fetch(void *ctx, int status)
{
	struct fetch *c = ctx;

	return c->session ? dp_ccsession_finish(c->session, status) : status;
}

static void
close_fetch(void *ctx)
{
	struct fetch *c = ctx;

	dp_ccpoll_free(c->poll);
	dp_ccsession_free(c->session);
	dp_cc_symbols_free(c->fsyms, c->nf);
	dp_cc_symbols_free(c->tsyms, c->nt);
}

static unsigned
io_fetch(void *ctx)
{
	const struct fetch *c = ctx;

	return DP_CMD_STDOUT | (c->sub != SUB_STREAM && !c->every_ms ? DP_CMD_BOUNDED : 0);
}

/* A signal came in a one-shot run (core/frame.h): after its end, or what it left. */
static bool
interrupted_fetch(void *ctx, int status, struct dp_buf *said)
{
	const struct fetch *c = ctx;

	(void)status;
	return dp_ccpoll_unfinished(c->poll, said);
}

/* ------------------------------------------------------------------ */
/* Actions: each one step of the engine, whose answer is the next event */

/* A failed write to stdout, said once (core/frame.h), is the run's end. */
static void
stdout_failed(struct fetch *c)
{
	dp_cmd_stdout_failed(dp_out_error(c->common.out));
	dp_fsm_fail(&c->fsm, DP_EX_IOERR);
}

static int
polled(struct fetch *c, enum dp_ccpoll_next next)
{
	if (next == DP_CCPOLL_OUTPUT)
		stdout_failed(c);
	else if (next == DP_CCPOLL_FATAL || next == DP_CCPOLL_GIVE_UP)
		dp_fsm_fail(&c->fsm, dp_ccpoll_status(c->poll));
	return poll_events[next];
}

static int
streamed(struct fetch *c, enum dp_ccsession_next next)
{
	if (next == DP_CCSESSION_OUTPUT)
		stdout_failed(c);
	else if (next == DP_CCSESSION_FAILED || next == DP_CCSESSION_GIVE_UP)
		dp_fsm_fail(&c->fsm, dp_ccsession_status(c->session));
	return session_events[next];
}

static int
act_poll(struct dp_fsm *m, void *ctx)
{
	(void)m;
	return polled(ctx, dp_ccpoll_begin(((struct fetch *)ctx)->poll));
}

static int
act_fetch(struct dp_fsm *m, void *ctx)
{
	(void)m;
	return polled(ctx, dp_ccpoll_fetch(((struct fetch *)ctx)->poll));
}

static int
act_emit(struct dp_fsm *m, void *ctx)
{
	(void)m;
	return polled(ctx, dp_ccpoll_emit(((struct fetch *)ctx)->poll));
}

static int
act_missing(struct dp_fsm *m, void *ctx)
{
	(void)m;
	return polled(ctx, dp_ccpoll_missing(((struct fetch *)ctx)->poll));
}

static int
act_error(struct dp_fsm *m, void *ctx)
{
	(void)m;
	return polled(ctx, dp_ccpoll_error(((struct fetch *)ctx)->poll));
}

static int
act_backoff(struct dp_fsm *m, void *ctx)
{
	(void)m;
	return polled(ctx, dp_ccpoll_backoff(((struct fetch *)ctx)->poll));
}

static int
act_wait(struct dp_fsm *m, void *ctx)
{
	(void)m;
	return polled(ctx, dp_ccpoll_wait(((struct fetch *)ctx)->poll));
}

static int
act_connect(struct dp_fsm *m, void *ctx)
{
	(void)m;
	return streamed(ctx, dp_ccsession_connect(((struct fetch *)ctx)->session));
}

static int
act_subscribe(struct dp_fsm *m, void *ctx)
{
	(void)m;
	return streamed(ctx, dp_ccsession_subscribe(((struct fetch *)ctx)->session));
}

static int
act_stream(struct dp_fsm *m, void *ctx)
{
	(void)m;
	return streamed(ctx, dp_ccsession_stream(((struct fetch *)ctx)->session));
}

static int
act_reconnect(struct dp_fsm *m, void *ctx)
{
	(void)m;
	return streamed(ctx, dp_ccsession_reconnect(((struct fetch *)ctx)->session));
}

/* ------------------------------------------------------------------ */

static const struct dp_cmd cmd = {
	.name = PROG,
	.libs = dp_cc_libs,
	.synopsis = "dp-fetch price --fsyms LIST --tsyms LIST [options]\n"
	            "dp-fetch ohlcv --fsym LIST --tsym LIST --interval INTERVAL [options]\n"
	            "dp-fetch stream --fsyms LIST --tsyms LIST [--channel LIST] [options]\n"
	            "dp-fetch stream --subs LIST [options]\n",
	.about = about,
	.opts = opts,
	.epilogue = epilogue,
	.subs = subs,
	.nsubs = DP_FSM_COUNT(subs),
	.sub_off = offsetof(struct fetch, sub),
	.machine = &machine,
	.start = EV_START,
	.outbuf = (size_t)1 << 20,
	.validate = validate,
	.open = open_fetch,
	.finish = finish_fetch,
	.close = close_fetch,
	.io = io_fetch,
	.interrupted = interrupted_fetch,
};

int
main(int argc, char **argv)
{
	static struct fetch c = {
		.timeout_ms = 30000,
		.connect_timeout_ms = 10000,
		.retry_base_ms = 500,
		.max_retries = 5,
		.settle_ms = SETTLE_DEFAULT_MS,
		.page_size = DP_CC_MAX_LIMIT,
		.idle_ms = IDLE_DEFAULT_MS,
	};

	c.argv = argv;
	return dp_cmd_main(&cmd, &c, &c.common, &c.fsm, argc, argv);
}
