/*
 * source: opens a video file, chooses its video stream and builds the frame index of a
 * window of it (every frame's presentation timestamp and keyframe flag, from the
 * demuxer's packets, without decoding pictures). The index is what slot arithmetic and
 * seeking run on.
 *
 * Cost follows the window: the container's own index (MP4 sample tables, Matroska cues;
 * a bisecting seek where a format has none) finds the keyframe before the window, and
 * only the packets from there to the window's end are demuxed. What was learnt is kept
 * as known ranges (source_known), merged and stored, so no range is read twice.
 *
 * An index is immutable once built and may be shared between threads. No libav types
 * cross this header.
 */
#ifndef HF_SOURCE_H
#define HF_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode/slots.h"

/* How the picture is turned for display, as the ffmpeg CLI's autorotate does. */
enum source_orient {
	ORIENT_NONE,
	ORIENT_CLOCK,       /* rotate 90 degrees clockwise */
	ORIENT_CCLOCK,      /* rotate 90 degrees counter-clockwise */
	ORIENT_CLOCK_FLIP,  /* transpose along the anti-diagonal */
	ORIENT_CCLOCK_FLIP, /* transpose along the main diagonal */
	ORIENT_HFLIP,
	ORIENT_VFLIP,
	ORIENT_ROT180,
};

struct source_index {
	int stream;          /* index of the chosen video stream in the container */
	struct hf_q tb;      /* seconds per tick */
	int64_t origin;      /* ticks of time 0 (container start time) */
	size_t n;            /* frames, in presentation order */
	int64_t *pts;        /* n presentation timestamps, ascending */
	uint8_t *key;        /* n flags: 1 where the frame is a keyframe */
	int64_t end;         /* end of the last frame the container declares, ticks */
	int64_t data_end;    /* end of the last frame present; < end when the file is truncated */
	/*
	 * The window: every frame shown from pts[0] up to hi (ticks) is here. at_end: the
	 * index reaches the stream's end (hi is INT64_MAX; end and data_end are the file's);
	 * otherwise end is only past hi. from_start: pts[0] is the stream's first frame.
	 */
	int64_t hi;
	bool at_end, from_start;
	int width, height;   /* of the output image, after orientation */
	enum source_orient orient;
	int depth;           /* bits per component of the decoded picture (8, 10, 12...) */
	/* the stream's colour (H.273 codes, as AVColor*: 2 unspecified; range 0 unknown, 1 tv, 2 pc) */
	int primaries, trc, matrix, range;
	int sar_num, sar_den; /* sample aspect ratio; 0/1 when unknown */
	int chroma_w, chroma_h; /* log2 of the chroma subsampling (1, 1 for 4:2:0; 0, 0 for RGB) */
	bool alpha;          /* the picture carries alpha (yuva formats, VP8/VP9 alpha) */
	char codec[32];      /* decoder to use, e.g. "h264", "libvpx-vp9" */
};

/*
 * Builds the index of the window [start, start + dur] (seconds from time 0) of the
 * regular file open as fd (read through pread, nothing else is opened; path names it in
 * messages): from the keyframe before `start` to past the window's end, or to the
 * stream's end (dur.num < 0). Adds the bytes it read to *bytes (may be NULL). 0, or a
 * negative errno with one sentence in err naming the file (e.g. "clip.mp4 has no video
 * stream"; -EPERM for a playlist or other format that would read other files). *out is
 * owned by the caller.
 *
 * Bounded: a video is indexed whole only when short in time (120 s) and in bytes
 * (512 MiB); a hole reaching the end of the file ends it (a file padded with `truncate`
 * costs its data); one index reads at most 1 GiB plus 32 MiB a second of its window,
 * within 60 s, else fails with -EFBIG and a sentence (never a shortened index). Blocks
 * its caller on the file's reads.
 */
int source_index_build(int fd, const char *path, struct hf_q start, struct hf_q dur,
		       struct source_index **out, uint64_t *bytes, char *err, size_t errlen);

/*
 * The packets an index pass demuxed, kept for the first decode of its window so that it
 * does not read them from the file again: the video stream's packets in demux order from
 * the index's first keyframe (the first frame) on, with what a decoder needs to be opened
 * without the file (codec parameters, time base). Opaque; immutable once built; handed
 * from one thread to another, used by one at a time.
 */
