/*
 * tlsshim --fingerprint (SPEC section 1): connect to HOST:PORT from
 * tlsshim's own process (no preload), take whatever certificate the
 * server presents, and show what deciding about it needs: its names and
 * validity, whether the policy's rule for that destination accepts it and
 * if not why, and the `fingerprint = ALGO$HEX` line that pins it.  The
 * handshake itself verifies nothing, so that a certificate the policy
 * refuses can still be shown; the verdict is computed afterwards with the
 * rule's own trust store, name and settings, as the shim would apply them.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cli.h"
#include "context.h"
#include "verify.h"

/* Exit status when no certificate could be obtained. */
#define EXIT_NO_CERTIFICATE 1
/* Seconds for the TCP connect, and for the handshake unless the rule sets
 * handshake_timeout itself. */
#define DEFAULT_TIMEOUT_S 10
/* Width of the labels of the output. */
#define LABEL "%-13s"

/* The algorithms the policy's fingerprint key accepts (tlsshim.conf(5)). */
static const char *const algorithms[] = {
    "sha1", "sha224", "sha256", "sha384", "sha512",
};

/* What the handshake obtained: the certificates as the server sent them. */
struct peer_certs {
    X509 *leaf;
    STACK_OF(X509) *chain; /* leaf first; not verified */
};

/* The destination and what the policy says about it. */
struct target {
    char host[256];        /* HOST as given (no brackets) */
    unsigned port;
    int is_name;
    struct sockaddr_storage addr; /* the address connected to */
    char addr_text[128];   /* IP:PORT */
    const struct policy_rule *rule;
    const char *matched;   /* the name that matched the rule, or NULL */
    char verify_name[256];
    char sni[256];         /* "" for none */
};

/* The verdict of the policy on the certificate. */
struct verdict {
    const char *summary;   /* "ok", "ok (fingerprint)", "failed"... */
    int unchecked;         /* verify_mode = none: reasons are remarks */
    char reasons[4][512];
    size_t nreasons;
};

/* --- connecting ---------------------------------------------------------- */

static int
remaining_ms(int64_t deadline_ms)
{
    int64_t left = deadline_ms - util_now_ms();

    if (left <= 0)
        return 0;
    return left > 60000 ? 60000 : (int)left;
}

/* A non-blocking TCP connection to ai within timeout_s; the fd, or -1
 * with errno set. */
static int
connect_one(const struct addrinfo *ai, int timeout_s)
{
    int64_t deadline = util_now_ms() + (int64_t)timeout_s * 1000;
    struct pollfd pfd;
    socklen_t elen = sizeof(int);
    int fd, err = 0, rc;

    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS)
        goto err;
    pfd.fd = fd;
    pfd.events = POLLOUT;
    for (;;) {
        int wait = remaining_ms(deadline);

        if (wait == 0) {
            errno = ETIMEDOUT;
            goto err;
        }
        rc = poll(&pfd, 1, wait);
        if (rc > 0)
            break;
        if (rc < 0 && errno != EINTR)
            goto err;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
        goto err;
    if (err != 0) {
        errno = err;
        goto err;
    }
    return fd;
err:
    err = errno;
    close(fd);
    errno = err;
    return -1;
}

