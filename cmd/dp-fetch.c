/*
 * dp-fetch -- CryptoCompare REST API -> NDJSON on stdout.
 *
 *   dp-fetch price --fsyms BTC,ETH --tsyms USD,EUR
 *   dp-fetch ohlcv --fsym BTC --tsym USD --interval hour --state FILE
 *
 * One poll fetches everything asked for: prices in one request (split up
 * when the API refuses it for a pair that does not exist), candles series
 * by series in as many pages as lib/ccseries.c plans.  Without --every
 * there is one poll (for cron); with it, polls repeat on wall-clock
 * boundaries.
 *
 * The state machine does the work: each action makes one request, prints
 * one answer, decides about one failure or waits, and returns the event
 * that follows.  With --state every printed batch is flushed before the
 * state file moves past it (see the man page, GUARANTEES).
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

#include "backoff.h"
#include "buf.h"
#include "cc.h"
#include "cli.h"
#include "cmd.h"
#include "exit.h"
#include "fsm.h"
#include "http.h"
#include "log.h"
#include "out.h"
#include "secret.h"
#include "sig.h"
#include "timefmt.h"

#define PROG "dp-fetch"
#define RETRY_CAP_MS 30000
#define SETTLE_DEFAULT "5s"         /* for --help; the same as ... */
#define SETTLE_DEFAULT_MS 5000     /* ... this */
#define SETTLE_MAX_MS 3600000   /* keeps the page that reaches the present in one request */

/* ------------------------------------------------------------------ */
/* The state machine */

enum state {
	ST_IDLE, ST_FETCHING, ST_EMITTING, ST_ERROR, ST_BACKOFF, ST_WAITING,
	ST_DONE, ST_PARTIAL, ST_FAILED, ST_INTERRUPTED, NSTATES
};

static const char *const state_names[NSTATES] = {
	"idle", "fetching", "emitting", "error", "backoff", "waiting",
	"done", "partial", "failed", "interrupted",
};

enum event {
	EV_START, EV_RESPONSE, EV_MISSING, EV_TRANSIENT, EV_FAILED, EV_RETRY, EV_WAKE,
	EV_MORE, EV_POLL_DONE, EV_POLL_FAILED, EV_TICK, EV_FINISHED, EV_FINISHED_PARTIAL,
	EV_GIVE_UP, EV_CLOSED, EV_INTERRUPT, EV_STOP, NEVENTS
};

static const char *const event_names[NEVENTS] = {
	"start", "response", "missing", "transient", "failed", "retry", "wake",
	"more", "poll_done", "poll_failed", "tick", "finished", "finished_partial",
	"give_up", "closed", "interrupt", "stop",
};

static int act_poll(struct dp_fsm *m, void *ctx);
static int act_fetch(struct dp_fsm *m, void *ctx);
static int act_emit(struct dp_fsm *m, void *ctx);
static int act_missing(struct dp_fsm *m, void *ctx);
static int act_error(struct dp_fsm *m, void *ctx);
static int act_backoff(struct dp_fsm *m, void *ctx);
static int act_wait(struct dp_fsm *m, void *ctx);

/*
 * interrupt: a signal in a one-shot run, which is then incomplete (75);
 * stop: a signal with --every, the normal way to end it (0).
 */
static const struct dp_fsm_row rows[] = {
	/* state        event                next            action */
	{ ST_IDLE,      EV_START,            ST_FETCHING,    act_poll },
	{ ST_FETCHING,  EV_RESPONSE,         ST_EMITTING,    act_emit },
	{ ST_FETCHING,  EV_MISSING,          ST_EMITTING,    act_missing },
	{ ST_FETCHING,  EV_TRANSIENT,        ST_ERROR,       act_error },
	{ ST_FETCHING,  EV_FAILED,           ST_ERROR,       act_error },
	{ ST_FETCHING,  EV_POLL_DONE,        ST_WAITING,     act_wait },
	{ ST_FETCHING,  EV_FINISHED,         ST_DONE,        NULL },
	{ ST_FETCHING,  EV_INTERRUPT,        ST_INTERRUPTED, NULL },
	{ ST_FETCHING,  EV_STOP,             ST_DONE,        NULL },
	{ ST_EMITTING,  EV_MORE,             ST_FETCHING,    act_fetch },
	{ ST_EMITTING,  EV_POLL_DONE,        ST_WAITING,     act_wait },
	{ ST_EMITTING,  EV_FINISHED,         ST_DONE,        NULL },
	{ ST_EMITTING,  EV_FINISHED_PARTIAL, ST_PARTIAL,     NULL },
	{ ST_EMITTING,  EV_CLOSED,           ST_DONE,        NULL },
	{ ST_EMITTING,  EV_FAILED,           ST_FAILED,      NULL },
	{ ST_ERROR,     EV_RETRY,            ST_BACKOFF,     act_backoff },
	{ ST_ERROR,     EV_POLL_FAILED,      ST_WAITING,     act_wait },
	{ ST_ERROR,     EV_GIVE_UP,          ST_FAILED,      NULL },
	{ ST_BACKOFF,   EV_WAKE,             ST_FETCHING,    act_fetch },
	{ ST_BACKOFF,   EV_INTERRUPT,        ST_INTERRUPTED, NULL },
	{ ST_BACKOFF,   EV_STOP,             ST_DONE,        NULL },
	{ ST_WAITING,   EV_TICK,             ST_FETCHING,    act_poll },
	{ ST_WAITING,   EV_STOP,             ST_DONE,        NULL },
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

enum cmd { CMD_NONE, CMD_PRICE, CMD_OHLCV };

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
	{ NULL, 0, NULL, 0 },
};

