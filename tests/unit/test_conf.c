/*
 * Unit tests for conf/: defaults, the INI file, the environment, -o options,
 * their precedence, size parsing and the wording of errors and warnings.
 * Temporary files live in a mkdtemp directory that is removed at the end.
 */
#include "conf/conf.h"
#include "hftest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];
static int file_seq;

/* Warnings seen through the callback. */
struct warnings {
	int count;
	char last[8192];
	char all[16384];
};

static void collect_warning(void *arg, const char *msg)
{
	struct warnings *w = arg;
	size_t used = strlen(w->all);

	w->count++;
	snprintf(w->last, sizeof(w->last), "%s", msg);
	snprintf(w->all + used, sizeof(w->all) - used, "%s\n", msg);
}

/* Writes text to a new file in tmpdir and returns its path (static storage, rotated). */
static const char *write_file(const char *text)
{
	static char paths[8][128];
	char *path = paths[file_seq % 8];
	FILE *f;

	snprintf(path, sizeof(paths[0]), "%s/conf%d.ini", tmpdir, file_seq++);
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
	return path;
}

static bool contains(const char *haystack, const char *needle)
{
	return strstr(haystack, needle) != NULL;
}

static void test_defaults(void)
{
	struct hf_conf c;

	memset(&c, 0x5a, sizeof(c));
	conf_defaults(&c);
	CHECK_EQ_INT(c.max_size, 10ULL << 30);
	CHECK_EQ_INT(c.min_free, 1ULL << 30);
	CHECK_EQ_INT(c.identity, HF_IDENTITY_STAT);
	CHECK_EQ_INT(c.fsync, false);
	CHECK_EQ_INT(c.threads, 0);
	CHECK_EQ_INT(c.eager, true);
	CHECK_EQ_INT(c.png_level, 1);
	CHECK_EQ_INT(c.png_filter, HF_PNG_FILTER_UP);
	CHECK_EQ_INT(c.png_strategy, HF_PNG_STRATEGY_RLE);
	CHECK_EQ_INT(c.jpeg_q, 2);
	CHECK_EQ_INT(c.max_pixels, 1ULL << 26);
	CHECK_EQ_STR(c.source_root, "/");
	CHECK(c.attr_timeout == 86400.0);
	CHECK_EQ_INT(c.log_level, HF_LOG_INFO);
}

static void test_enum_names(void)
{
	CHECK_EQ_STR(conf_png_filter_name(HF_PNG_FILTER_NONE), "none");
	CHECK_EQ_STR(conf_png_filter_name(HF_PNG_FILTER_UP), "up");
	CHECK_EQ_STR(conf_png_filter_name(HF_PNG_FILTER_ALL), "all");
	CHECK_EQ_STR(conf_png_strategy_name(HF_PNG_STRATEGY_DEFAULT), "default");
	CHECK_EQ_STR(conf_png_strategy_name(HF_PNG_STRATEGY_RLE), "rle");
	CHECK_EQ_STR(conf_png_strategy_name(HF_PNG_STRATEGY_FIXED), "fixed");
	CHECK_EQ_STR(conf_png_filter_name((enum hf_png_filter)99), "?");
	CHECK_EQ_STR(conf_png_strategy_name((enum hf_png_strategy) - 1), "?");
}

static void check_size(const char *s, uint64_t want, int line)
{
	uint64_t got = 12345;
	int ret = conf_parse_size(s, &got);

	if (!hftest_check_int(ret, 0, __FILE__, line, s, "0"))
		return;
	hftest_check_int((long long)got, (long long)want, __FILE__, line, s, "expected bytes");
}

static void check_bad_size(const char *s, int line)
{
	uint64_t got = 12345;

	hftest_check_int(conf_parse_size(s, &got), -EINVAL, __FILE__, line, s, "-EINVAL");
	hftest_check_int((long long)got, 12345, __FILE__, line, s, "untouched");
}

