/*
 * A program with TLS of its own that tlsshim cannot see, as a bundled or
 * static TLS library would be: it builds a ClientHello byte by byte
 * (TLS 1.2, SNI NAME) and writes it with write().  Prints what became of
 * the write and of the answer.
 *
 * Exit status: 0 the hello was written and the peer answered, 2 usage,
 * 3 the write failed (its errno is printed), 4 another error.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static size_t
put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
    return 2;
}

/* The hello, record header included; returns its length. */
static size_t
build_hello(unsigned char *b, const char *name)
{
    static const unsigned suites[] = {0xc02f, 0xc030, 0x009c};
    size_t nlen = strlen(name), p = 9, ext_len_at, ext_start;

    p += put16(b + p, 0x0303);              /* client_version */
    for (int i = 0; i < 32; i++)            /* random */
        b[p++] = (unsigned char)(rand() & 0xff);
    b[p++] = 0;                             /* session id */
    p += put16(b + p, sizeof(suites) / sizeof(suites[0]) * 2);
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
        p += put16(b + p, suites[i]);
    b[p++] = 1;                             /* compression: null */
    b[p++] = 0;
    ext_len_at = p;
    p += 2;
    ext_start = p;
    p += put16(b + p, 0);                   /* server_name */
    p += put16(b + p, (unsigned)(nlen + 5));
    p += put16(b + p, (unsigned)(nlen + 3));
    b[p++] = 0;
    p += put16(b + p, (unsigned)nlen);
    memcpy(b + p, name, nlen);
    p += nlen;
    p += put16(b + p, 10);                  /* supported_groups */
    p += put16(b + p, 4);
    p += put16(b + p, 2);
    p += put16(b + p, 0x0017);
    p += put16(b + p, 11);                  /* ec_point_formats */
    p += put16(b + p, 2);
    b[p++] = 1;
    b[p++] = 0;
    p += put16(b + p, 13);                  /* signature_algorithms */
    p += put16(b + p, 6);
    p += put16(b + p, 4);
    p += put16(b + p, 0x0401);
    p += put16(b + p, 0x0403);
    put16(b + ext_len_at, (unsigned)(p - ext_start));
    b[0] = 0x16;                            /* record: handshake */
    put16(b + 1, 0x0301);
    put16(b + 3, (unsigned)(p - 5));
    b[5] = 1;                               /* client_hello */
    b[6] = (unsigned char)((p - 9) >> 16);
    put16(b + 7, (unsigned)(p - 9));
    return p;
}

int
main(int argc, char **argv)
{
    struct addrinfo hints, *res;
    unsigned char hello[512], answer[5];
    ssize_t n;
    size_t len;
    int fd;

    if (argc != 4) {
        fprintf(stderr, "usage: rawhello HOST PORT NAME\n");
        return 2;
    }
    srand((unsigned)getpid());
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(argv[1], argv[2], &hints, &res) != 0)
        return 4;
    fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        perror("rawhello: connect");
        return 4;
    }
    freeaddrinfo(res);
    len = build_hello(hello, argv[3]);
    n = write(fd, hello, len);
    if (n < 0) {
        int e = errno;
        printf("rawhello: write: %s errno=%s\n", strerror(e),
               e == ECONNRESET ? "ECONNRESET" : "other");
        return 3;
    }
    n = read(fd, answer, sizeof(answer));
    printf("rawhello: wrote %zu bytes, the peer answered %zd bytes%s\n", len,
           n, n > 0 && answer[0] == 0x16 ? " (a TLS handshake record)" : "");
    close(fd);
    return n > 0 ? 0 : 4;
}
