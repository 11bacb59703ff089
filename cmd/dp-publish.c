/*
 * dp-publish -- NDJSON on stdin to Kafka records.
 *
 * Every input line becomes one record.  Keys, topics, headers and
 * timestamps come from jq expressions evaluated on the line; --envelope
 * reads the lossless form that dp-tail --envelope prints.  The command
 * exits 0 only when every record was acknowledged by the cluster.
 *
 * This file is the command: its options, their combinations, and the
 * seed's producer machine, each of whose actions is one step of the
 * engine, lib/publish/publisher.h (which reads, prepares, sends, holds
 * and accounts for every line; see there for its threads).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/buf.h"
#include "core/cli.h"
#include "core/exit.h"
#include "core/frame.h"
#include "core/fsm.h"
#include "core/lines.h"
#include "core/log.h"
#include "core/opt.h"
#include "dyn/registry.h"
#include "kafka/client.h"
#include "kafka/onerror.h"
#include "kafka/producer.h"
#include "status/watch.h"
#include "publish/publisher.h"
#include "publish/record.h"

struct pub {
	struct dp_common common;
	struct dp_publisher_opts opts;
	uint64_t partition;             /* -p, or NO_PARTITION */
	struct dp_publisher *pub;
	struct dp_fsm fsm;
	struct dp_watch_opts watch;     /* --status-topic, --metrics ... (status/watch.h) */
};

/* -p not given: the partition comes from the key's hash. */
#define NO_PARTITION UINT64_MAX

/* ---- state machine ---------------------------------------------------- */

/*
 * The seed's producer: publishingFixed while no dynamic topic takes
 * copies of what it publishes, publishingDynamic while some do (routes
 * come and go with the registry), creatingTopic while a requested topic
 * is not answered yet (records of other topics go on meanwhile), and
 * error when a request failed.  Each publishing state publishes until
 * what it waits for happens (enum dp_pub_until); the per-record loop is
 * the engine's.
 */
enum state { S_IDLE, S_CONNECTING, S_FIXED, S_DYNAMIC, S_CREATING, S_ERROR, S_DRAINING,
             S_DONE, S_FAILED, NSTATES };
/* The engine's events (publish/publisher.h), and the one that starts the machine. */
enum event {
	E_START,
	E_CONNECTED = DP_PUB_CONNECTED, E_UNREACHABLE = DP_PUB_UNREACHABLE,
	E_REFUSED = DP_PUB_REFUSED, E_BAD_CONFIG = DP_PUB_BAD_CONFIG, E_STOP = DP_PUB_STOP,
	E_EOF = DP_PUB_EOF, E_BAD_LINE = DP_PUB_BAD_LINE, E_FATAL = DP_PUB_FATAL,
	E_DRAINED = DP_PUB_DRAINED, E_LOST = DP_PUB_LOST, E_ABORTED = DP_PUB_ABORTED,
	E_PUBLISH_DYNAMIC = DP_PUB_PUBLISH_DYNAMIC, E_PUBLISH_FIXED = DP_PUB_PUBLISH_FIXED,
	E_CREATE_TOPIC = DP_PUB_CREATE_TOPIC, E_CREATE_SUCCESS = DP_PUB_CREATE_SUCCESS,
	E_CREATE_FAILURE = DP_PUB_CREATE_FAILURE, E_RESET = DP_PUB_RESET,
	NEVENTS = DP_PUB_NEVENTS
};

static const char *const state_names[NSTATES] = {
	"idle", "connecting", "publishingFixed", "publishingDynamic", "creatingTopic", "error",
	"draining", "done", "failed",
};
static const char *const event_names[NEVENTS] = {
	[E_START] = "start", [E_CONNECTED] = "connected", [E_UNREACHABLE] = "unreachable",
	[E_REFUSED] = "refused", [E_BAD_CONFIG] = "bad_config", [E_STOP] = "signal",
	[E_EOF] = "eof", [E_BAD_LINE] = "bad_line", [E_FATAL] = "fatal",
	[E_DRAINED] = "drained", [E_LOST] = "lost", [E_ABORTED] = "aborted",
	[E_PUBLISH_DYNAMIC] = "PUBLISH_DYNAMIC", [E_PUBLISH_FIXED] = "PUBLISH_FIXED",
	[E_CREATE_TOPIC] = "CREATE_TOPIC", [E_CREATE_SUCCESS] = "CREATE_TOPIC_SUCCESS",
	[E_CREATE_FAILURE] = "CREATE_TOPIC_FAILURE", [E_RESET] = "RESET",
};

