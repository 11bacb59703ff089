/*
 * dp-coord -- the coordinator of dynamic topics.
 *
 *   dp-coord serve                     the daemon: one of any number acts
 *   dp-coord request NAME --source T --filter JQ [--wait]
 *   dp-coord retire NAME [--delete-after D] [--wait]
 *   dp-coord list | watch
 *   dp-coord run [--match JQ] -- COMMAND ARGS...
 *
 * Applications ask for streams cut to their needs by writing a request
 * to the requests topic; the coordinator that owns the requests topic's
 * only partition creates the topic, writes its spec to the registry that
 * every follower reads and its decision to the decisions topic.  The
 * engines are in lib/dyn/: serve.h (the coordinator), ask.h (request,
 * retire), reader.h (list, watch, run), decide.h (the decisions).  This
 * file holds the options, a machine per subcommand and their actions,
 * each one step of an engine.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/exit.h"
#include "core/frame.h"
#include "core/fsm.h"
#include "core/log.h"
#include "core/parse.h"
#include "dyn/ask.h"
#include "dyn/decide.h"
#include "dyn/reader.h"
#include "dyn/registry.h"
#include "dyn/serve.h"
#include "jq/expr.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "status/watch.h"

enum sub { SUB_SERVE, SUB_REQUEST, SUB_RETIRE, SUB_LIST, SUB_WATCH, SUB_RUN };

struct coord {
	/* options */
	struct dp_common common;
	int sub;                        /* enum sub; the frame sets it */
	const char *registry;
	const char *requests;
	const char *decisions;          /* serve; NULL: requests + ".decisions" */
	char *decisions_own;            /* ... that name; owned */
	const char *group;
	const char *allow;
	uint64_t max_partitions;
	uint64_t max_topics;
	uint64_t replication;           /* serve: of its topics; 0 not given (3) */
	const char *name;               /* request, retire */
	const char *source;
	const char *filter;
	uint64_t partitions_arg;        /* -p; 0: not given */
	int32_t partitions;             /* ... as the request says it: -1 the broker's */
	struct dp_kv *config;           /* -c; owned */
	size_t nconfig;
	int64_t delete_after_ms;
	bool wait;
	int64_t wait_ms;
	const char *wait_arg;
	const char *match;
	char **run_argv;                /* borrowed from argv */
	size_t run_argc;
	int fmt;                        /* -1 auto, else formats[] */
	struct dp_watch_opts watch;     /* serve, run: --status-topic, --metrics ... */

	/* resources */
	struct dp_coord_policy policy;
	bool policy_ok;
	struct dp_expr *match_expr;
	struct dp_serve *serve;         /* serve */
	struct dp_ask *ask;             /* request, retire */
	struct dp_reader *reader;       /* list, watch, run */

	struct dp_fsm fsm;
};

/* An engine step's event; a failure it reports becomes the run's status. */
static int
ev(struct dp_fsm *m, int event, int status)
{
	if (status)
		dp_fsm_fail(m, status);
	return event;
}

/* ---- serve -------------------------------------------------------------- */

/*
 * The seed's coordinator actor (active, processingCreateTopic,
 * notifyingActors, error with RESET), plus what a real one needs: the
 * standby of a coordinator that does not own the requests partition,
 * retiring and deleting, and stopping.  Its events are the engine's
 * (dyn/serve.h).
 */
enum { S_IDLE, S_CONNECTING, S_STANDBY, S_ACTIVE, S_PROCESSING_CREATE, S_PROCESSING_RETIRE,
       S_DELETING, S_NOTIFYING, S_ERROR, S_STOPPING, S_DONE, S_FAILED, S_NSTATES };

