/*
 * Per-thread credentials. glibc's setgroups()/setfsuid() wrappers are process-wide (they
 * signal every thread); the raw system calls change only the calling thread, which is
 * what a FUSE loop thread answering one caller needs.
 */
#include "fs/caller.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MAX_GROUPS 256

static bool can_switch;
static uid_t own_uid;
static gid_t own_gid;
static gid_t own_groups[MAX_GROUPS];
static int own_ngroups;

void caller_init(void)
{
	own_uid = geteuid();
	own_gid = getegid();
	own_ngroups = getgroups(MAX_GROUPS, own_groups);
	if (own_ngroups < 0)
		own_ngroups = 0;
	/* setfsuid answers with the previous value; asking for our own changes nothing */
	can_switch = own_uid == 0;
}

struct who {
	uid_t uid;
	gid_t gid;
	gid_t groups[MAX_GROUPS];
	int ngroups;
};

static void who_of(fuse_req_t req, struct who *w)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	int n;

	w->uid = ctx->uid;
	w->gid = ctx->gid;
	n = fuse_req_getgroups(req, MAX_GROUPS, w->groups);
	/* Unknown groups (no /proc, more than we hold): only the primary group counts. */
	w->ngroups = n < 0 || n > MAX_GROUPS ? 0 : n;
}

static int become(const struct who *w)
{
	if (syscall(SYS_setgroups, (size_t)w->ngroups, w->groups) < 0)
		return -errno;
	syscall(SYS_setfsgid, w->gid);
	syscall(SYS_setfsuid, w->uid);
	if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != w->uid ||
	    (gid_t)syscall(SYS_setfsgid, (gid_t)-1) != w->gid)
		return -EPERM;
	return 0;
}

static void become_self(void)
{
	syscall(SYS_setfsuid, own_uid);
	syscall(SYS_setfsgid, own_gid);
	syscall(SYS_setgroups, (size_t)own_ngroups, own_groups);
}

static bool in_groups(const struct who *w, gid_t g)
{
	if (w->gid == g)
		return true;
	for (int i = 0; i < w->ngroups; i++)
		if (w->groups[i] == g)
			return true;
	return false;
}

static bool mode_allows(const struct who *w, const struct stat *st, mode_t usr, mode_t grp,
			mode_t oth)
{
	if (w->uid == 0)
		return true;
	if (w->uid == st->st_uid)
		return st->st_mode & usr;
	if (in_groups(w, st->st_gid))
		return st->st_mode & grp;
	return st->st_mode & oth;
}

/*
 * Calls fn on every directory above path as named and above where it leads (resolved),
 * nearest first, until one returns non-zero: that value, or 0, or -errno of realpath.
 */
static int each_dir_above(const char *path, int (*fn)(const char *dir, const void *arg),
			  const void *arg)
{
	char buf[PATH_MAX], *real, *p;
	const char *paths[2];
	int ret = 0;

	real = realpath(path, NULL);
	if (!real)
		return -errno;
	paths[0] = path;
	paths[1] = real;
	for (int i = 0; i < 2 && ret == 0; i++) {
		if (strlen(paths[i]) >= sizeof(buf)) {
			ret = -ENAMETOOLONG;
			break;
		}
		strcpy(buf, paths[i]);
		for (p = strrchr(buf, '/'); p && ret == 0; p = strrchr(buf, '/')) {
			*p = 0;
			ret = fn(*buf ? buf : "/", arg);
		}
	}
	free(real);
	return ret;
}

/* A directory w may search (mode bits). */
static int searchable_by(const char *dir, const void *arg)
{
	struct stat st;
	if (stat(dir, &st) < 0)
		return -errno;
	return mode_allows(arg, &st, S_IXUSR, S_IXGRP, S_IXOTH) ? 0 : -EACCES;
}

static bool has_acl(const char *path)
{
	return getxattr(path, "system.posix_acl_access", NULL, 0) >= 0 || errno == ERANGE;
}

/* A directory every local user may search: o+x, no ACL. */
static int searchable_by_all(const char *dir, const void *arg)
{
	struct stat st;
	(void)arg;
	return stat(dir, &st) == 0 && (st.st_mode & S_IXOTH) && !has_acl(dir) ? 0 : -EACCES;
}

/*
 * Any local user could open path: no ACL, o+x on every directory of the path as named
 * and as resolved, o+r on the file. Called as the daemon, after the caller's check.
 */
static bool open_to_all(const char *path, const struct stat *st)
{
	return (st->st_mode & S_IROTH) && !has_acl(path) &&
	       each_dir_above(path, searchable_by_all, NULL) == 0;
}

int caller_check_source(fuse_req_t req, const char *path, struct stat *st, bool *to_all)
{
	struct who w;
	bool as_caller, switched = false;
	int fd, ret;

	*to_all = false;
	who_of(req, &w);
	as_caller = w.uid != own_uid && w.uid != 0;
	if (as_caller && can_switch) {
		ret = become(&w);
		if (ret < 0) {
			become_self();
			return ret;
		}
		switched = true;
	} else if (as_caller) {
		ret = each_dir_above(path, searchable_by, &w); /* mode bits, for every directory */
		if (ret < 0)
			return ret;
	}
	if (stat(path, st) < 0) {
		ret = -errno;
		goto out_restore;
	}
	if (!S_ISREG(st->st_mode)) {
		ret = 1;
		goto out_restore;
	}
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		ret = -errno;
		goto out_restore;
	}
	if (fstat(fd, st) < 0)
		ret = -errno;
	else
		ret = S_ISREG(st->st_mode) ? 0 : 1;
	close(fd);
	if (ret == 0 && as_caller && !switched && !mode_allows(&w, st, S_IRUSR, S_IRGRP, S_IROTH))
		ret = -EACCES;
out_restore:
	if (switched)
		become_self();
	if (ret == 0)
		*to_all = open_to_all(path, st);
	return ret;
}
