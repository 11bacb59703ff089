/*
 * dp-sink-pg -- JSON records into PostgreSQL rows, exactly once.
 *
 * The platform's fixed-topic consumer: records become rows of one table
 * (a TimescaleDB hypertable when the extension is there), written with
 * binary COPY, each batch in one transaction that also moves the
 * source's stored offset.  This file is the options, their combinations
 * and the state machine; each action is one step of lib/pg/ingest.h,
 * which takes records from a source (lib/pg/source.h: NDJSON lines with
 * --stdin, a consumer group with -t -g) into the sink engine
 * (lib/pg/sink.h).  --reset-offsets is a machine of its own, whose steps
 * are lib/pg/reset.h's.
 */
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cli.h"
#include "core/exit.h"
#include "core/frame.h"
#include "core/fsm.h"
#include "core/log.h"
#include "core/vec.h"
#include "jq/expr.h"
#include "kafka/client.h"
#include "kafka/onerror.h"
#include "status/watch.h"
#include "pg/conn.h"
#include "pg/ingest.h"
#include "pg/reset.h"
#include "pg/sink.h"
#include "pg/source.h"

struct sink {
	struct dp_common common;
	struct dp_fsm fsm;

	/* options */
	bool from_stdin;
	const char *source_id;
	struct dp_opt_list topics;      /* -t */
	const char *group;
	bool until_end;                 /* -e */
	const char *db;                 /* --db, else $DP_PG, else NULL */
	char *db_arg;                   /* owned: --db's copy, its argv bytes blanked */
	const char *db_from;            /* "--db" or "$DP_PG", for messages */
	const char *table;
	bool create;
	int unknown;                    /* enum dp_pgsink_unknown: bad, add, extra */
	const char *time_column;
	bool numeric;
	const char *map_src;
	struct dp_expr *map;
	const char *upsert;
	char *keys_arg;                 /* owned: --upsert's copy, split in place */
	const char **keys;
	size_t nkeys, capkeys;
	int on_conflict;                /* nothing, update; -1 not given (update) */
	int hypertable;                 /* enum dp_pgsink_hyper: auto, on, off */
	int64_t chunk_ms;
	struct dp_on_error_policy on_error;
	uint64_t writers;
	uint64_t batch_rows;
	uint64_t batch_bytes;
	int64_t linger_ms;
	uint64_t max_retries;
	bool progress;
	struct dp_sinkreset reset;      /* --reset-offsets */
	struct dp_watch_opts watch;     /* --status-topic, --metrics ... (status/watch.h) */

	/* the run */
	struct dp_ingest *in;
	int hook_status;                /* a rebalance event's action's status */
};

/* ---- state machine ---------------------------------------------------- */

/*
 * The seed's fixed-topic consumer (idle, processingMessage, writingToDB,
 * error, with MESSAGE_RECEIVED, PROCESS_SUCCESS/FAILURE, WRITE_SUCCESS/
 * FAILURE and RESET), plus connecting; paused, backoff and reconnecting
 * (a database outage); committing (the final flush) and closing (leaving
 * the group).  assigned and revoked come from the consumer's hooks while
 * an action polls it: in idle, in backoff (an outage), and in closing.
 */
enum state { S_IDLE, S_CONNECTING, S_PROCESSING, S_WRITING, S_ERROR, S_PAUSED, S_BACKOFF,
             S_RECONNECTING, S_COMMITTING, S_CLOSING, S_DONE, S_FAILED, NSTATES };
enum event { E_START, E_CONNECTED, E_UNAVAILABLE, E_SIGNAL, E_MESSAGE_RECEIVED, E_WRITE_DUE,
             E_EOF, E_PROCESS_SUCCESS, E_NEED_MORE, E_PROCESS_FAILURE, E_WRITE_SUCCESS,
             E_WRITE_FAILURE, E_RESET, E_STOP, E_OUTAGE, E_FATAL, E_RETRY, E_WAKE, E_GIVE_UP,
             E_RECONNECTED, E_COMMITTED, E_ASSIGNED, E_REVOKED, E_CLOSED, E_FAILED, NEVENTS };

static const char *const state_names[NSTATES] = {
	"idle", "connecting", "processing_message", "writing_to_db", "error", "paused",
	"backoff", "reconnecting", "committing", "closing", "done", "failed",
};
static const char *const event_names[NEVENTS] = {
	"start", "connected", "unavailable", "signal", "MESSAGE_RECEIVED", "write_due", "eof",
	"PROCESS_SUCCESS", "need_more", "PROCESS_FAILURE", "WRITE_SUCCESS", "WRITE_FAILURE",
	"RESET", "stop", "outage", "fatal", "retry", "wake", "give_up", "reconnected",
	"committed", "assigned", "revoked", "closed", "failed",
};

