/*
 * dp-fetch -- CryptoCompare -> NDJSON on stdout.
 *
 *   dp-fetch price --fsyms BTC,ETH --tsyms USD,EUR
 *   dp-fetch ohlcv --fsym BTC --tsym USD --interval 4h --state FILE
 *   dp-fetch stream --fsyms BTC,ETH --tsyms USD --channel aggregate
 *
 * price and ohlcv poll the REST API: one poll fetches everything asked
 * for, prices in one request (split up when the API refuses it for a pair
 * that does not exist, lib/cc/price.c), candles series by series in as many
 * pages as lib/cc/series.c plans.  Without --every there is one poll (for
 * cron); with it, polls repeat on wall-clock boundaries.  With --state
 * every printed batch is flushed before the state file moves past it (see
 * the man page, GUARANTEES).
 *
 * stream keeps a WebSocket to the streamer open (lib/cc/ws.c) and turns its
 * messages into records as they come (lib/cc/stream.c): connecting ->
 * subscribing -> streaming, and on any loss reconnecting after a backoff.
 *
 * The state machine does the work: each action makes one request,
 * connection or wait, prints what came, and returns the event that
 * follows.
 *
 * The API key never leaves memory except in the Authorization header:
 * it is not accepted on the command line, never logged, and wiped at exit.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jv.h>

#include "cc/http.h"
#include "cc/rest.h"
#include "cc/stream.h"
#include "cc/ws.h"
#include "core/backoff.h"
#include "core/buf.h"
#include "core/cli.h"
#include "core/exit.h"
#include "core/frame.h"
#include "core/fsm.h"
#include "core/log.h"
#include "core/out.h"
#include "core/progress.h"
#include "core/secret.h"
#include "core/sig.h"
#include "core/timefmt.h"

#define PROG "dp-fetch"
#define RETRY_CAP_MS 30000
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
/* The state machine */

enum state {
	ST_IDLE, ST_FETCHING, ST_EMITTING, ST_ERROR, ST_BACKOFF, ST_WAITING,
	ST_CONNECTING, ST_SUBSCRIBING, ST_STREAMING, ST_RECONNECTING,
	ST_DONE, ST_PARTIAL, ST_FAILED, ST_INTERRUPTED, NSTATES
};

static const char *const state_names[NSTATES] = {
	"idle", "fetching", "emitting", "error", "backoff", "waiting",
	"connecting", "subscribing", "streaming", "reconnecting",
	"done", "partial", "failed", "interrupted",
};

enum event {
	EV_START, EV_RESPONSE, EV_MISSING, EV_TRANSIENT, EV_FAILED, EV_RETRY, EV_WAKE,
	EV_MORE, EV_POLL_DONE, EV_POLL_FAILED, EV_TICK, EV_FINISHED, EV_FINISHED_PARTIAL,
	EV_GIVE_UP, EV_CLOSED, EV_INTERRUPT, EV_STOP,
	EV_STREAM, EV_CONNECTED, EV_SUBSCRIBED, EV_LOST, NEVENTS
};

static const char *const event_names[NEVENTS] = {
	"start", "response", "missing", "transient", "failed", "retry", "wake",
	"more", "poll_done", "poll_failed", "tick", "finished", "finished_partial",
	"give_up", "closed", "interrupt", "stop",
	"stream", "connected", "subscribed", "lost",
};

static int act_poll(struct dp_fsm *m, void *ctx);
static int act_fetch(struct dp_fsm *m, void *ctx);
static int act_emit(struct dp_fsm *m, void *ctx);
static int act_missing(struct dp_fsm *m, void *ctx);
static int act_error(struct dp_fsm *m, void *ctx);
static int act_backoff(struct dp_fsm *m, void *ctx);
static int act_wait(struct dp_fsm *m, void *ctx);
static int act_connect(struct dp_fsm *m, void *ctx);
static int act_subscribe(struct dp_fsm *m, void *ctx);
static int act_stream(struct dp_fsm *m, void *ctx);
static int act_reconnect(struct dp_fsm *m, void *ctx);

/*
 * interrupt: a signal in a one-shot run, which is then incomplete (75);
 * stop: a signal with --every or while streaming, the normal way to end
 * it (0).  lost: a stream connection ended or could not be made; failed:
 * nothing to retry (the key refused, every subscription refused).
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

	{ ST_IDLE,        EV_STREAM,           ST_CONNECTING,   act_connect },
	{ ST_CONNECTING,  EV_CONNECTED,        ST_SUBSCRIBING,  act_subscribe },
	{ ST_CONNECTING,  EV_LOST,             ST_RECONNECTING, act_reconnect },
	{ ST_CONNECTING,  EV_FAILED,           ST_FAILED,       NULL },
	{ ST_CONNECTING,  EV_STOP,             ST_DONE,         NULL },
	{ ST_SUBSCRIBING, EV_SUBSCRIBED,       ST_STREAMING,    act_stream },
	{ ST_SUBSCRIBING, EV_LOST,             ST_RECONNECTING, act_reconnect },
	{ ST_SUBSCRIBING, EV_FAILED,           ST_FAILED,       NULL },
	{ ST_SUBSCRIBING, EV_FINISHED,         ST_DONE,         NULL },
	{ ST_SUBSCRIBING, EV_CLOSED,           ST_DONE,         NULL },
	{ ST_SUBSCRIBING, EV_STOP,             ST_DONE,         NULL },
	{ ST_STREAMING,   EV_LOST,             ST_RECONNECTING, act_reconnect },
	{ ST_STREAMING,   EV_FAILED,           ST_FAILED,       NULL },
	{ ST_STREAMING,   EV_FINISHED,         ST_DONE,         NULL },
	{ ST_STREAMING,   EV_CLOSED,           ST_DONE,         NULL },
	{ ST_STREAMING,   EV_STOP,             ST_DONE,         NULL },
	{ ST_RECONNECTING, EV_WAKE,            ST_CONNECTING,   act_connect },
	{ ST_RECONNECTING, EV_GIVE_UP,         ST_FAILED,       NULL },
	{ ST_RECONNECTING, EV_STOP,            ST_DONE,         NULL },
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

/* ------------------------------------------------------------------ */
/* Options and run-time context */

enum cmd { CMD_NONE, CMD_PRICE, CMD_OHLCV, CMD_STREAM };

