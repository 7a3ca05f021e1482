/*
 * rcvtimeo: a blocking read bounded by SO_RCVTIMEO, for the end-to-end
 * tests of SPEC section 5 (socket options keep their meaning on a TLS
 * socket).
 *
 *     rcvtimeo [-b] [-w SECONDS] HOST PORT MILLISECONDS
 *
 * Resolves HOST with getaddrinfo(), connects a blocking socket, sets
 * SO_RCVTIMEO to MILLISECONDS (before the connect with -b), and reads from
 * a peer that has nothing to say.  Prints
 *
 *     read: errno=EAGAIN elapsed_ms=N     (or "read: EOF", "read: N bytes")
 *
 * then writes "still alive\n" and reads until the line comes back (the
 * peer is an echo server), printing "echo: still alive".
 * Errors are reported as "rcvtimeo: CALL: strerror errno=NAME".
 * Exit status: 0 the read timed out and the echo came back, 1 the read did
 * not time out, 2 usage, 3 connect error, 4 I/O error, 5 the overall
 * timeout (30 s, or -w SECONDS) expired.
 */
#define _GNU_SOURCE
#define PROG "rcvtimeo"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "progutil.h"

#define EXIT_NO_TIMEOUT 1

static void
set_timeout(int fd, unsigned long ms)
{
    struct timeval tv;

    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
        report("setsockopt SO_RCVTIMEO", errno);
        exit(EXIT_CONNECT);
    }
}

int
main(int argc, char **argv)
{
    struct addrinfo hints, *res;
    unsigned timeout_seconds = 30;
    unsigned long ms;
    int opt, fd, rc, before = 0;
    char buf[256], *end;
    size_t have = 0;
    ssize_t n;
    long long start;

    while ((opt = getopt(argc, argv, "bw:")) != -1) {
        switch (opt) {
        case 'b':
            before = 1;
            break;
        case 'w':
            if (parse_seconds(optarg, &timeout_seconds) < 0)
                goto usage;
            break;
        default:
            goto usage;
        }
    }
    if (argc - optind != 3)
        goto usage;
    errno = 0;
    ms = strtoul(argv[optind + 2], &end, 10);
    if (errno != 0 || *end != '\0' || ms == 0)
        goto usage;

    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm(timeout_seconds);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(argv[optind], argv[optind + 1], &hints, &res)) != 0) {
        fprintf(stderr, "rcvtimeo: getaddrinfo: %s\n", gai_strerror(rc));
        return EXIT_CONNECT;
    }
    if ((fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol)) < 0) {
        report("socket", errno);
        return EXIT_CONNECT;
    }
    if (before)
        set_timeout(fd, ms);
    if (connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        report("connect", errno);
        return EXIT_CONNECT;
    }
    freeaddrinfo(res);
    if (!before)
        set_timeout(fd, ms);

    start = now_ms();
    n = read(fd, buf, sizeof(buf));
    if (n < 0) {
        int err = errno;
        printf("read: errno=%s elapsed_ms=%lld\n", errname(err),
               now_ms() - start);
        if (err != EAGAIN && err != EWOULDBLOCK)
            return EXIT_IO;
    } else {
        if (n == 0)
            printf("read: EOF\n");
        else
            printf("read: %zd bytes\n", n);
        return EXIT_NO_TIMEOUT;
    }

    if (write(fd, "still alive\n", 12) != 12) {
        report("write", errno);
        return EXIT_IO;
    }
    while (have < 12) {
        n = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            report("read", n < 0 ? errno : 0);
            return EXIT_IO;
        }
        have += (size_t)n;
    }
    buf[have] = '\0';
    printf("echo: %s", buf);
    close(fd);
    return 0;

usage:
    fprintf(stderr,
            "usage: rcvtimeo [-b] [-w SECONDS] HOST PORT MILLISECONDS\n");
    return EXIT_USAGE;
}
