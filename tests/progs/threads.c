/*
 * threads MODE HOST PORT:
 *   duplex  one connection; a reader thread blocks in read() while the
 *           main thread writes 8 MiB in 1000-byte writes; the echo must
 *           come back intact (full duplex must not deadlock)
 *   many    16 threads, each making 8 connections in turn and echoing
 *           64 KiB over each
 *   signals like duplex, with a 1 ms interval timer whose handler
 *           writes to a pipe (a hooked call on a plain fd inside a
 *           signal handler) while the threads are inside the hooks
 * Prints "ok MODE" and exits 0 when every byte matched.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *host, *port;
static int sigpipe_fds[2];
/* atomic: the handler runs on whichever thread the signal reaches */
static atomic_int signals_seen;

static unsigned char
pattern(size_t i, unsigned seed)
{
    return (unsigned char)((i * 131 + seed * 7) & 0xff);
}

static int
dial(void)
{
    struct addrinfo hints, *res;
    int fd;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

struct reader {
    int fd;
    size_t want;
    unsigned seed;
    int ok;
};

static void *
reader_main(void *arg)
{
    struct reader *r = arg;
    unsigned char buf[4096];
    size_t got = 0;

    r->ok = 1;
    while (got < r->want) {
        ssize_t n = read(r->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r->ok = 0;
            return NULL;
        }
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pattern(got + (size_t)i, r->seed))
                r->ok = 0;
        got += (size_t)n;
    }
    return NULL;
}

static int
write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Echo total bytes over fd in pieces of piece bytes, reading in a
 * separate thread. */
static int
echo_over(int fd, size_t total, size_t piece, unsigned seed)
{
    struct reader r = {.fd = fd, .want = total, .seed = seed};
    pthread_t t;
    unsigned char *buf = malloc(piece);

    if (buf == NULL || pthread_create(&t, NULL, reader_main, &r) != 0)
        return -1;
    for (size_t off = 0; off < total; off += piece) {
        size_t n = total - off < piece ? total - off : piece;
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern(off + i, seed);
        if (write_all(fd, buf, n) < 0)
            break;
    }
    pthread_join(t, NULL);
    free(buf);
    return r.ok ? 0 : -1;
}

static void *
many_main(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;

    for (int k = 0; k < 8; k++) {
        int fd = dial();
        if (fd < 0 || echo_over(fd, 65536, 1500, id * 8 + (unsigned)k) < 0)
            return (void *)1;
        close(fd);
    }
    return NULL;
}

static void
on_alarm(int sig)
{
    (void)sig;
    char b;
    if (write(sigpipe_fds[1], "s", 1) == 1 &&
        read(sigpipe_fds[0], &b, 1) == 1)
        atomic_fetch_add(&signals_seen, 1);
}

int
main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: threads duplex|many|signals HOST PORT\n");
        return 2;
    }
    host = argv[2];
    port = argv[3];
    alarm(60);
    if (strcmp(argv[1], "many") == 0) {
        pthread_t t[16];
        void *res;
        int bad = 0;
        for (unsigned i = 0; i < 16; i++)
            pthread_create(&t[i], NULL, many_main, (void *)(uintptr_t)i);
        for (int i = 0; i < 16; i++) {
            pthread_join(t[i], &res);
            bad |= res != NULL;
        }
        if (bad)
            return 1;
    } else {
        int signals = strcmp(argv[1], "signals") == 0;
        if (signals) {
            struct sigaction sa;
            struct itimerval it = {{0, 1000}, {0, 1000}};
            memset(&sa, 0, sizeof(sa));
            sa.sa_handler = on_alarm;
            sa.sa_flags = SA_RESTART;
            if (pipe(sigpipe_fds) < 0 || sigaction(SIGALRM, &sa, NULL) < 0 ||
                setitimer(ITIMER_REAL, &it, NULL) < 0)
                return 3;
        }
        int fd = dial();
        if (fd < 0) {
            perror("threads: connect");
            return 3;
        }
        if (echo_over(fd, 8u << 20, 1000, 1) < 0)
            return 1;
        if (signals) {
            struct itimerval off = {{0, 0}, {0, 0}};
            setitimer(ITIMER_REAL, &off, NULL);
            if (atomic_load(&signals_seen) == 0)
                return 1;
        }
        close(fd);
    }
    printf("ok %s\n", argv[1]);
    return 0;
}
