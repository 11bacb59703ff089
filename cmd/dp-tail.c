/*
 * dp-tail -- Kafka records to NDJSON on stdout.
 *
 * A thin command on lib/kafka/consumer.h: the engine reads the partitions and
 * decides where each starts and stops; dp-tail turns records into lines.
 * Its commit hook is "flush stdout", so with -g an offset is stored only
 * after the lines of its record reached the reader: a reader sees every
 * record at least once across restarts.
 *
 * With --follow and --follow-match it is the seed's consumer of dynamic
 * topics: it follows the registry (dyn/registry.h) and adds each topic to
 * the engine once the coordinator made it active, reads it from its
 * beginning, and reads a retired one up to its end, then drops it.  A
 * topic is known by its name and the created_at of its spec (librdkafka
 * 2.0 gives no topic ids): a name deleted and made again is a new topic,
 * read from its beginning once what the old one still held is said.
 */
#include <errno.h>
#include <getopt.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "core/backoff.h"
#include "core/buf.h"
#include "core/cli.h"
#include "core/exit.h"
#include "core/frame.h"
#include "core/fsm.h"
#include "core/lines.h"
#include "core/log.h"
#include "core/out.h"
#include "core/progress.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "dyn/registry.h"
#include "jq/expr.h"
#include "json/base64.h"
#include "json/envelope.h"
#include "json/scan.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "kafka/consumer.h"

enum non_json { NJ_ERROR, NJ_SKIP, NJ_STRING, NJ_BASE64 };

/* Why a followed topic is read no more. */
enum fin { FIN_NO, FIN_END, FIN_GONE };

/* A dynamic topic followed: named by --follow, or found by --follow-match. */
struct followed {
	char *topic;
	bool named;              /* --follow NAME: once finished, for good */
	bool reading;            /* added to the consumer */
	bool ending;             /* retired or deleted: read up to its end, then drop */
	bool finished;           /* read to its end, or gone: see fin */
	enum fin fin;            /* read to its end (retired, or -e), or deleted before */
	bool has_id;             /* id is known: the topic was read */
	int64_t id;              /* the created_at of the topic read (or last read) */
	int64_t *resume;         /* FIN_END: where each partition stopped; owned */
	int32_t nresume;
	bool resuming;           /* taken back: its partitions go on at resume[] */
};

struct tail {
	struct dp_common common;
	struct dp_fsm fsm;

	/* options */
	const char **topics;
	size_t ntopics;
	int32_t *partitions;     /* -p */
	size_t npartitions;
	bool regex;
	const char *group;
	enum dp_from from;
	int64_t from_arg;
	enum dp_until until;
	int64_t until_ms;
	uint64_t count;          /* -n; 0 = unlimited */
	bool envelope;
	bool raw;                /* -r: strings without quotes, as jq -r */
	bool progress;
	struct dp_expr *filter;
	enum non_json non_json;
	const char *registry;    /* --registry */
	struct dp_expr *follow_match;
	bool following;          /* --follow or --follow-match */

	/* resources */
	struct dp_consumer *c;
	struct dp_registry *reg;
	struct followed *fl;
	size_t nfl;
	struct dp_backoff backoff;
	struct dp_buf line;      /* one record's JSON */
	struct dp_buf text;      /* -r: a string's decoded contents */
	struct dp_buf err;

	/* state */
	uint64_t consumed;
	uint64_t printed;
	uint64_t skipped;
	int halt;                /* the event that made a hook stop the consumer */
	bool at_end;             /* -e, --until or -n reached */
	struct dp_consumer_part **moved;   /* the partitions of a rebalance event */
	size_t nmoved;
	struct dp_progress prog;
	bool prog_started;
	int64_t reg_polled;      /* when the registry was last polled (monotonic ms) */
	bool reg_changed;        /* it changed since the last survey */
	int reg_event;           /* what that poll brought while processing (signal, fatal) */
};

/* ---- state machine ---------------------------------------------------- */

/*
 * The seed's consumer of dynamic topics (idle, subscribing, consuming,
 * processingMessage, error) around the engine's connect and close.  A
 * reader of fixed topics goes from connecting straight to consuming.
 * consuming polls; each poll that handed records over passes through
 * processingMessage, which takes stock of them (progress, finished
 * topics) before the next poll.
 */
enum state { S_IDLE, S_CONNECTING, S_SUBSCRIBING, S_CONSUMING, S_PROCESSING, S_ERROR,
             S_CLOSING, S_DONE, S_FAILED, NSTATES };
enum event { E_START, E_CONNECTED, E_BAD_CONFIG, E_UNREACHABLE, E_SIGNAL, E_ASSIGNED,
             E_REVOKED, E_END, E_COUNT, E_PIPE_CLOSED, E_BAD_RECORD, E_FATAL, E_CLOSED,
             E_COMMIT_FAILED, E_FAILED, E_SUBSCRIBE, E_SUBSCRIBED, E_SUBSCRIBE_FAILED,
             E_MESSAGE, E_PROCESSED, E_RESET, NEVENTS };

static const char *const state_names[NSTATES] = {
	"idle", "connecting", "subscribing", "consuming", "processingMessage", "error",
	"closing", "done", "failed",
};
static const char *const event_names[NEVENTS] = {
	"start", "connected", "bad_config", "unreachable", "signal", "assigned",
	"revoked", "end", "count", "pipe_closed", "bad_record", "fatal", "closed",
	"commit_failed", "failed", "SUBSCRIBE_TO_TOPIC", "SUBSCRIBE_SUCCESS",
	"SUBSCRIBE_FAILURE", "MESSAGE_RECEIVED", "PROCESS_SUCCESS", "RESET",
};

static int act_connect(struct dp_fsm *m, void *ctx);
static int act_subscribe(struct dp_fsm *m, void *ctx);
static int act_consume(struct dp_fsm *m, void *ctx);
static int act_process(struct dp_fsm *m, void *ctx);
static int act_error(struct dp_fsm *m, void *ctx);
static int act_assigned(struct dp_fsm *m, void *ctx);
static int act_revoked(struct dp_fsm *m, void *ctx);
static int act_close(struct dp_fsm *m, void *ctx);