static const char *const serve_states[S_NSTATES] = {
	"idle", "connecting", "standby", "active", "processingCreateTopic",
	"processingRetireTopic", "deletingTopic", "notifyingActors", "error", "stopping",
	"done", "failed",
};
static const char *const serve_events[DP_SERVE_NEVENTS] = {
	[DP_SERVE_START] = "START", [DP_SERVE_CONNECTED] = "CONNECTED",
	[DP_SERVE_UNREACHABLE] = "UNREACHABLE", [DP_SERVE_SIGNAL] = "SIGNAL",
	[DP_SERVE_ASSIGNED] = "ASSIGNED", [DP_SERVE_REVOKED] = "REVOKED",
	[DP_SERVE_FATAL] = "FATAL", [DP_SERVE_REQUEST_CREATE] = "REQUEST_CREATE_TOPIC",
	[DP_SERVE_REQUEST_RETIRE] = "REQUEST_RETIRE_TOPIC",
	[DP_SERVE_REQUEST_DECIDED] = "REQUEST_DECIDED_BEFORE",
	[DP_SERVE_DELETE_DUE] = "DELETE_DUE", [DP_SERVE_CREATE_SUCCESS] = "CREATE_TOPIC_SUCCESS",
	[DP_SERVE_CREATE_REJECTED] = "CREATE_TOPIC_REJECTED",
	[DP_SERVE_CREATE_IGNORED] = "CREATE_TOPIC_IGNORED",
	[DP_SERVE_CREATE_FAILURE] = "CREATE_TOPIC_FAILURE",
	[DP_SERVE_RETIRE_SUCCESS] = "RETIRE_TOPIC_SUCCESS",
	[DP_SERVE_RETIRE_REJECTED] = "RETIRE_TOPIC_REJECTED",
	[DP_SERVE_RETIRE_IGNORED] = "RETIRE_TOPIC_IGNORED",
	[DP_SERVE_DELETE_SUCCESS] = "DELETE_TOPIC_SUCCESS",
	[DP_SERVE_DELETE_FAILURE] = "DELETE_TOPIC_FAILURE",
	[DP_SERVE_NOTIFY_SUCCESS] = "NOTIFY_SUCCESS", [DP_SERVE_NOTIFY_FAILURE] = "NOTIFY_FAILURE",
	[DP_SERVE_RESET] = "RESET", [DP_SERVE_STOPPED] = "STOPPED",
};

static int act_serve_connect(struct dp_fsm *m, void *ctx);
static int act_standby(struct dp_fsm *m, void *ctx);
static int act_listen(struct dp_fsm *m, void *ctx);
static int act_create(struct dp_fsm *m, void *ctx);
static int act_retire(struct dp_fsm *m, void *ctx);
static int act_delete(struct dp_fsm *m, void *ctx);
static int act_notify(struct dp_fsm *m, void *ctx);
static int act_done(struct dp_fsm *m, void *ctx);
static int act_error(struct dp_fsm *m, void *ctx);
static int act_stop(struct dp_fsm *m, void *ctx);

static const struct dp_fsm_row serve_rows[] = {
	{ S_IDLE,              DP_SERVE_START,           S_CONNECTING,        act_serve_connect },
	{ S_CONNECTING,        DP_SERVE_CONNECTED,       S_STANDBY,           act_standby },
	{ S_CONNECTING,        DP_SERVE_UNREACHABLE,     S_FAILED,            NULL },
	{ S_CONNECTING,        DP_SERVE_SIGNAL,          S_DONE,              NULL },
	{ S_STANDBY,           DP_SERVE_ASSIGNED,        S_ACTIVE,            act_listen },
	{ S_STANDBY,           DP_SERVE_FATAL,           S_STOPPING,          act_stop },
	{ S_STANDBY,           DP_SERVE_SIGNAL,          S_STOPPING,          act_stop },
	{ S_ACTIVE,            DP_SERVE_REQUEST_CREATE,  S_PROCESSING_CREATE, act_create },
	{ S_ACTIVE,            DP_SERVE_REQUEST_RETIRE,  S_PROCESSING_RETIRE, act_retire },
	/* Replayed (a new group, offsets reset or expired): decided once only. */
	{ S_ACTIVE,            DP_SERVE_REQUEST_DECIDED, S_ACTIVE,            act_done },
	{ S_ACTIVE,            DP_SERVE_DELETE_DUE,      S_DELETING,          act_delete },
	{ S_ACTIVE,            DP_SERVE_REVOKED,         S_STANDBY,           act_standby },
	{ S_ACTIVE,            DP_SERVE_FATAL,           S_STOPPING,          act_stop },
	{ S_ACTIVE,            DP_SERVE_SIGNAL,          S_STOPPING,          act_stop },
	{ S_PROCESSING_CREATE, DP_SERVE_CREATE_SUCCESS,  S_NOTIFYING,         act_notify },
	{ S_PROCESSING_CREATE, DP_SERVE_CREATE_REJECTED, S_NOTIFYING,         act_notify },
	{ S_PROCESSING_CREATE, DP_SERVE_CREATE_IGNORED,  S_NOTIFYING,         act_notify },
	{ S_PROCESSING_CREATE, DP_SERVE_CREATE_FAILURE,  S_ERROR,             act_error },
	{ S_PROCESSING_RETIRE, DP_SERVE_RETIRE_SUCCESS,  S_NOTIFYING,         act_notify },
	{ S_PROCESSING_RETIRE, DP_SERVE_RETIRE_REJECTED, S_NOTIFYING,         act_notify },
	{ S_PROCESSING_RETIRE, DP_SERVE_RETIRE_IGNORED,  S_NOTIFYING,         act_notify },
	{ S_DELETING,          DP_SERVE_DELETE_SUCCESS,  S_NOTIFYING,         act_notify },
	{ S_DELETING,          DP_SERVE_DELETE_FAILURE,  S_ERROR,             act_error },
	{ S_NOTIFYING,         DP_SERVE_NOTIFY_SUCCESS,  S_ACTIVE,            act_done },
	{ S_NOTIFYING,         DP_SERVE_NOTIFY_FAILURE,  S_ERROR,             act_error },
	{ S_ERROR,             DP_SERVE_RESET,           S_ACTIVE,            act_listen },
	{ S_ERROR,             DP_SERVE_SIGNAL,          S_STOPPING,          act_stop },
	{ S_STOPPING,          DP_SERVE_STOPPED,         S_DONE,              NULL },
	{ S_STOPPING,          DP_SERVE_FATAL,           S_FAILED,            NULL },
};
static const struct dp_fsm_final serve_finals[] = {
	{ S_DONE, 0 }, { S_FAILED, DP_FSM_REASON },
};
static const struct dp_fsm_def serve_machine = {
	"dp-coord", serve_states, S_NSTATES, serve_events, DP_SERVE_NEVENTS,
	serve_rows, DP_FSM_COUNT(serve_rows), S_IDLE, serve_finals, DP_FSM_COUNT(serve_finals),
};

