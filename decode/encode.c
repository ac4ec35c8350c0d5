/*
 * Image encoders. PNG favours speed (frames are working files): the defaults are zlib
 * level 1, the UP filter and Z_RLE. JPEG is libjpeg-turbo's, fed the decoded YUV planes
 * (range and matrix changed to JFIF's by tables and integer arithmetic) with the
 * quantization tables of the ffmpeg CLI's mjpeg encoder, so quality numbers mean what they
 * mean to it (-q:v).
 */
#include "decode/encode.h"

#include <errno.h>
#include <libavutil/common.h>
#include <libavutil/frame.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libavutil/rational.h>
#include <libswscale/swscale.h>
#include <libdeflate.h>
#include <math.h>
#include "decode/fastpng.h"
#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <jpeglib.h>
#include <jerror.h>
#include <jpegint.h> /* struct jpeg_forward_dct: the quantizer is the CLI's */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

const char *image_ext(enum image_format f)
{
	return f == IMAGE_JPG ? "jpg" : "png";
}

void image_buf_free(struct image_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static int buf_append(struct image_buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		uint8_t *d;
		while (cap < b->len + n)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d)
			return -ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int image_opts_canon(const struct image_opts *o, char *buf, size_t len)
{
	int n;
	if (o->format == IMAGE_JPG)
		n = snprintf(buf, len, "jpg:v3:q=%d", o->jpeg_q);
	else if (o->png_deflate == HF_PNG_DEFLATE_FAST && o->png_filter != HF_PNG_FILTER_ALL)
		n = snprintf(buf, len, "png:fast:filter=%s", conf_png_filter_name(o->png_filter));
	else if (o->png_deflate == HF_PNG_DEFLATE_LIBDEFLATE && o->png_filter != HF_PNG_FILTER_ALL)
		n = snprintf(buf, len, "png:libdeflate:level=%d:filter=%s", o->png_level,
			     conf_png_filter_name(o->png_filter));
	else
		n = snprintf(buf, len, "png:zlib:level=%d:filter=%s:strategy=%s", o->png_level,
			     conf_png_filter_name(o->png_filter),
			     conf_png_strategy_name(o->png_strategy));
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : n;
}

struct png_sink {
	struct image_buf *out;
	int failed;
	char *err;
	size_t errlen;
};

static void png_write_cb(png_structp png, png_bytep data, size_t n)
{
	struct png_sink *s = png_get_io_ptr(png);
	if (!s->failed && buf_append(s->out, data, n) < 0)
		s->failed = 1;
}

static void png_flush_cb(png_structp png)
{
}

static void png_error_cb(png_structp png, png_const_charp msg)
{
	struct png_sink *s = png_get_error_ptr(png);
	snprintf(s->err, s->errlen, "PNG encoder: %s", msg);
	png_longjmp(png, 1);
}

static void png_warn_cb(png_structp png, png_const_charp msg)
{
}

static int png_filter_flag(enum hf_png_filter f)
{
	switch (f) {
	case HF_PNG_FILTER_NONE:
		return PNG_FILTER_NONE;
	case HF_PNG_FILTER_SUB:
		return PNG_FILTER_SUB;
	case HF_PNG_FILTER_UP:
		return PNG_FILTER_UP;
	case HF_PNG_FILTER_AVG:
		return PNG_FILTER_AVG;
	case HF_PNG_FILTER_PAETH:
		return PNG_FILTER_PAETH;
	default:
		return PNG_ALL_FILTERS;
	}
}

static int zlib_strategy(enum hf_png_strategy s)
{
	switch (s) {
	case HF_PNG_STRATEGY_FILTERED:
		return Z_FILTERED;
	case HF_PNG_STRATEGY_HUFFMAN:
		return Z_HUFFMAN_ONLY;
	case HF_PNG_STRATEGY_RLE:
		return Z_RLE;
	case HF_PNG_STRATEGY_FIXED:
		return Z_FIXED;
	default:
		return Z_DEFAULT_STRATEGY;
	}
}

/*
 * Whether the picture's colour is said in a cICP chunk: deep pictures whenever it is
 * known (HDR keeps its signal), 8-bit ones only for BT.2020 (a bt2020 transform's output):
 * an 8-bit BT.709 or BT.601 PNG stays untagged, as browsers have always shown it.
 */
static bool wants_cicp(const struct picture *pic)
{
	if (pic->depth > 8)
		return !(pic->primaries == 2 && pic->trc == 2);
	return pic->primaries == 9; /* BT.2020 */
}

/* cICP (PNG third edition): primaries, transfer, matrix 0 (RGB), full range. */
static void write_cicp(png_structp png, const struct picture *pic)
{
	png_byte data[4] = {(png_byte)pic->primaries, (png_byte)pic->trc, 0, 1};
	if (pic->primaries == 2 && pic->trc == 2)
		return;
	png_write_chunk(png, (png_const_bytep) "cICP", data, sizeof(data));
}

/* Everything libpng may longjmp out of; no locals change after setjmp. */
static int png_body(png_structp png, png_infop info, const struct picture *pic,
		    const struct image_opts *o)
{
	if (setjmp(png_jmpbuf(png)))
		return -EIO;
	png_set_compression_level(png, o->png_level);
	png_set_compression_strategy(png, zlib_strategy(o->png_strategy));
	png_set_filter(png, PNG_FILTER_TYPE_BASE, png_filter_flag(o->png_filter));
	png_set_IHDR(png, info, (png_uint_32)pic->width, (png_uint_32)pic->height, pic->depth,
		     pic->channels == 4 ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB,
		     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
	png_write_info(png, info);
	if (wants_cicp(pic))
		write_cicp(png, pic);
	for (int y = 0; y < pic->height; y++)
		png_write_row(png, pic->data + (size_t)y * pic->stride);
	png_write_end(png, info);
	return 0;
}

static int encode_png(const struct picture *pic, const struct image_opts *o,
		      struct image_buf *out, char *err, size_t errlen)
{
	struct png_sink sink = {out, 0, err, errlen};
	png_structp png;
	png_infop info;
	int ret;

	png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, png_error_cb, png_warn_cb);
	if (!png)
		return -ENOMEM;
	info = png_create_info_struct(png);
	if (!info) {
		png_destroy_write_struct(&png, NULL);
		return -ENOMEM;
	}
	png_set_write_fn(png, &sink, png_write_cb, png_flush_cb);
	ret = png_body(png, info, pic, o);
	if (ret == 0 && sink.failed)
		ret = -ENOMEM;
	png_destroy_write_struct(&png, &info);
	return ret;
}

/* ---- PNG with our own container: filtering and chunks written here, one IDAT ---- */

struct ld_state {
	struct libdeflate_compressor *c;
	int level;
	uint8_t *filtered;
	size_t cap;
};

static __thread struct ld_state ld_tls;

static void ld_reset(struct ld_state *ld)
{
	libdeflate_free_compressor(ld->c);
	free(ld->filtered);
	memset(ld, 0, sizeof(*ld));
}

static uint8_t paeth(int a, int b, int c)
{
	int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
	if (pa <= pb && pa <= pc)
		return (uint8_t)a;
	return (uint8_t)(pb <= pc ? b : c);
}

/* One filter type for every row, as libpng does when given a single filter. */
static void filter_rows(const struct picture *pic, enum hf_png_filter f, size_t bpp, uint8_t *dst)
{
	size_t row = (size_t)pic->width * bpp;
	static const uint8_t type[] = {0, 1, 2, 3, 4};

	for (int y = 0; y < pic->height; y++) {
		const uint8_t *cur = pic->data + (size_t)y * pic->stride;
		const uint8_t *up = y ? cur - pic->stride : NULL;
		uint8_t *o = dst + (size_t)y * (row + 1);
		*o++ = type[f];
		switch (f) {
		case HF_PNG_FILTER_SUB:
			memcpy(o, cur, bpp);
			for (size_t x = bpp; x < row; x++)
				o[x] = (uint8_t)(cur[x] - cur[x - bpp]);
			break;
		case HF_PNG_FILTER_UP:
			if (!up)
				memcpy(o, cur, row);
			else
				for (size_t x = 0; x < row; x++)
					o[x] = (uint8_t)(cur[x] - up[x]);
			break;
		case HF_PNG_FILTER_AVG:
			for (size_t x = 0; x < row; x++) {
				int a = x >= bpp ? cur[x - bpp] : 0, b = up ? up[x] : 0;
				o[x] = (uint8_t)(cur[x] - ((a + b) >> 1));
			}
			break;
		case HF_PNG_FILTER_PAETH:
			for (size_t x = 0; x < row; x++) {
				int a = x >= bpp ? cur[x - bpp] : 0, b = up ? up[x] : 0;
				int c = x >= bpp && up ? up[x - bpp] : 0;
				o[x] = (uint8_t)(cur[x] - paeth(a, b, c));
			}
			break;
		default:
			memcpy(o, cur, row);
		}
	}
}

static uint8_t *put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

/* Appends a chunk whose data already sits after its 8-byte header at p; returns the end. */
static uint8_t *close_chunk(uint8_t *p, const char *type, size_t len)
{
	uint32_t crc;
	put_be32(p, (uint32_t)len);
	memcpy(p + 4, type, 4);
	crc = libdeflate_crc32(0, p + 4, len + 4);
	return put_be32(p + 8 + len, crc);
}

/* PNG with fastpng (png_deflate = fast) or libdeflate (png_deflate = libdeflate). */
static int encode_png_own(const struct picture *pic, const struct image_opts *o,
			  struct image_buf *out, char *err, size_t errlen)
{
	static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	struct ld_state *ld = &ld_tls;
	size_t bpp = (size_t)pic->channels * (size_t)(pic->depth / 8);
	size_t raw = ((size_t)pic->width * bpp + 1) * (size_t)pic->height;
	size_t bound, total, zlen;
	uint8_t *p;

	bool fast = o->png_deflate == HF_PNG_DEFLATE_FAST;

	if (!fast && (!ld->c || ld->level != o->png_level)) {
		libdeflate_free_compressor(ld->c);
		ld->c = libdeflate_alloc_compressor(o->png_level);
		ld->level = o->png_level;
		if (!ld->c)
			return -ENOMEM;
	}
	if (ld->cap < raw) {
		free(ld->filtered);
		ld->filtered = malloc(raw);
		ld->cap = ld->filtered ? raw : 0;
		if (!ld->filtered)
			return -ENOMEM;
	}
	filter_rows(pic, o->png_filter, bpp, ld->filtered);
	bound = fast ? fastpng_zlib_bound(raw) : libdeflate_zlib_compress_bound(ld->c, raw);
	total = sizeof(sig) + (12 + 13) + (12 + 4) + (12 + bound) + 12;
	if (out->cap < total) {
		uint8_t *d = realloc(out->data, total);
		if (!d)
			return -ENOMEM;
		out->data = d;
		out->cap = total;
	}
	p = out->data;
	memcpy(p, sig, sizeof(sig));
	p += sizeof(sig);

	put_be32(p + 8, (uint32_t)pic->width);
	put_be32(p + 12, (uint32_t)pic->height);
	p[16] = (uint8_t)pic->depth;
	p[17] = pic->channels == 4 ? 6 : 2; /* RGBA or RGB */
	p[18] = p[19] = p[20] = 0;          /* deflate, adaptive filtering, no interlace */
	p = close_chunk(p, "IHDR", 13);

	if (wants_cicp(pic)) {
		p[8] = (uint8_t)pic->primaries;
		p[9] = (uint8_t)pic->trc;
		p[10] = 0; /* RGB */
		p[11] = 1; /* full range */
		p = close_chunk(p, "cICP", 4);
	}
	zlen = fast ? fastpng_zlib(ld->filtered, raw, p + 8)
		    : libdeflate_zlib_compress(ld->c, ld->filtered, raw, p + 8, bound);
	if (zlen == 0) {
		snprintf(err, errlen, "PNG encoder: out of memory compressing a frame");
		return -EIO;
	}
	p = close_chunk(p, "IDAT", zlen);
	p = close_chunk(p, "IEND", 0);
	out->len = (size_t)(p - out->data);
	return 0;
}

/* ---- JPEG: libjpeg-turbo from the decoded YUV planes ---- */

/*
 * What `ffmpeg -q:v Q f.jpg` (FFmpeg 5.1's mjpeg encoder) writes, and so what is written here,
 * with libjpeg-turbo doing the work from the picture's own planes:
 * - the chroma layout the CLI's negotiation gives the encoder: of yuvj420p, yuvj422p and
 *   yuvj444p (the strict-compliance list of ffmpeg_filter.c) the one that loses least from
 *   the decoded format (av_find_best_pix_fmt_of_2 over the list, in that order);
 * - one quantization table for all three components: DC 8, AC the MPEG-1 default intra
 *   matrix times the quantizer over 8, clipped to 255, the quantizer being Q clipped to
 *   2..31 (the encoder's qmin and qmax; `-q:v 1` writes q=2's table). Read off the DQT of
 *   the CLI's files for every Q, and checked against them in tests/unit/test_encode.c;
 * - Huffman tables optimal for each picture (the CLI's default, huffman=optimal);
 * - a JFIF 1.02 APP0 with the frame's sample aspect ratio, 1:1 when unknown.
 * The bytes are not the CLI's: libjpeg rounds the coefficients to nearest where the mjpeg
 * encoder biases them toward zero, and the range change is a table here where the CLI uses
 * a bicubic swscale. SPEC 4 bounds the difference (PSNR, size, mean colour error).
 */
static const enum AVPixelFormat jpeg_formats[] = {AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUVJ422P,
						  AV_PIX_FMT_YUVJ444P};

/* The MPEG-1 default intra quantizer matrix (ISO/IEC 11172-2), row by row. */
static const uint8_t mpeg1_intra[64] = {
    8,  16, 19, 22, 26, 27, 29, 34, 16, 16, 22, 24, 27, 29, 34, 37, 19, 22, 26, 27, 29, 34,
    34, 38, 22, 22, 26, 27, 29, 34, 37, 40, 22, 26, 27, 29, 32, 35, 40, 48, 26, 27, 29, 32,
    35, 40, 48, 58, 26, 27, 29, 34, 38, 46, 56, 69, 27, 29, 35, 38, 46, 56, 69, 83,
};

/* One swscale context and the key it was made for. */
struct jpeg_conv {
	struct SwsContext *sws;
	enum AVPixelFormat src, dst;
	int w, h, range, colorspace;
	bool to_jfif;
};

/* Source (limited or full range, any matrix) to JFIF's BT.601 full range, in 1/65536. */
struct jfif_matrix {
	int colorspace;
	bool full;
	int ly, yoff;	  /* luma scale and offset */
	int y_cb, y_cr;	  /* what the chroma adds to luma */
	int cb_cb, cb_cr; /* new Cb from old Cb, Cr */
	int cr_cb, cr_cr; /* new Cr from old Cb, Cr */
};

/*
 * The encoder's input: JFIF samples in three planes, each row followed by copies of its
 * last sample up to a whole block (libjpeg reads whole blocks from raw data); rows past
 * the bottom are the last row again (row pointers, not copies).
 */
struct jfif_planes {
	uint8_t *mem;
	size_t cap;
	uint8_t *data[3];
	int linesize[3];
	int w[3], h[3];
	int log2_chroma_w, log2_chroma_h;
};

/* libjpeg's error manager, leaving by longjmp; warnings are dropped. */
struct jpeg_fail {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
};

/* libjpeg's destination: the caller's image_buf, grown as needed. */
struct jpeg_sink {
	struct jpeg_destination_mgr pub;
	struct image_buf *out;
};

/* One libjpeg compressor, its tables and converters per thread, rebuilt when a key changes. */
struct jpeg_state {
	struct jpeg_compress_struct cinfo;
	struct jpeg_fail fail;
	struct jpeg_sink sink;
	bool created; /* cinfo is a compressor */
	struct jfif_planes planes;
	struct jpeg_conv conv;	/* other layouts to the encoder's, or to RGB24 first */
	struct jpeg_conv conv2; /* RGB24 to the encoder's layout (two-step path only) */
	struct jfif_matrix mat;
	void (*fdct)(j_compress_ptr, jpeg_component_info *, JSAMPARRAY, JBLOCKROW, JDIMENSION,
		     JDIMENSION, JDIMENSION); /* libjpeg's DCT, at unit quantization */
	int32_t recip_q[DCTSIZE2];	      /* 65536 / the CLI's table, row by row */
	int lut_range; /* the AVColorRange lut_* were made for, 0 for none */
	uint8_t lut_y[256], lut_cb[256], lut_cr[256];
	AVFrame *rgb;  /* two-step path's RGB24 picture */
	AVFrame *wrap; /* a packed RGB picture of image_encode, not owned */
	int32_t *row; /* luma term of one chroma row */
	int row_cap;
};

static __thread struct jpeg_state jpeg_tls;

static void conv_free(struct jpeg_conv *c)
{
	sws_freeContext(c->sws);
	memset(c, 0, sizeof(*c));
}

static void jpeg_state_reset(struct jpeg_state *js)
{
	if (js->created)
		jpeg_destroy_compress(&js->cinfo);
	conv_free(&js->conv);
	conv_free(&js->conv2);
	av_frame_free(&js->rgb);
	av_frame_free(&js->wrap);
	av_freep(&js->planes.mem);
	av_freep(&js->row);
	memset(js, 0, sizeof(*js));
}

/* The format the CLI's filter negotiation gives the mjpeg encoder for frames of src. */
static enum AVPixelFormat jpeg_target(enum AVPixelFormat src)
{
	enum AVPixelFormat best = AV_PIX_FMT_NONE;
	for (size_t i = 0; i < sizeof(jpeg_formats) / sizeof(jpeg_formats[0]); i++)
		best = av_find_best_pix_fmt_of_2(best, jpeg_formats[i], src, 0, NULL);
	return best;
}

/* swscale reads unspecified, reserved and YCgCo as BT.601 too: all convert as the CLI does. */
static bool matrix_is_601(int colorspace)
{
	return memcmp(sws_getCoefficients(colorspace), sws_getCoefficients(SWS_CS_ITU601),
		      4 * sizeof(int)) == 0;
}

static bool range_is_full(const AVFrame *f)
{
	switch (f->format) {
	case AV_PIX_FMT_YUVJ420P:
	case AV_PIX_FMT_YUVJ422P:
	case AV_PIX_FMT_YUVJ444P:
	case AV_PIX_FMT_YUVJ440P:
	case AV_PIX_FMT_YUVJ411P:
		return f->color_range != AVCOL_RANGE_MPEG;
	default:
		return f->color_range == AVCOL_RANGE_JPEG;
	}
}

/*
 * A context as the CLI's scale filter makes one: default flags, the frame's matrix on both
 * sides and its range when tagged. to_jfif: RGB to YUV with BT.601 into full range, whatever
 * the tags say.
 */
static int conv_prepare(struct jpeg_conv *c, enum AVPixelFormat src, int w, int h, int range,
			int colorspace, enum AVPixelFormat dst, bool to_jfif)
{
	int *inv, *tbl, src_full, dst_full, bri, con, sat;

	if (c->sws && c->src == src && c->dst == dst && c->w == w && c->h == h &&
	    c->range == range && c->colorspace == colorspace && c->to_jfif == to_jfif)
		return 0;
	conv_free(c);
	c->sws = sws_getContext(w, h, src, w, h, dst, SWS_BICUBIC, NULL, NULL, NULL);
	if (!c->sws)
		return -ENOMEM;
	sws_getColorspaceDetails(c->sws, &inv, &src_full, &tbl, &dst_full, &bri, &con, &sat);
	inv = (int *)sws_getCoefficients(colorspace);
	tbl = to_jfif ? (int *)sws_getCoefficients(SWS_CS_ITU601) : inv;
	if (range != AVCOL_RANGE_UNSPECIFIED)
		src_full = range == AVCOL_RANGE_JPEG;
	if (to_jfif)
		dst_full = 1;
	sws_setColorspaceDetails(c->sws, inv, src_full, tbl, dst_full, bri, con, sat);
	c->src = src;
	c->dst = dst;
	c->w = w;
	c->h = h;
	c->range = range;
	c->colorspace = colorspace;
	c->to_jfif = to_jfif;
	return 0;
}

/* Makes *pf a writable picture of fmt, w x h, allocating only when that changed. */
static int frame_fit(AVFrame **pf, enum AVPixelFormat fmt, int w, int h)
{
	AVFrame *f = *pf;

	if (!f && !(f = *pf = av_frame_alloc()))
		return -ENOMEM;
	if (f->buf[0] && f->format == fmt && f->width == w && f->height == h)
		return av_frame_make_writable(f) < 0 ? -ENOMEM : 0;
	av_frame_unref(f);
	f->format = fmt;
	f->width = w;
	f->height = h;
	return av_frame_get_buffer(f, 0) < 0 ? -ENOMEM : 0;
}

static void jfif_matrix_init(struct jfif_matrix *m, int colorspace, bool full)
{
	/* swscale's table for this matrix, as the PNG path uses it: crv, cbu in 1/65536,
	 * scaled for limited-range chroma (255/224) */
	const int *t = sws_getCoefficients(colorspace);
	const double unit = 2.0 * 65536 * 255 / 224;
	double kr = 1 - t[0] / unit, kb = 1 - t[1] / unit, kg = 1 - kr - kb;
	const double jr = 0.299, jb = 0.114, jg = 1 - jr - jb;
	/* R, G, B minus luma, per unit of the source's normalised chroma */
	double r_cr = 2 * (1 - kr), b_cb = 2 * (1 - kb);
	double g_cb = -2 * kb * (1 - kb) / kg, g_cr = -2 * kr * (1 - kr) / kg;
	/* the same in JFIF's matrix: luma gains a chroma term, chroma mixes */
	double y_cb = jg * g_cb + jb * b_cb, y_cr = jr * r_cr + jg * g_cr;
	double cb_cb = (b_cb - y_cb) / (2 * (1 - jb)), cb_cr = -y_cr / (2 * (1 - jb));
	double cr_cb = -y_cb / (2 * (1 - jr)), cr_cr = (r_cr - y_cr) / (2 * (1 - jr));
	double ys = full ? 1.0 : 255.0 / 219, cs = (full ? 1.0 : 255.0 / 224) * 65536;

	m->colorspace = colorspace;
	m->full = full;
	m->ly = (int)lrint(ys * 65536);
	m->yoff = full ? 0 : 16;
	m->y_cb = (int)lrint(y_cb * cs);
	m->y_cr = (int)lrint(y_cr * cs);
	m->cb_cb = (int)lrint(cb_cb * cs);
	m->cb_cr = (int)lrint(cb_cr * cs);
	m->cr_cb = (int)lrint(cr_cb * cs);
	m->cr_cr = (int)lrint(cr_cr * cs);
}

/*
 * Planar 8-bit YUV of another matrix into JFIF planes of the same subsampling. Luma takes the
 * chroma of its own block and is truncated, both as swscale's YUV to RGB does when it makes
 * the PNG (a grey comes out at the PNG's level exactly; rounding instead left grainy
 * pictures half a level brighter than their PNG); chroma is rounded.
 */
static void jfif_from_yuv(const AVFrame *f, struct jfif_planes *o, const struct jfif_matrix *m, int32_t *t)
{
	const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);
	int sw = d->log2_chroma_w, sh = d->log2_chroma_h;
	int cw = AV_CEIL_RSHIFT(f->width, sw), ch = AV_CEIL_RSHIFT(f->height, sh);

	for (int cy = 0; cy < ch; cy++) {
		const uint8_t *u = f->data[1] + (ptrdiff_t)cy * f->linesize[1];
		const uint8_t *v = f->data[2] + (ptrdiff_t)cy * f->linesize[2];
		uint8_t *ou = o->data[1] + (ptrdiff_t)cy * o->linesize[1];
		uint8_t *ov = o->data[2] + (ptrdiff_t)cy * o->linesize[2];
		int y1 = FFMIN((cy + 1) << sh, f->height);

		for (int x = 0; x < cw; x++) {
			int cb = u[x] - 128, cr = v[x] - 128;
			/* + 1/1024 level: ly is rounded, whole results stay whole */
			t[x] = m->y_cb * cb + m->y_cr * cr - m->ly * m->yoff + (1 << 6);
			ou[x] = av_clip_uint8(128 +
					      ((m->cb_cb * cb + m->cb_cr * cr + (1 << 15)) >> 16));
			ov[x] = av_clip_uint8(128 +
					      ((m->cr_cb * cb + m->cr_cr * cr + (1 << 15)) >> 16));
		}
		for (int y = cy << sh; y < y1; y++) {
			const uint8_t *l = f->data[0] + (ptrdiff_t)y * f->linesize[0];
			uint8_t *ol = o->data[0] + (ptrdiff_t)y * o->linesize[0];
			if (sw == 1) {
				int x;
				for (x = 0; x + 1 < f->width; x += 2) {
					int32_t c = t[x >> 1];
					ol[x] = av_clip_uint8((m->ly * l[x] + c) >> 16);
					ol[x + 1] = av_clip_uint8((m->ly * l[x + 1] + c) >> 16);
				}
				if (x < f->width)
					ol[x] = av_clip_uint8((m->ly * l[x] + t[x >> 1]) >> 16);
			} else {
				for (int x = 0; x < f->width; x++)
					ol[x] = av_clip_uint8((m->ly * l[x] + t[x >> sw]) >> 16);
			}
		}
	}
}

