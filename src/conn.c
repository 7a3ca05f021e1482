/*
 * The connection engine.  Every operation first advances the connection
 * without blocking (TCP connect, handshake, pending record), then tries
 * the OpenSSL call; when OpenSSL wants the socket, a blocking caller waits
 * in the real poll() with the lock released and tries again.  Records that
 * OpenSSL accepted but the kernel did not take whole stay in wpend and are
 * finished by later calls, readiness calls, close and exit, so that a
 * write never loses or reorders bytes (SPEC section 5).
 *
 * Lifetime: a conn is type-stable.  It is recycled through a free list,
 * never returned to malloc, so a hook that loaded a stale pointer from the
 * fd table may still increment its counter and find out.  `users` counts
 * the fd references plus the calls in flight; `live` makes destruction
 * happen once.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "context.h"
#include "fdtable.h"
#include "ftpdata.h"
#include "log.h"
#include "ocsp.h"
#include "report.h"
#include "sniff.h"
#include "starttls.h"
#include "starttls_server.h"
#include "ktls.h"
#include "sesscache.h"
#include "sys.h"
#include "util.h"

#define CHUNK 16384          /* one TLS record of plaintext */
#define CLOSE_FLUSH_MS 2000  /* how long close() may wait to finish a record */
#define VERIFY_RECHECK_MS 20 /* readiness calls look at OCSP queries this often */

/* guards the free list */
static pthread_mutex_t free_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn *free_list;
static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* Enforce-bound connections, whose socket the fd table no longer maps
 * (the program's TLS owns it).  guarded by watch_lock, taken before any
 * c->lock; watch_count is read lock-free by the close hooks */
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn *watch_head;
static atomic_uint watch_count;

static void enforce_unwatch(struct conn *c);

static atomic_int *
conn_live(struct conn *c)
{
    return &c->live;
}

static struct conn *
conn_alloc(void)
{
    struct conn *c;

    pthread_mutex_lock(&free_lock);
    c = free_list;
    if (c != NULL)
        free_list = c->next_free;
    pthread_mutex_unlock(&free_lock);
    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        if (c == NULL)
            return NULL;
        pthread_mutex_init(&c->lock, NULL);
    }
    pthread_mutex_lock(&c->lock);
    /* Reset everything but the lock and the counters. */
    size_t off = offsetof(struct conn, fdrefs);
    memset((char *)c + off, 0, sizeof(*c) - off);
    c->fd = -1;
    c->aux_fd = -1;
    pthread_mutex_unlock(&c->lock);
    atomic_store(conn_live(c), 1);
    atomic_fetch_add(&c->users, 1);
    return c;
}

static void
conn_destroy(struct conn *c)
{
    enforce_unwatch(c);
    pthread_mutex_lock(&c->lock);
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    free(c->wpend);
    c->wpend = NULL;
    c->wpend_len = 0;
    ocsp_job_free(c->ocsp_job);
    c->ocsp_job = NULL;
    free(c->stls);
    c->stls = NULL;
    free(c->stsrv);
    c->stsrv = NULL;
    free(c->ftp);
    c->ftp = NULL;
    owner_free(c->owner, c->forked);
    c->owner = NULL;
    X509_free(c->peer_cert);
    c->peer_cert = NULL;
    sk_X509_pop_free(c->enforce_chain, X509_free);
    c->enforce_chain = NULL;
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_lock(&free_lock);
    c->next_free = free_list;
    free_list = c;
    pthread_mutex_unlock(&free_lock);
}

void
conn_put(struct conn *c)
{
    if (atomic_fetch_sub(&c->users, 1) == 1 &&
        atomic_exchange(conn_live(c), 0) == 1)
        conn_destroy(c);
}

struct conn *
conn_get(int fd)
{
    for (int tries = 0; tries < 4; tries++) {
        struct conn *c = fdtable_peek(fd);
        if (c == NULL)
            return NULL;
        atomic_fetch_add(&c->users, 1);
        if (fdtable_peek(fd) == c && atomic_load(conn_live(c)))
            return c;
        conn_put(c);
    }
    return NULL;
}

/* --- the socket BIO: real recv/send, never our hooks ---------------------- */

/* The BIO's state: the socket, and whether the peer closed TCP (OpenSSL
 * asks BIO_eof() to tell an unexpected EOF from a broken read). */
struct bio_sock {
    int fd;
    int eof;
};

static int
bio_sock_write(BIO *b, const char *buf, size_t len, size_t *written)
{
    int fd = ((struct bio_sock *)BIO_get_data(b))->fd;
    ssize_t n = tlsshim_sys.send(fd, buf, len, MSG_NOSIGNAL);

    BIO_clear_retry_flags(b);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            BIO_set_retry_write(b);
        return 0;
    }
    *written = (size_t)n;
    return 1;
}

static int
bio_sock_read(BIO *b, char *buf, size_t len, size_t *readbytes)
{
    struct bio_sock *bs = BIO_get_data(b);
    ssize_t n = tlsshim_sys.recv(bs->fd, buf, len, 0);

    BIO_clear_retry_flags(b);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            BIO_set_retry_read(b);
        return 0;
    }
    if (n == 0) {
        bs->eof = 1;
        errno = 0;   /* EOF: no error */
        return 0;
    }
    *readbytes = (size_t)n;
    return 1;
}

static long
bio_sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    switch (cmd) {
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_DUP:
        return 1;
    case BIO_CTRL_EOF:
        return ((struct bio_sock *)BIO_get_data(b))->eof;
    case BIO_CTRL_GET_CLOSE:
        return BIO_get_shutdown(b);
    case BIO_CTRL_SET_CLOSE:
        BIO_set_shutdown(b, (int)num);
        return 1;
    default:
        return 0;
    }
}

static int
bio_sock_create(BIO *b)
{
    struct bio_sock *bs = calloc(1, sizeof(*bs));

    if (bs == NULL)
        return 0;
    bs->fd = -1;
    BIO_set_data(b, bs);
    BIO_set_init(b, 1);
    return 1;
}

static int
bio_sock_destroy(BIO *b)
{
    free(BIO_get_data(b));
    BIO_set_data(b, NULL);
    return 1;
}

void
conn_bio_set_fd(SSL *ssl, int fd)
{
    BIO *b = ssl != NULL ? SSL_get_rbio(ssl) : NULL;

    if (b != NULL && BIO_get_data(b) != NULL)
        ((struct bio_sock *)BIO_get_data(b))->fd = fd;
}

static void
bio_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                                 "tlsshim socket");
    if (m == NULL)
        return;
    BIO_meth_set_write_ex(m, bio_sock_write);
    BIO_meth_set_read_ex(m, bio_sock_read);
    BIO_meth_set_ctrl(m, bio_sock_ctrl);
    BIO_meth_set_create(m, bio_sock_create);
    BIO_meth_set_destroy(m, bio_sock_destroy);
    bio_method = m;
}

static BIO *
bio_for_fd(int fd)
{
    BIO *b;

    pthread_once(&bio_once, bio_init);
    if (bio_method == NULL || (b = BIO_new(bio_method)) == NULL)
        return NULL;
    ((struct bio_sock *)BIO_get_data(b))->fd = fd;
    return b;
}

BIO *
conn_socket_bio(int fd)
{
    return bio_for_fd(fd);
}

/* --- naming and logging ---------------------------------------------------- */

const char *
conn_state_name(enum conn_state s)
{
    static const char *const names[] = {"connecting", "auto", "handshaking",
                                        "open", "failed", "passthrough",
                                        "accepted", "verifying", "audit",
                                        "starttls", "offering"};
    return (unsigned)s < TLSSHIM_NELEMS(names) ? names[s] : "?";
}

/* "connect NAME:PORT (IP)" or "connect IP:PORT"; for a server connection
 * "accept LOCAL from PEER" */
static const char *
peer_desc(struct conn *c, char *buf, size_t len)
{
    char ip[64], addr[80], local[80];

    util_addr_str((struct sockaddr *)&c->peer, addr, sizeof(addr));
    if (c->role == POLICY_ROLE_SERVER) {
        util_addr_str((struct sockaddr *)&c->local, local, sizeof(local));
        snprintf(buf, len, "accept %s from %s", local, addr);
    } else if (c->matched_name[0] != '\0') {
        util_ip_str((struct sockaddr *)&c->peer, ip, sizeof(ip));
        snprintf(buf, len, "connect %.200s:%u (%s)", c->matched_name,
                 util_addr_port((struct sockaddr *)&c->peer), ip);
    } else {
        snprintf(buf, len, "connect %s", addr);
    }
    if (c->dest_len > 0) {
        size_t used = strlen(buf);
        util_addr_str((struct sockaddr *)&c->dest, addr, sizeof(addr));
        snprintf(buf + used, len - used, " via %s", addr);
    }
    return buf;
}

static void
fail(struct conn *c, int fail_errno, int io_errno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A peek outside read() (readiness, pending bytes, close) may meet a
 * fatal record, e.g. an oversized one: keep OpenSSL's reason on the conn,
 * since the queue is cleared before the program's read reports the
 * failure and OpenSSL does not raise it again. */
static void
note_peek_error(struct conn *c)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    if (r != NULL && c->error[0] == '\0')
        snprintf(c->error, sizeof(c->error), "%s", r);
}

/* Mark the connection failed: it carries no byte from now on. */
static void
fail(struct conn *c, int fail_errno, int io_errno, const char *fmt, ...)
{
    char desc[448];
    va_list ap;

    if (c->state == CONN_FAILED)
        return;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof(c->error), fmt, ap);
    va_end(ap);
    c->state = CONN_FAILED;
    /* an accepted connection has no connect() to refuse: a failed
     * handshake is a reset there (SPEC section 5) */
    if (c->role == POLICY_ROLE_SERVER && fail_errno == ECONNREFUSED)
        fail_errno = ECONNRESET;
    c->fail_errno = fail_errno;
    c->io_errno = io_errno;
    c->so_error_pending = 1;
    free(c->wpend);
    c->wpend = NULL;
    c->wpend_len = 0;
    log_error("%s rule=%s: %s", peer_desc(c, desc, sizeof(desc)),
              c->rule->name, c->error);
    /* Release the peer at once; the program's fd keeps failing. */
    if (c->fd >= 0)
        (void)tlsshim_sys.shutdown(c->fd, SHUT_RDWR);
    if (owner_mine(c->owner))
        report_conn(c, "close");
}

static void
log_established(struct conn *c)
{
    char desc[448];
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;

    if (log_level() < 1)
        return;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    if (c->role == POLICY_ROLE_SERVER) {
        log_info("%s rule=%s%s%s tls=%s cipher=%s sni=%s verify=%s "
                 "client=%s resumed=%s%s%.*s",
                 peer_desc(c, desc, sizeof(desc)), c->rule->name,
                 c->rule->starttls != NULL ? " starttls=" : "",
                 c->rule->starttls != NULL ? c->rule->starttls : "",
                 SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl),
                 c->sni[0] != '\0' ? c->sni : "-",
                 c->peer_subject[0] != '\0' ? "ok" : "none",
                 c->peer_subject[0] != '\0' ? c->peer_subject : "-",
                 c->resumed ? "yes" : "no", alpn_len ? " alpn=" : "",
                 (int)alpn_len, alpn_len ? (const char *)alpn : "");
        return;
    }
    log_info("%s rule=%s%s%s tls=%s cipher=%s sni=%s verify=%s "
             "ocsp=%s resumed=%s%s%.*s",
             peer_desc(c, desc, sizeof(desc)), c->rule->name,
             c->rule->starttls != NULL ? " starttls=" : "",
             c->rule->starttls != NULL ? c->rule->starttls : "",
             SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl),
             c->sni[0] != '\0' ? c->sni : "-",
             c->fp_accepted ? "pinned"
             : c->rule->verify_mode == POLICY_VERIFY_NONE &&
                     c->rule->nfingerprints == 0
                 ? "none"
                 : "ok",
             c->ocsp != NULL ? c->ocsp : "none", c->resumed ? "yes" : "no", alpn_len ? " alpn=" : "",
             (int)alpn_len, alpn_len ? (const char *)alpn : "");
}

/* --- construction ------------------------------------------------------------ */

static int
is_ip_literal(const char *s)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/*
 * What every constructor does: a conn for fd in state st, with its owner
 * word, rule, peer and the program's O_NONBLOCK read; take: also make
 * the real socket non-blocking (the engine's), which an audited one is
 * not.  Returns c locked, or NULL on ENOMEM.
 */