/* idle -> connecting: topics, the registry view, the producer, the group. */
static int
act_serve_connect(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	int st = 0, e = dp_serve_connect(c->serve, &st);

	return ev(m, e, st);
}

/* -> standby: wait until this coordinator owns the requests partition. */
static int
act_standby(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	int st = 0, e = dp_serve_standby(c->serve, &st);

	return ev(m, e, st);
}

/* -> active: the next thing to do.  A request in hand comes first. */
static int
act_listen(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	int st = 0, e = dp_serve_listen(c->serve, &st);

	return ev(m, e, st);
}

/* active -> processingCreateTopic: decide, and create what is granted. */
static int
act_create(struct dp_fsm *m, void *ctx)
{
	return dp_serve_create(((struct coord *)ctx)->serve);
}

/* active -> processingRetireTopic: mark it retired, with its time to go. */
static int
act_retire(struct dp_fsm *m, void *ctx)
{
	return dp_serve_retire(((struct coord *)ctx)->serve);
}

/* active -> deletingTopic: a retired topic's time has come. */
static int
act_delete(struct dp_fsm *m, void *ctx)
{
	return dp_serve_delete(((struct coord *)ctx)->serve);
}

/* -> notifyingActors: the registry record every follower sees, then the decision. */
static int
act_notify(struct dp_fsm *m, void *ctx)
{
	return dp_serve_notify(((struct coord *)ctx)->serve);
}

/* -> active, the work done: commit the request, and listen again. */
static int
act_done(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	int st = 0, e = dp_serve_done(c->serve, &st);

	return ev(m, e, st);
}

/* -> error: wait, then try again what failed (RESET). */
static int
act_error(struct dp_fsm *m, void *ctx)
{
	return dp_serve_wait(((struct coord *)ctx)->serve);
}

/* -> stopping: leave the group; what was not committed is redone by the next. */
static int
act_stop(struct dp_fsm *m, void *ctx)
{
	return dp_serve_stop(((struct coord *)ctx)->serve, m->reason != 0);
}

/* ---- request and retire: write one request, and with --wait follow its fate. */

enum { Q_IDLE, Q_CONNECTING, Q_REQUESTING, Q_WAITING, Q_DONE, Q_REJECTED, Q_FAILED,
       Q_NSTATES };

static const char *const request_states[Q_NSTATES] = {
	"idle", "connecting", "requesting", "waiting", "done", "rejected", "failed",
};
static const char *const request_events[DP_ASK_NEVENTS] = {
	[DP_ASK_START] = "start", [DP_ASK_CONNECTED] = "connected",
	[DP_ASK_UNREACHABLE] = "unreachable", [DP_ASK_REFUSED] = "refused",
	[DP_ASK_SIGNAL] = "signal", [DP_ASK_SENT] = "sent", [DP_ASK_AWAIT] = "await",
	[DP_ASK_SEND_FAILED] = "send_failed", [DP_ASK_GRANTED] = "granted",
	[DP_ASK_DENIED] = "denied", [DP_ASK_TIMEOUT] = "timeout",
	[DP_ASK_NOT_SERVED] = "not_served",
};

