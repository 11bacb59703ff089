/*
 * status/status.c -- the process's status on a compacted topic (status/status.h):
 * the machines' watcher, the record, and the publisher's thread.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/exit.h"
#include "core/frame.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/timefmt.h"
#include "json/write.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "kafka/producer.h"
#include "obs/health.h"
#include "obs/metrics.h"
#include "status/status.h"

/* One machine the process runs, as the watcher last saw it. */
struct slot {
	_Atomic(const struct dp_fsm *) m;
	_Atomic(const struct dp_fsm_def *) def;
	atomic_int state;
	atomic_llong since_ms;          /* wall clock: when it entered state */
};

/* The metrics a status carries, summed over their labels (NaN: not counted). */
struct counts {
	double in, out, bad, dead, lag, lag_s;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_bool on;                 /* watching and publishing */
	atomic_bool dirty;              /* a machine moved since the last record */
	bool stop;                      /* under mu: dp_status_stop asked */
	bool started_thread;
	int exit_status;                /* under mu, with stop */
	pthread_t thread;

	/* what every record says, fixed at start */
	const char *command;
	const struct dp_kafka_opts *kafka;
	char *topic;
	char *instance;
	char *key;
	char host[256];
	long pid;
	int64_t started_ms;
	int64_t interval_ms;

	struct slot slots[DP_STATUS_MACHINES];
	atomic_size_t nslots;

	/* the thread's own */
	struct dp_producer *prod;
	bool told;                      /* a failure was said once */
	atomic_ullong lost;             /* records not delivered */
	struct counts prev;
	int64_t prev_mono;
} S = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* ---- options ------------------------------------------------------------ */

int
dp_status_check(struct dp_status_opts *o, struct dp_buf *err)
{
	const char *from = "--status-topic";

	if (!o->topic) {
		const char *env = getenv("DP_STATUS_TOPIC");
		if (env && *env) {
			o->topic = env;
			from = "$DP_STATUS_TOPIC";
		}
	}
	if (o->topic) {
		struct dp_buf why = DP_BUF_INIT;
		if (dp_admin_check_name(o->topic, &why) != 0) {
			dp_buf_msgf(err, "invalid %s '%s': %s", from, o->topic, dp_buf_str(&why));
			dp_buf_free(&why);
			return -1;
		}
		dp_buf_free(&why);
	}
	if (o->instance) {
		for (const unsigned char *p = (const unsigned char *)o->instance; *p; p++)
			if (*p < 0x20 || *p == 0x7f || *p == '/') {
				dp_buf_msgf(err, "invalid --instance '%s': no '/' or control "
				            "characters (it is half of the status record's key)",
				            o->instance);
				return -1;
			}
		if (strlen(o->instance) > 200) {
			dp_buf_msgf(err, "invalid --instance: longer than 200 bytes");
			return -1;
		}
	}
	if (o->interval_ms && o->interval_ms < DP_STATUS_INTERVAL_MIN_MS) {
		dp_buf_msgf(err, "invalid --status-interval: at least 100ms");
		return -1;
	}
	if ((o->instance || o->interval_ms) && !o->topic) {
		dp_buf_msgf(err, "%s needs --status-topic (or $DP_STATUS_TOPIC)",
		            o->instance ? "--instance" : "--status-interval");
		return -1;
	}
	return 0;
}

int
dp_status_validate(struct dp_status_opts *o)
{
	struct dp_buf err = DP_BUF_INIT;
	int rc = dp_status_check(o, &err);

	if (rc < 0)
		dp_err("%s", dp_buf_str(&err));
	dp_buf_free(&err);
	return rc;
}

bool
dp_status_wanted(const struct dp_status_opts *o)
{
	return o && o->topic && *o->topic;
}

/* ---- the watcher -------------------------------------------------------- */

static void
wake(void)
{
	if (!atomic_exchange(&S.dirty, true)) {
		pthread_mutex_lock(&S.mu);
		pthread_cond_signal(&S.cv);
		pthread_mutex_unlock(&S.mu);
	}
}

