/*
 * Frame index from demuxed packets. Timestamps are shifted by nothing: origin records
 * the container start time so that slot arithmetic measures time the way the ffmpeg
 * CLI does (it subtracts the input's start_time unless -copyts).
 */
#include "decode/source.h"

#include "decode/input_i.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/parseutils.h>
#include <libavutil/pixdesc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pkt_entry {
	int64_t pts;
	int64_t dur;
	uint32_t seq; /* demux order, keeps the sort stable */
	uint8_t key;
};

const char *source_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* The orientation the ffmpeg CLI's autorotate would apply (fftools get_rotation()). */
static enum source_orient orient_of(const int32_t *m)
{
	double theta;

	if (!m)
		return ORIENT_NONE;
	theta = -round(av_display_rotation_get(m));
	theta -= 360 * floor(theta / 360 + 0.9 / 360);
	if (fabs(theta - 90) < 1.0)
		return m[3] > 0 ? ORIENT_CCLOCK_FLIP : ORIENT_CLOCK;
	if (fabs(theta - 180) < 1.0) {
		if (m[0] < 0 && m[4] < 0)
			return ORIENT_ROT180;
		if (m[0] < 0)
			return ORIENT_HFLIP;
		if (m[4] < 0)
			return ORIENT_VFLIP;
		return ORIENT_NONE;
	}
	if (fabs(theta - 270) < 1.0)
		return m[3] < 0 ? ORIENT_CLOCK_FLIP : ORIENT_CCLOCK;
	if (fabs(theta) < 1.0 && m[4] < 0)
		return ORIENT_VFLIP;
	/* Arbitrary angles would need the CLI's rotate filter; shown unrotated. */
	return ORIENT_NONE;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct pkt_entry *x = a, *y = b;
	if (x->pts != y->pts)
		return x->pts < y->pts ? -1 : 1;
	return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

static bool has_vpx_alpha(const AVStream *st)
{
	const AVDictionaryEntry *e = av_dict_get(st->metadata, "alpha_mode", NULL, 0);
	return e && strcmp(e->value, "1") == 0 &&
	       (st->codecpar->codec_id == AV_CODEC_ID_VP9 || st->codecpar->codec_id == AV_CODEC_ID_VP8);
}

static int pick_stream(AVFormatContext *fmt)
{
	int best = -1;
	int64_t best_area = -1;

	for (unsigned i = 0; i < fmt->nb_streams; i++) {
		const AVStream *st = fmt->streams[i];
		int64_t area;
		if (st->codecpar->codec_type != AVMEDIA_TYPE_VIDEO)
			continue;
		if (st->disposition & AV_DISPOSITION_ATTACHED_PIC)
			continue;
		area = (int64_t)st->codecpar->width * st->codecpar->height;
		if (st->disposition & AV_DISPOSITION_DEFAULT)
			area += INT64_C(1) << 40;
		if (area > best_area) {
			best_area = area;
			best = (int)i;
		}
	}
	return best;
}

static int describe_stream(AVFormatContext *fmt, int si, struct source_index *idx, char *err,
			   size_t errlen, const char *name)
{
	AVStream *st = fmt->streams[si];
	const AVCodecParameters *par = st->codecpar;
	const AVCodec *dec = NULL;
	const AVPixFmtDescriptor *desc;
	enum AVPixelFormat pixfmt = par->format;
	int w = par->width, h = par->height;

	if (has_vpx_alpha(st)) {
		dec = avcodec_find_decoder_by_name(par->codec_id == AV_CODEC_ID_VP9 ? "libvpx-vp9"
										 : "libvpx");
		if (dec) {
			idx->alpha = true;
			pixfmt = AV_PIX_FMT_YUVA420P;
		}
	}
	if (!dec)
		dec = avcodec_find_decoder(par->codec_id);
	if (!dec) {
		snprintf(err, errlen, "%s uses a video codec this build cannot decode (%s)", name,
			 avcodec_get_name(par->codec_id));
		return -ENOTSUP;
	}
	snprintf(idx->codec, sizeof(idx->codec), "%s", dec->name);
	if (w <= 0 || h <= 0 || pixfmt == AV_PIX_FMT_NONE) {
		snprintf(err, errlen, "%s has a video stream whose picture size or format cannot be determined",
			 name);
		return -EIO;
	}
	desc = av_pix_fmt_desc_get(pixfmt);
	if (!desc) {
		snprintf(err, errlen, "%s has an unknown pixel format", name);
		return -EIO;
	}
	if (desc->flags & AV_PIX_FMT_FLAG_ALPHA)
		idx->alpha = true;
	idx->depth = desc->comp[0].depth;
	idx->orient = orient_of((const int32_t *)av_stream_get_side_data(
		st, AV_PKT_DATA_DISPLAYMATRIX, NULL));
	switch (idx->orient) {
	case ORIENT_CLOCK:
	case ORIENT_CCLOCK:
	case ORIENT_CLOCK_FLIP:
	case ORIENT_CCLOCK_FLIP:
		idx->width = h;
		idx->height = w;
		break;
	default:
		idx->width = w;
		idx->height = h;
	}
	return 0;
}

static int scan_packets(AVFormatContext *fmt, int si, struct pkt_entry **out, size_t *count,
			char *err, size_t errlen, const char *name)
{
	AVPacket *pkt = av_packet_alloc();
	struct pkt_entry *v = NULL;
	size_t n = 0, cap = 0;
	bool b_frames = fmt->streams[si]->codecpar->video_delay > 0;
	int ret = 0;

	if (!pkt)
		return -ENOMEM;
	for (;;) {
		int r = av_read_frame(fmt, pkt);
		if (r == AVERROR_EOF)
			break;
		if (r < 0) {
			/* A read error ends the index; decoding reports the damage per frame. */
			break;
		}
		if (pkt->stream_index == si && !(pkt->flags & AV_PKT_FLAG_DISCARD)) {
			int64_t pts = pkt->pts;
			if (pts == AV_NOPTS_VALUE && !b_frames)
				pts = pkt->dts;
			if (pts == AV_NOPTS_VALUE) {
				snprintf(err, errlen,
					 "%s has video packets without timestamps (a raw elementary stream?); remux it into a container such as MP4 or MKV",
					 name);
				ret = -ENOTSUP;
				av_packet_unref(pkt);
				goto out_free;
			}
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 1024;
				struct pkt_entry *nv = realloc(v, ncap * sizeof(*nv));
				if (!nv) {
					ret = -ENOMEM;
					av_packet_unref(pkt);
					goto out_free;
				}
				v = nv;
				cap = ncap;
			}
			v[n] = (struct pkt_entry){pts, pkt->duration, (uint32_t)n,
						  (pkt->flags & AV_PKT_FLAG_KEY) ? 1 : 0};
			n++;
		}
		av_packet_unref(pkt);
	}
	*out = v;
	*count = n;
	v = NULL;
out_free:
	free(v);
	av_packet_free(&pkt);
	return ret;
}

