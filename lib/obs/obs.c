/*
 * obs/obs.c -- the endpoint, the metrics file, the notify socket and the
 * machines' watcher of one run (obs/obs.h).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/exit.h"
#include "core/file.h"
#include "core/frame.h"
#include "core/fsm.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/timefmt.h"
#include "obs/endpoint.h"
#include "obs/health.h"
#include "obs/notify.h"
#include "obs/obs.h"

/* How often readiness is looked at for the notify socket (STATUS=, READY=1). */
#define NOTIFY_LOOK_MS 500

#define MAX_MACHINES 8

/* A machine seen by the watcher: its dp_state series, and the transitions taken. */
struct machine {
	const struct dp_fsm_def *def;
	struct dp_series **state;       /* one per state */
	struct dp_series **trans;       /* [from * nevents + event], made when first taken */
	int cur;
};

struct dp_obs_part {
	char *topic;
	char partition[16];
	struct dp_series *in;           /* dp_records_in_total: kept while the process lives */
	struct dp_series *lag, *lag_s, *ts;     /* while assigned (under obs.mu) */
	struct dp_health_feed *feed;
	_Atomic int64_t lag_n;          /* -1: unknown */
	_Atomic int64_t ts_ms;          /* the newest record's timestamp; 0: none */
	bool assigned;
	struct dp_obs_part *next;
};

static struct {
	atomic_bool on;
	pthread_mutex_t mu;             /* machines, parts, status, the ticker's wake-up */
	pthread_cond_t cv;
	const char *command;
	struct dp_obs_opts o;
	struct dp_endpoint *ep;
	pthread_t ticker;
	bool ticking, stop, changed;
	bool notify, said_ready, said_notify_error;
	int64_t watchdog_ms;
	char last_status[600];          /* the last STATUS= sent */
	char links[128];                /* dp_obs_start's, each name ended by a NUL */
	int exit_status;                /* dp_obs_exit's; -1 */
	struct machine machines[MAX_MACHINES];
	size_t nmachines;
	struct dp_obs_part *parts;
	struct dp_series *ready;
	int64_t file_failed_ms;         /* when a periodic write last failed; 0: fine */
} obs = { .mu = PTHREAD_MUTEX_INITIALIZER };

static const char *const no_labels[] = { NULL };

/* ---- the families ------------------------------------------------------ */

static const struct {
	const char *name, *help;
	enum dp_metric_type type;
} families[DP_OBS_NFAMILIES] = {
	[DP_OBS_RECORDS_IN] = { "dp_records_in_total",
		"Records read: consumed from Kafka, lines from standard input, values from the API.",
		DP_METRIC_COUNTER },
	[DP_OBS_RECORDS_OUT] = { "dp_records_out_total",
		"Records delivered: acknowledged by Kafka, committed to the table, or printed.",
		DP_METRIC_COUNTER },
	[DP_OBS_RECORDS_BAD] = { "dp_records_bad_total",
		"Records refused as bad input, by the kind of reason.", DP_METRIC_COUNTER },
	[DP_OBS_DEAD_LETTERS] = { "dp_dead_letters_total",
		"Records sent to a dead-letter topic.", DP_METRIC_COUNTER },
	[DP_OBS_RETRIES] = { "dp_retries_total",
		"Work tried again after a passing failure, by cause.", DP_METRIC_COUNTER },
	[DP_OBS_LAG_RECORDS] = { "dp_consumer_lag_records",
		"Records in the partition after the last one read (high watermark - position).",
		DP_METRIC_GAUGE },
	[DP_OBS_LAG_SECONDS] = { "dp_consumer_lag_seconds",
		"How far behind the reader is: now - the timestamp of the last record read, "
		"while records wait; 0 when caught up.", DP_METRIC_GAUGE },
	[DP_OBS_LAST_TIMESTAMP] = { "dp_last_record_timestamp_seconds",
		"The timestamp of the newest record read (seconds since the epoch).",
		DP_METRIC_GAUGE },
	[DP_OBS_BATCH_SECONDS] = { "dp_sink_batch_duration_seconds",
		"A batch from the start of its transaction to its commit.", DP_METRIC_HISTOGRAM },
};

/* Seconds: from a millisecond to a minute, for a batch that waits on a lock or a disk. */
static const double batch_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };

