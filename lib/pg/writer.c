/*
 * pg/writer.c -- the sink engine's writers (pg/sink-internal.h): one
 * thread and one connection each, running the batches queued for it.
 *
 * A batch is one transaction: BEGIN with the table's lock, the check of
 * the table's shape against the batch's model version, the
 * compare-and-set of its source's row of dp_sink_offsets, COPY (and for
 * --upsert the INSERT from the stage table), COMMIT.  Rows the server
 * refuses (SQLSTATE classes 22, 23) are found by halving the batch under
 * savepoints; the caller's thread judges them (on_bad) while the
 * transaction waits (ask).  Passing failures (pg/sqlstate.h's retry rows)
 * are retried in place; a lost connection leaves the writer broken, its
 * batch at the head of its queue, until dp_pgsink_reconnect.
 *
 * The caller's side is here too: queueing batches (sink_submit), taking
 * the answers in (collect), dp_pgsink_write which drives the whole
 * engine one step, and reconnecting.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/timefmt.h"
#include "core/vec.h"
#include "obs/obs.h"
#include "pg/sink-internal.h"
#include "pg/sink.h"
#include "pg/sqlstate.h"

/* Append b (its next already NULL) to the list of head and tail. */
static void
batch_append(struct batch **head, struct batch **tail, struct batch *b)
{
	if (*tail)
		(*tail)->next = b;
	else
		*head = b;
	*tail = b;
}

/* ---- a batch's transaction --------------------------------------------- */

static enum dp_pg_kind
wexec(struct writer *w, const char *sql, int n, const char *const *p, PGresult **res)
{
	dp_buf_reset(&w->err);
	return dp_pg_exec(w->c, sql, n, p, res, w->sqlstate, &w->err, NULL);
}

/* The results of a COPY (or any statement) until the connection is idle again. */
static enum dp_pg_kind
drain_results(struct writer *w)
{
	enum dp_pg_kind k = DP_PG_OK;
	PGresult *r;

	while ((r = PQgetResult(w->c))) {
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_COPY_IN) {
			/* The server still waits for data it will not get. */
			PQputCopyEnd(w->c, "abandoned");
		} else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && k == DP_PG_OK) {
			k = dp_pg_classify(r, w->c);
			if (k == DP_PG_OK)
				k = DP_PG_FATAL;
			dp_buf_reset(&w->err);
			dp_pg_error(&w->err, r, w->c);
			snprintf(w->sqlstate, sizeof(w->sqlstate), "%s", dp_pg_sqlstate(r));
		}
		PQclear(r);
		if (PQstatus(w->c) == CONNECTION_BAD)
			break;
	}
	if (PQstatus(w->c) == CONNECTION_BAD && k == DP_PG_OK) {
		k = DP_PG_TRANSIENT;
		dp_buf_reset(&w->err);
		dp_pg_error(&w->err, NULL, w->c);
	}
	if (PQstatus(w->c) == CONNECTION_BAD)
		k = DP_PG_TRANSIENT;
	return k;
}

/* COPY rows [i, j) of b, all of layout L. */
static enum dp_pg_kind
copy_rows(struct writer *w, struct batch *b, struct layout *L, size_t i, size_t j)
{
	PGresult *r = PQexec(w->c, L->copy_sql);

	if (!r || PQresultStatus(r) != PGRES_COPY_IN) {
		enum dp_pg_kind k = r ? dp_pg_classify(r, w->c) : DP_PG_TRANSIENT;
		dp_buf_reset(&w->err);
		dp_pg_error(&w->err, r, w->c);
		snprintf(w->sqlstate, sizeof(w->sqlstate), "%s", dp_pg_sqlstate(r));
		PQclear(r);
		drain_results(w);
		return k == DP_PG_OK ? DP_PG_FATAL : k;
	}
	PQclear(r);
	size_t from = b->rows[i].pos, to = j < b->nrows ? b->rows[j].pos : b->data.len;
	int ok = PQputCopyData(w->c, DP_PGBIN_HEADER, DP_PGBIN_HEADER_LEN) == 1;
	while (ok && from < to) {
		size_t n = to - from > COPY_CHUNK ? COPY_CHUNK : to - from;
		ok = PQputCopyData(w->c, b->data.data + from, (int)n) == 1;
		from += n;
	}
	if (ok)
		ok = PQputCopyData(w->c, DP_PGBIN_TRAILER, DP_PGBIN_TRAILER_LEN) == 1;
	PQputCopyEnd(w->c, ok ? NULL : "the client failed to send the data");
	return drain_results(w);
}

