/*
 * conf: one table of keys drives the file, the environment and -o options, so
 * the three sources accept exactly the same names and values.
 */
#include "conf/conf.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <iniparser.h>

/* A configuration file bigger than this is a mistake (say, a video), not a config. */
#define CONF_MAX_FILE (1024 * 1024)
/* iniparser 4.1's ASCIILINESZ: longer lines are an error. */
#define INI_MAX_LINE 1024

enum conf_kind {
	KIND_SIZE,    /* uint64_t bytes */
	KIND_BOOL,    /* bool */
	KIND_INT,     /* int in [min, max] */
	KIND_ENUM,    /* an enum stored as int; names[] indexed by value */
	KIND_PATH,    /* char[PATH_MAX], absolute */
	KIND_SECONDS, /* double >= 0 */
	KIND_GROUP,   /* char[HF_GROUP_MAX]: an existing group's name or number, "" for none */
};

struct conf_key {
	const char *section;
	const char *name;
	enum conf_kind kind;
	size_t offset;
	int min, max;
	const char *const *names;
};

/* clang-format off */
static const char *const identity_names[] = {"stat", "content", NULL};
static const char *const png_filter_names[] = {"none", "sub", "up", "avg", "paeth", "all", NULL};
static const char *const png_strategy_names[] = {"default", "filtered", "huffman", "rle", "fixed",
						 NULL};
static const char *const png_deflate_names[] = {"libdeflate", "zlib", "fast", NULL};
static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};
/* clang-format on */

/* KIND_ENUM fields are written through an int *. */
_Static_assert(sizeof(enum hf_identity) == sizeof(int), "enum size");
_Static_assert(sizeof(enum hf_png_filter) == sizeof(int), "enum size");
_Static_assert(sizeof(enum hf_png_strategy) == sizeof(int), "enum size");
_Static_assert(sizeof(enum hf_log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum hf_png_deflate) == sizeof(int), "enum size");

#define FIELD(f) offsetof(struct hf_conf, f)

/* clang-format off */
static const struct conf_key conf_keys[] = {
	/* section, name, kind, field, min, max, names */
	{"store", "max_size", KIND_SIZE, FIELD(max_size), 0, 0, NULL},
	{"store", "min_free", KIND_SIZE, FIELD(min_free), 0, 0, NULL},
	{"store", "identity", KIND_ENUM, FIELD(identity), 0, 0, identity_names},
	{"store", "fsync", KIND_BOOL, FIELD(fsync), 0, 0, NULL},
	{"store", "group", KIND_GROUP, FIELD(store_group), 0, 0, NULL},
	{"decode", "threads", KIND_INT, FIELD(threads), 0, 256, NULL},
	{"decode", "eager", KIND_BOOL, FIELD(eager), 0, 0, NULL},
	{"decode", "png_level", KIND_INT, FIELD(png_level), 0, 9, NULL},
	{"decode", "png_filter", KIND_ENUM, FIELD(png_filter), 0, 0, png_filter_names},
	{"decode", "png_strategy", KIND_ENUM, FIELD(png_strategy), 0, 0, png_strategy_names},
	{"decode", "png_deflate", KIND_ENUM, FIELD(png_deflate), 0, 0, png_deflate_names},
	{"decode", "jpeg_q", KIND_INT, FIELD(jpeg_q), 1, 31, NULL},
	{"decode", "memory", KIND_SIZE, FIELD(memory), 0, 0, NULL},
	{"decode", "max_pixels", KIND_SIZE, FIELD(max_pixels), 0, 0, NULL},
	{"fs", "source_root", KIND_PATH, FIELD(source_root), 0, 0, NULL},
	{"fs", "attr_timeout", KIND_SECONDS, FIELD(attr_timeout), 0, 0, NULL},
	{"log", "level", KIND_ENUM, FIELD(log_level), 0, 0, log_level_names},
};
/* clang-format on */

#define N_KEYS (sizeof(conf_keys) / sizeof(conf_keys[0]))

#define PRINTF_LIKE(fmt_arg, first_arg) __attribute__((format(printf, fmt_arg, first_arg)))

