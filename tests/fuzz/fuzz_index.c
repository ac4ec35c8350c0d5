/*
 * fuzz_index: the stored source indexes, as the engine reads the store's idx/ blob of a
 * source: source_known_load (known ranges, each a source_index_load buffer), then the
 * window a segment needs (source_known_window), then merged back (source_known_merge) and
 * saved. A bare source_index_load buffer is tried too, and merged as the engine merges an
 * index it built.
 *
 * A buffer a loader accepts must be what the matching save writes (byte for byte) and hold
 * indexes source_index_build could have made; lookups, slot arithmetic, windows and merges
 * on them stay in range, and segments at the limits of the name grammar (18 digits) are
 * tried on every index.
 *
 *   tests/fuzz/corpus/index: indexes and known ranges the program made of real videos
 *   (constant and variable frame rate, rotation, an MPEG-TS start offset, 10-bit, alpha, a
 *   truncated file, windows of a long video) and a one-frame index.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode/slots.h"
#include "decode/source.h"
#include "fuzz.h"

#define TICKS_LIMIT (INT64_MAX / 4)

/*
 * What source_index_build guarantees about an index (stored), or what source_known_window
 * cuts from one: a window before the first frame may end (hi) before it.
 */
static bool plausible(const struct source_index *idx, bool stored)
{
	if (idx->n == 0 || idx->stream < 0 || idx->tb.num <= 0 || idx->tb.den <= 0 ||
	    idx->tb.num > INT32_MAX || idx->tb.den > INT32_MAX || idx->width <= 0 ||
	    idx->height <= 0 || (int)idx->orient < ORIENT_NONE || idx->orient > ORIENT_ROT180 ||
	    idx->depth <= 0 || idx->depth > 32 || idx->codec[0] == '\0' ||
	    memchr(idx->codec, '\0', sizeof(idx->codec)) == NULL || idx->key[0] != 1)
		return false;
	for (size_t i = 0; i < idx->n; i++)
		if (idx->key[i] > 1 || (i > 0 && idx->pts[i] < idx->pts[i - 1]))
			return false;
	/* the window: open ends lie past hi */
	if (idx->at_end ? idx->hi != INT64_MAX
			: idx->end <= idx->hi || (stored && idx->hi < idx->pts[0]))
		return false;
	/*
	 * Timestamps of real files are far from the int64 limits: times are taken relative to
	 * origin (pts - origin, end - origin) and ticks saturate at 2^62 (source.c ticks_at128).
	 */
	return idx->data_end > idx->pts[idx->n - 1] && idx->end >= idx->data_end &&
	       idx->origin >= -TICKS_LIMIT && idx->origin <= TICKS_LIMIT &&
	       idx->pts[0] >= -TICKS_LIMIT && idx->end <= TICKS_LIMIT;
}

static bool same_index(const struct source_index *a, const struct source_index *b)
{
	return a->stream == b->stream && a->tb.num == b->tb.num && a->tb.den == b->tb.den &&
	       a->origin == b->origin && a->n == b->n && a->end == b->end &&
	       a->data_end == b->data_end && a->hi == b->hi && a->at_end == b->at_end &&
	       a->from_start == b->from_start && a->width == b->width && a->height == b->height &&
	       a->orient == b->orient && a->depth == b->depth && a->alpha == b->alpha &&
	       memcmp(a->codec, b->codec, sizeof(a->codec)) == 0 &&
	       memcmp(a->pts, b->pts, a->n * sizeof(*a->pts)) == 0 &&
	       memcmp(a->key, b->key, a->n) == 0;
}

/* One segment over the index, as the engine plans it: count, then the frames of some slots. */
static void use_segment(const struct source_index *idx, struct hf_q start, struct hf_q dur,
			struct hf_q fps)
{
	struct slot_frames fr = source_index_frames(idx);
	int64_t count = slots_count(&fr, start, dur, fps);

