#include "core/log.h"
#include "core/progress.h"
#include "core/timefmt.h"

void
dp_progress_init(struct dp_progress *p, bool on)
{
	p->on = on;
	p->start_ms = p->last_ms = dp_time_mono_ms();
	p->last_n = 0;
}

void
dp_progress_tick(struct dp_progress *p, const char *what, uint64_t n,
                 const char *extra, bool final)
{
	int64_t now;

	if (!p->on)
		return;
	now = dp_time_mono_ms();
	if (!final && now - p->last_ms < 1000)
		return;
	int64_t span = final ? now - p->start_ms : now - p->last_ms;
	uint64_t dn = final ? n : n - p->last_n;
	double rate = span > 0 ? (double)dn * 1000.0 / (double)span : 0.0;
	dp_err("progress: %llu %s, %.0f/s%s%s%s", (unsigned long long)n, what, rate,
	       final ? " overall" : "", extra ? ", " : "", extra ? extra : "");
	p->last_ms = now;
	p->last_n = n;
}
