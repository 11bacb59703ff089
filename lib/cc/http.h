/*
 * cc/http.h -- a small HTTP GET client on libcurl's easy interface.
 *
 * One struct dp_http holds one curl handle, so consecutive requests to
 * the same server reuse the connection.  Requests have a total timeout
 * and a connect timeout, follow no redirects (a redirect could carry a
 * secret header elsewhere), speak only http and https, accept gzip and
 * deflate, and cap the body size.
 *
 * Secret headers (dp_http_set_secret_header) are never logged by this
 * module, never put into error messages, and their memory is wiped when
 * the handle is freed.  CURLOPT_VERBOSE is never enabled.
 *
 * A transfer can be cancelled from a signal handler: when *cancel (see
 * struct dp_http_opts) becomes non-zero, the running request stops within
 * about a second and dp_http_get() returns -1 with resp->cancelled set.
 *
 * Nothing here exits; errors are returned with a message in a dp_buf.
 */
#ifndef DP_HTTP_H
#define DP_HTTP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct dp_http;

struct dp_http_opts {
	const char *user_agent;                /* borrowed; copied by curl */
	long timeout_ms;                       /* whole request; 0: none */
	long connect_timeout_ms;               /* 0: curl's default (300 s) */
	size_t max_body;                       /* 0: 64 MiB */
	const atomic_int *cancel;              /* borrowed; may be NULL */
};

/*
 * The longest Retry-After passed on.  A server may send any number
 * (RFC 9110 10.2.3 sets no limit; curl hands on up to 2^63-1 seconds),
 * and such a value turned into milliseconds overflows.  To a client a day
 * and a century mean the same: not now.
 */
#define DP_HTTP_RETRY_AFTER_MAX_MS (INT64_C(86400) * 1000)

struct dp_http_resp {
	long status;            /* HTTP status; 0 when no response arrived */
	struct dp_buf body;     /* the (decoded) body; owned, dp_http_resp_free */
	int64_t retry_after_ms; /* Retry-After (seconds or an HTTP date) in ms,
	                           at most DP_HTTP_RETRY_AFTER_MAX_MS; -1 absent */
	int transient;          /* after a failure: trying again may help */
	int cancelled;          /* the transfer was cancelled via *cancel */
	long elapsed_ms;        /* total time of the request */
};

#define DP_HTTP_RESP_INIT { 0, DP_BUF_INIT, -1, 0, 0, 0 }

/* Once per process, before any other call; returns 0 or -1. */
int dp_http_global_init(void);
void dp_http_global_cleanup(void);

/*
 * A new client (caller frees with dp_http_free).  On failure returns NULL
 * and appends a message to err.  opts is copied; its strings are borrowed
 * only for the duration of the call.
 */
struct dp_http *dp_http_new(const struct dp_http_opts *opts, struct dp_buf *err);
void dp_http_free(struct dp_http *h);

/*
 * Add "name: value" to every request.  The header is treated as secret:
 * never logged, wiped on free.  Returns 0, or -1 when value contains a
 * control character (it could inject headers) or memory runs out; the
 * message in err never contains the value.
 */
int dp_http_set_secret_header(struct dp_http *h, const char *name, const char *value,
                              struct dp_buf *err);

/*
 * GET url.  The response is stored in *resp (reset first; the caller
 * frees it with dp_http_resp_free).  Returns 0 when the server answered,
 * whatever the HTTP status, and -1 when no complete response arrived
 * (connection refused, timeout, truncated transfer, body too large,
 * cancelled): then err says what failed (it names url, which must not
 * carry secrets) and resp->transient tells whether a retry may help.
 */
int dp_http_get(struct dp_http *h, const char *url, struct dp_http_resp *resp,
                struct dp_buf *err);

void dp_http_resp_free(struct dp_http_resp *resp);

/* Append s percent-encoded for a URL query value (RFC 3986 unreserved kept). */
int dp_http_escape(struct dp_buf *out, const char *s) DP_MUST_CHECK;

#endif
