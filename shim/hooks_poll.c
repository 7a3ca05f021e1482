/*
 * Readiness translation (SPEC section 5, DESIGN.md "Readiness").  A
 * tracked fd is reported readable only when a read will not block
 * (plaintext, EOF or an error pending) and writable only once its
 * handshake is done; in between, the kernel is asked for whatever the
 * TLS layer actually waits for.  poll, ppoll, select and pselect share one
 * loop; epoll keeps the program's registrations of tracked fds (interest,
 * flags, data) and arms the kernel itself, edge-triggered, so that it can
 * report TLS-level readiness the kernel cannot see, emulate
 * level-triggered, edge-triggered and one-shot registrations over it, and
 * wait for the direction the handshake needs.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>

#include "conn.h"
#include "fdtable.h"
#include "shim.h"

#define STACK_FDS 64

/* From the epoll section: registrations of tracked fds in use, and the
 * note that poll and select watch an epoll fd. */
static atomic_uint ep_live;
static void note_polled(const struct pollfd *fds, nfds_t n);
static void note_watched(int fd);

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
            /* Ready for part of the interest: still ask the kernel about
             * the rest in the same call, or an echo that arrived while
             * the socket was writable would go unseen. */
            if (ready[i])
                k = (short)(fds[i].events & (POLLIN | POLLOUT) & ~ready[i]);
            if ((ready[i] & POLLOUT) && !(ready[i] & POLLERR)) {
                /* Writable needs room in the kernel's send buffer too, as
                 * on TCP: a blocking program would block in write(). */
                ready[i] &= (short)~POLLOUT;
                k |= POLLOUT;
            }
            local[i].events = k;
            if (ready[i])
                nready++;
            else
                wake = min_deadline(wake, dl);
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
                if (r && (fds[i].events & (POLLIN | POLLOUT | POLLRDHUP) &
                          ~ready[i])) {
                    short kk, more;
                    int64_t dl;
                    more = conn_poll_check(c, fds[i].events, r, &kk, &dl);
                    if (!(r & (POLLOUT | POLLERR | POLLHUP)) &&
                        !(more & POLLERR))
                        more &= (short)~POLLOUT;   /* no room in the kernel */
                    ready[i] |= more;
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
    note_polled(fds, n);
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
    note_polled(fds, n);
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

/*
 * fd_set bits, without the FD_* macros: under _FORTIFY_SOURCE they refuse
 * fds past FD_SETSIZE, while select() accepts larger sets a program
 * allocated itself (the kernel reads nfds bits).
 */
#define SET_BITS (8 * sizeof(unsigned long))

static inline int
set_has(const fd_set *set, int fd)
{
    const unsigned long *w = (const unsigned long *)(const void *)set;

    return set != NULL && ((w[fd / SET_BITS] >> (fd % SET_BITS)) & 1);
}

static inline void
set_add(fd_set *set, int fd)
{
    unsigned long *w = (unsigned long *)(void *)set;

    w[fd / SET_BITS] |= 1UL << (fd % SET_BITS);
}

/* Clear the words the kernel would write back for nfds. */
static void
set_clear(fd_set *set, int nfds)
{
    if (set != NULL)
        memset(set, 0, (((size_t)nfds + SET_BITS - 1) / SET_BITS) *
                           sizeof(unsigned long));
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
    if (nfds <= 0)
        return -1;   /* the kernel's EINVAL, or a plain sleep */
    int sets = atomic_load_explicit(&ep_live, memory_order_relaxed) != 0;
    for (int fd = 0; fd < nfds; fd++) {
        if (set_has(rd, fd) || set_has(wr, fd) || set_has(ex, fd)) {
            n++;
            if (fdtable_peek(fd) != NULL)
                tracked = 1;
            else if (sets)
                note_watched(fd);
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
        if (set_has(rd, fd))
            ev |= POLLIN;
        if (set_has(wr, fd))
            ev |= POLLOUT;
        if (set_has(ex, fd))
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
            /* the sets stay as they were, as with the kernel's EBADF */
            errno = EBADF;
            goto out;
        }
    }
    set_clear(rd, nfds);
    set_clear(wr, nfds);
    set_clear(ex, nfds);
    rv = 0;
    for (nfds_t i = 0; i < n; i++) {
        short r = pfds[i].revents;
        if (rd && (pfds[i].events & POLLIN) &&
            (r & (POLLIN | POLLHUP | POLLERR))) {
            set_add(rd, pfds[i].fd);
            rv++;
        }
        if (wr && (pfds[i].events & POLLOUT) && (r & (POLLOUT | POLLERR))) {
            set_add(wr, pfds[i].fd);
            rv++;
        }
        if (ex && (pfds[i].events & POLLPRI) && (r & POLLPRI)) {
            set_add(ex, pfds[i].fd);
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

/*
 * The program's registrations of tracked fds.  The kernel is armed
 * edge-triggered with what the TLS layer needs, and with our own tag as
 * the event data; the program's interest, flags and data live in a
 * struct epreg.  epoll_wait reports, in this order:
 *
 *  - registrations on the set's dirty list, checked at the TLS level
 *    without a kernel event: new ones (ADD, MOD), those the program did
 *    I/O on, level-triggered ones reported last time (the kernel re-checks
 *    those too), and those whose handshake deadline passed;
 *  - the kernel's events: a tag leads to its registration in O(1) (a pool
 *    index checked against the tag), anything else is an untracked fd's
 *    event and passes through as the kernel gave it.
 *
 * Edge-triggered registrations report a direction again only after the
 * program got EAGAIN on it or the kernel saw new bytes ("armed" bits), so
 * that a program that leaves data unread is not woken again and again,
 * while plaintext OpenSSL decrypted ahead (the kernel socket empty) is
 * still reported.  EPOLLONESHOT is handled here (the kernel registration
 * stays armed): one event, then nothing until EPOLL_CTL_MOD.
 * EPOLLEXCLUSIVE goes to the kernel with ADD; since the kernel refuses
 * MOD on such a registration, it is armed once for both directions.
 *
 * A thread blocked in the kernel while another makes a registration dirty
 * (a read that left plaintext in OpenSSL, a MOD re-arming a ONESHOT) is
 * woken by "kicking" the kernel registration: a MOD to EPOLLIN|EPOLLOUT,
 * which the kernel reports at once on a writable socket.
 *
 * A set can itself be watched: put in another epoll set (libuv's backend
 * fd embedded in another loop), or given to poll or select.  The kernel
 * then reports it readable only for kernel events, not for what waits in
 * the dirty list (plaintext OpenSSL holds while the socket is empty).  So
 * a watched set gets a "wake" eventfd in its kernel set, under its own
 * tag: it is signalled while the dirty list is not empty and drained
 * when epoll_wait looks at the list.  Sets nobody watches have none.
 * Watched is known from our own hooks: epoll fds made by epoll_create*
 * and ADDed to another set, or found in a poll or select call.  The
 * timers of handshake deadlines do not signal it: a nested set reports a
 * handshake timeout at the next event or wait on it.
 *
 * An epoll fd and its dup()s are one set (aliases); a registration made
 * through one fd is reported through any other.  An epoll fd that tlsshim
 * did not see made (inherited across exec) is not known as one, so dup()
 * of it makes a separate set: registrations of TLS sockets and waits must
 * then go through the same fd number.
 *
 * Locking: ep_lock guards the pools, the fd chains, the set table and a
 * registration's place (set, fd); set->lock guards the registration state
 * and the set's lists.  Order: ep_lock, then a set's lock.  Neither is
 * held across a connection call (those take the connection's lock and may
 * run OpenSSL).  Registrations and sets are pooled and never freed, so a
 * stale index or pointer is safe to look at; the tag says if it is still
 * the same registration.  ep_live and the table lookups let untracked
 * calls pass without any lock.
 */

#define EP_PAGE_BITS 10
#define EP_PAGE (1u << EP_PAGE_BITS)
#define EP_NPAGES 1024u          /* 1M fds, 1M registrations */
#define EP_TAG_MAGIC 0x9e37ull   /* top 16 bits of our kernel event data */
#define EP_TAG_SHIFT 48
#define EP_BATCH 64              /* registrations checked per round */
#define EP_KERNEL_MAX 256        /* events asked of the kernel per call */

#define EP_IN_SIDE (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR)
#define EP_OUT_SIDE (EPOLLOUT | EPOLLHUP | EPOLLERR)

/* fd -> value, two levels, read lock-free; written under ep_lock. */
struct sparse {
    _Atomic(_Atomic uintptr_t *) pages[EP_NPAGES];
};

static uintptr_t
sparse_get(struct sparse *t, int key)
{
    unsigned u = (unsigned)key;
    _Atomic uintptr_t *page;

    if (u >= EP_PAGE * EP_NPAGES)
        return 0;
    page = atomic_load_explicit(&t->pages[u >> EP_PAGE_BITS],
                                memory_order_acquire);
    if (page == NULL)
        return 0;
    return atomic_load_explicit(&page[u & (EP_PAGE - 1)],
                                memory_order_acquire);
}

static int
sparse_set(struct sparse *t, int key, uintptr_t v)
{
    unsigned u = (unsigned)key;
    _Atomic uintptr_t *page;

    if (u >= EP_PAGE * EP_NPAGES)
        return -1;
    page = atomic_load_explicit(&t->pages[u >> EP_PAGE_BITS],
                                memory_order_acquire);
    if (page == NULL) {
        if (v == 0)
            return 0;
        if ((page = calloc(EP_PAGE, sizeof(*page))) == NULL)
            return -1;
        atomic_store_explicit(&t->pages[u >> EP_PAGE_BITS], page,
                              memory_order_release);
    }
    atomic_store_explicit(&page[u & (EP_PAGE - 1)], v, memory_order_release);
    return 0;
}

/* Doubly linked lists of registrations by id (pool index + 1; 0: none). */
struct eplink {
    uint32_t prev, next;
};

struct eplist {
    uint32_t head, tail, n;
};

struct epset;

struct epreg {
    /* guarded by ep_lock */
    uint32_t fd_next;            /* next registration of the same fd */
    uint32_t free_next;
    uint16_t salt;               /* makes a reused slot's tag differ */
    /* written under ep_lock and the set's lock, read under either */
    _Atomic(struct epset *) set;
    _Atomic uint64_t tag;        /* kernel event data; 0 when free */
    int fd;
    const struct conn *conn;     /* identity only, never dereferenced */
    struct eplink in_set;
    /* guarded by set->lock */
    uint32_t gen;                /* bumped by MOD: older checks are void */
    uint32_t events;             /* the program's interest and flags */
    epoll_data_t data;
    uint32_t kernel;             /* what the kernel is armed with */
    uint32_t armed;              /* EPOLLET: sides that may be reported */
    uint32_t sticky;             /* EPOLLHUP/EPOLLERR seen */
    int disabled;                /* EPOLLONESHOT fired */
    int kicked;                  /* armed IN|OUT only to wake a waiter */
    int dirty;
    struct eplink in_dirty;
    int timed;
    struct eplink in_timers;
    int64_t deadline;            /* handshake deadline, when timed */
    uint64_t reported_call;      /* the epoll_wait call that reported it */
};

#define EP_ALIASES 8             /* fds of one epoll set (dup) */

struct epset {
    pthread_mutex_t lock;
    struct epset *all_next;      /* every set made, for fork; ep_lock */
    struct epset *free_next;     /* ep_lock */
    int epfd;                    /* one of epfds; ep_lock and lock */
    int epfds[EP_ALIASES];       /* ep_lock; nepfds 0: a free set */
    int nepfds;
    /* the wake eventfd (-1: none); written under ep_lock and lock */
    atomic_int wake_fd;
    int wake_pending;            /* signalled, not yet drained; lock */
    atomic_uint nregs;           /* written under both locks */
    struct eplist regs;          /* written under both locks */
    /* guarded by lock */
    struct eplist dirty;
    struct eplist timers;
    int64_t next_deadline;
    atomic_int waiters;          /* threads inside the kernel's wait */
};

/* What tlsshim knows about an fd number (ep_kinds). */
#define EPK_EPOLL 1u     /* an epoll fd made by epoll_create* (or a dup) */
#define EPK_NESTED 2u    /* watched by another epoll set, poll or select */
#define EPK_WAKE 4u      /* a set's wake eventfd */

/* kernel event data of the wake eventfds: our magic, registration 0 */
#define EP_WAKE_TAG (EP_TAG_MAGIC << EP_TAG_SHIFT)

static pthread_mutex_t ep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t ep_fork_once = PTHREAD_ONCE_INIT;
static struct sparse ep_sets;    /* epfd -> struct epset * */
static struct sparse ep_kinds;   /* fd -> EPK_* bits */
static atomic_int ep_any;        /* anything was ever recorded in them */
static struct sparse ep_chains;  /* fd -> id of its first registration */
static _Atomic(struct epreg *) ep_reg_pages[EP_NPAGES];
static atomic_uint ep_reg_count; /* slots ever made */
static uint32_t ep_reg_free;     /* ep_lock */
static struct epset *ep_set_all, *ep_set_free;  /* ep_lock */
static atomic_ullong ep_calls;

static struct epreg *
reg_of(uint32_t id)
{
    uint32_t i = id - 1;

    return &atomic_load_explicit(&ep_reg_pages[i >> EP_PAGE_BITS],
                                 memory_order_acquire)[i & (EP_PAGE - 1)];
}

static struct eplink *
link_of(uint32_t id, size_t off)
{
    return (struct eplink *)(void *)((char *)reg_of(id) + off);
}

static void
list_push(struct eplist *l, uint32_t id, size_t off, int front)
{
    struct eplink *k = link_of(id, off);

    if (front) {
        k->prev = 0;
        k->next = l->head;
        if (l->head)
            link_of(l->head, off)->prev = id;
        else
            l->tail = id;
        l->head = id;
    } else {
        k->next = 0;
        k->prev = l->tail;
        if (l->tail)
            link_of(l->tail, off)->next = id;
        else
            l->head = id;
        l->tail = id;
    }
    l->n++;
}

static void
list_remove(struct eplist *l, uint32_t id, size_t off)
{
    struct eplink *k = link_of(id, off);

    if (k->prev)
        link_of(k->prev, off)->next = k->next;
    else
        l->head = k->next;
    if (k->next)
        link_of(k->next, off)->prev = k->prev;
    else
        l->tail = k->prev;
    k->prev = k->next = 0;
    l->n--;
}

#define IN_SET offsetof(struct epreg, in_set)
#define IN_DIRTY offsetof(struct epreg, in_dirty)
#define IN_TIMERS offsetof(struct epreg, in_timers)

/* Make a watched set readable to whoever watches it.  Set lock held. */
static void
wake_signal(struct epset *s)
{
    int wfd = atomic_load(&s->wake_fd);
    uint64_t one = 1;

    if (wfd < 0 || s->wake_pending)
        return;
    if (real.write(wfd, &one, sizeof(one)) == (ssize_t)sizeof(one) ||
        errno == EAGAIN)
        s->wake_pending = 1;
}

/* epoll_wait is looking at the dirty list: no need to be readable for it
 * any more.  Set lock held. */
static void
wake_drain(struct epset *s)
{
    int wfd = atomic_load(&s->wake_fd);
    uint64_t count;

    if (wfd < 0 || !s->wake_pending)
        return;
    (void)real.read(wfd, &count, sizeof(count));
    s->wake_pending = 0;
}

/* Queue r for a TLS-level check at the next epoll_wait.  Set lock held. */
static void
dirty_push(struct epset *s, uint32_t id, int front)
{
    struct epreg *r = reg_of(id);

    if (r->dirty)
        return;
    r->dirty = 1;
    list_push(&s->dirty, id, IN_DIRTY, front);
    wake_signal(s);
}

static void
dirty_drop(struct epset *s, uint32_t id)
{
    struct epreg *r = reg_of(id);

    if (!r->dirty)
        return;
    r->dirty = 0;
    list_remove(&s->dirty, id, IN_DIRTY);
}

static void
timer_set(struct epset *s, uint32_t id, int64_t deadline)
{
    struct epreg *r = reg_of(id);

    if (deadline < 0) {
        if (r->timed) {
            r->timed = 0;
            list_remove(&s->timers, id, IN_TIMERS);
        }
        return;
    }
    if (!r->timed) {
        r->timed = 1;
        list_push(&s->timers, id, IN_TIMERS, 0);
    }
    r->deadline = deadline;
    if (s->next_deadline < 0 || deadline < s->next_deadline)
        s->next_deadline = deadline;
}

/* Registrations whose deadline passed become dirty.  Set lock held. */
static void
timers_due(struct epset *s)
{
    int64_t now, next = -1;

    if (s->timers.n == 0 || s->next_deadline < 0 ||
        (now = util_now_ms()) < s->next_deadline)
        return;
    for (uint32_t id = s->timers.head; id != 0;) {
        struct epreg *r = reg_of(id);
        uint32_t nx = r->in_timers.next;
        if (r->deadline <= now)
            dirty_push(s, id, 0);
        else if (next < 0 || r->deadline < next)
            next = r->deadline;
        id = nx;
    }
    s->next_deadline = next;
}

/*
 * Wake a thread blocked in the kernel's wait on s so that it checks r:
 * arm the kernel registration for both sides, which a writable (or
 * readable) socket reports at once.  Set lock held.
 */
static void
kick(struct epset *s, uint32_t id)
{
    struct epreg *r = reg_of(id);
    struct epoll_event kev;

    if (atomic_load(&s->waiters) == 0 || r->kicked ||
        (r->kernel & EPOLLEXCLUSIVE))
        return;
    memset(&kev, 0, sizeof(kev));
    kev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    kev.data.u64 = atomic_load(&r->tag);
    if (real.epoll_ctl(s->epfd, EPOLL_CTL_MOD, r->fd, &kev) == 0) {
        r->kernel = kev.events;
        r->kicked = 1;
    }
}

static void
ep_fork_prepare(void)
{
    pthread_mutex_lock(&ep_lock);
    for (struct epset *s = ep_set_all; s != NULL; s = s->all_next)
        pthread_mutex_lock(&s->lock);
}

static void
ep_fork_parent(void)
{
    for (struct epset *s = ep_set_all; s != NULL; s = s->all_next)
        pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&ep_lock);
}

static void
ep_fork_child(void)
{
    /* the parent's waiting threads do not exist here */
    for (struct epset *s = ep_set_all; s != NULL; s = s->all_next) {
        atomic_store(&s->waiters, 0);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&ep_lock);
}

static void
ep_fork_register(void)
{
    (void)pthread_atfork(ep_fork_prepare, ep_fork_parent, ep_fork_child);
}

static struct epset *
set_of(int epfd)
{
    return (struct epset *)sparse_get(&ep_sets, epfd);
}

static void forget_locked(int fd);

/* Set or clear kind bits of fd.  ep_lock held. */
static void
kind_change(int fd, uintptr_t set, uintptr_t clear)
{
    uintptr_t was = sparse_get(&ep_kinds, fd), now = (was & ~clear) | set;

    if (now != was && sparse_set(&ep_kinds, fd, now) == 0 && now != 0)
        atomic_store(&ep_any, 1);
}

/*
 * Give s its wake eventfd (see "A set can itself be watched" above), so
 * that what waits in its dirty list makes it readable in the kernel.
 * ep_lock held.
 */
static void
set_watch(struct epset *s)
{
    struct epoll_event kev;
    int wfd;

    if (atomic_load(&s->wake_fd) >= 0 ||
        (wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        return;
    memset(&kev, 0, sizeof(kev));
    kev.events = EPOLLIN;
    kev.data.u64 = EP_WAKE_TAG;
    forget_locked(wfd);   /* what an old fd of that number left */
    pthread_mutex_lock(&s->lock);
    if (real.epoll_ctl(s->epfd, EPOLL_CTL_ADD, wfd, &kev) < 0) {
        pthread_mutex_unlock(&s->lock);
        real.close(wfd);
        return;
    }
    kind_change(wfd, EPK_WAKE, 0);
    atomic_store(&s->wake_fd, wfd);
    s->wake_pending = 0;
    if (s->dirty.n > 0)
        wake_signal(s);
    pthread_mutex_unlock(&s->lock);
}

/* fd, an epoll fd, is watched by another set, poll or select.  Costs two
 * lookups unless it is one we did not know to be watched. */
static void
note_watched(int fd)
{
    struct epset *s = set_of(fd);
    uintptr_t kind = sparse_get(&ep_kinds, fd);

    if (!(kind & EPK_EPOLL) && s == NULL)
        return;
    if ((kind & EPK_NESTED) &&
        (s == NULL || atomic_load_explicit(&s->wake_fd,
                                           memory_order_relaxed) >= 0))
        return;
    pthread_mutex_lock(&ep_lock);
    kind_change(fd, EPK_NESTED, 0);
    if ((s = set_of(fd)) != NULL)
        set_watch(s);
    pthread_mutex_unlock(&ep_lock);
}

/* poll: epoll fds among fds are watched.  Only a set holding tracked
 * registrations needs to know, so this costs nothing until there is one. */
static void
note_polled(const struct pollfd *fds, nfds_t n)
{
    if (atomic_load_explicit(&ep_live, memory_order_relaxed) == 0)
        return;
    for (nfds_t i = 0; i < n; i++)
        if (fds[i].fd >= 0)
            note_watched(fds[i].fd);
}

/* The set of epfd, made if needed.  ep_lock held. */
static struct epset *
set_make(int epfd)
{
    struct epset *s = set_of(epfd);

    if (s != NULL)
        return s;
    (void)pthread_once(&ep_fork_once, ep_fork_register);
    if ((s = ep_set_free) != NULL) {
        ep_set_free = s->free_next;
    } else {
        if ((s = calloc(1, sizeof(*s))) == NULL)
            return NULL;
        pthread_mutex_init(&s->lock, NULL);
        s->all_next = ep_set_all;
        ep_set_all = s;
    }
    pthread_mutex_lock(&s->lock);
    s->epfd = epfd;
    s->epfds[0] = epfd;
    s->nepfds = 1;
    atomic_store(&s->wake_fd, -1);
    s->wake_pending = 0;
    memset(&s->regs, 0, sizeof(s->regs));
    memset(&s->dirty, 0, sizeof(s->dirty));
    memset(&s->timers, 0, sizeof(s->timers));
    s->next_deadline = -1;
    atomic_store(&s->nregs, 0);
    atomic_store(&s->waiters, 0);
    pthread_mutex_unlock(&s->lock);
    atomic_store(&ep_any, 1);
    if (sparse_set(&ep_sets, epfd, (uintptr_t)s) < 0) {
        s->nepfds = 0;
        s->free_next = ep_set_free;
        ep_set_free = s;
        return NULL;
    }
    if (sparse_get(&ep_kinds, epfd) & EPK_NESTED)
        set_watch(s);
    return s;
}

/* The registration of fd in s, or 0.  ep_lock held. */
static uint32_t
reg_find(struct epset *s, int fd)
{
    for (uint32_t id = (uint32_t)sparse_get(&ep_chains, fd); id != 0;
         id = reg_of(id)->fd_next)
        if (atomic_load(&reg_of(id)->set) == s)
            return id;
    return 0;
}

/* A free slot with a fresh tag, not yet linked anywhere.  ep_lock held. */
static uint32_t
reg_alloc(void)
{
    uint32_t id;
    struct epreg *r;

    if (ep_reg_free != 0) {
        id = ep_reg_free;
        ep_reg_free = reg_of(id)->free_next;
    } else {
        uint32_t i = atomic_load(&ep_reg_count);
        if (i >= EP_PAGE * EP_NPAGES)
            return 0;
        if (atomic_load(&ep_reg_pages[i >> EP_PAGE_BITS]) == NULL) {
            struct epreg *page = calloc(EP_PAGE, sizeof(*page));
            if (page == NULL)
                return 0;
            atomic_store(&ep_reg_pages[i >> EP_PAGE_BITS], page);
        }
        atomic_store(&ep_reg_count, i + 1);
        id = i + 1;
    }
    r = reg_of(id);
    r->salt++;
    return id;
}

static uint64_t
tag_for(uint32_t id)
{
    return (EP_TAG_MAGIC << EP_TAG_SHIFT) |
           ((uint64_t)reg_of(id)->salt << 32) | id;
}

/* Give a slot back that was never linked.  ep_lock held. */
static void
reg_unalloc(uint32_t id)
{
    reg_of(id)->free_next = ep_reg_free;
    ep_reg_free = id;
}

/* Unlink and free a registration.  ep_lock and the set's lock held. */
static void
reg_release(struct epset *s, uint32_t id)
{
    struct epreg *r = reg_of(id);
    uint32_t *prev, head = (uint32_t)sparse_get(&ep_chains, r->fd);

    dirty_drop(s, id);
    if (s->dirty.n == 0)
        wake_drain(s);   /* with no registrations the program's own waits
                          * go to the kernel: never show them our tag */
    timer_set(s, id, -1);
    list_remove(&s->regs, id, IN_SET);
    if (head == id) {
        (void)sparse_set(&ep_chains, r->fd, r->fd_next);
    } else if (head != 0) {
        for (prev = &reg_of(head)->fd_next; *prev != 0;
             prev = &reg_of(*prev)->fd_next)
            if (*prev == id) {
                *prev = r->fd_next;
                break;
            }
    }
    atomic_store(&r->tag, 0);
    atomic_store(&r->set, NULL);
    r->conn = NULL;
    reg_unalloc(id);
    atomic_fetch_sub(&s->nregs, 1);
    atomic_fetch_sub(&ep_live, 1);
}

/* The kernel's arming at ADD and MOD, before any check. */
static uint32_t
kernel_initial(uint32_t events)
{
    if (events & EPOLLEXCLUSIVE)   /* fixed: the kernel refuses MOD */
        return events | EPOLLIN | EPOLLOUT | EPOLLET;
    return (events & (EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP |
                      EPOLLWAKEUP)) |
           EPOLLET;
}

/* The sides a set of events belongs to. */
static uint32_t
sides_of(uint32_t ev)
{
    return ((ev & EP_IN_SIDE) ? EPOLLIN : 0u) |
           ((ev & EP_OUT_SIDE) ? EPOLLOUT : 0u);
}

/* ADD, or MOD of a tracked fd we hold nothing for (it was added before it
 * became tracked).  ep_lock held; released on return. */
static int
ctl_add(int epfd, int kop, int fd, const struct epoll_event *ev,
        struct conn *c)
{
    struct epset *s = set_make(epfd);
    struct epoll_event kev;
    uint32_t id, stale;
    struct epreg *r;
    int rv, e;

    if (s == NULL || (id = reg_alloc()) == 0) {
        pthread_mutex_unlock(&ep_lock);
        errno = ENOMEM;
        return -1;
    }
    stale = reg_find(s, fd);
    memset(&kev, 0, sizeof(kev));
    kev.events = kernel_initial(ev->events);
    kev.data.u64 = tag_for(id);
    pthread_mutex_lock(&s->lock);
    rv = real.epoll_ctl(epfd, kop, fd, &kev);
    if (rv < 0) {
        e = errno;
        reg_unalloc(id);
        pthread_mutex_unlock(&s->lock);
        pthread_mutex_unlock(&ep_lock);
        errno = e;
        return -1;
    }
    if (stale != 0) {
        /* the kernel took it, so ours described an fd closed behind our
         * back */
        reg_release(s, stale);
    }
    r = reg_of(id);
    r->fd = fd;
    r->conn = c;
    r->gen++;
    r->events = ev->events;
    r->data = ev->data;
    r->kernel = kev.events;
    r->armed = EPOLLIN | EPOLLOUT;
    r->sticky = 0;
    r->disabled = 0;
    r->kicked = 0;
    r->dirty = 0;
    r->timed = 0;
    r->deadline = -1;
    r->reported_call = 0;
    r->fd_next = (uint32_t)sparse_get(&ep_chains, fd);
    if (sparse_set(&ep_chains, fd, id) < 0) {
        (void)real.epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &kev);
        reg_unalloc(id);
        pthread_mutex_unlock(&s->lock);
        pthread_mutex_unlock(&ep_lock);
        errno = ENOMEM;
        return -1;
    }
    list_push(&s->regs, id, IN_SET, 0);
    atomic_store(&r->set, s);
    atomic_store(&r->tag, kev.data.u64);
    atomic_fetch_add(&s->nregs, 1);
    atomic_fetch_add(&ep_live, 1);
    dirty_push(s, id, 0);
    kick(s, id);
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&ep_lock);
    return 0;
}

/* MOD of a registration we hold.  ep_lock held; released on return. */
static int
ctl_mod(struct epset *s, uint32_t id, const struct epoll_event *ev)
{
    struct epreg *r = reg_of(id);
    struct epoll_event kev;
    int rv, kicked = 0;

    pthread_mutex_lock(&s->lock);
    pthread_mutex_unlock(&ep_lock);
    memset(&kev, 0, sizeof(kev));
    kev.events = kernel_initial(ev->events);
    kev.data.u64 = atomic_load(&r->tag);
    if (atomic_load(&s->waiters) > 0 &&
        !((ev->events | r->kernel) & EPOLLEXCLUSIVE)) {
        /* a thread waits in the kernel: make it look (see kick) */
        kev.events = EPOLLIN | EPOLLOUT | EPOLLET;
        kicked = 1;
    }
    rv = real.epoll_ctl(s->epfd, EPOLL_CTL_MOD, r->fd, &kev);
    if (rv == 0) {
        r->gen++;
        r->events = ev->events;
        r->data = ev->data;
        r->kernel = kev.events;
        r->kicked = kicked;
        r->armed = EPOLLIN | EPOLLOUT;
        r->disabled = 0;
        dirty_push(s, id, 0);
    }
    pthread_mutex_unlock(&s->lock);
    return rv;
}

/* The fd is no longer tracked (pass-through) or is another connection:
 * give the kernel registration back to the program as it made it, and
 * forget ours.  ep_lock and the set's lock held. */
static void
reg_hand_back(struct epset *s, uint32_t id)
{
    struct epreg *r = reg_of(id);
    struct conn *c = conn_get(r->fd);

    if (c == NULL) {
        struct epoll_event pev;
        memset(&pev, 0, sizeof(pev));
        pev.events = r->events;
        pev.data = r->data;
        (void)real.epoll_ctl(s->epfd, EPOLL_CTL_MOD, r->fd, &pev);
    } else {
        conn_put(c);
    }
    reg_release(s, id);
}

HOOK int
epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    struct conn *c;
    struct epset *s;
    uint32_t id;
    int rv, e;

    if (real.epoll_ctl == NULL)
        real_init();
    c = conn_get(fd);
    if (c == NULL && op == EPOLL_CTL_ADD)
        note_watched(fd);   /* an epoll set nested in this one? */
    if (c == NULL && (atomic_load_explicit(&ep_live, memory_order_relaxed) ==
                          0 ||
                      sparse_get(&ep_chains, fd) == 0))
        return real.epoll_ctl(epfd, op, fd, ev);
    if (c != NULL && op != EPOLL_CTL_DEL && ev == NULL) {
        conn_put(c);
        errno = EFAULT;
        return -1;
    }
    pthread_mutex_lock(&ep_lock);
    s = set_of(epfd);
    id = s != NULL ? reg_find(s, fd) : 0;
    if (id != 0 && c != NULL && reg_of(id)->conn != c) {
        /* fd was closed behind our back and is another connection now;
         * the kernel dropped the old registration with the old socket */
        pthread_mutex_lock(&s->lock);
        reg_release(s, id);
        pthread_mutex_unlock(&s->lock);
        id = 0;
    }
    if (c == NULL || op == EPOLL_CTL_DEL ||
        (op != EPOLL_CTL_ADD && op != EPOLL_CTL_MOD)) {
        /* DEL, or an fd that stopped being tracked: the program's call
         * as it is, and our registration goes */
        rv = real.epoll_ctl(epfd, op, fd, ev);
        e = errno;
        if (id != 0 && (rv == 0 || e == ENOENT || e == EBADF ||
                        (c == NULL && op == EPOLL_CTL_MOD))) {
            pthread_mutex_lock(&s->lock);
            reg_release(s, id);
            pthread_mutex_unlock(&s->lock);
        }
        pthread_mutex_unlock(&ep_lock);
        if (c != NULL)
            conn_put(c);
        errno = e;
        return rv;
    }
    if (op == EPOLL_CTL_MOD && id != 0)
        rv = ctl_mod(s, id, ev);
    else
        rv = ctl_add(epfd, op, fd, ev, c);
    e = errno;
    conn_put(c);
    errno = e;
    return rv;
}

/* What one registration needs checked, copied under the set's lock, and
 * the outcome of the check, made without it. */
struct epcheck {
    uint32_t id, gen;
    uint64_t tag;
    int fd;
    const struct conn *conn;
    uint32_t events;
    uint32_t kernel_revents;     /* from a kernel event, else 0 */
    int from_kernel;
    uint32_t sticky;
    /* outcome */
    int gone;
    short ready, need;
    int64_t deadline;
};

static void
check_snapshot(struct epcheck *k, uint32_t id, uint32_t kernel_revents,
               int from_kernel)
{
    struct epreg *r = reg_of(id);

    k->id = id;
    k->gen = r->gen;
    k->tag = atomic_load(&r->tag);
    k->fd = r->fd;
    k->conn = r->conn;
    k->events = r->events;
    k->kernel_revents = kernel_revents;
    k->from_kernel = from_kernel;
    k->sticky = r->sticky;
    k->gone = 0;
    k->ready = k->need = 0;
    k->deadline = -1;
}

static void
check_run(struct epcheck *k)
{
    struct conn *c = conn_get(k->fd);
    short want = (short)(k->events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP));
    short kr = (short)((k->kernel_revents | k->sticky) &
                       (EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLERR));

    if (c == NULL || c != k->conn) {
        if (c != NULL)
            conn_put(c);
        k->gone = 1;
        return;
    }
    /* The kernel reports arrivals once: let OpenSSL read what it holds
     * whenever input is wanted. */
    k->ready = conn_poll_probe(c, want, kr, &k->need, &k->deadline);
    conn_put(c);
    if ((k->ready & POLLOUT) && !(k->ready & POLLERR) &&
        !(k->kernel_revents & EPOLLOUT)) {
        /* Writable needs room in the kernel's send buffer too, as on TCP
         * (a program may block in write()); when there is none, the
         * kernel is armed for EPOLLOUT and reports the room. */
        struct pollfd p = {.fd = k->fd, .events = POLLOUT};
        if (real.poll(&p, 1, 0) == 0)
            k->ready &= (short)~POLLOUT;
    }
}

/*
 * Decide what a check means for its registration: report it (within max),
 * re-arm the kernel, queue it again.  Set lock held.  Returns 1 when the
 * registration is gone and must be handed back (needs ep_lock).
 */
static int
check_apply(struct epset *s, struct epcheck *k, struct epoll_event *out,
            int *nout, int max, uint64_t call, uint32_t *overflow,
            int *noverflow)
{
    struct epreg *r = reg_of(k->id);
    uint32_t kr = k->kernel_revents, ready, report = 0, want;

    if (atomic_load(&r->tag) != k->tag || atomic_load(&r->set) != s)
        return 0;   /* freed meanwhile */
    if (k->gone)
        return 1;
    if (k->from_kernel) {
        if (r->kicked) {
            /* a kick reports levels, not edges */
            r->kicked = 0;
            kr &= EPOLLHUP | EPOLLERR;
        }
        r->sticky |= kr & (EPOLLHUP | EPOLLERR);
        r->armed |= sides_of(kr);
    }
    if (r->gen != k->gen)
        return 0;   /* MOD since: it is queued for a fresh check */
    ready = (uint32_t)(unsigned short)k->ready &
            (r->events | EPOLLERR | EPOLLHUP);
    if (!r->disabled && ready != 0 && r->reported_call != call &&
        (!(r->events & EPOLLET) || (sides_of(ready) & r->armed)))
        report = ready;
    if (report != 0 && *nout >= max) {
        overflow[(*noverflow)++] = k->id;   /* next call */
        report = 0;
    } else if (report != 0) {
        out[*nout].events = report;
        out[*nout].data = r->data;
        (*nout)++;
        r->reported_call = call;
        if (r->events & EPOLLET)
            r->armed &= ~sides_of(report);
        if (r->events & EPOLLONESHOT)
            r->disabled = 1;
        else if (!(r->events & EPOLLET))
            dirty_push(s, k->id, 0);   /* level: look again next time */
    }
    timer_set(s, k->id, report == 0 && !r->disabled ? k->deadline : -1);

    /* What the kernel should watch from now on. */
    if (r->kernel & EPOLLEXCLUSIVE) {
        want = r->kernel;
    } else if (r->disabled) {
        /* silence it once it speaks; MOD wakes it again */
        want = k->from_kernel ? EPOLLET : r->kernel;
    } else {
        want = (r->events & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLWAKEUP)) |
               EPOLLET;
        if ((r->events & EPOLLOUT) && !(ready & EPOLLOUT))
            want |= EPOLLOUT;
        if (k->ready == 0)
            want |= (uint32_t)(unsigned short)k->need & (EPOLLIN | EPOLLOUT);
    }
    if (want != r->kernel && !(r->kicked && !k->from_kernel)) {
        struct epoll_event kev;
        memset(&kev, 0, sizeof(kev));
        kev.events = want;
        kev.data.u64 = k->tag;
        if (real.epoll_ctl(s->epfd, EPOLL_CTL_MOD, r->fd, &kev) == 0)
            r->kernel = want;
    }
    return 0;
}

