/*
 * hfctl contact-sheet: a grid of a segment's frames as thumbnails, each labelled with its
 * slot's file number and the time of the source frame it shows, in one PNG. Frames are
 * read through the mount like any client (which extracts a cold segment), decoded with
 * libavcodec and scaled with swscale straight into the sheet.
 *
 * The times are the daemon's choice made again with its own code: the video is read
 * through the mount (beside the segment directory), its window indexed with
 * source_index_build and each slot's frame chosen with slots_frame, exactly as the
 * engine does for the segment's start, duration and rate (.hfinfo "segment"). A time is
 * the frame's pts from the container's start, in seconds rounded to 3 decimals.
 *
 * Layout (what a test or a script may rely on):
 *   n       = count when count <= 100, else 100 slots evenly spaced from the first to the
 *             last: slot i * (count - 1) / 99 (integer division), i = 0..99
 *   cols    = --columns (default 10), at most n;  rows = ceil(n / cols)
 *   tw      = --width (default 160);  th = round(tw * height / width) of the frames
 *   scale   = 2 when tw >= 96, else 1 (characters are 5x7 pixels times scale, 6 * scale
 *             apart, centred under the thumbnail: left = x + (tw - (6 * len - 1) * scale) / 2)
 *   label   = 16 * scale + 6 pixels under each thumbnail: the file number (7 for
 *             frame_00007) with its top 3 px below the thumbnail, then the source time
 *             ("1.233", "-0.033") 9 * scale px lower; a line too wide for the thumbnail at
 *             scale 2 is drawn at scale 1 (same top), and one too wide even then is cut
 *             at the thumbnail's edges
 *   sheet   = (cols * (tw + 6) + 6) x (rows * (th + label + 6) + 6) pixels, RGB
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libavcodec/avcodec.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "decode/encode.h"
#include "decode/source.h"
#include "fs/segname.h"
#include "tools/ctl.h"
#include "tools/ctl_json.h"

#define SHEET_MAX_THUMBS 100
#define SHEET_GAP	 6
#define SHEET_BG	 0x20 /* dark grey behind the thumbnails */
#define SHEET_INK	 0xe8 /* the digits */
/* Bounds an accidental --width 100000 before it asks for gigabytes. */
#define SHEET_MAX_PIXELS (64u << 20)

static const char sheet_help[] =
    "usage: hfctl contact-sheet [--columns N] [--width PX] SEGMENT OUT.png\n"
    "Writes OUT.png: the segment's frames as thumbnails in a grid, each with its slot\n"
    "number (7 for frame_00007) under it and, below that, the time in the video of the\n"
    "frame it shows (seconds, 3 decimals). Up to 100 frames all show; a longer segment\n"
    "shows 100 evenly spaced ones, first and last included. A cold segment is extracted.\n"
    "  --columns N   thumbnails per row, 1..100 (default 10)\n"
    "  --width PX    width of a thumbnail, 48..1024 (default 160); its height keeps the\n"
    "                frame's aspect ratio\n";

/* 5x7 characters, one byte per row, bit 4 the leftmost pixel: the digits, '.', '-'. */
static const uint8_t glyph_rows[12][7] = {
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}, {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e},
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}, {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e},
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}, {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e},
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}, {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}, {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c},
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c}, {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00},
};

struct layout {
	int64_t count; /* slots in the segment */
	int n, cols, rows;
	int tw, th, scale, label;
	int width, height;
};

/* The layout of the header comment; -ERANGE when the sheet would be too large. */
static int layout_make(struct layout *l, int64_t count, int columns, int tw, int fw, int fh)
{
	l->count = count;
	l->n = count < SHEET_MAX_THUMBS ? (int)count : SHEET_MAX_THUMBS;
	l->cols = columns < l->n ? columns : l->n;
	l->rows = (l->n + l->cols - 1) / l->cols;
	l->tw = tw;
	l->th = (int)(((int64_t)tw * fh + fw / 2) / fw);
	if (l->th < 1)
		l->th = 1;
	l->scale = tw >= 96 ? 2 : 1;
	l->label = 16 * l->scale + SHEET_GAP;
	l->width = l->cols * (tw + SHEET_GAP) + SHEET_GAP;
	if (l->th > 16 * 1024)
		return -ERANGE;
	l->height = l->rows * (l->th + l->label + SHEET_GAP) + SHEET_GAP;
	return (uint64_t)l->width * (uint64_t)l->height > SHEET_MAX_PIXELS ? -ERANGE : 0;
}