/* Rows of records [r0, r1): one COPY per layout piece (and the upsert). */
static enum dp_pg_kind
write_records(struct writer *w, struct batch *b, size_t r0, size_t r1, bool clear_after)
{
	size_t i = w->recs[r0], j = w->recs[r1];
	enum dp_pg_kind k;

	for (size_t g = 0; g < b->nsegs; g++) {
		size_t lo = b->segs[g].first, hi = g + 1 < b->nsegs ? b->segs[g + 1].first : b->nrows;
		if (lo < i)
			lo = i;
		if (hi > j)
			hi = j;
		if (lo >= hi)
			continue;
		struct layout *L = b->segs[g].L;
		if ((k = copy_rows(w, b, L, lo, hi)) != DP_PG_OK)
			return k;
		if (!L->insert_sql)
			continue;
		if ((k = wexec(w, L->insert_sql, 0, NULL, NULL)) != DP_PG_OK)
			return k;
		/* The stage keeps its rows until COMMIT: empty it when more
		 * pieces follow in this transaction, or a later piece would
		 * upsert these rows again after newer ones. */
		if ((clear_after || hi < j) && (k = wexec(w, L->clear_sql, 0, NULL, NULL)) != DP_PG_OK)
			return k;
	}
	return DP_PG_OK;
}

void
sink_offset_params(struct dp_pgsink_src *src, char part[16], const char *p[5])
{
	snprintf(part, 16, "%d", (int)src->partition);
	p[0] = src->group;
	p[1] = src->topic;
	p[2] = part;
}

/*
 * A bad record for the caller.  One the caller has judged already (this
 * batch is being sent again after an outage) is not asked about twice.
 */
static int
note_bad(struct batch *b, int64_t offset, const char *reason, const char *sqlstate)
{
	for (size_t i = 0; i < b->nbads; i++)
		if (b->bads[i].offset == offset)
			return 0;
	struct badrec *v = dp_grow(b->bads, &b->capbads, b->nbads + 1, sizeof(*v), 4);
	if (!v)
		return -1;
	b->bads = v;
	v = &b->bads[b->nbads];
	if (!(v->reason = strdup(reason)))
		return -1;
	v->offset = offset;
	snprintf(v->sqlstate, sizeof(v->sqlstate), "%s", sqlstate);
	b->nbads++;
	return 0;
}

/*
 * Hand the batch's bad records to the caller's thread and wait, with the
 * transaction open, for its verdict (judge()): 0 to commit, on_bad's
 * status, or -1 when the source was released meanwhile or the engine is
 * closing (roll back).
 */
static int
ask(struct writer *w, struct batch *b)
{
	struct dp_pgsink *s = w->s;
	int v;

	pthread_mutex_lock(&s->mu);
	b->judged = false;
	b->asking = true;
	b->ask_next = NULL;
	if (s->ask_tail)
		s->ask_tail->ask_next = b;
	else
		s->ask_head = b;
	s->ask_tail = b;
	atomic_fetch_add(&s->answered, 1);
	pthread_cond_broadcast(&s->answer_cv);
	while (!b->judged && !w->quit)
		pthread_cond_wait(&w->cv, &s->mu);
	v = b->judged ? b->verdict : -1;
	b->asking = false;
	pthread_mutex_unlock(&s->mu);
	return v;
}

/*
 * Find the bad records of [r0, r1) by halving, each try under a
 * savepoint so that a failure undoes only itself.  Returns DP_PG_OK
 * (the good rows are in), DP_PG_DATA when the fail mode stopped at a bad
 * record (b->stop), or a transient or fatal kind.
 */
static enum dp_pg_kind
bisect(struct writer *w, struct batch *b, size_t r0, size_t r1)
{
	enum dp_pg_kind k;

	if (r0 >= r1)
		return DP_PG_OK;
	if ((k = wexec(w, "SAVEPOINT dp", 0, NULL, NULL)) != DP_PG_OK)
		return k;
	k = write_records(w, b, r0, r1, true);
	if (k == DP_PG_OK)
		return wexec(w, "RELEASE SAVEPOINT dp", 0, NULL, NULL);
	if (k != DP_PG_DATA)
		return k;
	/* The server's reason, before the rollback statements reset it. */
	char state[6];
	dp_buf_reset(&w->why);
	dp_buf_msgf(&w->why, "%s", dp_buf_str(&w->err));
	memcpy(state, w->sqlstate, sizeof(state));
	if ((k = wexec(w, "ROLLBACK TO SAVEPOINT dp", 0, NULL, NULL)) != DP_PG_OK ||
	    (k = wexec(w, "RELEASE SAVEPOINT dp", 0, NULL, NULL)) != DP_PG_OK)
		return k;
	if (r1 - r0 > 1) {
		size_t m = r0 + (r1 - r0) / 2;
		if ((k = bisect(w, b, r0, m)) != DP_PG_OK)
			return k;
		return bisect(w, b, m, r1);
	}
	/* One record, and it is bad: the server said why.  The caller hears
	 * of it before this transaction commits (ask). */
	int64_t off = b->rows[w->recs[r0]].offset;
	struct dp_pgsink *s = w->s;
	if (s->cfg.on_error != DP_PGSINK_FAIL)
		b->bad_rows += w->recs[r1] - w->recs[r0];
	if (note_bad(b, off, dp_buf_str(&w->why), state) < 0) {
		dp_buf_reset(&w->err);
		dp_buf_msgf(&w->err, "out of memory");
		return DP_PG_FATAL;
	}
	if (s->cfg.on_error == DP_PGSINK_FAIL) {
		b->stop = off;
		return DP_PG_DATA;
	}
	return DP_PG_OK;
}

