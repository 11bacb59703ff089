/*
 * dp-fetch -- CryptoCompare REST API -> NDJSON on stdout.
 *
 *   dp-fetch price --fsyms BTC,ETH --tsyms USD,EUR
 *   dp-fetch ohlcv --fsym BTC --tsym USD --interval hour --state FILE
 *
 * One poll fetches everything asked for: one request for prices, or for
 * each candle series as many pages as needed.  Without --every there is
 * one poll (for cron); with it, polls repeat on wall-clock boundaries.
 *
 * Candles are paged in one of two directions:
 *
 *   forward   when the first wanted candle is known (--since, or the
 *             cursor from --state or from the previous poll): each page
 *             is printed, flushed and committed to the state file before
 *             the next request, so a run killed while it waits for the
 *             API has printed exactly what its state file says;
 *   backward  otherwise: from the newest candle back until the API has
 *             nothing older, hands out all-zero candles (before the coin
 *             existed), or (minute data) 7 days; the pages are collected
 *             and then printed oldest first, in committed batches.
 *
 * The state file records, per series, the last *closed* candle printed.
 * The order is always: write a batch, flush stdout, then rename the new
 * state into place.  See the man page for the exact guarantee.
 *
 * The API key never leaves memory except in the Authorization header:
 * it is not accepted on the command line, never logged, and wiped at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jv.h>

#include "buf.h"
#include "cc.h"
#include "cli.h"
#include "exit.h"
#include "fsm.h"
#include "http.h"
#include "log.h"
#include "out.h"
#include "sig.h"
#include "timefmt.h"

#define PROG "dp-fetch"
#define RETRY_CAP_MS 30000
#define MINUTE_HISTORY_S (7 * 86400)
#define KEY_MAX 4096

/* ------------------------------------------------------------------ */
/* Options */

enum cmd { CMD_NONE, CMD_PRICE, CMD_OHLCV };