struct dp_metric *
dp_obs_family(enum dp_obs_family which, const char *const *labels)
{
	if (which >= DP_OBS_NFAMILIES)
		return NULL;
	return dp_metric_new(families[which].name, families[which].help, families[which].type,
	                     labels, which == DP_OBS_BATCH_SECONDS ? batch_buckets : NULL,
	                     which == DP_OBS_BATCH_SECONDS ? DP_FSM_COUNT(batch_buckets) : 0);
}

void
dp_obs_count(enum dp_obs_family which, const char *const *labels, const char *const *values,
             double n)
{
	if (atomic_load_explicit(&obs.on, memory_order_relaxed))
		dp_series_add(dp_metric_series(dp_obs_family(which, labels), values), n);
}

bool
dp_obs_on(void)
{
	return atomic_load(&obs.on);
}

const char *
dp_obs_address(void)
{
	return obs.ep ? dp_endpoint_address(obs.ep) : NULL;
}

/* ---- the machines ------------------------------------------------------- */

static const char *const state_labels[] = { "machine", "state", NULL };
static const char *const trans_labels[] = { "machine", "from", "event", "to", NULL };

static struct machine *
machine_of(const struct dp_fsm_def *def)
{
	struct dp_metric *st;
	struct machine *mc;

	for (size_t i = 0; i < obs.nmachines; i++)
		if (obs.machines[i].def == def)
			return &obs.machines[i];
	if (obs.nmachines == MAX_MACHINES)
		return NULL;
	mc = &obs.machines[obs.nmachines];
	if (!(mc->state = calloc(def->nstates, sizeof(*mc->state))) ||
	    !(mc->trans = calloc(def->nstates * def->nevents, sizeof(*mc->trans)))) {
		free(mc->state);
		mc->state = NULL;
		return NULL;
	}
	mc->def = def;
	mc->cur = -1;
	st = dp_metric_new("dp_state", "1 for the state each machine is in, 0 for its others.",
	                   DP_METRIC_GAUGE, state_labels, NULL, 0);
	for (size_t s = 0; s < def->nstates; s++)
		mc->state[s] = dp_metric_series(st, (const char *const[]){ def->name,
		                                                            def->states[s] });
	obs.nmachines++;
	return mc;
}

/* The exit status of state s of def when it is final, else -1. */
static int
final_status(const struct dp_fsm *m)
{
	const struct dp_fsm_def *def = m->def;

	for (size_t i = 0; i < def->nfinal; i++)
		if (def->final[i].state == m->state)
			return def->final[i].status == DP_FSM_REASON ? (m->reason ? m->reason
			                                                          : DP_EX_SOFTWARE)
			                                             : def->final[i].status;
	return -1;
}

/*
 * core/fsm.h's watcher: dp_state and dp_state_transitions_total, and a
 * word to the ticker (STATUS=).  On the stepping thread, per step: the
 * series are found once and kept.
 */
static void
on_step(void *arg, const struct dp_fsm *m, int from, int event)
{
	const struct dp_fsm_def *def = m->def;
	struct machine *mc;
	int st;

	if (!atomic_load_explicit(&obs.on, memory_order_relaxed))
		return;
	pthread_mutex_lock(&obs.mu);
	if (!(mc = machine_of(def)))
		goto out;
	if (mc->cur >= 0)
		dp_series_set(mc->state[mc->cur], 0);
	mc->cur = m->state;
	dp_series_set(mc->state[m->state], 1);
	if (from >= 0 && event >= 0) {
		struct dp_series **t = &mc->trans[(size_t)from * def->nevents + (size_t)event];
		if (!*t)
			*t = dp_metric_series(dp_metric_new("dp_state_transitions_total",
			        "Steps of each machine, by row of its table.", DP_METRIC_COUNTER,
			        trans_labels, NULL, 0),
			        (const char *const[]){ def->name, def->states[from], def->events[event],
			                               def->states[m->state] });
		dp_series_add(*t, 1);
	}
	if ((st = final_status(m)) > 0) {
		char why[128];
		snprintf(why, sizeof(why), "%s ended in %s: %s (exit status %d)", def->name,
		         def->states[m->state], dp_exit_describe(st), st);
		dp_health_fail(why);
	}
	obs.changed = true;
	if (obs.notify)
		pthread_cond_signal(&obs.cv);
out:
	pthread_mutex_unlock(&obs.mu);
}

