/*
 * Readiness translation (SPEC section 5, DESIGN.md "Readiness").  A
 * tracked fd is reported readable only when a read will not block
 * (plaintext, EOF or an error pending) and writable only once its
 * handshake is done; in between, the kernel is asked for whatever the
 * TLS layer actually waits for.  poll, ppoll, select and pselect share one
 * loop; epoll keeps the program's registrations of tracked fds so that it
 * can report TLS-level readiness the kernel cannot see and re-arm the
 * kernel with the direction the handshake needs.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>

#include "conn.h"
#include "fdtable.h"
#include "shim.h"

#define STACK_FDS 64

static int
has_tracked(const struct pollfd *fds, nfds_t n)
{
    for (nfds_t i = 0; i < n; i++)
        if (fds[i].fd >= 0 && fdtable_peek(fds[i].fd) != NULL)
            return 1;
    return 0;
}

static int64_t
min_deadline(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

static struct timespec *
ts_until(int64_t deadline, struct timespec *ts)
{
    if (deadline < 0)
        return NULL;
    int64_t left = deadline - util_now_ms();
    if (left < 0)
        left = 0;
    ts->tv_sec = left / 1000;
    ts->tv_nsec = (left % 1000) * 1000000;
    return ts;
}

/*
 * The shared poll loop.  deadline -1 waits forever.  Returns the number of
 * entries with revents, or -1 with errno.
 */
static int
poll_tracked(struct pollfd *fds, nfds_t n, int64_t deadline,
             const sigset_t *mask)
{
    struct pollfd stack_local[STACK_FDS], *local = stack_local;
    short stack_ready[STACK_FDS], *ready = stack_ready;
    int rv = -1;

    if (n > STACK_FDS) {
        local = calloc(n, sizeof(*local));
        ready = calloc(n, sizeof(*ready));
        if (local == NULL || ready == NULL) {
            errno = ENOMEM;
            goto out;
        }
    }
    for (;;) {
        int nready = 0;
        int64_t wake = deadline;

        for (nfds_t i = 0; i < n; i++) {
            struct conn *c = fds[i].fd >= 0 ? conn_get(fds[i].fd) : NULL;
            local[i] = fds[i];
            local[i].revents = 0;
            ready[i] = 0;
            if (c == NULL)
                continue;
            short k;
            int64_t dl;
            ready[i] = conn_poll_check(c, fds[i].events, 0, &k, &dl);
            conn_put(c);
            if (ready[i]) {
                nready++;
                local[i].events = 0;
            } else {
                local[i].events = k;
                wake = min_deadline(wake, dl);
            }
        }
        struct timespec ts0 = {0, 0}, ts;
        int k = real.ppoll(local, n, nready ? &ts0 : ts_until(wake, &ts),
                           mask);
        if (k < 0) {
            if (nready == 0)
                goto out;
            /* report what the TLS layer already has */
            for (nfds_t i = 0; i < n; i++)
                local[i].revents = 0;
        }
        int count = 0;
        for (nfds_t i = 0; i < n; i++) {
            short r = local[i].revents;
            struct conn *c = fds[i].fd >= 0 && (ready[i] || r)
                                 ? conn_get(fds[i].fd)
                                 : NULL;
            if (c != NULL) {
                if (!ready[i] && r) {
                    short kk;
                    int64_t dl;
                    ready[i] = conn_poll_check(c, fds[i].events, r, &kk, &dl);
                }
                conn_put(c);
                r = ready[i];
            }
            fds[i].revents = r & (fds[i].events | POLLERR | POLLHUP | POLLNVAL);
            if (fds[i].revents)
                count++;
        }
        if (count > 0 || (deadline >= 0 && util_now_ms() >= deadline)) {
            rv = count;
            goto out;
        }
        /* a tracked fd woke the kernel without plaintext (a ticket) or a
         * handshake deadline passed: wait again */
    }
out:
    if (local != stack_local)
        free(local);
    if (ready != stack_ready)
        free(ready);
    return rv;
}

static int64_t
deadline_of_ms(int timeout)
{
    return timeout < 0 ? -1 : util_now_ms() + timeout;
}

static int64_t
deadline_of_ts(const struct timespec *ts)
{
    if (ts == NULL)
        return -1;
    return util_now_ms() + (int64_t)ts->tv_sec * 1000 + ts->tv_nsec / 1000000;
}

