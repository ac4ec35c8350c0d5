/*
 * engine sources: who a source is (its identity, content ids kept in memory and in the
 * store), the two hash tables, and the sources: finding or creating the one whose window
 * holds a segment's, indexing that window once (from the ranges the store knows, or by
 * reading the video), and freeing it.
 *
 * Locking: engine->lock guards the tables, the content ids, each source's users, wanted
 * window and ready flag; src->lock guards open_path and file. The index is written once
 * by the builder before ready, then read-only. known_lock makes each read-merge-write of
 * a known-ranges blob one step.
 */
#include "fs/engine_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/caller.h"
#include "fs/log.h"

/* ---- the two hash tables (engine lock) ---- */

static uint64_t str_hash(const char *a)
{
	uint64_t h = 1469598103934665603ull;
	for (; *a; a++)
		h = (h ^ (unsigned char)*a) * 1099511628211ull;
	return h;
}

size_t eng_seg_bucket(const struct engine *e, const struct hf_key *k)
{
	uint64_t h;
	memcpy(&h, k->b, sizeof(h)); /* SHA-256 bytes are already uniform */
	return (size_t)h & (e->segments_cap - 1);
}

/* Every format of a video in one chain: leases are looked at across them. */
static size_t src_bucket(const struct engine *e, const char *identity)
{
	return (size_t)str_hash(identity) & (e->sources_cap - 1);
}

/* Doubles a table once it holds twice as many entries as buckets. */
void eng_grow_segments(struct engine *e)
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
			size_t nb = (size_t)str_hash(src->identity) & (cap - 1);
			e->sources[b] = src->next;
			src->next = t[nb];
			t[nb] = src;
		}
	free(e->sources);
	e->sources = t;
	e->sources_cap = cap;
}

struct segment *eng_seg_find_locked(struct engine *e, const struct hf_key *key, const char *path)
{
	for (struct segment *s = e->segments[eng_seg_bucket(e, key)]; s; s = s->next)
		if (memcmp(&s->key, key, sizeof(*key)) == 0 && (!path || strcmp(s->path, path) == 0))
			return s;
	return NULL;
}

/* Drops a use of a source taken by eng_source_get (a segment, or a job). */
void eng_source_put(struct engine *e, struct source *src)
{
	pthread_mutex_lock(&e->lock);
	src->users--;
	pthread_mutex_unlock(&e->lock);
}

/* ---- sources ---- */

struct image_opts eng_opts_for(const struct engine *e, const struct segname *sn)
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

struct tf_spec eng_tf_for(const struct segname *sn)
{
	static const enum tf_fit fits[] = {
		[SEG_FIT_NONE] = TF_FIT_NONE, [SEG_FIT_FILL] = TF_FIT_FILL,
		[SEG_FIT_CONTAIN] = TF_FIT_CONTAIN, [SEG_FIT_COVER] = TF_FIT_COVER};
	static const enum tf_tonemap tms[] = {
		[SEG_TM_NONE] = TF_TM_NONE, [SEG_TM_HABLE] = TF_TM_HABLE,
		[SEG_TM_REINHARD] = TF_TM_REINHARD, [SEG_TM_MOBIUS] = TF_TM_MOBIUS,
		[SEG_TM_CLIP] = TF_TM_CLIP};
	return (struct tf_spec){.w = sn->w, .h = sn->h, .fit = fits[sn->fit],
				.bt2020 = sn->bt2020, .tonemap = tms[sn->tonemap]};
}

/* What the source's images are, once it is indexed: see struct source. */
static void decide_output(struct source *src)
{
	struct tf_spec asked = src->tf;
	char applied[96];
	size_t n;
	int depth;

	snprintf(src->key_fmt, sizeof(src->key_fmt), "%s", src->fmt);
	if (!src->idx)
		return;
	src->matrix = source_guess_matrix(src->idx, src->untagged_cli);
	src->matrix_guessed = src->idx->matrix == SOURCE_MATRIX_UNSPECIFIED;
	{
		struct tf_input in = extract_tf_input(src->idx);
		tf_effective(&asked, &in, &src->tf, src->tf_note, sizeof(src->tf_note));
	}
	src->out_err = extract_out_size(src->idx, &src->opts, &src->tf, &src->out_w, &src->out_h,
					&depth, src->out_why, sizeof(src->out_why));
	/*
	 * The plain images' format, then what the transforms that apply change. A scale
	 * without a crop is keyed by the size it gives: w=320 and w=320,h=180 of a 16:9
	 * video are one scale to 320x180, the same pixels, one image.
	 */
	n = strcspn(src->fmt, "|");
	{
		struct tf_spec k = src->tf;
		if ((k.w || k.h) && k.fit != TF_FIT_COVER && src->out_err == 0) {
			k.w = src->out_w;
			k.h = src->out_h;
			k.fit = TF_FIT_FILL;
		}
		if (tf_canon(&k, applied, sizeof(applied)) < 0)
			applied[0] = 0;
	}
	/*
	 * A guessed matrix changes the pixels: the images of an untagged source say which
	 * guess made them (those made before guesses were keyed are never served for one).
	 */
	snprintf(src->key_fmt, sizeof(src->key_fmt), "%.*s%s%s%s", (int)n, src->fmt,
		 applied[0] ? "|" : "", applied,
		 !src->matrix_guessed		     ? ""
		 : src->matrix == SOURCE_MATRIX_BT709 ? "|guess=bt709"
						   : "|guess=bt601");
}

