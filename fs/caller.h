/*
 * caller: looks at a source file as the FUSE caller would, so that the mount is never a
 * way around the system's permissions (SPEC §6a).
 *
 * Where the daemon may change identity (root, or CAP_SETUID and CAP_SETGID), the calling
 * thread takes the caller's filesystem uid, gid and supplementary groups for the stat and
 * the open (per thread: raw setfsuid/setfsgid/setgroups, never the process-wide libc
 * wrappers), so every directory's search permission, symlinks resolved as the caller
 * resolves them, ACLs and security modules all count. Elsewhere (a daemon run by an
 * ordinary user) a caller other than that user must pass a mode-bit check of the file
 * and of every directory on its resolved path.
 *
 * Nothing here blocks on what a user controls: only regular files are opened, with
 * O_NONBLOCK, and the type is checked again on the descriptor.
 */
#ifndef HF_CALLER_H
#define HF_CALLER_H

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/stat.h>

/* Notes the daemon's own identity; call once before the session starts. */
void caller_init(void);

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
