/*
 * Census and eviction of the store. See gc.h for the model; the store layout is in
 * store.h. Only readdir, stat, read and unlink are used, so this works the same on a
 * store shared over NFS or CephFS, and on a store no hfmount has mounted.
 */
#include "cache/gc.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

struct image {
	struct hf_key key;
	char ext[8];
	bool used;   /* slot holds an image */
	bool stored; /* found under img/ (a manifest may name one that is not) */
	bool pinned;
	bool gone;
	bool counted_missing;
	uint32_t refs;  /* manifests naming it */
	size_t stamp;   /* last unit that counted it, + 1 */
	uint64_t size;  /* bytes */
	uint64_t named_size; /* the size a complete manifest records for it, 0 if none */
	uint64_t disk;  /* bytes allocated */
	int64_t mtime_ns;
};

struct census {
	struct store *st;
	struct image *tab; /* open addressing, capacity a power of two */
	size_t cap, n;
	struct gc_unit *units;
	size_t nunits, units_cap;
	struct census_totals totals;
	const atomic_bool *cancel; /* stops the walk when set (the mount is going away) */
};

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static size_t key_hash(const struct hf_key *k)
{
	size_t h;
	memcpy(&h, k->b, sizeof(h)); /* SHA-256 bytes are already uniform */
	return h;
}

static int tab_grow(struct census *c)
{
	size_t cap = c->cap ? c->cap * 2 : 1024;
	struct image *tab = calloc(cap, sizeof(*tab));

	if (!tab)
		return -ENOMEM;
	for (size_t i = 0; i < c->cap; i++) {
		size_t j;
		if (!c->tab[i].used)
			continue;
		for (j = key_hash(&c->tab[i].key) & (cap - 1); tab[j].used; j = (j + 1) & (cap - 1))
			;
		tab[j] = c->tab[i];
	}
	free(c->tab);
	c->tab = tab;
	c->cap = cap;
	return 0;
}

/* The entry of key k; with create, a new empty one when absent (NULL on ENOMEM). */
static struct image *tab_get(struct census *c, const struct hf_key *k, bool create)
{
	size_t j;

	if (create && (c->n + 1) * 2 > c->cap && tab_grow(c) < 0)
		return NULL;
	if (!c->cap)
		return NULL;
	for (j = key_hash(k) & (c->cap - 1); c->tab[j].used; j = (j + 1) & (c->cap - 1))
		if (memcmp(&c->tab[j].key, k, sizeof(*k)) == 0)
			return &c->tab[j];
	if (!create)
		return NULL;
	c->tab[j].used = true;
	c->tab[j].key = *k;
	c->n++;
	return &c->tab[j];
}

static struct gc_unit *unit_add(struct census *c, enum gc_kind kind, const char *path,
				int64_t last_use_ns)
{
	struct gc_unit *u;

	if (c->nunits == c->units_cap) {
		size_t cap = c->units_cap ? c->units_cap * 2 : 64;
		struct gc_unit *v = realloc(c->units, cap * sizeof(*v));
		if (!v)
			return NULL;
		c->units = v;
		c->units_cap = cap;
	}
	u = &c->units[c->nunits];
	memset(u, 0, sizeof(*u));
	u->kind = kind;
	u->last_use_ns = last_use_ns;
	u->path = strdup(path);
	if (!u->path)
		return NULL;
	c->nunits++;
	return u;
}

/* "<64 hex>.<ext>" into key and ext; false for anything else. */
static bool parse_name(const char *name, struct hf_key *k, char *ext, size_t extlen,
		       const char *want_ext)
{
	const char *dot = strchr(name, '.');

	if (!dot || dot - name != HF_KEY_HEXLEN || key_from_hex(name, k) < 0)
		return false;
	if (want_ext && strcmp(dot + 1, want_ext) != 0)
		return false;
	if (strlen(dot + 1) == 0 || strlen(dot + 1) >= extlen || strchr(dot + 1, '.'))
		return false;
	snprintf(ext, extlen, "%s", dot + 1);
	return true;
}

