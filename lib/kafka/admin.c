/*
 * kafka/admin.c -- topic administration through librdkafka's Admin API
 * (kafka/admin.h): names and errors, topic specs, metadata, and every
 * Admin API call made through one request helper, request().
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "core/exit.h"
#include "core/parse.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "json/scan.h"
#include "kafka/admin.h"
#include "kafka/client.h"

/*
 * librdkafka enforces the request timeout itself and then emits a result
 * with __TIMED_OUT; the extra wait only guards against a lost event.
 */
#define AWAIT_MARGIN_MS 5000

/* ---- names and errors ----------------------------------------------- */

int
dp_admin_check_name(const char *name, struct dp_buf *why)
{
	size_t n = strlen(name);

	if (n == 0) {
		if (why)
			dp_buf_msgf(why, "topic name is empty");
		return DP_EX_INVALID;
	}
	if (n > DP_ADMIN_NAME_MAX) {
		if (why)
			dp_buf_msgf(why, "topic name is %zu characters long; the limit is %d",
			            n, DP_ADMIN_NAME_MAX);
		return DP_EX_INVALID;
	}
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		if (why)
			dp_buf_msgf(why, "'%s' cannot be a topic name", name);
		return DP_EX_INVALID;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')
			continue;
		if (why) {
			if (c >= 0x21 && c < 0x7f)
				dp_buf_msgf(why, "topic name contains '%c'; only letters, digits, "
				            "'.', '_' and '-' are allowed", c);
			else
				dp_buf_msgf(why, "topic name contains byte 0x%02x; only letters, "
				            "digits, '.', '_' and '-' are allowed", c);
		}
		return DP_EX_INVALID;
	}
	return 0;
}

int
dp_admin_is_internal(const char *name)
{
	/*
	 * Kafka's own (__consumer_offsets, __transaction_state) and, by the
	 * same convention, tools' bookkeeping such as the test stack's
	 * __dp_stack_probe.  Metadata as librdkafka 2.0 parses it does not
	 * carry Kafka's flag, so the name decides.
	 */
	return strncmp(name, "__", 2) == 0;
}

int
dp_admin_status(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
		return DP_EX_NOTFOUND;
	case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
	case RD_KAFKA_RESP_ERR_INVALID_REPLICA_ASSIGNMENT:
		return DP_EX_INVALID;
	case RD_KAFKA_RESP_ERR_TOPIC_DELETION_DISABLED:
		return DP_EX_NOPERM;
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
		return DP_EX_UNAVAILABLE;
	default:
		return dp_kafka_exit_status(err);
	}
}

void
dp_admin_result_clear(struct dp_admin_result *r)
{
	if (!r)
		return;
	free(r->name);
	free(r->error);
	memset(r, 0, sizeof(*r));
}

void
dp_admin_results_free(struct dp_admin_result *r, size_t n)
{
	if (!r)
		return;
	for (size_t i = 0; i < n; i++)
		dp_admin_result_clear(&r[i]);
	free(r);
}

void
dp_admin_result_fail(struct dp_admin_result *r, int status, rd_kafka_resp_err_t err,
                     const char *fmt, ...)
{
	struct dp_buf b = DP_BUF_INIT;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n >= 0 && dp_buf_grow(&b, (size_t)n) == 0) {
		va_start(ap, fmt);
		vsnprintf(b.data, (size_t)n + 1, fmt, ap);
		va_end(ap);
		b.len = (size_t)n;
	}
	char *msg = b.data ? b.data : strdup("out of memory");
	if (msg) {              /* else the message it had, if any, stays */
		free(r->error);
		r->error = msg;
	}
	r->status = status ? status : DP_EX_SOFTWARE;
	r->err = err;
}

/*
 * The reason to show for a per-topic Kafka error.  The broker's own text
 * is the most specific ("only 1 broker(s) are registered") when it sent
 * one; for the common cases a fixed sentence reads better.
 */
static void
fail_kafka(struct dp_admin_result *r, rd_kafka_resp_err_t err, const char *broker_msg)
{
	int st = dp_admin_status(err);

	switch (err) {
	case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
		dp_admin_result_fail(r, st, err, "topic already exists");
		return;
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
		dp_admin_result_fail(r, st, err, "topic does not exist");
		return;
	default:
		break;
	}
	if (broker_msg && *broker_msg)
		dp_admin_result_fail(r, st, err, "%s (%s)", broker_msg, rd_kafka_err2name(err));
	else
		dp_admin_result_fail(r, st, err, "%s", rd_kafka_err2str(err));
}

/* ---- one request ---------------------------------------------------- */

static rd_kafka_AdminOptions_t *
options(rd_kafka_t *rk, rd_kafka_admin_op_t op, int timeout_ms, bool op_timeout,
        bool validate_only, struct dp_buf *err)
{
	rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
	char errstr[256];

	if (!o) {
		dp_buf_msgf(err, "cannot create admin options");
		return NULL;
	}
	/* librdkafka takes at most an hour; a longer --timeout means that. */
	if (timeout_ms > 3600000)
		timeout_ms = 3600000;
	if (rd_kafka_AdminOptions_set_request_timeout(o, timeout_ms, errstr, sizeof(errstr)))
		goto fail;
	/*
	 * The broker waits this long for the change to reach every broker, so
	 * that a topic is usable when the command returns.  It must stay
	 * below the request timeout or the client gives up first.
	 */
	if (op_timeout && rd_kafka_AdminOptions_set_operation_timeout(
	                      o, timeout_ms > 4 ? (int)((int64_t)timeout_ms * 3 / 4) : 1, errstr,
	                      sizeof(errstr)))
		goto fail;
	if (validate_only &&
	    rd_kafka_AdminOptions_set_validate_only(o, 1, errstr, sizeof(errstr)))
		goto fail;
	return o;
fail:
	dp_buf_msgf(err, "cannot set admin options: %s", errstr);
	rd_kafka_AdminOptions_destroy(o);
	return NULL;
}

/*
 * Wait for the result event of the request just sent on q.  Returns the
 * event (caller destroys), or NULL with a status and message when the
 * request as a whole failed.
 */
static rd_kafka_event_t *
await(rd_kafka_queue_t *q, int timeout_ms, int *status, rd_kafka_resp_err_t *kerr,
      struct dp_buf *msg)
{
	int stopped;
	char d[48];
	rd_kafka_event_t *ev = dp_kafka_queue_wait(q, timeout_ms + AWAIT_MARGIN_MS, &stopped);
	rd_kafka_resp_err_t e;

	if (stopped) {
		*status = DP_EX_TEMPFAIL;
		*kerr = RD_KAFKA_RESP_ERR__TIMED_OUT;
		dp_buf_msgf(msg, "interrupted before the cluster answered");
		return NULL;
	}
	if (!ev) {
		*status = DP_EX_UNAVAILABLE;
		*kerr = RD_KAFKA_RESP_ERR__TIMED_OUT;
		dp_buf_msgf(msg, "no answer from the cluster within %s",
		            dp_duration_format(timeout_ms, d));
		return NULL;
	}
	e = rd_kafka_event_error(ev);
	if (e) {
		*status = dp_admin_status(e);
		*kerr = e;
		if (e == RD_KAFKA_RESP_ERR__TIMED_OUT)
			dp_buf_msgf(msg, "no answer from the cluster within %s",
			            dp_duration_format(timeout_ms, d));
		else
			dp_buf_msgf(msg, "%s", rd_kafka_event_error_string(ev));
		rd_kafka_event_destroy(ev);
		return NULL;
	}
	return ev;
}

/* Wait ms, or -1 when a signal came first. */
static int
pause_ms(int ms)
{
	for (; ms > 0; ms -= 50) {
		struct timespec ts = { 0, 50 * 1000000L };
		if (dp_sig_stop)
			return -1;
		nanosleep(&ts, NULL);
	}
	return dp_sig_stop ? -1 : 0;
}

/*
 * Whether a look-up that failed with e is worth sending again: an unknown
 * topic within the propagation window (it may have been created a moment
 * ago), any other retriable error until the deadline.
 */
static int
again(rd_kafka_resp_err_t e, int64_t start, int64_t deadline)
{
	int64_t now = dp_time_mono_ms();

	if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
		return now < start + DP_KAFKA_PROPAGATION_MS && now + 100 < deadline;
	return e != RD_KAFKA_RESP_ERR__TIMED_OUT && dp_kafka_retriable(e) && now + 100 < deadline;
}

