#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "exit.h"
#include "kafka.h"
#include "log.h"
#include "timefmt.h"

static void
on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
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
		dp_buf_addf(err, "invalid kafka property '%s' (value not shown)", key);
	else
		dp_buf_addf(err, "invalid kafka property '%s': %s", key, errstr);
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
dp_kafka_conf_new(const struct dp_common *c, const struct dp_kv *defaults,
                  size_t ndefaults, struct dp_buf *err, int *status)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	struct dp_kv *file = NULL;
	size_t nfile = 0;
	char id[64];

	*status = DP_EX_CONFIG;
	if (!conf) {
		dp_buf_addstr(err, "out of memory");
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
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_log_cb(conf, on_log);
	dp_kv_free(file, nfile);
	*status = 0;
	return conf;
fail:
	dp_kv_free(file, nfile);
	rd_kafka_conf_destroy(conf);
	return NULL;
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

/* One metadata request; see dp_kafka_probe. */
static int
probe_once(rd_kafka_t *rk, const char *topic, int timeout_ms, int *partitions,
           struct dp_buf *err)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = NULL;
	rd_kafka_resp_err_t e;

	if (topic) {
		rkt = rd_kafka_topic_new(rk, topic, NULL);
		if (!rkt) {
			dp_buf_addf(err, "invalid topic '%s': %s", topic,
			            rd_kafka_err2str(rd_kafka_last_error()));
			return DP_EX_INVALID;
		}
	}
	e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
	if (rkt)
		rd_kafka_topic_destroy(rkt);
	if (e) {
		if (e == RD_KAFKA_RESP_ERR__TRANSPORT || e == RD_KAFKA_RESP_ERR__TIMED_OUT)
			dp_buf_addf(err, "no kafka broker answered within %d ms",
			            timeout_ms);
		else
			dp_buf_addf(err, "cannot get kafka metadata: %s", rd_kafka_err2str(e));
		return dp_kafka_exit_status(e);
	}
	int status = 0;
	if (topic) {
		if (md->topic_cnt != 1 || md->topics[0].err) {
			rd_kafka_resp_err_t te = md->topic_cnt == 1 ? md->topics[0].err :
			                         RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
			if (te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
			    te == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
				dp_buf_addf(err, "topic '%s' does not exist", topic);
				status = DP_EX_NOTFOUND;
			} else {
				dp_buf_addf(err, "topic '%s': %s", topic, rd_kafka_err2str(te));
				status = dp_kafka_exit_status(te);
			}
		} else if (partitions) {
			*partitions = md->topics[0].partition_cnt;
		}
	}
	rd_kafka_metadata_destroy(md);
	return status;
}

int
dp_kafka_probe(rd_kafka_t *rk, const char *topic, int timeout_ms, int *partitions,
               struct dp_buf *err)
{
	/*
	 * A topic created a moment ago may not be in every broker's metadata
	 * yet: look again for a little while before calling it missing.
	 */
	int64_t deadline = dp_time_mono_ms() + (timeout_ms < 1500 ? timeout_ms : 1500);
	size_t mark = err->len;

	for (;;) {
		int st = probe_once(rk, topic, timeout_ms, partitions, err);
		if (st != DP_EX_NOTFOUND || dp_time_mono_ms() >= deadline)
			return st;
		err->len = mark;
		if (err->data)
			err->data[mark] = '\0';
		struct timespec ts = { 0, 100 * 1000000L };
		nanosleep(&ts, NULL);
	}
}
