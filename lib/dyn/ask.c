/*
 * dyn/ask.c -- one request to the coordinator, and with --wait its answer
 * (dyn/ask.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/exit.h"
#include "core/log.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "dyn/ask.h"
#include "dyn/decide.h"
#include "dyn/reader.h"
#include "dyn/registry.h"
#include "kafka/client.h"
#include "kafka/producer.h"

struct dp_ask {
	struct dp_ask_conf conf;
	struct dp_registry *reg;
	struct dp_producer *prod;
	struct dp_buf err;
	int64_t deadline;               /* --wait: until when to wait (mono ms); 0 not yet */
	char request_id[33];
	bool sent;                      /* the request was acknowledged */
	bool finished;                  /* ... and answered, when waited for */
};

struct dp_ask *
dp_ask_new(const struct dp_ask_conf *conf)
{
	struct dp_ask *a = calloc(1, sizeof(*a));

	if (a)
		a->conf = *conf;
	return a;
}

void
dp_ask_free(struct dp_ask *a)
{
	if (!a)
		return;
	dp_producer_free(a->prod);
	dp_registry_free(a->reg);
	dp_buf_free(&a->err);
	free(a);
}

bool dp_ask_sent(const struct dp_ask *a) { return a->sent; }
bool dp_ask_finished(const struct dp_ask *a) { return a->finished; }
const char *dp_ask_request_id(const struct dp_ask *a) { return a->request_id; }

/* The registry and the producer: 0, or an exit status with a message in err. */
static int
open_topics(struct dp_ask *a)
{
	const struct dp_producer_conf pconf = { .kafka = a->conf.kafka, .topic = a->conf.requests };
	const struct dp_registry_conf rconf = { .kafka = a->conf.kafka, .topic = a->conf.registry };
	int st;

	if (!(a->reg = dp_registry_new(&rconf, &a->err, &st)))
		st = st ? st : DP_EX_SOFTWARE;
	if (st == 0)
		st = dp_registry_load(a->reg, &a->err);
	if (st == 0 && !(a->prod = dp_producer_new(&pconf, &a->err, &st)))
		st = st ? st : DP_EX_SOFTWARE;
	if (st == 0)
		st = dp_producer_connect(a->prod, NULL, 0, &a->err);
	return st;
}

/* What the registry says of the name already: 0, or why the request is refused. */
static int
refused(const struct dp_ask *a)
{
	const struct dp_ask_conf *q = &a->conf;
	const struct dp_dyn_spec *cur = dp_registry_get(a->reg, q->topic);

	if (q->action == DP_DYN_CREATE && cur && cur->state != DP_DYN_REJECTED) {
		/* The coordinator could not answer a conflicting request: refuse it here. */
		struct dp_dyn_request r = {
			.topic = (char *)q->topic, .source = (char *)q->source,
			.filter = (char *)q->filter, .partitions = q->partitions,
			.config = (struct dp_kv *)q->config, .nconfig = q->nconfig,
		};
		if ((cur->state != DP_DYN_ACTIVE && cur->state != DP_DYN_RETIRED) ||
		    !dp_coord_same(cur, &r)) {
			dp_err("dynamic topic '%s' is %s with another spec", q->topic,
			       dp_dyn_state_name(cur->state));
			return DP_EX_EXISTS;
		}
	}
	if (q->action == DP_DYN_RETIRE && (!cur || cur->state == DP_DYN_REJECTED)) {
		dp_err("no dynamic topic '%s' in the registry", q->topic);
		return DP_EX_NOTFOUND;
	}
	return 0;
}

int
dp_ask_connect(struct dp_ask *a, int *status)
{
	int st;

	if (a->deadline == 0)
		a->deadline = dp_time_mono_ms() + (a->conf.wait ? a->conf.wait_ms : 0);
	st = open_topics(a);
	if (st == DP_EX_NOTFOUND && dp_time_mono_ms() < a->deadline) {
		/* A coordinator that is only starting: its answer is waited for. */
		dp_registry_free(a->reg);
		dp_producer_free(a->prod);
		a->reg = NULL;
		a->prod = NULL;
		dp_buf_reset(&a->err);
		if (dp_backoff_sleep(200, &dp_sig_stop) < 0)
			return DP_ASK_SIGNAL;
		return DP_ASK_NOT_SERVED;
	}
	if (st == DP_EX_NOTFOUND) {
		/* Its topics are made by the coordinator: none has run (core/exit.h). */
		dp_buf_reset(&a->err);
		dp_buf_msgf(&a->err, "%s '%s' does not exist: no dp-coord serve has run on this "
		            "cluster", a->prod ? "requests topic" : "registry",
		            a->prod ? a->conf.requests : a->conf.registry);
		st = DP_EX_UNAVAILABLE;
	}
	if (st == DP_KAFKA_STOPPED || dp_sig_stop)
		return DP_ASK_SIGNAL;
	if (st) {
		dp_err("%s", dp_buf_str(&a->err));
		*status = st;
		return DP_ASK_UNREACHABLE;
	}
	if ((st = refused(a)) != 0) {
		*status = st;
		return DP_ASK_REFUSED;
	}
	return DP_ASK_CONNECTED;
}

