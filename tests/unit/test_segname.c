/*
 * Unit tests for fs/segname: the segment name grammar (SPEC §3), parsed from the
 * right, its limits, and the canonical spelling that makes equal values equal names.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "fs/segname.h"
#include "hftest.h"

static bool q_is(struct hf_q q, int64_t num, int64_t den)
{
	return q.num == num && q.den == den;
}

/* Parses s and reports NAME, so each case reads as one line. */
static bool parses(const char *s, const char *name)
{
	struct segname sn;
	int ret = segname_parse(s, &sn);

	if (!CHECK_EQ_INT(ret, 0)) {
		fprintf(stderr, "  rejected: \"%s\"\n", s);
		return false;
	}
	return CHECK_EQ_INT(sn.name_len, strlen(name)) && CHECK(memcmp(s, name, sn.name_len) == 0);
}

static void rejects(const char *s)
{
	struct segname sn;

	if (!CHECK_EQ_INT(segname_parse(s, &sn), -ENOENT))
		fprintf(stderr, "  accepted: \"%s\"\n", s);
}

/* The canonical spelling of s, or "" when it does not parse or format. */
static const char *canon(const char *s)
{
	static char buf[512];
	struct segname sn;

	buf[0] = '\0';
	if (segname_parse(s, &sn) < 0 || segname_format(&sn, s, sn.name_len, buf, sizeof(buf)) < 0)
		return "";
	return buf;
}

static void test_values(void)
{
	struct segname sn;

	CHECK_EQ_INT(segname_parse("clip.mp4@1.5+2@30", &sn), 0);
	CHECK_EQ_INT(sn.name_len, 8);
	CHECK(q_is(sn.start, 3, 2));
	CHECK(q_is(sn.dur, 2, 1));
	CHECK(q_is(sn.fps, 30, 1));
	CHECK_EQ_INT(sn.format, SEG_PNG);
	CHECK_EQ_INT(sn.q, SEGNAME_DEFAULT_Q);
	CHECK_EQ_STR(segname_ext(&sn), "png");

	CHECK_EQ_INT(segname_parse("v.mov@0@1.37+0.040@30000:1001@jpg,q=7", &sn), 0);
	CHECK_EQ_INT(sn.name_len, 7);
	CHECK(q_is(sn.start, 137, 100));
	CHECK(q_is(sn.dur, 1, 25));
	CHECK(q_is(sn.fps, 30000, 1001));
	CHECK_EQ_INT(sn.format, SEG_JPG);
	CHECK_EQ_INT(sn.q, 7);
	CHECK_EQ_STR(segname_ext(&sn), "jpg");

	CHECK_EQ_INT(segname_parse("x@0.000+1@29.970", &sn), 0);
	CHECK(q_is(sn.start, 0, 1));
	CHECK(q_is(sn.fps, 2997, 100));
	CHECK_EQ_INT(segname_parse("x@0+1@60:2", &sn), 0);
	CHECK(q_is(sn.fps, 30, 1));
	CHECK_EQ_INT(segname_parse("x@0+1@1:3", &sn), 0);
	CHECK(q_is(sn.fps, 1, 3));
	CHECK_EQ_INT(segname_parse("x@0+1@30@jpg", &sn), 0);
	CHECK_EQ_INT(sn.q, SEGNAME_DEFAULT_Q);
	CHECK_EQ_INT(segname_parse("x@0+1@30@q=031,jpg", &sn), 0);
	CHECK_EQ_INT(sn.q, 31);
	CHECK_EQ_INT(segname_parse("x@0+1@30@png", &sn), 0);
	CHECK_EQ_INT(sn.format, SEG_PNG);
}

/* NAME is whatever precedes the segment's own '@'s, '@' and '+' included. */
static void test_names(void)
{
	parses("a@b+c.mp4@1.5+2@30", "a@b+c.mp4");
	parses("x@1+2@3@jpg", "x");
	parses("x@1+2@3@jpg,q=9", "x");
	parses("v@1+2@30.mp4@0+1@30", "v@1+2@30.mp4");
	parses("x@1+2@3@jpg@1+2@3", "x@1+2@3@jpg");
	parses("x@1+2@3@jpg@1+2@3@png", "x@1+2@3@jpg");
	parses("@@1+2@3", "@");
	parses("+@1+2@3", "+");
	parses("a b (1).webm@0+1@30", "a b (1).webm");
	parses("x@0+1@30@png", "x");
	rejects("@1+2@30");
	rejects("@1+2@30@jpg");
	rejects("1+2@30");
	rejects("x1+2@30");
	rejects("x@1+2");
	rejects("x");
	rejects("");
	rejects("@");
	rejects("x@1+2@30@1+2"); /* no fps after the last start+dur */
}

