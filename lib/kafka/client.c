/*
 * kafka/client.c -- clients, the connecting step, waits that a signal cuts
 * short, and Kafka errors as exit statuses (kafka/client.h).
 */
#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "kafka/client.h"

void
dp_kafka_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	/* Transport errors repeat while librdkafka retries; -v shows them. */
	if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
	    err == RD_KAFKA_RESP_ERR__RESOLVE)
		dp_info("kafka: %s", reason);
	else
		dp_warn("kafka: %s", reason);
}

static void
on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	if (level <= LOG_WARNING)
		dp_info("kafka %s: %s", fac, buf);
	else
		dp_debug("kafka %s: %s", fac, buf);
}


int
dp_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                  struct dp_buf *err)
{
	char errstr[512];

	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK)
		return 0;
	if (dp_kv_is_secret(key))
		dp_buf_msgf(err, "invalid kafka property '%s' (value not shown)", key);
	else
		dp_buf_msgf(err, "invalid kafka property '%s': %s", key, errstr);
	return -1;
}

static int
has_key(const struct dp_kv *kv, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(kv[i].key, key) == 0)
			return 1;
	return 0;
}

rd_kafka_conf_t *
dp_kafka_conf_new(const struct dp_kafka_opts *c, const struct dp_kv *defaults,
                  size_t ndefaults, struct dp_buf *err, int *status)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	struct dp_kv *file = NULL;
	size_t nfile = 0;
	char id[64];

	*status = DP_EX_CONFIG;
	if (!conf) {
		dp_buf_msgf(err, "out of memory");
		*status = DP_EX_SOFTWARE;
		return NULL;
	}
	snprintf(id, sizeof(id), "%s", dp_log_progname());
	if (dp_kafka_conf_set(conf, "client.id", id, err) < 0)
		goto fail;
	if (dp_log_level() >= DP_LOG_DEBUG &&
	    dp_kafka_conf_set(conf, "log_level", "7", err) < 0)
		goto fail;
	for (size_t i = 0; i < ndefaults; i++)
		if (dp_kafka_conf_set(conf, defaults[i].key, defaults[i].value, err) < 0)
			goto fail;
	if (c->config_file && dp_props_read(c->config_file, &file, &nfile, err) < 0) {
		*status = DP_EX_NOINPUT;
		goto fail;
	}
	for (size_t i = 0; i < nfile; i++)
		if (dp_kafka_conf_set(conf, file[i].key, file[i].value, err) < 0)
			goto fail;
	for (size_t i = 0; i < c->nprops; i++)
		if (dp_kafka_conf_set(conf, c->props[i].key, c->props[i].value, err) < 0)
			goto fail;
	if (!has_key(c->props, c->nprops, "bootstrap.servers") &&
	    !has_key(c->props, c->nprops, "metadata.broker.list") &&
	    !has_key(file, nfile, "bootstrap.servers") &&
	    !has_key(file, nfile, "metadata.broker.list") &&
	    dp_kafka_conf_set(conf, "bootstrap.servers", c->brokers, err) < 0)
		goto fail;
	rd_kafka_conf_set_error_cb(conf, dp_kafka_on_error);
	rd_kafka_conf_set_log_cb(conf, on_log);
	dp_kv_free(file, nfile);
	*status = 0;
	return conf;
fail:
	dp_kv_free(file, nfile);
	rd_kafka_conf_destroy(conf);
	return NULL;
}



const char *
dp_kafka_conf_str(const rd_kafka_conf_t *conf, const char *key, char *buf, size_t size)
{
	size_t len = size;

	if (rd_kafka_conf_get(conf, key, buf, &len) != RD_KAFKA_CONF_OK || !*buf)
		return NULL;
	return buf;
}

rd_kafka_t *
dp_kafka_new(const struct dp_kafka_opts *c, rd_kafka_type_t type, const struct dp_kv *defaults,
             size_t ndefaults,
             int (*configure)(rd_kafka_conf_t *conf, void *arg, struct dp_buf *err),
             void *arg, struct dp_buf *err, int *status)
{
	rd_kafka_conf_t *conf = dp_kafka_conf_new(c, defaults, ndefaults, err, status);
	char errstr[512];
	rd_kafka_t *rk;

	if (!conf)
		return NULL;
	if (configure && configure(conf, arg, err) < 0) {
		rd_kafka_conf_destroy(conf);
		*status = DP_EX_CONFIG;
		return NULL;
	}
	rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
	if (!rk) {
		/* rd_kafka_new destroys conf only on success. */
		rd_kafka_conf_destroy(conf);
		dp_buf_msgf(err, "cannot create kafka client: %s", errstr);
		*status = DP_EX_CONFIG;
		return NULL;
	}
	*status = 0;
	return rk;
}

