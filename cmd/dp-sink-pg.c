/*
 * dp-sink-pg -- JSON records into PostgreSQL rows, exactly once.
 *
 * The platform's fixed-topic consumer: records become rows of one table
 * (a TimescaleDB hypertable when the extension is there), written with
 * binary COPY, each batch in one transaction that also moves the
 * source's stored offset.  This file reads the input, maps records to
 * rows and drives the state machine; the database work is lib/pgsink.c.
 *
 * Input today is --stdin: NDJSON lines, where with --source-id the line
 * number plays the part of a Kafka offset.  The machine and the engine
 * already speak in sources and offsets, so the Kafka input (a consumer
 * group whose partitions are sources, seeking to the stored offsets on
 * assignment, pausing them during an outage) plugs into the same states.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backoff.h"
#include "buf.h"
#include "cli.h"
#include "cmd.h"
#include "exit.h"
#include "expr.h"
#include "fsm.h"
#include "json.h"
#include "lines.h"
#include "log.h"
#include "pg.h"
#include "pgsink.h"
#include "progress.h"
#include "sig.h"
#include "timefmt.h"

#define RETRY_BASE_MS 250
#define RETRY_CAP_MS 30000
#define DRAIN_AFTER_SIGNAL_MS 2000      /* then the batch in flight is rolled back */

struct sink {
	/* options */
	struct dp_common common;
	bool from_stdin;
	const char *source_id;
	const char *db;                 /* --db, else $DP_PG, else NULL */
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
	enum dp_pgsink_on_error on_error;
	uint64_t batch_rows;
	uint64_t batch_bytes;
	int64_t linger_ms;
	uint64_t max_retries;
	bool progress;

	/* resources */
	struct dp_lines *in;
	struct dp_pgsink *sink;
	struct dp_pgsink_src *src;

	/* state */
	const char *line;               /* the line being processed (the reader's) */
	size_t len;
	int line_rc;                    /* DP_LINES_OK, or DP_LINES_LONG: line NULL, len its length */
	bool held;                      /* line not processed yet */
	unsigned long lineno;
	unsigned long skip_to;          /* --source-id: lines up to this one are stored */
	bool draining;                  /* no more input: EOF, signal, or a stop */
	bool stopping;                  /* dp_lines_stop() called */
	int fail;                       /* why the last write or process failed */
	int64_t bad_offset;             /* the bad record (PROCESS_FAILURE) */
	unsigned since_due;             /* lines since dp_pgsink_due() was asked */
	uint64_t maps_empty;            /* records --map turned into no row */
	atomic_ullong bad;              /* bad records reported */
	struct dp_buf err;
	struct dp_buf why;
	struct dp_backoff backoff;
	int64_t sig_ms;                 /* when the drain after a signal began */
	bool said_down;
	struct dp_progress prog;
	struct dp_fsm fsm;
};

/* ---- state machine ---------------------------------------------------- */

/*
 * The seed's fixed-topic consumer (idle, processingMessage, writingToDB,
 * error, with MESSAGE_RECEIVED, PROCESS_SUCCESS/FAILURE, WRITE_SUCCESS/
 * FAILURE and RESET), plus connecting, committing (the final flush),
 * paused, backoff and reconnecting (a database outage).
 */
enum state { S_IDLE, S_CONNECTING, S_PROCESSING, S_WRITING, S_ERROR, S_PAUSED, S_BACKOFF,
             S_RECONNECTING, S_COMMITTING, S_DONE, S_FAILED, NSTATES };
enum event { E_START, E_CONNECTED, E_UNAVAILABLE, E_SIGNAL, E_MESSAGE_RECEIVED, E_WRITE_DUE,
             E_EOF, E_PROCESS_SUCCESS, E_NEED_MORE, E_PROCESS_FAILURE, E_WRITE_SUCCESS,
             E_WRITE_FAILURE, E_RESET, E_STOP, E_OUTAGE, E_FATAL, E_RETRY, E_WAKE, E_GIVE_UP,
             E_RECONNECTED, E_COMMITTED, E_STOPPED, NEVENTS };

