/*
 * action = enforce, libtlsshim.so's side (SPEC section 3, shim/enforce.h).
 * connect() treats an enforce rule as auto; the program's first write
 * decides: plaintext gets tlsshim's own TLS, a ClientHello is passed
 * through only when libtlsshim-enforce.so's hooks made it, and is cut
 * otherwise.  The checks the enforce module asks for run here, against
 * the rule's context (its trust store, CRLs, cipher list), so that the
 * program's own settings never weaken them.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <pthread.h>
#include <string.h>

#include "conn.h"
#include "context.h"
#include "enforce.h"
#include "log.h"
#include "shim.h"
#include "sniff.h"

static const struct tlsshim_enforce_module *module;
static pthread_once_t module_once = PTHREAD_ONCE_INIT;

static const char *
version_text(int v)
{
    switch (v) {
    case TLS1_VERSION: return "TLSv1";
    case TLS1_1_VERSION: return "TLSv1.1";
    case TLS1_2_VERSION: return "TLSv1.2";
    case TLS1_3_VERSION: return "TLSv1.3";
    default: return "an unknown version";
    }
}

/* The suite p negotiated in the rule's cipher list (TLS 1.3 suites
 * included), or NULL. */
static const SSL_CIPHER *
rule_cipher(SSL_CTX *ctx, const struct tlsshim_enforce_peer *p)
{
    STACK_OF(SSL_CIPHER) *ciphers = SSL_CTX_get_ciphers(ctx);

    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(ciphers, i);
        const char *std = SSL_CIPHER_standard_name(c);
        if (p->suite != 0 ? SSL_CIPHER_get_protocol_id(c) == p->suite
                          : p->suite_iana != NULL && std != NULL &&
                                strcmp(std, p->suite_iana) == 0)
            return c;
    }
    return NULL;
}

/* The negotiated version and suite against the rule. */
static int
check_protocol(struct conn *c, SSL_CTX *ctx,
               const struct tlsshim_enforce_peer *p)
{
    const struct policy_rule *r = c->rule;

    if (p->version != 0 &&
        ((r->min_version != 0 && p->version < r->min_version) ||
         (r->max_version != 0 && p->version > r->max_version))) {
        conn_enforce_fail(c, "handshake_failed", "%s negotiated %s, which "
                          "rule %s does not allow", p->library,
                          version_text(p->version), r->name);
        return -1;
    }
    if (p->suite == 0 && p->suite_iana == NULL)
        return 0;
    if (rule_cipher(ctx, p) != NULL)
        return 0;
    if (p->suite != 0)
        conn_enforce_fail(c, "handshake_failed", "%s negotiated cipher "
                          "suite %s (0x%04x), which the cipher list of rule "
                          "%s does not allow", p->library,
                          p->cipher_name != NULL ? p->cipher_name : "?",
                          p->suite, r->name);
    else
        conn_enforce_fail(c, "handshake_failed", "%s negotiated cipher "
                          "suite %s, which the cipher list of rule %s does "
                          "not allow", p->library, p->suite_iana, r->name);
    return -1;
}

