/*
 * Per-thread credentials. glibc's setgroups()/setfsuid() wrappers are process-wide (they
 * signal every thread); the raw system calls change only the calling thread, which is
 * what a FUSE loop thread answering one caller needs. capset() with pid 0 is per thread
 * too: the effective set is emptied while the thread acts as a caller (a fsuid change
 * drops only the filesystem capabilities; CAP_SYS_PTRACE would stay and open the magic
 * links of /proc/<pid>/ for anyone).
 */
#include "fs/caller.h"
#include "fs/mountinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MAX_GROUPS 256

static bool can_switch;
static uid_t own_uid;
static gid_t own_gid;
static gid_t own_groups[MAX_GROUPS];
static int own_ngroups;

/* ---- pseudo-filesystems: mounts read from /proc/self/mountinfo ---- */

static const char *const pseudo_types[] = {
    "proc",	  "sysfs",	"devtmpfs", "devpts",	   "cgroup",	 "cgroup2",
    "debugfs",	  "tracefs",	"securityfs", "bpf",	   "pstore",	 "efivarfs",
    "configfs",	  "fusectl",	"mqueue",     "binfmt_misc", "selinuxfs", "smackfs",
    "hugetlbfs",  "rpc_pipefs", "nsfs",	      "autofs",	   "ramfs_sysfs",
};

struct mount_ent {
	uint64_t id;
	bool pseudo;
	char *point; /* pseudo ones only */
};

static struct {
	pthread_mutex_t lock;
	struct mount_ent *v;
	size_t n;
	struct timespec read_at;
} mounts = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, {0, 0}};

static bool is_pseudo_type(const char *t)
{
	for (size_t i = 0; i < sizeof(pseudo_types) / sizeof(pseudo_types[0]); i++)
		if (strcmp(t, pseudo_types[i]) == 0)
			return true;
	return false;
}

static void mounts_clear_locked(void)
{
	for (size_t i = 0; i < mounts.n; i++)
		free(mounts.v[i].point);
	free(mounts.v);
	mounts.v = NULL;
	mounts.n = 0;
}

/* Reads the mount table again; mounts.lock held. At most once a second. */
static void mounts_read_locked(void)
{
	struct timespec now;
	struct mount_ent *v = NULL;
	size_t n = 0, cap = 0;
	char *line = NULL;
	size_t linecap = 0;
	FILE *f;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (mounts.v && now.tv_sec == mounts.read_at.tv_sec)
		return;
	mounts.read_at = now;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	while (getline(&line, &linecap, f) > 0) {
		struct mountinfo_line ml;
		if (mountinfo_parse(line, &ml) < 0)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct mount_ent *nv = realloc(v, nc * sizeof(*v));
			if (!nv)
				break;
			v = nv;
			cap = nc;
		}
		v[n].id = ml.id;
		v[n].pseudo = is_pseudo_type(ml.fstype);
		v[n].point = v[n].pseudo ? strdup(ml.point) : NULL;
		n++;
	}
	free(line);
	fclose(f);
	mounts_clear_locked();
	mounts.v = v;
	mounts.n = n;
}

/* 1 pseudo, 0 not, -1 unknown; mounts.lock held. */
static int mount_pseudo_locked(uint64_t id)
{
	for (size_t i = 0; i < mounts.n; i++)
		if (mounts.v[i].id == id)
			return mounts.v[i].pseudo;
	return -1;
}

/* Whether the mount numbered id is a pseudo-filesystem; an unknown mount: read again. */
static bool mount_id_pseudo(uint64_t id)
{
	int r;

	pthread_mutex_lock(&mounts.lock);
	r = mount_pseudo_locked(id);
	if (r < 0) {
		mounts_read_locked();
		r = mount_pseudo_locked(id);
	}
	pthread_mutex_unlock(&mounts.lock);
	return r == 1;
}

bool caller_pseudo_mount(const char *path)
{
	bool found = false;

	pthread_mutex_lock(&mounts.lock);
	if (!mounts.v)
		mounts_read_locked();
	for (size_t i = 0; i < mounts.n && !found; i++)
		found = mounts.v[i].point && strcmp(mounts.v[i].point, path) == 0;
	pthread_mutex_unlock(&mounts.lock);
	return found;
}

