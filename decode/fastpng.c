/*
 * The deflate stream (RFC 1951) is written as: BFINAL=1, BTYPE=2 (dynamic), the code
 * length code, literal/length lengths for all 286 symbols and 2 distance codes, then the
 * data and end-of-block; zlib framing (RFC 1950) around it.
 */
#include "decode/fastpng.h"

#include <libdeflate.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NLIT 286
#define NDIST 2
#define MAXBITS 15

static const uint16_t len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
				      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
				      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};

/* Length symbol (0..28, add 257) of a match length 3..258. */
static int len_symbol(size_t len)
{
	int s = 28;
	if (len == 258)
		return 28;
	while (s > 0 && len_base[s] > len)
		s--;
	return s;
}

struct hnode {
	uint32_t w;
	int left, right;
};

/*
 * Huffman code lengths for freq[0..n) limited to `limit` bits: a Huffman tree, then the
 * depth counts rebalanced as in JPEG (ITU T.81 Annex K.3), then lengths handed to symbols
 * by falling frequency. A lone used symbol gets a partner so that the code is complete.
 */
static void code_lengths(const uint32_t *freq, int n, int limit, uint8_t *len)
{
	struct hnode node[2 * NLIT];
	int sym[NLIT], live[NLIT], depth[2 * NLIT], count[64] = {0}, order[NLIT];
	int m = 0, nlive, nn, k = 0;

	memset(len, 0, (size_t)n);
	for (int i = 0; i < n; i++)
		if (freq[i])
			sym[m++] = i;
	if (m < 2) {
		int a = m ? sym[0] : 0;
		len[a] = 1;
		len[a == 0 ? 1 : 0] = 1;
		return;
	}
	for (int i = 0; i < m; i++) {
		node[i] = (struct hnode){freq[sym[i]], -1, -1};
		live[i] = i;
	}
	nlive = m;
	nn = m;
	while (nlive > 1) {
		int a = 0, b;
		for (int i = 1; i < nlive; i++)
			if (node[live[i]].w < node[live[a]].w)
				a = i;
		b = live[a];
		live[a] = live[--nlive];
		a = 0;
		for (int i = 1; i < nlive; i++)
			if (node[live[i]].w < node[live[a]].w)
				a = i;
		node[nn] = (struct hnode){node[b].w + node[live[a]].w, b, live[a]};
		live[a] = nn++;
	}
	/* depths: children are made after their parents' indexes go down, so walk down */
	depth[nn - 1] = 0;
	for (int v = nn - 1; v >= m; v--) {
		depth[node[v].left] = depth[v] + 1;
		depth[node[v].right] = depth[v] + 1;
	}
	for (int i = 0; i < m; i++)
		count[depth[i] < 63 ? depth[i] : 63]++;
	for (int d = 63; d > limit; d--)
		while (count[d] > 0) {
			int j = d - 2;
			while (count[j] == 0)
				j--;
			count[d] -= 2;
			count[d - 1]++;
			count[j + 1] += 2;
			count[j]--;
		}
	for (int i = 0; i < m; i++)
		order[i] = i;
	for (int i = 1; i < m; i++) {
		int v = order[i], j = i;
		while (j > 0 && node[order[j - 1]].w < node[v].w) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = v;
	}
	for (int d = 1; d <= limit; d++)
		for (int c = 0; c < count[d]; c++)
			len[sym[order[k++]]] = (uint8_t)d;
}

/* Canonical codes, bit-reversed because deflate sends Huffman codes most significant bit first. */
static void canonical_codes(const uint8_t *len, int n, uint16_t *code)
{
	int bl_count[MAXBITS + 1] = {0}, next[MAXBITS + 1] = {0}, c = 0;
	for (int i = 0; i < n; i++)
		bl_count[len[i]]++;
	bl_count[0] = 0;
	for (int b = 1; b <= MAXBITS; b++) {
		c = (c + bl_count[b - 1]) << 1;
		next[b] = c;
	}
	for (int i = 0; i < n; i++) {
		uint32_t v, r = 0;
		if (!len[i])
			continue;
		v = (uint32_t)next[len[i]]++;
		for (int b = 0; b < len[i]; b++) {
			r = (r << 1) | (v & 1);
			v >>= 1;
		}
		code[i] = (uint16_t)r;
	}
}

struct zero_run {
	size_t pos, len; /* first zero byte, number of zero bytes */
};

/* The next match length for a run's `rem` bytes left: 3..258, never leaving 1 or 2 behind. */
static size_t next_match(size_t rem)
{
	if (rem <= 258)
		return rem;
	return rem - 258 < 3 ? rem - 3 : 258;
}

/*
 * Runs of zeros, found through aligned all-zero 8-byte words: every run of 15 or more
 * contains one, and the flat areas that matter are much longer.
 */
static struct zero_run *find_runs(const uint8_t *in, size_t n, size_t *count)
{
	struct zero_run *runs = NULL;
	size_t nruns = 0, cap = 0;

	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint64_t v;
		size_t start = i, end = i + 8, floor_pos;
		memcpy(&v, in + i, 8);
		if (v)
			continue;
		floor_pos = nruns ? runs[nruns - 1].pos + runs[nruns - 1].len : 0;
		while (start > floor_pos && in[start - 1] == 0)
			start--;
		while (end < n && in[end] == 0)
			end++;
		if (nruns == cap) {
			struct zero_run *nr;
			cap = cap ? cap * 2 : 1024;
			nr = realloc(runs, cap * sizeof(*runs));
			if (!nr) {
				free(runs);
				*count = SIZE_MAX;
				return NULL;
			}
			runs = nr;
		}
		runs[nruns++] = (struct zero_run){start, end - start};
		i = ((end + 7) & ~(size_t)7) - 8;
	}
	*count = nruns;
	return runs;
}