int
dp_kafka_exit_status(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_NO_ERROR:
		return DP_EX_OK;
	case RD_KAFKA_RESP_ERR__AUTHENTICATION:
	case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
		return DP_EX_NOPERM;
	case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
		return DP_EX_EXISTS;
	/* The one status of a missing topic, in every command (core/exit.h). */
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
	case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
		return DP_EX_NOTFOUND;
	case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
	case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
	case RD_KAFKA_RESP_ERR_INVALID_REQUEST:
		return DP_EX_INVALID;
	case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
		return DP_EX_CAPACITY;
	case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
		return DP_EX_CONFIG;
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_INVALID_MSG:
	case RD_KAFKA_RESP_ERR__INVALID_ARG:
		return DP_EX_DATAERR;
	default:
		return DP_EX_UNAVAILABLE;
	}
}

int
dp_kafka_retriable(rd_kafka_resp_err_t err)
{
	switch (err) {
	/* Retriable by the protocol (RetriableException's subclasses). */
	case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
	case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
	case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
	case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
	case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
	case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
	case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
	case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
	case RD_KAFKA_RESP_ERR_NOT_CONTROLLER:
	case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
	case RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND:
	case RD_KAFKA_RESP_ERR_INVALID_FETCH_SESSION_EPOCH:
	case RD_KAFKA_RESP_ERR_LISTENER_NOT_FOUND:
	case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
	case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
	case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_PREFERRED_LEADER_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT:
	case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
	case RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS:
	/* librdkafka's own: the request may simply be sent again. */
	case RD_KAFKA_RESP_ERR__TRANSPORT:
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
	case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
	case RD_KAFKA_RESP_ERR__WAIT_COORD:
		return 1;
	default:
		return 0;
	}
}

/* Sleep ms, in slices; 0, or -1 when a signal came. */
static int
nap(int64_t ms)
{
	while (ms > 0) {
		if (dp_sig_stop)
			return -1;
		int64_t d = ms < 100 ? ms : 100;
		struct timespec ts = { 0, (long)d * 1000000L };
		nanosleep(&ts, NULL);
		ms -= d;
	}
	return dp_sig_stop ? -1 : 0;
}

static int
slice(int64_t deadline)
{
	int64_t left = deadline - dp_time_mono_ms();

	if (left < 1)
		return 1;
	return left < DP_KAFKA_SLICE_MS ? (int)left : DP_KAFKA_SLICE_MS;
}

static rd_kafka_resp_err_t
metadata(rd_kafka_t *rk, int all, rd_kafka_topic_t *rkt, int64_t deadline,
         const struct rd_kafka_metadata **md, int *stopped)
{
	rd_kafka_resp_err_t e;

	*stopped = 0;
	do {
		if (dp_sig_stop) {
			*stopped = 1;
			return RD_KAFKA_RESP_ERR__TIMED_OUT;
		}
		/*
		 * A request that times out here is simply asked again: the
		 * connection librdkafka opened meanwhile is kept, so a slow
		 * first handshake costs a slice or two, not the whole wait.
		 */
		e = rd_kafka_metadata(rk, all, rkt, md, slice(deadline));
	} while ((e == RD_KAFKA_RESP_ERR__TIMED_OUT || e == RD_KAFKA_RESP_ERR__TRANSPORT) &&
	         dp_time_mono_ms() < deadline && nap(e == RD_KAFKA_RESP_ERR__TRANSPORT ? 100 : 0) == 0);
	if (dp_sig_stop && e) {
		*stopped = 1;
	}
	return e;
}

rd_kafka_resp_err_t
dp_kafka_metadata(rd_kafka_t *rk, int all_topics, rd_kafka_topic_t *only, int timeout_ms,
                  const struct rd_kafka_metadata **md, int *stopped)
{
	return metadata(rk, all_topics, only, dp_time_mono_ms() + timeout_ms, md, stopped);
}

/*
 * One look at the topic (or the cluster); see dp_kafka_probe.  With led,
 * a partition without a leader is reported as LEADER_NOT_AVAILABLE.
 */
