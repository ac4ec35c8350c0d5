/*
 * engine reports: a segment's .hfinfo and the mount's .hfstats as JSON, with the
 * extractions in progress, and the frames-served count they show.
 *
 * Locking: read only. A segment's progress is read under its source's lock, the tables
 * under the engine lock (then each source's), counters atomically.
 */
#include "fs/engine_i.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/gc.h"

/* ---- JSON ---- */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
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
	static const enum seg_fit fits[] = {
		[TF_FIT_NONE] = SEG_FIT_NONE, [TF_FIT_FILL] = SEG_FIT_FILL,
		[TF_FIT_CONTAIN] = SEG_FIT_CONTAIN, [TF_FIT_COVER] = SEG_FIT_COVER};
	static const enum seg_tonemap tms[] = {
		[TF_TM_NONE] = SEG_TM_NONE, [TF_TM_HABLE] = SEG_TM_HABLE,
		[TF_TM_REINHARD] = SEG_TM_REINHARD, [TF_TM_MOBIUS] = SEG_TM_MOBIUS,
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

int segment_info_json(struct segment *s, char **out, size_t *len)
{
	FILE *f = open_memstream(out, len);
	enum seg_state state;
	int64_t done = 0;
	char error[512] = "";
	char q[48];
	uint64_t t_start, t_done;

	if (!f)
		return -ENOMEM;
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
				 "frames from frame_%05" PRId64 ".%s on cannot be read: %s ends after %s s of its declared %s s (truncated)",
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

	fprintf(f, "{\n  \"segment\": ");
	json_str(f, s->name);
	fprintf(f, ",\n  \"source\": ");
	json_str(f, s->path);
	segname_format_q(s->sn.start, q, sizeof(q));
	fprintf(f, ",\n  \"start\": \"%s\"", q);
	segname_format_q(s->sn.dur, q, sizeof(q));
	fprintf(f, ",\n  \"duration\": \"%s\"", q);
	if (segname_format_q(s->sn.fps, q, sizeof(q)) < 0) /* no decimal: 30000:1001 */
		snprintf(q, sizeof(q), "%" PRId64 ":%" PRId64, s->sn.fps.num, s->sn.fps.den);
	fprintf(f, ",\n  \"fps\": \"%s\"", q);
	fprintf(f, ",\n  \"count\": %" PRId64 ",\n  \"width\": %d,\n  \"height\": %d", s->count,
		s->width, s->height);
	fprintf(f, ",\n  \"format\": \"%s\",\n  \"state\": \"%s\",\n  \"frames_done\": %" PRId64,
		s->ext, state_name(state), done);
	fprintf(f, ",\n  \"error\": ");
	if (error[0])
		json_str(f, error);
	else
		fprintf(f, "null");
	{
		/* the transforms that apply, spelled as options, and why the others do not */
		char text[160] = "";
		transform_options(s, text, sizeof(text));
		fprintf(f, ",\n  \"transform\": ");
		json_str(f, text);
		fprintf(f, ",\n  \"not_applied\": ");
		if (s->src && s->src->idx)
			json_str(f, s->src->tf_note);
		else
			fprintf(f, "null"); /* warm: served from the store, the source not opened */
	}
	fprintf(f, ",\n  \"from_store\": %s", s->man && !s->src ? "true" : "false");
	/* the lookup's share: finding or indexing the window (its bytes: 0 when known) */
	fprintf(f, ",\n  \"index_ms\": %.1f,\n  \"index_bytes_read\": %" PRIu64,
		(double)s->prepare_ns / 1e6, s->src ? s->src->index_bytes : 0);
	fprintf(f, ",\n  \"extract_ms\": ");
	if (t_start && t_done)
		fprintf(f, "%" PRIu64, (t_done - t_start) / 1000000);
	else
		fprintf(f, "null");
	fprintf(f, "\n}\n");
	return fclose(f) == 0 ? 0 : -ENOMEM;
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

/* The segments being extracted now, with their progress, as a JSON array; how many. */
static int stats_extractions(struct engine *e, FILE *f)
{
	uint64_t now = now_ns();
	int n = 0;
	char dir[PATH_MAX + 256];

	fprintf(f, "[");
	pthread_mutex_lock(&e->lock);
	FOR_EACH_SEGMENT(e, s) {
		struct source *src = s->src;
		int64_t done = 0;
		uint64_t t0;
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
		fprintf(f, "%s\n    {\"segment\": ", n ? "," : "");
		json_str(f, s->name);
		fprintf(f, ", \"path\": ");
		json_str(f, dir);
		fprintf(f,
			", \"count\": %" PRId64 ", \"frames_done\": %" PRId64 ", \"elapsed_ms\": %" PRIu64
			"}",
			s->count, done, (now - t0) / 1000000);
		n++;
	}
	pthread_mutex_unlock(&e->lock);
	fprintf(f, "%s]", n ? "\n  " : "");
	return n;
}

int engine_stats_json(struct engine *e, char **out, size_t *len)
{
	char *ext = NULL;
	size_t ext_len = 0;
	FILE *f, *xf = open_memstream(&ext, &ext_len);
	uint64_t images, bytes, lease_retries, store_lease_failures, not_landed, landing_waits;
	char store_error[256];
	int active;

	if (!xf)
		return -ENOMEM;
	active = stats_extractions(e, xf); /* the segments active are the ones listed */
	if (fclose(xf) != 0 || !(f = open_memstream(out, len))) {
		free(ext);
		return -ENOMEM;
	}
	store_usage(e->store, &images, &bytes);
	store_lease_stats(e->store, &lease_retries, &store_lease_failures);
	store_image_stats(e->store, &not_landed, &landing_waits);
#define MS(x) ((double)atomic_load(&(x)) / 1e6)
	fprintf(f,
		"{\n  \"version\": \"%s\",\n  \"uptime_s\": %.3f,\n  \"segments_active\": %d,\n"
		"  \"segments_known\": %" PRIu64 ",\n  \"extractions_started\": %" PRIu64
		",\n  \"extractions_completed\": %" PRIu64 ",\n  \"extractions_failed\": %" PRIu64
		",\n  \"frames_served\": %" PRIu64 ",\n  \"images_encoded\": %" PRIu64
		",\n  \"frames_decoded\": %" PRIu64 ",\n  \"cache_hits\": %" PRIu64
		",\n  \"cache_misses\": %" PRIu64 ",\n  \"joined\": %" PRIu64
		",\n  \"store_images\": %" PRIu64 ",\n  \"store_bytes\": %" PRIu64
		",\n  \"store_errors\": %" PRIu64 ",\n  \"adopted_from_other_processes\": %" PRIu64
		",\n  \"lease_handovers\": %" PRIu64 ",\n  \"lease_failures\": %" PRIu64
		",\n  \"lease_retries\": %" PRIu64 ",\n  \"images_not_landed\": %" PRIu64
		",\n  \"image_landing_waits\": %" PRIu64,
		HF_VERSION, (double)(now_ns() - e->t0_ns) / 1e9, active,
		atomic_load(&e->segments_known), atomic_load(&e->extractions_started),
		atomic_load(&e->extractions_completed), atomic_load(&e->extractions_failed),
		atomic_load(&e->frames_served), atomic_load(&e->images_encoded),
		atomic_load(&e->xs.frames_decoded), atomic_load(&e->cache_hits),
		atomic_load(&e->cache_misses), atomic_load(&e->joined), images, bytes,
		atomic_load(&e->store_errors), atomic_load(&e->adopted),
		atomic_load(&e->handovers), store_lease_failures, lease_retries,
		not_landed, landing_waits);
	pthread_mutex_lock(&e->lock);
	fprintf(f,
		",\n  \"segments_in_memory\": %zu,\n  \"sources_in_memory\": %zu"
		",\n  \"segments_freed\": %" PRIu64 ",\n  \"sources_freed\": %" PRIu64,
		e->nsegments, e->nsources, atomic_load(&e->segments_freed),
		atomic_load(&e->sources_freed));
	pthread_mutex_unlock(&e->lock);
	fprintf(f,
		",\n  \"store_max_size\": %" PRIu64 ",\n  \"store_min_free\": %" PRIu64
		",\n  \"store_free_bytes\": %" PRIu64 ",\n  \"store_over_bounds\": %s"
		",\n  \"evictions\": %" PRIu64 ",\n  \"evicted_images\": %" PRIu64
		",\n  \"evicted_bytes\": %" PRIu64 ",\n  \"kept_in_use\": %" PRIu64,
		e->conf.max_size, e->conf.min_free, store_free_bytes(e->store),
		atomic_load(&e->over_bound) ? "true" : "false", atomic_load(&e->evictions),
		atomic_load(&e->evicted_images), atomic_load(&e->evicted_bytes),
		atomic_load(&e->kept_in_use));
	fprintf(f, ",\n  \"store_error\": ");
	pthread_mutex_lock(&e->lock);
	snprintf(store_error, sizeof(store_error), "%s",
		 atomic_load(&e->store_failing) ? e->store_error : "");
	pthread_mutex_unlock(&e->lock);
	if (store_error[0])
		json_str(f, store_error);
	else
		fprintf(f, "null");
	fprintf(f, ",\n  \"extractions\": %s", ext);
	free(ext);
	{
		uint64_t now, peak, budget;
		extract_memory(&now, &peak, &budget);
		fprintf(f,
			",\n  \"memory_in_flight\": %" PRIu64 ",\n  \"memory_in_flight_peak\": %" PRIu64
			",\n  \"memory_budget\": %" PRIu64,
			now, peak, budget);
	}
	fprintf(f,
		",\n  \"source_bytes_read\": %" PRIu64 ",\n  \"index_bytes_read\": %" PRIu64
		",\n  \"windows_indexed\": %" PRIu64 ",\n  \"windows_from_store\": %" PRIu64,
		atomic_load(&e->index_bytes) + atomic_load(&e->xs.source_bytes),
		atomic_load(&e->index_bytes), atomic_load(&e->windows_built),
		atomic_load(&e->windows_known));
	fprintf(f,
		",\n  \"time_ms\": {\"index\": %.1f, \"open\": %.1f, \"seek\": %.1f, "
		"\"decode\": %.1f, \"convert\": %.1f, \"transform\": %.1f, \"encode\": %.1f, "
		"\"write\": %.1f}\n}\n",
		MS(e->index_ns), MS(e->xs.open_ns), MS(e->xs.seek_ns), MS(e->xs.decode_ns),
		MS(e->xs.convert_ns), MS(e->xs.transform_ns), MS(e->xs.encode_ns), MS(e->write_ns));
#undef MS
	return fclose(f) == 0 ? 0 : -ENOMEM;
}

void engine_count_served(struct engine *e)
{
	atomic_fetch_add(&e->frames_served, 1);
}