/* Connect to the first address of t->host that answers; fills t->addr. */
static int
connect_target(struct target *t)
{
    struct addrinfo hints, *res = NULL, *ai;
    char portstr[8], where[128];
    int fd = -1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (t->is_name ? 0 : AI_NUMERICHOST);
    snprintf(portstr, sizeof(portstr), "%u", t->port);
    if ((rc = getaddrinfo(t->host, portstr, &hints, &res)) != 0) {
        cli_error("cannot resolve %s: %s", t->host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        util_addr_str(ai->ai_addr, where, sizeof(where));
        if ((fd = connect_one(ai, DEFAULT_TIMEOUT_S)) < 0) {
            cli_error("cannot connect to %s: %s", where, strerror(errno));
            continue;
        }
        memcpy(&t->addr, ai->ai_addr, ai->ai_addrlen);
        util_strlcpy(t->addr_text, where, sizeof(t->addr_text));
    }
    freeaddrinfo(res);
    return fd;
}

/* --- the rule ------------------------------------------------------------ */

static int
is_ip_literal(const char *s)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/*
 * The rule for the address connected to, and the name verified and sent
 * as SNI, chosen as the shim chooses them (conn.c): verifycn_name, else the
 * name that matched, else the IP address; SNI from hostname, else the
 * verified name unless it is an IP.  With no rule: HOST itself.
 */
static void
choose_rule(const struct policy *p, struct target *t)
{
    const struct sockaddr *sa = (const struct sockaddr *)&t->addr;
    char ip[INET6_ADDRSTRLEN + 8];

    t->rule = policy_match_connect(p, sa, t->is_name ? t->host : NULL,
                                   cli_resolve_name, NULL, &t->matched);
    util_ip_str(sa, ip, sizeof(ip));
    if (strncmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.') != NULL)
        memmove(ip, ip + 7, strlen(ip + 7) + 1);
    if (t->rule == NULL)
        util_strlcpy(t->verify_name, t->host, sizeof(t->verify_name));
    else if (t->rule->verifycn_name != NULL)
        util_strlcpy(t->verify_name, t->rule->verifycn_name,
                     sizeof(t->verify_name));
    else if (t->matched != NULL)
        util_strlcpy(t->verify_name, t->matched, sizeof(t->verify_name));
    else
        util_strlcpy(t->verify_name, ip, sizeof(t->verify_name));
    t->sni[0] = '\0';
    if (t->rule != NULL && t->rule->hostname != NULL)
        util_strlcpy(t->sni, t->rule->hostname, sizeof(t->sni));
    else if (!is_ip_literal(t->verify_name))
        util_strlcpy(t->sni, t->verify_name, sizeof(t->sni));
}

/* --- the handshake ------------------------------------------------------- */

/* Keep the certificates as sent and accept them: the verdict comes later,
 * from the rule's settings, not from this handshake. */
static int
capture_cb(X509_STORE_CTX *x, void *arg)
{
    struct peer_certs *pc = arg;
    X509 *leaf = X509_STORE_CTX_get0_cert(x);
    STACK_OF(X509) *sent = X509_STORE_CTX_get0_untrusted(x);

    if (pc->leaf == NULL && leaf != NULL && X509_up_ref(leaf)) {
        pc->leaf = leaf;
        if (sent != NULL)
            pc->chain = X509_chain_up_ref(sent);
    }
    return 1;
}

/* The reason of the last OpenSSL error, and whether it means the peer does
 * not speak TLS at all. */
static const char *
handshake_reason(SSL *ssl, int rc, int *not_tls, char *buf, size_t len)
{
    int err = SSL_get_error(ssl, rc);
    unsigned long e = ERR_peek_last_error();
    const char *r;

    *not_tls = 0;
    if (e == 0) {
        if (err == SSL_ERROR_SYSCALL && errno != 0) {
            snprintf(buf, len, "%s", strerror(errno));
        } else {
            *not_tls = 1;
            snprintf(buf, len, "the server closed the connection");
        }
        return buf;
    }
    if (ERR_GET_LIB(e) == ERR_LIB_SSL)
        switch (ERR_GET_REASON(e)) {
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_PACKET_LENGTH_TOO_LONG:
        case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        case SSL_R_UNEXPECTED_RECORD:
            *not_tls = 1;
            break;
        default:
            break;
        }
    if ((r = ERR_reason_error_string(e)) != NULL)
        snprintf(buf, len, "%s", r);
    else
        ERR_error_string_n(e, buf, len);
    return buf;
}

/*
 * Run the handshake on fd within timeout_s, keeping the certificates.
 * Returns 0 when it completed; -1 when it failed, with the reason in why
 * (the certificates may still have arrived before the failure).
 */
static int
handshake(int fd, const struct target *t, int timeout_s,
          struct peer_certs *pc, char *version, size_t vlen, char *why,
          size_t whylen, int *not_tls)
{
    int64_t deadline = util_now_ms() + (int64_t)timeout_s * 1000;
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    char reason[256];
    int rv = -1, rc;

    *not_tls = 0;
    ERR_clear_error();
    if ((ctx = SSL_CTX_new_ex(context_libctx(), NULL, TLS_client_method())) ==
        NULL) {
        snprintf(why, whylen, "cannot create a TLS context");
        goto out;
    }
    /* Whatever the server offers, so that even a weak or old server's
     * certificate can be shown; the rule's limits are checked after. */
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_LEGACY_SERVER_CONNECT | SSL_OP_NO_TICKET);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_cert_verify_callback(ctx, capture_cb, pc);
    if ((ssl = SSL_new(ctx)) == NULL || !SSL_set_fd(ssl, fd)) {
        snprintf(why, whylen, "cannot create a TLS connection");
        goto out;
    }
    if (t->sni[0] != '\0' && !SSL_set_tlsext_host_name(ssl, t->sni))
        cli_warn("cannot send %s as SNI", t->sni);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = 0};
        int wait;

        ERR_clear_error();
        errno = 0;
        if ((rc = SSL_connect(ssl)) == 1)
            break;
        switch (SSL_get_error(ssl, rc)) {
        case SSL_ERROR_WANT_READ:
            pfd.events = POLLIN;
            break;
        case SSL_ERROR_WANT_WRITE:
            pfd.events = POLLOUT;
            break;
        default:
            handshake_reason(ssl, rc, not_tls, reason, sizeof(reason));
            snprintf(why, whylen, "TLS handshake failed: %s", reason);
            goto out;
        }
        if ((wait = remaining_ms(deadline)) == 0) {
            *not_tls = pc->leaf == NULL;
            snprintf(why, whylen,
                     "the TLS handshake did not finish within %d s",
                     timeout_s);
            goto out;
        }
        if (poll(&pfd, 1, wait) < 0 && errno != EINTR) {
            snprintf(why, whylen, "poll: %s", strerror(errno));
            goto out;
        }
    }
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    snprintf(version, vlen, "%s, %s", SSL_get_version(ssl),
             cipher != NULL ? SSL_CIPHER_get_name(cipher) : "?");
    /* a close_notify if the socket takes it at once; nothing to wait for */
    ERR_clear_error();
    (void)SSL_shutdown(ssl);
    rv = 0;