static int act_connect(struct dp_fsm *m, void *ctx);
static int act_wait(struct dp_fsm *m, void *ctx);
static int act_process(struct dp_fsm *m, void *ctx);
static int act_write(struct dp_fsm *m, void *ctx);
static int act_error(struct dp_fsm *m, void *ctx);
static int act_pause(struct dp_fsm *m, void *ctx);
static int act_backoff(struct dp_fsm *m, void *ctx);
static int act_reconnect(struct dp_fsm *m, void *ctx);
static int act_commit(struct dp_fsm *m, void *ctx);
static int act_close(struct dp_fsm *m, void *ctx);
static int act_assigned(struct dp_fsm *m, void *ctx);
static int act_revoked(struct dp_fsm *m, void *ctx);

static const struct dp_fsm_row rows[] = {
	/* state           event               next            action */
	{ S_IDLE,          E_START,            S_CONNECTING,   act_connect },
	{ S_CONNECTING,    E_CONNECTED,        S_IDLE,         act_wait },
	{ S_CONNECTING,    E_UNAVAILABLE,      S_FAILED,       NULL },
	{ S_CONNECTING,    E_SIGNAL,           S_DONE,         NULL },
	{ S_IDLE,          E_MESSAGE_RECEIVED, S_PROCESSING,   act_process },
	{ S_IDLE,          E_WRITE_DUE,        S_WRITING,      act_write },
	{ S_IDLE,          E_EOF,              S_COMMITTING,   act_commit },
	/* From the consumer's hooks, while act_wait polls: */
	{ S_IDLE,          E_ASSIGNED,         DP_FSM_SAME,    act_assigned },
	{ S_IDLE,          E_REVOKED,          DP_FSM_SAME,    act_revoked },
	{ S_PROCESSING,    E_PROCESS_SUCCESS,  S_WRITING,      act_write },
	{ S_PROCESSING,    E_NEED_MORE,        S_IDLE,         act_wait },
	{ S_PROCESSING,    E_PROCESS_FAILURE,  S_ERROR,        act_error },
	{ S_PROCESSING,    E_WRITE_FAILURE,    S_ERROR,        act_error },
	{ S_WRITING,       E_WRITE_SUCCESS,    S_IDLE,         act_wait },
	{ S_WRITING,       E_WRITE_FAILURE,    S_ERROR,        act_error },
	{ S_ERROR,         E_RESET,            S_IDLE,         act_wait },
	{ S_ERROR,         E_STOP,             S_COMMITTING,   act_commit },
	{ S_ERROR,         E_OUTAGE,           S_PAUSED,       act_pause },
	{ S_ERROR,         E_FATAL,            S_CLOSING,      act_close },
	{ S_PAUSED,        E_RETRY,            S_BACKOFF,      act_backoff },
	{ S_BACKOFF,       E_WAKE,             S_RECONNECTING, act_reconnect },
	{ S_BACKOFF,       E_SIGNAL,           S_CLOSING,      act_close },
	{ S_BACKOFF,       E_GIVE_UP,          S_CLOSING,      act_close },
	/* A rebalance during an outage, while act_backoff polls: */
	{ S_BACKOFF,       E_ASSIGNED,         DP_FSM_SAME,    act_assigned },
	{ S_BACKOFF,       E_REVOKED,          DP_FSM_SAME,    act_revoked },
	{ S_RECONNECTING,  E_RECONNECTED,      S_WRITING,      act_write },
	{ S_RECONNECTING,  E_UNAVAILABLE,      S_BACKOFF,      act_backoff },
	{ S_COMMITTING,    E_COMMITTED,        S_CLOSING,      act_close },
	{ S_COMMITTING,    E_WRITE_FAILURE,    S_ERROR,        act_error },
	/* Leaving the group revokes, inside act_close: */
	{ S_CLOSING,       E_REVOKED,          DP_FSM_SAME,    act_revoked },
	{ S_CLOSING,       E_CLOSED,           S_DONE,         NULL },
	{ S_CLOSING,       E_FAILED,           S_FAILED,       NULL },
};
static const struct dp_fsm_final finals[] = { { S_DONE, 0 }, { S_FAILED, DP_FSM_REASON } };

