/*
 * engine segments: finding or making a segment (warm from its manifest, or cold), the
 * plan of a cold one (the distinct frames it shows), starting its extraction, frame
 * waits and opens, lost images, touches, manifests, and the names of a video's segments.
 *
 * Locking: the engine lock guards the table, s->file, s->src (written under it) and the
 * preparation flags; the source's lock guards a segment's state, progress and place on
 * the source's list. References are atomic.
 */
#include "fs/engine_i.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/log.h"

/* A segment's last use (its manifest's mtime) is refreshed at most this often. */
#define TOUCH_EVERY_NS (30 * NS)

static int64_t real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

/* ---- segments ---- */

void eng_seg_free(struct segment *s)
{
	if (s->src)
		eng_source_put(s->e, s->src);
	manifest_free(&s->man);
	free(s->needed);
	free(s->first_slot);
	free(s->name);
	free(s->canon);
	free(s->path);
	free(s->identity);
	free(s);
}

/*
 * References: the table's, each node of the filesystem's, the read-ahead's, and the
 * source's list while it tracks an extraction. When only the table's (and the list's,
 * once the extraction is over) are left, the sweep frees the segment (engine_sweep).
 */
void segment_get(struct segment *s)
{
	atomic_fetch_add(&s->refs, 1);
}

void segment_put(struct segment **ps)
{
	struct segment *s = ps ? *ps : NULL;
	if (!s)
		return;
	atomic_fetch_sub(&s->refs, 1);
	*ps = NULL;
}

bool segment_stale(struct segment *s)
{
	char *identity = NULL;
	struct stat now, was;
	bool stale;

	if (stat(s->path, &now) < 0)
		return true;
	pthread_mutex_lock(&s->e->lock);
	was = s->file;
	pthread_mutex_unlock(&s->e->lock);
	/*
	 * The file itself too, not only its identity: with identity = content a chmod or
	 * chown keeps the identity but changes ctime, and what the kernel cached under the
	 * old permissions must go (check_sources drops it).
	 */
	stale = !eng_same_file(&now, &was) ||
		eng_source_identity(s->e, s->path, &now, &identity) < 0 ||
		strcmp(identity, s->identity) != 0;
	free(identity);
	return stale;
}

int64_t segment_count(const struct segment *s)
{
	return s->count;
}

const char *segment_ext(const struct segment *s)
{
	return s->ext;
}

const char *segment_name(const struct segment *s)
{
	return s->name;
}

static int slot_frame(const struct segment *s, int64_t slot, size_t *frame)
{
	struct slot_frames fr = source_index_frames(s->src->idx);
	int64_t f = slots_frame(&fr, s->sn.start, s->sn.fps, slot);
	*frame = 0;
	if (f < 0)
		return (int)f;
	*frame = (size_t)f;
	return 0;
}

/*
 * Computes the distinct frames a cold segment shows and the first slot of each, and where
 * a truncated file's data ends. It costs O(distinct frames x log slots), never a step per
 * slot: from a slot showing frame f, the next frame shown is found by bisecting for the
 * first slot whose time reaches frame f + 1.
 */
