/*
 * nbclient: a TCP client built like an event loop, for the end-to-end
 * tests.  It resolves HOST with getaddrinfo(), connects a non-blocking
 * socket (EINPROGRESS), waits until it is writable and reads SO_ERROR, then
 * pumps standard input to the socket and the socket to standard output,
 * waiting with poll() (default), select() (-s) or level-triggered epoll
 * (-e).  Socket reads and writes are non-blocking and handle EAGAIN; the
 * sending side is shut down after standard input ends; the program exits
 * at the socket's EOF.  This is how curl and most event loops use a socket,
 * so it is the path the shim must get right.
 *
 * Errors are reported as "nbclient: CALL: strerror errno=NAME".
 * Exit status: 0 success, 2 usage, 3 resolution or connect error, 4 I/O
 * error, 5 the overall timeout (30 s, or -w SECONDS) expired.
 */
#define _GNU_SOURCE
#define PROG "nbclient"

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
#include <unistd.h>

#include "progutil.h"

enum wait_api { WAIT_POLL, WAIT_SELECT, WAIT_EPOLL };

/* What one wait reported, whichever API was used. */
struct ready {
    int sock_in, sock_out, sock_err, stdin_in;
};

static enum wait_api wait_api = WAIT_POLL;

/* epoll state: what is registered for the socket and for standard input. */
static int epfd = -1;
static int sock_registered;
static unsigned sock_events_registered;
static int stdin_registered;
static int stdin_epollable = 1; /* regular files cannot be epoll'ed */

static void
epoll_set(int op, int fd, unsigned events)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.fd = fd;
    if (epoll_ctl(epfd, op, fd, &ev) < 0)
        die_io("epoll_ctl", errno);
}

/*
 * Bring the epoll set in line with what we wait for.  Standard input is
 * registered only while wanted: a pipe at EOF reports EPOLLHUP whatever
 * the interest, which would make the loop spin.
 */
static void
epoll_update(int sock, unsigned sock_events, int want_stdin)
{
    if (!sock_registered) {
        epoll_set(EPOLL_CTL_ADD, sock, sock_events);
        sock_registered = 1;
        sock_events_registered = sock_events;
    } else if (sock_events != sock_events_registered) {
        epoll_set(EPOLL_CTL_MOD, sock, sock_events);
        sock_events_registered = sock_events;
    }
    if (want_stdin && !stdin_registered && stdin_epollable) {
        struct epoll_event ev;

        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.fd = STDIN_FILENO;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, STDIN_FILENO, &ev) == 0)
            stdin_registered = 1;
        else if (errno == EPERM)
            stdin_epollable = 0;
        else
            die_io("epoll_ctl", errno);
    } else if (!want_stdin && stdin_registered) {
        epoll_set(EPOLL_CTL_DEL, STDIN_FILENO, 0);
        stdin_registered = 0;
    }
}

static void
epoll_forget(int sock)
{
    if (sock_registered)
        epoll_set(EPOLL_CTL_DEL, sock, 0);
    sock_registered = 0;
}

/*
 * Wait until the socket (for want_in/want_out) or standard input (for
 * want_stdin) is ready.  Blocks without a timeout: alarm() bounds the run.
 */
