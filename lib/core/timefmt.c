/*
 * core/timefmt.c -- clocks, and timestamps read and written as RFC 3339 or
 * epoch numbers (core/timefmt.h).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/timefmt.h"

int64_t
dp_time_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
dp_time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The reason when s is not even shaped like a time. */
static const char not_time[] = "not RFC 3339 or epoch time";

static int
leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days in month mo (1..12) of year y. */
static int
month_days(int y, int mo)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return mo == 2 && leap_year(y) ? 29 : mdays[mo - 1];
}

/*
 * The parts of an RFC 3339 date-time: whole seconds since the epoch, and
 * the digits of the fraction (borrowed from s; *nfrac may be 0).
 */
static int
rfc3339_parts(const char *s, int64_t *secs, const char **frac, int *nfrac, const char **why)
{
	int y, mo, d, h, mi, sec, tzh = 0, tzm = 0, sign = 0;

	*why = not_time;
	if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' ||
	    digits(&s, 2, &d))
		return -1;
	if (*s != 'T' && *s != 't' && *s != ' ')
		return -1;
	s++;
	if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) || *s++ != ':' ||
	    digits(&s, 2, &sec))
		return -1;
	*frac = s;
	*nfrac = 0;
	if (*s == '.') {
		*frac = ++s;
		if (!isdigit((unsigned char)*s))
			return -1;
		while (isdigit((unsigned char)*s))
			s++;
		*nfrac = (int)(s - *frac);
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '-' ? -1 : 1;
		if (digits(&s, 2, &tzh) || *s++ != ':' || digits(&s, 2, &tzm))
			return -1;
	} else {
		return -1;
	}
	if (*s)
		return -1;
	if (mo < 1 || mo > 12)
		*why = "no such month";
	else if (d < 1 || d > month_days(y, mo))
		*why = "no such day in that month";
	else if (h > 23 || mi > 59)
		*why = "no such time of day";
	else if (sec == 60)
		*why = "a leap second (:60) has no epoch time";
	else if (sec > 59)
		*why = "no such time of day";
	else if (tzh > 23 || tzm > 59)
		*why = "no such UTC offset";
	else
		*why = NULL;
	if (*why)
		return -1;
	int64_t days = days_from_civil(y, mo, d);
	int64_t t = ((days * 24 + h) * 60 + mi) * 60 + sec;
	*secs = t - sign * (tzh * 3600 + tzm * 60);
	return 0;
}

/* The first n digits of the fraction as an integer (padded with zeros). */
static int64_t
frac_digits(const char *frac, int nfrac, int n)
{
	int64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v * 10 + (i < nfrac ? frac[i] - '0' : 0);
	return v;
}

static int
rfc3339(const char *s, int64_t *ms, const char **why)
{
	int64_t secs;
	const char *frac;
	int nfrac;

	if (rfc3339_parts(s, &secs, &frac, &nfrac, why) < 0)
		return -1;
	int64_t t = secs * 1000 + frac_digits(frac, nfrac, 3);
	if (t > DP_TIME_MAX_MS) {
		*why = "after the year 9999";
		return -1;
	}
	*ms = t;
	return 0;
}

int
dp_time_parse_rfc3339_us(const char *s, int64_t *us)
{
	int64_t secs;
	const char *frac, *why;
	int nfrac;

	if (rfc3339_parts(s, &secs, &frac, &nfrac, &why) < 0 || secs * 1000 > DP_TIME_MAX_MS)
		return -1;
	if (nfrac <= 6) {
		*us = secs * 1000000 + frac_digits(frac, nfrac, 6);
		return 0;
	}
	/* Longer fractions round the way PostgreSQL's own input does
	 * (ParseFractionalSecond: rint(strtod(".ddd") * 1e6)), so a value
	 * lands the same whether it came as text or through dp. */
	char buf[40];
	int n = nfrac < 36 ? nfrac : 36;
	buf[0] = '.';
	memcpy(buf + 1, frac, (size_t)n);
	buf[n + 1] = '\0';
	*us = secs * 1000000 + (int64_t)rint(strtod(buf, NULL) * 1000000.0);
	return 0;
}

int
dp_time_parse_date(const char *s, int64_t *days)
{
	int y, mo, d;

	if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' ||
	    digits(&s, 2, &d) || *s || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo))
		return -1;
	*days = days_from_civil(y, mo, d);
	return 0;
}

int
dp_time_parse_rfc3339(const char *s, int64_t *ms)
{
	const char *why;

	return rfc3339(s, ms, &why);
}

/* A JSON number without sign: 12, 12.5, 1.2e3. */
static int
decimal(const char *s)
{
	if (!isdigit((unsigned char)*s))
		return 0;
	while (isdigit((unsigned char)*s))
		s++;
	if (*s == '.') {
		if (!isdigit((unsigned char)*++s))
			return 0;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!isdigit((unsigned char)*s))
			return 0;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return *s == '\0';
}

static int
epoch(const char *s, int64_t *ms, const char **why)
{
	char *end;
	double v;

	*why = not_time;
	if (!decimal(s))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (*end || errno || !isfinite(v))
		return -1;
	if (v < 1e11)
		v *= 1000;
	if (v > (double)DP_TIME_MAX_MS) {
		*why = "after the year 9999";
		return -1;
	}
	*ms = (int64_t)llround(v);
	return 0;
}

int
dp_time_parse_epoch(const char *s, int64_t *ms)
{
	const char *why;

	return epoch(s, ms, &why);
}

int
dp_time_parse_why(const char *s, int64_t *ms, const char **why)
{
	const char *w1, *w2;

	if (rfc3339(s, ms, &w1) == 0 || epoch(s, ms, &w2) == 0)
		return 0;
	/* The RFC 3339 reason, unless s did not even look like one. */
	if (why)
		*why = w1 != not_time ? w1 : w2;
	return -1;
}

int
dp_time_parse(const char *s, int64_t *ms)
{
	return dp_time_parse_why(s, ms, NULL);
}

char *
dp_time_format(int64_t ms, char buf[DP_TIME_BUFSZ])
{
	int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
	int millis = (int)(ms - secs * 1000);
	time_t t = (time_t)secs;
	struct tm tm;

	gmtime_r(&t, &tm);
	size_t n = strftime(buf, DP_TIME_BUFSZ, "%Y-%m-%dT%H:%M:%S", &tm);
	if (millis)
		snprintf(buf + n, DP_TIME_BUFSZ - n, ".%03dZ", millis);
	else
		snprintf(buf + n, DP_TIME_BUFSZ - n, "Z");
	return buf;
}
