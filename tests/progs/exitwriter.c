/*
 * exitwriter HOST PORT BYTES: connect, write BYTES of a fixed pattern on a
 * non-blocking socket (spinning on EAGAIN with poll), then exit(0) without
 * closing, so that whatever the TLS layer still holds must be finished and
 * close_notify sent by the exit handler.  The test compares what the
 * server recorded with the same pattern.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
    struct addrinfo hints, *res;
    static char buf[65536];
    size_t total, sent = 0;
    int fd;

    if (argc != 4) {
        fprintf(stderr, "usage: exitwriter HOST PORT BYTES\n");
        return 2;
    }
    total = strtoul(argv[3], NULL, 10);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (char)('a' + i % 26);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(argv[1], argv[2], &hints, &res) != 0)
        return 3;
    fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        perror("exitwriter: connect");
        return 3;
    }
    freeaddrinfo(res);
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        return 4;
    alarm(30);
    while (sent < total) {
        size_t want = total - sent;
        size_t off = sent % 26;
        if (want > sizeof(buf) - 26)
            want = sizeof(buf) - 26;
        ssize_t n = write(fd, buf + off, want);
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, 1000);
            continue;
        }
        if (n < 0) {
            perror("exitwriter: write");
            return 4;
        }
        sent += (size_t)n;
    }
    exit(0);
}
