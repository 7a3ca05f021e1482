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

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

/*
 * Hand-outs.  Other processes may still hold the raw TLS socket (the
 * shell that forked the child which made this relay, say) and escape it
 * later: they ask the relay, over an abstract unix socket named after its
 * pid, for a copy of the plaintext end instead of making a second relay.
 * The relay keeps that copy while a process that may ask is alive; then
 * it drops it, so that the end's EOF means every holder closed it.
 */
#define WATCH_MAX 64

struct holder {
    int hold;                 /* the copy of the plaintext end, or -1 */
    int listener;             /* where requests arrive, or -1 */
    pid_t watch[WATCH_MAX];   /* processes that may ask */
    int nwatch;
    unsigned long sock_ino;   /* the TLS socket's inode (0: unknown) */
};

static int
pid_alive(pid_t pid)
{
    char path[64], buf[256];
    int fd;
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    real.close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp != NULL && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

/* Whether pid still has a descriptor for the TLS socket: only then can it
 * escape it later and ask.  (An inetd-style server that closed its copy
 * right after forking the handler lives on, but holds nothing.)  When its
 * descriptors cannot be read, it is assumed to hold it. */
static int
pid_holds(pid_t pid, unsigned long ino)
{
    char path[64], link[64], want[64];
    struct dirent *d;
    DIR *dir;
    int holds = 0;

    if (ino == 0)
        return 1;
    snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
    snprintf(want, sizeof(want), "socket:[%lu]", ino);
    if ((dir = opendir(path)) == NULL)
        return errno != ENOENT;
    while (!holds && (d = readdir(dir)) != NULL) {
        if (d->d_name[0] == '.')
            continue;
        ssize_t n = readlinkat(dirfd(dir), d->d_name, link, sizeof(link) - 1);
        if (n > 0) {
            link[n] = '\0';
            holds = strcmp(link, want) == 0;
        }
    }
    closedir(dir);
    return holds;
}

static void
watch_add(struct holder *h, pid_t pid)
{
    if (pid <= 1)
        return;
    for (int i = 0; i < h->nwatch; i++)
        if (h->watch[i] == pid)
            return;
    if (h->nwatch < WATCH_MAX)
        h->watch[h->nwatch++] = pid;
}

static void
holder_check(struct holder *h)
{
    int alive = 0;

    if (h->hold < 0)
        return;
    for (int i = 0; i < h->nwatch; i++)
        if (pid_alive(h->watch[i]) && pid_holds(h->watch[i], h->sock_ino))
            h->watch[alive++] = h->watch[i];
    h->nwatch = alive;
    if (alive == 0) {
        real.close(h->hold);
        real.close(h->listener);
        h->hold = h->listener = -1;
    }
}

static void
relay_name(pid_t pid, struct sockaddr_un *sun, socklen_t *len)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    int n = snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1,
                     "tlsshim-relay-%ld", (long)pid);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/* Answer one request: the asker's parent may hold the socket too. */
static void
holder_serve(struct holder *h)
{
    int cfd = real.accept4(h->listener, NULL, NULL, SOCK_CLOEXEC);
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    int32_t ppid = 0;
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = "e", .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = cbuf,
                         .msg_controllen = sizeof(cbuf)};

    if (cfd < 0)
        return;
    struct pollfd p = {.fd = cfd, .events = POLLIN};
    if (real.poll(&p, 1, 1000) == 1 &&
        real.recv(cfd, &ppid, sizeof(ppid), 0) == sizeof(ppid) &&
        getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 &&
        cred.uid == getuid()) {
        watch_add(h, cred.pid);
        watch_add(h, (pid_t)ppid);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &h->hold, sizeof(int));
        (void)sendmsg(cfd, &msg, MSG_NOSIGNAL);
    }
    real.close(cfd);
}

/* Copy until both directions ended.  Runs in the relay process; the TLS
 * fd goes through the hooks (poll, read, write, shutdown, close). */