HOOK int
poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (real.poll == NULL)
        real_init();
    if (!has_tracked(fds, n))
        return real.poll(fds, n, timeout);
    return poll_tracked(fds, n, deadline_of_ms(timeout), NULL);
}

HOOK int
__poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    if (fdslen / sizeof(*fds) < n)
        abort();   /* what glibc's own check does */
    return poll(fds, n, timeout);
}

HOOK int
ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts,
      const sigset_t *mask)
{
    if (real.ppoll == NULL)
        real_init();
    if (!has_tracked(fds, n))
        return real.ppoll(fds, n, ts, mask);
    return poll_tracked(fds, n, deadline_of_ts(ts), mask);
}

HOOK int
__ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts,
            const sigset_t *mask, size_t fdslen)
{
    if (fdslen / sizeof(*fds) < n)
        abort();
    return ppoll(fds, n, ts, mask);
}

/* select over the poll loop when a tracked fd is in a set. */
static int
select_tracked(int nfds, fd_set *rd, fd_set *wr, fd_set *ex,
               int64_t deadline, const sigset_t *mask, int *handled)
{
    struct pollfd stack_fds[STACK_FDS], *pfds = stack_fds;
    nfds_t n = 0;
    int tracked = 0, rv = -1;

    *handled = 0;
    if (nfds < 0 || nfds > FD_SETSIZE)
        return -1;
    for (int fd = 0; fd < nfds; fd++) {
        if ((rd && FD_ISSET(fd, rd)) || (wr && FD_ISSET(fd, wr)) ||
            (ex && FD_ISSET(fd, ex))) {
            n++;
            if (fdtable_peek(fd) != NULL)
                tracked = 1;
        }
    }
    if (!tracked)
        return -1;
    *handled = 1;
    if (n > STACK_FDS && (pfds = calloc(n, sizeof(*pfds))) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    n = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = 0;
        if (rd && FD_ISSET(fd, rd))
            ev |= POLLIN;
        if (wr && FD_ISSET(fd, wr))
            ev |= POLLOUT;
        if (ex && FD_ISSET(fd, ex))
            ev |= POLLPRI;
        if (ev) {
            pfds[n].fd = fd;
            pfds[n].events = ev;
            pfds[n].revents = 0;
            n++;
        }
    }
    if (poll_tracked(pfds, n, deadline, mask) < 0)
        goto out;
    for (nfds_t i = 0; i < n; i++) {
        if (pfds[i].revents & POLLNVAL) {
            errno = EBADF;
            goto out;
        }
    }
    if (rd)
        FD_ZERO(rd);
    if (wr)
        FD_ZERO(wr);
    if (ex)
        FD_ZERO(ex);
    rv = 0;
    for (nfds_t i = 0; i < n; i++) {
        short r = pfds[i].revents;
        if (rd && (pfds[i].events & POLLIN) && (r & (POLLIN | POLLHUP | POLLERR))) {
            FD_SET(pfds[i].fd, rd);
            rv++;
        }
        if (wr && (pfds[i].events & POLLOUT) && (r & (POLLOUT | POLLERR))) {
            FD_SET(pfds[i].fd, wr);
            rv++;
        }
        if (ex && (pfds[i].events & POLLPRI) && (r & POLLPRI)) {
            FD_SET(pfds[i].fd, ex);
            rv++;
        }
    }
out:
    if (pfds != stack_fds)
        free(pfds);
    return rv;
}

HOOK int
select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
    int handled, rv;
    int64_t deadline;

    if (real.select == NULL)
        real_init();
    deadline = tv == NULL ? -1
                          : util_now_ms() + (int64_t)tv->tv_sec * 1000 +
                                tv->tv_usec / 1000;
    rv = select_tracked(nfds, rd, wr, ex, deadline, NULL, &handled);
    if (!handled)
        return real.select(nfds, rd, wr, ex, tv);
    if (tv != NULL) {
        /* Linux reports the time not slept */
        int64_t left = deadline - util_now_ms();
        if (left < 0)
            left = 0;
        tv->tv_sec = left / 1000;
        tv->tv_usec = (left % 1000) * 1000;
    }
    return rv;
}

HOOK int
__select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
    return select(nfds, rd, wr, ex, tv);
}

