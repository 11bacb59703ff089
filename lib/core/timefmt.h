/*
 * core/timefmt.h -- timestamps as dp reads and writes them.
 *
 * Internally a timestamp is int64 milliseconds since the Unix epoch (UTC),
 * which is what Kafka stores.  On output dp writes RFC 3339 in UTC.
 */
#ifndef DP_TIMEFMT_H
#define DP_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define DP_TIME_BUFSZ 32

/*
 * The latest time dp reads or writes: 9999-12-31T23:59:59.999Z, the last
 * instant RFC 3339 can write with its four-digit year.
 */
#define DP_TIME_MAX_MS INT64_C(253402300799999)

/* Current wall-clock time in ms, and a monotonic clock in ms. */
int64_t dp_time_now_ms(void);
int64_t dp_time_mono_ms(void);

/*
 * Parse RFC 3339 ("2024-01-02T03:04:05Z", "...05.123+01:00"; a space may
 * stand for T).  Only dates that exist are accepted: 2025-02-29 or
 * 2024-04-31 are errors, never rolled over into the next month.  A leap
 * second (:60) is an error too: epoch time has no place for it, and
 * reading it as :00 of the next minute would change the time silently.
 * Returns 0 or -1.
 */
int dp_time_parse_rfc3339(const char *s, int64_t *ms);

/*
 * The same to the microsecond (PostgreSQL's resolution): digits past the
 * sixth are rounded exactly as PostgreSQL rounds its own text input.
 */
int dp_time_parse_rfc3339_us(const char *s, int64_t *us);

/* Parse a calendar date "YYYY-MM-DD" into days since 1970-01-01. */
int dp_time_parse_date(const char *s, int64_t *days);

/*
 * Parse a number as epoch time: values below 1e11 are seconds, others
 * milliseconds (1e11 s is the year 5138, 1e11 ms is 1973).  Fractions of
 * a second are kept to the millisecond.  The number is decimal, as JSON
 * writes it (digits, fraction, exponent); not negative, not after
 * DP_TIME_MAX_MS.  Returns 0 or -1.
 */
int dp_time_parse_epoch(const char *s, int64_t *ms);

/* RFC 3339 or epoch, whichever s is. */
int dp_time_parse(const char *s, int64_t *ms);

/*
 * dp_time_parse() that also says why s is not a time: *why gets a static
 * phrase for messages ("no such day in that month", "not RFC 3339 or
 * epoch time", ...).  why may be NULL.
 */
int dp_time_parse_why(const char *s, int64_t *ms, const char **why);

/* Format as RFC 3339 UTC, with milliseconds only when not zero. */
char *dp_time_format(int64_t ms, char buf[DP_TIME_BUFSZ]);

#endif
