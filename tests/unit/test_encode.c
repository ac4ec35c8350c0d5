/*
 * encode: JPEG from decoded frames (image_encode_frame) and from packed RGB (image_encode).
 * The quantization tables are compared with the DQT of the ffmpeg CLI's own JPEGs.
 * Each file is decoded again with libavcodec's mjpeg decoder and its YCbCr samples are
 * compared with conversions written out here from the standards (BT.601 limited range,
 * BT.709, JFIF's BT.601 full range), not with the encoder's own arithmetic. The comparison
 * with the ffmpeg CLI's files is the integration tests' work.
 */
#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "decode/encode.h"
#include "hftest.h"

static const struct image_opts jpg2 = {.format = IMAGE_JPG, .jpeg_q = 2};

static AVFrame *frame_new(enum AVPixelFormat fmt, int w, int h, enum AVColorSpace cs,
			  enum AVColorRange range)
{
	AVFrame *f = av_frame_alloc();
	f->format = fmt;
	f->width = w;
	f->height = h;
	f->colorspace = cs;
	f->color_range = range;
	if (av_frame_get_buffer(f, 0) < 0)
		abort();
	return f;
}

/* Fills an 8-bit YUV frame: columns of 16 pixels take the patches' values in turn. */
static void fill_patches(AVFrame *f, const uint8_t (*yuv)[3], int n)
{
	const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);
	for (int p = 0; p < 3 && p < d->nb_components; p++) {
		const AVComponentDescriptor *c = &d->comp[p];
		int sw = p ? d->log2_chroma_w : 0, sh = p ? d->log2_chroma_h : 0;
		for (int y = 0; y < AV_CEIL_RSHIFT(f->height, sh); y++)
			for (int x = 0; x < AV_CEIL_RSHIFT(f->width, sw); x++)
				f->data[c->plane][y * f->linesize[c->plane] + x * c->step +
						  c->offset] = yuv[((x << sw) / 16) % n][p];
	}
}

/* Fills every plane with a reproducible grain. */
static void fill_noise(AVFrame *f, unsigned seed)
{
	const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);
	for (int p = 0; p < 4 && f->data[p]; p++) {
		int sw = p == 1 || p == 2 ? d->log2_chroma_w : 0;
		int sh = p == 1 || p == 2 ? d->log2_chroma_h : 0;
		int bytes = AV_CEIL_RSHIFT(f->width, sw) * (d->flags & AV_PIX_FMT_FLAG_RGB ? 3 : 1);
		for (int y = 0; y < AV_CEIL_RSHIFT(f->height, sh); y++)
			for (int x = 0; x < bytes; x++) {
				seed = seed * 1103515245u + 12345u;
				f->data[p][y * f->linesize[p] + x] =
				    (uint8_t)(40 + (x * 3 + y) % 160 + (int)((seed >> 16) % 48));
			}
	}
}

/* Decodes a JPEG file into a new frame, or NULL. */
static AVFrame *jpeg_decode(const struct image_buf *img)
{
	const AVCodec *c = avcodec_find_decoder(AV_CODEC_ID_MJPEG);
	AVCodecContext *dc = avcodec_alloc_context3(c);
	AVPacket *pkt = av_packet_alloc();
	AVFrame *f = av_frame_alloc();
	int ret = avcodec_open2(dc, c, NULL);

	if (ret >= 0 && av_new_packet(pkt, (int)img->len) >= 0) {
		memcpy(pkt->data, img->data, img->len);
		ret = avcodec_send_packet(dc, pkt);
		if (ret >= 0)
			ret = avcodec_receive_frame(dc, f);
	} else {
		ret = -1;
	}
	if (ret < 0)
		av_frame_free(&f);
	av_packet_free(&pkt);
	avcodec_free_context(&dc);
	return f;
}

/* The decoded sample of plane p at the centre of patch k (patches are 16 pixels wide). */
static int sample_at(const AVFrame *f, int p, int k, int y)
{
	const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);
	int x = k * 16 + 8;
	if (p) {
		x >>= d->log2_chroma_w;
		y >>= d->log2_chroma_h;
	}
	return f->data[p][y * f->linesize[p] + x];
}

