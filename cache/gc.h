/*
 * gc: what the store holds, and keeping it within its bounds.
 *
 * A census reads the whole store: every image (size, mtime), every segment manifest,
 * complete (.seg) or partial (.pending: an extraction running, or one a crash interrupted),
 * the images no manifest names, the source indexes and content ids (idx/) and the lease
 * files (lock/). Everything hfmount writes counts toward max_size, a lease file as
 * STORE_LEASE_BYTES (it is empty; its inode and directory entry are what it costs). Its
 * units, in least-recently-used order, are what eviction removes: a segment goes with the
 * images no other kept segment names; an unnamed image, an index or a lease file goes
 * alone. Last use is the manifest's mtime (hfmount sets it when a segment is used), or
 * the file's own mtime (an index's is set when it is read or written).
 *
 * A lease file goes only when nobody holds a range of it: it is locked whole (never
 * waiting) and unlinked under that lock, and a lease taker checks after locking that its
 * file is still the one at the path (see store_lease_try_range), so removing one never
 * lets two processes hold one range. The in-use window does not keep a lease file: its
 * lock says whether it is in use, and one made again costs nothing. An index another
 * process may be using is kept by the window (or the caller's keep callback); removing
 * one in use would cost a re-index, never a failure: a source holds its index in memory.
 *
 * Nothing here trusts one process's memory: several hfmount processes, on several
 * machines, may share the store. A unit used within the in-use window is kept unless
 * the caller knows better (its keep callback); images the caller is producing are pinned.
 * Files are only ever unlinked, so a reader holding one open keeps reading it.
 */
#ifndef HF_GC_H
#define HF_GC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/store.h"

enum gc_kind {
	GC_SEGMENT, /* a complete segment's manifest */
	GC_PARTIAL, /* a partial manifest */
	GC_IMAGE,   /* an image no manifest names */
	GC_DAMAGED, /* a manifest that cannot be parsed */
	GC_INDEX,   /* a source index or content id (idx/<key>.idx, .cid) */
	GC_LEASE,   /* a lease file (lock/<key>.lock) */
};

struct gc_unit {
	enum gc_kind kind;
	char *path;          /* the manifest or image file */
	struct hf_key key;   /* segment key (from the file name) or image key */
	int64_t last_use_ns; /* mtime, ns since the epoch; 0 for a damaged manifest (goes first) */
	struct manifest *m;  /* GC_SEGMENT and GC_PARTIAL */
	uint64_t images, bytes;          /* distinct images it names that are stored, their bytes */
	uint64_t own_images, own_bytes;  /* of those, the ones no other manifest names */
	uint64_t manifest_bytes;         /* the manifest file itself */
	uint64_t file_bytes;             /* GC_INDEX: its size; GC_LEASE: STORE_LEASE_BYTES */
};

struct census;

/* Reads the store. 0 or -errno. */
int census_take(struct store *st, struct census **out);
void census_free(struct census **c);

/* Units in least-recently-used order (the order eviction takes them). */
size_t census_units(const struct census *c);
const struct gc_unit *census_unit(const struct census *c, size_t i);

struct census_totals {
	uint64_t images, bytes;               /* every stored image */
	uint64_t unnamed_images, unnamed_bytes; /* images no manifest names */
	uint64_t segments, partials, damaged;
	uint64_t missing; /* images manifests name that are not stored */
	uint64_t manifest_bytes; /* complete, partial and damaged manifests: they count too */
	uint64_t indexes, index_bytes; /* idx/: source indexes and content ids */
	uint64_t leases, lease_bytes;  /* lock/: lease files, STORE_LEASE_BYTES each */
};

/* What counts toward max_size: images, manifests, indexes and lease files. */
uint64_t census_bytes(const struct census_totals *t);
void census_totals(const struct census *c, struct census_totals *t);

/*
 * Calls fn for every stored image: its key, extension, path, size, and the size a
 * complete manifest records for it (0 when none names it).
 */
void census_images(const struct census *c,
		   void (*fn)(void *arg, const struct hf_key *k, const char *ext, const char *path,
			      uint64_t size, uint64_t named_size),
		   void *arg);

/* The in-use window hfmount and hfctl gc use: a unit used this recently may be in use. */
#define GC_IN_USE_S 120

enum gc_keep { GC_KEEP = 1, GC_MAY_GO = 0, GC_ASK_WINDOW = -1 };

struct gc_opts {
	uint64_t max_size; /* bytes of everything stored (census_bytes); 0: no bound */
	uint64_t min_free; /* bytes free on the store's filesystem; 0: no bound */
	bool dry_run;      /* decide and report, remove nothing */
	uint64_t want_free; /* also make this many bytes free (a write failed with ENOSPC) */
	int64_t in_use_ns; /* units used this recently are kept (GC_ASK_WINDOW) */
	/* The caller's knowledge of a unit; NULL: the window decides for every unit. */
	enum gc_keep (*keep)(void *arg, const struct gc_unit *u);
	/* Adds the images the caller is producing; they are never removed. */
	void (*pins)(void *arg, void (*add)(void *set, const struct hf_key *k), void *set);
	/* After each unit removed (or, dry, that would be): bytes and images it freed. */
	void (*removed)(void *arg, const struct gc_unit *u, uint64_t images, uint64_t bytes);
	void *arg;
	/* When set (may be NULL), the census stops and store_gc returns -ECANCELED at once. */
	const atomic_bool *cancel;
};

struct gc_result {
	uint64_t bytes_before, bytes_after;
	uint64_t free_before, free_after; /* estimated after removal */
	uint64_t units_removed, segments_removed, images_removed, bytes_removed;
	uint64_t indexes_removed, leases_removed;
	uint64_t kept_in_use; /* units that would have gone but are in use */
	bool over;            /* the store was over a bound */
	bool within;          /* and is within its bounds afterwards */
};

/*
 * Evicts least recently used units while the store is over a bound, down to 90% of
 * max_size and min_free plus 10% (or want_free), so that eviction does not run for every
 * new image.
 * 0 or -errno (a census that could not be taken).
 */
int store_gc(struct store *st, const struct gc_opts *o, struct gc_result *r);

/* Bytes available to unprivileged writers on the store's filesystem. */
uint64_t store_free_bytes(struct store *st);

#endif