static struct conn *
conn_start(int fd, enum policy_role role, const struct policy_rule *rule,
           enum conn_state st, const struct sockaddr *peer, socklen_t plen,
           const char *matched_name, int take)
{
    struct conn *c = conn_alloc();
    int flags;

    if (c == NULL)
        return NULL;
    pthread_mutex_lock(&c->lock);
    if ((c->owner = owner_alloc()) == NULL) {
        pthread_mutex_unlock(&c->lock);
        conn_put(c);
        return NULL;
    }
    c->fd = fd;
    c->fds[0] = fd;
    c->nfds = 1;
    c->fdrefs = 1;
    c->role = role;
    c->rule = rule;
    c->state = st;
    c->started_ms = util_now_ms();
    if (plen > sizeof(c->peer))
        plen = sizeof(c->peer);
    memcpy(&c->peer, peer, plen);
    c->peer_len = plen;
    if (matched_name != NULL)
        util_strlcpy(c->matched_name, matched_name, sizeof(c->matched_name));
    flags = tlsshim_sys.fcntl(fd, F_GETFL);
    c->user_nonblock = flags >= 0 && (flags & O_NONBLOCK);
    if (take && flags >= 0 && !(flags & O_NONBLOCK))
        (void)tlsshim_sys.fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    return c;
}

struct conn *
conn_new_client(int fd, const struct policy_rule *rule,
                const struct sockaddr *peer, socklen_t len,
                const char *matched_name)
{
    struct conn *c = conn_start(fd, POLICY_ROLE_CLIENT, rule, CONN_CONNECTING,
                                peer, len, matched_name, 1);
    char ip[64];

    if (c == NULL)
        return NULL;
    /* an IPv4-mapped destination is an IPv4 address (SPEC section 3):
     * util_ip_str() prints it so */
    util_ip_str(peer, ip, sizeof(ip));
    if (rule->verifycn_name != NULL)
        util_strlcpy(c->verify_name, rule->verifycn_name,
                     sizeof(c->verify_name));
    else if (c->matched_name[0] != '\0')
        util_strlcpy(c->verify_name, c->matched_name, sizeof(c->verify_name));
    else
        util_strlcpy(c->verify_name, ip, sizeof(c->verify_name));
    c->verify_name_is_ip = is_ip_literal(c->verify_name);
    if (rule->hostname != NULL)
        util_strlcpy(c->sni, rule->hostname, sizeof(c->sni));
    else if (!c->verify_name_is_ip)
        util_strlcpy(c->sni, c->verify_name, sizeof(c->sni));
    /* The session key always names the rule and the verified name, so a
     * session is never resumed for another name (SPEC section 4). */
    if (rule->session_key != NULL)
        snprintf(c->session_key, sizeof(c->session_key), "%d|%s|%s",
                 rule->index, c->verify_name, rule->session_key);
    else
        snprintf(c->session_key, sizeof(c->session_key), "%d|%s|%s:%u",
                 rule->index, c->verify_name, c->verify_name,
                 util_addr_port(peer));
    /* starttls = ftp: the data connections are found on the control
     * stream; one that is not found is refused (ftp_blind), since a
     * program that uploads would send its data in plaintext */
    if (rule->starttls != NULL && strcmp(rule->starttls, "ftp") == 0)
        c->ftp = calloc(1, sizeof(*c->ftp));
    pthread_mutex_unlock(&c->lock);
    return c;
}

struct conn *
conn_new_ftp_data(int fd, const struct ftpdata_expect *e,
                  const struct sockaddr *peer, socklen_t len, int accepted)
{
    struct conn *c = conn_new_client(fd, e->rule, peer, len, NULL);

    if (c == NULL)
        return NULL;
    pthread_mutex_lock(&c->lock);
    free(c->ftp);
    c->ftp = NULL;
    c->ftp_data = 1;
    util_strlcpy(c->verify_name, e->verify_name, sizeof(c->verify_name));
    c->verify_name_is_ip = is_ip_literal(c->verify_name);
    util_strlcpy(c->sni, e->sni, sizeof(c->sni));
    /* the control connection's cache entry: its session is resumed */
    util_strlcpy(c->session_key, e->session_key, sizeof(c->session_key));
    if (accepted) {
        c->state = CONN_ACCEPTED;
        c->connect_reported = 1;
    }
    pthread_mutex_unlock(&c->lock);
    return c;
}

struct conn *
conn_new_server(int fd, const struct policy_rule *rule, SSL_CTX *ctx,
                const struct sockaddr *peer, socklen_t plen,
                const struct sockaddr *local, socklen_t llen)
{
    struct conn *c = conn_start(fd, POLICY_ROLE_SERVER, rule, CONN_ACCEPTED,
                                peer, plen, NULL, 1);

    if (c == NULL)
        return NULL;
    c->server_ctx = ctx;
    c->connect_reported = 1;
    if (llen > sizeof(c->local))
        llen = sizeof(c->local);
    memcpy(&c->local, local, llen);
    c->local_len = llen;
    if (rule->starttls != NULL) {
        /* STARTTLS offered: plaintext until the client asks (policy.c
         * admits only the protocols starttls_server.c knows) */
        if ((c->stsrv = malloc(sizeof(*c->stsrv))) == NULL) {
            /* the caller closes the connection */
            pthread_mutex_unlock(&c->lock);
            conn_put(c);
            return NULL;
        }
        stsrv_init(c->stsrv, starttls_proto_of(rule->starttls),
                   rule->starttls_required);
        c->state = CONN_OFFERING;
    }
    pthread_mutex_unlock(&c->lock);
    return c;
}

/* The rule of connections that only the default action matched. */
static const struct policy_rule default_audit_rule = {
    .name = "(default_action)",
    .action = POLICY_AUDIT,
    .index = -1,
};

struct conn *
conn_new_audit(int fd, enum policy_role role, const struct policy_rule *rule,
               const struct sockaddr *peer, socklen_t plen,
               const char *matched_name)
{
    /* the socket stays the program's: its flags are not touched */
    struct conn *c = conn_start(fd, role,
                                rule != NULL ? rule : &default_audit_rule,
                                CONN_AUDIT, peer, plen, matched_name, 0);

    if (c == NULL)
        return NULL;
    c->no_rule = rule == NULL;
    c->connect_reported = 1;
    c->local_len = sizeof(c->local);
    if (role == POLICY_ROLE_SERVER &&
        getsockname(fd, (struct sockaddr *)&c->local, &c->local_len) < 0)
        c->local_len = 0;
    pthread_mutex_unlock(&c->lock);
    return c;
}

/* Classify, log and report.  Lock held. */
static void
audit_seen(struct conn *c, const unsigned char *buf, size_t len, int sent)
{
    struct sniff_result r;
    char desc[448];
    /* who sent these bytes: the connecting side or the accepting one */
    int from_client = (c->role == POLICY_ROLE_CLIENT) == (sent != 0);

    sniff_classify(buf, len, from_client, &r);
    c->first_bytes = r.proto;
    util_strlcpy(c->first_detail, r.detail, sizeof(c->first_detail));
    log_info("%s rule=%s audit first_bytes=%s%s%s (from the %s)",
             peer_desc(c, desc, sizeof(desc)), c->rule->name, r.proto,
             r.detail[0] ? " " : "", r.detail,
             from_client ? "client" : "server");
    report_conn(c, "close");
}

void
conn_audit_bytes(struct conn *c, const void *buf, size_t len, int sent)
{
    int mine = 0;

    pthread_mutex_lock(&c->lock);
    if (c->state == CONN_AUDIT) {
        audit_seen(c, buf, len, sent);
        c->state = CONN_PASSTHROUGH;
        mine = 1;
    }
    pthread_mutex_unlock(&c->lock);
    if (mine)
        conn_release_all(c);
}

void
conn_audit_peek(struct conn *c)
{
    unsigned char buf[512];
    int fd, nonblock;

    pthread_mutex_lock(&c->lock);
    fd = c->fd;
    nonblock = c->user_nonblock;
    pthread_mutex_unlock(&c->lock);
    /* as the program's own read would wait (or not), without the lock */
    ssize_t n = tlsshim_sys.recv(fd, buf, sizeof(buf),
                                 MSG_PEEK | (nonblock ? MSG_DONTWAIT : 0));
    if (n < 0)
        return;   /* nothing yet (or an error the program's read reports) */
    conn_audit_bytes(c, buf, (size_t)n, 0);
}

/* --- progress ---------------------------------------------------------------- */

static short handshake_step(struct conn *c);
static short verify_step(struct conn *c);
static short advance(struct conn *c);

/* A connection on its way to OPEN: its calls advance it first. */
static int
in_progress(enum conn_state s)
{
    return s == CONN_CONNECTING || s == CONN_STARTTLS ||
           s == CONN_HANDSHAKING || s == CONN_ACCEPTED || s == CONN_VERIFYING;
}

/* Create the SSL object and begin the handshake.  Lock held. */
static int
start_tls(struct conn *c)
{
    char err[256];
    SSL_CTX *ctx = c->role == POLICY_ROLE_SERVER
                       ? c->server_ctx
                       : context_client(c->rule, err, sizeof(err));
    BIO *bio;

    if (ctx == NULL) {
        fail(c, EACCES, EACCES, "%s", err);
        return -1;
    }
    ERR_clear_error();
    c->ssl = SSL_new(ctx);
    bio = bio_for_fd(c->fd);
    if (c->ssl == NULL || bio == NULL) {
        BIO_free(bio);
        fail(c, ECONNREFUSED, ECONNRESET, "cannot create TLS state");
        return -1;
    }
    SSL_set_bio(c->ssl, bio, bio);
    SSL_set_ex_data(c->ssl, context_conn_index(), c);
    /* with starttls, handshake_timeout began with the dialogue */
    if (c->stls == NULL)
        c->handshake_deadline_ms =
            util_now_ms() + (int64_t)c->rule->handshake_timeout * 1000;
    if (c->role == POLICY_ROLE_SERVER) {
        /* the clock starts when the program first uses the connection */
        c->started_ms = util_now_ms();
        SSL_set_accept_state(c->ssl);
        c->state = CONN_HANDSHAKING;
        return 0;
    }
    SSL_set_connect_state(c->ssl);
    if (c->sni[0] != '\0' && !SSL_set_tlsext_host_name(c->ssl, c->sni)) {
        fail(c, ECONNREFUSED, ECONNRESET, "bad SNI name %s", c->sni);
        return -1;
    }
    if (c->rule->session_cache_size > 0) {
        SSL_SESSION *s = context_session_get(c->rule, c->session_key);
        /* another process's session: session_cache_dir */
        if (s == NULL && c->rule->session_cache_dir != NULL)
            s = sesscache_load(c->rule, c->session_key);
        if (s != NULL) {
            SSL_set_session(c->ssl, s);
            SSL_SESSION_free(s);
        }
    }
    c->state = CONN_HANDSHAKING;
    if (c->stls == NULL)
        c->handshake_deadline_ms =
            util_now_ms() + (int64_t)c->rule->handshake_timeout * 1000;
    return 0;
}

/* The reason a handshake failed, from our verify callback or OpenSSL. */
static void
handshake_failed(struct conn *c, int ssl_err)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256];

    if (c->verify_error[0] != '\0') {
        c->outcome = "verify_failed";
        fail(c, ECONNREFUSED, ECONNRESET, "%s", c->verify_error);
        return;
    }
    if (e != 0) {
        const char *r = ERR_reason_error_string(e);
        if (r == NULL) {
            ERR_error_string_n(e, buf, sizeof(buf));
            r = buf;
        }
        fail(c, ECONNREFUSED, ECONNRESET, "TLS handshake failed: %s", r);
        return;
    }
    if (ssl_err == SSL_ERROR_SYSCALL && errno != 0)
        fail(c, ECONNREFUSED, ECONNRESET, "TLS handshake failed: %s",
             strerror(errno));
    else
        fail(c, ECONNREFUSED, ECONNRESET,
             "TLS handshake failed: the peer closed the connection");
}

/* A server handshake ended: note what the client showed. */
static void
server_established(struct conn *c)
{
    const char *sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
    X509 *peer = SSL_get0_peer_certificate(c->ssl);

    if (sni != NULL)
        util_strlcpy(c->sni, sni, sizeof(c->sni));
    if (peer != NULL)
        X509_NAME_oneline(X509_get_subject_name(peer), c->peer_subject,
                          sizeof(c->peer_subject));
}

/* Handshake, verification and any dialogue after them are done. */
static void
open_now(struct conn *c)
{
    c->state = CONN_OPEN;
    c->was_open = 1;
    c->handshake_ms = util_now_ms() - c->started_ms;
    log_established(c);
    if (report_open_enabled())
        report_conn(c, "open");
    if (c->stls != NULL && c->stls->show_off >= c->stls->show_len) {
        free(c->stls);
        c->stls = NULL;
    }
}