/* JFIF (BT.601, full range) of R'G'B' in 0..1. */
static void rgb_to_jfif(const double rgb[3], double out[3])
{
	double y = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
	out[0] = 255 * y;
	out[1] = 128 + 255 * (rgb[2] - y) / 1.772;
	out[2] = 128 + 255 * (rgb[0] - y) / 1.402;
}

/* Limited-range Y'CbCr of matrix (kr, kb) to R'G'B' in 0..1. */
static void limited_to_rgb(const uint8_t yuv[3], double kr, double kb, double rgb[3])
{
	double y = (yuv[0] - 16) / 219.0, cb = (yuv[1] - 128) / 224.0, cr = (yuv[2] - 128) / 224.0;
	rgb[0] = y + 2 * (1 - kr) * cr;
	rgb[2] = y + 2 * (1 - kb) * cb;
	rgb[1] = (y - kr * rgb[0] - kb * rgb[2]) / (1 - kr - kb);
}

static void rgb_to_limited(const double rgb[3], double kr, double kb, uint8_t yuv[3])
{
	double y = kr * rgb[0] + (1 - kr - kb) * rgb[1] + kb * rgb[2];
	yuv[0] = (uint8_t)lrint(16 + 219 * y);
	yuv[1] = (uint8_t)lrint(128 + 224 * (rgb[2] - y) / (2 * (1 - kb)));
	yuv[2] = (uint8_t)lrint(128 + 224 * (rgb[0] - y) / (2 * (1 - kr)));
}

static int encode(const AVFrame *f, const struct image_opts *o, struct image_buf *out)
{
	char err[256] = "";
	int ret = image_encode_frame(f, o, out, err, sizeof(err));
	if (ret < 0)
		fprintf(stderr, "  image_encode_frame(%s): %d %s\n", av_get_pix_fmt_name(f->format),
			ret, err);
	return ret;
}

static void test_canon(void)
{
	char buf[64];
	CHECK(image_opts_canon(&jpg2, buf, sizeof(buf)) > 0);
	CHECK_EQ_STR(buf, "jpg:v3:q=2");
}

static void test_refused(void)
{
	static const struct {
		enum AVPixelFormat fmt;
		const char *why;
	} bad[] = {
	    {AV_PIX_FMT_YUVA420P, "alpha"}, {AV_PIX_FMT_RGBA, "alpha"},
	    {AV_PIX_FMT_PAL8, "alpha"},	    {AV_PIX_FMT_YUV420P10LE, "8 bits"},
	    {AV_PIX_FMT_RGB48LE, "8 bits"}, {AV_PIX_FMT_P010LE, "8 bits"},
	};
	struct image_buf out = {0};
	struct image_opts png = jpg2;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		AVFrame *f =
		    frame_new(bad[i].fmt, 32, 16, AVCOL_SPC_UNSPECIFIED, AVCOL_RANGE_UNSPECIFIED);
		err[0] = 0;
		CHECK_EQ_INT(image_encode_frame(f, &jpg2, &out, err, sizeof(err)), -ENOTSUP);
		if (!CHECK(strstr(err, bad[i].why) != NULL))
			fprintf(stderr, "  %s: \"%s\"\n", av_get_pix_fmt_name(bad[i].fmt), err);
		av_frame_free(&f);
	}
	/* png is not made from frames */
	png.format = IMAGE_PNG;
	AVFrame *f =
	    frame_new(AV_PIX_FMT_YUV420P, 32, 16, AVCOL_SPC_UNSPECIFIED, AVCOL_RANGE_UNSPECIFIED);
	fill_noise(f, 1);
	err[0] = 0;
	CHECK_EQ_INT(image_encode_frame(f, &png, &out, err, sizeof(err)), -ENOTSUP);
	CHECK(err[0] != 0);
	av_frame_free(&f);

	/* packed RGB with alpha or 16 bits is refused as jpg too */
	uint8_t px[4 * 8 * 8 * 2] = {0};
	struct picture rgba = {px, 8 * 4, 8, 8, 4, 8, 2, 2};
	struct picture rgb48 = {px, 8 * 6, 8, 8, 3, 16, 2, 2};
	CHECK_EQ_INT(image_encode(&rgba, &jpg2, &out, err, sizeof(err)), -ENOTSUP);
	CHECK(strstr(err, "alpha") != NULL);
	CHECK_EQ_INT(image_encode(&rgb48, &jpg2, &out, err, sizeof(err)), -ENOTSUP);
	CHECK(strstr(err, "8 bits") != NULL);
	image_buf_free(&out);
}

