/*
 * progutil: the helpers the C test programs share (messages, exit
 * statuses, the overall timeout, whole-buffer I/O, connecting to
 * HOST:PORT).  A program defines _GNU_SOURCE and PROG, its name as its
 * messages start, before anything else:
 *
 *     #define _GNU_SOURCE
 *     #define PROG "blockclient"
 *     ...
 *     #include "progutil.h"
 *
 * Errors are reported on stderr as "PROG: CALL: strerror errno=NAME".
 * Everything is static inline, so a program gets no unused-function
 * warning for the helpers it does not call.
 */
#ifndef TLSSHIM_TESTS_PROGUTIL_H
#define TLSSHIM_TESTS_PROGUTIL_H

#ifndef _GNU_SOURCE
#error "progutil.h needs _GNU_SOURCE (for strerrorname_np) defined first"
#endif
#ifndef PROG
#error "define PROG, the program's name, before including progutil.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Exit statuses, the same in every program. */
enum {
    EXIT_WRONG = 1,   /* the behaviour under test was not what it must be */
    EXIT_USAGE = 2,   /* bad arguments */
    EXIT_CONNECT = 3, /* resolution or connect error */
    EXIT_IO = 4,      /* I/O error */
    EXIT_TIMEOUT = 5, /* the overall timeout (alarm) expired */
};

/* The symbolic name of an errno value ("ECONNRESET"). */
static inline const char *
errname(int err)
{
    const char *name = strerrorname_np(err);

    return name != NULL ? name : "unknown";
}

static inline void
report(const char *call, int err)
{
    fprintf(stderr, PROG ": %s: %s errno=%s\n", call, strerror(err),
            errname(err));
}

/* Report an I/O error and leave, whichever thread we are in. */
static inline void
die_io(const char *call, int err)
{
    report(call, err);
    exit(EXIT_IO);
}

static inline void
wrong(const char *what)
{
    fprintf(stderr, PROG ": wrong: %s\n", what);
    exit(EXIT_WRONG);
}

/* SIGALRM handler for the overall timeout: async-signal-safe calls only. */
static inline void
on_alarm(int sig)
{
    static const char msg[] = PROG ": timeout\n";

    (void)sig;
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* nothing more to do */
    }
    _exit(EXIT_TIMEOUT);
}

/* A positive decimal number no greater than max in *v: 0, or -1 when s
 * is not one (a sign, other characters, 0, or too large). */
static inline int
parse_positive(const char *s, unsigned long long max, unsigned long long *v)
{
    char *end;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    *v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || *v == 0 || *v > max)
        return -1;
    return 0;
}

/* The argument of -w SECONDS (positive, at most UINT_MAX): 0, or -1
 * when s is not one. */
static inline int
parse_seconds(const char *s, unsigned *seconds)
{
    unsigned long long v;

    if (parse_positive(s, UINT_MAX, &v) < 0)
        return -1;
    *seconds = (unsigned)v;
    return 0;
}

/* A numeric argument that must be a positive decimal number: its value,
 * or leave (usage) naming what it was for. */
static inline unsigned long long
positive_arg(const char *s, const char *what)
{
    unsigned long long v;

    if (parse_positive(s, ULLONG_MAX, &v) < 0) {
        fprintf(stderr, PROG ": %s: not a positive number: %s\n", what, s);
        exit(EXIT_USAGE);
    }
    return v;
}

/* Milliseconds on the monotonic clock. */
static inline long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Set or clear O_NONBLOCK; 0, or -1 with errno set. */
static inline int
set_nonblocking_flag(int fd, int on)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 ||
        fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) < 0)
        return -1;
    return 0;
}

/* Set or clear O_NONBLOCK, or leave (I/O error). */
static inline void
set_nonblocking(int fd, int on)
{
    if (set_nonblocking_flag(fd, on) < 0)
        die_io("fcntl", errno);
}

/* Write all of buf to a blocking descriptor; 0, or -1 with errno set. */
static inline int
write_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Write all of buf to a blocking descriptor, or leave (I/O error). */
static inline void
write_all_or_die(int fd, const void *buf, size_t len)
{
    if (write_all(fd, buf, len) < 0)
        die_io("write", errno);
}

/* from to to until EOF; a failed read or write leaves, named by
 * read_call or write_call. */