static int seg_plan(struct segment *s)
{
	const struct source_index *idx = s->src->idx;
	struct slot_frames fr = source_index_frames(idx);
	size_t *v = NULL, n = 0, cap = 0, f = 0;
	int64_t *first = NULL, k = 0, last, limit;
	int ret;

	s->data_slots = s->count;
	if (idx->data_end < idx->end) {
		struct slot_frames cut = fr;
		int64_t ds;
		cut.end = idx->data_end;
		ds = slots_count(&cut, s->sn.start, s->sn.dur, s->sn.fps);
		if (ds < 0)
			return (int)ds;
		s->data_slots = ds < s->count ? ds : s->count;
	}
	last = s->data_slots - 1;
	ret = last < 0 ? 0 : slot_frame(s, 0, &f);
	while (ret == 0 && last >= 0) {
		int64_t lo, hi;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			size_t *nv = realloc(v, ncap * sizeof(*nv));
			int64_t *nf = nv ? realloc(first, ncap * sizeof(*nf)) : NULL;
			if (nv)
				v = nv;
			if (nf)
				first = nf;
			if (!nv || !nf) {
				ret = -ENOMEM;
				break;
			}
			cap = ncap;
		}
		v[n] = f;
		first[n++] = k;
		if (f + 1 >= idx->n || k == last)
			break;
		ret = slots_limit_ticks(&fr, s->sn.start, s->sn.fps, last, &limit);
		if (ret < 0 || limit < idx->pts[f + 1])
			break; /* no later slot reaches the next frame */
		for (lo = k + 1, hi = last; lo < hi;) {
			int64_t mid = lo + (hi - lo) / 2;
			ret = slots_limit_ticks(&fr, s->sn.start, s->sn.fps, mid, &limit);
			if (ret < 0)
				break;
			if (limit >= idx->pts[f + 1])
				hi = mid;
			else
				lo = mid + 1;
		}
		k = lo;
		if (ret == 0)
			ret = slot_frame(s, k, &f);
	}
	if (ret < 0) {
		free(v);
		free(first);
		return ret;
	}
	s->needed = v;
	s->first_slot = first;
	s->nneeded = n;
	return 0;
}

static void seg_error(struct segment *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seg_error(struct segment *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
	s->count = 0;
	s->state = SEG_ERROR;
}

static const char *file_kind(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	return "a special file";
}

/* Fills a cold segment from its source: count, size, or the error sentence. */
static int seg_fill_cold(struct segment *s)
{
	struct source *src = s->src;
	struct slot_frames fr;
	int64_t n;

	if (!src->idx) {
		seg_error(s, "%s", src->error);
		return 0;
	}
	s->width = src->out_w;
	s->height = src->out_h;
	if (src->out_err == -ENOTSUP) { /* jpg of alpha or deep samples not tone-mapped */
		seg_error(s, "%s of %s; use png", src->out_why, source_name(s->path));
		return 0;
	}
	if (src->out_err < 0) {
		seg_error(s, "%s of %s (%dx%d)", src->out_why, source_name(s->path),
			  src->idx->width, src->idx->height);
		return 0;
	}
	fr = source_index_frames(src->idx);
	/* hold: every slot of the duration, those past the end showing the last frame */
	n = s->sn.hold && src->idx->at_end ? slots_count_held(s->sn.dur, s->sn.fps)
					   : slots_count(&fr, s->sn.start, s->sn.dur, s->sn.fps);
	if (n < 0)
		return -ENOENT;
	if (n == 0) {
		char a[48], b[48];
		segname_format_q(s->sn.start, a, sizeof(a));
		fmt_seconds_ms(source_index_duration_ms(src->idx), b, sizeof(b));
		/* whole seconds as "12.000", like the example in SPEC §3 */
		seg_error(s, "start %s%s s is past the end of %s (%s s)", a,
			  strchr(a, '.') ? "" : ".000", source_name(s->path), b);
		return 0;
	}
	s->count = n;
	return seg_plan(s);
}

/* ---- the by-path table: a video's segments without a walk of every segment ---- */

static size_t path_bucket(const struct engine *e, const char *path)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)(h % e->by_path_cap);
}

/* Doubles the table once its chains average four; stays as it is without memory. */
static void path_grow_locked(struct engine *e)
{
	size_t ncap = e->by_path_cap * 2, old = e->by_path_cap;
	struct segment **nv, **ov = e->by_path;

	if (e->nsegments < 4 * e->by_path_cap || !(nv = calloc(ncap, sizeof(*nv))))
		return;
	e->by_path = nv;
	e->by_path_cap = ncap;
	for (size_t b = 0; b < old; b++)
		while (ov[b]) {
			struct segment *s = ov[b];
			size_t nb = path_bucket(e, s->path);
			ov[b] = s->path_next;
			s->path_next = nv[nb];
			nv[nb] = s;
		}
	free(ov);
}

