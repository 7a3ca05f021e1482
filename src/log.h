/*
 * Log lines of SPEC section 7: "tlsshim[PID]: LEVEL: text", formatted on
 * the stack and written with one write(2) so that lines of concurrent
 * processes never interleave.  Levels follow TLSSHIM_DEBUG: 0 errors (and
 * warnings), 1 one line per connection, 2 call flow, 3 data sizes.
 */
#ifndef TLSSHIM_LOG_H
#define TLSSHIM_LOG_H

#include <stdarg.h>

enum log_severity {
    LOG_SEV_ERROR = 0,
    LOG_SEV_WARNING,
    LOG_SEV_INFO,
    LOG_SEV_DEBUG,
};

/* target: NULL or "stderr", "syslog", or a file path (O_APPEND). */
int log_configure(int level, const char *target);
int log_level(void);
/* The descriptor log lines go to (2 for stderr), -1 for syslog. */
int log_fd_in_use(void);
void log_set_level(int level);

/* Write a line at the given severity if the configured level allows it:
 * errors and warnings always, info at level >= min_level. */
void log_write(enum log_severity sev, int min_level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vwrite(enum log_severity sev, int min_level, const char *fmt,
                va_list ap);

#define log_error(...) log_write(LOG_SEV_ERROR, 0, __VA_ARGS__)
#define log_warn(...) log_write(LOG_SEV_WARNING, 0, __VA_ARGS__)
#define log_info(...) log_write(LOG_SEV_INFO, 1, __VA_ARGS__)
#define log_flow(...) log_write(LOG_SEV_DEBUG, 2, __VA_ARGS__)
#define log_data(...) log_write(LOG_SEV_DEBUG, 3, __VA_ARGS__)

#endif
