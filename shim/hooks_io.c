/*
 * The data path: every read and write entry point of libc, including the
 * _FORTIFY_SOURCE variants distribution binaries call.  An untracked fd
 * costs a table lookup and goes straight to the real call; a tracked one
 * goes to the connection engine, which returns plaintext.  Every call on
 * a tracked fd is reported to the epoll bookkeeping (hooks_poll.c), which
 * re-arms edge-triggered registrations after EAGAIN.  The batch and
 * zero-copy calls (recvmmsg, sendmmsg, sendfile, splice) are emulated one
 * message or one record at a time; splice from a TLS socket is not
 * supported (EINVAL).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conn.h"
#include "fdtable.h"
#include "log.h"
#include "shim.h"

#define GATHER_MAX 65536   /* iovecs up to this size are sent as one write */
#define COPY_CHUNK 16384   /* sendfile/splice: one TLS record at a time */

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

/* The engine calls, with the epoll bookkeeping told of the outcome. */
/* Level 3 (SPEC section 2): data sizes and the TLS state, per call. */
static void
log_io(const char *what, struct conn *c, int fd, ssize_t rv, size_t len)
{
    SSL *ssl = c->ssl;

    log_data("fd %d: %s %zd of %zu bytes (%s, TLS %s)", fd, what, rv, len,
             conn_state_name(c->state),
             ssl != NULL ? SSL_state_string_long(ssl) : "not started");
}

static ssize_t
engine_read(struct conn *c, int fd, void *buf, size_t len, int flags)
{
    ssize_t rv = conn_read(c, buf, len, flags);

    if (log_level() >= 3)
        log_io("read", c, fd, rv, len);
    shim_epoll_note_io(fd, c, rv == -EAGAIN ? EPOLLIN : 0);
    return rv;
}

static ssize_t
engine_write(struct conn *c, int fd, const void *buf, size_t len, int flags)
{
    int dead = conn_failed_on_data(c);
    ssize_t rv = conn_write(c, buf, len, flags);

    if (log_level() >= 3)
        log_io("write", c, fd, rv, len);
    /* The kernel reports a reset once (ECONNRESET, to a read or a write),
     * then refuses writes with EPIPE (and SIGPIPE, see write_result). */
    if (rv == -ECONNRESET && dead)
        rv = -EPIPE;
    shim_epoll_note_io(fd, c, rv == -EAGAIN ? EPOLLOUT : 0);
    return rv;
}

static ssize_t
tracked_read(struct conn *c, int fd, void *buf, size_t len, int flags)
{
    ssize_t rv = engine_read(c, fd, buf, len, flags);

    conn_put(c);
    return shim_ret(rv);
}

static ssize_t
tracked_write(struct conn *c, int fd, const void *buf, size_t len, int flags)
{
    ssize_t rv = engine_write(c, fd, buf, len, flags);

    conn_put(c);
    return write_result(rv, flags);
}

/* auto: a first write that is a TLS record hands the socket back;
 * enforce: only when the hooks on the program's TLS library bound it
 * (hooks_enforce.c), otherwise the connection fails here. */
static int
passed_through(struct conn *c, const void *buf, size_t len)
{
    /* audit: the first bytes are noted and the fd is the program's again */
    if (c->state == CONN_AUDIT) {
        conn_audit_bytes(c, buf, len, 1);
        conn_put(c);
        return 1;
    }
    if (c->state != CONN_AUTO_WAIT && c->state != CONN_CONNECTING)
        return 0;
    if (c->rule->action == POLICY_ENFORCE) {
        if (!shim_enforce_first_write(c, buf, len))
            return 0;
    } else if (c->rule->action != POLICY_AUTO ||
               !conn_auto_passthrough(c, buf, len)) {
        return 0;
    }
    conn_put(c);
    return 1;
}

/* The first bytes of a gather write, for passed_through(): at most len
 * bytes copied into buf; returns how many. */
static size_t
gather_head(const struct iovec *iov, size_t n, unsigned char *buf,
            size_t len)
{
    size_t got = 0;

    for (size_t i = 0; i < n && got < len; i++) {
        size_t take = iov[i].iov_len < len - got ? iov[i].iov_len
                                                 : len - got;
        if (take > 0)
            memcpy(buf + got, iov[i].iov_base, take);
        got += take;
    }
    return got;
}