static void test_grammar(void)
{
	static const char *bad[] = {
	    /* empty parts */
	    "x@+2@30", "x@1+@30", "x@1+2@", "x@+@30", "x@@30", "x@1+2@@jpg", "x@12@30",
	    "x@1+2+3@30",
	    /* signs */
	    "x@-1+2@30", "x@+1+2@30", "x@1+-2@30", "x@1++2@30", "x@1+2@-30", "x@1+2@+30",
	    "x@1+2@-30000:1001", "x@1+2@30000:-1001",
	    /* exponents, spaces, other characters */
	    "x@1e3+2@30", "x@1+2E1@30", "x@1+2@3e1", "x@1+2@0x1e", "x@ 1+2@30", "x@1+2@30 ",
	    "x@1,5+2@30", "x@1+2@inf", "x@1+2@nan",
	    /* dots */
	    "x@.5+2@30", "x@1.+2@30", "x@1+2.@30", "x@1+.5@30", "x@1+2@30.", "x@1+2@.5",
	    "x@1..5+2@30", "x@1.5.0+2@30", "x@.+2@30", "x@1+2@.", "x@1+2@1.5:2", "x@1+2@3:1.0",
	    /* zero and malformed fps */
	    "x@1+0@30", "x@1+0.000@30", "x@1+2@0", "x@1+2@0.0", "x@1+2@0:1", "x@1+2@1:0",
	    "x@1+2@0:0", "x@1+2@:1", "x@1+2@1:", "x@1+2@:", "x@1+2@1:2:3"};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		rejects(bad[i]);
	parses("x@0+0.001@0.001", "x");
	parses("x@00+01@030", "x");
}

static void test_opts(void)
{
	static const char *bad[] = {"x@1+2@3@",
				    "x@1+2@3@jpg,",
				    "x@1+2@3@,jpg",
				    "x@1+2@3@jpg,,q=5",
				    "x@1+2@3@jpg,jpg",
				    "x@1+2@3@png,png",
				    "x@1+2@3@png,jpg",
				    "x@1+2@3@jpg,png",
				    "x@1+2@3@jpg,q=5,q=5",
				    "x@1+2@3@jpg,q=5,q=6",
				    "x@1+2@3@q=5",
				    "x@1+2@3@png,q=5",
				    "x@1+2@3@q=5,png",
				    "x@1+2@3@jpg,q=0",
				    "x@1+2@3@jpg,q=32",
				    "x@1+2@3@jpg,q=000",
				    "x@1+2@3@jpg,q=1234",
				    "x@1+2@3@jpg,q=",
				    "x@1+2@3@jpg,q=-1",
				    "x@1+2@3@jpg,q=+1",
				    "x@1+2@3@jpg,q=1.5",
				    "x@1+2@3@jpg,q",
				    "x@1+2@3@jpg,Q=5",
				    "x@1+2@3@JPG",
				    "x@1+2@3@jpeg",
				    "x@1+2@3@webp",
				    "x@1+2@3@jpg q=5",
				    "x@1+2@3@jpg;q=5",
				    "x@1+2@3@ jpg"};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		rejects(bad[i]);
	parses("x@1+2@3@jpg,q=1", "x");
	parses("x@1+2@3@jpg,q=31", "x");
	parses("x@1+2@3@jpg,q=001", "x");
	parses("x@1+2@3@q=5,jpg", "x");
}

/* At most 18 digits per number, leading zeros and fraction digits included. */
static void test_digits(void)
{
	struct segname sn;

	CHECK_EQ_INT(segname_parse("x@123456789012345678+1@30", &sn), 0);
	CHECK(q_is(sn.start, 123456789012345678LL, 1));
	rejects("x@1234567890123456789+1@30");
	CHECK_EQ_INT(segname_parse("x@000000000000000001+1@30", &sn), 0);
	CHECK(q_is(sn.start, 1, 1));
	rejects("x@0000000000000000001+1@30");
	CHECK_EQ_INT(segname_parse("x@0.00000000000000001+1@30", &sn), 0);
	CHECK(q_is(sn.start, 1, 100000000000000000LL));
	rejects("x@0.000000000000000001+1@30");
	CHECK_EQ_INT(segname_parse("x@99999999.9999999999+1@30", &sn), 0);
	rejects("x@99999999.99999999999+1@30");
	CHECK_EQ_INT(segname_parse("x@1.00000000000000000+1@30", &sn), 0);
	rejects("x@1.000000000000000000+1@30");
	/* fps: each side of ':' on its own */
	CHECK_EQ_INT(segname_parse("x@0+0.00000000000000001@999999999999999999:1", &sn), 0);
	CHECK(q_is(sn.fps, 999999999999999999LL, 1));
	rejects("x@0+0.00000000000000001@1000000000000000000:1");
	CHECK_EQ_INT(segname_parse("x@0+1@1:999999999999999999", &sn), 0);
	CHECK(q_is(sn.fps, 1, 999999999999999999LL));
	rejects("x@0+1@1:1000000000000000000");
	rejects("x@0+1@0000000000000000001:1");
	/* 19 digits that would overflow int64 if accepted */
	rejects("x@0+1@99999999999999999999");
	rejects("x@99999999999999999999999999999999999999+1@30");
}

