/*
 * Report lines are built in a growing buffer with JSON escaping that keeps
 * every line valid UTF-8 (bytes that are not are written as \u00XX), then
 * written at once.  Writing goes through the real call table.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "report.h"
#include "sys.h"
#include "util.h"

/* guards the descriptor and its identity */
static pthread_mutex_t rep_lock = PTHREAD_MUTEX_INITIALIZER;
static char *rep_path;
static struct util_file rep_file = {.fd = -1};
static int rep_open_lines;
static atomic_uint rep_seq;

int
report_configure(const char *path, int report_open)
{
    pthread_mutex_lock(&rep_lock);
    free(rep_path);
    rep_path = NULL;
    rep_open_lines = report_open;
    int rv = 0;
    if (path != NULL && *path != '\0') {
        rep_path = strdup(path);
        rv = rep_path != NULL ? util_file_open(&rep_file, rep_path) : -1;
        if (rv < 0) {
            free(rep_path);
            rep_path = NULL;
        }
    }
    pthread_mutex_unlock(&rep_lock);
    return rv;
}

int
report_enabled(void)
{
    return rep_path != NULL;
}

int
report_open_enabled(void)
{
    return rep_path != NULL && rep_open_lines;
}

/* Write one whole line; the descriptor is checked first. */
static void
emit(const char *line, size_t len)
{
    int saved = errno;

    pthread_mutex_lock(&rep_lock);
    if (rep_path != NULL) {
        int fd = util_file_fd(&rep_file, rep_path);
        if (fd >= 0)
            (void)tlsshim_sys.write(fd, line, len);
    }
    pthread_mutex_unlock(&rep_lock);
    errno = saved;
}

/* --- a small JSON writer ------------------------------------------------ */

struct jbuf {
    char *p;
    size_t len, cap;
    int oom;
    int first;    /* no member written yet at this level */
};