static void test_parse_size(void)
{
	check_size("0", 0, __LINE__);
	check_size("1048576", 1048576, __LINE__);
	check_size("10G", 10ULL << 30, __LINE__);
	check_size("512M", 512ULL << 20, __LINE__);
	check_size("1.5G", 3ULL << 29, __LINE__);
	check_size("1k", 1024, __LINE__);
	check_size("1K", 1024, __LINE__);
	check_size("1KB", 1024, __LINE__);
	check_size("1KiB", 1024, __LINE__);
	check_size("1kib", 1024, __LINE__);
	check_size("2gb", 2ULL << 30, __LINE__);
	check_size("2T", 2ULL << 40, __LINE__);
	check_size("3 G", 3ULL << 30, __LINE__);
	check_size("100B", 100, __LINE__);
	check_size("0.5K", 512, __LINE__);
	check_size("1.1K", 1126, __LINE__); /* 1126.4, rounded down to whole bytes */
	check_size("0.000000001T", 1099, __LINE__);
	check_size("18446744073709551615", UINT64_MAX, __LINE__);
	check_size("16777215T", 16777215ULL << 40, __LINE__);

	check_bad_size(NULL, __LINE__);
	check_bad_size("", __LINE__);
	check_bad_size("-1", __LINE__);
	check_bad_size("+1", __LINE__);
	check_bad_size(" 1G", __LINE__);
	check_bad_size("G", __LINE__);
	check_bad_size("1.5", __LINE__); /* a fraction of a byte */
	check_bad_size("1.", __LINE__);
	check_bad_size(".5G", __LINE__);
	check_bad_size("1.5.5G", __LINE__);
	check_bad_size("1X", __LINE__);
	check_bad_size("1P", __LINE__);
	check_bad_size("1KBB", __LINE__);
	check_bad_size("1iB", __LINE__);
	check_bad_size("1G ", __LINE__);
	check_bad_size("ten", __LINE__);
	check_bad_size("1.0000000001G", __LINE__);
	check_bad_size("18446744073709551616", __LINE__);
	check_bad_size("99999999999999999999999", __LINE__);
	check_bad_size("16777216T", __LINE__);
	check_bad_size("17179869184G", __LINE__);
}

static void test_file_every_key(void)
{
	struct hf_conf c;
	struct warnings w = {0};
	char err[512] = "";
	const char *path = write_file("; every key, none at its default\n"
				      "[store]\n"
				      "max_size = 20G\n"
				      "min_free = 512M\n"
				      "identity = content\n"
				      "fsync = on\n"
				      "\n"
				      "[Decode]\n"
				      "threads = 8\n"
				      "EAGER = false\n"
				      "png_level = 9\n"
				      "png_filter = paeth ; a comment\n"
				      "png_strategy = huffman\n"
				      "jpeg_q = 31\n"
				      "max_pixels = 16M\n"
				      "# another comment\n"
				      "[fs]\n"
				      "source_root = \"/srv/videos//\"\n"
				      "attr_timeout = 0.5\n"
				      "[log]\n"
				      "level = debug\r\n");

	conf_defaults(&c);
	if (!CHECK_EQ_INT(conf_load_file(&c, path, collect_warning, &w, err, sizeof(err)), 0))
		fprintf(stderr, "  err: %s\n", err);
	CHECK_EQ_INT(w.count, 0);
	CHECK_EQ_INT(c.max_size, 20ULL << 30);
	CHECK_EQ_INT(c.min_free, 512ULL << 20);
	CHECK_EQ_INT(c.identity, HF_IDENTITY_CONTENT);
	CHECK_EQ_INT(c.fsync, true);
	CHECK_EQ_INT(c.threads, 8);
	CHECK_EQ_INT(c.eager, false);
	CHECK_EQ_INT(c.png_level, 9);
	CHECK_EQ_INT(c.png_filter, HF_PNG_FILTER_PAETH);
	CHECK_EQ_INT(c.png_strategy, HF_PNG_STRATEGY_HUFFMAN);
	CHECK_EQ_INT(c.jpeg_q, 31);
	CHECK_EQ_INT(c.max_pixels, 16ULL << 20);
	CHECK_EQ_STR(c.source_root, "/srv/videos");
	CHECK(c.attr_timeout == 0.5);
	CHECK_EQ_INT(c.log_level, HF_LOG_DEBUG);
}