static void
answer(struct batch *b, enum result r, int status, struct dp_buf *msg)
{
	b->result = r;
	b->status = status;
	if (msg && msg->len)
		b->msg = strdup(dp_buf_str(msg));
}

/* Whether the table is still what b was encoded for (its fingerprint). */
static enum dp_pg_kind
same_shape(struct writer *w, const struct batch *b, bool *same)
{
	static const char sql[] =
		"SELECT " FINGERPRINT " FROM pg_class c WHERE c.oid = to_regclass($1)";
	const char *p[1] = { w->s->qname };
	PGresult *r;
	enum dp_pg_kind k;

	if ((k = wexec(w, sql, 1, p, &r)) != DP_PG_OK)
		return k;
	*same = PQntuples(r) == 1 && b->mv && strcmp(PQgetvalue(r, 0, 0), b->mv->fp) == 0;
	PQclear(r);
	return DP_PG_OK;
}

/*
 * One transaction: the compare-and-set of the source's offset, the rows
 * (all at once, or bisected), the commit.  DP_PG_OK when it committed
 * (b->result set), else the kind of failure.
 */
static enum dp_pg_kind
attempt(struct writer *w, struct batch *b, size_t nrec, bool halving)
{
	struct dp_pgsink_src *src = b->src;
	enum dp_pg_kind k;
	PGresult *r = NULL;

	/*
	 * The table's lock first (what COPY takes: no ALTER TABLE until the
	 * end), then its shape: a table that changed since the batch was
	 * encoded is not written.  A batch of no rows only moves its offset.
	 */
	if ((k = wexec(w, b->nrows ? w->s->begin_sql : "BEGIN", 0, NULL, NULL)) != DP_PG_OK) {
		if (b->nrows && strcmp(w->sqlstate, "42P01") == 0) {
			struct dp_buf m = DP_BUF_INIT;
			dp_buf_msgf(&m, "table %s is gone: dropped or renamed while dp-sink-pg ran (%s)",
			            w->s->cfg.table, dp_buf_str(&w->err));
			dp_buf_reset(&w->err);
			dp_buf_msgf(&w->err, "%s", dp_buf_str(&m));
			dp_buf_free(&m);
		}
		return k;
	}
	if (b->nrows) {
		bool same;
		if ((k = same_shape(w, b, &same)) != DP_PG_OK)
			return k;
		if (!same) {
			if ((k = wexec(w, "ROLLBACK", 0, NULL, NULL)) != DP_PG_OK)
				return k;
			answer(b, R_RESHAPE, 0, NULL);
			return DP_PG_OK;
		}
	}
	if (src->track) {
		static const char cas[] =
			"INSERT INTO " OFFSETS_TABLE " AS o (\"group\", topic, \"partition\", next_offset, updated_at) "
			"VALUES ($1, $2, $3, $5, now()) "
			"ON CONFLICT (\"group\", topic, \"partition\") DO UPDATE "
			"SET next_offset = EXCLUDED.next_offset, updated_at = now() "
			"WHERE o.next_offset = $4";
		char part[16], from[24], to[24];
		const char *p[5];
		/*
		 * The row must say this batch's start: the end of the batch
		 * before it.  No row yet (NULL) only matches an insert.
		 */
		int64_t stored = atomic_load(&src->stored);
		sink_offset_params(src, part, p);
		snprintf(from, sizeof(from), "%lld", (long long)b->start);
		snprintf(to, sizeof(to), "%lld", (long long)b->end);
		p[3] = stored >= 0 ? from : NULL;
		p[4] = to;
		if ((k = wexec(w, cas, 5, p, &r)) != DP_PG_OK)
			return k;
		bool moved = strcmp(PQcmdTuples(r), "1") == 0;
		PQclear(r);
		if (!moved) {
			wexec(w, "ROLLBACK", 0, NULL, NULL);
			dp_buf_reset(&w->err);
			dp_buf_msgf(&w->err, "%s: the stored offset is not %lld any more: another "
			            "dp-sink-pg is writing this source", src->label,
			            (long long)(stored >= 0 ? b->start : -1));
			answer(b, R_LOST, DP_EX_TEMPFAIL, &w->err);
			return DP_PG_OK;
		}
	}
	b->stop = -1;
	k = halving ? bisect(w, b, 0, nrec) : write_records(w, b, 0, nrec, false);
	if (k == DP_PG_DATA && halving) {
		/* Stopped at a bad record: the records before it commit. */
		if (src->track) {
			static const char upd[] =
				"UPDATE " OFFSETS_TABLE " SET next_offset = $4, updated_at = now() "
				"WHERE \"group\" = $1 AND topic = $2 AND \"partition\" = $3";
			char part[16], at[24];
			const char *p[5];
			sink_offset_params(src, part, p);
			snprintf(at, sizeof(at), "%lld", (long long)b->stop);
			p[3] = at;
			if ((k = wexec(w, upd, 4, p, NULL)) != DP_PG_OK)
				return k;
		}
		k = DP_PG_OK;
	}
	if (k != DP_PG_OK)
		return k;
	if (b->nbads > b->njudged) {
		int v = ask(w, b);
		if (v < 0 || (v > 0 && b->stop < 0)) {
			/* Released meanwhile, or a bad record could not be dealt with
			 * (a dead letter not acknowledged): nothing of it commits. */
			wexec(w, "ROLLBACK", 0, NULL, NULL);
			dp_buf_reset(&w->err);
			if (v > 0)
				dp_buf_msgf(&w->err, "%s: a batch was rolled back because a bad record "
				            "in it could not be dealt with", src->label);
			answer(b, v < 0 ? R_DISCARDED : R_FATAL, v > 0 ? v : 0, &w->err);
			return DP_PG_OK;
		}
	}
	if ((k = wexec(w, "COMMIT", 0, NULL, NULL)) != DP_PG_OK)
		return k;
	int64_t end = b->stop >= 0 ? b->stop : b->end;
	/* Not for a batch of an earlier acquisition: the stored offset
	 * was read again since, and is newer. */
	pthread_mutex_lock(&w->s->mu);
	if (b->gen == src->gen) {
		if (src->track)
			atomic_store(&src->stored, end);
		atomic_store(&src->committed, end);
	}
	pthread_mutex_unlock(&w->s->mu);
	b->written = 0;
	for (size_t i = 0; i < b->nrows; i++)
		b->written += b->rows[i].offset < end;
	b->written -= b->bad_rows;
	answer(b, b->stop >= 0 ? R_STOPPED : R_COMMITTED, 0, NULL);
	return DP_PG_OK;
}

