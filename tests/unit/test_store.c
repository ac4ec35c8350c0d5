/*
 * Store: atomic puts, manifests that round-trip and refuse zero frames, leftovers cleaned;
 * images served only whole; leases that hold when the filesystem answers as a network
 * one does (open and fcntl are interposed below to give its errors on demand).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache/store.h"

/* the smallest whole PNG and JPEG as the store checks them: signature .. IEND, SOI .. EOI */
#define PNG_SIG "\x89PNG\r\n\x1a\n"
#define IEND "\0\0\0\0IEND\xae\x42\x60\x82"
#define PNG25 PNG_SIG "12345" IEND
#define JPG6 "\xff\xd8\xff\xe0\xff\xd9"
#include "hftest.h"

static char dir[] = "/tmp/hfstoreXXXXXX";

/*
 * A network filesystem's answers, injected: the next `create_eexist` creates of a *.lock
 * file behave as when another client creates it at the same moment (the file appears,
 * the create fails with EEXIST, as GlusterFS does); the next `lock_estale` byte-range
 * locks fail with ESTALE.
 */
static int create_eexist, lock_estale;

static bool is_lock(const char *path)
{
	size_t n = strlen(path);
	return n > 5 && strcmp(path + n - 5, ".lock") == 0;
}

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & O_CREAT) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if ((flags & O_CREAT) && create_eexist > 0 && is_lock(path)) {
		create_eexist--;
		close((int)syscall(SYS_openat, AT_FDCWD, path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
		errno = EEXIST;
		return -1;
	}
	return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	long arg;
	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	if (cmd == F_OFD_SETLK && lock_estale > 0) {
		lock_estale--;
		errno = ESTALE;
		return -1;
	}
	return (int)syscall(SYS_fcntl, fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));

static void leases(struct store *st)
{
	struct hf_key k;
	uint64_t retries, failures, r0, f0;
	int a, b;

	key_string("t", "lease", &k);
	store_lease_stats(st, &r0, &f0);
	/* another client creates the lock file at the same moment: the lease is still taken */
	create_eexist = 1;
	a = store_lease_try_range(st, &k, 0, 99);
	CHECK(a >= 0);
	store_lease_stats(st, &retries, &failures);
	CHECK(retries >= r0 + 1 && failures == f0);
	/* a disjoint range at once, an overlapping one not */
	b = store_lease_try_range(st, &k, 100, 199);
	CHECK(b >= 0);
	CHECK_EQ_INT(store_lease_try_range(st, &k, 50, 150), -EWOULDBLOCK);
	store_lease_release(&b);
	CHECK_EQ_INT(b, -1);
	/* ESTALE from the lock: opened and tried again */
	lock_estale = 2;
	b = store_lease_try_range(st, &k, 100, 199);
	CHECK(b >= 0);
	store_lease_release(&b);
	/* errors that outlast the retries: a failure, counted, and said */
	lock_estale = 1000;
	CHECK_EQ_INT(store_lease_try_range(st, &k, 300, 399), -ESTALE);
	lock_estale = 0;
	store_lease_stats(st, &retries, &failures);
	CHECK_EQ_INT(failures, f0 + 1);
	store_lease_release(&a);
}

static int64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Not landed yet: an image whose bytes this client does not see whole (empty or short, as
 * a network filesystem's client shows a file another client just renamed into place) is
 * never served; store_image_open waits for it, store_image_complete says -EAGAIN.
 */
static void landing(struct store *st)
{
	char path[512];
	struct hf_key k;
	uint64_t size = 0, nl0, nl, waits;
	int64_t t;
	int fd;
	pid_t child;

	key_string("t", "landing", &k);
	store_image_stats(st, &nl0, &waits);
	CHECK_EQ_INT(store_image_put(st, &k, "jpg", JPG6, 6), 0);
	store_image_path(st, &k, "jpg", path, sizeof(path));
	CHECK_EQ_INT(truncate(path, 4), 0); /* the view of a short file */
	CHECK_EQ_INT(store_image_complete(st, &k, "jpg", &size), -EAGAIN);
	CHECK(access(path, F_OK) == 0); /* not removed: it may be whole elsewhere */
	CHECK_EQ_INT(store_image_size(st, &k, "jpg", &size), 0);
	/* it lands 300 ms later: the open waits for it and serves the whole image */
	child = fork();
	if (child == 0) {
		usleep(300000);
		_exit(store_image_put(st, &k, "jpg", JPG6, 6) == 0 ? 0 : 1);
	}
	t = ms_now();
	fd = store_image_open(st, &k, "jpg", 6);
	t = ms_now() - t;
	CHECK(fd >= 0);
	CHECK(t >= 250 && t < 1500);
	if (fd >= 0) {
		char b[8];
		CHECK_EQ_INT(pread(fd, b, sizeof(b), 0), 6);
		close(fd);
	}
	waitpid(child, NULL, 0);
	/* never lands: damage, removed after the bounded wait, so it is produced again */
	CHECK_EQ_INT(truncate(path, 0), 0);
	CHECK_EQ_INT(store_image_size(st, &k, "jpg", &size), -ENOENT); /* empty is no image */
	t = ms_now();
	CHECK_EQ_INT(store_image_open(st, &k, "jpg", 6), -ENOENT);
	t = ms_now() - t;
	CHECK(t >= 1500 && t < 4000);
	CHECK(access(path, F_OK) < 0);
	store_image_stats(st, &nl, &waits);
	CHECK(nl >= nl0 + 3 && waits > 0);
	/* a stored image cut short behind its writer's back is replaced by the next put */
	CHECK_EQ_INT(store_image_put(st, &k, "jpg", JPG6, 6), 0);
	fd = open(path, O_WRONLY);
	CHECK_EQ_INT(pwrite(fd, "\0\0", 2, 4), 2); /* same size, no EOI */
	close(fd);
	CHECK_EQ_INT(store_image_put(st, &k, "jpg", JPG6, 6), 0);
	CHECK_EQ_INT(store_image_complete(st, &k, "jpg", &size), 0);
	CHECK_EQ_INT(size, 6);
}

static int count_files(const char *sub)
{
	char path[512];
	DIR *d;
	struct dirent *de;
	int n = 0;
	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void seen(void *arg, const char *name)
{
	snprintf(arg, 256, "%s", name);
}

int main(void)
{
	struct store *st = NULL;
	struct store_opts so = {.fsync = true};
	struct hf_key k1, k2, sk;
	struct manifest m = {0}, *got = NULL;
	char err[256], path[512], name[256] = "";
	uint64_t size = 0, images, bytes;
	int fd;

	if (!CHECK(mkdtemp(dir) != NULL))
		return hftest_done();
	/* a dead writer's temp file is removed at open; a name that is not hfmount's is not */
	CHECK_EQ_INT(store_open(dir, &so, &st, err, sizeof(err)), 0);
	store_close(&st);
	{
		char host[64] = "";
		pid_t dead = fork();
		if (dead == 0)
			_exit(0);
		waitpid(dead, NULL, 0);
		gethostname(host, sizeof(host) - 1);
		for (char *p = host; *p; p++)
			if (*p == '.' || *p == '/')
				*p = '_';
		snprintf(path, sizeof(path), "%s/tmp/%s.%d.7", dir, host, (int)dead);
		close(open(path, O_CREAT | O_WRONLY, 0644));
	}
	snprintf(path, sizeof(path), "%s/tmp/garbage", dir);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	CHECK_EQ_INT(store_open(dir, &so, &st, err, sizeof(err)), 0);
	CHECK_EQ_INT(count_files("tmp"), 1);
	CHECK_EQ_INT(unlink(path), 0);
	/* private: 0700 directories, 0600 files */
	{
		struct stat sb;
		CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 07777) == 0700);
		snprintf(path, sizeof(path), "%s/hfmount-store", dir);
		CHECK(stat(path, &sb) == 0 && (sb.st_mode & 07777) == 0600);
	}

	key_string("t", "one", &k1);
	key_string("t", "two", &k2);
	CHECK_EQ_INT(store_image_size(st, &k1, "png", &size), -ENOENT);
	CHECK_EQ_INT(store_image_put(st, &k1, "png", PNG25, 25), 0);
	CHECK_EQ_INT(store_image_put(st, &k1, "png", PNG25, 25), 0); /* idempotent */
	CHECK_EQ_INT(store_image_size(st, &k1, "png", &size), 0);
	CHECK_EQ_INT(size, 25);
	store_usage(st, &images, &bytes);
	CHECK_EQ_INT(images, 1);
	CHECK_EQ_INT(bytes, 25);
	fd = store_image_open(st, &k1, "png", 25);
	CHECK(fd >= 0);
	if (fd >= 0) {
		char b[32] = {0};
		CHECK_EQ_INT(read(fd, b, sizeof(b)), 25);
		CHECK(memcmp(b + 8, "12345", 5) == 0);
		close(fd);
	}
	CHECK_EQ_INT(store_image_complete(st, &k1, "png", &size), 0);
	CHECK_EQ_INT(size, 25);
	/* checked: the wrong size or the wrong header is damage, removed and never served */
	CHECK_EQ_INT(store_image_open(st, &k1, "png", 54374), -ENOENT);
	CHECK_EQ_INT(store_image_size(st, &k1, "png", &size), -ENOENT);
	CHECK_EQ_INT(store_image_put(st, &k1, "png", "12345", 5), 0);
	CHECK_EQ_INT(store_image_complete(st, &k1, "png", &size), -EAGAIN);
	CHECK_EQ_INT(store_image_open(st, &k1, "png", 0), -ENOENT);
	CHECK_EQ_INT(store_image_size(st, &k1, "png", &size), -ENOENT);
	CHECK_EQ_INT(store_image_put(st, &k1, "jpg", JPG6, 6), 0);
	fd = store_image_open(st, &k1, "jpg", 6);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK_EQ_INT(store_image_put(st, &k1, "png", PNG25, 25), 0);
	CHECK_EQ_INT(count_files("tmp"), 0);
	landing(st);
	leases(st);

	/* manifests: written only when every image exists, never with zero frames */
	key_string("t", "segment", &sk);
	m.segment = "we@ird+name.mp4@1.5+2@30";
	m.source = "/videos/we@ird+name.mp4";
	m.identity = "stat:/videos/we@ird+name.mp4:1:2.0";
	m.count = 2;
	m.width = 320;
	m.height = 240;
	strcpy(m.ext, "png");
	m.image = (struct hf_key[]){k1, k2};
	m.size = (uint64_t[]){25, 3};
	m.first = (int64_t[]){0, 1};
	m.nimages = 2;
	CHECK_EQ_INT(store_manifest_put(st, &sk, &m), -ENOENT); /* k2 missing */
	CHECK_EQ_INT(store_image_put(st, &k2, "png", "abc", 3), 0);
	CHECK_EQ_INT(store_manifest_put(st, &sk, &m), 0);
	CHECK_EQ_INT(store_manifest_get(st, m.source, &sk, &got), 0);
	if (CHECK(got != NULL)) {
		CHECK_EQ_STR(got->segment, m.segment);
		CHECK_EQ_STR(got->identity, m.identity);
		CHECK_EQ_INT(got->count, 2);
		CHECK_EQ_INT(got->size[1], 3);
		CHECK(memcmp(&got->image[1], &k2, sizeof(k2)) == 0);
		manifest_free(&got);
		CHECK(got == NULL);
	}
	CHECK_EQ_INT(store_manifest_list(st, m.source, m.identity, seen, name), 0);
	CHECK_EQ_STR(name, m.segment);
	name[0] = 0;
	CHECK_EQ_INT(store_manifest_list(st, m.source, "stat:other", seen, name), 0);
	CHECK_EQ_STR(name, ""); /* a changed source does not list old segments */
	m.count = 0;
	CHECK_EQ_INT(store_manifest_put(st, &sk, &m), -EINVAL);

	/*
	 * A manifest grows with its images, not its slots: 10^7 slots over two images is two
	 * lines; slots map to images by runs. Runs that disagree with the count are refused.
	 */
	{
		struct stat sb;
		char mp[1024], hexp[HF_KEY_HEXLEN + 1], hexs[HF_KEY_HEXLEN + 1];
		struct hf_key pk, big;
		key_string("t", "big", &big);
		m.count = 10000000;
		m.first = (int64_t[]){0, 9999999};
		CHECK_EQ_INT(store_manifest_put(st, &big, &m), 0);
		key_string("path", m.source, &pk);
		key_hex(&pk, hexp);
		key_hex(&big, hexs);
		snprintf(mp, sizeof(mp), "%s/seg/%.32s/%s.seg", dir, hexp, hexs);
		CHECK(stat(mp, &sb) == 0 && sb.st_size < 1000);
		CHECK_EQ_INT(store_manifest_get(st, m.source, &big, &got), 0);
		if (CHECK(got != NULL)) {
			CHECK_EQ_INT(got->count, 10000000);
			CHECK_EQ_INT(got->nimages, 2);
			CHECK_EQ_INT(manifest_image_of(got, 0), 0);
			CHECK_EQ_INT(manifest_image_of(got, 9999998), 0);
			CHECK_EQ_INT(manifest_image_of(got, 9999999), 1);
			manifest_free(&got);
		}
		m.first = (int64_t[]){0, 10000000}; /* past the last slot */
		CHECK_EQ_INT(store_manifest_put(st, &big, &m), -EINVAL);
		m.first = (int64_t[]){1, 2}; /* slot 0 shows nothing */
		CHECK_EQ_INT(store_manifest_put(st, &big, &m), -EINVAL);
		m.first = (int64_t[]){0, 1};
		m.count = 2;
		/* schema 1 (a line per slot) is still read, as runs */
		{
			FILE *f = fopen(mp, "w");
			char h1[HF_KEY_HEXLEN + 1], h2[HF_KEY_HEXLEN + 1];
			key_hex(&k1, h1);
			key_hex(&k2, h2);
			fprintf(f,
				"hfmount-manifest 1\nsegment a\nsource %s\nidentity x\ncount 4\n"
				"width 2\nheight 2\next png\n%s 13\n%s 13\n%s 13\n%s 3\nend\n",
				m.source, h1, h1, h1, h2);
			fclose(f);
		}
		CHECK_EQ_INT(store_manifest_get(st, m.source, &big, &got), 0);
		if (CHECK(got != NULL)) {
			CHECK_EQ_INT(got->count, 4);
			CHECK_EQ_INT(got->nimages, 2);
			CHECK_EQ_INT(got->first[1], 3);
			CHECK_EQ_INT(manifest_image_of(got, 2), 0);
			CHECK_EQ_INT(manifest_image_of(got, 3), 1);
			CHECK_EQ_INT(got->size[1], 3);
			manifest_free(&got);
		}
		unlink(mp);
	}

	/* a damaged manifest is not a hit */
	{
		char hexp[HF_KEY_HEXLEN + 1];
		struct hf_key pk;
		FILE *f;
		DIR *d;
		struct dirent *de;
		key_string("path", m.source, &pk);
		key_hex(&pk, hexp);
		snprintf(path, sizeof(path), "%s/seg/%.32s", dir, hexp);
		d = opendir(path);
		while (d && (de = readdir(d)))
			if (de->d_name[0] != '.') {
				char p2[1024];
				snprintf(p2, sizeof(p2), "%s/%s", path, de->d_name);
				f = fopen(p2, "w");
				fputs("hfmount-manifest 1\nsegment x\n", f);
				fclose(f);
			}
		if (d)
			closedir(d);
		CHECK_EQ_INT(store_manifest_get(st, m.source, &sk, &got), -EINVAL);
		CHECK_EQ_INT(store_manifest_get(st, m.source, &sk, &got), -ENOENT);
	}
	store_close(&st);
	CHECK(st == NULL);
	store_close(&st);

	/* a store of another schema is refused */
	snprintf(path, sizeof(path), "%s/hfmount-store", dir);
	{
		FILE *f = fopen(path, "w");
		fputs("hfmount store schema 999\n", f);
		fclose(f);
	}
	CHECK(store_open(dir, &so, &st, err, sizeof(err)) < 0);
	CHECK(strstr(err, "schema") != NULL);

	{
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		CHECK_EQ_INT(system(cmd), 0);
	}
	return hftest_done();
}
