/*
 * Decode loop and encoder pool. The decode thread owns the demuxer and decoder; decoded
 * frames (references, no copies) go through a bounded queue to the encoder threads, each of
 * which converts with its own swscale context and encodes with its own encoder state.
 */
#include "decode/extract.h"

#include "decode/input_i.h"

#include <errno.h>
#include <inttypes.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct job_run;

struct task {
	struct job_run *run;
	AVFrame *frame;
	size_t index;
	uint64_t cost; /* bytes it holds in flight, charged to the memory budget */
};

struct job_run {
	const struct extract_job *job;
	enum AVPixelFormat dst_fmt;
	/*
	 * Frames go through a filter graph (a transform, or a JPEG's rotation): one per
	 * encoder thread, built from the first frame it gets, freed when the run ends.
	 */
	bool graph;
	struct transform **tf; /* [pool.threads] */
	int out_w, out_h;      /* the images' size, for what a frame costs in flight */
	pthread_mutex_t lock;
	pthread_cond_t idle;
	int inflight;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	struct task *q;
	size_t cap, head, len;
	pthread_t *workers;
	int nworkers;
	int threads; /* workers asked for: each has an index below it */
	bool stopping;
	/*
	 * The memory budget (decode.memory): bytes of frames in flight, decoded pictures
	 * queued or being converted, converted images and encode buffers, whatever the
	 * number of threads. A frame waits to be queued while it would not fit (one always
	 * fits when nothing else is in flight).
	 */
	uint64_t budget, in_flight, peak;
	/*
	 * What running decoders hold of it: each run reserves its decoder's own pictures
	 * (threads x pictures a thread keeps) while it is open. A reservation waits while it
	 * would not fit beside what is in flight (one always fits alone); frames wait only
	 * for other frames, which always drain, so two runs never wait for each other.
	 */
	uint64_t reserved;
	uint64_t max_pixels; /* decode.max_pixels, 0: none */
	pthread_cond_t room;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
	  .not_empty = PTHREAD_COND_INITIALIZER,
	  .not_full = PTHREAD_COND_INITIALIZER,
	  .room = PTHREAD_COND_INITIALIZER};

/* A worker keeps its conversion buffers between frames only when they are this small. */
#define KEEP_BUFFERS_BYTES (16u << 20)

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void add_ns(struct extract_stats *st, _Atomic uint64_t *field, uint64_t t0)
{
	if (st)
		atomic_fetch_add(field, now_ns() - t0);
}

/* ---- conversion: swscale as the CLI's auto-inserted scale filter does it ---- */

struct conv_state {
	struct SwsContext *sws;
	enum AVPixelFormat src_fmt, dst_fmt;
	int w, h, colorspace, range;
	uint8_t *rgb, *turned;
	size_t rgb_size;
	struct image_buf img;
};

static __thread struct conv_state conv_tls;
static __thread int worker_index;     /* this encoder thread's, for per-thread state of a run */
static __thread AVFrame *filtered_tls; /* a transform's output, reused */

static void conv_reset(struct conv_state *c)
{
	sws_freeContext(c->sws);
	c->sws = NULL;
	av_freep(&c->rgb);
	av_freep(&c->turned);
	c->rgb_size = 0;
	image_buf_free(&c->img);
}

static int conv_prepare(struct conv_state *c, const AVFrame *f, enum AVPixelFormat dst)
{
	int *inv, *tbl, src_full, dst_full, bri, con, sat;
	size_t size;

	if (c->sws && c->src_fmt == f->format && c->dst_fmt == dst && c->w == f->width &&
	    c->h == f->height && c->colorspace == (int)f->colorspace && c->range == (int)f->color_range)
		return 0;
	sws_freeContext(c->sws);
	c->sws = sws_getContext(f->width, f->height, f->format, f->width, f->height, dst,
				SWS_BICUBIC, NULL, NULL, NULL);
	if (!c->sws)
		return -ENOMEM;
	sws_getColorspaceDetails(c->sws, &inv, &src_full, &tbl, &dst_full, &bri, &con, &sat);
	inv = (int *)sws_getCoefficients(f->colorspace);
	if (f->color_range != AVCOL_RANGE_UNSPECIFIED)
		src_full = f->color_range == AVCOL_RANGE_JPEG;
	sws_setColorspaceDetails(c->sws, inv, src_full, inv, dst_full, bri, con, sat);
	c->src_fmt = f->format;
	c->dst_fmt = dst;
	c->w = f->width;
	c->h = f->height;
	c->colorspace = f->colorspace;
	c->range = f->color_range;
	size = (size_t)av_image_get_buffer_size(dst, f->width, f->height, 1);
	if (size > c->rgb_size) {
		av_freep(&c->rgb);
		av_freep(&c->turned);
		c->rgb = av_malloc(size);
		c->turned = av_malloc(size);
		if (!c->rgb || !c->turned) {
			c->rgb_size = 0;
			return -ENOMEM;
		}
		c->rgb_size = size;
	}
	return 0;
}

