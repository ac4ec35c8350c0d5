/*
 * slots: the exact arithmetic that maps a segment's output slots to source frames.
 *
 * Segment (S, D, F) has slots k = 0, 1, ... at times T_k = S + k/F seconds.
 * Slot k shows the last source frame (presentation order) whose time is <= T_k plus
 * half a tick of the stream's time base (the half tick: coarse time bases round frame
 * times up to half a tick), compared exactly; a tie belongs to the new frame; before the
 * first frame, the first frame. Nothing here uses floating point: times are rationals
 * (struct hf_q) and integer ticks.
 * Pure functions, no allocation, thread-safe.
 */
#ifndef HF_SLOTS_H
#define HF_SLOTS_H

#include <stddef.h>
#include <stdint.h>

/* An exact rational num/den; den > 0. Values built by this module are reduced. */
struct hf_q {
	int64_t num;
	int64_t den;
};

/* A source's frames, as the demuxer's packet timestamps tell them. */
struct slot_frames {
	const int64_t *pts; /* presentation timestamps in ticks, ascending (duplicates allowed) */
	size_t n;           /* number of frames, may be 0 */
	int64_t end;        /* end of the last frame (its pts + duration), ticks; >= pts[n-1] */
	struct hf_q tb;     /* seconds per tick (stream time base), num > 0 */
	int64_t origin;     /* ticks of time 0 (the container's start time in this time base) */
};

/* Reduces q by its gcd and makes den positive. */
struct hf_q hf_q_reduce(struct hf_q q);

/* -1, 0 or 1 as a < b, a == b, a > b. Exact for all int64 values (no overflow). */
int hf_q_cmp(struct hf_q a, struct hf_q b);

/*
 * Number of slots N of segment (start, dur, fps): the number of k with k/F < dur and
 * T_k < end of the last frame. 0 when start is at or past the end or n == 0.
 * Returns N >= 0, or -ERANGE when the numbers are too large for exact 128-bit arithmetic.
 */
int64_t slots_count(const struct slot_frames *fr, struct hf_q start, struct hf_q dur,
		    struct hf_q fps);

/*
 * Number of slots of a segment with `hold` (SPEC §4): every k with k/F < dur, whatever
 * the source's length (slots past its end show the last frame). N >= 0 or -ERANGE.
 */
int64_t slots_count_held(struct hf_q dur, struct hf_q fps);

/*
 * Index into fr->pts of the frame that slot k shows (the last index i with
 * (pts[i] - origin) * tb <= T_k + tb/2; 0 if none). Requires n > 0 and k >= 0.
 * Returns the index, or -ERANGE on arithmetic overflow.
 */
int64_t slots_frame(const struct slot_frames *fr, struct hf_q start, struct hf_q fps, int64_t k);

/*
 * The largest tick value L with (L - origin) * tb <= T_k + tb/2, i.e.
 * floor(origin + T_k / tb + 1/2). A frame with pts <= L is shown at or before slot k.
 * 0 or -ERANGE; result in *out.
 */
int slots_limit_ticks(const struct slot_frames *fr, struct hf_q start, struct hf_q fps, int64_t k,
		      int64_t *out);

#endif
