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
 *
 * Before the hello is made (the first hooked call on an object whose
 * handshake has not begun, when the object holds the socket): if
 * libtlsshim.so says the socket is an enforce-rule connection, the
 * object's versions, cipher suites and security level are narrowed to
 * what the rule allows and an OCSP staple is requested.  OCSP (the staple,
 * must_staple, resolve) is checked in our status callback, installed on
 * the object's context beside the program's own, or at the end of the
 * certificate check when no staple was asked for.
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
typedef int (*status_fn)(SSL *, void *);

static struct {
    SSL_CTX *(*ctx_new)(const SSL_METHOD *);
    SSL_CTX *(*ctx_new_ex)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *);
    void (*ctx_set_cert_verify_callback)(SSL_CTX *, app_verify_fn, void *);
    long (*ctx_callback_ctrl)(SSL_CTX *, int, void (*)(void));
    void (*set_verify)(SSL *, int, SSL_verify_cb);
    int (*connect)(SSL *);
    int (*do_handshake)(SSL *);
    int (*read)(SSL *, void *, int);
    int (*read_ex)(SSL *, void *, size_t, size_t *);
    int (*peek)(SSL *, void *, int);
    int (*peek_ex)(SSL *, void *, size_t, size_t *);
    int (*write)(SSL *, const void *, int);
    int (*write_ex)(SSL *, const void *, size_t, size_t *);
    int (*write_early_data)(SSL *, const void *, size_t, size_t *);
    uint64_t (*clear_options)(SSL *, uint64_t);
    void (*set_info_callback)(SSL *, void (*)(const SSL *, int, int));
} next;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int ctx_idx = -1;   /* SSL_CTX: the program's verify callback */
static int ssl_idx = -1;   /* SSL: its binding */

/* The program's callbacks on a context.  guarded by ctx_cb_lock */
struct app_verify {
    app_verify_fn fn;    /* SSL_CTX_set_cert_verify_callback */
    void *arg;
    status_fn status;    /* SSL_CTX_set_tlsext_status_cb */
    int status_ours;     /* ours is installed in its place */
};
static pthread_mutex_t ctx_cb_lock = PTHREAD_MUTEX_INITIALIZER;

/* An SSL object on an enforce-rule socket: prepared before its hello
 * (token held, not bound), then bound when libtlsshim.so claims it. */
struct binding {
    void *token;     /* libtlsshim.so's connection, NULL once dropped */
    int bound;       /* its hello was claimed: the rule verifies it */
    int prog_mode;   /* the verify mode the program asked for */
    int prog_status; /* the program asked for an OCSP staple itself */
    int ocsp_in_status_cb;   /* OCSP is checked by dispatch_status */
    int verdict;     /* 0 pending, 1 established, -1 failed */
    int checked;     /* a certificate chain passed the rule's check */
    X509 *offered;   /* the leaf of the checked session offered for
                      * resumption (a reference) */
    int info_ours;   /* info_cb is the object's info callback */
    void (*prog_info)(const SSL *, int, int);  /* the program's, or NULL */
    char narrowed[200];      /* how the offer was narrowed, or "" */
};

static void
free_app_verify(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                long argl, void *argp)
{
    free(ptr);
}

static void
finish(struct binding *b)
{
    if (b->token == NULL || enforce_core == NULL)
        return;
    if (b->verdict == 0 && b->bound)
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
        struct binding *b = ptr;
        finish(b);
        X509_free(b->offered);
        free(b);
    }
}

#define NEXT(field, name) (*(void **)&next.field = dlsym(RTLD_NEXT, name))