static int act_connect(struct dp_fsm *m, void *ctx);
static int act_publish_fixed(struct dp_fsm *m, void *ctx);
static int act_publish_dynamic(struct dp_fsm *m, void *ctx);
static int act_create_topic(struct dp_fsm *m, void *ctx);
static int act_error(struct dp_fsm *m, void *ctx);
static int act_drain(struct dp_fsm *m, void *ctx);

/*
 * done exits 0: every record read was delivered (after a signal too).
 * failed exits with the reason the action recorded: 65 a bad line under
 * --on-error fail, 69 no broker, no topic or no coordinator, 75 records
 * not delivered, 64/66/78 a bad -p, -F or -X, 74 stdin or stdout failed.
 */
static const struct dp_fsm_row rows[] = {
	/* state        event               next         action */
	{ S_IDLE,       E_START,            S_CONNECTING, act_connect },
	{ S_CONNECTING, E_CONNECTED,        S_FIXED,      act_publish_fixed },
	{ S_CONNECTING, E_UNREACHABLE,      S_FAILED,     NULL },
	{ S_CONNECTING, E_REFUSED,          S_FAILED,     NULL },
	{ S_CONNECTING, E_BAD_CONFIG,       S_FAILED,     NULL },
	{ S_CONNECTING, E_STOP,             S_DONE,       NULL },
	{ S_FIXED,      E_PUBLISH_DYNAMIC,  S_DYNAMIC,    act_publish_dynamic },
	{ S_FIXED,      E_CREATE_TOPIC,     S_CREATING,   act_create_topic },
	{ S_FIXED,      E_EOF,              S_DRAINING,   act_drain },
	{ S_FIXED,      E_STOP,             S_DRAINING,   act_drain },
	{ S_FIXED,      E_BAD_LINE,         S_DRAINING,   act_drain },
	{ S_FIXED,      E_FATAL,            S_DRAINING,   act_drain },
	{ S_DYNAMIC,    E_PUBLISH_FIXED,    S_FIXED,      act_publish_fixed },
	{ S_DYNAMIC,    E_CREATE_TOPIC,     S_CREATING,   act_create_topic },
	{ S_DYNAMIC,    E_EOF,              S_DRAINING,   act_drain },
	{ S_DYNAMIC,    E_STOP,             S_DRAINING,   act_drain },
	{ S_DYNAMIC,    E_BAD_LINE,         S_DRAINING,   act_drain },
	{ S_DYNAMIC,    E_FATAL,            S_DRAINING,   act_drain },
	{ S_CREATING,   E_CREATE_SUCCESS,   S_FIXED,      act_publish_fixed },
	{ S_CREATING,   E_CREATE_FAILURE,   S_ERROR,      act_error },
	{ S_CREATING,   E_STOP,             S_DRAINING,   act_drain },
	{ S_CREATING,   E_FATAL,            S_DRAINING,   act_drain },
	{ S_ERROR,      E_RESET,            S_FIXED,      act_publish_fixed },
	{ S_ERROR,      E_BAD_LINE,         S_DRAINING,   act_drain },
	{ S_ERROR,      E_FATAL,            S_DRAINING,   act_drain },
	{ S_DRAINING,   E_DRAINED,          S_DONE,       NULL },
	{ S_DRAINING,   E_LOST,             S_FAILED,     NULL },
	{ S_DRAINING,   E_ABORTED,          S_FAILED,     NULL },
};
static const struct dp_fsm_final finals[] = { { S_DONE, 0 }, { S_FAILED, DP_FSM_REASON } };

