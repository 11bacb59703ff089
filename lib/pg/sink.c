/*
 * pg/sink.c -- JSON rows into PostgreSQL with binary COPY, exactly once
 * per source (pg/sink.h): the engine's front.
 *
 * Opening and freeing the engine, the control connection's statements,
 * the sources (acquired, released, their stored offsets in
 * dp_sink_offsets) and the statistics.  The rest of the engine is in
 * model.c (the table), encode.c (rows into batches) and writer.c (the
 * writer threads); what they share is pg/sink-internal.h.
 *
 * The caller's thread owns the table model (columns, layouts), encodes
 * rows into batches and runs every DDL statement on the control
 * connection.  Writer threads only run batches: BEGIN and the table's
 * lock, the check of the table's shape, compare-and-set of the offsets
 * row, COPY (and for --upsert the INSERT from the stage table), COMMIT.
 * They share with the caller only the queues and the answers, under one
 * mutex; a layout, once made, is read-only.
 */
#include <stdlib.h>
#include <string.h>

#include "core/exit.h"
#include "core/sig.h"
#include "obs/obs.h"
#include "pg/sink-internal.h"
#include "pg/sink.h"
#include "pg/sqlstate.h"

/* ---- small helpers ----------------------------------------------------- */

/* A copy of buf's text (for SQL built in scratch). */
char *
sink_buf_dup(struct dp_buf *b)
{
	return b->data ? strndup(b->data, b->len) : strdup("");
}

/* Append name as a JSON string (for messages: unambiguous, escapes shown). */
void
sink_msg_name(struct dp_buf *m, const char *name, size_t n)
{
	struct dp_buf q = DP_BUF_INIT;

	if (dp_json_quote(&q, name, n) < 0)
		dp_buf_msgf(m, "(a name)");
	else
		dp_buf_msgf(m, "%s", q.data);
	dp_buf_free(&q);
}

/* The value, shortened for a message. */
void
sink_msg_value(struct dp_buf *m, const char *v, size_t n)
{
	if (n <= 48)
		dp_buf_msgf(m, "%.*s", (int)n, v);
	else
		dp_buf_msgf(m, "%.40s...", v);
}

/*
 * Why the database is out of reach, in the words of pg/sqlstate.h: "lost
 * the database (...)" only when the connection is lost; a standby says
 * that it is read-only.
 */
void
sink_down_msg(struct dp_buf *out, const char *sqlstate, const char *msg)
{
	const struct dp_sqlstate *row = dp_sqlstate_of(sqlstate);

	if (row->what == DP_SQLSTATE_OUTAGE && strcmp(row->words, "lost the database") == 0)
		dp_buf_msgf(out, "lost the database (%s)", msg);
	else
		dp_buf_msgf(out, "%s: %s", row->words, msg);
}

int
sink_exec_ctl(struct dp_pgsink *s, const char *sql, int n, const char *const *p, PGresult **res,
              char *state, struct dp_buf *err, const char *what)
{
	char st[6];
	enum dp_pg_kind k = dp_pg_exec(s->ctl, sql, n, p, res, state ? state : st, err, what);

	if (k == DP_PG_OK)
		return 0;
	/* A passing failure of one of these statements (a deadlock with
	 * another DDL) is served as an outage: reconnect, then again. */
	if (k == DP_PG_TRANSIENT || k == DP_PG_RETRY) {
		s->ctl_broken = true;
		dp_buf_reset(&s->ctl_down);
		sink_down_msg(&s->ctl_down, state ? state : st, dp_buf_str(err));
		dp_buf_reset(err);
		dp_buf_msgf(err, "%s", dp_buf_str(&s->ctl_down));
		return DP_PGSINK_DOWN;
	}
	return -1;
}

/*
 * An exit status for an error retrying cannot mend (pg/sqlstate.h): 77 for
 * permissions, 78 for what the table or the server's configuration must
 * change (42xxx, 0A000, 3F000: a schema that does not exist, 53400),
 * else 75.
 */
int
sink_fatal_status(const char *sqlstate)
{
	const struct dp_sqlstate *row = dp_sqlstate_of(sqlstate);

	return row->what == DP_SQLSTATE_STOP && row->status ? row->status : DP_EX_TEMPFAIL;
}

