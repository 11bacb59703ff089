/*
 * core/frame.h -- the one main() of every dp command.
 *
 * Every command reads the same way: parse options, validate their
 * combinations in one place, open resources, run the state machine,
 * flush, return an exit status.  A command describes its steps in a
 * struct dp_cmd and its main() is one call:
 *
 *   int main(int argc, char **argv)
 *   {
 *           static struct tail t;
 *           return dp_cmd_main(&cmd, &t, &t.common, &t.fsm, argc, argv);
 *   }
 *
 * dp_cmd_main() owns the order, the messages that are the same
 * everywhere ("Try 'dp-x --help'", "cannot write to stdout"), --help,
 * --version and --dot, the signal handlers (core/sig.h), the data writer for
 * stdout (common->out) and the final close of stdout.  A closed pipe
 * (EPIPE) is never an error: the reader has what it wanted.
 *
 * Standard descriptors.  Before anything else, each of fds 0-2 that is
 * closed is opened on /dev/null, the wrong way round (stdin for writing,
 * stdout and stderr for reading), so that no file the command opens
 * later (a lock file, librdkafka's wake-up pipe, the database socket)
 * takes its number and is read or written as data, and any use of it
 * fails.  A command that needs a closed one (.io) ends before it opens
 * anything: stdin 66, stdout 74.
 *
 * Exit 0 and signals.  A run with an end (DP_CMD_BOUNDED: a file or pipe
 * read to its end, a topic read up to -e, one poll, one request) exits
 * 0 only when it reached that end and delivered everything it read.
 * When SIGINT or SIGTERM stopped it before (and it had no failure of its
 * own to report), the status is 128 + the signal's number, 130 or 143,
 * after one line that says what was delivered and what was not
 * (.interrupted).  A run without an end (a consumer group, --every, a
 * daemon) is stopped by a signal as its normal end: its own status.
 */
#ifndef DP_CMD_H
#define DP_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"

#include "core/cli.h"
#include "core/fsm.h"
#include "core/opt.h"

/*
 * A subcommand (dp-topic create, dp-coord serve): the first operand
 * names it.  Options say which subcommands take them (struct dp_opt's
 * subs, by index in this list); the frame refuses the others.
 */
struct dp_subcmd {
	const char *name;                       /* "create" */
	/* Its machine; NULL: the command's .machine.  --dot draws each
	 * machine once, in this order, and machines that differ only in
	 * their actions (the same name, states, events and rows: each
	 * subcommand runs the same steps its own way) as one. */
	const struct dp_fsm_def *machine;
};

/* .io's answer: what a run needs, and whether its input has an end. */
#define DP_CMD_STDIN   0x1u     /* reads standard input */
#define DP_CMD_STDOUT  0x2u     /* writes data to standard output */
#define DP_CMD_BOUNDED 0x4u     /* ends by itself: a signal before is not 0 */

struct dp_cmd {
	const char *name;                       /* "dp-tail" */
	/* The versions --version names after dp's ("librdkafka 2.0.2"), of
	 * the libraries the command talks through; NULL: none. */
	const char *(*libs)(void);
	/*
	 * --help: "usage: " and the synopsis lines (each line a form of the
	 * command, without its name's prefix on the next lines), about (a
	 * paragraph), the options of opts and the base block, then
	 * epilogue (the exit statuses).  A command with no opts table
	 * prints its own text with usage instead.
	 */
	const char *synopsis;
	const char *about;
	const struct dp_opt *opts;              /* its option table (core/opt.h) */
	const char *epilogue;
	void (*usage)(FILE *fp);
	/* Subcommands (nsubs of them) and where the chosen one's index goes:
	 * an int at sub_off in ctx. */
	const struct dp_subcmd *subs;
	size_t nsubs;
	size_t sub_off;
	/*
	 * The operands after the options (and after the subcommand): argv[0
	 * .. argc).  0, or -1 after printing why.  NULL: operands are refused.
	 */
	int (*operands)(void *ctx, int argc, char **argv);
	const struct dp_fsm_def *machine;       /* run, and drawn by --dot */
	int start;                              /* the event that starts it */
	/*
	 * A command with subcommands that behave differently has a machine
	 * for each: machines (NULL-terminated) replaces machine, --dot draws
	 * every one, first to last, and choose (after validate) says which
	 * one runs.  Each machine's start event is start.
	 */
	const struct dp_fsm_def *const *machines;
	size_t (*choose)(void *ctx);
	size_t outbuf;                          /* stdout buffer; 0: 64 KiB */
	/*
	 * --dot is a view of the run, not only the drawing of the table: the
	 * frame does not answer it, and the command runs and draws (dp-top:
	 * the system with each actor's state marked).  That drawing is still
	 * a digraph named after the command with the command's own rows in it,
	 * as dp_fsm_dot draws them, for tests/fsm.bats and the coverage.
	 */
	bool dot_runs;

