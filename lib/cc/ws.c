/*
 * cc/ws.c -- the WebSocket client of cc/ws.h on libwebsockets (Debian's
 * libwebsockets-dev, 4.1).
 *
 * libwebsockets runs everything from lws_service(): connecting, the
 * upgrade, reading and writing frames, and it calls callback() for each
 * event.  The callback only records the end of a connection into the
 * state; a complete message goes straight to the caller's handler while
 * dp_ws_service() runs and the handler did not ask to stop, else into a
 * queue that the next dp_ws_service() hands out first.  The loops here call
 * lws_service() until what they wait for happened, and a timer that fires
 * every DP_WS_SLICE_MS keeps lws_service() from sleeping longer than that,
 * so the stop flag and the deadlines are looked at in time.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "cc/ws.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/timefmt.h"

enum wstate { W_NONE, W_CONNECTING, W_OPEN, W_DONE };

/* The pieces of a ws:// or wss:// URL; host and path owned. */
struct url {
	bool tls;
	char *host;             /* without [] around an IPv6 address */
	int port;
	char *path;             /* "/..." with the query */
};


static void
url_free(struct url *u)
{
	free(u->host);
	free(u->path);
	u->host = u->path = NULL;
}

struct dp_ws {
	struct lws_context *ctx;
	struct lws *wsi;
	const atomic_int *cancel;
	int64_t connect_timeout_ms;
	size_t max_message;
	char *user_agent;
	char *hname;                /* "name:" as libwebsockets wants it; owned */
	char *hvalue;               /* secret; wiped and freed */
	lws_sorted_usec_list_t tick;

	/* the current connection */
	enum wstate st;
	char *url;                  /* as given, for messages */
	struct url u;
	int result;                 /* how it ended: DP_WS_CLOSED, _FAILED, _REFUSED, _ERROR */
	long http_status;
	struct dp_buf why;          /* what ended it */
	int64_t opened_ms;          /* monotonic time of the upgrade */
	int64_t last_msg_ms;        /* ... and of the last message */
	bool got;                   /* a message came in this lws_service() */

	/* receiving: the message being put together, and the queue of complete
	 * ones, each a uint32_t length and the bytes */
	struct dp_buf frag;
	struct dp_buf queue;
	size_t qhead;
	const struct dp_ws_handler *h;   /* while dp_ws_service() runs */
	bool stopped;               /* h asked to stop: queue the rest */
	bool delivered;             /* h had a message in this lws_service() */

	/* sending: the same layout */
	struct dp_buf out;
	size_t ohead;
	bool want_close;
};

static void
wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* libwebsockets' log lines: -vv only; they never carry header values. */
static void
lws_log(int level, const char *line)
{
	size_t n = strlen(line);

	(void)level;
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	dp_debug("libwebsockets: %.*s", (int)n, line);
}

static void
tick(lws_sorted_usec_list_t *sul)
{
	struct dp_ws *ws = lws_container_of(sul, struct dp_ws, tick);

	lws_sul_schedule(ws->ctx, 0, &ws->tick, tick, DP_WS_SLICE_MS * LWS_US_PER_MS);
}

static void
ended(struct dp_ws *ws, int result)
{
	if (ws->st != W_DONE) {
		ws->st = W_DONE;
		ws->result = result;
	}
	ws->wsi = NULL;
}

static int
push(struct dp_buf *q, const void *p, size_t n)
{
	uint32_t len = (uint32_t)n;

	if (n > UINT32_MAX || dp_buf_grow(q, sizeof(len) + n) < 0)
		return -1;
	memcpy(q->data + q->len, &len, sizeof(len));
	memcpy(q->data + q->len + sizeof(len), p, n);
	q->len += sizeof(len) + n;
	q->data[q->len] = '\0';
	return 0;
}