void eng_path_add_locked(struct engine *e, struct segment *s)
{
	size_t b;

	path_grow_locked(e);
	b = path_bucket(e, s->path);
	s->path_next = e->by_path[b];
	e->by_path[b] = s;
}

void eng_path_remove_locked(struct engine *e, struct segment *s)
{
	for (struct segment **pp = &e->by_path[path_bucket(e, s->path)]; *pp;
	     pp = &(*pp)->path_next)
		if (*pp == s) {
			*pp = s->path_next;
			s->path_next = NULL;
			return;
		}
}

int engine_segment(struct engine *e, const char *path, const struct stat *file, uid_t uid,
		   const struct segname *sn, struct segment **out)
{
	struct image_opts opts = eng_opts_for(e, sn);
	char fmt[96], canon[256], name[1024];
	char *identity = NULL, *vals;
	struct hf_key key;
	struct segment *s;
	struct manifest *man = NULL;
	int ret;

	*out = NULL;
	ret = eng_source_identity(e, path, file, &identity);
	if (ret < 0)
		return ret;
	image_opts_canon(&opts, fmt, sizeof(fmt));
	/* the values alone, without NAME: "1.5+2@30" */
	ret = segname_format(sn, "x", 1, canon, sizeof(canon));
	if (ret < 0) {
		free(identity);
		return -ENOENT;
	}
	vals = canon + 2;
	key_segment(identity, vals, fmt, &key);

	pthread_mutex_lock(&e->lock);
	s = eng_seg_find_locked(e, &key, path);
	if (s) {
		s->refs++;
		s->file = *file;
		atomic_store(&s->uid, uid);
		pthread_mutex_unlock(&e->lock);
		free(identity);
		*out = s;
		return 0;
	}
	pthread_mutex_unlock(&e->lock);

	s = calloc(1, sizeof(*s));
	if (!s) {
		free(identity);
		return -ENOMEM;
	}
	s->e = e;
	s->refs = 1;
	s->uid = uid;
	s->key = key;
	s->sn = *sn;
	s->file = *file;
	s->identity = identity;
	s->path = strdup(path);
	s->canon = strdup(vals);
	ret = segname_format(sn, source_name(path), strlen(source_name(path)), name, sizeof(name));
	s->name = ret < 0 ? NULL : strdup(name);
	snprintf(s->ext, sizeof(s->ext), "%s", segname_ext(sn));
	if (!s->path || !s->canon || !s->name) {
		eng_seg_free(s);
		return ret < 0 ? -ENOENT : -ENOMEM;
	}

	if (!S_ISREG(file->st_mode)) {
		seg_error(s, "%s is %s, not a regular file; hfmount decodes only regular files",
			  source_name(path), file_kind(file->st_mode));
	} else if (store_manifest_get(e->store, path, &key, &man) == 0 &&
		   strcmp(man->identity, identity) == 0 && man->count > 0) {
		s->man = man;
		s->count = man->count;
		s->data_slots = man->count;
		s->width = man->width;
		s->height = man->height;
		s->state = SEG_COMPLETE;
	} else {
		/* cold: indexed on first use (segment_prepare), not while the lookup holds
		 * the directory the video is in */
		manifest_free(&man);
		s->cold = true;
	}
	s->prepared = !s->cold;

	pthread_mutex_lock(&e->lock);
	{
		struct segment *other = eng_seg_find_locked(e, &key, path);
		if (other) {
			other->refs++;
			other->file = *file;
			atomic_store(&other->uid, uid);
			pthread_mutex_unlock(&e->lock);
			eng_seg_free(s);
			*out = other;
			return 0;
		}
	}
	eng_grow_segments(e);
	{
		size_t b = eng_seg_bucket(e, &key);
		s->next = e->segments[b];
		e->segments[b] = s;
	}
	e->nsegments++;
	eng_path_add_locked(e, s);
	s->refs++; /* the table's */
	pthread_mutex_unlock(&e->lock);
	atomic_fetch_add(&e->segments_known, 1);
	*out = s;
	return 0;
}