/* dur * fps may reach 10^7 exactly, never exceed it. */
static void test_slot_limit(void)
{
	parses("x@0+10000000@1", "x");
	parses("x@0+1000000@10", "x");
	parses("x@0+1@10000000", "x");
	parses("x@5+333333.3333333333@30", "x");
	parses("x@0+333667@10000000:333667", "x");
	parses("x@0+333666@30000:1001", "x");
	parses("x@0+0.00000000000000001@999999999999999999:1", "x");
	rejects("x@0+10000000.00000001@1");
	rejects("x@0+1000000@10.00000000000001");
	rejects("x@0+1@10000001");
	rejects("x@0+1@10000000.0000000001");
	rejects("x@0+333333.3333333334@30");
	rejects("x@0+333667@10000001:333667");
	rejects("x@0+333667@30000:1001");
	rejects("x@0+999999999999999999@999999999999999999");
	rejects("x@0+99999999.9999999999@99999999.9999999999:1");
}

static void test_canonical(void)
{
	static const char *same[] = {"x@1.50+2.0@30",	"x@1.5+2@30",	 "x@01.5+002.000@30.0",
				     "x@1.5+2@60:2",	"x@1.5+2@30:1",	 "x@1.500+2@030",
				     "x@1.5+2@030:001", "x@1.5+2@30@png"};
	size_t i;

	for (i = 0; i < sizeof(same) / sizeof(same[0]); i++)
		CHECK_EQ_STR(canon(same[i]), "x@1.5+2@30");
	CHECK_EQ_STR(canon("x@0.000+1@29.970"), "x@0+1@29.97");
	CHECK_EQ_STR(canon("x@0+1@2997:100"), "x@0+1@29.97");
	CHECK_EQ_STR(canon("x@0+1@30000:1001"), "x@0+1@30000:1001");
	CHECK_EQ_STR(canon("x@0+1@60000:2002"), "x@0+1@30000:1001");
	CHECK_EQ_STR(canon("x@0+1@24000:1001"), "x@0+1@24000:1001");
	CHECK_EQ_STR(canon("x@0+1@23.976"), "x@0+1@23.976");
	CHECK_EQ_STR(canon("x@0+1@1:8"), "x@0+1@0.125");
	CHECK_EQ_STR(canon("x@0+1@1:3"), "x@0+1@1:3");
	CHECK_EQ_STR(canon("x@0+1@5:1"), "x@0+1@5");
	CHECK_EQ_STR(canon("x@0+1@0.00000000000000001"), "x@0+1@0.00000000000000001");
	CHECK_EQ_STR(canon("x@0+1@1:100000000000000000"), "x@0+1@0.00000000000000001");
	/* 5 * 10^-18 needs 19 digits as a decimal, so it stays a ratio. */
	CHECK_EQ_STR(canon("x@0+1@1:200000000000000000"), "x@0+1@1:200000000000000000");
	CHECK_EQ_STR(canon("x@0+1@1:1099511627776"), "x@0+1@1:1099511627776");
	CHECK_EQ_STR(canon("x@0+0.00000000000000001@999999999999999999:8"),
		     "x@0+0.00000000000000001@999999999999999999:8");
	CHECK_EQ_STR(canon("x@0+1@30@jpg,q=2"), "x@0+1@30@jpg");
	CHECK_EQ_STR(canon("x@0+1@30@jpg,q=02"), "x@0+1@30@jpg");
	CHECK_EQ_STR(canon("x@0+1@30@q=7,jpg"), "x@0+1@30@jpg,q=7");
	CHECK_EQ_STR(canon("x@0+1@30@jpg,q=031"), "x@0+1@30@jpg,q=31");
	CHECK_EQ_STR(canon("x@0+1@30@untagged=cli,hold,jpg"), "x@0+1@30@jpg,hold,untagged=cli");
	CHECK_EQ_STR(canon("x@0+1@30@untagged=cli,untagged=cli"), "");
	CHECK_EQ_STR(canon("x@0+1@30@untagged=browser"), "");
	CHECK_EQ_STR(canon("x@0+1@30@untagged"), "");
	CHECK_EQ_STR(canon("a@b+c.mp4@3.14159+0.5@25"), "a@b+c.mp4@3.14159+0.5@25");
	CHECK_EQ_STR(canon("x@0.00000000000000001+99999999.9999999999@0.1"),
		     "x@0.00000000000000001+99999999.9999999999@0.1");
}