/*
 * Every size and input format gives a JPEG of that size in the format the CLI's negotiation
 * picks for the mjpeg encoder (seen with `ffmpeg -v debug`: "picking yuvj444p out of 3
 * ref:rgb24" and so on).
 */
static void test_formats_and_sizes(void)
{
	static const struct {
		enum AVPixelFormat in, out;
		enum AVColorSpace cs;
	} cases[] = {
	    {AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUVJ420P, AVCOL_SPC_UNSPECIFIED},
	    {AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUVJ420P, AVCOL_SPC_BT709},
	    {AV_PIX_FMT_YUV422P, AV_PIX_FMT_YUVJ422P, AVCOL_SPC_UNSPECIFIED},
	    {AV_PIX_FMT_YUV422P, AV_PIX_FMT_YUVJ422P, AVCOL_SPC_BT2020_NCL},
	    {AV_PIX_FMT_YUV444P, AV_PIX_FMT_YUVJ444P, AVCOL_SPC_SMPTE170M},
	    {AV_PIX_FMT_YUV444P, AV_PIX_FMT_YUVJ444P, AVCOL_SPC_BT709},
	    {AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUVJ420P, AVCOL_SPC_UNSPECIFIED},
	    {AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUVJ420P, AVCOL_SPC_BT709},
	    {AV_PIX_FMT_NV12, AV_PIX_FMT_YUVJ420P, AVCOL_SPC_UNSPECIFIED},
	    {AV_PIX_FMT_NV12, AV_PIX_FMT_YUVJ420P, AVCOL_SPC_BT709},
	    {AV_PIX_FMT_YUV411P, AV_PIX_FMT_YUVJ422P, AVCOL_SPC_UNSPECIFIED},
	    {AV_PIX_FMT_YUV440P, AV_PIX_FMT_YUVJ444P, AVCOL_SPC_BT709},
	    {AV_PIX_FMT_GRAY8, AV_PIX_FMT_YUVJ444P, AVCOL_SPC_UNSPECIFIED},
	    {AV_PIX_FMT_RGB24, AV_PIX_FMT_YUVJ444P, AVCOL_SPC_RGB},
	    {AV_PIX_FMT_BGR24, AV_PIX_FMT_YUVJ444P, AVCOL_SPC_UNSPECIFIED},
	    {AV_PIX_FMT_GBRP, AV_PIX_FMT_YUVJ444P, AVCOL_SPC_RGB},
	};
	static const int sizes[][2] = {{1, 1}, {33, 17}, {17, 33}, {64, 48}};
	struct image_buf out = {0};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			AVFrame *f = frame_new(cases[i].in, sizes[s][0], sizes[s][1], cases[i].cs,
					       AVCOL_RANGE_UNSPECIFIED);
			AVFrame *back;
			fill_noise(f, (unsigned)(i * 16 + s));
			if (!CHECK_EQ_INT(encode(f, &jpg2, &out), 0)) {
				av_frame_free(&f);
				continue;
			}
			back = jpeg_decode(&out);
			if (CHECK(back != NULL)) {
				CHECK_EQ_INT(back->width, sizes[s][0]);
				CHECK_EQ_INT(back->height, sizes[s][1]);
				if (!CHECK_EQ_INT(back->format, cases[i].out))
					fprintf(stderr, "  %s gave %s\n",
						av_get_pix_fmt_name(cases[i].in),
						av_get_pix_fmt_name(back->format));
			}
			av_frame_free(&back);
			av_frame_free(&f);
		}
	image_buf_free(&out);
}

/* The DQT segments of a JPEG file, concatenated (markers included), into buf; its length. */
static size_t dqt_of(const uint8_t *p, size_t n, uint8_t *buf, size_t cap)
{
	size_t pos = 2, len = 0;
	while (pos + 4 <= n && p[pos] == 0xff && p[pos + 1] != 0xda) {
		size_t seg = 2 + ((size_t)p[pos + 2] << 8 | p[pos + 3]);
		if (p[pos + 1] == 0xdb && len + seg <= cap) {
			memcpy(buf + len, p + pos, seg);
			len += seg;
		}
		pos += seg;
	}
	return len;
}