enum {
	OPT_FSYMS = DP_OPT_CMD,
	OPT_TSYMS,
	OPT_MARKET,
	OPT_INTERVAL,
	OPT_SINCE,
	OPT_UNTIL,
	OPT_INCLUDE_OPEN,
	OPT_SETTLE,
	OPT_STATE,
	OPT_RAW,
	OPT_EVERY,
	OPT_COUNT,
	OPT_BASE_URL,
	OPT_API_KEY_FILE,
	OPT_TIMEOUT,
	OPT_CONNECT_TIMEOUT,
	OPT_MAX_RETRIES,
	OPT_RETRY_BASE,
	OPT_PAGE_SIZE,
	OPT_NOW,
	OPT_CHANNEL,
	OPT_SUBS,
	OPT_STREAM_URL,
	OPT_IDLE_TIMEOUT,
	OPT_PROGRESS,
	OPT_END,
};

static const struct option longopts[] = {
	DP_CLI_BASE_LONG,
	{ "fsyms",           required_argument, NULL, OPT_FSYMS },
	{ "fsym",            required_argument, NULL, OPT_FSYMS },
	{ "tsyms",           required_argument, NULL, OPT_TSYMS },
	{ "tsym",            required_argument, NULL, OPT_TSYMS },
	{ "market",          required_argument, NULL, OPT_MARKET },
	{ "interval",        required_argument, NULL, OPT_INTERVAL },
	{ "since",           required_argument, NULL, OPT_SINCE },
	{ "until",           required_argument, NULL, OPT_UNTIL },
	{ "include-open",    no_argument,       NULL, OPT_INCLUDE_OPEN },
	{ "settle",          required_argument, NULL, OPT_SETTLE },
	{ "state",           required_argument, NULL, OPT_STATE },
	{ "raw",             no_argument,       NULL, OPT_RAW },
	{ "every",           required_argument, NULL, OPT_EVERY },
	{ "count",           required_argument, NULL, OPT_COUNT },
	{ "base-url",        required_argument, NULL, OPT_BASE_URL },
	{ "api-key-file",    required_argument, NULL, OPT_API_KEY_FILE },
	{ "timeout",         required_argument, NULL, OPT_TIMEOUT },
	{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
	{ "max-retries",     required_argument, NULL, OPT_MAX_RETRIES },
	{ "retry-base",      required_argument, NULL, OPT_RETRY_BASE },
	{ "page-size",       required_argument, NULL, OPT_PAGE_SIZE },
	{ "now",             required_argument, NULL, OPT_NOW },
	{ "channel",         required_argument, NULL, OPT_CHANNEL },
	{ "subs",            required_argument, NULL, OPT_SUBS },
	{ "stream-url",      required_argument, NULL, OPT_STREAM_URL },
	{ "idle-timeout",    required_argument, NULL, OPT_IDLE_TIMEOUT },
	{ "progress",        no_argument,       NULL, OPT_PROGRESS },
	{ NULL, 0, NULL, 0 },
};

#define GIVEN(c, opt) ((c)->given[(opt) - DP_OPT_CMD])

/* ohlcv: one pair, and its cursor across polls. */
struct series {
	const char *fsym, *tsym;     /* borrowed from the options */
	bool have_cursor;
	int64_t cursor;              /* open time of the last closed candle printed */
};

struct fetch {
	struct dp_common common;
	struct dp_fsm fsm;

	/* options */
	enum cmd cmd;
	bool given[OPT_END - DP_OPT_CMD];
	int nargs;                          /* positional arguments, borrowed */
	char **args;
	const char *fsyms_arg, *tsyms_arg;
	char **fsyms, **tsyms;              /* owned, split from the lists */
	size_t nf, nt;
	const char *market;
	const char *interval_arg;
	enum dp_cc_interval iv;
	const char *since_arg, *until_arg, *now_arg;
	int64_t since_ms, until_ms, now_ms;
	bool include_open;
	int64_t settle_ms;
	const char *state_path;
	bool raw;
	int64_t every_ms;
	uint64_t count;
	const char *base_url_arg;
	char *base_url;                     /* validated, no trailing '/'; owned */
	const char *key_file;
	int64_t timeout_ms, connect_timeout_ms, retry_base_ms;
	uint64_t max_retries, page_size;
	const char *channel_arg, *subs_arg, *stream_url;
	int64_t idle_ms;
	bool progress;

	/* resources */
	struct dp_http *http;
	bool http_init;
	bool have_key;
	char *key;                          /* stream: until the client has it; wiped */
	struct dp_cc_state *state;          /* NULL without --state */
	int lock_fd;
	struct series *ser;                 /* ohlcv: nf * nt */
	size_t nser;
	struct dp_cc_prices prices;         /* price: the pairs of a poll */
	struct dp_backoff backoff;
	struct dp_ws *ws;                   /* stream */
	struct dp_ccs *ccs;
	struct dp_progress prog;

	/* the poll in progress */
	unsigned long polls;                /* polls finished, good or bad */
	int64_t poll_ms;                    /* the clock of this poll */
	size_t cur;                         /* ohlcv: the series */
	bool partial;                       /* something was missing in this poll */
	struct dp_cc_series plan;           /* ohlcv: the series' pages */
	bool series_done;

	/* the current request */
	struct dp_buf url;
	struct dp_cc_reply reply;
	struct dp_cc_candle *page;          /* ohlcv: the answer */
	size_t npage;
	struct dp_buf batch;                /* price: the records of the answer */

	bool open;                          /* stream: a connection was up; losing it is a gap */
	bool finished;                      /* a one-shot poll came to its end */

	/* the last failure */
	int fail_status;
	bool fail_transient;
	struct dp_buf msg;
};

static void
usage(FILE *fp)
{
	fputs("usage: dp-fetch price --fsyms LIST --tsyms LIST [options]\n"
	      "       dp-fetch ohlcv --fsym LIST --tsym LIST --interval INTERVAL [options]\n"
	      "       dp-fetch stream --fsyms LIST --tsyms LIST [--channel LIST] [options]\n"
	      "       dp-fetch stream --subs LIST [options]\n"
	      "\n"
	      "Fetch market data from CryptoCompare and print one JSON record per line on\n"
	      "stdout.\n"
	      "\n"
	      "Commands:\n"
	      "  price                   current prices: one record per FSYM/TSYM pair\n"
	      "  ohlcv                   candles, oldest first; only closed ones by default\n"
	      "  stream                  real-time ticks, trades or candles from the streamer,\n"
	      "                          until stopped\n"
	      "\n"
	      "Selection:\n"
	      "      --fsyms LIST        base symbols, comma-separated (BTC,ETH); or --fsym\n"
	      "      --tsyms LIST        quote symbols, comma-separated (USD,EUR); or --tsym\n"
	      "      --market NAME       exchange (the API's e; default CCCAGG, the aggregate)\n"
	      "      --interval INTERVAL ohlcv: 1m, 5m, 15m, 30m, 1h, 2h, 4h, 12h, 1d, 3d or 1w\n"
	      "                          (also minute, hour, day); aligned to the epoch;\n"
	      "                          stream --channel ohlc: 1m, 1h or 1d (default 1m)\n"
	      "      --since TIME        ohlcv: first candle wanted (default: all history the\n"
	      "                          API has; 7 days for minutes)\n"
	      "      --until TIME        ohlcv: only candles that open before TIME\n"
	      "      --include-open      ohlcv: also print the candles that are still open\n"
	      "      --settle DURATION   ohlcv: a candle is closed DURATION after its end\n"
	      "                          (default " SETTLE_DEFAULT ", at most 1h)\n"
	      "      --state FILE        ohlcv: remember the last candle printed per series and\n"
	      "                          print only newer ones (for cron; see the man page\n"
	      "                          before piping into dp-publish)\n"
	      "      --raw               print the API's own objects (stream: the server's\n"
	      "                          messages) instead of records\n"
	      "  TIME is RFC 3339, epoch seconds or milliseconds, 'now', or -DURATION (-2h).\n"
	      "\n"
	      "Streaming:\n"
	      "      --channel LIST      aggregate (the default), ticker, trade, ohlc;\n"
	      "                          ticker and trade need --market\n"
	      "      --subs LIST         raw subscriptions, comma-separated (5~CCCAGG~BTC~USD)\n"
	      "      --stream-url URL    streamer (default $DP_CRYPTOCOMPARE_STREAM_URL, else\n"
	      "                          " DP_CCS_DEFAULT_URL ")\n"
	      "      --idle-timeout DURATION  reconnect after so long without a message\n"
	      "                          (default " IDLE_DEFAULT ", three heartbeats)\n"
	      "      --progress          report records, gaps and reconnects every second\n"
	      "\n"
	      "Repetition:\n"
	      "      --every DURATION    poll forever, aligned to the wall clock (1m: at :00;\n"
	      "                          ohlcv: --settle later)\n"
	      "      --count N           with --every: stop after N polls; stream: after N\n"
	      "                          records\n"
	      "\n"
	      "API access:\n"
	      "      --base-url URL      API server (default $DP_CRYPTOCOMPARE_URL, else\n"
	      "                          " DP_CC_DEFAULT_URL ")\n"
	      "      --api-key-file FILE read the API key from FILE (default\n"
	      "                          $CRYPTOCOMPARE_API_KEY; never on the command line)\n"
	      "      --timeout DURATION  time limit of one request (default 30s)\n"
	      "      --connect-timeout DURATION  time limit to connect (default 10s)\n"
	      "      --max-retries N     retries of a request that failed for a transient\n"
	      "                          reason: rate limit, HTTP 5xx, network (default 5);\n"
	      "                          stream: reconnects in a row (default: forever)\n"
	      "      --retry-base DURATION  first retry delay, doubled per retry up to 30s,\n"
	      "                          with jitter (default 500ms; stream " STREAM_RETRY_BASE ")\n"
	      "      --page-size N       ohlcv: candles per request, 1..2000 (default 2000)\n"
	      "      --now TIME          take TIME as the current time (tests, replays)\n", fp);
	dp_cli_help_common(fp, false);
}

/* ------------------------------------------------------------------ */
/* Parsing and validating options */

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

static int
parse_options(void *ctx, int argc, char **argv)
{
	struct fetch *c = ctx;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, DP_CLI_BASE_SHORT, longopts, NULL)) != -1) {
		if (opt >= DP_OPT_CMD && opt < OPT_END)
			c->given[opt - DP_OPT_CMD] = true;
		switch (opt) {
		case OPT_FSYMS: c->fsyms_arg = optarg; break;
		case OPT_TSYMS: c->tsyms_arg = optarg; break;
		case OPT_MARKET: c->market = optarg; break;
		case OPT_INTERVAL: c->interval_arg = optarg; break;
		case OPT_SINCE: c->since_arg = optarg; break;
		case OPT_UNTIL: c->until_arg = optarg; break;
		case OPT_NOW: c->now_arg = optarg; break;
		case OPT_INCLUDE_OPEN: c->include_open = true; break;
		case OPT_RAW: c->raw = true; break;
		case OPT_BASE_URL: c->base_url_arg = optarg; break;
		case OPT_CHANNEL: c->channel_arg = optarg; break;
		case OPT_SUBS: c->subs_arg = optarg; break;
		case OPT_STREAM_URL: c->stream_url = optarg; break;
		case OPT_PROGRESS: c->progress = true; break;
		case OPT_STATE:
			if (!*optarg)
				return bad("invalid --state: empty file name");
			c->state_path = optarg;
			break;
		case OPT_API_KEY_FILE:
			if (dp_secret_check_option(argv, optind, "--api-key-file", "key",
			                           "CRYPTOCOMPARE_API_KEY") < 0)
				return -1;
			c->key_file = optarg;
			break;
		case OPT_SETTLE:
			if (dp_parse_duration("--settle", optarg, &c->settle_ms) < 0)
				return -1;
			break;
		case OPT_EVERY:
			if (dp_parse_duration("--every", optarg, &c->every_ms) < 0)
				return -1;
			break;
		case OPT_COUNT:
			if (dp_parse_u64("--count", optarg, 1, UINT32_MAX, &c->count) < 0)
				return -1;
			break;
		case OPT_TIMEOUT:
			if (dp_parse_timeout("--timeout", optarg, INT32_MAX, "24d", &c->timeout_ms) < 0)
				return -1;
			break;
		case OPT_CONNECT_TIMEOUT:
			if (dp_parse_timeout("--connect-timeout", optarg, INT32_MAX, "24d",
			                     &c->connect_timeout_ms) < 0)
				return -1;
			break;
		case OPT_IDLE_TIMEOUT:
			if (dp_parse_timeout("--idle-timeout", optarg, INT32_MAX, "24d", &c->idle_ms) < 0)
				return -1;
			break;
		case OPT_RETRY_BASE:
			if (dp_parse_duration("--retry-base", optarg, &c->retry_base_ms) < 0)
				return -1;
			break;
		case OPT_MAX_RETRIES:
			if (dp_parse_u64("--max-retries", optarg, 0, UINT32_MAX, &c->max_retries) < 0)
				return -1;
			break;
		case OPT_PAGE_SIZE:
			if (dp_parse_u64("--page-size", optarg, 1, DP_CC_MAX_LIMIT, &c->page_size) < 0)
				return -1;
			break;
		case '?':
			dp_cli_bad_option(argv);
			return -1;
		default:
			rc = dp_cli_common(&c->common, opt, optarg);
			if (rc <= 0) {
				if (rc == 0)
					dp_err("internal error: option %d not handled", opt);
				return -1;
			}
			break;
		}
	}
	c->nargs = argc - optind;
	c->args = argv + optind;
	return 0;
}

