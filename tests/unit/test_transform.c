/*
 * Unit tests for decode/transform: which transforms apply (tf_effective), the sizes the
 * ffmpeg 5.1 CLI gives (tf_output: the expected numbers are the CLI's own, from
 * `ffmpeg -i SRC -vf CHAIN f%05d.png` on clips of these sizes), the key text (tf_canon),
 * and graphs on synthetic frames: size, format, orientation and colour tags of the output.
 * Frames here are made up; pixel equality with the CLI on real clips belongs to the
 * integration tests, which decode the CLI's PNGs and compare.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/common.h>
#include <libavutil/cpu.h>
#include <libavutil/pixdesc.h>
#include <libavutil/pixfmt.h>

#include "decode/transform.h"
#include "hftest.h"

static struct tf_input input(int w, int h, enum source_orient o, int depth, int trc, int matrix)
{
	return (struct tf_input){
	    .width = w,
	    .height = h,
	    .sar_num = 1,
	    .sar_den = 1,
	    .orient = o,
	    .depth = depth,
	    .primaries = AVCOL_PRI_UNSPECIFIED,
	    .trc = trc,
	    .matrix = matrix,
	    .range = AVCOL_RANGE_MPEG,
	};
}

static struct tf_input sdr(int w, int h)
{
	return input(w, h, ORIENT_NONE, 8, AVCOL_TRC_UNSPECIFIED, AVCOL_SPC_UNSPECIFIED);
}

static struct tf_spec size(int w, int h, enum tf_fit fit)
{
	return (struct tf_spec){.w = w, .h = h, .fit = fit};
}

/* tf_output's size for spec (taken as effective) on in, or 0x0 with the error in *ret. */
static void out_size(struct tf_spec s, struct tf_input in, int fmt, int *w, int *h, int *ret)
{
	int depth;

	*w = *h = 0;
	*ret = tf_output_fmt(&s, &in, fmt, w, h, &depth);
}

#define CHECK_SIZE(spec, in, fmt, ew, eh)                                                          \
	do {                                                                                       \
		int w_, h_, r_;                                                                    \
		out_size(spec, in, fmt, &w_, &h_, &r_);                                            \
		CHECK_EQ_INT(r_, 0);                                                               \
		CHECK_EQ_INT(w_, ew);                                                              \
		CHECK_EQ_INT(h_, eh);                                                              \
	} while (0)

