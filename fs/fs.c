/*
 * FUSE low-level operations. Nodes are named by their path below the mount root and
 * live in two hash tables (by path, by inode number) while the kernel holds a lookup.
 * Frame lookups do not hold a loop thread while the frame is produced: the request is
 * handed to the engine and answered from the thread that stores the image.
 *
 * Everything of the host the mount shows is looked at as the caller (fs/caller.h): the
 * mirror's lookups, attributes, listings, links and opens. A mirrored file is opened once
 * per open, as the caller, and read from that descriptor. Frames keep their pages in the
 * kernel's cache between opens (FOPEN_KEEP_CACHE), so a warm frame read again costs an
 * open round trip and no read; a read the kernel does send opens the stored image for
 * that one reply. A video that changes (content, owner, mode, ACL: its ctime) is noticed
 * by the source watch (fs/watch.h), which drops its segment directories from the
 * kernel's caches; opening a segment directory or a frame also checks.
 */
#include "fs/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs/caller.h"
#include "fs/log.h"
#include "fs/segname.h"
#include "fs/ahead.h"
#include "fs/watch.h"

/* How often videos are compared with their segments when inotify cannot see a change. */
#define WATCH_PERIOD_MS 2000
/* Stored images read from disk ahead of the one a reader starts. */
#define READ_AHEAD_FRAMES 4
/* Frame bytes stored into the kernel's page cache per notify (a pipe holds 1 MiB). */
#define PUSH_PIECE (512u << 10)

enum node_kind { N_ROOT, N_DIR, N_FILE, N_LINK, N_OTHER, N_SEGDIR, N_FRAME, N_INFO, N_STATS };

struct node {
	fuse_ino_t ino;
	char *path; /* below the mount root, "" for the root, else "a/b" */
	enum node_kind kind;
	uint64_t nlookup;
	struct segment *seg; /* N_SEGDIR, N_FRAME, N_INFO */
	int64_t slot;        /* N_FRAME */
	_Atomic uint64_t size; /* N_FRAME, once known */
	struct stat src;     /* N_SEGDIR, N_FRAME, N_INFO: the video's stat, set at creation */
	struct node *next_path, *next_ino;
	/* N_SEGDIR: the directory it is named in, its video, its watch, the list of them */
	fuse_ino_t parent;
	char *video;
	int wd;
	bool dropped; /* the kernel was told to drop its entry */
	_Atomic bool per_caller; /* not every user may open its video: each path walk asks again */
	struct node *next_seg, *prev_seg;
	/* N_INFO, N_STATS: the text as of the lookup (every lookup makes a new node) */
	char *text;
	size_t text_len;
	struct timespec text_time;
};

#define NBUCKETS 4096
#define TEXT_INO_BIT (1ull << 62) /* node numbers never get there */

/*
 * Handles (directory lists) are made by one request and used by later
 * ones on other threads; the kernel orders those requests. ThreadSanitizer cannot see that
 * ordering through /dev/fuse, so TSan builds are told about it; elsewhere these are no-ops.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define HANDOFF_PUBLISH(p) __tsan_release(p)
#define HANDOFF_TAKE(p) __tsan_acquire(p)
#else
#define HANDOFF_PUBLISH(p) ((void)(p))
#define HANDOFF_TAKE(p) ((void)(p))
#endif

struct hf_fs {
	struct hf_conf conf;
	char *mountpoint;
	struct engine *engine;
	pthread_mutex_t lock;
	struct node *by_path[NBUCKETS], *by_ino[NBUCKETS];
	struct node *segdirs; /* every N_SEGDIR node */
	fuse_ino_t next_ino;
	struct node root;
	struct fuse_session *se;
	struct watch *watch;
	struct ahead *ahead;
};