/* Run and apply a batch of checks; returns the new count of events. */
static int
check_batch(struct epset *s, struct epcheck *k, int n,
            struct epoll_event *out, int nout, int max, uint64_t call)
{
    uint32_t overflow[EP_KERNEL_MAX], gone[EP_KERNEL_MAX];
    uint64_t gone_tag[EP_KERNEL_MAX];
    int noverflow = 0, ngone = 0;

    for (int i = 0; i < n; i++)
        check_run(&k[i]);
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < n; i++)
        if (check_apply(s, &k[i], out, &nout, max, call, overflow,
                        &noverflow)) {
            gone[ngone] = k[i].id;
            gone_tag[ngone++] = k[i].tag;
        }
    for (int i = noverflow - 1; i >= 0; i--)
        dirty_push(s, overflow[i], 1);
    pthread_mutex_unlock(&s->lock);
    if (ngone > 0) {
        pthread_mutex_lock(&ep_lock);
        pthread_mutex_lock(&s->lock);
        for (int i = 0; i < ngone; i++) {
            struct epreg *r = reg_of(gone[i]);
            if (atomic_load(&r->tag) == gone_tag[i] &&
                atomic_load(&r->set) == s)
                reg_hand_back(s, gone[i]);
        }
        pthread_mutex_unlock(&s->lock);
        pthread_mutex_unlock(&ep_lock);
    }
    return nout;
}

