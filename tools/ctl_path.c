/*
 * hfctl path: the canonical segment path for a video, a start, a duration, a rate and
 * options, so that scripts and renderers never build segment names by hand.
 *
 * The name is "basename(VIDEO)@START+DUR@FPS[@OPTIONS]" put through segname_parse and
 * segname_format: fs/segname is the one grammar. When it refuses the name, the parts are
 * tried one at a time through segname_parse as well, to say which one is wrong.
 *
 * The directory is the video's, seen through a mount: the mount given with --mount, or
 * the hfmount mount (fstype fuse.hfmount in /proc/self/mountinfo) whose source_root
 * holds the video. A mount's source_root is its .hfstats "source_root" when the daemon
 * writes one; otherwise the mount is asked for the video's file at each path it could
 * mirror it at (the deepest first), and the path whose size, owner, mtime and ctime are
 * the video's is the one: only the same file (or a hard link to it) has all of them.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/mountinfo.h"
#include "fs/segname.h"
#include "tools/ctl.h"
#include "tools/ctl_json.h"

static const char path_help[] =
    "usage: hfctl path VIDEO START DUR FPS [OPTIONS...] [--mount MNT]\n"
    "Prints the canonical path of the segment directory of VIDEO from START for DUR\n"
    "seconds at FPS, with OPTIONS (\"jpg,q=5\", or one per argument), as an hfmount mount\n"
    "shows it: exact decimals, N:D rates, options in canonical order, defaults left out.\n"
    "  --mount MNT   the path under the hfmount mount MNT (default: the mount whose\n"
    "                source_root holds VIDEO; a VIDEO inside a mount stays in it)\n"
    "Exit status: 0 printed, 1 no mount serves VIDEO, 2 a bad value (one line says which).\n";

#define MOUNTINFO "/proc/self/mountinfo"
#define FSTYPE	  "fuse.hfmount"

/* One line on stderr, "hfctl path: ...". Returns code. */
static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("hfctl path: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

/* ---- the name, and why it is wrong ---- */

/* segname_parse of the printf-built name: true when the grammar accepts it. */
static bool accepts(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool accepts(const char *fmt, ...)
{
	struct segname sn;
	char name[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	return n > 0 && (size_t)n < sizeof(name) && segname_parse(name, &sn) == 0;
}

static int count_digits(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s >= '0' && *s <= '9';
	return n;
}

/* Why `what` = v is not a decimal of the grammar, into buf. */
static void why_decimal(const char *what, const char *v, char *buf, size_t len)
{
	if (!*v)
		snprintf(buf, len, "%s is empty", what);
	else if (*v == '-')
		snprintf(buf, len, "%s %s: must be >= 0, written without a sign", what, v);
	else if (*v == '+')
		snprintf(buf, len, "%s %s: no sign allowed", what, v);
	else if (count_digits(v) > SEGNAME_MAX_DIGITS && strspn(v, "0123456789.") == strlen(v))
		snprintf(buf, len, "%s %s: more than %d digits", what, v, SEGNAME_MAX_DIGITS);
	else
		snprintf(buf, len,
			 "%s %s: not a decimal (digits with at most one '.' between digits, "
			 "such as 1.5; no sign, exponent or spaces)",
			 what, v);
}

/* Why FPS is refused on its own (dur small enough that no rate has too many slots). */
static void why_fps(const char *v, char *buf, size_t len)
{
	const char *colon = strchr(v, ':');

	if (!colon) {
		if (accepts("x@%s+1@1", v))
			snprintf(buf, len, "fps %s: must be > 0", v);
		else
			why_decimal("fps", v, buf, len);
		return;
	}
	if (strchr(colon + 1, ':') || colon == v || !colon[1] ||
	    strspn(v, "0123456789") != (size_t)(colon - v) ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		snprintf(buf, len, "fps %s: a rate N:D is two whole numbers, such as 30000:1001",
			 v);
	else if (colon - v > SEGNAME_MAX_DIGITS || strlen(colon + 1) > SEGNAME_MAX_DIGITS)
		snprintf(buf, len, "fps %s: more than %d digits in a number", v,
			 SEGNAME_MAX_DIGITS);
	else if (strspn(colon + 1, "0") == strlen(colon + 1))
		snprintf(buf, len, "fps %s: the denominator must be > 0", v);
	else
		snprintf(buf, len, "fps %s: must be > 0", v);
}

enum opt_key {
	K_PNG, K_JPG, K_Q, K_W, K_H, K_FIT, K_HOLD, K_BT2020, K_TONEMAP, K_UNTAGGED, K_COUNT, K_NONE
};

static const char *const key_names[K_COUNT] = {
    "png", "jpg", "q", "w", "h", "fit", "hold", "bt2020", "tonemap", "untagged",
};

/* The key of one option ("q" for "q=5"), K_NONE when unknown. */
static enum opt_key opt_key(const char *opt, size_t len)
{
	size_t klen = strcspn(opt, "=");

	if (klen > len)
		klen = len;
	for (int k = 0; k < K_COUNT; k++)
		if (strlen(key_names[k]) == klen && memcmp(opt, key_names[k], klen) == 0)
			return (enum opt_key)k;
	return K_NONE;
}

/* Why one option is refused on its own (in a context that gives what it needs). */
static void why_option(enum opt_key k, const char *opt, char *buf, size_t len)
{
	bool has_value = strchr(opt, '=') != NULL;

	switch (k) {
	case K_Q:
		snprintf(buf, len, "option %s: q= takes a whole number 1..31", opt);
		break;
	case K_W:
	case K_H:
		snprintf(buf, len, "option %s: %s= takes a whole number 1..%d (at most 5 digits)",
			 opt, key_names[k], SEGNAME_MAX_SIDE);
		break;
	case K_FIT:
		snprintf(buf, len, "option %s: fit= takes fill, contain or cover", opt);
		break;
	case K_TONEMAP:
		snprintf(buf, len, "option %s: tonemap= takes hable, reinhard, mobius or clip",
			 opt);
		break;
	case K_UNTAGGED:
		snprintf(buf, len, "option %s: untagged= takes cli (the browser's guess is the "
			 "default)", opt);
		break;
	case K_NONE:
		snprintf(buf, len,
			 "unknown option \"%s\" (options: png, jpg, q=N, w=W, h=H, "
			 "fit=fill|contain|cover, hold, bt2020, tonemap[=OP], untagged=cli)",
			 opt);
		break;
	default:
		if (has_value)
			snprintf(buf, len, "option %s: %s takes no value", opt, key_names[k]);
		else
			snprintf(buf, len, "option %s is not valid", opt);
	}
}

/* Why OPTS (comma-separated) is refused: one option, a repeat or a contradiction. */
static void why_options(const char *opts, char *buf, size_t len)
{
	bool seen[K_COUNT] = {false};
	const char *p = opts;

	for (;;) {
		size_t n = strcspn(p, ",");
		char opt[256];
		enum opt_key k;
		bool ok;

		if (n == 0) {
			snprintf(buf, len, "options %s: an empty option (a comma too many)", opts);
			return;
		}
		snprintf(opt, sizeof(opt), "%.*s", (int)n, p);
		k = opt_key(opt, n);
		if (k == K_Q)
			ok = accepts("x@0+1@1@jpg,%s", opt);
		else if (k == K_FIT)
			ok = accepts("x@0+1@1@w=1,h=1,%s", opt);
		else
			ok = k != K_NONE && accepts("x@0+1@1@%s", opt);
		if (!ok) {
			why_option(k, opt, buf, len);
			return;
		}
		if (seen[k]) {
			snprintf(buf, len, "options %s: %s given twice", opts, key_names[k]);
			return;
		}
		seen[k] = true;
		if (!p[n])
			break;
		p += n + 1;
	}
	if (seen[K_PNG] && seen[K_JPG])
		snprintf(buf, len, "options %s: png and jpg contradict each other", opts);
	else if (seen[K_Q] && !seen[K_JPG])
		snprintf(buf, len, "options %s: q= needs jpg", opts);
	else if (seen[K_FIT] && !(seen[K_W] && seen[K_H]))
		snprintf(buf, len, "options %s: fit needs both w= and h=", opts);
	else if (seen[K_BT2020] && seen[K_TONEMAP])
		snprintf(buf, len, "options %s: bt2020 and tonemap contradict each other", opts);
	else
		snprintf(buf, len, "options %s are not valid together", opts);
}

/* The sentence for a name the grammar refused, part by part. */
static void why_refused(const char *start, const char *dur, const char *fps, const char *opts,
			char *buf, size_t len)
{
	/* a duration of 10^-17 s keeps any 18-digit rate under the slot limit */
	static const char tiny[] = "0.00000000000000001";

	if (!accepts("x@%s+1@1", start))
		why_decimal("start", start, buf, len);
	else if (!accepts("x@%s+1@1", dur))
		why_decimal("dur", dur, buf, len);
	else if (strspn(dur, "0.") == strlen(dur))
		snprintf(buf, len, "dur %s: must be > 0", dur);
	else if (!accepts("x@0+%s@%s", tiny, fps))
		why_fps(fps, buf, len);
	else if (!accepts("x@0+%s@%s", dur, fps))
		snprintf(buf, len, "dur %s at fps %s is more than %d frames", dur, fps,
			 SEGNAME_MAX_SLOTS);
	else if (*opts)
		why_options(opts, buf, len);
	else
		snprintf(buf, len, "%s+%s@%s is not a valid segment", start, dur, fps);
}

/*
 * The canonical segment name for NAME and the values, into out (NAME_MAX + 1 bytes).
 * 0, or 2 after saying on stderr what is wrong.
 */
static int canonical_name(const char *name, const char *start, const char *dur, const char *fps,
			  const char *opts, char *out, size_t out_len)
{
	static const char *const what[] = {"start", "dur", "fps"};
	const char *vals[] = {start, dur, fps};
	struct segname sn;
	char *full, why[1024];
	size_t flen;
	int n;

	/* Values are composed into one name: a separator inside one would move the parts. */
	for (int i = 0; i < 3; i++)
		if (strpbrk(vals[i], "@+/"))
			return fail(2, "%s %s: not a decimal (no '@', '+' or '/')", what[i],
				    vals[i]);
	if (strpbrk(opts, "@/"))
		return fail(2, "options %s: no '@' or '/' in options", opts);
	flen = strlen(name) + strlen(start) + strlen(dur) + strlen(fps) + strlen(opts) + 8;
	full = malloc(flen);
	if (!full)
		return fail(1, "%s", strerror(ENOMEM));
	snprintf(full, flen, "%s@%s+%s@%s%s%s", name, start, dur, fps, *opts ? "@" : "", opts);
	n = segname_parse(full, &sn);
	free(full);
	if (n < 0) {
		why_refused(start, dur, fps, opts, why, sizeof(why));
		return fail(2, "%s", why);
	}
	n = segname_format(&sn, name, strlen(name), out, out_len);
	if (n < 0)
		return fail(2, "the segment name for %s is longer than %zu bytes", name,
			    out_len - 1);
	return 0;
}

/* ---- mounts ---- */

struct mount {
	char dir[PATH_MAX];  /* the mountpoint */
	char root[PATH_MAX]; /* its source_root, "" until known */
};

/* The hfmount mounts of this mount namespace, in mountinfo's order. *n of them. */
static int mounts_list(struct mount **out, size_t *n)
{
	FILE *f = fopen(MOUNTINFO, "re");
	struct mount *m = NULL;
	char *line = NULL;
	size_t cap = 0, used = 0;
	int ret = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		struct mountinfo_line ml;

		if (mountinfo_parse(line, &ml) < 0 || strcmp(ml.fstype, FSTYPE) != 0)
			continue;
		if (used % 8 == 0) {
			struct mount *b = realloc(m, (used + 8) * sizeof(*m));
			if (!b) {
				ret = -ENOMEM;
				break;
			}
			m = b;
		}
		snprintf(m[used].dir, sizeof(m[used].dir), "%s", ml.point);
		m[used].root[0] = 0;
		used++;
	}
	free(line);
	fclose(f);
	if (ret < 0) {
		free(m);
		return ret;
	}
	*out = m;
	*n = used;
	return 0;
}

/* Whether path is dir or below it (both absolute, without trailing '/'). */
static bool is_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return true;
	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == 0);
}

/* dir + rel, where rel is "" or starts with '/'; "/" + "/x" is "/x". */
static int join(char *buf, size_t len, const char *dir, const char *rel, const char *name)
{
	int n = snprintf(buf, len, "%s%s/%s", strcmp(dir, "/") == 0 ? "" : dir, rel, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The mount's .hfstats "source_root", into m->root; false when it says none. */
static bool root_from_stats(struct mount *m)
{
	json_t *stats = NULL;
	char path[PATH_MAX + 16], err[256];
	const char *root;

	if (join(path, sizeof(path), m->dir, "", ".hfstats") < 0 ||
	    ctl_json_load(path, &stats, err, sizeof(err)) < 0)
		return false;
	root = ctl_json_str(json_object_get(stats, "source_root"), NULL);
	if (root && root[0] == '/')
		snprintf(m->root, sizeof(m->root), "%s", root);
	json_decref(stats);
	return m->root[0] != 0;
}

/* The same file: what a mirror shows of it unchanged. */
static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_uid == b->st_uid && a->st_gid == b->st_gid &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/*
 * The mount's source_root as far as VIDEO (dir/name, dir real and absolute) tells it:
 * the deepest ancestor R of dir such that the mount shows dir's part below R with the
 * very file. Into m->root; false when the mount shows VIDEO nowhere.
 */
static bool root_from_probe(struct mount *m, const char *dir, const char *name,
			    const struct stat *video)
{
	char root[PATH_MAX], probe[PATH_MAX];
	struct stat st;

	snprintf(root, sizeof(root), "%s", dir);
	for (;;) {
		const char *rel = strcmp(root, "/") == 0 ? dir : dir + strlen(root);

		if (join(probe, sizeof(probe), m->dir, rel, name) == 0 && stat(probe, &st) == 0 &&
		    S_ISREG(st.st_mode) == S_ISREG(video->st_mode) && same_file(&st, video)) {
			snprintf(m->root, sizeof(m->root), "%s", root);
			return true;
		}
		if (strcmp(root, "/") == 0)
			return false;
		*strrchr(root, '/') = 0;
		if (!root[0])
			strcpy(root, "/");
	}
}

/* Whether mount m serves dir/name: its source_root (learnt here) holds the video. */
static bool serves(struct mount *m, const char *dir, const char *name, const struct stat *video)
{
	/* the mirror hides its own mountpoint and what is below it */
	if (is_below(dir, m->dir))
		return false;
	if (root_from_stats(m))
		return is_below(dir, m->root);
	return root_from_probe(m, dir, name, video);
}

/* ---- the command ---- */

int ctl_path(int argc, char **argv)
{
	const char *pos[5] = {NULL}, *mnt = NULL, *opts = "";
	char *optbuf = NULL, seg[NAME_MAX + 1], dir[PATH_MAX], out[PATH_MAX * 2 + NAME_MAX];
	const char *video, *name, *slash;
	struct mount *mounts = NULL, *chosen = NULL, given;
	struct stat st;
	size_t nmounts = 0, optlen = 0;
	int npos = 0, ret = 1;
	bool dashdash = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!dashdash && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
			fputs(path_help, stdout);
			ret = 0;
			goto out_free;
		}
		if (!dashdash && strcmp(a, "--") == 0) {
			dashdash = true;
		} else if (!dashdash && strcmp(a, "--mount") == 0) {
			if (++i == argc) {
				ret = fail(2, "--mount needs a mountpoint");
				goto out_usage;
			}
			mnt = argv[i];
		} else if (!dashdash && strncmp(a, "--mount=", 8) == 0) {
			mnt = a + 8;
		} else if (!dashdash && strncmp(a, "--", 2) == 0) {
			ret = fail(2, "unknown option %s", a);
			goto out_usage;
		} else if (npos < 4) {
			/* "-1" is a start with a sign, not an option: the grammar says why */
			pos[npos++] = a;
		} else if (*a) {
			/* OPTIONS: one argument "jpg,q=5" or several, joined with ','; an empty
			 * one (a script's unset "$OPTS") is none */
			size_t n = strlen(a);
			char *b = realloc(optbuf, optlen + n + 2);
			if (!b) {
				ret = fail(1, "%s", strerror(ENOMEM));
				goto out_free;
			}
			optbuf = b;
			if (optlen)
				optbuf[optlen++] = ',';
			memcpy(optbuf + optlen, a, n + 1);
			optlen += n;
			opts = optbuf;
		}
	}
	if (npos < 4) {
		ret = fail(2, "expected VIDEO START DUR FPS");
		goto out_usage;
	}
	if (mnt && !*mnt) {
		ret = fail(2, "--mount needs a mountpoint");
		goto out_usage;
	}

	video = pos[0];
	slash = strrchr(video, '/');
	name = slash ? slash + 1 : video;
	if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		ret = fail(2, "video \"%s\": not a file name", video);
		goto out_free;
	}
	ret = canonical_name(name, pos[1], pos[2], pos[3], opts, seg, sizeof(seg));
	if (ret)
		goto out_free;

	/* The video's directory, real and absolute; the name stays as given. */
	ret = 1;
	if (slash)
		snprintf(out, sizeof(out), "%.*s", (int)(slash - video), video);
	else
		snprintf(out, sizeof(out), ".");
	if (!out[0])
		snprintf(out, sizeof(out), "/");
	if (!realpath(out, dir)) {
		fail(1, "%s: %s", out, strerror(errno));
		goto out_free;
	}
	if (join(out, sizeof(out), dir, "", name) < 0 || stat(out, &st) < 0) {
		fail(1, "%s: %s", video, strerror(errno));
		goto out_free;
	}
	if (mounts_list(&mounts, &nmounts) < 0) {
		fail(1, "%s: %s", MOUNTINFO, strerror(errno));
		goto out_free;
	}

	/* A video seen through a mount already: its directory is the segment's. */
	for (size_t i = 0; i < nmounts; i++)
		if (is_below(dir, mounts[i].dir) && strcmp(mounts[i].dir, "/") != 0 &&
		    (!chosen || strlen(mounts[i].dir) > strlen(chosen->dir)))
			chosen = &mounts[i];
	if (chosen) {
		char real_mnt[PATH_MAX];
		if (mnt && (!realpath(mnt, real_mnt) || strcmp(real_mnt, chosen->dir) != 0)) {
			fail(1, "%s is inside the hfmount mount %s, not %s", video, chosen->dir,
			     mnt);
			goto out_free;
		}
		if (join(out, sizeof(out), dir, "", seg) < 0) {
			fail(1, "%s: %s", video, strerror(ENAMETOOLONG));
			goto out_free;
		}
		goto out_print;
	}

	if (mnt) {
		memset(&given, 0, sizeof(given));
		if (!realpath(mnt, given.dir)) {
			fail(1, "%s: %s", mnt, strerror(errno));
			goto out_free;
		}
		for (size_t i = 0; i < nmounts && !chosen; i++)
			if (strcmp(mounts[i].dir, given.dir) == 0)
				chosen = &given;
		if (!chosen) {
			fail(1, "%s is not an hfmount mount", mnt);
			goto out_free;
		}
		if (!serves(chosen, dir, name, &st)) {
			if (chosen->root[0])
				fail(1, "%s is not below %s's source_root %s", video, mnt,
				     chosen->root);
			else
				fail(1, "the mount %s does not show %s", mnt, video);
			goto out_free;
		}
	} else {
		/* The most specific source_root wins; among equals, the first mounted. */
		for (size_t i = 0; i < nmounts; i++)
			if (serves(&mounts[i], dir, name, &st) &&
			    (!chosen || strlen(mounts[i].root) > strlen(chosen->root)))
				chosen = &mounts[i];
		if (!chosen) {
			fail(1, "no hfmount mount serves %s%s", video,
			     nmounts ? "" : " (none is mounted)");
			goto out_free;
		}
	}
	/* MNT + the directory's part below source_root + the segment */
	if (join(out, sizeof(out), chosen->dir,
		 strcmp(chosen->root, "/") == 0 ? dir : dir + strlen(chosen->root), seg) < 0) {
		fail(1, "%s: %s", video, strerror(ENAMETOOLONG));
		goto out_free;
	}
out_print:
	printf("%s\n", out);
	ret = 0;
	goto out_free;
out_usage:
	fputs(path_help, stderr);
out_free:
	free(mounts);
	free(optbuf);
	return ret;
}
