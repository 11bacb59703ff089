/*
 * pg/encode.c -- the sink engine's rows into binary COPY
 * (pg/sink-internal.h): the batches being filled, one per source.
 *
 * A row is checked and encoded in one scan of its JSON (encode_row):
 * each member goes to its column's slot, a key without a column goes by
 * --unknown-keys (bad, a new column, or the extra jsonb column), and the
 * tuple is written in the order of its layout, the columns the row sets.
 * A row the encoders refuse is reported at once (on_bad) with its record,
 * and the rows of that record already added are taken back.  Each batch
 * keeps its rows' JSON (a changed table encodes them again: reencode)
 * and, with keep_raw, each record as it came, for the rows the server
 * refuses later.  Before the table exists (--create), batches are raw:
 * they keep the JSON text only, and are encoded once it is made.
 *
 * Memory: a batch is full at batch_bytes of everything it holds (the
 * encoded rows, their JSON, the records kept as they came), and the
 * batches being filled, queued and running together stay under a byte
 * budget (batch_bytes times writers + 1): counting only the encoded
 * rows, and only the batches being filled, let a sink at the defaults
 * take 70 MB with 1 KB records (docs/BENCHMARKS.md).  Committed batches
 * are kept for their buffers (sink_recycle), as many as can be in flight.
 */
#include <stdlib.h>
#include <string.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "core/vec.h"
#include "pg/sink-internal.h"
#include "pg/sink.h"
#include "pg/sqlstate.h"

static void
bads_clear(struct batch *b)
{
	for (size_t i = 0; i < b->nbads; i++)
		free(b->bads[i].reason);
	b->nbads = 0;
}

/* ---- batches ----------------------------------------------------------- */

void
sink_batch_free(struct batch *b)
{
	if (!b)
		return;
	dp_buf_free(&b->data);
	dp_buf_free(&b->json);
	dp_buf_free(&b->odata);
	free(b->rows);
	free(b->segs);
	free(b->origs);
	bads_clear(b);
	free(b->bads);
	free(b->msg);
	free(b);
}

size_t
sink_batch_bytes(const struct batch *b)
{
	return b->data.len + b->json.len + b->nrows * sizeof(struct row) + b->odata.len +
	       b->norigs * sizeof(struct orig);
}

/* The record at offset as it came, kept in b (keep_raw), or NULL. */
static const struct orig *
orig_of(const struct batch *b, int64_t offset)
{
	size_t lo = 0, hi = b->norigs;

	while (lo < hi) {
		size_t m = lo + (hi - lo) / 2;
		if (b->origs[m].offset < offset)
			lo = m + 1;
		else
			hi = m;
	}
	return lo < b->norigs && b->origs[lo].offset == offset ? &b->origs[lo] : NULL;
}

static const char *
sc_name(const struct dp_pgsink *s, int c, size_t *len)
{
	*len = s->cols[c].len;
	return s->cols[c].name;
}

/* ---- encoding rows ----------------------------------------------------- */

static int
grow_rows(struct batch *b)
{
	struct row *r = dp_grow(b->rows, &b->caprows, b->nrows + 1, sizeof(*r), 1024);

	if (!r)
		return -1;
	b->rows = r;
	return 0;
}

static int
add_seg(struct batch *b, struct layout *L)
{
	if (b->nsegs && b->segs[b->nsegs - 1].L == L)
		return 0;
	struct seg *g = dp_grow(b->segs, &b->capsegs, b->nsegs + 1, sizeof(*g), 4);
	if (!g)
		return -1;
	b->segs = g;
	b->segs[b->nsegs].L = L;
	b->segs[b->nsegs].first = b->nrows;
	b->nsegs++;
	return 0;
}

/* Tell on_bad about one bad record (the caller's thread): 0 or its status. */
static int
report(struct dp_pgsink *s, struct dp_pgsink_src *src, int64_t offset, const char *reason,
       const char *sqlstate, const void *key, size_t klen, const void *value, size_t vlen,
       const void *hdr, size_t hlen)
{
	struct dp_pgsink_bad bad = {
		.src = src, .topic = src->topic, .partition = src->partition, .offset = offset,
		.reason = reason, .sqlstate = sqlstate, .key = key, .klen = klen, .value = value,
		.vlen = vlen, .headers = hdr, .hlen = hlen,
	};

	s->stats.bad++;
	return s->cfg.on_bad ? s->cfg.on_bad(s->cfg.arg, &bad) : 0;
}

/* Report a bad record of a batch, as kept there (keep_raw) or as its row's JSON. */
int
sink_report_kept(struct dp_pgsink *s, const struct batch *b, int64_t offset, const char *reason,
                 const char *sqlstate, const char *json, size_t len)
{
	const struct orig *o = orig_of(b, offset);

	if (!o)
		return report(s, b->src, offset, reason, sqlstate, NULL, 0, json, len, NULL, 0);
	const char *p = b->odata.data ? b->odata.data + o->pos : "";
	size_t vlen = o->vlen != SIZE_MAX ? o->vlen : 0;
	return report(s, b->src, offset, reason, sqlstate, o->has_key ? p : NULL, o->klen,
	              o->vlen != SIZE_MAX ? p + o->klen : NULL, vlen,
	              o->hlen ? p + o->klen + vlen : NULL, o->hlen);
}

