/*
 * dp-topic -- topic administration that scripts can trust.
 *
 * One command for what Kafka splits between kafka-topics and
 * kafka-configs: create (also declaratively from NDJSON specs), list,
 * describe, alter configs, add partitions, delete, and show offsets and
 * lag.  Every change prints one result record per topic and every kind
 * of failure has its own exit status, so a script can apply the same
 * topic list again and again and tell "already there" from "broken".
 *
 * This file is the options, their validation and the machine.  The
 * subcommand picks the machine: each runs the same states, with that
 * subcommand's steps in its rows.  The work is in lib/topic/topics.h
 * (dp-topic's engine and views) and lib/kafka/admin.h, which dp-coord
 * shares.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/cli.h"
#include "core/exit.h"
#include "core/frame.h"
#include "core/fsm.h"
#include "core/lines.h"
#include "core/log.h"
#include "core/opt.h"
#include "core/out.h"
#include "core/vec.h"
#include "kafka/client.h"
#include "topic/topics.h"
#include "pg/conn.h"
#include "pg/offsets.h"

/* The subcommands, in the order of subs[] (and of the option rows' DP_SUB). */
enum { SUB_CREATE, SUB_LIST, SUB_DESCRIBE, SUB_ALTER, SUB_ADD_PARTITIONS, SUB_DELETE,
       SUB_OFFSETS, NSUBS };

/* How a topic that failed is named on stderr, by subcommand. */
static const char *const verbs[NSUBS] = {
	"cannot create", "cannot use", "cannot describe", "cannot alter",
	"cannot add partitions to", "cannot delete", "cannot get offsets of",
};

struct topic {
	struct dp_common common;
	struct dp_fsm fsm;

	/* options */
	int sub;                        /* SUB_*, from the frame */
	struct dp_topics_opts o;        /* the engine's, filled by the option table */
	const char *const *names;       /* the operands; borrowed from argv */
	size_t nnames;
	bool from_stdin;                /* create -: the specs come from stdin */
	bool yes;                       /* delete --pattern --yes */
	int format;                     /* --output: enum dp_topics_format; -1: by stdout */
	const char *db;                 /* offsets -g: --db, else $DP_PG, else NULL */
	char *db_arg;                   /* owned: --db's copy, its argv bytes blanked */
	const char *db_from;            /* "--db" or "$DP_PG", for messages */

	/* the run */
	struct dp_topics e;             /* the engine */
	struct dp_sinkoffset *stored;   /* offsets -g: dp-sink-pg's rows of the group */
	size_t nstored;
};

/* ---- state machines ---------------------------------------------------- */

enum state { S_IDLE, S_CHECKING, S_CONNECTING, S_REQUESTING, S_REPORTING, S_DONE, S_FAILED,
             NSTATES };
enum event { E_START, E_BAD_INPUT, E_NOTHING_TO_SEND, E_CHECKED, E_CONNECTED, E_UNREACHABLE,
             E_SIGNAL, E_ANSWERED, E_NO_ANSWER, E_ALL_OK, E_ITEMS_FAILED, E_WRITE_FAILED,
             NEVENTS };

static const char *const state_names[NSTATES] = {
	"idle", "checking", "connecting", "requesting", "reporting", "done", "failed",
};
static const char *const event_names[NEVENTS] = {
	"start", "bad_input", "nothing_to_send", "checked", "connected", "unreachable",
	"signal", "answered", "no_answer", "all_ok", "items_failed", "write_failed",
};