out:
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return rv;
}

/* --- the verdict --------------------------------------------------------- */

static void add_reason(struct verdict *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
add_reason(struct verdict *v, const char *fmt, ...)
{
    va_list ap;

    if (v->nreasons >= TLSSHIM_NELEMS(v->reasons))
        return;
    va_start(ap, fmt);
    vsnprintf(v->reasons[v->nreasons++], sizeof(v->reasons[0]), fmt, ap);
    va_end(ap);
}

static const char *
ssl_error_text(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    util_strlcpy(buf, r != NULL ? r : "error", len);
    return buf;
}

/* The trust store of the rule (the system store without one), as
 * context.c builds it for the shim. */
static X509_STORE *
rule_store(const struct policy_rule *r, struct verdict *v)
{
    X509_STORE *store = X509_STORE_new();
    OSSL_LIB_CTX *libctx = context_libctx();
    char why[160];

    if (store == NULL) {
        add_reason(v, "out of memory");
        return NULL;
    }
    ERR_clear_error();
    if (r == NULL || r->ca_system) {
        if (!X509_STORE_set_default_paths_ex(store, libctx, NULL))
            ERR_clear_error(); /* an empty system store fails below */
    } else {
        if (r->ca_file != NULL &&
            !X509_STORE_load_file_ex(store, r->ca_file, libctx, NULL)) {
            add_reason(v, "cannot load ca_file %s: %s", r->ca_file,
                       ssl_error_text(why, sizeof(why)));
            goto err;
        }
        if (r->ca_path != NULL && !X509_STORE_load_path(store, r->ca_path)) {
            add_reason(v, "cannot load ca_path %s: %s", r->ca_path,
                       ssl_error_text(why, sizeof(why)));
            goto err;
        }
    }
    if (r != NULL && r->check_crl) {
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
        if (r->crl_file != NULL) {
            X509_LOOKUP *lu = X509_STORE_add_lookup(store, X509_LOOKUP_file());
            if (lu == NULL ||
                (X509_load_crl_file(lu, r->crl_file, X509_FILETYPE_PEM) <= 0 &&
                 X509_load_crl_file(lu, r->crl_file, X509_FILETYPE_ASN1) <=
                     0)) {
                add_reason(v, "cannot load crl_file %s: %s", r->crl_file,
                           ssl_error_text(why, sizeof(why)));
                goto err;
            }
        }
    }
    ERR_clear_error();
    return store;
err:
    ERR_clear_error();
    X509_STORE_free(store);
    return NULL;
}

/* The chain against the rule's store: 1 verified, 0 not (reason added). */
static int
verify_chain(const struct policy_rule *r, const struct peer_certs *pc,
             struct verdict *v)
{
    X509_STORE *store = rule_store(r, v);
    X509_STORE_CTX *x = NULL;
    char subject[256];
    int ok = 0;

    if (store == NULL)
        return 0;
    ERR_clear_error();
    if ((x = X509_STORE_CTX_new_ex(context_libctx(), NULL)) == NULL ||
        !X509_STORE_CTX_init(x, store, pc->leaf, pc->chain)) {
        add_reason(v, "cannot set up the verification");
        goto out;
    }
    /* as OpenSSL verifies a server for a TLS client */
    X509_STORE_CTX_set_default(x, "ssl_server");
    X509_VERIFY_PARAM_set_auth_level(X509_STORE_CTX_get0_param(x),
                                     r != NULL ? r->security_level : 2);
    if (X509_verify_cert(x) > 0) {
        ok = 1;
        if (r != NULL && r->npubkey_pins > 0 &&
            !verify_pins(X509_STORE_CTX_get0_chain(x), r, NULL, 0)) {
            add_reason(v, "certificate verify failed: no key of the chain "
                          "matches pubkey_pin");
            ok = 0;
        }
    } else {
        int err = X509_STORE_CTX_get_error(x);
        X509 *bad = X509_STORE_CTX_get_current_cert(x);

        X509_NAME_oneline(X509_get_subject_name(bad != NULL ? bad : pc->leaf),
                          subject, sizeof(subject));
        add_reason(v, "certificate verify failed: %s (depth %d, %.200s)",
                   X509_verify_cert_error_string(err),
                   X509_STORE_CTX_get_error_depth(x), subject);
    }
out:
    ERR_clear_error();
    X509_STORE_CTX_free(x);
    X509_STORE_free(store);
    return ok;
}

/* What the shim would decide about this certificate for this destination
 * (context.c, cert_verify_cb), and the negotiated version against the
 * rule's lowest. */
static void
judge(const struct target *t, const struct peer_certs *pc,
      int negotiated_version, struct verdict *v)
{
    const struct policy_rule *r = t->rule;
    char names[256];
    int chain_ok, name_ok;

    memset(v, 0, sizeof(*v));
    if (r != NULL && r->nfingerprints > 0 &&
        verify_fingerprint(pc->leaf, r->fingerprints, r->nfingerprints)) {
        v->summary = "ok (fingerprint)";
        return;
    }
    chain_ok = verify_chain(r, pc, v);
    name_ok = verify_identity(pc->leaf, t->verify_name,
                              r != NULL ? r->verifycn_scheme : NULL,
                              r != NULL ? r->verifycn_publicsuffix : 1);
    if (!name_ok) {
        verify_cert_names(pc->leaf, names, sizeof(names));
        add_reason(v, "hostname mismatch (wanted %s, certificate has %s)",
                   t->verify_name, names);
    }
    if (r != NULL && r->nfingerprints > 0 && (!chain_ok || !name_ok))
        add_reason(v, "no fingerprint of rule %s matches", r->name);
    if (r != NULL && negotiated_version != 0 && r->min_version != 0 &&
        negotiated_version < r->min_version)
        add_reason(v, "the server negotiated a protocol version below the "
                      "rule's lowest (min_version)");
    if (r != NULL && r->verify_mode == POLICY_VERIFY_NONE) {
        v->summary = "not checked (the rule has verify_mode = none)";
        v->unchecked = 1;
    } else if (v->nreasons == 0)
        v->summary = "ok";
    else
        v->summary = "failed";
}

/* --- output -------------------------------------------------------------- */

static void
print_safe_str(const char *s)
{
    cli_print_safe(stdout, s, strlen(s));
}

static void
print_name(const char *label, X509_NAME *n)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL;
    long got = 0;

    printf(LABEL, label);
    if (b != NULL &&
        X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >=
            0)
        got = BIO_get_mem_data(b, &data);
    if (got > 0)
        cli_print_safe(stdout, data, (size_t)got);
    putchar('\n');
    BIO_free(b);
}