/* Stage tables for the layouts of b, made outside the transaction (a
 * rollback would take them away unseen). */
static enum dp_pg_kind
ensure_stages(struct writer *w, struct batch *b)
{
	for (size_t g = 0; g < b->nsegs; g++) {
		struct layout *L = b->segs[g].L;
		if (!L->stage_sql)
			continue;
		if (L->id >= w->nstaged) {
			size_t n = L->id + 16;
			unsigned char *p = realloc(w->staged, n);
			if (!p) {
				dp_buf_reset(&w->err);
				dp_buf_msgf(&w->err, "out of memory");
				return DP_PG_FATAL;
			}
			memset(p + w->nstaged, 0, n - w->nstaged);
			w->staged = p;
			w->nstaged = n;
		}
		if (w->staged[L->id])
			continue;
		enum dp_pg_kind k = wexec(w, L->stage_sql, 0, NULL, NULL);
		if (k != DP_PG_OK)
			return k;
		w->staged[L->id] = 1;
	}
	return DP_PG_OK;
}

/*
 * After a passing failure of the batch (pg/sqlstate.h's retry rows): wait
 * before trying it again, saying why.  false when it must not be tried
 * again: the retries are used up (--max-retries, else RETRIES_DEFAULT),
 * or the engine is cancelling or closing.
 */
static const char *const retry_labels[] = { "cause", NULL };

static bool
retry_wait(struct writer *w, struct batch *b, unsigned tries)
{
	struct dp_pgsink *s = w->s;
	uint64_t limit = s->cfg.max_retries ? s->cfg.max_retries : RETRIES_DEFAULT;
	const struct dp_sqlstate *row = dp_sqlstate_of(w->sqlstate);

	if (tries >= limit || atomic_load(&s->aborting))
		return false;
	int64_t ms = dp_backoff_next(&w->backoff, 0);
	char d[48];
	dp_warn("%s: %s: %s; trying the batch again in %s (retry %u of %llu)", b->src->label,
	        row->words, dp_buf_str(&w->err), dp_duration_format(ms, d), tries + 1,
	        (unsigned long long)limit);
	atomic_fetch_add(&s->retries, 1);
	dp_obs_count(DP_OBS_RETRIES, retry_labels, (const char *const[]){ row->name }, 1);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	while (!w->quit && !atomic_load(&s->aborting) &&
	       pthread_cond_timedwait(&w->cv, &s->mu, &ts) != ETIMEDOUT)
		;
	bool go = !w->quit && !atomic_load(&s->aborting);
	pthread_mutex_unlock(&s->mu);
	return go;
}

