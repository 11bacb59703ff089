/*
 * core/backoff.c -- exponential backoff with jitter, and sleeps a signal cuts
 * short (core/backoff.h).
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/backoff.h"
#include "core/timefmt.h"

void
dp_backoff_init(struct dp_backoff *b, int64_t base_ms, int64_t cap_ms, double jitter,
                uint64_t seed)
{
	b->base_ms = base_ms < 1 ? 1 : base_ms;
	b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
	b->jitter = !(jitter > 0) ? 0 : jitter > 1 ? 1 : jitter;   /* NaN: none */
	b->attempts = 0;
	if (!seed)
		seed = (uint64_t)dp_time_now_ms() ^ ((uint64_t)getpid() << 20) ^
		       (uint64_t)dp_time_mono_ms() << 40;
	b->rng[0] = (unsigned short)seed;
	b->rng[1] = (unsigned short)(seed >> 16);
	b->rng[2] = (unsigned short)(seed >> 32 ^ seed >> 48);
}

int64_t
dp_backoff_next(struct dp_backoff *b, int64_t hint_ms)
{
	int64_t d = b->base_ms;

	/* Doubling stops at the cap, so neither d nor the loop can run away. */
	for (unsigned i = 0; i < b->attempts && d < b->cap_ms; i++)
		d = d > b->cap_ms / 2 ? b->cap_ms : d * 2;
	if (d > b->cap_ms)
		d = b->cap_ms;
	if (b->jitter > 0) {
		/* r < d as a double; compared first, since (double)INT64_MAX is 2^63. */
		double r = erand48(b->rng) * b->jitter * (double)d;
		d -= r >= (double)d ? d : (int64_t)r;
	}
	if (hint_ms > 0 && hint_ms > d)
		d = hint_ms < b->cap_ms ? hint_ms : b->cap_ms;
	if (b->attempts < ~0u)
		b->attempts++;
	return d;
}

void
dp_backoff_reset(struct dp_backoff *b)
{
	b->attempts = 0;
}

static int
sleep_until(int64_t deadline, int64_t (*clock)(void), const atomic_int *stop)
{
	for (;;) {
		if (stop && *stop)
			return -1;
		int64_t left = deadline - clock();
		if (left <= 0)
			return 0;
		/* A signal between the check and the sleep costs one slice at most. */
		if (left > DP_BACKOFF_SLICE_MS)
			left = DP_BACKOFF_SLICE_MS;
		struct timespec ts = { (time_t)(left / 1000), (long)(left % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

int
dp_backoff_sleep(int64_t ms, const atomic_int *stop)
{
	/* Past ~285 million years the sum would overflow: that is forever enough. */
	if (ms > INT64_MAX / 4)
		ms = INT64_MAX / 4;
	return sleep_until(dp_time_mono_ms() + (ms > 0 ? ms : 0), dp_time_mono_ms, stop);
}

int
dp_backoff_sleep_until(int64_t wall_ms, const atomic_int *stop)
{
	return sleep_until(wall_ms, dp_time_now_ms, stop);
}