static const struct dp_fsm_def machine = {
	"dp-publish", state_names, NSTATES, event_names, NEVENTS,
	rows, DP_FSM_COUNT(rows), S_IDLE, finals, DP_FSM_COUNT(finals),
};

/* ---- options ---------------------------------------------------------- */

static int
opt_expr(void *ctx, const struct dp_opt *o, char *arg)
{
	struct pub *p = ctx;
	char name[32];

	snprintf(name, sizeof(name), "--%s", o->long_name);
	return dp_record_opts_expr((struct dp_expr **)((char *)p + o->off), name, arg);
}

static int
opt_header(void *ctx, const struct dp_opt *o, char *arg)
{
	struct pub *p = ctx;

	return dp_record_opts_header(&p->opts.rec, arg);
}

static int
opt_on_error(void *ctx, const struct dp_opt *o, char *arg)
{
	struct pub *p = ctx;

	return dp_on_error_parse(&p->opts.on_error, arg);
}

#define OFF(field) offsetof(struct pub, field)
#define MAX_BYTES ((int64_t)1 << 40)

static const struct dp_opt opts[] = {
	DP_OPT_GROUP("Routing"),
	{ DP_ARG_STRING, 't', "topic", "TOPIC", "send every record to TOPIC",
	  .off = OFF(opts.rec.topic) },
	{ DP_ARG_CALL, 0, "topic-expr", "JQ",
	  "pick each record's topic, e.g. '\"prices.\" + .fsym'",
	  .off = OFF(opts.rec.topic_expr), .fn = opt_expr },
	{ DP_ARG_CALL, 'k', "key", "JQ", "record key, e.g. .fsym (strings are sent raw)",
	  .off = OFF(opts.rec.key_expr), .fn = opt_expr },
	{ DP_ARG_U64, 'p', "partition", "N", "send to partition N (default: by key hash)",
	  .off = OFF(partition), .min = 0, .max = INT32_MAX },
	{ DP_ARG_CALL, 'H', "header", "NAME=JQ", "add a header; repeatable, order kept",
	  .fn = opt_header },
	{ DP_ARG_CALL, 0, "timestamp", "JQ",
	  "record time: RFC 3339, epoch seconds or milliseconds",
	  .off = OFF(opts.rec.ts_expr), .fn = opt_expr },
	DP_OPT_GROUP("Input"),
	{ DP_ARG_FLAG, 0, "envelope", NULL, "read dp-tail --envelope lines (lossless copy)",
	  .off = OFF(opts.rec.envelope) },
	{ DP_ARG_FLAG, 0, "raw", NULL, "send lines as opaque bytes, no JSON check",
	  .off = OFF(opts.rec.raw) },
	{ DP_ARG_CALL, 0, "on-error", "MODE", "bad lines: fail (default), skip, dlq=TOPIC",
	  .fn = opt_on_error },
	{ DP_ARG_SIZE, 0, "max-line-bytes", "N",
	  "a longer line is a bad line (default " DP_LINES_MAX_DEFAULT_ARG "; K, M, G)",
	  .off = OFF(opts.rec.max_line), .min = 1, .max = MAX_BYTES, .max_label = "1024G" },
	DP_OPT_GROUP("Dynamic topics (see dp-coord(1))"),
	{ DP_ARG_FLAG, 0, "follow-registry", NULL,
	  "also copy each record into every active dynamic topic\n"
	  "whose source is its topic and whose filter it matches",
	  .off = OFF(opts.follow) },
	{ DP_ARG_FLAG, 0, "request-topics", NULL,
	  "a --topic-expr topic that does not exist is requested\n"
	  "from the coordinator; its records wait for it",
	  .off = OFF(opts.request_topics) },
	{ DP_ARG_SIZE, 0, "hold-bytes", "N",
	  "records waiting for requested topics, at most; then\n"
	  "reading waits (default " DP_PUB_HOLD_DEFAULT_ARG "; K, M, G)",
	  .off = OFF(opts.hold_max), .min = 1, .max = MAX_BYTES, .max_label = "1024G" },
	{ DP_ARG_STRING, 0, "registry", "TOPIC",
	  "the registry (default $DP_REGISTRY, else " DP_REGISTRY_DEFAULT ")",
	  .off = OFF(opts.registry) },
	{ DP_ARG_STRING, 0, "requests", "TOPIC",
	  "the requests (default $DP_REQUESTS, else " DP_REQUESTS_DEFAULT ")",
	  .off = OFF(opts.requests) },
	DP_OPT_GROUP("Delivery"),
	{ DP_ARG_FLAG, 0, "report", NULL, "print one NDJSON acknowledgement per record on stdout",
	  .off = OFF(opts.report) },
	{ DP_ARG_FLAG, 0, "progress", NULL, "print rate and totals on stderr every second",
	  .off = OFF(opts.progress) },
	DP_OPT_WATCH_ROWS(struct pub, watch, 0),
	DP_OPT_KAFKA_ROWS,
	DP_OPT_END,
};

