/*
 * fuzz_conf: the configuration parsers on any text.
 *
 * The input is an INI file for conf_load_file. Its lines are also used one by one: as a size
 * for conf_parse_size (checked against an independent exact computation), as "key=value"
 * for conf_set_option, and together as an environment for conf_apply_env. Whatever is
 * accepted leaves every field in range and survives a round trip: the loaded values written
 * back as options, and as an INI file, load to the same configuration. A failure leaves the
 * configuration as it was and says why.
 *
 *   tests/fuzz/corpus/conf: tools/examples/hfmount.ini, small INI files with every key,
 *   bad values, continuations and comments; lines of sizes, options and variables.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/conf.h"
#include "fuzz.h"

#define MAX_LINES 64

static const char *const identity_names[] = {"stat", "content"};
static const char *const log_level_names[] = {"error", "warn", "info", "debug"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_file_init();
	return 0;
}

static void on_warning(void *arg, const char *msg)
{
	FUZZ_CHECK(msg != NULL && msg[0] != '\0');
	(*(int *)arg)++;
}

static void check_conf(const struct hf_conf *c)
{
	size_t root = strnlen(c->source_root, sizeof(c->source_root));

	FUZZ_CHECK(c->identity == HF_IDENTITY_STAT || c->identity == HF_IDENTITY_CONTENT);
	FUZZ_CHECK(c->threads >= 0 && c->threads <= 256);
	FUZZ_CHECK(c->png_level >= 0 && c->png_level <= 9);
	FUZZ_CHECK(c->png_filter >= HF_PNG_FILTER_NONE && c->png_filter <= HF_PNG_FILTER_ALL);
	FUZZ_CHECK(c->png_strategy >= HF_PNG_STRATEGY_DEFAULT &&
		   c->png_strategy <= HF_PNG_STRATEGY_FIXED);
	FUZZ_CHECK(c->png_deflate >= HF_PNG_DEFLATE_LIBDEFLATE &&
		   c->png_deflate <= HF_PNG_DEFLATE_FAST);
	FUZZ_CHECK(c->jpeg_q >= 1 && c->jpeg_q <= 31);
	FUZZ_CHECK(root > 0 && root < sizeof(c->source_root) && c->source_root[0] == '/');
	FUZZ_CHECK(root == 1 || c->source_root[root - 1] != '/');
	FUZZ_CHECK(isfinite(c->attr_timeout) && c->attr_timeout >= 0);
	FUZZ_CHECK(c->log_level >= HF_LOG_ERROR && c->log_level <= HF_LOG_DEBUG);
}

static bool same_conf(const struct hf_conf *a, const struct hf_conf *b)
{
	return a->max_size == b->max_size && a->min_free == b->min_free &&
	       a->identity == b->identity && a->fsync == b->fsync && a->threads == b->threads &&
	       a->eager == b->eager && a->png_level == b->png_level &&
	       a->png_filter == b->png_filter && a->png_strategy == b->png_strategy &&
	       a->png_deflate == b->png_deflate && a->jpeg_q == b->jpeg_q &&
	       strcmp(a->source_root, b->source_root) == 0 && a->attr_timeout == b->attr_timeout &&
	       a->log_level == b->log_level;
}

/* ---- conf_parse_size against exact 128-bit arithmetic ---- */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * digits [ "." 1..9 digits ] blanks [ K|M|G|T [ "iB" | "B" ] | "B" ], case-insensitive,
 * a fraction only with a unit; floor of the exact value, which must fit 64 bits.
 */
static bool ref_parse_size(const char *s, uint64_t *out)
{
	unsigned __int128 whole = 0, frac = 0, scale = 1, mult = 1, v;
	int digits = 0, frac_digits = 0, exp = 0;
	const char *p = s, *units = "kmgt";

	for (; *p >= '0' && *p <= '9'; p++, digits++)
		if (whole <= UINT64_MAX)
			whole = whole * 10 + (unsigned)(*p - '0');
	if (digits == 0)
		return false;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, frac_digits++) {
			frac = frac * 10 + (unsigned)(*p - '0');
			scale *= 10;
		}
		if (frac_digits == 0 || frac_digits > 9)
			return false;
	}
	while (is_blank(*p))
		p++;
	if (*p && strchr(units, *p | 0x20) && (*p | 0x20) >= 'a') {
		exp = (int)(strchr(units, *p | 0x20) - units) + 1;
		p++;
		if (strcasecmp(p, "ib") == 0)
			p += 2;
	}
	if (strcasecmp(p, "b") == 0)
		p++;
	if (*p != '\0' || (frac_digits && !exp) || whole > UINT64_MAX)
		return false;
	for (int i = 0; i < exp; i++)
		mult *= 1024;
	v = whole * mult + frac * mult / scale;
	if (v > UINT64_MAX)
		return false;
	*out = (uint64_t)v;
	return true;
}