/* The handshake and its verification succeeded. */
static void
established(struct conn *c)
{
    c->verified = 1;
    /* A TLS 1.2 session exists once the handshake ends, before it was
     * verified (the session callback ran then and refused it): keep it
     * now.  TLS 1.3 tickets arrive later, through the session callback. */
    if (c->role == POLICY_ROLE_CLIENT &&
        SSL_version(c->ssl) < TLS1_3_VERSION) {
        SSL_SESSION *s = SSL_get1_session(c->ssl);
        if (s != NULL)
            context_session_put(c->rule, c->session_key, s);
        SSL_SESSION_free(s);
    }
    /* starttls: the dialogue ends over TLS (the greeting is made, ftp
     * asks for protected transfers) */
    if (c->stls != NULL && !c->stls->tls) {
        starttls_tls_up(c->stls);
        c->state = CONN_STARTTLS;
        return;
    }
    open_now(c);
}

/* The OCSP verdict: -1 when it failed the connection. */
static int
ocsp_done(struct conn *c, struct ocsp_result *res)
{
    c->ocsp = res->status;
    if (res->note[0] != '\0' && res->error[0] == '\0') {
        char desc[448];
        log_warn("%s rule=%s: %s", peer_desc(c, desc, sizeof(desc)),
                 c->rule->name, res->note);
    }
    if (res->error[0] != '\0') {
        c->outcome = "verify_failed";
        fail(c, ECONNREFUSED, ECONNRESET, "%s", res->error);
        return -1;
    }
    return 0;
}

/* Advance the OCSP queries.  Lock held.  Returns the events awaited on
 * aux_fd, or 0 when decided (open or failed). */
static short
verify_step(struct conn *c)
{
    struct ocsp_result res;
    int fd = -1;
    short ev = 0;
    int64_t dl = -1;

    if (ocsp_continue(c->ocsp_job, &res, &fd, &ev, &dl)) {
        c->aux_fd = fd;
        c->aux_events = ev;
        c->aux_deadline_ms = dl;
        return ev;
    }
    ocsp_job_free(c->ocsp_job);
    c->ocsp_job = NULL;
    c->aux_fd = -1;
    if (ocsp_done(c, &res) == 0)
        established(c);
    return 0;
}

/* ktls: after the handshake, whether the kernel took the records over.
 * auto falls back to TLS in tlsshim (logged at debug level, with why);
 * yes fails the connection unless the kernel took both directions.
 * Lock held.  0, or -1 when the connection failed. */
static int
ktls_check(struct conn *c)
{
    char why[256], desc[448];
    int tx = 0, rx = 0;

    if (c->rule->ktls == POLICY_KTLS_NO)
        return 0;
    if (ktls_available(why, sizeof(why))) {
        tx = BIO_get_ktls_send(SSL_get_wbio(c->ssl));
        rx = BIO_get_ktls_recv(SSL_get_rbio(c->ssl));
        if (!tx || !rx)
            snprintf(why, sizeof(why), "OpenSSL did not hand the %s keys "
                     "to the kernel (tlsshim's socket layer does not offer "
                     "kernel TLS to OpenSSL yet)",
                     tx ? "receiving" : rx ? "sending" : "connection's");
    }
    if (tx && rx) {
        log_flow("%s rule=%s: kernel TLS carries the records",
                 peer_desc(c, desc, sizeof(desc)), c->rule->name);
        return 0;
    }
    if (c->rule->ktls == POLICY_KTLS_YES) {
        fail(c, ECONNREFUSED, ECONNRESET, "ktls = yes: kernel TLS "
             "unavailable: %s", why);
        return -1;
    }
    log_flow("%s rule=%s: kernel TLS unavailable: %s; TLS stays in tlsshim",
             peer_desc(c, desc, sizeof(desc)), c->rule->name, why);
    return 0;
}

/* One non-blocking handshake step.  Lock held.  Returns the events the
 * handshake waits for, or 0 when it ended (open or failed). */
static short
handshake_step(struct conn *c)
{
    int r, e;

    if (util_now_ms() >= c->handshake_deadline_ms) {
        c->outcome = "timeout";
        fail(c, ETIMEDOUT, ECONNRESET, "TLS handshake timed out after %d s",
             c->rule->handshake_timeout);
        return 0;
    }
    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->resumed = SSL_session_reused(c->ssl);
        if (ktls_check(c) < 0)
            return 0;
        if (c->role == POLICY_ROLE_SERVER)
            server_established(c);
        if (!c->fp_accepted && ocsp_needed(c->rule)) {
            struct ocsp_result res;
            if (ocsp_start(c->rule, c->ssl, c->ocsp, &c->ocsp_job, &res)) {
                c->state = CONN_VERIFYING;
                return verify_step(c);
            }
            if (ocsp_done(c, &res) < 0)
                return 0;
        }
        established(c);
        return 0;
    }
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return POLLIN;
    if (e == SSL_ERROR_WANT_WRITE)
        return POLLOUT;
    handshake_failed(c, e);
    ERR_clear_error();
    return 0;
}

/* --- starttls: the protocol's upgrade dialogue ---------------------------- */

/* The EHLO argument: our end's address as an address literal (RFC 5321
 * section 4.1.3), which names nothing the program did not show. */
static void
local_literal(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char ip[64];

    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
        snprintf(buf, len, "[127.0.0.1]");
        return;
    }
    util_ip_str((struct sockaddr *)&ss, ip, sizeof(ip));  /* mapped: IPv4 */
    if (strchr(ip, ':') != NULL)
        snprintf(buf, len, "[IPv6:%s]", ip);
    else
        snprintf(buf, len, "[%s]", ip);
}

/* TCP is up on a starttls rule: the dialogue begins, and with it
 * handshake_timeout.  Lock held. */
static int
begin_dialogue(struct conn *c)
{
    enum starttls_proto proto = starttls_proto_of(c->rule->starttls);
    char client[80];

    if (proto == STARTTLS_NONE) {
        fail(c, EACCES, EACCES, "starttls = %s is not supported",
             c->rule->starttls);
        return -1;
    }
    if (c->stls == NULL && (c->stls = malloc(sizeof(*c->stls))) == NULL) {
        fail(c, ECONNREFUSED, ECONNRESET, "cannot create STARTTLS state");
        return -1;
    }
    local_literal(c->fd, client, sizeof(client));
    starttls_init(c->stls, proto, c->verify_name, client);
    c->handshake_deadline_ms =
        util_now_ms() + (int64_t)c->rule->handshake_timeout * 1000;
    c->state = CONN_STARTTLS;
    log_flow("fd %d: STARTTLS %s dialogue", c->fd, c->rule->starttls);
    return 0;
}

/* Send what the dialogue queued: on the socket before the handshake, over
 * TLS after it.  Lock held.  0 when all sent, the events to wait for, or
 * -1 when the connection failed. */
static short
dialogue_send(struct conn *c, struct starttls *st)
{
    while (st->out_off < st->out_len) {
        size_t left = st->out_len - st->out_off, n = 0;

        if (!st->tls) {
            ssize_t w = tlsshim_sys.send(c->fd, st->out + st->out_off, left,
                                         MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    return POLLOUT;
                fail(c, ECONNREFUSED, ECONNRESET, "STARTTLS %s: send "
                     "failed: %s", c->rule->starttls, strerror(errno));
                return -1;
            }
            n = (size_t)w;
        } else {
            ERR_clear_error();
            errno = 0;
            if (!SSL_write_ex(c->ssl, st->out + st->out_off, left, &n)) {
                int e = SSL_get_error(c->ssl, 0);
                ERR_clear_error();
                if (e == SSL_ERROR_WANT_WRITE)
                    return POLLOUT;
                if (e == SSL_ERROR_WANT_READ)
                    return POLLIN;
                fail(c, ECONNREFUSED, ECONNRESET, "STARTTLS %s: send "
                     "failed: %s", c->rule->starttls,
                     errno ? strerror(errno) : "TLS error");
                return -1;
            }
        }
        st->out_off += n;
    }
    st->out_off = st->out_len = 0;
    return 0;
}

/* Receive what the server says next.  Lock held.  0 when bytes came, the
 * events to wait for, or -1 when the connection failed. */
static short
dialogue_recv(struct conn *c, struct starttls *st)
{
    size_t room, n = 0;
    unsigned char *p = starttls_room(st, &room);

    if (room == 0) {
        fail(c, ECONNREFUSED, ECONNRESET, "STARTTLS %s: the server's "
             "answer is too long", c->rule->starttls);
        return -1;
    }
    if (!st->tls) {
        ssize_t r = tlsshim_sys.recv(c->fd, p, room, 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                      errno == EINTR))
            return POLLIN;
        if (r <= 0) {
            fail(c, ECONNREFUSED, ECONNRESET, "STARTTLS %s: %s",
                 c->rule->starttls,
                 r == 0 ? "the server closed the connection during the "
                          "dialogue"
                        : strerror(errno));
            return -1;
        }
        n = (size_t)r;
    } else {
        ERR_clear_error();
        errno = 0;
        if (!SSL_read_ex(c->ssl, p, room, &n)) {
            int e = SSL_get_error(c->ssl, 0);
            ERR_clear_error();
            if (e == SSL_ERROR_WANT_READ)
                return POLLIN;
            if (e == SSL_ERROR_WANT_WRITE)
                return POLLOUT;
            fail(c, ECONNREFUSED, ECONNRESET, "STARTTLS %s: %s",
                 c->rule->starttls,
                 e == SSL_ERROR_ZERO_RETURN || errno == 0
                     ? "the server closed the connection after the handshake"
                     : strerror(errno));
            return -1;
        }
    }
    starttls_received(st, n);
    return 0;
}

/* The server does not offer STARTTLS, or refused it.  Lock held. */
static void
dialogue_refused(struct conn *c, struct starttls *st)
{
    char desc[448];

    if (c->rule->starttls_required) {
        c->outcome = "starttls_refused";
        fail(c, ECONNREFUSED, ECONNRESET, "STARTTLS %s refused: %s",
             c->rule->starttls, st->why);
        return;
    }
    if (st->in_len > 0) {
        fail(c, ECONNREFUSED, ECONNRESET, "STARTTLS %s refused: %s, and "
             "%zu more bytes came unasked", c->rule->starttls, st->why,
             st->in_len);
        return;
    }
    /* starttls_required = no: the program goes on in plaintext, and reads
     * the server's own greeting first (a client-first protocol has none;
     * the server has only seen our question, which it refused). */
    log_warn("%s rule=%s starttls=%s: %s; going on in plaintext "
             "(starttls_required = no)",
             peer_desc(c, desc, sizeof(desc)), c->rule->name,
             c->rule->starttls, st->why);
    c->stls_plain = 1;
    c->state = CONN_PASSTHROUGH;
    if (owner_mine(c->owner))
        report_conn(c, "close");
}

/* One non-blocking run of the dialogue.  Lock held.  Returns the events it
 * waits for, or 0 when it moved on (handshake, open, plaintext, failed). */
static short
dialogue_step(struct conn *c)
{
    struct starttls *st = c->stls;
    short ev;

    if (util_now_ms() >= c->handshake_deadline_ms) {
        c->outcome = "timeout";
        fail(c, ETIMEDOUT, ECONNRESET, "STARTTLS %s dialogue timed out "
             "after %d s", c->rule->starttls, c->rule->handshake_timeout);
        return 0;
    }
    for (;;) {
        if (st->out_off < st->out_len) {
            if ((ev = dialogue_send(c, st)) != 0)
                return ev > 0 ? ev : 0;
            continue;
        }
        switch (starttls_next(st)) {
        case STARTTLS_WRITE:
            continue;
        case STARTTLS_READ:
            if ((ev = dialogue_recv(c, st)) != 0)
                return ev > 0 ? ev : 0;
            continue;
        case STARTTLS_UPGRADE:
            log_flow("fd %d: STARTTLS %s accepted; handshake", c->fd,
                     c->rule->starttls);
            (void)start_tls(c);
            return 0;
        case STARTTLS_DONE:
            /* mysql: the program's ids are one behind the server's until
             * its first command */
            if (st->proto == STARTTLS_MYSQL)
                starttls_seq_init(&c->mysql_seq);
            open_now(c);
            return 0;
        case STARTTLS_LOGIN:
            if (c->state != CONN_LOGIN_WAIT)
                log_flow("fd %d: STARTTLS %s: greeting read; waiting for "
                         "the program's login", c->fd, c->rule->starttls);
            c->state = CONN_LOGIN_WAIT;
            return 0;
        case STARTTLS_REFUSED:
            dialogue_refused(c, st);
            return 0;
        case STARTTLS_FAILED:
        default:
            fail(c, ECONNREFUSED, ECONNRESET, "STARTTLS %s: %s",
                 c->rule->starttls, st->why);
            return 0;
        }
    }
}

/* --- starttls = mysql: the program's login ------------------------------- */

/* CONN_LOGIN_WAIT and the greeting read: the server has nothing to say
 * until the program's login, so whatever comes fails the connection (a
 * close too).  Lock held.  The events to wait for, or 0 when it failed. */