#define GIVEN(c, opt) ((c)->given[(opt) - DP_OPT_CMD])

/* ohlcv: one pair, and its cursor across polls. */
struct series {
	const char *fsym, *tsym;     /* borrowed from the options */
	bool have_cursor;
	int64_t cursor;              /* open time of the last closed candle printed */
};

/* price: what became of a pair in this poll. */
enum pair { PAIR_WANTED, PAIR_DONE, PAIR_MISSING };

#define NONE ((size_t)-1)

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

	/* resources */
	struct dp_http *http;
	bool http_init;
	bool have_key;
	struct dp_cc_state *state;          /* NULL without --state */
	int lock_fd;
	struct series *ser;                 /* ohlcv: nf * nt */
	size_t nser;
	enum pair *pairs;                   /* price: nf * nt, row per fsym */
	bool *single;                       /* price: per fsym, ask pair by pair */
	const char **req_tsyms;             /* price: the tsyms of one request */
	struct dp_backoff backoff;

	/* the poll in progress */
	unsigned long polls;                /* polls finished, good or bad */
	int64_t poll_ms;                    /* the clock of this poll */
	int poll_status;                    /* DP_EX_PARTIAL once something is missing */
	size_t cur;                         /* ohlcv: the series; price: the fsym asked, NONE: all */
	size_t cur_t;                       /* price: the one tsym asked, NONE: several */
	struct dp_cc_series plan;           /* ohlcv: the series' pages */
	bool series_done;

	/* the current request */
	struct dp_buf url;
	struct dp_http_resp resp;
	struct dp_cc_candle *page;          /* ohlcv: the answer */
	size_t npage;
	struct dp_buf batch;                /* price: the records of the answer */
	struct dp_buf api_msg;              /* the API's Message of an error */
	struct dp_buf rec;                  /* scratch for one record */

	/* the last failure */
	int fail_status;
	bool fail_transient;
	int64_t retry_after_ms;
	struct dp_buf msg;
};

static void
usage(FILE *fp)
{
	fputs("usage: dp-fetch price --fsyms LIST --tsyms LIST [options]\n"
	      "       dp-fetch ohlcv --fsym LIST --tsym LIST --interval INTERVAL [options]\n"
	      "\n"
	      "Fetch market data from the CryptoCompare API and print one JSON record per\n"
	      "line on stdout.\n"
	      "\n"
	      "Commands:\n"
	      "  price                   current prices: one record per FSYM/TSYM pair\n"
	      "  ohlcv                   candles, oldest first; only closed ones by default\n"
	      "\n"
	      "Selection:\n"
	      "      --fsyms LIST        base symbols, comma-separated (BTC,ETH); or --fsym\n"
	      "      --tsyms LIST        quote symbols, comma-separated (USD,EUR); or --tsym\n"
	      "      --market NAME       exchange to ask (the API's e parameter; default CCCAGG)\n"
	      "      --interval INTERVAL ohlcv: 1m, 5m, 15m, 30m, 1h, 2h, 4h, 12h, 1d, 3d or 1w\n"
	      "                          (also minute, hour, day); aligned to the epoch\n"
	      "      --since TIME        ohlcv: first candle wanted (default: all history the\n"
	      "                          API has; 7 days for minutes)\n"
	      "      --until TIME        ohlcv: only candles that open before TIME\n"
	      "      --include-open      ohlcv: also print the candles that are still open\n"
	      "      --settle DURATION   ohlcv: a candle is closed DURATION after its end\n"
	      "                          (default " SETTLE_DEFAULT ", at most 1h)\n"
	      "      --state FILE        ohlcv: remember the last candle printed per series and\n"
	      "                          print only newer ones (for cron; see the man page\n"
	      "                          before piping into dp-publish)\n"
	      "      --raw               print the API's own objects instead of records\n"
	      "  TIME is RFC 3339, epoch seconds or milliseconds, 'now', or -DURATION (-2h).\n"
	      "\n"
	      "Repetition:\n"
	      "      --every DURATION    poll forever, aligned to the wall clock (1m: at :00;\n"
	      "                          ohlcv: --settle later)\n"
	      "      --count N           with --every: stop after N polls\n"
	      "\n"
	      "API access:\n"
	      "      --base-url URL      API server (default $DP_CRYPTOCOMPARE_URL, else\n"
	      "                          " DP_CC_DEFAULT_URL ")\n"
	      "      --api-key-file FILE read the API key from FILE (default\n"
	      "                          $CRYPTOCOMPARE_API_KEY; never on the command line)\n"
	      "      --timeout DURATION  time limit of one request (default 30s)\n"
	      "      --connect-timeout DURATION  time limit to connect (default 10s)\n"
	      "      --max-retries N     retries of a request that failed for a transient\n"
	      "                          reason: rate limit, HTTP 5xx, network (default 5)\n"
	      "      --retry-base DURATION  first retry delay, doubled per retry up to 30s,\n"
	      "                          with jitter (default 500ms)\n"
	      "      --page-size N       ohlcv: candles per request, 1..2000 (default 2000)\n"
	      "      --now TIME          take TIME as the current time (tests, replays)\n", fp);
	dp_cli_help_common(fp, false);
}

