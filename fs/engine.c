/*
 * Engine: frame states per (source identity, output format), decode jobs that claim
 * frames, waiters woken by the encoder threads, and segment manifests.
 *
 * Locking: engine->lock guards the two hash tables and reference counts; each
 * source->lock guards its frame states, waiters, jobs and attached segments. A source
 * lock is never taken while holding the engine lock, except to create the source.
 */
#include "fs/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/gc.h"
#include "decode/extract.h"
#include "decode/source.h"
#include "fs/log.h"

/* A claimed frame at least this far ahead of a job's position gets its own job. */
#define FAR_AHEAD_FRAMES 48

#define NS 1000000000LL
/* A segment's last use (its manifest's mtime) is refreshed at most this often. */
#define TOUCH_EVERY_NS (30 * NS)
/* A segment waited on this recently is being read: this process does not evict it. */
#define READING_NS (2 * NS)
/* How often the evictor looks at the store's bounds without being asked. */
#define EVICT_CHECK_NS (5 * NS)

enum fstate { F_NONE, F_CLAIMED, F_DONE, F_FAILED };

struct frame_state {
	uint8_t state;
	struct job *owner;
	uint64_t size;
};

struct waiter {
	size_t frame;
	frame_ready_fn fn;
	void *arg;
	int err;       /* the answer, fixed when the waiter is taken */
	uint64_t size;
	struct waiter *next;
};

struct job {
	struct source *src;
	size_t first, last;
	_Atomic int64_t pos; /* last frame index decoded, -1 before the first */
	pthread_t thread;
	bool urgent; /* made for a far-ahead reader whose frame is not stored yet */
	struct job *next;
};

struct source {
	struct engine *e;
	char *path;      /* the first path it was asked for under: names it in logs */
	char *open_path; /* the path it was last asked for under: decodes open it (src->lock) */
	struct stat file; /* what a caller opened at open_path: decodes open only that (src->lock) */
	char *identity;
	char fmt[96]; /* image_opts_canon */
	struct image_opts opts;
	struct source *next; /* engine hash chain */
	int users; /* segments attached to it and jobs running on it (engine lock): at 0 it may go */

	/* the window asked for when it was made (engine lock): others may wait for it */
	struct hf_q want_start, want_dur;
	/* set once by the builder, then read-only */
	bool ready;
	struct source_index *idx; /* a window of the video (source.h) */
	int err;
	char error[256];

	pthread_mutex_t lock;
	struct frame_state *fs;
	struct waiter *waiters;
	struct job *jobs;
	struct segment *segs; /* cold segments being tracked, via seg->src_next */
	size_t damaged_at;    /* frames at or after this fail; SIZE_MAX when undamaged */
	char damage[256];
	int lease_fd;   /* the store lease for decoding this source, held while lease_refs > 0 */
	int lease_refs;
	int urgent_jobs;          /* other jobs pause while a far-ahead reader waits */
	pthread_cond_t unpaused;
	char store_error[256];    /* why the last image could not be stored; "" once one is */
};

enum seg_state { SEG_LISTED, SEG_EXTRACTING, SEG_COMPLETE, SEG_ERROR };

struct segment {
	struct engine *e;
	_Atomic int refs; /* taken under either lock, so atomic */
	struct segment *next; /* engine hash chain */
	struct hf_key key;
	char *name;   /* canonical directory name */
	char *canon;  /* canonical values, e.g. "1.5+2@30" */
	char *path;   /* source path */
	struct stat file; /* what the last caller opened at path (engine lock) */
	char *identity;
	struct segname sn;
	int64_t count;
	int64_t data_slots; /* slots before the end of the data present (< count if truncated) */
	int width, height;
	char ext[8];
	char error[256];
	struct manifest *man; /* warm: served from the store */
	struct source *src;   /* cold: attached when a frame is needed */

	/* under src->lock */
	enum seg_state state;
	bool started;
	size_t *needed;   /* distinct source frames shown, ascending */
	int64_t *first_slot; /* the first slot showing each of them */
	size_t nneeded;
	size_t remaining; /* needed frames not done */
	struct segment *src_next;
	bool on_src_list;
	/* engine lock: a cold segment is indexed once, by the first to need it */
	bool cold, prepared, preparing;
	uint64_t t_start_ns, t_done_ns;
	/* last use, for eviction (any thread) */
	_Atomic uint64_t used_ns;         /* monotonic time of the last wait */
	_Atomic uint64_t touched_ns;      /* monotonic time of the last touch of its manifest */
	_Atomic int64_t touched_real_ns;  /* the mtime that touch gave it */
	uint64_t hits; /* needed frames already stored when extraction started */
};

struct content_id {
	char stamp[128]; /* dev:ino:size:mtime */
	char hex[HF_KEY_HEXLEN + 1];
	struct content_id *next;
};

struct engine {
	struct hf_conf conf;
	struct content_id *content_ids;
	struct store *store;
	pthread_mutex_t lock;
	pthread_cond_t built;
	pthread_cond_t jobs_done;
	int running_jobs;
	/* hash tables (engine lock): sources by (identity, format), segments by key */
	struct source **sources;
	size_t nsources, sources_cap;
	struct segment **segments;
	size_t nsegments, segments_cap;
	_Atomic uint64_t sources_freed, segments_freed;
	uint64_t t0_ns;

	struct extract_stats xs;
	_Atomic uint64_t write_ns;
	_Atomic uint64_t index_ns, index_bytes, windows_built, windows_known;
	pthread_mutex_t known_lock; /* one read-merge-write of a known-ranges blob at a time */
	int test_index_delay_ms;    /* HF_TEST_INDEX_DELAY_MS: for tests only */
	_Atomic uint64_t extractions_started, extractions_completed, extractions_failed;
	_Atomic uint64_t frames_served, images_encoded, cache_hits, cache_misses, joined;
	_Atomic uint64_t segments_known, store_errors, adopted;
	atomic_bool stopping;
	char store_error[256]; /* why the last write failed (engine lock) */
	atomic_bool store_failing; /* the last write failed: .hfstats shows store_error */

