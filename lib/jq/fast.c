/*
 * jq/fast.c -- a compiler and evaluator for the subset of jq in jq/fast.h.
 *
 * The parser follows jq 1.6's grammar (src/parser.y) for the forms it
 * accepts, with the same precedence: '|' (right) < 'or' < 'and' <
 * comparisons (non-associative) < terms with postfix paths.  Whatever it
 * does not recognize makes dp_jqf_compile() return NULL, and libjq, which
 * also reports the syntax errors, takes the expression.
 *
 * Every expression of the subset gives at most one value, so evaluating
 * one ends in a value, in no value (select said no: DP_JQF_EMPTY), or in
 * an error, which the subset leaves to libjq (DP_JQF_NEED_JQ: jq then
 * raises it with its own message).  Which of the last two a record gets
 * depends on the order in which jq evaluates the operands: the first one
 * that gives nothing or fails decides, and what comes after it is never
 * evaluated.  eval() keeps jq 1.6's order, construct by construct (each
 * checked with jq 1.6 and against libjq in tests/unit/test_lib.c's
 * jqfast_order case and fuzz/fuzz_jqfast.c):
 *
 *   A | B           A, then B on its value
 *   A == B  (and != < <= > >=)
 *                   B first, then A: jq compiles a comparison as a call
 *                   of _equal, _less, ... whose arguments it evaluates
 *                   last first, so `empty < error` is an error and
 *                   `error < empty` is empty (found by fuzz_jqfast:
 *                   `select(. > 8) > .z9` on 2 is jq's error "Cannot
 *                   index number", not empty)
 *   A and B, A or B A, then B only when A does not decide
 *   {k: A, l: B}    A, then B (left to right); keys are literals
 *   T.k  T."k"  T["k"]
 *                   T, then the member: of null it is null, of an
 *                   object its value or null, of anything else an error
 *   select(C)       C, then . or nothing
 *   not, tostring, literals, .
 *                   never an error
 *
 * The rest of jq's operators (arithmetic, `//`, `,`, `?`, try, reduce,
 * ...) are not in the subset: libjq evaluates expressions with them.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jq/fast.h"

enum node_kind {
	N_DOT,          /* . */
	N_FIELD,        /* a[0] then .key */
	N_LIT,          /* text */
	N_PIPE,         /* a | b */
	N_AND, N_OR,
	N_EQ, N_NE, N_LT, N_LE, N_GT, N_GE,
	N_NOT,          /* not (of its input) */
	N_TOSTRING,
	N_SELECT,       /* select(a) */
	N_OBJ,          /* keys[i]: kids[i] */
};

struct node {
	enum node_kind kind;
	struct node *a, *b;
	char *key;              /* N_FIELD: decoded key; owned */
	char *text;             /* N_LIT: JSON text; owned */
	size_t textlen;
	enum dp_json_type lit_type;
	char **keys;            /* N_OBJ: JSON string literals of the keys; owned */
	struct node **kids;
	size_t nkids;
};

struct dp_jqf {
	struct node *root;
};

/* ---- lexer ------------------------------------------------------------- */

enum tok {
	T_EOF, T_ERR, T_DOT, T_FIELD, T_DOTSTR, T_STR, T_NUM, T_IDENT,
	T_LPAREN, T_RPAREN, T_LBRACE, T_RBRACE, T_LBRACK, T_RBRACK,
	T_COMMA, T_COLON, T_PIPE, T_MINUS,
	T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE,
};

struct lex {
	const char *p;
	enum tok t;
	const char *s;          /* the token's text */
	size_t n;
	bool glued;             /* no white space before the token */
	unsigned ntok;          /* tokens read so far */
};

/*
 * The parser, the evaluator and node_free() recurse once per level of
 * the expression, and an expression may be text from anyone (a filter in
 * a request to dp-coord): 100000 nested parentheses overflowed the stack.
 * Each level takes at least one token, so a cap on the tokens bounds the
 * depth of every recursion; a longer expression is libjq's (whose parser
 * has a limit of its own: "memory exhausted").
 */
#define MAX_TOKENS 1000

static bool
ident_start(int c)
{
	return isalpha(c) || c == '_';
}

static bool
ident_char(int c)
{
	return isalnum(c) || c == '_';
}

/* A string literal from p (at '"'); its length, or 0 when jq would read
 * it differently (interpolation) or it is not valid JSON. */
static size_t
string_len(const char *p)
{
	const char *q = p + 1;

	for (;;) {
		if (*q == '\0')
			return 0;
		if (*q == '"')
			break;
		if (*q == '\\') {
			if (q[1] == '(' || q[1] == '\0')
				return 0;
			q += 2;
			continue;
		}
		q++;
	}
	size_t n = (size_t)(q + 1 - p);
	const char *why;
	size_t off;
	return dp_json_check(p, n, &why, &off) == DP_JSON_STRING ? n : 0;
}