static int act_client_connect(struct dp_fsm *m, void *ctx);
static int act_send(struct dp_fsm *m, void *ctx);
static int act_await(struct dp_fsm *m, void *ctx);

static const struct dp_fsm_row request_rows[] = {
	{ Q_IDLE,       DP_ASK_START,       Q_CONNECTING, act_client_connect },
	{ Q_CONNECTING, DP_ASK_CONNECTED,   Q_REQUESTING, act_send },
	/* --wait: a coordinator that is only starting is waited for. */
	{ Q_CONNECTING, DP_ASK_NOT_SERVED,  Q_CONNECTING, act_client_connect },
	{ Q_CONNECTING, DP_ASK_UNREACHABLE, Q_FAILED,     NULL },
	{ Q_CONNECTING, DP_ASK_REFUSED,     Q_FAILED,     NULL },
	{ Q_CONNECTING, DP_ASK_SIGNAL,      Q_DONE,       NULL },
	{ Q_REQUESTING, DP_ASK_SENT,        Q_DONE,       NULL },
	{ Q_REQUESTING, DP_ASK_AWAIT,       Q_WAITING,    act_await },
	{ Q_REQUESTING, DP_ASK_SEND_FAILED, Q_FAILED,     NULL },
	{ Q_WAITING,    DP_ASK_GRANTED,     Q_DONE,       NULL },
	{ Q_WAITING,    DP_ASK_DENIED,      Q_REJECTED,   NULL },
	{ Q_WAITING,    DP_ASK_TIMEOUT,     Q_FAILED,     NULL },
	{ Q_WAITING,    DP_ASK_SIGNAL,      Q_FAILED,     NULL },
};
static const struct dp_fsm_final request_finals[] = {
	{ Q_DONE, 0 }, { Q_REJECTED, DP_FSM_REASON }, { Q_FAILED, DP_FSM_REASON },
};
static const struct dp_fsm_def request_machine = {
	"dp-coord request", request_states, Q_NSTATES, request_events, DP_ASK_NEVENTS,
	request_rows, DP_FSM_COUNT(request_rows), Q_IDLE, request_finals,
	DP_FSM_COUNT(request_finals),
};

/* -> connecting: the producer, the registry, and what NAME is now. */
static int
act_client_connect(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	int st = 0, e = dp_ask_connect(c->ask, &st);

	return ev(m, e, st);
}

/* connecting -> requesting: write the request, acknowledged. */
static int
act_send(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	int st = 0, e = dp_ask_send(c->ask, &st);

	return ev(m, e, st);
}

/* requesting -> waiting: follow the registry until the request is answered. */
static int
act_await(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	int st = 0, e = dp_ask_await(c->ask, &st);

	return ev(m, e, st);
}

/* ---- list, watch and run: read the registry, then report, follow or run. */

enum { R_IDLE, R_CONNECTING, R_LISTING, R_WATCHING, R_SUPERVISING, R_STOPPING, R_DONE,
       R_FAILED, R_NSTATES };

static const char *const reader_states[R_NSTATES] = {
	"idle", "connecting", "listing", "watching", "supervising", "stopping", "done", "failed",
};
static const char *const reader_events[DP_READER_NEVENTS] = {
	[DP_READER_START] = "start", [DP_READER_LOADED_LIST] = "loaded_list",
	[DP_READER_LOADED_WATCH] = "loaded_watch", [DP_READER_LOADED_RUN] = "loaded_run",
	[DP_READER_UNREACHABLE] = "unreachable", [DP_READER_SIGNAL] = "signal",
	[DP_READER_LISTED] = "listed", [DP_READER_WRITE_FAILED] = "write_failed",
	[DP_READER_PIPE_CLOSED] = "pipe_closed", [DP_READER_LOST] = "lost",
	[DP_READER_STOPPED] = "stopped",
};

static int act_load(struct dp_fsm *m, void *ctx);
static int act_list(struct dp_fsm *m, void *ctx);
static int act_watch(struct dp_fsm *m, void *ctx);
static int act_supervise(struct dp_fsm *m, void *ctx);
static int act_stop_children(struct dp_fsm *m, void *ctx);

