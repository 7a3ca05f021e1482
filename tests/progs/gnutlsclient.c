/*
 * A GnuTLS client for the action = enforce tests, lax in the ways real
 * programs are: by default it verifies nothing.  It connects to HOST PORT,
 * sends MSG, reads as many bytes back and prints them with the version.
 *
 *   -n SNI        send this server name
 *   -T FILE       trust the CAs in FILE
 *   -H NAME       let GnuTLS verify the peer during the handshake
 *                 (gnutls_session_set_verify_cert) against NAME
 *   -t            gnutls_certificate_set_verify_flags with
 *                 GNUTLS_VERIFY_DISABLE_TIME_CHECKS (expired is fine)
 *   -i            call gnutls_certificate_verify_peers3 itself after the
 *                 handshake, print the verdict and ignore it
 *   -P PRIORITY   gnutls_priority_set_direct(PRIORITY) instead of the
 *                 default priorities
 *   -C CERT -K KEY  offer this client certificate when asked
 *   -R            after the echo, keep reading until a line "bye" or an
 *                 error; a server's renegotiation request
 *                 (GNUTLS_E_REHANDSHAKE) is answered with gnutls_handshake
 *   -E DATA       init with GNUTLS_ENABLE_EARLY_DATA and try
 *                 gnutls_record_send_early_data(DATA) before the handshake
 *   -e            with -E: before gnutls_transport_set_int, not after
 *
 * Exit status: 0 done, 2 usage, 3 the handshake failed, 4 another error.
 */
#define _GNU_SOURCE
#define PROG "gnutlsclient"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "progutil.h"

