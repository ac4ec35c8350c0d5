/*
 * engine jobs: frame states and the waiters they answer, decode jobs (a thread each,
 * feeding the encoder pool) that claim frames and store their images, and the store
 * lease that makes one process decode a source while the others adopt its images.
 *
 * Locking: src->lock guards the frame states, waiters, jobs, pauses, damage and lease
 * share; waiters are called and manifests written once it is dropped (eng_run_wake).
 * The engine lock is taken alone, to count running jobs and the source's users.
 */
#include "fs/engine_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/log.h"

/* A claimed frame at least this far ahead of a job's position gets its own job. */
#define FAR_AHEAD_FRAMES 48

/* ---- frame states ---- */

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

void eng_starting_enter(struct engine *e)
{
	pthread_mutex_lock(&e->start_lock);
	e->starting++;
	pthread_mutex_unlock(&e->start_lock);
}

void eng_starting_leave(struct engine *e)
{
	pthread_mutex_lock(&e->start_lock);
	if (--e->starting == 0)
		pthread_cond_broadcast(&e->start_cond);
	pthread_mutex_unlock(&e->start_lock);
}

/* The job is no longer decoding toward its first frame: the paused jobs go on. */
static void job_first_over(struct job *j)
{
	if (atomic_exchange(&j->starting, false))
		eng_starting_leave(j->src->e);
}

/* The first frame of its owner got an answer (done, failed or released). */
static void owner_first_answered(struct frame_state *f, size_t frame)
{
	if (f->owner && f->owner->first == frame)
		job_first_over(f->owner);
}

/* Takes the waiters of a frame whose state was just set; they get that state's answer. */
static void take_waiters_locked(struct source *src, size_t frame, struct wake *w)
{
	struct waiter **pp = &src->waiters;
	enum fstate st = src->fs[frame].state;
	while (*pp) {
		struct waiter *wt = *pp;
		if (wt->frame == frame) {
			/* a frame released unmade (F_NONE) is asked for again, not failed */
			wt->err = st == F_DONE ? 0 : st == F_NONE ? -EAGAIN : -EIO;
			wt->size = st == F_DONE ? src->fs[frame].size : 0;
			*pp = wt->next;
			wt->next = w->list;
			w->list = wt;
		} else {
			pp = &wt->next;
		}
	}
}

/* Every frame of the segment is done: complete (its manifest to write), or truncated. */
void eng_seg_finished_locked(struct segment *s, struct wake *w)
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
	owner_first_answered(f, frame);
	f->state = F_DONE;
	f->owner = NULL;
	f->size = size;
	take_waiters_locked(src, frame, w);
	for (struct segment *s = src->segs; s; s = s->src_next) {
		if (s->state != SEG_EXTRACTING || !seg_needs(s, frame))
			continue;
		if (--s->remaining == 0)
			eng_seg_finished_locked(s, w);
	}
}