static const struct dp_fsm_row reader_rows[] = {
	{ R_IDLE,        DP_READER_START,        R_CONNECTING,  act_load },
	{ R_CONNECTING,  DP_READER_LOADED_LIST,  R_LISTING,     act_list },
	{ R_CONNECTING,  DP_READER_LOADED_WATCH, R_WATCHING,    act_watch },
	{ R_CONNECTING,  DP_READER_LOADED_RUN,   R_SUPERVISING, act_supervise },
	{ R_CONNECTING,  DP_READER_UNREACHABLE,  R_FAILED,      NULL },
	{ R_CONNECTING,  DP_READER_SIGNAL,       R_DONE,        NULL },
	{ R_LISTING,     DP_READER_LISTED,       R_DONE,        NULL },
	{ R_LISTING,     DP_READER_WRITE_FAILED, R_FAILED,      NULL },
	{ R_WATCHING,    DP_READER_SIGNAL,       R_DONE,        NULL },
	{ R_WATCHING,    DP_READER_PIPE_CLOSED,  R_DONE,        NULL },
	{ R_WATCHING,    DP_READER_LOST,         R_FAILED,      NULL },
	{ R_SUPERVISING, DP_READER_SIGNAL,       R_STOPPING,    act_stop_children },
	{ R_SUPERVISING, DP_READER_LOST,         R_FAILED,      NULL },
	{ R_STOPPING,    DP_READER_STOPPED,      R_DONE,        NULL },
};
static const struct dp_fsm_final reader_finals[] = {
	{ R_DONE, 0 }, { R_FAILED, DP_FSM_REASON },
};
static const struct dp_fsm_def reader_machine = {
	"dp-coord reader", reader_states, R_NSTATES, reader_events, DP_READER_NEVENTS,
	reader_rows, DP_FSM_COUNT(reader_rows), R_IDLE, reader_finals,
	DP_FSM_COUNT(reader_finals),
};

/* idle -> connecting: the registry, read to its end. */
static int
act_load(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	int st = 0, e = dp_reader_load(c->reader, &st);

	return ev(m, e, st);
}

/* connecting -> listing: every spec, by name; a table on a terminal. */
static int
act_list(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	int st = 0, e = dp_reader_list(c->reader, &st);

	return ev(m, e, st);
}

/* connecting -> watching: what is there, then each change as it comes. */
static int
act_watch(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	int st = 0, e = dp_reader_watch(c->reader, &st);

	return ev(m, e, st);
}

/* connecting -> supervising: a child per wanted topic, kept running. */
static int
act_supervise(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	int st = 0, e = dp_reader_supervise(c->reader, &st);

	return ev(m, e, st);
}

/* supervising -> stopping: SIGTERM to every child, and wait for them. */
static int
act_stop_children(struct dp_fsm *m, void *ctx)
{
	return dp_reader_stop(((struct coord *)ctx)->reader);
}

/* ---- options ------------------------------------------------------------ */

/* The subcommands, by enum sub; --dot draws each machine once, in this order. */
static const struct dp_subcmd subs[] = {
	[SUB_SERVE] = { "serve", &serve_machine },
	[SUB_REQUEST] = { "request", &request_machine },
	[SUB_RETIRE] = { "retire", &request_machine },
	[SUB_LIST] = { "list", &reader_machine },
	[SUB_WATCH] = { "watch", &reader_machine },
	[SUB_RUN] = { "run", &reader_machine },
};

/* -c KEY=VALUE, repeatable: the last value of a key counts. */
static int
take_config(void *ctx, const struct dp_opt *o, char *arg)
{
	struct coord *c = ctx;

	if (dp_kv_put(&c->config, &c->nconfig, arg) < 0) {
		dp_err("invalid --topic-config '%s': expected KEY=VALUE", arg);
		return -1;
	}
	return 0;
}

/* --wait, or --wait=TIMEOUT. */
static int
take_wait(void *ctx, const struct dp_opt *o, char *arg)
{
	struct coord *c = ctx;

	c->wait = true;
	if (!arg)
		return 0;
	if (dp_parse_timeout("--wait", arg, INT32_MAX, "24d", &c->wait_ms) < 0)
		return -1;
	c->wait_arg = arg;
	return 0;
}

static const char *const formats[] = { "table", "json", NULL };

