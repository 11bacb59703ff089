/*
 * pg/sink-internal.h -- what the parts of the sink engine (pg/sink.h)
 * share, and nobody else: its structures and the calls between them.
 *
 * The engine is four files, one room each (after git's refs/refs-internal.h):
 *
 *   sink.c    the engine's front: open and free, the control connection's
 *             statements, sources and their stored offsets, statistics;
 *   model.c   the table model: columns, types, the shape's fingerprint,
 *             the COPY layouts, making the table (--create) and reading it
 *             again when it changed (reshape);
 *   encode.c  rows into binary COPY: the batches being filled, bad rows
 *             refused at once, raw batches encoded once the table exists,
 *             batches encoded again for a changed table;
 *   writer.c  the writer threads: connections, queues, a batch's
 *             transaction (lock, shape check, offset compare-and-set, COPY,
 *             bisecting bad rows, COMMIT), retries, answers, reconnects.
 *
 * Threads: everything here runs on the caller's thread except the writer
 * threads (writer.c), which touch the shared fields (queues, answers, a
 * source's gen, stopped and bouncing, stored and committed) only under
 * s->mu, or through atomics.  A layout, once linked in, and a model
 * version (struct mver) are read-only: writers read them unlocked.
 *
 * Functions shared between the files are named sink_<verb>; they follow
 * the engine's conventions: 0, DP_PGSINK_DOWN or an exit status, with the
 * reason in err.
 */
#ifndef DP_PGSINK_INTERNAL_H
#define DP_PGSINK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "core/backoff.h"
#include "core/buf.h"
#include "json/scan.h"
#include "pg/binary.h"
#include "pg/conn.h"
#include "pg/offsets.h"
#include "pg/sink.h"

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

/* ---- the table model (model.c) ------------------------------------------ */

/* A column of the table, as the catalog says. */
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

/* ---- batches (encode.c fills them, writer.c runs them) -------------------- */

/* A row of a batch. */
struct row {
	int64_t offset;                 /* of its record */
	size_t pos;                     /* into the batch's data */
	size_t jpos;                    /* its JSON, into the batch's json */
};

/* A run of rows of one layout: one COPY. */
struct seg {
	struct layout *L;               /* NULL in a raw batch */
	size_t first;                   /* row index */
};

/* A writer's answer about a batch. */
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

/* The rows of one source between two offsets: one transaction. */
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
	size_t sent_bytes;              /* counted in the engine's sent_bytes while queued or running */
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

/* ---- sources, writers, the engine ------------------------------------------ */

/* A source (pg/sink.h): acquired, released, its batches and stored offset. */
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

/* A writer: a connection and the thread that runs its queue. */
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

/* A row's value for a column while it is encoded (gen: the row it is of). */
struct slot {
	unsigned gen;
	enum dp_json_type t;
	const char *v;
	size_t n;
};