/* Slot (0-based) shown by thumbnail i: every slot, or an even spread over them. */
static int64_t layout_slot(const struct layout *l, int i)
{
	if (l->count <= SHEET_MAX_THUMBS)
		return i;
	return (int64_t)i * (l->count - 1) / (SHEET_MAX_THUMBS - 1);
}

struct sheet {
	uint8_t *rgb;
	int width, height;
	size_t stride;
};

/* One character with its top left corner at (x, y), drawn only within [lo, hi). */
static void draw_glyph(struct sheet *s, int x, int y, char c, int scale, int lo, int hi)
{
	const uint8_t *rows = glyph_rows[c == '.' ? 10 : c == '-' ? 11 : c - '0'];

	for (int row = 0; row < 7 * scale; row++) {
		uint8_t *line = s->rgb + (size_t)(y + row) * s->stride;
		for (int col = 0; col < 5 * scale; col++)
			if (x + col >= lo && x + col < hi &&
			    rows[row / scale] & (0x10 >> col / scale))
				memset(line + (size_t)(x + col) * 3, SHEET_INK, 3);
	}
}

/*
 * text (digits, '.' and '-'), a column apart, top at y, centred under the cell
 * [x, x + width): at scale 1 when it is too wide at scale, cut at the cell's edges when
 * too wide even then. A slot number fits: 8 digits (10^7 slots) take 47 px at scale 1,
 * 94 at scale 2, and thumbnails are at least 48 px wide, 96 at scale 2.
 */
static void draw_text(struct sheet *s, int x, int width, int y, const char *text, int scale)
{
	int len = (int)strlen(text), left;

	if (scale > 1 && (6 * len - 1) * scale > width)
		scale = 1;
	left = x + (width - (6 * len - 1) * scale) / 2;
	for (int i = 0; i < len; i++)
		draw_glyph(s, left + i * 6 * scale, y, text[i], scale, x, x + width);
}

/* Seconds with 3 decimals, rounded half away from zero, of an exact ms count. */
static void fmt_ms(int64_t ms, char *buf, size_t len)
{
	uint64_t mag = ms < 0 ? -(uint64_t)ms : (uint64_t)ms;

	snprintf(buf, len, "%s%" PRIu64 ".%03u", ms < 0 ? "-" : "", mag / 1000,
		 (unsigned)(mag % 1000));
}

/* Decodes image files (PNG or JPEG) and scales them into the sheet. */
struct thumbs {
	const AVCodec *codec;
	AVPacket *pkt;
	AVFrame *frame;
	struct SwsContext *sws;
};

static void thumbs_close(struct thumbs *t)
{
	sws_freeContext(t->sws);
	t->sws = NULL;
	av_frame_free(&t->frame);
	av_packet_free(&t->pkt);
}

static int thumbs_open(struct thumbs *t, const char *format)
{
	t->codec =
	    avcodec_find_decoder(strcmp(format, "jpg") == 0 ? AV_CODEC_ID_MJPEG : AV_CODEC_ID_PNG);
	if (!t->codec)
		return -ENOSYS;
	t->pkt = av_packet_alloc();
	t->frame = av_frame_alloc();
	if (!t->pkt || !t->frame) {
		thumbs_close(t);
		return -ENOMEM;
	}
	return 0;
}

/* One image file into t->frame. A decoder per image: libavcodec 59's PNG decoder, reused,
 * takes the previous image's last row as the row above the next image's first, so an
 * UP-filtered first row (what hfmount writes) comes out as the sum of two pictures. */
