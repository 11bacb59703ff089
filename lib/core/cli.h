/*
 * core/cli.h -- command-line conventions shared by every dp command.
 *
 * Each command lists its own options plus one of the common blocks below
 * in a single getopt_long table, and hands every option it does not know
 * to dp_cli_common().  That way -v, --dot, -b, -X ... mean the same thing
 * everywhere, and --help text, man pages and completions can agree.
 *
 * Numbers and durations are parsed strictly: the whole string must be
 * used, and out-of-range values are errors.  Never atoi.
 */
#ifndef DP_CLI_H
#define DP_CLI_H

#include <getopt.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/fsm.h"
#include "core/opt.h"
#include "core/parse.h"
#include "core/props.h"

/* Long-only option codes; commands number theirs from DP_OPT_CMD. */
enum {
	DP_OPT_TRACE = 0x1000,
	DP_OPT_DOT,
	DP_OPT_TIMEOUT,
	DP_OPT_CMD = 0x1100,
};

#define DP_CLI_BASE_SHORT "vqhV"
#define DP_CLI_BASE_LONG \
	{ "verbose",      no_argument, NULL, 'v' }, \
	{ "quiet",        no_argument, NULL, 'q' }, \
	{ "help",         no_argument, NULL, 'h' }, \
	{ "version",      no_argument, NULL, 'V' }, \
	{ "trace-states", no_argument, NULL, DP_OPT_TRACE }, \
	{ "dot",          no_argument, NULL, DP_OPT_DOT }

#define DP_CLI_KAFKA_SHORT "b:X:F:"
#define DP_CLI_KAFKA_LONG \
	{ "brokers", required_argument, NULL, 'b' }, \
	{ "config",  required_argument, NULL, 'F' }, \
	{ "property", required_argument, NULL, 'X' }, \
	{ "timeout", required_argument, NULL, DP_OPT_TIMEOUT }

/* The default of --timeout, as the user would type it. */
#define DP_CLI_TIMEOUT_DEFAULT "10s"

struct dp_out;

struct dp_common {
	struct dp_kafka_opts kafka; /* -b, -F, -X, --timeout: what Kafka engines take */
	struct dp_out *out;      /* stdout's data writer; made and freed by dp_cmd_main */
	int verbosity;           /* -1 quiet, 0 normal, 1.. verbose */
	struct dp_opt_seen seen; /* which options were given (core/opt.h) */
	bool trace_states;
	bool dot;
	bool help;
	bool version;
};

/*
 * Fill defaults: brokers from $DP_BROKERS else localhost:9092, $DP_CONFIG,
 * --timeout 10s.
 * Also turns getopt's own messages off (they echo whole arguments, values
 * included): commands report '?' with dp_cli_bad_option().
 */
void dp_cli_init(struct dp_common *c);
void dp_cli_free(struct dp_common *c);

/*
 * Handle a common option.  Returns 1 when handled, 0 when opt is not a
 * common option, -1 on a bad value (message already printed).  arg is
 * argv memory: a secret -X value is overwritten there once copied.
 */
int dp_cli_common(struct dp_common *c, int opt, char *arg);

/* Say which option getopt_long refused, without any value given with '='. */
void dp_cli_bad_option(char **argv);

/* Print the common part of a --help text (Kafka options when kafka). */
void dp_cli_help_common(FILE *fp, bool kafka);

/* Print "dp-xxx VERSION (libs)" to stdout; libs may be NULL. */
void dp_cli_version(const char *libs);

#endif