/* "consuming" (one machine) or "dp-coord serve: serving, ..." (several), under obs.mu. */
static void
states_text(char *buf, size_t n)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < obs.nmachines && len < n; i++) {
		const struct machine *mc = &obs.machines[i];
		if (mc->cur < 0)
			continue;
		len += (size_t)snprintf(buf + len, n - len, obs.nmachines == 1 ? "%s%s" : "%s%s: ",
		                        len ? ", " : "", obs.nmachines == 1 ? mc->def->states[mc->cur]
		                                                            : mc->def->name);
		if (obs.nmachines > 1 && len < n)
			len += (size_t)snprintf(buf + len, n - len, "%s", mc->def->states[mc->cur]);
	}
	if (!buf[0])
		snprintf(buf, n, "starting");
}

/* ---- partitions ---------------------------------------------------------- */

static const char *const part_labels[] = { "topic", "partition", NULL };

/* Its gauges and feed, when it is (again) assigned; under obs.mu. */
static void
part_show(struct dp_obs_part *p)
{
	const char *const v[] = { p->topic, p->partition };
	char feed[512];

	p->lag = dp_metric_series(dp_obs_family(DP_OBS_LAG_RECORDS, part_labels), v);
	p->lag_s = dp_metric_series(dp_obs_family(DP_OBS_LAG_SECONDS, part_labels), v);
	/* No timestamp before a record: 0 would read as a record of 1970. */
	if (atomic_load(&p->ts_ms) > 0)
		dp_series_set(p->ts = dp_metric_series(dp_obs_family(DP_OBS_LAST_TIMESTAMP,
		                                                     part_labels), v),
		              (double)atomic_load(&p->ts_ms) / 1000);
	snprintf(feed, sizeof(feed), "%s/%s", p->topic, p->partition);
	p->feed = dp_health_feed(feed);
	atomic_store(&p->lag_n, -1);
}

struct dp_obs_part *
dp_obs_part_new(const char *topic, int32_t partition)
{
	struct dp_obs_part *p;

	if (!atomic_load(&obs.on) || !(p = calloc(1, sizeof(*p))))
		return NULL;
	if (!(p->topic = strdup(topic))) {
		free(p);
		return NULL;
	}
	snprintf(p->partition, sizeof(p->partition), "%d", (int)partition);
	p->in = dp_metric_series(dp_obs_family(DP_OBS_RECORDS_IN, part_labels),
	                         (const char *const[]){ p->topic, p->partition });
	pthread_mutex_lock(&obs.mu);
	part_show(p);
	p->assigned = true;
	p->next = obs.parts;
	obs.parts = p;
	pthread_mutex_unlock(&obs.mu);
	return p;
}

void
dp_obs_part_read(struct dp_obs_part *p, uint64_t n, int64_t newest_ts_ms)
{
	if (!p || !n)
		return;
	dp_series_add(p->in, (double)n);
	dp_health_data(p->feed);
	if (newest_ts_ms > 0 && newest_ts_ms > atomic_load_explicit(&p->ts_ms, memory_order_relaxed)) {
		atomic_store_explicit(&p->ts_ms, newest_ts_ms, memory_order_relaxed);
		/* Made at the first record (on this thread, as dp_obs_part_assigned). */
		if (!p->ts && p->assigned)
			p->ts = dp_metric_series(dp_obs_family(DP_OBS_LAST_TIMESTAMP, part_labels),
			                         (const char *const[]){ p->topic, p->partition });
		dp_series_set(p->ts, (double)newest_ts_ms / 1000);
	}
}

void
dp_obs_part_lag(struct dp_obs_part *p, int64_t records)
{
	if (!p)
		return;
	atomic_store_explicit(&p->lag_n, records, memory_order_relaxed);
	if (records >= 0)
		dp_series_set(p->lag, (double)records);
}

void
dp_obs_part_assigned(struct dp_obs_part *p, bool assigned)
{
	if (!p)
		return;
	pthread_mutex_lock(&obs.mu);
	if (assigned && !p->assigned) {
		part_show(p);
	} else if (!assigned && p->assigned) {
		dp_series_drop(p->lag);
		dp_series_drop(p->lag_s);
		dp_series_drop(p->ts);
		dp_health_feed_drop(p->feed);
		p->lag = p->lag_s = p->ts = NULL;
	}
	p->assigned = assigned;
	pthread_mutex_unlock(&obs.mu);
}

/* ---- the exposition -------------------------------------------------------- */