/*
 * q= keeps the meaning of `ffmpeg -q:v Q`: the DQT segments equal those of the CLI's own
 * JPEG at that Q (one table for all components), for Q from 1 (written as 2) to 31.
 */
static void test_quant_tables_are_the_clis(void)
{
	static const int qs[] = {1, 2, 3, 5, 13, 31};
	struct image_buf out = {0};
	AVFrame *f = frame_new(AV_PIX_FMT_YUV420P, 64, 48, AVCOL_SPC_UNSPECIFIED, AVCOL_RANGE_MPEG);

	fill_noise(f, 5);
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		char cmd[256];
		uint8_t cli[65536], a[1024], b[1024];
		size_t n, la, lb;
		struct image_opts o = jpg2;
		FILE *p;

		snprintf(cmd, sizeof(cmd),
			 "ffmpeg -nostdin -v error -f lavfi -i testsrc2=s=64x48 -frames:v 1 "
			 "-q:v %d -f image2pipe -c:v mjpeg - 2>/dev/null",
			 qs[i]);
		p = popen(cmd, "r");
		if (!CHECK(p != NULL))
			break;
		n = fread(cli, 1, sizeof(cli), p);
		if (!CHECK(pclose(p) == 0 && n > 100)) {
			fprintf(stderr, "  the ffmpeg CLI made no JPEG (%s)\n", cmd);
			break;
		}
		o.jpeg_q = qs[i];
		if (!CHECK_EQ_INT(encode(f, &o, &out), 0))
			continue;
		la = dqt_of(out.data, out.len, a, sizeof(a));
		lb = dqt_of(cli, n, b, sizeof(b));
		CHECK_EQ_INT(lb, 2 + 2 + 1 + 64); /* the CLI's one table */
		if (!CHECK(la == lb && memcmp(a, b, la) == 0))
			fprintf(stderr, "  q=%d: our DQT differs from the CLI's\n", qs[i]);
	}
	av_frame_free(&f);
	image_buf_free(&out);
}

/* A JFIF APP0 with the frame's sample aspect ratio as its density, 1:1 when unknown. */
static void test_jfif_header(void)
{
	struct image_buf out = {0};
	AVFrame *f = frame_new(AV_PIX_FMT_YUV420P, 48, 32, AVCOL_SPC_UNSPECIFIED, AVCOL_RANGE_MPEG);
	fill_noise(f, 7);
	for (int i = 0; i < 2; i++) {
		int num = i ? 4 : 1, den = i ? 3 : 1;
		f->sample_aspect_ratio = i ? (AVRational){4, 3} : (AVRational){0, 1};
		if (!CHECK_EQ_INT(encode(f, &jpg2, &out), 0) || !CHECK(out.len > 20))
			continue;
		CHECK(out.data[0] == 0xff && out.data[1] == 0xd8);
		CHECK(out.data[2] == 0xff && out.data[3] == 0xe0);
		CHECK(memcmp(out.data + 6, "JFIF", 5) == 0);
		CHECK_EQ_INT(out.data[13], 0); /* units: aspect ratio only */
		CHECK_EQ_INT(out.data[14] << 8 | out.data[15], num);
		CHECK_EQ_INT(out.data[16] << 8 | out.data[17], den);
	}
	av_frame_free(&f);
	image_buf_free(&out);
}

/*
 * Untagged limited-range YUV: the range change (a table, not the CLI's swscale) decodes
 * within a level of swscale's bicubic limited-to-full conversion of the same picture, tagged
 * BT.601 gives the same bytes as untagged, and flat greys land where the range conversion
 * puts them.
 */
