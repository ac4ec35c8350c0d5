/*
 * hfmount: mounts the frame filesystem.
 *
 *   hfmount [options] STORE_DIR MOUNTPOINT
 *
 * Every problem found before mounting (bad option, unreadable config, unusable store,
 * mountpoint in use) is one line on stderr and exit status 2, with nothing mounted and
 * nothing in the store touched.
 */
#include <errno.h>
#include <limits.h>
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
		"                        png_level=1, eager=false, threads=4, log_level=debug\n"
		"  -o allow_other,...    FUSE mount options (ro is implied)\n");
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

/* Everything between parsing and exit; every early return leaves cleanup to main(). */
static int run(struct fuse_args *args, struct cli *cli)
{
	struct fuse_cmdline_opts fo;
	struct hf_conf conf;
	char err[1024], mp[PATH_MAX], storedir[PATH_MAX], path[PATH_MAX];
	struct store *store = NULL;
	struct engine *engine = NULL;
	struct hf_fs *fs = NULL;
	struct fuse_session *se = NULL;
	struct fuse_loop_config *lc = NULL;
	struct store_opts so;
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

	conf_defaults(&conf);
	if (cli->config) {
		if (conf_load_file(&conf, cli->config, warn_cb, NULL, err, sizeof(err)) < 0)
			return fail("%s", err);
	} else if (conf_default_path(path, sizeof(path)) == 0 && access(path, F_OK) == 0) {
		if (conf_load_file(&conf, path, warn_cb, NULL, err, sizeof(err)) < 0)
			return fail("%s", err);
	}
	if (conf_apply_env(&conf, environ, warn_cb, NULL, err, sizeof(err)) < 0)
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

	so.fsync = conf.fsync;
	if (store_open(storedir, &so, &store, err, sizeof(err)) < 0)
		return fail("%s", err);

	fuse_opt_add_arg(args, "-oro,default_permissions,fsname=hfmount,subtype=hfmount");
	if (fs_new(&conf, mp, &fs) < 0) {
		fprintf(stderr, "hfmount: out of memory\n");
		goto out_store;
	}
	se = fs_session_new(fs, args);
	if (!se) {
		fprintf(stderr, "hfmount: bad FUSE options (see hfmount --help)\n");
		goto out_fs;
	}
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, mp) != 0) {
		fprintf(stderr, "hfmount: cannot mount on %s\n", mp);
		goto out_signals;
	}
	log_setup(conf.log_level, !fo.foreground);
	fuse_daemonize(fo.foreground);
	/* Threads start only now: daemonizing forks. */
	if (engine_new(&conf, store, &engine) < 0) {
		hf_log(HF_LOG_ERROR, "cannot start the engine");
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
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_fs:
	fs_free(&fs);
	engine_free(&engine);
out_store:
	store_close(&store);
	return ret;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct cli cli = {0};
	int ret = run(&args, &cli);

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
