/*
 * core/table.h -- aligned text tables for people reading a terminal.
 *
 * Scripts get NDJSON; a person at a terminal gets columns.  A table
 * collects every row first because a column is only as wide as its
 * widest cell.  Widths count UTF-8 code points, not bytes, so a config
 * value with accents does not push its neighbours out of line.
 *
 * Cells are copied: the caller's strings may be freed after dp_table_add.
 * A NULL cell prints as "-".
 */
#ifndef DP_TABLE_H
#define DP_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct dp_table;

/*
 * A table with ncols columns titled by headers (copied).  Returns NULL
 * when memory runs out.  Free with dp_table_free (accepts NULL).
 */
struct dp_table *dp_table_new(const char *const *headers, size_t ncols);
void dp_table_free(struct dp_table *t);

/* Right-align column col (numbers read better that way). */
void dp_table_align_right(struct dp_table *t, size_t col);

/* Append one row of ncols cells.  Returns 0, or -1 when memory runs out. */
int dp_table_add(struct dp_table *t, const char *const *cells);

size_t dp_table_rows(const struct dp_table *t);

/* Room for dp_table_num's text. */
#define DP_TABLE_NUM 24

/*
 * A count or an offset as a cell: v's digits, in buf, or NULL (a cell
 * shown as "-") when it is unknown (v < 0).
 */
const char *dp_table_num(char buf[DP_TABLE_NUM], int64_t v);

/*
 * Append the header line and every row to out, columns separated by two
 * spaces, no trailing blanks, each line ending in "\n".  Returns 0 or -1.
 */
int dp_table_render(const struct dp_table *t, struct dp_buf *out);

#endif
