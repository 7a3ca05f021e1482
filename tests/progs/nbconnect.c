/*
 * nbconnect: one non-blocking connect, every step reported, for the
 * end-to-end tests of SPEC section 5 (how a failed non-blocking TLS connect
 * shows itself).
 *
 *     nbconnect [-e | -s] [-w SECONDS] HOST PORT
 *
 * Resolves HOST with getaddrinfo() and connects a non-blocking socket to
 * its first address, then waits (without a timeout: alarm() bounds the
 * run) until the socket is writable with poll() (default), select() (-s)
 * or level-triggered epoll (-e), and reads SO_ERROR twice.  When the
 * connect failed, it then tries one read() and one write(); when it
 * succeeded, it writes a line, reads until the socket is readable, and
 * reads what arrived.  One line per step on standard output:
 *
 *     connect: errno=EINPROGRESS     (or "connect: 0")
 *     ready: OUT ERR HUP             (what the wait reported: IN, OUT,
 *                                     ERR, HUP; select knows IN and OUT)
 *     wait_ms: N                     (how long the wait took)
 *     so_error: ECONNREFUSED         (or 0)
 *     so_error again: 0
 *     read: errno=ECONNRESET         (after a failure)
 *     write: errno=ECONNRESET
 *     echo: TEXT                     (after a success)
 *
 * Exit status: 0 connected, 3 the connect failed, 2 usage, 5 timeout.
 */
#define _GNU_SOURCE
#define PROG "nbconnect"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "progutil.h"

enum wait_api { WAIT_POLL, WAIT_SELECT, WAIT_EPOLL };

static enum wait_api wait_api = WAIT_POLL;

/* Wait until fd reports one of events; print what was reported. */
static void
wait_for(int fd, int want_in, int want_out)
{
    int in = 0, out = 0, err = 0, hup = 0, rc;
    long long start = now_ms();

    switch (wait_api) {
    case WAIT_POLL: {
        struct pollfd p = {.fd = fd};
        p.events = (short)((want_in ? POLLIN : 0) | (want_out ? POLLOUT : 0));
        while ((rc = poll(&p, 1, -1)) < 0 && errno == EINTR)
            ;
        if (rc < 0) {
            printf("poll: errno=%s\n", errname(errno));
            exit(EXIT_CONNECT);
        }
        in = (p.revents & POLLIN) != 0;
        out = (p.revents & POLLOUT) != 0;
        err = (p.revents & POLLERR) != 0;
        hup = (p.revents & POLLHUP) != 0;
        break;
    }
    case WAIT_SELECT: {
        fd_set rfds, wfds;
        if (fd >= FD_SETSIZE)
            exit(EXIT_USAGE);
        do {
            FD_ZERO(&rfds);
            FD_ZERO(&wfds);
            if (want_in)
                FD_SET(fd, &rfds);
            if (want_out)
                FD_SET(fd, &wfds);
        } while ((rc = select(fd + 1, &rfds, &wfds, NULL, NULL)) < 0 &&
                 errno == EINTR);
        if (rc < 0) {
            printf("select: errno=%s\n", errname(errno));
            exit(EXIT_CONNECT);
        }
        in = FD_ISSET(fd, &rfds);
        out = FD_ISSET(fd, &wfds);
        break;
    }
    case WAIT_EPOLL: {
        struct epoll_event ev = {0}, got = {0};
        int ep = epoll_create1(EPOLL_CLOEXEC);
        ev.events = (want_in ? EPOLLIN : 0u) | (want_out ? EPOLLOUT : 0u);
        ev.data.fd = fd;
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            printf("epoll: errno=%s\n", errname(errno));
            exit(EXIT_CONNECT);
        }
        while ((rc = epoll_wait(ep, &got, 1, -1)) < 0 && errno == EINTR)
            ;
        if (rc < 0) {
            printf("epoll_wait: errno=%s\n", errname(errno));
            exit(EXIT_CONNECT);
        }
        in = (got.events & EPOLLIN) != 0;
        out = (got.events & EPOLLOUT) != 0;
        err = (got.events & EPOLLERR) != 0;
        hup = (got.events & EPOLLHUP) != 0;
        close(ep);
        break;
    }
    }
    printf("ready:%s%s%s%s\n", in ? " IN" : "", out ? " OUT" : "",
           err ? " ERR" : "", hup ? " HUP" : "");
    printf("wait_ms: %lld\n", now_ms() - start);
}

static int
so_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

int
main(int argc, char **argv)
{
    struct addrinfo hints, *res;
    unsigned timeout_seconds = 30;
    char buf[256];
    int opt, fd, rc, err;
    ssize_t n;

    while ((opt = getopt(argc, argv, "esw:")) != -1) {
        switch (opt) {
        case 'e':
            wait_api = WAIT_EPOLL;
            break;
        case 's':
            wait_api = WAIT_SELECT;
            break;
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

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(argv[optind], argv[optind + 1], &hints, &res)) != 0) {
        fprintf(stderr, "nbconnect: getaddrinfo: %s\n", gai_strerror(rc));
        return EXIT_USAGE;
    }
    fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    if (fd < 0 || set_nonblocking_flag(fd, 1) < 0) {
        printf("socket: errno=%s\n", errname(errno));
        return EXIT_CONNECT;
    }
    if (connect(fd, res->ai_addr, res->ai_addrlen) == 0)
        printf("connect: 0\n");
    else
        printf("connect: errno=%s\n", errname(errno));
    freeaddrinfo(res);

    wait_for(fd, 0, 1);
    err = so_error(fd);
    printf("so_error: %s\n", err ? errname(err) : "0");
    rc = so_error(fd);
    printf("so_error again: %s\n", rc ? errname(rc) : "0");

    if (err != 0) {
        n = read(fd, buf, sizeof(buf));
        printf("read: %s%s\n", n < 0 ? "errno=" : "",
               n < 0 ? errname(errno) : (n == 0 ? "EOF" : "data"));
        n = write(fd, "x", 1);
        printf("write: %s%s\n", n < 0 ? "errno=" : "",
               n < 0 ? errname(errno) : "written");
        return EXIT_CONNECT;
    }
    if ((n = write(fd, "nbconnect\n", 10)) != 10) {
        printf("write: errno=%s\n", errname(errno));
        return EXIT_CONNECT;
    }
    wait_for(fd, 1, 0);
    n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0) {
        printf("read: errno=%s\n", errname(errno));
        return EXIT_CONNECT;
    }
    buf[n] = '\0';
    printf("echo: %s", buf);
    close(fd);
    return 0;

usage:
    fprintf(stderr, "usage: nbconnect [-e | -s] [-w SECONDS] HOST PORT\n");
    return EXIT_USAGE;
}