static void
jb_add(struct jbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
jb_cstr(struct jbuf *b, const char *s)
{
    jb_add(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0. */
static int
utf8_len(const unsigned char *s)
{
    int n;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4, cp = s[0] & 0x07;
    else
        return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

static void
jb_string(struct jbuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    char esc[8];

    if (s == NULL) {
        jb_cstr(b, "null");
        return;
    }
    jb_cstr(b, "\"");
    while (*p != '\0') {
        int n = utf8_len(p);
        if (n == 1 && *p >= 0x20 && *p != '"' && *p != '\\') {
            jb_add(b, (const char *)p, 1);
        } else if (n > 1) {
            jb_add(b, (const char *)p, (size_t)n);
            p += n - 1;
        } else {
            switch (*p) {
            case '"': jb_cstr(b, "\\\""); break;
            case '\\': jb_cstr(b, "\\\\"); break;
            case '\n': jb_cstr(b, "\\n"); break;
            case '\r': jb_cstr(b, "\\r"); break;
            case '\t': jb_cstr(b, "\\t"); break;
            default:
                snprintf(esc, sizeof(esc), "\\u%04x", *p);
                jb_cstr(b, esc);
            }
        }
        p++;
    }
    jb_cstr(b, "\"");
}

static void
jb_key(struct jbuf *b, const char *key)
{
    if (!b->first)
        jb_cstr(b, ", ");
    b->first = 0;
    jb_string(b, key);
    jb_cstr(b, ": ");
}

static void
jb_kstr(struct jbuf *b, const char *key, const char *v)
{
    jb_key(b, key);
    jb_string(b, v != NULL && *v != '\0' ? v : NULL);
}

static void
jb_knum(struct jbuf *b, const char *key, long long v)
{
    char num[32];

    jb_key(b, key);
    snprintf(num, sizeof(num), "%lld", v);
    jb_cstr(b, num);
}

static void
jb_kbool(struct jbuf *b, const char *key, int v)
{
    jb_key(b, key);
    jb_cstr(b, v ? "true" : "false");
}

/* --- fields --------------------------------------------------------------- */

/* The wall-clock time of a monotonic instant (util_now_ms). */
static int64_t
wall_ms(int64_t mono_ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 -
           (util_now_ms() - mono_ms);
}

static void
rfc3339_ms(int64_t mono_ms, char *buf, size_t len)
{
    int64_t ms = wall_ms(mono_ms);
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", (int)(ms % 1000));
}

static void
asn1_rfc3339(const ASN1_TIME *t, char *buf, size_t len)
{
    struct tm tm;

    if (t == NULL || !ASN1_TIME_to_tm(t, &tm)) {
        util_strlcpy(buf, "", len);
        return;
    }
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
name_rfc2253(X509_NAME *n, char *buf, size_t len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data;
    long got;

    buf[0] = '\0';
    if (b == NULL)
        return;
    if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >=
            0 &&
        (got = BIO_get_mem_data(b, &data)) > 0) {
        size_t n2 = (size_t)got < len - 1 ? (size_t)got : len - 1;
        memcpy(buf, data, n2);
        buf[n2] = '\0';
    }
    BIO_free(b);
}

/*
 * A peer's certificate is untrusted input: each name is cut at
 * sizeof(buf) - 1 bytes, and the san list stops after REPORT_MAX_SANS
 * names or REPORT_SAN_BYTES bytes of JSON, with "san_omitted" saying how
 * many were left out.  With the other fields' fixed buffers this keeps a
 * report line under REPORT_MAX_LINE (man tlsshim.conf.5, LIMITS).
 */
enum {
    REPORT_MAX_SANS = 64,
    REPORT_SAN_BYTES = 8192,
    REPORT_MAX_LINE = 32768,
};

static void
jb_cert(struct jbuf *b, X509 *x)
{
    char buf[512];
    unsigned char md[32];
    unsigned mdlen = 0;
    GENERAL_NAMES *sans;
    size_t san_start;
    int omitted = 0;

    jb_key(b, "peer_cert");
    if (x == NULL) {
        jb_cstr(b, "null");
        return;
    }
    jb_cstr(b, "{");
    b->first = 1;
    name_rfc2253(X509_get_subject_name(x), buf, sizeof(buf));
    jb_kstr(b, "subject", buf);
    name_rfc2253(X509_get_issuer_name(x), buf, sizeof(buf));
    jb_kstr(b, "issuer", buf);
    jb_key(b, "san");
    jb_cstr(b, "[");
    san_start = b->len;
    sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0, n = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans);
         i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS) {
            const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
            int l = ASN1_STRING_length(g->d.dNSName);
            snprintf(buf, sizeof(buf), "%.*s", l, (const char *)d);
        } else if (g->type == GEN_IPADD) {
            struct sockaddr_storage ss;
            int l = ASN1_STRING_length(g->d.iPAddress);
            memset(&ss, 0, sizeof(ss));
            if (l == 4) {
                ss.ss_family = AF_INET;
                memcpy(&((struct sockaddr_in *)&ss)->sin_addr,
                       ASN1_STRING_get0_data(g->d.iPAddress), 4);
            } else if (l == 16) {
                ss.ss_family = AF_INET6;
                memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr,
                       ASN1_STRING_get0_data(g->d.iPAddress), 16);
            } else {
                continue;
            }
            util_ip_str((struct sockaddr *)&ss, buf, sizeof(buf));
        } else {
            continue;
        }
        if (n >= REPORT_MAX_SANS || b->len - san_start >= REPORT_SAN_BYTES) {
            omitted++;
            continue;
        }
        if (n++ > 0)
            jb_cstr(b, ", ");
        jb_string(b, buf);
    }
    GENERAL_NAMES_free(sans);
    jb_cstr(b, "]");
    if (omitted > 0)
        jb_knum(b, "san_omitted", omitted);
    asn1_rfc3339(X509_get0_notBefore(x), buf, sizeof(buf));
    jb_kstr(b, "not_before", buf);
    asn1_rfc3339(X509_get0_notAfter(x), buf, sizeof(buf));
    jb_kstr(b, "not_after", buf);
    if (X509_digest(x, EVP_sha256(), md, &mdlen)) {
        for (unsigned i = 0; i < mdlen; i++)
            snprintf(buf + 2 * i, 3, "%02x", md[i]);
        jb_kstr(b, "sha256", buf);
    }
    jb_cstr(b, "}");
    b->first = 0;
}