typedef int (*walk_fn)(struct census *c, const char *path, const char *name,
		       const struct stat *sb);

/* Calls fn for every regular file of d (open on path), then closes d: 0 or fn's error. */
static int walk_dir(struct census *c, DIR *d, const char *path, walk_fn fn)
{
	char file[PATH_MAX];
	struct dirent *de;
	struct stat sb;
	int ret = 0;

	while (ret == 0 && (de = readdir(d))) {
		if (c->cancel && atomic_load(c->cancel)) {
			ret = -ECANCELED;
			break;
		}
		if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &sb, 0) < 0 ||
		    !S_ISREG(sb.st_mode))
			continue;
		snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
		ret = fn(c, file, de->d_name, &sb);
	}
	closedir(d);
	return ret;
}

/* Calls fn for every regular file of every subdirectory of STORE/top (img/, seg/). */
static int walk2(struct census *c, const char *top, walk_fn fn)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int ret = 0;

	snprintf(path, sizeof(path), "%s/%s", store_dir(c->st), top);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while (ret == 0 && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		DIR *sub;
		snprintf(path, sizeof(path), "%s/%s/%s", store_dir(c->st), top, de->d_name);
		sub = opendir(path);
		if (sub) /* one that cannot be opened is passed over */
			ret = walk_dir(c, sub, path, fn);
	}
	closedir(d);
	return ret;
}

/* Calls fn for every regular file of STORE/top (flat: idx/, lock/). */
static int walk1(struct census *c, const char *top, walk_fn fn)
{
	char path[PATH_MAX];
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", store_dir(c->st), top);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	return walk_dir(c, d, path, fn);
}

/* A unit of one file that goes by its own mtime; counted in *count and *bytes. */
static int add_file_unit(struct census *c, enum gc_kind kind, const char *path,
			 const struct stat *sb, const struct hf_key *k, uint64_t size,
			 uint64_t *count, uint64_t *bytes)
{
	struct gc_unit *u = unit_add(c, kind, path, ts_ns(&sb->st_mtim));

	if (!u)
		return -ENOMEM;
	u->key = *k;
	u->file_bytes = size;
	(*count)++;
	*bytes += size;
	return 0;
}

/* idx/<key>.idx and idx/<key>.cid: one unit each, by their own mtime. */
static int scan_index(struct census *c, const char *path, const char *name, const struct stat *sb)
{
	struct hf_key k;
	char ext[8];

	if (!parse_name(name, &k, ext, sizeof(ext), NULL) ||
	    (strcmp(ext, "idx") != 0 && strcmp(ext, "cid") != 0))
		return 0; /* not ours: never removed */
	return add_file_unit(c, GC_INDEX, path, sb, &k, (uint64_t)sb->st_size,
			     &c->totals.indexes, &c->totals.index_bytes);
}

/* lock/<key>.lock: one unit each; whether it is held is asked when it would go. */
static int scan_lease(struct census *c, const char *path, const char *name, const struct stat *sb)
{
	struct hf_key k;
	char ext[8];

	if (!parse_name(name, &k, ext, sizeof(ext), "lock"))
		return 0;
	return add_file_unit(c, GC_LEASE, path, sb, &k, STORE_LEASE_BYTES, &c->totals.leases,
			     &c->totals.lease_bytes);
}

static int scan_image(struct census *c, const char *path, const char *name, const struct stat *sb)
{
	struct hf_key k;
	char ext[8];
	struct image *im;

	(void)path;
	if (!parse_name(name, &k, ext, sizeof(ext), NULL))
		return 0;
	im = tab_get(c, &k, true);
	if (!im)
		return -ENOMEM;
	snprintf(im->ext, sizeof(im->ext), "%s", ext);
	im->stored = true;
	im->size = (uint64_t)sb->st_size;
	im->disk = (uint64_t)sb->st_blocks * 512;
	im->mtime_ns = ts_ns(&sb->st_mtim);
	c->totals.images++;
	c->totals.bytes += im->size;
	return 0;
}

