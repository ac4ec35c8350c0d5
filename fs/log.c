#include "fs/log.h"

#include <fuse_log.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

static enum hf_log_level log_level = HF_LOG_INFO;
static int log_syslog;

static void emit(enum hf_log_level level, const char *line)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

	if (log_syslog)
		syslog(prio[level], "%s", line);
	else
		fprintf(stderr, "hfmount: %s: %s\n", names[level], line);
}

static enum hf_log_level from_fuse_level(enum fuse_log_level fl)
{
	if (fl <= FUSE_LOG_ERR)
		return HF_LOG_ERROR;
	if (fl == FUSE_LOG_WARNING)
		return HF_LOG_WARN;
	return fl == FUSE_LOG_DEBUG ? HF_LOG_DEBUG : HF_LOG_INFO;
}

/* Once daemonized, stderr is /dev/null: libfuse's own messages go to syslog with ours. */
static void fuse_to_syslog(enum fuse_log_level fl, const char *fmt, va_list ap)
{
	enum hf_log_level level = from_fuse_level(fl);
	char line[1024];
	size_t len;

	if (level > log_level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	len = strlen(line);
	while (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	if (len > 0)
		emit(level, line);
}

void log_setup(enum hf_log_level level, int use_syslog)
{
	log_level = level;
	log_syslog = use_syslog;
	if (use_syslog) {
		openlog("hfmount", LOG_PID, LOG_DAEMON);
		fuse_set_log_func(fuse_to_syslog);
	}
}

/* Bytes of the well-formed UTF-8 sequence at s (1-4), or 0 if none starts there. */
static size_t utf8_seq(const unsigned char *s)
{
	size_t n;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/*
 * One line whatever the names in it hold: control bytes, backslashes and bytes that are
 * not UTF-8 are written as \xNN (a newline in a file name cannot forge a log line).
 */
static void escape_line(const char *in, char *out, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0;

	while (*s && o + 5 < len) {
		size_t n = utf8_seq(s);
		if (n == 1 && *s >= 0x20 && *s != 0x7f && *s != '\\') {
			out[o++] = (char)*s++;
		} else if (n > 1) {
			memcpy(out + o, s, n);
			o += n;
			s += n;
		} else {
			o += (size_t)snprintf(out + o, len - o, "\\x%02x", *s++);
		}
	}
	out[o] = 0;
}

void hf_log(enum hf_log_level level, const char *fmt, ...)
{
	char line[1024], safe[4 * sizeof(line)];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	escape_line(line, safe, sizeof(safe));
	emit(level, safe);
}
