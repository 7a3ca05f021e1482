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
 *
 * Before a session's first handshake call, if its socket is an
 * enforce-rule connection (libtlsshim.so is asked, as for OpenSSL), the
 * program's priorities (recorded by the priority hooks below) are set
 * again with the rule's restrictions appended: the versions outside the
 * rule's range, and the ciphers, MACs and key exchanges that no suite of
 * the rule's lists uses, are removed, so the hello offers nothing the
 * rule refuses outright.  GnuTLS priorities are made of algorithms, not
 * suites: a suite the rule refuses that combines allowed algorithms is
 * still offered, and refused after the handshake if negotiated.  An OCSP
 * staple is requested too, and checked with the certificate.
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
    int (*priority_init)(gnutls_priority_t *, const char *, const char **);
    int (*priority_init2)(gnutls_priority_t *, const char *, const char **,
                          unsigned);
    void (*priority_deinit)(gnutls_priority_t);
    int (*priority_set)(gnutls_session_t, gnutls_priority_t);
    int (*priority_set_direct)(gnutls_session_t, const char *,
                               const char **);
    int (*set_default_priority)(gnutls_session_t);
    int (*set_default_priority_append)(gnutls_session_t, const char *,
                                       const char **, unsigned);
    int (*transport_get_int)(gnutls_session_t);
    const char *(*suite_info)(size_t, unsigned char *, gnutls_kx_algorithm_t *,
                              gnutls_cipher_algorithm_t *,
                              gnutls_mac_algorithm_t *, gnutls_protocol_t *);
    const char *(*kx_name)(gnutls_kx_algorithm_t);
    const char *(*cipher_name)(gnutls_cipher_algorithm_t);
    const char *(*mac_name)(gnutls_mac_algorithm_t);
    int (*ocsp_enable)(gnutls_session_t, gnutls_datum_t *, size_t,
                       gnutls_datum_t *);
    int (*ocsp_get)(gnutls_session_t, gnutls_datum_t *);
    void (*get_random)(gnutls_session_t, gnutls_datum_t *, gnutls_datum_t *);
    const gnutls_datum_t *(*get_peers)(gnutls_session_t, unsigned int *);
    gnutls_protocol_t (*protocol)(gnutls_session_t);
    const char *(*ciphersuite)(gnutls_session_t);
    gnutls_kx_algorithm_t (*kx)(gnutls_session_t);
    int (*is_resumed)(gnutls_session_t);
    int (*error_is_fatal)(int);
    const char *(*strerror)(int);
    void (*set_hook)(gnutls_session_t, unsigned, int,
                     gnutls_handshake_hook_func);
    ssize_t (*send_early_data)(gnutls_session_t, const void *, size_t);
    int (*alert_send)(gnutls_session_t, gnutls_alert_level_t,
                      gnutls_alert_description_t);
} next;

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Prepared and bound sessions.  guarded by table_lock */
struct binding {
    gnutls_session_t session;
    void *token;
    int bound;     /* its hello was claimed: the rule verifies it */
    int verdict;   /* 0 pending, 1 established, -1 failed */
    int checked;   /* the peer passed the rule's check in the handshake */
    int hooked;    /* gate() is the session's handshake hook */
};
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct binding *table;
static size_t ntable, table_cap;

/* The priorities a program gave a session or a priority cache: a string
 * (NULL: none) that is whole, or appended to GnuTLS's default (def).
 * guarded by table_lock */
struct prio {
    void *key;     /* gnutls_session_t or gnutls_priority_t */
    char *str;
    int def;
};
static struct prio *prios;
static size_t nprios, prios_cap;

/* The handshake hook a program gave a session, called by ours (gate).
 * guarded by table_lock */
struct prog_hook {
    gnutls_session_t session;
    unsigned htype;
    int when;
    gnutls_handshake_hook_func fn;
};
static struct prog_hook *hooks;
static size_t nhooks, hooks_cap;

/* Sessions that were given early data before they were known to be on
 * an enforce-rule socket.  guarded by table_lock */
static gnutls_session_t *early;
static size_t nearly, early_cap;

