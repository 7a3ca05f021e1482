/*
 * The TLS probe of tlsshim --learn --probe: connect to one address the
 * program contacted, run a TLS handshake with the settings a proposed
 * rule would have, and say whether TLS answered and whether the
 * certificate verified, and if not why.  The verification follows the
 * shim's (context.c, cert_verify_cb): a matching fingerprint accepts the
 * leaf alone; otherwise the chain against the rule's store, pubkey_pin,
 * then the name under verifycn_scheme.  Only a ClientHello is sent: the
 * probe never writes application data.  A STARTTLS probe first runs the
 * protocol's upgrade dialogue, the shim's own (starttls.c), on the plain
 * socket, and stops after the handshake.  mysql's dialogue waits for the
 * program's login to make its SSLRequest from: the probe gives it one of
 * its own, which is never sent.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "context.h"
#include "evidence.h"
#include "probe.h"
#include "starttls.h"
#include "verify.h"

/* The shim's suites for TLS <= 1.2 when the rule names none (context.c). */
#define PROBE_CIPHER_LIST \
    "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!SHA1"

/* What the handshake learnt, shared with the callbacks. */
struct probe_state {
    const struct policy_rule *rule;
    const char *verify_name;
    int tls_answered;   /* a handshake message or alert came back */
    int verify_failed;
    char verify_error[300];
};

