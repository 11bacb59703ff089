/*
 * pg/sink.h -- the engine of dp-sink-pg: JSON rows into one PostgreSQL
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
 * Threads: the caller's thread (one) calls every function here, and
 * every callback runs on it.  Each writer connection has a thread of its
 * own; a source always goes to one writer while it is acquired (the one
 * with the fewest sources when it was), so its batches commit in order
 * and its offset row sees one writer.  Up to two batches per writer are
 * queued or in flight while the caller fills the next one, and all the
 * batches being filled together stay under a byte budget: memory is
 * bounded by batch_bytes whatever the input.
 *
 * Sources come and go (Kafka partitions assigned and revoked): a source
 * is acquired when registered, starting from its stored offset, and can
 * be released (its rows not yet committed are dropped) and acquired
 * again later, when the stored offset is read again.  A batch belongs to
 * the acquisition it was filled in: one from before a release is never
 * sent, and if it was running, its answer is ignored.
 *
 * Bad rows: a row that cannot be encoded for its column (a string in a
 * bigint column, a NUL in text, a key without a column) is refused by
 * dp_pgsink_add.  A row the server refuses (SQLSTATE class 22 or 23) is
 * found by bisecting its batch inside the transaction with savepoints,
 * so the good rows of that batch still land.  Every bad row is passed to
 * on_bad with its source, offset, reason and SQLSTATE, on the caller's
 * thread: a writer that found some waits, with its transaction open,
 * until the caller has dealt with them (dp_pgsink_write serves it), so a
 * dead letter can be acknowledged before the batch that skips the row
 * commits.  With DP_PGSINK_FAIL the source stops at the first one,
 * everything before it committed.
 *
 * Outages: when a writer loses the database (pg/sqlstate.h's outage rows:
 * a lost connection, a shutdown, a read-only standby), its batches stay
 * queued and dp_pgsink_write() returns DP_PGSINK_DOWN; after
 * dp_pgsink_reconnect() the engine reads the stored offsets again, drops
 * the batches that did commit (the answer may have been lost on the
 * way), and sends the others again.  Nothing is lost, nothing is written
 * twice.  A batch that fails for a passing reason (a deadlock, a lock
 * timeout, a full disk: the retry rows) is rolled back and run again on
 * its connection, up to max_retries times, each retry said on stderr and
 * counted in the stats.
 *
 * A changed table: each batch's transaction takes the table's lock and
 * checks its shape before writing anything.  A table that changed since
 * the batch was encoded (ALTER TABLE ... TYPE, DROP COLUMN, SET NOT
 * NULL, a new required column) is read again and the batch, and every
 * batch being filled, is encoded again from the rows' JSON; a row that
 * no longer fits makes dp_pgsink_write() fail with 78, naming the table,
 * the column, its old and new type and the record, with nothing of that
 * batch committed.  A dropped or renamed table is 78 with its name.
 */
#ifndef DP_PGSINK_H
#define DP_PGSINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

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
	DP_PGSINK_SKIP,             /* report it (on_bad), write the others */
};

/* One bad record, for on_bad; every pointer is borrowed for the call. */
struct dp_pgsink_bad {
	const struct dp_pgsink_src *src;
	const char *topic;          /* the source's topic, or its --source-id */
	int32_t partition;          /* -1 for a --stdin source */
	int64_t offset;             /* the record's */
	const char *reason;
	const char *sqlstate;       /* the server's SQLSTATE, "" when dp refused it */
	/* The record as it came (dp_pgsink_raw; with keep_raw also for rows
	 * refused later), else the row's JSON as value and no key. */
	const void *key;
	size_t klen;
	const void *value;
	size_t vlen;
	/* Its headers as dp_pgsink_raw_headers gave them (opaque here), or NULL. */
	const void *headers;
	size_t hlen;
};

/*
 * Called for each bad record, on the caller's thread: from
 * dp_pgsink_add for a row refused at once, from dp_pgsink_write for
 * rows refused later (the server's, or those of the first batch, which
 * is encoded only once the table exists), before the batch that skips
 * them commits.  Returns 0 when the record is dealt with (reported,
 * dead-lettered), or an exit status when it could not be: the batch is
 * then not committed and the engine fails with that status (under
 * DP_PGSINK_FAIL the result is not used: the source stops anyway).
 */
typedef int (*dp_pgsink_bad_fn)(void *arg, const struct dp_pgsink_bad *bad);

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
	bool keep_raw;                  /* keep each record as dp_pgsink_raw gave it, for on_bad */
	/*
	 * A batch whose offset compare-and-set fails (another writer moved
	 * the source) ends the source: with resync it is only marked lost
	 * (dp_pgsink_lost) and the caller starts it again from the stored
	 * offset, as a consumer group member does; without, dp_pgsink_write
	 * fails with 75.
	 */
	bool resync;
	int64_t timeout_ms;             /* give up connecting after this */
	uint64_t max_retries;           /* in-place retries of one batch; 0: 10 */
	dp_pgsink_bad_fn on_bad;
	void *arg;
};

