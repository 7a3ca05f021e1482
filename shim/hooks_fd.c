/*
 * Descriptor calls: dup and friends share a connection (a reference per
 * fd); close() of the last reference sends close_notify.  close_range()
 * and closefrom() close many fds without passing through close(), so they
 * detach the tracked ones first.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "conn.h"
#include "fdtable.h"
#include "log.h"
#include "shim.h"

HOOK int
close(int fd)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        if (real.close == NULL)
            real_init();
        shim_epoll_forget_fd(fd);
        return real.close(fd);
    }
    shim_epoll_forget_fd(fd);
    conn_close_fd(c, fd);
    conn_put(c);
    return real.close(fd);
}

/*
 * On fds 0-2, stdio writes through libc-internal paths the hooks never
 * see, so a TLS connection there would leak plaintext into its stream.
 * Until such connections are handed to a relay process, moving one there
 * is refused: fail closed.
 */
static int
refuse_std(struct conn *c, int newfd)
{
    if (newfd > 2)
        return 0;
    log_error("fd %d: a TLS connection cannot be placed on fd %d "
              "(standard streams bypass tlsshim); refused",
              c->fd, newfd);
    errno = EACCES;
    return 1;
}

/* newfd now refers to c's socket; an old connection on newfd is closed. */
static int
attach(struct conn *c, int newfd)
{
    int rv;

    if (refuse_std(c, newfd)) {
        real.close(newfd);
        return -1;
    }
    rv = conn_attach_fd(c, newfd);

    if (rv < 0) {
        real.close(newfd);
        errno = -rv;
        return -1;
    }
    return newfd;
}

static void
drop_target(int newfd)
{
    struct conn *old = conn_get(newfd);

    if (old != NULL) {
        shim_epoll_forget_fd(newfd);
        conn_close_fd(old, newfd);
        conn_put(old);
    }
}

HOOK int
dup(int fd)
{
    struct conn *c;
    int nfd;

    real_init();
    nfd = real.dup(fd);
    if (nfd < 0 || (c = conn_get(fd)) == NULL)
        return nfd;
    nfd = attach(c, nfd);
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
    if (c != NULL && refuse_std(c, newfd)) {
        conn_put(c);
        return -1;
    }
    /* dup2 closes newfd silently: the connection on it ends here. */
    drop_target(newfd);
    rv = real.dup2(fd, newfd);
    if (rv >= 0 && c != NULL)
        rv = attach(c, rv);
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
    if (c != NULL && refuse_std(c, newfd)) {
        conn_put(c);
        return -1;
    }
    drop_target(newfd);
    rv = real.dup3(fd, newfd, flags);
    if (rv >= 0 && c != NULL)
        rv = attach(c, rv);
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

HOOK int
close_range(unsigned first, unsigned last, int flags)
{
    real_init();
    if (real.close_range == NULL) {
        errno = ENOSYS;
        return -1;
    }
    /* CLOSE_RANGE_CLOEXEC only marks fds; exec handles those. */
    if (!(flags & 4 /* CLOSE_RANGE_CLOEXEC */)) {
        struct range r = {first, last};
        fdtable_foreach(close_in_range, &r);
    }
    return real.close_range(first, last, flags);
}

HOOK void
closefrom(int lowfd)
{
    struct range r = {(unsigned)(lowfd < 0 ? 0 : lowfd), ~0u};

    real_init();
    fdtable_foreach(close_in_range, &r);
    if (real.closefrom != NULL)
        real.closefrom(lowfd);
}