static void
wait_ready(int sock, int want_in, int want_out, int want_stdin, struct ready *r)
{
    memset(r, 0, sizeof(*r));

    switch (wait_api) {
    case WAIT_POLL: {
        struct pollfd p[2];
        nfds_t n = 1;
        int rc;

        p[0].fd = sock;
        p[0].events =
            (short)((want_in ? POLLIN : 0) | (want_out ? POLLOUT : 0));
        p[0].revents = 0;
        if (want_stdin) {
            p[1].fd = STDIN_FILENO;
            p[1].events = POLLIN;
            p[1].revents = 0;
            n = 2;
        }
        while ((rc = poll(p, n, -1)) < 0 && errno == EINTR)
            ;
        if (rc < 0)
            die_io("poll", errno);
        r->sock_in = (p[0].revents & (POLLIN | POLLHUP)) != 0;
        r->sock_out = (p[0].revents & POLLOUT) != 0;
        r->sock_err = (p[0].revents & (POLLERR | POLLNVAL)) != 0;
        if (want_stdin)
            r->stdin_in = (p[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
        break;
    }
    case WAIT_SELECT: {
        fd_set rfds, wfds;
        int rc, maxfd = sock > STDIN_FILENO ? sock : STDIN_FILENO;

        if (sock >= FD_SETSIZE) {
            fprintf(stderr, "nbclient: select: fd %d too large\n", sock);
            exit(EXIT_IO);
        }
        do {
            FD_ZERO(&rfds);
            FD_ZERO(&wfds);
            if (want_in)
                FD_SET(sock, &rfds);
            if (want_out)
                FD_SET(sock, &wfds);
            if (want_stdin)
                FD_SET(STDIN_FILENO, &rfds);
        } while ((rc = select(maxfd + 1, &rfds, &wfds, NULL, NULL)) < 0 &&
                 errno == EINTR);
        if (rc < 0)
            die_io("select", errno);
        r->sock_in = want_in && FD_ISSET(sock, &rfds);
        r->sock_out = want_out && FD_ISSET(sock, &wfds);
        r->stdin_in = want_stdin && FD_ISSET(STDIN_FILENO, &rfds);
        break;
    }
    case WAIT_EPOLL: {
        struct epoll_event ev[2];
        int i, rc, timeout = -1;

        epoll_update(sock,
                     (want_in ? EPOLLIN : 0u) | (want_out ? EPOLLOUT : 0u),
                     want_stdin);
        /* A regular file is always readable: look, but do not wait. */
        if (want_stdin && !stdin_epollable) {
            r->stdin_in = 1;
            timeout = 0;
        }
        while ((rc = epoll_wait(epfd, ev, 2, timeout)) < 0 && errno == EINTR)
            ;
        if (rc < 0)
            die_io("epoll_wait", errno);
        for (i = 0; i < rc; i++) {
            if (ev[i].data.fd == sock) {
                r->sock_in = (ev[i].events & (EPOLLIN | EPOLLHUP)) != 0;
                r->sock_out = (ev[i].events & EPOLLOUT) != 0;
                r->sock_err = (ev[i].events & EPOLLERR) != 0;
            } else if (ev[i].data.fd == STDIN_FILENO) {
                r->stdin_in = 1;
            }
        }
        break;
    }
    }
}

/* One non-blocking connect; 0 or an errno value. */
static int
connect_one(int fd, const struct addrinfo *ai)
{
    struct ready r;
    socklen_t len;
    int err;

    if (set_nonblocking_flag(fd, 1) < 0) {
        report("fcntl", errno);
        exit(EXIT_CONNECT);
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return errno;
    wait_ready(fd, 0, 1, 0, &r);
    if (wait_api == WAIT_EPOLL)
        epoll_forget(fd);
    len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

static void
pump(int sock)
{
    char out[16384], in[16384];
    size_t out_len = 0, out_off = 0;
    int stdin_eof = 0, shut = 0;
    struct ready r;

    for (;;) {
        int want_out = out_off < out_len;
        int want_stdin = !want_out && !stdin_eof;

        wait_ready(sock, 1, want_out, want_stdin, &r);

        if (r.sock_in || r.sock_err) {
            ssize_t n = read(sock, in, sizeof(in));
            if (n == 0)
                return;
            if (n > 0) {
                if (write_all(STDOUT_FILENO, in, (size_t)n) < 0)
                    die_io("write stdout", errno);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK &&
                       errno != EINTR)
                die_io("read", errno);
        }
        if (r.sock_out && out_off < out_len) {
            ssize_t n = write(sock, out + out_off, out_len - out_off);
            if (n > 0)
                out_off += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                     errno != EINTR)
                die_io("write", errno);
        }
        if (r.stdin_in && want_stdin) {
            ssize_t n = read(STDIN_FILENO, out, sizeof(out));
            if (n > 0) {
                out_len = (size_t)n;
                out_off = 0;
            } else if (n == 0) {
                stdin_eof = 1;
            } else if (errno != EINTR && errno != EAGAIN) {
                die_io("read stdin", errno);
            }
        }
        if (stdin_eof && out_off == out_len && !shut) {
            if (shutdown(sock, SHUT_WR) < 0)
                die_io("shutdown", errno);
            shut = 1;
        }
    }
}

int
main(int argc, char **argv)
{
    int opt, sock;
    unsigned timeout_seconds = 30;

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

    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm(timeout_seconds);

    if (wait_api == WAIT_EPOLL && (epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        report("epoll_create1", errno);
        return EXIT_IO;
    }
    sock = connect_to(argv[optind], argv[optind + 1], CONNECT_GAI_HOST,
                      connect_one);
    pump(sock);
    if (close(sock) < 0)
        die_io("close", errno);
    return 0;

usage:
    fprintf(stderr, "usage: nbclient [-e | -s] [-w SECONDS] HOST PORT\n");
    return EXIT_USAGE;
}