static int
operands(void *ctx, int argc, char **argv)
{
	if (argc > 0) {
		dp_err("unexpected argument '%s' (records are read from stdin)", argv[0]);
		return -1;
	}
	return 0;
}

/* A default from the environment, where no option gave one. */
static const char *
from_env(const char *given, const char *var, const char *fallback)
{
	const char *e = getenv(var);

	return given ? given : e && *e ? e : fallback;
}

/* All option combinations are checked here, once. */
static int
validate(void *ctx)
{
	struct pub *p = ctx;
	struct dp_publisher_opts *o = &p->opts;
	const struct dp_record_opts *r = &o->rec;

	o->rec.partition = p->partition == NO_PARTITION ? DP_PRODUCER_ANY : (int32_t)p->partition;
	o->registry = from_env(o->registry, "DP_REGISTRY", DP_REGISTRY_DEFAULT);
	o->requests = from_env(o->requests, "DP_REQUESTS", DP_REQUESTS_DEFAULT);
	if (dp_watch_validate(&p->watch, &p->opts.rec.topic, 1) < 0)
		return -1;
	if (r->topic && r->topic_expr) {
		dp_err("-t and --topic-expr cannot be used together");
		return -1;
	}
	if (!r->topic && !r->topic_expr && !r->envelope) {
		dp_err("no topic: use -t TOPIC or --topic-expr JQ");
		return -1;
	}
	if (r->raw && (r->topic_expr || r->key_expr || r->ts_expr || r->nhdrs)) {
		dp_err("--raw lines are not JSON: --topic-expr, --key, --header and "
		       "--timestamp cannot be used with it");
		return -1;
	}
	if (r->raw && r->envelope) {
		dp_err("--raw and --envelope cannot be used together");
		return -1;
	}
	if (r->envelope && (r->key_expr || r->ts_expr || r->nhdrs)) {
		dp_err("--envelope carries key, headers and timestamp: --key, --header "
		       "and --timestamp cannot be used with it");
		return -1;
	}
	if (o->follow && r->raw) {
		dp_err("--raw lines are not JSON: no filter can route them (--follow-registry)");
		return -1;
	}
	if (o->request_topics && (!r->topic_expr || r->envelope)) {
		dp_err("--request-topics asks for the topics --topic-expr names on JSON lines: "
		       "it needs --topic-expr, and not --envelope");
		return -1;
	}
	return 0;
}

/* ---- the machine's actions: each one step of the engine ---------------- */

/* -> connecting: make the producer, prove the cluster and the topics are there. */
static int
act_connect(struct dp_fsm *m, void *ctx)
{
	struct pub *p = ctx;
	int st = 0, ev = dp_publisher_connect(p->pub, &st);

	if (st)
		dp_fsm_fail(m, st);
	return ev;
}

/* -> publishingFixed: records to their own topics only. */
static int
act_publish_fixed(struct dp_fsm *m, void *ctx)
{
	struct pub *p = ctx;

	return dp_publisher_run(p->pub, DP_PUB_UNTIL_COPIES);
}

/* -> publishingDynamic: records to their topics and to the dynamic topics they match. */
static int
act_publish_dynamic(struct dp_fsm *m, void *ctx)
{
	struct pub *p = ctx;

	return dp_publisher_run(p->pub, DP_PUB_UNTIL_NO_COPIES);
}