/*
 * FUSE threads doing index work: at most INDEX_MAX at once, INDEX_PER_USER of one user;
 * one user may have INDEX_GATE_PER_USER threads indexing or waiting to (a quarter of
 * FUSE's 64), all users INDEX_GATE_MAX (half): past those a prepare answers at once with
 * a busy sentence, so one user's hundreds of lookups never hold every FUSE thread.
 */
#define INDEX_MAX 4
#define INDEX_PER_USER 2
#define INDEX_GATE_PER_USER 16
#define INDEX_GATE_MAX 32

/* Enters the index gate as uid, waiting for a turn: 0, or -EBUSY past the gate's bounds. */
static int index_enter(struct engine *e, uid_t uid)
{
	struct index_user *u;

	pthread_mutex_lock(&e->lock);
	for (u = e->index_users; u && u->uid != uid; u = u->next)
		;
	if (!u && (u = calloc(1, sizeof(*u)))) {
		u->uid = uid;
		u->next = e->index_users;
		e->index_users = u;
	}
	if (!u || u->in_gate >= INDEX_GATE_PER_USER || e->index_gate >= INDEX_GATE_MAX) {
		pthread_mutex_unlock(&e->lock);
		return -EBUSY;
	}
	u->in_gate++;
	e->index_gate++;
	while (e->indexing >= INDEX_MAX || u->indexing >= INDEX_PER_USER)
		pthread_cond_wait(&e->index_cond, &e->lock);
	e->indexing++;
	u->indexing++;
	pthread_mutex_unlock(&e->lock);
	return 0;
}

static void index_leave(struct engine *e, uid_t uid)
{
	pthread_mutex_lock(&e->lock);
	for (struct index_user **pp = &e->index_users; *pp; pp = &(*pp)->next) {
		struct index_user *u = *pp;
		if (u->uid != uid)
			continue;
		u->indexing--;
		u->in_gate--;
		if (u->in_gate == 0) {
			*pp = u->next;
			free(u);
		}
		break;
	}
	e->indexing--;
	e->index_gate--;
	pthread_cond_broadcast(&e->index_cond);
	pthread_mutex_unlock(&e->lock);
}

