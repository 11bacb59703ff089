/*
 * cc/session.c -- a run of CryptoCompare's streamer, one step at a time
 * (cc/session.h): connections, subscriptions, the records between, and
 * reconnects after a backoff.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cc/rest.h"
#include "cc/session.h"
#include "cc/stream.h"
#include "cc/ws.h"
#include "core/backoff.h"
#include "core/exit.h"
#include "core/log.h"
#include "core/out.h"
#include "core/parse.h"
#include "core/progress.h"
#include "core/timefmt.h"
#include "obs/health.h"
#include "obs/obs.h"

struct dp_ccsession {
	struct dp_ccsession_opts o;
	struct dp_ccs *ccs;          /* the messages' engine */
	struct dp_ws *ws;
	bool have_key;
	struct dp_backoff backoff;
	struct dp_progress prog;
	bool open;                   /* a connection was up: losing it is a gap */
	struct dp_buf msg;           /* why the last connection was lost */
	int status;                  /* FAILED, GIVE_UP */
};

struct dp_ccsession *
dp_ccsession_new(const struct dp_ccsession_opts *o, struct dp_buf *err)
{
	struct dp_ccsession *s = calloc(1, sizeof(*s));

	if (!s || !(s->ccs = dp_ccs_new(&(struct dp_ccs_opts){ .out = NULL, .raw = o->raw,
	                                                       .max_records = o->max_records }))) {
		dp_buf_msgf(err, "out of memory");
		free(s);
		return NULL;
	}
	s->o = *o;
	if ((o->subs && dp_ccs_subscribe_list(s->ccs, o->subs, err) < 0) ||
	    (o->fsyms && dp_ccs_subscribe_pairs(s->ccs, o->channels ? o->channels : "aggregate",
	                                        o->market, o->fsyms, o->nf, o->tsyms, o->nt,
	                                        o->period, err) < 0)) {
		dp_ccsession_free(s);
		return NULL;
	}
	return s;
}

void
dp_ccsession_free(struct dp_ccsession *s)
{
	if (!s)
		return;
	dp_ws_free(s->ws);
	dp_ccs_free(s->ccs);
	dp_buf_free(&s->msg);
	free(s);
}

/* dp_ws_set_secret_header, in the shape dp_cc_set_key calls. */
static int
header(void *target, const char *name, const char *value, struct dp_buf *err)
{
	return dp_ws_set_secret_header(target, name, value, err);
}

/* The key's header, "Authorization: Apikey KEY", for the upgrade request. */
static int
set_key(struct dp_ccsession *s, const char *key)
{
	int r = dp_cc_set_key(key, header, s->ws);

	s->have_key = r == 0;
	return r;
}

int
dp_ccsession_open(struct dp_ccsession *s, struct dp_out *out, const char *key)
{
	struct dp_buf err = DP_BUF_INIT;
	struct dp_ws_opts wo = {
		.user_agent = s->o.user_agent,
		.connect_timeout_ms = s->o.connect_timeout_ms,
		.cancel = s->o.stop,
	};

	dp_ccs_set_output(s->ccs, out);
	if (!(s->ws = dp_ws_new(&wo, &err))) {
		dp_err("%s", dp_buf_str(&err));
		dp_buf_free(&err);
		return DP_EX_SOFTWARE;
	}
	dp_backoff_init(&s->backoff, s->o.retry_base_ms, DP_CC_RETRY_CAP_MS, 0.5, 0);
	dp_progress_init(&s->prog, s->o.progress);
	return key ? set_key(s, key) : 0;
}

int
dp_ccsession_status(const struct dp_ccsession *s)
{
	return s->status;
}