/* Table lock held: 1 when s is among them; forget: and drop it. */
static int
gave_early(gnutls_session_t s, int forget)
{
    for (size_t i = 0; i < nearly; i++) {
        if (early[i] == s) {
            if (forget)
                early[i] = early[--nearly];
            return 1;
        }
    }
    return 0;
}

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
    NEXT(priority_init, "gnutls_priority_init");
    NEXT(priority_init2, "gnutls_priority_init2");
    NEXT(priority_deinit, "gnutls_priority_deinit");
    NEXT(priority_set, "gnutls_priority_set");
    NEXT(priority_set_direct, "gnutls_priority_set_direct");
    NEXT(set_default_priority, "gnutls_set_default_priority");
    NEXT(set_default_priority_append, "gnutls_set_default_priority_append");
    FIND(transport_get_int, "gnutls_transport_get_int");
    FIND(suite_info, "gnutls_cipher_suite_info");
    FIND(kx_name, "gnutls_kx_get_name");
    FIND(cipher_name, "gnutls_cipher_get_name");
    FIND(mac_name, "gnutls_mac_get_name");
    FIND(ocsp_enable, "gnutls_ocsp_status_request_enable_client");
    FIND(ocsp_get, "gnutls_ocsp_status_request_get");
    NEXT(set_hook, "gnutls_handshake_set_hook_function");
    NEXT(send_early_data, "gnutls_record_send_early_data");
    FIND(alert_send, "gnutls_alert_send");
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

/* A new entry for s.  Table lock held; NULL when out of memory. */
static struct binding *
add_binding(gnutls_session_t s)
{
    if (ntable == table_cap) {
        size_t cap = table_cap ? table_cap * 2 : 16;
        struct binding *t = realloc(table, cap * sizeof(*t));
        if (t == NULL)
            return NULL;
        table = t;
        table_cap = cap;
    }
    memset(&table[ntable], 0, sizeof(table[ntable]));
    table[ntable].session = s;
    return &table[ntable++];
}

int
enforce_gnutls_claim(void *obj, const unsigned char random[32], void *token)
{
    gnutls_session_t s = obj;
    gnutls_datum_t client = {0}, server = {0};
    struct binding *b;
    void *old = NULL;
    int rv = 0;

    init();
    if (next.get_random == NULL)
        return ENFORCE_NOT_MINE;
    next.get_random(s, &client, &server);
    if (client.data == NULL || client.size != 32 ||
        memcmp(client.data, random, 32) != 0)
        return ENFORCE_NOT_MINE;
    pthread_mutex_lock(&table_lock);
    if ((b = find(s)) == NULL)
        b = add_binding(s);
    if (b != NULL && !b->bound) {
        /* the claim's reference replaces the one prepare took */
        old = b->token;
        b->token = token;
        b->bound = 1;
        rv = 1;
    }
    pthread_mutex_unlock(&table_lock);
    if (old != NULL)
        enforce_core->release(old);
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

/* The rule's checks on the peer of s, in its handshake (final: it just
 * ended well, and is logged as established when they pass).  Returns 0,
 * or the GnuTLS error the handshake fails with. */
static int
check_session(gnutls_session_t s, void *token, int final, int checked)
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
    if (checked) {
        /* the gate checked the chain; the suite is known now */
        p.leaf = NULL;
        if (enforce_core->check(token, &p, &err) < 0)
            goto out;
        p.leaf = sk_X509_value(chain, 0);
        enforce_core->established(token, &p);
        rv = 0;
        goto out;
    }
    if (enforce_core->check(token, &p, &err) < 0)
        goto out;
    if (!p.resumed) {
        gnutls_datum_t staple = {0};
        if (next.ocsp_get == NULL || next.ocsp_get(s, &staple) < 0)
            staple.data = NULL;
        if (enforce_core->ocsp(token, "GnuTLS", staple.data,
                               staple.data != NULL ? staple.size : 0,
                               &err) < 0)
            goto out;
    }
    if (final)
        enforce_core->established(token, &p);
    rv = 0;
out:
    sk_X509_pop_free(chain, X509_free);
    return rv;
}

/* Table lock held. */
static struct prog_hook *
find_hook(gnutls_session_t s)
{
    for (size_t i = 0; i < nhooks; i++)
        if (hooks[i].session == s)
            return &hooks[i];
    return NULL;
}

