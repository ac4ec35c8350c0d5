/*
 * log: one line per event, to stderr in the foreground or syslog once daemonized.
 * Thread-safe.
 */
#ifndef HF_LOG_H
#define HF_LOG_H

#include "conf/conf.h"

void log_setup(enum hf_log_level level, int use_syslog);
void hf_log(enum hf_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
