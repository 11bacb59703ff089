/*
 * cc/ws.h -- a WebSocket client (RFC 6455) on libwebsockets, one connection
 * at a time, driven from a single thread.
 *
 * The caller connects, sends text messages, and services the connection:
 * dp_ws_service() hands every complete text message to a callback and
 * returns when the callback asks it to, when nothing arrived for a given
 * time, when the connection ends, or when the stop flag (core/sig.h) is set.
 * Messages that arrive in one burst are handed out one by
 * one: a caller that stops after one message finds the next one at the
 * next call.  The handler runs from within libwebsockets' receive
 * callback (no copy of the message), so it must not call this module.
 * After a burst the "drained" callback runs, the moment to flush output.
 *
 * Every wait is cut into slices of at most DP_WS_SLICE_MS, so a signal
 * ends any of them within about that time.
 *
 * Secret headers (dp_ws_set_secret_header) go only into the upgrade
 * request: they are never logged, never put into messages, and wiped when
 * the client is freed.  libwebsockets' own log lines are passed to
 * dp_debug() (shown with -vv); they never carry header values at the
 * levels enabled here (errors, warnings, notices).
 *
 * wss:// URLs use TLS with the peer's certificate and host name checked
 * against the system's trust store.  Redirects are not followed.
 *
 * Nothing here exits; errors come back with a message in a dp_buf.
 */
#ifndef DP_WS_H
#define DP_WS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define DP_WS_SLICE_MS 200
#define DP_WS_MAX_MESSAGE ((size_t)1 << 20)    /* default; larger is an error */

struct dp_ws;

struct dp_ws_opts {
	const char *user_agent;          /* borrowed for the call */
	int64_t connect_timeout_ms;      /* TCP, TLS and upgrade together; 0: 10 s */
	size_t max_message;              /* 0: DP_WS_MAX_MESSAGE */
	const atomic_int *cancel;        /* borrowed; may be NULL */
};

enum dp_ws_result {
	DP_WS_OK = 0,
	DP_WS_STOP,        /* dp_ws_service: the message callback asked to stop */
	DP_WS_IDLE,        /* dp_ws_service: nothing arrived within idle_ms */
	DP_WS_CLOSED,      /* the connection ended: a close frame, a reset, EOF */
	DP_WS_REFUSED,     /* the upgrade was answered with HTTP dp_ws_http_status() */
	DP_WS_FAILED,      /* no connection: name, refused, timeout, TLS, protocol */
	DP_WS_CANCELLED,   /* *cancel became non-zero */
	DP_WS_ERROR,       /* out of memory, a message too large, a binary message */
};

/* A new client (caller frees with dp_ws_free), or NULL with a message in err. */
struct dp_ws *dp_ws_new(const struct dp_ws_opts *opts, struct dp_buf *err);
/* Closes a connection still open (without waiting) and frees; accepts NULL. */
void dp_ws_free(struct dp_ws *ws);

/*
 * Send "name: value" with every upgrade request.  Returns 0, or -1 when
 * value holds a control character (it could inject headers) or memory runs
 * out; the message never contains the value.
 */
int dp_ws_set_secret_header(struct dp_ws *ws, const char *name, const char *value,
                            struct dp_buf *err);

/*
 * Check that url is ws://HOST[:PORT][/PATH[?QUERY]] or wss://...: 0, or -1
 * with the reason in err.  dp_ws_connect() checks the same.
 */
int dp_ws_check_url(const char *url, struct dp_buf *err);

/*
 * Connect to url and complete the upgrade, waiting at most the connect
 * timeout.  Any earlier connection is dropped first, and queued messages
 * with it.  Returns DP_WS_OK, or DP_WS_REFUSED, DP_WS_FAILED,
 * DP_WS_CANCELLED or DP_WS_ERROR with a message in err (it names the URL,
 * which must not carry secrets).
 */
int dp_ws_connect(struct dp_ws *ws, const char *url, struct dp_buf *err);

/* The HTTP status of the last refused upgrade (DP_WS_REFUSED), else 0. */
long dp_ws_http_status(const struct dp_ws *ws);

/*
 * Queue one text message for sending; it goes out during the next
 * dp_ws_service() or dp_ws_flush().  Returns 0, or -1 (not connected, out
 * of memory) with a message in err.
 */
int dp_ws_send(struct dp_ws *ws, const char *text, size_t n, struct dp_buf *err);

struct dp_ws_handler {
	/* A complete text message (borrowed until the call returns).  0 goes
	 * on; anything else ends dp_ws_service() with DP_WS_STOP. */
	int (*message)(void *arg, const char *msg, size_t n);
	/* After a burst of messages, when none is queued; may be NULL.  0 goes
	 * on; anything else ends dp_ws_service() with DP_WS_STOP. */
	int (*drained)(void *arg);
	void *arg;
};

/*
 * Service the connection: send what is queued, receive and hand messages
 * to h until h asks to stop (DP_WS_STOP), until no message has arrived for
 * idle_ms (DP_WS_IDLE; idle_ms <= 0: never), until the connection ends
 * (DP_WS_CLOSED, err says how: the close code and reason, or a reset), or
 * until *cancel (DP_WS_CANCELLED).  DP_WS_ERROR with err for a message
 * over the size limit or a binary one.
 */
int dp_ws_service(struct dp_ws *ws, int64_t idle_ms, const struct dp_ws_handler *h,
                  struct dp_buf *err);

/* Send what is queued, waiting at most wait_ms.  Returns as dp_ws_service. */
int dp_ws_flush(struct dp_ws *ws, int64_t wait_ms, struct dp_buf *err);

/*
 * Close the connection cleanly: a close frame with code 1000, then wait at
 * most wait_ms for the server's answer.  Queued messages are dropped.
 * Does nothing when not connected.
 */
void dp_ws_close(struct dp_ws *ws, int64_t wait_ms);

/* Monotonic milliseconds of the last message received (0: none yet). */
int64_t dp_ws_last_message_ms(const struct dp_ws *ws);

#endif
