/*
 * Fuzz target: a malicious TLS server against the connection engine
 * (src/conn.c, with src/context.c's client context and src/verify.c's
 * checks).  The engine runs on one end of a socketpair as it runs on a
 * real socket; the core's connect() is replaced (tlsshim_sys) so that TCP
 * is "up" at once, and its poll/recv/send first let the fake peer on the
 * other end move.  Everything runs in one thread, deterministically: when
 * the engine would wait for a peer that has nothing more to say, the peer
 * hangs up, so nothing blocks.
 *
 * The first input byte chooses:
 *   bits 0-1  0: the server's whole flight is the input's bytes, verbatim
 *             (a fuzzed ServerHello and what follows);
 *             1, 3: a real handshake, then a script (below);
 *             2: a real handshake whose server bytes are mutated at
 *             positions the input names (count, then offset16 + xor per
 *             mutation), then the script: with bit 2 (TLS 1.2) this
 *             reaches the certificate, key exchange and verification;
 *   bit 2     TLS 1.2 at most (renegotiation, plaintext handshake);
 *   bit 3     the program's socket is non-blocking.
 * Script: one op byte (op % 12) and its operands:
 *   0 server SSL_write(LEN bytes)   1 server raw bytes (LEN bytes)
 *   2 server key update (TLS 1.3)   3 renegotiate (1.2) / new ticket (1.3)
 *   4 server close_notify           5 server TCP FIN
 *   6 read(LEN * 8 + 1, FLAGS)      7 write(LEN * 8 + 1)
 *   8 poll(WANT)                    9 shutdown(HOW)
 *   10 FIONREAD and pending         11 set non-blocking (ON)
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conn.h"
#include "context.h"
#include "fdtable.h"
#include "fuzz.h"
#include "log.h"
#include "policy.h"
#include "sys.h"

#define MAX_MUTATIONS 32
#define PEER_PORT13 4433
#define PEER_PORT12 4434

struct mutation {
    size_t offset;
    unsigned char xor_mask;
};

/* The fake peer: one per input. */
static struct {
    int fd;                  /* its end of the socketpair; -1 when gone */
    int engine_fd;           /* the engine's end */
    SSL *ssl;                /* NULL in raw mode */
    BIO *wbio;               /* what the server SSL writes, before mutation */
    int hs_done, hs_failed;
    int raw_pending;         /* raw mode: the flight waits for the hello */
    const unsigned char *raw;
    size_t raw_len;
    unsigned char out[1 << 16];
    size_t out_len;          /* queued for the socket */
    size_t stream_off;       /* bytes of server output so far */
    struct mutation mut[MAX_MUTATIONS];
    int nmut;
} peer = { .fd = -1, .engine_fd = -1 };

static SSL_CTX *server_ctx;
static struct policy *policy;
static char ca_path[64] = "";

static int (*libc_poll)(struct pollfd *, nfds_t, int);
static ssize_t (*libc_recv)(int, void *, size_t, int);
static ssize_t (*libc_send)(int, const void *, size_t, int);

static void
die(const char *what)
{
    fprintf(stderr, "fuzz_peer: %s\n", what);
    ERR_print_errors_fp(stderr);
    abort();
}

/* --- a CA and a server certificate, made once -------------------------- */

static X509 *
make_cert(EVP_PKEY *key, EVP_PKEY *signer, X509 *issuer, const char *cn,
          int ca)
{
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    if (x == NULL)
        die("X509_new");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer)
                                   : X509_get_subject_name(x));
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                              ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage,
                              ca ? "critical,keyCertSign,cRLSign"
                                 : "critical,digitalSignature");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (!ca) {
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
                                  "DNS:fuzz.test,IP:127.0.0.1");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (X509_sign(x, signer, EVP_sha256()) == 0)
        die("X509_sign");
    return x;
}

