/*
 * Relay processes.  The program forks twice (no zombie is left to it);
 * the grandchild closes every other fd, takes ownership of the connection
 * and copies bytes between the plaintext socketpair end and the TLS
 * socket, through the module's own hooks, until both sides have closed.
 * The program replaces each fd number of the connection with its end of
 * the socketpair, keeping the numbers and their close-on-exec flags, so a
 * new image, shimmed or not, reads and writes plaintext.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conn.h"
#include "fdtable.h"
#include "log.h"
#include "owner.h"
#include "relay.h"
#include "shim.h"

#define RELAY_BUF 65536

static void
close_all_but(const int *keep, int nkeep)
{
    int sorted[4], n = 0;

    for (int i = 0; i < nkeep; i++)
        if (keep[i] >= 0)
            sorted[n++] = keep[i];
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            int t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    unsigned lo = 0;
    for (int i = 0; i < n; i++) {
        if ((unsigned)sorted[i] > lo)
            (void)real.close_range(lo, (unsigned)sorted[i] - 1, 0);
        lo = (unsigned)sorted[i] + 1;
    }
    (void)real.close_range(lo, ~0u, 0);
}

/* Copy until both directions ended.  Runs in the relay process; the TLS
 * fd goes through the hooks (poll, read, write, shutdown, close). */
static void
relay_run(int tls, int app)
{
    static unsigned char a2t[RELAY_BUF], t2a[RELAY_BUF];
    size_t a2t_len = 0, t2a_len = 0;
    int app_eof = 0, tls_eof = 0, tls_shut = 0, app_shut = 0;

    for (;;) {
        if (app_eof && a2t_len == 0 && !tls_shut) {
            (void)shutdown(tls, SHUT_WR);    /* close_notify */
            tls_shut = 1;
        }
        if (tls_eof && t2a_len == 0 && !app_shut) {
            (void)shutdown(app, SHUT_WR);
            app_shut = 1;
        }
        if (tls_shut && app_shut)
            break;
        struct pollfd p[2] = {
            {.fd = app,
             .events = (short)((!app_eof && a2t_len < RELAY_BUF ? POLLIN : 0) |
                               (t2a_len > 0 ? POLLOUT : 0))},
            {.fd = tls,
             .events = (short)((!tls_eof && t2a_len < RELAY_BUF ? POLLIN : 0) |
                               (a2t_len > 0 ? POLLOUT : 0))},
        };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR) && !app_eof &&
            a2t_len < RELAY_BUF) {
            ssize_t n = read(app, a2t + a2t_len, RELAY_BUF - a2t_len);
            if (n > 0)
                a2t_len += (size_t)n;
            else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                app_eof = 1;
        }
        if (a2t_len > 0 && (p[1].revents & (POLLOUT | POLLERR))) {
            ssize_t n = write(tls, a2t, a2t_len);
            if (n > 0) {
                memmove(a2t, a2t + n, a2t_len - (size_t)n);
                a2t_len -= (size_t)n;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                break;   /* the TLS stream failed */
            }
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR) && !tls_eof &&
            t2a_len < RELAY_BUF) {
            ssize_t n = read(tls, t2a + t2a_len, RELAY_BUF - t2a_len);
            if (n > 0)
                t2a_len += (size_t)n;
            else if (n == 0)
                tls_eof = 1;
            else if (errno != EAGAIN && errno != EINTR)
                break;
        }
        if (t2a_len > 0 && (p[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = send(app, t2a, t2a_len, MSG_NOSIGNAL);
            if (n > 0) {
                memmove(t2a, t2a + n, t2a_len - (size_t)n);
                t2a_len -= (size_t)n;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                break;   /* every plaintext end is closed */
            }
        }
    }
}

/* In the relay process. */
static void
become_relay(struct conn *c, int tls, int app)
{
    int keep[3] = {tls, app, 2};
    sigset_t all;

    (void)setsid();
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    /* fd 2 stays for log lines unless it is part of the connection */
    if (fdtable_peek(2) == c)
        keep[2] = -1;
    close_all_but(keep, 3);
    /* only the relay's own descriptor refers to the connection now */
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < c->nfds; i++) {
        int ok;
        if (fdtable_peek(c->fds[i]) == c)
            (void)fdtable_exchange(c->fds[i], NULL, &ok);
    }
    int ok;
    (void)fdtable_exchange(tls, c, &ok);
    owner_give(c->owner, owner_self());
    c->fd = tls;
    c->fds[0] = tls;
    c->nfds = 1;
    c->fdrefs = 1;
    c->user_nonblock = 1;
    if (c->ssl != NULL) {
        BIO *b = SSL_get_rbio(c->ssl);
        if (b != NULL)
            BIO_set_data(b, (void *)(intptr_t)tls);
    }
    pthread_mutex_unlock(&c->lock);
    (void)real.fcntl(app, F_SETFL, real.fcntl(app, F_GETFL) | O_NONBLOCK);
    log_flow("relay %ld serves fd %d", (long)owner_self(), tls);
    relay_run(tls, app);
    (void)close(tls);      /* close_notify, through the hook */
    _exit(0);
}

