/*
 * watch: tells the filesystem when videos it serves segments of may have changed.
 *
 * The kernel serves cached frame pages without asking the daemon, so a rewritten,
 * touched, chmod'ed or replaced video has to be noticed here and its segment directories
 * dropped from the kernel's caches. One thread waits on inotify (local changes, noticed
 * at once) and also wakes every `period_ms` (changes inotify cannot see, such as those
 * made by another NFS client); either way it calls check(arg), which compares every
 * served segment with its file.
 *
 * Bounded: inotify watches are the system's (fs.inotify.max_user_watches, shared by every
 * process of the user), so one is taken per source *directory*, not per file, shared by
 * every video and segment in it (refcounted), and at most WATCH_MAX_DIRS of them. A video
 * in a directory beyond the cap, or when inotify says ENOSPC, is not watched: the
 * periodic check (every period_ms) notices its changes. So is a change made through a
 * name the watch does not see (a hard link elsewhere, the target of a symlink in another
 * directory). Events are filtered by name: a busy file beside the videos costs a wakeup
 * per event, never a compare of every segment.
 *
 * Watches are counted: each watch_add that returned >= 0 is paired with a watch_remove.
 * Thread-safe; watch_add and watch_remove never block beyond one inotify call.
 */
#ifndef HF_WATCH_H
#define HF_WATCH_H

/* inotify watches one mount takes at most: one per source directory in use. */
#define WATCH_MAX_DIRS 1024

struct watch;

/* Starts the thread. 0 or -errno. */
int watch_start(void (*check)(void *arg), void *arg, int period_ms, struct watch **out);

/*
 * Watches the file at path (through its directory): a handle (>= 0) for watch_remove,
 * or -errno: -ENOSPC beyond WATCH_MAX_DIRS or the system's limit, -ENOSYS without
 * inotify (the periodic check still covers that file).
 */
int watch_add(struct watch *w, const char *path);

/* Drops one watch_add of handle; accepts a negative handle. */
void watch_remove(struct watch *w, int handle);

/* Directories watched now (inotify watches held); for tests and statistics. */
int watch_dirs(struct watch *w);

/* Stops the thread and frees; accepts NULL and clears the caller's pointer. */
void watch_stop(struct watch **w);

#endif
