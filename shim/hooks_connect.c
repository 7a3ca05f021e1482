/*
 * connect() and the calls around it: the policy decides, per destination,
 * whether the socket stays plain, is refused, or becomes a TLS client
 * (SPEC sections 3 and 5).  getsockopt(SO_ERROR) and shutdown() report and
 * act at the TLS level on tracked sockets.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "conn.h"
#include "context.h"
#include "fdtable.h"
#include "ftpdata.h"
#include "log.h"
#include "names.h"
#include "report.h"
#include "shim.h"

/* The rule's own resolution of its names, cached for a while (getaddrinfo
 * does not tell the DNS answer's lifetime). */
#define RESOLVE_CACHE_SLOTS 64
#define RESOLVE_CACHE_MS 60000

struct resolved {
    char host[NAMES_MAX_LEN];
    int64_t expires_ms;
    int naddrs;
    struct sockaddr_storage addrs[8];
};

/* guarded by resolve_lock */
static pthread_mutex_t resolve_lock = PTHREAD_MUTEX_INITIALIZER;
static struct resolved resolve_cache[RESOLVE_CACHE_SLOTS];
static unsigned resolve_next;

static int
same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return 0;
    if (a->sa_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

static int
resolve_matches(const struct resolved *r, const struct sockaddr *addr)
{
    for (int i = 0; i < r->naddrs; i++)
        if (same_ip((const struct sockaddr *)&r->addrs[i], addr))
            return 1;
    return 0;
}

static int
rule_resolve(void *arg, const char *host, const struct sockaddr *addr)
{
    int64_t now = util_now_ms();
    struct addrinfo hints, *res = NULL;
    struct resolved fresh;
    int found = -1;

    pthread_mutex_lock(&resolve_lock);
    for (unsigned i = 0; i < RESOLVE_CACHE_SLOTS; i++) {
        if (resolve_cache[i].host[0] != '\0' &&
            strcmp(resolve_cache[i].host, host) == 0 &&
            resolve_cache[i].expires_ms > now) {
            found = resolve_matches(&resolve_cache[i], addr);
            break;
        }
    }
    pthread_mutex_unlock(&resolve_lock);
    if (found >= 0)
        return found;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    memset(&fresh, 0, sizeof(fresh));
    util_strlcpy(fresh.host, host, sizeof(fresh.host));
    fresh.expires_ms = now + RESOLVE_CACHE_MS;
    if (real.getaddrinfo(host, NULL, &hints, &res) == 0) {
        for (struct addrinfo *ai = res; ai != NULL && fresh.naddrs < 8;
             ai = ai->ai_next)
            if (ai->ai_addrlen <= sizeof(struct sockaddr_storage))
                memcpy(&fresh.addrs[fresh.naddrs++], ai->ai_addr,
                       ai->ai_addrlen);
        real.freeaddrinfo(res);
    }
    pthread_mutex_lock(&resolve_lock);
    resolve_cache[resolve_next++ % RESOLVE_CACHE_SLOTS] = fresh;
    pthread_mutex_unlock(&resolve_lock);
    return resolve_matches(&fresh, addr);
}

static enum policy_action
action_of(const struct policy *p, const struct policy_rule *r)
{
    return r != NULL ? r->action : p->global.default_action;
}

/*
 * Pick the rule and the name for a destination (SPEC section 3): the
 * calling thread's latest lookup of this address; else the names other
 * threads recorded, refused as ambiguous when they would select different
 * rules or verification names.  Returns 0, or -1 for ambiguity.
 */
static int
choose_rule(const struct policy *p, const struct sockaddr *sa,
            const struct policy_rule **rule, char *name, size_t namelen)
{
    char names[NAMES_PER_ADDR][NAMES_MAX_LEN], lookup[NAMES_MAX_LEN];
    const char *matched = NULL;
    int n;

    /* name gets the name that matched (a name pattern, or a catch-all
     * that keeps the program's name), not merely the one looked up: that
     * is the name verified (SPEC section 4, verifycn_name) */
    name[0] = '\0';
    if (names_thread_lookup(sa, lookup, sizeof(lookup))) {
        *rule = policy_match_connect(p, sa, lookup, rule_resolve, NULL,
                                     &matched);
        if (matched != NULL)
            util_strlcpy(name, matched, namelen);
        return 0;
    }
    n = names_global_lookup(sa, names, NAMES_PER_ADDR);
    if (n == 0) {
        *rule = policy_match_connect(p, sa, NULL, rule_resolve, NULL,
                                     &matched);
        if (matched != NULL)
            util_strlcpy(name, matched, namelen);
        return 0;
    }
    const struct policy_rule *first = NULL;
    char first_vname[NAMES_MAX_LEN] = "";
    int all_plain = 1;
    for (int i = 0; i < n; i++) {
        const struct policy_rule *r = policy_match_connect(
            p, sa, names[i], rule_resolve, NULL, &matched);
        const char *vname = r != NULL && r->verifycn_name != NULL
                                ? r->verifycn_name
                                : (matched != NULL ? matched : "");
        enum policy_action a = action_of(p, r);
        if (a != POLICY_PLAIN)
            all_plain = 0;
        if (i == 0) {
            first = r;
            util_strlcpy(first_vname, vname, sizeof(first_vname));
            util_strlcpy(name, matched != NULL ? matched : "", namelen);
            continue;
        }
        if ((r != first || strcmp(vname, first_vname) != 0) &&
            (!all_plain || action_of(p, first) != POLICY_PLAIN ||
             a != POLICY_PLAIN))
            return -1;
    }
    *rule = first;
    return 0;
}

/*
 * The address of redirect spec ("HOST:PORT", "[V6]:PORT" or ":PORT") for
 * a socket of orig's family; an IPv4 target of an IPv6 socket is mapped.
 * 0, or -1 with the reason in err.
 */
static int
redirect_addr(const char *spec, const struct sockaddr *orig,
              struct sockaddr_storage *out, socklen_t *outlen, char *err,
              size_t errlen)
{
    char host[300];
    const char *colon;
    unsigned port;
    struct addrinfo hints, *res = NULL, *ai;
    int e;

    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        size_t n = (size_t)(close - spec - 1);
        memcpy(host, spec + 1, n);
        host[n] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(spec, ':');
        size_t n = (size_t)(colon - spec);
        memcpy(host, spec, n);
        host[n] = '\0';
    }
    port = (unsigned)strtoul(colon + 1, NULL, 10);
    if (host[0] == '\0') {
        /* :PORT: the same address, another port */
        memcpy(out, orig, orig->sa_family == AF_INET
                              ? sizeof(struct sockaddr_in)
                              : sizeof(struct sockaddr_in6));
        *outlen = orig->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                             : sizeof(struct sockaddr_in6);
    } else {
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        e = real.getaddrinfo(host, NULL, &hints, &res);
        if (e != 0) {
            snprintf(err, errlen, "redirect %.100s: cannot resolve %.100s: %s",
                     spec, host, gai_strerror(e));
            return -1;
        }
        /* the socket's own family first; IPv4 into an IPv6 socket mapped */
        for (ai = res; ai != NULL && ai->ai_family != orig->sa_family;
             ai = ai->ai_next)
            ;
        if (ai == NULL && orig->sa_family == AF_INET6)
            for (ai = res; ai != NULL && ai->ai_family != AF_INET;
                 ai = ai->ai_next)
                ;
        if (ai == NULL) {
            real.freeaddrinfo(res);
            snprintf(err, errlen, "redirect %.100s: no address of the socket's "
                     "family (%s)", spec,
                     orig->sa_family == AF_INET ? "IPv4" : "IPv6");
            return -1;
        }
        if (ai->ai_family == orig->sa_family) {
            memcpy(out, ai->ai_addr, ai->ai_addrlen);
            *outlen = ai->ai_addrlen;
        } else {
            struct sockaddr_in6 *m = (struct sockaddr_in6 *)out;
            memset(m, 0, sizeof(*m));
            m->sin6_family = AF_INET6;
            m->sin6_addr.s6_addr[10] = 0xff;
            m->sin6_addr.s6_addr[11] = 0xff;
            memcpy(m->sin6_addr.s6_addr + 12,
                   &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
            *outlen = sizeof(*m);
        }
        real.freeaddrinfo(res);
    }
    if (out->ss_family == AF_INET)
        ((struct sockaddr_in *)out)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)out)->sin6_port = htons((uint16_t)port);
    return 0;
}

