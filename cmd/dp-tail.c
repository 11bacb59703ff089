/*
 * dp-tail -- Kafka records to NDJSON on stdout.
 *
 * The worked example of a dp command (HACKING.md): options as a table,
 * one validate(), a state machine whose actions each call an engine step.
 * The engines: kafka/consumer.h reads the partitions and decides where
 * each starts and stops; kafka/print.h turns each record into lines;
 * dyn/follow.h follows dynamic topics (--follow, --follow-match) as the
 * coordinator makes, retires and deletes them.  The consumer's commit hook
 * is "flush stdout", so with -g an offset is stored only after the lines
 * of its record reached the reader: a reader sees every record at least
 * once across restarts.
 */
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <librdkafka/rdkafka.h>

#include "core/backoff.h"
#include "core/buf.h"
#include "core/exit.h"
#include "core/frame.h"
#include "core/fsm.h"
#include "core/log.h"
#include "core/opt.h"
#include "core/out.h"
#include "core/parse.h"
#include "core/progress.h"
#include "core/sig.h"
#include "core/vec.h"
#include "dyn/follow.h"
#include "dyn/registry.h"
#include "jq/expr.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "kafka/consumer.h"
#include "kafka/print.h"
#include "status/watch.h"

struct tail {
	struct dp_common common;
	struct dp_fsm fsm;

	/* options */
	struct dp_opt_list topics;      /* -t */
	int32_t *partitions;            /* -p */
	size_t npartitions, cappartitions;
	const char *group;
	enum dp_from from;
	int64_t from_arg;
	enum dp_until until;
	int64_t until_ms;
	uint64_t count;                 /* -n; 0 = unlimited */
	bool envelope;
	bool raw;                       /* -r: strings without quotes, as jq -r */
	bool progress;
	struct dp_expr *filter;
	int non_json;                   /* enum dp_non_json */
	struct dp_opt_list follow;      /* --follow */
	struct dp_expr *follow_match;
	const char *registry;
	struct dp_watch_opts watch;     /* --status-topic, --metrics ... (status/watch.h) */

	/* resources */
	struct dp_consumer *c;
	struct dp_print *pr;
	struct dp_follow *fl;           /* following dynamic topics; NULL with -t */
	struct dp_backoff backoff;      /* between tries to read a followed topic */
	struct dp_buf err;              /* the actions' messages */
	struct dp_buf why;              /* the record hook's */

	/* state */
	int halt;                       /* the event that made a hook stop the consumer */
	bool at_end;                    /* -e, --until or -n reached */
	struct dp_consumer_part **moved;        /* the partitions of a rebalance event */
	size_t nmoved;
	struct dp_progress prog;
	bool prog_started;
};

/* ---- state machine ---------------------------------------------------- */

/*
 * The seed's consumer of dynamic topics (idle, subscribing, consuming,
 * processingMessage, error) around the engine's connect and close.  A
 * reader of fixed topics goes from connecting straight to consuming.
 * consuming polls; each poll that handed records over passes through
 * processingMessage, which takes stock of them before the next poll.
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
	/* a followed topic to add, or none left to read */
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

static int
opt_partition(void *ctx, const struct dp_opt *o, char *arg)
{
	struct tail *t = ctx;
	uint64_t v;
	int32_t *p;

	if (dp_parse_u64("--partition", arg, 0, INT32_MAX, &v) < 0)
		return -1;
	if (!(p = dp_grow(t->partitions, &t->cappartitions, t->npartitions + 1, sizeof(*p), 4))) {
		dp_err("out of memory");
		return -1;
	}
	t->partitions = p;
	t->partitions[t->npartitions++] = (int32_t)v;
	return 0;
}

static int
opt_from(void *ctx, const struct dp_opt *o, char *arg)
{
	struct tail *t = ctx;

	return dp_consumer_parse_from(arg, &t->from, &t->from_arg);
}

static int
opt_until(void *ctx, const struct dp_opt *o, char *arg)
{
	struct tail *t = ctx;

	return dp_consumer_parse_until(arg, &t->until, &t->until_ms);
}

static int
opt_exit(void *ctx, const struct dp_opt *o, char *arg)
{
	struct tail *t = ctx;

	t->until = DP_UNTIL_END;
	return 0;
}

/* --filter, --follow-match: compiled now, so that a typo is a usage error; the last one wins. */
static int
opt_jq(void *ctx, const struct dp_opt *o, char *arg)
{
	struct dp_expr **e = (struct dp_expr **)((char *)ctx + o->off);
	struct dp_buf err = DP_BUF_INIT;

	dp_expr_free(*e);
	if (!(*e = dp_expr_compile(arg, &err))) {
		dp_err("invalid --%s: %s", o->long_name, dp_buf_str(&err));
		dp_buf_free(&err);
		return -1;
	}
	return 0;
}

