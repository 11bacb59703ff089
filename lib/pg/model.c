/*
 * pg/model.c -- the sink engine's model of its table (pg/sink-internal.h):
 * the columns and their types, the shape's fingerprint, the COPY layouts,
 * the table --create makes from the first rows, the checks the options
 * need (--upsert's unique index, the extra column, --hypertable), and
 * reading the table again when it changed.
 *
 * The table can change under a running sink (ALTER TABLE).  The model
 * has a version (struct mver): a fingerprint of the table's catalog rows
 * (pg_attribute: number, name, type, typmod, NOT NULL, dropped, default,
 * identity, generated), read in the same statement as the columns.  Each
 * batch carries the version it was encoded for and the JSON of its rows.
 * Its transaction first takes the table's lock (ROW EXCLUSIVE, as COPY
 * would: no ALTER TABLE can run until it ends), then compares the
 * catalog's fingerprint with the batch's (writer.c); a batch whose table
 * changed is rolled back before anything is written and goes back to the
 * caller's thread, which reads the table again (sink_reshape) and encodes
 * the batch's rows for it (encode.c).  A row that does not fit the new
 * table stops the run with 78: a changed table never turns a valid
 * record into a bad one, and a batch never reaches a column with the
 * bytes of another type.
 *
 * Types are inferred from values (--create, --unknown-keys add) by the
 * encoders themselves (pg/binary.h), so that a column is only ever typed
 * from values that fit it; dp-sink-pg(1), COLUMNS, has the rules.
 */
#include <stdlib.h>
#include <string.h>

#include "core/exit.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/vec.h"
#include "pg/sink-internal.h"
#include "pg/sink.h"

static bool table_has(const struct dp_pgsink *s, const char *name, void *arg);
static const char *time_column(const struct dp_pgsink *s,
                               bool (*has)(const struct dp_pgsink *, const char *, void *),
                               void *arg);

/* ---- columns ----------------------------------------------------------- */

static int
rehash(struct dp_pgsink *s)
{
	size_t cap = 16;

	while (cap < s->ncols * 2 + 2)
		cap *= 2;
	unsigned *h = calloc(cap, sizeof(*h));
	if (!h)
		return -1;
	for (size_t i = 0; i < s->ncols; i++) {
		size_t j = dp_hash(s->cols[i].name, s->cols[i].len) & (cap - 1);
		while (h[j])
			j = (j + 1) & (cap - 1);
		h[j] = (unsigned)i + 1;
	}
	free(s->hash);
	s->hash = h;
	s->hcap = cap;
	return 0;
}

int
sink_find_col(const struct dp_pgsink *s, const char *name, size_t n)
{
	if (!s->hcap)
		return -1;
	size_t j = dp_hash(name, n) & (s->hcap - 1);
	while (s->hash[j]) {
		const struct column *c = &s->cols[s->hash[j] - 1];
		if (c->len == n && memcmp(c->name, name, n) == 0)
			return (int)s->hash[j] - 1;
		j = (j + 1) & (s->hcap - 1);
	}
	return -1;
}

/* A catalog query whose one parameter is the table's OID. */
static int
about_table(struct dp_pgsink *s, const char *sql, PGresult **r, struct dp_buf *err,
            const char *what)
{
	char oid[16];
	const char *p[1] = { oid };

	snprintf(oid, sizeof(oid), "%u", s->oid);
	return sink_exec_ctl(s, sql, 1, p, r, NULL, err, what);
}

static void
column_clear(struct column *c)
{
	free(c->name);
	free(c->type);
	free(c->was);
}

/* Column i of a load_model result into c (zeroed): 0, or -1 out of memory. */
static int
column_of(struct dp_pgsink *s, struct column *c, const PGresult *r, int i)
{
	const char *name = PQgetvalue(r, i, 0);

	c->name = strdup(name);
	c->type = strdup(PQgetvalue(r, i, 3));
	if (!c->name || !c->type)
		return -1;
	c->len = strlen(name);
	c->plain = !strpbrk(name, "\\\"");
	c->kind = dp_pgbin_kind_of((uint32_t)strtoul(PQgetvalue(r, i, 1), NULL, 10),
	                           *PQgetvalue(r, i, 2));
	c->hasdef = *PQgetvalue(r, i, 4) == 't';
	c->writable = *PQgetvalue(r, i, 5) == 't';
	c->typid = (uint32_t)strtoul(PQgetvalue(r, i, 6), NULL, 10);
	c->typmod = (int32_t)strtol(PQgetvalue(r, i, 7), NULL, 10);
	c->notnull = *PQgetvalue(r, i, 8) == 't';
	for (size_t k = 0; k < s->cfg.nkeys; k++)
		if (strcmp(s->cfg.keys[k], name) == 0)
			c->key = true;
	return 0;
}

/* Whether a row with no value for c goes in: nullable, or with a default. */
static bool
takes_nothing(const struct column *c)
{
	return !c->notnull || c->hasdef || !c->writable;
}

/* The scratch arrays indexed by column, for ncols columns.  -1: out of memory. */
static int
size_slots(struct dp_pgsink *s, size_t from)
{
	struct slot *sl = realloc(s->slots, (s->ncols + 1) * sizeof(*sl));
	if (sl)
		s->slots = sl;
	unsigned *tc = realloc(s->tmpcols, (s->ncols + 1) * sizeof(*tc));
	if (tc)
		s->tmpcols = tc;
	if (!sl || !tc)
		return -1;
	for (size_t i = from; i < s->ncols; i++)
		s->slots[i].gen = 0;
	return 0;
}

static struct mver *
mver_new(struct dp_pgsink *s, const char *fp)
{
	struct mver *m = calloc(1, sizeof(*m));

	if (!m || !(m->fp = strdup(fp))) {
		free(m);
		return NULL;
	}
	m->epoch = s->epoch;
	m->next = s->mv;
	s->mv = m;
	return m;
}

static void
gone_clear(struct dp_pgsink *s)
{
	for (size_t i = 0; i < s->ngone; i++) {
		free(s->gone[i].name);
		free(s->gone[i].type);
	}
	free(s->gone);
	s->gone = NULL;
	s->ngone = 0;
}

/*
 * A new model from the catalog's columns r (rows 0..n, those with a
 * name): every column is compared with the one of its name before, for
 * the messages a batch that no longer fits gets.  Layouts of the old
 * model are retired (batches still point at them), and the epoch moves:
 * rows encoded before must be encoded again.  0 or -1 (out of memory;
 * the model is then empty and stale).
 */