static const struct dp_fsm_row rows[] = {
	/* state          event               next           action */
	{ S_IDLE,        E_START,            S_CONNECTING,  act_connect },
	{ S_CONNECTING,  E_CONNECTED,        S_CONSUMING,   act_consume },
	{ S_CONNECTING,  E_SUBSCRIBE,        S_SUBSCRIBING, act_subscribe },
	{ S_CONNECTING,  E_BAD_CONFIG,       S_FAILED,      NULL },
	{ S_CONNECTING,  E_UNREACHABLE,      S_FAILED,      NULL },
	{ S_CONNECTING,  E_SIGNAL,           S_DONE,        NULL },
	/* --follow, --follow-match: wait for a topic to be active, then add it. */
	{ S_SUBSCRIBING, E_SUBSCRIBED,       S_CONSUMING,   act_consume },
	{ S_SUBSCRIBING, E_SUBSCRIBE_FAILED, S_ERROR,       act_error },
	{ S_SUBSCRIBING, E_SIGNAL,           S_CLOSING,     act_close },
	{ S_SUBSCRIBING, E_PIPE_CLOSED,      S_CLOSING,     act_close },
	{ S_SUBSCRIBING, E_FATAL,            S_CLOSING,     act_close },
	{ S_ERROR,       E_RESET,            S_SUBSCRIBING, act_subscribe },
	{ S_ERROR,       E_SIGNAL,           S_CLOSING,     act_close },
	{ S_CONSUMING,   E_MESSAGE,          S_PROCESSING,  act_process },
	{ S_PROCESSING,  E_PROCESSED,        S_CONSUMING,   act_consume },
	{ S_CONSUMING,   E_SUBSCRIBE,        S_SUBSCRIBING, act_subscribe },
	/* From the consumer's hooks, while act_consume polls: */
	{ S_CONSUMING,   E_ASSIGNED,         DP_FSM_SAME,   act_assigned },
	{ S_CONSUMING,   E_REVOKED,          DP_FSM_SAME,   act_revoked },
	{ S_CONSUMING,   E_END,              S_CLOSING,     act_close },
	{ S_CONSUMING,   E_COUNT,            S_CLOSING,     act_close },
	{ S_CONSUMING,   E_SIGNAL,           S_CLOSING,     act_close },
	{ S_CONSUMING,   E_PIPE_CLOSED,      S_CLOSING,     act_close },
	{ S_CONSUMING,   E_BAD_RECORD,       S_CLOSING,     act_close },
	{ S_CONSUMING,   E_FATAL,            S_CLOSING,     act_close },
	/* Leaving the group revokes, inside act_close: */
	{ S_CLOSING,     E_REVOKED,          DP_FSM_SAME,   act_revoked },
	{ S_CLOSING,     E_CLOSED,           S_DONE,        NULL },
	{ S_CLOSING,     E_COMMIT_FAILED,    S_FAILED,      NULL },
	{ S_CLOSING,     E_FAILED,           S_FAILED,      NULL },
};
static const struct dp_fsm_final finals[] = { { S_DONE, 0 }, { S_FAILED, DP_FSM_REASON } };

static const struct dp_fsm_def machine = {
	"dp-tail", state_names, NSTATES, event_names, NEVENTS,
	rows, DP_FSM_COUNT(rows), S_IDLE, finals, DP_FSM_COUNT(finals),
};

/* ---- options ---------------------------------------------------------- */

enum { OPT_FROM = DP_OPT_CMD, OPT_UNTIL, OPT_ENVELOPE, OPT_FILTER, OPT_NON_JSON,
       OPT_PROGRESS, OPT_FOLLOW, OPT_FOLLOW_MATCH, OPT_REGISTRY };

static const struct option longopts[] = {
	{ "topic",      required_argument, NULL, 't' },
	{ "partition",  required_argument, NULL, 'p' },
	{ "group",      required_argument, NULL, 'g' },
	{ "from",       required_argument, NULL, OPT_FROM },
	{ "until",      required_argument, NULL, OPT_UNTIL },
	{ "count",      required_argument, NULL, 'n' },
	{ "exit",       no_argument,       NULL, 'e' },
	{ "envelope",   no_argument,       NULL, OPT_ENVELOPE },
	{ "raw-output", no_argument,       NULL, 'r' },
	{ "filter",     required_argument, NULL, OPT_FILTER },
	{ "non-json",   required_argument, NULL, OPT_NON_JSON },
	{ "progress",   no_argument,       NULL, OPT_PROGRESS },
	{ "follow",     required_argument, NULL, OPT_FOLLOW },
	{ "follow-match", required_argument, NULL, OPT_FOLLOW_MATCH },
	{ "registry",   required_argument, NULL, OPT_REGISTRY },
	DP_CLI_KAFKA_LONG,
	DP_CLI_BASE_LONG,
	{ NULL, 0, NULL, 0 },
};

