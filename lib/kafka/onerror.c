/*
 * kafka/onerror.c -- the --on-error policy for bad records (kafka/onerror.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/exit.h"
#include "core/log.h"
#include "kafka/client.h"
#include "kafka/onerror.h"
#include "obs/obs.h"

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

static const char *const dead_letter_labels[] = { "topic", NULL };

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
	if (st == DP_EX_DATAERR)
		dp_err("%s: the dead-letter topic '%s' refuses it: %s", where, p->dlq_topic,
		       dp_buf_str(&err));
	else if (st)
		dp_err("%s: cannot send to dead-letter topic '%s': %s", where, p->dlq_topic,
		       dp_buf_str(&err));
	else
		p->sent++;
	if (!st)
		dp_obs_count(DP_OBS_DEAD_LETTERS, dead_letter_labels,
		             (const char *const[]){ p->dlq_topic }, 1);
	dp_buf_free(&err);
	return st == DP_KAFKA_STOPPED ? DP_EX_TEMPFAIL : st;
}

void
dp_on_error_summary(const struct dp_on_error_policy *p, const char *what)
{
	const char *s = p->count == 1 ? "" : "s";

	if (!p->count || p->mode == DP_ON_ERROR_FAIL)
		return;
	if (p->mode == DP_ON_ERROR_SKIP)
		dp_warn("%llu bad %s%s skipped", (unsigned long long)p->count, what, s);
	else if (p->sent == p->count)
		dp_warn("%llu bad %s%s sent to the dead-letter topic '%s'",
		        (unsigned long long)p->count, what, s, p->dlq_topic);
	else
		dp_warn("%llu bad %s%s, %llu sent to the dead-letter topic '%s'",
		        (unsigned long long)p->count, what, s, (unsigned long long)p->sent,
		        p->dlq_topic);
}

/*
 * The pack, per header: its name and a NUL, one byte (1: a value
 * follows, 0: a null value), the value's length as a uint64_t in the
 * machine's order, the value.  Never leaves the process.
 */
int
dp_on_error_pack_headers(const rd_kafka_message_t *m, struct dp_buf *out)
{
	rd_kafka_headers_t *hdrs;
	const char *name;
	const void *value;
	size_t len;

	if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0;
	for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &len) ==
	                   RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
		unsigned char has = value != NULL;
		uint64_t n = value ? (uint64_t)len : 0;
		if (dp_buf_add(out, name, strlen(name) + 1) < 0 || dp_buf_add(out, &has, 1) < 0 ||
		    dp_buf_add(out, &n, sizeof(n)) < 0 || (n && dp_buf_add(out, value, len) < 0))
			return -1;
	}
	return 0;
}

int
dp_on_error_unpack_headers(const void *data, size_t len, struct dp_producer_header **hdrs,
                           size_t *n)
{
	const char *p = data, *end = p + len;

	while (p && p < end) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		uint64_t vlen;
		if (!nul || (size_t)(end - nul) < 1 + 1 + sizeof(vlen))
			return -1;
		unsigned char has = (unsigned char)nul[1];
		memcpy(&vlen, nul + 2, sizeof(vlen));
		const char *v = nul + 2 + sizeof(vlen);
		if (vlen > (uint64_t)(end - v))
			return -1;
		struct dp_producer_header *h = realloc(*hdrs, (*n + 1) * sizeof(*h));
		if (!h)
			return -1;
		*hdrs = h;
		h[(*n)++] = (struct dp_producer_header){ p, has ? v : NULL, (size_t)vlen };
		p = v + vlen;
	}
	return 0;
}