	FUZZ_CHECK(count >= 0 || count == -ERANGE);
	for (int64_t k = 0; k < count && k < 64; k++) {
		int64_t f = slots_frame(&fr, start, fps, k), limit;

		FUZZ_CHECK(f == -ERANGE || (f >= 0 && (size_t)f < idx->n));
		if (f >= 0)
			FUZZ_CHECK(source_index_keyframe_before(idx, (size_t)f) <= (size_t)f);
		if (slots_limit_ticks(&fr, start, fps, k, &limit) == 0 && f > 0)
			FUZZ_CHECK(idx->pts[f] <= limit);
	}
}

/* Ordinary segment values, then values at the limits of the name grammar (segname.h). */
static const struct hf_q starts[] = {
    {0, 1},
    {1, 1},
    {3, 2},
    {1, 100000000000000000},
    {999999999999999999, 1},
    {123456789012345678, 1},
    {999999999999999999, 100000000000000000},
};
static const struct hf_q durs[] = {
    {1, 1},
    {10000000, 1},
    {1, 100000000000000000},
    {999999999999999999, 1},
};

#define N_STARTS (sizeof(starts) / sizeof(starts[0]))
#define N_DURS	 (sizeof(durs) / sizeof(durs[0]))

/*
 * What the engine does with a loaded index. The results are checked when the index is
 * plausible; an implausible one is only run through (sanitizers watch).
 */
static void use_index(const struct source_index *idx, bool check)
{
	struct hf_q zero = {0, 1}, one = {1, 1}, fps30 = {30, 1}, ntsc = {30000, 1001};
	int64_t span, secs_num;

	for (size_t i = 0; i < idx->n; i += 1 + idx->n / 16) {
		int64_t at = source_index_find(idx, idx->pts[i], i);
		size_t key = source_index_keyframe_before(idx, i);

		if (check) {
			FUZZ_CHECK(at >= 0 && (size_t)at < idx->n && idx->pts[at] == idx->pts[i]);
			FUZZ_CHECK(key <= i && idx->key[key]);
		}
	}
	source_index_duration_ms(idx);
	for (size_t i = 0; i < N_STARTS; i++)
		for (size_t j = 0; j < N_DURS; j++)
			source_index_covers(idx, starts[i], durs[j]);
	if (!check)
		return;
	use_segment(idx, zero, one, fps30);
	use_segment(idx, one, one, ntsc);
	/* the whole source, in seconds */
	if (!__builtin_sub_overflow(idx->end, idx->origin, &span) &&
	    !__builtin_mul_overflow(span, idx->tb.num, &secs_num) && secs_num > 0)
		use_segment(idx, zero, hf_q_reduce((struct hf_q){secs_num, idx->tb.den}), fps30);
}


/*
 * What the engine does with an index it built: merged into the known ranges (none yet, then
 * the same again), saved, loaded back, and windows cut from them.
 */
static void check_merge(const struct source_index *idx)
{
	struct source_known *k = NULL, *again = NULL;
	struct source_index *w = NULL;
	void *buf = NULL;
	size_t len = 0;

	FUZZ_CHECK(source_known_merge(&k, idx) == 0);
	FUZZ_CHECK(source_known_merge(&k, idx) == 0);
	FUZZ_CHECK(source_known_save(k, &buf, &len) == 0);
	FUZZ_CHECK(source_known_load(buf, len, &again) == 0);
	for (size_t i = 0; i < N_STARTS; i++)
		for (size_t j = 0; j < N_DURS; j++) {
			/* a window the index covers is one the known ranges cover */
			if (source_index_covers(idx, starts[i], durs[j]))
				FUZZ_CHECK(source_known_window(again, starts[i], durs[j], &w) == 0);
			if (w)
				FUZZ_CHECK(plausible(w, false) &&
					   source_index_covers(w, starts[i], durs[j]));
			source_index_free(&w);
		}
	free(buf);
	source_known_free(&again);
	source_known_free(&k);
}