/* passed_through() for gather writes: the head of every buffer counts
 * (GnuTLS writes a record header and its body as separate buffers). */
static int
passed_through_iov(struct conn *c, const struct iovec *iov, size_t n)
{
    unsigned char head[SHIM_HELLO_HEAD];

    if (c->state != CONN_AUDIT && c->state != CONN_AUTO_WAIT &&
        c->state != CONN_CONNECTING)
        return 0;
    return passed_through(c, head, gather_head(iov, n, head, sizeof(head)));
}

HOOK ssize_t
read(int fd, void *buf, size_t len)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        ENSURE(read);
        return real.read(fd, buf, len);
    }
    return tracked_read(c, fd, buf, len, 0);
}

HOOK ssize_t
__read_chk(int fd, void *buf, size_t len, size_t buflen)
{
    struct conn *c;

    ENSURE(read_chk);
    if (len > buflen || (c = conn_get(fd)) == NULL)
        return real.read_chk(fd, buf, len, buflen);   /* fails the check */
    return tracked_read(c, fd, buf, len, 0);
}

HOOK ssize_t
recv(int fd, void *buf, size_t len, int flags)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        ENSURE(recv);
        return real.recv(fd, buf, len, flags);
    }
    return tracked_read(c, fd, buf, len, flags);
}

HOOK ssize_t
__recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
    struct conn *c;

    ENSURE(recv_chk);
    if (len > buflen || (c = conn_get(fd)) == NULL)
        return real.recv_chk(fd, buf, len, buflen, flags);
    return tracked_read(c, fd, buf, len, flags);
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
    return tracked_read(c, fd, buf, len, flags);
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
    return tracked_read(c, fd, buf, len, flags);
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
    return tracked_write(c, fd, buf, len, 0);
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
    return tracked_write(c, fd, buf, len, flags);
}

/*
 * TCP Fast Open: sendto() or sendmsg() with MSG_FASTOPEN and an address
 * connects an unconnected TCP socket and sends in one call, past
 * connect().  Put the connection through the connect() hook first, so
 * that the policy applies as to any other (a deny rule refuses it, a TLS
 * rule wraps it); then the data goes as an ordinary send.  Returns 1 when
 * the socket is now connected, 0 when MSG_FASTOPEN does not apply here,
 * -1 with errno set when connect() failed or is still in progress
 * (EINPROGRESS, as TFO without a cookie says; the program sends again
 * once connected).
 */
static int
fastopen_connect(int fd, int flags, const struct sockaddr *to,
                 socklen_t tolen)
{
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    int saved = errno;

    if (!(flags & MSG_FASTOPEN) || to == NULL || !shim_is_inet_stream(fd))
        return 0;
    if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0 ||
        errno != ENOTCONN) {
        errno = saved;
        return 0;   /* connected already: the kernel ignores the flag */
    }
    errno = saved;
    return connect(fd, to, tolen) == 0 ? 1 : -1;
}

HOOK ssize_t
sendto(int fd, const void *buf, size_t len, int flags,
       const struct sockaddr *to, socklen_t tolen)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        ENSURE(sendto);
        switch (fastopen_connect(fd, flags, to, tolen)) {
        case 1:
            return send(fd, buf, len, flags & ~MSG_FASTOPEN);
        case -1:
            return -1;
        }
        return real.sendto(fd, buf, len, flags, to, tolen);
    }
    if (passed_through(c, buf, len))
        return real.sendto(fd, buf, len, flags, to, tolen);
    return tracked_write(c, fd, buf, len, flags);
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
 * buffer (one record instead of one per element).  Returns the bytes
 * taken or a negated errno; c stays referenced. */
static ssize_t
engine_writev(struct conn *c, int fd, const struct iovec *iov, int n,
              int flags)
{
    size_t total = iov_total(iov, n);
    ssize_t rv = 0;

    if (n < 0)
        return -EINVAL;
    if (total <= GATHER_MAX) {
        unsigned char *buf = malloc(total ? total : 1);
        size_t off = 0;
        if (buf == NULL)
            return -ENOMEM;
        for (int i = 0; i < n; i++) {
            memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
            off += iov[i].iov_len;
        }
        rv = engine_write(c, fd, buf, total, flags);
        free(buf);
        return rv;
    }
    size_t done = 0;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len == 0)
            continue;
        ssize_t w = engine_write(c, fd, iov[i].iov_base, iov[i].iov_len,
                                 flags);
        if (w < 0)
            return done > 0 ? (ssize_t)done : w;
        done += (size_t)w;
        if ((size_t)w < iov[i].iov_len)
            break;
    }
    return (ssize_t)done;
}

