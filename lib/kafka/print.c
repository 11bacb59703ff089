/*
 * kafka/print.c -- Kafka records as NDJSON lines (kafka/print.h).
 */
#include <stdlib.h>
#include <string.h>

#include "core/lines.h"
#include "core/out.h"
#include "jq/expr.h"
#include "json/base64.h"
#include "json/envelope.h"
#include "json/scan.h"
#include "kafka/print.h"
#include "obs/obs.h"

const char *const dp_non_json_names[] = { "error", "skip", "string", "base64", NULL };

struct dp_print {
	struct dp_print_conf conf;
	struct dp_print_stats stats;
	struct dp_buf line;     /* one record's JSON */
	struct dp_buf text;     /* raw: a string's decoded contents */
	struct dp_buf err;      /* the filter's message */
	bool nomem;             /* raw: a string could not be decoded */
	struct dp_series *obs_out;      /* dp_records_out_total; NULL: metrics off */
	uint64_t obs_told;              /* stats.printed when last told */
};

struct dp_print *
dp_print_new(const struct dp_print_conf *conf)
{
	struct dp_print *p = calloc(1, sizeof(*p));     /* buffers: DP_BUF_INIT */

	if (!p)
		return NULL;
	p->conf = *conf;
	p->obs_out = dp_metric_one(dp_obs_family(DP_OBS_RECORDS_OUT, NULL));
	return p;
}

void
dp_print_free(struct dp_print *p)
{
	if (!p)
		return;
	dp_buf_free(&p->line);
	dp_buf_free(&p->text);
	dp_buf_free(&p->err);
	free(p);
}

const struct dp_print_stats *
dp_print_stats(const struct dp_print *p)
{
	return &p->stats;
}

void
dp_print_observe(struct dp_print *p)
{
	if (!p || !p->obs_out || p->stats.printed == p->obs_told)
		return;
	dp_series_add(p->obs_out, (double)(p->stats.printed - p->obs_told));
	p->obs_told = p->stats.printed;
}

/*
 * One line to out: 0, 1 when count is reached (no more lines: it ends a
 * filter's results), -1 when out failed (or the sync point before it).
 */
static int
emit(void *ctx, const char *json, size_t len)
{
	struct dp_print *p = ctx;
	struct dp_out *out = p->conf.out;

	if (p->conf.count && p->stats.printed >= p->conf.count)
		return 1;
	if (p->conf.raw && json[0] == '"') {
		dp_buf_reset(&p->text);
		if (dp_json_unquote(&p->text, json, len) < 0) {
			p->nomem = true;
			return -1;
		}
		json = p->text.data;
		len = p->text.len;
	}
	/*
	 * A full buffer is written out at a sync point, so that a steady
	 * backlog still stores offsets as it goes, not only when idle.
	 */
	if (dp_out_room(out) < len + 1 && p->conf.sync && p->conf.sync(p->conf.arg) < 0)
		return -1;
	if (dp_out_write(out, json, len) < 0 || dp_out_write(out, "\n", 1) < 0)
		return -1;
	p->stats.printed++;
	return 0;
}

/* How a record's value turns out. */
enum value { V_LINE, V_DIRECT, V_SKIPPED, V_BAD, V_NOMEM };

/* "t [0] offset 12", naming a record in messages. */
static void
where(struct dp_buf *err, const rd_kafka_message_t *m)
{
	dp_buf_msgf(err, "%s [%d] offset %lld: ", rd_kafka_topic_name(m->rkt), (int)m->partition,
	            (long long)m->offset);
}

/*
 * The value of m (or its envelope) as one line of JSON text: into
 * p->line (V_LINE), or m's own bytes as they are (V_DIRECT), or nothing
 * (V_SKIPPED; V_BAD and V_NOMEM with the message in err).
 */
static enum value
value_json(struct dp_print *p, const rd_kafka_message_t *m, struct dp_buf *err)
{
	struct dp_buf *b = &p->line;
	const char *why;
	size_t off;
	int compact, rc;

	dp_buf_reset(b);
	if (p->conf.envelope) {
		rc = dp_envelope_write(b, m);
	} else if (!m->payload) {
		rc = dp_buf_add(b, "null", 4);
	} else if (dp_json_check_compact(m->payload, m->len, &why, &off, &compact) !=
	           DP_JSON_INVALID) {
		/* Compact payloads, the usual case, are printed without a copy. */
		if (compact && !p->conf.filter)
			return V_DIRECT;
		rc = dp_json_compact(b, m->payload, m->len);
	} else {
		switch (p->conf.non_json) {
		case DP_NON_JSON_ERROR:
			where(err, m);
			if (m->len == 0)        /* not "at byte 1": there is no byte */
				dp_buf_msgf(err, "value is not JSON (empty value); see --non-json");
			else
				dp_buf_msgf(err, "value is not JSON (%s at byte %zu); see --non-json",
				            why, off + 1);
			return V_BAD;
		case DP_NON_JSON_SKIP:
			p->stats.skipped++;
			return V_SKIPPED;
		case DP_NON_JSON_STRING:
			if (dp_utf8_check(m->payload, m->len, &why, &off) == 0) {
				rc = dp_json_quote(b, m->payload, m->len);
				break;
			}
			/* Not text: only base64 can carry it. */
			/* fall through */
		case DP_NON_JSON_BASE64:
		default:
			rc = dp_buf_addch(b, '"');
			if (rc == 0)
				rc = dp_base64_encode(b, m->payload, m->len);
			if (rc == 0)
				rc = dp_buf_addch(b, '"');
			break;
		}
	}
	if (rc < 0) {
		dp_buf_msgf(err, "out of memory");
		return V_NOMEM;
	}
	return V_LINE;
}

enum dp_print_result
dp_print_record(struct dp_print *p, const rd_kafka_message_t *m, struct dp_buf *err)
{
	int rc;

	p->stats.records++;
	switch (value_json(p, m, err)) {
	case V_BAD:
		return DP_PRINT_BAD;
	case V_NOMEM:
		return DP_PRINT_NOMEM;
	case V_SKIPPED:
		return DP_PRINT_OK;     /* handled: nothing to print */
	case V_DIRECT:
		rc = emit(p, m->payload, m->len);
		break;
	case V_LINE:
	default:
		if (!p->conf.filter) {
			rc = emit(p, p->line.data, p->line.len);
			break;
		}
		struct dp_expr_rec rec = DP_EXPR_REC(p->line.data, p->line.len);
		dp_buf_reset(&p->err);
		rc = dp_expr_each(p->conf.filter, &rec, emit, p, &p->err);
		dp_expr_rec_clear(&rec);
		if (rc < 0 && (p->err.len || p->err.lost)) {
			where(err, m);
			dp_buf_msgf(err, "--filter: %s", dp_buf_str(&p->err));
			return DP_PRINT_BAD;
		}
		break;
	}
	if (p->nomem) {
		p->nomem = false;
		dp_buf_msgf(err, "out of memory");
		return DP_PRINT_NOMEM;
	}
	if (rc < 0 && dp_out_error(p->conf.out))
		return DP_PRINT_OUT;
	if (p->conf.count && p->stats.printed >= p->conf.count)
		return DP_PRINT_COUNT;
	return DP_PRINT_OK;
}