static void
usage(FILE *fp)
{
	fputs("usage: dp-tail -t TOPIC [-t TOPIC ...] [-p N ...] [-g GROUP] [options]\n"
	      "       dp-tail --follow NAME [--follow NAME ...] [--follow-match JQ] [options]\n"
	      "\n"
	      "Consume Kafka records and print them as NDJSON on stdout.\n"
	      "\n"
	      "Subscribing:\n"
	      "  -t, --topic TOPIC       topic to read; repeatable; '^regex' subscribes\n"
	      "                          to every matching topic, including later ones\n"
	      "  -p, --partition N       read only partition N of each topic; repeatable\n"
	      "                          (not with -g)\n"
	      "  -g, --group GROUP       join consumer group GROUP and commit offsets after\n"
	      "                          the lines are flushed (without -g nothing is committed)\n"
	      "\n"
	      "Dynamic topics (see dp-coord(1)):\n"
	      "      --follow NAME       wait until dynamic topic NAME is active, read it from\n"
	      "                          its beginning; ends once it is retired and read to\n"
	      "                          its end (or at its end with -e); repeatable\n"
	      "      --follow-match JQ   read every active dynamic topic whose spec matches,\n"
	      "                          adding new ones as they come, until a signal\n"
	      "      --registry TOPIC    the registry (default $DP_REGISTRY, else dp.registry)\n"
	      "\n"
	      "Where to start and stop:\n"
	      "      --from WHERE        beginning, end, stored, -N (last N per partition),\n"
	      "                          N (offset), or @TIME (RFC 3339, epoch ms, or -1h);\n"
	      "                          default: end, stored with -g, beginning with --follow\n"
	      "      --until WHEN        end (offsets as they were at start) or @TIME\n"
	      "  -n, --count N           stop after printing N records\n"
	      "  -e, --exit              same as --until end\n"
	      "\n"
	      "Output:\n"
	      "      --envelope          print topic, partition, offset, timestamp, key,\n"
	      "                          headers and value (lossless; see dp-tail(1))\n"
	      "      --filter JQ         transform each value (or envelope); select() drops\n"
	      "  -r, --raw-output        print a value that is a JSON string as its text,\n"
	      "                          without quotes (as jq -r); others stay JSON\n"
	      "      --non-json MODE     values that are not JSON: error (default), skip,\n"
	      "                          string, base64\n"
	      "      --progress          print rate and totals on stderr every second\n", fp);
	dp_cli_help_common(fp, true);
	fputs("\nExit status: 0 ok, stopped without -e/-n/--until, or the reader left, 64 usage,\n"
	      "65 a value is not JSON or --filter failed, 66 -F unreadable, 69 cluster\n"
	      "unavailable, 70 internal error, 74 stdout error or closed, 75 a commit failed,\n"
	      "77 not authorized, 78 bad configuration, 81 no such topic or partition,\n"
	      "130/143 SIGINT/SIGTERM before -e/-n/--until was reached.  See dp-tail(1).\n", fp);
}

static int
add_topic(struct tail *t, const char *name)
{
	const char **n = realloc(t->topics, (t->ntopics + 1) * sizeof(*n));

	if (!n) {
		dp_err("out of memory");
		return -1;
	}
	t->topics = n;
	t->topics[t->ntopics++] = name;
	if (name[0] == '^')
		t->regex = true;
	return 0;
}

static int
add_partition(struct tail *t, const char *s)
{
	uint64_t v;
	int32_t *n;

	if (dp_parse_u64("--partition", s, 0, INT32_MAX, &v) < 0)
		return -1;
	if (!(n = realloc(t->partitions, (t->npartitions + 1) * sizeof(*n)))) {
		dp_err("out of memory");
		return -1;
	}
	t->partitions = n;
	t->partitions[t->npartitions++] = (int32_t)v;
	return 0;
}

/* A followed topic; NULL when out of memory (said). */
static struct followed *
add_followed(struct tail *t, const char *name, bool named)
{
	struct followed *v = realloc(t->fl, (t->nfl + 1) * sizeof(*v));

	if (!v) {
		dp_err("out of memory");
		return NULL;
	}
	t->fl = v;
	v = &v[t->nfl];
	memset(v, 0, sizeof(*v));
	v->named = named;
	if (!(v->topic = strdup(name))) {
		dp_err("out of memory");
		return NULL;
	}
	t->nfl++;
	return v;
}

static int
parse_options(void *ctx, int argc, char **argv)
{
	struct tail *t = ctx;
	const char *shortopts = "t:p:g:n:er" DP_CLI_KAFKA_SHORT DP_CLI_BASE_SHORT;
	struct dp_buf err = DP_BUF_INIT;
	const char *e;
	bool from_given = false;
	int opt;

	t->registry = (e = getenv("DP_REGISTRY")) && *e ? e : DP_REGISTRY_DEFAULT;
	while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (add_topic(t, optarg) < 0)
				return -1;
			break;
		case 'p':
			if (add_partition(t, optarg) < 0)
				return -1;
			break;
		case 'g':
			t->group = optarg;
			break;
		case OPT_FROM:
			if (dp_consumer_parse_from(optarg, &t->from, &t->from_arg) < 0)
				return -1;
			from_given = true;
			break;
		case OPT_UNTIL:
			if (dp_consumer_parse_until(optarg, &t->until, &t->until_ms) < 0)
				return -1;
			break;
		case 'e':
			t->until = DP_UNTIL_END;
			break;
		case 'n':
			if (dp_parse_u64("--count", optarg, 1, UINT64_MAX, &t->count) < 0)
				return -1;
			break;
		case OPT_ENVELOPE:
			t->envelope = true;
			break;
		case 'r':
			t->raw = true;
			break;
		case OPT_PROGRESS:
			t->progress = true;
			break;
		case OPT_FOLLOW:
			if (!add_followed(t, optarg, true))
				return -1;
			break;
		case OPT_FOLLOW_MATCH:
			dp_expr_free(t->follow_match);
			t->follow_match = dp_expr_compile(optarg, &err);
			if (!t->follow_match) {
				dp_err("invalid --follow-match: %s", dp_buf_str(&err));
				dp_buf_free(&err);
				return -1;
			}
			break;
		case OPT_REGISTRY:
			t->registry = optarg;
			break;
		case OPT_FILTER:
			dp_expr_free(t->filter);        /* the last one given wins */
			t->filter = dp_expr_compile(optarg, &err);
			if (!t->filter) {
				dp_err("invalid --filter: %s", dp_buf_str(&err));
				dp_buf_free(&err);
				return -1;
			}
			break;
		case OPT_NON_JSON:
			if (strcmp(optarg, "error") == 0)
				t->non_json = NJ_ERROR;
			else if (strcmp(optarg, "skip") == 0)
				t->non_json = NJ_SKIP;
			else if (strcmp(optarg, "string") == 0)
				t->non_json = NJ_STRING;
			else if (strcmp(optarg, "base64") == 0)
				t->non_json = NJ_BASE64;
			else {
				dp_err("invalid --non-json '%s': expected error, skip, string or base64",
				       optarg);
				return -1;
			}
			break;
		case '?':
			dp_cli_bad_option(argv);
			return -1;
		default:
			if (dp_cli_common(&t->common, opt, optarg) != 1)
				return -1;
		}
	}
	if (optind < argc) {
		dp_err("unexpected argument '%s' (name topics with -t)", argv[optind]);
		return -1;
	}
	t->following = t->nfl || t->follow_match;
	/* A dynamic topic holds only what was routed to it once it was active. */
	if (t->following && !from_given)
		t->from = DP_FROM_BEGINNING;
	return 0;
}