/*
 * One Admin API request.  Every call in this file is one: it says what
 * the request is (the operation, its options, how to send it and how to
 * read the answer) and request() does the rest, the same way for all:
 * the options with the time left as the request timeout, a queue of its
 * own, the wait in slices that a signal ends (DP_EX_TEMPFAIL), "no answer
 * within" at the deadline, and for a look-up (nothing changes on the
 * cluster), the request sent again while the answer is an error Kafka
 * calls retriable, until the deadline.  A change is sent once: asking
 * again after a lost answer could apply it twice.
 *
 * A call embeds struct request as the first member of its own struct,
 * which the callbacks get back by a cast.
 */
struct request {
	rd_kafka_admin_op_t op;
	bool op_timeout;        /* the broker waits for the change to reach every broker */
	bool validate_only;     /* the broker checks, changes nothing */
	bool lookup;            /* nothing changes: retriable answers are asked again */
	/* Send the request on q with o. */
	void (*send)(struct request *r, rd_kafka_t *rk, rd_kafka_AdminOptions_t *o,
	             rd_kafka_queue_t *q);
	/* Read the answer: 0 or an exit status; errors go through retry_on(). */
	int (*take)(struct request *r, rd_kafka_event_t *ev);
	/* The request as a whole failed: record it, return the status to return. */
	int (*fail)(struct request *r, int status, rd_kafka_resp_err_t err, const char *msg);
	/* Forget the last answer before the request is sent again.  NULL: nothing. */
	void (*reset)(struct request *r);

	/* request()'s */
	int64_t start, deadline;
	bool again;             /* the last answer is worth asking again for */
};

/* An error in the answer: for a look-up, one worth asking again for? */
static void
retry_on(struct request *r, rd_kafka_resp_err_t e)
{
	if (r->lookup && e && again(e, r->start, r->deadline))
		r->again = true;
}

/* Send r and wait for its answer, within timeout_ms (struct request). */
static int
request(rd_kafka_t *rk, struct request *r, int timeout_ms)
{
	r->start = dp_time_mono_ms();
	r->deadline = r->start + timeout_ms;
	for (;;) {
		int64_t left = r->deadline - dp_time_mono_ms();
		int ms = left > 1 ? (int)left : 1, status = 0;
		struct dp_buf msg = DP_BUF_INIT;
		rd_kafka_resp_err_t kerr = 0;
		rd_kafka_AdminOptions_t *o = options(rk, r->op, ms, r->op_timeout, r->validate_only,
		                                     &msg);
		rd_kafka_queue_t *q = o ? rd_kafka_queue_new(rk) : NULL;
		rd_kafka_event_t *ev = NULL;

		r->again = false;
		if (!q) {
			status = r->fail(r, DP_EX_SOFTWARE, 0,
			                 o ? "cannot create a queue" : dp_buf_str(&msg));
		} else {
			r->send(r, rk, o, q);
			if ((ev = await(q, ms, &status, &kerr, &msg))) {
				status = r->take(r, ev);
			} else {
				status = r->fail(r, status, kerr, dp_buf_str(&msg));
				retry_on(r, kerr);
			}
		}
		if (ev)
			rd_kafka_event_destroy(ev);
		if (q)
			rd_kafka_queue_destroy(q);
		if (o)
			rd_kafka_AdminOptions_destroy(o);
		dp_buf_free(&msg);
		/* A signal during the pause: the last answer is the answer. */
		if (!r->again || pause_ms(100) < 0)
			return status;
		if (r->reset)
			r->reset(r);
	}
}

/* ---- requests about topics ------------------------------------------ */

/*
 * A request about n topics, each with its own result: the topics that
 * cannot be sent fail before (prepare), every topic sent gets the
 * cluster's answer for it or the request's failure, and one the cluster
 * says nothing about is an error, never a success.
 */
struct batch {
	struct request req;           /* first: the callbacks cast back */
	struct dp_admin_result *res;  /* n, the caller's */
	size_t n;
	bool *sent;                   /* res[i]'s topic is in the request */
	bool *answered;               /* and the answer named it */
	size_t cnt;                   /* how many are sent */
};

/*
 * Give each result its name, and fail locally what must not be sent:
 * illegal names and repeats (librdkafka refuses a whole request that
 * names a topic twice).  Returns how many are left to send, or -1 when
 * memory runs out.
 */
static long
prepare(struct dp_admin_result *res, const char *const *names, size_t n)
{
	long todo = 0;

	for (size_t i = 0; i < n; i++) {
		struct dp_buf why = DP_BUF_INIT;
		res[i].name = strdup(names[i]);
		if (!res[i].name)
			return -1;
		if (dp_admin_check_name(names[i], &why)) {
			dp_admin_result_fail(&res[i], DP_EX_INVALID, 0, "%s", why.data);
			dp_buf_free(&why);
			continue;
		}
		dp_buf_free(&why);
		for (size_t j = 0; j < i; j++)
			if (!res[j].status && strcmp(names[j], names[i]) == 0) {
				dp_admin_result_fail(&res[i], DP_EX_INVALID, 0,
				                     "topic is named more than once");
				break;
			}
		if (!res[i].status)
			todo++;
	}
	return todo;
}

/* Memory ran out: every topic not failed yet fails for it. */
static int
batch_nomem(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (!b->res[i].status)
			dp_admin_result_fail(&b->res[i], DP_EX_SOFTWARE, 0, "out of memory");
	return DP_EX_SOFTWARE;
}

/*
 * The results res[n] of a request about names[n], prepared.  0, or
 * DP_EX_SOFTWARE with every result failed when memory runs out.
 */
static int
batch_init(struct batch *b, struct dp_admin_result *res, const char *const *names, size_t n)
{
	if (n)
		memset(res, 0, n * sizeof(*res));
	b->res = res;
	b->n = n;
	b->cnt = 0;
	b->sent = calloc(n ? n : 1, sizeof(*b->sent));
	b->answered = calloc(n ? n : 1, sizeof(*b->answered));
	if (b->sent && b->answered && prepare(res, names, n) >= 0)
		return 0;
	return batch_nomem(b);
}

static void
batch_free(struct batch *b)
{
	free(b->sent);
	free(b->answered);
	b->sent = b->answered = NULL;
}

/* res[i] goes into the request. */
static void
batch_send(struct batch *b, size_t i)
{
	b->sent[i] = true;
	b->cnt++;
}

/* The not yet failed result called name, among those sent and not yet answered. */
static struct dp_admin_result *
batch_find(struct batch *b, const char *name)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->sent[i] && !b->answered[i] && !b->res[i].status && b->res[i].name &&
		    strcmp(b->res[i].name, name) == 0) {
			b->answered[i] = true;
			return &b->res[i];
		}
	return NULL;
}

/* The topics sent and not named in the answer: an error, never a success. */
static void
batch_unanswered(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->sent[i] && !b->answered[i] && !b->res[i].status)
			dp_admin_result_fail(&b->res[i], DP_EX_SOFTWARE, 0,
			                     "the cluster sent no result for this topic");
}

/* The request as a whole failed: so did every topic in it. */
static int
batch_fail(struct request *r, int status, rd_kafka_resp_err_t err, const char *msg)
{
	struct batch *b = (struct batch *)r;

	for (size_t i = 0; i < b->n; i++)
		if (b->sent[i] && !b->res[i].status)
			dp_admin_result_fail(&b->res[i], status, err, "%s",
			                     *msg ? msg : "request failed");
	return status;
}

/* A per-topic error from the answer into its result. */
static void
batch_error(struct batch *b, struct dp_admin_result *r, rd_kafka_resp_err_t e,
            const char *broker_msg)
{
	if (!e)
		return;
	fail_kafka(r, e, broker_msg);
	retry_on(&b->req, e);
}

/* Topic results (CreateTopics, DeleteTopics, CreatePartitions) into res. */
static void
batch_topics(struct batch *b, const rd_kafka_topic_result_t **tr, size_t cnt)
{
	for (size_t i = 0; i < cnt; i++) {
		struct dp_admin_result *r = batch_find(b, rd_kafka_topic_result_name(tr[i]));
		if (r)
			batch_error(b, r, rd_kafka_topic_result_error(tr[i]),
			            rd_kafka_topic_result_error_string(tr[i]));
	}
	batch_unanswered(b);
}

/* Config resource results (AlterConfigs, IncrementalAlterConfigs) into res. */
static void
batch_resources(struct batch *b, const rd_kafka_ConfigResource_t **rr, size_t cnt)
{
	for (size_t i = 0; i < cnt; i++) {
		struct dp_admin_result *r = batch_find(b, rd_kafka_ConfigResource_name(rr[i]));
		if (r)
			batch_error(b, r, rd_kafka_ConfigResource_error(rr[i]),
			            rd_kafka_ConfigResource_error_string(rr[i]));
	}
	batch_unanswered(b);
}