static const struct dp_fsm_def machine = {
	"dp-sink-pg", state_names, NSTATES, event_names, NEVENTS,
	rows, DP_FSM_COUNT(rows), S_IDLE, finals, DP_FSM_COUNT(finals),
};

/*
 * --reset-offsets: connect to the database and Kafka, then move the
 * group's stored offsets (and its offsets in Kafka) in one transaction.
 */
enum { R_IDLE, R_CONNECTING, R_MOVING, R_DONE, R_FAILED, R_NSTATES };
enum { RE_START, RE_CONNECTED, RE_UNAVAILABLE, RE_MOVED, RE_REFUSED, RE_NEVENTS };

static const char *const reset_states[R_NSTATES] = {
	"idle", "connecting", "moving", "done", "failed",
};
static const char *const reset_events[RE_NEVENTS] = {
	"start", "connected", "unavailable", "moved", "refused",
};

static int act_reset_connect(struct dp_fsm *m, void *ctx);
static int act_reset_move(struct dp_fsm *m, void *ctx);

static const struct dp_fsm_row reset_rows[] = {
	{ R_IDLE,       RE_START,       R_CONNECTING, act_reset_connect },
	{ R_CONNECTING, RE_CONNECTED,   R_MOVING,     act_reset_move },
	{ R_CONNECTING, RE_UNAVAILABLE, R_FAILED,     NULL },
	{ R_MOVING,     RE_MOVED,       R_DONE,       NULL },
	{ R_MOVING,     RE_REFUSED,     R_FAILED,     NULL },
};
static const struct dp_fsm_final reset_finals[] = { { R_DONE, 0 }, { R_FAILED, DP_FSM_REASON } };

static const struct dp_fsm_def reset_machine = {
	"dp-sink-pg reset-offsets", reset_states, R_NSTATES, reset_events, RE_NEVENTS,
	reset_rows, DP_FSM_COUNT(reset_rows), R_IDLE, reset_finals, DP_FSM_COUNT(reset_finals),
};

static const struct dp_fsm_def *const machines[] = { &machine, &reset_machine, NULL };

/* ---- options ---------------------------------------------------------- */

static int
opt_db(void *ctx, const struct dp_opt *o, char *arg)
{
	struct sink *k = ctx;
	bool had;

	(void)o;
	free(k->db_arg);
	if (!(k->db = k->db_arg = dp_pg_conninfo_hide(arg, &had))) {
		dp_err("out of memory");
		return -1;
	}
	k->db_from = "--db";
	if (had)
		dp_warn("--db holds a password, which other users of this machine may see in the "
		        "process list: prefer ~/.pgpass or $DP_PG");
	return 0;
}

static int
opt_on_error(void *ctx, const struct dp_opt *o, char *arg)
{
	(void)o;
	return dp_on_error_parse(&((struct sink *)ctx)->on_error, arg);
}

static int
opt_reset(void *ctx, const struct dp_opt *o, char *arg)
{
	(void)o;
	return dp_sinkreset_add(&((struct sink *)ctx)->reset, arg);
}

static const char *const unknown_names[] = { "bad", "add", "extra", NULL };
static const char *const conflict_names[] = { "nothing", "update", NULL };
static const char *const hyper_names[] = { "auto", "on", "off", NULL };

#define OFF(f) .off = offsetof(struct sink, f)