/* m's slot, added when new and there is room (NULL otherwise). */
static struct slot *
slot_of(const struct dp_fsm *m)
{
	size_t n = atomic_load(&S.nslots);
	struct slot *s = NULL;

	for (size_t i = 0; i < n; i++)
		if (atomic_load(&S.slots[i].m) == m)
			return &S.slots[i];
	pthread_mutex_lock(&S.mu);
	n = atomic_load(&S.nslots);
	for (size_t i = 0; i < n && !s; i++)
		if (atomic_load(&S.slots[i].m) == m)
			s = &S.slots[i];
	if (!s && n < DP_STATUS_MACHINES) {
		s = &S.slots[n];
		atomic_store(&s->def, m->def);
		atomic_store(&s->state, m->state);
		atomic_store(&s->since_ms, dp_time_now_ms());
		atomic_store(&s->m, m);
		atomic_store(&S.nslots, n + 1);
	}
	pthread_mutex_unlock(&S.mu);
	return s;
}

/* core/fsm.h's watcher: a machine started (from < 0) or moved. */
static void
watch(void *arg, const struct dp_fsm *m, int from, int event)
{
	struct slot *s;

	if (!atomic_load_explicit(&S.on, memory_order_relaxed) || !(s = slot_of(m)))
		return;
	if (from < 0 || atomic_load(&s->def) != m->def) {
		atomic_store(&s->def, m->def);
	} else if (atomic_load(&s->state) == m->state) {
		return;                 /* a row that keeps the state: no news */
	}
	atomic_store(&s->since_ms, dp_time_now_ms());
	atomic_store(&s->state, m->state);
	wake();
}

/* ---- the record ---------------------------------------------------------- */

/*
 * Every series of family name in the text exposition: their sum and the
 * largest, or NaN for both when there is none.  The exposition is the
 * registry's one reader-facing form (obs/metrics.h), so the status says
 * what a scrape would.
 */
static void
metric(const char *text, const char *name, double *sum, double *max)
{
	size_t n = strlen(name);
	bool seen = false;

	*sum = *max = NAN;
	for (const char *p = text; *p;) {
		const char *eol = strchr(p, '\n');
		const char *end = eol ? eol : p + strlen(p), *sp = end;
		if (strncmp(p, name, n) == 0 && (p[n] == '{' || p[n] == ' ')) {
			while (sp > p && sp[-1] != ' ')
				sp--;
			char *stop;
			double v = strtod(sp, &stop);
			if (stop != sp) {
				*sum = seen ? *sum + v : v;
				*max = seen && *max >= v ? *max : v;
				seen = true;
			}
		}
		p = eol ? eol + 1 : end;
	}
}

static void
counts_now(struct counts *c)
{
	struct dp_buf text = DP_BUF_INIT;
	double unused;

	*c = (struct counts){ NAN, NAN, NAN, NAN, NAN, NAN };
	if (!dp_metrics_on() || dp_metrics_write(&text) < 0) {
		dp_buf_free(&text);
		return;
	}
	const char *t = dp_buf_str(&text);
	metric(t, "dp_records_in_total", &c->in, &unused);
	metric(t, "dp_records_out_total", &c->out, &unused);
	metric(t, "dp_records_bad_total", &c->bad, &unused);
	metric(t, "dp_dead_letters_total", &c->dead, &unused);
	metric(t, "dp_consumer_lag_records", &c->lag, &unused);
	metric(t, "dp_consumer_lag_seconds", &unused, &c->lag_s);
	dp_buf_free(&text);
}

/* A count, or null when it is not counted. */
static void
kcount(struct dp_jw *w, const char *k, double v)
{
	if (isnan(v))
		dp_jw_knull(w, k);
	else
		dp_jw_kint(w, k, (int64_t)v);
}

static void
ktime(struct dp_jw *w, const char *k, int64_t ms)
{
	char t[DP_TIME_BUFSZ];

	dp_jw_kstr(w, k, dp_time_format(ms, t));
}

/* Per second from a to b over ms; null when either is unknown. */
static void
krate(struct dp_jw *w, const char *k, double a, double b, int64_t ms)
{
	if (isnan(a) || isnan(b) || ms <= 0)
		dp_jw_knull(w, k);
	else
		dp_jw_kdouble(w, k, (double)(int64_t)((b - a) * 1000.0 / (double)ms * 10.0) / 10.0);
}

