/*
 * core/opt.c -- the option tables of core/opt.h: getopt_long's arrays, --help's
 * option text and strict parsing of every value, from one table.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli.h"
#include "core/log.h"
#include "core/opt.h"

const struct dp_opt dp_opt_base[] = {
	DP_OPT_GROUP("Common options"),
	{ .kind = DP_ARG_COMMON, .short_name = 'v', .long_name = "verbose",
	  .help = "more messages on stderr (repeat for more)", .id = 'v' },
	{ .kind = DP_ARG_COMMON, .short_name = 'q', .long_name = "quiet",
	  .help = "errors only", .id = 'q' },
	{ .kind = DP_ARG_COMMON, .long_name = "trace-states",
	  .help = "print each state transition to stderr as NDJSON", .id = DP_OPT_TRACE },
	{ .kind = DP_ARG_COMMON, .long_name = "dot",
	  .help = "print the state machine as Graphviz and exit", .id = DP_OPT_DOT },
	{ .kind = DP_ARG_COMMON, .short_name = 'h', .long_name = "help",
	  .help = "this help", .id = 'h' },
	{ .kind = DP_ARG_COMMON, .short_name = 'V', .long_name = "version",
	  .help = "version", .id = 'V' },
	DP_OPT_END,
};

/* getopt_long's code for a long-only row: LONG_CODE + its index. */
#define LONG_CODE 0x2000
#define MAX_ROWS 256

/* The option rows of tabs, in order, into rows[MAX_ROWS]; how many, or
 * MAX_ROWS + 1 when there are more. */
static size_t
flatten(const struct dp_opt *const *tabs, const struct dp_opt **rows)
{
	size_t n = 0;

	for (size_t t = 0; tabs[t]; t++)
		for (const struct dp_opt *o = tabs[t]; o->kind != DP_ARG_END; o++) {
			if (o->kind == DP_ARG_HEADING)
				continue;
			if (n == MAX_ROWS)
				return MAX_ROWS + 1;
			rows[n++] = o;
		}
	return n;
}

static void
seen_set(struct dp_opt_seen *s, size_t i)
{
	s->bits[i / 64] |= UINT64_C(1) << (i % 64);
}

static bool
seen_has(const struct dp_opt_seen *s, size_t i)
{
	return (s->bits[i / 64] >> (i % 64)) & 1;
}

static void *
field(void *ctx, const struct dp_opt *o)
{
	return (char *)ctx + o->off;
}

int
dp_opt_pick(const char *name, const char *arg, const char *const *choices)
{
	struct dp_buf list = DP_BUF_INIT;
	size_t n = 0;

	for (size_t i = 0; choices[i]; i++)
		if (strcmp(arg, choices[i]) == 0)
			return (int)i;
	while (choices[n])
		n++;
	for (size_t i = 0; i < n; i++)
		dp_buf_msgf(&list, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", choices[i]);
	dp_err("invalid %s '%s': expected %s", name, arg, dp_buf_str(&list));
	dp_buf_free(&list);
	return -1;
}

static int
list_push(struct dp_opt_list *l, const char *s)
{
	const char **v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v) {
		dp_err("out of memory");
		return -1;
	}
	v[l->n++] = s;
	l->v = v;
	return 0;
}

/* Parse one given option's argument into ctx. */
static int
take(const struct dp_opt *o, void *ctx, struct dp_common *common, char *arg)
{
	char name[80];
	uint64_t u;
	int64_t i;
	int v;

	snprintf(name, sizeof(name), "--%s", o->long_name);
	if ((o->flags & DP_OPT_NONEMPTY) && arg && !*arg) {
		dp_err("invalid %s: empty", name);
		return -1;
	}
	switch (o->kind) {
	case DP_ARG_FLAG:
		*(bool *)field(ctx, o) = true;
		return 0;
	case DP_ARG_STRING:
		*(const char **)field(ctx, o) = arg;
		return 0;
	case DP_ARG_LIST:
		return list_push(field(ctx, o), arg);
	case DP_ARG_CHOICE:
		if ((v = dp_opt_pick(name, arg, o->choices)) < 0)
			return -1;
		*(int *)field(ctx, o) = v;
		return 0;
	case DP_ARG_U64:
		if (dp_parse_u64(name, arg, (uint64_t)o->min, (uint64_t)o->max, &u) < 0)
			return -1;
		*(uint64_t *)field(ctx, o) = u;
		return 0;
	case DP_ARG_I64:
		if (dp_parse_i64(name, arg, o->min, o->max, &i) < 0)
			return -1;
		*(int64_t *)field(ctx, o) = i;
		return 0;
	case DP_ARG_SIZE:
		if (dp_parse_size(name, arg, (uint64_t)o->min, (uint64_t)o->max, o->max_label,
		                  &u) < 0)
			return -1;
		*(uint64_t *)field(ctx, o) = u;
		return 0;
	case DP_ARG_DURATION:
		if (dp_parse_duration(name, arg, &i) < 0)
			return -1;
		if (o->max && i > o->max) {
			dp_err("invalid %s '%s': must be at most %s", name, arg, o->max_label);
			return -1;
		}
		*(int64_t *)field(ctx, o) = i;
		return 0;
	case DP_ARG_TIMEOUT:
		if (dp_parse_timeout(name, arg, o->max, o->max_label, &i) < 0)
			return -1;
		*(int64_t *)field(ctx, o) = i;
		return 0;
	case DP_ARG_CALL:
		return o->fn(ctx, o, arg);
	case DP_ARG_COMMON:
		return dp_cli_common(common, o->id, arg) == 1 ? 0 : -1;
	case DP_ARG_END:
	case DP_ARG_HEADING:
		break;
	}
	dp_err("internal error: option %s has no kind", name);
	return -1;
}

