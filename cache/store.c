/*
 * Store layout and atomic writes. Temp names carry host and pid so that a later open
 * can tell a dead writer's leftovers from a live writer's work in progress.
 */
#include "cache/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define STORE_MARKER "hfmount-store"
#define MANIFEST_MAGIC_V1 "hfmount-manifest 1" /* one line per slot; still read */
#define MANIFEST_MAGIC "hfmount-manifest 2"    /* one line per image, with its first slot */
#define MANIFEST_MAX_SLOTS 100000000

struct store {
	char *dir;
	bool fsync;
	mode_t dir_mode, file_mode; /* 0700/0600, or 02770/0660 for a store a group shares */
	bool shared;
	gid_t gid; /* the sharing group */
	char host[64];
	_Atomic uint64_t seq;
	_Atomic uint64_t images, bytes;
	/* what a network filesystem made us do again: see store_lease_stats, store_image_stats */
	_Atomic uint64_t lease_retries, lease_failures;
	_Atomic uint64_t not_landed, not_landed_waits;
};

/*
 * A network filesystem answers some calls with errors a local disk never gives: EEXIST
 * from a create without O_EXCL when another client creates the same name at once,
 * ESTALE for a name another client replaced, ENOENT for a directory another client just
 * made. They are retried a few times with a short backoff.
 */
#define RETRIES 8
#define RETRY_FIRST_US 1000 /* 1, 2, 4 .. 128 ms: about a quarter of a second in all */

/*
 * An image another process wrote is served only once this client sees it complete. With a
 * network filesystem's client caches, a file renamed into place elsewhere can read empty
 * or short here for about a second; it is looked at again for this long before it is
 * taken for damage.
 */
#define LANDING_WAIT_MS 2000
#define LANDING_FIRST_MS 10

static void sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Errors of a shared filesystem that another try can get past. */
static bool transient(int err)
{
	return err == EEXIST || err == ESTALE || err == EINTR || err == ENOENT || err == EAGAIN;
}

static mode_t dir_mode_of(const struct store_opts *opts)
{
	return opts && opts->shared ? 02770 : 0700;
}

static bool rmdir_would_work(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool empty = d != NULL;

	while (empty && (de = readdir(d)))
		empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
	if (d)
		closedir(d);
	return empty;
}

/* mkdir, then the exact mode (the umask does not decide a store's modes). */
static int make_dir(const char *path, mode_t mode, gid_t gid)
{
	if (mkdir(path, mode & 0777) < 0)
		return errno == EEXIST ? 0 : -errno;
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0)
		return -errno;
	if (chmod(path, mode) < 0)
		return -errno;
	return 0;
}

/* Creates path and its missing parents with mode (and group gid unless -1). */
static int mkdir_p(const char *path, mode_t mode, gid_t gid)
{
	char tmp[PATH_MAX];
	size_t len = strlen(path);
	int ret;

	if (len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		ret = make_dir(tmp, mode, gid);
		if (ret < 0)
			return ret;
		*p = '/';
	}
	return make_dir(tmp, mode, gid);
}

/* A new file of the store, created with its exact mode; the fd or -errno. */
static int create_file(struct store *st, const char *path, int flags)
{
	int fd = open(path, flags | O_CREAT | O_CLOEXEC, st->file_mode);
	if (fd >= 0 && st->shared) {
		if (fchown(fd, (uid_t)-1, st->gid) < 0) {
			/* not ours to change (another account created it): its mode stands */
		}
		fchmod(fd, st->file_mode); /* group write survives any umask */
	}
	return fd < 0 ? -errno : fd;
}

/* One entry of the store to its mode (and group); errors leave it as it was. */
static void fix_mode(struct store *st, const char *path, bool is_dir)
{
	struct stat sb;
	mode_t want = is_dir ? st->dir_mode : st->file_mode;

	if (lstat(path, &sb) < 0 || (is_dir ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode)))
		return;
	if (st->shared && sb.st_gid != st->gid && lchown(path, (uid_t)-1, st->gid) < 0)
		return;
	if ((sb.st_mode & 07777) != want)
		chmod(path, want);
}

