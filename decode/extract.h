/*
 * extract: decodes a source from the keyframe before a given frame onward and turns the
 * frames its caller asks for into images, on a shared pool of encoder threads.
 *
 * Life cycle: extract_pool_start() once, any number of extract_run() calls from any
 * threads (each blocks its caller while it decodes), extract_pool_stop() at exit.
 * Pixels match the ffmpeg CLI: swscale bicubic with the frame's own matrix and range,
 * then the container's display orientation. Memory is bounded: at most a few decoded
 * frames per encoder thread wait in the queue whatever the segment length.
 */
#ifndef HF_EXTRACT_H
#define HF_EXTRACT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode/encode.h"
#include "decode/source.h"
#include "decode/transform.h"

/* Nanoseconds spent per phase, added to atomically by every job that points at it. */
struct extract_stats {
	_Atomic uint64_t open_ns, seek_ns, decode_ns, convert_ns, transform_ns, encode_ns;
	_Atomic uint64_t frames_decoded;
	_Atomic uint64_t source_bytes; /* read from sources by decoders */
};

/*
 * What visit() tells the decoder to do with a frame it has just decoded. ENCODE_NOW puts
 * the frame ahead of queued work (someone is waiting for it).
 */
enum extract_visit { EXTRACT_SKIP, EXTRACT_ENCODE, EXTRACT_ENCODE_NOW, EXTRACT_STOP };

struct extract_job {
	int fd; /* the source, a regular file (the caller keeps it open during the run) */
	const struct source_index *idx;
	struct image_opts opts;
	struct tf_spec tf; /* the transforms that apply (tf_effective); identity: none */
	/*
	 * The matrix (H.273 code) a decoded picture that carries none is converted with, as
	 * if it were tagged so; 0: left to swscale (BT.601). See source_guess_matrix.
	 */
	int assume_matrix;
	size_t first; /* decode from the keyframe before this frame; frames before it are not visited */
	/*
	 * May be NULL: the packets the index pass kept (source_index_build_keep). When the
	 * decode starts at the index's first frame it takes them instead of reading the file,
	 * which it opens only if it needs more (a frame past them, a seek further back).
	 */
	const struct source_packets *packets;
	/* Decode thread, in presentation order, for each decoded frame index >= first. */
	enum extract_visit (*visit)(void *arg, size_t frame);
	/* Encoder thread: the image of a frame visit() asked for, or err < 0 with a sentence. */
	void (*done)(void *arg, size_t frame, int err, const struct image_buf *img,
		     const char *why);
	/* Decode thread, at most once: frames from `frame` on cannot be produced (damage). */
	void (*damaged)(void *arg, size_t frame, int err, const char *why);
	void *arg;
	struct extract_stats *stats; /* may be NULL */
	/*
	 * May be NULL. Once set, queued frames are not encoded: done() gets -ECANCELED for
	 * them (the frame was not produced and nothing is wrong with the source).
	 */
	const atomic_bool *cancel;
};

/* What the transforms are decided and sized on: the index's picture, before orientation. */
struct tf_input extract_tf_input(const struct source_index *idx);

/*
 * The images a source gives with these options and transforms (tf as tf_effective left
 * it): their size and bits per component, as the CLI makes them. 0, or -ENOTSUP when the
 * format cannot hold them (jpg of alpha or of more than 8 bits), -EINVAL when the chain
 * cannot make an image of that size, or -E2BIG when the picture or the image is larger
 * than extract_set_max_pixels allows; why then says which, without naming the video
 * ("jpg cannot hold the alpha channel").
 */
int extract_out_size(const struct source_index *idx, const struct image_opts *o,
		     const struct tf_spec *tf, int *w, int *h, int *depth, char *why, size_t whylen);

/* Starts the encoder pool with `threads` workers (0 = one per core). 0 or -errno. */
int extract_pool_start(int threads);

/*
 * The memory budget in bytes (0: none): frames in flight (decoded pictures queued or
 * converted, converted images, encode buffers) and every open decoder's own pictures
 * (its threads times the pictures each keeps, reserved while the run decodes) stay
 * within it whatever the number of encoder threads or runs; a run whose decoder does not
 * fit waits in extract_run until one that does ends (one always fits alone). Set before
 * extract_pool_start.
 */
void extract_set_memory(uint64_t bytes);

/*
 * The largest picture decoded, in pixels (0: none): extract_out_size refuses larger
 * sources and images, and a decoder refuses a stream whose pictures grow past it. Set
 * before extract_pool_start. Thread-safe.
 */
void extract_set_max_pixels(uint64_t pixels);

/* Bytes in flight now, the most there ever were, and the budget. */
void extract_memory(uint64_t *in_flight, uint64_t *peak, uint64_t *budget);

/* libav's own log lines: off unless verbose (they would interleave with ours). */
void extract_set_verbose(bool verbose);

/* Waits for queued work, stops and joins the workers. Safe to call when not started. */
void extract_pool_stop(void);

/*
 * Runs one job to its end: until visit() says STOP, the stream ends, or damage.
 * Returns after every done()/damaged() call for it has returned. 0, or a negative
 * errno when the source could not be opened (then damaged(first, ...) was called).
 */
int extract_run(const struct extract_job *job);

#endif
