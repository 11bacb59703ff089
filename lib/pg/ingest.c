/*
 * pg/ingest.c -- records from a source into a table, exactly once
 * (pg/ingest.h): the steps of dp-sink-pg's machine.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/exit.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "jq/expr.h"
#include "json/scan.h"
#include "kafka/client.h"
#include "kafka/onerror.h"
#include "kafka/producer.h"
#include "obs/health.h"
#include "obs/obs.h"
#include "pg/ingest.h"
#include "pg/sqlstate.h"

#define RETRY_BASE_MS 250
#define RETRY_CAP_MS 30000

struct dp_ingest {
	struct dp_ingest_conf conf;
	struct dp_source *source;
	struct dp_pgsink *sink;
	struct dp_producer *dlq;
	int reason;                     /* the first failure */
	int fail;                       /* why the last write or process failed */
	struct dp_pgsink_src *bad_src;  /* the bad record (PROCESS_FAILURE) */
	int64_t bad_offset;
	unsigned since_due;             /* records since dp_pgsink_due() was asked */
	uint64_t maps_empty;            /* records --map turned into no row */
	struct dp_buf err;
	struct dp_buf why;
	struct dp_backoff backoff;
	uint64_t backoff_batches;       /* batches committed when the backoff last started over */
	int64_t sig_ms;                 /* when the drain after a signal began */
	bool said_down;
	struct dp_progress prog;
};

static void
fail(struct dp_ingest *in, int status)
{
	if (!in->reason && status > 0)
		in->reason = status;
}

int
dp_ingest_reason(const struct dp_ingest *in)
{
	return in->reason;
}

struct dp_source *
dp_ingest_source(struct dp_ingest *in)
{
	return in->source;
}

/* ---- bad records and reporting ---------------------------------------------- */

/*
 * One bad record, by --on-error: named on stderr with its coordinates,
 * and under dlq sent as it came with headers that say why and where from,
 * acknowledged before this returns.  0, or the status of a dead letter
 * that could not be sent.  Under fail the stop is the caller's (and the
 * engine's) to make, so that is 0 too.
 */
static int
bad_record(struct dp_ingest *in, const struct dp_pgsink_src *src, const char *topic,
           int32_t partition, int64_t offset, const char *why, const char *sqlstate,
           const void *key, size_t klen, const void *value, size_t vlen, const void *own,
           size_t ownlen, const char *kind)
{
	static const char *const labels[] = { "reason", NULL };
	struct dp_on_error_policy *pol = in->conf.on_error;
	struct dp_buf at = DP_BUF_INIT;
	char part[16], off[24];
	struct dp_producer_header *h = NULL;
	size_t nh = 0;
	int st;

	dp_obs_count(DP_OBS_RECORDS_BAD, labels, (const char *const[]){ kind }, 1);
	dp_pgsink_where(src, offset, &at);
	/* The record's own headers first (a trace id stays with it), then dp's. */
	if ((ownlen && dp_on_error_unpack_headers(own, ownlen, &h, &nh) < 0) ||
	    !(h = realloc(h, (nh + 5) * sizeof(*h)))) {
		free(h);
		dp_err("%s: out of memory", dp_buf_str(&at));
		dp_buf_free(&at);
		return DP_EX_SOFTWARE;
	}
	h[nh++] = (struct dp_producer_header){ "dp-error", why, strlen(why) };
	if (sqlstate && *sqlstate)
		h[nh++] = (struct dp_producer_header){ "dp-sqlstate", sqlstate, strlen(sqlstate) };
	h[nh++] = (struct dp_producer_header){ "dp-topic", topic, strlen(topic) };
	h[nh++] = (struct dp_producer_header){ "dp-partition", part,
	                                       (size_t)snprintf(part, sizeof(part), "%d",
	                                                        (int)partition) };
	h[nh++] = (struct dp_producer_header){ "dp-offset", off,
	                                       (size_t)snprintf(off, sizeof(off), "%" PRId64,
	                                                        offset) };
	st = dp_on_error_record(pol, in->dlq, dp_buf_str(&at), why, key, klen, value, vlen, h, nh,
	                        0);
	free(h);
	dp_buf_free(&at);
	return st == DP_EX_DATAERR && pol->mode == DP_ON_ERROR_FAIL ? 0 : st;
}