/* Planar three-plane 8-bit YUV whose chroma is laid out as in dst's. */
static bool same_planes(const AVPixFmtDescriptor *d, enum AVPixelFormat dst)
{
	const AVPixFmtDescriptor *e = av_pix_fmt_desc_get(dst);

	if (!(d->flags & AV_PIX_FMT_FLAG_PLANAR) || d->nb_components != 3 ||
	    d->log2_chroma_w != e->log2_chroma_w || d->log2_chroma_h != e->log2_chroma_h)
		return false;
	for (int i = 0; i < 3; i++)
		if (d->comp[i].plane != i || d->comp[i].step != 1 || d->comp[i].depth != 8 ||
		    d->comp[i].shift != 0 || d->comp[i].offset != 0)
			return false;
	return true;
}

static int jpeg_check(const AVFrame *f, const AVPixFmtDescriptor *d, char *err, size_t errlen)
{
	if (f->width <= 0 || f->height <= 0 || !f->data[0]) {
		snprintf(err, errlen, "jpg: the frame holds no picture");
		return -EINVAL;
	}
	if (!d || (d->flags & (AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_BITSTREAM))) {
		snprintf(err, errlen, "jpg cannot be made from pixel format %s",
			 d ? d->name : "(unknown)");
		return -ENOTSUP;
	}
	if (d->flags & (AV_PIX_FMT_FLAG_ALPHA | AV_PIX_FMT_FLAG_PAL)) {
		snprintf(err, errlen, "jpg cannot hold an alpha channel; use png");
		return -ENOTSUP;
	}
	if (d->comp[0].depth > 8) {
		snprintf(err, errlen, "jpg cannot hold more than 8 bits per sample; use png");
		return -ENOTSUP;
	}
	return 0;
}

