/*
 * engine reports: a segment's .hfinfo and the mount's .hfstats as JSON, with the
 * extractions in progress, and the frames-served count they show.
 *
 * Locking: read only. A segment's progress is read under its source's lock, the tables
 * under the engine lock (then each source's), counters atomically.
 */
#include "fs/engine_i.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/gc.h"

/* ---- JSON, through jansson ---- */

/* Two-space indents; reals (milliseconds to 0.1, uptime to 0.001, already rounded) with
 * 15 significant digits, enough for them to read back as they were written. */
#define REPORT_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(15))

/* U+FFFD, the replacement character, in UTF-8. */
static const char replacement[] = "\xef\xbf\xbd";

/* Bytes of the UTF-8 sequence led by c: 1-4, or 0 for a byte no sequence starts with. */
static size_t utf8_lead_len(unsigned char c)
{
	return c < 0x80 ? 1 : c < 0xc2 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
}

/*
 * A string value. jansson takes UTF-8 only, and a name or a path holds any bytes: a byte
 * that does not start a sequence jansson accepts becomes U+FFFD. NULL without memory.
 */
static json_t *report_str(const char *s)
{
	size_t len = strlen(s), used = 0;
	json_t *j = json_stringn(s, len), *one;
	char *fixed;

	if (j || !(fixed = malloc(3 * len + 1)))
		return j;
	for (size_t i = 0, n; i < len; i += n) {
		n = utf8_lead_len((unsigned char)s[i]);
		one = n && n <= len - i ? json_stringn(s + i, n) : NULL;
		if (one) {
			json_decref(one);
			memcpy(fixed + used, s + i, n);
			used += n;
		} else {
			memcpy(fixed + used, replacement, 3);
			used += 3;
			n = 1;
		}
	}
	j = json_stringn(fixed, used);
	free(fixed);
	return j;
}

/* A count; one past the largest json_int_t (none seen so far) becomes the nearest real. */
static json_t *report_u64(uint64_t v)
{
	return v <= INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v);
}

/* A real rounded to `scale` (10: tenths). */
static json_t *report_real(double v, double scale)
{
	return json_real(round(v * scale) / scale);
}

/* Sets key to v, taking v over; a NULL v or obj (out of memory) sets *ret to -ENOMEM. */
static void set(json_t *obj, const char *key, json_t *v, int *ret)
{
	if (json_object_set_new(obj, key, v) < 0)
		*ret = -ENOMEM;
}

/* The document, indented, with a final newline, into a malloc'ed buffer. */
static int report_dump(json_t *root, char **out, size_t *len)
{
	FILE *f = open_memstream(out, len);
	int ret;

	if (!f)
		return -ENOMEM;
	ret = json_dumpf(root, f, REPORT_FLAGS) == 0 && fputc('\n', f) != EOF ? 0 : -ENOMEM;
	if (fclose(f) != 0)
		ret = -ENOMEM;
	if (ret < 0) {
		free(*out);
		*out = NULL;
	}
	return ret;
}

static const char *state_name(enum seg_state st)
{
	static const char *const names[] = {"listed", "extracting", "complete", "error"};
	return names[st];
}

/* The slots the i-th needed frame fills: first_slot[i] up to this (exclusive). */
static int64_t seg_run_end(const struct segment *s, size_t i)
{
	return i + 1 < s->nneeded ? s->first_slot[i + 1] : s->data_slots;
}

/* Slots of the segment whose image is stored, a run at a time. Under src->lock. */
static int64_t seg_slots_done_locked(const struct segment *s)
{
	int64_t done = 0;
	for (size_t i = 0; i < s->nneeded; i++)
		if (s->src->fs[s->needed[i]].state == F_DONE)
			done += seg_run_end(s, i) - s->first_slot[i];
	return done;
}

/*
 * The transforms that apply to a segment as the options that ask for them
 * ("w=960,h=540,fit=cover"); "" when none. Warm (no source opened): those asked for.
 */