/* The dirty list: registrations to check without a kernel event. */
static int
scan_dirty(struct epset *s, struct epoll_event *out, int nout, int max,
           uint64_t call)
{
    struct epcheck k[EP_BATCH];
    uint32_t budget;

    pthread_mutex_lock(&s->lock);
    timers_due(s);
    budget = s->dirty.n;   /* what is queued now, not what we re-queue */
    pthread_mutex_unlock(&s->lock);
    while (budget > 0 && nout < max) {
        int n = 0;
        pthread_mutex_lock(&s->lock);
        while (n < EP_BATCH && budget > 0 && s->dirty.head != 0) {
            uint32_t id = s->dirty.head;
            dirty_drop(s, id);
            budget--;
            check_snapshot(&k[n++], id, 0, 0);
        }
        pthread_mutex_unlock(&s->lock);
        if (n == 0)
            break;
        nout = check_batch(s, k, n, out, nout, max, call);
    }
    return nout;
}

/*
 * The kernel's events, written at out[base..base+n): untracked ones stay
 * (compacted), ours are checked and replaced by what the program should
 * see.  Returns the new count.
 */
static int
take_kernel(struct epset *s, struct epoll_event *out, int base, int n,
            int max, uint64_t call)
{
    struct epcheck k[EP_KERNEL_MAX];
    uint32_t count = atomic_load(&ep_reg_count);
    int nk = 0, w = base;

    pthread_mutex_lock(&s->lock);
    for (int j = base; j < base + n; j++) {
        uint64_t d = out[j].data.u64;
        uint32_t id = (uint32_t)d;
        if (d == EP_WAKE_TAG) {
            wake_drain(s);   /* we are looking at the dirty list */
            continue;
        }
        if ((d >> EP_TAG_SHIFT) == EP_TAG_MAGIC && id != 0 && id <= count) {
            struct epreg *r = reg_of(id);
            if (atomic_load(&r->tag) == d && atomic_load(&r->set) == s) {
                dirty_drop(s, id);   /* checked now */
                check_snapshot(&k[nk++], id, out[j].events, 1);
            }
            continue;   /* ours, stale: a registration freed meanwhile */
        }
        out[w++] = out[j];
    }
    pthread_mutex_unlock(&s->lock);
    return check_batch(s, k, nk, out, w, max, call);
}

