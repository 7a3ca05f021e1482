/*
 * evloop: epoll the way event loops use it, over connections to an echo
 * server, for the end-to-end tests of SPEC section 5 (readiness of a TLS
 * socket, also in edge-triggered mode).
 *
 *     evloop [-w SECONDS] MODE HOST PORT [ARGS...]
 *
 * Modes:
 *
 *   et IN OUT      non-blocking connect, one registration
 *                  EPOLLIN|EPOLLOUT|EPOLLET for the whole exchange (the
 *                  handshake's end is the first EPOLLOUT edge); sends IN
 *                  until EAGAIN per EPOLLOUT edge, reads the echo one byte
 *                  per read() until EAGAIN per EPOLLIN edge (nginx style),
 *                  writes it to OUT.  Prints "et: edges_in=N edges_out=M".
 *   nospin         sends 100 bytes, gets one EPOLLIN edge for the echo,
 *                  then reads nothing and calls epoll_wait 10 times with a
 *                  100 ms timeout.  Prints "nospin: wakeups=W timeouts=T".
 *                  With -l the registration is level-triggered (every call
 *                  must report it).
 *   buffered IN OUT  blocking exchange of IN, leaving the last 10 bytes of
 *                  the echo decrypted inside the TLS layer (the kernel
 *                  socket empty), then EPOLLIN|EPOLLET must still report
 *                  them.  Prints "buffered: reported, N bytes".
 *   oneshot IN OUT  EPOLLIN|EPOLLONESHOT: after an event and a 1-byte read
 *                  nothing is reported until EPOLL_CTL_MOD re-arms it.
 *                  Prints "oneshot: silent=1 rearms=N".
 *   exclusive IN OUT  EPOLLIN|EPOLLEXCLUSIVE is accepted; MOD of it and
 *                  EXCLUSIVE with ONESHOT fail with EINVAL as in the
 *                  kernel; the echo of IN arrives through it.
 *   threads IN OUTPREFIX N  N connections and a pipe in one epoll set
 *                  waited on by two threads (EPOLLIN|EPOLLONESHOT, re-armed
 *                  with MOD, removed with DEL when complete); the pipe's
 *                  events must carry its own data.  The echo of connection
 *                  i goes to OUTPREFIX.i.
 *   duplex IN OUT  a blocking socket in a level-triggered EPOLLIN|EPOLLOUT
 *                  set, as socat uses select: a 64 KiB blocking write per
 *                  EPOLLOUT, a read per EPOLLIN, until all of IN is sent
 *                  and its echo is back in OUT.  Writable must mean room in
 *                  the kernel too, or the write blocks while the echo
 *                  piles up unread (with IN larger than the socket
 *                  buffers).  Prints "duplex: N bytes".
 *   many N         N connections in one edge-triggered set, one line each:
 *                  the first 5 bytes of each echo are read before the
 *                  registration, so the rest is in the TLS layer only and
 *                  must be reported from there.  Prints "many: N echoes".
 *
 * Errors are reported as "evloop: CALL: strerror errno=NAME".
 * Exit status: 0 success, 1 wrong behaviour, 2 usage, 3 connect error,
 * 4 I/O error, 5 the overall timeout (30 s, or -w SECONDS) expired.
 */
#define _GNU_SOURCE
#define PROG "evloop"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "progutil.h"

#define PIPE_DATA 0xfeedface12345678ull

static const char *host, *port;

static void
ep_ctl(int ep, int op, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.u64 = data;
    if (epoll_ctl(ep, op, fd, &ev) < 0)
        die_io("epoll_ctl", errno);
}

/* Write everything on a non-blocking socket, waiting with poll(). */
static void
write_all_nb(int fd, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            (void)poll(&p, 1, 1000);
            continue;
        }
        if (n <= 0)
            die_io("write", n < 0 ? errno : EIO);
        buf += n;
        len -= (size_t)n;
    }
}

static void
check_so_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        die_io("getsockopt", errno);
    if (err != 0) {
        report("connect", err);
        exit(EXIT_CONNECT);
    }
}

/* --- et -------------------------------------------------------------- */