static void test_output_sizes(void)
{
	struct tf_input wide = sdr(640, 360), four3 = sdr(480, 360), odd = sdr(642, 362);
	struct tf_input rot90 = input(640, 360, ORIENT_CLOCK, 8, 2, 2);
	struct tf_input rot270 = input(480, 360, ORIENT_CCLOCK, 8, 2, 2);
	struct tf_input pal = sdr(720, 576);
	const int rgb = AV_PIX_FMT_RGB24, jpg = AV_PIX_FMT_YUVJ420P;
	struct tf_spec none = {0};
	int w, h, d, ret;

	/* The CLI's own numbers for these chains on clips of these sizes. */
	CHECK_SIZE(size(320, 240, TF_FIT_FILL), wide, rgb, 320, 240);
	CHECK_SIZE(size(320, 240, TF_FIT_NONE), wide, rgb, 320, 240);
	CHECK_SIZE(size(320, 240, TF_FIT_CONTAIN), wide, rgb, 320, 180);
	CHECK_SIZE(size(320, 240, TF_FIT_COVER), wide, rgb, 320, 240);
	CHECK_SIZE(size(321, 241, TF_FIT_COVER), wide, rgb, 321, 241);
	CHECK_SIZE(size(333, 0, TF_FIT_NONE), wide, rgb, 333, 187);
	CHECK_SIZE(size(0, 201, TF_FIT_NONE), wide, rgb, 357, 201);
	CHECK_SIZE(size(1000, 1000, TF_FIT_CONTAIN), wide, rgb, 1000, 563);
	CHECK_SIZE(size(1000, 1000, TF_FIT_COVER), wide, rgb, 1000, 1000);
	CHECK_SIZE(size(1281, 0, TF_FIT_NONE), wide, rgb, 1281, 721); /* beyond the source */
	CHECK_SIZE(size(320, 180, TF_FIT_CONTAIN), four3, rgb, 240, 180);
	CHECK_SIZE(size(301, 0, TF_FIT_NONE), four3, rgb, 301, 226);
	CHECK_SIZE(size(0, 199, TF_FIT_NONE), four3, rgb, 265, 199);
	CHECK_SIZE(size(321, 0, TF_FIT_NONE), odd, rgb, 321, 181);
	/* Orientation first: the chain sees the turned picture. */
	CHECK_SIZE(none, rot90, rgb, 360, 640);
	CHECK_SIZE(size(320, 240, TF_FIT_CONTAIN), rot90, rgb, 135, 240);
	CHECK_SIZE(size(200, 0, TF_FIT_NONE), rot90, rgb, 200, 356);
	CHECK_SIZE(size(0, 100, TF_FIT_NONE), rot270, rgb, 75, 100);
	CHECK_SIZE(size(200, 200, TF_FIT_CONTAIN), input(480, 360, ORIENT_ROT180, 8, 2, 2), rgb,
		   200, 150);
	/* The CLI's scale ignores the sample aspect ratio (720x576 at 16:15). */
	pal.sar_num = 16;
	pal.sar_den = 15;
	CHECK_SIZE(size(360, 0, TF_FIT_NONE), pal, rgb, 360, 288);
	CHECK_SIZE(size(400, 400, TF_FIT_CONTAIN), pal, rgb, 400, 320);
	/* A 4:2:0 output (JPEG): the cover crop rounds down to whole chroma samples. */
	CHECK_SIZE(size(321, 241, TF_FIT_COVER), wide, jpg, 320, 240);
	CHECK_SIZE(size(161, 161, TF_FIT_COVER), rot90, jpg, 160, 160);
	CHECK_SIZE(size(333, 0, TF_FIT_NONE), wide, jpg, 333, 187);
	CHECK_SIZE(none, odd, jpg, 642, 362);

	/* Depth: tone mapping gives 8 bits; everything else keeps the source's. */
	struct tf_input pq =
	    input(640, 360, ORIENT_NONE, 10, AVCOL_TRC_SMPTE2084, AVCOL_SPC_BT2020_NCL);
	struct tf_spec tm = {.w = 320, .tonemap = TF_TM_HABLE};
	CHECK_EQ_INT(tf_output(&tm, &pq, &w, &h, &d), 0);
	CHECK_EQ_INT(w, 320);
	CHECK_EQ_INT(h, 180);
	CHECK_EQ_INT(d, 8);
	tm.tonemap = TF_TM_NONE;
	CHECK_EQ_INT(tf_output(&tm, &pq, &w, &h, &d), 0);
	CHECK_EQ_INT(d, 10);

	/* Sides that round to nothing, or images larger than libav allows. */
	out_size(size(1, 0, TF_FIT_NONE), sdr(2000, 1), rgb, &w, &h, &ret);
	CHECK_EQ_INT(ret, -EINVAL);
	out_size(size(0, 1, TF_FIT_NONE), sdr(1, 2000), rgb, &w, &h, &ret);
	CHECK_EQ_INT(ret, -EINVAL);
	out_size(size(99999, 99999, TF_FIT_FILL), wide, rgb, &w, &h, &ret);
	CHECK_EQ_INT(ret, -EINVAL);
	out_size(size(16384, 16384, TF_FIT_FILL), wide, rgb, &w, &h, &ret); /* over libav's limit */
	CHECK_EQ_INT(ret, -EINVAL);
	CHECK_SIZE(size(16384, 9216, TF_FIT_FILL), wide, rgb, 16384, 9216);
	CHECK_SIZE(size(1, 0, TF_FIT_NONE), wide, rgb, 1, 1);
	out_size(none, sdr(0, 0), rgb, &w, &h, &ret);
	CHECK_EQ_INT(ret, -EINVAL);
	out_size(none, wide, -1, &w, &h, &ret);
	CHECK_EQ_INT(ret, -EINVAL);
}