static int
probe_once(rd_kafka_t *rk, const char *topic, int64_t deadline, const char *within,
           int led, int *partitions, struct dp_buf *err, rd_kafka_resp_err_t *terr)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = NULL;
	rd_kafka_resp_err_t e;
	int stopped;

	*terr = 0;
	if (topic) {
		rkt = rd_kafka_topic_new(rk, topic, NULL);
		if (!rkt) {
			dp_buf_msgf(err, "invalid topic '%s': %s", topic,
			            rd_kafka_err2str(rd_kafka_last_error()));
			return DP_EX_INVALID;
		}
	}
	e = metadata(rk, 0, rkt, deadline, &md, &stopped);
	if (rkt)
		rd_kafka_topic_destroy(rkt);
	if (stopped)
		return DP_KAFKA_STOPPED;
	if (e) {
		if (e == RD_KAFKA_RESP_ERR__TRANSPORT || e == RD_KAFKA_RESP_ERR__TIMED_OUT)
			dp_buf_msgf(err, "no kafka broker answered within %s", within);
		else
			dp_buf_msgf(err, "cannot get kafka metadata: %s", rd_kafka_err2str(e));
		return dp_kafka_exit_status(e);
	}
	int status = 0;
	if (topic) {
		rd_kafka_resp_err_t te = md->topic_cnt == 1 ? md->topics[0].err
		                                            : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
		*terr = te;
		if (te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || te == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
			dp_buf_msgf(err, "topic '%s' does not exist; create it with 'dp-topic create %s'",
			            topic, topic);
			status = DP_EX_NOTFOUND;
		} else if (te) {
			dp_buf_msgf(err, "topic '%s': %s", topic, rd_kafka_err2str(te));
			status = dp_kafka_exit_status(te);
		} else {
			const rd_kafka_metadata_topic_t *mt = &md->topics[0];
			for (int i = 0; led && !status && i < mt->partition_cnt; i++)
				if (mt->partitions[i].leader < 0 || mt->partitions[i].err) {
					*terr = mt->partitions[i].err ? mt->partitions[i].err
					        : RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
					dp_buf_msgf(err, "topic '%s' partition %d: %s", topic,
					            (int)mt->partitions[i].id, rd_kafka_err2str(*terr));
					status = dp_kafka_exit_status(*terr);
				}
			if (!status && partitions)
				*partitions = mt->partition_cnt;
		}
	}
	rd_kafka_metadata_destroy(md);
	return status;
}

/*
 * Probe until it succeeds, or it fails for good, or timeout_ms.  created:
 * the topic is known to exist (this process created it), so "missing" and
 * partitions without a leader are waited out as long as any other
 * retriable error.
 */
static int
probe(rd_kafka_t *rk, const char *topic, int timeout_ms, const char *within, int created,
      int *partitions, struct dp_buf *err)
{
	int64_t start = dp_time_mono_ms(), deadline = start + timeout_ms;
	/*
	 * A topic created a moment ago may not be in every broker's metadata
	 * yet: look again for a little while before calling it missing.
	 */
	int64_t missing_until = created ? deadline
	                        : start + (timeout_ms < DP_KAFKA_PROPAGATION_MS
	                                   ? timeout_ms : DP_KAFKA_PROPAGATION_MS);
	size_t mark = err->len;

	for (;;) {
		rd_kafka_resp_err_t te;
		int st = probe_once(rk, topic, deadline, within, created, partitions, err, &te);
		int64_t now = dp_time_mono_ms();
		if (st == 0 || st == DP_KAFKA_STOPPED)
			return st;
		if (st == DP_EX_NOTFOUND ? now >= missing_until
		                         : !te || !dp_kafka_retriable(te) || now >= deadline)
			return st;
		dp_buf_truncate(err, mark);
		if (nap(100) < 0)
			return DP_KAFKA_STOPPED;
	}
}

int
dp_kafka_probe(rd_kafka_t *rk, const char *topic, int timeout_ms, int *partitions,
               struct dp_buf *err)
{
	char within[48];

	return probe(rk, topic, timeout_ms, dp_duration_format(timeout_ms, within), 0, partitions,
	             err);
}

int
dp_kafka_await_topic(rd_kafka_t *rk, const char *topic, int timeout_ms, int *partitions,
                     struct dp_buf *err)
{
	char within[48];

	return probe(rk, topic, timeout_ms, dp_duration_format(timeout_ms, within), 1, partitions,
	             err);
}

/*
 * 1 when no bootstrap broker's host name resolves, for good (not a
 * resolver that failed for now); the first host and the reason go to err.
 * librdkafka would only say "all brokers are down" after the timeout.
 */