static int scan_manifest(struct census *c, const char *path, const char *name,
			 const struct stat *sb)
{
	struct hf_key k;
	char ext[8];
	struct manifest *m = NULL;
	struct gc_unit *u;
	enum gc_kind kind;
	int ret;

	if (parse_name(name, &k, ext, sizeof(ext), "seg"))
		kind = GC_SEGMENT;
	else if (parse_name(name, &k, ext, sizeof(ext), "pending"))
		kind = GC_PARTIAL;
	else
		return 0;
	ret = manifest_read(path, &m);
	if (ret == -EINVAL)
		kind = GC_DAMAGED;
	else if (ret < 0)
		return 0; /* removed meanwhile, or unreadable: not ours to judge */
	u = unit_add(c, kind, path, kind == GC_DAMAGED ? 0 : ts_ns(&sb->st_mtim));
	if (!u) {
		manifest_free(&m);
		return -ENOMEM;
	}
	u->key = k;
	u->m = m;
	u->manifest_bytes = (uint64_t)sb->st_size;
	c->totals.manifest_bytes += u->manifest_bytes;
	if (kind == GC_SEGMENT)
		c->totals.segments++;
	else if (kind == GC_PARTIAL)
		c->totals.partials++;
	else
		c->totals.damaged++;
	return 0;
}

/* Counts, for every manifest, the images it names (once each) and who else names them. */
static int count_refs(struct census *c)
{
	for (size_t i = 0; i < c->nunits; i++) {
		struct gc_unit *u = &c->units[i];
		for (size_t s = 0; u->m && s < u->m->nimages; s++) {
			struct image *im = tab_get(c, &u->m->image[s], true);
			if (!im)
				return -ENOMEM;
			if (im->stamp == i + 1)
				continue;
			im->stamp = i + 1;
			im->refs++;
			if (u->kind == GC_SEGMENT && !im->named_size)
				im->named_size = u->m->size[s];
			if (!im->stored && u->kind == GC_SEGMENT && !im->counted_missing) {
				im->counted_missing = true;
				c->totals.missing++;
			}
		}
	}
	for (size_t i = 0; i < c->cap; i++)
		c->tab[i].stamp = 0;
	for (size_t i = 0; i < c->nunits; i++) {
		struct gc_unit *u = &c->units[i];
		for (size_t s = 0; u->m && s < u->m->nimages; s++) {
			struct image *im = tab_get(c, &u->m->image[s], false);
			if (im->stamp == i + 1 || !im->stored)
				continue;
			im->stamp = i + 1;
			u->images++;
			u->bytes += im->size;
			if (im->refs == 1) {
				u->own_images++;
				u->own_bytes += im->size;
			}
		}
	}
	for (size_t i = 0; i < c->cap; i++)
		c->tab[i].stamp = 0; /* free for store_gc */
	return 0;
}

static int add_unnamed(struct census *c)
{
	char path[PATH_MAX];

	for (size_t i = 0; i < c->cap; i++) {
		struct image *im = &c->tab[i];
		struct gc_unit *u;
		if (!im->used || !im->stored || im->refs > 0)
			continue;
		store_image_path(c->st, &im->key, im->ext, path, sizeof(path));
		u = unit_add(c, GC_IMAGE, path, im->mtime_ns);
		if (!u)
			return -ENOMEM;
		u->key = im->key;
		u->images = u->own_images = 1;
		u->bytes = u->own_bytes = im->size;
		c->totals.unnamed_images++;
		c->totals.unnamed_bytes += im->size;
	}
	return 0;
}

static int by_last_use(const void *a, const void *b)
{
	const struct gc_unit *x = a, *y = b;
	if (x->last_use_ns != y->last_use_ns)
		return x->last_use_ns < y->last_use_ns ? -1 : 1;
	return strcmp(x->path, y->path);
}

