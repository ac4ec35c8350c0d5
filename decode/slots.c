/*
 * slots: exact slot -> frame arithmetic. See slots.h for the contract.
 *
 * Every intermediate value is a reduced rational of two __int128 built with
 * checked operations; a product that does not fit is reported as -ERANGE rather
 * than rounded, because a wrong frame is worse than a refused segment.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "decode/slots.h"

typedef __int128 i128;
typedef unsigned __int128 u128;

#define I128_MAX ((i128)(((u128)1 << 127) - 1))
#define I128_MIN (-I128_MAX - 1)

/* A rational with den > 0, reduced; the working type of this file. */
struct q128 {
	i128 num;
	i128 den;
};

static u128 u128_abs(i128 v)
{
	/* Through unsigned so that I128_MIN has a magnitude too. */
	return v < 0 ? -(u128)v : (u128)v;
}

static u128 u128_gcd(u128 a, u128 b)
{
	while (b != 0) {
		u128 t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* num/den reduced with den > 0; -ERANGE if that form does not fit, -EINVAL if den == 0. */
static int q128_make(i128 num, i128 den, struct q128 *out)
{
	u128 g;

	if (den == 0)
		return -EINVAL;
	g = u128_gcd(u128_abs(num), u128_abs(den));
	if (g > 1) {
		/* Exact divisions; with g >= 2 both magnitudes are <= 2^126 and fit. */
		i128 n = (i128)(u128_abs(num) / g), d = (i128)(u128_abs(den) / g);

		out->num = (num < 0) != (den < 0) ? -n : n;
		out->den = d;
		return 0;
	}
	if (den < 0) {
		if (num == I128_MIN || den == I128_MIN)
			return -ERANGE;
		num = -num;
		den = -den;
	}
	out->num = num;
	out->den = den;
	return 0;
}

static int q128_from(struct hf_q q, struct q128 *out)
{
	return q128_make(q.num, q.den, out);
}

static int q128_mul(struct q128 a, struct q128 b, struct q128 *out)
{
	/* Cross-reduce first so the products stay as small as the result allows. */
	i128 g1 = (i128)u128_gcd(u128_abs(a.num), (u128)b.den);
	i128 g2 = (i128)u128_gcd(u128_abs(b.num), (u128)a.den);
	i128 num, den;

	if (__builtin_mul_overflow(a.num / g1, b.num / g2, &num) ||
	    __builtin_mul_overflow(a.den / g2, b.den / g1, &den))
		return -ERANGE;
	return q128_make(num, den, out);
}

static int q128_add(struct q128 a, struct q128 b, struct q128 *out)
{
	i128 g = (i128)u128_gcd((u128)a.den, (u128)b.den);
	i128 x, y, num, den;

	if (__builtin_mul_overflow(a.num, b.den / g, &x) ||
	    __builtin_mul_overflow(b.num, a.den / g, &y) || __builtin_add_overflow(x, y, &num) ||
	    __builtin_mul_overflow(a.den / g, b.den, &den))
		return -ERANGE;
	return q128_make(num, den, out);
}

static int q128_sub(struct q128 a, struct q128 b, struct q128 *out)
{
	if (b.num == I128_MIN)
		return -ERANGE;
	b.num = -b.num;
	return q128_add(a, b, out);
}

/* Division rounds toward zero in C; floor needs one step down for negative inexact values. */
static i128 q128_floor(struct q128 a)
{
	i128 f = a.num / a.den;

	if (a.num % a.den != 0 && a.num < 0)
		f--;
	return f;
}

static i128 q128_ceil(struct q128 a)
{
	i128 c = a.num / a.den;

	if (a.num % a.den != 0 && a.num > 0)
		c++;
	return c;
}

struct hf_q hf_q_reduce(struct hf_q q)
{
	struct hf_q bad = {0, 0};
	struct q128 r;

	/*
	 * The header gives no error channel: den == 0, or a value whose positive-den
	 * form does not fit int64 (e.g. 1/INT64_MIN), comes back as {0, 0}, which no
	 * valid rational equals.
	 */
	if (q128_from(q, &r) < 0 || r.num < INT64_MIN || r.num > INT64_MAX || r.den > INT64_MAX)
		return bad;
	q.num = (int64_t)r.num;
	q.den = (int64_t)r.den;
	return q;
}

int hf_q_cmp(struct hf_q a, struct hf_q b)
{
	/* |int64 * int64| <= 2^126, so both cross products fit in an __int128. */
	i128 l = (i128)a.num * b.den;
	i128 r = (i128)b.num * a.den;

	/* Multiplying through by a.den * b.den flips the order when it is negative. */
	if ((a.den < 0) != (b.den < 0)) {
		i128 t = l;

		l = r;
		r = t;
	}
	return (l > r) - (l < r);
}

/* Checks the parts of fr, start and fps that every function needs. */
static int load_common(const struct slot_frames *fr, struct hf_q start, struct hf_q fps,
		       struct q128 *s, struct q128 *f, struct q128 *tb)
{
	int ret;

	if ((ret = q128_from(start, s)) < 0 || (ret = q128_from(fps, f)) < 0 ||
	    (ret = q128_from(fr->tb, tb)) < 0)
		return ret;
	if (f->num <= 0 || tb->num <= 0)
		return -EINVAL;
	return 0;
}

/* floor(origin + T_k / tb) as an __int128; T_k = s + k/f. */
static int limit128(const struct slot_frames *fr, struct hf_q start, struct hf_q fps, int64_t k,
		    i128 *out)
{
	struct q128 s, f, tb, t, step, ticks;
	i128 l;
	int ret;

	if (k < 0)
		return -EINVAL;
	if ((ret = load_common(fr, start, fps, &s, &f, &tb)) < 0)
		return ret;
	/*
	 * The half tick: a frame stamped up to half a time-base tick after T_k still fills
	 * slot k, so coarse time bases (Matroska's milliseconds: 66.67 ms stamped 67) do not
	 * push a frame into the next slot. pts - origin <= T_k / tb + 1/2 holds for an
	 * integer pts exactly when it holds for the floor: one integer comparison per frame.
	 */
	if ((ret = q128_mul((struct q128){k, 1}, (struct q128){f.den, f.num}, &step)) < 0 ||
	    (ret = q128_add(s, step, &t)) < 0 ||
	    (ret = q128_mul(t, (struct q128){tb.den, tb.num}, &ticks)) < 0 ||
	    (ret = q128_add(ticks, (struct q128){1, 2}, &ticks)) < 0)
		return ret;
	if (__builtin_add_overflow(q128_floor(ticks), (i128)fr->origin, &l))
		return -ERANGE;
	*out = l;
	return 0;
}

int slots_limit_ticks(const struct slot_frames *fr, struct hf_q start, struct hf_q fps, int64_t k,
		      int64_t *out)
{
	i128 l;
	int ret = limit128(fr, start, fps, k, &l);

	if (ret < 0)
		return ret;
	if (l < INT64_MIN || l > INT64_MAX)
		return -ERANGE;
	*out = (int64_t)l;
	return 0;
}

int64_t slots_frame(const struct slot_frames *fr, struct hf_q start, struct hf_q fps, int64_t k)
{
	size_t lo = 0, hi = fr->n;
	i128 l;
	int ret;

	if (fr->n == 0)
		return -EINVAL;
	/* A limit beyond int64 is still exact here: it just admits all frames or none. */
	if ((ret = limit128(fr, start, fps, k, &l)) < 0)
		return ret;
	/* First index whose pts is past the limit; the one before it is shown. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if ((i128)fr->pts[mid] <= l)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? 0 : (int64_t)(lo - 1);
}

/* The number of integers k >= 0 with k < x. */
static i128 count_below(struct q128 x)
{
	return x.num <= 0 ? 0 : q128_ceil(x);
}

int64_t slots_count(const struct slot_frames *fr, struct hf_q start, struct hf_q dur,
		    struct hf_q fps)
{
	struct q128 s, d, f, tb, end, span, by_dur, by_end;
	i128 n;
	int ret;

	if ((ret = load_common(fr, start, fps, &s, &f, &tb)) < 0 || (ret = q128_from(dur, &d)) < 0)
		return ret;
	if (fr->n == 0)
		return 0;
	/* k/F < dur  <=>  k < dur*F;  T_k < t_end  <=>  k < (t_end - start)*F. */
	if ((ret = q128_mul((struct q128){(i128)fr->end - fr->origin, 1}, tb, &end)) < 0 ||
	    (ret = q128_sub(end, s, &span)) < 0 || (ret = q128_mul(d, f, &by_dur)) < 0 ||
	    (ret = q128_mul(span, f, &by_end)) < 0)
		return ret;
	n = count_below(by_dur);
	if (count_below(by_end) < n)
		n = count_below(by_end);
	if (n > INT64_MAX)
		return -ERANGE;
	return (int64_t)n;
}

int64_t slots_count_held(struct hf_q dur, struct hf_q fps)
{
	struct q128 d, f, by_dur;
	i128 n;
	int ret;

	if ((ret = q128_from(dur, &d)) < 0 || (ret = q128_from(fps, &f)) < 0 ||
	    (ret = q128_mul(d, f, &by_dur)) < 0)
		return ret;
	n = count_below(by_dur);
	return n > INT64_MAX ? -ERANGE : (int64_t)n;
}