int segment_prepare(struct segment *s)
{
	struct engine *e = s->e;
	struct image_opts opts = eng_opts_for(e, &s->sn);
	struct source *src;
	struct stat file;
	uint64_t t0 = now_ns();
	uid_t uid = atomic_load(&s->uid);
	int ret;

	pthread_mutex_lock(&e->lock);
	while (s->preparing)
		pthread_cond_wait(&e->built, &e->lock);
	if (s->prepared) {
		pthread_mutex_unlock(&e->lock);
		return 0;
	}
	s->preparing = true;
	file = s->file;
	pthread_mutex_unlock(&e->lock);

	if (index_enter(e, uid) < 0) {
		/* not prepared: the next call tries again */
		pthread_mutex_lock(&e->lock);
		snprintf(s->error, sizeof(s->error),
			 "hfmount is busy indexing other videos for this user; %s is indexed when asked again",
			 source_name(s->path));
		s->preparing = false;
		pthread_cond_broadcast(&e->built);
		pthread_mutex_unlock(&e->lock);
		return -EBUSY;
	}
	s->error[0] = 0;
	src = eng_source_get(e, s->path, &file, s->identity, &opts, &s->sn);
	index_leave(e, uid);
	if (src) {
		pthread_mutex_lock(&e->lock);
		s->src = src; /* under the engine lock: the sweep reads it there */
		pthread_mutex_unlock(&e->lock);
		ret = seg_fill_cold(s);
		if (ret < 0)
			seg_error(s, "the numbers of %s are out of range for the time base of %s",
				  s->name, source_name(s->path));
	} else {
		/* not prepared: a failed allocation is asked again, never a lasting verdict */
		pthread_mutex_lock(&e->lock);
		snprintf(s->error, sizeof(s->error), "out of memory indexing %s; asked again, it is indexed",
			 source_name(s->path));
		s->preparing = false;
		pthread_cond_broadcast(&e->built);
		pthread_mutex_unlock(&e->lock);
		return -ENOMEM;
	}
	pthread_mutex_lock(&e->lock);
	s->prepare_ns = now_ns() - t0;
	s->prepared = true;
	s->preparing = false;
	pthread_cond_broadcast(&e->built);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

/* Warm segment whose image went missing: fall back to the source. */
static int seg_go_cold(struct segment *s)
{
	struct engine *e = s->e;
	struct image_opts opts = eng_opts_for(e, &s->sn);
	struct source *src;
	struct stat file;
	int ret = 0;

	pthread_mutex_lock(&e->lock);
	file = s->file;
	pthread_mutex_unlock(&e->lock);
	src = eng_source_get(e, s->path, &file, s->identity, &opts, &s->sn);
	if (!src)
		return -ENOMEM;
	pthread_mutex_lock(&e->lock);
	if (s->src) { /* another reader was first */
		src->users--;
		pthread_mutex_unlock(&e->lock);
		return 0;
	}
	pthread_mutex_lock(&src->lock);
	s->src = src; /* under both locks: the sweep reads it under the engine's */
	if (src->idx) {
		ret = seg_plan(s);
	} else {
		snprintf(s->error, sizeof(s->error), "%s", src->error);
		ret = -EIO;
	}
	s->state = SEG_LISTED;
	pthread_mutex_unlock(&src->lock);
	pthread_mutex_unlock(&e->lock);
	return ret;
}

/*
 * Starts tracking the segment's progress (it completes, and writes its manifest, when
 * every frame it needs is done). With claim, it also claims every frame not done yet
 * for one job (eager); without, frames are produced as they are read.
 */
static void seg_start_locked(struct segment *s, struct wake *w, struct job **start, bool claim)
{
	struct source *src = s->src;
	struct job *j = NULL;

	s->started = true;
	s->state = SEG_EXTRACTING;
	s->t_start_ns = now_ns();
	s->remaining = 0;
	s->hits = 0;
	if (!s->on_src_list) {
		s->on_src_list = true;
		s->src_next = src->segs;
		src->segs = s;
		s->refs++; /* held by the source's list; engine refs are advisory here */
	}
	for (size_t i = 0; i < s->nneeded; i++) {
		size_t f = s->needed[i];
		struct frame_state *fs = &src->fs[f];
		if (fs->state == F_DONE) {
			s->hits++;
			continue;
		}
		s->remaining++;
		if (fs->state != F_NONE || !claim)
			continue;
		if (f >= src->damaged_at) {
			eng_mark_failed_locked(src, f, w);
			continue;
		}
		if (!j) {
			j = eng_job_new_locked(src, f, f);
			if (!j) {
				eng_mark_failed_locked(src, f, w);
				continue;
			}
			j->uid = atomic_load(&s->uid);
			*start = j;
		}
		fs->state = F_CLAIMED;
		fs->owner = j;
		j->last = f;
	}
	if (s->remaining == 0)
		eng_seg_finished_locked(s, w);
}

/* Marks DONE the needed frames already in the store, so no job decodes them again. */
static void seg_adopt_stored(struct segment *s)
{
	struct source *src = s->src;
	for (size_t i = 0; i < s->nneeded; i++) {
		size_t f = s->needed[i];
		struct hf_key k;
		uint64_t size;
		uint8_t st;
		pthread_mutex_lock(&src->lock);
		st = src->fs[f].state;
		pthread_mutex_unlock(&src->lock);
		if (st != F_NONE)
			continue;
		eng_image_key(src, f, &k);
		if (store_image_complete(s->e->store, &k, s->ext, &size) == 0) {
			pthread_mutex_lock(&src->lock);
			if (src->fs[f].state == F_NONE) {
				src->fs[f].state = F_DONE;
				src->fs[f].size = size;
			}
			pthread_mutex_unlock(&src->lock);
			atomic_fetch_add(&s->e->cache_hits, 1);
		}
	}
}

/*
 * Records a use. The manifest's mtime is the segment's last use for eviction, seen by
 * every process on the store; it is written at most every TOUCH_EVERY_NS unless force.
 */
static void seg_touch(struct segment *s, bool force)
{
	uint64_t now = now_ns(), last = atomic_load(&s->touched_ns);
	int64_t t;

	atomic_store(&s->used_ns, now);
	if (!force && last && now - last < TOUCH_EVERY_NS)
		return;
	if (!atomic_compare_exchange_strong(&s->touched_ns, &last, now))
		return; /* another reader is touching it */
	t = real_ns();
	if (store_manifest_touch(s->e->store, s->path, &s->key, t) == 0)
		atomic_store(&s->touched_real_ns, t);
}

/*
 * A segment's manifest: complete (every slot's image and size, for store_manifest_put)
 * or partial (the images of a segment being extracted, sizes 0: gc.h). The caller frees
 * image and size.
 */
static int seg_manifest(struct segment *s, bool complete, struct manifest *m)
{
	struct source *src = s->src;

	*m = (struct manifest){
		.segment = s->name,
		.source = s->path,
		.identity = s->identity,
		.count = complete ? s->count : s->data_slots,
		.width = s->width,
		.height = s->height,
	};
	snprintf(m->ext, sizeof(m->ext), "%s", s->ext);
	while (m->nimages < s->nneeded && s->first_slot[m->nimages] < m->count)
		m->nimages++;
	if (m->count <= 0 || m->nimages == 0)
		return -EINVAL;
	m->image = malloc(m->nimages * sizeof(*m->image));
	m->size = calloc(m->nimages, sizeof(*m->size));
	m->first = malloc(m->nimages * sizeof(*m->first));
	if (!m->image || !m->size || !m->first)
		return -ENOMEM;
	pthread_mutex_lock(&src->lock);
	for (size_t i = 0; i < m->nimages; i++) {
		size_t f = s->needed[i];
		eng_image_key(src, f, &m->image[i]);
		m->first[i] = s->first_slot[i];
		if (complete)
			m->size[i] = src->fs[f].size;
	}
	pthread_mutex_unlock(&src->lock);
	return 0;
}

/* Writes the segment's manifest or partial manifest; its last use is now. */
static void seg_store_manifest(struct segment *s, bool complete)
{
	struct manifest m;
	int ret = seg_manifest(s, complete, &m);

	if (ret == 0)
		ret = complete ? store_manifest_put(s->e->store, &s->key, &m)
			       : store_partial_put(s->e->store, &s->key, &m);
	if (ret == 0)
		seg_touch(s, true);
	else if (ret != -EINVAL)
		hf_log(HF_LOG_WARN, "%s: %s not written in %s: %s", s->name,
		       complete ? "manifest" : "partial manifest", store_dir(s->e->store),
		       strerror(-ret));
	free(m.image);
	free(m.size);
	free(m.first);
}

void segment_frame_wait(struct segment *s, int64_t slot, frame_ready_fn fn, void *arg)
{
	struct engine *e = s->e;
	struct source *src;
	struct wake w = {0};
	struct job *start = NULL, *far = NULL;
	struct waiter *wt;
	bool began = false, started;
	size_t f = 0;
	int ret;

	if (slot < 0 || slot >= s->count) {
		fn(arg, -ENOENT, 0);
		return;
	}
	seg_touch(s, false);
	if (s->man && !s->src) {
		uint64_t size;
		size_t i = manifest_image_of(s->man, slot);
		if (store_image_size(e->store, &s->man->image[i], s->ext, &size) == 0 &&
		    size == s->man->size[i]) {
			atomic_fetch_add(&e->cache_hits, 1);
			fn(arg, 0, size);
			return;
		}
		ret = seg_go_cold(s);
		if (ret < 0) {
			fn(arg, -EIO, 0);
			return;
		}
	}
	src = s->src;
	if (!src || !src->idx || slot >= s->data_slots || slot_frame(s, slot, &f) < 0) {
		fn(arg, -EIO, 0);
		return;
	}
	pthread_mutex_lock(&src->lock);
	started = s->started; /* a segment can start again (eng_release_locked) */
	pthread_mutex_unlock(&src->lock);
	if (!started)
		seg_adopt_stored(s);

	wt = malloc(sizeof(*wt));
	pthread_mutex_lock(&src->lock);
	if (!s->started) {
		seg_start_locked(s, &w, &start, e->conf.eager);
		began = s->state == SEG_EXTRACTING;
	}
	switch (src->fs[f].state) {
	case F_DONE:
		pthread_mutex_unlock(&src->lock);
		free(wt);
		if (!start)
			atomic_fetch_add(&e->cache_hits, 1);
		fn(arg, 0, src->fs[f].size);
		goto out_start;
	case F_FAILED:
		pthread_mutex_unlock(&src->lock);
		free(wt);
		fn(arg, -EIO, 0);
		goto out_start;
	case F_NONE:
		if (f >= src->damaged_at) {
			eng_mark_failed_locked(src, f, &w);
			pthread_mutex_unlock(&src->lock);
			free(wt);
			fn(arg, -EIO, 0);
			goto out_start;
		}
		/* not eager, or a frame outside what was claimed: a job of its own */
		if (!start && (start = eng_job_new_locked(src, f, f)))
			start->uid = atomic_load(&s->uid);
		if (start) {
			src->fs[f].state = F_CLAIMED;
			src->fs[f].owner = start;
			if (start->last < f)
				start->last = f;
		}
		atomic_fetch_add(&e->cache_misses, 1);
		break;
	case F_CLAIMED:
		/* Far ahead of its job (even one this request just created): a job of its own. */
		atomic_fetch_add(start && src->fs[f].owner == start ? &e->cache_misses : &e->joined, 1);
		far = eng_split_far_locked(src, f);
		break;
	}
	if (!wt) {
		pthread_mutex_unlock(&src->lock);
		fn(arg, -EAGAIN, 0);
		goto out_start;
	}
	wt->frame = f;
	wt->fn = fn;
	wt->arg = arg;
	wt->next = src->waiters;
	src->waiters = wt;
	pthread_mutex_unlock(&src->lock);
out_start:
	if (began)
		seg_store_manifest(s, false);
	if (start)
		eng_job_start(start);
	if (far)
		eng_job_start(far);
	eng_run_wake(src, &w);
}

/*
 * The stored image of a slot: its key, and the size it was stored with (0 when this
 * process has not seen it stored). 0, -ENOENT for a slot out of range, -EIO without a
 * way to know its frame.
 */
static int slot_image(struct segment *s, int64_t slot, struct hf_key *k, uint64_t *size)
{
	size_t f = 0;

	if (slot < 0 || slot >= s->count)
		return -ENOENT;
	if (s->man && !s->src) {
		size_t i = manifest_image_of(s->man, slot);
		*k = s->man->image[i];
		*size = s->man->size[i];
		return 0;
	}
	if (!s->src || !s->src->idx || slot_frame(s, slot, &f) < 0)
		return -EIO;
	eng_image_key(s->src, f, k);
	pthread_mutex_lock(&s->src->lock);
	*size = s->src->fs[f].state == F_DONE ? s->src->fs[f].size : 0;
	pthread_mutex_unlock(&s->src->lock);
	return 0;
}

int segment_frame_open(struct segment *s, int64_t slot)
{
	struct hf_key k;
	uint64_t size;
	int ret = slot_image(s, slot, &k, &size);

	return ret < 0 ? ret : store_image_open(s->e->store, &k, s->ext, size);
}

void segment_frame_prefetch(struct segment *s, int64_t slot)
{
	char path[PATH_MAX];
	struct hf_key k;
	uint64_t size;
	int fd;

	/* a size of 0: not stored as this process knows, so nothing to read ahead */
	if (slot_image(s, slot, &k, &size) < 0 || size == 0)
		return;
	store_image_path(s->e->store, &k, s->ext, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED); /* queued, not waited for */
		close(fd);
	}
}