/* A row dp_pgsink_add refuses (the reason in s->why): reported with its record. */
static int
bad_row(struct dp_pgsink *s, struct dp_pgsink_src *src, int64_t offset, const char *json,
        size_t len, struct dp_buf *err)
{
	int st;

	if (src->raw_off == offset)
		st = report(s, src, offset, dp_buf_str(&s->why), "", src->raw_key, src->raw_klen,
		            src->raw_val, src->raw_vlen, src->raw_hdr, src->raw_hlen);
	else
		st = report(s, src, offset, dp_buf_str(&s->why), "", NULL, 0, json, len, NULL, 0);
	dp_buf_msgf(err, "%s", dp_buf_str(&s->why));
	return st ? st : DP_PGSINK_BAD;
}

/*
 * Keep the record being added as it came (keep_raw), once, when its
 * first row is in: the server may refuse a row later, and then on_bad
 * needs the record.  A value of SIZE_MAX length stands for no value.
 */
static int
keep_orig(struct dp_pgsink *s, struct dp_pgsink_src *src, struct batch *b, int64_t offset)
{
	if (!s->cfg.keep_raw || src->raw_off != offset || src->raw_kept)
		return 0;
	struct orig *o = dp_grow(b->origs, &b->caporigs, b->norigs + 1, sizeof(*o), 256);
	if (!o)
		return -1;
	b->origs = o;
	o = &b->origs[b->norigs];
	o->offset = offset;
	o->pos = b->odata.len;
	o->has_key = src->raw_key != NULL;
	o->klen = src->raw_key ? src->raw_klen : 0;
	o->vlen = src->raw_val ? src->raw_vlen : SIZE_MAX;
	o->hlen = src->raw_hdr ? src->raw_hlen : 0;
	if ((o->klen && dp_buf_add(&b->odata, src->raw_key, o->klen) < 0) ||
	    (src->raw_val && src->raw_vlen && dp_buf_add(&b->odata, src->raw_val, src->raw_vlen) < 0) ||
	    (o->hlen && dp_buf_add(&b->odata, src->raw_hdr, o->hlen) < 0))
		return -1;
	b->norigs++;
	src->raw_kept = true;
	return 0;
}

static int
nomem(struct dp_buf *err)
{
	dp_buf_msgf(err, "out of memory");
	return DP_EX_SOFTWARE;
}

/* A key for a column yet to be added (--unknown-keys add). */
struct new_key {
	const char *key, *v;            /* borrowed from the row */
	size_t klen, vn;
	enum dp_json_type t;
	unsigned mask;
	bool dup;                       /* a later member has its name: that one counts */
};

/* Why the value of slot sl does not fit column c, into s->why: 1, or 0 it fits. */
static int
refused(struct dp_pgsink *s, int c, const struct slot *sl, const char *why)
{
	const struct column *col = &s->cols[c];

	dp_buf_msgf(&s->why, "column ");
	sink_msg_name(&s->why, col->name, col->len);
	dp_buf_msgf(&s->why, " (%s): ", col->type);
	sink_msg_value(&s->why, sl->v, sl->n);
	dp_buf_msgf(&s->why, " is %s", why);
	s->bad_col = c;
	return 1;
}

/*
 * ALTER TABLE ... ADD COLUMN IF NOT EXISTS for the new keys of a row,
 * all in one statement (all or none), each typed from its value: only
 * once the row proved good, so that a refused row never shapes the
 * table.  The catalog has the last word: someone may have added a
 * column first, with another type.  0, DP_PGSINK_BAD (the reason in
 * s->why: no type holds a value, PostgreSQL's 1600 columns), or a
 * failure as encode_row returns it.
 */
