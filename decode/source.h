/*
 * source: opens a video file, chooses its video stream and builds the frame index
 * (every frame's presentation timestamp and keyframe flag, from the demuxer's packets,
 * without decoding pictures). The index is what slot arithmetic and seeking run on.
 *
 * An index is immutable once built and may be shared between threads. Building one
 * reads the whole stream's packets (not their pictures): seconds for an hour of video.
 * No libav types cross this header.
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
	int width, height;   /* of the output image, after orientation */
	enum source_orient orient;
	int depth;           /* bits per component of the decoded picture (8, 10, 12...) */
	bool alpha;          /* the picture carries alpha (yuva formats, VP8/VP9 alpha) */
	char codec[32];      /* decoder to use, e.g. "h264", "libvpx-vp9" */
};

/*
 * Builds the index of the regular file open as fd (read through pread, nothing else is
 * opened; path names it in messages). 0, or a negative errno with one sentence in err
 * naming the file (e.g. "clip.mp4 has no video stream"; -EPERM for a playlist or other
 * format that would read other files). *out is owned by the caller.
 */
int source_index_build(int fd, const char *path, struct source_index **out, char *err,
		       size_t errlen);

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