static void test_cli_conversion(void)
{
	struct image_buf a = {0}, b = {0};
	AVFrame *f =
	    frame_new(AV_PIX_FMT_YUV420P, 96, 64, AVCOL_SPC_UNSPECIFIED, AVCOL_RANGE_UNSPECIFIED);
	AVFrame *g =
	    frame_new(AV_PIX_FMT_YUVJ420P, 96, 64, AVCOL_SPC_UNSPECIFIED, AVCOL_RANGE_JPEG);
	struct SwsContext *sws;
	int *inv, *tbl, sf, df, bri, con, sat;

	fill_noise(f, 3);
	sws = sws_getContext(96, 64, AV_PIX_FMT_YUV420P, 96, 64, AV_PIX_FMT_YUVJ420P, SWS_BICUBIC,
			     NULL, NULL, NULL);
	sws_getColorspaceDetails(sws, &inv, &sf, &tbl, &df, &bri, &con, &sat);
	inv = (int *)sws_getCoefficients(SWS_CS_DEFAULT);
	sws_setColorspaceDetails(sws, inv, sf, inv, df, bri, con, sat);
	sws_scale(sws, (const uint8_t *const *)f->data, f->linesize, 0, 64, g->data, g->linesize);
	sws_freeContext(sws);
	if (CHECK_EQ_INT(encode(f, &jpg2, &a), 0) && CHECK_EQ_INT(encode(g, &jpg2, &b), 0)) {
		AVFrame *x = jpeg_decode(&a), *y = jpeg_decode(&b);
		if (CHECK(x && y)) {
			double sum = 0;
			for (int r = 0; r < 64; r++)
				for (int c = 0; c < 96; c++)
					sum += x->data[0][r * x->linesize[0] + c] -
					       y->data[0][r * y->linesize[0] + c];
			if (!CHECK(fabs(sum / (96 * 64)) <= 1.0))
				fprintf(stderr, "  luma mean off swscale's by %.2f\n", sum / 96 / 64);
		}
		av_frame_free(&x);
		av_frame_free(&y);
	}

	/* tagged BT.601 (smpte170m, bt470bg) converts exactly as untagged */
	f->colorspace = AVCOL_SPC_SMPTE170M;
	if (CHECK_EQ_INT(encode(f, &jpg2, &b), 0))
		CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
	f->colorspace = AVCOL_SPC_BT470BG;
	f->color_range = AVCOL_RANGE_MPEG;
	if (CHECK_EQ_INT(encode(f, &jpg2, &b), 0))
		CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);

	/* greys: Y 16, 60, 126, 235 are 0, 51.2, 128.1, 255 in full range */
	static const uint8_t greys[][3] = {{16, 128, 128},  {60, 128, 128},  {126, 128, 128},
					   {235, 128, 128}, {240, 128, 128}, {8, 128, 128}};
	static const int want[] = {0, 51, 128, 255, 255, 0};
	f->colorspace = AVCOL_SPC_UNSPECIFIED;
	fill_patches(f, greys, 6);
	if (CHECK_EQ_INT(encode(f, &jpg2, &a), 0)) {
		AVFrame *back = jpeg_decode(&a);
		if (CHECK(back != NULL))
			for (int k = 0; k < 6; k++) {
				CHECK(abs(sample_at(back, 0, k, 24) - want[k]) <= 1);
				CHECK(abs(sample_at(back, 1, k, 24) - 128) <= 1);
				CHECK(abs(sample_at(back, 2, k, 24) - 128) <= 1);
			}
		av_frame_free(&back);
	}
	av_frame_free(&f);
	av_frame_free(&g);
	image_buf_free(&a);
	image_buf_free(&b);
}

/* yuvj input of BT.601 or no matrix goes to the encoder untouched: flat patches come back. */
static void test_full_range_as_is(void)
{
	static const uint8_t patches[][3] = {{0, 128, 128},  {255, 128, 128}, {90, 60, 200},
					     {170, 200, 70}, {30, 250, 5},    {128, 128, 128}};
	struct image_buf out = {0};
	AVFrame *f =
	    frame_new(AV_PIX_FMT_YUVJ420P, 96, 32, AVCOL_SPC_UNSPECIFIED, AVCOL_RANGE_JPEG);
	fill_patches(f, patches, 6);
	if (CHECK_EQ_INT(encode(f, &jpg2, &out), 0)) {
		AVFrame *back = jpeg_decode(&out);
		if (CHECK(back != NULL))
			for (int k = 0; k < 6; k++)
				for (int p = 0; p < 3; p++)
					CHECK(abs(sample_at(back, p, k, 16) - patches[k][p]) <= 1);
		av_frame_free(&back);
	}
	av_frame_free(&f);
	image_buf_free(&out);
}