/*
 * on_bad: the engine's bad records (the caller's thread); their kind is
 * the condition name of the server's code in pg/sqlstate.h's table, or
 * of its class there ("integrity_constraint_violation" for 23514: a label
 * with a few values, where the code itself is in the message and the dead
 * letter), the code for one the table does not know, or "value" when dp
 * refused the row (not JSON, a value its column cannot hold).
 */
static int
engine_bad(void *arg, const struct dp_pgsink_bad *b)
{
	const char *kind = "value";

	if (b->sqlstate && *b->sqlstate) {
		const struct dp_sqlstate *row = dp_sqlstate_of(b->sqlstate);
		kind = row->code && *row->code ? row->name : b->sqlstate;
	}
	return bad_record(arg, b->src, b->topic, b->partition, b->offset, b->reason, b->sqlstate,
	                  b->key, b->klen, b->value, b->vlen, b->headers, b->hlen, kind);
}

/*
 * A bad record this file found, of kind (too_long, tombstone, not_json,
 * map): its reason in in->why.  DP_PGSINK_BAD or a status.
 */
static int
own_bad(struct dp_ingest *in, const struct dp_source_rec *r, const char *kind)
{
	int st = bad_record(in, r->src, r->topic, r->partition, r->offset, dp_buf_str(&in->why),
	                    "", r->key, r->klen, r->value, r->vlen, r->hdr, r->hlen, kind);

	return st ? st : DP_PGSINK_BAD;
}

static void
progress(struct dp_ingest *in, bool final)
{
	struct dp_pgsink_stats st;
	char extra[128];
	int64_t l;

	if (!in->sink || !in->conf.progress)
		return;
	if (!final && dp_time_mono_ms() - in->prog.last_ms < 1000)
		return;
	dp_pgsink_stats(in->sink, &st);
	l = dp_source_lag(in->source);
	char retries[48] = "";
	if (st.retries)
		snprintf(retries, sizeof(retries), ", %" PRIu64 " retr%s", st.retries,
		         st.retries == 1 ? "y" : "ies");
	if (l >= 0)
		snprintf(extra, sizeof(extra), "lag %" PRId64 ", batch latency %" PRId64 " ms%s", l,
		         st.latency_ms, retries);
	else
		snprintf(extra, sizeof(extra), "batch latency %" PRId64 " ms%s", st.latency_ms,
		         retries);
	dp_progress_tick(&in->prog, "rows", st.rows, extra, final);
}

/* The source's tick while it waits. */
static void
tick(void *arg)
{
	progress(arg, false);
}

/* ---- records into rows -------------------------------------------------------- */

struct map_ctx {
	struct dp_ingest *in;
	const struct dp_source_rec *r;
	int rc;
	uint64_t rows;
};

static int
add_mapped(void *ctx, const char *json, size_t len)
{
	struct map_ctx *mc = ctx;
	struct dp_ingest *in = mc->in;

	mc->rows++;
	if (dp_json_type_of(json) != DP_JSON_OBJECT) {
		dp_buf_reset(&in->why);
		dp_buf_msgf(&in->why, "--map made %.*s%s, not an object", len > 40 ? 40 : (int)len,
		            json, len > 40 ? "..." : "");
		mc->rc = own_bad(in, mc->r, "map");
		return 1;
	}
	dp_buf_reset(&in->err);
	mc->rc = dp_pgsink_add(in->sink, mc->r->src, mc->r->offset, json, len, &in->err);
	return mc->rc != 0;
}

/*
 * One record: its rows into the batch.  0, DP_PGSINK_BAD (reported),
 * DP_PGSINK_STOPPED (its source takes no more rows), or a failure.
 */
static int
record(struct dp_ingest *in, const struct dp_source_rec *r)
{
	uint64_t max = in->conf.sink.batch_bytes;
	const char *why;
	size_t off;

