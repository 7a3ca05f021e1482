/*
 * Server mode (SPEC sections 3 and 5): listen() loads the certificates of
 * the listen rules that can match the socket, while the program may still
 * read them; accept() matches the accepted connection's local address and
 * returns it at once, as a TLS server connection whose handshake runs at
 * its first I/O or readiness call, in whichever process or thread that is.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "context.h"
#include "fdtable.h"
#include "ftpdata.h"
#include "log.h"
#include "report.h"
#include "shim.h"

/* What to do with an accepted connection. */
enum verdict { KEEP, REFUSE, FAIL };

static enum policy_action
listen_action(const struct policy *p, const struct policy_rule *r)
{
    return r != NULL ? r->action : p->global.default_listen_action;
}

/* An active-mode data connection of a starttls = ftp session: the
 * program accepted what the server connected.  KEEP when fd became a TLS
 * client connection (RFC 4217: the FTP client is the TLS client), REFUSE
 * when it must be closed (a stranger on the expected port, or the TLS
 * connection could not be set up), FAIL when no expectation concerns it
 * (the caller goes on with the listen rules). */
static enum verdict
ftp_data_accepted(int fd, const struct sockaddr *peer, socklen_t plen)
{
    struct sockaddr_storage local;
    socklen_t llen = sizeof(local);
    struct ftpdata_expect data;
    struct conn *c, *old;
    char laddr[80], paddr[80];
    int ok, taken;

    if (!shim_is_inet_stream(fd) ||
        getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
        return FAIL;
    taken = ftpdata_take(1, (struct sockaddr *)&local, peer, &data);
    if (taken == 0)
        return FAIL;
    util_addr_str((struct sockaddr *)&local, laddr, sizeof(laddr));
    util_addr_str(peer, paddr, sizeof(paddr));
    if (taken < 0) {
        log_error("accept %s from %s refused: an ftp data connection "
                  "(active) is expected on this port from the control "
                  "connection's server, not from this peer (port stealing?)",
                  laddr, paddr);
        report_refused(POLICY_ROLE_SERVER, NULL, POLICY_DENY, peer, NULL,
                       (struct sockaddr *)&local, "denied",
                       "ftp data connection from another peer");
        return REFUSE;
    }
    shim_register_exit();
    if ((c = conn_new_ftp_data(fd, &data, peer, plen, 1)) == NULL) {
        log_error("accept %s from %s rule=%s refused: ftp data connection: "
                  "out of memory", laddr, paddr, data.rule->name);
        return REFUSE;
    }
    old = fdtable_exchange(fd, c, &ok);
    if (!ok) {
        conn_put(c);
        log_error("accept %s from %s rule=%s refused: ftp data connection: "
                  "out of memory", laddr, paddr, data.rule->name);
        return REFUSE;
    }
    if (old != NULL)
        conn_forget_fd(old, fd);
    log_flow("fd %d: ftp data connection from %s (active) rule=%s", fd,
             paddr, data.rule->name);
    return KEEP;
}

/* Decide about fd, accepted on lfd from peer; a TLS connection is put in
 * the fd table here.  FAIL sets errno. */
static enum verdict
judge(int lfd, int fd, const struct sockaddr *peer, socklen_t plen)
{
    const struct policy *p = shim_policy();
    const struct policy_rule *rule;
    struct sockaddr_storage local, bound;
    socklen_t llen = sizeof(local), blen = sizeof(bound);
    char laddr[80], paddr[80], err[300];
    struct conn *c, *old;
    int ok;

    if (ftpdata_any()) {
        enum verdict v = ftp_data_accepted(fd, peer, plen);
        if (v != FAIL)
            return v;
    }
    if (p != NULL && !p->has_listen &&
        p->global.default_listen_action == POLICY_PLAIN)
        return KEEP;
    if (!shim_is_inet_stream(fd) ||
        getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
        return KEEP;
    util_addr_str((struct sockaddr *)&local, laddr, sizeof(laddr));
    util_addr_str(peer, paddr, sizeof(paddr));
    if (p == NULL) {
        log_error("accept %s from %s refused: policy not loaded: %s", laddr,
                  paddr, shim_policy_error());
        errno = EACCES;
        return FAIL;
    }
    rule = policy_match_listen(p, (struct sockaddr *)&local);
    switch (listen_action(p, rule)) {
    case POLICY_TLS:
        break;
    case POLICY_AUDIT:
        if ((c = conn_new_audit(fd, POLICY_ROLE_SERVER, rule, peer,
                                plen, NULL)) != NULL) {
            shim_register_exit();
            old = fdtable_exchange(fd, c, &ok);
            if (!ok)
                conn_put(c);
            else if (old != NULL)
                conn_forget_fd(old, fd);
        }
        return KEEP;
    case POLICY_DENY:
        log_error("accept %s from %s rule=%s: denied by policy", laddr, paddr,
                  rule != NULL ? rule->name : "(default_listen_action)");
        report_refused(POLICY_ROLE_SERVER, rule, POLICY_DENY, peer, NULL,
                       (struct sockaddr *)&local, "denied",
                       "denied by policy");
        return REFUSE;
    default:
        return KEEP;
    }
    /* The certificate of cert_file = auto is the listening address's. */
    if (getsockname(lfd, (struct sockaddr *)&bound, &blen) < 0) {
        memcpy(&bound, &local, sizeof(local));
        blen = llen;
    }
    SSL_CTX *ctx = context_server(rule, (struct sockaddr *)&bound, err,
                                  sizeof(err));
    if (ctx == NULL) {
        log_error("accept %s from %s rule=%s: %s", laddr, paddr, rule->name,
                  err);
        return REFUSE;
    }
    shim_register_exit();
    c = conn_new_server(fd, rule, ctx, peer, plen,
                        (struct sockaddr *)&local, llen);
    if (c == NULL) {
        log_error("accept %s from %s rule=%s: out of memory", laddr, paddr,
                  rule->name);
        return REFUSE;
    }
    old = fdtable_exchange(fd, c, &ok);
    if (!ok) {
        conn_put(c);
        log_error("accept %s from %s rule=%s: out of memory", laddr, paddr,
                  rule->name);
        return REFUSE;
    }
    if (old != NULL)
        conn_forget_fd(old, fd);
    log_flow("fd %d: accept %s from %s rule=%s", fd, laddr, paddr,
             rule->name);
    return KEEP;
}

static int
accept_common(int lfd, struct sockaddr *sa, socklen_t *salen, int flags,
              int four)
{
    struct sockaddr_storage peer;
    socklen_t plen;
    struct conn *old;
    int fd;

    for (;;) {
        plen = sizeof(peer);
        fd = four ? real.accept4(lfd, (struct sockaddr *)&peer, &plen, flags)
                  : real.accept(lfd, (struct sockaddr *)&peer, &plen);
        if (fd < 0)
            return fd;
        /* a number closed behind our back must not keep its connection */
        if ((old = fdtable_peek(fd)) != NULL)
            conn_forget_fd(old, fd);
        enum verdict v = judge(lfd, fd, (struct sockaddr *)&peer, plen);
        if (v == KEEP)
            break;
        int e = errno;
        real.close(fd);
        if (v == FAIL) {
            errno = e;
            return -1;
        }
        /* refused: closed before the program saw it; wait for the next
         * (a non-blocking listener answers EAGAIN, as with none queued) */
    }
    if (sa != NULL && salen != NULL) {
        memcpy(sa, &peer, plen < *salen ? plen : *salen);
        *salen = plen;
    }
    return fd;
}

HOOK int
accept(int lfd, struct sockaddr *sa, socklen_t *salen)
{
    real_init();
    return accept_common(lfd, sa, salen, 0, 0);
}

HOOK int
accept4(int lfd, struct sockaddr *sa, socklen_t *salen, int flags)
{
    real_init();
    return accept_common(lfd, sa, salen, flags, 1);
}

HOOK int
listen(int fd, int backlog)
{
    const struct policy *p;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    char addr[80], err[300];

    real_init();
    p = shim_policy();
    if (p == NULL || !p->has_listen || !shim_is_inet_stream(fd) ||
        getsockname(fd, (struct sockaddr *)&bound, &blen) < 0)
        return real.listen(fd, backlog);
    /* Load now what the program may not be able to read later (a master
     * that drops privileges before its workers accept). */
    for (size_t i = 0; i < p->nrules; i++) {
        const struct policy_rule *r = &p->rules[i];
        if (r->action != POLICY_TLS ||
            !policy_listen_rule_may_match(r, (struct sockaddr *)&bound))
            continue;
        if (context_server(r, (struct sockaddr *)&bound, err,
                           sizeof(err)) == NULL) {
            log_error("listen %s rule=%s: %s",
                      util_addr_str((struct sockaddr *)&bound, addr,
                                    sizeof(addr)),
                      r->name, err);
            errno = EACCES;
            return -1;
        }
    }
    return real.listen(fd, backlog);
}
