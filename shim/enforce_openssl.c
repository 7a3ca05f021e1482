/*
 * action = enforce for programs that use the system OpenSSL (libssl.so.3).
 *
 * Every SSL_CTX gets our certificate verify callback when it is made
 * (SSL_CTX_new, SSL_CTX_new_ex); a program's own one
 * (SSL_CTX_set_cert_verify_callback) is kept and called in its place for
 * every object that is not bound.  The calls that drive a handshake
 * (SSL_connect, SSL_do_handshake, SSL_read/_ex, SSL_peek/_ex,
 * SSL_write/_ex) note their object as the thread's current one, so that
 * libtlsshim.so can bind it when its ClientHello leaves on an enforce-rule
 * socket.  A bound object verifies its peer (SSL_VERIFY_PEER, whatever the
 * program set) with the rule's checks only: the program's store,
 * parameters, callbacks and SSL_VERIFY_NONE cannot turn a failure into a
 * success.  A failure fails the program's handshake as OpenSSL does:
 * SSL_connect returns -1, SSL_get_verify_result() gives the X509_V_ERR_*
 * reason.  A program that asked for verification itself also gets it,
 * after ours.  A resumed session is checked when it is offered.
 */
#include "config.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "enforce_module.h"
#include "util.h"

#define HOOK TLSSHIM_EXPORT

typedef int (*app_verify_fn)(X509_STORE_CTX *, void *);

static struct {
    SSL_CTX *(*ctx_new)(const SSL_METHOD *);
    SSL_CTX *(*ctx_new_ex)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *);
    void (*ctx_set_cert_verify_callback)(SSL_CTX *, app_verify_fn, void *);
    void (*set_verify)(SSL *, int, SSL_verify_cb);
    int (*connect)(SSL *);
    int (*do_handshake)(SSL *);
    int (*read)(SSL *, void *, int);
    int (*read_ex)(SSL *, void *, size_t, size_t *);
    int (*peek)(SSL *, void *, int);
    int (*peek_ex)(SSL *, void *, size_t, size_t *);
    int (*write)(SSL *, const void *, int);
    int (*write_ex)(SSL *, const void *, size_t, size_t *);
} next;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int ctx_idx = -1;   /* SSL_CTX: the program's verify callback */
static int ssl_idx = -1;   /* SSL: its binding */

/* The program's SSL_CTX_set_cert_verify_callback. */
struct app_verify {
    app_verify_fn fn;
    void *arg;
};

/* A bound SSL object. */
struct binding {
    void *token;     /* libtlsshim.so's connection, NULL once dropped */
    int prog_mode;   /* the verify mode the program asked for */
    int verdict;     /* 0 pending, 1 established, -1 failed */
    int checked;     /* a certificate chain passed the rule's check */
    X509 *offered;   /* the leaf of the checked session offered for
                      * resumption (a reference) */
};

static void
free_app_verify(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                long argl, void *argp)
{
    struct binding *b = ptr;

    if (b != NULL)
        X509_free(b->offered);
    free(ptr);
}

static void
finish(struct binding *b)
{
    if (b->token == NULL || enforce_core == NULL)
        return;
    if (b->verdict == 0)
        enforce_core->failed(b->token, "the program's OpenSSL handshake "
                             "did not complete");
    enforce_core->release(b->token);
    b->token = NULL;
}

static void
free_binding(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
             void *argp)
{
    if (ptr != NULL) {
        finish(ptr);
        free(ptr);
    }
}

#define NEXT(field, name) (*(void **)&next.field = dlsym(RTLD_NEXT, name))

static void
resolve(void)
{
    NEXT(ctx_new, "SSL_CTX_new");
    NEXT(ctx_new_ex, "SSL_CTX_new_ex");
    NEXT(ctx_set_cert_verify_callback, "SSL_CTX_set_cert_verify_callback");
    NEXT(set_verify, "SSL_set_verify");
    NEXT(connect, "SSL_connect");
    NEXT(do_handshake, "SSL_do_handshake");
    NEXT(read, "SSL_read");
    NEXT(read_ex, "SSL_read_ex");
    NEXT(peek, "SSL_peek");
    NEXT(peek_ex, "SSL_peek_ex");
    NEXT(write, "SSL_write");
    NEXT(write_ex, "SSL_write_ex");
    ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_app_verify);
    ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_binding);
}