/* The gauges that move with the clock, brought up to date. */
static void
collect(void)
{
	int64_t now = dp_time_now_ms();
	char why[256];

	dp_series_set(obs.ready, dp_health_ready(why, sizeof(why)) ? 1 : 0);
	pthread_mutex_lock(&obs.mu);
	for (struct dp_obs_part *p = obs.parts; p; p = p->next) {
		int64_t lag = atomic_load(&p->lag_n), ts = atomic_load(&p->ts_ms);
		if (!p->assigned || lag < 0)
			continue;
		dp_series_set(p->lag_s, lag > 0 && ts > 0 && now > ts ? (double)(now - ts) / 1000 : 0);
	}
	pthread_mutex_unlock(&obs.mu);
}

int
dp_obs_exposition(struct dp_buf *out)
{
	if (!atomic_load(&obs.on))
		return 0;
	collect();
	return dp_metrics_write(out);
}

static int
page_metrics(void *arg, struct dp_buf *body, const char **type)
{
	*type = "text/plain; version=0.0.4; charset=utf-8";
	return dp_obs_exposition(body) < 0 ? 500 : 200;
}

static int
page_healthz(void *arg, struct dp_buf *body, const char **type)
{
	char why[256];
	bool live = dp_health_live(why, sizeof(why));

	dp_buf_msgf(body, "%s\n", live ? "ok" : why);
	return live ? 200 : 503;
}

static int
page_readyz(void *arg, struct dp_buf *body, const char **type)
{
	char why[256];
	bool ready = dp_health_ready(why, sizeof(why));

	dp_buf_msgf(body, "%s\n", ready ? "ready" : why);
	return ready ? 200 : 503;
}

static const struct dp_endpoint_page pages[] = {
	{ "/metrics", page_metrics, NULL },
	{ "/healthz", page_healthz, NULL },
	{ "/readyz", page_readyz, NULL },
};

/* ---- the file ------------------------------------------------------------------ */

/* Write --metrics-file now.  0, or -1 with why in err. */
static int
write_file(struct dp_buf *err)
{
	struct dp_buf text = DP_BUF_INIT;
	int rc;

	if (dp_obs_exposition(&text) < 0) {
		dp_buf_msgf(err, "out of memory");
		dp_buf_free(&text);
		return -1;
	}
	rc = dp_file_replace(obs.o.file, "metrics file", text.data ? text.data : "", text.len, err);
	dp_buf_free(&text);
	return rc;
}

/* A periodic write that failed is said once, until one succeeds again. */
static void
write_file_tick(void)
{
	struct dp_buf err = DP_BUF_INIT;

	if (write_file(&err) < 0) {
		if (!obs.file_failed_ms)
			dp_warn("%s (trying again every %s)", dp_buf_str(&err),
			        dp_duration_format(obs.o.interval_ms, (char[48]){ 0 }));
		obs.file_failed_ms = dp_time_mono_ms();
	} else if (obs.file_failed_ms) {
		dp_info("metrics file %s written again", obs.o.file);
		obs.file_failed_ms = 0;
	}
	dp_buf_free(&err);
}

/* ---- systemd ---------------------------------------------------------------- */

/* A value for a notify field: newlines become spaces. */
static void
flatten(char *s)
{
	for (; *s; s++)
		if (*s == '\n')
			*s = ' ';
}

/* Tell systemd what there is to tell: READY=1 once, STATUS= when it changed, WATCHDOG=1. */
static void
notify_tick(bool watchdog)
{
	char why[256], states[256], status[600], msg[700];
	bool ready = dp_health_ready(why, sizeof(why));

	pthread_mutex_lock(&obs.mu);
	states_text(states, sizeof(states));
	obs.changed = false;
	pthread_mutex_unlock(&obs.mu);
	snprintf(status, sizeof(status), ready ? "%s; ready" : "%s; not ready: %s", states, why);
	flatten(status);
	msg[0] = '\0';
	if (ready && !obs.said_ready) {
		obs.said_ready = true;
		strcat(msg, "READY=1\n");
	}
	if (strcmp(status, obs.last_status) != 0) {
		snprintf(obs.last_status, sizeof(obs.last_status), "%s", status);
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "STATUS=%s\n", status);
	}
	if (watchdog && ready)
		strcat(msg, "WATCHDOG=1\n");
	if (msg[0])
		msg[strlen(msg) - 1] = '\0';   /* the last newline */
	if (msg[0] && dp_notify_send(msg) < 0 && !obs.said_notify_error) {
		obs.said_notify_error = true;
		dp_warn("cannot notify systemd: %s", strerror(errno));
	}
}

/* ---- the ticker ------------------------------------------------------------------ */

static int64_t
min_pos(int64_t a, int64_t b)
{
	return a <= 0 ? b : b <= 0 ? a : a < b ? a : b;
}