static int
add_columns(struct dp_pgsink *s, struct new_key *nk, size_t n, unsigned gen, struct dp_buf *err)
{
	struct dp_buf q = DP_BUF_INIT;
	const char *name, *why = NULL;
	size_t len, fresh = 0;
	int rc;

	/* The row's values for the columns it has must fit first. */
	for (size_t i = 0; i < s->ncols; i++) {
		const struct slot *sl = &s->slots[i];
		if (sl->gen != gen || sink_fits(s, s->cols[i].kind, sl->t, sl->v, sl->n, &why))
			continue;
		refused(s, (int)i, sl, why);
		return DP_PGSINK_BAD;
	}
	/* The last of a key's values counts, for its type as for the row. */
	struct dp_buf one = DP_BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		nk[i].dup = false;
		dp_buf_reset(&one);
		if (sink_key_name(&s->keybuf, nk[i].key, nk[i].klen, &name, &len) < 0 ||
		    dp_buf_add(&one, name, len) < 0) {
			dp_buf_free(&one);
			return nomem(err);
		}
		for (size_t j = i + 1; j < n && !nk[i].dup; j++) {
			if (sink_key_name(&s->keybuf, nk[j].key, nk[j].klen, &name, &len) < 0) {
				dp_buf_free(&one);
				return nomem(err);
			}
			nk[i].dup = len == one.len && memcmp(name, one.data, len) == 0;
		}
		if (nk[i].dup)
			continue;
		fresh++;
		if (!(nk[i].mask = sink_value_mask(s, nk[i].t, nk[i].v, nk[i].vn, &why))) {
			if ((rc = sink_key_name(&s->keybuf, nk[i].key, nk[i].klen, &name, &len)) == -1)
				return nomem(err);
			dp_buf_msgf(&s->why, "key ");
			sink_msg_name(&s->why, name, len);
			dp_buf_msgf(&s->why, ": ");
			sink_msg_value(&s->why, nk[i].v, nk[i].vn);
			dp_buf_msgf(&s->why, " fits no column type (%s), so no column is added for it",
			            why ? why : "?");
			dp_buf_free(&one);
			return DP_PGSINK_BAD;
		}
	}
	dp_buf_free(&one);
	if (s->natts + fresh > MAX_COLUMNS) {
		dp_buf_msgf(&s->why, "%zu key%s without a column would take table %s past "
		            "PostgreSQL's %d columns (it has %u, dropped ones included)", fresh,
		            fresh == 1 ? "" : "s", s->cfg.table, MAX_COLUMNS, s->natts);
		return DP_PGSINK_BAD;
	}
	if (dp_buf_addf(&q, "ALTER TABLE %s ", s->qname) < 0)
		goto nomem;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (nk[i].dup)
			continue;
		if (sink_key_name(&s->keybuf, nk[i].key, nk[i].klen, &name, &len) < 0)
			goto nomem;
		const char *type = sink_type_for(nk[i].mask, sink_is_time_name(s, name, len), s->cfg.numeric);
		if (dp_buf_addstr(&q, k++ ? ", ADD COLUMN IF NOT EXISTS " : "ADD COLUMN IF NOT EXISTS ") < 0 ||
		    dp_pg_ident(&q, name, len) < 0 || dp_buf_addf(&q, " %s", type) < 0)
			goto nomem;
		dp_info("adding column %.*s %s to %s", (int)len, name, type, s->cfg.table);
	}
	char state[6];
	struct dp_buf e = DP_BUF_INIT;
	rc = sink_exec_ctl(s, q.data, 0, NULL, NULL, state, &e, "cannot add a column");
	dp_buf_free(&q);
	if (rc == -1 && dp_sqlstate_of(state)->what == DP_SQLSTATE_BAD) {
		/* 54011: more than 1600 columns; the row is bad, the run goes on */
		dp_buf_msgf(&s->why, "%s", dp_buf_str(&e));
		dp_buf_free(&e);
		return DP_PGSINK_BAD;
	}
	dp_buf_msgf(err, "%s", dp_buf_str(&e));
	dp_buf_free(&e);
	if (rc == DP_PGSINK_DOWN)
		return rc;
	if (rc)
		return sink_fatal_status(state);
	if ((rc = sink_load_model(s, false, NULL, err)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (nk[i].dup)
			continue;
		if (sink_key_name(&s->keybuf, nk[i].key, nk[i].klen, &name, &len) < 0)
			return nomem(err);
		int c = sink_find_col(s, name, len);
		if (c < 0) {
			dp_buf_msgf(err, "column %.*s is still missing after ALTER TABLE", (int)len, name);
			return DP_EX_SOFTWARE;
		}
		s->slots[c].gen = gen;
		s->slots[c].t = nk[i].t;
		s->slots[c].v = nk[i].v;
		s->slots[c].n = nk[i].vn;
	}
	return 0;
nomem:
	dp_buf_free(&q);
	return nomem(err);
}

/* What a row's members leave for encode_row. */
struct row_ctx {
	struct dp_pgsink *s;
	struct dp_buf *err;
	unsigned gen;
	size_t member;
	int rc;                         /* why the scan stopped */
	struct new_key *newkeys;
	size_t nnew, capnew;
};

/* Why a key has no column (--unknown-keys bad), into s->why. */
static void
no_column(struct dp_pgsink *s, const char *name, size_t len, const char *v, size_t vn,
          enum dp_json_type t)
{
	const char *why = NULL;

	dp_buf_msgf(&s->why, "key ");
	sink_msg_name(&s->why, name, len);
	if (s->reshaping)
		for (size_t i = 0; i < s->ngone; i++)
			if (strlen(s->gone[i].name) == len && memcmp(s->gone[i].name, name, len) == 0) {
				dp_buf_msgf(&s->why, ": its column (%s) is gone, dropped or renamed",
				            s->gone[i].type);
				return;
			}
	if (!sink_value_mask(s, t, v, vn, &why)) {
		dp_buf_msgf(&s->why, ": ");
		sink_msg_value(&s->why, v, vn);
		dp_buf_msgf(&s->why, " fits no column type (%s)", why ? why : "?");
		return;
	}
	dp_buf_msgf(&s->why, " has no column in table %s (see --unknown-keys)", s->cfg.table);
	if (s->natts >= MAX_COLUMNS)
		dp_buf_msgf(&s->why, ", which has PostgreSQL's %d columns already", MAX_COLUMNS);
}