static void
init(void)
{
    pthread_once(&once, resolve);
}

static struct binding *
binding_of(const SSL *ssl)
{
    return ssl != NULL && ssl_idx >= 0 ? SSL_get_ex_data(ssl, ssl_idx)
                                       : NULL;
}

/* What the program's context would have done without us. */
static int
program_verify(X509_STORE_CTX *x, SSL *ssl)
{
    struct app_verify *av = NULL;

    if (ssl != NULL && ctx_idx >= 0)
        av = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_idx);
    if (av != NULL && av->fn != NULL)
        return av->fn(x, av->arg);
    return X509_verify_cert(x);
}

/* What the handshake has negotiated so far (or did). */
static void
describe(SSL *ssl, struct tlsshim_enforce_peer *p)
{
    const SSL_CIPHER *c = SSL_get_pending_cipher(ssl);

    if (c == NULL)
        c = SSL_get_current_cipher(ssl);
    memset(p, 0, sizeof(*p));
    p->library = "OpenSSL";
    p->version = SSL_version(ssl);
    p->version_name = SSL_get_version(ssl);
    if (c != NULL) {
        p->suite = SSL_CIPHER_get_protocol_id(c);
        p->cipher_name = SSL_CIPHER_get_name(c);
        p->kx_rsa = SSL_CIPHER_get_kx_nid(c) == NID_kx_rsa;
    }
    p->resumed = SSL_session_reused(ssl);
}

/* Installed on every context: the rule's check for a bound object, the
 * program's own (or OpenSSL's) for everything else. */
