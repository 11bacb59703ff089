/*
 * dp-top -- every actor of the system, live: what each dp process says
 * about itself on the status topic (--status-topic, status/status.h), grouped
 * like the seed's actors.
 *
 * A table that refreshes in place on a terminal (q quits), NDJSON
 * snapshots off one or with -o json, one snapshot with --once, and with
 * --dot the system diagram (docs/system.dot) with each running process's
 * state marked on its machine.  Processes that stopped cleanly are shown
 * stopped with their exit status; those that stopped publishing without
 * a last status are shown gone after --gone-after.
 *
 * This file is the options, their validation and the machine; the work is
 * in lib/status/top.h (reading the topic, the snapshot and its views) and
 * lib/core/screen.h (the terminal).
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
#include "core/log.h"
#include "core/opt.h"
#include "core/out.h"
#include "core/screen.h"
#include "core/timefmt.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "status/status.h"
#include "status/top.h"

/* --output's names; -1: table on a terminal, else json. */
enum { FMT_TABLE, FMT_JSON };
static const char *const formats[] = { "table", "json", NULL };

struct top {
	struct dp_common common;
	struct dp_fsm fsm;

	/* options */
	struct dp_top_opts o;           /* --status-topic, --gone-after, --forget-after */
	int format;                     /* FMT_*, or -1 */
	bool once;
	int64_t delay_ms;               /* --delay */

	/* the run */
	bool live;                      /* the table refreshing in place on the terminal */
	struct dp_top *e;               /* the engine */
	struct dp_screen scr;
	int64_t next_ms;                /* the next snapshot (monotonic ms) */
	struct dp_buf err;
};

/* ---- the machine ---------------------------------------------------------- */

/*
 * The seed's consumer of dynamic topics, whose application is a person
 * at a terminal: subscribing to the topic, consuming it, and showing what
 * it read.
 */
enum state { S_IDLE, S_SUBSCRIBING, S_CONSUMING, S_SHOWING, S_DONE, S_FAILED, NSTATES };
enum event { E_START, E_SUBSCRIBE_SUCCESS, E_SUBSCRIBE_FAILURE, E_NO_TOPIC, E_CAUGHT_UP,
             E_TICK, E_SHOWN, E_FINISHED, E_CLOSED, E_WRITE_FAILED, E_SIGNAL, E_QUIT,
             E_FAILED, NEVENTS };

static const char *const state_names[NSTATES] = {
	"idle", "subscribing", "consuming", "showing", "done", "failed",
};
static const char *const event_names[NEVENTS] = {
	"start", "SUBSCRIBE_SUCCESS", "SUBSCRIBE_FAILURE", "no_topic", "caught_up", "tick",
	"shown", "finished", "closed", "write_failed", "signal", "quit", "failed",
};

static int act_subscribe(struct dp_fsm *m, void *ctx);
static int act_consume(struct dp_fsm *m, void *ctx);
static int act_show(struct dp_fsm *m, void *ctx);

static const struct dp_fsm_row rows[] = {
	/* state         event                 next           action */
	{ S_IDLE,        E_START,              S_SUBSCRIBING, act_subscribe },
	{ S_SUBSCRIBING, E_SUBSCRIBE_SUCCESS,  S_CONSUMING,   act_consume },
	{ S_SUBSCRIBING, E_NO_TOPIC,           S_SHOWING,     act_show },
	{ S_SUBSCRIBING, E_SUBSCRIBE_FAILURE,  S_FAILED,      NULL },
	{ S_SUBSCRIBING, E_SIGNAL,             S_DONE,        NULL },
	{ S_CONSUMING,   E_CAUGHT_UP,          S_SHOWING,     act_show },
	{ S_CONSUMING,   E_TICK,               S_SHOWING,     act_show },
	{ S_CONSUMING,   E_SIGNAL,             S_DONE,        NULL },
	{ S_CONSUMING,   E_QUIT,               S_DONE,        NULL },
	{ S_CONSUMING,   E_FAILED,             S_FAILED,      NULL },
	{ S_SHOWING,     E_SHOWN,              S_CONSUMING,   act_consume },
	{ S_SHOWING,     E_FINISHED,           S_DONE,        NULL },
	{ S_SHOWING,     E_CLOSED,             S_DONE,        NULL },
	{ S_SHOWING,     E_WRITE_FAILED,       S_FAILED,      NULL },
};

static const struct dp_fsm_final finals[] = { { S_DONE, 0 }, { S_FAILED, DP_FSM_REASON } };

static const struct dp_fsm_def machine = {
	"dp-top", state_names, NSTATES, event_names, NEVENTS, rows, DP_FSM_COUNT(rows), S_IDLE,
	finals, DP_FSM_COUNT(finals),
};

/* ---- options -------------------------------------------------------------- */

#define F(field) .off = offsetof(struct top, field)