static void
resolve(void)
{
    NEXT(ctx_new, "SSL_CTX_new");
    NEXT(ctx_new_ex, "SSL_CTX_new_ex");
    NEXT(ctx_set_cert_verify_callback, "SSL_CTX_set_cert_verify_callback");
    NEXT(ctx_callback_ctrl, "SSL_CTX_callback_ctrl");
    NEXT(set_verify, "SSL_set_verify");
    NEXT(connect, "SSL_connect");
    NEXT(do_handshake, "SSL_do_handshake");
    NEXT(read, "SSL_read");
    NEXT(read_ex, "SSL_read_ex");
    NEXT(peek, "SSL_peek");
    NEXT(peek_ex, "SSL_peek_ex");
    NEXT(write, "SSL_write");
    NEXT(write_ex, "SSL_write_ex");
    NEXT(write_early_data, "SSL_write_early_data");
    NEXT(clear_options, "SSL_clear_options");
    NEXT(set_info_callback, "SSL_set_info_callback");
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

    if (b != NULL && b->bound && b->token != NULL && b->verdict != 0 &&
        enforce_core != NULL) {
        /* a certificate after the handshake ended (a renegotiation the
         * program let through): the rule's check again, or it fails */
        describe(ssl, &p);
        p.leaf = X509_STORE_CTX_get0_cert(x);
        p.chain = X509_STORE_CTX_get0_untrusted(x);
        if (b->verdict < 0 || p.leaf == NULL ||
            enforce_core->check(b->token, &p, &err) < 0) {
            enforce_core->failed(b->token, "a renegotiation presented a "
                                 "certificate the rule refuses");
            X509_STORE_CTX_set_error(x, err != X509_V_OK ? err
                                     : X509_V_ERR_APPLICATION_VERIFICATION);
            return 0;
        }
        X509_STORE_CTX_set_error(x, X509_V_OK);
        return 1;
    }
    if (b == NULL || !b->bound || b->token == NULL || b->verdict != 0 ||
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
    /* no staple is coming (none asked for): OCSP now */
    if (!b->ocsp_in_status_cb &&
        enforce_core->ocsp(b->token, "OpenSSL", NULL, 0, &err) < 0) {
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

/* After a hooked call: report a handshake that just ended; returns what
 * the call returns to the program (a handshake that finished without a
 * checked certificate fails there, as a verification failure). */
static int
after_call(SSL *ssl, int rv)
{
    struct binding *b = binding_of(ssl);
    struct tlsshim_enforce_peer p;

    if (b == NULL || b->token == NULL || b->verdict != 0)
        return rv;
    if (SSL_is_init_finished(ssl)) {
        if (!b->bound)
            return rv;
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
            char why[400];
            unsigned long code = ERR_peek_error();
            const char *reason = code != 0 ? ERR_reason_error_string(code)
                                           : NULL;
            snprintf(why, sizeof(why), "the program's OpenSSL handshake "
                     "failed%s%s%s%s%s", reason != NULL ? ": " : "",
                     reason != NULL ? reason : "",
                     b->narrowed[0] != '\0' ? " (its offer was narrowed to "
                                              : "",
                     b->narrowed, b->narrowed[0] != '\0' ? ")" : "");
            b->verdict = -1;
            enforce_core->failed(b->token, why);
        }
    }
    return rv;
}

/* A session offered for resumption skips the certificate: check the one
 * it was made with, before the server can accept it. */
static int
check_offered_session(SSL *ssl, void *token)
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
        enforce_core->failed(token, "the program offers a session "
                             "without a certificate for resumption");
        return -1;
    }
    return enforce_core->check(token, &p, &err);
}

/* The context's record of the program's callbacks (made on demand), or
 * NULL.  ctx_cb_lock held. */
static struct app_verify *
app_of(SSL_CTX *ctx)
{
    struct app_verify *av = SSL_CTX_get_ex_data(ctx, ctx_idx);

    if (av == NULL && (av = calloc(1, sizeof(*av))) != NULL &&
        !SSL_CTX_set_ex_data(ctx, ctx_idx, av)) {
        free(av);
        av = NULL;
    }
    return av;
}

/*
 * Installed as the status callback of contexts whose objects we ask a
 * staple for: the rule's OCSP for a bound object, then the program's own
 * callback if it asked for the staple itself; for every other object what
 * the program's callback (or none) would do.
 */
static int
dispatch_status(SSL *ssl, void *arg)
{
    struct binding *b = binding_of(ssl);
    struct app_verify *av;
    status_fn prog = NULL;
    int err = X509_V_OK;

    pthread_mutex_lock(&ctx_cb_lock);
    if ((av = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_idx)) != NULL)
        prog = av->status;
    pthread_mutex_unlock(&ctx_cb_lock);
    if (b != NULL && b->bound && b->token != NULL && b->verdict == 0 &&
        enforce_core != NULL) {
        /* a resumed session shows no certificate: nothing to ask about */
        if (!SSL_session_reused(ssl)) {
            const unsigned char *der = NULL;
            long len = SSL_get_tlsext_status_ocsp_resp(ssl, &der);
            if (enforce_core->ocsp(b->token, "OpenSSL", der,
                                   len > 0 ? (size_t)len : 0, &err) < 0) {
                b->verdict = -1;
                SSL_set_verify_result(ssl, err);
                return 0;
            }
        }
        return b->prog_status && prog != NULL ? prog(ssl, arg) : 1;
    }
    if (prog != NULL)
        return prog(ssl, arg);
    /* as if no callback were set */
    return SSL_is_server(ssl) ? SSL_TLSEXT_ERR_NOACK : 1;
}

