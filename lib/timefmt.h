/*
 * timefmt.h -- timestamps as dp reads and writes them.
 *
 * Internally a timestamp is int64 milliseconds since the Unix epoch (UTC),
 * which is what Kafka stores.  On output dp writes RFC 3339 in UTC.
 */
#ifndef DP_TIMEFMT_H
#define DP_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define DP_TIME_BUFSZ 32

/* Current wall-clock time in ms, and a monotonic clock in ms. */
int64_t dp_time_now_ms(void);
int64_t dp_time_mono_ms(void);

/*
 * Parse RFC 3339 ("2024-01-02T03:04:05Z", "...05.123+01:00"; a space may
 * stand for T).  Returns 0 or -1.
 */
int dp_time_parse_rfc3339(const char *s, int64_t *ms);

/*
 * Parse a number as epoch time: values below 1e11 are seconds, others
 * milliseconds (1e11 s is the year 5138, 1e11 ms is 1973).  Fractions of
 * a second are kept to the millisecond.  Returns 0 or -1.
 */
int dp_time_parse_epoch(const char *s, int64_t *ms);

/* RFC 3339 or epoch, whichever s is. */
int dp_time_parse(const char *s, int64_t *ms);

/* Format as RFC 3339 UTC, with milliseconds only when not zero. */
char *dp_time_format(int64_t ms, char buf[DP_TIME_BUFSZ]);

#endif
