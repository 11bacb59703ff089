/*
 * dp-sink-pg -- JSON records into PostgreSQL rows, exactly once.
 *
 * The platform's fixed-topic consumer: records become rows of one table
 * (a TimescaleDB hypertable when the extension is there), written with
 * binary COPY, each batch in one transaction that also moves the
 * source's stored offset.  This file reads the input, maps records to
 * rows and drives the state machine; the database work is lib/pg/sink.c,
 * the Kafka work lib/kafka/consumer.c, and a bad record goes through
 * lib/kafka/onerror.c (with --on-error dlq, lib/kafka/producer.c).
 *
 * Two inputs feed the same states.  --stdin reads NDJSON lines, where
 * with --source-id the line number plays the part of a Kafka offset.
 * -t/-g joins a consumer group whose partitions are sources: the
 * consumer's record hook only copies each record into the inbox, and the
 * machine takes it from there as it takes a line.  A partition starts
 * where the offsets table says (the assigned hook reads it); a revoked
 * one has its batches finished (or rolled back) first; during a database
 * outage the partitions are paused and the consumer is still polled, so
 * the process stays in the group.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "core/backoff.h"
#include "core/buf.h"
#include "core/cli.h"
#include "core/exit.h"
#include "core/frame.h"
#include "core/fsm.h"
#include "core/lines.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "jq/expr.h"
#include "json/scan.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "kafka/consumer.h"
#include "kafka/onerror.h"
#include "kafka/producer.h"
#include "pg/conn.h"
#include "pg/offsets.h"
#include "pg/sink.h"

#define RETRY_BASE_MS 250
#define RETRY_CAP_MS 30000
#define DRAIN_AFTER_SIGNAL_MS 2000      /* then the batch in flight is rolled back */
#define ABORT_AFTER_CANCEL_MS 500       /* then its connection is closed */
#define KAFKA_COMMIT_MS 1000            /* offsets to Kafka at most this often */

/* A record the consumer handed over, waiting in the inbox to be processed. */
struct inrec {
	struct dp_consumer_part *part;
	int64_t offset;
	size_t pos;                     /* its key, value and headers, in the inbox's data */
	size_t klen, vlen, hlen;        /* hlen: packed (kafka/onerror.h), with --on-error dlq only */
	bool has_key, has_value;
};

/* One TOPIC:PARTITION:OFFSET of --reset-offsets. */
struct reset_spec {
	char *topic;                    /* owned */
	int32_t partition;
	int64_t offset;
};

enum reset_to { RESET_NONE, RESET_EARLIEST, RESET_LATEST, RESET_EXPLICIT };

/* What dp-sink-pg keeps about a partition (its part->user). */
struct pstate {
	struct dp_pgsink_src *src;      /* its source, NULL until first acquired */
	bool acquired;                  /* the source takes its records */
	bool waiting;                   /* assigned while the database was away: paused,
	                                   start unknown until the reconnect */
	bool held;                      /* paused for an outage */
	int64_t committed;              /* the offset last committed to Kafka, -1 none */
};

struct sink {
	/* options */
	struct dp_common common;
	bool from_stdin;
	const char *source_id;
	const char **topics;            /* -t */
	size_t ntopics;
	bool regex;
	const char *group;
	bool until_end;                 /* -e */
	const char *db;                 /* --db, else $DP_PG, else NULL */
	char *db_arg;                   /* owned: --db's copy, its argv bytes blanked */
	const char *db_from;            /* "--db" or "$DP_PG", for messages */
	const char *table;
	bool create;
	enum dp_pgsink_unknown unknown;
	const char *time_column;
	bool numeric;
	const char *map_src;
	struct dp_expr *map;
	char *keys_arg;                 /* --upsert, split in place */
	const char **keys;
	size_t nkeys;
	bool on_conflict_given;
	bool update;
	enum dp_pgsink_hyper hypertable;
	int64_t chunk_ms;
	struct dp_on_error_policy on_error;
	uint64_t writers;
	uint64_t batch_rows;
	uint64_t batch_bytes;
	int64_t linger_ms;
	uint64_t max_retries;
	bool progress;
	enum reset_to reset;            /* --reset-offsets */
	struct reset_spec *specs;       /* its TOPIC:PARTITION:OFFSETs */
	size_t nspecs;

	/* --reset-offsets resources */
	PGconn *pg;
	rd_kafka_t *admin;
	struct dp_sinkoffset *stored;   /* the group's rows */
	size_t nstored;
	const char **rtopics;           /* the topics whose offsets move (borrowed names) */
	size_t nrtopics;
	int *rcounts;                   /* their partition counts */

	/* resources */
	struct dp_lines *in;
	struct dp_pgsink *sink;
	struct dp_pgsink_src *src;      /* --stdin's one source */
	struct dp_consumer *c;
	struct dp_producer *dlq;

	/* --stdin state */
	const char *line;               /* the line being processed (the reader's) */
	size_t len;
	int line_rc;                    /* DP_LINES_OK, or DP_LINES_LONG: line NULL, len its length */
	bool held;                      /* line not processed yet */
	unsigned long lineno;
	unsigned long skip_to;          /* --source-id: lines up to this one are stored */
	bool stopping;                  /* dp_lines_stop() called */
	bool at_end;                    /* the input's end was read (EOF, -e's ends) */

	/* Kafka state */
	struct dp_buf inbox;            /* the records' bytes */
	struct inrec *inrecs;
	size_t nin, capin, in_next;     /* inrecs[in_next..nin) wait */
	struct dp_consumer_part **moved;        /* the partitions of a rebalance event */
	size_t nmoved;
	int hook_status;                /* an exit status an event's action recorded */
	int deferred;                   /* a write result seen inside a hook, for act_write */
	bool outage;                    /* the database is away: partitions stay paused */
	int64_t commit_ms;              /* the last commit to Kafka */