static short
login_wait_check(struct conn *c)
{
    short ev = dialogue_recv(c, c->stls);

    if (ev != 0)
        return ev > 0 ? ev : 0;
    if (starttls_next(c->stls) == STARTTLS_FAILED)
        fail(c, ECONNREFUSED, ECONNRESET, "STARTTLS %s: %s",
             c->rule->starttls, c->stls->why);
    else
        fail(c, ECONNREFUSED, ECONNRESET, "STARTTLS %s: the server sent "
             "bytes before the program's login", c->rule->starttls);
    return 0;
}

/* CONN_LOGIN_WAIT: the program writes its login packet.  Take it (up to
 * its end), and once it is whole let the dialogue go on: SSLRequest,
 * handshake and verification, the login over TLS.  Lock held.  Returns
 * the bytes taken; *ev: the events the dialogue waits for. */
static size_t
login_take(struct conn *c, const void *buf, size_t len, short *ev)
{
    struct starttls *st = c->stls;
    size_t n = starttls_login(st, buf, len), room;
    unsigned char *p;

    *ev = 0;
    c->bytes_out += n;
    /* what the server sent meanwhile (nothing, from an honest one): the
     * dialogue refuses it before anything is sent */
    p = starttls_room(st, &room);
    if (room > 0) {
        ssize_t r = tlsshim_sys.recv(c->fd, p, room, MSG_DONTWAIT);
        if (r > 0) {
            starttls_received(st, (size_t)r);
        } else if (r == 0) {
            fail(c, ECONNREFUSED, ECONNRESET, "STARTTLS %s: the server "
                 "closed the connection before the program's login",
                 c->rule->starttls);
            return n;
        }
    }
    /* handshake_timeout runs from here: the program took its time */
    c->state = CONN_STARTTLS;
    c->handshake_deadline_ms =
        util_now_ms() + (int64_t)c->rule->handshake_timeout * 1000;
    *ev = advance(c);
    return n;
}

/* --- server starttls: STARTTLS offered to the client ---------------------- */

/* Send on the plain socket what waits: the program's words (rewritten),
 * then tlsshim's own answer.  Lock held.  0 when all is sent, the events
 * to wait for, or -1 when the connection failed. */
static short
offer_send(struct conn *c)
{
    struct stsrv *st = c->stsrv;

    for (;;) {
        const void *p;
        size_t left;
        int ours = 0;

        if (st->out_off < st->out_len) {
            p = st->out + st->out_off;
            left = st->out_len - st->out_off;
        } else if (st->reply_off < st->reply_len) {
            p = st->reply + st->reply_off;
            left = st->reply_len - st->reply_off;
            ours = 1;
        } else {
            st->out_off = st->out_len = 0;
            st->reply_off = st->reply_len = 0;
            return 0;
        }
        ssize_t w = tlsshim_sys.send(c->fd, p, left, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return POLLOUT;
            int e = errno;
            fail(c, ECONNRESET, e == EPIPE ? EPIPE : ECONNRESET,
                 "STARTTLS %s: send failed: %s", c->rule->starttls,
                 strerror(e));
            return -1;
        }
        if (ours)
            st->reply_off += (size_t)w;
        else
            st->out_off += (size_t)w;
    }
}

/* The client asked for STARTTLS and our go-ahead is out: the handshake.
 * Lock held. */
static void
offer_upgrade(struct conn *c)
{
    struct stsrv *st = c->stsrv;
    char desc[448];

    if (st->discarded > 0)
        log_warn("%s rule=%s starttls=%s: %zu bytes came after STARTTLS, "
                 "before the TLS handshake; discarded (injected?)",
                 peer_desc(c, desc, sizeof(desc)), c->rule->name,
                 c->rule->starttls, st->discarded);
    log_flow("fd %d: STARTTLS %s asked for; handshake", c->fd,
             c->rule->starttls);
    free(c->stsrv);
    c->stsrv = NULL;
    c->stsrv_upgrade = 0;
    (void)start_tls(c);
}

/* Plaintext for good (starttls_required = no, a login or a mail
 * transaction without STARTTLS).  Lock held. */
static void
offer_release(struct conn *c)
{
    char desc[448];

    log_info("%s rule=%s starttls=%s: the client went on without STARTTLS; "
             "plaintext (starttls_required = no)",
             peer_desc(c, desc, sizeof(desc)), c->rule->name,
             c->rule->starttls);
    c->stsrv_release = 0;
    c->stls_plain = 1;
    c->state = CONN_PASSTHROUGH;
    if (owner_mine(c->owner))
        report_conn(c, "close");
}

/*
 * Advance the plaintext dialogue until the program has something to read
 * (pass bytes, EOF) or the connection moves on (handshake, plaintext for
 * good, failed).  Lock held.  Returns the events it waits for, 0 when
 * there is no reason to wait.
 */
static short
offer_step(struct conn *c)
{
    char desc[448];

    for (;;) {
        struct stsrv *st = c->stsrv;
        short ev = offer_send(c);

        if (ev != 0)
            return ev > 0 ? ev : 0;
        if (c->stsrv_upgrade) {
            offer_upgrade(c);
            return 0;
        }
        if (c->stsrv_release) {
            offer_release(c);
            return 0;
        }
        if (st->pass > 0 || c->eof)
            return 0;
        switch (stsrv_next(st)) {
        case STSRV_PASS:
            return 0;
        case STSRV_REPLY:
            stsrv_flush_hold(st);
            if (st->pipelined > 0) {
                log_warn("%s rule=%s starttls=%s: STARTTLS refused: it "
                         "came before the program had answered the "
                         "commands it read (pipelined, or injected)",
                         peer_desc(c, desc, sizeof(desc)), c->rule->name,
                         c->rule->starttls);
                st->pipelined = 0;
            } else if (st->refused > 0)
                log_info("%s rule=%s starttls=%s: %s refused before "
                         "STARTTLS (starttls_required = yes)",
                         peer_desc(c, desc, sizeof(desc)), c->rule->name,
                         c->rule->starttls, st->refused_verb);
            continue;
        case STSRV_UPGRADE:
            stsrv_flush_hold(st);
            c->stsrv_upgrade = 1;
            continue;
        case STSRV_RELEASE:
            stsrv_flush_hold(st);
            c->stsrv_release = 1;
            continue;
        case STSRV_EOF:
            c->eof = 1;
            return 0;
        case STSRV_READ: {
            size_t room;
            unsigned char *p = stsrv_room(st, &room);
            ssize_t r = tlsshim_sys.recv(c->fd, p, room, 0);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                          errno == EINTR))
                return POLLIN;
            if (r < 0) {
                int e = errno;
                fail(c, ECONNRESET, ECONNRESET, "STARTTLS %s: %s",
                     c->rule->starttls, strerror(e));
                return 0;
            }
            stsrv_received(st, (size_t)r);
            continue;
        }
        case STSRV_FAILED:
        default:
            fail(c, ECONNRESET, ECONNRESET, "STARTTLS %s: %s",
                 c->rule->starttls, st->why);
            return 0;
        }
    }
}

/* The program reads in CONN_OFFERING: what the client said that is the
 * program's.  Lock held.  Returns the bytes copied. */
static size_t
offer_take(struct conn *c, void *buf, size_t len, int peek)
{
    struct stsrv *st = c->stsrv;
    size_t n = st->pass < len ? st->pass : len;

    memcpy(buf, st->in, n);
    if (!peek) {
        stsrv_consume_pass(st, n);
        c->bytes_in += n;
    }
    return n;
}

/* The program writes in CONN_OFFERING: take what fits once what waits
 * is sent.  Lock held.  Returns the bytes taken (0: wait for *ev), or -1
 * when the connection failed. */
static ssize_t
offer_write(struct conn *c, const void *buf, size_t len, short *ev)
{
    size_t n;
    short e = offer_send(c);

    *ev = 0;
    if (e < 0)
        return -1;
    if (e > 0) {
        *ev = e;
        return 0;
    }
    /* a go-ahead is out: nothing more in plaintext */
    if (c->stsrv_upgrade) {
        offer_upgrade(c);
        return 0;
    }
    if (c->stsrv_release) {
        offer_release(c);
        return 0;
    }
    n = stsrv_from_program(c->stsrv, buf, len);
    c->bytes_out += n;
    /* taken: sent now or by the next call that finds it waiting */
    if (offer_send(c) < 0)
        return -1;
    return (ssize_t)n;
}

/* --- starttls = ftp: the data connections -------------------------------- */

/* A data connection was asked for and not found (why), or (on = 0) the
 * transfer is over: connections to the control server on ports no rule
 * names are refused meanwhile.  Lock held. */
static void
ftp_blind(struct conn *c, int on, const char *why)
{
    unsigned char ip[16];
    char addr[80];

    if (!ftpdata_ip16((struct sockaddr *)&c->peer, ip) ||
        c->ftp->blind == on)
        return;
    c->ftp->blind = on;
    ftpdata_blind(ip, on, util_now_ms() +
                          (int64_t)c->rule->handshake_timeout * 1000 + 60000);
    if (on)
        log_error("fd %d: ftp data connection not found (%s): connections "
                  "to %s on ports no rule names are refused until the "
                  "transfer ends", c->fd, why,
                  util_ip_str((struct sockaddr *)&c->peer, addr,
                              sizeof(addr)));
}

/* A data connection will be made as line says: expect it.  Lock held.
 * 0, or -1 when it could not be recorded. */
static int
ftp_expect(struct conn *c, int active, const unsigned char ip[16],
           int has_ip, unsigned port)
{
    struct ftpdata_expect e;
    char addr[80];

    memset(&e, 0, sizeof(e));
    e.active = active;
    memcpy(e.ip, ip, 16);
    e.has_ip = has_ip;
    e.port = port;
    if (!ftpdata_ip16((struct sockaddr *)&c->peer, e.peer_ip))
        return -1;
    if (!active && has_ip && memcmp(ip, e.peer_ip, 16) != 0)
        log_warn("fd %d: the ftp server named another address than its "
                 "own in its passive answer; the data connection is "
                 "expected at %s (the other address is refused unless a "
                 "rule matches it)", c->fd,
                 util_addr_str((struct sockaddr *)&c->peer, addr,
                               sizeof(addr)));
    e.rule = c->rule;
    util_strlcpy(e.verify_name, c->verify_name, sizeof(e.verify_name));
    util_strlcpy(e.sni, c->sni, sizeof(e.sni));
    util_strlcpy(e.session_key, c->session_key, sizeof(e.session_key));
    e.expires_ms = util_now_ms() + (int64_t)c->rule->handshake_timeout * 1000 +
                   60000;
    if (ftpdata_expect(&e) < 0) {
        log_error("fd %d: ftp data connection (%s) on port %u not "
                  "recorded: too many expected at once", c->fd,
                  active ? "active" : "passive", port);
        return -1;
    }
    log_flow("fd %d: ftp data connection expected (%s) on port %u of %s",
             c->fd, active ? "active" : "passive", port,
             has_ip ? "the address named" : util_addr_str(
                 (struct sockaddr *)&c->peer, addr, sizeof(addr)));
    return 0;
}

/* The verb of a control line is v (4 letters, then the end or a space). */
static int
ftp_verb(const char *line, const char *v)
{
    return strncasecmp(line, v, 4) == 0 && (line[4] == '\0' || line[4] == ' ');
}

static void
ftp_server_line(void *arg, const char *line)
{
    struct conn *c = arg;
    unsigned char ip[16];
    unsigned port;
    int has_ip;

    if (ftpdata_parse_reply(line, ip, &has_ip, &port)) {
        c->ftp->asked = 0;
        if (ftp_expect(c, 0, ip, has_ip, port) < 0)
            ftp_blind(c, 1, "too many expected at once");
        return;
    }
    if (!(line[0] >= '1' && line[0] <= '5' && line[1] >= '0' &&
          line[1] <= '9' && line[2] >= '0' && line[2] <= '9' &&
          (line[3] == ' ' || line[3] == '\0')))
        return;                 /* not a final reply line */
    if (c->ftp->asked && (strncmp(line, "227", 3) == 0 ||
                          strncmp(line, "229", 3) == 0)) {
        c->ftp->asked = 0;
        ftp_blind(c, 1, "a passive answer not understood");
        return;
    }
    c->ftp->asked = 0;
    /* the transfer is over (or refused) */
    if (c->ftp->blind && (strncmp(line, "226", 3) == 0 ||
                          strncmp(line, "250", 3) == 0 ||
                          line[0] == '4' || line[0] == '5'))
        ftp_blind(c, 0, NULL);
}

static void
ftp_program_line(void *arg, const char *line)
{
    struct conn *c = arg;
    unsigned char ip[16];
    unsigned port;
    int has_ip;

    if (ftpdata_parse_command(line, ip, &has_ip, &port)) {
        if (ftp_expect(c, 1, ip, has_ip, port) < 0)
            ftp_blind(c, 1, "too many expected at once");
    } else if (ftp_verb(line, "PASV") || ftp_verb(line, "EPSV")) {
        c->ftp->asked = 1;
    } else if (ftp_verb(line, "PORT") || ftp_verb(line, "EPRT")) {
        ftp_blind(c, 1, "an active-mode command not understood");
    }
}