/*
 * The very file, unchanged: the same inode (device and number), size and mtime, and the
 * same ctime and owner, so a chmod, chown or ACL change (ctime), or a file recreated under
 * a reused inode number (ctime, owner), is a different file.
 */
bool eng_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec &&
	       a->st_uid == b->st_uid;
}

/*
 * Opens path again for reading, as the daemon, but only if it is still the very file a
 * caller opened (want: same device, inode, size, mtime, ctime and owner) and a regular
 * file: a path swapped since for a link to another file, a FIFO or a device is never read
 * (-ESTALE). Resolved without magic links (fs/caller.h), non-blocking, so nothing a user
 * put there can hold the thread.
 */
int eng_source_file_open(const char *path, const struct stat *want)
{
	struct stat st;
	struct caller self = {.self = true};
	int fd = caller_open(&self, path, O_RDONLY); /* no magic link, no pseudo-filesystem */
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !eng_same_file(&st, want)) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

/*
 * The stamp that names one state of one file: device, inode, size, mtime, ctime and
 * owner. ctime cannot be set by a user (utimensat sets it to now), so a file recreated
 * at a reused inode with a forged size and mtime still has another stamp.
 */
static void file_stamp(const struct stat *sb, char *buf, size_t len)
{
	snprintf(buf, len, "%llu:%llu:%lld:%lld.%09ld:%lld.%09ld:%lu",
		 (unsigned long long)sb->st_dev, (unsigned long long)sb->st_ino,
		 (long long)sb->st_size, (long long)sb->st_mtim.tv_sec, sb->st_mtim.tv_nsec,
		 (long long)sb->st_ctim.tv_sec, sb->st_ctim.tv_nsec, (unsigned long)sb->st_uid);
}

/*
 * identity = content: the SHA-256 of the file's bytes, computed once per file stamp
 * (file_stamp) and remembered in memory and in the store, so a copy hits the same
 * frames. The owner is part of the identity ("sha256:HEX:uid=N"): a copy by the same
 * owner hits, another owner's identical file does not, so whether some user holds a
 * video is never learnt from a hit, and a forged stamp could not reach another
 * owner's frames even if it collided.
 */
