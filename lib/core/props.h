/*
 * core/props.h -- librdkafka properties (-X KEY=VALUE, -F FILE) and the
 * settings a Kafka client is made from.
 *
 * struct dp_kafka_opts is what every Kafka engine (kafka/client.h,
 * kafka/producer.h, kafka/consumer.h, dyn/registry.h) takes: the command fills it
 * from its command line (core/cli.h's dp_common.kafka), a test or
 * another program fills it by hand.  It says nothing of librdkafka
 * itself, so it lives here, below both.
 */
#ifndef DP_PROPS_H
#define DP_PROPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* One librdkafka property from -X or a -F file (strings owned). */
struct dp_kv {
	char *key;
	char *value;
};

/* Where a Kafka client connects and how long it tries; every pointer is
 * borrowed from whoever filled it and outlives the clients made from it. */
struct dp_kafka_opts {
	const char *brokers;     /* bootstrap.servers, unless props set it */
	const char *config_file; /* a properties file (-F, $DP_CONFIG), or NULL */
	struct dp_kv *props;     /* -X pairs in command-line order (the command owns them) */
	size_t nprops;
	int64_t timeout_ms;      /* give up on an unreachable cluster after this */
	const char *timeout_arg; /* timeout_ms as the user typed it, for messages; or NULL */
};

/*
 * Read a Java-style properties file (key=value, # or ! comments, blank
 * lines) and append its pairs to *kv (owned by the caller; free with
 * dp_kv_free).  On error appends "FILE:LINE: reason" to err.
 */
int dp_props_read(const char *path, struct dp_kv **kv, size_t *n, struct dp_buf *err);
/* Split "key=value" and append; -1 when there is no '=' or no key. */
int dp_kv_add(struct dp_kv **kv, size_t *n, const char *pair);
/* Append a copy of key and value (key not empty); -1 when out of memory. */
int dp_kv_add_pair(struct dp_kv **kv, size_t *n, const char *key, const char *value);
/* The same, but a key already there gets the new value (-c, last one wins). */
int dp_kv_put(struct dp_kv **kv, size_t *n, const char *pair);
void dp_kv_free(struct dp_kv *kv, size_t n);

/* 1 when a property's value must never be printed (passwords, keys). */
int dp_kv_is_secret(const char *key);

#endif