/* err's message, once, and -1. */
static int
said(struct dp_buf *err)
{
	dp_err("%s", dp_buf_str(err));
	dp_buf_free(err);
	return -1;
}

/* The options that belong to some commands only. */
static int
check_scope(const struct fetch *c)
{
	static const struct { int opt; const char *name; unsigned cmds; } only[] = {
		{ OPT_INTERVAL, "--interval", 1u << CMD_OHLCV | 1u << CMD_STREAM },
		{ OPT_SINCE, "--since", 1u << CMD_OHLCV },
		{ OPT_UNTIL, "--until", 1u << CMD_OHLCV },
		{ OPT_INCLUDE_OPEN, "--include-open", 1u << CMD_OHLCV },
		{ OPT_SETTLE, "--settle", 1u << CMD_OHLCV },
		{ OPT_STATE, "--state", 1u << CMD_OHLCV },
		{ OPT_PAGE_SIZE, "--page-size", 1u << CMD_OHLCV },
		{ OPT_EVERY, "--every", 1u << CMD_PRICE | 1u << CMD_OHLCV },
		{ OPT_NOW, "--now", 1u << CMD_PRICE | 1u << CMD_OHLCV },
		{ OPT_BASE_URL, "--base-url", 1u << CMD_PRICE | 1u << CMD_OHLCV },
		{ OPT_TIMEOUT, "--timeout", 1u << CMD_PRICE | 1u << CMD_OHLCV },
		{ OPT_CHANNEL, "--channel", 1u << CMD_STREAM },
		{ OPT_SUBS, "--subs", 1u << CMD_STREAM },
		{ OPT_STREAM_URL, "--stream-url", 1u << CMD_STREAM },
		{ OPT_IDLE_TIMEOUT, "--idle-timeout", 1u << CMD_STREAM },
		{ OPT_PROGRESS, "--progress", 1u << CMD_STREAM },
	};
	static const char *const names[] = { "", "price", "ohlcv", "stream" };

	for (size_t i = 0; i < DP_FSM_COUNT(only); i++) {
		if (GIVEN(c, only[i].opt) && !(only[i].cmds & 1u << c->cmd))
			return bad("%s is not for %s", only[i].name, names[c->cmd]);
	}
	return 0;
}

