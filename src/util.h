/*
 * Small helpers shared by every module: attributes, bounded string copies
 * and monotonic time.  No allocation and no locks, so hooks may use them in
 * signal handlers.
 */
#ifndef TLSSHIM_UTIL_H
#define TLSSHIM_UTIL_H

#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

#define TLSSHIM_WARN_UNUSED __attribute__((warn_unused_result))
#define TLSSHIM_NELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define TLSSHIM_EXPORT __attribute__((visibility("default")))

/* Copy src into dst of size dstlen, always NUL-terminated; returns strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t dstlen);
/* Milliseconds of CLOCK_MONOTONIC. */
int64_t util_now_ms(void);
/* Parse a decimal integer in [min,max]; 0 on success, -1 on any junk. */
int util_parse_int(const char *s, long min, long max, long *out)
    TLSSHIM_WARN_UNUSED;
/* Format a sockaddr as "IP:PORT" ("[IPv6]:PORT"); returns buf. */
struct sockaddr;
const char *util_addr_str(const struct sockaddr *sa, char *buf, size_t len);
/* Format only the IP of a sockaddr. */
const char *util_ip_str(const struct sockaddr *sa, char *buf, size_t len);
/* Port of an inet sockaddr in host order, 0 for others. */
unsigned util_addr_port(const struct sockaddr *sa);

/* Move fd (tlsshim's own: a log, the report) to a number programs rarely
 * pick (shells use 3-9, 10 and up, 255), keeping close-on-exec; returns
 * the fd to use. */
int util_high_fd(int fd);

/* A file tlsshim appends to (a log, the report) inside a program that may
 * close or reuse any descriptor number. */
struct util_file {
    int fd;          /* -1 when not open */
    dev_t dev;
    ino_t ino;
};
/* Open path for appending (0600, close-on-exec, at a high number); 0, or
 * -1 with f->fd -1. */
int util_file_open(struct util_file *f, const char *path);
/* f's descriptor, reopened first when the program closed the number or
 * put something else on it (which is then not ours to close); -1 when it
 * cannot be reopened. */
int util_file_fd(struct util_file *f, const char *path);

#endif
