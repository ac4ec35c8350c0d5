/*
 * The hfctl subcommands that talk to a running mount through its hidden files:
 * status and top read MOUNT/.hfstats; prefetch reads SEGMENT/.hfinfo and looks up the
 * frames in order (a frame's lookup blocks in the daemon until that frame is stored, so
 * waiting needs no polling).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "tools/ctl.h"
#include "tools/ctl_json.h"

/* ---- shared by the three subcommands ---- */

static const struct option help_only[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

/* --help prints the usage on stdout (exit 0); a mistake prints it on stderr (exit 2). */
static int usage(const char *text, bool asked)
{
	fputs(text, asked ? stdout : stderr);
	return asked ? 0 : 2;
}

/* After getopt returned '?' or ':' (optstring starts with ':'). */
static int bad_option(const char *cmd, int c, char **argv, const char *text)
{
	if (c == ':')
		fprintf(stderr, "hfctl %s: option -%c needs a value\n", cmd, optopt);
	else if (optopt)
		fprintf(stderr, "hfctl %s: unknown option -%c\n", cmd, optopt);
	else
		fprintf(stderr, "hfctl %s: unknown option %s\n", cmd, argv[optind - 1]);
	return usage(text, false);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* "0.25 s", "12.5 s", "4m 05s", "1h 02m 03s", "3d 04h 05m"; "?" for a negative or NaN. */
static void fmt_duration(double s, char *buf, size_t len)
{
	uint64_t t;

	if (!(s >= 0) || s > 1e12) {
		snprintf(buf, len, "?");
		return;
	}
	t = (uint64_t)(s + 0.5);
	if (s < 10)
		snprintf(buf, len, "%.2f s", s);
	else if (s < 60)
		snprintf(buf, len, "%.1f s", s);
	else if (t < 3600)
		snprintf(buf, len, "%um %02us", (unsigned)(t / 60), (unsigned)(t % 60));
	else if (t < 86400)
		snprintf(buf, len, "%uh %02um %02us", (unsigned)(t / 3600), (unsigned)(t / 60 % 60),
			 (unsigned)(t % 60));
	else
		snprintf(buf, len, "%ud %02uh %02um", (unsigned)(t / 86400),
			 (unsigned)(t / 3600 % 24), (unsigned)(t / 60 % 60));
}

/* Milliseconds as "12.3 ms" below a second, else as fmt_duration. */
static void fmt_ms(double ms, char *buf, size_t len)
{
	if (ms >= 0 && ms < 1000)
		snprintf(buf, len, "%.1f ms", ms);
	else
		fmt_duration(ms / 1000, buf, len);
}

/* "[#######.......]": width cells between the brackets; buf holds width + 3 bytes. */
static void fmt_bar(uint64_t done, uint64_t total, int width, char *buf)
{
	int fill = total ? (int)((double)(done < total ? done : total) * width / (double)total) : 0;

	buf[0] = '[';
	memset(buf + 1, '#', (size_t)fill);
	memset(buf + 1 + fill, '.', (size_t)(width - fill));
	buf[width + 1] = ']';
	buf[width + 2] = 0;
}

/* " 31.2 fps  ETA 8.60 s     " in a constant width (rows do not shift as rates change);
 * dashes for a rate not known yet (fps < 0) and for the ETA of a stalled one. */
static void fmt_rate(double fps, uint64_t left, char *buf, size_t len)
{
	char eta[32] = "--";

	if (fps > 0)
		fmt_duration((double)left / fps, eta, sizeof(eta));
	if (fps >= 0)
		snprintf(buf, len, "%6.1f fps  ETA %-10s", fps, eta);
	else
		snprintf(buf, len, "    -- fps  ETA %-10s", eta);
}

static int term_size(int fd, int *rows)
{
	struct winsize ws;

	if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
		if (rows)
			*rows = ws.ws_row;
		return ws.ws_col;
	}
	if (rows)
		*rows = 24;
	return 80;
}

/* Terminal columns of UTF-8 text, taking every code point as one column. */
static size_t text_cols(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* The suffix of s that is cols columns wide (s itself when narrower). */
static const char *text_tail(const char *s, size_t cols)
{
	size_t have = text_cols(s);
	while (have > cols) {
		s++;
		while (((unsigned char)*s & 0xc0) == 0x80)
			s++;
		have--;
	}
	return s;
}

/* s in buf, padded to cols columns, or "..." and the end of s when s is wider. */
static void text_fit_left(const char *s, size_t cols, char *buf, size_t len)
{
	size_t have = text_cols(s), used;

	if (have > cols)
		snprintf(buf, len, "%s%s", cols >= 3 ? "..." : "",
			 text_tail(s, cols >= 3 ? cols - 3 : cols));
	else
		snprintf(buf, len, "%s", s);
	used = strlen(buf);
	for (have = text_cols(buf); have < cols && used + 1 < len; have++)
		buf[used++] = ' ';
	buf[used] = 0;
}

/* Control characters (a file name may hold an escape sequence) become '?', so that text
 * from the daemon cannot drive the terminal. */
static void text_scrub(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* Cuts s in place after cols columns. */
static void text_cut(char *s, size_t cols)
{
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80 && cols-- == 0) {
			*s = 0;
			return;
		}
}

/*
 * MOUNT/.hfstats, parsed. 0, or -1 with a sentence in msg: a MOUNT is recognised by its
 * .hfstats, so a directory without one is "not an hfmount mount".
 */
static int load_stats(const char *mount, json_t **st, char *msg, size_t len)
{
	if (ctl_json_load_in(mount, ".hfstats", "is not an hfmount mount (it has no .hfstats)", st,
			     msg, len) < 0)
		return -1;
	if (!json_is_object(*st)) {
		ctl_json_free(st);
		snprintf(msg, len, "%s/.hfstats: not a JSON object; is %s an hfmount mount?", mount,
			 mount);
		return -1;
	}
	return 0;
}

static uint64_t u64_or(const json_t *obj, const char *key, uint64_t dflt)
{
	uint64_t v;
	return ctl_json_u64(json_object_get(obj, key), &v) ? v : dflt;
}

/* The directory an extraction entry names, as seen from here: MOUNT + its path. */
static void extraction_dir(const char *mount, const json_t *x, char *buf, size_t len)
{
	const char *path = ctl_json_str(json_object_get(x, "path"), NULL);
	int n = (int)strlen(mount);

	while (n > 1 && mount[n - 1] == '/')
		n--;
	if (path)
		snprintf(buf, len, "%.*s%s%s", n, mount, path[0] == '/' ? "" : "/", path);
	else
		snprintf(buf, len, "%s", ctl_json_str(json_object_get(x, "segment"), "?"));
}

/* ---- status ---- */

static const char status_help[] =
    "usage: hfctl status MOUNT\n"
    "Prints what MOUNT/.hfstats says, readable by a person: uptime, segments,\n"
    "extractions (with those running now), frames, cache, store and time per phase.\n"
    "Fields this hfctl does not know are listed at the end as they are.\n";

/* One line of "label  part, part, part": parts whose field is missing are left out. */
struct line {
	char buf[1024];
	size_t len;
};

static void line_add(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void line_add(struct line *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (l->len && l->len + 2 < sizeof(l->buf))
		l->len += (size_t)snprintf(l->buf + l->len, sizeof(l->buf) - l->len, ", ");
	if (l->len >= sizeof(l->buf))
		return;
	va_start(ap, fmt);
	n = vsnprintf(l->buf + l->len, sizeof(l->buf) - l->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		l->len =
		    l->len + (size_t)n < sizeof(l->buf) ? l->len + (size_t)n : sizeof(l->buf) - 1;
}

static void line_count(struct line *l, const json_t *st, const char *key, const char *what)
{
	uint64_t v;
	if (ctl_json_u64(json_object_get(st, key), &v))
		line_add(l, "%" PRIu64 " %s", v, what);
}

/* A size in bytes, readable, between the words before and after it. */
static void line_size(struct line *l, const json_t *st, const char *key, const char *before,
		      const char *after)
{
	uint64_t v;
	char size[32];
	if (ctl_json_u64(json_object_get(st, key), &v)) {
		ctl_fmt_size(v, size, sizeof(size));
		line_add(l, "%s%s%s", before, size, after);
	}
}

/* Every line status prints: "label        text", both scrubbed. */
static void status_print(const char *label, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void status_print(const char *label, const char *fmt, ...)
{
	char key[64], text[2048];
	va_list ap;

	snprintf(key, sizeof(key), "%s", label);
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	text_scrub(key);
	text_scrub(text);
	printf("%-12s %s\n", key, text);
}

static void line_print(const char *label, struct line *l)
{
	if (l->len)
		status_print(label, "%s", l->buf);
	l->len = 0;
	l->buf[0] = 0;
}

/* The fields status lays out itself; any other is printed by status_other. */
/* clang-format off */
static const char *const status_known[] = {
	"version", "source_root", "uptime_s", "segments_active", "segments_known", "extractions_started",
	"extractions_completed", "extractions_failed", "frames_served", "frames_decoded",
	"images_encoded", "cache_hits", "cache_misses", "joined", "store_images", "store_bytes",
	"store_errors", "store_error", "adopted_from_other_processes", "lease_handovers",
	"lease_failures", "lease_retries", "images_not_landed", "image_landing_waits", "store_max_size",
	"store_min_free", "store_free_bytes", "store_over_bounds", "evictions", "evicted_images",
	"evicted_bytes", "kept_in_use", "extractions", "time_ms", "segments_in_memory",
	"sources_in_memory", "segments_freed", "sources_freed", "memory_in_flight",
	"memory_in_flight_peak", "memory_budget", "source_bytes_read", "index_bytes_read",
	"windows_indexed", "windows_from_store",
};
/* clang-format on */

static void status_counters(const char *mount, const json_t *st)
{
	const json_t *running = json_object_get(st, "extractions");
	const char *version = ctl_json_str(json_object_get(st, "version"), NULL);
	const char *store_error = ctl_json_str(json_object_get(st, "store_error"), NULL);
	const char *source_root = ctl_json_str(json_object_get(st, "source_root"), NULL);
	struct line l = {.len = 0};
	uint64_t hits, misses;
	char t[64];

	line_add(&l, "%s", mount);
	if (version)
		line_add(&l, "hfmount %s", version);
	if (source_root)
		line_add(&l, "mirrors %s", source_root);
	if (json_object_get(st, "uptime_s")) {
		fmt_duration(ctl_json_num(json_object_get(st, "uptime_s"), -1), t, sizeof(t));
		line_add(&l, "up %s", t);
	}
	line_print("mount", &l);
	line_count(&l, st, "segments_active", "active");
	line_count(&l, st, "segments_known", "known");
	line_count(&l, st, "segments_in_memory", "in memory");
	line_count(&l, st, "segments_freed", "freed");
	line_print("segments", &l);
	line_count(&l, st, "sources_in_memory", "in memory");
	line_count(&l, st, "sources_freed", "freed");
	line_size(&l, st, "source_bytes_read", "", " read");
	line_count(&l, st, "windows_indexed", "windows indexed");
	line_size(&l, st, "index_bytes_read", "", " read to index them");
	line_count(&l, st, "windows_from_store", "windows from the store");
	line_print("sources", &l);
	line_count(&l, st, "extractions_started", "started");
	line_count(&l, st, "extractions_completed", "completed");
	line_count(&l, st, "extractions_failed", "failed");
	if (json_is_array(running))
		line_add(&l, "%zu running", json_array_size(running));
	line_print("extractions", &l);
	line_count(&l, st, "frames_served", "served");
	line_count(&l, st, "frames_decoded", "decoded");
	line_count(&l, st, "images_encoded", "images encoded");
	line_print("frames", &l);
	line_count(&l, st, "cache_hits", "hits");
	line_count(&l, st, "cache_misses", "misses");
	if (ctl_json_u64(json_object_get(st, "cache_hits"), &hits) &&
	    ctl_json_u64(json_object_get(st, "cache_misses"), &misses) && hits + misses > 0)
		line_add(&l, "%.1f%% hit ratio", 100.0 * (double)hits / (double)(hits + misses));
	line_count(&l, st, "joined", "joined a running decode");
	line_print("cache", &l);
	line_count(&l, st, "store_images", "images");
	line_size(&l, st, "store_bytes", "", "");
	line_count(&l, st, "store_errors", "errors");
	line_count(&l, st, "adopted_from_other_processes", "adopted from other processes");
	line_count(&l, st, "lease_handovers", "ranges handed to a new decode");
	line_print("store", &l);
	line_count(&l, st, "lease_failures", "leases not taken");
	line_count(&l, st, "lease_retries", "lease retries");
	line_count(&l, st, "images_not_landed", "images not landed here yet");
	line_count(&l, st, "image_landing_waits", "waits for one to land");
	line_print("shared", &l);
	line_size(&l, st, "store_max_size", "max ", "");
	line_size(&l, st, "store_min_free", "keep ", " free");
	line_size(&l, st, "store_free_bytes", "", " free now");
	if (json_is_boolean(json_object_get(st, "store_over_bounds")))
		line_add(&l, "%s",
			 json_is_true(json_object_get(st, "store_over_bounds")) ? "over its bounds"
										: "within bounds");
	line_print("limits", &l);
	line_count(&l, st, "evictions", "evicted");
	line_count(&l, st, "evicted_images", "images");
	line_size(&l, st, "evicted_bytes", "", "");
	line_count(&l, st, "kept_in_use", "kept because in use");
	line_print("eviction", &l);
	line_size(&l, st, "memory_in_flight", "", " of frames in flight");
	line_size(&l, st, "memory_in_flight_peak", "at most ", "");
	line_size(&l, st, "memory_budget", "budget ", "");
	line_print("memory", &l);
	if (store_error)
		status_print("store error", "%s", store_error);
}

static void status_running(const char *mount, const json_t *st)
{
	const json_t *running = json_object_get(st, "extractions");
	char dir[PATH_MAX + 256], t[32];

	for (size_t i = 0; i < json_array_size(running); i++) {
		const json_t *x = json_array_get(running, i);
		uint64_t done = u64_or(x, "frames_done", 0), count = u64_or(x, "count", 0);
		extraction_dir(mount, x, dir, sizeof(dir));
		fmt_ms(ctl_json_num(json_object_get(x, "elapsed_ms"), -1), t, sizeof(t));
		status_print(i ? "" : "running", "%s  %" PRIu64 "/%" PRIu64 " frames (%.0f%%), %s",
			     dir, done, count, count ? 100.0 * (double)done / (double)count : 0.0,
			     t);
	}
}

/* time_ms as a table, phases in the daemon's order, each with its share of the total. */
static void status_phases(const json_t *st)
{
	json_t *tm = json_object_get(st, "time_ms"), *v;
	const char *phase;
	double total = 0;
	char t[32];

	json_object_foreach(tm, phase, v) total += ctl_json_num(v, 0);
	if (!json_object_size(tm))
		return;
	fmt_ms(total, t, sizeof(t));
	status_print("time", "%s in all", t);
	json_object_foreach(tm, phase, v)
	{
		double ms = ctl_json_num(v, 0);
		fmt_ms(ms, t, sizeof(t));
		status_print("", "%-10s %10s %6.1f%%", phase, t,
			     total > 0 ? 100.0 * ms / total : 0.0);
	}
}

/* A field status does not know, on one line: sizes in bytes (named *_bytes, *_size,
 * *_free) readable, objects as their scalar members, arrays as how many they hold. */
static void fmt_value(const char *key, json_t *v, char *buf, size_t len)
{
	size_t klen = strlen(key);
	uint64_t n;

	switch (json_typeof(v)) {
	case JSON_NULL:
		snprintf(buf, len, "none");
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		snprintf(buf, len, "%s", json_is_true(v) ? "yes" : "no");
		break;
	case JSON_STRING:
		snprintf(buf, len, "%s", json_string_value(v));
		break;
	case JSON_INTEGER:
	case JSON_REAL:
		if (ctl_json_u64(v, &n) && klen > 5 &&
		    (strcmp(key + klen - 6, "_bytes") == 0 ||
		     strcmp(key + klen - 5, "_size") == 0 || strcmp(key + klen - 5, "_free") == 0))
			ctl_fmt_size(n, buf, len);
		else
			snprintf(buf, len, "%.15g", json_number_value(v));
		break;
	case JSON_ARRAY:
		snprintf(buf, len, "%zu entries", json_array_size(v));
		break;
	case JSON_OBJECT: {
		struct line l = {.len = 0};
		const char *name;
		json_t *member;
		char one[256];
		json_object_foreach(v, name, member)
		{
			if (json_is_array(member) || json_is_object(member))
				continue;
			fmt_value(name, member, one, sizeof(one));
			line_add(&l, "%s %s", name, one);
		}
		snprintf(buf, len, "%s", l.buf);
		break;
	}
	}
}

static bool status_knows(const char *key)
{
	for (size_t k = 0; k < sizeof(status_known) / sizeof(status_known[0]); k++)
		if (strcmp(key, status_known[k]) == 0)
			return true;
	return false;
}

static void status_other(json_t *st)
{
	const char *key;
	json_t *v;
	char value[1024];

	json_object_foreach(st, key, v)
	{
		if (status_knows(key))
			continue;
		fmt_value(key, v, value, sizeof(value));
		status_print(key, "%s", value);
	}
}

int ctl_status(int argc, char **argv)
{
	json_t *st = NULL;
	char msg[PATH_MAX + 128];
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", help_only, NULL)) != -1) {
		if (c == 'h')
			return usage(status_help, true);
		return bad_option(argv[0], c, argv, status_help);
	}
	if (argc - optind != 1) {
		fprintf(stderr, "hfctl status: expected one MOUNT\n");
		return usage(status_help, false);
	}
	if (load_stats(argv[optind], &st, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "hfctl status: %s\n", msg);
		return 1;
	}
	status_counters(argv[optind], st);
	status_running(argv[optind], st);
	status_phases(st);
	status_other(st);
	ctl_json_free(&st);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- top ---- */

static const char top_help[] =
    "usage: hfctl top [-d SECONDS] [-n COUNT] MOUNT\n"
    "Live view of the extractions running on MOUNT: per segment a progress bar, frames\n"
    "done/total, frames per second (over the last refresh) and the time left. On a\n"
    "terminal it redraws in place (q or Ctrl-C quits); otherwise it prints plain lines\n"
    "every refresh.\n"
    "  -d SECONDS   time between refreshes (default 1)\n"
    "  -n COUNT     stop after COUNT refreshes\n";

static volatile sig_atomic_t top_quit, top_resized;

static void top_on_signal(int sig)
{
	if (sig == SIGWINCH)
		top_resized = 1;
	else
		top_quit = 1;
}

/* One extraction's progress at one refresh, to measure its rate at the next. */
struct sample {
	char *path;
	uint64_t done, elapsed_ms;
};

struct samples {
	struct sample *v;
	size_t n;
};

static void samples_clear(struct samples *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].path);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

struct top {
	const char *mount;
	bool tty; /* stdout is a terminal: redraw in place */
	int cols, rows;
	struct samples prev, next;
	char *frame; /* the text of one refresh, written at once */
	size_t frame_len;
	FILE *out; /* open_memstream on frame */
};

/* Frames per second of an extraction: since the last refresh when it was seen then,
 * else on average since it started; -1 before there is any time to measure over. */
static double top_rate(const struct top *t, const char *path, uint64_t done, uint64_t elapsed)
{
	for (size_t i = 0; i < t->prev.n; i++) {
		const struct sample *p = &t->prev.v[i];
		if (strcmp(p->path, path) == 0 && elapsed > p->elapsed_ms && done >= p->done)
			return (double)(done - p->done) * 1000.0 /
			       (double)(elapsed - p->elapsed_ms);
	}
	return elapsed ? (double)done * 1000.0 / (double)elapsed : -1;
}

static void top_remember(struct top *t, const char *path, uint64_t done, uint64_t elapsed)
{
	struct sample *v = realloc(t->next.v, (t->next.n + 1) * sizeof(*v));
	char *p = strdup(path);

	if (!v || !p) {
		free(p);
		if (v)
			t->next.v = v;
		return;
	}
	t->next.v = v;
	v[t->next.n++] = (struct sample){p, done, elapsed};
}

/* One line of the view: cut to the terminal's width and cleared to its end there. */
static void top_line(struct top *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void top_line(struct top *t, const char *fmt, ...)
{
	char buf[PATH_MAX + 512];
	size_t len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	text_scrub(buf);
	for (len = strlen(buf); len > 0 && buf[len - 1] == ' '; len--)
		buf[len - 1] = 0;
	if (t->tty) {
		text_cut(buf, (size_t)t->cols);
		fprintf(t->out, "%s\033[K\n", buf);
	} else {
		fprintf(t->out, "%s\n", buf);
	}
}

static void top_header(struct top *t, const json_t *st)
{
	const json_t *running = json_object_get(st, "extractions");
	char clock[16], up[32], size[32];
	time_t now = time(NULL);
	struct tm tm;

	strftime(clock, sizeof(clock), "%H:%M:%S", localtime_r(&now, &tm));
	fmt_duration(ctl_json_num(json_object_get(st, "uptime_s"), -1), up, sizeof(up));
	ctl_fmt_size(u64_or(st, "store_bytes", 0), size, sizeof(size));
	top_line(t, "hfctl top %s  %s  up %s%s", t->mount, clock, up, t->tty ? "  (q quits)" : "");
	top_line(t,
		 "extractions: %zu running, %" PRIu64 " done, %" PRIu64 " failed   frames: %" PRIu64
		 " served, %" PRIu64 " encoded   store: %s",
		 json_array_size(running), u64_or(st, "extractions_completed", 0),
		 u64_or(st, "extractions_failed", 0), u64_or(st, "frames_served", 0),
		 u64_or(st, "images_encoded", 0), size);
}

/* One row per running extraction: path (its start cut off when the terminal is narrow),
 * bar, frames done/total, fps and ETA. */
static void top_rows(struct top *t, const json_t *st)
{
	const json_t *running = json_object_get(st, "extractions");
	size_t n = json_array_size(running), shown = n, path_cols = 0;
	int bar_cells = t->tty && t->cols < 80 ? 10 : 20;
	char dir[PATH_MAX + 256], fitted[PATH_MAX + 256], bar[64], rate[64], right[256];

	/* Three lines above the rows; the bottom line stays empty, or the screen would scroll. */
	if (t->tty && t->rows > 5 && n > (size_t)t->rows - 4)
		shown = (size_t)t->rows - 5; /* and a line saying how many more */
	for (size_t i = 0; i < shown; i++) {
		extraction_dir(t->mount, json_array_get(running, i), dir, sizeof(dir));
		if (text_cols(dir) > path_cols)
			path_cols = text_cols(dir);
	}
	for (size_t i = 0; i < shown; i++) {
		const json_t *x = json_array_get(running, i);
		uint64_t done = u64_or(x, "frames_done", 0), count = u64_or(x, "count", 0);
		uint64_t elapsed = u64_or(x, "elapsed_ms", 0);
		size_t room = path_cols, right_cols;

		extraction_dir(t->mount, x, dir, sizeof(dir));
		fmt_bar(done, count, bar_cells, bar);
		fmt_rate(top_rate(t, dir, done, elapsed), count > done ? count - done : 0, rate,
			 sizeof(rate));
		snprintf(right, sizeof(right), "%s %7" PRIu64 "/%-7" PRIu64 " %s", bar, done, count,
			 rate);
		/* On a terminal the path gives way first: the numbers are what top is for. */
		right_cols = text_cols(right) + 2;
		if (t->tty && room + right_cols > (size_t)t->cols)
			room =
			    (size_t)t->cols > right_cols + 10 ? (size_t)t->cols - right_cols : 10;
		text_fit_left(dir, room, fitted, sizeof(fitted));
		top_line(t, "%s  %s", fitted, right);
		top_remember(t, dir, done, elapsed);
	}
	if (shown < n)
		top_line(t, "... and %zu more", n - shown);
	if (n == 0)
		top_line(t, "(no extraction running)");
}

/* Writes one refresh: on a terminal over the previous one, else after it. */
static int top_draw(struct top *t, const json_t *st)
{
	int ret = 0;

	t->out = open_memstream(&t->frame, &t->frame_len);
	if (!t->out)
		return -1;
	if (t->tty) {
		t->cols = term_size(STDOUT_FILENO, &t->rows);
		fputs("\033[H", t->out);
	}
	top_header(t, st);
	top_line(t, "%s", "");
	top_rows(t, st);
	if (t->tty)
		fputs("\033[J", t->out);
	else
		fputs("\n", t->out);
	if (fclose(t->out) != 0)
		ret = -1;
	t->out = NULL;
	if (ret == 0 &&
	    (fwrite(t->frame, 1, t->frame_len, stdout) != t->frame_len || fflush(stdout) != 0))
		ret = -1;
	free(t->frame);
	t->frame = NULL;
	samples_clear(&t->prev);
	t->prev = t->next;
	t->next = (struct samples){NULL, 0};
	return ret;
}

/* Waits ms, watching stdin for q when keys is set. True when it is time to quit. */
static bool top_wait(int ms, bool keys)
{
	uint64_t deadline = now_ms() + (uint64_t)ms;
	struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};

	while (!top_quit && !top_resized) {
		uint64_t now = now_ms();
		char c;
		int r;
		if (now >= deadline)
			return false;
		r = poll(&pfd, keys ? 1 : 0, (int)(deadline - now));
		if (r < 0 && errno != EINTR)
			return false;
		if (r <= 0)
			continue;
		if (read(STDIN_FILENO, &c, 1) != 1)
			keys = false; /* the terminal went away: keep refreshing until killed */
		else if (c == 'q' || c == 'Q' || c == 3)
			return true;
	}
	top_resized = 0;
	return top_quit;
}

static int parse_top_args(int argc, char **argv, double *interval, long *count)
{
	char *end;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hd:n:", help_only, NULL)) != -1) {
		switch (c) {
		case 'h':
			return usage(top_help, true);
		case 'd':
			*interval = strtod(optarg, &end);
			if (*end || !(*interval >= 0.05 && *interval <= 86400)) {
				fprintf(stderr, "hfctl top: -d %s: seconds from 0.05 to 86400\n",
					optarg);
				return usage(top_help, false);
			}
			break;
		case 'n':
			*count = strtol(optarg, &end, 10);
			if (*end || *count < 1) {
				fprintf(stderr,
					"hfctl top: -n %s: a count of refreshes, 1 or more\n",
					optarg);
				return usage(top_help, false);
			}
			break;
		default:
			return bad_option(argv[0], c, argv, top_help);
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "hfctl top: expected one MOUNT\n");
		return usage(top_help, false);
	}
	return -1;
}

int ctl_top(int argc, char **argv)
{
	struct top t = {.mount = NULL};
	struct termios saved, raw;
	/* poll is never restarted, so a signal still ends the wait; writes and reads are */
	struct sigaction sa = {.sa_handler = top_on_signal, .sa_flags = SA_RESTART};
	json_t *st = NULL;
	double interval = 1;
	long count = 0, done = 0;
	bool keys, quit = false;
	char msg[PATH_MAX + 128] = "";
	int ret = parse_top_args(argc, argv, &interval, &count);

	if (ret >= 0)
		return ret;
	t.mount = argv[optind];
	if (load_stats(t.mount, &st, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "hfctl top: %s\n", msg);
		return 1;
	}
	t.tty = isatty(STDOUT_FILENO);
	keys = t.tty && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	if (keys) {
		raw = saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGWINCH, &sa, NULL);
	if (t.tty)
		fputs("\033[?1049h\033[?25l", stdout); /* alternate screen, cursor hidden */

	ret = 0;
	while (!quit) {
		if (top_draw(&t, st) < 0) {
			snprintf(msg, sizeof(msg), "writing the view: %s", strerror(errno));
			ret = 1;
			break;
		}
		ctl_json_free(&st);
		if (count && ++done >= count)
			break;
		quit = top_wait((int)(interval * 1000), keys);
		if (!quit && load_stats(t.mount, &st, msg, sizeof(msg)) < 0) {
			ret = 1;
			break;
		}
	}

	if (t.tty) {
		fputs("\033[?25h\033[?1049l", stdout);
		fflush(stdout);
	}
	if (keys)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	if (ret)
		fprintf(stderr, "hfctl top: %s\n", msg);
	ctl_json_free(&st);
	samples_clear(&t.prev);
	samples_clear(&t.next);
	return ret;
}

/* ---- prefetch ---- */

static const char prefetch_help[] =
    "usage: hfctl prefetch SEGMENT...\n"
    "Extracts each segment directory (a path inside an hfmount mount) now and waits until\n"
    "every frame is stored, with a progress bar on a terminal. Exits 0 when all are\n"
    "complete, 1 when one is not (the reason from its .hfinfo on stderr).\n";

/* The progress of one segment on stderr: a bar redrawn on a terminal, else nothing
 * until the result line. */
struct progress {
	const char *seg;
	bool tty;
	uint64_t t0_ms, drawn_ms;
};

static void progress_draw(struct progress *p, uint64_t done, uint64_t count, bool force)
{
	uint64_t now = now_ms();
	char bar[64], rate[64], line[PATH_MAX + 256];
	int cols;

	if (!p->tty || (!force && now - p->drawn_ms < 100))
		return;
	p->drawn_ms = now;
	fmt_bar(done, count, 20, bar);
	fmt_rate(now > p->t0_ms ? (double)done * 1000.0 / (double)(now - p->t0_ms) : -1,
		 count - done, rate, sizeof(rate));
	snprintf(line, sizeof(line), "%s %s %" PRIu64 "/%" PRIu64 " %s", p->seg, bar, done, count,
		 rate);
	cols = term_size(STDERR_FILENO, NULL);
	text_cut(line, cols > 1 ? (size_t)cols - 1 : 0);
	fprintf(stderr, "\r%s\033[K", line);
}

static void progress_clear(struct progress *p)
{
	if (p->tty)
		fputs("\r\033[K", stderr);
}

/* SEGMENT/.hfinfo, parsed; 0, or -1 with a sentence on stderr. */
static int load_info(const char *seg, json_t **info)
{
	char msg[PATH_MAX + 256];

	if (ctl_json_load_in(seg, ".hfinfo", "is not a segment directory of an hfmount mount", info,
			     msg, sizeof(msg)) < 0) {
		fprintf(stderr, "hfctl prefetch: %s\n", msg);
		return -1;
	}
	return 0;
}

/* "hfctl prefetch: SEGMENT: " and why (control characters made harmless). */
static void say_why(const char *seg, char *why)
{
	text_scrub(why);
	fprintf(stderr, "hfctl prefetch: %s: %s\n", seg, why);
}

/* The error info gives (fallback when it has none). */
static void print_reason(const char *seg, const json_t *info, const char *fallback)
{
	char why[1024];

	snprintf(why, sizeof(why), "%s", ctl_json_str(json_object_get(info, "error"), fallback));
	say_why(seg, why);
}

/* The reason a fresh read of .hfinfo gives for a segment that is not complete. */
static void report_failure(const char *seg, const char *fallback)
{
	char why[1024];

	ctl_json_info_error(seg, fallback, why, sizeof(why));
	say_why(seg, why);
}

/* Looks up frame 1..count in order: each lookup returns once that frame is stored (the
 * first one starts the extraction). 0, or -1 with the reason on stderr. */
static int prefetch_frames(const char *seg, uint64_t count, const char *ext, struct progress *p)
{
	char frame[PATH_MAX], why[PATH_MAX + 64];
	struct stat sb;

	for (uint64_t k = 1; k <= count; k++) {
		progress_draw(p, k - 1, count, k == 1);
		snprintf(frame, sizeof(frame), "%s/frame_%05" PRIu64 ".%s", seg, k, ext);
		if (stat(frame, &sb) < 0) {
			snprintf(why, sizeof(why), "frame_%05" PRIu64 ".%s: %s", k, ext,
				 strerror(errno));
			progress_clear(p);
			report_failure(seg, why);
			return -1;
		}
	}
	progress_draw(p, count, count, true);
	return 0;
}

/* .hfinfo says complete, or that every frame is stored and nothing went wrong: with
 * eager = false the daemon leaves a segment "extracting" even then, and stored frames are
 * what prefetch promises. */
static bool all_stored(const json_t *info, uint64_t count)
{
	return strcmp(ctl_json_str(json_object_get(info, "state"), ""), "complete") == 0 ||
	       (u64_or(info, "frames_done", 0) == count &&
		(!json_object_get(info, "error") || json_is_null(json_object_get(info, "error"))));
}

static int prefetch_one(const char *seg, bool tty)
{
	struct progress p = {seg, tty, now_ms(), 0};
	json_t *info = NULL;
	char why[128], t[32];
	uint64_t count;
	int ret = -1;

	if (load_info(seg, &info) < 0)
		return -1;
	count = u64_or(info, "count", 0);
	if (count == 0) {
		print_reason(seg, info, "the segment has no frames");
		goto out_free;
	}
	if (prefetch_frames(seg, count, ctl_json_str(json_object_get(info, "format"), "png"), &p) <
	    0)
		goto out_free;
	progress_clear(&p);
	ctl_json_free(&info);
	if (load_info(seg, &info) < 0)
		goto out_free;
	if (!all_stored(info, count)) {
		snprintf(why, sizeof(why),
			 "state is %s with %" PRIu64 " of %" PRIu64 " frames stored",
			 ctl_json_str(json_object_get(info, "state"), "?"),
			 u64_or(info, "frames_done", 0), count);
		print_reason(seg, info, why);
		goto out_free;
	}
	fmt_ms((double)(now_ms() - p.t0_ms), t, sizeof(t));
	printf("%s: %" PRIu64 " frames complete (%s)\n", seg, count, t);
	fflush(stdout);
	ret = 0;
out_free:
	ctl_json_free(&info);
	return ret;
}

int ctl_prefetch(int argc, char **argv)
{
	bool tty = isatty(STDERR_FILENO);
	int c, ret = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", help_only, NULL)) != -1) {
		if (c == 'h')
			return usage(prefetch_help, true);
		return bad_option(argv[0], c, argv, prefetch_help);
	}
	if (optind >= argc) {
		fprintf(stderr, "hfctl prefetch: expected at least one SEGMENT\n");
		return usage(prefetch_help, false);
	}
	for (int i = optind; i < argc; i++)
		if (prefetch_one(argv[i], tty) < 0)
			ret = 1;
	return ret;
}