	/* eviction: a thread that keeps the store within max_size and min_free */
	pthread_t evictor;
	bool evictor_running;
	bool stopped; /* engine_stop ran */
	pthread_mutex_t evict_lock; /* guards evict_asked */
	pthread_cond_t evict_cond;
	pthread_mutex_t gc_lock;    /* one eviction pass at a time */
	bool evict_asked;
	_Atomic uint64_t evictions, evicted_images, evicted_bytes, kept_in_use;
	_Atomic bool over_bound;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

/* ---- the two hash tables (engine lock) ---- */

static uint64_t str_hash(const char *a, const char *b)
{
	uint64_t h = 1469598103934665603ull;
	for (; *a; a++)
		h = (h ^ (unsigned char)*a) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull;
	for (; *b; b++)
		h = (h ^ (unsigned char)*b) * 1099511628211ull;
	return h;
}

static size_t seg_bucket(const struct engine *e, const struct hf_key *k)
{
	uint64_t h;
	memcpy(&h, k->b, sizeof(h)); /* SHA-256 bytes are already uniform */
	return (size_t)h & (e->segments_cap - 1);
}

static size_t src_bucket(const struct engine *e, const char *identity, const char *fmt)
{
	return (size_t)str_hash(identity, fmt) & (e->sources_cap - 1);
}

/* Doubles a table once it holds twice as many entries as buckets. */
static void grow_segments(struct engine *e)
{
	size_t cap = e->segments_cap * 2;
	struct segment **t;

	if (e->nsegments < 2 * e->segments_cap || !(t = calloc(cap, sizeof(*t))))
		return;
	for (size_t b = 0; b < e->segments_cap; b++)
		while (e->segments[b]) {
			struct segment *s = e->segments[b];
			uint64_t h;
			e->segments[b] = s->next;
			memcpy(&h, s->key.b, sizeof(h));
			s->next = t[h & (cap - 1)];
			t[h & (cap - 1)] = s;
		}
	free(e->segments);
	e->segments = t;
	e->segments_cap = cap;
}

static void grow_sources(struct engine *e)
{
	size_t cap = e->sources_cap * 2;
	struct source **t;

	if (e->nsources < 2 * e->sources_cap || !(t = calloc(cap, sizeof(*t))))
		return;
	for (size_t b = 0; b < e->sources_cap; b++)
		while (e->sources[b]) {
			struct source *src = e->sources[b];
			size_t nb = (size_t)str_hash(src->identity, src->fmt) & (cap - 1);
			e->sources[b] = src->next;
			src->next = t[nb];
			t[nb] = src;
		}
	free(e->sources);
	e->sources = t;
	e->sources_cap = cap;
}

#define FOR_EACH_SEGMENT(e, s)                                      \
	for (size_t seg_b_ = 0; seg_b_ < (e)->segments_cap; seg_b_++) \
		for (struct segment *s = (e)->segments[seg_b_]; s; s = s->next)
#define FOR_EACH_SOURCE(e, src)                                    \
	for (size_t src_b_ = 0; src_b_ < (e)->sources_cap; src_b_++) \
		for (struct source *src = (e)->sources[src_b_]; src; src = src->next)

static struct segment *seg_find_locked(struct engine *e, const struct hf_key *key,
				       const char *path)
{
	for (struct segment *s = e->segments[seg_bucket(e, key)]; s; s = s->next)
		if (memcmp(&s->key, key, sizeof(*key)) == 0 && (!path || strcmp(s->path, path) == 0))
			return s;
	return NULL;
}

/* Drops a use of a source taken by source_get (a segment, or a job). */
static void source_put(struct engine *e, struct source *src)
{
	pthread_mutex_lock(&e->lock);
	src->users--;
	pthread_mutex_unlock(&e->lock);
}

/* ---- sources ---- */

static struct image_opts opts_for(const struct engine *e, const struct segname *sn)
{
	return (struct image_opts){
		.format = sn->format == SEG_JPG ? IMAGE_JPG : IMAGE_PNG,
		.png_level = e->conf.png_level,
		.png_filter = e->conf.png_filter,
		.png_strategy = e->conf.png_strategy,
		.png_deflate = e->conf.png_deflate,
		.jpeg_q = sn->q,
	};
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/*
 * Opens path again for reading, as the daemon, but only if it is still the very file a
 * caller opened (want: same device, inode, size and mtime) and a regular file: a path
 * swapped since for a link to another file, a FIFO or a device is never read (-ESTALE).
 * Non-blocking, so nothing a user put there can hold the thread.
 */
static int source_file_open(const char *path, const struct stat *want)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !same_file(&st, want)) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

/*
 * identity = content: the SHA-256 of the file's bytes, computed once per (device, inode,
 * size, mtime) and remembered in memory and in the store, so a copy hits the same frames.
 */
static int content_identity(struct engine *e, const char *path, const struct stat *sb, char **out)
{
	char stamp[128], hex[HF_KEY_HEXLEN + 1];
	struct content_id *c;
	struct hf_key sk, h;
	void *blob = NULL;
	size_t len;
	int fd, ret;

	snprintf(stamp, sizeof(stamp), "%llu:%llu:%lld:%lld.%09ld", (unsigned long long)sb->st_dev,
		 (unsigned long long)sb->st_ino, (long long)sb->st_size,
		 (long long)sb->st_mtim.tv_sec, sb->st_mtim.tv_nsec);
	pthread_mutex_lock(&e->lock);
	for (c = e->content_ids; c; c = c->next)
		if (strcmp(c->stamp, stamp) == 0)
			break;
	if (c) {
		ret = asprintf(out, "sha256:%s", c->hex);
		pthread_mutex_unlock(&e->lock);
		return ret < 0 ? -ENOMEM : 0;
	}
	pthread_mutex_unlock(&e->lock);

	key_string("content-of", stamp, &sk);
	if (store_blob_get(e->store, "cid", &sk, &blob, &len) == 0 && len == HF_KEY_HEXLEN &&
	    key_from_hex(blob, &h) == 0) {
		memcpy(hex, blob, HF_KEY_HEXLEN);
		hex[HF_KEY_HEXLEN] = 0;
	} else {
		fd = source_file_open(path, sb);
		if (fd < 0) {
			free(blob);
			return fd;
		}
		ret = key_file(fd, &h);
		close(fd);
		if (ret < 0) {
			free(blob);
			return ret;
		}
		key_hex(&h, hex);
		store_blob_put(e->store, "cid", &sk, hex, HF_KEY_HEXLEN);
	}
	free(blob);
	c = calloc(1, sizeof(*c));
	if (c) {
		snprintf(c->stamp, sizeof(c->stamp), "%s", stamp);
		memcpy(c->hex, hex, sizeof(c->hex));
		pthread_mutex_lock(&e->lock);
		c->next = e->content_ids;
		e->content_ids = c;
		pthread_mutex_unlock(&e->lock);
	}
	return asprintf(out, "sha256:%s", hex) < 0 ? -ENOMEM : 0;
}

/*
 * Who a source is: (path, size, mtime) by default, or its content. A changed file is new.
 * sb is what the caller found at path (NULL: stat it here).
 */
static int source_identity(struct engine *e, const char *path, const struct stat *sb, char **out)
{
	struct stat own;
	char *id;
	if (!sb) {
		if (stat(path, &own) < 0)
			return -errno;
		sb = &own;
	}
	if (e->conf.identity == HF_IDENTITY_CONTENT)
		return content_identity(e, path, sb, out);
	if (asprintf(&id, "stat:%s:%lld:%lld.%09ld", path, (long long)sb->st_size,
		     (long long)sb->st_mtim.tv_sec, sb->st_mtim.tv_nsec) < 0)
		return -ENOMEM;
	*out = id;
	return 0;
}

/*
 * The index of the source's window: cut from the ranges the store already knows (no
 * byte of the video read), or scanned around the window and merged into them.
 */
static void build_index(struct engine *e, struct source *src)
{
	struct source_known *known = NULL;
	struct hf_key k;
	void *blob = NULL;
	size_t len;
	uint64_t t0 = now_ns(), bytes = 0;
	int ret;

	if (e->test_index_delay_ms > 0) /* tests make indexing slow on purpose */
		usleep((useconds_t)e->test_index_delay_ms * 1000);

	key_string("known", src->identity, &k);
	pthread_mutex_lock(&e->known_lock);
	if (store_blob_get(e->store, "idx", &k, &blob, &len) == 0)
		source_known_load(blob, len, &known);
	free(blob);
	blob = NULL;
	pthread_mutex_unlock(&e->known_lock);
	if (source_known_window(known, src->want_start, src->want_dur, &src->idx) == 0) {
		source_known_free(&known);
		atomic_fetch_add(&e->windows_known, 1);
		atomic_fetch_add(&e->index_ns, now_ns() - t0);
		return;
	}
	source_known_free(&known);
	ret = source_file_open(src->open_path, &src->file);
	if (ret >= 0) {
		int fd = ret;
		ret = source_index_build(fd, src->path, src->want_start, src->want_dur, &src->idx,
					 &bytes, src->error, sizeof(src->error));
		close(fd);
	} else {
		snprintf(src->error, sizeof(src->error), "%s changed while it was being opened",
			 source_name(src->path));
	}
	atomic_fetch_add(&e->index_bytes, bytes);
	atomic_fetch_add(&e->windows_built, 1);
	if (ret < 0) {
		src->err = ret;
		hf_log(HF_LOG_WARN, "%s: %s", src->path, src->error);
		atomic_fetch_add(&e->index_ns, now_ns() - t0);
		return;
	}
	/* what was learnt is kept, merged with what the store knew: never read twice */
	pthread_mutex_lock(&e->known_lock);
	if (store_blob_get(e->store, "idx", &k, &blob, &len) == 0)
		source_known_load(blob, len, &known);
	free(blob);
	if (source_known_merge(&known, src->idx) == 0 &&
	    source_known_save(known, &blob, &len) == 0) {
		store_blob_put(e->store, "idx", &k, blob, len);
		free(blob);
	}
	pthread_mutex_unlock(&e->known_lock);
	source_known_free(&known);
	atomic_fetch_add(&e->index_ns, now_ns() - t0);
}

/* The segment's window in this source: within what its index holds (or it failed whole). */
static bool src_serves(const struct source *src, const struct segname *sn)
{
	return !src->idx || source_index_covers(src->idx, sn->start, sn->dur);
}

/* A window being built that will hold this one too: [a, a + ad] within [b, b + bd]. */
static bool want_covers(const struct source *src, const struct segname *sn)
{
	struct hf_q a = src->want_start, ad = src->want_dur;
	__int128 a_end_n = (__int128)a.num * ad.den + (__int128)ad.num * a.den;
	__int128 a_end_d = (__int128)a.den * ad.den;
	__int128 b_end_n = (__int128)sn->start.num * sn->dur.den + (__int128)sn->dur.num * sn->start.den;
	__int128 b_end_d = (__int128)sn->start.den * sn->dur.den;
	return hf_q_cmp(a, sn->start) <= 0 && a_end_n * b_end_d >= b_end_n * a_end_d;
}

/* Finds or creates the source; indexes it once, others wait for the builder. */
static struct source *source_get(struct engine *e, const char *path, const struct stat *file,
				 const char *identity, const struct image_opts *opts,
				 const struct segname *sn)
{
	char fmt[96];
	struct source *src;

	image_opts_canon(opts, fmt, sizeof(fmt));
	pthread_mutex_lock(&e->lock);
again:
	/*
	 * A window of this video that holds the segment's, built or being built for a window
	 * that holds it; else a new one (windows of one video are built in parallel).
	 */
	for (src = e->sources[src_bucket(e, identity, fmt)]; src; src = src->next)
		if (strcmp(src->identity, identity) == 0 && strcmp(src->fmt, fmt) == 0 &&
		    (src->ready ? src_serves(src, sn) : want_covers(src, sn)))
			break;
	if (src) {
		src->users++; /* the caller's, before anyone may free it */
		while (!src->ready)
			pthread_cond_wait(&e->built, &e->lock);
		if (!src_serves(src, sn)) { /* the window it found is shorter than asked */
			src->users--;
			goto again;
		}
		pthread_mutex_unlock(&e->lock);
		/* identity = content: a copy or a moved file; decode whichever was asked last */
		pthread_mutex_lock(&src->lock);
		if (strcmp(src->open_path, path) != 0) {
			char *p = strdup(path);
			if (p) {
				free(src->open_path);
				src->open_path = p;
				src->file = *file;
			}
		} else {
			src->file = *file;
		}
		pthread_mutex_unlock(&src->lock);
		return src;
	}
	src = calloc(1, sizeof(*src));
	if (!src || !(src->path = strdup(path)) || !(src->open_path = strdup(path)) ||
	    !(src->identity = strdup(identity))) {
		pthread_mutex_unlock(&e->lock);
		if (src) {
			free(src->path);
			free(src->open_path);
			free(src);
		}
		return NULL;
	}
	src->e = e;
	src->file = *file;
	src->opts = *opts;
	src->want_start = sn->start;
	src->want_dur = sn->dur;
	snprintf(src->fmt, sizeof(src->fmt), "%s", fmt);
	src->damaged_at = SIZE_MAX;
	src->lease_fd = -1;
	src->users = 1; /* the caller's */
	pthread_mutex_init(&src->lock, NULL);
	pthread_cond_init(&src->unpaused, NULL);
	grow_sources(e);
	{
		size_t b = src_bucket(e, identity, fmt);
		src->next = e->sources[b];
		e->sources[b] = src;
	}
	e->nsources++;
	pthread_mutex_unlock(&e->lock);

	build_index(e, src);
	if (src->idx) {
		src->fs = calloc(src->idx->n, sizeof(*src->fs));
		if (!src->fs) {
			source_index_free(&src->idx);
			src->err = -ENOMEM;
			snprintf(src->error, sizeof(src->error), "out of memory");
		}
	}
	pthread_mutex_lock(&e->lock);
	src->ready = true;
	pthread_cond_broadcast(&e->built);
	pthread_mutex_unlock(&e->lock);
	return src;
}

static void source_free(struct source *src)
{
	source_index_free(&src->idx);
	free(src->fs);
	free(src->path);
	free(src->open_path);
	free(src->identity);
	pthread_mutex_destroy(&src->lock);
	pthread_cond_destroy(&src->unpaused);
	free(src);
}

static void image_key(const struct source *src, size_t frame, struct hf_key *k)
{
	key_image(src->identity, src->idx->stream, src->idx->pts[frame], src->fmt, k);
}

/* ---- frame states ---- */

struct wake {
	struct waiter *list; /* waiters to call once unlocked */
	struct segment *complete[8];
	int ncomplete;
};

static bool seg_needs(const struct segment *s, size_t frame)
{
	size_t lo = 0, hi = s->nneeded;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->needed[mid] < frame)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->nneeded && s->needed[lo] == frame;
}