	/* common state */
	bool draining;                  /* no more input: EOF, signal, -e, or a stop */
	int fail;                       /* why the last write or process failed */
	struct dp_pgsink_src *bad_src;  /* the bad record (PROCESS_FAILURE) */
	const char *bad_topic;
	int32_t bad_partition;
	int64_t bad_offset;
	unsigned since_due;             /* records since dp_pgsink_due() was asked */
	uint64_t maps_empty;            /* records --map turned into no row */
	struct dp_buf err;
	struct dp_buf why;
	struct dp_backoff backoff;
	uint64_t backoff_batches;       /* batches committed when the backoff last started over */
	int64_t sig_ms;                 /* when the drain after a signal began */
	bool said_down;
	bool said_reset;                /* how to go on after an offset past the end */
	struct dp_progress prog;
	struct dp_fsm fsm;
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

enum {
	OPT_STDIN = DP_OPT_CMD, OPT_SOURCE_ID, OPT_DB, OPT_TABLE, OPT_CREATE, OPT_UNKNOWN_KEYS,
	OPT_TIME_COLUMN, OPT_NUMERIC, OPT_MAP, OPT_UPSERT, OPT_ON_CONFLICT, OPT_HYPERTABLE,
	OPT_CHUNK_INTERVAL, OPT_ON_ERROR, OPT_WRITERS, OPT_BATCH_ROWS, OPT_BATCH_BYTES,
	OPT_LINGER, OPT_MAX_RETRIES, OPT_PROGRESS, OPT_RESET_OFFSETS,
};

static const struct option longopts[] = {
	{ "topic",          required_argument, NULL, 't' },
	{ "group",          required_argument, NULL, 'g' },
	{ "exit",           no_argument,       NULL, 'e' },
	{ "stdin",          no_argument,       NULL, OPT_STDIN },
	{ "source-id",      required_argument, NULL, OPT_SOURCE_ID },
	{ "db",             required_argument, NULL, OPT_DB },
	{ "table",          required_argument, NULL, OPT_TABLE },
	{ "create",         no_argument,       NULL, OPT_CREATE },
	{ "unknown-keys",   required_argument, NULL, OPT_UNKNOWN_KEYS },
	{ "time-column",    required_argument, NULL, OPT_TIME_COLUMN },
	{ "numeric",        no_argument,       NULL, OPT_NUMERIC },
	{ "map",            required_argument, NULL, OPT_MAP },
	{ "upsert",         required_argument, NULL, OPT_UPSERT },
	{ "on-conflict",    required_argument, NULL, OPT_ON_CONFLICT },
	{ "hypertable",     required_argument, NULL, OPT_HYPERTABLE },
	{ "chunk-interval", required_argument, NULL, OPT_CHUNK_INTERVAL },
	{ "on-error",       required_argument, NULL, OPT_ON_ERROR },
	{ "writers",        required_argument, NULL, OPT_WRITERS },
	{ "batch-rows",     required_argument, NULL, OPT_BATCH_ROWS },
	{ "batch-bytes",    required_argument, NULL, OPT_BATCH_BYTES },
	{ "linger",         required_argument, NULL, OPT_LINGER },
	{ "max-retries",    required_argument, NULL, OPT_MAX_RETRIES },
	{ "progress",       no_argument,       NULL, OPT_PROGRESS },
	{ "reset-offsets",  required_argument, NULL, OPT_RESET_OFFSETS },
	DP_CLI_KAFKA_LONG,
	DP_CLI_BASE_LONG,
	{ NULL, 0, NULL, 0 },
};

static void
usage(FILE *fp)
{
	fputs("usage: dp-sink-pg -t TOPIC [-t TOPIC ...] -g GROUP [-e] [options]\n"
	      "       dp-sink-pg --stdin --table TABLE [options] < records.ndjson\n"
	      "       dp-sink-pg --stdin --source-id NAME [options] < records.ndjson\n"
	      "       dp-sink-pg --reset-offsets earliest|latest|TOPIC:PART:OFFSET -g GROUP\n"
	      "                  [-t TOPIC ...]\n"
	      "\n"
	      "Write JSON records as rows of a PostgreSQL table, exactly once: each batch is\n"
	      "one COPY in one transaction that also stores how far the input is written.\n"
	      "\n"
	      "Input:\n"
	      "  -t, --topic TOPIC         read Kafka topic TOPIC; repeatable; '^regex'\n"
	      "                            follows every matching topic\n"
	      "  -g, --group GROUP         the consumer group; its offsets live in the table\n"
	      "                            dp_sink_offsets, under GROUP\n"
	      "  -e, --exit                stop at the ends the partitions had at start\n"
	      "      --stdin               read NDJSON from standard input instead\n"
	      "      --source-id NAME      with --stdin: store the line number under NAME, so\n"
	      "                            that a rerun resumes after the last line written\n"
	      "\n"
	      "Database:\n"
	      "      --db CONNINFO         libpq conninfo or URI (default $DP_PG, else libpq's\n"
	      "                            defaults: PG* variables, ~/.pgpass)\n"
	      "      --table NAME          table, schema.name allowed (default: the topic, or\n"
	      "                            the --source-id)\n"
	      "      --create              create a missing table from the first batch\n"
	      "      --time-column NAME    the time column (default ts, else time)\n"
	      "      --numeric             numbers that are not integers become numeric, not\n"
	      "                            double precision\n"
	      "      --unknown-keys MODE   a key the table has no column for: bad (default),\n"
	      "                            add (ALTER TABLE ... ADD COLUMN), or extra (kept in\n"
	      "                            the jsonb column extra)\n"
	      "      --map JQ              jq expression that makes the row(s) of a record\n"
	      "      --upsert KEYS         comma-separated key columns: a row whose key exists\n"
	      "                            replaces it (or keeps it, --on-conflict nothing)\n"
	      "      --on-conflict MODE    with --upsert: update (default) or nothing\n"
	      "      --hypertable MODE     auto (default), on or off: make the table a\n"
	      "                            TimescaleDB hypertable on the time column\n"
	      "      --chunk-interval DURATION  with --create: the hypertable's chunk size (default\n"
	      "                            TimescaleDB's)\n"
	      "      --max-retries N       reconnect attempts after losing the database\n"
	      "                            (default 0: for ever), and retries of a batch the\n"
	      "                            server refused for a passing reason (default 10)\n"
	      "      (--timeout, below, also bounds connecting to the database)\n"
	      "\n"
	      "Batching and errors:\n"
	      "      --writers N           database connections writing at once, each with\n"
	      "                            its own partitions (default 2 with -t, else 1)\n"
	      "      --batch-rows N        rows per batch (default 10000)\n"
	      "      --batch-bytes SIZE    encoded bytes per batch (default 4M)\n"
	      "      --linger DURATION     send a batch when its first row is this old\n"
	      "                            (default 100ms)\n"
	      "      --on-error MODE       a bad record: fail (default: stop there, exit 65),\n"
	      "                            skip (report it, go on) or dlq=TOPIC (also send it\n"
	      "                            to TOPIC, with -t)\n"
	      "      --progress            rows/s, lag and batch latency on stderr every second\n"
	      "\n"
	      "Stored offsets:\n"
	      "      --reset-offsets WHERE move GROUP's stored offsets in the database (and its\n"
	      "                            offsets in Kafka), say what moved, and exit; WHERE is\n"
	      "                            earliest or latest (every partition of each -t\n"
	      "                            TOPIC, else of each topic GROUP has stored), or\n"
	      "                            TOPIC:PARTITION:OFFSET, repeatable; no member of\n"
	      "                            GROUP may be running\n", fp);
	dp_cli_help_common(fp, true);
	fputs("\nExit status: 0 ok, 64 usage, 65 bad record (--on-error fail, or refused as a dead\n"
	      "letter), 66 -F unreadable or stdin closed, 69 database or Kafka unreachable,\n"
	      "70 internal error, 74 cannot read input, 75 rows not committed (or a member runs:\n"
	      "--reset-offsets), 77 login or permission refused, 78 table and options disagree,\n"
	      "the table changed so that a record no longer fits, or a stored offset past the\n"
	      "topic's end, 81 no such table, topic or partition, 82 --reset-offsets outside the\n"
	      "records, 130/143 SIGINT/SIGTERM before the end of --stdin or -e.\n"
	      "See dp-sink-pg(1).\n", fp);
}

static int
pick(const char *opt, const char *arg, const char *const *names, int *out)
{
	for (int i = 0; names[i]; i++)
		if (strcmp(arg, names[i]) == 0) {
			*out = i;
			return 0;
		}
	struct dp_buf b = DP_BUF_INIT;
	for (int i = 0; names[i]; i++)
		dp_buf_msgf(&b, "%s%s", i ? (names[i + 1] ? ", " : " or ") : "", names[i]);
	dp_err("invalid %s '%s': expected %s", opt, arg, dp_buf_str(&b));
	dp_buf_free(&b);
	return -1;
}


/* Append name (borrowed) to the array *v of *n names.  0, or -1 after saying why. */
static int
push_name(const char ***v, size_t *n, const char *name)
{
	const char **a = realloc(*v, (*n + 1) * sizeof(*a));

	if (!a) {
		dp_err("out of memory");
		return -1;
	}
	*v = a;
	a[(*n)++] = name;
	return 0;
}

/* One --reset-offsets: earliest, latest or TOPIC:PARTITION:OFFSET.  0, or -1 after saying why. */
static int
parse_reset(struct sink *k, const char *arg)
{
	const char *c1 = NULL, *c2 = NULL;
	uint64_t part, off;

	if (!strcmp(arg, "earliest") || !strcmp(arg, "latest")) {
		if (k->reset != RESET_NONE) {
			dp_err("--reset-offsets %s: give earliest or latest once, and alone", arg);
			return -1;
		}
		k->reset = arg[0] == 'e' ? RESET_EARLIEST : RESET_LATEST;
		return 0;
	}
	if (k->reset == RESET_EARLIEST || k->reset == RESET_LATEST) {
		dp_err("--reset-offsets %s: give earliest or latest once, and alone", arg);
		return -1;
	}
	/* TOPIC:PARTITION:OFFSET; a topic name has no colon. */
	for (const char *p = arg; *p; p++)
		if (*p == ':') {
			c1 = c2;
			c2 = p;
		}
	if (!c1 || c1 == arg || c2 == c1 + 1 || !c2[1] || memchr(arg, ':', (size_t)(c1 - arg))) {
		dp_err("invalid --reset-offsets '%s': expected earliest, latest or "
		       "TOPIC:PARTITION:OFFSET", arg);
		return -1;
	}
	char part_s[24];
	size_t pn = (size_t)(c2 - c1 - 1);
	snprintf(part_s, sizeof(part_s), "%.*s", (int)(pn < sizeof(part_s) ? pn : sizeof(part_s) - 1),
	         c1 + 1);
	if (pn >= sizeof(part_s) ||
	    dp_parse_u64("--reset-offsets partition", part_s, 0, INT32_MAX, &part) < 0 ||
	    dp_parse_u64("--reset-offsets offset", c2 + 1, 0, INT64_MAX / 2, &off) < 0)
		return -1;
	struct reset_spec *v = realloc(k->specs, (k->nspecs + 1) * sizeof(*v));
	if (!v) {
		dp_err("out of memory");
		return -1;
	}
	k->specs = v;
	if (!(v[k->nspecs].topic = strndup(arg, (size_t)(c1 - arg)))) {
		dp_err("out of memory");
		return -1;
	}
	v[k->nspecs].partition = (int32_t)part;
	v[k->nspecs].offset = (int64_t)off;
	k->nspecs++;
	k->reset = RESET_EXPLICIT;
	return 0;
}

static int
parse_options(void *ctx, int argc, char **argv)
{
	static const char *const unknown_names[] = { "bad", "add", "extra", NULL };
	static const char *const conflict_names[] = { "nothing", "update", NULL };
	static const char *const hyper_names[] = { "auto", "on", "off", NULL };
	const char *shortopts = "t:g:e" DP_CLI_KAFKA_SHORT DP_CLI_BASE_SHORT;
	struct sink *k = ctx;
	uint64_t n;
	int opt, v;

	while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (!*optarg) {
				dp_err("invalid --topic: empty");
				return -1;
			}
			if (push_name(&k->topics, &k->ntopics, optarg) < 0)
				return -1;
			k->regex |= optarg[0] == '^';
			break;
		case 'g':
			if (!*optarg) {
				dp_err("invalid --group: empty");
				return -1;
			}
			k->group = optarg;
			break;
		case 'e':
			k->until_end = true;
			break;
		case OPT_STDIN:
			k->from_stdin = true;
			break;
		case OPT_SOURCE_ID:
			if (!*optarg) {
				dp_err("invalid --source-id: empty");
				return -1;
			}
			k->source_id = optarg;
			break;
		case OPT_DB: {
			bool had;
			free(k->db_arg);
			if (!(k->db = k->db_arg = dp_pg_conninfo_hide(optarg, &had))) {
				dp_err("out of memory");
				return -1;
			}
			k->db_from = "--db";
			if (had)
				dp_warn("--db holds a password, which other users of this machine "
				        "may see in the process list: prefer ~/.pgpass or $DP_PG");
			break;
		}
		case OPT_TABLE:
			k->table = optarg;
			break;
		case OPT_CREATE:
			k->create = true;
			break;
		case OPT_UNKNOWN_KEYS:
			/* enum order: bad, add, extra */
			if (pick("--unknown-keys", optarg, unknown_names, &v) < 0)
				return -1;
			k->unknown = v == 0 ? DP_PGSINK_UNKNOWN_BAD : v == 1 ? DP_PGSINK_UNKNOWN_ADD
			                                                    : DP_PGSINK_UNKNOWN_EXTRA;
			break;
		case OPT_TIME_COLUMN:
			if (!*optarg) {
				dp_err("invalid --time-column: empty");
				return -1;
			}
			k->time_column = optarg;
			break;
		case OPT_NUMERIC:
			k->numeric = true;
			break;
		case OPT_MAP:
			k->map_src = optarg;
			break;
		case OPT_UPSERT:
			k->keys_arg = optarg;
			break;
		case OPT_ON_CONFLICT:
			if (pick("--on-conflict", optarg, conflict_names, &v) < 0)
				return -1;
			k->update = v == 1;
			k->on_conflict_given = true;
			break;
		case OPT_HYPERTABLE:
			if (pick("--hypertable", optarg, hyper_names, &v) < 0)
				return -1;
			k->hypertable = (enum dp_pgsink_hyper)v;
			break;
		case OPT_CHUNK_INTERVAL:
			if (dp_parse_timeout("--chunk-interval", optarg, INT64_C(3650) * 86400000,
			                     "3650d", &k->chunk_ms) < 0)
				return -1;
			break;
		case OPT_ON_ERROR:
			if (dp_on_error_parse(&k->on_error, optarg) < 0)
				return -1;
			break;
		case OPT_WRITERS:
			if (dp_parse_u64("--writers", optarg, 1, 64, &k->writers) < 0)
				return -1;
			break;
		case OPT_BATCH_ROWS:
			if (dp_parse_u64("--batch-rows", optarg, 1, 10000000, &n) < 0)
				return -1;
			k->batch_rows = n;
			break;
		case OPT_BATCH_BYTES:
			if (dp_parse_size("--batch-bytes", optarg, 1024, 1024 * 1024 * 1024, "1G", &n) < 0)
				return -1;
			k->batch_bytes = n;
			break;
		case OPT_LINGER:
			if (dp_parse_duration("--linger", optarg, &k->linger_ms) < 0)
				return -1;
			if (k->linger_ms > 3600000) {
				dp_err("invalid --linger '%s': must be at most 1h", optarg);
				return -1;
			}
			break;
		case OPT_MAX_RETRIES:
			if (dp_parse_u64("--max-retries", optarg, 0, 1000000000, &k->max_retries) < 0)
				return -1;
			break;
		case OPT_PROGRESS:
			k->progress = true;
			break;
		case OPT_RESET_OFFSETS:
			if (parse_reset(k, optarg) < 0)
				return -1;
			break;
		case '?':
			dp_cli_bad_option(argv);
			return -1;
		default:
			if (dp_cli_common(&k->common, opt, optarg) != 1)
				return -1;
		}
	}
	if (optind < argc) {
		dp_err("unexpected argument '%s'%s", argv[optind],
		       k->from_stdin ? "" : " (name topics with -t)");
		return -1;
	}
	return 0;
}

