/*
 * Unit tests for decode/slots: slot -> frame mapping and slot counts, checked by
 * hand-worked cases and against a brute-force oracle that scans every frame with
 * one cross-multiplied integer inequality (no shared code with slots.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "decode/slots.h"
#include "hftest.h"

#define Q(n, d) ((struct hf_q){(n), (d)})
#define MAXN	4096

typedef __int128 i128;

static int64_t pts_buf[MAXN];

/* pts = first + i * step, end one step after the last. */
static struct slot_frames cfr(int64_t first, int64_t step, size_t n, struct hf_q tb, int64_t origin)
{
	size_t i;

	for (i = 0; i < n; i++)
		pts_buf[i] = first + (int64_t)i * step;
	return (struct slot_frames){pts_buf, n, first + (int64_t)n * step, tb, origin};
}

/*
 * Oracle: last i with (pts[i]-origin)*tb <= start + k/fps + tb/2 (the half tick), else 0.
 * Small values only.
 */
static int64_t oracle_frame(const struct slot_frames *fr, struct hf_q s, struct hf_q f, int64_t k)
{
	int64_t best = 0;
	size_t i;

	for (i = 0; i < fr->n; i++) {
		/* (p-o)*tn/td <= sn/sd + k*fd/fn + tn/(2td), multiplied by 2*td*sd*fn > 0 */
		i128 lhs = 2 * (i128)(fr->pts[i] - fr->origin) * fr->tb.num * s.den * f.num;
		i128 rhs = 2 * ((i128)s.num * f.num + (i128)k * f.den * s.den) * fr->tb.den +
			   (i128)fr->tb.num * s.den * f.num;

		if (lhs <= rhs)
			best = (int64_t)i;
	}
	return best;
}

/* Oracle: count k from 0 while k/F < dur and T_k < (end-origin)*tb, up to cap. */
static int64_t oracle_count(const struct slot_frames *fr, struct hf_q s, struct hf_q d,
			    struct hf_q f, int64_t cap)
{
	int64_t k = 0;

	if (fr->n == 0)
		return 0;
	for (; k < cap; k++) {
		i128 a = (i128)k * f.den * d.den, b = (i128)d.num * f.num;
		i128 t = ((i128)s.num * f.num + (i128)k * f.den * s.den) * fr->tb.den;
		i128 e = (i128)(fr->end - fr->origin) * fr->tb.num * s.den * f.num;

		if (!(a < b) || !(t < e))
			break;
	}
	return k;
}

/* The count and every slot of the segment (and a few past it) agree with the oracle. */
static bool agrees(const struct slot_frames *fr, struct hf_q s, struct hf_q d, struct hf_q f)
{
	int64_t n = slots_count(fr, s, d, f), k;

	if (!CHECK_EQ_INT(n, oracle_count(fr, s, d, f, INT64_MAX)))
		return false;
	for (k = 0; k < n + 3; k++) {
		int64_t got = slots_frame(fr, s, f, k), want = oracle_frame(fr, s, f, k);

		if (got != want) {
			fprintf(stderr,
				"slot %lld of %lld/%lld+%lld/%lld@%lld/%lld: %lld != %lld\n",
				(long long)k, (long long)s.num, (long long)s.den, (long long)d.num,
				(long long)d.den, (long long)f.num, (long long)f.den,
				(long long)got, (long long)want);
			return CHECK(got == want);
		}
	}
	return CHECK(true);
}