/*
 * The value of a record now; rates against prev (NULL: none).  final:
 * exit_status is the run's.
 */
static int
build(struct dp_buf *out, const struct counts *now, const struct counts *prev, int64_t dt_ms,
      bool final, int exit_status)
{
	struct dp_jw w;
	char why[256];
	size_t n = atomic_load(&S.nslots);
	bool ready, live;
	int64_t age = dp_health_data_age_ms();

	dp_jw_init(&w, out);
	dp_jw_obj(&w);
	dp_jw_kstr(&w, "command", S.command);
	dp_jw_kstr(&w, "instance", S.instance);
	dp_jw_kstr(&w, "host", S.host);
	dp_jw_kint(&w, "pid", S.pid);
	ktime(&w, "started", S.started_ms);
	ktime(&w, "time", dp_time_now_ms());
	dp_jw_kint(&w, "interval_ms", S.interval_ms);
	dp_jw_key(&w, "machines");
	dp_jw_arr(&w);
	for (size_t i = 0; i < n; i++) {
		const struct dp_fsm_def *def = atomic_load(&S.slots[i].def);
		int st = atomic_load(&S.slots[i].state);
		dp_jw_obj(&w);
		dp_jw_kstr(&w, "machine", def->name);
		dp_jw_kstr(&w, "state", st >= 0 && (size_t)st < def->nstates ? def->states[st]
		                                                             : "?");
		ktime(&w, "since", atomic_load(&S.slots[i].since_ms));
		dp_jw_end(&w);
	}
	dp_jw_end(&w);
	kcount(&w, "records_in", now->in);
	kcount(&w, "records_out", now->out);
	kcount(&w, "records_bad", now->bad);
	kcount(&w, "dead_letters", now->dead);
	krate(&w, "in_per_s", prev ? prev->in : NAN, now->in, dt_ms);
	krate(&w, "out_per_s", prev ? prev->out : NAN, now->out, dt_ms);
	kcount(&w, "lag_records", now->lag);
	if (isnan(now->lag_s))
		dp_jw_knull(&w, "lag_seconds");
	else
		dp_jw_kdouble(&w, "lag_seconds", now->lag_s);
	dp_jw_kcount(&w, "data_age_ms", age);
	live = dp_health_live(why, sizeof(why));
	ready = live && dp_health_ready(why, sizeof(why));
	if (final) {
		ready = false;
		snprintf(why, sizeof(why), "stopped");
	}
	dp_jw_kbool(&w, "ready", ready);
	dp_jw_kbool(&w, "live", live && !final);
	if (ready)
		dp_jw_knull(&w, "reason");
	else
		dp_jw_kstr(&w, "reason", why);
	dp_jw_kbool(&w, "final", final);
	if (final)
		dp_jw_kint(&w, "exit", exit_status);
	else
		dp_jw_knull(&w, "exit");
	dp_jw_end(&w);
	return dp_jw_finish(&w);
}

int
dp_status_record(struct dp_buf *key, struct dp_buf *value)
{
	struct counts now;

	if (!atomic_load(&S.on))
		return -1;
	counts_now(&now);
	if (dp_buf_addstr(key, S.key) < 0)
		return -1;
	return build(value, &now, NULL, 0, false, 0);
}

/* ---- the publisher's thread --------------------------------------------- */

/* Said once per process: the command's own messages matter more. */
static void
tell(const char *what, const struct dp_buf *err)
{
	char d[48];

	if (S.told)
		return;
	S.told = true;
	dp_warn("status: %s '%s': %s (the run goes on; trying again every %s)", what, S.topic,
	        dp_buf_str(err), dp_duration_format(S.interval_ms, d));
}

static void
on_report(void *arg, const struct dp_producer_report *r)
{
	if (r->err)
		atomic_fetch_add(&S.lost, 1);
}