/* Turns a packed picture as the CLI's transpose/hflip/vflip filters would. */
static void orient_picture(const uint8_t *src, int w, int h, size_t bpp, enum source_orient o,
			   uint8_t *dst, int *ow, int *oh)
{
	bool swap = o == ORIENT_CLOCK || o == ORIENT_CCLOCK || o == ORIENT_CLOCK_FLIP ||
		    o == ORIENT_CCLOCK_FLIP;
	int W = swap ? h : w, H = swap ? w : h;

	for (int y = 0; y < H; y++) {
		uint8_t *d = dst + (size_t)y * W * bpp;
		for (int x = 0; x < W; x++) {
			int sx, sy;
			switch (o) {
			case ORIENT_CLOCK:
				sx = y;
				sy = h - 1 - x;
				break;
			case ORIENT_CCLOCK:
				sx = w - 1 - y;
				sy = x;
				break;
			case ORIENT_CCLOCK_FLIP:
				sx = y;
				sy = x;
				break;
			case ORIENT_CLOCK_FLIP:
				sx = w - 1 - y;
				sy = h - 1 - x;
				break;
			case ORIENT_HFLIP:
				sx = w - 1 - x;
				sy = y;
				break;
			case ORIENT_VFLIP:
				sx = x;
				sy = h - 1 - y;
				break;
			case ORIENT_ROT180:
				sx = w - 1 - x;
				sy = h - 1 - y;
				break;
			default:
				sx = x;
				sy = y;
			}
			memcpy(d + (size_t)x * bpp, src + ((size_t)sy * w + sx) * bpp, bpp);
		}
	}
	*ow = W;
	*oh = H;
}

/*
 * The format a jpg's graph ends in: for JFIF's own matrix (BT.601 or untagged) the CLI's
 * yuvj format for the picture's chroma, as its negotiation picks it; for another matrix
 * packed RGB, exactly the PNG's pixels, that image_encode_frame turns into JFIF's YUV.
 */
static enum AVPixelFormat jpeg_sink(const struct tf_spec *tf, int matrix, int chroma_w,
				    int chroma_h, bool rgb)
{
	enum AVColorSpace m = tf->tonemap != TF_TM_NONE ? AVCOL_SPC_BT709
			      : tf->bt2020		? AVCOL_SPC_BT2020_NCL
							: (enum AVColorSpace)matrix;

	if (m != AVCOL_SPC_UNSPECIFIED && m != AVCOL_SPC_BT470BG && m != AVCOL_SPC_SMPTE170M)
		return AV_PIX_FMT_RGB24;
	if (tf->tonemap == TF_TM_NONE && !rgb && chroma_h == 0)
		return chroma_w == 0 ? AV_PIX_FMT_YUVJ444P : AV_PIX_FMT_YUVJ422P;
	return AV_PIX_FMT_YUVJ420P;
}

/* The format a graph of this run ends in for a frame like f (the encoder's input). */
static enum AVPixelFormat graph_sink(const struct job_run *run, const AVFrame *f)
{
	const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);

	if (run->job->opts.format != IMAGE_JPG)
		return run->dst_fmt;
	return jpeg_sink(&run->job->tf, f->colorspace, d ? d->log2_chroma_w : 1,
			 d ? d->log2_chroma_h : 1, d && (d->flags & AV_PIX_FMT_FLAG_RGB));
}

/*
 * A failure that is not the picture's own (the state a thread keeps between pictures,
 * memory) is tried once more from fresh state; one that persists is transient, -EAGAIN:
 * the frame is not failed but made again for whoever asks next.
 */
static bool picture_own_error(int err)
{
	return err == -ENOTSUP || err == -EINVAL || err == -ERANGE || err == -ENOSYS;
}

/* Runs the frame through this thread's graph of the run; *out holds the result. */
static int run_graph(struct task *t, AVFrame **out, char *why, size_t whylen)
{
	struct job_run *run = t->run;
	struct transform **tp = &run->tf[worker_index];
	int ret = 0;

	if (!filtered_tls && !(filtered_tls = av_frame_alloc()))
		return -EAGAIN;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (attempt)
			transform_free(tp);
		if (!*tp) {
			ret = transform_new(&run->job->tf, run->job->idx->orient, t->frame,
					    graph_sink(run, t->frame), tp, why, whylen);
			if (ret < 0) {
				if (picture_own_error(ret))
					return ret;
				continue;
			}
		}
		ret = transform_run(*tp, t->frame, filtered_tls);
		if (ret == 0) {
			*out = filtered_tls;
			return 0;
		}
		snprintf(why, whylen, "the transform failed on this frame");
		if (picture_own_error(ret))
			return ret;
	}
	snprintf(why, whylen, "the transform failed twice (%s); the frame is made again later",
		 strerror(-ret));
	return -EAGAIN;
}

/* Encodes f (jpg) or pic (png) with the retry of picture_own_error. */
static int encode_image(const struct extract_job *job, const AVFrame *f,
			const struct picture *pic, struct image_buf *img, char *why, size_t whylen)
{
	int ret = 0;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (attempt)
			image_encode_thread_done();
		ret = f ? image_encode_frame(f, &job->opts, img, why, whylen)
			: image_encode(pic, &job->opts, img, why, whylen);
		if (ret == 0 || picture_own_error(ret))
			return ret;
	}
	snprintf(why, whylen, "the encoder failed twice (%s); the frame is made again later",
		 strerror(-ret));
	return -EAGAIN;
}

