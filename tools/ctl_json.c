/*
 * ctl_json: recursive-descent JSON parser into a tree (RFC 8259), for hfctl.
 */
#include "tools/ctl_json.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Deeper nesting than anything hfmount writes; bounds the recursion on hostile input. */
#define JSON_MAX_DEPTH 64

struct json {
	enum json_type type;
	bool b;
	double num;
	char *str;
	size_t n, cap;
	struct json *items; /* array elements or object values */
	char **keys;	    /* object keys, parallel to items */
};

struct parser {
	const char *start, *p, *end;
	int depth;
	char *err;
	size_t errlen;
};

static int fail(struct parser *ps, const char *fmt, ...)
{
	char what[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(ps->err, ps->errlen, "bad JSON at byte %zu: %s", (size_t)(ps->p - ps->start),
		 what);
	return -EINVAL;
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end &&
	       (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static void node_clear(struct json *j)
{
	for (size_t i = 0; i < j->n; i++) {
		node_clear(&j->items[i]);
		if (j->keys)
			free(j->keys[i]);
	}
	free(j->items);
	free(j->keys);
	free(j->str);
	memset(j, 0, sizeof(*j));
}

/* A growable byte string for decoding string literals. */
struct sbuf {
	char *s;
	size_t len, cap;
};

static int sbuf_put(struct sbuf *b, const char *bytes, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 32;
		char *s;
		while (cap < b->len + n + 1)
			cap *= 2;
		s = realloc(b->s, cap);
		if (!s)
			return -ENOMEM;
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->len, bytes, n);
	b->len += n;
	b->s[b->len] = 0;
	return 0;
}

static int sbuf_put_utf8(struct sbuf *b, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return sbuf_put(b, u, n);
}

static int hex4(struct parser *ps, uint32_t *out)
{
	uint32_t v = 0;

	if (ps->end - ps->p < 4)
		return fail(ps, "short \\u escape");
	for (int i = 0; i < 4; i++) {
		char c = *ps->p++;
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return fail(ps, "bad hex digit in \\u escape");
	}
	*out = v;
	return 0;
}

/* After "\u": one code point, joining a UTF-16 surrogate pair into one. */
static int unicode_escape(struct parser *ps, struct sbuf *b)
{
	uint32_t cp, lo;
	int ret = hex4(ps, &cp);

	if (ret < 0)
		return ret;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return fail(ps, "lone low surrogate");
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
			return fail(ps, "high surrogate without its pair");
		ps->p += 2;
		ret = hex4(ps, &lo);
		if (ret < 0)
			return ret;
		if (lo < 0xdc00 || lo > 0xdfff)
			return fail(ps, "high surrogate without its pair");
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	return sbuf_put_utf8(b, cp);
}

static int escape(struct parser *ps, struct sbuf *b)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *hit;

	if (ps->p >= ps->end)
		return fail(ps, "unterminated string");
	if (*ps->p == 'u') {
		ps->p++;
		return unicode_escape(ps, b);
	}
	hit = memchr(from, *ps->p, sizeof(from) - 1);
	if (!hit)
		return fail(ps, "unknown escape \\%c", *ps->p);
	ps->p++;
	return sbuf_put(b, &to[hit - from], 1);
}

/* At the opening quote; *out gets a malloc'd NUL-terminated copy. */
static int parse_string(struct parser *ps, char **out)
{
	struct sbuf b = {0};
	int ret = sbuf_put(&b, "", 0);

	ps->p++;
	while (ret == 0) {
		const char *run = ps->p;
		while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' &&
		       (unsigned char)*ps->p >= 0x20)
			ps->p++;
		ret = sbuf_put(&b, run, (size_t)(ps->p - run));
		if (ret < 0)
			break;
		if (ps->p >= ps->end) {
			ret = fail(ps, "unterminated string");
		} else if (*ps->p == '"') {
			ps->p++;
			*out = b.s;
			return 0;
		} else if (*ps->p == '\\') {
			ps->p++;
			ret = escape(ps, &b);
		} else {
			ret = fail(ps, "control character in string");
		}
	}
	free(b.s);
	return ret;
}