static void test_reduce(void)
{
	struct hf_q r;

	r = hf_q_reduce(Q(3, 6));
	CHECK(r.num == 1 && r.den == 2);
	r = hf_q_reduce(Q(-3, -6));
	CHECK(r.num == 1 && r.den == 2);
	r = hf_q_reduce(Q(3, -6));
	CHECK(r.num == -1 && r.den == 2);
	r = hf_q_reduce(Q(0, 5));
	CHECK(r.num == 0 && r.den == 1);
	r = hf_q_reduce(Q(150, 100));
	CHECK(r.num == 3 && r.den == 2);
	r = hf_q_reduce(Q(INT64_MIN, 1));
	CHECK(r.num == INT64_MIN && r.den == 1);
	r = hf_q_reduce(Q(2, INT64_MIN));
	CHECK(r.num == -1 && r.den == (int64_t)1 << 62);
	r = hf_q_reduce(Q(INT64_MIN, INT64_MIN));
	CHECK(r.num == 1 && r.den == 1);
	/* No int64 form with a positive den: the documented {0, 0}. */
	r = hf_q_reduce(Q(1, INT64_MIN));
	CHECK(r.num == 0 && r.den == 0);
	r = hf_q_reduce(Q(INT64_MIN, -1));
	CHECK(r.num == 0 && r.den == 0);
	r = hf_q_reduce(Q(5, 0));
	CHECK(r.num == 0 && r.den == 0);
}

static void test_cmp(void)
{
	const int64_t M = INT64_MAX;

	CHECK_EQ_INT(hf_q_cmp(Q(M, 1), Q(M - 1, 1)), 1);
	CHECK_EQ_INT(hf_q_cmp(Q(M - 1, 1), Q(M, 1)), -1);
	CHECK_EQ_INT(hf_q_cmp(Q(M, 1), Q(M, 1)), 0);
	CHECK_EQ_INT(hf_q_cmp(Q(INT64_MIN, 1), Q(M, 1)), -1);
	CHECK_EQ_INT(hf_q_cmp(Q(1, M), Q(1, M - 1)), -1);
	/* 1 + 1/(M-1) < 1 + 1/(M-2): equal as doubles, not as rationals. */
	CHECK_EQ_INT(hf_q_cmp(Q(M, M - 1), Q(M - 1, M - 2)), -1);
	CHECK_EQ_INT(hf_q_cmp(Q(M - 1, M), Q(M - 2, M - 1)), 1);
	CHECK_EQ_INT(hf_q_cmp(Q(INT64_MIN, M), Q(INT64_MIN + 1, M)), -1);
	CHECK_EQ_INT(hf_q_cmp(Q(1, 3), Q(2, 6)), 0);
	CHECK_EQ_INT(hf_q_cmp(Q(1, -2), Q(-1, 2)), 0);
	CHECK_EQ_INT(hf_q_cmp(Q(1, -2), Q(0, 1)), -1);
	CHECK_EQ_INT(hf_q_cmp(Q(-1, -2), Q(1, 3)), 1);
	CHECK_EQ_INT(hf_q_cmp(Q(M, INT64_MIN), Q(-1, 1)), 1);
}

/* 30 fps, tb 1/15360 (the common mp4 time base): 512 ticks per frame, 10 s. */
static void test_cfr30(void)
{
	struct slot_frames fr = cfr(0, 512, 300, Q(1, 15360), 0);
	int64_t k, l;

	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(2, 1), Q(30, 1)), 60);
	for (k = 0; k < 60; k++)
		CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), k), k);
	/* Start on a frame (1 s is frame 30). */
	CHECK_EQ_INT(slots_frame(&fr, Q(1, 1), Q(30, 1), 0), 30);
	CHECK_EQ_INT(slots_frame(&fr, Q(1, 1), Q(30, 1), 7), 37);
	/* Start between frames: 1/60 s is half-way, still frame 0; 0.05 s is frame 1.5. */
	CHECK_EQ_INT(slots_frame(&fr, Q(1, 60), Q(30, 1), 0), 0);
	CHECK_EQ_INT(slots_frame(&fr, Q(1, 60), Q(30, 1), 1), 1);
	CHECK_EQ_INT(slots_frame(&fr, Q(1, 20), Q(30, 1), 0), 1);
	CHECK_EQ_INT(slots_frame(&fr, Q(1, 20), Q(30, 1), 1), 2);
	/* One tick before frame 30 is still frame 29; the tick itself is frame 30. */
	CHECK_EQ_INT(slots_frame(&fr, Q(15359, 15360), Q(30, 1), 0), 29);
	CHECK_EQ_INT(slots_frame(&fr, Q(15360, 15360), Q(30, 1), 0), 30);
	/* Ties at 60 fps: even slots land exactly on frames and take them. */
	for (k = 0; k < 120; k++)
		CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(60, 1), k), k / 2);
	CHECK_EQ_INT(slots_limit_ticks(&fr, Q(0, 1), Q(60, 1), 1, &l), 0);
	CHECK_EQ_INT(l, 256);
	CHECK_EQ_INT(slots_limit_ticks(&fr, Q(0, 1), Q(60, 1), 2, &l), 0);
	CHECK_EQ_INT(l, 512);
	/* floor, not truncation, for a limit before time 0 (a negative start). */
	CHECK_EQ_INT(slots_limit_ticks(&fr, Q(-1, 30000), Q(30, 1), 0, &l), 0);
	CHECK_EQ_INT(l, -1);
	agrees(&fr, Q(1, 60), Q(3, 1), Q(30, 1));
	agrees(&fr, Q(137, 100), Q(2, 1), Q(24, 1));
}

