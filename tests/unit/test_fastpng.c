/* fastpng: every stream it writes inflates (zlib's own inflate) to exactly its input. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "decode/fastpng.h"
#include "hftest.h"

static void round_trip(const char *what, const uint8_t *in, size_t n)
{
	size_t cap = fastpng_zlib_bound(n);
	uint8_t *z = malloc(cap), *back = malloc(n + 1);
	uLongf back_len = n + 1;
	size_t zlen;
	int ret;

	zlen = fastpng_zlib(in, n, z);
	if (!CHECK(zlen > 0 && zlen <= cap))
		goto out;
	ret = uncompress(back, &back_len, z, zlen);
	if (!CHECK_EQ_INT(ret, Z_OK))
		fprintf(stderr, "  %s: inflate says %d\n", what, ret);
	else if (!CHECK_EQ_INT(back_len, n) || !CHECK(memcmp(back, in, n) == 0))
		fprintf(stderr, "  %s: round trip differs\n", what);
out:
	free(z);
	free(back);
}

int main(void)
{
	static const size_t sizes[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 258, 259, 260, 261, 262, 263, 4096};
	uint8_t *buf = malloc(1 << 20);
	unsigned seed = 1;

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = sizes[s];
		memset(buf, 0, n);
		round_trip("zeros", buf, n);
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)(rand_r(&seed) >> 7);
		round_trip("random", buf, n);
		/* a run of zeros of every length near a match boundary, at the end */
		for (size_t z = 0; z < n; z += 37) {
			for (size_t i = 0; i < n; i++)
				buf[i] = i >= z ? 0 : (uint8_t)(1 + rand_r(&seed) % 255);
			round_trip("tail run", buf, n);
		}
	}
	/* runs of 1..600 zeros between noise, the shape of filtered flat areas */
	for (size_t run = 1; run <= 600; run += 1) {
		size_t n = 0;
		for (int rep = 0; rep < 3; rep++) {
			for (int k = 0; k < 13; k++)
				buf[n++] = (uint8_t)(1 + rand_r(&seed) % 255);
			memset(buf + n, 0, run);
			n += run;
		}
		round_trip("runs", buf, n);
	}
	/* skewed statistics: one byte dominant (long codes for the rest) */
	for (size_t i = 0; i < (1 << 20); i++)
		buf[i] = (rand_r(&seed) % 1000) ? 0x80 : (uint8_t)rand_r(&seed);
	round_trip("skewed", buf, 1 << 20);
	/* a Fibonacci-like histogram pushes Huffman depths past 15 before limiting */
	{
		size_t n = 0, f1 = 1, f2 = 1;
		for (int sym = 1; sym <= 26 && n < (1 << 20); sym++) {
			size_t f = sym < 3 ? 1 : f1 + f2;
			if (sym >= 3) {
				f1 = f2;
				f2 = f;
			}
			for (size_t i = 0; i < f && n < (1 << 20); i++)
				buf[n++] = (uint8_t)sym;
		}
		round_trip("fibonacci", buf, n);
	}
	free(buf);
	return hftest_done();
}
