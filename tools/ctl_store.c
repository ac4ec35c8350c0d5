/*
 * hfctl ls, gc and verify: the store, mounted or not (cache/gc.h reads it whole).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libavcodec/avcodec.h>
#include <libavutil/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/gc.h"
#include "cache/store.h"
#include "conf/conf.h"
#include "fs/segname.h"
#include "tools/ctl.h"

extern char **environ;

#define NS 1000000000LL

static int open_store(const char *cmd, const char *dir, struct store **st)
{
	struct store_opts so = {.existing = true};
	char err[512];

	if (store_open(dir, &so, st, err, sizeof(err)) < 0) {
		fprintf(stderr, "hfctl %s: %s\n", cmd, err);
		return 1;
	}
	return 0;
}

static void fmt_time(int64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / NS);
	struct tm tm;

	if (ns <= 0 || !localtime_r(&t, &tm)) {
		snprintf(buf, len, "-");
		return;
	}
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

/* "dir/clip.mp4@1.5+2@30" of a manifest: the source's directory and the segment name. */
static void unit_name(const struct gc_unit *u, char *buf, size_t len)
{
	const char *slash;

	if (!u->m) {
		snprintf(buf, len, "%s", u->path);
		return;
	}
	slash = strrchr(u->m->source, '/');
	snprintf(buf, len, "%.*s/%s", slash ? (int)(slash - u->m->source) : 0, u->m->source,
		 u->m->segment);
}

/* RANGE and FPS columns from the segment name: "1.5+2" and "30". */
static void range_fps(const struct gc_unit *u, char *range, size_t rlen, char *fps, size_t flen)
{
	struct segname sn;
	char a[48], b[48];

	snprintf(range, rlen, "-");
	snprintf(fps, flen, "-");
	if (!u->m || segname_parse(u->m->segment, &sn) < 0)
		return;
	segname_format_q(sn.start, a, sizeof(a));
	segname_format_q(sn.dur, b, sizeof(b));
	snprintf(range, rlen, "%s+%s", a, b);
	if (segname_format_q(sn.fps, fps, flen) < 0)
		snprintf(fps, flen, "%" PRId64 ":%" PRId64, sn.fps.num, sn.fps.den);
}

static const char *kind_name(enum gc_kind k)
{
	static const char *const names[] = {"complete", "partial", "unnamed", "damaged", "index",
					    "lease"};
	return names[k];
}

static void ls_usage(FILE *f)
{
	fprintf(f, "usage: hfctl ls STORE\n"
		   "Lists the stored segments, least recently used first (the order gc evicts):\n"
		   "last use, frames, stored images and their bytes, range, fps, state, segment.\n");
}

int ctl_ls(int argc, char **argv)
{
	struct store *st;
	struct census *c;
	struct census_totals t;
	char when[32], size[32], name[8192], range[96], fps[48];
	int ret;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		ls_usage(stdout);
		return 0;
	}
	if (argc != 2) {
		ls_usage(stderr);
		return 2;
	}
	if (open_store("ls", argv[1], &st))
		return 1;
	ret = census_take(st, &c);
	if (ret < 0) {
		fprintf(stderr, "hfctl ls: %s cannot be read: %s\n", argv[1], strerror(-ret));
		store_close(&st);
		return 1;
	}
	printf("%-19s  %7s  %7s  %10s  %-14s  %-10s  %-8s  %s\n", "LAST USE", "FRAMES", "IMAGES",
	       "BYTES", "RANGE", "FPS", "STATE", "SEGMENT");
	for (size_t i = 0; i < census_units(c); i++) {
		const struct gc_unit *u = census_unit(c, i);
		if (u->kind == GC_IMAGE || u->kind == GC_INDEX || u->kind == GC_LEASE)
			continue; /* summed below */
		fmt_time(u->last_use_ns, when, sizeof(when));
		ctl_fmt_size(u->bytes, size, sizeof(size));
		unit_name(u, name, sizeof(name));
		range_fps(u, range, sizeof(range), fps, sizeof(fps));
		printf("%-19s  %7" PRId64 "  %7" PRIu64 "  %10s  %-14s  %-10s  %-8s  %s\n", when,
		       u->m ? u->m->count : 0, u->images, size, range, fps, kind_name(u->kind), name);
	}
	census_totals(c, &t);
	ctl_fmt_size(t.bytes, size, sizeof(size));
	printf("\n%" PRIu64 " segments, %" PRIu64 " partial, %" PRIu64 " images, %s", t.segments,
	       t.partials, t.images, size);
	if (t.unnamed_images) {
		ctl_fmt_size(t.unnamed_bytes, size, sizeof(size));
		printf("; %" PRIu64 " images (%s) in no segment", t.unnamed_images, size);
	}
	if (t.indexes) {
		ctl_fmt_size(t.index_bytes, size, sizeof(size));
		printf("; %" PRIu64 " source indexes (%s)", t.indexes, size);
	}
	if (t.leases) {
		ctl_fmt_size(t.lease_bytes, size, sizeof(size));
		printf("; %" PRIu64 " lease files (%s)", t.leases, size);
	}
	ctl_fmt_size(census_bytes(&t), size, sizeof(size));
	printf("; %s in all", size);
	if (t.damaged)
		printf("; %" PRIu64 " damaged manifests", t.damaged);
	if (t.missing)
		printf("; %" PRIu64 " images named but missing (extracted again on read)", t.missing);
	printf("\n");
	census_free(&c);
	store_close(&st);
	return 0;
}

