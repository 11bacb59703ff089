/*
 * fuzz_parsers -- the parsers of what users type (lib/core/cli.h, lib/core/timefmt.h,
 * lib/cc/rest.h): durations, timestamps, numbers and sizes.
 *
 * Input: byte 0 picks the parser, the rest is the text.  Properties:
 *   - numbers: dp_parse_u64 / _i64 accept exactly the decimal integers in
 *     range (a model written here, digit by digit), with the same value;
 *     dp_parse_size is the number times its suffix, within range;
 *   - durations: what is accepted prints (dp_duration_format) as text
 *     that reads back to the same milliseconds;
 *   - times: every accepted time lies in 0..DP_TIME_MAX_MS for epoch
 *     numbers and RFC 3339 alike (dates before 1970 may be negative);
 *     from 1970 on, dp_time_format prints it as RFC 3339 that reads back
 *     to the same millisecond; the microsecond reader agrees with the
 *     millisecond one to the millisecond.
 */
#include <errno.h>
#include <limits.h>

#include "cc/rest.h"
#include "core/cli.h"
#include "core/timefmt.h"
#include "fuzz.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

/* The model: s is [-]digits with value in [min, max] (as __int128). */
static int
model_int(const char *s, int neg_ok, __int128 min, __int128 max, __int128 *v)
{
	int neg = 0;
	__int128 x = 0;

	if (neg_ok && *s == '-') {
		neg = 1;
		s++;
	}
	if (*s < '0' || *s > '9')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		x = x * 10 + (*s - '0');
		if (x > (__int128)UINT64_MAX + 1)
			x = (__int128)UINT64_MAX + 2;      /* out of any range; stop growing */
	}
	if (neg)
		x = -x;
	if (x < min || x > max)
		return -1;
	*v = x;
	return 0;
}

static void
numbers(const char *s, uint8_t pick)
{
	uint64_t u, umin = pick & 1 ? 1 : 0, umax = pick & 2 ? 1000 : UINT64_MAX;
	int64_t i, imin = pick & 1 ? -5 : INT64_MIN, imax = pick & 2 ? 1000 : INT64_MAX;
	__int128 m;

	int rc = dp_parse_u64("--n", s, umin, umax, &u);
	FUZZ_CHECK((rc == 0) == (model_int(s, 0, umin, umax, &m) == 0));
	if (rc == 0)
		FUZZ_CHECK((__int128)u == m);
	rc = dp_parse_i64("--n", s, imin, imax, &i);
	FUZZ_CHECK((rc == 0) == (model_int(s, 1, imin, imax, &m) == 0));
	if (rc == 0)
		FUZZ_CHECK((__int128)i == m);
	if (dp_parse_size("--n", s, 1, (uint64_t)1 << 40, "1T", &u) == 0)
		FUZZ_CHECK(u >= 1 && u <= (uint64_t)1 << 40);
}

static void
durations(const char *s)
{
	int64_t ms, again;
	char buf[48];

	if (dp_parse_duration("--d", s, &ms) < 0)
		return;
	FUZZ_CHECK(ms >= 0);
	dp_duration_format(ms, buf);
	FUZZ_CHECK(dp_parse_duration("--d", buf, &again) == 0 && again == ms);
	if (dp_parse_timeout("--t", s, 3600000, "1h", &again) == 0)
		FUZZ_CHECK(again == ms && ms >= 1 && ms <= 3600000);
}

static void
times(const char *s)
{
	int64_t ms, ms2, us, days;
	const char *why = NULL;
	char buf[DP_TIME_BUFSZ];

	if (dp_time_parse_why(s, &ms, &why) == 0) {
		FUZZ_CHECK(ms <= DP_TIME_MAX_MS);
		if (ms >= 0) {
			dp_time_format(ms, buf);
			FUZZ_CHECK(dp_time_parse_rfc3339(buf, &ms2) == 0 && ms2 == ms);
		}
	} else {
		FUZZ_CHECK(why && *why);
	}
	if (dp_time_parse_epoch(s, &ms) == 0)
		FUZZ_CHECK(ms >= 0 && ms <= DP_TIME_MAX_MS);
	if (dp_time_parse_rfc3339(s, &ms) == 0) {
		FUZZ_CHECK(dp_time_parse_rfc3339_us(s, &us) == 0);
		/* The same instant: us rounds, ms truncates the fraction. */
		int64_t floor_ms = us >= 0 ? us / 1000 : -((-us + 999) / 1000);
		FUZZ_CHECK(floor_ms == ms || floor_ms == ms + 1);
	}
	if (dp_time_parse_date(s, &days) == 0)
		FUZZ_CHECK(days >= -719528 && days <= 2932896);
	enum dp_cc_interval iv;
	if (dp_cc_interval_parse(s, &iv) == 0)
		FUZZ_CHECK(dp_cc_interval_secs(iv) > 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 256)
		return 0;
	char *s = fuzz_str(data + 1, size - 1);
	if (strlen(s) == size - 1) {
		switch (data[0] % 3) {
		case 0: numbers(s, data[0] / 3); break;
		case 1: durations(s); break;
		default: times(s); break;
		}
	}
	free(s);
	return 0;
}
