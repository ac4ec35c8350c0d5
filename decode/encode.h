/*
 * encode: turns one packed RGB(A) picture into the bytes of an image file.
 *
 * PNG with libdeflate (the default: about 1.4x faster than zlib on grainy 1080p) or through
 * libpng with zlib (level, filter and strategy as configured); 16-bit pictures keep 16 bits
 * and get a cICP chunk for their colour tags; JPEG through libavcodec's mjpeg
 * encoder at a fixed qscale, from full-range YUV 4:2:0.
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
 * sentence in err. JPEG refuses alpha and 16-bit pictures with -ENOTSUP.
 */
int image_encode(const struct picture *pic, const struct image_opts *opts, struct image_buf *out,
		 char *err, size_t errlen);

/* Releases this thread's encoder state; worker threads call it before they exit. */
void image_encode_thread_done(void);

/* Frees the buffer's memory; the struct may be reused. Accepts NULL. */
void image_buf_free(struct image_buf *b);

/*
 * Canonical text of everything in opts that changes an image's bytes, for keys:
 * "png:libdeflate:level=1:filter=up", "png:zlib:level=1:filter=up:strategy=rle" or "jpg:q=2". Returns the length or -ENAMETOOLONG.
 */
int image_opts_canon(const struct image_opts *opts, char *buf, size_t len);

/* "png" or "jpg". */
const char *image_ext(enum image_format f);

#endif