/*
 * One thread's encoder serves every job: frames arrive with the timestamps of other
 * sources and times, in any order, and each is a file of its own (issue 21: libavcodec's
 * mjpeg encoder refused a timestamp not after the last one, and frames passed as is kept
 * theirs). Equal pictures give equal files whatever came before.
 */
static int buf_copy(struct image_buf *to, const struct image_buf *from)
{
	uint8_t *d = realloc(to->data, from->len);
	if (!d)
		return -ENOMEM;
	memcpy(d, from->data, from->len);
	to->data = d;
	to->len = to->cap = from->len;
	return 0;
}

static void test_timestamps_of_other_jobs(void)
{
	static const int64_t pts[] = {900, 900, 3, -40, AV_NOPTS_VALUE, 2, 1000000};
	struct image_buf first = {0}, out = {0};
	AVFrame *f = frame_new(AV_PIX_FMT_YUVJ420P, 64, 32, AVCOL_SPC_UNSPECIFIED,
			       AVCOL_RANGE_JPEG);
	AVFrame *g = frame_new(AV_PIX_FMT_YUV420P, 64, 32, AVCOL_SPC_BT709, AVCOL_RANGE_MPEG);

	fill_noise(f, 7);
	fill_noise(g, 8);
	for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++) {
		AVFrame *pic = i % 3 == 2 ? g : f;
		pic->pts = pts[i];
		if (!CHECK_EQ_INT(encode(pic, &jpg2, &out), 0))
			continue;
		if (i == 0)
			CHECK(buf_copy(&first, &out) == 0);
		else if (pic == f)
			CHECK(out.len == first.len && memcmp(out.data, first.data, out.len) == 0);
	}
	av_frame_free(&f);
	av_frame_free(&g);
	image_buf_free(&first);
	image_buf_free(&out);
}

/* The frame as RGB24 the way the PNG is made (extract.c, and the CLI's PNG). */
static uint8_t *png_rgb(const AVFrame *f)
{
	uint8_t *rgb = malloc((size_t)f->width * f->height * 3);
	uint8_t *dst[4] = {rgb};
	int stride[4] = {f->width * 3}, *inv, *tbl, sf, df, bri, con, sat;
	struct SwsContext *sws = sws_getContext(f->width, f->height, f->format, f->width, f->height,
						AV_PIX_FMT_RGB24, SWS_BICUBIC, NULL, NULL, NULL);
	sws_getColorspaceDetails(sws, &inv, &sf, &tbl, &df, &bri, &con, &sat);
	inv = (int *)sws_getCoefficients(f->colorspace);
	sf = f->color_range == AVCOL_RANGE_JPEG;
	sws_setColorspaceDetails(sws, inv, sf, inv, df, bri, con, sat);
	sws_scale(sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, stride);
	sws_freeContext(sws);
	return rgb;
}

/*
 * BT.709 (and BT.2020) sources are converted to JFIF's matrix, so the colours survive a
 * decoder that assumes JFIF: each patch's decoded Y'CbCr is within 1.5 levels of
 * BT.709 -> R'G'B' -> BT.601 full range computed here (luma may sit up to a level low: it is
 * truncated like the PNG's). Keeping the source's coefficients, as the CLI does, would be
 * several levels off on these colours; the test checks it can tell.
 * Layouts converted through RGB (nv12, yuv440p) are compared with JFIF of the PNG's RGB
 * instead: swscale 5.1 does not expand their limited range when it makes the PNG, and the
 * JPEG is to show what the PNG shows.
 */