#define F(field) .off = offsetof(struct coord, field)
static const struct dp_opt opts[] = {
	DP_OPT_GROUP("Topics"),
	{ DP_ARG_STRING, 0, "registry", "TOPIC",
	  "the registry (default $DP_REGISTRY, else dp.registry)", F(registry) },
	{ DP_ARG_STRING, 0, "requests", "TOPIC",
	  "the requests (default $DP_REQUESTS, else dp.requests)", F(requests) },
	DP_OPT_GROUP("serve"),
	{ DP_ARG_STRING, 'g', "group", "GROUP",
	  "the coordinators' consumer group (default dp-coord)", F(group) },
	{ DP_ARG_STRING, 0, "decisions", "TOPIC", "the decisions made, by request id (default:\n"
	  "the requests topic's name followed by .decisions)", F(decisions),
	  .subs = DP_SUB(SUB_SERVE) },
	{ DP_ARG_STRING, 0, "allow", "REGEX", "names that may be requested (default ^dyn\\.)",
	  F(allow) },
	{ DP_ARG_U64, 0, "max-partitions", "N", "most partitions per dynamic topic (default 12)",
	  F(max_partitions), .min = 1, .max = INT32_MAX },
	{ DP_ARG_U64, 0, "max-topics", "N", "most dynamic topics active at once (default 1000)",
	  F(max_topics), .min = 1, .max = (int64_t)(SIZE_MAX / 2) },
	{ DP_ARG_U64, 0, "replication-factor", "N", "replicas of the registry, requests and\n"
	  "decisions topics it creates (default 3, or the brokers up)", F(replication), .min = 1,
	  .max = INT16_MAX, .subs = DP_SUB(SUB_SERVE) },
	DP_OPT_GROUP("request, retire"),
	{ DP_ARG_STRING, 0, "source", "TOPIC", "the fixed topic whose records feed NAME",
	  F(source), .subs = DP_SUB(SUB_REQUEST) },
	{ DP_ARG_STRING, 0, "filter", "JQ", "which of them: a jq expression over a record",
	  F(filter), .subs = DP_SUB(SUB_REQUEST) },
	{ DP_ARG_U64, 'p', "partitions", "N", "partitions of NAME (default: the broker's)",
	  F(partitions_arg), .min = 1, .max = INT32_MAX, .subs = DP_SUB(SUB_REQUEST) },
	{ DP_ARG_CALL, 'c', "topic-config", "KEY=VALUE", "topic config of NAME, repeatable",
	  .fn = take_config, .subs = DP_SUB(SUB_REQUEST) },
	{ DP_ARG_CALL, 0, "wait", "TIMEOUT", "wait for the coordinator's answer (default 30s)",
	  .fn = take_wait, .flags = DP_OPT_OPTIONAL_ARG,
	  .subs = DP_SUB(SUB_REQUEST) | DP_SUB(SUB_RETIRE) },
	{ DP_ARG_DURATION, 0, "delete-after", "DURATION",
	  "retire: delete NAME this long after (default 0)", F(delete_after_ms),
	  .subs = DP_SUB(SUB_RETIRE) },
	DP_OPT_GROUP("list, run"),
	{ DP_ARG_CHOICE, 'o', "output", "FORMAT",
	  "list: table or json (default: table on a terminal)", F(fmt), .choices = formats,
	  .subs = DP_SUB(SUB_LIST) },
	{ DP_ARG_STRING, 0, "match", "JQ", "run: only topics whose spec matches", F(match),
	  .subs = DP_SUB(SUB_RUN) },
	DP_OPT_WATCH_ROWS(struct coord, watch, DP_SUB(SUB_SERVE) | DP_SUB(SUB_RUN)),
	DP_OPT_KAFKA_ROWS,
	DP_OPT_END,
};
#undef F

/* After the subcommand: request's and retire's NAME, run's COMMAND [ARG]... */
static int
operands(void *ctx, int argc, char **argv)
{
	struct coord *c = ctx;

	if (c->sub == SUB_RUN) {
		c->run_argv = argv;
		c->run_argc = (size_t)argc;
		return 0;
	}
	if ((c->sub == SUB_REQUEST || c->sub == SUB_RETIRE) && argc > 0) {
		c->name = argv[0];
		argc--, argv++;
	}
	if (argc > 0) {
		dp_err("unexpected argument '%s'", argv[0]);
		return -1;
	}
	return 0;
}

/* What each subcommand needs, checked in one place (the frame refuses the
 * options a subcommand does not take). */
