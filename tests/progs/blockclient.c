/*
 * blockclient: the simplest kind of TCP client, for the end-to-end tests.
 * It resolves HOST with getaddrinfo() (so the resolver hooks see the name),
 * connects with a blocking connect(), copies standard input to the socket
 * with write(), shuts the sending side down, then copies the socket to
 * standard output with read() until EOF.  With -t, a second thread reads
 * the socket while the main thread writes (full duplex on one blocking
 * socket), so payloads larger than the socket buffers can be echoed.
 *
 * Errors are reported as "blockclient: CALL: strerror errno=NAME".
 * Exit status: 0 success, 2 usage, 3 resolution or connect error, 4 I/O
 * error, 5 the overall timeout (30 s, or -w SECONDS) expired.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define EXIT_USAGE 2
#define EXIT_CONNECT 3
#define EXIT_IO 4
#define EXIT_TIMEOUT 5

static void
report(const char *call, int err)
{
    const char *name = strerrorname_np(err);

    fprintf(stderr, "blockclient: %s: %s errno=%s\n", call, strerror(err),
            name != NULL ? name : "unknown");
}

/* Report an I/O error and leave, whichever thread we are in. */
static void
die_io(const char *call, int err)
{
    report(call, err);
    exit(EXIT_IO);
}

static void
on_alarm(int sig)
{
    static const char msg[] = "blockclient: timeout\n";

    (void)sig;
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* nothing more to do */
    }
    _exit(EXIT_TIMEOUT);
}

/* Write all of buf; return 0, or -1 with errno set. */
static int
write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
connect_to(const char *host, const char *port)
{
    struct addrinfo hints, *res, *ai;
    int fd = -1, err = 0, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
        fprintf(stderr, "blockclient: getaddrinfo: %s: %s\n", host,
                gai_strerror(rc));
        exit(EXIT_CONNECT);
    }
    /* Try each address in turn, as ordinary clients do. */
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        report("connect", err);
        exit(EXIT_CONNECT);
    }
    return fd;
}

/* Socket to standard output until EOF. */
static void
copy_socket_to_stdout(int fd)
{
    char buf[16384];

    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0)
            return;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die_io("read", errno);
        }
        if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
            die_io("write stdout", errno);
    }
}

/* Standard input to the socket, then shutdown(SHUT_WR). */
static void
copy_stdin_to_socket(int fd)
{
    char buf[16384];

    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die_io("read stdin", errno);
        }
        if (write_all(fd, buf, (size_t)n) < 0)
            die_io("write", errno);
    }
    if (shutdown(fd, SHUT_WR) < 0)
        die_io("shutdown", errno);
}

static void *
reader_thread(void *arg)
{
    copy_socket_to_stdout(*(int *)arg);
    return NULL;
}

int
main(int argc, char **argv)
{
    int opt, fd, rc, threaded = 0;
    unsigned timeout_seconds = 30;
    char *end;
    pthread_t reader;

    while ((opt = getopt(argc, argv, "tw:")) != -1) {
        switch (opt) {
        case 't':
            threaded = 1;
            break;
        case 'w':
            errno = 0;
            timeout_seconds = (unsigned)strtoul(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || timeout_seconds == 0)
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

    fd = connect_to(argv[optind], argv[optind + 1]);
    if (threaded) {
        if ((rc = pthread_create(&reader, NULL, reader_thread, &fd)) != 0)
            die_io("pthread_create", rc);
        copy_stdin_to_socket(fd);
        if ((rc = pthread_join(reader, NULL)) != 0)
            die_io("pthread_join", rc);
    } else {
        copy_stdin_to_socket(fd);
        copy_socket_to_stdout(fd);
    }
    if (close(fd) < 0)
        die_io("close", errno);
    return 0;

usage:
    fprintf(stderr, "usage: blockclient [-t] [-w SECONDS] HOST PORT\n");
    return EXIT_USAGE;
}