static void transform_options(const struct segment *s, char *buf, size_t len)
{
	static const enum seg_fit fits[] = {[TF_FIT_NONE] = SEG_FIT_NONE,
					    [TF_FIT_FILL] = SEG_FIT_FILL,
					    [TF_FIT_CONTAIN] = SEG_FIT_CONTAIN,
					    [TF_FIT_COVER] = SEG_FIT_COVER};
	static const enum seg_tonemap tms[] = {[TF_TM_NONE] = SEG_TM_NONE,
					       [TF_TM_HABLE] = SEG_TM_HABLE,
					       [TF_TM_REINHARD] = SEG_TM_REINHARD,
					       [TF_TM_MOBIUS] = SEG_TM_MOBIUS,
					       [TF_TM_CLIP] = SEG_TM_CLIP};
	struct segname sn = s->sn;
	char name[512];
	const char *at;

	buf[0] = 0;
	if (s->src && s->src->idx) {
		const struct tf_spec *tf = &s->src->tf;
		sn.w = tf->w;
		sn.h = tf->h;
		sn.fit = fits[tf->fit];
		sn.bt2020 = tf->bt2020;
		sn.tonemap = tms[tf->tonemap];
	}
	if (!sn.w && !sn.h && !sn.bt2020 && sn.tonemap == SEG_TM_NONE)
		return;
	sn.format = SEG_PNG;
	sn.hold = false;
	/* "x@S+D@F@OPTS": the options follow the last '@' */
	if (segname_format(&sn, "x", 1, name, sizeof(name)) > 0 && (at = strrchr(name, '@')))
		snprintf(buf, len, "%s", at + 1);
}

/* ffmpeg's name of an H.273 matrix code (av_color_space_name), for .hfinfo. */
static const char *matrix_name(int m)
{
	static const char *const names[] = {"gbr",	 "bt709",    "unknown",	  "reserved",
					    "fcc",	 "bt470bg",  "smpte170m", "smpte240m",
					    "ycgco",	 "bt2020nc", "bt2020c",	  "smpte2085",
					    "chroma-derived-nc", "chroma-derived-c", "ictcp"};
	return m >= 0 && m < (int)(sizeof(names) / sizeof(names[0])) ? names[m] : "unknown";
}

int segment_info_json(struct segment *s, char **out, size_t *len)
{
	json_t *o;
	enum seg_state state;
	int64_t done = 0;
	char error[512] = "";
	char q[48], text[160] = "";
	uint64_t t_start, t_done;
	int ret = 0;

	if (s->src && s->src->idx) {
		struct source *src = s->src;
		pthread_mutex_lock(&src->lock);
		state = s->state;
		done = seg_slots_done_locked(s);
		if (state == SEG_ERROR || (src->damaged_at != SIZE_MAX && s->nneeded > 0 &&
					   s->needed[s->nneeded - 1] >= src->damaged_at)) {
			int64_t bad_slot = -1;
			for (size_t i = 0; i < s->nneeded && bad_slot < 0; i++)
				if (src->fs[s->needed[i]].state == F_FAILED)
					bad_slot = s->first_slot[i];
			if (bad_slot >= 0)
				snprintf(error, sizeof(error),
					 "frames from frame_%05" PRId64 ".%s on cannot be read: %s",
					 bad_slot + 1, s->ext, src->damage);
			else if (src->damage[0])
				snprintf(error, sizeof(error), "%s", src->damage);
		}
		if (!error[0] && state != SEG_COMPLETE && src->store_error[0])
			snprintf(error, sizeof(error), "%s", src->store_error);
		if (!error[0] && s->data_slots < s->count) {
			char a[48], b[48];
			fmt_seconds_ms(av_ms(src->idx, src->idx->data_end), a, sizeof(a));
			fmt_seconds_ms(source_index_duration_ms(src->idx), b, sizeof(b));
			snprintf(error, sizeof(error),
				 "frames from frame_%05" PRId64
				 ".%s on cannot be read: %s ends after %s s of its declared %s s "
				 "(truncated)",
				 s->data_slots + 1, s->ext, source_name(s->path), a, b);
		}
		t_start = s->t_start_ns;
		t_done = s->t_done_ns;
		pthread_mutex_unlock(&src->lock);
	} else {
		state = s->state;
		done = s->man ? s->count : 0;
		t_start = s->t_start_ns;
		t_done = s->t_done_ns;
	}
	if (s->error[0])
		snprintf(error, sizeof(error), "%s", s->error);
	if (error[0] && state != SEG_COMPLETE)
		state = SEG_ERROR;

	o = json_object();
	set(o, "segment", report_str(s->name), &ret);
	set(o, "source", report_str(s->path), &ret);
	segname_format_q(s->sn.start, q, sizeof(q));
	set(o, "start", json_string(q), &ret);
	segname_format_q(s->sn.dur, q, sizeof(q));
	set(o, "duration", json_string(q), &ret);
	if (segname_format_q(s->sn.fps, q, sizeof(q)) < 0) /* no decimal: 30000:1001 */
		snprintf(q, sizeof(q), "%" PRId64 ":%" PRId64, s->sn.fps.num, s->sn.fps.den);
	set(o, "fps", json_string(q), &ret);
	set(o, "count", json_integer(s->count), &ret);
	set(o, "width", json_integer(s->width), &ret);
	set(o, "height", json_integer(s->height), &ret);
	set(o, "format", json_string(s->ext), &ret);
	set(o, "state", json_string(state_name(state)), &ret);
	set(o, "frames_done", json_integer(done), &ret);
	set(o, "error", error[0] ? report_str(error) : json_null(), &ret);
	/* the transforms that apply, spelled as options, and why the others do not (null
	 * warm: served from the store, the source not opened) */
	transform_options(s, text, sizeof(text));
	set(o, "transform", json_string(text), &ret);
	set(o, "not_applied", s->src && s->src->idx ? report_str(s->src->tf_note) : json_null(),
	    &ret);
	/* the matrix its pictures are shown with, and whether the stream left it to a guess
	 * (null warm: the source not opened) */
	if (s->src && s->src->idx) {
		set(o, "matrix", json_string(matrix_name(s->src->matrix)), &ret);
		set(o, "matrix_guessed", json_boolean(s->src->matrix_guessed), &ret);
	} else {
		set(o, "matrix", json_null(), &ret);
		set(o, "matrix_guessed", json_null(), &ret);
	}
	set(o, "from_store", json_boolean(s->man && !s->src), &ret);
	/* the lookup's share: finding or indexing the window (its bytes: 0 when known) */
	set(o, "index_ms", report_real((double)s->prepare_ns / 1e6, 10), &ret);
	set(o, "index_bytes_read", report_u64(s->src ? s->src->index_bytes : 0), &ret);
	set(o, "extract_ms",
	    t_start && t_done ? report_u64((t_done - t_start) / 1000000) : json_null(), &ret);
	if (ret == 0)
		ret = report_dump(o, out, len);
	json_decref(o);
	return ret;
}

