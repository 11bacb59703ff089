/*
 * obs/endpoint.h -- the HTTP endpoint a running command answers on:
 * --metrics HOST:PORT serves GET /metrics, /healthz and /readyz (obs/obs.h
 * says what each page holds).
 *
 * The server is libmicrohttpd (Debian's libmicrohttpd12), in a thread of
 * its own: a scrape never waits for the command's work, and the work never
 * waits for a scrape.  The endpoint knows only paths and pages; each page
 * is a function that fills a body and returns an HTTP status.  GET and
 * HEAD are answered, any other method is 405, an unknown path 404.
 *
 * The address is bound here, before libmicrohttpd is started, so that a
 * failure names the address and its reason and becomes the exit status of
 * its cause: an address that is taken (EADDRINUSE, another process or
 * instance listens there) DP_EX_UNAVAILABLE; one that cannot be used (no
 * such host, not an address of this machine, a privileged port)
 * DP_EX_CONFIG.
 *
 * Threads: pages run on the server's thread, one request at a time; they
 * must only read what other threads publish atomically or under a lock
 * (obs/metrics.h, obs/health.h).  Signals SIGINT, SIGTERM and SIGALRM are
 * blocked in the server's thread, so that they reach the command's.
 *
 * Sources: libmicrohttpd 0.9.75 (microhttpd.h: MHD_OPTION_LISTEN_SOCKET,
 * MHD_USE_INTERNAL_POLLING_THREAD, MHD_create_response_from_buffer_with_free_callback).
 */
#ifndef DP_ENDPOINT_H
#define DP_ENDPOINT_H

#include <stddef.h>

#include "core/buf.h"

/*
 * A page: fill body (empty on entry) and say its content type (a
 * literal); return the HTTP status (200, 503, ...), or 500 when memory
 * ran out.
 */
typedef int (*dp_endpoint_page_fn)(void *arg, struct dp_buf *body, const char **type);

struct dp_endpoint_page {
	const char *path;               /* "/metrics"; borrowed */
	dp_endpoint_page_fn answer;
	void *arg;
};

struct dp_endpoint;

/*
 * Check the syntax of an address: HOST:PORT, [IPV6]:PORT, or :PORT (every
 * address of this machine); PORT 0 to 65535 (0: one the system picks).
 * 0, or -1 with the reason in err ("expected HOST:PORT").
 */
int dp_endpoint_check(const char *addr, struct dp_buf *err);

/*
 * Bind addr and serve pages (n of them; the array and what it points
 * to are borrowed and must outlive the endpoint).  Returns the endpoint
 * (dp_endpoint_stop frees it), or NULL with a message in err naming the
 * address and *status set: DP_EX_UNAVAILABLE (taken), DP_EX_CONFIG
 * (cannot be used), DP_EX_SOFTWARE (out of memory, no thread).
 */
struct dp_endpoint *dp_endpoint_start(const char *addr, const struct dp_endpoint_page *pages,
                                      size_t n, struct dp_buf *err, int *status);

/* The address bound, "127.0.0.1:9464" or "[::1]:9464" (the port the system picked
 * for :0); borrowed, valid while the endpoint lives. */
const char *dp_endpoint_address(const struct dp_endpoint *e);

/* Stop serving (a request in progress is finished first) and free e.  Accepts NULL. */
void dp_endpoint_stop(struct dp_endpoint *e);

#endif
