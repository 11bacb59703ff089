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
	if (cmd->parse(ctx, argc, argv) < 0) {
		status = dp_cmd_usage_hint();
		goto out;
	}
	if (cmd->machines && common->dot) {
		for (size_t i = 0; cmd->machines[i]; i++)
			dp_fsm_dot(cmd->machines[i], stdout);
		status = 0;
		goto out;
	}
	if ((status = dp_cli_answer(common, cmd->usage, cmd->machine)) >= 0)
		goto out;
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