/* data: a data connection of a starttls = ftp session, or NULL */
static int
connect_tls(int fd, const struct sockaddr *sa, socklen_t len,
            const struct policy_rule *rule, const char *name,
            const struct ftpdata_expect *data)
{
    struct sockaddr_storage dest;
    socklen_t dest_len = 0;
    char err[256], addr[80];
    struct conn *c, *old;
    int ok, rv;

    if (context_client(rule, err, sizeof(err)) == NULL) {
        log_error("connect %s rule=%s: %s",
                  util_addr_str(sa, addr, sizeof(addr)), rule->name, err);
        errno = EACCES;
        return -1;
    }
    if (rule->redirect != NULL && data == NULL &&
        redirect_addr(rule->redirect, sa, &dest, &dest_len, err,
                      sizeof(err)) < 0) {
        log_error("connect %s rule=%s: %s",
                  util_addr_str(sa, addr, sizeof(addr)), rule->name, err);
        errno = EACCES;
        return -1;
    }
    shim_register_exit();
    c = data != NULL
            ? conn_new_ftp_data(fd, data, sa, len, 0)
            : conn_new_client(fd, rule, sa, len, name[0] != '\0' ? name : NULL);
    if (c == NULL) {
        errno = ENOMEM;
        return -1;
    }
    if (dest_len > 0)
        conn_set_dest(c, (struct sockaddr *)&dest, dest_len);
    old = fdtable_exchange(fd, c, &ok);
    if (!ok) {
        conn_put(c);
        errno = ENOMEM;
        return -1;
    }
    if (old != NULL)   /* stale entry of an fd closed behind our back */
        conn_forget_fd(old, fd);
    log_flow("fd %d: connect %s rule=%s action=%s", fd,
             util_addr_str(sa, addr, sizeof(addr)), rule->name,
             policy_action_name(rule->action));
    if (rule->action == POLICY_ENFORCE)
        shim_enforce_attach();
    rv = conn_connect_start(c);
    if (rv == 0 || rv == -EINPROGRESS) {
        if (conn_get_nonblock(c)) {
            /* auto, enforce: connect() returns as soon as TCP is up */
            if (rv == 0 && (rule->action == POLICY_AUTO ||
                            rule->action == POLICY_ENFORCE))
                return 0;
            errno = EINPROGRESS;
            return -1;
        }
        rv = conn_connect_finish(c);
    }
    return (int)shim_ret(rv);
}

