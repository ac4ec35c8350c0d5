/*
 * Image encoders. PNG favours speed (frames are working files): the defaults are zlib
 * level 1, the UP filter and Z_RLE. JPEG goes through libavcodec's mjpeg encoder so that
 * quality numbers mean what they mean to the ffmpeg CLI (-q:v).
 */
#include "decode/encode.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
#include <libdeflate.h>
#include "decode/fastpng.h"
#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
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
		n = snprintf(buf, len, "jpg:q=%d", o->jpeg_q);
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
	if (pic->depth > 8)
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

	if (pic->depth > 8 && !(pic->primaries == 2 && pic->trc == 2)) {
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

/* One mjpeg encoder and RGB->YUVJ converter per thread, rebuilt when the size or q changes. */
struct jpeg_state {
	AVCodecContext *enc;
	struct SwsContext *sws;
	AVFrame *yuv;
	AVPacket *pkt;
	int w, h, q;
};

static __thread struct jpeg_state jpeg_tls;

static void jpeg_state_reset(struct jpeg_state *js)
{
	avcodec_free_context(&js->enc);
	sws_freeContext(js->sws);
	js->sws = NULL;
	av_frame_free(&js->yuv);
	av_packet_free(&js->pkt);
	js->w = js->h = js->q = 0;
}

static int jpeg_state_prepare(struct jpeg_state *js, int w, int h, int q)
{
	const AVCodec *codec;
	int ret;

	if (js->enc && js->w == w && js->h == h && js->q == q)
		return 0;
	jpeg_state_reset(js);
	codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
	if (!codec)
		return -ENOTSUP;
	js->enc = avcodec_alloc_context3(codec);
	js->yuv = av_frame_alloc();
	js->pkt = av_packet_alloc();
	if (!js->enc || !js->yuv || !js->pkt)
		goto out_nomem;
	js->enc->width = w;
	js->enc->height = h;
	js->enc->pix_fmt = AV_PIX_FMT_YUVJ420P;
	js->enc->color_range = AVCOL_RANGE_JPEG;
	js->enc->time_base = (AVRational){1, 25};
	js->enc->flags |= AV_CODEC_FLAG_QSCALE;
	js->enc->global_quality = FF_QP2LAMBDA * q;
	ret = avcodec_open2(js->enc, codec, NULL);
	if (ret < 0) {
		jpeg_state_reset(js);
		return -EIO;
	}
	js->yuv->format = AV_PIX_FMT_YUVJ420P;
	js->yuv->width = w;
	js->yuv->height = h;
	if (av_frame_get_buffer(js->yuv, 0) < 0)
		goto out_nomem;
	js->sws = sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, AV_PIX_FMT_YUVJ420P, SWS_BICUBIC,
				 NULL, NULL, NULL);
	if (!js->sws)
		goto out_nomem;
	js->w = w;
	js->h = h;
	js->q = q;
	return 0;
out_nomem:
	jpeg_state_reset(js);
	return -ENOMEM;
}

static int encode_jpeg(const struct picture *pic, const struct image_opts *o,
		       struct image_buf *out, char *err, size_t errlen)
{
	struct jpeg_state *js = &jpeg_tls;
	const uint8_t *src[1] = {pic->data};
	int src_stride[1] = {(int)pic->stride};
	int ret;

	if (pic->channels != 3 || pic->depth != 8) {
		snprintf(err, errlen, "jpg cannot hold %s; use png",
			 pic->channels != 3 ? "an alpha channel" : "more than 8 bits per sample");
		return -ENOTSUP;
	}
	ret = jpeg_state_prepare(js, pic->width, pic->height, o->jpeg_q);
	if (ret < 0) {
		snprintf(err, errlen, "the mjpeg encoder could not be opened");
		return ret;
	}
	ret = av_frame_make_writable(js->yuv);
	if (ret < 0)
		return -ENOMEM;
	sws_scale(js->sws, src, src_stride, 0, pic->height, js->yuv->data, js->yuv->linesize);
	js->yuv->quality = js->enc->global_quality;
	js->yuv->pict_type = AV_PICTURE_TYPE_NONE;
	ret = avcodec_send_frame(js->enc, js->yuv);
	if (ret >= 0)
		ret = avcodec_receive_packet(js->enc, js->pkt);
	if (ret < 0) {
		snprintf(err, errlen, "the mjpeg encoder failed");
		jpeg_state_reset(js);
		return -EIO;
	}
	out->len = 0;
	ret = buf_append(out, js->pkt->data, (size_t)js->pkt->size);
	av_packet_unref(js->pkt);
	return ret;
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