static void process_task(struct task *t)
{
	const struct extract_job *job = t->run->job;
	struct conv_state *c = &conv_tls;
	const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(t->run->dst_fmt);
	size_t bpp = (size_t)av_get_padded_bits_per_pixel(desc) / 8;
	uint8_t *dst[4] = {0};
	int dst_stride[4] = {0};
	struct picture pic;
	AVFrame *f = t->frame;
	char why[256] = "";
	uint64_t t0 = now_ns();
	int ret;

	if (job->cancel && atomic_load(job->cancel)) {
		job->done(job->arg, t->index, -ECANCELED, NULL, "stopped");
		return;
	}
	if (t->run->graph) {
		ret = run_graph(t, &f, why, sizeof(why));
		add_ns(job->stats, job->stats ? &job->stats->transform_ns : NULL, t0);
		if (ret < 0) {
			job->done(job->arg, t->index, ret, NULL, why);
			return;
		}
		t0 = now_ns();
	}
	if (job->opts.format == IMAGE_JPG) {
		/* from the decoded (or filtered) picture itself, as the CLI does */
		ret = encode_image(job, f, NULL, &c->img, why, sizeof(why));
		add_ns(job->stats, job->stats ? &job->stats->encode_ns : NULL, t0);
		if (f == filtered_tls)
			av_frame_unref(filtered_tls);
		job->done(job->arg, t->index, ret, ret < 0 ? NULL : &c->img, why);
		return;
	}
	if (t->run->graph) {
		/* the graph made the packed picture itself */
		pic = (struct picture){
			.data = f->data[0],
			.stride = (size_t)f->linesize[0],
			.width = f->width,
			.height = f->height,
			.channels = bpp == 4 || bpp == 8 ? 4 : 3,
			.depth = bpp > 4 ? 16 : 8,
			.primaries = f->color_primaries,
			.trc = f->color_trc,
		};
	} else {
		ret = conv_prepare(c, f, t->run->dst_fmt);
		if (ret < 0) {
			job->done(job->arg, t->index, -EAGAIN, NULL,
				  "out of memory converting a frame; it is made again later");
			return;
		}
		dst[0] = c->rgb;
		dst_stride[0] = (int)(bpp * (size_t)f->width);
		sws_scale(c->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst,
			  dst_stride);
		pic = (struct picture){
			.data = c->rgb,
			.stride = (size_t)dst_stride[0],
			.width = f->width,
			.height = f->height,
			.channels = job->idx->alpha ? 4 : 3,
			.depth = job->idx->depth > 8 ? 16 : 8,
			.primaries = f->color_primaries,
			.trc = f->color_trc,
		};
		if (job->idx->orient != ORIENT_NONE) {
			orient_picture(c->rgb, pic.width, pic.height, bpp, job->idx->orient,
				       c->turned, &pic.width, &pic.height);
			pic.data = c->turned;
			pic.stride = bpp * (size_t)pic.width;
		}
	}
	add_ns(job->stats, job->stats ? &job->stats->convert_ns : NULL, t0);
	t0 = now_ns();
	ret = encode_image(job, NULL, &pic, &c->img, why, sizeof(why));
	add_ns(job->stats, job->stats ? &job->stats->encode_ns : NULL, t0);
	if (f == filtered_tls)
		av_frame_unref(filtered_tls);
	job->done(job->arg, t->index, ret, ret < 0 ? NULL : &c->img, why);
}

static void *worker_main(void *arg)
{
	worker_index = (int)(intptr_t)arg;
	for (;;) {
		struct task t;
		pthread_mutex_lock(&pool.lock);
		while (pool.len == 0 && !pool.stopping)
			pthread_cond_wait(&pool.not_empty, &pool.lock);
		if (pool.len == 0) {
			pthread_mutex_unlock(&pool.lock);
			break;
		}
		t = pool.q[pool.head];
		pool.head = (pool.head + 1) % pool.cap;
		pool.len--;
		pthread_cond_signal(&pool.not_full);
		pthread_mutex_unlock(&pool.lock);

		process_task(&t);
		av_frame_free(&t.frame);
		if (conv_tls.rgb_size > KEEP_BUFFERS_BYTES) { /* 4K and deeper: not kept per thread */
			conv_reset(&conv_tls);
			image_encode_thread_done();
		}
		pthread_mutex_lock(&pool.lock);
		pool.in_flight -= t.cost;
		pthread_cond_broadcast(&pool.room);
		pthread_mutex_unlock(&pool.lock);
		pthread_mutex_lock(&t.run->lock);
		if (--t.run->inflight == 0)
			pthread_cond_broadcast(&t.run->idle);
		pthread_mutex_unlock(&t.run->lock);
	}
	conv_reset(&conv_tls);
	image_encode_thread_done();
	av_frame_free(&filtered_tls);
	return NULL;
}

void extract_set_memory(uint64_t bytes)
{
	pthread_mutex_lock(&pool.lock);
	pool.budget = bytes;
	pthread_mutex_unlock(&pool.lock);
}

void extract_set_max_pixels(uint64_t pixels)
{
	pthread_mutex_lock(&pool.lock);
	pool.max_pixels = pixels;
	pthread_mutex_unlock(&pool.lock);
}