/* Plaintext on an ftp control connection after its dialogue.  Lock held. */
static void
ftp_watch(struct conn *c, const void *buf, size_t n, int from_server)
{
    if (c->ftp == NULL || n == 0)
        return;
    if (from_server)
        ftpdata_feed(&c->ftp->from_server, buf, n, ftp_server_line, c);
    else
        ftpdata_feed(&c->ftp->from_program, buf, n, ftp_program_line, c);
}

/* --- advancing ------------------------------------------------------------ */

/* TCP is up: what comes next depends on the rule.  Lock held. */
static void
tcp_up(struct conn *c)
{
    /* An ftp data connection is up when TCP is: the server starts its
     * TLS only once the program has asked for the transfer on the control
     * connection, which it does when connect() has returned. */
    if (c->rule->action == POLICY_AUTO ||
        c->rule->action == POLICY_ENFORCE || c->ftp_data)
        c->state = CONN_AUTO_WAIT;
    else if (c->rule->starttls != NULL && c->role == POLICY_ROLE_CLIENT &&
             !c->ftp_data)
        (void)begin_dialogue(c);
    else
        (void)start_tls(c);
}

/* Is the TCP connect done?  Lock held.  POLLOUT while it is not. */
static short
tcp_step(struct conn *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof(err);

    if (tlsshim_sys.poll(&p, 1, 0) == 0)
        return POLLOUT;
    if (tlsshim_sys.getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        c->outcome = "connect_failed";
        fail(c, err, err, "TCP connect failed: %s", strerror(err));
        return 0;
    }
    tcp_up(c);
    return 0;
}

/* Advance a connection on its way to OPEN as far as it goes without
 * blocking.  Lock held.  Returns the events it waits for (0: nothing to
 * wait for). */
static short
advance(struct conn *c)
{
    for (;;) {
        enum conn_state before = c->state;
        short ev;

        switch (c->state) {
        case CONN_ACCEPTED:
            ev = 0;
            (void)start_tls(c);
            break;
        case CONN_CONNECTING:
            ev = tcp_step(c);
            break;
        case CONN_STARTTLS:
            ev = dialogue_step(c);
            break;
        case CONN_HANDSHAKING:
            ev = handshake_step(c);
            break;
        case CONN_VERIFYING:
            ev = verify_step(c);
            break;
        default:
            return 0;
        }
        if (c->state == before)
            return ev;
    }
}

void
conn_set_dest(struct conn *c, const struct sockaddr *dest, socklen_t len)
{
    pthread_mutex_lock(&c->lock);
    if (len > sizeof(c->dest))
        len = sizeof(c->dest);
    memcpy(&c->dest, dest, len);
    c->dest_len = len;
    pthread_mutex_unlock(&c->lock);
}

int
conn_connect_start(struct conn *c)
{
    int rv;
    const struct sockaddr *to = c->dest_len > 0 ? (struct sockaddr *)&c->dest
                                                : (struct sockaddr *)&c->peer;

    pthread_mutex_lock(&c->lock);
    if (tlsshim_sys.connect(c->fd, to,
                            c->dest_len > 0 ? c->dest_len : c->peer_len) == 0) {
        tcp_up(c);
        (void)advance(c);
        rv = 0;
    } else if (errno == EINPROGRESS) {
        rv = -EINPROGRESS;
    } else {
        rv = -errno;
        c->state = CONN_FAILED;
        c->fail_errno = c->io_errno = errno;
        snprintf(c->error, sizeof(c->error), "TCP connect failed: %s",
                 strerror(errno));
        c->outcome = "connect_failed";
        report_conn(c, "close");
    }
    pthread_mutex_unlock(&c->lock);
    return rv;
}

/* Wait for events on fd until deadline_ms (-1: none).  0 ready or
 * timeout (the caller re-checks), -EINTR. */
static int
wait_fd(int fd, short events, int64_t deadline_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    int timeout = -1;

    if (deadline_ms >= 0) {
        int64_t left = deadline_ms - util_now_ms();
        timeout = left < 0 ? 0 : (left > 1 << 30 ? 1 << 30 : (int)left);
    }
    if (tlsshim_sys.poll(&p, 1, timeout) < 0 && errno == EINTR)
        return -EINTR;
    return 0;
}