static int
kernel_wait(int epfd, struct epoll_event *ev, int max, int64_t wake,
            int now, const sigset_t *mask)
{
    struct timespec ts0 = {0, 0}, ts;
    const struct timespec *t = now ? &ts0 : ts_until(wake, &ts);

    /* glibc may have epoll_pwait2 where the kernel (before 5.11) or
     * valgrind has not: ENOSYS once, epoll_pwait from then on */
    static atomic_int pwait2_missing;
    if (real.epoll_pwait2 != NULL && !atomic_load(&pwait2_missing)) {
        int n = real.epoll_pwait2(epfd, ev, max, t, mask);
        if (n >= 0 || errno != ENOSYS)
            return n;
        atomic_store(&pwait2_missing, 1);
    }
    return real.epoll_pwait(epfd, ev, max,
                            t == NULL ? -1
                                      : (int)(t->tv_sec * 1000 +
                                              t->tv_nsec / 1000000),
                            mask);
}

static int
epoll_tracked_wait(struct epset *s, int epfd, struct epoll_event *out,
                   int max, int64_t deadline, const sigset_t *mask)
{
    uint64_t call = atomic_fetch_add(&ep_calls, 1) + 1;
    int nout = 0;

    if (atomic_load_explicit(&s->wake_fd, memory_order_relaxed) >= 0) {
        pthread_mutex_lock(&s->lock);
        wake_drain(s);   /* the dirty list is looked at next */
        pthread_mutex_unlock(&s->lock);
    }
    for (;;) {
        nout = scan_dirty(s, out, nout, max, call);
        if (nout >= max)
            return nout;

        int64_t wake = deadline;
        int busy;
        /* Count ourselves as waiting before looking at the dirty list: a
         * thread that queues after the look sees us and kicks. */
        atomic_fetch_add(&s->waiters, 1);
        pthread_mutex_lock(&s->lock);
        busy = s->dirty.n > 0;
        if (s->timers.n > 0)
            wake = min_deadline(wake, s->next_deadline);
        pthread_mutex_unlock(&s->lock);
        int room = max - nout < EP_KERNEL_MAX ? max - nout : EP_KERNEL_MAX;
        int k = kernel_wait(epfd, out + nout, room, wake, nout > 0 || busy,
                            mask);
        int e = errno;
        atomic_fetch_sub(&s->waiters, 1);
        if (k < 0) {
            if (nout > 0)
                return nout;
            errno = e;
            return -1;
        }
        nout = take_kernel(s, out, nout, k, max, call);
        if (nout > 0 || (deadline >= 0 && util_now_ms() >= deadline))
            return nout;
        /* only TLS records without data, a kick, a wake, or a handshake
         * step: wait again */
    }
}