#define OFF(field) .off = offsetof(struct tail, field)

static const struct dp_opt options[] = {
	DP_OPT_GROUP("Subscribing"),
	{ DP_ARG_LIST, 't', "topic", "TOPIC", "topic to read; repeatable; '^regex' subscribes\n"
	  "to every matching topic, including later ones", OFF(topics) },
	{ DP_ARG_CALL, 'p', "partition", "N", "read only partition N of each topic; repeatable\n"
	  "(not with -g)", .fn = opt_partition },
	{ DP_ARG_STRING, 'g', "group", "GROUP", "join consumer group GROUP and commit offsets after\n"
	  "the lines are flushed (without -g nothing is committed)", OFF(group) },

	DP_OPT_GROUP("Dynamic topics (see dp-coord(1))"),
	{ DP_ARG_LIST, 0, "follow", "NAME", "wait until dynamic topic NAME is active, read it from\n"
	  "its beginning; ends once it is retired and read to\n"
	  "its end (or at its end with -e); repeatable", OFF(follow) },
	{ DP_ARG_CALL, 0, "follow-match", "JQ", "read every active dynamic topic whose spec matches,\n"
	  "adding new ones as they come, until a signal", OFF(follow_match), .fn = opt_jq },
	{ DP_ARG_STRING, 0, "registry", "TOPIC",
	  "the registry (default $DP_REGISTRY, else dp.registry)", OFF(registry) },

	DP_OPT_GROUP("Where to start and stop"),
	{ DP_ARG_CALL, 0, "from", "WHERE", "beginning, end, stored, -N (last N per partition),\n"
	  "N (offset), or @TIME (RFC 3339, epoch ms, or -1h);\n"
	  "default: end, stored with -g, beginning with --follow", .fn = opt_from },
	{ DP_ARG_CALL, 0, "until", "WHEN", "end (offsets as they were at start) or @TIME",
	  .fn = opt_until },
	{ DP_ARG_U64, 'n', "count", "N", "stop after printing N records", OFF(count),
	  .min = 1, .max = -1 /* as uint64_t: no bound */ },
	{ DP_ARG_CALL, 'e', "exit", NULL, "same as --until end", .fn = opt_exit },

	DP_OPT_GROUP("Output"),
	{ DP_ARG_FLAG, 0, "envelope", NULL, "print topic, partition, offset, timestamp, key,\n"
	  "headers and value (lossless; see dp-tail(1))", OFF(envelope) },
	{ DP_ARG_CALL, 0, "filter", "JQ", "transform each value (or envelope); select() drops",
	  OFF(filter), .fn = opt_jq },
	{ DP_ARG_FLAG, 'r', "raw-output", NULL, "print a value that is a JSON string as its text,\n"
	  "without quotes (as jq -r); others stay JSON", OFF(raw) },
	{ DP_ARG_CHOICE, 0, "non-json", "MODE", "values that are not JSON: error (default), skip,\n"
	  "string, base64", OFF(non_json), .choices = dp_non_json_names },
	{ DP_ARG_FLAG, 0, "progress", NULL, "print rate and totals on stderr every second",
	  OFF(progress) },
	DP_OPT_WATCH_ROWS(struct tail, watch, 0),
	DP_OPT_KAFKA_ROWS,
	DP_OPT_END,
};

/* Operands are refused, with the way to name a topic. */
static int
operands(void *ctx, int argc, char **argv)
{
	if (argc == 0)
		return 0;
	dp_err("unexpected argument '%s' (name topics with -t)", argv[0]);
	return -1;
}

