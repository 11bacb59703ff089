/*
 * core/frame.c -- dp_cmd_main(): the order every dp command runs in (core/frame.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "core/exit.h"
#include "core/frame.h"
#include "core/log.h"
#include "core/out.h"
#include "core/sig.h"

int
dp_cmd_usage_hint(void)
{
	fprintf(stderr, "Try '%s --help' for more information.\n", dp_log_progname());
	return DP_EX_USAGE;
}

int
dp_cmd_stdout_failed(int err)
{
	static int said;

	if (err == EPIPE)
		return 0;
	if (!said++)
		dp_err("cannot write to stdout: %s", strerror(err));
	return DP_EX_IOERR;
}

void
dp_cmd_say_undelivered(struct dp_buf *said, const char *unit, uint64_t delivered,
                       uint64_t undelivered, int64_t unread)
{
	if (unread < 0) {
		dp_buf_msgf(said, "%" PRIu64 " %s%s delivered, %" PRIu64 " read and not delivered, "
		            "the rest of the input not read", delivered, unit,
		            delivered == 1 ? "" : "s", undelivered);
		return;
	}
	dp_buf_msgf(said, "%" PRIu64 " %s%s delivered, %" PRIu64 " not delivered", delivered,
	            unit, delivered == 1 ? "" : "s", undelivered + (uint64_t)unread);
	if (unread > 0 && undelivered == 0)
		dp_buf_msgf(said, " (not read)");
	else if (unread > 0)
		dp_buf_msgf(said, " (%" PRId64 " of them not read)", unread);
}

/*
 * fds 0-2 that are closed, opened on /dev/null the way that fails (core/frame.h);
 * returns the mask of those that were closed (bit fd).  Before anything
 * opens a file: open(2) takes the lowest free number.
 */