/* Makes p hold w x h pictures of this chroma layout, allocating only when they grow. */
static int planes_fit(struct jfif_planes *p, int w, int h, int log2_cw, int log2_ch)
{
	int cw = AV_CEIL_RSHIFT(w, log2_cw), ch = AV_CEIL_RSHIFT(h, log2_ch);
	int ls0 = FFALIGN(w, 32), ls1 = FFALIGN(cw, 32); /* at least a whole block more */
	size_t need = (size_t)ls0 * (size_t)h + 2 * (size_t)ls1 * (size_t)ch;

	if (p->cap < need) {
		av_freep(&p->mem);
		p->cap = 0;
		p->mem = av_malloc(need);
		if (!p->mem)
			return -ENOMEM;
		p->cap = need;
	}
	p->data[0] = p->mem;
	p->data[1] = p->data[0] + (size_t)ls0 * (size_t)h;
	p->data[2] = p->data[1] + (size_t)ls1 * (size_t)ch;
	p->linesize[0] = ls0;
	p->linesize[1] = p->linesize[2] = ls1;
	p->w[0] = w;
	p->h[0] = h;
	p->w[1] = p->w[2] = cw;
	p->h[1] = p->h[2] = ch;
	p->log2_chroma_w = log2_cw;
	p->log2_chroma_h = log2_ch;
	return 0;
}