/* The deadline a socket timeout option gives a blocking call, or -1. */
static int64_t
sock_deadline(int fd, int opt)
{
    struct timeval tv;
    socklen_t len = sizeof(tv);

    if (tlsshim_sys.getsockopt(fd, SOL_SOCKET, opt, &tv, &len) < 0 ||
        (tv.tv_sec == 0 && tv.tv_usec == 0))
        return -1;
    return util_now_ms() + (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* --- starttls_required = no: plaintext after all -------------------------- */

/* Hand the fd back to the program once it has read the server's greeting
 * (at once for client-first protocols).  Lock not held. */
static void
plain_settle(struct conn *c)
{
    int release;

    pthread_mutex_lock(&c->lock);
    release = c->state == CONN_PASSTHROUGH && c->stls_plain &&
              !c->stls_released &&
              (c->stls == NULL || c->stls->show_off >= c->stls->show_len) &&
              (c->stsrv == NULL || c->stsrv->pass == 0);
    if (release)
        c->stls_released = 1;
    pthread_mutex_unlock(&c->lock);
    if (release)
        conn_release_all(c);
}

/* Copy what the program is shown first (the greeting) into buf.  Lock
 * held.  Returns the bytes copied. */
static size_t
take_shown(struct conn *c, void *buf, size_t len, int peek)
{
    struct starttls *st = c->stls;
    size_t n;

    /* server: the client's bytes read before the session went plaintext */
    if (c->stsrv != NULL)
        return offer_take(c, buf, len, peek);
    if (st == NULL || st->show_off >= st->show_len)
        return 0;
    n = st->show_len - st->show_off;
    if (n > len)
        n = len;
    memcpy(buf, st->show + st->show_off, n);
    if (!peek) {
        st->show_off += n;
        c->bytes_in += n;
        if (st->show_off >= st->show_len && c->state == CONN_OPEN) {
            free(c->stls);
            c->stls = NULL;
        }
    }
    return n;
}

/* A read in plaintext after a refused STARTTLS: the greeting, then the
 * socket, which is the program's own again (blocking mode restored). */
static ssize_t
plain_read(struct conn *c, void *buf, size_t len, int flags)
{
    size_t n;
    int fd;

    pthread_mutex_lock(&c->lock);
    n = take_shown(c, buf, len, flags & MSG_PEEK);
    fd = c->fd;
    pthread_mutex_unlock(&c->lock);
    plain_settle(c);
    if (n > 0 || len == 0)
        return (ssize_t)n;
    ssize_t r = tlsshim_sys.recv(fd, buf, len, flags);
    return r < 0 ? -errno : r;
}

static ssize_t
plain_write(struct conn *c, const void *buf, size_t len, int flags)
{
    int64_t deadline = -2;
    int fd, nonblock, released;

    for (;;) {
        pthread_mutex_lock(&c->lock);
        fd = c->fd;
        nonblock = c->user_nonblock || (flags & MSG_DONTWAIT);
        released = c->stls_released;
        pthread_mutex_unlock(&c->lock);
        /* SIGPIPE is the caller's to raise */
        ssize_t n = tlsshim_sys.send(fd, buf, len, flags | MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        /* before the fd is handed back it is still non-blocking */
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || nonblock ||
            released)
            return -errno;
        if (deadline == -2)
            deadline = sock_deadline(fd, SO_SNDTIMEO);
        if (deadline >= 0 && util_now_ms() >= deadline)
            return -EAGAIN;
        if (wait_fd(fd, POLLOUT, deadline) == -EINTR &&
            (deadline >= 0 || !conn_signal_restarts()))
            return -EINTR;
    }
}

int
conn_connect_finish(struct conn *c)
{
    int64_t tcp_deadline = -2;

    for (;;) {
        pthread_mutex_lock(&c->lock);
        short ev = advance(c);
        enum conn_state st = c->state;
        int fd = st == CONN_VERIFYING ? c->aux_fd : c->fd;
        int64_t dl = st == CONN_VERIFYING ? c->aux_deadline_ms
                                          : c->handshake_deadline_ms;
        int ferr = c->fail_errno;
        if (st == CONN_FAILED)
            c->so_error_pending = 0;
        pthread_mutex_unlock(&c->lock);

        if (st == CONN_FAILED)
            return -ferr;
        if (st == CONN_OPEN || st == CONN_AUTO_WAIT || st == CONN_LOGIN_WAIT)
            return 0;
        if (st == CONN_PASSTHROUGH) {
            /* starttls_required = no, and no STARTTLS: plaintext */
            plain_settle(c);
            return 0;
        }
        if (st == CONN_CONNECTING) {
            if (tcp_deadline == -2)
                tcp_deadline = sock_deadline(fd, SO_SNDTIMEO);
            if (tcp_deadline >= 0 && util_now_ms() >= tcp_deadline)
                return -EINPROGRESS;
            dl = tcp_deadline;
        }
        /* restarted after an SA_RESTART handler, as the kernel's connect
         * is, unless SO_SNDTIMEO bounds it (signal(7)) */
        if (wait_fd(fd, ev ? ev : POLLIN, dl) == -EINTR &&
            (tcp_deadline >= 0 || !conn_signal_restarts()))
            return -EINTR;
    }
}

/* Give OpenSSL the pending record again.  Lock held.  Returns the events
 * it waits for, 0 when nothing is pending, -1 when the connection failed. */
static int
flush_pending(struct conn *c)
{
    while (c->wpend_len > 0) {
        size_t n = 0;
        ERR_clear_error();
        errno = 0;
        if (SSL_write_ex(c->ssl, c->wpend, c->wpend_len, &n)) {
            memmove(c->wpend, c->wpend + n, c->wpend_len - n);
            c->wpend_len -= n;
            continue;
        }
        int e = SSL_get_error(c->ssl, 0);
        if (e == SSL_ERROR_WANT_WRITE)
            return POLLOUT;
        if (e == SSL_ERROR_WANT_READ)
            return POLLIN;
        fail(c, ECONNRESET, errno == EPIPE ? EPIPE : ECONNRESET,
             "write failed: %s", errno ? strerror(errno) : "TLS error");
        return -1;
    }
    return 0;
}

/* Get the connection to OPEN if it can be without blocking.  Lock held.
 * Returns the events to wait for; 0 with state OPEN/FAILED otherwise. */
static short
prepare_io(struct conn *c)
{
    if (c->state == CONN_AUTO_WAIT) {
        /* A read (or a write that is not TLS) before anything else: the
         * handshake runs first (SPEC section 3, action = auto). */
        if (start_tls(c) < 0)
            return 0;
    }
    if (in_progress(c->state))
        return advance(c);
    return 0;
}

/*
 * The program's call cannot go on until the socket is ready for ev.  Lock
 * held on entry, released on return.  A non-blocking caller gets -EAGAIN;
 * a blocking one waits (until the socket timeout opt, kept in *deadline,
 * and the handshake deadline) and gets 0 to try again, or -EAGAIN when the
 * socket timeout passed, -EINTR when a signal came.
 */
static int
block_for(struct conn *c, short ev, int nonblock, int opt, int64_t *deadline)
{
    int fd = c->fd;
    int64_t dl, hs_dl = c->state == CONN_HANDSHAKING ||
                                c->state == CONN_STARTTLS
                            ? c->handshake_deadline_ms
                            : -1;

    if (c->state == CONN_VERIFYING) {
        fd = c->aux_fd;
        hs_dl = c->aux_deadline_ms;
    }

    pthread_mutex_unlock(&c->lock);
    if (ev == 0)
        return 0;
    if (nonblock)
        return -EAGAIN;
    if (*deadline == -2)
        *deadline = sock_deadline(fd, opt);
    if (*deadline >= 0 && util_now_ms() >= *deadline)
        return -EAGAIN;
    dl = *deadline;
    if (hs_dl >= 0 && (dl < 0 || hs_dl < dl))
        dl = hs_dl;
    int w = wait_fd(fd, ev, dl);
    /* The kernel restarts socket reads and writes after an SA_RESTART
     * handler, unless the socket has a timeout (signal(7)). */
    if (w == -EINTR && *deadline < 0 && conn_signal_restarts())
        return 0;
    return w;
}

ssize_t
conn_read(struct conn *c, void *buf, size_t len, int flags)
{
    int nonblock, peek = flags & MSG_PEEK;
    size_t got = 0;
    int64_t deadline = -2;

    if (c->state == CONN_PASSTHROUGH && c->stls_plain)
        return plain_read(c, buf, len, flags);
    if (c->state == CONN_AUDIT || c->state == CONN_PASSTHROUGH) {
        /* note what arrives first, then read as the program asked */
        if (c->state == CONN_AUDIT)
            conn_audit_peek(c);
        ssize_t n = tlsshim_sys.recv(c->fd, buf, len, flags);
        return n < 0 ? -errno : n;
    }

    for (;;) {
        short ev;
        pthread_mutex_lock(&c->lock);
        if (owner_claim(c->owner) < 0) {
            pthread_mutex_unlock(&c->lock);
            return -EIO;
        }
        nonblock = c->user_nonblock || (flags & MSG_DONTWAIT);
        ev = prepare_io(c);
        if (c->state == CONN_OFFERING) {
            /* server starttls: the plaintext dialogue */
            ev = offer_step(c);
            if (c->state == CONN_OFFERING) {
                if (c->stsrv->pass > 0 || c->eof || len == 0) {
                    size_t n = offer_take(c, buf, len, peek);
                    pthread_mutex_unlock(&c->lock);
                    return (ssize_t)n;
                }
            } else if (in_progress(c->state)) {
                ev = advance(c);
            }
        }
        if (c->state == CONN_LOGIN_WAIT) {
            /* mysql: the server's greeting, then nothing until the login */
            size_t n = take_shown(c, buf, len, peek);
            if (n > 0 || len == 0) {
                pthread_mutex_unlock(&c->lock);
                return (ssize_t)n;
            }
            ev = login_wait_check(c);
        }
        if (c->state == CONN_FAILED) {
            int e = c->io_errno;
            pthread_mutex_unlock(&c->lock);
            return got > 0 ? (ssize_t)got : -e;
        }
        if (c->state == CONN_PASSTHROUGH && c->stls_plain) {
            pthread_mutex_unlock(&c->lock);
            return plain_read(c, buf, len, flags);
        }
        if (c->state == CONN_OPEN) {
            int fl = flush_pending(c);
            if (fl < 0) {
                pthread_mutex_unlock(&c->lock);
                return got > 0 ? (ssize_t)got : -c->io_errno;
            }
            /* starttls: the greeting made here comes first */
            if (c->stls != NULL && len > got) {
                size_t n = take_shown(c, (char *)buf + got, len - got, peek);
                if (peek && n > 0) {
                    pthread_mutex_unlock(&c->lock);
                    return (ssize_t)n;
                }
                got += n;
                if (n > 0 && (!(flags & MSG_WAITALL) || got == len)) {
                    pthread_mutex_unlock(&c->lock);
                    return (ssize_t)got;
                }
            }
            if (c->eof || len == 0) {
                pthread_mutex_unlock(&c->lock);
                return (ssize_t)got;
            }
            size_t n = 0;
            int ok;
            ERR_clear_error();
            errno = 0;
            ok = peek ? SSL_peek_ex(c->ssl, buf, len, &n)
                      : SSL_read_ex(c->ssl, (char *)buf + got, len - got, &n);
            if (ok && c->mysql_seq.active) {
                /* mysql's connection phase: the ids the program expects
                 * (a peek leaves the translation where it was) */
                struct starttls_seq peeked = c->mysql_seq;
                starttls_seq_down(peek ? &peeked : &c->mysql_seq,
                                  (unsigned char *)buf + (peek ? 0 : got), n);
            }
            if (ok) {
                if (!peek) {
                    ftp_watch(c, (char *)buf + got, n, 1);
                    c->bytes_in += n;
                    got += n;
                } else {
                    got = n;
                }
                if (peek || !(flags & MSG_WAITALL) || got == len) {
                    pthread_mutex_unlock(&c->lock);
                    return (ssize_t)got;
                }
                pthread_mutex_unlock(&c->lock);
                continue;
            }
            int e = SSL_get_error(c->ssl, 0);
            if (e == SSL_ERROR_ZERO_RETURN) {
                c->eof = 1;
                pthread_mutex_unlock(&c->lock);
                return (ssize_t)got;
            } else if (e == SSL_ERROR_WANT_READ) {
                ev = POLLIN | (fl > 0 ? fl : 0);
            } else if (e == SSL_ERROR_WANT_WRITE) {
                ev = POLLOUT;
            } else {
                unsigned long le = ERR_peek_last_error();
                const char *r = le ? ERR_reason_error_string(le) : NULL;
                char noted[sizeof(c->error)];
                /* a reason a peek met earlier (note_peek_error) */
                snprintf(noted, sizeof(noted), "%s", c->error);
                fail(c, ECONNRESET, ECONNRESET, "read failed: %s",
                     r != NULL ? r
                     : noted[0] != '\0'
                         ? noted
                         : (errno ? strerror(errno)
                                  : "connection closed without "
                                    "close_notify"));
                ERR_clear_error();
                pthread_mutex_unlock(&c->lock);
                return got > 0 ? (ssize_t)got : -ECONNRESET;
            }
        }
        int w = block_for(c, ev, nonblock, SO_RCVTIMEO, &deadline);
        if (w < 0)
            return got > 0 ? (ssize_t)got : w;
    }
}

ssize_t
conn_write(struct conn *c, const void *buf, size_t len, int flags)
{
    const unsigned char *p = buf;
    size_t done = 0, login = 0;
    int nonblock;
    int64_t deadline = -2;

    if (c->state == CONN_PASSTHROUGH && c->stls_plain)
        return plain_write(c, buf, len, flags);
    if (c->state == CONN_AUDIT || c->state == CONN_PASSTHROUGH) {
        /* the program's own socket (SIGPIPE is the caller's to raise) */
        if (c->state == CONN_AUDIT)
            conn_audit_bytes(c, buf, len, 1);
        ssize_t n = tlsshim_sys.send(c->fd, buf, len, flags | MSG_NOSIGNAL);
        return n < 0 ? -errno : n;
    }

    for (;;) {
        short ev;
        pthread_mutex_lock(&c->lock);
        if (owner_claim(c->owner) < 0) {
            pthread_mutex_unlock(&c->lock);
            return -EIO;
        }
        nonblock = c->user_nonblock || (flags & MSG_DONTWAIT);
        ev = prepare_io(c);
        if (c->state == CONN_OFFERING) {
            /* server starttls: plaintext, capability lists rewritten */
            ssize_t n = c->shut_wr ? -2 : offer_write(c, p + done,
                                                      len - done, &ev);
            if (n == -2) {
                pthread_mutex_unlock(&c->lock);
                return done > 0 ? (ssize_t)done : -EPIPE;
            }
            if (n > 0) {
                done += (size_t)n;
                if (done == len || nonblock) {
                    pthread_mutex_unlock(&c->lock);
                    return (ssize_t)done;
                }
                pthread_mutex_unlock(&c->lock);
                continue;
            }
        }
        if (c->state == CONN_LOGIN_WAIT) {
            /* mysql: the program's login, which the handshake waited for */
            size_t n = login_take(c, p + done, len - done, &ev);
            done += n;
            login += n;
            if (c->state == CONN_LOGIN_WAIT) {
                /* the login so far (all of the bytes: the rest of it
                 * comes in later writes) */
                pthread_mutex_unlock(&c->lock);
                return (ssize_t)done;
            }
        }
        if (c->state == CONN_FAILED) {
            int e = c->io_errno;
            pthread_mutex_unlock(&c->lock);
            /* a login the handshake failed was never sent */
            return done > login ? (ssize_t)done : -e;
        }
        if (c->state == CONN_PASSTHROUGH && c->stls_plain) {
            pthread_mutex_unlock(&c->lock);
            return plain_write(c, buf, len, flags);
        }
        if (c->state == CONN_OPEN) {
            if (c->shut_wr) {
                pthread_mutex_unlock(&c->lock);
                return done > 0 ? (ssize_t)done : -EPIPE;
            }
            int fl = flush_pending(c);
            if (fl < 0) {
                pthread_mutex_unlock(&c->lock);
                return done > 0 ? (ssize_t)done : -c->io_errno;
            }
            ev = (short)fl;
            while (fl == 0 && done < len) {
                size_t chunk = len - done < CHUNK ? len - done : CHUNK;
                size_t n = 0;
                const unsigned char *src = p + done;
                unsigned char relabelled[512];
                int seq = c->mysql_seq.active;
                if (seq) {
                    /* mysql's connection phase: the ids the server
                     * expects, from a copy of the translation that is
                     * advanced by what OpenSSL takes */
                    struct starttls_seq ahead = c->mysql_seq;
                    if (chunk > sizeof(relabelled))
                        chunk = sizeof(relabelled);
                    starttls_seq_up(&ahead, relabelled, src, chunk);
                    src = relabelled;
                }
                ERR_clear_error();
                errno = 0;
                if (SSL_write_ex(c->ssl, src, chunk, &n)) {
                    if (seq)
                        starttls_seq_up(&c->mysql_seq, NULL, p + done, n);
                    ftp_watch(c, p + done, n, 0);
                    done += n;
                    c->bytes_out += n;
                    continue;
                }
                int e = SSL_get_error(c->ssl, 0);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                    /* OpenSSL holds (part of) this record and must be given
                     * the same bytes again: keep them and count them as
                     * taken, as TCP would. */
                    unsigned char *copy = malloc(chunk);
                    if (copy == NULL) {
                        ev = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
                        fl = ev;
                        break;
                    }
                    memcpy(copy, src, chunk);
                    if (seq)
                        starttls_seq_up(&c->mysql_seq, NULL, p + done, chunk);
                    free(c->wpend);
                    c->wpend = copy;
                    c->wpend_len = chunk;
                    ftp_watch(c, p + done, chunk, 0);
                    done += chunk;
                    c->bytes_out += chunk;
                    fl = ev = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
                    break;
                }
                int se = errno;
                fail(c, ECONNRESET, se == EPIPE ? EPIPE : ECONNRESET,
                     "write failed: %s", se ? strerror(se) : "TLS error");
                pthread_mutex_unlock(&c->lock);
                return done > 0 ? (ssize_t)done : -c->io_errno;
            }
            if (done == len && (nonblock || c->wpend_len == 0)) {
                pthread_mutex_unlock(&c->lock);
                return (ssize_t)done;
            }
            if (nonblock && done > 0) {
                pthread_mutex_unlock(&c->lock);
                return (ssize_t)done;
            }
        }
        int w = block_for(c, ev, nonblock, SO_SNDTIMEO, &deadline);
        if (w < 0)
            return done > 0 ? (ssize_t)done : w;
    }
}

int
conn_auto_passthrough(struct conn *c, const void *buf, size_t len)
{
    int pass = 0;

    pthread_mutex_lock(&c->lock);
    if (c->state == CONN_CONNECTING)
        (void)advance(c);
    if (c->state == CONN_AUTO_WAIT && sniff_tls_header(buf, len)) {
        c->state = CONN_PASSTHROUGH;
        pass = 1;
        report_conn(c, "close");
        log_flow("fd %d: the program speaks TLS itself; passing through",
                 c->fd);
    }
    pthread_mutex_unlock(&c->lock);
    if (pass)
        conn_release_all(c);
    return pass;
}

int
conn_first_move_pending(struct conn *c)
{
    pthread_mutex_lock(&c->lock);
    if (c->state == CONN_CONNECTING)
        (void)advance(c);
    int pending = c->role == POLICY_ROLE_CLIENT &&
                  c->state == CONN_AUTO_WAIT;
    pthread_mutex_unlock(&c->lock);
    return pending;
}

/* --- enforce: the program's own TLS, checked by the rule ---------------- */

void
conn_enforce_hello(struct conn *c, const char *sni)
{
    char ip[64];

    pthread_mutex_lock(&c->lock);
    util_strlcpy(c->sni, sni, sizeof(c->sni));
    util_ip_str((struct sockaddr *)&c->peer, ip, sizeof(ip));
    /* an explicit verifycn_name is the user's word; otherwise the name
     * the program itself asked the server for (SPEC section 3) */
    if (c->rule->verifycn_name != NULL)
        util_strlcpy(c->verify_name, c->rule->verifycn_name,
                     sizeof(c->verify_name));
    else if (sni[0] != '\0')
        util_strlcpy(c->verify_name, sni, sizeof(c->verify_name));
    else if (c->matched_name[0] != '\0')
        util_strlcpy(c->verify_name, c->matched_name, sizeof(c->verify_name));
    else
        util_strlcpy(c->verify_name, ip, sizeof(c->verify_name));
    c->verify_name_is_ip = is_ip_literal(c->verify_name);
    c->started_ms = util_now_ms();
    pthread_mutex_unlock(&c->lock);
}

/* Put c on the watch list.  watch_lock held. */
static void
watch_link(struct conn *c)
{
    c->watch_prev = NULL;
    c->watch_next = watch_head;
    if (watch_head != NULL)
        watch_head->watch_prev = c;
    watch_head = c;
    c->enforce_watched = 1;
    atomic_fetch_add(&watch_count, 1);
}

/* Take c off the watch list.  watch_lock held. */
static void
watch_unlink(struct conn *c)
{
    if (!c->enforce_watched)
        return;
    if (c->watch_prev != NULL)
        c->watch_prev->watch_next = c->watch_next;
    else
        watch_head = c->watch_next;
    if (c->watch_next != NULL)
        c->watch_next->watch_prev = c->watch_prev;
    c->watch_prev = c->watch_next = NULL;
    c->enforce_watched = 0;
    atomic_fetch_sub(&watch_count, 1);
}

static void
enforce_unwatch(struct conn *c)
{
    pthread_mutex_lock(&watch_lock);
    watch_unlink(c);
    pthread_mutex_unlock(&watch_lock);
}

void
conn_enforce_passthrough(struct conn *c)
{
    pthread_mutex_lock(&watch_lock);
    pthread_mutex_lock(&c->lock);
    c->state = CONN_PASSTHROUGH;
    c->enforce_bound = 1;
    /* the fd table lets go of the socket below: the close hooks find c
     * here instead, to forget its number */
    watch_link(c);
    log_flow("fd %d: the program's own TLS, bound to tlsshim's hooks; "
             "verified by rule %s", c->fd, c->rule->name);
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&watch_lock);
    conn_release_all(c);
}