void eng_mark_failed_locked(struct source *src, size_t frame, struct wake *w)
{
	struct frame_state *f = &src->fs[frame];
	if (f->state == F_DONE || f->state == F_FAILED)
		return;
	owner_first_answered(f, frame);
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
void eng_release_locked(struct source *src, size_t frame, struct wake *w)
{
	struct frame_state *f = &src->fs[frame];
	owner_first_answered(f, frame);
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

void eng_run_wake(struct source *src, struct wake *w)
{
	(void)src;
	while (w->list) {
		struct waiter *wt = w->list;
		w->list = wt->next;
		wt->fn(wt->arg, wt->err, wt->size);
		free(wt);
	}
	for (int i = 0; i < w->ncomplete; i++) {
		eng_write_manifest(w->complete[i]);
		segment_put(&w->complete[i]);
	}
	w->ncomplete = 0;
}

/* ---- jobs ---- */

static void job_not_urgent_locked(struct job *j)
{
	bool counted = j->urgent_counted;

	j->urgent = false;
	j->urgent_counted = false;
	if (counted && --j->src->urgent_jobs == 0)
		pthread_cond_broadcast(&j->src->unpaused);
}

static bool has_waiter_locked(const struct source *src, size_t frame)
{
	for (const struct waiter *w = src->waiters; w; w = w->next)
		if (w->frame == frame)
			return true;
	return false;
}

/* A job pauses while others decode toward their first frame, a second at most each time. */
#define START_PAUSE_NS 1000000000LL

static void pause_for_starting(struct engine *e)
{
	struct timespec until;

	pthread_mutex_lock(&e->start_lock);
	if (e->starting > 0) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += START_PAUSE_NS / NS;
		while (e->starting > 0 && !atomic_load(&e->stopping))
			if (pthread_cond_timedwait(&e->start_cond, &e->start_lock, &until) != 0)
				break;
	}
	pthread_mutex_unlock(&e->start_lock);
}

/*
 * Adopts a frame the job claims whose image is in the store already (another process
 * made it): 1 adopted, 0 stored but no longer the job's, -1 not stored (k is its key).
 * Takes src->lock; what it owes goes to w.
 */
static int adopt_stored(struct job *j, size_t frame, struct hf_key *k, struct wake *w)
{
	struct source *src = j->src;
	uint64_t size;
	int ret = 0;

	eng_image_key(src, frame, k);
	if (store_image_complete(src->e->store, k, image_ext(src->opts.format), &size) != 0)
		return -1;
	pthread_mutex_lock(&src->lock);
	if (src->fs[frame].state == F_CLAIMED && src->fs[frame].owner == j) {
		mark_done_locked(src, frame, size, w);
		if (!j->held_here) /* made by another process */
			atomic_fetch_add(&src->e->adopted, 1);
		ret = 1;
	}
	pthread_mutex_unlock(&src->lock);
	return ret;
}

/*
 * A frame about to be encoded whose image is in the store already (a lease holder that
 * died mid-run, whose images landed while this job checked the segment's, or a store
 * whose locks do not work) is adopted, not made again. A failed open is all it costs
 * when it is not there.
 */
static enum extract_visit adopt_if_stored(struct job *j, size_t frame, enum extract_visit v)
{
	struct wake w = {0};
	struct hf_key k;

	if (adopt_stored(j, frame, &k, &w) == 1)
		v = EXTRACT_SKIP;
	eng_run_wake(j->src, &w);
	return v;
}

static enum extract_visit job_visit(void *arg, size_t frame)
{
	struct job *j = arg;
	struct source *src = j->src;
	enum extract_visit v = EXTRACT_SKIP;

	atomic_store(&j->pos, (int64_t)frame);
	if (!atomic_load(&j->starting))
		pause_for_starting(src->e);
	pthread_mutex_lock(&src->lock);
	/*
	 * The cores go to a far-ahead reader's decode first, for a second at most in all: that
	 * decode may itself be waiting for this job (the lease of the range it takes over,
	 * which this job holds until it stops), and must never wait for it forever.
	 */
	if (src->urgent_jobs > 0 && !j->urgent && j->urgent_wait_ns < START_PAUSE_NS) {
		uint64_t t0 = now_ns(), left = START_PAUSE_NS - j->urgent_wait_ns;
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until); /* the condition's clock */
		until.tv_sec += (time_t)(left / NS);
		until.tv_nsec += (long)(left % NS);
		if (until.tv_nsec >= (long)NS) {
			until.tv_sec++;
			until.tv_nsec -= (long)NS;
		}
		while (src->urgent_jobs > 0 && !j->urgent && !atomic_load(&src->e->stopping))
			if (pthread_cond_timedwait(&src->unpaused, &src->lock, &until) != 0)
				break;
		j->urgent_wait_ns += now_ns() - t0;
	}
	if (frame > j->last)
		v = EXTRACT_STOP;
	else if (src->idx->pts[frame] >= j->stop_pts)
		v = EXTRACT_STOP, j->stopped_early = true; /* another job has the rest */
	else if (src->fs[frame].state == F_CLAIMED && src->fs[frame].owner == j)
		v = has_waiter_locked(src, frame) ? EXTRACT_ENCODE_NOW : EXTRACT_ENCODE;
	pthread_mutex_unlock(&src->lock);
	if (v == EXTRACT_ENCODE || v == EXTRACT_ENCODE_NOW)
		v = adopt_if_stored(j, frame, v);
	return v;
}