static const struct dp_opt opts[] = {
	DP_OPT_GROUP("Reading"),
	{ DP_ARG_STRING, 0, "status-topic", "TOPIC",
	  "the status topic to read (default $DP_STATUS_TOPIC,\nelse " DP_STATUS_TOPIC_DEFAULT ")",
	  F(o.topic), .flags = DP_OPT_NONEMPTY },
	{ DP_ARG_DURATION, 0, "gone-after", "DURATION",
	  "a process silent this long without a last status is\n"
	  "gone (default: three of its status intervals)", F(o.gone_after_ms), .max = 86400000,
	  .max_label = "1d" },
	{ DP_ARG_DURATION, 0, "forget-after", "DURATION",
	  "leave out processes stopped or gone longer ago\n(default 1h; 0: keep them all)",
	  F(o.forget_after_ms) },
	DP_OPT_GROUP("Output"),
	{ DP_ARG_CHOICE, 'o', "output", "FORMAT",
	  "table (refreshing on a terminal) or json (NDJSON\n"
	  "snapshots); default: table on a terminal, else json", F(format), .choices = formats },
	{ DP_ARG_FLAG, 0, "once", NULL, "one snapshot, once the topic is read to its end",
	  F(once) },
	{ DP_ARG_DURATION, 'd', "delay", "DURATION", "between snapshots (default 2s)",
	  F(delay_ms), .max = 3600000, .max_label = "1h" },
	DP_OPT_KAFKA_ROWS,
	DP_OPT_END,
};

/* All option combinations are checked here, once. */
static int
validate(void *ctx)
{
	struct top *t = ctx;
	struct dp_buf why = DP_BUF_INIT;
	const char *from = "--status-topic";

	if (!t->o.topic) {
		const char *env = getenv("DP_STATUS_TOPIC");
		t->o.topic = env && *env ? env : DP_STATUS_TOPIC_DEFAULT;
		from = env && *env ? "$DP_STATUS_TOPIC" : "the default status topic";
	}
	if (dp_admin_check_name(t->o.topic, &why) != 0) {
		dp_err("invalid %s '%s': %s", from, t->o.topic, dp_buf_str(&why));
		dp_buf_free(&why);
		return -1;
	}
	dp_buf_free(&why);
	if (t->delay_ms < 100) {
		dp_err("invalid --delay: at least 100ms");
		return -1;
	}
	if (t->common.dot && t->format >= 0) {
		dp_err("--dot draws the system diagram: it takes no --output");
		return -1;
	}
	if (t->format < 0 && !t->common.dot)
		t->format = isatty(STDOUT_FILENO) ? FMT_TABLE : FMT_JSON;
	t->once |= t->common.dot;
	t->live = t->format == FMT_TABLE && !t->once && isatty(STDOUT_FILENO);
	return 0;
}

/* ---- the machine's actions -------------------------------------------------- */

/* Before a message that must stay on the screen: the terminal back as it was. */
static void
leave_screen(struct top *t)
{
	dp_screen_close(&t->scr);
}

/* idle -> subscribing: the cluster answers, the topic's partitions taken. */
static int
act_subscribe(struct dp_fsm *m, void *ctx)
{
	struct top *t = ctx;
	int st = dp_top_subscribe(t->e, &t->err);

	if (st == 0)
		return E_SUBSCRIBE_SUCCESS;
	if (st == DP_KAFKA_STOPPED)
		return E_SIGNAL;
	if (st == DP_EX_NOTFOUND) {
		if (!t->live)
			dp_info("no status topic '%s' yet: nothing has published a status",
			        t->o.topic);
		return E_NO_TOPIC;
	}
	leave_screen(t);
	dp_err("%s", dp_buf_str(&t->err));
	dp_fsm_fail(m, st);
	return E_SUBSCRIBE_FAILURE;
}

/* q pressed on the terminal: the view is over.  (A reader of stdout that
 * left is seen at the next snapshot, within --delay.) */
static bool
quit(void *ctx)
{
	struct top *t = ctx;
	int key = dp_screen_key(&t->scr);

	return key == 'q' || key == 'Q';
}

/*
 * -> consuming: read the topic until the next snapshot is due, or until it
 * is read to its end the first time (--once waits for that alone).
 */
static int
act_consume(struct dp_fsm *m, void *ctx)
{
	struct top *t = ctx;
	int st = 0;
	int64_t until = t->once ? INT64_MAX : t->next_ms;

	switch (dp_top_consume(t->e, until, quit, t, &t->err, &st)) {
	case DP_TOP_CAUGHT_UP:
		return E_CAUGHT_UP;
	case DP_TOP_TICK:
		return E_TICK;
	case DP_TOP_SIGNAL:
		return E_SIGNAL;
	case DP_TOP_QUIT:
		return E_QUIT;
	case DP_TOP_FAILED:
	default:
		leave_screen(t);
		dp_err("cannot read status topic '%s': %s", t->o.topic, dp_buf_str(&t->err));
		dp_fsm_fail(m, st ? st : DP_EX_UNAVAILABLE);
		return E_FAILED;
	}
}