static int
on_receive(struct dp_ws *ws, struct lws *wsi, const void *in, size_t len)
{
	/* Most messages come whole in one call: no copy then. */
	bool whole = ws->frag.len == 0 && lws_is_final_fragment(wsi) &&
	             lws_remaining_packet_payload(wsi) == 0;
	const char *msg = in;
	size_t n = len;

	if (ws->frag.len + len > ws->max_message) {
		dp_buf_reset(&ws->why);
		dp_buf_msgf(&ws->why, "a message of more than %zu bytes from %s", ws->max_message,
		            ws->url);
		ws->st = W_DONE;
		ws->result = DP_WS_ERROR;
		return -1;              /* libwebsockets drops the connection */
	}
	if (!whole) {
		if (dp_buf_add(&ws->frag, in, len) < 0)
			goto oom;
		if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
			return 0;
		msg = ws->frag.data ? ws->frag.data : "";
		n = ws->frag.len;
	}
	ws->got = true;
	if (ws->h && !ws->stopped) {
		ws->delivered = true;
		ws->stopped = ws->h->message(ws->h->arg, msg, n) != 0;
	} else if (push(&ws->queue, msg, n) < 0) {
		goto oom;
	}
	dp_buf_reset(&ws->frag);
	return 0;
oom:
	dp_buf_reset(&ws->why);
	dp_buf_msgf(&ws->why, "out of memory");
	ws->st = W_DONE;
	ws->result = DP_WS_ERROR;
	return -1;
}

