/*
 * faultclient: a plain TCP client that reports every call's result, for
 * the fault-injection tests (tests/bats/faults.bats).  It resolves HOST
 * with getaddrinfo() and tries the addresses in turn like ordinary
 * clients, printing one line per call:
 *
 *     connect ADDR: ok | connect ADDR: -1 errno=NAME
 *     write: N | write: N then -1 errno=NAME
 *     read: N eof | read: N then -1 errno=NAME
 *
 * The payload is standard input (at most 16 MiB).  Options:
 *   -A        try every address, exchanging the payload on each that
 *             connects (default: stop at the first that connects)
 *   -c        careless: write the payload even when connect() failed, on
 *             the socket of the last attempt (a program that ignores
 *             errors must still put nothing on the wire)
 *   -n N      run the whole exchange N times, one connection each
 *   -F        before the first connection, use up every free descriptor
 *             (EMFILE) and release them after it
 *   -B BYTES  back-pressure: after connecting, write BYTES (repeating
 *             the payload) with SO_SNDTIMEO -T seconds (default 2), and
 *             report how much was taken; then the peak memory (VmHWM)
 *   -N        with -B, write on a non-blocking socket until EAGAIN, then
 *             poll for POLLOUT for -T seconds and print what poll said
 *   -w SECS   overall timeout (default 30 s): exit 5
 *
 * Exit status: 0 every connection exchanged its payload, 1 something
 * failed (see the lines), 2 usage, 5 timeout.
 */
#define _GNU_SOURCE
#define PROG "faultclient"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "progutil.h"

#define MAX_PAYLOAD (16u * 1024 * 1024)

static char *payload;
static size_t payload_len;
static int opt_all, opt_careless, opt_fill, opt_nonblock;
static long long opt_bytes;
static int opt_sndtimeo = 2;

static void
read_payload(void)
{
    size_t cap = 65536;
    ssize_t n;

    if ((payload = malloc(cap)) == NULL)
        exit(1);
    for (;;) {
        if (payload_len == cap) {
            if (cap >= MAX_PAYLOAD) {
                fprintf(stderr, "faultclient: payload over 16 MiB\n");
                exit(2);
            }
            cap *= 2;
            if ((payload = realloc(payload, cap)) == NULL)
                exit(1);
        }
        n = read(STDIN_FILENO, payload + payload_len, cap - payload_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        payload_len += (size_t)n;
    }
}

static const char *
addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
    const void *a = sa->sa_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;

    if (inet_ntop(sa->sa_family, a, buf, (socklen_t)len) == NULL)
        snprintf(buf, len, "?");
    return buf;
}

/* Write the payload; print how much was taken.  0 when all of it. */
static int
send_payload(int fd)
{
    size_t off = 0;

    while (off < payload_len) {
        ssize_t n = write(fd, payload + off, payload_len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            printf("write: %zu then -1 errno=%s\n", off, errname(e));
            return -1;
        }
        off += (size_t)n;
    }
    printf("write: %zu\n", off);
    if (shutdown(fd, SHUT_WR) < 0)
        printf("shutdown: -1 errno=%s\n", errname(errno));
    return 0;
}

/* Read to EOF; print how much arrived and whether it is the payload. */
static int
receive_echo(int fd)
{
    static char buf[65536];
    size_t got = 0;
    int same = 1;

    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            printf("read: %zu then -1 errno=%s\n", got, errname(errno));
            return -1;
        }
        if (n == 0)
            break;
        if (got + (size_t)n > payload_len ||
            memcmp(payload + got, buf, (size_t)n) != 0)
            same = 0;
        got += (size_t)n;
    }
    printf("read: %zu eof%s\n", got,
           same && got == payload_len ? " echo=same" : " echo=differs");
    return same && got == payload_len ? 0 : -1;
}

static void
print_peak_memory(void)
{
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmHWM:", 6) == 0)
            printf("%s", line);
    fclose(f);
}