static int census_take_until(struct store *st, const atomic_bool *cancel, struct census **out)
{
	struct census *c = calloc(1, sizeof(*c));
	int ret;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->st = st;
	c->cancel = cancel;
	ret = walk2(c, "img", scan_image);
	if (ret == 0)
		ret = walk2(c, "seg", scan_manifest);
	if (ret == 0)
		ret = walk1(c, "idx", scan_index);
	if (ret == 0)
		ret = walk1(c, "lock", scan_lease);
	if (ret == 0)
		ret = count_refs(c);
	if (ret == 0)
		ret = add_unnamed(c);
	if (ret < 0) {
		census_free(&c);
		return ret;
	}
	if (c->nunits > 1)
		qsort(c->units, c->nunits, sizeof(*c->units), by_last_use);
	*out = c;
	return 0;
}

int census_take(struct store *st, struct census **out)
{
	return census_take_until(st, NULL, out);
}

void census_free(struct census **pc)
{
	struct census *c = pc ? *pc : NULL;
	if (!c)
		return;
	for (size_t i = 0; i < c->nunits; i++) {
		free(c->units[i].path);
		manifest_free(&c->units[i].m);
	}
	free(c->units);
	free(c->tab);
	free(c);
	*pc = NULL;
}

size_t census_units(const struct census *c)
{
	return c->nunits;
}

const struct gc_unit *census_unit(const struct census *c, size_t i)
{
	return i < c->nunits ? &c->units[i] : NULL;
}

void census_totals(const struct census *c, struct census_totals *t)
{
	*t = c->totals;
}

uint64_t census_bytes(const struct census_totals *t)
{
	return t->bytes + t->manifest_bytes + t->index_bytes + t->lease_bytes;
}

void census_images(const struct census *c,
		   void (*fn)(void *arg, const struct hf_key *k, const char *ext, const char *path,
			      uint64_t size, uint64_t named_size),
		   void *arg)
{
	char path[PATH_MAX];

	for (size_t i = 0; i < c->cap; i++) {
		const struct image *im = &c->tab[i];
		if (!im->used || !im->stored)
			continue;
		store_image_path(c->st, &im->key, im->ext, path, sizeof(path));
		fn(arg, &im->key, im->ext, path, im->size, im->named_size);
	}
}

