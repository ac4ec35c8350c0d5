/*
 * caller: everything the mount reads of the host, done as the FUSE caller would do it, so
 * that the mount is never a way around the system's permissions (SPEC §6a).
 *
 * Where the daemon may change identity (root, or CAP_SETUID and CAP_SETGID), the calling
 * thread takes the caller's filesystem uid, gid and supplementary groups between
 * caller_enter and caller_leave (per thread: raw setfsuid/setfsgid/setgroups, never the
 * process-wide libc wrappers) and holds no capability in effect meanwhile (CAP_SYS_PTRACE
 * would open /proc/<pid>/... of anyone): every directory's search permission, symlinks
 * resolved as the caller resolves them, ACLs and security modules all count. Elsewhere
 * (a daemon run by an ordinary user) a caller other than that user must pass a mode-bit
 * check of the file and of every directory on its resolved path (caller_check_source),
 * and the mirror answers other users only with what every user could see.
 *
 * Paths are resolved with openat2's RESOLVE_NO_MAGICLINKS (no /proc/self/fd/N or
 * /proc/PID/cwd), and nothing on a pseudo-filesystem (proc, sysfs, devtmpfs, cgroup,
 * debugfs...) is shown. Nothing here blocks on what a user controls: files are opened
 * with O_NONBLOCK | O_NOCTTY and their type is checked on the descriptor.
 *
 * Thread-safe. Functions taking a struct caller must run between caller_enter and
 * caller_leave on the same thread.
 */
#ifndef HF_CALLER_H
#define HF_CALLER_H

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Notes the daemon's own identity; call once before the session starts. */
void caller_init(void);

/* The caller of one request, as the thread serving it has become. */
struct caller {
	uid_t uid;
	gid_t gid;
	bool switched;  /* the thread holds the caller's credentials */
	bool self;      /* root or the daemon's own user: no check to make */
	bool restricted; /* another user the daemon cannot become: mode bits only */
	unsigned caps[2]; /* the effective capabilities to restore */
};

/*
 * Makes this thread act as req's caller (see above). 0 or -errno (then nothing changed).
 * Always pair with caller_leave.
 */
int caller_enter(fuse_req_t req, struct caller *c);
void caller_leave(struct caller *c);

/* caller_enter for the caller uid, gid and groups[n] (what a request's context says). */
int caller_enter_ids(uid_t uid, gid_t gid, const gid_t *groups, int n, struct caller *c);

/*
 * Opens path (absolute) as the caller: flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, no
 * magic links. -ENOENT for anything on a pseudo-filesystem. The descriptor, or -errno.
 */
int caller_open(struct caller *c, const char *path, int flags);

/*
 * lstat of path as the caller: the last component is not followed. -ENOENT for a
 * pseudo-filesystem (the entry itself, or a mount of one on it). 0 or -errno.
 */
int caller_lstat(struct caller *c, const char *path, struct stat *st);

/* readlink of path as the caller, NUL-terminated. Its length, or -errno. */
int caller_readlink(struct caller *c, const char *path, char *buf, size_t len);

/*
 * Whether the caller may open the regular file name in the directory open as dirfd
 * (opened, then closed, as the caller). Not a regular file: false.
 */
bool caller_may_read_at(struct caller *c, int dirfd, const char *name);

/* A pseudo-filesystem is mounted at path (absolute): it is left out of listings. */
bool caller_pseudo_mount(const char *path);

/*
 * Checks that req's caller may open path for reading, and what is there: 0 with *st of
 * the regular file the caller opened (then closed), 1 when path is something the caller
 * may see that is not a regular file (FIFO, device, socket, directory: *st filled,
 * nothing opened), or -errno as the caller would get it (-ENOENT, -EACCES, -ELOOP...).
 * *to_all tells whether any local user could open it too (no ACL, every directory of
 * the path searchable and the file readable by others): only then may the kernel keep
 * the answer for every user; otherwise each path walk must ask again.
 */
int caller_check_source(fuse_req_t req, const char *path, struct stat *st, bool *to_all);

#endif