static void check_matrix(enum AVPixelFormat fmt, enum AVColorSpace cs, double kr, double kb,
			 bool via_png)
{
	static const double colours[][3] = {
	    {0.80, 0.15, 0.15}, {0.15, 0.70, 0.25}, {0.20, 0.25, 0.80}, {0.50, 0.50, 0.50},
	    {0.90, 0.85, 0.20}, {0.10, 0.10, 0.10}, {0.95, 0.60, 0.70}, {0.30, 0.75, 0.75},
	};
	enum { N = 8 };
	uint8_t yuv[N][3], *png = NULL;
	double want[N][3], max_keep = 0;
	struct image_buf out = {0};
	AVFrame *f = frame_new(fmt, 16 * N, 32, cs, AVCOL_RANGE_MPEG), *back;

	for (int k = 0; k < N; k++)
		rgb_to_limited(colours[k], kr, kb, yuv[k]);
	fill_patches(f, (const uint8_t(*)[3])yuv, N);
	if (via_png)
		png = png_rgb(f);
	for (int k = 0; k < N; k++) {
		double rgb[3];
		limited_to_rgb(yuv[k], kr, kb, rgb);
		for (int c = 0; png && c < 3; c++) /* the PNG's pixel at the patch's centre */
			rgb[c] = png[((size_t)16 * f->width + k * 16 + 8) * 3 + c] / 255.0;
		rgb_to_jfif(rgb, want[k]);
		/* what keeping the source's coefficients would give for Y' */
		max_keep = fmax(max_keep, fabs((yuv[k][0] - 16) * 255.0 / 219 - want[k][0]));
	}
	CHECK(max_keep > 5);
	if (!CHECK_EQ_INT(encode(f, &jpg2, &out), 0))
		goto out;
	back = jpeg_decode(&out);
	if (CHECK(back != NULL))
		for (int k = 0; k < N; k++)
			for (int p = 0; p < 3; p++) {
				double d = sample_at(back, p, k, 16) - want[k][p];
				if (!CHECK(d >= (p ? -1.5 : -2.0) && d <= 1.5))
					fprintf(stderr,
						"  %s %d patch %d plane %d: %d, want %.2f\n",
						av_get_pix_fmt_name(fmt), cs, k, p,
						sample_at(back, p, k, 16), want[k][p]);
			}
	av_frame_free(&back);
out:
	free(png);
	av_frame_free(&f);
	image_buf_free(&out);
}

/* Greys of a BT.709 source decode to exactly the PNG's grey (luma truncated as swscale does). */
static void check_greys(void)
{
	enum { N = 8 };
	struct image_buf out = {0};
	for (int base = 10; base < 240; base += N) {
		uint8_t yuv[N][3], *png;
		AVFrame *f = frame_new(AV_PIX_FMT_YUV420P, 16 * N, 16, AVCOL_SPC_BT709,
				       AVCOL_RANGE_MPEG),
			*back;
		for (int k = 0; k < N; k++) {
			yuv[k][0] = (uint8_t)(base + k);
			yuv[k][1] = yuv[k][2] = 128;
		}
		fill_patches(f, (const uint8_t(*)[3])yuv, N);
		png = png_rgb(f);
		if (CHECK_EQ_INT(encode(f, &jpg2, &out), 0) && CHECK((back = jpeg_decode(&out)))) {
			for (int k = 0; k < N; k++) {
				if (!CHECK_EQ_INT(sample_at(back, 0, k, 8),
						  png[(8 * f->width + k * 16 + 8) * 3]))
					fprintf(stderr, "  grey Y=%d\n", base + k);
				CHECK_EQ_INT(sample_at(back, 1, k, 8), 128);
				CHECK_EQ_INT(sample_at(back, 2, k, 8), 128);
			}
			av_frame_free(&back);
		}
		free(png);
		av_frame_free(&f);
	}
	image_buf_free(&out);
}

static void test_other_matrices(void)
{
	check_greys();
	check_matrix(AV_PIX_FMT_YUV420P, AVCOL_SPC_BT709, 0.2126, 0.0722, false);
	check_matrix(AV_PIX_FMT_YUV422P, AVCOL_SPC_BT709, 0.2126, 0.0722, false);
	check_matrix(AV_PIX_FMT_YUV444P, AVCOL_SPC_BT709, 0.2126, 0.0722, false);
	check_matrix(AV_PIX_FMT_YUV420P, AVCOL_SPC_BT2020_NCL, 0.2627, 0.0593, false);
	check_matrix(AV_PIX_FMT_NV12, AVCOL_SPC_BT709, 0.2126, 0.0722, true);
	check_matrix(AV_PIX_FMT_YUV440P, AVCOL_SPC_BT709, 0.2126, 0.0722, true);
}