/* Run one batch; its answer goes into b.  DP_PG_TRANSIENT: try again later. */
static enum dp_pg_kind
run_batch(struct writer *w, struct batch *b)
{
	size_t nrec = 0;
	enum dp_pg_kind k;

	if (b->nrows == 0 && !b->src->track) {
		answer(b, R_COMMITTED, 0, NULL);
		return DP_PG_OK;
	}
	if (b->nrows + 1 > w->caprecs) {
		size_t *p = realloc(w->recs, (b->nrows + 1) * sizeof(*p));
		if (!p) {
			dp_buf_reset(&w->err);
			dp_buf_msgf(&w->err, "out of memory");
			answer(b, R_FATAL, DP_EX_SOFTWARE, &w->err);
			return DP_PG_OK;
		}
		w->recs = p;
		w->caprecs = b->nrows + 1;
	}
	for (size_t i = 0; i < b->nrows; i++)
		if (i == 0 || b->rows[i].offset != b->rows[i - 1].offset)
			w->recs[nrec++] = i;
	w->recs[nrec] = b->nrows;

	dp_backoff_reset(&w->backoff);
	for (unsigned tries = 0; ; tries++) {
		b->bad_rows = 0;
		b->written = 0;
		/* Bad records found by an attempt cut short (an outage, a
		 * deadlock) are found again. */
		for (size_t i = b->njudged; i < b->nbads; i++)
			free(b->bads[i].reason);
		b->nbads = b->njudged;
		k = ensure_stages(w, b);
		if (k == DP_PG_FATAL) {
			/* The stage is made from the table as the batch knew it:
			 * a column gone since fails here, before the check. */
			bool same = true;
			char state[6];
			memcpy(state, w->sqlstate, sizeof(state));
			struct dp_buf keep = DP_BUF_INIT;
			dp_buf_msgf(&keep, "%s", dp_buf_str(&w->err));
			if (same_shape(w, b, &same) == DP_PG_OK && !same) {
				dp_buf_free(&keep);
				answer(b, R_RESHAPE, 0, NULL);
				return DP_PG_OK;
			}
			dp_buf_reset(&w->err);
			dp_buf_msgf(&w->err, "%s", dp_buf_str(&keep));
			dp_buf_free(&keep);
			memcpy(w->sqlstate, state, sizeof(state));
		}
		if (k == DP_PG_OK) {
			k = attempt(w, b, nrec, false);
			if (k == DP_PG_DATA) {
				/* Some row is bad: start over, halving to find it. */
				if ((k = wexec(w, "ROLLBACK", 0, NULL, NULL)) == DP_PG_OK) {
					b->bad_rows = 0;
					k = attempt(w, b, nrec, true);
				}
			}
		}
		if (k != DP_PG_RETRY)
			break;
		if (PQtransactionStatus(w->c) != PQTRANS_IDLE)
			PQclear(PQexec(w->c, "ROLLBACK"));
		if (PQstatus(w->c) == CONNECTION_BAD)
			return DP_PG_TRANSIENT;
		if (!retry_wait(w, b, tries))
			break;
	}
	if (k == DP_PG_OK || k == DP_PG_TRANSIENT)
		return k;
	/* Retrying cannot mend it: a dropped column, a permission, ... */
	if (PQtransactionStatus(w->c) != PQTRANS_IDLE)
		PQclear(PQexec(w->c, "ROLLBACK"));
	const struct dp_sqlstate *row = dp_sqlstate_of(w->sqlstate);
	struct dp_buf m = DP_BUF_INIT;
	dp_buf_msgf(&m, "cannot write to %s: ", w->s->cfg.table);
	if (k == DP_PG_RETRY && atomic_load(&w->s->aborting))
		dp_buf_msgf(&m, "cancelled: ");
	else if (k == DP_PG_RETRY)
		dp_buf_msgf(&m, "gave up on the batch after %llu retries: ",
		            (unsigned long long)(w->s->cfg.max_retries ? w->s->cfg.max_retries
		                                                      : RETRIES_DEFAULT));
	if (*w->sqlstate && strcmp(w->sqlstate, "42P01") != 0)
		dp_buf_msgf(&m, "%s: ", row->words);
	dp_buf_msgf(&m, "%s", dp_buf_str(&w->err));
	answer(b, R_FATAL, k == DP_PG_RETRY ? DP_EX_TEMPFAIL : sink_fatal_status(w->sqlstate), &m);
	dp_buf_free(&m);
	return DP_PG_OK;
}

/* ---- the writer threads ------------------------------------------------ */

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct dp_pgsink *s = w->s;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!w->quit && (w->broken || !w->head))
			pthread_cond_wait(&w->cv, &s->mu);
		if (w->quit)
			break;
		struct batch *b = w->head;
		/* A source stopped at a bad row, or released since: not sent. */
		bool skip = b->src->stopped || b->gen != b->src->gen;
		/* Its table changed under an earlier batch: back, in order. */
		bool back = !skip && b->src->bouncing;
		w->running = true;
		pthread_mutex_unlock(&s->mu);

		enum dp_pg_kind k = DP_PG_OK;
		if (skip)
			answer(b, R_DISCARDED, 0, NULL);
		else if (back)
			answer(b, R_RESHAPE, 0, NULL);
		else
			k = run_batch(w, b);

		pthread_mutex_lock(&s->mu);
		w->running = false;
		if (k == DP_PG_TRANSIENT) {
			/* Keep the batch at the head; the caller reconnects. */
			w->broken = true;
			dp_buf_reset(&w->down);
			sink_down_msg(&w->down, w->sqlstate, dp_buf_str(&w->err));
		} else {
			if ((b->result == R_STOPPED || b->result == R_LOST || b->result == R_FATAL) &&
			    b->gen == b->src->gen)
				b->src->stopped = true;
			if (b->result == R_RESHAPE && b->gen == b->src->gen)
				b->src->bouncing = true;
			w->head = b->next;
			if (!w->head)
				w->tail = NULL;
			b->next = NULL;
			batch_append(&s->ans_head, &s->ans_tail, b);
		}
		atomic_fetch_add(&s->answered, 1);
		pthread_cond_broadcast(&s->answer_cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* A cancel request, sent from a thread of its own: PQcancel waits for the
 * server, which may not answer at all. */
static void *
cancel_main(void *arg)
{
	char buf[256];

	PQcancel(arg, buf, sizeof(buf));
	PQfreeCancel(arg);
	return NULL;
}

void
dp_pgsink_cancel(struct dp_pgsink *s)
{
	pthread_attr_t a;

	if (!s || !s->w)
		return;
	atomic_store(&s->aborting, true);
	if (pthread_attr_init(&a))
		return;
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&s->mu);
	for (unsigned i = 0; i < s->nw; i++) {
		struct writer *w = &s->w[i];
		pthread_cond_broadcast(&w->cv);         /* out of a retry's wait */
		if (!w->running)
			continue;
		pthread_t t;
		PGcancel *c = PQgetCancel(w->c);
		if (c && pthread_create(&t, &a, cancel_main, c) != 0)
			PQfreeCancel(c);
	}
	pthread_mutex_unlock(&s->mu);
	pthread_attr_destroy(&a);
}

