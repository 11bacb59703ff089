/*
 * pgsink.h -- the engine of dp-sink-pg: JSON rows into one PostgreSQL
 * table, exactly once per source.
 *
 * A *source* is one ordered stream of records with offsets: a Kafka
 * (topic, partition), or a file read with --stdin --source-id, where the
 * offset of line N is N - 1.  The caller hands the engine the rows of
 * each record (one JSON object each; a record may make none or several)
 * and says when a record is done; the engine batches them per source,
 * encodes them for binary COPY and writes each batch on a writer
 * connection in one transaction.  That transaction also moves the
 * source's row of the offsets table,
 *
 *   dp_sink_offsets("group", topic, "partition", next_offset, updated_at)
 *
 * from the offset the batch started at to the one after its last record:
 * a compare-and-set, so a writer whose idea of the stored offset is stale
 * (another instance took the partition over) changes no row, rolls back
 * and writes nothing.  Rows and offset commit together or not at all,
 * hence after any crash the stored offset says exactly which records are
 * in the table: resuming there neither loses nor repeats one.
 *
 * Threads: the caller's thread (one) calls every function here.  Each
 * writer connection has a thread of its own; a source always goes to the
 * same writer (its registration order modulo the writer count), so its
 * batches commit in order and its offset row sees one writer.  Up to
 * two batches per writer are queued or in flight while the caller fills
 * the next one, and all the batches being filled together stay under a
 * byte budget: memory is bounded by batch_bytes whatever the input.
 *
 * Bad rows: a row that cannot be encoded for its column (a string in a
 * bigint column, a NUL in text, a key without a column) is refused by
 * dp_pgsink_add.  A row the server refuses (SQLSTATE class 22 or 23) is
 * found by bisecting its batch inside the transaction with savepoints,
 * so the good rows of that batch still land.  Every bad row is passed to
 * on_bad with its source and offset; with DP_PGSINK_FAIL the source
 * stops at the first one, everything before it committed.
 *
 * Outages: when a writer loses the database (pg.h's transient errors),
 * its batches stay queued and dp_pgsink_write() returns DP_PGSINK_DOWN;
 * after dp_pgsink_reconnect() the engine reads the stored offsets again,
 * drops the batches that did commit (the answer may have been lost on
 * the way), and sends the others again.  Nothing is lost, nothing is
 * written twice.
 */
#ifndef DP_PGSINK_H
#define DP_PGSINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct dp_pgsink;
struct dp_pgsink_src;

/* What a key without a column of its own does. */
enum dp_pgsink_unknown {
	DP_PGSINK_UNKNOWN_BAD,      /* the row is bad */
	DP_PGSINK_UNKNOWN_ADD,      /* ALTER TABLE ... ADD COLUMN IF NOT EXISTS, type inferred */
	DP_PGSINK_UNKNOWN_EXTRA,    /* kept in the jsonb column extra_column */
};

enum dp_pgsink_hyper { DP_PGSINK_HYPER_AUTO, DP_PGSINK_HYPER_ON, DP_PGSINK_HYPER_OFF };

enum dp_pgsink_on_error {
	DP_PGSINK_FAIL,             /* stop the source at the first bad row */
	DP_PGSINK_SKIP,             /* report it, write the others */
};

/*
 * Called for each bad row, with the record's offset and the reason.
 * Called from the caller's thread or from a writer thread (for rows the
 * server refused), so it must be thread-safe; it runs before the batch
 * that skips the row commits.
 */
typedef void (*dp_pgsink_bad_fn)(void *arg, const struct dp_pgsink_src *src, int64_t offset,
                                 const char *reason);

struct dp_pgsink_config {
	const char *conninfo;           /* libpq conninfo or URI; NULL: libpq defaults */
	const char *app;                /* application_name */
	const char *table;              /* "name" or "schema.name", taken literally */
	bool create;                    /* create a missing table from the first batch */
	enum dp_pgsink_unknown unknown;
	const char *extra_column;       /* for DP_PGSINK_UNKNOWN_EXTRA; "extra" */
	const char *time_column;        /* NULL: "ts", else "time", when the table has it */
	bool numeric;                   /* infer numeric, not double precision */
	const char *const *keys;        /* --upsert columns (borrowed), or NULL */
	size_t nkeys;
	bool update;                    /* on conflict: update (else do nothing) */
	enum dp_pgsink_hyper hypertable;
	int64_t chunk_ms;               /* chunk_time_interval; 0: TimescaleDB's default */
	unsigned writers;               /* writer connections, >= 1 */
	size_t batch_rows;              /* a batch is due at this many rows ... */
	size_t batch_bytes;             /* ... or this many encoded bytes ... */
	int64_t linger_ms;              /* ... or when its first row is this old */
	enum dp_pgsink_on_error on_error;
	int64_t timeout_ms;             /* give up connecting after this */
	dp_pgsink_bad_fn on_bad;
	void *arg;
};

