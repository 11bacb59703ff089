/*
 * pg/source-lines.c -- a sink's records from NDJSON lines (pg/source.h):
 * dp-sink-pg --stdin.
 *
 * One sink source, named by --source-id (tracked: its stored offset is
 * the number of lines written, and a rerun passes over that many) or
 * "stdin" (not tracked).  A line's offset is its number - 1; an empty
 * line makes no row, but its number counts.  The reader's idle hook ends
 * a wait for input when the sink has work, so that a quiet pipe still
 * lands its rows within --linger.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/exit.h"
#include "core/lines.h"
#include "core/log.h"
#include "core/sig.h"
#include "obs/health.h"
#include "obs/obs.h"
#include "pg/source.h"

struct lines {
	struct dp_source base;
	struct dp_lines *in;
	const char *source_id;          /* borrowed; NULL: not tracked */
	const char *name;               /* the source's topic: source_id, or "stdin" */
	struct dp_pgsink_src *src;
	const char *line;               /* the line in hand (the reader's) */
	size_t len;
	int line_rc;                    /* DP_LINES_OK, or DP_LINES_LONG: line NULL, len its length */
	bool held;                      /* a line is in hand */
	unsigned long lineno;
	unsigned long skip_to;          /* --source-id: lines up to this one are stored */
	bool stopping;                  /* dp_lines_stop() called */
	bool at_end;                    /* the input's end was read */
	void (*tick)(void *);           /* the wait's */
	void *tick_arg;
	/* obs/obs.h: the lines taken, told every OBS_LINES and while waiting */
	struct dp_series *obs_in;
	struct dp_health_feed *obs_feed;
	unsigned obs_n;
};

#define OBS_LINES 1024

static void
obs_tell(struct lines *l)
{
	if (l->obs_n) {
		dp_series_add(l->obs_in, l->obs_n);
		dp_health_data(l->obs_feed);
		l->obs_n = 0;
	}
}

/* The reader's idle hook: stop waiting for input when the sink needs us. */
static int
reader_idle(void *ctx)
{
	struct lines *l = ctx;

	obs_tell(l);
	if (l->tick)
		l->tick(l->tick_arg);
	return dp_sig_stop || (l->base.sink && dp_pgsink_due(l->base.sink));
}

static int
lines_connect(struct dp_source *s, struct dp_buf *err)
{
	struct lines *l = (struct lines *)s;
	int st = 0;

	l->src = dp_pgsink_source(s->sink, "", l->name, -1, l->source_id != NULL, err, &st);
	if (!l->src)
		return st == DP_PGSINK_DOWN ? DP_EX_UNAVAILABLE : st;
	int64_t stored = dp_pgsink_stored(l->src);
	if (stored > 0) {
		l->skip_to = (unsigned long)stored;
		dp_info("%s: lines up to %" PRId64 " are written already; resuming after them",
		        dp_pgsink_src_label(l->src), stored);
	}
	return 0;
}

/* A file never makes a read wait (EINTR, below): look for a signal here too. */
static void
stop_reading(struct lines *l)
{
	if (!l->stopping) {
		dp_lines_stop(l->in);
		l->stopping = true;
	}
}

/* Read the next line to process.  A line before the stored offset is passed over. */
static enum dp_source_event
lines_wait(struct dp_source *s, void (*tick)(void *), void *arg, int *status)
{
	struct lines *l = (struct lines *)s;

	if (l->held)
		return DP_SOURCE_RECORD;
	if (s->ended)
		return DP_SOURCE_END;
	l->tick = tick;
	l->tick_arg = arg;
	for (;;) {
		if (dp_sig_stop)
			stop_reading(l);
		int rc = dp_lines_next(l->in, &l->line, &l->len);
		if (rc == DP_LINES_OK || rc == DP_LINES_LONG) {
			l->lineno = dp_lines_lineno(l->in);
			if (l->lineno <= l->skip_to)
				continue;
			l->line_rc = rc;
			l->held = true;
			return DP_SOURCE_RECORD;
		}
		if (rc == DP_LINES_EOF) {
			obs_tell(l);
			l->at_end = !l->stopping;
			if (l->skip_to && dp_lines_lineno(l->in) < l->skip_to)
				dp_warn("the input has %lu lines, but %s is stored at line %lu: "
				        "nothing new to write", dp_lines_lineno(l->in),
				        dp_pgsink_src_label(l->src), l->skip_to);
			s->ended = true;
			return DP_SOURCE_END;
		}
		if (rc == DP_LINES_ERR && errno == EINTR) {
			if (dp_sig_stop) {
				/* Finish what was read; read nothing more. */
				stop_reading(l);
				continue;
			}
			return DP_SOURCE_DUE;
		}
		if (rc == DP_LINES_NOMEM) {
			dp_err("out of memory reading standard input");
			*status = DP_EX_SOFTWARE;
		} else {
			dp_err("cannot read standard input: %s", strerror(errno));
			*status = DP_EX_IOERR;
		}
		s->ended = true;
		return DP_SOURCE_END;
	}
}