static void
wait_until_mono(int64_t at_ms)
{
	struct timespec ts;
	int64_t left = at_ms - dp_time_mono_ms();

	if (left <= 0)
		return;
	/* The condition variable waits on the monotonic clock (dp_obs_start). */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += left / 1000;
	ts.tv_nsec += (left % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&obs.cv, &obs.mu, &ts);
}

static void *
ticker(void *arg)
{
	int64_t now = dp_time_mono_ms();
	int64_t next_file = obs.o.file ? now + obs.o.interval_ms : 0;
	int64_t next_look = obs.notify ? now : 0;
	int64_t next_dog = obs.watchdog_ms ? now : 0;

	pthread_mutex_lock(&obs.mu);
	while (!obs.stop) {
		bool changed = obs.changed;
		now = dp_time_mono_ms();
		pthread_mutex_unlock(&obs.mu);
		if (next_file && now >= next_file) {
			write_file_tick();
			next_file = now + obs.o.interval_ms;
		}
		bool dog = next_dog && now >= next_dog;
		/* WatchdogSec= may be shorter than a look: the watchdog wakes it too. */
		if (obs.notify && (changed || dog || now >= next_look)) {
			notify_tick(dog);
			next_look = now + NOTIFY_LOOK_MS;
			if (dog)
				next_dog = now + obs.watchdog_ms / 2;
		}
		pthread_mutex_lock(&obs.mu);
		if (!obs.stop && !obs.changed)
			wait_until_mono(min_pos(min_pos(next_file, next_look), next_dog));
	}
	pthread_mutex_unlock(&obs.mu);
	return NULL;
}

/* ---- start and end ---------------------------------------------------------------- */

int
dp_obs_validate(struct dp_obs_opts *o)
{
	struct dp_buf err = DP_BUF_INIT;
	const char *env = getenv("DP_METRICS");
	bool from_env = false;

	if (!o->listen && env && *env) {
		o->listen = env;
		from_env = true;
	}
	if (o->listen && dp_endpoint_check(o->listen, &err) < 0) {
		dp_err("invalid %s '%s': %s", from_env ? "$DP_METRICS" : "--metrics", o->listen,
		       dp_buf_str(&err));
		dp_buf_free(&err);
		return -1;
	}
	if (o->interval_ms && !o->file) {
		dp_err("--metrics-interval says how often --metrics-file is written: "
		       "give --metrics-file too");
		return -1;
	}
	if (!o->interval_ms)
		o->interval_ms = DP_OBS_INTERVAL_DEFAULT_MS;
	return 0;
}

/* The frame's end of the run (core/frame.h's dp_cmd_at_end). */
static void
at_end(int status)
{
	dp_obs_exit(status);
	dp_obs_end();
}