static void test_file_values(void)
{
	static const struct {
		const char *value;
		bool want;
	} bools[] = {{"on", true},  {"off", false}, {"true", true}, {"FALSE", false},
		     {"yes", true}, {"No", false},  {"1", true},    {"0", false}};
	struct hf_conf c;
	char err[512], text[256];

	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		snprintf(text, sizeof(text), "[store]\nfsync = %s\n", bools[i].value);
		conf_defaults(&c);
		c.fsync = !bools[i].want;
		CHECK_EQ_INT(conf_load_file(&c, write_file(text), NULL, NULL, err, sizeof(err)), 0);
		CHECK_EQ_INT(c.fsync, bools[i].want);
	}

	conf_defaults(&c);
	CHECK_EQ_INT(conf_load_file(&c,
				    write_file("[fs]\nsource_root = ///\nattr_timeout = 0\n"
					       "[decode]\nthreads = 256\njpeg_q = 1\n"
					       "png_level = 0\npng_filter = NONE\n"),
				    NULL, NULL, err, sizeof(err)),
		     0);
	CHECK_EQ_STR(c.source_root, "/");
	CHECK(c.attr_timeout == 0.0);
	CHECK_EQ_INT(c.threads, 256);
	CHECK_EQ_INT(c.jpeg_q, 1);
	CHECK_EQ_INT(c.png_level, 0);
	CHECK_EQ_INT(c.png_filter, HF_PNG_FILTER_NONE);

	/* The last of two definitions wins, as in iniparser. */
	conf_defaults(&c);
	CHECK_EQ_INT(conf_load_file(&c, write_file("[decode]\npng_level = 3\npng_level = 4\n"),
				    NULL, NULL, err, sizeof(err)),
		     0);
	CHECK_EQ_INT(c.png_level, 4);

	/* An empty file changes nothing. */
	conf_defaults(&c);
	CHECK_EQ_INT(conf_load_file(&c, write_file(""), NULL, NULL, err, sizeof(err)), 0);
	CHECK_EQ_INT(c.png_level, 1);
}

/*
 * Loads a file whose line `line` sets [section] key = value after a valid
 * png_level = 7, and checks the error names file, line, key and the rule, and
 * that nothing was applied.
 */
static void check_bad_value(const char *section, const char *key, const char *value,
			    const char *rule, int src_line)
{
	struct hf_conf c;
	char err[512] = "", text[512], where[160], what[160];
	const char *path;
	int ret;

	snprintf(text, sizeof(text),
		 "# line 1\n"
		 "[decode]\n"
		 "png_level = 7\n"
		 "\n"
		 "[%s]\n"
		 "%s = %s\n",
		 section, key, value);
	path = write_file(text);
	conf_defaults(&c);
	ret = conf_load_file(&c, path, NULL, NULL, err, sizeof(err));
	hftest_check_int(ret, -EINVAL, __FILE__, src_line, key, "-EINVAL");
	snprintf(where, sizeof(where), "%s:6: ", path);
	snprintf(what, sizeof(what), "[%s] %s = %s: ", section, key, value);
	if (!hftest_check(contains(err, where) && contains(err, what) && contains(err, rule),
			  __FILE__, src_line, "error names file:line, key, value and rule"))
		fprintf(stderr, "  err: %s\n", err);
	hftest_check_int(c.png_level, 1, __FILE__, src_line, "png_level", "untouched");
}