static uint64_t max_pixels(void)
{
	uint64_t v;
	pthread_mutex_lock(&pool.lock);
	v = pool.max_pixels;
	pthread_mutex_unlock(&pool.lock);
	return v;
}

void extract_memory(uint64_t *in_flight, uint64_t *peak, uint64_t *budget)
{
	pthread_mutex_lock(&pool.lock);
	*in_flight = pool.reserved + pool.in_flight;
	*peak = pool.peak;
	*budget = pool.budget;
	pthread_mutex_unlock(&pool.lock);
}

void extract_set_verbose(bool verbose)
{
	av_log_set_level(verbose ? AV_LOG_WARNING : AV_LOG_QUIET);
}

int extract_pool_start(int threads)
{
	if (threads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (int)n : 1;
	}
	pool.cap = (size_t)threads * 2;
	pool.q = calloc(pool.cap, sizeof(*pool.q));
	pool.workers = calloc((size_t)threads, sizeof(*pool.workers));
	if (!pool.q || !pool.workers) {
		free(pool.q);
		free(pool.workers);
		pool.q = NULL;
		pool.workers = NULL;
		return -ENOMEM;
	}
	pool.stopping = false;
	pool.threads = threads;
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&pool.workers[i], NULL, worker_main, (void *)(intptr_t)i) != 0) {
			pool.nworkers = i;
			extract_pool_stop();
			return -EAGAIN;
		}
	}
	pool.nworkers = threads;
	return 0;
}

void extract_pool_stop(void)
{
	if (!pool.workers)
		return;
	pthread_mutex_lock(&pool.lock);
	pool.stopping = true;
	pthread_cond_broadcast(&pool.not_empty);
	pthread_mutex_unlock(&pool.lock);
	for (int i = 0; i < pool.nworkers; i++)
		pthread_join(pool.workers[i], NULL);
	free(pool.workers);
	free(pool.q);
	pool.workers = NULL;
	pool.q = NULL;
	pool.nworkers = 0;
	pool.len = pool.head = 0;
}

/*
 * What a frame costs in flight: its decoded picture, and four images' worth for the
 * worker (converted, turned, filtered for PNG, and the encoding).
 */
static uint64_t frame_cost(const AVFrame *f, const struct job_run *run)
{
	int dec = av_image_get_buffer_size(f->format, f->width, f->height, 1);
	uint64_t d = dec > 0 ? (uint64_t)dec : 0, work;
	int rgb;

	if (!run->graph) {
		rgb = av_image_get_buffer_size(run->dst_fmt, f->width, f->height, 1);
		return d + 4 * (uint64_t)(rgb > 0 ? rgb : 0);
	}
	/*
	 * Through a graph the full-size picture is not converted to RGB: the graph's own
	 * working pictures (a tone map's are 32-bit float planes, 12 bytes a pixel, twice;
	 * a scale or colour change works at about the decoded size), then four images' worth
	 * of what it makes.
	 */
	work = run->job->tf.tonemap != TF_TM_NONE ? 24 * (uint64_t)f->width * (uint64_t)f->height
						   : d;
	rgb = av_image_get_buffer_size(run->dst_fmt, run->out_w > 0 ? run->out_w : f->width,
				       run->out_h > 0 ? run->out_h : f->height, 1);
	return d + work + 4 * (uint64_t)(rgb > 0 ? rgb : 0);
}

static void submit(struct job_run *run, AVFrame *frame, size_t index, bool urgent)
{
	uint64_t cost = frame_cost(frame, run);

	pthread_mutex_lock(&run->lock);
	run->inflight++;
	pthread_mutex_unlock(&run->lock);

	pthread_mutex_lock(&pool.lock);
	while (pool.len == pool.cap ||
	       (pool.budget && pool.in_flight > 0 &&
		pool.reserved + pool.in_flight + cost > pool.budget)) {
		if (pool.len == pool.cap)
			pthread_cond_wait(&pool.not_full, &pool.lock);
		else
			pthread_cond_wait(&pool.room, &pool.lock);
	}
	pool.in_flight += cost;
	if (pool.reserved + pool.in_flight > pool.peak)
		pool.peak = pool.reserved + pool.in_flight;
	if (urgent) {
		pool.head = (pool.head + pool.cap - 1) % pool.cap;
		pool.q[pool.head] = (struct task){run, frame, index, cost};
	} else {
		pool.q[(pool.head + pool.len) % pool.cap] = (struct task){run, frame, index, cost};
	}
	pool.len++;
	pthread_cond_signal(&pool.not_empty);
	pthread_mutex_unlock(&pool.lock);
}

static void wait_idle(struct job_run *run)
{
	pthread_mutex_lock(&run->lock);
	while (run->inflight > 0)
		pthread_cond_wait(&run->idle, &run->lock);
	pthread_mutex_unlock(&run->lock);
}

/* ---- decoding ---- */

struct decoder {
	AVFormatContext *fmt; /* NULL while it decodes kept packets and has not needed the file */
	AVCodecContext *dec;
	AVStream *st;         /* fmt's, the video stream */
	int si;               /* the video stream's index */
	AVRational tb;        /* its time base */
	int fd;
	const struct source_packets *pk; /* kept packets still to take, from pk_next; or NULL */
	size_t pk_next;
	AVPacket *pkt;
	AVFrame *frame;
	uint64_t reserved; /* what it holds of the memory budget (pool.reserved) */
};