/* Exact integer products must give exactly that many slots, one more past them. */
static void test_count_ceil(void)
{
	struct slot_frames fr = cfr(0, 512, 300, Q(1, 15360), 0);

	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(2, 1), Q(30, 1)), 60);
	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(1, 10), Q(30, 1)), 3);
	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(201, 100), Q(30, 1)), 61);
	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(1, 100), Q(30, 1)), 1);
	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(1001, 1000), Q(30000, 1001)), 30);
	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(0, 1), Q(30, 1)), 0);
	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(1, 1), Q(0, 1)), -EINVAL);
}

/* Segments that run past the source end stop at the end of the last frame. */
static void test_end_clamp(void)
{
	struct slot_frames fr = cfr(0, 512, 300, Q(1, 15360), 0);
	struct slot_frames empty = {pts_buf, 0, 0, Q(1, 15360), 0};

	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(100, 1), Q(30, 1)), 300);
	CHECK_EQ_INT(slots_count(&fr, Q(19, 2), Q(2, 1), Q(30, 1)), 15);
	CHECK_EQ_INT(slots_count(&fr, Q(999, 100), Q(1, 1), Q(30, 1)), 1);
	CHECK_EQ_INT(slots_count(&fr, Q(10, 1), Q(1, 1), Q(30, 1)), 0);
	CHECK_EQ_INT(slots_count(&fr, Q(11, 1), Q(1, 1), Q(30, 1)), 0);
	CHECK_EQ_INT(slots_frame(&fr, Q(9, 1), Q(30, 1), 29), 299);
	CHECK_EQ_INT(slots_frame(&fr, Q(9, 1), Q(30, 1), 1000), 299);
	CHECK_EQ_INT(slots_count(&empty, Q(0, 1), Q(1, 1), Q(30, 1)), 0);
	CHECK_EQ_INT(slots_frame(&empty, Q(0, 1), Q(30, 1), 0), -EINVAL);
	agrees(&fr, Q(19, 2), Q(2, 1), Q(30, 1));
	agrees(&fr, Q(9, 1), Q(2, 1), Q(7, 1));
}

/* 24 fps read at 60 fps: 2.5 slots per frame, 0.4 distinct frames per slot. */
static void test_24_at_60(void)
{
	struct slot_frames fr = cfr(0, 512, 240, Q(1, 12288), 0);
	int64_t n = slots_count(&fr, Q(0, 1), Q(10, 1), Q(60, 1)), k, distinct = 0, prev = -1;

	CHECK_EQ_INT(n, 600);
	for (k = 0; k < n; k++) {
		int64_t i = slots_frame(&fr, Q(0, 1), Q(60, 1), k);

		CHECK_EQ_INT(i, 2 * k / 5);
		distinct += i != prev;
		prev = i;
	}
	CHECK_EQ_INT(distinct * 5, n * 2);
}