void
dp_pgsink_abort(struct dp_pgsink *s)
{
	if (!s || !s->w)
		return;
	atomic_store(&s->aborting, true);
	pthread_mutex_lock(&s->mu);
	for (unsigned i = 0; i < s->nw; i++) {
		pthread_cond_broadcast(&s->w[i].cv);
		if (s->w[i].running)
			dp_pg_shutdown(s->w[i].c);
	}
	pthread_mutex_unlock(&s->mu);
}

/* Whether a writer is running a batch (under mu). */
static bool
writers_busy(const struct dp_pgsink *s)
{
	for (unsigned i = 0; i < s->nw; i++)
		if (s->w[i].running)
			return true;
	return false;
}

/* ---- the caller's side ------------------------------------------------- */

/* Queue b on its source's writer. */
void
sink_enqueue(struct dp_pgsink *s, struct dp_pgsink_src *src, struct batch *b)
{
	struct writer *w = &s->w[src->writer];

	b->sent_ms = dp_time_mono_ms();
	b->widx = src->writer;
	b->sent_bytes = sink_batch_bytes(b);
	s->sent_bytes += b->sent_bytes;
	pthread_mutex_lock(&s->mu);
	b->next = NULL;
	if (w->tail)
		w->tail->next = b;
	else
		w->head = b;
	w->tail = b;
	src->queued++;
	w->queued++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&s->mu);
}

void
sink_submit(struct dp_pgsink *s, struct dp_pgsink_src *src)
{
	struct batch *b = src->filling;

	src->filling = NULL;
	s->filling_bytes -= sink_batch_bytes(b);
	if ((b->nrows == 0 && !src->track) || (b->nrows == 0 && b->end == b->start)) {
		sink_batch_free(b);          /* nothing to write, nothing to store */
		return;
	}
	sink_enqueue(s, src, b);
}

/*
 * The bad records writers found, each to on_bad, and the verdicts back
 * to the writers waiting for them (ask).  A batch of a source released
 * meanwhile is rolled back unjudged: its new owner will find them.
 */
static void
judge(struct dp_pgsink *s, struct batch *list)
{
	while (list) {
		struct batch *b = list;
		list = b->ask_next;
		int v = 0;
		if (b->gen != b->src->gen) {
			v = -1;
		} else {
			for (size_t i = b->njudged; i < b->nbads; i++) {
				const struct badrec *r = &b->bads[i];
				int st = sink_report_kept(s, b, r->offset, r->reason, r->sqlstate, NULL, 0);
				if (st && !v)
					v = st;
			}
			b->njudged = b->nbads;
		}
		pthread_mutex_lock(&s->mu);
		b->verdict = v;
		b->judged = true;
		pthread_cond_broadcast(&s->w[b->widx].cv);
		pthread_mutex_unlock(&s->mu);
	}
}

/* Take in what the writers answered.  0 or the first status worth stopping for. */
static int
collect(struct dp_pgsink *s, struct dp_buf *err)
{
	struct batch *list, *asks;
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	list = s->ans_head;
	s->ans_head = s->ans_tail = NULL;
	asks = s->ask_head;
	s->ask_head = s->ask_tail = NULL;
	atomic_store(&s->answered, 0);
	pthread_mutex_unlock(&s->mu);
	judge(s, asks);
	while (list) {
		struct batch *b = list;
		struct dp_pgsink_src *src = b->src;
		list = b->next;
		src->queued--;
		s->w[b->widx].queued--;
		s->sent_bytes -= b->sent_bytes;
		b->sent_bytes = 0;
		bool current = b->gen == src->gen;
		switch (b->result) {
		case R_COMMITTED:
		case R_STOPPED:
			s->stats.rows += b->written;
			s->stats.batches++;
			s->stats.latency_ms = dp_time_mono_ms() - b->sent_ms;
			dp_series_add(s->obs_rows, (double)b->written);
			dp_series_observe(s->obs_batch, (double)s->stats.latency_ms / 1000);
			if (b->result == R_STOPPED && current) {
				src->end = b->stop;
				src->closed = true;
				s->stop_pending = true;
			}
			break;
		case R_LOST:
			if (current && s->cfg.resync) {
				/* Another instance wrote it: start over from its offset. */
				dp_pgsink_release(s, src);
				src->lost = true;
				break;
			}
			/* fall through */
		case R_FATAL:
			if (!current)
				break;
			src->closed = true;
			if (!rc) {
				dp_buf_msgf(err, "%s", b->msg ? b->msg : "a writer failed");
				rc = b->status ? b->status : DP_EX_SOFTWARE;
			}
			break;
		case R_RESHAPE:
			if (!current)
				break;
			/* Its table changed: kept, in order, for sink_reshape(). */
			b->next = NULL;
			b->result = R_NONE;
			batch_append(&src->bounced, &src->bounced_tail, b);
			continue;
		default:
			break;
		}
		sink_recycle(s, b);
	}
	return rc;
}

