/*
 * SSL_CTX per rule and the client session cache.  Contexts are built
 * lazily under ctx_lock and never freed while the process runs, so a
 * connection may keep a plain pointer to one.  Verification runs in our
 * certificate verify callback: the leaf fingerprint first (a match accepts
 * the leaf alone, SPEC section 4), then OpenSSL's chain building, then the
 * host name scheme, so that every failure can be named precisely.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autocert.h"
#include "conn.h"
#include "context.h"
#include "log.h"
#include "ocsp.h"
#include "sesscache.h"
#include "starttls.h"
#include "tickets.h"
#include "util.h"
#include "verify.h"

/* Secure, forward-secret suites for TLS <= 1.2 (TLS 1.3's are all so). */
#define DEFAULT_CIPHER_LIST \
    "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!SHA1"

struct session_entry {
    char *key;
    SSL_SESSION *sess;
    uint64_t used;
};

/* A server context made for one listening address (cert_file = auto). */
struct auto_entry {
    char addr[80];
    SSL_CTX *ctx;
};

struct rule_ctx {
    SSL_CTX *ctx;                     /* client, or server without auto */
    struct session_entry *sessions;   /* guarded by ctx_lock */
    int nsessions;
    struct auto_entry *autos;         /* cert_file = auto, per address */
    size_t nautos;
};

/* What the callbacks of a server context need; never freed while the
 * process runs (contexts are not either). */
struct server_data {
    const struct policy_rule *r;
    SSL_CTX **sni;                    /* one per r->sni_certs entry */
    struct tickets *tickets;          /* NULL: OpenSSL's own keys */
};

static int init_ok;
static OSSL_LIB_CTX *libctx;
static int conn_idx = -1;
/* keylog = yes: the key log file (SSLKEYLOGFILE), or -1 */
static int keylog_fd = -1;
static int server_idx = -1;   /* SSL_CTX ex_data: struct server_data */

/* guards the table below and every session cache */
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rule_ctx *rule_ctxs;
static size_t nrule_ctxs;
static uint64_t session_clock;

/* Initialised at the first connection that needs it.  A failure (out of
 * memory, no descriptor) fails that connection only: the next one tries
 * again, except where OpenSSL's own one-time initialisation failed, which
 * OpenSSL never retries. */
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

static int
do_init(void)
{
    if (!OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL))
        return -1;
    if (libctx == NULL && (libctx = OSSL_LIB_CTX_new()) == NULL)
        return -1;
    if (!OSSL_PROVIDER_available(libctx, "default") &&
        OSSL_PROVIDER_load(libctx, "default") == NULL)
        return -1;
    if (conn_idx < 0)
        conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (server_idx < 0)
        server_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (conn_idx < 0 || server_idx < 0)
        return -1;
    return 0;
}