static void
make_pki(void)
{
    EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *key = EVP_EC_gen("P-256");
    X509 *ca, *leaf;
    FILE *f = NULL;
    int fd;

    if (ca_key == NULL || key == NULL)
        die("EVP_EC_gen");
    ca = make_cert(ca_key, ca_key, NULL, "tlsshim fuzz CA", 1);
    leaf = make_cert(key, ca_key, ca, "fuzz.test", 0);

    snprintf(ca_path, sizeof(ca_path), "/tmp/tlsshim-fuzz-ca-XXXXXX");
    if ((fd = mkstemp(ca_path)) < 0)
        die("mkstemp");
    if ((f = fdopen(fd, "w")) == NULL)
        die("fdopen");
    PEM_write_X509(f, ca);
    fclose(f);

    if ((server_ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
        SSL_CTX_use_certificate(server_ctx, leaf) != 1 ||
        SSL_CTX_use_PrivateKey(server_ctx, key) != 1)
        die("server context");
    SSL_CTX_set_min_proto_version(server_ctx, TLS1_2_VERSION);
    /* Renegotiation on request of the script. */
    SSL_CTX_clear_options(server_ctx, SSL_OP_NO_RENEGOTIATION);
    X509_free(ca);
    X509_free(leaf);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(key);
}

static void
remove_ca(void)
{
    if (ca_path[0] != '\0')
        unlink(ca_path);
}

/* --- the peer ------------------------------------------------------------ */

static void
peer_hangup(void)
{
    if (peer.fd >= 0) {
        close(peer.fd);
        peer.fd = -1;
    }
}

/* Queue server output, applying the mutations by stream offset. */
static void
peer_queue(const unsigned char *p, size_t n, int mutate)
{
    if (n > sizeof(peer.out) - peer.out_len)
        n = sizeof(peer.out) - peer.out_len;
    if (n == 0)
        return;   /* p may be NULL then, which memcpy may not get */
    memcpy(peer.out + peer.out_len, p, n);
    if (mutate)
        for (int i = 0; i < peer.nmut; i++)
            if (peer.mut[i].offset >= peer.stream_off &&
                peer.mut[i].offset < peer.stream_off + n)
                peer.out[peer.out_len + peer.mut[i].offset -
                         peer.stream_off] ^= peer.mut[i].xor_mask;
    peer.out_len += n;
    peer.stream_off += n;
}

static void
peer_flush(void)
{
    unsigned char buf[4096];
    int n;

    if (peer.wbio != NULL)
        while ((n = BIO_read(peer.wbio, buf, sizeof(buf))) > 0)
            peer_queue(buf, (size_t)n, 1);
    while (peer.fd >= 0 && peer.out_len > 0) {
        ssize_t w = libc_send(peer.fd, peer.out, peer.out_len,
                              MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w <= 0)
            break;
        memmove(peer.out, peer.out + w, peer.out_len - (size_t)w);
        peer.out_len -= (size_t)w;
    }
}

/* Let the server do what it can now: read what the engine sent, answer. */
static void
peer_pump(void)
{
    unsigned char buf[4096];

    if (peer.fd < 0)
        return;
    if (peer.ssl == NULL) {
        /* Raw mode: swallow the ClientHello, then send the flight. */
        while (libc_recv(peer.fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
            if (peer.raw_pending) {
                peer_queue(peer.raw, peer.raw_len, 0);
                peer.raw_pending = 0;
            }
        }
        peer_flush();
        return;
    }
    if (!peer.hs_failed) {
        ERR_clear_error();
        if (!peer.hs_done) {
            int r = SSL_do_handshake(peer.ssl);
            if (r == 1) {
                peer.hs_done = 1;
            } else {
                int e = SSL_get_error(peer.ssl, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    peer.hs_failed = 1;
            }
        }
        if (peer.hs_done) {
            int r;
            while ((r = SSL_read(peer.ssl, buf, sizeof(buf))) > 0)
                ;
            int e = SSL_get_error(peer.ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE &&
                e != SSL_ERROR_ZERO_RETURN)
                peer.hs_failed = 1;   /* stop driving a broken stream */
        }
        ERR_clear_error();
    }
    peer_flush();
}

/* --- the core's system calls, with the peer moving first ----------------- */

static int
fake_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    (void)fd;
    (void)sa;
    (void)len;
    return 0;
}

static int
fake_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    int r;

    peer_pump();
    r = libc_poll(fds, n, 0);
    if (r != 0 || timeout == 0)
        return r;
    peer_pump();
    r = libc_poll(fds, n, 0);
    if (r != 0)
        return r;
    /* The engine would wait for a peer that has nothing more to say. */
    peer_hangup();
    return libc_poll(fds, n, 0);
}

static ssize_t
fake_recv(int fd, void *buf, size_t len, int flags)
{
    peer_pump();
    return libc_recv(fd, buf, len, flags);
}

static ssize_t
fake_send(int fd, const void *buf, size_t len, int flags)
{
    ssize_t r = libc_send(fd, buf, len, flags);
    int e = errno;

    peer_pump();
    errno = e;
    return r;
}

/* --- setup ------------------------------------------------------------------ */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char text[512], err[512];

    (void)argc;
    (void)argv;
    if (getenv("TLSSHIM_FUZZ_VERBOSE") == NULL)
        (void)log_configure(0, "/dev/null");
    if (context_init() != 0)
        die("context_init");
    make_pki();
    atexit(remove_ca);
    snprintf(text, sizeof(text),
             "[peer13]\nconnect = 127.0.0.1:%d\nca_file = %s\n"
             "verifycn_name = fuzz.test\nsession_cache_size = 0\n"
             "handshake_timeout = 5\n"
             "[peer12]\nconnect = 127.0.0.1:%d\nca_file = %s\n"
             "verifycn_name = fuzz.test\nsession_cache_size = 0\n"
             "handshake_timeout = 5\nmax_version = TLSv1_2\n",
             PEER_PORT13, ca_path, PEER_PORT12, ca_path);
    if ((policy = policy_parse(text, strlen(text), "fuzz.conf", err,
                               sizeof(err))) == NULL) {
        fprintf(stderr, "fuzz_peer: %s\n", err);
        abort();
    }
    libc_poll = tlsshim_sys.poll;
    libc_recv = tlsshim_sys.recv;
    libc_send = tlsshim_sys.send;
    tlsshim_sys.connect = fake_connect;
    tlsshim_sys.poll = fake_poll;
    tlsshim_sys.recv = fake_recv;
    tlsshim_sys.send = fake_send;
    return 0;
}