static int thumbs_decode(struct thumbs *t, uint8_t *data, size_t len)
{
	AVCodecContext *dec = avcodec_alloc_context3(t->codec);
	int ret = dec ? avcodec_open2(dec, t->codec, NULL) : AVERROR(ENOMEM);

	t->pkt->data = data;
	t->pkt->size = (int)len;
	if (ret >= 0)
		ret = avcodec_send_packet(dec, t->pkt);
	if (ret >= 0)
		ret = avcodec_receive_frame(dec, t->frame);
	avcodec_free_context(&dec);
	return ret < 0 ? -EIO : 0;
}

/* The deprecated yuvj* formats (what the mjpeg decoder gives) are their yuv* twins in
 * full range: swscale wants the twin and the range said separately. */
static enum AVPixelFormat plain_format(enum AVPixelFormat f, int *full_range)
{
	static const enum AVPixelFormat twins[][2] = {
	    {AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUV420P}, {AV_PIX_FMT_YUVJ422P, AV_PIX_FMT_YUV422P},
	    {AV_PIX_FMT_YUVJ444P, AV_PIX_FMT_YUV444P}, {AV_PIX_FMT_YUVJ440P, AV_PIX_FMT_YUV440P},
	    {AV_PIX_FMT_YUVJ411P, AV_PIX_FMT_YUV411P},
	};

	for (size_t i = 0; i < sizeof(twins) / sizeof(twins[0]); i++)
		if (f == twins[i][0]) {
			*full_range = 1;
			return twins[i][1];
		}
	return f;
}

/* One image file's bytes into the tw x th box at dst (RGB rows of stride bytes). */
static int thumbs_put(struct thumbs *t, uint8_t *data, size_t len, uint8_t *dst, size_t stride,
		      int tw, int th)
{
	uint8_t *planes[4] = {dst};
	int strides[4] = {(int)stride};
	const int *bt601 = sws_getCoefficients(SWS_CS_DEFAULT);
	enum AVPixelFormat format;
	int full_range;

	if (thumbs_decode(t, data, len) < 0)
		return -EIO;
	full_range = t->frame->color_range == AVCOL_RANGE_JPEG;
	format = plain_format((enum AVPixelFormat)t->frame->format, &full_range);
	t->sws = sws_getCachedContext(t->sws, t->frame->width, t->frame->height, format, tw, th,
				      AV_PIX_FMT_RGB24, SWS_AREA, NULL, NULL, NULL);
	if (t->sws) {
		/* JPEG frames are BT.601 (hfmount's encoder and the JFIF convention) */
		sws_setColorspaceDetails(t->sws, bt601, full_range, bt601, 1, 0, 1 << 16, 1 << 16);
		sws_scale(t->sws, (const uint8_t *const *)t->frame->data, t->frame->linesize, 0,
			  t->frame->height, planes, strides);
	}
	av_frame_unref(t->frame);
	return t->sws ? 0 : -ENOMEM;
}

/* A whole file into a malloc'd buffer followed by the zeroed padding libavcodec's
 * decoders may read past the end of their input. 0 or -errno. */
static int read_file(const char *path, uint8_t **data, size_t *len)
{
	size_t cap = 1 << 16, used = 0;
	uint8_t *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;
		if (!buf || used + AV_INPUT_BUFFER_PADDING_SIZE >= cap) {
			size_t want = buf ? 2 * cap : cap;
			uint8_t *b = realloc(buf, want);
			if (!b) {
				ret = -ENOMEM;
				break;
			}
			buf = b;
			cap = want;
		}
		n = read(fd, buf + used, cap - used - AV_INPUT_BUFFER_PADDING_SIZE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : 0;
			break;
		}
		used += (size_t)n;
	}
	close(fd);
	if (ret < 0) {
		free(buf);
		return ret;
	}
	memset(buf + used, 0, AV_INPUT_BUFFER_PADDING_SIZE);
	*data = buf;
	*len = used;
	return 0;
}

/* "SEGMENT: what .hfinfo says went wrong" (or fallback when it says nothing) in msg. */
static void info_error(const char *seg, const char *fallback, char *msg, size_t len)
{
	char why[1024];

	ctl_json_info_error(seg, fallback, why, sizeof(why));
	snprintf(msg, len, "%s: %s", seg, why);
}