void segment_frame_lost(struct segment *s, int64_t slot)
{
	struct source *src = s->src;
	struct wake w = {0};
	size_t *done, ndone = 0, lost = 0;

	(void)slot; /* the whole segment is checked: eviction removes segments, not frames */
	if (!src || !src->idx || s->nneeded == 0)
		return; /* warm segments check their images on every wait */
	done = malloc(s->nneeded * sizeof(*done));
	if (!done)
		return;
	pthread_mutex_lock(&src->lock);
	for (size_t i = 0; i < s->nneeded; i++)
		if (src->fs[s->needed[i]].state == F_DONE)
			done[ndone++] = s->needed[i];
	pthread_mutex_unlock(&src->lock);
	for (size_t i = 0; i < ndone; i++) {
		struct hf_key k;
		uint64_t size;
		eng_image_key(src, done[i], &k);
		if (store_image_size(s->e->store, &k, s->ext, &size) < 0)
			done[lost++] = done[i];
	}
	pthread_mutex_lock(&src->lock);
	for (size_t i = 0; i < lost; i++)
		if (src->fs[done[i]].state == F_DONE)
			eng_release_locked(src, done[i], &w);
	pthread_mutex_unlock(&src->lock);
	eng_run_wake(src, &w);
	if (lost)
		hf_log(HF_LOG_INFO, "%s: %zu stored images are gone (evicted); they will be extracted again",
		       s->name, lost);
	free(done);
}