/* Takes the waiters of a frame whose state was just set; they get that state's answer. */
static void take_waiters_locked(struct source *src, size_t frame, struct wake *w)
{
	struct waiter **pp = &src->waiters;
	bool done = src->fs[frame].state == F_DONE;
	while (*pp) {
		struct waiter *wt = *pp;
		if (wt->frame == frame) {
			wt->err = done ? 0 : -EIO;
			wt->size = done ? src->fs[frame].size : 0;
			*pp = wt->next;
			wt->next = w->list;
			w->list = wt;
		} else {
			pp = &wt->next;
		}
	}
}

/* Every frame of the segment is done: complete (its manifest to write), or truncated. */
static void seg_finished_locked(struct segment *s, struct wake *w)
{
	s->t_done_ns = now_ns();
	s->state = s->data_slots < s->count ? SEG_ERROR : SEG_COMPLETE;
	if (s->state == SEG_COMPLETE &&
	    w->ncomplete < (int)(sizeof(w->complete) / sizeof(w->complete[0]))) {
		s->refs++;
		w->complete[w->ncomplete++] = s;
	}
}

static void mark_done_locked(struct source *src, size_t frame, uint64_t size, struct wake *w)
{
	struct frame_state *f = &src->fs[frame];
	if (f->state == F_DONE)
		return;
	f->state = F_DONE;
	f->owner = NULL;
	f->size = size;
	take_waiters_locked(src, frame, w);
	for (struct segment *s = src->segs; s; s = s->src_next) {
		if (s->state != SEG_EXTRACTING || !seg_needs(s, frame))
			continue;
		if (--s->remaining == 0)
			seg_finished_locked(s, w);
	}
}

