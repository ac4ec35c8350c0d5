/*
 * watch: tells the filesystem when videos it serves segments of may have changed.
 *
 * The kernel serves cached frame pages without asking the daemon, so a rewritten,
 * touched or replaced video has to be noticed here and its segment directories
 * dropped from the kernel's caches. One thread waits on inotify (local changes, noticed
 * at once) and also wakes every `period_ms` (changes inotify cannot see, such as those
 * made by another NFS client); either way it calls check(arg), which compares every
 * served segment with its file. Watches are counted: each watch_add is paired with a
 * watch_remove.
 */
#ifndef HF_WATCH_H
#define HF_WATCH_H

struct watch;

/* Starts the thread. 0 or -errno. */
int watch_start(void (*check)(void *arg), void *arg, int period_ms, struct watch **out);

/* Watches the file at path: a watch descriptor (>= 0) for watch_remove, or -errno
 * (the periodic check still covers that file). */
int watch_add(struct watch *w, const char *path);

/* Drops one watch_add of wd; accepts a negative wd. */
void watch_remove(struct watch *w, int wd);

/* Stops the thread and frees; accepts NULL and clears the caller's pointer. */
void watch_stop(struct watch **w);

#endif