/* Formatting then parsing gives the same values, and formatting again the same name. */
static void test_round_trip(void)
{
	static const char *names[] = {"x@0+1@30000:1001",
				      "clip.mp4@12.345+6.5@29.97@jpg,q=5",
				      "a@b+c@0+1@1:3",
				      "x@0+0.00000000000000001@999999999999999999:1",
				      "x@1+2@1:200000000000000000",
				      "x@0+1@1:999999999999999999",
				      "x@123456789012345678+1@30"};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct segname a, b;
		char buf1[256], buf2[256];
		int n1, n2;

		if (!CHECK_EQ_INT(segname_parse(names[i], &a), 0))
			continue;
		n1 = segname_format(&a, names[i], a.name_len, buf1, sizeof(buf1));
		CHECK_EQ_INT(n1, strlen(buf1));
		if (!CHECK_EQ_INT(segname_parse(buf1, &b), 0))
			continue;
		CHECK(b.name_len == a.name_len && q_is(b.start, a.start.num, a.start.den) &&
		      q_is(b.dur, a.dur.num, a.dur.den) && q_is(b.fps, a.fps.num, a.fps.den) &&
		      b.format == a.format && b.q == a.q);
		n2 = segname_format(&b, buf1, b.name_len, buf2, sizeof(buf2));
		CHECK_EQ_INT(n2, n1);
		CHECK_EQ_STR(buf2, buf1);
	}
	CHECK_EQ_STR(canon("x@0+1@30000:1001"), "x@0+1@30000:1001");
}

static void test_format_edges(void)
{
	struct segname sn;
	char buf[64];
	const char *s = "clip.mp4@1.5+2@30";

	CHECK_EQ_INT(segname_parse(s, &sn), 0);
	/* Exactly fits with its NUL; one byte less is too long but still terminated. */
	CHECK_EQ_INT(segname_format(&sn, s, sn.name_len, buf, strlen(s) + 1), (int)strlen(s));
	CHECK_EQ_STR(buf, s);
	CHECK_EQ_INT(segname_format(&sn, s, sn.name_len, buf, strlen(s)), -ENAMETOOLONG);
	CHECK_EQ_INT(buf[strlen(s) - 1], '\0');
	CHECK_EQ_INT(segname_format(&sn, s, sn.name_len, buf, 0), -ENAMETOOLONG);
	/* Another NAME for the same values. */
	CHECK_EQ_INT(segname_format(&sn, "other.mkv", 9, buf, sizeof(buf)), 18);
	CHECK_EQ_STR(buf, "other.mkv@1.5+2@30");

	CHECK_EQ_INT(segname_format_q((struct hf_q){3, 2}, buf, sizeof(buf)), 3);
	CHECK_EQ_STR(buf, "1.5");
	CHECK_EQ_INT(segname_format_q((struct hf_q){0, 1}, buf, sizeof(buf)), 1);
	CHECK_EQ_STR(buf, "0");
	CHECK_EQ_INT(segname_format_q((struct hf_q){120, 10}, buf, sizeof(buf)), 2);
	CHECK_EQ_STR(buf, "12");
	CHECK_EQ_INT(segname_format_q((struct hf_q){-1, 8}, buf, sizeof(buf)), 6);
	CHECK_EQ_STR(buf, "-0.125");
	CHECK_EQ_INT(segname_format_q((struct hf_q){INT64_MAX, 1}, buf, sizeof(buf)), 19);
	CHECK_EQ_STR(buf, "9223372036854775807");
	CHECK_EQ_INT(segname_format_q((struct hf_q){1, 3}, buf, sizeof(buf)), -EINVAL);
	CHECK_EQ_INT(segname_format_q((struct hf_q){1, 0}, buf, sizeof(buf)), -EINVAL);
	CHECK_EQ_INT(segname_format_q((struct hf_q){3, 2}, buf, 3), -ENAMETOOLONG);
}