/* A watched set stays readable while registrations wait in its dirty
 * list (level-triggered ones just reported, what did not fit in max). */
static void
wake_settle(struct epset *s)
{
    if (atomic_load_explicit(&s->wake_fd, memory_order_relaxed) < 0)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->dirty.n > 0)
        wake_signal(s);
    pthread_mutex_unlock(&s->lock);
}

static int
epoll_tracked(struct epset *s, int epfd, struct epoll_event *out, int max,
              int64_t deadline, const sigset_t *mask)
{
    int nout = epoll_tracked_wait(s, epfd, out, max, deadline, mask);
    int e = errno;

    wake_settle(s);
    errno = e;
    return nout;
}

/* The set of epfd if it holds tracked registrations (lock-free). */
static struct epset *
tracked_set(int epfd)
{
    struct epset *s;

    if (atomic_load_explicit(&ep_live, memory_order_relaxed) == 0)
        return NULL;
    s = set_of(epfd);
    if (s == NULL || atomic_load_explicit(&s->nregs, memory_order_relaxed) == 0)
        return NULL;
    return s;
}

void
shim_epoll_note_io(int fd, struct conn *c, unsigned eagain)
{
    int fds[8], n = 0;

    if (atomic_load_explicit(&ep_live, memory_order_relaxed) == 0)
        return;
    if (sparse_get(&ep_chains, fd) != 0) {
        fds[n++] = fd;
    } else {
        /* registered under a dup of fd? */
        int all[8], m = conn_fd_list(c, all, (int)TLSSHIM_NELEMS(all));
        for (int i = 0; i < m; i++)
            if (sparse_get(&ep_chains, all[i]) != 0)
                fds[n++] = all[i];
        if (n == 0)
            return;
    }
    pthread_mutex_lock(&ep_lock);
    for (int i = 0; i < n; i++) {
        for (uint32_t id = (uint32_t)sparse_get(&ep_chains, fds[i]); id != 0;
             id = reg_of(id)->fd_next) {
            struct epreg *r = reg_of(id);
            struct epset *s = atomic_load(&r->set);
            if (s == NULL || r->conn != c)
                continue;
            pthread_mutex_lock(&s->lock);
            if (!r->disabled) {
                r->armed |= eagain & (EPOLLIN | EPOLLOUT);
                dirty_push(s, id, 0);
                kick(s, id);
            }
            pthread_mutex_unlock(&s->lock);
        }
    }
    pthread_mutex_unlock(&ep_lock);
}