void
conn_enforce_release(struct conn *c)
{
    pthread_mutex_lock(&watch_lock);
    pthread_mutex_lock(&c->lock);
    if (c->enforce_bound) {
        watch_unlink(c);
        c->fd = -1;   /* the program's now, maybe already another socket */
    }
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&watch_lock);
    conn_put(c);
}

int
conn_enforce_watching(void)
{
    return atomic_load_explicit(&watch_count, memory_order_acquire) != 0;
}

void
conn_enforce_forget_fds(unsigned lo, unsigned hi)
{
    struct conn *c, *next;

    if (atomic_load_explicit(&watch_count, memory_order_acquire) == 0)
        return;
    pthread_mutex_lock(&watch_lock);
    for (c = watch_head; c != NULL; c = next) {
        next = c->watch_next;
        pthread_mutex_lock(&c->lock);
        if (c->fd >= 0 && (unsigned)c->fd >= lo && (unsigned)c->fd <= hi) {
            log_flow("fd %d: closed by the program; its enforce binding "
                     "(rule %s) no longer touches the number", c->fd,
                     c->rule->name);
            c->fd = -1;
            watch_unlink(c);
        }
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&watch_lock);
}

void
conn_enforce_fail(struct conn *c, const char *outcome, const char *fmt, ...)
{
    char why[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->lock);
    if (c->state != CONN_FAILED && !c->was_open) {
        c->outcome = outcome;
        if (strcmp(outcome, "verify_failed") == 0)
            util_strlcpy(c->verify_error, why, sizeof(c->verify_error));
        fail(c, ECONNREFUSED, ECONNRESET, "%s", why);
    } else if (c->state != CONN_FAILED && c->enforce_bound) {
        /* after the handshake (a renegotiation): the report has the
         * connection's line already; log, and cut the socket if it is
         * still the program's */
        char desc[448];
        c->state = CONN_FAILED;
        log_error("%s rule=%s: %s", peer_desc(c, desc, sizeof(desc)),
                  c->rule->name, why);
        if (c->fd >= 0)
            (void)tlsshim_sys.shutdown(c->fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&c->lock);
}

void
conn_enforce_established(struct conn *c, const char *version,
                         const char *cipher, int resumed, X509 *peer)
{
    char desc[448];

    pthread_mutex_lock(&c->lock);
    if (c->state == CONN_FAILED || c->was_open) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    c->state = CONN_OPEN;
    c->was_open = 1;
    c->resumed = resumed;
    c->handshake_ms = util_now_ms() - c->started_ms;
    util_strlcpy(c->tls_version, version != NULL ? version : "",
                 sizeof(c->tls_version));
    util_strlcpy(c->tls_cipher, cipher != NULL ? cipher : "",
                 sizeof(c->tls_cipher));
    if (peer != NULL && X509_up_ref(peer))
        c->peer_cert = peer;
    log_info("%s rule=%s action=enforce tls=%s cipher=%s sni=%s verify=%s "
             "verified=%s resumed=%s ocsp=%s",
             peer_desc(c, desc, sizeof(desc)), c->rule->name,
             c->tls_version[0] ? c->tls_version : "-",
             c->tls_cipher[0] ? c->tls_cipher : "-",
             c->sni[0] != '\0' ? c->sni : "-",
             c->fp_accepted ? "pinned"
             : c->rule->verify_mode == POLICY_VERIFY_NONE &&
                     c->rule->nfingerprints == 0
                 ? "none"
                 : "ok",
             c->verify_name, resumed ? "yes" : "no",
             c->ocsp != NULL ? c->ocsp : "none");
    /* the socket is the program's now: this is the connection's line */
    if (owner_mine(c->owner))
        report_conn(c, "close");
    pthread_mutex_unlock(&c->lock);
}

int
conn_enforce_unclaimed(struct conn *c)
{
    pthread_mutex_lock(&c->lock);
    int yes = c->role == POLICY_ROLE_CLIENT &&
              c->rule != NULL && c->rule->action == POLICY_ENFORCE &&
              (c->state == CONN_CONNECTING || c->state == CONN_AUTO_WAIT);
    pthread_mutex_unlock(&c->lock);
    return yes;
}

void
conn_enforce_note(struct conn *c, int level, const char *fmt, ...)
{
    char what[512], desc[448];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->lock);
    if (level == 0)
        log_warn("%s rule=%s: %s", peer_desc(c, desc, sizeof(desc)),
                 c->rule->name, what);
    else if (level == 1)
        log_info("%s rule=%s: %s", peer_desc(c, desc, sizeof(desc)),
                 c->rule->name, what);
    else
        log_flow("%s rule=%s: %s", peer_desc(c, desc, sizeof(desc)),
                 c->rule->name, what);
    pthread_mutex_unlock(&c->lock);
}

void
conn_hold(struct conn *c)
{
    atomic_fetch_add(&c->users, 1);
}

int
conn_pending(struct conn *c)
{
    int n = 0;

    pthread_mutex_lock(&c->lock);
    if (c->stls != NULL && c->stls->show_off < c->stls->show_len &&
        (c->state == CONN_OPEN || c->state == CONN_PASSTHROUGH ||
         c->state == CONN_LOGIN_WAIT))
        n = (int)(c->stls->show_len - c->stls->show_off);
    if (c->stsrv != NULL)
        n = (int)c->stsrv->pass;
    if (n == 0 && c->state == CONN_OPEN && c->ssl != NULL) {
        n = SSL_pending(c->ssl);
        if (n == 0 && SSL_has_pending(c->ssl)) {
            char b;
            size_t got = 0;
            ERR_clear_error();
            if (SSL_peek_ex(c->ssl, &b, 1, &got))
                n = SSL_pending(c->ssl);
            else
                note_peek_error(c);
            ERR_clear_error();
        }
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* --- readiness ------------------------------------------------------------- */

short
conn_poll_check(struct conn *c, short want, short kernel_revents,
                short *kernel, int64_t *deadline_ms)
{
    short ready = 0, need = 0;
    int settle = 0;

    *kernel = 0;
    *deadline_ms = -1;
    pthread_mutex_lock(&c->lock);
    if (owner_claim(c->owner) < 0) {
        /* another process owns it: the next I/O reports EIO */
        pthread_mutex_unlock(&c->lock);
        return (short)(POLLERR | (want & (POLLIN | POLLOUT)));
    }
    if (c->state == CONN_AUTO_WAIT && (want & POLLIN) && !(want & POLLOUT)) {
        /* waiting for input only before any write: handshake first */
        (void)start_tls(c);
    }
    if (c->state == CONN_OFFERING) {
        /* server starttls: read the client only when the program would */
        short ev = (want & POLLIN) ? offer_step(c) : offer_send(c);
        if (c->state == CONN_OFFERING && ev > 0)
            need |= ev;
    }
    if (in_progress(c->state))
        need |= advance(c);

    switch (c->state) {
    case CONN_CONNECTING:
        need |= POLLOUT;
        break;
    case CONN_STARTTLS:
    case CONN_HANDSHAKING:
    case CONN_ACCEPTED:
        *deadline_ms = c->handshake_deadline_ms;
        break;
    case CONN_VERIFYING:
        /* the responder's socket is ours, not in the program's set: look
         * again soon (and at the query's deadline) */
        need = 0;
        *deadline_ms = util_now_ms() + VERIFY_RECHECK_MS;
        if (c->aux_deadline_ms < *deadline_ms)
            *deadline_ms = c->aux_deadline_ms;
        break;
    case CONN_AUTO_WAIT:
        ready = want & POLLOUT;
        break;
    case CONN_LOGIN_WAIT:
        /* mysql: the program may write its login; readable are the
         * greeting, and whatever else comes (which the read refuses) */
        ready = want & POLLOUT;
        if (c->stls->show_off < c->stls->show_len ||
            (kernel_revents & (POLLIN | POLLHUP | POLLERR)))
            ready |= want & POLLIN;
        break;
    case CONN_FAILED:
        ready = (short)(POLLERR | (want & (POLLIN | POLLOUT)));
        break;
    case CONN_OFFERING: {
        struct stsrv *st = c->stsrv;
        if ((want & POLLIN) && (st->pass > 0 || c->eof))
            ready |= want & POLLIN;
        if ((want & POLLRDHUP) && c->eof)
            ready |= POLLRDHUP;
        if ((want & POLLOUT) && st->out_off >= st->out_len &&
            st->reply_off >= st->reply_len)
            ready |= POLLOUT;
        break;
    }
    case CONN_PASSTHROUGH:
        ready = kernel_revents & want;
        /* starttls_required = no: the server's greeting is readable */
        if (c->stls != NULL && c->stls->show_off < c->stls->show_len)
            ready |= want & POLLIN;
        /* server: the client's bytes read before plaintext for good */
        if (c->stsrv != NULL && c->stsrv->pass > 0)
            ready |= want & POLLIN;
        settle = c->stls_plain && !c->stls_released;
        break;
    case CONN_AUDIT: {
        /* a plain socket: what the kernel says now */
        struct pollfd p = {.fd = c->fd, .events = want};
        if (tlsshim_sys.poll(&p, 1, 0) > 0)
            ready = p.revents;
        break;
    }
    case CONN_OPEN: {
        int fl = flush_pending(c);
        if (fl < 0) {
            ready = (short)(POLLERR | (want & (POLLIN | POLLOUT)));
            break;
        }
        need |= (short)fl;
        if (want & (POLLIN | POLLRDHUP)) {
            if (c->stls != NULL && c->stls->show_off < c->stls->show_len) {
                ready |= want & POLLIN;   /* the greeting */
            } else if (c->eof) {
                ready |= (short)(want & (POLLIN | POLLRDHUP));
            } else if (SSL_pending(c->ssl) > 0) {
                ready |= POLLIN;
            } else if (SSL_has_pending(c->ssl) ||
                       (kernel_revents & (POLLIN | POLLHUP | POLLERR))) {
                /* Let OpenSSL consume what carries no data (tickets, key
                 * updates): readable only if plaintext, EOF or an error
                 * is then pending (SPEC section 5). */
                char b;
                size_t got = 0;
                ERR_clear_error();
                if (SSL_peek_ex(c->ssl, &b, 1, &got)) {
                    ready |= POLLIN;
                } else {
                    int e = SSL_get_error(c->ssl, 0);
                    if (e == SSL_ERROR_WANT_READ) {
                        need |= POLLIN;
                    } else if (e == SSL_ERROR_WANT_WRITE) {
                        need |= POLLOUT;
                    } else if (e == SSL_ERROR_ZERO_RETURN) {
                        c->eof = 1;
                        ready |= (short)(want & (POLLIN | POLLRDHUP));
                    } else {
                        /* the read will report the error */
                        note_peek_error(c);
                        ready |= POLLIN;
                    }
                }
                ERR_clear_error();
            } else {
                need |= POLLIN;
            }
        }
        if (want & POLLOUT) {
            if (c->wpend_len == 0)
                ready |= POLLOUT;
        }
        if (c->eof && (kernel_revents & POLLHUP))
            ready |= POLLHUP;
        break;
    }
    }
    pthread_mutex_unlock(&c->lock);
    if (settle)
        plain_settle(c);
    if (ready == 0)
        *kernel = need ? need : (short)(want & (POLLIN | POLLOUT));
    return ready;
}

int
conn_take_so_error(struct conn *c)
{
    int e = 0;

    pthread_mutex_lock(&c->lock);
    if (in_progress(c->state))
        (void)advance(c);
    if (c->state == CONN_FAILED && c->so_error_pending) {
        e = c->fail_errno;
        c->so_error_pending = 0;
    }
    int settle = c->state == CONN_PASSTHROUGH && c->stls_plain;
    pthread_mutex_unlock(&c->lock);
    if (settle)
        plain_settle(c);
    return e;
}

void
conn_set_nonblock(struct conn *c, int on)
{
    pthread_mutex_lock(&c->lock);
    c->user_nonblock = on;
    pthread_mutex_unlock(&c->lock);
}

int
conn_owns_flags(struct conn *c)
{
    int owns;

    pthread_mutex_lock(&c->lock);
    owns = c->state != CONN_AUDIT;
    pthread_mutex_unlock(&c->lock);
    return owns;
}

int
conn_get_nonblock(struct conn *c)
{
    int on;

    pthread_mutex_lock(&c->lock);
    on = c->user_nonblock;
    pthread_mutex_unlock(&c->lock);
    return on;
}

/* --- closing ----------------------------------------------------------------- */

/*
 * After close_notify, while the peer has not acknowledged all we sent
 * (an upload closed right after its last write): any segment of the
 * peer's that reaches the socket after close(), such as a TLS 1.3 ticket
 * or its own close_notify, makes the kernel answer with a reset, which
 * drops our unsent data and can make the peer drop what it has not read.
 * So half-close, and take in (and discard) what the peer sends until it
 * closes too or the deadline passes.  Nothing waits when everything was
 * acknowledged already.  At the last close only (a program that shuts
 * down its writing half still reads).  Lock held; released while waiting.
 */
static void
linger_unacked(struct conn *c)
{
    int64_t deadline = util_now_ms() + CLOSE_FLUSH_MS;
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    char buf[4096];

    if (c->ssl == NULL || !c->closed_notify || c->state != CONN_OPEN ||
        !owner_mine(c->owner))
        return;
    memset(&ti, 0, sizeof(ti));
    if (tlsshim_sys.getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
        ti.tcpi_unacked == 0)
        return;
    int fd = c->fd;
    (void)tlsshim_sys.shutdown(fd, SHUT_WR);
    pthread_mutex_unlock(&c->lock);
    while (util_now_ms() < deadline) {
        if (wait_fd(fd, POLLIN, deadline) < 0)
            break;
        ssize_t n = tlsshim_sys.recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                       errno != EINTR))
            break;   /* the peer closed (or reset): nothing more to lose */
    }
    pthread_mutex_lock(&c->lock);
}

