/*
 * ctl_json: jansson with hfctl's flags, error sentences and defaults.
 */
#include "tools/ctl_json.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Any value at the top (the caller checks for an object), numbers as doubles (none too
 * big), \u0000 kept (a C string ends there). */
#define CTL_JSON_FLAGS (JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL)

static int parse_failed(const json_error_t *je, char *err, size_t errlen)
{
	if (json_error_code(je) == json_error_out_of_memory) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	snprintf(err, errlen, "bad JSON at line %d, column %d: %s", je->line, je->column, je->text);
	return -EINVAL;
}

int ctl_json_parse(const char *text, size_t len, json_t **out, char *err, size_t errlen)
{
	json_error_t je;

	*out = json_loadb(text, len, CTL_JSON_FLAGS, &je);
	return *out ? 0 : parse_failed(&je, err, errlen);
}

struct fd_reader {
	int fd;
	int error; /* errno of a failed read, or 0 */
};

/* jansson's input callback: bytes read, 0 at the end, (size_t)-1 on an error. */
static size_t read_fd(void *buf, size_t len, void *data)
{
	struct fd_reader *r = data;
	ssize_t n;

	do
		n = read(r->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		r->error = errno;
		return (size_t)-1;
	}
	return (size_t)n;
}

int ctl_json_load(const char *path, json_t **out, char *err, size_t errlen)
{
	struct fd_reader r = {open(path, O_RDONLY | O_CLOEXEC), 0};
	json_error_t je;

	*out = NULL;
	if (r.fd < 0) {
		r.error = errno;
		snprintf(err, errlen, "%s", strerror(r.error));
		return -r.error;
	}
	*out = json_load_callback(read_fd, &r, CTL_JSON_FLAGS, &je);
	close(r.fd);
	if (*out)
		return 0;
	if (r.error) {
		snprintf(err, errlen, "%s", strerror(r.error));
		return -r.error;
	}
	return parse_failed(&je, err, errlen);
}

int ctl_json_load_in(const char *dir, const char *name, const char *not_ours, json_t **out,
		     char *msg, size_t len)
{
	char path[PATH_MAX], err[256];
	struct stat sb;
	int ret;

	*out = NULL;
	if (stat(dir, &sb) < 0) {
		snprintf(msg, len, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
		snprintf(msg, len, "%s: %s", dir, strerror(ENAMETOOLONG));
		return -1;
	}
	ret = ctl_json_load(path, out, err, sizeof(err));
	if (ret == -ENOENT || ret == -ENOTDIR) {
		snprintf(msg, len, "%s %s", dir, not_ours);
		return -1;
	}
	if (ret < 0) {
		snprintf(msg, len, "%s: %s", path, err);
		return -1;
	}
	return 0;
}

void ctl_json_info_error(const char *seg, const char *fallback, char *buf, size_t len)
{
	json_t *info = NULL;
	char path[PATH_MAX], err[256];

	if (snprintf(path, sizeof(path), "%s/.hfinfo", seg) < (int)sizeof(path))
		ctl_json_load(path, &info, err, sizeof(err));
	snprintf(buf, len, "%s", ctl_json_str(json_object_get(info, "error"), fallback));
	json_decref(info);
}

void ctl_json_free(json_t **j)
{
	if (j) {
		json_decref(*j);
		*j = NULL;
	}
}

const char *ctl_json_str(const json_t *j, const char *dflt)
{
	return json_is_string(j) ? json_string_value(j) : dflt;
}

double ctl_json_num(const json_t *j, double dflt)
{
	return json_is_number(j) ? json_number_value(j) : dflt;
}

bool ctl_json_u64(const json_t *j, uint64_t *v)
{
	double d = json_number_value(j);

	/* 2^64 as a double; anything at or above it does not fit. */
	if (!json_is_number(j) || !(d >= 0) || d >= 18446744073709551616.0 || floor(d) != d)
		return false;
	*v = (uint64_t)d;
	return true;
}