/* Put dispatch_status in the place of ctx's status callback (keeping the
 * program's); 1 when it is there. */
static int
install_status(SSL_CTX *ctx)
{
    struct app_verify *av;
    int ok = 0;

    if (ctx == NULL || ctx_idx < 0 || next.ctx_callback_ctrl == NULL)
        return 0;
    pthread_mutex_lock(&ctx_cb_lock);
    if ((av = app_of(ctx)) != NULL) {
        if (!av->status_ours) {
            status_fn cur = NULL;
            SSL_CTX_get_tlsext_status_cb(ctx, &cur);
            av->status = cur;
            next.ctx_callback_ctrl(ctx, SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB,
                                   (void (*)(void))dispatch_status);
            av->status_ours = 1;
        }
        ok = 1;
    }
    pthread_mutex_unlock(&ctx_cb_lock);
    return ok;
}

static const char *
version_name(int v)
{
    switch (v) {
    case SSL3_VERSION: return "SSLv3";
    case TLS1_VERSION: return "TLSv1";
    case TLS1_1_VERSION: return "TLSv1.1";
    case TLS1_2_VERSION: return "TLSv1.2";
    case TLS1_3_VERSION: return "TLSv1.3";
    default: return "?";
    }
}

/* Append name to the ':'-separated list in buf; 0 when it does not fit. */
static int
list_add(char *buf, size_t len, const char *name)
{
    size_t used = strlen(buf), n = strlen(name);

    if (used + n + 2 > len)
        return 0;
    if (used > 0)
        buf[used++] = ':';
    memcpy(buf + used, name, n + 1);
    return 1;
}

/*
 * Narrow what ssl will offer to what rule o allows: the versions both
 * allow, the program's cipher suites the rule's lists hold (so nothing
 * the program did not offer is added), the higher security level.  When
 * nothing is left OpenSSL fails the handshake before the hello is made
 * (no protocols available).
 */