static int
validate(void *ctx)
{
	struct tail *t = ctx;

	if (t->following) {
		if (t->ntopics || t->npartitions || t->group) {
			dp_err("--follow and --follow-match read dynamic topics without a group: "
			       "-t, -p and -g cannot be used with them");
			return -1;
		}
		if (t->follow_match && t->until != DP_UNTIL_NONE) {
			dp_err("--follow-match follows for ever: -e and --until are for --follow");
			return -1;
		}
		for (size_t i = 0; i < t->nfl; i++) {
			struct dp_buf err = DP_BUF_INIT;
			if (dp_admin_check_name(t->fl[i].topic, &err)) {
				dp_err("invalid --follow '%s': %s", t->fl[i].topic, dp_buf_str(&err));
				dp_buf_free(&err);
				return -1;
			}
		}
		return 0;
	}
	if (t->ntopics == 0) {
		dp_err("no topic: use -t TOPIC, or --follow NAME");
		return -1;
	}
	if (t->from == DP_FROM_STORED && !t->group) {
		dp_err("--from stored needs a consumer group (-g)");
		return -1;
	}
	if (t->npartitions && t->group) {
		dp_err("-p reads partitions directly; a group (-g) assigns them: use one of the two");
		return -1;
	}
	if (t->npartitions && t->regex) {
		dp_err("-p needs named topics, not a ^pattern");
		return -1;
	}
	for (size_t i = 0; i < t->ntopics; i++) {
		regex_t re;
		if (t->topics[i][0] != '^')
			continue;
		if (regcomp(&re, t->topics[i], REG_EXTENDED | REG_NOSUB) != 0) {
			dp_err("invalid topic pattern '%s'", t->topics[i]);
			return -1;
		}
		regfree(&re);
	}
	if (t->envelope && t->non_json != NJ_ERROR) {
		dp_err("--non-json does not apply to --envelope (it carries any bytes)");
		return -1;
	}
	return 0;
}

/* ---- output --------------------------------------------------------------- */

/* Why the reader stopped taking lines: the event, and the reason recorded. */
static int
stdout_stopped(struct tail *t)
{
	struct dp_out *out = t->common.out;

	if (dp_out_closed(out))
		return E_PIPE_CLOSED;
	dp_fsm_fail(&t->fsm, dp_cmd_stdout_failed(dp_out_error(out)));
	return E_FATAL;
}

/* One line to stdout.  1 when -n is reached, -1 when stdout failed. */
static int
emit(void *ctx, const char *json, size_t len)
{
	struct tail *t = ctx;
	struct dp_out *out = t->common.out;

	if (t->count && t->printed >= t->count)
		return 1;
	if (t->raw && json[0] == '"') {
		dp_buf_reset(&t->text);
		if (dp_json_unquote(&t->text, json, len) < 0) {
			errno = ENOMEM;
			return -2;
		}
		json = t->text.data;
		len = t->text.len;
	}
	/*
	 * A full buffer is written out at a sync point, so that a steady
	 * backlog still stores offsets as it goes, not only when idle.
	 */
	if (dp_out_room(out) < len + 1 && dp_consumer_sync(t->c) < 0)
		return -1;
	if (dp_out_write(out, json, len) < 0 || dp_out_write(out, "\n", 1) < 0)
		return -1;
	t->printed++;
	return 0;
}

static enum dp_consumer_verdict
halt(struct tail *t, int ev)
{
	if (!t->halt)
		t->halt = ev;
	return DP_CONSUMER_HALT;
}

static enum dp_consumer_verdict
nomem(struct tail *t)
{
	dp_err("out of memory");
	dp_fsm_fail(&t->fsm, DP_EX_SOFTWARE);
	return halt(t, E_FATAL);
}

/* How a record's value turns out. */
enum value { V_LINE, V_DIRECT, V_SKIPPED, V_STOP };

/*
 * The value of m as one line of JSON text: into t->line (V_LINE), or m's
 * own bytes as they are (V_DIRECT), or nothing (V_SKIPPED, --non-json
 * skip), or V_STOP with t->halt set.
 */
static enum value
value_json(struct tail *t, const rd_kafka_message_t *m)
{
	struct dp_buf *b = &t->line;
	const char *why;
	size_t off;
	int compact, rc;

	dp_buf_reset(b);
	if (t->envelope) {
		rc = dp_envelope_write(b, m);
	} else if (!m->payload) {
		rc = dp_buf_add(b, "null", 4);
	} else if (dp_json_check_compact(m->payload, m->len, &why, &off, &compact) !=
	           DP_JSON_INVALID) {
		/* Compact payloads, the usual case, are printed without a copy. */
		if (compact && !t->filter)
			return V_DIRECT;
		rc = dp_json_compact(b, m->payload, m->len);
	} else {
		switch (t->non_json) {
		case NJ_ERROR:
			if (m->len == 0)        /* not "at byte 1": there is no byte */
				dp_err("%s [%d] offset %lld: value is not JSON (empty value); "
				       "see --non-json", rd_kafka_topic_name(m->rkt),
				       (int)m->partition, (long long)m->offset);
			else
				dp_err("%s [%d] offset %lld: value is not JSON (%s at byte %zu); "
				       "see --non-json", rd_kafka_topic_name(m->rkt),
				       (int)m->partition, (long long)m->offset, why, off + 1);
			dp_fsm_fail(&t->fsm, DP_EX_DATAERR);
			halt(t, E_BAD_RECORD);
			return V_STOP;
		case NJ_SKIP:
			t->skipped++;
			return V_SKIPPED;
		case NJ_STRING:
			if (dp_utf8_check(m->payload, m->len, &why, &off) == 0) {
				rc = dp_json_quote(b, m->payload, m->len);
				break;
			}
			/* Not text: only base64 can carry it. */
			/* fall through */
		case NJ_BASE64:
		default:
			rc = dp_buf_addch(b, '"');
			if (rc == 0)
				rc = dp_base64_encode(b, m->payload, m->len);
			if (rc == 0)
				rc = dp_buf_addch(b, '"');
			break;
		}
	}
	if (rc < 0) {
		nomem(t);
		return V_STOP;
	}
	return V_LINE;
}