/* Table lock held. */
static void
forget_hook(gnutls_session_t s)
{
    struct prog_hook *h = find_hook(s);

    if (h != NULL)
        *h = hooks[--nhooks];
}

/* The messages a client sends only after it has the server's
 * certificate (or the resumed session's): its Certificate first of all. */
static int
after_server_certificate(unsigned htype)
{
    switch (htype) {
    case GNUTLS_HANDSHAKE_CERTIFICATE_PKT:
    case GNUTLS_HANDSHAKE_CLIENT_KEY_EXCHANGE:
    case GNUTLS_HANDSHAKE_CERTIFICATE_VERIFY:
    case GNUTLS_HANDSHAKE_FINISHED:
    case GNUTLS_HANDSHAKE_END_OF_EARLY_DATA:
        return 1;
    default:
        return 0;
    }
}

/*
 * The handshake hook of a prepared session.  Before the client's next
 * flight leaves (its certificate, key exchange or Finished), the server's
 * certificate is checked by the rule: a failure ends the handshake there,
 * so a client certificate never goes to a server the rule refuses.  Then
 * the program's own hook, if it set one.
 */
static int
gate(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
     const gnutls_datum_t *msg)
{
    struct binding *b;
    struct prog_hook *h;
    gnutls_handshake_hook_func prog = NULL;
    void *token = NULL;
    int rv;

    pthread_mutex_lock(&table_lock);
    b = find(s);
    if (!incoming && when == GNUTLS_HOOK_PRE &&
        after_server_certificate(htype) && b != NULL && b->bound &&
        b->verdict == 0 && !b->checked && enforce_core != NULL)
        token = b->token;
    if ((h = find_hook(s)) != NULL &&
        (h->htype == GNUTLS_HANDSHAKE_ANY || h->htype == htype) &&
        (h->when == GNUTLS_HOOK_BOTH || (unsigned)h->when == when))
        prog = h->fn;
    pthread_mutex_unlock(&table_lock);
    /* a resumed session shows its peer's certificates only when the
     * handshake ends, where it is checked; it has no client certificate
     * to protect (TLS 1.3 resumption asks for none) */
    if (token != NULL && next.is_resumed != NULL && next.is_resumed(s))
        token = NULL;
    if (token != NULL) {
        rv = check_session(s, token, 0, 0);
        pthread_mutex_lock(&table_lock);
        if ((b = find(s)) != NULL) {
            if (rv != 0)
                b->verdict = -1;
            else
                b->checked = 1;
        }
        pthread_mutex_unlock(&table_lock);
        if (rv != 0)
            return rv;
    }
    return prog != NULL ? prog(s, htype, when, incoming, msg) : 0;
}

/* --- the program's priorities, and the rule's restrictions ------------ */

/* Table lock held. */
static struct prio *
find_prio(void *key)
{
    for (size_t i = 0; i < nprios; i++)
        if (prios[i].key == key)
            return &prios[i];
    return NULL;
}

/* Table lock held. */
static void
forget_prio(void *key)
{
    struct prio *p = find_prio(key);

    if (p != NULL) {
        free(p->str);
        *p = prios[--nprios];
    }
}

/* Record what key was given: str (NULL: none) whole, or appended to the
 * default (def).  A record that cannot be kept is dropped, so the
 * session's offer is then left as it is (and checked after). */
static void
note_prio(void *key, const char *str, int def)
{
    char *copy = str != NULL ? strdup(str) : NULL;

    pthread_mutex_lock(&table_lock);
    forget_prio(key);
    if ((str == NULL || copy != NULL) && nprios == prios_cap) {
        size_t cap = prios_cap ? prios_cap * 2 : 16;
        struct prio *t = realloc(prios, cap * sizeof(*t));
        if (t != NULL) {
            prios = t;
            prios_cap = cap;
        }
    }
    if ((str == NULL || copy != NULL) && nprios < prios_cap) {
        prios[nprios].key = key;
        prios[nprios].str = copy;
        prios[nprios].def = def;
        nprios++;
        copy = NULL;
    }
    pthread_mutex_unlock(&table_lock);
    free(copy);
}

/* Append "-NAME" to the priority string in buf (once); 0 if it does not
 * fit. */
