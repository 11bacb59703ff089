/*
 * obs/endpoint.c -- GET /metrics, /healthz, /readyz over libmicrohttpd
 * (obs/endpoint.h).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <microhttpd.h>

#include "core/exit.h"
#include "core/log.h"
#include "obs/endpoint.h"

struct dp_endpoint {
	struct MHD_Daemon *d;
	int fd;
	const struct dp_endpoint_page *pages;
	size_t n;
	char address[INET6_ADDRSTRLEN + 16];
};

/*
 * Split addr into host (NULL for every address) and port, in buf (at
 * least strlen(addr) + 1 bytes).  0, or -1 with why.
 */
static int
split(const char *addr, char *buf, const char **host, const char **port, const char **why)
{
	char *colon, *end;
	unsigned long v;

	strcpy(buf, addr);
	*host = NULL;
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');
		if (!close || close[1] != ':') {
			*why = "expected [IPV6]:PORT";
			return -1;
		}
		*close = '\0';
		*host = buf + 1;
		colon = close + 1;
	} else if (!(colon = strrchr(buf, ':'))) {
		*why = "expected HOST:PORT or :PORT";
		return -1;
	} else {
		*colon = '\0';
		if (buf[0])
			*host = buf;
		if (strchr(buf, ':')) {
			*why = "an IPv6 address goes in brackets: [::1]:PORT";
			return -1;
		}
	}
	*port = colon + 1;
	errno = 0;
	v = strtoul(*port, &end, 10);
	if (!**port || *end || **port < '0' || **port > '9' || errno || v > 65535) {
		*why = "the port must be a number from 0 to 65535";
		return -1;
	}
	if (*host && !**host) {
		*why = "the host is empty";
		return -1;
	}
	return 0;
}

int
dp_endpoint_check(const char *addr, struct dp_buf *err)
{
	char *buf = malloc(strlen(addr) + 1);
	const char *host, *port, *why = NULL;
	int rc;

	if (!buf) {
		dp_buf_msgf(err, "out of memory");
		return -1;
	}
	if ((rc = split(addr, buf, &host, &port, &why)) < 0)
		dp_buf_msgf(err, "%s", why);
	free(buf);
	return rc;
}

/* "host:port" of a bound socket, brackets around IPv6. */
static void
name_of(int fd, char *out, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		snprintf(out, n, "?");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		port = ntohs(a->sin6_port);
		snprintf(out, n, "[%s]:%u", ip, port);
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		port = ntohs(a->sin_port);
		snprintf(out, n, "%s:%u", ip, port);
	}
}

/* The first address of addr that binds: a listening socket, or -1 with why and *status. */
static int
bind_listen(const char *addr, struct dp_buf *err, int *status)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
	                          .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res = NULL;
	char *buf = malloc(strlen(addr) + 1);
	const char *host, *port, *why = NULL;
	int fd = -1, e = 0, rc;

	*status = DP_EX_CONFIG;
	if (!buf) {
		dp_buf_msgf(err, "out of memory");
		*status = DP_EX_SOFTWARE;
		return -1;
	}
	if (split(addr, buf, &host, &port, &why) < 0) {
		dp_buf_msgf(err, "invalid --metrics address '%s': %s", addr, why);
		free(buf);
		return -1;
	}
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		dp_buf_msgf(err, "cannot listen on %s for metrics: %s", addr,
		            rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		free(buf);
		return -1;
	}
	for (const struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
		int one = 1;
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		/* A restart must not wait for the old instance's TIME_WAIT sockets. */
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 64) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	free(buf);
	if (fd < 0) {
		dp_buf_msgf(err, "cannot listen on %s for metrics: %s", addr, strerror(e));
		*status = e == EADDRINUSE ? DP_EX_UNAVAILABLE : DP_EX_CONFIG;
	}
	return fd;
}

static void
free_body(void *p)
{
	free(p);
}