/* ---- topic specs ---------------------------------------------------- */

void
dp_admin_spec_clear(struct dp_admin_spec *spec)
{
	if (!spec)
		return;
	free(spec->name);
	dp_kv_free(spec->config, spec->nconfig);
	memset(spec, 0, sizeof(*spec));
	spec->partitions = -1;
	spec->replication_factor = -1;
}

/*
 * Specs are read with json/scan.h, the JSON every other path of dp reads:
 * numbers from their own text (no double in between), strings decoded
 * exactly (a lone surrogate escape is refused, never replaced).
 */

/* The name of a JSON type, as messages give it. */
static const char *
kind_name(enum dp_json_type t)
{
	switch (t) {
	case DP_JSON_NULL: return "null";
	case DP_JSON_FALSE: case DP_JSON_TRUE: return "boolean";
	case DP_JSON_NUMBER: return "number";
	case DP_JSON_STRING: return "string";
	case DP_JSON_ARRAY: return "array";
	case DP_JSON_OBJECT: return "object";
	default: return "invalid";
	}
}

/* An integer literal (-?[0-9]+) within [min, max]: 0, else -1. */
static int
int_text(const char *v, size_t n, int64_t min, int64_t max, int64_t *out)
{
	size_t i = v[0] == '-';
	int64_t x = 0;

	if (i == n)
		return -1;
	for (; i < n; i++) {
		if (v[i] < '0' || v[i] > '9' || x > (INT64_MAX - (v[i] - '0')) / 10)
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	if (v[0] == '-')
		x = -x;
	if (x < min || x > max)
		return -1;
	*out = x;
	return 0;
}

/* An integer member within [min, max]. */
static int
spec_int(const char *v, size_t n, enum dp_json_type t, const char *what, int64_t min,
         int64_t max, int32_t *out, struct dp_buf *err)
{
	int64_t x;

	if (t != DP_JSON_NUMBER) {
		dp_buf_msgf(err, "\"%s\" must be a number, not %s", what, kind_name(t));
		return -1;
	}
	if (int_text(v, n, min, max, &x) < 0) {
		dp_buf_msgf(err, "\"%s\" must be an integer between %lld and %lld", what,
		            (long long)min, (long long)max);
		return -1;
	}
	*out = (int32_t)x;
	return 0;
}

/*
 * A string literal's bytes into b (reset first), NUL-terminated.  -1 with
 * a message naming what when it cannot be a C string.
 */
static int
spec_string(struct dp_buf *b, const char *v, size_t n, const char *what, struct dp_buf *err)
{
	size_t bad = 0;
	int rc;

	dp_buf_reset(b);
	rc = dp_json_unquote_exact(b, v, n, &bad);
	if (rc == -2) {
		dp_buf_msgf(err, "%s holds the lone surrogate escape %.6s, which stands for no "
		            "UTF-8 text", what, v + bad);
		return -1;
	}
	if (rc < 0 || dp_buf_addstr(b, "") < 0) {
		dp_buf_msgf(err, "out of memory");
		return -1;
	}
	if (strlen(b->data) != b->len) {
		dp_buf_msgf(err, "%s contains a NUL character", what);
		return -1;
	}
	return 0;
}

static int
spec_config(const char *obj, size_t objn, enum dp_json_type ot, struct dp_admin_spec *spec,
            struct dp_buf *err)
{
	struct dp_buf key = DP_BUF_INIT, val = DP_BUF_INIT, what = DP_BUF_INIT;
	size_t pos = 0, klen, vn;
	const char *k, *v;
	enum dp_json_type t;
	int rc = 0;

	if (ot != DP_JSON_OBJECT) {
		dp_buf_msgf(err, "\"config\" must be an object, not %s", kind_name(ot));
		return -1;
	}
	while (rc == 0 && (t = dp_json_next_member(obj, objn, &pos, &k, &klen, &v, &vn)) !=
	                  DP_JSON_INVALID) {
		int64_t x;
		dp_buf_reset(&what);
		rc = spec_string(&key, k, klen, "a \"config\" key", err);
		if (rc == 0 && !key.len) {
			dp_buf_msgf(err, "\"config\" has an empty key");
			rc = -1;
		}
		if (rc < 0)
			break;
		dp_buf_msgf(&what, "config \"%s\"", key.data);
		dp_buf_reset(&val);
		if (t == DP_JSON_STRING) {
			rc = spec_string(&val, v, vn, dp_buf_str(&what), err);
		} else if (t == DP_JSON_TRUE || t == DP_JSON_FALSE ||
		           (t == DP_JSON_NUMBER && int_text(v, vn, INT64_MIN, INT64_MAX, &x) == 0)) {
			/* As written: an integer keeps its digits, no double in between. */
			if (dp_buf_add(&val, v, vn) < 0) {
				dp_buf_msgf(err, "out of memory");
				rc = -1;
			}
		} else {
			dp_buf_msgf(err, "config \"%s\" must be a string, an integer or a boolean",
			            key.data);
			rc = -1;
		}
		if (rc < 0)
			break;
		/* A repeated key: the last counts, as for any repeated name. */
		size_t i;
		for (i = 0; i < spec->nconfig && strcmp(spec->config[i].key, key.data); i++)
			;
		if (i < spec->nconfig) {
			char *nv = strdup(val.data);
			if (!nv) {
				dp_buf_msgf(err, "out of memory");
				rc = -1;
				break;
			}
			free(spec->config[i].value);
			spec->config[i].value = nv;
			continue;
		}
		/* dp_kv_add splits at the first '=': keys never hold one. */
		if (strchr(key.data, '=')) {
			dp_buf_msgf(err, "config key \"%s\" contains '='", key.data);
			rc = -1;
			break;
		}
		if (dp_buf_addch(&key, '=') < 0 || dp_buf_add(&key, val.data, val.len) < 0 ||
		    dp_kv_add(&spec->config, &spec->nconfig, key.data) < 0) {
			dp_buf_msgf(err, "out of memory");
			rc = -1;
		}
	}
	dp_buf_free(&key);
	dp_buf_free(&val);
	dp_buf_free(&what);
	return rc;
}

int
dp_admin_spec_parse(const char *json, size_t len, struct dp_admin_spec *spec,
                    struct dp_buf *err)
{
	struct dp_buf key = DP_BUF_INIT, name = DP_BUF_INIT;
	size_t pos = 0, klen, vn, off;
	const char *k, *v, *why;
	enum dp_json_type t;
	int rc = 0;

	memset(spec, 0, sizeof(*spec));
	spec->partitions = -1;
	spec->replication_factor = -1;
	t = dp_json_check(json, len, &why, &off);
	if (t == DP_JSON_INVALID) {
		dp_buf_msgf(err, "invalid JSON: %s at byte %zu", why, off + 1);
		return -1;
	}
	if (t != DP_JSON_OBJECT) {
		dp_buf_msgf(err, "a topic spec must be an object, not %s", kind_name(t));
		return -1;
	}
	while (rc == 0 && (t = dp_json_next_member(json, len, &pos, &k, &klen, &v, &vn)) !=
	                  DP_JSON_INVALID) {
		dp_buf_reset(&key);
		if (dp_json_unquote(&key, k, klen) < 0 || dp_buf_addstr(&key, "") < 0) {
			dp_buf_msgf(err, "out of memory");
			rc = -1;
			break;
		}
		if (strcmp(key.data, "name") == 0) {
			if (t != DP_JSON_STRING) {
				dp_buf_msgf(err, "\"name\" must be a string, not %s", kind_name(t));
				rc = -1;
			} else if ((rc = spec_string(&name, v, vn, "\"name\"", err)) == 0) {
				free(spec->name);
				if (!(spec->name = strdup(name.data))) {
					dp_buf_msgf(err, "out of memory");
					rc = -1;
				}
			}
		} else if (strcmp(key.data, "partitions") == 0) {
			rc = spec_int(v, vn, t, key.data, 1, INT32_MAX, &spec->partitions, err);
		} else if (strcmp(key.data, "replication_factor") == 0) {
			rc = spec_int(v, vn, t, key.data, 1, INT16_MAX, &spec->replication_factor, err);
		} else if (strcmp(key.data, "config") == 0) {
			/* A repeated "config" replaces the earlier one, as jq would. */
			dp_kv_free(spec->config, spec->nconfig);
			spec->config = NULL;
			spec->nconfig = 0;
			rc = spec_config(v, vn, t, spec, err);
		} else {
			dp_buf_msgf(err, "unknown member \"%s\" (expected name, partitions, "
			            "replication_factor, config)", key.data);
			rc = -1;
		}
	}
	dp_buf_free(&key);
	dp_buf_free(&name);
	if (rc == 0 && !spec->name) {
		dp_buf_msgf(err, "spec has no \"name\"");
		rc = -1;
	}
	return rc;
}

/* ---- metadata ------------------------------------------------------- */

static int
cmp_topic(const void *a, const void *b)
{
	return strcmp(((const struct dp_admin_topic *)a)->name,
	              ((const struct dp_admin_topic *)b)->name);
}

static int
cmp_part(const void *a, const void *b)
{
	int32_t x = ((const struct dp_admin_partition *)a)->id;
	int32_t y = ((const struct dp_admin_partition *)b)->id;

	return (x > y) - (x < y);
}

static int32_t *
dup_ids(const int32_t *v, int n)
{
	int32_t *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(*p));

	if (p && n > 0)
		memcpy(p, v, (size_t)n * sizeof(*p));
	return p;
}