/* Repeats each row's last sample up to its block's end. */
static void planes_pad(struct jfif_planes *p)
{
	for (int i = 0; i < 3; i++) {
		int pad = FFALIGN(p->w[i], DCTSIZE) - p->w[i];
		if (!pad)
			continue;
		for (int y = 0; y < p->h[i]; y++) {
			uint8_t *r = p->data[i] + (ptrdiff_t)y * p->linesize[i];
			memset(r + p->w[i], r[p->w[i] - 1], (size_t)pad);
		}
	}
}

/*
 * The tables of a BT.601 (or untagged) source: the range change alone, in jfif_from_yuv's
 * arithmetic with its cross terms (all but zero for the same matrix) left out; full range
 * is the identity.
 */
static void jfif_luts_init(struct jpeg_state *js, bool full)
{
	struct jfif_matrix m;

	jfif_matrix_init(&m, SWS_CS_ITU601, full);
	for (int v = 0; v < 256; v++) {
		js->lut_y[v] = av_clip_uint8((m.ly * (v - m.yoff) + (1 << 6)) >> 16);
		js->lut_cb[v] = av_clip_uint8(128 + ((m.cb_cb * (v - 128) + (1 << 15)) >> 16));
		js->lut_cr[v] = av_clip_uint8(128 + ((m.cr_cr * (v - 128) + (1 << 15)) >> 16));
	}
	js->lut_range = full ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
}

