/*
 * transform: SPEC §4a's chains through libavfilter, laid out as ffmpeg 5.1's CLI lays out
 * `ffmpeg -i SRC -vf CHAIN` (fftools/ffmpeg_filter.c), because the graph's layout decides
 * format negotiation and so the pixels:
 *
 *   CHAIN's filters (parsed first, so `scale` takes the graph's scale_sws_opts)
 *   buffer -> autorotate filters -> CHAIN -> format=<encoder's pixel format> -> buffersink
 *
 * The last scale of the chain converts to the encoder's format in its one swscale call;
 * any other conversion is a scale the graph inserts itself with scale_sws_opts. Colour
 * tags are not buffer arguments in 5.1: scale and zscale read them off each frame.
 */
#include "decode/transform.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dlfcn.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavfilter/version.h>
#include <pthread.h>
#include <libavutil/cpu.h>
#include <libavutil/frame.h>
#include <libavutil/imgutils.h>
#include <libavutil/mathematics.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libavutil/pixfmt.h>

/*
 * libavfilter is loaded when the first graph is built, not linked: it and the libraries it
 * needs (speech synthesis, subtitles, OpenCL...) add about 11 MB to the resident size of
 * every daemon, and a mount that never transforms needs none of it. The headers still
 * type every call.
 */
#define AVF_FUNCS(X)                                                                    \
	X(avfilter_get_by_name) X(avfilter_graph_create_filter) X(avfilter_link)         \
	X(avfilter_graph_free) X(avfilter_graph_alloc) X(avfilter_graph_parse2)          \
	X(avfilter_graph_config) X(avfilter_inout_free) X(av_buffersrc_write_frame)     \
	X(av_buffersink_get_frame)

static struct {
#define AVF_FIELD(f) __typeof__(f) *f;
	AVF_FUNCS(AVF_FIELD)
#undef AVF_FIELD
} avf;
static pthread_once_t avf_once = PTHREAD_ONCE_INIT;
static char avf_error[256]; /* why it could not be loaded; "" once it is */

static void avf_load(void)
{
	const char *lib = "libavfilter.so." AV_STRINGIFY(LIBAVFILTER_VERSION_MAJOR);
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		snprintf(avf_error, sizeof(avf_error), "%s", dlerror());
		return;
	}
