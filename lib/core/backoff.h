/*
 * core/backoff.h -- how long to wait before trying again, and waiting that a
 * signal cuts short.
 *
 * Whatever retries something that failed for a passing reason (an HTTP
 * request, a reconnect to PostgreSQL, a restart of a crashed child, a
 * WebSocket) asks a struct dp_backoff for the next delay: base doubled
 * per attempt, capped, with random jitter so that many clients that
 * failed together do not retry together (AWS Architecture Blog,
 * "Exponential Backoff And Jitter", 2015).  A success calls
 * dp_backoff_reset() so that the next failure starts from base again.
 * The delays are pure computation over the struct's own random state: no
 * clock, no global state, the same seed gives the same delays.
 *
 * Waiting is separate: dp_backoff_sleep() and dp_backoff_sleep_until()
 * sleep in slices of at most DP_BACKOFF_SLICE_MS and return early once
 * *stop is set (a SIGINT/SIGTERM flag, core/sig.h), so a command ends within
 * about a slice of a signal in any wait.
 *
 * Units are milliseconds throughout.  Nothing here exits or allocates.
 */
#ifndef DP_BACKOFF_H
#define DP_BACKOFF_H

#include <stdatomic.h>
#include <stdint.h>

#define DP_BACKOFF_SLICE_MS 200

struct dp_backoff {
	int64_t base_ms;          /* the first delay (before jitter); > 0 */
	int64_t cap_ms;           /* no delay is longer; >= base_ms */
	double jitter;            /* 0..1: the part of each delay that is random */
	unsigned attempts;        /* delays handed out since the last reset */
	unsigned short rng[3];    /* erand48(3) state */
};

/*
 * Set up b.  jitter 0 gives exact doubling; 0.5 ("equal jitter") a delay
 * between half and all of the doubled value; 1 ("full jitter") anything
 * from 0 to it.  Values out of range are clamped: base to at least 1 ms,
 * cap to at least base, jitter to 0..1.  seed 0 seeds from the clock and
 * the process id (different processes spread); tests pass their own.
 */
void dp_backoff_init(struct dp_backoff *b, int64_t base_ms, int64_t cap_ms, double jitter,
                     uint64_t seed);

/*
 * The delay before the next attempt, and count the attempt: about
 * min(cap, base * 2^attempts), jittered.  hint_ms > 0 is how long the
 * other side asked to wait (an HTTP Retry-After): the delay is at least
 * that, but never more than cap.  Never overflows, however many attempts
 * (a reconnect loop may run for months).
 */
int64_t dp_backoff_next(struct dp_backoff *b, int64_t hint_ms);

/* After a success: the next delay is about base again. */
void dp_backoff_reset(struct dp_backoff *b);

/*
 * Sleep ms (monotonic clock), or until *stop becomes non-zero (stop may
 * be NULL).  Returns 0 when the time is up, -1 when stopped.
 */
int dp_backoff_sleep(int64_t ms, const atomic_int *stop);

/*
 * Sleep until the wall clock reads wall_ms (ms since the epoch; polls
 * aligned to the clock), or until *stop becomes non-zero.  A clock that
 * is set forward or back is noticed within a slice.  Returns 0 or -1 as
 * dp_backoff_sleep().
 */
int dp_backoff_sleep_until(int64_t wall_ms, const atomic_int *stop);

#endif