static int
rebuild_model(struct dp_pgsink *s, const PGresult *r, int n)
{
	struct column *cols = calloc((size_t)n + 1, sizeof(*cols));
	size_t ncols = 0;

	if (!cols)
		return -1;
	for (int i = 0; i < n; i++) {
		if (PQgetisnull(r, i, 0))
			continue;
		struct column *c = &cols[ncols++];
		if (column_of(s, c, r, i) < 0)
			goto nomem;
		int o = sink_find_col(s, c->name, c->len);
		if (o < 0) {
			c->fresh = s->ncols > 0 || s->mv;
			c->required = c->fresh && !takes_nothing(c);
			continue;
		}
		const struct column *old = &s->cols[o];
		if ((old->typid != c->typid || old->typmod != c->typmod) && !(c->was = strdup(old->type)))
			goto nomem;
		c->required = !takes_nothing(c) && takes_nothing(old);
	}
	gone_clear(s);
	for (size_t i = 0; i < s->ncols; i++) {
		bool kept = false;
		for (size_t j = 0; j < ncols && !kept; j++)
			kept = cols[j].len == s->cols[i].len &&
			       memcmp(cols[j].name, s->cols[i].name, cols[j].len) == 0;
		if (kept)
			continue;
		struct gone *g = realloc(s->gone, (s->ngone + 1) * sizeof(*g));
		if (!g)
			goto nomem;
		s->gone = g;
		g[s->ngone].name = strdup(s->cols[i].name);
		g[s->ngone].type = strdup(s->cols[i].type);
		s->ngone++;
		if (!g[s->ngone - 1].name || !g[s->ngone - 1].type)
			goto nomem;
	}
	for (size_t i = 0; i < s->ncols; i++)
		column_clear(&s->cols[i]);
	free(s->cols);
	s->cols = cols;
	s->ncols = ncols;
	s->extra = -1;
	for (size_t i = 0; i < ncols; i++)
		if (s->cfg.unknown == DP_PGSINK_UNKNOWN_EXTRA &&
		    strcmp(cols[i].name, s->cfg.extra_column) == 0)
			s->extra = (int)i;
	/* Layouts name columns by index: those of the old model are kept for
	 * the batches that point at them, never matched again. */
	pthread_mutex_lock(&s->mu);
	while (s->layouts) {
		struct layout *L = s->layouts;
		s->layouts = L->next;
		L->next = s->retired;
		s->retired = L;
	}
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < s->nshape; i++)
		s->shape[i] = -1;
	s->epoch++;
	if (rehash(s) < 0 || size_slots(s, 0) < 0)
		return -1;
	return 0;
nomem:
	for (size_t i = 0; i < ncols; i++)
		column_clear(&cols[i]);
	free(cols);
	return -1;
}

/*
 * Read the table's columns and its fingerprint from the catalog, in one
 * statement, and bring the model up to them.  When the table only
 * gained columns that need no value (what --unknown-keys add makes),
 * they are appended: known columns keep their index, and rows encoded
 * before stay good.  Any other change (a type, NOT NULL, a column
 * dropped or renamed, a default) makes a new model when rebuild is
 * allowed (*rebuilt says so); otherwise the new columns are appended and
 * the model is marked stale, for the caller's next dp_pgsink_write.
 * 0, DP_PGSINK_DOWN, or an exit status.
 */
int
sink_load_model(struct dp_pgsink *s, bool rebuild, bool *rebuilt, struct dp_buf *err)
{
	static const char sql[] =
		"SELECT a.attname, "
		"       CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END, "
		"       CASE WHEN t.typtype = 'd' THEN bt.typtype ELSE t.typtype END, "
		"       format_type(a.atttypid, a.atttypmod), "
		"       a.atthasdef OR a.attidentity <> '', "
		"       a.attgenerated = '' AND a.attidentity <> 'a', "
		"       a.atttypid, a.atttypmod, a.attnotnull, x.fp, x.relnatts "
		"FROM (SELECT " FINGERPRINT " AS fp, c.relnatts FROM pg_class c "
		"      WHERE c.oid = $1::oid) x "
		"LEFT JOIN (pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
		"           LEFT JOIN pg_type bt ON bt.oid = t.typbasetype) "
		"  ON a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped "
		"ORDER BY a.attnum";
	PGresult *r;
	int rc;

	if (rebuilt)
		*rebuilt = false;
	if ((rc = about_table(s, sql, &r, err, "cannot read the table's columns")) != 0)
		return rc == DP_PGSINK_DOWN ? rc : DP_EX_UNAVAILABLE;
	int n = PQntuples(r);
	if (n == 0) {
		PQclear(r);
		dp_buf_msgf(err, "table %s is gone: dropped or renamed while dp-sink-pg ran",
		            s->cfg.table);
		return DP_EX_CONFIG;
	}
	const char *fp = PQgetvalue(r, 0, 9);
	s->natts = (unsigned)strtoul(PQgetvalue(r, 0, 10), NULL, 10);
	if (s->mv && strcmp(fp, s->mv->fp) == 0) {
		PQclear(r);
		s->stale = false;
		return 0;
	}
	/* Only grown, by columns that need no value? */
	bool grown = s->mv != NULL;
	size_t seen = 0;
	for (int i = 0; i < n && grown; i++) {
		if (PQgetisnull(r, i, 0))
			continue;
		struct column c = { 0 };
		if (column_of(s, &c, r, i) < 0) {
			column_clear(&c);
			goto nomem;
		}
		int o = sink_find_col(s, c.name, c.len);
		if (o < 0) {
			grown = takes_nothing(&c);
		} else {
			const struct column *k = &s->cols[o];
			seen++;
			grown = k->typid == c.typid && k->typmod == c.typmod && k->notnull == c.notnull &&
			        k->hasdef == c.hasdef && k->writable == c.writable;
		}
		column_clear(&c);
	}
	grown &= seen == s->ncols;
	if (!grown && rebuild) {
		if (rebuild_model(s, r, n) < 0)
			goto nomem;
		if (rebuilt)
			*rebuilt = true;
	} else {
		size_t old = s->ncols;
		struct column *cols = realloc(s->cols, ((size_t)n + s->ncols + 1) * sizeof(*cols));
		if (!cols)
			goto nomem;
		s->cols = cols;
		for (int i = 0; i < n; i++) {
			if (PQgetisnull(r, i, 0) ||
			    sink_find_col(s, PQgetvalue(r, i, 0), strlen(PQgetvalue(r, i, 0))) >= 0)
				continue;
			struct column *c = &s->cols[s->ncols];
			memset(c, 0, sizeof(*c));
			if (column_of(s, c, r, i) < 0) {
				column_clear(c);
				goto nomem;
			}
			c->fresh = old > 0;
			s->ncols++;
			if (s->cfg.unknown == DP_PGSINK_UNKNOWN_EXTRA &&
			    strcmp(c->name, s->cfg.extra_column) == 0)
				s->extra = (int)s->ncols - 1;
			if (rehash(s) < 0)
				goto nomem;
		}
		if (size_slots(s, old) < 0)
			goto nomem;
		s->stale = !grown && s->mv;
	}
	if (!s->stale) {
		if (!mver_new(s, fp))
			goto nomem;
		/* Rows encoded for the model before are good for this one. */
		for (size_t i = 0; i < s->nsrc; i++) {
			struct batch *b = s->src[i]->filling;
			if (b && !b->raw && b->mv && b->mv->epoch == s->epoch)
				b->mv = s->mv;
		}
	}
	PQclear(r);
	return 0;
nomem:
	PQclear(r);
	dp_buf_msgf(err, "out of memory");
	return DP_EX_SOFTWARE;
}