static void set_why(struct probe_result *res, enum probe_verdict v,
                    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
set_why(struct probe_result *res, enum probe_verdict v, const char *fmt, ...)
{
    char raw[sizeof(res->why)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    res->verdict = v;
    evidence_printable(raw, strlen(raw), res->why, sizeof(res->why));
}

static int
remaining_ms(int64_t deadline_ms)
{
    int64_t left = deadline_ms - util_now_ms();

    return left <= 0 ? 0 : left > 60000 ? 60000 : (int)left;
}

/* A non-blocking TCP connection within the connect timeout: the fd, or -1
 * with errno set. */
static int
connect_addr(const struct sockaddr *addr)
{
    int64_t deadline = util_now_ms() + PROBE_CONNECT_TIMEOUT_S * 1000;
    socklen_t alen = addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                               : sizeof(struct sockaddr_in6);
    socklen_t elen = sizeof(int);
    int fd, err = 0, rc;

    fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0)
        return -1;
    if (connect(fd, addr, alen) == 0)
        return fd;
    if (errno != EINPROGRESS)
        goto err;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int wait = remaining_ms(deadline);

        if (wait == 0) {
            errno = ETIMEDOUT;
            goto err;
        }
        if ((rc = poll(&pfd, 1, wait)) > 0)
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

/* The shim's verification of a server certificate, recording why not. */
static int
verify_cb(X509_STORE_CTX *x, void *arg)
{
    struct probe_state *st = arg;
    const struct policy_rule *r = st->rule;
    X509 *leaf = X509_STORE_CTX_get0_cert(x);
    char names[256], subject[256];

    if (leaf == NULL)
        return 0;
    if (r->nfingerprints > 0 &&
        verify_fingerprint(leaf, r->fingerprints, r->nfingerprints)) {
        X509_STORE_CTX_set_error(x, X509_V_OK);
        return 1;
    }
    if (r->verify_mode == POLICY_VERIFY_NONE && r->nfingerprints == 0)
        return 1;
    st->verify_failed = 1;
    if (r->verify_mode == POLICY_VERIFY_NONE) {
        snprintf(st->verify_error, sizeof(st->verify_error),
                 "no fingerprint matches the certificate");
        return 0;
    }
    if (X509_verify_cert(x) <= 0) {
        X509 *bad = X509_STORE_CTX_get_current_cert(x);

        X509_NAME_oneline(X509_get_subject_name(bad != NULL ? bad : leaf),
                          subject, sizeof(subject));
        snprintf(st->verify_error, sizeof(st->verify_error),
                 "certificate verify failed: %s (depth %d, %.120s)",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)),
                 X509_STORE_CTX_get_error_depth(x), subject);
        return 0;
    }
    if (r->npubkey_pins > 0 &&
        !verify_pins(X509_STORE_CTX_get0_chain(x), r, NULL, 0)) {
        snprintf(st->verify_error, sizeof(st->verify_error),
                 "certificate verify failed: no key of the chain matches "
                 "pubkey_pin");
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    /* unset: the starttls protocol's scheme, else default (SPEC 4), as
     * the shim (context.c) */
    if (!verify_identity(leaf, st->verify_name,
                         r->verifycn_scheme != NULL
                             ? r->verifycn_scheme
                             : starttls_scheme(r->starttls),
                         r->verifycn_publicsuffix)) {
        verify_cert_names(leaf, names, sizeof(names));
        snprintf(st->verify_error, sizeof(st->verify_error),
                 "certificate verify failed: hostname mismatch (wanted "
                 "%.100s, certificate has %.120s)",
                 st->verify_name, names);
        X509_STORE_CTX_set_error(x, X509_V_ERR_HOSTNAME_MISMATCH);
        return 0;
    }
    st->verify_failed = 0;
    return 1;
}

/* Whether anything TLS came back: a handshake message or an alert. */
static void
msg_cb(int write_p, int version, int content_type, const void *buf,
       size_t len, SSL *ssl, void *arg)
{
    struct probe_state *st = arg;

    (void)version, (void)buf, (void)len, (void)ssl;
    if (!write_p && (content_type == SSL3_RT_HANDSHAKE ||
                     content_type == SSL3_RT_ALERT))
        st->tls_answered = 1;
}

/* The last OpenSSL error as text. */
static const char *
ssl_reason(char *buf, size_t len, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    util_strlcpy(buf, r != NULL ? r : fallback, len);
    return buf;
}

/* A client context with rule r's protocol and trust settings; NULL with
 * the reason in why. */
static SSL_CTX *
make_ctx(const struct policy_rule *r, struct probe_state *st, char *why,
         size_t whylen)
{
    SSL_CTX *ctx;
    char reason[160];

    ERR_clear_error();
    if ((ctx = SSL_CTX_new_ex(context_libctx(), NULL, TLS_client_method())) ==
        NULL) {
        snprintf(why, whylen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_security_level(ctx, r->security_level);
    if ((r->min_version &&
         !SSL_CTX_set_min_proto_version(ctx, r->min_version)) ||
        (r->max_version &&
         !SSL_CTX_set_max_proto_version(ctx, r->max_version)) ||
        !SSL_CTX_set_cipher_list(ctx, r->cipher_list != NULL
                                          ? r->cipher_list
                                          : PROBE_CIPHER_LIST) ||
        (r->ciphersuites != NULL &&
         !SSL_CTX_set_ciphersuites(ctx, r->ciphersuites)) ||
        (r->ecdh_curve != NULL &&
         !SSL_CTX_set1_groups_list(ctx, r->ecdh_curve))) {
        snprintf(why, whylen, "the protocol settings do not apply: %s",
                 ssl_reason(reason, sizeof(reason), "error"));
        goto err;
    }
    if (r->ca_system) {
        if (!X509_STORE_set_default_paths_ex(SSL_CTX_get_cert_store(ctx),
                                             context_libctx(), NULL))
            ERR_clear_error();  /* an empty store fails verification */
    } else if ((r->ca_file != NULL &&
                !SSL_CTX_load_verify_file(ctx, r->ca_file)) ||
               (r->ca_path != NULL &&
                !SSL_CTX_load_verify_dir(ctx, r->ca_path))) {
        snprintf(why, whylen, "cannot load the CA certificates (%s): %s",
                 r->ca_file != NULL ? r->ca_file : r->ca_path,
                 ssl_reason(reason, sizeof(reason), "error"));
        goto err;
    }
    if (r->check_crl) {
        X509_STORE *store = SSL_CTX_get_cert_store(ctx);
        X509_LOOKUP *lu;

        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
        if (r->crl_file != NULL &&
            ((lu = X509_STORE_add_lookup(store, X509_LOOKUP_file())) ==
                 NULL ||
             (X509_load_crl_file(lu, r->crl_file, X509_FILETYPE_PEM) <= 0 &&
              X509_load_crl_file(lu, r->crl_file, X509_FILETYPE_ASN1) <= 0))) {
            snprintf(why, whylen, "cannot load crl_file %s", r->crl_file);
            goto err;
        }
    }
    if (r->alpn_wire_len > 0 &&
        SSL_CTX_set_alpn_protos(ctx, r->alpn_wire,
                                (unsigned)r->alpn_wire_len) != 0) {
        snprintf(why, whylen, "bad alpn_protocols");
        goto err;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_cert_verify_callback(ctx, verify_cb, st);
    SSL_CTX_set_msg_callback(ctx, msg_cb);
    SSL_CTX_set_msg_callback_arg(ctx, st);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    ERR_clear_error();
    return ctx;
err:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

static int
is_ip_literal(const char *s)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* The handshake on fd; fills res. */
static void
handshake(int fd, SSL_CTX *ctx, const char *sni, struct probe_state *st,
          struct probe_result *res)
{
    int64_t deadline = util_now_ms() + PROBE_HANDSHAKE_TIMEOUT_S * 1000;
    char reason[200];
    SSL *ssl;
    int rc;

    ERR_clear_error();
    if ((ssl = SSL_new(ctx)) == NULL || !SSL_set_fd(ssl, fd)) {
        set_why(res, PROBE_ERROR, "cannot create a TLS connection");
        goto out;
    }
    if (sni[0] != '\0' && !SSL_set_tlsext_host_name(ssl, sni)) {
        set_why(res, PROBE_ERROR, "cannot send %s as SNI", sni);
        goto out;
    }
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = 0};
        int wait, err;

        ERR_clear_error();
        errno = 0;
        if ((rc = SSL_connect(ssl)) == 1)
            break;
        err = SSL_get_error(ssl, rc);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            pfd.events = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
            if ((wait = remaining_ms(deadline)) == 0) {
                if (st->tls_answered)
                    set_why(res, PROBE_TLS_FAILED, "the TLS handshake did "
                            "not finish within %d s",
                            PROBE_HANDSHAKE_TIMEOUT_S);
                else
                    set_why(res, PROBE_NOT_TLS, "no TLS answer within %d s",
                            PROBE_HANDSHAKE_TIMEOUT_S);
                goto out;
            }
            if (poll(&pfd, 1, wait) < 0 && errno != EINTR) {
                set_why(res, PROBE_ERROR, "poll: %s", strerror(errno));
                goto out;
            }
            continue;
        }
        if (st->verify_failed) {
            set_why(res, PROBE_TLS_FAILED, "TLS, but %s", st->verify_error);
        } else if (st->tls_answered) {
            set_why(res, PROBE_TLS_FAILED, "TLS, but the handshake failed: "
                    "%s", ssl_reason(reason, sizeof(reason), "error"));
        } else if (ERR_peek_last_error() == 0) {
            set_why(res, PROBE_NOT_TLS, "no TLS: %s",
                    err == SSL_ERROR_SYSCALL && errno != 0
                        ? strerror(errno)
                        : "the server closed the connection");
        } else {
            set_why(res, PROBE_NOT_TLS, "no TLS: %s",
                    ssl_reason(reason, sizeof(reason), "error"));
        }
        goto out;
    }
    res->verdict = PROBE_VERIFIED;
    util_strlcpy(res->version, SSL_get_version(ssl), sizeof(res->version));
    if (st->rule->verify_mode == POLICY_VERIFY_NONE &&
        st->rule->nfingerprints == 0)
        set_why(res, PROBE_VERIFIED, "TLS (%s), not verified: "
                "verify_mode = none", res->version);
    else
        set_why(res, PROBE_VERIFIED, "TLS verified (%s, name %s)",
                res->version, st->verify_name);
    /* a close_notify if the socket takes it now; nothing to wait for */
    ERR_clear_error();
    (void)SSL_shutdown(ssl);
out:
    ERR_clear_error();
    SSL_free(ssl);
}

/* What EHLO names: our own address as a literal, as the shim sends it. */
static void
local_literal(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char ip[INET6_ADDRSTRLEN];

    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
        snprintf(buf, len, "[127.0.0.1]");
        return;
    }
    util_ip_str((struct sockaddr *)&ss, ip, sizeof(ip));
    if (strchr(ip, ':') != NULL)
        snprintf(buf, len, "[IPv6:%s]", ip);
    else
        snprintf(buf, len, "[%s]", ip);
}

/* Wait for events on fd until the deadline: 1 ready, 0 timed out, -1
 * error (errno). */
static int
wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = events};
        int wait = remaining_ms(deadline), rc;

        if (wait == 0)
            return 0;
        if ((rc = poll(&pfd, 1, wait)) > 0)
            return 1;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