static void plane_map(const uint8_t *src, int src_ls, uint8_t *dst, int dst_ls, int w, int h,
		      const uint8_t *lut, bool identity)
{
	for (int y = 0; y < h; y++) {
		const uint8_t *s = src + (ptrdiff_t)y * src_ls;
		uint8_t *o = dst + (ptrdiff_t)y * dst_ls;
		if (identity) {
			memcpy(o, s, (size_t)w);
			continue;
		}
		for (int x = 0; x < w; x++)
			o[x] = lut[s[x]];
	}
}

/* Planes of the encoder's layout from planar YUV of that layout and JFIF's own matrix. */
static void jfif_from_601(struct jpeg_state *js, const AVFrame *f, struct jfif_planes *p)
{
	bool full = range_is_full(f);
	const uint8_t *luts[3] = {js->lut_y, js->lut_cb, js->lut_cr};

	if (js->lut_range != (full ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG))
		jfif_luts_init(js, full);
	for (int i = 0; i < 3; i++)
		plane_map(f->data[i], f->linesize[i], p->data[i], p->linesize[i], p->w[i], p->h[i],
			  luts[i], full);
}

/* Fills js->planes (layout of dst) from f in whichever way its matrix and layout ask for. */
static int jpeg_convert(struct jpeg_state *js, const AVFrame *f, const AVPixFmtDescriptor *d,
			enum AVPixelFormat dst)
{
	struct jfif_planes *p = &js->planes;
	bool rgb = d->flags & AV_PIX_FMT_FLAG_RGB;
	bool is601 = !rgb && (d->nb_components < 3 || matrix_is_601(f->colorspace));
	int ret;