static void
next(struct lex *l)
{
	const char *p = l->p;

	if (++l->ntok > MAX_TOKENS) {
		l->t = T_ERR;           /* past the cap: nothing parses any more */
		l->s = p;
		l->n = 0;
		return;
	}
	l->glued = true;
	while (isspace((unsigned char)*p)) {
		p++;
		l->glued = false;
	}
	l->s = p;
	l->n = 1;
	switch (*p) {
	case '\0': l->t = T_EOF; l->n = 0; break;
	case '(': l->t = T_LPAREN; break;
	case ')': l->t = T_RPAREN; break;
	case '{': l->t = T_LBRACE; break;
	case '}': l->t = T_RBRACE; break;
	case '[': l->t = T_LBRACK; break;
	case ']': l->t = T_RBRACK; break;
	case ',': l->t = T_COMMA; break;
	case ':': l->t = T_COLON; break;
	case '-': l->t = T_MINUS; break;
	case '|':
		l->t = p[1] == '=' ? T_ERR : T_PIPE;
		break;
	case '=':
		l->t = p[1] == '=' ? T_EQ : T_ERR;
		l->n = 2;
		break;
	case '!':
		l->t = p[1] == '=' ? T_NE : T_ERR;
		l->n = 2;
		break;
	case '<':
		l->t = p[1] == '=' ? T_LE : T_LT;
		l->n = p[1] == '=' ? 2 : 1;
		break;
	case '>':
		l->t = p[1] == '=' ? T_GE : T_GT;
		l->n = p[1] == '=' ? 2 : 1;
		break;
	case '"':
		l->n = string_len(p);
		l->t = l->n ? T_STR : T_ERR;
		break;
	case '.':
		if (ident_start((unsigned char)p[1])) {
			size_t n = 2;
			while (ident_char((unsigned char)p[n]))
				n++;
			l->t = T_FIELD;
			l->n = n;
		} else if (p[1] == '"') {
			size_t n = string_len(p + 1);
			l->t = n ? T_DOTSTR : T_ERR;
			l->n = n + 1;
		} else if (p[1] == '.' || isdigit((unsigned char)p[1])) {
			l->t = T_ERR;       /* .. and .5 are other things */
		} else {
			l->t = T_DOT;
		}
		break;
	default:
		if (isdigit((unsigned char)*p)) {
			/* jq: ([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)? */
			const char *q = p;
			while (isdigit((unsigned char)*q))
				q++;
			if (*q == '.') {
				q++;
				while (isdigit((unsigned char)*q))
					q++;
			}
			if (*q == 'e' || *q == 'E') {
				const char *e = q + 1;
				if (*e == '+' || *e == '-')
					e++;
				if (!isdigit((unsigned char)*e)) {
					l->t = T_ERR;
					break;
				}
				while (isdigit((unsigned char)*e))
					e++;
				q = e;
			}
			l->t = ident_char((unsigned char)*q) || *q == '.' ? T_ERR : T_NUM;
			l->n = (size_t)(q - p);
		} else if (ident_start((unsigned char)*p)) {
			size_t n = 1;
			while (ident_char((unsigned char)p[n]))
				n++;
			/* jq names may go on with "::"; not ours. */
			l->t = p[n] == ':' && p[n + 1] == ':' ? T_ERR : T_IDENT;
			l->n = n;
		} else {
			l->t = T_ERR;   /* $var, @format, ?, //, +, #comment, ... */
		}
	}
	l->p = p + l->n;
}

static bool
is_ident(const struct lex *l, const char *word)
{
	return l->t == T_IDENT && strlen(word) == l->n && memcmp(l->s, word, l->n) == 0;
}

/* jq 1.6's keywords: never a function name, never a shorthand key. */
static bool
is_keyword(const struct lex *l)
{
	static const char *const kw[] = { "def", "as", "if", "then", "elif", "else", "end",
		"reduce", "foreach", "try", "catch", "label", "import", "include", "module",
		"and", "or", "__loc__", NULL };

	for (int i = 0; kw[i]; i++)
		if (is_ident(l, kw[i]))
			return true;
	return false;
}

/* ---- parser ------------------------------------------------------------- */

static void node_free(struct node *n);

static struct node *
mk(enum node_kind k, struct node *a, struct node *b)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n) {
		node_free(a);
		node_free(b);
		return NULL;
	}
	n->kind = k;
	n->a = a;
	n->b = b;
	return n;
}