/* NTSC: tb 1/30000, 1001 ticks per frame, read at 30000:1001 -> slot k is frame k. */
static void test_ntsc(void)
{
	struct slot_frames fr = cfr(0, 1001, 1000, Q(1, 30000), 0);
	int64_t k, bad = 0;

	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(1001, 30), Q(30000, 1001)), 1000);
	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(100, 1), Q(30000, 1001)), 1000);
	for (k = 0; k < 1000; k++)
		bad += slots_frame(&fr, Q(0, 1), Q(30000, 1001), k) != k;
	CHECK_EQ_INT(bad, 0);
	/* 0.3337 s is just after frame 10 (0.33367 s). */
	CHECK_EQ_INT(slots_frame(&fr, Q(3337, 10000), Q(30000, 1001), 0), 10);
	CHECK_EQ_INT(slots_frame(&fr, Q(3336, 10000), Q(30000, 1001), 0), 9);
	CHECK_EQ_INT(slots_frame(&fr, Q(3337, 10000), Q(30000, 1001), 5), 15);
	/* Read at a plain 30 fps, the clock drifts one frame every 1001 slots. */
	CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), 999), 998);
	agrees(&fr, Q(3337, 10000), Q(20, 1), Q(30000, 1001));
	agrees(&fr, Q(1, 1), Q(5, 1), Q(30, 1));
}

/* Variable frame rate with long gaps: a frame is held for as many slots as it lasts. */
static void test_vfr(void)
{
	static const int64_t pts[] = {0, 100, 5000, 5033, 9000};
	struct slot_frames fr = {pts, 5, 9033, Q(1, 1000), 0};
	int64_t k, held = 0;

	/* ceil(9.033 * 30) = ceil(270.99) */
	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(10, 1), Q(30, 1)), 271);
	CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), 2), 0);
	CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), 3), 1); /* 3/30 = 0.1 s, a tie */
	CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), 149), 1);
	CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), 150), 2); /* 5.0 s, a tie */
	CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), 151), 3);
	CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), 269), 3);
	CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), 270), 4);
	for (k = 0; k < 271; k++)
		held += slots_frame(&fr, Q(0, 1), Q(30, 1), k) == 1;
	CHECK_EQ_INT(held, 147);
	agrees(&fr, Q(0, 1), Q(10, 1), Q(30, 1));
	agrees(&fr, Q(49, 10), Q(3, 1), Q(60, 1));
}

/* Duplicate timestamps: the last of equal pts is shown. */
static void test_duplicates(void)
{
	static const int64_t pts[] = {0, 0, 512, 512, 1024};
	struct slot_frames fr = {pts, 5, 1536, Q(1, 15360), 0};

	CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), 0), 1);
	CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), 1), 3);
	CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), 2), 4);
	agrees(&fr, Q(0, 1), Q(1, 1), Q(60, 1));
}

/* First frame at 2 s: every slot before it shows the first frame. */
static void test_before_first(void)
{
	struct slot_frames fr = cfr(2000, 40, 100, Q(1, 1000), 0);
	int64_t k, bad = 0;

	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(10, 1), Q(25, 1)), 150);
	for (k = 0; k <= 50; k++)
		bad += slots_frame(&fr, Q(0, 1), Q(25, 1), k) != 0;
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(25, 1), 51), 1);
	agrees(&fr, Q(0, 1), Q(10, 1), Q(25, 1));
	agrees(&fr, Q(19, 10), Q(1, 1), Q(30, 1));
}

/* A container start time (mpegts: 1 s = 90000 ticks) is time 0 of the segment. */
static void test_origin(void)
{
	struct slot_frames fr = cfr(90000, 3000, 300, Q(1, 90000), 90000);
	int64_t l;

	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(100, 1), Q(30, 1)), 300);
	CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), 0), 0);
	CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), 17), 17);
	CHECK_EQ_INT(slots_frame(&fr, Q(1, 1), Q(30, 1), 0), 30);
	CHECK_EQ_INT(slots_limit_ticks(&fr, Q(1, 1), Q(30, 1), 1, &l), 0);
	CHECK_EQ_INT(l, 90000 + 90000 + 3000);
	CHECK_EQ_INT(slots_count(&fr, Q(19, 2), Q(2, 1), Q(30, 1)), 15);
	CHECK_EQ_INT(slots_count(&fr, Q(10, 1), Q(2, 1), Q(30, 1)), 0);
	agrees(&fr, Q(1, 60), Q(3, 1), Q(30, 1));

	/* A negative origin, as after an edit list. */
	fr = cfr(-1024, 512, 100, Q(1, 15360), -1024);
	CHECK_EQ_INT(slots_frame(&fr, Q(1, 1), Q(30, 1), 0), 30);
	agrees(&fr, Q(1, 60), Q(3, 1), Q(30, 1));
}