static void check_size(const char *s)
{
	uint64_t got = 0, want = 0;
	int ret = conf_parse_size(s, &got);
	bool ok = ref_parse_size(s, &want);

	FUZZ_CHECK(ret == 0 || ret == -EINVAL);
	if (ret == 0 && !ok)
		fprintf(stderr, "conf_parse_size accepts \"%s\" as %" PRIu64 "\n", s, got);
	if (ret != 0 && ok)
		fprintf(stderr, "conf_parse_size refuses \"%s\" (%" PRIu64 ")\n", s, want);
	FUZZ_CHECK((ret == 0) == ok);
	if (ok && got != want)
		fprintf(stderr, "conf_parse_size(\"%s\") = %" PRIu64 ", exactly %" PRIu64 "\n", s,
			got, want);
	FUZZ_CHECK(!ok || got == want);
}

/* ---- writing a configuration back ---- */

/* The shortest plain decimal that reads back as v, or NULL if it is longer than maxlen. */
static const char *seconds_text(double v, char *buf, size_t len, size_t maxlen)
{
	for (int prec = 0; prec <= 1100; prec++) {
		int n = snprintf(buf, len, "%.*f", prec, v);

		if (n < 0 || (size_t)n >= len || (size_t)n > maxlen)
			return NULL;
		if (strtod(buf, NULL) == v)
			return buf;
	}
	return NULL;
}

struct kv {
	const char *section, *key;
	char value[PATH_MAX + 1400];
};

/* Every key with the canonical spelling of its value in c; attr_timeout last. */
static int conf_values(const struct hf_conf *c, struct kv *kv)
{
	int n = 0;

#define KV(s, k, ...)                                                                              \
	do {                                                                                       \
		kv[n].section = s;                                                                 \
		kv[n].key = k;                                                                     \
		snprintf(kv[n].value, sizeof(kv[n].value), __VA_ARGS__);                           \
		n++;                                                                               \
	} while (0)
	KV("store", "max_size", "%" PRIu64, c->max_size);
	KV("store", "min_free", "%" PRIu64, c->min_free);
	KV("store", "identity", "%s", identity_names[c->identity]);
	KV("store", "fsync", "%s", c->fsync ? "on" : "off");
	KV("decode", "threads", "%d", c->threads);
	KV("decode", "eager", "%s", c->eager ? "true" : "false");
	KV("decode", "png_level", "%d", c->png_level);
	KV("decode", "png_filter", "%s", conf_png_filter_name(c->png_filter));
	KV("decode", "png_strategy", "%s", conf_png_strategy_name(c->png_strategy));
	KV("decode", "png_deflate", "%s", conf_png_deflate_name(c->png_deflate));
	KV("decode", "jpeg_q", "%d", c->jpeg_q);
	/* values are trimmed: a root that ends in a blank ("/a\r" from "/a\r/") keeps a '/' */
	KV("fs", "source_root", "%s%s", c->source_root,
	   isspace((unsigned char)c->source_root[strlen(c->source_root) - 1]) ? "/" : "");
	KV("log", "level", "%s", log_level_names[c->log_level]);
	KV("fs", "attr_timeout", "%s", "");
#undef KV
	if (!seconds_text(c->attr_timeout, kv[n - 1].value, sizeof(kv[n - 1].value),
			  sizeof(kv[n - 1].value) - 1))
		abort();
	return n;
}

/* As -o options, "section.key" and bare "key" alike. */
static void check_options_round_trip(const struct hf_conf *c)
{
	static struct kv kv[16];
	struct hf_conf a, b;
	char key[64], err[512];
	int n = conf_values(c, kv);

	conf_defaults(&a);
	conf_defaults(&b);
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%s.%s", kv[i].section, kv[i].key);
		FUZZ_CHECK(conf_set_option(&a, key, kv[i].value, "-o", err, sizeof(err)) == 0);
		FUZZ_CHECK(conf_set_option(&b, kv[i].key, kv[i].value, NULL, err, sizeof(err)) ==
			   0);
	}
	FUZZ_CHECK(same_conf(c, &a));
	FUZZ_CHECK(same_conf(c, &b));
}

