/*
 * A program that frees its TLS object late, for the action = enforce
 * tests: it begins a TLS handshake on HOST PORT (non-blocking, so the
 * ClientHello leaves and the call returns waiting for the server), closes
 * the socket, connects to HOST PORT2 (a plain echo server) so that the
 * new socket gets the same descriptor number, and only then frees the
 * old TLS object (SSL_free, or gnutls_deinit with -g).  It then checks
 * that the new connection still carries data both ways.
 *
 * Exit status: 0 the new connection is intact, 2 usage, 3 it was cut,
 * 4 another error (the number was not reused, the handshake did not
 * begin).
 */
#define _GNU_SOURCE
#define PROG "latefree"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef LATEFREE_GNUTLS
#include <gnutls/gnutls.h>
#endif

#include "progutil.h"

/* Send a line on fd and read it back within 5 seconds: 0 when it came. */
static int
echo_ok(int fd)
{
    static const char line[] = "still here\n";
    char buf[64];
    size_t got = 0;

    if (send(fd, line, sizeof(line) - 1, MSG_NOSIGNAL) !=
        (ssize_t)sizeof(line) - 1) {
        printf("latefree: new connection: send failed: %s\n",
               strerror(errno));
        return -1;
    }
    while (got < sizeof(line) - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) != 1) {
            printf("latefree: new connection: no echo in 5s\n");
            return -1;
        }
        ssize_t n = recv(fd, buf + got, sizeof(buf) - got, 0);
        if (n <= 0) {
            printf("latefree: new connection: %s\n",
                   n == 0 ? "closed" : strerror(errno));
            return -1;
        }
        got += (size_t)n;
    }
    if (memcmp(buf, line, sizeof(line) - 1) != 0) {
        printf("latefree: new connection: wrong echo\n");
        return -1;
    }
    return 0;
}

/* Begin a handshake on fd: 0 once the hello has left. */
static int
begin_openssl(int fd, SSL_CTX **ctx, SSL **ssl)
{
    int rv;

    if ((*ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
        (*ssl = SSL_new(*ctx)) == NULL || !SSL_set_fd(*ssl, fd))
        return -1;
    SSL_set_verify(*ssl, SSL_VERIFY_NONE, NULL);
    rv = SSL_connect(*ssl);
    if (rv > 0 || SSL_get_error(*ssl, rv) != SSL_ERROR_WANT_READ) {
        printf("latefree: SSL_connect did not wait for the server (%d)\n",
               rv);
        return -1;
    }
    return 0;
}

#ifdef LATEFREE_GNUTLS
static int
begin_gnutls(int fd, gnutls_certificate_credentials_t *cred,
             gnutls_session_t *s)
{
    int rv;

    if (gnutls_certificate_allocate_credentials(cred) < 0 ||
        gnutls_init(s, GNUTLS_CLIENT | GNUTLS_NONBLOCK) < 0 ||
        gnutls_credentials_set(*s, GNUTLS_CRD_CERTIFICATE, *cred) < 0 ||
        gnutls_set_default_priority(*s) < 0)
        return -1;
    gnutls_transport_set_int(*s, fd);
    rv = gnutls_handshake(*s);
    if (rv != GNUTLS_E_AGAIN) {
        printf("latefree: gnutls_handshake did not wait for the server "
               "(%s)\n", gnutls_strerror(rv));
        return -1;
    }
    return 0;
}
#endif

int
main(int argc, char **argv)
{
    int opt, use_gnutls = 0, fd, fd2;
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
#ifdef LATEFREE_GNUTLS
    gnutls_certificate_credentials_t cred = NULL;
    gnutls_session_t session = NULL;
#endif

    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    while ((opt = getopt(argc, argv, "g")) != -1) {
        switch (opt) {
        case 'g': use_gnutls = 1; break;
        default: return 2;
        }
    }
    if (argc - optind != 3) {
        fprintf(stderr, "usage: latefree [-g] HOST PORT PORT2\n");
        return 2;
    }
#ifndef LATEFREE_GNUTLS
    if (use_gnutls) {
        fprintf(stderr, "latefree: built without GnuTLS\n");
        return 2;
    }
#endif
    if ((fd = dial(argv[optind], argv[optind + 1])) < 0) {
        perror("latefree: connect");
        return 4;
    }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        return 4;
#ifdef LATEFREE_GNUTLS
    if (use_gnutls ? begin_gnutls(fd, &cred, &session) < 0
                   : begin_openssl(fd, &ctx, &ssl) < 0)
        return 4;
#else
    if (begin_openssl(fd, &ctx, &ssl) < 0)
        return 4;
#endif
    printf("latefree: handshake begun on fd %d\n", fd);
    close(fd);
    if ((fd2 = dial(argv[optind], argv[optind + 2])) < 0) {
        perror("latefree: connect 2");
        return 4;
    }
    if (fd2 != fd) {
        printf("latefree: the new connection got fd %d, not %d\n", fd2, fd);
        return 4;
    }
    if (echo_ok(fd2) < 0)
        return 4;
    printf("latefree: new connection on fd %d works; freeing the old TLS "
           "object\n", fd2);
#ifdef LATEFREE_GNUTLS
    if (use_gnutls) {
        gnutls_deinit(session);
        gnutls_certificate_free_credentials(cred);
    }
#endif
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    if (echo_ok(fd2) < 0)
        return 3;
    printf("latefree: new connection on fd %d intact\n", fd2);
    close(fd2);
    return 0;
}