static void
node_free(struct node *n)
{
	if (!n)
		return;
	node_free(n->a);
	node_free(n->b);
	free(n->key);
	free(n->text);
	for (size_t i = 0; i < n->nkids; i++) {
		free(n->keys[i]);
		node_free(n->kids[i]);
	}
	free(n->keys);
	free(n->kids);
	free(n);
}

/* The decoded bytes of a string literal, NUL-terminated; NULL when it
 * holds a NUL (keys are C strings here) or memory runs out. */
static char *
decode(const char *s, size_t n)
{
	struct dp_buf b = DP_BUF_INIT;

	if (dp_json_unquote(&b, s, n) < 0 || dp_buf_addstr(&b, "") < 0 ||
	    memchr(b.data, '\0', b.len)) {
		dp_buf_free(&b);
		return NULL;
	}
	return dp_buf_detach(&b, NULL);
}

static struct node *
field(struct node *of, char *key)
{
	struct node *n;

	if (!key) {
		node_free(of);
		return NULL;
	}
	n = mk(N_FIELD, of, NULL);
	if (!n) {
		free(key);
		return NULL;
	}
	n->key = key;
	return n;
}

static struct node *
literal(const char *s, size_t n, enum dp_json_type t)
{
	struct node *l = mk(N_LIT, NULL, NULL);

	if (!l)
		return NULL;
	l->text = strndup(s, n);
	l->textlen = n;
	l->lit_type = t;
	if (!l->text) {
		node_free(l);
		return NULL;
	}
	return l;
}

/*
 * A number literal: only when its text is a JSON number too, since values
 * are handed on as their text.  jq also reads 2. and 01 (as 2 and 1);
 * those are left to libjq, which prints them as JSON.
 */
static struct node *
number(const char *s, size_t n)
{
	const char *why;
	size_t off;

	if (dp_json_check(s, n, &why, &off) != DP_JSON_NUMBER)
		return NULL;
	return literal(s, n, DP_JSON_NUMBER);
}

static struct node *parse_pipe(struct lex *l);

/* Postfix paths after a term: .a  ."b"  ["c"] (glued, as jq lexes them). */
static struct node *
postfix(struct lex *l, struct node *t)
{
	while (t && l->glued) {
		if (l->t == T_FIELD) {
			t = field(t, strndup(l->s + 1, l->n - 1));
			next(l);
		} else if (l->t == T_DOTSTR) {
			t = field(t, decode(l->s + 1, l->n - 1));
			next(l);
		} else if (l->t == T_LBRACK) {
			next(l);
			if (l->t != T_STR) {
				node_free(t);
				return NULL;
			}
			t = field(t, decode(l->s, l->n));
			next(l);
			if (l->t != T_RBRACK) {
				node_free(t);
				return NULL;
			}
			next(l);
		} else {
			break;
		}
	}
	return t;
}

/* ExpD of an object value: Term ('|' Term)*. */
static struct node *parse_term(struct lex *l);

static struct node *
parse_value(struct lex *l)
{
	struct node *t = parse_term(l);

	if (t && l->t == T_PIPE) {
		next(l);
		struct node *r = parse_value(l);
		if (!r) {
			node_free(t);
			return NULL;
		}
		t = mk(N_PIPE, t, r);
	}
	return t;
}

static int
add_pair(struct node *o, const char *keytext, size_t keylen, struct node *v)
{
	char *k = strndup(keytext, keylen);
	char **keys = realloc(o->keys, (o->nkids + 1) * sizeof(*keys));
	struct node **kids = keys ? realloc(o->kids, (o->nkids + 1) * sizeof(*kids)) : NULL;

	if (keys)
		o->keys = keys;
	if (kids)
		o->kids = kids;
	if (!k || !keys || !kids) {
		free(k);
		node_free(v);
		return -1;
	}
	/* jq keeps the last of a repeated key; rare enough to leave to jq. */
	for (size_t i = 0; i < o->nkids; i++) {
		char *a = decode(o->keys[i], strlen(o->keys[i])), *b = decode(k, keylen);
		bool same = a && b && strcmp(a, b) == 0;
		free(a);
		free(b);
		if (same || !a || !b) {
			free(k);
			node_free(v);
			return -1;
		}
	}
	o->keys[o->nkids] = k;
	o->kids[o->nkids++] = v;
	return 0;
}

