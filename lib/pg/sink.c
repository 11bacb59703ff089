/*
 * pg/sink.c -- JSON rows into PostgreSQL with binary COPY, exactly once
 * per source (pg/sink.h).
 *
 * The caller's thread owns the table model (columns, layouts), encodes
 * rows into batches and runs every DDL statement on the control
 * connection.  Writer threads only run batches: BEGIN and the table's
 * lock, the check of the table's shape, compare-and-set of the offsets
 * row, COPY (and for --upsert the INSERT from the stage table), COMMIT.
 * They share with the caller only the queues and the answers, under one
 * mutex; a layout, once made, is read-only.
 *
 * The table can change under a running sink (ALTER TABLE).  The model
 * has a version (struct mver): a fingerprint of the table's catalog rows
 * (pg_attribute: number, name, type, typmod, NOT NULL, dropped, default,
 * identity, generated), read in the same statement as the columns.  Each
 * batch carries the version it was encoded for and the JSON of its rows.
 * Its transaction first takes the table's lock (ROW EXCLUSIVE, as COPY
 * would: no ALTER TABLE can run until it ends), then compares the
 * catalog's fingerprint with the batch's; a batch whose table changed
 * is rolled back before anything is written and goes back to the
 * caller's thread, which reads the table again and encodes the batch's
 * rows for it.  A row that does not fit the new table stops the run with
 * 78: a changed table never turns a valid record into a bad one, and a
 * batch never reaches a column with the bytes of another type.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "core/backoff.h"
#include "core/exit.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "core/vec.h"
#include "json/scan.h"
#include "pg/binary.h"
#include "pg/conn.h"
#include "pg/offsets.h"
#include "pg/sink.h"
#include "pg/sqlstate.h"

#define QDEPTH 2                        /* batches per writer: one in flight, one waiting */
#define COPY_CHUNK (256 * 1024)         /* bytes per PQputCopyData */

#define OFFSETS_TABLE DP_SINKOFFSETS_TABLE
#define MAX_COLUMNS 1600                /* MaxHeapAttributeNumber: dropped ones count */
#define RETRIES_DEFAULT 10              /* in-place retries of one batch without --max-retries */
#define RESHAPES_MAX 10                 /* table changes in a row before giving up */
#define ABORT_WAIT_MS 1000              /* dp_pgsink_free: cancelled writers get this long */

/*
 * The table's fingerprint as the catalog has it now, for the relation
 * whose oid is c.oid: any ALTER TABLE that changes what a batch's COPY
 * means changes it.  One expression for the writers' check and for the
 * caller's reading of the columns, so that both say the same thing.
 */
#define FINGERPRINT \
	"c.oid::text || ':' || md5(coalesce((SELECT array_agg(ROW(a.attnum, a.attname, " \
	"a.atttypid, a.atttypmod, a.attnotnull, a.attisdropped, a.atthasdef, a.attidentity, " \
	"a.attgenerated) ORDER BY a.attnum)::text FROM pg_attribute a " \
	"WHERE a.attrelid = c.oid AND a.attnum > 0), ''))"

/* ---- model ------------------------------------------------------------ */

struct column {
	char *name;                     /* exact, as in the catalog */
	size_t len;
	enum dp_pgbin_kind kind;
	char *type;                     /* format_type(), for messages */
	uint32_t typid;                 /* pg_attribute.atttypid */
	int32_t typmod;
	bool notnull;
	bool hasdef;                    /* DEFAULT, serial or identity: may be left out */
	bool writable;                  /* not generated, not identity ALWAYS */
	bool key;                       /* an --upsert key */
	bool plain;                     /* no backslash or quote in the name */
	/* since the table last changed under the sink (for its messages) */
	char *was;                      /* the type before, when it changed; NULL otherwise */
	bool fresh;                     /* the column was not there before */
	bool required;                  /* NOT NULL without a default, and was not */
};

/*
 * A version of the table model: the catalog's fingerprint when it was
 * read.  A batch encoded for it may be sent while the table still has
 * that fingerprint; epoch tells whether the columns of a later version
 * only grew (an ADD COLUMN that needs no value), which leaves encoded
 * rows good.  Kept until the engine is freed: writers read them.
 */
struct mver {
	struct mver *next;
	char *fp;
	unsigned epoch;
};

/* A column the last change of the table took away (for messages). */
struct gone {
	char *name, *type;
};

/* The columns one COPY names, and the statements that use them. */
struct layout {
	struct layout *next;
	unsigned id;
	unsigned *cols;
	size_t ncols;
	char *copy_sql;                 /* into the table, or into the stage for --upsert */
	char *stage_sql;                /* --upsert: make the stage table */
	char *insert_sql;               /* --upsert: stage into table, ON CONFLICT */
	char *clear_sql;                /* --upsert: empty the stage */
};

struct row {
	int64_t offset;                 /* of its record */
	size_t pos;                     /* into the batch's data */
	size_t jpos;                    /* its JSON, into the batch's json */
};

struct seg {
	struct layout *L;               /* NULL in a raw batch */
	size_t first;                   /* row index */
};

enum result { R_NONE, R_COMMITTED, R_STOPPED, R_DISCARDED, R_LOST, R_FATAL, R_RESHAPE };

/* A record as it came (keep_raw): key then value at pos of the batch's odata. */
struct orig {
	int64_t offset;
	size_t pos, klen, vlen;
	size_t hlen;                    /* its headers, after the value (dp_pgsink_raw_headers) */
	bool has_key;
};

/* A record the server refused, found by bisecting. */
struct badrec {
	int64_t offset;
	char *reason;
	char sqlstate[6];
};

struct batch {
	struct batch *next;
	struct dp_pgsink_src *src;
	int64_t start, end;             /* records [start, end) are accounted here */
	bool raw;                       /* rows are JSON text: the table is not made yet */
	struct dp_buf data;             /* binary tuples, or JSON text when raw */
	struct dp_buf json;             /* the rows' JSON (not when raw: data has it) */
	const struct mver *mv;          /* the table model its rows are encoded for */
	struct row *rows;
	size_t nrows, caprows;
	struct seg *segs;
	size_t nsegs, capsegs;
	struct dp_buf odata;            /* keep_raw: the records as they came */
	struct orig *origs;
	size_t norigs, caporigs;
	int64_t born_ms;                /* first row or advance */
	int64_t sent_ms;
	unsigned gen;                   /* the source's acquisition it belongs to */
	unsigned widx;                  /* the writer it was handed to */
	unsigned bounces;               /* times its table changed before it could commit */
	/* bad records the writer found, for the caller (under the mutex) */
	struct badrec *bads;
	size_t nbads, capbads;
	struct batch *ask_next;         /* in the engine's list of batches to judge */
	size_t njudged;                 /* bads[0..njudged) were judged */
	bool asking;                    /* the writer waits for the caller's verdict */
	bool judged;
	int verdict;                    /* 0, or on_bad's status */
	/* the writer's answer */
	enum result result;
	uint64_t written, bad_rows;
	int64_t stop;                   /* R_STOPPED: the bad record's offset */
	int status;                     /* R_LOST, R_FATAL: exit status */
	char *msg;
};

struct dp_pgsink_src {
	struct dp_pgsink *s;
	char *group, *topic;
	int32_t partition;
	bool track;
	char *label;
	atomic_llong stored;            /* stored next_offset, -1 none; written under mu */
	atomic_llong committed;         /* the end of the last batch committed, -1 none */
	int64_t end;                    /* accounted */
	struct batch *filling;
	unsigned writer;
	unsigned queued;                /* submitted, not answered */
	unsigned gen;                   /* acquisitions so far; changed under mu */
	bool active;                    /* acquired, not released */
	bool stopped;                   /* writer side: discard later batches (under mu) */
	bool closed;                    /* caller side: takes no more rows */
	bool flush;                     /* send the batch being filled when possible */
	bool lost;                      /* resync: its compare-and-set failed */
	bool bouncing;                  /* writer side: its table changed, send every batch back
	                                   unsent until the caller re-encodes them (under mu) */
	struct batch *bounced, *bounced_tail;   /* those batches, back, in order */
	/* the record being added: where its rows start, to take them back */
	int64_t rec;
	size_t rec_row, rec_pos, rec_seg, rec_orig, rec_jpos;
	/* the record as it came (dp_pgsink_raw), borrowed until done */
	int64_t raw_off;
	const void *raw_key, *raw_val, *raw_hdr;
	size_t raw_klen, raw_vlen, raw_hlen;
	bool raw_kept;                  /* copied into the batch (keep_raw) */
};

struct writer {
	struct dp_pgsink *s;
	unsigned idx;
	pthread_t th;
	bool started;
	PGconn *c;
	PGcancel *cancel;
	struct batch *head, *tail;      /* queue; head is the one running */
	unsigned queued;                /* caller side: submitted, not answered */
	bool running;
	bool broken;                    /* lost the database: waits for reconnect */
	bool quit;
	pthread_cond_t cv;
	unsigned char *staged;          /* layouts whose stage table exists on c */
	size_t nstaged;
	size_t *recs;                   /* record boundaries of the batch running */
	size_t caprecs;
	struct dp_buf err;
	struct dp_buf why;              /* a bad row's reason */
	struct dp_buf down;             /* why it lost the database */
	char sqlstate[6];
	struct dp_backoff backoff;      /* in-place retries of the batch running */
};