/* dirfd/name (AT_EMPTY_PATH when name is ""), not followed: its stat and mount's kind. */
static int stat_at(int dirfd, const char *name, struct stat *st, bool *pseudo)
{
	struct statx sx;
	int flags = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | (*name ? 0 : AT_EMPTY_PATH);

	if (statx(dirfd, name, flags, STATX_BASIC_STATS | STATX_MNT_ID, &sx) < 0)
		return -errno;
	memset(st, 0, sizeof(*st));
	st->st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
	st->st_ino = sx.stx_ino;
	st->st_mode = sx.stx_mode;
	st->st_nlink = sx.stx_nlink;
	st->st_uid = sx.stx_uid;
	st->st_gid = sx.stx_gid;
	st->st_rdev = makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
	st->st_size = (off_t)sx.stx_size;
	st->st_blksize = (blksize_t)sx.stx_blksize;
	st->st_blocks = (blkcnt_t)sx.stx_blocks;
	st->st_atim = (struct timespec){sx.stx_atime.tv_sec, sx.stx_atime.tv_nsec};
	st->st_mtim = (struct timespec){sx.stx_mtime.tv_sec, sx.stx_mtime.tv_nsec};
	st->st_ctim = (struct timespec){sx.stx_ctime.tv_sec, sx.stx_ctime.tv_nsec};
	*pseudo = (sx.stx_mask & STATX_MNT_ID) && mount_id_pseudo(sx.stx_mnt_id);
	return 0;
}

/* ---- credentials ---- */

void caller_init(void)
{
	own_uid = geteuid();
	own_gid = getegid();
	own_ngroups = getgroups(MAX_GROUPS, own_groups);
	if (own_ngroups < 0)
		own_ngroups = 0;
	/* setfsuid answers with the previous value; asking for our own changes nothing */
	can_switch = own_uid == 0;
	pthread_mutex_lock(&mounts.lock);
	mounts_read_locked();
	pthread_mutex_unlock(&mounts.lock);
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

static int caps_get(unsigned eff[2])
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &hdr, d) < 0)
		return -errno;
	eff[0] = d[0].effective;
	eff[1] = d[1].effective;
	return 0;
}

/* Sets this thread's effective set, keeping its permitted and inheritable ones. */
static int caps_set_effective(const unsigned eff[2])
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &hdr, d) < 0)
		return -errno;
	d[0].effective = eff[0];
	d[1].effective = eff[1];
	return syscall(SYS_capset, &hdr, d) < 0 ? -errno : 0;
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

/* Takes w's credentials with no capability in effect; c->caps keeps what to restore. */
static int enter_as(const struct who *w, struct caller *c)
{
	static const unsigned none[2] = {0, 0};
	int ret = caps_get(c->caps);

	if (ret < 0)
		return ret;
	ret = become(w);
	if (ret == 0)
		ret = caps_set_effective(none);
	if (ret < 0) {
		caps_set_effective(c->caps);
		become_self();
		return ret;
	}
	c->switched = true;
	return 0;
}

int caller_enter(fuse_req_t req, struct caller *c)
{
	struct who w;

	who_of(req, &w);
	return caller_enter_ids(w.uid, w.gid, w.groups, w.ngroups, c);
}

int caller_enter_ids(uid_t uid, gid_t gid, const gid_t *groups, int n, struct caller *c)
{
	struct who w;

	w.uid = uid;
	w.gid = gid;
	w.ngroups = n < 0 ? 0 : n > MAX_GROUPS ? MAX_GROUPS : n;
	if (w.ngroups)
		memcpy(w.groups, groups, (size_t)w.ngroups * sizeof(*groups));
	memset(c, 0, sizeof(*c));
	c->uid = w.uid;
	c->gid = w.gid;
	c->self = w.uid == own_uid || w.uid == 0;
	if (c->self)
		return 0;
	if (!can_switch) {
		c->restricted = true;
		return 0;
	}
	return enter_as(&w, c);
}

void caller_leave(struct caller *c)
{
	if (!c->switched)
		return;
	/* capabilities first: setgroups needs CAP_SETGID in effect */
	caps_set_effective(c->caps);
	become_self();
	c->switched = false;
}

/* ---- resolving as the caller ---- */

