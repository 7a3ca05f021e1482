/*
 * Log output.  The target descriptor is opened once with O_CLOEXEC and
 * O_APPEND; each line is formatted into a stack buffer and written with a
 * single write() through the real call table, so logging never re-enters
 * the hooks and never allocates.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "sys.h"
#include "util.h"

static int log_lvl;          /* written at configuration, then read only */
static int log_fd = 2;
static int log_syslog;
/* A log file: its path and identity, to reopen it when the program closed
 * or reused the number (guarded by file_lock). */
static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_path[4096];
static struct util_file log_file = {.fd = -1};

/* Write a line to the log file, reopening it first if its number is no
 * longer the file (one fstat per line, only for file targets). */
static void
file_write(const char *line, size_t len)
{
    pthread_mutex_lock(&file_lock);
    int fd = util_file_fd(&log_file, log_path);
    if (fd >= 0) {
        log_fd = fd;
        (void)tlsshim_sys.write(fd, line, len);
    }
    pthread_mutex_unlock(&file_lock);
}

int
log_configure(int level, const char *target)
{
    log_lvl = level;
    if (target == NULL || *target == '\0' || strcmp(target, "stderr") == 0 ||
        strcmp(target, "syslog") == 0)
        log_path[0] = '\0';
    if (target == NULL || *target == '\0' || strcmp(target, "stderr") == 0) {
        log_fd = 2;
        log_syslog = 0;
        return 0;
    }
    if (strcmp(target, "syslog") == 0) {
        openlog("tlsshim", LOG_PID | LOG_NDELAY, LOG_USER);
        log_syslog = 1;
        return 0;
    }
    if (strlen(target) >= sizeof(log_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    pthread_mutex_lock(&file_lock);
    memcpy(log_path, target, strlen(target) + 1);
    int rv = util_file_open(&log_file, log_path);
    if (rv == 0)
        log_fd = log_file.fd;
    if (rv < 0)
        log_path[0] = '\0';
    pthread_mutex_unlock(&file_lock);
    if (rv < 0)
        return -1;
    log_syslog = 0;
    return 0;
}

int
log_fd_in_use(void)
{
    return log_syslog ? -1 : log_fd;
}

int
log_level(void)
{
    return log_lvl;
}

void
log_set_level(int level)
{
    log_lvl = level;
}

static const char *
severity_name(enum log_severity sev)
{
    switch (sev) {
    case LOG_SEV_ERROR:
        return "error";
    case LOG_SEV_WARNING:
        return "warning";
    case LOG_SEV_INFO:
        return "info";
    default:
        return "debug";
    }
}

void
log_vwrite(enum log_severity sev, int min_level, const char *fmt, va_list ap)
{
    char line[2048];
    int saved_errno = errno;
    int n, m;

    if (min_level > log_lvl)
        return;
    if (log_syslog) {
        char msg[2048];
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        vsnprintf(msg, sizeof(msg), fmt, ap);
        syslog(prio[sev], "%s: %s", severity_name(sev), msg);
        errno = saved_errno;
        return;
    }
    n = snprintf(line, sizeof(line), "tlsshim[%ld]: %s: ", (long)getpid(),
                 severity_name(sev));
    if (n < 0 || (size_t)n >= sizeof(line))
        goto out;
    m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    if (m < 0)
        goto out;
    n += m;
    if ((size_t)n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    if (log_path[0] != '\0')
        file_write(line, (size_t)n);
    else
        (void)tlsshim_sys.write(log_fd, line, (size_t)n);
out:
    errno = saved_errno;
}

void
log_write(enum log_severity sev, int min_level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(sev, min_level, fmt, ap);
    va_end(ap);
}