struct dirlist {
	size_t n, cap;
	struct dirent_ent {
		char *name;
		unsigned char type;
	} *v;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* ---- node table ---- */

/* The node numbered ino other than the root, or NULL; fs->lock held. */
static struct node *node_find_locked(struct hf_fs *fs, fuse_ino_t ino)
{
	struct node *n;
	for (n = fs->by_ino[ino % NBUCKETS]; n; n = n->next_ino)
		if (n->ino == ino)
			break;
	return n;
}

static struct node *node_by_ino(struct hf_fs *fs, fuse_ino_t ino)
{
	struct node *n;
	if (ino == FUSE_ROOT_ID)
		return &fs->root;
	pthread_mutex_lock(&fs->lock);
	n = node_find_locked(fs, ino);
	pthread_mutex_unlock(&fs->lock);
	return n;
}

/* Text files are snapshots: each lookup makes its own node, found by number only. */
static bool found_by_path(enum node_kind kind)
{
	return kind != N_INFO && kind != N_STATS;
}

static struct node *node_alloc(const char *path, enum node_kind kind, fuse_ino_t parent,
			       struct segment *seg, int64_t slot, const struct stat *src)
{
	struct node *n = calloc(1, sizeof(*n));
	if (n && !(n->path = strdup(path))) {
		free(n);
		return NULL;
	}
	if (n) {
		n->kind = kind;
		n->parent = parent;
		n->slot = slot;
		n->wd = -1;
		if (src)
			n->src = *src;
		if (seg) {
			segment_get(seg);
			n->seg = seg;
		}
	}
	return n;
}

static void node_free(struct node *n)
{
	segment_put(&n->seg);
	free(n->video);
	free(n->text);
	free(n->path);
	free(n);
}

/* Numbers n and enters it in the tables. */
static void node_insert_locked(struct hf_fs *fs, struct node *n)
{
	n->ino = fs->next_ino++;
	n->next_ino = fs->by_ino[n->ino % NBUCKETS];
	fs->by_ino[n->ino % NBUCKETS] = n;
	if (found_by_path(n->kind)) {
		uint64_t h = hash_str(n->path) % NBUCKETS;
		n->next_path = fs->by_path[h];
		fs->by_path[h] = n;
	}
	if (n->kind == N_SEGDIR) {
		n->next_seg = fs->segdirs;
		if (fs->segdirs)
			fs->segdirs->prev_seg = n;
		fs->segdirs = n;
	}
}

/*
 * Finds or creates the node for path; the caller counts a lookup with node_ref(). Nodes
 * of a segment belong to that segment: when its source changes, the same path gets a
 * new segment and so new nodes (new inode numbers, so no kernel cache of the old ones
 * is used for it). A new segment directory gets a watch on its video (at path video).
 */
static struct node *node_get(struct hf_fs *fs, const char *path, enum node_kind kind,
			     fuse_ino_t parent, struct segment *seg, int64_t slot,
			     const struct stat *src, const char *video)
{
	uint64_t h = hash_str(path) % NBUCKETS;
	struct node *n;

	pthread_mutex_lock(&fs->lock);
	for (n = fs->by_path[h]; n; n = n->next_path)
		if (strcmp(n->path, path) == 0 && n->kind == kind && n->seg == seg)
			break;
	if (!n && (n = node_alloc(path, kind, parent, seg, slot, src))) {
		if (video && !(n->video = strdup(video))) {
			pthread_mutex_unlock(&fs->lock);
			node_free(n);
			return NULL;
		}
		node_insert_locked(fs, n);
		if (video)
			n->wd = watch_add(fs->watch, video);
	}
	pthread_mutex_unlock(&fs->lock);
	return n;
}

/* A new node holding the text of .hfinfo (of seg) or .hfstats as it is now. */
static int node_new_text(struct hf_fs *fs, const char *path, enum node_kind kind,
			 fuse_ino_t parent, struct segment *seg, const struct stat *src,
			 struct node **out)
{
	struct node *n = node_alloc(path, kind, parent, seg, 0, src);
	int ret;