static int
on_writeable(struct dp_ws *ws, struct lws *wsi)
{
	uint32_t len;
	unsigned char *b;
	int r;

	if (ws->want_close) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		return -1;
	}
	if (ws->ohead >= ws->out.len)
		return 0;
	memcpy(&len, ws->out.data + ws->ohead, sizeof(len));
	/* lws_write() wants LWS_PRE bytes of room before the payload. */
	if (!(b = malloc(LWS_PRE + (size_t)len + 1)))
		return -1;
	memcpy(b + LWS_PRE, ws->out.data + ws->ohead + sizeof(len), len);
	r = lws_write(wsi, b + LWS_PRE, len, LWS_WRITE_TEXT);
	free(b);
	if (r < (int)len)
		return -1;
	ws->ohead += sizeof(len) + len;
	if (ws->ohead >= ws->out.len) {
		dp_buf_reset(&ws->out);
		ws->ohead = 0;
	} else {
		lws_callback_on_writable(wsi);
	}
	return 0;
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct dp_ws *ws = lws_context_user(lws_get_context(wsi));
	unsigned char **p, *end;

	(void)user;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		p = in;
		end = *p + len;
		if (ws->hname && lws_add_http_header_by_name(wsi, (const unsigned char *)ws->hname,
		        (const unsigned char *)ws->hvalue, (int)strlen(ws->hvalue), p, end))
			return -1;
		if (ws->user_agent && lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_USER_AGENT,
		        (const unsigned char *)ws->user_agent, (int)strlen(ws->user_agent), p, end))
			return -1;
		break;
	case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH:
		ws->http_status = (long)lws_http_client_http_response(wsi);
		break;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		ws->st = W_OPEN;
		ws->opened_ms = dp_time_mono_ms();
		if (ws->ohead < ws->out.len)
			lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (ws->st == W_DONE)
			break;
		ws->http_status = (long)lws_http_client_http_response(wsi);
		dp_buf_reset(&ws->why);
		if (ws->http_status > 0 && ws->http_status != 101) {
			dp_buf_msgf(&ws->why, "HTTP %ld from %s", ws->http_status, ws->url);
			ended(ws, DP_WS_REFUSED);
		} else {
			dp_buf_msgf(&ws->why, "cannot connect to %s: %.*s", ws->url,
			            in ? (int)len : 12, in ? (const char *)in : "unknown error");
			ended(ws, DP_WS_FAILED);
		}
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return on_receive(ws, wsi, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writeable(ws, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		dp_buf_reset(&ws->why);
		if (len >= 2) {
			const unsigned char *c = in;
			dp_buf_msgf(&ws->why, "%s closed the connection (code %u%s%.*s%s)", ws->url,
			            (unsigned)(c[0] << 8 | c[1]), len > 2 ? ": \"" : "",
			            (int)(len > 2 ? (len - 2 > 200 ? 200 : len - 2) : 0),
			            (const char *)in + 2, len > 2 ? "\"" : "");
		} else {
			dp_buf_msgf(&ws->why, "%s closed the connection", ws->url);
		}
		ws->result = DP_WS_CLOSED;
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (ws->st != W_DONE && !ws->why.len)
			dp_buf_msgf(&ws->why, "the connection to %s was lost", ws->url);
		ended(ws, DP_WS_CLOSED);
		break;
	case LWS_CALLBACK_WSI_DESTROY:
		if (ws && ws->wsi == wsi) {
			if (ws->st != W_DONE && !ws->why.len)
				dp_buf_msgf(&ws->why, "the connection to %s was lost", ws->url);
			ended(ws, ws->st == W_CONNECTING ? DP_WS_FAILED : DP_WS_CLOSED);
		}
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{ "dp-ws", callback, 0, 65536, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

struct dp_ws *
dp_ws_new(const struct dp_ws_opts *o, struct dp_buf *err)
{
	struct lws_context_creation_info info;
	struct dp_ws *ws = calloc(1, sizeof(*ws));

	if (!ws || (o->user_agent && !(ws->user_agent = strdup(o->user_agent)))) {
		dp_buf_msgf(err, "out of memory");
		free(ws);
		return NULL;
	}
	ws->cancel = o->cancel;
	ws->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
	ws->max_message = o->max_message ? o->max_message : DP_WS_MAX_MESSAGE;
	lws_set_log_level(dp_log_level() >= DP_LOG_DEBUG ? LLL_ERR | LLL_WARN | LLL_NOTICE : 0,
	                  lws_log);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.gid = -1;
	info.uid = -1;
	info.user = ws;
	info.fd_limit_per_thread = 8;
	info.pt_serv_buf_size = 65536;
	info.timeout_secs = (unsigned)((ws->connect_timeout_ms + 999) / 1000);
	info.connect_timeout_secs = info.timeout_secs;
	ws->ctx = lws_create_context(&info);
	if (!ws->ctx) {
		dp_buf_msgf(err, "cannot set up libwebsockets");
		free(ws->user_agent);
		free(ws);
		return NULL;
	}
	tick(&ws->tick);
	return ws;
}

/* Drop the connection at once, without a close frame. */
static void
drop(struct dp_ws *ws)
{
	if (ws->wsi) {
		struct lws *wsi = ws->wsi;
		ws->st = W_DONE;
		lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
		ws->wsi = NULL;
	}
}

void
dp_ws_free(struct dp_ws *ws)
{
	if (!ws)
		return;
	drop(ws);
	lws_sul_cancel(&ws->tick);
	lws_context_destroy(ws->ctx);
	free(ws->user_agent);
	free(ws->hname);
	wipe_free(ws->hvalue);
	free(ws->url);
	url_free(&ws->u);
	dp_buf_free(&ws->why);
	dp_buf_free(&ws->frag);
	dp_buf_free(&ws->queue);
	dp_buf_free(&ws->out);
	free(ws);
}

int
dp_ws_set_secret_header(struct dp_ws *ws, const char *name, const char *value,
                        struct dp_buf *err)
{
	struct dp_buf n = DP_BUF_INIT;
	char *v;

	for (const char *c = value; *c; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			dp_buf_msgf(err, "the %s header has a control character", name);
			return -1;
		}
	}
	/* libwebsockets wants the name in lower case with its colon. */
	for (const char *c = name; *c; c++)
		if (dp_buf_addch(&n, (char)tolower((unsigned char)*c)) < 0)
			goto oom;
	if (dp_buf_addch(&n, ':') < 0 || !(v = strdup(value)))
		goto oom;
	free(ws->hname);
	wipe_free(ws->hvalue);
	ws->hname = dp_buf_detach(&n, NULL);
	ws->hvalue = v;
	return 0;
oom:
	dp_buf_free(&n);
	dp_buf_msgf(err, "out of memory");
	return -1;
}

static int
parse_url(const char *url, struct url *u, struct dp_buf *err)
{
	const char *h, *end, *hend, *colon = NULL;
	struct dp_buf path = DP_BUF_INIT;

	memset(u, 0, sizeof(*u));
	if (strncmp(url, "ws://", 5) == 0) {
		h = url + 5;
	} else if (strncmp(url, "wss://", 6) == 0) {
		u->tls = true;
		h = url + 6;
	} else {
		dp_buf_msgf(err, "invalid URL '%s': expected ws:// or wss://", url);
		return -1;
	}
	for (const char *c = url; *c; c++) {
		if ((unsigned char)*c <= ' ' || *c == 0x7f || *c == '#') {
			dp_buf_msgf(err, "invalid URL '%s': no spaces or fragment", url);
			return -1;
		}
	}
	end = h + strcspn(h, "/?");
	if (memchr(h, '@', (size_t)(end - h))) {
		dp_buf_msgf(err, "invalid URL '%s': no user name or password in it", url);
		return -1;
	}
	hend = end;
	if (*h == '[') {
		const char *close = memchr(h, ']', (size_t)(end - h));
		if (!close || (close + 1 < end && close[1] != ':')) {
			dp_buf_msgf(err, "invalid URL '%s': bad [IPv6] host", url);
			return -1;
		}
		colon = close + 1 < end ? close + 1 : NULL;
		hend = close;
		h++;
	} else if ((colon = memchr(h, ':', (size_t)(end - h))) != NULL) {
		hend = colon;
	}
	u->port = u->tls ? 443 : 80;
	if (colon) {
		long v = 0;
		const char *c = colon + 1;
		for (; c < end && *c >= '0' && *c <= '9' && v <= 65535; c++)
			v = v * 10 + (*c - '0');
		if (c != end || c == colon + 1 || v < 1 || v > 65535) {
			dp_buf_msgf(err, "invalid URL '%s': bad port", url);
			return -1;
		}
		u->port = (int)v;
	}
	if (hend == h) {
		dp_buf_msgf(err, "invalid URL '%s': no host", url);
		return -1;
	}
	if ((*end != '/' && dp_buf_addch(&path, '/') < 0) || dp_buf_addstr(&path, end) < 0 ||
	    !(u->host = strndup(h, (size_t)(hend - h)))) {
		dp_buf_free(&path);
		dp_buf_msgf(err, "out of memory");
		return -1;
	}
	u->path = dp_buf_detach(&path, NULL);
	return 0;
}

int
dp_ws_check_url(const char *url, struct dp_buf *err)
{
	struct url u;
	int r = parse_url(url, &u, err);

	url_free(&u);
	return r;
}

static bool
cancelled(const struct dp_ws *ws)
{
	return ws->cancel && atomic_load(ws->cancel);
}

static void
reset_conn(struct dp_ws *ws)
{
	drop(ws);
	ws->st = W_NONE;
	ws->result = 0;
	ws->http_status = 0;
	ws->want_close = false;
	dp_buf_reset(&ws->why);
	dp_buf_reset(&ws->frag);
	dp_buf_reset(&ws->queue);
	ws->qhead = 0;
	dp_buf_reset(&ws->out);
	ws->ohead = 0;
	ws->last_msg_ms = 0;
}

int
dp_ws_connect(struct dp_ws *ws, const char *url, struct dp_buf *err)
{
	struct lws_client_connect_info ci;
	int64_t deadline;

	reset_conn(ws);
	url_free(&ws->u);
	free(ws->url);
	if (!(ws->url = strdup(url))) {
		dp_buf_msgf(err, "out of memory");
		return DP_WS_ERROR;
	}
	if (parse_url(url, &ws->u, err) < 0)
		return DP_WS_FAILED;
	memset(&ci, 0, sizeof(ci));
	ci.context = ws->ctx;
	ci.address = ws->u.host;
	ci.port = ws->u.port;
	ci.ssl_connection = ws->u.tls ? LCCSCF_USE_SSL : 0;
	ci.path = ws->u.path;
	ci.host = ws->u.host;
	ci.origin = ws->u.host;
	ci.local_protocol_name = protocols[0].name;
	ci.pwsi = &ws->wsi;
	ws->st = W_CONNECTING;
	deadline = dp_time_mono_ms() + ws->connect_timeout_ms;
	if (!lws_client_connect_via_info(&ci) && ws->st == W_CONNECTING) {
		dp_buf_msgf(&ws->why, "cannot connect to %s", url);
		ended(ws, DP_WS_FAILED);
	}
	while (ws->st == W_CONNECTING) {
		if (cancelled(ws)) {
			drop(ws);
			dp_buf_msgf(err, "cancelled");
			return DP_WS_CANCELLED;
		}
		if (dp_time_mono_ms() >= deadline) {
			char d[48];
			drop(ws);
			dp_buf_msgf(err, "no WebSocket connection to %s within %s", url,
			            dp_duration_format(ws->connect_timeout_ms, d));
			return DP_WS_FAILED;
		}
		lws_service(ws->ctx, 0);
	}
	if (ws->st == W_OPEN)
		return DP_WS_OK;
	dp_buf_msgf(err, "%s", ws->why.len ? dp_buf_str(&ws->why) : "cannot connect");
	return ws->result ? ws->result : DP_WS_FAILED;
}

long
dp_ws_http_status(const struct dp_ws *ws)
{
	return ws->result == DP_WS_REFUSED ? ws->http_status : 0;
}

int64_t
dp_ws_last_message_ms(const struct dp_ws *ws)
{
	return ws->last_msg_ms;
}

int
dp_ws_send(struct dp_ws *ws, const char *text, size_t n, struct dp_buf *err)
{
	if (ws->st != W_OPEN || !ws->wsi) {
		dp_buf_msgf(err, "not connected");
		return -1;
	}
	if (push(&ws->out, text, n) < 0) {
		dp_buf_msgf(err, "out of memory");
		return -1;
	}
	lws_callback_on_writable(ws->wsi);
	return 0;
}

/* The end of the connection as a result, with err. */
static int
end_result(struct dp_ws *ws, struct dp_buf *err)
{
	dp_buf_msgf(err, "%s", ws->why.len ? dp_buf_str(&ws->why) : "the connection was lost");
	return ws->result ? ws->result : DP_WS_CLOSED;
}

static int
service(struct dp_ws *ws, int64_t idle_ms, const struct dp_ws_handler *h, struct dp_buf *err)
{
	bool burst = false;

	for (;;) {
		while (ws->qhead < ws->queue.len) {
			uint32_t len;
			const char *msg = ws->queue.data + ws->qhead + sizeof(len);
			memcpy(&len, ws->queue.data + ws->qhead, sizeof(len));
			ws->qhead += sizeof(len) + len;
			burst = true;
			if (h->message(h->arg, msg, len) != 0)
				return DP_WS_STOP;
		}
		dp_buf_reset(&ws->queue);
		ws->qhead = 0;
		if (burst && h->drained && h->drained(h->arg) != 0)
			return DP_WS_STOP;
		burst = false;
		if (ws->st != W_OPEN)
			return end_result(ws, err);
		if (cancelled(ws)) {
			dp_buf_msgf(err, "cancelled");
			return DP_WS_CANCELLED;
		}
		if (idle_ms > 0) {
			int64_t last = ws->last_msg_ms > ws->opened_ms ? ws->last_msg_ms : ws->opened_ms;
			if (dp_time_mono_ms() - last >= idle_ms) {
				dp_buf_msgf(err, "no message from %s for %lld ms", ws->url,
				            (long long)idle_ms);
				return DP_WS_IDLE;
			}
		}
		ws->got = false;
		ws->stopped = ws->delivered = false;
		lws_service(ws->ctx, 0);
		/* One clock reading per burst, not per message. */
		if (ws->got)
			ws->last_msg_ms = dp_time_mono_ms();
		if (ws->stopped)
			return DP_WS_STOP;
		burst = ws->delivered;
	}
}

int
dp_ws_service(struct dp_ws *ws, int64_t idle_ms, const struct dp_ws_handler *h,
              struct dp_buf *err)
{
	int r;

	ws->h = h;
	r = service(ws, idle_ms, h, err);
	ws->h = NULL;
	return r;
}

int
dp_ws_flush(struct dp_ws *ws, int64_t wait_ms, struct dp_buf *err)
{
	int64_t deadline = dp_time_mono_ms() + wait_ms;

	while (ws->ohead < ws->out.len) {
		if (ws->st != W_OPEN)
			return end_result(ws, err);
		if (cancelled(ws)) {
			dp_buf_msgf(err, "cancelled");
			return DP_WS_CANCELLED;
		}
		if (dp_time_mono_ms() >= deadline) {
			dp_buf_msgf(err, "cannot send to %s within %lld ms", ws->url,
			            (long long)wait_ms);
			return DP_WS_IDLE;
		}
		lws_service(ws->ctx, 0);
	}
	return DP_WS_OK;
}

void
dp_ws_close(struct dp_ws *ws, int64_t wait_ms)
{
	int64_t deadline = dp_time_mono_ms() + wait_ms;

	if (ws->st != W_OPEN || !ws->wsi) {
		drop(ws);
		return;
	}
	ws->want_close = true;
	dp_buf_reset(&ws->out);
	ws->ohead = 0;
	lws_callback_on_writable(ws->wsi);
	/* A second signal ends the process (core/sig.h): the stop flag does not cut this. */
	while (ws->st == W_OPEN && dp_time_mono_ms() < deadline)
		lws_service(ws->ctx, 0);
	drop(ws);
}