static int
validate(void *ctx)
{
	struct coord *c = ctx;
	struct dp_buf err = DP_BUF_INIT;
	const char *e;

	if (!c->registry)
		c->registry = (e = getenv("DP_REGISTRY")) && *e ? e : DP_REGISTRY_DEFAULT;
	if (!c->requests)
		c->requests = (e = getenv("DP_REQUESTS")) && *e ? e : DP_REQUESTS_DEFAULT;
	c->partitions = c->partitions_arg ? (int32_t)c->partitions_arg : -1;
	/* Only the daemons publish a status ($DP_STATUS_TOPIC is not for request, list). */
	if ((c->sub == SUB_SERVE || c->sub == SUB_RUN) &&
	    dp_watch_validate(&c->watch, (const char *const[]){ c->registry, c->requests }, 2) < 0)
		return -1;
	if (c->sub == SUB_REQUEST || c->sub == SUB_RETIRE) {
		if (!c->name) {
			dp_err("%s needs the NAME of a dynamic topic", subs[c->sub].name);
			return -1;
		}
		if (dp_admin_check_name(c->name, &err)) {
			dp_err("invalid NAME '%s': %s", c->name, dp_buf_str(&err));
			dp_buf_free(&err);
			return -1;
		}
	}
	if (c->sub == SUB_REQUEST && (!c->source || !c->filter)) {
		dp_err("request needs --source TOPIC and --filter JQ");
		return -1;
	}
	if (c->sub == SUB_RUN) {
		if (c->run_argc == 0) {
			dp_err("run needs a command: dp-coord run [--match JQ] -- COMMAND [ARG]...");
			return -1;
		}
		if (c->match && !(c->match_expr = dp_expr_compile(c->match, &err))) {
			dp_err("invalid --match: %s", dp_buf_str(&err));
			dp_buf_free(&err);
			return -1;
		}
	}
	if (c->sub == SUB_SERVE) {
		if (!c->decisions) {
			struct dp_buf name = DP_BUF_INIT;
			if (dp_buf_addf(&name, "%s.decisions", c->requests) < 0) {
				dp_err("out of memory");
				return -1;
			}
			c->decisions = c->decisions_own = dp_buf_detach(&name, NULL);
		}
		if (dp_coord_policy_init(&c->policy, c->allow, (int32_t)c->max_partitions,
		                         (size_t)c->max_topics, &err) < 0) {
			dp_err("%s", dp_buf_str(&err));
			dp_buf_free(&err);
			return -1;
		}
		c->policy_ok = true;
	}
	dp_buf_free(&err);
	return 0;
}

/* ---- main --------------------------------------------------------------- */

