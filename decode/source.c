/*
 * Frame index from demuxed packets. Timestamps are shifted by nothing: origin records
 * the container start time so that slot arithmetic measures time the way the ffmpeg
 * CLI does (it subtracts the input's start_time unless -copyts).
 */
#include "decode/source.h"

#include "decode/input_i.h"

#include <errno.h>
#include <inttypes.h>
#include <libavcodec/avcodec.h>
#include <limits.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/parseutils.h>
#include <libavutil/pixdesc.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Videos up to this long (seconds, as the container says) are indexed whole. */
#define WHOLE_MAX_S 120
/*
 * ... and no bigger than this: 120 s at 34 Mbit/s. A bigger file (a high-bitrate
 * master, or a short video padded with `truncate`) is indexed by windows like a long one.
 */
#define WHOLE_MAX_BYTES ((int64_t)512 << 20)
/*
 * What one index may cost: bytes read (plus holes inside the file, served as zeros) of
 * INDEX_BASE_BYTES and INDEX_BYTES_PER_S for each second of the window (about 270 Mbit/s,
 * above any delivery codec), and INDEX_MAX_NS of time. Past it the index stops with an
 * error sentence rather than treating what was read as the end: a frame count cut by a
 * budget would be a lasting, wrong "truncated" verdict on a good video.
 */
#define INDEX_BASE_BYTES ((uint64_t)1 << 30)
#define INDEX_BYTES_PER_S ((uint64_t)32 << 20)
#define INDEX_MAX_NS (60 * 1000000000ULL)
/*
 * Seeks before the window's first frame tried before reading from the start: 1, 3, 7 ...
 * 255 s before it. A seek without a keyframe index (MPEG-TS bisects on timestamps) lands
 * anywhere in a GOP; one that lands past the frame costs only the packets up to the next
 * keyframe, so long GOPs (10 s, screen recordings) are worth a few more tries.
 */
#define SEEK_ATTEMPTS 8

static _Atomic uint64_t max_pixels_setting;