/* fd no longer names s: drop the alias, and the set with its last one.
 * ep_lock held. */
static void
set_drop_alias(struct epset *s, int fd)
{
    int i;

    (void)sparse_set(&ep_sets, fd, 0);
    for (i = 0; i < s->nepfds && s->epfds[i] != fd; i++)
        ;
    if (i == s->nepfds)
        return;
    pthread_mutex_lock(&s->lock);
    s->epfds[i] = s->epfds[--s->nepfds];
    if (s->nepfds > 0) {
        s->epfd = s->epfds[0];
        pthread_mutex_unlock(&s->lock);
        return;
    }
    while (s->regs.head != 0)
        reg_release(s, s->regs.head);
    int wfd = atomic_exchange(&s->wake_fd, -1);
    if (wfd >= 0) {
        kind_change(wfd, 0, EPK_WAKE);
        real.close(wfd);
    }
    s->wake_pending = 0;
    pthread_mutex_unlock(&s->lock);
    s->free_next = ep_set_free;
    ep_set_free = s;
}

/* fd, a wake eventfd, is being closed by the program (closefrom, say):
 * its set loses it without closing it.  ep_lock held. */
static void
wake_lost(int fd)
{
    kind_change(fd, 0, EPK_WAKE);
    for (struct epset *s = ep_set_all; s != NULL; s = s->all_next) {
        if (s->nepfds > 0 && atomic_load(&s->wake_fd) == fd) {
            pthread_mutex_lock(&s->lock);
            atomic_store(&s->wake_fd, -1);
            s->wake_pending = 0;
            pthread_mutex_unlock(&s->lock);
        }
    }
}

