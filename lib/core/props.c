/*
 * core/props.c -- librdkafka properties from -X and -F, and the settings
 * a Kafka client is made from (core/props.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/props.h"

static int
add(struct dp_kv **kv, size_t *n, const char *key, size_t klen, const char *value)
{
	struct dp_kv *p;

	if (klen == 0)
		return -1;
	p = realloc(*kv, (*n + 1) * sizeof(**kv));
	if (!p)
		return -1;
	*kv = p;
	p[*n].key = strndup(key, klen);
	p[*n].value = strdup(value);
	if (!p[*n].key || !p[*n].value) {
		free(p[*n].key);
		free(p[*n].value);
		return -1;
	}
	(*n)++;
	return 0;
}

int
dp_kv_add(struct dp_kv **kv, size_t *n, const char *pair)
{
	const char *eq = strchr(pair, '=');

	return eq ? add(kv, n, pair, (size_t)(eq - pair), eq + 1) : -1;
}

int
dp_kv_add_pair(struct dp_kv **kv, size_t *n, const char *key, const char *value)
{
	return add(kv, n, key, strlen(key), value);
}

int
dp_kv_put(struct dp_kv **kv, size_t *n, const char *pair)
{
	const char *eq = strchr(pair, '=');

	if (!eq || eq == pair)
		return -1;
	for (size_t i = 0; i < *n; i++)
		if (strlen((*kv)[i].key) == (size_t)(eq - pair) &&
		    strncmp((*kv)[i].key, pair, (size_t)(eq - pair)) == 0) {
			char *v = strdup(eq + 1);
			if (!v)
				return -1;
			free((*kv)[i].value);
			(*kv)[i].value = v;
			return 0;
		}
	return dp_kv_add(kv, n, pair);
}

void
dp_kv_free(struct dp_kv *kv, size_t n)
{
	if (!kv)
		return;
	for (size_t i = 0; i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

int
dp_kv_is_secret(const char *key)
{
	static const char *const words[] = { "password", "secret", "sasl.",
		"key", "token", "credential", "oauthbearer", NULL };

	for (int i = 0; words[i]; i++)
		if (strstr(key, words[i]))
			return 1;
	return 0;
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int
dp_props_read(const char *path, struct dp_kv **kv, size_t *n, struct dp_buf *err)
{
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	unsigned long lineno = 0;
	int rc = 0;

	if (!fp) {
		dp_buf_msgf(err, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, fp) >= 0) {
		char *s = trim(line), *eq;
		lineno++;
		if (!*s || *s == '#' || *s == '!')
			continue;
		eq = strchr(s, '=');
		if (!eq)
			eq = strchr(s, ':');
		if (!eq || eq == s) {
			dp_buf_msgf(err, "%s:%lu: expected key=value", path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		char *k = trim(s), *v = trim(eq + 1);
		struct dp_buf pair = DP_BUF_INIT;
		rc = dp_buf_addf(&pair, "%s=%s", k, v);
		if (rc == 0)
			rc = dp_kv_add(kv, n, pair.data);
		dp_buf_free(&pair);
		if (rc < 0) {
			dp_buf_msgf(err, "%s:%lu: out of memory", path, lineno);
			break;
		}
	}
	if (rc == 0 && ferror(fp)) {
		dp_buf_msgf(err, "cannot read %s: %s", path, strerror(errno));
		rc = -1;
	}
	free(line);
	fclose(fp);
	return rc;
}