int
dp_ask_send(struct dp_ask *a, int *status)
{
	const struct dp_ask_conf *c = &a->conf;
	char who[300];
	struct dp_dyn_request q = {
		.action = c->action, .request_id = a->request_id, .topic = (char *)c->topic,
		.source = (char *)c->source, .filter = (char *)c->filter,
		.partitions = c->partitions, .config = (struct dp_kv *)c->config,
		.nconfig = c->nconfig, .delete_after_ms = c->delete_after_ms,
		.requested_by = who, .requested_at = dp_time_now_ms(),
	};
	struct dp_buf value = DP_BUF_INIT;
	int st;

	dp_dyn_requester(who, sizeof(who));
	if (dp_dyn_request_id(a->request_id) < 0 || dp_dyn_request_json(&value, &q) < 0) {
		dp_err("cannot make a request: %s", strerror(errno ? errno : ENOMEM));
		*status = DP_EX_SOFTWARE;
		dp_buf_free(&value);
		return DP_ASK_SEND_FAILED;
	}
	struct dp_producer_rec rec = {
		.topic = c->requests, .partition = DP_PRODUCER_ANY,
		.key = c->topic, .key_len = strlen(c->topic),
		.value = value.data, .value_len = value.len,
	};
	dp_buf_reset(&a->err);
	st = dp_producer_send_wait(a->prod, &rec, 1, NULL, c->kafka->timeout_ms, &a->err);
	if (st) {
		dp_err("cannot send the request to '%s': %s", c->requests,
		       st == DP_KAFKA_STOPPED ? "interrupted" : dp_buf_str(&a->err));
		*status = st == DP_KAFKA_STOPPED ? DP_EX_TEMPFAIL : st;
		dp_buf_free(&value);
		return DP_ASK_SEND_FAILED;
	}
	dp_info("request %s sent", a->request_id);
	a->sent = true;
	a->finished = !c->wait;
	if (c->wait) {
		dp_buf_free(&value);
		return DP_ASK_AWAIT;
	}
	/* The request itself, so that a script can follow it up. */
	st = 0;
	if (dp_buf_addch(&value, '\n') < 0 || dp_out_write(c->out, value.data, value.len) < 0)
		st = c->stdout_failed(errno);
	dp_buf_free(&value);
	if (st) {
		*status = st;
		return DP_ASK_SEND_FAILED;
	}
	return DP_ASK_SENT;
}

int
dp_ask_await(struct dp_ask *a, int *status)
{
	const struct dp_ask_conf *c = &a->conf;
	int64_t deadline = dp_time_mono_ms() + c->wait_ms;

	for (;;) {
		const struct dp_dyn_spec *s = dp_registry_get(a->reg, c->topic);
		bool answered = s && s->request_id && !strcmp(s->request_id, a->request_id);
		if (c->action == DP_DYN_RETIRE)
			answered = !s || s->state == DP_DYN_RETIRED;
		if (answered) {
			a->finished = true;
			if (s && dp_reader_print_spec(c->out, s) < 0) {
				*status = c->stdout_failed(errno);
				return DP_ASK_DENIED;
			}
			if (s && s->state == DP_DYN_REJECTED) {
				dp_err("request for '%s' rejected: %s", c->topic,
				       s->reason ? s->reason : "no reason given");
				*status = dp_dyn_reject_status(s->rejected_for);
				return DP_ASK_DENIED;
			}
			return DP_ASK_GRANTED;
		}
		if (dp_time_mono_ms() >= deadline) {
			dp_err("no answer to request %s within %s: is a dp-coord serve running "
			       "(group '%s' on '%s')?", a->request_id, c->wait_arg, c->group,
			       c->requests);
			*status = DP_EX_UNAVAILABLE;
			return DP_ASK_TIMEOUT;
		}
		int st = dp_registry_poll(a->reg, 100, &a->err);
		if (st == DP_KAFKA_STOPPED || dp_sig_stop) {
			/* said by the command's frame, with its status (core/frame.h) */
			*status = DP_EX_TEMPFAIL;
			return DP_ASK_SIGNAL;
		}
		if (st) {
			dp_err("registry: %s", dp_buf_str(&a->err));
			*status = st;
			return DP_ASK_TIMEOUT;
		}
	}
}