/* Read into a vector through one buffer.  Returns the bytes read or a
 * negated errno; c stays referenced. */
static ssize_t
engine_readv(struct conn *c, int fd, const struct iovec *iov, int n,
             int flags)
{
    size_t total = iov_total(iov, n);
    size_t cap = total < GATHER_MAX ? total : GATHER_MAX;
    unsigned char *buf;
    ssize_t rv;

    if (n < 0)
        return -EINVAL;
    buf = malloc(cap ? cap : 1);
    if (buf == NULL)
        return -ENOMEM;
    rv = engine_read(c, fd, buf, cap, flags);
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
    return rv;
}

static ssize_t
tracked_writev(struct conn *c, int fd, const struct iovec *iov, int n,
               int flags)
{
    ssize_t rv = engine_writev(c, fd, iov, n, flags);

    conn_put(c);
    return write_result(rv, flags);
}

static ssize_t
tracked_readv(struct conn *c, int fd, const struct iovec *iov, int n,
              int flags)
{
    ssize_t rv = engine_readv(c, fd, iov, n, flags);

    conn_put(c);
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
    return tracked_readv(c, fd, iov, n, 0);
}

HOOK ssize_t
writev(int fd, const struct iovec *iov, int n)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        ENSURE(writev);
        return real.writev(fd, iov, n);
    }
    if (n > 0 && passed_through_iov(c, iov, (size_t)n))
        return real.writev(fd, iov, n);
    return tracked_writev(c, fd, iov, n, 0);
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
    return tracked_readv(c, fd, msg->msg_iov, (int)msg->msg_iovlen, flags);
}

HOOK ssize_t
sendmsg(int fd, const struct msghdr *msg, int flags)
{
    struct conn *c = conn_get(fd);

    if (c == NULL) {
        ENSURE(sendmsg);
        switch (fastopen_connect(fd, flags, msg->msg_name, msg->msg_namelen)) {
        case 1: {
            struct msghdr m = *msg;
            m.msg_name = NULL;
            m.msg_namelen = 0;
            return sendmsg(fd, &m, flags & ~MSG_FASTOPEN);
        }
        case -1:
            return -1;
        }
        return real.sendmsg(fd, msg, flags);
    }
    if (msg->msg_iovlen > 0 &&
        passed_through_iov(c, msg->msg_iov, msg->msg_iovlen))
        return real.sendmsg(fd, msg, flags);
    return tracked_writev(c, fd, msg->msg_iov, (int)msg->msg_iovlen, flags);
}

/* Batches: a stream has no message boundaries, so recvmmsg fills one
 * message after another and stops at the first that would wait (after
 * the first one, i.e. MSG_WAITFORONE whatever the flags) or at EOF (a
 * message of length 0); the timeout is checked after each message, as
 * the kernel does.  UIO_MAXIOV bounds vlen as it does in the kernel. */
#define MMSG_MAX 1024

HOOK int
recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
         struct timespec *timeout)
{
    struct conn *c = conn_get(fd);
    int64_t deadline = -1;
    unsigned int i;

    if (c == NULL) {
        ENSURE(recvmmsg);
        return real.recvmmsg(fd, vec, vlen, flags, timeout);
    }
    if (timeout != NULL)
        deadline = util_now_ms() + (int64_t)timeout->tv_sec * 1000 +
                   timeout->tv_nsec / 1000000;
    if (vlen > MMSG_MAX)
        vlen = MMSG_MAX;
    flags &= ~MSG_WAITFORONE;
    for (i = 0; i < vlen; i++) {
        struct msghdr *m = &vec[i].msg_hdr;
        ssize_t n = engine_readv(c, fd, m->msg_iov, (int)m->msg_iovlen,
                                 i > 0 ? flags | MSG_DONTWAIT : flags);
        if (n < 0) {
            if (i == 0) {
                conn_put(c);
                return (int)shim_ret(n);
            }
            break;   /* the error shows at the next call */
        }
        m->msg_namelen = 0;
        m->msg_controllen = 0;
        m->msg_flags = 0;
        vec[i].msg_len = (unsigned int)n;
        if (n == 0 || (deadline >= 0 && util_now_ms() >= deadline)) {
            i++;
            break;
        }
    }
    conn_put(c);
    return (int)i;
}