static void
print_names(X509 *x)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL,
                                           NULL);
    int printed = 0;

    printf(LABEL, "names:");
    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        const ASN1_STRING *s = NULL;
        const char *kind = NULL;
        char ip[INET6_ADDRSTRLEN] = "?";

        switch (g->type) {
        case GEN_DNS:
            kind = "DNS:", s = g->d.dNSName;
            break;
        case GEN_EMAIL:
            kind = "email:", s = g->d.rfc822Name;
            break;
        case GEN_URI:
            kind = "URI:", s = g->d.uniformResourceIdentifier;
            break;
        case GEN_IPADD:
            kind = "IP:";
            if (ASN1_STRING_length(g->d.iPAddress) == 4 ||
                ASN1_STRING_length(g->d.iPAddress) == 16)
                inet_ntop(ASN1_STRING_length(g->d.iPAddress) == 4
                              ? AF_INET : AF_INET6,
                          ASN1_STRING_get0_data(g->d.iPAddress), ip,
                          sizeof(ip));
            break;
        default:
            continue;
        }
        printf("%s%s", printed++ ? ", " : "", kind);
        if (s != NULL)
            cli_print_safe(stdout,
                           (const char *)ASN1_STRING_get0_data(s),
                           (size_t)ASN1_STRING_length(s));
        else
            fputs(ip, stdout);
    }
    if (!printed)
        fputs("none (no subjectAltName)", stdout);
    putchar('\n');
    GENERAL_NAMES_free(sans);
}