static size_t span_digits(const char *p, const char *end)
{
	const char *q = p;
	while (q < end && *q >= '0' && *q <= '9')
		q++;
	return (size_t)(q - p);
}

/* Checks the JSON number grammar (no leading zeros, digits after '.' and 'e'), then
 * converts the span with strtod. */
static int parse_number(struct parser *ps, struct json *j)
{
	const char *s = ps->p, *q = s;
	char buf[64];
	size_t n;

	if (q < ps->end && *q == '-')
		q++;
	n = span_digits(q, ps->end);
	if (n == 0 || (n > 1 && *q == '0'))
		return fail(ps, "bad number");
	q += n;
	if (q < ps->end && *q == '.') {
		n = span_digits(++q, ps->end);
		if (n == 0)
			return fail(ps, "no digit after the decimal point");
		q += n;
	}
	if (q < ps->end && (*q == 'e' || *q == 'E')) {
		q++;
		if (q < ps->end && (*q == '+' || *q == '-'))
			q++;
		n = span_digits(q, ps->end);
		if (n == 0)
			return fail(ps, "no digit in the exponent");
		q += n;
	}
	if ((size_t)(q - s) >= sizeof(buf))
		return fail(ps, "number too long");
	memcpy(buf, s, (size_t)(q - s));
	buf[q - s] = 0;
	j->type = JSON_NUMBER;
	j->num = strtod(buf, NULL);
	ps->p = q;
	return 0;
}

static int parse_literal(struct parser *ps, struct json *j)
{
	static const struct {
		const char *word;
		enum json_type type;
		bool b;
	} words[] = {
	    {"true", JSON_BOOL, true}, {"false", JSON_BOOL, false}, {"null", JSON_NULL, false}};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t n = strlen(words[i].word);
		if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, words[i].word, n) == 0) {
			ps->p += n;
			j->type = words[i].type;
			j->b = words[i].b;
			return 0;
		}
	}
	return fail(ps, "unexpected character '%c'", *ps->p);
}

/* Appends an empty value (and its key, taken over) to an array or object. */
static struct json *add_item(struct json *j, char *key)
{
	if (j->n == j->cap) {
		size_t cap = j->cap ? 2 * j->cap : 8;
		struct json *items = realloc(j->items, cap * sizeof(*items));
		if (!items)
			return NULL;
		j->items = items;
		if (j->type == JSON_OBJECT) {
			char **keys = realloc(j->keys, cap * sizeof(*keys));
			if (!keys)
				return NULL;
			j->keys = keys;
		}
		j->cap = cap;
	}
	memset(&j->items[j->n], 0, sizeof(j->items[0]));
	if (j->type == JSON_OBJECT)
		j->keys[j->n] = key;
	return &j->items[j->n++];
}

static int parse_value(struct parser *ps, struct json *j);

/* At '[' or '{': elements (or "key": value members) up to the closing bracket. */
static int parse_container(struct parser *ps, struct json *j)
{
	bool object = *ps->p == '{';
	char close = object ? '}' : ']';
	int ret;

	j->type = object ? JSON_OBJECT : JSON_ARRAY;
	if (++ps->depth > JSON_MAX_DEPTH)
		return fail(ps, "nested deeper than %d", JSON_MAX_DEPTH);
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		ps->depth--;
		return 0;
	}
	for (;;) {
		char *key = NULL;
		struct json *item;

		skip_ws(ps);
		if (object) {
			if (ps->p >= ps->end || *ps->p != '"')
				return fail(ps, "expected a key string");
			ret = parse_string(ps, &key);
			if (ret < 0)
				return ret;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':') {
				free(key);
				return fail(ps, "expected ':'");
			}
			ps->p++;
		}
		item = add_item(j, key);
		if (!item) {
			free(key);
			return -ENOMEM;
		}
		ret = parse_value(ps, item);
		if (ret < 0)
			return ret;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == close) {
			ps->p++;
			ps->depth--;
			return 0;
		}
		return fail(ps, "expected ',' or '%c'", close);
	}
}