	if (same_planes(d, dst)) {
		if (is601) {
			jfif_from_601(js, f, p);
			return 0;
		}
		int cw = AV_CEIL_RSHIFT(f->width, d->log2_chroma_w);
		bool full = range_is_full(f);
		if (js->row_cap < cw) {
			av_freep(&js->row);
			js->row_cap = 0;
			js->row = av_malloc_array((size_t)cw, sizeof(*js->row));
			if (!js->row)
				return -ENOMEM;
			js->row_cap = cw;
		}
		if (!js->mat.ly || js->mat.colorspace != (int)f->colorspace || js->mat.full != full)
			jfif_matrix_init(&js->mat, f->colorspace, full);
		jfif_from_yuv(f, p, &js->mat, js->row);
		return 0;
	}
	/* other layouts: swscale, as the CLI converts them (the range alone, or RGB to JFIF) */
	if (rgb || is601) {
		ret = conv_prepare(&js->conv, f->format, f->width, f->height, f->color_range,
				   f->colorspace, dst, rgb);
		if (ret < 0)
			return ret;
		sws_scale(js->conv.sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height,
			  p->data, p->linesize);
		return 0;
	}
	/* ... and of other matrices: to RGB as the PNG is made, then to JFIF */
	ret = frame_fit(&js->rgb, AV_PIX_FMT_RGB24, f->width, f->height);
	if (ret == 0)
		ret = conv_prepare(&js->conv, f->format, f->width, f->height, f->color_range,
				   f->colorspace, AV_PIX_FMT_RGB24, false);
	if (ret == 0)
		ret = conv_prepare(&js->conv2, AV_PIX_FMT_RGB24, f->width, f->height,
				   AVCOL_RANGE_JPEG, AVCOL_SPC_RGB, dst, true);
	if (ret < 0)
		return ret;
	sws_scale(js->conv.sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height,
		  js->rgb->data, js->rgb->linesize);
	sws_scale(js->conv2.sws, (const uint8_t *const *)js->rgb->data, js->rgb->linesize, 0,
		  f->height, p->data, p->linesize);
	return 0;
}

static void jpeg_fail_exit(j_common_ptr c)
{
	longjmp(((struct jpeg_fail *)c->err)->jump, 1);
}