size_t fastpng_zlib_bound(size_t n)
{
	/* an optimal code over these alphabets averages under 9.2 bits a byte */
	return n + n / 4 + 4096;
}

#define PUT(v, bits)                                                                               \
	do {                                                                                       \
		buf |= (uint64_t)(v) << nbits;                                                     \
		nbits += (bits);                                                                   \
		if (nbits >= 32) {                                                                 \
			memcpy(p, &buf, 8);                                                        \
			p += 4;                                                                    \
			buf >>= 32;                                                                \
			nbits -= 32;                                                               \
		}                                                                                  \
	} while (0)

size_t fastpng_zlib(const uint8_t *in, size_t n, uint8_t *out)
{
	static const uint8_t cl_order[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
					     11, 4,  12, 3, 13, 2, 14, 1, 15};
	uint32_t hist[4][256], lf[NLIT] = {0}, df[NDIST] = {0}, cf[19] = {0}, tab[NLIT];
	uint8_t ll[NLIT], dl[NDIST], cl[19];
	uint16_t lc[NLIT] = {0}, dc[NDIST] = {0}, cc[19] = {0};
	struct zero_run *runs;
	size_t nruns, i = 0;
	uint8_t *p = out + 2;
	uint64_t buf = 0;
	int nbits = 0, hclen = 19;
	uint32_t adler;

	runs = find_runs(in, n, &nruns);
	if (nruns == SIZE_MAX)
		return 0;
	/* four histograms: no chain of increments to one counter */
	memset(hist, 0, sizeof(hist));
	for (; i + 4 <= n; i += 4) {
		hist[0][in[i]]++;
		hist[1][in[i + 1]]++;
		hist[2][in[i + 2]]++;
		hist[3][in[i + 3]]++;
	}
	for (; i < n; i++)
		hist[0][in[i]]++;
	for (int c = 0; c < 256; c++)
		lf[c] = hist[0][c] + hist[1][c] + hist[2][c] + hist[3][c];
	/* a run is a literal 0, then matches at distance 1 over the rest */
	for (size_t r = 0; r < nruns; r++)
		for (size_t rem = runs[r].len - 1; rem >= 3;) {
			size_t m = next_match(rem);
			lf[0] -= (uint32_t)m;
			lf[257 + len_symbol(m)]++;
			df[0]++;
			rem -= m;
		}
	lf[256] = 1;
	df[1] = df[1] ? df[1] : 1;
	df[0] = df[0] ? df[0] : 1;
	code_lengths(lf, NLIT, MAXBITS, ll);
	code_lengths(df, NDIST, MAXBITS, dl);
	canonical_codes(ll, NLIT, lc);
	canonical_codes(dl, NDIST, dc);
	for (int s = 0; s < NLIT; s++)
		cf[ll[s]]++;
	for (int s = 0; s < NDIST; s++)
		cf[dl[s]]++;
	code_lengths(cf, 19, 7, cl);
	canonical_codes(cl, 19, cc);
	while (hclen > 4 && cl[cl_order[hclen - 1]] == 0)
		hclen--;

	out[0] = 0x78; /* deflate, 32 KiB window */
	out[1] = 0x01; /* fastest; (0x7801 % 31) == 0 */
	PUT(1, 1);     /* BFINAL */
	PUT(2, 2);     /* dynamic Huffman */
	PUT(NLIT - 257, 5);
	PUT(NDIST - 1, 5);
	PUT(hclen - 4, 4);
	for (int s = 0; s < hclen; s++)
		PUT(cl[cl_order[s]], 3);
	for (int s = 0; s < NLIT; s++)
		PUT(cc[ll[s]], cl[ll[s]]);
	for (int s = 0; s < NDIST; s++)
		PUT(cc[dl[s]], cl[dl[s]]);

	for (int s = 0; s < NLIT; s++)
		tab[s] = lc[s] | ((uint32_t)ll[s] << 16);
	i = 0;
	for (size_t r = 0; r <= nruns; r++) {
		size_t lit_end = r < nruns ? runs[r].pos + 1 : n;
		for (; i < lit_end; i++)
			PUT(tab[in[i]] & 0xffff, (int)(tab[in[i]] >> 16));
		if (r == nruns)
			break;
		for (size_t rem = runs[r].len - 1; rem >= 3;) {
			size_t m = next_match(rem);
			int s = len_symbol(m);
			PUT(tab[257 + s] & 0xffff, (int)(tab[257 + s] >> 16));
			if (len_extra[s])
				PUT(m - len_base[s], len_extra[s]);
			PUT(dc[0], dl[0]);
			rem -= m;
			i += m;
		}
	}
	PUT(tab[256] & 0xffff, (int)(tab[256] >> 16));
	while (nbits > 0) {
		*p++ = (uint8_t)buf;
		buf >>= 8;
		nbits -= 8;
	}
	free(runs);
	adler = libdeflate_adler32(1, in, n);
	p[0] = (uint8_t)(adler >> 24);
	p[1] = (uint8_t)(adler >> 16);
	p[2] = (uint8_t)(adler >> 8);
	p[3] = (uint8_t)adler;
	return (size_t)(p + 4 - out);
}