static int act_check_specs(struct dp_fsm *m, void *ctx);
static int act_check_names(struct dp_fsm *m, void *ctx);
static int act_check_delete(struct dp_fsm *m, void *ctx);
static int act_check_none(struct dp_fsm *m, void *ctx);
static int act_connect(struct dp_fsm *m, void *ctx);
static int act_create(struct dp_fsm *m, void *ctx);
static int act_list(struct dp_fsm *m, void *ctx);
static int act_describe(struct dp_fsm *m, void *ctx);
static int act_alter(struct dp_fsm *m, void *ctx);
static int act_add_partitions(struct dp_fsm *m, void *ctx);
static int act_delete(struct dp_fsm *m, void *ctx);
static int act_offsets(struct dp_fsm *m, void *ctx);
static int act_show_created(struct dp_fsm *m, void *ctx);
static int act_show_list(struct dp_fsm *m, void *ctx);
static int act_show_described(struct dp_fsm *m, void *ctx);
static int act_show_altered(struct dp_fsm *m, void *ctx);
static int act_show_added(struct dp_fsm *m, void *ctx);
static int act_show_deleted(struct dp_fsm *m, void *ctx);
static int act_show_offsets(struct dp_fsm *m, void *ctx);

/*
 * Every subcommand runs through the same states: its topics checked
 * locally (a typo never reaches the broker), the cluster reached, its
 * request, its view.  The rows are written once, here; each subcommand's
 * table fills them with its own steps, so the subcommand is a row of the
 * machine it runs, and the drawing (--dot) is the same for all.
 */
#define TOPIC_ROWS(check, request, show) { \
	{ S_IDLE,       E_START,           S_CHECKING,   check }, \
	{ S_CHECKING,   E_BAD_INPUT,       S_FAILED,     NULL }, \
	{ S_CHECKING,   E_NOTHING_TO_SEND, S_REPORTING,  show }, \
	{ S_CHECKING,   E_CHECKED,         S_CONNECTING, act_connect }, \
	{ S_CONNECTING, E_CONNECTED,       S_REQUESTING, request }, \
	{ S_CONNECTING, E_UNREACHABLE,     S_FAILED,     NULL }, \
	{ S_CONNECTING, E_SIGNAL,          S_FAILED,     NULL }, \
	{ S_REQUESTING, E_ANSWERED,        S_REPORTING,  show }, \
	{ S_REQUESTING, E_NO_ANSWER,       S_REPORTING,  show }, \
	{ S_REPORTING,  E_ALL_OK,          S_DONE,       NULL }, \
	{ S_REPORTING,  E_ITEMS_FAILED,    S_FAILED,     NULL }, \
	{ S_REPORTING,  E_WRITE_FAILED,    S_FAILED,     NULL }, \
}

static const struct dp_fsm_row create_rows[] =
	TOPIC_ROWS(act_check_specs, act_create, act_show_created);
static const struct dp_fsm_row list_rows[] =
	TOPIC_ROWS(act_check_none, act_list, act_show_list);
static const struct dp_fsm_row describe_rows[] =
	TOPIC_ROWS(act_check_names, act_describe, act_show_described);
static const struct dp_fsm_row alter_rows[] =
	TOPIC_ROWS(act_check_names, act_alter, act_show_altered);
static const struct dp_fsm_row add_partitions_rows[] =
	TOPIC_ROWS(act_check_names, act_add_partitions, act_show_added);
static const struct dp_fsm_row delete_rows[] =
	TOPIC_ROWS(act_check_delete, act_delete, act_show_deleted);
static const struct dp_fsm_row offsets_rows[] =
	TOPIC_ROWS(act_check_names, act_offsets, act_show_offsets);

static const struct dp_fsm_final finals[] = { { S_DONE, 0 }, { S_FAILED, DP_FSM_REASON } };

#define TOPIC_MACHINE(r) { "dp-topic", state_names, NSTATES, event_names, NEVENTS, \
	                   r, DP_FSM_COUNT(r), S_IDLE, finals, DP_FSM_COUNT(finals) }

static const struct dp_fsm_def create_machine = TOPIC_MACHINE(create_rows);
static const struct dp_fsm_def list_machine = TOPIC_MACHINE(list_rows);
static const struct dp_fsm_def describe_machine = TOPIC_MACHINE(describe_rows);
static const struct dp_fsm_def alter_machine = TOPIC_MACHINE(alter_rows);
static const struct dp_fsm_def add_partitions_machine = TOPIC_MACHINE(add_partitions_rows);
static const struct dp_fsm_def delete_machine = TOPIC_MACHINE(delete_rows);
static const struct dp_fsm_def offsets_machine = TOPIC_MACHINE(offsets_rows);