HOOK int
sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
    struct conn *c = conn_get(fd);
    unsigned int i;

    if (c == NULL) {
        ENSURE(sendmmsg);
        if (vlen > 0) {
            switch (fastopen_connect(fd, flags, vec[0].msg_hdr.msg_name,
                                     vec[0].msg_hdr.msg_namelen)) {
            case 1:
                /* TCP ignores the addresses of a connected socket */
                return sendmmsg(fd, vec, vlen, flags & ~MSG_FASTOPEN);
            case -1:
                return -1;
            }
        }
        return real.sendmmsg(fd, vec, vlen, flags);
    }
    if (vlen > 0 && vec[0].msg_hdr.msg_iovlen > 0 &&
        passed_through_iov(c, vec[0].msg_hdr.msg_iov,
                           vec[0].msg_hdr.msg_iovlen))
        return real.sendmmsg(fd, vec, vlen, flags);
    if (vlen > MMSG_MAX)
        vlen = MMSG_MAX;
    for (i = 0; i < vlen; i++) {
        const struct msghdr *m = &vec[i].msg_hdr;
        size_t total = iov_total(m->msg_iov, (int)m->msg_iovlen);
        ssize_t n = engine_writev(c, fd, m->msg_iov, (int)m->msg_iovlen,
                                  flags);
        if (n < 0) {
            if (i == 0) {
                conn_put(c);
                return (int)write_result(n, flags);
            }
            break;
        }
        vec[i].msg_len = (unsigned int)n;
        if ((size_t)n < total) {
            i++;
            break;
        }
    }
    conn_put(c);
    return (int)i;
}

/* Would a write take a record now?  Asked before input is consumed, so
 * that a non-blocking copy never reads what it cannot write. */
static int
writable_now(struct conn *c)
{
    short kernel;
    int64_t deadline;

    return (conn_poll_check(c, POLLOUT, 0, &kernel, &deadline) &
            (POLLOUT | POLLERR)) != 0;
}

static int
readable_now(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return real.poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP));
}

/*
 * sendfile/splice with a TLS socket as the destination: read the source
 * with the real read/pread, one record at a time, and write through the
 * engine.  offset: pread from *offset and advance it (the source's file
 * position stays); otherwise the source's position moves by what was
 * written (a part read but not written is sought back; a pipe cannot
 * be, which the writability check before each read makes moot).
 * from_pipe: after the first record, copy only what the pipe already
 * holds.  Returns the bytes written or a negated errno.
 */
static ssize_t
copy_to_conn(struct conn *c, int out_fd, int in_fd, off_t *offset,
             size_t count, int flags, int from_pipe)
{
    int nonblock = (flags & MSG_DONTWAIT) || conn_get_nonblock(c);
    unsigned char *buf = malloc(COPY_CHUNK);
    off_t pos = offset != NULL ? *offset : 0;
    size_t done = 0;
    ssize_t rv = 0;

    if (buf == NULL)
        return -ENOMEM;
    while (done < count) {
        size_t want = count - done < COPY_CHUNK ? count - done : COPY_CHUNK;
        if (nonblock && !writable_now(c)) {
            rv = -EAGAIN;
            break;
        }
        if (from_pipe && (done > 0 || nonblock) && !readable_now(in_fd)) {
            rv = -EAGAIN;
            break;
        }
        ssize_t n = offset != NULL
                        ? pread(in_fd, buf, want, pos + (off_t)done)
                        : real.read(in_fd, buf, want);
        if (n <= 0) {
            rv = n < 0 ? -errno : 0;
            break;
        }
        ssize_t w = engine_write(c, out_fd, buf, (size_t)n, flags);
        if (w < (ssize_t)n && offset == NULL && !from_pipe)
            (void)lseek(in_fd, -(off_t)(n - (w > 0 ? w : 0)), SEEK_CUR);
        if (w < 0) {
            rv = w;
            break;
        }
        done += (size_t)w;
        if (w < n)
            break;
    }
    free(buf);
    if (offset != NULL)
        *offset = pos + (off_t)done;
    return done > 0 ? (ssize_t)done : rv;
}