static int content_identity(struct engine *e, const char *path, const struct stat *sb, char **out)
{
	char stamp[160], hex[HF_KEY_HEXLEN + 1];
	unsigned long uid = (unsigned long)sb->st_uid;
	struct content_id *c;
	struct hf_key sk, h;
	void *blob = NULL;
	size_t len;
	int fd, ret;

	file_stamp(sb, stamp, sizeof(stamp));
	pthread_mutex_lock(&e->lock);
	for (c = e->content_ids; c; c = c->next)
		if (strcmp(c->stamp, stamp) == 0)
			break;
	if (c) {
		ret = asprintf(out, "sha256:%s:uid=%lu", c->hex, uid);
		pthread_mutex_unlock(&e->lock);
		return ret < 0 ? -ENOMEM : 0;
	}
	pthread_mutex_unlock(&e->lock);

	key_string("content-of-2", stamp, &sk);
	if (store_blob_get(e->store, "cid", &sk, &blob, &len) == 0 && len == HF_KEY_HEXLEN &&
	    key_from_hex(blob, &h) == 0) {
		memcpy(hex, blob, HF_KEY_HEXLEN);
		hex[HF_KEY_HEXLEN] = 0;
	} else {
		fd = eng_source_file_open(path, sb);
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
	return asprintf(out, "sha256:%s:uid=%lu", hex, uid) < 0 ? -ENOMEM : 0;
}

/*
 * Who a source is. identity = stat: "stat2:" and the file stamp (device, inode, size,
 * mtime, ctime, owner) and the path; identity = content: its bytes and its owner. A
 * changed, chmod'ed, chown'ed or recreated file is new. The "stat2" tag keeps every key
 * made under the old rule (path, size, mtime: "stat:") from being served under this one.
 * sb is what the caller found at path (NULL: stat it here).
 */
int eng_source_identity(struct engine *e, const char *path, const struct stat *sb, char **out)
{
	char stamp[160];
	struct stat own;
	char *id;
	if (!sb) {
		if (stat(path, &own) < 0)
			return -errno;
		sb = &own;
	}
	if (e->conf.identity == HF_IDENTITY_CONTENT)
		return content_identity(e, path, sb, out);
	file_stamp(sb, stamp, sizeof(stamp));
	if (asprintf(&id, "stat2:%s:%s", stamp, path) < 0)
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
	eng_index_used_locked(e, &k);
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
	ret = eng_source_file_open(src->open_path, &src->file);
	if (ret >= 0) {
		int fd = ret;
		uint64_t now, peak, budget, cap, held = atomic_load(&e->packets_held);
		/*
		 * Kept for the first decode: all sources' together within a quarter of
		 * decode.memory (64 MiB when it is unbounded); past it the decode reads them again.
		 */
		extract_memory(&now, &peak, &budget);
		cap = budget ? budget / 4 : (uint64_t)64 << 20;
		ret = source_index_build_keep(fd, src->path, src->want_start, src->want_dur,
					      &src->idx, &bytes, src->error, sizeof(src->error),
					      cap > held ? cap - held : 0, &src->packets);
		atomic_fetch_add(&e->packets_held, source_packets_bytes(src->packets));
		close(fd);
	} else {
		snprintf(src->error, sizeof(src->error), "%s changed while it was being opened",
			 source_name(src->path));
	}
	atomic_fetch_add(&e->index_bytes, bytes);
	src->index_bytes = bytes;
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

/* A window being built that will hold this one too: the segment's [start, start + dur] lies
 * within the window [a, a + ad] the source was made for. */
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
struct source *eng_source_get(struct engine *e, const char *path, const struct stat *file,
			      const char *identity, const struct image_opts *opts,
			      const struct segname *sn)
{
	struct tf_spec tf = eng_tf_for(sn);
	char fmt[192], tfc[96];
	struct source *src;
	int n = image_opts_canon(opts, fmt, sizeof(fmt));

	if (n > 0 && tf_canon(&tf, tfc, sizeof(tfc)) > 0)
		n += snprintf(fmt + n, sizeof(fmt) - (size_t)n, "|%s", tfc);
	if (n > 0 && (size_t)n < sizeof(fmt) && sn->untagged_cli)
		snprintf(fmt + n, sizeof(fmt) - (size_t)n, "|untagged=cli");
	pthread_mutex_lock(&e->lock);
again:
	/*
	 * A window of this video that holds the segment's, built or being built for a window
	 * that holds it; else a new one (windows of one video are built in parallel).
	 */
	for (src = e->sources[src_bucket(e, identity)]; src; src = src->next)
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
	key_string("known", identity, &src->known_key);
	src->file = *file;
	src->opts = *opts;
	src->tf = tf;
	src->untagged_cli = sn->untagged_cli;
	src->want_start = sn->start;
	src->want_dur = sn->dur;
	snprintf(src->fmt, sizeof(src->fmt), "%s", fmt);
	src->damaged_at = SIZE_MAX;
	src->users = 1; /* the caller's */
	pthread_mutex_init(&src->lock, NULL);
	pthread_cond_init(&src->unpaused, NULL);
	grow_sources(e);
	{
		size_t b = src_bucket(e, identity);
		src->next = e->sources[b];
		e->sources[b] = src;
	}
	e->nsources++;
	pthread_mutex_unlock(&e->lock);

	/* a clip being opened gets the cores, as one decoding toward its first frame does */
	eng_starting_enter(e);
	build_index(e, src);
	decide_output(src);
	eng_starting_leave(e);
	if (src->idx) {
		src->fs = calloc(src->idx->n, sizeof(*src->fs));
		if (!src->fs) {
			source_index_free(&src->idx);
			eng_packets_free(src->e, &src->packets);
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

struct source *eng_source_chain_locked(struct engine *e, const struct source *src)
{
	return e->sources[src_bucket(e, src->identity)];
}

void eng_packets_free(struct engine *e, struct source_packets **pk)
{
	if (*pk)
		atomic_fetch_sub(&e->packets_held, source_packets_bytes(*pk));
	source_packets_free(pk);
}

void eng_source_free(struct source *src)
{
	source_index_free(&src->idx);
	eng_packets_free(src->e, &src->packets);
	free(src->fs);
	free(src->path);
	free(src->open_path);
	free(src->identity);
	pthread_mutex_destroy(&src->lock);
	pthread_cond_destroy(&src->unpaused);
	free(src);
}

void eng_image_key(const struct source *src, size_t frame, struct hf_key *k)
{
	key_image(src->identity, src->idx->stream, src->idx->pts[frame], src->key_fmt, k);
}