static void
narrow_offer(SSL *ssl, struct binding *b, const struct tlsshim_enforce_offer *o)
{
    STACK_OF(SSL_CIPHER) *have = SSL_get_ciphers(ssl);
    enum { LIST_MAX = 4096 };
    char *l12 = calloc(1, LIST_MAX), *l13 = calloc(1, LIST_MAX);
    char note[400];
    int pmin = SSL_get_min_proto_version(ssl);
    int pmax = SSL_get_max_proto_version(ssl);
    int lo = pmin != 0 ? pmin : SSL3_VERSION;
    int hi = pmax != 0 ? pmax : TLS1_3_VERSION;
    int nlo = lo, nhi = hi, total = 0, n12 = 0, n13 = 0, ok = 1;
    int plevel = SSL_get_security_level(ssl), level = plevel;

    if (l12 == NULL || l13 == NULL) {
        ok = 0;
        goto out;
    }
    if (o->min_version != 0 && o->min_version > nlo)
        nlo = o->min_version;
    if (o->max_version != 0 && o->max_version < nhi)
        nhi = o->max_version;
    for (int i = 0; i < sk_SSL_CIPHER_num(have); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(have, i);
        int v13 = SSL_CIPHER_get_kx_nid(c) == NID_kx_any; /* TLS 1.3 */
        total++;
        if (!enforce_core->allows_suite(b->token,
                                        SSL_CIPHER_get_protocol_id(c)))
            continue;
        if (!list_add(v13 ? l13 : l12, LIST_MAX, SSL_CIPHER_get_name(c))) {
            ok = 0;
            goto out;
        }
        if (v13)
            n13++;
        else
            n12++;
    }
    /* a version without a suite left is not offered */
    if (n13 == 0 && nhi >= TLS1_3_VERSION)
        nhi = TLS1_2_VERSION;
    if (n12 == 0 && nlo <= TLS1_2_VERSION)
        nlo = TLS1_3_VERSION;
    if (o->security_level > level)
        level = o->security_level;
    ERR_clear_error();
    if ((n12 > 0 && !SSL_set_cipher_list(ssl, l12)) ||
        (n13 > 0 && !SSL_set_ciphersuites(ssl, l13)))
        ok = 0;
    /* min above max when nothing is left: OpenSSL then refuses to begin */
    if (!SSL_set_min_proto_version(ssl, nlo) ||
        !SSL_set_max_proto_version(ssl, nhi))
        ok = 0;
    SSL_set_security_level(ssl, level);
    ERR_clear_error();
out:
    if (!ok) {
        /* fail closed: an object we could not narrow offers nothing */
        SSL_set_min_proto_version(ssl, TLS1_3_VERSION);
        SSL_set_max_proto_version(ssl, TLS1_2_VERSION);
        snprintf(b->narrowed, sizeof(b->narrowed), "nothing");
        b->verdict = -1;
        enforce_core->failed(b->token, "the program's OpenSSL offer could "
                             "not be narrowed to the rule (out of memory or "
                             "too long a cipher list)");
    } else if (nlo > nhi) {
        /* the connection fails before OpenSSL begins (it would send an
         * alert record on the socket) */
        snprintf(b->narrowed, sizeof(b->narrowed), "nothing");
        snprintf(note, sizeof(note), "the program's OpenSSL offer has "
                 "nothing rule %s allows (it allows %s-%s and %d cipher "
                 "suites, %d of them in the rule's lists)", o->rule,
                 version_name(lo), version_name(hi), total, n12 + n13);
        b->verdict = -1;
        enforce_core->failed(b->token, note);
    } else if (nlo != lo || nhi != hi || n12 + n13 != total ||
               level != plevel) {
        snprintf(b->narrowed, sizeof(b->narrowed), "%s-%s and %d of its %d "
                 "cipher suites", version_name(nlo), version_name(nhi),
                 n12 + n13, total);
        snprintf(note, sizeof(note), "the program's OpenSSL offer narrowed "
                 "to the rule: versions %s-%s (it allowed %s-%s), %d of its "
                 "%d cipher suites, security level %d (it had %d)",
                 version_name(nlo), version_name(nhi), version_name(lo),
                 version_name(hi), n12 + n13, total, level, plevel);
        enforce_core->note(b->token, note);
    }
    free(l12);
    free(l13);
}

/*
 * Before the handshake of ssl begins: if its socket is an enforce-rule
 * connection, take a reference to it, narrow the offer and ask for a
 * staple.  client: the call makes ssl a client (SSL_connect).
 */
static void
prepare(SSL *ssl, int client)
{
    struct tlsshim_enforce_offer o;
    struct binding *b;
    void *token;
    int fd;

    if (ssl == NULL || enforce_core == NULL || ssl_idx < 0 ||
        (!client && SSL_is_server(ssl)) || SSL_is_dtls(ssl) ||
        !SSL_in_before(ssl) || binding_of(ssl) != NULL)
        return;
    /* an object that does not hold the socket (a BIO of the program's
     * own) is verified when its hello is claimed, without this */
    if ((fd = SSL_get_wfd(ssl)) < 0)
        return;
    if ((token = enforce_core->prepare(fd, &o)) == NULL)
        return;
    if ((b = calloc(1, sizeof(*b))) == NULL ||
        !SSL_set_ex_data(ssl, ssl_idx, b)) {
        free(b);
        enforce_core->release(token);
        return;
    }
    b->token = token;
    b->prog_status = SSL_get_tlsext_status_type(ssl) ==
                     TLSEXT_STATUSTYPE_ocsp;
    narrow_offer(ssl, b, &o);
    if (o.request_staple &&
        SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp) &&
        install_status(SSL_get_SSL_CTX(ssl)))
        b->ocsp_in_status_cb = 1;
    ERR_clear_error();
}

/* The info callback of a bound object: a refused renegotiation is
 * logged; then the program's callback (the object's, else its
 * context's), as OpenSSL would have called it. */
