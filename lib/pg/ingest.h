/*
 * pg/ingest.h -- records from a source into a table, exactly once: the
 * steps of dp-sink-pg's machine (the seed's fixed-topic consumer).
 *
 * An ingest joins a record source (pg/source.h: NDJSON lines, or a
 * consumer group) to the sink engine (pg/sink.h).  Each record becomes
 * the rows --map makes of it (one row, the record, without --map); each
 * bad record, found here (not JSON, a tombstone, too long, a --map
 * error) or by the engine (a value its column refuses, a row the server
 * refuses), is named on stderr with where it came from and dealt with by
 * --on-error (kafka/onerror.h: fail, skip, or a dead letter acknowledged
 * before the batch that skips it commits).  A database outage pauses the
 * input, waits with backoff (the consumer still polled), reconnects and
 * resends what did not commit; a signal lets the batches in flight
 * commit for DRAIN_AFTER_SIGNAL_MS, then rolls them back.
 *
 * Each step is one action of the caller's state machine and returns what
 * happened, one outcome per event of that machine; a step that fails
 * records why (dp_ingest_reason: the first exit status, after the
 * message is said).  The outcomes and the events they stand for:
 *
 *   dp_ingest_connect    CONNECTED, UNAVAILABLE, SIGNAL
 *   dp_ingest_wait       RECORD (MESSAGE_RECEIVED), DUE (write_due), END (eof)
 *   dp_ingest_process    PROCESSED (PROCESS_SUCCESS), NEED_MORE, BAD
 *                        (PROCESS_FAILURE), WRITE_FAILED (the database was
 *                        needed and failed: the record stays in hand)
 *   dp_ingest_write      WRITTEN (WRITE_SUCCESS), WRITE_FAILED
 *   dp_ingest_judge      RESET (a bad record skipped), STOP (--on-error
 *                        fail), OUTAGE, FATAL
 *   dp_ingest_pause      RETRY
 *   dp_ingest_backoff    WAKE, SIGNAL, GIVE_UP
 *   dp_ingest_reconnect  RECONNECTED, UNAVAILABLE
 *   dp_ingest_commit     COMMITTED, WRITE_FAILED
 *
 * Threads: the caller's (one); the engine's writers are its own.
 */
#ifndef DP_INGEST_H
#define DP_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/props.h"
#include "pg/sink.h"
#include "pg/source.h"

struct dp_expr;
struct dp_on_error_policy;

#define DP_INGEST_DRAIN_MS 2000         /* after a signal: then the batch in flight rolls back */
#define DP_INGEST_ABORT_MS 500          /* after the cancel: then its connection is closed */

enum dp_ingest_outcome {
	DP_INGEST_CONNECTED,
	DP_INGEST_UNAVAILABLE,
	DP_INGEST_SIGNAL,
	DP_INGEST_RECORD,
	DP_INGEST_DUE,
	DP_INGEST_END,
	DP_INGEST_PROCESSED,
	DP_INGEST_NEED_MORE,
	DP_INGEST_BAD,
	DP_INGEST_WRITE_FAILED,
	DP_INGEST_WRITTEN,
	DP_INGEST_RESET,
	DP_INGEST_STOP,
	DP_INGEST_OUTAGE,
	DP_INGEST_FATAL,
	DP_INGEST_RETRY,
	DP_INGEST_WAKE,
	DP_INGEST_GIVE_UP,
	DP_INGEST_RECONNECTED,
	DP_INGEST_COMMITTED,
	DP_INGEST_NOUTCOMES
};

struct dp_ingest_conf {
	/* The engine's configuration (borrowed strings); on_bad, arg and
	 * resync are the ingest's, keep_raw follows --on-error dlq. */
	struct dp_pgsink_config sink;
	struct dp_expr *map;                    /* --map (borrowed), or NULL */
	struct dp_on_error_policy *on_error;    /* borrowed: its counts grow */
	const struct dp_kafka_opts *kafka;      /* the dead-letter producer's (borrowed) */
	const char *group;                      /* -g, for messages; NULL with lines */
	uint64_t max_retries;                   /* reconnects before giving up; 0: for ever */
	bool progress;                          /* --progress */
};

/*
 * An ingest of source (owned from now on, also when this fails) into
 * conf's table; nothing is connected yet.  NULL when memory runs out.
 */
struct dp_ingest *dp_ingest_new(const struct dp_ingest_conf *conf, struct dp_source *source);
/*
 * Release the engine (its writers' open transactions roll back), the
 * source and the dead-letter producer.  Accepts NULL.
 */
void dp_ingest_free(struct dp_ingest *in);

/* The source (borrowed). */
struct dp_source *dp_ingest_source(struct dp_ingest *in);

/* The first exit status a step failed with (its reason said), 0 none. */
int dp_ingest_reason(const struct dp_ingest *in);

/* The database (table checked), the dead-letter topic, then the source. */
enum dp_ingest_outcome dp_ingest_connect(struct dp_ingest *in);

/* Wait for a record, for the database side to need us, or for the end. */
enum dp_ingest_outcome dp_ingest_wait(struct dp_ingest *in);

/*
 * The record in hand and every one at hand without waiting, into rows,
 * until a batch is full or due: the per-record loop.
 */
enum dp_ingest_outcome dp_ingest_process(struct dp_ingest *in);

/* Hand batches to the writers; wait for room where the next record goes. */
enum dp_ingest_outcome dp_ingest_write(struct dp_ingest *in);

/* After a failed process or write: a bad record, a stop, an outage or worse. */
enum dp_ingest_outcome dp_ingest_judge(struct dp_ingest *in);

/* The database is away: the input waits (partitions paused). */
enum dp_ingest_outcome dp_ingest_pause(struct dp_ingest *in);

/* Wait out the backoff's delay, or give up (--max-retries). */
enum dp_ingest_outcome dp_ingest_backoff(struct dp_ingest *in);

/* One attempt to connect again; the input goes on where it was. */
enum dp_ingest_outcome dp_ingest_reconnect(struct dp_ingest *in);

/* No more input: write what is left and wait for it to commit. */
enum dp_ingest_outcome dp_ingest_commit(struct dp_ingest *in);

/* The end: the source closes (offsets to Kafka, leaving the group). */
void dp_ingest_close(struct dp_ingest *in);

/*
 * A rebalance, from the source's rebalance hook: start the partitions
 * assigned; finish (when finish: commit their batches first) and let go
 * those revoked.  0, or an exit status for the hook.
 */
int dp_ingest_assigned(struct dp_ingest *in);
int dp_ingest_revoked(struct dp_ingest *in, bool finish);

/* After the machine: --progress's last line, what was written, the bad records; the status. */
int dp_ingest_finish(struct dp_ingest *in, int status);

/* core/frame.h's .interrupted, through the source (pg/source.h). */
bool dp_ingest_interrupted(struct dp_ingest *in, int status, struct dp_buf *said,
                           struct dp_source_left *left);

#endif