/* A directory of the store and what is in it, depth levels down. */
static void fix_tree(struct store *st, const char *dir, int depth)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	fix_mode(st, dir, true);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path))
			continue;
		if (de->d_type == DT_DIR && depth > 0)
			fix_tree(st, path, depth - 1);
		else if (de->d_type == DT_REG || de->d_type == DT_UNKNOWN)
			fix_mode(st, path, false);
	}
	closedir(d);
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static void fsync_dir(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd;
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		return;
	*slash = 0;
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/*
 * Writes data to a fresh temp file and renames it to final, creating the final
 * directory when missing. The temp file never survives a failure.
 */
static int atomic_write(struct store *st, const char *final, const void *data, size_t len)
{
	char tmp[PATH_MAX];
	int fd, ret;

	snprintf(tmp, sizeof(tmp), "%s/tmp/%s.%ld.%" PRIu64, st->dir, st->host, (long)getpid(),
		 atomic_fetch_add(&st->seq, 1));
	fd = create_file(st, tmp, O_WRONLY | O_EXCL);
	if (fd < 0)
		return fd;
	ret = write_all(fd, data, len);
	if (ret == 0 && st->fsync && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	/*
	 * ENOENT: the final directory is missing, or (on a network filesystem) another client
	 * made it a moment ago and this one does not see it yet; ESTALE: another client
	 * replaced the final name. Both pass with another try.
	 */
	for (int i = 0; ret == 0 && rename(tmp, final) < 0; i++) {
		ret = -errno;
		if (i == RETRIES || (ret != -ENOENT && ret != -ESTALE && ret != -EINTR))
			break;
		if (ret == -ENOENT) {
			char dir[PATH_MAX];
			char *slash;
			snprintf(dir, sizeof(dir), "%s", final);
			slash = strrchr(dir, '/');
			*slash = 0;
			ret = mkdir_p(dir, st->dir_mode, st->gid);
			if (ret < 0)
				break;
		}
		if (i > 0)
			sleep_us((long)RETRY_FIRST_US << (i - 1));
		ret = 0;
	}
	if (ret < 0) {
		unlink(tmp);
		return ret;
	}
	if (st->fsync)
		fsync_dir(final);
	return 0;
}

static int read_file(const char *path, void **buf, size_t *len)
{
	struct stat sb;
	char *p;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0) {
		ret = -errno;
		goto out_close;
	}
	p = malloc((size_t)sb.st_size + 1);
	if (!p) {
		ret = -ENOMEM;
		goto out_close;
	}
	while (got < (size_t)sb.st_size) {
		ssize_t r = read(fd, p + got, (size_t)sb.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r < 0 ? -errno : -EIO;
			free(p);
			goto out_close;
		}
		got += (size_t)r;
	}
	p[got] = 0;
	*buf = p;
	*len = got;
out_close:
	close(fd);
	return ret;
}

/* Another machine's temp file this old is a leftover of a crash there (no write lasts a day). */
#define FOREIGN_TMP_MAX_AGE_S (24 * 3600)

/* A temp file of a dead writer; names that are not ours ("host.pid.seq") are left alone. */
static bool writer_is_dead(const char *name, const char *host, time_t mtime)
{
	char h[64];
	long pid;
	unsigned long long seq;
	int end = 0;
	if (sscanf(name, "%63[^.].%ld.%llu%n", h, &pid, &seq, &end) != 3 || name[end] || pid <= 0)
		return false;
	if (strcmp(h, host) != 0)
		return time(NULL) - mtime > FOREIGN_TMP_MAX_AGE_S;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static int clean_tmp(struct store *st)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(path, sizeof(path), "%s/tmp", st->dir);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		struct stat sb;
		if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &sb, 0) < 0)
			continue;
		if (writer_is_dead(de->d_name, st->host, sb.st_mtime)) {
			snprintf(path, sizeof(path), "%s/tmp/%s", st->dir, de->d_name);
			n += unlink(path) == 0;
		}
	}
	closedir(d);
	return n;
}

int store_clean(struct store *st)
{
	return clean_tmp(st);
}

/* Files in the two-level directory top (img/ or seg/): count and bytes. */
static void count_files(struct store *st, const char *top_name, uint64_t *n, uint64_t *bytes)
{
	char path[PATH_MAX];
	DIR *top, *sub;
	struct dirent *de, *fe;

	snprintf(path, sizeof(path), "%s/%s", st->dir, top_name);
	top = opendir(path);
	if (!top)
		return;
	while ((de = readdir(top))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", st->dir, top_name, de->d_name);
		sub = opendir(path);
		if (!sub)
			continue;
		while ((fe = readdir(sub))) {
			struct stat sb;
			if (fe->d_name[0] == '.')
				continue;
			if (fstatat(dirfd(sub), fe->d_name, &sb, 0) == 0 && S_ISREG(sb.st_mode)) {
				(*n)++;
				*bytes += (uint64_t)sb.st_size;
			}
		}
		closedir(sub);
	}
	closedir(top);
}

/* Files in the flat directory top (idx/, lock/): count and bytes. */
static void count_flat(struct store *st, const char *top_name, uint64_t *n, uint64_t *bytes)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *top;

	snprintf(path, sizeof(path), "%s/%s", st->dir, top_name);
	top = opendir(path);
	if (!top)
		return;
	while ((de = readdir(top))) {
		struct stat sb;
		if (de->d_name[0] != '.' && fstatat(dirfd(top), de->d_name, &sb, 0) == 0 &&
		    S_ISREG(sb.st_mode)) {
			(*n)++;
			*bytes += (uint64_t)sb.st_size;
		}
	}
	closedir(top);
}

/*
 * Images, and the bytes of everything that counts toward max_size: images, manifests,
 * indexes, and lease files at STORE_LEASE_BYTES each (cache/gc.c counts the same).
 */
static void count_images(struct store *st)
{
	uint64_t n = 0, bytes = 0, manifests = 0, indexes = 0, leases = 0, empty = 0;

	count_files(st, "img", &n, &bytes);
	count_files(st, "seg", &manifests, &bytes);
	count_flat(st, "idx", &indexes, &bytes);
	count_flat(st, "lock", &leases, &empty);
	st->images = n;
	st->bytes = bytes + leases * STORE_LEASE_BYTES;
}