static int
mode_et(const char *in, const char *out)
{
    size_t len, sent = 0, got = 0;
    unsigned char *msg = read_file(in, &len);
    unsigned char *echo = malloc(len + 1);
    int fd = connect_to(host, port, 0, connect_started),
        ep = epoll_create1(EPOLL_CLOEXEC);
    int connected = 0, edges_in = 0, edges_out = 0;

    if (ep < 0 || echo == NULL)
        die_io("epoll_create1", errno);
    ep_ctl(ep, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLOUT | EPOLLET, 7);
    while (got < len) {
        struct epoll_event ev[4];
        int n = epoll_wait(ep, ev, 4, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die_io("epoll_wait", errno);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 != 7)
                wrong("event with foreign data");
            if (ev[i].events & EPOLLOUT) {
                edges_out++;
                if (!connected) {
                    check_so_error(fd);
                    connected = 1;
                }
                /* write until EAGAIN: the next EPOLLOUT edge resumes */
                while (sent < len) {
                    ssize_t w = write(fd, msg + sent, len - sent);
                    if (w < 0 && errno == EAGAIN)
                        break;
                    if (w < 0)
                        die_io("write", errno);
                    sent += (size_t)w;
                }
            }
            if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                edges_in++;
                /* one byte per read until EAGAIN */
                for (;;) {
                    ssize_t r = read(fd, echo + got, 1);
                    if (r < 0 && errno == EAGAIN)
                        break;
                    if (r < 0)
                        die_io("read", errno);
                    if (r == 0)
                        wrong("EOF before the whole echo");
                    if (++got > len)
                        wrong("more bytes than sent");
                }
            }
        }
    }
    write_file(out, echo, got);
    printf("et: edges_in=%d edges_out=%d bytes=%zu\n", edges_in, edges_out,
           got);
    close(fd);
    close(ep);
    return 0;
}

/* --- nospin ------------------------------------------------------------ */

static int
mode_nospin(int level)
{
    unsigned char msg[100];
    int fd = connect_to(host, port, 0, NULL), ep = epoll_create1(0);
    int wakeups = 0, timeouts = 0;
    struct epoll_event ev;

    memset(msg, 'n', sizeof(msg));
    write_all_or_die(fd, msg, sizeof(msg));
    set_nonblocking(fd, 1);
    ep_ctl(ep, EPOLL_CTL_ADD, fd, EPOLLIN | (level ? 0u : EPOLLET), 1);
    /* the echo's edge */
    if (epoll_wait(ep, &ev, 1, 5000) != 1 || !(ev.events & EPOLLIN))
        wrong("no EPOLLIN for the echo");
    /* now deliberately leave it unread */
    for (int i = 0; i < 10; i++) {
        int n = epoll_wait(ep, &ev, 1, 100);
        if (n < 0)
            die_io("epoll_wait", errno);
        if (n > 0)
            wakeups++;
        else
            timeouts++;
    }
    printf("nospin: wakeups=%d timeouts=%d\n", wakeups, timeouts);
    /* the bytes are still there */
    unsigned char buf[200];
    size_t got = 0;
    while (got < sizeof(msg)) {
        ssize_t r = read(fd, buf + got, sizeof(buf) - got);
        if (r < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            (void)poll(&p, 1, 1000);
            continue;
        }
        if (r <= 0)
            die_io("read", r < 0 ? errno : EIO);
        got += (size_t)r;
    }
    if (memcmp(buf, msg, sizeof(msg)) != 0)
        wrong("echo differs");
    printf("nospin: echo intact\n");
    return 0;
}

/* --- buffered -------------------------------------------------------- */

static int
mode_buffered(const char *in, const char *out)
{
    size_t len, got = 0;
    unsigned char *msg = read_file(in, &len);
    unsigned char *echo = malloc(len);
    int fd = connect_to(host, port, 0, NULL), ep = epoll_create1(0);
    struct epoll_event ev;
    ssize_t r;

    if (len <= 10 || echo == NULL)
        wrong("input too short");
    write_all_or_die(fd, msg, len);
    /* let the whole echo reach this host, then take all but 10 bytes: the
     * TLS layer reads ahead, so the rest sits decrypted in it while the
     * kernel socket is empty */
    usleep(300 * 1000);
    r = recv(fd, echo, len - 10, MSG_WAITALL);
    if (r != (ssize_t)(len - 10))
        die_io("recv", r < 0 ? errno : EIO);
    got = (size_t)r;
    set_nonblocking(fd, 1);
    ep_ctl(ep, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLET, 3);
    int n = epoll_wait(ep, &ev, 1, 2000);
    if (n != 1 || !(ev.events & EPOLLIN))
        wrong("buffered plaintext not reported");
    for (;;) {
        r = read(fd, echo + got, 1);
        if (r < 0 && errno == EAGAIN)
            break;
        if (r <= 0)
            die_io("read", r < 0 ? errno : EIO);
        if (++got > len)
            wrong("more bytes than sent");
    }
    write_file(out, echo, got);
    printf("buffered: reported, %zu bytes\n", got - (len - 10));
    return 0;
}