enum {
	OPT_FSYMS = DP_OPT_CMD,
	OPT_TSYMS,
	OPT_MARKET,
	OPT_INTERVAL,
	OPT_SINCE,
	OPT_UNTIL,
	OPT_INCLUDE_OPEN,
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

struct opts {
	enum cmd cmd;
	bool given[OPT_END - DP_OPT_CMD];   /* which command options were used */
	const char *fsyms_arg, *tsyms_arg;
	char **fsyms, **tsyms;              /* owned, split from the lists */
	size_t nf, nt;
	const char *market;
	const char *interval_arg;
	enum dp_cc_interval iv;
	const char *since_arg, *until_arg, *now_arg;
	int64_t since_ms, until_ms, now_ms;
	bool include_open;
	const char *state_path;
	bool raw;
	int64_t every_ms;
	uint64_t count;
	const char *base_url;               /* validated, no trailing '/'; owned copy */
	char *base_url_buf;
	const char *key_file;
	int64_t timeout_ms, connect_timeout_ms, retry_base_ms;
	uint64_t max_retries, page_size;
};

#define GIVEN(o, opt) ((o)->given[(opt) - DP_OPT_CMD])

static void
usage_hint(void)
{
	fprintf(stderr, "Try '%s --help' for more information.\n", PROG);
}

static void
help(FILE *fp)
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
	      "      --interval INTERVAL ohlcv: minute, hour or day (also 1m, 1h, 1d)\n"
	      "      --since TIME        ohlcv: first candle wanted (default: all history the\n"
	      "                          API has; 7 days for minutes)\n"
	      "      --until TIME        ohlcv: only candles that open before TIME\n"
	      "      --include-open      ohlcv: also print the candle that is still open\n"
	      "      --state FILE        ohlcv: remember the last candle printed per series and\n"
	      "                          print only newer ones (for cron)\n"
	      "      --raw               print the API's own objects instead of records\n"
	      "  TIME is RFC 3339, epoch seconds or milliseconds, 'now', or -DURATION (-2h).\n"
	      "\n"
	      "Repetition:\n"
	      "      --every DURATION    poll forever, aligned to the wall clock (1m: at :00)\n"
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

/* Split a comma-separated symbol list; symbols are non-empty and plain. */
static int
split_syms(const char *name, const char *arg, char ***out, size_t *n)
{
	char *copy = strdup(arg), *save = NULL;
	char **v = NULL;
	size_t cnt = 0;

	if (!copy)
		return -1;
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
	if (dp_time_parse(s, ms) == 0)
		return 0;
	dp_err("invalid %s '%s': expected RFC 3339, epoch seconds or milliseconds, "
	       "'now' or -DURATION", name, s);
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
 * The one place where option values and combinations are checked.
 * Returns 0 or an exit status.
 */
static int
validate(struct opts *o, int argc, char **argv)
{
	static const struct { int opt; const char *name; } ohlcv_only[] = {
		{ OPT_INTERVAL, "--interval" }, { OPT_SINCE, "--since" },
		{ OPT_UNTIL, "--until" }, { OPT_INCLUDE_OPEN, "--include-open" },
		{ OPT_STATE, "--state" }, { OPT_PAGE_SIZE, "--page-size" },
	};
	const char *url;

	if (argc - optind < 1) {
		dp_err("missing command: price or ohlcv");
		return DP_EX_USAGE;
	}
	if (strcmp(argv[optind], "price") == 0) {
		o->cmd = CMD_PRICE;
	} else if (strcmp(argv[optind], "ohlcv") == 0) {
		o->cmd = CMD_OHLCV;
	} else {
		dp_err("unknown command '%s': expected price or ohlcv", argv[optind]);
		return DP_EX_USAGE;
	}
	if (argc - optind > 1) {
		dp_err("unexpected argument '%s'", argv[optind + 1]);
		return DP_EX_USAGE;
	}
	if (o->cmd == CMD_PRICE) {
		for (size_t i = 0; i < sizeof(ohlcv_only) / sizeof(ohlcv_only[0]); i++) {
			if (GIVEN(o, ohlcv_only[i].opt)) {
				dp_err("%s is only for ohlcv", ohlcv_only[i].name);
				return DP_EX_USAGE;
			}
		}
	}
	if (!o->fsyms_arg || !o->tsyms_arg) {
		dp_err("missing %s", !o->fsyms_arg ? (o->cmd == CMD_PRICE ? "--fsyms" : "--fsym")
		                                   : (o->cmd == CMD_PRICE ? "--tsyms" : "--tsym"));
		return DP_EX_USAGE;
	}
	if (split_syms("--fsyms", o->fsyms_arg, &o->fsyms, &o->nf) < 0 ||
	    split_syms("--tsyms", o->tsyms_arg, &o->tsyms, &o->nt) < 0)
		return DP_EX_USAGE;
	if (o->market && check_plain("--market", o->market) < 0)
		return DP_EX_USAGE;
	if (o->cmd == CMD_OHLCV) {
		if (!o->interval_arg) {
			dp_err("missing --interval: minute, hour or day");
			return DP_EX_USAGE;
		}
		if (dp_cc_interval_parse(o->interval_arg, &o->iv) < 0) {
			dp_err("invalid --interval '%s': expected minute, hour or day", o->interval_arg);
			return DP_EX_USAGE;
		}
	}
	if (o->now_arg && o->every_ms) {
		dp_err("--now cannot be combined with --every (polls follow the real clock)");
		return DP_EX_USAGE;
	}
	o->now_ms = dp_time_now_ms();
	if (o->now_arg && parse_time("--now", o->now_arg, o->now_ms, &o->now_ms) < 0)
		return DP_EX_USAGE;
	if (o->since_arg && parse_time("--since", o->since_arg, o->now_ms, &o->since_ms) < 0)
		return DP_EX_USAGE;
	if (o->until_arg && parse_time("--until", o->until_arg, o->now_ms, &o->until_ms) < 0)
		return DP_EX_USAGE;
	if (o->since_arg && o->until_arg && o->since_ms >= o->until_ms) {
		dp_err("--since must be before --until");
		return DP_EX_USAGE;
	}
	if (GIVEN(o, OPT_COUNT) && !o->every_ms) {
		dp_err("--count needs --every");
		return DP_EX_USAGE;
	}
	if (GIVEN(o, OPT_EVERY) && o->every_ms < 1000) {
		dp_err("invalid --every: must be at least 1s");
		return DP_EX_USAGE;
	}
	if (o->timeout_ms <= 0 || o->connect_timeout_ms <= 0 || o->retry_base_ms <= 0) {
		dp_err("invalid %s: must be more than 0",
		       o->timeout_ms <= 0 ? "--timeout" :
		       o->connect_timeout_ms <= 0 ? "--connect-timeout" : "--retry-base");
		return DP_EX_USAGE;
	}
	if (o->timeout_ms > INT32_MAX || o->connect_timeout_ms > INT32_MAX ||
	    o->retry_base_ms > RETRY_CAP_MS) {
		dp_err("invalid %s: too long", o->retry_base_ms > RETRY_CAP_MS ? "--retry-base" :
		       o->timeout_ms > INT32_MAX ? "--timeout" : "--connect-timeout");
		return DP_EX_USAGE;
	}
	url = o->base_url;
	if (!url) {
		const char *env = getenv("DP_CRYPTOCOMPARE_URL");
		url = env && *env ? env : DP_CC_DEFAULT_URL;
	}
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		dp_err("invalid base URL '%s': expected http:// or https://", url);
		return DP_EX_USAGE;
	}
	for (const char *p = url; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#') {
			dp_err("invalid base URL '%s': no spaces, query or fragment", url);
			return DP_EX_USAGE;
		}
	}
	if (!(o->base_url_buf = strdup(url))) {
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	for (size_t n = strlen(o->base_url_buf); n > 0 && o->base_url_buf[n - 1] == '/'; n--)
		o->base_url_buf[n - 1] = '\0';
	o->base_url = o->base_url_buf;
	return 0;
}

/* Returns 0 to go on, or an exit status (-1 for "exit 0 now"). */
static int
parse_args(struct opts *o, struct dp_common *common, int argc, char **argv)
{
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, DP_CLI_BASE_SHORT, longopts, NULL)) != -1) {
		if (opt >= DP_OPT_CMD && opt < OPT_END)
			o->given[opt - DP_OPT_CMD] = true;
		switch (opt) {
		case OPT_FSYMS: o->fsyms_arg = optarg; break;
		case OPT_TSYMS: o->tsyms_arg = optarg; break;
		case OPT_MARKET: o->market = optarg; break;
		case OPT_INTERVAL: o->interval_arg = optarg; break;
		case OPT_SINCE: o->since_arg = optarg; break;
		case OPT_UNTIL: o->until_arg = optarg; break;
		case OPT_NOW: o->now_arg = optarg; break;
		case OPT_INCLUDE_OPEN: o->include_open = true; break;
		case OPT_STATE:
			if (!*optarg) {
				dp_err("invalid --state: empty file name");
				return DP_EX_USAGE;
			}
			o->state_path = optarg;
			break;
		case OPT_RAW: o->raw = true; break;
		case OPT_BASE_URL: o->base_url = optarg; break;
		case OPT_API_KEY_FILE: {
			/*
			 * getopt_long takes "--api-key=..." as an abbreviation of
			 * --api-key-file: someone is passing the key itself.  Refuse
			 * every abbreviation, and never echo the value.
			 */
			const char *tok = argv[optind - 1];
			if (!(tok[0] == '-' && tok[1] == '-' && strchr(tok, '=')))
				tok = optind >= 2 ? argv[optind - 2] : "";
			if (strncmp(tok, "--api-key-file", 14) != 0 ||
			    (tok[14] != '\0' && tok[14] != '=')) {
				dp_err("unknown or incomplete option '--api-key': the key is read "
				       "only from $CRYPTOCOMPARE_API_KEY or --api-key-file FILE");
				usage_hint();
				return DP_EX_USAGE;
			}
			o->key_file = optarg;
			break;
		}
		case OPT_EVERY:
			if (dp_parse_duration("--every", optarg, &o->every_ms) < 0)
				return DP_EX_USAGE;
			break;
		case OPT_COUNT:
			if (dp_parse_u64("--count", optarg, 1, UINT32_MAX, &o->count) < 0)
				return DP_EX_USAGE;
			break;
		case OPT_TIMEOUT:
			if (dp_parse_timeout("--timeout", optarg, INT32_MAX, "24d", &o->timeout_ms) < 0)
				return DP_EX_USAGE;
			break;
		case OPT_CONNECT_TIMEOUT:
			if (dp_parse_timeout("--connect-timeout", optarg, INT32_MAX, "24d",
			                     &o->connect_timeout_ms) < 0)
				return DP_EX_USAGE;
			break;
		case OPT_RETRY_BASE:
			if (dp_parse_duration("--retry-base", optarg, &o->retry_base_ms) < 0)
				return DP_EX_USAGE;
			break;
		case OPT_MAX_RETRIES:
			if (dp_parse_u64("--max-retries", optarg, 0, 100, &o->max_retries) < 0)
				return DP_EX_USAGE;
			break;
		case OPT_PAGE_SIZE:
			if (dp_parse_u64("--page-size", optarg, 1, DP_CC_MAX_LIMIT, &o->page_size) < 0)
				return DP_EX_USAGE;
			break;
		case '?': {
			dp_cli_bad_option(argv);
			usage_hint();
			return DP_EX_USAGE;
		}
		default:
			rc = dp_cli_common(common, opt, optarg);
			if (rc < 0)
				return DP_EX_USAGE;
			if (rc == 0) {
				dp_err("internal error: option %d not handled", opt);
				return DP_EX_SOFTWARE;
			}
			break;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The API key */

static void
wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/*
 * The key from --api-key-file, else $CRYPTOCOMPARE_API_KEY, else none.
 * Returns 0 (and *key, owned, maybe NULL) or an exit status.  Messages
 * never include the key.
 */
static int
load_key(const char *file, char **key)
{
	char buf[KEY_MAX + 2];
	size_t n = 0;
	const char *env;
	int fd;
	struct stat sb;

	*key = NULL;
	if (!file) {
		env = getenv("CRYPTOCOMPARE_API_KEY");
		if (env && *env) {
			for (const char *p = env; *p; p++) {
				if ((unsigned char)*p < 0x20 || *p == 0x7f) {
					dp_err("invalid $CRYPTOCOMPARE_API_KEY: it contains a control character");
					return DP_EX_CONFIG;
				}
			}
			if (!(*key = strdup(env))) {
				dp_err("out of memory");
				return DP_EX_SOFTWARE;
			}
		}
		return 0;
	}
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		dp_err("cannot open api key file %s: %s", file, strerror(errno));
		return DP_EX_NOINPUT;
	}
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 044) && S_ISREG(sb.st_mode))
		dp_warn("api key file %s can be read by other users (chmod 600 it)", file);
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			dp_err("cannot read api key file %s: %s", file, strerror(errno));
			close(fd);
			explicit_bzero(buf, sizeof(buf));
			return DP_EX_NOINPUT;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > KEY_MAX) {
			dp_err("api key file %s is too large for a key", file);
			close(fd);
			explicit_bzero(buf, sizeof(buf));
			return DP_EX_CONFIG;
		}
	}
	close(fd);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
	                 buf[n - 1] == '\t'))
		buf[--n] = '\0';
	size_t start = 0;
	while (buf[start] == ' ' || buf[start] == '\t')
		start++;
	int rc = 0;
	if (start == n) {
		dp_err("api key file %s is empty", file);
		rc = DP_EX_CONFIG;
	}
	for (size_t i = start; rc == 0 && i < n; i++) {
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
			dp_err("api key file %s holds more than one line or a control character", file);
			rc = DP_EX_CONFIG;
		}
	}
	if (rc == 0 && !(*key = strdup(buf + start))) {
		dp_err("out of memory");
		rc = DP_EX_SOFTWARE;
	}
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