/* The topic exists, or is made compacted; then the producer.  0 or -1 (said). */
static int
setup(void)
{
	struct dp_buf err = DP_BUF_INIT;
	int st, tmo = (int)(S.kafka->timeout_ms < INT_MAX ? S.kafka->timeout_ms : INT_MAX);
	static const struct dp_kv defaults[] = { { "linger.ms", "5" } };
	/* Looking at a topic must not make it (a broker's auto.create.topics.enable):
	 * it is made here, compacted. */
	static const struct dp_kv look[] = { { "allow.auto.create.topics", "false" } };
	rd_kafka_t *rk = dp_kafka_new(S.kafka, RD_KAFKA_PRODUCER, look, 1, NULL, NULL, &err, &st);

	if (!rk)
		goto fail;
	st = dp_kafka_probe(rk, S.topic, tmo, NULL, &err);
	if (st == DP_EX_NOTFOUND) {
		struct dp_kv compact = { "cleanup.policy", "compact" };
		struct dp_admin_spec spec = { S.topic, 1, -1, &compact, 1 };
		struct dp_admin_result res = { 0 };

		dp_buf_reset(&err);
		st = dp_admin_create(rk, &spec, 1, false, tmo, &res);
		if (!st && res.status && res.status != DP_EX_EXISTS) {
			dp_buf_msgf(&err, "cannot create it: %s", res.error ? res.error : "failed");
			st = res.status;
		} else if (!st && !res.status) {
			dp_info("status: created topic '%s' (compacted)", S.topic);
		} else if (st) {
			dp_buf_msgf(&err, "cannot create it: %s", res.error ? res.error : "failed");
		}
		dp_admin_result_clear(&res);
		if (!st)
			st = dp_kafka_await_topic(rk, S.topic, tmo, NULL, &err);
	}
	rd_kafka_destroy(rk);
	if (st)
		goto fail;
	const struct dp_producer_conf conf = {
		.kafka = S.kafka, .topic = S.topic, .defaults = defaults, .ndefaults = 1,
		.report = on_report,
	};
	if (!(S.prod = dp_producer_new(&conf, &err, &st)))
		goto fail;
	if ((st = dp_producer_connect(S.prod, NULL, 0, &err)) != 0) {
		dp_producer_free(S.prod);
		S.prod = NULL;
		goto fail;
	}
	dp_buf_free(&err);
	return 0;
fail:
	if (st != DP_KAFKA_STOPPED)
		tell("cannot publish to", &err);
	dp_buf_free(&err);
	return -1;
}

/* Send one record: the status now (final: the last one). */
static void
publish(bool final, int exit_status)
{
	struct dp_buf v = DP_BUF_INIT, err = DP_BUF_INIT;
	struct counts now;
	int64_t mono = dp_time_mono_ms();
	size_t failed;

	counts_now(&now);
	if (build(&v, &now, S.prev_mono && !final ? &S.prev : NULL, mono - S.prev_mono, final,
	          exit_status) < 0) {
		dp_buf_msgf(&err, "out of memory");
		tell("cannot make a status for", &err);
	} else {
		const struct dp_producer_rec rec = {
			.partition = DP_PRODUCER_ANY, .key = S.key, .key_len = strlen(S.key),
			.value = v.data, .value_len = v.len,
		};
		if (dp_producer_send(S.prod, &rec, 1, &failed, &err) != 0)
			tell("cannot publish to", &err);
		dp_producer_poll(S.prod, 0);
	}
	/* Rates over a second at least: a record soon after another (a change
	 * of state) would count a burst as a rate. */
	if (!S.prev_mono || mono - S.prev_mono >= 1000) {
		S.prev = now;
		S.prev_mono = mono;
	}
	dp_buf_free(&v);
	dp_buf_free(&err);
}

static struct timespec
abs_mono(int64_t mono_ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(mono_ms / 1000);
	ts.tv_nsec = (long)(mono_ms % 1000) * 1000000L;
	return ts;
}

/*
 * Until stopped: a record every interval, and soon after a machine
 * moved (at most one per MIN_GAP, so a machine that moves per record
 * costs the broker nothing more); then the last one.
 */
#define MIN_GAP_MS 200