static int
copy_topic(struct dp_admin_topic *t, const rd_kafka_metadata_topic_t *mt)
{
	t->name = strdup(mt->topic);
	t->err = mt->err;
	t->internal = dp_admin_is_internal(mt->topic);
	t->npartitions = mt->partition_cnt;
	t->partitions = calloc((size_t)(mt->partition_cnt > 0 ? mt->partition_cnt : 1),
	                       sizeof(*t->partitions));
	if (!t->name || !t->partitions)
		return -1;
	for (int i = 0; i < mt->partition_cnt; i++) {
		const rd_kafka_metadata_partition_t *mp = &mt->partitions[i];
		struct dp_admin_partition *p = &t->partitions[i];
		p->id = mp->id;
		p->leader = mp->leader;
		p->err = mp->err;
		p->nreplicas = mp->replica_cnt;
		p->nisr = mp->isr_cnt;
		p->replicas = dup_ids(mp->replicas, mp->replica_cnt);
		p->isr = dup_ids(mp->isrs, mp->isr_cnt);
		if (!p->replicas || !p->isr)
			return -1;
		if (mp->replica_cnt > t->replication_factor)
			t->replication_factor = mp->replica_cnt;
	}
	qsort(t->partitions, (size_t)t->npartitions, sizeof(*t->partitions), cmp_part);
	return 0;
}

static int
list_once(rd_kafka_t *rk, int timeout_ms, struct dp_admin_topics *out, struct dp_buf *err)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e;
	int stopped;
	char d[48];

	memset(out, 0, sizeof(*out));
	e = dp_kafka_metadata(rk, 1, NULL, timeout_ms, &md, &stopped);
	if (stopped) {
		dp_buf_msgf(err, "interrupted before the cluster answered");
		return DP_EX_TEMPFAIL;
	}
	if (e) {
		if (e == RD_KAFKA_RESP_ERR__TRANSPORT || e == RD_KAFKA_RESP_ERR__TIMED_OUT)
			dp_buf_msgf(err, "no kafka broker answered within %s",
			            dp_duration_format(timeout_ms, d));
		else
			dp_buf_msgf(err, "cannot get kafka metadata: %s", rd_kafka_err2str(e));
		return dp_admin_status(e);
	}
	out->nbrokers = md->broker_cnt;
	out->v = calloc((size_t)(md->topic_cnt > 0 ? md->topic_cnt : 1), sizeof(*out->v));
	if (!out->v)
		goto nomem;
	for (int i = 0; i < md->topic_cnt; i++) {
		out->n++;
		if (copy_topic(&out->v[i], &md->topics[i]) < 0)
			goto nomem;
	}
	rd_kafka_metadata_destroy(md);
	qsort(out->v, out->n, sizeof(*out->v), cmp_topic);
	return 0;
nomem:
	rd_kafka_metadata_destroy(md);
	dp_admin_topics_clear(out);
	dp_buf_msgf(err, "out of memory");
	return DP_EX_SOFTWARE;
}


/* 1 when t is in the metadata with a leader for every partition. */
static int
settled(const struct dp_admin_topic *t)
{
	if (!t || (t->err && dp_kafka_retriable(t->err)))
		return 0;
	for (int i = 0; i < t->npartitions; i++)
		if (t->partitions[i].leader < 0 || dp_kafka_retriable(t->partitions[i].err))
			return 0;
	return 1;
}

int
dp_admin_list_for(rd_kafka_t *rk, const char *const *names, size_t n, int timeout_ms,
                  struct dp_admin_topics *out, struct dp_buf *err)
{
	int64_t start = dp_time_mono_ms(), deadline = start + timeout_ms;
	int64_t until = start + DP_KAFKA_PROPAGATION_MS;

	for (;;) {
		int64_t left = deadline - dp_time_mono_ms();
		int st = list_once(rk, left > 1 ? (int)left : 1, out, err);
		size_t i = 0;
		if (st)
			return st;
		while (i < n && settled(dp_admin_topics_find(out, names[i])))
			i++;
		/* A topic created a moment ago may not be there, or not led, yet. */
		if (i == n || dp_time_mono_ms() >= (until < deadline ? until : deadline))
			return 0;
		dp_admin_topics_clear(out);
		if (pause_ms(100) < 0) {
			dp_buf_msgf(err, "interrupted before the cluster answered");
			return DP_EX_TEMPFAIL;
		}
	}
}

int
dp_admin_list(rd_kafka_t *rk, int timeout_ms, struct dp_admin_topics *out,
              struct dp_buf *err)
{
	return dp_admin_list_for(rk, NULL, 0, timeout_ms, out, err);
}

void
dp_admin_topics_clear(struct dp_admin_topics *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		struct dp_admin_topic *tp = &t->v[i];
		for (int j = 0; tp->partitions && j < tp->npartitions; j++) {
			free(tp->partitions[j].replicas);
			free(tp->partitions[j].isr);
		}
		free(tp->partitions);
		free(tp->name);
	}
	free(t->v);
	memset(t, 0, sizeof(*t));
}

const struct dp_admin_topic *
dp_admin_topics_find(const struct dp_admin_topics *t, const char *name)
{
	struct dp_admin_topic key;

	if (!t->n)
		return NULL;
	key.name = (char *)name;
	return bsearch(&key, t->v, t->n, sizeof(*t->v), cmp_topic);
}

/* ---- create, delete, add partitions --------------------------------- */

struct create {
	struct batch b;
	rd_kafka_NewTopic_t **nt;     /* b.cnt of them */
};

static void
create_send(struct request *r, rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q)
{
	struct create *c = (struct create *)r;

	rd_kafka_CreateTopics(rk, c->nt, c->b.cnt, o, q);
}

static int
create_take(struct request *r, rd_kafka_event_t *ev)
{
	size_t cnt = 0;
	const rd_kafka_topic_result_t **tr =
		rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);

	batch_topics((struct batch *)r, tr, cnt);
	return 0;
}