/* A certificate time as RFC 3339 (as the report writes it), with how far
 * it is from now. */
static void
print_time(const char *label, const ASN1_TIME *t, int is_end)
{
    struct tm tm;
    char buf[64];
    int days = 0, secs = 0;

    printf(LABEL, label);
    if (t == NULL || !ASN1_TIME_to_tm(t, &tm)) {
        puts("?");
        return;
    }
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    fputs(buf, stdout);
    if (ASN1_TIME_diff(&days, &secs, NULL, t)) {
        int future = days > 0 || (days == 0 && secs > 0);

        if (is_end && future)
            printf(" (in %d days)", days);
        else if (is_end)
            printf(" (expired %d days ago)", -days);
        else if (future)
            printf(" (not valid for %d more days)", days);
    }
    putchar('\n');
}

static void
print_rule(const struct policy *p, const struct target *t)
{
    const struct policy_rule *r = t->rule;

    printf(LABEL, "rule:");
    if (r == NULL) {
        printf("none (default_action = %s); checked against the system "
               "store\n", policy_action_name(p->global.default_action));
        return;
    }
    printf("%s (%s:%d), action = %s\n", r->name, r->file, r->line,
           policy_action_name(r->action));
}

/* The lower-case hex digest of the leaf, as the fingerprint key takes it;
 * checked by parsing it back with the policy parser. */
static int
digest_line(X509 *leaf, const char *algo, char *line, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD *type = EVP_MD_fetch(context_libctx(), algo, NULL);
    char text[EVP_MAX_MD_SIZE * 2 + 64], err[256];
    struct policy *check = NULL;
    size_t used;
    int rv = -1;

    if (type == NULL || !X509_digest(leaf, type, md, &mdlen)) {
        cli_error("cannot compute the %s digest", algo);
        goto out;
    }
    used = (size_t)snprintf(line, len, "%s$", algo);
    for (unsigned i = 0; i < mdlen && used + 3 <= len; i++)
        used += (size_t)snprintf(line + used, len - used, "%02x", md[i]);
    snprintf(text, sizeof(text), "[fingerprint]\nconnect = :1\n"
             "fingerprint = %s\n", line);
    check = policy_parse(text, strlen(text), "(fingerprint)", err,
                         sizeof(err));
    if (check == NULL || check->nrules != 1 ||
        !verify_fingerprint(leaf, check->rules[0].fingerprints,
                            check->rules[0].nfingerprints)) {
        cli_error("internal error: the policy does not take back '%s'%s%s",
                  line, check == NULL ? ": " : "", check == NULL ? err : "");
        goto out;
    }
    rv = 0;
out:
    policy_free(check);
    EVP_MD_free(type);
    ERR_clear_error();
    return rv;
}

static int
version_number(const char *version)
{
    static const struct {
        const char *name;
        int number;
    } versions[] = {
        {"TLSv1,", TLS1_VERSION},     {"TLSv1.1,", TLS1_1_VERSION},
        {"TLSv1.2,", TLS1_2_VERSION}, {"TLSv1.3,", TLS1_3_VERSION},
    };

    for (size_t i = 0; i < TLSSHIM_NELEMS(versions); i++)
        if (strncmp(version, versions[i].name, strlen(versions[i].name)) ==
            0)
            return versions[i].number;
    return 0;
}

/* ALGO as the policy writes it (lower case), or NULL. */
static const char *
parse_algorithm(const char *arg)
{
    for (size_t i = 0; i < TLSSHIM_NELEMS(algorithms); i++)
        if (strcasecmp(arg, algorithms[i]) == 0)
            return algorithms[i];
    return NULL;
}

