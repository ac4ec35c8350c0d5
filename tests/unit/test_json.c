/*
 * test_json: hfctl's JSON reader (tools/ctl_json.c, part of the hfctl program, so built in
 * here): malformed and truncated documents give one clear sentence and no tree, the
 * getters' defaults stand in for missing or mistyped fields, and the mount-file loaders
 * say whose fault a failure is. Run under -DHF_SANITIZE=ON for the no-crash half.
 */
#include "tools/ctl_json.c"

#include <stdlib.h>
#include <sys/stat.h>

#include "hftest.h"

/* What hfmount writes, shortened: every kind of value and nesting it uses. */
static const char stats_doc[] =
    "{\n  \"version\": \"0.1.0\",\n  \"uptime_s\": 12.5,\n  \"segments_active\": 1,\n"
    "  \"store_over_bounds\": false,\n  \"store_error\": null,\n"
    "  \"extractions\": [\n    {\n      \"segment\": \"a.mp4@0+1@30\",\n"
    "      \"path\": \"/v/a.mp4@0+1@30\",\n      \"count\": 30,\n      \"frames_done\": 1\n"
    "    }\n  ],\n  \"store_bytes\": 9007199254740992,\n"
    "  \"time_ms\": {\n    \"index\": 5.3,\n    \"decode\": 14.8\n  }\n}\n";

/* A failed parse: an error, no tree, one line that says it is bad JSON and where. */
static void check_rejected(const char *text, size_t len)
{
	json_t *j = (json_t *)1;
	char err[256] = "";
	int ret = ctl_json_parse(text, len, &j, err, sizeof(err));

	if (!CHECK_EQ_INT(ret, -EINVAL))
		fprintf(stderr, "  accepted %.*s\n", (int)len, text);
	CHECK(j == NULL);
	CHECK(strncmp(err, "bad JSON at line ", 17) == 0);
	CHECK(strchr(err, '\n') == NULL && strlen(err) > 30);
	ctl_json_free(&j);
}