static int
prio_remove(char *buf, size_t len, const char *prefix, const char *name)
{
    char item[80];
    size_t used = strlen(buf), n;

    if (name == NULL)
        return 1;
    snprintf(item, sizeof(item), ":-%s%s", prefix, name);
    /* already there: ":-X" followed by ':' or the end */
    for (const char *at = strstr(buf, item); at != NULL;
         at = strstr(at + 1, item))
        if (at[strlen(item)] == ':' || at[strlen(item)] == '\0')
            return 1;
    n = strlen(item);
    if (used + n + 1 > len)
        return 0;
    memcpy(buf + used, item, n + 1);
    return 1;
}

/*
 * The rule's restrictions as GnuTLS priority removals (":-VERS-TLS1.0:
 * -RSA:..."): versions outside its range, and each cipher, MAC and key
 * exchange of GnuTLS's suites that no suite the rule allows uses.
 * Returns 0 when they do not fit in buf.
 */
static int
restrictions(void *token, const struct tlsshim_enforce_offer *o, char *buf,
             size_t len)
{
    static const struct { int v; const char *name; } versions[] = {
        {SSL3_VERSION, "SSL3.0"}, {TLS1_VERSION, "TLS1.0"},
        {TLS1_1_VERSION, "TLS1.1"}, {TLS1_2_VERSION, "TLS1.2"},
        {TLS1_3_VERSION, "TLS1.3"},
    };
    enum { ALGS = 256 };
    unsigned char kx_used[ALGS] = {0}, kx_ok[ALGS] = {0};
    unsigned char ci_used[ALGS] = {0}, ci_ok[ALGS] = {0};
    unsigned char mac_used[ALGS] = {0}, mac_ok[ALGS] = {0};
    int ok = 1;

    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
        if ((o->min_version != 0 && versions[i].v < o->min_version) ||
            (o->max_version != 0 && versions[i].v > o->max_version))
            ok &= prio_remove(buf, len, "VERS-", versions[i].name);
    if (next.suite_info == NULL)
        return ok;
    for (size_t i = 0;; i++) {
        unsigned char id[2];
        gnutls_kx_algorithm_t kx;
        gnutls_cipher_algorithm_t ci;
        gnutls_mac_algorithm_t mac;
        gnutls_protocol_t minv;
        if (next.suite_info(i, id, &kx, &ci, &mac, &minv) == NULL)
            break;
        if ((unsigned)kx >= ALGS || (unsigned)ci >= ALGS ||
            (unsigned)mac >= ALGS)
            continue;
        int allowed = enforce_core->allows_suite(token,
                                                 (unsigned)id[0] << 8 | id[1]);
        /* TLS 1.3 suites name no key exchange */
        if (kx != GNUTLS_KX_UNKNOWN) {
            kx_used[kx] = 1;
            kx_ok[kx] |= allowed;
        }
        ci_used[ci] = 1;
        ci_ok[ci] |= allowed;
        mac_used[mac] = 1;
        mac_ok[mac] |= allowed;
    }
    for (unsigned a = 1; a < ALGS; a++) {
        if (kx_used[a] && !kx_ok[a] && next.kx_name != NULL)
            ok &= prio_remove(buf, len, "", next.kx_name(a));
        if (ci_used[a] && !ci_ok[a] && next.cipher_name != NULL)
            ok &= prio_remove(buf, len, "", next.cipher_name(a));
        if (mac_used[a] && !mac_ok[a] && next.mac_name != NULL)
            ok &= prio_remove(buf, len, "", next.mac_name(a));
    }
    return ok;
}

/*
 * Before the first handshake call of s: if its socket is an enforce-rule
 * connection whose hello has not left, take a reference to it, narrow the
 * program's priorities to the rule and ask for an OCSP staple.
 */
