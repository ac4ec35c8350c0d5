/*
 * encode: turns one picture into the bytes of an image file.
 *
 * PNG from packed RGB(A) with libdeflate (the default: about 1.4x faster than zlib on grainy
 * 1080p) or through libpng with zlib (level, filter and strategy as configured); 16-bit
 * pictures keep 16 bits and get a cICP chunk for their colour tags. JPEG (JFIF: BT.601
 * matrix, full range) through libjpeg-turbo from the decoded frame's own planes
 * (image_encode_frame), with the quantization table of `ffmpeg -q:v Q`.
 * Thread-safe: each call uses only its arguments and thread-local encoder state.
 */
#ifndef HF_ENCODE_H
#define HF_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

enum image_format { IMAGE_PNG, IMAGE_JPG };

struct image_opts {
	enum image_format format;
	int png_level;                     /* 0..9 */
	enum hf_png_filter png_filter;
	enum hf_png_strategy png_strategy; /* zlib only */
	enum hf_png_deflate png_deflate;   /* libdeflate (own chunk writer) or zlib (libpng) */
	int jpeg_q;                        /* 1..31 */
};

/* A packed picture in memory: RGB24, RGBA, RGB48BE or RGBA64BE rows. */
struct picture {
	const uint8_t *data;
	size_t stride;        /* bytes per row */
	int width, height;
	int channels;         /* 3 or 4 */
	int depth;            /* 8 or 16 (big-endian samples) */
	int primaries, trc;   /* ITU-T H.273 codes of the source, 2 = unspecified */
};

/* A growable byte buffer; release with image_buf_free. */
struct image_buf {
	uint8_t *data;
	size_t len, cap;
};

/*
 * Encodes pic per opts into out (replacing its contents). 0, or a negative errno with a
 * sentence in err. JPEG refuses alpha and 16-bit pictures with -ENOTSUP; from 8-bit RGB it
 * is yuvj444p of BT.601, as `ffmpeg -i rgb.png -q:v Q f.jpg` makes it.
 */
int image_encode(const struct picture *pic, const struct image_opts *opts, struct image_buf *out,
		 char *err, size_t errlen);

struct AVFrame;

/*
 * Encodes a decoded (or transformed) picture, already oriented for display, as JPEG per opts
 * into out (replacing its contents). 0, or a negative errno with a sentence in err:
 * -ENOTSUP unless opts->format is IMAGE_JPG, and for alpha, > 8-bit, paletted or hardware
 * frames. The frame is only read.
 * - the layout is the CLI's choice for `ffmpeg -i SRC -q:v Q f.jpg`: yuvj420p, yuvj422p or
 *   yuvj444p, whichever its format negotiation picks for the frame's format;
 * - planar 8-bit YUV of that layout is encoded from its own planes: BT.601 or unspecified
 *   matrix by a table (limited to full range; full range as is), other matrices (BT.709,
 *   BT.2020, ...) by an integer matrix change to JFIF's BT.601 full range, so the file
 *   decodes to the colours the PNG of the frame shows;
 * - other layouts convert with swscale (the range alone for BT.601, or through the PNG's
 *   RGB), RGB input with BT.601 into yuvj444p.
 * The file: libjpeg-turbo, baseline, one quantization table equal to the DQT `ffmpeg -q:v Q`
 * writes (q < 2 writes q=2's), a dead-zone quantizer like the mjpeg encoder's, optimal
 * Huffman tables, JFIF 1.02 APP0 with the frame's sample aspect ratio (1:1 when unknown).
 * Not the CLI's bytes; within SPEC 4's bounds of its quality and size.
 */
int image_encode_frame(const struct AVFrame *f, const struct image_opts *opts,
		       struct image_buf *out, char *err, size_t errlen);

/* Releases this thread's encoder state; worker threads call it before they exit. */
void image_encode_thread_done(void);

/* Frees the buffer's memory; the struct may be reused. Accepts NULL. */
void image_buf_free(struct image_buf *b);

/*
 * Canonical text of everything in opts that changes an image's bytes, for keys:
 * "png:libdeflate:level=1:filter=up", "png:zlib:level=1:filter=up:strategy=rle" or
 * "jpg:v3:q=2" (v3: libjpeg-turbo from the planes; v2 images were the CLI's mjpeg bytes,
 * plain "jpg:q=" ones were made from RGB). Returns the length or -ENAMETOOLONG.
 */
int image_opts_canon(const struct image_opts *opts, char *buf, size_t len);

/* "png" or "jpg". */
const char *image_ext(enum image_format f);

#endif