/* The transform, size and hold options (SPEC §3, §4a): their values once parsed. */
static void test_transform_values(void)
{
	struct segname sn;

	CHECK_EQ_INT(segname_parse("clip.mp4@1.5+2@30", &sn), 0);
	CHECK_EQ_INT(sn.w, 0);
	CHECK_EQ_INT(sn.h, 0);
	CHECK_EQ_INT(sn.fit, SEG_FIT_NONE);
	CHECK(!sn.hold);
	CHECK(!sn.bt2020);
	CHECK_EQ_INT(sn.tonemap, SEG_TM_NONE);

	CHECK_EQ_INT(segname_parse("clip.mp4@1.5+2@30@w=960,h=540", &sn), 0);
	CHECK_EQ_INT(sn.w, 960);
	CHECK_EQ_INT(sn.h, 540);
	CHECK_EQ_INT(sn.fit, SEG_FIT_FILL);
	CHECK_EQ_INT(sn.format, SEG_PNG);
	CHECK_EQ_INT(segname_parse("x@0+1@30@h=540,w=960,fit=fill", &sn), 0);
	CHECK_EQ_INT(sn.fit, SEG_FIT_FILL);
	CHECK_EQ_INT(segname_parse("x@0+1@30@fit=contain,w=1,h=16384", &sn), 0);
	CHECK_EQ_INT(sn.fit, SEG_FIT_CONTAIN);
	CHECK_EQ_INT(sn.w, 1);
	CHECK_EQ_INT(sn.h, SEGNAME_MAX_SIDE);
	CHECK_EQ_INT(segname_parse("x@0+1@30@w=00007,h=3,fit=cover", &sn), 0);
	CHECK_EQ_INT(sn.fit, SEG_FIT_COVER);
	CHECK_EQ_INT(sn.w, 7);
	CHECK_EQ_INT(sn.h, 3);

	/* One side alone: the other follows the picture's aspect, and there is no fit. */
	CHECK_EQ_INT(segname_parse("x@0+1@30@w=961", &sn), 0);
	CHECK_EQ_INT(sn.w, 961);
	CHECK_EQ_INT(sn.h, 0);
	CHECK_EQ_INT(sn.fit, SEG_FIT_NONE);
	CHECK_EQ_INT(segname_parse("x@0+1@30@h=181", &sn), 0);
	CHECK_EQ_INT(sn.w, 0);
	CHECK_EQ_INT(sn.h, 181);
	CHECK_EQ_INT(sn.fit, SEG_FIT_NONE);

	CHECK_EQ_INT(segname_parse("x@0+1@30@hold", &sn), 0);
	CHECK(sn.hold);
	CHECK_EQ_INT(sn.w, 0);
	CHECK_EQ_INT(segname_parse("x@0+1@30@bt2020", &sn), 0);
	CHECK(sn.bt2020);
	CHECK_EQ_INT(sn.tonemap, SEG_TM_NONE);
	CHECK_EQ_INT(segname_parse("x@0+1@30@tonemap", &sn), 0);
	CHECK_EQ_INT(sn.tonemap, SEG_TM_HABLE);
	CHECK(!sn.bt2020);
	CHECK_EQ_INT(segname_parse("x@0+1@30@tonemap=hable", &sn), 0);
	CHECK_EQ_INT(sn.tonemap, SEG_TM_HABLE);
	CHECK_EQ_INT(segname_parse("x@0+1@30@tonemap=reinhard", &sn), 0);
	CHECK_EQ_INT(sn.tonemap, SEG_TM_REINHARD);
	CHECK_EQ_INT(segname_parse("x@0+1@30@tonemap=mobius", &sn), 0);
	CHECK_EQ_INT(sn.tonemap, SEG_TM_MOBIUS);
	CHECK_EQ_INT(segname_parse("x@0+1@30@tonemap=clip", &sn), 0);
	CHECK_EQ_INT(sn.tonemap, SEG_TM_CLIP);

	/* Everything at once, in an order nobody would choose. */
	CHECK_EQ_INT(
	    segname_parse("x@0+1@30@hold,tonemap=mobius,fit=contain,h=9,q=31,w=16,jpg", &sn), 0);
	CHECK_EQ_INT(sn.format, SEG_JPG);
	CHECK_EQ_INT(sn.q, 31);
	CHECK_EQ_INT(sn.w, 16);
	CHECK_EQ_INT(sn.h, 9);
	CHECK_EQ_INT(sn.fit, SEG_FIT_CONTAIN);
	CHECK(sn.hold);
	CHECK(!sn.bt2020);
	CHECK_EQ_INT(sn.tonemap, SEG_TM_MOBIUS);
	CHECK_EQ_INT(segname_parse("x@0+1@30@bt2020,png,hold,w=2", &sn), 0);
	CHECK_EQ_INT(sn.format, SEG_PNG);
	CHECK(sn.bt2020 && sn.hold);
	CHECK_EQ_INT(sn.w, 2);

	CHECK_EQ_STR(segname_tonemap_name(SEG_TM_HABLE), "hable");
	CHECK_EQ_STR(segname_tonemap_name(SEG_TM_REINHARD), "reinhard");
	CHECK_EQ_STR(segname_tonemap_name(SEG_TM_MOBIUS), "mobius");
	CHECK_EQ_STR(segname_tonemap_name(SEG_TM_CLIP), "clip");
	CHECK_EQ_STR(segname_tonemap_name(SEG_TM_NONE), "");
}