/*
 * mysql: the login (HandshakeResponse41) the probe hands the dialogue,
 * whose first 32 bytes become the SSLRequest (starttls.c adds CLIENT_SSL):
 * capability flags LONG_PASSWORD, LONG_FLAG, PROTOCOL_41, TRANSACTIONS,
 * SECURE_CONNECTION, MULTI_RESULTS and PLUGIN_AUTH, as a MySQL or MariaDB
 * client asks for them; maximum packet 16 MiB; character set 33
 * (utf8_general_ci, known to both); the 23 reserved bytes; an empty user.
 * It is never sent: the probe closes after the handshake.
 */
static const unsigned char probe_mysql_login[] = {
    0x21, 0x00, 0x00, 0x01,             /* payload length 33, id 1 */
    0x05, 0xa2, 0x0a, 0x00,             /* capability flags 0x000aa205 */
    0x00, 0x00, 0x00, 0x01,             /* maximum packet 1 << 24 */
    0x21,                               /* character set 33 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* reserved (23 bytes) */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0x00,                               /* user "" */
};

/*
 * The STARTTLS dialogue of proto on fd, up to the server's go-ahead, with
 * the shim's state machine (starttls.c) and a deadline of its own.
 * Returns 0 when the handshake may begin, else -1 with res filled in:
 * PROBE_NO_STARTTLS when the server answered but does not offer STARTTLS,
 * refused it or broke the dialogue, PROBE_UNREACHABLE when it went away.
 */