static void
info_cb(const SSL *ssl, int where, int ret)
{
    struct binding *b = binding_of(ssl);
    void (*prog)(const SSL *, int, int) = NULL;

    if (b != NULL && (where & SSL_CB_WRITE_ALERT) &&
        (ret & 0xff) == SSL_AD_NO_RENEGOTIATION && b->token != NULL &&
        enforce_core != NULL && enforce_core->warn != NULL)
        enforce_core->warn(b->token, "the server asked the program's "
                           "OpenSSL to renegotiate: refused, the peer "
                           "verified by the rule stays the peer");
    if (b != NULL)
        prog = b->prog_info;
    if (prog == NULL)
        prog = SSL_CTX_get_info_callback(SSL_get_SSL_CTX(ssl));
    if (prog != NULL)
        prog(ssl, where, ret);
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
    if ((b = binding_of(ssl)) != NULL && b->bound)
        return 0;   /* a second hello: not ours to pass */
    if (b == NULL) {
        if ((b = calloc(1, sizeof(*b))) == NULL)
            return 0;
        if (!SSL_set_ex_data(ssl, ssl_idx, b)) {
            free(b);
            return 0;
        }
        b->prog_status = SSL_get_tlsext_status_type(ssl) ==
                         TLSEXT_STATUSTYPE_ocsp;
    }
    b->prog_mode = SSL_get_verify_mode(ssl);
    if (check_offered_session(ssl, token) < 0) {
        b->verdict = -1;
        return -1;   /* the caller keeps its reference */
    }
    /* its leaf passed: a resumption of that session needs no other */
    SSL_SESSION *offered = SSL_get_session(ssl);
    X509 *leaf = offered != NULL && SSL_SESSION_is_resumable(offered)
                     ? SSL_SESSION_get0_peer(offered) : NULL;
    if (leaf != NULL && X509_up_ref(leaf)) {
        X509_free(b->offered);
        b->offered = leaf;
    }
    /* the claim's reference replaces the one prepare() took */
    if (b->token != NULL)
        enforce_core->release(b->token);
    b->token = token;
    b->bound = 1;
    /* a staple asked for in the hello is checked when it arrives */
    if (SSL_get_tlsext_status_type(ssl) == TLSEXT_STATUSTYPE_ocsp &&
        install_status(SSL_get_SSL_CTX(ssl)))
        b->ocsp_in_status_cb = 1;
    next.set_verify(ssl, SSL_VERIFY_PEER, SSL_get_verify_callback(ssl));
    /* what the rule verified stays the peer: no TLS 1.2 renegotiation
     * (a HelloRequest gets a no_renegotiation alert, which info_cb logs) */
    SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
    if (next.set_info_callback != NULL && !b->info_ours) {
        b->prog_info = SSL_get_info_callback(ssl);
        b->info_ours = 1;
        next.set_info_callback(ssl, info_cb);
    }
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
    pthread_mutex_lock(&ctx_cb_lock);
    if ((av = app_of(ctx)) != NULL) {
        av->fn = fn;
        av->arg = arg;
    }
    pthread_mutex_unlock(&ctx_cb_lock);
    /* cannot keep it beside ours: the program's callback alone */
    next.ctx_set_cert_verify_callback(ctx, av != NULL ? dispatch_verify : fn,
                                      av != NULL ? NULL : arg);
}

/* A status callback set where ours is installed is kept beside it. */
HOOK long
SSL_CTX_callback_ctrl(SSL_CTX *ctx, int cmd, void (*fp)(void))
{
    struct app_verify *av;

    init();
    if (next.ctx_callback_ctrl == NULL)
        return 0;
    if (ctx != NULL && ctx_idx >= 0 &&
        cmd == SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB) {
        pthread_mutex_lock(&ctx_cb_lock);
        av = SSL_CTX_get_ex_data(ctx, ctx_idx);
        if (av != NULL && av->status_ours) {
            av->status = (status_fn)fp;
            pthread_mutex_unlock(&ctx_cb_lock);
            return 1;
        }
        pthread_mutex_unlock(&ctx_cb_lock);
    }
    return next.ctx_callback_ctrl(ctx, cmd, fp);
}