void source_set_max_pixels(uint64_t pixels)
{
	atomic_store(&max_pixels_setting, pixels);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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
	if (w > 0 && h > 0 && atomic_load(&max_pixels_setting) &&
	    (uint64_t)w * (uint64_t)h > atomic_load(&max_pixels_setting)) {
		snprintf(err, errlen, "decode.max_pixels (%" PRIu64 ") is smaller than the picture of %s (%dx%d)",
			 atomic_load(&max_pixels_setting), name, w, h);
		return -E2BIG;
	}
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
	idx->primaries = par->color_primaries;
	idx->trc = par->color_trc;
	idx->matrix = par->color_space;
	idx->range = par->color_range;
	idx->sar_num = par->sample_aspect_ratio.num > 0 ? par->sample_aspect_ratio.num : 0;
	idx->sar_den = par->sample_aspect_ratio.num > 0 ? par->sample_aspect_ratio.den : 1;
	idx->chroma_w = desc->log2_chroma_w;
	idx->chroma_h = desc->log2_chroma_h;
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

/* Where a scan stands: the packets kept, and what it learnt of the stream's ends. */
struct scan {
	struct pkt_entry *v;
	size_t n, cap;
	bool at_end;       /* the stream ended (or a read failed) within the scan */
	int64_t complete;  /* every frame shown up to this tick was kept (when !at_end) */
	struct source_packets *pk; /* the packets kept, when asked for and within bounds */
};

void source_packets_free(struct source_packets **ppk)
{
	struct source_packets *pk = ppk ? *ppk : NULL;
	if (!pk)
		return;
	for (size_t i = 0; i < pk->n; i++)
		av_packet_free(&pk->p[i]);
	free(pk->p);
	avcodec_parameters_free(&pk->par);
	free(pk);
	*ppk = NULL;
}

uint64_t source_packets_bytes(const struct source_packets *pk)
{
	return pk ? pk->bytes : 0;
}

static void packets_clear(struct source_packets *pk)
{
	for (size_t i = 0; pk && i < pk->n; i++)
		av_packet_free(&pk->p[i]);
	if (pk) {
		pk->n = 0;
		pk->bytes = 0;
	}
}

/* Keeps a reference to pkt; past the bound (or out of memory) keeps none at all. */
static void packets_keep(struct scan *sc, const AVPacket *pkt)
{
	struct source_packets *pk = sc->pk;
	AVPacket *ref;

	if (!pk)
		return;
	if (pk->bytes + (uint64_t)pkt->size > pk->limit)
		goto drop;
	if (pk->n == pk->cap) {
		size_t ncap = pk->cap ? pk->cap * 2 : 1024;
		AVPacket **np = realloc(pk->p, ncap * sizeof(*np));
		if (!np)
			goto drop;
		pk->p = np;
		pk->cap = ncap;
	}
	ref = av_packet_clone(pkt);
	if (!ref)
		goto drop;
	pk->p[pk->n++] = ref;
	pk->bytes += (uint64_t)pkt->size;
	return;
drop:
	source_packets_free(&sc->pk);
}

static int scan_add(struct scan *sc, int64_t pts, int64_t dur, bool key)
{
	if (sc->n == sc->cap) {
		size_t ncap = sc->cap ? sc->cap * 2 : 1024;
		struct pkt_entry *nv = realloc(sc->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		sc->v = nv;
		sc->cap = ncap;
	}
	sc->v[sc->n] = (struct pkt_entry){pts, dur, (uint32_t)sc->n, key ? 1 : 0};
	sc->n++;
	return 0;
}

/*
 * Reordering bounds what is left to see: a stream that reorders at most D frames (H.264's
 * max_num_reorder_frames, libav's video_delay / has_b_frames) never decodes a frame after
 * D + 1 frames that are shown after it. So once D + 1 packets shown after `to` have been
 * demuxed, no packet still to come is shown at or before `to` (nor before the earliest of
 * them): the window's frames are all here, a few packets past its end, not a GOP past it.
 * D is the larger of what the codec parameters say and the deepest reordering seen so far
 * (the packets shown after one, among the last REORDER_LOOK), plus REORDER_MARGIN packets
 * in case a stream reorders deeper later than it has yet.
 */
#define REORDER_LOOK 34
#define REORDER_MARGIN 2
#define REORDER_MAX 16 /* H.264 and HEVC reorder at most 16 frames */

/*
 * Demuxes the stream's packets from where the demuxer stands (the keyframe a seek found)
 * until the reordering bound above says every frame shown up to `to` is here; or to the
 * first keyframe decoded after `to` (its dts is past it, so every packet after it is shown
 * after it too), or, without dts, to a keyframe shown after `to` and a reorder margin,
 * whichever comes first; to == INT64_MAX reads to the end. Packets before the first
 * keyframe are not kept. A first keyframe shown after key_by ends the scan at once (the
 * seek landed past the window's first frame: its caller seeks further back), and so does
 * a packet decoded after nokey_by before any keyframe (the last try read on from there).
 */
static int scan_packets(AVFormatContext *fmt, int si, int64_t key_by, int64_t nokey_by,
			int64_t to, struct scan *sc, char *err, size_t errlen, const char *name)
{
	AVPacket *pkt = av_packet_alloc();
	bool b_frames = fmt->streams[si]->codecpar->video_delay > 0;
	int after_key = -1; /* packets since a keyframe shown after `to` */
	int delay = fmt->streams[si]->codecpar->video_delay; /* reorder depth, as known so far */
	int64_t recent[REORDER_LOOK]; /* pts of the last packets, in demux order (ring) */
	size_t seen = 0;
	int above = 0;          /* packets shown after `to` */
	int64_t above_min = 0;  /* the earliest of them */
	int ret = 0;

	if (delay < 0)
		delay = 0;
	if (delay > REORDER_MAX)
		delay = REORDER_MAX;

	if (!pkt)
		return -ENOMEM;
	for (;;) {
		int r = av_read_frame(fmt, pkt);
		if (r < 0) {
			/* EOF, or a read error: it ends the index; decoding reports the damage */
			sc->at_end = true;
			/* after a read error the decode meets it itself, from the file */
			if (r != AVERROR_EOF)
				source_packets_free(&sc->pk);
			else if (sc->pk)
				sc->pk->at_end = true;
			break;
		}
		if (pkt->stream_index == si && !(pkt->flags & AV_PKT_FLAG_DISCARD)) {
			int64_t pts = pkt->pts;
			bool key = pkt->flags & AV_PKT_FLAG_KEY;
			if (pts == AV_NOPTS_VALUE && !b_frames)
				pts = pkt->dts;
			if (pts == AV_NOPTS_VALUE) {
				snprintf(err, errlen,
					 "%s has video packets without timestamps (a raw elementary stream?); remux it into a container such as MP4 or MKV",
					 name);
				ret = -ENOTSUP;
				av_packet_unref(pkt);
				break;
			}
			if (pkt->dts != AV_NOPTS_VALUE && pkt->dts > to && key && sc->n > 0) {
				sc->complete = pkt->dts - 1;
				av_packet_unref(pkt);
				break;
			}
			if (sc->n > 0 || key) {
				ret = scan_add(sc, pts, pkt->duration, key);
				if (ret < 0) {
					av_packet_unref(pkt);
					break;
				}
				packets_keep(sc, pkt);
				if (sc->n == 1 && pts > key_by) {
					av_packet_unref(pkt);
					break;
				}
			} else if (pts > nokey_by && pkt->dts != AV_NOPTS_VALUE && pkt->dts > nokey_by) {
				/* past the window's first frame without a keyframe: it is further back */
				av_packet_unref(pkt);
				break;
			}
			if (to != INT64_MAX) {
				/* how many of the last packets are shown after this one */
				int later = 0;
				size_t look = seen < REORDER_LOOK ? seen : REORDER_LOOK;
				for (size_t j = 0; j < look; j++)
					if (recent[(seen - 1 - j) % REORDER_LOOK] > pts)
						later++;
				if (later > delay)
					delay = later > REORDER_MAX ? REORDER_MAX : later;
				recent[seen % REORDER_LOOK] = pts;
				seen++;
				if (pts > to && sc->n > 0) {
					if (above == 0 || pts < above_min)
						above_min = pts;
					above++;
				}
				if (above > delay + REORDER_MARGIN) {
					sc->complete = above_min - 1;
					av_packet_unref(pkt);
					break;
				}
			}
			if (after_key >= 0)
				after_key++;
			else if (key && pts > to && sc->n > 1)
				after_key = 0;
			if (after_key > 16) {
				sc->complete = to;
				av_packet_unref(pkt);
				break;
			}
		}
		av_packet_unref(pkt);
	}
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

/*
 * avformat_find_stream_info with one thread per probe decoder and pictures bounded by
 * decode.max_pixels: probing a file that claims 16000x16000 allocates nothing of that size.
 */
static int probe(AVFormatContext *fmt)
{
	unsigned n = fmt->nb_streams;
	AVDictionary **opts = n ? calloc(n, sizeof(*opts)) : NULL;
	uint64_t mp = atomic_load(&max_pixels_setting);
	int ret;

	for (unsigned i = 0; opts && i < n; i++) {
		av_dict_set(&opts[i], "threads", "1", 0);
		if (mp && mp <= INT64_MAX)
			av_dict_set_int(&opts[i], "max_pixels", (int64_t)mp, 0);
	}
	ret = avformat_find_stream_info(fmt, opts);
	for (unsigned i = 0; opts && i < n; i++)
		av_dict_free(&opts[i]);
	free(opts);
	return ret;
}

/*
 * Opens the file within the budget (bytes, CLOCK_MONOTONIC deadline; 0: none), picks its
 * video stream and describes it; other streams are discarded.
 */
static int open_described(int fd, const char *name, AVFormatContext **pfmt,
			  struct source_index *idx, uint64_t budget, uint64_t deadline_ns,
			  char *err, size_t errlen)
{
	AVFormatContext *fmt = NULL;
	AVStream *st;
	int ret, si;

	ret = input_open(fd, name, &fmt, err, errlen);
	if (ret < 0)
		return ret;
	input_set_budget(fmt, budget, deadline_ns);
	/* what the container's header claims is refused before any picture is decoded */
	for (unsigned i = 0; i < fmt->nb_streams; i++) {
		const AVCodecParameters *par = fmt->streams[i]->codecpar;
		uint64_t mp = atomic_load(&max_pixels_setting);
		if (par->codec_type == AVMEDIA_TYPE_VIDEO && mp && par->width > 0 && par->height > 0 &&
		    (uint64_t)par->width * (uint64_t)par->height > mp) {
			snprintf(err, errlen,
				 "decode.max_pixels (%" PRIu64 ") is smaller than the picture of %s (%dx%d)",
				 mp, name, par->width, par->height);
			ret = -E2BIG;
			goto out_close;
		}
	}
	ret = probe(fmt);
	if (input_over_budget(fmt)) {
		snprintf(err, errlen, "%s could not be probed within hfmount's budget for one index", name);
		ret = -EFBIG;
		goto out_close;
	}
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
	idx->stream = si;
	st = fmt->streams[si];
	ret = describe_stream(fmt, si, idx, err, errlen, name);
	if (ret < 0)
		goto out_close;
	for (unsigned i = 0; i < fmt->nb_streams; i++)
		if ((int)i != si)
			fmt->streams[i]->discard = AVDISCARD_ALL;
	idx->tb = hf_q_reduce((struct hf_q){st->time_base.num, st->time_base.den});
	idx->origin = fmt->start_time != AV_NOPTS_VALUE
			      ? av_rescale_q(fmt->start_time, AV_TIME_BASE_Q, st->time_base)
			      : 0;
	*pfmt = fmt;
	return 0;
out_close:
	input_close(&fmt);
	return ret;
}

/*
 * origin + t / tb (+ 1/2 with half), rounded down (up with ceiling), in ticks, saturated;
 * t = tn/td seconds from time 0 (td > 0; both within 2^80 or so).
 */
static int64_t ticks_at128(const struct source_index *idx, __int128 tn, __int128 td, bool half,
			   bool ceiling)
{
	__int128 a, b, num, den, q;

	/* Beyond 2^127 the time is far past any stream's end: it saturates as the result does. */
	if (__builtin_mul_overflow(tn, (__int128)idx->tb.den * 2, &a) ||
	    __builtin_mul_overflow(td, (__int128)idx->tb.num, &b) ||
	    __builtin_add_overflow(a, half ? b : 0, &num) || __builtin_mul_overflow(b, 2, &den))
		return tn < 0 ? INT64_MIN / 2 : INT64_MAX / 2;
	if (den <= 0)
		return INT64_MAX;
	q = num / den;
	if (ceiling && num % den != 0 && num > 0)
		q++;
	q += idx->origin;
	return q > INT64_MAX / 2 ? INT64_MAX / 2 : q < INT64_MIN / 2 ? INT64_MIN / 2 : (int64_t)q;
}

static int64_t ticks_at(const struct source_index *idx, struct hf_q t, bool half, bool ceiling)
{
	return ticks_at128(idx, t.num, t.den, half, ceiling);
}

/* The window of segment [start, start + dur]: the last tick slot 0 looks at, and the
 * tick up to which every frame is needed. */
static void window_ticks(const struct source_index *idx, struct hf_q start, struct hf_q dur,
			 int64_t *from, int64_t *to)
{
	/* start + dur reduced: "0.99999999999999999+0.00000000000000001" is 1/1, not 10^34/10^34 */
	__int128 tn = (__int128)start.num * dur.den + (__int128)dur.num * start.den;
	__int128 td = (__int128)start.den * dur.den, g = tn < 0 ? -tn : tn, r = td;

	while (r != 0) {
		__int128 t = g % r;
		g = r;
		r = t;
	}
	*from = ticks_at(idx, start, true, false);
	*to = ticks_at128(idx, tn / g, td / g, true, true) + 1;
}

bool source_index_covers(const struct source_index *idx, struct hf_q start, struct hf_q dur)
{
	int64_t from, to;
	if (idx->n == 0)
		return false;
	window_ticks(idx, start, dur, &from, &to);
	return (idx->from_start || idx->pts[0] <= from) && (idx->at_end || idx->hi >= to);
}

int source_index_build(int fd, const char *path, struct hf_q start, struct hf_q dur,
		       struct source_index **out, uint64_t *bytes, char *err, size_t errlen)
{
	return source_index_build_keep(fd, path, start, dur, out, bytes, err, errlen, 0, NULL);
}

int source_index_build_keep(int fd, const char *path, struct hf_q start, struct hf_q dur,
			    struct source_index **out, uint64_t *bytes, char *err, size_t errlen,
			    uint64_t keep_bytes, struct source_packets **ppk)
{
	AVFormatContext *fmt = NULL;
	struct source_index *idx = NULL;
	struct scan sc = {0};
	const char *name = source_name(path);
	bool whole = dur.num < 0, from_start = false, no_seek = false;
	int64_t from_ticks, to_ticks, target, nokey_by, first_key = 0;
	uint64_t budget = INDEX_BASE_BYTES, spent = 0, deadline = mono_ns() + INDEX_MAX_NS;
	struct stat fst;
	AVStream *st;
	size_t keep = 0, n;
	int ret;

	*out = NULL;
	if (ppk)
		*ppk = NULL;
	idx = calloc(1, sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	/* a window's seconds, rounded up, buy bytes: whole, every second the container says */
	if (dur.num > 0 && dur.den > 0)
		budget += INDEX_BYTES_PER_S * (uint64_t)((dur.num + dur.den - 1) / dur.den);
	ret = open_described(fd, name, &fmt, idx, budget, deadline, err, errlen);
	if (ret < 0)
		goto out_free;
	st = fmt->streams[idx->stream];
	/*
	 * A short video is indexed whole at once: one index serves every segment of it (and
	 * shares one decode between them). Windows are for long ones.
	 */
	if (fmt->duration != AV_NOPTS_VALUE && fmt->duration <= WHOLE_MAX_S * AV_TIME_BASE &&
	    fstat(fd, &fst) == 0 && fst.st_size <= WHOLE_MAX_BYTES) {
		whole = true;
		start = (struct hf_q){0, 1};
	}
	if (whole && fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0)
		budget += INDEX_BYTES_PER_S * (uint64_t)(fmt->duration / AV_TIME_BASE + 1);
	input_set_budget(fmt, budget, deadline);
	/* The frame slot 0 shows is at or before from_ticks; every frame up to to_ticks is kept. */
	window_ticks(idx, start, whole ? (struct hf_q){0, 1} : dur, &from_ticks, &to_ticks);
	if (whole)
		to_ticks = INT64_MAX;
	/* a window's packets are kept for its decode; a whole file's serve many, from anywhere */
	if (ppk && !whole && keep_bytes > 0 && (sc.pk = calloc(1, sizeof(*sc.pk))))
		sc.pk->limit = keep_bytes;
	target = nokey_by = from_ticks;
	for (int attempt = 0;; attempt++) {
		int64_t first_ts = st->start_time != AV_NOPTS_VALUE ? st->start_time : idx->origin;
		/*
		 * The container's own index (MP4 sample tables, Matroska cues; a bisecting seek
		 * where a format has none) finds the keyframe at or before the window; a retry
		 * seeks again on the same demuxer. From the start after a first try (seeking
		 * could not go far enough back), the file is opened afresh.
		 */
		from_start = target <= first_ts || attempt >= SEEK_ATTEMPTS || no_seek;
		if (attempt > 0 && from_start) {
			spent += input_bytes_read(fmt);
			if (bytes)
				*bytes += input_bytes_read(fmt);
			input_close(&fmt);
			ret = open_described(fd, name, &fmt, idx, budget > spent ? budget - spent : 1,
					     deadline, err, errlen);
			if (ret < 0)
				goto out_free;
			st = fmt->streams[idx->stream];
		}
		if (!from_start && av_seek_frame(fmt, idx->stream, target, AVSEEK_FLAG_BACKWARD) < 0) {
			no_seek = true; /* no seeking here: read from the start */
			continue;
		}
		sc.n = 0;
		packets_clear(sc.pk);
		sc.at_end = false;
		sc.complete = 0;
		ret = scan_packets(fmt, idx->stream, from_start ? INT64_MAX : from_ticks,
				   from_start ? INT64_MAX : nokey_by, to_ticks, &sc, err, errlen, name);
		if (ret < 0)
			goto out_free;
		if (input_over_budget(fmt)) {
			snprintf(err, errlen,
				 "indexing %s stopped after %" PRIu64 " MiB and %" PRIu64 " s without reaching the end of the window (hfmount's budget for one index)",
				 name, (spent + input_bytes_read(fmt)) >> 20,
				 (uint64_t)((mono_ns() + INDEX_MAX_NS - deadline) / 1000000000u));
			ret = -EFBIG;
			goto out_free;
		}
		if (sc.n == 0 && !from_start && !sc.at_end && attempt + 1 < SEEK_ATTEMPTS) {
			/* no keyframe from where it landed to where the last try did: further back */
			nokey_by = target < nokey_by ? target : nokey_by;
			target = from_ticks - av_rescale_q(1LL << attempt, (AVRational){1, 1},
							   st->time_base);
			continue;
		}
		if (sc.n == 0 && !from_start) {
			no_seek = true;
			continue;
		}
		if (sc.n == 0)
			break;
		first_key = sc.v[0].pts;
		if (from_start || first_key <= from_ticks)
			break;
		/* the keyframe found is after the window's first frame: look further back */
		target = from_ticks - av_rescale_q(1LL << attempt, (AVRational){1, 1}, st->time_base);
	}
	if (sc.n == 0) {
		snprintf(err, errlen, "%s has a video stream with no frames", name);
		ret = -ENODATA;
		goto out_free;
	}
	qsort(sc.v, sc.n, sizeof(*sc.v), cmp_entry);
	/* Pictures shown before the keyframe decoded first belong to the GOP before it. */
	while (!from_start && keep < sc.n && sc.v[keep].pts < first_key)
		keep++;
	n = sc.n - keep;
	idx->n = n;
	idx->pts = malloc(n * sizeof(*idx->pts));
	idx->key = malloc(n);
	if (!idx->pts || !idx->key) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < n; i++) {
		idx->pts[i] = sc.v[keep + i].pts;
		idx->key[i] = sc.v[keep + i].key;
	}
	/* A stream whose first frame is not flagged still decodes from its start. */
	idx->key[0] = 1;
	idx->from_start = from_start;
	idx->at_end = sc.at_end;
	{
		struct pkt_entry *e = sc.v + keep;
		int64_t period = frame_period_ticks(st, e, n);
		int64_t last_end = e[n - 1].pts + (e[n - 1].dur > 0 ? e[n - 1].dur : period);
		idx->data_end = idx->end = last_end;
		idx->hi = INT64_MAX;
		if (sc.at_end) {
			int64_t decl = declared_end(fmt, st);
			/* More than a frame missing at the end: the file was cut short. */
			if (decl != AV_NOPTS_VALUE && decl > idx->data_end + period)
				idx->end = decl;
		} else {
			/* frames up to hi are all here; more follow, so the window's end is open */
			idx->hi = sc.complete > to_ticks ? sc.complete : to_ticks;
			if (idx->end <= idx->hi)
				idx->end = idx->data_end = idx->hi + 1;
		}
	}
	if (sc.pk && sc.pk->n > 0 && (sc.pk->par = avcodec_parameters_alloc()) &&
	    avcodec_parameters_copy(sc.pk->par, st->codecpar) >= 0) {
		sc.pk->tb = st->time_base;
		*ppk = sc.pk;
		sc.pk = NULL;
	}
	*out = idx;
	idx = NULL;
	ret = 0;
out_free:
	if (bytes && fmt)
		*bytes += input_bytes_read(fmt);
	source_packets_free(&sc.pk);
	free(sc.v);
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

#define IDX_MAGIC "HFIDX\x04\x00\x00"

struct idx_header {
	char magic[8];
	uint32_t endian;
	int32_t stream;
	int64_t tb_num, tb_den, origin, end, data_end, hi;
	uint64_t n;
	int32_t width, height, orient, depth, alpha, at_end, from_start, pad;
	int32_t primaries, trc, matrix, range, sar_num, sar_den, chroma_w, chroma_h;
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
	h.hi = idx->hi;
	h.at_end = idx->at_end;
	h.from_start = idx->from_start;
	h.n = idx->n;
	h.width = idx->width;
	h.height = idx->height;
	h.orient = idx->orient;
	h.depth = idx->depth;
	h.alpha = idx->alpha;
	h.primaries = idx->primaries;
	h.trc = idx->trc;
	h.matrix = idx->matrix;
	h.range = idx->range;
	h.sar_num = idx->sar_num;
	h.sar_den = idx->sar_den;
	h.chroma_w = idx->chroma_w;
	h.chroma_h = idx->chroma_h;
	memcpy(h.codec, idx->codec, sizeof(h.codec));
	memcpy(p, &h, sizeof(h));
	memcpy(p + sizeof(h), idx->pts, idx->n * sizeof(int64_t));
	memcpy(p + sizeof(h) + idx->n * sizeof(int64_t), idx->key, idx->n);
	*buf = p;
	*len = total;
	return 0;
}

/* What source_index_build can make; anything else in a stored index is damage. */
static bool index_valid(const struct source_index *idx)
{
	const int64_t lim = INT64_MAX / 4;

	if (idx->stream < 0 || idx->tb.num > INT_MAX || idx->tb.den > INT_MAX || idx->width <= 0 ||
	    idx->height <= 0 || (unsigned)idx->orient > ORIENT_ROT180 || idx->depth <= 0 ||
	    idx->depth > 32 || idx->codec[0] == '\0' || idx->key[0] != 1 || idx->primaries < 0 ||
	    idx->primaries > 255 || idx->trc < 0 || idx->trc > 255 || idx->matrix < 0 ||
	    idx->matrix > 255 || idx->range < 0 || idx->range > 2 || idx->sar_num < 0 ||
	    idx->sar_den <= 0 || idx->chroma_w < 0 || idx->chroma_w > 2 || idx->chroma_h < 0 ||
	    idx->chroma_h > 2)
		return false;
	for (size_t i = 0; i < idx->n; i++)
		if (idx->key[i] > 1 || (i > 0 && idx->pts[i] < idx->pts[i - 1]))
			return false;
	/* an open window holds its first frame and ends past hi (merges rely on both) */
	if (idx->at_end ? idx->hi != INT64_MAX : idx->hi < idx->pts[0] || idx->end <= idx->hi)
		return false;
	/* below 2^61: pts - origin and end - origin fit, and ticks_at saturates (2^62) past them */
	return idx->data_end > idx->pts[idx->n - 1] && idx->end >= idx->data_end &&
	       idx->origin >= -lim && idx->origin <= lim && idx->pts[0] >= -lim && idx->end <= lim;
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
	    h.codec[sizeof(h.codec) - 1] != 0 || (uint32_t)h.alpha > 1 || (uint32_t)h.at_end > 1 ||
	    (uint32_t)h.from_start > 1 || h.pad != 0)
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
	idx->hi = h.hi;
	idx->at_end = h.at_end != 0;
	idx->from_start = h.from_start != 0;
	idx->n = h.n;
	idx->width = h.width;
	idx->height = h.height;
	idx->orient = (enum source_orient)h.orient;
	idx->depth = h.depth;
	idx->alpha = h.alpha != 0;
	idx->primaries = h.primaries;
	idx->trc = h.trc;
	idx->matrix = h.matrix;
	idx->range = h.range;
	idx->sar_num = h.sar_num;
	idx->sar_den = h.sar_den;
	idx->chroma_w = h.chroma_w;
	idx->chroma_h = h.chroma_h;
	memcpy(idx->codec, h.codec, sizeof(idx->codec));
	memcpy(idx->pts, p + sizeof(h), h.n * sizeof(int64_t));
	memcpy(idx->key, p + sizeof(h) + h.n * sizeof(int64_t), h.n);
	if (!index_valid(idx)) {
		source_index_free(&idx);
		return -EINVAL;
	}
	*out = idx;
	return 0;
}

/* ---- known ranges ---- */

#define KNOWN_MAGIC "HFKNOWN1"

struct source_known {
	size_t n;
	struct source_index **r; /* ranges, by first frame, none overlapping another */
};

void source_known_free(struct source_known **pk)
{
	struct source_known *k = pk ? *pk : NULL;
	if (!k)
		return;
	for (size_t i = 0; i < k->n; i++)
		source_index_free(&k->r[i]);
	free(k->r);
	free(k);
	*pk = NULL;
}

/* A copy of idx's frames [a, b) and its description; window fields are the caller's. */
static struct source_index *index_slice(const struct source_index *idx, size_t a, size_t b)
{
	struct source_index *c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	*c = *idx;
	c->n = b - a;
	c->pts = malloc(c->n * sizeof(*c->pts));
	c->key = malloc(c->n);
	if (!c->pts || !c->key) {
		free(c->pts);
		free(c->key);
		free(c);
		return NULL;
	}
	memcpy(c->pts, idx->pts + a, c->n * sizeof(*c->pts));
	memcpy(c->key, idx->key + a, c->n);
	return c;
}

/* The union of two overlapping ranges, a starting no later than b. */
static struct source_index *index_union(const struct source_index *a, const struct source_index *b)
{
	struct source_index *u = malloc(sizeof(*u));
	size_t i = 0, j = 0, n = 0;

	if (!u)
		return NULL;
	*u = *a;
	u->pts = malloc((a->n + b->n) * sizeof(*u->pts));
	u->key = malloc(a->n + b->n);
	if (!u->pts || !u->key) {
		free(u->pts);
		free(u->key);
		free(u);
		return NULL;
	}
	/* frames of one timestamp: as many as the scan that saw more of them (both saw them) */
	while (i < a->n || j < b->n) {
		int64_t p = j == b->n || (i < a->n && a->pts[i] <= b->pts[j]) ? a->pts[i] : b->pts[j];
		size_t ca = 0, cb = 0;
		uint8_t key = 0;
		while (i + ca < a->n && a->pts[i + ca] == p)
			key |= a->key[i + ca++];
		while (j + cb < b->n && b->pts[j + cb] == p)
			key |= b->key[j + cb++];
		for (size_t c = 0; c < (ca > cb ? ca : cb); c++) {
			u->pts[n] = p;
			u->key[n++] = key;
		}
		i += ca;
		j += cb;
	}
	u->n = n;
	u->hi = a->hi > b->hi ? a->hi : b->hi;
	u->at_end = a->at_end || b->at_end;
	u->from_start = a->from_start;
	if (b->at_end) {
		u->end = b->end;
		u->data_end = b->data_end;
	} else if (!a->at_end) {
		u->end = a->end > b->end ? a->end : b->end;
		u->data_end = a->data_end > b->data_end ? a->data_end : b->data_end;
	}
	return u;
}

static bool same_stream(const struct source_index *a, const struct source_index *b)
{
	return a->stream == b->stream && a->tb.num == b->tb.num && a->tb.den == b->tb.den &&
	       a->origin == b->origin && a->width == b->width && a->height == b->height &&
	       strcmp(a->codec, b->codec) == 0;
}

int source_known_merge(struct source_known **pk, const struct source_index *idx)
{
	struct source_known *k = *pk;
	struct source_index *cur;
	size_t at;

	if (idx->n == 0)
		return -EINVAL;
	if (!k) {
		k = calloc(1, sizeof(*k));
		if (!k)
			return -ENOMEM;
		*pk = k;
	}
	if (k->n > 0 && !same_stream(k->r[0], idx)) {
		/* the file is not what the ranges describe any more: start over */
		for (size_t i = 0; i < k->n; i++)
			source_index_free(&k->r[i]);
		k->n = 0;
	}
	cur = index_slice(idx, 0, idx->n);
	if (!cur)
		return -ENOMEM;
	/* absorb every range that overlaps (or touches) the new one, then insert it in order */
	for (size_t i = 0; i < k->n;) {
		struct source_index *r = k->r[i], *a, *b, *u;
		bool overlap = r->pts[0] <= cur->hi && cur->pts[0] <= r->hi;
		if (!overlap) {
			i++;
			continue;
		}
		a = r->pts[0] <= cur->pts[0] ? r : cur;
		b = a == r ? cur : r;
		u = index_union(a, b);
		if (!u) {
			source_index_free(&cur);
			return -ENOMEM;
		}
		source_index_free(&cur);
		source_index_free(&k->r[i]);
		memmove(k->r + i, k->r + i + 1, (k->n - i - 1) * sizeof(*k->r));
		k->n--;
		cur = u;
		i = 0;
	}
	{
		struct source_index **nr = realloc(k->r, (k->n + 1) * sizeof(*nr));
		if (!nr) {
			source_index_free(&cur);
			return -ENOMEM;
		}
		k->r = nr;
	}
	for (at = 0; at < k->n && k->r[at]->pts[0] < cur->pts[0]; at++)
		;
	memmove(k->r + at + 1, k->r + at, (k->n - at) * sizeof(*k->r));
	k->r[at] = cur;
	k->n++;
	return 0;
}

int source_known_window(const struct source_known *k, struct hf_q start, struct hf_q dur,
			struct source_index **out)
{
	*out = NULL;
	for (size_t i = 0; k && i < k->n; i++) {
		const struct source_index *r = k->r[i];
		struct source_index *w;
		int64_t from, to;
		size_t a = 0, b;

		if (!source_index_covers(r, start, dur))
			continue;
		window_ticks(r, start, dur, &from, &to);
		/* from the last keyframe at or before the window's first frame */
		for (size_t j = 0; j < r->n && r->pts[j] <= from; j++)
			if (r->key[j])
				a = j;
		/* to the first frame past its end, included (it shows the window is open) */
		for (b = a; b < r->n && r->pts[b] <= to; b++)
			;
		if (b < r->n)
			b++;
		w = index_slice(r, a, b);
		if (!w)
			return -ENOMEM;
		w->from_start = r->from_start && a == 0;
		if (b < r->n || !r->at_end) {
			w->at_end = false;
			w->hi = to;
			w->end = w->data_end = (w->pts[w->n - 1] > to ? w->pts[w->n - 1] : to) + 1;
		}
		w->key[0] = 1;
		*out = w;
		return 0;
	}
	return -ENOENT;
}

int source_known_save(const struct source_known *k, void **buf, size_t *len)
{
	size_t total = 8 + sizeof(uint64_t), off;
	void **parts = calloc(k->n ? k->n : 1, sizeof(*parts));
	size_t *lens = calloc(k->n ? k->n : 1, sizeof(*lens));
	unsigned char *p = NULL;
	int ret = -ENOMEM;

	if (!parts || !lens)
		goto out_free;
	for (size_t i = 0; i < k->n; i++) {
		ret = source_index_save(k->r[i], &parts[i], &lens[i]);
		if (ret < 0)
			goto out_free;
		total += sizeof(uint64_t) + lens[i];
	}
	ret = -ENOMEM;
	p = malloc(total);
	if (!p)
		goto out_free;
	memcpy(p, KNOWN_MAGIC, 8);
	memcpy(p + 8, &(uint64_t){k->n}, sizeof(uint64_t));
	off = 8 + sizeof(uint64_t);
	for (size_t i = 0; i < k->n; i++) {
		memcpy(p + off, &(uint64_t){lens[i]}, sizeof(uint64_t));
		memcpy(p + off + sizeof(uint64_t), parts[i], lens[i]);
		off += sizeof(uint64_t) + lens[i];
	}
	*buf = p;
	*len = total;
	ret = 0;
out_free:
	for (size_t i = 0; parts && i < k->n; i++)
		free(parts[i]);
	free(parts);
	free(lens);
	return ret;
}

int source_known_load(const void *buf, size_t len, struct source_known **out)
{
	const unsigned char *p = buf;
	struct source_known *k;
	uint64_t n;
	size_t off = 8 + sizeof(uint64_t);
	int ret = -EINVAL;

	*out = NULL;
	if (len < off || memcmp(p, KNOWN_MAGIC, 8) != 0)
		return -EINVAL;
	memcpy(&n, p + 8, sizeof(n));
	if (n > (len - off) / sizeof(uint64_t))
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (!k || !(k->r = calloc(n ? n : 1, sizeof(*k->r)))) {
		free(k);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t l;
		if (len - off < sizeof(l))
			goto out_free;
		memcpy(&l, p + off, sizeof(l));
		off += sizeof(l);
		if (l > len - off)
			goto out_free;
		ret = source_index_load(p + off, (size_t)l, &k->r[k->n]);
		if (ret < 0)
			goto out_free;
		k->n++;
		off += (size_t)l;
		ret = -EINVAL;
		/* ranges in order, of one stream, none overlapping the one before */
		if (k->n > 1 && (!same_stream(k->r[0], k->r[k->n - 1]) ||
				 k->r[k->n - 2]->pts[0] >= k->r[k->n - 1]->pts[0] ||
				 k->r[k->n - 2]->hi >= k->r[k->n - 1]->pts[0]))
			goto out_free;
	}
	if (off != len)
		goto out_free;
	*out = k;
	return 0;
out_free:
	source_known_free(&k);
	return ret;
}

int source_guess_matrix(const struct source_index *idx, bool cli)
{
	bool turned = idx->orient == ORIENT_CLOCK || idx->orient == ORIENT_CCLOCK ||
		      idx->orient == ORIENT_CLOCK_FLIP || idx->orient == ORIENT_CCLOCK_FLIP;
	int coded_h = turned ? idx->width : idx->height;
	/* decoders of VP9 and AV1: vp9, libvpx-vp9, av1, libdav1d, libaom-av1 */
	bool vp9_av1 = strstr(idx->codec, "vp9") || strstr(idx->codec, "av1") ||
		       strstr(idx->codec, "dav1d");

	if (idx->matrix != AVCOL_SPC_UNSPECIFIED)
		return idx->matrix;
	return !cli && !vp9_av1 && coded_h >= 720 ? AVCOL_SPC_BT709 : AVCOL_SPC_SMPTE170M;
}