/* Where a record is, as the user names it: "line 12", "prices [2] offset 4711". */
void
dp_pgsink_where(const struct dp_pgsink_src *src, int64_t offset, struct dp_buf *out)
{
	if (src->partition >= 0)
		dp_buf_msgf(out, "%s [%d] offset %lld", src->topic, (int)src->partition,
		            (long long)offset);
	else if (src->track)
		dp_buf_msgf(out, "line %lld of source '%s'", (long long)offset + 1, src->topic);
	else
		dp_buf_msgf(out, "line %lld", (long long)offset + 1);
}

/*
 * A key's decoded name; borrowed from the literal or from buf.  -1 out
 * of memory; -2 a lone surrogate escape, which no name can hold.
 */
int
sink_key_name(struct dp_buf *buf, const char *lit, size_t n, const char **name, size_t *len)
{
	size_t bad;

	if (!memchr(lit, '\\', n)) {
		*name = lit + 1;
		*len = n - 2;
		return 0;
	}
	dp_buf_reset(buf);
	int rc = dp_json_unquote_exact(buf, lit, n, &bad);
	if (rc == -2)
		return -2;
	if (rc < 0 || dp_buf_addch(buf, '\0') < 0)
		return -1;
	*name = buf->data;
	*len = buf->len - 1;
	return 0;
}

/* A key PostgreSQL keeps as it is: 1..63 bytes, no NUL. */
const char *
sink_bad_ident(const char *name, size_t len)
{
	if (!len)
		return "an empty name";
	if (len > DP_PG_MAX_IDENT)
		return "longer than 63 bytes, which PostgreSQL would cut short";
	if (memchr(name, '\0', len))
		return "it holds a NUL character";
	return NULL;
}

/* ---- opening and freeing ----------------------------------------------- */

int
sink_connect_one(struct dp_pgsink *s, PGconn **c, struct dp_buf *err)
{
	enum dp_pg_kind k;

	*c = dp_pg_connect(s->cfg.conninfo, s->cfg.app, s->cfg.timeout_ms, &k, err);
	if (*c)
		return 0;
	if (dp_sig_stop && !err->len)
		dp_buf_msgf(err, "interrupted while connecting to the database");
	return k == DP_PG_FATAL ? DP_EX_CONFIG : k == DP_PG_AUTH ? DP_EX_NOPERM : DP_EX_UNAVAILABLE;
}