/* The base URL from --base-url, $DP_CRYPTOCOMPARE_URL or the default. */
static int
check_base_url(struct fetch *c)
{
	static const char *const schemes[] = { "http://", "https://", NULL };
	const char *url = c->base_url_arg, *env = getenv("DP_CRYPTOCOMPARE_URL");
	struct dp_buf err = DP_BUF_INIT;

	if (!url)
		url = env && *env ? env : DP_CC_DEFAULT_URL;
	if (dp_cc_check_url("base URL", url, schemes, false, &err) < 0)
		return said(&err);
	c->base_url_arg = url;
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
	                        !(period = dp_ccs_ohlc_period(dp_cc_interval_label(c->iv))))) {
		dp_err("invalid --interval '%s' for stream: expected 1m, 1h or 1d", c->interval_arg);
		return -1;
	}
	if (!(c->ccs = dp_ccs_new(&(struct dp_ccs_opts){ .out = NULL, .raw = c->raw,
	                                                 .max_records = c->count }))) {
		dp_err("out of memory");
		return -1;
	}
	if ((c->subs_arg && dp_ccs_subscribe_list(c->ccs, c->subs_arg, &err) < 0) ||
	    (c->fsyms_arg && dp_ccs_subscribe_pairs(c->ccs, c->channel_arg ? c->channel_arg
	                                            : "aggregate", c->market, c->fsyms, c->nf,
	                                            c->tsyms, c->nt, period, &err) < 0))
		return said(&err);
	if (!GIVEN(c, OPT_RETRY_BASE))
		c->retry_base_ms = STREAM_RETRY_BASE_MS;
	if (!GIVEN(c, OPT_MAX_RETRIES))
		c->max_retries = UINT64_MAX;
	return 0;
}

