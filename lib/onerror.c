/*
 * onerror.c -- the --on-error policy for bad records (onerror.h).
 */
#include <string.h>

#include "buf.h"
#include "exit.h"
#include "kafka.h"
#include "log.h"
#include "onerror.h"

int
dp_on_error_parse(struct dp_on_error_policy *p, const char *arg)
{
	if (strcmp(arg, "fail") == 0) {
		p->mode = DP_ON_ERROR_FAIL;
	} else if (strcmp(arg, "skip") == 0) {
		p->mode = DP_ON_ERROR_SKIP;
	} else if (strncmp(arg, "dlq=", 4) == 0 && arg[4]) {
		p->mode = DP_ON_ERROR_DLQ;
		p->dlq_topic = arg + 4;
	} else {
		dp_err("invalid --on-error '%s': expected fail, skip or dlq=TOPIC", arg);
		return -1;
	}
	return 0;
}

int
dp_on_error_record(struct dp_on_error_policy *p, struct dp_producer *prod, const char *where,
                   const char *why, const void *key, size_t klen, const void *value, size_t len,
                   const struct dp_producer_header *hdrs, size_t nhdrs, uint64_t tag)
{
	struct dp_producer_rec r = {
		.topic = p->dlq_topic, .partition = DP_PRODUCER_ANY, .key = key,
		.key_len = key ? klen : 0, .value = value, .value_len = value ? len : 0,
		.hdrs = hdrs, .nhdrs = nhdrs, .tag = tag,
	};
	struct dp_buf err = DP_BUF_INIT;
	size_t failed;
	int st;

	p->count++;
	dp_err("%s: %s", where, why);
	if (p->mode == DP_ON_ERROR_FAIL)
		return DP_EX_DATAERR;
	if (p->mode == DP_ON_ERROR_SKIP)
		return 0;
	st = p->durable ? dp_producer_send_wait(prod, &r, 1, NULL, p->timeout_ms, &err)
	                : dp_producer_send(prod, &r, 1, &failed, &err);
	if (st == DP_KAFKA_STOPPED)
		dp_buf_msgf(&err, "stopped by a signal before it was acknowledged");
	if (st)
		dp_err("%s: cannot send to dead-letter topic '%s': %s", where, p->dlq_topic,
		       dp_buf_str(&err));
	dp_buf_free(&err);
	return st == DP_KAFKA_STOPPED ? DP_EX_TEMPFAIL : st;
}

void
dp_on_error_summary(const struct dp_on_error_policy *p, const char *what)
{
	if (p->count && p->mode != DP_ON_ERROR_FAIL)
		dp_warn("%llu bad %s%s %s", (unsigned long long)p->count, what,
		        p->count == 1 ? "" : "s",
		        p->mode == DP_ON_ERROR_SKIP ? "skipped" : "sent to the dead-letter topic");
}