/* Look the table up: 1 found (oid, schema, name set), 0 missing, or an error. */
int
sink_find_table(struct dp_pgsink *s, struct dp_buf *err)
{
	static const char sql[] =
		"SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c "
		"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)";
	const char *p[1] = { s->qname };
	PGresult *r;
	int rc;

	if ((rc = sink_exec_ctl(s, sql, 1, p, &r, NULL, err, "cannot look the table up")) != 0)
		return rc == DP_PGSINK_DOWN ? rc : -DP_EX_UNAVAILABLE;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	char kind = *PQgetvalue(r, 0, 3);
	if (kind != 'r' && kind != 'p') {
		dp_buf_msgf(err, "%s is not a table", s->cfg.table);
		PQclear(r);
		return -DP_EX_CONFIG;
	}
	s->oid = (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
	free(s->schema);
	free(s->name);
	s->schema = strdup(PQgetvalue(r, 0, 1));
	s->name = strdup(PQgetvalue(r, 0, 2));
	PQclear(r);
	if (!s->schema || !s->name) {
		dp_buf_msgf(err, "out of memory");
		return -DP_EX_SOFTWARE;
	}
	return 1;
}

/* ---- TimescaleDB users' habits ----------------------------------------- */

/*
 * The time column of the table as a hypertable, into buf: 1; 0 when it
 * is not one (or TimescaleDB is not installed); -1 with the reason in err.
 */
static int
hyper_time(struct dp_pgsink *s, char *buf, size_t n, struct dp_buf *err)
{
	static const char sql[] =
		"SELECT column_name FROM timescaledb_information.dimensions "
		"WHERE hypertable_schema = $1 AND hypertable_name = $2 "
		"ORDER BY dimension_number LIMIT 1";
	const char *p[2] = { s->schema, s->name };
	PGresult *r;

	if (!s->has_ts)
		return 0;
	if (sink_exec_ctl(s, sql, 2, p, &r, NULL, err, "cannot ask TimescaleDB about the table") != 0)
		return -1;
	int yes = PQntuples(r) > 0;
	if (yes)
		snprintf(buf, n, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return yes;
}

/* The table as a user types it into SQL: as given, or quoted where it must be. */
static void
msg_regclass(struct dp_buf *m, const struct dp_pgsink *s)
{
	const char *t = s->cfg.table;
	bool plain = true;

	for (const char *c = t; *c; c++)
		plain &= (*c >= 'a' && *c <= 'z') || *c == '_' || *c == '.' ||
		         (c > t && *c >= '0' && *c <= '9');
	for (const char *c = plain ? t : s->qname; *c; c++)
		dp_buf_msgf(m, *c == '\'' ? "''" : "%c", *c);
}

/* A table of no hypertable's shape that --hypertable on refuses: how to make it one. */
static int
not_hypertable(struct dp_pgsink *s, struct dp_buf *err)
{
	const char *tcol = time_column(s, table_has, NULL);
	struct dp_buf q = DP_BUF_INIT;
	PGresult *r;
	bool rows = false;

	if (tcol) {
		/* migrate_data is only needed, and only slow, with rows to move */
		if (dp_buf_addf(&q, "SELECT EXISTS (SELECT 1 FROM %s)", s->qname) < 0) {
			dp_buf_free(&q);
			dp_buf_msgf(err, "out of memory");
			return DP_EX_SOFTWARE;
		}
		int rc = sink_exec_ctl(s, q.data, 0, NULL, &r, NULL, err, "cannot look into the table");
		dp_buf_free(&q);
		if (rc)
			return DP_EX_UNAVAILABLE;
		rows = *PQgetvalue(r, 0, 0) == 't';
		PQclear(r);
	}
	dp_buf_msgf(err, "--hypertable on: table %s exists and is not a hypertable", s->cfg.table);
	if (!tcol) {
		dp_buf_msgf(err, ", and has no time column (ts or time; see --time-column)");
		return DP_EX_CONFIG;
	}
	dp_buf_msgf(err, "; make it one%s: SELECT create_hypertable('",
	            rows ? ", moving its rows into chunks" : "");
	msg_regclass(err, s);
	dp_buf_msgf(err, "', '%s'%s)", tcol, rows ? ", migrate_data => true" : "");
	return DP_EX_CONFIG;
}

/*
 * --chunk-interval with a table that exists already: its chunks are not
 * changed (only --create's create_hypertable sizes them), so say so,
 * unless they are of that size already.
 */
void
sink_chunk_note(struct dp_pgsink *s)
{
	static const char sql[] =
		"SELECT d.time_interval = $3::interval, d.time_interval::text "
		"FROM timescaledb_information.dimensions d "
		"WHERE d.hypertable_schema = $1 AND d.hypertable_name = $2 "
		"ORDER BY d.dimension_number LIMIT 1";
	struct dp_buf err = DP_BUF_INIT, m = DP_BUF_INIT;
	char chunk[48], now[64] = "";
	PGresult *r = NULL;
	int same = 0;

	snprintf(chunk, sizeof(chunk), "%lld milliseconds", (long long)s->cfg.chunk_ms);
	const char *p[3] = { s->schema, s->name, chunk };
	if (s->has_ts && sink_exec_ctl(s, sql, 3, p, &r, NULL, &err, "cannot ask TimescaleDB") == 0) {
		if (PQntuples(r) > 0) {
			same = *PQgetvalue(r, 0, 0) == 't' ? 1 : -1;
			snprintf(now, sizeof(now), "%s", PQgetvalue(r, 0, 1));
		}
		PQclear(r);
	}
	if (same > 0) {
		dp_buf_free(&err);
		return;
	}
	if (same == 0) {
		dp_warn("--chunk-interval: table %s exists and is not a hypertable; the option "
		        "sizes the chunks of a hypertable --create makes", s->cfg.table);
	} else {
		char d[48];
		msg_regclass(&m, s);
		dp_warn("--chunk-interval: table %s exists, and its chunks stay as they are (%s); "
		        "to size the next ones: SELECT set_chunk_time_interval('%s', INTERVAL '%s')",
		        s->cfg.table, now, dp_buf_str(&m), dp_duration_format(s->cfg.chunk_ms, d));
	}
	dp_buf_free(&m);
	dp_buf_free(&err);
}

/* --upsert needs a unique index on exactly its columns (ON CONFLICT's arbiter). */
static int
check_keys(struct dp_pgsink *s, struct dp_buf *err)
{
	static const char sql[] =
		"SELECT i.indexrelid, a.attname FROM pg_index i "
		"CROSS JOIN LATERAL unnest(i.indkey) AS k(attnum) "
		"JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
		"WHERE i.indrelid = $1 AND i.indisunique AND i.indimmediate "
		"  AND i.indpred IS NULL AND i.indexprs IS NULL ORDER BY 1";
	PGresult *r;

	for (size_t k = 0; k < s->cfg.nkeys; k++)
		if (sink_find_col(s, s->cfg.keys[k], strlen(s->cfg.keys[k])) < 0) {
			dp_buf_msgf(err, "--upsert: table %s has no column ", s->cfg.table);
			sink_msg_name(err, s->cfg.keys[k], strlen(s->cfg.keys[k]));
			return DP_EX_CONFIG;
		}
	int rc = about_table(s, sql, &r, err, "cannot read the table's indexes");
	if (rc)
		return rc == DP_PGSINK_DOWN ? rc : DP_EX_UNAVAILABLE;
	int n = PQntuples(r), ok = 0;
	for (int i = 0; i < n && !ok; ) {
		int j = i;
		size_t cnt = 0;
		bool all = true;
		while (j < n && strcmp(PQgetvalue(r, j, 0), PQgetvalue(r, i, 0)) == 0) {
			bool in = false;
			for (size_t k = 0; k < s->cfg.nkeys; k++)
				in |= strcmp(s->cfg.keys[k], PQgetvalue(r, j, 1)) == 0;
			all &= in;
			cnt++;
			j++;
		}
		ok = all && cnt == s->cfg.nkeys;
		i = j;
	}
	PQclear(r);
	if (!ok) {
		dp_buf_msgf(err, "--upsert: table %s has no unique index or primary key on exactly (",
		            s->cfg.table);
		for (size_t k = 0; k < s->cfg.nkeys; k++)
			dp_buf_msgf(err, "%s%s", k ? ", " : "", s->cfg.keys[k]);
		dp_buf_msgf(err, "), which ON CONFLICT needs");
		/* TimescaleDB refuses such an index when the keys lack the time column. */
		struct dp_buf why = DP_BUF_INIT;
		char tcol[128];
		bool in = false;
		if (hyper_time(s, tcol, sizeof(tcol), &why) == 1) {
			for (size_t k = 0; k < s->cfg.nkeys; k++)
				in |= strcmp(s->cfg.keys[k], tcol) == 0;
			if (!in)
				dp_buf_msgf(err, "; and a hypertable's unique index must include its time "
				            "column %s: add %s to --upsert (and to the index)", tcol, tcol);
		}
		dp_buf_free(&why);
		return DP_EX_CONFIG;
	}
	return 0;
}

static int
is_hypertable(struct dp_pgsink *s, struct dp_buf *err)
{
	static const char sql[] =
		"SELECT 1 FROM timescaledb_information.hypertables "
		"WHERE hypertable_schema = $1 AND hypertable_name = $2";
	const char *p[2] = { s->schema, s->name };
	PGresult *r;

	if (sink_exec_ctl(s, sql, 2, p, &r, NULL, err, "cannot ask TimescaleDB about the table") != 0)
		return -1;
	int yes = PQntuples(r) > 0;
	PQclear(r);
	return yes;
}

/*
 * What the options need of the table's columns: the extra column (added
 * when missing), the --upsert keys' unique index.  0, DP_PGSINK_DOWN, or
 * an exit status.
 */
static int
check_columns(struct dp_pgsink *s, struct dp_buf *err)
{
	int rc;

	if (s->cfg.unknown == DP_PGSINK_UNKNOWN_EXTRA) {
		if (s->extra < 0) {
			struct dp_buf q = DP_BUF_INIT;
			char state[6] = "";
			int bad = dp_buf_addf(&q, "ALTER TABLE %s ADD COLUMN IF NOT EXISTS ", s->qname) < 0 ||
			          dp_pg_ident(&q, s->cfg.extra_column, strlen(s->cfg.extra_column)) < 0 ||
			          dp_buf_addstr(&q, " jsonb") < 0;
			rc = bad ? -1 : sink_exec_ctl(s, q.data, 0, NULL, NULL, state, err,
			                              "cannot add the extra column");
			dp_buf_free(&q);
			if (bad) {
				dp_buf_msgf(err, "out of memory");
				return DP_EX_SOFTWARE;
			}
			if (rc)
				return rc == DP_PGSINK_DOWN ? rc : sink_fatal_status(state);
			if ((rc = sink_load_model(s, true, NULL, err)) != 0)
				return rc;
		}
		if (s->extra < 0 || (s->cols[s->extra].kind != DP_PGBIN_JSONB &&
		                     s->cols[s->extra].kind != DP_PGBIN_JSON)) {
			dp_buf_msgf(err, "--unknown-keys extra: column %s of table %s is %s, not jsonb",
			            s->cfg.extra_column, s->cfg.table,
			            s->extra < 0 ? "missing" : s->cols[s->extra].type);
			return DP_EX_CONFIG;
		}
	}
	if (s->cfg.nkeys && (rc = check_keys(s, err)) != 0)
		return rc;
	return 0;
}

/* The table is known: the columns, and what the options need of them. */
int
sink_table_known(struct dp_pgsink *s, struct dp_buf *err)
{
	int rc;

	if ((rc = sink_load_model(s, true, NULL, err)) != 0 || (rc = check_columns(s, err)) != 0)
		return rc == DP_PGSINK_DOWN ? DP_EX_UNAVAILABLE : rc;
	if (s->cfg.hypertable == DP_PGSINK_HYPER_ON) {
		int h = is_hypertable(s, err);
		if (h < 0)
			return DP_EX_UNAVAILABLE;
		if (!h)
			return not_hypertable(s, err);
	}
	s->table_ready = true;
	return 0;
}

/* ---- layouts ----------------------------------------------------------- */

static int
add_cols(struct dp_buf *q, const struct dp_pgsink *s, const unsigned *cols, size_t n,
         const char *prefix)
{
	for (size_t i = 0; i < n; i++) {
		const struct column *c = &s->cols[cols[i]];
		if ((i && dp_buf_addch(q, ',') < 0) || (prefix && dp_buf_addstr(q, prefix) < 0) ||
		    dp_pg_ident(q, c->name, c->len) < 0)
			return -1;
	}
	return 0;
}

static int
add_keys(struct dp_buf *q, const struct dp_pgsink *s)
{
	for (size_t k = 0; k < s->cfg.nkeys; k++)
		if ((k && dp_buf_addch(q, ',') < 0) ||
		    dp_pg_ident(q, s->cfg.keys[k], strlen(s->cfg.keys[k])) < 0)
			return -1;
	return 0;
}

/* The statements of a layout.  -1 when memory runs out. */
static int
layout_sql(struct dp_pgsink *s, struct layout *L)
{
	struct dp_buf *q = &s->sql;

	if (!s->cfg.nkeys) {
		dp_buf_reset(q);
		if (dp_buf_addf(q, "COPY %s (", s->qname) < 0 || add_cols(q, s, L->cols, L->ncols, NULL) < 0 ||
		    dp_buf_addstr(q, ") FROM STDIN (FORMAT binary)") < 0 || !(L->copy_sql = sink_buf_dup(q)))
			return -1;
		return 0;
	}
	/*
	 * The stage has the layout's columns and an ordinal, the row's place
	 * in the input: of two rows with one key, the later one wins.  Its
	 * name must differ from every column of the layout.
	 */
	char ord[80] = "dp_ord";
	for (bool clash = true; clash; ) {
		clash = false;
		for (size_t i = 0; i < L->ncols; i++)
			if (strcmp(s->cols[L->cols[i]].name, ord) == 0)
				clash = true;
		if (clash && strlen(ord) < sizeof(ord) - 1)
			strcat(ord, "_");
	}
	char stage[32];
	snprintf(stage, sizeof(stage), "dp_stage_%u", L->id);

	dp_buf_reset(q);
	if (dp_buf_addf(q, "CREATE TEMP TABLE IF NOT EXISTS %s ON COMMIT DELETE ROWS AS SELECT ",
	                stage) < 0 || add_cols(q, s, L->cols, L->ncols, NULL) < 0 ||
	    dp_buf_addf(q, ", 0::bigint AS %s FROM %s WITH NO DATA", ord, s->qname) < 0 ||
	    !(L->stage_sql = sink_buf_dup(q)))
		return -1;
	dp_buf_reset(q);
	if (dp_buf_addf(q, "COPY %s (", stage) < 0 || add_cols(q, s, L->cols, L->ncols, NULL) < 0 ||
	    dp_buf_addf(q, ",%s) FROM STDIN (FORMAT binary)", ord) < 0 || !(L->copy_sql = sink_buf_dup(q)))
		return -1;
	dp_buf_reset(q);
	if (dp_buf_addf(q, "INSERT INTO %s AS t (", s->qname) < 0 ||
	    add_cols(q, s, L->cols, L->ncols, NULL) < 0 ||
	    dp_buf_addstr(q, ") SELECT DISTINCT ON (") < 0 || add_keys(q, s) < 0 ||
	    dp_buf_addstr(q, ") ") < 0 || add_cols(q, s, L->cols, L->ncols, NULL) < 0 ||
	    dp_buf_addf(q, " FROM %s ORDER BY ", stage) < 0 || add_keys(q, s) < 0 ||
	    dp_buf_addf(q, ", %s DESC ON CONFLICT (", ord) < 0 || add_keys(q, s) < 0 ||
	    dp_buf_addstr(q, ") DO ") < 0)
		return -1;
	size_t nset = 0;
	if (s->cfg.update)
		for (size_t i = 0; i < L->ncols; i++) {
			const struct column *c = &s->cols[L->cols[i]];
			if (c->key)
				continue;
			if (dp_buf_addstr(q, nset++ ? ", " : "UPDATE SET ") < 0 ||
			    dp_pg_ident(q, c->name, c->len) < 0 || dp_buf_addstr(q, " = EXCLUDED.") < 0 ||
			    dp_pg_ident(q, c->name, c->len) < 0)
				return -1;
		}
	if (!nset && dp_buf_addstr(q, "NOTHING") < 0)
		return -1;
	if (!(L->insert_sql = sink_buf_dup(q)))
		return -1;
	dp_buf_reset(q);
	if (dp_buf_addf(q, "DELETE FROM %s", stage) < 0 || !(L->clear_sql = sink_buf_dup(q)))
		return -1;
	return 0;
}

static void
layout_free(struct layout *L)
{
	free(L->cols);
	free(L->copy_sql);
	free(L->stage_sql);
	free(L->insert_sql);
	free(L->clear_sql);
	free(L);
}

/* The layout naming exactly cols[0..n); made when new.  NULL: out of memory. */
struct layout *
sink_layout_for(struct dp_pgsink *s, const unsigned *cols, size_t n)
{
	struct layout *L;

	for (L = s->layouts; L; L = L->next)
		if (L->ncols == n && memcmp(L->cols, cols, n * sizeof(*cols)) == 0)
			return L;
	L = calloc(1, sizeof(*L));
	if (!L || !(L->cols = malloc((n + 1) * sizeof(*cols)))) {
		free(L);
		return NULL;
	}
	memcpy(L->cols, cols, n * sizeof(*cols));
	L->ncols = n;
	L->id = s->nlayouts;
	if (layout_sql(s, L) < 0) {
		layout_free(L);
		return NULL;
	}
	/* Writers read layouts without the lock: link it in complete. */
	pthread_mutex_lock(&s->mu);
	L->next = s->layouts;
	s->layouts = L;
	s->nlayouts++;
	pthread_mutex_unlock(&s->mu);
	return L;
}

enum {
	I_NULL = 1, I_TS = 2, I_STR = 4, I_INT = 8, I_NUM = 16, I_BOOL = 32, I_JSON = 64,
	I_WIDE = 128,           /* an integer that double precision would round */
	I_BIG = 256,            /* an integer beyond bigint: numeric holds it */
	I_NOTIME = 512,         /* a number that is no epoch time */
};

/* ---- type inference ---------------------------------------------------- */

/* Whether the encoder of kind k takes the value; *why when it does not. */
bool
sink_fits(struct dp_pgsink *s, enum dp_pgbin_kind k, enum dp_json_type t, const char *v, size_t n,
          const char **why)
{
	const char *w = NULL;

	dp_buf_reset(&s->probe);
	if (dp_pgbin_field(&s->probe, k, t, v, n, &s->scratch, &w) <= 0)
		return true;    /* out of memory: encoding the row will say so */
	if (why)
		*why = w;
	return false;
}

/*
 * What a value is, for typing a column (--create, --unknown-keys add):
 * its I_ bits, or 0 when no type dp infers holds it, *why saying why (a
 * string with \u0000 or a lone surrogate escape, 1e400 without
 * --numeric, an integer of more digits than numeric takes).  The
 * encoders judge, so that a column is only ever typed from values that
 * fit it.
 */
unsigned
sink_value_mask(struct dp_pgsink *s, enum dp_json_type t, const char *v, size_t n, const char **why)
{
	unsigned m;

	switch (t) {
	case DP_JSON_NULL: return I_NULL;
	case DP_JSON_TRUE: case DP_JSON_FALSE: return I_BOOL;
	case DP_JSON_NUMBER:
		if (dp_pgbin_number_class(v, n) == 1) {
			m = I_INT;
			if (!sink_fits(s, DP_PGBIN_FLOAT8, t, v, n, NULL))
				m |= I_WIDE;
		} else if (!memchr(v, '.', n) && !memchr(v, 'e', n) && !memchr(v, 'E', n)) {
			if (!sink_fits(s, DP_PGBIN_NUMERIC, t, v, n, why))
				return 0;
			m = I_BIG;
		} else {
			if (!sink_fits(s, s->cfg.numeric ? DP_PGBIN_NUMERIC : DP_PGBIN_FLOAT8, t, v, n, why))
				return 0;
			m = I_NUM;
		}
		if (!sink_fits(s, DP_PGBIN_TIMESTAMPTZ, t, v, n, NULL))
			m |= I_NOTIME;
		return m;
	case DP_JSON_STRING:
		if (dp_pgbin_is_timestamp(v, n, &s->scratch))
			return I_TS;
		return sink_fits(s, DP_PGBIN_TEXT, t, v, n, why) ? I_STR : 0;
	default:
		return sink_fits(s, DP_PGBIN_JSONB, t, v, n, why) ? I_JSON : 0;
	}
}

/* The column type for the kinds of value seen (dp-sink-pg(1), COLUMNS). */
const char *
sink_type_for(unsigned mask, bool is_time, bool numeric)
{
	unsigned m = mask & ~(unsigned)(I_NULL | I_WIDE | I_NOTIME);

	if (!m)
		return "text";
	if (is_time && !(mask & I_NOTIME) && !(m & ~(unsigned)(I_TS | I_INT | I_NUM)))
		return "timestamptz";
	if (!(m & ~(unsigned)I_TS))
		return "timestamptz";
	if (!(m & ~(unsigned)(I_TS | I_STR)))
		return "text";
	if (!(m & ~(unsigned)I_INT))
		return "bigint";
	/* An integer that double precision would round wants numeric, as
	 * does one beyond bigint. */
	if (!(m & ~(unsigned)(I_INT | I_NUM | I_BIG)))
		return numeric || (m & I_BIG) || ((mask & I_WIDE) && (m & I_NUM))
		       ? "numeric" : "double precision";
	if (m == I_BOOL)
		return "boolean";
	return "jsonb";
}

bool
sink_is_time_name(const struct dp_pgsink *s, const char *name, size_t len)
{
	const char *tc = s->cfg.time_column;

	return tc ? strlen(tc) == len && memcmp(tc, name, len) == 0
	          : (len == 2 && memcmp(name, "ts", 2) == 0) ||
	            (len == 4 && memcmp(name, "time", 4) == 0);
}

/* The table's columns, for time_column(). */
static bool
table_has(const struct dp_pgsink *s, const char *name, void *arg)
{
	(void)arg;
	return sink_find_col(s, name, strlen(name)) >= 0;
}

static const char *
time_column(const struct dp_pgsink *s, bool (*has)(const struct dp_pgsink *, const char *, void *),
            void *arg)
{
	if (s->cfg.time_column)
		return has(s, s->cfg.time_column, arg) ? s->cfg.time_column : NULL;
	if (has(s, "ts", arg))
		return "ts";
	if (has(s, "time", arg))
		return "time";
	return NULL;
}

void
sink_seen_clear(struct inference *in)
{
	for (size_t i = 0; i < in->n; i++)
		free(in->v[i].name);
	in->n = 0;
}

/* name's mask: or'ed with what it had, or with replace (a later value of
 * one key in one row) set to mask. */
static int
seen_add(struct inference *in, const char *name, size_t len, unsigned mask, bool replace)
{
	for (size_t i = 0; i < in->n; i++)
		if (in->v[i].len == len && memcmp(in->v[i].name, name, len) == 0) {
			in->v[i].mask = replace ? mask : in->v[i].mask | mask;
			return 0;
		}
	struct seen *v = dp_grow(in->v, &in->cap, in->n + 1, sizeof(*v), 16);
	if (!v)
		return -1;
	in->v = v;
	if (!(in->v[in->n].name = malloc(len + 1)))
		return -1;
	memcpy(in->v[in->n].name, name, len);
	in->v[in->n].name[len] = '\0';
	in->v[in->n].len = len;
	in->v[in->n].mask = mask;
	in->v[in->n].why = NULL;
	in->n++;
	return 0;
}

/*
 * The columns a row would make (--create): each key that can be a
 * column name, with the mask of its last value (the one the row keeps),
 * into one (emptied first).  1; 0 when the row cannot shape the table,
 * the reason in s->why: it has no key that can be a column, or a value
 * no type holds (then it makes no column at all: it is a bad record);
 * -1 out of memory.
 */
int
sink_row_columns(struct dp_pgsink *s, const char *json, size_t len, struct inference *one)
{
	size_t pos = 0, klen, vn, nlen;
	const char *key, *v, *name;
	enum dp_json_type t;
	bool extra = s->cfg.unknown == DP_PGSINK_UNKNOWN_EXTRA;

	sink_seen_clear(one);
	while ((t = dp_json_next_member(json, len, &pos, &key, &klen, &v, &vn)) != DP_JSON_INVALID) {
		int rc = sink_key_name(&s->keybuf, key, klen, &name, &nlen);
		if (rc == -1)
			return -1;
		if (rc == -2 || sink_bad_ident(name, nlen))
			continue;       /* not a column: handled per --unknown-keys */
		if (extra && strlen(s->cfg.extra_column) == nlen &&
		    memcmp(s->cfg.extra_column, name, nlen) == 0)
			continue;
		const char *why = NULL;
		unsigned mask = sink_value_mask(s, t, v, vn, &why);
		if (seen_add(one, name, nlen, mask, true) < 0)
			return -1;
		for (size_t i = 0; i < one->n; i++)
			if (one->v[i].len == nlen && memcmp(one->v[i].name, name, nlen) == 0)
				one->v[i].why = why;
	}
	for (size_t i = 0; i < one->n; i++)
		if (!one->v[i].mask) {
			dp_buf_reset(&s->why);
			dp_buf_msgf(&s->why, "key ");
			sink_msg_name(&s->why, one->v[i].name, one->v[i].len);
			dp_buf_msgf(&s->why, " has a value that fits no column type (%s), so the row "
			            "cannot shape the table", one->v[i].why ? one->v[i].why : "?");
			return 0;
		}
	if (!one->n && !extra) {
		dp_buf_reset(&s->why);
		dp_buf_msgf(&s->why, "the row sets no column, and --create makes the table from the "
		            "columns of the first rows");
		return 0;
	}
	return 1;
}

/* ---- making the table -------------------------------------------------- */

static bool
inferred_has(const struct dp_pgsink *s, const char *name, void *arg)
{
	const struct inference *in = arg;

	(void)s;
	for (size_t i = 0; i < in->n; i++)
		if (strcmp(in->v[i].name, name) == 0)
			return true;
	return false;
}

/* Whether the hypertable can be made; prints auto's message once. */
static int
want_hypertable(struct dp_pgsink *s, const char *tcol, const char *ttype, struct dp_buf *err)
{
	const char *why = NULL;
	bool keys_ok = true;
	char keys_why[256];

	if (s->cfg.hypertable == DP_PGSINK_HYPER_OFF)
		return 0;
	if (s->cfg.nkeys && tcol) {
		keys_ok = false;
		for (size_t k = 0; k < s->cfg.nkeys; k++)
			keys_ok |= strcmp(s->cfg.keys[k], tcol) == 0;
	}
	if (!s->has_ts)
		why = "the timescaledb extension is not installed in this database";
	else if (!tcol)
		why = "no time column (ts or time; see --time-column) in the first records";
	else if (strcmp(ttype, "timestamptz") != 0)
		why = "the time column does not hold timestamps";
	else if (!keys_ok) {
		snprintf(keys_why, sizeof(keys_why), "the --upsert keys do not include the time "
		         "column %s, and a hypertable's unique index must include it (add %s to "
		         "--upsert)", tcol, tcol);
		why = keys_why;
	}
	if (!why)
		return 1;
	if (s->cfg.hypertable == DP_PGSINK_HYPER_ON) {
		dp_buf_msgf(err, "--hypertable on: %s", why);
		return -1;
	}
	dp_warn("%s: making %s a plain table%s", why, s->cfg.table,
	        s->cfg.chunk_ms ? " (--chunk-interval goes unused)" : "");
	return 0;
}

/*
 * CREATE TABLE from the rows of the raw batches, typed by what their
 * values are, in the order the keys first appear; a hypertable when it
 * can be.  0, DP_PGSINK_DOWN, or an exit status.
 */
int
sink_make_table(struct dp_pgsink *s, struct dp_buf *err)
{
	struct inference in = { NULL, 0, 0 };
	struct dp_buf q = DP_BUF_INIT;
	int rc = DP_EX_SOFTWARE;

	/* Another instance may have made it meanwhile: then it is the table. */
	if ((rc = sink_find_table(s, err)) != 0)
		return rc == 1 ? sink_table_known(s, err) : rc == DP_PGSINK_DOWN ? rc : -rc;
	/*
	 * Each row's columns (its last value of a key counting), from rows
	 * that can shape the table only; PostgreSQL's 1600 columns at most:
	 * a record with keys beyond is a bad record when it is encoded.
	 */
	size_t limit = MAX_COLUMNS - (s->cfg.unknown == DP_PGSINK_UNKNOWN_EXTRA);
	struct inference one = { NULL, 0, 0 };
	for (size_t i = 0; i < s->nsrc; i++) {
		struct batch *b = s->src[i]->filling;
		for (size_t r = 0; b && b->raw && r < b->nrows; r++) {
			const char *json = b->data.data + b->rows[r].pos;
			size_t len = (r + 1 < b->nrows ? b->rows[r + 1].pos : b->data.len) - b->rows[r].pos;
			int shapes = sink_row_columns(s, json, len, &one);
			if (shapes < 0) {
				sink_seen_clear(&one);
				free(one.v);
				goto nomem;
			}
			for (size_t k = 0; shapes && k < one.n; k++) {
				if (in.n >= limit && !inferred_has(s, one.v[k].name, &in))
					continue;
				if (seen_add(&in, one.v[k].name, one.v[k].len, one.v[k].mask, false) < 0) {
					sink_seen_clear(&one);
					free(one.v);
					goto nomem;
				}
			}
		}
	}
	sink_seen_clear(&one);
	free(one.v);
	const char *tcol = time_column(s, inferred_has, &in);
	const char *ttype = NULL;
	if (dp_buf_addf(&q, "CREATE TABLE IF NOT EXISTS %s (", s->qname) < 0)
		goto nomem;
	for (size_t i = 0; i < in.n; i++) {
		bool is_time = tcol && strcmp(in.v[i].name, tcol) == 0;
		const char *type = sink_type_for(in.v[i].mask, is_time, s->cfg.numeric);
		if (is_time)
			ttype = type;
		if ((i && dp_buf_addstr(&q, ", ") < 0) || dp_pg_ident(&q, in.v[i].name, in.v[i].len) < 0 ||
		    dp_buf_addf(&q, " %s", type) < 0)
			goto nomem;
	}
	if (s->cfg.unknown == DP_PGSINK_UNKNOWN_EXTRA) {
		if ((in.n && dp_buf_addstr(&q, ", ") < 0) ||
		    dp_pg_ident(&q, s->cfg.extra_column, strlen(s->cfg.extra_column)) < 0 ||
		    dp_buf_addstr(&q, " jsonb") < 0)
			goto nomem;
	}
	if (s->cfg.nkeys) {
		for (size_t k = 0; k < s->cfg.nkeys; k++)
			if (!inferred_has(s, s->cfg.keys[k], &in)) {
				dp_buf_msgf(err, "--upsert key %s is in none of the first records, so "
				            "--create cannot make the table", s->cfg.keys[k]);
				rc = DP_EX_CONFIG;
				goto out;
			}
		if (dp_buf_addstr(&q, ", PRIMARY KEY (") < 0 || add_keys(&q, s) < 0 ||
		    dp_buf_addch(&q, ')') < 0)
			goto nomem;
	}
	if (dp_buf_addch(&q, ')') < 0)
		goto nomem;
	int hyper = want_hypertable(s, tcol, ttype, err);
	if (hyper < 0) {
		rc = DP_EX_CONFIG;
		goto out;
	}
	char state[6] = "";
	if ((rc = sink_exec_ctl(s, "BEGIN", 0, NULL, NULL, state, err, "cannot create the table")) == 0 &&
	    (rc = sink_exec_ctl(s, q.data, 0, NULL, NULL, state, err, "cannot create the table")) == 0 &&
	    hyper) {
		char chunk[48];
		snprintf(chunk, sizeof(chunk), "%lld milliseconds", (long long)s->cfg.chunk_ms);
		const char *p[3] = { s->qname, tcol, chunk };
		rc = sink_exec_ctl(s, s->cfg.chunk_ms
		                   ? "SELECT create_hypertable($1::regclass, $2::name, "
		                   "chunk_time_interval => $3::interval, if_not_exists => true)"
		                   : "SELECT create_hypertable($1::regclass, $2::name, if_not_exists => true)",
		                   s->cfg.chunk_ms ? 3 : 2, p, NULL, state, err, "cannot make a hypertable");
	}
	if (rc == 0)
		rc = sink_exec_ctl(s, "COMMIT", 0, NULL, NULL, state, err, "cannot create the table");
	if (rc) {
		if (rc != DP_PGSINK_DOWN) {
			PQclear(PQexec(s->ctl, "ROLLBACK"));
			rc = sink_fatal_status(state);
		}
		goto out;
	}
	dp_info("created table %s%s", s->cfg.table, hyper ? " as a hypertable" : "");
	if ((rc = sink_find_table(s, err)) != 1) {
		if (rc == 0) {
			dp_buf_msgf(err, "table %s is missing right after CREATE TABLE", s->cfg.table);
			rc = DP_EX_SOFTWARE;
		}
		rc = rc < 0 && rc != DP_PGSINK_DOWN ? -rc : rc;
		goto out;
	}
	rc = sink_table_known(s, err);
	goto out;
nomem:
	dp_buf_msgf(err, "out of memory");
	rc = DP_EX_SOFTWARE;
out:
	for (size_t i = 0; i < in.n; i++)
		free(in.v[i].name);
	free(in.v);
	dp_buf_free(&q);
	return rc;
}

/* ---- a changed table --------------------------------------------------- */

/* Say once per change what changed: the types, the columns gone and new. */
static void
say_change(struct dp_pgsink *s)
{
	struct dp_buf m = DP_BUF_INIT;

	for (size_t i = 0; i < s->ncols; i++) {
		const struct column *c = &s->cols[i];
		if (!c->was && !c->fresh && !c->required)
			continue;
		dp_buf_msgf(&m, "%s", m.len ? ", " : "");
		sink_msg_name(&m, c->name, c->len);
		if (c->was)
			dp_buf_msgf(&m, " %s (was %s)", c->type, c->was);
		else if (c->fresh)
			dp_buf_msgf(&m, " %s (new)", c->type);
		else
			dp_buf_msgf(&m, " NOT NULL (new)");
	}
	for (size_t i = 0; i < s->ngone; i++) {
		dp_buf_msgf(&m, "%s", m.len ? ", " : "");
		sink_msg_name(&m, s->gone[i].name, strlen(s->gone[i].name));
		dp_buf_msgf(&m, " %s (gone)", s->gone[i].type);
	}
	dp_warn("table %s changed under dp-sink-pg%s%s; the rows not yet committed are "
	        "encoded for it again", s->cfg.table, m.len ? ": " : "", dp_buf_str(&m));
	dp_buf_free(&m);
}

/*
 * The table changed: a writer sent batches back (their sources'
 * bounced lists), or a column added for a key found other changes
 * (stale).  Read the table again, encode every batch being filled and
 * every batch sent back for it, and hand the latter to the writers
 * again, in order, once all of their source's batches are back.
 * 0, DP_PGSINK_DOWN, or an exit status (78: a row no longer fits, or
 * the table is gone).
 */
int
sink_reshape(struct dp_pgsink *s, struct dp_buf *err)
{
	bool any = s->stale;
	int rc;

	for (size_t i = 0; i < s->nsrc && !any; i++)
		any = s->src[i]->bounced && !s->src[i]->queued;
	if (!any || !s->table_ready)
		return 0;
	for (int round = 0; ; round++) {
		if (round == RESHAPES_MAX) {
			dp_buf_msgf(err, "table %s kept changing while dp-sink-pg read it again",
			            s->cfg.table);
			return DP_EX_TEMPFAIL;
		}
		bool rebuilt = false;
		rc = sink_find_table(s, err);
		if (rc == 0) {
			dp_buf_msgf(err, "table %s is gone: dropped or renamed while dp-sink-pg ran",
			            s->cfg.table);
			return DP_EX_CONFIG;
		}
		if (rc < 0)
			return rc == DP_PGSINK_DOWN ? rc : -rc;
		if ((rc = sink_load_model(s, true, &rebuilt, err)) != 0)
			return rc;
		if (rebuilt) {
			say_change(s);
			if ((rc = check_columns(s, err)) != 0)
				return rc;
		}
		for (size_t i = 0; i < s->nsrc; i++) {
			struct dp_pgsink_src *src = s->src[i];
			struct batch *b = src->filling;
			if (!src->active)
				continue;
			if (b) {
				size_t before = sink_batch_bytes(b);
				rc = sink_refresh(s, b, err);
				s->filling_bytes += sink_batch_bytes(b);
				s->filling_bytes -= before;
				src->rec = -1;
				if (rc)
					return rc;
			}
			for (b = src->queued ? NULL : src->bounced; b; b = b->next)
				if (++b->bounces > RESHAPES_MAX) {
					dp_buf_msgf(err, "table %s kept changing while dp-sink-pg "
					            "wrote %s", s->cfg.table, src->label);
					return DP_EX_TEMPFAIL;
				} else if ((rc = sink_refresh(s, b, err)) != 0) {
					return rc;
				}
		}
		if (!s->stale)
			break;
	}
	for (size_t i = 0; i < s->nsrc; i++) {
		struct dp_pgsink_src *src = s->src[i];
		if (!src->bounced || src->queued)
			continue;
		pthread_mutex_lock(&s->mu);
		src->bouncing = false;
		pthread_mutex_unlock(&s->mu);
		struct batch *b = src->bounced;
		src->bounced = src->bounced_tail = NULL;
		while (b) {
			struct batch *n = b->next;
			b->next = NULL;
			sink_enqueue(s, src, b);
			b = n;
		}
	}
	return 0;
}

/* Free the model: columns, layouts (retired ones too), versions. */
void
sink_model_free(struct dp_pgsink *s)
{
	for (int i = 0; i < 2; i++) {
		struct layout **list = i ? &s->retired : &s->layouts;
		while (*list) {
			struct layout *L = *list;
			*list = L->next;
			layout_free(L);
		}
	}
	while (s->mv) {
		struct mver *m = s->mv;
		s->mv = m->next;
		free(m->fp);
		free(m);
	}
	gone_clear(s);
	for (size_t i = 0; i < s->ncols; i++)
		column_clear(&s->cols[i]);
	free(s->cols);
	free(s->hash);
	free(s->slots);
	free(s->shape);
	free(s->newkeys);
	free(s->tmpcols);
}