/* Everything known about fd, which is being closed or replaced.
 * ep_lock held. */
static void
forget_locked(int fd)
{
    struct epset *s;
    uint32_t id;
    uintptr_t kind = sparse_get(&ep_kinds, fd);

    /* fd's registrations: the fd is still open, so the kernel's go too
     * (a dup of it would otherwise keep reporting under our tag) */
    while ((id = (uint32_t)sparse_get(&ep_chains, fd)) != 0) {
        struct epreg *r = reg_of(id);
        s = atomic_load(&r->set);
        pthread_mutex_lock(&s->lock);
        (void)real.epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
        reg_release(s, id);
        pthread_mutex_unlock(&s->lock);
    }
    /* fd as an epoll set, or one of its aliases */
    if ((s = set_of(fd)) != NULL)
        set_drop_alias(s, fd);
    if (kind & EPK_WAKE)
        wake_lost(fd);
    if (kind != 0)
        kind_change(fd, 0, kind);
}

void
shim_epoll_forget_fd(int fd)
{
    if (sparse_get(&ep_chains, fd) == 0 && set_of(fd) == NULL &&
        sparse_get(&ep_kinds, fd) == 0)
        return;
    /* a vfork() child shares our memory, not our descriptors */
    if (shim_in_vfork_child())
        return;
    pthread_mutex_lock(&ep_lock);
    forget_locked(fd);
    pthread_mutex_unlock(&ep_lock);
}