static void test_malformed(void)
{
	static const char *const bad[] = {"",
					  " \n ",
					  "{",
					  "}",
					  "{\"a\": }",
					  "{\"a\": 01}",
					  "{\"a\": \"\\ud800\"}",
					  "{\"a\": \"\\udc00x\"}",
					  "{\"a\": 1} x",
					  "{\"a\": 1,}",
					  "[1, 2",
					  "[1 2]",
					  "\"abc",
					  "{\"a\" 1}",
					  "{a: 1}",
					  "{'a': 1}",
					  "nul",
					  "tru",
					  "{\"a\": 1e}",
					  "{\"a\": 1.}",
					  "{\"a\": -}",
					  "{\"a\": .5}",
					  "{\"a\": +1}",
					  "{\"a\": NaN}",
					  "{\"a\": Infinity}",
					  "\"\\x\"",
					  "\"\\u12\"",
					  "\"\\u12g4\"",
					  "\"tab\there\"",
					  "\"\xff\"",
					  "\"\xc3\"",
					  "{\"a\": 1} {\"b\": 2}",
					  "/* c */ {}",
					  "{\"a\": [}",
					  "{\"a\": {]}"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_rejected(bad[i], strlen(bad[i]));
	/* a NUL byte inside the text is not whitespace */
	check_rejected("{}\0", 3);
}

/* Every proper prefix of a good document fails cleanly; the whole of it parses. */
static void test_truncated(void)
{
	size_t len = strlen(stats_doc), rejected = 0;
	json_t *j = NULL;
	char err[256];

	for (size_t n = 0; n < len; n++) {
		int ret = ctl_json_parse(stats_doc, n, &j, err, sizeof(err));
		/* the only prefixes that are whole documents end in the closing brace */
		if (ret == 0) {
			CHECK(n >= len - 1);
			ctl_json_free(&j);
			continue;
		}
		rejected++;
		CHECK(j == NULL && strncmp(err, "bad JSON at line ", 17) == 0);
	}
	CHECK_EQ_INT(rejected, len - 1);
	CHECK_EQ_INT(ctl_json_parse(stats_doc, len, &j, err, sizeof(err)), 0);
	CHECK(json_is_object(j));
	ctl_json_free(&j);
	CHECK(j == NULL);
	ctl_json_free(&j); /* NULL again: nothing */
	ctl_json_free(NULL);
}

/* Deep nesting is refused with a sentence, not a stack overflow. */
static void test_deep(void)
{
	size_t depth = 100000;
	char *text = malloc(2 * depth), err[256];
	json_t *j = NULL;

	if (!CHECK(text != NULL))
		return;
	memset(text, '[', depth);
	memset(text + depth, ']', depth);
	CHECK_EQ_INT(ctl_json_parse(text, 2 * depth, &j, err, sizeof(err)), -EINVAL);
	CHECK(j == NULL && strstr(err, "bad JSON") != NULL);
	free(text);
	/* as deep as a test of hfctl writes: fine, and not an object */
	CHECK_EQ_INT(ctl_json_parse("[[[[[[[[[[]]]]]]]]]]", 20, &j, err, sizeof(err)), 0);
	CHECK(json_is_array(j) && !json_is_object(j));
	ctl_json_free(&j);
}

/* The error says where: line and column of the bad byte. */
static void test_error_position(void)
{
	const char *doc = "{\n  \"a\": 1,\n  \"b\": ?\n}";
	json_t *j = NULL;
	char err[256];

	CHECK_EQ_INT(ctl_json_parse(doc, strlen(doc), &j, err, sizeof(err)), -EINVAL);
	CHECK(strncmp(err, "bad JSON at line 3, column ", 27) == 0);
	/* a short buffer gets a cut sentence, never an overrun */
	CHECK_EQ_INT(ctl_json_parse("{", 1, &j, err, 8), -EINVAL);
	CHECK_EQ_INT(strlen(err), 7);
}

static void test_getters(void)
{
	json_t *st = NULL, *x;
	char err[256];
	uint64_t v = 7;

	if (!CHECK_EQ_INT(ctl_json_parse(stats_doc, strlen(stats_doc), &st, err, sizeof(err)), 0))
		return;
	CHECK_EQ_STR(ctl_json_str(json_object_get(st, "version"), NULL), "0.1.0");
	CHECK_EQ_STR(ctl_json_str(json_object_get(st, "missing"), "dflt"), "dflt");
	CHECK_EQ_STR(ctl_json_str(json_object_get(st, "uptime_s"), "dflt"), "dflt");
	CHECK_EQ_STR(ctl_json_str(json_object_get(st, "store_error"), NULL), NULL);
	CHECK(ctl_json_num(json_object_get(st, "uptime_s"), -1) == 12.5);
	CHECK(ctl_json_num(json_object_get(st, "version"), -1) == -1);
	CHECK(ctl_json_num(json_object_get(st, "missing"), -1) == -1);
	CHECK(ctl_json_num(NULL, 3) == 3);
	CHECK(ctl_json_u64(json_object_get(st, "segments_active"), &v) && v == 1);
	CHECK(ctl_json_u64(json_object_get(st, "store_bytes"), &v) && v == 9007199254740992ULL);
	v = 7;
	CHECK(!ctl_json_u64(json_object_get(st, "uptime_s"), &v) && v == 7);
	CHECK(!ctl_json_u64(json_object_get(st, "version"), &v) && v == 7);
	CHECK(!ctl_json_u64(json_object_get(st, "missing"), &v) && v == 7);
	CHECK(!ctl_json_u64(NULL, &v) && v == 7);
	CHECK(json_is_false(json_object_get(st, "store_over_bounds")));
	/* lookups through missing parts give NULL and 0, never a crash */
	x = json_array_get(json_object_get(st, "extractions"), 0);
	CHECK_EQ_STR(ctl_json_str(json_object_get(x, "path"), NULL), "/v/a.mp4@0+1@30");
	CHECK(json_array_get(json_object_get(st, "extractions"), 1) == NULL);
	CHECK(json_array_get(json_object_get(st, "nothing"), 0) == NULL);
	CHECK_EQ_INT(json_array_size(json_object_get(st, "time_ms")), 0);
	CHECK_EQ_INT(json_object_size(json_object_get(st, "time_ms")), 2);
	CHECK(json_object_get(json_object_get(st, "version"), "x") == NULL);
	CHECK(json_object_get(NULL, "x") == NULL);
	ctl_json_free(&st);
}

/* Numbers no counter holds: negative, fractional, too big for uint64_t, not finite. */
static void test_numbers(void)
{
	static const struct {
		const char *text;
		bool ok;
		uint64_t v;
	} cases[] = {{"0", true, 0},
		     {"42", true, 42},
		     {"42.0", true, 42},
		     {"4.2e1", true, 42},
		     {"-1", false, 0},
		     {"-0.5", false, 0},
		     {"0.5", false, 0},
		     {"18446744073709551616", false, 0},
		     {"1e300", false, 0},
		     {"9007199254740993", true, 9007199254740992ULL}, /* a double: 2^53 */
		     {"1e400", false, 0}};
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = NULL;
		uint64_t v = 123;
		int ret =
		    ctl_json_parse(cases[i].text, strlen(cases[i].text), &j, err, sizeof(err));
		if (ret < 0) { /* jansson refuses what overflows a double */
			CHECK(!cases[i].ok && strncmp(err, "bad JSON", 8) == 0);
			continue;
		}
		if (!CHECK(ctl_json_u64(j, &v) == cases[i].ok))
			fprintf(stderr, "  %s\n", cases[i].text);
		CHECK(cases[i].ok ? v == cases[i].v : v == 123);
		ctl_json_free(&j);
	}
}

