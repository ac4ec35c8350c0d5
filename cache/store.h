/*
 * store: the on-disk, content-addressed backing store.
 *
 *   STORE/hfmount-store          marker with the schema version
 *   STORE/img/ab/<key>.<ext>     images, named by key_image()
 *   STORE/seg/<pathkey>/<key>.seg  segment manifests, grouped by source path
 *   STORE/seg/<pathkey>/<key>.pending  the same for a segment being extracted (sizes 0)
 *   STORE/idx/<key>.idx          source frame indexes, named by source identity
 *   STORE/idx/<key>.cid          content ids (identity = content), named by file stamp
 *   STORE/lock/<key>.lock        lease files (empty; byte-range locks)
 *   STORE/tmp/                   files being written (host.pid.seq), renamed when complete
 *
 * Everything but tmp/ counts toward max_size and is collectable (cache/gc.h): a lease
 * file as STORE_LEASE_BYTES.
 *
 * Private: directories 0700, files 0600 (02770/0660 with the group of a shared store),
 * whatever the umask; an existing store is tightened to these modes at open. A
 * directory that holds anything else and no marker is refused: only its own.
 *
 * Every file appears under its final name only complete (write to tmp/, optional
 * fsync, rename). A manifest is written only after the images it names. Leftover
 * temp files of dead writers are removed at open. All functions are thread-safe and
 * return 0 (or a count/fd) or a negative errno.
 */
#ifndef HF_STORE_H
#define HF_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cache/key.h"

struct store;

struct store_opts {
	bool fsync;    /* fsync files and their directory before and after rename */
	bool existing; /* fail unless dir already holds a store; create nothing, clean nothing */
	bool shared;   /* a group shares it: directories 02770, files 0660, group gid */
	gid_t gid;
};

/*
 * What a segment manifest records: enough to list and read it without the video. It
 * grows with the distinct images a segment shows, not with its slots: slots map to
 * images in runs (a source frame fills consecutive slots), image i filling slots
 * first[i] .. first[i + 1] - 1 (the last one up to count - 1).
 */
struct manifest {
	char *segment;  /* canonical directory name, e.g. "clip.mp4@1.5+2@30" */
	char *source;   /* absolute source path */
	char *identity; /* source identity the images were made from */
	int64_t count;  /* number of slots, > 0 */
	int width, height;
	char ext[8];          /* "png" or "jpg" */
	size_t nimages;       /* distinct images, in slot order, >= 1 */
	struct hf_key *image; /* nimages keys */
	uint64_t *size;       /* nimages image sizes in bytes (0 in a partial manifest) */
	int64_t *first;       /* nimages first slots: first[0] == 0, ascending, < count */
};

/* The index into m->image of the image slot shows (0 <= slot < m->count). */
size_t manifest_image_of(const struct manifest *m, int64_t slot);

/*
 * Opens (creating if missing) the store at dir. Fails with a sentence in err when the
 * directory cannot be created or written, holds another schema, or is not empty and
 * not a store (-ENOTEMPTY; nothing in it is touched).
 */
int store_open(const char *dir, const struct store_opts *opts, struct store **out, char *err,
	       size_t errlen);

/* Removes temp files of writers that died on this host (store_open does it too); a count. */
int store_clean(struct store *st);

/* Closes the store; accepts NULL and clears the caller's pointer. */
void store_close(struct store **st);

/*
 * Size of a stored image, -ENOENT if absent or empty. Does not open the file (so on a
 * network filesystem the size may be this client's cached view: serve through
 * store_image_open, which checks).
 */
int store_image_size(struct store *st, const struct hf_key *k, const char *ext, uint64_t *size);

/*
 * Size of a stored image another writer made, checked complete on this client without a
 * manifest to say its size: through the opened descriptor, its fstat size is not 0 and
 * it starts and ends there as its format does (PNG signature and IEND, JPEG SOI and EOI).
 * -ENOENT when absent; -EAGAIN when it is there but not whole: "not landed yet" (a
 * network filesystem's client can show a file renamed into place elsewhere empty or
 * short for about a second), or damaged. Nothing is removed; never blocks beyond the
 * open and two 12-byte reads. The caller looks again later, or produces it (storing
 * replaces what is there).
 */
int store_image_complete(struct store *st, const struct hf_key *k, const char *ext,
			 uint64_t *size);

/*
 * Opens a stored image read-only; returns the fd or -ENOENT. The fd is returned only when
 * the image is whole as this client sees it: its descriptor's fstat says `size` bytes
 * (its writer's record; 0: any size) and it starts and ends as its format does there.
 * Otherwise it has not landed here yet: it is opened again with backoff for up to 2 s
 * (blocking the caller); one still wrong then is damaged: removed, never served, and
 * -ENOENT says to produce it again.
 */
int store_image_open(struct store *st, const struct hf_key *k, const char *ext, uint64_t size);

/*
 * Stores an image atomically. Storing an existing key is a no-op unless what is stored
 * under it is not a whole image of len bytes, which is replaced. 0, -ENOSPC, -EIO...
 */