/* --- oneshot --------------------------------------------------------- */

static int
mode_oneshot(const char *in, const char *out)
{
    size_t len, got = 0;
    unsigned char *msg = read_file(in, &len);
    unsigned char *echo = malloc(len + 1);
    int fd = connect_to(host, port, 0, NULL), ep = epoll_create1(0), rearms = 0;
    struct epoll_event ev;

    set_nonblocking(fd, 1);
    ep_ctl(ep, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLONESHOT, 5);
    write_all_nb(fd, msg, len);
    if (epoll_wait(ep, &ev, 1, 5000) != 1 || ev.data.u64 != 5)
        wrong("no first event");
    if (read(fd, echo, 1) != 1)
        die_io("read", errno);
    got = 1;
    /* disabled: more data is there, yet nothing is reported */
    if (epoll_wait(ep, &ev, 1, 300) != 0)
        wrong("event while disabled by EPOLLONESHOT");
    while (got < len) {
        ep_ctl(ep, EPOLL_CTL_MOD, fd, EPOLLIN | EPOLLONESHOT, 5);
        rearms++;
        if (epoll_wait(ep, &ev, 1, 5000) != 1)
            wrong("no event after EPOLL_CTL_MOD");
        for (;;) {
            ssize_t r = read(fd, echo + got, len + 1 - got);
            if (r < 0 && errno == EAGAIN)
                break;
            if (r <= 0)
                die_io("read", r < 0 ? errno : EIO);
            got += (size_t)r;
        }
    }
    if (got != len)
        wrong("more bytes than sent");
    write_file(out, echo, got);
    printf("oneshot: silent=1 rearms=%d\n", rearms);
    return 0;
}

/* --- exclusive ------------------------------------------------------- */

static int
mode_exclusive(const char *in, const char *out)
{
    size_t len, got = 0;
    unsigned char *msg = read_file(in, &len);
    unsigned char *echo = malloc(len + 1);
    int fd = connect_to(host, port, 0, NULL), ep = epoll_create1(0), p[2];
    struct epoll_event ev;

    set_nonblocking(fd, 1);
    ep_ctl(ep, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLEXCLUSIVE, 9);
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == 0 || errno != EINVAL)
        wrong("MOD of an EPOLLEXCLUSIVE registration did not fail with "
              "EINVAL");
    if (pipe(p) < 0)
        die_io("pipe", errno);
    ev.events = EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0 || errno != EINVAL)
        wrong("EPOLLEXCLUSIVE|EPOLLONESHOT accepted on a pipe");
    write_all_nb(fd, msg, len);
    while (got < len) {
        int n = epoll_wait(ep, &ev, 1, 5000);
        if (n != 1 || ev.data.u64 != 9)
            wrong("no event through the EPOLLEXCLUSIVE registration");
        ssize_t r = read(fd, echo + got, len + 1 - got);
        if (r < 0 && errno == EAGAIN)
            continue;
        if (r <= 0)
            die_io("read", r < 0 ? errno : EIO);
        got += (size_t)r;
    }
    if (got != len)
        wrong("more bytes than sent");
    write_file(out, echo, got);
    printf("exclusive: ok\n");
    return 0;
}

/* --- threads --------------------------------------------------------- */

struct tconn {
    int fd;
    pthread_mutex_t lock;
    unsigned char *buf;
    size_t got;
    int done;
};

static struct tconn *tconns;
static int ntconns, tep, tpipe[2];
static size_t tlen;
static atomic_int tdone, tpipe_bytes, tevents[2], tpipe_events;