/* Pictures a decoder thread may hold (frame threads keep references and reordered ones). */
#define DECODER_PICTURES_PER_THREAD 2
/* And the decoder's own: the reference pictures and the one being output. */
#define DECODER_PICTURES_BASE 4

/* Bytes of one decoded picture of the index's stream. */
static uint64_t picture_bytes(uint64_t w, uint64_t h, const struct source_index *idx)
{
	uint64_t px = w * h;
	return (px + 2 * (px >> (idx->chroma_w + idx->chroma_h)) + (idx->alpha ? px : 0)) *
	       (idx->depth > 8 ? 2 : 1);
}

/* A reservation waits this long at most for room (see decoder_reserve). */
#define RESERVE_WAIT_NS 2000000000LL

/*
 * Waits until the decoder's pictures fit in the budget beside what is in flight, then
 * holds them. The wait is bounded: a run that its caller makes others pause for (a
 * far-ahead reader's) would otherwise wait for their reservations while they wait for it;
 * past RESERVE_WAIT_NS it decodes anyway, over the budget (peak shows it), and the
 * engine's bound on jobs bounds how far.
 */
static void decoder_reserve(struct decoder *d, uint64_t bytes)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until); /* pool.room waits on the default clock */
	until.tv_sec += RESERVE_WAIT_NS / 1000000000LL;
	pthread_mutex_lock(&pool.lock);
	while (pool.budget && pool.reserved + pool.in_flight > 0 &&
	       pool.reserved + pool.in_flight + bytes > pool.budget)
		if (pthread_cond_timedwait(&pool.room, &pool.lock, &until) == ETIMEDOUT)
			break;
	pool.reserved += bytes;
	if (pool.reserved + pool.in_flight > pool.peak)
		pool.peak = pool.reserved + pool.in_flight;
	pthread_mutex_unlock(&pool.lock);
	d->reserved = bytes;
}

static void decoder_unreserve(struct decoder *d)
{
	if (!d->reserved)
		return;
	pthread_mutex_lock(&pool.lock);
	pool.reserved -= d->reserved;
	pthread_cond_broadcast(&pool.room);
	pthread_mutex_unlock(&pool.lock);
	d->reserved = 0;
}

static void decoder_close(struct decoder *d)
{
	av_frame_free(&d->frame);
	av_packet_free(&d->pkt);
	avcodec_free_context(&d->dec);
	input_close(&d->fmt);
	decoder_unreserve(d);
}

/*
 * Decoder threads: one per core, but frame threads each hold pictures, so no more than the
 * memory budget has room for (half of it, four pictures a thread: two threads for 8-bit 4K
 * in the default 256M, one for 10-bit 4K).
 */
static int decoder_threads(const AVCodecParameters *par, const struct source_index *idx)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	/* a decoded picture, as the index knows it (the codec parameters may not say yet) */
	uint64_t pic = picture_bytes((uint64_t)par->width, (uint64_t)par->height, idx);
	uint64_t budget;
	long n = cores > 0 ? cores : 1;

	pthread_mutex_lock(&pool.lock);
	budget = pool.budget;
	pthread_mutex_unlock(&pool.lock);
	if (budget && pic > 0 && (uint64_t)n * 4 * pic > budget / 2)
		n = (long)(budget / 2 / (4 * pic));
	/* at most one per core: jobs are bounded by the engine, so threads are too */
	return n < 1 ? 1 : n > cores ? (int)cores : n > 16 ? 16 : (int)n;
}

/* Opens the file's demuxer (the video stream's packets only). 0, or -EIO with a sentence. */
static int decoder_input(struct decoder *d, const struct source_index *idx, char *why,
			 size_t whylen)
{
	char err[256];
	int ret = input_open(d->fd, "the source", &d->fmt, err, sizeof(err));

	if (ret < 0) {
		snprintf(why, whylen, "the source could not be opened again for decoding");
		return ret;
	}
	/* The container header is enough for codec parameters in the usual formats. */
	if (idx->stream >= (int)d->fmt->nb_streams ||
	    d->fmt->streams[idx->stream]->codecpar->width <= 0) {
		ret = avformat_find_stream_info(d->fmt, NULL);
		if (ret < 0 || idx->stream >= (int)d->fmt->nb_streams) {
			snprintf(why, whylen, "the source's streams changed since it was indexed");
			input_close(&d->fmt);
			return -EIO;
		}
	}
	d->st = d->fmt->streams[idx->stream];
	for (unsigned i = 0; i < d->fmt->nb_streams; i++)
		if ((int)i != idx->stream)
			d->fmt->streams[i]->discard = AVDISCARD_ALL;
	return 0;
}