/* Split --upsert's list in place; names must be non-empty. */
static int
split_keys(struct sink *k)
{
	char *p = k->keys_arg;

	for (;;) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		if (!*p) {
			dp_err("invalid --upsert: an empty column name");
			return -1;
		}
		if (push_name(&k->keys, &k->nkeys, p) < 0)
			return -1;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}


/* The combinations of the Kafka input's options. */
static int
validate_kafka(struct sink *k)
{
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
	for (size_t i = 0; i < k->ntopics; i++) {
		regex_t re;
		if (k->topics[i][0] != '^')
			continue;
		if (regcomp(&re, k->topics[i], REG_EXTENDED | REG_NOSUB) != 0) {
			dp_err("invalid topic pattern '%s'", k->topics[i]);
			return -1;
		}
		regfree(&re);
	}
	for (size_t i = 0; k->on_error.mode == DP_ON_ERROR_DLQ && i < k->ntopics; i++)
		if (strcmp(k->topics[i], k->on_error.dlq_topic) == 0) {
			dp_err("--on-error dlq=%s: the dead-letter topic cannot be one that is read",
			       k->on_error.dlq_topic);
			return -1;
		}
	if (!k->table) {
		if (k->ntopics > 1 || k->regex) {
			dp_err("several topics need --table: their rows go into one table");
			return -1;
		}
		k->table = k->topics[0];
	}
	if (!k->writers)
		k->writers = 2;
	return 0;
}

/* The topic names of -t and of --reset-offsets's specs: real names, no patterns. */
static int
validate_reset(struct sink *k)
{
	struct dp_buf why = DP_BUF_INIT;

	if (k->from_stdin || k->source_id) {
		dp_err("--reset-offsets moves the offsets of a consumer group (-g), not of --stdin");
		return -1;
	}
	if (!k->group) {
		dp_err("--reset-offsets needs the group whose offsets move (-g GROUP)");
		return -1;
	}
	for (size_t i = 0; i < k->ntopics; i++)
		if (k->topics[i][0] == '^') {
			dp_err("--reset-offsets needs topic names, not a pattern ('%s')", k->topics[i]);
			return -1;
		}
	for (size_t i = 0; i < k->nspecs; i++) {
		bool named = !k->ntopics;
		for (size_t j = 0; j < k->ntopics; j++)
			named |= strcmp(k->topics[j], k->specs[i].topic) == 0;
		if (dp_admin_check_name(k->specs[i].topic, &why) != 0) {
			dp_err("invalid --reset-offsets topic '%s': %s", k->specs[i].topic,
			       dp_buf_str(&why));
			dp_buf_free(&why);
			return -1;
		}
		if (!named) {
			dp_err("--reset-offsets %s:%d:%" PRId64 ": topic '%s' is not one of -t",
			       k->specs[i].topic, (int)k->specs[i].partition, k->specs[i].offset,
			       k->specs[i].topic);
			return -1;
		}
	}
	return 0;
}