int
dp_admin_create(rd_kafka_t *rk, const struct dp_admin_spec *specs, size_t n,
                bool validate_only, int timeout_ms, struct dp_admin_result *res)
{
	struct create c = { .b.req = { .op = RD_KAFKA_ADMIN_OP_CREATETOPICS, .op_timeout = true,
	                               .validate_only = validate_only, .send = create_send,
	                               .take = create_take, .fail = batch_fail } };
	const char **names = calloc(n ? n : 1, sizeof(*names));
	char errstr[512];
	int status = 0;

	c.nt = calloc(n ? n : 1, sizeof(*c.nt));
	for (size_t i = 0; names && i < n; i++)
		names[i] = specs[i].name;
	if (!names || !c.nt) {
		/* the names are the specs' own: a result may keep none */
		if (n)
			memset(res, 0, n * sizeof(*res));
		for (size_t i = 0; i < n; i++) {
			res[i].name = strdup(specs[i].name);
			dp_admin_result_fail(&res[i], DP_EX_SOFTWARE, 0, "out of memory");
		}
		status = DP_EX_SOFTWARE;
		goto out;
	}
	if ((status = batch_init(&c.b, res, names, n)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct dp_admin_spec *s = &specs[i];
		rd_kafka_NewTopic_t *t;
		if (res[i].status)
			continue;
		t = rd_kafka_NewTopic_new(s->name, s->partitions, s->replication_factor, errstr,
		                          sizeof(errstr));
		if (!t) {
			dp_admin_result_fail(&res[i], DP_EX_INVALID, 0, "%s", errstr);
			continue;
		}
		for (size_t k = 0; k < s->nconfig; k++)
			if (rd_kafka_NewTopic_set_config(t, s->config[k].key, s->config[k].value)) {
				dp_admin_result_fail(&res[i], DP_EX_CONFIG, 0,
				                     "cannot set config '%s'", s->config[k].key);
				break;
			}
		if (res[i].status) {
			rd_kafka_NewTopic_destroy(t);
			continue;
		}
		c.nt[c.b.cnt] = t;
		batch_send(&c.b, i);
	}
	if (c.b.cnt)
		status = request(rk, &c.b.req, timeout_ms);
out:
	if (c.nt)
		rd_kafka_NewTopic_destroy_array(c.nt, c.b.cnt);
	free(c.nt);
	free(names);
	batch_free(&c.b);
	return status;
}

/* Does the existing topic match spec?  0, or a status with res failed. */
static int
matches(rd_kafka_t *rk, const struct dp_admin_spec *spec, int timeout_ms,
        struct dp_admin_result *res)
{
	struct dp_admin_topics md;
	struct dp_admin_configs cfg;
	struct dp_buf err = DP_BUF_INIT;
	const char *names[1] = { spec->name };
	int st = dp_admin_list(rk, timeout_ms, &md, &err);

	memset(&cfg, 0, sizeof(cfg));
	if (st) {
		dp_admin_result_fail(res, st, 0, "%s", dp_buf_str(&err));
		goto out;
	}
	const struct dp_admin_topic *t = dp_admin_topics_find(&md, spec->name);
	if (!t) {
		/* Deleted between the two requests: let the caller try again. */
		st = DP_EX_UNAVAILABLE;
		dp_admin_result_fail(res, st, 0, "topic exists but is not in the metadata");
		goto out;
	}
	if (spec->partitions > 0 && t->npartitions != spec->partitions) {
		st = DP_EX_EXISTS;
		dp_admin_result_fail(res, st, RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS,
		                     "topic exists with %d partitions, not %d", t->npartitions,
		                     (int)spec->partitions);
		goto out;
	}
	if (spec->nconfig) {
		st = dp_admin_describe_configs(rk, names, 1, timeout_ms, &cfg);
		if (st || cfg.res.status) {
			st = st ? st : cfg.res.status;
			dp_admin_result_fail(res, st, cfg.res.err, "%s",
			                     cfg.res.error ? cfg.res.error : "cannot describe");
			goto out;
		}
		for (size_t i = 0; i < spec->nconfig; i++) {
			const struct dp_admin_config *c = dp_admin_configs_find(&cfg, spec->config[i].key);
			if (!c || !c->value || strcmp(c->value, spec->config[i].value) != 0) {
				st = DP_EX_EXISTS;
				dp_admin_result_fail(res, st, RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS,
				                     "topic exists with %s=%s, not %s",
				                     spec->config[i].key,
				                     c && c->value ? c->value : "(unset)",
				                     spec->config[i].value);
				goto out;
			}
		}
	}
out:
	dp_admin_configs_clear(&cfg);
	dp_admin_topics_clear(&md);
	dp_buf_free(&err);
	return st;
}

int
dp_admin_ensure(rd_kafka_t *rk, const struct dp_admin_spec *spec, int timeout_ms,
                struct dp_admin_result *res, bool *created)
{
	struct dp_buf err = DP_BUF_INIT;
	int st = dp_admin_create(rk, spec, 1, false, timeout_ms, res);

	*created = false;
	if (st == 0 && res->status == 0) {
		*created = true;
	} else if (res->err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
		dp_admin_result_clear(res);
		res->name = strdup(spec->name);
		if (!res->name)
			return DP_EX_SOFTWARE;
		if ((st = matches(rk, spec, timeout_ms, res)) != 0)
			return st;
	} else {
		return res->status ? res->status : st;
	}
	/*
	 * Usable when we return: the metadata shows it with its leaders.  It
	 * exists, so it is waited for as long as timeout_ms: right after a
	 * broker restart that takes seconds (dp_kafka_await_topic).
	 */
	st = dp_kafka_await_topic(rk, spec->name, timeout_ms, NULL, &err);
	if (st == DP_KAFKA_STOPPED)
		st = DP_EX_TEMPFAIL;
	if (st)
		dp_admin_result_fail(res, st, 0, "%s", dp_buf_str(&err));
	dp_buf_free(&err);
	return st;
}

struct delete {
	struct batch b;
	rd_kafka_DeleteTopic_t **dt;
};

static void
delete_send(struct request *r, rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q)
{
	struct delete *d = (struct delete *)r;

	rd_kafka_DeleteTopics(rk, d->dt, d->b.cnt, o, q);
}

static int
delete_take(struct request *r, rd_kafka_event_t *ev)
{
	size_t cnt = 0;
	const rd_kafka_topic_result_t **tr =
		rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &cnt);

	batch_topics((struct batch *)r, tr, cnt);
	return 0;
}

int
dp_admin_delete(rd_kafka_t *rk, const char *const *names, size_t n, int timeout_ms,
                struct dp_admin_result *res)
{
	struct delete d = { .b.req = { .op = RD_KAFKA_ADMIN_OP_DELETETOPICS, .op_timeout = true,
	                               .send = delete_send, .take = delete_take,
	                               .fail = batch_fail } };
	int status = batch_init(&d.b, res, names, n);

	if (!status && !(d.dt = calloc(n ? n : 1, sizeof(*d.dt))))
		status = batch_nomem(&d.b);
	for (size_t i = 0; !status && i < n; i++) {
		if (res[i].status)
			continue;
		if (!(d.dt[d.b.cnt] = rd_kafka_DeleteTopic_new(names[i]))) {
			dp_admin_result_fail(&res[i], DP_EX_INVALID, 0, "cannot build request");
			continue;
		}
		batch_send(&d.b, i);
	}
	if (!status && d.b.cnt)
		status = request(rk, &d.b.req, timeout_ms);
	if (d.dt)
		rd_kafka_DeleteTopic_destroy_array(d.dt, d.b.cnt);
	free(d.dt);
	batch_free(&d.b);
	return status;
}

struct partitions {
	struct batch b;
	rd_kafka_NewPartitions_t **np;
};

static void
partitions_send(struct request *r, rd_kafka_t *rk, rd_kafka_AdminOptions_t *o,
                rd_kafka_queue_t *q)
{
	struct partitions *p = (struct partitions *)r;

	rd_kafka_CreatePartitions(rk, p->np, p->b.cnt, o, q);
}

static int
partitions_take(struct request *r, rd_kafka_event_t *ev)
{
	size_t cnt = 0;
	const rd_kafka_topic_result_t **tr = rd_kafka_CreatePartitions_result_topics(
		rd_kafka_event_CreatePartitions_result(ev), &cnt);

	batch_topics((struct batch *)r, tr, cnt);
	return 0;
}

int
dp_admin_add_partitions(rd_kafka_t *rk, const char *const *names, size_t n, int32_t total,
                        bool validate_only, int timeout_ms, struct dp_admin_result *res)
{
	struct partitions p = { .b.req = { .op = RD_KAFKA_ADMIN_OP_CREATEPARTITIONS,
	                                   .op_timeout = true, .validate_only = validate_only,
	                                   .send = partitions_send, .take = partitions_take,
	                                   .fail = batch_fail } };
	int status = batch_init(&p.b, res, names, n);
	char errstr[512];

	if (!status && !(p.np = calloc(n ? n : 1, sizeof(*p.np))))
		status = batch_nomem(&p.b);
	for (size_t i = 0; !status && i < n; i++) {
		if (res[i].status)
			continue;
		p.np[p.b.cnt] = rd_kafka_NewPartitions_new(names[i], (size_t)total, errstr,
		                                           sizeof(errstr));
		if (!p.np[p.b.cnt]) {
			dp_admin_result_fail(&res[i], DP_EX_INVALID, 0, "%s", errstr);
			continue;
		}
		batch_send(&p.b, i);
	}
	if (!status && p.b.cnt)
		status = request(rk, &p.b.req, timeout_ms);
	if (p.np)
		rd_kafka_NewPartitions_destroy_array(p.np, p.b.cnt);
	free(p.np);
	batch_free(&p.b);
	return status;
}

/* ---- configs -------------------------------------------------------- */

void
dp_admin_configs_clear(struct dp_admin_configs *c)
{
	if (!c)
		return;
	dp_admin_result_clear(&c->res);
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].name);
		free(c->v[i].value);
	}
	free(c->v);
	memset(c, 0, sizeof(*c));
}

const struct dp_admin_config *
dp_admin_configs_find(const struct dp_admin_configs *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i].name, name) == 0)
			return &c->v[i];
	return NULL;
}