static bool
every_mode(const struct fetch *c)
{
	return c->every_ms > 0;
}

/* ------------------------------------------------------------------ */
/* Parsing and validating options */

/* Split a comma-separated symbol list; symbols are non-empty and plain. */
static int
split_syms(const char *name, const char *arg, char ***out, size_t *n)
{
	char *copy = strdup(arg), *save = NULL;
	char **v = NULL;
	size_t cnt = 0;

	if (!copy) {
		dp_err("out of memory");
		return -1;
	}
	if (!*arg || arg[strlen(arg) - 1] == ',' || *arg == ',' || strstr(arg, ",,")) {
		dp_err("invalid %s '%s': expected symbols separated by commas", name, arg);
		goto fail;
	}
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (const char *p = tok; *p; p++) {
			if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '/' || *p == '&' ||
			    *p == '?' || *p == '#') {
				dp_err("invalid %s '%s': symbols are letters, digits and the like, "
				       "without spaces", name, arg);
				goto fail;
			}
		}
		if (strlen(tok) > 64) {
			dp_err("invalid %s: symbol '%.20s...' is too long", name, tok);
			goto fail;
		}
		char **p = realloc(v, (cnt + 1) * sizeof(*v));
		if (!p || !(p[cnt] = strdup(tok))) {
			v = p ? p : v;
			dp_err("out of memory");
			goto fail;
		}
		v = p;
		cnt++;
	}
	free(copy);
	*out = v;
	*n = cnt;
	return 0;
fail:
	for (size_t i = 0; i < cnt; i++)
		free(v[i]);
	free(v);
	free(copy);
	return -1;
}

static void
free_syms(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* TIME: RFC 3339, epoch s/ms, "now", or -DURATION relative to now. */
static int
parse_time(const char *name, const char *s, int64_t now, int64_t *ms)
{
	const char *why;
	int64_t d;

	if (strcmp(s, "now") == 0) {
		*ms = now;
		return 0;
	}
	if (s[0] == '-') {
		if (dp_parse_duration(name, s + 1, &d) < 0)
			return -1;
		*ms = now - d;
		return 0;
	}
	if (dp_time_parse_why(s, ms, &why) == 0)
		return 0;
	dp_err("invalid %s '%s': %s; expected RFC 3339, epoch seconds or milliseconds, "
	       "'now' or -DURATION", name, s, why);
	return -1;
}

static int
check_plain(const char *name, const char *s)
{
	if (!*s || strlen(s) > 64)
		goto bad;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			goto bad;
	return 0;
bad:
	dp_err("invalid %s '%s': expected a name without spaces", name, s);
	return -1;
}

/*
 * getopt_long takes "--api-key=..." as an abbreviation of --api-key-file:
 * someone is passing the key itself.  Refuse every abbreviation, and never
 * echo the value.
 */
static int
check_key_option(char **argv)
{
	const char *tok = argv[optind - 1];

	if (!(tok[0] == '-' && tok[1] == '-' && strchr(tok, '=')))
		tok = optind >= 2 ? argv[optind - 2] : "";
	if (strncmp(tok, "--api-key-file", 14) != 0 || (tok[14] != '\0' && tok[14] != '=')) {
		dp_err("unknown or incomplete option '--api-key': the key is read "
		       "only from $CRYPTOCOMPARE_API_KEY or --api-key-file FILE");
		return -1;
	}
	return 0;
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
		case OPT_STATE:
			if (!*optarg) {
				dp_err("invalid --state: empty file name");
				return -1;
			}
			c->state_path = optarg;
			break;
		case OPT_API_KEY_FILE:
			if (check_key_option(argv) < 0)
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
		case OPT_RETRY_BASE:
			if (dp_parse_duration("--retry-base", optarg, &c->retry_base_ms) < 0)
				return -1;
			break;
		case OPT_MAX_RETRIES:
			if (dp_parse_u64("--max-retries", optarg, 0, 100, &c->max_retries) < 0)
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

/* The base URL from --base-url, $DP_CRYPTOCOMPARE_URL or the default. */
static int
check_base_url(struct fetch *c)
{
	const char *url = c->base_url_arg, *env = getenv("DP_CRYPTOCOMPARE_URL");

	if (!url)
		url = env && *env ? env : DP_CC_DEFAULT_URL;
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		dp_err("invalid base URL '%s': expected http:// or https://", url);
		return -1;
	}
	for (const char *p = url; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#') {
			dp_err("invalid base URL '%s': no spaces, query or fragment", url);
			return -1;
		}
	}
	c->base_url_arg = url;
	return 0;
}