/* ---- gc ---- */

static void gc_usage(FILE *f)
{
	fprintf(f,
		"usage: hfctl gc STORE [--max-size SIZE] [--min-free SIZE] [--in-use SECONDS]\n"
		"                      [--config FILE] [--dry-run]\n"
		"Evicts least recently used segments (and images no kept segment names, source\n"
		"indexes, and lease files nobody holds) until the store holds at most 90%% of SIZE\n"
		"(images, manifests, indexes and lease files all count) and its filesystem has\n"
		"min-free plus 10%% free.\n"
		"Defaults come from the configuration, as for hfmount ([store] max_size, min_free).\n"
		"Units used in the last --in-use seconds (default %d) are kept: a running hfmount\n"
		"may be using them. --max-size 0 removes everything else.\n",
		GC_IN_USE_S);
}

static void warn_cb(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "hfctl: warning: %s\n", msg);
}

static void gc_report(void *arg, const struct gc_unit *u, uint64_t images, uint64_t bytes)
{
	bool dry = *(bool *)arg;
	char when[32], size[32], name[8192];

	fmt_time(u->last_use_ns, when, sizeof(when));
	ctl_fmt_size(bytes, size, sizeof(size));
	unit_name(u, name, sizeof(name));
	printf("%s  %s  %6" PRIu64 " images  %10s  %-8s  %s\n", dry ? "would remove" : "removed",
	       when, images, size, kind_name(u->kind), name);
}