static unsigned
reserve_std(void)
{
	unsigned closed = 0;

	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		closed |= 1u << fd;
		int nfd = open("/dev/null", (fd == 0 ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
		if (nfd >= 0 && nfd != fd) {
			/* cannot happen (the lower ones are open), but never guess */
			if (dup2(nfd, fd) >= 0)
				fcntl(fd, F_SETFD, FD_CLOEXEC);
			close(nfd);
		}
	}
	return closed;
}

/* A descriptor the run needs was closed at start: 0 or the exit status, said. */
static int
check_std(unsigned io, unsigned closed)
{
	if ((io & DP_CMD_STDIN) && (closed & 1u)) {
		dp_err("standard input is closed: nothing to read (give a file, a pipe, "
		       "or </dev/null for no input)");
		return DP_EX_NOINPUT;
	}
	if ((io & DP_CMD_STDOUT) && (closed & 2u)) {
		dp_err("standard output is closed: nowhere to write (redirect it to a file, "
		       "or >/dev/null to drop it)");
		return DP_EX_IOERR;
	}
	return 0;
}

/*
 * A signal stopped a bounded run: unless it reached its end anyway, or
 * failed for a reason of its own, 128 + the signal, said once (core/frame.h).
 */
static int
signal_verdict(const struct dp_cmd *cmd, void *ctx, unsigned io, int status)
{
	int sig = atomic_load(&dp_sig_stop);
	struct dp_buf said = DP_BUF_INIT;

	if (!sig || !(io & DP_CMD_BOUNDED) || (status != 0 && status != DP_EX_TEMPFAIL))
		return status;
	if (cmd->interrupted && !cmd->interrupted(ctx, status, &said)) {
		dp_buf_free(&said);
		return status;
	}
	dp_err("stopped by %s before the end%s%s", sig == SIGINT ? "SIGINT" : sig == SIGTERM ?
	       "SIGTERM" : "a signal", said.len || said.lost ? ": " : "",
	       said.len || said.lost ? dp_buf_str(&said) : "");
	dp_buf_free(&said);
	return DP_EX_SIGNAL + sig;
}

static void (*at_end[4])(int status);

int
dp_cmd_at_end(void (*fn)(int status))
{
	for (size_t i = 0; i < sizeof(at_end) / sizeof(at_end[0]); i++)
		if (!at_end[i] || at_end[i] == fn) {
			at_end[i] = fn;
			return 0;
		}
	return -1;
}

bool
dp_cmd_given(const struct dp_cmd *cmd, const struct dp_common *common, const char *long_name)
{
	const struct dp_opt *const tabs[] = { cmd->opts, dp_opt_base, NULL };

	return cmd->opts && dp_opt_given(tabs, &common->seen, long_name);
}

/* "a, b or c": the subcommands' names, for messages. */
static const char *
sub_names(const struct dp_cmd *cmd, struct dp_buf *b)
{
	for (size_t i = 0; i < cmd->nsubs; i++)
		dp_buf_msgf(b, "%s%s", i == 0 ? "" : i + 1 == cmd->nsubs ? " or " : ", ",
		            cmd->subs[i].name);
	return dp_buf_str(b);
}

static int *
sub_field(const struct dp_cmd *cmd, void *ctx)
{
	return (int *)((char *)ctx + cmd->sub_off);
}

/*
 * Options by the table, then the subcommand (the first operand), then
 * the operands.  0, or -1 after saying why.
 */
static int
parse(const struct dp_cmd *cmd, void *ctx, struct dp_common *common, int argc, char **argv)
{
	const struct dp_opt *const tabs[] = { cmd->opts, dp_opt_base, NULL };
	int first;

	if (!cmd->opts)
		return cmd->parse(ctx, argc, argv);
	if (dp_opt_parse(tabs, ctx, common, &common->seen, argc, argv, &first) < 0)
		return -1;
	if (cmd->nsubs) {
		int *sub = sub_field(cmd, ctx);

		*sub = -1;
		if (first < argc) {
			for (size_t i = 0; i < cmd->nsubs && *sub < 0; i++)
				if (strcmp(argv[first], cmd->subs[i].name) == 0)
					*sub = (int)i;
			if (*sub < 0) {
				struct dp_buf b = DP_BUF_INIT;
				dp_err("unknown subcommand '%s' (expected %s)", argv[first],
				       sub_names(cmd, &b));
				dp_buf_free(&b);
				return -1;
			}
			first++;
			if (dp_opt_check_sub(tabs, &common->seen, *sub, cmd->subs[*sub].name) < 0)
				return -1;
		}
	}
	if (cmd->operands)
		return cmd->operands(ctx, argc - first, argv + first);
	if (first < argc) {
		dp_err("unexpected argument '%s'", argv[first]);
		return -1;
	}
	return 0;
}

/* Print a paragraph, ending it with one newline. */
static void
paragraph(FILE *fp, const char *s)
{
	size_t n = strlen(s);

	fputs(s, fp);
	if (n == 0 || s[n - 1] != '\n')
		fputc('\n', fp);
}

static void
usage(const struct dp_cmd *cmd, FILE *fp)
{
	const struct dp_opt *const tabs[] = { cmd->opts, dp_opt_base, NULL };
	const char *s = cmd->synopsis;

	if (!cmd->opts) {
		cmd->usage(fp);
		return;
	}
	fputs("usage: ", fp);
	for (; *s; s++) {
		fputc(*s, fp);
		if (*s == '\n' && s[1])
			fputs("       ", fp);
	}
	if (s == cmd->synopsis || s[-1] != '\n')
		fputc('\n', fp);
	if (cmd->about) {
		fputc('\n', fp);
		paragraph(fp, cmd->about);
	}
	dp_opt_help(fp, tabs);
	if (cmd->epilogue) {
		fputc('\n', fp);
		paragraph(fp, cmd->epilogue);
	}
}

/* The machine of subcommand i (or the command's). */
static const struct dp_fsm_def *
sub_machine(const struct dp_cmd *cmd, size_t i)
{
	return cmd->subs[i].machine ? cmd->subs[i].machine : cmd->machine;
}

/*
 * Whether a and b draw the same: the same name, states, events, final
 * states and rows, told apart at most by their actions, which --dot does
 * not draw (subcommands that run the same steps each their own way).
 */
static bool
same_drawing(const struct dp_fsm_def *a, const struct dp_fsm_def *b)
{
	if (a == b)
		return true;
	if (strcmp(a->name, b->name) != 0 || a->states != b->states || a->nstates != b->nstates ||
	    a->events != b->events || a->nevents != b->nevents || a->nrows != b->nrows ||
	    a->initial != b->initial || a->final != b->final || a->nfinal != b->nfinal)
		return false;
	for (size_t i = 0; i < a->nrows; i++)
		if (a->rows[i].state != b->rows[i].state || a->rows[i].event != b->rows[i].event ||
		    a->rows[i].next != b->rows[i].next)
			return false;
	return true;
}

/* --help, --version, --dot: the exit status, or -1 when none was asked. */
static int
answer(const struct dp_cmd *cmd, const struct dp_common *common)
{
	if (common->help) {
		usage(cmd, stdout);
	} else if (common->version) {
		dp_cli_version(cmd->libs ? cmd->libs() : NULL);
	} else if (common->dot && cmd->dot_runs) {
		return -1;              /* the command's own view: it runs */
	} else if (common->dot && cmd->machines) {
		for (size_t i = 0; cmd->machines[i]; i++)
			dp_fsm_dot(cmd->machines[i], stdout);
	} else if (common->dot && cmd->nsubs) {
		/* each drawing once, in the subcommands' order */
		for (size_t i = 0; i < cmd->nsubs; i++) {
			bool drawn = false;
			for (size_t j = 0; j < i; j++)
				drawn |= same_drawing(sub_machine(cmd, j), sub_machine(cmd, i));
			if (!drawn)
				dp_fsm_dot(sub_machine(cmd, i), stdout);
		}
	} else if (common->dot) {
		dp_fsm_dot(cmd->machine, stdout);
	} else {
		return -1;
	}
	/* A reader that closed the pipe early is fine: we said it all. */
	if (dp_out_close_stdout() < 0)
		return dp_cmd_stdout_failed(errno);
	return 0;
}

/* Flush the data writer and close stdout; a failure may change status. */
static int
flush_stdout(struct dp_common *common, int status)
{
	int e;

	if (common->out && dp_out_free(common->out) < 0) {
		e = dp_cmd_stdout_failed(errno);
		if (!status)
			status = e;
	}
	common->out = NULL;
	if (dp_out_close_stdout() < 0) {
		e = dp_cmd_stdout_failed(errno);
		if (!status)
			status = e;
	}
	return status;
}

int
dp_cmd_main(const struct dp_cmd *cmd, void *ctx, struct dp_common *common,
            struct dp_fsm *m, int argc, char **argv)
{
	unsigned closed = reserve_std(), io = 0;
	int status;

	dp_log_init(cmd->name);
	if (dp_sig_ignore_pipe() < 0) {
		dp_err("cannot ignore SIGPIPE: %s", strerror(errno));
		return DP_EX_SOFTWARE;
	}
	dp_cli_init(common);

	/* 1. options, and their combinations */
	if (parse(cmd, ctx, common, argc, argv) < 0) {
		status = dp_cmd_usage_hint();
		goto out;
	}
	if ((status = answer(cmd, common)) >= 0)
		goto out;
	if (cmd->nsubs && *sub_field(cmd, ctx) < 0) {
		struct dp_buf b = DP_BUF_INIT;
		dp_err("no subcommand (expected %s)", sub_names(cmd, &b));
		dp_buf_free(&b);
		status = dp_cmd_usage_hint();
		goto out;
	}
	if (cmd->validate && cmd->validate(ctx) < 0) {
		status = dp_cmd_usage_hint();
		goto out;
	}
	if (cmd->io)
		io = cmd->io(ctx);
	if ((status = check_std(io, closed)) != 0)
		goto out;

	/* 2. resources */
	if (dp_sig_install() < 0) {
		dp_err("cannot install signal handlers: %s", strerror(errno));
		status = DP_EX_SOFTWARE;
		goto out;
	}
	common->out = dp_out_new(STDOUT_FILENO, cmd->outbuf);
	if (!common->out) {
		dp_err("out of memory");
		status = DP_EX_SOFTWARE;
		goto out;
	}
	dp_fsm_init(m, cmd->machines ? cmd->machines[cmd->choose ? cmd->choose(ctx) : 0]
	               : cmd->nsubs ? sub_machine(cmd, (size_t)*sub_field(cmd, ctx))
	                            : cmd->machine, common->trace_states);
	if (cmd->open && (status = cmd->open(ctx)) != 0)
		goto out;

	/* 3. the machine */
	status = dp_fsm_run(m, cmd->start, ctx);

	/* 4. flush and report */
	if (cmd->finish)
		status = cmd->finish(ctx, status);
	status = signal_verdict(cmd, ctx, io, status);
out:
	status = flush_stdout(common, status);
	if (cmd->close)
		cmd->close(ctx);
	for (size_t i = 0; i < sizeof(at_end) / sizeof(at_end[0]) && at_end[i]; i++)
		at_end[i](status);
	dp_cli_free(common);
	return status;
}