static void *
run(void *arg)
{
	int64_t due = dp_time_mono_ms(), earliest = due;
	bool stop = false;
	int exit_status = 0;

	for (;;) {
		pthread_mutex_lock(&S.mu);
		for (;;) {
			int64_t now = dp_time_mono_ms();
			bool dirty = atomic_load(&S.dirty);
			if (S.stop || now >= due || (dirty && now >= earliest))
				break;
			struct timespec ts = abs_mono(dirty ? earliest : due);
			pthread_cond_timedwait(&S.cv, &S.mu, &ts);
		}
		stop = S.stop;
		exit_status = S.exit_status;
		pthread_mutex_unlock(&S.mu);
		if (stop)
			break;
		int64_t now = dp_time_mono_ms();
		atomic_store(&S.dirty, false);
		due = now + S.interval_ms;
		earliest = now + MIN_GAP_MS;
		if (!S.prod && setup() < 0)
			continue;
		publish(false, 0);
	}
	/* A run shorter than the thread's start still leaves its last status. */
	if (!S.prod && !S.told)
		setup();
	if (S.prod) {
		atomic_store(&S.dirty, false);
		publish(true, exit_status);
		if (dp_producer_drain(S.prod, S.kafka->timeout_ms) != 0 ||
		    atomic_load(&S.lost)) {
			struct dp_buf err = DP_BUF_INIT;
			dp_buf_msgf(&err, "not acknowledged");
			S.told = false;
			tell("the last status was not delivered to", &err);
			dp_buf_free(&err);
		}
		dp_producer_free(S.prod);
		S.prod = NULL;
	}
	return NULL;
}

int
dp_status_start(const struct dp_status_opts *o, const struct dp_kafka_opts *kafka,
                const struct dp_fsm *main)
{
	static bool watching;
	const char *command = dp_log_progname();
	pthread_condattr_t ca;
	int e;

	if (!dp_status_wanted(o) || atomic_load(&S.on))
		return 0;
	if (!dp_metrics_on() && dp_metrics_init(command) < 0)
		goto oom;
	S.command = command;
	S.kafka = kafka;
	S.pid = (long)getpid();
	if (gethostname(S.host, sizeof(S.host)) < 0 || !S.host[0])
		snprintf(S.host, sizeof(S.host), "localhost");
	S.host[sizeof(S.host) - 1] = '\0';
	S.interval_ms = o->interval_ms ? o->interval_ms : DP_STATUS_INTERVAL_DEFAULT_MS;
	S.started_ms = dp_time_now_ms();
	free(S.topic);
	free(S.instance);
	free(S.key);
	S.key = NULL;
	S.topic = strdup(o->topic);
	if (o->instance)
		S.instance = strdup(o->instance);
	else if ((S.instance = malloc(strlen(S.host) + 24)))
		sprintf(S.instance, "%s:%ld", S.host, S.pid);
	if (!S.topic || !S.instance ||
	    !(S.key = malloc(strlen(command) + strlen(S.instance) + 2)))
		goto oom;
	sprintf(S.key, "%s/%s", command, S.instance);

	if (!watching) {
		if (dp_fsm_watch(watch, NULL) < 0 || dp_cmd_at_end(dp_status_stop) < 0) {
			dp_warn("status: not published: the state machines' watchers or the "
			        "run's end hooks are all taken");
			return -1;
		}
		watching = true;
	}
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&S.cv, &ca);
	pthread_condattr_destroy(&ca);
	S.stop = false;
	S.told = false;
	S.prev_mono = 0;
	atomic_store(&S.nslots, 0);
	atomic_store(&S.on, true);
	if (main)
		slot_of(main);
	if ((e = pthread_create(&S.thread, NULL, run, NULL)) != 0) {
		dp_warn("status: not published: cannot start its thread: %s", strerror(e));
		atomic_store(&S.on, false);
		pthread_cond_destroy(&S.cv);
		return -1;
	}
	S.started_thread = true;
	return 0;
oom:
	dp_warn("status: not published: out of memory");
	return -1;
}

void
dp_status_stop(int exit_status)
{
	if (!atomic_load(&S.on))
		return;
	pthread_mutex_lock(&S.mu);
	S.stop = true;
	S.exit_status = exit_status;
	pthread_cond_signal(&S.cv);
	pthread_mutex_unlock(&S.mu);
	if (S.started_thread)
		pthread_join(S.thread, NULL);
	S.started_thread = false;
	atomic_store(&S.on, false);
	pthread_cond_destroy(&S.cv);
	free(S.topic);
	free(S.instance);
	free(S.key);
	S.topic = S.instance = S.key = NULL;
}