static int
dispatch_verify(X509_STORE_CTX *x, void *unused)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(
        x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct binding *b = binding_of(ssl);
    struct tlsshim_enforce_peer p;
    int err = X509_V_OK, rv;

    if (b == NULL || b->token == NULL || b->verdict != 0 ||
        enforce_core == NULL)
        return program_verify(x, ssl);
    describe(ssl, &p);
    p.leaf = X509_STORE_CTX_get0_cert(x);
    p.chain = X509_STORE_CTX_get0_untrusted(x);
    if (p.leaf == NULL) {   /* a raw public key: nothing the rule can check */
        b->verdict = -1;
        enforce_core->failed(b->token, "the server sent no certificate");
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    if (enforce_core->check(b->token, &p, &err) < 0) {
        b->verdict = -1;
        X509_STORE_CTX_set_error(x, err);
        return 0;
    }
    b->checked = 1;
    /* the program's own verification, if it asked for one, on top */
    if (b->prog_mode & SSL_VERIFY_PEER) {
        rv = program_verify(x, ssl);
        if (rv <= 0) {
            b->verdict = -1;
            enforce_core->failed(b->token, "the program's own certificate "
                                 "verification refused the peer");
            return rv;
        }
    }
    X509_STORE_CTX_set_error(x, X509_V_OK);
    return 1;
}

/* After a hooked call: report a handshake that just ended. */
/* After a handshake-driving call: what it returns to the program (a
 * handshake that finished without a checked certificate fails there, as
 * a verification failure). */
static int
after_call(SSL *ssl, int rv)
{
    struct binding *b = binding_of(ssl);
    struct tlsshim_enforce_peer p;

    if (b == NULL || b->token == NULL || b->verdict != 0)
        return rv;
    if (SSL_is_init_finished(ssl)) {
        describe(ssl, &p);
        p.leaf = SSL_get0_peer_certificate(ssl);
        /* Established only on a certificate the rule checked: in this
         * handshake, or the one of the offered session it resumed.  An
         * external PSK (TLS 1.3) or anything else without one fails. */
        if (p.leaf == NULL ||
            !(b->checked ||
              (SSL_session_reused(ssl) && b->offered != NULL &&
               X509_cmp(b->offered, p.leaf) == 0))) {
            b->verdict = -1;
            enforce_core->failed(b->token, p.leaf == NULL
                                 ? "the server authenticated with no "
                                   "certificate (a pre-shared key?), which "
                                   "the rule cannot check"
                                 : "the server's certificate was not "
                                   "checked");
            SSL_set_verify_result(ssl, X509_V_ERR_APPLICATION_VERIFICATION);
            ERR_raise(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED);
            return -1;
        }
        b->verdict = 1;
        enforce_core->established(b->token, &p);
        return rv;
    }
    if (rv <= 0) {
        int e = SSL_get_error(ssl, rv);
        if (e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL ||
            e == SSL_ERROR_ZERO_RETURN) {
            char why[200];
            unsigned long code = ERR_peek_error();
            if (code != 0) {
                snprintf(why, sizeof(why), "the program's OpenSSL handshake "
                         "failed: %s", ERR_reason_error_string(code));
            } else {
                snprintf(why, sizeof(why), "the program's OpenSSL handshake "
                         "failed");
            }
            b->verdict = -1;
            enforce_core->failed(b->token, why);
        }
    }
    return rv;
}

/* A session offered for resumption skips the certificate: check the one
 * it was made with, before the server can accept it. */
static int
check_offered_session(SSL *ssl, struct binding *b)
{
    SSL_SESSION *sess = SSL_get_session(ssl);
    struct tlsshim_enforce_peer p;
    int err;

    if (sess == NULL || !SSL_SESSION_is_resumable(sess))
        return 0;
    const SSL_CIPHER *c = SSL_SESSION_get0_cipher(sess);
    memset(&p, 0, sizeof(p));
    p.library = "OpenSSL";
    p.version = SSL_SESSION_get_protocol_version(sess);
    if (c != NULL) {
        p.suite = SSL_CIPHER_get_protocol_id(c);
        p.cipher_name = SSL_CIPHER_get_name(c);
        p.kx_rsa = SSL_CIPHER_get_kx_nid(c) == NID_kx_rsa;
    }
    p.leaf = SSL_SESSION_get0_peer(sess);
    p.chain = SSL_get_peer_cert_chain(ssl);
    if (p.leaf == NULL) {
        enforce_core->failed(b->token, "the program offers a session "
                             "without a certificate for resumption");
        return -1;
    }
    if (enforce_core->check(b->token, &p, &err) < 0)
        return -1;
    if (X509_up_ref(p.leaf))
        b->offered = p.leaf;
    return 0;
}

int
enforce_openssl_claim(void *obj, const unsigned char random[32], void *token)
{
    SSL *ssl = obj;
    unsigned char mine[32];
    struct binding *b;

    init();
    if (ssl_idx < 0 || SSL_is_server(ssl) ||
        SSL_get_client_random(ssl, mine, sizeof(mine)) != sizeof(mine) ||
        memcmp(mine, random, sizeof(mine)) != 0)
        return ENFORCE_NOT_MINE;
    if (binding_of(ssl) != NULL)   /* a second hello: not ours to pass */
        return 0;
    if ((b = calloc(1, sizeof(*b))) == NULL)
        return 0;
    b->prog_mode = SSL_get_verify_mode(ssl);
    if (!SSL_set_ex_data(ssl, ssl_idx, b)) {
        free(b);
        return 0;
    }
    b->token = token;
    if (check_offered_session(ssl, b) < 0) {
        b->verdict = -1;
        b->token = NULL;   /* the caller keeps its reference */
        return -1;
    }
    next.set_verify(ssl, SSL_VERIFY_PEER, SSL_get_verify_callback(ssl));
    return 1;
}

/* --- the hooks ------------------------------------------------------------ */

static void
install(SSL_CTX *ctx)
{
    if (ctx != NULL && next.ctx_set_cert_verify_callback != NULL)
        next.ctx_set_cert_verify_callback(ctx, dispatch_verify, NULL);
}

HOOK SSL_CTX *
SSL_CTX_new_ex(OSSL_LIB_CTX *libctx, const char *propq,
               const SSL_METHOD *meth)
{
    init();
    if (next.ctx_new_ex == NULL)
        return NULL;
    SSL_CTX *ctx = next.ctx_new_ex(libctx, propq, meth);
    install(ctx);
    return ctx;
}

HOOK SSL_CTX *
SSL_CTX_new(const SSL_METHOD *meth)
{
    init();
    if (next.ctx_new == NULL)
        return NULL;
    SSL_CTX *ctx = next.ctx_new(meth);
    install(ctx);
    return ctx;
}

HOOK void
SSL_CTX_set_cert_verify_callback(SSL_CTX *ctx, app_verify_fn fn, void *arg)
{
    struct app_verify *av;

    init();
    if (ctx == NULL || ctx_idx < 0 ||
        next.ctx_set_cert_verify_callback == NULL)
        return;
    av = SSL_CTX_get_ex_data(ctx, ctx_idx);
    if (av == NULL && (av = calloc(1, sizeof(*av))) != NULL &&
        !SSL_CTX_set_ex_data(ctx, ctx_idx, av)) {
        free(av);
        av = NULL;
    }
    if (av == NULL) {
        /* cannot keep it beside ours: the program's callback alone */
        next.ctx_set_cert_verify_callback(ctx, fn, arg);
        return;
    }
    av->fn = fn;
    av->arg = arg;
    next.ctx_set_cert_verify_callback(ctx, dispatch_verify, NULL);
}

HOOK void
SSL_set_verify(SSL *ssl, int mode, SSL_verify_cb cb)
{
    struct binding *b;

    init();
    if (next.set_verify == NULL)
        return;
    /* a bound object keeps verifying; the program's wish is noted */
    if ((b = binding_of(ssl)) != NULL && b->token != NULL) {
        b->prog_mode = mode;
        mode |= SSL_VERIFY_PEER;
    }
    next.set_verify(ssl, mode, cb);
}

/* The handshake-driving calls: the object is current while they run. */
#define DRIVE(call)                          \
    do {                                     \
        init();                              \
        enforce_enter(ENFORCE_OPENSSL, ssl); \
        rv = call;                           \
        enforce_leave();                     \
        rv = after_call(ssl, rv);            \
    } while (0)

HOOK int
SSL_connect(SSL *ssl)
{
    int rv;

    DRIVE(next.connect != NULL ? next.connect(ssl) : -1);
    return rv;
}

HOOK int
SSL_do_handshake(SSL *ssl)
{
    int rv;

    DRIVE(next.do_handshake != NULL ? next.do_handshake(ssl) : -1);
    return rv;
}

HOOK int
SSL_read(SSL *ssl, void *buf, int num)
{
    int rv;

    DRIVE(next.read != NULL ? next.read(ssl, buf, num) : -1);
    return rv;
}

HOOK int
SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *got)
{
    int rv;

    DRIVE(next.read_ex != NULL ? next.read_ex(ssl, buf, num, got) : 0);
    return rv;
}

HOOK int
SSL_peek(SSL *ssl, void *buf, int num)
{
    int rv;

    DRIVE(next.peek != NULL ? next.peek(ssl, buf, num) : -1);
    return rv;
}

HOOK int
SSL_peek_ex(SSL *ssl, void *buf, size_t num, size_t *got)
{
    int rv;

    DRIVE(next.peek_ex != NULL ? next.peek_ex(ssl, buf, num, got) : 0);
    return rv;
}

HOOK int
SSL_write(SSL *ssl, const void *buf, int num)
{
    int rv;

    DRIVE(next.write != NULL ? next.write(ssl, buf, num) : -1);
    return rv;
}

HOOK int
SSL_write_ex(SSL *ssl, const void *buf, size_t num, size_t *written)
{
    int rv;

    DRIVE(next.write_ex != NULL ? next.write_ex(ssl, buf, num, written)
                                : 0);
    return rv;
}