static void mark_failed_locked(struct source *src, size_t frame, struct wake *w)
{
	struct frame_state *f = &src->fs[frame];
	if (f->state == F_DONE || f->state == F_FAILED)
		return;
	f->state = F_FAILED;
	f->owner = NULL;
	take_waiters_locked(src, frame, w);
	for (struct segment *s = src->segs; s; s = s->src_next)
		if (s->state == SEG_EXTRACTING && seg_needs(s, frame))
			s->state = SEG_ERROR;
}

/*
 * A frame goes back to NONE: its image could not be stored, or was removed from the
 * store. Its waiters fail; segments that need it start again on their next wait.
 */
static void release_locked(struct source *src, size_t frame, struct wake *w)
{
	struct frame_state *f = &src->fs[frame];
	f->state = F_NONE;
	f->owner = NULL;
	f->size = 0;
	take_waiters_locked(src, frame, w);
	for (struct segment *s = src->segs; s; s = s->src_next)
		if (s->started && (s->state == SEG_EXTRACTING || s->state == SEG_COMPLETE) &&
		    seg_needs(s, frame)) {
			s->started = false;
			s->state = SEG_LISTED;
		}
}

static void write_manifest(struct segment *s);

static void run_wake(struct source *src, struct wake *w)
{
	(void)src;
	while (w->list) {
		struct waiter *wt = w->list;
		w->list = wt->next;
		wt->fn(wt->arg, wt->err, wt->size);
		free(wt);
	}
	for (int i = 0; i < w->ncomplete; i++) {
		write_manifest(w->complete[i]);
		segment_put(&w->complete[i]);
	}
	w->ncomplete = 0;
}

/* ---- jobs ---- */

static void job_not_urgent_locked(struct job *j)
{
	if (!j->urgent)
		return;
	j->urgent = false;
	if (--j->src->urgent_jobs == 0)
		pthread_cond_broadcast(&j->src->unpaused);
}

static bool has_waiter_locked(const struct source *src, size_t frame)
{
	for (const struct waiter *w = src->waiters; w; w = w->next)
		if (w->frame == frame)
			return true;
	return false;
}

static enum extract_visit job_visit(void *arg, size_t frame)
{
	struct job *j = arg;
	struct source *src = j->src;
	enum extract_visit v = EXTRACT_SKIP;

	atomic_store(&j->pos, (int64_t)frame);
	pthread_mutex_lock(&src->lock);
	/* The cores go to a far-ahead reader's decode first. */
	while (src->urgent_jobs > 0 && !j->urgent && !atomic_load(&src->e->stopping))
		pthread_cond_wait(&src->unpaused, &src->lock);
	if (frame > j->last)
		v = EXTRACT_STOP;
	else if (src->fs[frame].state == F_CLAIMED && src->fs[frame].owner == j)
		v = has_waiter_locked(src, frame) ? EXTRACT_ENCODE_NOW : EXTRACT_ENCODE;
	pthread_mutex_unlock(&src->lock);
	return v;
}

static void engine_evict(struct engine *e, uint64_t want_free);
static void evictor_ask(struct engine *e);

/* Stores a frame's image; a full store first evicts what it can, then tries once more. */
static int store_frame(struct source *src, size_t frame, const struct image_buf *img)
{
	struct engine *e = src->e;
	const char *ext = image_ext(src->opts.format);
	uint64_t t0 = now_ns(), images, bytes;
	struct hf_key k;
	int err;

	image_key(src, frame, &k);
	err = store_image_put(e->store, &k, ext, img->data, img->len);
	if (err == -ENOSPC || err == -EDQUOT) {
		engine_evict(e, 2 * (uint64_t)img->len + (1u << 20));
		err = store_image_put(e->store, &k, ext, img->data, img->len);
	}
	atomic_fetch_add(&e->write_ns, now_ns() - t0);
	if (err < 0) {
		atomic_fetch_add(&e->store_errors, 1);
		pthread_mutex_lock(&e->lock);
		snprintf(e->store_error, sizeof(e->store_error), "images cannot be written to %s: %s",
			 store_dir(e->store), strerror(-err));
		atomic_store(&e->store_failing, true);
		pthread_mutex_unlock(&e->lock);
		hf_log(HF_LOG_ERROR, "%s: frame %zu: cannot store image in %s: %s", src->path,
		       frame + 1, store_dir(e->store), strerror(-err));
		return err;
	}
	atomic_fetch_add(&e->images_encoded, 1);
	if (atomic_load(&e->store_failing))
		atomic_store(&e->store_failing, false); /* errors of the store are current */
	store_usage(e->store, &images, &bytes);
	if (e->conf.max_size && bytes > e->conf.max_size)
		evictor_ask(e);
	return 0;
}

/*
 * The store refused an image: the frame and the rest of the job go back to NONE (a later
 * read tries again), their readers get EIO, and .hfinfo says why.
 */
static void store_failed_locked(struct job *j, size_t frame, int err, struct wake *w)
{
	struct source *src = j->src;

	snprintf(src->store_error, sizeof(src->store_error),
		 "frames cannot be stored: %s (store %s)", strerror(-err), store_dir(src->e->store));
	for (size_t i = frame; i <= j->last && i < src->idx->n; i++)
		if (i == frame || (src->fs[i].state == F_CLAIMED && src->fs[i].owner == j))
			if (src->fs[i].state != F_DONE)
				release_locked(src, i, w);
	if (j->last > frame)
		j->last = frame;
}

static void job_done(void *arg, size_t frame, int err, const struct image_buf *img,
		     const char *why)
{
	struct job *j = arg;
	struct source *src = j->src;
	struct wake w = {0};
	bool decoded = err == 0;

	if (decoded) {
		err = store_frame(src, frame, img);
	} else if (err != -ECANCELED) {
		hf_log(HF_LOG_ERROR, "%s: frame %zu: %s", src->path, frame + 1, why);
	}
	pthread_mutex_lock(&src->lock);
	if (frame == j->first)
		job_not_urgent_locked(j);
	if (err == -ECANCELED) {
		release_locked(src, frame, &w); /* not produced; nothing is wrong with it */
	} else if (decoded && err == 0) {
		src->store_error[0] = 0;
		mark_done_locked(src, frame, img->len, &w);
	} else if (decoded) {
		store_failed_locked(j, frame, err, &w);
	} else {
		if (src->damage[0] == 0)
			snprintf(src->damage, sizeof(src->damage), "source frame %zu: %s", frame + 1,
				 why && *why ? why : strerror(-err));
		mark_failed_locked(src, frame, &w);
	}
	pthread_mutex_unlock(&src->lock);
	run_wake(src, &w);
}

static void job_damaged(void *arg, size_t frame, int err, const char *why)
{
	struct job *j = arg;
	struct source *src = j->src;
	struct wake w = {0};

	hf_log(HF_LOG_ERROR, "%s: %s", src->path, why);
	pthread_mutex_lock(&src->lock);
	job_not_urgent_locked(j);
	if (frame < src->damaged_at) {
		src->damaged_at = frame;
		snprintf(src->damage, sizeof(src->damage), "%s", why);
	}
	for (size_t i = frame; i < src->idx->n; i++)
		if (src->fs[i].state == F_CLAIMED)
			mark_failed_locked(src, i, &w);
	pthread_mutex_unlock(&src->lock);
	run_wake(src, &w);
}

/* ---- leases: one decode per source between processes ---- */

static void lease_key(const struct source *src, struct hf_key *k)
{
	char name[512];
	snprintf(name, sizeof(name), "%s\n%s", src->identity, src->fmt);
	key_string("lease", name, k);
}