/* Every thumbnail and its number into s. 0, or -1 with "SEGMENT: reason" in msg. */
static int sheet_fill(struct sheet *s, const struct layout *l, const char *seg, const char *format,
		      char *msg, size_t len)
{
	struct thumbs t = {NULL};
	char frame[PATH_MAX], why[PATH_MAX + 64], text[32];
	int ret = thumbs_open(&t, format);

	if (ret < 0) {
		snprintf(msg, len, "%s: no %s decoder: %s", seg, format, strerror(-ret));
		return -1;
	}
	for (int i = 0; i < l->n && ret == 0; i++) {
		int64_t slot = layout_slot(l, i);
		int x = SHEET_GAP + i % l->cols * (l->tw + SHEET_GAP);
		int y = SHEET_GAP + i / l->cols * (l->th + l->label + SHEET_GAP);
		uint8_t *data = NULL;
		size_t size = 0;

		snprintf(frame, sizeof(frame), "%s/frame_%05" PRId64 ".%s", seg, slot + 1, format);
		ret = read_file(frame, &data, &size);
		if (ret < 0) {
			snprintf(why, sizeof(why), "frame_%05" PRId64 ".%s: %s", slot + 1, format,
				 strerror(-ret));
			info_error(seg, why, msg, len);
			break;
		}
		ret = thumbs_put(&t, data, size, s->rgb + (size_t)y * s->stride + (size_t)x * 3,
				 s->stride, l->tw, l->th);
		free(data);
		if (ret < 0) {
			snprintf(msg, len, "%s: frame_%05" PRId64 ".%s does not decode", seg,
				 slot + 1, format);
			break;
		}
		snprintf(text, sizeof(text), "%" PRId64, slot + 1);
		draw_text(s, x, l->tw, y + l->th + SHEET_GAP / 2, text, l->scale);
	}
	thumbs_close(&t);
	return ret < 0 ? -1 : 0;
}

/* Each thumbnail's source time under its number. */
static void draw_times(struct sheet *s, const struct layout *l, const int64_t *ms)
{
	char text[32];

	for (int i = 0; i < l->n; i++) {
		int x = SHEET_GAP + i % l->cols * (l->tw + SHEET_GAP);
		int y = SHEET_GAP + i / l->cols * (l->th + l->label + SHEET_GAP);

		fmt_ms(ms[i], text, sizeof(text));
		draw_text(s, x, l->tw, y + l->th + SHEET_GAP / 2 + 9 * l->scale, text, l->scale);
	}
}

/* 0 or an errno. */
static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* OUT written whole under a temporary name in its directory, then renamed over it, so a
 * failed run leaves no partial file. 0, or -1 with the reason in msg. */
static int write_atomic(const char *out, const struct image_buf *png, char *msg, size_t len)
{
	const char *slash = strrchr(out, '/');
	char tmp[PATH_MAX];
	mode_t mask;
	int fd, n, err;

	if (slash)
		n = snprintf(tmp, sizeof(tmp), "%.*s/.%s.XXXXXX", (int)(slash - out), out,
			     slash + 1);
	else
		n = snprintf(tmp, sizeof(tmp), ".%s.XXXXXX", out);
	if (n >= (int)sizeof(tmp)) {
		snprintf(msg, len, "%s: %s", out, strerror(ENAMETOOLONG));
		return -1;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		snprintf(msg, len, "%s: %s", out, strerror(errno));
		return -1;
	}
	/* mkstemp makes 0600; give the sheet the mode any new file of this user gets */
	mask = umask(0);
	umask(mask);
	err = fchmod(fd, 0666 & ~mask) < 0 ? errno : write_all(fd, png->data, png->len);
	if (close(fd) < 0 && !err)
		err = errno;
	if (!err && rename(tmp, out) < 0)
		err = errno;
	if (err) {
		unlink(tmp);
		snprintf(msg, len, "%s: %s", out, strerror(err));
		return -1;
	}
	return 0;
}

