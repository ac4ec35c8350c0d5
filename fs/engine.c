/*
 * engine: life cycle (engine_new, engine_stop, engine_free), the evictor thread that
 * keeps the store within max_size and min_free, the hooks through which the store's
 * eviction learns what this process uses, and the sweep that frees the segments and
 * sources nobody uses.
 *
 * Locking: evict_lock guards evict_asked; gc_lock makes one eviction pass at a time;
 * the hooks and the sweep take the engine lock, then a source's lock.
 */
#include "fs/engine_i.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/gc.h"
#include "fs/log.h"

/* A segment waited on this recently is being read: this process does not evict it. */
#define READING_NS (2 * NS)
/* How often the evictor looks at the store's bounds without being asked. */
#define EVICT_CHECK_NS (5 * NS)

/* ---- eviction ---- */

void eng_index_used_locked(struct engine *e, const struct hf_key *k)
{
	size_t n = sizeof(e->idx_used) / sizeof(e->idx_used[0]);

	for (size_t i = 0; i < n; i++)
		if (memcmp(&e->idx_used[i], k, sizeof(*k)) == 0)
			return;
	e->idx_used[e->idx_used_next++ % n] = *k;
}

/*
 * An index blob: kept while a source here (open, or being built) is of its identity;
 * one this process used last and no longer does may go (a touched video leaves its old
 * identity's index behind); anyone else's is for the in-use window to judge.
 */
static enum gc_keep index_keep(struct engine *e, const struct gc_unit *u)
{
	size_t n = sizeof(e->idx_used) / sizeof(e->idx_used[0]);
	enum gc_keep keep = GC_ASK_WINDOW;

	pthread_mutex_lock(&e->lock);
	for (size_t b = 0; b < e->sources_cap && keep != GC_KEEP; b++)
		for (struct source *src = e->sources[b]; src; src = src->next)
			if (memcmp(&src->known_key, &u->key, sizeof(u->key)) == 0) {
				keep = GC_KEEP;
				break;
			}
	pthread_mutex_unlock(&e->lock);
	if (keep == GC_KEEP)
		return keep;
	pthread_mutex_lock(&e->known_lock);
	for (size_t i = 0; i < n; i++)
		if (memcmp(&e->idx_used[i], &u->key, sizeof(u->key)) == 0)
			keep = GC_MAY_GO;
	pthread_mutex_unlock(&e->known_lock);
	return keep;
}

/* What this process knows of a unit: its own readers and extractions, its own touches. */
static enum gc_keep gc_keep_unit(void *arg, const struct gc_unit *u)
{
	struct engine *e = arg;
	enum gc_keep keep = GC_ASK_WINDOW;
	struct segment *s;
	int64_t ours;