struct reader {
    const uint8_t *d;
    size_t n;
};

static int
take(struct reader *r, uint8_t *b)
{
    if (r->n == 0)
        return 0;
    *b = *r->d++;
    r->n--;
    return 1;
}

static size_t
take_bytes(struct reader *r, const uint8_t **p)
{
    uint8_t len;

    if (!take(r, &len))
        return 0;
    size_t n = len < r->n ? len : r->n;
    *p = r->d;
    r->d += n;
    r->n -= n;
    return n;
}

/* Drive a non-blocking connection's handshake as an event loop would. */
static void
poll_until_open(struct conn *c)
{
    for (int i = 0; i < 64; i++) {
        struct pollfd p = {.fd = peer.engine_fd, .events = 0};
        short kernel = 0, revents;
        int64_t deadline = -1;

        peer_pump();
        revents = conn_poll_check(c, POLLOUT, 0, &kernel, &deadline);
        if (revents != 0)
            return;
        p.events = kernel;
        peer_pump();
        if (libc_poll(&p, 1, 0) == 0) {
            peer_pump();
            if (libc_poll(&p, 1, 0) == 0)
                peer_hangup();
        }
        revents = conn_poll_check(c, POLLOUT, p.revents, &kernel, &deadline);
        if (revents != 0)
            return;
    }
}