static int
copy_configs(struct dp_admin_configs *c, const rd_kafka_ConfigResource_t *r)
{
	size_t cnt = 0;
	const rd_kafka_ConfigEntry_t **e = rd_kafka_ConfigResource_configs(r, &cnt);

	c->v = calloc(cnt ? cnt : 1, sizeof(*c->v));
	if (!c->v)
		return -1;
	for (size_t i = 0; i < cnt; i++) {
		struct dp_admin_config *d = &c->v[c->n++];
		const char *v = rd_kafka_ConfigEntry_value(e[i]);
		d->name = strdup(rd_kafka_ConfigEntry_name(e[i]));
		d->value = v ? strdup(v) : NULL;
		d->source = rd_kafka_ConfigEntry_source(e[i]);
		d->is_default = rd_kafka_ConfigEntry_is_default(e[i]);
		d->read_only = rd_kafka_ConfigEntry_is_read_only(e[i]);
		d->sensitive = rd_kafka_ConfigEntry_is_sensitive(e[i]);
		if (!d->name || (v && !d->value))
			return -1;
	}
	return 0;
}

struct describe {
	struct batch b;
	rd_kafka_ConfigResource_t **cr;
	struct dp_admin_configs *out;   /* b.n of them, in the results' order */
};

static void
describe_send(struct request *r, rd_kafka_t *rk, rd_kafka_AdminOptions_t *o,
              rd_kafka_queue_t *q)
{
	struct describe *d = (struct describe *)r;

	rd_kafka_DescribeConfigs(rk, d->cr, d->b.cnt, o, q);
}

static int
describe_take(struct request *r, rd_kafka_event_t *ev)
{
	struct describe *d = (struct describe *)r;
	size_t cnt = 0;
	const rd_kafka_ConfigResource_t **rr = rd_kafka_DescribeConfigs_result_resources(
		rd_kafka_event_DescribeConfigs_result(ev), &cnt);

	for (size_t i = 0; i < cnt; i++) {
		struct dp_admin_result *res = batch_find(&d->b, rd_kafka_ConfigResource_name(rr[i]));
		rd_kafka_resp_err_t e = rd_kafka_ConfigResource_error(rr[i]);
		if (!res)
			continue;
		if (e)
			batch_error(&d->b, res, e, rd_kafka_ConfigResource_error_string(rr[i]));
		else if (copy_configs(&d->out[res - d->b.res], rr[i]) < 0)
			dp_admin_result_fail(res, DP_EX_SOFTWARE, 0, "out of memory");
	}
	batch_unanswered(&d->b);
	return 0;
}

/* Asked again: every topic sent is undecided again. */
static void
describe_reset(struct request *r)
{
	struct describe *d = (struct describe *)r;

	for (size_t i = 0; i < d->b.n; i++) {
		struct dp_admin_result *res = &d->b.res[i];
		if (!d->b.sent[i])
			continue;
		d->b.answered[i] = false;
		free(res->error);
		res->error = NULL;
		res->status = 0;
		res->err = 0;
		dp_admin_configs_clear(&d->out[i]);
	}
}

int
dp_admin_describe_configs(rd_kafka_t *rk, const char *const *names, size_t n,
                          int timeout_ms, struct dp_admin_configs *out)
{
	struct describe d = { .b.req = { .op = RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, .lookup = true,
	                                 .send = describe_send, .take = describe_take,
	                                 .fail = batch_fail, .reset = describe_reset },
	                      .out = out };
	struct dp_admin_result *res = calloc(n ? n : 1, sizeof(*res));
	int status;

	for (size_t i = 0; i < n; i++)
		memset(&out[i], 0, sizeof(out[i]));
	if (!res) {
		for (size_t i = 0; i < n; i++) {
			out[i].res.name = strdup(names[i]);
			dp_admin_result_fail(&out[i].res, DP_EX_SOFTWARE, 0, "out of memory");
		}
		return DP_EX_SOFTWARE;
	}
	status = batch_init(&d.b, res, names, n);
	if (!status && !(d.cr = calloc(n ? n : 1, sizeof(*d.cr))))
		status = batch_nomem(&d.b);
	for (size_t i = 0; !status && i < n; i++) {
		if (res[i].status)
			continue;
		d.cr[d.b.cnt] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, names[i]);
		if (!d.cr[d.b.cnt]) {
			dp_admin_result_fail(&res[i], DP_EX_INVALID, 0, "cannot build request");
			continue;
		}
		batch_send(&d.b, i);
	}
	if (!status && d.b.cnt)
		status = request(rk, &d.b.req, timeout_ms);
	for (size_t i = 0; i < n; i++)
		out[i].res = res[i];    /* ownership moves to out */
	free(res);
	if (d.cr)
		rd_kafka_ConfigResource_destroy_array(d.cr, d.b.cnt);
	free(d.cr);
	batch_free(&d.b);
	return status;
}

/*
 * Refuse keys the broker does not know for this topic: AlterConfigs
 * would answer INVALID_CONFIG for a --set, but a --delete of an unknown
 * key would pass silently and hide a typo.
 */
static int
check_keys(struct dp_admin_result *r, const struct dp_admin_configs *cur,
           const struct dp_admin_change *ch)
{
	for (size_t i = 0; i < ch->nset; i++)
		if (!dp_admin_configs_find(cur, ch->set[i].key)) {
			dp_admin_result_fail(r, DP_EX_CONFIG, RD_KAFKA_RESP_ERR_INVALID_CONFIG,
			                     "unknown config key '%s'", ch->set[i].key);
			return -1;
		}
	for (size_t i = 0; i < ch->ndel; i++)
		if (!dp_admin_configs_find(cur, ch->del[i])) {
			dp_admin_result_fail(r, DP_EX_CONFIG, RD_KAFKA_RESP_ERR_INVALID_CONFIG,
			                     "unknown config key '%s'", ch->del[i]);
			return -1;
		}
	return 0;
}

static bool
is_deleted(const struct dp_admin_change *ch, const char *key)
{
	for (size_t i = 0; i < ch->ndel; i++)
		if (strcmp(ch->del[i], key) == 0)
			return true;
	return false;
}

static bool
is_set(const struct dp_admin_change *ch, const char *key)
{
	for (size_t i = 0; i < ch->nset; i++)
		if (strcmp(ch->set[i].key, key) == 0)
			return true;
	return false;
}

/*
 * The whole new set of overrides for one topic: the current dynamic
 * topic configs, minus --delete, with --set on top.  Returns NULL with r
 * failed when it cannot be built faithfully.
 */
static rd_kafka_ConfigResource_t *
full_resource(struct dp_admin_result *r, const struct dp_admin_configs *cur,
              const struct dp_admin_change *ch)
{
	rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC,
	                                                             r->name);

	if (!res) {
		dp_admin_result_fail(r, DP_EX_SOFTWARE, 0, "cannot build request");
		return NULL;
	}
	for (size_t i = 0; i < cur->n; i++) {
		const struct dp_admin_config *c = &cur->v[i];
		if (c->source != RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG ||
		    is_deleted(ch, c->name) || is_set(ch, c->name))
			continue;
		if (!c->value) {
			/* Sending the set without it would erase it. */
			dp_admin_result_fail(r, DP_EX_CONFIG, 0, "config '%s' is sensitive and "
			                     "cannot be read back; a full alter would lose it",
			                     c->name);
			rd_kafka_ConfigResource_destroy(res);
			return NULL;
		}
		if (rd_kafka_ConfigResource_set_config(res, c->name, c->value))
			goto fail;
	}
	/* The last --set of a key wins, as with repeated -X. */
	for (size_t i = 0; i < ch->nset; i++) {
		bool later = false;
		for (size_t j = i + 1; j < ch->nset; j++)
			if (strcmp(ch->set[j].key, ch->set[i].key) == 0)
				later = true;
		if (!later && rd_kafka_ConfigResource_set_config(res, ch->set[i].key,
		                                                 ch->set[i].value))
			goto fail;
	}
	return res;
fail:
	dp_admin_result_fail(r, DP_EX_SOFTWARE, 0, "cannot build request");
	rd_kafka_ConfigResource_destroy(res);
	return NULL;
}

#if RD_KAFKA_VERSION >= 0x020200ff
#define HAVE_INCREMENTAL 1

