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
 * only partition (one consumer group, so exactly one) creates the topic
 * and writes its spec to the registry, a compacted topic that every
 * follower reads (dyn/registry.h), and its decision to the decisions topic,
 * so that no replay of the requests decides a request twice.  The
 * decisions are in lib/dyn/decide.c, the record formats in lib/dyn/spec.h; this
 * file holds the options, the machines and the actions that drive them.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "core/backoff.h"
#include "core/cli.h"
#include "core/exit.h"
#include "core/frame.h"
#include "core/fsm.h"
#include "core/log.h"
#include "core/out.h"
#include "core/sig.h"
#include "core/table.h"
#include "core/timefmt.h"
#include "dyn/decide.h"
#include "dyn/registry.h"
#include "dyn/spec.h"
#include "dyn/supervise.h"
#include "jq/expr.h"
#include "json/write.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "kafka/consumer.h"
#include "kafka/producer.h"

enum sub { SUB_NONE, SUB_SERVE, SUB_REQUEST, SUB_RETIRE, SUB_LIST, SUB_WATCH, SUB_RUN };
static const char *const sub_names[] = {
	"", "serve", "request", "retire", "list", "watch", "run",
};

struct coord {
	/* options */
	struct dp_common common;
	enum sub sub;
	const char *registry;
	const char *requests;
	const char *decisions;          /* serve; NULL: requests + ".decisions" */
	char *decisions_own;            /* ... that name; owned */
	const char *group;
	const char *allow;
	uint64_t max_partitions;
	uint64_t max_topics;
	const char *name;               /* request, retire */
	const char *source;
	const char *filter;
	int32_t partitions;
	struct dp_kv *config;           /* -c; owned */
	size_t nconfig;
	int64_t delete_after_ms;
	bool wait;
	int64_t wait_ms;
	const char *wait_arg;
	const char *match;
	char **run_argv;                /* borrowed from argv */
	size_t run_argc;
	int fmt;                        /* 0 auto, 1 table, 2 json */

	/* resources */
	struct dp_registry *reg;
	struct dp_registry *dec;        /* serve: the decisions topic's view ... */
	struct dp_coord_decisions *decided;   /* ... what it holds */
	int64_t prune_at;               /* when to forget gone requests' decisions (mono ms) */
	struct dp_producer *prod;
	struct dp_consumer *cons;       /* serve: the requests */
	rd_kafka_t *admin;              /* serve: topic admin */
	struct dp_coord_policy policy;
	bool policy_ok;
	struct dp_expr *match_expr;
	struct dp_sup *sup;
	struct dp_backoff backoff;
	struct dp_buf err;

	/* serve: the request in hand, and what to write */
	struct dp_dyn_request req;
	bool have_req;
	struct dp_consumer_part *req_part;
	int64_t req_offset;
	bool assigned;                  /* the requests partition is ours */
	unsigned revokes;               /* times it was taken away */
	unsigned revokes_seen;          /* ... as far as the machine knows */
	char *deleting;                 /* a retired topic being deleted; owned */
	char *notice_key;               /* the registry record to write; owned */
	struct dp_buf notice;           /* its value; empty for a tombstone */
	bool tombstone;
	int64_t written;                /* registry offset of the last write, -1 */
	struct dp_dyn_decision decision;   /* the request's, to write; request_id NULL: none */

	/* request, retire */
	char request_id[33];
	bool sent;                      /* the request was acknowledged */
	bool finished;                  /* request, retire, list: all done (core/frame.h) */

	/* watch, run */
	bool loaded;                    /* the view is current: changes count */
	bool out_failed;                /* stdout failed: the watch ends */

	struct dp_fsm fsm;
};

static int64_t
now_ms(void)
{
	return dp_time_now_ms();
}

/* ---- the machines ------------------------------------------------------- */

/*
 * serve: the seed's coordinator actor (active, processingCreateTopic,
 * notifyingActors, error with RESET), plus what a real one needs: the
 * standby of a coordinator that does not own the requests partition,
 * retiring and deleting, and stopping.
 */
enum { S_IDLE, S_CONNECTING, S_STANDBY, S_ACTIVE, S_PROCESSING_CREATE, S_PROCESSING_RETIRE,
       S_DELETING, S_NOTIFYING, S_ERROR, S_STOPPING, S_DONE, S_FAILED, S_NSTATES };
enum { E_START, E_CONNECTED, E_UNREACHABLE, E_SIGNAL, E_ASSIGNED, E_REVOKED, E_FATAL,
       E_REQUEST_CREATE, E_REQUEST_RETIRE, E_REQUEST_DECIDED, E_DELETE_DUE, E_CREATE_SUCCESS,
       E_CREATE_REJECTED, E_CREATE_IGNORED, E_CREATE_FAILURE, E_RETIRE_SUCCESS,
       E_RETIRE_REJECTED, E_RETIRE_IGNORED, E_DELETE_SUCCESS, E_DELETE_FAILURE,
       E_NOTIFY_SUCCESS, E_NOTIFY_FAILURE, E_RESET, E_STOPPED, E_NEVENTS };

static const char *const serve_states[S_NSTATES] = {
	"idle", "connecting", "standby", "active", "processingCreateTopic",
	"processingRetireTopic", "deletingTopic", "notifyingActors", "error", "stopping",
	"done", "failed",
};
static const char *const serve_events[E_NEVENTS] = {
	"START", "CONNECTED", "UNREACHABLE", "SIGNAL", "ASSIGNED", "REVOKED", "FATAL",
	"REQUEST_CREATE_TOPIC", "REQUEST_RETIRE_TOPIC", "REQUEST_DECIDED_BEFORE", "DELETE_DUE",
	"CREATE_TOPIC_SUCCESS", "CREATE_TOPIC_REJECTED", "CREATE_TOPIC_IGNORED",
	"CREATE_TOPIC_FAILURE", "RETIRE_TOPIC_SUCCESS", "RETIRE_TOPIC_REJECTED",
	"RETIRE_TOPIC_IGNORED", "DELETE_TOPIC_SUCCESS", "DELETE_TOPIC_FAILURE", "NOTIFY_SUCCESS",
	"NOTIFY_FAILURE", "RESET", "STOPPED",
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
	{ S_IDLE,              E_START,           S_CONNECTING,        act_serve_connect },
	{ S_CONNECTING,        E_CONNECTED,       S_STANDBY,           act_standby },
	{ S_CONNECTING,        E_UNREACHABLE,     S_FAILED,            NULL },
	{ S_CONNECTING,        E_SIGNAL,          S_DONE,              NULL },
	{ S_STANDBY,           E_ASSIGNED,        S_ACTIVE,            act_listen },
	{ S_STANDBY,           E_FATAL,           S_STOPPING,          act_stop },
	{ S_STANDBY,           E_SIGNAL,          S_STOPPING,          act_stop },
	{ S_ACTIVE,            E_REQUEST_CREATE,  S_PROCESSING_CREATE, act_create },
	{ S_ACTIVE,            E_REQUEST_RETIRE,  S_PROCESSING_RETIRE, act_retire },
	/* Replayed (a new group, offsets reset or expired): decided once only. */
	{ S_ACTIVE,            E_REQUEST_DECIDED, S_ACTIVE,            act_done },
	{ S_ACTIVE,            E_DELETE_DUE,      S_DELETING,          act_delete },
	{ S_ACTIVE,            E_REVOKED,         S_STANDBY,           act_standby },
	{ S_ACTIVE,            E_FATAL,           S_STOPPING,          act_stop },
	{ S_ACTIVE,            E_SIGNAL,          S_STOPPING,          act_stop },
	{ S_PROCESSING_CREATE, E_CREATE_SUCCESS,  S_NOTIFYING,         act_notify },
	{ S_PROCESSING_CREATE, E_CREATE_REJECTED, S_NOTIFYING,         act_notify },
	{ S_PROCESSING_CREATE, E_CREATE_IGNORED,  S_NOTIFYING,         act_notify },
	{ S_PROCESSING_CREATE, E_CREATE_FAILURE,  S_ERROR,             act_error },
	{ S_PROCESSING_RETIRE, E_RETIRE_SUCCESS,  S_NOTIFYING,         act_notify },
	{ S_PROCESSING_RETIRE, E_RETIRE_REJECTED, S_NOTIFYING,         act_notify },
	{ S_PROCESSING_RETIRE, E_RETIRE_IGNORED,  S_NOTIFYING,         act_notify },
	{ S_DELETING,          E_DELETE_SUCCESS,  S_NOTIFYING,         act_notify },
	{ S_DELETING,          E_DELETE_FAILURE,  S_ERROR,             act_error },
	{ S_NOTIFYING,         E_NOTIFY_SUCCESS,  S_ACTIVE,            act_done },
	{ S_NOTIFYING,         E_NOTIFY_FAILURE,  S_ERROR,             act_error },
	{ S_ERROR,             E_RESET,           S_ACTIVE,            act_listen },
	{ S_ERROR,             E_SIGNAL,          S_STOPPING,          act_stop },
	{ S_STOPPING,          E_STOPPED,         S_DONE,              NULL },
	{ S_STOPPING,          E_FATAL,           S_FAILED,            NULL },
};
static const struct dp_fsm_final serve_finals[] = {
	{ S_DONE, 0 }, { S_FAILED, DP_FSM_REASON },
};
static const struct dp_fsm_def serve_machine = {
	"dp-coord", serve_states, S_NSTATES, serve_events, E_NEVENTS,
	serve_rows, DP_FSM_COUNT(serve_rows), S_IDLE, serve_finals, DP_FSM_COUNT(serve_finals),
};