static int
dialogue(int fd, enum starttls_proto proto, const char *verify_name,
         struct probe_result *res)
{
    int64_t deadline = util_now_ms() + PROBE_DIALOGUE_TIMEOUT_S * 1000;
    const char *pname = starttls_proto_name(proto);
    struct starttls *st;
    char client[80];
    int rv = -1, w = 0, login_given = 0;

    if ((st = malloc(sizeof(*st))) == NULL) {
        set_why(res, PROBE_ERROR, "out of memory");
        return -1;
    }
    local_literal(fd, client, sizeof(client));
    starttls_init(st, proto, verify_name, client);
    for (;;) {
        enum starttls_status s = starttls_next(st);
        unsigned char *room;
        size_t left;
        ssize_t n;

        switch (s) {
        case STARTTLS_WRITE:
            left = st->out_len - st->out_off;
            n = send(fd, st->out + st->out_off, left, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                          errno == EINTR)) {
                if ((w = wait_fd(fd, POLLOUT, deadline)) <= 0)
                    goto stalled;
                continue;
            }
            if (n < 0) {
                set_why(res, PROBE_UNREACHABLE, "STARTTLS %s: send failed: "
                        "%s", pname, strerror(errno));
                goto out;
            }
            st->out_off += (size_t)n;
            if (st->out_off == st->out_len)
                st->out_off = st->out_len = 0;
            continue;
        case STARTTLS_READ:
            if ((room = starttls_room(st, &left)) == NULL || left == 0) {
                set_why(res, PROBE_NO_STARTTLS, "STARTTLS %s: the server's "
                        "answer is too long", pname);
                goto out;
            }
            n = recv(fd, room, left, 0);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                          errno == EINTR)) {
                if ((w = wait_fd(fd, POLLIN, deadline)) <= 0)
                    goto stalled;
                continue;
            }
            if (n <= 0) {
                set_why(res, PROBE_NO_STARTTLS, "STARTTLS %s: %s", pname,
                        n == 0 ? "the server closed the connection during "
                                 "the dialogue"
                               : strerror(errno));
                goto out;
            }
            starttls_received(st, (size_t)n);
            continue;
        case STARTTLS_LOGIN:
            /* mysql: the greeting offers CLIENT_SSL, and the SSLRequest
             * is made from the login the dialogue waits for.  The probe's
             * own login, with no user: it would go only after the
             * handshake, where the probe stops.  Asked twice, the
             * dialogue is stuck: a failure, never an upgrade. */
            if (login_given ||
                starttls_login(st, probe_mysql_login,
                               sizeof(probe_mysql_login)) !=
                    sizeof(probe_mysql_login)) {
                set_why(res, PROBE_NO_STARTTLS, "STARTTLS %s failed: the "
                        "dialogue did not take the probe's login", pname);
                goto out;
            }
            login_given = 1;
            continue;
        case STARTTLS_UPGRADE:
            rv = 0;
            goto out;
        case STARTTLS_REFUSED:
            set_why(res, PROBE_NO_STARTTLS, "no STARTTLS: %s", st->why);
            goto out;
        case STARTTLS_DONE:
        case STARTTLS_FAILED:
        default:
            set_why(res, PROBE_NO_STARTTLS, "STARTTLS %s failed: %s", pname,
                    st->why[0] != '\0' ? st->why : "unexpected answer");
            goto out;
        }
    stalled:
        if (w < 0)
            set_why(res, PROBE_ERROR, "poll: %s", strerror(errno));
        else
            set_why(res, PROBE_NO_STARTTLS, "STARTTLS %s: no answer within "
                    "%d s", pname, PROBE_DIALOGUE_TIMEOUT_S);
        goto out;
    }