/* ------------------------------------------------------------------ */
/* The state machine */

enum state { ST_IDLE, ST_FETCHING, ST_EMITTING, ST_WAITING, ST_ERROR, ST_BACKOFF, ST_DONE };

static const char *const state_names[] = {
	"idle", "fetching", "emitting", "waiting", "error", "backoff", "done",
};

enum event {
	EV_START, EV_RESPONSE, EV_UP_TO_DATE, EV_TRANSIENT, EV_FAILED, EV_RETRY, EV_WAKE,
	EV_POLL_FAILED, EV_GIVE_UP, EV_MORE, EV_POLL_DONE, EV_FINISHED, EV_CLOSED, EV_TICK,
	EV_STOP, EV_ABORT,
};

static const char *const event_names[] = {
	"start", "response", "up_to_date", "transient", "failed", "retry", "wake",
	"poll_failed", "give_up", "more", "poll_done", "finished", "closed", "tick",
	"stop", "abort",
};

static int act_begin_poll(struct dp_fsm *m, void *ctx);
static int act_response(struct dp_fsm *m, void *ctx);
static int act_schedule(struct dp_fsm *m, void *ctx);
static int act_poll_failed(struct dp_fsm *m, void *ctx);
static int act_give_up(struct dp_fsm *m, void *ctx);
static int act_stop(struct dp_fsm *m, void *ctx);

static const struct dp_fsm_row rows[] = {
	{ ST_IDLE,     EV_START,       ST_FETCHING, act_begin_poll },
	{ ST_FETCHING, EV_RESPONSE,    ST_EMITTING, act_response },
	{ ST_FETCHING, EV_UP_TO_DATE,  ST_EMITTING, NULL },
	{ ST_FETCHING, EV_TRANSIENT,   ST_ERROR,    NULL },
	{ ST_FETCHING, EV_FAILED,      ST_ERROR,    NULL },
	{ ST_ERROR,    EV_RETRY,       ST_BACKOFF,  act_schedule },
	{ ST_ERROR,    EV_POLL_FAILED, ST_WAITING,  act_poll_failed },
	{ ST_ERROR,    EV_GIVE_UP,     ST_DONE,     act_give_up },
	{ ST_BACKOFF,  EV_WAKE,        ST_FETCHING, NULL },
	{ ST_EMITTING, EV_MORE,        ST_FETCHING, NULL },
	{ ST_EMITTING, EV_POLL_DONE,   ST_WAITING,  NULL },
	{ ST_EMITTING, EV_FINISHED,    ST_DONE,     NULL },
	{ ST_EMITTING, EV_CLOSED,      ST_DONE,     NULL },
	{ ST_WAITING,  EV_TICK,        ST_FETCHING, act_begin_poll },
	{ DP_FSM_ANY,  EV_STOP,        ST_DONE,     act_stop },
	{ DP_FSM_ANY,  EV_ABORT,       ST_DONE,     NULL },
};

static const struct dp_fsm_final final_states[] = { { ST_DONE, DP_FSM_REASON } };