static int
core_check(void *token, const struct tlsshim_enforce_peer *p, int *x509_err)
{
    struct conn *c = token;
    char err[256], why[512];
    X509_STORE_CTX *x = NULL;
    SSL_CTX *ctx;
    int fp = 0, rv = -1;

    *x509_err = X509_V_ERR_APPLICATION_VERIFICATION;
    if ((ctx = context_client(c->rule, err, sizeof(err))) == NULL) {
        conn_enforce_fail(c, "handshake_failed", "%s", err);
        return -1;
    }
    if (check_protocol(c, ctx, p) < 0)
        return -1;
    if (p->leaf == NULL)
        return 0;
    ERR_clear_error();
    /* the rule's store and parameters, as libssl sets up its own check */
    x = X509_STORE_CTX_new_ex(context_libctx(), NULL);
    if (x == NULL ||
        !X509_STORE_CTX_init(x, SSL_CTX_get_cert_store(ctx), p->leaf,
                             p->chain) ||
        !X509_STORE_CTX_set_default(x, "ssl_server") ||
        !X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(x),
                                SSL_CTX_get0_param(ctx))) {
        conn_enforce_fail(c, "handshake_failed",
                          "cannot set up certificate verification");
        goto out;
    }
    X509_VERIFY_PARAM_set_auth_level(X509_STORE_CTX_get0_param(x),
                                     SSL_CTX_get_security_level(ctx));
    pthread_mutex_lock(&c->lock);
    char name[CONN_NAME_MAX];
    util_strlcpy(name, c->verify_name, sizeof(name));
    pthread_mutex_unlock(&c->lock);
    if (!context_verify_chain(c->rule, x, p->kx_rsa, POLICY_ROLE_CLIENT,
                              name, why, sizeof(why), &fp)) {
        int e = X509_STORE_CTX_get_error(x);
        *x509_err = e != X509_V_OK ? e : X509_V_ERR_APPLICATION_VERIFICATION;
        conn_enforce_fail(c, "verify_failed", "%s (the program's %s TLS)",
                          why, p->library);
        goto out;
    }
    if (fp) {
        pthread_mutex_lock(&c->lock);
        c->fp_accepted = 1;
        pthread_mutex_unlock(&c->lock);
    }
    *x509_err = X509_V_OK;
    rv = 0;
out:
    X509_STORE_CTX_free(x);
    ERR_clear_error();
    return rv;
}

static void
core_established(void *token, const struct tlsshim_enforce_peer *p)
{
    struct conn *c = token;
    const char *cipher = p->cipher_name;
    char err[256];
    SSL_CTX *ctx;

    /* the report names suites as OpenSSL does */
    if (cipher == NULL && p->suite_iana != NULL) {
        const SSL_CIPHER *found = NULL;
        if ((ctx = context_client(c->rule, err, sizeof(err))) != NULL)
            found = rule_cipher(ctx, p);
        cipher = found != NULL ? SSL_CIPHER_get_name(found) : p->suite_iana;
    }
    conn_enforce_established(c, p->version_name, cipher, p->resumed,
                             p->leaf);
}

static void
core_failed(void *token, const char *why)
{
    conn_enforce_fail(token, "handshake_failed", "%s", why);
}

static void
core_release(void *token)
{
    conn_put(token);
}

static const struct tlsshim_enforce_core core = {
    .abi = TLSSHIM_ENFORCE_ABI,
    .check = core_check,
    .established = core_established,
    .failed = core_failed,
    .release = core_release,
};

static void
find_module(void)
{
    const struct tlsshim_enforce_module *m =
        dlsym(RTLD_DEFAULT, TLSSHIM_ENFORCE_SYMBOL);

    if (m == NULL || m->abi != TLSSHIM_ENFORCE_ABI)
        return;
    m->attach(&core);
    module = m;
}

int
shim_enforce_first_write(struct conn *c, const void *buf, size_t len)
{
    unsigned char random[32];
    char sni[CONN_NAME_MAX];
    int claimed;

    if (!sniff_is_tls_record(buf, len) || !conn_first_move_pending(c))
        return 0;   /* plaintext: tlsshim's own TLS, as for auto */
    if (!sniff_client_hello(buf, len, random, sni, sizeof(sni))) {
        conn_enforce_fail(c, "denied", "the program began TLS with a "
                          "record that is not a whole ClientHello; "
                          "connection cut");
        return 0;
    }
    pthread_once(&module_once, find_module);
    if (module == NULL) {
        conn_enforce_fail(c, "denied", "the program speaks TLS itself and "
                          "libtlsshim-enforce.so is not loaded to verify it; "
                          "connection cut");
        return 0;
    }
    conn_enforce_hello(c, sni);
    conn_hold(c);   /* the module's reference, if it binds */
    claimed = module->claim(random, c);
    if (claimed == 1) {
        conn_enforce_passthrough(c);
        return 1;
    }
    conn_put(c);
    if (claimed == 0)
        conn_enforce_fail(c, "denied", "a TLS ClientHello that did not come "
                          "through tlsshim's OpenSSL or GnuTLS hooks (a "
                          "bundled or static TLS library?); connection cut "
                          "before it was sent");
    return 0;
}