static const struct dp_opt options[] = {
	DP_OPT_GROUP("Input"),
	{ DP_ARG_LIST, 't', "topic", "TOPIC", "read Kafka topic TOPIC; repeatable; '^regex' follows\n"
	  "every matching topic", OFF(topics), .flags = DP_OPT_NONEMPTY },
	{ DP_ARG_STRING, 'g', "group", "GROUP", "the consumer group; its offsets live in the table\n"
	  "dp_sink_offsets, under GROUP", OFF(group), .flags = DP_OPT_NONEMPTY },
	{ DP_ARG_FLAG, 'e', "exit", NULL, "stop at the ends the partitions had at start",
	  OFF(until_end) },
	{ DP_ARG_FLAG, 0, "stdin", NULL, "read NDJSON from standard input instead",
	  OFF(from_stdin) },
	{ DP_ARG_STRING, 0, "source-id", "NAME", "with --stdin: store the line number under NAME,\n"
	  "so that a rerun resumes after the last line written", OFF(source_id),
	  .flags = DP_OPT_NONEMPTY },

	DP_OPT_GROUP("Database"),
	{ DP_ARG_CALL, 0, "db", "CONNINFO", "libpq conninfo or URI (default $DP_PG, else libpq's\n"
	  "defaults: PG* variables, ~/.pgpass); --timeout also\n"
	  "bounds connecting to it", .fn = opt_db, .flags = DP_OPT_SECRET },
	{ DP_ARG_STRING, 0, "table", "NAME", "table, schema.name allowed (default: the topic, or\n"
	  "the --source-id)", OFF(table) },
	{ DP_ARG_FLAG, 0, "create", NULL, "create a missing table from the first batch",
	  OFF(create) },
	{ DP_ARG_STRING, 0, "time-column", "NAME", "the time column (default ts, else time)",
	  OFF(time_column), .flags = DP_OPT_NONEMPTY },
	{ DP_ARG_FLAG, 0, "numeric", NULL, "numbers that are not integers become numeric, not\n"
	  "double precision", OFF(numeric) },
	{ DP_ARG_CHOICE, 0, "unknown-keys", "MODE", "a key the table has no column for: bad (default),\n"
	  "add (ALTER TABLE ... ADD COLUMN), or extra (kept in\n"
	  "the jsonb column extra)", OFF(unknown), .choices = unknown_names },
	{ DP_ARG_STRING, 0, "map", "JQ", "jq expression that makes the row(s) of a record",
	  OFF(map_src) },
	{ DP_ARG_STRING, 0, "upsert", "KEYS", "comma-separated key columns: a row whose key exists\n"
	  "replaces it (or keeps it, --on-conflict nothing)", OFF(upsert) },
	{ DP_ARG_CHOICE, 0, "on-conflict", "MODE", "with --upsert: update (default) or nothing",
	  OFF(on_conflict), .choices = conflict_names },
	{ DP_ARG_CHOICE, 0, "hypertable", "MODE", "auto (default), on or off: make the table a\n"
	  "TimescaleDB hypertable on the time column", OFF(hypertable), .choices = hyper_names },
	{ DP_ARG_TIMEOUT, 0, "chunk-interval", "DURATION", "with --create: the hypertable's chunk size\n"
	  "(default TimescaleDB's)", OFF(chunk_ms), .max = INT64_C(3650) * 86400000,
	  .max_label = "3650d" },
	{ DP_ARG_U64, 0, "max-retries", "N", "reconnect attempts after losing the database\n"
	  "(default 0: for ever), and retries of a batch the\n"
	  "server refused for a passing reason (default 10)", OFF(max_retries),
	  .min = 0, .max = 1000000000 },

	DP_OPT_GROUP("Batching and errors"),
	{ DP_ARG_U64, 0, "writers", "N", "database connections writing at once, each with its\n"
	  "own partitions (default 2 with -t, else 1)", OFF(writers), .min = 1, .max = 64 },
	{ DP_ARG_U64, 0, "batch-rows", "N", "rows per batch (default 10000)", OFF(batch_rows),
	  .min = 1, .max = 10000000 },
	{ DP_ARG_SIZE, 0, "batch-bytes", "SIZE", "bytes a batch holds, encoded and as JSON\n"
	  "(default 1M with -t, else 4M)",
	  OFF(batch_bytes), .min = 1024, .max = 1024 * 1024 * 1024, .max_label = "1G" },
	{ DP_ARG_DURATION, 0, "linger", "DURATION", "send a batch when its first row is this old\n"
	  "(default 100ms)", OFF(linger_ms), .max = 3600000, .max_label = "1h" },
	{ DP_ARG_CALL, 0, "on-error", "MODE", "a bad record: fail (default: stop there, exit 65),\n"
	  "skip (report it, go on) or dlq=TOPIC (also send it\n"
	  "to TOPIC, with -t)", .fn = opt_on_error },
	{ DP_ARG_FLAG, 0, "progress", NULL, "rows/s, lag and batch latency on stderr every second",
	  OFF(progress) },

	DP_OPT_GROUP("Stored offsets"),
	{ DP_ARG_CALL, 0, "reset-offsets", "WHERE", "move GROUP's stored offsets in the database (and\n"
	  "its offsets in Kafka), say what moved, and exit;\n"
	  "WHERE is earliest or latest (every partition of\n"
	  "each -t TOPIC, else of each topic GROUP has\n"
	  "stored), or TOPIC:PARTITION:OFFSET, repeatable; no\n"
	  "member of GROUP may be running",
	  .fn = opt_reset },
	DP_OPT_WATCH_ROWS(struct sink, watch, 0),
	DP_OPT_KAFKA_ROWS,
	DP_OPT_END,
};