/* --db, else $DP_PG; checked without connecting. */
static int
validate_db(struct sink *k)
{
	if (!k->db) {
		const char *env = getenv("DP_PG");
		if (env && *env) {
			k->db = env;
			k->db_from = "$DP_PG";
		}
	}
	struct dp_buf err = DP_BUF_INIT;
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

	if (k->reset != RESET_NONE)
		return validate_reset(k) < 0 || validate_db(k) < 0 ? -1 : 0;
	if (k->ntopics) {
		if (validate_kafka(k) < 0)
			return -1;
	} else if (!k->from_stdin) {
		dp_err("no input: give -t TOPIC -g GROUP, or --stdin");
		return -1;
	} else {
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
		if (!k->writers)
			k->writers = 1;
	}
	if (!*k->table || k->table[0] == '.' || k->table[strlen(k->table) - 1] == '.') {
		dp_err("invalid --table '%s': expected NAME or SCHEMA.NAME", k->table);
		return -1;
	}
	if (k->on_conflict_given && !k->keys_arg) {
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
	if (k->keys_arg && split_keys(k) < 0)
		return -1;
	if (validate_db(k) < 0)
		return -1;
	struct dp_buf err = DP_BUF_INIT;
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

/* ---- bad records and reporting --------------------------------------------- */

/* Where a record is, as a person names it: "line 12", "prices [2] offset 4711". */
static void
where(const struct sink *k, const char *topic, int32_t partition, int64_t offset,
      char *buf, size_t n)
{
	if (partition >= 0)
		snprintf(buf, n, "%s [%d] offset %" PRId64, topic, (int)partition, offset);
	else if (k->source_id)
		snprintf(buf, n, "line %" PRId64 " of source '%s'", offset + 1, topic);
	else
		snprintf(buf, n, "line %" PRId64, offset + 1);
}

/*
 * One bad record, by --on-error: named on stderr with its coordinates,
 * and under dlq sent as it came with headers that say why and where from,
 * acknowledged before this returns.  0, or the status of a dead letter
 * that could not be sent.  Under fail the stop is the caller's (and the
 * engine's) to make, so that is 0 too.
 */
static int
bad_record(struct sink *k, const char *topic, int32_t partition, int64_t offset,
           const char *why, const char *sqlstate, const void *key, size_t klen,
           const void *value, size_t vlen, const void *own, size_t ownlen)
{
	char at[512], part[16], off[24];
	struct dp_producer_header *h = NULL;
	size_t nh = 0;
	int st;

	where(k, topic, partition, offset, at, sizeof(at));
	/* The record's own headers first (a trace id stays with it), then dp's. */
	if ((ownlen && dp_on_error_unpack_headers(own, ownlen, &h, &nh) < 0) ||
	    !(h = realloc(h, (nh + 5) * sizeof(*h)))) {
		free(h);
		dp_err("%s: out of memory", at);
		return DP_EX_SOFTWARE;
	}
	h[nh++] = (struct dp_producer_header){ "dp-error", why, strlen(why) };
	if (sqlstate && *sqlstate)
		h[nh++] = (struct dp_producer_header){ "dp-sqlstate", sqlstate, strlen(sqlstate) };
	h[nh++] = (struct dp_producer_header){ "dp-topic", topic, strlen(topic) };
	h[nh++] = (struct dp_producer_header){ "dp-partition", part,
	                                       (size_t)snprintf(part, sizeof(part), "%d",
	                                                        (int)partition) };
	h[nh++] = (struct dp_producer_header){ "dp-offset", off,
	                                       (size_t)snprintf(off, sizeof(off), "%" PRId64,
	                                                        offset) };
	st = dp_on_error_record(&k->on_error, k->dlq, at, why, key, klen, value, vlen, h, nh, 0);
	free(h);
	return st == DP_EX_DATAERR && k->on_error.mode == DP_ON_ERROR_FAIL ? 0 : st;
}

/* on_bad: the engine's bad records (the caller's thread). */
static int
engine_bad(void *arg, const struct dp_pgsink_bad *b)
{
	return bad_record(arg, b->topic, b->partition, b->offset, b->reason, b->sqlstate, b->key,
	                  b->klen, b->value, b->vlen, b->headers, b->hlen);
}

/* Records in Kafka not yet in the table, from librdkafka's cached watermarks. */
static int64_t
lag(struct sink *k)
{
	struct dp_consumer_part *const *parts;
	size_t n;
	int64_t sum = 0;

	if (!k->c)
		return -1;
	parts = dp_consumer_parts(k->c, &n);
	for (size_t i = 0; i < n; i++) {
		const struct pstate *ps = parts[i]->user;
		int64_t lo, hi, at;
		if (!parts[i]->assigned || !ps || !ps->src ||
		    rd_kafka_get_watermark_offsets(dp_consumer_rk(k->c), parts[i]->topic,
		                                   parts[i]->partition, &lo, &hi) != 0 || hi < 0)
			continue;
		at = dp_pgsink_stored(ps->src);
		if (at < lo)
			at = lo;
		if (hi > at)
			sum += hi - at;
	}
	return sum;
}

static void
progress(struct sink *k, bool final)
{
	struct dp_pgsink_stats st;
	char extra[128];
	int64_t l;

	if (!k->sink || !k->progress)
		return;
	if (!final && dp_time_mono_ms() - k->prog.last_ms < 1000)
		return;
	dp_pgsink_stats(k->sink, &st);
	l = lag(k);
	char retries[48] = "";
	if (st.retries)
		snprintf(retries, sizeof(retries), ", %" PRIu64 " retr%s", st.retries,
		         st.retries == 1 ? "y" : "ies");
	if (l >= 0)
		snprintf(extra, sizeof(extra), "lag %" PRId64 ", batch latency %" PRId64 " ms%s", l,
		         st.latency_ms, retries);
	else
		snprintf(extra, sizeof(extra), "batch latency %" PRId64 " ms%s", st.latency_ms,
		         retries);
	dp_progress_tick(&k->prog, "rows", st.rows, extra, final);
}

/* ---- Kafka -------------------------------------------------------------------- */

/* The partitions' stored offsets to the group, for dp-topic offsets and lag tools. */
static void
kafka_commit(struct sink *k, bool wait)
{
	struct dp_consumer_part *const *parts;
	rd_kafka_topic_partition_list_t *l;
	size_t n;
	int64_t now = dp_time_mono_ms();

	if (!k->c || (!wait && now - k->commit_ms < KAFKA_COMMIT_MS))
		return;
	k->commit_ms = now;
	parts = dp_consumer_parts(k->c, &n);
	l = rd_kafka_topic_partition_list_new((int)(n ? n : 1));
	for (size_t i = 0; i < n; i++) {
		struct pstate *ps = parts[i]->user;
		if (!parts[i]->assigned || !ps || !ps->src || !ps->acquired)
			continue;
		int64_t at = dp_pgsink_stored(ps->src);
		if (at < 0 || at == ps->committed)
			continue;
		rd_kafka_topic_partition_list_add(l, parts[i]->topic, parts[i]->partition)->offset = at;
		ps->committed = at;
	}
	if (l->cnt > 0) {
		dp_buf_reset(&k->err);
		if (dp_consumer_commit(k->c, l, !wait, &k->err) != 0)
			/* The table and its offsets are right; only lag tools lag. */
			dp_warn("cannot commit offsets to kafka for group '%s': %s", k->group,
			        dp_buf_str(&k->err));
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* The committed hook: an asynchronous commit's result. */
static void
on_committed(struct dp_consumer *c, void *arg, rd_kafka_resp_err_t err,
             const rd_kafka_topic_partition_list_t *offsets)
{
	struct dp_consumer_part *const *parts;
	size_t n;

	(void)arg;
	if (!err || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
		return;
	dp_info("committing offsets to kafka failed: %s (tried again later)",
	        rd_kafka_err2str(err));
	parts = dp_consumer_parts(c, &n);
	for (size_t i = 0; i < n; i++) {
		struct pstate *ps = parts[i]->user;
		if (ps)
			ps->committed = -1;
	}
}

/* Drop the inbox's records of p: they come again from where its source resumes. */
static void
purge(struct sink *k, const struct dp_consumer_part *p)
{
	size_t j = k->in_next;

	for (size_t i = k->in_next; i < k->nin; i++)
		if (k->inrecs[i].part != p)
			k->inrecs[j++] = k->inrecs[i];
	k->nin = j;
}

/* The record hook: into the inbox; the machine processes it. */
static enum dp_consumer_verdict
on_record(struct dp_consumer *c, void *arg, struct dp_consumer_part *p,
          const rd_kafka_message_t *m)
{
	struct sink *k = arg;
	const struct pstate *ps = p->user;
	size_t klen = m->key ? m->key_len : 0, vlen = m->payload ? m->len : 0;

	(void)c;
	if (!ps || !ps->acquired)
		return DP_CONSUMER_AGAIN;       /* not ours yet: it comes again after the resume */
	/* Bounded in bytes: what does not fit comes again at the next poll. */
	if (k->nin > k->in_next && k->inbox.len + klen + vlen > k->batch_bytes)
		return DP_CONSUMER_AGAIN;
	if (k->nin == k->capin) {
		size_t cap = k->capin ? 2 * k->capin : 1024;
		struct inrec *v = realloc(k->inrecs, cap * sizeof(*v));
		if (!v)
			goto nomem;
		k->inrecs = v;
		k->capin = cap;
	}
	struct inrec *r = &k->inrecs[k->nin];
	r->part = p;
	r->offset = m->offset;
	r->pos = k->inbox.len;
	r->klen = klen;
	r->vlen = vlen;
	r->has_key = m->key != NULL;
	r->has_value = m->payload != NULL;
	if ((klen && dp_buf_add(&k->inbox, m->key, klen) < 0) ||
	    (vlen && dp_buf_add(&k->inbox, m->payload, vlen) < 0))
		goto nomem;
	/* Only a dead letter needs the headers: nobody else pays for them. */
	size_t before = k->inbox.len;
	if (k->on_error.mode == DP_ON_ERROR_DLQ && dp_on_error_pack_headers(m, &k->inbox) < 0)
		goto nomem;
	r->hlen = k->inbox.len - before;
	k->nin++;
	return DP_CONSUMER_NEXT;
nomem:
	dp_err("out of memory");
	k->hook_status = DP_EX_SOFTWARE;
	return DP_CONSUMER_HALT;
}

/* A rebalance event through the machine (a same-state row): its action's status. */
static int
rebalanced(struct sink *k, int ev, struct dp_consumer_part **parts, size_t n)
{
	k->moved = parts;
	k->nmoved = n;
	k->hook_status = 0;
	if (dp_fsm_step(&k->fsm, ev, k) == DP_FSM_NOTRANS)
		return DP_EX_SOFTWARE;
	return k->hook_status;
}

static int
on_assigned(struct dp_consumer *c, void *arg, struct dp_consumer_part **parts, size_t n)
{
	(void)c;
	return rebalanced(arg, E_ASSIGNED, parts, n);
}

static int
on_revoked(struct dp_consumer *c, void *arg, struct dp_consumer_part **parts, size_t n)
{
	(void)c;
	return rebalanced(arg, E_REVOKED, parts, n);
}

/*
 * Start p from its source's stored offset.  0; DP_PGSINK_DOWN (p waits,
 * paused, for the reconnect); or an exit status after saying why.
 */
static int
start_part(struct sink *k, struct dp_consumer_part *p, bool released)
{
	struct pstate *ps = p->user;
	int st = 0;

	dp_buf_reset(&k->err);
	ps->src = dp_pgsink_source(k->sink, k->group, p->topic, p->partition, true, &k->err, &st);
	if (!ps->src && st == DP_PGSINK_DOWN) {
		ps->waiting = true;
		dp_buf_reset(&k->why);
		if (dp_consumer_pause(k->c, p, &k->why) != 0) {
			dp_err("%s", dp_buf_str(&k->why));
			return DP_EX_SOFTWARE;
		}
		dp_info("%s [%d]: the database is away; it starts after the reconnect", p->topic,
		        (int)p->partition);
		return DP_PGSINK_DOWN;
	}
	if (!ps->src) {
		dp_err("%s", dp_buf_str(&k->err));
		return st;
	}
	int64_t stored = dp_pgsink_stored(ps->src);
	/* No row yet: nothing of it was written, so from its first record. */
	int64_t at = stored >= 0 ? stored : 0;
	ps->acquired = true;
	ps->waiting = false;
	if (released) {
		p->start = at;
	} else {
		dp_buf_reset(&k->why);
		if (dp_consumer_seek(k->c, p, at, &k->why) != 0) {
			dp_err("%s", dp_buf_str(&k->why));
			return DP_EX_SOFTWARE;
		}
	}
	dp_info("%s [%d]: from offset %" PRId64 "%s", p->topic, (int)p->partition, at,
	        stored >= 0 ? " (stored)" : " (nothing stored yet)");
	return 0;
}

/*
 * The out_of_range hook: where p was to go on lies outside its records.
 * Before the first one, retention deleted records before they were
 * written: nothing can bring them back, so the engine says so and goes
 * on from the first record.  Past the end, the records the offset counts
 * are not the topic's any more (deleted and created again, or cut by an
 * unclean leader election): which of the new ones are in the table is
 * for a person to say, so stop with 78 and say how (--reset-offsets).
 */
static int
on_out_of_range(struct dp_consumer *c, void *arg, struct dp_consumer_part *p, int64_t offset,
                int64_t lo, int64_t hi)
{
	struct sink *k = arg;
	struct pstate *ps = p->user;
	bool stored = ps && ps->src && dp_pgsink_stored(ps->src) == offset;

	(void)c;
	if (offset <= hi)
		return 0;
	dp_err("%s [%d]: the %s offset %" PRId64 " (group '%s') is past the partition's end "
	       "(low..high watermark %" PRId64 "..%" PRId64 "): the topic was deleted and "
	       "created again, or an unclean leader election lost records; nothing more of it "
	       "is written", p->topic, (int)p->partition, stored ? "stored" : "current", offset,
	       k->group, lo, hi);
	if (!k->said_reset)
		dp_err("to write what the topic holds now, stop every dp-sink-pg of group '%s' "
		       "and move its stored offsets: dp-sink-pg --reset-offsets earliest -t %s "
		       "-g %s (or latest, or %s:%d:OFFSET); see \"When the topic is re-created\" "
		       "in dp-sink-pg(1)", k->group, p->topic, k->group, p->topic,
		       (int)p->partition);
	k->said_reset = true;
	if (ps && ps->acquired) {
		/* Nothing of it is written, and no offset of it goes to Kafka. */
		dp_pgsink_release(k->sink, ps->src);
		ps->acquired = false;
		purge(k, p);
	}
	return DP_EX_CONFIG;
}

/* A source another instance wrote (resync): start it again where that one left it. */
static int
resync(struct sink *k, struct dp_pgsink_src *src)
{
	struct dp_consumer_part *const *parts;
	size_t n;

	parts = dp_consumer_parts(k->c, &n);
	for (size_t i = 0; i < n; i++) {
		struct pstate *ps = parts[i]->user;
		if (!ps || ps->src != src)
			continue;
		ps->acquired = false;
		purge(k, parts[i]);
		if (!parts[i]->assigned)
			return 0;
		dp_warn("%s [%d]: another dp-sink-pg of group '%s' wrote it meanwhile; going on "
		        "from the offset it stored", parts[i]->topic, (int)parts[i]->partition,
		        k->group);
		int st = start_part(k, parts[i], false);
		return st == DP_PGSINK_DOWN ? 0 : st;
	}
	return 0;
}

/* dp_pgsink_write, then the sources another instance took over. */
static int
write_sink(struct sink *k, bool flush)
{
	struct dp_pgsink_src *src;
	int rc;

	dp_buf_reset(&k->err);
	rc = dp_pgsink_write(k->sink, flush, &k->err);
	while (k->c && (src = dp_pgsink_lost(k->sink)) != NULL) {
		int st = resync(k, src);
		if (st && !rc)
			rc = st;
	}
	return rc;
}

/* The revoked partitions' batches commit before they go (unless the database is away). */
static int
finish_parts(struct sink *k, struct dp_consumer_part **parts, size_t n)
{
	int64_t deadline = dp_time_mono_ms() + k->common.kafka.timeout_ms;
	bool busy = false;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		const struct pstate *ps = parts[i]->user;
		if (ps && ps->acquired && !dp_pgsink_src_idle(ps->src)) {
			dp_pgsink_flush(k->sink, ps->src);
			busy = true;
		}
	}
	while (busy && !k->outage && !dp_sig_stop && dp_time_mono_ms() < deadline) {
		if ((rc = write_sink(k, false)) != 0)
			break;
		busy = false;
		for (size_t i = 0; i < n; i++) {
			const struct pstate *ps = parts[i]->user;
			busy |= ps && ps->acquired && !dp_pgsink_src_idle(ps->src);
		}
		if (busy)
			dp_pgsink_wait(k->sink, 50);
	}
	if (busy && !rc && !k->outage)
		dp_warn("letting partitions go before their last batch committed: the next "
		        "owner starts from what is stored");
	return rc;
}

/* ---- resources ---------------------------------------------------------------- */

/* The reader's idle hook: stop waiting for input when the database side needs us. */
static int
reader_idle(void *ctx)
{
	struct sink *k = ctx;

	progress(k, false);
	return dp_sig_stop || (k->sink && dp_pgsink_due(k->sink));
}

static int
open_sink(void *ctx)
{
	struct sink *k = ctx;

	if (k->from_stdin) {
		/* Not DP_LINES_STRICT: the JSON scanner checks UTF-8 and NUL bytes
		 * anyway, and names the byte. */
		k->in = dp_lines_new(STDIN_FILENO, 0);
		if (!k->in) {
			dp_err("out of memory");
			return DP_EX_SOFTWARE;
		}
		dp_lines_set_idle(k->in, reader_idle, k);
		/* A record longer than a batch could not be written anyway. */
		dp_lines_set_max(k->in, k->batch_bytes);
	}
	/* Equal jitter: at least half the doubled delay, the rest random. */
	dp_backoff_init(&k->backoff, RETRY_BASE_MS, RETRY_CAP_MS, 0.5, 0);
	dp_progress_init(&k->prog, k->progress);
	return 0;
}

static void
close_sink(void *ctx)
{
	struct sink *k = ctx;

	dp_pgsink_free(k->sink);
	if (k->c) {
		struct dp_consumer_part *const *parts;
		size_t n;
		parts = dp_consumer_parts(k->c, &n);
		for (size_t i = 0; i < n; i++)
			free(parts[i]->user);
		dp_consumer_free(k->c);
	}
	dp_producer_free(k->dlq);
	dp_lines_free(k->in);
	dp_expr_free(k->map);
	free(k->keys);
	free(k->db_arg);
	free(k->topics);
	free(k->inrecs);
	dp_buf_free(&k->inbox);
	dp_buf_free(&k->err);
	dp_buf_free(&k->why);
	for (size_t i = 0; i < k->nspecs; i++)
		free(k->specs[i].topic);
	free(k->specs);
	if (k->pg)
		PQfinish(k->pg);
	if (k->admin)
		rd_kafka_destroy(k->admin);
	dp_sinkoffsets_free(k->stored, k->nstored);
	free(k->rtopics);
	free(k->rcounts);
}

/* ---- actions -------------------------------------------------------------- */

/* The consumer (and the dead-letter producer): 0, DP_KAFKA_STOPPED, or a status. */
static int
connect_kafka(struct sink *k)
{
	/*
	 * Half the engine's prefetch, in smaller fetches: the records waiting
	 * in librdkafka and the response buffers they pin were 18 of 42 MB
	 * at the defaults; the writers' batches need the room (BENCHMARKS.md).
	 */
	static const struct dp_kv defaults[] = {
		{ "max.partition.fetch.bytes", "262144" },
	};
	const struct dp_consumer_opts opts = {
		.topics = k->topics, .ntopics = k->ntopics, .group = k->group,
		.defaults = defaults, .ndefaults = sizeof(defaults) / sizeof(defaults[0]),
		/* Each partition's start comes from the database (the assigned hook). */
		.from = DP_FROM_BEGINNING,
		.until = k->until_end ? DP_UNTIL_END : DP_UNTIL_NONE,
		.manual_commit = true,
		.prefetch_bytes = 4u << 20,
	};
	const struct dp_consumer_hooks hooks = {
		.arg = k, .record = on_record, .assigned = on_assigned, .revoked = on_revoked,
		.committed = on_committed, .out_of_range = on_out_of_range,
	};
	int st;

	if (k->on_error.mode == DP_ON_ERROR_DLQ) {
		const struct dp_producer_conf conf = {
			.kafka = &k->common.kafka, .topic = k->on_error.dlq_topic,
		};
		if (!(k->dlq = dp_producer_new(&conf, &k->err, &st)))
			return st;
		if ((st = dp_producer_connect(k->dlq, NULL, 0, &k->err)) != 0)
			return st;
	}
	if (!(k->c = dp_consumer_new(&k->common.kafka, &opts, &hooks, &k->err, &st)))
		return st;
	return dp_consumer_connect(k->c, &k->err);
}

static int
act_connect(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;
	struct dp_pgsink_config cfg = {
		.conninfo = k->db, .app = "dp-sink-pg", .table = k->table, .create = k->create,
		.unknown = k->unknown, .extra_column = "extra", .time_column = k->time_column,
		.numeric = k->numeric, .keys = k->keys, .nkeys = k->nkeys, .update = k->update,
		.hypertable = k->hypertable, .chunk_ms = k->chunk_ms,
		.writers = (unsigned)k->writers, .batch_rows = k->batch_rows,
		.batch_bytes = k->batch_bytes, .linger_ms = k->linger_ms,
		.on_error = k->on_error.mode == DP_ON_ERROR_FAIL ? DP_PGSINK_FAIL : DP_PGSINK_SKIP,
		.keep_raw = k->on_error.mode == DP_ON_ERROR_DLQ,
		.resync = !k->from_stdin,
		.timeout_ms = k->common.kafka.timeout_ms, .on_bad = engine_bad, .arg = k,
		.max_retries = k->max_retries,
	};
	int status;

	dp_buf_reset(&k->err);
	status = dp_pgsink_open(&k->sink, &cfg, &k->err);
	if (status == 0 && k->from_stdin) {
		k->src = dp_pgsink_source(k->sink, "", k->source_id ? k->source_id : "stdin", -1,
		                          k->source_id != NULL, &k->err, &status);
		if (status == DP_PGSINK_DOWN)
			status = DP_EX_UNAVAILABLE;
	}
	if (status == 0 && !k->from_stdin)
		status = connect_kafka(k);
	if (status) {
		if (dp_sig_stop || status == DP_KAFKA_STOPPED)
			return E_SIGNAL;
		dp_err("%s", dp_buf_str(&k->err));
		dp_fsm_fail(m, status);
		return E_UNAVAILABLE;
	}
	int64_t stored = k->src ? dp_pgsink_stored(k->src) : 0;
	if (stored > 0) {
		k->skip_to = (unsigned long)stored;
		dp_info("%s: lines up to %" PRId64 " are written already; resuming after them",
		        dp_pgsink_src_label(k->src), stored);
	}
	return E_CONNECTED;
}

/* The consumer failed: why, as it said. */
static void
consumer_failed(struct dp_fsm *m, struct sink *k, int st)
{
	if (k->err.len || k->err.lost)
		dp_err("%s", dp_buf_str(&k->err));
	dp_fsm_fail(m, st ? st : k->hook_status ? k->hook_status : DP_EX_SOFTWARE);
}

/* Read the next line to process.  A line before the stored offset is passed over. */
static int
wait_line(struct dp_fsm *m, struct sink *k)
{
	if (k->held)
		return E_MESSAGE_RECEIVED;
	if (k->draining)
		return E_EOF;
	for (;;) {
		/* A file never makes a read wait (EINTR, below): look here too. */
		if (dp_sig_stop && !k->stopping) {
			dp_lines_stop(k->in);
			k->stopping = true;
		}
		int rc = dp_lines_next(k->in, &k->line, &k->len);
		if (rc == DP_LINES_OK || rc == DP_LINES_LONG) {
			k->lineno = dp_lines_lineno(k->in);
			if (k->lineno <= k->skip_to)
				continue;
			k->line_rc = rc;
			k->held = true;
			return E_MESSAGE_RECEIVED;
		}
		if (rc == DP_LINES_EOF) {
			k->at_end = !k->stopping;
			if (k->skip_to && dp_lines_lineno(k->in) < k->skip_to)
				dp_warn("the input has %lu lines, but %s is stored at line %lu: "
				        "nothing new to write", dp_lines_lineno(k->in),
				        dp_pgsink_src_label(k->src), k->skip_to);
			k->draining = true;
			return E_EOF;
		}
		if (rc == DP_LINES_ERR && errno == EINTR) {
			if (dp_sig_stop) {
				/* Finish what was read; read nothing more. */
				if (!k->stopping) {
					dp_lines_stop(k->in);
					k->stopping = true;
				}
				continue;
			}
			return E_WRITE_DUE;
		}
		if (rc == DP_LINES_NOMEM) {
			dp_err("out of memory reading standard input");
			dp_fsm_fail(m, DP_EX_SOFTWARE);
		} else {
			dp_err("cannot read standard input: %s", strerror(errno));
			dp_fsm_fail(m, DP_EX_IOERR);
		}
		k->draining = true;
		return E_EOF;
	}
}

/* Poll the consumer until records are in the inbox or the database side needs us. */
static int
wait_record(struct dp_fsm *m, struct sink *k)
{
	int poll_ms = k->linger_ms >= 200 ? 100 : k->linger_ms >= 20 ? (int)k->linger_ms / 2 : 10;

	for (;;) {
		if (k->deferred)
			return E_WRITE_DUE;
		if (k->in_next < k->nin)
			return E_MESSAGE_RECEIVED;
		k->nin = k->in_next = 0;
		dp_buf_reset(&k->inbox);
		if (k->draining)
			return E_EOF;
		if (dp_pgsink_due(k->sink))
			return E_WRITE_DUE;
		kafka_commit(k, false);
		progress(k, false);
		int st = 0;
		dp_buf_reset(&k->err);
		int r = dp_consumer_poll(k->c, poll_ms, &k->err, &st);
		if (r == DP_CONSUMER_MORE)
			continue;
		/* What is in the inbox is still written. */
		k->draining = true;
		k->at_end = r == DP_CONSUMER_END;
		if (r == DP_CONSUMER_END)
			dp_info("every partition is at its end as it was at start (-e)");
		else if (r != DP_CONSUMER_SIGNAL)
			consumer_failed(m, k, st);
	}
}

static int
act_wait(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	return k->from_stdin ? wait_line(m, k) : wait_record(m, k);
}

/* One record in hand, from either input. */
struct rec {
	struct dp_pgsink_src *src;
	const char *topic;              /* its topic, or the --source-id */
	int32_t partition;              /* -1 for a line */
	int64_t offset;
	const void *key;                /* NULL: none */
	size_t klen;
	const char *value;              /* NULL: none (a tombstone) */
	size_t vlen;
	const void *hdr;                /* its headers, packed (kafka/onerror.h); NULL: none */
	size_t hlen;
};

/* A bad record this file found: its reason in k->why.  DP_PGSINK_BAD or a status. */
static int
own_bad(struct sink *k, const struct rec *r)
{
	int st = bad_record(k, r->topic, r->partition, r->offset, dp_buf_str(&k->why), "",
	                    r->key, r->klen, r->value, r->vlen, r->hdr, r->hlen);

	return st ? st : DP_PGSINK_BAD;
}

struct map_ctx {
	struct sink *k;
	const struct rec *r;
	int rc;
	uint64_t rows;
};

static int
add_mapped(void *ctx, const char *json, size_t len)
{
	struct map_ctx *mc = ctx;
	struct sink *k = mc->k;

	mc->rows++;
	if (dp_json_type_of(json) != DP_JSON_OBJECT) {
		dp_buf_reset(&k->why);
		dp_buf_msgf(&k->why, "--map made %.*s%s, not an object", len > 40 ? 40 : (int)len, json,
		            len > 40 ? "..." : "");
		mc->rc = own_bad(k, mc->r);
		return 1;
	}
	dp_buf_reset(&k->err);
	mc->rc = dp_pgsink_add(k->sink, mc->r->src, mc->r->offset, json, len, &k->err);
	return mc->rc != 0;
}

/*
 * One record: its rows into the batch.  0, DP_PGSINK_BAD (reported),
 * DP_PGSINK_STOPPED (its source takes no more rows), or a failure.
 */
static int
process_record(struct sink *k, const struct rec *r)
{
	const char *why;
	size_t off;

	dp_buf_reset(&k->why);
	if (!r->value) {
		dp_buf_msgf(&k->why, "a record without a value (a tombstone)");
		return own_bad(k, r);
	}
	if (r->vlen > k->batch_bytes) {
		dp_buf_msgf(&k->why, "a record of %zu bytes, longer than --batch-bytes (%" PRIu64 ")",
		            r->vlen, k->batch_bytes);
		return own_bad(k, r);
	}
	dp_pgsink_raw(k->sink, r->src, r->offset, r->key, r->klen, r->value, r->vlen);
	if (r->hlen)
		dp_pgsink_raw_headers(k->sink, r->src, r->hdr, r->hlen);
	if (!k->map) {
		/* The engine checks the JSON while it encodes the row. */
		dp_buf_reset(&k->err);
		return dp_pgsink_add(k->sink, r->src, r->offset, r->value, r->vlen, &k->err);
	}
	if (dp_json_check(r->value, r->vlen, &why, &off) == DP_JSON_INVALID) {
		dp_buf_msgf(&k->why, "not JSON: %s at byte %zu", why, off + 1);
		return own_bad(k, r);
	}
	struct dp_expr_rec rec = DP_EXPR_REC(r->value, r->vlen);
	struct map_ctx mc = { k, r, 0, 0 };
	dp_buf_reset(&k->err);
	int rc = dp_expr_each(k->map, &rec, add_mapped, &mc, &k->err);
	dp_expr_rec_clear(&rec);
	if (rc < 0) {
		dp_buf_msgf(&k->why, "--map: %s", dp_buf_str(&k->err));
		return own_bad(k, r);
	}
	if (rc == 0 && mc.rows == 0)
		k->maps_empty++;
	return mc.rc;
}

/* The line in hand as a record.  An empty line makes none, but its number counts. */
static int
process_line(struct sink *k)
{
	struct rec r = {
		.src = k->src, .topic = k->source_id ? k->source_id : "stdin", .partition = -1,
		.offset = (int64_t)k->lineno - 1, .value = k->line, .vlen = k->len,
	};

	if (k->line_rc == DP_LINES_LONG) {
		/* not kept by the reader: it could not go into a batch anyway */
		dp_buf_reset(&k->why);
		dp_buf_msgf(&k->why, "a line of %zu bytes, longer than --batch-bytes (%" PRIu64 ")",
		            k->len, k->batch_bytes);
		r.value = NULL;
		return own_bad(k, &r);
	}
	if (k->len == 0 || strspn(k->line, " \t") == k->len)
		return 0;
	return process_record(k, &r);
}

/*
 * The line in hand and every complete line already buffered, until the
 * batch is full or due: the per-record loop stays inside this state.
 */
static int
process_lines(struct sink *k)
{
	for (;;) {
		int rc = process_line(k);
		if (rc == DP_PGSINK_BAD) {
			k->held = false;
			k->fail = 0;
			k->bad_src = k->src;
			k->bad_topic = k->source_id ? k->source_id : "stdin";
			k->bad_partition = -1;
			k->bad_offset = (int64_t)k->lineno - 1;
			return E_PROCESS_FAILURE;
		}
		if (rc != 0) {
			/* The database was needed (a new column) and failed: keep the
			 * line for after the reconnect. */
			k->fail = rc;
			return E_WRITE_FAILURE;
		}
		k->held = false;
		dp_pgsink_done(k->sink, k->src, (int64_t)k->lineno);
		/* Lingering only matters for a slow input: look now and then. */
		if (!dp_pgsink_room(k->sink, k->src) ||
		    ((++k->since_due & 255) == 0 && dp_pgsink_due(k->sink)))
			return E_PROCESS_SUCCESS;
		/* The next buffered line, passing over stored ones. */
		do {
			if (!dp_lines_has_line(k->in))
				return E_NEED_MORE;
			k->line_rc = dp_lines_next(k->in, &k->line, &k->len);
			if (k->line_rc != DP_LINES_OK && k->line_rc != DP_LINES_LONG)
				return E_NEED_MORE;     /* act_wait hears it again */
			k->lineno = dp_lines_lineno(k->in);
		} while (k->lineno <= k->skip_to);
		k->held = true;
	}
}

/* The inbox's records, until a batch is full or due. */
static int
process_records(struct sink *k)
{
	while (k->in_next < k->nin) {
		const struct inrec *in = &k->inrecs[k->in_next];
		const struct pstate *ps = in->part->user;
		if (!ps || !ps->acquired) {
			k->in_next++;   /* let go meanwhile: its next owner reads it */
			continue;
		}
		if (!dp_pgsink_room(k->sink, ps->src))
			return E_PROCESS_SUCCESS;
		const char *p = k->inbox.data ? k->inbox.data + in->pos : "";
		struct rec r = {
			.src = ps->src, .topic = in->part->topic, .partition = in->part->partition,
			.offset = in->offset, .key = in->has_key ? p : NULL, .klen = in->klen,
			.value = in->has_value ? p + in->klen : NULL, .vlen = in->vlen,
			.hdr = in->hlen ? p + in->klen + in->vlen : NULL, .hlen = in->hlen,
		};
		int rc = process_record(k, &r);
		if (rc == DP_PGSINK_BAD) {
			k->in_next++;
			k->fail = 0;
			k->bad_src = ps->src;
			k->bad_topic = in->part->topic;
			k->bad_partition = in->part->partition;
			k->bad_offset = in->offset;
			return E_PROCESS_FAILURE;
		}
		if (rc == DP_PGSINK_STOPPED) {
			/* After a stop at a bad record: not written, not stored. */
			k->in_next++;
			continue;
		}
		if (rc != 0) {
			k->fail = rc;   /* kept for after the reconnect */
			return E_WRITE_FAILURE;
		}
		dp_pgsink_done(k->sink, ps->src, in->offset + 1);
		k->in_next++;
		if ((++k->since_due & 255) == 0 && dp_pgsink_due(k->sink))
			return E_PROCESS_SUCCESS;
	}
	return dp_pgsink_due(k->sink) ? E_PROCESS_SUCCESS : E_NEED_MORE;
}

static int
act_process(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	(void)m;
	return k->from_stdin ? process_lines(k) : process_records(k);
}

/* A signal came more than DRAIN_AFTER_SIGNAL_MS ago (the clock starts at the first look). */
static bool
signal_grace_over(struct sink *k)
{
	int64_t now = dp_time_mono_ms();

	if (!dp_sig_stop)
		return false;
	if (!k->sig_ms)
		k->sig_ms = now;
	return now - k->sig_ms > DRAIN_AFTER_SIGNAL_MS;
}

/* Read nothing more: the input stops at a bad record, or a signal. */
static void
stop_input(struct sink *k)
{
	k->draining = true;
	k->held = false;
	k->nin = k->in_next = 0;
}

/* The source of the record to process next, or NULL. */
static struct dp_pgsink_src *
next_src(const struct sink *k)
{
	if (k->from_stdin)
		return k->src;
	if (k->in_next < k->nin) {
		const struct pstate *ps = k->inrecs[k->in_next].part->user;
		return ps && ps->acquired ? ps->src : NULL;
	}
	return NULL;
}

/* Hand batches to the writers; wait for room when the batch is full. */
static int
act_write(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	(void)m;
	if (k->deferred) {
		k->fail = k->deferred;
		k->deferred = 0;
		return E_WRITE_FAILURE;
	}
	for (;;) {
		int rc = write_sink(k, k->draining);
		progress(k, false);
		if (rc) {
			k->fail = rc;
			return E_WRITE_FAILURE;
		}
		struct dp_pgsink_src *src = next_src(k);
		if (k->draining || !src || dp_pgsink_room(k->sink, src))
			return E_WRITE_SUCCESS;
		if (signal_grace_over(k)) {
			/* The database holds on to the batches in flight: what is
			 * not in one stays unread, and act_commit rolls them back. */
			stop_input(k);
			return E_WRITE_SUCCESS;
		}
		dp_pgsink_wait(k->sink, 100);
	}
}

/* A bad record, a stop, an outage or something worse: decide. */
static int
act_error(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;
	char at[512];

	switch (k->fail) {
	case 0:         /* a bad record from processing, reported */
		if (k->on_error.mode != DP_ON_ERROR_FAIL) {
			dp_pgsink_done(k->sink, k->bad_src, k->bad_offset + 1);
			return E_RESET;
		}
		/* fail: what came before it is committed, nothing after */
		where(k, k->bad_topic, k->bad_partition, k->bad_offset, at, sizeof(at));
		dp_info("stopping at %s (--on-error fail)", at);
		stop_input(k);
		dp_fsm_fail(m, DP_EX_DATAERR);
		return E_STOP;
	case DP_PGSINK_STOPPED:
		k->fail = 0;
		stop_input(k);
		dp_fsm_fail(m, DP_EX_DATAERR);
		return E_STOP;
	case DP_PGSINK_DOWN:
		return E_OUTAGE;
	default:
		/* A refused dead letter was named where it was refused. */
		if ((k->err.len || k->err.lost) &&
		    !(k->fail == DP_EX_DATAERR && k->on_error.mode == DP_ON_ERROR_DLQ))
			dp_err("%s", dp_buf_str(&k->err));
		dp_fsm_fail(m, k->fail > 0 ? k->fail : DP_EX_SOFTWARE);
		return E_FATAL;
	}
}

/* The input waits while the database is away: partitions are paused, still polled. */
static int
act_pause(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	(void)m;
	if (!k->said_down) {
		/* The engine says what: "lost the database (...)", read-only, ... */
		dp_warn("%s; reconnecting%s", dp_buf_str(&k->err),
		        k->max_retries ? "" : " until it is back");
		k->said_down = true;
	}
	k->outage = true;
	if (k->c) {
		struct dp_consumer_part *const *parts;
		size_t n;
		parts = dp_consumer_parts(k->c, &n);
		for (size_t i = 0; i < n; i++) {
			struct pstate *ps = parts[i]->user;
			if (!parts[i]->assigned || !ps || !ps->acquired || parts[i]->paused)
				continue;
			dp_buf_reset(&k->why);
			if (dp_consumer_pause(k->c, parts[i], &k->why) != 0)
				dp_warn("%s", dp_buf_str(&k->why));
			ps->held = true;
		}
	}
	return E_RETRY;
}

/* A signal while the database is away: what was not committed stays unwritten. */
static int
stopped_in_outage(struct dp_fsm *m, struct sink *k)
{
	if (k->from_stdin) {
		int64_t stored = dp_pgsink_stored(k->src);
		dp_err("stopped while the database was away: lines after %" PRId64 " are not "
		       "written%s", stored > 0 ? stored : 0,
		       k->source_id ? " (a rerun with the same --source-id resumes there)" : "");
	} else {
		dp_err("stopped while the database was away: records after the stored offsets "
		       "are not written (the next run of group '%s' resumes there)", k->group);
	}
	dp_fsm_fail(m, DP_EX_TEMPFAIL);
	return E_SIGNAL;
}

/* Wait out the delay; a group member polls meanwhile, so it stays in the group. */
static int
act_backoff(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	/* The retries count from the last commit, not the last reconnect: a
	 * server that takes connections but no batch (read-only) must not
	 * hold the run for ever. */
	struct dp_pgsink_stats stats;
	dp_pgsink_stats(k->sink, &stats);
	if (stats.batches != k->backoff_batches) {
		k->backoff_batches = stats.batches;
		dp_backoff_reset(&k->backoff);
	}
	if (k->max_retries && k->backoff.attempts >= k->max_retries) {
		dp_err("gave up on the database after %" PRIu64 " retries: %s", k->max_retries,
		       dp_buf_str(&k->err));
		dp_fsm_fail(m, DP_EX_UNAVAILABLE);
		return E_GIVE_UP;
	}
	int64_t ms = dp_backoff_next(&k->backoff, 0);
	dp_info("retry %u in %" PRId64 " ms", k->backoff.attempts, ms);
	if (!k->c) {
		if (dp_backoff_sleep(ms, &dp_sig_stop) < 0 || dp_sig_stop)
			return stopped_in_outage(m, k);
		return E_WAKE;
	}
	int64_t until = dp_time_mono_ms() + ms;
	for (int64_t now = dp_time_mono_ms(); now < until; now = dp_time_mono_ms()) {
		int st = 0;
		struct dp_buf perr = DP_BUF_INIT;
		int r = dp_consumer_poll(k->c, until - now < 250 ? (int)(until - now) : 250, &perr,
		                         &st);
		if (r == DP_CONSUMER_SIGNAL) {
			dp_buf_free(&perr);
			return stopped_in_outage(m, k);
		}
		if (r == DP_CONSUMER_FAILED || r == DP_CONSUMER_HALTED) {
			dp_buf_reset(&k->err);
			dp_buf_msgf(&k->err, "%s", dp_buf_str(&perr));
			dp_buf_free(&perr);
			consumer_failed(m, k, st);
			return E_GIVE_UP;
		}
		if (r == DP_CONSUMER_END)
			k->draining = k->at_end = true;
		dp_buf_free(&perr);
	}
	return E_WAKE;
}

static int
act_reconnect(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	(void)m;
	dp_buf_reset(&k->err);
	int rc = dp_pgsink_reconnect(k->sink, &k->err);
	if (rc != 0) {
		dp_info("still no database: %s", dp_buf_str(&k->err));
		return E_UNAVAILABLE;
	}
	if (k->c) {
		struct dp_consumer_part *const *parts;
		size_t n;
		/* Partitions assigned meanwhile start from their stored offsets. */
		parts = dp_consumer_parts(k->c, &n);
		for (size_t i = 0; i < n; i++) {
			struct pstate *ps = parts[i]->user;
			if (!parts[i]->assigned || !ps || !ps->waiting)
				continue;
			int st = start_part(k, parts[i], false);
			if (st == DP_PGSINK_DOWN) {
				dp_info("still no database: %s", dp_buf_str(&k->err));
				return E_UNAVAILABLE;
			}
			if (st && !k->deferred)
				k->deferred = st;
		}
		for (size_t i = 0; i < n; i++) {
			struct pstate *ps = parts[i]->user;
			if (!parts[i]->assigned || !ps || !ps->acquired || !parts[i]->paused)
				continue;
			dp_buf_reset(&k->why);
			if (dp_consumer_resume(k->c, parts[i], &k->why) != 0 && !k->deferred) {
				dp_err("%s", dp_buf_str(&k->why));
				k->deferred = DP_EX_SOFTWARE;
			}
			ps->held = false;
		}
	}
	dp_warn("reconnected to the database after %u retr%s", k->backoff.attempts,
	        k->backoff.attempts == 1 ? "y" : "ies");
	k->said_down = false;
	k->outage = false;
	return E_RECONNECTED;
}

/* No more input: write what is left and wait for it to commit. */
static int
act_commit(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;
	bool cancelled = false;

	(void)m;
	k->draining = true;
	for (;;) {
		int rc = write_sink(k, true);
		progress(k, false);
		if (rc) {
			k->fail = rc;
			return E_WRITE_FAILURE;
		}
		if (dp_pgsink_idle(k->sink))
			return E_COMMITTED;
		if (!cancelled && signal_grace_over(k)) {
			dp_warn("the batch in flight did not commit within %d ms of the "
			        "signal: rolling it back", DRAIN_AFTER_SIGNAL_MS);
			dp_pgsink_cancel(k->sink);
			cancelled = true;
		} else if (cancelled && dp_time_mono_ms() - k->sig_ms >
		                        DRAIN_AFTER_SIGNAL_MS + ABORT_AFTER_CANCEL_MS) {
			/* A server that does not answer the cancel either: its
			 * connections are closed under the writers. */
			dp_pgsink_abort(k->sink);
			dp_buf_reset(&k->err);
			dp_buf_msgf(&k->err, "the database answered neither the batch nor its cancel "
			            "within %d ms: closed the connection; the batch is not committed",
			            ABORT_AFTER_CANCEL_MS);
			k->fail = DP_EX_TEMPFAIL;
			return E_WRITE_FAILURE;
		}
		dp_pgsink_wait(k->sink, 100);
	}
}

/* The end: offsets to Kafka once more, then leave the group (its revoke runs here). */
static int
act_close(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	if (k->c) {
		kafka_commit(k, true);
		dp_consumer_close(k->c);
	}
	return m->reason ? E_FAILED : E_CLOSED;
}

/* A rebalance gave partitions (same state): each starts where the database says. */
static int
act_assigned(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	(void)m;
	dp_consumer_say_parts("reading", k->moved, k->nmoved);
	for (size_t i = 0; i < k->nmoved; i++) {
		struct dp_consumer_part *p = k->moved[i];
		struct pstate *ps = p->user;
		if (!ps) {
			if (!(ps = calloc(1, sizeof(*ps)))) {
				dp_err("out of memory");
				k->hook_status = DP_EX_SOFTWARE;
				return DP_FSM_NONE;
			}
			ps->committed = -1;
			p->user = ps;
		}
		int st = start_part(k, p, true);
		if (st == DP_PGSINK_DOWN)
			continue;
		if (st) {
			k->hook_status = st;
			return DP_FSM_NONE;
		}
		if (k->outage) {
			/* The writers are away: it waits with the others. */
			dp_buf_reset(&k->why);
			if (dp_consumer_pause(k->c, p, &k->why) != 0)
				dp_warn("%s", dp_buf_str(&k->why));
			ps->held = true;
		}
	}
	return DP_FSM_NONE;
}

/*
 * A rebalance or the close took partitions (same state): their batches
 * commit first (or, the database away, are dropped: the next owner reads
 * the stored offset), then they go.
 */
static int
act_revoked(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	dp_consumer_say_parts("handing over", k->moved, k->nmoved);
	if (!m->reason) {
		int rc = finish_parts(k, k->moved, k->nmoved);
		if (rc && rc != DP_PGSINK_DOWN && !k->deferred)
			k->deferred = rc;
	}
	kafka_commit(k, false);
	for (size_t i = 0; i < k->nmoved; i++) {
		struct dp_consumer_part *p = k->moved[i];
		struct pstate *ps = p->user;
		purge(k, p);
		if (!ps)
			continue;
		if (ps->acquired)
			dp_pgsink_release(k->sink, ps->src);
		ps->acquired = ps->waiting = ps->held = false;
		ps->committed = -1;
	}
	return DP_FSM_NONE;
}

/* ---- --reset-offsets ----------------------------------------------------- */

/* Add name to the topics whose offsets move, once. */
static int
add_rtopic(struct sink *k, const char *name)
{
	for (size_t i = 0; i < k->nrtopics; i++)
		if (strcmp(k->rtopics[i], name) == 0)
			return 0;
	return push_name(&k->rtopics, &k->nrtopics, name);
}

/* idle -> connecting: the database (and the group's rows), then Kafka and the topics. */
static int
act_reset_connect(struct dp_fsm *m, void *ctx)
{
	static const struct dp_kv defaults[] = { { "allow.auto.create.topics", "false" } };
	struct sink *k = ctx;
	enum dp_pg_kind kind = DP_PG_TRANSIENT;
	int st = 0;

	dp_buf_reset(&k->err);
	if (!(k->pg = dp_pg_connect(k->db, "dp-sink-pg", k->common.kafka.timeout_ms, &kind, &k->err))) {
		st = kind == DP_PG_FATAL ? DP_EX_CONFIG : DP_EX_UNAVAILABLE;
		goto fail;
	}
	if ((st = dp_sinkoffsets_read(k->pg, k->group, &k->stored, &k->nstored, &k->err)) != 0)
		goto fail;
	for (size_t i = 0; i < k->nspecs && !st; i++)
		st = add_rtopic(k, k->specs[i].topic);
	for (size_t i = 0; k->reset != RESET_EXPLICIT && i < k->ntopics && !st; i++)
		st = add_rtopic(k, k->topics[i]);
	for (size_t i = 0; k->reset != RESET_EXPLICIT && !k->ntopics && i < k->nstored && !st; i++)
		st = add_rtopic(k, k->stored[i].topic);
	if (st) {
		dp_fsm_fail(m, DP_EX_SOFTWARE);
		return RE_UNAVAILABLE;
	}
	if (!k->nrtopics) {
		dp_buf_msgf(&k->err, "group '%s' has no stored offsets in table %s (of %s): name "
		            "the topics with -t", k->group, DP_SINKOFFSETS_TABLE,
		            k->db_from ? k->db_from : "the default database");
		st = DP_EX_NOTFOUND;
		goto fail;
	}
	if (!(k->rcounts = calloc(k->nrtopics, sizeof(*k->rcounts)))) {
		dp_buf_msgf(&k->err, "out of memory");
		st = DP_EX_SOFTWARE;
		goto fail;
	}
	if (!(k->admin = dp_kafka_new(&k->common.kafka, RD_KAFKA_PRODUCER, defaults, 1, NULL, NULL,
	                              &k->err, &st)))
		goto fail;
	st = dp_kafka_connect(k->admin, &k->common.kafka, k->rtopics, k->nrtopics, k->rcounts, &k->err);
	if (st == 0)
		return RE_CONNECTED;
fail:
	if (st == DP_KAFKA_STOPPED || dp_sig_stop) {
		dp_err("stopped by a signal before anything moved");
		st = DP_EX_TEMPFAIL;
	} else {
		dp_err("%s", dp_buf_str(&k->err));
	}
	dp_fsm_fail(m, st);
	return RE_UNAVAILABLE;
}

/* "dp-sink-pg on /10.0.0.7, ..." for the members of a group, into b. */
static void
say_members(struct dp_buf *b, const struct dp_admin_group *g)
{
	for (size_t i = 0; i < g->nmembers; i++)
		dp_buf_msgf(b, "%s%s on %s%s%s", i ? ", " : "", g->members[i].client_id,
		            g->members[i].host, g->members[i].instance_id ? " as " : "",
		            g->members[i].instance_id ? g->members[i].instance_id : "");
}

/* The moves of a reset, growing. */
struct moves {
	struct dp_sinkoffsets_move *v;
	size_t n, cap;
};

static int
push_move(struct moves *mv, const char *topic, int32_t partition, int64_t to)
{
	if (mv->n == mv->cap) {
		size_t cap = mv->cap ? 2 * mv->cap : 16;
		struct dp_sinkoffsets_move *v = realloc(mv->v, cap * sizeof(*v));
		if (!v) {
			dp_err("out of memory");
			return DP_EX_SOFTWARE;
		}
		mv->v = v;
		mv->cap = cap;
	}
	mv->v[mv->n++] = (struct dp_sinkoffsets_move){ topic, partition, to, -1 };
	return 0;
}

/* A partition's low and high watermark: 0, or a status after saying why. */
static int
reset_watermarks(struct sink *k, const char *topic, int32_t partition, int64_t *lo, int64_t *hi)
{
	int st;

	dp_buf_reset(&k->err);
	st = dp_admin_watermarks(k->admin, topic, partition, (int)k->common.kafka.timeout_ms, lo, hi,
	                         &k->err);
	if (st)
		dp_err("%s", dp_buf_str(&k->err));
	return st;
}

/* TOPIC:PARTITION:OFFSET: a partition the topic has, an offset among its records. */
static int
reset_explicit(struct sink *k, const struct reset_spec *sp, int count, struct moves *mv)
{
	int64_t lo, hi;
	int st;

	if (sp->partition >= count) {
		dp_err("topic '%s' has no partition %d (it has %d: 0-%d)", sp->topic,
		       (int)sp->partition, count, count - 1);
		return DP_EX_NOTFOUND;
	}
	if ((st = reset_watermarks(k, sp->topic, sp->partition, &lo, &hi)) != 0)
		return st;
	if (sp->offset < lo || sp->offset > hi) {
		dp_err("--reset-offsets %s:%d:%" PRId64 ": the partition's offsets go from %" PRId64
		       " to %" PRId64 " (low..high watermark; the high one is where its next record "
		       "goes)", sp->topic, (int)sp->partition, sp->offset, lo, hi);
		return DP_EX_INVALID;
	}
	return push_move(mv, sp->topic, sp->partition, sp->offset);
}

/* Where each partition of the reset goes, into mv: 0 or a status after saying why. */
static int
reset_targets(struct sink *k, struct moves *mv)
{
	int st = 0;

	for (size_t t = 0; t < k->nrtopics && !st; t++) {
		const char *topic = k->rtopics[t];
		int count = k->rcounts[t];
		if (k->reset == RESET_EXPLICIT) {
			for (size_t i = 0; i < k->nspecs && !st; i++)
				if (strcmp(k->specs[i].topic, topic) == 0)
					st = reset_explicit(k, &k->specs[i], count, mv);
			continue;
		}
		for (int32_t p = 0; p < count && !st; p++) {
			int64_t lo, hi;
			if ((st = reset_watermarks(k, topic, p, &lo, &hi)) == 0)
				st = push_move(mv, topic, p, k->reset == RESET_EARLIEST ? lo : hi);
		}
		/* Rows of partitions the topic does not have (any more) go. */
		for (size_t i = 0; i < k->nstored && !st; i++)
			if (strcmp(k->stored[i].topic, topic) == 0 && k->stored[i].partition >= count)
				st = push_move(mv, topic, k->stored[i].partition, -1);
	}
	return st;
}

struct reset_commit {
	struct sink *k;
	rd_kafka_topic_partition_list_t *l;
};

/* Inside the transaction, the new offsets in place: the group's in Kafka too. */
static int
reset_commit_kafka(void *arg, struct dp_buf *err)
{
	struct reset_commit *rc = arg;

	return dp_admin_commit_offsets(rc->k->admin, rc->k->group, rc->l,
	                               (int)rc->k->common.kafka.timeout_ms, err);
}

/* connecting -> moving: no member may run; then the offsets move, in one transaction. */
static int
act_reset_move(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;
	struct dp_admin_group g;
	struct moves mv = { NULL, 0, 0 };
	int st;

	dp_buf_reset(&k->err);
	st = dp_admin_describe_group(k->admin, k->group, (int)k->common.kafka.timeout_ms, &g, &k->err);
	if (st) {
		dp_err("%s", dp_buf_str(&k->err));
		dp_admin_group_clear(&g);
		dp_fsm_fail(m, st);
		return RE_REFUSED;
	}
	if (g.nmembers) {
		dp_buf_reset(&k->why);
		say_members(&k->why, &g);
		dp_err("group '%s' has %zu member%s running (%s): stop %s first, or %s would go "
		       "on from where %s and write the old offsets back", k->group, g.nmembers,
		       g.nmembers == 1 ? "" : "s", dp_buf_str(&k->why),
		       g.nmembers == 1 ? "it" : "them", g.nmembers == 1 ? "it" : "they",
		       g.nmembers == 1 ? "it is" : "they are");
		dp_admin_group_clear(&g);
		dp_fsm_fail(m, DP_EX_TEMPFAIL);
		return RE_REFUSED;
	}
	dp_admin_group_clear(&g);
	if ((st = reset_targets(k, &mv)) != 0) {
		free(mv.v);
		dp_fsm_fail(m, st);
		return RE_REFUSED;
	}
	struct dp_sinkoffsets_move *v = mv.v;
	size_t n = mv.n;
	struct reset_commit rc = { k, rd_kafka_topic_partition_list_new((int)(n ? n : 1)) };
	for (size_t i = 0; i < n; i++)
		if (v[i].to >= 0)
			rd_kafka_topic_partition_list_add(rc.l, v[i].topic, v[i].partition)->offset =
				v[i].to;
	dp_buf_reset(&k->err);
	st = dp_sinkoffsets_move(k->pg, k->group, v, n, k->common.kafka.timeout_ms, reset_commit_kafka,
	                         &rc, &k->err);
	rd_kafka_topic_partition_list_destroy(rc.l);
	if (st) {
		dp_err("%s; no offset moved", dp_buf_str(&k->err));
		free(v);
		dp_fsm_fail(m, st);
		return RE_REFUSED;
	}
	for (size_t i = 0; i < n; i++) {
		char from[24], to[24];
		snprintf(from, sizeof(from), "%" PRId64, v[i].from);
		snprintf(to, sizeof(to), "%" PRId64, v[i].to);
		if (v[i].from == v[i].to)
			dp_warn("%s [%d]: stored offset of group '%s' stays at %s", v[i].topic,
			        (int)v[i].partition, k->group, to);
		else
			dp_warn("%s [%d]: stored offset of group '%s' moved from %s to %s",
			        v[i].topic, (int)v[i].partition, k->group,
			        v[i].from >= 0 ? from : "none",
			        v[i].to >= 0 ? to : "none (the topic has no such partition)");
	}
	free(v);
	return RE_MOVED;
}

static size_t
choose(void *ctx)
{
	const struct sink *k = ctx;

	return k->reset != RESET_NONE;
}

/* ---- main --------------------------------------------------------------- */

static int
finish(void *ctx, int status)
{
	struct sink *k = ctx;
	struct dp_pgsink_stats st;

	if (!k->sink)
		return status;
	progress(k, true);
	dp_pgsink_stats(k->sink, &st);
	dp_info("wrote %" PRIu64 " rows in %" PRIu64 " batches to %s", st.rows, st.batches, k->table);
	if (k->maps_empty)
		dp_info("--map made no row of %" PRIu64 " record%s", k->maps_empty,
		        k->maps_empty == 1 ? "" : "s");
	dp_on_error_summary(&k->on_error, "record");
	if (status == DP_EX_DATAERR && k->on_error.mode == DP_ON_ERROR_DLQ) {
		dp_err("stopped at a bad record the dead-letter topic '%s' refuses; its batch is "
		       "rolled back, and the next run of group '%s' starts at the stored offsets "
		       "(raise the topic's max.message.bytes, or --on-error skip would go on)",
		       k->on_error.dlq_topic, k->group);
	} else if (status == DP_EX_DATAERR) {
		int64_t at = k->src ? dp_pgsink_stored(k->src) : -1;
		if (k->source_id && at >= 0)
			dp_err("stopped at the bad record; lines up to %" PRId64 " are in %s "
			       "(--on-error skip would go on)", at, k->table);
		else
			dp_err("stopped at the bad record; the %s before it are in %s "
			       "(--on-error skip would go on)", k->from_stdin ? "lines" : "records",
			       k->table);
	}
	return status;
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
	struct dp_pgsink_stats st = { 0 };

	if (k->at_end && status == 0)
		return false;
	if (!k->from_stdin) {
		if (k->sink)
			dp_pgsink_stats(k->sink, &st);
		dp_buf_msgf(said, "%" PRIu64 " row%s committed; the records after the stored "
		            "offsets of group '%s' are not written (its next run resumes there)",
		            st.rows, st.rows == 1 ? "" : "s", k->group);
		return true;
	}
	int64_t done = k->src ? dp_pgsink_committed(k->src) : -1;
	uint64_t read = k->in ? dp_lines_lineno(k->in) : 0;
	uint64_t delivered = done > 0 ? (uint64_t)done : 0;
	long long unread = k->in ? dp_lines_unread(k->in) : -1;
	uint64_t undelivered = read > delivered ? read - delivered : 0;

	/* The whole file was read before the signal, and written. */
	if (unread == 0 && !undelivered && status == 0)
		return false;
	dp_cmd_say_undelivered(said, "line", delivered, undelivered, unread);
	return true;
}

static const struct dp_cmd cmd = {
	.name = "dp-sink-pg",
	.libs = dp_kafka_version,
	.usage = usage,
	.machines = machines,
	.choose = choose,
	.start = E_START,
	.parse = parse_options,
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
		.update = true,
		.batch_rows = 10000,
		.batch_bytes = 4 * 1024 * 1024,
		.linger_ms = 100,
	};

	return dp_cmd_main(&cmd, &k, &k.common, &k.fsm, argc, argv);
}