/* One member of a row: its column's slot, or per --unknown-keys. */
static int
take_member(void *ctx, const char *key, size_t klen, const char *v, size_t vn,
            enum dp_json_type t)
{
	struct row_ctx *rx = ctx;
	struct dp_pgsink *s = rx->s;
	struct dp_buf *err = rx->err;
	size_t member = rx->member++, name_len;
	const char *name;

	/*
	 * Rows of one stream have their keys in one order: try the
	 * column the same position had last time before decoding and
	 * hashing.  A name without backslash or quote matches the
	 * literal's bytes only when the literal has no escape.
	 */
	int c = -1;
	if (member < s->nshape && s->shape[member] >= 0) {
		const struct column *sc = &s->cols[s->shape[member]];
		if (sc->plain && sc->len == klen - 2 && memcmp(sc->name, key + 1, klen - 2) == 0)
			c = s->shape[member];
	}
	if (c >= 0) {
		name = sc_name(s, c, &name_len);
	} else {
		int rc = sink_key_name(&s->keybuf, key, klen, &name, &name_len);
		if (rc == -2 && s->cfg.unknown != DP_PGSINK_UNKNOWN_EXTRA) {
			dp_buf_msgf(&s->why, "key %.*s holds a lone surrogate escape, which no column "
			            "name can hold", klen > 48 ? 48 : (int)klen, key);
			return rx->rc = DP_PGSINK_BAD;
		}
		if (rc == -1)
			return rx->rc = nomem(err);
		c = rc == -2 ? -1 : sink_find_col(s, name, name_len);
		if (member >= s->nshape) {
			size_t old = s->nshape;
			int *sh = dp_grow(s->shape, &s->nshape, member + 1, sizeof(*sh), 16);
			if (!sh)
				return rx->rc = nomem(err);
			s->shape = sh;
			for (size_t i = old; i < s->nshape; i++)
				s->shape[i] = -1;
		}
		s->shape[member] = c;
	}
	if (c >= 0 && c == s->extra)
		c = -1;         /* a key named like the extra column goes into it */
	if (c >= 0 && !s->cols[c].writable) {
		dp_buf_msgf(&s->why, "key ");
		sink_msg_name(&s->why, name, name_len);
		dp_buf_msgf(&s->why, " names a generated or identity column, which a row cannot set");
		return rx->rc = DP_PGSINK_BAD;
	}
	if (c < 0) {
		if (s->cfg.unknown == DP_PGSINK_UNKNOWN_EXTRA) {
			if (dp_buf_addch(&s->extrabuf, s->extrabuf.len ? ',' : '{') < 0 ||
			    dp_buf_add(&s->extrabuf, key, klen) < 0 ||
			    dp_buf_addch(&s->extrabuf, ':') < 0 || dp_buf_add(&s->extrabuf, v, vn) < 0)
				return rx->rc = nomem(err);
			return 0;
		}
		const char *why = sink_bad_ident(name, name_len);
		if (why) {
			dp_buf_msgf(&s->why, "key ");
			sink_msg_name(&s->why, name, name_len);
			dp_buf_msgf(&s->why, " cannot be a column name: %s", why);
			return rx->rc = DP_PGSINK_BAD;
		}
		if (s->cfg.unknown == DP_PGSINK_UNKNOWN_ADD) {
			/* The column is added once the whole row proved valid. */
			struct new_key *nk = dp_grow(rx->newkeys, &rx->capnew, rx->nnew + 1,
			                          sizeof(*nk), 8);
			if (!nk)
				return rx->rc = nomem(err);
			rx->newkeys = nk;
			rx->newkeys[rx->nnew++] = (struct new_key){ .key = key, .klen = klen, .v = v, .vn = vn, .t = t };
			return 0;
		}
		no_column(s, name, name_len, v, vn, t);
		return rx->rc = DP_PGSINK_BAD;
	}
	s->slots[c].gen = rx->gen;
	s->slots[c].t = t;
	s->slots[c].v = v;
	s->slots[c].n = vn;
	return 0;
}

/*
 * Encode one row object into b, checking its JSON on the way (one scan
 * for both).  0, DP_PGSINK_BAD (reason in s->why, not yet reported;
 * s->bad_col the column that refused it, or -1), DP_PGSINK_DOWN, or an
 * exit status; on any failure b may hold part of the row: the caller
 * cuts it back.
 */
