/*
 * ahead: a small queue and one thread. See ahead.h.
 */
#include "fs/ahead.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define QUEUE 16
/* Seconds without a request after which the last segment's reference is dropped. */
#define IDLE_S 2

struct ahead {
	int depth;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	struct req {
		struct segment *seg;
		int64_t slot;
	} q[QUEUE];
	size_t head, n;
	/* the thread's own: the run of slots of the last segment already asked for */
	struct segment *last;
	int64_t lo, upto;
};

static void ask(struct ahead *a, struct segment *seg, int64_t slot)
{
	int64_t count = segment_count(seg), from = slot, end = slot + a->depth;

	if (seg == a->last && slot >= a->lo && slot <= a->upto + 1) {
		from = a->upto + 1; /* the reader goes on in order */
	} else {
		a->lo = slot;
		a->upto = slot - 1;
	}
	for (int64_t k = from; k <= end && k < count; k++)
		segment_frame_prefetch(seg, k);
	if (a->last != seg) {
		segment_put(&a->last);
		segment_get(seg);
		a->last = seg;
	}
	if (end > a->upto)
		a->upto = end;
}

static void *ahead_main(void *arg)
{
	struct ahead *a = arg;

	pthread_mutex_lock(&a->lock);
	for (;;) {
		struct req r;
		while (!a->stop && a->n == 0) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += IDLE_S;
			if (pthread_cond_timedwait(&a->cond, &a->lock, &ts) == ETIMEDOUT && a->last) {
				/* no reader for a while: the segment may be freed (engine_sweep) */
				pthread_mutex_unlock(&a->lock);
				segment_put(&a->last);
				pthread_mutex_lock(&a->lock);
			}
		}
		if (a->stop)
			break;
		r = a->q[a->head];
		a->head = (a->head + 1) % QUEUE;
		a->n--;
		pthread_mutex_unlock(&a->lock);
		ask(a, r.seg, r.slot);
		segment_put(&r.seg);
		pthread_mutex_lock(&a->lock);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int ahead_start(int depth, struct ahead **out)
{
	struct ahead *a = calloc(1, sizeof(*a));
	int ret;

	if (!a)
		return -ENOMEM;
	a->depth = depth;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	ret = -pthread_create(&a->thread, NULL, ahead_main, a);
	if (ret < 0) {
		pthread_cond_destroy(&a->cond);
		pthread_mutex_destroy(&a->lock);
		free(a);
		return ret;
	}
	*out = a;
	return 0;
}

void ahead_note(struct ahead *a, struct segment *seg, int64_t slot)
{
	struct segment *dropped = NULL;

	if (!a)
		return;
	segment_get(seg);
	pthread_mutex_lock(&a->lock);
	if (a->n == QUEUE) {
		dropped = a->q[a->head].seg;
		a->head = (a->head + 1) % QUEUE;
		a->n--;
	}
	a->q[(a->head + a->n) % QUEUE] = (struct req){seg, slot};
	a->n++;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
	segment_put(&dropped);
}

void ahead_stop(struct ahead **pa)
{
	struct ahead *a = pa ? *pa : NULL;

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	for (; a->n > 0; a->n--, a->head = (a->head + 1) % QUEUE)
		segment_put(&a->q[a->head].seg);
	segment_put(&a->last);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
	*pa = NULL;
}