static int
operands(void *ctx, int argc, char **argv)
{
	const struct sink *k = ctx;

	if (argc > 0) {
		dp_err("unexpected argument '%s'%s", argv[0],
		       k->from_stdin ? "" : " (name topics with -t)");
		return -1;
	}
	return 0;
}

/* Split --upsert's list; names must be non-empty. */
static int
split_keys(struct sink *k)
{
	char *p = k->keys_arg = strdup(k->upsert);

	for (; p; ) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		if (!*p) {
			dp_err("invalid --upsert: an empty column name");
			return -1;
		}
		const char **v = dp_grow(k->keys, &k->capkeys, k->nkeys + 1, sizeof(*v), 4);
		if (!v)
			break;
		k->keys = v;
		k->keys[k->nkeys++] = p;
		if (!comma)
			return 0;
		p = comma + 1;
	}
	dp_err("out of memory");
	return -1;
}

/* The combinations of the Kafka input's options. */
static int
validate_kafka(struct sink *k)
{
	bool regex = false;

	if (k->from_stdin) {
		dp_err("give --stdin or -t TOPIC, not both");
		return -1;
	}
	if (!k->group) {
		dp_err("-t needs a consumer group (-g GROUP): its offsets are stored in the "
		       "database under that name");
		return -1;
	}
	if (k->source_id) {
		dp_err("--source-id is for --stdin; with -t the partitions are the sources");
		return -1;
	}
	for (size_t i = 0; i < k->topics.n; i++) {
		regex_t re;
		if (k->topics.v[i][0] != '^')
			continue;
		regex = true;
		if (regcomp(&re, k->topics.v[i], REG_EXTENDED | REG_NOSUB) != 0) {
			dp_err("invalid topic pattern '%s'", k->topics.v[i]);
			return -1;
		}
		regfree(&re);
	}
	for (size_t i = 0; k->on_error.mode == DP_ON_ERROR_DLQ && i < k->topics.n; i++)
		if (strcmp(k->topics.v[i], k->on_error.dlq_topic) == 0) {
			dp_err("--on-error dlq=%s: the dead-letter topic cannot be one that is read",
			       k->on_error.dlq_topic);
			return -1;
		}
	if (!k->table) {
		if (k->topics.n > 1 || regex) {
			dp_err("several topics need --table: their rows go into one table");
			return -1;
		}
		k->table = k->topics.v[0];
	}
	/* Within 32 MB for any record size (BENCHMARKS.md); Kafka's default largest fits. */
	k->writers = k->writers ? k->writers : 2;
	k->batch_bytes = k->batch_bytes ? k->batch_bytes : 1024 * 1024;
	return 0;
}

/* The combinations of --stdin's options. */
static int
validate_stdin(struct sink *k)
{
	if (k->group || k->until_end) {
		dp_err("%s is for Kafka input (-t)", k->group ? "-g" : "-e");
		return -1;
	}
	if (k->on_error.mode == DP_ON_ERROR_DLQ) {
		dp_err("--on-error dlq needs Kafka input (-t TOPIC -g GROUP)");
		return -1;
	}
	if (!k->table)
		k->table = k->source_id;
	if (!k->table) {
		dp_err("--stdin needs --table (or --source-id, which then names the table)");
		return -1;
	}
	k->writers = k->writers ? k->writers : 1;
	k->batch_bytes = k->batch_bytes ? k->batch_bytes : 4 * 1024 * 1024;
	return 0;
}

/* --db, else $DP_PG; checked without connecting. */
static int
validate_db(struct sink *k)
{
	struct dp_buf err = DP_BUF_INIT;
	const char *env = getenv("DP_PG");

	if (!k->db && env && *env) {
		k->db = env;
		k->db_from = "$DP_PG";
	}
	if (k->db && dp_pg_conninfo_check(k->db, &err) < 0) {
		dp_err("invalid %s: %s", k->db_from, dp_buf_str(&err));
		dp_buf_free(&err);
		return -1;
	}
	dp_buf_free(&err);
	return 0;
}