/* Takes this process's share of the source's lease: 1 held, 0 held elsewhere, <0 error. */
static int lease_take(struct source *src)
{
	struct hf_key k;
	int fd, ret = 1;

	pthread_mutex_lock(&src->lock);
	if (src->lease_refs > 0) {
		src->lease_refs++;
		pthread_mutex_unlock(&src->lock);
		return 1;
	}
	lease_key(src, &k);
	/* the window's packets: disjoint windows of one video are decoded at once */
	fd = src->idx ? store_lease_try_range(src->e->store, &k, src->idx->pts[0],
					      src->idx->pts[src->idx->n - 1])
		      : store_lease_try(src->e->store, &k);
	if (fd >= 0) {
		src->lease_fd = fd;
		src->lease_refs = 1;
	} else {
		ret = fd == -EWOULDBLOCK ? 0 : fd;
	}
	pthread_mutex_unlock(&src->lock);
	return ret;
}

static void lease_drop(struct source *src)
{
	pthread_mutex_lock(&src->lock);
	if (src->lease_refs > 0 && --src->lease_refs == 0)
		store_lease_release(&src->lease_fd);
	pthread_mutex_unlock(&src->lock);
}

/*
 * Marks done the frames this job claimed that are in the store already (another process
 * made them), watching the directories of the rest. Returns how many are left and the
 * first of them in *first.
 */
static size_t adopt_stored_claims(struct job *j, struct store_watch *w, size_t *first)
{
	struct source *src = j->src;
	struct engine *e = src->e;
	size_t left = 0, n = 0, cap = 0, *v = NULL;
	struct wake wk = {0};

	pthread_mutex_lock(&src->lock);
	for (size_t i = j->first; i <= j->last && i < src->idx->n; i++) {
		if (src->fs[i].state != F_CLAIMED || src->fs[i].owner != j)
			continue;
		if (n == cap) {
			size_t *nv = realloc(v, (cap = cap ? cap * 2 : 256) * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		v[n++] = i;
	}
	pthread_mutex_unlock(&src->lock);
	*first = SIZE_MAX;
	for (size_t x = 0; x < n; x++) {
		struct hf_key k;
		uint64_t size;
		image_key(src, v[x], &k);
		if (store_image_complete(e->store, &k, image_ext(src->opts.format), &size) == 0) {
			pthread_mutex_lock(&src->lock);
			if (src->fs[v[x]].state == F_CLAIMED && src->fs[v[x]].owner == j) {
				mark_done_locked(src, v[x], size, &wk);
				atomic_fetch_add(&e->adopted, 1);
			}
			pthread_mutex_unlock(&src->lock);
		} else {
			store_watch_add(w, &k);
			if (*first == SIZE_MAX)
				*first = v[x];
			left++;
		}
	}
	free(v);
	run_wake(src, &wk);
	return left;
}

/*
 * Holds the job until this process may decode the source: at once when no other process
 * decodes it; otherwise it adopts that process's images as they land, and takes over
 * when the other is done or has died (its lease is released with its fd). Returns true
 * when frames are left for this job to decode, holding a lease share.
 */
static bool wait_for_lease(struct job *j, size_t *first)
{
	struct source *src = j->src;
	struct engine *e = src->e;
	struct store_watch *w = NULL;
	size_t left;
	int got = lease_take(src);

	*first = j->first;
	if (got != 0)
		return true; /* held, or a store without working locks: decode anyway */
	w = store_watch_new(e->store);
	for (;;) {
		left = adopt_stored_claims(j, w, first);
		if (left == 0 || atomic_load(&e->stopping))
			break;
		got = lease_take(src);
		if (got != 0) {
			/* frames stored between the last look and the lease */
			left = adopt_stored_claims(j, w, first);
			if (left == 0 && got > 0)
				lease_drop(src);
			break;
		}
		store_watch_wait(w, 250);
	}
	store_watch_free(&w);
	return left > 0 && got != 0;
}

static void *job_main(void *arg)
{
	struct job *j = arg;
	struct source *src = j->src;
	struct engine *e = src->e;
	struct extract_job xj = {
		.fd = -1, /* below */
		.idx = src->idx,
		.opts = src->opts,
		.first = j->first,
		.visit = job_visit,
		.done = job_done,
		.damaged = job_damaged,
		.arg = j,
		.stats = &e->xs,
		.cancel = &e->stopping,
	};
	struct wake w = {0};
	struct stat file;
	char *path;
	bool failed;
	size_t first;

	pthread_mutex_lock(&src->lock);
	path = strdup(src->open_path);
	file = src->file;
	pthread_mutex_unlock(&src->lock);
	/* -1 when it changed or went: the run then reports the source as not openable */
	xj.fd = path ? source_file_open(path, &file) : -ENOMEM;
	free(path);
	if (wait_for_lease(j, &first)) {
		xj.first = first;
		extract_run(&xj);
		lease_drop(src);
	}
	if (xj.fd >= 0)
		close(xj.fd);

	pthread_mutex_lock(&src->lock);
	/* Frames it still owns were never decoded: they cannot be produced. */
	for (size_t i = j->first; i <= j->last && i < src->idx->n; i++)
		if (src->fs[i].state == F_CLAIMED && src->fs[i].owner == j) {
			if (src->damaged_at == SIZE_MAX) {
				src->damaged_at = i;
				snprintf(src->damage, sizeof(src->damage),
					 "source frame %zu was not produced by the decoder", i + 1);
			}
			mark_failed_locked(src, i, &w);
		}
	failed = src->damaged_at != SIZE_MAX;
	job_not_urgent_locked(j);
	for (struct job **pp = &src->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	pthread_mutex_unlock(&src->lock);
	run_wake(src, &w);
	atomic_fetch_add(failed ? &e->extractions_failed : &e->extractions_completed, 1);
	free(j);

	pthread_mutex_lock(&e->lock);
	e->running_jobs--;
	src->users--; /* the last use of src here */
	pthread_cond_broadcast(&e->jobs_done);
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

/* Creates a job covering [first, last]; frames are claimed by the caller. Under src->lock. */
static struct job *job_new_locked(struct source *src, size_t first, size_t last)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->src = src;
	j->first = first;
	j->last = last;
	atomic_store(&j->pos, -1);
	j->next = src->jobs;
	src->jobs = j;
	return j;
}

static void job_start(struct job *j)
{
	struct engine *e = j->src->e;
	pthread_attr_t attr;

	pthread_mutex_lock(&e->lock);
	e->running_jobs++;
	j->src->users++; /* the job's thread uses the source to its very end */
	pthread_mutex_unlock(&e->lock);
	atomic_fetch_add(&e->extractions_started, 1);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&j->thread, &attr, job_main, j) != 0) {
		hf_log(HF_LOG_ERROR, "cannot start a decode thread");
		job_damaged(j, j->first, -EAGAIN, "no thread could be started to decode");
		pthread_mutex_lock(&j->src->lock);
		for (struct job **pp = &j->src->jobs; *pp; pp = &(*pp)->next)
			if (*pp == j) {
				*pp = j->next;
				break;
			}
		pthread_mutex_unlock(&j->src->lock);
		pthread_mutex_lock(&e->lock);
		e->running_jobs--;
		j->src->users--;
		pthread_cond_broadcast(&e->jobs_done);
		pthread_mutex_unlock(&e->lock);
		free(j);
	}
	pthread_attr_destroy(&attr);
}

/*
 * A frame claimed by a job that is far behind it gets a job of its own, starting at the
 * keyframe before it; the old job's claims from there on move to the new one.
 */
static struct job *split_far_locked(struct source *src, size_t frame)
{
	struct job *old = src->fs[frame].owner, *j;
	size_t kf = source_index_keyframe_before(src->idx, frame);
	int64_t pos = atomic_load(&old->pos);
	size_t from = pos < 0 ? old->first : (size_t)pos;

	if (kf <= from || frame - from < FAR_AHEAD_FRAMES)
		return NULL;
	/*
	 * The new job decodes from kf but encodes from `frame` on, so the frame asked for is
	 * its first image; the frames between kf and it stay with the old job.
	 */
	j = job_new_locked(src, frame, old->last);
	if (!j)
		return NULL;
	for (size_t i = frame; i <= old->last; i++)
		if (src->fs[i].state == F_CLAIMED && src->fs[i].owner == old)
			src->fs[i].owner = j;
	old->last = frame - 1;
	j->urgent = true;
	src->urgent_jobs++;
	return j;
}

/* ---- segments ---- */

static void seg_free(struct segment *s)
{
	if (s->src)
		source_put(s->e, s->src);
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
	bool stale = source_identity(s->e, s->path, NULL, &identity) < 0 ||
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

static void fmt_seconds_ms(int64_t ms, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRId64 ".%03" PRId64, ms / 1000, ms % 1000);
}

/* Milliseconds from the start of the video to a tick value, for messages. */
static int64_t av_ms(const struct source_index *idx, int64_t ticks)
{
	__int128 v = (__int128)(ticks - idx->origin) * idx->tb.num * 1000 / idx->tb.den;
	return (int64_t)v;
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
	s->width = src->idx->width;
	s->height = src->idx->height;
	if (s->sn.format == SEG_JPG && (src->idx->alpha || src->idx->depth > 8)) {
		seg_error(s, "jpg cannot hold %s of %s; use png",
			  src->idx->alpha ? "the alpha channel" : "the more-than-8-bit samples",
			  source_name(s->path));
		return 0;
	}
	fr = source_index_frames(src->idx);
	n = slots_count(&fr, s->sn.start, s->sn.dur, s->sn.fps);
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

int engine_segment(struct engine *e, const char *path, const struct stat *file,
		   const struct segname *sn, struct segment **out)
{
	struct image_opts opts = opts_for(e, sn);
	char fmt[96], canon[256], name[1024];
	char *identity = NULL, *vals;
	struct hf_key key;
	struct segment *s;
	struct manifest *man = NULL;
	int ret;

	*out = NULL;
	ret = source_identity(e, path, file, &identity);
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
	s = seg_find_locked(e, &key, path);
	if (s) {
		s->refs++;
		s->file = *file;
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
		seg_free(s);
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
		struct segment *other = seg_find_locked(e, &key, path);
		if (other) {
			other->refs++;
			other->file = *file;
			pthread_mutex_unlock(&e->lock);
			seg_free(s);
			*out = other;
			return 0;
		}
	}
	grow_segments(e);
	{
		size_t b = seg_bucket(e, &key);
		s->next = e->segments[b];
		e->segments[b] = s;
	}
	e->nsegments++;
	s->refs++; /* the table's */
	pthread_mutex_unlock(&e->lock);
	atomic_fetch_add(&e->segments_known, 1);
	*out = s;
	return 0;
}

int segment_prepare(struct segment *s)
{
	struct engine *e = s->e;
	struct image_opts opts = opts_for(e, &s->sn);
	struct source *src;
	struct stat file;
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

	src = source_get(e, s->path, &file, s->identity, &opts, &s->sn);
	if (src) {
		pthread_mutex_lock(&e->lock);
		s->src = src; /* under the engine lock: the sweep reads it there */
		pthread_mutex_unlock(&e->lock);
		ret = seg_fill_cold(s);
		if (ret < 0)
			seg_error(s, "the numbers of %s are out of range for the time base of %s",
				  s->name, source_name(s->path));
	} else {
		seg_error(s, "out of memory indexing %s", source_name(s->path));
	}
	pthread_mutex_lock(&e->lock);
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
	struct image_opts opts = opts_for(e, &s->sn);
	struct source *src;
	struct stat file;
	int ret = 0;

	pthread_mutex_lock(&e->lock);
	file = s->file;
	pthread_mutex_unlock(&e->lock);
	src = source_get(e, s->path, &file, s->identity, &opts, &s->sn);
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
			mark_failed_locked(src, f, w);
			continue;
		}
		if (!j) {
			j = job_new_locked(src, f, f);
			if (!j) {
				mark_failed_locked(src, f, w);
				continue;
			}
			*start = j;
		}
		fs->state = F_CLAIMED;
		fs->owner = j;
		j->last = f;
	}
	if (s->remaining == 0)
		seg_finished_locked(s, w);
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
		image_key(src, f, &k);
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
		image_key(src, f, &m->image[i]);
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
	started = s->started; /* a segment can start again (release_locked) */
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
			mark_failed_locked(src, f, &w);
			pthread_mutex_unlock(&src->lock);
			free(wt);
			fn(arg, -EIO, 0);
			goto out_start;
		}
		/* not eager, or a frame outside what was claimed: a job of its own */
		start = start ? start : job_new_locked(src, f, f);
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
		far = split_far_locked(src, f);
		break;
	}
	if (!wt) {
		pthread_mutex_unlock(&src->lock);
		fn(arg, -ENOMEM, 0);
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
		job_start(start);
	if (far)
		job_start(far);
	run_wake(src, &w);
}