	if (!n)
		return -ENOMEM;
	clock_gettime(CLOCK_REALTIME, &n->text_time);
	ret = kind == N_STATS ? engine_stats_json(fs->engine, &n->text, &n->text_len)
			      : segment_info_json(seg, &n->text, &n->text_len);
	if (ret < 0) {
		node_free(n);
		return ret;
	}
	pthread_mutex_lock(&fs->lock);
	node_insert_locked(fs, n);
	pthread_mutex_unlock(&fs->lock);
	*out = n;
	return 0;
}

static void node_ref(struct hf_fs *fs, struct node *n)
{
	pthread_mutex_lock(&fs->lock);
	n->nlookup++;
	pthread_mutex_unlock(&fs->lock);
}

static void node_forget(struct hf_fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	struct node *n, **pp;
	if (ino == FUSE_ROOT_ID)
		return;
	pthread_mutex_lock(&fs->lock);
	n = node_find_locked(fs, ino);
	if (!n || (n->nlookup -= nlookup > n->nlookup ? n->nlookup : nlookup) > 0) {
		pthread_mutex_unlock(&fs->lock);
		return;
	}
	for (pp = &fs->by_ino[ino % NBUCKETS]; *pp != n; pp = &(*pp)->next_ino)
		;
	*pp = n->next_ino;
	if (found_by_path(n->kind)) {
		for (pp = &fs->by_path[hash_str(n->path) % NBUCKETS]; *pp != n;
		     pp = &(*pp)->next_path)
			;
		*pp = n->next_path;
	}
	if (n->kind == N_SEGDIR) {
		if (n->prev_seg)
			n->prev_seg->next_seg = n->next_seg;
		else
			fs->segdirs = n->next_seg;
		if (n->next_seg)
			n->next_seg->prev_seg = n->prev_seg;
	}
	pthread_mutex_unlock(&fs->lock);
	watch_remove(fs->watch, n->wd);
	node_free(n);
}

/* ---- paths ---- */

static int join(char *buf, size_t len, const char *a, const char *b)
{
	int n;
	if (!*a)
		n = snprintf(buf, len, "%s", b);
	else if (!*b)
		n = snprintf(buf, len, "%s", a);
	else
		n = snprintf(buf, len, "%s/%s", a, b);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Absolute path on the host of a path below the mount root. */
static int real_path(struct hf_fs *fs, const char *rel, char *buf, size_t len)
{
	int n;
	if (strcmp(fs->conf.source_root, "/") == 0)
		n = snprintf(buf, len, "/%s", rel);
	else if (!*rel)
		n = snprintf(buf, len, "%s", fs->conf.source_root);
	else
		n = snprintf(buf, len, "%s/%s", fs->conf.source_root, rel);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static bool is_mountpoint(struct hf_fs *fs, const char *real)
{
	return strcmp(real, fs->mountpoint) == 0;
}

static enum node_kind kind_of(mode_t m)
{
	if (S_ISDIR(m))
		return N_DIR;
	if (S_ISREG(m))
		return N_FILE;
	if (S_ISLNK(m))
		return N_LINK;
	return N_OTHER;
}

/* ---- attributes ---- */

static double timeout_for(struct hf_fs *fs, enum node_kind k)
{
	switch (k) {
	case N_SEGDIR:
	case N_FRAME:
		return fs->conf.attr_timeout;
	case N_INFO:
	case N_STATS:
		return 0;
	default:
		return 1.0;
	}
}

static mode_t read_bits(mode_t m)
{
	return m & 0444;
}

/* lstat of a mirrored path (below the mount root) as req's caller. */
static int mirror_lstat(fuse_req_t req, struct hf_fs *fs, const char *rel, struct stat *st)
{
	char real[PATH_MAX];
	struct caller c;
	int ret = real_path(fs, rel, real, sizeof(real));

	if (ret < 0)
		return ret;
	ret = caller_enter(req, &c);
	if (ret == 0)
		ret = caller_lstat(&c, real, st);
	caller_leave(&c);
	return ret;
}

/*
 * The attributes of n. A mirrored node's are the host's, looked up as req's caller
 * (known: already looked up so by this request, or NULL).
 */
static int node_stat(fuse_req_t req, struct hf_fs *fs, struct node *n, const struct stat *known,
		     struct stat *st)
{
	int ret;

	memset(st, 0, sizeof(*st));
	switch (n->kind) {
	case N_ROOT:
	case N_DIR:
	case N_FILE:
	case N_LINK:
	case N_OTHER:
		if (known) {
			*st = *known;
			break;
		}
		ret = mirror_lstat(req, fs, n->path, st);
		if (ret < 0)
			return ret;
		break;
	case N_SEGDIR:
		*st = n->src;
		st->st_mode = S_IFDIR | read_bits(n->src.st_mode) | (read_bits(n->src.st_mode) >> 2);
		st->st_nlink = 2;
		st->st_size = 4096;
		st->st_blocks = 8;
		break;
	case N_FRAME:
		*st = n->src;
		st->st_mode = S_IFREG | read_bits(n->src.st_mode);
		st->st_nlink = 1;
		st->st_size = (off_t)n->size;
		st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
		break;
	case N_INFO:
	case N_STATS:
		/*
		 * .hfinfo is readable by whoever may read its video; .hfstats names paths of
		 * every user's extractions, so only the mount's owner (and root) reads it.
		 */
		if (n->kind == N_INFO) {
			*st = n->src;
			st->st_mode = S_IFREG | read_bits(n->src.st_mode);
		} else {
			st->st_uid = getuid();
			st->st_gid = getgid();
			st->st_mtim = n->text_time;
			st->st_ctim = st->st_atim = st->st_mtim;
			st->st_mode = S_IFREG | 0400;
		}
		st->st_nlink = 1;
		st->st_size = (off_t)n->text_len;
		st->st_blocks = 0;
		break;
	}
	/*
	 * Every lookup of a text file is a new node, yet one file to clients (cp compares the
	 * inode of what it listed with what it opened): its number comes from its directory.
	 */
	st->st_ino = found_by_path(n->kind) ? n->ino : n->parent | TEXT_INO_BIT;
	st->st_blksize = 65536;
	return 0;
}

static void reply_entry_st(fuse_req_t req, struct hf_fs *fs, struct node *n,
			   const struct stat *known)
{
	struct fuse_entry_param e;
	int ret;

	memset(&e, 0, sizeof(e));
	ret = node_stat(req, fs, n, known, &e.attr);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	e.ino = n->ino;
	e.attr_timeout = e.entry_timeout = timeout_for(fs, n->kind);
	/*
	 * The kernel checks only mode bits on a cached entry: a segment of a video that not
	 * every user may open is looked up (and checked as the caller) on every path walk.
	 */
	if (n->per_caller)
		e.entry_timeout = 0;
	node_ref(fs, n);
	if (fuse_reply_entry(req, &e) != 0)
		node_forget(fs, n->ino, 1);
}

static void reply_entry(fuse_req_t req, struct hf_fs *fs, struct node *n)
{
	reply_entry_st(req, fs, n, NULL);
}

/* ---- lookup ---- */

/* Parses "frame_00007.png": the slot (0-based) or -1. Exactly %05d, no spare zeros. */
static int64_t parse_frame_name(const char *name, const char *ext)
{
	const char *p = name + 6, *dot;
	int64_t k = 0;
	size_t digits;

	if (strncmp(name, "frame_", 6) != 0)
		return -1;
	dot = strchr(p, '.');
	if (!dot || strcmp(dot + 1, ext) != 0)
		return -1;
	digits = (size_t)(dot - p);
	if (digits < 5 || digits > 12)
		return -1;
	for (const char *q = p; q < dot; q++) {
		if (*q < '0' || *q > '9')
			return -1;
		k = k * 10 + (*q - '0');
	}
	if (k < 1 || (digits > 5 && *p == '0'))
		return -1;
	return k - 1;
}

/* Times a frame given up unmade (-EAGAIN) is asked for again before the reader gets EIO. */
#define FRAME_RETRIES 3

struct lookup_wait {
	fuse_req_t req;
	struct hf_fs *fs;
	struct node *node;
	int tries;
};

static void lookup_ready(void *arg, int err, uint64_t size)
{
	struct lookup_wait *lw = arg;
	if (err == -EAGAIN && lw->tries++ < FRAME_RETRIES) {
		segment_frame_wait(lw->node->seg, lw->node->slot, lookup_ready, lw);
		return;
	}
	if (err < 0) {
		fuse_reply_err(lw->req, err == -ENOENT ? ENOENT : EIO);
	} else {
		lw->node->size = size;
		reply_entry(lw->req, lw->fs, lw->node);
	}
	free(lw);
}

static void lookup_in_segment(fuse_req_t req, struct hf_fs *fs, struct node *parent,
			      const char *name)
{
	char path[PATH_MAX];
	struct node *n;
	struct lookup_wait *lw;
	int64_t slot;
	bool unprepared;

	if (join(path, sizeof(path), parent->path, name) < 0) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (segment_stale(parent->seg)) {
		fuse_reply_err(req, ESTALE); /* the kernel looks the whole path up again */
		return;
	}
	/* holds only this segment directory; unprepared (busy, no memory): asked again later */
	unprepared = segment_prepare(parent->seg) < 0;
	if (strcmp(name, ".hfinfo") == 0) {
		int ret = node_new_text(fs, path, N_INFO, parent->ino, parent->seg, &parent->src, &n);
		if (ret < 0)
			fuse_reply_err(req, -ret);
		else
			reply_entry(req, fs, n);
		return;
	}
	slot = parse_frame_name(name, segment_ext(parent->seg));
	if (slot >= 0 && unprepared) {
		fuse_reply_err(req, EAGAIN); /* not known yet, not missing */
		return;
	}
	if (slot < 0 || slot >= segment_count(parent->seg)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	n = node_get(fs, path, N_FRAME, parent->ino, parent->seg, slot, &parent->src, NULL);
	lw = malloc(sizeof(*lw));
	if (!n || !lw) {
		free(lw);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	*lw = (struct lookup_wait){req, fs, n, 0};
	segment_frame_wait(parent->seg, slot, lookup_ready, lw);
}

static void lookup_segment(fuse_req_t req, struct hf_fs *fs, struct node *parent,
			   const char *name)
{
	struct segname sn;
	char dir[PATH_MAX], src[PATH_MAX], rel[PATH_MAX], vname[NAME_MAX + 1];
	struct stat st;
	struct segment *seg = NULL;
	struct node *n;
	bool to_all;
	int ret;

	if (segname_parse(name, &sn) < 0 || sn.name_len > NAME_MAX) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memcpy(vname, name, sn.name_len);
	vname[sn.name_len] = 0;
	if (real_path(fs, parent->path, dir, sizeof(dir)) < 0 ||
	    snprintf(src, sizeof(src), "%s/%s", strcmp(dir, "/") ? dir : "", vname) >=
		    (int)sizeof(src) ||
	    join(rel, sizeof(rel), parent->path, name) < 0) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (is_mountpoint(fs, src)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	/* As the caller: the whole path counts, and what they could not open is not read. */
	ret = caller_check_source(req, src, &st, &to_all);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	ret = engine_segment(fs->engine, src, &st, fuse_req_ctx(req)->uid, &sn, &seg);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	n = node_get(fs, rel, N_SEGDIR, parent->ino, seg, 0, &st, src);
	segment_put(&seg);
	if (!n) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n->per_caller = !to_all;
	reply_entry(req, fs, n);
}

/*
 * A segment of a video that not every user may open is checked as the caller on each
 * open of it or of its frames (the kernel checked only the mode bits it cached): 0, or
 * -errno as the caller would get it from the video, -ESTALE when the video is another.
 */
static int segment_caller_check(fuse_req_t req, struct node *segdir)
{
	struct stat st;
	bool to_all;
	int ret;

	if (!segdir->per_caller)
		return 0;
	ret = caller_check_source(req, segdir->video, &st, &to_all);
	if (ret < 0)
		return ret;
	/* the same file (or the same thing that is not one: a segment with only .hfinfo) */
	if (st.st_dev != segdir->src.st_dev || st.st_ino != segdir->src.st_ino)
		return -ESTALE;
	return 0;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct hf_fs *fs = fuse_req_userdata(req);
	struct node *p = node_by_ino(fs, parent), *n;
	char rel[PATH_MAX], real[PATH_MAX];
	struct stat st;
	int ret;

	if (!p) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	switch (p->kind) {
	case N_SEGDIR:
		lookup_in_segment(req, fs, p, name);
		return;
	case N_ROOT:
	case N_DIR:
		break;
	default:
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (join(rel, sizeof(rel), p->path, name) < 0 || real_path(fs, rel, real, sizeof(real)) < 0) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (p->kind == N_ROOT && strcmp(name, ".hfstats") == 0) {
		ret = node_new_text(fs, rel, N_STATS, p->ino, NULL, NULL, &n);
		if (ret < 0)
			fuse_reply_err(req, -ret);
		else
			reply_entry(req, fs, n);
		return;
	}
	if (is_mountpoint(fs, real) || caller_pseudo_mount(real)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	ret = mirror_lstat(req, fs, rel, &st);
	if (ret == 0) {
		n = node_get(fs, rel, kind_of(st.st_mode), p->ino, NULL, 0, NULL, NULL);
		if (!n)
			fuse_reply_err(req, ENOMEM);
		else
			reply_entry_st(req, fs, n, &st);
		return;
	}
	if (ret != -ENOENT) {
		fuse_reply_err(req, -ret);
		return;
	}
	lookup_segment(req, fs, p, name);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_forget(fuse_req_userdata(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		node_forget(fuse_req_userdata(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct hf_fs *fs = fuse_req_userdata(req);
	struct node *n = node_by_ino(fs, ino);
	struct stat st;
	int ret;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	ret = node_stat(req, fs, n, NULL, &st);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, timeout_for(fs, n->kind));
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct hf_fs *fs = fuse_req_userdata(req);
	struct node *n = node_by_ino(fs, ino);
	char real[PATH_MAX], target[PATH_MAX];
	struct caller c;
	int ret;

	if (!n || n->kind != N_LINK) {
		fuse_reply_err(req, n ? EINVAL : ESTALE);
		return;
	}
	if (real_path(fs, n->path, real, sizeof(real)) < 0) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	ret = caller_enter(req, &c);
	if (ret == 0)
		ret = caller_readlink(&c, real, target, sizeof(target));
	caller_leave(&c);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_readlink(req, target);
}

/* ---- directories ---- */

static int dirlist_add(struct dirlist *dl, const char *name, unsigned char type)
{
	if (dl->n == dl->cap) {
		size_t cap = dl->cap ? dl->cap * 2 : 64;
		void *v = realloc(dl->v, cap * sizeof(*dl->v));
		if (!v)
			return -ENOMEM;
		dl->v = v;
		dl->cap = cap;
	}
	if (!(dl->v[dl->n].name = strdup(name)))
		return -ENOMEM;
	dl->v[dl->n++].type = type;
	return 0;
}

static void dirlist_free(struct dirlist *dl)
{
	for (size_t i = 0; i < dl->n; i++)
		free(dl->v[i].name);
	free(dl->v);
	free(dl);
}

static void add_segment_name(void *arg, const char *name)
{
	dirlist_add(arg, name, DT_DIR);
}

/*
 * Reads the directory open as d into dl as the caller sees it (the mountpoint and
 * pseudo-filesystems left out); names that may have segments beside them (files,
 * symlinks) are also put in files.
 */
static int read_entries(struct hf_fs *fs, DIR *d, const char *real, struct dirlist *dl,
			struct dirlist *files)
{
	char child[PATH_MAX];
	struct dirent *de;

	while ((de = readdir(d))) {
		unsigned char type = de->d_type;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (snprintf(child, sizeof(child), "%s/%s", strcmp(real, "/") ? real : "",
			     de->d_name) >= (int)sizeof(child))
			continue;
		if (is_mountpoint(fs, child) || (type == DT_DIR && caller_pseudo_mount(child)))
			continue;
		if (dirlist_add(dl, de->d_name, type) < 0)
			return -ENOMEM;
		if ((type == DT_REG || type == DT_LNK || type == DT_UNKNOWN) &&
		    dirlist_add(files, de->d_name, type) < 0)
			return -ENOMEM;
	}
	return 0;
}

/*
 * Adds the used segments of the files in the directory open as dirfd: the engine is
 * asked as the daemon (it reads the store), and a file's segments are listed only to a
 * caller who may read the file (SPEC 6a: someone else's work is not shown).
 */
static int add_segments(fuse_req_t req, struct hf_fs *fs, int dirfd, const char *real,
			const struct dirlist *files, struct dirlist *dl)
{
	char child[PATH_MAX];
	struct caller c;
	int ret = 0;

	for (size_t i = 0; i < files->n && ret == 0; i++) {
		struct dirlist segs = {0};
		const char *name = files->v[i].name;
		if (snprintf(child, sizeof(child), "%s/%s", strcmp(real, "/") ? real : "", name) >=
		    (int)sizeof(child))
			continue;
		engine_list_segments(fs->engine, child, add_segment_name, &segs);
		if (segs.n > 0) {
			bool may = caller_enter(req, &c) == 0 &&
				   (c.self || caller_may_read_at(&c, dirfd, name));
			caller_leave(&c);
			for (size_t k = 0; may && k < segs.n && ret == 0; k++)
				ret = dirlist_add(dl, segs.v[k].name, DT_DIR);
		}
		for (size_t k = 0; k < segs.n; k++)
			free(segs.v[k].name);
		free(segs.v);
	}
	return ret;
}

/* A mirrored directory's listing, read as req's caller. */
static int list_mirror(fuse_req_t req, struct hf_fs *fs, struct node *n, struct dirlist **out)
{
	char real[PATH_MAX];
	struct dirlist *dl, files = {0};
	struct caller c;
	DIR *d = NULL;
	int fd, ret;

	ret = real_path(fs, n->path, real, sizeof(real));
	if (ret < 0)
		return ret;
	dl = calloc(1, sizeof(*dl));
	if (!dl)
		return -ENOMEM;
	ret = caller_enter(req, &c);
	fd = ret < 0 ? ret : caller_open(&c, real, O_RDONLY | O_DIRECTORY);
	if (fd >= 0 && !(d = fdopendir(fd))) {
		ret = -errno;
		close(fd);
	} else if (fd < 0) {
		ret = fd;
	}
	if (d) {
		ret = dirlist_add(dl, ".", DT_DIR);
		if (ret == 0)
			ret = dirlist_add(dl, "..", DT_DIR);
		if (ret == 0 && n->kind == N_ROOT)
			ret = dirlist_add(dl, ".hfstats", DT_REG);
		if (ret == 0)
			ret = read_entries(fs, d, real, dl, &files);
	}
	caller_leave(&c);
	if (ret == 0)
		ret = add_segments(req, fs, dirfd(d), real, &files, dl);
	for (size_t i = 0; i < files.n; i++)
		free(files.v[i].name);
	free(files.v);
	if (d)
		closedir(d);
	if (ret < 0) {
		dirlist_free(dl);
		return ret;
	}
	*out = dl;
	return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct hf_fs *fs = fuse_req_userdata(req);
	struct node *n = node_by_ino(fs, ino);
	struct dirlist *dl;
	int ret;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (n->kind == N_SEGDIR) {
		if (segment_stale(n->seg)) {
			fuse_reply_err(req, ESTALE); /* the kernel looks the path up again */
			return;
		}
		ret = segment_caller_check(req, n);
		if (ret < 0) {
			fuse_reply_err(req, -ret);
			return;
		}
		/* its count is needed to list it; a listing made unprepared (busy) is not kept */
		ret = segment_prepare(n->seg);
		fi->fh = 0;
		fi->cache_readdir = ret == 0;
		fi->keep_cache = ret == 0;
		fuse_reply_open(req, fi);
		return;
	}
	if (n->kind != N_DIR && n->kind != N_ROOT) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	ret = list_mirror(req, fs, n, &dl);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	fi->fh = (uintptr_t)dl;
	HANDOFF_PUBLISH(dl);
	fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct hf_fs *fs = fuse_req_userdata(req);
	struct node *n = node_by_ino(fs, ino);
	char *buf = malloc(size), name[64];
	size_t used = 0;
	struct stat st;

	if (!n || !buf) {
		free(buf);
		fuse_reply_err(req, n ? ENOMEM : ESTALE);
		return;
	}
	memset(&st, 0, sizeof(st));
	if (n->kind == N_SEGDIR) {
		int64_t count, total;
		segment_prepare(n->seg);
		count = segment_count(n->seg);
		total = count + 3;
		for (int64_t i = off; i < total; i++) {
			const char *nm;
			size_t len;
			if (i == 0) {
				nm = ".";
				st.st_mode = S_IFDIR;
			} else if (i == 1) {
				nm = "..";
				st.st_mode = S_IFDIR;
			} else if (i == 2) {
				nm = ".hfinfo";
				st.st_mode = S_IFREG;
			} else {
				snprintf(name, sizeof(name), "frame_%05" PRId64 ".%s", i - 2,
					 segment_ext(n->seg));
				nm = name;
				st.st_mode = S_IFREG;
			}
			st.st_ino = (ino_t)(hash_str(nm) ^ n->ino) | 1;
			len = fuse_add_direntry(req, buf + used, size - used, nm, &st, i + 1);
			if (len > size - used)
				break;
			used += len;
		}
	} else {
		struct dirlist *dl = (struct dirlist *)(uintptr_t)fi->fh;
		HANDOFF_TAKE(dl);
		for (size_t i = (size_t)off; dl && i < dl->n; i++) {
			size_t len;
			st.st_mode = (mode_t)DTTOIF(dl->v[i].type);
			st.st_ino = (ino_t)(hash_str(dl->v[i].name) ^ n->ino) | 1;
			len = fuse_add_direntry(req, buf + used, size - used, dl->v[i].name, &st,
						(off_t)i + 1);
			if (len > size - used)
				break;
			used += len;
		}
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (fi->fh) {
		HANDOFF_TAKE((void *)(uintptr_t)fi->fh);
		dirlist_free((struct dirlist *)(uintptr_t)fi->fh);
	}
	fuse_reply_err(req, 0);
}

/* ---- files ---- */

/*
 * Every open is answered here (the kernel's no-open mode would leave reads of mirrored
 * files to be done by path, as whoever asks at read time). A mirrored file is opened
 * once, as the caller, and its reads come from that descriptor: a path swapped after the
 * open changes nothing. Frames are checked as the caller when not every user may read
 * their video, and keep their pages cached between opens (they never change).
 */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct hf_fs *fs = fuse_req_userdata(req);
	struct node *n = node_by_ino(fs, ino), *dir;
	char real[PATH_MAX];
	struct caller c;
	struct stat st;
	int fd, ret;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_APPEND))) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fi->fh = 0;
	switch (n->kind) {
	case N_ROOT:
	case N_DIR:
	case N_SEGDIR:
		fuse_reply_err(req, EISDIR);
		return;
	case N_LINK:
	case N_OTHER:
		fuse_reply_err(req, EACCES);
		return;
	case N_FRAME:
		if (segment_stale(n->seg)) {
			fuse_reply_err(req, ESTALE); /* the kernel looks the path up again */
			return;
		}
		dir = node_by_ino(fs, n->parent);
		ret = dir ? segment_caller_check(req, dir) : -ESTALE;
		if (ret < 0) {
			fuse_reply_err(req, -ret);
			return;
		}
		fi->keep_cache = 1;
		break;
	case N_FILE:
		if (real_path(fs, n->path, real, sizeof(real)) < 0) {
			fuse_reply_err(req, ENAMETOOLONG);
			return;
		}
		ret = caller_enter(req, &c);
		fd = ret < 0 ? ret : caller_open(&c, real, O_RDONLY);
		caller_leave(&c);
		if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
			close(fd);
			fd = -EACCES; /* what is there now is not a file to read */
		}
		if (fd < 0) {
			fuse_reply_err(req, -fd);
			return;
		}
		fi->fh = (uint64_t)fd + 1; /* 0 is no descriptor */
		break;
	default:
		break;
	}
	if (fuse_reply_open(req, fi) != 0 && fi->fh)
		close((int)fi->fh - 1);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	if (fi->fh)
		close((int)fi->fh - 1);
	fuse_reply_err(req, 0);
}

/* Replies size bytes at off of the file open as fd (zero-copy where the kernel can). */
/* size bytes at off of the file open as fd, for libfuse to splice. */
static struct fuse_bufvec fd_bytes(int fd, size_t size, off_t off)
{
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].fd = fd;
	bv.buf[0].pos = off;
	return bv;
}

static void reply_from_fd(fuse_req_t req, int fd, size_t size, off_t off)
{
	struct fuse_bufvec bv = fd_bytes(fd, size, off);
	fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
}

static void read_frame_ready(void *arg, int err, uint64_t size);

struct read_wait {
	fuse_req_t req;
	struct node *node;
	size_t size;
	off_t off;
	int tries; /* waits that ended with the image gone or unmade (then on an engine thread) */
};

/*
 * After the first read of a frame file, the rest of it is stored straight into the
 * kernel's page cache for that file (FUSE notify_store, in pieces that fit a pipe): the
 * reader finds its next pages there instead of sending a read per 128-256 KiB, each a
 * round trip through the daemon. A piece the kernel has asked for meanwhile is simply
 * written twice, with the same bytes. Any error just leaves the rest to ordinary reads.
 *
 * The kernel stores a piece only once it holds its pages' locks, and a page asked for by
 * a pending read stays locked until that read is answered. So this runs only on loop
 * threads, never on an engine thread: the answer to such a read may have to wait for
 * the engine (an evicted image produced again), which must never wait for a push.
 */
static void push_rest(struct fuse_session *se, fuse_ino_t ino, uint64_t size, int fd,
		      uint64_t from)
{
	for (uint64_t off = from; off < size; off += PUSH_PIECE) {
		struct fuse_bufvec bv =
			fd_bytes(fd, size - off < PUSH_PIECE ? size - off : PUSH_PIECE, (off_t)off);
		int ret = fuse_lowlevel_notify_store(se, ino, (off_t)off, &bv, 0);
		if (ret < 0) {
			hf_log(HF_LOG_DEBUG, "inode %lu: pages not stored ahead: %s",
			       (unsigned long)ino, strerror(-ret));
			return;
		}
	}
}

/*
 * Replies from the frame's stored image. An image that is gone (evicted, or removed by
 * hand, while the kernel still lists the file) is produced again: the same source frame
 * and settings give the same bytes, so a reader in the middle of the file sees no seam.
 */
static void read_frame(struct read_wait *rw)
{
	int fd = segment_frame_open(rw->node->seg, rw->node->slot);
	if (fd >= 0) {
		struct hf_fs *fs = fuse_req_userdata(rw->req);
		/*
		 * Once the kernel has the reply, the reader may close the file and the kernel
		 * forget the node (freeing it on another thread): what the push needs is
		 * taken before replying.
		 */
		fuse_ino_t ino = rw->node->ino;
		uint64_t size = rw->node->size;
		reply_from_fd(rw->req, fd, rw->size, rw->off);
		if (rw->off == 0 && rw->tries == 0)
			push_rest(fs->se, ino, size, fd, rw->size);
		close(fd);
	} else if (fd == -ENOENT && rw->tries++ < 3) {
		segment_frame_lost(rw->node->seg, rw->node->slot);
		segment_frame_wait(rw->node->seg, rw->node->slot, read_frame_ready, rw);
		return;
	} else {
		fuse_reply_err(rw->req, EIO);
	}
	free(rw);
}

static void read_frame_ready(void *arg, int err, uint64_t size)
{
	struct read_wait *rw = arg;
	(void)size;
	if (err == -EAGAIN && rw->tries++ < FRAME_RETRIES) {
		segment_frame_wait(rw->node->seg, rw->node->slot, read_frame_ready, rw);
		return;
	}
	if (err < 0) {
		fuse_reply_err(rw->req, EIO);
		free(rw);
		return;
	}
	read_frame(rw);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct hf_fs *fs = fuse_req_userdata(req);
	struct node *n = node_by_ino(fs, ino);
	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	switch (n->kind) {
	case N_INFO:
	case N_STATS: {
		/*
		 * The node's text never changes, but reply from a copy: once the kernel has the
		 * reply, the reader may close the file and the kernel may forget the node,
		 * freeing the text on another thread while writev() is still returning.
		 */
		size_t len = (size_t)off >= n->text_len ? 0 : n->text_len - (size_t)off;
		char *copy;
		len = len < size ? len : size;
		copy = malloc(len ? len : 1);
		if (!copy) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		memcpy(copy, n->text + (len ? off : 0), len);
		fuse_reply_buf(req, copy, len);
		free(copy);
		return;
	}
	case N_FRAME: {
		struct read_wait *rw = malloc(sizeof(*rw));
		if (!rw) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		if (off == 0) {
			engine_count_served(fs->engine);
			ahead_note(fs->ahead, n->seg, n->slot); /* this frame and the next ones */
		}
		*rw = (struct read_wait){req, n, size, off, 0};
		read_frame(rw);
		return;
	}
	case N_FILE:
		if (!fi->fh) {
			fuse_reply_err(req, EBADF);
			return;
		}
		reply_from_fd(req, (int)fi->fh - 1, size, off);
		return;
	default:
		fuse_reply_err(req, EISDIR);
	}
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct hf_fs *fs = fuse_req_userdata(req);
	struct statvfs sv;
	if (statvfs(fs->conf.source_root, &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fuse_reply_statfs(req, &sv);
}

/* ---- source changes ---- */

/*
 * The source watch calls this: every segment directory whose video changed is dropped
 * from the kernel's dentry cache, with its frames, so the next path walk looks it up
 * again and gets the new source's segment (new inode numbers, no old pages). Nodes are
 * collected under the lock and compared and dropped outside it: the kernel's invalidation
 * can wait for requests that take the lock.
 */
static void check_sources(void *arg)
{
	struct hf_fs *fs = arg;
	struct seen {
		fuse_ino_t ino, parent;
		struct segment *seg;
		char *name;
	} *v = NULL;
	size_t n = 0, cap = 0;
	struct node *d;

	pthread_mutex_lock(&fs->lock);
	for (d = fs->segdirs; d; d = d->next_seg)
		cap += !d->dropped;
	v = cap ? calloc(cap, sizeof(*v)) : NULL;
	for (d = fs->segdirs; v && d && n < cap; d = d->next_seg) {
		const char *slash = strrchr(d->path, '/');
		if (d->dropped || !(v[n].name = strdup(slash ? slash + 1 : d->path)))
			continue;
		v[n].ino = d->ino;
		v[n].parent = d->parent;
		segment_get(d->seg);
		v[n++].seg = d->seg;
	}
	pthread_mutex_unlock(&fs->lock);
	for (size_t i = 0; i < n; i++) {
		if (segment_stale(v[i].seg)) {
			int ret = fuse_lowlevel_notify_inval_entry(fs->se, v[i].parent, v[i].name,
								   strlen(v[i].name));
			if (ret < 0 && ret != -ENOENT)
				hf_log(HF_LOG_WARN, "cannot drop %s from the kernel's cache: %s",
				       v[i].name, strerror(-ret));
			pthread_mutex_lock(&fs->lock);
			if ((d = node_find_locked(fs, v[i].ino)))
				d->dropped = true;
			pthread_mutex_unlock(&fs->lock);
		}
		segment_put(&v[i].seg);
		free(v[i].name);
	}
	free(v);
}

/* ---- everything that would write ---- */

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	fuse_reply_err(req, EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fuse_reply_err(req, EROFS);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	fuse_reply_err(req, EROFS);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, EROFS);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/*
	 * libfuse 3.14 does not ask for parallel directory operations by default: without
	 * them the kernel lets one lookup at a time into a directory, so a video being
	 * indexed held every other name beside it. Lookups here take our own locks.
	 */
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS;
	/* Nothing is written: this only lets the kernel ask for up to 1 MiB per read. */
	conn->max_write = 1 << 20;
}

static const struct fuse_lowlevel_ops hf_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.statfs = op_statfs,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_unlink,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.create = op_create,
	.write = op_write,
};

int fs_new(const struct hf_conf *conf, const char *mountpoint, struct hf_fs **out)
{
	struct hf_fs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->conf = *conf;
	fs->mountpoint = strdup(mountpoint);
	if (!fs->mountpoint) {
		free(fs);
		return -ENOMEM;
	}
	pthread_mutex_init(&fs->lock, NULL);
	caller_init();
	fs->next_ino = FUSE_ROOT_ID + 1;
	fs->root.ino = FUSE_ROOT_ID;
	fs->root.path = "";
	fs->root.kind = N_ROOT;
	*out = fs;
	return 0;
}

void fs_set_engine(struct hf_fs *fs, struct engine *e)
{
	int ret;
	fs->engine = e;
	ret = watch_start(check_sources, fs, WATCH_PERIOD_MS, &fs->watch);
	if (ret < 0)
		hf_log(HF_LOG_WARN, "cannot watch videos for changes (%s): a changed video is "
		       "noticed only when its segment directory is opened", strerror(-ret));
	ret = ahead_start(READ_AHEAD_FRAMES, &fs->ahead);
	if (ret < 0)
		hf_log(HF_LOG_WARN, "no read-ahead of stored frames: %s", strerror(-ret));
}

void fs_stop(struct hf_fs *fs)
{
	watch_stop(&fs->watch);
	ahead_stop(&fs->ahead);
}

struct fuse_session *fs_session_new(struct hf_fs *fs, struct fuse_args *args)
{
	fs->se = fuse_session_new(args, &hf_ops, sizeof(hf_ops), fs);
	return fs->se;
}

void fs_free(struct hf_fs **pfs)
{
	struct hf_fs *fs = pfs ? *pfs : NULL;
	if (!fs)
		return;
	fs_stop(fs);
	for (size_t b = 0; b < NBUCKETS; b++) {
		struct node *n = fs->by_ino[b];
		while (n) {
			struct node *next = n->next_ino;
			node_free(n);
			n = next;
		}
	}
	pthread_mutex_destroy(&fs->lock);
	free(fs->mountpoint);
	free(fs);
	*pfs = NULL;
}