static void jpeg_fail_output(j_common_ptr c)
{
}

static void sink_init(j_compress_ptr c)
{
	struct jpeg_sink *s = (struct jpeg_sink *)c->dest;
	s->out->len = 0;
	s->pub.next_output_byte = s->out->data;
	s->pub.free_in_buffer = s->out->cap;
}

/* Called with the whole buffer full. */
static boolean sink_grow(j_compress_ptr c)
{
	struct jpeg_sink *s = (struct jpeg_sink *)c->dest;
	struct image_buf *b = s->out;
	size_t used = b->cap, cap = b->cap ? b->cap * 2 : 65536;
	uint8_t *d = realloc(b->data, cap);

	if (!d) {
		c->err->msg_code = JERR_OUT_OF_MEMORY;
		c->err->error_exit((j_common_ptr)c);
	}
	b->data = d;
	b->cap = cap;
	s->pub.next_output_byte = d + used;
	s->pub.free_in_buffer = cap - used;
	return TRUE;
}

static void sink_term(j_compress_ptr c)
{
	struct jpeg_sink *s = (struct jpeg_sink *)c->dest;
	s->out->len = s->out->cap - s->pub.free_in_buffer;
}

/* The quantization table `ffmpeg -q:v q` writes (see above), row by row. */
static void jpeg_cli_table(int q, unsigned int table[DCTSIZE2])
{
	int qscale = av_clip(q, 2, 31);

	table[0] = 8;
	for (int i = 1; i < DCTSIZE2; i++)
		table[i] = (unsigned int)FFMIN((mpeg1_intra[i] * qscale) >> 3, 255);
}

/*
 * libjpeg's DCT (its SIMD integer one) run at unit quantization, so each coefficient comes
 * out rounded to a whole number, then quantized about as the mjpeg encoder quantizes: DC by
 * 8 to nearest, AC toward zero with a dead zone (|c| / q + 0.36, rounded down), not to
 * nearest as libjpeg would: rounding to nearest made files 6-10% larger than the CLI's for
 * a few tenths of a dB. The mjpeg encoder's bias is 3/8, applied to finer coefficients
 * than these whole ones; 0.36 is what lands here within SPEC 4's bounds on both sides
 * (measured on the sources of tests/integration/test_jpeg.py: 0.375 gave 1.06x the CLI's
 * size at q=2 on light grain, 0.33 up to 0.4 dB less than the CLI's PSNR).
 */
#define JPEG_DEAD_ZONE 23593 /* 0.36 in 1/65536 */

static void jpeg_cli_quantize(j_compress_ptr c, jpeg_component_info *comp, JSAMPARRAY samples,
			      JBLOCKROW blocks, JDIMENSION row, JDIMENSION col, JDIMENSION n)
{
	const struct jpeg_state *js = c->client_data;

	js->fdct(c, comp, samples, blocks, row, col, n);
	for (JDIMENSION b = 0; b < n; b++) {
		JCOEF *k = blocks[b];
		int dc = k[0];
		/* branch-free, in 16.16 fixed point, so that the compiler vectorizes it */
		for (int i = 0; i < DCTSIZE2; i++) {
			int v = k[i], s = v >> 31, a = (v ^ s) - s;
			int l = (a * js->recip_q[i] + JPEG_DEAD_ZONE) >> 16;
			k[i] = (JCOEF)((l ^ s) - s);
		}
		k[0] = (JCOEF)((dc + 4) >> 3);
	}
}

/* Everything libjpeg may longjmp out of (jpeg_write), set up and run. */
static void jpeg_write(struct jpeg_state *js, int q, AVRational sar)
{
	j_compress_ptr c = &js->cinfo;
	const struct jfif_planes *p = &js->planes;
	JSAMPROW rows[3][2 * DCTSIZE];
	JSAMPARRAY planes[3] = {rows[0], rows[1], rows[2]};
	unsigned int table[DCTSIZE2];

	c->image_width = (JDIMENSION)p->w[0];
	c->image_height = (JDIMENSION)p->h[0];
	c->input_components = 3;
	c->in_color_space = JCS_YCbCr;
	jpeg_set_defaults(c);
	c->raw_data_in = TRUE;
	c->optimize_coding = TRUE;
	c->dct_method = JDCT_ISLOW;
	c->comp_info[0].h_samp_factor = 1 << p->log2_chroma_w;
	c->comp_info[0].v_samp_factor = 1 << p->log2_chroma_h;
	for (int i = 1; i < 3; i++) {
		c->comp_info[i].h_samp_factor = c->comp_info[i].v_samp_factor = 1;
		c->comp_info[i].quant_tbl_no = 0; /* the CLI's one table */
	}
	for (int i = 0; i < DCTSIZE2; i++)
		table[i] = 1;
	jpeg_add_quant_table(c, 0, table, 100, TRUE); /* what the DCT runs at */
	c->write_JFIF_header = TRUE;
	c->JFIF_major_version = 1;
	c->JFIF_minor_version = 2;
	c->density_unit = 0; /* aspect ratio only */
	c->X_density = (UINT16)sar.num;
	c->Y_density = (UINT16)sar.den;
	c->dest = &js->sink.pub;
	c->client_data = js;
	jpeg_start_compress(c, TRUE);
	/* the DCT's divisors are made now; the file's table (written later) is the CLI's */
	jpeg_cli_table(q, table);
	for (int i = 0; i < DCTSIZE2; i++) {
		c->quant_tbl_ptrs[0]->quantval[i] = (UINT16)table[i];
		js->recip_q[i] = (int32_t)((65536 + table[i] / 2) / table[i]);
	}
	js->fdct = c->fdct->forward_DCT;
	c->fdct->forward_DCT = jpeg_cli_quantize;
	while (c->next_scanline < c->image_height) {
		for (int i = 0; i < 3; i++) {
			int n = c->comp_info[i].v_samp_factor * DCTSIZE;
			int y0 = (int)c->next_scanline * c->comp_info[i].v_samp_factor /
				 c->max_v_samp_factor;
			for (int r = 0; r < n; r++)
				rows[i][r] = p->data[i] +
					     (ptrdiff_t)FFMIN(y0 + r, p->h[i] - 1) * p->linesize[i];
		}
		jpeg_write_raw_data(c, planes, (JDIMENSION)(c->max_v_samp_factor * DCTSIZE));
	}
	jpeg_finish_compress(c);
}