/* \u0000 is allowed in a string, which ends there for C; other escapes come out whole. */
static void test_strings(void)
{
	const char *text = "{\"a\": \"x\\u0000y\", \"b\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\"\"}";
	json_t *j = NULL;
	char err[256];

	if (!CHECK_EQ_INT(ctl_json_parse(text, strlen(text), &j, err, sizeof(err)), 0))
		return;
	CHECK_EQ_STR(ctl_json_str(json_object_get(j, "a"), NULL), "x");
	CHECK_EQ_STR(ctl_json_str(json_object_get(j, "b"), NULL),
		     "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\"");
	ctl_json_free(&j);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (CHECK(f != NULL)) {
		fputs(text, f);
		fclose(f);
	}
}

/* The loaders: whose fault a failure is, in one sentence. */
static void test_load(void)
{
	char dir[] = "/tmp/test_json.XXXXXX", path[PATH_MAX], msg[PATH_MAX + 256], want[PATH_MAX];
	json_t *j = (json_t *)1;

	if (!CHECK(mkdtemp(dir) != NULL))
		return;
	snprintf(path, sizeof(path), "%s/missing", dir);
	CHECK_EQ_INT(ctl_json_load(path, &j, msg, sizeof(msg)), -ENOENT);
	CHECK(j == NULL);
	CHECK_EQ_STR(msg, strerror(ENOENT));
	/* a read that fails (a directory) is its errno, not a parse error */
	CHECK_EQ_INT(ctl_json_load(dir, &j, msg, sizeof(msg)), -EISDIR);
	CHECK_EQ_STR(msg, strerror(EISDIR));

	CHECK_EQ_INT(ctl_json_load_in(path, ".hfstats", "is not ours", &j, msg, sizeof(msg)), -1);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
	CHECK_EQ_STR(msg, want);
	CHECK_EQ_INT(ctl_json_load_in(dir, ".hfstats", "is not ours", &j, msg, sizeof(msg)), -1);
	snprintf(want, sizeof(want), "%s is not ours", dir);
	CHECK_EQ_STR(msg, want);

	snprintf(path, sizeof(path), "%s/.hfstats", dir);
	write_file(path, "{\"frames_served\": 3,");
	CHECK_EQ_INT(ctl_json_load_in(dir, ".hfstats", "is not ours", &j, msg, sizeof(msg)), -1);
	CHECK(j == NULL);
	snprintf(want, sizeof(want), "%s: bad JSON at line 1, column ", path);
	CHECK(strncmp(msg, want, strlen(want)) == 0);
	write_file(path, stats_doc);
	CHECK_EQ_INT(ctl_json_load_in(dir, ".hfstats", "is not ours", &j, msg, sizeof(msg)), 0);
	CHECK_EQ_INT(json_object_size(j), 8);
	ctl_json_free(&j);
	unlink(path);
	rmdir(dir);
}

/* The "error" of SEGMENT/.hfinfo, or the fallback when there is none to read. */
static void test_info_error(void)
{
	char dir[] = "/tmp/test_json.XXXXXX", path[PATH_MAX], why[256];

	if (!CHECK(mkdtemp(dir) != NULL))
		return;
	ctl_json_info_error(dir, "fallback", why, sizeof(why));
	CHECK_EQ_STR(why, "fallback");
	snprintf(path, sizeof(path), "%s/.hfinfo", dir);
	write_file(path, "{\"state\": \"error\", \"error\": \"frame_00003.png: boom\"}");
	ctl_json_info_error(dir, "fallback", why, sizeof(why));
	CHECK_EQ_STR(why, "frame_00003.png: boom");
	write_file(path, "{\"state\": \"complete\", \"error\": null}");
	ctl_json_info_error(dir, "fallback", why, sizeof(why));
	CHECK_EQ_STR(why, "fallback");
	write_file(path, "{\"error\": \"cut");
	ctl_json_info_error(dir, "fallback", why, sizeof(why));
	CHECK_EQ_STR(why, "fallback");
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	test_malformed();
	test_truncated();
	test_deep();
	test_error_position();
	test_getters();
	test_numbers();
	test_strings();
	test_load();
	test_info_error();
	return hftest_done();
}