/* Numbers that do not fit 128 bits are refused; exactly representable ones are not. */
static void test_overflow(void)
{
	const int64_t M = INT64_MAX;
	static const int64_t pts[] = {0, 1};
	struct slot_frames fr = {pts, 2, 2, Q(1, M), 0};
	int64_t l = 12345;

	/* T/tb + 1/2 = M^2/2 + 1/2 fits 128 bits but not int64: the limit is refused, the frame not. */
	CHECK_EQ_INT(slots_limit_ticks(&fr, Q(M / 4, 1), Q(1, 1), M / 4, &l), -ERANGE);
	CHECK_EQ_INT(l, 12345);
	CHECK_EQ_INT(slots_frame(&fr, Q(M / 4, 1), Q(1, 1), M / 4), 1);
	/* T/tb = 2M^2 fits, but not with the half tick added (4M^2 + 1 halves) */
	CHECK_EQ_INT(slots_frame(&fr, Q(M, 1), Q(1, 1), M), -ERANGE);
	CHECK_EQ_INT(slots_frame(&fr, Q(-M, 1), Q(1, 1), 0), 0);
	/* (M + M*M) * M needs about 189 bits. */
	CHECK_EQ_INT(slots_frame(&fr, Q(M, 1), Q(1, M), M), -ERANGE);
	CHECK_EQ_INT(slots_limit_ticks(&fr, Q(M, 1), Q(1, M), M, &l), -ERANGE);
	fr = (struct slot_frames){pts, 2, M, Q(M, 1), -M};
	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(M, 1), Q(M, 1)), -ERANGE);
	/* Denominators M, M-1 and M-3 multiply to about 189 bits, though T_k/tb is tiny. */
	fr = (struct slot_frames){pts, 2, 2, Q(M - 3, 1), 0};
	CHECK_EQ_INT(slots_frame(&fr, Q(1, M), Q(M - 1, 1), 1), -ERANGE);
	/* A count beyond int64 is an error too, never a truncated number. */
	fr = (struct slot_frames){pts, 2, M, Q(1, 1), -M};
	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(M, 1), Q(2, 1)), -ERANGE);
	CHECK_EQ_INT(slots_count(&fr, Q(0, 1), Q(M, 1), Q(1, 1)), M);
}

/* A 64-bit LCG: reproducible without depending on the C library's rand(). */
static int64_t rnd(uint64_t *seed, int64_t m)
{
	*seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
	return (int64_t)((*seed >> 33) % (uint64_t)m);
}

static struct hf_q rnd_q(uint64_t *seed, int64_t num_min, int64_t num_span, int64_t den_span)
{
	int64_t num = num_min + rnd(seed, num_span);
	int64_t den = 1 + rnd(seed, den_span);

	return hf_q_reduce(Q(num, den));
}