static void
prepare(gnutls_session_t s)
{
    struct tlsshim_enforce_offer o;
    struct binding *b;
    void *token;
    char restr[1024], *full = NULL, note[1400];
    const char *prog = NULL, *errpos = NULL;
    int fd, def = 0, known = 0, rv;

    if (enforce_core == NULL || next.transport_get_int == NULL)
        return;
    pthread_mutex_lock(&table_lock);
    b = find(s);
    pthread_mutex_unlock(&table_lock);
    if (b != NULL)
        return;   /* prepared already, or bound */
    if ((fd = next.transport_get_int(s)) < 0)
        return;
    if ((token = enforce_core->prepare(fd, &o)) == NULL)
        return;
    pthread_mutex_lock(&table_lock);
    if ((b = add_binding(s)) != NULL) {
        b->token = token;
        b->hooked = next.set_hook != NULL;
    }
    struct prio *p = find_prio(s);
    if (p != NULL) {
        known = 1;
        def = p->def;
        if (p->str != NULL && (full = strdup(p->str)) == NULL)
            known = 0;
    }
    pthread_mutex_unlock(&table_lock);
    if (b == NULL) {
        enforce_core->release(token);
        return;
    }
    pthread_mutex_lock(&table_lock);
    int had_early = gave_early(s, 0);
    pthread_mutex_unlock(&table_lock);
    if (had_early) {
        /* it would leave with the hello, before the server is checked */
        enforce_core->failed(token, "the program gave GnuTLS early data "
                             "(0-RTT) before its socket was connected; "
                             "connection cut before the hello");
        return;
    }
    /* the rule's check runs in the handshake, before the client's next
     * flight; the program's hook (kept by the hook below) after it */
    if (next.set_hook != NULL)
        next.set_hook(s, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_BOTH, gate);
    prog = full;
    if (!restrictions(token, &o, restr, sizeof(restr))) {
        enforce_core->failed(token, "the program's GnuTLS priorities could "
                             "not be narrowed to the rule (too long)");
        goto out;
    }
    if (!known) {
        enforce_core->note(token, "the program's GnuTLS priorities are not "
                           "known (set in a way tlsshim does not see): its "
                           "offer is left as it is and checked after the "
                           "handshake");
    } else if (restr[0] != '\0') {
        /* the program's string, then the removals */
        size_t n = (prog != NULL ? strlen(prog) : 0) + strlen(restr) + 1;
        char *str = malloc(n);
        if (str == NULL) {
            enforce_core->failed(token, "out of memory");
            goto out;
        }
        snprintf(str, n, "%s%s", prog != NULL ? prog : "",
                 prog != NULL ? restr : restr + 1);
        rv = def ? next.set_default_priority_append(s, str, &errpos, 0)
                 : next.priority_set_direct(s, str, &errpos);
        if (def)
            snprintf(note, sizeof(note), "the program's GnuTLS priorities "
                     "(the default%s%s) narrowed to the rule: the default + "
                     "%s", prog != NULL ? " + " : "", prog != NULL ? prog : "",
                     str);
        else
            snprintf(note, sizeof(note), "the program's GnuTLS priorities "
                     "\"%s\" narrowed to the rule: \"%s\"", prog, str);
        if (rv < 0) {
            /* nothing left to offer (GnuTLS refuses such priorities):
             * the connection fails before the hello is made */
            snprintf(note, sizeof(note), "the program's GnuTLS priorities "
                     "leave nothing the rule allows (narrowed: \"%s%s\": "
                     "%s)", def ? "the default + " : "", str,
                     next.strerror != NULL ? next.strerror(rv) : "refused");
            free(str);
            enforce_core->failed(token, note);
            goto out;
        }
        free(str);
        enforce_core->note(token, note);
    }
    if (o.request_staple && next.ocsp_enable != NULL)
        (void)next.ocsp_enable(s, NULL, 0, NULL);
out:
    free(full);
}

/* --- the hooks ------------------------------------------------------------ */

HOOK int
gnutls_priority_init(gnutls_priority_t *cache, const char *str,
                     const char **errpos)
{
    int rv;

    init();
    if (next.priority_init == NULL)
        return GNUTLS_E_INTERNAL_ERROR;
    rv = next.priority_init(cache, str, errpos);
    if (rv == 0 && cache != NULL)
        note_prio(*cache, str, str == NULL);
    return rv;
}

HOOK int
gnutls_priority_init2(gnutls_priority_t *cache, const char *str,
                      const char **errpos, unsigned flags)
{
    int rv;

    init();
    if (next.priority_init2 == NULL)
        return GNUTLS_E_INTERNAL_ERROR;
    rv = next.priority_init2(cache, str, errpos, flags);
    if (rv == 0 && cache != NULL)
        note_prio(*cache, str,
                  str == NULL || (flags & GNUTLS_PRIORITY_INIT_DEF_APPEND));
    return rv;
}