static const char *const subdirs[] = {"tmp", "img", "seg", "idx", "lock"};

/*
 * Nothing in dir but (empty) directories a store is made of: a new directory, or a store
 * whose creation stopped before its marker was written.
 */
static int dir_is_blank(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int ret = 1;

	if (!d)
		return -errno;
	while (ret == 1 && (de = readdir(d))) {
		char sub[PATH_MAX];
		bool ours = false;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++)
			ours |= strcmp(de->d_name, subdirs[i]) == 0;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		ret = ours && rmdir_would_work(sub) ? 1 : 0;
	}
	closedir(d);
	return ret;
}

/* Tightens an existing store to the modes it should have: every directory and file. */
static void tighten(struct store *st)
{
	char path[PATH_MAX];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/" STORE_MARKER, st->dir);
	if (stat(st->dir, &sb) == 0 && (sb.st_mode & 07777) == st->dir_mode &&
	    stat(path, &sb) == 0 && (sb.st_mode & 07777) == st->file_mode)
		return; /* done before: everything since was made with these modes */
	fix_mode(st, st->dir, true);
	fix_mode(st, path, false);
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", st->dir, subdirs[i]);
		fix_tree(st, path, 2);
	}
}

int store_open(const char *dir, const struct store_opts *opts, struct store **out, char *err,
	       size_t errlen)
{
	char path[PATH_MAX];
	struct store *st;
	void *marker = NULL;
	size_t mlen;
	bool new_store = false;
	int ret;

	*out = NULL;
	if (opts && opts->existing) {
		struct stat sb;
		snprintf(path, sizeof(path), "%s/" STORE_MARKER, dir);
		if (stat(dir, &sb) < 0) {
			ret = -errno;
			snprintf(err, errlen, "store %s: %s", dir, strerror(errno));
			return ret;
		}
		if (stat(path, &sb) < 0) {
			snprintf(err, errlen, "%s is not an hfmount store (it has no %s file)", dir,
				 STORE_MARKER);
			return -ENOENT;
		}
	}
	ret = opts && opts->existing
		      ? 0
		      : mkdir_p(dir, dir_mode_of(opts), opts && opts->shared ? opts->gid : (gid_t)-1);
	if (ret < 0) {
		snprintf(err, errlen, "store directory %s cannot be created: %s", dir, strerror(-ret));
		return ret;
	}
	if (!(opts && opts->existing) && access(dir, W_OK | X_OK) < 0) {
		ret = -errno;
		snprintf(err, errlen, "store directory %s is not writable: %s", dir, strerror(errno));
		return ret;
	}
	snprintf(path, sizeof(path), "%s/" STORE_MARKER, dir);
	ret = read_file(path, &marker, &mlen);
	if (ret == 0) {
		int schema = 0;
		bool ok = sscanf(marker, "hfmount store schema %d", &schema) == 1 && schema == HF_SCHEMA;
		free(marker);
		if (!ok && schema > 0) {
			snprintf(err, errlen, "%s holds a store of schema %d; this hfmount uses schema %d",
				 dir, schema, HF_SCHEMA);
			return -EINVAL;
		}
		if (!ok) {
			snprintf(err, errlen,
				 "%s is damaged (expected \"hfmount store schema %d\"); remove it if the directory is an hfmount store",
				 path, HF_SCHEMA);
			return -EINVAL;
		}
	} else if (ret == -ENOENT) {
		/* Only its own: a directory holding anything else is never adopted. */
		if (dir_is_blank(dir) != 1) {
			snprintf(err, errlen,
				 "%s is not empty and is not an hfmount store (it has no %s file); give an empty or new directory",
				 dir, STORE_MARKER);
			return -ENOTEMPTY;
		}
		new_store = true;
	} else {
		snprintf(err, errlen, "%s cannot be read: %s", path, strerror(-ret));
		return ret;
	}
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->dir = strdup(dir);
	st->fsync = opts && opts->fsync;
	st->shared = opts && opts->shared;
	st->gid = st->shared ? opts->gid : (gid_t)-1;
	st->dir_mode = dir_mode_of(opts);
	st->file_mode = st->shared ? 0660 : 0600;
	if (!st->dir) {
		free(st);
		return -ENOMEM;
	}
	gethostname(st->host, sizeof(st->host) - 1);
	for (char *p = st->host; *p; p++)
		if (*p == '.' || *p == '/')
			*p = '_';
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]) && !(opts && opts->existing);
	     i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, subdirs[i]);
		ret = mkdir_p(path, st->dir_mode, st->gid);
		if (ret < 0) {
			snprintf(err, errlen, "%s cannot be created: %s", path, strerror(-ret));
			store_close(&st);
			return ret;
		}
	}
	if (new_store) {
		char text[64];
		int n = snprintf(text, sizeof(text), "hfmount store schema %d\n", HF_SCHEMA);
		snprintf(path, sizeof(path), "%s/" STORE_MARKER, dir);
		ret = atomic_write(st, path, text, (size_t)n);
		if (ret < 0) {
			snprintf(err, errlen, "store directory %s is not writable: %s", dir,
				 strerror(-ret));
			store_close(&st);
			return ret;
		}
	}
	if (!(opts && opts->existing)) {
		if (!new_store)
			tighten(st);
		clean_tmp(st);
	}
	count_images(st);
	*out = st;
	return 0;
}