static int sheet_write(const struct sheet *s, const char *out, char *msg, size_t len)
{
	struct picture pic = {s->rgb, s->stride, s->width, s->height, 3, 8, 2, 2};
	struct image_opts opts = {
	    .format = IMAGE_PNG,
	    .png_level = 9, /* written once, looked at often: small over fast */
	    .png_filter = HF_PNG_FILTER_PAETH,
	    .png_deflate = HF_PNG_DEFLATE_LIBDEFLATE,
	};
	struct image_buf png = {NULL, 0, 0};
	char err[256];
	int ret = image_encode(&pic, &opts, &png, err, sizeof(err));

	if (ret < 0)
		snprintf(msg, len, "encoding the sheet: %s", err);
	else
		ret = write_atomic(out, &png, msg, len);
	image_buf_free(&png);
	image_encode_thread_done();
	return ret < 0 ? -1 : 0;
}

/* SEGMENT/.hfinfo's count, size, format and segment name into a layout and name. 0, or
 * -1 with msg. */
static int sheet_plan(const char *seg, int columns, int tw, struct layout *l, char *format,
		      size_t format_len, char *name, size_t name_len, char *msg, size_t len)
{
	json_t *info = NULL;
	uint64_t count = 0, fw = 0, fh = 0;
	int ret = -1;

	if (ctl_json_load_in(seg, ".hfinfo", "is not a segment directory of an hfmount mount",
			     &info, msg, len) < 0)
		return -1;
	if (!ctl_json_u64(json_object_get(info, "count"), &count) || count == 0 ||
	    !ctl_json_u64(json_object_get(info, "width"), &fw) ||
	    !ctl_json_u64(json_object_get(info, "height"), &fh) || fw == 0 || fh == 0 ||
	    fw > INT_MAX || fh > INT_MAX)
		snprintf(msg, len, "%s: %s", seg,
			 ctl_json_str(json_object_get(info, "error"), "the segment has no frames"));
	else if (layout_make(l, (int64_t)count, columns, tw, (int)fw, (int)fh) < 0)
		snprintf(msg, len,
			 "%s: a sheet of %d px wide thumbnails of %" PRIu64 "x%" PRIu64
			 " frames is too large",
			 seg, tw, fw, fh);
	else
		ret = 0;
	snprintf(format, format_len, "%s", ctl_json_str(json_object_get(info, "format"), "png"));
	snprintf(name, name_len, "%s", ctl_json_str(json_object_get(info, "segment"), ""));
	json_decref(info);
	return ret;
}

/* (ticks - origin) * tb in ms, rounded half away from zero; exact (128-bit). */
static int64_t ticks_ms(int64_t ticks, const struct source_index *idx)
{
	__int128 num = ((__int128)ticks - idx->origin) * idx->tb.num * 1000;
	__int128 den = idx->tb.den, mag = num < 0 ? -num : num;
	__int128 ms = (mag + den / 2) / den;

	return (int64_t)(num < 0 ? -ms : ms);
}

/*
 * The source time (ms) of the frame each thumbnail shows into ms[0..l->n): the video
 * beside SEGMENT, read through the mount, indexed over the segment's window, each slot's
 * frame chosen by slots_frame, as the engine does. name is the segment's name (.hfinfo's,
 * else SEGMENT's last component). 0, or -1 with the reason in msg.
 */
static int sheet_times(const char *seg, const char *name, const struct layout *l, int64_t *ms,
		       char *msg, size_t len)
{
	struct source_index *idx = NULL;
	struct slot_frames fr;
	struct segname sn;
	char dir[PATH_MAX], video[PATH_MAX + NAME_MAX + 2], err[512];
	char *slash;
	int fd, ret = -1;

	snprintf(dir, sizeof(dir), "%s", seg);
	for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
		dir[n - 1] = 0;
	slash = strrchr(dir, '/');
	if (!*name)
		name = slash ? slash + 1 : dir;
	if (segname_parse(name, &sn) < 0) {
		snprintf(msg, len, "%s is not a segment name", name);
		return -1;
	}
	if (!slash)
		snprintf(video, sizeof(video), "%.*s", (int)sn.name_len, name);
	else
		snprintf(video, sizeof(video), "%.*s/%.*s", (int)(slash - dir), dir,
			 (int)sn.name_len, name);
	fd = open(video, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(msg, len, "%s: %s", video, strerror(errno));
		return -1;
	}
	if (source_index_build(fd, video, sn.start, sn.dur, &idx, NULL, err, sizeof(err)) < 0) {
		snprintf(msg, len, "%s", err);
		goto out_close;
	}
	if (idx->n == 0) {
		snprintf(msg, len, "%s has no frames in the segment's window", video);
		goto out_free;
	}
	fr = source_index_frames(idx);
	for (int i = 0; i < l->n; i++) {
		int64_t f = slots_frame(&fr, sn.start, sn.fps, layout_slot(l, i));
		if (f < 0) {
			snprintf(msg, len, "slot %" PRId64 ": %s", layout_slot(l, i),
				 strerror((int)-f));
			goto out_free;
		}
		ms[i] = ticks_ms(idx->pts[f], idx);
	}
	ret = 0;
out_free:
	source_index_free(&idx);
out_close:
	close(fd);
	return ret;
}