static void test_file_bad_values(void)
{
	check_bad_value("store", "max_size", "lots", "such as 1048576, 512M or 1.5G", __LINE__);
	check_bad_value("store", "max_size", "-1G", "powers of 1024", __LINE__);
	check_bad_value("store", "min_free", "1.5", "expected a size", __LINE__);
	check_bad_value("store", "identity", "hash", "expected one of: stat, content", __LINE__);
	check_bad_value("store", "fsync", "maybe", "expected on or off", __LINE__);
	check_bad_value("decode", "threads", "257", "expected an integer from 0 to 256", __LINE__);
	check_bad_value("decode", "threads", "-1", "expected an integer from 0 to 256", __LINE__);
	check_bad_value("decode", "eager", "2", "expected on or off", __LINE__);
	check_bad_value("decode", "png_level", "12", "expected an integer from 0 to 9", __LINE__);
	check_bad_value("decode", "png_level", "3x", "expected an integer from 0 to 9", __LINE__);
	check_bad_value("decode", "png_level", "99999999999999999999",
			"expected an integer from 0 to 9", __LINE__);
	check_bad_value("decode", "png_filter", "bogus",
			"expected one of: none, sub, up, avg, paeth, all", __LINE__);
	check_bad_value("decode", "png_strategy", "zip",
			"expected one of: default, filtered, huffman, rle, fixed", __LINE__);
	check_bad_value("decode", "jpeg_q", "0", "expected an integer from 1 to 31", __LINE__);
	check_bad_value("fs", "source_root", "relative/dir", "expected an absolute path", __LINE__);
	check_bad_value("fs", "attr_timeout", "-1", "expected a number of seconds >= 0", __LINE__);
	check_bad_value("fs", "attr_timeout", "1e3", "expected a number of seconds >= 0", __LINE__);
	check_bad_value("fs", "attr_timeout", "inf", "expected a number of seconds >= 0", __LINE__);
	check_bad_value("log", "level", "verbose", "expected one of: error, warn, info, debug",
			__LINE__);
}