struct source_packets;

/*
 * source_index_build that also keeps the packets it demuxed (when pk is not NULL), up to
 * keep_bytes of packet data: past it none are kept (*pk stays NULL and the decode reads
 * the file), as for a whole-file index, a read error or a lack of memory.
 */
int source_index_build_keep(int fd, const char *path, struct hf_q start, struct hf_q dur,
			    struct source_index **out, uint64_t *bytes, char *err, size_t errlen,
			    uint64_t keep_bytes, struct source_packets **pk);

/* Frees kept packets; accepts NULL and clears the caller's pointer. */
void source_packets_free(struct source_packets **pk);

/* Bytes of packet data held (what counts against a memory bound). */
uint64_t source_packets_bytes(const struct source_packets *pk);

/*
 * The largest picture indexed, in pixels (0: none): a larger stream's index fails with
 * -E2BIG and a sentence naming decode.max_pixels, and probing never decodes a picture
 * that large. Thread-safe; set once at start.
 */
void source_set_max_pixels(uint64_t pixels);

/*
 * True when idx holds every frame a segment of [start, start + dur] seconds shows: the
 * frame its first slot shows, and every frame up to its end (or the stream's end).
 */
bool source_index_covers(const struct source_index *idx, struct hf_q start, struct hf_q dur);

/*
 * Known ranges: what the store keeps of a source, every window indexed so far, merged
 * where they overlap. Not thread-safe; the caller serializes.
 */
struct source_known;
int source_known_load(const void *buf, size_t len, struct source_known **out);
int source_known_save(const struct source_known *k, void **buf, size_t *len);
void source_known_free(struct source_known **k);
/* Adds an index's frames (a copy); creates *k when NULL. 0 or -ENOMEM / -EINVAL. */
int source_known_merge(struct source_known **k, const struct source_index *idx);
/*
 * The index of a window that covers the segment, cut from a known range without
 * reading the file: 0, or -ENOENT when no range covers it. *out owned by the caller.
 */
int source_known_window(const struct source_known *k, struct hf_q start, struct hf_q dur,
			struct source_index **out);

/*
 * The matrix (H.273 code) to show a source with when its stream carries none (matrix 2,
 * unspecified): what Chromium assumes, since renderers capture in it (Chromium's
 * media/ffmpeg/ffmpeg_common.cc, checked against Chromium 156's screenshots): BT.709 (1)
 * when the coded picture (before rotation) is 720 lines or more, except VP9 and AV1,
 * BT.601 (6, smpte170m) otherwise. cli: the ffmpeg CLI's guess, BT.601 always. A
 * tagged source gives its own matrix.
 */
int source_guess_matrix(const struct source_index *idx, bool cli);

/* H.273 matrix codes (as AVColorSpace) the guess deals in. */
#define SOURCE_MATRIX_BT709 1
#define SOURCE_MATRIX_UNSPECIFIED 2
#define SOURCE_MATRIX_BT601 6

/* Frees an index; accepts NULL and clears the caller's pointer. */
void source_index_free(struct source_index **idx);

/* The frames as slot arithmetic wants them; points into idx. */
struct slot_frames source_index_frames(const struct source_index *idx);

/* Index of the last keyframe at or before frame i (0 if none). */
size_t source_index_keyframe_before(const struct source_index *idx, size_t i);

/* Index of the frame with exactly this pts at or after `from`, or the first one; -1 if none. */
int64_t source_index_find(const struct source_index *idx, int64_t pts, size_t from);

/*
 * Serializes an index into a malloc'ed buffer (to persist it beside the store),
 * and reads one back. load returns -EINVAL for a damaged or foreign buffer.
 */
int source_index_save(const struct source_index *idx, void **buf, size_t *len);
int source_index_load(const void *buf, size_t len, struct source_index **out);

/* Duration in ms of the source (end - origin), for messages. */
int64_t source_index_duration_ms(const struct source_index *idx);

/* The file name of a source path, as messages name it ("clip.mp4"). */
const char *source_name(const char *path);

#endif
