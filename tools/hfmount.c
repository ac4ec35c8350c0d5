/*
 * hfmount: mounts the frame filesystem.
 *
 *   hfmount [options] STORE_DIR MOUNTPOINT
 *
 * Every problem found before mounting (bad option, unreadable config, unusable store,
 * mountpoint in use) is one line on stderr and exit status 2, with nothing mounted and
 * nothing in the store touched.
 *
 * It is also the program the FUSE mount helper runs for `mount -t fuse.hfmount` and
 * fstab lines: mount(8) execs /sbin/mount.fuse3 STORE MOUNTPOINT -o OPTS -t fuse.hfmount,
 * which drops user, users, nouser, auto, noauto, _netdev and nofail, appends dev,suid
 * (unless nodev/nosuid were given) and runs `/bin/sh -c 'hfmount STORE MOUNTPOINT -o OPTS'`
 * with mount(8)'s cleaned environment: no PATH (the shell's default path finds hfmount
 * in /usr/local/bin, /usr/bin, ...), HOME=/root for root. OPTS then holds generic
 * options such as rw, relatime, nosuid or noexec next to hfmount's own keys.
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/store.h"
#include "conf/conf.h"
#include "fs/engine.h"
#include "fs/fs.h"
#include "fs/log.h"

extern char **environ;

struct cli {
	char *store;
	char *mountpoint;
	int nonopts;
	char *config;
	char **keys, **vals; /* hfmount -o options, applied last */
	int nopts;
	char *bad;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hfmount [options] STORE_DIR MOUNTPOINT\n"
		"\n"
		"Serves video segments as directories of frames:\n"
		"  MOUNTPOINT/path/to/clip.mp4@START+DUR@FPS[@jpg[,q=N]]/frame_00001.png\n"
		"\n"
		"options:\n"
		"  -h, --help            this help\n"
		"  -V, --version         version\n"
		"  -f                    stay in the foreground\n"
		"  -d                    FUSE debug output (implies -f)\n"
		"  -s                    single-threaded loop\n"
		"  -o config=FILE        INI configuration (default $XDG_CONFIG_HOME/hfmount/hfmount.ini)\n"
		"  -o KEY=VALUE          any configuration key, e.g. source_root=DIR, max_size=20G,\n"
		"                        png_level=1, eager=false, threads=4, log.level=debug\n"
		"  -o allow_other,...    FUSE mount options (always mounted ro,nosuid,nodev)\n"
		"  -o defaults,noauto,.. generic mount(8)/fstab options are accepted; rw, suid, dev\n"
		"                        and the atime options have no effect\n"
		"\n"
		"Unmount with fusermount3 -u MOUNTPOINT or umount MOUNTPOINT. See hfmount(1).\n");
}

/*
 * Generic options an fstab line or mount(8) carries that mean nothing here: mount(8) or
 * mount.fuse3 consume most of them, but hfmount may be run by hand or by another helper.
 * The mount is always ro,nosuid,nodev (see run()), so rw, suid and dev are dropped, and
 * nothing is ever written, so the access-time and write-behaviour flags do not matter.
 * Options libfuse knows (ro, exec, noexec, nosuid, nodev, sync, noatime, user=NAME, ...)
 * are not listed: they go through to libfuse.
 */
/* clang-format off */
static const char *const ignored_opts[] = {
	"defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group", "_netdev",
	"nofail", "rw", "suid", "dev", "atime", "diratime", "nodiratime", "relatime",
	"norelatime", "strictatime", "nostrictatime", "lazytime", "nolazytime", "mand",
	"nomand", "iversion", "noiversion", "symfollow", "silent", "loud", NULL,
};
static const char *const ignored_prefixes[] = {
	"comment=", "x-", "X-", "helper=", "uhelper=", NULL,
};
/* clang-format on */