/* A bare index buffer. */
static void check_index(const uint8_t *data, size_t size)
{
	struct source_index *idx = NULL, *again = NULL;
	void *buf = NULL, *buf2 = NULL;
	size_t len = 0, len2 = 0;
	bool canonical, ok;
	int ret = source_index_load(data, size, &idx);

	if (ret < 0) {
		FUZZ_CHECK(ret == -EINVAL || ret == -ENOMEM);
		FUZZ_CHECK(idx == NULL);
		return;
	}
	FUZZ_CHECK(idx != NULL && idx->n > 0);

	/* Saving is a fixed point: save(load(save(x))) == save(x). */
	FUZZ_CHECK(source_index_save(idx, &buf, &len) == 0);
	FUZZ_CHECK(source_index_load(buf, len, &again) == 0);
	FUZZ_CHECK(same_index(idx, again));
	FUZZ_CHECK(source_index_save(again, &buf2, &len2) == 0);
	FUZZ_CHECK(len2 == len && memcmp(buf, buf2, len) == 0);

	canonical = len == size && memcmp(buf, data, size) == 0;
	ok = plausible(idx, true);
	use_index(idx, ok);
	/* What was accepted is what save writes, and an index the program can use. */
	FUZZ_CHECK(canonical);
	FUZZ_CHECK(ok);
	check_merge(idx);
	free(buf);
	free(buf2);
	source_index_free(&again);
	source_index_free(&idx);
	FUZZ_CHECK(idx == NULL);
}

/*
 * Whether every range of a known-ranges buffer is a stored index as build makes them, as
 * saved: the ranges taken from the buffer (8-byte magic, count, then length + index each)
 * without source_known_load, which is what is being checked.
 */
static bool ranges_plausible(const uint8_t *data, size_t size)
{
	size_t off = 16;
	uint64_t n, len;

	if (size < off)
		return true;
	memcpy(&n, data + 8, sizeof(n));
	for (uint64_t i = 0; i < n && size - off >= sizeof(len); i++) {
		struct source_index *idx = NULL;
		void *buf = NULL;
		size_t blen = 0;
		bool ok;

		memcpy(&len, data + off, sizeof(len));
		off += sizeof(len);
		if (len > size - off)
			return true;
		if (source_index_load(data + off, len, &idx) < 0)
			return true;
		ok = plausible(idx, true) && source_index_save(idx, &buf, &blen) == 0 &&
		     blen == len && memcmp(buf, data + off, len) == 0;
		free(buf);
		source_index_free(&idx);
		if (!ok)
			return false;
		off += len;
	}
	return true;
}

/* A known-ranges buffer, as the engine uses it. */
static void check_known(const uint8_t *data, size_t size)
{
	struct source_known *k = NULL, *again = NULL;
	struct source_index *w = NULL;
	void *buf = NULL, *buf2 = NULL;
	size_t len = 0, len2 = 0;
	bool canonical, ok = ranges_plausible(data, size);
	int ret = source_known_load(data, size, &k);

	if (ret < 0) {
		FUZZ_CHECK(ret == -EINVAL || ret == -ENOMEM);
		FUZZ_CHECK(k == NULL);
		return;
	}
	FUZZ_CHECK(k != NULL);
	FUZZ_CHECK(source_known_save(k, &buf, &len) == 0);
	FUZZ_CHECK(source_known_load(buf, len, &again) == 0);
	FUZZ_CHECK(source_known_save(again, &buf2, &len2) == 0);
	FUZZ_CHECK(len2 == len && memcmp(buf, buf2, len) == 0);
	free(buf2);
	source_known_free(&again);
	canonical = len == size && memcmp(buf, data, size) == 0;
	free(buf);
	for (size_t i = 0; i < N_STARTS; i++)
		for (size_t j = 0; j < N_DURS; j++) {
			ret = source_known_window(k, starts[i], durs[j], &w);
			FUZZ_CHECK(ret == 0 || ret == -ENOENT || ret == -ENOMEM);
			if (ret != 0)
				continue;
			FUZZ_CHECK(plausible(w, false));
			FUZZ_CHECK(source_index_covers(w, starts[i], durs[j]));
			use_index(w, true);
			source_index_free(&w);
		}
	/* What was accepted is what save writes, of ranges build could have made. */
	FUZZ_CHECK(canonical);
	FUZZ_CHECK(ok);
	source_known_free(&k);
	FUZZ_CHECK(k == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_index(data, size);
	check_known(data, size);
	return 0;
}