/* The one place where option values and combinations are checked. */
static int
validate(void *ctx)
{
	static const struct { int opt; const char *name; } ohlcv_only[] = {
		{ OPT_INTERVAL, "--interval" }, { OPT_SINCE, "--since" },
		{ OPT_UNTIL, "--until" }, { OPT_INCLUDE_OPEN, "--include-open" },
		{ OPT_SETTLE, "--settle" }, { OPT_STATE, "--state" },
		{ OPT_PAGE_SIZE, "--page-size" },
	};
	struct fetch *c = ctx;

	if (c->nargs < 1) {
		dp_err("missing command: price or ohlcv");
		return -1;
	}
	if (strcmp(c->args[0], "price") == 0) {
		c->cmd = CMD_PRICE;
	} else if (strcmp(c->args[0], "ohlcv") == 0) {
		c->cmd = CMD_OHLCV;
	} else {
		dp_err("unknown command '%s': expected price or ohlcv", c->args[0]);
		return -1;
	}
	if (c->nargs > 1) {
		dp_err("unexpected argument '%s'", c->args[1]);
		return -1;
	}
	for (size_t i = 0; c->cmd == CMD_PRICE && i < DP_FSM_COUNT(ohlcv_only); i++) {
		if (GIVEN(c, ohlcv_only[i].opt)) {
			dp_err("%s is only for ohlcv", ohlcv_only[i].name);
			return -1;
		}
	}
	if (!c->fsyms_arg || !c->tsyms_arg) {
		dp_err("missing %s", !c->fsyms_arg ? (c->cmd == CMD_PRICE ? "--fsyms" : "--fsym")
		                                   : (c->cmd == CMD_PRICE ? "--tsyms" : "--tsym"));
		return -1;
	}
	if (split_syms("--fsyms", c->fsyms_arg, &c->fsyms, &c->nf) < 0 ||
	    split_syms("--tsyms", c->tsyms_arg, &c->tsyms, &c->nt) < 0)
		return -1;
	if (c->market && check_plain("--market", c->market) < 0)
		return -1;
	if (c->cmd == CMD_OHLCV) {
		if (!c->interval_arg) {
			dp_err("missing --interval: " DP_CC_INTERVALS);
			return -1;
		}
		if (dp_cc_interval_parse(c->interval_arg, &c->iv) < 0) {
			dp_err("invalid --interval '%s': expected " DP_CC_INTERVALS, c->interval_arg);
			return -1;
		}
	}
	if (c->settle_ms > SETTLE_MAX_MS) {
		dp_err("invalid --settle: at most 1h");
		return -1;
	}
	if (c->now_arg && c->every_ms) {
		dp_err("--now cannot be combined with --every (polls follow the real clock)");
		return -1;
	}
	c->now_ms = dp_time_now_ms();
	if (c->now_arg && parse_time("--now", c->now_arg, c->now_ms, &c->now_ms) < 0)
		return -1;
	if (c->since_arg && parse_time("--since", c->since_arg, c->now_ms, &c->since_ms) < 0)
		return -1;
	if (c->until_arg && parse_time("--until", c->until_arg, c->now_ms, &c->until_ms) < 0)
		return -1;
	if (c->since_arg && c->until_arg && c->since_ms >= c->until_ms) {
		dp_err("--since must be before --until");
		return -1;
	}
	if (GIVEN(c, OPT_COUNT) && !c->every_ms) {
		dp_err("--count needs --every");
		return -1;
	}
	if (GIVEN(c, OPT_EVERY) && c->every_ms < 1000) {
		dp_err("invalid --every: must be at least 1s");
		return -1;
	}
	if (c->retry_base_ms <= 0) {
		dp_err("invalid --retry-base: must be more than 0");
		return -1;
	}
	if (c->retry_base_ms > RETRY_CAP_MS) {
		dp_err("invalid --retry-base: at most 30s");
		return -1;
	}
	return check_base_url(c);
}