uint64_t store_free_bytes(struct store *st)
{
	struct statvfs sv;
	if (statvfs(store_dir(st), &sv) < 0)
		return UINT64_MAX;
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

static void pin_add(void *set, const struct hf_key *k)
{
	struct image *im = tab_get(set, k, false);
	if (im)
		im->pinned = true;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts_ns(&ts);
}

/* Removes one image no kept manifest names; true when its bytes are freed. */
static bool drop_image(struct census *c, struct image *im, bool dry)
{
	char path[PATH_MAX];

	if (im->refs > 0 || im->pinned || im->gone || !im->stored)
		return false;
	if (!dry) {
		store_image_path(c->st, &im->key, im->ext, path, sizeof(path));
		if (unlink(path) < 0 && errno != ENOENT)
			return false;
	}
	im->gone = true;
	return true;
}

/*
 * Removes a lease file nobody holds: locked whole without waiting, unlinked under that
 * lock. A holder of any range, or one that opened the file and locks it later, finds
 * it unlinked (store_lease_try_range checks) and takes its lease on a new file. True
 * when it is gone (or, dry, would be).
 */
static bool drop_lease(const char *path, bool dry)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	bool gone = false;
	int fd = open(path, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT;
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
		goto out_close; /* held: in use */
	gone = dry || unlink(path) == 0 || errno == ENOENT;
out_close:
	close(fd); /* the lock goes with it */
	return gone;
}

/*
 * Removes unit i (an index, an unnamed image, or a manifest with the images only it
 * names) unless the caller or the in-use window keeps it. True when it went (or, dry,
 * would go): freed and nfreed say what, avail grows by the space given back.
 */
static bool remove_unit(struct census *c, struct gc_unit *u, size_t i, const struct gc_opts *o,
			int64_t now, struct gc_result *r, uint64_t *freed, uint64_t *nfreed,
			uint64_t *avail)
{
	enum gc_keep keep = o->keep ? o->keep(o->arg, u) : GC_ASK_WINDOW;

	if (keep == GC_KEEP || (keep == GC_ASK_WINDOW && now - u->last_use_ns < o->in_use_ns)) {
		r->kept_in_use++;
		return false;
	}
	if (u->kind == GC_INDEX) {
		if (!o->dry_run && unlink(u->path) < 0 && errno != ENOENT)
			return false;
		*freed = u->file_bytes;
		r->indexes_removed++;
		if (*avail != UINT64_MAX)
			*avail += u->file_bytes;
	} else if (u->kind == GC_IMAGE) {
		struct image *im = tab_get(c, &u->key, false);
		if (!im || !drop_image(c, im, o->dry_run))
			return false;
		*freed = im->size;
		*nfreed = 1;
		if (*avail != UINT64_MAX)
			*avail += im->disk;
	} else {
		if (!o->dry_run && unlink(u->path) < 0 && errno != ENOENT)
			return false;
		*freed += u->manifest_bytes;
		for (size_t s = 0; u->m && s < u->m->nimages; s++) {
			struct image *im = tab_get(c, &u->m->image[s], false);
			if (!im || im->stamp == i + 1)
				continue;
			im->stamp = i + 1; /* each image once per manifest */
			if (im->refs > 0)
				im->refs--;
			if (drop_image(c, im, o->dry_run)) {
				*freed += im->size;
				(*nfreed)++;
				if (*avail != UINT64_MAX)
					*avail += im->disk;
			}
		}
		if (u->kind == GC_SEGMENT)
			r->segments_removed++;
	}
	return true;
}

int store_gc(struct store *st, const struct gc_opts *o, struct gc_result *r)
{
	struct census *c;
	uint64_t target_bytes, target_free, bytes, avail, images;
	int64_t now = now_ns();
	int ret;

	memset(r, 0, sizeof(*r));
	ret = census_take_until(st, o->cancel, &c);
	if (ret < 0)
		return ret;
	bytes = census_bytes(&c->totals); /* everything hfmount writes counts toward max_size */
	images = c->totals.images;
	avail = o->min_free ? store_free_bytes(st) : UINT64_MAX;
	r->bytes_before = bytes;
	if (o->want_free && avail == UINT64_MAX)
		avail = store_free_bytes(st);
	r->free_before = avail;
	r->over = (o->max_size && bytes > o->max_size) || (o->min_free && avail < o->min_free) ||
		  (o->want_free && avail < o->want_free);
	target_bytes = o->max_size ? o->max_size - o->max_size / 10 : UINT64_MAX;
	target_free = o->min_free ? o->min_free + o->min_free / 10 : 0;
	if (target_free < o->want_free)
		target_free = o->want_free;
	if (o->pins && r->over)
		o->pins(o->arg, pin_add, c);

	for (size_t i = 0; r->over && i < c->nunits; i++) {
		struct gc_unit *u = &c->units[i];
		uint64_t freed = 0, nfreed = 0;

		if (bytes <= target_bytes && avail >= target_free)
			break;
		if (u->kind == GC_LEASE) {
			/* its lock is what says it is in use: no window, no caller's guess */
			if (!drop_lease(u->path, o->dry_run)) {
				r->kept_in_use++;
				continue;
			}
			freed = u->file_bytes;
			r->leases_removed++;
		} else if (!remove_unit(c, u, i, o, now, r, &freed, &nfreed, &avail)) {
			continue;
		}
		bytes -= freed;
		images -= nfreed;
		r->units_removed++;
		r->images_removed += nfreed;
		r->bytes_removed += freed;
		if (o->removed)
			o->removed(o->arg, u, nfreed, freed);
	}
	r->bytes_after = bytes;
	r->free_after = avail;
	r->within = (!o->max_size || bytes <= o->max_size) && (!o->min_free || avail >= o->min_free) &&
		    (!o->want_free || avail >= o->want_free);
	if (!o->dry_run)
		store_usage_set(st, images, bytes);
	census_free(&c);
	return 0;
}