/* The record hook: one record into zero or more lines. */
static enum dp_consumer_verdict
on_record(struct dp_consumer *c, void *arg, struct dp_consumer_part *p,
          const rd_kafka_message_t *m)
{
	struct tail *t = arg;
	int rc;

	t->consumed++;
	switch (value_json(t, m)) {
	case V_STOP:
		return DP_CONSUMER_HALT;
	case V_SKIPPED:
		return DP_CONSUMER_NEXT;        /* handled: nothing to print */
	case V_DIRECT:
		rc = emit(t, m->payload, m->len);
		break;
	case V_LINE:
	default:
		if (!t->filter) {
			rc = emit(t, t->line.data, t->line.len);
			break;
		}
		struct dp_expr_rec rec = DP_EXPR_REC(t->line.data, t->line.len);
		dp_buf_reset(&t->err);
		rc = dp_expr_each(t->filter, &rec, emit, t, &t->err);
		dp_expr_rec_clear(&rec);
		if (rc < 0 && t->err.len) {
			dp_err("%s [%d] offset %lld: --filter: %s", rd_kafka_topic_name(m->rkt),
			       (int)m->partition, (long long)m->offset, dp_buf_str(&t->err));
			dp_fsm_fail(&t->fsm, DP_EX_DATAERR);
			return halt(t, E_BAD_RECORD);
		}
		break;
	}
	if (rc == -2)
		return nomem(t);
	if (rc < 0 && dp_out_error(t->common.out))
		return halt(t, stdout_stopped(t));
	if (t->count && t->printed >= t->count) {
		halt(t, E_COUNT);
		return DP_CONSUMER_LAST;
	}
	return DP_CONSUMER_NEXT;
}

/* The commit hook: what was printed reaches the reader before its offsets are stored. */
static int
on_commit(struct dp_consumer *c, void *arg)
{
	struct tail *t = arg;

	if (dp_out_flush(t->common.out) == 0)
		return 0;
	halt(t, stdout_stopped(t));
	return DP_CONSUMER_HALT;
}

static struct followed *followed_of(struct tail *t, const char *topic);

static int
on_assigned(struct dp_consumer *c, void *arg, struct dp_consumer_part **parts, size_t n)
{
	struct tail *t = arg;

	/* A dynamic topic taken back goes on where it stopped, not from its beginning. */
	for (size_t i = 0; t->following && i < n; i++) {
		struct followed *f = followed_of(t, parts[i]->topic);
		if (f && f->resuming && parts[i]->partition < f->nresume &&
		    f->resume[parts[i]->partition] >= 0)
			parts[i]->start = f->resume[parts[i]->partition];
	}
	t->moved = parts;
	t->nmoved = n;
	return dp_fsm_step(&t->fsm, E_ASSIGNED, t) == DP_FSM_NOTRANS ? DP_EX_SOFTWARE : 0;
}

static int
on_revoked(struct dp_consumer *c, void *arg, struct dp_consumer_part **parts, size_t n)
{
	struct tail *t = arg;

	t->moved = parts;
	t->nmoved = n;
	return dp_fsm_step(&t->fsm, E_REVOKED, t) == DP_FSM_NOTRANS ? DP_EX_SOFTWARE : 0;
}

/* ---- actions ---------------------------------------------------------------- */

/* ---- following dynamic topics --------------------------------------------- */

static struct followed *
followed_of(struct tail *t, const char *topic)
{
	for (size_t i = 0; i < t->nfl; i++)
		if (strcmp(t->fl[i].topic, topic) == 0)
			return &t->fl[i];
	return NULL;
}

/* The registry changed: look at it after the poll, outside the callback. */
static void
on_registry(void *arg, const char *topic, const struct dp_dyn_spec *old,
            const struct dp_dyn_spec *now, int64_t offset)
{
	struct tail *t = arg;

	t->reg_changed = true;
}

/*
 * A followed topic was deleted: say which partitions this reader had not
 * read to their end, since what was after is gone (never silently), and
 * make the exit status say it too (1), after the other topics are read.
 */
static void
warn_unread(struct tail *t, const char *topic)
{
	struct dp_consumer_part *const *parts;
	size_t n;

	parts = dp_consumer_parts(t->c, &n);
	for (size_t i = 0; i < n; i++) {
		const struct dp_consumer_part *p = parts[i];
		if (strcmp(p->topic, topic) != 0 || !p->assigned || p->at_eof || p->caught_up)
			continue;
		/* Read up to the end the last fetch showed: nothing was lost. */
		int64_t end = dp_consumer_seen_end(t->c, p);
		if (p->next >= 0 && end != DP_CONSUMER_NO_OFFSET && p->next >= end)
			continue;
		dp_fsm_fail(&t->fsm, DP_EX_PARTIAL);
		if (p->next >= 0)
			dp_warn("dynamic topic '%s' was deleted before it was read to its end: "
			        "partition %d from offset %lld on was not read", topic,
			        (int)p->partition, (long long)p->next);
		else
			dp_warn("dynamic topic '%s' was deleted before it was read to its end: "
			        "partition %d was not read", topic, (int)p->partition);
	}
}

/*
 * f is read no more (why): finished, unless the registry shows a topic
 * under its name to read now -- the same one taken back after it was
 * retired and read to its end (not with -e), or another one made after
 * it was deleted (for --follow NAME only when the one read was deleted
 * before it was read to its end).
 */
