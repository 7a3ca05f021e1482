/*
 * The data path: every read and write entry point of libc, including the
 * _FORTIFY_SOURCE variants distribution binaries call.  An untracked fd
 * costs a table lookup and goes straight to the real call; a tracked one
 * goes to the connection engine, which returns plaintext.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "conn.h"
#include "fdtable.h"
#include "shim.h"

#define GATHER_MAX 65536   /* iovecs up to this size are sent as one write */

#define ENSURE(fn) \
    do { \
        if (real.fn == NULL) \
            real_init(); \
    } while (0)

/* A write that failed with EPIPE raises SIGPIPE as the kernel would,
 * unless the program asked for MSG_NOSIGNAL. */
static ssize_t
write_result(ssize_t rv, int flags)
{
    if (rv == -EPIPE && !(flags & MSG_NOSIGNAL))
        raise(SIGPIPE);
    return shim_ret(rv);
}

static ssize_t
tracked_read(struct conn *c, void *buf, size_t len, int flags)
{
    ssize_t rv = conn_read(c, buf, len, flags);

    conn_put(c);
    return shim_ret(rv);
}

static ssize_t
tracked_write(struct conn *c, const void *buf, size_t len, int flags)
{
    ssize_t rv;

    rv = conn_write(c, buf, len, flags);
    conn_put(c);
    return write_result(rv, flags);
}

/* auto: a first write that is a TLS record hands the socket back. */
static int
passed_through(struct conn *c, const void *buf, size_t len)
{
    if (c->state != CONN_AUTO_WAIT && c->state != CONN_CONNECTING)
        return 0;
    if (c->rule->action != POLICY_AUTO)
        return 0;
    if (!conn_auto_passthrough(c, buf, len))
        return 0;
    conn_put(c);
    return 1;
}

HOOK ssize_t
read(int fd, void *buf, size_t len)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        ENSURE(read);
        return real.read(fd, buf, len);
    }
    return tracked_read(c, buf, len, 0);
}

HOOK ssize_t
__read_chk(int fd, void *buf, size_t len, size_t buflen)
{
    struct conn *c;

    ENSURE(read_chk);
    if (len > buflen || (c = conn_get(fd)) == NULL)
        return real.read_chk(fd, buf, len, buflen);   /* fails the check */
    return tracked_read(c, buf, len, 0);
}

HOOK ssize_t
recv(int fd, void *buf, size_t len, int flags)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        ENSURE(recv);
        return real.recv(fd, buf, len, flags);
    }
    return tracked_read(c, buf, len, flags);
}

HOOK ssize_t
__recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
    struct conn *c;

    ENSURE(recv_chk);
    if (len > buflen || (c = conn_get(fd)) == NULL)
        return real.recv_chk(fd, buf, len, buflen, flags);
    return tracked_read(c, buf, len, flags);
}

HOOK ssize_t
recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
         socklen_t *fromlen)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        ENSURE(recvfrom);
        return real.recvfrom(fd, buf, len, flags, from, fromlen);
    }
    if (fromlen != NULL)
        *fromlen = 0;     /* a connected stream reports no address */
    return tracked_read(c, buf, len, flags);
}

HOOK ssize_t
__recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
               struct sockaddr *from, socklen_t *fromlen)
{
    struct conn *c;

    ENSURE(recvfrom_chk);
    if (len > buflen || (c = conn_get(fd)) == NULL)
        return real.recvfrom_chk(fd, buf, len, buflen, flags, from, fromlen);
    if (fromlen != NULL)
        *fromlen = 0;
    return tracked_read(c, buf, len, flags);
}

HOOK ssize_t
write(int fd, const void *buf, size_t len)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        ENSURE(write);
        return real.write(fd, buf, len);
    }
    if (passed_through(c, buf, len))
        return real.write(fd, buf, len);
    return tracked_write(c, buf, len, 0);
}

HOOK ssize_t
send(int fd, const void *buf, size_t len, int flags)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        ENSURE(send);
        return real.send(fd, buf, len, flags);
    }
    if (passed_through(c, buf, len))
        return real.send(fd, buf, len, flags);
    return tracked_write(c, buf, len, flags);
}

HOOK ssize_t
sendto(int fd, const void *buf, size_t len, int flags,
       const struct sockaddr *to, socklen_t tolen)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        ENSURE(sendto);
        return real.sendto(fd, buf, len, flags, to, tolen);
    }
    if (passed_through(c, buf, len))
        return real.sendto(fd, buf, len, flags, to, tolen);
    return tracked_write(c, buf, len, flags);
}

static size_t
iov_total(const struct iovec *iov, int n)
{
    size_t t = 0;

    for (int i = 0; i < n; i++)
        t += iov[i].iov_len;
    return t;
}

/* Scatter-gather over the engine: small vectors are coalesced into one
 * buffer (one record instead of one per element). */
static ssize_t
tracked_writev(struct conn *c, const struct iovec *iov, int n, int flags)
{
    size_t total = iov_total(iov, n);
    ssize_t rv = 0;

    if (n < 0) {
        conn_put(c);
        errno = EINVAL;
        return -1;
    }
    if (total <= GATHER_MAX) {
        unsigned char *buf = malloc(total ? total : 1);
        size_t off = 0;
        if (buf == NULL) {
            conn_put(c);
            errno = ENOMEM;
            return -1;
        }
        for (int i = 0; i < n; i++) {
            memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
            off += iov[i].iov_len;
        }
        rv = conn_write(c, buf, total, flags);
        free(buf);
    } else {
        size_t done = 0;
        for (int i = 0; i < n; i++) {
            if (iov[i].iov_len == 0)
                continue;
            ssize_t w = conn_write(c, iov[i].iov_base, iov[i].iov_len, flags);
            if (w < 0) {
                rv = done > 0 ? (ssize_t)done : w;
                goto out;
            }
            done += (size_t)w;
            if ((size_t)w < iov[i].iov_len)
                break;
        }
        rv = (ssize_t)done;
    }
out:
    conn_put(c);
    return write_result(rv, flags);
}