static const char *const state_names[NSTATES] = {
	"idle", "connecting", "processing_message", "writing_to_db", "error", "paused",
	"backoff", "reconnecting", "committing", "done", "failed",
};
static const char *const event_names[NEVENTS] = {
	"start", "connected", "unavailable", "signal", "MESSAGE_RECEIVED", "write_due", "eof",
	"PROCESS_SUCCESS", "need_more", "PROCESS_FAILURE", "WRITE_SUCCESS", "WRITE_FAILURE",
	"RESET", "stop", "outage", "fatal", "retry", "wake", "give_up", "reconnected",
	"committed", "stopped",
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

static const struct dp_fsm_row rows[] = {
	/* state           event               next            action */
	{ S_IDLE,          E_START,            S_CONNECTING,   act_connect },
	{ S_CONNECTING,    E_CONNECTED,        S_IDLE,         act_wait },
	{ S_CONNECTING,    E_UNAVAILABLE,      S_FAILED,       NULL },
	{ S_CONNECTING,    E_SIGNAL,           S_DONE,         NULL },
	{ S_IDLE,          E_MESSAGE_RECEIVED, S_PROCESSING,   act_process },
	{ S_IDLE,          E_WRITE_DUE,        S_WRITING,      act_write },
	{ S_IDLE,          E_EOF,              S_COMMITTING,   act_commit },
	{ S_PROCESSING,    E_PROCESS_SUCCESS,  S_WRITING,      act_write },
	{ S_PROCESSING,    E_NEED_MORE,        S_IDLE,         act_wait },
	{ S_PROCESSING,    E_PROCESS_FAILURE,  S_ERROR,        act_error },
	{ S_PROCESSING,    E_WRITE_FAILURE,    S_ERROR,        act_error },
	{ S_WRITING,       E_WRITE_SUCCESS,    S_IDLE,         act_wait },
	{ S_WRITING,       E_WRITE_FAILURE,    S_ERROR,        act_error },
	{ S_ERROR,         E_RESET,            S_IDLE,         act_wait },
	{ S_ERROR,         E_STOP,             S_COMMITTING,   act_commit },
	{ S_ERROR,         E_OUTAGE,           S_PAUSED,       act_pause },
	{ S_ERROR,         E_FATAL,            S_FAILED,       NULL },
	{ S_PAUSED,        E_RETRY,            S_BACKOFF,      act_backoff },
	{ S_BACKOFF,       E_WAKE,             S_RECONNECTING, act_reconnect },
	{ S_BACKOFF,       E_SIGNAL,           S_FAILED,       NULL },
	{ S_BACKOFF,       E_GIVE_UP,          S_FAILED,       NULL },
	{ S_RECONNECTING,  E_RECONNECTED,      S_WRITING,      act_write },
	{ S_RECONNECTING,  E_UNAVAILABLE,      S_BACKOFF,      act_backoff },
	{ S_COMMITTING,    E_COMMITTED,        S_DONE,         NULL },
	{ S_COMMITTING,    E_STOPPED,          S_FAILED,       NULL },
	{ S_COMMITTING,    E_WRITE_FAILURE,    S_ERROR,        act_error },
};
static const struct dp_fsm_final finals[] = { { S_DONE, 0 }, { S_FAILED, DP_FSM_REASON } };

static const struct dp_fsm_def machine = {
	"dp-sink-pg", state_names, NSTATES, event_names, NEVENTS,
	rows, DP_FSM_COUNT(rows), S_IDLE, finals, DP_FSM_COUNT(finals),
};

/* ---- options ---------------------------------------------------------- */

enum {
	OPT_STDIN = DP_OPT_CMD, OPT_SOURCE_ID, OPT_DB, OPT_TABLE, OPT_CREATE, OPT_UNKNOWN_KEYS,
	OPT_TIME_COLUMN, OPT_NUMERIC, OPT_MAP, OPT_UPSERT, OPT_ON_CONFLICT, OPT_HYPERTABLE,
	OPT_CHUNK_INTERVAL, OPT_ON_ERROR, OPT_BATCH_ROWS, OPT_BATCH_BYTES, OPT_LINGER,
	OPT_MAX_RETRIES, OPT_PROGRESS,
};

static const struct option longopts[] = {
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
	{ "batch-rows",     required_argument, NULL, OPT_BATCH_ROWS },
	{ "batch-bytes",    required_argument, NULL, OPT_BATCH_BYTES },
	{ "linger",         required_argument, NULL, OPT_LINGER },
	{ "max-retries",    required_argument, NULL, OPT_MAX_RETRIES },
	{ "progress",       no_argument,       NULL, OPT_PROGRESS },
	{ "timeout",        required_argument, NULL, DP_OPT_TIMEOUT },
	DP_CLI_BASE_LONG,
	{ NULL, 0, NULL, 0 },
};

static void
usage(FILE *fp)
{
	fputs("usage: dp-sink-pg --stdin --table TABLE [options] < records.ndjson\n"
	      "       dp-sink-pg --stdin --source-id NAME [options] < records.ndjson\n"
	      "\n"
	      "Write JSON records as rows of a PostgreSQL table, exactly once: each batch is\n"
	      "one COPY in one transaction that also stores how far the input is written.\n"
	      "\n"
	      "Input:\n"
	      "      --stdin               read NDJSON from standard input\n"
	      "      --source-id NAME      store the line number under NAME, so that a rerun\n"
	      "                            resumes after the last line written\n"
	      "\n"
	      "Database:\n"
	      "      --db CONNINFO         libpq conninfo or URI (default $DP_PG, else libpq's\n"
	      "                            defaults: PG* variables, ~/.pgpass)\n"
	      "      --table NAME          table, schema.name allowed (default: --source-id)\n"
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
	      "      --chunk-interval DURATION  hypertable chunk size (default TimescaleDB's)\n"
	      "      --timeout DURATION    give up connecting after this (default 10s)\n"
	      "      --max-retries N       reconnect attempts after losing the database\n"
	      "                            (default 0: for ever)\n"
	      "\n"
	      "Batching and errors:\n"
	      "      --batch-rows N        rows per batch (default 10000)\n"
	      "      --batch-bytes SIZE    encoded bytes per batch (default 4M)\n"
	      "      --linger DURATION     send a batch when its first row is this old\n"
	      "                            (default 100ms)\n"
	      "      --on-error MODE       a bad record: fail (default: stop there, exit 65)\n"
	      "                            or skip (report it, go on)\n"
	      "      --progress            rows/s and batch latency on stderr every second\n", fp);
	dp_cli_help_common(fp, false);
	fputs("\nExit status: 0 ok, 64 usage, 65 bad record (--on-error fail), 69 database\n"
	      "unreachable, 74 cannot read input, 75 rows not committed, 77 permission denied,\n"
	      "78 table and options disagree, 81 no such table.  See dp-sink-pg(1).\n", fp);
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

static int
parse_options(void *ctx, int argc, char **argv)
{
	static const char *const unknown_names[] = { "bad", "add", "extra", NULL };
	static const char *const conflict_names[] = { "nothing", "update", NULL };
	static const char *const hyper_names[] = { "auto", "on", "off", NULL };
	static const char *const error_names[] = { "fail", "skip", NULL };
	struct sink *k = ctx;
	uint64_t n;
	int opt, v;

	while ((opt = getopt_long(argc, argv, DP_CLI_BASE_SHORT, longopts, NULL)) != -1) {
		switch (opt) {
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
		case OPT_DB:
			k->db = optarg;
			k->db_from = "--db";
			break;
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
			if (pick("--on-error", optarg, error_names, &v) < 0)
				return -1;
			k->on_error = v == 0 ? DP_PGSINK_FAIL : DP_PGSINK_SKIP;
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
		case '?':
			dp_cli_bad_option(argv);
			return -1;
		default:
			if (dp_cli_common(&k->common, opt, optarg) != 1)
				return -1;
		}
	}
	if (optind < argc) {
		dp_err("unexpected argument '%s'", argv[optind]);
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
		const char **v = realloc(k->keys, (k->nkeys + 1) * sizeof(*v));
		if (!v) {
			dp_err("out of memory");
			return -1;
		}
		k->keys = v;
		k->keys[k->nkeys++] = p;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

static int
validate(void *ctx)
{
	struct sink *k = ctx;

	if (!k->from_stdin) {
		dp_err("no input: give --stdin (reading Kafka topics is not available yet)");
		return -1;
	}
	if (!k->table)
		k->table = k->source_id;
	if (!k->table) {
		dp_err("--stdin needs --table (or --source-id, which then names the table)");
		return -1;
	}
	if (!*k->table || k->table[0] == '.' || k->table[strlen(k->table) - 1] == '.') {
		dp_err("invalid --table '%s': expected NAME or SCHEMA.NAME", k->table);
		return -1;
	}
	if (k->on_conflict_given && !k->keys_arg) {
		dp_err("--on-conflict needs --upsert");
		return -1;
	}
	if (k->keys_arg && split_keys(k) < 0)
		return -1;
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
	if (k->map_src && !(k->map = dp_expr_compile(k->map_src, &err))) {
		dp_err("invalid --map: %s", dp_buf_str(&err));
		dp_buf_free(&err);
		return -1;
	}
	dp_buf_free(&err);
	return 0;
}

/* ---- reporting -------------------------------------------------------- */

/* on_bad: every bad record, with its line; from a writer thread too. */
static void
report_bad(void *arg, const struct dp_pgsink_src *src, int64_t offset, const char *reason)
{
	struct sink *k = arg;

	atomic_fetch_add(&k->bad, 1);
	if (k->source_id)
		dp_err("line %" PRId64 " of %s: %s", offset + 1, dp_pgsink_src_label(src), reason);
	else
		dp_err("line %" PRId64 ": %s", offset + 1, reason);
}

static void
progress(struct sink *k, bool final)
{
	struct dp_pgsink_stats st;
	char extra[96];

	if (!k->sink)
		return;
	dp_pgsink_stats(k->sink, &st);
	snprintf(extra, sizeof(extra), "batch latency %" PRId64 " ms", st.latency_ms);
	dp_progress_tick(&k->prog, "rows", st.rows, extra, final);
}

/* ---- resources ---------------------------------------------------------- */

/* The reader's idle hook: stop waiting for input when the database side needs us. */
static int
reader_idle(void *ctx)
{
	struct sink *k = ctx;

	if (k->progress)
		progress(k, false);
	return dp_sig_stop || (k->sink && dp_pgsink_due(k->sink));
}

static int
open_sink(void *ctx)
{
	struct sink *k = ctx;

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
	dp_lines_free(k->in);
	dp_expr_free(k->map);
	free(k->keys);
	dp_buf_free(&k->err);
	dp_buf_free(&k->why);
}

/* ---- actions -------------------------------------------------------------- */

static int
act_connect(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;
	struct dp_pgsink_config cfg = {
		.conninfo = k->db, .app = "dp-sink-pg", .table = k->table, .create = k->create,
		.unknown = k->unknown, .extra_column = "extra", .time_column = k->time_column,
		.numeric = k->numeric, .keys = k->keys, .nkeys = k->nkeys, .update = k->update,
		.hypertable = k->hypertable, .chunk_ms = k->chunk_ms, .writers = 1,
		.batch_rows = k->batch_rows, .batch_bytes = k->batch_bytes,
		.linger_ms = k->linger_ms, .on_error = k->on_error,
		.timeout_ms = k->common.timeout_ms, .on_bad = report_bad, .arg = k,
	};
	int status;

	dp_buf_reset(&k->err);
	status = dp_pgsink_open(&k->sink, &cfg, &k->err);
	if (status == 0) {
		k->src = dp_pgsink_source(k->sink, "", k->source_id ? k->source_id : "stdin", -1,
		                          k->source_id != NULL, &k->err, &status);
	}
	if (status) {
		if (dp_sig_stop)
			return E_SIGNAL;
		dp_err("%s", dp_buf_str(&k->err));
		dp_fsm_fail(m, status);
		return E_UNAVAILABLE;
	}
	int64_t stored = dp_pgsink_stored(k->src);
	if (stored > 0) {
		k->skip_to = (unsigned long)stored;
		dp_info("%s: lines up to %" PRId64 " are written already; resuming after them",
		        dp_pgsink_src_label(k->src), stored);
	}
	return E_CONNECTED;
}

/* Read the next line to process.  A line before the stored offset is passed over. */
static int
act_wait(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	if (k->held)
		return E_MESSAGE_RECEIVED;
	if (k->draining)
		return E_EOF;
	for (;;) {
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

struct map_ctx {
	struct sink *k;
	int64_t offset;
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
		report_bad(k, k->src, mc->offset, dp_buf_str(&k->why));
		mc->rc = DP_PGSINK_BAD;
		return 1;
	}
	dp_buf_reset(&k->err);
	mc->rc = dp_pgsink_add(k->sink, k->src, mc->offset, json, len, &k->err);
	return mc->rc != 0;
}

/* One record: its rows into the batch.  0, DP_PGSINK_BAD (reported), or a failure. */
static int
process_line(struct sink *k)
{
	int64_t offset = (int64_t)k->lineno - 1;
	const char *why;
	size_t off;
	enum dp_json_type t;

	dp_buf_reset(&k->why);
	if (k->line_rc == DP_LINES_LONG) {
		/* not kept by the reader: it could not go into a batch anyway */
		dp_buf_msgf(&k->why, "a line of %zu bytes, longer than --batch-bytes (%" PRIu64 ")",
		            k->len, k->batch_bytes);
		report_bad(k, k->src, offset, dp_buf_str(&k->why));
		return DP_PGSINK_BAD;
	}
	if (k->len == 0 || strspn(k->line, " \t") == k->len)
		return 0;       /* an empty line: no record, but its number counts */
	if (!k->map) {
		/* The engine checks the JSON while it encodes the row. */
		dp_buf_reset(&k->err);
		return dp_pgsink_add(k->sink, k->src, offset, k->line, k->len, &k->err);
	}
	t = dp_json_check(k->line, k->len, &why, &off);
	if (t == DP_JSON_INVALID) {
		dp_buf_msgf(&k->why, "not JSON: %s at byte %zu", why, off + 1);
		report_bad(k, k->src, offset, dp_buf_str(&k->why));
		return DP_PGSINK_BAD;
	}
	struct dp_expr_rec rec = DP_EXPR_REC(k->line, k->len);
	struct map_ctx mc = { k, offset, 0, 0 };
	dp_buf_reset(&k->err);
	int rc = dp_expr_each(k->map, &rec, add_mapped, &mc, &k->err);
	dp_expr_rec_clear(&rec);
	if (rc < 0) {
		dp_buf_msgf(&k->why, "--map: %s", dp_buf_str(&k->err));
		report_bad(k, k->src, offset, dp_buf_str(&k->why));
		return DP_PGSINK_BAD;
	}
	if (rc == 0 && mc.rows == 0)
		k->maps_empty++;
	return mc.rc;
}

/*
 * The line in hand and every complete line already buffered, until the
 * batch is full or due: the per-record loop stays inside this state.
 */
static int
act_process(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	(void)m;
	for (;;) {
		int rc = process_line(k);
		if (rc == DP_PGSINK_BAD) {
			k->held = false;
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

/* Hand batches to the writer; wait for room when the batch is full. */
static int
act_write(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	(void)m;
	for (;;) {
		dp_buf_reset(&k->err);
		int rc = dp_pgsink_write(k->sink, k->draining, &k->err);
		if (k->progress)
			progress(k, false);
		if (rc) {
			k->fail = rc;
			return E_WRITE_FAILURE;
		}
		if (k->draining || dp_pgsink_room(k->sink, k->src))
			return E_WRITE_SUCCESS;
		dp_pgsink_wait(k->sink, 100);
	}
}

/* A bad record, a stop, an outage or something worse: decide. */
static int
act_error(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	switch (k->fail) {
	case 0:         /* a bad record from processing */
		if (k->on_error == DP_PGSINK_SKIP) {
			dp_pgsink_done(k->sink, k->src, k->bad_offset + 1);
			return E_RESET;
		}
		/* fail: what came before it is committed, nothing after */
		dp_info("stopping at line %" PRId64 " (--on-error fail)", k->bad_offset + 1);
		k->draining = true;
		dp_fsm_fail(m, DP_EX_DATAERR);
		return E_STOP;
	case DP_PGSINK_STOPPED:
		k->fail = 0;
		k->draining = true;
		dp_fsm_fail(m, DP_EX_DATAERR);
		return E_STOP;
	case DP_PGSINK_DOWN:
		return E_OUTAGE;
	default:
		dp_err("%s", dp_buf_str(&k->err));
		dp_fsm_fail(m, k->fail > 0 ? k->fail : DP_EX_SOFTWARE);
		return E_FATAL;
	}
}

/* The input waits while the database is away (a Kafka input pauses its partitions here). */
static int
act_pause(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	(void)m;
	if (!k->said_down) {
		dp_warn("lost the database (%s); reconnecting%s", dp_buf_str(&k->err),
		        k->max_retries ? "" : " until it is back");
		k->said_down = true;
	}
	return E_RETRY;
}

static int
act_backoff(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;

	if (k->max_retries && k->backoff.attempts >= k->max_retries) {
		dp_err("gave up on the database after %" PRIu64 " retries: %s", k->max_retries,
		       dp_buf_str(&k->err));
		dp_fsm_fail(m, DP_EX_UNAVAILABLE);
		return E_GIVE_UP;
	}
	int64_t ms = dp_backoff_next(&k->backoff, 0);
	dp_info("retry %u in %" PRId64 " ms", k->backoff.attempts, ms);
	if (dp_backoff_sleep(ms, &dp_sig_stop) < 0 || dp_sig_stop) {
		int64_t stored = dp_pgsink_stored(k->src);
		dp_err("stopped while the database was away: lines after %" PRId64 " are not "
		       "written%s", stored > 0 ? stored : 0,
		       k->source_id ? " (a rerun with the same --source-id resumes there)" : "");
		dp_fsm_fail(m, DP_EX_TEMPFAIL);
		return E_SIGNAL;
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
	dp_warn("reconnected to the database after %u retr%s", k->backoff.attempts,
	        k->backoff.attempts == 1 ? "y" : "ies");
	dp_backoff_reset(&k->backoff);
	k->said_down = false;
	return E_RECONNECTED;
}

/* No more input: write what is left and wait for it to commit. */
static int
act_commit(struct dp_fsm *m, void *ctx)
{
	struct sink *k = ctx;
	bool cancelled = false;

	k->draining = true;
	for (;;) {
		dp_buf_reset(&k->err);
		int rc = dp_pgsink_write(k->sink, true, &k->err);
		if (k->progress)
			progress(k, false);
		if (rc) {
			k->fail = rc;
			return E_WRITE_FAILURE;
		}
		if (dp_pgsink_idle(k->sink))
			return m->reason ? E_STOPPED : E_COMMITTED;
		if (dp_sig_stop && !cancelled) {
			int64_t now = dp_time_mono_ms();
			if (!k->sig_ms)
				k->sig_ms = now;
			if (now - k->sig_ms > DRAIN_AFTER_SIGNAL_MS) {
				dp_warn("the batch in flight did not commit within %d ms of the "
				        "signal: rolling it back", DRAIN_AFTER_SIGNAL_MS);
				dp_pgsink_cancel(k->sink);
				cancelled = true;
			}
		} else if (cancelled && dp_time_mono_ms() - k->sig_ms > 2 * DRAIN_AFTER_SIGNAL_MS) {
			/* A cancel the server did not act on: stop waiting for it. */
			dp_buf_reset(&k->err);
			dp_buf_msgf(&k->err, "the last batch did not roll back either; its rows "
			            "are not committed");
			k->fail = DP_EX_TEMPFAIL;
			return E_WRITE_FAILURE;
		}
		dp_pgsink_wait(k->sink, 100);
	}
}

/* ---- main --------------------------------------------------------------- */

static int
finish(void *ctx, int status)
{
	struct sink *k = ctx;
	struct dp_pgsink_stats st;

	if (!k->sink)
		return status;
	if (k->progress)
		progress(k, true);
	dp_pgsink_stats(k->sink, &st);
	unsigned long long bad = atomic_load(&k->bad);
	dp_info("wrote %" PRIu64 " rows in %" PRIu64 " batches to %s", st.rows, st.batches, k->table);
	if (k->maps_empty)
		dp_info("--map made no row of %" PRIu64 " record%s", k->maps_empty,
		        k->maps_empty == 1 ? "" : "s");
	if (bad && k->on_error == DP_PGSINK_SKIP)
		dp_warn("skipped %llu bad record%s (reported above)", bad, bad == 1 ? "" : "s");
	if (status == DP_EX_DATAERR) {
		int64_t at = k->src ? dp_pgsink_stored(k->src) : -1;
		if (k->source_id && at >= 0)
			dp_err("stopped at the bad record; lines up to %" PRId64 " are in %s "
			       "(--on-error skip would go on)", at, k->table);
		else
			dp_err("stopped at the bad record; the lines before it are in %s "
			       "(--on-error skip would go on)", k->table);
	}
	return status;
}

static const struct dp_cmd cmd = {
	.name = "dp-sink-pg",
	.usage = usage,
	.machine = &machine,
	.start = E_START,
	.parse = parse_options,
	.validate = validate,
	.open = open_sink,
	.finish = finish,
	.close = close_sink,
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
