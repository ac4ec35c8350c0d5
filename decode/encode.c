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
#include <png.h>
#include <setjmp.h>
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
	else
		n = snprintf(buf, len, "png:level=%d:filter=%s:strategy=%s", o->png_level,
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
}

int image_encode(const struct picture *pic, const struct image_opts *opts, struct image_buf *out,
		 char *err, size_t errlen)
{
	out->len = 0;
	if (opts->format == IMAGE_JPG)
		return encode_jpeg(pic, opts, out, err, errlen);
	return encode_png(pic, opts, out, err, errlen);
}