/* request and retire: write one request, and with --wait follow its fate. */
enum { Q_IDLE, Q_CONNECTING, Q_REQUESTING, Q_WAITING, Q_DONE, Q_REJECTED, Q_FAILED,
       Q_NSTATES };
enum { QE_START, QE_CONNECTED, QE_UNREACHABLE, QE_REFUSED, QE_SIGNAL, QE_SENT, QE_AWAIT,
       QE_SEND_FAILED, QE_GRANTED, QE_DENIED, QE_TIMEOUT, QE_NEVENTS };

static const char *const request_states[Q_NSTATES] = {
	"idle", "connecting", "requesting", "waiting", "done", "rejected", "failed",
};
static const char *const request_events[QE_NEVENTS] = {
	"start", "connected", "unreachable", "refused", "signal", "sent", "await",
	"send_failed", "granted", "denied", "timeout",
};

static int act_client_connect(struct dp_fsm *m, void *ctx);
static int act_send(struct dp_fsm *m, void *ctx);
static int act_await(struct dp_fsm *m, void *ctx);

static const struct dp_fsm_row request_rows[] = {
	{ Q_IDLE,       QE_START,       Q_CONNECTING, act_client_connect },
	{ Q_CONNECTING, QE_CONNECTED,   Q_REQUESTING, act_send },
	{ Q_CONNECTING, QE_UNREACHABLE, Q_FAILED,     NULL },
	{ Q_CONNECTING, QE_REFUSED,     Q_FAILED,     NULL },
	{ Q_CONNECTING, QE_SIGNAL,      Q_DONE,       NULL },
	{ Q_REQUESTING, QE_SENT,        Q_DONE,       NULL },
	{ Q_REQUESTING, QE_AWAIT,       Q_WAITING,    act_await },
	{ Q_REQUESTING, QE_SEND_FAILED, Q_FAILED,     NULL },
	{ Q_WAITING,    QE_GRANTED,     Q_DONE,       NULL },
	{ Q_WAITING,    QE_DENIED,      Q_REJECTED,   NULL },
	{ Q_WAITING,    QE_TIMEOUT,     Q_FAILED,     NULL },
	{ Q_WAITING,    QE_SIGNAL,      Q_FAILED,     NULL },
};
static const struct dp_fsm_final request_finals[] = {
	{ Q_DONE, 0 }, { Q_REJECTED, DP_FSM_REASON }, { Q_FAILED, DP_FSM_REASON },
};
static const struct dp_fsm_def request_machine = {
	"dp-coord request", request_states, Q_NSTATES, request_events, QE_NEVENTS,
	request_rows, DP_FSM_COUNT(request_rows), Q_IDLE, request_finals,
	DP_FSM_COUNT(request_finals),
};

/* list, watch and run: read the registry, then report, follow or run. */
enum { R_IDLE, R_CONNECTING, R_LISTING, R_WATCHING, R_SUPERVISING, R_STOPPING, R_DONE,
       R_FAILED, R_NSTATES };
enum { RE_START, RE_LOADED_LIST, RE_LOADED_WATCH, RE_LOADED_RUN, RE_UNREACHABLE, RE_SIGNAL,
       RE_LISTED, RE_WRITE_FAILED, RE_PIPE_CLOSED, RE_LOST, RE_STOPPED, RE_NEVENTS };

static const char *const reader_states[R_NSTATES] = {
	"idle", "connecting", "listing", "watching", "supervising", "stopping", "done", "failed",
};
static const char *const reader_events[RE_NEVENTS] = {
	"start", "loaded_list", "loaded_watch", "loaded_run", "unreachable", "signal",
	"listed", "write_failed", "pipe_closed", "lost", "stopped",
};

static int act_load(struct dp_fsm *m, void *ctx);
static int act_list(struct dp_fsm *m, void *ctx);
static int act_watch(struct dp_fsm *m, void *ctx);
static int act_supervise(struct dp_fsm *m, void *ctx);
static int act_stop_children(struct dp_fsm *m, void *ctx);

static const struct dp_fsm_row reader_rows[] = {
	{ R_IDLE,        RE_START,        R_CONNECTING,  act_load },
	{ R_CONNECTING,  RE_LOADED_LIST,  R_LISTING,     act_list },
	{ R_CONNECTING,  RE_LOADED_WATCH, R_WATCHING,    act_watch },
	{ R_CONNECTING,  RE_LOADED_RUN,   R_SUPERVISING, act_supervise },
	{ R_CONNECTING,  RE_UNREACHABLE,  R_FAILED,      NULL },
	{ R_CONNECTING,  RE_SIGNAL,       R_DONE,        NULL },
	{ R_LISTING,     RE_LISTED,       R_DONE,        NULL },
	{ R_LISTING,     RE_WRITE_FAILED, R_FAILED,      NULL },
	{ R_WATCHING,    RE_SIGNAL,       R_DONE,        NULL },
	{ R_WATCHING,    RE_PIPE_CLOSED,  R_DONE,        NULL },
	{ R_WATCHING,    RE_LOST,         R_FAILED,      NULL },
	{ R_SUPERVISING, RE_SIGNAL,       R_STOPPING,    act_stop_children },
	{ R_SUPERVISING, RE_LOST,         R_FAILED,      NULL },
	{ R_STOPPING,    RE_STOPPED,      R_DONE,        NULL },
};
static const struct dp_fsm_final reader_finals[] = {
	{ R_DONE, 0 }, { R_FAILED, DP_FSM_REASON },
};
static const struct dp_fsm_def reader_machine = {
	"dp-coord reader", reader_states, R_NSTATES, reader_events, RE_NEVENTS,
	reader_rows, DP_FSM_COUNT(reader_rows), R_IDLE, reader_finals,
	DP_FSM_COUNT(reader_finals),
};

static const struct dp_fsm_def *const machines[] = {
	&serve_machine, &request_machine, &reader_machine, NULL,
};

static size_t
choose(void *ctx)
{
	const struct coord *c = ctx;

	switch (c->sub) {
	case SUB_SERVE:   return 0;
	case SUB_REQUEST:
	case SUB_RETIRE:  return 1;
	default:          return 2;
	}
}

/* ---- options ------------------------------------------------------------ */

enum { OPT_REGISTRY = DP_OPT_CMD, OPT_REQUESTS, OPT_DECISIONS, OPT_ALLOW, OPT_MAX_PARTITIONS,
       OPT_MAX_TOPICS, OPT_SOURCE, OPT_FILTER, OPT_WAIT, OPT_DELETE_AFTER, OPT_MATCH };

static const struct option longopts[] = {
	{ "registry",       required_argument, NULL, OPT_REGISTRY },
	{ "requests",       required_argument, NULL, OPT_REQUESTS },
	{ "decisions",      required_argument, NULL, OPT_DECISIONS },
	{ "group",          required_argument, NULL, 'g' },
	{ "allow",          required_argument, NULL, OPT_ALLOW },
	{ "max-partitions", required_argument, NULL, OPT_MAX_PARTITIONS },
	{ "max-topics",     required_argument, NULL, OPT_MAX_TOPICS },
	{ "source",         required_argument, NULL, OPT_SOURCE },
	{ "filter",         required_argument, NULL, OPT_FILTER },
	{ "partitions",     required_argument, NULL, 'p' },
	{ "topic-config",   required_argument, NULL, 'c' },
	{ "wait",           optional_argument, NULL, OPT_WAIT },
	{ "delete-after",   required_argument, NULL, OPT_DELETE_AFTER },
	{ "match",          required_argument, NULL, OPT_MATCH },
	{ "output",         required_argument, NULL, 'o' },
	DP_CLI_KAFKA_LONG,
	DP_CLI_BASE_LONG,
	{ NULL, 0, NULL, 0 },
};

