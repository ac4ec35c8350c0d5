/*
 * engine internals: what the parts of the engine share (fs/engine.h is the contract).
 *
 * Engine: frame states per (source identity, output format), decode jobs that claim
 * frames, waiters woken by the encoder threads, and segment manifests. The parts:
 * engine_sources.c (identity, the two hash tables, sources and their window indexes),
 * engine_jobs.c (frame states, waiters, decode jobs, leases), engine_segments.c
 * (segments, their plans, frame waits, manifests), engine_reports.c (.hfinfo, .hfstats)
 * and engine.c (life cycle, the evictor thread, eviction hooks, the sweep).
 *
 * Locking: engine->lock guards the two hash tables, the content ids, the fields marked
 * (engine lock) and the sources' users; each source->lock guards its frame states,
 * waiters, jobs and attached segments. A source lock may be taken while holding the
 * engine lock (the sweep, the eviction hooks, reports, listings, engine_stop, a warm
 * segment going cold), never the reverse. Segment references are atomic, taken under
 * either lock.
 */
#ifndef HF_ENGINE_I_H
#define HF_ENGINE_I_H

#include "fs/engine.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "decode/extract.h"
#include "decode/source.h"

#define NS 1000000000LL

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
	bool urgent_counted; /* started, so src->urgent_jobs counts it (others pause for it) */
	uid_t uid;   /* whose decode it is: the queue it waits in (engine lock) */
	struct job *qnext; /* its uid's queue of jobs not started (engine lock) */
	/*
	 * Its store lease (src->lock): the pts range [lease_lo, lease_hi] of the frames it
	 * encodes, held on lease_fd (-1: none). The decode stops at the first frame at or past
	 * stop_pts (INT64_MAX: none): the rest of its range is leased to another job, whose
	 * images it adopts (stopped_early says the run ended there).
	 */
	int lease_fd;
	int64_t lease_lo, lease_hi, stop_pts;
	bool stopped_early;
	bool held_here; /* its range is leased to another job of this process (not adopted_from_other_processes) */
	atomic_bool starting; /* decoding toward its first frame: other jobs give it the cores */
	uint64_t urgent_wait_ns; /* how long it paused for far-ahead jobs (src->lock) */
	struct job *next;
};

/* A user's decode jobs (engine lock): how many run, and those waiting for their turn. */
struct uid_queue {
	uid_t uid;
	int running;             /* its jobs whose thread runs */
	struct job *head, *tail; /* its jobs not started, in order */
	struct uid_queue *next;
};

/* A user's FUSE threads in index work (engine lock): indexing, and indexing or waiting. */
struct index_user {
	uid_t uid;
	int indexing, in_gate;
	struct index_user *next;
};

struct source {
	struct engine *e;
	char *path;      /* the first path it was asked for under: names it in logs */
	char *open_path; /* the path it was last asked for under: decodes open it (src->lock) */
	struct stat file; /* what a caller opened at open_path: decodes open only that (src->lock) */
	char *identity;
	struct hf_key known_key; /* its index blob: key_string("known", identity) */
	char fmt[192]; /* image_opts_canon, then "|" and the transforms asked for (tf_canon) */
	struct image_opts opts;
	/*
	 * Set once by the builder with the index: the transforms that apply (tf_effective),
	 * why the others do not (""), the images' size, or why the format cannot hold them
	 * (out_err < 0), and key_fmt: image_opts_canon and the applied transforms, what image
	 * keys and leases use (a transform that changes nothing shares the plain images).
	 */
	struct tf_spec tf;
	char tf_note[160];
	int out_w, out_h, out_err;
	char out_why[160];
	char key_fmt[192];
	/*
	 * The matrix its pictures are shown with (H.273 code; source_guess_matrix), and
	 * whether it was guessed (the stream carries none: then key_fmt says the guess);
	 * untagged_cli: the segment asked for the CLI's guess (set at creation).
	 */
	int matrix;
	bool matrix_guessed, untagged_cli;
	struct source *next; /* engine hash chain */
	int users; /* segments attached to it and jobs running on it (engine lock): at 0 it may go */

	/* the window asked for when it was made (engine lock): others may wait for it */
	struct hf_q want_start, want_dur;
	/* set once by the builder, then read-only */
	bool ready;
	struct source_index *idx; /* a window of the video (source.h) */
	uint64_t index_bytes;     /* bytes of the video read to index it (0: known ranges) */
	/*
	 * The packets its index pass demuxed (source.h), for the first decode to take instead
	 * of reading them again; the first job takes them (src->lock), NULL after.
	 */
	struct source_packets *packets;
	int err;
	char error[256];