static int decoder_open(struct decoder *d, int fd, const struct source_index *idx,
			const struct source_packets *pk, char *why, size_t whylen)
{
	const AVCodec *codec;
	const AVCodecParameters *par;
	int ret;

	memset(d, 0, sizeof(*d));
	d->fd = fd;
	d->si = idx->stream;
	if (pk) {
		/* the index pass's packets and parameters: the file is not opened unless needed */
		d->pk = pk;
		par = pk->par;
		d->tb = pk->tb;
	} else {
		ret = decoder_input(d, idx, why, whylen);
		if (ret < 0)
			return ret;
		par = d->st->codecpar;
		d->tb = d->st->time_base;
	}
	codec = avcodec_find_decoder_by_name(idx->codec);
	if (!codec)
		codec = avcodec_find_decoder(par->codec_id);
	if (!codec) {
		snprintf(why, whylen, "no decoder for %s", idx->codec);
		goto out_close;
	}
	d->dec = avcodec_alloc_context3(codec);
	d->pkt = av_packet_alloc();
	d->frame = av_frame_alloc();
	if (!d->dec || !d->pkt || !d->frame) {
		snprintf(why, whylen, "out of memory opening the decoder");
		decoder_close(d);
		return -ENOMEM;
	}
	avcodec_parameters_to_context(d->dec, par);
	d->dec->pkt_timebase = d->tb;
	d->dec->thread_count = decoder_threads(par, idx);
	d->dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
	/* a stream whose pictures grow past the bound mid-way is refused by the decoder */
	if (max_pixels() && max_pixels() <= INT64_MAX)
		d->dec->max_pixels = (int64_t)max_pixels();
	/* the decoder's own pictures count in the budget, at the index's size */
	decoder_reserve(d, (uint64_t)(DECODER_PICTURES_BASE +
				      DECODER_PICTURES_PER_THREAD * d->dec->thread_count) *
				   picture_bytes((uint64_t)idx->width, (uint64_t)idx->height, idx));
	ret = avcodec_open2(d->dec, codec, NULL);
	if (ret < 0) {
		snprintf(why, whylen, "the %s decoder could not be opened", codec->name);
		goto out_close;
	}
	return 0;
out_close:
	decoder_close(d);
	return -EIO;
}

/* Seeks to keyframe kf, or `back` ticks before it (a seek that landed past it went on). */
static int decoder_seek(struct decoder *d, const struct source_index *idx, size_t kf,
			int64_t back)
{
	char why[200];
	int ret;

	d->pk = NULL; /* from here on, the file */
	if (!d->fmt && decoder_input(d, idx, why, sizeof(why)) < 0) {
		avcodec_flush_buffers(d->dec);
		return -EIO;
	}
	ret = av_seek_frame(d->fmt, d->st->index, idx->pts[kf] - back, AVSEEK_FLAG_BACKWARD);
	if (ret < 0 && kf == 0)
		ret = avformat_seek_file(d->fmt, -1, INT64_MIN, 0, 0, 0);
	avcodec_flush_buffers(d->dec);
	return ret < 0 ? -EIO : 0;
}

struct loop_state {
	struct job_run *run;
	struct decoder *d;
	size_t expect;     /* next frame index we must see */
	size_t seek_kf;    /* keyframe of the current seek */
	int64_t seek_back; /* ticks before it the seek aimed (a window's first keyframe) */
	int reseeks;
	bool started;      /* a frame >= first has been seen */
	bool stop;
	bool damaged;
};

static void report_damage(struct loop_state *ls, size_t frame, int err, const char *why)
{
	const struct extract_job *job = ls->run->job;
	if (ls->damaged)
		return;
	ls->damaged = true;
	ls->stop = true;
	if (job->damaged)
		job->damaged(job->arg, frame, err, why);
}

/* Handles one decoded frame; may ask for a re-seek by returning 1. */
static int take_frame(struct loop_state *ls, AVFrame *f)
{
	const struct extract_job *job = ls->run->job;
	const struct source_index *idx = job->idx;
	int64_t ts = f->best_effort_timestamp != AV_NOPTS_VALUE ? f->best_effort_timestamp : f->pts;
	int64_t i;
	enum extract_visit v;
	char why[200];

	if (job->stats)
		atomic_fetch_add(&job->stats->frames_decoded, 1);
	if (ts == AV_NOPTS_VALUE)
		return 0;
	if (ts > idx->pts[idx->n - 1]) {
		if (ls->started) {
			ls->stop = true; /* past the window the index holds */
			return 0;
		}
		/*
		 * Past the window before its first frame: the seek landed after the keyframe (a
		 * bisecting seek lands by decode time, between a keyframe and the pictures it
		 * leads) and the next keyframe is past the window: go back further.
		 */
		if (ls->reseeks < 3 && (ls->seek_kf > 0 || !idx->from_start))
			return 1;
		snprintf(why, sizeof(why), "source frame %zu could not be decoded (damaged data)",
			 ls->expect + 1);
		report_damage(ls, ls->expect, -EIO, why);
		return 0;
	}
	i = source_index_find(idx, ts, ls->expect);
	if (i < 0 || (size_t)i < job->first)
		return 0;
	if (!ls->started && (size_t)i > job->first && ls->reseeks < 3 &&
	    (ls->seek_kf > 0 || !idx->from_start))
		return 1; /* the seek landed past the first frame: go back further */
	if ((size_t)i < ls->expect)
		return 0;
	if ((size_t)i > ls->expect) {
		snprintf(why, sizeof(why), "source frame %zu could not be decoded (damaged data)",
			 ls->expect + 1);
		report_damage(ls, ls->expect, -EIO, why);
		return 0;
	}
	ls->started = true;
	if ((f->flags & AV_FRAME_FLAG_CORRUPT) || f->decode_error_flags) {
		snprintf(why, sizeof(why), "source frame %zu is damaged", (size_t)i + 1);
		report_damage(ls, (size_t)i, -EIO, why);
		return 0;
	}
	ls->expect = (size_t)i + 1;
	v = job->visit(job->arg, (size_t)i);
	switch (v) {
	case EXTRACT_STOP:
		ls->stop = true;
		break;
	case EXTRACT_ENCODE:
	case EXTRACT_ENCODE_NOW: {
		AVFrame *ref = av_frame_clone(f);
		if (!ref) {
			job->done(job->arg, (size_t)i, -EAGAIN, NULL,
				  "out of memory for a decoded frame; it is made again later");
			break;
		}
		submit(ls->run, ref, (size_t)i, v == EXTRACT_ENCODE_NOW);
		break;
	}
	case EXTRACT_SKIP:
		break;
	}
	return 0;
}