/* Queue a response of status with body (taken), type, and extra header name: value. */
static enum MHD_Result
respond(struct MHD_Connection *conn, int status, struct dp_buf *body, const char *type,
        const char *name, const char *value)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	r = MHD_create_response_from_buffer_with_free_callback(body->len, body->data, free_body);
	if (!r) {
		dp_buf_free(body);
		return MHD_NO;
	}
	*body = (struct dp_buf)DP_BUF_INIT;     /* the response owns the text now */
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) == MHD_NO ||
	    (name && MHD_add_response_header(r, name, value) == MHD_NO)) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	rc = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **state)
{
	static int seen;
	struct dp_endpoint *e = cls;
	struct dp_buf body = DP_BUF_INIT;
	const char *type = "text/plain; charset=utf-8";
	int status;

	/* The first call has the headers only: answer on the next one, after any body. */
	if (!*state) {
		*state = &seen;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		if (dp_buf_addstr(&body, "only GET and HEAD\n") < 0)
			return MHD_NO;
		return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, &body, type,
		               MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	}
	for (size_t i = 0; i < e->n; i++) {
		if (strcmp(url, e->pages[i].path) != 0)
			continue;
		status = e->pages[i].answer(e->pages[i].arg, &body, &type);
		if (body.lost) {
			dp_buf_reset(&body);
			status = MHD_HTTP_INTERNAL_SERVER_ERROR;
			type = "text/plain; charset=utf-8";
			if (dp_buf_addstr(&body, "out of memory\n") < 0)
				return MHD_NO;
		}
		return respond(conn, status, &body, type, NULL, NULL);
	}
	/* Anything else: what there is, so that a browser pointed at the port finds it. */
	for (size_t i = 0; i < e->n; i++)
		if (dp_buf_addf(&body, "%s%s", i ? " " : "not found; try ", e->pages[i].path) < 0)
			return MHD_NO;
	if (dp_buf_addch(&body, '\n') < 0)
		return MHD_NO;
	return respond(conn, MHD_HTTP_NOT_FOUND, &body, type, NULL, NULL);
}

/* libmicrohttpd's own complaints (a client that hung up): only at -vv. */
static void
on_log(void *arg, const char *fmt, va_list ap)
{
	char line[256];
	size_t n;

	if (dp_log_level() < DP_LOG_DEBUG)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	dp_debug("metrics endpoint: %s", line);
}

struct dp_endpoint *
dp_endpoint_start(const char *addr, const struct dp_endpoint_page *pages, size_t n,
                  struct dp_buf *err, int *status)
{
	struct dp_endpoint *e = calloc(1, sizeof(*e));
	sigset_t block, old;

	if (!e) {
		dp_buf_msgf(err, "out of memory");
		*status = DP_EX_SOFTWARE;
		return NULL;
	}
	e->pages = pages;
	e->n = n;
	if ((e->fd = bind_listen(addr, err, status)) < 0) {
		free(e);
		return NULL;
	}
	name_of(e->fd, e->address, sizeof(e->address));
	/* The server's thread inherits this mask: the command's thread takes the signals. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	e->d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	                        on_request, e,
	                        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)e->fd,
	                        MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
	                        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
	                        MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
	                        MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!e->d) {
		dp_buf_msgf(err, "cannot serve metrics on %s: libmicrohttpd did not start", addr);
		*status = DP_EX_SOFTWARE;
		close(e->fd);
		free(e);
		return NULL;
	}
	return e;
}

const char *
dp_endpoint_address(const struct dp_endpoint *e)
{
	return e ? e->address : "";
}

void
dp_endpoint_stop(struct dp_endpoint *e)
{
	if (!e)
		return;
	/*
	 * Quiesced first, libmicrohttpd leaves the listening socket alone in
	 * MHD_stop_daemon and hands it back to be closed here, once.
	 */
	MHD_socket fd = MHD_quiesce_daemon(e->d);
	MHD_stop_daemon(e->d);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	free(e);
}