HOOK void
gnutls_priority_deinit(gnutls_priority_t cache)
{
    init();
    pthread_mutex_lock(&table_lock);
    forget_prio(cache);
    pthread_mutex_unlock(&table_lock);
    if (next.priority_deinit != NULL)
        next.priority_deinit(cache);
}

HOOK int
gnutls_priority_set(gnutls_session_t s, gnutls_priority_t cache)
{
    char *str = NULL;
    int rv, def = 0, known = 0;

    init();
    if (next.priority_set == NULL)
        return GNUTLS_E_INTERNAL_ERROR;
    rv = next.priority_set(s, cache);
    if (rv != 0)
        return rv;
    pthread_mutex_lock(&table_lock);
    struct prio *p = find_prio(cache);
    if (p != NULL) {
        def = p->def;
        known = p->str == NULL || (str = strdup(p->str)) != NULL;
    }
    if (!known)
        forget_prio(s);
    pthread_mutex_unlock(&table_lock);
    if (known)
        note_prio(s, str, def);
    free(str);
    return rv;
}

HOOK int
gnutls_priority_set_direct(gnutls_session_t s, const char *str,
                           const char **errpos)
{
    int rv;

    init();
    if (next.priority_set_direct == NULL)
        return GNUTLS_E_INTERNAL_ERROR;
    rv = next.priority_set_direct(s, str, errpos);
    if (rv == 0)
        note_prio(s, str, str == NULL);
    return rv;
}

HOOK int
gnutls_set_default_priority(gnutls_session_t s)
{
    int rv;

    init();
    if (next.set_default_priority == NULL)
        return GNUTLS_E_INTERNAL_ERROR;
    rv = next.set_default_priority(s);
    if (rv == 0)
        note_prio(s, NULL, 1);
    return rv;
}

HOOK int
gnutls_set_default_priority_append(gnutls_session_t s, const char *add,
                                   const char **errpos, unsigned flags)
{
    int rv;

    init();
    if (next.set_default_priority_append == NULL)
        return GNUTLS_E_INTERNAL_ERROR;
    rv = next.set_default_priority_append(s, add, errpos, flags);
    if (rv == 0)
        note_prio(s, add, 1);
    return rv;
}

/* A program's hook on a session whose hook is ours is called by ours. */
HOOK void
gnutls_handshake_set_hook_function(gnutls_session_t s, unsigned int htype,
                                   int when, gnutls_handshake_hook_func fn)
{
    struct binding *b;
    struct prog_hook *h;
    int ours = 0;

    init();
    pthread_mutex_lock(&table_lock);
    forget_hook(s);
    if (fn != NULL && nhooks == hooks_cap) {
        size_t cap = hooks_cap ? hooks_cap * 2 : 16;
        struct prog_hook *t = realloc(hooks, cap * sizeof(*t));
        if (t != NULL) {
            hooks = t;
            hooks_cap = cap;
        }
    }
    if (fn != NULL && nhooks < hooks_cap) {
        h = &hooks[nhooks++];
        h->session = s;
        h->htype = htype;
        h->when = when;
        h->fn = fn;
    }
    ours = (b = find(s)) != NULL && b->hooked;
    pthread_mutex_unlock(&table_lock);
    /* a session that is not ours gets the hook as GnuTLS gives it; the
     * record above is then never used */
    if (!ours && next.set_hook != NULL)
        next.set_hook(s, htype, when, fn);
}

/*
 * Early data (TLS 1.3 0-RTT) leaves with the ClientHello, before the
 * server's certificate can be checked: refused on an enforce-rule socket.
 * A session whose socket is not known yet to be one (not set, or not
 * connected yet) may take it, and is remembered: if its handshake then
 * begins on an enforce-rule socket, the connection is cut before the
 * hello (prepare).  Returns what GnuTLS returns, or
 * GNUTLS_E_INVALID_REQUEST.
 */
