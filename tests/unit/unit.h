/*
 * A tiny helper for tlsshim's C unit tests, header only so that each test
 * is one file.  The CHECK macros count passes and failures and print every
 * failure with its file and line, and with the table row being run (set
 * with unit_row()), since tests are table-driven and a line number alone
 * does not say which row failed.  unit_finish() prints the final
 * "N passed, N failed" line and returns the exit status for main().
 */
#ifndef TLSSHIM_UNIT_H
#define TLSSHIM_UNIT_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int unit_passed;
static int unit_failed;
static char unit_current_row[512];

/* Name the table row that the following checks belong to ("" for none). */
static inline void unit_row(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static inline void
unit_row(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(unit_current_row, sizeof(unit_current_row), fmt, ap);
    va_end(ap);
}

static inline int unit_report(int ok, const char *file, int line,
                              const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static inline int
unit_report(int ok, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    if (ok) {
        unit_passed++;
        return 1;
    }
    unit_failed++;
    fprintf(stderr, "%s:%d: FAIL", file, line);
    if (unit_current_row[0] != '\0')
        fprintf(stderr, " [%s]", unit_current_row);
    fprintf(stderr, ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    return 0;
}

static inline int
unit_check_int(long long got, long long want, const char *expr,
               const char *file, int line)
{
    return unit_report(got == want, file, line, "%s is %lld, want %lld",
                       expr, got, want);
}

static inline int
unit_check_str(const char *got, const char *want, const char *expr,
               const char *file, int line)
{
    int ok = (got == NULL && want == NULL) ||
             (got != NULL && want != NULL && strcmp(got, want) == 0);

    return unit_report(ok, file, line, "%s is %s%s%s, want %s%s%s", expr,
                       got ? "\"" : "", got ? got : "NULL", got ? "\"" : "",
                       want ? "\"" : "", want ? want : "NULL",
                       want ? "\"" : "");
}

static inline int
unit_finish(void)
{
    printf("%d passed, %d failed\n", unit_passed, unit_failed);
    return unit_failed == 0 ? 0 : 1;
}

#define CHECK(cond) unit_report((cond) != 0, __FILE__, __LINE__, "%s", #cond)
#define CHECK_MSG(cond, ...) \
    unit_report((cond) != 0, __FILE__, __LINE__, __VA_ARGS__)
#define CHECK_INT(got, want) \
    unit_check_int((long long)(got), (long long)(want), #got, __FILE__, \
                   __LINE__)
#define CHECK_STR(got, want) \
    unit_check_str((got), (want), #got, __FILE__, __LINE__)

#endif