int
dp_pgsink_open(struct dp_pgsink **out, const struct dp_pgsink_config *cfg, struct dp_buf *err)
{
	struct dp_pgsink *s = calloc(1, sizeof(*s));
	int rc;

	*out = s;
	if (!s) {
		dp_buf_msgf(err, "out of memory");
		return DP_EX_SOFTWARE;
	}
	s->cfg = *cfg;
	if (!s->cfg.writers)
		s->cfg.writers = 1;
	if (!s->cfg.extra_column)
		s->cfg.extra_column = "extra";
	s->extra = -1;
	s->budget = s->cfg.batch_bytes * (s->cfg.writers + 1);
	static const char *const table[] = { "table", NULL };
	s->obs_rows = dp_metric_series(dp_obs_family(DP_OBS_RECORDS_OUT, table),
	                               (const char *const[]){ cfg->table });
	s->obs_batch = dp_metric_series(dp_obs_family(DP_OBS_BATCH_SECONDS, table),
	                                (const char *const[]){ cfg->table });
	/* Waits for answers have deadlines: on the monotonic clock, which a
	 * step of the wall clock cannot stall. */
	pthread_condattr_t ca;
	if (pthread_mutex_init(&s->mu, NULL) || pthread_condattr_init(&ca) ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) ||
	    pthread_cond_init(&s->answer_cv, &ca)) {
		dp_buf_msgf(err, "cannot make a mutex");
		return DP_EX_SOFTWARE;
	}
	pthread_condattr_destroy(&ca);
	s->mu_ok = true;
	struct dp_buf q = DP_BUF_INIT;
	if (dp_pg_qualified(&q, cfg->table) < 0 || !(s->qname = sink_buf_dup(&q))) {
		dp_buf_free(&q);
		dp_buf_msgf(err, "out of memory");
		return DP_EX_SOFTWARE;
	}
	dp_buf_reset(&q);
	if (dp_buf_addf(&q, "BEGIN; LOCK TABLE %s IN ROW EXCLUSIVE MODE", s->qname) < 0 ||
	    !(s->begin_sql = sink_buf_dup(&q))) {
		dp_buf_free(&q);
		dp_buf_msgf(err, "out of memory");
		return DP_EX_SOFTWARE;
	}
	dp_buf_free(&q);

	if ((rc = sink_connect_one(s, &s->ctl, err)) != 0)
		return rc;
	PGresult *r;
	if (sink_exec_ctl(s, "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'", 0, NULL, &r,
	                  NULL, err, "cannot list the database's extensions") != 0)
		return DP_EX_UNAVAILABLE;
	s->has_ts = PQntuples(r) > 0;
	PQclear(r);
	if (cfg->hypertable == DP_PGSINK_HYPER_ON && !s->has_ts) {
		dp_buf_msgf(err, "--hypertable on: the timescaledb extension is not installed in this "
		            "database (CREATE EXTENSION timescaledb)");
		return DP_EX_CONFIG;
	}
	rc = sink_find_table(s, err);
	if (rc == DP_PGSINK_DOWN)
		return DP_EX_UNAVAILABLE;
	if (rc < 0)
		return -rc;
	if (rc == 0 && !cfg->create) {
		dp_buf_msgf(err, "table %s does not exist (--create makes it from the first records)",
		            cfg->table);
		return DP_EX_NOTFOUND;
	}
	bool existed = rc == 1;
	if (existed && (rc = sink_table_known(s, err)) != 0)
		return rc;
	if (existed && cfg->chunk_ms)
		sink_chunk_note(s);

	if ((rc = sink_writers_start(s, err)) != 0)
		return rc;
	return 0;
}

void
dp_pgsink_free(struct dp_pgsink *s)
{
	if (!s)
		return;
	sink_writers_stop(s);
	while (s->ans_head) {
		struct batch *b = s->ans_head;
		s->ans_head = b->next;
		sink_batch_free(b);
	}
	while (s->spare) {
		struct batch *b = s->spare;
		s->spare = b->next;
		sink_batch_free(b);
	}
	for (size_t i = 0; i < s->nsrc; i++) {
		struct dp_pgsink_src *src = s->src[i];
		sink_batch_free(src->filling);
		sink_batch_list_free(src->bounced);
		free(src->group);
		free(src->topic);
		free(src->label);
		free(src);
	}
	free(s->src);
	sink_model_free(s);
	PQfinish(s->ctl);
	free(s->qname);
	free(s->begin_sql);
	free(s->schema);
	free(s->name);
	dp_buf_free(&s->scratch);
	dp_buf_free(&s->probe);
	dp_buf_free(&s->keybuf);
	dp_buf_free(&s->extrabuf);
	dp_buf_free(&s->why);
	dp_buf_free(&s->sql);
	dp_buf_free(&s->ctl_down);
	if (s->mu_ok) {
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->answer_cv);
	}
	free(s);
}

/* ---- sources ----------------------------------------------------------- */

/* The offsets table, made when missing: 0, DP_PGSINK_DOWN, or an exit status. */
static int
offsets_table(struct dp_pgsink *s, struct dp_buf *err)
{
	static const char sql[] = DP_SINKOFFSETS_DDL;
	char state[6];
	int rc;

	if (s->offsets_ready)
		return 0;
	PGresult *r;
	rc = sink_exec_ctl(s, "SELECT to_regclass('" OFFSETS_TABLE "') IS NOT NULL", 0, NULL, &r, state,
	                   err, "cannot look for table " OFFSETS_TABLE);
	if (rc)
		return rc == DP_PGSINK_DOWN ? rc : DP_EX_UNAVAILABLE;
	bool exists = *PQgetvalue(r, 0, 0) == 't';
	PQclear(r);
	if (exists) {
		s->offsets_ready = true;
		return 0;
	}
	rc = sink_exec_ctl(s, sql, 0, NULL, NULL, state, err, "cannot create table " OFFSETS_TABLE);
	/* Two first runs at once: the loser's IF NOT EXISTS can still collide. */
	if (rc && (strcmp(state, "23505") == 0 || strcmp(state, "42P07") == 0)) {
		dp_buf_reset(err);
		rc = 0;
	}
	if (rc)
		return rc == DP_PGSINK_DOWN ? rc : sink_fatal_status(state);
	s->offsets_ready = true;
	return 0;
}