static struct node *
parse_object(struct lex *l)
{
	struct node *o = mk(N_OBJ, NULL, NULL);
	struct dp_buf key = DP_BUF_INIT;

	if (!o)
		return NULL;
	next(l);                        /* { */
	while (l->t != T_RBRACE) {
		struct node *v;
		dp_buf_reset(&key);
		if (l->t == T_IDENT && !is_keyword(l)) {
			if (dp_json_quote(&key, l->s, l->n) < 0)
				goto fail;
			char *name = strndup(l->s, l->n);
			next(l);
			if (l->t == T_COLON) {
				free(name);
				next(l);
				v = parse_value(l);
			} else {
				v = field(mk(N_DOT, NULL, NULL), name);
			}
		} else if (l->t == T_STR) {
			if (dp_buf_add(&key, l->s, l->n) < 0)
				goto fail;
			char *name = decode(l->s, l->n);
			next(l);
			if (l->t == T_COLON) {
				free(name);
				next(l);
				v = parse_value(l);
			} else {
				v = field(mk(N_DOT, NULL, NULL), name);
			}
		} else {
			goto fail;
		}
		if (!v || add_pair(o, key.data, key.len, v) < 0)
			goto fail;
		if (l->t == T_COMMA)
			next(l);
		else if (l->t != T_RBRACE)
			goto fail;
	}
	next(l);                        /* } */
	dp_buf_free(&key);
	return o;
fail:
	dp_buf_free(&key);
	node_free(o);
	return NULL;
}

static struct node *
parse_term(struct lex *l)
{
	struct node *t = NULL;

	switch (l->t) {
	case T_DOT:
		next(l);
		t = mk(N_DOT, NULL, NULL);
		break;
	case T_FIELD:
		t = field(mk(N_DOT, NULL, NULL), strndup(l->s + 1, l->n - 1));
		next(l);
		break;
	case T_DOTSTR:
		t = field(mk(N_DOT, NULL, NULL), decode(l->s + 1, l->n - 1));
		next(l);
		break;
	case T_STR:
		t = literal(l->s, l->n, DP_JSON_STRING);
		next(l);
		break;
	case T_NUM:
		if (!(t = number(l->s, l->n)))
			return NULL;
		next(l);
		break;
	case T_MINUS: {
		next(l);
		if (l->t != T_NUM)
			return NULL;
		struct dp_buf b = DP_BUF_INIT;
		if (dp_buf_addch(&b, '-') == 0 && dp_buf_add(&b, l->s, l->n) == 0)
			t = number(b.data, b.len);
		dp_buf_free(&b);
		next(l);
		return t;       /* jq: '-' Exp, so no postfix binds to the number */
	}
	case T_LPAREN:
		next(l);
		t = parse_pipe(l);
		if (!t || l->t != T_RPAREN) {
			node_free(t);
			return NULL;
		}
		next(l);
		break;
	case T_LBRACE:
		t = parse_object(l);
		break;
	case T_IDENT:
		if (is_ident(l, "true") || is_ident(l, "false") || is_ident(l, "null")) {
			t = literal(l->s, l->n, is_ident(l, "null") ? DP_JSON_NULL :
			            is_ident(l, "true") ? DP_JSON_TRUE : DP_JSON_FALSE);
			next(l);
		} else if (is_ident(l, "not")) {
			next(l);
			t = mk(N_NOT, NULL, NULL);
		} else if (is_ident(l, "tostring")) {
			next(l);
			t = mk(N_TOSTRING, NULL, NULL);
		} else if (is_ident(l, "select")) {
			next(l);
			if (l->t != T_LPAREN)
				return NULL;
			next(l);
			struct node *c = parse_pipe(l);
			if (!c || l->t != T_RPAREN) {
				node_free(c);
				return NULL;
			}
			next(l);
			t = mk(N_SELECT, c, NULL);
		} else {
			return NULL;
		}
		/* A call like not(x) or select without (x) is another thing. */
		if (t && l->t == T_LPAREN) {
			node_free(t);
			return NULL;
		}
		break;
	default:
		return NULL;
	}
	return postfix(l, t);
}

static struct node *
parse_cmp(struct lex *l)
{
	static const struct { enum tok t; enum node_kind k; } ops[] = {
		{ T_EQ, N_EQ }, { T_NE, N_NE }, { T_LT, N_LT }, { T_LE, N_LE },
		{ T_GT, N_GT }, { T_GE, N_GE },
	};
	struct node *a = parse_term(l);

	if (!a)
		return NULL;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (l->t != ops[i].t)
			continue;
		next(l);
		struct node *b = parse_term(l);
		if (!b) {
			node_free(a);
			return NULL;
		}
		a = mk(ops[i].k, a, b);
		/* Non-associative: a == b == c is a syntax error in jq. */
		for (size_t j = 0; a && j < sizeof(ops) / sizeof(ops[0]); j++)
			if (l->t == ops[j].t) {
				node_free(a);
				return NULL;
			}
		break;
	}
	return a;
}