/* Directory of a segment relative to the mount root, as a reader would name it. */
static void mount_dir(const struct engine *e, const struct segment *s, char *buf, size_t len)
{
	const char *root = e->conf.source_root, *rel = s->path;
	size_t n = strlen(root);
	char dir[PATH_MAX];
	char *slash;

	if (strcmp(root, "/") != 0 && strncmp(rel, root, n) == 0 && rel[n] == '/')
		rel += n;
	snprintf(dir, sizeof(dir), "%s", rel);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	snprintf(buf, len, "%s/%s", dir, s->name);
}

/* The segments being extracted now, with their progress, as a JSON array; how many are
 * in it in *n. NULL without memory. */
static json_t *stats_extractions(struct engine *e, int *n)
{
	uint64_t now = now_ns();
	json_t *list = json_array();
	int ret = 0;
	char dir[PATH_MAX + 256];

	pthread_mutex_lock(&e->lock);
	FOR_EACH_SEGMENT(e, s)
	{
		struct source *src = s->src;
		int64_t done = 0;
		uint64_t t0;
		json_t *x;
		if (!src || !src->idx)
			continue;
		pthread_mutex_lock(&src->lock);
		if (s->state != SEG_EXTRACTING) {
			pthread_mutex_unlock(&src->lock);
			continue;
		}
		done = seg_slots_done_locked(s);
		t0 = s->t_start_ns;
		pthread_mutex_unlock(&src->lock);
		mount_dir(e, s, dir, sizeof(dir));
		x = json_object();
		set(x, "segment", report_str(s->name), &ret);
		set(x, "path", report_str(dir), &ret);
		set(x, "count", json_integer(s->count), &ret);
		set(x, "frames_done", json_integer(done), &ret);
		set(x, "elapsed_ms", report_u64((now - t0) / 1000000), &ret);
		if (json_array_append_new(list, x) < 0)
			ret = -ENOMEM;
	}
	pthread_mutex_unlock(&e->lock);
	*n = (int)json_array_size(list);
	if (ret < 0)
		json_decref(list);
	return ret < 0 ? NULL : list;
}