static int
unresolvable(const char *list, struct dp_buf *err)
{
	char *copy = strdup(list), *save = NULL, *tok;
	int all = 1, any = 0;
	const char *why = NULL;
	char first[256] = "";

	if (!copy)
		return 0;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *h = tok, *end;
		while (isspace((unsigned char)*h))
			h++;
		char *scheme = strstr(h, "://");
		if (scheme)
			h = scheme + 3;
		if (*h == '[') {
			end = strchr(++h, ']');
		} else {
			end = strrchr(h, ':');
		}
		if (end)
			*end = '\0';
		end = h + strlen(h);
		while (end > h && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (!*h)
			continue;
		any = 1;
		struct addrinfo hints, *res = NULL;
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		int rc = getaddrinfo(h, NULL, &hints, &res);
		if (res)
			freeaddrinfo(res);
		if (rc == 0 || (rc != EAI_NONAME && rc != EAI_FAIL)) {
			all = 0;
			break;
		}
		if (!*first) {
			snprintf(first, sizeof(first), "%s", h);
			why = gai_strerror(rc);
		}
	}
	if (any && all)
		dp_buf_msgf(err, "cannot resolve kafka broker '%s': %s (brokers %s)", first, why,
		            list);
	free(copy);
	return any && all;
}

int
dp_kafka_connect(rd_kafka_t *rk, const struct dp_kafka_opts *c, const char *const *topics,
                 size_t n, int *partitions, struct dp_buf *err)
{
	char list[1024];
	const char *brokers = dp_kafka_conf_str(rd_kafka_conf(rk), "bootstrap.servers", list,
	                                        sizeof(list));
	char fmt[48];
	const char *within = c->timeout_arg ? c->timeout_arg : dp_duration_format(c->timeout_ms, fmt);
	int64_t deadline = dp_time_mono_ms() + c->timeout_ms;
	int st;

	if (!brokers)
		brokers = c->brokers;
	if (unresolvable(brokers, err))
		return DP_EX_UNAVAILABLE;
	st = probe(rk, NULL, (int)c->timeout_ms, within, 0, NULL, err);
	for (size_t i = 0; st == 0 && i < n; i++) {
		int64_t left = deadline - dp_time_mono_ms();
		st = probe(rk, topics[i], left > 1000 ? (int)left : 1000, within, 0,
		           partitions ? &partitions[i] : NULL, err);
	}
	if (st == DP_EX_UNAVAILABLE)
		dp_buf_msgf(err, " (brokers %s)", brokers);
	return st;
}

/*
 * A partition's earliest (RD_KAFKA_OFFSET_BEGINNING) or next
 * (RD_KAFKA_OFFSET_END) offset, asked of its leader once and waited for
 * at most ms.  Through rd_kafka_offsets_for_times(), which sends the
 * same ListOffsets request: librdkafka before 2.3 waits for the answer
 * of rd_kafka_query_watermark_offsets() without a deadline (librdkafka
 * #4460), so a leader killed after the last metadata kept it asking the
 * dead broker until that broker was back, whatever the timeout and the
 * signals.
 */
static rd_kafka_resp_err_t
list_offset(rd_kafka_t *rk, const char *topic, int32_t partition, int64_t which, int ms,
            int64_t *offset)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_resp_err_t e;

	rd_kafka_topic_partition_list_add(l, topic, partition)->offset = which;
	e = rd_kafka_offsets_for_times(rk, l, ms);
	if (!e)
		e = l->elems[0].err;
	if (!e)
		*offset = l->elems[0].offset;
	rd_kafka_topic_partition_list_destroy(l);
	return e;
}

/*
 * Ask for the topic's metadata, so that librdkafka's cache, where its
 * look-ups find a partition's leader, names the leader of now: the
 * cache of a client that does not fetch the partition is not refreshed
 * when its leader dies (librdkafka #4225, before 2.3).
 */
static void
refresh_leaders(rd_kafka_t *rk, const char *topic, int64_t deadline)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;

	if (!rkt)
		return;
	if (rd_kafka_metadata(rk, 0, rkt, &md, slice(deadline)) == 0)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
}

/*
 * How long one ListOffsets request may take.  A consumer's connection to
 * the leader carries its fetches, and the broker answers a connection's
 * requests in turn, so the answer can come fetch.wait.max.ms late: a
 * shorter wait would give up on every answer and ask again behind the
 * next fetch.  Not longer, so that a signal still ends the wait soon.
 */
static int
offsets_wait(rd_kafka_t *rk, int64_t deadline)
{
	char v[32];
	size_t len = sizeof(v);
	long fetch_wait = 500;
	int64_t left = deadline - dp_time_mono_ms(), ms;

	if (rd_kafka_conf_get(rd_kafka_conf(rk), "fetch.wait.max.ms", v, &len) == RD_KAFKA_CONF_OK)
		fetch_wait = strtol(v, NULL, 10);
	ms = fetch_wait + 500 > DP_KAFKA_SLICE_MS ? fetch_wait + 500 : DP_KAFKA_SLICE_MS;
	return left < 1 ? 1 : left < ms ? (int)left : (int)ms;
}