	dp_buf_reset(&in->why);
	if (r->too_long || (r->value && r->vlen > max)) {
		dp_buf_msgf(&in->why, "a %s of %zu bytes, longer than --batch-bytes (%" PRIu64 ")",
		            dp_source_unit(in->source), r->vlen, max);
		return own_bad(in, r, "too_long");
	}
	if (!r->value) {
		dp_buf_msgf(&in->why, "a record without a value (a tombstone)");
		return own_bad(in, r, "tombstone");
	}
	dp_pgsink_raw(in->sink, r->src, r->offset, r->key, r->klen, r->value, r->vlen);
	if (r->hlen)
		dp_pgsink_raw_headers(in->sink, r->src, r->hdr, r->hlen);
	if (!in->conf.map) {
		/* The engine checks the JSON while it encodes the row. */
		dp_buf_reset(&in->err);
		return dp_pgsink_add(in->sink, r->src, r->offset, r->value, r->vlen, &in->err);
	}
	if (dp_json_check(r->value, r->vlen, &why, &off) == DP_JSON_INVALID) {
		dp_buf_msgf(&in->why, "not JSON: %s at byte %zu", why, off + 1);
		return own_bad(in, r, "not_json");
	}
	struct dp_expr_rec rec = DP_EXPR_REC(r->value, r->vlen);
	struct map_ctx mc = { in, r, 0, 0 };
	dp_buf_reset(&in->err);
	int rc = dp_expr_each(in->conf.map, &rec, add_mapped, &mc, &in->err);
	dp_expr_rec_clear(&rec);
	if (rc < 0) {
		dp_buf_msgf(&in->why, "--map: %s", dp_buf_str(&in->err));
		return own_bad(in, r, "map");
	}
	if (rc == 0 && mc.rows == 0)
		in->maps_empty++;
	return mc.rc;
}

/* ---- the steps ---------------------------------------------------------------- */

enum dp_ingest_outcome
dp_ingest_connect(struct dp_ingest *in)
{
	struct dp_on_error_policy *pol = in->conf.on_error;
	struct dp_pgsink_config cfg = in->conf.sink;
	int status;

	cfg.on_error = pol->mode == DP_ON_ERROR_FAIL ? DP_PGSINK_FAIL : DP_PGSINK_SKIP;
	cfg.keep_raw = pol->mode == DP_ON_ERROR_DLQ;
	cfg.resync = dp_source_resyncs(in->source);
	cfg.on_bad = engine_bad;
	cfg.arg = in;
	dp_buf_reset(&in->err);
	status = dp_pgsink_open(&in->sink, &cfg, &in->err);
	if (status == 0)
		dp_health_link("database", true);
	if (status == 0 && pol->mode == DP_ON_ERROR_DLQ) {
		const struct dp_producer_conf conf = {
			.kafka = in->conf.kafka, .topic = pol->dlq_topic,
		};
		in->dlq = dp_producer_new(&conf, &in->err, &status);
		if (in->dlq)
			status = dp_producer_connect(in->dlq, NULL, 0, &in->err);
	}
	if (status == 0)
		status = dp_source_connect(in->source, in->sink, &in->err);
	if (status) {
		if (dp_sig_stop || status == DP_KAFKA_STOPPED)
			return DP_INGEST_SIGNAL;
		dp_err("%s", dp_buf_str(&in->err));
		fail(in, status);
		return DP_INGEST_UNAVAILABLE;
	}
	return DP_INGEST_CONNECTED;
}

enum dp_ingest_outcome
dp_ingest_wait(struct dp_ingest *in)
{
	int status;
	enum dp_source_event ev = dp_source_wait(in->source, tick, in, &status);

	fail(in, status);
	return ev == DP_SOURCE_RECORD ? DP_INGEST_RECORD
	       : ev == DP_SOURCE_DUE ? DP_INGEST_DUE : DP_INGEST_END;
}

/* Whether src may take another record now (NULL: it is not known yet). */
static bool
room(struct dp_ingest *in, struct dp_pgsink_src *src)
{
	return !src || dp_pgsink_room(in->sink, src);
}

