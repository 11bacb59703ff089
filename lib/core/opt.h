/*
 * core/opt.h -- one option table per command.
 *
 * A command describes each of its options once, in a static table: its
 * names, its argument, its --help line, where its value goes and how it
 * is parsed.  From that table the engine makes getopt_long's arrays,
 * prints the option part of --help, parses every value strictly
 * (numbers, sizes, durations, choices: never atoi) and refuses an option
 * that the chosen subcommand does not take.  An option is so written in
 * two places: its row and the man page; tests/options.bats checks that
 * --help, the man page and both completions agree.  After git's
 * parse-options.
 *
 *   static const char *const non_json_names[] = { "error", "skip", NULL };
 *   static const struct dp_opt opts[] = {
 *           DP_OPT_GROUP("Subscribing"),
 *           { DP_ARG_LIST, 't', "topic", "TOPIC", "topic to read; repeatable",
 *             .off = offsetof(struct tail, topics), .flags = DP_OPT_NONEMPTY },
 *           { DP_ARG_CHOICE, 0, "non-json", "MODE", "error (default) or skip",
 *             .off = offsetof(struct tail, non_json), .choices = non_json_names },
 *           DP_OPT_KAFKA_ROWS,
 *           DP_OPT_END,
 *   };
 *
 * Values land in the command's context (ctx + off), typed as the row's
 * kind says (below); strings are borrowed from argv.  The common options
 * are rows of kind DP_ARG_COMMON, handled by dp_cli_common(): the Kafka
 * block (DP_OPT_KAFKA_ROWS) where a command talks to Kafka, and the base
 * block (dp_opt_base: -v, -q, --trace-states, --dot, -h, -V), which the
 * frame (core/frame.h) appends to every command's table.
 *
 * Messages go through dp_err() and name the option ("invalid --count
 * 'x': not a non-negative integer"); a DP_OPT_SECRET row's value is
 * never echoed.
 */
#ifndef DP_OPT_H
#define DP_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct dp_common;

/* What a row's argument is, and so the type of the field at off. */
enum dp_opt_kind {
	DP_ARG_END,             /* ends a table: DP_OPT_END */
	DP_ARG_HEADING,         /* a heading in --help (DP_OPT_GROUP), not an option */
	DP_ARG_FLAG,            /* bool: set to true */
	DP_ARG_STRING,          /* const char *: arg (borrowed from argv); the last one wins */
	DP_ARG_LIST,            /* struct dp_opt_list: every arg, in order */
	DP_ARG_CHOICE,          /* int: the index of arg in choices (exact match) */
	DP_ARG_U64,             /* uint64_t in [min, max] */
	DP_ARG_I64,             /* int64_t in [min, max] */
	DP_ARG_SIZE,            /* uint64_t bytes, with K/M/G suffixes, in [min, max] */
	DP_ARG_DURATION,        /* int64_t ms (dp_parse_duration), at most max (0: no bound) */
	DP_ARG_TIMEOUT,         /* int64_t ms, from 1 ms to max */
	DP_ARG_CALL,            /* fn(ctx, row, arg) parses it: anything else */
	DP_ARG_COMMON,          /* dp_cli_common(common, id, arg) */
};

enum {
	DP_OPT_NONEMPTY = 1u << 0,      /* STRING, LIST: "" is refused */
	DP_OPT_SECRET = 1u << 1,        /* never echo the value in a message */
	DP_OPT_HIDDEN = 1u << 2,        /* not in --help (kept so old scripts run) */
	/* The argument may be left out: --wait, or --wait=30s (never a word of
	 * its own); --help shows --wait[=DURATION].  DP_ARG_CALL only: its
	 * function gets NULL when there is none. */
	DP_OPT_OPTIONAL_ARG = 1u << 3,
};

/* A repeatable option's values: the array is owned (free it), the strings
 * are argv's. */
struct dp_opt_list {
	const char **v;
	size_t n;
};

struct dp_opt;

/* DP_ARG_CALL: parse arg into ctx.  0, or -1 after printing why.  arg is
 * argv's memory (a secret may be blanked in place). */
typedef int (*dp_opt_fn)(void *ctx, const struct dp_opt *o, char *arg);