static const struct dp_subcmd subs[NSUBS] = {
	[SUB_CREATE] = { "create", &create_machine },
	[SUB_LIST] = { "list", &list_machine },
	[SUB_DESCRIBE] = { "describe", &describe_machine },
	[SUB_ALTER] = { "alter", &alter_machine },
	[SUB_ADD_PARTITIONS] = { "add-partitions", &add_partitions_machine },
	[SUB_DELETE] = { "delete", &delete_machine },
	[SUB_OFFSETS] = { "offsets", &offsets_machine },
};

/* ---- options ------------------------------------------------------------ */

static int
opt_topic_config(void *ctx, const struct dp_opt *o, char *arg)
{
	struct topic *t = ctx;

	if (dp_kv_put(&t->o.config, &t->o.nconfig, arg) < 0) {
		dp_err("invalid --topic-config '%s': expected KEY=VALUE", arg);
		return -1;
	}
	return 0;
}

static int
opt_set(void *ctx, const struct dp_opt *o, char *arg)
{
	struct topic *t = ctx;

	if (dp_kv_add(&t->o.set, &t->o.nset, arg) < 0) {
		dp_err("invalid --set '%s': expected KEY=VALUE", arg);
		return -1;
	}
	return 0;
}

static int
opt_delete(void *ctx, const struct dp_opt *o, char *arg)
{
	struct topic *t = ctx;
	const char **v;

	if (!*arg || strchr(arg, '=')) {
		dp_err("invalid --delete '%s': expected a config KEY", arg);
		return -1;
	}
	if (!(v = dp_grow(t->o.del, &t->o.del_cap, t->o.ndel + 1, sizeof(*v), 4))) {
		dp_err("out of memory");
		return -1;
	}
	t->o.del = v;
	v[t->o.ndel++] = arg;
	return 0;
}

/* --db: kept, and its password blanked in argv, where ps would show it. */
static int
opt_db(void *ctx, const struct dp_opt *o, char *arg)
{
	struct topic *t = ctx;
	bool had;

	free(t->db_arg);
	if (!(t->db = t->db_arg = dp_pg_conninfo_hide(arg, &had))) {
		dp_err("out of memory");
		return -1;
	}
	t->db_from = "--db";
	if (had)
		dp_warn("--db holds a password, which other users of this machine may see in the "
		        "process list: prefer ~/.pgpass or $DP_PG");
	return 0;
}

/* --output's names, in enum dp_topics_format's order. */
static const char *const formats[] = { "table", "json", "names", NULL };

#define F(field) .off = offsetof(struct topic, field)
#define ONLY(s) .subs = DP_SUB(s)
#define CHANGES (DP_SUB(SUB_CREATE) | DP_SUB(SUB_ALTER) | DP_SUB(SUB_ADD_PARTITIONS) | \
                 DP_SUB(SUB_DELETE))