static int open_how(const char *path, int flags)
{
	/* openat2 refuses O_PATH with flags that only make sense for an open file */
	int more = flags & O_PATH ? O_CLOEXEC : O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	struct open_how how = {
	    .flags = (uint64_t)(flags | more),
	    .resolve = RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

/*
 * The others' view where the daemon cannot become them: only what every user may see
 * (o+x on every directory of the path, o+r or o+x as asked on the target, no ACL).
 */
static bool has_acl_fd(int fd)
{
	return fgetxattr(fd, "system.posix_acl_access", NULL, 0) >= 0 || errno == ERANGE;
}

static int restricted_path_ok(const char *path)
{
	char buf[PATH_MAX], *p;
	struct stat st;

	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	for (p = strrchr(buf, '/'); p; p = strrchr(buf, '/')) {
		*p = 0;
		if (stat(*buf ? buf : "/", &st) < 0)
			return -errno;
		if (!(st.st_mode & S_IXOTH))
			return -EACCES;
	}
	return 0;
}

/* caller_open, and what it opened in *st. */
static int open_stat(struct caller *c, const char *path, int flags, struct stat *st)
{
	bool pseudo;
	int fd, ret;

	if (c->restricted && (ret = restricted_path_ok(path)) < 0)
		return ret;
	fd = open_how(path, flags);
	if (fd < 0)
		return fd;
	ret = stat_at(fd, "", st, &pseudo);
	if (ret == 0 && pseudo)
		ret = -ENOENT;
	if (ret == 0 && c->restricted &&
	    (!(st->st_mode & (S_ISDIR(st->st_mode) ? S_IROTH | S_IXOTH : S_IROTH)) ||
	     (!(flags & O_PATH) && has_acl_fd(fd))))
		ret = -EACCES;
	if (ret < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

int caller_open(struct caller *c, const char *path, int flags)
{
	struct stat st;
	return open_stat(c, path, flags, &st);
}

/* The directory above path opened as the caller (O_PATH), and the last name in it. */
static int open_parent(struct caller *c, const char *path, const char **name)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t len;

	if (!slash)
		return -EINVAL;
	*name = slash + 1;
	if (!**name) /* "/" itself */
		*name = ".";
	len = slash == path ? 1 : (size_t)(slash - path);
	if (len >= sizeof(dir))
		return -ENAMETOOLONG;
	memcpy(dir, path, len);
	dir[len] = 0;
	return caller_open(c, dir, O_PATH | O_DIRECTORY);
}

int caller_lstat(struct caller *c, const char *path, struct stat *st)
{
	const char *name;
	bool pseudo;
	int pfd = open_parent(c, path, &name), ret;

	if (pfd < 0)
		return pfd;
	ret = stat_at(pfd, name, st, &pseudo);
	if (ret == 0 && pseudo)
		ret = -ENOENT;
	close(pfd);
	return ret;
}

int caller_readlink(struct caller *c, const char *path, char *buf, size_t len)
{
	const char *name;
	int pfd = open_parent(c, path, &name);
	ssize_t n;

	if (pfd < 0)
		return pfd;
	n = readlinkat(pfd, name, buf, len - 1);
	n = n < 0 ? -errno : n;
	close(pfd);
	if (n >= 0)
		buf[n] = 0;
	return (int)n;
}

bool caller_may_read_at(struct caller *c, int dirfd, const char *name)
{
	struct stat st;
	bool ok;
	int fd;

	if (c->restricted) {
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return false;
		return S_ISREG(st.st_mode) && (st.st_mode & S_IROTH);
	}
	fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	close(fd);
	return ok;
}

/* ---- segment sources ---- */

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
	struct caller c = {0};
	struct stat file;
	bool as_caller;
	int fd, ret;

	*to_all = false;
	who_of(req, &w);
	as_caller = w.uid != own_uid && w.uid != 0;
	if (as_caller && can_switch) {
		ret = enter_as(&w, &c);
		if (ret < 0)
			return ret;
	} else if (as_caller) {
		ret = each_dir_above(path, searchable_by, &w); /* mode bits, for every directory */
		if (ret < 0)
			return ret;
	}
	/* where path leads, without opening it: a FIFO or a device is never opened */
	fd = open_stat(&c, path, O_PATH, st);
	if (fd < 0) {
		ret = fd;
		goto out_leave;
	}
	close(fd);
	if (!S_ISREG(st->st_mode)) {
		ret = 1;
		goto out_leave;
	}
	fd = open_stat(&c, path, O_RDONLY, &file);
	if (fd < 0) {
		ret = fd;
		goto out_leave;
	}
	close(fd);
	if (!S_ISREG(file.st_mode) || file.st_dev != st->st_dev || file.st_ino != st->st_ino) {
		ret = S_ISREG(file.st_mode) ? -ESTALE : 1; /* swapped meanwhile */
		*st = file;
		goto out_leave;
	}
	*st = file;
	ret = 0;
	if (ret == 0 && as_caller && !c.switched &&
	    !mode_allows(&w, st, S_IRUSR, S_IRGRP, S_IROTH))
		ret = -EACCES;
out_leave:
	caller_leave(&c);
	if (ret == 0)
		*to_all = open_to_all(path, st);
	return ret;
}