/* Stores a frame's image; a full store first evicts what it can, then tries once more. */
static int store_frame(struct source *src, size_t frame, const struct image_buf *img)
{
	struct engine *e = src->e;
	const char *ext = image_ext(src->opts.format);
	uint64_t t0 = now_ns(), images, bytes;
	struct hf_key k;
	int err;

	eng_image_key(src, frame, &k);
	err = store_image_put(e->store, &k, ext, img->data, img->len);
	if (err == -ENOSPC || err == -EDQUOT) {
		eng_evict(e, 2 * (uint64_t)img->len + (1u << 20));
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
		eng_evictor_ask(e);
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
				eng_release_locked(src, i, w);
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
	} else if (err == -EAGAIN) {
		hf_log(HF_LOG_WARN, "%s: frame %zu: %s", src->path, frame + 1, why);
	} else if (err != -ECANCELED) {
		hf_log(HF_LOG_ERROR, "%s: frame %zu: %s", src->path, frame + 1, why);
	}
	pthread_mutex_lock(&src->lock);
	if (frame == j->first)
		job_not_urgent_locked(j);
	if (!decoded && err == -ENOMEM)
		err = -EAGAIN; /* a failed allocation is nothing the source did */
	if (err == -ECANCELED || (!decoded && err == -EAGAIN)) {
		/* not produced, and nothing is wrong with the source: made again when asked */
		eng_release_locked(src, frame, &w);
	} else if (decoded && err == 0) {
		src->store_error[0] = 0;
		mark_done_locked(src, frame, img->len, &w);
	} else if (decoded) {
		store_failed_locked(j, frame, err, &w);
	} else {
		if (src->damage[0] == 0)
			snprintf(src->damage, sizeof(src->damage), "source frame %zu: %s", frame + 1,
				 why && *why ? why : strerror(-err));
		eng_mark_failed_locked(src, frame, &w);
	}
	pthread_mutex_unlock(&src->lock);
	eng_run_wake(src, &w);
}

static void job_damaged(void *arg, size_t frame, int err, const char *why)
{
	struct job *j = arg;
	struct source *src = j->src;
	struct wake w = {0};

	if (err == -ENOMEM || err == -EAGAIN) {
		/* memory or a thread: nothing is wrong with the source; made again when asked */
		hf_log(HF_LOG_WARN, "%s: %s; the frames are made again when asked", src->path, why);
		pthread_mutex_lock(&src->lock);
		job_not_urgent_locked(j);
		for (size_t i = frame; i < src->idx->n; i++)
			if (src->fs[i].state == F_CLAIMED && src->fs[i].owner == j)
				eng_release_locked(src, i, &w);
		pthread_mutex_unlock(&src->lock);
		eng_run_wake(src, &w);
		return;
	}
	hf_log(HF_LOG_ERROR, "%s: %s", src->path, why);
	pthread_mutex_lock(&src->lock);
	job_not_urgent_locked(j);
	if (frame < src->damaged_at) {
		src->damaged_at = frame;
		snprintf(src->damage, sizeof(src->damage), "%s", why);
	}
	for (size_t i = frame; i < src->idx->n; i++)
		if (src->fs[i].state == F_CLAIMED)
			eng_mark_failed_locked(src, i, &w);
	pthread_mutex_unlock(&src->lock);
	eng_run_wake(src, &w);
}

/* ---- leases: one decode per source range between jobs and processes ---- */

/* A job this far behind a new job's first frame hands it the rest of its range. */
#define YIELD_SECONDS_NUM 3
#define YIELD_SECONDS_DEN 2

static void lease_key(const struct source *src, struct hf_key *k)
{
	char name[512];
	snprintf(name, sizeof(name), "%s\n%s", src->identity, src->key_fmt);
	key_string("lease", name, k);
}

/* The first frame the job still claims, or SIZE_MAX. src->lock. */
static size_t first_claim_locked(const struct job *j)
{
	const struct source *src = j->src;
	for (size_t i = j->first; i <= j->last && i < src->idx->n; i++)
		if (src->fs[i].state == F_CLAIMED && src->fs[i].owner == j)
			return i;
	return SIZE_MAX;
}

/*
 * Whether job o (of its source, o->src->lock held) is far enough behind pts `lo` that a
 * new job starting there should decode from lo on rather than wait for o to get there.
 */
