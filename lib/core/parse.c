/*
 * core/parse.c -- strict parsing of numbers, sizes, durations and times
 * (core/parse.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/parse.h"
#include "core/timefmt.h"

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
