/*
 * One connection that tlsshim drives: the TCP connect, the TLS handshake
 * and verification, and the data path, on a real socket that is always
 * non-blocking.  Blocking behaviour for a blocking program is emulated by
 * waiting in poll() without the connection's lock held, so one thread can
 * read while another writes.
 *
 * Return convention: >= 0 on success, a negated errno value on failure;
 * the hooks turn it into errno once.
 */
#ifndef TLSSHIM_CONN_H
#define TLSSHIM_CONN_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "owner.h"
#include "policy.h"
#include "starttls.h"

struct stsrv;
struct ftpdata_watch;
struct ftpdata_expect;

enum conn_state {
    CONN_CONNECTING = 0,  /* TCP connect in progress */
    CONN_AUTO_WAIT,       /* action = auto: TCP up, first move not seen */
    CONN_HANDSHAKING,
    CONN_OPEN,
    CONN_FAILED,          /* fails every I/O until closed */
    CONN_PASSTHROUGH,     /* auto: the program speaks TLS itself */
    CONN_ACCEPTED,        /* server: accepted, handshake not started */
    CONN_VERIFYING,       /* handshake done, OCSP answers awaited */
    CONN_AUDIT,           /* action audit: plain, first bytes not seen */
    CONN_STARTTLS,        /* starttls: the protocol's upgrade dialogue, before
                           * the handshake (and, for ftp, after it) */
    CONN_OFFERING,        /* server starttls: plaintext, STARTTLS offered */
    CONN_LOGIN_WAIT,      /* starttls = mysql: the server's greeting is read
                           * and shown; the handshake waits for the
                           * program's login packet (its first write) */
};

#define CONN_NAME_MAX 256

struct conn {
    pthread_mutex_t lock;
    atomic_int users;          /* fd references + calls in flight */
    atomic_int live;           /* 1 until destroyed; makes that happen once */
    struct conn *next_free;    /* free list (conns are type-stable) */

    /* guarded by lock */
    int fdrefs;
    int fds[8];                /* fds sharing the socket (dup) */
    int nfds;
    int fd;                    /* the one used for I/O */
    enum conn_state state;
    enum policy_role role;
    const struct policy_rule *rule;
    SSL *ssl;
    int user_nonblock;         /* the program's O_NONBLOCK */
    int64_t started_ms, handshake_deadline_ms, handshake_ms;
    int fail_errno;            /* what connect/SO_ERROR report */
    int io_errno;              /* what later I/O reports */
    int so_error_pending;      /* SO_ERROR not yet read by the program */
    int connect_reported;      /* blocking/non-blocking connect returned */
    char error[512];
    char verify_error[512];    /* set by the verify callback */
    unsigned char *wpend;      /* a record OpenSSL must be given again */
    size_t wpend_len;
    int eof;                   /* close_notify or EOF seen */
    int shut_wr;
    int closed_notify;
    uint64_t bytes_in, bytes_out;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    struct sockaddr_storage dest;      /* client: where TCP goes (redirect) */
    socklen_t dest_len;                /* 0: to peer */
    struct sockaddr_storage local;     /* server: the accepted local address */
    socklen_t local_len;
    SSL_CTX *server_ctx;               /* server: the context to accept with */
    char peer_subject[256];            /* server: the client certificate */
    char matched_name[CONN_NAME_MAX];  /* "" if none */
    char verify_name[CONN_NAME_MAX];
    char sni[CONN_NAME_MAX];           /* "" if none */
    int verify_name_is_ip;
    char session_key[CONN_NAME_MAX * 2 + 32]; /* client cache key */
    int resumed;
    int verified;              /* the handshake and its checks passed */
    int logged;
    owner_word *owner;         /* shared across fork: who may use it */
    int forked;                /* existed at a fork (owner word shared) */
    const char *ocsp;          /* "good", "revoked", "unknown", NULL: none */
    int fp_accepted;           /* a fingerprint accepted the peer's leaf */
    struct ocsp_job *ocsp_job; /* CONN_VERIFYING: the queries */
    int aux_fd;                /* CONN_VERIFYING: the socket waited on */
    short aux_events;
    int64_t aux_deadline_ms;
    int was_open;              /* the handshake succeeded */
    const char *outcome;       /* report outcome of a failure, or NULL */
    int reported;              /* the report's close line is written */
    char report_id[48];
    int no_rule;               /* matched by default_(listen_)action */
    const char *first_bytes;   /* audit: the protocol seen, or NULL */
    char first_detail[256];    /* audit: sni/versions, method... */
    /* starttls: the dialogue, then what the program reads first (the
     * greeting); NULL once that is read, or without starttls */
    struct starttls *stls;
    int stls_plain;            /* no STARTTLS and starttls_required = no:
                                * plaintext (state CONN_PASSTHROUGH) */
    int stls_released;         /* ...and the fd was handed back */
    /* starttls = mysql: the connection phase's sequence ids, translated
     * (active) from the handshake until the program's first command */
    struct starttls_seq mysql_seq;
    /* enforce: the program's own TLS, bound to the hooks of its library
     * (c->ssl stays NULL; these say what it negotiated) */
    int enforce_bound;
    /* while enforce_bound and held by the enforce module: on the list of
     * sockets whose number is forgotten when the program closes it
     * (conn_enforce_forget_fds).  guarded by the list's lock */
    int enforce_watched;
    struct conn *watch_prev, *watch_next;
    char tls_version[16];
    char tls_cipher[64];
    X509 *peer_cert;           /* a reference, freed with c */
    STACK_OF(X509) *enforce_chain; /* the chain the rule verified, for
                                    * OCSP; freed with c */
    /* server starttls (CONN_OFFERING): the plaintext dialogue before
     * STARTTLS; after a go on without it, what the program reads first */
    struct stsrv *stsrv;
    int stsrv_upgrade;         /* the go-ahead is queued: handshake next */
    int stsrv_release;         /* plaintext for good once sent what waits */
    /* starttls = ftp: the control stream, watched for data addresses */
    struct ftpdata_watch *ftp;
    int ftp_data;              /* a data connection of such a session */
};