/* Whether a writer lost the database; its reason into err. */
static bool
writer_down(struct dp_pgsink *s, struct dp_buf *err)
{
	bool down = false;

	pthread_mutex_lock(&s->mu);
	for (unsigned i = 0; i < s->nw && !down; i++)
		if (s->w[i].broken) {
			dp_buf_msgf(err, "%s", dp_buf_str(&s->w[i].down));
			down = true;
		}
	pthread_mutex_unlock(&s->mu);
	return down;
}

int
dp_pgsink_write(struct dp_pgsink *s, bool flush, struct dp_buf *err)
{
	int64_t now = dp_time_mono_ms();
	int rc;

	if ((rc = collect(s, err)) != 0)
		return rc;
	if (writer_down(s, err))
		return DP_PGSINK_DOWN;
	if (s->ctl_broken) {
		dp_buf_msgf(err, "%s", dp_buf_str(&s->ctl_down));
		return DP_PGSINK_DOWN;
	}
	if (!s->table_ready) {
		bool due = flush || s->filling_bytes >= s->budget;
		for (size_t i = 0; i < s->nsrc && !due; i++) {
			const struct batch *b = s->src[i]->filling;
			due = b && b->nrows && (sink_full(s, b) || sink_lingered(s, b, now) || s->src[i]->flush);
		}
		bool rows = false;
		for (size_t i = 0; i < s->nsrc; i++)
			rows |= s->src[i]->filling && s->src[i]->filling->nrows;
		if (due && rows) {
			if ((rc = sink_make_table(s, err)) != 0)
				return rc;
		}
	}
	if (s->table_ready && (rc = sink_encode_raw(s, err)) != 0)
		return rc;
	if ((rc = sink_reshape(s, err)) != 0)
		return rc;
	/* Over the byte budget: the biggest batches go first, full or not. */
	bool over = s->filling_bytes >= s->budget;
	for (size_t i = 0; i < s->nsrc; i++) {
		struct dp_pgsink_src *src = s->src[i];
		struct batch *b = src->filling;
		if (b && src->closed) {
			/* records after a stop are not written */
			src->filling = NULL;
			s->filling_bytes -= sink_batch_bytes(b);
			sink_batch_free(b);
			continue;
		}
		/* Records that made no row need no table: their offsets can go. */
		if (b && b->raw && b->nrows == 0)
			b->raw = false;
		/* Per writer, not per source: memory stays bounded however
		 * many partitions share a connection. */
		if (!b || b->raw || s->w[src->writer].queued >= QDEPTH || src->bounced)
			continue;
		if (flush || src->flush || over || sink_full(s, b) || sink_lingered(s, b, now))
			sink_submit(s, src);
	}
	if (s->stop_pending) {
		s->stop_pending = false;
		return DP_PGSINK_STOPPED;
	}
	return 0;
}

void
dp_pgsink_wait(struct dp_pgsink *s, int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);    /* the clock of answer_cv */
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	if (!atomic_load(&s->answered))
		pthread_cond_timedwait(&s->answer_cv, &s->mu, &ts);
	pthread_mutex_unlock(&s->mu);
}

/* ---- reconnecting ------------------------------------------------------ */

static int
reconnect_one(struct dp_pgsink *s, PGconn **c, struct dp_buf *err)
{
	PGconn *n = dp_pg_connect(s->cfg.conninfo, s->cfg.app, s->cfg.timeout_ms, NULL, err);

	if (!n)
		return -1;
	PQfinish(*c);
	*c = n;
	return 0;
}