/* -> creatingTopic: records of other topics go on while the coordinator answers. */
static int
act_create_topic(struct dp_fsm *m, void *ctx)
{
	struct pub *p = ctx;

	return dp_publisher_run(p->pub, DP_PUB_UNTIL_ANSWERED);
}

/*
 * creatingTopic -> error: a request was refused (its records are bad
 * lines, as --on-error says) or not answered within --timeout (69).
 */
static int
act_error(struct dp_fsm *m, void *ctx)
{
	struct pub *p = ctx;

	return dp_publisher_reject(p->pub);
}

/* -> draining: wait for every outstanding delivery report. */
static int
act_drain(struct dp_fsm *m, void *ctx)
{
	struct pub *p = ctx;
	int st = 0, ev = dp_publisher_drain(p->pub, &st);

	if (st)
		dp_fsm_fail(m, st);
	return ev;
}

/* ---- main ----------------------------------------------------------------- */

static int
open_pub(void *ctx)
{
	struct pub *p = ctx;
	int st = dp_watch_start(&p->watch, &p->common.kafka, &p->fsm, "dp-publish", "kafka");

	if (st)
		return st;
	p->pub = dp_publisher_new(&p->opts, &p->common.kafka, p->common.out,
	                          dp_cmd_stdout_failed);
	if (!p->pub) {
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	return 0;
}

static int
finish_pub(void *ctx, int status)
{
	struct pub *p = ctx;

	dp_publisher_summary(p->pub);
	return status;
}

static unsigned
io_pub(void *ctx)
{
	const struct pub *p = ctx;

	return DP_CMD_STDIN | DP_CMD_BOUNDED | (p->opts.report ? DP_CMD_STDOUT : 0);
}

/* A signal came (core/frame.h): after the end of the input, or what it left. */
static bool
interrupted_pub(void *ctx, int status, struct dp_buf *said)
{
	struct pub *p = ctx;
	uint64_t delivered, undelivered;
	int64_t unread;

	if (!dp_publisher_interrupted(p->pub, status, &delivered, &undelivered, &unread))
		return false;
	dp_cmd_say_undelivered(said, "line", delivered, undelivered, unread);
	return true;
}

static void
close_pub(void *ctx)
{
	struct pub *p = ctx;

	/* A reader left in jq for good still uses the expressions (p is static). */
	if (dp_publisher_free(p->pub))
		dp_record_opts_clear(&p->opts.rec);
}

static const struct dp_cmd cmd = {
	.name = "dp-publish",
	.libs = dp_kafka_version,
	.synopsis = "dp-publish (-t TOPIC | --topic-expr JQ) [options] < records.ndjson",
	.about = "Read NDJSON on stdin and produce each line as one Kafka record.",
	.opts = opts,
	.epilogue =
		"Defaults that -X overrides: enable.idempotence=true acks=all linger.ms=100\n"
		"allow.auto.create.topics=false; a pause in the input sends what waits.\n"
		"\n"
		"Exit status: 0 all of stdin read and delivered, 64 usage, 65 bad line\n"
		"(--on-error fail), 66 -F unreadable or stdin closed, 69 cluster or coordinator\n"
		"unavailable, 74 I/O error, 75 records not delivered (a record counts once all\n"
		"its copies are), 77 not authorized, 78 bad configuration, 81 no such topic,\n"
		"130/143 SIGINT/SIGTERM before the end of stdin.  See dp-publish(1).\n",
	.operands = operands,
	.machine = &machine,
	.start = E_START,
	.validate = validate,
	.open = open_pub,
	.finish = finish_pub,
	.close = close_pub,
	.io = io_pub,
	.interrupted = interrupted_pub,
};

int
main(int argc, char **argv)
{
	static struct pub p = {
		.partition = NO_PARTITION,
		.opts = {
			.rec = { .max_line = DP_LINES_MAX_DEFAULT },
			.hold_max = DP_PUB_HOLD_DEFAULT,
		},
	};

	return dp_cmd_main(&cmd, &p, &p.common, &p.fsm, argc, argv);
}