static bool lease_can_yield_locked(const struct job *o, int64_t lo)
{
	const struct source_index *idx = o->src->idx;
	int64_t pos = atomic_load(&o->pos), at;
	size_t f;

	if (o->lease_lo >= lo || o->stop_pts <= lo)
		return false;
	if (pos >= 0 && (size_t)pos < idx->n)
		at = idx->pts[pos];
	else if ((f = first_claim_locked(o)) != SIZE_MAX)
		at = idx->pts[f];
	else
		return false;
	/* lo - at >= 1.5 s, in the stream's ticks (seconds = ticks * num / den) */
	return (__int128)(lo - at) * idx->tb.num * YIELD_SECONDS_DEN >=
	       (__int128)YIELD_SECONDS_NUM * idx->tb.den;
}

/* Job o keeps [o->lease_lo, lo - 1] and stops decoding at lo. o->src->lock held. */
static void lease_yield_locked(struct job *o, int64_t lo, const struct hf_key *k)
{
	store_lease_release(&o->lease_fd);
	o->lease_fd = store_lease_try_range(o->src->e->store, k, o->lease_lo, lo - 1);
	if (o->lease_fd < 0)
		o->lease_fd = -1; /* it decodes on to lo unleased; nothing is lost */
	o->lease_hi = lo - 1;
	o->stop_pts = lo;
	hf_log(HF_LOG_DEBUG, "%s: a decode hands the frames from tick %" PRId64 " on to a new one",
	       o->src->path, lo);
}

/*
 * Takes the job's lease on the pts range of the frames it still claims: 1 held (maybe on
 * a first part of it, stop_pts set where another job's range starts), 0 held elsewhere
 * (its first frame is in another job's or process's range), <0 a store whose locks do
 * not work. Another job of this process that is far behind the first frame hands over
 * the rest of its range, so a clip's first frame does not wait for an overlapping clip's
 * decode to get there.
 */
static int lease_take(struct job *j)
{
	struct source *src = j->src;
	struct engine *e = src->e;
	int64_t lo, hi, c = INT64_MAX;
	bool blocked = false;
	struct hf_key k;
	size_t first;
	int fd;

	pthread_mutex_lock(&src->lock);
	first = first_claim_locked(j);
	if (first != SIZE_MAX) {
		lo = src->idx->pts[first];
		hi = src->idx->pts[j->last < src->idx->n ? j->last : src->idx->n - 1];
	}
	pthread_mutex_unlock(&src->lock);
	if (first == SIZE_MAX)
		return 0; /* nothing left to decode: the caller adopts and is done */
	lease_key(src, &k);

	pthread_mutex_lock(&e->lease_lock); /* one scan-and-take of this process at a time */
	pthread_mutex_lock(&e->lock);
	for (struct source *o = eng_source_chain_locked(e, src); o; o = o->next) {
		if (!o->ready || !o->idx || strcmp(o->identity, src->identity) != 0 ||
		    strcmp(o->key_fmt, src->key_fmt) != 0)
			continue;
		pthread_mutex_lock(&o->lock);
		for (struct job *oj = o->jobs; oj; oj = oj->next) {
			if (oj == j || oj->lease_fd < 0 || oj->lease_hi < lo || oj->lease_lo > hi)
				continue;
			if (lease_can_yield_locked(oj, lo)) {
				lease_yield_locked(oj, lo, &k);
				atomic_fetch_add(&e->handovers, 1);
			}
			else if (oj->lease_lo <= lo)
				blocked = true;
			else if (oj->lease_lo < c)
				c = oj->lease_lo;
		}
		pthread_mutex_unlock(&o->lock);
	}
	pthread_mutex_unlock(&e->lock);
	pthread_mutex_lock(&src->lock);
	j->held_here = blocked; /* what it adopts now comes from this process */
	pthread_mutex_unlock(&src->lock);
	if (blocked) {
		pthread_mutex_unlock(&e->lease_lock);
		return 0;
	}
	if (c <= hi) {
		hi = c - 1;
		atomic_fetch_add(&e->handovers, 1);
	}
	fd = store_lease_try_range(e->store, &k, lo, hi);
	pthread_mutex_lock(&src->lock);
	j->stop_pts = c; /* decode up to where another job's range starts */
	if (fd >= 0) {
		j->lease_fd = fd;
		j->lease_lo = lo;
		j->lease_hi = hi;
	}
	pthread_mutex_unlock(&src->lock);
	pthread_mutex_unlock(&e->lease_lock);
	if (fd >= 0)
		return 1;
	if (fd == -EWOULDBLOCK)
		return 0;
	/*
	 * The store retried it already. A lease that may be taken later (a network
	 * filesystem's stale handle, a create race, an interrupted lock) is treated as held
	 * elsewhere: the job adopts what lands and tries again. A store whose filesystem has
	 * no working locks is decoded anyway: said once per source (the store counts both).
	 */
	if (fd == -EOPNOTSUPP || fd == -ENOSYS || fd == -EINVAL) {
		pthread_mutex_lock(&src->lock);
		if (!src->lease_warned)
			hf_log(HF_LOG_WARN, "%s: no lease can be taken in %s (%s): decoding without one",
			       src->path, store_dir(e->store), strerror(-fd));
		src->lease_warned = true;
		pthread_mutex_unlock(&src->lock);
		return fd;
	}
	hf_log(HF_LOG_WARN, "%s: the lease in %s could not be taken (%s): waiting for it",
	       src->path, store_dir(e->store), strerror(-fd));
	return 0;
}