static void
run_script(struct conn *c, struct reader *r, int tls12)
{
    static unsigned char buf[2048 + 8];
    const uint8_t *p = NULL;
    uint8_t op, b, b2;
    size_t n;

    while (take(r, &op)) {
        ERR_clear_error();
        switch (op % 12) {
        case 0:
            n = take_bytes(r, &p);
            if (peer.ssl != NULL && peer.hs_done && !peer.hs_failed && n > 0)
                (void)SSL_write(peer.ssl, p, (int)n);
            peer_flush();
            break;
        case 1:
            n = take_bytes(r, &p);
            peer_queue(p, n, 0);
            peer_flush();
            break;
        case 2:
            if (!take(r, &b))
                return;
            if (peer.ssl != NULL && peer.hs_done && !tls12 &&
                !peer.hs_failed) {
                (void)SSL_key_update(peer.ssl,
                                     (b & 1) ? SSL_KEY_UPDATE_REQUESTED
                                             : SSL_KEY_UPDATE_NOT_REQUESTED);
                (void)SSL_do_handshake(peer.ssl);
            }
            peer_flush();
            break;
        case 3:
            if (peer.ssl != NULL && peer.hs_done && !peer.hs_failed) {
                if (tls12)
                    (void)SSL_renegotiate(peer.ssl);
                else
                    (void)SSL_new_session_ticket(peer.ssl);
                (void)SSL_do_handshake(peer.ssl);
            }
            peer_flush();
            break;
        case 4:
            if (peer.ssl != NULL && peer.hs_done && !peer.hs_failed)
                (void)SSL_shutdown(peer.ssl);
            peer_flush();
            break;
        case 5:
            peer_flush();
            if (peer.fd >= 0)
                shutdown(peer.fd, SHUT_WR);
            break;
        case 6:
            if (!take(r, &b) || !take(r, &b2))
                return;
            n = (size_t)b * 8 + 1;
            {
                int flags = ((b2 & 1) ? MSG_PEEK : 0) |
                            ((b2 & 2) ? MSG_DONTWAIT : 0) |
                            ((b2 & 4) ? MSG_WAITALL : 0);
                ssize_t got = conn_read(c, buf, n, flags);
                if (got > (ssize_t)n)
                    die("read returned more than asked for");
            }
            break;
        case 7:
            if (!take(r, &b))
                return;
            n = (size_t)b * 8 + 1;
            memset(buf, 'w', n);
            {
                ssize_t put = conn_write(c, buf, n, 0);
                if (put > (ssize_t)n)
                    die("write took more than given");
            }
            break;
        case 8: {
            struct pollfd pf = {.fd = peer.engine_fd, .events = POLLIN};
            short kernel = 0;
            int64_t deadline = -1;
            if (!take(r, &b))
                return;
            peer_pump();
            (void)libc_poll(&pf, 1, 0);
            (void)conn_poll_check(c, (b & 1) ? POLLOUT : POLLIN,
                                  (b & 2) ? pf.revents : 0, &kernel,
                                  &deadline);
            break;
        }
        case 9:
            if (!take(r, &b))
                return;
            (void)conn_shutdown(c, (b % 3 == 0) ? SHUT_RD
                                   : (b % 3 == 1) ? SHUT_WR : SHUT_RDWR);
            break;
        case 10:
            (void)conn_pending(c);
            (void)conn_fionread(c);
            break;
        case 11:
            if (!take(r, &b))
                return;
            conn_set_nonblock(c, b & 1);
            break;
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reader r = { data, size };
    struct sockaddr_in sin;
    const struct policy_rule *rule;
    const char *matched = NULL;
    struct conn *c, *old;
    int sv[2], ok, mode, tls12, nonblock;
    uint8_t first, b;

    if (!take(&r, &first))
        return 0;
    mode = first & 3;
    tls12 = (first & 4) != 0;
    nonblock = (first & 8) != 0;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(tls12 ? PEER_PORT12 : PEER_PORT13);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rule = policy_match_connect(policy, (struct sockaddr *)&sin, "fuzz.test",
                                NULL, NULL, &matched);
    if (rule == NULL)
        die("no rule for the peer");
    if (context_client(rule, (char[256]){0}, 256) == NULL)
        die("context_client");

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    memset(&peer, 0, sizeof(peer));
    peer.fd = sv[1];
    peer.engine_fd = sv[0];
    (void)fcntl(sv[1], F_SETFL, O_NONBLOCK);
    if (nonblock)
        (void)fcntl(sv[0], F_SETFL, O_NONBLOCK);

    if (mode == 0) {
        peer.raw = r.d;
        peer.raw_len = r.n > 16384 ? 16384 : r.n;
        peer.raw_pending = 1;
        r.n = 0;
    } else {
        if (mode == 2 && take(&r, &b)) {
            for (int i = 0; i < b % (MAX_MUTATIONS + 1) && r.n >= 3; i++) {
                peer.mut[peer.nmut].offset = (size_t)r.d[0] << 8 | r.d[1];
                peer.mut[peer.nmut].xor_mask = r.d[2] ? r.d[2] : 1;
                peer.nmut++;
                r.d += 3;
                r.n -= 3;
            }
        }
        if ((peer.ssl = SSL_new(server_ctx)) == NULL)
            die("SSL_new");
        if (tls12)
            SSL_set_max_proto_version(peer.ssl, TLS1_2_VERSION);
        BIO *rbio = BIO_new_socket(sv[1], BIO_NOCLOSE);
        peer.wbio = BIO_new(BIO_s_mem());
        if (rbio == NULL || peer.wbio == NULL)
            die("BIO_new");
        BIO_up_ref(peer.wbio);   /* ours to read from after SSL_free */
        SSL_set_bio(peer.ssl, rbio, peer.wbio);
        SSL_set_accept_state(peer.ssl);
    }

    c = conn_new_client(sv[0], rule, (struct sockaddr *)&sin, sizeof(sin),
                        matched);
    if (c == NULL)
        die("conn_new_client");
    old = fdtable_exchange(sv[0], c, &ok);
    if (!ok || old != NULL)
        die("fdtable");
    int rv = conn_connect_start(c);
    if (rv == 0 || rv == -EINPROGRESS) {
        if (nonblock)
            poll_until_open(c);
        else
            (void)conn_connect_finish(c);
    }
    run_script(c, &r, tls12);

    /* close(), as the hook does it */
    if ((c = conn_get(sv[0])) != NULL) {
        conn_close_fd(c, sv[0]);
        conn_put(c);
    }
    close(sv[0]);
    peer_hangup();
    SSL_free(peer.ssl);
    BIO_free(peer.wbio);
    memset(&peer, 0, sizeof(peer));
    peer.fd = peer.engine_fd = -1;
    ERR_clear_error();
    return 0;
}