	pthread_mutex_t lock;
	struct frame_state *fs;
	struct waiter *waiters;
	struct job *jobs;
	struct segment *segs; /* cold segments being tracked, via seg->src_next */
	size_t damaged_at;    /* frames at or after this fail; SIZE_MAX when undamaged */
	char damage[256];
	int urgent_jobs;          /* other jobs pause while a far-ahead reader waits */
	pthread_cond_t unpaused;
	char store_error[256];    /* why the last image could not be stored; "" once one is */
	bool lease_warned;        /* "no lease can be taken" was logged for it */
};

enum seg_state { SEG_LISTED, SEG_EXTRACTING, SEG_COMPLETE, SEG_ERROR };

struct segment {
	struct engine *e;
	_Atomic int refs; /* taken under either lock, so atomic */
	struct segment *next; /* engine hash chain */
	struct segment *path_next; /* chain of the by-path table (engine lock) */
	_Atomic uid_t uid; /* who looked it up last: its decodes wait in that user's queue */
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
	uint64_t prepare_ns; /* the lookup's work: finding or indexing its window (set once) */
	uint64_t t_start_ns, t_done_ns;
	/* last use, for eviction (any thread) */
	_Atomic uint64_t used_ns;         /* monotonic time of the last wait */
	_Atomic uint64_t touched_ns;      /* monotonic time of the last touch of its manifest */
	_Atomic int64_t touched_real_ns;  /* the mtime that touch gave it */
	uint64_t hits; /* needed frames already stored when extraction started */
};

struct content_id {
	char stamp[160]; /* dev:ino:size:mtime:ctime:uid (file_stamp) */
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
	/*
	 * Job threads not yet returned (engine lock): a thread goes on to start queued jobs
	 * after its own has ended, so engine_stop waits for this too before the engine goes.
	 */
	int threads_alive;
	int running_jobs; /* jobs with a use of their source: queued or running */
	/*
	 * Decode jobs (engine lock): at most jobs_max threads run, or jobs_hard_max when the
	 * job's user has none running (a user's first decode never waits behind another's
	 * hundreds); the rest wait in one queue per user, started round robin.
	 */
	int jobs_max, jobs_hard_max, jobs_threads;
	struct uid_queue *queues;
	/*
	 * FUSE threads in segment_prepare's index work (engine lock): at most INDEX_MAX at
	 * once and INDEX_PER_USER of one user; one user's threads indexing or waiting to are
	 * bounded too (engine_segments.c), so the others' requests keep their threads.
	 */
	pthread_cond_t index_cond;
	int indexing, index_gate;
	struct index_user *index_users;
	/* segments by source path (engine lock): a listing costs what the directory holds */
	struct segment **by_path;
	size_t by_path_cap;
	/* hash tables (engine lock): sources by identity, segments by key */
	struct source **sources;
	size_t nsources, sources_cap;
	struct segment **segments;
	size_t nsegments, segments_cap;
	_Atomic uint64_t sources_freed, segments_freed;
	uint64_t t0_ns;

	struct extract_stats xs;
	_Atomic uint64_t write_ns;
	_Atomic uint64_t index_ns, index_bytes, windows_built, windows_known;
	/* bytes of packets index passes kept for first decodes, all sources (within a quarter
	 * of decode.memory together) */
	_Atomic uint64_t packets_held;
	pthread_mutex_t known_lock; /* one read-merge-write of a known-ranges blob at a time */
	/* the index blobs this process read or wrote last (known_lock): eviction may take
	 * them once no source here uses them, without waiting for the in-use window */
	struct hf_key idx_used[256];
	size_t idx_used_next;
	pthread_mutex_t lease_lock; /* one lease scan-and-take of this process at a time */
	/* jobs decoding toward their first frame; the others pause for them (bounded) */
	pthread_mutex_t start_lock;
	pthread_cond_t start_cond;
	int starting;
	int test_index_delay_ms;    /* HF_TEST_INDEX_DELAY_MS: for tests only */
	_Atomic uint64_t extractions_started, extractions_completed, extractions_failed;
	_Atomic uint64_t frames_served, images_encoded, cache_hits, cache_misses, joined;
	_Atomic uint64_t segments_known, store_errors, adopted;
	_Atomic uint64_t handovers; /* decodes that split a range with another job of this process */
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

/* What changes of frame states owe once the source lock is dropped: eng_run_wake pays it. */
struct wake {
	struct waiter *list; /* waiters to call once unlocked */
	struct segment *complete[8];
	int ncomplete;
};

#define FOR_EACH_SEGMENT(e, s)                                      \
	for (size_t seg_b_ = 0; seg_b_ < (e)->segments_cap; seg_b_++) \
		for (struct segment *s = (e)->segments[seg_b_]; s; s = s->next)
#define FOR_EACH_SOURCE(e, src)                                    \
	for (size_t src_b_ = 0; src_b_ < (e)->sources_cap; src_b_++) \
		for (struct source *src = (e)->sources[src_b_]; src; src = src->next)

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void fmt_seconds_ms(int64_t ms, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRId64 ".%03" PRId64, ms / 1000, ms % 1000);
}

