/*
 * Demuxing from a descriptor through our own AVIOContext. Reads are pread()s at our own
 * position, so several demuxers may share one file without sharing an offset.
 */
#include "decode/input_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IO_BUF (64 * 1024)

struct input_file {
	int fd;
	int64_t pos, size;
	uint64_t bytes; /* read so far */
	/* [data_lo, data_hi): an extent known to hold data (SEEK_DATA/SEEK_HOLE), empty at first */
	int64_t data_lo, data_hi;
	uint64_t holes;       /* bytes of holes inside the file served as zeros, not read */
	uint64_t budget;      /* bytes read plus holes served allowed, 0: none */
	uint64_t deadline_ns; /* CLOCK_MONOTONIC time after which reads fail, 0: none */
	bool over;            /* a read failed on the budget or the deadline */
	/*
	 * The most the next read takes: small after a seek, doubling as reads go on in order.
	 * A bisecting seek (MPEG-TS has no index) looks at a few hundred bytes at each of its
	 * twenty-odd probes; reading a whole buffer at each would cost more than the window.
	 */
	size_t run;
};

#define IO_AFTER_SEEK (8 * 1024)

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Where the data around pos is: 0 with [data_lo, data_hi) the extent pos is in, or the
 * hole before the next one (data_lo > pos); 1 when nothing but a hole is left (the end
 * of what the file holds: a padded or sparse tail costs nothing); 0 with the whole file
 * as data where the filesystem cannot say.
 */
static int find_data(struct input_file *in)
{
	off_t d = lseek(in->fd, (off_t)in->pos, SEEK_DATA), h;

	if (d < 0 && errno == ENXIO)
		return 1;
	if (d < 0) {
		in->data_lo = 0;
		in->data_hi = INT64_MAX;
		return 0;
	}
	h = lseek(in->fd, d, SEEK_HOLE);
	in->data_lo = d;
	in->data_hi = h > d ? h : INT64_MAX;
	return 0;
}

/*
 * Demuxers that read other files than the one they are given: playlists and manifests
 * (hls, dash, imf), lists (concat), image sequences (image2 and its pattern), session
 * descriptions (sdp, rtsp, rtp) and formats that open sibling files (mlv). Any demuxer
 * flagged AVFMT_NOFILE (it opens its own input by name) is refused as well.
 */
static const char *const refused[] = {
    "hls", "applehttp", "dash", "imf",	    "concat",	   "image2", "sdp",    "rtsp",
    "rtp", "mlv",	"tee",	"avisynth", "vapoursynth", "lavfi",  "bluray", NULL};

static bool is_refused(const AVInputFormat *f)
{
	const char *names = f->name;

	if (f->flags & AVFMT_NOFILE)
		return true;
	while (names && *names) {
		size_t len = strcspn(names, ",");
		for (const char *const *r = refused; *r; r++)
			if (strlen(*r) == len && strncmp(*r, names, len) == 0)
				return true;
		names += len;
		if (*names == ',')
			names++;
	}
	return false;
}

static int io_read(void *opaque, uint8_t *buf, int size)
{
	struct input_file *in = opaque;
	size_t want = (size_t)size;
	ssize_t n;

	if ((in->budget && in->bytes + in->holes >= in->budget) ||
	    (in->deadline_ns && mono_ns() >= in->deadline_ns)) {
		in->over = true;
		return AVERROR(EFBIG);
	}
	if (in->pos < in->data_lo || in->pos >= in->data_hi) {
		if (find_data(in) == 1)
			return AVERROR_EOF;
		if (in->pos < in->data_lo) { /* a hole inside the file: zeros, not read */
			n = in->data_lo - in->pos < size ? (ssize_t)(in->data_lo - in->pos) : size;
			memset(buf, 0, (size_t)n);
			in->pos += n;
			in->holes += (uint64_t)n;
			return (int)n;
		}
	}
	if (in->run && want > in->run)
		want = in->run;
	if (in->data_hi - in->pos < (int64_t)want)
		want = (size_t)(in->data_hi - in->pos);
	do
		n = pread(in->fd, buf, want, in->pos);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return AVERROR(errno);
	if (n == 0)
		return AVERROR_EOF;
	in->pos += n;
	in->bytes += (uint64_t)n;
	if (in->run && in->run < IO_BUF)
		in->run *= 2;
	return (int)n;
}