static int parse_value(struct parser *ps, struct json *j)
{
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, "unexpected end");
	switch (*ps->p) {
	case '{':
	case '[':
		return parse_container(ps, j);
	case '"':
		j->type = JSON_STRING;
		return parse_string(ps, &j->str);
	default:
		if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
			return parse_number(ps, j);
		return parse_literal(ps, j);
	}
}

int json_parse(const char *text, size_t len, struct json **out, char *err, size_t errlen)
{
	struct parser ps = {text, text, text + len, 0, err, errlen};
	struct json *j = calloc(1, sizeof(*j));
	int ret = j ? parse_value(&ps, j) : -ENOMEM;

	if (ret == 0) {
		skip_ws(&ps);
		if (ps.p != ps.end)
			ret = fail(&ps, "text after the value");
	}
	if (ret < 0) {
		if (ret == -ENOMEM)
			snprintf(err, errlen, "%s", strerror(ENOMEM));
		json_free(&j);
		return ret;
	}
	*out = j;
	return 0;
}

int json_load(const char *path, struct json **out, char *err, size_t errlen)
{
	struct sbuf b = {0};
	char chunk[16384];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s", strerror(-ret));
		return ret;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			snprintf(err, errlen, "%s", strerror(-ret));
			goto out_close;
		}
		ret = sbuf_put(&b, chunk, (size_t)n);
		if (ret < 0)
			goto out_close;
	}
	ret = json_parse(b.s ? b.s : "", b.len, out, err, errlen);
out_close:
	close(fd);
	free(b.s);
	return ret;
}

void json_free(struct json **j)
{
	if (!j || !*j)
		return;
	node_clear(*j);
	free(*j);
	*j = NULL;
}

enum json_type json_type(const struct json *j)
{
	return j ? j->type : JSON_NULL;
}

const struct json *json_get(const struct json *obj, const char *key)
{
	if (!obj || obj->type != JSON_OBJECT)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return &obj->items[i];
	return NULL;
}

size_t json_count(const struct json *j)
{
	return j && (j->type == JSON_ARRAY || j->type == JSON_OBJECT) ? j->n : 0;
}

const struct json *json_at(const struct json *j, size_t i)
{
	return i < json_count(j) ? &j->items[i] : NULL;
}

const char *json_key_at(const struct json *j, size_t i)
{
	return j && j->type == JSON_OBJECT && i < j->n ? j->keys[i] : NULL;
}

const char *json_string(const struct json *j, const char *dflt)
{
	return j && j->type == JSON_STRING ? j->str : dflt;
}

double json_number(const struct json *j, double dflt)
{
	return j && j->type == JSON_NUMBER ? j->num : dflt;
}

bool json_bool(const struct json *j, bool dflt)
{
	return j && j->type == JSON_BOOL ? j->b : dflt;
}

bool json_u64(const struct json *j, uint64_t *v)
{
	/* 2^64 as a double; anything at or above it does not fit. */
	if (!j || j->type != JSON_NUMBER || !(j->num >= 0) || j->num >= 18446744073709551616.0 ||
	    floor(j->num) != j->num)
		return false;
	*v = (uint64_t)j->num;
	return true;
}

int json_load_in(const char *dir, const char *name, const char *not_ours, struct json **out,
		 char *msg, size_t len)
{
	char path[PATH_MAX], err[256];
	struct stat sb;
	int ret;

	if (stat(dir, &sb) < 0) {
		snprintf(msg, len, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
		snprintf(msg, len, "%s: %s", dir, strerror(ENAMETOOLONG));
		return -1;
	}
	ret = json_load(path, out, err, sizeof(err));
	if (ret == -ENOENT || ret == -ENOTDIR) {
		snprintf(msg, len, "%s %s", dir, not_ours);
		return -1;
	}
	if (ret < 0) {
		snprintf(msg, len, "%s: %s", path, err);
		return -1;
	}
	return 0;
}

void json_info_error(const char *seg, const char *fallback, char *buf, size_t len)
{
	struct json *info = NULL;
	char path[PATH_MAX], err[256];

	if (snprintf(path, sizeof(path), "%s/.hfinfo", seg) < (int)sizeof(path))
		json_load(path, &info, err, sizeof(err));
	snprintf(buf, len, "%s", json_string(json_get(info, "error"), fallback));
	json_free(&info);
}
