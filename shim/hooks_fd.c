/*
 * Descriptor calls: dup and friends share a connection (a reference per
 * fd); close() of the last reference sends close_notify.  close_range()
 * and closefrom() close many fds without passing through close(), so they
 * detach the tracked ones first.  A dup of an epoll fd is the same set
 * (hooks_poll.c).  In a vfork() child, whose memory is its parent's,
 * closes leave our state alone and copies of a TLS socket are refused.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "fdtable.h"
#include "log.h"
#include "relay.h"
#include "shim.h"

#ifndef CLOSE_RANGE_CLOEXEC   /* glibc < 2.34 headers */
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

HOOK int
close(int fd)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        if (real.close == NULL)
            real_init();
        shim_epoll_forget_fd(fd);
        /* before the number can be reused (one load when none); a vfork
         * child's close leaves its parent's socket open */
        if (fd >= 0 && conn_enforce_watching() && !shim_in_vfork_child())
            conn_enforce_forget_fds((unsigned)fd, (unsigned)fd);
        return real.close(fd);
    }
    /* a vfork child closes its own copy; the parent's connection stays */
    if (!shim_in_vfork_child()) {
        shim_epoll_forget_fd(fd);
        conn_enforce_forget_fds((unsigned)fd, (unsigned)fd);
        conn_close_fd(c, fd);
    }
    conn_put(c);
    return real.close(fd);
}

/*
 * In a vfork() child no relay can be made (see relay_escape_inherited),
 * so a copy of a TLS socket, which the image the child execs could write
 * plaintext into, is refused.  Releases c.
 */
static int
refuse_in_vfork(struct conn *c, int fd)
{
    conn_put(c);
    log_error("fd %d: copy of a TLS connection in a vfork() child refused: "
              "no relay can be made there", fd);
    errno = EACCES;
    return -1;
}

/*
 * On fds 0-2, stdio writes through libc-internal paths the hooks never
 * see, so a TLS connection placed there is first handed to a relay: the
 * fd then carries plaintext to it (SPEC section 9).  Returns 1 when c was
 * handed over (the caller then just does the real call on the plain fd),
 * 0 when newfd is not a standard stream, -1 with errno on failure.
 */
static int
escape_std(struct conn *c, int newfd)
{
    int rv;

    if (newfd > 2)
        return 0;
    rv = relay_handoff(c);
    if (rv < 0) {
        log_error("fd %d: cannot hand the TLS connection to a relay before "
                  "it goes on fd %d: %s; refused", c->fd, newfd,
                  strerror(-rv));
        errno = -rv;
        return -1;
    }
    return 1;
}

/* newfd now refers to c's socket; an old connection on newfd is closed. */
static int
attach(struct conn *c, int newfd, int srcfd)
{
    int rv;

    if (newfd <= 2) {
        /* dup() or F_DUPFD landed on a standard stream */
        rv = relay_handoff(c);
        if (rv < 0) {
            real.close(newfd);
            errno = -rv;
            return -1;
        }
        /* newfd is still a copy of the TLS socket: make it a copy of the
         * plain end srcfd has become */
        return real.dup2(srcfd, newfd);
    }
    rv = conn_attach_fd(c, newfd);

    if (rv < 0) {
        real.close(newfd);
        errno = -rv;
        return -1;
    }
    return newfd;
}

/* dup2/dup3 close newfd silently: what was known about it goes. */
static void
drop_target(int newfd)
{
    struct conn *old = conn_get(newfd);

    shim_epoll_forget_fd(newfd);
    if (newfd >= 0)
        conn_enforce_forget_fds((unsigned)newfd, (unsigned)newfd);
    if (old != NULL) {
        conn_close_fd(old, newfd);
        conn_put(old);
    }
}

/* A vfork child replacing newfd must not touch what we know about it (it
 * is the parent's); asks getpid() only when there is something to touch. */
static int
vfork_replacing_tracked(int newfd)
{
    return fdtable_peek(newfd) != NULL && shim_in_vfork_child();
}