static int64_t io_seek(void *opaque, int64_t offset, int whence)
{
	struct input_file *in = opaque;

	switch (whence & ~AVSEEK_FORCE) {
	case AVSEEK_SIZE:
		return in->size;
	case SEEK_SET:
		break;
	case SEEK_CUR:
		offset += in->pos;
		break;
	case SEEK_END:
		offset += in->size;
		break;
	default:
		return AVERROR(EINVAL);
	}
	if (offset < 0)
		return AVERROR(EINVAL);
	if (offset != in->pos)
		in->run = IO_AFTER_SEEK;
	in->pos = offset;
	return offset;
}

/* Every other file or URL a demuxer tries to open. */
static int io_open_refused(AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
			   AVDictionary **options)
{
	(void)s;
	(void)pb;
	(void)url;
	(void)flags;
	(void)options;
	return AVERROR(EPERM);
}

static void io_free(AVIOContext **pio)
{
	AVIOContext *io = *pio;
	if (!io)
		return;
	if (io->opaque) {
		struct input_file *in = io->opaque;
		close(in->fd);
		free(in);
	}
	av_freep(&io->buffer);
	avio_context_free(pio);
}

int input_open(int fd, const char *name, AVFormatContext **out, char *err, size_t errlen)
{
	struct input_file *in = NULL;
	AVIOContext *io = NULL;
	AVFormatContext *fmt = NULL;
	const AVInputFormat *ifmt = NULL;
	AVDictionary *opts = NULL;
	unsigned char *buf = NULL;
	struct stat st;
	int ret;

	*out = NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", name);
		return -EINVAL;
	}
	in = calloc(1, sizeof(*in));
	buf = av_malloc(IO_BUF);
	if (!in || !buf)
		goto out_nomem;
	in->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (in->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s could not be opened: %s", name, strerror(errno));
		free(in);
		av_free(buf);
		return ret;
	}
	in->size = st.st_size;
	io = avio_alloc_context(buf, IO_BUF, 0, in, io_read, NULL, io_seek);
	if (!io) {
		close(in->fd);
		goto out_nomem;
	}
	buf = NULL;
	in = NULL; /* io owns both now */

	ret = av_probe_input_buffer2(io, &ifmt, name, NULL, 0, 0);
	if (ret < 0 || !ifmt) {
		char why[128];
		av_strerror(ret, why, sizeof(why));
		snprintf(err, errlen, "%s is not a video this build can read (%s)", name, why);
		ret = ret == AVERROR(ENOMEM) ? -ENOMEM : -EIO;
		goto out_free_io;
	}
	if (is_refused(ifmt)) {
		snprintf(err, errlen,
			 "%s is a %s file, which names other files to read; hfmount decodes only "
			 "the file itself",
			 name, ifmt->name);
		ret = -EPERM;
		goto out_free_io;
	}
	fmt = avformat_alloc_context();
	if (!fmt)
		goto out_nomem;
	fmt->pb = io;
	fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
	fmt->io_open = io_open_refused;
	/* No protocol at all: a nested open of any kind fails before it starts. */
	av_dict_set(&opts, "protocol_whitelist", "none", 0);
	av_dict_set(&opts, "format_whitelist", ifmt->name, 0);
	ret = avformat_open_input(&fmt, name, ifmt, &opts);
	av_dict_free(&opts);
	if (ret < 0) { /* fmt was freed; io is still ours */
		char why[128];
		av_strerror(ret, why, sizeof(why));
		snprintf(err, errlen, "%s is not a video this build can read (%s)", name, why);
		ret = ret == AVERROR(ENOMEM) ? -ENOMEM : -EIO;
		goto out_free_io;
	}
	*out = fmt;
	return 0;

out_nomem:
	snprintf(err, errlen, "out of memory opening %s", name);
	ret = -ENOMEM;
	free(in);
	av_free(buf);
out_free_io:
	io_free(&io);
	return ret;
}

void input_close(AVFormatContext **pfmt)
{
	AVFormatContext *fmt = pfmt ? *pfmt : NULL;
	AVIOContext *io;

	if (!fmt)
		return;
	io = fmt->pb;
	avformat_close_input(pfmt); /* custom I/O: it leaves pb to us */
	io_free(&io);
}

void input_set_budget(AVFormatContext *fmt, uint64_t bytes, uint64_t deadline_ns)
{
	struct input_file *in = fmt && fmt->pb ? fmt->pb->opaque : NULL;
	if (!in)
		return;
	in->budget = bytes;
	in->deadline_ns = deadline_ns;
}

bool input_over_budget(const AVFormatContext *fmt)
{
	const struct input_file *in = fmt && fmt->pb ? fmt->pb->opaque : NULL;
	return in && in->over;
}

uint64_t input_bytes_read(const AVFormatContext *fmt)
{
	const struct input_file *in = fmt && fmt->pb ? fmt->pb->opaque : NULL;
	return in ? in->bytes : 0;
}