/* The snapshot in the chosen view, appended to b. */
static int
view(struct top *t, struct dp_buf *b)
{
	struct dp_buf head = DP_BUF_INIT, text = DP_BUF_INIT;
	size_t cols, lines;
	int rc;

	if (t->common.dot)
		return dp_top_dot(t->e, &t->fsm, b);
	if (t->format == FMT_JSON)
		return dp_top_json(t->e, b);
	if (!t->live) {
		rc = dp_top_summary(t->e, b) < 0 || dp_buf_addch(b, '\n') < 0 ||
		     dp_top_table(t->e, b, 0) < 0 ? -1 : 0;
		if (rc == 0 && !t->once)
			rc = dp_buf_addch(b, '\n');
		return rc;
	}
	dp_screen_size(&t->scr, &cols, &lines);
	rc = dp_top_summary(t->e, &head) < 0 || dp_buf_addstr(&head, "  (q quits)") < 0 ||
	     dp_top_table(t->e, &text, cols) < 0 ||
	     dp_screen_frame(&t->scr, b, dp_buf_str(&head), dp_buf_str(&text), lines) < 0 ? -1 : 0;
	dp_buf_free(&head);
	dp_buf_free(&text);
	return rc;
}

/* -> showing: the snapshot now, written and flushed; then the next one, or the end. */
static int
act_show(struct dp_fsm *m, void *ctx)
{
	struct top *t = ctx;
	struct dp_out *out = t->common.out;
	struct dp_buf b = DP_BUF_INIT;
	int rc;

	dp_top_snapshot(t->e, dp_time_now_ms());
	t->next_ms = dp_time_mono_ms() + t->delay_ms;
	rc = view(t, &b);
	if (rc == 0 && (dp_out_write(out, b.data, b.len) < 0 || dp_out_flush(out) < 0))
		rc = dp_out_closed(out) ? 1 : -2;
	dp_buf_free(&b);
	if (rc == 1)
		return E_CLOSED;
	if (rc < 0) {
		leave_screen(t);
		dp_fsm_fail(m, rc == -1 ? (dp_err("out of memory"), DP_EX_SOFTWARE)
		                        : dp_cmd_stdout_failed(dp_out_error(out)));
		return E_WRITE_FAILED;
	}
	return t->once ? E_FINISHED : E_SHOWN;
}

/* ---- main ------------------------------------------------------------------ */

static int
open_top(void *ctx)
{
	struct top *t = ctx;
	int st = 0;

	if (!(t->e = dp_top_new(&t->common.kafka, &t->o, &t->err, &st))) {
		dp_err("%s", dp_buf_str(&t->err));
		return st;
	}
	if (t->live && dp_screen_open(&t->scr, STDIN_FILENO, STDOUT_FILENO) < 0)
		return dp_cmd_stdout_failed(errno);
	/* The first snapshot once the topic is read to its end, or after --delay. */
	t->next_ms = dp_time_mono_ms() + t->delay_ms;
	return 0;
}

/* The terminal back before the frame's last words (a signal's, say). */
static int
finish_top(void *ctx, int status)
{
	leave_screen(ctx);
	return status;
}

static void
close_top(void *ctx)
{
	struct top *t = ctx;

	leave_screen(t);
	dp_top_free(t->e);
	dp_buf_free(&t->err);
}

static unsigned
io_top(void *ctx)
{
	const struct top *t = ctx;

	return DP_CMD_STDOUT | (t->once ? DP_CMD_BOUNDED : 0);
}

static const struct dp_cmd cmd = {
	.name = "dp-top",
	.libs = dp_kafka_version,
	.synopsis =
		"dp-top [--status-topic TOPIC] [-o table|json] [-d DURATION] [--once]\n"
		"dp-top --dot [--status-topic TOPIC]\n",
	.about =
		"Show every dp process that publishes its status (--status-topic), grouped as\n"
		"the system's actors: producer, coordinator, consumers of fixed and of dynamic\n"
		"topics.  A table refreshing in place on a terminal (q quits), NDJSON snapshots\n"
		"otherwise; --dot draws the system diagram with each running process's state\n"
		"marked, and exits.\n",
	.opts = opts,
	.epilogue =
		"Exit status: 0 ok (also when stopped by a signal or q, but for --once), 64 usage,\n"
		"69 cluster unavailable, 74 stdout error, 81 the status topic was deleted,\n"
		"130/143 SIGINT/SIGTERM before --once had its snapshot.  See dp-top(1).\n",
	.machine = &machine,
	.start = E_START,
	.dot_runs = true,
	.validate = validate,
	.open = open_top,
	.finish = finish_top,
	.close = close_top,
	.io = io_top,
};

int
main(int argc, char **argv)
{
	static struct top t = {
		.format = -1, .delay_ms = 2000, .o.forget_after_ms = 3600000,
	};

	return dp_cmd_main(&cmd, &t, &t.common, &t.fsm, argc, argv);
}