enum dp_ingest_outcome
dp_ingest_process(struct dp_ingest *in)
{
	struct dp_source_rec r;
	struct dp_pgsink_src *roomy = NULL;     /* has room: nothing was added since */

	while (dp_source_peek(in->source, &r) == DP_SOURCE_RECORD) {
		if (r.src != roomy && !room(in, r.src))
			return DP_INGEST_PROCESSED;
		int rc = r.blank ? 0 : record(in, &r);
		if (rc == DP_PGSINK_BAD) {
			dp_source_take(in->source);
			in->fail = 0;
			in->bad_src = r.src;
			in->bad_offset = r.offset;
			return DP_INGEST_BAD;
		}
		if (rc == DP_PGSINK_STOPPED) {
			/* After a stop at a bad record: not written, not stored. */
			dp_source_take(in->source);
			continue;
		}
		if (rc != 0) {
			/* The database was needed (a new column) and failed: the
			 * record stays in hand for after the reconnect. */
			in->fail = rc;
			return DP_INGEST_WRITE_FAILED;
		}
		dp_pgsink_done(in->sink, r.src, r.offset + 1);
		dp_source_take(in->source);
		roomy = dp_source_next_src(in->source);
		/* Lingering only matters for a slow input: look now and then. */
		if (!room(in, roomy) || ((++in->since_due & 255) == 0 && dp_pgsink_due(in->sink)))
			return DP_INGEST_PROCESSED;
	}
	return dp_pgsink_due(in->sink) ? DP_INGEST_PROCESSED : DP_INGEST_NEED_MORE;
}

/* dp_pgsink_write, then the sources another instance took over. */
static int
write_sink(struct dp_ingest *in, bool flush)
{
	int rc, st;

	dp_buf_reset(&in->err);
	rc = dp_pgsink_write(in->sink, flush, &in->err);
	st = dp_source_resync(in->source);
	return rc ? rc : st;
}

/* A signal came more than DP_INGEST_DRAIN_MS ago (the clock starts at the first look). */
static bool
signal_grace_over(struct dp_ingest *in)
{
	int64_t now = dp_time_mono_ms();

	if (!dp_sig_stop)
		return false;
	if (!in->sig_ms)
		in->sig_ms = now;
	return now - in->sig_ms > DP_INGEST_DRAIN_MS;
}

enum dp_ingest_outcome
dp_ingest_write(struct dp_ingest *in)
{
	dp_buf_reset(&in->err);
	if ((in->fail = dp_source_failure(in->source, &in->err)) != 0)
		return DP_INGEST_WRITE_FAILED;
	for (;;) {
		bool draining = dp_source_ended(in->source);
		int rc = write_sink(in, draining);
		progress(in, false);
		if (rc) {
			in->fail = rc;
			return DP_INGEST_WRITE_FAILED;
		}
		struct dp_pgsink_src *src = dp_source_next_src(in->source);
		if (draining || !src || dp_pgsink_room(in->sink, src))
			return DP_INGEST_WRITTEN;
		if (signal_grace_over(in)) {
			/* The database holds on to the batches in flight: what is
			 * not in one stays unread, and the commit rolls them back. */
			dp_source_stop(in->source);
			return DP_INGEST_WRITTEN;
		}
		dp_pgsink_wait(in->sink, 100);
	}
}

enum dp_ingest_outcome
dp_ingest_judge(struct dp_ingest *in)
{
	struct dp_on_error_policy *pol = in->conf.on_error;

	switch (in->fail) {
	case 0:         /* a bad record from processing, reported */
		if (pol->mode != DP_ON_ERROR_FAIL) {
			dp_pgsink_done(in->sink, in->bad_src, in->bad_offset + 1);
			return DP_INGEST_RESET;
		}
		/* fail: what came before it is committed, nothing after */
		dp_buf_reset(&in->why);
		dp_pgsink_where(in->bad_src, in->bad_offset, &in->why);
		dp_info("stopping at %s (--on-error fail)", dp_buf_str(&in->why));
		dp_source_stop(in->source);
		fail(in, DP_EX_DATAERR);
		return DP_INGEST_STOP;
	case DP_PGSINK_STOPPED:
		in->fail = 0;
		dp_source_stop(in->source);
		fail(in, DP_EX_DATAERR);
		return DP_INGEST_STOP;
	case DP_PGSINK_DOWN:
		return DP_INGEST_OUTAGE;
	default:
		/* A refused dead letter was named where it was refused. */
		if ((in->err.len || in->err.lost) &&
		    !(in->fail == DP_EX_DATAERR && pol->mode == DP_ON_ERROR_DLQ))
			dp_err("%s", dp_buf_str(&in->err));
		fail(in, in->fail > 0 ? in->fail : DP_EX_SOFTWARE);
		return DP_INGEST_FATAL;
	}
}