void store_close(struct store **pst)
{
	struct store *st = pst ? *pst : NULL;
	if (!st)
		return;
	free(st->dir);
	free(st);
	*pst = NULL;
}

void store_image_path(struct store *st, const struct hf_key *k, const char *ext, char *buf,
		      size_t len)
{
	char hex[HF_KEY_HEXLEN + 1];
	key_hex(k, hex);
	snprintf(buf, len, "%s/img/%.2s/%s.%s", st->dir, hex, hex, ext);
}

/*
 * No PNG or JPEG is empty: an empty image is not one. It is not removed: on a shared
 * store it can be another client's complete image that this one does not see yet, and
 * producing it again replaces it anyway.
 */
int store_image_size(struct store *st, const struct hf_key *k, const char *ext, uint64_t *size)
{
	char path[PATH_MAX];
	struct stat sb;
	store_image_path(st, k, ext, path, sizeof(path));
	if (stat(path, &sb) < 0)
		return -errno;
	if (sb.st_size == 0 || !S_ISREG(sb.st_mode))
		return -ENOENT;
	*size = (uint64_t)sb.st_size;
	return 0;
}

/* The first bytes every image of this format starts with. */
static bool image_header_ok(int fd, const char *ext)
{
	static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	static const unsigned char jpg[3] = {0xff, 0xd8, 0xff};
	unsigned char head[8];
	const unsigned char *want = strcmp(ext, "jpg") == 0 ? jpg : png;
	size_t n = strcmp(ext, "jpg") == 0 ? sizeof(jpg) : sizeof(png);

	return pread(fd, head, n, 0) == (ssize_t)n && memcmp(head, want, n) == 0;
}

/* The last bytes every complete image of this format ends with (PNG IEND, JPEG EOI). */
static bool image_trailer_ok(int fd, const char *ext, off_t size)
{
	static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
	static const unsigned char eoi[2] = {0xff, 0xd9};
	unsigned char tail[12];
	const unsigned char *want = strcmp(ext, "jpg") == 0 ? eoi : iend;
	size_t n = strcmp(ext, "jpg") == 0 ? sizeof(eoi) : sizeof(iend);

	return size >= (off_t)n && pread(fd, tail, n, size - (off_t)n) == (ssize_t)n &&
	       memcmp(tail, want, n) == 0;
}

/*
 * Whether the file open as fd holds a whole image as this client sees it: the size its
 * writer recorded (when known, else any), the descriptor's own fstat, and the format's
 * first and last bytes read through the descriptor (a short or stale view has no end
 * marker where fstat says the file ends). 0 with the size, or -EAGAIN.
 */
static int image_check(int fd, const char *ext, uint64_t want, uint64_t *size)
{
	struct stat sb;

	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size == 0 ||
	    (want && (uint64_t)sb.st_size != want) || !image_header_ok(fd, ext) ||
	    !image_trailer_ok(fd, ext, sb.st_size))
		return -EAGAIN;
	*size = (uint64_t)sb.st_size;
	return 0;
}

int store_image_complete(struct store *st, const struct hf_key *k, const char *ext,
			 uint64_t *size)
{
	char path[PATH_MAX];
	int fd, ret;

	store_image_path(st, k, ext, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ESTALE ? -EAGAIN : -errno;
	ret = image_check(fd, ext, 0, size);
	close(fd);
	if (ret < 0)
		atomic_fetch_add(&st->not_landed, 1);
	return ret;
}

int store_image_open(struct store *st, const struct hf_key *k, const char *ext, uint64_t size)
{
	char path[PATH_MAX];
	int64_t deadline = 0;
	int delay = LANDING_FIRST_MS;
	uint64_t got;
	int fd;

	store_image_path(st, k, ext, path, sizeof(path));
	for (;;) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 && errno != ESTALE)
			return -errno;
		if (fd >= 0 && image_check(fd, ext, size, &got) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		/* not landed here yet (or damaged): looked at again, for a bounded time */
		if (!deadline) {
			deadline = mono_ms() + LANDING_WAIT_MS;
			atomic_fetch_add(&st->not_landed, 1);
		}
		if (mono_ms() >= deadline)
			break;
		atomic_fetch_add(&st->not_landed_waits, 1);
		sleep_us((long)delay * 1000);
		delay = delay * 2 > 250 ? 250 : delay * 2;
	}
	/* Still wrong after the wait: damaged, never served; removed so that it is produced again. */
	unlink(path);
	return -ENOENT;
}