/* Repeats, contradictions, out-of-range sizes and unknown words make the name invalid. */
static void test_transform_invalid(void)
{
	static const char *bad[] = {
	    /* repeated, even with the same value */
	    "x@0+1@30@w=5,w=5", "x@0+1@30@w=5,w=6", "x@0+1@30@h=5,h=5", "x@0+1@30@hold,hold",
	    "x@0+1@30@bt2020,bt2020", "x@0+1@30@tonemap,tonemap", "x@0+1@30@tonemap,tonemap=hable",
	    "x@0+1@30@tonemap=clip,tonemap=mobius", "x@0+1@30@w=5,h=5,fit=fill,fit=fill",
	    "x@0+1@30@w=5,h=5,fit=fill,fit=cover", "x@0+1@30@jpg,hold,jpg", "x@0+1@30@png,w=5,png",
	    /* png with jpg, q without jpg, with transforms around */
	    "x@0+1@30@png,w=5,jpg", "x@0+1@30@w=5,q=5", "x@0+1@30@hold,q=2",
	    "x@0+1@30@png,q=2,hold",
	    /* fit without both sides */
	    "x@0+1@30@fit=fill", "x@0+1@30@fit=contain", "x@0+1@30@fit=cover",
	    "x@0+1@30@w=5,fit=fill", "x@0+1@30@h=5,fit=cover", "x@0+1@30@fit=contain,w=5",
	    "x@0+1@30@fit=cover,hold,h=5",
	    /* sizes: zero, above 16384, more than five digits, not a plain number */
	    "x@0+1@30@w=0", "x@0+1@30@h=0", "x@0+1@30@w=00000", "x@0+1@30@w=0,h=5",
	    "x@0+1@30@w=5,h=0", "x@0+1@30@w=16385", "x@0+1@30@h=16385", "x@0+1@30@w=99999",
	    "x@0+1@30@w=000001", "x@0+1@30@h=016384", "x@0+1@30@w=123456",
	    "x@0+1@30@w=", "x@0+1@30@h=", "x@0+1@30@w", "x@0+1@30@h", "x@0+1@30@w=-5",
	    "x@0+1@30@w=+5", "x@0+1@30@w=5.0", "x@0+1@30@w=1e3", "x@0+1@30@w=0x10", "x@0+1@30@w= 5",
	    "x@0+1@30@w=5 ", "x@0+1@30@W=5", "x@0+1@30@width=5", "x@0+1@30@w=5:h=5",
	    /* fit values */
	    "x@0+1@30@w=5,h=5,fit=", "x@0+1@30@w=5,h=5,fit", "x@0+1@30@w=5,h=5,fit=none",
	    "x@0+1@30@w=5,h=5,fit=Cover", "x@0+1@30@w=5,h=5,fit=stretch",
	    "x@0+1@30@w=5,h=5,fit=cover=1",
	    /* bt2020 with tonemap, in either order and with any operator */
	    "x@0+1@30@bt2020,tonemap", "x@0+1@30@tonemap,bt2020", "x@0+1@30@tonemap=clip,bt2020",
	    "x@0+1@30@bt2020,w=5,tonemap=reinhard",
	    /* operators */
	    "x@0+1@30@tonemap=", "x@0+1@30@tonemap=none", "x@0+1@30@tonemap=linear",
	    "x@0+1@30@tonemap=gamma", "x@0+1@30@tonemap=HABLE", "x@0+1@30@tonemap=hable2",
	    "x@0+1@30@tonemap=hable,", "x@0+1@30@tonemap==hable", "x@0+1@30@tonemap:hable",
	    "x@0+1@30@Tonemap", "x@0+1@30@tonemapx",
	    /* words that take no value, and unknown ones */
	    "x@0+1@30@hold=1", "x@0+1@30@hold=", "x@0+1@30@bt2020=1", "x@0+1@30@BT2020",
	    "x@0+1@30@bt709", "x@0+1@30@HOLD", "x@0+1@30@holds", "x@0+1@30@fill", "x@0+1@30@cover",
	    "x@0+1@30@scale=5:5", "x@0+1@30@crop=5:5",
	    /* empty options */
	    "x@0+1@30@hold,", "x@0+1@30@,hold", "x@0+1@30@w=5,,h=5", "x@0+1@30@hold,,",
	    "x@0+1@30@ hold", "x@0+1@30@hold,w=5 "};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		rejects(bad[i]);
	/* The edges that are fine. */
	parses("x@0+1@30@w=16384", "x");
	parses("x@0+1@30@h=16384", "x");
	parses("x@0+1@30@w=16384,h=16384,fit=cover", "x");
	parses("x@0+1@30@w=00001", "x");
	parses("x@0+1@30@h=09999", "x");
	parses("x@0+1@30@w=1,h=1", "x");
	parses("x@0+1@30@w=1,h=1,fit=fill", "x");
	parses("x@0+1@30@jpg,bt2020", "x");
	parses("x@0+1@30@jpg,q=1,tonemap=clip,hold", "x");
	parses("x@0+1@30@png,hold", "x");
	/* NAME keeps what looks like options when a segment follows. */
	parses("x@1+2@3@w=5,hold@0+1@30@h=7", "x@1+2@3@w=5,hold");
	parses("x@1+2@3@tonemap=nope@0+1@30", "x@1+2@3@tonemap=nope");
	rejects("x@1+2@3@w=5@0+1@30@w=0");
}