static ssize_t
tracked_sendfile(struct conn *c, int out_fd, int in_fd, off_t *offset,
                 size_t count)
{
    struct conn *src = conn_get(in_fd);
    ssize_t rv;

    if (src != NULL) {
        /* the kernel refuses a socket as the source */
        conn_put(src);
        rv = -EINVAL;
    } else {
        rv = copy_to_conn(c, out_fd, in_fd, offset, count, 0, 0);
    }
    conn_put(c);
    return write_result(rv, 0);
}

HOOK ssize_t
sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    struct conn *c = conn_get(out_fd);

    if (c == NULL) {
        ENSURE(sendfile);
        return real.sendfile(out_fd, in_fd, offset, count);
    }
    return tracked_sendfile(c, out_fd, in_fd, offset, count);
}

HOOK ssize_t
sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count)
{
    struct conn *c = conn_get(out_fd);

    if (c == NULL) {
        ENSURE(sendfile64);
        return real.sendfile64(out_fd, in_fd, offset, count);
    }
    _Static_assert(sizeof(off_t) == sizeof(off64_t), "64-bit off_t");
    return tracked_sendfile(c, out_fd, in_fd, (off_t *)offset, count);
}

/* splice into a TLS socket from a pipe.  From a TLS socket it would need
 * the plaintext in a pipe the kernel fills: not supported (EINVAL). */
HOOK ssize_t
splice(int in_fd, loff_t *off_in, int out_fd, loff_t *off_out, size_t len,
       unsigned int flags)
{
    struct conn *c, *src = conn_get(in_fd);
    struct stat st;
    ssize_t rv;

    ENSURE(splice);
    if (src != NULL) {
        conn_put(src);
        errno = EINVAL;
        return -1;
    }
    if ((c = conn_get(out_fd)) == NULL)
        return real.splice(in_fd, off_in, out_fd, off_out, len, flags);
    if (fstat(in_fd, &st) < 0)
        rv = -errno;
    else if (!S_ISFIFO(st.st_mode))
        rv = -EINVAL;        /* one end must be a pipe */
    else if (off_in != NULL || off_out != NULL)
        rv = -ESPIPE;
    else
        rv = copy_to_conn(c, out_fd, in_fd, NULL, len,
                          (flags & SPLICE_F_NONBLOCK) ? MSG_DONTWAIT : 0, 1);
    conn_put(c);
    return write_result(rv, 0);
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
        if (rv >= 0 && conn_owns_flags(c))
            rv = conn_get_nonblock(c) ? (rv | O_NONBLOCK) : (rv & ~O_NONBLOCK);
        break;
    case F_SETFL:
        conn_set_nonblock(c, ((int)(intptr_t)arg & O_NONBLOCK) != 0);
        rv = fn(fd, cmd, (int)(intptr_t)arg |
                             (conn_owns_flags(c) ? O_NONBLOCK : 0));
        break;
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
        if (shim_in_vfork_child()) {
            /* no relay can be made there (see hooks_fd.c) */
            log_error("fd %d: copy of a TLS connection in a vfork() child "
                      "refused: no relay can be made there", fd);
            errno = EACCES;
            rv = -1;
            break;
        }
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

    if (c == NULL) {
        int rv = fn(fd, cmd, arg);
        if (rv >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
            shim_epoll_dup_fd(fd, rv);   /* an epoll fd: the same set */
        return rv;
    }
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
    int v;

    va_start(ap, req);
    arg = va_arg(ap, void *);
    va_end(ap);
    ENSURE(ioctl);
    if ((req != FIONREAD && req != FIONBIO) || (c = conn_get(fd)) == NULL)
        return real.ioctl(fd, req, arg);
    /* The int may be at any address, as the kernel allows (Python's
     * fcntl.ioctl passes a bytes buffer): copied, never dereferenced. */
    if (!conn_owns_flags(c)) {
        /* an audited socket is the program's own */
        if (req == FIONBIO && arg != NULL) {
            memcpy(&v, arg, sizeof(v));
            conn_set_nonblock(c, v != 0);
        }
        conn_put(c);
        return real.ioctl(fd, req, arg);
    }
    if (arg == NULL) {
        conn_put(c);
        errno = EFAULT;
        return -1;
    }
    if (req == FIONREAD) {
        v = conn_fionread(c);
        memcpy(arg, &v, sizeof(v));
    } else {
        memcpy(&v, arg, sizeof(v));
        conn_set_nonblock(c, v != 0);
    }
    conn_put(c);
    return 0;
}
