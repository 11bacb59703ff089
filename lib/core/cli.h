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

/* One librdkafka property from -X or a -F file (strings owned). */
struct dp_kv {
	char *key;
	char *value;
};

struct dp_out;

struct dp_common {
	const char *brokers;     /* borrowed from argv or the environment */
	const char *config_file; /* -F, else $DP_CONFIG; borrowed */
	struct dp_kv *props;     /* -X in command-line order; owned */
	size_t nprops;
	int64_t timeout_ms;      /* --timeout: give up on the cluster after this */
	const char *timeout_arg; /* --timeout as typed, for messages; borrowed */
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

/* Print "dp-xxx VERSION (librdkafka ...)" to stdout. */
void dp_cli_version(void);

/*
 * Strict parsers.  name is the option for messages ("--count").  On error
 * they print "<prog>: invalid --count 'x': reason" and return -1.
 */
int dp_parse_u64(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out);
int dp_parse_i64(const char *name, const char *s, int64_t min, int64_t max, int64_t *out);
/*
 * A size in bytes: a number, or one with a binary suffix K, M or G
 * (512K = 524288 bytes).  max_label names max in the same grammar.
 */
int dp_parse_size(const char *name, const char *s, uint64_t min, uint64_t max,
                  const char *max_label, uint64_t *out);
/*
 * Durations: "250ms", "10s", "5m", "2h", "1d", also combined "1m30s".
 * A bare number is seconds.  Result in milliseconds.
 */
int dp_parse_duration(const char *name, const char *s, int64_t *ms);
/*
 * Format ms in the grammar dp_parse_duration reads, largest units first:
 * 10000 -> "10s", 90000 -> "1m30s", 1500 -> "1s500ms".  Returns buf.
 */
char *dp_duration_format(int64_t ms, char buf[48]);
/*
 * A point in time: RFC 3339, epoch seconds or milliseconds, "now" (now_ms),
 * or -DURATION before now_ms ("-2h").  Dates that do not exist are errors.
 */
int dp_parse_time(const char *name, const char *s, int64_t now_ms, int64_t *ms);
/* A duration for a timeout: at least 1 ms, at most max_ms (named max_label). */
int dp_parse_timeout(const char *name, const char *s, int64_t max_ms, const char *max_label,
                     int64_t *ms);

/*
 * Read a Java-style properties file (key=value, # or ! comments, blank
 * lines) and append its pairs to *kv (owned by the caller; free with
 * dp_kv_free).  On error appends "FILE:LINE: reason" to err.
 */
int dp_props_read(const char *path, struct dp_kv **kv, size_t *n, struct dp_buf *err);
/* Split "key=value" and append; -1 when there is no '=' or no key. */
int dp_kv_add(struct dp_kv **kv, size_t *n, const char *pair);
/* The same, but a key already there gets the new value (-c, last one wins). */
int dp_kv_put(struct dp_kv **kv, size_t *n, const char *pair);
void dp_kv_free(struct dp_kv *kv, size_t n);

/* 1 when a property's value must never be printed (passwords, keys). */
int dp_kv_is_secret(const char *key);

#endif
