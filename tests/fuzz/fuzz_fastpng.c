/*
 * fuzz_fastpng: fastpng_zlib on any bytes. The stream fits in fastpng_zlib_bound() bytes
 * (the buffer is exactly that big, so ASan sees any write past it) and zlib's inflate gives
 * the input back exactly.
 *
 * Filtered rows of flat footage are mostly long runs of zero, which short random inputs
 * rarely hold, so an input that starts with 'Z' is also tried expanded: after the 'Z', a
 * byte 0xff followed by a count byte c becomes 64 * (c + 1) zero bytes (up to 16 KiB), so
 * that runs longer than a match (258), several in a row and runs at both ends are tried
 * from inputs of a few bytes.
 *
 *   tests/fuzz/corpus/fastpng: filtered PNG rows, zeros around the match length limits,
 *   expanded runs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "decode/fastpng.h"
#include "fuzz.h"

#define MAX_EXPANDED (256 << 10) /* more costs executions, not coverage */

static void round_trip(const uint8_t *in, size_t n)
{
	size_t cap = fastpng_zlib_bound(n), zlen;
	uint8_t *z = malloc(cap), *back = malloc(n + 1);
	uLongf back_len = n + 1;
	int ret;

	if (!z || !back)
		abort();
	zlen = fastpng_zlib(in, n, z);
	FUZZ_CHECK(zlen > 0 && zlen <= cap);
	ret = uncompress(back, &back_len, z, zlen);
	if (ret != Z_OK)
		fprintf(stderr, "inflate of %zu bytes (from %zu) says %d\n", zlen, n, ret);
	FUZZ_CHECK(ret == Z_OK);
	FUZZ_CHECK(back_len == n);
	FUZZ_CHECK(n == 0 || memcmp(back, in, n) == 0);
	free(z);
	free(back);
}

/* The expanded input into out (when not NULL); its length, at most MAX_EXPANDED. */
static size_t expand(const uint8_t *data, size_t size, uint8_t *out)
{
	size_t n = 0;

	for (size_t i = 0; i < size; i++) {
		size_t run = 1;
		uint8_t v = data[i];

		if (data[i] == 0xff && i + 1 < size) {
			run = 64 * ((size_t)data[++i] + 1);
			v = 0;
		}
		if (n + run > MAX_EXPANDED)
			break;
		if (out)
			memset(out + n, v, run);
		n += run;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n;
	uint8_t *big;

	round_trip(data, size);
	if (size == 0 || data[0] != 'Z')
		return 0;
	n = expand(data + 1, size - 1, NULL);
	if (n == 0)
		return 0;
	/* exactly n bytes: a read past the input is an ASan report too */
	big = malloc(n);
	if (!big)
		abort();
	expand(data + 1, size - 1, big);
	round_trip(big, n);
	free(big);
	return 0;
}