int
cli_fingerprint(const struct cli_options *o)
{
    struct peer_certs pc = {NULL, NULL};
    struct target t;
    struct verdict v;
    struct policy *p = NULL;
    const char *algo = "sha256";
    char version[128] = "", why[512], line[EVP_MAX_MD_SIZE * 2 + 16];
    int fd = -1, literal, timeout_s = DEFAULT_TIMEOUT_S, not_tls = 0;
    int status = CLI_EXIT_USAGE, completed;

    memset(&t, 0, sizeof(t));
    if (o->nargs == 2 && (algo = parse_algorithm(o->args[1])) == NULL) {
        cli_error("unknown ALGO '%s' (want sha1, sha224, sha256, sha384 or "
                  "sha512) (see tlsshim --help)", o->args[1]);
        return CLI_EXIT_USAGE;
    }
    if (cli_split_destination(o->args[0], t.host, sizeof(t.host), &t.port,
                              &literal) != 0)
        return CLI_EXIT_USAGE;
    t.is_name = !literal;
    if ((p = cli_load_policy(o)) == NULL)
        return CLI_EXIT_USAGE;
    status = EXIT_NO_CERTIFICATE;
    if (context_init() != 0) {
        cli_error("cannot initialise OpenSSL");
        goto out;
    }
    /* a peer that resets the connection must not kill us with SIGPIPE */
    signal(SIGPIPE, SIG_IGN);
    if ((fd = connect_target(&t)) < 0) {
        cli_error("no certificate from %s", o->args[0]);
        goto out;
    }
    choose_rule(p, &t);
    if (t.rule != NULL &&
        t.rule->origin[PK_HANDSHAKE_TIMEOUT] != POLICY_ORIGIN_BUILTIN)
        timeout_s = t.rule->handshake_timeout;
    completed = handshake(fd, &t, timeout_s, &pc, version, sizeof(version),
                          why, sizeof(why), &not_tls) == 0;
    if (pc.leaf == NULL) {
        if (completed)
            util_strlcpy(why, "the server sent no certificate", sizeof(why));
        cli_error("no certificate from %s%s%s%s: %s%s", o->args[0],
                  t.is_name ? " (" : "", t.is_name ? t.addr_text : "",
                  t.is_name ? ")" : "", why,
                  not_tls ? " (is it a TLS server?  A plaintext service, "
                            "or one that needs STARTTLS first?)"
                          : "");
        goto out;
    }
    if (digest_line(pc.leaf, algo, line, sizeof(line)) != 0)
        goto out;
    judge(&t, &pc, version_number(version), &v);

    printf(LABEL "%s", "connect:", t.addr_text);
    if (t.is_name)
        printf(" (%s)", t.host);
    putchar('\n');
    print_rule(p, &t);
    printf(LABEL "%s\n", "verify name:", t.verify_name);
    printf(LABEL "%s\n", "sni:", t.sni[0] != '\0' ? t.sni : "none");
    printf(LABEL "%s\n", "protocol:",
           completed ? version : "handshake not completed");
    print_name("subject:", X509_get_subject_name(pc.leaf));
    print_name("issuer:", X509_get_issuer_name(pc.leaf));
    print_names(pc.leaf);
    print_time("not before:", X509_get0_notBefore(pc.leaf), 0);
    print_time("not after:", X509_get0_notAfter(pc.leaf), 1);
    printf(LABEL "%d\n", "chain sent:",
           pc.chain != NULL ? sk_X509_num(pc.chain) : 1);
    printf(LABEL "%s\n", "verify:", v.summary);
    /* under verify_mode = none, what the checks found is only a remark */
    for (size_t i = 0; i < v.nreasons; i++) {
        printf(LABEL, v.unchecked ? "note:" : "reason:");
        print_safe_str(v.reasons[i]);
        putchar('\n');
    }
    if (!completed) {
        printf(LABEL, "note:");
        print_safe_str("the handshake failed after the certificate arrived: ");
        print_safe_str(why);
        putchar('\n');
    }
    if (t.rule != NULL && t.rule->action != POLICY_TLS &&
        t.rule->action != POLICY_AUTO && t.rule->action != POLICY_ENFORCE)
        printf(LABEL "rule %s has action = %s: tlsshim makes no TLS "
               "connection here\n", "note:", t.rule->name,
               policy_action_name(t.rule->action));
    printf("fingerprint = %s\n", line);
    status = 0;
out:
    if (fd >= 0)
        close(fd);
    X509_free(pc.leaf);
    sk_X509_pop_free(pc.chain, X509_free);
    policy_free(p);
    return status;
}