int
context_init(void)
{
    int ok;

    /* read lock-free once set; written under init_lock */
    if (__atomic_load_n(&init_ok, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&init_lock);
    if (!init_ok && do_init() == 0)
        __atomic_store_n(&init_ok, 1, __ATOMIC_RELEASE);
    ok = init_ok;
    pthread_mutex_unlock(&init_lock);
    return ok ? 0 : -1;
}

int
context_conn_index(void)
{
    return conn_idx;
}

OSSL_LIB_CTX *
context_libctx(void)
{
    return libctx;
}

/* The last OpenSSL error as text, or fallback. */
static const char *
ssl_reason(char *buf, size_t len, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();

    if (e == 0) {
        util_strlcpy(buf, fallback, len);
        return buf;
    }
    ERR_error_string_n(e, buf, len);
    const char *r = ERR_reason_error_string(e);
    if (r != NULL)
        util_strlcpy(buf, r, len);
    /* "system lib" says little: name the system error (EMFILE...) that
     * started the chain */
    unsigned long first = ERR_peek_error();
    if (first != e && ERR_SYSTEM_ERROR(first)) {
        size_t n = strlen(buf);
        snprintf(buf + n, len - n, " (%s)", strerror(ERR_GET_REASON(first)));
    }
    return buf;
}

/* The peer's key encrypts the premaster secret (TLS 1.2 RSA key
 * exchange) rather than signing the handshake (everything else). */
static int
needs_encipherment(SSL *ssl)
{
    const SSL_CIPHER *ciph = SSL_get_pending_cipher(ssl);

    return ciph != NULL && SSL_CIPHER_get_kx_nid(ciph) == NID_kx_rsa;
}

/*
 * RFC 5280: a leaf whose keyUsage extension is present may only be used
 * for what it lists.  OpenSSL's purpose check accepts any of signing,
 * key encipherment and key agreement; the handshake uses exactly one.
 */
static int
key_usage_fits(int kx_rsa, X509 *leaf)
{
    uint32_t ku;

    if (!(X509_get_extension_flags(leaf) & EXFLAG_KUSAGE))
        return 1;
    ku = X509_get_key_usage(leaf);
    return kx_rsa ? (ku & KU_KEY_ENCIPHERMENT) != 0
                  : (ku & KU_DIGITAL_SIGNATURE) != 0;
}

int
context_verify_chain(const struct policy_rule *r, X509_STORE_CTX *x,
                     int kx_rsa, enum policy_role role,
                     const char *verify_name, char *why, size_t whylen,
                     int *fp_accepted)
{
    X509 *leaf = X509_STORE_CTX_get0_cert(x);
    char names[256], subj[256];

    why[0] = '\0';
    *fp_accepted = 0;
    if (leaf == NULL) {
        util_strlcpy(why, "certificate verify failed: no certificate",
                     whylen);
        X509_STORE_CTX_set_error(x, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    if (r->nfingerprints > 0 &&
        verify_fingerprint(leaf, r->fingerprints, r->nfingerprints)) {
        X509_STORE_CTX_set_error(x, X509_V_OK);
        *fp_accepted = 1;
        return 1;
    }
    if (r->verify_mode == POLICY_VERIFY_NONE)
        return 1;
    if (X509_verify_cert(x) <= 0) {
        int err = X509_STORE_CTX_get_error(x);
        int depth = X509_STORE_CTX_get_error_depth(x);
        X509 *bad = X509_STORE_CTX_get_current_cert(x);
        if (bad == NULL)
            bad = leaf;
        X509_NAME_oneline(X509_get_subject_name(bad), subj, sizeof(subj));
        snprintf(why, whylen,
                 "certificate verify failed: %s (depth %d, %.160s)%s",
                 X509_verify_cert_error_string(err), depth, subj,
                 r->nfingerprints > 0 ? "; no fingerprint matched" : "");
        return 0;
    }
    if (!key_usage_fits(kx_rsa, leaf)) {
        X509_NAME_oneline(X509_get_subject_name(leaf), subj, sizeof(subj));
        snprintf(why, whylen,
                 "certificate verify failed: its key usage does not allow "
                 "%s (depth 0, %.200s)",
                 kx_rsa ? "key encipherment" : "signing", subj);
        X509_STORE_CTX_set_error(x, X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE);
        return 0;
    }
    if (r->npubkey_pins > 0 &&
        !verify_pins(X509_STORE_CTX_get0_chain(x), r, names, sizeof(names))) {
        snprintf(why, whylen,
                 "certificate verify failed: no key of the chain matches "
                 "pubkey_pin (the chain has %.380s)", names);
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    /* a client certificate is not checked against a name */
    if (role == POLICY_ROLE_SERVER)
        return 1;
    /* unset: the starttls protocol's scheme, else default (SPEC 4) */
    if (!verify_identity(leaf, verify_name,
                         r->verifycn_scheme != NULL
                             ? r->verifycn_scheme
                             : starttls_scheme(r->starttls),
                         r->verifycn_publicsuffix)) {
        verify_cert_names(leaf, names, sizeof(names));
        snprintf(why, whylen,
                 "certificate verify failed: hostname mismatch (wanted %.255s, "
                 "certificate has %.150s)",
                 verify_name, names);
        X509_STORE_CTX_set_error(x, X509_V_ERR_HOSTNAME_MISMATCH);
        return 0;
    }
    return 1;
}

static int
cert_verify_cb(X509_STORE_CTX *x, void *arg)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x,
                                          SSL_get_ex_data_X509_STORE_CTX_idx());
    struct conn *c = ssl != NULL ? SSL_get_ex_data(ssl, conn_idx) : NULL;
    int fp = 0, ok;

    if (c == NULL)
        return 0;
    ok = context_verify_chain(c->rule, x, needs_encipherment(ssl), c->role,
                              c->verify_name, c->verify_error,
                              sizeof(c->verify_error), &fp);
    if (fp)
        c->fp_accepted = 1;
    return ok;
}

/*
 * The OCSP staple (ocsp_mode try_staple, the default when verifying).
 * OpenSSL calls this after the chain was verified, so the issuer is the
 * second certificate of the verified chain.  No staple: nothing to check.
 * A staple that says revoked fails the handshake; so does one that does
 * not verify, since a forged "good" must not be trusted and a forged
 * "revoked" is an attack on this connection anyway.
 */
static int
status_cb(SSL *ssl, void *arg)
{
    struct conn *c = SSL_get_ex_data(ssl, conn_idx);
    const unsigned char *p = NULL;
    long len = SSL_get_tlsext_status_ocsp_resp(ssl, &p);
    const char *status = NULL;

    if (c == NULL)
        return 0;
    if (p == NULL || len <= 0) {
        c->ocsp = NULL;
        return 1;
    }
    if (!ocsp_check_staple(p, len, SSL_get0_verified_chain(ssl),
                           SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)),
                           &status, c->verify_error,
                           sizeof(c->verify_error))) {
        if (status != NULL)
            c->ocsp = status;
        return 0;
    }
    if (status != NULL)
        c->ocsp = status;
    return 1;
}

