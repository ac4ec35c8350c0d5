/*
 * fuzz_segname: segname_parse on any string; a name it accepts has values in range, formats
 * (segname_format) to a canonical name that parses to the same values and formats to itself,
 * and no output buffer, however short, is written past its end.
 *
 *   tests/fuzz/corpus/segname: names from README and the unit tests, and near misses.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs/segname.h"
#include "fuzz.h"

static int64_t gcd64(int64_t a, int64_t b)
{
	while (b != 0) {
		int64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* Reduced, den > 0, num >= min_num. */
static void check_q(struct hf_q q, int64_t min_num)
{
	FUZZ_CHECK(q.den > 0);
	FUZZ_CHECK(q.num >= min_num);
	FUZZ_CHECK(gcd64(q.num, q.den) == 1 || (q.num == 0 && q.den == 1));
}

static void check_values(const struct segname *sn)
{
	check_q(sn->start, 0);
	check_q(sn->dur, 1);
	check_q(sn->fps, 1);
	FUZZ_CHECK(sn->format == SEG_PNG || sn->format == SEG_JPG);
	FUZZ_CHECK(sn->q >= 1 && sn->q <= 31);
	FUZZ_CHECK(sn->format == SEG_JPG || sn->q == SEGNAME_DEFAULT_Q);
}

static bool same_values(const struct segname *a, const struct segname *b)
{
	return a->start.num == b->start.num && a->start.den == b->start.den &&
	       a->dur.num == b->dur.num && a->dur.den == b->dur.den && a->fps.num == b->fps.num &&
	       a->fps.den == b->fps.den && a->format == b->format && a->q == b->q;
}

/* Formats into a heap buffer of exactly len bytes, so that ASan sees any overrun. */
static int format_into(const struct segname *sn, const char *name, size_t name_len, size_t len,
		       char **out)
{
	char *buf = len ? malloc(len) : NULL;
	int ret;

	if (len && !buf)
		abort();
	ret = segname_format(sn, name, name_len, buf, len);
	if (ret >= 0) {
		FUZZ_CHECK((size_t)ret < len && strlen(buf) == (size_t)ret);
	} else {
		FUZZ_CHECK(ret == -ENAMETOOLONG);
		FUZZ_CHECK(len == 0 || strlen(buf) == len - 1);
	}
	if (out)
		*out = buf;
	else
		free(buf);
	return ret;
}

/* segname_format_q of a parsed decimal: a complete spelling with room, a cut one without. */
static void check_format_q(struct hf_q q, size_t len)
{
	char *buf = malloc(len);
	int ret;

	if (!buf)
		abort();
	ret = segname_format_q(q, buf, len);
	FUZZ_CHECK(ret >= 0 || ret == -ENAMETOOLONG || ret == -EINVAL);
	if (ret >= 0)
		FUZZ_CHECK((size_t)ret == strlen(buf));
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct segname a, b;
	char *s, *canon = NULL, *again = NULL;
	size_t room;
	int n;

	s = fuzz_strndup(data, size);
	if (segname_parse(s, &a) < 0)
		goto out;
	FUZZ_CHECK(a.name_len > 0 && a.name_len < strlen(s));
	FUZZ_CHECK(s[a.name_len] == '@');
	check_values(&a);

	/* Canonical numbers take at most a few dozen bytes each. */
	room = a.name_len + 128;
	n = format_into(&a, s, a.name_len, room, &canon);
	FUZZ_CHECK(n > 0);
	FUZZ_CHECK(memcmp(canon, s, a.name_len) == 0 && canon[a.name_len] == '@');
	FUZZ_CHECK(segname_parse(canon, &b) == 0);
	FUZZ_CHECK(b.name_len == a.name_len);
	FUZZ_CHECK(same_values(&a, &b));
	FUZZ_CHECK(format_into(&b, canon, b.name_len, room, &again) == n);
	FUZZ_CHECK(strcmp(canon, again) == 0);

	/* Too short by one, and tiny: cut, terminated, never past the end. */
	FUZZ_CHECK(format_into(&a, s, a.name_len, (size_t)n, NULL) == -ENAMETOOLONG);
	FUZZ_CHECK(format_into(&a, s, a.name_len, 1, NULL) == -ENAMETOOLONG);
	FUZZ_CHECK(format_into(&a, s, a.name_len, 0, NULL) == -ENAMETOOLONG);

	check_format_q(a.start, 64);
	check_format_q(a.dur, 64);
	check_format_q(a.fps, 128);
	check_format_q(a.start, 2);
	check_format_q(a.dur, 1);
	FUZZ_CHECK(strcmp(segname_ext(&a), a.format == SEG_JPG ? "jpg" : "png") == 0);
out:
	free(canon);
	free(again);
	free(s);
	return 0;
}