static inline void
copy_until_eof(int from, int to, const char *read_call,
               const char *write_call)
{
    char buf[16384];

    for (;;) {
        ssize_t n = read(from, buf, sizeof(buf));
        if (n == 0)
            return;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die_io(read_call, errno);
        }
        if (write_all(to, buf, (size_t)n) < 0)
            die_io(write_call, errno);
    }
}

/* Socket to standard output until EOF. */
static inline void
copy_socket_to_stdout(int fd)
{
    copy_until_eof(fd, STDOUT_FILENO, "read", "write stdout");
}

/* Standard input to the socket, then shutdown(SHUT_WR). */
static inline void
copy_stdin_to_socket(int fd)
{
    copy_until_eof(STDIN_FILENO, fd, "read stdin", "write");
    if (shutdown(fd, SHUT_WR) < 0)
        die_io("shutdown", errno);
}

/* The whole file at path (opened close-on-exec) in a new buffer, one spare
 * byte at the end, its size in *len; on an error, leave. */
static inline unsigned char *
read_file(const char *path, size_t *len)
{
    struct stat st;
    unsigned char *buf;
    size_t off = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0)
        die_io(path, errno);
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL)
        die_io("malloc", ENOMEM);
    while (off < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);
        if (n <= 0)
            die_io(path, n < 0 ? errno : EIO);
        off += (size_t)n;
    }
    close(fd);
    *len = off;
    return buf;
}

/* Replace the file at path with buf; on an error, leave. */
static inline void
write_file(const char *path, const unsigned char *buf, size_t len)
{
    FILE *f = fopen(path, "wb");

    if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
        die_io(path, errno);
}

/* How a connection to one address is made on a fresh socket: 0 when it is
 * (or, for a non-blocking one, may become) connected, or an errno value. */
typedef int (*connect_step_fn)(int fd, const struct addrinfo *ai);

/* A blocking connect(). */
static inline int
connect_blocking(int fd, const struct addrinfo *ai)
{
    return connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
}

/* A non-blocking connect(), left in progress (EINPROGRESS); a socket
 * that cannot be made non-blocking is an I/O error. */
static inline int
connect_started(int fd, const struct addrinfo *ai)
{
    set_nonblocking(fd, 1);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)
        return 0;
    return errno;
}

/*
 * Resolve host:port with getaddrinfo() (so the resolver hooks see the
 * name) and try each address in turn, as ordinary clients do, with step.
 * The first socket that connected; or -1 with *gai_rc set to the
 * getaddrinfo() error (0 when the lookup worked) and *err to the errno
 * value of the last attempt.
 */
static inline int
dial_each(const char *host, const char *port, connect_step_fn step,
          int *gai_rc, int *err)
{
    struct addrinfo hints, *res, *ai;
    int fd = -1;

    *err = 0;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((*gai_rc = getaddrinfo(host, port, &hints, &res)) != 0)
        return -1;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            *err = errno;
            continue;
        }
        if ((*err = step(fd, ai)) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* A blocking TCP connection to host:port, the first address that
 * answers; the socket, or -1 (no message) with errno set: the last
 * connect's error, or EHOSTUNREACH when the name gave no address. */
static inline int
dial(const char *host, const char *port)
{
    int gai_rc, err;
    int fd = dial_each(host, port, connect_blocking, &gai_rc, &err);

    if (fd < 0)
        errno = err != 0 ? err : EHOSTUNREACH;
    return fd;
}

/* connect_to() flags */
enum {
    CONNECT_GAI_HOST = 1, /* a getaddrinfo() error message names host */
};

/* A connection to host:port made with step (connect_blocking, when NULL);
 * on a resolution or connect error, report it and leave (EXIT_CONNECT). */
static inline int
connect_to(const char *host, const char *port, unsigned flags,
           connect_step_fn step)
{
    int gai_rc, err, fd;

    fd = dial_each(host, port, step != NULL ? step : connect_blocking,
                   &gai_rc, &err);
    if (fd >= 0)
        return fd;
    if (gai_rc != 0 && (flags & CONNECT_GAI_HOST))
        fprintf(stderr, PROG ": getaddrinfo: %s: %s\n", host,
                gai_strerror(gai_rc));
    else if (gai_rc != 0)
        fprintf(stderr, PROG ": getaddrinfo: %s\n", gai_strerror(gai_rc));
    else
        report("connect", err);
    exit(EXIT_CONNECT);
}

#endif