/* The one place where option values and combinations are checked. */
static int
validate(void *ctx)
{
	static const char *const cmds[] = { "price", "ohlcv", "stream" };
	struct fetch *c = ctx;
	struct dp_buf err = DP_BUF_INIT;

	if (c->nargs < 1)
		return bad("missing command: price, ohlcv or stream");
	for (size_t i = 0; i < DP_FSM_COUNT(cmds); i++)
		if (strcmp(c->args[0], cmds[i]) == 0)
			c->cmd = (enum cmd)(i + 1);
	if (c->cmd == CMD_NONE)
		return bad("unknown command '%s': expected price, ohlcv or stream", c->args[0]);
	if (c->nargs > 1)
		return bad("unexpected argument '%s'", c->args[1]);
	if (check_scope(c) < 0)
		return -1;
	if (c->cmd != CMD_STREAM && (!c->fsyms_arg || !c->tsyms_arg))
		return bad("missing %s", !c->fsyms_arg ? (c->cmd == CMD_PRICE ? "--fsyms" : "--fsym")
		                                     : (c->cmd == CMD_PRICE ? "--tsyms" : "--tsym"));
	if ((c->fsyms_arg && dp_cc_symbols("--fsyms", c->fsyms_arg, &c->fsyms, &c->nf, &err) < 0) ||
	    (c->tsyms_arg && dp_cc_symbols("--tsyms", c->tsyms_arg, &c->tsyms, &c->nt, &err) < 0) ||
	    (c->market && dp_cc_check_name("--market", c->market, &err) < 0))
		return said(&err);
	if (c->retry_base_ms <= 0)
		return bad("invalid --retry-base: must be more than 0");
	if (c->retry_base_ms > RETRY_CAP_MS)
		return bad("invalid --retry-base: at most 30s");
	if (c->cmd == CMD_STREAM)
		return check_stream(c);
	if (c->cmd == CMD_OHLCV) {
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
	if (GIVEN(c, OPT_COUNT) && !c->every_ms)
		return bad("--count needs --every");
	if (GIVEN(c, OPT_EVERY) && c->every_ms < 1000)
		return bad("invalid --every: must be at least 1s");
	return check_base_url(c);
}

/* ------------------------------------------------------------------ */
/* Resources */

/* The key's header, "Authorization: Apikey KEY", for the HTTP or WebSocket client. */
static int
set_key(struct fetch *c, const char *key)
{
	struct dp_buf v = DP_BUF_INIT, err = DP_BUF_INIT;
	int r = dp_cc_auth_value(&v, key);

	if (r < 0)
		dp_buf_msgf(&err, "out of memory");
	else if (c->ws)
		r = dp_ws_set_secret_header(c->ws, "Authorization", v.data, &err);
	else
		r = dp_http_set_secret_header(c->http, "Authorization", v.data, &err);
	if (v.data)
		explicit_bzero(v.data, v.len);
	dp_buf_free(&v);
	if (r < 0)
		dp_err("%s", dp_buf_str(&err));
	dp_buf_free(&err);
	c->have_key = r == 0;
	return r < 0 ? DP_EX_CONFIG : 0;
}

static int
open_stream(struct fetch *c)
{
	struct dp_buf err = DP_BUF_INIT;
	struct dp_ws_opts wo = {
		.user_agent = PROG "/" DP_VERSION,
		.connect_timeout_ms = c->connect_timeout_ms,
		.cancel = &dp_sig_stop,
	};
	/* validate() made the engine to check the subscriptions; stdout exists
	 * only from here on. */
	dp_ccs_set_output(c->ccs, c->common.out);
	if (!(c->ws = dp_ws_new(&wo, &err))) {
		dp_err("%s", dp_buf_str(&err));
		dp_buf_free(&err);
		return DP_EX_SOFTWARE;
	}
	dp_backoff_init(&c->backoff, c->retry_base_ms, RETRY_CAP_MS, 0.5, 0);
	dp_progress_init(&c->prog, c->progress);
	return 0;
}

static int
setup_series(struct fetch *c)
{
	c->nser = c->nf * c->nt;
	c->ser = calloc(c->nser, sizeof(*c->ser));
	if (!c->ser)
		return -1;
	for (size_t i = 0; i < c->nf; i++) {
		for (size_t j = 0; j < c->nt; j++) {
			struct series *s = &c->ser[i * c->nt + j];
			s->fsym = c->fsyms[i];
			s->tsym = c->tsyms[j];
			if (c->state)
				s->have_cursor = dp_cc_state_get(c->state, s->fsym, s->tsym, c->iv,
				                                 c->market, &s->cursor) == 1;
		}
	}
	return 0;
}

static int
open_rest(struct fetch *c)
{
	struct dp_buf err = DP_BUF_INIT;
	size_t n;

	if (!(c->base_url = strdup(c->base_url_arg))) {
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	for (n = strlen(c->base_url); n > 0 && c->base_url[n - 1] == '/'; n--)
		c->base_url[n - 1] = '\0';
	if (dp_http_global_init() < 0) {
		dp_err("cannot initialize libcurl");
		return DP_EX_SOFTWARE;
	}
	c->http_init = true;
	struct dp_http_opts ho = {
		.user_agent = PROG "/" DP_VERSION,
		.timeout_ms = (long)c->timeout_ms,
		.connect_timeout_ms = (long)c->connect_timeout_ms,
		.max_body = 0,
		.cancel = &dp_sig_stop,
	};
	if (!(c->http = dp_http_new(&ho, &err))) {
		dp_err("%s", dp_buf_str(&err));
		dp_buf_free(&err);
		return DP_EX_SOFTWARE;
	}
	if ((c->cmd == CMD_PRICE && dp_cc_prices_init(&c->prices, c->fsyms, c->nf, c->tsyms,
	                                              c->nt) < 0) ||
	    (c->cmd == CMD_OHLCV && setup_series(c) < 0)) {
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	dp_backoff_init(&c->backoff, c->retry_base_ms, RETRY_CAP_MS, 0.5, 0);
	return 0;
}

static int
open_fetch(void *ctx)
{
	struct fetch *c = ctx;
	struct dp_buf err = DP_BUF_INIT;
	char *key = NULL;
	int status;

	/* Never from the command line; see dp_secret_check_option(). */
	status = dp_secret_load(c->key_file, "CRYPTOCOMPARE_API_KEY", "api key", &key, &err);
	if (status) {
		dp_err("%s", dp_buf_str(&err));
		dp_buf_free(&err);
		return status;
	}
	if (c->state_path && (status = dp_cc_state_open(c->state_path, &c->state,
	                                                &c->lock_fd)) != 0)
		goto out;
	status = c->cmd == CMD_STREAM ? open_stream(c) : open_rest(c);
	if (status == 0 && key)
		status = set_key(c, key);
out:
	dp_secret_free(key);
	return status;
}

static void
free_page(struct fetch *c)
{
	dp_cc_candles_free(c->page, c->npage);
	c->page = NULL;
	c->npage = 0;
}

static void
close_fetch(void *ctx)
{
	struct fetch *c = ctx;

	free_page(c);
	dp_cc_series_clear(&c->plan);
	dp_cc_reply_free(&c->reply);
	dp_http_free(c->http);
	if (c->http_init)
		dp_http_global_cleanup();
	dp_ws_free(c->ws);
	dp_ccs_free(c->ccs);
	dp_cc_state_free(c->state);
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	free(c->ser);
	dp_cc_prices_free(&c->prices);
	dp_buf_free(&c->url);
	dp_buf_free(&c->batch);
	dp_buf_free(&c->msg);
	dp_cc_symbols_free(c->fsyms, c->nf);
	dp_cc_symbols_free(c->tsyms, c->nt);
	free(c->base_url);
}

static unsigned
io_fetch(void *ctx)
{
	const struct fetch *c = ctx;

	return DP_CMD_STDOUT | (c->cmd != CMD_STREAM && !c->every_ms ? DP_CMD_BOUNDED : 0);
}

/* A signal came in a one-shot run (core/frame.h): after its end, or what it left. */
static bool
interrupted_fetch(void *ctx, int status, struct dp_buf *said)
{
	const struct fetch *c = ctx;

	(void)status;
	if (c->finished)
		return false;
	if (c->cmd == CMD_PRICE)
		dp_buf_msgf(said, "the fetch was not complete: no prices printed");
	else
		dp_buf_msgf(said, "the fetch was not complete: %zu of %zu series not fetched to "
		            "their end%s", c->nser - c->cur, c->nser,
		            c->state ? " (the state file has the rest to do)" : "");
	return true;
}

static int
start_event(void *ctx)
{
	const struct fetch *c = ctx;

	return c->cmd == CMD_STREAM ? EV_STREAM : EV_START;
}

/* ------------------------------------------------------------------ */
/* Planning a poll */

/* ohlcv: plan series c->cur and the ones after it until one needs requests. */
static bool
next_series(struct fetch *c)
{
	for (; c->cur < c->nser; c->cur++) {
		struct series *s = &c->ser[c->cur];
		struct dp_cc_window w = {
			.now_ms = c->poll_ms, .settle_ms = c->settle_ms,
			.has_cursor = s->have_cursor, .cursor = s->cursor,
			.has_since = c->since_arg != NULL, .since_ms = c->since_ms,
			.has_until = c->until_arg != NULL, .until_ms = c->until_ms,
			.include_open = c->include_open, .page_size = (unsigned)c->page_size,
		};
		if (dp_cc_series_plan(&c->plan, c->iv, &w)) {
			c->series_done = false;
			return true;
		}
		dp_info("%s/%s %s: nothing new yet", s->fsym, s->tsym, dp_cc_interval_label(c->iv));
	}
	return false;
}

/* The poll is over: the event that ends it. */
static int
end_poll(struct fetch *c)
{
	c->polls++;
	dp_cc_series_clear(&c->plan);
	if (c->every_ms > 0 && (c->count == 0 || c->polls < c->count))
		return EV_POLL_DONE;
	c->finished = true;
	return c->partial || c->prices.missing ? EV_FINISHED_PARTIAL : EV_FINISHED;
}

/* After an answer was handled: more requests in this poll, or its end. */
static int
next_step(struct fetch *c)
{
	if (c->cmd == CMD_PRICE)
		return dp_cc_prices_next(&c->prices) ? EV_MORE : end_poll(c);
	if (!c->series_done)
		return EV_MORE;
	c->cur++;
	return next_series(c) ? EV_MORE : end_poll(c);
}

/* ------------------------------------------------------------------ */
/* Requests */

static int
fail(struct fetch *c, int ev, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Record a failure of the current request; returns ev. */
static int
fail(struct fetch *c, int ev, int status, const char *fmt, ...)
{
	va_list ap;

	dp_buf_reset(&c->msg);
	va_start(ap, fmt);
	dp_buf_vmsgf(&c->msg, fmt, ap);
	va_end(ap);
	c->fail_status = status;
	c->fail_transient = ev == EV_TRANSIENT;
	return ev;
}

/* The event for a signal: the end of --every, an incomplete one-shot run. */
static int
stopped(struct fetch *c)
{
	dp_info("stopping on signal %d", (int)dp_sig_stop);
	if (c->every_ms > 0)
		return EV_STOP;
	return EV_INTERRUPT;        /* said by dp_cmd_main, with its status (core/frame.h) */
}

static int
build_url(struct fetch *c)
{
	int64_t to;
	unsigned limit;

	dp_buf_reset(&c->url);
	if (c->cmd == CMD_PRICE)
		return dp_cc_prices_url(&c->prices, &c->url, c->base_url, c->market);
	dp_cc_series_request(&c->plan, &to, &limit);
	return dp_cc_url_histo(&c->url, c->base_url, c->iv, c->ser[c->cur].fsym,
	                       c->ser[c->cur].tsym, c->market, limit, to);
}

/* Make the planned request; returns what came of it. */
static int
act_fetch(struct dp_fsm *m, void *ctx)
{
	struct fetch *c = ctx;
	struct dp_buf err = DP_BUF_INIT;
	int ev;

	(void)m;
	if (dp_sig_stop)
		return stopped(c);
	free_page(c);
	if (build_url(c) < 0)
		return fail(c, EV_FAILED, DP_EX_SOFTWARE, "out of memory");
	dp_debug("GET %s (%s api key)", c->url.data, c->have_key ? "with" : "without");
	switch (dp_cc_get(c->http, c->url.data, &c->reply)) {
	case DP_CC_ANSWER:
		dp_buf_reset(&c->batch);
		ev = EV_RESPONSE;
		if ((c->cmd == CMD_PRICE ? dp_cc_prices_take(&c->prices, c->reply.root, c->raw,
		                                             &c->batch, &err)
		                         : dp_cc_candles(c->reply.root, c->iv, c->raw, &c->page,
		                                         &c->npage, &err)) < 0)
			ev = fail(c, EV_FAILED, DP_EX_DATAERR, "malformed response from %s: %s",
			          c->url.data, dp_buf_str(&err));
		break;
	case DP_CC_MISSING:
		/* Kept for act_missing, which says which pairs it concerns. */
		ev = fail(c, EV_MISSING, DP_EX_PARTIAL, "%s", dp_buf_str(&c->reply.msg));
		break;
	case DP_CC_RETRY:
		ev = fail(c, EV_TRANSIENT, c->reply.status, "%s", dp_buf_str(&c->reply.msg));
		break;
	default:
		ev = c->reply.cancelled ? stopped(c) : fail(c, EV_FAILED, c->reply.status, "%s",
		                                             dp_buf_str(&c->reply.msg));
		break;
	}
	if (ev == EV_RESPONSE || ev == EV_MISSING)
		dp_backoff_reset(&c->backoff);
	dp_buf_free(&err);
	return ev;
}

/* ------------------------------------------------------------------ */
/* Printing */

/* A failed write: the reader went away (closed), or a real error (failed). */
static int
out_failed(struct fetch *c)
{
	if (dp_out_closed(c->common.out))
		return EV_CLOSED;
	dp_cmd_stdout_failed(dp_out_error(c->common.out));
	dp_fsm_fail(&c->fsm, DP_EX_IOERR);
	return EV_FAILED;
}

/*
 * Print candles k[0..n) (ascending), flush, then commit the newest closed
 * one as the series' cursor: in memory and, with --state, on disk.
 * Returns 0 or the event that ends the run.
 */
static int
emit_batch(struct fetch *c, const struct dp_cc_candle *k, size_t n)
{
	struct series *s = &c->ser[c->cur];
	struct dp_buf err = DP_BUF_INIT;
	int r = dp_cc_series_write(&c->plan, c->common.out, s->fsym, s->tsym, c->raw, k, n,
	                           &s->have_cursor, &s->cursor);

	if (r == -1)
		return out_failed(c);
	if (r == 0 || (r == 1 && !c->state))
		return 0;
	if (r == -2 || dp_cc_state_set(c->state, s->fsym, s->tsym, c->iv, c->market,
	                               s->cursor) < 0)
		dp_buf_msgf(&err, "out of memory");
	else if (dp_cc_state_save(c->state, c->state_path, &err) == 0)
		return 0;
	dp_err("%s", dp_buf_str(&err));
	dp_buf_free(&err);
	dp_fsm_fail(&c->fsm, r == -2 ? DP_EX_SOFTWARE : DP_EX_IOERR);
	return EV_FAILED;
}

static int
emit_candles(struct fetch *c)
{
	const struct series *s = &c->ser[c->cur];
	struct dp_cc_candle *k;
	size_t n;
	bool done;
	int ev = 0;
	int64_t lo = c->plan.lo;
	char t[DP_TIME_BUFSZ];

	if (dp_cc_series_take(&c->plan, c->page, c->npage, &k, &n, &done) < 0) {
		c->page = NULL;
		dp_err("out of memory");
		dp_fsm_fail(&c->fsm, DP_EX_SOFTWARE);
		return EV_FAILED;
	}
	c->page = NULL;
	c->npage = 0;
	if (c->plan.forward && c->plan.no_newer)
		dp_info("%s/%s: the API has no candles from %s on", s->fsym, s->tsym,
		        dp_time_format(lo * 1000, t));
	if (!c->plan.forward && done)
		dp_info("%s/%s: %zu candles, the oldest from %s", s->fsym, s->tsym, n,
		        n ? dp_time_format(k[0].time * 1000, t) : "-");
	/* Backward collections come at once: print and commit them a page at a time. */
	for (size_t first = 0; first < n && !ev; first += c->page_size)
		ev = emit_batch(c, k + first, n - first < c->page_size ? n - first : c->page_size);
	dp_cc_candles_free(k, n);
	c->series_done = done;
	return ev;
}

static int
act_emit(struct dp_fsm *m, void *ctx)
{
	struct fetch *c = ctx;
	int ev;

	(void)m;
	if (c->cmd == CMD_PRICE) {
		if ((c->batch.len && dp_out_write(c->common.out, c->batch.data, c->batch.len) < 0) ||
		    dp_out_flush(c->common.out) < 0)
			return out_failed(c);
		return next_step(c);
	}
	if ((ev = emit_candles(c)) != 0)
		return ev;
	return next_step(c);
}

/*
 * The API said a pair or market does not exist: a data problem of that
 * pair only.  Report it, print the others.
 */
static int
act_missing(struct dp_fsm *m, void *ctx)
{
	struct fetch *c = ctx;

	(void)m;
	c->partial = true;
	if (c->cmd == CMD_OHLCV) {
		const struct series *s = &c->ser[c->cur];
		dp_warn("no candles for %s/%s %s: %s", s->fsym, s->tsym,
		        dp_cc_interval_label(c->iv), dp_buf_str(&c->msg));
		c->series_done = true;
		return next_step(c);
	}
	/* After a refusal, never all pairs at once again in this poll. */
	dp_cc_prices_refused(&c->prices, dp_buf_str(&c->reply.api_message),
	                     dp_buf_str(&c->msg));
	return next_step(c);
}

/* ------------------------------------------------------------------ */
/* The other actions */

static int
act_poll(struct dp_fsm *m, void *ctx)
{
	struct fetch *c = ctx;

	(void)m;
	c->poll_ms = c->now_arg ? c->now_ms : dp_time_now_ms();
	dp_backoff_reset(&c->backoff);
	dp_info("poll %lu started", c->polls + 1);
	c->cur = 0;
	c->partial = false;
	if (c->cmd == CMD_PRICE)
		dp_cc_prices_start(&c->prices);      /* every pair in one request */
	else if (!next_series(c))
		return end_poll(c);
	return act_fetch(m, c);
}

static int
act_error(struct dp_fsm *m, void *ctx)
{
	struct fetch *c = ctx;
	unsigned tries = c->backoff.attempts;

	if (c->fail_transient && tries < c->max_retries)
		return EV_RETRY;
	if (c->fail_transient && c->max_retries > 0)
		dp_buf_msgf(&c->msg, " (gave up after %u %s)", tries, tries == 1 ? "retry" : "retries");
	if (c->every_ms > 0 && (c->count == 0 || c->polls + 1 < c->count)) {
		dp_err("poll %lu failed: %s", c->polls + 1, dp_buf_str(&c->msg));
		c->polls++;
		dp_cc_series_clear(&c->plan);
		return EV_POLL_FAILED;
	}
	dp_err("%s", dp_buf_str(&c->msg));
	dp_fsm_fail(m, c->fail_status);
	return EV_GIVE_UP;
}

static int
act_backoff(struct dp_fsm *m, void *ctx)
{
	struct fetch *c = ctx;
	int64_t d = dp_backoff_next(&c->backoff, c->reply.retry_after_ms);
	char dur[48], asked_for[48];

	(void)m;
	if (c->reply.retry_after_ms > d)
		dp_info("%s; retry %u of %" PRIu64 " in %s (the server asks for %s)",
		        dp_buf_str(&c->msg), c->backoff.attempts, c->max_retries,
		        dp_duration_format(d, dur), dp_duration_format(c->reply.retry_after_ms, asked_for));
	else
		dp_info("%s; retry %u of %" PRIu64 " in %s", dp_buf_str(&c->msg),
		        c->backoff.attempts, c->max_retries, dp_duration_format(d, dur));
	if (dp_backoff_sleep(d, &dp_sig_stop) < 0)
		return stopped(c);
	return EV_WAKE;
}

/* Sleep until the next poll: a wall-clock multiple of --every, plus --settle for candles. */
static int
act_wait(struct dp_fsm *m, void *ctx)
{
	struct fetch *c = ctx;
	int64_t offset = c->cmd == CMD_OHLCV ? c->settle_ms % c->every_ms : 0;
	/* The wall clock is past 1970: plain division rounds down. */
	int64_t next = ((dp_time_now_ms() - offset) / c->every_ms + 1) * c->every_ms + offset;
	char t[DP_TIME_BUFSZ];

	(void)m;
	dp_info("next poll at %s", dp_time_format(next, t));
	if (dp_backoff_sleep_until(next, &dp_sig_stop) < 0)
		return stopped(c);
	return EV_TICK;
}


/* ------------------------------------------------------------------ */
/* Streaming */

static int
stream_fail(struct fetch *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
stream_fail(struct fetch *c, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dp_vlog(DP_LOG_QUIET, fmt, ap);
	va_end(ap);
	dp_fsm_fail(&c->fsm, status);
	return EV_FAILED;
}

static int
act_connect(struct dp_fsm *m, void *ctx)
{
	struct fetch *c = ctx;
	struct dp_buf err = DP_BUF_INIT;
	int r, ev;
	long st;

	(void)m;
	dp_info("connecting to %s (%s api key)", c->stream_url, c->have_key ? "with" : "without");
	r = dp_ws_connect(c->ws, c->stream_url, &err);
	st = dp_ws_http_status(c->ws);
	if (r == DP_WS_OK) {
		c->open = true;
		ev = EV_CONNECTED;
	} else if (r == DP_WS_CANCELLED) {
		dp_info("stopping on signal %d", (int)dp_sig_stop);
		ev = EV_STOP;
	} else if (r == DP_WS_REFUSED && (st == 401 || st == 403)) {
		ev = stream_fail(c, DP_EX_NOPERM, "%s: the streamer wants a valid key",
		                 dp_buf_str(&err));
	} else if (r == DP_WS_FAILED || (r == DP_WS_REFUSED && (st == 408 || st == 429 ||
	                                                        st >= 500))) {
		ev = fail(c, EV_LOST, DP_EX_UNAVAILABLE, "%s", dp_buf_str(&err));
	} else {
		ev = stream_fail(c, r == DP_WS_REFUSED ? DP_EX_UNAVAILABLE : DP_EX_SOFTWARE, "%s",
		                 dp_buf_str(&err));
	}
	dp_buf_free(&err);
	return ev;
}

/* Messages until the engine, the server or a signal decides (dp_ccs_pump). */
static int
pump(struct fetch *c, bool subscribing)
{
	struct dp_buf why = DP_BUF_INIT;
	int ev;

	switch (dp_ccs_pump(c->ccs, c->ws, subscribing, c->idle_ms, &c->prog, &why)) {
	case DP_CCS_END_SUBSCRIBED:
		ev = EV_SUBSCRIBED;
		break;
	case DP_CCS_END_LOST:
		ev = fail(c, EV_LOST, DP_EX_UNAVAILABLE, "%s", dp_buf_str(&why));
		break;
	case DP_CCS_END_REFUSED:
		ev = stream_fail(c, DP_EX_PARTIAL, "every subscription was refused");
		break;
	case DP_CCS_END_UNAUTHORIZED:
		ev = stream_fail(c, DP_EX_NOPERM, "the streamer refused the key: %s",
		                 dp_buf_str(&why));
		break;
	case DP_CCS_END_DONE:
		ev = EV_FINISHED;
		break;
	case DP_CCS_END_OUTPUT:
		ev = out_failed(c);
		break;
	case DP_CCS_END_STOPPED:
		dp_info("stopping on signal %d", (int)dp_sig_stop);
		ev = EV_STOP;
		break;
	default:
		ev = stream_fail(c, DP_EX_SOFTWARE, "out of memory");
		break;
	}
	dp_buf_free(&why);
	return ev;
}

static int
act_subscribe(struct dp_fsm *m, void *ctx)
{
	struct fetch *c = ctx;
	struct dp_buf sub = DP_BUF_INIT, err = DP_BUF_INIT;
	int ev = -1;

	(void)m;
	if (dp_ccs_connected(c->ccs, &sub) < 0)
		ev = stream_fail(c, DP_EX_SOFTWARE, "out of memory");
	else if (dp_ws_send(c->ws, sub.data, sub.len, &err) < 0)
		ev = fail(c, EV_LOST, DP_EX_UNAVAILABLE, "%s", dp_buf_str(&err));
	dp_buf_free(&sub);
	dp_buf_free(&err);
	return ev >= 0 ? ev : pump(c, true);
}

static int
act_stream(struct dp_fsm *m, void *ctx)
{
	struct fetch *c = ctx;

	(void)m;
	/* The connection works: the next loss starts the backoff anew. */
	dp_backoff_reset(&c->backoff);
	return pump(c, false);
}

static int
act_reconnect(struct dp_fsm *m, void *ctx)
{
	struct fetch *c = ctx;
	unsigned tries = c->backoff.attempts;
	int64_t d;
	char dur[48];

	(void)m;
	if (c->open) {
		dp_ccs_lost(c->ccs, dp_time_now_ms(), dp_buf_str(&c->msg));
		c->open = false;
	}
	if (tries >= c->max_retries) {
		if (tries)
			dp_buf_msgf(&c->msg, " (gave up after %u %s)", tries,
			            tries == 1 ? "reconnect" : "reconnects");
		dp_err("%s", dp_buf_str(&c->msg));
		dp_fsm_fail(&c->fsm, DP_EX_UNAVAILABLE);
		return EV_GIVE_UP;
	}
	d = dp_backoff_next(&c->backoff, 0);
	dp_warn("%s; connecting again in %s", dp_buf_str(&c->msg), dp_duration_format(d, dur));
	if (dp_backoff_sleep(d, &dp_sig_stop) < 0) {
		dp_info("stopping on signal %d", (int)dp_sig_stop);
		return EV_STOP;
	}
	return EV_WAKE;
}

/* After the machine: the stream's summary, and its exit status. */
static int
finish_fetch(void *ctx, int status)
{
	struct fetch *c = ctx;
	const struct dp_ccs_stats *s;
	char extra[200];

	if (c->cmd != CMD_STREAM || !c->ccs)
		return status;
	dp_ccs_finish(c->ccs, dp_time_now_ms());
	s = dp_ccs_stats(c->ccs);
	dp_progress_tick(&c->prog, "records", s->records,
	                 dp_ccs_stats_line(c->ccs, extra, sizeof(extra)), true);
	dp_info("%llu records from %llu messages; %llu duplicate trades, %llu skipped "
	        "messages, %llu gaps, %zu refused subscriptions",
	        (unsigned long long)s->records, (unsigned long long)s->messages,
	        (unsigned long long)s->duplicates, (unsigned long long)s->malformed,
	        (unsigned long long)s->gaps, s->refused);
	/* Data the server sent that could not be read was lost: say so at the end too. */
	if (status == DP_EX_OK || status == DP_EX_PARTIAL) {
		if (s->malformed)
			return DP_EX_DATAERR;
		if (s->refused)
			return DP_EX_PARTIAL;
	}
	return status;
}

/* ------------------------------------------------------------------ */

static const struct dp_cmd cmd = {
	.name = PROG,
	.libs = dp_cc_libs,
	.usage = usage,
	.machine = &machine,
	.start = EV_START,
	.start_event = start_event,
	.outbuf = (size_t)1 << 20,
	.parse = parse_options,
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
		.lock_fd = -1,
		.reply = DP_CC_REPLY_INIT,
	};

	return dp_cmd_main(&cmd, &c, &c.common, &c.fsm, argc, argv);
}