int store_image_put(struct store *st, const struct hf_key *k, const char *ext, const void *data,
		    size_t len)
{
	char path[PATH_MAX];
	struct stat sb;
	int ret;

	store_image_path(st, k, ext, path, sizeof(path));
	if (stat(path, &sb) == 0 && (size_t)sb.st_size == len && len > 0) {
		/* stored already (by another process, say), unless what is there is damaged */
		uint64_t got;
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ret = fd >= 0 ? image_check(fd, ext, len, &got) : -EAGAIN;
		if (fd >= 0)
			close(fd);
		if (ret == 0)
			return 0;
	}
	ret = atomic_write(st, path, data, len);
	if (ret == 0) {
		atomic_fetch_add(&st->images, 1);
		atomic_fetch_add(&st->bytes, len);
	}
	return ret;
}

static void blob_path(struct store *st, const char *kind, const struct hf_key *k, char *buf,
		      size_t len)
{
	char hex[HF_KEY_HEXLEN + 1];
	key_hex(k, hex);
	snprintf(buf, len, "%s/idx/%s.%s", st->dir, hex, kind);
}

/* A blob is "used" when read: eviction's last use. Set at most this often per blob. */
#define BLOB_TOUCH_S 30

int store_blob_get(struct store *st, const char *kind, const struct hf_key *k, void **buf,
		   size_t *len)
{
	char path[PATH_MAX];
	struct stat sb;
	int ret;

	blob_path(st, kind, k, path, sizeof(path));
	ret = read_file(path, buf, len);
	if (ret == 0 && stat(path, &sb) == 0 && time(NULL) - sb.st_mtime >= BLOB_TOUCH_S)
		utimensat(AT_FDCWD, path, NULL, 0); /* a failure only makes it look older */
	return ret;
}

int store_blob_put(struct store *st, const char *kind, const struct hf_key *k, const void *buf,
		   size_t len)
{
	char path[PATH_MAX];
	struct stat sb;
	uint64_t was = 0;
	int ret;

	blob_path(st, kind, k, path, sizeof(path));
	if (stat(path, &sb) == 0)
		was = (uint64_t)sb.st_size; /* replaced: only the difference is new */
	ret = atomic_write(st, path, buf, len);
	if (ret == 0) {
		atomic_fetch_add(&st->bytes, len);
		atomic_fetch_sub(&st->bytes, was);
	}
	return ret;
}

/* ---- manifests ---- */

static void seg_dir(struct store *st, const char *source, char *buf, size_t len)
{
	struct hf_key pk;
	char hex[HF_KEY_HEXLEN + 1];
	key_string("path", source, &pk);
	key_hex(&pk, hex);
	snprintf(buf, len, "%s/seg/%.32s", st->dir, hex);
}

static void seg_path(struct store *st, const char *source, const struct hf_key *segkey,
		     const char *suffix, char *buf, size_t len)
{
	char dir[PATH_MAX], hex[HF_KEY_HEXLEN + 1];
	seg_dir(st, source, dir, sizeof(dir));
	key_hex(segkey, hex);
	snprintf(buf, len, "%s/%s.%s", dir, hex, suffix);
}