void eng_write_manifest(struct segment *s)
{
	uint64_t ms = (s->t_done_ns - s->t_start_ns) / 1000000;

	seg_store_manifest(s, true);
	hf_log(HF_LOG_INFO, "extracted %s (%s): %" PRId64 " frames in %" PRIu64 " ms, %" PRIu64
	       " distinct images already stored", s->name, s->path, s->count, ms, s->hits);
}

struct name_set {
	char **v;
	size_t n;
};

static void name_add(void *arg, const char *name)
{
	struct name_set *ns = arg;
	char **v;
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], name) == 0)
			return;
	v = realloc(ns->v, (ns->n + 1) * sizeof(*v));
	if (!v)
		return;
	ns->v = v;
	if ((ns->v[ns->n] = strdup(name)))
		ns->n++;
}

void engine_list_segments(struct engine *e, const char *src, void (*fn)(void *arg, const char *name),
			  void *arg)
{
	struct name_set ns = {0};
	char *identity = NULL;

	if (eng_source_identity(e, src, NULL, &identity) < 0)
		return;
	pthread_mutex_lock(&e->lock);
	for (struct segment *s = e->by_path[path_bucket(e, src)]; s; s = s->path_next) {
		bool started = false;
		if (strcmp(s->path, src) != 0)
			continue;
		if (s->src) {
			pthread_mutex_lock(&s->src->lock);
			started = s->started;
			pthread_mutex_unlock(&s->src->lock);
		}
		if (started && strcmp(s->path, src) == 0 && strcmp(s->identity, identity) == 0)
			name_add(&ns, s->name);
	}
	pthread_mutex_unlock(&e->lock);
	store_manifest_list(e->store, src, identity, name_add, &ns);
	for (size_t i = 0; i < ns.n; i++) {
		fn(arg, ns.v[i]);
		free(ns.v[i]);
	}
	free(ns.v);
	free(identity);
}