HOOK int
dup(int fd)
{
    struct conn *c;
    int nfd;

    real_init();
    if ((c = conn_get(fd)) != NULL && shim_in_vfork_child())
        return refuse_in_vfork(c, fd);
    nfd = real.dup(fd);
    if (nfd >= 0 && c == NULL)
        shim_epoll_dup_fd(fd, nfd);
    if (nfd < 0 || c == NULL) {
        if (c != NULL)
            conn_put(c);
        return nfd;
    }
    nfd = attach(c, nfd, fd);
    conn_put(c);
    return nfd;
}

HOOK int
dup2(int fd, int newfd)
{
    struct conn *c;
    int rv;

    real_init();
    if (fd == newfd)
        return real.dup2(fd, newfd);
    c = conn_get(fd);
    if (c != NULL && shim_in_vfork_child())
        return refuse_in_vfork(c, fd);
    if (vfork_replacing_tracked(newfd))
        return real.dup2(fd, newfd);
    if (c != NULL) {
        int esc = escape_std(c, newfd);
        if (esc != 0) {
            conn_put(c);
            return esc < 0 ? -1 : real.dup2(fd, newfd);
        }
    }
    /* dup2 closes newfd silently: the connection on it ends here. */
    drop_target(newfd);
    rv = real.dup2(fd, newfd);
    if (rv >= 0 && c == NULL)
        shim_epoll_dup_fd(fd, newfd);
    if (rv >= 0 && c != NULL)
        rv = attach(c, rv, fd);
    if (c != NULL)
        conn_put(c);
    return rv;
}

HOOK int
dup3(int fd, int newfd, int flags)
{
    struct conn *c;
    int rv;

    real_init();
    if (fd == newfd)
        return real.dup3(fd, newfd, flags);
    c = conn_get(fd);
    if (c != NULL && shim_in_vfork_child())
        return refuse_in_vfork(c, fd);
    if (vfork_replacing_tracked(newfd))
        return real.dup3(fd, newfd, flags);
    if (c != NULL) {
        int esc = escape_std(c, newfd);
        if (esc != 0) {
            conn_put(c);
            return esc < 0 ? -1 : real.dup3(fd, newfd, flags);
        }
    }
    drop_target(newfd);
    rv = real.dup3(fd, newfd, flags);
    if (rv >= 0 && c == NULL)
        shim_epoll_dup_fd(fd, newfd);
    if (rv >= 0 && c != NULL)
        rv = attach(c, rv, fd);
    if (c != NULL)
        conn_put(c);
    return rv;
}

struct range {
    unsigned lo, hi;
};

static void
close_in_range(int fd, struct conn *c, void *arg)
{
    const struct range *r = arg;

    if ((unsigned)fd >= r->lo && (unsigned)fd <= r->hi) {
        shim_epoll_forget_fd(fd);
        conn_close_fd(c, fd);
    }
}

/* Before fds first..last are closed behind close()'s back. */
static void
detach_range(unsigned first, unsigned last)
{
    struct range r = {first, last};

    if (first > last || shim_in_vfork_child())
        return;
    fdtable_foreach(close_in_range, &r);
    shim_epoll_forget_range(first, last);
    conn_enforce_forget_fds(first, last);
}

HOOK int
close_range(unsigned first, unsigned last, int flags)
{
    real_init();
    if (real.close_range == NULL) {
        errno = ENOSYS;
        return -1;
    }
    /* CLOSE_RANGE_CLOEXEC only marks fds: at exec such a connection is
     * closed, not handed to a relay (relay_escape_inherited skips it). */
    if (!(flags & CLOSE_RANGE_CLOEXEC))
        detach_range(first, last);
    return real.close_range(first, last, flags);
}

HOOK void
closefrom(int lowfd)
{
    real_init();
    detach_range((unsigned)(lowfd < 0 ? 0 : lowfd), ~0u);
    if (real.closefrom != NULL)
        real.closefrom(lowfd);
}