static const struct dp_opt opts[] = {
	DP_OPT_GROUP("Topic options"),
	{ DP_ARG_U64, 'p', "partitions", "N",
	  "partition count (create); new total (add-partitions)", F(o.partitions), .min = 1,
	  .max = INT32_MAX, .subs = DP_SUB(SUB_CREATE) | DP_SUB(SUB_ADD_PARTITIONS) },
	{ DP_ARG_U64, 'r', "replication-factor", "N",
	  "replicas per partition (create; default: broker's)", F(o.replication), .min = 1,
	  .max = INT16_MAX, ONLY(SUB_CREATE) },
	{ DP_ARG_CALL, 'c', "topic-config", "KEY=VALUE", "topic config for create, repeatable",
	  .fn = opt_topic_config, ONLY(SUB_CREATE) },
	{ DP_ARG_FLAG, 0, "if-not-exists", NULL, "create: an existing topic is not an error",
	  F(o.if_not_exists), ONLY(SUB_CREATE) },
	{ DP_ARG_FLAG, 0, "if-exists", NULL, "delete: a missing topic is not an error",
	  F(o.if_exists), ONLY(SUB_DELETE) },
	{ DP_ARG_FLAG, 0, "dry-run", NULL, "let the broker validate, change nothing",
	  F(o.dry_run), .subs = CHANGES },
	{ DP_ARG_STRING, 0, "pattern", "REGEX", "list, delete: topics whose whole name matches",
	  F(o.pattern), .subs = DP_SUB(SUB_LIST) | DP_SUB(SUB_DELETE) },
	{ DP_ARG_FLAG, 0, "internal", NULL, "list: include internal topics (names starting __)",
	  F(o.internal), ONLY(SUB_LIST) },
	{ DP_ARG_FLAG, 0, "yes", NULL, "delete --pattern: really delete what matches",
	  F(yes), ONLY(SUB_DELETE) },
	{ DP_ARG_CALL, 0, "set", "KEY=VALUE", "alter: set a topic config, repeatable",
	  .fn = opt_set, ONLY(SUB_ALTER) },
	{ DP_ARG_CALL, 0, "delete", "KEY", "alter: remove a topic config override, repeatable",
	  .fn = opt_delete, ONLY(SUB_ALTER) },
	{ DP_ARG_STRING, 'g', "group", "GROUP",
	  "offsets: also show GROUP's committed offsets and lag", F(o.group),
	  .flags = DP_OPT_NONEMPTY, ONLY(SUB_OFFSETS) },
	{ DP_ARG_CALL, 0, "db", "CONNINFO", "offsets -g: and the offsets dp-sink-pg stored for\n"
	  "GROUP in this database (default $DP_PG)", .fn = opt_db, .flags = DP_OPT_SECRET,
	  ONLY(SUB_OFFSETS) },
	{ DP_ARG_SIZE, 0, "max-line-bytes", "N",
	  "create -: a longer spec line is bad (default " DP_LINES_MAX_DEFAULT_ARG ")",
	  F(o.max_line), .min = 1, .max = (int64_t)1 << 40, .max_label = "1024G",
	  ONLY(SUB_CREATE) },
	DP_OPT_GROUP("Output"),
	{ DP_ARG_CHOICE, 'o', "output", "FORMAT", "table, json, or names (list only)",
	  F(format), .choices = formats },
	DP_OPT_KAFKA_ROWS,
	DP_OPT_END,
};

static int
operands(void *ctx, int argc, char **argv)
{
	struct topic *t = ctx;

	t->names = (const char *const *)argv;
	t->nnames = (size_t)argc;
	return 0;
}

static const struct dp_cmd cmd;

/* Where the names of a subcommand come from, and what must come with them. */
static int
validate_names(struct topic *t)
{
	const char *sub = subs[t->sub].name;

	if (t->sub == SUB_LIST) {
		if (t->nnames) {
			dp_err("list takes no topic names (use --pattern REGEX)");
			return -1;
		}
		return 0;
	}
	if (t->sub == SUB_CREATE) {
		for (size_t i = 0; i < t->nnames; i++)
			if (strcmp(t->names[i], "-") == 0) {
				if (t->nnames > 1) {
					dp_err("create -: specs come from stdin; name no topics besides '-'");
					return -1;
				}
				t->from_stdin = true;
			}
		if (dp_cmd_given(&cmd, &t->common, "max-line-bytes") && !t->from_stdin) {
			dp_err("--max-line-bytes is only for create -, which reads specs from stdin");
			return -1;
		}
	}
	if (t->sub == SUB_ALTER) {
		if (!t->o.nset && !t->o.ndel) {
			dp_err("alter needs at least one --set KEY=VALUE or --delete KEY");
			return -1;
		}
		for (size_t i = 0; i < t->o.ndel; i++)
			for (size_t j = 0; j < t->o.nset; j++)
				if (strcmp(t->o.del[i], t->o.set[j].key) == 0) {
					dp_err("config '%s' is both in --set and --delete", t->o.del[i]);
					return -1;
				}
	}
	if (t->sub == SUB_ADD_PARTITIONS && !t->o.partitions) {
		dp_err("add-partitions needs -p N, the new total partition count");
		return -1;
	}
	if (t->sub == SUB_DELETE) {
		if (t->o.pattern && t->nnames) {
			dp_err("delete takes topic names or --pattern, not both");
			return -1;
		}
		if (t->o.pattern && !t->yes && !t->o.dry_run) {
			dp_err("delete --pattern deletes every topic whose name matches: add --yes "
			       "(or --dry-run to see which)");
			return -1;
		}
		if (t->yes && !t->o.pattern) {
			dp_err("--yes is only needed with delete --pattern");
			return -1;
		}
		if (t->o.pattern)
			return 0;
	}
	if (t->nnames == 0) {
		dp_err("%s needs at least one topic name", sub);
		return -1;
	}
	return 0;
}

