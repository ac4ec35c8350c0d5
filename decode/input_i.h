/*
 * input (internal to decode/): a demuxer over one descriptor and nothing else.
 *
 * libavformat reads the file through an I/O context of ours (pread on the descriptor):
 * no protocol is available to it (file, http, ...), every attempt of a demuxer to open
 * another file or URL is refused, and demuxers whose job is to read other files
 * (playlists, manifests, concat lists, image sequences, network descriptions) are refused
 * before they run. A source can therefore never make the daemon read a file the caller
 * did not open.
 */
#ifndef HF_INPUT_I_H
#define HF_INPUT_I_H

#include <libavformat/avformat.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Opens a demuxer on fd (a regular file; dup'ed, the caller keeps its own), name only
 * for messages and the format probe's extension hint. 0, or a negative errno with one
 * sentence naming the file in err: -EPERM for a refused demuxer, -EIO for anything libav
 * cannot read. *out is closed with input_close().
 */
int input_open(int fd, const char *name, AVFormatContext **out, char *err, size_t errlen);

/*
 * Bounds what the demuxer may read from now on: bytes read plus holes served (0: none),
 * and a CLOCK_MONOTONIC deadline in ns (0: none). Past either every read fails
 * (AVERROR(EFBIG)), which demuxers take as the end, and input_over_budget says so.
 * Whatever the budget, a hole that reaches the end of the file is its end (a sparse or
 * padded tail is never read) and holes inside it are served as zeros without reading.
 */
void input_set_budget(AVFormatContext *fmt, uint64_t bytes, uint64_t deadline_ns);
bool input_over_budget(const AVFormatContext *fmt);

/* Bytes read from the file through this demuxer so far (0 for NULL). */
uint64_t input_bytes_read(const AVFormatContext *fmt);

/* Closes the demuxer, its I/O context and descriptor; accepts NULL, clears *fmt. */
void input_close(AVFormatContext **fmt);

/* What source_index_build_keep kept (source.h): read by the decoder of the window. */
struct source_packets {
	AVCodecParameters *par; /* the stream's, as the index pass's demuxer had them */
	AVRational tb;          /* the stream's time base */
	AVPacket **p;           /* demux order, from the index's first keyframe */
	size_t n, cap;
	uint64_t bytes, limit;  /* packet data held, and the most that may be */
	bool at_end;            /* the last packet is the stream's last */
};

#endif