int
main(int argc, char **argv)
{
    const char *sni = NULL, *trust = NULL, *verify_name = NULL;
    const char *priority = NULL, *msg, *cert = NULL, *key = NULL;
    const char *early = NULL;
    int opt, no_time = 0, self_check = 0, keep_reading = 0, fd, rv;
    int early_first = 0;
    gnutls_certificate_credentials_t cred;
    gnutls_session_t session;
    char buf[4096];
    size_t len, got = 0;

    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    while ((opt = getopt(argc, argv, "n:T:H:tiP:C:K:RE:e")) != -1) {
        switch (opt) {
        case 'n': sni = optarg; break;
        case 'T': trust = optarg; break;
        case 'H': verify_name = optarg; break;
        case 't': no_time = 1; break;
        case 'i': self_check = 1; break;
        case 'P': priority = optarg; break;
        case 'C': cert = optarg; break;
        case 'K': key = optarg; break;
        case 'R': keep_reading = 1; break;
        case 'E': early = optarg; break;
        case 'e': early_first = 1; break;
        default: return 2;
        }
    }
    if (argc - optind != 3) {
        fprintf(stderr, "usage: gnutlsclient [-n SNI] [-T FILE] [-H NAME] "
                "[-t] [-i] [-P PRIORITY] [-C CERT -K KEY] [-R] [-E DATA [-e]] "
                "HOST PORT MSG\n");
        return 2;
    }
    msg = argv[optind + 2];
    len = strlen(msg);
    if (len >= sizeof(buf))
        return 2;
    if (gnutls_certificate_allocate_credentials(&cred) < 0)
        return 4;
    if (trust != NULL &&
        gnutls_certificate_set_x509_trust_file(cred, trust,
                                               GNUTLS_X509_FMT_PEM) <= 0) {
        fprintf(stderr, "gnutlsclient: cannot load %s\n", trust);
        return 4;
    }
    if (cert != NULL &&
        gnutls_certificate_set_x509_key_file(cred, cert,
                                             key != NULL ? key : cert,
                                             GNUTLS_X509_FMT_PEM) < 0) {
        fprintf(stderr, "gnutlsclient: cannot load %s\n", cert);
        return 4;
    }
    if (no_time)
        gnutls_certificate_set_verify_flags(
            cred, GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
                      GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS);
    if ((fd = dial(argv[optind], argv[optind + 1])) < 0) {
        perror("gnutlsclient: connect");
        return 4;
    }
    if (gnutls_init(&session, GNUTLS_CLIENT |
                                  (early != NULL ? GNUTLS_ENABLE_EARLY_DATA
                                                 : 0)) < 0 ||
        gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred) < 0)
        return 4;
    rv = priority != NULL ? gnutls_priority_set_direct(session, priority, NULL)
                          : gnutls_set_default_priority(session);
    if (rv < 0) {
        fprintf(stderr, "gnutlsclient: bad priority: %s\n",
                gnutls_strerror(rv));
        return 2;
    }
    if (sni != NULL)
        gnutls_server_name_set(session, GNUTLS_NAME_DNS, sni, strlen(sni));
    if (verify_name != NULL)
        gnutls_session_set_verify_cert(session, verify_name, 0);
    if (early != NULL && early_first)
        printf("gnutlsclient: gnutls_record_send_early_data: %zd\n",
               gnutls_record_send_early_data(session, early, strlen(early)));
    gnutls_transport_set_int(session, fd);
    if (early != NULL && !early_first)
        printf("gnutlsclient: gnutls_record_send_early_data: %zd\n",
               gnutls_record_send_early_data(session, early, strlen(early)));
    do {
        rv = gnutls_handshake(session);
    } while (rv < 0 && !gnutls_error_is_fatal(rv));
    if (rv < 0) {
        printf("gnutlsclient: handshake failed: %s\n", gnutls_strerror(rv));
        /* a careless program writes anyway */
        printf("gnutlsclient: gnutls_record_send after the failure: %zd\n",
               gnutls_record_send(session, msg, len));
        return 3;
    }
    if (self_check) {
        unsigned status = 0;
        gnutls_datum_t out = {0};
        rv = gnutls_certificate_verify_peers3(session, "localhost", &status);
        if (rv == 0 &&
            gnutls_certificate_verification_status_print(
                status, GNUTLS_CRT_X509, &out, 0) == 0) {
            printf("gnutlsclient: own check (ignored): %s\n", out.data);
            gnutls_free(out.data);
        }
    }
    if (gnutls_record_send(session, msg, len) != (ssize_t)len) {
        printf("gnutlsclient: send failed\n");
        return 4;
    }
    while (got < len) {
        ssize_t n = gnutls_record_recv(session, buf + got, len - got);
        if (n < 0 && !gnutls_error_is_fatal((int)n))
            continue;   /* e.g. a TLS 1.3 session ticket */
        if (n <= 0) {
            if (n < 0)
                printf("gnutlsclient: receive failed: %s\n",
                       gnutls_strerror((int)n));
            break;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    printf("gnutlsclient: %s got %s\n",
           gnutls_protocol_get_name(gnutls_protocol_get_version(session)),
           buf);
    if (keep_reading) {
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        for (;;) {
            ssize_t n = gnutls_record_recv(session, buf, sizeof(buf) - 1);
            if (n == GNUTLS_E_REHANDSHAKE) {
                rv = gnutls_handshake(session);
                printf("gnutlsclient: renegotiation: %s\n",
                       rv == 0 ? "done" : gnutls_strerror(rv));
                if (rv < 0 && gnutls_error_is_fatal(rv))
                    return 3;
                continue;
            }
            if (n < 0 && !gnutls_error_is_fatal((int)n))
                continue;
            if (n <= 0) {
                printf("gnutlsclient: after the echo: %s\n",
                       n == 0 ? "closed" : gnutls_strerror((int)n));
                return 3;
            }
            buf[n] = '\0';
            if (strstr(buf, "bye") != NULL) {
                printf("gnutlsclient: after the echo: got bye\n");
                break;
            }
        }
    }
    gnutls_bye(session, GNUTLS_SHUT_WR);
    gnutls_deinit(session);
    gnutls_certificate_free_credentials(cred);
    close(fd);
    return got == len ? 0 : 4;
}
