/*
 * action = enforce for programs that use GnuTLS (libgnutls.so.30: wget,
 * gnutls-cli, ...).  gnutls_handshake notes its session as the thread's
 * current one, so that libtlsshim.so can bind it when its ClientHello
 * leaves on an enforce-rule socket.  When the handshake of a bound session
 * ends well, the peer's certificates, the version and the cipher suite are
 * checked against the rule before gnutls_handshake returns: a failure
 * makes it return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR with the socket
 * already shut down, so nothing the program sends afterwards leaves.  What
 * the program asked of GnuTLS's own verification (verify flags,
 * gnutls_session_set_verify_cert, gnutls_certificate_verify_peers*) is
 * left to it: it can only add failures.  GnuTLS itself is never linked:
 * its functions are looked up when a program that has it calls the hooks.
 */
#include "config.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#ifdef HAVE_GNUTLS
#include <gnutls/gnutls.h>
#endif

#include "enforce_module.h"
#include "util.h"

#ifndef HAVE_GNUTLS

/* Built without GnuTLS headers: no hooks, so a GnuTLS program's hello is
 * never claimed and its connection is cut (fail closed). */
int
enforce_gnutls_claim(void *session, const unsigned char random[32],
                     void *token)
{
    return ENFORCE_NOT_MINE;
}

#else

#define HOOK TLSSHIM_EXPORT

static struct {
    int (*handshake)(gnutls_session_t);
    void (*deinit)(gnutls_session_t);
    void (*get_random)(gnutls_session_t, gnutls_datum_t *, gnutls_datum_t *);
    const gnutls_datum_t *(*get_peers)(gnutls_session_t, unsigned int *);
    gnutls_protocol_t (*protocol)(gnutls_session_t);
    const char *(*ciphersuite)(gnutls_session_t);
    gnutls_kx_algorithm_t (*kx)(gnutls_session_t);
    int (*is_resumed)(gnutls_session_t);
    int (*error_is_fatal)(int);
    const char *(*strerror)(int);
} next;

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Bound sessions.  guarded by table_lock */
struct binding {
    gnutls_session_t session;
    void *token;
    int verdict;   /* 0 pending, 1 established, -1 failed */
};
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct binding *table;
static size_t ntable, table_cap;

#define NEXT(field, name) (*(void **)&next.field = dlsym(RTLD_NEXT, name))
#define FIND(field, name) (*(void **)&next.field = dlsym(RTLD_DEFAULT, name))

static void
resolve(void)
{
    NEXT(handshake, "gnutls_handshake");
    NEXT(deinit, "gnutls_deinit");
    FIND(get_random, "gnutls_session_get_random");
    FIND(get_peers, "gnutls_certificate_get_peers");
    FIND(protocol, "gnutls_protocol_get_version");
    FIND(ciphersuite, "gnutls_ciphersuite_get");
    FIND(kx, "gnutls_kx_get");
    FIND(is_resumed, "gnutls_session_is_resumed");
    FIND(error_is_fatal, "gnutls_error_is_fatal");
    FIND(strerror, "gnutls_strerror");
}

static void
init(void)
{
    pthread_once(&once, resolve);
}

/* Table lock held. */
static struct binding *
find(gnutls_session_t s)
{
    for (size_t i = 0; i < ntable; i++)
        if (table[i].session == s)
            return &table[i];
    return NULL;
}

int
enforce_gnutls_claim(void *obj, const unsigned char random[32], void *token)
{
    gnutls_session_t s = obj;
    gnutls_datum_t client = {0}, server = {0};
    int rv = 0;

    init();
    if (next.get_random == NULL)
        return ENFORCE_NOT_MINE;
    next.get_random(s, &client, &server);
    if (client.data == NULL || client.size != 32 ||
        memcmp(client.data, random, 32) != 0)
        return ENFORCE_NOT_MINE;
    pthread_mutex_lock(&table_lock);
    if (find(s) == NULL) {
        if (ntable == table_cap) {
            size_t cap = table_cap ? table_cap * 2 : 16;
            struct binding *t = realloc(table, cap * sizeof(*t));
            if (t != NULL) {
                table = t;
                table_cap = cap;
            }
        }
        if (ntable < table_cap) {
            table[ntable].session = s;
            table[ntable].token = token;
            table[ntable].verdict = 0;
            ntable++;
            rv = 1;
        }
    }
    pthread_mutex_unlock(&table_lock);
    return rv;
}