/* Drains decoded frames. Returns 1 to ask for a re-seek, 0 otherwise. */
static int drain(struct loop_state *ls)
{
	struct decoder *d = ls->d;
	struct extract_stats *st = ls->run->job->stats;

	while (!ls->stop) {
		uint64_t t0 = now_ns();
		int r = avcodec_receive_frame(d->dec, d->frame);
		add_ns(st, st ? &st->decode_ns : NULL, t0);
		if (r < 0)
			return 0;
		if (d->frame->colorspace == AVCOL_SPC_UNSPECIFIED && ls->run->job->assume_matrix)
			d->frame->colorspace = (enum AVColorSpace)ls->run->job->assume_matrix;
		r = take_frame(ls, d->frame);
		av_frame_unref(d->frame);
		if (r)
			return 1;
	}
	return 0;
}

static void decode_loop(struct loop_state *ls)
{
	const struct extract_job *job = ls->run->job;
	struct extract_stats *st = job->stats;
	struct decoder *d = ls->d;
	bool eof = false;
	char why[200];

	while (!ls->stop) {
		int r;
		uint64_t t0;
		if (!eof) {
			if (d->pk) /* the index pass's packets, while they last */
				r = d->pk_next < d->pk->n ? av_packet_ref(d->pkt, d->pk->p[d->pk_next++])
							  : AVERROR_EOF;
			else if (d->fmt)
				r = av_read_frame(d->fmt, d->pkt);
			else
				r = AVERROR(EIO); /* the file could not be opened again */
			if (r < 0) {
				/* read errors end the stream like EOF; missing frames are damage */
				eof = true;
				avcodec_send_packet(d->dec, NULL);
			} else if (d->pkt->stream_index != d->si) {
				av_packet_unref(d->pkt);
				continue;
			} else {
				/*
				 * Before the first frame asked for, only reference frames matter:
				 * a non-reference picture there is neither shown nor used.
				 */
				d->dec->skip_frame = d->pkt->pts != AV_NOPTS_VALUE &&
							     d->pkt->pts < job->idx->pts[job->first]
						     ? AVDISCARD_NONREF
						     : AVDISCARD_DEFAULT;
				/* a packet the decoder rejects shows up as a missing frame */
				t0 = now_ns();
				avcodec_send_packet(d->dec, d->pkt);
				add_ns(st, st ? &st->decode_ns : NULL, t0);
				av_packet_unref(d->pkt);
			}
		}
		r = drain(ls);
		/* the data ended before the first frame came: the seek landed after its keyframe */
		if (!r && eof && !ls->stop && !ls->started && !d->pk && ls->reseeks < 3 &&
		    (ls->seek_kf > 0 || !job->idx->from_start))
			r = 1;
		if (r) {
			/* one keyframe back; before a window's first one, a second, then two... */
			if (ls->seek_kf > 0)
				ls->seek_kf = source_index_keyframe_before(job->idx, ls->seek_kf - 1);
			else
				ls->seek_back = 2 * ls->seek_back +
						av_rescale_q(1, (AVRational){1, 1}, d->tb);
			ls->reseeks++;
			t0 = now_ns();
			decoder_seek(d, job->idx, ls->seek_kf, ls->seek_back);
			add_ns(st, st ? &st->seek_ns : NULL, t0);
			eof = false;
			continue;
		}
		if (eof && d->pk && !d->pk->at_end && !ls->stop && ls->expect < job->idx->n) {
			/* the kept packets are spent and frames are still wanted: on from the file */
			t0 = now_ns();
			ls->seek_kf = source_index_keyframe_before(job->idx, ls->expect);
			decoder_seek(d, job->idx, ls->seek_kf, 0);
			add_ns(st, st ? &st->seek_ns : NULL, t0);
			eof = false;
			continue;
		}
		if (eof) {
			if (!ls->stop && ls->expect < job->idx->n) {
				snprintf(why, sizeof(why),
					 "the data ends before source frame %zu of %zu (truncated or damaged)",
					 ls->expect + 1, job->idx->n);
				report_damage(ls, ls->expect, -EIO, why);
			}
			break;
		}
	}
}