struct dp_pgsink {
	struct dp_pgsink_config cfg;
	/* obs/obs.h, labelled with the table: rows committed, each batch's
	 * time from the hand-over to its commit (added per batch, in collect) */
	struct dp_series *obs_rows, *obs_batch;
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
	size_t sent_bytes;              /* batches queued or running, from sink_enqueue to collect */
	size_t budget;                  /* for filling_bytes + sent_bytes */
	bool stop_pending;              /* a source stopped: tell the caller once */
	struct batch *spare;            /* committed batches kept for their memory */
	unsigned nspare;
	size_t spare_bytes;             /* their buffers' capacity */
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

/* Type inference (--create, --unknown-keys add): the kinds of value seen per key. */
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


/* ---- sink.c: helpers, the control connection, sources ------------------ */

/* A copy of b's text (SQL built in scratch); NULL when memory runs out. */
char *sink_buf_dup(struct dp_buf *b);
/* For messages: name as a JSON string; a value, shortened. */
void sink_msg_name(struct dp_buf *m, const char *name, size_t n);
void sink_msg_value(struct dp_buf *m, const char *v, size_t n);
/* Why the database is out of reach, in pg/sqlstate.h's words, into out. */
void sink_down_msg(struct dp_buf *out, const char *sqlstate, const char *msg);
/* A connection for the engine (ctl or a writer): 0, or 69, 77, 78 with err. */
int sink_connect_one(struct dp_pgsink *s, PGconn **c, struct dp_buf *err);
/*
 * A statement on the control connection: 0; DP_PGSINK_DOWN (a lost
 * connection or a passing failure: ctl is broken until the reconnect);
 * -1 with the SQLSTATE in state (when not NULL) and the reason in err.
 */
int sink_exec_ctl(struct dp_pgsink *s, const char *sql, int n, const char *const *p,
                  PGresult **res, char *state, struct dp_buf *err, const char *what);
/* The exit status for an error retrying cannot mend: 77, 78, else 75. */
int sink_fatal_status(const char *sqlstate);
/*
 * A JSON member name's decoded bytes (borrowed from the literal or buf):
 * 0, -1 out of memory, -2 a lone surrogate escape.
 */
int sink_key_name(struct dp_buf *buf, const char *lit, size_t n, const char **name,
                  size_t *len);
/* Why a key cannot be a column name (static text), or NULL when it can. */
const char *sink_bad_ident(const char *name, size_t len);
/* src's stored next_offset read on c (*out -1 when none): a dp_pg_kind. */
enum dp_pg_kind sink_read_stored(PGconn *c, struct dp_pgsink_src *src, int64_t *out,
                                 char sqlstate[6], struct dp_buf *err);

/* ---- model.c: the table model ------------------------------------------ */

/* Look the table up: 1 found (oid, schema, name set), 0 missing, DP_PGSINK_DOWN, or -status. */
int sink_find_table(struct dp_pgsink *s, struct dp_buf *err);
/* The table is there: its model, and what the options need of it.  0 or a status. */
int sink_table_known(struct dp_pgsink *s, struct dp_buf *err);
/*
 * Read the table's columns and fingerprint and bring the model up to
 * them (with rebuild, a change other than new columns makes a new model;
 * *rebuilt says so).  0, DP_PGSINK_DOWN, or an exit status.
 */
int sink_load_model(struct dp_pgsink *s, bool rebuild, bool *rebuilt, struct dp_buf *err);
/* --chunk-interval given for a table that exists: say what it does not change. */
void sink_chunk_note(struct dp_pgsink *s);
/* CREATE TABLE (a hypertable when it can be) from the raw batches' rows. */
int sink_make_table(struct dp_pgsink *s, struct dp_buf *err);
/* The table changed: read it again, encode and requeue what it concerns. */
int sink_reshape(struct dp_pgsink *s, struct dp_buf *err);
/* Free the model: columns, layouts (retired ones too), versions. */
void sink_model_free(struct dp_pgsink *s);
/* A column's index by name, or -1. */
int sink_find_col(const struct dp_pgsink *s, const char *name, size_t n);
/* The layout naming exactly cols[0..n), made when new; NULL out of memory. */
struct layout *sink_layout_for(struct dp_pgsink *s, const unsigned *cols, size_t n);
/* Type inference (dp-sink-pg(1), COLUMNS): */
bool sink_fits(struct dp_pgsink *s, enum dp_pgbin_kind k, enum dp_json_type t, const char *v,
               size_t n, const char **why);
unsigned sink_value_mask(struct dp_pgsink *s, enum dp_json_type t, const char *v, size_t n,
                         const char **why);
const char *sink_type_for(unsigned mask, bool is_time, bool numeric);
bool sink_is_time_name(const struct dp_pgsink *s, const char *name, size_t len);
/* The columns a row would make (--create): 1, 0 (why in s->why), -1 out of memory. */
int sink_row_columns(struct dp_pgsink *s, const char *json, size_t len,
                     struct inference *one);
void sink_seen_clear(struct inference *in);

/* ---- encode.c: batches and rows ---------------------------------------- */

/* What a batch holds in memory, for the byte budget. */
size_t sink_batch_bytes(const struct batch *b);
/* Free a batch, or a list of them (through next).  Accept NULL. */
void sink_batch_free(struct batch *b);
void sink_batch_list_free(struct batch *b);
/* Keep an answered batch's buffers for the next one (or free it). */
void sink_recycle(struct dp_pgsink *s, struct batch *b);
/* Due: full (rows or bytes), or its first row is linger_ms old. */
bool sink_full(const struct dp_pgsink *s, const struct batch *b);
bool sink_lingered(const struct dp_pgsink *s, const struct batch *b, int64_t now);
/* Encode the raw batches now that the table exists: 0 or a status. */
int sink_encode_raw(struct dp_pgsink *s, struct dp_buf *err);
/* b for the model as it is now (encoded again when its rows must be). */
int sink_refresh(struct dp_pgsink *s, struct batch *b, struct dp_buf *err);
/* A bad record of b to on_bad, as kept (keep_raw) or as its row's JSON. */
int sink_report_kept(struct dp_pgsink *s, const struct batch *b, int64_t offset,
                     const char *reason, const char *sqlstate, const char *json, size_t len);

/* ---- writer.c: the writers --------------------------------------------- */

/* Connect the writers and start their threads / stop and close them. */
int sink_writers_start(struct dp_pgsink *s, struct dp_buf *err);
void sink_writers_stop(struct dp_pgsink *s);
/* Hand src's batch being filled to its writer (or drop it: nothing to do). */
void sink_submit(struct dp_pgsink *s, struct dp_pgsink_src *src);
/* Queue b on src's writer. */
void sink_enqueue(struct dp_pgsink *s, struct dp_pgsink_src *src, struct batch *b);
/* The offsets row's key as statement parameters p[0..3). */
void sink_offset_params(struct dp_pgsink_src *src, char part[16], const char *p[5]);

#endif