HOOK int
pselect(int nfds, fd_set *rd, fd_set *wr, fd_set *ex,
        const struct timespec *ts, const sigset_t *mask)
{
    int handled, rv;

    if (real.pselect == NULL)
        real_init();
    rv = select_tracked(nfds, rd, wr, ex, deadline_of_ts(ts), mask, &handled);
    if (!handled)
        return real.pselect(nfds, rd, wr, ex, ts, mask);
    return rv;
}

/* --- epoll --------------------------------------------------------------- */

struct epreg {
    int epfd, fd;
    uint32_t events;          /* the program's interest */
    uint32_t kernel;          /* what the kernel is armed with */
    epoll_data_t data;
};

/* guarded by ep_lock; ep_count is read lock-free as a fast-path hint */
static pthread_mutex_t ep_lock = PTHREAD_MUTEX_INITIALIZER;
static struct epreg *ep_regs;
static size_t ep_n, ep_cap;
static atomic_size_t ep_count;

static struct epreg *
ep_find(int epfd, int fd)
{
    for (size_t i = 0; i < ep_n; i++)
        if (ep_regs[i].epfd == epfd && ep_regs[i].fd == fd)
            return &ep_regs[i];
    return NULL;
}

static void
ep_remove_at(size_t i)
{
    ep_regs[i] = ep_regs[--ep_n];
    atomic_store(&ep_count, ep_n);
}

void
shim_epoll_forget_fd(int fd)
{
    if (atomic_load_explicit(&ep_count, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&ep_lock);
    for (size_t i = 0; i < ep_n;) {
        if (ep_regs[i].fd == fd || ep_regs[i].epfd == fd)
            ep_remove_at(i);
        else
            i++;
    }
    pthread_mutex_unlock(&ep_lock);
}

/* The kernel interest for a tracked fd: what its TLS layer waits for. */
static uint32_t
kernel_interest(struct conn *c, uint32_t events)
{
    short k;
    int64_t dl;
    short want = (short)(events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP));

    if (conn_poll_check(c, want, 0, &k, &dl))
        k = (short)(want & (EPOLLIN | EPOLLOUT));
    return (uint32_t)k | EPOLLRDHUP;
}

HOOK int
epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    struct conn *c;
    int rv;

    if (real.epoll_ctl == NULL)
        real_init();
    if ((c = conn_get(fd)) == NULL)
        return real.epoll_ctl(epfd, op, fd, ev);
    if (op == EPOLL_CTL_DEL) {
        pthread_mutex_lock(&ep_lock);
        for (size_t i = 0; i < ep_n; i++)
            if (ep_regs[i].epfd == epfd && ep_regs[i].fd == fd) {
                ep_remove_at(i);
                break;
            }
        pthread_mutex_unlock(&ep_lock);
        conn_put(c);
        return real.epoll_ctl(epfd, op, fd, ev);
    }
    if (ev == NULL) {
        conn_put(c);
        errno = EFAULT;
        return -1;
    }
    struct epoll_event kev = *ev;
    kev.events = kernel_interest(c, ev->events);
    conn_put(c);
    pthread_mutex_lock(&ep_lock);
    rv = real.epoll_ctl(epfd, op, fd, &kev);
    if (rv == 0) {
        struct epreg *r = ep_find(epfd, fd);
        if (r == NULL) {
            if (ep_n == ep_cap) {
                size_t cap = ep_cap ? ep_cap * 2 : 16;
                struct epreg *n = realloc(ep_regs, cap * sizeof(*n));
                if (n == NULL) {
                    real.epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &kev);
                    pthread_mutex_unlock(&ep_lock);
                    errno = ENOMEM;
                    return -1;
                }
                ep_regs = n;
                ep_cap = cap;
            }
            r = &ep_regs[ep_n++];
            atomic_store(&ep_count, ep_n);
        }
        r->epfd = epfd;
        r->fd = fd;
        r->events = ev->events;
        r->kernel = kev.events;
        r->data = ev->data;
    }
    pthread_mutex_unlock(&ep_lock);
    return rv;
}

