/*
 * cc/poll.c -- polls of the CryptoCompare REST API, one step at a time
 * (cc/poll.h): the requests of a poll, what their answers print, retries,
 * and the wait for the next poll.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cc/http.h"
#include "cc/poll.h"
#include "core/backoff.h"
#include "core/exit.h"
#include "core/log.h"
#include "core/out.h"
#include "core/parse.h"
#include "core/timefmt.h"
#include "obs/health.h"
#include "obs/obs.h"

/* ohlcv: one pair, and its cursor across polls. */
struct series {
	const char *fsym, *tsym;     /* borrowed from the options */
	bool have_cursor;
	int64_t cursor;              /* open time of the last closed candle printed */
};

struct dp_ccpoll {
	struct dp_ccpoll_opts o;
	char *base_url;              /* without a trailing '/' */
	struct dp_http *http;
	bool http_init;
	bool have_key;
	struct dp_cc_state *state;   /* NULL without a state file */
	int lock_fd;
	struct series *ser;          /* ohlcv: nf * nt */
	size_t nser;
	struct dp_cc_prices prices;  /* price: the pairs of a poll */
	struct dp_backoff backoff;

	/* the poll in progress */
	unsigned long polls;         /* polls finished, good or bad */
	int64_t poll_ms;             /* the clock of this poll */
	size_t cur;                  /* ohlcv: the series */
	bool partial;                /* something was missing in this poll */
	struct dp_cc_series plan;    /* ohlcv: the series' pages */
	bool series_done;
	bool finished;               /* the last poll came to its end */

	/* the current request */
	struct dp_buf url;
	struct dp_cc_reply reply;
	struct dp_cc_candle *page;   /* ohlcv: the answer */
	size_t npage;
	struct dp_buf batch;         /* price: the records of the answer */

	/* the last failure */
	int fail_status;
	bool fail_transient;
	struct dp_buf msg;
	int status;                  /* GIVE_UP, FATAL */

	/* obs/obs.h: records printed; the polls as a feed (a poll that printed is data) */
	struct dp_series *obs_out;
	struct dp_health_feed *obs_feed;
};

/* n records printed: counted, and the polls' feed has data. */
static void
observe(struct dp_ccpoll *p, size_t n)
{
	if (n) {
		dp_series_add(p->obs_out, (double)n);
		dp_health_data(p->obs_feed);
	}
}

static int
stop_signal(const struct dp_ccpoll *p)
{
	return p->o.stop ? atomic_load(p->o.stop) : 0;
}

/* ------------------------------------------------------------------ */
/* The poller */

/* dp_http_set_secret_header, in the shape dp_cc_set_key calls. */
static int
header(void *target, const char *name, const char *value, struct dp_buf *err)
{
	return dp_http_set_secret_header(target, name, value, err);
}

/* The key's header, "Authorization: Apikey KEY". */
static int
set_key(struct dp_ccpoll *p, const char *key)
{
	int r = dp_cc_set_key(key, header, p->http);

	p->have_key = r == 0;
	return r;
}

static int
setup_series(struct dp_ccpoll *p)
{
	const struct dp_ccpoll_opts *o = &p->o;

	p->nser = o->nf * o->nt;
	p->ser = calloc(p->nser, sizeof(*p->ser));
	if (!p->ser)
		return -1;
	for (size_t i = 0; i < o->nf; i++) {
		for (size_t j = 0; j < o->nt; j++) {
			struct series *s = &p->ser[i * o->nt + j];
			s->fsym = o->fsyms[i];
			s->tsym = o->tsyms[j];
			if (p->state)
				s->have_cursor = dp_cc_state_get(p->state, s->fsym, s->tsym, o->iv,
				                                 o->market, &s->cursor) == 1;
		}
	}
	return 0;
}