static struct rule_ctx *
entry_for(const struct policy_rule *r)
{
    size_t need = (size_t)r->index + 1;

    if (need > nrule_ctxs) {
        struct rule_ctx *n = realloc(rule_ctxs, need * sizeof(*n));
        if (n == NULL)
            return NULL;
        memset(n + nrule_ctxs, 0, (need - nrule_ctxs) * sizeof(*n));
        rule_ctxs = n;
        nrule_ctxs = need;
    }
    return &rule_ctxs[r->index];
}

static void
session_store(struct rule_ctx *e, const struct policy_rule *r,
              const char *key, SSL_SESSION *sess)
{
    int slot = -1;

    for (int i = 0; i < e->nsessions; i++)
        if (strcmp(e->sessions[i].key, key) == 0)
            slot = i;
    if (slot < 0 && e->nsessions < r->session_cache_size) {
        struct session_entry *n = realloc(
            e->sessions, (size_t)(e->nsessions + 1) * sizeof(*n));
        char *k = strdup(key);
        if (n == NULL || k == NULL) {
            free(k);
            if (n != NULL)
                e->sessions = n;
            SSL_SESSION_free(sess);
            return;
        }
        e->sessions = n;
        slot = e->nsessions++;
        e->sessions[slot].key = k;
        e->sessions[slot].sess = NULL;
    } else if (slot < 0) {
        /* full: replace the least recently used */
        slot = 0;
        for (int i = 1; i < e->nsessions; i++)
            if (e->sessions[i].used < e->sessions[slot].used)
                slot = i;
        char *k = strdup(key);
        if (k == NULL) {
            SSL_SESSION_free(sess);
            return;
        }
        free(e->sessions[slot].key);
        e->sessions[slot].key = k;
    }
    SSL_SESSION_free(e->sessions[slot].sess);
    e->sessions[slot].sess = sess;
    e->sessions[slot].used = ++session_clock;
}

void
context_session_put(const struct policy_rule *r, const char *key,
                    SSL_SESSION *sess)
{
    if (r->session_cache_size <= 0 || key[0] == '\0')
        return;
    if (r->session_cache_dir != NULL)
        sesscache_store(r, key, sess);
    /* a copy of the connection's own session (see context_session_get) */
    SSL_SESSION *copy = SSL_SESSION_dup(sess);
    if (copy == NULL)
        return;
    pthread_mutex_lock(&ctx_lock);
    struct rule_ctx *e = entry_for(r);
    if (e != NULL)
        session_store(e, r, key, copy);     /* takes the reference */
    else
        SSL_SESSION_free(copy);
    pthread_mutex_unlock(&ctx_lock);
}

/* Only the sessions of verified connections are kept, in memory as on
 * disk: a TLS 1.2 session comes here when its handshake ends, before its
 * checks (OCSP) ended, and a resumed session is not checked again, so
 * established() keeps it once verified.  TLS 1.3 tickets arrive after
 * that; each new one replaces the last. */
static int
new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct conn *c = SSL_get_ex_data(ssl, conn_idx);

    if (c == NULL || !c->verified)
        return 0;
    context_session_put(c->rule, c->session_key, sess);
    return 0;   /* the callback's reference stays OpenSSL's */
}

SSL_SESSION *
context_session_get(const struct policy_rule *r, const char *key)
{
    SSL_SESSION *s = NULL;

    pthread_mutex_lock(&ctx_lock);
    if ((size_t)r->index < nrule_ctxs) {
        struct rule_ctx *e = &rule_ctxs[r->index];
        for (int i = 0; i < e->nsessions; i++) {
            if (strcmp(e->sessions[i].key, key) != 0)
                continue;
            /* a copy: OpenSSL writes to the session of a connection
             * (new tickets, SNI) without a lock, so connections of
             * different threads never share one */
            if (SSL_SESSION_is_resumable(e->sessions[i].sess) &&
                (s = SSL_SESSION_dup(e->sessions[i].sess)) != NULL)
                e->sessions[i].used = ++session_clock;
            break;
        }
    }
    pthread_mutex_unlock(&ctx_lock);
    return s;
}

