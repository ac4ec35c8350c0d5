/*
 * engine: segments and the frames they show, between the filesystem and the decoder.
 *
 * A segment is (source, start, dur, fps, format). Its slots map to source frames; every
 * source frame's image has one state per output format (none, claimed by a decode job,
 * done, failed), shared by every segment, spelling and reader, so one decode serves all.
 * A segment is extracted whole once a frame of it is asked for (conf eager), in order;
 * readers wait for exactly their frame. A complete segment writes its manifest, so a
 * later lookup serves it from the store without opening the video.
 *
 * All functions are thread-safe. Callbacks run on the caller's thread (when the answer is
 * known at once) or on a decode/encode thread, never under an engine lock.
 */
#ifndef HF_ENGINE_H
#define HF_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "cache/store.h"
#include "conf/conf.h"
#include "fs/segname.h"

struct engine;
struct segment;

/* Creates the engine and starts the encoder pool. 0 or -errno. */
int engine_new(const struct hf_conf *conf, struct store *store, struct engine **out);

/*
 * Stops every job and thread (waiting for running decodes to end) and fails every frame
 * wait still pending. Call while the FUSE session still exists: those threads and waits
 * reply to requests. Accepts NULL; a second call does nothing.
 */
void engine_stop(struct engine *e);

/* engine_stop, then frees; accepts NULL. */
void engine_free(struct engine **e);

/*
 * Finds or creates the segment `sn` of the video at absolute path src. file is what the
 * caller found there, opened with its own rights (the check that it may be read): the
 * engine decodes only that very file (device, inode, size, mtime), and a file that is not
 * regular gives an error segment without being opened. Never indexes the video (see
 * segment_prepare): it reads at most the segment's manifest. A source that cannot be
 * decoded or a start past its end still gives a segment, with count 0 and an error
 * sentence. uid is the caller's: the segment's decodes wait in that user's queue (the
 * last to look it up), so one user's many segments do not hold another's first frame.
 * Returns 0 with a reference in *out, or -errno.
 */
int engine_segment(struct engine *e, const char *src, const struct stat *file, uid_t uid,
		   const struct segname *sn, struct segment **out);

/*
 * Indexes a cold segment's video window, once, for whoever needs its frames first (its
 * count, frames or .hfinfo); the others wait. Call before any of the functions below;
 * engine_segment itself never indexes, so a lookup never waits for a video's index.
 * Blocks its caller (a FUSE thread) for the index, bounded in bytes and time (source.h),
 * and for a turn: at most 4 callers index at once, 2 of one user (the segment's uid).
 * 0: what fails becomes the segment's error sentence. -EBUSY, at once, when that user
 * already has 16 threads indexing or waiting to (or all users 32): the segment is left
 * unprepared (count 0, a busy sentence in .hfinfo) and the next call tries again;
 * -ENOMEM likewise when no memory was left for the source.
 */
int segment_prepare(struct segment *s);

/* Takes / drops a reference. segment_put accepts NULL and clears the pointer. */
void segment_get(struct segment *s);
void segment_put(struct segment **s);

int64_t segment_count(const struct segment *s); /* slots, 0 for a segment in error */

/*
 * True when the segment's source is no longer the file it was made from (rewritten,
 * touched, replaced or removed): its frames must not be served for that path any more.
 */
bool segment_stale(struct segment *s);
const char *segment_ext(const struct segment *s);
const char *segment_name(const struct segment *s); /* canonical directory name */

/*
 * Calls fn(arg, 0, size) once slot's image is stored, or fn(arg, -EIO, 0) when it cannot
 * be (damage, a full store), or fn(arg, -EAGAIN, 0) when it was given up unmade for a
 * reason that is not the source's (memory, an encoder's state): calling again makes it.
 * May call fn before returning. Starts extraction as needed.
 */
typedef void (*frame_ready_fn)(void *arg, int err, uint64_t size);
void segment_frame_wait(struct segment *s, int64_t slot, frame_ready_fn fn, void *arg);

/* Opens the stored image of a slot whose wait succeeded: an fd, or -errno. */
int segment_frame_open(struct segment *s, int64_t slot);

/*
 * Asks the kernel to read a stored slot's image into the page cache, without waiting for
 * the data (read-ahead); nothing when it is not stored. Never blocks on another process.
 */
void segment_frame_prefetch(struct segment *s, int64_t slot);

/*
 * The open of a slot found no image (evicted since, or removed by hand): forgets the
 * segment's images that are gone, so that the next wait extracts them again.
 */
void segment_frame_lost(struct segment *s, int64_t slot);

/* .hfinfo as JSON into a malloc'ed buffer. */
int segment_info_json(struct segment *s, char **out, size_t *len);

/* .hfstats as JSON into a malloc'ed buffer. */
int engine_stats_json(struct engine *e, char **out, size_t *len);

/* Counts a frame file opened by a reader (frames served). */
void engine_count_served(struct engine *e);

/*
 * Calls fn(arg, name) for every used segment of the video at src (this mount or stored).
 * Costs what that video has: its segments in memory (a table by path) and its directory
 * of manifests in the store; a video with none costs a stat and a failed opendir.
 */
void engine_list_segments(struct engine *e, const char *src, void (*fn)(void *arg, const char *name),
			  void *arg);

#endif
