#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/table.h"

struct dp_table {
	size_t ncols;
	char **cells;        /* (nrows + 1) * ncols; row 0 holds the headers */
	size_t nrows;        /* data rows, headers not counted */
	size_t cap;          /* rows allocated, headers included */
	bool *right;
};

/* Code points, so that multi-byte UTF-8 does not widen a column. */
static size_t
width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			w++;
	return w;
}

/*
 * A cell is shown on a terminal: its control characters (C0, DEL, and
 * C1 as UTF-8) become '?', so that text from elsewhere (a status record,
 * a topic's name) cannot move the cursor or clear the screen.
 */
static void
defang(char *s)
{
	unsigned char *r = (unsigned char *)s, *w = r;

	while (*r) {
		if (r[0] == 0xC2 && r[1] >= 0x80 && r[1] <= 0x9F) {
			*w++ = '?';
			r += 2;
		} else if (*r < 0x20 || *r == 0x7F) {
			*w++ = '?';
			r++;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

static int
put_row(struct dp_table *t, size_t row, const char *const *cells)
{
	for (size_t c = 0; c < t->ncols; c++) {
		const char *s = cells[c] ? cells[c] : "-";
		char *copy = strdup(s);
		if (copy)
			defang(copy);
		if (!copy) {
			for (size_t k = 0; k < c; k++) {
				free(t->cells[row * t->ncols + k]);
				t->cells[row * t->ncols + k] = NULL;
			}
			return -1;
		}
		t->cells[row * t->ncols + c] = copy;
	}
	return 0;
}

struct dp_table *
dp_table_new(const char *const *headers, size_t ncols)
{
	struct dp_table *t = calloc(1, sizeof(*t));

	if (!t || ncols == 0)
		goto fail;
	t->ncols = ncols;
	t->cap = 8;
	t->cells = calloc(t->cap * ncols, sizeof(*t->cells));
	t->right = calloc(ncols, sizeof(*t->right));
	if (!t->cells || !t->right || put_row(t, 0, headers) < 0)
		goto fail;
	return t;
fail:
	dp_table_free(t);
	return NULL;
}

void
dp_table_free(struct dp_table *t)
{
	if (!t)
		return;
	if (t->cells)
		for (size_t i = 0; i < (t->nrows + 1) * t->ncols; i++)
			free(t->cells[i]);
	free(t->cells);
	free(t->right);
	free(t);
}

void
dp_table_align_right(struct dp_table *t, size_t col)
{
	if (t && col < t->ncols)
		t->right[col] = true;
}

size_t
dp_table_rows(const struct dp_table *t)
{
	return t ? t->nrows : 0;
}

const char *
dp_table_num(char buf[DP_TABLE_NUM], int64_t v)
{
	if (v < 0)
		return NULL;
	snprintf(buf, DP_TABLE_NUM, "%lld", (long long)v);
	return buf;
}

int
dp_table_add(struct dp_table *t, const char *const *cells)
{
	if (t->nrows + 2 > t->cap) {
		size_t cap = t->cap * 2;
		char **p = realloc(t->cells, cap * t->ncols * sizeof(*p));
		if (!p)
			return -1;
		memset(p + t->cap * t->ncols, 0, (cap - t->cap) * t->ncols * sizeof(*p));
		t->cells = p;
		t->cap = cap;
	}
	if (put_row(t, t->nrows + 1, cells) < 0)
		return -1;
	t->nrows++;
	return 0;
}

static int
pad(struct dp_buf *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (dp_buf_addch(out, ' ') < 0)
			return -1;
	return 0;
}

int
dp_table_render(const struct dp_table *t, struct dp_buf *out)
{
	size_t *w = calloc(t->ncols, sizeof(*w));

	if (!w)
		return -1;
	for (size_t r = 0; r <= t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t cw = width(t->cells[r * t->ncols + c]);
			if (cw > w[c])
				w[c] = cw;
		}
	for (size_t r = 0; r <= t->nrows; r++) {
		size_t start = out->len;
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t gap = w[c] - width(s);
			int rc = 0;
			if (c > 0)
				rc |= dp_buf_addstr(out, "  ");
			if (t->right[c])
				rc |= pad(out, gap);
			rc |= dp_buf_addstr(out, s);
			if (!t->right[c] && c + 1 < t->ncols)
				rc |= pad(out, gap);
			if (rc) {
				free(w);
				return -1;
			}
		}
		/* An empty last column would leave blanks at the end of the line. */
		while (out->len > start && out->data[out->len - 1] == ' ')
			out->len--;
		if (dp_buf_addch(out, '\n') < 0) {
			free(w);
			return -1;
		}
	}
	free(w);
	return 0;
}