static int
encode_row(struct dp_pgsink *s, struct batch *b, const char *json, size_t len, struct dp_buf *err)
{
	unsigned gen = ++s->gen;

	if (gen == 0) {
		/* 0 marks an empty slot: after a wrap, empty them all */
		for (size_t i = 0; i < s->ncols; i++)
			s->slots[i].gen = 0;
		gen = s->gen = 1;
	}
	dp_buf_reset(&s->why);
	dp_buf_reset(&s->extrabuf);
	s->bad_col = -1;
	struct row_ctx rx = { s, err, gen, 0, 0, s->newkeys, 0, s->capnew };
	const char *jwhy;
	size_t off;
	enum dp_json_type t = dp_json_check_members(json, len, take_member, &rx, &jwhy, &off);
	s->newkeys = rx.newkeys;
	s->capnew = rx.capnew;
	if (rx.rc)
		return rx.rc;
	if (t == DP_JSON_INVALID) {
		dp_buf_msgf(&s->why, "not JSON: %s at byte %zu", jwhy ? jwhy : "invalid", off + 1);
		return DP_PGSINK_BAD;
	}
	if (t != DP_JSON_OBJECT) {
		dp_buf_msgf(&s->why, "not a JSON object");
		return DP_PGSINK_BAD;
	}
	if (rx.nnew) {
		int rc = add_columns(s, rx.newkeys, rx.nnew, gen, err);
		if (rc)
			return rc;
	}
	if (s->extrabuf.len) {
		if (dp_buf_addch(&s->extrabuf, '}') < 0)
			goto nomem;
		s->slots[s->extra].gen = gen;
		s->slots[s->extra].t = DP_JSON_OBJECT;
		s->slots[s->extra].v = s->extrabuf.data;
		s->slots[s->extra].n = s->extrabuf.len;
	}
	/*
	 * The columns of this row's COPY: every writable column without a
	 * default (a missing key is NULL there), the keys, and the columns
	 * with a default that the row sets; the others get their default.
	 */
	size_t n = 0;
	for (size_t i = 0; i < s->ncols; i++) {
		const struct column *col = &s->cols[i];
		if (col->writable && (!col->hasdef || col->key || s->slots[i].gen == gen))
			s->tmpcols[n++] = (unsigned)i;
	}
	if (n == 0) {
		/* COPY needs a column; every one of this table has a default. */
		dp_buf_msgf(&s->why, "the row sets no column, and every column of %s has a default",
		            s->cfg.table);
		return DP_PGSINK_BAD;
	}
	struct layout *L = b->nsegs && b->segs[b->nsegs - 1].L->ncols == n &&
	                   memcmp(b->segs[b->nsegs - 1].L->cols, s->tmpcols, n * sizeof(unsigned)) == 0
	                   ? b->segs[b->nsegs - 1].L : sink_layout_for(s, s->tmpcols, n);
	if (!L || add_seg(b, L) < 0 || grow_rows(b) < 0)
		goto nomem;
	size_t at = b->data.len;
	if (dp_pgbin_tuple(&b->data, (uint16_t)(n + (s->cfg.nkeys ? 1 : 0))) < 0)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		const struct column *col = &s->cols[L->cols[i]];
		const struct slot *sl = &s->slots[L->cols[i]];
		const char *why = NULL;
		int rc;
		if (sl->gen != gen) {
			if (s->reshaping && col->required) {
				/* NOT NULL since the row was read: it never had it */
				dp_buf_msgf(&s->why, "column ");
				sink_msg_name(&s->why, col->name, col->len);
				dp_buf_msgf(&s->why, " (%s) is NOT NULL, and the record has no value for it",
				            col->type);
				s->bad_col = (int)L->cols[i];
				dp_buf_truncate(&b->data, at);
				return DP_PGSINK_BAD;
			}
			rc = dp_pgbin_null(&b->data);
		} else {
			if (s->reshaping && col->required && sl->t == DP_JSON_NULL)
				rc = (why = "null, and the column is NOT NULL", 1);
			else
				rc = dp_pgbin_field(&b->data, col->kind, sl->t, sl->v, sl->n, &s->scratch, &why);
		}
		if (rc < 0)
			goto nomem;
		if (rc > 0) {
			refused(s, (int)L->cols[i], sl, why);
			dp_buf_truncate(&b->data, at);
			return DP_PGSINK_BAD;
		}
	}
	if (s->cfg.nkeys) {
		/* The ordinal: int8 */
		unsigned char o[12];
		uint64_t x = (uint64_t)++s->ord;
		o[0] = 0; o[1] = 0; o[2] = 0; o[3] = 8;
		for (int i = 0; i < 8; i++)
			o[4 + i] = (unsigned char)(x >> (56 - 8 * i));
		if (dp_buf_add(&b->data, o, sizeof(o)) < 0)
			goto nomem;
	}
	return 0;
nomem:
	dp_buf_msgf(err, "out of memory");
	return DP_EX_SOFTWARE;
}

void
sink_batch_list_free(struct batch *b)
{
	while (b) {
		struct batch *n = b->next;
		sink_batch_free(b);
		b = n;
	}
}

/* ---- filling batches --------------------------------------------------- */

/* The memory a batch's buffers hold, filled or not. */
static size_t
batch_capacity(const struct batch *b)
{
	return b->data.cap + b->json.cap + b->odata.cap + b->caprows * sizeof(struct row) +
	       b->capsegs * sizeof(struct seg) + b->caporigs * sizeof(struct orig);
}