out:
    free(st);
    return rv;
}

/* A probe, implicit TLS or (r->starttls) STARTTLS first. */
static void
probe_run(const struct sockaddr *addr, const struct policy_rule *r,
          const char *name, struct probe_result *res)
{
    struct probe_state st;
    char ip[INET6_ADDRSTRLEN], verify_name[256], sni[256], why[300];
    enum starttls_proto proto = starttls_proto_of(r->starttls);
    SSL_CTX *ctx = NULL;
    int fd = -1;

    memset(res, 0, sizeof(*res));
    if (r->starttls != NULL && proto == STARTTLS_NONE) {
        set_why(res, PROBE_ERROR, "starttls = %s cannot be probed",
                r->starttls);
        return;
    }
    memset(&st, 0, sizeof(st));
    util_ip_str(addr, ip, sizeof(ip));
    if (r->verifycn_name != NULL)
        util_strlcpy(verify_name, r->verifycn_name, sizeof(verify_name));
    else if (name != NULL && name[0] != '\0')
        util_strlcpy(verify_name, name, sizeof(verify_name));
    else
        util_strlcpy(verify_name, ip, sizeof(verify_name));
    if (r->hostname != NULL)
        util_strlcpy(sni, r->hostname, sizeof(sni));
    else if (!is_ip_literal(verify_name))
        util_strlcpy(sni, verify_name, sizeof(sni));
    else
        sni[0] = '\0';
    st.rule = r;
    st.verify_name = verify_name;

    if (context_init() != 0) {
        set_why(res, PROBE_ERROR, "cannot initialise OpenSSL");
        return;
    }
    if ((ctx = make_ctx(r, &st, why, sizeof(why))) == NULL) {
        set_why(res, PROBE_ERROR, "%s", why);
        return;
    }
    if ((fd = connect_addr(addr)) < 0) {
        if (errno == ETIMEDOUT)
            set_why(res, PROBE_UNREACHABLE, "no TCP connection within %d s",
                    PROBE_CONNECT_TIMEOUT_S);
        else
            set_why(res, PROBE_UNREACHABLE, "no TCP connection: %s",
                    strerror(errno));
        goto out;
    }
    if (proto != STARTTLS_NONE) {
        static const char accepted[] = "STARTTLS accepted; ";
        size_t len;

        if (dialogue(fd, proto, verify_name, res) != 0)
            goto out;
        handshake(fd, ctx, sni, &st, res);
        /* the handshake's verdict, after the dialogue that led to it */
        len = strlen(res->why);
        if (len > sizeof(res->why) - sizeof(accepted))
            len = sizeof(res->why) - sizeof(accepted);
        memmove(res->why + sizeof(accepted) - 1, res->why, len);
        memcpy(res->why, accepted, sizeof(accepted) - 1);
        res->why[sizeof(accepted) - 1 + len] = '\0';
        goto out;
    }
    handshake(fd, ctx, sni, &st, res);
out:
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(ctx);
}

void
probe_tls(const struct sockaddr *addr, const struct policy_rule *r,
          const char *name, struct probe_result *res)
{
    probe_run(addr, r, name, res);
}
