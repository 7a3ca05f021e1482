/*
 * A legacy-style OpenSSL client for the action = enforce tests: it
 * verifies nothing (SSL_VERIFY_NONE, no host name check) and, unless -n
 * gives one, sends no SNI.  It connects to HOST PORT, sends MSG, reads the
 * echo back and prints it.  -r: connect twice, offering the first
 * connection's session on the second, and print whether it was resumed.
 *
 * Options that make it laxer still, or change its offer, each as a real
 * program might:
 *   -m VER, -M VER   lowest / highest version (tls1, tls1.1, tls1.2,
 *                    tls1.3; the highest is tls1.2 unless -M says)
 *   -c CIPHERS       SSL_CTX_set_cipher_list (e.g. DEFAULT@SECLEVEL=0)
 *   -V               SSL_VERIFY_PEER with a verify callback that accepts
 *                    every certificate
 *   -k               SSL_CTX_set_cert_verify_callback that accepts all
 *   -T FILE          trust FILE (its own store, e.g. the bad certificate)
 *   -p               X509_V_FLAG_PARTIAL_CHAIN (a trusted leaf suffices)
 *   -t               X509_V_FLAG_NO_CHECK_TIME (expired is fine)
 *   -H NAME          SSL_set1_host(NAME): the name the program checks
 *   -s               ask for an OCSP staple itself, with a status callback
 *                    that accepts any answer (or none)
 *   -C CERT -K KEY   offer this client certificate when asked
 *   -R               after the echo, keep reading (a server may ask to
 *                    renegotiate, which OpenSSL accepts by default) until
 *                    a line "bye" or an error, and say which
 *   -E DATA          try SSL_write_early_data(DATA) before SSL_connect and
 *                    print what it returned
 *
 * Exit status: 0 done, 2 usage, 3 the handshake failed (the verify
 * result is printed), 4 another error.
 */
#define _GNU_SOURCE
#define PROG "osslclient"

#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "progutil.h"

static const char *check_host;   /* -H */
static int want_staple;           /* -s */
static int keep_reading;          /* -R */
static const char *early;         /* -E */

static int
accept_all_verify(int preverify_ok, X509_STORE_CTX *x)
{
    (void)preverify_ok;
    X509_STORE_CTX_set_error(x, X509_V_OK);
    return 1;
}

static int
accept_all_chain(X509_STORE_CTX *x, void *arg)
{
    (void)arg;
    X509_STORE_CTX_set_error(x, X509_V_OK);
    return 1;
}

static int
status_any(SSL *ssl, void *arg)
{
    const unsigned char *p = NULL;
    long len = SSL_get_tlsext_status_ocsp_resp(ssl, &p);

    (void)arg;
    printf("osslclient: status callback: %s\n",
           p != NULL && len > 0 ? "a staple" : "no staple");
    return 1;
}

static int
version_of(const char *name)
{
    static const struct { const char *name; int v; } t[] = {
        {"tls1", TLS1_VERSION}, {"tls1.1", TLS1_1_VERSION},
        {"tls1.2", TLS1_2_VERSION}, {"tls1.3", TLS1_3_VERSION},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (strcmp(t[i].name, name) == 0)
            return t[i].v;
    return -1;
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
    if (check_host != NULL && !SSL_set1_host(ssl, check_host)) {
        printf("osslclient: SSL_set1_host failed\n");
        return 4;
    }
    if (want_staple)
        SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp);
    if (early != NULL) {
        size_t sent = 0;
        n = SSL_write_early_data(ssl, early, strlen(early), &sent);
        printf("osslclient: SSL_write_early_data: %d (%zu bytes)\n", n,
               sent);
        ERR_print_errors_fp(stdout);
    }
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
    printf("osslclient: %s got %s resumed=%s verify=%ld cipher=%s\n",
           SSL_get_version(ssl), buf, SSL_session_reused(ssl) ? "yes" : "no",
           SSL_get_verify_result(ssl), SSL_get_cipher_name(ssl));
    if (keep_reading) {
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        for (;;) {
            n = SSL_read(ssl, buf, (int)sizeof(buf) - 1);
            if (n <= 0) {
                printf("osslclient: after the echo: SSL_read failed (%d)\n",
                       SSL_get_error(ssl, n));
                ERR_print_errors_fp(stdout);
                return 3;
            }
            buf[n] = '\0';
            if (strstr(buf, "bye") != NULL) {
                printf("osslclient: after the echo: got bye\n");
                break;
            }
        }
    }
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
    const char *sni = NULL, *ciphers = NULL, *trust = NULL;
    const char *cert = NULL, *key = NULL;
    int opt, twice = 0, rv, minv = 0, maxv = TLS1_2_VERSION;
    int lax_verify = 0, lax_chain = 0;
    unsigned long flags = 0;
    SSL_SESSION *sess = NULL;
    SSL_CTX *ctx;

    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    while ((opt = getopt(argc, argv, "n:rm:M:c:VkT:ptH:sC:K:RE:")) != -1) {
        switch (opt) {
        case 'n': sni = optarg; break;
        case 'r': twice = 1; break;
        case 'm': minv = version_of(optarg); break;
        case 'M': maxv = version_of(optarg); break;
        case 'c': ciphers = optarg; break;
        case 'V': lax_verify = 1; break;
        case 'k': lax_chain = 1; break;
        case 'T': trust = optarg; break;
        case 'p': flags |= X509_V_FLAG_PARTIAL_CHAIN; break;
        case 't': flags |= X509_V_FLAG_NO_CHECK_TIME; break;
        case 'H': check_host = optarg; break;
        case 's': want_staple = 1; break;
        case 'C': cert = optarg; break;
        case 'K': key = optarg; break;
        case 'R': keep_reading = 1; break;
        case 'E': early = optarg; break;
        default: return 2;
        }
    }
    if (argc - optind != 3 || minv < 0 || maxv < 0) {
        fprintf(stderr, "usage: osslclient [-n SNI] [-r] [-m VER] [-M VER] "
                "[-c CIPHERS] [-V] [-k] [-T FILE] [-p] [-t] [-H NAME] [-s] "
                "[-C CERT -K KEY] [-R] [-E DATA] HOST PORT MSG\n");
        return 2;
    }
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, lax_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                       lax_verify ? accept_all_verify : NULL);
    if (lax_chain)
        SSL_CTX_set_cert_verify_callback(ctx, accept_all_chain, NULL);
    if (trust != NULL && !SSL_CTX_load_verify_locations(ctx, trust, NULL)) {
        fprintf(stderr, "osslclient: cannot load %s\n", trust);
        return 4;
    }
    if (flags != 0)
        X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), flags);
    if (cert != NULL &&
        (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, key != NULL ? key : cert,
                                     SSL_FILETYPE_PEM) != 1)) {
        fprintf(stderr, "osslclient: cannot load %s\n", cert);
        return 4;
    }
    if (want_staple)
        SSL_CTX_set_tlsext_status_cb(ctx, status_any);
    if ((ciphers != NULL && !SSL_CTX_set_cipher_list(ctx, ciphers)) ||
        (minv != 0 && !SSL_CTX_set_min_proto_version(ctx, minv))) {
        fprintf(stderr, "osslclient: bad -c or -m\n");
        return 2;
    }
    /* TLS 1.2 unless -M: its sessions exist as soon as the handshake ends */
    SSL_CTX_set_max_proto_version(ctx, maxv);
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
