#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli.h"
#include "core/log.h"
#include "core/out.h"
#include "core/timefmt.h"

void
dp_cli_bad_option(char **argv)
{
	const char *bad = argv[optind - 1];

	/* Never echo a value given with '=': it may be a password. */
	if (optopt && optopt < 0x100 && bad && bad[0] == '-' && bad[1] != '-') {
		dp_err("unknown option or missing value: '-%c'", optopt);
	} else if (bad && bad[0] == '-' && bad[1] == '-') {
		const char *eq = strchr(bad, '=');
		int len = eq ? (int)(eq - bad) : (int)strlen(bad);
		dp_err("unknown option or missing value: '%.*s'", len, bad);
	} else {
		dp_err("unknown option");
	}
}

void
dp_cli_init(struct dp_common *c)
{
	const char *b = getenv("DP_BROKERS");
	const char *f = getenv("DP_CONFIG");

	memset(c, 0, sizeof(*c));
	opterr = 0;             /* getopt would echo whole arguments */
	c->kafka.brokers = b && *b ? b : "localhost:9092";
	c->kafka.config_file = f && *f ? f : NULL;
	c->kafka.timeout_ms = 10000;
	c->kafka.timeout_arg = DP_CLI_TIMEOUT_DEFAULT;
}

void
dp_cli_free(struct dp_common *c)
{
	if (!c)
		return;
	dp_kv_free(c->kafka.props, c->kafka.nprops);
	c->kafka.props = NULL;
	c->kafka.nprops = 0;
}

int
dp_cli_common(struct dp_common *c, int opt, char *arg)
{
	switch (opt) {
	case 'v':
		c->verbosity = c->verbosity < 0 ? 1 : c->verbosity + 1;
		break;
	case 'q':
		c->verbosity = -1;
		break;
	case 'h':
		c->help = true;
		break;
	case 'V':
		c->version = true;
		break;
	case DP_OPT_TRACE:
		c->trace_states = true;
		break;
	case DP_OPT_DOT:
		c->dot = true;
		break;
	case 'b':
		if (!*arg) {
			dp_err("invalid --brokers: empty");
			return -1;
		}
		c->kafka.brokers = arg;
		break;
	case 'F':
		c->kafka.config_file = arg;
		break;
	case DP_OPT_TIMEOUT:
		if (dp_parse_timeout("--timeout", arg, INT32_MAX, "24d", &c->kafka.timeout_ms) < 0)
			return -1;
		c->kafka.timeout_arg = arg;
		break;
	case 'X':
		if (dp_kv_add(&c->kafka.props, &c->kafka.nprops, arg) < 0) {
			/* Never echo the argument: it may carry a secret. */
			dp_err("invalid -X: expected key=value");
			return -1;
		}
		/*
		 * The value is ours now; blank it in argv so that ps and
		 * /proc/PID/cmdline stop showing it.  (A -F file is better:
		 * this only narrows the window.)
		 */
		if (dp_kv_is_secret(c->kafka.props[c->kafka.nprops - 1].key)) {
			char *v = strchr(arg, '=') + 1;
			memset(v, '*', strlen(v));
		}
		break;
	default:
		return 0;
	}
	dp_log_set_level(c->verbosity);
	return 1;
}

void
dp_cli_help_common(FILE *fp, bool kafka)
{
	if (kafka)
		fputs("\nKafka options:\n"
		      "  -b, --brokers LIST      bootstrap brokers (default $DP_BROKERS, else localhost:9092)\n"
		      "  -X, --property KEY=VAL  librdkafka property, repeatable (like kcat -X)\n"
		      "  -F, --config FILE       librdkafka properties file (default $DP_CONFIG)\n"
		      "      --timeout DURATION  give up on an unreachable cluster after this (default "
		      DP_CLI_TIMEOUT_DEFAULT ")\n", fp);
	fputs("\nCommon options:\n"
	      "  -v, --verbose           more messages on stderr (repeat for more)\n"
	      "  -q, --quiet             errors only\n"
	      "      --trace-states      print each state transition to stderr as NDJSON\n"
	      "      --dot               print the state machine as Graphviz and exit\n"
	      "  -h, --help              this help\n"
	      "  -V, --version           version\n", fp);
}

void
dp_cli_version(const char *libs)
{
	if (libs)
		printf("%s %s (%s)\n", dp_log_progname(), DP_VERSION, libs);
	else
		printf("%s %s\n", dp_log_progname(), DP_VERSION);
}