/* All option combinations are checked here, once. */
static int
validate(void *ctx)
{
	struct topic *t = ctx;
	struct dp_buf err = DP_BUF_INIT;
	int rc = -1;

	dp_topics_init(&t->e, &t->o, verbs[t->sub]);
	if (t->db_arg && !t->o.group) {
		dp_err("--db shows the offsets dp-sink-pg stored for a group: it needs -g GROUP");
		return -1;
	}
	if (t->sub == SUB_OFFSETS && t->o.group && !t->db) {
		const char *env = getenv("DP_PG");
		if (env && *env) {
			t->db = env;
			t->db_from = "$DP_PG";
		}
	}
	if (t->db && dp_pg_conninfo_check(t->db, &err) < 0) {
		dp_err("invalid %s: %s", t->db_from, dp_buf_str(&err));
		goto out;
	}
	if (t->format == DP_TOPICS_NAMES && t->sub != SUB_LIST) {
		dp_err("--output names is only for list");
		goto out;
	}
	if (dp_topics_pattern(&t->e, &err) < 0) {
		dp_err("invalid --pattern '%s': %s", t->o.pattern, dp_buf_str(&err));
		goto out;
	}
	rc = validate_names(t);
out:
	dp_buf_free(&err);
	return rc;
}

/* ---- the machine's actions ---------------------------------------------- */

/* checking -> : the topics checked locally; any left to send? */
static int
checked(struct dp_fsm *m, struct topic *t, int st)
{
	if (st) {
		dp_fsm_fail(m, st);
		return E_BAD_INPUT;
	}
	return dp_topics_check(&t->e) ? E_CHECKED : E_NOTHING_TO_SEND;
}

/*
 * idle -> checking: create reads every spec first, so that a bad spec
 * file changes nothing at all.
 */
static int
act_check_specs(struct dp_fsm *m, void *ctx)
{
	struct topic *t = ctx;

	return checked(m, t, t->from_stdin ? dp_topics_specs_read(&t->e, STDIN_FILENO)
	                                   : dp_topics_specs(&t->e, t->names, t->nnames));
}

static int
act_check_names(struct dp_fsm *m, void *ctx)
{
	struct topic *t = ctx;

	return checked(m, t, dp_topics_name(&t->e, t->names, t->nnames));
}

/* delete --pattern names its topics once it has the metadata. */
static int
act_check_delete(struct dp_fsm *m, void *ctx)
{
	struct topic *t = ctx;

	return t->o.pattern ? E_CHECKED : act_check_names(m, ctx);
}

/* list names no topic: nothing to check. */
static int
act_check_none(struct dp_fsm *m, void *ctx)
{
	return E_CHECKED;
}

/* checking -> connecting: make the client and prove the cluster answers. */
static int
act_connect(struct dp_fsm *m, void *ctx)
{
	struct topic *t = ctx;
	struct dp_buf err = DP_BUF_INIT;
	int st = dp_topics_connect(&t->e, &t->common.kafka, &err), ev = E_CONNECTED;

	if (st == DP_KAFKA_STOPPED) {
		dp_err("interrupted before the cluster answered");
		dp_fsm_fail(m, DP_EX_TEMPFAIL);
		ev = E_SIGNAL;
	} else if (st) {
		dp_err("%s", dp_buf_str(&err));
		dp_fsm_fail(m, st);
		ev = E_UNREACHABLE;
	}
	dp_buf_free(&err);
	return ev;
}