/* Operands of sub joined by the word op, to the left: a op b op c. */
static struct node *
parse_logic(struct lex *l, const char *op, enum node_kind kind,
            struct node *(*sub)(struct lex *))
{
	struct node *a = sub(l);

	while (a && is_ident(l, op)) {
		next(l);
		struct node *b = sub(l);
		a = b ? mk(kind, a, b) : (node_free(a), NULL);
	}
	return a;
}

static struct node *
parse_and(struct lex *l)
{
	return parse_logic(l, "and", N_AND, parse_cmp);
}

static struct node *
parse_or(struct lex *l)
{
	return parse_logic(l, "or", N_OR, parse_and);
}

static struct node *
parse_pipe(struct lex *l)
{
	struct node *a = parse_or(l);

	if (a && l->t == T_PIPE) {
		next(l);
		struct node *b = parse_pipe(l);
		a = b ? mk(N_PIPE, a, b) : (node_free(a), NULL);
	}
	return a;
}

struct dp_jqf *
dp_jqf_compile(const char *src)
{
	struct lex l = { src, T_EOF, src, 0, true, 0 };
	struct dp_jqf *f;
	struct node *root;

	next(&l);
	root = parse_pipe(&l);
	if (!root || l.t != T_EOF) {
		node_free(root);
		return NULL;
	}
	f = malloc(sizeof(*f));
	if (!f) {
		node_free(root);
		return NULL;
	}
	f->root = root;
	return f;
}

void
dp_jqf_free(struct dp_jqf *f)
{
	if (!f)
		return;
	node_free(f->root);
	free(f);
}

void
dp_jqf_run_free(struct dp_jqf_run *r)
{
	if (!r)
		return;
	dp_buf_free(&r->arena);
	dp_buf_free(&r->tmp);
}

/* ---- evaluation --------------------------------------------------------- */

/*
 * A value is JSON text: borrowed from the record (base set) or at an
 * offset in the run's arena (base NULL), which may move as it grows.
 */
struct val {
	enum dp_json_type t;
	const char *base;
	size_t off, n;
};

static const char *
text_of(const struct dp_jqf_run *r, const struct val *v)
{
	return v->base ? v->base + v->off : r->arena.data + v->off;
}

static struct val
constant(const char *s)
{
	struct val v = { dp_json_type_of(s), s, 0, strlen(s) };
	return v;
}

static struct val
boolean(bool b)
{
	return constant(b ? "true" : "false");
}

static bool
truthy(const struct val *v)
{
	return v->t != DP_JSON_NULL && v->t != DP_JSON_FALSE;
}

/* jq's order of kinds (jv.c jv_cmp): null, false, true, number, string, array, object. */
static int
rank(enum dp_json_type t)
{
	switch (t) {
	case DP_JSON_NULL: return 0;
	case DP_JSON_FALSE: return 1;
	case DP_JSON_TRUE: return 2;
	case DP_JSON_NUMBER: return 3;
	case DP_JSON_STRING: return 4;
	case DP_JSON_ARRAY: return 5;
	default: return 6;
	}
}

/* The decoded bytes of a string value into b.  0 or -1 (memory). */
static int
string_bytes(struct dp_buf *b, const char *s, size_t n)
{
	dp_buf_reset(b);
	return dp_json_unquote(b, s, n);
}

/*
 * The double of the number text s[0..n).  The text need not end in a
 * delimiter: a record that is one number may be the last bytes of a
 * Kafka payload, and strtod would read on past it (found by fuzz_jqfast,
 * which saw "2" compare as 25 against stale memory).  0, or -1 when
 * memory runs out.
 */
static int
number_value(const char *s, size_t n, double *d)
{
	char small[64];
	char *p = n < sizeof(small) ? small : malloc(n + 1);

	if (!p)
		return -1;
	memcpy(p, s, n);
	p[n] = '\0';
	*d = strtod(p, NULL);
	if (p != small)
		free(p);
	return 0;
}

/*
 * Compare a and b as jq does.  Returns DP_JQF_VALUE with *cmp set, or
 * DP_JQF_NEED_JQ for two arrays or two objects.
 */