static bool is_ignored_opt(const char *arg)
{
	for (int i = 0; ignored_opts[i]; i++)
		if (strcmp(arg, ignored_opts[i]) == 0)
			return true;
	for (int i = 0; ignored_prefixes[i]; i++)
		if (strncmp(arg, ignored_prefixes[i], strlen(ignored_prefixes[i])) == 0)
			return true;
	return false;
}

static bool is_conf_key(const char *arg, size_t keylen)
{
	struct hf_conf scratch;
	char key[128], err[256];
	if (keylen >= sizeof(key))
		return false;
	memcpy(key, arg, keylen);
	key[keylen] = 0;
	conf_defaults(&scratch);
	/* -EINVAL (bad value) still means the key is ours */
	return conf_set_option(&scratch, key, arg[keylen] == '=' ? arg + keylen + 1 : NULL, "-o",
			       err, sizeof(err)) != -ENOENT;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cli *c = data;
	if (key == FUSE_OPT_KEY_NONOPT) {
		c->nonopts++;
		if (!c->store) {
			c->store = strdup(arg);
			return 0;
		}
		if (!c->mountpoint) {
			c->mountpoint = strdup(arg);
			return 0;
		}
		c->bad = strdup(arg);
		return 0;
	}
	if (key == FUSE_OPT_KEY_OPT) {
		const char *eq = strchr(arg, '=');
		size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);
		if (klen == 6 && strncmp(arg, "config", 6) == 0 && eq) {
			free(c->config);
			c->config = strdup(eq + 1);
			return 0;
		}
		if (is_conf_key(arg, klen)) {
			c->keys = realloc(c->keys, (size_t)(c->nopts + 1) * sizeof(char *));
			c->vals = realloc(c->vals, (size_t)(c->nopts + 1) * sizeof(char *));
			c->keys[c->nopts] = strndup(arg, klen);
			c->vals[c->nopts] = eq ? strdup(eq + 1) : NULL;
			c->nopts++;
			return 0;
		}
		if (is_ignored_opt(arg))
			return 0;
	}
	return 1;
}

static void warn_cb(void *arg, const char *msg)
{
	fprintf(stderr, "hfmount: warning: %s\n", msg);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "hfmount: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 2;
}

/* The mountpoint is in use when it is already a mount (its device differs from its parent's). */
static int check_mountpoint(const char *mp, char *err, size_t errlen)
{
	struct stat st, parent;
	char up[PATH_MAX];

	if (stat(mp, &st) < 0) {
		snprintf(err, errlen, "mountpoint %s: %s", mp, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "mountpoint %s is not a directory", mp);
		return -1;
	}
	snprintf(up, sizeof(up), "%s/..", mp);
	if (stat(up, &parent) == 0 && (parent.st_dev != st.st_dev || parent.st_ino == st.st_ino) &&
	    strcmp(mp, "/") != 0) {
		snprintf(err, errlen, "mountpoint %s is already in use (something is mounted there)",
			 mp);
		return -1;
	}
	return 0;
}

/*
 * Started through mount(8) the environment has no PATH: give libfuse's fallback search
 * for fusermount3 the usual one. mount.fuse3 sets HOME=/root when HOME is unset, whoever
 * runs it; for another user the default config file is under their own home. (No HOME
 * at all is handled by conf.)
 */
static void sane_environment(void)
{
	const char *home = getenv("HOME");

	setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 0);
	if (getuid() != 0 && home && strcmp(home, "/root") == 0) {
		struct passwd *pw = getpwuid(getuid());

		if (pw && pw->pw_dir)
			setenv("HOME", pw->pw_dir, 1);
		else
			unsetenv("HOME");
	}
}

/*
 * libfuse prints its own line (sometimes in pieces) before failing: an unknown option, a
 * failed mount. The first such line is kept here and becomes part of hfmount's one line.
 */
static char fuse_error[512];
static bool fuse_error_done;