static void
settle(struct tail *t, struct followed *f, enum fin why)
{
	const struct dp_dyn_spec *s = dp_registry_get(t->reg, f->topic);

	f->reading = f->ending = f->resuming = false;
	f->finished = true;
	f->fin = why;
	if (!s || s->state != DP_DYN_ACTIVE)
		return;
	bool same = f->has_id && s->created_at == f->id, again;
	if (same)
		again = why == FIN_END && t->until == DP_UNTIL_NONE;
	else if (f->named)
		again = why == FIN_GONE;
	else
		again = dp_dyn_spec_matches(s, t->follow_match, "--follow-match");
	if (again) {
		f->finished = false;
		f->fin = FIN_NO;
		f->resuming = same;
	}
}

/* Keep where each partition of f's topic stopped, for a taken-back topic. */
static void
keep_positions(struct tail *t, struct followed *f)
{
	struct dp_consumer_part *const *parts;
	size_t n;
	int32_t most = 0;

	parts = dp_consumer_parts(t->c, &n);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(parts[i]->topic, f->topic) && parts[i]->partition >= most)
			most = parts[i]->partition + 1;
	int64_t *v = most ? realloc(f->resume, (size_t)most * sizeof(*v)) : NULL;
	if (!v) {
		/* Out of memory: it would be read again from its beginning. */
		free(f->resume);
		f->resume = NULL;
		f->nresume = 0;
		return;
	}
	for (int32_t k = 0; k < most; k++)
		v[k] = -1;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(parts[i]->topic, f->topic))
			v[parts[i]->partition] = parts[i]->next;
	f->resume = v;
	f->nresume = most;
}

/* f's topic is deleted: what was not read is said, and it leaves the consumer. */
static void
lost(struct tail *t, struct followed *f)
{
	warn_unread(t, f->topic);
	dp_consumer_drop_topic(t->c, f->topic);
	settle(t, f, FIN_GONE);
	if (!f->finished)
		dp_info("dynamic topic '%s' was made again: reading the new one from its "
		        "beginning", f->topic);
}

/*
 * The engine: a topic read was deleted.  Finished: it has no more
 * records.  But when the registry shows the very topic being read, and
 * the cluster has it, the report was about an earlier topic of that
 * name (librdkafka says so by name only): never charged to this one.
 */
static int
on_gone(struct dp_consumer *c, void *arg, const char *topic)
{
	struct tail *t = arg;
	struct followed *f = followed_of(t, topic);
	const struct dp_dyn_spec *s = dp_registry_get(t->reg, topic);

	if (!f)
		return DP_EX_UNAVAILABLE;
	if (s && s->state == DP_DYN_ACTIVE && f->has_id && s->created_at == f->id) {
		struct dp_buf err = DP_BUF_INIT;
		int st = dp_kafka_probe(dp_consumer_rk(c), topic, 2000, NULL, &err);
		dp_buf_free(&err);
		if (st == 0) {
			dp_debug("dynamic topic '%s': a report about an earlier topic of that name "
			         "ignored", topic);
			return DP_CONSUMER_KEEP;
		}
	}
	dp_info("dynamic topic '%s' was deleted: it is read no more", topic);
	warn_unread(t, topic);
	/* The engine drops it when this returns. */
	settle(t, f, FIN_GONE);
	if (!f->finished)
		dp_info("dynamic topic '%s' was made again: reading the new one from its "
		        "beginning", topic);
	return 0;
}

/*
 * Bring the followed topics in line with the registry: new matches for
 * --follow-match, a topic read that is retired or deleted is read up to
 * its end as it is now (what was fetched of a deleted one too), and one
 * with another topic under its name now is dropped at once, with what it
 * still held said.
 */
static int
survey(struct tail *t)
{
	size_t n;
	const struct dp_dyn_spec *const *v = dp_registry_specs(t->reg, &n);

	t->reg_changed = false;
	for (size_t i = 0; t->follow_match && i < n; i++) {
		struct followed *f = followed_of(t, v[i]->topic);
		if (v[i]->state != DP_DYN_ACTIVE)
			continue;
		if (f && f->finished && !f->named && !f->reading) {
			/* Taken back, or made anew after it went: read it again. */
			settle(t, f, f->fin);
			continue;
		}
		if (!f && dp_dyn_spec_matches(v[i], t->follow_match, "--follow-match") &&
		    !add_followed(t, v[i]->topic, false))
			return -1;
	}
	for (size_t i = 0; i < t->nfl; i++) {
		struct followed *f = &t->fl[i];
		const struct dp_dyn_spec *s = dp_registry_get(t->reg, f->topic);
		if (!f->reading)
			continue;
		if (s && f->has_id && s->created_at != f->id) {
			/*
			 * Its fetchers would read on into the new topic as if it
			 * were this one: it goes now, with what it still held.
			 */
			dp_info("dynamic topic '%s' was deleted and another made under its name",
			        f->topic);
			lost(t, f);
			continue;
		}
		/* Deleted (a tombstone), nothing made since: what was fetched is read. */
		if (f->ending || (s && s->state == DP_DYN_ACTIVE))
			continue;
		dp_info("dynamic topic '%s' is %s: reading it up to its end", f->topic,
		        s ? dp_dyn_state_name(s->state) : "deleted");
		f->ending = true;
		dp_buf_reset(&t->err);
		int st = dp_consumer_end_topic(t->c, f->topic, &t->err);
		if (st == DP_KAFKA_STOPPED)
			return 0;               /* the caller sees the signal */
		if (st) {
			dp_info("dynamic topic '%s' is gone: %s", f->topic, dp_buf_str(&t->err));
			lost(t, f);
		}
	}
	return 0;
}

/* Topics read to their end (retired, or -e) leave the consumer. */
static void
finish_topics(struct tail *t)
{
	for (size_t i = 0; i < t->nfl; i++) {
		struct followed *f = &t->fl[i];
		if (!f->reading || !dp_consumer_topic_done(t->c, f->topic))
			continue;
		dp_info("dynamic topic '%s' read to its end", f->topic);
		keep_positions(t, f);
		dp_consumer_drop_topic(t->c, f->topic);
		settle(t, f, FIN_END);
		if (f->resuming)
			dp_info("dynamic topic '%s' is active again: reading on", f->topic);
	}
}