/* A new client connection for fd, matched to rule; the program's socket
 * flags are read and the socket made non-blocking.  NULL on ENOMEM. */
struct conn *conn_new_client(int fd, const struct policy_rule *rule,
                             const struct sockaddr *peer, socklen_t len,
                             const char *matched_name);

/* A new server connection for an accepted fd, matched to rule; the
 * handshake starts at the first I/O or readiness call.  ctx: the rule's
 * server context.  NULL on ENOMEM. */
struct conn *conn_new_server(int fd, const struct policy_rule *rule,
                             SSL_CTX *ctx, const struct sockaddr *peer,
                             socklen_t plen, const struct sockaddr *local,
                             socklen_t llen);

/* A data connection of a starttls = ftp session (ftpdata.h): a TLS
 * client with the control connection's rule, name and session.  accepted:
 * the program accepted it (active mode), TCP is up; else the program
 * connects it.  NULL on ENOMEM. */
struct conn *conn_new_ftp_data(int fd, const struct ftpdata_expect *e,
                               const struct sockaddr *peer, socklen_t len,
                               int accepted);

/* redirect: TCP goes to dest instead of the peer the program named (which
 * is still what is verified and what getpeername() shows). */
void conn_set_dest(struct conn *c, const struct sockaddr *dest,
                   socklen_t len);

/* action audit (SPEC sections 3 and 8): fd stays the program's plain
 * socket, flags untouched; the first bytes either way are classified,
 * logged and reported, then the fd is released.  rule NULL: the default
 * action matched.  NULL on ENOMEM. */
struct conn *conn_new_audit(int fd, enum policy_role role,
                            const struct policy_rule *rule,
                            const struct sockaddr *peer, socklen_t plen,
                            const char *matched_name);
/* The program is about to send (sent = 1) or has received (sent = 0)
 * these bytes on an audited fd: classify them and release the fd. */
void conn_audit_bytes(struct conn *c, const void *buf, size_t len, int sent);
/* Before a read on an audited fd: peek at what arrived, as the program's
 * socket would block or not, and classify it (releasing the fd); nothing
 * yet: the fd stays audited. */
void conn_audit_peek(struct conn *c);

/* Start the TCP connect: 0 when connected at once, -EINPROGRESS, or a
 * negated TCP errno. */
int conn_connect_start(struct conn *c);
/* A blocking program's connect(): wait for TCP and the handshake. */
int conn_connect_finish(struct conn *c);

/* Data path.  flags: MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL. */
ssize_t conn_read(struct conn *c, void *buf, size_t len, int flags);
ssize_t conn_write(struct conn *c, const void *buf, size_t len, int flags);
/* action = auto: if the program's first write begins a TLS record, hand
 * the socket back to it (returns 1; c is then released). */
int conn_auto_passthrough(struct conn *c, const void *buf, size_t len);
/* 1 when c is the client of an action = auto or enforce rule whose
 * first move is not seen yet (TCP may still be connecting). */
int conn_first_move_pending(struct conn *c);

/*
 * action = enforce (SPEC section 3).  The program's first write is a
 * ClientHello carrying sni ("" for none): the name to verify becomes
 * verifycn_name, else sni, else the matched name, else the IP address.
 */
void conn_enforce_hello(struct conn *c, const char *sni);
/* The program's TLS library is bound to c: hand the socket back to the
 * program (c stays alive through the caller's reference). */
void conn_enforce_passthrough(struct conn *c);
/* The connection fails (ECONNRESET from now on, the socket shut down,
 * logged and reported with outcome). */
void conn_enforce_fail(struct conn *c, const char *outcome, const char *fmt,
                       ...) __attribute__((format(printf, 3, 4)));