enum dp_ingest_outcome
dp_ingest_pause(struct dp_ingest *in)
{
	if (!in->said_down) {
		/* The engine says what: "lost the database (...)", read-only, ... */
		dp_warn("%s; reconnecting%s", dp_buf_str(&in->err),
		        in->conf.max_retries ? "" : " until it is back");
		in->said_down = true;
	}
	dp_health_link("database", false);
	dp_source_pause(in->source);
	return DP_INGEST_RETRY;
}

/* A signal while the database is away: what was not committed stays unwritten. */
static enum dp_ingest_outcome
stopped_in_outage(struct dp_ingest *in)
{
	dp_buf_reset(&in->why);
	dp_source_say_unwritten(in->source, &in->why);
	dp_err("stopped while the database was away: %s", dp_buf_str(&in->why));
	fail(in, DP_EX_TEMPFAIL);
	return DP_INGEST_SIGNAL;
}

enum dp_ingest_outcome
dp_ingest_backoff(struct dp_ingest *in)
{
	/* The retries count from the last commit, not the last reconnect: a
	 * server that takes connections but no batch (read-only) must not
	 * hold the run for ever. */
	struct dp_pgsink_stats stats;
	dp_pgsink_stats(in->sink, &stats);
	if (stats.batches != in->backoff_batches) {
		in->backoff_batches = stats.batches;
		dp_backoff_reset(&in->backoff);
	}
	if (in->conf.max_retries && in->backoff.attempts >= in->conf.max_retries) {
		dp_err("gave up on the database after %" PRIu64 " retries: %s", in->conf.max_retries,
		       dp_buf_str(&in->err));
		fail(in, DP_EX_UNAVAILABLE);
		return DP_INGEST_GIVE_UP;
	}
	int64_t ms = dp_backoff_next(&in->backoff, 0);
	dp_info("retry %u in %" PRId64 " ms", in->backoff.attempts, ms);
	int st = 0;
	switch (dp_source_idle(in->source, ms, &in->err, &st)) {
	case DP_SOURCE_IDLE_SIGNAL:
		return stopped_in_outage(in);
	case DP_SOURCE_IDLE_FAILED:
		fail(in, st);
		return DP_INGEST_GIVE_UP;
	default:
		return DP_INGEST_WAKE;
	}
}

enum dp_ingest_outcome
dp_ingest_reconnect(struct dp_ingest *in)
{
	static const char *const labels[] = { "cause", NULL };

	dp_obs_count(DP_OBS_RETRIES, labels, (const char *const[]){ "database_reconnect" }, 1);
	dp_buf_reset(&in->err);
	if (dp_pgsink_reconnect(in->sink, &in->err) != 0 ||
	    dp_source_resume(in->source, &in->err) == DP_PGSINK_DOWN) {
		dp_info("still no database: %s", dp_buf_str(&in->err));
		return DP_INGEST_UNAVAILABLE;
	}
	dp_warn("reconnected to the database after %u retr%s", in->backoff.attempts,
	        in->backoff.attempts == 1 ? "y" : "ies");
	in->said_down = false;
	dp_health_link("database", true);
	return DP_INGEST_RECONNECTED;
}

