/*
 * watch: one thread, inotify plus a period. See watch.h.
 */
#include "fs/watch.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "fs/log.h"

#define WATCH_MASK (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVE_SELF | IN_DELETE_SELF)

struct watch {
	int ifd, stopfd, period_ms;
	void (*check)(void *arg);
	void *arg;
	pthread_t thread;
	pthread_mutex_t lock;
	struct wd_ref {
		int wd, refs;
	} *v;
	size_t n, cap;
};

/* Reads every queued event: which file does not matter, every segment is compared. */
static void drain(struct watch *w)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t len;

	while ((len = read(w->ifd, buf, sizeof(buf))) > 0)
		;
	if (len < 0 && errno != EAGAIN && errno != EINTR)
		hf_log(HF_LOG_WARN, "source watch: %s", strerror(errno));
}

static void *watch_main(void *arg)
{
	struct watch *w = arg;
	struct pollfd p[2] = {{.fd = w->ifd, .events = POLLIN}, {.fd = w->stopfd, .events = POLLIN}};

	for (;;) {
		int r = poll(p, 2, w->period_ms);
		if (r < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (r > 0 && p[0].revents)
			drain(w);
		/* An event, or a period without one: either way every segment is compared. */
		w->check(w->arg);
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
	w->stopfd = eventfd(0, EFD_CLOEXEC);
	if (w->stopfd < 0) {
		ret = -errno;
		free(w);
		return ret;
	}
	/* Without inotify (no instances left) the period alone notices changes. */
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd < 0)
		hf_log(HF_LOG_WARN, "no inotify (%s): changed videos are noticed within %d ms",
		       strerror(errno), period_ms);
	pthread_mutex_init(&w->lock, NULL);
	ret = -pthread_create(&w->thread, NULL, watch_main, w);
	if (ret < 0) {
		pthread_mutex_destroy(&w->lock);
		goto fail;
	}
	*out = w;
	return 0;
fail:
	if (w->ifd >= 0)
		close(w->ifd);
	close(w->stopfd);
	free(w);
	return ret;
}

int watch_add(struct watch *w, const char *path)
{
	int wd;
	size_t i;

	if (!w || w->ifd < 0)
		return -ENOSYS;
	pthread_mutex_lock(&w->lock);
	wd = inotify_add_watch(w->ifd, path, WATCH_MASK);
	if (wd < 0) {
		wd = -errno;
		goto out;
	}
	for (i = 0; i < w->n && w->v[i].wd != wd; i++)
		;
	if (i == w->n) {
		if (w->n == w->cap) {
			size_t cap = w->cap ? w->cap * 2 : 16;
			void *v = realloc(w->v, cap * sizeof(*w->v));
			if (!v) {
				inotify_rm_watch(w->ifd, wd);
				wd = -ENOMEM;
				goto out;
			}
			w->v = v;
			w->cap = cap;
		}
		w->v[w->n++] = (struct wd_ref){wd, 0};
	}
	w->v[i].refs++;
out:
	pthread_mutex_unlock(&w->lock);
	return wd;
}

void watch_remove(struct watch *w, int wd)
{
	if (!w || w->ifd < 0 || wd < 0)
		return;
	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < w->n; i++) {
		if (w->v[i].wd != wd)
			continue;
		if (--w->v[i].refs == 0) {
			/* EINVAL when the file is gone and the kernel dropped the watch: fine */
			inotify_rm_watch(w->ifd, wd);
			w->v[i] = w->v[--w->n];
		}
		break;
	}
	pthread_mutex_unlock(&w->lock);
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
	free(w->v);
	free(w);
	*pw = NULL;
}