/* The stored offset of src, read on c: 0 (*out -1 when none), or a kind. */
enum dp_pg_kind
sink_read_stored(PGconn *c, struct dp_pgsink_src *src, int64_t *out, char sqlstate[6],
                 struct dp_buf *err)
{
	static const char sql[] =
		"SELECT next_offset FROM " OFFSETS_TABLE
		" WHERE \"group\" = $1 AND topic = $2 AND \"partition\" = $3";
	char part[16];
	const char *p[5];
	PGresult *r;

	sink_offset_params(src, part, p);
	enum dp_pg_kind k = dp_pg_exec(c, sql, 3, p, &r, sqlstate, err,
	                               "cannot read the stored offset");
	if (k != DP_PG_OK)
		return k;
	*out = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
	PQclear(r);
	return DP_PG_OK;
}

/* The writer with the fewest acquired sources besides src (the lowest of equals). */
static unsigned
least_loaded(const struct dp_pgsink *s, const struct dp_pgsink_src *src)
{
	unsigned best = 0;
	size_t best_n = SIZE_MAX;

	for (unsigned i = 0; i < s->nw; i++) {
		size_t n = 0;
		for (size_t j = 0; j < s->nsrc; j++)
			n += s->src[j] != src && s->src[j]->active && s->src[j]->writer == i;
		if (n < best_n) {
			best = i;
			best_n = n;
		}
	}
	return best;
}

/* Start taking rows for src, from its stored offset: 0, DP_PGSINK_DOWN, or a status. */
static int
acquire(struct dp_pgsink *s, struct dp_pgsink_src *src, struct dp_buf *err)
{
	int64_t stored = -1;
	int rc;

	if (src->track) {
		if ((rc = offsets_table(s, err)) != 0)
			return rc;
		char st[6];
		enum dp_pg_kind k = sink_read_stored(s->ctl, src, &stored, st, err);
		if (k == DP_PG_TRANSIENT || k == DP_PG_RETRY) {
			s->ctl_broken = true;
			dp_buf_reset(&s->ctl_down);
			sink_down_msg(&s->ctl_down, st, dp_buf_str(err));
			dp_buf_reset(err);
			dp_buf_msgf(err, "%s", dp_buf_str(&s->ctl_down));
			return DP_PGSINK_DOWN;
		}
		if (k != DP_PG_OK)
			return DP_EX_UNAVAILABLE;
	}
	/* A batch of the last acquisition may still be running: its writer
	 * stays, so that the two never commit on two connections at once. */
	if (!src->queued)
		src->writer = least_loaded(s, src);
	pthread_mutex_lock(&s->mu);
	src->gen++;
	src->stopped = src->bouncing = false;
	atomic_store(&src->stored, stored);
	pthread_mutex_unlock(&s->mu);
	src->end = stored >= 0 ? stored : 0;
	src->active = true;
	src->closed = src->flush = src->lost = false;
	src->rec = src->raw_off = -1;
	return 0;
}