/* Read a whole small file (keys, passphrases); NULL on error.  A secret
 * (key or passphrase) file is judged as the policy judges it (SPEC
 * section 3) here too, on the file actually opened: it may not have
 * existed when the policy was loaded. */
static unsigned char *
read_file(const char *path, int secret, size_t *len, char *err,
          size_t errlen)
{
    unsigned char *buf = NULL;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0 || st.st_size > 1024 * 1024) {
        snprintf(err, errlen, "%s: not a readable file of at most 1 MiB",
                 path);
        goto out;
    }
    if (secret && ((st.st_mode & S_IWOTH) ||
                   ((st.st_mode & S_IWGRP) && st.st_gid != 0))) {
        snprintf(err, errlen, "%s is writable by others (mode %04o)", path,
                 (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (secret && (st.st_mode & S_IROTH)) {
        snprintf(err, errlen, "%s is readable by every user (mode %04o)",
                 path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0) {
            snprintf(err, errlen, "cannot read %s", path);
            OPENSSL_cleanse(buf, got);
            free(buf);
            buf = NULL;
            goto out;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *len = got;
out:
    close(fd);
    return buf;
}

static int
passphrase_cb(char *buf, int size, int rwflag, void *u)
{
    const char *pass = u;
    size_t n = pass != NULL ? strlen(pass) : 0;

    if (pass == NULL || (int)n >= size)
        return -1;
    memcpy(buf, pass, n);
    return (int)n;
}

/*
 * Load a certificate (PEM chain, DER or PKCS#12) and its key (PEM, DER,
 * or from the PKCS#12) into ctx.
 */
static int
load_identity(SSL_CTX *ctx, const char *cert_file, const char *key_file,
              const char *passwd_file, char *err, size_t errlen)
{
    unsigned char *cbuf = NULL, *kbuf = NULL, *pbuf = NULL;
    size_t clen = 0, klen = 0, plen = 0;
    char *pass = NULL;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    STACK_OF(X509) *chain = NULL;
    BIO *bio = NULL;
    char why[160];
    int rv = -1;

    if (passwd_file != NULL) {
        if ((pbuf = read_file(passwd_file, 1, &plen, err, errlen)) == NULL)
            goto err;
        /* plen stays the whole file's length: all of it is cleansed */
        pbuf[strcspn((char *)pbuf, "\r\n")] = '\0';
        pass = (char *)pbuf;
    }
    if ((cbuf = read_file(cert_file, 0, &clen, err, errlen)) == NULL)
        goto err;

    ERR_clear_error();
    bio = BIO_new_mem_buf(cbuf, (int)clen);
    if (bio != NULL &&
        (cert = PEM_read_bio_X509(bio, NULL, passphrase_cb, pass)) != NULL) {
        X509 *extra;
        chain = sk_X509_new_null();
        while ((extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
            if (chain == NULL || !sk_X509_push(chain, extra))
                X509_free(extra);
        ERR_clear_error();
        /* The key may sit in the same PEM file. */
        if (key_file == NULL) {
            BIO_free(bio);
            bio = BIO_new_mem_buf(cbuf, (int)clen);
            key = bio ? PEM_read_bio_PrivateKey_ex(bio, NULL, passphrase_cb,
                                                   pass, libctx, NULL)
                      : NULL;
        }
    } else {
        const unsigned char *p = cbuf;
        ERR_clear_error();
        cert = d2i_X509(NULL, &p, (long)clen);
        if (cert == NULL) {
            PKCS12 *p12;
            p = cbuf;
            p12 = d2i_PKCS12(NULL, &p, (long)clen);
            if (p12 == NULL) {
                snprintf(err, errlen,
                         "%s: not a PEM, DER or PKCS#12 certificate",
                         cert_file);
                goto err;
            }
            if (!PKCS12_parse(p12, pass != NULL ? pass : "", &key, &cert,
                              &chain)) {
                PKCS12_free(p12);
                snprintf(err, errlen, "%s: cannot open PKCS#12: %s%s",
                         cert_file, ssl_reason(why, sizeof(why), "error"),
                         pass == NULL ? " (no passwd_file given)" : "");
                goto err;
            }
            PKCS12_free(p12);
        }
    }
    if (key_file != NULL) {
        if ((kbuf = read_file(key_file, 1, &klen, err, errlen)) == NULL)
            goto err;
        BIO_free(bio);
        bio = BIO_new_mem_buf(kbuf, (int)klen);
        ERR_clear_error();
        key = bio ? PEM_read_bio_PrivateKey_ex(bio, NULL, passphrase_cb,
                                               pass, libctx, NULL)
                  : NULL;
        if (key == NULL) {
            const unsigned char *p = kbuf;
            key = d2i_AutoPrivateKey_ex(NULL, &p, (long)klen, libctx, NULL);
        }
        if (key == NULL) {
            snprintf(err, errlen, "%s: cannot read private key: %s%s",
                     key_file, ssl_reason(why, sizeof(why), "bad format"),
                     pass == NULL ? " (encrypted key without passwd_file?)"
                                  : "");
            goto err;
        }
    }
    if (key == NULL) {
        snprintf(err, errlen, "%s: no private key (set key_file)", cert_file);
        goto err;
    }
    ERR_clear_error();
    if (SSL_CTX_use_cert_and_key(ctx, cert, key, chain, 1) != 1) {
        snprintf(err, errlen, "%s: certificate and key do not fit: %s",
                 cert_file, ssl_reason(why, sizeof(why), "mismatch"));
        goto err;
    }
    rv = 0;
err:
    BIO_free(bio);
    X509_free(cert);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    /* the certificate file may hold the key too (PEM or PKCS#12) */
    if (cbuf != NULL)
        OPENSSL_cleanse(cbuf, clen);
    if (kbuf != NULL)
        OPENSSL_cleanse(kbuf, klen);
    if (pbuf != NULL)
        OPENSSL_cleanse(pbuf, plen);
    free(cbuf);
    free(kbuf);
    free(pbuf);
    return rv;
}

int
context_set_keylog(const char *path)
{
    keylog_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    return keylog_fd < 0 ? -1 : 0;
}

/* One NSS key log line, written at once. */
static void
keylog_cb(const SSL *ssl, const char *line)
{
    char buf[1024];
    size_t n = strlen(line);

    if (keylog_fd < 0 || n + 1 > sizeof(buf))
        return;
    memcpy(buf, line, n);
    buf[n++] = '\n';
    (void)!write(keylog_fd, buf, n);
    OPENSSL_cleanse(buf, n);
}

/*
 * OpenSSL computes a certificate's extension cache (key identifiers,
 * purposes, flags) on first use and reads its "already done" flag
 * without a lock.  The trust store's certificates are shared by every
 * thread's connections: fill their caches once the store is loaded,
 * while the context is still private to the thread that builds it.
 * (The identity's are filled when it is loaded: OpenSSL checks their
 * signatures' security level then.)
 */
static void
warm_store(X509_STORE *store)
{
    STACK_OF(X509_OBJECT) *objs;

    if (!X509_STORE_lock(store))
        return;
    objs = X509_STORE_get0_objects(store);
    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        if (x != NULL)
            X509_check_purpose(x, -1, 0);
    }
    X509_STORE_unlock(store);
    ERR_clear_error();
}

/* What client and server contexts share: protocols, ciphers, groups,
 * the trust store and the verify callback, modes.  NULL with err set. */
static SSL_CTX *
build_common(const struct policy_rule *r, const SSL_METHOD *method,
             char *err, size_t errlen)
{
    SSL_CTX *ctx;
    char why[160];

    ERR_clear_error();
    ctx = SSL_CTX_new_ex(libctx, NULL, method);
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create TLS context: %s",
                 ssl_reason(why, sizeof(why), "error"));
        return NULL;
    }
    SSL_CTX_set_security_level(ctx, r->security_level);
    if ((r->min_version && !SSL_CTX_set_min_proto_version(ctx, r->min_version)) ||
        (r->max_version && !SSL_CTX_set_max_proto_version(ctx, r->max_version))) {
        snprintf(err, errlen, "rule %s: protocol versions not available",
                 r->name);
        goto err;
    }
    if (!SSL_CTX_set_cipher_list(ctx, r->cipher_list != NULL
                                          ? r->cipher_list
                                          : DEFAULT_CIPHER_LIST)) {
        snprintf(err, errlen, "rule %s: bad cipher_list: %s", r->name,
                 ssl_reason(why, sizeof(why), "no cipher matched"));
        goto err;
    }
    if (r->ciphersuites != NULL &&
        !SSL_CTX_set_ciphersuites(ctx, r->ciphersuites)) {
        snprintf(err, errlen, "rule %s: bad ciphersuites: %s", r->name,
                 ssl_reason(why, sizeof(why), "no suite matched"));
        goto err;
    }
    if (r->ecdh_curve != NULL && !SSL_CTX_set1_groups_list(ctx, r->ecdh_curve)) {
        snprintf(err, errlen, "rule %s: bad ecdh_curve %s", r->name,
                 r->ecdh_curve);
        goto err;
    }
    if (r->ca_system) {
        if (!X509_STORE_set_default_paths_ex(SSL_CTX_get_cert_store(ctx),
                                             libctx, NULL))
            ERR_clear_error();   /* an empty system store fails verification */
    } else {
        if (r->ca_file != NULL && !SSL_CTX_load_verify_file(ctx, r->ca_file)) {
            snprintf(err, errlen, "rule %s: cannot load ca_file %s: %s",
                     r->name, r->ca_file,
                     ssl_reason(why, sizeof(why), "error"));
            goto err;
        }
        if (r->ca_path != NULL && !SSL_CTX_load_verify_dir(ctx, r->ca_path)) {
            snprintf(err, errlen, "rule %s: cannot load ca_path %s: %s",
                     r->name, r->ca_path,
                     ssl_reason(why, sizeof(why), "error"));
            goto err;
        }
    }
    if (r->check_crl) {
        /* the peer's certificate, as IO::Socket::SSL's check_crl */
        X509_STORE *store = SSL_CTX_get_cert_store(ctx);
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
        if (r->crl_file != NULL) {
            X509_LOOKUP *lu = X509_STORE_add_lookup(store, X509_LOOKUP_file());
            if (lu == NULL ||
                (X509_load_crl_file(lu, r->crl_file, X509_FILETYPE_PEM) <= 0 &&
                 X509_load_crl_file(lu, r->crl_file, X509_FILETYPE_ASN1) <= 0)) {
                snprintf(err, errlen, "rule %s: cannot load crl_file %s: %s",
                         r->name, r->crl_file,
                         ssl_reason(why, sizeof(why), "no CRL in it"));
                goto err;
            }
            ERR_clear_error();
        }
    }
    warm_store(SSL_CTX_get_cert_store(ctx));
    SSL_CTX_set_cert_verify_callback(ctx, cert_verify_cb, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                                 (r->strict_eof ? 0
                                                : SSL_OP_IGNORE_UNEXPECTED_EOF));
    /* ktls = auto or yes: OpenSSL may hand the keys to the kernel where
     * it can; whether it did is checked after the handshake */
    if (r->ktls != POLICY_KTLS_NO)
        SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
    SSL_CTX_set_read_ahead(ctx, 1);
    if (keylog_fd >= 0)
        SSL_CTX_set_keylog_callback(ctx, keylog_cb);
    return ctx;
err:
    SSL_CTX_free(ctx);
    return NULL;
}

static SSL_CTX *
build_client(const struct policy_rule *r, char *err, size_t errlen)
{
    SSL_CTX *ctx = build_common(r, TLS_client_method(), err, errlen);

    if (ctx == NULL)
        return NULL;
    if (r->cert_file != NULL &&
        load_identity(ctx, r->cert_file, r->key_file, r->passwd_file, err,
                      errlen) < 0)
        goto err;
    if (r->alpn_wire_len > 0 &&
        SSL_CTX_set_alpn_protos(ctx, r->alpn_wire,
                                (unsigned)r->alpn_wire_len) != 0) {
        snprintf(err, errlen, "rule %s: bad alpn_protocols", r->name);
        goto err;
    }
    SSL_CTX_set_verify(ctx,
                       r->verify_mode != POLICY_VERIFY_NONE ||
                               r->nfingerprints > 0
                           ? SSL_VERIFY_PEER
                           : SSL_VERIFY_NONE,
                       NULL);
    if (r->verify_mode != POLICY_VERIFY_NONE &&
        !(r->ocsp_mode & POLICY_OCSP_NO_STAPLE)) {
        SSL_CTX_set_tlsext_status_type(ctx, TLSEXT_STATUSTYPE_ocsp);
        SSL_CTX_set_tlsext_status_cb(ctx, status_cb);
    }
    if (r->session_cache_size > 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                                SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    }
    return ctx;
err:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *
context_client(const struct policy_rule *r, char *err, size_t errlen)
{
    SSL_CTX *ctx = NULL;

    if (context_init() < 0) {
        util_strlcpy(err, "cannot initialise OpenSSL", errlen);
        return NULL;
    }
    pthread_mutex_lock(&ctx_lock);
    struct rule_ctx *e = entry_for(r);
    if (e == NULL) {
        util_strlcpy(err, "out of memory", errlen);
    } else {
        if (e->ctx == NULL)
            e->ctx = build_client(r, err, errlen);
        ctx = e->ctx;
    }
    pthread_mutex_unlock(&ctx_lock);
    return ctx;
}

/* --- server contexts ---------------------------------------------------- */

/* An sni_cert name: exact (case-insensitive, trailing dot ignored), or
 * "*.suffix" for one or more leading labels, as policy patterns. */
static int
sni_name_matches(const char *pattern, const char *name)
{
    size_t pl = strlen(pattern), nl = strlen(name);

    if (nl > 0 && name[nl - 1] == '.')
        nl--;
    if (pl > 2 && pattern[0] == '*' && pattern[1] == '.') {
        size_t sl = pl - 1;   /* ".suffix" */
        return nl > sl && strncasecmp(name + nl - sl, pattern + 1, sl) == 0;
    }
    return nl == pl && strncasecmp(name, pattern, nl) == 0;
}

/* The client's SNI picks the sni_cert whose name it asks for; the rule's
 * cert_file otherwise. */
static int
servername_cb(SSL *ssl, int *alert, void *arg)
{
    struct server_data *sd = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

    if (name == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    for (size_t i = 0; i < sd->r->nsni_certs; i++) {
        if (sni_name_matches(sd->r->sni_certs[i].name, name)) {
            if (SSL_set_SSL_CTX(ssl, sd->sni[i]) == NULL) {
                *alert = SSL_AD_INTERNAL_ERROR;
                return SSL_TLSEXT_ERR_ALERT_FATAL;
            }
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* ALPN: the first protocol of the rule's list that the client offers.
 * None in common: no ALPN, as a plain server would answer. */
static int
alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
               const unsigned char *in, unsigned inlen, void *arg)
{
    struct server_data *sd = arg;
    unsigned char *sel = NULL;

    if (SSL_select_next_proto(&sel, outlen, sd->r->alpn_wire,
                              (unsigned)sd->r->alpn_wire_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int
ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv,
          EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
    struct conn *c = SSL_get_ex_data(ssl, conn_idx);
    struct server_data *sd;

    /* The context that issued the ticket is the one the connection was
     * accepted with, even after an SNI switch. */
    if (c != NULL && c->server_ctx != NULL)
        ctx = c->server_ctx;
    sd = SSL_CTX_get_ex_data(ctx, server_idx);
    if (sd == NULL || sd->tickets == NULL)
        return enc ? -1 : 0;
    return tickets_crypt(sd->tickets, libctx, name, iv, cctx, hctx, enc);
}

/* The settings of a server rule that every context of it shares: the
 * main one and those of its sni_cert names. */
static SSL_CTX *
build_server_one(const struct policy_rule *r, char *err, size_t errlen)
{
    SSL_CTX *ctx = build_common(r, TLS_server_method(), err, errlen);
    unsigned char sid[SSL_MAX_SID_CTX_LENGTH];
    int mode = SSL_VERIFY_NONE;

    if (ctx == NULL)
        return NULL;
    if (r->verify_mode != POLICY_VERIFY_NONE || r->nfingerprints > 0)
        mode = SSL_VERIFY_PEER;
    if (r->verify_mode == POLICY_VERIFY_REQUIRE)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, NULL);
    if (r->client_ca_file != NULL) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file_ex(
            r->client_ca_file, libctx, NULL);
        if (names == NULL) {
            char why[160];
            snprintf(err, errlen, "rule %s: cannot read client_ca_file %s: "
                     "%s", r->name, r->client_ca_file,
                     ssl_reason(why, sizeof(why), "no certificate in it"));
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    if (r->honor_cipher_order)
        SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Sessions are bound to the rule: a session of one rule never
     * resumes under another (whose verification may differ). */
    int n = snprintf((char *)sid, sizeof(sid), "tlsshim:%d:%.16s", r->index,
                     r->name);
    SSL_CTX_set_session_id_context(ctx, sid,
                                   (unsigned)(n < (int)sizeof(sid)
                                                  ? n
                                                  : (int)sizeof(sid) - 1));
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    return ctx;
}

static SSL_CTX *
build_server(const struct policy_rule *r, const struct sockaddr *bound,
             char *err, size_t errlen)
{
    struct server_data *sd = calloc(1, sizeof(*sd));
    SSL_CTX *ctx = NULL;
    size_t i;

    if (sd == NULL) {
        util_strlcpy(err, "out of memory", errlen);
        return NULL;
    }
    sd->r = r;
    if ((ctx = build_server_one(r, err, errlen)) == NULL)
        goto err;
    if (strcmp(r->cert_file, "auto") == 0) {
        if (autocert_load(ctx, libctx, r->auto_ca_dir, bound, err,
                          errlen) < 0)
            goto err;
    } else if (load_identity(ctx, r->cert_file, r->key_file, r->passwd_file,
                             err, errlen) < 0) {
        goto err;
    }
    if (r->nsni_certs > 0) {
        sd->sni = calloc(r->nsni_certs, sizeof(*sd->sni));
        if (sd->sni == NULL) {
            util_strlcpy(err, "out of memory", errlen);
            goto err;
        }
        for (i = 0; i < r->nsni_certs; i++) {
            const struct policy_sni_cert *sc = &r->sni_certs[i];
            char why[256];
            if ((sd->sni[i] = build_server_one(r, err, errlen)) == NULL)
                goto err;
            if (load_identity(sd->sni[i], sc->cert_file, sc->key_file,
                              r->passwd_file, why, sizeof(why)) < 0) {
                snprintf(err, errlen, "sni_cert %s: %s", sc->name, why);
                goto err;
            }
        }
        SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
        SSL_CTX_set_tlsext_servername_arg(ctx, sd);
    }
    if (r->alpn_wire_len > 0)
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, sd);
    if (r->ticket_key_file != NULL) {
        if ((sd->tickets = tickets_open(r->ticket_key_file, err,
                                        errlen)) == NULL)
            goto err;
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    }
    /* Without a ticket key file, the keys OpenSSL made with this context
     * at listen() are inherited by forked workers, so a client resumes
     * whichever worker it reaches. */
    SSL_CTX_set_ex_data(ctx, server_idx, sd);
    return ctx;
err:
    if (sd->sni != NULL)
        for (i = 0; i < r->nsni_certs; i++)
            SSL_CTX_free(sd->sni[i]);
    free(sd->sni);
    tickets_free(sd->tickets);
    free(sd);
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *
context_server(const struct policy_rule *r, const struct sockaddr *bound,
               char *err, size_t errlen)
{
    SSL_CTX *ctx = NULL;
    char addr[80] = "";

    if (context_init() < 0) {
        util_strlcpy(err, "cannot initialise OpenSSL", errlen);
        return NULL;
    }
    int is_auto = strcmp(r->cert_file, "auto") == 0;
    if (is_auto)
        util_ip_str(bound, addr, sizeof(addr));
    pthread_mutex_lock(&ctx_lock);
    struct rule_ctx *e = entry_for(r);
    if (e == NULL) {
        util_strlcpy(err, "out of memory", errlen);
    } else if (!is_auto) {
        if (e->ctx == NULL)
            e->ctx = build_server(r, bound, err, errlen);
        ctx = e->ctx;
    } else {
        for (size_t i = 0; i < e->nautos && ctx == NULL; i++)
            if (strcmp(e->autos[i].addr, addr) == 0)
                ctx = e->autos[i].ctx;
        if (ctx == NULL) {
            struct auto_entry *n = realloc(e->autos,
                                           (e->nautos + 1) * sizeof(*n));
            if (n == NULL) {
                util_strlcpy(err, "out of memory", errlen);
            } else {
                e->autos = n;
                ctx = build_server(r, bound, err, errlen);
                if (ctx != NULL) {
                    util_strlcpy(n[e->nautos].addr, addr,
                                 sizeof(n[e->nautos].addr));
                    n[e->nautos++].ctx = ctx;
                }
            }
        }
    }
    pthread_mutex_unlock(&ctx_lock);
    return ctx;
}

void
context_free_all(void)
{
    pthread_mutex_lock(&ctx_lock);
    for (size_t i = 0; i < nrule_ctxs; i++) {
        SSL_CTX_free(rule_ctxs[i].ctx);
        for (int j = 0; j < rule_ctxs[i].nsessions; j++) {
            free(rule_ctxs[i].sessions[j].key);
            SSL_SESSION_free(rule_ctxs[i].sessions[j].sess);
        }
        free(rule_ctxs[i].sessions);
        for (size_t j = 0; j < rule_ctxs[i].nautos; j++)
            SSL_CTX_free(rule_ctxs[i].autos[j].ctx);
        free(rule_ctxs[i].autos);
    }
    free(rule_ctxs);
    rule_ctxs = NULL;
    nrule_ctxs = 0;
    pthread_mutex_unlock(&ctx_lock);
}