	/* Options into ctx, for a command without an opts table; other
	 * options go to dp_cli_common().  0, or -1 after printing why. */
	int (*parse)(void *ctx, int argc, char **argv);
	/* Combinations of options, all checked here.  0, or -1 after
	 * printing why.  Not called for --help, --version and --dot. */
	int (*validate)(void *ctx);
	/* Resources.  0, or an exit status after printing why.  May be NULL. */
	int (*open)(void *ctx);
	/* After the machine: summaries on stderr; may change the status.
	 * May be NULL. */
	int (*finish)(void *ctx, int status);
	/* Release everything; runs whatever step failed.  May be NULL. */
	void (*close)(void *ctx);
	/* DP_CMD_* for this run, after validate.  NULL: none of them. */
	unsigned (*io)(void *ctx);
	/*
	 * After finish, when a signal came in a bounded run whose status is
	 * 0 or 75: false when its input was read to its end all the same
	 * (the status stands); else true, with what was delivered and what
	 * was not appended to said ("12 lines delivered, 3 not delivered"),
	 * for the one message.  It may release what it needs to count (a
	 * reader thread).  NULL: every signal is before the end.
	 */
	bool (*interrupted)(void *ctx, int status, struct dp_buf *said);
};

/*
 * Run the command.  common and m live in ctx (the command's actions
 * reach them there); dp_cmd_main initializes both.  Returns the exit
 * status for main() to return.
 */
int dp_cmd_main(const struct dp_cmd *cmd, void *ctx, struct dp_common *common,
                struct dp_fsm *m, int argc, char **argv);

/*
 * Call fn with the run's exit status at the very end of dp_cmd_main:
 * after the signal's verdict, the close of stdout and the command's close
 * step (the engines are gone; what fn reads must be process-wide, as
 * obs/metrics.h's registry is).  For what in lib/ watches the whole run
 * and must say how it ended (status/status.h's last record), each of which
 * registers itself; in the order registered.  At most 4, each once; 0, or
 * -1 when they are taken.
 */
int dp_cmd_at_end(void (*fn)(int status));

/* Whether --long_name was given (for validate). */
bool dp_cmd_given(const struct dp_cmd *cmd, const struct dp_common *common,
                  const char *long_name);

/* "Try 'dp-x --help' for more information." on stderr; returns DP_EX_USAGE. */
int dp_cmd_usage_hint(void);

/*
 * Report a failed write to stdout, once per process, in the one wording
 * every command uses.  EPIPE is not reported (the reader left).  Returns
 * DP_EX_IOERR, or 0 for EPIPE.
 */
int dp_cmd_stdout_failed(int err);

/*
 * For .interrupted: "N UNITs delivered, M not delivered (K of them not
 * read)" (M counts the K), or with unread -1 (a pipe: what is left is unknown) "N UNITs
 * delivered, M read and not delivered, the rest of the input not read".
 * unit is singular ("line"); an s is added.
 */
void dp_cmd_say_undelivered(struct dp_buf *said, const char *unit, uint64_t delivered,
                            uint64_t undelivered, int64_t unread);

#endif