static void
usage(FILE *fp)
{
	fputs("usage: dp-coord serve [-g GROUP] [--decisions TOPIC] [--allow REGEX] [--max-partitions N]\n"
	      "                [--max-topics N]\n"
	      "       dp-coord request NAME --source TOPIC --filter JQ [-p N] [-c KEY=VALUE]...\n"
	      "                [--wait[=TIMEOUT]]\n"
	      "       dp-coord retire NAME [--delete-after DURATION] [--wait[=TIMEOUT]]\n"
	      "       dp-coord list [-o table|json]\n"
	      "       dp-coord watch\n"
	      "       dp-coord run [--match JQ] -- COMMAND [ARG]...\n"
	      "\n"
	      "Dynamic topics: applications request streams cut to their needs, the\n"
	      "coordinator creates them and records them in a registry that producers and\n"
	      "consumers follow.\n"
	      "\n"
	      "Topics:\n"
	      "      --registry TOPIC        the registry (default $DP_REGISTRY, else dp.registry)\n"
	      "      --requests TOPIC        the requests (default $DP_REQUESTS, else dp.requests)\n"
	      "\n"
	      "serve:\n"
	      "  -g, --group GROUP           the coordinators' consumer group (default dp-coord)\n"
	      "      --decisions TOPIC       the decisions made, by request id (default: the\n"
	      "                              requests topic's name followed by .decisions)\n"
	      "      --allow REGEX           names that may be requested (default ^dyn\\.)\n"
	      "      --max-partitions N      most partitions per dynamic topic (default 12)\n"
	      "      --max-topics N          most dynamic topics active at once (default 1000)\n"
	      "  A filter is granted when it is at most 4096 bytes and in the jq subset that\n"
	      "  producers evaluate without libjq (see Filters in dp-coord(1)).\n"
	      "\n"
	      "request, retire:\n"
	      "      --source TOPIC          the fixed topic whose records feed NAME\n"
	      "      --filter JQ             which of them: a jq expression over a record\n"
	      "  -p, --partitions N          partitions of NAME (default: the broker's)\n"
	      "  -c, --topic-config KEY=VALUE  topic config of NAME, repeatable\n"
	      "      --wait[=TIMEOUT]        wait for the coordinator's answer (default 30s)\n"
	      "      --delete-after DURATION retire: delete NAME this long after (default 0)\n"
	      "\n"
	      "list, run:\n"
	      "  -o, --output FORMAT         list: table or json (default: table on a terminal)\n"
	      "      --match JQ              run: only topics whose spec matches\n", fp);
	dp_cli_help_common(fp, true);
	fputs("\nExit status: 0 ok (serve, watch, run: also after a signal); request --wait:\n"
	      "65 rejected (bad filter or request), 80 exists, 81 source missing, 82 name not\n"
	      "allowed, 83 too many partitions or topics, 69 no coordinator answered; request,\n"
	      "retire, list: 130/143 SIGINT/SIGTERM before the end.  See dp-coord(1).\n", fp);
}

static int
parse_options(void *ctx, int argc, char **argv)
{
	struct coord *c = ctx;
	const char *shortopts = "+g:p:c:o:" DP_CLI_KAFKA_SHORT DP_CLI_BASE_SHORT;
	const char *e;
	uint64_t n;
	int opt;

	c->registry = (e = getenv("DP_REGISTRY")) && *e ? e : DP_REGISTRY_DEFAULT;
	c->requests = (e = getenv("DP_REQUESTS")) && *e ? e : DP_REQUESTS_DEFAULT;
	c->group = "dp-coord";
	c->allow = DP_COORD_ALLOW_DEFAULT;
	c->max_partitions = 12;
	c->max_topics = 1000;
	c->partitions = -1;
	c->wait_ms = 30000;
	c->wait_arg = "30s";
	/*
	 * "+": stop at the first word that is not an option, the subcommand;
	 * then go on after it (its options may follow it), and for run stop
	 * again at "--", where the command to run starts.
	 */
	for (int pass = 0; pass < 2; pass++) {
		while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
			switch (opt) {
			case OPT_REGISTRY:       c->registry = optarg; break;
			case OPT_REQUESTS:       c->requests = optarg; break;
			case OPT_DECISIONS:      c->decisions = optarg; break;
			case 'g':                c->group = optarg; break;
			case OPT_ALLOW:          c->allow = optarg; break;
			case OPT_SOURCE:         c->source = optarg; break;
			case OPT_FILTER:         c->filter = optarg; break;
			case OPT_MATCH:          c->match = optarg; break;
			case OPT_MAX_PARTITIONS:
				if (dp_parse_u64("--max-partitions", optarg, 1, INT32_MAX,
				                 &c->max_partitions) < 0)
					return -1;
				break;
			case OPT_MAX_TOPICS:
				if (dp_parse_u64("--max-topics", optarg, 1, SIZE_MAX / 2,
				                 &c->max_topics) < 0)
					return -1;
				break;
			case 'p':
				if (dp_parse_u64("--partitions", optarg, 1, INT32_MAX, &n) < 0)
					return -1;
				c->partitions = (int32_t)n;
				break;
			case 'c':
				if (dp_kv_put(&c->config, &c->nconfig, optarg) < 0) {
					dp_err("invalid --topic-config '%s': expected KEY=VALUE", optarg);
					return -1;
				}
				break;
			case OPT_WAIT:
				c->wait = true;
				if (optarg) {
					if (dp_parse_timeout("--wait", optarg, INT32_MAX, "24d",
					                     &c->wait_ms) < 0)
						return -1;
					c->wait_arg = optarg;
				}
				break;
			case OPT_DELETE_AFTER:
				if (dp_parse_duration("--delete-after", optarg,
				                      &c->delete_after_ms) < 0)
					return -1;
				break;
			case 'o':
				if (!strcmp(optarg, "table"))
					c->fmt = 1;
				else if (!strcmp(optarg, "json"))
					c->fmt = 2;
				else {
					dp_err("invalid --output '%s': expected table or json", optarg);
					return -1;
				}
				break;
			case '?':
				dp_cli_bad_option(argv);
				return -1;
			default:
				if (dp_cli_common(&c->common, opt, optarg) != 1)
					return -1;
			}
		}
		if (pass == 1 || optind >= argc)
			break;
		if (!strcmp(argv[optind - 1], "--"))
			break;          /* "dp-coord -- x": no subcommand */
		for (size_t i = 1; i < sizeof(sub_names) / sizeof(sub_names[0]); i++)
			if (!strcmp(argv[optind], sub_names[i]))
				c->sub = (enum sub)i;
		if (c->sub == SUB_NONE) {
			dp_err("unknown subcommand '%s' (expected serve, request, retire, list, "
			       "watch or run)", argv[optind]);
			return -1;
		}
		optind++;
		if ((c->sub == SUB_REQUEST || c->sub == SUB_RETIRE) && optind < argc &&
		    argv[optind][0] != '-')
			c->name = argv[optind++];
	}
	if (c->sub == SUB_RUN) {
		c->run_argv = argv + optind;
		c->run_argc = (size_t)(argc - optind);
	} else if (optind < argc) {
		dp_err("unexpected argument '%s'", argv[optind]);
		return -1;
	}
	return 0;
}