static void *
worker(void *arg)
{
    int self = (int)(intptr_t)arg;

    while (atomic_load(&tdone) < ntconns) {
        struct epoll_event ev[4];
        int n = epoll_wait(tep, ev, 4, 100);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die_io("epoll_wait", errno);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == PIPE_DATA) {
                char b[64];
                ssize_t r;
                if (!(ev[i].events & EPOLLIN))
                    wrong("pipe event without EPOLLIN");
                atomic_fetch_add(&tpipe_events, 1);
                while ((r = read(tpipe[0], b, sizeof(b))) > 0)
                    atomic_fetch_add(&tpipe_bytes, (int)r);
                continue;
            }
            if (ev[i].data.u64 >= (uint64_t)ntconns)
                wrong("event with foreign data");
            struct tconn *t = &tconns[ev[i].data.u64];
            atomic_fetch_add(&tevents[self], 1);
            pthread_mutex_lock(&t->lock);
            for (;;) {
                ssize_t r = read(t->fd, t->buf + t->got, tlen + 1 - t->got);
                if (r < 0 && errno == EAGAIN)
                    break;
                if (r <= 0)
                    die_io("read", r < 0 ? errno : EIO);
                t->got += (size_t)r;
            }
            if (t->got > tlen)
                wrong("more bytes than sent");
            if (t->got == tlen) {
                ep_ctl(tep, EPOLL_CTL_DEL, t->fd, 0, 0);
                t->done = 1;
                atomic_fetch_add(&tdone, 1);
            } else {
                ep_ctl(tep, EPOLL_CTL_MOD, t->fd, EPOLLIN | EPOLLONESHOT,
                       ev[i].data.u64);
            }
            pthread_mutex_unlock(&t->lock);
        }
    }
    return NULL;
}

static int
mode_threads(const char *in, const char *prefix, int n)
{
    unsigned char *msg = read_file(in, &tlen);
    pthread_t th[2];
    struct epoll_event ev;
    char path[4096];

    ntconns = n;
    tconns = calloc((size_t)n, sizeof(*tconns));
    if ((tep = epoll_create1(0)) < 0 || pipe2(tpipe, O_NONBLOCK) < 0 ||
        tconns == NULL)
        die_io("setup", errno);
    ep_ctl(tep, EPOLL_CTL_ADD, tpipe[0], EPOLLIN, PIPE_DATA);
    for (int i = 0; i < n; i++) {
        tconns[i].fd = connect_to(host, port, 0, NULL);
        set_nonblocking(tconns[i].fd, 1);
        pthread_mutex_init(&tconns[i].lock, NULL);
        if ((tconns[i].buf = malloc(tlen + 1)) == NULL)
            die_io("malloc", ENOMEM);
        ep_ctl(tep, EPOLL_CTL_ADD, tconns[i].fd, EPOLLIN | EPOLLONESHOT,
               (uint64_t)i);
    }
    for (int i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) != 0)
            die_io("pthread_create", errno);
    int piped = 0;
    for (int i = 0; i < n; i++) {
        write_all_nb(tconns[i].fd, msg, tlen);
        if (write(tpipe[1], "xyz", 3) == 3)
            piped += 3;
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s.%d", prefix, i);
        write_file(path, tconns[i].buf, tconns[i].got);
    }
    /* every TLS registration is gone; the pipe's still works */
    if (write(tpipe[1], "!", 1) == 1)
        piped++;
    int k;
    while ((k = epoll_wait(tep, &ev, 1, 500)) == 1) {
        char b[64];
        ssize_t r;
        if (ev.data.u64 != PIPE_DATA)
            wrong("event for a deleted registration");
        while ((r = read(tpipe[0], b, sizeof(b))) > 0)
            atomic_fetch_add(&tpipe_bytes, (int)r);
    }
    if (atomic_load(&tpipe_bytes) != piped)
        wrong("pipe bytes lost");
    printf("threads: %d connections, events %d+%d, pipe %d bytes in %d "
           "events\n",
           n, atomic_load(&tevents[0]), atomic_load(&tevents[1]), piped,
           atomic_load(&tpipe_events));
    return 0;
}

/* --- duplex ---------------------------------------------------------- */

