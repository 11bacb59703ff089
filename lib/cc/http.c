/*
 * cc/http.c -- HTTP GET on libcurl's easy interface (cc/http.h).
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cc/http.h"

struct dp_http {
	CURL *curl;
	struct curl_slist *headers;
	size_t max_body;
	const atomic_int *cancel;
	char errbuf[CURL_ERROR_SIZE];
};

struct sink {
	struct dp_buf *body;
	size_t max;
	int too_large;
	int nomem;
};

int
dp_http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void
dp_http_global_cleanup(void)
{
	curl_global_cleanup();
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;

	if (s->body->len + len > s->max) {
		s->too_large = 1;
		return 0;
	}
	if (dp_buf_add(s->body, p, len) < 0) {
		s->nomem = 1;
		return 0;
	}
	return len;
}

static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
            curl_off_t ulnow)
{
	const struct dp_http *h = arg;

	(void)dltotal; (void)dlnow; (void)ultotal; (void)ulnow;
	return h->cancel && *h->cancel ? 1 : 0;
}

#define SETOPT(h, opt, val) \
	do { if (curl_easy_setopt((h), (opt), (val)) != CURLE_OK) goto fail; } while (0)

struct dp_http *
dp_http_new(const struct dp_http_opts *o, struct dp_buf *err)
{
	struct dp_http *h = calloc(1, sizeof(*h));

	if (!h) {
		dp_buf_msgf(err, "out of memory");
		return NULL;
	}
	h->max_body = o->max_body ? o->max_body : (size_t)64 << 20;
	h->cancel = o->cancel;
	h->curl = curl_easy_init();
	if (!h->curl) {
		dp_buf_msgf(err, "cannot initialize libcurl");
		free(h);
		return NULL;
	}
	SETOPT(h->curl, CURLOPT_NOSIGNAL, 1L);
	SETOPT(h->curl, CURLOPT_ERRORBUFFER, h->errbuf);
	SETOPT(h->curl, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(h->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SETOPT(h->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SETOPT(h->curl, CURLOPT_ACCEPT_ENCODING, "");
	if (o->user_agent)
		SETOPT(h->curl, CURLOPT_USERAGENT, o->user_agent);
	if (o->timeout_ms > 0)
		SETOPT(h->curl, CURLOPT_TIMEOUT_MS, o->timeout_ms);
	if (o->connect_timeout_ms > 0)
		SETOPT(h->curl, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
	SETOPT(h->curl, CURLOPT_NOPROGRESS, 0L);
	SETOPT(h->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	SETOPT(h->curl, CURLOPT_XFERINFODATA, h);
	SETOPT(h->curl, CURLOPT_WRITEFUNCTION, on_body);
	return h;
fail:
	dp_buf_msgf(err, "cannot set up libcurl (an option is not supported)");
	dp_http_free(h);
	return NULL;
}

static void
wipe_headers(struct curl_slist *l)
{
	for (; l; l = l->next)
		if (l->data)
			explicit_bzero(l->data, strlen(l->data));
}

void
dp_http_free(struct dp_http *h)
{
	if (!h)
		return;
	if (h->curl)
		curl_easy_cleanup(h->curl);
	wipe_headers(h->headers);
	curl_slist_free_all(h->headers);
	free(h);
}

int
dp_http_set_secret_header(struct dp_http *h, const char *name, const char *value,
                          struct dp_buf *err)
{
	struct dp_buf line = DP_BUF_INIT;
	struct curl_slist *l;

	for (const char *p = value; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			dp_buf_msgf(err, "invalid %s header value: it contains a control character",
			            name);
			return -1;
		}
	}
	if (dp_buf_addf(&line, "%s: %s", name, value) < 0) {
		dp_buf_msgf(err, "out of memory");
		return -1;
	}
	l = curl_slist_append(h->headers, line.data);
	explicit_bzero(line.data, line.len);
	dp_buf_free(&line);
	if (!l) {
		dp_buf_msgf(err, "out of memory");
		return -1;
	}
	h->headers = l;
	if (curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers) != CURLE_OK) {
		dp_buf_msgf(err, "cannot set request headers");
		return -1;
	}
	return 0;
}

void
dp_http_resp_free(struct dp_http_resp *r)
{
	if (!r)
		return;
	dp_buf_free(&r->body);
	r->status = 0;
	r->retry_after_ms = -1;
}

/* Failures worth another try: the network or the server may recover. */
static int
is_transient(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_BAD_CONTENT_ENCODING:
		return 1;
	default:
		return 0;
	}
}

int
dp_http_get(struct dp_http *h, const char *url, struct dp_http_resp *r, struct dp_buf *err)
{
	struct sink s = { &r->body, h->max_body, 0, 0 };
	CURLcode c;

	dp_buf_reset(&r->body);
	r->status = 0;
	r->retry_after_ms = -1;
	r->transient = 0;
	r->cancelled = 0;
	r->elapsed_ms = 0;
	h->errbuf[0] = '\0';
	if (curl_easy_setopt(h->curl, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &s) != CURLE_OK) {
		dp_buf_msgf(err, "cannot request %s: bad URL or out of memory", url);
		return -1;
	}
	c = curl_easy_perform(h->curl);

	double secs = 0;
	if (curl_easy_getinfo(h->curl, CURLINFO_TOTAL_TIME, &secs) == CURLE_OK)
		r->elapsed_ms = (long)(secs * 1000);
	if (c == CURLE_OK) {
		curl_off_t ra = -1;
		curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &r->status);
#if LIBCURL_VERSION_NUM >= 0x074200
		if (curl_easy_getinfo(h->curl, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
			r->retry_after_ms = ra >= DP_HTTP_RETRY_AFTER_MAX_MS / 1000
			                    ? DP_HTTP_RETRY_AFTER_MAX_MS : (int64_t)ra * 1000;
#endif
		if (!r->body.data && dp_buf_addstr(&r->body, "") < 0) {
			dp_buf_msgf(err, "out of memory");
			return -1;
		}
		return 0;
	}
	if (c == CURLE_ABORTED_BY_CALLBACK) {
		r->cancelled = 1;
		dp_buf_msgf(err, "request to %s cancelled", url);
	} else if (s.too_large) {
		dp_buf_msgf(err, "response from %s is larger than %zu bytes", url, h->max_body);
	} else if (s.nomem) {
		dp_buf_msgf(err, "out of memory");
	} else {
		r->transient = is_transient(c);
		dp_buf_msgf(err, "request to %s failed: %s", url,
		            h->errbuf[0] ? h->errbuf : curl_easy_strerror(c));
	}
	return -1;
}

int
dp_http_escape(struct dp_buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' ||
		    ch == '~') {
			if (dp_buf_addch(out, (char)ch) < 0)
				return -1;
		} else {
			char e[3] = { '%', hex[ch >> 4], hex[ch & 15] };
			if (dp_buf_add(out, e, 3) < 0)
				return -1;
		}
	}
	return 0;
}