static PRINTF_LIKE(3, 4) void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static PRINTF_LIKE(3, 4) void warnf(conf_warn_fn warn, void *warn_arg, const char *fmt, ...)
{
	char msg[PATH_MAX + 512];
	va_list ap;

	if (!warn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	warn(warn_arg, msg);
}

/* True if the len bytes at s equal word, ignoring case. */
static bool span_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

static bool is_section(const char *s, size_t len)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (span_is(s, len, conf_keys[i].section))
			return true;
	return false;
}

static const struct conf_key *find_key(const char *section, size_t section_len, const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (span_is(section, section_len, conf_keys[i].section) &&
		    strcasecmp(name, conf_keys[i].name) == 0)
			return &conf_keys[i];
	return NULL;
}

static const struct conf_key *find_key_anywhere(const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcasecmp(name, conf_keys[i].name) == 0)
			return &conf_keys[i];
	return NULL;
}

/* ---- values ---- */

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"on", "true", "yes", "1"};
	static const char *const no[] = {"off", "false", "no", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_int(const char *s, int min, int max, int *out)
{
	const char *p = s;
	char *end;
	long v;

	if (*p == '-' || *p == '+')
		p++;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static int parse_enum(const char *s, const char *const *names, int *out)
{
	for (int i = 0; names[i]; i++) {
		if (strcasecmp(s, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Plain decimals only ("86400", "0.5"): strtod would also take "inf", "1e3" and hex. */
static int parse_seconds(const char *s, double *out)
{
	int digits = 0, dots = 0;
	char *end;
	double v;

	for (const char *p = s; *p; p++) {
		if (isdigit((unsigned char)*p))
			digits++;
		else if (*p == '.')
			dots++;
		else
			return -EINVAL;
	}
	if (digits == 0 || dots > 1)
		return -EINVAL;
	v = strtod(s, &end);
	if (*end != '\0' || !isfinite(v) || v < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_path(const char *s, char *out)
{
	size_t len = strlen(s);

	if (s[0] != '/')
		return -EINVAL;
	while (len > 1 && s[len - 1] == '/')
		len--;
	if (len >= PATH_MAX)
		return -ENAMETOOLONG;
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

int conf_parse_size(const char *s, uint64_t *out)
{
	uint64_t whole = 0, frac = 0, scale = 1, frac_bytes = 0, rem, mult;
	int whole_digits = 0, frac_digits = 0, exp = 0;
	const char *p = s;

	if (!s)
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++, whole_digits++) {
		unsigned d = (unsigned)(*p - '0');

		if (whole > (UINT64_MAX - d) / 10)
			return -EINVAL;
		whole = whole * 10 + d;
	}
	if (whole_digits == 0)
		return -EINVAL;
	if (*p == '.') {
		/* Nine decimals keep frac * 1024 below 2^64 in the loop below. */
		for (p++; isdigit((unsigned char)*p); p++, frac_digits++) {
			if (frac_digits == 9)
				return -EINVAL;
			frac = frac * 10 + (unsigned)(*p - '0');
			scale *= 10;
		}
		if (frac_digits == 0)
			return -EINVAL;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	switch (tolower((unsigned char)*p)) {
	case 'k':
		exp = 1;
		break;
	case 'm':
		exp = 2;
		break;
	case 'g':
		exp = 3;
		break;
	case 't':
		exp = 4;
		break;
	}
	if (exp)
		p++;
	if (exp && strcasecmp(p, "ib") == 0)
		p += 2;
	else if (strcasecmp(p, "b") == 0)
		p++;
	if (*p != '\0')
		return -EINVAL;
	/* Bytes are whole: "1.5" alone means nothing, "1.5K" is 1536. */
	if (frac_digits && exp == 0)
		return -EINVAL;

	/* frac_bytes = floor(frac / scale * 1024^exp), exactly, one factor at a time. */
	rem = frac;
	for (int i = 0; i < exp; i++) {
		rem *= 1024;
		frac_bytes = frac_bytes * 1024 + rem / scale;
		rem %= scale;
	}
	mult = (uint64_t)1 << (10 * exp);
	if (whole > (UINT64_MAX - frac_bytes) / mult)
		return -EINVAL;
	*out = whole * mult + frac_bytes;
	return 0;
}

/* "none" or "" clears it; otherwise an existing group by name or number. */
static int parse_group(const char *s, char *out)
{
	if (!*s || strcmp(s, "none") == 0) {
		out[0] = '\0';
		return 0;
	}
	if (strlen(s) >= HF_GROUP_MAX || conf_group_id(s, NULL) < 0)
		return -EINVAL;
	strcpy(out, s);
	return 0;
}

int conf_group_id(const char *group, gid_t *gid)
{
	struct group *gr = getgrnam(group);
	char *end;
	unsigned long v;

	if (!gr) {
		errno = 0;
		v = strtoul(group, &end, 10);
		if (*group < '0' || *group > '9' || *end || errno || v > (gid_t)-2)
			return -ENOENT;
		if (gid) /* a number needs no entry in the group database */
			*gid = (gid_t)v;
		return 0;
	}
	if (gid)
		*gid = gr->gr_gid;
	return 0;
}

/* Writes "one of: a, b, c" for an enum's names. */
static void list_names(const char *const *names, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; names[i] && used < len; i++) {
		int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", names[i]);

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* What a key accepts, for the end of an error sentence. */
static void describe(const struct conf_key *k, char *buf, size_t len)
{
	char names[128];

	switch (k->kind) {
	case KIND_SIZE:
		snprintf(buf, len,
			 "expected a size in bytes such as 1048576, 512M or 1.5G "
			 "(K, M, G, T are powers of 1024)");
		break;
	case KIND_BOOL:
		snprintf(buf, len, "expected on or off (or true/false, yes/no, 1/0)");
		break;
	case KIND_INT:
		snprintf(buf, len, "expected an integer from %d to %d", k->min, k->max);
		break;
	case KIND_ENUM:
		list_names(k->names, names, sizeof(names));
		snprintf(buf, len, "expected one of: %s", names);
		break;
	case KIND_PATH:
		snprintf(buf, len, "expected an absolute path shorter than %d bytes", PATH_MAX);
		break;
	case KIND_SECONDS:
		snprintf(buf, len, "expected a number of seconds >= 0 such as 86400 or 0.5");
		break;
	case KIND_GROUP:
		snprintf(buf, len, "expected the name or number of an existing group, or none");
		break;
	}
}

/*
 * Parses text (surrounding blanks ignored) for key k and stores it into c.
 * Leaves c untouched and writes what the key accepts into why on failure.
 */
static int parse_value(struct hf_conf *c, const struct conf_key *k, const char *text, char *why,
		       size_t whylen)
{
	char buf[PATH_MAX + 1];
	void *field = (char *)c + k->offset;
	size_t len;
	int ret = -EINVAL;

	while (isspace((unsigned char)*text))
		text++;
	len = strlen(text);
	while (len > 0 && isspace((unsigned char)text[len - 1]))
		len--;
	if (len < sizeof(buf)) {
		memcpy(buf, text, len);
		buf[len] = '\0';

		switch (k->kind) {
		case KIND_SIZE:
			ret = conf_parse_size(buf, field);
			break;
		case KIND_BOOL:
			ret = parse_bool(buf, field);
			break;
		case KIND_INT:
			ret = parse_int(buf, k->min, k->max, field);
			break;
		case KIND_ENUM:
			ret = parse_enum(buf, k->names, field);
			break;
		case KIND_PATH:
			ret = parse_path(buf, field);
			break;
		case KIND_SECONDS:
			ret = parse_seconds(buf, field);
			break;
		case KIND_GROUP:
			ret = parse_group(buf, field);
			break;
		}
	}
	if (ret) {
		describe(k, why, whylen);
		return -EINVAL;
	}
	return 0;
}

/* ---- the file ---- */

/*
 * iniparser gives no line numbers, so find them in the text by following the
 * same rules iniparser 4.1 uses: blanks stripped, '#' and ';' start comments,
 * "[name]" opens a section, "key = value" otherwise, and a trailing backslash
 * continues a line. Returns the line of the last definition of section/key
 * (the one iniparser keeps), or of the first "[section]" header when key is
 * NULL; 0 if not found.
 */
static int find_line(const char *text, const char *section, size_t section_len, const char *key)
{
	const char *cur = "";
	size_t cur_len = 0;
	bool continued = false;
	int lineno = 0, found = 0;

	for (const char *p = text; *p;) {
		const char *start = p, *end = strchr(p, '\n');
		bool was_continued = continued;

		if (!end)
			end = p + strlen(p);
		p = *end ? end + 1 : end;
		lineno++;

		while (start < end && isspace((unsigned char)*start))
			start++;
		while (end > start && isspace((unsigned char)end[-1]))
			end--;
		continued = end > start && end[-1] == '\\';
		if (was_continued || start == end || *start == '#' || *start == ';')
			continue;

		if (*start == '[' && end[-1] == ']') {
			const char *name = start + 1, *name_end = memchr(name, ']', end - name);

			while (name < name_end && isspace((unsigned char)*name))
				name++;
			while (name_end > name && isspace((unsigned char)name_end[-1]))
				name_end--;
			cur = name;
			cur_len = (size_t)(name_end - name);
			if (!key && !found && cur_len == section_len &&
			    strncasecmp(cur, section, section_len) == 0)
				found = lineno;
		} else if (key) {
			const char *eq = memchr(start, '=', end - start);
			const char *key_end = eq;

			if (!eq || eq == start)
				continue;
			while (key_end > start && isspace((unsigned char)key_end[-1]))
				key_end--;
			if (cur_len == section_len && strncasecmp(cur, section, section_len) == 0 &&
			    span_is(start, (size_t)(key_end - start), key))
				found = lineno;
		}
	}
	return found;
}

static int read_text(const char *path, char **out, char *err, size_t errlen)
{
	FILE *f;
	char *text;
	size_t n;
	int ret = 0;

	f = fopen(path, "r");
	if (!f) {
		ret = -errno;
		set_err(err, errlen, "%s: cannot open: %s", path, strerror(-ret));
		return ret;
	}
	text = malloc(CONF_MAX_FILE + 1);
	if (!text) {
		ret = -ENOMEM;
		set_err(err, errlen, "%s: out of memory", path);
		goto out_close;
	}
	n = fread(text, 1, CONF_MAX_FILE + 1, f);
	if (ferror(f)) {
		ret = errno ? -errno : -EIO;
		set_err(err, errlen, "%s: cannot read: %s", path, strerror(-ret));
		goto out_free_text;
	}
	if (n > CONF_MAX_FILE) {
		ret = -EFBIG;
		set_err(err, errlen, "%s: larger than %d bytes, not a configuration file", path,
			CONF_MAX_FILE);
		goto out_free_text;
	}
	text[n] = '\0';
	*out = text;
	text = NULL;
out_free_text:
	free(text);
out_close:
	fclose(f);
	return ret;
}

/* iniparser reports failures only through a global printf-like callback; keep the first. */
static char ini_failure[PATH_MAX + 1200];

static PRINTF_LIKE(1, 2) int capture_ini_failure(const char *fmt, ...)
{
	va_list ap;

	if (ini_failure[0] != '\0')
		return 0;
	va_start(ap, fmt);
	vsnprintf(ini_failure, sizeof(ini_failure), fmt, ap);
	va_end(ap);
	return 0;
}

/* The line number in iniparser's "<what> FILE (7)" message, or 0 if it is not that message. */
static int failure_line(const char *what, const char *path)
{
	const char *at = strstr(ini_failure, what);
	size_t path_len = strlen(path);

	if (!at)
		return 0;
	at += strlen(what);
	if (strncmp(at, path, path_len) != 0 || strncmp(at + path_len, " (", 2) != 0)
		return 0;
	return atoi(at + path_len + 2);
}

/* Turns iniparser's "iniparser: syntax error in FILE (7):\n-> text\n" into one sentence. */
static int explain_ini_failure(const char *path, char *err, size_t errlen)
{
	const char *msg = ini_failure, *text;
	int line;

	line = failure_line("input line too long in ", path);
	if (line) {
		set_err(err, errlen, "%s:%d: line too long (iniparser reads at most %d bytes)",
			path, line, INI_MAX_LINE);
		return -EINVAL;
	}
	line = failure_line("syntax error in ", path);
	if (line) {
		text = strstr(msg, "\n-> ");
		text = text ? text + 4 : "";
		set_err(err, errlen,
			"%s:%d: syntax error: expected '[section]', 'key = value' or a comment, "
			"not '%.*s'",
			path, line, (int)strcspn(text, "\n"), text);
		return -EINVAL;
	}
	if (strncmp(msg, "iniparser: ", 11) == 0)
		msg += 11;
	set_err(err, errlen, "%s: %.*s", path, (int)strcspn(msg, "\n"), msg);
	return strstr(msg, "memory") ? -ENOMEM : -EINVAL;
}

static int load_ini(const char *path, dictionary **out, char *err, size_t errlen)
{
	dictionary *ini;

	ini_failure[0] = '\0';
	iniparser_set_error_callback(capture_ini_failure);
	ini = iniparser_load(path);
	iniparser_set_error_callback(NULL);
	if (!ini || ini_failure[0] != '\0') {
		iniparser_freedict(ini);
		if (ini_failure[0] == '\0')
			snprintf(ini_failure, sizeof(ini_failure), "cannot parse");
		return explain_ini_failure(path, err, errlen);
	}
	*out = ini;
	return 0;
}

/* Applies one "section:key" = value entry of the dictionary to c. */
static int apply_entry(struct hf_conf *c, const char *path, const char *text, const char *entry,
		       const char *value, conf_warn_fn warn, void *warn_arg, char *err,
		       size_t errlen)
{
	const char *colon = strchr(entry, ':');
	const struct conf_key *k, *elsewhere;
	const char *name;
	size_t section_len;
	char why[256];
	int line;

	if (!colon)
		return 0;
	name = colon + 1;
	section_len = (size_t)(colon - entry);
	line = find_line(text, entry, section_len, name);
	if (section_len == 0) {
		warnf(warn, warn_arg, "%s:%d: key '%s' outside any section (ignored)", path, line,
		      name);
		return 0;
	}
	if (!is_section(entry, section_len))
		return 0; /* the section header already warned */

	k = find_key(entry, section_len, name);
	if (!k) {
		elsewhere = find_key_anywhere(name);
		if (elsewhere)
			warnf(warn, warn_arg,
			      "%s:%d: unknown key '%s' in [%.*s] (ignored; it belongs in [%s])",
			      path, line, name, (int)section_len, entry, elsewhere->section);
		else
			warnf(warn, warn_arg, "%s:%d: unknown key '%s' in [%.*s] (ignored)", path,
			      line, name, (int)section_len, entry);
		return 0;
	}
	if (parse_value(c, k, value, why, sizeof(why))) {
		set_err(err, errlen, "%s:%d: [%s] %s = %s: %s", path, line, k->section, k->name,
			value, why);
		return -EINVAL;
	}
	return 0;
}

int conf_load_file(struct hf_conf *c, const char *path, conf_warn_fn warn, void *warn_arg,
		   char *err, size_t errlen)
{
	struct hf_conf next = *c;
	dictionary *ini = NULL;
	char *text = NULL;
	int ret;

	ret = read_text(path, &text, err, errlen);
	if (ret)
		return ret;
	ret = load_ini(path, &ini, err, errlen);
	if (ret)
		goto out_free_text;

	/* Entries are kept in file order; a value-less entry is a section header. */
	for (ssize_t i = 0; i < ini->size && ret == 0; i++) {
		const char *entry = ini->key[i];

		if (!entry)
			continue;
		if (ini->val[i]) {
			ret = apply_entry(&next, path, text, entry, ini->val[i], warn, warn_arg,
					  err, errlen);
		} else if (!is_section(entry, strlen(entry))) {
			warnf(warn, warn_arg, "%s:%d: unknown section [%s] (ignored)", path,
			      find_line(text, entry, strlen(entry), NULL), entry);
		}
	}
	if (ret == 0)
		*c = next;

	iniparser_freedict(ini);
out_free_text:
	free(text);
	return ret;
}

/* ---- environment and options ---- */

/* The key whose variable is HFMOUNT_<SECTION>_<KEY>, given the name's len bytes. */
static const struct conf_key *find_env_key(const char *name, size_t len)
{
	char want[64];

	for (size_t i = 0; i < N_KEYS; i++) {
		int n = snprintf(want, sizeof(want), "HFMOUNT_%s_%s", conf_keys[i].section,
				 conf_keys[i].name);

		for (int j = 0; j < n; j++)
			want[j] = (char)toupper((unsigned char)want[j]);
		if ((size_t)n == len && strncmp(name, want, len) == 0)
			return &conf_keys[i];
	}
	return NULL;
}

int conf_apply_env(struct hf_conf *c, char *const envp[], conf_warn_fn warn, void *warn_arg,
		   char *err, size_t errlen)
{
	struct hf_conf next = *c;
	char why[256];

	for (size_t i = 0; envp && envp[i]; i++) {
		const char *var = envp[i], *eq = strchr(var, '=');
		const struct conf_key *k;

		if (strncmp(var, "HFMOUNT_", 8) != 0 || !eq)
			continue;
		k = find_env_key(var, (size_t)(eq - var));
		if (!k) {
			warnf(warn, warn_arg, "unknown environment variable %.*s (ignored)",
			      (int)(eq - var), var);
			continue;
		}
		if (parse_value(&next, k, eq + 1, why, sizeof(why))) {
			set_err(err, errlen, "%s: %s", var, why);
			return -EINVAL;
		}
	}
	*c = next;
	return 0;
}

int conf_set_option(struct hf_conf *c, const char *key, const char *value, const char *origin,
		    char *err, size_t errlen)
{
	const char *dot = strchr(key, '.');
	const struct conf_key *k;
	char why[256];

	if (dot)
		k = find_key(key, (size_t)(dot - key), dot + 1);
	else
		k = find_key_anywhere(key);
	if (!k) {
		set_err(err, errlen, "unknown option '%s'", key);
		return -ENOENT;
	}
	/* A bare boolean ("-o fsync") switches it on, like FUSE's own flags. */
	if (!value && k->kind == KIND_BOOL)
		value = "on";
	if (parse_value(c, k, value ? value : "", why, sizeof(why))) {
		set_err(err, errlen, "%s%s%s%s%s: %s", origin ? origin : "", origin ? " " : "", key,
			value ? "=" : "", value ? value : "", why);
		return -EINVAL;
	}
	return 0;
}

/* ---- the rest ---- */

void conf_defaults(struct hf_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->max_size = (uint64_t)10 << 30;
	c->min_free = (uint64_t)1 << 30;
	c->identity = HF_IDENTITY_STAT;
	c->fsync = false;
	c->threads = 0;
	c->eager = true;
	c->png_level = 1;
	c->png_filter = HF_PNG_FILTER_UP;
	c->png_strategy = HF_PNG_STRATEGY_RLE;
	c->png_deflate = HF_PNG_DEFLATE_FAST;
	c->jpeg_q = 2;
	c->memory = (uint64_t)256 << 20;
	c->max_pixels = (uint64_t)1 << 26; /* 8192x8192: DCI 8K (8192x4320) and square 8K fit */
	strcpy(c->source_root, "/");
	c->attr_timeout = 86400;
	c->log_level = HF_LOG_INFO;
}

int conf_default_path(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	int n;

	/* The XDG spec says to ignore a relative XDG_CONFIG_HOME. */
	if (xdg && xdg[0] == '/') {
		n = snprintf(buf, len, "%s/hfmount/hfmount.ini", xdg);
	} else {
		if (!home || !*home) {
			struct passwd *pw = getpwuid(getuid());

			home = pw ? pw->pw_dir : NULL;
		}
		if (!home)
			return -ENOENT;
		n = snprintf(buf, len, "%s/.config/hfmount/hfmount.ini", home);
	}
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

int conf_load(struct hf_conf *c, const char *path, char *const envp[], conf_warn_fn warn,
	      void *warn_arg, char *err, size_t errlen)
{
	char dflt[PATH_MAX];
	int ret;

	conf_defaults(c);
	if (!path && conf_default_path(dflt, sizeof(dflt)) == 0 && access(dflt, F_OK) == 0)
		path = dflt;
	if (path) {
		ret = conf_load_file(c, path, warn, warn_arg, err, errlen);
		if (ret < 0)
			return ret;
	}
	return conf_apply_env(c, envp, warn, warn_arg, err, errlen);
}

static const char *enum_name(const char *const *names, size_t count, int v)
{
	return v >= 0 && (size_t)v < count - 1 ? names[v] : "?";
}

const char *conf_png_filter_name(enum hf_png_filter f)
{
	return enum_name(png_filter_names, sizeof(png_filter_names) / sizeof(png_filter_names[0]),
			 (int)f);
}

const char *conf_png_strategy_name(enum hf_png_strategy s)
{
	return enum_name(png_strategy_names,
			 sizeof(png_strategy_names) / sizeof(png_strategy_names[0]), (int)s);
}

const char *conf_png_deflate_name(enum hf_png_deflate d)
{
	return enum_name(png_deflate_names, sizeof(png_deflate_names) / sizeof(png_deflate_names[0]),
			 (int)d);
}