/* connecting -> requesting: the subcommand's request; did the cluster answer? */
static int
answered(int st)
{
	return st ? E_NO_ANSWER : E_ANSWERED;
}

static int
act_create(struct dp_fsm *m, void *ctx)
{
	return answered(dp_topics_create(&((struct topic *)ctx)->e));
}

static int
act_list(struct dp_fsm *m, void *ctx)
{
	return answered(dp_topics_list(&((struct topic *)ctx)->e));
}

static int
act_describe(struct dp_fsm *m, void *ctx)
{
	return answered(dp_topics_describe(&((struct topic *)ctx)->e));
}

static int
act_alter(struct dp_fsm *m, void *ctx)
{
	return answered(dp_topics_alter(&((struct topic *)ctx)->e));
}

static int
act_add_partitions(struct dp_fsm *m, void *ctx)
{
	return answered(dp_topics_add_partitions(&((struct topic *)ctx)->e));
}

static int
act_delete(struct dp_fsm *m, void *ctx)
{
	return answered(dp_topics_delete(&((struct topic *)ctx)->e));
}

/*
 * offsets: with -g and a database, the offsets dp-sink-pg stored for the
 * group first (like a committed offset, one stored before the watermarks
 * are read is never past them), then the cluster's.  A database named
 * only by $DP_PG that cannot be read is a warning: the Kafka side is
 * still worth showing.
 */
static int
act_offsets(struct dp_fsm *m, void *ctx)
{
	struct topic *t = ctx;
	struct dp_buf err = DP_BUF_INIT;
	int st = 0;

	if (t->o.group && t->db)
		st = dp_sinkoffsets_fetch(t->db, "dp-topic", t->common.kafka.timeout_ms,
		                          t->o.group, &t->stored, &t->nstored, &err);
	if (st && t->db_arg) {
		dp_err("cannot read the offsets dp-sink-pg stored: %s", dp_buf_str(&err));
		dp_topics_note(&t->e, st);
	} else if (st) {
		dp_warn("not showing the offsets dp-sink-pg stored (%s): %s", t->db_from,
		        dp_buf_str(&err));
	}
	dp_buf_free(&err);
	dp_topics_stored(&t->e, t->stored, t->nstored);
	return answered(dp_topics_offsets(&t->e));
}

/* The engine, writing its views to stdout: a table on a terminal, else NDJSON. */
static struct dp_topics *
view(struct topic *t)
{
	if (t->format < 0)
		t->format = isatty(STDOUT_FILENO) ? DP_TOPICS_TABLE : DP_TOPICS_JSON;
	dp_topics_output(&t->e, t->common.out, (enum dp_topics_format)t->format);
	return &t->e;
}

/* -> reporting, once the view is written: the run's status follows. */
static int
reported(struct dp_fsm *m, struct topic *t)
{
	struct dp_out *out = t->common.out;

	if (dp_out_error(out))
		dp_topics_note(&t->e, dp_cmd_stdout_failed(dp_out_error(out)));
	else if (dp_out_flush(out) < 0)
		dp_topics_note(&t->e, dp_cmd_stdout_failed(errno));
	dp_fsm_fail(m, t->e.status);
	if (dp_out_error(out) && !dp_out_closed(out))
		return E_WRITE_FAILED;
	return t->e.status ? E_ITEMS_FAILED : E_ALL_OK;
}

static int
act_show_created(struct dp_fsm *m, void *ctx)
{
	dp_topics_show_created(view(ctx));
	return reported(m, ctx);
}

static int
act_show_list(struct dp_fsm *m, void *ctx)
{
	dp_topics_show_list(view(ctx));
	return reported(m, ctx);
}

