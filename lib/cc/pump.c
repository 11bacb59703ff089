/*
 * cc/pump.c -- one streamer connection's messages through the engine
 * (cc/stream.h, "One connection's messages"): cc/ws.h receives, cc/stream.c
 * reads and prints, and this decides when the caller's state machine has
 * something to do.
 */
#include "cc/stream.h"
#include "cc/ws.h"
#include "core/log.h"
#include "core/out.h"
#include "core/parse.h"
#include "core/progress.h"
#include "core/timefmt.h"

#define CLOSE_WAIT_MS 300      /* for the server's answer to our close */

struct pump {
	struct dp_ccs *c;
	struct dp_ws *ws;
	struct dp_out *out;
	bool until_subscribed;
	struct dp_progress *prog;
	struct dp_buf *why;
	enum dp_ccs_end end;
	int64_t now;            /* the wall clock of this burst; 0: not read yet */
};

static int
on_message(void *arg, const char *msg, size_t n)
{
	struct pump *p = arg;

	/* One clock reading per burst: messages of a burst came together. */
	if (!p->now)
		p->now = dp_time_now_ms();
	switch (dp_ccs_message(p->c, msg, n, p->now)) {
	case DP_CCS_NOTHING:
		return 0;
	case DP_CCS_SUBSCRIBED:
		if (!p->until_subscribed)
			return 0;
		p->end = DP_CCS_END_SUBSCRIBED;
		return 1;
	case DP_CCS_ALL_REFUSED:
		p->end = DP_CCS_END_REFUSED;
		return 1;
	case DP_CCS_UNAUTHORIZED:
		p->end = DP_CCS_END_UNAUTHORIZED;
		dp_buf_msgf(p->why, "%s", dp_ccs_reason(p->c));
		return 1;
	case DP_CCS_RATELIMITED:
	case DP_CCS_RECONNECT:
		p->end = DP_CCS_END_LOST;
		dp_buf_msgf(p->why, "%s", dp_ccs_reason(p->c));
		return 1;
	case DP_CCS_OUTPUT:
		p->end = DP_CCS_END_OUTPUT;
		return 1;
	case DP_CCS_DONE:
		p->end = DP_CCS_END_DONE;
		return 1;
	default:
		p->end = DP_CCS_END_NOMEM;
		return 1;
	}
}

/* After a burst of messages: hand the records on. */
static int
on_drained(void *arg)
{
	struct pump *p = arg;
	char extra[200];

	p->now = 0;
	dp_ccs_observe(p->c);
	if (p->out && dp_out_flush(p->out) < 0) {
		p->end = DP_CCS_END_OUTPUT;
		return 1;
	}
	if (p->prog)
		dp_progress_tick(p->prog, "records", dp_ccs_stats(p->c)->records,
		                 dp_ccs_stats_line(p->c, extra, sizeof(extra)), false);
	return 0;
}

enum dp_ccs_end
dp_ccs_pump(struct dp_ccs *c, struct dp_ws *ws, bool until_subscribed, int64_t idle_ms,
            struct dp_progress *prog, struct dp_buf *why)
{
	struct pump p = { c, ws, dp_ccs_output(c), until_subscribed, prog, why, DP_CCS_END_LOST, 0 };
	const struct dp_ws_handler h = { on_message, on_drained, &p };
	struct dp_buf err = DP_BUF_INIT;
	char d[48];

	switch (dp_ws_service(ws, idle_ms, &h, &err)) {
	case DP_WS_STOP:
		break;
	case DP_WS_CANCELLED:
		p.end = DP_CCS_END_STOPPED;
		break;
	case DP_WS_IDLE:
		/* A stale connection answers no close either. */
		dp_buf_msgf(why, "no message for %s (--idle-timeout)", dp_duration_format(idle_ms, d));
		dp_ws_close(ws, 0);
		break;
	default:
		dp_buf_msgf(why, "%s", dp_buf_str(&err));
		break;
	}
	dp_buf_free(&err);
	/* Records of a burst cut short by the end are handed on now, not with the next burst. */
	if (p.end != DP_CCS_END_OUTPUT && p.out && dp_out_flush(p.out) < 0)
		p.end = DP_CCS_END_OUTPUT;
	if (p.end != DP_CCS_END_SUBSCRIBED)
		dp_ws_close(ws, CLOSE_WAIT_MS);
	return p.end;
}