/*
 * Keep a committed batch for the next one: its buffers are megabytes
 * that a fresh allocation would fault in page by page again.  As many
 * as can be in flight at once, no more, and only while the buffers kept
 * and the batches in use stay within the byte budget: the pages of a
 * kept buffer stay resident, so they count.
 */
void
sink_recycle(struct dp_pgsink *s, struct batch *b)
{
	size_t cap = batch_capacity(b);

	if (s->nspare >= QDEPTH * s->nw + 1 || b->raw ||
	    s->filling_bytes + s->sent_bytes + s->spare_bytes + cap > s->budget) {
		sink_batch_free(b);
		return;
	}
	s->spare_bytes += cap;
	free(b->msg);
	bads_clear(b);
	*b = (struct batch){ .next = s->spare, .data = b->data, .json = b->json, .rows = b->rows,
	                     .caprows = b->caprows, .segs = b->segs, .capsegs = b->capsegs,
	                     .odata = b->odata, .origs = b->origs, .caporigs = b->caporigs,
	                     .bads = b->bads, .capbads = b->capbads };
	dp_buf_reset(&b->data);
	dp_buf_reset(&b->json);
	dp_buf_reset(&b->odata);
	s->spare = b;
	s->nspare++;
}

static struct batch *
filling(struct dp_pgsink *s, struct dp_pgsink_src *src)
{
	if (!src->filling) {
		struct batch *b = s->spare;
		if (b) {
			s->spare = b->next;
			s->nspare--;
			s->spare_bytes -= batch_capacity(b);
			b->next = NULL;
		} else if (!(b = calloc(1, sizeof(*b)))) {
			return NULL;
		}
		b->src = src;
		b->gen = src->gen;
		b->start = b->end = src->end;
		b->raw = !s->table_ready;
		b->mv = s->mv;
		b->born_ms = dp_time_mono_ms();
		src->filling = b;
	}
	return src->filling;
}

bool
sink_full(const struct dp_pgsink *s, const struct batch *b)
{
	return b->nrows >= s->cfg.batch_rows || sink_batch_bytes(b) >= s->cfg.batch_bytes;
}

bool
sink_lingered(const struct dp_pgsink *s, const struct batch *b, int64_t now)
{
	return (b->nrows || b->end > b->start) && now - b->born_ms >= s->cfg.linger_ms;
}

/* Take back the rows of the record being added. */
static void
undo_record(struct dp_pgsink_src *src, struct batch *b)
{
	b->nrows = src->rec_row;
	dp_buf_truncate(&b->data, src->rec_pos);
	dp_buf_truncate(&b->json, src->rec_jpos);
	b->nsegs = src->rec_seg;
	if (src->raw_kept && b->norigs > src->rec_orig) {
		dp_buf_truncate(&b->odata, b->origs[src->rec_orig].pos);
		b->norigs = src->rec_orig;
		src->raw_kept = false;
	}
	src->rec = -1;
}

void
dp_pgsink_raw(struct dp_pgsink *s, struct dp_pgsink_src *src, int64_t offset, const void *key,
              size_t klen, const void *value, size_t vlen)
{
	(void)s;
	src->raw_off = offset;
	src->raw_key = key;
	src->raw_klen = klen;
	src->raw_val = value;
	src->raw_vlen = vlen;
	src->raw_hdr = NULL;
	src->raw_hlen = 0;
	src->raw_kept = false;
}

void
dp_pgsink_raw_headers(struct dp_pgsink *s, struct dp_pgsink_src *src, const void *hdr,
                      size_t hlen)
{
	(void)s;
	src->raw_hdr = hlen ? hdr : NULL;
	src->raw_hlen = hlen;
}

