/*
 * publish/feed.c -- a reader thread that fills batches of prepared records (publish/feed.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/sig.h"
#include "publish/feed.h"

struct dp_feed {
	struct dp_feed_conf c;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;              /* on the monotonic clock */
	struct dp_feed_batch batches[DP_FEED_NBATCH];
	struct dp_feed_batch *free[DP_FEED_NBATCH];     /* LIFO of empty batches */
	size_t nfree;
	struct dp_feed_batch *full[DP_FEED_NBATCH];     /* FIFO of filled batches */
	size_t full_head, nfull;
	atomic_int halt;                /* the command to the thread: stop */
	atomic_int waiting;             /* the thread to the command: the writer is quiet */
	atomic_ullong lines;
	atomic_ullong busy_line;        /* the line prepare works on now; 0: none */
};

size_t
dp_feed_add(struct dp_feed_batch *b, const void *p, size_t n)
{
	size_t off = b->arena.len;

	if (dp_buf_add(&b->arena, p, n) < 0 || dp_buf_addch(&b->arena, '\0') < 0) {
		b->oom = true;
		return DP_FEED_NONE;
	}
	return off;
}

const char *
dp_feed_at(const struct dp_feed_batch *b, size_t off)
{
	return off == DP_FEED_NONE ? "(out of memory)" : b->arena.data + off;
}

void
dp_feed_keep(struct dp_feed_batch *b, size_t i, const char *line, size_t len)
{
	b->line[i] = line;
	b->len[i] = len;
	if (line)
		b->in_lines = true;
}

const char *dp_feed_line(const struct dp_feed_batch *b, size_t i) { return b->line[i]; }
uint64_t dp_feed_lines(const struct dp_feed *f) { return atomic_load(&f->lines); }

uint64_t
dp_feed_busy_line(const struct dp_feed *f)
{
	return atomic_load_explicit(&f->busy_line, memory_order_relaxed);
}

void
dp_feed_abandon(struct dp_feed *f)
{
	if (!f)
		return;
	if (!f->started) {
		dp_feed_free(f);
		return;
	}
	/*
	 * Its thread is inside prepare and does not come back (a jq program
	 * that never ends: libjq cannot be interrupted).  Joining would hang,
	 * freeing would pull memory from under it: it is left to the exit.
	 */
	atomic_store(&f->halt, 1);
	pthread_detach(f->thread);
	dp_sig_busy_leave();    /* its jq is given up for: no watchdog for it (core/sig.h) */
}

/* Wait for input, but give up when the command or a signal says stop. */
static int
idle(void *ctx)
{
	struct dp_feed *f = ctx;

	return dp_sig_stop || atomic_load(&f->halt);
}