/* Huge writes to a peer that does not read. */
static int
back_pressure(int fd)
{
    long long sent = 0;
    int e = 0;

    if (opt_nonblock) {
        struct pollfd p;
        int r;

        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
            return -1;
        while (sent < opt_bytes) {
            ssize_t n = write(fd, payload, payload_len);
            if (n < 0) {
                e = errno;
                break;
            }
            sent += n;
        }
        printf("write: %lld then -1 errno=%s\n", sent, errname(e));
        p.fd = fd;
        p.events = POLLOUT;
        r = poll(&p, 1, opt_sndtimeo * 1000);
        printf("poll: %d revents=%s%s%s\n", r,
               (p.revents & POLLOUT) ? "OUT" : "",
               (p.revents & POLLERR) ? "ERR" : "",
               (p.revents & POLLHUP) ? "HUP" : "");
    } else {
        struct timeval tv = { .tv_sec = opt_sndtimeo, .tv_usec = 0 };

        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
            return -1;
        while (sent < opt_bytes) {
            ssize_t n = write(fd, payload, payload_len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                e = errno;
                break;
            }
            sent += n;
        }
        if (e != 0)
            printf("write: %lld then -1 errno=%s\n", sent, errname(e));
        else
            printf("write: %lld\n", sent);
    }
    print_peak_memory();
    return e == 0 ? 0 : -1;
}

/* Use up the free descriptors; return how many were taken. */
static int
fill_fds(int *fds, int max)
{
    int n = 0;

    while (n < max) {
        int fd = dup(STDERR_FILENO);
        if (fd < 0)
            break;
        fds[n++] = fd;
    }
    return n;
}

/* One exchange: resolve, connect (each address or until one works). */
static int
run_once(const char *host, const char *port, int round)
{
    struct addrinfo hints, *res, *ai;
    int rc, ok = 0, failed = 0, fd = -1, last = -1;
    static int fds[65536];
    int nfill = 0;
    char addr[INET6_ADDRSTRLEN];

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
        printf("getaddrinfo: %s\n", gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            printf("socket: -1 errno=%s\n", errname(errno));
            failed = 1;
            continue;
        }
        if (opt_fill && round == 0)
            nfill = fill_fds(fds, (int)(sizeof(fds) / sizeof(fds[0])));
        rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc < 0) {
            int e = errno;
            printf("connect %s: -1 errno=%s\n",
                   addr_str(ai->ai_addr, addr, sizeof(addr)), errname(e));
        } else {
            printf("connect %s: ok\n",
                   addr_str(ai->ai_addr, addr, sizeof(addr)));
        }
        while (nfill > 0)
            close(fds[--nfill]);
        fflush(stdout);
        if (rc < 0) {
            if (last >= 0)
                close(last);
            last = fd;
            continue;
        }
        ok++;
        if (opt_bytes > 0) {
            if (back_pressure(fd) < 0)
                failed = 1;
        } else if (send_payload(fd) < 0 || receive_echo(fd) < 0) {
            failed = 1;
        }
        close(fd);
        fflush(stdout);
        if (!opt_all)
            break;
    }
    freeaddrinfo(res);
    if (ok == 0 && last >= 0 && opt_careless) {
        /* The program ignores the error and writes anyway. */
        send_payload(last);
        receive_echo(last);
    }
    if (last >= 0)
        close(last);
    fflush(stdout);
    return ok > 0 && !failed ? 0 : -1;
}

int
main(int argc, char **argv)
{
    int c, rounds = 1, timeout = 30, i, status = 0;

    while ((c = getopt(argc, argv, "AcFn:B:NT:w:")) != -1) {
        switch (c) {
        case 'A': opt_all = 1; break;
        case 'c': opt_careless = 1; break;
        case 'F': opt_fill = 1; break;
        case 'n': rounds = (int)positive_arg(optarg, "-n"); break;
        case 'B': opt_bytes = (long long)positive_arg(optarg, "-B"); break;
        case 'N': opt_nonblock = 1; break;
        case 'T': opt_sndtimeo = (int)positive_arg(optarg, "-T"); break;
        case 'w': timeout = (int)positive_arg(optarg, "-w"); break;
        default: goto usage;
        }
    }
    if (argc - optind != 2 || rounds < 1 || timeout < 1 || opt_sndtimeo < 1)
        goto usage;
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)timeout);
    setvbuf(stdout, NULL, _IOLBF, 0);
    read_payload();
    if (opt_bytes > 0 && payload_len == 0) {
        fprintf(stderr, "faultclient: -B needs a payload\n");
        return 2;
    }
    for (i = 0; i < rounds; i++)
        if (run_once(argv[optind], argv[optind + 1], i) < 0)
            status = 1;
    return status;
usage:
    fprintf(stderr, "usage: faultclient [-AcFN] [-n N] [-B BYTES] [-T SECS] "
            "[-w SECS] HOST PORT < PAYLOAD\n");
    return 2;
}