int ctl_gc(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"max-size", required_argument, NULL, 's'}, {"min-free", required_argument, NULL, 'f'},
		{"in-use", required_argument, NULL, 'u'},   {"config", required_argument, NULL, 'c'},
		{"dry-run", no_argument, NULL, 'n'},        {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	const char *max_arg = NULL, *free_arg = NULL, *config = NULL;
	struct hf_conf conf;
	struct gc_opts o = {0};
	struct gc_result r;
	struct store *st;
	char err[512], a[32], b[32];
	double in_use = GC_IN_USE_S;
	bool dry = false;
	int opt, ret;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "n", longopts, NULL)) != -1) {
		char *end;
		switch (opt) {
		case 's': max_arg = optarg; break;
		case 'f': free_arg = optarg; break;
		case 'c': config = optarg; break;
		case 'n': dry = true; break;
		case 'u':
			in_use = strtod(optarg, &end);
			if (*end || in_use < 0) {
				fprintf(stderr, "hfctl gc: --in-use %s: expected seconds >= 0\n", optarg);
				return 2;
			}
			break;
		case 'h': gc_usage(stdout); return 0;
		default: gc_usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		gc_usage(stderr);
		return 2;
	}
	if (conf_load(&conf, config, environ, warn_cb, NULL, err, sizeof(err)) < 0 ||
	    (max_arg && conf_set_option(&conf, "max_size", max_arg, "--max-size", err, sizeof(err)) < 0) ||
	    (free_arg && conf_set_option(&conf, "min_free", free_arg, "--min-free", err, sizeof(err)) < 0)) {
		fprintf(stderr, "hfctl gc: %s\n", err);
		return 2;
	}
	if (open_store("gc", argv[optind], &st))
		return 1;
	if (!dry)
		store_clean(st);
	o.max_size = max_arg && conf.max_size == 0 ? 1 : conf.max_size;
	o.min_free = conf.min_free;
	o.dry_run = dry;
	o.in_use_ns = (int64_t)(in_use * NS);
	o.removed = gc_report;
	o.arg = &dry;
	ret = store_gc(st, &o, &r);
	store_close(&st);
	if (ret < 0) {
		fprintf(stderr, "hfctl gc: %s cannot be read: %s\n", argv[optind], strerror(-ret));
		return 1;
	}
	ctl_fmt_size(r.bytes_before, a, sizeof(a));
	ctl_fmt_size(r.bytes_after, b, sizeof(b));
	if (!r.over)
		printf("within bounds: %s stored", a);
	else
		printf("%s %" PRIu64 " segments, %" PRIu64 " images, %" PRIu64 " indexes, %" PRIu64
		       " lease files: %s -> %s stored",
		       dry ? "would remove" : "removed", r.segments_removed, r.images_removed,
		       r.indexes_removed, r.leases_removed, a, b);
	if (r.free_after != UINT64_MAX) {
		ctl_fmt_size(r.free_after, a, sizeof(a));
		printf(", %s free", a);
	}
	if (r.kept_in_use)
		printf("; kept %" PRIu64 " in use (used in the last %g s)", r.kept_in_use, in_use);
	printf("\n");
	if (r.over && !r.within) {
		fprintf(stderr, "hfctl gc: the store stays over its bounds: what is left is in use\n");
		return 1;
	}
	return 0;
}

/* ---- verify ---- */

struct verify {
	AVPacket *pkt;
	AVFrame *frame;
	bool delete;
	uint64_t checked, damaged;
};

static AVCodecContext *strict_decoder(enum AVCodecID id);

/*
 * Decodes one image completely, with CRC checks; "" when sound, else why not. A fresh
 * decoder each time: libavcodec's PNG decoder carries state from one image to the next.
 */
static void check_image(struct verify *v, const char *ext, const char *path, uint64_t size,
			char *why, size_t len)
{
	enum AVCodecID id = strcmp(ext, "png") == 0   ? AV_CODEC_ID_PNG
			    : strcmp(ext, "jpg") == 0 ? AV_CODEC_ID_MJPEG
						      : AV_CODEC_ID_NONE;
	AVCodecContext *cc;
	FILE *f;
	uint8_t *buf;
	int ret;

	why[0] = 0;
	if (id == AV_CODEC_ID_NONE) {
		snprintf(why, len, "unknown image type .%s", ext);
		return;
	}
	cc = strict_decoder(id);
	if (!cc) {
		snprintf(why, len, "no %s decoder in this libavcodec", ext);
		return;
	}
	if (size == 0) {
		snprintf(why, len, "empty file");
		avcodec_free_context(&cc);
		return;
	}
	buf = av_malloc(size + AV_INPUT_BUFFER_PADDING_SIZE);
	f = fopen(path, "rb");
	if (!buf || !f || fread(buf, 1, size, f) != size) {
		snprintf(why, len, "cannot be read: %s", f ? "short read" : strerror(errno));
		if (f)
			fclose(f);
		av_free(buf);
		avcodec_free_context(&cc);
		return;
	}
	fclose(f);
	memset(buf + size, 0, AV_INPUT_BUFFER_PADDING_SIZE);
	av_packet_unref(v->pkt);
	ret = av_packet_from_data(v->pkt, buf, (int)size);
	if (ret < 0) {
		av_free(buf);
		snprintf(why, len, "out of memory");
		avcodec_free_context(&cc);
		return;
	}
	ret = avcodec_send_packet(cc, v->pkt);
	if (ret >= 0)
		ret = avcodec_receive_frame(cc, v->frame);
	if (ret < 0) {
		char e[AV_ERROR_MAX_STRING_SIZE];
		av_strerror(ret, e, sizeof(e));
		snprintf(why, len, "does not decode: %s", e);
	} else if (v->frame->decode_error_flags || (v->frame->flags & AV_FRAME_FLAG_CORRUPT)) {
		snprintf(why, len, "decodes with errors");
	}
	av_frame_unref(v->frame);
	avcodec_free_context(&cc);
}

