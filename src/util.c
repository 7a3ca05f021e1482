/*
 * Small helpers: bounded string copy, monotonic time, strict integer
 * parsing and address formatting.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define UTIL_HIGH_FD 600

size_t
util_strlcpy(char *dst, const char *src, size_t dstlen)
{
    size_t n = strlen(src);

    if (dstlen > 0) {
        size_t c = n < dstlen - 1 ? n : dstlen - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}

int64_t
util_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
util_parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

const char *
util_ip_str(const struct sockaddr *sa, char *buf, size_t len)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &sin->sin_addr, buf, len) != NULL)
            return buf;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        /* an IPv4-mapped address is the IPv4 one (SPEC section 3) */
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
            inet_ntop(AF_INET, sin6->sin6_addr.s6_addr + 12, buf, len) != NULL)
            return buf;
        if (inet_ntop(AF_INET6, &sin6->sin6_addr, buf, len) != NULL)
            return buf;
    }
    util_strlcpy(buf, "?", len);
    return buf;
}

unsigned
util_addr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

const char *
util_addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];

    util_ip_str(sa, ip, sizeof(ip));
    if (sa->sa_family == AF_INET6 && strchr(ip, ':') != NULL)
        snprintf(buf, len, "[%s]:%u", ip, util_addr_port(sa));
    else
        snprintf(buf, len, "%s:%u", ip, util_addr_port(sa));
    return buf;
}

int
util_high_fd(int fd)
{
    int high = fcntl(fd, F_DUPFD_CLOEXEC, UTIL_HIGH_FD);

    if (high < 0)
        return fd;     /* a low limit: keep the number it has */
    (void)close(fd);
    return high;
}

int
util_file_open(struct util_file *f, const char *path)
{
    struct stat st;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

    f->fd = -1;
    if (fd < 0)
        return -1;
    fd = util_high_fd(fd);
    if (fstat(fd, &st) < 0) {
        (void)close(fd);
        return -1;
    }
    f->fd = fd;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    return 0;
}

int
util_file_fd(struct util_file *f, const char *path)
{
    struct stat st;

    if (f->fd < 0 || fstat(f->fd, &st) < 0 || st.st_dev != f->dev ||
        st.st_ino != f->ino)
        (void)util_file_open(f, path);
    return f->fd;
}