static rd_kafka_ConfigResource_t *
incremental_resource(struct dp_admin_result *r, const struct dp_admin_change *ch)
{
	rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC,
	                                                             r->name);
	rd_kafka_error_t *e = NULL;

	if (!res) {
		dp_admin_result_fail(r, DP_EX_SOFTWARE, 0, "cannot build request");
		return NULL;
	}
	for (size_t i = 0; !e && i < ch->ndel; i++)
		if (!is_set(ch, ch->del[i]))
			e = rd_kafka_ConfigResource_add_incremental_config(
				res, ch->del[i], RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE, NULL);
	for (size_t i = 0; !e && i < ch->nset; i++) {
		bool later = false;
		for (size_t j = i + 1; j < ch->nset; j++)
			if (strcmp(ch->set[j].key, ch->set[i].key) == 0)
				later = true;
		if (!later)
			e = rd_kafka_ConfigResource_add_incremental_config(
				res, ch->set[i].key, RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
				ch->set[i].value);
	}
	if (e) {
		dp_admin_result_fail(r, DP_EX_CONFIG, rd_kafka_error_code(e), "%s",
		                     rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		rd_kafka_ConfigResource_destroy(res);
		return NULL;
	}
	return res;
}
#else
#define HAVE_INCREMENTAL 0
#endif

struct alter {
	struct batch b;
	rd_kafka_ConfigResource_t **cr;
	bool incremental;
	bool unsupported;               /* the broker does not know IncrementalAlterConfigs */
};

static void
alter_send(struct request *r, rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q)
{
	struct alter *a = (struct alter *)r;

#if HAVE_INCREMENTAL
	if (a->incremental) {
		rd_kafka_IncrementalAlterConfigs(rk, a->cr, a->b.cnt, o, q);
		return;
	}
#endif
	rd_kafka_AlterConfigs(rk, a->cr, a->b.cnt, o, q);
}

static int
alter_take(struct request *r, rd_kafka_event_t *ev)
{
	struct alter *a = (struct alter *)r;
	const rd_kafka_ConfigResource_t **rr;
	size_t cnt = 0;

#if HAVE_INCREMENTAL
	if (a->incremental)
		rr = rd_kafka_IncrementalAlterConfigs_result_resources(
			rd_kafka_event_IncrementalAlterConfigs_result(ev), &cnt);
	else
#endif
		rr = rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev),
		                                            &cnt);
	batch_resources(&a->b, rr, cnt);
	return 0;
}

static int
alter_fail(struct request *r, int status, rd_kafka_resp_err_t err, const char *msg)
{
	struct alter *a = (struct alter *)r;

	if (a->incremental && err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE) {
		a->unsupported = true;  /* the caller falls back: nothing failed yet */
		return 0;
	}
	return batch_fail(r, status, err, msg);
}

/*
 * Send one alter request for the pending results.  Returns 0 when the
 * cluster answered (per-topic outcomes in res), else the request's
 * status; *unsupported is set when the broker does not know the API.
 */
static int
send_alter(rd_kafka_t *rk, struct dp_admin_result *res, size_t n,
           const struct dp_admin_configs *cur, const struct dp_admin_change *ch,
           bool validate_only, int timeout_ms, bool incremental, bool *unsupported)
{
	struct alter a = { .b = { .req = { .op = RD_KAFKA_ADMIN_OP_ALTERCONFIGS,
	                                   .validate_only = validate_only, .send = alter_send,
	                                   .take = alter_take, .fail = alter_fail },
	                          .res = res, .n = n },
	                   .incremental = incremental };
	int status = 0;

#if HAVE_INCREMENTAL
	if (incremental)
		a.b.req.op = RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS;
#endif
	a.b.sent = calloc(n ? n : 1, sizeof(*a.b.sent));
	a.b.answered = calloc(n ? n : 1, sizeof(*a.b.answered));
	a.cr = calloc(n ? n : 1, sizeof(*a.cr));
	if (!a.b.sent || !a.b.answered || !a.cr)
		status = batch_nomem(&a.b);
	for (size_t i = 0; !status && i < n; i++) {
		if (res[i].status)
			continue;
#if HAVE_INCREMENTAL
		a.cr[a.b.cnt] = incremental ? incremental_resource(&res[i], ch)
		                            : full_resource(&res[i], &cur[i], ch);
#else
		a.cr[a.b.cnt] = full_resource(&res[i], &cur[i], ch);
#endif
		if (a.cr[a.b.cnt])
			batch_send(&a.b, i);
	}
	if (!status && a.b.cnt)
		status = request(rk, &a.b.req, timeout_ms);
	*unsupported = a.unsupported;
	if (a.cr)
		rd_kafka_ConfigResource_destroy_array(a.cr, a.b.cnt);
	free(a.cr);
	batch_free(&a.b);
	return status;
}

int
dp_admin_alter(rd_kafka_t *rk, const char *const *names, size_t n,
               const struct dp_admin_change *change, bool validate_only, int timeout_ms,
               struct dp_admin_result *res, int *method)
{
	struct dp_admin_configs *cur = calloc(n ? n : 1, sizeof(*cur));
	int status;
	bool unsupported = false;

	if (method)
		*method = DP_ADMIN_METHOD_FULL;
	if (!cur) {
		for (size_t i = 0; i < n; i++) {
			memset(&res[i], 0, sizeof(res[i]));
			/* Memory is out already: a NULL name is allowed here (kafka/admin.h). */
			res[i].name = strdup(names[i]);
			dp_admin_result_fail(&res[i], DP_EX_SOFTWARE, 0, "out of memory");
		}
		return DP_EX_SOFTWARE;
	}
	/*
	 * Describe first even for an incremental alter: it proves the topic
	 * exists and names every key the broker accepts for it.
	 */
	status = dp_admin_describe_configs(rk, names, n, timeout_ms, cur);
	for (size_t i = 0; i < n; i++) {
		res[i] = cur[i].res;
		memset(&cur[i].res, 0, sizeof(cur[i].res));
		if (!res[i].status)
			check_keys(&res[i], &cur[i], change);
	}
	if (status)
		goto out;
	if (HAVE_INCREMENTAL) {
		status = send_alter(rk, res, n, cur, change, validate_only, timeout_ms, true,
		                    &unsupported);
		if (!unsupported) {
			if (method)
				*method = DP_ADMIN_METHOD_INCREMENTAL;
			goto out;
		}
	}
	status = send_alter(rk, res, n, cur, change, validate_only, timeout_ms, false,
	                    &unsupported);
out:
	for (size_t i = 0; i < n; i++)
		dp_admin_configs_clear(&cur[i]);
	free(cur);
	return status;
}

/* ---- offsets -------------------------------------------------------- */

int
dp_admin_watermarks(rd_kafka_t *rk, const char *topic, int32_t partition, int timeout_ms,
                    int64_t *low, int64_t *high, struct dp_buf *err)
{
	int st = dp_kafka_watermarks(rk, topic, partition, timeout_ms, low, high, err);

	if (st == DP_KAFKA_STOPPED) {
		dp_buf_msgf(err, "interrupted before the cluster answered");
		return DP_EX_TEMPFAIL;
	}
	return st;
}

struct committed {
	struct request req;
	rd_kafka_ListConsumerGroupOffsets_t *lo;
	const char *group, *topic;
	int n;
	int64_t *committed;             /* n */
	struct dp_buf *err;
	size_t mark;                    /* err's length before */
};

static void
committed_send(struct request *r, rd_kafka_t *rk, rd_kafka_AdminOptions_t *o,
               rd_kafka_queue_t *q)
{
	struct committed *c = (struct committed *)r;

	rd_kafka_ListConsumerGroupOffsets(rk, &c->lo, 1, o, q);
}

static int
committed_take(struct request *r, rd_kafka_event_t *ev)
{
	struct committed *c = (struct committed *)r;
	size_t gcnt = 0;
	const rd_kafka_group_result_t **gr = rd_kafka_ListConsumerGroupOffsets_result_groups(
		rd_kafka_event_ListConsumerGroupOffsets_result(ev), &gcnt);

	if (gcnt != 1) {
		dp_buf_msgf(c->err, "cannot get offsets of group '%s': no result", c->group);
		return DP_EX_SOFTWARE;
	}
	const rd_kafka_error_t *ge = rd_kafka_group_result_error(gr[0]);
	if (ge) {
		dp_buf_msgf(c->err, "cannot get offsets of group '%s': %s", c->group,
		            rd_kafka_error_string(ge));
		retry_on(r, rd_kafka_error_code(ge));
		return dp_admin_status(rd_kafka_error_code(ge));
	}
	const rd_kafka_topic_partition_list_t *got = rd_kafka_group_result_partitions(gr[0]);
	for (int i = 0; got && i < got->cnt; i++) {
		const rd_kafka_topic_partition_t *tp = &got->elems[i];
		if (strcmp(tp->topic, c->topic) != 0 || tp->partition < 0 || tp->partition >= c->n)
			continue;
		if (tp->err) {
			dp_buf_msgf(c->err, "cannot get offset of group '%s' on '%s' partition %d: %s",
			            c->group, c->topic, (int)tp->partition, rd_kafka_err2str(tp->err));
			retry_on(r, tp->err);
			return dp_admin_status(tp->err);
		}
		c->committed[tp->partition] = tp->offset >= 0 ? tp->offset : -1;
	}
	return 0;
}