static void test_effective(void)
{
	struct tf_input wide = sdr(640, 360);
	struct tf_input b709 = input(640, 360, ORIENT_NONE, 8, AVCOL_TRC_BT709, AVCOL_SPC_BT709);
	struct tf_input b601 =
	    input(640, 360, ORIENT_NONE, 8, AVCOL_TRC_SMPTE170M, AVCOL_SPC_SMPTE170M);
	struct tf_input ten = input(640, 360, ORIENT_NONE, 10, AVCOL_TRC_BT709, AVCOL_SPC_BT709);
	struct tf_input pq =
	    input(640, 360, ORIENT_NONE, 10, AVCOL_TRC_SMPTE2084, AVCOL_SPC_BT2020_NCL);
	struct tf_input hlg =
	    input(640, 360, ORIENT_NONE, 10, AVCOL_TRC_ARIB_STD_B67, AVCOL_SPC_BT2020_NCL);
	struct tf_input pq8 = input(640, 360, ORIENT_NONE, 8, AVCOL_TRC_SMPTE2084, AVCOL_SPC_BT709);
	struct tf_input rot = input(640, 360, ORIENT_CCLOCK_FLIP, 8, 2, 2);
	struct tf_spec s, e;
	char note[256];

	/* tonemap: PQ and HLG only. */
	s = (struct tf_spec){.tonemap = TF_TM_REINHARD};
	tf_effective(&s, &pq, &e, note, sizeof(note));
	CHECK_EQ_INT(e.tonemap, TF_TM_REINHARD);
	CHECK_EQ_STR(note, "");
	CHECK(!tf_is_identity(&e));
	tf_effective(&s, &hlg, &e, note, sizeof(note));
	CHECK_EQ_INT(e.tonemap, TF_TM_REINHARD);
	tf_effective(&s, &b709, &e, note, sizeof(note));
	CHECK_EQ_INT(e.tonemap, TF_TM_NONE);
	CHECK_EQ_STR(note, "tonemap does not apply: the source is not PQ or HLG");
	CHECK(tf_is_identity(&e));
	tf_effective(&s, &ten, &e, note, sizeof(note));
	CHECK_EQ_INT(e.tonemap, TF_TM_NONE);
	pq.alpha = true;
	tf_effective(&s, &pq, &e, note, sizeof(note));
	CHECK_EQ_INT(e.tonemap, TF_TM_NONE);
	CHECK(strstr(note, "alpha") != NULL);
	pq.alpha = false;

	/* bt2020: 8-bit SDR, BT.709 or untagged, no alpha. */
	s = (struct tf_spec){.bt2020 = true};
	tf_effective(&s, &b709, &e, note, sizeof(note));
	CHECK(e.bt2020);
	CHECK_EQ_STR(note, "");
	tf_effective(&s, &wide, &e, note, sizeof(note));
	CHECK(e.bt2020);
	tf_effective(&s, &b601, &e, note, sizeof(note));
	CHECK(!e.bt2020);
	CHECK_EQ_STR(
	    note,
	    "bt2020 does not apply: the source's matrix is smpte170m, not BT.709 or untagged");
	tf_effective(&s, &ten, &e, note, sizeof(note));
	CHECK(!e.bt2020);
	CHECK_EQ_STR(note, "bt2020 does not apply: the source is 10-bit, not 8-bit SDR");
	tf_effective(&s, &pq8, &e, note, sizeof(note));
	CHECK(!e.bt2020);
	CHECK_EQ_STR(note, "bt2020 does not apply: the source is HDR (PQ)");
	tf_effective(&s, &hlg, &e, note, sizeof(note));
	CHECK_EQ_STR(note, "bt2020 does not apply: the source is HDR (HLG)");
	b709.alpha = true;
	tf_effective(&s, &b709, &e, note, sizeof(note));
	CHECK(!e.bt2020);
	b709.alpha = false;

	/* A size that gives the oriented source's own is none; fit is read as the chain does. */
	s = size(640, 360, TF_FIT_NONE);
	tf_effective(&s, &wide, &e, note, sizeof(note));
	CHECK(tf_is_identity(&e));
	CHECK_EQ_INT(e.fit, TF_FIT_NONE);
	CHECK_EQ_STR(note, "the size does not apply: it is the source's own (640x360)");
	s = size(640, 0, TF_FIT_NONE);
	tf_effective(&s, &wide, &e, note, sizeof(note));
	CHECK(tf_is_identity(&e));
	s = size(0, 360, TF_FIT_NONE);
	tf_effective(&s, &wide, &e, note, sizeof(note));
	CHECK(tf_is_identity(&e));
	s = size(1280, 360, TF_FIT_CONTAIN); /* contain in a wider box: the source's size */
	tf_effective(&s, &wide, &e, note, sizeof(note));
	CHECK(tf_is_identity(&e));
	s = size(640, 720, TF_FIT_CONTAIN);
	tf_effective(&s, &wide, &e, note, sizeof(note));
	CHECK(tf_is_identity(&e));
	s = size(640, 300, TF_FIT_COVER); /* scales to its own size, then crops */
	tf_effective(&s, &wide, &e, note, sizeof(note));
	CHECK(!tf_is_identity(&e));
	CHECK_EQ_INT(e.w, 640);
	CHECK_EQ_INT(e.h, 300);
	CHECK_EQ_STR(note, "");
	s = size(640, 360, TF_FIT_NONE); /* both sides without fit is fill */
	tf_effective(&s, &rot, &e, note, sizeof(note));
	CHECK_EQ_INT(e.fit, TF_FIT_FILL);
	CHECK_EQ_INT(e.w, 640);
	s = size(360, 640, TF_FIT_FILL); /* the turned picture's own size */
	tf_effective(&s, &rot, &e, note, sizeof(note));
	CHECK(tf_is_identity(&e));
	CHECK_EQ_STR(note, "the size does not apply: it is the source's own (360x640)");
	s = size(0, 640, TF_FIT_NONE);
	tf_effective(&s, &rot, &e, note, sizeof(note));
	CHECK(tf_is_identity(&e));
	s = size(641, 0, TF_FIT_NONE);
	tf_effective(&s, &wide, &e, note, sizeof(note));
	CHECK_EQ_INT(e.w, 641);
	CHECK_EQ_INT(e.h, 0);
	CHECK_EQ_INT(e.fit, TF_FIT_NONE);

	/* Two things that do not apply: one sentence naming both; what applies stays. */
	s = (struct tf_spec){.w = 640, .h = 360, .bt2020 = true};
	tf_effective(&s, &ten, &e, note, sizeof(note));
	CHECK(tf_is_identity(&e));
	CHECK_EQ_STR(note, "bt2020 does not apply: the source is 10-bit, not 8-bit SDR; the size "
			   "does not apply: it is the source's own (640x360)");
	s = (struct tf_spec){.w = 320, .tonemap = TF_TM_HABLE};
	tf_effective(&s, &b709, &e, note, sizeof(note));
	CHECK_EQ_INT(e.w, 320);
	CHECK_EQ_INT(e.tonemap, TF_TM_NONE);
	/* A short note buffer is cut, never overrun; eff may be spec itself. */
	s = (struct tf_spec){.tonemap = TF_TM_HABLE};
	tf_effective(&s, &b709, &s, note, 8);
	CHECK_EQ_STR(note, "tonemap");
	CHECK(tf_is_identity(&s));
	tf_effective(&s, &b709, &e, NULL, 0);
}

