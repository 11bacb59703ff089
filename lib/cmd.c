/*
 * cmd.c -- dp_cmd_main(): the order every dp command runs in (cmd.h).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "exit.h"
#include "log.h"
#include "out.h"
#include "sig.h"

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

/* --help, --version, --dot: the exit status, or -1 when none was asked. */
static int
answer(const struct dp_cmd *cmd, const struct dp_common *common)
{
	if (common->help) {
		usage(cmd, stdout);
	} else if (common->version) {
		dp_cli_version();
	} else if (common->dot && cmd->machines) {
		for (size_t i = 0; cmd->machines[i]; i++)
			dp_fsm_dot(cmd->machines[i], stdout);
	} else if (common->dot && cmd->nsubs) {
		/* each machine once, in the subcommands' order */
		for (size_t i = 0; i < cmd->nsubs; i++) {
			bool drawn = false;
			for (size_t j = 0; j < i; j++)
				drawn |= sub_machine(cmd, j) == sub_machine(cmd, i);
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
	int status;

	dp_log_init(cmd->name);
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
	status = dp_fsm_run(m, cmd->start_event ? cmd->start_event(ctx) : cmd->start, ctx);

	/* 4. flush and report */
	if (cmd->finish)
		status = cmd->finish(ctx, status);
out:
	status = flush_stdout(common, status);
	if (cmd->close)
		cmd->close(ctx);
	dp_cli_free(common);
	return status;
}