/* Values iniparser 4.1 reads back unchanged: no quotes, comments, escapes or control bytes. */
static bool ini_safe(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f || strchr("\"';#\\", *v))
			return false;
	return true;
}

/* As an INI file (lines that iniparser would not read back unchanged are left out). */
static void check_ini_round_trip(const struct hf_conf *c)
{
	static struct kv kv[16];
	struct hf_conf d, expect = *c;
	char *text = NULL, err[PATH_MAX + 512];
	size_t len = 0;
	const char *section = "";
	int n = conf_values(c, kv), warnings = 0, ret;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		abort();
	conf_defaults(&d);
	for (int i = 0; i < n; i++) {
		bool timeout = strcmp(kv[i].key, "attr_timeout") == 0;

		if (timeout &&
		    !seconds_text(c->attr_timeout, kv[i].value, sizeof(kv[i].value), 900))
			kv[i].value[0] = '\0';
		if (!kv[i].value[0] || !ini_safe(kv[i].value) || strlen(kv[i].value) > 900) {
			/* not written: the default stays */
			if (timeout)
				expect.attr_timeout = d.attr_timeout;
			else if (strcmp(kv[i].key, "source_root") == 0)
				strcpy(expect.source_root, d.source_root);
			else
				abort();
			continue;
		}
		if (strcmp(section, kv[i].section) != 0)
			fprintf(f, "[%s]\n", kv[i].section);
		section = kv[i].section;
		fprintf(f, "%s = %s\n", kv[i].key, kv[i].value);
	}
	fclose(f);
	fuzz_file_write((const uint8_t *)text, len);
	ret = conf_load_file(&d, fuzz_path, on_warning, &warnings, err, sizeof(err));
	if (ret != 0)
		fprintf(stderr, "written back:\n%s\nconf_load_file: %s\n", text, err);
	FUZZ_CHECK(ret == 0 && warnings == 0);
	FUZZ_CHECK(same_conf(&expect, &d));
	free(text);
}

/* ---- the harness ---- */

static void check_file(const uint8_t *data, size_t size)
{
	struct hf_conf c, before;
	char err[PATH_MAX + 512] = "";
	int warnings = 0, ret;

	conf_defaults(&c);
	before = c;
	fuzz_file_write(data, size);
	ret = conf_load_file(&c, fuzz_path, on_warning, &warnings, err, sizeof(err));
	FUZZ_CHECK(ret == 0 || ret == -EINVAL || ret == -ENOMEM);
	if (ret < 0) {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(same_conf(&c, &before));
		return;
	}
	check_conf(&c);
	check_options_round_trip(&c);
	check_ini_round_trip(&c);
}

static void check_option(struct hf_conf *c, char *line)
{
	char *eq = strchr(line, '='), err[512] = "";
	struct hf_conf before = *c;
	int ret;

	if (eq)
		*eq = '\0';
	ret = conf_set_option(c, line, eq ? eq + 1 : NULL, "-o", err, sizeof(err));
	if (eq)
		*eq = '=';
	FUZZ_CHECK(ret == 0 || ret == -ENOENT || ret == -EINVAL);
	if (ret < 0) {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(same_conf(c, &before));
	}
	check_conf(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, *lines[MAX_LINES + 1], *p, err[512] = "";
	struct hf_conf c;
	int n = 0, warnings = 0, ret;

	check_file(data, size);

	text = fuzz_strndup(data, size);
	for (p = text; p && n < MAX_LINES;) {
		char *nl = strchr(p, '\n');

		if (nl)
			*nl = '\0';
		lines[n++] = p;
		p = nl ? nl + 1 : NULL;
	}
	lines[n] = NULL;

	conf_defaults(&c);
	for (int i = 0; i < n; i++) {
		check_size(lines[i]);
		check_option(&c, lines[i]);
	}
	conf_defaults(&c);
	ret = conf_apply_env(&c, lines, on_warning, &warnings, err, sizeof(err));
	FUZZ_CHECK(ret == 0 || ret == -EINVAL);
	FUZZ_CHECK(ret == 0 || err[0] != '\0');
	check_conf(&c);
	free(text);
	return 0;
}