/* The canonical order: jpg, q=N, w=W, h=H, fit=contain|cover, bt2020, tonemap[=OP], hold;
 * defaults (png, q=2, fit=fill, tonemap=hable) left out. */
static void test_transform_canonical(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"clip.mp4@1.5+2@30@hold,w=960,fit=cover,h=540,png",
	     "clip.mp4@1.5+2@30@w=960,h=540,fit=cover,hold"},
	    {"x@0+1@30@w=960,h=540", "x@0+1@30@w=960,h=540"},
	    {"x@0+1@30@h=540,w=960", "x@0+1@30@w=960,h=540"},
	    {"x@0+1@30@fit=fill,h=540,w=960", "x@0+1@30@w=960,h=540"},
	    {"x@0+1@30@w=0960,h=00540,fit=fill,png", "x@0+1@30@w=960,h=540"},
	    {"x@0+1@30@w=960,h=540,fit=contain", "x@0+1@30@w=960,h=540,fit=contain"},
	    {"x@0+1@30@fit=contain,h=540,w=960", "x@0+1@30@w=960,h=540,fit=contain"},
	    {"x@0+1@30@fit=cover,w=1,h=16384", "x@0+1@30@w=1,h=16384,fit=cover"},
	    {"x@0+1@30@w=961", "x@0+1@30@w=961"},
	    {"x@0+1@30@w=00961", "x@0+1@30@w=961"},
	    {"x@0+1@30@h=181,png", "x@0+1@30@h=181"},
	    {"x@0+1@30@hold", "x@0+1@30@hold"},
	    {"x@0+1@30@png,hold", "x@0+1@30@hold"},
	    {"x@0+1@30@bt2020", "x@0+1@30@bt2020"},
	    {"x@0+1@30@tonemap", "x@0+1@30@tonemap"},
	    {"x@0+1@30@tonemap=hable", "x@0+1@30@tonemap"},
	    {"x@0+1@30@tonemap=reinhard", "x@0+1@30@tonemap=reinhard"},
	    {"x@0+1@30@tonemap=mobius", "x@0+1@30@tonemap=mobius"},
	    {"x@0+1@30@tonemap=clip", "x@0+1@30@tonemap=clip"},
	    {"x@0+1@30@hold,bt2020,h=5,w=7", "x@0+1@30@w=7,h=5,bt2020,hold"},
	    {"x@0+1@30@hold,tonemap=clip,w=7", "x@0+1@30@w=7,tonemap=clip,hold"},
	    {"x@0+1@30@tonemap=hable,hold,h=7", "x@0+1@30@h=7,tonemap,hold"},
	    {"x@0+1@30@hold,jpg", "x@0+1@30@jpg,hold"},
	    {"x@0+1@30@hold,q=2,jpg", "x@0+1@30@jpg,hold"},
	    {"x@0+1@30@w=5,q=05,jpg", "x@0+1@30@jpg,q=5,w=5"},
	    {"x@0+1@30@hold,fit=cover,h=540,w=960,q=5,jpg",
	     "x@0+1@30@jpg,q=5,w=960,h=540,fit=cover,hold"},
	    {"x@0+1@30@tonemap=mobius,jpg,fit=contain,q=31,hold,h=9,w=16",
	     "x@0+1@30@jpg,q=31,w=16,h=9,fit=contain,tonemap=mobius,hold"},
	    {"x@0+1@30@bt2020,jpg,q=2,w=16,h=9,fit=fill", "x@0+1@30@jpg,w=16,h=9,bt2020"},
	    {"v@1.50+2.0@60:2@hold,png", "v@1.5+2@30@hold"},
	    {"a@b+c.mp4@0+1@30000:1001@h=1080,tonemap=reinhard",
	     "a@b+c.mp4@0+1@30000:1001@h=1080,tonemap=reinhard"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!CHECK_EQ_STR(canon(cases[i].in), cases[i].out))
			fprintf(stderr, "  from \"%s\"\n", cases[i].in);
}