static int64_t frame_period_ticks(const AVStream *st, const struct pkt_entry *e, size_t n)
{
	AVRational fr = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
	if (n >= 2 && e[n - 1].pts > e[n - 2].pts)
		return e[n - 1].pts - e[n - 2].pts;
	if (fr.num > 0 && fr.den > 0) {
		int64_t t = av_rescale_q(1, av_inv_q(fr), st->time_base);
		if (t > 0)
			return t;
	}
	return 1;
}

/* Parses "HH:MM:SS.fraction" (the DURATION tag Matroska muxers write per track) to ticks. */
static int64_t tag_duration(const AVStream *st)
{
	const AVDictionaryEntry *e = av_dict_get(st->metadata, "DURATION", NULL, 0);
	int64_t us;
	if (!e || av_parse_time(&us, e->value, 1) < 0 || us <= 0)
		return AV_NOPTS_VALUE;
	return av_rescale_q(us, AV_TIME_BASE_Q, st->time_base);
}

/*
 * Where the container says the video ends, in ticks, or NOPTS when it does not say it
 * for this stream alone (a format duration also covers audio that may run longer).
 */
static int64_t declared_end(const AVFormatContext *fmt, const AVStream *st)
{
	int64_t start = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
	int64_t d = st->duration != AV_NOPTS_VALUE && st->duration > 0 ? st->duration : tag_duration(st);
	int64_t fstart;

	if (d != AV_NOPTS_VALUE)
		return start + d;
	if (fmt->nb_streams == 1 && fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0) {
		fstart = fmt->start_time != AV_NOPTS_VALUE ? fmt->start_time : 0;
		return av_rescale_q(fstart + fmt->duration, AV_TIME_BASE_Q, st->time_base);
	}
	return AV_NOPTS_VALUE;
}

