/*
 * nestepoll: an epoll set inside another one, the way a loop embeds
 * libuv through its backend fd, for tests/bats/escapes.bats (SPEC
 * section 5: readable whenever decrypted bytes are buffered).
 *
 *     nestepoll [-e] [-d] [-p] HOST PORT IN OUT
 *
 * Connects (under tlsshim: TLS), sends the file IN in one go to an echo
 * server, then makes the socket non-blocking and puts it in an inner set
 * (level-triggered EPOLLIN; with -e edge-triggered), and the inner set in
 * an outer one.  It waits on the outer set only; each time the outer set
 * reports the inner one, it takes the inner set's events without waiting
 * and reads one byte (with -e: one byte per read() until EAGAIN).  The
 * echo arrives as several TLS records in one burst, so after the first
 * byte the rest sits in the TLS layer with the kernel socket empty: the
 * outer set must still report the inner one.  With -d the socket is
 * registered through the inner set's fd and the set is nested and waited
 * on through a dup() of it.  With -p there is no outer set: the inner
 * set's fd is watched with poll() (a GLib loop embedding libuv).
 * Writes what it read to OUT and prints "nestepoll: N bytes, W outer
 * wakeups, S empty".
 *
 * Exit status: 0 success, 1 wrong behaviour (the outer set stayed silent
 * for 2 s with bytes still due), 2 usage, 3 connect error, 4 I/O error,
 * 5 timeout (8 s in all).
 */
#define _GNU_SOURCE
#define PROG "nestepoll"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "progutil.h"

#define TAG_SOCKET 0x50c4e7ull
#define TAG_INNER 0x1a2b3cull

/* The first address only, close-on-exec. */
static int
connect_first(const char *host, const char *port)
{
    struct addrinfo hints, *res;
    int fd, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
        fprintf(stderr, "nestepoll: getaddrinfo: %s\n", gai_strerror(rc));
        exit(EXIT_CONNECT);
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        report("connect", errno);
        exit(EXIT_CONNECT);
    }
    freeaddrinfo(res);
    return fd;
}

static void
ctl_add(int ep, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.u64 = tag;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die_io("epoll_ctl", errno);
}

int
main(int argc, char **argv)
{
    int edge = 0, use_dup = 0, use_poll = 0, opt;
    unsigned long wakeups = 0, empty = 0;

    while ((opt = getopt(argc, argv, "edp")) != -1) {
        if (opt == 'e')
            edge = 1;
        else if (opt == 'd')
            use_dup = 1;
        else if (opt == 'p')
            use_poll = 1;
        else
            return EXIT_USAGE;
    }
    if (argc - optind != 4) {
        fprintf(stderr, "usage: nestepoll [-e] [-d] [-p] HOST PORT IN OUT\n");
        return EXIT_USAGE;
    }
    signal(SIGALRM, on_alarm);
    alarm(8);

    size_t len, got = 0;
    unsigned char *msg = read_file(argv[optind + 2], &len);
    unsigned char *echo = malloc(len + 1);
    int fd = connect_first(argv[optind], argv[optind + 1]);
    if (echo == NULL)
        die_io("malloc", ENOMEM);
    write_all_or_die(fd, msg, len);
    set_nonblocking(fd, 1);

    int inner = epoll_create1(EPOLL_CLOEXEC);
    int outer = epoll_create1(EPOLL_CLOEXEC);
    if (inner < 0 || outer < 0)
        die_io("epoll_create1", errno);
    /* with -d the socket is registered through one fd of the inner set
     * and the set is nested and waited on through another */
    int waited = use_dup ? dup(inner) : inner;
    if (waited < 0)
        die_io("dup", errno);
    ctl_add(inner, fd, EPOLLIN | (edge ? EPOLLET : 0u), TAG_SOCKET);
    if (!use_poll)
        ctl_add(outer, waited, EPOLLIN, TAG_INNER);

    while (got < len) {
        struct epoll_event ev[4];
        struct pollfd p = {.fd = waited, .events = POLLIN};
        int n;
        if (use_poll) {
            n = poll(&p, 1, 2000);
            ev[0].data.u64 = TAG_INNER;
        } else {
            n = epoll_wait(outer, ev, 4, 2000);
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die_io("epoll_wait (outer)", errno);
        if (n == 0) {
            fprintf(stderr, "nestepoll: wrong: the outer set stayed silent "
                            "for 2 s with %zu of %zu bytes read\n", got, len);
            return EXIT_WRONG;
        }
        if (n != 1 || ev[0].data.u64 != TAG_INNER) {
            fprintf(stderr, "nestepoll: wrong: outer event %d data %llx\n",
                    n, (unsigned long long)ev[0].data.u64);
            return EXIT_WRONG;
        }
        wakeups++;
        n = epoll_wait(waited, ev, 4, 0);
        if (n < 0)
            die_io("epoll_wait (inner)", errno);
        if (n == 0)
            empty++;
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 != TAG_SOCKET) {
                fprintf(stderr, "nestepoll: wrong: inner event data %llx\n",
                        (unsigned long long)ev[i].data.u64);
                return EXIT_WRONG;
            }
            do {
                ssize_t r = read(fd, echo + got, 1);
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                if (r <= 0)
                    die_io("read", r < 0 ? errno : EPIPE);
                got++;
            } while (edge && got < len);
        }
    }

    write_file(argv[optind + 3], echo, got);
    printf("nestepoll: %zu bytes, %lu outer wakeups, %lu empty\n", got,
           wakeups, empty);
    close(fd);
    return 0;
}