static int
validate(void *ctx)
{
	struct sink *k = ctx;
	struct dp_buf err = DP_BUF_INIT;

	if (dp_watch_validate(&k->watch, k->topics.v, k->topics.n) < 0)
		return -1;
	if (k->reset.to != DP_SINKRESET_NONE) {
		if (k->from_stdin || k->source_id) {
			dp_err("--reset-offsets moves the offsets of a consumer group (-g), not of "
			       "--stdin");
			return -1;
		}
		if (!k->group) {
			dp_err("--reset-offsets needs the group whose offsets move (-g GROUP)");
			return -1;
		}
		if (dp_sinkreset_check(&k->reset, k->topics.v, k->topics.n) < 0)
			return -1;
		return validate_db(k);
	}
	if (!k->topics.n && !k->from_stdin) {
		dp_err("no input: give -t TOPIC -g GROUP, or --stdin");
		return -1;
	}
	if (k->topics.n ? validate_kafka(k) < 0 : validate_stdin(k) < 0)
		return -1;
	if (!*k->table || k->table[0] == '.' || k->table[strlen(k->table) - 1] == '.') {
		dp_err("invalid --table '%s': expected NAME or SCHEMA.NAME", k->table);
		return -1;
	}
	if (k->on_conflict >= 0 && !k->upsert) {
		dp_err("--on-conflict needs --upsert");
		return -1;
	}
	/* Chunks are sized when create_hypertable makes the hypertable, only. */
	if (k->chunk_ms && k->hypertable == DP_PGSINK_HYPER_OFF) {
		dp_err("--chunk-interval sizes a hypertable's chunks, and --hypertable off makes "
		       "none");
		return -1;
	}
	if (k->chunk_ms && !k->create) {
		dp_err("--chunk-interval sizes the chunks of the hypertable --create makes: give "
		       "--create (an existing hypertable's: SELECT set_chunk_time_interval(...))");
		return -1;
	}
	if ((k->upsert && split_keys(k) < 0) || validate_db(k) < 0)
		return -1;
	if (k->map_src && !(k->map = dp_expr_compile(k->map_src, &err))) {
		dp_err("invalid --map: %s", dp_buf_str(&err));
		dp_buf_free(&err);
		return -1;
	}
	dp_buf_free(&err);
	/* A dead letter is acknowledged before the batch that skips it commits. */
	k->on_error.durable = true;
	k->on_error.timeout_ms = k->common.kafka.timeout_ms;
	return 0;
}

/* ---- actions -------------------------------------------------------------- */

/* An ingest step's outcome as the machine's event; the failure it said is the run's. */
static int
event(struct dp_fsm *m, const struct sink *k, enum dp_ingest_outcome o)
{
	static const int events[DP_INGEST_NOUTCOMES] = {
		[DP_INGEST_CONNECTED] = E_CONNECTED, [DP_INGEST_UNAVAILABLE] = E_UNAVAILABLE,
		[DP_INGEST_SIGNAL] = E_SIGNAL, [DP_INGEST_RECORD] = E_MESSAGE_RECEIVED,
		[DP_INGEST_DUE] = E_WRITE_DUE, [DP_INGEST_END] = E_EOF,
		[DP_INGEST_PROCESSED] = E_PROCESS_SUCCESS, [DP_INGEST_NEED_MORE] = E_NEED_MORE,
		[DP_INGEST_BAD] = E_PROCESS_FAILURE, [DP_INGEST_WRITE_FAILED] = E_WRITE_FAILURE,
		[DP_INGEST_WRITTEN] = E_WRITE_SUCCESS, [DP_INGEST_RESET] = E_RESET,
		[DP_INGEST_STOP] = E_STOP, [DP_INGEST_OUTAGE] = E_OUTAGE, [DP_INGEST_FATAL] = E_FATAL,
		[DP_INGEST_RETRY] = E_RETRY, [DP_INGEST_WAKE] = E_WAKE, [DP_INGEST_GIVE_UP] = E_GIVE_UP,
		[DP_INGEST_RECONNECTED] = E_RECONNECTED, [DP_INGEST_COMMITTED] = E_COMMITTED,
	};

	dp_fsm_fail(m, dp_ingest_reason(k->in));
	return events[o];
}

/* idle -> connecting: the database, then the input. */
static int
act_connect(struct dp_fsm *m, void *ctx)
{
	return event(m, ctx, dp_ingest_connect(((struct sink *)ctx)->in));
}

/* Wait for a record, for the database side, or for the end. */
static int
act_wait(struct dp_fsm *m, void *ctx)
{
	return event(m, ctx, dp_ingest_wait(((struct sink *)ctx)->in));
}

