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
#include "ocsp.h"
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
    pthread_mutex_lock(&c->lock);
    if (fp)
        c->fp_accepted = 1;
    /* what OCSP is asked about, later in the handshake */
    sk_X509_pop_free(c->enforce_chain, X509_free);
    c->enforce_chain =
        fp ? NULL : X509_chain_up_ref(X509_STORE_CTX_get0_chain(x));
    pthread_mutex_unlock(&c->lock);
    *x509_err = X509_V_OK;
    rv = 0;
out:
    X509_STORE_CTX_free(x);
    ERR_clear_error();
    return rv;
}

/* The X509_V_ERR_* code a program reads for an OCSP failure. */
static int
ocsp_x509_error(const char *status)
{
    if (status == NULL)
        return X509_V_ERR_OCSP_VERIFY_FAILED;
    if (strcmp(status, "revoked") == 0)
        return X509_V_ERR_CERT_REVOKED;
    if (strcmp(status, "none") == 0)
        return X509_V_ERR_OCSP_VERIFY_NEEDED;
    if (strcmp(status, "unknown") == 0)
        return X509_V_ERR_OCSP_CERT_UNKNOWN;
    return X509_V_ERR_OCSP_VERIFY_FAILED;
}

/*
 * ocsp_mode for the program's TLS, with the code tlsshim's own handshake
 * uses (ocsp.c): the staple first, then must_staple, resolve and
 * fail_hard.  Responder queries run here, in the program's handshake
 * call, each bounded by ocsp_timeout.
 */
static int
core_ocsp(void *token, const char *library, const unsigned char *staple,
          size_t len, int *x509_err)
{
    struct conn *c = token;
    const struct policy_rule *r = c->rule;
    STACK_OF(X509) *chain = NULL;
    struct ocsp_job *job = NULL;
    struct ocsp_result res;
    const char *status = NULL;
    char err[512];
    SSL_CTX *ctx;
    X509_STORE *store;
    int fp, rv = -1;

    *x509_err = X509_V_ERR_OCSP_VERIFY_FAILED;
    if (r->verify_mode == POLICY_VERIFY_NONE)
        return 0;
    if ((ctx = context_client(r, err, sizeof(err))) == NULL) {
        conn_enforce_fail(c, "handshake_failed", "%s", err);
        return -1;
    }
    store = SSL_CTX_get_cert_store(ctx);
    pthread_mutex_lock(&c->lock);
    fp = c->fp_accepted;
    if (c->enforce_chain != NULL)
        chain = X509_chain_up_ref(c->enforce_chain);
    pthread_mutex_unlock(&c->lock);
    if (fp)
        return 0;   /* a fingerprint accepts the leaf alone (SPEC 4) */
    if (chain == NULL) {
        conn_enforce_fail(c, "verify_failed", "OCSP: the peer's verified "
                          "chain is not known (the program's %s TLS)",
                          library);
        return -1;
    }
    ERR_clear_error();
    if (!ocsp_check_staple(staple, (long)len, chain, store, &status, err,
                           sizeof(err))) {
        pthread_mutex_lock(&c->lock);
        c->ocsp = status != NULL ? status : "unknown";
        pthread_mutex_unlock(&c->lock);
        *x509_err = ocsp_x509_error(status);
        conn_enforce_fail(c, "verify_failed", "%s (the program's %s TLS)",
                          err, library);
        goto out;
    }
    if (ocsp_start_chain(r, chain, store, 1, status, &job, &res))
        ocsp_run(job, &res);
    pthread_mutex_lock(&c->lock);
    c->ocsp = res.status;
    pthread_mutex_unlock(&c->lock);
    if (res.error[0] != '\0') {
        *x509_err = ocsp_x509_error(res.status);
        conn_enforce_fail(c, "verify_failed", "%s (the program's %s TLS)",
                          res.error, library);
        goto out;
    }
    if (res.note[0] != '\0')
        conn_enforce_note(c, 0, "%s", res.note);
    *x509_err = X509_V_OK;
    rv = 0;
out:
    ocsp_job_free(job);
    sk_X509_pop_free(chain, X509_free);
    ERR_clear_error();
    return rv;
}

static void *
core_prepare(int fd, struct tlsshim_enforce_offer *o)
{
    struct conn *c = conn_get(fd);
    const struct policy_rule *r;

    if (c == NULL)
        return NULL;
    if (!conn_enforce_unclaimed(c)) {
        conn_put(c);
        return NULL;
    }
    r = c->rule;
    memset(o, 0, sizeof(*o));
    o->rule = r->name;
    o->min_version = r->min_version;
    o->max_version = r->max_version;
    o->security_level = r->security_level;
    o->request_staple = r->verify_mode != POLICY_VERIFY_NONE &&
                        !(r->ocsp_mode & POLICY_OCSP_NO_STAPLE);
    o->need_staple = o->request_staple &&
                     (r->ocsp_mode & POLICY_OCSP_MUST_STAPLE) != 0;
    return c;   /* conn_get's reference is the token's */
}

static int
core_allows_suite(void *token, unsigned id)
{
    struct conn *c = token;
    char err[256];
    SSL_CTX *ctx = context_client(c->rule, err, sizeof(err));
    STACK_OF(SSL_CIPHER) *ciphers;

    if (ctx == NULL)
        return 0;
    ciphers = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++)
        if (SSL_CIPHER_get_protocol_id(sk_SSL_CIPHER_value(ciphers, i)) ==
            id)
            return 1;
    return 0;
}

static void
core_note(void *token, const char *what)
{
    conn_enforce_note(token, 2, "%s", what);
}

static void
core_warn(void *token, const char *what)
{
    conn_enforce_note(token, 0, "%s", what);
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
    conn_enforce_release(token);
}

static const struct tlsshim_enforce_core core = {
    .abi = TLSSHIM_ENFORCE_ABI,
    .check = core_check,
    .established = core_established,
    .failed = core_failed,
    .release = core_release,
    .prepare = core_prepare,
    .allows_suite = core_allows_suite,
    .note = core_note,
    .warn = core_warn,
    .ocsp = core_ocsp,
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

void
shim_enforce_attach(void)
{
    pthread_once(&module_once, find_module);
}

int
shim_enforce_first_write(struct conn *c, const void *buf, size_t len)
{
    unsigned char random[32];
    char sni[CONN_NAME_MAX];
    int claimed;

    if (!sniff_tls_header(buf, len) || !conn_first_move_pending(c))
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