static void verify_one(void *arg, const struct hf_key *k, const char *ext, const char *path,
		       uint64_t size, uint64_t named_size)
{
	struct verify *v = arg;
	char why[256];

	(void)k;
	check_image(v, ext, path, size, why, sizeof(why));
	if (!why[0] && named_size && named_size != size)
		snprintf(why, sizeof(why), "%" PRIu64 " bytes where its segment recorded %" PRIu64,
			 size, named_size);
	v->checked++;
	if (!why[0])
		return;
	v->damaged++;
	if (v->delete && unlink(path) == 0)
		printf("damaged, removed: %s: %s\n", path, why);
	else
		printf("damaged: %s: %s\n", path, why);
}

static AVCodecContext *strict_decoder(enum AVCodecID id)
{
	const AVCodec *codec = avcodec_find_decoder(id);
	AVCodecContext *cc = codec ? avcodec_alloc_context3(codec) : NULL;

	if (!cc)
		return NULL;
	cc->err_recognition = AV_EF_CRCCHECK | AV_EF_BITSTREAM | AV_EF_BUFFER | AV_EF_EXPLODE;
	cc->thread_count = 1;
	if (avcodec_open2(cc, codec, NULL) < 0)
		avcodec_free_context(&cc);
	return cc;
}

static void verify_usage(FILE *f)
{
	fprintf(f, "usage: hfctl verify STORE [--delete]\n"
		   "Decodes every stored image (PNG CRCs checked) and checks every segment manifest;\n"
		   "reports each damaged one and exits 1 if any. --delete removes damaged images so\n"
		   "the next read extracts them again.\n");
}

int ctl_verify(int argc, char **argv)
{
	struct verify v = {0};
	struct store *st;
	struct census *c;
	struct census_totals t;
	const char *dir = NULL;
	int ret;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--delete") == 0) {
			v.delete = true;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			verify_usage(stdout);
			return 0;
		} else if (argv[i][0] == '-' || dir) {
			verify_usage(stderr);
			return 2;
		} else {
			dir = argv[i];
		}
	}
	if (!dir) {
		verify_usage(stderr);
		return 2;
	}
	if (open_store("verify", dir, &st))
		return 1;
	ret = census_take(st, &c);
	if (ret < 0) {
		fprintf(stderr, "hfctl verify: %s cannot be read: %s\n", dir, strerror(-ret));
		store_close(&st);
		return 1;
	}
	av_log_set_level(AV_LOG_QUIET);
	v.pkt = av_packet_alloc();
	v.frame = av_frame_alloc();
	if (!v.pkt || !v.frame) {
		fprintf(stderr, "hfctl verify: out of memory\n");
		ret = -ENOMEM;
		goto out;
	}
	census_images(c, verify_one, &v);
	for (size_t i = 0; i < census_units(c); i++) {
		const struct gc_unit *u = census_unit(c, i);
		if (u->kind != GC_DAMAGED)
			continue;
		v.damaged++;
		if (v.delete && unlink(u->path) == 0)
			printf("damaged, removed: %s: not a readable manifest\n", u->path);
		else
			printf("damaged: %s: not a readable manifest\n", u->path);
	}
	census_totals(c, &t);
	printf("%" PRIu64 " images checked, %" PRIu64 " damaged", v.checked, v.damaged);
	if (t.missing)
		printf("; %" PRIu64 " images named by segments are missing (extracted again on read)",
		       t.missing);
	printf("\n");
out:
	av_packet_free(&v.pkt);
	av_frame_free(&v.frame);
	census_free(&c);
	store_close(&st);
	return ret < 0 ? 1 : v.damaged ? 1 : 0;
}