static enum dp_ccsession_next
failed(struct dp_ccsession *s, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The run fails: say why, once. */
static enum dp_ccsession_next
failed(struct dp_ccsession *s, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dp_vlog(DP_LOG_QUIET, fmt, ap);
	va_end(ap);
	s->status = status;
	return DP_CCSESSION_FAILED;
}

/* The connection is lost for why: dp_ccsession_reconnect says it. */
static enum dp_ccsession_next
lost(struct dp_ccsession *s, const char *why)
{
	dp_health_link("api", false);
	dp_buf_reset(&s->msg);
	dp_buf_msgf(&s->msg, "%s", why);
	return DP_CCSESSION_LOST;
}

static enum dp_ccsession_next
stopped(struct dp_ccsession *s)
{
	dp_info("stopping on signal %d", s->o.stop ? atomic_load(s->o.stop) : 0);
	return DP_CCSESSION_STOPPED;
}

enum dp_ccsession_next
dp_ccsession_connect(struct dp_ccsession *s)
{
	struct dp_buf err = DP_BUF_INIT;
	enum dp_ccsession_next next;
	int r;
	long st;

	dp_info("connecting to %s (%s api key)", s->o.url, s->have_key ? "with" : "without");
	r = dp_ws_connect(s->ws, s->o.url, &err);
	st = dp_ws_http_status(s->ws);
	if (r == DP_WS_OK) {
		s->open = true;
		dp_health_link("api", true);
		next = DP_CCSESSION_CONNECTED;
	} else if (r == DP_WS_CANCELLED) {
		next = stopped(s);
	} else if (r == DP_WS_REFUSED && (st == 401 || st == 403)) {
		next = failed(s, DP_EX_NOPERM, "%s: the streamer wants a valid key",
		              dp_buf_str(&err));
	} else if (r == DP_WS_FAILED || (r == DP_WS_REFUSED && (st == 408 || st == 429 ||
	                                                        st >= 500))) {
		next = lost(s, dp_buf_str(&err));
	} else {
		next = failed(s, r == DP_WS_REFUSED ? DP_EX_UNAVAILABLE : DP_EX_SOFTWARE, "%s",
		              dp_buf_str(&err));
	}
	dp_buf_free(&err);
	return next;
}

/* Messages until the engine, the server or a signal decides (dp_ccs_pump). */
static enum dp_ccsession_next
pump(struct dp_ccsession *s, bool subscribing)
{
	struct dp_buf why = DP_BUF_INIT;
	enum dp_ccsession_next next;

	switch (dp_ccs_pump(s->ccs, s->ws, subscribing, s->o.idle_ms, &s->prog, &why)) {
	case DP_CCS_END_SUBSCRIBED:
		next = DP_CCSESSION_SUBSCRIBED;
		break;
	case DP_CCS_END_LOST:
		next = lost(s, dp_buf_str(&why));
		break;
	case DP_CCS_END_REFUSED:
		next = failed(s, DP_EX_PARTIAL, "every subscription was refused");
		break;
	case DP_CCS_END_UNAUTHORIZED:
		next = failed(s, DP_EX_NOPERM, "the streamer refused the key: %s", dp_buf_str(&why));
		break;
	case DP_CCS_END_DONE:
		next = DP_CCSESSION_FINISHED;
		break;
	case DP_CCS_END_OUTPUT:
		next = dp_out_closed(dp_ccs_output(s->ccs)) ? DP_CCSESSION_CLOSED
		                                              : DP_CCSESSION_OUTPUT;
		break;
	case DP_CCS_END_STOPPED:
		next = stopped(s);
		break;
	default:
		next = failed(s, DP_EX_SOFTWARE, "out of memory");
		break;
	}
	dp_buf_free(&why);
	return next;
}

enum dp_ccsession_next
dp_ccsession_subscribe(struct dp_ccsession *s)
{
	struct dp_buf sub = DP_BUF_INIT, err = DP_BUF_INIT;
	enum dp_ccsession_next next = DP_CCSESSION_NNEXT;

	if (dp_ccs_connected(s->ccs, &sub) < 0)
		next = failed(s, DP_EX_SOFTWARE, "out of memory");
	else if (dp_ws_send(s->ws, sub.data, sub.len, &err) < 0)
		next = lost(s, dp_buf_str(&err));
	dp_buf_free(&sub);
	dp_buf_free(&err);
	return next != DP_CCSESSION_NNEXT ? next : pump(s, true);
}

enum dp_ccsession_next
dp_ccsession_stream(struct dp_ccsession *s)
{
	/* The connection works: the next loss starts the backoff anew. */
	dp_backoff_reset(&s->backoff);
	return pump(s, false);
}

static const char *const retry_labels[] = { "cause", NULL };

enum dp_ccsession_next
dp_ccsession_reconnect(struct dp_ccsession *s)
{
	unsigned tries = s->backoff.attempts;
	int64_t d;
	char dur[48];

	if (s->open) {
		dp_ccs_lost(s->ccs, dp_time_now_ms(), dp_buf_str(&s->msg));
		s->open = false;
	}
	if (tries >= s->o.max_retries) {
		if (tries)
			dp_buf_msgf(&s->msg, " (gave up after %u %s)", tries,
			            tries == 1 ? "reconnect" : "reconnects");
		dp_err("%s", dp_buf_str(&s->msg));
		s->status = DP_EX_UNAVAILABLE;
		return DP_CCSESSION_GIVE_UP;
	}
	d = dp_backoff_next(&s->backoff, 0);
	dp_obs_count(DP_OBS_RETRIES, retry_labels, (const char *const[]){ "reconnect" }, 1);
	dp_warn("%s; connecting again in %s", dp_buf_str(&s->msg), dp_duration_format(d, dur));
	if (dp_backoff_sleep(d, s->o.stop) < 0)
		return stopped(s);
	return DP_CCSESSION_WAKE;
}

int
dp_ccsession_finish(struct dp_ccsession *s, int status)
{
	const struct dp_ccs_stats *st;
	char extra[200];

	if (!s)
		return status;
	dp_ccs_finish(s->ccs, dp_time_now_ms());
	st = dp_ccs_stats(s->ccs);
	dp_progress_tick(&s->prog, "records", st->records,
	                 dp_ccs_stats_line(s->ccs, extra, sizeof(extra)), true);
	dp_info("%llu records from %llu messages; %llu duplicate trades, %llu skipped "
	        "messages, %llu gaps, %zu refused subscriptions",
	        (unsigned long long)st->records, (unsigned long long)st->messages,
	        (unsigned long long)st->duplicates, (unsigned long long)st->malformed,
	        (unsigned long long)st->gaps, st->refused);
	/* Data the server sent that could not be read was lost: say so at the end too. */
	if (status == DP_EX_OK || status == DP_EX_PARTIAL) {
		if (st->malformed)
			return DP_EX_DATAERR;
		if (st->refused)
			return DP_EX_PARTIAL;
	}
	return status;
}