/* Random sources and segments against the oracle (fixed seed, reproducible). */
static void test_random(void)
{
	static const int64_t tbs[] = {1000, 15360, 12288, 30000, 90000, 600};
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	int round, failed = 0, tried = 0;

	for (round = 0; round < 400 && failed == 0; round++) {
		struct slot_frames fr;
		struct hf_q s, d, f;
		size_t n = (size_t)rnd(&seed, 200), i;
		int64_t t;

		fr.tb = Q(1, tbs[rnd(&seed, 6)]);
		fr.origin = rnd(&seed, 3) == 0 ? rnd(&seed, 5000) - 2500 : 0;
		t = fr.origin + rnd(&seed, 3000);
		for (i = 0; i < n; i++) {
			pts_buf[i] = t;
			/* Mostly short steps, some repeats, now and then a long gap. */
			if (rnd(&seed, 10) == 0)
				t += rnd(&seed, 20000);
			else if (rnd(&seed, 3) != 0)
				t += 1 + rnd(&seed, 1500);
		}
		fr.pts = pts_buf;
		fr.n = n;
		fr.end = t + rnd(&seed, 2000);
		s = rnd_q(&seed, 0, 20000, 1000);
		d = rnd_q(&seed, 1, 20000, 1000);
		f = rnd_q(&seed, 1, 60000, 1001);
		if (oracle_count(&fr, s, d, f, 3001) > 3000)
			continue;
		tried++;
		if (n == 0)
			CHECK_EQ_INT(slots_count(&fr, s, d, f), 0);
		else if (!agrees(&fr, s, d, f))
			failed = 1;
	}
	CHECK(failed == 0);
	CHECK(tried > 100);
}

/*
 * Matroska and WebM store milliseconds: 30 fps frames at 0, 33, 67, 100, 133, 167 ms...
 * Read at 30 fps from 0, slot k must show frame k (67 ms is 66.67 ms rounded up by a
 * third of a tick); without the half tick every third slot would repeat a frame.
 */
static void test_half_tick(void)
{
	struct slot_frames fr;
	size_t i, n = 300;
	int64_t l = 0;

	for (i = 0; i < n; i++)
		pts_buf[i] = ((int64_t)i * 1000 + 15) / 30; /* round(i * 1000 / 30) */
	fr = (struct slot_frames){pts_buf, n, pts_buf[n - 1] + 33, Q(1, 1000), 0};
	for (i = 0; i < n; i++)
		if (!CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), (int64_t)i), (int64_t)i))
			break;
	/* the same at 30000/1001 (0, 33, 67, 100, 133, 167, 200, 234 ms, ...) */
	for (i = 0; i < n; i++)
		pts_buf[i] = ((int64_t)i * 1001 * 2 + 30) / 60; /* round(i * 1001 / 30) */
	fr.end = pts_buf[n - 1] + 33;
	for (i = 0; i < n; i++)
		if (!CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30000, 1001), (int64_t)i), (int64_t)i))
			break;
	/* a frame half a tick late still counts; a tie belongs to the new frame */
	CHECK_EQ_INT(slots_limit_ticks(&fr, Q(0, 1), Q(30, 1), 2, &l), 0);
	CHECK_EQ_INT(l, 67); /* floor(66.67 + 0.5) */
	CHECK_EQ_INT(slots_limit_ticks(&fr, Q(1, 1000), Q(1, 1), 0, &l), 0);
	CHECK_EQ_INT(l, 1); /* floor(1 + 0.5) */
	/* fine time bases: nothing visible changes (15360 ticks a second, 512 a frame) */
	fr = cfr(0, 512, 100, Q(1, 15360), 0);
	for (i = 0; i < 100; i++)
		CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), (int64_t)i), (int64_t)i);
	/* a 60 fps millisecond source read at 30 shows every other frame */
	for (i = 0; i < n; i++)
		pts_buf[i] = ((int64_t)i * 1000 + 30) / 60;
	fr = (struct slot_frames){pts_buf, n, pts_buf[n - 1] + 17, Q(1, 1000), 0};
	for (i = 0; i < n / 2; i++)
		if (!CHECK_EQ_INT(slots_frame(&fr, Q(0, 1), Q(30, 1), (int64_t)i), 2 * (int64_t)i))
			break;
}

int main(void)
{
	test_reduce();
	test_cmp();
	test_cfr30();
	test_count_ceil();
	test_end_clamp();
	test_24_at_60();
	test_ntsc();
	test_vfr();
	test_duplicates();
	test_before_first();
	test_origin();
	test_overflow();
	test_half_tick();
	test_random();
	return hftest_done();
}