/* The line in hand, else the next buffered one (passing over stored ones), never waiting. */
static enum dp_source_event
lines_peek(struct dp_source *s, struct dp_source_rec *r)
{
	struct lines *l = (struct lines *)s;

	if (!l->held) {
		if (s->ended)
			return DP_SOURCE_NONE;
		do {
			if (!dp_lines_has_line(l->in))
				return DP_SOURCE_NONE;
			l->line_rc = dp_lines_next(l->in, &l->line, &l->len);
			if (l->line_rc != DP_LINES_OK && l->line_rc != DP_LINES_LONG)
				return DP_SOURCE_NONE;  /* the wait hears it again */
			l->lineno = dp_lines_lineno(l->in);
		} while (l->lineno <= l->skip_to);
		l->held = true;
	}
	bool too_long = l->line_rc == DP_LINES_LONG;
	*r = (struct dp_source_rec){
		.src = l->src, .topic = l->name, .partition = -1, .offset = (int64_t)l->lineno - 1,
		.value = too_long ? NULL : l->line, .vlen = l->len, .too_long = too_long,
		/* not kept by the reader when too long: it could not go into a batch anyway */
		.blank = !too_long && (l->len == 0 || strspn(l->line, " \t") == l->len),
	};
	return DP_SOURCE_RECORD;
}

static void
lines_take(struct dp_source *s)
{
	struct lines *l = (struct lines *)s;

	l->held = false;
	if (++l->obs_n >= OBS_LINES)
		obs_tell(l);
}

static struct dp_pgsink_src *
lines_next_src(struct dp_source *s)
{
	return ((struct lines *)s)->src;
}

static void
lines_stop(struct dp_source *s)
{
	((struct lines *)s)->held = false;
}

static enum dp_source_idle_result
lines_idle(struct dp_source *s, int64_t ms, struct dp_buf *err, int *status)
{
	(void)s;
	(void)err;
	(void)status;
	if (dp_backoff_sleep(ms, &dp_sig_stop) < 0 || dp_sig_stop)
		return DP_SOURCE_IDLE_SIGNAL;
	return DP_SOURCE_IDLE_OK;
}

static void
lines_say_unwritten(const struct dp_source *s, struct dp_buf *out)
{
	const struct lines *l = (const struct lines *)s;
	int64_t stored = l->src ? dp_pgsink_stored(l->src) : -1;

	dp_buf_msgf(out, "lines after %" PRId64 " are not written%s", stored > 0 ? stored : 0,
	            l->source_id ? " (a rerun with the same --source-id resumes there)" : "");
}

static void
lines_say_written(const struct dp_source *s, struct dp_buf *out)
{
	const struct lines *l = (const struct lines *)s;
	int64_t at = l->src ? dp_pgsink_stored(l->src) : -1;

	if (l->source_id && at >= 0)
		dp_buf_msgf(out, "lines up to %" PRId64 " are", at);
	else
		dp_buf_msgf(out, "the lines before it are");
}

/* A signal came: after the end of the input, or what it left. */
static bool
lines_interrupted(struct dp_source *s, int status, uint64_t rows, struct dp_buf *said,
                  struct dp_source_left *left)
{
	struct lines *l = (struct lines *)s;

	(void)rows;
	(void)said;
	if (l->at_end && status == 0)
		return false;
	int64_t done = l->src ? dp_pgsink_committed(l->src) : -1;
	uint64_t read = dp_lines_lineno(l->in);
	uint64_t delivered = done > 0 ? (uint64_t)done : 0;
	long long unread = dp_lines_unread(l->in);
	uint64_t undelivered = read > delivered ? read - delivered : 0;

	/* The whole file was read before the signal, and written. */
	if (unread == 0 && !undelivered && status == 0)
		return false;
	*left = (struct dp_source_left){ "line", delivered, undelivered, unread };
	return true;
}

static void
lines_free(struct dp_source *s)
{
	struct lines *l = (struct lines *)s;

	obs_tell(l);
	dp_lines_free(l->in);
	free(l);
}

static const struct dp_source_ops lines_ops = {
	.unit = "line",
	.connect = lines_connect,
	.wait = lines_wait,
	.peek = lines_peek,
	.take = lines_take,
	.next_src = lines_next_src,
	.stop = lines_stop,
	.idle = lines_idle,
	.say_unwritten = lines_say_unwritten,
	.say_written = lines_say_written,
	.interrupted = lines_interrupted,
	.free = lines_free,
};

struct dp_source *
dp_source_lines_new(const struct dp_source_lines_conf *conf)
{
	struct lines *l = calloc(1, sizeof(*l));

	/* Not DP_LINES_STRICT: the JSON scanner checks UTF-8 and NUL bytes
	 * anyway, and names the byte. */
	if (!l || !(l->in = dp_lines_new(conf->fd, 0))) {
		free(l);
		return NULL;
	}
	l->base.ops = &lines_ops;
	l->source_id = conf->source_id;
	l->name = conf->source_id ? conf->source_id : "stdin";
	l->obs_in = dp_metric_one(dp_obs_family(DP_OBS_RECORDS_IN, NULL));
	l->obs_feed = dp_health_feed("stdin");
	dp_lines_set_idle(l->in, reader_idle, l);
	/* A record longer than a batch could not be written anyway. */
	dp_lines_set_max(l->in, conf->max_line);
	return &l->base;
}