	if (u->kind == GC_INDEX)
		return index_keep(e, u);
	if (u->kind != GC_SEGMENT && u->kind != GC_PARTIAL)
		return GC_ASK_WINDOW;
	pthread_mutex_lock(&e->lock);
	s = eng_seg_find_locked(e, &u->key, NULL);
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
				eng_image_key(src, s->needed[i], &k);
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
void eng_evict(struct engine *e, uint64_t want_free)
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

void eng_evictor_ask(struct engine *e)
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

/* A source no segment and no job uses (jobs hold the leases), with nobody waiting. */
static bool src_idle_locked(struct source *src)
{
	bool idle;
	if (src->users > 0 || !src->ready)
		return false;
	pthread_mutex_lock(&src->lock);
	idle = !src->jobs && !src->waiters && !src->segs;
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
	size_t freed = 0;

	pthread_mutex_lock(&e->lock);
	for (size_t b = 0; b < e->segments_cap; b++)
		for (struct segment **pp = &e->segments[b]; *pp;) {
			struct segment *s = *pp;
			if (!seg_idle_locked(s)) {
				pp = &s->next;
				continue;
			}
			*pp = s->next;
			eng_path_remove_locked(e, s);
			s->next = dead;
			dead = s;
			e->nsegments--;
		}
	pthread_mutex_unlock(&e->lock);
	while (dead) {
		struct segment *s = dead;
		dead = s->next;
		freed++;
		eng_seg_free(s); /* drops its use of the source */
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
		eng_source_free(src);
		atomic_fetch_add(&e->sources_freed, 1);
		freed++;
	}
	/*
	 * Thousands of small blocks freed leave the allocator's heaps holding the pages: give
	 * them back, so a daemon that served many segments is as small as a new one.
	 */
	if (freed >= 64)
		malloc_trim(0);
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
		eng_evict(e, 0);
		engine_sweep(e);
		pthread_mutex_lock(&e->evict_lock);
	}
	pthread_mutex_unlock(&e->evict_lock);
	return NULL;
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
	e->segments_cap = e->sources_cap = e->by_path_cap = 256;
	{
		/* decode jobs: two per core (each decodes with at most a thread per core) */
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		e->jobs_max = cores > 2 ? 2 * (int)(cores > 64 ? 64 : cores) : 4;
		e->jobs_hard_max = 2 * e->jobs_max;
	}
	if (getenv("HF_TEST_INDEX_DELAY_MS"))
		e->test_index_delay_ms = atoi(getenv("HF_TEST_INDEX_DELAY_MS"));
	e->segments = calloc(e->segments_cap, sizeof(*e->segments));
	e->sources = calloc(e->sources_cap, sizeof(*e->sources));
	e->by_path = calloc(e->by_path_cap, sizeof(*e->by_path));
	if (!e->segments || !e->sources || !e->by_path) {
		free(e->segments);
		free(e->sources);
		free(e->by_path);
		free(e);
		return -ENOMEM;
	}
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->built, NULL);
	pthread_cond_init(&e->jobs_done, NULL);
	pthread_cond_init(&e->index_cond, NULL);
	pthread_mutex_init(&e->evict_lock, NULL);
	pthread_mutex_init(&e->gc_lock, NULL);
	pthread_mutex_init(&e->known_lock, NULL);
	pthread_mutex_init(&e->lease_lock, NULL);
	pthread_mutex_init(&e->start_lock, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&e->evict_cond, &ca);
		pthread_cond_init(&e->start_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	extract_set_verbose(conf->log_level >= HF_LOG_DEBUG);
	extract_set_memory(conf->memory);
	extract_set_max_pixels(conf->max_pixels);
	source_set_max_pixels(conf->max_pixels);
	ret = extract_pool_start(conf->threads);
	if (ret < 0) {
		free(e->segments);
		free(e->sources);
		free(e->by_path);
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
		eng_evictor_ask(e);
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
	pthread_mutex_unlock(&e->lock);
	eng_jobs_drain(e); /* jobs never started give their frames back */
	pthread_mutex_lock(&e->lock);
	while (e->running_jobs > 0 || e->threads_alive > 0)
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
			eng_seg_free(s);
		}
	for (size_t b = 0; b < e->sources_cap; b++)
		while (e->sources[b]) {
			struct source *src = e->sources[b];
			e->sources[b] = src->next;
			eng_source_free(src);
		}
	free(e->segments);
	free(e->sources);
	free(e->by_path);
	while (e->index_users) {
		struct index_user *u = e->index_users;
		e->index_users = u->next;
		free(u);
	}
	while (e->queues) {
		struct uid_queue *q = e->queues;
		e->queues = q->next;
		free(q);
	}
	while (e->content_ids) {
		struct content_id *c = e->content_ids;
		e->content_ids = c->next;
		free(c);
	}
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->built);
	pthread_cond_destroy(&e->jobs_done);
	pthread_cond_destroy(&e->index_cond);
	pthread_mutex_destroy(&e->evict_lock);
	pthread_mutex_destroy(&e->gc_lock);
	pthread_mutex_destroy(&e->known_lock);
	pthread_mutex_destroy(&e->lease_lock);
	pthread_mutex_destroy(&e->start_lock);
	pthread_cond_destroy(&e->start_cond);
	pthread_cond_destroy(&e->evict_cond);
	free(e);
	*pe = NULL;
}