/* Followed topics that are active and not read yet. */
static bool
to_add(struct tail *t)
{
	for (size_t i = 0; i < t->nfl; i++) {
		const struct followed *f = &t->fl[i];
		const struct dp_dyn_spec *s = dp_registry_get(t->reg, f->topic);
		if (!f->reading && !f->finished && s && s->state == DP_DYN_ACTIVE)
			return true;
	}
	return false;
}

static bool
reading_any(const struct tail *t)
{
	for (size_t i = 0; i < t->nfl; i++)
		if (t->fl[i].reading)
			return true;
	return false;
}

/* --follow without --follow-match: every named topic is finished. */
static bool
all_finished(const struct tail *t)
{
	if (t->follow_match)
		return false;
	for (size_t i = 0; i < t->nfl; i++)
		if (!t->fl[i].finished)
			return false;
	return true;
}

/* Poll the registry (at most every 100 ms); 0, or the event that ends the wait. */
static int
follow_registry(struct tail *t, int ms)
{
	int64_t now = dp_time_mono_ms();
	int st;

	if (ms == 0 && now - t->reg_polled < 100)
		return 0;
	t->reg_polled = now;
	dp_buf_reset(&t->err);
	if ((st = dp_registry_poll(t->reg, ms, &t->err)) == DP_KAFKA_STOPPED || dp_sig_stop)
		return E_SIGNAL;
	if (st) {
		dp_err("registry: %s", dp_buf_str(&t->err));
		dp_fsm_fail(&t->fsm, st);
		return E_FATAL;
	}
	if (t->reg_changed && survey(t) < 0) {
		dp_err("out of memory");
		dp_fsm_fail(&t->fsm, DP_EX_SOFTWARE);
		return E_FATAL;
	}
	return dp_sig_stop ? E_SIGNAL : 0;
}

/* ---- actions ---------------------------------------------------------------- */

/* idle -> connecting: the client, then proof that the cluster and topics answer. */
static int
act_connect(struct dp_fsm *m, void *ctx)
{
	struct tail *t = ctx;
	struct dp_buf err = DP_BUF_INIT;
	const struct dp_consumer_opts opts = {
		.topics = t->topics, .ntopics = t->ntopics,
		.partitions = t->partitions, .npartitions = t->npartitions,
		.group = t->group,
		.from = t->from, .from_arg = t->from_arg,
		.until = t->until, .until_ms = t->until_ms,
	};
	const struct dp_consumer_hooks hooks = {
		.arg = t, .record = on_record, .assigned = on_assigned, .revoked = on_revoked,
		.commit = on_commit, .gone = t->following ? on_gone : NULL,
	};
	const struct dp_registry_conf rconf = {
		.kafka = &t->common.kafka, .topic = t->registry, .change = on_registry, .arg = t,
		.missing_ok = true,
	};
	int st, ev;

	t->c = dp_consumer_new(&t->common.kafka, &opts, &hooks, &err, &st);
	if (!t->c) {
		dp_err("%s", dp_buf_str(&err));
		dp_fsm_fail(m, st);
		ev = E_BAD_CONFIG;
	} else if ((st = dp_consumer_connect(t->c, &err)) == 0 && t->following &&
	           (t->reg = dp_registry_new(&rconf, &err, &st)) != NULL) {
		st = dp_registry_load(t->reg, &err);
	}
	if (!t->c) {
		/* said */
	} else if (st == DP_KAFKA_STOPPED) {
		ev = E_SIGNAL;           /* nothing read, nothing to commit */
	} else if (st) {
		dp_err("%s", dp_buf_str(&err));
		dp_fsm_fail(m, st);
		ev = st == DP_EX_CONFIG || st == DP_EX_NOINPUT ? E_BAD_CONFIG : E_UNREACHABLE;
	} else if (t->following) {
		dp_backoff_init(&t->backoff, 1000, 30000, 0.2, 0);
		ev = survey(t) < 0 ? E_UNREACHABLE : E_SUBSCRIBE;
		if (ev == E_UNREACHABLE) {
			dp_err("out of memory");
			dp_fsm_fail(m, DP_EX_SOFTWARE);
		}
	} else {
		ev = E_CONNECTED;
	}
	dp_buf_free(&err);
	return ev;
}

/*
 * -> subscribing: add every followed topic that is active; with none
 * to read, wait for one.
 */
static int
act_subscribe(struct dp_fsm *m, void *ctx)
{
	struct tail *t = ctx;

	for (;;) {
		bool added = false;
		for (size_t i = 0; i < t->nfl; i++) {
			struct followed *f = &t->fl[i];
			const struct dp_dyn_spec *s = dp_registry_get(t->reg, f->topic);
			if (f->reading || f->finished || !s || s->state != DP_DYN_ACTIVE)
				continue;
			dp_buf_reset(&t->err);
			int st = dp_consumer_add_topic(t->c, f->topic, &t->err);
			if (st == DP_KAFKA_STOPPED)
				return E_SIGNAL;
			if (st) {
				dp_warn("cannot read dynamic topic '%s': %s", f->topic,
				        dp_buf_str(&t->err));
				return E_SUBSCRIBE_FAILED;
			}
			dp_info("reading dynamic topic '%s'", f->topic);
			f->reading = added = true;
			f->id = s->created_at;
			f->has_id = true;
		}
		if (added || reading_any(t)) {
			dp_backoff_reset(&t->backoff);
			return E_SUBSCRIBED;
		}
		/* Waiting for a topic, the reader may leave (| head -1, | true). */
		if (dp_out_gone(t->common.out))
			return E_PIPE_CLOSED;
		int ev = follow_registry(t, 200);
		if (ev)
			return ev;
	}
}

/* subscribing -> error: the topic is in the registry, not (yet) in the cluster. */
static int
act_error(struct dp_fsm *m, void *ctx)
{
	struct tail *t = ctx;
	int64_t ms = dp_backoff_next(&t->backoff, 0);

	dp_info("trying again in %lld ms", (long long)ms);
	return dp_backoff_sleep(ms, &dp_sig_stop) < 0 ? E_SIGNAL : E_RESET;
}