static int
epoll_tracked(int epfd, struct epoll_event *out, int max, int64_t deadline,
              const sigset_t *mask)
{
    for (;;) {
        struct epreg regs[256];
        int nregs = 0, nout = 0;
        int64_t wake = deadline;

        pthread_mutex_lock(&ep_lock);
        for (size_t i = 0; i < ep_n && nregs < (int)TLSSHIM_NELEMS(regs); i++)
            if (ep_regs[i].epfd == epfd)
                regs[nregs++] = ep_regs[i];
        pthread_mutex_unlock(&ep_lock);

        short ready[256];
        for (int i = 0; i < nregs; i++) {
            struct conn *c = conn_get(regs[i].fd);
            short k;
            int64_t dl;
            ready[i] = 0;
            if (c == NULL)
                continue;
            short want = (short)(regs[i].events &
                                 (EPOLLIN | EPOLLOUT | EPOLLRDHUP));
            ready[i] = conn_poll_check(c, want, 0, &k, &dl);
            conn_put(c);
            if (ready[i] && nout < max) {
                out[nout].events = (uint32_t)ready[i];
                out[nout].data = regs[i].data;
                nout++;
            } else if (!ready[i]) {
                wake = min_deadline(wake, dl);
                uint32_t kern = (uint32_t)k | EPOLLRDHUP;
                if (kern != regs[i].kernel) {
                    struct epoll_event kev = {.events = kern,
                                              .data = regs[i].data};
                    pthread_mutex_lock(&ep_lock);
                    struct epreg *r = ep_find(epfd, regs[i].fd);
                    if (r != NULL &&
                        real.epoll_ctl(epfd, EPOLL_CTL_MOD, regs[i].fd,
                                       &kev) == 0)
                        r->kernel = kern;
                    pthread_mutex_unlock(&ep_lock);
                }
            }
        }
        if (nout >= max)
            return nout;
        struct epoll_event kevs[64];
        int room = max - nout < 64 ? max - nout : 64;
        struct timespec ts0 = {0, 0}, ts;
        const struct timespec *t = nout ? &ts0 : ts_until(wake, &ts);
        int k = real.epoll_pwait2 != NULL
                    ? real.epoll_pwait2(epfd, kevs, room, t, mask)
                    : real.epoll_pwait(epfd, kevs, room,
                                       t == NULL ? -1
                                                 : (int)(t->tv_sec * 1000 +
                                                         t->tv_nsec / 1000000),
                                       mask);
        if (k < 0) {
            if (nout > 0)
                return nout;
            return -1;
        }
        for (int j = 0; j < k; j++) {
            int idx = -1;
            for (int i = 0; i < nregs; i++)
                if (regs[i].data.u64 == kevs[j].data.u64) {
                    idx = i;
                    break;
                }
            if (idx < 0) {
                out[nout++] = kevs[j];
                continue;
            }
            if (ready[idx])
                continue;   /* already reported */
            struct conn *c = conn_get(regs[idx].fd);
            if (c == NULL)
                continue;
            short kk;
            int64_t dl;
            short want = (short)(regs[idx].events &
                                 (EPOLLIN | EPOLLOUT | EPOLLRDHUP));
            short r = conn_poll_check(c, want, (short)kevs[j].events, &kk,
                                      &dl);
            conn_put(c);
            if (r) {
                ready[idx] = r;
                out[nout].events = (uint32_t)r;
                out[nout].data = regs[idx].data;
                nout++;
            }
        }
        if (nout > 0 || (deadline >= 0 && util_now_ms() >= deadline))
            return nout;
    }
}

HOOK int
epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    if (real.epoll_wait == NULL)
        real_init();
    if (atomic_load_explicit(&ep_count, memory_order_relaxed) == 0 ||
        max <= 0)
        return real.epoll_wait(epfd, ev, max, timeout);
    return epoll_tracked(epfd, ev, max, deadline_of_ms(timeout), NULL);
}

HOOK int
epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout,
            const sigset_t *mask)
{
    if (real.epoll_pwait == NULL)
        real_init();
    if (atomic_load_explicit(&ep_count, memory_order_relaxed) == 0 ||
        max <= 0)
        return real.epoll_pwait(epfd, ev, max, timeout, mask);
    return epoll_tracked(epfd, ev, max, deadline_of_ms(timeout), mask);
}

HOOK int
epoll_pwait2(int epfd, struct epoll_event *ev, int max,
             const struct timespec *ts, const sigset_t *mask)
{
    if (real.epoll_pwait2 == NULL)
        real_init();
    if (real.epoll_pwait2 == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (atomic_load_explicit(&ep_count, memory_order_relaxed) == 0 ||
        max <= 0)
        return real.epoll_pwait2(epfd, ev, max, ts, mask);
    return epoll_tracked(epfd, ev, max, deadline_of_ts(ts), mask);
}