static int
committed_fail(struct request *r, int status, rd_kafka_resp_err_t err, const char *msg)
{
	struct committed *c = (struct committed *)r;

	dp_buf_msgf(c->err, "cannot get offsets of group '%s': %s", c->group, msg);
	return status;
}

/* The group's coordinator may be loading, moving or restarting: asked again. */
static void
committed_reset(struct request *r)
{
	struct committed *c = (struct committed *)r;

	for (int i = 0; i < c->n; i++)
		c->committed[i] = -1;
	dp_buf_truncate(c->err, c->mark);
}

int
dp_admin_committed(rd_kafka_t *rk, const char *group, const char *topic, int n,
                   int timeout_ms, int64_t *committed, struct dp_buf *err)
{
	struct committed c = { .req = { .op = RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
	                                .lookup = true, .send = committed_send,
	                                .take = committed_take, .fail = committed_fail,
	                                .reset = committed_reset },
	                       .group = group, .topic = topic, .n = n, .committed = committed,
	                       .err = err, .mark = err->len };
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
	int status = 0;

	for (int i = 0; i < n; i++) {
		committed[i] = -1;
		rd_kafka_topic_partition_list_add(parts, topic, i);
	}
	if (n > 0 && !(c.lo = rd_kafka_ListConsumerGroupOffsets_new(group, parts))) {
		dp_buf_msgf(err, "cannot build the offset request for group '%s'", group);
		status = DP_EX_SOFTWARE;
	} else if (n > 0) {
		status = request(rk, &c.req, timeout_ms);
	}
	if (c.lo)
		rd_kafka_ListConsumerGroupOffsets_destroy(c.lo);
	rd_kafka_topic_partition_list_destroy(parts);
	return status;
}

/* ---- groups ------------------------------------------------------------- */

void
dp_admin_group_clear(struct dp_admin_group *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->nmembers; i++) {
		free(g->members[i].member_id);
		free(g->members[i].instance_id);
		free(g->members[i].client_id);
		free(g->members[i].host);
	}
	free(g->members);
	memset(g, 0, sizeof(*g));
}

static char *
dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

struct group {
	struct request req;
	const char *group;
	struct dp_admin_group *out;
	struct dp_buf *err;
	size_t mark;                    /* err's length before */
};

static void
group_send(struct request *r, rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q)
{
	struct group *g = (struct group *)r;
	const char *groups[1] = { g->group };

	rd_kafka_DescribeConsumerGroups(rk, groups, 1, o, q);
}

static int
group_take(struct request *r, rd_kafka_event_t *ev)
{
	struct group *g = (struct group *)r;
	struct dp_admin_group *out = g->out;
	size_t cnt = 0;
	const rd_kafka_ConsumerGroupDescription_t **gd =
		rd_kafka_DescribeConsumerGroups_result_groups(
			rd_kafka_event_DescribeConsumerGroups_result(ev), &cnt);

	if (cnt != 1) {
		dp_buf_msgf(g->err, "cannot describe group '%s': no result", g->group);
		return DP_EX_SOFTWARE;
	}
	const rd_kafka_error_t *ge = rd_kafka_ConsumerGroupDescription_error(gd[0]);
	if (ge) {
		dp_buf_msgf(g->err, "cannot describe group '%s': %s", g->group,
		            rd_kafka_error_string(ge));
		retry_on(r, rd_kafka_error_code(ge));
		return dp_admin_status(rd_kafka_error_code(ge));
	}
	out->state = rd_kafka_ConsumerGroupDescription_state(gd[0]);
	size_t n = rd_kafka_ConsumerGroupDescription_member_count(gd[0]);
	if (n && !(out->members = calloc(n, sizeof(*out->members))))
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		const rd_kafka_MemberDescription_t *md =
			rd_kafka_ConsumerGroupDescription_member(gd[0], i);
		struct dp_admin_member *m = &out->members[out->nmembers++];
		const rd_kafka_MemberAssignment_t *a = rd_kafka_MemberDescription_assignment(md);
		const rd_kafka_topic_partition_list_t *l =
			a ? rd_kafka_MemberAssignment_partitions(a) : NULL;
		m->npartitions = l ? l->cnt : 0;
		if (!(m->member_id = dup_or_empty(rd_kafka_MemberDescription_consumer_id(md))) ||
		    !(m->client_id = dup_or_empty(rd_kafka_MemberDescription_client_id(md))) ||
		    !(m->host = dup_or_empty(rd_kafka_MemberDescription_host(md))))
			goto nomem;
		const char *inst = rd_kafka_MemberDescription_group_instance_id(md);
		if (inst && *inst && !(m->instance_id = strdup(inst)))
			goto nomem;
	}
	return 0;
nomem:
	dp_buf_msgf(g->err, "out of memory");
	return DP_EX_SOFTWARE;
}

static int
group_fail(struct request *r, int status, rd_kafka_resp_err_t err, const char *msg)
{
	struct group *g = (struct group *)r;

	dp_buf_msgf(g->err, "cannot describe group '%s': %s", g->group, msg);
	return status;
}

/* The group's coordinator may be loading, moving or restarting: asked again. */
static void
group_reset(struct request *r)
{
	struct group *g = (struct group *)r;

	dp_admin_group_clear(g->out);
	dp_buf_truncate(g->err, g->mark);
}

int
dp_admin_describe_group(rd_kafka_t *rk, const char *group, int timeout_ms,
                        struct dp_admin_group *out, struct dp_buf *err)
{
	struct group g = { .req = { .op = RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, .lookup = true,
	                            .send = group_send, .take = group_take, .fail = group_fail,
	                            .reset = group_reset },
	                   .group = group, .out = out, .err = err, .mark = err->len };

	memset(out, 0, sizeof(*out));
	return request(rk, &g.req, timeout_ms);
}

struct commit {
	struct request req;
	rd_kafka_AlterConsumerGroupOffsets_t *ao;
	const char *group;
	struct dp_buf *err;
};

static void
commit_send(struct request *r, rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q)
{
	struct commit *c = (struct commit *)r;

	rd_kafka_AlterConsumerGroupOffsets(rk, &c->ao, 1, o, q);
}

static int
commit_take(struct request *r, rd_kafka_event_t *ev)
{
	struct commit *c = (struct commit *)r;
	size_t cnt = 0;
	const rd_kafka_group_result_t **gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
		rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &cnt);

	if (cnt != 1) {
		dp_buf_msgf(c->err, "cannot commit offsets for group '%s': no result", c->group);
		return DP_EX_SOFTWARE;
	}
	const rd_kafka_error_t *ge = rd_kafka_group_result_error(gr[0]);
	if (ge) {
		dp_buf_msgf(c->err, "cannot commit offsets for group '%s': %s", c->group,
		            rd_kafka_error_string(ge));
		return dp_admin_status(rd_kafka_error_code(ge));
	}
	const rd_kafka_topic_partition_list_t *got = rd_kafka_group_result_partitions(gr[0]);
	for (int i = 0; got && i < got->cnt; i++) {
		if (!got->elems[i].err)
			continue;
		dp_buf_msgf(c->err, "cannot commit the offset of group '%s' on %s [%d]: %s",
		            c->group, got->elems[i].topic, (int)got->elems[i].partition,
		            rd_kafka_err2str(got->elems[i].err));
		return dp_admin_status(got->elems[i].err);
	}
	return 0;
}

static int
commit_fail(struct request *r, int status, rd_kafka_resp_err_t err, const char *msg)
{
	struct commit *c = (struct commit *)r;

	dp_buf_msgf(c->err, "cannot commit offsets for group '%s': %s", c->group, msg);
	return status;
}

int
dp_admin_commit_offsets(rd_kafka_t *rk, const char *group,
                        const rd_kafka_topic_partition_list_t *offsets, int timeout_ms,
                        struct dp_buf *err)
{
	/* A change: sent once (struct request). */
	struct commit c = { .req = { .op = RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS,
	                             .send = commit_send, .take = commit_take,
	                             .fail = commit_fail },
	                    .group = group, .err = err };
	int status;

	if (!offsets->cnt)
		return 0;
	if (!(c.ao = rd_kafka_AlterConsumerGroupOffsets_new(group, offsets))) {
		dp_buf_msgf(err, "cannot build the offset commit for group '%s'", group);
		return DP_EX_SOFTWARE;
	}
	status = request(rk, &c.req, timeout_ms);
	rd_kafka_AlterConsumerGroupOffsets_destroy(c.ao);
	return status;
}