int
dp_opt_parse(const struct dp_opt *const *tabs, void *ctx, struct dp_common *common,
             struct dp_opt_seen *seen, int argc, char **argv, int *first)
{
	const struct dp_opt *rows[MAX_ROWS];
	struct option lo[MAX_ROWS + 1];
	char so[2 * MAX_ROWS + 2];
	size_t n = flatten(tabs, rows), ns = 0;
	int opt;

	memset(seen, 0, sizeof(*seen));
	if (n > MAX_ROWS) {
		dp_err("internal error: more than %d options", MAX_ROWS);
		return -1;
	}
	so[ns++] = ':';         /* a missing argument is ':', told apart from '?' */
	for (size_t i = 0; i < n; i++) {
		const struct dp_opt *o = rows[i];

		bool optional = o->argname && (o->flags & DP_OPT_OPTIONAL_ARG);

		lo[i] = (struct option){ o->long_name, optional ? optional_argument : o->argname ?
		                         required_argument : no_argument,
		                         NULL, o->short_name ? o->short_name : LONG_CODE + (int)i };
		if (o->short_name) {
			so[ns++] = (char)o->short_name;
			if (o->argname)
				so[ns++] = ':';
			if (optional)
				so[ns++] = ':';
		}
	}
	lo[n] = (struct option){ NULL, 0, NULL, 0 };
	so[ns] = '\0';

	optind = 1;
	opterr = 0;             /* getopt would echo whole arguments, values too */
	while ((opt = getopt_long(argc, argv, so, lo, NULL)) != -1) {
		size_t i = n;

		if (opt == '?' || opt == ':') {
			dp_cli_bad_option(argv);
			return -1;
		}
		if (opt >= LONG_CODE)
			i = (size_t)(opt - LONG_CODE);
		else
			for (size_t k = 0; k < n && i == n; k++)
				if (rows[k]->short_name == opt)
					i = k;
		if (i >= n) {
			dp_err("internal error: getopt gave option %d", opt);
			return -1;
		}
		seen_set(seen, i);
		if (take(rows[i], ctx, common, optarg) < 0)
			return -1;
	}
	*first = optind;
	return 0;
}

int
dp_opt_check_sub(const struct dp_opt *const *tabs, const struct dp_opt_seen *seen, int sub,
                 const char *name)
{
	const struct dp_opt *rows[MAX_ROWS];
	size_t n = flatten(tabs, rows);

	for (size_t i = 0; i < n && i < MAX_ROWS; i++)
		if (seen_has(seen, i) && rows[i]->subs && !(rows[i]->subs & DP_SUB(sub))) {
			dp_err("--%s cannot be used with %s", rows[i]->long_name, name);
			return -1;
		}
	return 0;
}

bool
dp_opt_given(const struct dp_opt *const *tabs, const struct dp_opt_seen *seen,
             const char *long_name)
{
	const struct dp_opt *rows[MAX_ROWS];
	size_t n = flatten(tabs, rows);

	for (size_t i = 0; i < n && i < MAX_ROWS; i++)
		if (seen_has(seen, i) && strcmp(rows[i]->long_name, long_name) == 0)
			return true;
	return false;
}

#define HELP_COL 26

void
dp_opt_help(FILE *fp, const struct dp_opt *const *tabs)
{
	for (size_t t = 0; tabs[t]; t++)
		for (const struct dp_opt *o = tabs[t]; o->kind != DP_ARG_END; o++) {
			char names[128];
			int w;

			if (o->kind == DP_ARG_HEADING) {
				fprintf(fp, "\n%s:\n", o->long_name);
				continue;
			}
			if (o->flags & DP_OPT_HIDDEN)
				continue;
			const char *pre = !o->argname ? "" : o->flags & DP_OPT_OPTIONAL_ARG ? "[=" : " ";
			const char *post = o->argname && (o->flags & DP_OPT_OPTIONAL_ARG) ? "]" : "";
			if (o->short_name)
				w = snprintf(names, sizeof(names), "  -%c, --%s%s%s%s", o->short_name,
				             o->long_name, pre, o->argname ? o->argname : "", post);
			else
				w = snprintf(names, sizeof(names), "      --%s%s%s%s", o->long_name, pre,
				             o->argname ? o->argname : "", post);
			fputs(names, fp);
			if (!o->help || !*o->help) {
				fputc('\n', fp);
				continue;
			}
			if (w >= HELP_COL - 1)
				fprintf(fp, "\n%*s", HELP_COL, "");
			else
				fprintf(fp, "%*s", HELP_COL - w, "");
			for (const char *h = o->help; *h; h++) {
				fputc(*h, fp);
				if (*h == '\n' && h[1])
					fprintf(fp, "%*s", HELP_COL, "");
			}
			fputc('\n', fp);
		}
}