HOOK ssize_t
gnutls_record_send_early_data(gnutls_session_t s, const void *data,
                              size_t len)
{
    struct binding *b;
    void *token = NULL;
    ssize_t rv;

    init();
    if (next.send_early_data == NULL)
        return GNUTLS_E_INTERNAL_ERROR;
    if (enforce_core != NULL) {
        prepare(s);
        pthread_mutex_lock(&table_lock);
        if ((b = find(s)) != NULL)
            token = b->token;
        pthread_mutex_unlock(&table_lock);
    }
    if (token != NULL) {
        if (enforce_core->warn != NULL)
            enforce_core->warn(token, "the program's GnuTLS early data "
                               "(0-RTT) refused: it would leave before the "
                               "server's certificate is checked");
        return GNUTLS_E_INVALID_REQUEST;
    }
    pthread_mutex_lock(&table_lock);
    if (!gave_early(s, 0) && nearly == early_cap) {
        size_t cap = early_cap ? early_cap * 2 : 16;
        gnutls_session_t *t = realloc(early, cap * sizeof(*t));
        if (t != NULL) {
            early = t;
            early_cap = cap;
        }
    }
    int noted = gave_early(s, 0) || nearly < early_cap;
    if (!gave_early(s, 0) && nearly < early_cap)
        early[nearly++] = s;
    pthread_mutex_unlock(&table_lock);
    /* fail closed: a session that cannot be remembered takes none */
    if (!noted)
        return GNUTLS_E_MEMORY_ERROR;
    rv = next.send_early_data(s, data, len);
    return rv;
}

HOOK int
gnutls_handshake(gnutls_session_t s)
{
    struct binding *b;
    void *token = NULL;
    int rv, bound = 0, checked = 0, renego = 0;

    init();
    if (next.handshake == NULL)
        return GNUTLS_E_INTERNAL_ERROR;
    /* a TLS 1.2 renegotiation would bring a peer the rule has not
     * checked: refused, with the alert that says so */
    pthread_mutex_lock(&table_lock);
    if ((b = find(s)) != NULL && b->bound && b->verdict == 1 &&
        next.protocol != NULL && next.protocol(s) != GNUTLS_TLS1_3) {
        renego = 1;
        token = b->token;
    }
    pthread_mutex_unlock(&table_lock);
    if (renego) {
        if (next.alert_send != NULL)
            (void)next.alert_send(s, GNUTLS_AL_WARNING,
                                  GNUTLS_A_NO_RENEGOTIATION);
        if (token != NULL && enforce_core != NULL &&
            enforce_core->warn != NULL)
            enforce_core->warn(token, "the program's GnuTLS renegotiation "
                               "refused: the peer verified by the rule "
                               "stays the peer");
        return GNUTLS_E_UNSAFE_RENEGOTIATION_DENIED;
    }
    prepare(s);
    enforce_enter(ENFORCE_GNUTLS, s);
    rv = next.handshake(s);
    enforce_leave();

    pthread_mutex_lock(&table_lock);
    b = find(s);
    if (b != NULL && b->verdict == 0 && enforce_core != NULL &&
        (rv == 0 || (next.error_is_fatal != NULL && next.error_is_fatal(rv)))) {
        b->verdict = rv == 0 && b->bound ? 1 : -1;
        token = b->token;
        bound = b->bound;
        checked = b->checked;
    }
    pthread_mutex_unlock(&table_lock);
    if (token == NULL)
        return rv;
    if (rv == 0 && !bound)
        return rv;   /* cannot be: a hello that left was claimed */
    if (rv != 0) {
        char why[200];
        snprintf(why, sizeof(why), "the program's GnuTLS handshake failed: "
                 "%s", next.strerror != NULL ? next.strerror(rv) : "error");
        enforce_core->failed(token, why);
        return rv;
    }
    if ((rv = check_session(s, token, 1, checked)) != 0) {
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
    int verdict = 0, bound = 0;

    init();
    pthread_mutex_lock(&table_lock);
    if ((b = find(s)) != NULL) {
        token = b->token;
        verdict = b->verdict;
        bound = b->bound;
        *b = table[--ntable];
    }
    forget_prio(s);
    forget_hook(s);
    (void)gave_early(s, 1);
    pthread_mutex_unlock(&table_lock);
    if (token != NULL && enforce_core != NULL) {
        if (verdict == 0 && bound)
            enforce_core->failed(token, "the program's GnuTLS handshake did "
                                 "not complete");
        enforce_core->release(token);
    }
    if (next.deinit != NULL)
        next.deinit(s);
}

#endif