static void keep_fuse_error(enum fuse_log_level level, const char *fmt, va_list ap)
{
	size_t len = strlen(fuse_error);

	if (level > FUSE_LOG_ERR || fuse_error_done) {
		vfprintf(stderr, fmt, ap);
		return;
	}
	vsnprintf(fuse_error + len, sizeof(fuse_error) - len, fmt, ap);
	len = strcspn(fuse_error, "\n");
	fuse_error_done = fuse_error[len] == '\n';
	fuse_error[len] = '\0';
}

/* Everything between parsing and exit; every early return leaves cleanup to main(). */
static int run(struct fuse_args *args, struct cli *cli)
{
	struct fuse_cmdline_opts fo;
	struct hf_conf conf;
	char err[1024], mp[PATH_MAX], storedir[PATH_MAX];
	char fsname[PATH_MAX + 8];
	struct store *store = NULL;
	struct engine *engine = NULL;
	struct hf_fs *fs = NULL;
	struct fuse_session *se = NULL;
	struct fuse_loop_config *lc = NULL;
	struct store_opts so = {0};
	char *mount_opts = NULL;
	int ret = 2;

	memset(&fo, 0, sizeof(fo));
	if (fuse_opt_parse(args, cli, NULL, opt_proc) < 0)
		return fail("cannot parse the command line");
	if (fuse_parse_cmdline(args, &fo) != 0)
		return fail("bad command line (see hfmount --help)");
	free(fo.mountpoint);
	fo.mountpoint = NULL;
	if (fo.show_help) {
		usage(stdout);
		return 0;
	}
	if (fo.show_version) {
		printf("hfmount %s (libfuse %s)\n", HF_VERSION, fuse_pkgversion());
		return 0;
	}
	if (cli->bad)
		return fail("unexpected argument '%s' (usage: hfmount [options] STORE_DIR MOUNTPOINT)",
			    cli->bad);
	if (!cli->store || !cli->mountpoint) {
		usage(stderr);
		return 2;
	}
	if (strncmp(cli->mountpoint, "/dev/fd/", 8) == 0)
		return fail(
		    "mountpoint %s: mount.fuse3's drop_privileges is not supported (hfmount "
		    "must know its mountpoint to keep it out of the mirror; use setuid=USER)",
		    cli->mountpoint);

	if (conf_load(&conf, cli->config, environ, warn_cb, NULL, err, sizeof(err)) < 0)
		return fail("%s", err);
	for (int i = 0; i < cli->nopts; i++)
		if (conf_set_option(&conf, cli->keys[i], cli->vals[i], "-o", err, sizeof(err)) < 0)
			return fail("%s", err);
	if (fo.debug)
		conf.log_level = HF_LOG_DEBUG;

	if (!realpath(cli->mountpoint, mp))
		return fail("mountpoint %s: %s", cli->mountpoint, strerror(errno));
	if (check_mountpoint(mp, err, sizeof(err)) < 0)
		return fail("%s", err);
	{
		struct stat st;
		char real_root[PATH_MAX];
		if (!realpath(conf.source_root, real_root) || stat(real_root, &st) < 0 ||
		    !S_ISDIR(st.st_mode))
			return fail("source_root %s is not a directory", conf.source_root);
		snprintf(conf.source_root, sizeof(conf.source_root), "%s", real_root);
	}
	if (cli->store[0] != '/') {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)) ||
		    snprintf(storedir, sizeof(storedir), "%s/%s", cwd, cli->store) >= (int)sizeof(storedir))
			return fail("store path %s is too long", cli->store);
	} else {
		snprintf(storedir, sizeof(storedir), "%s", cli->store);
	}
	if (strncmp(storedir, mp, strlen(mp)) == 0 &&
	    (storedir[strlen(mp)] == '/' || storedir[strlen(mp)] == 0))
		return fail("the store %s cannot be inside the mountpoint %s", storedir, mp);

	/*
	 * Added last, so they win over anything given: always read-only, nosuid and nodev.
	 * fsname is the store, as mount(8) has it in fstab, so `mount -a` sees the line is
	 * mounted and `findmnt` shows which store serves the mount.
	 */
	snprintf(fsname, sizeof(fsname), "fsname=%s", storedir);
	if (fuse_opt_add_opt(&mount_opts, "ro,nosuid,nodev,default_permissions,subtype=hfmount") ||
	    fuse_opt_add_opt_escaped(&mount_opts, fsname) || fuse_opt_add_arg(args, "-o") ||
	    fuse_opt_add_arg(args, mount_opts) || fs_new(&conf, mp, &fs) < 0) {
		fprintf(stderr, "hfmount: out of memory\n");
		goto out_fs;
	}
	/* FUSE options are checked here, before the store is touched. */
	fuse_set_log_func(keep_fuse_error);
	se = fs_session_new(fs, args);
	if (!se) {
		fprintf(stderr, "hfmount: %s (see hfmount --help)\n",
			fuse_error[0] ? fuse_error : "bad FUSE options");
		goto out_fs;
	}
	so.fsync = conf.fsync;
	/* The daemon makes no file but the store's: created with the store's modes at once. */
	umask(conf.store_group[0] ? 007 : 077);
	if (conf.store_group[0]) {
		so.shared = true;
		if (conf_group_id(conf.store_group, &so.gid) < 0) {
			fprintf(stderr, "hfmount: store group %s does not exist\n", conf.store_group);
			goto out_session;
		}
	}
	if (store_open(storedir, &so, &store, err, sizeof(err)) < 0) {
		fprintf(stderr, "hfmount: %s\n", err);
		goto out_session;
	}
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, mp) != 0) {
		fprintf(stderr, "hfmount: cannot mount on %s%s%s\n", mp, fuse_error[0] ? ": " : "",
			fuse_error);
		goto out_signals;
	}
	fuse_set_log_func(NULL);
	log_setup(conf.log_level, !fo.foreground);
	fuse_daemonize(fo.foreground);
	/* Threads start only now: daemonizing forks. */
	if (engine_new(&conf, store, &engine) < 0) {
		hf_log(HF_LOG_ERROR, "cannot start the engine for %s (store %s)", mp, storedir);
		ret = 1;
		goto out_unmount;
	}
	fs_set_engine(fs, engine);
	hf_log(HF_LOG_INFO, "serving %s on %s (store %s)", conf.source_root, mp, storedir);
	if (fo.singlethread) {
		ret = fuse_session_loop(se);
	} else {
		lc = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(lc, fo.clone_fd);
		/* Frame waits do not hold loop threads; these serve mirror I/O and lookups. */
		fuse_loop_cfg_set_max_threads(lc, fo.max_threads > 10 ? fo.max_threads : 64);
		if (fo.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(lc, fo.max_idle_threads);
		ret = fuse_session_loop_mt(se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	ret = ret == 0 ? 0 : 1;
out_unmount:
	fs_stop(fs);
	engine_stop(engine); /* its threads reply to requests, and use libfuse's per-thread pipes */
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_fs:
	fs_free(&fs);
	engine_free(&engine);
	store_close(&store);
	free(mount_opts);
	return ret;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct cli cli = {0};
	int ret;

	sane_environment();
	/*
	 * One malloc arena per core, not glibc's eight: lookups on FUSE threads allocate
	 * segments that the sweep frees on another, and memory freed into many arenas stays
	 * resident (100,000 segments forgotten: +2 to +5 MB with the default, +2 MB with
	 * this; decode and encode buffers are mmap'ed and do not contend).
	 */
	{
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		mallopt(M_ARENA_MAX, cores > 0 ? (int)cores : 1);
	}
	ret = run(&args, &cli);

	fuse_opt_free_args(&args);
	for (int i = 0; i < cli.nopts; i++) {
		free(cli.keys[i]);
		free(cli.vals[i]);
	}
	free(cli.keys);
	free(cli.vals);
	free(cli.store);
	free(cli.mountpoint);
	free(cli.config);
	free(cli.bad);
	return ret;
}
