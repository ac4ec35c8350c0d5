/*
 * watch: one thread, inotify on source directories plus a period. See watch.h.
 *
 * dirs[] holds one entry per inotify watch (a directory), with the number of handles
 * that use it; handles[] one entry per (directory, file name) with the number of
 * watch_adds of it, found through a hash of (directory, name) so that a directory of
 * 100,000 videos costs no scan per lookup.
 */
#include "fs/watch.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "fs/log.h"

/* What changes a file in the directory, or the directory itself. */
#define DIR_MASK                                                                                   \
	(IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE |        \
	 IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

struct dir {
	char *path; /* NULL: a free entry */
	int wd;     /* -1 once the kernel dropped the watch (directory removed) */
	int refs;   /* handles using it */
};

struct handle {
	char *name; /* NULL: a free entry */
	int dir;    /* index in dirs */
	int refs;   /* watch_adds of it */
	int next;   /* hash chain, -1 ends */
};

struct watch {
	int ifd, stopfd, period_ms;
	void (*check)(void *arg);
	void *arg;
	pthread_t thread;
	pthread_mutex_t lock;
	struct dir *dirs;
	int ndirs, dirs_cap, live_dirs;
	struct handle *handles;
	int nhandles, handles_cap, free_handle; /* free list through next */
	int *buckets, nbuckets;                 /* a power of two */
	bool told_full;
};

static uint64_t name_hash(int dir, const char *name)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)(unsigned)dir;
	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 1099511628211ull;
	return h;
}

static int *bucket_of(struct watch *w, int dir, const char *name)
{
	return &w->buckets[name_hash(dir, name) & (uint64_t)(w->nbuckets - 1)];
}

/* The handle of (dir, name), or -1. Lock held. */
static int handle_find(struct watch *w, int dir, const char *name)
{
	if (!w->nbuckets)
		return -1;
	for (int i = *bucket_of(w, dir, name); i >= 0; i = w->handles[i].next)
		if (w->handles[i].dir == dir && strcmp(w->handles[i].name, name) == 0)
			return i;
	return -1;
}

/* Doubles the buckets once they hold twice as many handles. 0 or -ENOMEM. Lock held. */
static int buckets_grow(struct watch *w, int live)
{
	int nb = w->nbuckets ? w->nbuckets * 2 : 256;
	int *b;

	if (w->nbuckets && live < 2 * w->nbuckets)
		return 0;
	b = malloc((size_t)nb * sizeof(*b));
	if (!b)
		return -ENOMEM;
	free(w->buckets);
	w->buckets = b;
	w->nbuckets = nb;
	for (int i = 0; i < nb; i++)
		b[i] = -1;
	for (int i = 0; i < w->nhandles; i++) {
		struct handle *hd = &w->handles[i];
		if (!hd->name)
			continue;
		int *bk = bucket_of(w, hd->dir, hd->name);
		hd->next = *bk;
		*bk = i;
	}
	return 0;
}

/* The live directory entry of path or of wd, or -1. Lock held. */
static int dir_find(struct watch *w, const char *path, int wd)
{
	for (int i = 0; i < w->ndirs; i++)
		if (w->dirs[i].path && w->dirs[i].wd >= 0 &&
		    (path ? strcmp(w->dirs[i].path, path) == 0 : w->dirs[i].wd == wd))
			return i;
	return -1;
}

/*
 * The directory entry for dir (a watch added, or an existing one shared), or -errno:
 * -ENOSPC beyond WATCH_MAX_DIRS or the system's limit. Lock held.
 */
static int dir_get(struct watch *w, const char *dir)
{
	int i = dir_find(w, dir, -1), wd, ret;
	char *copy;

	if (i >= 0)
		return i;
	if (w->live_dirs >= WATCH_MAX_DIRS)
		return -ENOSPC;
	wd = inotify_add_watch(w->ifd, dir, DIR_MASK);
	if (wd < 0)
		return -errno;
	i = dir_find(w, NULL, wd); /* another name of a directory watched already */
	if (i >= 0)
		return i;
	copy = strdup(dir);
	if (!copy) {
		ret = -ENOMEM;
		goto out_rm_watch;
	}
	for (i = 0; i < w->ndirs && w->dirs[i].path; i++)
		;
	if (i == w->ndirs) {
		if (w->ndirs == w->dirs_cap) {
			int cap = w->dirs_cap ? w->dirs_cap * 2 : 16;
			void *v = realloc(w->dirs, (size_t)cap * sizeof(*w->dirs));
			if (!v) {
				ret = -ENOMEM;
				goto out_free_copy;
			}
			w->dirs = v;
			w->dirs_cap = cap;
		}
		w->ndirs++;
	}
	w->dirs[i] = (struct dir){.path = copy, .wd = wd, .refs = 0};
	w->live_dirs++;
	return i;
out_free_copy:
	free(copy);
out_rm_watch:
	inotify_rm_watch(w->ifd, wd);
	return ret;
}