int segment_frame_open(struct segment *s, int64_t slot)
{
	struct hf_key k;
	uint64_t size;
	size_t f = 0;

	if (slot < 0 || slot >= s->count)
		return -ENOENT;
	if (s->man && !s->src) {
		size_t i = manifest_image_of(s->man, slot);
		return store_image_open(s->e->store, &s->man->image[i], s->ext, s->man->size[i]);
	}
	if (!s->src || !s->src->idx || slot_frame(s, slot, &f) < 0)
		return -EIO;
	image_key(s->src, f, &k);
	pthread_mutex_lock(&s->src->lock);
	size = s->src->fs[f].state == F_DONE ? s->src->fs[f].size : 0;
	pthread_mutex_unlock(&s->src->lock);
	return store_image_open(s->e->store, &k, s->ext, size);
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
		image_key(src, done[i], &k);
		if (store_image_size(s->e->store, &k, s->ext, &size) < 0)
			done[lost++] = done[i];
	}
	pthread_mutex_lock(&src->lock);
	for (size_t i = 0; i < lost; i++)
		if (src->fs[done[i]].state == F_DONE)
			release_locked(src, done[i], &w);
	pthread_mutex_unlock(&src->lock);
	run_wake(src, &w);
	if (lost)
		hf_log(HF_LOG_INFO, "%s: %zu stored images are gone (evicted); they will be extracted again",
		       s->name, lost);
	free(done);
}

static void write_manifest(struct segment *s)
{
	uint64_t ms = (s->t_done_ns - s->t_start_ns) / 1000000;

	seg_store_manifest(s, true);
	hf_log(HF_LOG_INFO, "extracted %s (%s): %" PRId64 " frames in %" PRIu64 " ms, %" PRIu64
	       " distinct images already stored", s->name, s->path, s->count, ms, s->hits);
}

/* ---- eviction ---- */

/* What this process knows of a unit: its own readers and extractions, its own touches. */
static enum gc_keep gc_keep_unit(void *arg, const struct gc_unit *u)
{
	struct engine *e = arg;
	enum gc_keep keep = GC_ASK_WINDOW;
	struct segment *s;
	int64_t ours;