/* The program's handshake ended well: log and report it. */
void conn_enforce_established(struct conn *c, const char *version,
                              const char *cipher, int resumed, X509 *peer);
/* 1 when c is an enforce-rule client whose program has not sent its
 * ClientHello yet (TCP up or still connecting). */
int conn_enforce_unclaimed(struct conn *c);
/* Log something tlsshim did or found on the program's own TLS on c: a
 * warning (level 0), or at debug level 1 or 2. */
void conn_enforce_note(struct conn *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * The enforce module gives back its reference to c (its TLS object is
 * freed).  After conn_enforce_passthrough, c->fd is the program's socket
 * and may be a number the program has reused: it is forgotten here, so
 * that nothing done for c afterwards reaches another socket.
 */
void conn_enforce_release(struct conn *c);
/*
 * Descriptors lo..hi are being closed or replaced (close, dup2 onto them,
 * close_range, a new socket with the number): enforce-bound connections
 * on them forget their fd number.  One atomic load when there are none,
 * so the close of an untracked fd stays cheap.
 */
void conn_enforce_forget_fds(unsigned lo, unsigned hi);
/* 1 when some enforce-bound connection has an fd number to forget. */
int conn_enforce_watching(void);
/* An extra reference to c (conn_put gives it back). */
void conn_hold(struct conn *c);

/* bytes readable without blocking, for FIONREAD */
int conn_pending(struct conn *c);

/*
 * Readiness.  Advance the connection without blocking and return the
 * events to report now for the program's interest (0: none).  When none,
 * *kernel gets the events to wait for on the real socket and *deadline_ms
 * (if not -1) the time by which conn_poll_check must be called again.
 * kernel_revents: what the kernel reported on the real socket (0 before
 * waiting).
 */
short conn_poll_check(struct conn *c, short want, short kernel_revents,
                      short *kernel, int64_t *deadline_ms);

/* getsockopt(SO_ERROR): the pending error, cleared when read. */
int conn_take_so_error(struct conn *c);
int conn_shutdown(struct conn *c, int how);
void conn_set_nonblock(struct conn *c, int on);
/* 1 when tlsshim keeps the socket non-blocking and emulates the
 * program's mode; 0 for an audited socket, which is the program's own. */
int conn_owns_flags(struct conn *c);
int conn_get_nonblock(struct conn *c);

/* Reference counting and the fd table. */
struct conn *conn_get(int fd);       /* + a user reference, or NULL */
void conn_put(struct conn *c);
int conn_attach_fd(struct conn *c, int fd);   /* dup: fd shares c */
/* close() of fd: detaches it; the last fd sends close_notify first.
 * The caller closes fd itself afterwards. */
void conn_close_fd(struct conn *c, int fd);
/* The fd number was closed behind our back and reused: detach it and
 * send nothing. */
void conn_forget_fd(struct conn *c, int fd);
/* Detach every fd (auto pass-through); the program owns the socket. */
void conn_release_all(struct conn *c);
/* Before fork: every connection this process owns becomes unclaimed. */
void conn_before_fork(void);
/* At exit: flush and close_notify every open connection. */
void conn_exit_all(void);

const char *conn_state_name(enum conn_state s);
/* A BIO on a socket that makes the real system calls (non-blocking use:
 * retries are flagged), for tlsshim's own connections. */
BIO *conn_socket_bio(int fd);
/* Point the SSL object's socket BIO at fd (after the fd number changed). */
void conn_bio_set_fd(SSL *ssl, int fd);

/* --- event-loop support (conn.c, section at the end) --- */

/* conn_poll_check, but when the connection is open and want has POLLIN,
 * first let OpenSSL read what the kernel holds (a non-blocking read):
 * for callers that cannot tell whether the kernel saw bytes (epoll in
 * edge-triggered mode, where the kernel reports arrivals only once). */
short conn_poll_probe(struct conn *c, short want, short kernel_revents,
                      short *kernel, int64_t *deadline_ms);
/* The fds sharing c's socket (at most max); returns how many. */
int conn_fd_list(struct conn *c, int *fds, int max);
/* FIONREAD: plaintext bytes readable now, reading what the kernel holds
 * into OpenSSL if nothing is decrypted yet. */
int conn_fionread(struct conn *c);
/* After poll() failed with EINTR in a blocking emulation: 1 when the
 * kernel would have restarted a socket call, i.e. every signal whose
 * handler is a function has SA_RESTART, the fault signals (SIGSEGV,
 * SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) aside: those interrupt no wait.
 * (We cannot tell which signal arrived.)  Costs NSIG sigaction() calls;
 * EINTR is rare. */
int conn_signal_restarts(void);
/* 1 when the connection already failed on its data path (a reset, an EOF
 * without close_notify, a failed write): the kernel would refuse further
 * writes with EPIPE, having reported the reset once. */
int conn_failed_on_data(struct conn *c);

#endif