static void test_canon(void)
{
	/* tone maps are keyed by the CLI's slice count, cores + 1 (see tf_canon) */
	int slices = av_cpu_count() > 1 ? av_cpu_count() + 1 : 1;
	char want[96];
	struct tf_spec s;
	char buf[64];

	s = (struct tf_spec){0};
	CHECK_EQ_INT(tf_canon(&s, buf, sizeof(buf)), 0);
	CHECK_EQ_STR(buf, "");
	s = size(960, 540, TF_FIT_FILL);
	CHECK_EQ_INT(tf_canon(&s, buf, sizeof(buf)), 13);
	CHECK_EQ_STR(buf, "scale=960:540");
	s = size(960, 540, TF_FIT_NONE); /* the same values spelled without fit */
	tf_canon(&s, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "scale=960:540");
	s = size(960, 540, TF_FIT_CONTAIN);
	tf_canon(&s, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "scale=960:540:contain");
	s = size(960, 540, TF_FIT_COVER);
	tf_canon(&s, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "scale=960:540:cover");
	s = size(960, 0, TF_FIT_NONE);
	tf_canon(&s, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "scale=960:-1");
	s = size(0, 540, TF_FIT_NONE);
	tf_canon(&s, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "scale=-1:540");
	s = (struct tf_spec){.bt2020 = true};
	tf_canon(&s, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "bt2020");
	s = (struct tf_spec){.w = 960, .h = 540, .fit = TF_FIT_COVER, .bt2020 = true};
	tf_canon(&s, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "bt2020;scale=960:540:cover");
	s = (struct tf_spec){.w = 960, .tonemap = TF_TM_HABLE};
	tf_canon(&s, buf, sizeof(buf));
	snprintf(want, sizeof(want), "tonemap=hable:slices=%d;scale=960:-1", slices);
	CHECK_EQ_STR(buf, want);
	s = (struct tf_spec){.tonemap = TF_TM_REINHARD};
	tf_canon(&s, buf, sizeof(buf));
	snprintf(want, sizeof(want), "tonemap=reinhard:slices=%d", slices);
	CHECK_EQ_STR(buf, want);
	s = (struct tf_spec){.tonemap = TF_TM_MOBIUS};
	tf_canon(&s, buf, sizeof(buf));
	snprintf(want, sizeof(want), "tonemap=mobius:slices=%d", slices);
	CHECK_EQ_STR(buf, want);
	s = (struct tf_spec){.h = 540, .tonemap = TF_TM_CLIP};
	tf_canon(&s, buf, sizeof(buf));
	snprintf(want, sizeof(want), "tonemap=clip:slices=%d;scale=-1:540", slices);
	CHECK_EQ_STR(buf, want);
	s = size(16384, 16384, TF_FIT_CONTAIN);
	CHECK_EQ_INT(tf_canon(&s, buf, 10), -ENAMETOOLONG);
	CHECK_EQ_INT(tf_canon(&s, buf, 25), -ENAMETOOLONG); /* 25 characters and the NUL */
	CHECK_EQ_INT(tf_canon(&s, buf, 26), 25);
	CHECK_EQ_STR(buf, "scale=16384:16384:contain");
}