static void
relay_run(int tls, int app, struct holder *h)
{
    static unsigned char a2t[RELAY_BUF], t2a[RELAY_BUF];
    size_t a2t_len = 0, t2a_len = 0;
    int app_eof = 0, tls_eof = 0, tls_shut = 0, app_shut = 0;

    for (;;) {
        holder_check(h);
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
        struct pollfd p[3] = {
            {.fd = app,
             .events = (short)((!app_eof && a2t_len < RELAY_BUF ? POLLIN : 0) |
                               (t2a_len > 0 ? POLLOUT : 0))},
            {.fd = tls,
             .events = (short)((!tls_eof && t2a_len < RELAY_BUF ? POLLIN : 0) |
                               (a2t_len > 0 ? POLLOUT : 0))},
            {.fd = h->listener, .events = POLLIN},
        };
        if (poll(p, h->listener >= 0 ? 3 : 2, h->hold >= 0 ? 1000 : -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (h->listener >= 0 && (p[2].revents & POLLIN))
            holder_serve(h);
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

/* In the relay process.  hold: a copy of the plaintext end to hand out;
 * escaper and its parent may still hold the raw socket (0: nobody does,
 * and nothing is kept to hand out). */
static void
become_relay(struct conn *c, int tls, int app, int hold, pid_t escaper,
             pid_t escaper_parent)
{
    struct holder h = {.hold = hold, .listener = -1};
    struct stat st;
    struct sockaddr_un sun;
    socklen_t sunlen;
    int keep[4] = {tls, app, hold, 2};
    sigset_t all;

    (void)setsid();
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    /* The relay keeps a log file, but never the program's stderr: a
     * pipeline reading it (prog 2>&1 | grep) must see its EOF when the
     * program ends, not when the relay does. */
    keep[3] = log_fd_in_use() > 2 ? log_fd_in_use() : -1;
    close_all_but(keep, 4);
    shim_epoll_drop_all();
    if (keep[3] < 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0 && null != 2) {
            (void)real.dup2(null, 2);
            real.close(null);
        }
    }
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
    conn_bio_set_fd(c->ssl, tls);
    pthread_mutex_unlock(&c->lock);
    if (fstat(tls, &st) == 0)
        h.sock_ino = (unsigned long)st.st_ino;
    watch_add(&h, escaper);
    watch_add(&h, escaper_parent);
    relay_name(owner_self(), &sun, &sunlen);
    if (h.nwatch > 0)
        h.listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h.listener >= 0 &&
        (bind(h.listener, (struct sockaddr *)&sun, sunlen) < 0 ||
         listen(h.listener, 16) < 0)) {
        real.close(h.listener);
        h.listener = -1;
    }
    if (h.listener < 0) {
        real.close(h.hold);
        h.hold = -1;
    } else {
        owner_set_relay(c->owner, owner_self());
    }
    (void)real.fcntl(app, F_SETFL, real.fcntl(app, F_GETFL) | O_NONBLOCK);
    log_flow("relay %ld serves fd %d", (long)owner_self(), tls);
    relay_run(tls, app, &h);
    (void)close(tls);      /* close_notify, through the hook */
    _exit(0);
}

/* Ask relay pid for a copy of its plaintext end; -1 if it cannot. */
static int
relay_request(pid_t pid)
{
    struct sockaddr_un sun;
    socklen_t sunlen;
    int32_t ppid = (int32_t)getppid();
    char cbuf[CMSG_SPACE(sizeof(int))], byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = cbuf,
                         .msg_controllen = sizeof(cbuf)};
    int s, fd = -1;

    relay_name(pid, &sun, &sunlen);
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    if (real.connect(s, (struct sockaddr *)&sun, sunlen) == 0 &&
        real.send(s, &ppid, sizeof(ppid), MSG_NOSIGNAL) == sizeof(ppid)) {
        struct pollfd p = {.fd = s, .events = POLLIN};
        if (real.poll(&p, 1, 2000) == 1 &&
            real.recvmsg(s, &msg, MSG_CMSG_CLOEXEC) == 1) {
            struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
            if (cm != NULL && cm->cmsg_level == SOL_SOCKET &&
                cm->cmsg_type == SCM_RIGHTS &&
                cm->cmsg_len == CMSG_LEN(sizeof(int)))
                memcpy(&fd, CMSG_DATA(cm), sizeof(int));
        }
    }
    real.close(s);
    return fd;
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
        pthread_mutex_unlock(&c->lock);
        real.close(sv[1]);
        /* One relay per connection, ever: if another process made it (or
         * is making it), take a copy of its plaintext end. */
        int end = -1;
        for (int tries = 0; c->state != CONN_FAILED && tries < 20; tries++) {
            pid_t rp = owner_relay(c->owner);
            if (rp != 0) {
                end = relay_request(rp);
                break;
            }
            usleep(50000);
        }
        if (end >= 0) {
            real.close(sv[0]);
            replace_fds(c, fds, nfds, end);
            real.close(end);
            log_flow("fd %d: joined the connection's relay", tls);
            return 0;
        }
        /* Another process owns the stream (or it failed): this process's
         * fds become dead ends rather than a way into it. */
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
    /* Other processes (the parent, children forked before now) may hold
     * the raw socket and ask for the plaintext end only if the connection
     * existed at a fork.  Otherwise the relay keeps no copy of the end,
     * so the program's last close of it (fclose, say) ends the connection
     * at once, close_notify included, not when the program exits. */
    pid_t escaper = c->forked ? owner_self() : 0;
    pid_t escaper_parent = c->forked ? getppid() : 0;
    shim_forking_relay = 1;
    pid = fork();
    if (pid == 0) {
        pid_t grandchild = fork();
        if (grandchild != 0)
            _exit(grandchild < 0);
        pthread_mutex_unlock(&c->lock);
        become_relay(c, keep, sv[1], sv[0], escaper, escaper_parent);
    }
    shim_forking_relay = 0;
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
    if (shim_in_vfork_child()) {
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
