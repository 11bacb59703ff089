/*
 * core/progress.h -- "--progress": rate and totals on stderr about once a second.
 */
#ifndef DP_PROGRESS_H
#define DP_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct dp_progress {
	bool on;
	int64_t start_ms;
	int64_t last_ms;
	uint64_t last_n;
};

void dp_progress_init(struct dp_progress *p, bool on);
/*
 * Print a line when a second has passed since the last one (or when
 * final is set): "<what> N total, R/s, <extra>".  extra may be NULL.
 */
void dp_progress_tick(struct dp_progress *p, const char *what, uint64_t n,
                      const char *extra, bool final);

#endif
