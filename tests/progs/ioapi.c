/*
 * ioapi: every read and write entry point of libc over one connection to
 * an echo server, for the end-to-end tests of SPEC section 5 (a TLS socket
 * behaves like the TCP socket the program thinks it has).
 *
 *     ioapi [-w SECONDS] HOST PORT
 *
 * Resolves HOST with getaddrinfo(), connects a blocking socket, then runs
 * these steps in order, each sending a pattern of its own and checking
 * every byte that comes back:
 *
 *   write/read, send/recv, sendto/recvfrom, writev/readv, sendmsg/recvmsg
 *   peek      recv(MSG_PEEK) returns bytes that a following read() returns
 *             again
 *   waitall   recv(MSG_WAITALL) returns the exact size asked for, spanning
 *             several TLS records
 *   fionread  ioctl(FIONREAD) is > 0 once the echo is readable
 *   fcntl     F_GETFL shows no O_NONBLOCK on the blocking socket; the line
 *             "real O_NONBLOCK: yes|no" tells what /proc/self/fdinfo says
 *             about the descriptor behind it
 *   nonblock  after F_SETFL O_NONBLOCK, F_GETFL shows it and recv() on an
 *             idle socket fails with EAGAIN; after clearing it, a blocking
 *             echo works again
 *   dup       dup(), close() of the original, and the echo continues on
 *             the duplicate
 *
 * and closes the duplicate.  Prints "ok STEP" per step; on the first
 * mismatch prints "FAIL STEP: why" and exits 1; an I/O error prints
 * "FAIL STEP: CALL errno=NAME" and exits 4.  Built with -O2
 * -D_FORTIFY_SOURCE=2 and run-time lengths, so read(), recv() and
 * recvfrom() are called as __read_chk, __recv_chk and __recvfrom_chk.
 * Exit status: 0 success, 1 mismatch, 2 usage, 3 connect error, 4 I/O
 * error, 5 the overall timeout (30 s, or -w SECONDS) expired.
 */
#define _GNU_SOURCE
#define PROG "ioapi"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "progutil.h"

#define EXIT_MISMATCH 1

#define BIG 65536

enum api { API_READ, API_RECV, API_RECVFROM, API_READV, API_RECVMSG };

static const char *step = "connect";

/* Run-time sizes: with these the fortified wrappers cannot prove a call
 * safe at compile time, so the _chk variants are what gets called. */
static volatile size_t chunk_limit = 16384;
static volatile size_t peek_limit = 1000;

static unsigned char sent[BIG], got[BIG];

/* An I/O error: a FAIL line on stdout naming the step, and exit. */
static void
fail_io(const char *call, int err)
{
    printf("FAIL %s: %s errno=%s\n", step, call, errname(err));
    exit(EXIT_IO);
}

static void
mismatch(const char *why)
{
    printf("FAIL %s: %s\n", step, why);
    exit(EXIT_MISMATCH);
}

/* A pattern of its own for each step. */
static void
fill(unsigned char *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
}

