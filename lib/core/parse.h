/*
 * core/parse.h -- strict parsing of numbers, sizes, durations and times,
 * as command lines, specs and properties give them: the whole string
 * must be used, out-of-range values are errors.  Never atoi.
 *
 * name is what the value was given as ("--count"), for messages.  On
 * error they print "<prog>: invalid --count 'x': reason" and return -1.
 */
#ifndef DP_PARSE_H
#define DP_PARSE_H

#include <stdint.h>

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

#endif