enum dp_ingest_outcome
dp_ingest_commit(struct dp_ingest *in)
{
	bool cancelled = false;

	for (;;) {
		int rc = write_sink(in, true);
		progress(in, false);
		if (rc) {
			in->fail = rc;
			return DP_INGEST_WRITE_FAILED;
		}
		if (dp_pgsink_idle(in->sink))
			return DP_INGEST_COMMITTED;
		if (!cancelled && signal_grace_over(in)) {
			dp_warn("the batch in flight did not commit within %d ms of the "
			        "signal: rolling it back", DP_INGEST_DRAIN_MS);
			dp_pgsink_cancel(in->sink);
			cancelled = true;
		} else if (cancelled && dp_time_mono_ms() - in->sig_ms >
		                        DP_INGEST_DRAIN_MS + DP_INGEST_ABORT_MS) {
			/* A server that does not answer the cancel either: its
			 * connections are closed under the writers. */
			dp_pgsink_abort(in->sink);
			dp_buf_reset(&in->err);
			dp_buf_msgf(&in->err, "the database answered neither the batch nor its cancel "
			            "within %d ms: closed the connection; the batch is not committed",
			            DP_INGEST_ABORT_MS);
			in->fail = DP_EX_TEMPFAIL;
			return DP_INGEST_WRITE_FAILED;
		}
		dp_pgsink_wait(in->sink, 100);
	}
}

void
dp_ingest_close(struct dp_ingest *in)
{
	dp_source_close(in->source);
}

int
dp_ingest_assigned(struct dp_ingest *in)
{
	return dp_source_assigned(in->source);
}

int
dp_ingest_revoked(struct dp_ingest *in, bool finish)
{
	return dp_source_revoked(in->source, finish);
}

int
dp_ingest_finish(struct dp_ingest *in, int status)
{
	struct dp_on_error_policy *pol = in->conf.on_error;
	struct dp_pgsink_stats st;

	if (!in->sink)
		return status;
	progress(in, true);
	dp_pgsink_stats(in->sink, &st);
	dp_info("wrote %" PRIu64 " rows in %" PRIu64 " batches to %s", st.rows, st.batches,
	        in->conf.sink.table);
	if (in->maps_empty)
		dp_info("--map made no row of %" PRIu64 " record%s", in->maps_empty,
		        in->maps_empty == 1 ? "" : "s");
	dp_on_error_summary(pol, "record");
	if (status == DP_EX_DATAERR && pol->mode == DP_ON_ERROR_DLQ) {
		dp_err("stopped at a bad record the dead-letter topic '%s' refuses; its batch is "
		       "rolled back, and the next run of group '%s' starts at the stored offsets "
		       "(raise the topic's max.message.bytes, or --on-error skip would go on)",
		       pol->dlq_topic, in->conf.group);
	} else if (status == DP_EX_DATAERR) {
		dp_buf_reset(&in->why);
		dp_source_say_written(in->source, &in->why);
		dp_err("stopped at the bad record; %s in %s (--on-error skip would go on)",
		       dp_buf_str(&in->why), in->conf.sink.table);
	}
	return status;
}

bool
dp_ingest_interrupted(struct dp_ingest *in, int status, struct dp_buf *said,
                      struct dp_source_left *left)
{
	struct dp_pgsink_stats st = { 0 };

	if (in->sink)
		dp_pgsink_stats(in->sink, &st);
	return dp_source_interrupted(in->source, status, st.rows, said, left);
}

struct dp_ingest *
dp_ingest_new(const struct dp_ingest_conf *conf, struct dp_source *source)
{
	struct dp_ingest *in = calloc(1, sizeof(*in));

	if (!in) {
		dp_source_free(source);
		return NULL;
	}
	in->conf = *conf;
	in->source = source;
	/* Equal jitter: at least half the doubled delay, the rest random. */
	dp_backoff_init(&in->backoff, RETRY_BASE_MS, RETRY_CAP_MS, 0.5, 0);
	dp_progress_init(&in->prog, conf->progress);
	return in;
}

void
dp_ingest_free(struct dp_ingest *in)
{
	if (!in)
		return;
	/* The writers first: their on_bad reaches the dead-letter producer. */
	dp_pgsink_free(in->sink);
	dp_source_free(in->source);
	dp_producer_free(in->dlq);
	dp_buf_free(&in->err);
	dp_buf_free(&in->why);
	free(in);
}