static void
signal_all(struct dp_feed *f)
{
	pthread_mutex_lock(&f->mu);
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static int
fill(struct dp_feed *f, struct dp_feed_batch *b)
{
	struct dp_lines *in = f->c.in;
	const char *line;
	size_t len;

	for (;;) {
		/* Hand over a partial batch rather than sit on it while input is quiet. */
		if (b->n == f->c.max_recs || b->arena.len > f->c.max_bytes)
			return 0;
		if (b->n > 0 && !dp_lines_has_line(in)) {
			b->quiet = dp_lines_quiet(in);
			return 0;
		}
		/*
		 * On a signal, lines already taken from the descriptor are
		 * still handed over: gone from a pipe, dropping them would
		 * lose them.
		 */
		if (dp_sig_stop)
			dp_lines_stop(in);
		if (atomic_load(&f->halt))
			return f->c.stop;
		/* About to wait for the writer: the command may send what it holds. */
		bool wait = b->n == 0 && !dp_lines_has_line(in) && dp_lines_quiet(in);
		if (wait) {
			atomic_store(&f->waiting, 1);
			signal_all(f);
		}
		int got = dp_lines_next(in, &line, &len);
		if (wait)
			atomic_store(&f->waiting, 0);
		if (got == DP_LINES_EOF && dp_sig_stop) {
			if (dp_lines_pending(in))
				dp_warn("line %lu: incomplete when the signal came; %zu bytes "
				        "not sent", dp_lines_lineno(in) + 1, dp_lines_pending(in));
			return f->c.stop;
		}
		if (got == DP_LINES_EOF)
			return f->c.eof;
		if (got == DP_LINES_ERR || got == DP_LINES_NOMEM) {
			char why[128];
			if (got == DP_LINES_ERR && errno == EINTR)
				continue;
			snprintf(why, sizeof(why), "cannot read stdin: %s",
			         got == DP_LINES_ERR ? strerror(errno) : "out of memory");
			memset((char *)b->recs + b->n * f->c.rec_size, 0, f->c.rec_size);
			b->line[b->n] = NULL;
			b->n++;
			return f->c.failed(f->c.arg, b, b->n - 1,
			                   got == DP_LINES_ERR ? DP_EX_IOERR : DP_EX_SOFTWARE, why);
		}
		uint64_t lineno = atomic_fetch_add(&f->lines, 1) + 1;
		if (len == 0)
			continue;
		memset((char *)b->recs + b->n * f->c.rec_size, 0, f->c.rec_size);
		b->line[b->n] = NULL;
		b->n++;
		/* Relaxed: plain stores on the hot path; the reader only samples them. */
		atomic_store_explicit(&f->busy_line, lineno, memory_order_relaxed);
		int ev = f->c.prepare(f->c.arg, b, b->n - 1, line, len, got);
		atomic_store_explicit(&f->busy_line, 0, memory_order_relaxed);
		if (ev)
			return ev;
	}
}

/* No memory for the hand-over: copy the kept lines into the arena. */
static void
pin(struct dp_feed_batch *b)
{
	size_t need = 0;

	for (size_t i = 0; i < b->n; i++)
		if (b->line[i])
			need += b->len[i] + 1;
	if (dp_buf_grow(&b->arena, need) < 0) {
		b->oom = true;
		for (size_t i = 0; i < b->n; i++)
			b->line[i] = NULL;
	} else {
		/* Grown once: the copies stay where they are put. */
		for (size_t i = 0; i < b->n; i++)
			if (b->line[i])
				b->line[i] = dp_feed_at(b, dp_feed_add(b, b->line[i], b->len[i]));
	}
	b->in_lines = false;
}

/* See "Zero copy" in publish/feed.h. */
static void
keep_lines(struct dp_feed *f, struct dp_feed_batch *b)
{
	const char *lo = NULL, *hi = NULL;

	for (size_t i = 0; i < b->n; i++) {
		if (!b->line[i])
			continue;
		if (!lo || b->line[i] < lo)
			lo = b->line[i];
		if (!hi || b->line[i] + b->len[i] + 1 > hi)
			hi = b->line[i] + b->len[i] + 1;      /* with its NUL */
	}
	size_t used = (size_t)(hi - lo);
	if (dp_lines_pending(f->c.in) <= used) {
		if (dp_lines_swap(f->c.in, &b->lines, &b->lines_cap) < 0)
			pin(b);
		return;
	}
	if (b->lines_cap < used) {
		char *nb = realloc(b->lines, used + 1);     /* as the reader's: +1 */
		if (!nb) {
			pin(b);
			return;
		}
		b->lines = nb;
		b->lines_cap = used;
	}
	memcpy(b->lines, lo, used);
	for (size_t i = 0; i < b->n; i++)
		if (b->line[i])
			b->line[i] = b->lines + (b->line[i] - lo);
}

static void *
feed_main(void *arg)
{
	struct dp_feed *f = arg;
	int end = 0;

	while (!end) {
		pthread_mutex_lock(&f->mu);
		while (f->nfree == 0 && !atomic_load(&f->halt))
			pthread_cond_wait(&f->cv, &f->mu);
		if (f->nfree == 0) {
			pthread_mutex_unlock(&f->mu);
			break;          /* the command stopped: nothing more is handed over */
		}
		struct dp_feed_batch *b = f->free[--f->nfree];
		pthread_mutex_unlock(&f->mu);

		b->n = 0;
		b->quiet = b->in_lines = b->oom = false;
		dp_buf_reset(&b->arena);
		end = b->end = fill(f, b);
		if (b->in_lines)
			keep_lines(f, b);
		if (f->c.ready)
			f->c.ready(f->c.arg, b);

		pthread_mutex_lock(&f->mu);
		f->full[(f->full_head + f->nfull++) % DP_FEED_NBATCH] = b;
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->mu);
	}
	return NULL;
}