/* --columns and --width: an integer in [lo, hi], or -1. */
static int int_arg(const char *s, int lo, int hi)
{
	char *end;
	long v = strtol(s, &end, 10);
	return *s && !*end && v >= lo && v <= hi ? (int)v : -1;
}

int ctl_contact_sheet(int argc, char **argv)
{
	static const struct option longopts[] = {{"columns", required_argument, NULL, 'c'},
						 {"width", required_argument, NULL, 'w'},
						 {"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};
	struct layout l = {0};
	struct sheet s = {NULL};
	char format[8], name[NAME_MAX + 1], msg[PATH_MAX + 256];
	int64_t *ms = NULL;
	const char *seg, *out;
	int columns = 10, tw = 160, c, ret = 1;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(sheet_help, stdout);
			return 0;
		case 'c':
			columns = int_arg(optarg, 1, 100);
			break;
		case 'w':
			tw = int_arg(optarg, 48, 1024);
			break;
		default:
			fprintf(stderr, "hfctl contact-sheet: bad option or missing value: %s\n",
				argv[optind - 1]);
			fputs(sheet_help, stderr);
			return 2;
		}
		if (columns < 0 || tw < 0) {
			fprintf(stderr, "hfctl contact-sheet: %s %s: out of range\n",
				argv[optind - 2], optarg);
			fputs(sheet_help, stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "hfctl contact-sheet: expected SEGMENT and OUT.png\n");
		fputs(sheet_help, stderr);
		return 2;
	}
	seg = argv[optind];
	out = argv[optind + 1];
	if (sheet_plan(seg, columns, tw, &l, format, sizeof(format), name, sizeof(name), msg,
		       sizeof(msg)) < 0)
		goto out_report;
	s.width = l.width;
	s.height = l.height;
	s.stride = (size_t)l.width * 3;
	s.rgb = malloc(s.stride * (size_t)l.height);
	if (!s.rgb) {
		snprintf(msg, sizeof(msg), "%s", strerror(ENOMEM));
		goto out_report;
	}
	memset(s.rgb, SHEET_BG, s.stride * (size_t)l.height);
	if (sheet_fill(&s, &l, seg, format, msg, sizeof(msg)) < 0)
		goto out_free;
	/* after the frames: a segment that fails says so in one line, as before */
	ms = malloc((size_t)l.n * sizeof(*ms));
	if (!ms) {
		snprintf(msg, sizeof(msg), "%s", strerror(ENOMEM));
		goto out_free;
	}
	if (sheet_times(seg, name, &l, ms, msg, sizeof(msg)) == 0)
		draw_times(&s, &l, ms);
	else
		fprintf(stderr, "hfctl contact-sheet: warning: the sheet has no times: %s\n", msg);
	if (sheet_write(&s, out, msg, sizeof(msg)) < 0)
		goto out_free;
	printf("%s: %d of %" PRId64 " frames, %d x %d thumbnails of %dx%d, %dx%d px\n", out, l.n,
	       l.count, l.cols, l.rows, l.tw, l.th, l.width, l.height);
	ret = 0;
out_free:
	free(ms);
	free(s.rgb);
out_report:
	if (ret) {
		/* msg may quote .hfinfo, which quotes file names: no control characters out */
		for (char *p = msg; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		fprintf(stderr, "hfctl contact-sheet: %s\n", msg);
	}
	return ret;
}