struct dp_pgsink_src *
dp_pgsink_source(struct dp_pgsink *s, const char *group, const char *topic, int32_t partition,
                 bool track, struct dp_buf *err, int *status)
{
	struct dp_pgsink_src *src = NULL;
	struct dp_buf label = DP_BUF_INIT;

	for (size_t i = 0; i < s->nsrc && !src; i++)
		if (s->src[i]->partition == partition && !strcmp(s->src[i]->topic, topic) &&
		    !strcmp(s->src[i]->group, group))
			src = s->src[i];
	if (src) {
		if (src->active)
			return src;
		goto acquire;
	}
	struct dp_pgsink_src **v = realloc(s->src, (s->nsrc + 1) * sizeof(*v));
	if (v)
		s->src = v;
	src = calloc(1, sizeof(*src));
	if (!src || !v || !(src->group = strdup(group)) || !(src->topic = strdup(topic)))
		goto nomem;
	if (partition < 0)
		dp_buf_msgf(&label, "source '%s'", topic);
	else
		dp_buf_msgf(&label, "%s/%d", topic, (int)partition);
	if (!(src->label = strdup(dp_buf_str(&label))))
		goto nomem;
	dp_buf_free(&label);
	src->s = s;
	src->partition = partition;
	src->track = track;
	src->rec = src->raw_off = -1;
	atomic_store(&src->stored, -1);
	atomic_store(&src->committed, -1);
	s->src[s->nsrc++] = src;
acquire:
	if ((*status = acquire(s, src, err)) != 0)
		return NULL;
	return src;
nomem:
	dp_buf_free(&label);
	if (src) {
		free(src->group);
		free(src->topic);
		free(src);
	}
	dp_buf_msgf(err, "out of memory");
	*status = DP_EX_SOFTWARE;
	return NULL;
}

void
dp_pgsink_release(struct dp_pgsink *s, struct dp_pgsink_src *src)
{
	struct batch *gone = NULL;

	if (!src->active)
		return;
	pthread_mutex_lock(&s->mu);
	src->gen++;
	/* Its queued batches go now; one running (the head) may still commit. */
	struct writer *w = &s->w[src->writer];
	struct batch **pp = &w->head, *prev = NULL;
	while (*pp) {
		struct batch *b = *pp;
		if (b->src == src && !(b == w->head && w->running)) {
			*pp = b->next;
			b->next = gone;
			gone = b;
			src->queued--;
			w->queued--;
			continue;
		}
		prev = b;
		pp = &b->next;
	}
	w->tail = prev;
	src->bouncing = false;
	pthread_mutex_unlock(&s->mu);
	sink_batch_list_free(src->bounced);
	src->bounced = src->bounced_tail = NULL;
	while (gone) {
		struct batch *b = gone;
		gone = b->next;
		s->sent_bytes -= b->sent_bytes;
		sink_batch_free(b);
	}
	if (src->filling) {
		s->filling_bytes -= sink_batch_bytes(src->filling);
		sink_batch_free(src->filling);
		src->filling = NULL;
	}
	src->active = false;
	src->closed = true;
	src->flush = false;
	src->rec = src->raw_off = -1;
}

void
dp_pgsink_flush(struct dp_pgsink *s, struct dp_pgsink_src *src)
{
	(void)s;
	if (src->active)
		src->flush = true;
}

bool
dp_pgsink_src_idle(const struct dp_pgsink_src *src)
{
	const struct batch *b = src->filling;

	if (!src->active)
		return true;
	return !src->queued && !src->bounced &&
	       (!b || src->closed || (!b->nrows && !(src->track && b->end > b->start)));
}

struct dp_pgsink_src *
dp_pgsink_lost(struct dp_pgsink *s)
{
	for (size_t i = 0; i < s->nsrc; i++)
		if (s->src[i]->lost) {
			s->src[i]->lost = false;
			return s->src[i];
		}
	return NULL;
}

int64_t dp_pgsink_stored(const struct dp_pgsink_src *src) { return atomic_load(&src->stored); }

int64_t dp_pgsink_committed(const struct dp_pgsink_src *src) { return atomic_load(&src->committed); }

int64_t dp_pgsink_accounted(const struct dp_pgsink_src *src) { return src->end; }

const char *dp_pgsink_src_label(const struct dp_pgsink_src *src) { return src->label; }

bool
dp_pgsink_idle(const struct dp_pgsink *s)
{
	for (size_t i = 0; i < s->nsrc; i++)
		if (!dp_pgsink_src_idle(s->src[i]))
			return false;
	return true;
}

void
dp_pgsink_stats(const struct dp_pgsink *s, struct dp_pgsink_stats *st)
{
	*st = s->stats;
	st->retries = atomic_load(&s->retries);
}