int store_image_put(struct store *st, const struct hf_key *k, const char *ext, const void *data,
		    size_t len);

/* Path of an image (for tools and logs). */
void store_image_path(struct store *st, const struct hf_key *k, const char *ext, char *buf,
		      size_t len);

/* What an (empty) lease file counts toward max_size: the inode and directory entry. */
#define STORE_LEASE_BYTES 4096

/*
 * Opaque blobs such as source indexes: get returns a malloc'ed copy, -ENOENT if absent.
 * Both set the blob's last use (its mtime: at most every 30 s on get), which eviction
 * and hfctl gc read.
 */
int store_blob_get(struct store *st, const char *kind, const struct hf_key *k, void **buf,
		   size_t *len);
int store_blob_put(struct store *st, const char *kind, const struct hf_key *k, const void *buf,
		   size_t len);

/* Writes a manifest (count must be > 0) after checking that every image it names exists. */
int store_manifest_put(struct store *st, const struct hf_key *segkey, const struct manifest *m);

/*
 * Writes the partial manifest of a segment whose extraction starts: the images it will
 * name (sizes may be 0). It makes those images one unit for eviction while they are
 * produced, and after a crash. store_manifest_put removes it.
 */
int store_partial_put(struct store *st, const struct hf_key *segkey, const struct manifest *m);

/*
 * Sets the last use of a segment (its manifest's mtime, or its partial's when it has no
 * manifest yet) to when_ns. -ENOENT when it has neither.
 */
int store_manifest_touch(struct store *st, const char *source, const struct hf_key *segkey,
			 int64_t when_ns);

/* Reads a manifest; -ENOENT if absent, -EINVAL if damaged (a damaged one is removed). */
int store_manifest_get(struct store *st, const char *source, const struct hf_key *segkey,
		       struct manifest **out);

/* Calls fn for every stored segment of this source path made from this identity. */
int store_manifest_list(struct store *st, const char *source, const char *identity,
			void (*fn)(void *arg, const char *segment), void *arg);

void manifest_free(struct manifest **m);

/*
 * Leases: one decode per source range between processes sharing the store (and between
 * machines, where the filesystem provides byte-range locks, as NFSv4, CephFS and
 * GlusterFS do). A lease is an exclusive open-file-description lock on the range
 * [lo, hi] (ticks) of STORE/lock/<key>.lock, released when its fd closes, including when
 * the holder dies: processes decoding disjoint ranges of one source hold their leases at
 * once, overlapping ones take turns. Returns the fd, or -EWOULDBLOCK while another holds
 * an overlapping range.
 *
 * On a network filesystem, creating the lock file can fail with EEXIST when another
 * client creates it at once, and calls can fail with ESTALE, EINTR or ENOLCK: those are
 * retried inside (up to 8 times, 1 to 128 ms apart; the call blocks that long at most,
 * about 0.25 s, or twice that when the lock itself keeps failing). Any other negative
 * errno, or one of those still there after the retries, is a lease not taken: counted
 * in store_lease_stats's failures, and the caller must not decode as if it held it
 * silently.
 *
 * Lease files are collected (cache/gc.c) only when nobody holds a range of them; a lock
 * taken on a file that eviction unlinked meanwhile is dropped and taken again on the
 * file now at the path, so one range is never held twice.
 */
int store_lease_try_range(struct store *st, const struct hf_key *k, int64_t lo, int64_t hi);
/* Closes a lease's fd (its lock goes with it); accepts -1 and sets *fd to -1. */
void store_lease_release(int *fd);
/* Lease retries (each a short sleep) and leases that still failed, since store_open. */
void store_lease_stats(struct store *st, uint64_t *retries, uint64_t *failures);
/*
 * Images found not whole on this client (not landed yet, or damaged) by
 * store_image_complete or store_image_open, and the re-opens store_image_open waited for.
 */
void store_image_stats(struct store *st, uint64_t *not_landed, uint64_t *waits);

/*
 * Watches image directories for images that other processes store. wait returns after
 * an image lands in a watched directory or after timeout_ms (on filesystems whose remote
 * changes inotify cannot see, the timeout is what notices them).
 */
struct store_watch;
struct store_watch *store_watch_new(struct store *st);
void store_watch_add(struct store_watch *w, const struct hf_key *k);
void store_watch_wait(struct store_watch *w, int timeout_ms);
void store_watch_free(struct store_watch **w);

/*
 * Number of images, and the bytes of everything stored (images, manifests, indexes,
 * lease files), kept up to date by this process and corrected by each census.
 */
void store_usage(struct store *st, uint64_t *images, uint64_t *bytes);

/* ---- for cache/gc.c, which reads the whole store ---- */

const char *store_dir(const struct store *st);
/* Reads a manifest file (complete or partial); 0, -errno of the read, -EINVAL when damaged. */
int manifest_read(const char *path, struct manifest **out);
/* Corrects the usage counters after a scan of the whole store. */
void store_usage_set(struct store *st, uint64_t images, uint64_t bytes);

#endif