/* Milliseconds from the start of the video to a tick value, for messages. */
static inline int64_t av_ms(const struct source_index *idx, int64_t ticks)
{
	__int128 v = (__int128)(ticks - idx->origin) * idx->tb.num * 1000 / idx->tb.den;
	return (int64_t)v;
}

/* ---- engine_sources.c: the hash tables (engine lock), identities, sources ---- */

/* The segment table's bucket of key. */
size_t eng_seg_bucket(const struct engine *e, const struct hf_key *k);
/* Doubles the segment table once crowded. Engine lock. */
void eng_grow_segments(struct engine *e);
/* The segment of key (and path, unless NULL) in the table, or NULL. Engine lock. */
struct segment *eng_seg_find_locked(struct engine *e, const struct hf_key *key, const char *path);
/* Drops a use taken by eng_source_get. Takes the engine lock. */
void eng_source_put(struct engine *e, struct source *src);
/* The image options of a segment's format under this mount's conf. */
struct image_opts eng_opts_for(const struct engine *e, const struct segname *sn);
/* The transforms a segment asks for. */
struct tf_spec eng_tf_for(const struct segname *sn);
/* The very file, unchanged: device, inode, size, mtime, ctime and owner all equal. */
bool eng_same_file(const struct stat *a, const struct stat *b);
/* An fd of path, only if it is still the very regular file want; -ESTALE or -errno. */
int eng_source_file_open(const char *path, const struct stat *want);
/* Notes that this process used the index blob k (known_lock held). */
void eng_index_used_locked(struct engine *e, const struct hf_key *k);
/* The identity of the file at path into malloc'ed *out (sb NULL: stat it); 0 or -errno. */
int eng_source_identity(struct engine *e, const char *path, const struct stat *sb, char **out);
/* A source whose window holds sn's, with a use for the caller; indexes a new one. No lock held. */
struct source *eng_source_get(struct engine *e, const char *path, const struct stat *file,
			      const char *identity, const struct image_opts *opts,
			      const struct segname *sn);
/* The hash chain holding the sources of src's video (every format). Engine lock. */
/* Frees a source's kept packets and gives their bytes back to the engine's bound. */
void eng_packets_free(struct engine *e, struct source_packets **pk);
struct source *eng_source_chain_locked(struct engine *e, const struct source *src);
/* Frees a source out of the table that nobody uses. */
void eng_source_free(struct source *src);
/* The store key of a frame's image; the source has an index. */
void eng_image_key(const struct source *src, size_t frame, struct hf_key *k);

/* ---- engine_jobs.c: frame states and waiters (src->lock), jobs, leases ---- */

/* Every frame of s is done: complete (its manifest queued on w), or truncated. src->lock. */
void eng_seg_finished_locked(struct segment *s, struct wake *w);
/* The frame cannot be produced: its waiters fail, the segments needing it too. src->lock. */
void eng_mark_failed_locked(struct source *src, size_t frame, struct wake *w);
/* The frame goes back to NONE: its waiters fail, its segments start again. src->lock. */
void eng_release_locked(struct source *src, size_t frame, struct wake *w);
/* Calls the waiters taken and writes the manifests of completed segments. No lock held. */
void eng_run_wake(struct source *src, struct wake *w);
/* A job covering [first, last], not started; the caller claims its frames. src->lock. */
struct job *eng_job_new_locked(struct source *src, size_t first, size_t last);
/*
 * A clip starts (a source being indexed, a job decoding toward its first frame) and is on
 * its way: while any starts, running jobs pause at their next frame, a second at most.
 */
void eng_starting_enter(struct engine *e);
void eng_starting_leave(struct engine *e);
/*
 * Starts the job's thread, or queues it in its user's queue when jobs are at their bound
 * (it starts when a job ends, round robin between users); a job whose thread cannot be
 * made gives its frames back unmade (readers ask again). Never blocks. No lock held.
 */
void eng_job_start(struct job *j);
/* Stops the queues: jobs not started give their frames back. engine_stop. No lock held. */
void eng_jobs_drain(struct engine *e);
/* A new urgent job for a claimed frame far ahead of its job (not started), or NULL. src->lock. */
struct job *eng_split_far_locked(struct source *src, size_t frame);

/* ---- engine_segments.c ---- */

/* Adds / removes a segment of the by-path table. Engine lock. */
void eng_path_add_locked(struct engine *e, struct segment *s);
void eng_path_remove_locked(struct engine *e, struct segment *s);

/* Frees a segment out of the table, dropping its use of the source. */
void eng_seg_free(struct segment *s);
/* Writes a complete segment's manifest and logs its extraction. No lock held. */
void eng_write_manifest(struct segment *s);

/* ---- engine.c: eviction ---- */

/* One eviction pass, when the store is over a bound or want_free bytes are needed. */
void eng_evict(struct engine *e, uint64_t want_free);
/* Asks the evictor thread for a pass. */
void eng_evictor_ask(struct engine *e);

#endif