int
dp_pgsink_add(struct dp_pgsink *s, struct dp_pgsink_src *src, int64_t offset, const char *json,
              size_t len, struct dp_buf *err)
{
	struct batch *b;
	int rc;

	if (src->closed || !src->active)
		return DP_PGSINK_STOPPED;
	if (!(b = filling(s, src))) {
		dp_buf_msgf(err, "out of memory");
		return DP_EX_SOFTWARE;
	}
	if (src->rec != offset) {
		src->rec = offset;
		src->rec_row = b->nrows;
		src->rec_pos = b->data.len;
		src->rec_seg = b->nsegs;
		src->rec_orig = b->norigs;
		src->rec_jpos = b->json.len;
	}
	size_t before = sink_batch_bytes(b);
	if (b->raw) {
		/* No table yet: keep the text; the first due batch makes the table. */
		const char *jwhy;
		size_t off;
		enum dp_json_type t = dp_json_check(json, len, &jwhy, &off);
		struct inference one = { NULL, 0, 0 };
		int shapes = t == DP_JSON_OBJECT ? sink_row_columns(s, json, len, &one) : 0;
		sink_seen_clear(&one);
		free(one.v);
		if (shapes < 0)
			return nomem(err);
		if (!shapes) {
			if (t == DP_JSON_INVALID) {
				dp_buf_reset(&s->why);
				dp_buf_msgf(&s->why, "not JSON: %s at byte %zu", jwhy, off + 1);
			} else if (t != DP_JSON_OBJECT) {
				dp_buf_reset(&s->why);
				dp_buf_msgf(&s->why, "not a JSON object");
			}
			s->filling_bytes -= before;
			undo_record(src, b);
			s->filling_bytes += sink_batch_bytes(b);
			return bad_row(s, src, offset, json, len, err);
		}
		if (grow_rows(b) < 0 || dp_buf_add(&b->data, json, len) < 0 ||
		    keep_orig(s, src, b, offset) < 0) {
			dp_buf_msgf(err, "out of memory");
			return DP_EX_SOFTWARE;
		}
		b->rows[b->nrows].offset = offset;
		b->rows[b->nrows].pos = b->rows[b->nrows].jpos = b->data.len - len;
		b->nrows++;
		s->filling_bytes += sink_batch_bytes(b) - before;
		return 0;
	}
	size_t at = b->data.len;
	rc = encode_row(s, b, json, len, err);
	if (rc == 0) {
		/* The row's JSON stays with it: a change of the table encodes it again. */
		b->rows[b->nrows].offset = offset;
		b->rows[b->nrows].pos = at;
		b->rows[b->nrows].jpos = b->json.len;
		b->nrows++;
		if (dp_buf_add(&b->json, json, len) < 0 || keep_orig(s, src, b, offset) < 0) {
			dp_buf_msgf(err, "out of memory");
			return DP_EX_SOFTWARE;
		}
		s->filling_bytes += sink_batch_bytes(b) - before;
		return 0;
	}
	s->filling_bytes -= before;
	undo_record(src, b);
	s->filling_bytes += sink_batch_bytes(b);
	if (rc == DP_PGSINK_BAD)
		return bad_row(s, src, offset, json, len, err);
	return rc;
}

void
dp_pgsink_done(struct dp_pgsink *s, struct dp_pgsink_src *src, int64_t next)
{
	struct batch *b;

	if (!src->active)
		return;
	b = filling(s, src);
	src->rec = src->raw_off = -1;
	src->end = next;
	if (b)
		b->end = next;
	/* Without memory for a batch the advance waits for the next one. */
}

bool
dp_pgsink_room(const struct dp_pgsink *s, const struct dp_pgsink_src *src)
{
	if (src->filling && sink_full(s, src->filling))
		return false;
	return s->filling_bytes + s->sent_bytes < s->budget;
}

bool
dp_pgsink_due(struct dp_pgsink *s)
{
	int64_t now = dp_time_mono_ms();

	if (atomic_load(&s->answered) || s->stop_pending || s->ctl_broken || s->stale)
		return true;
	/* A batch whose writer has QDEPTH queued cannot go yet: not due, or a
	 * reader that asks would spin while the database is slow or locked. */
	bool can_submit = false;
	for (size_t i = 0; i < s->nsrc; i++) {
		const struct dp_pgsink_src *src = s->src[i];
		const struct batch *b = src->filling;
		if (!b || s->w[src->writer].queued >= QDEPTH)
			continue;
		can_submit = true;
		if (sink_full(s, b) || sink_lingered(s, b, now) || (src->flush && !src->queued))
			return true;
	}
	return can_submit && s->filling_bytes >= s->budget;
}

/* ---- raw batches, and batches of a changed table ----------------------- */

/*
 * Encode the raw batches now that the table exists.  A bad row is
 * reported; the fail mode ends the batch (and its source) there.
 * All or nothing: on DP_PGSINK_DOWN the raw batches stay as they were.
 */