static void lease_drop(struct job *j)
{
	pthread_mutex_lock(&j->src->lock);
	store_lease_release(&j->lease_fd);
	pthread_mutex_unlock(&j->src->lock);
}

/*
 * Marks done the frames this job claimed that are in the store already (another process
 * made them), watching the directories of the rest. Returns how many are left and the
 * first of them in *first.
 */
static size_t adopt_stored_claims(struct job *j, struct store_watch *w, size_t *first)
{
	struct source *src = j->src;
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
		if (adopt_stored(j, v[x], &k, &wk) < 0) {
			store_watch_add(w, &k);
			if (*first == SIZE_MAX)
				*first = v[x];
			left++;
		}
	}
	free(v);
	eng_run_wake(src, &wk);
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
	int got = lease_take(j);

	pthread_mutex_lock(&src->lock);
	*first = first_claim_locked(j);
	pthread_mutex_unlock(&src->lock);
	if (*first == SIZE_MAX)
		return false;
	if (got != 0)
		return true; /* held, or a store without working locks: decode anyway */
	w = store_watch_new(e->store);
	for (;;) {
		left = adopt_stored_claims(j, w, first);
		if (left == 0 || atomic_load(&e->stopping))
			break;
		got = lease_take(j);
		if (got != 0) {
			/* frames stored between the last look and the lease */
			left = adopt_stored_claims(j, w, first);
			if (left == 0 && got > 0)
				lease_drop(j);
			break;
		}
		store_watch_wait(w, 250);
	}
	store_watch_free(&w);
	return left > 0 && got != 0;
}

/* ---- the bound on decode jobs, and the users' queues ---- */

/* The queue of uid (made when make; NULL when there is none, or no memory). Engine lock. */
static struct uid_queue *uid_queue_of_locked(struct engine *e, uid_t uid, bool make)
{
	struct uid_queue *q;

	for (q = e->queues; q; q = q->next)
		if (q->uid == uid)
			return q;
	if (!make || !(q = calloc(1, sizeof(*q))))
		return NULL;
	q->uid = uid;
	q->next = e->queues;
	e->queues = q;
	return q;
}

/* Whether a job of q's user may start a thread now. Engine lock. */
static bool may_start_locked(const struct engine *e, const struct uid_queue *q)
{
	return e->jobs_threads < e->jobs_max ||
	       (q->running == 0 && e->jobs_threads < e->jobs_hard_max);
}

static void job_end(struct job *j, bool unmade, bool ran);
static void *job_main(void *arg);

/* Makes the job's thread (its use of the source and its count were taken). No lock held. */
static void threads_alive_add(struct engine *e, int n)
{
	pthread_mutex_lock(&e->lock);
	e->threads_alive += n;
	pthread_cond_broadcast(&e->jobs_done);
	pthread_mutex_unlock(&e->lock);
}