	if (u->kind != GC_SEGMENT && u->kind != GC_PARTIAL)
		return GC_ASK_WINDOW;
	pthread_mutex_lock(&e->lock);
	s = seg_find_locked(e, &u->key, NULL);
	if (s) {
		bool extracting = false;
		if (s->src) {
			pthread_mutex_lock(&s->src->lock);
			extracting = s->state == SEG_EXTRACTING;
			pthread_mutex_unlock(&s->src->lock);
		}
		ours = atomic_load(&s->touched_real_ns);
		if (extracting || now_ns() - atomic_load(&s->used_ns) < (uint64_t)READING_NS)
			keep = GC_KEEP;
		else if (ours && llabs(u->last_use_ns - ours) < 10000000)
			keep = GC_MAY_GO; /* the last use was ours, and it is over */
	}
	pthread_mutex_unlock(&e->lock);
	return keep;
}

/* The images of segments being extracted here are never removed. */
static void gc_pins(void *arg, void (*add)(void *set, const struct hf_key *k), void *set)
{
	struct engine *e = arg;

	pthread_mutex_lock(&e->lock);
	FOR_EACH_SEGMENT(e, s) {
		struct source *src = s->src;
		if (!src || !src->idx)
			continue;
		pthread_mutex_lock(&src->lock);
		if (s->state == SEG_EXTRACTING)
			for (size_t i = 0; i < s->nneeded; i++) {
				struct hf_key k;
				image_key(src, s->needed[i], &k);
				add(set, &k);
			}
		pthread_mutex_unlock(&src->lock);
	}
	pthread_mutex_unlock(&e->lock);
}

static void gc_removed(void *arg, const struct gc_unit *u, uint64_t images, uint64_t bytes)
{
	struct engine *e = arg;
	char size[32];

	atomic_fetch_add(&e->evictions, 1);
	atomic_fetch_add(&e->evicted_images, images);
	atomic_fetch_add(&e->evicted_bytes, bytes);
	snprintf(size, sizeof(size), "%.1f MiB", (double)bytes / 1048576.0);
	if (u->m)
		hf_log(HF_LOG_INFO, "evicted %s (%s): %" PRIu64 " images, %s", u->m->segment,
		       u->m->source, images, size);
	else
		hf_log(HF_LOG_DEBUG, "evicted %s: %s", u->path, size);
}

/* One eviction pass, when the store is over a bound or want_free bytes are needed. */
static void engine_evict(struct engine *e, uint64_t want_free)
{
	struct gc_opts o = {
		.max_size = e->conf.max_size,
		.min_free = e->conf.min_free,
		.want_free = want_free,
		.in_use_ns = GC_IN_USE_S * NS, /* units another process used this recently stay */
		.keep = gc_keep_unit,
		.pins = gc_pins,
		.removed = gc_removed,
		.arg = e,
		.cancel = &e->stopping,
	};
	struct gc_result r;
	uint64_t images, bytes;
	int ret;

	store_usage(e->store, &images, &bytes);
	if (!want_free && !(o.max_size && bytes > o.max_size) &&
	    !(o.min_free && store_free_bytes(e->store) < o.min_free)) {
		atomic_store(&e->over_bound, false);
		return;
	}
	pthread_mutex_lock(&e->gc_lock);
	ret = store_gc(e->store, &o, &r);
	pthread_mutex_unlock(&e->gc_lock);
	if (ret == -ECANCELED)
		return; /* the mount is going away */
	if (ret < 0) {
		hf_log(HF_LOG_ERROR, "cannot read the store %s to evict: %s", store_dir(e->store),
		       strerror(-ret));
		return;
	}
	atomic_store(&e->kept_in_use, r.kept_in_use);
	if (r.over && !r.within && !atomic_exchange(&e->over_bound, true))
		hf_log(HF_LOG_WARN,
		       "store %s stays over its bounds (%" PRIu64 " bytes, %" PRIu64
		       " free): what is left is in use",
		       store_dir(e->store), r.bytes_after, r.free_after);
	else if (r.within)
		atomic_store(&e->over_bound, false);
}

static void evictor_ask(struct engine *e)
{
	pthread_mutex_lock(&e->evict_lock);
	e->evict_asked = true;
	pthread_cond_signal(&e->evict_cond);
	pthread_mutex_unlock(&e->evict_lock);
}

/* ---- releasing what nobody uses ---- */

/*
 * A segment nobody uses: the table holds the only reference, or the table and its
 * source's list of tracked segments once its extraction is over (no open file or kernel
 * reference, no reader, no extraction). Under the engine lock, so no new reference can
 * be taken meanwhile (every other one comes from a holder, or from the table under this
 * lock); takes its source's lock.
 */
static bool seg_idle_locked(struct segment *s)
{
	int refs = atomic_load(&s->refs);
	struct source *src;
	bool idle;

	if (refs > 2)
		return false;
	src = s->src; /* written under the engine lock */
	if (!src)
		return refs == 1;
	pthread_mutex_lock(&src->lock);
	idle = refs == 1 + (int)s->on_src_list && s->state != SEG_EXTRACTING;
	if (idle && s->on_src_list) {
		for (struct segment **pp = &src->segs; *pp; pp = &(*pp)->src_next)
			if (*pp == s) {
				*pp = s->src_next;
				break;
			}
		s->on_src_list = false;
	}
	pthread_mutex_unlock(&src->lock);
	return idle;
}

/* A source no segment and no job uses, with nobody waiting and no lease held. */
static bool src_idle_locked(struct source *src)
{
	bool idle;
	if (src->users > 0 || !src->ready)
		return false;
	pthread_mutex_lock(&src->lock);
	idle = !src->jobs && !src->waiters && !src->segs && src->lease_refs == 0;
	pthread_mutex_unlock(&src->lock);
	return idle;
}

/*
 * Frees the segments and sources nobody uses, so a daemon that served a million segments
 * is as small as a new one. What is stored stays: a segment looked up again is served
 * from its manifest, a source indexed again from its stored index.
 */
static void engine_sweep(struct engine *e)
{
	struct segment *dead = NULL;
	struct source *gone = NULL;

	pthread_mutex_lock(&e->lock);
	for (size_t b = 0; b < e->segments_cap; b++)
		for (struct segment **pp = &e->segments[b]; *pp;) {
			struct segment *s = *pp;
			if (!seg_idle_locked(s)) {
				pp = &s->next;
				continue;
			}
			*pp = s->next;
			s->next = dead;
			dead = s;
			e->nsegments--;
		}
	pthread_mutex_unlock(&e->lock);
	while (dead) {
		struct segment *s = dead;
		dead = s->next;
		seg_free(s); /* drops its use of the source */
		atomic_fetch_add(&e->segments_freed, 1);
	}
	pthread_mutex_lock(&e->lock);
	for (size_t b = 0; b < e->sources_cap; b++)
		for (struct source **pp = &e->sources[b]; *pp;) {
			struct source *src = *pp;
			if (!src_idle_locked(src)) {
				pp = &src->next;
				continue;
			}
			*pp = src->next;
			src->next = gone;
			gone = src;
			e->nsources--;
		}
	pthread_mutex_unlock(&e->lock);
	while (gone) {
		struct source *src = gone;
		gone = src->next;
		source_free(src);
		atomic_fetch_add(&e->sources_freed, 1);
	}
}