struct dp_feed_batch *
dp_feed_next(struct dp_feed *f, int ms)
{
	struct dp_feed_batch *b = NULL;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);    /* the clock of f->cv */
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&f->mu);
	if (f->nfull == 0 && ms > 0)
		pthread_cond_timedwait(&f->cv, &f->mu, &ts);
	if (f->nfull > 0) {
		b = f->full[f->full_head];
		f->full_head = (f->full_head + 1) % DP_FEED_NBATCH;
		f->nfull--;
	}
	pthread_mutex_unlock(&f->mu);
	return b;
}

bool
dp_feed_quiet(struct dp_feed *f)
{
	pthread_mutex_lock(&f->mu);
	bool q = f->nfull == 0 && atomic_load(&f->waiting);
	pthread_mutex_unlock(&f->mu);
	return q;
}

void
dp_feed_release(struct dp_feed *f, struct dp_feed_batch *b)
{
	pthread_mutex_lock(&f->mu);
	f->free[f->nfree++] = b;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

void
dp_feed_halt(struct dp_feed *f)
{
	atomic_store(&f->halt, 1);
	signal_all(f);          /* it may wait for a batch, or for input */
}

struct dp_feed *
dp_feed_start(const struct dp_feed_conf *conf, struct dp_buf *err)
{
	struct dp_feed *f = calloc(1, sizeof(*f));
	pthread_condattr_t ca;
	int e;

	if (!f) {
		dp_buf_msgf(err, "out of memory");
		return NULL;
	}
	f->c = *conf;
	/* Timed waits on the monotonic clock: a step of the wall clock must not stall them. */
	if (pthread_condattr_init(&ca) || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) ||
	    pthread_mutex_init(&f->mu, NULL)) {
		dp_buf_msgf(err, "cannot set up the reader thread's lock");
		free(f);
		return NULL;
	}
	e = pthread_cond_init(&f->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (e) {
		pthread_mutex_destroy(&f->mu);
		dp_buf_msgf(err, "cannot set up the reader thread's lock");
		free(f);
		return NULL;
	}
	for (size_t i = 0; i < DP_FEED_NBATCH; i++) {
		struct dp_feed_batch *b = &f->batches[i];
		b->recs = calloc(conf->max_recs, conf->rec_size);
		b->line = calloc(conf->max_recs, sizeof(*b->line));
		b->len = calloc(conf->max_recs, sizeof(*b->len));
		if (!b->recs || !b->line || !b->len) {
			dp_buf_msgf(err, "out of memory");
			dp_feed_free(f);
			return NULL;
		}
		f->free[f->nfree++] = b;
	}
	dp_lines_set_idle(conf->in, idle, f);
	if ((e = pthread_create(&f->thread, NULL, feed_main, f))) {
		dp_buf_msgf(err, "cannot start the reader thread: %s", strerror(e));
		dp_feed_free(f);
		return NULL;
	}
	f->started = true;
	return f;
}

void
dp_feed_free(struct dp_feed *f)
{
	if (!f)
		return;
	if (f->started) {
		dp_feed_halt(f);
		pthread_join(f->thread, NULL);
	}
	dp_lines_set_idle(f->c.in, NULL, NULL);
	for (size_t i = 0; i < DP_FEED_NBATCH; i++) {
		struct dp_feed_batch *b = &f->batches[i];
		free(b->recs);
		free(b->line);
		free(b->len);
		free(b->lines);
		dp_buf_free(&b->arena);
	}
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f);
}