int
dp_ccpoll_new(const struct dp_ccpoll_opts *o, struct dp_ccpoll **out)
{
	struct dp_buf err = DP_BUF_INIT;
	struct dp_ccpoll *p = calloc(1, sizeof(*p));
	struct dp_http_opts ho = {
		.user_agent = o->user_agent,
		.timeout_ms = (long)o->timeout_ms,
		.connect_timeout_ms = (long)o->connect_timeout_ms,
		.max_body = 0,
		.cancel = o->stop,
	};
	int status;
	size_t n;

	*out = p;
	if (!p) {
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	p->o = *o;
	p->o.key = NULL;
	p->lock_fd = -1;
	p->reply = (struct dp_cc_reply)DP_CC_REPLY_INIT;
	if (o->state_path && (status = dp_cc_state_open(o->state_path, &p->state,
	                                                &p->lock_fd)) != 0)
		return status;
	if (!(p->base_url = strdup(o->base_url))) {
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	for (n = strlen(p->base_url); n > 0 && p->base_url[n - 1] == '/'; n--)
		p->base_url[n - 1] = '\0';
	if (dp_http_global_init() < 0) {
		dp_err("cannot initialize libcurl");
		return DP_EX_SOFTWARE;
	}
	p->http_init = true;
	if (!(p->http = dp_http_new(&ho, &err))) {
		dp_err("%s", dp_buf_str(&err));
		dp_buf_free(&err);
		return DP_EX_SOFTWARE;
	}
	if ((!o->ohlcv && dp_cc_prices_init(&p->prices, o->fsyms, o->nf, o->tsyms, o->nt) < 0) ||
	    (o->ohlcv && setup_series(p) < 0)) {
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	dp_backoff_init(&p->backoff, o->retry_base_ms, DP_CC_RETRY_CAP_MS, 0.5, 0);
	p->obs_out = dp_metric_one(dp_obs_family(DP_OBS_RECORDS_OUT, NULL));
	p->obs_feed = dp_health_feed(o->ohlcv ? "ohlcv polls" : "price polls");
	return o->key ? set_key(p, o->key) : 0;
}

static void
free_page(struct dp_ccpoll *p)
{
	dp_cc_candles_free(p->page, p->npage);
	p->page = NULL;
	p->npage = 0;
}

void
dp_ccpoll_free(struct dp_ccpoll *p)
{
	if (!p)
		return;
	free_page(p);
	dp_cc_series_clear(&p->plan);
	dp_cc_reply_free(&p->reply);
	dp_http_free(p->http);
	if (p->http_init)
		dp_http_global_cleanup();
	dp_cc_state_free(p->state);
	if (p->lock_fd >= 0)
		close(p->lock_fd);
	free(p->ser);
	dp_cc_prices_free(&p->prices);
	dp_buf_free(&p->url);
	dp_buf_free(&p->batch);
	dp_buf_free(&p->msg);
	free(p->base_url);
	free(p);
}

int
dp_ccpoll_status(const struct dp_ccpoll *p)
{
	return p->status;
}

bool
dp_ccpoll_unfinished(const struct dp_ccpoll *p, struct dp_buf *said)
{
	if (!p)
		return true;
	if (p->finished)
		return false;
	if (!p->o.ohlcv)
		dp_buf_msgf(said, "the fetch was not complete: no prices printed");
	else
		dp_buf_msgf(said, "the fetch was not complete: %zu of %zu series not fetched to "
		            "their end%s", p->nser - p->cur, p->nser,
		            p->state ? " (the state file has the rest to do)" : "");
	return true;
}

/* ------------------------------------------------------------------ */
/* Planning a poll */

/* ohlcv: plan series p->cur and the ones after it until one needs requests. */
static bool
next_series(struct dp_ccpoll *p)
{
	const struct dp_ccpoll_opts *o = &p->o;

	for (; p->cur < p->nser; p->cur++) {
		struct series *s = &p->ser[p->cur];
		struct dp_cc_window w = {
			.now_ms = p->poll_ms, .settle_ms = o->settle_ms,
			.has_cursor = s->have_cursor, .cursor = s->cursor,
			.has_since = o->has_since, .since_ms = o->since_ms,
			.has_until = o->has_until, .until_ms = o->until_ms,
			.include_open = o->include_open, .page_size = o->page_size,
		};
		if (dp_cc_series_plan(&p->plan, o->iv, &w)) {
			p->series_done = false;
			return true;
		}
		dp_info("%s/%s %s: nothing new yet", s->fsym, s->tsym, dp_cc_interval_label(o->iv));
	}
	return false;
}

/* The poll is over: what ends it. */
static enum dp_ccpoll_next
end_poll(struct dp_ccpoll *p)
{
	p->polls++;
	dp_cc_series_clear(&p->plan);
	if (p->o.every_ms > 0 && (p->o.count == 0 || p->polls < p->o.count))
		return DP_CCPOLL_POLL_DONE;
	p->finished = true;
	return p->partial || p->prices.missing ? DP_CCPOLL_FINISHED_PARTIAL : DP_CCPOLL_FINISHED;
}

/* After an answer was handled: more requests in this poll, or its end. */
static enum dp_ccpoll_next
next_step(struct dp_ccpoll *p)
{
	if (!p->o.ohlcv)
		return dp_cc_prices_next(&p->prices) ? DP_CCPOLL_MORE : end_poll(p);
	if (!p->series_done)
		return DP_CCPOLL_MORE;
	p->cur++;
	return next_series(p) ? DP_CCPOLL_MORE : end_poll(p);
}

enum dp_ccpoll_next
dp_ccpoll_begin(struct dp_ccpoll *p)
{
	p->poll_ms = p->o.has_now ? p->o.now_ms : dp_time_now_ms();
	dp_backoff_reset(&p->backoff);
	dp_info("poll %lu started", p->polls + 1);
	p->cur = 0;
	p->partial = false;
	if (!p->o.ohlcv)
		dp_cc_prices_start(&p->prices);      /* every pair in one request */
	else if (!next_series(p))
		return end_poll(p);
	return dp_ccpoll_fetch(p);
}

/* ------------------------------------------------------------------ */
/* Requests */

static enum dp_ccpoll_next
fail(struct dp_ccpoll *p, enum dp_ccpoll_next next, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Record a failure of the current request; returns next. */
static enum dp_ccpoll_next
fail(struct dp_ccpoll *p, enum dp_ccpoll_next next, int status, const char *fmt, ...)
{
	va_list ap;

	dp_buf_reset(&p->msg);
	va_start(ap, fmt);
	dp_buf_vmsgf(&p->msg, fmt, ap);
	va_end(ap);
	p->fail_status = status;
	p->fail_transient = next == DP_CCPOLL_TRANSIENT;
	return next;
}

/* A signal: the end of repeating polls, or an incomplete one-shot run. */
static enum dp_ccpoll_next
stopped(struct dp_ccpoll *p)
{
	dp_info("stopping on signal %d", stop_signal(p));
	return p->o.every_ms > 0 ? DP_CCPOLL_STOPPED : DP_CCPOLL_INTERRUPTED;
}

static int
build_url(struct dp_ccpoll *p)
{
	const struct series *s;
	int64_t to;
	unsigned limit;

	dp_buf_reset(&p->url);
	if (!p->o.ohlcv)
		return dp_cc_prices_url(&p->prices, &p->url, p->base_url, p->o.market);
	s = &p->ser[p->cur];
	dp_cc_series_request(&p->plan, &to, &limit);
	return dp_cc_url_histo(&p->url, p->base_url, p->o.iv, s->fsym, s->tsym, p->o.market,
	                       limit, to);
}

enum dp_ccpoll_next
dp_ccpoll_fetch(struct dp_ccpoll *p)
{
	struct dp_buf err = DP_BUF_INIT;
	enum dp_ccpoll_next next;

	if (stop_signal(p))
		return stopped(p);
	free_page(p);
	if (build_url(p) < 0)
		return fail(p, DP_CCPOLL_FAILED, DP_EX_SOFTWARE, "out of memory");
	dp_debug("GET %s (%s api key)", p->url.data, p->have_key ? "with" : "without");
	switch (dp_cc_get(p->http, p->url.data, &p->reply)) {
	case DP_CC_ANSWER:
		dp_buf_reset(&p->batch);
		next = DP_CCPOLL_RESPONSE;
		if ((!p->o.ohlcv ? dp_cc_prices_take(&p->prices, p->reply.root, p->o.raw,
		                                     &p->batch, &err)
		                 : dp_cc_candles(p->reply.root, p->o.iv, p->o.raw, &p->page,
		                                 &p->npage, &err)) < 0)
			next = fail(p, DP_CCPOLL_FAILED, DP_EX_DATAERR, "malformed response from %s: %s",
			            p->url.data, dp_buf_str(&err));
		break;
	case DP_CC_MISSING:
		/* Kept for dp_ccpoll_missing, which says which pairs it concerns. */
		next = fail(p, DP_CCPOLL_MISSING, DP_EX_PARTIAL, "%s", dp_buf_str(&p->reply.msg));
		break;
	case DP_CC_RETRY:
		next = fail(p, DP_CCPOLL_TRANSIENT, p->reply.status, "%s",
		            dp_buf_str(&p->reply.msg));
		break;
	default:
		next = p->reply.cancelled ? stopped(p)
		                          : fail(p, DP_CCPOLL_FAILED, p->reply.status, "%s",
		                                 dp_buf_str(&p->reply.msg));
		break;
	}
	if (next == DP_CCPOLL_RESPONSE || next == DP_CCPOLL_MISSING)
		dp_backoff_reset(&p->backoff);
	/* The API answers, or (for a poll that failed, not one a signal cut short) it does not. */
	if (next == DP_CCPOLL_RESPONSE || next == DP_CCPOLL_MISSING ||
	    next == DP_CCPOLL_TRANSIENT || next == DP_CCPOLL_FAILED)
		dp_health_link("api", next == DP_CCPOLL_RESPONSE || next == DP_CCPOLL_MISSING);
	dp_buf_free(&err);
	return next;
}

/* ------------------------------------------------------------------ */
/* Printing */

/* A failed write: the reader went away, or a real error (the caller says it). */
static enum dp_ccpoll_next
out_failed(struct dp_ccpoll *p)
{
	return dp_out_closed(p->o.out) ? DP_CCPOLL_CLOSED : DP_CCPOLL_OUTPUT;
}

static enum dp_ccpoll_next
fatal(struct dp_ccpoll *p, int status, const char *msg)
{
	dp_err("%s", msg);
	p->status = status;
	return DP_CCPOLL_FATAL;
}

/*
 * Print candles k[0..n) (ascending), flush, then commit the newest closed
 * one as the series' cursor: in memory and, with a state file, on disk.
 * Returns DP_CCPOLL_NNEXT (go on), or what ends the run.
 */
static enum dp_ccpoll_next
emit_batch(struct dp_ccpoll *p, const struct dp_cc_candle *k, size_t n)
{
	const struct dp_ccpoll_opts *o = &p->o;
	struct series *s = &p->ser[p->cur];
	struct dp_buf err = DP_BUF_INIT;
	enum dp_ccpoll_next next;
	int r = dp_cc_series_write(&p->plan, o->out, s->fsym, s->tsym, o->raw, k, n,
	                           &s->have_cursor, &s->cursor);

	if (r == -1)
		return out_failed(p);
	observe(p, n);
	if (r == 0 || (r == 1 && !p->state))
		return DP_CCPOLL_NNEXT;
	if (r == -2 || dp_cc_state_set(p->state, s->fsym, s->tsym, o->iv, o->market,
	                               s->cursor) < 0)
		dp_buf_msgf(&err, "out of memory");
	else if (dp_cc_state_save(p->state, o->state_path, &err) == 0)
		return DP_CCPOLL_NNEXT;
	next = fatal(p, r == -2 ? DP_EX_SOFTWARE : DP_EX_IOERR, dp_buf_str(&err));
	dp_buf_free(&err);
	return next;
}

static enum dp_ccpoll_next
emit_candles(struct dp_ccpoll *p)
{
	const struct series *s = &p->ser[p->cur];
	struct dp_cc_candle *k;
	size_t n, size = p->o.page_size;
	bool done;
	enum dp_ccpoll_next next = DP_CCPOLL_NNEXT;
	int64_t lo = p->plan.lo;
	char t[DP_TIME_BUFSZ];

	if (dp_cc_series_take(&p->plan, p->page, p->npage, &k, &n, &done) < 0) {
		p->page = NULL;
		return fatal(p, DP_EX_SOFTWARE, "out of memory");
	}
	p->page = NULL;
	p->npage = 0;
	if (p->plan.forward && p->plan.no_newer)
		dp_info("%s/%s: the API has no candles from %s on", s->fsym, s->tsym,
		        dp_time_format(lo * 1000, t));
	if (!p->plan.forward && done)
		dp_info("%s/%s: %zu candles, the oldest from %s", s->fsym, s->tsym, n,
		        n ? dp_time_format(k[0].time * 1000, t) : "-");
	/* Backward collections come at once: print and commit them a page at a time. */
	for (size_t first = 0; first < n && next == DP_CCPOLL_NNEXT; first += size)
		next = emit_batch(p, k + first, n - first < size ? n - first : size);
	dp_cc_candles_free(k, n);
	p->series_done = done;
	return next;
}

enum dp_ccpoll_next
dp_ccpoll_emit(struct dp_ccpoll *p)
{
	enum dp_ccpoll_next next;

	if (!p->o.ohlcv) {
		if ((p->batch.len && dp_out_write(p->o.out, p->batch.data, p->batch.len) < 0) ||
		    dp_out_flush(p->o.out) < 0)
			return out_failed(p);
		size_t n = 0;
		for (const char *c = p->batch.data, *end = c + p->batch.len;
		     c && (c = memchr(c, '\n', (size_t)(end - c))); c++)
			n++;
		observe(p, n);
		return next_step(p);
	}
	if ((next = emit_candles(p)) != DP_CCPOLL_NNEXT)
		return next;
	return next_step(p);
}

/*
 * The API said a pair or market does not exist: a data problem of that
 * pair only.  Report it, print the others.
 */
enum dp_ccpoll_next
dp_ccpoll_missing(struct dp_ccpoll *p)
{
	p->partial = true;
	if (p->o.ohlcv) {
		const struct series *s = &p->ser[p->cur];
		dp_warn("no candles for %s/%s %s: %s", s->fsym, s->tsym,
		        dp_cc_interval_label(p->o.iv), dp_buf_str(&p->msg));
		p->series_done = true;
		return next_step(p);
	}
	/* After a refusal, never all pairs at once again in this poll. */
	dp_cc_prices_refused(&p->prices, dp_buf_str(&p->reply.api_message), dp_buf_str(&p->msg));
	return next_step(p);
}

/* ------------------------------------------------------------------ */
/* Failures and waits */

enum dp_ccpoll_next
dp_ccpoll_error(struct dp_ccpoll *p)
{
	unsigned tries = p->backoff.attempts;

	if (p->fail_transient && tries < p->o.max_retries)
		return DP_CCPOLL_RETRY;
	if (p->fail_transient && p->o.max_retries > 0)
		dp_buf_msgf(&p->msg, " (gave up after %u %s)", tries, tries == 1 ? "retry" : "retries");
	if (p->o.every_ms > 0 && (p->o.count == 0 || p->polls + 1 < p->o.count)) {
		dp_err("poll %lu failed: %s", p->polls + 1, dp_buf_str(&p->msg));
		p->polls++;
		dp_cc_series_clear(&p->plan);
		return DP_CCPOLL_POLL_FAILED;
	}
	dp_err("%s", dp_buf_str(&p->msg));
	p->status = p->fail_status;
	return DP_CCPOLL_GIVE_UP;
}

enum dp_ccpoll_next
dp_ccpoll_backoff(struct dp_ccpoll *p)
{
	static const char *const labels[] = { "cause", NULL };
	int64_t d = dp_backoff_next(&p->backoff, p->reply.retry_after_ms);
	char dur[48], asked_for[48];

	/* The server's Retry-After says it limits us; else a 5xx or the network. */
	dp_obs_count(DP_OBS_RETRIES, labels, (const char *const[]){
		p->reply.retry_after_ms >= 0 ? "rate_limit" : "request" }, 1);
	if (p->reply.retry_after_ms > d)
		dp_info("%s; retry %u of %" PRIu64 " in %s (the server asks for %s)",
		        dp_buf_str(&p->msg), p->backoff.attempts, p->o.max_retries,
		        dp_duration_format(d, dur),
		        dp_duration_format(p->reply.retry_after_ms, asked_for));
	else
		dp_info("%s; retry %u of %" PRIu64 " in %s", dp_buf_str(&p->msg),
		        p->backoff.attempts, p->o.max_retries, dp_duration_format(d, dur));
	if (dp_backoff_sleep(d, p->o.stop) < 0)
		return stopped(p);
	return DP_CCPOLL_WAKE;
}

/* Sleep until the next poll: a wall-clock multiple of every_ms, plus settle_ms for candles. */
enum dp_ccpoll_next
dp_ccpoll_wait(struct dp_ccpoll *p)
{
	int64_t every = p->o.every_ms;
	int64_t offset = p->o.ohlcv ? p->o.settle_ms % every : 0;
	/* The wall clock is past 1970: plain division rounds down. */
	int64_t next = ((dp_time_now_ms() - offset) / every + 1) * every + offset;
	char t[DP_TIME_BUFSZ];

	dp_info("next poll at %s", dp_time_format(next, t));
	if (dp_backoff_sleep_until(next, p->o.stop) < 0)
		return stopped(p);
	return DP_CCPOLL_TICK;
}
