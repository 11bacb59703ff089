/*
 * pg/offsets.c -- read and move dp-sink-pg's stored offsets (pg/offsets.h).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/exit.h"
#include "pg/conn.h"
#include "pg/offsets.h"

/* An exit status for a failed statement of kind k and its SQLSTATE. */
static int
status_of(enum dp_pg_kind k, const char *state)
{
	if (k == DP_PG_TRANSIENT)
		return DP_EX_UNAVAILABLE;
	if (strcmp(state, "42501") == 0 || strncmp(state, "28", 2) == 0)
		return DP_EX_NOPERM;
	if (strcmp(state, "55P03") == 0)        /* lock_not_available */
		return DP_EX_TEMPFAIL;
	return DP_EX_UNAVAILABLE;
}

void
dp_sinkoffsets_free(struct dp_sinkoffset *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].topic);
	free(v);
}

int
dp_sinkoffsets_read(PGconn *c, const char *group, struct dp_sinkoffset **out, size_t *n,
                    struct dp_buf *err)
{
	static const char sql[] =
		"SELECT topic, \"partition\", next_offset FROM " DP_SINKOFFSETS_TABLE
		" WHERE \"group\" = $1 AND \"partition\" >= 0 ORDER BY topic, \"partition\"";
	const char *p[1] = { group };
	char state[6] = "";
	PGresult *r;
	enum dp_pg_kind k;

	*out = NULL;
	*n = 0;
	k = dp_pg_exec(c, "SELECT to_regclass('" DP_SINKOFFSETS_TABLE "') IS NOT NULL", 0, NULL,
	               &r, state, err, "cannot look for table " DP_SINKOFFSETS_TABLE);
	if (k != DP_PG_OK)
		return status_of(k, state);
	bool exists = *PQgetvalue(r, 0, 0) == 't';
	PQclear(r);
	if (!exists)
		return 0;
	k = dp_pg_exec(c, sql, 1, p, &r, state, err, "cannot read table " DP_SINKOFFSETS_TABLE);
	if (k != DP_PG_OK)
		return status_of(k, state);
	int rows = PQntuples(r);
	struct dp_sinkoffset *v = rows ? calloc((size_t)rows, sizeof(*v)) : NULL;
	if (rows && !v)
		goto nomem;
	for (int i = 0; i < rows; i++) {
		if (!(v[i].topic = strdup(PQgetvalue(r, i, 0))))
			goto nomem;
		v[i].partition = (int32_t)strtol(PQgetvalue(r, i, 1), NULL, 10);
		v[i].next_offset = strtoll(PQgetvalue(r, i, 2), NULL, 10);
		*n = (size_t)i + 1;
	}
	PQclear(r);
	*out = v;
	return 0;
nomem:
	PQclear(r);
	dp_sinkoffsets_free(v, (size_t)rows);
	*n = 0;
	dp_buf_msgf(err, "out of memory");
	return DP_EX_SOFTWARE;
}

/* One statement of the move: 0, or its status (the transaction is to roll back). */
static int
step(PGconn *c, const char *sql, int np, const char *const *p, PGresult **r,
     struct dp_buf *err, const char *what)
{
	char state[6] = "";
	enum dp_pg_kind k = dp_pg_exec(c, sql, np, p, r, state, err, what);

	if (k == DP_PG_OK)
		return 0;
	if (strcmp(state, "55P03") == 0)
		dp_buf_msgf(err, " (a dp-sink-pg of the group is writing: stop it first)");
	return status_of(k, state);
}

int
dp_sinkoffsets_move(PGconn *c, const char *group, struct dp_sinkoffsets_move *v, size_t n,
                    int64_t timeout_ms, int (*confirm)(void *arg, struct dp_buf *err),
                    void *arg, struct dp_buf *err)
{
	static const char lock[] =
		"SELECT next_offset FROM " DP_SINKOFFSETS_TABLE
		" WHERE \"group\" = $1 AND topic = $2 AND \"partition\" = $3 FOR UPDATE";
	static const char set[] =
		"INSERT INTO " DP_SINKOFFSETS_TABLE
		" (\"group\", topic, \"partition\", next_offset, updated_at)"
		" VALUES ($1, $2, $3, $4, now()) ON CONFLICT (\"group\", topic, \"partition\")"
		" DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()";
	static const char del[] =
		"DELETE FROM " DP_SINKOFFSETS_TABLE
		" WHERE \"group\" = $1 AND topic = $2 AND \"partition\" = $3";
	char lt[48];
	PGresult *r;
	int st;

	/* Before the transaction: two first runs may race on IF NOT EXISTS. */
	if ((st = step(c, DP_SINKOFFSETS_DDL, 0, NULL, NULL, err,
	               "cannot create table " DP_SINKOFFSETS_TABLE)) != 0)
		return st;
	if ((st = step(c, "BEGIN", 0, NULL, NULL, err, "cannot begin")) != 0)
		return st;
	snprintf(lt, sizeof(lt), "%" PRId64, timeout_ms > 0 ? timeout_ms : 1);
	const char *lp[1] = { lt };
	if ((st = step(c, "SELECT set_config('lock_timeout', $1, true)", 1, lp, NULL, err,
	               "cannot set lock_timeout")) != 0)
		goto rollback;
	for (size_t i = 0; i < n; i++) {
		char part[16], to[24];
		snprintf(part, sizeof(part), "%d", (int)v[i].partition);
		snprintf(to, sizeof(to), "%" PRId64, v[i].to);
		const char *p[4] = { group, v[i].topic, part, to };
		if ((st = step(c, lock, 3, p, &r, err, "cannot lock the stored offset")) != 0)
			goto rollback;
		v[i].from = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
		PQclear(r);
		if (v[i].to >= 0)
			st = step(c, set, 4, p, NULL, err, "cannot store the offset");
		else
			st = step(c, del, 3, p, NULL, err, "cannot delete the stored offset");
		if (st)
			goto rollback;
	}
	if (confirm && (st = confirm(arg, err)) != 0)
		goto rollback;
	return step(c, "COMMIT", 0, NULL, NULL, err, "cannot commit");
rollback:
	PQclear(PQexec(c, "ROLLBACK"));
	return st;
}

int
dp_sinkoffsets_fetch(const char *conninfo, const char *app, int64_t timeout_ms,
                     const char *group, struct dp_sinkoffset **out, size_t *n,
                     struct dp_buf *err)
{
	enum dp_pg_kind kind = DP_PG_TRANSIENT;
	PGconn *c = dp_pg_connect(conninfo, app, timeout_ms, &kind, err);
	int st;

	*out = NULL;
	*n = 0;
	if (!c)
		return kind == DP_PG_FATAL ? DP_EX_CONFIG : DP_EX_UNAVAILABLE;
	st = dp_sinkoffsets_read(c, group, out, n, err);
	PQfinish(c);
	return st;
}