/* Send all of buf with write() (the transport of the read-side steps). */
static void
send_all(int fd, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail_io("write", errno);
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Send all of buf with the given API. */
static void
send_with(int fd, enum api api, const unsigned char *buf, size_t len)
{
    size_t off = 0;

    while (off < len) {
        size_t left = len - off;
        ssize_t n;

        switch (api) {
        case API_READ:
            n = write(fd, buf + off, left);
            break;
        case API_RECV:
            n = send(fd, buf + off, left, 0);
            break;
        case API_RECVFROM:
            n = sendto(fd, buf + off, left, 0, NULL, 0);
            break;
        case API_READV:
        case API_RECVMSG: {
            /* three pieces of unequal size */
            struct iovec iov[3];
            size_t a = left / 7, b = left / 3;
            iov[0].iov_base = (void *)(buf + off);
            iov[0].iov_len = a;
            iov[1].iov_base = (void *)(buf + off + a);
            iov[1].iov_len = b;
            iov[2].iov_base = (void *)(buf + off + a + b);
            iov[2].iov_len = left - a - b;
            if (api == API_READV) {
                n = writev(fd, iov, 3);
            } else {
                struct msghdr m;
                memset(&m, 0, sizeof(m));
                m.msg_iov = iov;
                m.msg_iovlen = 3;
                n = sendmsg(fd, &m, 0);
            }
            break;
        }
        default:
            abort();
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail_io("send", errno);
        }
        off += (size_t)n;
    }
}

/* One read of at most want bytes into buf with the given API. */
static ssize_t
read_once(int fd, enum api api, unsigned char *buf, size_t want)
{
    unsigned char tmp[16384];
    size_t lim = want < chunk_limit ? want : chunk_limit;
    ssize_t n;

    /* chunk_limit is sizeof(tmp), but the compiler cannot know it */
    switch (api) {
    case API_READ:
        n = read(fd, tmp, lim);
        break;
    case API_RECV:
        n = recv(fd, tmp, lim, 0);
        break;
    case API_RECVFROM: {
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof(from);
        n = recvfrom(fd, tmp, lim, 0, (struct sockaddr *)&from, &fromlen);
        if (n >= 0 && fromlen != 0)
            mismatch("recvfrom on a connected stream reported an address");
        break;
    }
    case API_READV:
    case API_RECVMSG: {
        /* scattered over three pieces of unequal size */
        struct iovec iov[3];
        size_t a = lim > 7 ? 7 : lim, b = (lim - a) / 2;
        iov[0].iov_base = tmp;
        iov[0].iov_len = a;
        iov[1].iov_base = tmp + a;
        iov[1].iov_len = b;
        iov[2].iov_base = tmp + a + b;
        iov[2].iov_len = lim - a - b;
        if (api == API_READV) {
            n = readv(fd, iov, 3);
        } else {
            struct msghdr m;
            memset(&m, 0, sizeof(m));
            m.msg_iov = iov;
            m.msg_iovlen = 3;
            n = recvmsg(fd, &m, 0);
        }
        break;
    }
    default:
        abort();
    }
    if (n > 0)
        memcpy(buf, tmp, (size_t)n);
    return n;
}

/* Read exactly len bytes with the given API; EOF is a mismatch. */
static void
recv_with(int fd, enum api api, unsigned char *buf, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n = read_once(fd, api, buf + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail_io("receive", errno);
        }
        if (n == 0)
            mismatch("early EOF");
        off += (size_t)n;
    }
}

static void
check(size_t len)
{
    if (memcmp(sent, got, len) != 0)
        mismatch("echoed bytes differ");
}

/* Echo len bytes of a fresh pattern through the given API pair. */
static void
echo_with(int fd, enum api api, size_t len, uint32_t seed)
{
    fill(sent, len, seed);
    memset(got, 0, len);
    send_with(fd, api, sent, len);
    recv_with(fd, api, got, len);
    check(len);
}

static void
wait_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int rc;

    while ((rc = poll(&p, 1, -1)) < 0 && errno == EINTR)
        ;
    if (rc < 0)
        fail_io("poll", errno);
}

static void
step_peek(int fd)
{
    unsigned char peeked[1000];
    size_t lim = peek_limit;
    ssize_t k;

    fill(sent, 1000, 6);
    send_all(fd, sent, 1000);
    do
        k = recv(fd, peeked, lim, MSG_PEEK);
    while (k < 0 && errno == EINTR);
    if (k < 0)
        fail_io("recv MSG_PEEK", errno);
    if (k == 0)
        mismatch("MSG_PEEK returned EOF");
    if (memcmp(peeked, sent, (size_t)k) != 0)
        mismatch("peeked bytes differ from the bytes sent");
    /* the same bytes again, now consumed */
    recv_with(fd, API_READ, got, (size_t)k);
    if (memcmp(got, peeked, (size_t)k) != 0)
        mismatch("read after MSG_PEEK returned other bytes");
    recv_with(fd, API_READ, got + k, 1000 - (size_t)k);
    check(1000);
}