static void job_thread(struct job *j)
{
	struct engine *e = j->src->e;
	pthread_attr_t attr;
	int ret;

	atomic_fetch_add(&e->extractions_started, 1);
	threads_alive_add(e, 1);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&j->thread, &attr, job_main, j);
	pthread_attr_destroy(&attr);
	if (ret != 0) {
		hf_log(HF_LOG_WARN, "%s: no thread could be started to decode (%s); the frames are made again when asked",
		       j->src->path, strerror(ret));
		job_end(j, true, true);
		threads_alive_add(e, -1);
	}
}

/*
 * Starts queued jobs while the bound allows: first the users with none running, then
 * round robin (the queue served goes to the end of the list). No lock held.
 */
static void jobs_next(struct engine *e)
{
	for (;;) {
		struct uid_queue *pick = NULL, **pp;
		struct job *j;

		pthread_mutex_lock(&e->lock);
		for (struct uid_queue *q = e->queues; q; q = q->next)
			if (q->head && may_start_locked(e, q) &&
			    (!pick || (q->running == 0 && pick->running > 0)))
				pick = q;
		if (!pick || atomic_load(&e->stopping)) {
			/* users with nothing queued and nothing running are forgotten */
			for (pp = &e->queues; *pp;) {
				struct uid_queue *q = *pp;
				if (!q->head && q->running == 0) {
					*pp = q->next;
					free(q);
				} else {
					pp = &q->next;
				}
			}
			pthread_mutex_unlock(&e->lock);
			return;
		}
		j = pick->head;
		pick->head = j->qnext;
		if (!pick->head)
			pick->tail = NULL;
		j->qnext = NULL;
		pick->running++;
		e->jobs_threads++;
		for (pp = &e->queues; *pp != pick; pp = &(*pp)->next)
			;
		*pp = pick->next; /* served: to the end of the round */
		pick->next = NULL;
		for (pp = &e->queues; *pp; pp = &(*pp)->next)
			;
		*pp = pick;
		pthread_mutex_unlock(&e->lock);
		job_thread(j);
	}
}

void eng_jobs_drain(struct engine *e)
{
	for (;;) {
		struct job *j = NULL;

		pthread_mutex_lock(&e->lock);
		for (struct uid_queue *q = e->queues; q && !j; q = q->next)
			if ((j = q->head)) {
				q->head = j->qnext;
				if (!q->head)
					q->tail = NULL;
			}
		pthread_mutex_unlock(&e->lock);
		if (!j)
			return;
		job_end(j, true, false);
	}
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
		.tf = src->tf,
		.assume_matrix = src->matrix_guessed ? src->matrix : 0,
		.first = j->first,
		.visit = job_visit,
		.done = job_done,
		.damaged = job_damaged,
		.arg = j,
		.stats = &e->xs,
		.cancel = &e->stopping,
	};
	struct stat file;
	char *path;
	size_t first;
	struct source_packets *packets;

	pthread_mutex_lock(&src->lock);
	/* the first decode of a freshly indexed window takes the packets the index read */
	packets = src->packets;
	src->packets = NULL;
	xj.packets = packets;
	path = strdup(src->open_path);
	file = src->file;
	if (j->urgent && !j->urgent_counted) { /* the others pause for it from now on */
		j->urgent_counted = true;
		src->urgent_jobs++;
	}
	pthread_mutex_unlock(&src->lock);
	/* -1 when it changed or went: the run then reports the source as not openable */
	xj.fd = path ? eng_source_file_open(path, &file) : -ENOMEM;
	free(path);
	/*
	 * Decode what it holds the lease of; a run stopped where another job's range starts
	 * adopts that job's images, and decodes what is still missing once it may.
	 */
	while (wait_for_lease(j, &first)) {
		bool again;
		xj.first = first;
		pthread_mutex_lock(&src->lock);
		if (first == j->first && src->fs[first].state == F_CLAIMED &&
		    src->fs[first].owner == j) {
			atomic_store(&j->starting, true);
			eng_starting_enter(e);
		}
		pthread_mutex_unlock(&src->lock);
		extract_run(&xj);
		xj.packets = NULL; /* spent (or of no use from where a later run starts) */
		eng_packets_free(e, &packets);
		job_first_over(j);
		lease_drop(j);
		pthread_mutex_lock(&src->lock);
		again = j->stopped_early && !atomic_load(&e->stopping);
		j->stopped_early = false;
		j->stop_pts = INT64_MAX;
		pthread_mutex_unlock(&src->lock);
		if (!again)
			break;
	}
	eng_packets_free(e, &packets);
	if (xj.fd >= 0)
		close(xj.fd);
	job_end(j, atomic_load(&e->stopping), true);
	jobs_next(e);
	threads_alive_add(e, -1); /* the last use of e by this thread */
	return NULL;
}