struct slot {
	unsigned gen;
	enum dp_json_type t;
	const char *v;
	size_t n;
};

struct dp_pgsink {
	struct dp_pgsink_config cfg;
	char *qname;                    /* the table, quoted */
	char *begin_sql;                /* a batch's BEGIN and the table's lock */
	char *schema, *name;            /* as the catalog has them, once known */
	PGconn *ctl;
	bool ctl_broken;
	/* the table */
	bool table_ready;
	uint32_t oid;
	struct column *cols;
	size_t ncols;
	unsigned *hash;                 /* open addressing: column index + 1, 0 empty */
	size_t hcap;
	int extra;                      /* the extra column's index, or -1 */
	bool has_ts;                    /* TimescaleDB is installed */
	struct layout *layouts;
	unsigned nlayouts;
	struct layout *retired;         /* layouts of earlier epochs: batches may point at them */
	struct mver *mv;                /* the model's version; older ones follow it */
	unsigned epoch;                 /* changes when a change of the table invalidates rows */
	unsigned natts;                 /* pg_class.relnatts: columns, dropped ones included */
	bool stale;                     /* the table changed in a way not yet taken in */
	bool reshaping;                 /* encoding rows again for a changed table */
	int bad_col;                    /* the column encode_row refused a value for, or -1 */
	struct gone *gone;              /* columns the last change took away */
	size_t ngone;
	/* rows */
	struct slot *slots;
	unsigned gen;
	int *shape;                     /* column of the i-th key of the last row, or -1 */
	size_t nshape;
	struct new_key *newkeys;        /* encode_row's scratch */
	size_t capnew;
	unsigned *tmpcols;
	int64_t ord;                    /* --upsert: sequence of rows, last one wins */
	struct dp_buf scratch, keybuf, extrabuf, why, sql;
	struct dp_buf probe;            /* value_mask's trial encodings */
	/* writers and sources */
	struct writer *w;
	unsigned nw;
	struct dp_pgsink_src **src;
	size_t nsrc;
	bool offsets_ready;
	size_t filling_bytes;
	size_t budget;
	bool stop_pending;              /* a source stopped: tell the caller once */
	struct batch *spare;            /* committed batches kept for their memory */
	unsigned nspare;
	pthread_mutex_t mu;
	pthread_cond_t answer_cv;
	struct batch *ans_head, *ans_tail;
	struct batch *ask_head, *ask_tail;      /* batches with bad records to judge */
	struct dp_buf ctl_down;         /* why the control connection lost the database */
	atomic_int answered;
	atomic_bool aborting;           /* dp_pgsink_cancel: no more in-place retries */
	atomic_ullong retries;          /* in-place retries, all writers */
	bool mu_ok;
	struct dp_pgsink_stats stats;
};

/* ---- small helpers ------------------------------------------------------ */

/* A copy of buf's text (for SQL built in scratch). */
static char *
buf_dup(struct dp_buf *b)
{
	return b->data ? strndup(b->data, b->len) : strdup("");
}

static void
bads_clear(struct batch *b)
{
	for (size_t i = 0; i < b->nbads; i++)
		free(b->bads[i].reason);
	b->nbads = 0;
}

static void
batch_free(struct batch *b)
{
	if (!b)
		return;
	dp_buf_free(&b->data);
	dp_buf_free(&b->json);
	dp_buf_free(&b->odata);
	free(b->rows);
	free(b->segs);
	free(b->origs);
	bads_clear(b);
	free(b->bads);
	free(b->msg);
	free(b);
}

static size_t
batch_bytes(const struct batch *b)
{
	return b->data.len + b->json.len + b->nrows * sizeof(struct row) + b->odata.len +
	       b->norigs * sizeof(struct orig);
}

/* The record at offset as it came, kept in b (keep_raw), or NULL. */
static const struct orig *
orig_of(const struct batch *b, int64_t offset)
{
	size_t lo = 0, hi = b->norigs;

	while (lo < hi) {
		size_t m = lo + (hi - lo) / 2;
		if (b->origs[m].offset < offset)
			lo = m + 1;
		else
			hi = m;
	}
	return lo < b->norigs && b->origs[lo].offset == offset ? &b->origs[lo] : NULL;
}

/* Append name as a JSON string (for messages: unambiguous, escapes shown). */
static void
msg_name(struct dp_buf *m, const char *name, size_t n)
{
	struct dp_buf q = DP_BUF_INIT;

	if (dp_json_quote(&q, name, n) < 0)
		dp_buf_msgf(m, "(a name)");
	else
		dp_buf_msgf(m, "%s", q.data);
	dp_buf_free(&q);
}

/* The value, shortened for a message. */
static void
msg_value(struct dp_buf *m, const char *v, size_t n)
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
static void
down_msg(struct dp_buf *out, const char *sqlstate, const char *msg)
{
	const struct dp_sqlstate *row = dp_sqlstate_of(sqlstate);

	if (row->what == DP_SQLSTATE_OUTAGE && strcmp(row->words, "lost the database") == 0)
		dp_buf_msgf(out, "lost the database (%s)", msg);
	else
		dp_buf_msgf(out, "%s: %s", row->words, msg);
}