static const struct dp_fsm_def fsm_def = {
	.name = PROG,
	.states = state_names,
	.nstates = sizeof(state_names) / sizeof(state_names[0]),
	.events = event_names,
	.nevents = sizeof(event_names) / sizeof(event_names[0]),
	.rows = rows,
	.nrows = sizeof(rows) / sizeof(rows[0]),
	.initial = ST_IDLE,
	.final = final_states,
	.nfinal = 1,
};

/* ------------------------------------------------------------------ */
/* Run-time context */

struct series {
	const char *fsym, *tsym;     /* borrowed from opts */
	bool have_cursor;
	int64_t cursor;              /* open time of the last closed candle printed */
};

enum phase { PH_NONE, PH_FORWARD, PH_BACKWARD };

struct ctx {
	const struct opts *o;
	struct dp_http *http;
	struct dp_out *out;
	struct dp_cc_state *state;   /* NULL without --state */
	bool have_key;

	struct series *ser;
	size_t nser;

	/* the poll in progress */
	unsigned long polls;         /* polls finished, good or bad */
	int64_t now_s;               /* the clock of this poll */
	size_t cur;                  /* series being fetched */
	enum phase phase;
	int64_t lo;                  /* forward: first candle time still wanted */
	int64_t hi;                  /* newest candle time wanted */
	int64_t floor_s;             /* backward: oldest time worth asking; -1 none */
	int64_t req_to;              /* toTs of the request */
	unsigned req_limit;
	struct dp_cc_candle *coll;   /* backward: collected, ascending */
	size_t ncoll, capcoll;
	int poll_status;             /* worst status of the poll (PARTIAL) */
	bool in_poll;

	/* the current response */
	struct dp_buf url;
	struct dp_http_resp resp;
	struct dp_cc_candle *page;
	size_t npage;
	struct dp_buf batch;         /* price: the records of the response */

	/* failures */
	unsigned attempt;            /* retries of the current request so far */
	int fail_status;
	bool fail_transient;
	long retry_after_s;
	struct dp_buf msg;
	int64_t backoff_ms;

	int status;                  /* the exit status */
	struct dp_buf rec;           /* scratch for one record */
};

static bool
every_mode(const struct ctx *c)
{
	return c->o->every_ms > 0;
}

static bool
more_polls(const struct ctx *c)
{
	return every_mode(c) && (c->o->count == 0 || c->polls < c->o->count);
}

static int64_t
now_ms(const struct ctx *c)
{
	return c->o->now_arg ? c->o->now_ms : dp_time_now_ms();
}