/* Results besides 0 (done) and exit statuses (lib/core/exit.h, message in err). */
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
 * Register a source, or find the one registered with these names, and
 * acquire it: read its stored offset (with track) and take rows from
 * there.  group and topic are copied; a --stdin source is group "",
 * topic = its --source-id, partition -1.  With track, the offsets table
 * is created when missing; without, nothing is stored and a resend after
 * an outage may repeat rows (only --upsert makes that harmless).
 * Returns the source (the engine owns it), or NULL with the reason in
 * err and *status: DP_PGSINK_DOWN when the database is out of reach
 * (dp_pgsink_reconnect, then call again), or an exit status.
 */
struct dp_pgsink_src *dp_pgsink_source(struct dp_pgsink *s, const char *group,
                                       const char *topic, int32_t partition, bool track,
                                       struct dp_buf *err, int *status);

/*
 * Let the source go (a revoked partition): its rows not yet committed
 * are dropped, queued batches are not sent, a batch running now may
 * still commit (the stored offset then says so).  It takes no rows
 * until dp_pgsink_source() acquires it again.
 */
void dp_pgsink_release(struct dp_pgsink *s, struct dp_pgsink_src *src);

/* Send src's batch being filled as soon as its writer has room, full or not. */
void dp_pgsink_flush(struct dp_pgsink *s, struct dp_pgsink_src *src);

/* 1 when every record accounted for src is committed (or src is released). */
bool dp_pgsink_src_idle(const struct dp_pgsink_src *src);

/*
 * With resync: a source whose compare-and-set failed (another instance
 * wrote it), or NULL.  It is released already; each is returned once.
 */
struct dp_pgsink_src *dp_pgsink_lost(struct dp_pgsink *s);

/* The stored next offset (the first record not yet in the table), or -1 when none. */
int64_t dp_pgsink_stored(const struct dp_pgsink_src *src);
/*
 * The end of the last batch this process committed for src (tracked or
 * not: the lines of --stdin written), or -1 when none.
 */
int64_t dp_pgsink_committed(const struct dp_pgsink_src *src);
/* Everything accounted with dp_pgsink_done() so far, committed or not. */
int64_t dp_pgsink_accounted(const struct dp_pgsink_src *src);
/* The source as the user names it: its --source-id, or "topic/partition". */
const char *dp_pgsink_src_label(const struct dp_pgsink_src *src);
/*
 * Where the record at offset of src is, as a person names it, appended
 * to out: "prices [2] offset 4711", "line 12 of source 'x'" (tracked
 * --stdin), "line 12".
 */
void dp_pgsink_where(const struct dp_pgsink_src *src, int64_t offset, struct dp_buf *out);

/*
 * The record at offset, as it came (key may be NULL), before its rows
 * are added: what on_bad shows, and with keep_raw what is kept for rows
 * the server refuses later.  Borrowed until dp_pgsink_done().  Optional.
 */
void dp_pgsink_raw(struct dp_pgsink *s, struct dp_pgsink_src *src, int64_t offset,
                   const void *key, size_t klen, const void *value, size_t vlen);

/*
 * After dp_pgsink_raw: the record's headers, hdr[0..hlen) in whatever
 * form the caller packed them (kafka/onerror.h's), kept with the record and
 * given back with it in dp_pgsink_bad.  Borrowed until dp_pgsink_done().
 */
void dp_pgsink_raw_headers(struct dp_pgsink *s, struct dp_pgsink_src *src, const void *hdr,
                           size_t hlen);

/*
 * Add one row (json[0..len), which must be a JSON object: the check is
 * part of encoding it) of the record at offset.  Returns 0;
 * DP_PGSINK_BAD (on_bad has been told; rows of this record already
 * added are taken back); DP_PGSINK_DOWN (adding a column needed the
 * database: add the record again after dp_pgsink_reconnect);
 * DP_PGSINK_STOPPED (the source takes no rows: stopped or released); or
 * an exit status (on_bad's too).  Call only when dp_pgsink_room() says so.
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
 * Deal with the bad rows writers found (on_bad), collect the writers'
 * answers, create the table when the first batch is due, and hand due
 * batches (with flush: every batch holding anything) to the writers.
 * Never waits for the database.  Returns 0, DP_PGSINK_DOWN (a writer or
 * the control connection lost the database), DP_PGSINK_STOPPED, or an
 * exit status (75 another writer moved a source's offset, without
 * resync; 70, 77, 78 for errors retrying cannot mend; on_bad's).
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

/*
 * Ask the server to cancel the writers' statements in flight (they roll
 * back), and retry nothing from now on.  Never waits: each request goes
 * from a thread of its own, since a server that does not answer never
 * answers a cancel either.
 */
void dp_pgsink_cancel(struct dp_pgsink *s);

/*
 * After a cancel that did not help: shut down the connections of the
 * writers still running, so that they return at once (their
 * transactions are lost, hence rolled back).  dp_pgsink_write then
 * reports DP_PGSINK_DOWN.  Never waits.
 */
void dp_pgsink_abort(struct dp_pgsink *s);

struct dp_pgsink_stats {
	uint64_t rows;                  /* committed */
	uint64_t bad;                   /* reported to on_bad */
	uint64_t batches;               /* committed */
	int64_t latency_ms;             /* of the last committed batch, from due to commit */
	uint64_t retries;               /* batches run again for a passing failure */
};

void dp_pgsink_stats(const struct dp_pgsink *s, struct dp_pgsink_stats *st);

#endif
