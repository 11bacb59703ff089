#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

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
	c->brokers = b && *b ? b : "localhost:9092";
	c->config_file = f && *f ? f : NULL;
	c->timeout_ms = 10000;
	c->timeout_arg = DP_CLI_TIMEOUT_DEFAULT;
}

void
dp_cli_free(struct dp_common *c)
{
	if (!c)
		return;
	dp_kv_free(c->props, c->nprops);
	c->props = NULL;
	c->nprops = 0;
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
		c->brokers = arg;
		break;
	case 'F':
		c->config_file = arg;
		break;
	case DP_OPT_TIMEOUT:
		if (dp_parse_timeout("--timeout", arg, INT32_MAX, "24d", &c->timeout_ms) < 0)
			return -1;
		c->timeout_arg = arg;
		break;
	case 'X':
		if (dp_kv_add(&c->props, &c->nprops, arg) < 0) {
			/* Never echo the argument: it may carry a secret. */
			dp_err("invalid -X: expected key=value");
			return -1;
		}
		/*
		 * The value is ours now; blank it in argv so that ps and
		 * /proc/PID/cmdline stop showing it.  (A -F file is better:
		 * this only narrows the window.)
		 */
		if (dp_kv_is_secret(c->props[c->nprops - 1].key)) {
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
dp_cli_version(void)
{
	printf("%s %s (librdkafka %s)\n", dp_log_progname(), DP_VERSION, rd_kafka_version_str());
}

static int
bad(const char *name, const char *s, const char *why)
{
	dp_err("invalid %s '%s': %s", name, s, why);
	return -1;
}

int
dp_parse_u64(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)*s))
		return bad(name, s, "not a non-negative integer");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end)
		return bad(name, s, "not a non-negative integer");
	if (errno == ERANGE || v < min || v > max) {
		dp_err("invalid %s '%s': must be between %llu and %llu", name, s,
		       (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

int
dp_parse_size(const char *name, const char *s, uint64_t min, uint64_t max, const char *max_label,
              uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!isdigit((unsigned char)*s))
		return bad(name, s, "not a size such as 4096, 512K, 64M or 1G");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M')
		shift = 20;
	else if (*end == 'G')
		shift = 30;
	if (shift)
		end++;
	if (*end)
		return bad(name, s, "not a size such as 4096, 512K, 64M or 1G");
	if (errno == ERANGE || v > (max >> shift) || (v << shift) < min || (v << shift) > max) {
		dp_err("invalid %s '%s': must be from %llu byte%s to %s", name, s,
		       (unsigned long long)min, min == 1 ? "" : "s", max_label);
		return -1;
	}
	*out = (uint64_t)v << shift;
	return 0;
}

int
dp_parse_i64(const char *name, const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (!isdigit((unsigned char)*s) && !(*s == '-' && isdigit((unsigned char)s[1])))
		return bad(name, s, "not an integer");
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end)
		return bad(name, s, "not an integer");
	if (errno == ERANGE || v < min || v > max) {
		dp_err("invalid %s '%s': must be between %lld and %lld", name, s,
		       (long long)min, (long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

int
dp_parse_duration(const char *name, const char *s, int64_t *ms)
{
	const char *p = s;
	int64_t total = 0;

	if (!*p)
		return bad(name, s, "empty duration");
	while (*p) {
		char *end;
		if (!isdigit((unsigned char)*p))
			return bad(name, s, "expected a number such as 500ms, 10s, 5m, 1h");
		errno = 0;
		unsigned long long v = strtoull(p, &end, 10);
		if (errno == ERANGE)
			return bad(name, s, "too large");
		int64_t unit;
		p = end;
		if (strncmp(p, "ms", 2) == 0) {
			unit = 1; p += 2;
		} else if (*p == 's') {
			unit = 1000; p++;
		} else if (*p == 'm') {
			unit = 60000; p++;
		} else if (*p == 'h') {
			unit = 3600000; p++;
		} else if (*p == 'd') {
			unit = 86400000; p++;
		} else if (*p == '\0' && p != s && total == 0) {
			unit = 1000;       /* a bare number is seconds */
		} else {
			return bad(name, s, "unknown unit (use ms, s, m, h or d)");
		}
		/*
		 * The sum stays within INT64_MAX / 4, and so does each count
		 * times its unit: whatever dp_duration_format prints of an
		 * accepted duration (90 days as "90d") reads back.
		 */
		if (v > (unsigned long long)((INT64_MAX / 4 - total) / unit))
			return bad(name, s, "too large");
		total += (int64_t)v * unit;
	}
	*ms = total;
	return 0;
}

char *
dp_duration_format(int64_t ms, char buf[48])
{
	static const struct { int64_t unit; const char *name; } units[] = {
		{ 86400000, "d" }, { 3600000, "h" }, { 60000, "m" }, { 1000, "s" }, { 1, "ms" },
	};
	size_t len = 0;

	if (ms <= 0)
		return strcpy(buf, ms == 0 ? "0s" : "-");
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && ms > 0; i++) {
		int64_t n = ms / units[i].unit;
		if (n == 0)
			continue;
		len += (size_t)snprintf(buf + len, 48 - len, "%lld%s", (long long)n, units[i].name);
		ms -= n * units[i].unit;
	}
	return buf;
}

int
dp_parse_timeout(const char *name, const char *s, int64_t max_ms, const char *max_label,
                 int64_t *ms)
{
	if (dp_parse_duration(name, s, ms) < 0)
		return -1;
	if (*ms < 1 || *ms > max_ms) {
		dp_err("invalid %s '%s': must be between 1ms and %s", name, s, max_label);
		return -1;
	}
	return 0;
}

int
dp_kv_add(struct dp_kv **kv, size_t *n, const char *pair)
{
	const char *eq = strchr(pair, '=');
	struct dp_kv *p;

	if (!eq || eq == pair)
		return -1;
	p = realloc(*kv, (*n + 1) * sizeof(**kv));
	if (!p)
		return -1;
	*kv = p;
	p[*n].key = strndup(pair, (size_t)(eq - pair));
	p[*n].value = strdup(eq + 1);
	if (!p[*n].key || !p[*n].value) {
		free(p[*n].key);
		free(p[*n].value);
		return -1;
	}
	(*n)++;
	return 0;
}

int
dp_kv_put(struct dp_kv **kv, size_t *n, const char *pair)
{
	const char *eq = strchr(pair, '=');

	if (!eq || eq == pair)
		return -1;
	for (size_t i = 0; i < *n; i++)
		if (strlen((*kv)[i].key) == (size_t)(eq - pair) &&
		    strncmp((*kv)[i].key, pair, (size_t)(eq - pair)) == 0) {
			char *v = strdup(eq + 1);
			if (!v)
				return -1;
			free((*kv)[i].value);
			(*kv)[i].value = v;
			return 0;
		}
	return dp_kv_add(kv, n, pair);
}

void
dp_kv_free(struct dp_kv *kv, size_t n)
{
	if (!kv)
		return;
	for (size_t i = 0; i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

int
dp_kv_is_secret(const char *key)
{
	static const char *const words[] = { "password", "secret", "sasl.",
		"key", "token", "credential", "oauthbearer", NULL };

	for (int i = 0; words[i]; i++)
		if (strstr(key, words[i]))
			return 1;
	return 0;
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int
dp_props_read(const char *path, struct dp_kv **kv, size_t *n, struct dp_buf *err)
{
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	unsigned long lineno = 0;
	int rc = 0;

	if (!fp) {
		dp_buf_msgf(err, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, fp) >= 0) {
		char *s = trim(line), *eq;
		lineno++;
		if (!*s || *s == '#' || *s == '!')
			continue;
		eq = strchr(s, '=');
		if (!eq)
			eq = strchr(s, ':');
		if (!eq || eq == s) {
			dp_buf_msgf(err, "%s:%lu: expected key=value", path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		char *k = trim(s), *v = trim(eq + 1);
		struct dp_buf pair = DP_BUF_INIT;
		rc = dp_buf_addf(&pair, "%s=%s", k, v);
		if (rc == 0)
			rc = dp_kv_add(kv, n, pair.data);
		dp_buf_free(&pair);
		if (rc < 0) {
			dp_buf_msgf(err, "%s:%lu: out of memory", path, lineno);
			break;
		}
	}
	if (rc == 0 && ferror(fp)) {
		dp_buf_msgf(err, "cannot read %s: %s", path, strerror(errno));
		rc = -1;
	}
	free(line);
	fclose(fp);
	return rc;
}

int
dp_parse_time(const char *name, const char *s, int64_t now_ms, int64_t *ms)
{
	const char *why;
	int64_t d;

	if (strcmp(s, "now") == 0) {
		*ms = now_ms;
		return 0;
	}
	if (s[0] == '-') {
		if (dp_parse_duration(name, s + 1, &d) < 0)
			return -1;
		*ms = now_ms - d;
		return 0;
	}
	if (dp_time_parse_why(s, ms, &why) == 0)
		return 0;
	dp_err("invalid %s '%s': %s; expected RFC 3339, epoch seconds or milliseconds, "
	       "'now' or -DURATION", name, s, why);
	return -1;
}