static int
act_show_described(struct dp_fsm *m, void *ctx)
{
	dp_topics_show_described(view(ctx));
	return reported(m, ctx);
}

static int
act_show_altered(struct dp_fsm *m, void *ctx)
{
	dp_topics_show_altered(view(ctx));
	return reported(m, ctx);
}

static int
act_show_added(struct dp_fsm *m, void *ctx)
{
	dp_topics_show_added(view(ctx));
	return reported(m, ctx);
}

static int
act_show_deleted(struct dp_fsm *m, void *ctx)
{
	dp_topics_show_deleted(view(ctx));
	return reported(m, ctx);
}

static int
act_show_offsets(struct dp_fsm *m, void *ctx)
{
	dp_topics_show_offsets(view(ctx));
	return reported(m, ctx);
}

/* ---- main --------------------------------------------------------------- */

static void
close_topic(void *ctx)
{
	struct topic *t = ctx;

	dp_topics_free(&t->e);
	dp_kv_free(t->o.config, t->o.nconfig);
	dp_kv_free(t->o.set, t->o.nset);
	free(t->o.del);
	dp_sinkoffsets_free(t->stored, t->nstored);
	free(t->db_arg);
}

static unsigned
io_topic(void *ctx)
{
	const struct topic *t = ctx;

	return DP_CMD_STDOUT | DP_CMD_BOUNDED | (t->from_stdin ? DP_CMD_STDIN : 0);
}

/* A signal came (core/frame.h): after every answer, or which topics it left. */
static bool
interrupted_topic(void *ctx, int status, struct dp_buf *said)
{
	const struct topic *t = ctx;
	size_t left = 0;

	if (status == 0)
		return false;
	for (size_t i = 0; i < t->e.n; i++)
		left += t->e.v[i].res.status != 0;
	if (t->e.n)
		dp_buf_msgf(said, "%zu of %zu topic%s not done", left, t->e.n,
		            t->e.n == 1 ? "" : "s");
	else
		dp_buf_msgf(said, "the cluster did not answer");
	return true;
}

static const struct dp_cmd cmd = {
	.name = "dp-topic",
	.libs = dp_kafka_version,
	.synopsis =
		"dp-topic create NAME... [-p N] [-r N] [-c KEY=VALUE]... [--if-not-exists] [--dry-run]\n"
		"dp-topic create - [--if-not-exists] [--dry-run] < specs.ndjson\n"
		"dp-topic list [--pattern REGEX] [--internal]\n"
		"dp-topic describe NAME...\n"
		"dp-topic alter NAME... [--set KEY=VALUE]... [--delete KEY]... [--dry-run]\n"
		"dp-topic add-partitions NAME... -p N [--dry-run]\n"
		"dp-topic delete NAME... [--if-exists] [--dry-run]\n"
		"dp-topic delete --pattern REGEX --yes [--dry-run]\n"
		"dp-topic offsets NAME... [-g GROUP [--db CONNINFO]]\n",
	.about =
		"Create, inspect, change and delete Kafka topics.  Prints NDJSON when stdout is\n"
		"not a terminal, an aligned table when it is.\n",
	.opts = opts,
	.epilogue =
		"Exit status: 0 ok, 1 several topics failed differently, 64 usage, 65 bad spec,\n"
		"69 cluster unavailable, 74 stdout error or closed, 78 unknown config key,\n"
		"80 exists, 81 does not exist, 82 invalid name or spec, 83 replication factor\n"
		"above broker count, 130/143 SIGINT/SIGTERM before it was done.\n"
		"See dp-topic(1).\n",
	.subs = subs,
	.nsubs = NSUBS,
	.sub_off = offsetof(struct topic, sub),
	.operands = operands,
	.start = E_START,
	.validate = validate,
	.close = close_topic,
	.io = io_topic,
	.interrupted = interrupted_topic,
};

int
main(int argc, char **argv)
{
	static struct topic t = { .format = -1, .o.max_line = DP_LINES_MAX_DEFAULT };

	return dp_cmd_main(&cmd, &t, &t.common, &t.fsm, argc, argv);
}