/* Drops a handle's use of directory i; the watch goes with its last. Lock held. */
static void dir_put(struct watch *w, int i)
{
	struct dir *d = &w->dirs[i];

	if (--d->refs > 0)
		return;
	if (d->wd >= 0) {
		/* EINVAL when the directory is gone and the kernel dropped the watch: fine */
		inotify_rm_watch(w->ifd, d->wd);
		w->live_dirs--;
	}
	free(d->path);
	d->path = NULL;
}

static void split(const char *path, char *dir, size_t len, const char **name)
{
	const char *slash = strrchr(path, '/');

	if (!slash) {
		snprintf(dir, len, ".");
		*name = path;
	} else if (slash == path) {
		snprintf(dir, len, "/");
		*name = slash + 1;
	} else {
		snprintf(dir, len, "%.*s", (int)(slash - path), path);
		*name = slash + 1;
	}
}

int watch_add(struct watch *w, const char *path)
{
	char dir[PATH_MAX];
	const char *name;
	int d, i, ret;

	if (!w || w->ifd < 0)
		return -ENOSYS;
	if (strlen(path) >= sizeof(dir))
		return -ENAMETOOLONG;
	split(path, dir, sizeof(dir), &name);
	pthread_mutex_lock(&w->lock);
	d = dir_get(w, dir);
	if (d < 0) {
		ret = d;
		if (ret == -ENOSPC && !w->told_full) {
			w->told_full = true;
			hf_log(HF_LOG_INFO,
			       "source watch: %d directories watched (at most %d, or the system's "
			       "limit): videos in other directories are checked every %d ms",
			       w->live_dirs, WATCH_MAX_DIRS, w->period_ms);
		}
		goto out;
	}
	i = handle_find(w, d, name);
	if (i >= 0) {
		w->handles[i].refs++;
		ret = i;
		goto out;
	}
	ret = buckets_grow(w, w->nhandles + 1);
	if (ret < 0)
		goto out_put_dir;
	if (w->free_handle >= 0) {
		i = w->free_handle;
		w->free_handle = w->handles[i].next;
	} else {
		if (w->nhandles == w->handles_cap) {
			int cap = w->handles_cap ? w->handles_cap * 2 : 64;
			void *v = realloc(w->handles, (size_t)cap * sizeof(*w->handles));
			if (!v) {
				ret = -ENOMEM;
				goto out_put_dir;
			}
			w->handles = v;
			w->handles_cap = cap;
		}
		i = w->nhandles++;
	}
	w->handles[i] = (struct handle){.name = strdup(name), .dir = d, .refs = 1, .next = -1};
	if (!w->handles[i].name) {
		w->handles[i].next = w->free_handle;
		w->free_handle = i;
		ret = -ENOMEM;
		goto out_put_dir;
	}
	{
		int *bk = bucket_of(w, d, name);
		w->handles[i].next = *bk;
		*bk = i;
	}
	w->dirs[d].refs++;
	ret = i;
	goto out;
out_put_dir:
	w->dirs[d].refs++;
	dir_put(w, d);
out:
	pthread_mutex_unlock(&w->lock);
	return ret;
}

void watch_remove(struct watch *w, int handle)
{
	struct handle *hd;

	if (!w || w->ifd < 0 || handle < 0)
		return;
	pthread_mutex_lock(&w->lock);
	if (handle >= w->nhandles || !(hd = &w->handles[handle])->name || --hd->refs > 0)
		goto out;
	for (int *p = bucket_of(w, hd->dir, hd->name); *p >= 0; p = &w->handles[*p].next)
		if (*p == handle) {
			*p = hd->next;
			break;
		}
	dir_put(w, hd->dir);
	free(hd->name);
	hd->name = NULL;
	hd->next = w->free_handle;
	w->free_handle = handle;
out:
	pthread_mutex_unlock(&w->lock);
}