struct dp_opt {
	enum dp_opt_kind kind;
	int short_name;                 /* 't', or 0 for a long-only option */
	const char *long_name;          /* "topic"; a heading's text for DP_ARG_HEADING */
	const char *argname;            /* "TOPIC"; NULL: the option takes no argument */
	const char *help;               /* the --help text; a '\n' starts another line */
	size_t off;                     /* offsetof(struct ctx, field) */
	unsigned flags;                 /* DP_OPT_NONEMPTY, DP_OPT_SECRET, DP_OPT_HIDDEN */
	const char *const *choices;     /* CHOICE: the names, NULL-terminated */
	int64_t min, max;               /* U64, I64, SIZE: bounds; DURATION, TIMEOUT: max */
	const char *max_label;          /* SIZE, DURATION, TIMEOUT: max as a user types it */
	dp_opt_fn fn;                   /* CALL */
	int id;                         /* COMMON: dp_cli_common's code */
	/* The subcommands that take this option: bit i for subcommand i of
	 * the command's list (core/frame.h); 0: every one.  Others refuse it. */
	unsigned subs;
};

#define DP_OPT_END { .kind = DP_ARG_END }
#define DP_OPT_GROUP(title) { .kind = DP_ARG_HEADING, .long_name = (title) }

/* Bit for subcommand i, for struct dp_opt's subs. */
#define DP_SUB(i) (1u << (i))

/* The Kafka block: -b, -X, -F, --timeout, under the heading "Kafka options". */
#define DP_OPT_KAFKA_ROWS \
	DP_OPT_GROUP("Kafka options"), \
	{ .kind = DP_ARG_COMMON, .short_name = 'b', .long_name = "brokers", .argname = "LIST", \
	  .help = "bootstrap brokers (default $DP_BROKERS, else localhost:9092)", .id = 'b' }, \
	{ .kind = DP_ARG_COMMON, .short_name = 'X', .long_name = "property", .argname = "KEY=VAL", \
	  .help = "librdkafka property, repeatable (like kcat -X)", .id = 'X', \
	  .flags = DP_OPT_SECRET }, \
	{ .kind = DP_ARG_COMMON, .short_name = 'F', .long_name = "config", .argname = "FILE", \
	  .help = "librdkafka properties file (default $DP_CONFIG)", .id = 'F' }, \
	{ .kind = DP_ARG_COMMON, .long_name = "timeout", .argname = "DURATION", \
	  .help = "give up on an unreachable cluster after this (default 10s)", \
	  .id = DP_OPT_TIMEOUT }

/* The base block, which the frame appends to every command's table. */
extern const struct dp_opt dp_opt_base[];

/* Which rows were given, by their index across the tables (at most 256). */
struct dp_opt_seen {
	uint64_t bits[4];
};

/*
 * Parse argv with the rows of tabs (tables each ending with DP_OPT_END;
 * the array NULL-terminated): values into ctx, common options into
 * common, the rows given into *seen.  Positional arguments are left at
 * argv[*first .. argc) (getopt_long permutes them to the end).  0, or -1
 * after printing why (an unknown option is named without its value).
 */
int dp_opt_parse(const struct dp_opt *const *tabs, void *ctx, struct dp_common *common,
                 struct dp_opt_seen *seen, int argc, char **argv, int *first);

/*
 * Refuse the options given that subcommand sub, named name, does not
 * take (struct dp_opt's subs).  0, or -1 after "--x cannot be used with
 * NAME".
 */
int dp_opt_check_sub(const struct dp_opt *const *tabs, const struct dp_opt_seen *seen,
                     int sub, const char *name);

/* Whether --long_name was given. */
bool dp_opt_given(const struct dp_opt *const *tabs, const struct dp_opt_seen *seen,
                  const char *long_name);

/*
 * Print the rows of tabs as --help shows options: a blank line and the
 * heading, then "  -t, --topic TOPIC       help" with the help at
 * column 26 (on a line of its own when the names reach it), each further
 * line of help aligned under the first.
 */
void dp_opt_help(FILE *fp, const struct dp_opt *const *tabs);

/*
 * Find arg among choices (NULL-terminated): its index, or -1 after
 * "invalid NAME 'arg': expected a, b or c" (name is "--hypertable").
 */
int dp_opt_pick(const char *name, const char *arg, const char *const *choices);

#endif