/* Names may hold any byte but NUL; newlines and '%' are escaped so lines stay lines. */
static int put_escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '%' || *s == '\n' || *s == '\r')
			fprintf(f, "%%%02X", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	return fputc('\n', f) == EOF ? -EIO : 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static char *unescape(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;
	if (!out)
		return NULL;
	while (*s) {
		int hi, lo;
		/* Only "%XX", as put_escaped writes; s[1] is a digit, so s[2] is still in s. */
		if (s[0] == '%' && (hi = hex_digit(s[1])) >= 0 && (lo = hex_digit(s[2])) >= 0) {
			*o++ = (char)(hi << 4 | lo);
			s += 3;
		} else {
			*o++ = *s++;
		}
	}
	*o = 0;
	return out;
}

/* Slots and runs agree: count > 0, first[0] == 0, first slots ascending below count. */
static bool manifest_valid(const struct manifest *m)
{
	if (m->count <= 0 || m->count > MANIFEST_MAX_SLOTS || m->nimages == 0 ||
	    m->nimages > (uint64_t)m->count || m->first[0] != 0)
		return false;
	for (size_t i = 1; i < m->nimages; i++)
		if (m->first[i] <= m->first[i - 1] || m->first[i] >= m->count)
			return false;
	return true;
}

static int manifest_write(struct store *st, const struct hf_key *segkey, const struct manifest *m,
			  const char *suffix)
{
	char path[PATH_MAX], hex[HF_KEY_HEXLEN + 1];
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int ret;

	f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	fprintf(f, MANIFEST_MAGIC "\nsegment ");
	put_escaped(f, m->segment);
	fprintf(f, "source ");
	put_escaped(f, m->source);
	fprintf(f, "identity ");
	put_escaped(f, m->identity);
	fprintf(f, "count %" PRId64 "\nwidth %d\nheight %d\next %s\nimages %zu\n", m->count,
		m->width, m->height, m->ext, m->nimages);
	for (size_t i = 0; i < m->nimages; i++) {
		key_hex(&m->image[i], hex);
		fprintf(f, "%s %" PRIu64 " %" PRId64 "\n", hex, m->size[i], m->first[i]);
	}
	fprintf(f, "end\n");
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	seg_path(st, m->source, segkey, suffix, path, sizeof(path));
	ret = atomic_write(st, path, text, len);
	if (ret == 0)
		atomic_fetch_add(&st->bytes, len); /* manifests count toward max_size too */
	free(text);
	return ret;
}

int store_manifest_put(struct store *st, const struct hf_key *segkey, const struct manifest *m)
{
	char path[PATH_MAX];
	int ret;

	if (!manifest_valid(m))
		return -EINVAL;
	for (size_t i = 0; i < m->nimages; i++) {
		uint64_t size = 0;
		if (store_image_size(st, &m->image[i], m->ext, &size) < 0 || size != m->size[i])
			return -ENOENT;
	}
	ret = manifest_write(st, segkey, m, "seg");
	if (ret == 0) {
		seg_path(st, m->source, segkey, "pending", path, sizeof(path));
		unlink(path);
	}
	return ret;
}

int store_partial_put(struct store *st, const struct hf_key *segkey, const struct manifest *m)
{
	if (!manifest_valid(m))
		return -EINVAL;
	return manifest_write(st, segkey, m, "pending");
}

int store_manifest_touch(struct store *st, const char *source, const struct hf_key *segkey,
			 int64_t when_ns)
{
	struct timespec ts[2] = {{when_ns / 1000000000, when_ns % 1000000000}};
	char path[PATH_MAX];

	ts[1] = ts[0];
	seg_path(st, source, segkey, "seg", path, sizeof(path));
	if (utimensat(AT_FDCWD, path, ts, 0) == 0)
		return 0;
	seg_path(st, source, segkey, "pending", path, sizeof(path));
	return utimensat(AT_FDCWD, path, ts, 0) == 0 ? 0 : -errno;
}

void manifest_free(struct manifest **pm)
{
	struct manifest *m = pm ? *pm : NULL;
	if (!m)
		return;
	free(m->segment);
	free(m->source);
	free(m->identity);
	free(m->image);
	free(m->size);
	free(m->first);
	free(m);
	*pm = NULL;
}

size_t manifest_image_of(const struct manifest *m, int64_t slot)
{
	size_t lo = 0, hi = m->nimages; /* the last i with first[i] <= slot */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->first[mid] <= slot)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static char *next_line(char **cur)
{
	char *s = *cur, *nl;
	if (!s || !*s)
		return NULL;
	nl = strchr(s, '\n');
	if (!nl)
		return NULL; /* every line ends in a newline; a torn tail is damage */
	*nl = 0;
	*cur = nl + 1;
	return s;
}

static char *field(char **cur, const char *name)
{
	char *line = next_line(cur);
	size_t n = strlen(name);
	if (!line || strncmp(line, name, n) != 0 || line[n] != ' ')
		return NULL;
	return line + n + 1;
}

static int manifest_alloc(struct manifest *m, size_t n)
{
	m->image = malloc(n * sizeof(*m->image));
	m->size = malloc(n * sizeof(*m->size));
	m->first = malloc(n * sizeof(*m->first));
	return m->image && m->size && m->first ? 0 : -ENOMEM;
}

/* "HEX SIZE" or, with first, "HEX SIZE FIRST": one key line. */
static bool parse_key_line(const char *line, struct hf_key *k, uint64_t *size, int64_t *first)
{
	char tail;
	if (!line || strlen(line) < HF_KEY_HEXLEN + 2 || line[HF_KEY_HEXLEN] != ' ' ||
	    key_from_hex(line, k) < 0 || line[HF_KEY_HEXLEN + 1] < '0' || line[HF_KEY_HEXLEN + 1] > '9')
		return false;
	if (first)
		return sscanf(line + HF_KEY_HEXLEN + 1, "%" SCNu64 " %" SCNd64 "%c", size, first,
			      &tail) == 2;
	return sscanf(line + HF_KEY_HEXLEN + 1, "%" SCNu64 "%c", size, &tail) == 1;
}

/* Schema 1: a line per slot; consecutive slots of one image become one run. */
static int parse_slots_v1(struct manifest *m, char **cur)
{
	size_t cap = 16;
	if (manifest_alloc(m, cap) < 0)
		return -ENOMEM;
	for (int64_t i = 0; i < m->count; i++) {
		struct hf_key k;
		uint64_t size;
		if (!parse_key_line(next_line(cur), &k, &size, NULL))
			return -EINVAL;
		if (m->nimages && memcmp(&k, &m->image[m->nimages - 1], sizeof(k)) == 0)
			continue;
		if (m->nimages == cap) {
			struct manifest grown = *m;
			cap *= 2;
			grown.image = realloc(m->image, cap * sizeof(*m->image));
			if (grown.image)
				m->image = grown.image;
			grown.size = realloc(m->size, cap * sizeof(*m->size));
			if (grown.size)
				m->size = grown.size;
			grown.first = realloc(m->first, cap * sizeof(*m->first));
			if (grown.first)
				m->first = grown.first;
			if (!grown.image || !grown.size || !grown.first)
				return -ENOMEM;
		}
		m->image[m->nimages] = k;
		m->size[m->nimages] = size;
		m->first[m->nimages++] = i;
	}
	return 0;
}

/* Schema 2: "images N", then N lines "HEX SIZE FIRST", first slots ascending from 0. */
static int parse_images(struct manifest *m, char **cur)
{
	char *v = field(cur, "images");
	unsigned long long n;
	char tail;

	/* n lines of at least "HEX 0 0\n" must follow: no allocation for lines that are not there */
	if (!v || sscanf(v, "%llu%c", &n, &tail) != 1 || n == 0 || n > (uint64_t)m->count ||
	    n > strlen(*cur) / (HF_KEY_HEXLEN + 5))
		return -EINVAL;
	if (manifest_alloc(m, (size_t)n) < 0)
		return -ENOMEM;
	m->nimages = (size_t)n;
	for (size_t i = 0; i < m->nimages; i++)
		if (!parse_key_line(next_line(cur), &m->image[i], &m->size[i], &m->first[i]))
			return -EINVAL;
	return manifest_valid(m) ? 0 : -EINVAL;
}

/* Parses a manifest; header_only stops after the identity line. */
static int parse_manifest_text(char *text, bool header_only, struct manifest **out)
{
	struct manifest *m = calloc(1, sizeof(*m));
	char *cur = text, *v, *line;
	int ret = -EINVAL;
	bool v1;

	if (!m)
		return -ENOMEM;
	line = next_line(&cur);
	if (!line || (strcmp(line, MANIFEST_MAGIC) != 0 && strcmp(line, MANIFEST_MAGIC_V1) != 0))
		goto out_free;
	v1 = strcmp(line, MANIFEST_MAGIC_V1) == 0;
	if (!(v = field(&cur, "segment")) || !(m->segment = unescape(v)))
		goto out_free;
	if (!(v = field(&cur, "source")) || !(m->source = unescape(v)))
		goto out_free;
	if (!(v = field(&cur, "identity")) || !(m->identity = unescape(v)))
		goto out_free;
	if (header_only) {
		*out = m;
		return 0;
	}
	if (!(v = field(&cur, "count")) || sscanf(v, "%" SCNd64, &m->count) != 1 || m->count <= 0 ||
	    m->count > MANIFEST_MAX_SLOTS)
		goto out_free;
	if (!(v = field(&cur, "width")) || sscanf(v, "%d", &m->width) != 1)
		goto out_free;
	if (!(v = field(&cur, "height")) || sscanf(v, "%d", &m->height) != 1)
		goto out_free;
	if (!(v = field(&cur, "ext")) || strlen(v) >= sizeof(m->ext))
		goto out_free;
	strcpy(m->ext, v);
	ret = v1 ? parse_slots_v1(m, &cur) : parse_images(m, &cur);
	if (ret < 0)
		goto out_free;
	ret = -EINVAL;
	line = next_line(&cur);
	if (!line || strcmp(line, "end") != 0)
		goto out_free;
	*out = m;
	return 0;
out_free:
	manifest_free(&m);
	return ret;
}

int manifest_read(const char *path, struct manifest **out)
{
	void *text;
	size_t len;
	int ret;

	*out = NULL;
	ret = read_file(path, &text, &len);
	if (ret < 0)
		return ret;
	ret = parse_manifest_text(text, false, out);
	free(text);
	return ret;
}

int store_manifest_get(struct store *st, const char *source, const struct hf_key *segkey,
		       struct manifest **out)
{
	char path[PATH_MAX];
	int ret;

	seg_path(st, source, segkey, "seg", path, sizeof(path));
	ret = manifest_read(path, out);
	if (ret == -EINVAL)
		unlink(path);
	return ret;
}

int store_manifest_list(struct store *st, const char *source, const char *identity,
			void (*fn)(void *arg, const char *segment), void *arg)
{
	char dir[PATH_MAX], path[PATH_MAX];
	DIR *d;
	struct dirent *de;

	seg_dir(st, source, dir, sizeof(dir));
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		struct manifest *m = NULL;
		void *text;
		size_t len;
		if (!strstr(de->d_name, ".seg"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (read_file(path, &text, &len) < 0)
			continue;
		if (parse_manifest_text(text, true, &m) == 0) {
			if (strcmp(m->identity, identity) == 0 && strcmp(m->source, source) == 0)
				fn(arg, m->segment);
			manifest_free(&m);
		}
		free(text);
	}
	closedir(d);
	return 0;
}

void store_usage(struct store *st, uint64_t *images, uint64_t *bytes)
{
	*images = atomic_load(&st->images);
	*bytes = atomic_load(&st->bytes);
}

void store_usage_set(struct store *st, uint64_t images, uint64_t bytes)
{
	atomic_store(&st->images, images);
	atomic_store(&st->bytes, bytes);
}

const char *store_dir(const struct store *st)
{
	return st->dir;
}


/*
 * Opens (creating if missing) a lease file. Two clients of a network filesystem that
 * create one name at once can get EEXIST even without O_EXCL (GlusterFS does): the file
 * is there then, and is opened without O_CREAT; ENOENT after that (removed meanwhile),
 * ESTALE and EINTR are tried again.
 */
static int lease_open(struct store *st, const char *path)
{
	int fd = -1;

	for (int i = 0; i <= RETRIES; i++) {
		if (i > 0) {
			atomic_fetch_add(&st->lease_retries, 1);
			sleep_us((long)RETRY_FIRST_US << (i - 1));
		}
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		fd = -errno;
		if (fd == -ENOENT) {
			/* made here: it counts toward max_size from now on (cache/gc.c) */
			fd = create_file(st, path, O_RDWR | O_EXCL);
			if (fd >= 0) {
				atomic_fetch_add(&st->bytes, STORE_LEASE_BYTES);
				return fd;
			}
			if (fd == -EEXIST)
				continue; /* another made it at once: open it as it is */
		}
		if (!transient(-fd))
			return fd;
	}
	return fd;
}

/*
 * Whether the file fd locks is still the one at path: eviction unlinks a lease file
 * nobody held (cache/gc.c), and a lock taken on the unlinked one would exclude nobody.
 */
static bool lease_linked(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && a.st_nlink > 0 && stat(path, &b) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* A tick value as a lock offset: order kept, always >= 0. */
static off_t lock_offset(int64_t v)
{
	return (off_t)(((uint64_t)v ^ (1ull << 63)) >> 1);
}

/* An open-file-description lock: per descriptor, released when it closes or its holder dies. */
static int take_range(int fd, struct flock *fl)
{
	if (fcntl(fd, F_OFD_SETLK, fl) == 0)
		return 0;
	return errno == EAGAIN || errno == EACCES ? -EWOULDBLOCK : -errno;
}

/*
 * Takes the range lock on a lease file, retrying what a network filesystem may answer for
 * a while (ESTALE: the file was replaced, so it is opened again; EINTR; ENOLCK from an
 * overloaded lock manager). Counts the retries, and the failures that remain.
 */
int store_lease_try_range(struct store *st, const struct hf_key *k, int64_t lo, int64_t hi)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char path[PATH_MAX], hex[HF_KEY_HEXLEN + 1];
	int fd = -1, ret = 0;

	if (hi < lo)
		return -EINVAL;
	fl.l_start = lock_offset(lo);
	fl.l_len = lock_offset(hi) - fl.l_start + 1;
	key_hex(k, hex);
	snprintf(path, sizeof(path), "%s/lock/%s.lock", st->dir, hex);
	for (int i = 0; i <= RETRIES; i++) {
		if (i > 0) {
			atomic_fetch_add(&st->lease_retries, 1);
			sleep_us((long)RETRY_FIRST_US << (i - 1));
		}
		fd = lease_open(st, path);
		if (fd < 0) {
			ret = fd;
			break; /* lease_open retried already */
		}
		ret = take_range(fd, &fl);
		if (ret == 0 && lease_linked(fd, path))
			return fd;
		if (ret == 0)
			ret = -ESTALE; /* collected meanwhile: lock the file now there */
		close(fd);
		if (ret == -EWOULDBLOCK)
			return ret;
		if (ret != -ESTALE && ret != -EINTR && ret != -ENOLCK)
			break;
	}
	atomic_fetch_add(&st->lease_failures, 1);
	return ret;
}

void store_lease_stats(struct store *st, uint64_t *retries, uint64_t *failures)
{
	*retries = atomic_load(&st->lease_retries);
	*failures = atomic_load(&st->lease_failures);
}

void store_image_stats(struct store *st, uint64_t *not_landed, uint64_t *waits)
{
	*not_landed = atomic_load(&st->not_landed);
	*waits = atomic_load(&st->not_landed_waits);
}

void store_lease_release(int *fd)
{
	if (*fd >= 0)
		close(*fd); /* its open-file-description lock goes with it */
	*fd = -1;
}

struct store_watch {
	struct store *st;
	int fd;
	uint8_t added[256]; /* one flag per img/xx directory */
};

struct store_watch *store_watch_new(struct store *st)
{
	struct store_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->st = st;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	return w;
}

void store_watch_add(struct store_watch *w, const struct hf_key *k)
{
	char path[PATH_MAX];
	if (!w || w->fd < 0 || w->added[k->b[0]])
		return;
	snprintf(path, sizeof(path), "%s/img/%02x", w->st->dir, k->b[0]);
	mkdir_p(path, w->st->dir_mode, w->st->gid);
	if (inotify_add_watch(w->fd, path, IN_MOVED_TO | IN_CLOSE_WRITE) >= 0)
		w->added[k->b[0]] = 1;
}

void store_watch_wait(struct store_watch *w, int timeout_ms)
{
	struct pollfd p = {.fd = w ? w->fd : -1, .events = POLLIN};
	char buf[4096];

	poll(&p, 1, timeout_ms);
	if (p.revents & POLLIN)
		while (read(w->fd, buf, sizeof(buf)) > 0)
			;
}

void store_watch_free(struct store_watch **pw)
{
	struct store_watch *w = pw ? *pw : NULL;
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	free(w);
	*pw = NULL;
}