/* The combinations of options, and the defaults that follow from them. */
static int
validate(void *ctx)
{
	struct tail *t = ctx;
	struct dp_buf err = DP_BUF_INIT;
	const char *e;

	if (!t->registry)
		t->registry = (e = getenv("DP_REGISTRY")) && *e ? e : DP_REGISTRY_DEFAULT;
	if (dp_watch_validate(&t->watch, t->topics.v, t->topics.n) < 0)
		return -1;
	if (t->follow.n || t->follow_match) {
		if (t->topics.n || t->npartitions || t->group) {
			dp_err("--follow and --follow-match read dynamic topics without a group: "
			       "-t, -p and -g cannot be used with them");
			return -1;
		}
		if (t->follow_match && t->until != DP_UNTIL_NONE) {
			dp_err("--follow-match follows for ever: -e and --until are for --follow");
			return -1;
		}
		for (size_t i = 0; i < t->follow.n; i++)
			if (dp_admin_check_name(t->follow.v[i], &err)) {
				dp_err("invalid --follow '%s': %s", t->follow.v[i], dp_buf_str(&err));
				dp_buf_free(&err);
				return -1;
			}
		/* A dynamic topic holds only what was routed to it once it was active. */
		if (t->from == DP_FROM_DEFAULT)
			t->from = DP_FROM_BEGINNING;
		return 0;
	}
	if (t->topics.n == 0) {
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
	for (size_t i = 0; i < t->topics.n; i++) {
		regex_t re;
		if (t->topics.v[i][0] != '^')
			continue;
		if (t->npartitions) {
			dp_err("-p needs named topics, not a ^pattern");
			return -1;
		}
		if (regcomp(&re, t->topics.v[i], REG_EXTENDED | REG_NOSUB) != 0) {
			dp_err("invalid topic pattern '%s'", t->topics.v[i]);
			return -1;
		}
		regfree(&re);
	}
	if (t->envelope && t->non_json != DP_NON_JSON_ERROR) {
		dp_err("--non-json does not apply to --envelope (it carries any bytes)");
		return -1;
	}
	return 0;
}

/* ---- the engines' hooks ----------------------------------------------- */

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

static enum dp_consumer_verdict
halt(struct tail *t, int ev)
{
	if (!t->halt)
		t->halt = ev;
	return DP_CONSUMER_HALT;
}

/* A record stopped the reading: say why, record the status, stop now. */
static enum dp_consumer_verdict
stop(struct tail *t, int status, int ev)
{
	dp_err("%s", dp_buf_str(&t->why));
	dp_buf_reset(&t->why);
	dp_fsm_fail(&t->fsm, status);
	return halt(t, ev);
}

/* The record hook: one record into zero or more lines. */
static enum dp_consumer_verdict
on_record(struct dp_consumer *c, void *arg, struct dp_consumer_part *p,
          const rd_kafka_message_t *m)
{
	struct tail *t = arg;

	switch (dp_print_record(t->pr, m, &t->why)) {
	case DP_PRINT_OK:
		return DP_CONSUMER_NEXT;
	case DP_PRINT_COUNT:
		halt(t, E_COUNT);
		return DP_CONSUMER_LAST;
	case DP_PRINT_BAD:
		return stop(t, DP_EX_DATAERR, E_BAD_RECORD);
	case DP_PRINT_NOMEM:
		return stop(t, DP_EX_SOFTWARE, E_FATAL);
	case DP_PRINT_OUT:
	default:
		return halt(t, stdout_stopped(t));
	}
}

/* The printer's sync point: stdout is flushed before offsets are stored. */
static int
on_sync(void *arg)
{
	return dp_consumer_sync(((struct tail *)arg)->c);
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

static int
on_assigned(struct dp_consumer *c, void *arg, struct dp_consumer_part **parts, size_t n)
{
	struct tail *t = arg;

	if (t->fl)
		dp_follow_assigned(t->fl, parts, n);
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

/* A followed topic was deleted: the follower decides what that means. */
static int
on_gone(struct dp_consumer *c, void *arg, const char *topic)
{
	return dp_follow_gone(((struct tail *)arg)->fl, topic);
}

/* A followed topic went before it was read to its end: 1, after the others are read. */
static void
on_unread(void *arg)
{
	struct tail *t = arg;

	dp_fsm_fail(&t->fsm, DP_EX_PARTIAL);
}

/* ---- actions ---------------------------------------------------------- */

/* A failure the action said nothing of yet: say it, record it, and go on with ev. */
static int
failed(struct tail *t, int status, int ev)
{
	dp_err("%s", dp_buf_str(&t->err));
	dp_fsm_fail(&t->fsm, status);
	return ev;
}

/* What the follower's look at the registry ended with: a signal or a failure. */
static int
registry_event(struct tail *t, int st)
{
	return st == DP_KAFKA_STOPPED ? E_SIGNAL : failed(t, st, E_FATAL);
}

/* idle -> connecting: the client, then proof that the cluster and topics answer. */
static int
act_connect(struct dp_fsm *m, void *ctx)
{
	struct tail *t = ctx;
	const struct dp_consumer_opts opts = {
		.topics = t->topics.v, .ntopics = t->topics.n,
		.partitions = t->partitions, .npartitions = t->npartitions,
		.group = t->group,
		.from = t->from, .from_arg = t->from_arg,
		.until = t->until, .until_ms = t->until_ms, .metrics = true,
	};
	const struct dp_consumer_hooks hooks = {
		.arg = t, .record = on_record, .assigned = on_assigned, .revoked = on_revoked,
		.commit = on_commit, .gone = t->fl ? on_gone : NULL,
	};
	int st;

	if (!(t->c = dp_consumer_new(&t->common.kafka, &opts, &hooks, &t->err, &st)))
		return failed(t, st, E_BAD_CONFIG);
	if ((st = dp_consumer_connect(t->c, &t->err)) == 0 && t->fl)
		st = dp_follow_start(t->fl, t->c, &t->err);
	if (st == DP_KAFKA_STOPPED)
		return E_SIGNAL;        /* nothing read, nothing to commit */
	if (st)
		return failed(t, st, st == DP_EX_CONFIG || st == DP_EX_NOINPUT ? E_BAD_CONFIG
		                                                               : E_UNREACHABLE);
	return t->fl ? E_SUBSCRIBE : E_CONNECTED;
}

/*
 * -> subscribing: add every followed topic that is active; with none
 * to read, wait for one.
 */
static int
act_subscribe(struct dp_fsm *m, void *ctx)
{
	struct tail *t = ctx;
	int st;

	for (;;) {
		dp_buf_reset(&t->err);
		if ((st = dp_follow_subscribe(t->fl, &t->err)) == DP_KAFKA_STOPPED)
			return E_SIGNAL;
		if (st) {
			dp_warn("%s", dp_buf_str(&t->err));
			return E_SUBSCRIBE_FAILED;
		}
		if (dp_follow_next(t->fl) == DP_FOLLOW_READING) {
			dp_backoff_reset(&t->backoff);
			return E_SUBSCRIBED;
		}
		/* Waiting for a topic, the reader may leave (| head -1, | true). */
		if (dp_out_gone(t->common.out))
			return E_PIPE_CLOSED;
		if ((st = dp_follow_poll(t->fl, 200, &t->err)) != 0)
			return registry_event(t, st);
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

/* What ended the polls of the consumer, as an event. */
static int
poll_event(struct tail *t, int r, int st)
{
	switch (r) {
	case DP_CONSUMER_END:
		return E_END;
	case DP_CONSUMER_SIGNAL:
		return E_SIGNAL;
	case DP_CONSUMER_HALTED:
		return t->halt ? t->halt : E_FATAL;
	default:
		if (t->err.len || t->err.lost)
			dp_err("%s", dp_buf_str(&t->err));
		dp_fsm_fail(&t->fsm, st ? st : DP_EX_SOFTWARE);
		return E_FATAL;
	}
}

/* Following, after records came: MESSAGE_RECEIVED, or what the registry says ends the reading. */
static int
follow_read(struct tail *t)
{
	int st;

	dp_follow_finish(t->fl);
	/* While records come the registry is read too: a topic deleted and made
	 * again is learnt of before the old one's fetcher reads into the new. */
	dp_buf_reset(&t->err);
	return (st = dp_follow_poll(t->fl, 0, &t->err)) != 0 ? registry_event(t, st) : E_MESSAGE;
}

/*
 * Following, after a poll that brought nothing (ended: the topics read
 * are at their end): the event the followed topics call for, or 0.
 */
static int
follow_idle(struct tail *t, bool ended)
{
	static const int next[] = {
		[DP_FOLLOW_READING] = 0, [DP_FOLLOW_ADD] = E_SUBSCRIBE,
		[DP_FOLLOW_WAIT] = E_SUBSCRIBE, [DP_FOLLOW_DONE] = E_END,
	};
	int st;

	if (ended)              /* they leave; the others are read on */
		dp_follow_finish(t->fl);
	if (dp_out_gone(t->common.out))
		return E_PIPE_CLOSED;
	dp_buf_reset(&t->err);
	if ((st = dp_follow_poll(t->fl, 0, &t->err)) != 0)
		return registry_event(t, st);
	dp_follow_finish(t->fl);
	return next[dp_follow_next(t->fl)];
}

/*
 * -> consuming: poll until records come (MESSAGE_RECEIVED), something
 * ends the reading, or (following) a topic is to be added or waited for.
 */
static int
act_consume(struct dp_fsm *m, void *ctx)
{
	struct tail *t = ctx;
	const struct dp_print_stats *stats = dp_print_stats(t->pr);
	int ev = 0;

	if (!t->prog_started) {
		dp_progress_init(&t->prog, t->progress);
		t->prog_started = true;
	}
	do {
		uint64_t before = stats->records;
		int st = 0, r;
		bool polled;

		dp_buf_reset(&t->err);
		r = dp_consumer_poll(t->c, 100, &t->err, &st);
		dp_print_observe(t->pr);
		polled = r == DP_CONSUMER_MORE || r == DP_CONSUMER_END;       /* not stopped */
		if (polled && stats->records != before)   /* an end is seen again at the next poll */
			ev = t->fl ? follow_read(t) : E_MESSAGE;
		else if (polled && t->fl)
			ev = follow_idle(t, r == DP_CONSUMER_END);
		else if (r != DP_CONSUMER_MORE)
			ev = poll_event(t, r, st);
		else if (dp_out_gone(t->common.out))    /* nothing came: the reader may have left */
			ev = E_PIPE_CLOSED;
	} while (!ev);
	t->at_end |= ev == E_END || ev == E_COUNT;
	return ev;
}

/* consuming -> processingMessage: the records of a poll are out; take stock. */
static int
act_process(struct dp_fsm *m, void *ctx)
{
	struct tail *t = ctx;

	dp_progress_tick(&t->prog, "records", dp_print_stats(t->pr)->records, NULL, false);
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

/* ---- the frame -------------------------------------------------------- */

/* The metrics, the printer, and the follower of dynamic topics. */
static int
open_tail(void *ctx)
{
	struct tail *t = ctx;
	const struct dp_print_conf pc = {
		.out = t->common.out, .envelope = t->envelope, .raw = t->raw, .filter = t->filter,
		.non_json = (enum dp_non_json)t->non_json, .count = t->count,
		.sync = on_sync, .arg = t,
	};
	const struct dp_follow_conf fc = {
		.kafka = &t->common.kafka, .registry = t->registry,
		.names = t->follow.v, .nnames = t->follow.n, .match = t->follow_match,
		.to_end = t->until != DP_UNTIL_NONE, .unread = on_unread, .arg = t,
	};
	int st = dp_watch_start(&t->watch, &t->common.kafka, &t->fsm, "dp-tail", "kafka");

	if (st)
		return st;
	if (!(t->pr = dp_print_new(&pc)) || ((t->follow.n || t->follow_match) && !(t->fl = dp_follow_new(&fc)))) {
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	dp_backoff_init(&t->backoff, 1000, 30000, 0.2, 0);
	return 0;
}

static int
finish_tail(void *ctx, int status)
{
	struct tail *t = ctx;
	const struct dp_print_stats *s = dp_print_stats(t->pr);

	if (t->prog_started)
		dp_progress_tick(&t->prog, "records", s->records, NULL, true);
	if (s->skipped)
		dp_warn("%llu record%s skipped: value not JSON", (unsigned long long)s->skipped,
		        s->skipped == 1 ? "" : "s");
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
	uint64_t printed = dp_print_stats(t->pr)->printed;

	if (t->at_end)
		return false;
	dp_buf_msgf(said, "%llu record%s written, the rest not read", (unsigned long long)printed,
	            printed == 1 ? "" : "s");
	return true;
}

static void
close_tail(void *ctx)
{
	struct tail *t = ctx;

	dp_consumer_free(t->c);
	dp_follow_free(t->fl);
	dp_print_free(t->pr);
	dp_expr_free(t->follow_match);
	dp_expr_free(t->filter);
	free(t->topics.v);
	free(t->follow.v);
	free(t->partitions);
	dp_buf_free(&t->err);
	dp_buf_free(&t->why);
}

static const struct dp_cmd cmd = {
	.name = "dp-tail",
	.libs = dp_kafka_version,
	.synopsis = "dp-tail -t TOPIC [-t TOPIC ...] [-p N ...] [-g GROUP] [options]\n"
	            "dp-tail --follow NAME [--follow NAME ...] [--follow-match JQ] [options]",
	.about = "Consume Kafka records and print them as NDJSON on stdout.",
	.opts = options,
	.epilogue =
		"Exit status: 0 ok, stopped without -e/-n/--until, or the reader left, 64 usage,\n"
		"65 a value is not JSON or --filter failed, 66 -F unreadable, 69 cluster\n"
		"unavailable, 70 internal error, 74 stdout error or closed, 75 a commit failed,\n"
		"77 not authorized, 78 bad configuration, 81 no such topic or partition,\n"
		"130/143 SIGINT/SIGTERM before -e/-n/--until was reached.  See dp-tail(1).",
	.operands = operands,
	.machine = &machine,
	.start = E_START,
	.outbuf = 256 * 1024,
	.validate = validate,
	.open = open_tail,
	.finish = finish_tail,
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