/* The fds from lo to hi are being closed (close_range, closefrom). */
void
shim_epoll_forget_range(unsigned lo, unsigned hi)
{
    unsigned last;

    /* sets and registrations (ep_chains) are only made after ep_any */
    if (!atomic_load_explicit(&ep_any, memory_order_relaxed) ||
        shim_in_vfork_child())
        return;
    pthread_mutex_lock(&ep_lock);
    last = EP_PAGE * EP_NPAGES - 1;
    if (hi > last)
        hi = last;
    /* the sparse tables are walked page by page: only pages that exist */
    for (unsigned p = lo >> EP_PAGE_BITS; lo <= hi && p <= hi >> EP_PAGE_BITS;
         p++) {
        if (atomic_load(&ep_sets.pages[p]) == NULL &&
            atomic_load(&ep_chains.pages[p]) == NULL &&
            atomic_load(&ep_kinds.pages[p]) == NULL)
            continue;
        unsigned from = p << EP_PAGE_BITS, to = from + EP_PAGE - 1;
        if (from < lo)
            from = lo;
        if (to > hi)
            to = hi;
        for (unsigned fd = from; fd <= to; fd++)
            if (sparse_get(&ep_chains, (int)fd) != 0 ||
                set_of((int)fd) != NULL ||
                sparse_get(&ep_kinds, (int)fd) != 0)
                forget_locked((int)fd);
    }
    pthread_mutex_unlock(&ep_lock);
}

/*
 * newfd is a dup of oldfd (dup, dup2, dup3, F_DUPFD), which is not a TLS
 * socket: if oldfd is an epoll set, newfd is the same set.  Whatever was
 * known under newfd was dropped before (the dup hooks call
 * shim_epoll_forget_fd on a target they replace).
 */
void
shim_epoll_dup_fd(int oldfd, int newfd)
{
    uintptr_t kind = sparse_get(&ep_kinds, oldfd);
    struct epset *s;

    if (oldfd == newfd || (!(kind & EPK_EPOLL) && set_of(oldfd) == NULL))
        return;
    if (shim_in_vfork_child())
        return;
    pthread_mutex_lock(&ep_lock);
    forget_locked(newfd);
    kind = sparse_get(&ep_kinds, oldfd);
    if ((s = set_make(oldfd)) != NULL && s->nepfds < EP_ALIASES &&
        sparse_set(&ep_sets, newfd, (uintptr_t)s) == 0) {
        pthread_mutex_lock(&s->lock);
        s->epfds[s->nepfds++] = newfd;
        pthread_mutex_unlock(&s->lock);
        kind_change(newfd, kind & (EPK_EPOLL | EPK_NESTED), 0);
    }
    pthread_mutex_unlock(&ep_lock);
}

/*
 * In a relay process, which closed every descriptor it inherited: what we
 * knew about epoll fds describes numbers that are no longer ours, and
 * must never lead to a close() or epoll_ctl() on them.  Forgotten without
 * any system call (the memory is simply left).
 */
void
shim_epoll_drop_all(void)
{
    pthread_mutex_lock(&ep_lock);
    for (unsigned p = 0; p < EP_NPAGES; p++) {
        atomic_store(&ep_sets.pages[p], NULL);
        atomic_store(&ep_chains.pages[p], NULL);
        atomic_store(&ep_kinds.pages[p], NULL);
    }
    ep_set_all = ep_set_free = NULL;
    ep_reg_free = 0;
    atomic_store(&ep_live, 0);
    atomic_store(&ep_any, 0);
    pthread_mutex_unlock(&ep_lock);
}

/* A new epoll fd is known as one (for nesting and dup); whatever we held
 * under its number described an old one (closed by closefrom, replaced by
 * dup2...). */
static void
note_created(int fd)
{
    if (shim_in_vfork_child())
        return;
    pthread_mutex_lock(&ep_lock);
    forget_locked(fd);
    kind_change(fd, EPK_EPOLL, 0);
    pthread_mutex_unlock(&ep_lock);
}

HOOK int
epoll_create(int size)
{
    int fd;

    if (real.epoll_create == NULL)
        real_init();
    if ((fd = real.epoll_create(size)) >= 0)
        note_created(fd);
    return fd;
}

HOOK int
epoll_create1(int flags)
{
    int fd;

    if (real.epoll_create1 == NULL)
        real_init();
    if ((fd = real.epoll_create1(flags)) >= 0)
        note_created(fd);
    return fd;
}

HOOK int
epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    struct epset *s;

    if (real.epoll_wait == NULL)
        real_init();
    if (max <= 0 || (s = tracked_set(epfd)) == NULL)
        return real.epoll_wait(epfd, ev, max, timeout);
    return epoll_tracked(s, epfd, ev, max, deadline_of_ms(timeout), NULL);
}

HOOK int
epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout,
            const sigset_t *mask)
{
    struct epset *s;

    if (real.epoll_pwait == NULL)
        real_init();
    if (max <= 0 || (s = tracked_set(epfd)) == NULL)
        return real.epoll_pwait(epfd, ev, max, timeout, mask);
    return epoll_tracked(s, epfd, ev, max, deadline_of_ms(timeout), mask);
}

HOOK int
epoll_pwait2(int epfd, struct epoll_event *ev, int max,
             const struct timespec *ts, const sigset_t *mask)
{
    struct epset *s;

    if (real.epoll_pwait2 == NULL)
        real_init();
    if (real.epoll_pwait2 == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (max <= 0 || (s = tracked_set(epfd)) == NULL)
        return real.epoll_pwait2(epfd, ev, max, ts, mask);
    return epoll_tracked(s, epfd, ev, max, deadline_of_ts(ts), mask);
}