#define AVF_SYM(f)                                                                          \
	if (!(avf.f = (__typeof__(f) *)dlsym(h, #f))) {                                     \
		snprintf(avf_error, sizeof(avf_error), "%s has no %s", lib, #f);            \
		return;                                                                     \
	}
	AVF_FUNCS(AVF_SYM)
#undef AVF_SYM
}

/* 0 once libavfilter is loaded, or -ENOSYS with a sentence in why. */
int transform_available(char *why, size_t whylen)
{
	pthread_once(&avf_once, avf_load);
	if (!avf_error[0])
		return 0;
	if (why)
		snprintf(why, whylen, "transforms need libavfilter, which could not be loaded: %s",
			 avf_error);
	return -ENOSYS;
}

struct transform {
	AVFilterGraph *graph;
	AVFilterContext *src, *sink;
	struct tf_spec eff;
	enum source_orient orient;
	int out_fmt;
	int w, h, fmt; /* the frames the graph was built for */
	AVRational sar;
};

static const char *const tonemap_names[] = {
    [TF_TM_NONE] = "none",     [TF_TM_HABLE] = "hable", [TF_TM_REINHARD] = "reinhard",
    [TF_TM_MOBIUS] = "mobius", [TF_TM_CLIP] = "clip",
};

static bool is_hdr(const struct tf_input *in)
{
	return in->trc == AVCOL_TRC_SMPTE2084 || in->trc == AVCOL_TRC_ARIB_STD_B67;
}

static bool turns(enum source_orient o)
{
	return o == ORIENT_CLOCK || o == ORIENT_CCLOCK || o == ORIENT_CLOCK_FLIP ||
	       o == ORIENT_CCLOCK_FLIP;
}

static bool has_size(const struct tf_spec *s)
{
	return s->w > 0 || s->h > 0;
}

/* fit as the chain reads it: both sides without a fit is fill. */
static enum tf_fit fit_of(const struct tf_spec *s)
{
	if (s->w > 0 && s->h > 0)
		return s->fit == TF_FIT_NONE ? TF_FIT_FILL : s->fit;
	return TF_FIT_NONE;
}

/*
 * The scale's output (sw x sh) and the crop's (cw x ch) for an iw x ih input, as
 * libavfilter/scale_eval.c and vf_crop.c compute them: -1 sides by av_rescale (nearest),
 * force_original_aspect_ratio by min/max against the input's own ratio (never its SAR),
 * crop rounded down to whole chroma samples of a subsampled format (log2 hsub, vsub).
 */
static int chain_size(const struct tf_spec *s, int iw, int ih, int hsub, int vsub, int *sw, int *sh,
		      int *cw, int *ch)
{
	int64_t w = s->w > 0 ? s->w : -1, h = s->h > 0 ? s->h : -1, cropw, croph;
	enum tf_fit fit = fit_of(s);

	if (iw <= 0 || ih <= 0 || s->w < 0 || s->h < 0 || s->w > INT_MAX / 2 || s->h > INT_MAX / 2)
		return -EINVAL;
	if (w < 0 && h < 0) {
		w = iw;
		h = ih;
	}
	if (w < 0)
		w = av_rescale(h, iw, ih);
	if (h < 0)
		h = av_rescale(w, ih, iw);
	if (fit == TF_FIT_CONTAIN || fit == TF_FIT_COVER) {
		int64_t tw = av_rescale(h, iw, ih), th = av_rescale(w, ih, iw);

		w = fit == TF_FIT_CONTAIN ? FFMIN(tw, w) : FFMAX(tw, w);
		h = fit == TF_FIT_CONTAIN ? FFMIN(th, h) : FFMAX(th, h);
	}
	cropw = w;
	croph = h;
	if (fit == TF_FIT_COVER) {
		cropw = s->w & ~((1 << hsub) - 1);
		croph = s->h & ~((1 << vsub) - 1);
	}
	/* libav's own limit on a picture (av_image_check_size), without its log line. */
	if (w <= 0 || h <= 0 || cropw <= 0 || croph <= 0 || (w + 128) * (h + 128) >= INT_MAX / 8)
		return -EINVAL;
	*sw = (int)w;
	*sh = (int)h;
	*cw = (int)cropw;
	*ch = (int)croph;
	return 0;
}

static void oriented(const struct tf_input *in, int *w, int *h)
{
	*w = turns(in->orient) ? in->height : in->width;
	*h = turns(in->orient) ? in->width : in->height;
}

/* Appends one clause to note, joining clauses into one sentence. */
static void note_add(char *note, size_t notelen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void note_add(char *note, size_t notelen, const char *fmt, ...)
{
	size_t used = strnlen(note, notelen);
	va_list ap;

	if (notelen == 0 || used + 1 >= notelen)
		return;
	if (used > 0) {
		snprintf(note + used, notelen - used, "; ");
		used = strnlen(note, notelen);
	}
	va_start(ap, fmt);
	vsnprintf(note + used, notelen - used, fmt, ap);
	va_end(ap);
}

static const char *matrix_name(int m)
{
	const char *n = av_color_space_name((enum AVColorSpace)m);

	return n ? n : "unknown";
}

void tf_effective(const struct tf_spec *spec, const struct tf_input *in, struct tf_spec *eff,
		  char *note, size_t notelen)
{
	struct tf_spec s = *spec;
	int ow, oh, sw, sh, cw, ch;

	if (notelen > 0)
		note[0] = '\0';
	s.fit = fit_of(&s);
	if (s.tonemap != TF_TM_NONE) {
		if (!is_hdr(in)) {
			note_add(note, notelen,
				 "tonemap does not apply: the source is not PQ or HLG");
			s.tonemap = TF_TM_NONE;
		} else if (in->alpha) {
			note_add(
			    note, notelen,
			    "tonemap does not apply: the source has alpha, which it would drop");
			s.tonemap = TF_TM_NONE;
		}
	}
	if (s.bt2020) {
		s.bt2020 = false;
		if (is_hdr(in))
			note_add(note, notelen, "bt2020 does not apply: the source is HDR (%s)",
				 in->trc == AVCOL_TRC_SMPTE2084 ? "PQ" : "HLG");
		else if (in->depth != 8)
			note_add(note, notelen,
				 "bt2020 does not apply: the source is %d-bit, not 8-bit SDR",
				 in->depth);
		else if (in->matrix != AVCOL_SPC_BT709 && in->matrix != AVCOL_SPC_UNSPECIFIED)
			note_add(note, notelen,
				 "bt2020 does not apply: the source's matrix is %s, not BT.709 or "
				 "untagged",
				 matrix_name(in->matrix));
		else if (in->alpha)
			note_add(
			    note, notelen,
			    "bt2020 does not apply: the source has alpha, which it would drop");
		else
			s.bt2020 = true;
	}
	oriented(in, &ow, &oh);
	if (has_size(&s) && chain_size(&s, ow, oh, 0, 0, &sw, &sh, &cw, &ch) == 0 && sw == ow &&
	    sh == oh && cw == ow && ch == oh) {
		note_add(note, notelen, "the size does not apply: it is the source's own (%dx%d)",
			 ow, oh);
		s.w = s.h = 0;
		s.fit = TF_FIT_NONE;
	}
	*eff = s;
}

bool tf_is_identity(const struct tf_spec *eff)
{
	return !has_size(eff) && !eff->bt2020 && eff->tonemap == TF_TM_NONE;
}

int tf_output_fmt(const struct tf_spec *eff, const struct tf_input *in, int out_pix_fmt, int *w,
		  int *h, int *depth)
{
	const AVPixFmtDescriptor *d = av_pix_fmt_desc_get((enum AVPixelFormat)out_pix_fmt);
	int ow, oh, sw, sh, ret;

	if (!d || in->width <= 0 || in->height <= 0)
		return -EINVAL;
	oriented(in, &ow, &oh);
	if (has_size(eff)) {
		ret =
		    chain_size(eff, ow, oh, d->log2_chroma_w, d->log2_chroma_h, &sw, &sh, &ow, &oh);
		if (ret < 0)
			return ret;
	}
	*w = ow;
	*h = oh;
	*depth = eff->tonemap != TF_TM_NONE ? 8 : in->depth;
	return 0;
}

int tf_output(const struct tf_spec *eff, const struct tf_input *in, int *w, int *h, int *depth)
{
	return tf_output_fmt(eff, in, AV_PIX_FMT_RGB24, w, h, depth);
}

static int cli_threads(void);

int tf_canon(const struct tf_spec *eff, char *buf, size_t len)
{
	char size[64] = "", slices[24] = "";
	int n;

	switch (fit_of(eff)) {
	case TF_FIT_NONE:
		if (eff->w > 0)
			snprintf(size, sizeof(size), "scale=%d:-1", eff->w);
		else if (eff->h > 0)
			snprintf(size, sizeof(size), "scale=-1:%d", eff->h);
		break;
	case TF_FIT_FILL:
		snprintf(size, sizeof(size), "scale=%d:%d", eff->w, eff->h);
		break;
	case TF_FIT_CONTAIN:
		snprintf(size, sizeof(size), "scale=%d:%d:contain", eff->w, eff->h);
		break;
	case TF_FIT_COVER:
		snprintf(size, sizeof(size), "scale=%d:%d:cover", eff->w, eff->h);
		break;
	}
	/*
	 * zscale's slices change pixels where they meet, and the CLI slices as many ways as
	 * it has threads (cores + 1): a tone map made on a machine with other cores is other
	 * bytes, so a store shared by machines keys them apart.
	 */
	if (eff->tonemap != TF_TM_NONE)
		snprintf(slices, sizeof(slices), ":slices=%d", cli_threads());
	n = snprintf(buf, len, "%s%s%s%s%s%s", eff->bt2020 ? "bt2020" : "",
		     eff->tonemap != TF_TM_NONE ? "tonemap=" : "",
		     eff->tonemap != TF_TM_NONE ? tonemap_names[eff->tonemap] : "", slices,
		     size[0] && (eff->bt2020 || eff->tonemap != TF_TM_NONE) ? ";" : "", size);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return n;
}

/* The §4a chain as the CLI's -vf text; numbers and names come from eff's enums only. */
static int chain_text(const struct tf_spec *eff, char *buf, size_t len)
{
	size_t used = 0;
	int n = 0;

	buf[0] = '\0';
	if (eff->tonemap > TF_TM_NONE && eff->tonemap <= TF_TM_CLIP)
		n = snprintf(
		    buf, len,
		    "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,"
		    "tonemap=tonemap=%s:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p",
		    tonemap_names[eff->tonemap]);
	else if (eff->bt2020)
		n = snprintf(buf, len, "colorspace=all=bt2020:iall=bt709:range=tv");
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	used = (size_t)n;
	if (has_size(eff)) {
		const char *sep = used ? "," : "";

		switch (fit_of(eff)) {
		case TF_FIT_NONE:
			n = eff->w > 0
				? snprintf(buf + used, len - used, "%sscale=%d:-1", sep, eff->w)
				: snprintf(buf + used, len - used, "%sscale=-1:%d", sep, eff->h);
			break;
		case TF_FIT_FILL:
			n = snprintf(buf + used, len - used, "%sscale=%d:%d", sep, eff->w, eff->h);
			break;
		case TF_FIT_CONTAIN:
			n = snprintf(buf + used, len - used,
				     "%sscale=%d:%d:force_original_aspect_ratio=decrease", sep,
				     eff->w, eff->h);
			break;
		case TF_FIT_COVER:
			n = snprintf(
			    buf + used, len - used,
			    "%sscale=%d:%d:force_original_aspect_ratio=increase,crop=%d:%d", sep,
			    eff->w, eff->h, eff->w, eff->h);
			break;
		}
		if (n < 0 || (size_t)n >= len - used)
			return -ENAMETOOLONG;
		used += (size_t)n;
	}
	if (used == 0 && (size_t)snprintf(buf, len, "null") >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* libav's codes that are not errnos become EIO (EINVAL for options, ENOSYS for filters). */
static int errno_of(int averr)
{
	if (averr == AVERROR_FILTER_NOT_FOUND || averr == AVERROR_OPTION_NOT_FOUND)
		return -ENOSYS;
	if (averr == AVERROR_EOF)
		return -ENODATA;
	if (averr < 0 && averr > -4096)
		return averr;
	return -EIO;
}

static int add_filter(AVFilterGraph *g, AVFilterContext **last, const char *name, const char *args)
{
	const AVFilter *f = avf.avfilter_get_by_name(name);
	AVFilterContext *ctx;
	int ret;

	if (!f)
		return AVERROR_FILTER_NOT_FOUND;
	ret = avf.avfilter_graph_create_filter(&ctx, f, name, args, NULL, g);
	if (ret < 0)
		return ret;
	ret = avf.avfilter_link(*last, 0, ctx, 0);
	if (ret < 0)
		return ret;
	*last = ctx;
	return 0;
}

/* What ffmpeg 5.1's autorotate inserts for each orientation source.c reports. */
static int add_rotation(AVFilterGraph *g, AVFilterContext **last, enum source_orient o)
{
	int ret;

	switch (o) {
	case ORIENT_NONE:
		return 0;
	case ORIENT_CLOCK:
		return add_filter(g, last, "transpose", "clock");
	case ORIENT_CCLOCK:
		return add_filter(g, last, "transpose", "cclock");
	case ORIENT_CLOCK_FLIP:
		return add_filter(g, last, "transpose", "clock_flip");
	case ORIENT_CCLOCK_FLIP:
		return add_filter(g, last, "transpose", "cclock_flip");
	case ORIENT_HFLIP:
		return add_filter(g, last, "hflip", NULL);
	case ORIENT_VFLIP:
		return add_filter(g, last, "vflip", NULL);
	case ORIENT_ROT180:
		ret = add_filter(g, last, "hflip", NULL);
		return ret < 0 ? ret : add_filter(g, last, "vflip", NULL);
	}
	return AVERROR(EINVAL);
}

/*
 * The threads the ffmpeg CLI gives a filter graph by default (libavutil's slicethread:
 * one more than the cores when there are several), hence its filters' slice counts.
 */
static int cli_threads(void)
{
	int cpus = av_cpu_count();

	return cpus > 1 ? cpus + 1 : 1;
}

/* The graph's executor: every slice in turn on the calling thread. */
static int run_serially(AVFilterContext *ctx, avfilter_action_func *func, void *arg, int *ret,
			int nb_jobs)
{
	for (int i = 0; i < nb_jobs; i++) {
		int r = func(ctx, arg, i, nb_jobs);

		if (ret)
			ret[i] = r;
	}
	return 0;
}

static void graph_free(struct transform *t)
{
	avf.avfilter_graph_free(&t->graph);
	t->src = t->sink = NULL;
	t->w = t->h = 0; /* the next frame builds it again */
}

/* Builds t->graph for frames like f; on failure what names the step and returns < 0. */
static int graph_build(struct transform *t, const AVFrame *f, const char **what)
{
	AVFilterInOut *ins = NULL, *outs = NULL;
	AVFilterContext *last, *fmt;
	const char *fmt_name = av_get_pix_fmt_name((enum AVPixelFormat)t->out_fmt);
	AVRational sar = f->sample_aspect_ratio;
	char chain[512], args[256];
	int ret;

	*what = "allocating the filter graph";
	t->graph = avf.avfilter_graph_alloc();
	if (!t->graph)
		return AVERROR(ENOMEM);
	/*
	 * The graph runs on its caller's thread only (callers run several at once), yet
	 * filters cut pictures into as many slices as the CLI's would: zscale's slices
	 * change pixels at their edges. threads=1 keeps swscale from starting its own.
	 */
	t->graph->nb_threads = cli_threads();
	t->graph->execute = run_serially;
	ret = av_opt_set(t->graph, "scale_sws_opts", "flags=bicubic:threads=1", 0);
	if (ret < 0)
		goto out_free_graph;

	*what = "parsing the transform chain";
	ret = chain_text(&t->eff, chain, sizeof(chain));
	if (ret < 0)
		goto out_free_graph;
	ret = avf.avfilter_graph_parse2(t->graph, chain, &ins, &outs);
	if (ret < 0)
		goto out_free_inout;
	if (!ins || ins->next || !outs || outs->next) {
		ret = AVERROR(EINVAL);
		goto out_free_inout;
	}

	*what = "creating the buffer source";
	if (!sar.den)
		sar = (AVRational){0, 1};
	snprintf(args, sizeof(args),
		 "video_size=%dx%d:pix_fmt=%d:time_base=1/90000:pixel_aspect=%d/%d", f->width,
		 f->height, f->format, sar.num, sar.den);
	ret = avf.avfilter_graph_create_filter(&t->src, avf.avfilter_get_by_name("buffer"), "in", args,
					   NULL, t->graph);
	if (ret < 0)
		goto out_free_inout;
	last = t->src;
	*what = "adding the rotation";
	ret = add_rotation(t->graph, &last, t->orient);
	if (ret < 0)
		goto out_free_inout;
	ret = avf.avfilter_link(last, 0, ins->filter_ctx, ins->pad_idx);
	if (ret < 0)
		goto out_free_inout;

	*what = "creating the buffer sink";
	if (!fmt_name) {
		ret = AVERROR(EINVAL);
		goto out_free_inout;
	}
	ret = avf.avfilter_graph_create_filter(&t->sink, avf.avfilter_get_by_name("buffersink"), "out",
					   NULL, NULL, t->graph);
	if (ret < 0)
		goto out_free_inout;
	ret = avf.avfilter_graph_create_filter(&fmt, avf.avfilter_get_by_name("format"), "format", fmt_name,
					   NULL, t->graph);
	if (ret < 0)
		goto out_free_inout;
	if ((ret = avf.avfilter_link(outs->filter_ctx, outs->pad_idx, fmt, 0)) < 0 ||
	    (ret = avf.avfilter_link(fmt, 0, t->sink, 0)) < 0)
		goto out_free_inout;

	*what = "configuring the filter graph";
	ret = avf.avfilter_graph_config(t->graph, NULL);
	if (ret < 0)
		goto out_free_inout;
	t->w = f->width;
	t->h = f->height;
	t->fmt = f->format;
	t->sar = f->sample_aspect_ratio;

out_free_inout:
	avf.avfilter_inout_free(&ins);
	avf.avfilter_inout_free(&outs);
out_free_graph:
	if (ret < 0)
		graph_free(t);
	return ret;
}

int transform_new(const struct tf_spec *eff, enum source_orient orient, const struct AVFrame *first,
		  int out_pix_fmt, struct transform **out, char *why, size_t whylen)
{
	struct transform *t;
	const char *what = "";
	char err[AV_ERROR_MAX_STRING_SIZE];
	int ret, fw, fh, sw, sh, cw, ch;

	*out = NULL;
	if (whylen > 0)
		why[0] = '\0';
	if ((unsigned)orient > ORIENT_ROT180 || (unsigned)eff->tonemap > TF_TM_CLIP ||
	    (unsigned)eff->fit > TF_FIT_COVER || eff->w < 0 || eff->h < 0 || first->width <= 0 ||
	    first->height <= 0 || !av_pix_fmt_desc_get((enum AVPixelFormat)first->format) ||
	    !av_pix_fmt_desc_get((enum AVPixelFormat)out_pix_fmt)) {
		snprintf(why, whylen, "the transform was asked for with invalid arguments");
		return -EINVAL;
	}
	ret = transform_available(why, whylen);
	if (ret < 0)
		return ret;
	fw = turns(orient) ? first->height : first->width;
	fh = turns(orient) ? first->width : first->height;
	if (has_size(eff) && chain_size(eff, fw, fh, 0, 0, &sw, &sh, &cw, &ch) < 0) {
		snprintf(why, whylen,
			 "the transform gives no image for %dx%d frames: a side rounds to 0 or the "
			 "image is too large",
			 fw, fh);
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(why, whylen, "out of memory for the transform");
		return -ENOMEM;
	}
	t->eff = *eff;
	t->orient = orient;
	t->out_fmt = out_pix_fmt;
	ret = graph_build(t, first, &what);
	if (ret < 0) {
		av_strerror(ret, err, sizeof(err));
		snprintf(why, whylen, "the transform failed %s for %dx%d %s frames: %s", what,
			 first->width, first->height,
			 av_get_pix_fmt_name((enum AVPixelFormat)first->format), err);
		free(t);
		return errno_of(ret);
	}
	*out = t;
	return 0;
}

int transform_run(struct transform *t, const struct AVFrame *in, struct AVFrame *out)
{
	const char *what;
	int ret;

	av_frame_unref(out);
	if (in->width != t->w || in->height != t->h || in->format != t->fmt ||
	    av_cmp_q(in->sample_aspect_ratio, t->sar) != 0) {
		graph_free(t);
		ret = graph_build(t, in, &what);
		if (ret < 0)
			return errno_of(ret);
	}
	ret = avf.av_buffersrc_write_frame(t->src, in);
	if (ret < 0)
		return errno_of(ret);
	ret = avf.av_buffersink_get_frame(t->sink, out);
	/* Every filter of the chains gives one frame per frame; none is a bug here. */
	if (ret == AVERROR(EAGAIN))
		return -EIO;
	return ret < 0 ? errno_of(ret) : 0;
}

void transform_free(struct transform **t)
{
	if (!t || !*t)
		return;
	graph_free(*t);
	free(*t);
	*t = NULL;
}
