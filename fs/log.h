/*
 * log: one line per event, to stderr in the foreground ("hfmount: LEVEL: text") or to
 * syslog (ident hfmount, facility daemon, with the pid) once daemonized. Thread-safe.
 */
#ifndef HF_LOG_H
#define HF_LOG_H

#include "conf/conf.h"

/*
 * Sets the level below which lines are dropped and where they go. With use_syslog,
 * libfuse's own messages are sent to syslog too (stderr is /dev/null once daemonized).
 * Call once, before any thread starts.
 */
void log_setup(enum hf_log_level level, int use_syslog);

/* One line (no trailing newline; at most 1023 bytes), if level is at or above the set one. */
void hf_log(enum hf_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
