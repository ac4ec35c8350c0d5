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

void hf_log(enum hf_log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	emit(level, line);
}