/* A frame of w x h in fmt, every byte of plane p at (x, y) set to a function of them. */
static AVFrame *frame(int w, int h, enum AVPixelFormat fmt)
{
	const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fmt);
	AVFrame *f = av_frame_alloc();

	if (!f)
		return NULL;
	f->width = w;
	f->height = h;
	f->format = fmt;
	f->sample_aspect_ratio = (AVRational){1, 1};
	if (av_frame_get_buffer(f, 0) < 0) {
		av_frame_free(&f);
		return NULL;
	}
	for (int p = 0; p < 4 && f->data[p]; p++)
		for (int y = 0; y < ((p == 1 || p == 2) ? AV_CEIL_RSHIFT(h, d->log2_chroma_h) : h);
		     y++)
			for (int x = 0; x < f->linesize[p]; x++)
				f->data[p][y * f->linesize[p] + x] =
				    (uint8_t)(x * 7 + y * 13 + p * 50);
	return f;
}

static void test_rotation(void)
{
	AVFrame *in = frame(64, 36, AV_PIX_FMT_RGB24), *out = av_frame_alloc();
	struct tf_spec none = {0};
	struct transform *t = NULL;
	char why[256];
	bool same = true;

	if (!CHECK(in && out))
		goto out;
	/* Clockwise: the output's top row is the input's left column read bottom up. */
	if (!CHECK_EQ_INT(
		transform_new(&none, ORIENT_CLOCK, in, AV_PIX_FMT_RGB24, &t, why, sizeof(why)), 0))
		goto out;
	CHECK_EQ_INT(transform_run(t, in, out), 0);
	CHECK_EQ_INT(out->width, 36);
	CHECK_EQ_INT(out->height, 64);
	CHECK_EQ_INT(out->format, AV_PIX_FMT_RGB24);
	for (int y = 0; y < 64 && same; y++)
		for (int x = 0; x < 36 && same; x++)
			same = memcmp(out->data[0] + y * out->linesize[0] + x * 3,
				      in->data[0] + (35 - x) * in->linesize[0] + y * 3, 3) == 0;
	CHECK(same);
	transform_free(&t);
	CHECK(t == NULL);

	/* 180 degrees: hflip then vflip. */
	CHECK_EQ_INT(
	    transform_new(&none, ORIENT_ROT180, in, AV_PIX_FMT_RGB24, &t, why, sizeof(why)), 0);
	CHECK_EQ_INT(transform_run(t, in, out), 0);
	CHECK_EQ_INT(out->width, 64);
	CHECK_EQ_INT(out->height, 36);
	CHECK(memcmp(out->data[0], in->data[0] + 35 * in->linesize[0] + 63 * 3, 3) == 0);
	transform_free(&t);

	/* Transposed along the main diagonal: out(x, y) = in(y, x). */
	CHECK_EQ_INT(
	    transform_new(&none, ORIENT_CCLOCK_FLIP, in, AV_PIX_FMT_RGB24, &t, why, sizeof(why)),
	    0);
	CHECK_EQ_INT(transform_run(t, in, out), 0);
	CHECK_EQ_INT(out->width, 36);
	CHECK(memcmp(out->data[0] + 5 * out->linesize[0] + 7 * 3,
		     in->data[0] + 7 * in->linesize[0] + 5 * 3, 3) == 0);
out:
	transform_free(&t);
	av_frame_free(&in);
	av_frame_free(&out);
}