/* The outcome class of a connection that ended in state st. */
static const char *
outcome_of(struct conn *c)
{
    if (c->first_bytes != NULL || c->state == CONN_AUDIT)
        return "audit";
    if (c->state == CONN_PASSTHROUGH)
        /* starttls_required = no let a server without STARTTLS be used
         * (or, on a listen rule, a client that did not ask for it) */
        return c->stls_plain ? "ok" : "passthrough";
    if (c->state == CONN_OFFERING)
        /* a client that never asked for the STARTTLS we offered */
        return c->rule->starttls_required ? "starttls_refused" : "ok";
    if (c->state == CONN_CONNECTING)
        return "connect_failed";   /* given up before TCP was up */
    if (c->state == CONN_HANDSHAKING || c->state == CONN_ACCEPTED ||
        c->state == CONN_VERIFYING || c->state == CONN_STARTTLS ||
        c->state == CONN_LOGIN_WAIT)
        return "handshake_failed"; /* closed or exited meanwhile */
    if (c->state != CONN_FAILED)
        return "ok";
    if (c->outcome != NULL)
        return c->outcome;
    return c->was_open ? "ok" : "handshake_failed";
}

static void
start_line(struct jbuf *b, const char *id, const char *event, int64_t ts_ms,
           int64_t duration_ms, enum policy_role role,
           const struct policy_rule *rule, enum policy_action action,
           const struct sockaddr *peer, const char *host,
           const struct sockaddr *local)
{
    char ts[40], addr[80];

    b->first = 1;
    jb_cstr(b, "{");
    jb_kstr(b, "id", id);
    jb_kstr(b, "event", event);
    rfc3339_ms(ts_ms, ts, sizeof(ts));
    jb_kstr(b, "ts", ts);
    jb_knum(b, "duration_ms", duration_ms);
    jb_knum(b, "pid", (long long)getpid());
    jb_kstr(b, "role", role == POLICY_ROLE_SERVER ? "server" : "client");
    jb_kstr(b, "rule", rule != NULL ? rule->name : NULL);
    jb_kstr(b, "action", policy_action_name(action));
    if (peer != NULL) {
        util_addr_str(peer, addr, sizeof(addr));
        /* IP:PORT, IPv6 without brackets would be ambiguous: keep them */
        jb_kstr(b, "peer", addr);
    } else {
        jb_kstr(b, "peer", NULL);
    }
    jb_kstr(b, "host", host);
    /* An extension of SPEC section 8: the address a server connection was
     * accepted on (the listen rules' address), so that the report shows
     * which listening address served plaintext. */
    if (role == POLICY_ROLE_SERVER) {
        if (local != NULL && local->sa_family != AF_UNSPEC) {
            util_addr_str(local, addr, sizeof(addr));
            jb_kstr(b, "local", addr);
        } else {
            jb_kstr(b, "local", NULL);
        }
    }
}

static void
new_id(char *buf, size_t len)
{
    unsigned seq = atomic_fetch_add(&rep_seq, 1);

    snprintf(buf, len, "%ld-%llx-%u", (long)getpid(),
             (unsigned long long)util_now_ms(), seq);
}