/* Results besides 0 (done) and exit statuses (lib/exit.h, message in err). */
enum {
	DP_PGSINK_BAD = -2,     /* the row is bad; on_bad has been told */
	DP_PGSINK_DOWN = -3,    /* the database is out of reach: dp_pgsink_reconnect() */
	DP_PGSINK_STOPPED = -4, /* DP_PGSINK_FAIL: a source stopped at a bad row */
};

/*
 * Connect the control connection and the writers, look the table up
 * (unless create and missing) and check the options against it.
 * Returns 0 with *out set, or an exit status with the reason in err:
 * 69 database unreachable or login refused, 81 no such table (without
 * create), 78 the table does not fit the options (--upsert keys without
 * a unique index, --hypertable on without TimescaleDB, a column type dp
 * cannot write), 77 permission denied.  *out is freed with
 * dp_pgsink_free() in every case.
 */
int dp_pgsink_open(struct dp_pgsink **out, const struct dp_pgsink_config *cfg,
                   struct dp_buf *err);

/*
 * Roll back what is in flight (writers' open transactions are
 * cancelled), stop the writer threads, close the connections.  Rows not
 * committed are dropped: the stored offsets say where to resume.
 * Accepts NULL.
 */
void dp_pgsink_free(struct dp_pgsink *s);

/*
 * Register a source.  group and topic are copied; a --stdin source is
 * group "", topic = its --source-id, partition -1.  With track, the
 * offsets table is created when missing and the source's stored offset
 * read (dp_pgsink_stored); without, nothing is stored and a resend after
 * an outage may repeat rows (only --upsert makes that harmless).
 * Returns NULL with an exit status in *status and the reason in err.
 * The engine owns the source.
 */
struct dp_pgsink_src *dp_pgsink_source(struct dp_pgsink *s, const char *group,
                                       const char *topic, int32_t partition, bool track,
                                       struct dp_buf *err, int *status);

/* The stored next offset (the first record not yet in the table), or -1 when none. */
int64_t dp_pgsink_stored(const struct dp_pgsink_src *src);
/* Everything accounted with dp_pgsink_done() so far, committed or not. */
int64_t dp_pgsink_accounted(const struct dp_pgsink_src *src);
/* The source as the user names it: its --source-id, or "topic/partition". */
const char *dp_pgsink_src_label(const struct dp_pgsink_src *src);

/*
 * Add one row (json[0..len), which must be a JSON object: the check is
 * part of encoding it) of the record at offset.  Returns 0; DP_PGSINK_BAD (rows of this record already added
 * are taken back); DP_PGSINK_DOWN (adding a column needed the database:
 * add the record again after dp_pgsink_reconnect); or an exit status.
 * Call only when dp_pgsink_room() says so.
 */
int dp_pgsink_add(struct dp_pgsink *s, struct dp_pgsink_src *src, int64_t offset,
                  const char *json, size_t len, struct dp_buf *err);

/*
 * Every record before next is accounted for: added, skipped as bad, or
 * mapped to no row.  The batch being filled ends there; it becomes due
 * when it is full.
 */
void dp_pgsink_done(struct dp_pgsink *s, struct dp_pgsink_src *src, int64_t next);

/* 1 when src may take another record now. */
bool dp_pgsink_room(const struct dp_pgsink *s, const struct dp_pgsink_src *src);

/*
 * 1 when dp_pgsink_write() has something to do: a batch is full or has
 * lingered, or a writer answered.  Cheap: for a reader's idle loop.
 */
bool dp_pgsink_due(struct dp_pgsink *s);

/*
 * Collect the writers' answers, create the table when the first batch
 * is due, and hand due batches (with flush: every batch holding
 * anything) to the writers.  Never waits.  Returns 0, DP_PGSINK_DOWN,
 * DP_PGSINK_STOPPED, or an exit status (75 another writer moved a
 * source's offset; 70, 77, 78 for errors retrying cannot mend).
 */
int dp_pgsink_write(struct dp_pgsink *s, bool flush, struct dp_buf *err);

/* Wait up to ms for a writer's answer. */
void dp_pgsink_wait(struct dp_pgsink *s, int64_t ms);

/* 1 when every accounted record is committed (nothing queued or filling). */
bool dp_pgsink_idle(const struct dp_pgsink *s);

/*
 * After DP_PGSINK_DOWN: connect again what was lost (one attempt, up to
 * the timeout), read the stored offsets, drop the batches that did
 * commit and resend the rest.  Returns 0, DP_PGSINK_DOWN (still out of
 * reach; the reason in err), or an exit status.
 */
int dp_pgsink_reconnect(struct dp_pgsink *s, struct dp_buf *err);

/* Ask the server to cancel the writers' statements in flight (they roll back). */
void dp_pgsink_cancel(struct dp_pgsink *s);

struct dp_pgsink_stats {
	uint64_t rows;                  /* committed */
	uint64_t bad;                   /* reported to on_bad */
	uint64_t batches;               /* committed */
	int64_t latency_ms;             /* of the last committed batch, from due to commit */
};

void dp_pgsink_stats(const struct dp_pgsink *s, struct dp_pgsink_stats *st);

#endif