static void test_chains(void)
{
	AVFrame *in = frame(64, 36, AV_PIX_FMT_YUV420P),
		*hdr = frame(64, 36, AV_PIX_FMT_YUV420P10LE);
	AVFrame *big = frame(128, 72, AV_PIX_FMT_YUV420P), *out = av_frame_alloc(), *thin = NULL;
	struct transform *t = NULL;
	struct tf_spec s;
	char why[256];

	if (!CHECK(in && hdr && big && out))
		goto out;
	in->colorspace = AVCOL_SPC_BT709;
	in->color_primaries = AVCOL_PRI_BT709;
	in->color_trc = AVCOL_TRC_BT709;
	in->color_range = AVCOL_RANGE_MPEG;
	av_frame_copy_props(big, in);
	/* 10-bit samples must stay below 1024: the pattern's bytes make them so. */
	for (int p = 0; p < 3; p++)
		for (int y = 0; y < (p ? 18 : 36); y++)
			for (int x = 0; x < (p ? 32 : 64); x++)
				((uint16_t *)(hdr->data[p] + y * hdr->linesize[p]))[x] =
				    (uint16_t)(64 + (x * 11 + y * 5 + p * 100) % 876);
	hdr->colorspace = AVCOL_SPC_BT2020_NCL;
	hdr->color_primaries = AVCOL_PRI_BT2020;
	hdr->color_trc = AVCOL_TRC_SMPTE2084;
	hdr->color_range = AVCOL_RANGE_MPEG;

	/* w alone on RGB: the CLI's rounding, RGB tags, full range. */
	s = size(33, 0, TF_FIT_NONE);
	if (!CHECK_EQ_INT(
		transform_new(&s, ORIENT_NONE, in, AV_PIX_FMT_RGB24, &t, why, sizeof(why)), 0))
		goto out;
	CHECK_EQ_INT(transform_run(t, in, out), 0);
	CHECK_EQ_INT(out->width, 33);
	CHECK_EQ_INT(out->height, 19);
	CHECK_EQ_INT(out->format, AV_PIX_FMT_RGB24);
	CHECK_EQ_INT(out->colorspace, AVCOL_SPC_RGB);
	/* A frame of another size rebuilds the graph, as the CLI reconfigures. */
	CHECK_EQ_INT(transform_run(t, big, out), 0);
	CHECK_EQ_INT(out->width, 33);
	CHECK_EQ_INT(out->height, 19);
	transform_free(&t);

	/* cover into a 4:2:0 output rounds the crop down; colour tags travel. */
	s = size(31, 31, TF_FIT_COVER);
	CHECK_EQ_INT(
	    transform_new(&s, ORIENT_CLOCK, big, AV_PIX_FMT_YUVJ420P, &t, why, sizeof(why)), 0);
	CHECK_EQ_INT(transform_run(t, big, out), 0);
	CHECK_EQ_INT(out->width, 30);
	CHECK_EQ_INT(out->height, 30);
	CHECK_EQ_INT(out->format, AV_PIX_FMT_YUVJ420P);
	CHECK_EQ_INT(out->color_primaries, AVCOL_PRI_BT709);
	transform_free(&t);

	/* bt2020: the colorspace filter's tags, limited range, same size. */
	s = (struct tf_spec){.bt2020 = true};
	CHECK_EQ_INT(transform_new(&s, ORIENT_NONE, in, AV_PIX_FMT_YUV420P, &t, why, sizeof(why)),
		     0);
	CHECK_EQ_INT(transform_run(t, in, out), 0);
	CHECK_EQ_INT(out->width, 64);
	CHECK_EQ_INT(out->format, AV_PIX_FMT_YUV420P);
	CHECK_EQ_INT(out->colorspace, AVCOL_SPC_BT2020_NCL);
	CHECK_EQ_INT(out->color_primaries, AVCOL_PRI_BT2020);
	CHECK_EQ_INT(out->color_range, AVCOL_RANGE_MPEG);
	transform_free(&t);

	/* tonemap then scale: 8-bit BT.709 out of 10-bit PQ. */
	s = (struct tf_spec){.h = 18, .tonemap = TF_TM_MOBIUS};
	CHECK_EQ_INT(transform_new(&s, ORIENT_NONE, hdr, AV_PIX_FMT_RGB24, &t, why, sizeof(why)),
		     0);
	CHECK_EQ_INT(transform_run(t, hdr, out), 0);
	CHECK_EQ_INT(out->width, 32);
	CHECK_EQ_INT(out->height, 18);
	CHECK_EQ_INT(out->format, AV_PIX_FMT_RGB24);
	CHECK_EQ_INT(out->color_trc, AVCOL_TRC_BT709);
	CHECK_EQ_INT(out->color_primaries, AVCOL_PRI_BT709);
	/* Many frames through one graph: one out for one in, every time. */
	for (int i = 0; i < 5; i++)
		CHECK_EQ_INT(transform_run(t, hdr, out), 0);
	transform_free(&t);

	/* 10-bit kept deep: RGB48BE straight from the scale. */
	s = size(32, 18, TF_FIT_FILL);
	CHECK_EQ_INT(transform_new(&s, ORIENT_NONE, hdr, AV_PIX_FMT_RGB48BE, &t, why, sizeof(why)),
		     0);
	CHECK_EQ_INT(transform_run(t, hdr, out), 0);
	CHECK_EQ_INT(out->format, AV_PIX_FMT_RGB48BE);
	CHECK_EQ_INT(out->width, 32);
	CHECK_EQ_INT(out->color_trc, AVCOL_TRC_SMPTE2084);
	transform_free(&t);

	/* Refusals come with a sentence and leave nothing behind. */
	why[0] = '\0';
	CHECK_EQ_INT(transform_new(&s, ORIENT_NONE, in, -1, &t, why, sizeof(why)), -EINVAL);
	CHECK(t == NULL);
	CHECK(why[0] != '\0');
	s = size(1, 0, TF_FIT_NONE); /* 64x36 -> 1x1: fine */
	CHECK_EQ_INT(transform_new(&s, ORIENT_NONE, in, AV_PIX_FMT_RGB24, &t, why, sizeof(why)), 0);
	transform_free(&t);
	thin = frame(2000, 2, AV_PIX_FMT_YUV420P); /* w=1: the height rounds to 0 */
	if (CHECK(thin != NULL)) {
		s = size(1, 0, TF_FIT_NONE);
		why[0] = '\0';
		CHECK(transform_new(&s, ORIENT_NONE, thin, AV_PIX_FMT_RGB24, &t, why, sizeof(why)) <
		      0);
		CHECK(t == NULL);
		CHECK_EQ_STR(why,
			     "the transform gives no image for 2000x2 frames: a side rounds to 0 "
			     "or the image is too large");
	}
	av_frame_free(&thin);
	transform_free(NULL);
out:
	transform_free(&t);
	av_frame_free(&in);
	av_frame_free(&hdr);
	av_frame_free(&big);
	av_frame_free(&out);
}

int main(void)
{
	av_log_set_level(AV_LOG_ERROR); /* swscale's warnings on yuvj formats are expected */
	test_output_sizes();
	test_effective();
	test_canon();
	test_rotation();
	test_chains();
	return hftest_done();
}