static int
mode_duplex(const char *in, const char *out)
{
    size_t len, sent = 0, got = 0;
    unsigned char *msg = read_file(in, &len);
    unsigned char *echo = malloc(len + 1);
    int fd = connect_to(host, port, 0, NULL), ep = epoll_create1(0);

    if (echo == NULL || ep < 0)
        die_io("setup", errno);
    ep_ctl(ep, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLOUT, 1);
    while (got < len) {
        struct epoll_event ev;
        int n = epoll_wait(ep, &ev, 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die_io("epoll_wait", errno);
        if (ev.events & EPOLLIN) {
            ssize_t r = read(fd, echo + got, len + 1 - got);
            if (r <= 0)
                die_io("read", r < 0 ? errno : EIO);
            got += (size_t)r;
        }
        if ((ev.events & EPOLLOUT) && sent < len) {
            size_t piece = len - sent < 65536 ? len - sent : 65536;
            write_all_or_die(fd, msg + sent, piece);
            sent += piece;
            if (sent == len)
                ep_ctl(ep, EPOLL_CTL_MOD, fd, EPOLLIN, 1);
        }
    }
    if (got != len)
        wrong("more bytes than sent");
    write_file(out, echo, got);
    printf("duplex: %zu bytes\n", got);
    return 0;
}

/* --- many ------------------------------------------------------------ */

static int
mode_many(int n)
{
    struct rlimit rl;
    int *fds = calloc((size_t)n, sizeof(int)),
        *got = calloc((size_t)n, sizeof(int));
    char line[64];
    int ep = epoll_create1(0), left = n;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64) {
        rl.rlim_cur =
            rl.rlim_max < (rlim_t)n + 64 ? rl.rlim_max : (rlim_t)n + 64;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (fds == NULL || got == NULL || ep < 0)
        die_io("setup", errno);
    for (int i = 0; i < n; i++) {
        fds[i] = connect_to(host, port, 0, NULL);
        int k = snprintf(line, sizeof(line), "connection %06d\n", i);
        write_all_or_die(fds[i], (unsigned char *)line, (size_t)k);
    }
    for (int i = 0; i < n; i++) {
        char head[5];
        if (recv(fds[i], head, sizeof(head), MSG_WAITALL) != 5 ||
            memcmp(head, "conne", 5) != 0)
            wrong("echo head differs");
        set_nonblocking(fds[i], 1);
        ep_ctl(ep, EPOLL_CTL_ADD, fds[i], EPOLLIN | EPOLLET, (uint64_t)i);
    }
    while (left > 0) {
        struct epoll_event ev[64];
        int k = epoll_wait(ep, ev, 64, 5000);
        if (k <= 0)
            wrong(k == 0 ? "echoes missing" : "epoll_wait failed");
        for (int j = 0; j < k; j++) {
            int i = (int)ev[j].data.u64;
            char buf[64], want[64];
            ssize_t r = read(fds[i], buf, sizeof(buf));
            if (r < 0 && errno == EAGAIN)
                continue;
            if (r <= 0)
                die_io("read", r < 0 ? errno : EIO);
            int wl = snprintf(want, sizeof(want), "ction %06d\n", i);
            if (r != wl || memcmp(buf, want, (size_t)wl) != 0)
                wrong("echo differs");
            if (++got[i] > 1)
                wrong("a second echo");
            left--;
        }
    }
    printf("many: %d echoes\n", n);
    return 0;
}

static void
usage(void)
{
    fprintf(stderr, "usage: evloop [-w SECONDS] [-l] MODE HOST PORT "
                    "[ARGS...]\n");
    exit(EXIT_USAGE);
}

int
main(int argc, char **argv)
{
    int opt, seconds = 30, level = 0;
    const char *mode;

    while ((opt = getopt(argc, argv, "w:l")) != -1) {
        switch (opt) {
        case 'w':
            seconds = (int)positive_arg(optarg, "-w");
            break;
        case 'l':
            level = 1;
            break;
        default:
            usage();
        }
    }
    if (argc - optind < 3)
        usage();
    mode = argv[optind];
    host = argv[optind + 1];
    port = argv[optind + 2];
    argv += optind + 3;
    argc -= optind + 3;
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)seconds);
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (strcmp(mode, "et") == 0 && argc == 2)
        return mode_et(argv[0], argv[1]);
    if (strcmp(mode, "nospin") == 0 && argc == 0)
        return mode_nospin(level);
    if (strcmp(mode, "buffered") == 0 && argc == 2)
        return mode_buffered(argv[0], argv[1]);
    if (strcmp(mode, "oneshot") == 0 && argc == 2)
        return mode_oneshot(argv[0], argv[1]);
    if (strcmp(mode, "exclusive") == 0 && argc == 2)
        return mode_exclusive(argv[0], argv[1]);
    if (strcmp(mode, "threads") == 0 && argc == 3)
        return mode_threads(argv[0], argv[1], (int)positive_arg(argv[2], "threads"));
    if (strcmp(mode, "duplex") == 0 && argc == 2)
        return mode_duplex(argv[0], argv[1]);
    if (strcmp(mode, "many") == 0 && argc == 1)
        return mode_many((int)positive_arg(argv[0], "many"));
    usage();
    return EXIT_USAGE;
}
