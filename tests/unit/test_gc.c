/*
 * gc: the census of real temporary stores (segments, partials, unnamed images, damaged
 * manifests, missing images, per-unit, own and manifest bytes, LRU order) and eviction
 * (bounds, which manifests count toward, shared images, pins, the keep callback and
 * in-use window, dry runs, want_free, min_free, usage counters), plus opening an
 * existing store.
 *
 * Manifest sizes depend on the manifest format, so byte figures and bounds are written
 * as image bytes plus the sizes of the manifest files the fixture wrote (from stat).
 *
 * Last use is set with explicit mtimes (store_manifest_touch, utimensat), never by
 * sleeping. Every store lives in its own mkdtemp directory, removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/gc.h"
#include "cache/store.h"
#include "hftest.h"

#define NS  1000000000LL
#define T0  1600000000LL /* an old last use, in seconds since the epoch */
#define EXT "png"

struct fixture {
	char dir[64];
	struct store *st;
};

/* A segment (or partial) as the tests build it: name, source path and key. */
struct seg {
	const char *name;
	char source[128];
	struct hf_key key;
};

static bool fix_open(struct fixture *f)
{
	char err[256] = "";

	snprintf(f->dir, sizeof(f->dir), "/tmp/hfgcXXXXXX");
	f->st = NULL;
	if (!CHECK(mkdtemp(f->dir) != NULL))
		return false;
	if (!CHECK_EQ_INT(store_open(f->dir, &(struct store_opts){0}, &f->st, err, sizeof(err)),
			  0)) {
		fprintf(stderr, "store_open: %s\n", err);
		return false;
	}
	return true;
}

static void rm_rf(const char *dir)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK_EQ_INT(system(cmd), 0);
}

static void fix_close(struct fixture *f)
{
	store_close(&f->st);
	if (f->dir[0] && strcmp(f->dir, "/tmp/hfgcXXXXXX") != 0)
		rm_rf(f->dir);
}