/* Packed RGB (image_encode) is JFIF of those colours, in yuvj444p as the CLI makes it. */
static void test_rgb(void)
{
	static const uint8_t colours[][3] = {{255, 0, 0},     {0, 255, 0},    {0, 0, 255},
					     {128, 128, 128}, {250, 240, 30}, {10, 20, 30}};
	enum { N = 6, W = 16 * N, H = 16 };
	uint8_t *px = malloc(W * H * 3);
	struct picture pic = {px, W * 3, W, H, 3, 8, 2, 2};
	struct image_buf out = {0};
	char err[256];

	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++)
			memcpy(px + (y * W + x) * 3, colours[x / 16], 3);
	if (CHECK_EQ_INT(image_encode(&pic, &jpg2, &out, err, sizeof(err)), 0)) {
		AVFrame *back = jpeg_decode(&out);
		if (CHECK(back != NULL) && CHECK_EQ_INT(back->format, AV_PIX_FMT_YUVJ444P))
			for (int k = 0; k < N; k++) {
				double rgb[3], want[3];
				for (int c = 0; c < 3; c++)
					rgb[c] = colours[k][c] / 255.0;
				rgb_to_jfif(rgb, want);
				for (int p = 0; p < 3; p++)
					CHECK(fabs(sample_at(back, p, k, 8) - want[p]) <= 1.5);
			}
		av_frame_free(&back);
	}
	free(px);
	image_buf_free(&out);
}

/* The same frame gives the same bytes, also from several threads at once. */
struct det_arg {
	const AVFrame *f;
	const struct image_buf *ref;
	int same;
};

static void *det_thread(void *p)
{
	struct det_arg *a = p;
	struct image_buf out = {0};
	char err[256];
	a->same = 1;
	for (int i = 0; i < 8; i++) {
		/* alternate sizes and matrices so the thread's state is rebuilt in between */
		AVFrame *other =
		    frame_new(AV_PIX_FMT_YUV422P, 40 + i, 24, AVCOL_SPC_BT709, AVCOL_RANGE_MPEG);
		fill_noise(other, (unsigned)i);
		if (image_encode_frame(other, &jpg2, &out, err, sizeof(err)) < 0 ||
		    image_encode_frame(a->f, &jpg2, &out, err, sizeof(err)) < 0 ||
		    out.len != a->ref->len || memcmp(out.data, a->ref->data, out.len) != 0)
			a->same = 0;
		av_frame_free(&other);
	}
	image_buf_free(&out);
	image_encode_thread_done();
	return NULL;
}

static void test_deterministic(void)
{
	struct image_buf ref = {0}, again = {0};
	enum AVColorSpace spaces[] = {AVCOL_SPC_UNSPECIFIED, AVCOL_SPC_BT709};

	for (int s = 0; s < 2; s++) {
		AVFrame *f = frame_new(AV_PIX_FMT_YUV420P, 200, 120, spaces[s], AVCOL_RANGE_MPEG);
		pthread_t t[3];
		struct det_arg a[3];
		fill_noise(f, 11);
		if (!CHECK_EQ_INT(encode(f, &jpg2, &ref), 0) ||
		    !CHECK_EQ_INT(encode(f, &jpg2, &again), 0)) {
			av_frame_free(&f);
			continue;
		}
		CHECK(ref.len == again.len && memcmp(ref.data, again.data, ref.len) == 0);
		for (int i = 0; i < 3; i++) {
			a[i] = (struct det_arg){f, &ref, 0};
			pthread_create(&t[i], NULL, det_thread, &a[i]);
		}
		for (int i = 0; i < 3; i++) {
			pthread_join(t[i], NULL);
			CHECK(a[i].same);
		}
		/* a higher q is a smaller file */
		struct image_opts q10 = jpg2;
		q10.jpeg_q = 10;
		if (CHECK_EQ_INT(encode(f, &q10, &again), 0))
			CHECK(again.len < ref.len);
		av_frame_free(&f);
	}
	image_buf_free(&ref);
	image_buf_free(&again);
}

int main(void)
{
	av_log_set_level(AV_LOG_ERROR);
	test_canon();
	test_refused();
	test_formats_and_sizes();
	test_quant_tables_are_the_clis();
	test_jfif_header();
	test_cli_conversion();
	test_full_range_as_is();
	test_timestamps_of_other_jobs();
	test_other_matrices();
	test_rgb();
	test_deterministic();
	image_encode_thread_done();
	return hftest_done();
}