/* The records at hand into rows, until a batch is full or due. */
static int
act_process(struct dp_fsm *m, void *ctx)
{
	return event(m, ctx, dp_ingest_process(((struct sink *)ctx)->in));
}

/* Hand batches to the writers; wait for room when the batch is full. */
static int
act_write(struct dp_fsm *m, void *ctx)
{
	return event(m, ctx, dp_ingest_write(((struct sink *)ctx)->in));
}

/* A bad record, a stop, an outage or something worse: decide. */
static int
act_error(struct dp_fsm *m, void *ctx)
{
	return event(m, ctx, dp_ingest_judge(((struct sink *)ctx)->in));
}

/* The input waits while the database is away: partitions are paused, still polled. */
static int
act_pause(struct dp_fsm *m, void *ctx)
{
	return event(m, ctx, dp_ingest_pause(((struct sink *)ctx)->in));
}

/* Wait out the delay; a group member polls meanwhile, so it stays in the group. */
static int
act_backoff(struct dp_fsm *m, void *ctx)
{
	return event(m, ctx, dp_ingest_backoff(((struct sink *)ctx)->in));
}

static int
act_reconnect(struct dp_fsm *m, void *ctx)
{
	return event(m, ctx, dp_ingest_reconnect(((struct sink *)ctx)->in));
}

/* No more input: write what is left and wait for it to commit. */
static int
act_commit(struct dp_fsm *m, void *ctx)
{
	return event(m, ctx, dp_ingest_commit(((struct sink *)ctx)->in));
}

/* The end: offsets to Kafka once more, then leave the group (its revoke runs here). */
static int
act_close(struct dp_fsm *m, void *ctx)
{
	dp_ingest_close(((struct sink *)ctx)->in);
	return m->reason ? E_FAILED : E_CLOSED;
}

/* A rebalance gave partitions (same state): each starts where the database says. */
static int
act_assigned(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	(void)m;
	k->hook_status = dp_ingest_assigned(k->in);
	return DP_FSM_NONE;
}

/* A rebalance or the close took partitions (same state): their batches commit first. */
static int
act_revoked(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	k->hook_status = dp_ingest_revoked(k->in, !m->reason);
	return DP_FSM_NONE;
}

/* The source's rebalance hook: the event through the machine (a same-state row). */
static int
on_rebalance(void *arg, int ev)
{
	struct sink *k = arg;

	k->hook_status = 0;
	if (dp_fsm_step(&k->fsm, ev == DP_SOURCE_ASSIGNED ? E_ASSIGNED : E_REVOKED, k) ==
	    DP_FSM_NOTRANS)
		return DP_EX_SOFTWARE;
	return k->hook_status;
}

/* idle -> connecting: the database (and the group's rows), then Kafka and the topics. */
static int
act_reset_connect(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;
	int st = dp_sinkreset_connect(&k->reset, k->db, k->db_from, k->group, k->topics.v,
	                              k->topics.n, &k->common.kafka);

	dp_fsm_fail(m, st);
	return st ? RE_UNAVAILABLE : RE_CONNECTED;
}

/* connecting -> moving: no member may run; then the offsets move, in one transaction. */
static int
act_reset_move(struct dp_fsm *m, void *ctx)
{
	int st = dp_sinkreset_move(&((struct sink *)ctx)->reset);

	dp_fsm_fail(m, st);
	return st ? RE_REFUSED : RE_MOVED;
}

/* ---- main --------------------------------------------------------------- */

static size_t
choose(void *ctx)
{
	return ((const struct sink *)ctx)->reset.to != DP_SINKRESET_NONE;
}