static void set_mtime(const char *path, int64_t when_s)
{
	struct timespec ts[2] = {{(time_t)when_s, 0}, {(time_t)when_s, 0}};
	CHECK_EQ_INT(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void image_path(struct fixture *f, const struct hf_key *k, char *buf, size_t len)
{
	store_image_path(f->st, k, EXT, buf, len);
}

/* Stores an image of size bytes named after name; its mtime is T0 unless set later. */
static void put_image(struct fixture *f, const char *name, size_t size, struct hf_key *k)
{
	char *data = malloc(size), path[512];

	if (!CHECK(data != NULL))
		return;
	memset(data, 'a' + (int)(size % 26), size);
	key_string("test-image", name, k);
	CHECK_EQ_INT(store_image_put(f->st, k, EXT, data, size), 0);
	free(data);
	image_path(f, k, path, sizeof(path));
	set_mtime(path, T0);
}

static bool image_exists(struct fixture *f, const struct hf_key *k)
{
	char path[512];
	image_path(f, k, path, sizeof(path));
	return access(path, F_OK) == 0;
}

static void image_unlink(struct fixture *f, const struct hf_key *k)
{
	char path[512];
	image_path(f, k, path, sizeof(path));
	CHECK_EQ_INT(unlink(path), 0);
}

/* Bytes the filesystem allocates for a stored image (what freeing it gives back). */
static uint64_t image_disk(struct fixture *f, const struct hf_key *k)
{
	char path[512];
	struct stat sb;
	image_path(f, k, path, sizeof(path));
	if (!CHECK_EQ_INT(stat(path, &sb), 0))
		return 0;
	return (uint64_t)sb.st_blocks * 512;
}

/*
 * Writes a complete (or partial) manifest naming n images, with their stored sizes (0 for
 * a partial's image not yet stored), and sets its last use to when_s.
 */
static void put_seg(struct fixture *f, struct seg *s, const char *name, const struct hf_key *im,
		    int n, bool partial, int64_t when_s)
{
	uint64_t size[16] = {0};
	int64_t first[16];
	struct manifest m = {0};

	s->name = name;
	snprintf(s->source, sizeof(s->source), "/videos/%s.mp4", name);
	key_string("test-segment", name, &s->key);
	for (int i = 0; i < n && i < 16; i++)
		if (store_image_size(f->st, &im[i], EXT, &size[i]) < 0)
			size[i] = 0;
	m.segment = (char *)name;
	m.source = s->source;
	m.identity = "stat:test:1";
	m.count = n;
	m.width = 320;
	m.height = 240;
	snprintf(m.ext, sizeof(m.ext), EXT);
	m.image = (struct hf_key *)im;
	m.size = size;
	m.nimages = (size_t)n;
	m.first = first;
	for (int i = 0; i < n && i < 16; i++)
		first[i] = i; /* one slot per image */
	if (partial)
		CHECK_EQ_INT(store_partial_put(f->st, &s->key, &m), 0);
	else
		CHECK_EQ_INT(store_manifest_put(f->st, &s->key, &m), 0);
	CHECK_EQ_INT(store_manifest_touch(f->st, s->source, &s->key, when_s * NS), 0);
}

/* The manifest's path, computed from the layout store.h documents. */
static void seg_path(struct fixture *f, const struct seg *s, const char *suffix, char *buf,
		     size_t len)
{
	char phex[HF_KEY_HEXLEN + 1], shex[HF_KEY_HEXLEN + 1];
	struct hf_key pk;

	key_string("path", s->source, &pk);
	key_hex(&pk, phex);
	key_hex(&s->key, shex);
	snprintf(buf, len, "%s/seg/%.32s/%s.%s", f->dir, phex, shex, suffix);
}

static bool seg_exists(struct fixture *f, const struct seg *s, const char *suffix)
{
	char path[512];
	seg_path(f, s, suffix, path, sizeof(path));
	return access(path, F_OK) == 0;
}

/* A file's size from stat (0, and a failed check, when there is none). */
static uint64_t file_bytes(const char *path)
{
	struct stat sb;
	if (!CHECK_EQ_INT(stat(path, &sb), 0))
		return 0;
	return (uint64_t)sb.st_size;
}

/* The bytes of a segment's manifest ("seg") or partial ("pending"): they count toward max_size. */
static uint64_t seg_bytes(struct fixture *f, const struct seg *s, const char *suffix)
{
	char path[512];
	seg_path(f, s, suffix, path, sizeof(path));
	return file_bytes(path);
}

/* Writes garbage under a complete manifest's name, last used at when_s; its path into buf. */
static void put_damaged(struct fixture *f, const char *name, int64_t when_s, char *buf, size_t len)
{
	struct seg s;
	char dir[512];
	FILE *fp;

	s.name = name;
	snprintf(s.source, sizeof(s.source), "/videos/%s.mp4", name);
	key_string("test-segment", name, &s.key);
	seg_path(f, &s, "seg", buf, len);
	snprintf(dir, sizeof(dir), "%s", buf);
	*strrchr(dir, '/') = 0;
	CHECK_EQ_INT(mkdir(dir, 0755), 0);
	fp = fopen(buf, "w");
	if (!CHECK(fp != NULL))
		return;
	fputs("this is not\na manifest\n", fp);
	fclose(fp);
	set_mtime(buf, when_s);
}

/* ---- a listing of a whole directory tree: name, type, size and mtime of everything ---- */

static char **listing_lines;
static size_t listing_n, listing_cap;
static size_t listing_root_len;

static int listing_add(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	char line[1024];
	(void)ftw;
	if (listing_n == listing_cap) {
		listing_cap = listing_cap ? listing_cap * 2 : 64;
		listing_lines = realloc(listing_lines, listing_cap * sizeof(*listing_lines));
		if (!listing_lines)
			return -1;
	}
	snprintf(line, sizeof(line), "%s %c %lld %lld.%09ld", path + listing_root_len,
		 type == FTW_D ? 'd' : 'f', (long long)sb->st_size, (long long)sb->st_mtim.tv_sec,
		 sb->st_mtim.tv_nsec);
	listing_lines[listing_n++] = strdup(line);
	return 0;
}

static int by_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A malloc'ed, sorted listing of dir, one line per file or directory. */
static char *listing(const char *dir)
{
	size_t len = 1;
	char *out, *p;

	listing_n = 0;
	listing_root_len = strlen(dir);
	if (nftw(dir, listing_add, 16, FTW_PHYS) != 0)
		return strdup("(nftw failed)");
	qsort(listing_lines, listing_n, sizeof(*listing_lines), by_str);
	for (size_t i = 0; i < listing_n; i++)
		len += strlen(listing_lines[i]) + 1;
	out = p = malloc(len);
	for (size_t i = 0; i < listing_n; i++) {
		p += sprintf(p, "%s\n", listing_lines[i]);
		free(listing_lines[i]);
	}
	*p = 0;
	free(listing_lines);
	listing_lines = NULL;
	listing_cap = listing_n = 0;
	return out;
}

/* ---- the bytes of every manifest file in a store, found by walking it ---- */

static uint64_t manifests_sum;

static int manifest_add(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	const char *dot = strrchr(path + ftw->base, '.');
	if (type == FTW_F && dot && (strcmp(dot, ".seg") == 0 || strcmp(dot, ".pending") == 0))
		manifests_sum += (uint64_t)sb->st_size;
	return 0;
}

/* Bytes of all manifests under STORE/seg: complete, partial and damaged. */
static uint64_t manifests_on_disk(struct fixture *f)
{
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/seg", f->dir);
	manifests_sum = 0;
	CHECK_EQ_INT(nftw(dir, manifest_add, 16, FTW_PHYS), 0);
	return manifests_sum;
}

/* ---- what the removed callback reports ---- */

struct removals {
	int n;
	char line[32][700];
	uint64_t images, bytes;
};

static void record_removed(void *arg, const struct gc_unit *u, uint64_t images, uint64_t bytes)
{
	struct removals *r = arg;
	if (r->n < 32)
		snprintf(r->line[r->n], sizeof(r->line[0]), "%d %s %s %llu %llu", (int)u->kind,
			 u->m ? u->m->segment : "-", u->path, (unsigned long long)images,
			 (unsigned long long)bytes);
	r->n++;
	r->images += images;
	r->bytes += bytes;
}

/* The census unit of a segment or partial by name, or of an unnamed image by key. */
static const struct gc_unit *unit_of_seg(const struct census *c, const char *name)
{
	for (size_t i = 0; i < census_units(c); i++) {
		const struct gc_unit *u = census_unit(c, i);
		if (u->m && strcmp(u->m->segment, name) == 0)
			return u;
	}
	return NULL;
}

static long unit_index(const struct census *c, const struct gc_unit *u)
{
	for (size_t i = 0; i < census_units(c); i++)
		if (census_unit(c, i) == u)
			return (long)i;
	return -1;
}

struct image_sum {
	int n;
	uint64_t bytes;
	uint64_t named_a1, named_u, named_p1;
	struct hf_key a1, u, p1;
};

static void sum_image(void *arg, const struct hf_key *k, const char *ext, const char *path,
		      uint64_t size, uint64_t named_size)
{
	struct image_sum *s = arg;
	CHECK_EQ_STR(ext, EXT);
	CHECK(access(path, F_OK) == 0);
	s->n++;
	s->bytes += size;
	if (memcmp(k, &s->a1, sizeof(*k)) == 0)
		s->named_a1 = named_size;
	if (memcmp(k, &s->u, sizeof(*k)) == 0)
		s->named_u = named_size;
	if (memcmp(k, &s->p1, sizeof(*k)) == 0)
		s->named_p1 = named_size;
}

/* ---- census ---- */

static void test_census(void)
{
	struct fixture f;
	struct census *c = NULL;
	struct census_totals t;
	struct hf_key a1, a2, sh, b1, p1, p2, u, m1, m2;
	struct seg a, b, p, m;
	char damaged[512], upath[512];
	const struct gc_unit *ua, *ub, *up, *um, *uu = NULL, *ud = NULL;
	struct image_sum is = {0};
	uint64_t ma, mb, mp, mm, md;

	if (!fix_open(&f))
		goto out;
	put_image(&f, "a1", 100, &a1);
	put_image(&f, "a2", 200, &a2);
	put_image(&f, "shared", 300, &sh);
	put_image(&f, "b1", 400, &b1);
	put_image(&f, "p1", 500, &p1);
	key_string("test-image", "p2", &p2); /* the partial's next image, not stored yet */
	put_image(&f, "unnamed", 600, &u);
	put_image(&f, "m1", 700, &m1);
	put_image(&f, "m2", 800, &m2);

	/* a still frame: a2 in two slots counts once */
	put_seg(&f, &a, "a", (struct hf_key[]){a1, a2, sh, a2}, 4, false, T0 + 20);
	put_seg(&f, &b, "b", (struct hf_key[]){sh, b1}, 2, false, T0 + 40);
	put_seg(&f, &p, "p", (struct hf_key[]){p1, p2}, 2, true, T0 + 50);
	put_seg(&f, &m, "m", (struct hf_key[]){m1, m2}, 2, false, T0 + 10);
	image_unlink(&f, &m2); /* m names an image that is no longer stored */
	image_path(&f, &u, upath, sizeof(upath));
	set_mtime(upath, T0 + 30);
	put_damaged(&f, "damaged", T0 + 60, damaged, sizeof(damaged));
	CHECK(seg_exists(&f, &a, "seg"));
	CHECK(!seg_exists(&f, &p, "seg"));
	CHECK(seg_exists(&f, &p, "pending")); /* store_partial_put's suffix */
	ma = seg_bytes(&f, &a, "seg");
	mb = seg_bytes(&f, &b, "seg");
	mp = seg_bytes(&f, &p, "pending");
	mm = seg_bytes(&f, &m, "seg");
	md = file_bytes(damaged);
	CHECK(ma > 0 && mb > 0 && mp > 0 && mm > 0 && md > 0);

	/* touching a segment that has neither manifest nor partial */
	{
		struct hf_key nokey;
		key_string("test-segment", "none", &nokey);
		CHECK_EQ_INT(store_manifest_touch(f.st, "/videos/none.mp4", &nokey, T0 * NS),
			     -ENOENT);
	}

	if (!CHECK_EQ_INT(census_take(f.st, &c), 0) || !CHECK(c != NULL))
		goto out;
	census_totals(c, &t);
	CHECK_EQ_INT(t.images, 7); /* a1 a2 shared b1 p1 unnamed m1 */
	CHECK_EQ_INT(t.bytes, 100 + 200 + 300 + 400 + 500 + 600 + 700); /* images alone */
	CHECK_EQ_INT(t.unnamed_images, 1);
	CHECK_EQ_INT(t.unnamed_bytes, 600);
	CHECK_EQ_INT(t.segments, 3);
	CHECK_EQ_INT(t.partials, 1);
	CHECK_EQ_INT(t.damaged, 1);
	CHECK_EQ_INT(t.missing, 1); /* m2; a partial's unproduced p2 is not missing */
	/* every manifest file counts: complete, partial and damaged */
	CHECK_EQ_INT(t.manifest_bytes, ma + mb + mp + mm + md);
	CHECK_EQ_INT(t.manifest_bytes, manifests_on_disk(&f));

	/* one unit per manifest (damaged too) and per unnamed image */
	CHECK_EQ_INT(census_units(c), 6);
	CHECK(census_unit(c, census_units(c)) == NULL);
	for (size_t i = 0; i < census_units(c); i++) {
		const struct gc_unit *x = census_unit(c, i);
		if (i > 0)
			CHECK(census_unit(c, i - 1)->last_use_ns <= x->last_use_ns);
		if (x->kind == GC_IMAGE)
			uu = x;
		if (x->kind == GC_DAMAGED)
			ud = x;
	}
	ua = unit_of_seg(c, "a");
	ub = unit_of_seg(c, "b");
	up = unit_of_seg(c, "p");
	um = unit_of_seg(c, "m");
	if (!CHECK(ua && ub && up && um && uu && ud))
		goto out;

	/* least recently used first: m (T0+10), a (+20), unnamed (+30), b (+40), p (+50) */
	CHECK(unit_index(c, um) < unit_index(c, ua));
	CHECK(unit_index(c, ua) < unit_index(c, uu));
	CHECK(unit_index(c, uu) < unit_index(c, ub));
	CHECK(unit_index(c, ub) < unit_index(c, up));
	CHECK_EQ_INT(um->last_use_ns, (T0 + 10) * NS);
	CHECK_EQ_INT(uu->last_use_ns, (T0 + 30) * NS);
	CHECK_EQ_INT(up->last_use_ns, (T0 + 50) * NS);

	CHECK_EQ_INT(ua->kind, GC_SEGMENT);
	CHECK(memcmp(&ua->key, &a.key, sizeof(a.key)) == 0);
	CHECK_EQ_INT(ua->m->count, 4);
	CHECK_EQ_STR(ua->m->source, a.source);
	CHECK_EQ_INT(ua->images, 3); /* a1 a2 shared, each once */
	CHECK_EQ_INT(ua->bytes, 600);
	CHECK_EQ_INT(ua->own_images, 2); /* shared is b's too */
	CHECK_EQ_INT(ua->own_bytes, 300);
	CHECK_EQ_INT(ua->manifest_bytes, ma); /* not in bytes, which are its images' */

	CHECK_EQ_INT(ub->kind, GC_SEGMENT);
	CHECK_EQ_INT(ub->images, 2);
	CHECK_EQ_INT(ub->bytes, 700);
	CHECK_EQ_INT(ub->own_images, 1);
	CHECK_EQ_INT(ub->own_bytes, 400);
	CHECK_EQ_INT(ub->manifest_bytes, mb);

	CHECK_EQ_INT(up->kind, GC_PARTIAL);
	CHECK(memcmp(&up->key, &p.key, sizeof(p.key)) == 0);
	CHECK_EQ_INT(up->images, 1); /* p1; p2 is not stored */
	CHECK_EQ_INT(up->bytes, 500);
	CHECK_EQ_INT(up->own_images, 1);
	CHECK_EQ_INT(up->own_bytes, 500);
	CHECK_EQ_INT(up->manifest_bytes, mp);

	CHECK_EQ_INT(um->images, 1); /* m2 is missing */
	CHECK_EQ_INT(um->bytes, 700);
	CHECK_EQ_INT(um->own_images, 1);
	CHECK_EQ_INT(um->own_bytes, 700);
	CHECK_EQ_INT(um->manifest_bytes, mm);

	CHECK(memcmp(&uu->key, &u, sizeof(u)) == 0);
	CHECK_EQ_STR(uu->path, upath);
	CHECK(uu->m == NULL);
	CHECK_EQ_INT(uu->images, 1);
	CHECK_EQ_INT(uu->bytes, 600);
	CHECK_EQ_INT(uu->own_images, 1);
	CHECK_EQ_INT(uu->own_bytes, 600);
	CHECK_EQ_INT(uu->manifest_bytes, 0); /* an unnamed image has no manifest */

	CHECK_EQ_STR(ud->path, damaged);
	CHECK(ud->m == NULL);
	CHECK_EQ_INT(ud->images, 0);
	CHECK_EQ_INT(ud->manifest_bytes, md); /* unparsable, but its bytes are stored */

	/* every stored image once, with the size a complete manifest records for it */
	is.a1 = a1;
	is.u = u;
	is.p1 = p1;
	is.named_u = is.named_p1 = 99;
	census_images(c, sum_image, &is);
	CHECK_EQ_INT(is.n, 7);
	CHECK_EQ_INT(is.bytes, t.bytes);
	CHECK_EQ_INT(is.named_a1, 100);
	CHECK_EQ_INT(is.named_u, 0);
	CHECK_EQ_INT(is.named_p1, 0); /* only a partial names it */

	/* the census reads, it changes nothing */
	CHECK(access(damaged, F_OK) == 0);
	census_free(&c);
	CHECK(c == NULL);
	census_free(&c);
out:
	census_free(&c);
	fix_close(&f);
}

/*
 * totals.missing counts an absent image once, however many complete manifests name it,
 * like every other image count of the census (it once counted per manifest).
 */
static void test_census_missing_shared(void)
{
	struct fixture f;
	struct census *c = NULL;
	struct census_totals t;
	struct hf_key x, gone;
	struct seg s1, s2;

	if (!fix_open(&f))
		goto out;
	put_image(&f, "x", 100, &x);
	put_image(&f, "gone", 100, &gone);
	put_seg(&f, &s1, "s1", (struct hf_key[]){x, gone}, 2, false, T0);
	put_seg(&f, &s2, "s2", (struct hf_key[]){gone}, 1, false, T0 + 1);
	image_unlink(&f, &gone);
	if (!CHECK_EQ_INT(census_take(f.st, &c), 0))
		goto out;
	census_totals(c, &t);
	CHECK_EQ_INT(t.images, 1);
	CHECK_EQ_INT(t.missing, 1);
out:
	census_free(&c);
	fix_close(&f);
}

/* ---- eviction ---- */

/* n segments of one 1000-byte image each, "s0".."s<n-1>", last used at T0 + when[i]. */
static void put_chain(struct fixture *f, struct seg *s, struct hf_key *im, const char **names,
		      const int *when, int n)
{
	for (int i = 0; i < n; i++) {
		put_image(f, names[i], 1000, &im[i]);
		put_seg(f, &s[i], names[i], &im[i], 1, false, T0 + when[i]);
	}
}

static void test_gc_within_bounds(void)
{
	static const char *names[] = {"w0", "w1", "w2"};
	struct fixture f;
	struct seg s[3];
	struct hf_key im[3];
	struct gc_result r;
	struct removals rec = {0};
	struct gc_opts o = {.max_size = 10000, .removed = record_removed, .arg = &rec};
	char *before = NULL, *after = NULL;
	uint64_t man = 0; /* the three manifests */

	if (!fix_open(&f))
		goto out;
	put_chain(&f, s, im, names, (const int[]){1, 2, 3}, 3);
	for (int i = 0; i < 3; i++)
		man += seg_bytes(&f, &s[i], "seg");
	before = listing(f.dir);
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	after = listing(f.dir);
	CHECK(!r.over);
	CHECK(r.within);
	CHECK_EQ_INT(r.bytes_before, 3000 + man);
	CHECK_EQ_INT(r.bytes_after, 3000 + man);
	CHECK_EQ_INT(r.units_removed, 0);
	CHECK_EQ_INT(r.images_removed, 0);
	CHECK_EQ_INT(rec.n, 0);
	CHECK_EQ_STR(after, before);

	/* exactly at max_size (images and manifests) is within; no bound at all is never over */
	o.max_size = 3000 + man;
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK(!r.over);
	CHECK(r.within);
	o.max_size = 0;
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK(!r.over);
	CHECK(r.within);
	free(after);
	after = listing(f.dir);
	CHECK_EQ_STR(after, before);
	CHECK_EQ_INT(rec.n, 0);
out:
	free(before);
	free(after);
	fix_close(&f);
}

static void test_gc_lru(void)
{
	/* created in one order, used in another: last use decides, not creation */
	static const char *names[] = {"l0", "l1", "l2", "l3", "l4"};
	static const int when[] = {30, 10, 50, 20, 40};
	struct fixture f;
	struct seg s[5];
	struct hf_key im[5];
	struct gc_result r;
	struct removals rec = {0};
	struct gc_opts o = {.removed = record_removed, .arg = &rec};
	struct census *c = NULL;
	struct census_totals t;
	uint64_t images, bytes, m[5], man = 0;
	char path[512], want[700];

	if (!fix_open(&f))
		goto out;
	put_chain(&f, s, im, names, when, 5);
	for (int i = 0; i < 5; i++)
		man += m[i] = seg_bytes(&f, &s[i], "seg");
	/*
	 * 5000 + man > 4000 + man: down to 90% of that (3600 + 0.9 man) takes the two least
	 * recently used, l1 and l3, each with its manifest: l1 alone leaves 4000 + man - m1.
	 */
	o.max_size = 4000 + man;
	CHECK(4000 + man - m[1] > o.max_size - o.max_size / 10);
	CHECK(3000 + m[0] + m[2] + m[4] <= o.max_size - o.max_size / 10);
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK(r.over);
	CHECK(r.within);
	CHECK_EQ_INT(r.bytes_before, 5000 + man);
	CHECK_EQ_INT(r.bytes_after, 3000 + m[0] + m[2] + m[4]);
	CHECK_EQ_INT(r.units_removed, 2);
	CHECK_EQ_INT(r.segments_removed, 2);
	CHECK_EQ_INT(r.images_removed, 2);
	CHECK_EQ_INT(r.bytes_removed, 2000 + m[1] + m[3]);
	CHECK_EQ_INT(r.kept_in_use, 0);
	for (int i = 0; i < 5; i++) {
		bool gone = i == 1 || i == 3;
		CHECK_EQ_INT(seg_exists(&f, &s[i], "seg"), !gone);
		CHECK_EQ_INT(image_exists(&f, &im[i]), !gone);
	}
	if (CHECK_EQ_INT(rec.n, 2)) {
		seg_path(&f, &s[1], "seg", path, sizeof(path));
		snprintf(want, sizeof(want), "%d l1 %s 1 %llu", GC_SEGMENT, path,
			 (unsigned long long)(1000 + m[1]));
		CHECK_EQ_STR(rec.line[0], want);
		seg_path(&f, &s[3], "seg", path, sizeof(path));
		snprintf(want, sizeof(want), "%d l3 %s 1 %llu", GC_SEGMENT, path,
			 (unsigned long long)(1000 + m[3]));
		CHECK_EQ_STR(rec.line[1], want);
	}

	/* the usage counters now agree with what is on disk */
	store_usage(f.st, &images, &bytes);
	if (CHECK_EQ_INT(census_take(f.st, &c), 0)) {
		census_totals(c, &t);
		CHECK_EQ_INT(t.images, 3);
		CHECK_EQ_INT(t.bytes, 3000);
		CHECK_EQ_INT(t.manifest_bytes, m[0] + m[2] + m[4]);
		CHECK_EQ_INT(images, t.images);
		CHECK_EQ_INT(bytes, t.bytes + t.manifest_bytes);
		CHECK_EQ_INT(census_units(c), 3);
	}
out:
	census_free(&c);
	fix_close(&f);
}

static void test_gc_shared_images(void)
{
	struct fixture f;
	struct hf_key x, y, z;
	struct seg a, b;
	struct gc_result r;
	struct removals rec = {0};
	struct gc_opts o = {.removed = record_removed, .arg = &rec};
	uint64_t ma, mb;

	if (!fix_open(&f))
		goto out;
	put_image(&f, "x", 1000, &x);
	put_image(&f, "y", 1000, &y);
	put_image(&f, "z", 1000, &z);
	put_seg(&f, &a, "a", (struct hf_key[]){x, y}, 2, false, T0);	 /* older */
	put_seg(&f, &b, "b", (struct hf_key[]){y, z}, 2, false, T0 + 5); /* newer, kept */
	ma = seg_bytes(&f, &a, "seg");
	mb = seg_bytes(&f, &b, "seg");

	/*
	 * 3000 + ma + mb > 2500 + ma + mb: a goes, with x and its manifest; y stays because b,
	 * which is kept (2000 + mb is below 90% of the bound), names it
	 */
	o.max_size = 2500 + ma + mb;
	CHECK(2000 + mb <= o.max_size - o.max_size / 10);
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK(r.over);
	CHECK(r.within);
	CHECK_EQ_INT(r.units_removed, 1);
	CHECK_EQ_INT(r.images_removed, 1);
	CHECK_EQ_INT(r.bytes_removed, 1000 + ma);
	CHECK_EQ_INT(r.bytes_after, 2000 + mb);
	CHECK(!seg_exists(&f, &a, "seg"));
	CHECK(!image_exists(&f, &x));
	CHECK(image_exists(&f, &y));
	CHECK(image_exists(&f, &z));
	CHECK(seg_exists(&f, &b, "seg"));
	CHECK_EQ_INT(rec.n, 1);
	CHECK_EQ_INT(rec.images, 1);
	CHECK_EQ_INT(rec.bytes, 1000 + ma);

	/* once b goes too, y goes with it */
	o.max_size = 500;
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK(r.over);
	CHECK(r.within);
	CHECK_EQ_INT(r.images_removed, 2);
	CHECK_EQ_INT(r.bytes_after, 0);
	CHECK(!seg_exists(&f, &b, "seg"));
	CHECK(!image_exists(&f, &y));
	CHECK(!image_exists(&f, &z));
	CHECK_EQ_INT(rec.n, 2);
	CHECK_EQ_INT(rec.images, 3);
	CHECK_EQ_INT(rec.bytes, 3000 + ma + mb);
out:
	fix_close(&f);
}

/*
 * Manifests count toward max_size: a store whose images alone are within the bound and
 * whose images and manifests are not is over it, and evicted; a segment whose image a
 * kept segment names still frees its manifest's bytes.
 */
static void test_gc_manifests_count(void)
{
	static const char *names[] = {"c0", "c1", "c2"};
	struct fixture f;
	struct seg s[3], a, b;
	struct hf_key im[3], x;
	struct gc_result r;
	struct removals rec = {0};
	struct gc_opts o = {.removed = record_removed, .arg = &rec};
	struct census *c = NULL;
	struct census_totals t;
	uint64_t m[3], man = 0, ma, mb, images, bytes;

	if (!fix_open(&f))
		goto out;
	put_chain(&f, s, im, names, (const int[]){1, 2, 3}, 3);
	for (int i = 0; i < 3; i++)
		man += m[i] = seg_bytes(&f, &s[i], "seg");
	if (!CHECK_EQ_INT(census_take(f.st, &c), 0))
		goto out;
	census_totals(c, &t);
	CHECK_EQ_INT(t.bytes, 3000);
	CHECK_EQ_INT(t.manifest_bytes, man);
	CHECK_EQ_INT(t.manifest_bytes, manifests_on_disk(&f));
	census_free(&c);

	/* 3000 bytes of images are within 2999 + man; with their manifests they are not */
	o.max_size = 3000 + man - 1;
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK(r.over);
	CHECK(r.within);
	CHECK_EQ_INT(r.bytes_before, 3000 + man);
	/* the least recently used, c0, goes: 2000 + m1 + m2 is below 90% of the bound */
	CHECK_EQ_INT(r.units_removed, 1);
	CHECK_EQ_INT(r.segments_removed, 1);
	CHECK_EQ_INT(r.images_removed, 1);
	CHECK_EQ_INT(r.bytes_removed, 1000 + m[0]);
	CHECK_EQ_INT(r.bytes_after, 2000 + m[1] + m[2]);
	CHECK_EQ_INT(rec.n, 1);
	CHECK_EQ_INT(rec.bytes, 1000 + m[0]);
	CHECK(!seg_exists(&f, &s[0], "seg"));
	CHECK(!image_exists(&f, &im[0]));
	for (int i = 1; i < 3; i++) {
		CHECK(seg_exists(&f, &s[i], "seg"));
		CHECK(image_exists(&f, &im[i]));
	}
	CHECK_EQ_INT(manifests_on_disk(&f), m[1] + m[2]);
	store_usage(f.st, &images, &bytes);
	CHECK_EQ_INT(images, 2);
	CHECK_EQ_INT(bytes, 2000 + m[1] + m[2]);
	fix_close(&f);

	/* two manifests of one image, over the bound by a manifest: the older one goes alone */
	if (!fix_open(&f))
		goto out;
	put_image(&f, "x", 100, &x);
	put_seg(&f, &a, "a", &x, 1, false, T0);	    /* older */
	put_seg(&f, &b, "b", &x, 1, false, T0 + 1); /* newer, kept */
	ma = seg_bytes(&f, &a, "seg");
	mb = seg_bytes(&f, &b, "seg");
	o.max_size = 100 + ma + mb - 1;
	CHECK(100 + mb <= o.max_size - o.max_size / 10);
	memset(&rec, 0, sizeof(rec));
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK(r.over);
	CHECK(r.within);
	CHECK_EQ_INT(r.bytes_before, 100 + ma + mb);
	CHECK_EQ_INT(r.units_removed, 1);
	CHECK_EQ_INT(r.segments_removed, 1);
	CHECK_EQ_INT(r.images_removed, 0); /* b still names x */
	CHECK_EQ_INT(r.bytes_removed, ma);
	CHECK_EQ_INT(r.bytes_after, 100 + mb);
	CHECK_EQ_INT(rec.n, 1);
	CHECK_EQ_INT(rec.images, 0);
	CHECK_EQ_INT(rec.bytes, ma);
	CHECK(!seg_exists(&f, &a, "seg"));
	CHECK(seg_exists(&f, &b, "seg"));
	CHECK(image_exists(&f, &x));
out:
	census_free(&c);
	fix_close(&f);
}

struct pin_set {
	struct hf_key k[4];
	int n, calls;
};

static void pin_these(void *arg, void (*add)(void *set, const struct hf_key *k), void *set)
{
	struct pin_set *p = arg;
	p->calls++;
	for (int i = 0; i < p->n; i++)
		add(set, &p->k[i]);
}

static void test_gc_pins(void)
{
	struct fixture f;
	struct hf_key x, y, z, u;
	struct seg a, b;
	struct pin_set pins = {0};
	struct gc_result r;
	struct gc_opts o = {.max_size = 1, .pins = pin_these, .arg = &pins};
	char upath[512];
	uint64_t images, bytes;

	if (!fix_open(&f))
		goto out;
	put_image(&f, "x", 1000, &x);
	put_image(&f, "y", 1000, &y);
	put_image(&f, "z", 1000, &z);
	put_image(&f, "u", 1000, &u); /* unnamed */
	image_path(&f, &u, upath, sizeof(upath));
	set_mtime(upath, T0 + 1);
	put_seg(&f, &a, "a", (struct hf_key[]){x, y}, 2, false, T0);
	put_seg(&f, &b, "b", (struct hf_key[]){z}, 1, false, T0 + 2);
	pins.k[0] = x; /* named by an evicted segment */
	pins.k[1] = u; /* unnamed */
	pins.n = 2;

	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK_EQ_INT(pins.calls, 1);
	CHECK(r.over);
	CHECK(!r.within); /* the pinned 2000 bytes stay over 1 */
	CHECK(image_exists(&f, &x));
	CHECK(image_exists(&f, &u));
	CHECK(!image_exists(&f, &y));
	CHECK(!image_exists(&f, &z));
	CHECK(!seg_exists(&f, &a, "seg"));
	CHECK(!seg_exists(&f, &b, "seg"));
	CHECK_EQ_INT(r.images_removed, 2);
	CHECK_EQ_INT(r.bytes_after, 2000);
	store_usage(f.st, &images, &bytes);
	CHECK_EQ_INT(images, 2);
	CHECK_EQ_INT(bytes, 2000);

	/* pins are asked for only when something is to be removed */
	o.max_size = 100000;
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK_EQ_INT(pins.calls, 1);
out:
	fix_close(&f);
}

/* Decides by the segment's name: "keep*" GC_KEEP, "go*" GC_MAY_GO, else the window. */
static enum gc_keep keep_by_name(void *arg, const struct gc_unit *u)
{
	int *asked = arg;
	(*asked)++;
	if (!u->m)
		return GC_ASK_WINDOW;
	if (strncmp(u->m->segment, "keep", 4) == 0)
		return GC_KEEP;
	if (strncmp(u->m->segment, "go", 2) == 0)
		return GC_MAY_GO;
	return GC_ASK_WINDOW;
}

static void test_gc_keep_and_window(void)
{
	struct fixture f;
	struct hf_key ik, iw, ig, io, iu, ir;
	struct seg keep, win, go, old;
	struct gc_result r;
	int asked = 0;
	int64_t now = (int64_t)time(NULL);
	struct gc_opts o = {
	    .max_size = 1, .in_use_ns = 3600 * NS, .keep = keep_by_name, .arg = &asked};
	char path[512];
	uint64_t kept_manifests;

	if (!fix_open(&f))
		goto out;
	put_image(&f, "k", 1000, &ik);
	put_image(&f, "w", 1000, &iw);
	put_image(&f, "g", 1000, &ig);
	put_image(&f, "o", 1000, &io);
	put_seg(&f, &keep, "keep", &ik, 1, false, T0);	      /* old, but the caller keeps it */
	put_seg(&f, &win, "window", &iw, 1, false, now - 60); /* used a minute ago */
	put_seg(&f, &go, "go", &ig, 1, false, now - 60);      /* too, but the caller lets it go */
	put_seg(&f, &old, "old", &io, 1, false, T0 + 1);      /* old: the window lets it go */
	kept_manifests = seg_bytes(&f, &keep, "seg") + seg_bytes(&f, &win, "seg");

	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK_EQ_INT(asked, 4);
	CHECK(r.over);
	CHECK(!r.within);
	CHECK_EQ_INT(r.kept_in_use, 2);
	CHECK_EQ_INT(r.units_removed, 2);
	CHECK_EQ_INT(r.bytes_after, 2000 + kept_manifests);
	CHECK(seg_exists(&f, &keep, "seg"));
	CHECK(image_exists(&f, &ik));
	CHECK(seg_exists(&f, &win, "seg"));
	CHECK(image_exists(&f, &iw));
	CHECK(!seg_exists(&f, &go, "seg"));
	CHECK(!image_exists(&f, &ig));
	CHECK(!seg_exists(&f, &old, "seg"));
	CHECK(!image_exists(&f, &io));
	fix_close(&f);

	/* without a keep callback the window decides, for unnamed images too */
	if (!fix_open(&f))
		goto out;
	put_image(&f, "recent", 1000, &ir);
	image_path(&f, &ir, path, sizeof(path));
	set_mtime(path, now - 10);
	put_image(&f, "unused", 1000, &iu);
	o.keep = NULL;
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK_EQ_INT(r.kept_in_use, 1);
	CHECK_EQ_INT(r.units_removed, 1);
	CHECK(image_exists(&f, &ir));
	CHECK(!image_exists(&f, &iu));

	/* a window of 0: nothing is in use */
	o.in_use_ns = 0;
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK_EQ_INT(r.kept_in_use, 0);
	CHECK_EQ_INT(r.units_removed, 1);
	CHECK(!image_exists(&f, &ir));
	CHECK(r.within);
out:
	fix_close(&f);
}

/* A store of every kind of unit, for the dry-run comparison. */
static void put_mixed(struct fixture *f, struct hf_key *im, struct seg *s, char *damaged,
		      size_t len)
{
	char path[512];

	put_image(f, "m0", 1000, &im[0]);
	put_image(f, "m1", 2000, &im[1]);
	put_image(f, "m2", 3000, &im[2]);
	put_image(f, "m3", 4000, &im[3]);
	put_image(f, "m4", 5000, &im[4]); /* unnamed */
	put_image(f, "m5", 6000, &im[5]);
	put_seg(f, &s[0], "mix-a", (struct hf_key[]){im[0], im[1]}, 2, false, T0 + 10);
	put_seg(f, &s[1], "mix-b", (struct hf_key[]){im[1], im[2]}, 2, false, T0 + 20);
	put_seg(f, &s[2], "mix-p", (struct hf_key[]){im[3]}, 1, true, T0 + 30);
	put_seg(f, &s[3], "mix-c", (struct hf_key[]){im[5]}, 1, false, T0 + 50);
	image_path(f, &im[4], path, sizeof(path));
	set_mtime(path, T0 + 40);
	put_damaged(f, "mix-damaged", T0 + 5, damaged, len);
}

static void test_gc_dry_run(void)
{
	struct fixture f;
	struct hf_key im[6];
	struct seg s[4];
	struct gc_result dry, real;
	struct removals rd = {0}, rr = {0};
	/* 21000 bytes and 5 manifests; max 13000 + the manifests -> down to 90% of that */
	struct gc_opts o = {.dry_run = true, .removed = record_removed};
	char damaged[512], *before = NULL, *after = NULL;
	uint64_t images0, bytes0, images, bytes, man[4], md, gone;

	if (!fix_open(&f))
		goto out;
	put_mixed(&f, im, s, damaged, sizeof(damaged));
	for (int i = 0; i < 4; i++)
		man[i] = seg_bytes(&f, &s[i], i == 2 ? "pending" : "seg");
	md = file_bytes(damaged);
	gone = md + man[0] + man[1] + man[2]; /* the manifests of the units that go */
	o.max_size = 13000 + gone + man[3];
	CHECK(15000 + man[2] + man[3] > o.max_size - o.max_size / 10);
	CHECK(11000 + man[3] <= o.max_size - o.max_size / 10);
	store_usage(f.st, &images0, &bytes0);
	before = listing(f.dir);
	o.arg = &rd;
	CHECK_EQ_INT(store_gc(f.st, &o, &dry), 0);
	after = listing(f.dir);
	CHECK_EQ_STR(after, before); /* nothing removed, nothing touched */
	CHECK(access(damaged, F_OK) == 0);
	store_usage(f.st, &images, &bytes);
	CHECK_EQ_INT(images, images0);
	CHECK_EQ_INT(bytes, bytes0);
	CHECK(dry.over);
	CHECK(dry.within);
	CHECK_EQ_INT(dry.bytes_before, 21000 + gone + man[3]);
	/*
	 * Each with its manifest: damaged (last use unknown, no images), a (frees m0 = 1000;
	 * m1 is b's too), b (m1 + m2 = 5000): 15000 + the partial's and c's manifests is still
	 * above 90% of the bound, so the partial goes too, with m3: 11000 + c's manifest. The
	 * unnamed m4 and the newest segment c stay.
	 */
	CHECK_EQ_INT(dry.units_removed, 4);
	CHECK_EQ_INT(dry.segments_removed, 2);
	CHECK_EQ_INT(dry.images_removed, 4);
	CHECK_EQ_INT(dry.bytes_removed, 10000 + gone);
	CHECK_EQ_INT(dry.bytes_after, 11000 + man[3]);
	CHECK_EQ_INT(rd.n, 4);
	CHECK_EQ_INT(rd.images, 4);
	CHECK_EQ_INT(rd.bytes, 10000 + gone);

	o.dry_run = false;
	o.arg = &rr;
	CHECK_EQ_INT(store_gc(f.st, &o, &real), 0);
	CHECK_EQ_INT(real.units_removed, dry.units_removed);
	CHECK_EQ_INT(real.segments_removed, dry.segments_removed);
	CHECK_EQ_INT(real.images_removed, dry.images_removed);
	CHECK_EQ_INT(real.bytes_removed, dry.bytes_removed);
	CHECK_EQ_INT(real.bytes_after, dry.bytes_after);
	CHECK_EQ_INT(real.within, dry.within);
	if (CHECK_EQ_INT(rr.n, rd.n))
		for (int i = 0; i < rd.n && i < 32; i++)
			CHECK_EQ_STR(rr.line[i], rd.line[i]);
	CHECK(access(damaged, F_OK) < 0);
	CHECK(!seg_exists(&f, &s[0], "seg"));
	CHECK(!seg_exists(&f, &s[1], "seg"));
	CHECK(!seg_exists(&f, &s[2], "pending"));
	CHECK(seg_exists(&f, &s[3], "seg"));
	for (int i = 0; i < 4; i++)
		CHECK(!image_exists(&f, &im[i]));
	CHECK(image_exists(&f, &im[4]));
	CHECK(image_exists(&f, &im[5]));
	store_usage(f.st, &images, &bytes);
	CHECK_EQ_INT(images, 2);
	CHECK_EQ_INT(bytes, 11000 + man[3]); /* m4 + m5, and c's manifest */
out:
	free(before);
	free(after);
	fix_close(&f);
}

static void test_gc_min_free(void)
{
	struct fixture f;
	struct hf_key x, y, z;
	struct seg a, b;
	struct pin_set pins = {0};
	struct gc_result r;
	struct gc_opts o = {.min_free = UINT64_MAX / 2, .pins = pin_these, .arg = &pins};
	uint64_t disk;

	if (!fix_open(&f))
		goto out;
	put_image(&f, "x", 10000, &x);
	put_image(&f, "y", 20000, &y);
	put_image(&f, "z", 30000, &z);
	put_seg(&f, &a, "a", (struct hf_key[]){x, y}, 2, false, T0);
	put_seg(&f, &b, "b", (struct hf_key[]){z}, 1, false, T0 + 1);
	pins.k[0] = z;
	pins.n = 1;
	disk = image_disk(&f, &x) + image_disk(&f, &y);

	/* no filesystem has that much free: over, and everything not pinned goes */
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK(r.over);
	CHECK(!r.within);
	CHECK(r.free_before < UINT64_MAX / 2);
	CHECK_EQ_INT(r.free_after - r.free_before, disk);
	CHECK_EQ_INT(r.units_removed, 2);
	CHECK_EQ_INT(r.images_removed, 2);
	CHECK_EQ_INT(r.bytes_after, 30000);
	CHECK(!image_exists(&f, &x));
	CHECK(!image_exists(&f, &y));
	CHECK(image_exists(&f, &z));
	CHECK(!seg_exists(&f, &a, "seg"));
	CHECK(!seg_exists(&f, &b, "seg"));

	/* a min_free the filesystem has is not a reason to remove anything */
	o.min_free = 1;
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK(!r.over);
	CHECK(r.within);
	CHECK(image_exists(&f, &z));
out:
	fix_close(&f);
}

static void test_gc_want_free(void)
{
	static const char *names[] = {"f0", "f1", "f2", "f3", "f4"};
	const size_t big = 4 << 20;
	struct fixture f;
	struct seg s[5];
	struct hf_key im[5];
	struct gc_result r;
	struct gc_opts o = {0};
	uint64_t disk[5], sum = 0;
	int expect = 0;

	if (!fix_open(&f))
		goto out;
	/* a request the filesystem has room for removes nothing */
	put_chain(&f, s, im, names, (const int[]){1, 2, 3, 4, 5}, 5);
	o.want_free = 1;
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK(!r.over);
	CHECK_EQ_INT(r.units_removed, 0);
	for (int i = 0; i < 5; i++)
		CHECK(image_exists(&f, &im[i]));

	/* a request it cannot meet removes everything it may */
	o.want_free = UINT64_MAX / 2;
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK(r.over);
	CHECK_EQ_INT(r.units_removed, 5);
	CHECK_EQ_INT(r.bytes_after, 0);
	for (int i = 0; i < 5; i++) {
		CHECK(!image_exists(&f, &im[i]));
		CHECK(!seg_exists(&f, &s[i], "seg"));
	}
	fix_close(&f);

	/*
	 * 6 MiB more than is free: the oldest units go until what they free covers it.
	 * Others may write to this filesystem meanwhile, so what to expect is computed from
	 * the free space store_gc saw (free_before).
	 */
	if (!fix_open(&f))
		goto out;
	for (int i = 0; i < 5; i++) {
		char *data = malloc(big);
		if (!CHECK(data != NULL))
			goto out;
		memset(data, 'a' + i, big);
		key_string("test-image", names[i], &im[i]);
		CHECK_EQ_INT(store_image_put(f.st, &im[i], EXT, data, big), 0);
		free(data);
		put_seg(&f, &s[i], names[i], &im[i], 1, false, T0 + i);
		disk[i] = image_disk(&f, &im[i]);
	}
	o.want_free = store_free_bytes(f.st) + (6 << 20);
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	if (r.free_before < o.want_free) {
		CHECK(r.over);
		while (expect < 5 && r.free_before + sum < o.want_free)
			sum += disk[expect++];
		CHECK(expect >= 2); /* one unit frees about 4 MiB */
	}
	CHECK_EQ_INT(r.units_removed, expect);
	CHECK_EQ_INT(r.free_after - r.free_before, sum);
	for (int i = 0; i < 5; i++) {
		CHECK_EQ_INT(image_exists(&f, &im[i]), i >= expect);
		CHECK_EQ_INT(seg_exists(&f, &s[i], "seg"), i >= expect);
	}
out:
	fix_close(&f);
}

/* Usage counters are corrected by a real run, whatever another process wrote. */
static void test_gc_usage(void)
{
	struct fixture f, g;
	struct hf_key x, y, z;
	struct seg a;
	struct gc_result r;
	struct gc_opts o = {.max_size = 2000};
	struct census *c = NULL;
	struct census_totals t;
	uint64_t images, bytes;
	char err[256];

	if (!fix_open(&f))
		goto out;
	put_image(&f, "x", 1000, &x);
	put_seg(&f, &a, "a", &x, 1, false, T0);
	/* another process, through its own handle, adds images this handle does not count */
	if (!CHECK_EQ_INT(store_open(f.dir, NULL, &g.st, err, sizeof(err)), 0))
		goto out;
	put_image(&(struct fixture){.st = g.st}, "y", 1500, &y);
	put_image(&(struct fixture){.st = g.st}, "z", 500, &z);
	store_close(&g.st);
	store_usage(f.st, &images, &bytes);
	CHECK_EQ_INT(images, 1);
	CHECK_EQ_INT(bytes, 1000 + seg_bytes(&f, &a, "seg")); /* x and the manifest it wrote */

	/* 3000 + a's manifest > 2000: down to 1800, oldest first (all were last used at T0) */
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK(r.over);
	CHECK(r.within);
	store_usage(f.st, &images, &bytes);
	if (CHECK_EQ_INT(census_take(f.st, &c), 0)) {
		census_totals(c, &t);
		CHECK_EQ_INT(images, t.images);
		CHECK_EQ_INT(bytes, t.bytes + t.manifest_bytes);
		CHECK_EQ_INT(bytes, r.bytes_after);
	}
	census_free(&c);

	/* and by a run with nothing to remove */
	put_image(&(struct fixture){.st = f.st}, "late", 10, &y);
	store_usage_set(f.st, 0, 0);
	o.max_size = 0;
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK(!r.over);
	store_usage(f.st, &images, &bytes);
	if (CHECK_EQ_INT(census_take(f.st, &c), 0)) {
		census_totals(c, &t);
		CHECK(t.images > 0);
		CHECK_EQ_INT(images, t.images);
		CHECK_EQ_INT(bytes, t.bytes + t.manifest_bytes);
	}
out:
	census_free(&c);
	fix_close(&f);
}

/*
 * With neither min_free nor want_free, free space is not looked up: free_before is
 * UINT64_MAX ("unknown", as hfctl gc reads it) and free_after must stay so, not wrap
 * around as removed images add their bytes (it once did).
 */
static void test_gc_free_after_unknown(void)
{
	struct fixture f;
	struct hf_key x;
	struct seg a;
	struct gc_result r;
	struct gc_opts o = {.max_size = 1};

	if (!fix_open(&f))
		goto out;
	put_image(&f, "x", 1000, &x);
	put_seg(&f, &a, "a", &x, 1, false, T0);
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK_EQ_INT(r.images_removed, 1);
	CHECK(!image_exists(&f, &x));
	CHECK(r.free_after >= r.free_before);
out:
	fix_close(&f);
}

static int count_entries(const char *dir)
{
	char *l = listing(dir);
	int n = 0;
	for (char *p = l; *p; p++)
		n += *p == '\n';
	free(l);
	return n;
}

static void test_open_existing(void)
{
	struct fixture f;
	struct store *st = NULL;
	struct store_opts existing = {.existing = true};
	struct census *c = NULL;
	struct census_totals t;
	struct hf_key x;
	struct seg a;
	char empty[] = "/tmp/hfgcemptyXXXXXX", absent[128], err[256] = "";
	uint64_t images, bytes;

	/* a directory without a store: refused, and left as it was */
	if (!CHECK(mkdtemp(empty) != NULL))
		return;
	CHECK(store_open(empty, &existing, &st, err, sizeof(err)) < 0);
	CHECK(st == NULL);
	CHECK(err[0] != 0);
	CHECK_EQ_INT(count_entries(empty), 1); /* the directory alone */
	snprintf(absent, sizeof(absent), "%s/none", empty);
	err[0] = 0;
	CHECK(store_open(absent, &existing, &st, err, sizeof(err)) < 0);
	CHECK(err[0] != 0);
	CHECK(access(absent, F_OK) < 0);
	CHECK_EQ_INT(count_entries(empty), 1);
	rm_rf(empty);

	/* an existing store opens, with its images counted */
	if (!fix_open(&f))
		goto out;
	put_image(&f, "x", 1000, &x);
	put_seg(&f, &a, "a", &x, 1, false, T0);
	store_close(&f.st);
	if (!CHECK_EQ_INT(store_open(f.dir, &existing, &st, err, sizeof(err)), 0))
		goto out;
	store_usage(st, &images, &bytes);
	CHECK_EQ_INT(images, 1);
	CHECK_EQ_INT(bytes, 1000 + seg_bytes(&f, &a, "seg")); /* its manifest counts too */
	if (CHECK_EQ_INT(census_take(st, &c), 0)) {
		census_totals(c, &t);
		CHECK_EQ_INT(t.segments, 1);
		CHECK_EQ_INT(t.images, 1);
	}
out:
	census_free(&c);
	store_close(&st);
	fix_close(&f);
}

static void blob_file(struct fixture *f, const char *kind, const struct hf_key *k, char *buf,
		      size_t len)
{
	char hex[HF_KEY_HEXLEN + 1];
	key_hex(k, hex);
	snprintf(buf, len, "%s/idx/%s.%s", f->dir, hex, kind);
}

static void lease_file(struct fixture *f, const struct hf_key *k, char *buf, size_t len)
{
	char hex[HF_KEY_HEXLEN + 1];
	key_hex(k, hex);
	snprintf(buf, len, "%s/lock/%s.lock", f->dir, hex);
}

/*
 * idx/ and lock/ count toward max_size (a lease file as STORE_LEASE_BYTES) in the census,
 * in store_gc and in the usage counters, and are collected: indexes by last use and the
 * in-use window, lease files whenever nobody holds them (a held one is kept, and its
 * range stays exclusive; a collected one is made again by the next lease).
 */
static void test_gc_indexes_and_leases(void)
{
	struct fixture f;
	struct hf_key im, k1, k2, l1, l2;
	struct census *c = NULL;
	struct census_totals t;
	struct gc_result r;
	struct gc_opts o = {.max_size = 1}; /* remove everything that may go */
	char buf[2000] = {0}, p1[512], p2[512], q1[512], q2[512];
	uint64_t images, bytes, want;
	size_t nidx = 0, nlease = 0;
	int held = -1, other = -1;
	void *blob = NULL;
	size_t len;
	struct stat sb;

	if (!fix_open(&f))
		goto out;
	put_image(&f, "ix", 1000, &im);
	key_string("known", "stat2:test", &k1);
	key_string("content-of-2", "1:2:3", &k2);
	CHECK_EQ_INT(store_blob_put(f.st, "idx", &k1, buf, 500), 0);
	CHECK_EQ_INT(store_blob_put(f.st, "idx", &k1, buf, 700), 0); /* replaced: 700 count */
	CHECK_EQ_INT(store_blob_put(f.st, "cid", &k2, buf, 64), 0);
	blob_file(&f, "idx", &k1, p1, sizeof(p1));
	blob_file(&f, "cid", &k2, p2, sizeof(p2));
	set_mtime(p1, T0 + 1);
	set_mtime(p2, T0 + 2);
	key_string("lease", "held", &l1);
	key_string("lease", "free", &l2);
	held = store_lease_try_range(f.st, &l1, 0, 100);
	CHECK(held >= 0);
	other = store_lease_try_range(f.st, &l2, 0, 100);
	CHECK(other >= 0);
	store_lease_release(&other);
	lease_file(&f, &l1, q1, sizeof(q1));
	lease_file(&f, &l2, q2, sizeof(q2));
	set_mtime(q1, T0);
	set_mtime(q2, T0);
	want = 1000 + 700 + 64 + 2 * STORE_LEASE_BYTES;

	store_usage(f.st, &images, &bytes);
	CHECK_EQ_INT(images, 1);
	CHECK_EQ_INT(bytes, want);
	if (!CHECK_EQ_INT(census_take(f.st, &c), 0))
		goto out;
	census_totals(c, &t);
	CHECK_EQ_INT(t.indexes, 2);
	CHECK_EQ_INT(t.index_bytes, 764);
	CHECK_EQ_INT(t.leases, 2);
	CHECK_EQ_INT(t.lease_bytes, 2 * STORE_LEASE_BYTES);
	CHECK_EQ_INT(census_bytes(&t), want);
	for (size_t i = 0; i < census_units(c); i++) {
		const struct gc_unit *u = census_unit(c, i);
		nidx += u->kind == GC_INDEX;
		nlease += u->kind == GC_LEASE;
		if (u->kind == GC_INDEX && strcmp(u->path, p1) == 0) {
			CHECK_EQ_INT(u->file_bytes, 700);
			CHECK_EQ_INT(u->last_use_ns, (T0 + 1) * NS);
		}
	}
	CHECK_EQ_INT(nidx, 2);
	CHECK_EQ_INT(nlease, 2);
	census_free(&c);

	/* recent indexes stay for the window; lease files have none: their lock decides */
	set_mtime(p1, time(NULL));
	set_mtime(p2, time(NULL));
	o.in_use_ns = 120 * NS;
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK(r.over);
	CHECK(!r.within);
	CHECK_EQ_INT(r.indexes_removed, 0);
	CHECK_EQ_INT(r.leases_removed, 1);
	CHECK_EQ_INT(r.kept_in_use, 3); /* two indexes, one held lease */
	CHECK(access(p1, F_OK) == 0 && access(p2, F_OK) == 0);
	CHECK(access(q1, F_OK) == 0);
	CHECK(access(q2, F_OK) != 0);
	CHECK(!image_exists(&f, &im));
	store_usage(f.st, &images, &bytes);
	CHECK_EQ_INT(bytes, 700 + 64 + STORE_LEASE_BYTES);

	/* the held range is still exclusive; the collected file is made again */
	CHECK_EQ_INT(store_lease_try_range(f.st, &l1, 50, 60), -EWOULDBLOCK);
	other = store_lease_try_range(f.st, &l2, 0, 100);
	CHECK(other >= 0);
	CHECK(access(q2, F_OK) == 0);
	store_lease_release(&other);

	/* out of the window, indexes go too; the held lease still stays */
	o.in_use_ns = 0;
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK_EQ_INT(r.indexes_removed, 2);
	CHECK_EQ_INT(r.leases_removed, 1);
	CHECK(access(p1, F_OK) != 0 && access(p2, F_OK) != 0);
	CHECK(access(q1, F_OK) == 0);
	store_lease_release(&held);
	CHECK_EQ_INT(store_gc(f.st, &o, &r), 0);
	CHECK(access(q1, F_OK) != 0);
	CHECK(r.within);
	store_usage(f.st, &images, &bytes);
	CHECK_EQ_INT(bytes, 0);

	/* reading an index is a use: an old one's mtime is set to now */
	CHECK_EQ_INT(store_blob_put(f.st, "idx", &k1, buf, 10), 0);
	set_mtime(p1, T0);
	CHECK_EQ_INT(store_blob_get(f.st, "idx", &k1, &blob, &len), 0);
	CHECK_EQ_INT(len, 10);
	CHECK(stat(p1, &sb) == 0 && sb.st_mtime > time(NULL) - 60);
	free(blob);
out:
	store_lease_release(&held);
	store_lease_release(&other);
	census_free(&c);
	fix_close(&f);
}

int main(void)
{
	test_census();
	test_census_missing_shared();
	test_gc_within_bounds();
	test_gc_lru();
	test_gc_shared_images();
	test_gc_manifests_count();
	test_gc_pins();
	test_gc_keep_and_window();
	test_gc_dry_run();
	test_gc_min_free();
	test_gc_want_free();
	test_gc_usage();
	test_gc_free_after_unknown();
	test_open_existing();
	test_gc_indexes_and_leases();
	return hftest_done();
}
