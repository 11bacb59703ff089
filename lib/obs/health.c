/*
 * obs/health.c -- live and ready, from links and feeds (obs/health.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parse.h"
#include "core/timefmt.h"
#include "core/vec.h"
#include "obs/health.h"

#define MAX_LINKS 8

struct dp_health_feed {
	char *name;
	atomic_llong last_ms;           /* monotonic ms of the newest record, or of its start */
	atomic_bool seen;               /* a record came */
	atomic_bool dropped;
};

static struct {
	pthread_mutex_t mu;
	bool on;
	int64_t stale_ms;
	char failing[256];
	struct { const char *what; bool up, was_up; } links[MAX_LINKS];
	size_t nlinks;
	struct dp_health_feed **feeds;  /* every feed made; dropped ones stay for late callers */
	size_t nfeeds, cap;
	int64_t first_feed_ms;          /* when the first feed came (monotonic); 0: none yet */
} h = { .mu = PTHREAD_MUTEX_INITIALIZER };

int
dp_health_init(int64_t stale_after_ms)
{
	pthread_mutex_lock(&h.mu);
	h.on = true;
	h.stale_ms = stale_after_ms;
	pthread_mutex_unlock(&h.mu);
	return 0;
}

void
dp_health_free(void)
{
	pthread_mutex_lock(&h.mu);
	for (size_t i = 0; i < h.nfeeds; i++) {
		free(h.feeds[i]->name);
		free(h.feeds[i]);
	}
	free(h.feeds);
	h.feeds = NULL;
	h.nfeeds = h.cap = h.nlinks = 0;
	h.first_feed_ms = 0;
	h.failing[0] = '\0';
	h.on = false;
	pthread_mutex_unlock(&h.mu);
}

void
dp_health_fail(const char *why)
{
	if (!h.on)
		return;
	pthread_mutex_lock(&h.mu);
	if (!h.failing[0])
		snprintf(h.failing, sizeof(h.failing), "%s", why && *why ? why : "failing");
	pthread_mutex_unlock(&h.mu);
}

void
dp_health_link(const char *what, bool up)
{
	size_t i;

	if (!h.on)
		return;
	pthread_mutex_lock(&h.mu);
	for (i = 0; i < h.nlinks && strcmp(h.links[i].what, what) != 0; i++)
		;
	if (i == h.nlinks && h.nlinks < MAX_LINKS)
		h.links[h.nlinks++].what = what;
	if (i < h.nlinks) {
		h.links[i].up = up;
		h.links[i].was_up |= up;
	}
	pthread_mutex_unlock(&h.mu);
}

struct dp_health_feed *
dp_health_feed(const char *name)
{
	struct dp_health_feed *f = NULL, **v;

	if (!h.on)
		return NULL;
	pthread_mutex_lock(&h.mu);
	for (size_t i = 0; i < h.nfeeds; i++)
		if (strcmp(h.feeds[i]->name, name) == 0) {
			f = h.feeds[i];
			goto fresh;
		}
	if (!(v = dp_grow(h.feeds, &h.cap, h.nfeeds + 1, sizeof(*v), 16)))
		goto out;
	h.feeds = v;
	if (!(f = calloc(1, sizeof(*f))) || !(f->name = strdup(name))) {
		free(f);
		f = NULL;
		goto out;
	}
	h.feeds[h.nfeeds++] = f;
	if (!h.first_feed_ms)
		h.first_feed_ms = dp_time_mono_ms();
fresh:
	atomic_store(&f->dropped, false);
	atomic_store(&f->last_ms, dp_time_mono_ms());
out:
	pthread_mutex_unlock(&h.mu);
	return f;
}

void
dp_health_feed_drop(struct dp_health_feed *f)
{
	if (f)
		atomic_store(&f->dropped, true);
}

void
dp_health_data(struct dp_health_feed *f)
{
	if (!f)
		return;
	atomic_store_explicit(&f->last_ms, dp_time_mono_ms(), memory_order_relaxed);
	atomic_store_explicit(&f->seen, true, memory_order_relaxed);
}

bool
dp_health_live(char *why, size_t n)
{
	bool live;

	pthread_mutex_lock(&h.mu);
	live = !h.failing[0];
	if (!live && n)
		snprintf(why, n, "%s", h.failing);
	pthread_mutex_unlock(&h.mu);
	return live;
}

bool
dp_health_ready(char *why, size_t n)
{
	int64_t now = dp_time_mono_ms();
	bool ready = true;

	if (!dp_health_live(why, n))
		return false;
	pthread_mutex_lock(&h.mu);
	for (size_t i = 0; i < h.nlinks && ready; i++)
		if (!h.links[i].up) {
			ready = false;
			snprintf(why, n, h.links[i].was_up ? "%s is down" : "not connected to %s yet",
			         h.links[i].what);
		}
	bool any_seen = false;
	for (size_t i = 0; i < h.nfeeds && ready && h.stale_ms > 0; i++) {
		const struct dp_health_feed *f = h.feeds[i];
		int64_t idle = now - atomic_load(&f->last_ms);
		char d[48], s[48];
		if (!atomic_load(&f->seen))
			continue;       /* watched from its first record on */
		any_seen = true;
		if (atomic_load(&f->dropped) || idle < h.stale_ms)
			continue;
		ready = false;
		snprintf(why, n, "no record on %s for %s (--stale-after %s)", f->name,
		         dp_duration_format(idle / 1000 * 1000, d), dp_duration_format(h.stale_ms, s));
	}
	if (ready && h.stale_ms > 0 && h.nfeeds && !any_seen &&
	    now - h.first_feed_ms >= h.stale_ms) {
		char d[48], s[48];
		ready = false;
		snprintf(why, n, "no record since the start, %s ago (--stale-after %s)",
		         dp_duration_format((now - h.first_feed_ms) / 1000 * 1000, d),
		         dp_duration_format(h.stale_ms, s));
	}
	pthread_mutex_unlock(&h.mu);
	return ready;
}

int64_t
dp_health_data_age_ms(void)
{
	int64_t newest = -1;

	pthread_mutex_lock(&h.mu);
	for (size_t i = 0; i < h.nfeeds; i++)
		if (atomic_load(&h.feeds[i]->seen) && atomic_load(&h.feeds[i]->last_ms) > newest)
			newest = atomic_load(&h.feeds[i]->last_ms);
	pthread_mutex_unlock(&h.mu);
	return newest < 0 ? -1 : dp_time_mono_ms() - newest;
}
