#include "fs/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

static enum hf_log_level log_level = HF_LOG_INFO;
static int log_syslog;

void log_setup(enum hf_log_level level, int use_syslog)
{
	log_level = level;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog("hfmount", LOG_PID, LOG_DAEMON);
}

void hf_log(enum hf_log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char line[1024];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_syslog)
		syslog(prio[level], "%s", line);
	else
		fprintf(stderr, "hfmount: %s: %s\n", names[level], line);
}