/* Compresses js->planes into out. 0, or a negative errno with a sentence in err. */
static int jpeg_compress(struct jpeg_state *js, int q, AVRational sar, struct image_buf *out,
			 char *err, size_t errlen)
{
	/* libjpeg writes a byte before it asks for room: start with some, likely all it needs */
	size_t want = FFMAX((size_t)js->planes.w[0] * (size_t)js->planes.h[0] / 2, 65536);

	if (out->cap < want) {
		uint8_t *d = realloc(out->data, want);
		if (!d)
			return -ENOMEM;
		out->data = d;
		out->cap = want;
	}
	js->sink.out = out;
	if (setjmp(js->fail.jump)) {
		char msg[JMSG_LENGTH_MAX];
		js->cinfo.err->format_message((j_common_ptr)&js->cinfo, msg);
		snprintf(err, errlen, "the JPEG encoder failed: %s", msg);
		if (js->created)
			jpeg_abort_compress(&js->cinfo);
		out->len = 0;
		return js->cinfo.err->msg_code == JERR_OUT_OF_MEMORY ? -ENOMEM : -EIO;
	}
	if (!js->created) {
		js->cinfo.err = jpeg_std_error(&js->fail.pub);
		js->fail.pub.error_exit = jpeg_fail_exit;
		js->fail.pub.output_message = jpeg_fail_output;
		jpeg_create_compress(&js->cinfo);
		js->sink.pub.init_destination = sink_init;
		js->sink.pub.empty_output_buffer = sink_grow;
		js->sink.pub.term_destination = sink_term;
		js->created = true;
	}
	jpeg_write(js, q, sar);
	return 0;
}

int image_encode_frame(const AVFrame *f, const struct image_opts *opts, struct image_buf *out,
		       char *err, size_t errlen)
{
	struct jpeg_state *js = &jpeg_tls;
	const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format), *e;
	AVRational sar = f->sample_aspect_ratio;
	enum AVPixelFormat dst;
	int ret;

	out->len = 0;
	if (opts->format != IMAGE_JPG) {
		snprintf(err, errlen, "image_encode_frame makes jpg only; png is made from RGB");
		return -ENOTSUP;
	}
	ret = jpeg_check(f, d, err, errlen);
	if (ret < 0)
		return ret;
	dst = jpeg_target(f->format);
	e = av_pix_fmt_desc_get(dst);
	if (sar.num > 0 && sar.den > 0)
		av_reduce(&sar.num, &sar.den, sar.num, sar.den, UINT16_MAX);
	if (sar.num <= 0 || sar.den <= 0)
		sar = (AVRational){1, 1}; /* always JFIF, square pixels unless told otherwise */
	ret = planes_fit(&js->planes, f->width, f->height, e->log2_chroma_w, e->log2_chroma_h);
	if (ret == 0)
		ret = jpeg_convert(js, f, d, dst);
	if (ret < 0) {
		snprintf(err, errlen, "out of memory converting a frame for jpg");
		return ret;
	}
	planes_pad(&js->planes);
	return jpeg_compress(js, opts->jpeg_q, sar, out, err, errlen);
}

/* A packed RGB picture through the same encoder: the CLI makes yuvj444p of RGB input. */
static int encode_jpeg(const struct picture *pic, const struct image_opts *o, struct image_buf *out,
		       char *err, size_t errlen)
{
	struct jpeg_state *js = &jpeg_tls;
	AVFrame *f;

	if (!js->wrap && !(js->wrap = av_frame_alloc()))
		return -ENOMEM;
	f = js->wrap;
	av_frame_unref(f);
	if (pic->depth == 8)
		f->format = pic->channels == 4 ? AV_PIX_FMT_RGBA : AV_PIX_FMT_RGB24;
	else
		f->format = pic->channels == 4 ? AV_PIX_FMT_RGBA64BE : AV_PIX_FMT_RGB48BE;
	f->width = pic->width;
	f->height = pic->height;
	f->data[0] = (uint8_t *)pic->data;
	f->linesize[0] = (int)pic->stride;
	f->color_range = AVCOL_RANGE_JPEG;
	f->colorspace = AVCOL_SPC_RGB;
	f->color_primaries = pic->primaries;
	f->color_trc = pic->trc;
	return image_encode_frame(f, o, out, err, errlen);
}

void image_encode_thread_done(void)
{
	jpeg_state_reset(&jpeg_tls);
	ld_reset(&ld_tls);
}

int image_encode(const struct picture *pic, const struct image_opts *opts, struct image_buf *out,
		 char *err, size_t errlen)
{
	out->len = 0;
	if (opts->format == IMAGE_JPG)
		return encode_jpeg(pic, opts, out, err, errlen);
	/* adaptive per-row filtering ("all") is libpng's */
	if (opts->png_deflate != HF_PNG_DEFLATE_ZLIB && opts->png_filter != HF_PNG_FILTER_ALL)
		return encode_png_own(pic, opts, out, err, errlen);
	return encode_png(pic, opts, out, err, errlen);
}