int source_index_build(int fd, const char *path, struct source_index **out, char *err,
		       size_t errlen)
{
	AVFormatContext *fmt = NULL;
	struct source_index *idx = NULL;
	struct pkt_entry *e = NULL;
	const char *name = source_name(path);
	size_t n = 0;
	AVStream *st;
	int ret, si;

	*out = NULL;
	ret = input_open(fd, name, &fmt, err, errlen);
	if (ret < 0)
		return ret;
	ret = avformat_find_stream_info(fmt, NULL);
	if (ret < 0) {
		snprintf(err, errlen, "%s could not be probed as a video", name);
		ret = -EIO;
		goto out_close;
	}
	si = pick_stream(fmt);
	if (si < 0) {
		snprintf(err, errlen, "%s has no video stream", name);
		ret = -ENODATA;
		goto out_close;
	}
	idx = calloc(1, sizeof(*idx));
	if (!idx) {
		ret = -ENOMEM;
		goto out_close;
	}
	idx->stream = si;
	st = fmt->streams[si];
	ret = describe_stream(fmt, si, idx, err, errlen, name);
	if (ret < 0)
		goto out_close;
	for (unsigned i = 0; i < fmt->nb_streams; i++)
		if ((int)i != si)
			fmt->streams[i]->discard = AVDISCARD_ALL;

	ret = scan_packets(fmt, si, &e, &n, err, errlen, name);
	if (ret < 0)
		goto out_close;
	if (n == 0) {
		snprintf(err, errlen, "%s has a video stream with no frames", name);
		ret = -ENODATA;
		goto out_close;
	}
	qsort(e, n, sizeof(*e), cmp_entry);

	idx->tb = hf_q_reduce((struct hf_q){st->time_base.num, st->time_base.den});
	idx->origin = fmt->start_time != AV_NOPTS_VALUE
			      ? av_rescale_q(fmt->start_time, AV_TIME_BASE_Q, st->time_base)
			      : 0;
	idx->n = n;
	idx->pts = malloc(n * sizeof(*idx->pts));
	idx->key = malloc(n);
	if (!idx->pts || !idx->key) {
		ret = -ENOMEM;
		goto out_close;
	}
	for (size_t i = 0; i < n; i++) {
		idx->pts[i] = e[i].pts;
		idx->key[i] = e[i].key;
	}
	/* A stream whose first frame is not flagged still decodes from its start. */
	idx->key[0] = 1;
	{
		int64_t period = frame_period_ticks(st, e, n);
		int64_t decl = declared_end(fmt, st);
		idx->data_end = e[n - 1].pts + (e[n - 1].dur > 0 ? e[n - 1].dur : period);
		idx->end = idx->data_end;
		/* More than a frame missing at the end: the file was cut short. */
		if (decl != AV_NOPTS_VALUE && decl > idx->data_end + period)
			idx->end = decl;
	}
	*out = idx;
	idx = NULL;
	ret = 0;
out_close:
	free(e);
	source_index_free(&idx);
	input_close(&fmt);
	return ret;
}

void source_index_free(struct source_index **pidx)
{
	struct source_index *idx = pidx ? *pidx : NULL;
	if (!idx)
		return;
	free(idx->pts);
	free(idx->key);
	free(idx);
	*pidx = NULL;
}

struct slot_frames source_index_frames(const struct source_index *idx)
{
	return (struct slot_frames){idx->pts, idx->n, idx->end, idx->tb, idx->origin};
}

