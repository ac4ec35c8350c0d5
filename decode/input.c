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
#include <unistd.h>

#define IO_BUF (64 * 1024)

struct input_file {
	int fd;
	int64_t pos, size;
	uint64_t bytes; /* read so far */
};

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
	ssize_t n;

	do
		n = pread(in->fd, buf, (size_t)size, in->pos);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return AVERROR(errno);
	if (n == 0)
		return AVERROR_EOF;
	in->pos += n;
	in->bytes += (uint64_t)n;
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

uint64_t input_bytes_read(const AVFormatContext *fmt)
{
	const struct input_file *in = fmt && fmt->pb ? fmt->pb->opaque : NULL;
	return in ? in->bytes : 0;
}