HOOK void
SSL_set_verify(SSL *ssl, int mode, SSL_verify_cb cb)
{
    struct binding *b;

    init();
    if (next.set_verify == NULL)
        return;
    /* a bound object keeps verifying; the program's wish is noted */
    if ((b = binding_of(ssl)) != NULL && b->bound && b->token != NULL) {
        b->prog_mode = mode;
        mode |= SSL_VERIFY_PEER;
    }
    next.set_verify(ssl, mode, cb);
}

/* A bound object's info callback stays ours; the program's is called by
 * it. */
HOOK void
SSL_set_info_callback(SSL *ssl, void (*cb)(const SSL *, int, int))
{
    struct binding *b;

    init();
    if (next.set_info_callback == NULL)
        return;
    if ((b = binding_of(ssl)) != NULL && b->info_ours) {
        b->prog_info = cb;
        return;
    }
    next.set_info_callback(ssl, cb);
}

/* A bound object keeps refusing renegotiation. */
HOOK uint64_t
SSL_clear_options(SSL *ssl, uint64_t op)
{
    struct binding *b;

    init();
    if (next.clear_options == NULL)
        return 0;
    if ((b = binding_of(ssl)) != NULL && b->bound && b->token != NULL)
        op &= ~(uint64_t)SSL_OP_NO_RENEGOTIATION;
    return next.clear_options(ssl, op);
}

/*
 * Early data (TLS 1.3 0-RTT) leaves with the ClientHello, before the
 * server's certificate can be checked: refused on an enforce-rule socket.
 * The program gets the failure OpenSSL gives when early data cannot be
 * sent, and may go on with an ordinary handshake.
 */
HOOK int
SSL_write_early_data(SSL *ssl, const void *buf, size_t num, size_t *written)
{
    struct binding *b;

    init();
    if (next.write_early_data == NULL)
        return 0;
    prepare(ssl, 1);
    if ((b = binding_of(ssl)) != NULL && b->token != NULL &&
        enforce_core != NULL) {
        if (enforce_core->warn != NULL)
            enforce_core->warn(b->token, "the program's OpenSSL early data "
                               "(0-RTT) refused: it would leave before the "
                               "server's certificate is checked");
        if (written != NULL)
            *written = 0;
        ERR_raise(ERR_LIB_SSL, SSL_R_BAD_EARLY_DATA);
        return 0;
    }
    return next.write_early_data(ssl, buf, num, written);
}

/* The handshake-driving calls: the object is current while they run. */
#define DRIVE(call, client)                  \
    do {                                     \
        init();                              \
        prepare(ssl, client);                \
        enforce_enter(ENFORCE_OPENSSL, ssl); \
        rv = call;                           \
        enforce_leave();                     \
        rv = after_call(ssl, rv);            \
    } while (0)

HOOK int
SSL_connect(SSL *ssl)
{
    int rv;

    DRIVE(next.connect != NULL ? next.connect(ssl) : -1, 1);
    return rv;
}

HOOK int
SSL_do_handshake(SSL *ssl)
{
    int rv;

    DRIVE(next.do_handshake != NULL ? next.do_handshake(ssl) : -1, 0);
    return rv;
}

HOOK int
SSL_read(SSL *ssl, void *buf, int num)
{
    int rv;

    DRIVE(next.read != NULL ? next.read(ssl, buf, num) : -1, 0);
    return rv;
}

HOOK int
SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *got)
{
    int rv;

    DRIVE(next.read_ex != NULL ? next.read_ex(ssl, buf, num, got) : 0, 0);
    return rv;
}

HOOK int
SSL_peek(SSL *ssl, void *buf, int num)
{
    int rv;

    DRIVE(next.peek != NULL ? next.peek(ssl, buf, num) : -1, 0);
    return rv;
}

HOOK int
SSL_peek_ex(SSL *ssl, void *buf, size_t num, size_t *got)
{
    int rv;

    DRIVE(next.peek_ex != NULL ? next.peek_ex(ssl, buf, num, got) : 0, 0);
    return rv;
}

HOOK int
SSL_write(SSL *ssl, const void *buf, int num)
{
    int rv;

    DRIVE(next.write != NULL ? next.write(ssl, buf, num) : -1, 0);
    return rv;
}

HOOK int
SSL_write_ex(SSL *ssl, const void *buf, size_t num, size_t *written)
{
    int rv;

    DRIVE(next.write_ex != NULL ? next.write_ex(ssl, buf, num, written)
                                : 0, 0);
    return rv;
}