static ssize_t
tracked_readv(struct conn *c, const struct iovec *iov, int n, int flags)
{
    size_t total = iov_total(iov, n);
    size_t cap = total < GATHER_MAX ? total : GATHER_MAX;
    unsigned char *buf;
    ssize_t rv;

    if (n < 0) {
        conn_put(c);
        errno = EINVAL;
        return -1;
    }
    buf = malloc(cap ? cap : 1);
    if (buf == NULL) {
        conn_put(c);
        errno = ENOMEM;
        return -1;
    }
    rv = conn_read(c, buf, cap, flags);
    conn_put(c);
    if (rv > 0) {
        size_t off = 0;
        for (int i = 0; i < n && off < (size_t)rv; i++) {
            size_t k = iov[i].iov_len;
            if (k > (size_t)rv - off)
                k = (size_t)rv - off;
            memcpy(iov[i].iov_base, buf + off, k);
            off += k;
        }
    }
    free(buf);
    return shim_ret(rv);
}

HOOK ssize_t
readv(int fd, const struct iovec *iov, int n)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        ENSURE(readv);
        return real.readv(fd, iov, n);
    }
    return tracked_readv(c, iov, n, 0);
}

HOOK ssize_t
writev(int fd, const struct iovec *iov, int n)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        ENSURE(writev);
        return real.writev(fd, iov, n);
    }
    if (n > 0 && passed_through(c, iov[0].iov_base, iov[0].iov_len))
        return real.writev(fd, iov, n);
    return tracked_writev(c, iov, n, 0);
}

HOOK ssize_t
recvmsg(int fd, struct msghdr *msg, int flags)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        ENSURE(recvmsg);
        return real.recvmsg(fd, msg, flags);
    }
    msg->msg_namelen = 0;
    msg->msg_controllen = 0;
    msg->msg_flags = 0;
    return tracked_readv(c, msg->msg_iov, (int)msg->msg_iovlen, flags);
}

HOOK ssize_t
sendmsg(int fd, const struct msghdr *msg, int flags)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        ENSURE(sendmsg);
        return real.sendmsg(fd, msg, flags);
    }
    if (msg->msg_iovlen > 0 &&
        passed_through(c, msg->msg_iov[0].iov_base, msg->msg_iov[0].iov_len))
        return real.sendmsg(fd, msg, flags);
    return tracked_writev(c, msg->msg_iov, (int)msg->msg_iovlen, flags);
}

/* fcntl on a tracked socket: O_NONBLOCK is the program's view; the real
 * socket stays non-blocking. */
static int
tracked_fcntl(struct conn *c, int (*fn)(int, int, ...), int fd, int cmd,
              void *arg)
{
    int rv;

    switch (cmd) {
    case F_GETFL:
        rv = fn(fd, cmd);
        if (rv >= 0)
            rv = conn_get_nonblock(c) ? (rv | O_NONBLOCK) : (rv & ~O_NONBLOCK);
        break;
    case F_SETFL:
        conn_set_nonblock(c, ((int)(intptr_t)arg & O_NONBLOCK) != 0);
        rv = fn(fd, cmd, (int)(intptr_t)arg | O_NONBLOCK);
        break;
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
        rv = fn(fd, cmd, (int)(intptr_t)arg);
        if (rv >= 0 && rv <= 2) {
            /* standard streams bypass the hooks (see hooks_fd.c) */
            real.close(rv);
            errno = EACCES;
            rv = -1;
        } else if (rv >= 0 && conn_attach_fd(c, rv) < 0) {
            real.close(rv);
            errno = EMFILE;
            rv = -1;
        }
        break;
    default:
        rv = fn(fd, cmd, arg);
        break;
    }
    conn_put(c);
    return rv;
}

static int
any_fcntl(int (*fn)(int, int, ...), int fd, int cmd, void *arg)
{
    struct conn *c = conn_get(fd);

    if (c == NULL)
        return fn(fd, cmd, arg);
    return tracked_fcntl(c, fn, fd, cmd, arg);
}

/* The argument is an int or a pointer; on the ABIs glibc supports both
 * travel in the same register, so it is passed on as a pointer. */
HOOK int
fcntl(int fd, int cmd, ...)
{
    va_list ap;
    void *arg;

    va_start(ap, cmd);
    arg = va_arg(ap, void *);
    va_end(ap);
    ENSURE(fcntl);
    return any_fcntl(real.fcntl, fd, cmd, arg);
}

HOOK int
fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    void *arg;

    va_start(ap, cmd);
    arg = va_arg(ap, void *);
    va_end(ap);
    ENSURE(fcntl64);
    return any_fcntl(real.fcntl64, fd, cmd, arg);
}

HOOK int
ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    void *arg;
    struct conn *c;

    va_start(ap, req);
    arg = va_arg(ap, void *);
    va_end(ap);
    ENSURE(ioctl);
    if ((req != FIONREAD && req != FIONBIO) || (c = conn_get(fd)) == NULL)
        return real.ioctl(fd, req, arg);
    if (arg == NULL) {
        conn_put(c);
        errno = EFAULT;
        return -1;
    }
    if (req == FIONREAD)
        *(int *)arg = conn_pending(c);
    else
        conn_set_nonblock(c, *(int *)arg != 0);
    conn_put(c);
    return 0;
}