/* Checks the bounds every EVICT_CHECK_NS (other processes write too) and when asked. */
static void *evictor_main(void *arg)
{
	struct engine *e = arg;

	pthread_mutex_lock(&e->evict_lock);
	while (!atomic_load(&e->stopping)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += EVICT_CHECK_NS / NS;
		while (!e->evict_asked && !atomic_load(&e->stopping))
			if (pthread_cond_timedwait(&e->evict_cond, &e->evict_lock, &ts) == ETIMEDOUT)
				break;
		e->evict_asked = false;
		if (atomic_load(&e->stopping))
			break;
		pthread_mutex_unlock(&e->evict_lock);
		engine_evict(e, 0);
		engine_sweep(e);
		pthread_mutex_lock(&e->evict_lock);
	}
	pthread_mutex_unlock(&e->evict_lock);
	return NULL;
}

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
	fprintf(f, ",\n  \"from_store\": %s", s->man && !s->src ? "true" : "false");
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
	uint64_t images, bytes;
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
#define MS(x) ((double)atomic_load(&(x)) / 1e6)
	fprintf(f,
		"{\n  \"version\": \"%s\",\n  \"uptime_s\": %.3f,\n  \"segments_active\": %d,\n"
		"  \"segments_known\": %" PRIu64 ",\n  \"extractions_started\": %" PRIu64
		",\n  \"extractions_completed\": %" PRIu64 ",\n  \"extractions_failed\": %" PRIu64
		",\n  \"frames_served\": %" PRIu64 ",\n  \"images_encoded\": %" PRIu64
		",\n  \"frames_decoded\": %" PRIu64 ",\n  \"cache_hits\": %" PRIu64
		",\n  \"cache_misses\": %" PRIu64 ",\n  \"joined\": %" PRIu64
		",\n  \"store_images\": %" PRIu64 ",\n  \"store_bytes\": %" PRIu64
		",\n  \"store_errors\": %" PRIu64 ",\n  \"adopted_from_other_processes\": %" PRIu64,
		HF_VERSION, (double)(now_ns() - e->t0_ns) / 1e9, active,
		atomic_load(&e->segments_known), atomic_load(&e->extractions_started),
		atomic_load(&e->extractions_completed), atomic_load(&e->extractions_failed),
		atomic_load(&e->frames_served), atomic_load(&e->images_encoded),
		atomic_load(&e->xs.frames_decoded), atomic_load(&e->cache_hits),
		atomic_load(&e->cache_misses), atomic_load(&e->joined), images, bytes,
		atomic_load(&e->store_errors), atomic_load(&e->adopted));
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
		"\"decode\": %.1f, \"convert\": %.1f, \"encode\": %.1f, \"write\": %.1f}\n}\n",
		MS(e->index_ns), MS(e->xs.open_ns), MS(e->xs.seek_ns), MS(e->xs.decode_ns),
		MS(e->xs.convert_ns), MS(e->xs.encode_ns), MS(e->write_ns));
#undef MS
	return fclose(f) == 0 ? 0 : -ENOMEM;
}

void engine_count_served(struct engine *e)
{
	atomic_fetch_add(&e->frames_served, 1);
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

	if (source_identity(e, src, NULL, &identity) < 0)
		return;
	pthread_mutex_lock(&e->lock);
	FOR_EACH_SEGMENT(e, s) {
		bool started = false;
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

/* ---- life cycle ---- */

int engine_new(const struct hf_conf *conf, struct store *store, struct engine **out)
{
	struct engine *e = calloc(1, sizeof(*e));
	int ret;

	if (!e)
		return -ENOMEM;
	e->conf = *conf;
	e->store = store;
	e->t0_ns = now_ns();
	e->segments_cap = e->sources_cap = 256;
	if (getenv("HF_TEST_INDEX_DELAY_MS"))
		e->test_index_delay_ms = atoi(getenv("HF_TEST_INDEX_DELAY_MS"));
	e->segments = calloc(e->segments_cap, sizeof(*e->segments));
	e->sources = calloc(e->sources_cap, sizeof(*e->sources));
	if (!e->segments || !e->sources) {
		free(e->segments);
		free(e->sources);
		free(e);
		return -ENOMEM;
	}
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->built, NULL);
	pthread_cond_init(&e->jobs_done, NULL);
	pthread_mutex_init(&e->evict_lock, NULL);
	pthread_mutex_init(&e->gc_lock, NULL);
	pthread_mutex_init(&e->known_lock, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&e->evict_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	extract_set_verbose(conf->log_level >= HF_LOG_DEBUG);
	extract_set_memory(conf->memory);
	ret = extract_pool_start(conf->threads);
	if (ret < 0) {
		free(e->segments);
		free(e->sources);
		free(e);
		return ret;
	}
	if (conf->min_free) {
		uint64_t free_bytes = store_free_bytes(store);
		if (free_bytes != UINT64_MAX && free_bytes < conf->min_free)
			hf_log(HF_LOG_WARN,
			       "the disk of store %s has %" PRIu64 " MiB free, below min_free (%" PRIu64
			       " MiB): the store will be kept as empty as it can be (every segment not in use is evicted) until the disk has room; free space or lower min_free",
			       store_dir(store), free_bytes >> 20, conf->min_free >> 20);
	}
	e->evictor_running = pthread_create(&e->evictor, NULL, evictor_main, e) == 0;
	if (!e->evictor_running)
		hf_log(HF_LOG_WARN, "no eviction thread: the store is bounded only on a full disk");
	*out = e;
	return 0;
}

void engine_stop(struct engine *e)
{
	if (!e || e->stopped)
		return;
	e->stopped = true;
	/* Ask every job to stop at its next frame, then wait for them. */
	atomic_store(&e->stopping, true);
	if (e->evictor_running) {
		evictor_ask(e);
		pthread_join(e->evictor, NULL);
	}
	pthread_mutex_lock(&e->lock);
	FOR_EACH_SOURCE(e, src) {
		pthread_mutex_lock(&src->lock);
		for (struct job *j = src->jobs; j; j = j->next)
			j->last = 0;
		pthread_cond_broadcast(&src->unpaused);
		pthread_mutex_unlock(&src->lock);
	}
	while (e->running_jobs > 0)
		pthread_cond_wait(&e->jobs_done, &e->lock);
	pthread_mutex_unlock(&e->lock);
	extract_pool_stop();
	/* Nothing runs any more: whoever still waits for a frame is told it failed. */
	FOR_EACH_SOURCE(e, src) {
		for (;;) {
			struct waiter *w;
			pthread_mutex_lock(&src->lock);
			w = src->waiters;
			if (w)
				src->waiters = w->next;
			pthread_mutex_unlock(&src->lock);
			if (!w)
				break;
			w->fn(w->arg, -EIO, 0);
			free(w);
		}
	}
}

void engine_free(struct engine **pe)
{
	struct engine *e = pe ? *pe : NULL;
	if (!e)
		return;
	engine_stop(e);
	for (size_t b = 0; b < e->segments_cap; b++)
		while (e->segments[b]) {
			struct segment *s = e->segments[b];
			e->segments[b] = s->next;
			seg_free(s);
		}
	for (size_t b = 0; b < e->sources_cap; b++)
		while (e->sources[b]) {
			struct source *src = e->sources[b];
			e->sources[b] = src->next;
			source_free(src);
		}
	free(e->segments);
	free(e->sources);
	while (e->content_ids) {
		struct content_id *c = e->content_ids;
		e->content_ids = c->next;
		free(c);
	}
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->built);
	pthread_cond_destroy(&e->jobs_done);
	pthread_mutex_destroy(&e->evict_lock);
	pthread_mutex_destroy(&e->gc_lock);
	pthread_mutex_destroy(&e->known_lock);
	pthread_cond_destroy(&e->evict_cond);
	free(e);
	*pe = NULL;
}