/* Finish the pending record (bounded) and send close_notify once.  Lock
 * held; it is released while waiting. */
static void
send_close_notify(struct conn *c)
{
    int64_t deadline = util_now_ms() + CLOSE_FLUSH_MS;

    if (c->state != CONN_OPEN || c->closed_notify || c->ssl == NULL)
        return;
    /* A process that has not used the connection since the fork sends
     * nothing: the stream belongs to the owner (SPEC section 5). */
    if (!owner_mine(c->owner)) {
        c->closed_notify = 1;
        return;
    }
    for (;;) {
        int fl = flush_pending(c);
        if (fl <= 0 || util_now_ms() >= deadline)
            break;
        int fd = c->fd;
        pthread_mutex_unlock(&c->lock);
        (void)wait_fd(fd, (short)fl, deadline);
        pthread_mutex_lock(&c->lock);
        if (c->state != CONN_OPEN)
            return;
    }
    if (c->wpend_len > 0) {
        char desc[448];
        log_error("%s rule=%s: %zu bytes not sent before close",
                  peer_desc(c, desc, sizeof(desc)), c->rule->name,
                  c->wpend_len);
    }
    c->closed_notify = 1;
    /* Let OpenSSL take in what carries no data (session tickets) so that
     * the kernel does not answer our close with a reset for unread bytes,
     * which would drop what it has not sent yet.  Plaintext the program
     * never read stays unread, as on TCP. */
    char b;
    size_t got;
    ERR_clear_error();
    if (!SSL_peek_ex(c->ssl, &b, 1, &got))
        note_peek_error(c);
    ERR_clear_error();
    (void)SSL_shutdown(c->ssl);
    ERR_clear_error();
}

/* Closing in CONN_OFFERING: send what the program wrote (bounded), and
 * say how the session ended.  Lock held; released while waiting. */
static void
offer_close(struct conn *c)
{
    int64_t deadline = util_now_ms() + CLOSE_FLUSH_MS;
    char desc[448];

    if (!owner_mine(c->owner))
        return;
    stsrv_flush_hold(c->stsrv);
    for (;;) {
        short ev = offer_send(c);
        if (ev <= 0 || util_now_ms() >= deadline)
            break;
        int fd = c->fd;
        pthread_mutex_unlock(&c->lock);
        (void)wait_fd(fd, ev, deadline);
        pthread_mutex_lock(&c->lock);
        if (c->state != CONN_OFFERING)
            return;
    }
    if (c->state != CONN_OFFERING)
        return;
    if (c->rule->starttls_required)
        snprintf(c->error, sizeof(c->error), "the client closed without "
                 "STARTTLS (%u commands refused)", c->stsrv->refused);
    log_info("%s rule=%s starttls=%s: closed without STARTTLS%s%s",
             peer_desc(c, desc, sizeof(desc)), c->rule->name,
             c->rule->starttls, c->rule->starttls_required ? "; " : "",
             c->rule->starttls_required ? c->error : "");
}

int
conn_shutdown(struct conn *c, int how)
{
    int rv = 0;

    pthread_mutex_lock(&c->lock);
    if (owner_claim(c->owner) < 0) {
        pthread_mutex_unlock(&c->lock);
        return -EIO;
    }
    if (how == SHUT_WR || how == SHUT_RDWR) {
        if (c->state == CONN_OPEN)
            send_close_notify(c);
        if (c->state == CONN_OFFERING) {
            stsrv_flush_hold(c->stsrv);
            (void)offer_send(c);
        }
        c->shut_wr = 1;
    }
    if (tlsshim_sys.shutdown(c->fd, how) < 0)
        rv = -errno;
    pthread_mutex_unlock(&c->lock);
    return rv;
}

int
conn_attach_fd(struct conn *c, int fd)
{
    int ok, rv = 0;

    pthread_mutex_lock(&c->lock);
    if (c->nfds >= (int)TLSSHIM_NELEMS(c->fds)) {
        rv = -EMFILE;
    } else {
        c->fds[c->nfds++] = fd;
        c->fdrefs++;
        atomic_fetch_add(&c->users, 1);
    }
    pthread_mutex_unlock(&c->lock);
    if (rv < 0)
        return rv;
    struct conn *old = fdtable_exchange(fd, c, &ok);
    if (old != NULL)
        conn_close_fd(old, fd);
    if (!ok) {
        conn_close_fd(c, fd);
        return -ENOMEM;
    }
    return 0;
}

/* Remove fd from c's list.  Lock held.  Returns 1 if it was there. */
static int
drop_fd(struct conn *c, int fd)
{
    for (int i = 0; i < c->nfds; i++) {
        if (c->fds[i] == fd) {
            c->fds[i] = c->fds[--c->nfds];
            c->fdrefs--;
            return 1;
        }
    }
    return 0;
}

void
conn_close_fd(struct conn *c, int fd)
{
    int ok;

    if (fdtable_peek(fd) == c)
        (void)fdtable_exchange(fd, NULL, &ok);
    pthread_mutex_lock(&c->lock);
    int was = drop_fd(c, fd);
    if (was && c->fdrefs == 0) {
        send_close_notify(c);
        linger_unacked(c);
        if (c->state == CONN_OFFERING)
            offer_close(c);
        if (c->state == CONN_AUDIT)
            c->first_bytes = "none";
        if (owner_mine(c->owner))
            report_conn(c, "close");
    } else if (was && c->fd == fd && c->nfds > 0) {
        c->fd = c->fds[0];
        conn_bio_set_fd(c->ssl, c->fd);
    }
    pthread_mutex_unlock(&c->lock);
    if (was)
        conn_put(c);
}

void
conn_forget_fd(struct conn *c, int fd)
{
    int ok;

    if (fdtable_peek(fd) == c)
        (void)fdtable_exchange(fd, NULL, &ok);
    pthread_mutex_lock(&c->lock);
    int was = drop_fd(c, fd);
    if (was && c->fdrefs == 0) {
        c->closed_notify = 1;    /* the number is someone else's now */
        if (owner_mine(c->owner))
            report_conn(c, "close");
    }
    else if (was && c->fd == fd && c->nfds > 0)
        c->fd = c->fds[0];
    pthread_mutex_unlock(&c->lock);
    if (was)
        conn_put(c);
}

void
conn_release_all(struct conn *c)
{
    int fds[TLSSHIM_NELEMS(c->fds)], n, ok, nonblock;

    pthread_mutex_lock(&c->lock);
    n = c->nfds;
    memcpy(fds, c->fds, sizeof(int) * (size_t)n);
    nonblock = c->user_nonblock;
    pthread_mutex_unlock(&c->lock);
    if (!nonblock && n > 0) {
        int fl = tlsshim_sys.fcntl(fds[0], F_GETFL);
        if (fl >= 0)
            (void)tlsshim_sys.fcntl(fds[0], F_SETFL, fl & ~O_NONBLOCK);
    }
    for (int i = 0; i < n; i++) {
        if (fdtable_peek(fds[i]) == c)
            (void)fdtable_exchange(fds[i], NULL, &ok);
        pthread_mutex_lock(&c->lock);
        int was = drop_fd(c, fds[i]);
        pthread_mutex_unlock(&c->lock);
        if (was)
            conn_put(c);
    }
}

static void
exit_one(int fd, struct conn *c, void *arg)
{
    pthread_mutex_lock(&c->lock);
    if (c->fd == fd) {
        send_close_notify(c);
        linger_unacked(c);
        if (c->state == CONN_OFFERING)
            offer_close(c);
        if (owner_mine(c->owner))
            report_conn(c, "close");
    }
    pthread_mutex_unlock(&c->lock);
}

static void
fork_one(int fd, struct conn *c, void *arg)
{
    /* no lock: called single-threaded in spirit, just before fork; the
     * fields touched are this process's flag and the shared word */
    c->forked = 1;
    if (c->owner != NULL)
        owner_unclaim(c->owner);
}

void
conn_before_fork(void)
{
    fdtable_foreach(fork_one, NULL);
}

void
conn_exit_all(void)
{
    fdtable_foreach(exit_one, NULL);
}

/* --- event-loop support --- */

short
conn_poll_probe(struct conn *c, short want, short kernel_revents,
                short *kernel, int64_t *deadline_ms)
{
    int open;

    pthread_mutex_lock(&c->lock);
    open = c->state == CONN_OPEN;
    pthread_mutex_unlock(&c->lock);
    /* Only an open connection reads the kernel on POLLIN; a pass-through
     * one would take it as the kernel's word. */
    if (open && (want & POLLIN))
        kernel_revents |= POLLIN;
    return conn_poll_check(c, want, kernel_revents, kernel, deadline_ms);
}

int
conn_fd_list(struct conn *c, int *fds, int max)
{
    int n;

    pthread_mutex_lock(&c->lock);
    n = c->nfds < max ? c->nfds : max;
    memcpy(fds, c->fds, sizeof(int) * (size_t)n);
    pthread_mutex_unlock(&c->lock);
    return n;
}

int
conn_fionread(struct conn *c)
{
    short kernel;
    int64_t deadline;

    /* A record the kernel holds is readable too: decrypt it first. */
    (void)conn_poll_probe(c, POLLIN, 0, &kernel, &deadline);
    return conn_pending(c);
}

/* The signals the kernel raises in the thread whose instruction caused
 * them: they never interrupt a thread waiting in poll(), so their handlers
 * (crash reporters, sanitizer runtimes, virtual machines install them
 * without SA_RESTART) say nothing about the signal that did. */
static int
signal_is_fault(int sig)
{
    switch (sig) {
    case SIGSEGV:
    case SIGBUS:
    case SIGFPE:
    case SIGILL:
    case SIGTRAP:
    case SIGSYS:
        return 1;
    default:
        return 0;
    }
}

int
conn_signal_restarts(void)
{
    struct sigaction sa;

    for (int sig = 1; sig < NSIG; sig++) {
        if (signal_is_fault(sig))
            continue;
        if (sigaction(sig, NULL, &sa) < 0)
            continue;   /* SIGKILL, SIGSTOP, libc's own */
        if (!(sa.sa_flags & SA_SIGINFO) &&
            (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN))
            continue;
        if (!(sa.sa_flags & SA_RESTART))
            return 0;
    }
    return 1;
}

int
conn_failed_on_data(struct conn *c)
{
    int failed;

    pthread_mutex_lock(&c->lock);
    /* a failed handshake (fail_errno ECONNREFUSED, ETIMEDOUT, EACCES)
     * keeps reporting ECONNRESET (SPEC section 5) */
    failed = c->state == CONN_FAILED && c->fail_errno == ECONNRESET;
    pthread_mutex_unlock(&c->lock);
    return failed;
}