int
sink_encode_raw(struct dp_pgsink *s, struct dp_buf *err)
{
	for (size_t i = 0; i < s->nsrc; i++) {
		struct dp_pgsink_src *src = s->src[i];
		struct batch *raw = src->filling;
		if (!raw || !raw->raw)
			continue;
		struct batch *b = calloc(1, sizeof(*b));
		if (!b) {
			dp_buf_msgf(err, "out of memory");
			return DP_EX_SOFTWARE;
		}
		*b = (struct batch){ .src = src, .gen = raw->gen, .start = raw->start,
		                     .end = raw->end, .born_ms = raw->born_ms, .mv = s->mv };
		int64_t cur = -1;
		size_t rec_row = 0, rec_pos = 0, rec_seg = 0, rec_jpos = 0;
		for (size_t r = 0; r < raw->nrows; r++) {
			int64_t off = raw->rows[r].offset;
			if (off != cur) {
				cur = off;
				rec_row = b->nrows;
				rec_pos = b->data.len;
				rec_seg = b->nsegs;
				rec_jpos = b->json.len;
			}
			const char *json = raw->data.data + raw->rows[r].pos;
			size_t len = (r + 1 < raw->nrows ? raw->rows[r + 1].pos : raw->data.len) -
			             raw->rows[r].pos;
			size_t at = b->data.len;
			int rc = encode_row(s, b, json, len, err);
			if (rc == 0) {
				b->rows[b->nrows].offset = off;
				b->rows[b->nrows].pos = at;
				b->rows[b->nrows].jpos = b->json.len;
				b->nrows++;
				if (dp_buf_add(&b->json, json, len) < 0) {
					sink_batch_free(b);
					return nomem(err);
				}
				continue;
			}
			b->nrows = rec_row;
			dp_buf_truncate(&b->data, rec_pos);
			dp_buf_truncate(&b->json, rec_jpos);
			b->nsegs = rec_seg;
			if (rc != DP_PGSINK_BAD) {
				sink_batch_free(b);
				return rc;
			}
			rc = sink_report_kept(s, raw, off, dp_buf_str(&s->why), "", json, len);
			if (rc && s->cfg.on_error != DP_PGSINK_FAIL) {
				sink_batch_free(b);
				return rc;
			}
			if (s->cfg.on_error == DP_PGSINK_FAIL) {
				b->end = off;
				src->end = off;
				src->closed = true;
				s->stop_pending = true;
				break;
			}
			/* skip the rest of this record's rows */
			while (r + 1 < raw->nrows && raw->rows[r + 1].offset == off)
				r++;
		}
		/* The records as they came stay with their rows. */
		b->odata = raw->odata;
		b->origs = raw->origs;
		b->norigs = raw->norigs;
		b->caporigs = raw->caporigs;
		raw->odata = (struct dp_buf)DP_BUF_INIT;
		raw->origs = NULL;
		raw->norigs = raw->caporigs = 0;
		s->filling_bytes -= sink_batch_bytes(raw);
		s->filling_bytes += sink_batch_bytes(b);
		src->filling = b;
		src->rec = -1;
		sink_batch_free(raw);
		if (src->closed)
			sink_submit(s, src);     /* what came before the bad row still lands */
	}
	return 0;
}

/*
 * Why a row of a batch encoded before the table changed does not fit it
 * now (s->why, s->bad_col), as the run's last words: the table, the
 * column, its old and new type, the record.  Returns 78.
 */
static int
misfit(struct dp_pgsink *s, const struct dp_pgsink_src *src, int64_t offset, struct dp_buf *err)
{
	dp_buf_msgf(err, "table %s changed under dp-sink-pg", s->cfg.table);
	if (s->bad_col >= 0 && (size_t)s->bad_col < s->ncols) {
		const struct column *c = &s->cols[s->bad_col];
		dp_buf_msgf(err, " (column ");
		sink_msg_name(err, c->name, c->len);
		if (c->was)
			dp_buf_msgf(err, " is now %s, was %s)", c->type, c->was);
		else if (c->fresh)
			dp_buf_msgf(err, " %s%s is new)", c->type, c->notnull ? " NOT NULL" : "");
		else if (c->required)
			dp_buf_msgf(err, " %s is NOT NULL now)", c->type);
		else
			dp_buf_msgf(err, " is %s)", c->type);
	}
	dp_buf_msgf(err, ": ");
	dp_pgsink_where(src, offset, err);
	dp_buf_msgf(err, " no longer fits: %s; nothing of its batch was committed",
	            dp_buf_str(&s->why));
	return DP_EX_CONFIG;
}

/*
 * Encode b's rows again, from their JSON, for the model as it is now.
 * 0; 78 when a row does not fit (misfit); DP_PGSINK_DOWN or a status
 * when adding a column failed.  b is unchanged unless it succeeds.
 */
static int
reencode(struct dp_pgsink *s, struct batch *b, struct dp_buf *err)
{
	struct batch nb = { 0 };
	int rc = 0;

	s->reshaping = true;
	for (size_t r = 0; r < b->nrows; r++) {
		const char *json = b->json.data + b->rows[r].jpos;
		size_t len = (r + 1 < b->nrows ? b->rows[r + 1].jpos : b->json.len) - b->rows[r].jpos;
		size_t at = nb.data.len;
		s->bad_col = -1;
		rc = encode_row(s, &nb, json, len, err);
		if (rc == DP_PGSINK_BAD)
			rc = misfit(s, b->src, b->rows[r].offset, err);
		if (rc)
			break;
		nb.rows[nb.nrows] = (struct row){ b->rows[r].offset, at, b->rows[r].jpos };
		nb.nrows++;
	}
	s->reshaping = false;
	if (rc) {
		dp_buf_free(&nb.data);
		free(nb.rows);
		free(nb.segs);
		return rc;
	}
	dp_buf_free(&b->data);
	free(b->rows);
	free(b->segs);
	b->data = nb.data;
	b->rows = nb.rows;
	b->caprows = nb.caprows;
	b->segs = nb.segs;
	b->nsegs = nb.nsegs;
	b->capsegs = nb.capsegs;
	b->mv = s->mv;
	return 0;
}

/* b for the model as it is now: only its version when its rows are still good. */
int
sink_refresh(struct dp_pgsink *s, struct batch *b, struct dp_buf *err)
{
	if (b->raw || b->mv == s->mv)
		return 0;
	if (b->mv && b->mv->epoch == s->epoch) {
		b->mv = s->mv;
		return 0;
	}
	return reencode(s, b, err);
}
