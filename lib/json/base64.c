#include <stdint.h>

#include "json/base64.h"

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
dp_base64_encode(struct dp_buf *out, const void *in, size_t n)
{
	const unsigned char *p = in;
	size_t i;
	char *o;

	if (dp_buf_grow(out, (n + 2) / 3 * 4) < 0)
		return -1;
	o = out->data + out->len;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = alphabet[(v >> 6) & 63];
		*o++ = alphabet[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	out->len = (size_t)(o - out->data);
	out->data[out->len] = '\0';
	return 0;
}

static int
val(char c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

int
dp_base64_decode(struct dp_buf *out, const char *s, size_t n)
{
	size_t start = out->len;

	if (n % 4)
		return -1;
	if (dp_buf_grow(out, n / 4 * 3) < 0)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int a = val(s[i]), b = val(s[i + 1]);
		int last = i + 4 == n;
		int c = last && s[i + 2] == '=' ? -2 : val(s[i + 2]);
		int d = last && s[i + 3] == '=' ? -2 : val(s[i + 3]);
		if (a < 0 || b < 0 || c == -1 || d == -1 || (c == -2 && d != -2))
			goto bad;
		uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 |
		             (uint32_t)(c < 0 ? 0 : c) << 6 | (uint32_t)(d < 0 ? 0 : d);
		out->data[out->len++] = (char)(v >> 16);
		if (c >= 0)
			out->data[out->len++] = (char)(v >> 8);
		if (d >= 0)
			out->data[out->len++] = (char)v;
	}
	out->data[out->len] = '\0';
	return 0;
bad:
	out->len = start;
	out->data[out->len] = '\0';
	return -1;
}