int watch_dirs(struct watch *w)
{
	int n;

	if (!w)
		return 0;
	pthread_mutex_lock(&w->lock);
	n = w->live_dirs;
	pthread_mutex_unlock(&w->lock);
	return n;
}

/* Whether one event may concern a watched file (a name watched, or the directory). */
static bool event_matters(struct watch *w, const struct inotify_event *ev)
{
	int d;

	if (ev->mask & IN_Q_OVERFLOW)
		return true;
	d = dir_find(w, NULL, ev->wd);
	if (d < 0)
		return false;
	if (ev->mask & IN_IGNORED) { /* the directory went: its files are checked now */
		w->dirs[d].wd = -1;
		w->live_dirs--;
		return true;
	}
	return ev->len == 0 || handle_find(w, d, ev->name) >= 0;
}

/* Reads every queued event; true when one concerns a watched file. */
static bool drain(struct watch *w)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool matters = false;
	ssize_t len;

	while ((len = read(w->ifd, buf, sizeof(buf))) > 0) {
		pthread_mutex_lock(&w->lock);
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			matters |= event_matters(w, ev);
			p += sizeof(*ev) + ev->len;
		}
		pthread_mutex_unlock(&w->lock);
	}
	if (len < 0 && errno != EAGAIN && errno != EINTR)
		hf_log(HF_LOG_WARN, "source watch: %s", strerror(errno));
	return matters;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *watch_main(void *arg)
{
	struct watch *w = arg;
	struct pollfd p[2] = {{.fd = w->ifd, .events = POLLIN}, {.fd = w->stopfd, .events = POLLIN}};
	int64_t due = mono_ms() + w->period_ms;

	for (;;) {
		int64_t left = due - mono_ms();
		bool check;
		int r = poll(p, 2, left > 0 ? (int)left : 0);
		if (r < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		/* an event about a watched file, or a period without one (events about other
		 * files do not delay it) */
		check = r > 0 && p[0].revents && drain(w);
		if (!check && mono_ms() < due)
			continue;
		w->check(w->arg);
		due = mono_ms() + w->period_ms;
	}
	return NULL;
}

int watch_start(void (*check)(void *arg), void *arg, int period_ms, struct watch **out)
{
	struct watch *w = calloc(1, sizeof(*w));
	int ret;

	if (!w)
		return -ENOMEM;
	w->check = check;
	w->arg = arg;
	w->period_ms = period_ms;
	w->free_handle = -1;
	w->stopfd = eventfd(0, EFD_CLOEXEC);
	if (w->stopfd < 0) {
		ret = -errno;
		goto out_free;
	}
	/* Without inotify (no instances left) the period alone notices changes. */
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd < 0)
		hf_log(HF_LOG_WARN, "no inotify (%s): changed videos are noticed within %d ms",
		       strerror(errno), period_ms);
	pthread_mutex_init(&w->lock, NULL);
	ret = -pthread_create(&w->thread, NULL, watch_main, w);
	if (ret < 0)
		goto out_destroy;
	*out = w;
	return 0;
out_destroy:
	pthread_mutex_destroy(&w->lock);
	if (w->ifd >= 0)
		close(w->ifd);
	close(w->stopfd);
out_free:
	free(w);
	return ret;
}

void watch_stop(struct watch **pw)
{
	struct watch *w = pw ? *pw : NULL;
	uint64_t one = 1;

	if (!w)
		return;
	if (write(w->stopfd, &one, sizeof(one)) != sizeof(one))
		hf_log(HF_LOG_WARN, "source watch: cannot stop: %s", strerror(errno));
	pthread_join(w->thread, NULL);
	if (w->ifd >= 0)
		close(w->ifd);
	close(w->stopfd);
	pthread_mutex_destroy(&w->lock);
	for (int i = 0; i < w->ndirs; i++)
		free(w->dirs[i].path);
	for (int i = 0; i < w->nhandles; i++)
		free(w->handles[i].name);
	free(w->dirs);
	free(w->handles);
	free(w->buckets);
	free(w);
	*pw = NULL;
}