static int
tls_version(gnutls_protocol_t v)
{
    switch (v) {
    case GNUTLS_TLS1_0: return TLS1_VERSION;
    case GNUTLS_TLS1_1: return TLS1_1_VERSION;
    case GNUTLS_TLS1_2: return TLS1_2_VERSION;
    case GNUTLS_TLS1_3: return TLS1_3_VERSION;
    default: return SSL3_VERSION;   /* older or unknown: never allowed */
    }
}

static const char *
version_name(int v)
{
    switch (v) {
    case TLS1_VERSION: return "TLSv1";
    case TLS1_1_VERSION: return "TLSv1.1";
    case TLS1_2_VERSION: return "TLSv1.2";
    case TLS1_3_VERSION: return "TLSv1.3";
    default: return "SSLv3";
    }
}

/* The rule's checks on a session whose handshake just ended.  Returns 0,
 * or the GnuTLS error the handshake fails with. */
static int
check_session(gnutls_session_t s, void *token)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    struct tlsshim_enforce_peer p;
    unsigned int n = 0;
    const gnutls_datum_t *certs =
        next.get_peers != NULL ? next.get_peers(s, &n) : NULL;
    int err, rv = GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;

    memset(&p, 0, sizeof(p));
    p.library = "GnuTLS";
    p.version = next.protocol != NULL ? tls_version(next.protocol(s)) : 0;
    p.version_name = version_name(p.version);
    p.suite_iana = next.ciphersuite != NULL ? next.ciphersuite(s) : NULL;
    p.kx_rsa = next.kx != NULL && next.kx(s) == GNUTLS_KX_RSA;
    p.resumed = next.is_resumed != NULL && next.is_resumed(s);
    if (chain == NULL)
        goto out;
    for (unsigned int i = 0; certs != NULL && i < n; i++) {
        const unsigned char *der = certs[i].data;
        X509 *x = d2i_X509(NULL, &der, (long)certs[i].size);
        if (x == NULL || !sk_X509_push(chain, x)) {
            X509_free(x);
            enforce_core->failed(token, "the peer's certificate from "
                                 "GnuTLS cannot be read");
            goto out;
        }
    }
    if (sk_X509_num(chain) == 0) {
        enforce_core->failed(token, "the peer sent no certificate");
        goto out;
    }
    p.leaf = sk_X509_value(chain, 0);
    p.chain = chain;
    if (enforce_core->check(token, &p, &err) < 0)
        goto out;
    enforce_core->established(token, &p);
    rv = 0;
out:
    sk_X509_pop_free(chain, X509_free);
    return rv;
}

HOOK int
gnutls_handshake(gnutls_session_t s)
{
    struct binding *b;
    void *token = NULL;
    int rv;

    init();
    if (next.handshake == NULL)
        return GNUTLS_E_INTERNAL_ERROR;
    enforce_enter(ENFORCE_GNUTLS, s);
    rv = next.handshake(s);
    enforce_leave();

    pthread_mutex_lock(&table_lock);
    b = find(s);
    if (b != NULL && b->verdict == 0 && enforce_core != NULL &&
        (rv == 0 || (next.error_is_fatal != NULL && next.error_is_fatal(rv)))) {
        b->verdict = rv == 0 ? 1 : -1;
        token = b->token;
    }
    pthread_mutex_unlock(&table_lock);
    if (token == NULL)
        return rv;
    if (rv != 0) {
        char why[200];
        snprintf(why, sizeof(why), "the program's GnuTLS handshake failed: "
                 "%s", next.strerror != NULL ? next.strerror(rv) : "error");
        enforce_core->failed(token, why);
        return rv;
    }
    if ((rv = check_session(s, token)) != 0) {
        pthread_mutex_lock(&table_lock);
        if ((b = find(s)) != NULL)
            b->verdict = -1;
        pthread_mutex_unlock(&table_lock);
    }
    return rv;
}

HOOK void
gnutls_deinit(gnutls_session_t s)
{
    struct binding *b;
    void *token = NULL;
    int verdict = 0;

    init();
    pthread_mutex_lock(&table_lock);
    if ((b = find(s)) != NULL) {
        token = b->token;
        verdict = b->verdict;
        *b = table[--ntable];
    }
    pthread_mutex_unlock(&table_lock);
    if (token != NULL && enforce_core != NULL) {
        if (verdict == 0)
            enforce_core->failed(token, "the program's GnuTLS handshake did "
                                 "not complete");
        enforce_core->release(token);
    }
    if (next.deinit != NULL)
        next.deinit(s);
}

#endif