/* What ended the polls, as an event. */
static int
poll_event(struct tail *t, int r, int st, struct dp_buf *err)
{
	switch (r) {
	case DP_CONSUMER_END:
		return E_END;
	case DP_CONSUMER_SIGNAL:
		return E_SIGNAL;
	case DP_CONSUMER_HALTED:
		return t->halt ? t->halt : E_FATAL;
	default:
		if (err->len || err->lost)
			dp_err("%s", dp_buf_str(err));
		dp_fsm_fail(&t->fsm, st ? st : DP_EX_SOFTWARE);
		return E_FATAL;
	}
}

/*
 * -> consuming: poll until records come (MESSAGE_RECEIVED), something
 * ends the reading, or (following) a topic is to be added or waited for.
 */
static int
act_consume(struct dp_fsm *m, void *ctx)
{
	struct tail *t = ctx;
	struct dp_buf err = DP_BUF_INIT;
	int r, st = 0, ev = 0;

	if (!t->prog_started) {
		dp_progress_init(&t->prog, t->progress);
		t->prog_started = true;
	}
	ev = t->reg_event;
	t->reg_event = 0;
	while (!ev) {
		uint64_t before = t->consumed;
		r = dp_consumer_poll(t->c, 100, &err, &st);
		/* The last records come first; the end is seen again at the next poll. */
		if (r == DP_CONSUMER_END && t->consumed != before) {
			ev = E_MESSAGE;
			break;
		}
		if (r == DP_CONSUMER_END && t->following) {
			/* The topics read are at their end: drop them, go on with the rest. */
			finish_topics(t);
			r = DP_CONSUMER_MORE;
		}
		if (r != DP_CONSUMER_MORE) {
			ev = poll_event(t, r, st, &err);
			break;
		}
		if (t->consumed != before) {
			ev = E_MESSAGE;
			break;
		}
		/* Nothing came: the reader may have left meanwhile (| head -1). */
		if (dp_out_gone(t->common.out)) {
			ev = E_PIPE_CLOSED;
			break;
		}
		if (!t->following)
			continue;
		if ((ev = follow_registry(t, 0)) != 0)
			break;
		finish_topics(t);
		if (to_add(t))
			ev = E_SUBSCRIBE;
		else if (!reading_any(t))
			ev = all_finished(t) ? E_END : E_SUBSCRIBE;
	}
	t->at_end |= ev == E_END || ev == E_COUNT;
	dp_buf_free(&err);
	return ev;
}

/* consuming -> processingMessage: the records of a poll are out; take stock. */
static int
act_process(struct dp_fsm *m, void *ctx)
{
	struct tail *t = ctx;

	dp_progress_tick(&t->prog, "records", t->consumed, NULL, false);
	if (t->following) {
		finish_topics(t);
		/*
		 * While records keep coming the registry is read too: a topic
		 * deleted and made again is learnt of before the old one's
		 * fetcher reads on into the new one.  What ends the reading
		 * comes out of consuming.
		 */
		t->reg_event = follow_registry(t, 0);
	}
	return E_PROCESSED;
}

/* A rebalance gave partitions (same state). */
static int
act_assigned(struct dp_fsm *m, void *ctx)
{
	struct tail *t = ctx;

	dp_consumer_say_parts("reading", t->moved, t->nmoved);
	return DP_FSM_NONE;
}

/* A rebalance or the close took partitions (same state). */
static int
act_revoked(struct dp_fsm *m, void *ctx)
{
	struct tail *t = ctx;

	dp_consumer_say_parts("handing over", t->moved, t->nmoved);
	return DP_FSM_NONE;
}

/* -> closing: flush, commit what was flushed, leave the group. */
static int
act_close(struct dp_fsm *m, void *ctx)
{
	struct tail *t = ctx;
	int st = dp_consumer_close(t->c);

	if (m->reason)
		return E_FAILED;
	if (st) {
		dp_fsm_fail(m, st);
		return E_COMMIT_FAILED;
	}
	return E_CLOSED;
}

/* ---- main ------------------------------------------------------------- */

static int
finish(void *ctx, int status)
{
	struct tail *t = ctx;

	if (t->prog_started)
		dp_progress_tick(&t->prog, "records", t->consumed, NULL, true);
	if (t->skipped)
		dp_warn("%llu record%s skipped: value not JSON", (unsigned long long)t->skipped,
		        t->skipped == 1 ? "" : "s");
	return status;
}

static unsigned
io_tail(void *ctx)
{
	const struct tail *t = ctx;

	return DP_CMD_STDOUT | (t->until != DP_UNTIL_NONE || t->count ? DP_CMD_BOUNDED : 0);
}

/* A signal came (core/frame.h): after the end asked for, or what was printed. */
static bool
interrupted_tail(void *ctx, int status, struct dp_buf *said)
{
	struct tail *t = ctx;

	(void)status;
	if (t->at_end)
		return false;
	dp_buf_msgf(said, "%llu record%s written, the rest not read", (unsigned long long)t->printed,
	            t->printed == 1 ? "" : "s");
	return true;
}

static void
close_tail(void *ctx)
{
	struct tail *t = ctx;

	dp_consumer_free(t->c);
	dp_registry_free(t->reg);
	for (size_t i = 0; i < t->nfl; i++) {
		free(t->fl[i].topic);
		free(t->fl[i].resume);
	}
	free(t->fl);
	dp_expr_free(t->follow_match);
	free(t->topics);
	free(t->partitions);
	dp_expr_free(t->filter);
	dp_buf_free(&t->line);
	dp_buf_free(&t->text);
	dp_buf_free(&t->err);
}

static const struct dp_cmd cmd = {
	.name = "dp-tail",
	.libs = dp_kafka_version,
	.usage = usage,
	.machine = &machine,
	.start = E_START,
	.outbuf = 256 * 1024,
	.parse = parse_options,
	.validate = validate,
	.finish = finish,
	.close = close_tail,
	.io = io_tail,
	.interrupted = interrupted_tail,
};

int
main(int argc, char **argv)
{
	static struct tail t;

	return dp_cmd_main(&cmd, &t, &t.common, &t.fsm, argc, argv);
}