/* action audit: the program's own connect, watched until its first
 * bytes either way (SPEC section 3). */
static int
connect_audit(int fd, const struct sockaddr *sa, socklen_t len,
              const struct policy_rule *rule, const char *name)
{
    struct conn *c, *old;
    int rv = real.connect(fd, sa, len), e = errno, ok;

    if (rv < 0 && e != EINPROGRESS)
        return rv;
    c = conn_new_audit(fd, POLICY_ROLE_CLIENT, rule, sa, len,
                       name[0] != '\0' ? name : NULL);
    if (c != NULL) {
        shim_register_exit();
        old = fdtable_exchange(fd, c, &ok);
        if (!ok)
            conn_put(c);
        else if (old != NULL)
            conn_forget_fd(old, fd);
    }
    errno = e;
    return rv;
}

/* connect() on a socket we already track: as TCP would answer. */
static int
connect_again(struct conn *c)
{
    int rv;

    pthread_mutex_lock(&c->lock);
    enum conn_state st = c->state;
    int pending = c->so_error_pending, ferr = c->fail_errno;
    if (st == CONN_FAILED)
        c->so_error_pending = 0;
    int nonblock = c->user_nonblock;
    enum policy_role role = c->role;
    pthread_mutex_unlock(&c->lock);
    if (role == POLICY_ROLE_SERVER)
        return (int)shim_ret(-EISCONN);
    switch (st) {
    case CONN_OPEN:
    case CONN_AUTO_WAIT:
    case CONN_LOGIN_WAIT:
    case CONN_PASSTHROUGH:
        rv = -EISCONN;
        break;
    case CONN_FAILED:
        rv = pending ? -ferr : -ECONNABORTED;
        break;
    default:
        rv = nonblock ? -EALREADY : conn_connect_finish(c);
        break;
    }
    return (int)shim_ret(rv);
}