int engine_stats_json(struct engine *e, char **out, size_t *len)
{
	uint64_t images, bytes, lease_retries, store_lease_failures, not_landed, landing_waits;
	uint64_t mem_now, mem_peak, mem_budget;
	json_t *o = json_object(), *ext, *tm;
	char store_error[256];
	int active, ret = 0;

	ext = stats_extractions(e, &active); /* the segments active are the ones listed */
	store_usage(e->store, &images, &bytes);
	store_lease_stats(e->store, &lease_retries, &store_lease_failures);
	store_image_stats(e->store, &not_landed, &landing_waits);
#define COUNT(key, x) set(o, key, report_u64(atomic_load(&(x))), &ret)
	set(o, "version", json_string(HF_VERSION), &ret);
	/* what the mount mirrors: hfctl path finds the mount that serves a video by it */
	set(o, "source_root", report_str(e->conf.source_root), &ret);
	set(o, "uptime_s", report_real((double)(now_ns() - e->t0_ns) / 1e9, 1000), &ret);
	set(o, "segments_active", json_integer(active), &ret);
	COUNT("segments_known", e->segments_known);
	COUNT("extractions_started", e->extractions_started);
	COUNT("extractions_completed", e->extractions_completed);
	COUNT("extractions_failed", e->extractions_failed);
	COUNT("frames_served", e->frames_served);
	COUNT("images_encoded", e->images_encoded);
	COUNT("frames_decoded", e->xs.frames_decoded);
	COUNT("cache_hits", e->cache_hits);
	COUNT("cache_misses", e->cache_misses);
	COUNT("joined", e->joined);
	set(o, "store_images", report_u64(images), &ret);
	set(o, "store_bytes", report_u64(bytes), &ret);
	COUNT("store_errors", e->store_errors);
	COUNT("adopted_from_other_processes", e->adopted);
	COUNT("lease_handovers", e->handovers);
	set(o, "lease_failures", report_u64(store_lease_failures), &ret);
	set(o, "lease_retries", report_u64(lease_retries), &ret);
	set(o, "images_not_landed", report_u64(not_landed), &ret);
	set(o, "image_landing_waits", report_u64(landing_waits), &ret);
	pthread_mutex_lock(&e->lock);
	set(o, "segments_in_memory", report_u64(e->nsegments), &ret);
	set(o, "sources_in_memory", report_u64(e->nsources), &ret);
	/* the global bounds of SPEC 6a at work: decode jobs running and queued, lookups indexing */
	set(o, "jobs_running", report_u64((uint64_t)e->jobs_threads), &ret);
	set(o, "jobs_queued",
	    report_u64(e->running_jobs > e->jobs_threads
			       ? (uint64_t)(e->running_jobs - e->jobs_threads)
			       : 0),
	    &ret);
	set(o, "lookups_indexing", report_u64((uint64_t)e->indexing), &ret);
	pthread_mutex_unlock(&e->lock);
	COUNT("segments_freed", e->segments_freed);
	COUNT("sources_freed", e->sources_freed);
	set(o, "store_max_size", report_u64(e->conf.max_size), &ret);
	set(o, "store_min_free", report_u64(e->conf.min_free), &ret);
	set(o, "store_free_bytes", report_u64(store_free_bytes(e->store)), &ret);
	set(o, "store_over_bounds", json_boolean(atomic_load(&e->over_bound)), &ret);
	COUNT("evictions", e->evictions);
	COUNT("evicted_images", e->evicted_images);
	COUNT("evicted_bytes", e->evicted_bytes);
	COUNT("kept_in_use", e->kept_in_use);
	pthread_mutex_lock(&e->lock);
	snprintf(store_error, sizeof(store_error), "%s",
		 atomic_load(&e->store_failing) ? e->store_error : "");
	pthread_mutex_unlock(&e->lock);
	set(o, "store_error", store_error[0] ? report_str(store_error) : json_null(), &ret);
	set(o, "extractions", ext, &ret);
	extract_memory(&mem_now, &mem_peak, &mem_budget);
	set(o, "memory_in_flight", report_u64(mem_now), &ret);
	set(o, "memory_in_flight_peak", report_u64(mem_peak), &ret);
	set(o, "memory_budget", report_u64(mem_budget), &ret);
	set(o, "source_bytes_read",
	    report_u64(atomic_load(&e->index_bytes) + atomic_load(&e->xs.source_bytes)), &ret);
	COUNT("index_bytes_read", e->index_bytes);
	COUNT("windows_indexed", e->windows_built);
	COUNT("windows_from_store", e->windows_known);
#undef COUNT
	/* time per phase, in milliseconds to 0.1 */
#define MS(key, x) set(tm, key, report_real((double)atomic_load(&(x)) / 1e6, 10), &ret)
	tm = json_object();
	MS("index", e->index_ns);
	MS("open", e->xs.open_ns);
	MS("seek", e->xs.seek_ns);
	MS("decode", e->xs.decode_ns);
	MS("convert", e->xs.convert_ns);
	MS("transform", e->xs.transform_ns);
	MS("encode", e->xs.encode_ns);
	MS("write", e->write_ns);
#undef MS
	set(o, "time_ms", tm, &ret);
	if (ret == 0)
		ret = report_dump(o, out, len);
	json_decref(o);
	return ret;
}

void engine_count_served(struct engine *e)
{
	atomic_fetch_add(&e->frames_served, 1);
}
