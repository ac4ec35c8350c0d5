/*
 * segname: parse and canonically format segment directory names. See segname.h.
 *
 * Digit limit: SEGNAME_MAX_DIGITS counts every digit as written, leading zeros
 * included ("000000000000000001" is 18 digits, one more zero is too many). That keeps
 * the rule a property of the spelling alone, and 18 digits always fit an int64
 * (10^18 - 1 < 2^63), numerator and power-of-ten denominator alike.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fs/segname.h"

/* The characters [p, end) of the name being parsed. */
struct span {
	const char *p;
	const char *end;
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static const char *find_last(struct span sp, char c)
{
	const char *q;

	for (q = sp.end; q > sp.p; q--)
		if (q[-1] == c)
			return q - 1;
	return NULL;
}

static bool span_is(struct span sp, const char *lit)
{
	size_t n = strlen(lit);

	return (size_t)(sp.end - sp.p) == n && memcmp(sp.p, lit, n) == 0;
}

/* 1*DIGIT, at most SEGNAME_MAX_DIGITS of them, as an integer. */
static int parse_int(struct span sp, int64_t *out)
{
	int64_t v = 0;
	const char *q;

	if (sp.p == sp.end || sp.end - sp.p > SEGNAME_MAX_DIGITS)
		return -ENOENT;
	for (q = sp.p; q < sp.end; q++) {
		if (!is_digit(*q))
			return -ENOENT;
		v = v * 10 + (*q - '0');
	}
	*out = v;
	return 0;
}

/* decimal = 1*DIGIT [ "." 1*DIGIT ], at most SEGNAME_MAX_DIGITS digits in all. */
static int parse_decimal(struct span sp, struct hf_q *out)
{
	const char *dot = memchr(sp.p, '.', (size_t)(sp.end - sp.p));
	int64_t v = 0, den = 1;
	int digits = 0;
	const char *q;

	if (dot == NULL)
		dot = sp.end;
	/* Both sides of the dot need a digit: no ".5", no "1.". */
	if (dot == sp.p || (dot != sp.end && dot + 1 == sp.end))
		return -ENOENT;
	for (q = sp.p; q < sp.end; q++) {
		if (q == dot)
			continue;
		if (!is_digit(*q) || ++digits > SEGNAME_MAX_DIGITS)
			return -ENOENT;
		v = v * 10 + (*q - '0');
		if (q > dot)
			den *= 10;
	}
	*out = hf_q_reduce((struct hf_q){v, den});
	return 0;
}

/* fps = decimal | int ":" int, > 0. */
static int parse_fps(struct span sp, struct hf_q *out)
{
	const char *colon = memchr(sp.p, ':', (size_t)(sp.end - sp.p));
	int64_t num, den;
	int ret;

	if (colon == NULL)
		ret = parse_decimal(sp, out);
	else if ((ret = parse_int((struct span){sp.p, colon}, &num)) == 0 &&
		 (ret = parse_int((struct span){colon + 1, sp.end}, &den)) == 0) {
		if (den == 0)
			return -ENOENT;
		*out = hf_q_reduce((struct hf_q){num, den});
	}
	if (ret < 0)
		return ret;
	return out->num > 0 ? 0 : -ENOENT;
}

static const char *const tonemap_names[] = {"", "hable", "reinhard", "mobius", "clip"};
static const char *const fit_names[] = {"", "fill", "contain", "cover"};

const char *segname_tonemap_name(enum seg_tonemap t)
{
	return (unsigned)t < sizeof(tonemap_names) / sizeof(tonemap_names[0]) ? tonemap_names[t] : "";
}

/* "KEY=" followed by the rest of opt into *val; false when opt does not start with key. */
static bool opt_value(struct span opt, const char *key, struct span *val)
{
	size_t n = strlen(key);

	if ((size_t)(opt.end - opt.p) < n || memcmp(opt.p, key, n) != 0)
		return false;
	*val = (struct span){opt.p + n, opt.end};
	return true;
}

/* 1*max_digits DIGIT, in [lo, hi]. */
static int parse_small(struct span sp, int max_digits, int64_t lo, int64_t hi, int *out)
{
	int64_t v;

	if (sp.end - sp.p > max_digits || parse_int(sp, &v) < 0 || v < lo || v > hi)
		return -ENOENT;
	*out = (int)v;
	return 0;
}

/* One of names[1..n-1] into *out. */
static int parse_name(struct span sp, const char *const *names, size_t n, int *out)
{
	for (size_t i = 1; i < n; i++)
		if (span_is(sp, names[i])) {
			*out = (int)i;
			return 0;
		}
	return -ENOENT;
}

/* opts = opt *( "," opt ); fills the options, checking their combinations. */
static int parse_opts(struct span sp, struct segname *sn)
{
	enum { O_PNG, O_JPG, O_Q, O_W, O_H, O_FIT, O_HOLD, O_BT2020, O_TONEMAP, O_UNTAGGED,
	       O_COUNT };
	bool seen[O_COUNT] = {false};
	const char *q = sp.p;
	int fit = SEG_FIT_NONE;

	for (;;) {
		const char *comma = memchr(q, ',', (size_t)(sp.end - q));
		struct span opt = {q, comma ? comma : sp.end}, val;
		int which, ret = 0, tm;

		if (span_is(opt, "png")) {
			which = O_PNG;
		} else if (span_is(opt, "jpg")) {
			which = O_JPG;
		} else if (span_is(opt, "hold")) {
			which = O_HOLD;
			sn->hold = true;
		} else if (span_is(opt, "bt2020")) {
			which = O_BT2020;
			sn->bt2020 = true;
		} else if (span_is(opt, "untagged=cli")) {
			which = O_UNTAGGED;
			sn->untagged_cli = true;
		} else if (span_is(opt, "tonemap")) {
			which = O_TONEMAP;
			sn->tonemap = SEG_TM_HABLE;
		} else if (opt_value(opt, "tonemap=", &val)) {
			which = O_TONEMAP;
			ret = parse_name(val, tonemap_names, sizeof(tonemap_names) / sizeof(*tonemap_names),
					 &tm);
			sn->tonemap = (enum seg_tonemap)tm;
		} else if (opt_value(opt, "q=", &val)) {
			which = O_Q;
			ret = parse_small(val, 3, 1, 31, &sn->q);
		} else if (opt_value(opt, "w=", &val)) {
			which = O_W;
			ret = parse_small(val, 5, 1, SEGNAME_MAX_SIDE, &sn->w);
		} else if (opt_value(opt, "h=", &val)) {
			which = O_H;
			ret = parse_small(val, 5, 1, SEGNAME_MAX_SIDE, &sn->h);
		} else if (opt_value(opt, "fit=", &val)) {
			which = O_FIT;
			ret = parse_name(val, fit_names, sizeof(fit_names) / sizeof(*fit_names), &fit);
		} else {
			return -ENOENT; /* unknown or empty option */
		}
		if (ret < 0 || seen[which])
			return -ENOENT;
		seen[which] = true;
		if (comma == NULL)
			break;
		q = comma + 1;
	}
	if ((seen[O_PNG] && seen[O_JPG]) || (seen[O_Q] && !seen[O_JPG]) ||
	    (seen[O_FIT] && !(seen[O_W] && seen[O_H])) || (seen[O_BT2020] && seen[O_TONEMAP]))
		return -ENOENT;
	sn->format = seen[O_JPG] ? SEG_JPG : SEG_PNG;
	sn->fit = sn->w && sn->h ? (fit ? (enum seg_fit)fit : SEG_FIT_FILL) : SEG_FIT_NONE;
	return 0;
}

/* dur * fps > SEGNAME_MAX_SLOTS, exactly; both are positive and below 10^18. */
static bool too_many_slots(struct hf_q dur, struct hf_q fps)
{
	__int128 lhs = (__int128)dur.num * fps.num;
	__int128 rhs;

	/* If the right side overflows it exceeds any product of two int64s. */
	if (__builtin_mul_overflow((__int128)dur.den * fps.den, (__int128)SEGNAME_MAX_SLOTS, &rhs))
		return false;
	return lhs > rhs;
}

/*
 * NAME "@" start "+" dur "@" fps, with fps ending at fps_end. The start+dur token
 * holds exactly one '+' since decimals have none; NAME is what precedes its '@'.
 */
static int parse_front(const char *s, const char *fps_end, struct segname *sn)
{
	struct span all = {s, fps_end}, sd;
	const char *at_fps, *at_sd, *plus;
	int ret;

	if ((at_fps = find_last(all, '@')) == NULL)
		return -ENOENT;
	if ((ret = parse_fps((struct span){at_fps + 1, fps_end}, &sn->fps)) < 0)
		return ret;
	if ((at_sd = find_last((struct span){s, at_fps}, '@')) == NULL || at_sd == s)
		return -ENOENT;
	sd = (struct span){at_sd + 1, at_fps};
	if ((plus = find_last(sd, '+')) == NULL ||
	    (ret = parse_decimal((struct span){sd.p, plus}, &sn->start)) < 0 ||
	    (ret = parse_decimal((struct span){plus + 1, sd.end}, &sn->dur)) < 0)
		return -ENOENT;
	if (sn->dur.num == 0 || too_many_slots(sn->dur, sn->fps))
		return -ENOENT;
	sn->name_len = (size_t)(at_sd - s);
	return 0;
}

int segname_parse(const char *s, struct segname *out)
{
	struct span all = {s, s + strlen(s)};
	struct segname sn = {.format = SEG_PNG, .q = SEGNAME_DEFAULT_Q};
	const char *last = find_last(all, '@');
	int ret;

	if (last == NULL)
		return -ENOENT;
	/*
	 * The last '@' starts either fps or opts. An fps is digits, '.' and ':' while
	 * every option has a letter, so at most one reading can succeed: try both.
	 */
	ret = parse_front(s, all.end, &sn);
	if (ret < 0) {
		sn = (struct segname){.format = SEG_PNG, .q = SEGNAME_DEFAULT_Q};
		if ((ret = parse_opts((struct span){last + 1, all.end}, &sn)) < 0 ||
		    (ret = parse_front(s, last, &sn)) < 0)
			return ret;
	}
	*out = sn;
	return 0;
}

/* Appends to a buffer, remembering the length even past its end. */
struct outbuf {
	char *buf;
	size_t len;
	size_t pos;
};

static void out_bytes(struct outbuf *o, const char *p, size_t n)
{
	if (o->pos < o->len) {
		size_t room = o->len - o->pos;

		memcpy(o->buf + o->pos, p, n < room ? n : room);
	}
	o->pos += n;
}

static void out_str(struct outbuf *o, const char *p)
{
	out_bytes(o, p, strlen(p));
}

static int out_finish(struct outbuf *o)
{
	if (o->pos >= o->len) {
		if (o->len > 0)
			o->buf[o->len - 1] = '\0';
		return -ENAMETOOLONG;
	}
	o->buf[o->pos] = '\0';
	return (int)o->pos;
}

/* Whether den has only the prime factors 2 and 5, i.e. num/den ends in decimals. */
static bool is_decimal_den(int64_t den)
{
	while (den % 2 == 0)
		den /= 2;
	while (den % 5 == 0)
		den /= 5;
	return den == 1;
}

/*
 * The decimal spelling of a reduced q with a decimal den into tmp (big enough for
 * a sign, 19 integer digits, '.', and the at most 63 fraction digits of den <= 2^63).
 * Returns the number of digits written.
 */
static int decimal_digits(struct hf_q q, char *tmp, size_t *tmp_len)
{
	uint64_t mag = q.num < 0 ? -(uint64_t)q.num : (uint64_t)q.num;
	uint64_t den = (uint64_t)q.den, ip = mag / den;
	unsigned __int128 rem = mag % den;
	char rev[20];
	size_t n = 0, r = 0;
	int digits = 0;

	if (q.num < 0)
		tmp[n++] = '-';
	do {
		rev[r++] = (char)('0' + ip % 10);
		ip /= 10;
	} while (ip != 0);
	while (r > 0) {
		tmp[n++] = rev[--r];
		digits++;
	}
	if (rem != 0)
		tmp[n++] = '.';
	/* Long division terminates because den is 2^a * 5^b. */
	while (rem != 0) {
		rem *= 10;
		tmp[n++] = (char)('0' + (int)(rem / den));
		rem %= den;
		digits++;
	}
	*tmp_len = n;
	return digits;
}

#define DECIMAL_TMP 96

int segname_format_q(struct hf_q q, char *buf, size_t len)
{
	struct outbuf o = {buf, len, 0};
	char tmp[DECIMAL_TMP];
	size_t n;

	q = hf_q_reduce(q);
	if (q.den <= 0 || !is_decimal_den(q.den))
		return -EINVAL;
	decimal_digits(q, tmp, &n);
	out_bytes(&o, tmp, n);
	return out_finish(&o);
}

static int out_decimal(struct outbuf *o, struct hf_q q)
{
	char tmp[DECIMAL_TMP];
	size_t n;

	q = hf_q_reduce(q);
	if (q.den <= 0 || q.num < 0 || !is_decimal_den(q.den) ||
	    decimal_digits(q, tmp, &n) > SEGNAME_MAX_DIGITS)
		return -EINVAL;
	out_bytes(o, tmp, n);
	return 0;
}

/* Integer formatting for the non-negative values of fps fractions and q. */
static void out_uint(struct outbuf *o, uint64_t v)
{
	char tmp[24];
	size_t n = sizeof(tmp);

	do {
		tmp[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	out_bytes(o, tmp + n, sizeof(tmp) - n);
}

int segname_format(const struct segname *sn, const char *name, size_t name_len, char *buf,
		   size_t len)
{
	struct outbuf o = {buf, len, 0};
	struct hf_q fps = hf_q_reduce(sn->fps);
	int ret;

	if (name_len == 0 || fps.den <= 0 || fps.num <= 0 ||
	    (sn->format == SEG_JPG && (sn->q < 1 || sn->q > 31)) || sn->w < 0 ||
	    sn->w > SEGNAME_MAX_SIDE || sn->h < 0 || sn->h > SEGNAME_MAX_SIDE ||
	    (unsigned)sn->tonemap > SEG_TM_CLIP || (unsigned)sn->fit > SEG_FIT_COVER)
		return -EINVAL;
	out_bytes(&o, name, name_len);
	out_str(&o, "@");
	if ((ret = out_decimal(&o, sn->start)) < 0)
		return ret;
	out_str(&o, "+");
	if ((ret = out_decimal(&o, sn->dur)) < 0)
		return ret;
	out_str(&o, "@");
	/* Whichever spelling fps has, a decimal one is canonical when the grammar allows it. */
	if (out_decimal(&o, fps) < 0) {
		out_uint(&o, (uint64_t)fps.num);
		out_str(&o, ":");
		out_uint(&o, (uint64_t)fps.den);
	}
	{
		/* canonical options, in order, defaults left out */
		const char *sep = "@";
#define OPT(text) (out_str(&o, sep), out_str(&o, text), sep = ",")
		if (sn->format == SEG_JPG)
			OPT("jpg");
		if (sn->format == SEG_JPG && sn->q != SEGNAME_DEFAULT_Q) {
			OPT("q=");
			out_uint(&o, (uint64_t)sn->q);
		}
		if (sn->w) {
			OPT("w=");
			out_uint(&o, (uint64_t)sn->w);
		}
		if (sn->h) {
			OPT("h=");
			out_uint(&o, (uint64_t)sn->h);
		}
		if (sn->w && sn->h && (sn->fit == SEG_FIT_CONTAIN || sn->fit == SEG_FIT_COVER)) {
			OPT("fit=");
			out_str(&o, fit_names[sn->fit]);
		}
		if (sn->bt2020)
			OPT("bt2020");
		if (sn->tonemap != SEG_TM_NONE) {
			OPT("tonemap");
			if (sn->tonemap != SEG_TM_HABLE) {
				out_str(&o, "=");
				out_str(&o, segname_tonemap_name(sn->tonemap));
			}
		}
		if (sn->hold)
			OPT("hold");
		if (sn->untagged_cli)
			OPT("untagged=cli");
#undef OPT
	}
	return out_finish(&o);
}

const char *segname_ext(const struct segname *sn)
{
	return sn->format == SEG_JPG ? "jpg" : "png";
}