void
report_conn(struct conn *c, const char *event)
{
    struct jbuf b = {0};
    int close_line = strcmp(event, "close") == 0;
    int64_t now = util_now_ms();
    const char *outcome;
    X509 *peer_cert = NULL;

    if (rep_path == NULL || c->reported || c->rule == NULL)
        return;
    if (close_line)
        c->reported = 1;
    if (c->report_id[0] == '\0')
        new_id(c->report_id, sizeof(c->report_id));
    outcome = outcome_of(c);
    start_line(&b, c->report_id, event, c->started_ms, now - c->started_ms,
               c->role, c->no_rule ? NULL : c->rule, c->rule->action,
               (struct sockaddr *)&c->peer,
               c->matched_name[0] != '\0' ? c->matched_name : NULL,
               c->local_len > 0 ? (struct sockaddr *)&c->local : NULL);
    jb_kstr(&b, "sni", c->sni);
    /* enforce: the program's own TLS said what it negotiated */
    const char *version = NULL;
    if (c->was_open)
        version = c->ssl != NULL ? SSL_get_version(c->ssl)
                  : c->tls_version[0] != '\0' ? c->tls_version : NULL;
    jb_kstr(&b, "version", version);
    jb_kstr(&b, "starttls", c->rule->starttls);
    jb_kstr(&b, "outcome", outcome);
    const char *error = c->state == CONN_FAILED ||
                                (c->state == CONN_OFFERING &&
                                 c->rule->starttls_required)
                            ? c->error : NULL;
    if (c->state == CONN_CONNECTING || c->state == CONN_HANDSHAKING ||
        c->state == CONN_ACCEPTED || c->state == CONN_VERIFYING ||
        c->state == CONN_STARTTLS || c->state == CONN_LOGIN_WAIT)
        error = "closed before the handshake ended";
    jb_kstr(&b, "error", error);
    const SSL_CIPHER *ciph = c->ssl != NULL && c->was_open
                                 ? SSL_get_current_cipher(c->ssl) : NULL;
    jb_kstr(&b, "cipher", ciph != NULL ? SSL_CIPHER_get_name(ciph)
                          : c->was_open && c->tls_cipher[0] != '\0'
                              ? c->tls_cipher : NULL);
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    char alpn_buf[256] = "";
    if (c->ssl != NULL)
        SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    if (alpn_len > 0)
        snprintf(alpn_buf, sizeof(alpn_buf), "%.*s", (int)alpn_len, alpn);
    jb_kstr(&b, "alpn", alpn_buf);
    jb_kbool(&b, "resumed", c->resumed);
    const char *verify;
    if (strcmp(outcome, "audit") == 0)
        verify = NULL;
    else if (strcmp(outcome, "verify_failed") == 0)
        verify = c->verify_error[0] != '\0' ? c->verify_error : c->error;
    else if (c->fp_accepted)
        verify = "pinned";
    else if (c->role == POLICY_ROLE_SERVER)
        verify = c->peer_subject[0] != '\0' ? "ok" : "none";
    else if (c->rule->verify_mode == POLICY_VERIFY_NONE)
        verify = "none";
    else
        verify = c->was_open ? "ok" : NULL;
    jb_kstr(&b, "verify", verify);
    jb_kstr(&b, "ocsp", c->ocsp != NULL ? c->ocsp : "none");
    if (c->ssl != NULL)
        peer_cert = SSL_get0_peer_certificate(c->ssl);
    else
        peer_cert = c->peer_cert;
    jb_cert(&b, peer_cert);
    jb_knum(&b, "bytes_in", (long long)c->bytes_in);
    jb_knum(&b, "bytes_out", (long long)c->bytes_out);
    if (c->was_open)
        jb_knum(&b, "handshake_ms", c->handshake_ms);
    else
        jb_kstr(&b, "handshake_ms", NULL);
    if (strcmp(outcome, "audit") == 0) {
        jb_kstr(&b, "first_bytes",
                c->first_bytes != NULL ? c->first_bytes : "none");
        /* the ClientHello's SNI and versions, the HTTP method: never
         * payload beyond that */
        jb_kstr(&b, "first_detail", c->first_detail);
    }
    jb_cstr(&b, "}\n");
    /* cannot happen (jb_cert's comment): never write an unbounded line */
    if (!b.oom && b.len <= REPORT_MAX_LINE)
        emit(b.p, b.len);
    free(b.p);
}

void
report_refused(enum policy_role role, const struct policy_rule *rule,
               enum policy_action action, const struct sockaddr *peer,
               const char *host, const struct sockaddr *local,
               const char *outcome, const char *error)
{
    struct jbuf b = {0};
    char id[64];
    int64_t now = util_now_ms();

    if (rep_path == NULL)
        return;
    new_id(id, sizeof(id));
    start_line(&b, id, "close", now, 0, role, rule, action, peer, host,
               local);
    jb_kstr(&b, "sni", NULL);
    jb_kstr(&b, "version", NULL);
    jb_kstr(&b, "starttls", NULL);
    jb_kstr(&b, "outcome", outcome);
    jb_kstr(&b, "error", error);
    jb_kstr(&b, "cipher", NULL);
    jb_kstr(&b, "alpn", NULL);
    jb_kbool(&b, "resumed", 0);
    jb_kstr(&b, "verify", NULL);
    jb_kstr(&b, "ocsp", "none");
    jb_key(&b, "peer_cert");
    jb_cstr(&b, "null");
    jb_knum(&b, "bytes_in", 0);
    jb_knum(&b, "bytes_out", 0);
    jb_kstr(&b, "handshake_ms", NULL);
    jb_cstr(&b, "}\n");
    if (!b.oom)
        emit(b.p, b.len);
    free(b.p);
}