int
dp_pgsink_reconnect(struct dp_pgsink *s, struct dp_buf *err)
{
	if (s->ctl_broken || PQstatus(s->ctl) == CONNECTION_BAD) {
		if (reconnect_one(s, &s->ctl, err) < 0)
			return DP_PGSINK_DOWN;
		s->ctl_broken = false;
	}
	for (unsigned i = 0; i < s->nw; i++) {
		struct writer *w = &s->w[i];
		pthread_mutex_lock(&s->mu);
		bool broken = w->broken;
		pthread_mutex_unlock(&s->mu);
		if (!broken)
			continue;
		/* The writer thread waits while broken: its connection is ours. */
		if (reconnect_one(s, &w->c, err) < 0)
			return DP_PGSINK_DOWN;
		if (w->cancel)
			PQfreeCancel(w->cancel);
		w->cancel = PQgetCancel(w->c);
		if (w->staged)
			memset(w->staged, 0, w->nstaged);   /* temp tables died with it */
		/*
		 * Which of its batches did commit?  The stored offsets say: the
		 * answer to a COMMIT can be lost with the connection.
		 */
		for (size_t j = 0; j < s->nsrc; j++) {
			struct dp_pgsink_src *src = s->src[j];
			int64_t stored;
			if (src->writer != i || !src->track || !src->active)
				continue;
			char st[6];
			enum dp_pg_kind k = sink_read_stored(w->c, src, &stored, st, err);
			if (k == DP_PG_TRANSIENT || k == DP_PG_RETRY)
				return DP_PGSINK_DOWN;
			if (k != DP_PG_OK)
				return DP_EX_UNAVAILABLE;
			pthread_mutex_lock(&s->mu);
			struct batch **pp = &w->head, *prev = NULL;
			while (*pp) {
				struct batch *b = *pp;
				if (b->src == src && stored >= 0 && b->end <= stored) {
					/* committed: answer it as such */
					*pp = b->next;
					b->next = NULL;
					b->result = R_COMMITTED;
					b->written = b->nrows;
					batch_append(&s->ans_head, &s->ans_tail, b);
					atomic_fetch_add(&s->answered, 1);
					continue;
				}
				prev = b;
				pp = &b->next;
			}
			w->tail = prev;
			if (!w->head)
				w->tail = NULL;
			/* A batch that did not commit is sent again; its compare-
			 * and-set against the stored offset keeps it honest. */
			atomic_store(&src->stored, stored);
			pthread_mutex_unlock(&s->mu);
		}
		pthread_mutex_lock(&s->mu);
		w->broken = false;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&s->mu);
	}
	return 0;
}

/*
 * Connect the writers and start their threads.  0, or an exit status
 * with the reason in err (sink_writers_stop cleans up either way).
 */
int
sink_writers_start(struct dp_pgsink *s, struct dp_buf *err)
{
	pthread_condattr_t ca;
	int rc;

	s->nw = s->cfg.writers;
	s->w = calloc(s->nw, sizeof(*s->w));
	if (!s->w) {
		dp_buf_msgf(err, "out of memory");
		return DP_EX_SOFTWARE;
	}
	for (unsigned i = 0; i < s->nw; i++) {
		struct writer *w = &s->w[i];
		w->s = s;
		w->idx = i;
		dp_backoff_init(&w->backoff, 250, 30000, 0.5, 0);
		/* Retries wait on it with a deadline: the monotonic clock. */
		if (pthread_condattr_init(&ca) || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) ||
		    pthread_cond_init(&w->cv, &ca)) {
			dp_buf_msgf(err, "cannot make a condition variable");
			return DP_EX_SOFTWARE;
		}
		pthread_condattr_destroy(&ca);
		if ((rc = sink_connect_one(s, &w->c, err)) != 0)
			return rc;
		w->cancel = PQgetCancel(w->c);
		if (pthread_create(&w->th, NULL, writer_main, w)) {
			dp_buf_msgf(err, "cannot start a writer thread: %s", strerror(errno));
			return DP_EX_SOFTWARE;
		}
		w->started = true;
	}
	return 0;
}

/*
 * Stop the writer threads and close their connections.  What runs is
 * cancelled: a live server rolls it back at once.  One that does not
 * answer gets ABORT_WAIT_MS, then its connection is shut down under the
 * writer, which then ends.
 */
void
sink_writers_stop(struct dp_pgsink *s)
{
	if (!s->w)
		return;
	pthread_mutex_lock(&s->mu);
	bool busy = writers_busy(s);
	for (unsigned i = 0; i < s->nw; i++) {
		s->w[i].quit = true;
		pthread_cond_broadcast(&s->w[i].cv);
	}
	pthread_mutex_unlock(&s->mu);
	if (busy) {
		dp_pgsink_cancel(s);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += ABORT_WAIT_MS / 1000;
		pthread_mutex_lock(&s->mu);
		while (writers_busy(s) &&
		       pthread_cond_timedwait(&s->answer_cv, &s->mu, &ts) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&s->mu);
		dp_pgsink_abort(s);
	}
	for (unsigned i = 0; i < s->nw; i++) {
		struct writer *w = &s->w[i];
		if (w->started)
			pthread_join(w->th, NULL);
		sink_batch_list_free(w->head);
		w->head = NULL;
		if (w->cancel)
			PQfreeCancel(w->cancel);
		PQfinish(w->c);
		pthread_cond_destroy(&w->cv);
		free(w->staged);
		free(w->recs);
		dp_buf_free(&w->err);
		dp_buf_free(&w->why);
		dp_buf_free(&w->down);
	}
	free(s->w);
}