size_t source_index_keyframe_before(const struct source_index *idx, size_t i)
{
	if (i >= idx->n)
		i = idx->n - 1;
	while (i > 0 && !idx->key[i])
		i--;
	return i;
}

int64_t source_index_find(const struct source_index *idx, int64_t pts, size_t from)
{
	size_t lo = 0, hi = idx->n;

	if (from < idx->n && idx->pts[from] == pts)
		return (int64_t)from;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (idx->pts[mid] < pts)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < idx->n && idx->pts[lo] == pts) {
		while (lo < from && lo + 1 < idx->n && idx->pts[lo + 1] == pts)
			lo++;
		return (int64_t)lo;
	}
	return -1;
}

int64_t source_index_duration_ms(const struct source_index *idx)
{
	return av_rescale_q(idx->end - idx->origin, (AVRational){(int)idx->tb.num, (int)idx->tb.den},
			    (AVRational){1, 1000});
}

#define IDX_MAGIC "HFIDX\x02\x00\x00"

struct idx_header {
	char magic[8];
	uint32_t endian;
	int32_t stream;
	int64_t tb_num, tb_den, origin, end, data_end;
	uint64_t n;
	int32_t width, height, orient, depth, alpha;
	char codec[32];
};

int source_index_save(const struct source_index *idx, void **buf, size_t *len)
{
	struct idx_header h;
	size_t total = sizeof(h) + idx->n * (sizeof(int64_t) + 1);
	unsigned char *p = malloc(total);

	if (!p)
		return -ENOMEM;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, IDX_MAGIC, 8);
	h.endian = 0x01020304;
	h.stream = idx->stream;
	h.tb_num = idx->tb.num;
	h.tb_den = idx->tb.den;
	h.origin = idx->origin;
	h.end = idx->end;
	h.data_end = idx->data_end;
	h.n = idx->n;
	h.width = idx->width;
	h.height = idx->height;
	h.orient = idx->orient;
	h.depth = idx->depth;
	h.alpha = idx->alpha;
	memcpy(h.codec, idx->codec, sizeof(h.codec));
	memcpy(p, &h, sizeof(h));
	memcpy(p + sizeof(h), idx->pts, idx->n * sizeof(int64_t));
	memcpy(p + sizeof(h) + idx->n * sizeof(int64_t), idx->key, idx->n);
	*buf = p;
	*len = total;
	return 0;
}

int source_index_load(const void *buf, size_t len, struct source_index **out)
{
	struct idx_header h;
	struct source_index *idx;
	const unsigned char *p = buf;

	*out = NULL;
	if (len < sizeof(h))
		return -EINVAL;
	memcpy(&h, p, sizeof(h));
	if (memcmp(h.magic, IDX_MAGIC, 8) != 0 || h.endian != 0x01020304 || h.n == 0 ||
	    h.n > (len - sizeof(h)) / (sizeof(int64_t) + 1) ||
	    len != sizeof(h) + h.n * (sizeof(int64_t) + 1) || h.tb_num <= 0 || h.tb_den <= 0 ||
	    h.codec[sizeof(h.codec) - 1] != 0)
		return -EINVAL;
	idx = calloc(1, sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	idx->pts = malloc(h.n * sizeof(int64_t));
	idx->key = malloc(h.n);
	if (!idx->pts || !idx->key) {
		source_index_free(&idx);
		return -ENOMEM;
	}
	idx->stream = h.stream;
	idx->tb = (struct hf_q){h.tb_num, h.tb_den};
	idx->origin = h.origin;
	idx->end = h.end;
	idx->data_end = h.data_end;
	idx->n = h.n;
	idx->width = h.width;
	idx->height = h.height;
	idx->orient = (enum source_orient)h.orient;
	idx->depth = h.depth;
	idx->alpha = h.alpha != 0;
	memcpy(idx->codec, h.codec, sizeof(idx->codec));
	memcpy(idx->pts, p + sizeof(h), h.n * sizeof(int64_t));
	memcpy(idx->key, p + sizeof(h) + h.n * sizeof(int64_t), h.n);
	*out = idx;
	return 0;
}