static void
step_waitall(int fd)
{
    size_t len = 50000;
    ssize_t n;

    fill(sent, len, 7);
    memset(got, 0, len);
    send_all(fd, sent, len);
    do
        n = recv(fd, got, len, MSG_WAITALL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        fail_io("recv MSG_WAITALL", errno);
    if ((size_t)n != len) {
        printf("FAIL %s: MSG_WAITALL returned %zd of %zu bytes\n", step, n,
               len);
        exit(EXIT_MISMATCH);
    }
    check(len);
}

static void
step_fionread(int fd)
{
    int avail = -1;

    fill(sent, 10, 8);
    send_all(fd, sent, 10);
    wait_readable(fd);
    if (ioctl(fd, FIONREAD, &avail) < 0)
        fail_io("ioctl FIONREAD", errno);
    printf("fionread: %d\n", avail);
    if (avail <= 0 || avail > 10)
        mismatch("FIONREAD does not count the buffered bytes");
    recv_with(fd, API_READ, got, 10);
    check(10);
}

/* Does the kernel's descriptor have O_NONBLOCK?  /proc/self/fdinfo is
 * read with the real calls, since it is a file. */
static int
real_nonblocking(int fd)
{
    char path[64], buf[512], *p;
    unsigned long flags;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if ((p = strstr(buf, "flags:")) == NULL)
        return -1;
    flags = strtoul(p + 6, NULL, 8);
    return (flags & O_NONBLOCK) != 0;
}

static void
step_fcntl(int fd)
{
    int fl = fcntl(fd, F_GETFL), real;

    if (fl < 0)
        fail_io("fcntl F_GETFL", errno);
    if (fl & O_NONBLOCK)
        mismatch("F_GETFL shows O_NONBLOCK on a blocking socket");
    real = real_nonblocking(fd);
    printf("real O_NONBLOCK: %s\n", real < 0 ? "unknown" : real ? "yes" : "no");
}

static void
step_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    ssize_t n;

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        fail_io("fcntl F_SETFL", errno);
    if (!(fcntl(fd, F_GETFL) & O_NONBLOCK))
        mismatch("F_GETFL does not show the O_NONBLOCK just set");
    n = recv(fd, got, chunk_limit, 0);
    if (n >= 0)
        mismatch("recv on an idle non-blocking socket returned data");
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        fail_io("recv on an idle non-blocking socket", errno);
    if (fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        fail_io("fcntl F_SETFL", errno);
    if (fcntl(fd, F_GETFL) & O_NONBLOCK)
        mismatch("F_GETFL still shows O_NONBLOCK after clearing it");
    echo_with(fd, API_READ, 2000, 9);
}

/* The connection, or leave with a FAIL line on stdout. */
static int
connect_or_fail(const char *host, const char *port)
{
    int gai_rc, err, fd;

    fd = dial_each(host, port, connect_blocking, &gai_rc, &err);
    if (fd >= 0)
        return fd;
    if (gai_rc != 0)
        printf("FAIL connect: getaddrinfo %s: %s\n", host,
               gai_strerror(gai_rc));
    else
        printf("FAIL connect: connect errno=%s\n", errname(err));
    exit(EXIT_CONNECT);
}

int
main(int argc, char **argv)
{
    int opt, fd, nfd;
    unsigned timeout_seconds = 30;

    while ((opt = getopt(argc, argv, "w:")) != -1) {
        switch (opt) {
        case 'w':
            if (parse_seconds(optarg, &timeout_seconds) < 0)
                goto usage;
            break;
        default:
            goto usage;
        }
    }
    if (argc - optind != 2)
        goto usage;

    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm(timeout_seconds);

    fd = connect_or_fail(argv[optind], argv[optind + 1]);

    step = "write/read";
    echo_with(fd, API_READ, 3000, 1);
    printf("ok %s\n", step);
    step = "send/recv";
    echo_with(fd, API_RECV, 20000, 2);
    printf("ok %s\n", step);
    step = "sendto/recvfrom";
    echo_with(fd, API_RECVFROM, 20000, 3);
    printf("ok %s\n", step);
    step = "writev/readv";
    echo_with(fd, API_READV, 25100, 4);
    printf("ok %s\n", step);
    step = "sendmsg/recvmsg";
    echo_with(fd, API_RECVMSG, 25100, 5);
    printf("ok %s\n", step);
    step = "peek";
    step_peek(fd);
    printf("ok %s\n", step);
    step = "waitall";
    step_waitall(fd);
    printf("ok %s\n", step);
    step = "fionread";
    step_fionread(fd);
    printf("ok %s\n", step);
    step = "fcntl";
    step_fcntl(fd);
    printf("ok %s\n", step);
    step = "nonblock";
    step_nonblock(fd);
    printf("ok %s\n", step);

    step = "dup";
    if ((nfd = dup(fd)) < 0)
        fail_io("dup", errno);
    if (close(fd) < 0)
        fail_io("close", errno);
    echo_with(nfd, API_READ, 30000, 10);
    printf("ok %s\n", step);

    step = "close";
    if (close(nfd) < 0)
        fail_io("close", errno);
    return 0;

usage:
    fprintf(stderr, "usage: ioapi [-w SECONDS] HOST PORT\n");
    return EXIT_USAGE;
}