static int64_t
floor_div(int64_t a, int64_t b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static int64_t
ceil_div(int64_t a, int64_t b)
{
	return -floor_div(-a, b);
}

/*
 * Plan series c->cur: decide the direction and the range.  Returns true
 * when it needs requests, false when it is already up to date.
 */
static bool
plan_series(struct ctx *c)
{
	const struct opts *o = c->o;
	struct series *s = &c->ser[c->cur];
	int64_t step = dp_cc_interval_secs(o->iv);
	int64_t open_ts = floor_div(c->now_s, step) * step;
	bool have_lo = false;

	c->hi = o->include_open ? open_ts : open_ts - step;
	if (o->until_arg) {
		int64_t last = floor_div(ceil_div(o->until_ms, 1000) - 1, step) * step;
		if (last < c->hi)
			c->hi = last;
	}
	c->lo = 0;
	if (s->have_cursor) {
		c->lo = s->cursor + step;
		have_lo = true;
	}
	if (o->since_arg) {
		int64_t since = ceil_div(ceil_div(o->since_ms, 1000), step) * step;
		if (!have_lo || since > c->lo)
			c->lo = since;
		have_lo = true;
	}
	c->ncoll = 0;
	c->floor_s = -1;
	if (have_lo) {
		c->phase = PH_FORWARD;
		if (c->lo > c->hi) {
			dp_info("%s/%s %s: nothing new yet", s->fsym, s->tsym,
			        dp_cc_interval_label(o->iv));
			c->phase = PH_NONE;
			return false;
		}
		return true;
	}
	c->phase = PH_BACKWARD;
	if (o->iv == DP_CC_MINUTE)
		c->floor_s = c->now_s - MINUTE_HISTORY_S;
	c->req_to = c->hi;
	return c->hi >= 0;
}

/* Move to the next series that needs requests; false when the poll is done. */
static bool
next_series(struct ctx *c, bool first)
{
	if (!first)
		c->cur++;
	for (; c->cur < c->nser; c->cur++)
		if (plan_series(c))
			return true;
	c->phase = PH_NONE;
	return false;
}

static int
act_begin_poll(struct dp_fsm *m, void *arg)
{
	struct ctx *c = arg;

	(void)m;
	c->in_poll = true;
	c->poll_status = DP_EX_OK;
	c->attempt = 0;
	c->now_s = floor_div(now_ms(c), 1000);
	c->cur = 0;
	if (c->o->cmd == CMD_OHLCV)
		next_series(c, true);
	dp_info("poll %lu started", c->polls + 1);
	return 0;
}

static int
act_response(struct dp_fsm *m, void *arg)
{
	struct ctx *c = arg;

	(void)m;
	c->attempt = 0;
	return 0;
}

static void
free_page(struct ctx *c)
{
	dp_cc_candles_free(c->page, c->npage);
	c->page = NULL;
	c->npage = 0;
}

static void
free_coll(struct ctx *c)
{
	dp_cc_candles_free(c->coll, c->ncoll);
	c->coll = NULL;
	c->ncoll = c->capcoll = 0;
}

static int
act_schedule(struct dp_fsm *m, void *arg)
{
	struct ctx *c = arg;
	int64_t d = c->o->retry_base_ms;

	(void)m;
	for (unsigned i = 0; i < c->attempt && d < RETRY_CAP_MS; i++)
		d *= 2;
	if (d > RETRY_CAP_MS)
		d = RETRY_CAP_MS;
	/* Equal jitter: half fixed, half random, so retries of many clients spread. */
	d = d / 2 + (int64_t)(drand48() * (double)(d - d / 2));
	if (c->retry_after_s > 0 && c->retry_after_s * 1000 > d)
		d = c->retry_after_s * 1000 > RETRY_CAP_MS ? RETRY_CAP_MS : c->retry_after_s * 1000;
	c->backoff_ms = d;
	c->attempt++;
	dp_info("%s; retry %u of %" PRIu64 " in %" PRId64 " ms", c->msg.data, c->attempt,
	        c->o->max_retries, d);
	return 0;
}

static void
end_poll(struct ctx *c, int status)
{
	c->in_poll = false;
	c->polls++;
	c->status = status;
	free_page(c);
	free_coll(c);
}

static int
act_poll_failed(struct dp_fsm *m, void *arg)
{
	struct ctx *c = arg;

	(void)m;
	dp_err("poll %lu failed: %s", c->polls + 1, c->msg.data);
	end_poll(c, c->fail_status);
	return 0;
}

static int
act_give_up(struct dp_fsm *m, void *arg)
{
	struct ctx *c = arg;

	(void)m;
	dp_err("%s", c->msg.data);
	end_poll(c, c->fail_status);
	return 0;
}

static int
act_stop(struct dp_fsm *m, void *arg)
{
	struct ctx *c = arg;

	(void)m;
	dp_info("stopping on signal %d", (int)dp_sig_stop);
	if (c->in_poll && !every_mode(c)) {
		dp_err("interrupted before the fetch was complete");
		c->status = DP_EX_TEMPFAIL;
	} else if (every_mode(c)) {
		c->status = DP_EX_OK;
	}
	c->in_poll = false;
	return 0;
}

/* ------------------------------------------------------------------ */
/* fetching */

static int
fail(struct ctx *c, int ev, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
fail(struct ctx *c, int ev, int status, const char *fmt, ...)
{
	va_list ap;
	char line[2048];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	dp_buf_reset(&c->msg);
	dp_buf_msgf(&c->msg, "%s", line);
	c->fail_status = status;
	c->fail_transient = ev == EV_TRANSIENT;
	return ev;
}

static int
build_url(struct ctx *c)
{
	const struct opts *o = c->o;
	int64_t step;

	dp_buf_reset(&c->url);
	if (o->cmd == CMD_PRICE)
		return dp_cc_url_price(&c->url, o->base_url, (const char *const *)o->fsyms, o->nf,
		                       (const char *const *)o->tsyms, o->nt, o->market);
	step = dp_cc_interval_secs(o->iv);
	if (c->phase == PH_FORWARD) {
		int64_t to = c->lo + (int64_t)o->page_size * step;
		if (to > c->hi)
			to = c->hi;
		c->req_to = to;
		c->req_limit = (unsigned)((to - c->lo) / step);
		if (c->req_limit < 1)
			c->req_limit = 1;
	} else {
		c->req_limit = (unsigned)o->page_size;
	}
	return dp_cc_url_histo(&c->url, o->base_url, o->iv, c->ser[c->cur].fsym,
	                       c->ser[c->cur].tsym, o->market, c->req_limit, c->req_to);
}

/* Price: turn the response into records now, so bad data prints nothing. */
static int
price_batch(struct ctx *c, jv root)
{
	const struct opts *o = c->o;
	struct dp_buf fkey = DP_BUF_INIT, tkey = DP_BUF_INIT, err = DP_BUF_INIT;
	int ev = EV_RESPONSE;

	dp_buf_reset(&c->batch);
	for (size_t i = 0; i < o->nf && ev == EV_RESPONSE; i++) {
		for (size_t j = 0; j < o->nt && ev == EV_RESPONSE; j++) {
			jv obj;
			dp_buf_reset(&fkey);
			dp_buf_reset(&tkey);
			dp_buf_reset(&err);
			int r = dp_cc_price_find(root, o->fsyms[i], o->tsyms[j], &obj, &fkey, &tkey, &err);
			if (r < 0) {
				ev = fail(c, EV_FAILED, DP_EX_DATAERR, "malformed response from %s: %s",
				          c->url.data, err.data);
			} else if (r == 0) {
				dp_warn("no price for %s/%s in the response", o->fsyms[i], o->tsyms[j]);
				c->poll_status = DP_EX_PARTIAL;
				jv_free(obj);
			} else {
				int w = o->raw ? dp_cc_dump(&c->batch, obj)
				               : dp_cc_price_record(&c->batch, obj, fkey.data, tkey.data, &err);
				if (w == 0)
					w = dp_buf_addch(&c->batch, '\n');
				if (w < 0)
					ev = fail(c, EV_FAILED, DP_EX_DATAERR, "malformed response from %s: %s",
					          c->url.data, err.len ? dp_buf_str(&err) : "out of memory");
				jv_free(obj);
			}
		}
	}
	dp_buf_free(&fkey);
	dp_buf_free(&tkey);
	dp_buf_free(&err);
	return ev;
}

/* Map the API's Type to an exit status. */
static int
api_status(int type)
{
	switch (type) {
	case 1: return DP_EX_NOPERM;   /* a (valid) key is required */
	case 2: return DP_EX_USAGE;    /* a parameter was refused */
	default: return DP_EX_UNAVAILABLE;
	}
}

static int
do_fetch(struct ctx *c)
{
	struct dp_buf err = DP_BUF_INIT, msg = DP_BUF_INIT;
	jv root;
	int type, ev;
	enum dp_cc_verdict v;

	free_page(c);
	if (c->o->cmd == CMD_OHLCV && c->phase == PH_NONE)
		return EV_UP_TO_DATE;
	if (build_url(c) < 0)
		return fail(c, EV_ABORT, DP_EX_SOFTWARE, "out of memory");
	c->retry_after_s = -1;
	dp_debug("GET %s (%s api key)", c->url.data, c->have_key ? "with" : "without");
	if (dp_http_get(c->http, c->url.data, &c->resp, &err) < 0) {
		if (c->resp.cancelled)
			ev = EV_STOP;
		else
			ev = fail(c, c->resp.transient ? EV_TRANSIENT : EV_FAILED, DP_EX_UNAVAILABLE,
			          "%s", err.data);
		dp_buf_free(&err);
		return ev;
	}
	dp_debug("HTTP %ld, %zu bytes in %ld ms", c->resp.status, c->resp.body.len,
	         c->resp.elapsed_ms);
	c->retry_after_s = c->resp.retry_after_s;
	v = dp_cc_parse(c->resp.body.data, c->resp.body.len, &root, &type, &msg);
	if (c->resp.status != 200) {
		long st = c->resp.status;
		bool transient = st == 408 || st == 429 || st >= 500;
		if (v == DP_CC_RATELIMIT || v == DP_CC_APIERR)
			ev = fail(c, transient || v == DP_CC_RATELIMIT ? EV_TRANSIENT : EV_FAILED,
			          transient || v == DP_CC_RATELIMIT ? DP_EX_UNAVAILABLE : api_status(type),
			          "HTTP %ld from %s: %s", st, c->url.data, msg.data);
		else
			ev = fail(c, transient ? EV_TRANSIENT : EV_FAILED,
			          st == 401 || st == 403 ? DP_EX_NOPERM : DP_EX_UNAVAILABLE,
			          "HTTP %ld from %s", st, c->url.data);
		jv_free(root);
		goto out;
	}
	switch (v) {
	case DP_CC_RATELIMIT:
		ev = fail(c, EV_TRANSIENT, DP_EX_UNAVAILABLE, "%s: %s", c->url.data, msg.data);
		break;
	case DP_CC_APIERR:
		ev = fail(c, EV_FAILED, api_status(type), "%s: %s", c->url.data, msg.data);
		break;
	case DP_CC_MALFORMED:
		ev = fail(c, EV_FAILED, DP_EX_DATAERR, "malformed response from %s: %s",
		          c->url.data, msg.data);
		break;
	case DP_CC_OK:
	default:
		if (c->o->cmd == CMD_PRICE) {
			ev = price_batch(c, root);
		} else if (dp_cc_candles(root, c->o->raw, &c->page, &c->npage, &err) < 0) {
			ev = fail(c, EV_FAILED, DP_EX_DATAERR, "malformed response from %s: %s",
			          c->url.data, err.data);
		} else {
			ev = EV_RESPONSE;
		}
		break;
	}
	jv_free(root);
out:
	dp_http_resp_free(&c->resp);
	dp_buf_free(&err);
	dp_buf_free(&msg);
	return ev;
}

/* ------------------------------------------------------------------ */
/* emitting */

enum { WR_OK = 0, WR_CLOSED = 1, WR_ERROR = 2 };

static int
out_error(struct ctx *c)
{
	if (dp_out_closed(c->out))
		return WR_CLOSED;
	fail(c, EV_ABORT, DP_EX_IOERR, "cannot write to standard output: %s",
	     strerror(dp_out_error(c->out)));
	return WR_ERROR;
}

static int
write_candle(struct ctx *c, const struct dp_cc_candle *k)
{
	const struct series *s = &c->ser[c->cur];

	dp_buf_reset(&c->rec);
	if (c->o->raw) {
		if (dp_buf_addstr(&c->rec, k->raw) < 0)
			goto nomem;
	} else if (dp_cc_ohlcv_record(&c->rec, s->fsym, s->tsym, c->o->iv, k) < 0) {
		goto nomem;
	}
	if (dp_buf_addch(&c->rec, '\n') < 0)
		goto nomem;
	if (dp_out_write(c->out, c->rec.data, c->rec.len) < 0)
		return out_error(c);
	return WR_OK;
nomem:
	fail(c, EV_ABORT, DP_EX_SOFTWARE, "out of memory");
	return WR_ERROR;
}

/*
 * Print candles k[0..n) (ascending), flush, then commit the newest closed
 * one as the series' cursor: in memory and, with --state, on disk.
 */
static int
emit_batch(struct ctx *c, const struct dp_cc_candle *k, size_t n)
{
	struct series *s = &c->ser[c->cur];
	int64_t step = dp_cc_interval_secs(c->o->iv);
	bool advance = false;
	int64_t cursor = 0;
	int w;

	for (size_t i = 0; i < n; i++) {
		if ((w = write_candle(c, &k[i])) != WR_OK)
			return w;
		if (k[i].time + step <= c->now_s && (!s->have_cursor || k[i].time > s->cursor)) {
			cursor = k[i].time;
			advance = true;
		}
	}
	if (dp_out_flush(c->out) < 0)
		return out_error(c);
	if (!advance)
		return WR_OK;
	s->cursor = cursor;
	s->have_cursor = true;
	if (c->state) {
		struct dp_buf err = DP_BUF_INIT;
		if (dp_cc_state_set(c->state, s->fsym, s->tsym, c->o->iv, c->o->market, cursor) < 0 ||
		    dp_cc_state_save(c->state, c->o->state_path, &err) < 0) {
			fail(c, EV_ABORT, DP_EX_IOERR, "%s", err.data ? err.data : "out of memory");
			dp_buf_free(&err);
			return WR_ERROR;
		}
		dp_buf_free(&err);
	}
	return WR_OK;
}

static int
cmp_candle(const void *a, const void *b)
{
	const struct dp_cc_candle *x = a, *y = b;

	return x->time < y->time ? -1 : x->time > y->time;
}

/*
 * Keep the candles of the page with lo <= time <= hi, ascending and
 * unique (one per time), not all zero.  Moves them into
 * a new array (*out, caller frees); the rest of the page is freed.
 */
static int
select_page(struct ctx *c, int64_t lo, int64_t hi, struct dp_cc_candle **out, size_t *n)
{
	struct dp_cc_candle *k = c->page;
	size_t m = 0;

	*out = NULL;
	*n = 0;
	qsort(k, c->npage, sizeof(*k), cmp_candle);
	for (size_t i = 0; i < c->npage; i++) {
		bool keep = k[i].time >= lo && k[i].time <= hi && !dp_cc_candle_is_zero(&k[i]) &&
		            (m == 0 || k[m - 1].time != k[i].time);
		if (keep) {
			struct dp_cc_candle tmp = k[i];
			k[i] = k[m];
			k[m++] = tmp;
		}
	}
	for (size_t i = m; i < c->npage; i++) {
		free(k[i].raw);
		k[i].raw = NULL;
	}
	*out = k;
	*n = m;
	c->page = NULL;
	c->npage = 0;
	return 0;
}

/* Forward: print this page's share and plan the next request. */
static int
emit_forward(struct ctx *c, bool *series_done)
{
	int64_t step = dp_cc_interval_secs(c->o->iv);
	bool newer = false;
	struct dp_cc_candle *k;
	size_t n;
	int w;

	for (size_t i = 0; i < c->npage; i++)
		if (c->page[i].time >= c->lo)
			newer = true;
	select_page(c, c->lo, c->req_to, &k, &n);
	w = emit_batch(c, k, n);
	dp_cc_candles_free(k, n);
	if (w != WR_OK)
		return w;
	if (!newer) {
		/* The API answered with older candles only: it has nothing newer. */
		char t[DP_TIME_BUFSZ];
		dp_info("%s/%s: the API has no candles from %s on", c->ser[c->cur].fsym,
		        c->ser[c->cur].tsym, dp_time_format(c->lo * 1000, t));
	}
	c->lo = c->req_to + step;
	*series_done = !newer || c->lo > c->hi;
	return WR_OK;
}

/* Backward: collect; when the start of history is reached, print all. */
static int
emit_backward(struct ctx *c, bool *series_done)
{
	/* c->coll is kept newest first while collecting, so pages append. */
	int64_t oldest = c->ncoll ? c->coll[c->ncoll - 1].time : INT64_MAX;
	int64_t zero = -1, lo, hi;
	struct dp_cc_candle *k;
	size_t n;
	bool done = false;

	for (size_t i = 0; i < c->npage; i++)
		if (c->page[i].time <= c->req_to && dp_cc_candle_is_zero(&c->page[i]) &&
		    c->page[i].time > zero)
			zero = c->page[i].time;
	if (zero >= 0)
		done = true;      /* the coin did not exist yet: nothing older to get */
	lo = zero >= 0 ? zero + 1 : 0;
	if (c->floor_s > lo)
		lo = c->floor_s;
	hi = oldest == INT64_MAX ? c->hi : oldest - 1;   /* drops the repeated boundary */
	if (c->req_to < hi)
		hi = c->req_to;
	select_page(c, lo, hi, &k, &n);
	if (n == 0 || (c->floor_s >= 0 && k[0].time <= c->floor_s))
		done = true;
	if (n && c->ncoll + n > c->capcoll) {
		size_t cap = (c->ncoll + n) * 2;
		struct dp_cc_candle *p = realloc(c->coll, cap * sizeof(*p));
		if (!p) {
			dp_cc_candles_free(k, n);
			fail(c, EV_ABORT, DP_EX_SOFTWARE, "out of memory");
			return WR_ERROR;
		}
		c->coll = p;
		c->capcoll = cap;
	}
	for (size_t i = 0; i < n; i++)
		c->coll[c->ncoll++] = k[n - 1 - i];
	free(k);                               /* the candles moved to c->coll */
	if (c->ncoll)
		c->req_to = c->coll[c->ncoll - 1].time;   /* the API repeats it: dropped above */
	if (!done) {
		*series_done = false;
		return WR_OK;
	}

	/* Oldest first, in committed batches. */
	for (size_t i = 0, j = c->ncoll; i + 1 < j; i++, j--) {
		struct dp_cc_candle t = c->coll[i];
		c->coll[i] = c->coll[j - 1];
		c->coll[j - 1] = t;
	}
	{
		char t[DP_TIME_BUFSZ];
		dp_info("%s/%s: %zu candles, the oldest from %s", c->ser[c->cur].fsym,
		        c->ser[c->cur].tsym, c->ncoll,
		        c->ncoll ? dp_time_format(c->coll[0].time * 1000, t) : "-");
	}
	for (size_t first = 0; first < c->ncoll; first += c->o->page_size) {
		size_t len = c->ncoll - first;
		if (len > c->o->page_size)
			len = c->o->page_size;
		int w = emit_batch(c, c->coll + first, len);
		if (w != WR_OK)
			return w;
		if (dp_sig_stop)
			break;
	}
	free_coll(c);
	*series_done = true;
	return WR_OK;
}

static int
finish_poll(struct ctx *c)
{
	end_poll(c, c->poll_status);
	return more_polls(c) ? EV_POLL_DONE : EV_FINISHED;
}

static int
do_emit(struct ctx *c)
{
	bool series_done = true;
	int w = WR_OK;

	if (c->o->cmd == CMD_PRICE) {
		if (dp_out_write(c->out, c->batch.data, c->batch.len) < 0 ||
		    dp_out_flush(c->out) < 0)
			w = out_error(c);
		dp_buf_reset(&c->batch);
	} else if (c->phase == PH_FORWARD) {
		w = emit_forward(c, &series_done);
	} else if (c->phase == PH_BACKWARD) {
		w = emit_backward(c, &series_done);
	}
	free_page(c);
	if (w == WR_CLOSED) {
		c->status = DP_EX_OK;
		c->in_poll = false;
		return EV_CLOSED;
	}
	if (w == WR_ERROR) {
		c->status = c->fail_status;
		dp_err("%s", c->msg.data);
		c->in_poll = false;
		return EV_ABORT;
	}
	if (c->o->cmd == CMD_OHLCV && !series_done)
		return EV_MORE;
	if (c->o->cmd == CMD_OHLCV && c->phase != PH_NONE && next_series(c, false))
		return EV_MORE;
	return finish_poll(c);
}

/* ------------------------------------------------------------------ */
/* error, backoff, waiting */

static int
do_error(struct ctx *c)
{
	if (c->fail_transient && c->attempt < c->o->max_retries)
		return EV_RETRY;
	if (c->fail_transient && c->o->max_retries > 0)
		dp_buf_msgf(&c->msg, " (gave up after %u %s)", c->attempt,
		            c->attempt == 1 ? "retry" : "retries");
	if (every_mode(c) && (c->o->count == 0 || c->polls + 1 < c->o->count))
		return EV_POLL_FAILED;
	return EV_GIVE_UP;
}

/* Sleep until the clock (wall or monotonic) reaches deadline; false when stopped. */
static bool
sleep_until(int64_t deadline, bool wall)
{
	for (;;) {
		if (dp_sig_stop)
			return false;
		int64_t left = deadline - (wall ? dp_time_now_ms() : dp_time_mono_ms());
		if (left <= 0)
			return true;
		if (left > 200)
			left = 200;   /* a signal between the check and the sleep costs 200 ms at most */
		struct timespec ts = { (time_t)(left / 1000), (long)(left % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

static int
do_backoff(struct ctx *c)
{
	return sleep_until(dp_time_mono_ms() + c->backoff_ms, false) ? EV_WAKE : EV_STOP;
}

static int
do_wait(struct ctx *c)
{
	int64_t every = c->o->every_ms;
	int64_t next = (floor_div(dp_time_now_ms(), every) + 1) * every;
	char t[DP_TIME_BUFSZ];

	dp_info("next poll at %s", dp_time_format(next, t));
	return sleep_until(next, true) ? EV_TICK : EV_STOP;
}

static int
run(struct ctx *c, bool trace)
{
	struct dp_fsm m;
	int ev = EV_START;

	dp_fsm_init(&m, &fsm_def, trace);
	for (;;) {
		if (dp_fsm_step(&m, ev, c) == DP_FSM_NOTRANS)
			return DP_EX_SOFTWARE;
		if (m.state == ST_DONE)
			return c->status;
		if (dp_sig_stop) {
			/* Stop before starting anything new; what was printed is flushed. */
			ev = EV_STOP;
			continue;
		}
		switch (m.state) {
		case ST_FETCHING: ev = do_fetch(c); break;
		case ST_EMITTING: ev = do_emit(c); break;
		case ST_ERROR:    ev = do_error(c); break;
		case ST_BACKOFF:  ev = do_backoff(c); break;
		case ST_WAITING:  ev = do_wait(c); break;
		default:
			dp_err("internal error: no handler for state '%s'", dp_fsm_state_name(&m));
			return DP_EX_SOFTWARE;
		}
		if (ev == EV_ABORT && m.state != ST_EMITTING) {
			c->status = c->fail_status;
			dp_err("%s", c->msg.data);
		}
	}
}

/* ------------------------------------------------------------------ */

static int
setup_series(struct ctx *c)
{
	const struct opts *o = c->o;

	c->nser = o->nf * o->nt;
	c->ser = calloc(c->nser ? c->nser : 1, sizeof(*c->ser));
	if (!c->ser)
		return -1;
	for (size_t i = 0; i < o->nf; i++) {
		for (size_t j = 0; j < o->nt; j++) {
			struct series *s = &c->ser[i * o->nt + j];
			s->fsym = o->fsyms[i];
			s->tsym = o->tsyms[j];
			if (c->state)
				s->have_cursor = dp_cc_state_get(c->state, s->fsym, s->tsym, o->iv,
				                                 o->market, &s->cursor) == 1;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct dp_common common;
	struct ctx c;
	struct dp_buf err = DP_BUF_INIT;
	char *key = NULL;
	int status, lock_fd = -1;
	bool http_init = false;

	dp_log_init(PROG);
	dp_cli_init(&common);
	memset(&o, 0, sizeof(o));
	memset(&c, 0, sizeof(c));
	o.timeout_ms = 30000;
	o.connect_timeout_ms = 10000;
	o.retry_base_ms = 500;
	o.max_retries = 5;
	o.page_size = DP_CC_MAX_LIMIT;
	c.o = &o;
	c.resp = (struct dp_http_resp)DP_HTTP_RESP_INIT;

	/* 1. options */
	status = parse_args(&o, &common, argc, argv);
	if (status)
		goto out;
	if ((status = dp_cli_answer(&common, help, &fsm_def)) >= 0)
		goto out;
	status = 0;
	/* 2. combinations, in one place */
	status = validate(&o, argc, argv);
	if (status) {
		if (status == DP_EX_USAGE)
			usage_hint();
		goto out;
	}

	/* 3. resources */
	status = load_key(o.key_file, &key);
	if (status)
		goto out;
	if (o.state_path) {
		lock_fd = dp_cc_state_lock(o.state_path, &err);
		if (lock_fd == -2) {
			dp_err("state file %s is in use by another dp-fetch", o.state_path);
			status = DP_EX_TEMPFAIL;
			goto out;
		}
		if (lock_fd < 0 || dp_cc_state_load(o.state_path, &c.state, &err) < 0) {
			dp_err("%s", err.data);
			status = lock_fd < 0 ? DP_EX_IOERR : DP_EX_DATAERR;
			goto out;
		}
	}
	if (dp_sig_install() < 0) {
		dp_err("cannot install signal handlers: %s", strerror(errno));
		status = DP_EX_SOFTWARE;
		goto out;
	}
	if (dp_http_global_init() < 0) {
		dp_err("cannot initialize libcurl");
		status = DP_EX_SOFTWARE;
		goto out;
	}
	http_init = true;
	{
		struct dp_http_opts ho = {
			.user_agent = PROG "/" DP_VERSION,
			.timeout_ms = (long)o.timeout_ms,
			.connect_timeout_ms = (long)o.connect_timeout_ms,
			.max_body = 0,
			.cancel = &dp_sig_stop,
		};
		c.http = dp_http_new(&ho, &err);
	}
	if (!c.http) {
		dp_err("%s", err.data);
		status = DP_EX_SOFTWARE;
		goto out;
	}
	if (key) {
		c.have_key = true;
		struct dp_buf v = DP_BUF_INIT;
		int r = dp_buf_addf(&v, "Apikey %s", key);
		if (r == 0)
			r = dp_http_set_secret_header(c.http, "Authorization", v.data, &err);
		if (v.data)
			explicit_bzero(v.data, v.len);
		dp_buf_free(&v);
		if (r < 0) {
			dp_err("%s", err.data ? err.data : "out of memory");
			status = DP_EX_CONFIG;
			goto out;
		}
	}
	c.out = dp_out_new(STDOUT_FILENO, (size_t)1 << 20);
	if (!c.out || (o.cmd == CMD_OHLCV && setup_series(&c) < 0)) {
		dp_err("out of memory");
		status = DP_EX_SOFTWARE;
		goto out;
	}
	srand48((long)(dp_time_now_ms() ^ ((int64_t)getpid() << 16)));

	/* 4. the state machine */
	status = run(&c, common.trace_states);

	/* 5. flush */
	if (dp_out_free(c.out) < 0 && errno != EPIPE && status == DP_EX_OK) {
		dp_err("cannot write to standard output: %s", strerror(errno));
		status = DP_EX_IOERR;
	}
	c.out = NULL;
out:
	dp_out_free(c.out);
	free_page(&c);
	free_coll(&c);
	dp_http_resp_free(&c.resp);
	dp_http_free(c.http);
	if (http_init)
		dp_http_global_cleanup();
	dp_cc_state_free(c.state);
	if (lock_fd >= 0)
		close(lock_fd);
	free(c.ser);
	dp_buf_free(&c.url);
	dp_buf_free(&c.batch);
	dp_buf_free(&c.msg);
	dp_buf_free(&c.rec);
	dp_buf_free(&err);
	wipe_free(key);
	free_syms(o.fsyms, o.nf);
	free_syms(o.tsyms, o.nt);
	free(o.base_url_buf);
	dp_cli_free(&common);
	if (dp_out_close_stdout() < 0 && errno != EPIPE && status == DP_EX_OK) {
		dp_err("cannot write to standard output: %s", strerror(errno));
		status = DP_EX_IOERR;
	}
	return status;
}