struct tf_input extract_tf_input(const struct source_index *idx)
{
	bool turned = idx->orient == ORIENT_CLOCK || idx->orient == ORIENT_CCLOCK ||
		      idx->orient == ORIENT_CLOCK_FLIP || idx->orient == ORIENT_CCLOCK_FLIP;
	return (struct tf_input){
		.width = turned ? idx->height : idx->width, /* coded, before orientation */
		.height = turned ? idx->width : idx->height,
		.sar_num = idx->sar_num,
		.sar_den = idx->sar_den,
		.orient = idx->orient,
		.depth = idx->depth,
		.alpha = idx->alpha,
		.primaries = idx->primaries,
		.trc = idx->trc,
		.matrix = idx->matrix,
		.range = idx->range,
	};
}

/* The packed format of PNG images: 8 bits after a tone map or BT.2020, else the source's. */
static enum AVPixelFormat dst_format(const struct source_index *idx, const struct tf_spec *tf)
{
	if (idx->depth > 8 && tf->tonemap == TF_TM_NONE && !tf->bt2020)
		return idx->alpha ? AV_PIX_FMT_RGBA64BE : AV_PIX_FMT_RGB48BE;
	return idx->alpha ? AV_PIX_FMT_RGBA : AV_PIX_FMT_RGB24;
}

int extract_out_size(const struct source_index *idx, const struct image_opts *o,
		     const struct tf_spec *tf, int *w, int *h, int *depth, char *why, size_t whylen)
{
	struct tf_input in = extract_tf_input(idx);
	uint64_t limit = max_pixels();
	int ret;

	if (limit && (uint64_t)idx->width * (uint64_t)idx->height > limit) {
		snprintf(why, whylen, "decode.max_pixels (%" PRIu64 ") is smaller than the picture",
			 limit);
		return -E2BIG;
	}
	if (o->format == IMAGE_JPG) {
		bool deep = idx->depth > 8 && tf->tonemap == TF_TM_NONE;
		if (idx->alpha || deep) {
			snprintf(why, whylen, "jpg cannot hold %s",
				 idx->alpha ? "the alpha channel" : "the more-than-8-bit samples");
			return -ENOTSUP;
		}
		/* cover's crop rounds to whole chroma samples of a yuvj format, as the CLI's */
		enum AVPixelFormat jf = jpeg_sink(tf, idx->matrix, idx->chroma_w, idx->chroma_h,
						  false);
		ret = tf_output_fmt(tf, &in, jf, w, h, depth);
	} else {
		ret = tf_output(tf, &in, w, h, depth);
	}
	if (ret < 0) {
		snprintf(why, whylen, "the size asked for gives no picture");
		return ret;
	}
	if (limit && (uint64_t)*w * (uint64_t)*h > limit) {
		snprintf(why, whylen,
			 "decode.max_pixels (%" PRIu64 ") is smaller than the image asked for (%dx%d)",
			 limit, *w, *h);
		return -E2BIG;
	}
	return 0;
}

int extract_run(const struct extract_job *job)
{
	struct job_run run = {.job = job, .dst_fmt = dst_format(job->idx, &job->tf),
			      .lock = PTHREAD_MUTEX_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER};
	struct decoder d;
	struct loop_state ls = {.run = &run, .d = &d, .expect = job->first};
	char why[200];
	uint64_t t0 = now_ns();
	int ret;

	run.graph = !tf_is_identity(&job->tf) ||
		    (job->opts.format == IMAGE_JPG && job->idx->orient != ORIENT_NONE);
	if (run.graph && !(run.tf = calloc((size_t)(pool.threads > 0 ? pool.threads : 1),
					   sizeof(*run.tf)))) {
		if (job->damaged)
			job->damaged(job->arg, job->first, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	if (run.graph) {
		struct tf_input in = extract_tf_input(job->idx);
		int depth;
		if (tf_output(&job->tf, &in, &run.out_w, &run.out_h, &depth) < 0)
			run.out_w = run.out_h = 0;
	}
	ls.seek_kf = source_index_keyframe_before(job->idx, job->first);
	/* the index pass's packets start at the index's first keyframe */
	ret = decoder_open(&d, job->fd, job->idx, ls.seek_kf == 0 ? job->packets : NULL, why,
			   sizeof(why));
	add_ns(job->stats, job->stats ? &job->stats->open_ns : NULL, t0);
	if (ret < 0) {
		free(run.tf);
		if (job->damaged)
			job->damaged(job->arg, job->first, ret, why);
		return ret;
	}
	if (!d.pk && (ls.seek_kf > 0 || !job->idx->from_start)) { /* a window starts at its own keyframe */
		t0 = now_ns();
		decoder_seek(&d, job->idx, ls.seek_kf, 0);
		add_ns(job->stats, job->stats ? &job->stats->seek_ns : NULL, t0);
	}
	decode_loop(&ls);
	wait_idle(&run);
	for (int i = 0; run.tf && i < pool.threads; i++)
		transform_free(&run.tf[i]);
	free(run.tf);
	if (job->stats)
		atomic_fetch_add(&job->stats->source_bytes, input_bytes_read(d.fmt));
	decoder_close(&d);
	pthread_mutex_destroy(&run.lock);
	pthread_cond_destroy(&run.idle);
	return 0;
}