/*
 * The job is over (ran: its thread ends; otherwise it never started): frames it still
 * claims were never decoded, so they cannot be produced, or, unmade (the engine stops,
 * no thread), go back to NONE for a later reader. Frees j and drops its use of src.
 */
static void job_end(struct job *j, bool unmade, bool ran)
{
	struct source *src = j->src;
	struct engine *e = src->e;
	struct wake w = {0};
	bool failed;

	pthread_mutex_lock(&src->lock);
	for (size_t i = j->first; i <= j->last && i < src->idx->n; i++)
		if (src->fs[i].state == F_CLAIMED && src->fs[i].owner == j) {
			if (unmade) {
				eng_release_locked(src, i, &w);
				continue;
			}
			if (src->damaged_at == SIZE_MAX) {
				src->damaged_at = i;
				snprintf(src->damage, sizeof(src->damage),
					 "source frame %zu was not produced by the decoder", i + 1);
			}
			eng_mark_failed_locked(src, i, &w);
		}
	failed = src->damaged_at != SIZE_MAX;
	job_not_urgent_locked(j);
	for (struct job **pp = &src->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	pthread_mutex_unlock(&src->lock);
	eng_run_wake(src, &w);
	if (ran)
		atomic_fetch_add(failed ? &e->extractions_failed : &e->extractions_completed, 1);
	pthread_mutex_lock(&e->lock);
	if (ran) {
		struct uid_queue *q = uid_queue_of_locked(e, j->uid, false);
		e->jobs_threads--;
		if (q)
			q->running--;
	}
	e->running_jobs--;
	src->users--; /* the last use of src here */
	pthread_cond_broadcast(&e->jobs_done);
	pthread_mutex_unlock(&e->lock);
	free(j);
}

/* Creates a job covering [first, last]; frames are claimed by the caller. Under src->lock. */
struct job *eng_job_new_locked(struct source *src, size_t first, size_t last)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->src = src;
	j->first = first;
	j->last = last;
	j->lease_fd = -1;
	j->stop_pts = INT64_MAX;
	atomic_store(&j->pos, -1);
	j->next = src->jobs;
	src->jobs = j;
	return j;
}

void eng_job_start(struct job *j)
{
	struct engine *e = j->src->e;
	struct uid_queue *q;
	bool now = false;

	pthread_mutex_lock(&e->lock);
	e->running_jobs++;
	j->src->users++; /* the job uses the source to its very end, queued or running */
	if (atomic_load(&e->stopping)) { /* engine_stop drained the queues already */
		pthread_mutex_unlock(&e->lock);
		job_end(j, true, false);
		return;
	}
	q = uid_queue_of_locked(e, j->uid, true);
	if (!q || (!q->head && may_start_locked(e, q))) {
		now = true; /* no queue (no memory): it runs, past the bound */
		if (q)
			q->running++;
		e->jobs_threads++;
	} else {
		if (q->tail)
			q->tail->qnext = j;
		else
			q->head = j;
		q->tail = j;
	}
	pthread_mutex_unlock(&e->lock);
	if (now)
		job_thread(j);
	else
		jobs_next(e); /* its turn may be now */
}

/*
 * A frame claimed by a job that is far behind it gets a job of its own, starting at the
 * keyframe before it; the old job's claims from there on move to the new one.
 */
struct job *eng_split_far_locked(struct source *src, size_t frame)
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
	j = eng_job_new_locked(src, frame, old->last);
	if (!j)
		return NULL;
	for (size_t i = frame; i <= old->last; i++)
		if (src->fs[i].state == F_CLAIMED && src->fs[i].owner == old)
			src->fs[i].owner = j;
	old->last = frame - 1;
	j->urgent = true; /* the others pause for it once it runs (job_main) */
	j->uid = old->uid;
	return j;
}