/* The subcommand's engine, nothing contacted yet. */
static int
open_coord(void *ctx)
{
	struct coord *c = ctx;
	struct dp_kafka_opts *kafka = &c->common.kafka;
	bool ok;
	int st;

	if ((c->sub == SUB_SERVE || c->sub == SUB_RUN) &&
	    (st = dp_watch_start(&c->watch, kafka, &c->fsm, "dp-coord", "kafka")))
		return st;
	if (c->sub == SUB_SERVE) {
		const struct dp_serve_conf conf = {
			.kafka = kafka, .registry = c->registry, .requests = c->requests,
			.decisions = c->decisions, .group = c->group, .policy = &c->policy,
			.replication = (int)c->replication,
		};
		ok = (c->serve = dp_serve_new(&conf)) != NULL;
	} else if (c->sub == SUB_REQUEST || c->sub == SUB_RETIRE) {
		const struct dp_ask_conf conf = {
			.kafka = kafka, .registry = c->registry, .requests = c->requests,
			.group = c->group,
			.action = c->sub == SUB_RETIRE ? DP_DYN_RETIRE : DP_DYN_CREATE,
			.topic = c->name, .source = c->source, .filter = c->filter,
			.partitions = c->partitions, .config = c->config, .nconfig = c->nconfig,
			.delete_after_ms = c->delete_after_ms, .wait = c->wait,
			.wait_ms = c->wait_ms, .wait_arg = c->wait_arg,
			.out = c->common.out, .stdout_failed = dp_cmd_stdout_failed,
		};
		ok = (c->ask = dp_ask_new(&conf)) != NULL;
	} else {
		const struct dp_reader_conf conf = {
			.kafka = kafka, .registry = c->registry,
			.mode = c->sub == SUB_LIST ? DP_READER_LIST : c->sub == SUB_WATCH
			        ? DP_READER_WATCH : DP_READER_RUN,
			.table = c->fmt == 0 || (c->fmt < 0 && isatty(STDOUT_FILENO)),
			.match = c->match_expr, .argv = c->run_argv, .argc = c->run_argc,
			.out = c->common.out, .stdout_failed = dp_cmd_stdout_failed,
		};
		ok = (c->reader = dp_reader_new(&conf)) != NULL;
	}
	if (!ok) {
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	return 0;
}

static void
close_coord(void *ctx)
{
	struct coord *c = ctx;

	dp_reader_free(c->reader);
	dp_serve_free(c->serve);
	dp_ask_free(c->ask);
	free(c->decisions_own);
	if (c->policy_ok)
		dp_coord_policy_free(&c->policy);
	dp_expr_free(c->match_expr);
	dp_kv_free(c->config, c->nconfig);
}

/* request, retire and list end by themselves; serve, watch and run at a signal. */
static unsigned
io_coord(void *ctx)
{
	static const unsigned io[] = {
		[SUB_SERVE] = 0,
		[SUB_REQUEST] = DP_CMD_STDOUT | DP_CMD_BOUNDED,
		[SUB_RETIRE] = DP_CMD_STDOUT | DP_CMD_BOUNDED,
		[SUB_LIST] = DP_CMD_STDOUT | DP_CMD_BOUNDED,
		[SUB_WATCH] = DP_CMD_STDOUT,
		[SUB_RUN] = 0,
	};

	return io[((const struct coord *)ctx)->sub];
}

/* A signal came in a bounded run (core/frame.h): after its end, or what it left. */
static bool
interrupted_coord(void *ctx, int status, struct dp_buf *said)
{
	const struct coord *c = ctx;

	if (c->reader) {
		if (dp_reader_finished(c->reader))
			return false;
		dp_buf_msgf(said, "the registry was not listed");
	} else if (c->ask && dp_ask_finished(c->ask)) {
		return false;
	} else if (c->ask && dp_ask_sent(c->ask)) {
		dp_buf_msgf(said, "request %s was sent but not answered yet ('dp-coord list' "
		            "shows its fate)", dp_ask_request_id(c->ask));
	} else {
		dp_buf_msgf(said, "no request was sent");
	}
	return true;
}

static const struct dp_cmd cmd = {
	.name = "dp-coord",
	.libs = dp_kafka_version,
	.synopsis =
		"dp-coord serve [-g GROUP] [--decisions TOPIC] [--allow REGEX] [--max-partitions N]\n"
		"         [--max-topics N] [--replication-factor N]\n"
		"dp-coord request NAME --source TOPIC --filter JQ [-p N] [-c KEY=VALUE]...\n"
		"         [--wait[=TIMEOUT]]\n"
		"dp-coord retire NAME [--delete-after DURATION] [--wait[=TIMEOUT]]\n"
		"dp-coord list [-o table|json]\n"
		"dp-coord watch\n"
		"dp-coord run [--match JQ] -- COMMAND [ARG]...\n",
	.about =
		"Dynamic topics: applications request streams cut to their needs, the\n"
		"coordinator creates them and records them in a registry that producers and\n"
		"consumers follow.\n",
	.opts = opts,
	.epilogue =
		"serve: a filter is granted when it is at most 4096 bytes and in the jq subset\n"
		"that producers evaluate without libjq (see Filters in dp-coord(1)).\n"
		"\n"
		"Exit status: 0 ok (serve, watch, run: also after a signal); request --wait:\n"
		"65 rejected (bad filter or request), 80 exists, 81 source missing, 82 name not\n"
		"allowed, 83 too many partitions or topics, 69 no coordinator answered; request,\n"
		"retire, list: 130/143 SIGINT/SIGTERM before the end.  See dp-coord(1).\n",
	.subs = subs,
	.nsubs = DP_FSM_COUNT(subs),
	.sub_off = offsetof(struct coord, sub),
	.operands = operands,
	.machine = &serve_machine,
	.start = 0,
	.validate = validate,
	.open = open_coord,
	.close = close_coord,
	.io = io_coord,
	.interrupted = interrupted_coord,
};

int
main(int argc, char **argv)
{
	static struct coord c = {
		.group = "dp-coord", .allow = DP_COORD_ALLOW_DEFAULT, .max_partitions = 12,
		.max_topics = 1000, .wait_ms = 30000, .wait_arg = "30s", .fmt = -1,
	};

	return dp_cmd_main(&cmd, &c, &c.common, &c.fsm, argc, argv);
}