/* The input the options name, and the ingest that writes it. */
static int
open_sink(void *ctx)
{
	struct sink *k = ctx;
	struct dp_source *src;
	int st = dp_watch_start(&k->watch, &k->common.kafka, &k->fsm, "dp-sink-pg",
	                        k->from_stdin ? "database" : "kafka database");

	if (st)
		return st;
	if (k->from_stdin) {
		const struct dp_source_lines_conf lc = {
			.fd = STDIN_FILENO, .source_id = k->source_id, .max_line = k->batch_bytes,
		};
		src = dp_source_lines_new(&lc);
	} else {
		const struct dp_source_group_conf gc = {
			.kafka = &k->common.kafka, .topics = k->topics.v, .ntopics = k->topics.n,
			.group = k->group, .until_end = k->until_end, .inbox_bytes = k->batch_bytes,
			.keep_headers = k->on_error.mode == DP_ON_ERROR_DLQ, .linger_ms = k->linger_ms,
		};
		const struct dp_source_hooks hooks = { .arg = k, .rebalance = on_rebalance };
		src = dp_source_group_new(&gc, &hooks);
	}
	const struct dp_ingest_conf conf = {
		.sink = {
			.conninfo = k->db, .app = "dp-sink-pg", .table = k->table,
			.create = k->create, .unknown = (enum dp_pgsink_unknown)k->unknown,
			.extra_column = "extra", .time_column = k->time_column,
			.numeric = k->numeric, .keys = k->keys, .nkeys = k->nkeys,
			.update = k->on_conflict != 0, .hypertable = (enum dp_pgsink_hyper)k->hypertable,
			.chunk_ms = k->chunk_ms, .writers = (unsigned)k->writers,
			.batch_rows = k->batch_rows, .batch_bytes = k->batch_bytes,
			.linger_ms = k->linger_ms, .timeout_ms = k->common.kafka.timeout_ms,
			.max_retries = k->max_retries,
		},
		.map = k->map, .on_error = &k->on_error, .kafka = &k->common.kafka,
		.group = k->group, .max_retries = k->max_retries, .progress = k->progress,
	};
	if (!src || !(k->in = dp_ingest_new(&conf, src))) {
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	return 0;
}

static int
finish(void *ctx, int status)
{
	struct sink *k = ctx;

	return k->in ? dp_ingest_finish(k->in, status) : status;
}

static unsigned
io_sink(void *ctx)
{
	const struct sink *k = ctx;

	if (k->from_stdin)
		return DP_CMD_STDIN | DP_CMD_BOUNDED;
	return k->until_end ? DP_CMD_BOUNDED : 0;
}

/* A signal came (core/frame.h): after the end of the input, or what it left. */
static bool
interrupted_sink(void *ctx, int status, struct dp_buf *said)
{
	struct sink *k = ctx;
	struct dp_source_left left;

	if (!k->in)
		return true;
	if (!dp_ingest_interrupted(k->in, status, said, &left))
		return false;
	if (left.unit)
		dp_cmd_say_undelivered(said, left.unit, left.delivered, left.undelivered,
		                       left.unread);
	return true;
}

static void
close_sink(void *ctx)
{
	struct sink *k = ctx;

	dp_ingest_free(k->in);
	dp_expr_free(k->map);
	free(k->keys);
	free(k->keys_arg);
	free(k->db_arg);
	free(k->topics.v);
	dp_sinkreset_clear(&k->reset);
}

static const struct dp_cmd cmd = {
	.name = "dp-sink-pg",
	.libs = dp_kafka_version,
	.synopsis = "dp-sink-pg -t TOPIC [-t TOPIC ...] -g GROUP [-e] [options]\n"
	            "dp-sink-pg --stdin --table TABLE [options] < records.ndjson\n"
	            "dp-sink-pg --stdin --source-id NAME [options] < records.ndjson\n"
	            "dp-sink-pg --reset-offsets earliest|latest|TOPIC:PART:OFFSET -g GROUP\n"
	            "           [-t TOPIC ...]",
	.about = "Write JSON records as rows of a PostgreSQL table, exactly once: each batch is\n"
	         "one COPY in one transaction that also stores how far the input is written.",
	.opts = options,
	.epilogue =
		"Exit status: 0 ok, 64 usage, 65 bad record (--on-error fail, or refused as a dead\n"
		"letter), 66 -F unreadable or stdin closed, 69 database or Kafka unreachable,\n"
		"70 internal error, 74 cannot read input, 75 rows not committed (or a member runs:\n"
		"--reset-offsets), 77 login or permission refused, 78 table and options disagree,\n"
		"the table changed so that a record no longer fits, or a stored offset past the\n"
		"topic's end, 81 no such table, topic or partition, 82 --reset-offsets outside the\n"
		"records, 130/143 SIGINT/SIGTERM before the end of --stdin or -e.\n"
		"See dp-sink-pg(1).",
	.operands = operands,
	.machines = machines,
	.choose = choose,
	.start = E_START,
	.validate = validate,
	.open = open_sink,
	.finish = finish,
	.close = close_sink,
	.io = io_sink,
	.interrupted = interrupted_sink,
};

int
main(int argc, char **argv)
{
	static struct sink k = {
		.on_conflict = -1,
		.batch_rows = 10000,
		.linger_ms = 100,
	};

	return dp_cmd_main(&cmd, &k, &k.common, &k.fsm, argc, argv);
}