static enum dp_jqf_result
compare(struct dp_jqf_run *r, const struct val *a, const struct val *b, int *cmp)
{
	int ra = rank(a->t), rb = rank(b->t);
	const char *sa = text_of(r, a), *sb = text_of(r, b);

	if (ra != rb) {
		*cmp = ra < rb ? -1 : 1;
		return DP_JQF_VALUE;
	}
	switch (a->t) {
	case DP_JSON_NUMBER: {
		/* jq 1.6 holds numbers as doubles: compare those. */
		double da, db;
		if (number_value(sa, a->n, &da) < 0 || number_value(sb, b->n, &db) < 0)
			return DP_JQF_NOMEM;
		*cmp = da < db ? -1 : da > db ? 1 : 0;
		return DP_JQF_VALUE;
	}
	case DP_JSON_STRING: {
		/* Bytewise on the decoded strings (jv.c string_cmp). */
		if (!memchr(sa, '\\', a->n) && !memchr(sb, '\\', b->n)) {
			size_t la = a->n - 2, lb = b->n - 2;
			int c = memcmp(sa + 1, sb + 1, la < lb ? la : lb);
			*cmp = c ? c : la < lb ? -1 : la > lb ? 1 : 0;
			return DP_JQF_VALUE;
		}
		struct dp_buf x = DP_BUF_INIT;
		if (string_bytes(&x, sa, a->n) < 0 || string_bytes(&r->tmp, sb, b->n) < 0) {
			dp_buf_free(&x);
			return DP_JQF_NOMEM;
		}
		int c = memcmp(x.data ? x.data : "", r->tmp.data ? r->tmp.data : "",
		               x.len < r->tmp.len ? x.len : r->tmp.len);
		*cmp = c ? c : x.len < r->tmp.len ? -1 : x.len > r->tmp.len ? 1 : 0;
		dp_buf_free(&x);
		return DP_JQF_VALUE;
	}
	case DP_JSON_ARRAY:
	case DP_JSON_OBJECT:
		return DP_JQF_NEED_JQ;
	default:
		*cmp = 0;       /* null, false, true: the kind is the value */
		return DP_JQF_VALUE;
	}
}

static enum dp_jqf_result eval(const struct node *n, struct dp_jqf_run *r,
                               const struct val *in, struct val *out);

