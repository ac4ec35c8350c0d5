/*
 * caller: resolving as the caller without magic links, pseudo-filesystems left out,
 * nothing opened that could block, and a thread's credentials and capabilities taken
 * and given back. Run as root, the switch to another user is tried for real.
 */
#include "fs/caller.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hftest.h"

static char dir[PATH_MAX];

static void path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static unsigned effective_caps(void)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &hdr, d) < 0)
		return 0;
	return d[0].effective | d[1].effective;
}

/* /proc/self/fd/N and /proc/PID/cwd are magic links: never followed. */
static void test_magic_links(void)
{
	struct caller self = {.self = true};
	char link[PATH_MAX], target[64], secret[PATH_MAX];
	int fd;

	path_in(secret, sizeof(secret), "secret");
	fd = open(secret, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, "x", 1) == 1);
	snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
	path_in(link, sizeof(link), "l_fd");
	CHECK(symlink(target, link) == 0);
	CHECK_EQ_INT(caller_open(&self, link, O_RDONLY), -ELOOP);
	snprintf(target, sizeof(target), "/proc/%d/cwd", (int)getpid());
	path_in(link, sizeof(link), "l_cwd");
	CHECK(symlink(target, link) == 0);
	CHECK(caller_open(&self, link, O_RDONLY | O_DIRECTORY) < 0);
	close(fd);
	/* an ordinary symlink is followed, as the caller would follow it */
	path_in(link, sizeof(link), "l_plain");
	CHECK(symlink(secret, link) == 0);
	fd = caller_open(&self, link, O_RDONLY);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
}

/* proc and sysfs are not shown: their entries and their mountpoints are ENOENT. */
static void test_pseudo_filesystems(void)
{
	struct caller self = {.self = true};
	struct stat st;

	CHECK(caller_pseudo_mount("/proc"));
	CHECK(caller_pseudo_mount("/sys"));
	CHECK(!caller_pseudo_mount("/"));
	CHECK(!caller_pseudo_mount(dir));
	CHECK_EQ_INT(caller_lstat(&self, "/proc", &st), -ENOENT);
	CHECK_EQ_INT(caller_lstat(&self, "/proc/self/status", &st), -ENOENT);
	CHECK_EQ_INT(caller_open(&self, "/proc/self/status", O_RDONLY), -ENOENT);
	CHECK_EQ_INT(caller_open(&self, "/sys/kernel", O_RDONLY | O_DIRECTORY), -ENOENT);
	CHECK_EQ_INT(caller_lstat(&self, dir, &st), 0);
	CHECK(S_ISDIR(st.st_mode));
}

/* A FIFO is neither opened for reading nor waited on; a file is readable. */
static void test_fifo_and_files(void)
{
	struct caller self = {.self = true};
	char fifo[PATH_MAX], file[PATH_MAX], buf[PATH_MAX];
	int dfd = open(dir, O_RDONLY | O_DIRECTORY), fd;

	path_in(fifo, sizeof(fifo), "fifo");
	path_in(file, sizeof(file), "file");
	CHECK(mkfifo(fifo, 0644) == 0);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK(!caller_may_read_at(&self, dfd, "fifo")); /* returns: O_NONBLOCK */
	CHECK(caller_may_read_at(&self, dfd, "file"));
	CHECK(!caller_may_read_at(&self, dfd, "missing"));
	fd = caller_open(&self, fifo, O_RDONLY); /* opens without waiting for a writer */
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	path_in(buf, sizeof(buf), "l_plain");
	CHECK(caller_readlink(&self, buf, buf, sizeof(buf)) > 0 && strstr(buf, "/secret"));
	close(dfd);
}

/* As another user: that user's rights, no capability in effect, and both given back. */
static void test_become_other(void)
{
	struct caller c;
	char secret[PATH_MAX], link[PATH_MAX];
	unsigned before = effective_caps();
	static const gid_t groups[] = {47291, 47292};
	int fd;

	if (geteuid() != 0) {
		printf("  (not root: the switch to another user is not tried)\n");
		return;
	}
	path_in(secret, sizeof(secret), "secret");
	path_in(link, sizeof(link), "l_plain");
	CHECK(before != 0);
	CHECK_EQ_INT(caller_enter_ids(47291, 47291, groups, 2, &c), 0);
	CHECK(c.switched && !c.self);
	CHECK_EQ_INT(effective_caps(), 0); /* CAP_SYS_PTRACE and CAP_DAC_* alike */
	CHECK_EQ_INT(caller_open(&c, secret, O_RDONLY), -EACCES); /* 0600 root's */
	CHECK_EQ_INT(caller_open(&c, link, O_RDONLY), -EACCES);
	caller_leave(&c);
	CHECK_EQ_INT(effective_caps(), before);
	fd = caller_open(&c, secret, O_RDONLY);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	/* root and the daemon's own user are themselves: nothing switched */
	CHECK_EQ_INT(caller_enter_ids(0, 0, NULL, 0, &c), 0);
	CHECK(c.self && !c.switched);
	caller_leave(&c);
}

int main(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(dir, sizeof(dir), "/tmp/hf-caller-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	caller_init();
	test_magic_links();
	test_pseudo_filesystems();
	test_fifo_and_files();
	test_become_other();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return hftest_done();
}