/* Every option survives format then parse, and formatting again gives the same name. */
static void test_transform_round_trip(void)
{
	static const char *names[] = {
	    "x@0+1@30@w=960,h=540",
	    "x@0+1@30@w=960,h=540,fit=contain",
	    "x@0+1@30@w=16384,h=1,fit=cover,hold",
	    "x@0+1@30@w=961",
	    "x@0+1@30@h=181",
	    "x@0+1@30@hold",
	    "x@0+1@30@bt2020",
	    "x@0+1@30@tonemap",
	    "x@0+1@30@tonemap=reinhard",
	    "x@0+1@30@tonemap=mobius,hold",
	    "x@0+1@30@w=4,tonemap=clip",
	    "x@0+1@30@jpg,q=5,w=960,h=540,fit=cover,hold",
	    "x@0+1@30@jpg,h=9,bt2020,hold",
	    "clip.mp4@1.5+2@30000:1001@jpg,q=31,w=16,h=9,fit=contain,tonemap=mobius,hold",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct segname a, b;
		char buf1[256], buf2[256];
		int n1, n2;

		if (!CHECK_EQ_INT(segname_parse(names[i], &a), 0)) {
			fprintf(stderr, "  rejected: \"%s\"\n", names[i]);
			continue;
		}
		n1 = segname_format(&a, names[i], a.name_len, buf1, sizeof(buf1));
		if (!CHECK(n1 > 0))
			continue;
		/* Already canonical: formatting gives the name back. */
		CHECK_EQ_STR(buf1, names[i]);
		if (!CHECK_EQ_INT(segname_parse(buf1, &b), 0))
			continue;
		CHECK(b.format == a.format && b.q == a.q && b.w == a.w && b.h == a.h &&
		      b.fit == a.fit && b.hold == a.hold && b.bt2020 == a.bt2020 &&
		      b.tonemap == a.tonemap);
		n2 = segname_format(&b, buf1, b.name_len, buf2, sizeof(buf2));
		CHECK_EQ_INT(n2, n1);
		CHECK_EQ_STR(buf2, buf1);
	}
}

/* The longest canonical options fit and are measured exactly like the short ones. */
static void test_transform_format_edges(void)
{
	const char *s = "x@0+1@30@jpg,q=31,w=16384,h=16384,fit=contain,tonemap=reinhard,hold";
	struct segname sn;
	char buf[128];

	if (!CHECK_EQ_INT(segname_parse(s, &sn), 0))
		return;
	CHECK_EQ_INT(segname_format(&sn, s, sn.name_len, buf, strlen(s) + 1), (int)strlen(s));
	CHECK_EQ_STR(buf, s);
	CHECK_EQ_INT(segname_format(&sn, s, sn.name_len, buf, strlen(s)), -ENAMETOOLONG);
	CHECK_EQ_INT(segname_format(&sn, "y", 1, buf, sizeof(buf)), (int)strlen(s));
	CHECK_EQ_STR(buf, "y@0+1@30@jpg,q=31,w=16384,h=16384,fit=contain,tonemap=reinhard,hold");
}

int main(void)
{
	test_values();
	test_names();
	test_grammar();
	test_opts();
	test_digits();
	test_slot_limit();
	test_canonical();
	test_round_trip();
	test_format_edges();
	test_transform_values();
	test_transform_invalid();
	test_transform_canonical();
	test_transform_round_trip();
	test_transform_format_edges();
	return hftest_done();
}