/* Put end on every fd of fds, keeping each one's close-on-exec flag. */
static void
replace_fds(struct conn *c, const int *fds, int nfds, int end)
{
    for (int i = 0; i < nfds; i++) {
        int fdflags = real.fcntl(fds[i], F_GETFD);
        conn_forget_fd(c, fds[i]);
        if (fdflags >= 0 && (fdflags & FD_CLOEXEC))
            (void)real.dup3(end, fds[i], O_CLOEXEC);
        else
            (void)real.dup2(end, fds[i]);
    }
}

int
relay_handoff(struct conn *c)
{
    int sv[2], fds[TLSSHIM_NELEMS(c->fds)], nfds, tls;
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pthread_mutex_lock(&c->lock);
    nfds = c->nfds;
    memcpy(fds, c->fds, sizeof(int) * (size_t)nfds);
    tls = c->fd;
    if (c->state == CONN_FAILED || owner_claim(c->owner) < 0) {
        /* Another process owns the stream (or it failed): this process's
         * fds become dead ends rather than a way into it. */
        pthread_mutex_unlock(&c->lock);
        real.close(sv[1]);
        replace_fds(c, fds, nfds, sv[0]);
        real.close(sv[0]);
        log_flow("fd %d: connection not ours to relay; fds closed off", tls);
        return 0;
    }
    /* The relay needs its own descriptor for the socket: the program's
     * numbers are about to become the plaintext ends. */
    int keep = real.fcntl(tls, F_DUPFD_CLOEXEC, 3);
    if (keep < 0) {
        int e = errno;
        pthread_mutex_unlock(&c->lock);
        real.close(sv[0]);
        real.close(sv[1]);
        return -e;
    }
    pid = fork();
    if (pid == 0) {
        pid_t grandchild = fork();
        if (grandchild != 0)
            _exit(grandchild < 0);
        pthread_mutex_unlock(&c->lock);
        real.close(sv[0]);
        become_relay(c, keep, sv[1]);
    }
    pthread_mutex_unlock(&c->lock);
    real.close(keep);
    real.close(sv[1]);
    if (pid < 0) {
        int e = errno;
        real.close(sv[0]);
        return -e;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    replace_fds(c, fds, nfds, sv[0]);
    real.close(sv[0]);
    log_flow("fd %d: handed to a relay", tls);
    return 0;
}

struct escape_list {
    struct conn *conns[256];
    int n;
};

static void
collect(int fd, struct conn *c, void *arg)
{
    struct escape_list *l = arg;
    int flags = real.fcntl(fd, F_GETFD);

    if (flags < 0 || (flags & FD_CLOEXEC))
        return;
    for (int i = 0; i < l->n; i++)
        if (l->conns[i] == c)
            return;
    if (l->n < (int)TLSSHIM_NELEMS(l->conns)) {
        struct conn *got = conn_get(fd);
        if (got != NULL)
            l->conns[l->n++] = got;
    }
}

static void
close_inherited(int fd, struct conn *c, void *arg)
{
    int flags = real.fcntl(fd, F_GETFD);

    if (flags >= 0 && !(flags & FD_CLOEXEC)) {
        real.close(fd);
        *(int *)arg += 1;
    }
}

void
relay_escape_inherited(void)
{
    struct escape_list l;

    /*
     * In a vfork() child (memory shared with the suspended parent, which
     * no fork handler told us about), nothing of ours may change: no
     * relay can be made.  The inherited TLS fds are closed in the
     * child's own descriptor table instead, so the new image cannot
     * write plaintext into them (fail closed).
     */
    if (getpid() != owner_self()) {
        int closed = 0;
        fdtable_foreach(close_inherited, &closed);
        if (closed > 0)
            log_warn("exec after vfork: %d inherited TLS connection(s) "
                     "closed in the child (no relay can be made there)",
                     closed);
        return;
    }
    l.n = 0;
    fdtable_foreach(collect, &l);
    for (int i = 0; i < l.n; i++) {
        int rv = relay_handoff(l.conns[i]);
        if (rv < 0)
            log_error("cannot hand a TLS connection to a relay: %s",
                      strerror(-rv));
        conn_put(l.conns[i]);
    }
}
