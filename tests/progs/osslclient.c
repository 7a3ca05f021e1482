/*
 * A legacy-style OpenSSL client for the action = enforce tests: it
 * verifies nothing (SSL_VERIFY_NONE, no host name check) and, unless -n
 * gives one, sends no SNI.  It connects to HOST PORT, sends MSG, reads the
 * echo back and prints it.  -r: connect twice, offering the first
 * connection's session on the second, and print whether it was resumed.
 *
 * Exit status: 0 done, 2 usage, 3 the handshake failed (the verify
 * result is printed), 4 another error.
 */
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int
dial(const char *host, const char *port)
{
    struct addrinfo hints, *res, *ai;
    int fd = -1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* One connection; *sess in: the session to offer, out: the new one. */
static int
one(SSL_CTX *ctx, const char *host, const char *port, const char *sni,
    const char *msg, SSL_SESSION **sess)
{
    char buf[4096];
    size_t len = strlen(msg), got = 0;
    int fd = dial(host, port), n;
    SSL *ssl;

    if (fd < 0) {
        perror("osslclient: connect");
        return 4;
    }
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (sni != NULL)
        SSL_set_tlsext_host_name(ssl, sni);
    if (*sess != NULL)
        SSL_set_session(ssl, *sess);
    if (SSL_connect(ssl) != 1) {
        long vr = SSL_get_verify_result(ssl);
        printf("osslclient: SSL_connect failed: verify result %ld (%s)\n",
               vr, X509_verify_cert_error_string(vr));
        ERR_print_errors_fp(stdout);
        /* a careless program writes anyway */
        n = SSL_write(ssl, msg, (int)len);
        printf("osslclient: SSL_write after the failure: %d\n", n);
        return 3;
    }
    if (SSL_write(ssl, msg, (int)len) != (int)len) {
        printf("osslclient: SSL_write failed\n");
        return 4;
    }
    while (got < len && (n = SSL_read(ssl, buf + got,
                                      (int)(sizeof(buf) - 1 - got))) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    printf("osslclient: %s got %s resumed=%s verify=%ld\n",
           SSL_get_version(ssl), buf, SSL_session_reused(ssl) ? "yes" : "no",
           SSL_get_verify_result(ssl));
    SSL_SESSION_free(*sess);
    *sess = SSL_get1_session(ssl);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
    return got == len ? 0 : 4;
}

int
main(int argc, char **argv)
{
    const char *sni = NULL;
    int opt, twice = 0, rv;
    SSL_SESSION *sess = NULL;
    SSL_CTX *ctx;

    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    while ((opt = getopt(argc, argv, "n:r")) != -1) {
        if (opt == 'n')
            sni = optarg;
        else if (opt == 'r')
            twice = 1;
        else
            return 2;
    }
    if (argc - optind != 3) {
        fprintf(stderr, "usage: osslclient [-n SNI] [-r] HOST PORT MSG\n");
        return 2;
    }
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* TLS 1.2: its sessions exist as soon as the handshake ends */
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
    rv = one(ctx, argv[optind], argv[optind + 1], sni, argv[optind + 2],
             &sess);
    if (rv == 0 && twice)
        rv = one(ctx, argv[optind], argv[optind + 1], sni, argv[optind + 2],
                 &sess);
    SSL_SESSION_free(sess);
    SSL_CTX_free(ctx);
    return rv;
}