int
dp_obs_start(const struct dp_obs_opts *o, const char *command, const char *links)
{
	static bool watching;
	struct dp_buf err = DP_BUF_INIT;
	int st = 0;

	if (atomic_load(&obs.on) || (!o->listen && !o->file && !dp_notify_on() && !o->read_elsewhere))
		return 0;
	obs.o = *o;
	if (!obs.o.interval_ms)
		obs.o.interval_ms = DP_OBS_INTERVAL_DEFAULT_MS;
	obs.command = command;
	obs.notify = dp_notify_on();
	obs.watchdog_ms = dp_notify_watchdog_ms();
	obs.stop = obs.changed = obs.said_ready = obs.said_notify_error = false;
	obs.file_failed_ms = 0;
	obs.last_status[0] = '\0';
	obs.exit_status = -1;
	if (dp_metrics_init(command) < 0 || dp_health_init(o->stale_after_ms) < 0) {
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	/* health keeps the names it is given: ours, until dp_obs_end */
	snprintf(obs.links, sizeof(obs.links), "%s", links ? links : "");
	for (char *l = strtok(obs.links, " "); l; l = strtok(NULL, " "))
		dp_health_link(l, false);
	atomic_store(&obs.on, true);

	dp_series_set(dp_metric_series(dp_metric_new("dp_build_info",
	        "1, with the version of dp in a label.", DP_METRIC_GAUGE,
	        (const char *const[]){ "version", NULL }, NULL, 0),
	        (const char *const[]){ DP_VERSION }), 1);
	dp_series_set(dp_metric_one(dp_metric_new("process_start_time_seconds",
	        "When the process started (seconds since the epoch).", DP_METRIC_GAUGE,
	        no_labels, NULL, 0)), (double)dp_time_now_ms() / 1000);
	obs.ready = dp_metric_one(dp_metric_new("dp_ready",
	        "1 when the command is ready (as GET /readyz answers 200), else 0.",
	        DP_METRIC_GAUGE, no_labels, NULL, 0));
	if (!watching && dp_fsm_watch(on_step, NULL) == 0)
		watching = true;
	/* Registered once per function: a second start (a test's) is no
	 * second call; after dp_obs_end the call does nothing. */
	if (dp_cmd_at_end(at_end) < 0) {
		dp_err("too many watchers of the run's end");
		return DP_EX_SOFTWARE;
	}

	if (obs.o.file && write_file(&err) < 0) {
		dp_err("%s", dp_buf_str(&err));
		st = DP_EX_IOERR;
		goto fail;
	}
	if (obs.o.listen) {
		if (!(obs.ep = dp_endpoint_start(obs.o.listen, pages, DP_FSM_COUNT(pages), &err, &st))) {
			dp_err("%s", dp_buf_str(&err));
			goto fail;
		}
		dp_info("metrics on http://%s/metrics", dp_endpoint_address(obs.ep));
	}
	if (obs.o.file || obs.notify) {
		pthread_condattr_t ca;
		sigset_t block, old;
		if (pthread_condattr_init(&ca) != 0 ||
		    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
		    pthread_cond_init(&obs.cv, &ca) != 0) {
			dp_err("cannot start the metrics thread");
			st = DP_EX_SOFTWARE;
			goto fail;
		}
		pthread_condattr_destroy(&ca);
		sigemptyset(&block);
		sigaddset(&block, SIGINT);
		sigaddset(&block, SIGTERM);
		sigaddset(&block, SIGALRM);
		pthread_sigmask(SIG_BLOCK, &block, &old);
		obs.ticking = pthread_create(&obs.ticker, NULL, ticker, NULL) == 0;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (!obs.ticking) {
			pthread_cond_destroy(&obs.cv);
			dp_err("cannot start the metrics thread");
			st = DP_EX_SOFTWARE;
			goto fail;
		}
	}
	dp_buf_free(&err);
	return 0;
fail:
	dp_buf_free(&err);
	obs.o.file = NULL;      /* nothing was written for this run: leave what is there */
	obs.notify = false;
	dp_obs_end();
	return st;
}

void
dp_obs_exit(int status)
{
	obs.exit_status = status;
}

void
dp_obs_end(void)
{
	struct dp_buf err = DP_BUF_INIT;
	int status = obs.exit_status;

	if (!atomic_load(&obs.on))
		return;
	if (obs.ticking) {
		pthread_mutex_lock(&obs.mu);
		obs.stop = true;
		pthread_cond_signal(&obs.cv);
		pthread_mutex_unlock(&obs.mu);
		pthread_join(obs.ticker, NULL);
		pthread_cond_destroy(&obs.cv);
		obs.ticking = false;
	}
	if (status >= 0)
		dp_series_set(dp_metric_one(dp_metric_new("dp_exit_status",
		        "The exit status of the run (sysexits; see EXIT STATUS in the man page).",
		        DP_METRIC_GAUGE, no_labels, NULL, 0)), status);
	if (obs.o.file && write_file(&err) < 0)
		dp_warn("%s", dp_buf_str(&err));
	if (obs.notify) {
		char states[256], msg[400];
		pthread_mutex_lock(&obs.mu);
		states_text(states, sizeof(states));
		pthread_mutex_unlock(&obs.mu);
		snprintf(msg, sizeof(msg), status >= 0 ? "STOPPING=1\nSTATUS=%s; stopping (exit status %d)"
		                                       : "STOPPING=1\nSTATUS=%s; stopping", states, status);
		flatten(msg + strlen("STOPPING=1\n"));
		(void)dp_notify_send(msg);
	}
	dp_endpoint_stop(obs.ep);
	obs.ep = NULL;

	atomic_store(&obs.on, false);
	pthread_mutex_lock(&obs.mu);
	for (size_t i = 0; i < obs.nmachines; i++) {
		free(obs.machines[i].state);
		free(obs.machines[i].trans);
	}
	obs.nmachines = 0;
	for (struct dp_obs_part *p = obs.parts, *n; p; p = n) {
		n = p->next;
		free(p->topic);
		free(p);
	}
	obs.parts = NULL;
	pthread_mutex_unlock(&obs.mu);
	dp_health_free();
	dp_metrics_free();
	dp_buf_free(&err);
}