/* ------------------------------------------------------------------ */
/* The API key */

/* Send the key as "Authorization: Apikey KEY"; the copies are wiped. */
static int
set_key(struct fetch *c, const char *key)
{
	struct dp_buf v = DP_BUF_INIT, err = DP_BUF_INIT;
	int r = dp_buf_addf(&v, "Apikey %s", key);

	if (r < 0)
		dp_buf_msgf(&err, "out of memory");
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

/* ------------------------------------------------------------------ */
/* Resources */

static int
open_state(struct fetch *c)
{
	struct dp_buf err = DP_BUF_INIT;
	int status = 0;

	c->lock_fd = dp_cc_state_lock(c->state_path, &err);
	if (c->lock_fd == -2) {
		dp_err("state file %s is in use by another dp-fetch", c->state_path);
		status = DP_EX_TEMPFAIL;
	} else if (c->lock_fd < 0) {
		dp_err("%s", dp_buf_str(&err));
		status = DP_EX_IOERR;
	} else if (dp_cc_state_load(c->state_path, &c->state, &err) < 0) {
		dp_err("%s", dp_buf_str(&err));
		status = DP_EX_DATAERR;
	}
	dp_buf_free(&err);
	return status;
}

static int
setup_work(struct fetch *c)
{
	size_t n = c->nf * c->nt;

	if (c->cmd == CMD_PRICE) {
		c->pairs = calloc(n, sizeof(*c->pairs));
		c->single = calloc(c->nf, sizeof(*c->single));
		c->req_tsyms = calloc(c->nt, sizeof(*c->req_tsyms));
		return c->pairs && c->single && c->req_tsyms ? 0 : -1;
	}
	c->nser = n;
	c->ser = calloc(n, sizeof(*c->ser));
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
open_fetch(void *ctx)
{
	struct fetch *c = ctx;
	struct dp_buf err = DP_BUF_INIT;
	char *key = NULL;
	size_t n;
	int status;

	if (!(c->base_url = strdup(c->base_url_arg))) {
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	for (n = strlen(c->base_url); n > 0 && c->base_url[n - 1] == '/'; n--)
		c->base_url[n - 1] = '\0';
	/* Never from the command line; see check_key_option(). */
	status = dp_secret_load(c->key_file, "CRYPTOCOMPARE_API_KEY", "api key", &key, &err);
	if (status) {
		dp_err("%s", dp_buf_str(&err));
		dp_buf_free(&err);
		return status;
	}
	if (c->state_path && (status = open_state(c)) != 0)
		goto out;
	if (dp_http_global_init() < 0) {
		dp_err("cannot initialize libcurl");
		status = DP_EX_SOFTWARE;
		goto out;
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
		status = DP_EX_SOFTWARE;
		goto out;
	}
	if (key && (status = set_key(c, key)) != 0)
		goto out;
	if (setup_work(c) < 0) {
		dp_err("out of memory");
		status = DP_EX_SOFTWARE;
		goto out;
	}
	dp_backoff_init(&c->backoff, c->retry_base_ms, RETRY_CAP_MS, 0.5, 0);
out:
	dp_secret_free(key);
	dp_buf_free(&err);
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
	dp_http_resp_free(&c->resp);
	dp_http_free(c->http);
	if (c->http_init)
		dp_http_global_cleanup();
	dp_cc_state_free(c->state);
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	free(c->ser);
	free(c->pairs);
	free(c->single);
	free(c->req_tsyms);
	dp_buf_free(&c->url);
	dp_buf_free(&c->batch);
	dp_buf_free(&c->api_msg);
	dp_buf_free(&c->rec);
	dp_buf_free(&c->msg);
	free_syms(c->fsyms, c->nf);
	free_syms(c->tsyms, c->nt);
	free(c->base_url);
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

static enum pair *
pair_at(struct fetch *c, size_t f, size_t t)
{
	return &c->pairs[f * c->nt + t];
}

/*
 * price: the next request.  The first of a poll asks for every pair at
 * once (c->cur == NONE); after the API refused one because a pair does not
 * exist, one request per fsym for its pairs still wanted, or per pair
 * for an fsym marked single.  False when every pair is done or missing.
 */
static bool
next_prices(struct fetch *c)
{
	for (size_t f = 0; f < c->nf; f++) {
		for (size_t t = 0; t < c->nt; t++) {
			if (*pair_at(c, f, t) == PAIR_WANTED) {
				c->cur = f;
				c->cur_t = c->single[f] ? t : NONE;
				return true;
			}
		}
	}
	return false;
}

/* The poll is over: the event that ends it. */
static int
end_poll(struct fetch *c)
{
	c->polls++;
	dp_cc_series_clear(&c->plan);
	if (every_mode(c) && (c->count == 0 || c->polls < c->count))
		return EV_POLL_DONE;
	return c->poll_status == DP_EX_PARTIAL ? EV_FINISHED_PARTIAL : EV_FINISHED;
}

/* After an answer was handled: more requests in this poll, or its end. */
static int
next_step(struct fetch *c)
{
	if (c->cmd == CMD_PRICE)
		return next_prices(c) ? EV_MORE : end_poll(c);
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
	if (every_mode(c))
		return EV_STOP;
	dp_err("interrupted before the fetch was complete");
	return EV_INTERRUPT;
}

static int
build_url(struct fetch *c)
{
	int64_t to;
	unsigned limit;

	dp_buf_reset(&c->url);
	if (c->cmd == CMD_PRICE) {
		const char *const *fs = (const char *const *)c->fsyms;
		size_t nf = c->nf, nt = 0;
		if (c->cur != NONE) {
			fs = (const char *const *)&c->fsyms[c->cur];
			nf = 1;
		}
		for (size_t t = 0; t < c->nt; t++)
			if (c->cur == NONE || (c->cur_t == NONE ? *pair_at(c, c->cur, t) == PAIR_WANTED
			                                        : t == c->cur_t))
				c->req_tsyms[nt++] = c->tsyms[t];
		return dp_cc_url_price(&c->url, c->base_url, fs, nf, c->req_tsyms, nt, c->market);
	}
	dp_cc_series_request(&c->plan, &to, &limit);
	return dp_cc_url_histo(&c->url, c->base_url, c->iv, c->ser[c->cur].fsym,
	                       c->ser[c->cur].tsym, c->market, limit, to);
}

/* 1 when pair (f, t) was part of the current price request. */
static bool
asked(const struct fetch *c, size_t f, size_t t)
{
	if (c->cur == NONE)
		return true;
	return f == c->cur && (c->cur_t == NONE || t == c->cur_t) &&
	       c->pairs[f * c->nt + t] == PAIR_WANTED;
}

/* Price: turn the answer into records now, so bad data prints nothing. */
static int
price_batch(struct fetch *c, jv root)
{
	struct dp_buf fkey = DP_BUF_INIT, tkey = DP_BUF_INIT, err = DP_BUF_INIT;
	int ev = EV_RESPONSE;

	dp_buf_reset(&c->batch);
	for (size_t f = 0; f < c->nf && ev == EV_RESPONSE; f++) {
		for (size_t t = 0; t < c->nt && ev == EV_RESPONSE; t++) {
			jv obj;
			int r;
			if (!asked(c, f, t))
				continue;
			dp_buf_reset(&fkey);
			dp_buf_reset(&tkey);
			dp_buf_reset(&err);
			r = dp_cc_price_find(root, c->fsyms[f], c->tsyms[t], &obj, &fkey, &tkey, &err);
			if (r == 1) {
				r = c->raw ? dp_cc_dump(&c->batch, obj)
				           : dp_cc_price_record(&c->batch, obj, fkey.data, tkey.data, &err);
				if (r == 0)
					r = dp_buf_addch(&c->batch, '\n');
				jv_free(obj);
				if (r < 0 && !err.len)
					dp_buf_msgf(&err, "out of memory");
				if (r == 0)
					*pair_at(c, f, t) = PAIR_DONE;
			}
			if (r < 0) {
				ev = fail(c, EV_FAILED, DP_EX_DATAERR, "malformed response from %s: %s",
				          c->url.data, dp_buf_str(&err));
			} else if (r == 0 && *pair_at(c, f, t) == PAIR_WANTED) {
				dp_warn("no price for %s/%s in the response", c->fsyms[f], c->tsyms[t]);
				*pair_at(c, f, t) = PAIR_MISSING;
				c->poll_status = DP_EX_PARTIAL;
			}
		}
	}
	dp_buf_free(&fkey);
	dp_buf_free(&tkey);
	dp_buf_free(&err);
	return ev;
}

/*
 * What an answer means for dp-fetch: the HTTP status where it speaks,
 * else the verdict on the body (cc.h).  Returns the event.
 */
static int
classify(struct fetch *c, enum dp_cc_verdict v, const struct dp_buf *msg)
{
	long st = c->resp.status;
	const char *url = c->url.data;

	if (st != 200) {
		bool transient = st == 408 || st == 429 || st >= 500 || v == DP_CC_RATELIMIT;
		bool api = v != DP_CC_OK && v != DP_CC_MALFORMED;
		int status = st == 401 || st == 403 || v == DP_CC_AUTH ? DP_EX_NOPERM :
		             v == DP_CC_PARAM ? DP_EX_USAGE : DP_EX_UNAVAILABLE;
		if (v == DP_CC_NOPAIR)
			return EV_MISSING;
		return fail(c, transient ? EV_TRANSIENT : EV_FAILED, transient ? DP_EX_UNAVAILABLE
		            : status, "HTTP %ld from %s%s%s", st, url, api ? ": " : "",
		            api ? dp_buf_str(msg) : "");
	}
	switch (v) {
	case DP_CC_OK:
		return EV_RESPONSE;
	case DP_CC_NOPAIR:
		return EV_MISSING;
	case DP_CC_RATELIMIT:
		return fail(c, EV_TRANSIENT, DP_EX_UNAVAILABLE, "%s: %s", url, dp_buf_str(msg));
	case DP_CC_AUTH:
		return fail(c, EV_FAILED, DP_EX_NOPERM, "%s: %s", url, dp_buf_str(msg));
	case DP_CC_PARAM:
		return fail(c, EV_FAILED, DP_EX_USAGE, "%s: %s", url, dp_buf_str(msg));
	case DP_CC_MALFORMED:
		return fail(c, EV_FAILED, DP_EX_DATAERR, "malformed response from %s: %s", url,
		            dp_buf_str(msg));
	case DP_CC_APIERR:
	default:
		return fail(c, EV_FAILED, DP_EX_UNAVAILABLE, "%s: %s", url, dp_buf_str(msg));
	}
}

/* Make the planned request; returns what came of it. */
static int
fetch(struct fetch *c)
{
	struct dp_buf err = DP_BUF_INIT, msg = DP_BUF_INIT;
	enum dp_cc_verdict v;
	jv root;
	int type, ev;

	if (dp_sig_stop)
		return stopped(c);
	free_page(c);
	if (build_url(c) < 0)
		return fail(c, EV_FAILED, DP_EX_SOFTWARE, "out of memory");
	c->retry_after_ms = -1;
	dp_debug("GET %s (%s api key)", c->url.data, c->have_key ? "with" : "without");
	if (dp_http_get(c->http, c->url.data, &c->resp, &err) < 0) {
		if (c->resp.cancelled)
			ev = stopped(c);
		else
			ev = fail(c, c->resp.transient ? EV_TRANSIENT : EV_FAILED, DP_EX_UNAVAILABLE,
			          "%s", dp_buf_str(&err));
		dp_buf_free(&err);
		return ev;
	}
	dp_debug("HTTP %ld, %zu bytes in %ld ms", c->resp.status, c->resp.body.len,
	         c->resp.elapsed_ms);
	c->retry_after_ms = c->resp.retry_after_ms;
	dp_buf_reset(&c->api_msg);
	v = dp_cc_parse(c->resp.body.data, c->resp.body.len, &root, &type, &msg, &c->api_msg);
	ev = classify(c, v, &msg);
	if (ev == EV_MISSING) {
		/* Kept for act_missing, which says which pairs it concerns. */
		fail(c, EV_MISSING, DP_EX_PARTIAL, "%s", dp_buf_str(&msg));
	} else if (ev == EV_RESPONSE && c->cmd == CMD_PRICE) {
		ev = price_batch(c, root);
	} else if (ev == EV_RESPONSE &&
	           dp_cc_candles(root, c->iv, c->raw, &c->page, &c->npage, &err) < 0) {
		ev = fail(c, EV_FAILED, DP_EX_DATAERR, "malformed response from %s: %s",
		          c->url.data, dp_buf_str(&err));
	}
	if (ev == EV_RESPONSE || ev == EV_MISSING)
		dp_backoff_reset(&c->backoff);
	jv_free(root);
	dp_http_resp_free(&c->resp);
	dp_buf_free(&err);
	dp_buf_free(&msg);
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

static int
write_candle(struct fetch *c, const struct dp_cc_candle *k)
{
	const struct series *s = &c->ser[c->cur];
	int r;

	dp_buf_reset(&c->rec);
	if (c->raw)
		r = dp_buf_addstr(&c->rec, k->raw);
	else
		r = dp_cc_ohlcv_record(&c->rec, s->fsym, s->tsym, c->iv, k);
	if (r == 0)
		r = dp_buf_addch(&c->rec, '\n');
	if (r < 0) {
		dp_err("out of memory");
		dp_fsm_fail(&c->fsm, DP_EX_SOFTWARE);
		return EV_FAILED;
	}
	if (dp_out_write(c->common.out, c->rec.data, c->rec.len) < 0)
		return out_failed(c);
	return 0;
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
	bool advance = false;
	int64_t cursor = 0;
	int ev;

	for (size_t i = 0; i < n; i++) {
		if ((ev = write_candle(c, &k[i])) != 0)
			return ev;
		if (dp_cc_series_closed(&c->plan, k[i].time) &&
		    (!s->have_cursor || k[i].time > s->cursor)) {
			cursor = k[i].time;
			advance = true;
		}
	}
	if (dp_out_flush(c->common.out) < 0)
		return out_failed(c);
	if (!advance)
		return 0;
	s->cursor = cursor;
	s->have_cursor = true;
	if (!c->state)
		return 0;
	if (dp_cc_state_set(c->state, s->fsym, s->tsym, c->iv, c->market, cursor) < 0)
		dp_buf_msgf(&err, "out of memory");
	else if (dp_cc_state_save(c->state, c->state_path, &err) == 0)
		return 0;
	dp_err("%s", dp_buf_str(&err));
	dp_buf_free(&err);
	dp_fsm_fail(&c->fsm, DP_EX_IOERR);
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
	size_t named = 0, nasked = 0, last_f = 0, last_t = 0;

	(void)m;
	c->poll_status = DP_EX_PARTIAL;
	if (c->cmd == CMD_OHLCV) {
		const struct series *s = &c->ser[c->cur];
		dp_warn("no candles for %s/%s %s: %s", s->fsym, s->tsym,
		        dp_cc_interval_label(c->iv), dp_buf_str(&c->msg));
		c->series_done = true;
		return next_step(c);
	}
	for (size_t f = 0; f < c->nf; f++) {
		for (size_t t = 0; t < c->nt; t++) {
			if (!asked(c, f, t) || *pair_at(c, f, t) != PAIR_WANTED)
				continue;
			nasked++;
			last_f = f;
			last_t = t;
			if (dp_cc_names_pair(dp_buf_str(&c->api_msg), c->fsyms[f], c->tsyms[t])) {
				dp_warn("no price for %s/%s: %s", c->fsyms[f], c->tsyms[t],
				        dp_buf_str(&c->msg));
				*pair_at(c, f, t) = PAIR_MISSING;
				named++;
			}
		}
	}
	if (!named && nasked == 1) {
		/* One pair asked: the message is about it, however it names it. */
		dp_warn("no price for %s/%s: %s", c->fsyms[last_f], c->tsyms[last_t],
		        dp_buf_str(&c->msg));
		*pair_at(c, last_f, last_t) = PAIR_MISSING;
	} else if (!named && (c->cur != NONE || c->nf == 1)) {
		/* One fsym, a message naming no pair asked: ask its pairs one by one. */
		c->single[c->cur != NONE ? c->cur : 0] = true;
	}
	/* After a refusal, never all pairs at once again in this poll. */
	return next_step(c);
}

/* ------------------------------------------------------------------ */
/* The other actions */

static int
act_poll(struct dp_fsm *m, void *ctx)
{
	struct fetch *c = ctx;

	(void)m;
	c->poll_status = DP_EX_OK;
	c->poll_ms = c->now_arg ? c->now_ms : dp_time_now_ms();
	dp_backoff_reset(&c->backoff);
	dp_info("poll %lu started", c->polls + 1);
	c->cur = 0;
	if (c->cmd == CMD_PRICE) {
		for (size_t i = 0; i < c->nf * c->nt; i++)
			c->pairs[i] = PAIR_WANTED;
		memset(c->single, 0, c->nf * sizeof(*c->single));
		c->cur = NONE;        /* every pair in one request */
		c->cur_t = NONE;
	} else if (!next_series(c)) {
		return end_poll(c);
	}
	return fetch(c);
}

static int
act_fetch(struct dp_fsm *m, void *ctx)
{
	(void)m;
	return fetch(ctx);
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
	if (every_mode(c) && (c->count == 0 || c->polls + 1 < c->count)) {
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
	int64_t d = dp_backoff_next(&c->backoff, c->retry_after_ms);
	char dur[48], asked_for[48];

	(void)m;
	if (c->retry_after_ms > d)
		dp_info("%s; retry %u of %" PRIu64 " in %s (the server asks for %s)",
		        dp_buf_str(&c->msg), c->backoff.attempts, c->max_retries,
		        dp_duration_format(d, dur), dp_duration_format(c->retry_after_ms, asked_for));
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

static const struct dp_cmd cmd = {
	.name = PROG,
	.usage = usage,
	.machine = &machine,
	.start = EV_START,
	.outbuf = (size_t)1 << 20,
	.parse = parse_options,
	.validate = validate,
	.open = open_fetch,
	.close = close_fetch,
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
		.lock_fd = -1,
		.resp = DP_HTTP_RESP_INIT,
	};

	return dp_cmd_main(&cmd, &c, &c.common, &c.fsm, argc, argv);
}