int
dp_kafka_watermarks(rd_kafka_t *rk, const char *topic, int32_t partition, int timeout_ms,
                    int64_t *low, int64_t *high, struct dp_buf *err)
{
	int64_t deadline = dp_time_mono_ms() + timeout_ms;
	rd_kafka_resp_err_t e;

	for (;;) {
		if (dp_sig_stop)
			return DP_KAFKA_STOPPED;
		e = list_offset(rk, topic, partition, RD_KAFKA_OFFSET_BEGINNING,
		                offsets_wait(rk, deadline), low);
		if (!e && !dp_sig_stop)
			e = list_offset(rk, topic, partition, RD_KAFKA_OFFSET_END,
			                offsets_wait(rk, deadline), high);
		if (!e && !dp_sig_stop)
			return 0;
		if (dp_sig_stop)
			return DP_KAFKA_STOPPED;
		if (!dp_kafka_retriable(e) || dp_time_mono_ms() >= deadline)
			break;
		/* A leader that died or moved: the next try asks the new one. */
		refresh_leaders(rk, topic, deadline);
		if (e != RD_KAFKA_RESP_ERR__TIMED_OUT && nap(50) < 0)
			return DP_KAFKA_STOPPED;
	}
	dp_buf_msgf(err, "cannot get offsets of %s [%d]: %s", topic, (int)partition,
	            rd_kafka_err2str(e));
	return dp_kafka_exit_status(e);
}

/*
 * One of librdkafka's blocking per-partition look-ups (offsets for times,
 * committed offsets), in slices.  Each slice asks again with a fresh copy
 * of the list, since the call overwrites its offsets.
 */
static int
lookup(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list, int timeout_ms,
       rd_kafka_resp_err_t (*fn)(rd_kafka_t *, rd_kafka_topic_partition_list_t *, int),
       const char *what, struct dp_buf *err)
{
	int64_t deadline = dp_time_mono_ms() + timeout_ms;
	rd_kafka_topic_partition_list_t *q;
	rd_kafka_resp_err_t e;

	for (;;) {
		if (dp_sig_stop)
			return DP_KAFKA_STOPPED;
		q = rd_kafka_topic_partition_list_copy(list);
		e = fn(rk, q, slice(deadline));
		for (int i = 0; !e && i < q->cnt; i++)
			if (dp_kafka_retriable(q->elems[i].err))
				e = q->elems[i].err;
		if (!e) {
			for (int i = 0; i < list->cnt; i++) {
				list->elems[i].offset = q->elems[i].offset;
				list->elems[i].err = q->elems[i].err;
			}
			rd_kafka_topic_partition_list_destroy(q);
			return 0;
		}
		rd_kafka_topic_partition_list_destroy(q);
		if (!dp_kafka_retriable(e) || dp_time_mono_ms() >= deadline)
			break;
		if (e != RD_KAFKA_RESP_ERR__TIMED_OUT && nap(50) < 0)
			return DP_KAFKA_STOPPED;
	}
	dp_buf_msgf(err, "cannot look up %s: %s", what, rd_kafka_err2str(e));
	return dp_kafka_exit_status(e);
}

int
dp_kafka_offsets_for_times(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list,
                           int timeout_ms, struct dp_buf *err)
{
	return lookup(rk, list, timeout_ms, rd_kafka_offsets_for_times, "offsets by time", err);
}

int
dp_kafka_committed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list, int timeout_ms,
                   struct dp_buf *err)
{
	return lookup(rk, list, timeout_ms, rd_kafka_committed, "committed offsets", err);
}

rd_kafka_event_t *
dp_kafka_queue_wait(rd_kafka_queue_t *q, int timeout_ms, int *stopped)
{
	int64_t deadline = dp_time_mono_ms() + timeout_ms;
	rd_kafka_event_t *ev;

	*stopped = 0;
	for (;;) {
		if (dp_sig_stop) {
			*stopped = 1;
			return NULL;
		}
		ev = rd_kafka_queue_poll(q, slice(deadline));
		if (ev || dp_time_mono_ms() >= deadline)
			return ev;
	}
}

const char *
dp_kafka_version(void)
{
	static char v[64];

	if (!v[0])
		snprintf(v, sizeof(v), "librdkafka %s", rd_kafka_version_str());
	return v;
}