/* Options that belong to one subcommand only, checked in one place. */
static int
validate(void *ctx)
{
	struct coord *c = ctx;
	struct dp_buf err = DP_BUF_INIT;
	const char *sub = sub_names[c->sub];

	if (c->sub == SUB_NONE) {
		dp_err("no subcommand (expected serve, request, retire, list, watch or run)");
		return -1;
	}
	if ((c->source || c->filter || c->partitions > 0 || c->nconfig) && c->sub != SUB_REQUEST) {
		dp_err("--source, --filter, --partitions and --topic-config are for request, not %s",
		       sub);
		return -1;
	}
	if (c->wait && c->sub != SUB_REQUEST && c->sub != SUB_RETIRE) {
		dp_err("--wait is for request and retire, not %s", sub);
		return -1;
	}
	if (c->delete_after_ms && c->sub != SUB_RETIRE) {
		dp_err("--delete-after is for retire, not %s", sub);
		return -1;
	}
	if (c->decisions && c->sub != SUB_SERVE) {
		dp_err("--decisions is for serve, not %s", sub);
		return -1;
	}
	if (c->match && c->sub != SUB_RUN) {
		dp_err("--match is for run, not %s", sub);
		return -1;
	}
	if (c->fmt && c->sub != SUB_LIST) {
		dp_err("--output is for list, not %s", sub);
		return -1;
	}
	if (c->sub == SUB_REQUEST || c->sub == SUB_RETIRE) {
		if (!c->name) {
			dp_err("%s needs the NAME of a dynamic topic", sub);
			return -1;
		}
		if (dp_admin_check_name(c->name, &err)) {
			dp_err("invalid NAME '%s': %s", c->name, dp_buf_str(&err));
			dp_buf_free(&err);
			return -1;
		}
	}
	if (c->sub == SUB_REQUEST) {
		if (!c->source || !c->filter) {
			dp_err("request needs --source TOPIC and --filter JQ");
			return -1;
		}
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
			dp_buf_free(&name);
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

/* ---- serve -------------------------------------------------------------- */

/* The requests partition is ours: take requests one at a time. */
static int
on_assigned(struct dp_consumer *cons, void *arg, struct dp_consumer_part **parts, size_t n)
{
	struct coord *c = arg;

	c->assigned = true;
	dp_info("this coordinator owns %s now", c->requests);
	return 0;
}

static int
on_revoked(struct dp_consumer *cons, void *arg, struct dp_consumer_part **parts, size_t n)
{
	struct coord *c = arg;

	/*
	 * A request not committed yet is the next owner's to redo.  Counted:
	 * an eager rebalance may give the partition back within the same
	 * poll, and the machine must still pass through standby.
	 */
	c->assigned = false;
	c->revokes++;
	if (c->have_req) {
		dp_dyn_request_clear(&c->req);
		c->have_req = false;
	}
	dp_info("this coordinator no longer owns %s", c->requests);
	return 0;
}

/* One request record: kept for the machine, or skipped when unreadable. */
static enum dp_consumer_verdict
on_request(struct dp_consumer *cons, void *arg, struct dp_consumer_part *p,
           const rd_kafka_message_t *m)
{
	struct coord *c = arg;
	struct dp_buf why = DP_BUF_INIT;

	if (!m->payload || (dp_dyn_request_parse(m->payload, m->len, &c->req, &why) < 0 &&
	                    !c->req.request_id)) {
		/* No request_id or topic: no one to answer. */
		dp_warn("request at %s offset %lld skipped: %s", c->requests,
		        (long long)m->offset, m->payload ? dp_buf_str(&why) : "no value");
		dp_dyn_request_clear(&c->req);
		dp_buf_free(&why);
		return DP_CONSUMER_NEXT;
	}
	/* An invalid one that says who asked is refused by its request_id. */
	dp_buf_free(&why);
	c->have_req = true;
	c->req_part = p;
	c->req_offset = m->offset;
	return DP_CONSUMER_LAST;
}

/* A record of the decisions topic, into the decisions known. */
static int
on_decision(void *arg, const char *where, const char *key, size_t keylen, const char *value,
            size_t len)
{
	struct coord *c = arg;

	return dp_coord_decisions_apply(c->decided, where, key, keylen, value, len);
}

/* The registry, requests and decisions topics exist, as the coordinator wants them. */
static int
ensure_topics(struct coord *c, struct dp_buf *err)
{
	struct dp_kv compact = { "cleanup.policy", "compact" };
	struct dp_admin_spec specs[3] = {
		{ (char *)c->registry, 1, -1, &compact, 1 },
		{ (char *)c->requests, 1, -1, NULL, 0 },
		{ (char *)c->decisions, 1, -1, &compact, 1 },
	};

	for (size_t i = 0; i < 3; i++) {
		struct dp_admin_result res = { 0 };
		bool created;
		int st = dp_admin_ensure(c->admin, &specs[i], (int)c->common.kafka.timeout_ms, &res,
		                         &created);
		if (st) {
			dp_buf_msgf(err, "cannot set up topic '%s': %s", specs[i].name,
			            res.error ? res.error : "failed");
			dp_admin_result_clear(&res);
			return st;
		}
		if (created)
			dp_info("created topic '%s'", specs[i].name);
		dp_admin_result_clear(&res);
	}
	return 0;
}

/* idle -> connecting: topics, the registry view, the producer, the group. */
static int
act_serve_connect(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	struct dp_buf *err = &c->err;
	int st;
	/* A coordinator that dies is replaced within about this long. */
	static const struct dp_kv consumer_defaults[] = {
		{ "session.timeout.ms", "10000" },
		{ "heartbeat.interval.ms", "1000" },
	};
	const char *topics[1] = { c->requests };
	const struct dp_consumer_opts opts = {
		.topics = topics, .ntopics = 1, .group = c->group, .from = DP_FROM_STORED,
		.manual_commit = true, .defaults = consumer_defaults, .ndefaults = 2,
	};
	const struct dp_consumer_hooks hooks = {
		.arg = c, .record = on_request, .assigned = on_assigned, .revoked = on_revoked,
	};
	const struct dp_producer_conf pconf = { .kafka = &c->common.kafka, .topic = c->registry };
	const struct dp_registry_conf rconf = { .kafka = &c->common.kafka, .topic = c->registry };
	const struct dp_registry_conf dconf = {
		.kafka = &c->common.kafka, .topic = c->decisions, .record = on_decision, .arg = c,
	};
	static const struct dp_kv admin_defaults[] = { { "allow.auto.create.topics", "false" } };

	c->admin = dp_kafka_new(&c->common.kafka, RD_KAFKA_PRODUCER, admin_defaults, 1, NULL, NULL,
	                        err, &st);
	if (c->admin)
		st = dp_kafka_connect(c->admin, &c->common.kafka, NULL, 0, NULL, err);
	if (st == 0)
		st = ensure_topics(c, err);
	if (st == 0 && !(c->reg = dp_registry_new(&rconf, err, &st)))
		st = st ? st : DP_EX_SOFTWARE;
	if (st == 0)
		st = dp_registry_load(c->reg, err);
	if (st == 0 && !(c->decided = dp_coord_decisions_new())) {
		dp_buf_msgf(err, "out of memory");
		st = DP_EX_SOFTWARE;
	}
	if (st == 0 && !(c->dec = dp_registry_new(&dconf, err, &st)))
		st = st ? st : DP_EX_SOFTWARE;
	if (st == 0)
		st = dp_registry_load(c->dec, err);
	if (st == 0 && !(c->prod = dp_producer_new(&pconf, err, &st)))
		st = st ? st : DP_EX_SOFTWARE;
	if (st == 0)
		st = dp_producer_connect(c->prod, NULL, 0, err);
	if (st == 0 && !(c->cons = dp_consumer_new(&c->common.kafka, &opts, &hooks, err, &st)))
		st = st ? st : DP_EX_SOFTWARE;
	if (st == 0)
		st = dp_consumer_connect(c->cons, err);
	if (st == DP_KAFKA_STOPPED || dp_sig_stop)
		return E_SIGNAL;
	if (st) {
		dp_err("%s", dp_buf_str(err));
		dp_fsm_fail(m, st);
		return E_UNREACHABLE;
	}
	dp_backoff_init(&c->backoff, 500, 30000, 0.5, 0);
	return E_CONNECTED;
}

/*
 * Poll the requests (and keep the registry view current).  Returns 0
 * when nothing happened, else the event: SIGNAL, FATAL, or -1 when a
 * request arrived.
 */
static int
poll_requests(struct coord *c, struct dp_fsm *m)
{
	int st = 0;
	int r = dp_consumer_poll(c->cons, 100, &c->err, &st);

	if (r == DP_CONSUMER_SIGNAL || dp_sig_stop)
		return E_SIGNAL;
	if (r == DP_CONSUMER_FAILED) {
		dp_err("requests: %s", dp_buf_str(&c->err));
		dp_fsm_fail(m, st ? st : DP_EX_UNAVAILABLE);
		return E_FATAL;
	}
	st = dp_registry_poll(c->reg, 0, &c->err);
	if (st == 0 && (st = dp_registry_poll(c->dec, 0, &c->err)) != 0 && st != DP_KAFKA_STOPPED) {
		dp_err("decisions: %s", dp_buf_str(&c->err));
		dp_fsm_fail(m, st);
		return E_FATAL;
	}
	if (st == DP_KAFKA_STOPPED)
		return E_SIGNAL;
	if (st) {
		dp_err("registry: %s", dp_buf_str(&c->err));
		dp_fsm_fail(m, st);
		return E_FATAL;
	}
	return c->have_req ? -1 : 0;
}

/*
 * Forget the decisions on requests that the requests topic holds no more
 * (below its low watermark): no replay can reach them.  At each takeover
 * and then hourly; what fails is tried again the next time.
 */
static void
prune(struct coord *c)
{
	int64_t lo, hi;
	const char **ids = NULL;
	size_t n;
	struct dp_buf err = DP_BUF_INIT;

	c->prune_at = dp_time_mono_ms() + 3600 * 1000;
	if (dp_kafka_watermarks(dp_consumer_rk(c->cons), c->requests, 0,
	                        (int)c->common.kafka.timeout_ms, &lo, &hi, &err) != 0) {
		dp_warn("cannot tell which decisions to forget: %s", dp_buf_str(&err));
		dp_buf_free(&err);
		return;
	}
	if ((n = dp_coord_decisions_before(c->decided, lo, &ids)) == (size_t)-1) {
		dp_warn("cannot tell which decisions to forget: out of memory");
		return;
	}
	struct dp_producer_rec *recs = calloc(n ? n : 1, sizeof(*recs));
	if (!recs) {
		dp_warn("cannot forget decisions: out of memory");
		free(ids);
		return;
	}
	for (size_t i = 0; i < n; i++)
		recs[i] = (struct dp_producer_rec){
			.topic = c->decisions, .partition = 0,
			.key = ids[i], .key_len = strlen(ids[i]),
		};
	int st = n ? dp_producer_send_wait(c->prod, recs, n, NULL, c->common.kafka.timeout_ms, &err)
	           : 0;
	if (st) {
		dp_warn("cannot forget decisions: %s",
		        st == DP_KAFKA_STOPPED ? "interrupted" : dp_buf_str(&err));
	} else if (n) {
		/* Each id is its own decision's: it is looked up before it is freed. */
		for (size_t i = 0; i < n; i++)
			dp_coord_decisions_forget(c->decided, ids[i]);
		dp_info("forgot %zu decision%s on requests %s holds no more", n, n == 1 ? "" : "s",
		        c->requests);
	}
	free(recs);
	free(ids);
	dp_buf_free(&err);
}

/* -> standby: wait until this coordinator owns the requests partition. */
static int
act_standby(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;

	dp_info("standing by: another coordinator may own %s", c->requests);
	for (;;) {
		int ev = poll_requests(c, m);
		if (ev > 0)
			return ev;
		if (c->assigned) {
			c->revokes_seen = c->revokes;
			/* Decide nothing before the views hold what the last owner wrote. */
			const char *what = "registry";
			int st = dp_registry_sync(c->reg, -1, &c->err);
			if (st == 0) {
				what = "decisions";
				st = dp_registry_sync(c->dec, -1, &c->err);
			}
			if (st == DP_KAFKA_STOPPED)
				return E_SIGNAL;
			if (st) {
				dp_err("%s: %s", what, dp_buf_str(&c->err));
				dp_fsm_fail(m, st);
				return E_FATAL;
			}
			prune(c);
			return E_ASSIGNED;
		}
	}
}

/* The first retired topic whose time to go has come, or NULL. */
static const struct dp_dyn_spec *
due(const struct coord *c)
{
	size_t n;
	const struct dp_dyn_spec *const *v = dp_registry_specs(c->reg, &n);
	int64_t now = now_ms();

	for (size_t i = 0; i < n; i++)
		if (v[i]->state == DP_DYN_RETIRED && v[i]->delete_at >= 0 && v[i]->delete_at <= now)
			return v[i];
	return NULL;
}

/*
 * The request in hand as an event.  One decided before is not decided
 * again (a replay).  One whose action is not known (invalid) is refused
 * as a retire is: nothing in the registry changes for it.
 */
static int
request_event(const struct coord *c)
{
	const struct dp_dyn_decision *d = dp_coord_decided(c->decided, c->req.request_id);

	if (d) {
		dp_info("request %s for '%s' was decided before (%s): not again",
		        c->req.request_id, c->req.topic, dp_dyn_outcome_name(d->outcome));
		return E_REQUEST_DECIDED;
	}
	return c->req.action == DP_DYN_CREATE ? E_REQUEST_CREATE : E_REQUEST_RETIRE;
}

/* -> active: the next thing to do.  A request in hand comes first. */
static int
act_listen(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;

	for (;;) {
		if (dp_sig_stop)
			return E_SIGNAL;
		if (!c->assigned || c->revokes != c->revokes_seen)
			return E_REVOKED;
		if (c->have_req)
			return request_event(c);
		if (c->deleting)
			return E_DELETE_DUE;
		if (dp_time_mono_ms() >= c->prune_at)
			prune(c);
		const struct dp_dyn_spec *d = due(c);
		if (d) {
			if (!(c->deleting = strdup(d->topic))) {
				dp_err("out of memory");
				dp_fsm_fail(m, DP_EX_SOFTWARE);
				return E_FATAL;
			}
			return E_DELETE_DUE;
		}
		int ev = poll_requests(c, m);
		if (ev > 0)
			return ev;
	}
}

/* Set what notifyingActors writes: spec under its topic, or a tombstone. */
static int
set_notice(struct coord *c, const char *key, const struct dp_dyn_spec *spec)
{
	free(c->notice_key);
	dp_buf_reset(&c->notice);
	c->tombstone = spec == NULL;
	c->notice_key = strdup(key);
	if (!c->notice_key || (spec && dp_dyn_spec_json(&c->notice, spec) < 0))
		return -1;
	return 0;
}

/* Set the decision notifyingActors writes for the request in hand. */
static int
set_decision(struct coord *c, enum dp_dyn_outcome outcome, const char *reason)
{
	struct dp_dyn_decision *d = &c->decision;

	dp_dyn_decision_clear(d);
	d->action = c->req.action;
	d->outcome = outcome;
	d->request_offset = c->req_offset;
	d->decided_at = now_ms();
	if (!(d->request_id = strdup(c->req.request_id)) || !(d->topic = strdup(c->req.topic)) ||
	    (reason && !(d->reason = strdup(reason)))) {
		dp_dyn_decision_clear(d);
		return -1;
	}
	return 0;
}

/* The outcome of a create, from the spec written. */
static enum dp_dyn_outcome
outcome_of(const struct dp_dyn_spec *s)
{
	switch (s->state) {
	case DP_DYN_REJECTED: return DP_DYN_OUT_REJECTED;
	case DP_DYN_RETIRED:  return DP_DYN_OUT_RETIRED;
	default:              return DP_DYN_OUT_GRANTED;
	}
}

/* What a failed create means for the requester: a rejection, or a retry. */
static enum dp_dyn_reject
reject_for(int status)
{
	switch (status) {
	case DP_EX_EXISTS:  return DP_DYN_EXISTS;
	case DP_EX_CONFIG:  return DP_DYN_BAD_CONFIG;
	case DP_EX_INVALID: return DP_DYN_BAD_NAME;
	default:            return DP_DYN_OK;       /* the cluster: try again */
	}
}

/*
 * A topic that was there before the request, and that the registry does
 * not list as ours: 1 when it holds records, 0 when it is empty, else an
 * exit status with a message in why.  An empty one is taken: it is what
 * a coordinator leaves that stopped between creating a topic and writing
 * it down.  One with records belongs to someone else, and is never made
 * a dynamic topic (that a retire would delete).
 */
static int
holds_records(struct coord *c, const char *topic, int partitions, struct dp_buf *why)
{
	for (int32_t i = 0; i < partitions; i++) {
		int64_t lo, hi;
		int st = dp_kafka_watermarks(c->admin, topic, i, (int)c->common.kafka.timeout_ms, &lo, &hi,
		                             why);
		if (st)
			return st == DP_KAFKA_STOPPED ? DP_EX_UNAVAILABLE : st;
		if (hi > 0)
			return 1;
	}
	return 0;
}

/* active -> processingCreateTopic: decide, and create what is granted. */
static int
act_create(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	struct dp_dyn_spec spec;
	struct dp_buf why = DP_BUF_INIT;
	int ev, d = dp_coord_decide_create(&c->policy, c->reg, &c->req, now_ms(), &spec, &why);

	if (d < 0)
		goto nomem;
	if (d == DP_COORD_IGNORE) {
		dp_warn("request %s for '%s' ignored: %s", c->req.request_id, c->req.topic,
		        dp_buf_str(&why));
		free(c->notice_key);
		c->notice_key = NULL;
		if (set_decision(c, DP_DYN_OUT_IGNORED, dp_buf_str(&why)) < 0)
			goto nomem;
		dp_buf_free(&why);
		return E_CREATE_IGNORED;
	}
	if (d == DP_COORD_CREATE) {
		int partitions = 0;
		/*
		 * A topic that is its own source is fed directly by the producer
		 * that asked for it (dp-publish --request-topics): no source to check.
		 */
		int st = strcmp(spec.source, spec.topic) == 0
		         ? 0 : dp_kafka_probe(c->admin, spec.source, (int)c->common.kafka.timeout_ms,
		                              &partitions, &why);
		if (st == DP_EX_NOTFOUND) {
			dp_coord_reject(&spec, DP_DYN_NO_SOURCE, "source topic '%s' does not exist",
			                spec.source);
			dp_buf_reset(&why);
			st = 0;
		}
		if (st == 0 && spec.state == DP_DYN_ACTIVE) {
			struct dp_admin_spec as = { spec.topic, spec.partitions, -1, spec.config,
			                            spec.nconfig };
			struct dp_admin_result res = { 0 };
			bool created;
			st = dp_admin_ensure(c->admin, &as, (int)c->common.kafka.timeout_ms, &res, &created);
			if (st && reject_for(st)) {
				dp_coord_reject(&spec, reject_for(st), "%s", res.error ? res.error : "");
				st = 0;
			} else if (st) {
				dp_buf_msgf(&why, "%s", res.error ? res.error : "cannot create");
			} else {
				if (created)
					dp_info("created topic '%s'", spec.topic);
				/* The spec says what the topic has, not what was left open. */
				int n = 0;
				if (dp_kafka_probe(c->admin, spec.topic, (int)c->common.kafka.timeout_ms, &n,
				                   &why) == 0 && n > 0)
					spec.partitions = n;
				dp_buf_reset(&why);
				const struct dp_dyn_spec *known = dp_registry_get(c->reg, spec.topic);
				bool ours = known && (known->state == DP_DYN_ACTIVE ||
				                      known->state == DP_DYN_RETIRED);
				if (!created && !ours &&
				    (st = holds_records(c, spec.topic, n, &why)) == 1) {
					dp_coord_reject(&spec, DP_DYN_EXISTS, "topic '%s' exists already, with "
					                "records, and is not one this coordinator made",
					                spec.topic);
					st = 0;
				}
			}
			dp_admin_result_clear(&res);
		}
		if (st) {
			dp_err("cannot create '%s' for request %s: %s", c->req.topic,
			       c->req.request_id, dp_buf_str(&why));
			dp_dyn_spec_clear(&spec);
			dp_buf_free(&why);
			return E_CREATE_FAILURE;
		}
	}
	if (set_notice(c, spec.topic, &spec) < 0 ||
	    set_decision(c, outcome_of(&spec), spec.reason) < 0)
		goto nomem;
	ev = spec.state == DP_DYN_REJECTED ? E_CREATE_REJECTED : E_CREATE_SUCCESS;
	if (ev == E_CREATE_REJECTED)
		dp_info("request %s for '%s' rejected: %s", c->req.request_id, spec.topic,
		        spec.reason);
	dp_dyn_spec_clear(&spec);
	dp_buf_free(&why);
	return ev;
nomem:
	dp_err("out of memory");
	dp_dyn_spec_clear(&spec);
	dp_buf_free(&why);
	return E_CREATE_FAILURE;
}

/* active -> processingRetireTopic: mark it retired, with its time to go. */
static int
act_retire(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	struct dp_dyn_spec spec;
	struct dp_buf why = DP_BUF_INIT;
	int d = dp_coord_decide_retire(c->reg, &c->req, now_ms(), &spec, &why);

	if (d == DP_COORD_IGNORE || d == DP_COORD_REJECT) {
		dp_warn("request %s to %s '%s' %s: %s", c->req.request_id,
		        c->req.action == DP_DYN_RETIRE ? "retire" : "act on", c->req.topic,
		        d == DP_COORD_IGNORE ? "ignored" : "rejected", dp_buf_str(&why));
		free(c->notice_key);
		c->notice_key = NULL;
		int rc = set_decision(c, d == DP_COORD_IGNORE ? DP_DYN_OUT_IGNORED
		                                              : DP_DYN_OUT_REJECTED,
		                      dp_buf_str(&why));
		dp_buf_free(&why);
		if (rc < 0) {
			dp_err("out of memory");
			return E_RETIRE_SUCCESS;        /* not notified: retried */
		}
		return d == DP_COORD_IGNORE ? E_RETIRE_IGNORED : E_RETIRE_REJECTED;
	}
	dp_buf_free(&why);
	if (d < 0 || set_notice(c, spec.topic, &spec) < 0 ||
	    set_decision(c, DP_DYN_OUT_RETIRED, NULL) < 0) {
		dp_err("out of memory");
		dp_dyn_spec_clear(&spec);
		/* The retire never fails for itself: not notified, it is retried. */
		return E_RETIRE_SUCCESS;
	}
	dp_dyn_spec_clear(&spec);
	return E_RETIRE_SUCCESS;
}

/* active -> deletingTopic: a retired topic's time has come. */
static int
act_delete(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	struct dp_admin_result res = { 0 };
	const char *names[1] = { c->deleting };
	int st = dp_admin_delete(c->admin, names, 1, (int)c->common.kafka.timeout_ms, &res);

	if (st == 0)
		st = res.status;
	/* Gone already (a coordinator stopped before the tombstone): the same. */
	if (st && st != DP_EX_NOTFOUND) {
		dp_err("cannot delete retired topic '%s': %s", c->deleting,
		       res.error ? res.error : "failed");
		dp_admin_result_clear(&res);
		return E_DELETE_FAILURE;
	}
	dp_admin_result_clear(&res);
	dp_info("deleted retired topic '%s'", c->deleting);
	if (set_notice(c, c->deleting, NULL) < 0) {
		dp_err("out of memory");
		return E_DELETE_FAILURE;
	}
	return E_DELETE_SUCCESS;
}

/*
 * -> notifyingActors: the registry record every follower sees, then the
 * decision on the request in hand (in that order: a coordinator stopped
 * between the two redoes the request, and finds its outcome in the
 * registry).
 */
static int
act_notify(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	struct dp_producer_ack ack;
	int st;

	if (c->have_req && !c->decision.request_id) {
		dp_err("request %s: out of memory", c->req.request_id);
		return E_NOTIFY_FAILURE;
	}
	dp_buf_reset(&c->err);
	if (c->notice_key) {
		struct dp_producer_rec rec = {
			.topic = c->registry, .partition = 0,
			.key = c->notice_key, .key_len = strlen(c->notice_key),
			.value = c->tombstone ? NULL : c->notice.data,
			.value_len = c->tombstone ? 0 : c->notice.len,
		};
		st = dp_producer_send_wait(c->prod, &rec, 1, &ack, c->common.kafka.timeout_ms, &c->err);
		if (st) {
			dp_err("cannot write '%s' to the registry: %s", c->notice_key,
			       st == DP_KAFKA_STOPPED ? "interrupted" : dp_buf_str(&c->err));
			return E_NOTIFY_FAILURE;
		}
		c->written = ack.offset;
	}
	if (c->decision.request_id) {
		struct dp_buf value = DP_BUF_INIT;
		if (dp_dyn_decision_json(&value, &c->decision) < 0) {
			dp_err("request %s: out of memory", c->req.request_id);
			dp_buf_free(&value);
			return E_NOTIFY_FAILURE;
		}
		struct dp_producer_rec rec = {
			.topic = c->decisions, .partition = 0,
			.key = c->decision.request_id, .key_len = strlen(c->decision.request_id),
			.value = value.data, .value_len = value.len,
		};
		st = dp_producer_send_wait(c->prod, &rec, 1, NULL, c->common.kafka.timeout_ms, &c->err);
		dp_buf_free(&value);
		if (st) {
			dp_err("cannot write the decision on request %s to '%s': %s",
			       c->decision.request_id, c->decisions,
			       st == DP_KAFKA_STOPPED ? "interrupted" : dp_buf_str(&c->err));
			return E_NOTIFY_FAILURE;
		}
		/* Known at once, before the view reads it back. */
		if (dp_coord_decisions_put(c->decided, &c->decision) < 0)
			dp_warn("request %s: out of memory", c->decision.request_id);
	}
	return E_NOTIFY_SUCCESS;
}

/*
 * -> active, the work done: commit the request (only now, so that a
 * coordinator stopped at any point before redoes it), let the view catch
 * up with what was written, and listen again.
 */
static int
act_done(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;

	if (c->have_req) {
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(l, c->req_part->topic,
		                                  c->req_part->partition)->offset = c->req_offset + 1;
		dp_buf_reset(&c->err);
		if (dp_consumer_commit(c->cons, l, false, &c->err))
			/* The partition moved on: its next owner redoes the request. */
			dp_warn("cannot commit request %s: %s", c->req.request_id,
			        dp_buf_str(&c->err));
		rd_kafka_topic_partition_list_destroy(l);
		dp_dyn_request_clear(&c->req);
		c->have_req = false;
	} else if (c->deleting) {
		free(c->deleting);
		c->deleting = NULL;
	}
	free(c->notice_key);
	c->notice_key = NULL;
	dp_dyn_decision_clear(&c->decision);
	if (c->written >= 0) {
		int st = dp_registry_sync(c->reg, c->written, &c->err);
		c->written = -1;
		if (st && st != DP_KAFKA_STOPPED)
			dp_warn("registry: %s", dp_buf_str(&c->err));
	}
	dp_backoff_reset(&c->backoff);
	return act_listen(m, ctx);
}

/* -> error: wait, then try again what failed (RESET). */
static int
act_error(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	int64_t ms = dp_backoff_next(&c->backoff, 0);

	dp_warn("trying again in %lld ms", (long long)ms);
	return dp_backoff_sleep(ms, &dp_sig_stop) < 0 ? E_SIGNAL : E_RESET;
}

/* -> stopping: leave the group; what was not committed is redone by the next. */
static int
act_stop(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	/* Nothing is committed here (requests are committed one by one). */
	dp_consumer_close(c->cons);
	return m->reason ? E_FATAL : E_STOPPED;
}

/* ---- request and retire -------------------------------------------------- */

/* idle -> connecting: the producer, the registry, and what NAME is now. */
static int
act_client_connect(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	struct dp_buf *err = &c->err;
	const struct dp_producer_conf pconf = { .kafka = &c->common.kafka, .topic = c->requests };
	const struct dp_registry_conf rconf = { .kafka = &c->common.kafka, .topic = c->registry };
	int st;

	/*
	 * With --wait, a coordinator that is only starting (its topics not
	 * made yet) is waited for, as its answer would be.
	 */
	int64_t deadline = dp_time_mono_ms() + (c->wait ? c->wait_ms : 0);
	for (;;) {
		if (!(c->reg = dp_registry_new(&rconf, err, &st)))
			st = st ? st : DP_EX_SOFTWARE;
		if (st == 0)
			st = dp_registry_load(c->reg, err);
		if (st == 0 && !(c->prod = dp_producer_new(&pconf, err, &st)))
			st = st ? st : DP_EX_SOFTWARE;
		if (st == 0)
			st = dp_producer_connect(c->prod, NULL, 0, err);
		if (st != DP_EX_NOTFOUND || dp_time_mono_ms() >= deadline)
			break;
		dp_registry_free(c->reg);
		dp_producer_free(c->prod);
		c->reg = NULL;
		c->prod = NULL;
		dp_buf_reset(err);
		if (dp_backoff_sleep(200, &dp_sig_stop) < 0) {
			st = DP_KAFKA_STOPPED;
			break;
		}
	}
	if (st == DP_EX_NOTFOUND) {
		/* Its topics are made by the coordinator: none has run (core/exit.h). */
		dp_buf_reset(err);
		dp_buf_msgf(err, "%s '%s' does not exist: no dp-coord serve has run on this "
		            "cluster", c->prod ? "requests topic" : "registry",
		            c->prod ? c->requests : c->registry);
		st = DP_EX_UNAVAILABLE;
	}
	if (st == DP_KAFKA_STOPPED || dp_sig_stop)
		return QE_SIGNAL;
	if (st) {
		dp_err("%s", dp_buf_str(err));
		dp_fsm_fail(m, st);
		return QE_UNREACHABLE;
	}
	const struct dp_dyn_spec *cur = dp_registry_get(c->reg, c->name);
	if (c->sub == SUB_REQUEST && cur && cur->state != DP_DYN_REJECTED) {
		/* The coordinator could not answer a conflicting request: refuse it here. */
		struct dp_dyn_request q = { .topic = (char *)c->name, .source = (char *)c->source,
		                            .filter = (char *)c->filter, .partitions = c->partitions,
		                            .config = c->config, .nconfig = c->nconfig };
		if ((cur->state != DP_DYN_ACTIVE && cur->state != DP_DYN_RETIRED) ||
		    !dp_coord_same(cur, &q)) {
			dp_err("dynamic topic '%s' is %s with another spec", c->name,
			       dp_dyn_state_name(cur->state));
			dp_fsm_fail(m, DP_EX_EXISTS);
			return QE_REFUSED;
		}
	}
	if (c->sub == SUB_RETIRE && (!cur || cur->state == DP_DYN_REJECTED)) {
		dp_err("no dynamic topic '%s' in the registry", c->name);
		dp_fsm_fail(m, DP_EX_NOTFOUND);
		return QE_REFUSED;
	}
	return QE_CONNECTED;
}

/* Print one registry spec as an NDJSON line. */
static int
print_spec(struct coord *c, const struct dp_dyn_spec *s)
{
	struct dp_buf line = DP_BUF_INIT;
	int rc = dp_dyn_spec_json(&line, s);

	if (rc == 0)
		rc = dp_buf_addch(&line, '\n');
	if (rc < 0)
		dp_err("out of memory");
	else if (dp_out_write(c->common.out, line.data, line.len) < 0 ||
	         dp_out_flush(c->common.out) < 0)
		rc = -1;
	dp_buf_free(&line);
	return rc;
}

/* connecting -> requesting: write the request, acknowledged. */
static int
act_send(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	char who[300];
	struct dp_dyn_request q = {
		.action = c->sub == SUB_RETIRE ? DP_DYN_RETIRE : DP_DYN_CREATE,
		.request_id = c->request_id, .topic = (char *)c->name,
		.source = (char *)c->source, .filter = (char *)c->filter,
		.partitions = c->partitions, .config = c->config, .nconfig = c->nconfig,
		.delete_after_ms = c->delete_after_ms, .requested_by = who,
		.requested_at = now_ms(),
	};
	struct dp_buf value = DP_BUF_INIT;
	int st;

	dp_dyn_requester(who, sizeof(who));
	if (dp_dyn_request_id(c->request_id) < 0 || dp_dyn_request_json(&value, &q) < 0) {
		dp_err("cannot make a request: %s", strerror(errno ? errno : ENOMEM));
		dp_fsm_fail(m, DP_EX_SOFTWARE);
		dp_buf_free(&value);
		return QE_SEND_FAILED;
	}
	struct dp_producer_rec rec = {
		.topic = c->requests, .partition = DP_PRODUCER_ANY,
		.key = c->name, .key_len = strlen(c->name),
		.value = value.data, .value_len = value.len,
	};
	dp_buf_reset(&c->err);
	st = dp_producer_send_wait(c->prod, &rec, 1, NULL, c->common.kafka.timeout_ms, &c->err);
	if (st) {
		dp_err("cannot send the request to '%s': %s", c->requests,
		       st == DP_KAFKA_STOPPED ? "interrupted" : dp_buf_str(&c->err));
		dp_fsm_fail(m, st == DP_KAFKA_STOPPED ? DP_EX_TEMPFAIL : st);
		dp_buf_free(&value);
		return QE_SEND_FAILED;
	}
	dp_info("request %s sent", c->request_id);
	c->sent = true;
	c->finished = !c->wait;
	if (c->wait) {
		dp_buf_free(&value);
		return QE_AWAIT;
	}
	/* The request itself, so that a script can follow it up. */
	if (dp_buf_addch(&value, '\n') < 0 ||
	    dp_out_write(c->common.out, value.data, value.len) < 0)
		dp_fsm_fail(m, dp_cmd_stdout_failed(errno));
	dp_buf_free(&value);
	return m->reason ? QE_SEND_FAILED : QE_SENT;
}

/* requesting -> waiting: follow the registry until the request is answered. */
static int
act_await(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	int64_t deadline = dp_time_mono_ms() + c->wait_ms;

	for (;;) {
		const struct dp_dyn_spec *s = dp_registry_get(c->reg, c->name);
		bool answered = s && s->request_id && !strcmp(s->request_id, c->request_id);
		if (c->sub == SUB_RETIRE)
			answered = !s || s->state == DP_DYN_RETIRED;
		if (answered) {
			c->finished = true;
			if (s && print_spec(c, s) < 0) {
				dp_fsm_fail(m, dp_cmd_stdout_failed(errno));
				return QE_DENIED;
			}
			if (s && s->state == DP_DYN_REJECTED) {
				dp_err("request for '%s' rejected: %s", c->name,
				       s->reason ? s->reason : "no reason given");
				dp_fsm_fail(m, dp_dyn_reject_status(s->rejected_for));
				return QE_DENIED;
			}
			return QE_GRANTED;
		}
		if (dp_time_mono_ms() >= deadline) {
			dp_err("no answer to request %s within %s: is a dp-coord serve running "
			       "(group '%s' on '%s')?", c->request_id, c->wait_arg, c->group,
			       c->requests);
			dp_fsm_fail(m, DP_EX_UNAVAILABLE);
			return QE_TIMEOUT;
		}
		int st = dp_registry_poll(c->reg, 100, &c->err);
		if (st == DP_KAFKA_STOPPED || dp_sig_stop) {
			/* said by dp_cmd_main, with its status (core/frame.h) */
			dp_fsm_fail(m, DP_EX_TEMPFAIL);
			return QE_SIGNAL;
		}
		if (st) {
			dp_err("registry: %s", dp_buf_str(&c->err));
			dp_fsm_fail(m, st);
			return QE_TIMEOUT;
		}
	}
}

/* ---- list, watch, run ---------------------------------------------------- */

/* A run child's topic: active and matching --match. */
static bool
wanted(struct coord *c, const struct dp_dyn_spec *s)
{
	if (!s || s->state != DP_DYN_ACTIVE)
		return false;
	return !c->match_expr || dp_dyn_spec_matches(s, c->match_expr, "--match");
}

/* A registry change, for watch (print it) and run (start or stop a child). */
static void
on_change(void *arg, const char *topic, const struct dp_dyn_spec *old,
          const struct dp_dyn_spec *now, int64_t offset)
{
	struct coord *c = arg;

	/* While the view loads, the log's history goes by: only the result counts. */
	if (!c->loaded)
		return;
	if (c->sub == SUB_WATCH) {
		if (now) {
			if (print_spec(c, now) < 0)
				c->out_failed = true;    /* watch ends */
		} else {
			struct dp_jw w;
			struct dp_buf line = DP_BUF_INIT;
			dp_jw_init(&w, &line);
			dp_jw_obj(&w);
			dp_jw_kstr(&w, "topic", topic);
			dp_jw_kstr(&w, "state", "deleted");
			dp_jw_end(&w);
			if (dp_jw_finish(&w) < 0 || dp_buf_addch(&line, '\n') < 0 ||
			    dp_out_write(c->common.out, line.data, line.len) < 0 ||
			    dp_out_flush(c->common.out) < 0)
				c->out_failed = true;
			dp_buf_free(&line);
		}
	} else if (c->sub == SUB_RUN && c->sup) {
		if (wanted(c, now)) {
			if (!dp_sup_has(c->sup, topic)) {
				dp_buf_reset(&c->err);
				if (dp_sup_start(c->sup, topic, &c->err) < 0)
					dp_err("%s", dp_buf_str(&c->err));
			}
		} else if (dp_sup_has(c->sup, topic)) {
			dp_info("'%s' is %s: stopping its child", topic,
			        now ? dp_dyn_state_name(now->state) : "gone");
			dp_sup_stop(c->sup, topic);
		}
	}
}

/* idle -> connecting: the registry, read to its end. */
static int
act_load(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	const struct dp_registry_conf rconf = {
		.kafka = &c->common.kafka, .topic = c->registry,
		.change = c->sub == SUB_LIST ? NULL : on_change, .arg = c,
	};
	int st;

	if (c->sub == SUB_RUN) {
		c->sup = dp_sup_new(c->run_argv, c->run_argc, 1000, 60000);
		if (!c->sup) {
			dp_err("out of memory");
			dp_fsm_fail(m, DP_EX_SOFTWARE);
			return RE_UNREACHABLE;
		}
	}
	if (!(c->reg = dp_registry_new(&rconf, &c->err, &st)))
		st = st ? st : DP_EX_SOFTWARE;
	if (st == 0)
		st = dp_registry_load(c->reg, &c->err);
	if (st == DP_KAFKA_STOPPED || dp_sig_stop)
		return RE_SIGNAL;
	if (st == DP_EX_NOTFOUND) {
		dp_buf_reset(&c->err);
		dp_buf_msgf(&c->err, "registry '%s' does not exist: no dp-coord serve has run on "
		            "this cluster", c->registry);
		st = DP_EX_UNAVAILABLE;
	}
	if (st) {
		dp_err("%s", dp_buf_str(&c->err));
		dp_fsm_fail(m, st);
		return RE_UNREACHABLE;
	}
	c->loaded = true;
	return c->sub == SUB_LIST ? RE_LOADED_LIST : c->sub == SUB_WATCH ? RE_LOADED_WATCH
	                                                               : RE_LOADED_RUN;
}

static int
cmp_specs(const void *a, const void *b)
{
	const struct dp_dyn_spec *const *x = a, *const *y = b;

	return strcmp((*x)->topic, (*y)->topic);
}

/* connecting -> listing: every spec, by name; a table on a terminal. */
static int
act_list(struct dp_fsm *m, void *ctx)
{
	static const char *const h[] = { "TOPIC", "STATE", "SOURCE", "PARTITIONS", "FILTER",
		"UPDATED" };
	struct coord *c = ctx;
	size_t n;
	const struct dp_dyn_spec *const *v = dp_registry_specs(c->reg, &n);
	const struct dp_dyn_spec **sorted = calloc(n ? n : 1, sizeof(*sorted));
	struct dp_table *t = NULL;
	bool table = c->fmt == 1 || (c->fmt == 0 && isatty(STDOUT_FILENO));
	int rc = 0;

	if (!sorted || (table && !(t = dp_table_new(h, 6)))) {
		dp_err("out of memory");
		free(sorted);
		dp_fsm_fail(m, DP_EX_SOFTWARE);
		return RE_WRITE_FAILED;
	}
	memcpy(sorted, v, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_specs);
	if (t)
		dp_table_align_right(t, 3);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct dp_dyn_spec *s = sorted[i];
		if (!t) {
			rc = print_spec(c, s);
			continue;
		}
		char p[24] = "-", upd[DP_TIME_BUFSZ] = "-";
		if (s->partitions > 0)
			snprintf(p, sizeof(p), "%d", (int)s->partitions);
		if (s->updated_at >= 0)
			dp_time_format(s->updated_at, upd);
		const char *row[] = { s->topic, dp_dyn_state_name(s->state),
		                      s->source ? s->source : "-", p, s->filter ? s->filter : "-",
		                      upd };
		rc = dp_table_add(t, row);
	}
	if (t && rc == 0) {
		struct dp_buf b = DP_BUF_INIT;
		rc = dp_table_render(t, &b);
		if (rc == 0)
			rc = dp_out_write(c->common.out, b.data, b.len);
		dp_buf_free(&b);
	}
	if (rc == 0)
		rc = dp_out_flush(c->common.out);
	dp_table_free(t);
	free(sorted);
	if (rc < 0 && !dp_out_closed(c->common.out)) {
		dp_fsm_fail(m, dp_cmd_stdout_failed(errno));
		return RE_WRITE_FAILED;
	}
	c->finished = true;
	return RE_LISTED;
}

/* connecting -> watching: what is there, then each change as it comes. */
static int
act_watch(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	size_t n;
	const struct dp_dyn_spec *const *v = dp_registry_specs(c->reg, &n);

	for (size_t i = 0; i < n && !c->out_failed; i++)
		if (print_spec(c, v[i]) < 0)
			c->out_failed = true;
	for (;;) {
		if (c->out_failed) {
			if (dp_out_closed(c->common.out))
				return RE_PIPE_CLOSED;
			dp_fsm_fail(m, dp_cmd_stdout_failed(dp_out_error(c->common.out)));
			return RE_LOST;
		}
		int st = dp_registry_poll(c->reg, 200, &c->err);
		if (st == DP_KAFKA_STOPPED || dp_sig_stop)
			return RE_SIGNAL;
		if (st) {
			dp_err("registry: %s", dp_buf_str(&c->err));
			dp_fsm_fail(m, st);
			return RE_LOST;
		}
	}
}

/* connecting -> supervising: a child per wanted topic, kept running. */
static int
act_supervise(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;
	size_t n;
	const struct dp_dyn_spec *const *v = dp_registry_specs(c->reg, &n);

	for (size_t i = 0; i < n; i++)
		on_change(c, v[i]->topic, NULL, v[i], -1);
	for (;;) {
		dp_sup_poll(c->sup, 100);
		int st = dp_registry_poll(c->reg, 0, &c->err);
		if (st == DP_KAFKA_STOPPED || dp_sig_stop)
			return RE_SIGNAL;
		if (st) {
			dp_err("registry: %s", dp_buf_str(&c->err));
			dp_fsm_fail(m, st);
			return RE_LOST;
		}
	}
}

/* supervising -> stopping: SIGTERM to every child, and wait for them. */
static int
act_stop_children(struct dp_fsm *m, void *ctx)
{
	struct coord *c = ctx;

	dp_sup_free(c->sup, 10000);
	c->sup = NULL;
	return RE_STOPPED;
}

/* ---- main --------------------------------------------------------------- */

static void
close_coord(void *ctx)
{
	struct coord *c = ctx;

	dp_sup_free(c->sup, 10000);
	dp_consumer_free(c->cons);
	dp_producer_free(c->prod);
	dp_registry_free(c->reg);
	dp_registry_free(c->dec);
	dp_coord_decisions_free(c->decided);
	dp_dyn_decision_clear(&c->decision);
	free(c->decisions_own);
	if (c->admin)
		rd_kafka_destroy(c->admin);
	if (c->policy_ok)
		dp_coord_policy_free(&c->policy);
	dp_expr_free(c->match_expr);
	dp_dyn_request_clear(&c->req);
	dp_kv_free(c->config, c->nconfig);
	free(c->deleting);
	free(c->notice_key);
	dp_buf_free(&c->notice);
	dp_buf_free(&c->err);
}

/* request, retire and list end by themselves; serve, watch and run at a signal. */
static unsigned
io_coord(void *ctx)
{
	const struct coord *c = ctx;

	switch (c->sub) {
	case SUB_REQUEST:
	case SUB_RETIRE:
	case SUB_LIST:  return DP_CMD_STDOUT | DP_CMD_BOUNDED;
	case SUB_WATCH: return DP_CMD_STDOUT;
	default:        return 0;
	}
}

/* A signal came in a bounded run (core/frame.h): after its end, or what it left. */
static bool
interrupted_coord(void *ctx, int status, struct dp_buf *said)
{
	const struct coord *c = ctx;

	(void)status;
	if (c->finished)
		return false;
	if (c->sub == SUB_LIST)
		dp_buf_msgf(said, "the registry was not listed");
	else if (c->sent)
		dp_buf_msgf(said, "request %s was sent but not answered yet ('dp-coord list' "
		            "shows its fate)", c->request_id);
	else
		dp_buf_msgf(said, "no request was sent");
	return true;
}

static const struct dp_cmd cmd = {
	.name = "dp-coord",
	.libs = dp_kafka_version,
	.usage = usage,
	.machine = &serve_machine,
	.machines = machines,
	.choose = choose,
	.start = 0,
	.parse = parse_options,
	.validate = validate,
	.close = close_coord,
	.io = io_coord,
	.interrupted = interrupted_coord,
};

int
main(int argc, char **argv)
{
	static struct coord c = { .written = -1 };

	return dp_cmd_main(&cmd, &c, &c.common, &c.fsm, argc, argv);
}