HOOK int
connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    const struct policy *p;
    const struct policy_rule *rule = NULL;
    char name[NAMES_MAX_LEN], addr[80];
    struct conn *c;
    int rv;

    real_init();
    if (sa == NULL || len < sizeof(sa_family_t) ||
        (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
        return real.connect(fd, sa, len);
    if ((c = conn_get(fd)) != NULL) {
        rv = connect_again(c);
        conn_put(c);
        return rv;
    }
    if (!shim_is_inet_stream(fd))
        return real.connect(fd, sa, len);
    p = shim_policy();
    if (p == NULL) {
        log_error("connect %s refused: policy not loaded: %s",
                  util_addr_str(sa, addr, sizeof(addr)), shim_policy_error());
        errno = EACCES;
        return -1;
    }
    struct ftpdata_expect data;
    int taken = ftpdata_any() ? ftpdata_take(0, sa, NULL, &data) : 0;
    if (choose_rule(p, sa, &rule, name, sizeof(name)) < 0) {
        log_error("connect %s refused: ambiguous name (several names were "
                  "looked up for this address by other threads)",
                  util_addr_str(sa, addr, sizeof(addr)));
        report_refused(POLICY_ROLE_CLIENT, NULL, POLICY_DENY, sa, NULL,
                       NULL, "denied", "ambiguous name");
        errno = EACCES;
        return -1;
    }
    /* the data connection of an ftp session: TLS (it resumes the control
     * connection's session) unless another rule that denies or verifies
     * matches the address; a plain or audit rule never makes it plain */
    if (taken != 0 && rule != NULL && rule != (taken > 0 ? data.rule : NULL) &&
        action_of(p, rule) != POLICY_PLAIN &&
        action_of(p, rule) != POLICY_AUDIT) {
        log_info("connect %s rule=%s: an ftp data connection was expected "
                 "here; the rule that matches the address applies",
                 util_addr_str(sa, addr, sizeof(addr)), rule->name);
    } else if (taken > 0) {
        return connect_tls(fd, sa, len, data.rule, "", &data);
    } else if (taken == -2) {
        log_error("connect %s refused: the data connection an ftp session "
                  "with this server asked for was not found; no rule names "
                  "this port, and it could carry the transfer in plaintext",
                  util_addr_str(sa, addr, sizeof(addr)));
        report_refused(POLICY_ROLE_CLIENT, rule, POLICY_DENY, sa, NULL, NULL,
                       "denied", "ftp data connection not found");
        errno = EACCES;
        return -1;
    } else if (taken < 0) {
        log_error("connect %s refused: an ftp server named this address "
                  "for a data connection, not its own; only a data "
                  "connection to the control connection's server is "
                  "trusted", util_addr_str(sa, addr, sizeof(addr)));
        report_refused(POLICY_ROLE_CLIENT, rule, POLICY_DENY, sa, NULL, NULL,
                       "denied", "ftp data connection to another address");
        errno = EACCES;
        return -1;
    }
    switch (action_of(p, rule)) {
    case POLICY_TLS:
    case POLICY_AUTO:
    case POLICY_ENFORCE:
        return connect_tls(fd, sa, len, rule, name, NULL);
    case POLICY_DENY:
        log_error("connect %s%s%s rule=%s: denied by policy",
                  name[0] ? name : "", name[0] ? " " : "",
                  util_addr_str(sa, addr, sizeof(addr)),
                  rule != NULL ? rule->name : "(default_action)");
        report_refused(POLICY_ROLE_CLIENT, rule, POLICY_DENY, sa,
                       name[0] ? name : NULL, NULL, "denied",
                       "denied by policy");
        errno = EACCES;
        return -1;
    case POLICY_AUDIT:
        return connect_audit(fd, sa, len, rule, name);
    default:
        return real.connect(fd, sa, len);
    }
}

HOOK int
getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
{
    struct conn *c;

    real_init();
    if (level == SOL_SOCKET && optname == SO_ERROR && optval != NULL &&
        optlen != NULL && *optlen >= (socklen_t)sizeof(int) &&
        (c = conn_get(fd)) != NULL) {
        int e = conn_take_so_error(c);
        conn_put(c);
        memcpy(optval, &e, sizeof(e));   /* at any alignment */
        *optlen = sizeof(int);
        return 0;
    }
    return real.getsockopt(fd, level, optname, optval, optlen);
}

/* A redirected connection shows the address the program asked for. */
HOOK int
getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
    struct conn *c;

    real_init();
    if (sa == NULL || len == NULL || (c = conn_get(fd)) == NULL)
        return real.getpeername(fd, sa, len);
    pthread_mutex_lock(&c->lock);
    int redirected = c->dest_len > 0;
    struct sockaddr_storage peer = c->peer;
    socklen_t plen = c->peer_len;
    pthread_mutex_unlock(&c->lock);
    conn_put(c);
    if (!redirected)
        return real.getpeername(fd, sa, len);
    /* as the kernel would: ENOTCONN until TCP is up */
    struct sockaddr_storage tmp;
    socklen_t tlen = sizeof(tmp);
    if (real.getpeername(fd, (struct sockaddr *)&tmp, &tlen) < 0)
        return -1;
    memcpy(sa, &peer, plen < *len ? plen : *len);
    *len = plen;
    return 0;
}

HOOK int
shutdown(int fd, int how)
{
    struct conn *c;
    int rv;

    real_init();
    if ((c = conn_get(fd)) == NULL)
        return real.shutdown(fd, how);
    rv = conn_shutdown(c, how);
    conn_put(c);
    return (int)shim_ret(rv);
}

HOOK int
socket(int domain, int type, int protocol)
{
    int fd;
    struct conn *old;

    real_init();
    fd = real.socket(domain, type, protocol);
    /* A number the program closed behind our back (fclose of an fdopen
     * stream, say) must not keep its old connection. */
    if (fd >= 0 && (old = fdtable_peek(fd)) != NULL)
        conn_forget_fd(old, fd);
    if (fd >= 0)
        conn_enforce_forget_fds((unsigned)fd, (unsigned)fd);
    return fd;
}