static void test_file_exact_message(void)
{
	struct hf_conf c;
	char err[512], want[512];
	const char *path = write_file("[decode]\n\n\n\n\n\npng_level = 12\n");

	conf_defaults(&c);
	CHECK_EQ_INT(conf_load_file(&c, path, NULL, NULL, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want),
		 "%s:7: [decode] png_level = 12: expected an integer from 0 to 9", path);
	CHECK_EQ_STR(err, want);

	/* An empty value is an error too, and the line of the later duplicate is named. */
	path = write_file("[decode]\neager = yes\n[store]\n[decode]\n  Eager   =   \n");
	CHECK_EQ_INT(conf_load_file(&c, path, NULL, NULL, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:5: [decode] eager = : expected on or off", path);
	CHECK(contains(err, want));

	/* Continuation lines count. */
	path = write_file("[store]\nmax_size = 1\\\n0G\n[decode]\njpeg_q = 40\n");
	CHECK_EQ_INT(conf_load_file(&c, path, NULL, NULL, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:5: [decode] jpeg_q = 40:", path);
	CHECK(contains(err, want));

	/* A NULL or empty err buffer is allowed. */
	CHECK_EQ_INT(conf_load_file(&c, path, NULL, NULL, NULL, 0), -EINVAL);
	CHECK_EQ_INT(conf_load_file(&c, path, NULL, NULL, err, 0), -EINVAL);
}

static void test_file_unknown(void)
{
	struct hf_conf c;
	struct warnings w = {0};
	char err[512] = "", want[512];
	const char *path = write_file("[decode]\n"
				      "png_level = 5\n"
				      "foo = 1\n"
				      "[colour]\n"
				      "depth = 10\n"
				      "[store]\n"
				      "png_filter = sub\n");

	conf_defaults(&c);
	if (!CHECK_EQ_INT(conf_load_file(&c, path, collect_warning, &w, err, sizeof(err)), 0))
		fprintf(stderr, "  err: %s\n", err);
	CHECK_EQ_INT(c.png_level, 5);
	CHECK_EQ_INT(c.png_filter, HF_PNG_FILTER_UP);
	CHECK_EQ_INT(w.count, 3);
	snprintf(want, sizeof(want), "%s:3: unknown key 'foo' in [decode] (ignored)\n", path);
	CHECK(contains(w.all, want));
	snprintf(want, sizeof(want), "%s:4: unknown section [colour] (ignored)\n", path);
	CHECK(contains(w.all, want));
	snprintf(want, sizeof(want), "%s:7: unknown key 'png_filter' in [store]", path);
	CHECK(contains(w.all, want));
	CHECK(contains(w.all, "belongs in [decode]"));
	if (w.count != 3)
		fprintf(stderr, "  warnings:\n%s", w.all);

	/* A key before any section. */
	memset(&w, 0, sizeof(w));
	path = write_file("png_level = 3\n[decode]\n");
	CHECK_EQ_INT(conf_load_file(&c, path, collect_warning, &w, err, sizeof(err)), 0);
	CHECK_EQ_INT(w.count, 1);
	snprintf(want, sizeof(want), "%s:1: key 'png_level' outside any section (ignored)", path);
	CHECK_EQ_STR(w.last, want);

	/* Without a callback, warnings are dropped. */
	CHECK_EQ_INT(conf_load_file(&c, path, NULL, NULL, err, sizeof(err)), 0);
}

static void test_file_syntax(void)
{
	struct hf_conf c;
	char err[512] = "", want[512];
	char long_line[2100];
	const char *path = write_file("[decode]\npng_level = 3\nthis is not ini\n");

	conf_defaults(&c);
	CHECK_EQ_INT(conf_load_file(&c, path, NULL, NULL, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:3: syntax error", path);
	if (!CHECK(contains(err, want) && contains(err, "this is not ini")))
		fprintf(stderr, "  err: %s\n", err);
	CHECK_EQ_INT(c.png_level, 1);

	memset(long_line, 'x', sizeof(long_line) - 2);
	memcpy(long_line, "[fs]\nsource_root = /", 20);
	long_line[sizeof(long_line) - 2] = '\n';
	long_line[sizeof(long_line) - 1] = '\0';
	path = write_file(long_line);
	CHECK_EQ_INT(conf_load_file(&c, path, NULL, NULL, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:2: line too long", path);
	if (!CHECK(contains(err, want)))
		fprintf(stderr, "  err: %s\n", err);
}

static void test_file_unreadable(void)
{
	struct hf_conf c;
	char err[512] = "", path[128];
	int ret;

	conf_defaults(&c);
	snprintf(path, sizeof(path), "%s/missing.ini", tmpdir);
	CHECK_EQ_INT(conf_load_file(&c, path, NULL, NULL, err, sizeof(err)), -ENOENT);
	CHECK(contains(err, path) && contains(err, strerror(ENOENT)));

	/* A directory opens but does not read. */
	ret = conf_load_file(&c, tmpdir, NULL, NULL, err, sizeof(err));
	CHECK_EQ_INT(ret, -EISDIR);
	CHECK(contains(err, tmpdir));

	/* Root reads anything, so mode 000 only means something to others. */
	if (geteuid() != 0) {
		const char *locked = write_file("[decode]\npng_level = 3\n");

		chmod(locked, 0);
		CHECK_EQ_INT(conf_load_file(&c, locked, NULL, NULL, err, sizeof(err)), -EACCES);
		CHECK(contains(err, locked) && contains(err, strerror(EACCES)));
	}
	CHECK_EQ_INT(c.png_level, 1);
}

static void test_env(void)
{
	struct hf_conf c;
	struct warnings w = {0};
	char err[512] = "";
	char *env[] = {"PATH=/usr/bin",
		       "HFMOUNT_DECODE_PNG_LEVEL=3",
		       "HFMOUNT_STORE_MAX_SIZE=2G",
		       "HFMOUNT_FS_SOURCE_ROOT=/data/",
		       "HFMOUNT_LOG_LEVEL=warn",
		       "HFMOUNT_STORE_FSYNC=yes",
		       "HFMOUNT_DECODE_PNG_LEVLE=4",
		       "hfmount_decode_png_level=5",
		       "HFMOUNT_NOEQUALS",
		       NULL};
	char *bad[] = {"HFMOUNT_DECODE_EAGER=no", "HFMOUNT_DECODE_PNG_LEVEL=12", NULL};

	conf_defaults(&c);
	if (!CHECK_EQ_INT(conf_apply_env(&c, env, collect_warning, &w, err, sizeof(err)), 0))
		fprintf(stderr, "  err: %s\n", err);
	CHECK_EQ_INT(c.png_level, 3);
	CHECK_EQ_INT(c.max_size, 2ULL << 30);
	CHECK_EQ_STR(c.source_root, "/data");
	CHECK_EQ_INT(c.log_level, HF_LOG_WARN);
	CHECK_EQ_INT(c.fsync, true);
	CHECK_EQ_INT(w.count, 1);
	CHECK(contains(w.last, "HFMOUNT_DECODE_PNG_LEVLE") && contains(w.last, "ignored"));

	conf_defaults(&c);
	CHECK_EQ_INT(conf_apply_env(&c, bad, NULL, NULL, err, sizeof(err)), -EINVAL);
	CHECK_EQ_STR(err, "HFMOUNT_DECODE_PNG_LEVEL=12: expected an integer from 0 to 9");
	CHECK_EQ_INT(c.eager, true); /* all or nothing */

	CHECK_EQ_INT(conf_apply_env(&c, NULL, NULL, NULL, err, sizeof(err)), 0);
}

static void test_option(void)
{
	struct hf_conf c;
	char err[512] = "";

	conf_defaults(&c);
	CHECK_EQ_INT(conf_set_option(&c, "png_level", "3", "-o", err, sizeof(err)), 0);
	CHECK_EQ_INT(c.png_level, 3);
	CHECK_EQ_INT(conf_set_option(&c, "decode.png_level", "4", "-o", err, sizeof(err)), 0);
	CHECK_EQ_INT(c.png_level, 4);
	CHECK_EQ_INT(conf_set_option(&c, "level", "error", "-o", err, sizeof(err)), 0);
	CHECK_EQ_INT(c.log_level, HF_LOG_ERROR);
	CHECK_EQ_INT(conf_set_option(&c, "max_size", "1.5T", "-o", err, sizeof(err)), 0);
	CHECK_EQ_INT(c.max_size, 3ULL << 39);
	CHECK_EQ_INT(conf_set_option(&c, "fsync", NULL, "-o", err, sizeof(err)), 0);
	CHECK_EQ_INT(c.fsync, true);

	CHECK_EQ_INT(conf_set_option(&c, "png_level", "12", "-o", err, sizeof(err)), -EINVAL);
	CHECK_EQ_STR(err, "-o png_level=12: expected an integer from 0 to 9");
	CHECK_EQ_INT(c.png_level, 4);
	CHECK_EQ_INT(conf_set_option(&c, "png_level", NULL, "-o", err, sizeof(err)), -EINVAL);
	CHECK_EQ_STR(err, "-o png_level: expected an integer from 0 to 9");
	CHECK_EQ_INT(conf_set_option(&c, "jpeg_q", "0", NULL, err, sizeof(err)), -EINVAL);
	CHECK_EQ_STR(err, "jpeg_q=0: expected an integer from 1 to 31");

	CHECK_EQ_INT(conf_set_option(&c, "foo", "1", "-o", err, sizeof(err)), -ENOENT);
	CHECK_EQ_STR(err, "unknown option 'foo'");
	CHECK_EQ_INT(conf_set_option(&c, "store.png_level", "1", "-o", err, sizeof(err)), -ENOENT);
	CHECK_EQ_STR(err, "unknown option 'store.png_level'");
	CHECK_EQ_INT(conf_set_option(&c, "config", "/x.ini", "-o", err, sizeof(err)), -ENOENT);
}

static void test_precedence(void)
{
	struct hf_conf c;
	char err[512] = "";
	const char *path = write_file("[decode]\npng_level = 5\nthreads = 2\njpeg_q = 7\n");
	char *env[] = {"HFMOUNT_DECODE_PNG_LEVEL=6", "HFMOUNT_DECODE_THREADS=3", NULL};

	conf_defaults(&c);
	CHECK_EQ_INT(conf_load_file(&c, path, NULL, NULL, err, sizeof(err)), 0);
	CHECK_EQ_INT(conf_apply_env(&c, env, NULL, NULL, err, sizeof(err)), 0);
	CHECK_EQ_INT(conf_set_option(&c, "png_level", "8", "-o", err, sizeof(err)), 0);
	CHECK_EQ_INT(c.png_level, 8); /* option beats env and file */
	CHECK_EQ_INT(c.threads, 3);   /* env beats file */
	CHECK_EQ_INT(c.jpeg_q, 7);    /* file beats default */
	CHECK_EQ_INT(c.eager, true);  /* default */
}

static void test_default_path(void)
{
	char buf[256];
	char *old_xdg = getenv("XDG_CONFIG_HOME"), *old_home = getenv("HOME");

	old_xdg = old_xdg ? strdup(old_xdg) : NULL;
	old_home = old_home ? strdup(old_home) : NULL;

	setenv("XDG_CONFIG_HOME", "/xdg", 1);
	setenv("HOME", "/home/u", 1);
	CHECK_EQ_INT(conf_default_path(buf, sizeof(buf)), 0);
	CHECK_EQ_STR(buf, "/xdg/hfmount/hfmount.ini");
	CHECK_EQ_INT(conf_default_path(buf, 10), -ENAMETOOLONG);
	CHECK_EQ_INT(conf_default_path(buf, strlen("/xdg/hfmount/hfmount.ini") + 1), 0);

	unsetenv("XDG_CONFIG_HOME");
	CHECK_EQ_INT(conf_default_path(buf, sizeof(buf)), 0);
	CHECK_EQ_STR(buf, "/home/u/.config/hfmount/hfmount.ini");

	setenv("XDG_CONFIG_HOME", "relative", 1); /* ignored, as the XDG spec says */
	CHECK_EQ_INT(conf_default_path(buf, sizeof(buf)), 0);
	CHECK_EQ_STR(buf, "/home/u/.config/hfmount/hfmount.ini");

	if (old_xdg)
		setenv("XDG_CONFIG_HOME", old_xdg, 1);
	else
		unsetenv("XDG_CONFIG_HOME");
	if (old_home)
		setenv("HOME", old_home, 1);
	else
		unsetenv("HOME");
	free(old_xdg);
	free(old_home);
}

static void remove_tmpdir(void)
{
	char path[128];

	for (int i = 0; i < file_seq; i++) {
		snprintf(path, sizeof(path), "%s/conf%d.ini", tmpdir, i);
		unlink(path);
	}
	rmdir(tmpdir);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s", "/tmp/test_conf.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}

	test_defaults();
	test_enum_names();
	test_parse_size();
	test_file_every_key();
	test_file_values();
	test_file_bad_values();
	test_file_exact_message();
	test_file_unknown();
	test_file_syntax();
	test_file_unreadable();
	test_env();
	test_option();
	test_precedence();
	test_default_path();

	remove_tmpdir();
	return hftest_done();
}