static int
exec_ctl(struct dp_pgsink *s, const char *sql, int n, const char *const *p, PGresult **res,
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
		down_msg(&s->ctl_down, state ? state : st, dp_buf_str(err));
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
static int
fatal_status(const char *sqlstate)
{
	const struct dp_sqlstate *row = dp_sqlstate_of(sqlstate);

	return row->what == DP_SQLSTATE_STOP && row->status ? row->status : DP_EX_TEMPFAIL;
}

/* Where a record is, as the user names it: "line 12", "prices [2] offset 4711". */
static void
rec_where(const struct dp_pgsink_src *src, int64_t offset, struct dp_buf *out)
{
	if (src->partition >= 0)
		dp_buf_msgf(out, "%s [%d] offset %lld", src->topic, (int)src->partition,
		            (long long)offset);
	else if (src->track)
		dp_buf_msgf(out, "line %lld of source '%s'", (long long)offset + 1, src->topic);
	else
		dp_buf_msgf(out, "line %lld", (long long)offset + 1);
}

/* ---- columns ------------------------------------------------------------ */

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

static int
find_col(const struct dp_pgsink *s, const char *name, size_t n)
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
	return exec_ctl(s, sql, 1, p, r, NULL, err, what);
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
		int o = find_col(s, c->name, c->len);
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
static int
load_model(struct dp_pgsink *s, bool rebuild, bool *rebuilt, struct dp_buf *err)
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
		int o = find_col(s, c.name, c.len);
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
			    find_col(s, PQgetvalue(r, i, 0), strlen(PQgetvalue(r, i, 0))) >= 0)
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
static int
find_table(struct dp_pgsink *s, struct dp_buf *err)
{
	static const char sql[] =
		"SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c "
		"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)";
	const char *p[1] = { s->qname };
	PGresult *r;
	int rc;

	if ((rc = exec_ctl(s, sql, 1, p, &r, NULL, err, "cannot look the table up")) != 0)
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

/* ---- TimescaleDB users' habits ---------------------------------------------- */

static bool table_has(const struct dp_pgsink *s, const char *name, void *arg);
static const char *time_column(const struct dp_pgsink *s,
                               bool (*has)(const struct dp_pgsink *, const char *, void *),
                               void *arg);

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
	if (exec_ctl(s, sql, 2, p, &r, NULL, err, "cannot ask TimescaleDB about the table") != 0)
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
		int rc = exec_ctl(s, q.data, 0, NULL, &r, NULL, err, "cannot look into the table");
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
static void
chunk_note(struct dp_pgsink *s)
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
	if (s->has_ts && exec_ctl(s, sql, 3, p, &r, NULL, &err, "cannot ask TimescaleDB") == 0) {
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
		if (find_col(s, s->cfg.keys[k], strlen(s->cfg.keys[k])) < 0) {
			dp_buf_msgf(err, "--upsert: table %s has no column ", s->cfg.table);
			msg_name(err, s->cfg.keys[k], strlen(s->cfg.keys[k]));
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

	if (exec_ctl(s, sql, 2, p, &r, NULL, err, "cannot ask TimescaleDB about the table") != 0)
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
			rc = bad ? -1 : exec_ctl(s, q.data, 0, NULL, NULL, state, err,
			                         "cannot add the extra column");
			dp_buf_free(&q);
			if (bad) {
				dp_buf_msgf(err, "out of memory");
				return DP_EX_SOFTWARE;
			}
			if (rc)
				return rc == DP_PGSINK_DOWN ? rc : fatal_status(state);
			if ((rc = load_model(s, true, NULL, err)) != 0)
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
static int
table_known(struct dp_pgsink *s, struct dp_buf *err)
{
	int rc;

	if ((rc = load_model(s, true, NULL, err)) != 0 || (rc = check_columns(s, err)) != 0)
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

/* ---- layouts ------------------------------------------------------------- */

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
		    dp_buf_addstr(q, ") FROM STDIN (FORMAT binary)") < 0 || !(L->copy_sql = buf_dup(q)))
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
	    !(L->stage_sql = buf_dup(q)))
		return -1;
	dp_buf_reset(q);
	if (dp_buf_addf(q, "COPY %s (", stage) < 0 || add_cols(q, s, L->cols, L->ncols, NULL) < 0 ||
	    dp_buf_addf(q, ",%s) FROM STDIN (FORMAT binary)", ord) < 0 || !(L->copy_sql = buf_dup(q)))
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
	if (!(L->insert_sql = buf_dup(q)))
		return -1;
	dp_buf_reset(q);
	if (dp_buf_addf(q, "DELETE FROM %s", stage) < 0 || !(L->clear_sql = buf_dup(q)))
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
static struct layout *
layout_for(struct dp_pgsink *s, const unsigned *cols, size_t n)
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

/* ---- type inference -------------------------------------------------------- */

enum {
	I_NULL = 1, I_TS = 2, I_STR = 4, I_INT = 8, I_NUM = 16, I_BOOL = 32, I_JSON = 64,
	I_WIDE = 128,           /* an integer that double precision would round */
	I_BIG = 256,            /* an integer beyond bigint: numeric holds it */
	I_NOTIME = 512,         /* a number that is no epoch time */
};

/* Whether the encoder of kind k takes the value; *why when it does not. */
static bool
fits(struct dp_pgsink *s, enum dp_pgbin_kind k, enum dp_json_type t, const char *v, size_t n,
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
static unsigned
value_mask(struct dp_pgsink *s, enum dp_json_type t, const char *v, size_t n, const char **why)
{
	unsigned m;

	switch (t) {
	case DP_JSON_NULL: return I_NULL;
	case DP_JSON_TRUE: case DP_JSON_FALSE: return I_BOOL;
	case DP_JSON_NUMBER:
		if (dp_pgbin_number_class(v, n) == 1) {
			m = I_INT;
			if (!fits(s, DP_PGBIN_FLOAT8, t, v, n, NULL))
				m |= I_WIDE;
		} else if (!memchr(v, '.', n) && !memchr(v, 'e', n) && !memchr(v, 'E', n)) {
			if (!fits(s, DP_PGBIN_NUMERIC, t, v, n, why))
				return 0;
			m = I_BIG;
		} else {
			if (!fits(s, s->cfg.numeric ? DP_PGBIN_NUMERIC : DP_PGBIN_FLOAT8, t, v, n, why))
				return 0;
			m = I_NUM;
		}
		if (!fits(s, DP_PGBIN_TIMESTAMPTZ, t, v, n, NULL))
			m |= I_NOTIME;
		return m;
	case DP_JSON_STRING:
		if (dp_pgbin_is_timestamp(v, n, &s->scratch))
			return I_TS;
		return fits(s, DP_PGBIN_TEXT, t, v, n, why) ? I_STR : 0;
	default:
		return fits(s, DP_PGBIN_JSONB, t, v, n, why) ? I_JSON : 0;
	}
}

/* The column type for the kinds of value seen (dp-sink-pg(1), COLUMNS). */
static const char *
type_for(unsigned mask, bool is_time, bool numeric)
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

static bool
is_time_name(const struct dp_pgsink *s, const char *name, size_t len)
{
	const char *tc = s->cfg.time_column;

	return tc ? strlen(tc) == len && memcmp(tc, name, len) == 0
	          : (len == 2 && memcmp(name, "ts", 2) == 0) ||
	            (len == 4 && memcmp(name, "time", 4) == 0);
}


static const char *
sc_name(const struct dp_pgsink *s, int c, size_t *len)
{
	*len = s->cols[c].len;
	return s->cols[c].name;
}

/*
 * A key's decoded name; borrowed from the literal or from buf.  -1 out
 * of memory; -2 a lone surrogate escape, which no name can hold.
 */
static int
key_name(struct dp_buf *buf, const char *lit, size_t n, const char **name, size_t *len)
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
static const char *
bad_ident(const char *name, size_t len)
{
	if (!len)
		return "an empty name";
	if (len > DP_PG_MAX_IDENT)
		return "longer than 63 bytes, which PostgreSQL would cut short";
	if (memchr(name, '\0', len))
		return "it holds a NUL character";
	return NULL;
}

/* The table's columns, for time_column(). */
static bool
table_has(const struct dp_pgsink *s, const char *name, void *arg)
{
	(void)arg;
	return find_col(s, name, strlen(name)) >= 0;
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

struct seen {
	char *name;
	size_t len;
	unsigned mask;
	const char *why;                /* mask 0: why no type holds the value (static) */
};

struct inference {
	struct seen *v;
	size_t n, cap;
};

static void
seen_clear(struct inference *in)
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
static int
row_columns(struct dp_pgsink *s, const char *json, size_t len, struct inference *one)
{
	size_t pos = 0, klen, vn, nlen;
	const char *key, *v, *name;
	enum dp_json_type t;
	bool extra = s->cfg.unknown == DP_PGSINK_UNKNOWN_EXTRA;

	seen_clear(one);
	while ((t = dp_json_next_member(json, len, &pos, &key, &klen, &v, &vn)) != DP_JSON_INVALID) {
		int rc = key_name(&s->keybuf, key, klen, &name, &nlen);
		if (rc == -1)
			return -1;
		if (rc == -2 || bad_ident(name, nlen))
			continue;       /* not a column: handled per --unknown-keys */
		if (extra && strlen(s->cfg.extra_column) == nlen &&
		    memcmp(s->cfg.extra_column, name, nlen) == 0)
			continue;
		const char *why = NULL;
		unsigned mask = value_mask(s, t, v, vn, &why);
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
			msg_name(&s->why, one->v[i].name, one->v[i].len);
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

/* ---- encoding rows ---------------------------------------------------------- */

static int
grow_rows(struct batch *b)
{
	struct row *r = dp_grow(b->rows, &b->caprows, b->nrows + 1, sizeof(*r), 1024);

	if (!r)
		return -1;
	b->rows = r;
	return 0;
}

static int
add_seg(struct batch *b, struct layout *L)
{
	if (b->nsegs && b->segs[b->nsegs - 1].L == L)
		return 0;
	struct seg *g = dp_grow(b->segs, &b->capsegs, b->nsegs + 1, sizeof(*g), 4);
	if (!g)
		return -1;
	b->segs = g;
	b->segs[b->nsegs].L = L;
	b->segs[b->nsegs].first = b->nrows;
	b->nsegs++;
	return 0;
}

/* Tell on_bad about one bad record (the caller's thread): 0 or its status. */
static int
report(struct dp_pgsink *s, struct dp_pgsink_src *src, int64_t offset, const char *reason,
       const char *sqlstate, const void *key, size_t klen, const void *value, size_t vlen,
       const void *hdr, size_t hlen)
{
	struct dp_pgsink_bad bad = {
		.src = src, .topic = src->topic, .partition = src->partition, .offset = offset,
		.reason = reason, .sqlstate = sqlstate, .key = key, .klen = klen, .value = value,
		.vlen = vlen, .headers = hdr, .hlen = hlen,
	};

	s->stats.bad++;
	return s->cfg.on_bad ? s->cfg.on_bad(s->cfg.arg, &bad) : 0;
}

/* Report a bad record of a batch, as kept there (keep_raw) or as its row's JSON. */
static int
report_kept(struct dp_pgsink *s, const struct batch *b, int64_t offset, const char *reason,
            const char *sqlstate, const char *json, size_t len)
{
	const struct orig *o = orig_of(b, offset);

	if (!o)
		return report(s, b->src, offset, reason, sqlstate, NULL, 0, json, len, NULL, 0);
	const char *p = b->odata.data ? b->odata.data + o->pos : "";
	size_t vlen = o->vlen != SIZE_MAX ? o->vlen : 0;
	return report(s, b->src, offset, reason, sqlstate, o->has_key ? p : NULL, o->klen,
	              o->vlen != SIZE_MAX ? p + o->klen : NULL, vlen,
	              o->hlen ? p + o->klen + vlen : NULL, o->hlen);
}

/* A row dp_pgsink_add refuses (the reason in s->why): reported with its record. */
static int
bad_row(struct dp_pgsink *s, struct dp_pgsink_src *src, int64_t offset, const char *json,
        size_t len, struct dp_buf *err)
{
	int st;

	if (src->raw_off == offset)
		st = report(s, src, offset, dp_buf_str(&s->why), "", src->raw_key, src->raw_klen,
		            src->raw_val, src->raw_vlen, src->raw_hdr, src->raw_hlen);
	else
		st = report(s, src, offset, dp_buf_str(&s->why), "", NULL, 0, json, len, NULL, 0);
	dp_buf_msgf(err, "%s", dp_buf_str(&s->why));
	return st ? st : DP_PGSINK_BAD;
}

/*
 * Keep the record being added as it came (keep_raw), once, when its
 * first row is in: the server may refuse a row later, and then on_bad
 * needs the record.  A value of SIZE_MAX length stands for no value.
 */
static int
keep_orig(struct dp_pgsink *s, struct dp_pgsink_src *src, struct batch *b, int64_t offset)
{
	if (!s->cfg.keep_raw || src->raw_off != offset || src->raw_kept)
		return 0;
	struct orig *o = dp_grow(b->origs, &b->caporigs, b->norigs + 1, sizeof(*o), 256);
	if (!o)
		return -1;
	b->origs = o;
	o = &b->origs[b->norigs];
	o->offset = offset;
	o->pos = b->odata.len;
	o->has_key = src->raw_key != NULL;
	o->klen = src->raw_key ? src->raw_klen : 0;
	o->vlen = src->raw_val ? src->raw_vlen : SIZE_MAX;
	o->hlen = src->raw_hdr ? src->raw_hlen : 0;
	if ((o->klen && dp_buf_add(&b->odata, src->raw_key, o->klen) < 0) ||
	    (src->raw_val && src->raw_vlen && dp_buf_add(&b->odata, src->raw_val, src->raw_vlen) < 0) ||
	    (o->hlen && dp_buf_add(&b->odata, src->raw_hdr, o->hlen) < 0))
		return -1;
	b->norigs++;
	src->raw_kept = true;
	return 0;
}

static int
nomem(struct dp_buf *err)
{
	dp_buf_msgf(err, "out of memory");
	return DP_EX_SOFTWARE;
}

/* A key for a column yet to be added (--unknown-keys add). */
struct new_key {
	const char *key, *v;            /* borrowed from the row */
	size_t klen, vn;
	enum dp_json_type t;
	unsigned mask;
	bool dup;                       /* a later member has its name: that one counts */
};

/* Why the value of slot sl does not fit column c, into s->why: 1, or 0 it fits. */
static int
refused(struct dp_pgsink *s, int c, const struct slot *sl, const char *why)
{
	const struct column *col = &s->cols[c];

	dp_buf_msgf(&s->why, "column ");
	msg_name(&s->why, col->name, col->len);
	dp_buf_msgf(&s->why, " (%s): ", col->type);
	msg_value(&s->why, sl->v, sl->n);
	dp_buf_msgf(&s->why, " is %s", why);
	s->bad_col = c;
	return 1;
}

/*
 * ALTER TABLE ... ADD COLUMN IF NOT EXISTS for the new keys of a row,
 * all in one statement (all or none), each typed from its value: only
 * once the row proved good, so that a refused row never shapes the
 * table.  The catalog has the last word: someone may have added a
 * column first, with another type.  0, DP_PGSINK_BAD (the reason in
 * s->why: no type holds a value, PostgreSQL's 1600 columns), or a
 * failure as encode_row returns it.
 */
static int
add_columns(struct dp_pgsink *s, struct new_key *nk, size_t n, unsigned gen, struct dp_buf *err)
{
	struct dp_buf q = DP_BUF_INIT;
	const char *name, *why = NULL;
	size_t len, fresh = 0;
	int rc;

	/* The row's values for the columns it has must fit first. */
	for (size_t i = 0; i < s->ncols; i++) {
		const struct slot *sl = &s->slots[i];
		if (sl->gen != gen || fits(s, s->cols[i].kind, sl->t, sl->v, sl->n, &why))
			continue;
		refused(s, (int)i, sl, why);
		return DP_PGSINK_BAD;
	}
	/* The last of a key's values counts, for its type as for the row. */
	struct dp_buf one = DP_BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		nk[i].dup = false;
		dp_buf_reset(&one);
		if (key_name(&s->keybuf, nk[i].key, nk[i].klen, &name, &len) < 0 ||
		    dp_buf_add(&one, name, len) < 0) {
			dp_buf_free(&one);
			return nomem(err);
		}
		for (size_t j = i + 1; j < n && !nk[i].dup; j++) {
			if (key_name(&s->keybuf, nk[j].key, nk[j].klen, &name, &len) < 0) {
				dp_buf_free(&one);
				return nomem(err);
			}
			nk[i].dup = len == one.len && memcmp(name, one.data, len) == 0;
		}
		if (nk[i].dup)
			continue;
		fresh++;
		if (!(nk[i].mask = value_mask(s, nk[i].t, nk[i].v, nk[i].vn, &why))) {
			if ((rc = key_name(&s->keybuf, nk[i].key, nk[i].klen, &name, &len)) == -1)
				return nomem(err);
			dp_buf_msgf(&s->why, "key ");
			msg_name(&s->why, name, len);
			dp_buf_msgf(&s->why, ": ");
			msg_value(&s->why, nk[i].v, nk[i].vn);
			dp_buf_msgf(&s->why, " fits no column type (%s), so no column is added for it",
			            why ? why : "?");
			dp_buf_free(&one);
			return DP_PGSINK_BAD;
		}
	}
	dp_buf_free(&one);
	if (s->natts + fresh > MAX_COLUMNS) {
		dp_buf_msgf(&s->why, "%zu key%s without a column would take table %s past "
		            "PostgreSQL's %d columns (it has %u, dropped ones included)", fresh,
		            fresh == 1 ? "" : "s", s->cfg.table, MAX_COLUMNS, s->natts);
		return DP_PGSINK_BAD;
	}
	if (dp_buf_addf(&q, "ALTER TABLE %s ", s->qname) < 0)
		goto nomem;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (nk[i].dup)
			continue;
		if (key_name(&s->keybuf, nk[i].key, nk[i].klen, &name, &len) < 0)
			goto nomem;
		const char *type = type_for(nk[i].mask, is_time_name(s, name, len), s->cfg.numeric);
		if (dp_buf_addstr(&q, k++ ? ", ADD COLUMN IF NOT EXISTS " : "ADD COLUMN IF NOT EXISTS ") < 0 ||
		    dp_pg_ident(&q, name, len) < 0 || dp_buf_addf(&q, " %s", type) < 0)
			goto nomem;
		dp_info("adding column %.*s %s to %s", (int)len, name, type, s->cfg.table);
	}
	char state[6];
	struct dp_buf e = DP_BUF_INIT;
	rc = exec_ctl(s, q.data, 0, NULL, NULL, state, &e, "cannot add a column");
	dp_buf_free(&q);
	if (rc == -1 && dp_sqlstate_of(state)->what == DP_SQLSTATE_BAD) {
		/* 54011: more than 1600 columns; the row is bad, the run goes on */
		dp_buf_msgf(&s->why, "%s", dp_buf_str(&e));
		dp_buf_free(&e);
		return DP_PGSINK_BAD;
	}
	dp_buf_msgf(err, "%s", dp_buf_str(&e));
	dp_buf_free(&e);
	if (rc == DP_PGSINK_DOWN)
		return rc;
	if (rc)
		return fatal_status(state);
	if ((rc = load_model(s, false, NULL, err)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (nk[i].dup)
			continue;
		if (key_name(&s->keybuf, nk[i].key, nk[i].klen, &name, &len) < 0)
			return nomem(err);
		int c = find_col(s, name, len);
		if (c < 0) {
			dp_buf_msgf(err, "column %.*s is still missing after ALTER TABLE", (int)len, name);
			return DP_EX_SOFTWARE;
		}
		s->slots[c].gen = gen;
		s->slots[c].t = nk[i].t;
		s->slots[c].v = nk[i].v;
		s->slots[c].n = nk[i].vn;
	}
	return 0;
nomem:
	dp_buf_free(&q);
	return nomem(err);
}

/* What a row's members leave for encode_row. */
struct row_ctx {
	struct dp_pgsink *s;
	struct dp_buf *err;
	unsigned gen;
	size_t member;
	int rc;                         /* why the scan stopped */
	struct new_key *newkeys;
	size_t nnew, capnew;
};

/* Why a key has no column (--unknown-keys bad), into s->why. */
static void
no_column(struct dp_pgsink *s, const char *name, size_t len, const char *v, size_t vn,
          enum dp_json_type t)
{
	const char *why = NULL;

	dp_buf_msgf(&s->why, "key ");
	msg_name(&s->why, name, len);
	if (s->reshaping)
		for (size_t i = 0; i < s->ngone; i++)
			if (strlen(s->gone[i].name) == len && memcmp(s->gone[i].name, name, len) == 0) {
				dp_buf_msgf(&s->why, ": its column (%s) is gone, dropped or renamed",
				            s->gone[i].type);
				return;
			}
	if (!value_mask(s, t, v, vn, &why)) {
		dp_buf_msgf(&s->why, ": ");
		msg_value(&s->why, v, vn);
		dp_buf_msgf(&s->why, " fits no column type (%s)", why ? why : "?");
		return;
	}
	dp_buf_msgf(&s->why, " has no column in table %s (see --unknown-keys)", s->cfg.table);
	if (s->natts >= MAX_COLUMNS)
		dp_buf_msgf(&s->why, ", which has PostgreSQL's %d columns already", MAX_COLUMNS);
}

/* One member of a row: its column's slot, or per --unknown-keys. */
static int
take_member(void *ctx, const char *key, size_t klen, const char *v, size_t vn,
            enum dp_json_type t)
{
	struct row_ctx *rx = ctx;
	struct dp_pgsink *s = rx->s;
	struct dp_buf *err = rx->err;
	size_t member = rx->member++, name_len;
	const char *name;

	/*
	 * Rows of one stream have their keys in one order: try the
	 * column the same position had last time before decoding and
	 * hashing.  A name without backslash or quote matches the
	 * literal's bytes only when the literal has no escape.
	 */
	int c = -1;
	if (member < s->nshape && s->shape[member] >= 0) {
		const struct column *sc = &s->cols[s->shape[member]];
		if (sc->plain && sc->len == klen - 2 && memcmp(sc->name, key + 1, klen - 2) == 0)
			c = s->shape[member];
	}
	if (c >= 0) {
		name = sc_name(s, c, &name_len);
	} else {
		int rc = key_name(&s->keybuf, key, klen, &name, &name_len);
		if (rc == -2 && s->cfg.unknown != DP_PGSINK_UNKNOWN_EXTRA) {
			dp_buf_msgf(&s->why, "key %.*s holds a lone surrogate escape, which no column "
			            "name can hold", klen > 48 ? 48 : (int)klen, key);
			return rx->rc = DP_PGSINK_BAD;
		}
		if (rc == -1)
			return rx->rc = nomem(err);
		c = rc == -2 ? -1 : find_col(s, name, name_len);
		if (member >= s->nshape) {
			size_t old = s->nshape;
			int *sh = dp_grow(s->shape, &s->nshape, member + 1, sizeof(*sh), 16);
			if (!sh)
				return rx->rc = nomem(err);
			s->shape = sh;
			for (size_t i = old; i < s->nshape; i++)
				s->shape[i] = -1;
		}
		s->shape[member] = c;
	}
	if (c >= 0 && c == s->extra)
		c = -1;         /* a key named like the extra column goes into it */
	if (c >= 0 && !s->cols[c].writable) {
		dp_buf_msgf(&s->why, "key ");
		msg_name(&s->why, name, name_len);
		dp_buf_msgf(&s->why, " names a generated or identity column, which a row cannot set");
		return rx->rc = DP_PGSINK_BAD;
	}
	if (c < 0) {
		if (s->cfg.unknown == DP_PGSINK_UNKNOWN_EXTRA) {
			if (dp_buf_addch(&s->extrabuf, s->extrabuf.len ? ',' : '{') < 0 ||
			    dp_buf_add(&s->extrabuf, key, klen) < 0 ||
			    dp_buf_addch(&s->extrabuf, ':') < 0 || dp_buf_add(&s->extrabuf, v, vn) < 0)
				return rx->rc = nomem(err);
			return 0;
		}
		const char *why = bad_ident(name, name_len);
		if (why) {
			dp_buf_msgf(&s->why, "key ");
			msg_name(&s->why, name, name_len);
			dp_buf_msgf(&s->why, " cannot be a column name: %s", why);
			return rx->rc = DP_PGSINK_BAD;
		}
		if (s->cfg.unknown == DP_PGSINK_UNKNOWN_ADD) {
			/* The column is added once the whole row proved valid. */
			struct new_key *nk = dp_grow(rx->newkeys, &rx->capnew, rx->nnew + 1,
			                          sizeof(*nk), 8);
			if (!nk)
				return rx->rc = nomem(err);
			rx->newkeys = nk;
			rx->newkeys[rx->nnew++] = (struct new_key){ .key = key, .klen = klen, .v = v, .vn = vn, .t = t };
			return 0;
		}
		no_column(s, name, name_len, v, vn, t);
		return rx->rc = DP_PGSINK_BAD;
	}
	s->slots[c].gen = rx->gen;
	s->slots[c].t = t;
	s->slots[c].v = v;
	s->slots[c].n = vn;
	return 0;
}

/*
 * Encode one row object into b, checking its JSON on the way (one scan
 * for both).  0, DP_PGSINK_BAD (reason in s->why, not yet reported;
 * s->bad_col the column that refused it, or -1), DP_PGSINK_DOWN, or an
 * exit status; on any failure b may hold part of the row: the caller
 * cuts it back.
 */
static int
encode_row(struct dp_pgsink *s, struct batch *b, const char *json, size_t len, struct dp_buf *err)
{
	unsigned gen = ++s->gen;

	if (gen == 0) {
		/* 0 marks an empty slot: after a wrap, empty them all */
		for (size_t i = 0; i < s->ncols; i++)
			s->slots[i].gen = 0;
		gen = s->gen = 1;
	}
	dp_buf_reset(&s->why);
	dp_buf_reset(&s->extrabuf);
	s->bad_col = -1;
	struct row_ctx rx = { s, err, gen, 0, 0, s->newkeys, 0, s->capnew };
	const char *jwhy;
	size_t off;
	enum dp_json_type t = dp_json_check_members(json, len, take_member, &rx, &jwhy, &off);
	s->newkeys = rx.newkeys;
	s->capnew = rx.capnew;
	if (rx.rc)
		return rx.rc;
	if (t == DP_JSON_INVALID) {
		dp_buf_msgf(&s->why, "not JSON: %s at byte %zu", jwhy ? jwhy : "invalid", off + 1);
		return DP_PGSINK_BAD;
	}
	if (t != DP_JSON_OBJECT) {
		dp_buf_msgf(&s->why, "not a JSON object");
		return DP_PGSINK_BAD;
	}
	if (rx.nnew) {
		int rc = add_columns(s, rx.newkeys, rx.nnew, gen, err);
		if (rc)
			return rc;
	}
	if (s->extrabuf.len) {
		if (dp_buf_addch(&s->extrabuf, '}') < 0)
			goto nomem;
		s->slots[s->extra].gen = gen;
		s->slots[s->extra].t = DP_JSON_OBJECT;
		s->slots[s->extra].v = s->extrabuf.data;
		s->slots[s->extra].n = s->extrabuf.len;
	}
	/*
	 * The columns of this row's COPY: every writable column without a
	 * default (a missing key is NULL there), the keys, and the columns
	 * with a default that the row sets; the others get their default.
	 */
	size_t n = 0;
	for (size_t i = 0; i < s->ncols; i++) {
		const struct column *col = &s->cols[i];
		if (col->writable && (!col->hasdef || col->key || s->slots[i].gen == gen))
			s->tmpcols[n++] = (unsigned)i;
	}
	if (n == 0) {
		/* COPY needs a column; every one of this table has a default. */
		dp_buf_msgf(&s->why, "the row sets no column, and every column of %s has a default",
		            s->cfg.table);
		return DP_PGSINK_BAD;
	}
	struct layout *L = b->nsegs && b->segs[b->nsegs - 1].L->ncols == n &&
	                   memcmp(b->segs[b->nsegs - 1].L->cols, s->tmpcols, n * sizeof(unsigned)) == 0
	                   ? b->segs[b->nsegs - 1].L : layout_for(s, s->tmpcols, n);
	if (!L || add_seg(b, L) < 0 || grow_rows(b) < 0)
		goto nomem;
	size_t at = b->data.len;
	if (dp_pgbin_tuple(&b->data, (uint16_t)(n + (s->cfg.nkeys ? 1 : 0))) < 0)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		const struct column *col = &s->cols[L->cols[i]];
		const struct slot *sl = &s->slots[L->cols[i]];
		const char *why = NULL;
		int rc;
		if (sl->gen != gen) {
			if (s->reshaping && col->required) {
				/* NOT NULL since the row was read: it never had it */
				dp_buf_msgf(&s->why, "column ");
				msg_name(&s->why, col->name, col->len);
				dp_buf_msgf(&s->why, " (%s) is NOT NULL, and the record has no value for it",
				            col->type);
				s->bad_col = (int)L->cols[i];
				dp_buf_truncate(&b->data, at);
				return DP_PGSINK_BAD;
			}
			rc = dp_pgbin_null(&b->data);
		} else {
			if (s->reshaping && col->required && sl->t == DP_JSON_NULL)
				rc = (why = "null, and the column is NOT NULL", 1);
			else
				rc = dp_pgbin_field(&b->data, col->kind, sl->t, sl->v, sl->n, &s->scratch, &why);
		}
		if (rc < 0)
			goto nomem;
		if (rc > 0) {
			refused(s, (int)L->cols[i], sl, why);
			dp_buf_truncate(&b->data, at);
			return DP_PGSINK_BAD;
		}
	}
	if (s->cfg.nkeys) {
		/* The ordinal: int8 */
		unsigned char o[12];
		uint64_t x = (uint64_t)++s->ord;
		o[0] = 0; o[1] = 0; o[2] = 0; o[3] = 8;
		for (int i = 0; i < 8; i++)
			o[4 + i] = (unsigned char)(x >> (56 - 8 * i));
		if (dp_buf_add(&b->data, o, sizeof(o)) < 0)
			goto nomem;
	}
	return 0;
nomem:
	dp_buf_msgf(err, "out of memory");
	return DP_EX_SOFTWARE;
}

/* ---- the writers -------------------------------------------------------------- */

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

static void
offset_params(struct dp_pgsink_src *src, char part[16], const char *p[5])
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
		offset_params(src, part, p);
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
			offset_params(src, part, p);
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
	answer(b, R_FATAL, k == DP_PG_RETRY ? DP_EX_TEMPFAIL : fatal_status(w->sqlstate), &m);
	dp_buf_free(&m);
	return DP_PG_OK;
}

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
			down_msg(&w->down, w->sqlstate, dp_buf_str(&w->err));
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
			if (s->ans_tail)
				s->ans_tail->next = b;
			else
				s->ans_head = b;
			s->ans_tail = b;
		}
		atomic_fetch_add(&s->answered, 1);
		pthread_cond_broadcast(&s->answer_cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- opening ------------------------------------------------------------------ */

static int
connect_one(struct dp_pgsink *s, PGconn **c, struct dp_buf *err)
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
	if (dp_pg_qualified(&q, cfg->table) < 0 || !(s->qname = buf_dup(&q))) {
		dp_buf_free(&q);
		dp_buf_msgf(err, "out of memory");
		return DP_EX_SOFTWARE;
	}
	dp_buf_reset(&q);
	if (dp_buf_addf(&q, "BEGIN; LOCK TABLE %s IN ROW EXCLUSIVE MODE", s->qname) < 0 ||
	    !(s->begin_sql = buf_dup(&q))) {
		dp_buf_free(&q);
		dp_buf_msgf(err, "out of memory");
		return DP_EX_SOFTWARE;
	}
	dp_buf_free(&q);

	if ((rc = connect_one(s, &s->ctl, err)) != 0)
		return rc;
	PGresult *r;
	if (exec_ctl(s, "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'", 0, NULL, &r,
	             NULL, err, "cannot list the database's extensions") != 0)
		return DP_EX_UNAVAILABLE;
	s->has_ts = PQntuples(r) > 0;
	PQclear(r);
	if (cfg->hypertable == DP_PGSINK_HYPER_ON && !s->has_ts) {
		dp_buf_msgf(err, "--hypertable on: the timescaledb extension is not installed in this "
		            "database (CREATE EXTENSION timescaledb)");
		return DP_EX_CONFIG;
	}
	rc = find_table(s, err);
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
	if (existed && (rc = table_known(s, err)) != 0)
		return rc;
	if (existed && cfg->chunk_ms)
		chunk_note(s);

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
		if ((rc = connect_one(s, &w->c, err)) != 0)
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

static void
batch_list_free(struct batch *b)
{
	while (b) {
		struct batch *n = b->next;
		batch_free(b);
		b = n;
	}
}

void
dp_pgsink_free(struct dp_pgsink *s)
{
	if (!s)
		return;
	if (s->w) {
		/*
		 * What runs is cancelled: a live server rolls it back at once.
		 * One that does not answer gets ABORT_WAIT_MS, then its
		 * connection is shut down under the writer, which then ends.
		 */
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
			batch_list_free(w->head);
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
	while (s->ans_head) {
		struct batch *b = s->ans_head;
		s->ans_head = b->next;
		batch_free(b);
	}
	while (s->spare) {
		struct batch *b = s->spare;
		s->spare = b->next;
		batch_free(b);
	}
	for (size_t i = 0; i < s->nsrc; i++) {
		struct dp_pgsink_src *src = s->src[i];
		batch_free(src->filling);
		batch_list_free(src->bounced);
		free(src->group);
		free(src->topic);
		free(src->label);
		free(src);
	}
	free(s->src);
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

/* ---- sources --------------------------------------------------------------------- */

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
	rc = exec_ctl(s, "SELECT to_regclass('" OFFSETS_TABLE "') IS NOT NULL", 0, NULL, &r, state,
	              err, "cannot look for table " OFFSETS_TABLE);
	if (rc)
		return rc == DP_PGSINK_DOWN ? rc : DP_EX_UNAVAILABLE;
	bool exists = *PQgetvalue(r, 0, 0) == 't';
	PQclear(r);
	if (exists) {
		s->offsets_ready = true;
		return 0;
	}
	rc = exec_ctl(s, sql, 0, NULL, NULL, state, err, "cannot create table " OFFSETS_TABLE);
	/* Two first runs at once: the loser's IF NOT EXISTS can still collide. */
	if (rc && (strcmp(state, "23505") == 0 || strcmp(state, "42P07") == 0)) {
		dp_buf_reset(err);
		rc = 0;
	}
	if (rc)
		return rc == DP_PGSINK_DOWN ? rc : fatal_status(state);
	s->offsets_ready = true;
	return 0;
}

/* The stored offset of src, read on c: 0 (*out -1 when none), or a kind. */
static enum dp_pg_kind
read_stored(PGconn *c, struct dp_pgsink_src *src, int64_t *out, char sqlstate[6],
            struct dp_buf *err)
{
	static const char sql[] =
		"SELECT next_offset FROM " OFFSETS_TABLE
		" WHERE \"group\" = $1 AND topic = $2 AND \"partition\" = $3";
	char part[16];
	const char *p[5];
	PGresult *r;

	offset_params(src, part, p);
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
		enum dp_pg_kind k = read_stored(s->ctl, src, &stored, st, err);
		if (k == DP_PG_TRANSIENT || k == DP_PG_RETRY) {
			s->ctl_broken = true;
			dp_buf_reset(&s->ctl_down);
			down_msg(&s->ctl_down, st, dp_buf_str(err));
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
	batch_list_free(src->bounced);
	src->bounced = src->bounced_tail = NULL;
	while (gone) {
		struct batch *b = gone;
		gone = b->next;
		batch_free(b);
	}
	if (src->filling) {
		s->filling_bytes -= batch_bytes(src->filling);
		batch_free(src->filling);
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

/* ---- filling batches -------------------------------------------------------------- */

/*
 * Keep a committed batch for the next one: its buffers are megabytes
 * that a fresh allocation would fault in page by page again.  As many
 * as can be in flight at once, no more, so memory stays where it was.
 */
static void
recycle(struct dp_pgsink *s, struct batch *b)
{
	if (s->nspare >= QDEPTH * s->nw + 1 || b->raw) {
		batch_free(b);
		return;
	}
	free(b->msg);
	bads_clear(b);
	*b = (struct batch){ .next = s->spare, .data = b->data, .json = b->json, .rows = b->rows,
	                     .caprows = b->caprows, .segs = b->segs, .capsegs = b->capsegs,
	                     .odata = b->odata, .origs = b->origs, .caporigs = b->caporigs,
	                     .bads = b->bads, .capbads = b->capbads };
	dp_buf_reset(&b->data);
	dp_buf_reset(&b->json);
	dp_buf_reset(&b->odata);
	s->spare = b;
	s->nspare++;
}

static struct batch *
filling(struct dp_pgsink *s, struct dp_pgsink_src *src)
{
	if (!src->filling) {
		struct batch *b = s->spare;
		if (b) {
			s->spare = b->next;
			s->nspare--;
			b->next = NULL;
		} else if (!(b = calloc(1, sizeof(*b)))) {
			return NULL;
		}
		b->src = src;
		b->gen = src->gen;
		b->start = b->end = src->end;
		b->raw = !s->table_ready;
		b->mv = s->mv;
		b->born_ms = dp_time_mono_ms();
		src->filling = b;
	}
	return src->filling;
}

static bool
full(const struct dp_pgsink *s, const struct batch *b)
{
	return b->nrows >= s->cfg.batch_rows || b->data.len >= s->cfg.batch_bytes;
}

static bool
lingered(const struct dp_pgsink *s, const struct batch *b, int64_t now)
{
	return (b->nrows || b->end > b->start) && now - b->born_ms >= s->cfg.linger_ms;
}

/* Take back the rows of the record being added. */
static void
undo_record(struct dp_pgsink_src *src, struct batch *b)
{
	b->nrows = src->rec_row;
	dp_buf_truncate(&b->data, src->rec_pos);
	dp_buf_truncate(&b->json, src->rec_jpos);
	b->nsegs = src->rec_seg;
	if (src->raw_kept && b->norigs > src->rec_orig) {
		dp_buf_truncate(&b->odata, b->origs[src->rec_orig].pos);
		b->norigs = src->rec_orig;
		src->raw_kept = false;
	}
	src->rec = -1;
}

void
dp_pgsink_raw(struct dp_pgsink *s, struct dp_pgsink_src *src, int64_t offset, const void *key,
              size_t klen, const void *value, size_t vlen)
{
	(void)s;
	src->raw_off = offset;
	src->raw_key = key;
	src->raw_klen = klen;
	src->raw_val = value;
	src->raw_vlen = vlen;
	src->raw_hdr = NULL;
	src->raw_hlen = 0;
	src->raw_kept = false;
}

void
dp_pgsink_raw_headers(struct dp_pgsink *s, struct dp_pgsink_src *src, const void *hdr,
                      size_t hlen)
{
	(void)s;
	src->raw_hdr = hlen ? hdr : NULL;
	src->raw_hlen = hlen;
}

int
dp_pgsink_add(struct dp_pgsink *s, struct dp_pgsink_src *src, int64_t offset, const char *json,
              size_t len, struct dp_buf *err)
{
	struct batch *b;
	int rc;

	if (src->closed || !src->active)
		return DP_PGSINK_STOPPED;
	if (!(b = filling(s, src))) {
		dp_buf_msgf(err, "out of memory");
		return DP_EX_SOFTWARE;
	}
	if (src->rec != offset) {
		src->rec = offset;
		src->rec_row = b->nrows;
		src->rec_pos = b->data.len;
		src->rec_seg = b->nsegs;
		src->rec_orig = b->norigs;
		src->rec_jpos = b->json.len;
	}
	size_t before = batch_bytes(b);
	if (b->raw) {
		/* No table yet: keep the text; the first due batch makes the table. */
		const char *jwhy;
		size_t off;
		enum dp_json_type t = dp_json_check(json, len, &jwhy, &off);
		struct inference one = { NULL, 0, 0 };
		int shapes = t == DP_JSON_OBJECT ? row_columns(s, json, len, &one) : 0;
		seen_clear(&one);
		free(one.v);
		if (shapes < 0)
			return nomem(err);
		if (!shapes) {
			if (t == DP_JSON_INVALID) {
				dp_buf_reset(&s->why);
				dp_buf_msgf(&s->why, "not JSON: %s at byte %zu", jwhy, off + 1);
			} else if (t != DP_JSON_OBJECT) {
				dp_buf_reset(&s->why);
				dp_buf_msgf(&s->why, "not a JSON object");
			}
			s->filling_bytes -= before;
			undo_record(src, b);
			s->filling_bytes += batch_bytes(b);
			return bad_row(s, src, offset, json, len, err);
		}
		if (grow_rows(b) < 0 || dp_buf_add(&b->data, json, len) < 0 ||
		    keep_orig(s, src, b, offset) < 0) {
			dp_buf_msgf(err, "out of memory");
			return DP_EX_SOFTWARE;
		}
		b->rows[b->nrows].offset = offset;
		b->rows[b->nrows].pos = b->rows[b->nrows].jpos = b->data.len - len;
		b->nrows++;
		s->filling_bytes += batch_bytes(b) - before;
		return 0;
	}
	size_t at = b->data.len;
	rc = encode_row(s, b, json, len, err);
	if (rc == 0) {
		/* The row's JSON stays with it: a change of the table encodes it again. */
		b->rows[b->nrows].offset = offset;
		b->rows[b->nrows].pos = at;
		b->rows[b->nrows].jpos = b->json.len;
		b->nrows++;
		if (dp_buf_add(&b->json, json, len) < 0 || keep_orig(s, src, b, offset) < 0) {
			dp_buf_msgf(err, "out of memory");
			return DP_EX_SOFTWARE;
		}
		s->filling_bytes += batch_bytes(b) - before;
		return 0;
	}
	s->filling_bytes -= before;
	undo_record(src, b);
	s->filling_bytes += batch_bytes(b);
	if (rc == DP_PGSINK_BAD)
		return bad_row(s, src, offset, json, len, err);
	return rc;
}

void
dp_pgsink_done(struct dp_pgsink *s, struct dp_pgsink_src *src, int64_t next)
{
	struct batch *b;

	if (!src->active)
		return;
	b = filling(s, src);
	src->rec = src->raw_off = -1;
	src->end = next;
	if (b)
		b->end = next;
	/* Without memory for a batch the advance waits for the next one. */
}

bool
dp_pgsink_room(const struct dp_pgsink *s, const struct dp_pgsink_src *src)
{
	if (src->filling && full(s, src->filling))
		return false;
	return s->filling_bytes < s->budget;
}

bool
dp_pgsink_due(struct dp_pgsink *s)
{
	int64_t now = dp_time_mono_ms();

	if (atomic_load(&s->answered) || s->stop_pending || s->ctl_broken || s->stale)
		return true;
	/* A batch whose writer has QDEPTH queued cannot go yet: not due, or a
	 * reader that asks would spin while the database is slow or locked. */
	bool can_submit = false;
	for (size_t i = 0; i < s->nsrc; i++) {
		const struct dp_pgsink_src *src = s->src[i];
		const struct batch *b = src->filling;
		if (!b || s->w[src->writer].queued >= QDEPTH)
			continue;
		can_submit = true;
		if (full(s, b) || lingered(s, b, now) || (src->flush && !src->queued))
			return true;
	}
	return can_submit && s->filling_bytes >= s->budget;
}

static void submit(struct dp_pgsink *s, struct dp_pgsink_src *src);
static void enqueue(struct dp_pgsink *s, struct dp_pgsink_src *src, struct batch *b);

/* ---- making the table ------------------------------------------------------------ */

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
static int
make_table(struct dp_pgsink *s, struct dp_buf *err)
{
	struct inference in = { NULL, 0, 0 };
	struct dp_buf q = DP_BUF_INIT;
	int rc = DP_EX_SOFTWARE;

	/* Another instance may have made it meanwhile: then it is the table. */
	if ((rc = find_table(s, err)) != 0)
		return rc == 1 ? table_known(s, err) : rc == DP_PGSINK_DOWN ? rc : -rc;
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
			int shapes = row_columns(s, json, len, &one);
			if (shapes < 0) {
				seen_clear(&one);
				free(one.v);
				goto nomem;
			}
			for (size_t k = 0; shapes && k < one.n; k++) {
				if (in.n >= limit && !inferred_has(s, one.v[k].name, &in))
					continue;
				if (seen_add(&in, one.v[k].name, one.v[k].len, one.v[k].mask, false) < 0) {
					seen_clear(&one);
					free(one.v);
					goto nomem;
				}
			}
		}
	}
	seen_clear(&one);
	free(one.v);
	const char *tcol = time_column(s, inferred_has, &in);
	const char *ttype = NULL;
	if (dp_buf_addf(&q, "CREATE TABLE IF NOT EXISTS %s (", s->qname) < 0)
		goto nomem;
	for (size_t i = 0; i < in.n; i++) {
		bool is_time = tcol && strcmp(in.v[i].name, tcol) == 0;
		const char *type = type_for(in.v[i].mask, is_time, s->cfg.numeric);
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
	if ((rc = exec_ctl(s, "BEGIN", 0, NULL, NULL, state, err, "cannot create the table")) == 0 &&
	    (rc = exec_ctl(s, q.data, 0, NULL, NULL, state, err, "cannot create the table")) == 0 &&
	    hyper) {
		char chunk[48];
		snprintf(chunk, sizeof(chunk), "%lld milliseconds", (long long)s->cfg.chunk_ms);
		const char *p[3] = { s->qname, tcol, chunk };
		rc = exec_ctl(s, s->cfg.chunk_ms
		              ? "SELECT create_hypertable($1::regclass, $2::name, "
		                "chunk_time_interval => $3::interval, if_not_exists => true)"
		              : "SELECT create_hypertable($1::regclass, $2::name, if_not_exists => true)",
		              s->cfg.chunk_ms ? 3 : 2, p, NULL, state, err, "cannot make a hypertable");
	}
	if (rc == 0)
		rc = exec_ctl(s, "COMMIT", 0, NULL, NULL, state, err, "cannot create the table");
	if (rc) {
		if (rc != DP_PGSINK_DOWN) {
			PQclear(PQexec(s->ctl, "ROLLBACK"));
			rc = fatal_status(state);
		}
		goto out;
	}
	dp_info("created table %s%s", s->cfg.table, hyper ? " as a hypertable" : "");
	if ((rc = find_table(s, err)) != 1) {
		if (rc == 0) {
			dp_buf_msgf(err, "table %s is missing right after CREATE TABLE", s->cfg.table);
			rc = DP_EX_SOFTWARE;
		}
		rc = rc < 0 && rc != DP_PGSINK_DOWN ? -rc : rc;
		goto out;
	}
	rc = table_known(s, err);
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

/*
 * Encode the raw batches now that the table exists.  A bad row is
 * reported; the fail mode ends the batch (and its source) there.
 * All or nothing: on DP_PGSINK_DOWN the raw batches stay as they were.
 */
static int
encode_raw(struct dp_pgsink *s, struct dp_buf *err)
{
	for (size_t i = 0; i < s->nsrc; i++) {
		struct dp_pgsink_src *src = s->src[i];
		struct batch *raw = src->filling;
		if (!raw || !raw->raw)
			continue;
		struct batch *b = calloc(1, sizeof(*b));
		if (!b) {
			dp_buf_msgf(err, "out of memory");
			return DP_EX_SOFTWARE;
		}
		*b = (struct batch){ .src = src, .gen = raw->gen, .start = raw->start,
		                     .end = raw->end, .born_ms = raw->born_ms, .mv = s->mv };
		int64_t cur = -1;
		size_t rec_row = 0, rec_pos = 0, rec_seg = 0, rec_jpos = 0;
		for (size_t r = 0; r < raw->nrows; r++) {
			int64_t off = raw->rows[r].offset;
			if (off != cur) {
				cur = off;
				rec_row = b->nrows;
				rec_pos = b->data.len;
				rec_seg = b->nsegs;
				rec_jpos = b->json.len;
			}
			const char *json = raw->data.data + raw->rows[r].pos;
			size_t len = (r + 1 < raw->nrows ? raw->rows[r + 1].pos : raw->data.len) -
			             raw->rows[r].pos;
			size_t at = b->data.len;
			int rc = encode_row(s, b, json, len, err);
			if (rc == 0) {
				b->rows[b->nrows].offset = off;
				b->rows[b->nrows].pos = at;
				b->rows[b->nrows].jpos = b->json.len;
				b->nrows++;
				if (dp_buf_add(&b->json, json, len) < 0) {
					batch_free(b);
					return nomem(err);
				}
				continue;
			}
			b->nrows = rec_row;
			dp_buf_truncate(&b->data, rec_pos);
			dp_buf_truncate(&b->json, rec_jpos);
			b->nsegs = rec_seg;
			if (rc != DP_PGSINK_BAD) {
				batch_free(b);
				return rc;
			}
			rc = report_kept(s, raw, off, dp_buf_str(&s->why), "", json, len);
			if (rc && s->cfg.on_error != DP_PGSINK_FAIL) {
				batch_free(b);
				return rc;
			}
			if (s->cfg.on_error == DP_PGSINK_FAIL) {
				b->end = off;
				src->end = off;
				src->closed = true;
				s->stop_pending = true;
				break;
			}
			/* skip the rest of this record's rows */
			while (r + 1 < raw->nrows && raw->rows[r + 1].offset == off)
				r++;
		}
		/* The records as they came stay with their rows. */
		b->odata = raw->odata;
		b->origs = raw->origs;
		b->norigs = raw->norigs;
		b->caporigs = raw->caporigs;
		raw->odata = (struct dp_buf)DP_BUF_INIT;
		raw->origs = NULL;
		raw->norigs = raw->caporigs = 0;
		s->filling_bytes -= batch_bytes(raw);
		s->filling_bytes += batch_bytes(b);
		src->filling = b;
		src->rec = -1;
		batch_free(raw);
		if (src->closed)
			submit(s, src);     /* what came before the bad row still lands */
	}
	return 0;
}

/* ---- a changed table ------------------------------------------------------------- */

/*
 * Why a row of a batch encoded before the table changed does not fit it
 * now (s->why, s->bad_col), as the run's last words: the table, the
 * column, its old and new type, the record.  Returns 78.
 */
static int
misfit(struct dp_pgsink *s, const struct dp_pgsink_src *src, int64_t offset, struct dp_buf *err)
{
	dp_buf_msgf(err, "table %s changed under dp-sink-pg", s->cfg.table);
	if (s->bad_col >= 0 && (size_t)s->bad_col < s->ncols) {
		const struct column *c = &s->cols[s->bad_col];
		dp_buf_msgf(err, " (column ");
		msg_name(err, c->name, c->len);
		if (c->was)
			dp_buf_msgf(err, " is now %s, was %s)", c->type, c->was);
		else if (c->fresh)
			dp_buf_msgf(err, " %s%s is new)", c->type, c->notnull ? " NOT NULL" : "");
		else if (c->required)
			dp_buf_msgf(err, " %s is NOT NULL now)", c->type);
		else
			dp_buf_msgf(err, " is %s)", c->type);
	}
	dp_buf_msgf(err, ": ");
	rec_where(src, offset, err);
	dp_buf_msgf(err, " no longer fits: %s; nothing of its batch was committed",
	            dp_buf_str(&s->why));
	return DP_EX_CONFIG;
}

/*
 * Encode b's rows again, from their JSON, for the model as it is now.
 * 0; 78 when a row does not fit (misfit); DP_PGSINK_DOWN or a status
 * when adding a column failed.  b is unchanged unless it succeeds.
 */
static int
reencode(struct dp_pgsink *s, struct batch *b, struct dp_buf *err)
{
	struct batch nb = { 0 };
	int rc = 0;

	s->reshaping = true;
	for (size_t r = 0; r < b->nrows; r++) {
		const char *json = b->json.data + b->rows[r].jpos;
		size_t len = (r + 1 < b->nrows ? b->rows[r + 1].jpos : b->json.len) - b->rows[r].jpos;
		size_t at = nb.data.len;
		s->bad_col = -1;
		rc = encode_row(s, &nb, json, len, err);
		if (rc == DP_PGSINK_BAD)
			rc = misfit(s, b->src, b->rows[r].offset, err);
		if (rc)
			break;
		nb.rows[nb.nrows] = (struct row){ b->rows[r].offset, at, b->rows[r].jpos };
		nb.nrows++;
	}
	s->reshaping = false;
	if (rc) {
		dp_buf_free(&nb.data);
		free(nb.rows);
		free(nb.segs);
		return rc;
	}
	dp_buf_free(&b->data);
	free(b->rows);
	free(b->segs);
	b->data = nb.data;
	b->rows = nb.rows;
	b->caprows = nb.caprows;
	b->segs = nb.segs;
	b->nsegs = nb.nsegs;
	b->capsegs = nb.capsegs;
	b->mv = s->mv;
	return 0;
}

/* b for the model as it is now: only its version when its rows are still good. */
static int
refresh(struct dp_pgsink *s, struct batch *b, struct dp_buf *err)
{
	if (b->raw || b->mv == s->mv)
		return 0;
	if (b->mv && b->mv->epoch == s->epoch) {
		b->mv = s->mv;
		return 0;
	}
	return reencode(s, b, err);
}

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
		msg_name(&m, c->name, c->len);
		if (c->was)
			dp_buf_msgf(&m, " %s (was %s)", c->type, c->was);
		else if (c->fresh)
			dp_buf_msgf(&m, " %s (new)", c->type);
		else
			dp_buf_msgf(&m, " NOT NULL (new)");
	}
	for (size_t i = 0; i < s->ngone; i++) {
		dp_buf_msgf(&m, "%s", m.len ? ", " : "");
		msg_name(&m, s->gone[i].name, strlen(s->gone[i].name));
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
static int
reshape(struct dp_pgsink *s, struct dp_buf *err)
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
		rc = find_table(s, err);
		if (rc == 0) {
			dp_buf_msgf(err, "table %s is gone: dropped or renamed while dp-sink-pg ran",
			            s->cfg.table);
			return DP_EX_CONFIG;
		}
		if (rc < 0)
			return rc == DP_PGSINK_DOWN ? rc : -rc;
		if ((rc = load_model(s, true, &rebuilt, err)) != 0)
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
				size_t before = batch_bytes(b);
				rc = refresh(s, b, err);
				s->filling_bytes += batch_bytes(b);
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
				} else if ((rc = refresh(s, b, err)) != 0) {
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
			enqueue(s, src, b);
			b = n;
		}
	}
	return 0;
}

/* ---- writing --------------------------------------------------------------------- */

/* Queue b on its source's writer. */
static void
enqueue(struct dp_pgsink *s, struct dp_pgsink_src *src, struct batch *b)
{
	struct writer *w = &s->w[src->writer];

	b->sent_ms = dp_time_mono_ms();
	b->widx = src->writer;
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

static void
submit(struct dp_pgsink *s, struct dp_pgsink_src *src)
{
	struct batch *b = src->filling;

	src->filling = NULL;
	s->filling_bytes -= batch_bytes(b);
	if ((b->nrows == 0 && !src->track) || (b->nrows == 0 && b->end == b->start)) {
		batch_free(b);          /* nothing to write, nothing to store */
		return;
	}
	enqueue(s, src, b);
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
				int st = report_kept(s, b, r->offset, r->reason, r->sqlstate, NULL, 0);
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
		bool current = b->gen == src->gen;
		switch (b->result) {
		case R_COMMITTED:
		case R_STOPPED:
			s->stats.rows += b->written;
			s->stats.batches++;
			s->stats.latency_ms = dp_time_mono_ms() - b->sent_ms;
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
			/* Its table changed: kept, in order, for reshape(). */
			b->next = NULL;
			b->result = R_NONE;
			if (src->bounced_tail)
				src->bounced_tail->next = b;
			else
				src->bounced = b;
			src->bounced_tail = b;
			continue;
		default:
			break;
		}
		recycle(s, b);
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
			due = b && b->nrows && (full(s, b) || lingered(s, b, now) || s->src[i]->flush);
		}
		bool rows = false;
		for (size_t i = 0; i < s->nsrc; i++)
			rows |= s->src[i]->filling && s->src[i]->filling->nrows;
		if (due && rows) {
			if ((rc = make_table(s, err)) != 0)
				return rc;
		}
	}
	if (s->table_ready && (rc = encode_raw(s, err)) != 0)
		return rc;
	if ((rc = reshape(s, err)) != 0)
		return rc;
	/* Over the byte budget: the biggest batches go first, full or not. */
	bool over = s->filling_bytes >= s->budget;
	for (size_t i = 0; i < s->nsrc; i++) {
		struct dp_pgsink_src *src = s->src[i];
		struct batch *b = src->filling;
		if (b && src->closed) {
			/* records after a stop are not written */
			src->filling = NULL;
			s->filling_bytes -= batch_bytes(b);
			batch_free(b);
			continue;
		}
		/* Records that made no row need no table: their offsets can go. */
		if (b && b->raw && b->nrows == 0)
			b->raw = false;
		/* Per writer, not per source: memory stays bounded however
		 * many partitions share a connection. */
		if (!b || b->raw || s->w[src->writer].queued >= QDEPTH || src->bounced)
			continue;
		if (flush || src->flush || over || full(s, b) || lingered(s, b, now))
			submit(s, src);
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

bool
dp_pgsink_idle(const struct dp_pgsink *s)
{
	for (size_t i = 0; i < s->nsrc; i++)
		if (!dp_pgsink_src_idle(s->src[i]))
			return false;
	return true;
}

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
			enum dp_pg_kind k = read_stored(w->c, src, &stored, st, err);
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
					if (s->ans_tail)
						s->ans_tail->next = b;
					else
						s->ans_head = b;
					s->ans_tail = b;
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

void
dp_pgsink_stats(const struct dp_pgsink *s, struct dp_pgsink_stats *st)
{
	*st = s->stats;
	st->retries = atomic_load(&s->retries);
}