/* -?[0-9]+ : a number literal jq prints with the same digits (up to 2^53). */
static bool
plain_integer(const char *s, size_t n)
{
	size_t i = s[0] == '-';

	if (i == n)
		return false;
	for (; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/*
 * Whether jq 1.6 would print the compact value s[0..n) with the same
 * bytes, so that its text can stand for jq's tostring.  jq prints numbers
 * in its own shortest form (1.0 -> 1, 1e2 -> 100), writes strings with
 * its own escapes (\u00e9 -> the UTF-8, DEL -> \u007f), and keeps only
 * the last of duplicate keys; text that may differ in any of those ways
 * is left to jq.  Integers beyond 2^53 keep their digits, as everywhere
 * in the subset.  Deep or wide values are left to jq as well, to bound
 * the work.
 */
static bool
dumps_as_jq(const char *s, size_t n, enum dp_json_type t, int depth)
{
	const char *key[64], *k, *v;
	size_t klen[64], kn, vn, pos = 0;
	int nk = 0;

	switch (t) {
	case DP_JSON_NUMBER:
		return plain_integer(s, n);
	case DP_JSON_STRING:
		return !memchr(s, '\\', n) && !memchr(s, 0x7f, n);
	case DP_JSON_ARRAY:
		if (depth >= 32)
			return false;
		while ((t = dp_json_next_element(s, n, &pos, &v, &vn)) != DP_JSON_INVALID)
			if (!dumps_as_jq(v, vn, t, depth + 1))
				return false;
		return true;
	case DP_JSON_OBJECT:
		if (depth >= 32)
			return false;
		while ((t = dp_json_next_member(s, n, &pos, &k, &kn, &v, &vn)) != DP_JSON_INVALID) {
			if (nk == 64 || !dumps_as_jq(k, kn, DP_JSON_STRING, depth) ||
			    !dumps_as_jq(v, vn, t, depth + 1))
				return false;
			for (int i = 0; i < nk; i++)
				if (klen[i] == kn && !memcmp(key[i], k, kn))
					return false;
			key[nk] = k;
			klen[nk++] = kn;
		}
		return true;
	default:
		return true;    /* null, true, false */
	}
}

static enum dp_jqf_result
eval_field(const struct node *n, struct dp_jqf_run *r, const struct val *in,
           struct val *out)
{
	struct val of;
	enum dp_jqf_result rc = eval(n->a, r, in, &of);
	const char *key[1] = { n->key };
	const char *v;
	size_t vn;

	if (rc != DP_JQF_VALUE)
		return rc;
	if (of.t == DP_JSON_NULL) {
		*out = constant("null");
		return DP_JQF_VALUE;
	}
	if (of.t != DP_JSON_OBJECT)
		return DP_JQF_NEED_JQ;      /* jq: "Cannot index number with ..." */
	const char *s = text_of(r, &of);
	enum dp_json_type t = dp_json_get(s, of.n, key, 1, &v, &vn);
	if (vn == 0) {
		*out = constant("null");
		return DP_JQF_VALUE;
	}
	out->t = t;
	out->base = of.base;
	out->off = of.off + (size_t)(v - s);
	out->n = vn;
	return DP_JQF_VALUE;
}

/* Append text to the arena as a new value. */
static enum dp_jqf_result
arena_val(struct dp_jqf_run *r, size_t start, enum dp_json_type t, struct val *out)
{
	out->t = t;
	out->base = NULL;
	out->off = start;
	out->n = r->arena.len - start;
	return DP_JQF_VALUE;
}

static enum dp_jqf_result
eval_object(const struct node *n, struct dp_jqf_run *r, const struct val *in,
            struct val *out)
{
	struct val *vals = calloc(n->nkids ? n->nkids : 1, sizeof(*vals));
	enum dp_jqf_result rc = DP_JQF_VALUE;

	if (!vals)
		return DP_JQF_NOMEM;
	for (size_t i = 0; i < n->nkids && rc == DP_JQF_VALUE; i++)
		rc = eval(n->kids[i], r, in, &vals[i]);
	if (rc == DP_JQF_VALUE) {
		size_t start = r->arena.len;
		int e = dp_buf_addch(&r->arena, '{');
		for (size_t i = 0; i < n->nkids && e == 0; i++) {
			/* Text first into tmp: the value may live in the arena. */
			dp_buf_reset(&r->tmp);
			e = dp_json_compact(&r->tmp, text_of(r, &vals[i]), vals[i].n);
			if (e == 0 && i)
				e = dp_buf_addch(&r->arena, ',');
			if (e == 0)
				e = dp_buf_addstr(&r->arena, n->keys[i]);
			if (e == 0)
				e = dp_buf_addch(&r->arena, ':');
			if (e == 0)
				e = dp_buf_add(&r->arena, r->tmp.data, r->tmp.len);
		}
		if (e == 0)
			e = dp_buf_addch(&r->arena, '}');
		rc = e ? DP_JQF_NOMEM : arena_val(r, start, DP_JSON_OBJECT, out);
	}
	free(vals);
	return rc;
}

static enum dp_jqf_result
eval(const struct node *n, struct dp_jqf_run *r, const struct val *in, struct val *out)
{
	struct val a, b;
	enum dp_jqf_result rc;
	int cmp;

	switch (n->kind) {
	case N_DOT:
		*out = *in;
		return DP_JQF_VALUE;
	case N_FIELD:
		return eval_field(n, r, in, out);
	case N_LIT:
		out->t = n->lit_type;
		out->base = n->text;
		out->off = 0;
		out->n = n->textlen;
		return DP_JQF_VALUE;
	case N_PIPE:
		if ((rc = eval(n->a, r, in, &a)) != DP_JQF_VALUE)
			return rc;
		return eval(n->b, r, &a, out);
	case N_AND:
	case N_OR:
		if ((rc = eval(n->a, r, in, &a)) != DP_JQF_VALUE)
			return rc;
		/* jq evaluates the right side only when the left does not decide. */
		if (truthy(&a) == (n->kind == N_OR)) {
			*out = boolean(n->kind == N_OR);
			return DP_JQF_VALUE;
		}
		if ((rc = eval(n->b, r, in, &b)) != DP_JQF_VALUE)
			return rc;
		*out = boolean(truthy(&b));
		return DP_JQF_VALUE;
	case N_EQ: case N_NE: case N_LT: case N_LE: case N_GT: case N_GE:
		/* The right operand first, as jq (see the top of the file). */
		if ((rc = eval(n->b, r, in, &b)) != DP_JQF_VALUE ||
		    (rc = eval(n->a, r, in, &a)) != DP_JQF_VALUE ||
		    (rc = compare(r, &a, &b, &cmp)) != DP_JQF_VALUE)
			return rc;
		switch (n->kind) {
		case N_EQ: *out = boolean(cmp == 0); break;
		case N_NE: *out = boolean(cmp != 0); break;
		case N_LT: *out = boolean(cmp < 0); break;
		case N_LE: *out = boolean(cmp <= 0); break;
		case N_GT: *out = boolean(cmp > 0); break;
		default:   *out = boolean(cmp >= 0); break;
		}
		return DP_JQF_VALUE;
	case N_NOT:
		*out = boolean(!truthy(in));
		return DP_JQF_VALUE;
	case N_TOSTRING: {
		if (in->t == DP_JSON_STRING) {
			*out = *in;
			return DP_JQF_VALUE;
		}
		/*
		 * The value's compact text, as a string, when that is what jq
		 * prints; an integer keeps every digit (jq 1.6 would round one
		 * beyond 2^53).  Anything jq would print its own way is its to
		 * answer.
		 */
		dp_buf_reset(&r->tmp);
		if (dp_json_compact(&r->tmp, text_of(r, in), in->n) < 0)
			return DP_JQF_NOMEM;
		if (!dumps_as_jq(r->tmp.data, r->tmp.len, in->t, 0))
			return DP_JQF_NEED_JQ;
		size_t start = r->arena.len;
		if (dp_json_quote(&r->arena, r->tmp.data, r->tmp.len) < 0)
			return DP_JQF_NOMEM;
		return arena_val(r, start, DP_JSON_STRING, out);
	}
	case N_SELECT:
		if ((rc = eval(n->a, r, in, &a)) != DP_JQF_VALUE)
			return rc;
		if (!truthy(&a))
			return DP_JQF_EMPTY;
		*out = *in;
		return DP_JQF_VALUE;
	case N_OBJ:
		return eval_object(n, r, in, out);
	}
	return DP_JQF_NEED_JQ;
}

enum dp_jqf_result
dp_jqf_eval(const struct dp_jqf *f, struct dp_jqf_run *run, const char *json, size_t n,
            enum dp_json_type *type, const char **v, size_t *vn)
{
	size_t lead = 0;

	while (lead < n && (json[lead] == ' ' || json[lead] == '\t' || json[lead] == '\n' ||
	                    json[lead] == '\r'))
		lead++;
	while (n > lead && (json[n - 1] == ' ' || json[n - 1] == '\t' || json[n - 1] == '\n' ||
	                    json[n - 1] == '\r'))
		n--;
	struct val in = { dp_json_type_of(json + lead), json, lead, n - lead }, out;
	dp_buf_reset(&run->arena);
	enum dp_jqf_result rc = eval(f->root, run, &in, &out);
	if (rc == DP_JQF_VALUE) {
		*type = out.t;
		*v = text_of(run, &out);
		*vn = out.n;
	}
	return rc;
}

enum dp_jqf_result
dp_jqf_test(const struct dp_jqf *f, struct dp_jqf_run *run, const char *json, size_t n,
            bool *truth)
{
	enum dp_json_type t;
	const char *v;
	size_t vn;
	enum dp_jqf_result rc = dp_jqf_eval(f, run, json, n, &t, &v, &vn);

	*truth = rc == DP_JQF_VALUE && t != DP_JSON_NULL && t != DP_JSON_FALSE;
	return rc == DP_JQF_EMPTY ? DP_JQF_VALUE : rc;
}

size_t
dp_jqf_path(const struct dp_jqf *f, const char **path, size_t max)
{
	size_t n = 0;
	const struct node *x = f->root;

	for (; x->kind == N_FIELD; x = x->a)
		n++;
	if (x->kind != N_DOT || n == 0 || n > max)
		return 0;
	x = f->root;
	for (size_t i = n; i-- > 0; x = x->a)
		path[i] = x->key;
	return n;
}

/* The steps of a plain path node into path[]; 0 when n is not one. */
static size_t
node_path(const struct node *n, const char **path, size_t max)
{
	size_t k = 0;
	const struct node *x;

	for (x = n; x->kind == N_FIELD; x = x->a)
		k++;
	if (x->kind != N_DOT || k == 0 || k > max)
		return 0;
	x = n;
	for (size_t i = k; i-- > 0; x = x->a)
		path[i] = x->key;
	return k;
}

static bool
equalities(const struct node *n, dp_jqf_eq_fn fn, void *ctx, bool call)
{
	const char *path[16];
	size_t k;

	if (n->kind == N_AND)
		return equalities(n->a, fn, ctx, call) && equalities(n->b, fn, ctx, call);
	if (n->kind != N_EQ)
		return false;
	const struct node *p = n->a, *lit = n->b;
	if (p->kind == N_LIT) {
		p = n->b;
		lit = n->a;
	}
	if (lit->kind != N_LIT ||
	    (lit->lit_type != DP_JSON_STRING && lit->lit_type != DP_JSON_NUMBER))
		return false;
	k = node_path(p, path, 16);
	if (!k)
		return false;
	if (call)
		fn(ctx, path, k, lit->text, lit->textlen);
	return true;
}

int
dp_jqf_equalities(const struct dp_jqf *f, dp_jqf_eq_fn fn, void *ctx)
{
	if (!equalities(f->root, fn, ctx, false))
		return 0;
	equalities(f->root, fn, ctx, true);
	return 1;
}
