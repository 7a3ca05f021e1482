/*
 * sockcalls: the less common socket calls on one connection to an echo
 * server (or, for sigpipe, a server that closes), for the end-to-end
 * tests of SPEC section 5: the program must see what the kernel would
 * show it on a TCP socket.
 *
 *     sockcalls [-w SECONDS] MODE HOST PORT [ARGS...]
 *
 * Modes:
 *
 *   select IN OUT   the socket moved to fd >= 900 (F_DUPFD); IN sent and
 *                   its echo read after select(), pselect() and __select()
 *                   in turn; then a set naming a closed fd fails with EBADF
 *                   (with and without the TLS socket in it) and leaves the
 *                   sets alone.  Prints "select: fd=N ebadf=ok".
 *   ppoll           ppoll() on an idle socket times out after its timeout;
 *                   a pending blocked signal that ppoll's mask unblocks
 *                   interrupts it (EINTR, handler run); one its mask keeps
 *                   blocked does not; then an echo is reported as POLLIN.
 *   flags IN OUT    recv(MSG_DONTWAIT) on the idle blocking socket fails
 *                   with EAGAIN at once; after IN is sent, MSG_PEEK returns
 *                   bytes that read() returns again, FIONREAD is > 0 and
 *                   MSG_WAITALL returns all the rest in one call.
 *   sigpipe [-n|-i] the peer answers one line and resets the connection;
 *                   after the reply and the reset (read: EOF or
 *                   ECONNRESET), writing raises SIGPIPE (the process dies
 *                   of it), or with -n (MSG_NOSIGNAL) or -i (SIGPIPE
 *                   ignored) fails with EPIPE.  Prints "sigpipe: read
 *                   ended with NAME" and "sigpipe: errno=NAME after N
 *                   writes".
 *   eintr [-r|-t]   a blocking read() interrupted by SIGUSR2 (sent to it by
 *                   another thread at 200 ms) whose handler has no
 *                   SA_RESTART fails with EINTR; with -r (SA_RESTART) it
 *                   goes on and returns the echo of a line the thread
 *                   writes at 600 ms; with -t (SA_RESTART and SO_RCVTIMEO)
 *                   it fails with EINTR, as the kernel's does.  With -c,
 *                   the program first installs a crash handler as crash
 *                   reporters and sanitizers do: SIGSEGV, SIGBUS, SIGFPE
 *                   and SIGILL handlers without SA_RESTART (which a fault
 *                   raises in the faulting thread, never in a wait).
 *                   Prints "eintr: read ... handler=N".
 *   mmsg IN OUT     IN sent with one sendmmsg() of 4 messages of 2 iovecs;
 *                   the echo read with recvmmsg(MSG_WAITFORONE) into 8
 *                   buffers per call.
 *   sendfile IN OUT  IN sent with sendfile64() from an offset for the first
 *                   half and sendfile() from the file position for the
 *                   rest; the file position must end at the end.
 *   splice IN OUT   IN written into a pipe by a thread and spliced into
 *                   the socket; splice from the socket fails with EINVAL.
 *   cork IN OUT     TCP_CORK set, IN sent in 64 writes, TCP_CORK cleared.
 *
 * Errors are reported as "sockcalls: CALL: strerror errno=NAME".
 * Exit status: 0 success, 1 wrong behaviour, 2 usage, 3 connect error,
 * 4 I/O error, 5 the overall timeout (30 s, or -w SECONDS) expired.
 */
#define _GNU_SOURCE
#define PROG "sockcalls"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "progutil.h"

/* glibc exports it; no header declares it */
int __select(int, fd_set *, fd_set *, fd_set *, struct timeval *);

static const char *host, *port;

/* Read exactly len bytes (blocking socket). */
static void
read_exact(int fd, unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = read(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die_io("read", n < 0 ? errno : EIO);
        buf += n;
        len -= (size_t)n;
    }
}

/* Read the echo of len bytes into a new buffer and write it to out. */
static void
echo_to_file(int fd, size_t len, const char *out)
{
    unsigned char *buf = malloc(len + 1);

    if (buf == NULL)
        die_io("malloc", ENOMEM);
    read_exact(fd, buf, len);
    write_file(out, buf, len);
    free(buf);
}

/* --- select ------------------------------------------------------------ */

static int
mode_select(const char *in, const char *out)
{
    size_t len, got = 0;
    unsigned char *msg = read_file(in, &len), *echo = malloc(len + 1);
    int s = connect_to(host, port, 0, NULL), fd = fcntl(s, F_DUPFD, 900),
        round = 0;
    fd_set rd, wr, keep;

    if (fd < 900 || echo == NULL)
        die_io("fcntl F_DUPFD", errno);
    close(s);
    write_all_or_die(fd, msg, len);
    while (got < len) {
        struct timeval tv = {5, 0};
        struct timespec ts = {5, 0};
        int n;
        FD_ZERO(&rd);
        FD_SET(fd, &rd);
        switch (round++ % 3) {
        case 0:
            n = select(fd + 1, &rd, NULL, NULL, &tv);
            break;
        case 1:
            n = pselect(fd + 1, &rd, NULL, NULL, &ts, NULL);
            break;
        default:
            n = __select(fd + 1, &rd, NULL, NULL, &tv);
            break;
        }
        if (n != 1 || !FD_ISSET(fd, &rd))
            wrong("the TLS socket not reported readable");
        ssize_t r = read(fd, echo + got, len + 1 - got);
        if (r <= 0)
            die_io("read", r < 0 ? errno : EIO);
        got += (size_t)r;
    }
    if (got != len)
        wrong("more bytes than sent");
    write_file(out, echo, got);

    /* EBADF: fd 950 is not open */
    struct timeval tv = {1, 0};
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_SET(fd, &wr);
    FD_SET(950, &rd);
    keep = rd;
    if (select(951, &rd, &wr, NULL, &tv) != -1 || errno != EBADF)
        wrong("select with a closed fd and the TLS socket: no EBADF");
    if (memcmp(&keep, &rd, sizeof(rd)) != 0 || !FD_ISSET(fd, &wr))
        wrong("select changed the sets on EBADF");
    FD_ZERO(&rd);
    FD_SET(950, &rd);
    if (select(951, &rd, NULL, NULL, &tv) != -1 || errno != EBADF)
        wrong("select with a closed fd: no EBADF");
    FD_ZERO(&rd);
    FD_SET(fd, &rd);
    FD_SET(950, &rd);
    struct timespec ts = {1, 0};
    if (pselect(951, &rd, NULL, NULL, &ts, NULL) != -1 || errno != EBADF)
        wrong("pselect with a closed fd and the TLS socket: no EBADF");
    printf("select: fd=%d ebadf=ok\n", fd);
    return 0;
}

/* --- ppoll ------------------------------------------------------------- */

static volatile sig_atomic_t usr1_count;

static void
on_usr1(int sig)
{
    (void)sig;
    usr1_count++;
}

static int
mode_ppoll(void)
{
    int fd = connect_to(host, port, 0, NULL);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    struct timespec ts = {0, 300 * 1000000L};
    struct sigaction sa;
    sigset_t block, open_mask, all;
    int64_t t0;
    int n;

    /* a timeout on an idle TLS socket */
    t0 = now_ms();
    n = ppoll(&p, 1, &ts, NULL);
    if (n != 0 || now_ms() - t0 < 250)
        wrong("ppoll did not time out after 300 ms");
    printf("ppoll: timeout after %lld ms\n", (long long)(now_ms() - t0));

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, NULL);

    /* pending and blocked; the mask given to ppoll lets it in */
    raise(SIGUSR1);
    sigprocmask(SIG_BLOCK, NULL, &open_mask);
    sigdelset(&open_mask, SIGUSR1);
    ts.tv_sec = 5;
    ts.tv_nsec = 0;
    t0 = now_ms();
    n = ppoll(&p, 1, &ts, &open_mask);
    if (n != -1 || errno != EINTR || usr1_count != 1 || now_ms() - t0 > 2000)
        wrong("ppoll's mask did not let the pending signal interrupt it");
    printf("ppoll: EINTR through the mask, handler=%d\n", (int)usr1_count);

    /* pending; the mask given to ppoll keeps it out */
    raise(SIGUSR1);
    sigfillset(&all);
    ts.tv_sec = 0;
    ts.tv_nsec = 200 * 1000000L;
    n = ppoll(&p, 1, &ts, &all);
    if (n != 0 || usr1_count != 1)
        wrong("a signal ppoll's mask blocks interrupted it");
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    if (usr1_count != 2)
        wrong("the blocked signal was lost");
    printf("ppoll: blocked by the mask, delivered after\n");

    /* readable when the echo is there */
    write_all_or_die(fd, (const unsigned char *)"ping\n", 5);
    ts.tv_sec = 5;
    n = ppoll(&p, 1, &ts, &all);
    if (n != 1 || !(p.revents & POLLIN))
        wrong("ppoll did not report the echo");
    unsigned char buf[5];
    read_exact(fd, buf, 5);
    if (memcmp(buf, "ping\n", 5) != 0)
        wrong("echo differs");
    printf("ppoll: echo reported\n");
    return 0;
}

/* --- flags ------------------------------------------------------------- */

/* ioctl(fd, req) with its int at an odd address; returns the int after. */
static int
odd_int_ioctl(int fd, unsigned long req, int value)
{
    _Alignas(int) unsigned char buf[2 * sizeof(int)];
    int v = value;

    memcpy(buf + 1, &v, sizeof(v));
    if (ioctl(fd, req, buf + 1) < 0)
        die_io("ioctl at an odd address", errno);
    memcpy(&v, buf + 1, sizeof(v));
    return v;
}

static int
mode_flags(const char *in, const char *out)
{
    size_t len;
    unsigned char *msg = read_file(in, &len), *echo = malloc(len + 1);
    unsigned char peek[100];
    int fd = connect_to(host, port, 0, NULL), avail = 0;
    int64_t t0;
    ssize_t n;

    if (len < 200 || echo == NULL)
        wrong("input too short");
    t0 = now_ms();
    n = recv(fd, echo, 10, MSG_DONTWAIT);
    if (n != -1 || errno != EAGAIN || now_ms() - t0 > 500)
        wrong("MSG_DONTWAIT on a blocking idle socket: no EAGAIN at once");
    printf("flags: MSG_DONTWAIT EAGAIN in %lld ms\n",
           (long long)(now_ms() - t0));
    /* FIONBIO's int at an odd address, as Python's fcntl.ioctl passes it */
    odd_int_ioctl(fd, FIONBIO, 1);
    n = recv(fd, echo, 10, 0);
    if (n != -1 || errno != EAGAIN)
        wrong("FIONBIO 1 at an odd address: a read did not fail with EAGAIN");
    odd_int_ioctl(fd, FIONBIO, 0);
    write_all_or_die(fd, msg, len);

    n = recv(fd, peek, sizeof(peek), MSG_PEEK | MSG_WAITALL);
    if (n <= 0)
        die_io("recv MSG_PEEK", n < 0 ? errno : EIO);
    if (ioctl(fd, FIONREAD, &avail) < 0)
        die_io("ioctl FIONREAD", errno);
    if (avail < n)
        wrong("FIONREAD below what MSG_PEEK returned");
    if (odd_int_ioctl(fd, FIONREAD, 0) < avail)
        wrong("FIONREAD at an odd address below the first one");
    printf("flags: FIONBIO and FIONREAD at an odd address\n");
    read_exact(fd, echo, (size_t)n);
    if (memcmp(peek, echo, (size_t)n) != 0)
        wrong("read after MSG_PEEK returned other bytes");
    printf("flags: MSG_PEEK %zd bytes read again, FIONREAD %d\n", n, avail);

    size_t rest = len - (size_t)n;
    ssize_t w = recv(fd, echo + n, rest, MSG_WAITALL);
    if (w != (ssize_t)rest)
        wrong("MSG_WAITALL returned less than asked");
    printf("flags: MSG_WAITALL %zd bytes in one call\n", w);
    write_file(out, echo, len);
    return 0;
}

/* --- sigpipe ----------------------------------------------------------- */

static int
mode_sigpipe(int nosignal, int ignore)
{
    int fd = connect_to(host, port, 0, NULL), writes = 0;
    unsigned char buf[256];
    ssize_t n;

    if (ignore)
        signal(SIGPIPE, SIG_IGN);
    else
        signal(SIGPIPE, SIG_DFL);
    write_all_or_die(fd, (const unsigned char *)"hello\n", 6);
    /* the reply, then the peer's reset (or close) */
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        ;
    if (n < 0 && errno != ECONNRESET)
        die_io("read", errno);
    printf("sigpipe: read ended with %s\n", n == 0 ? "EOF" : errname(errno));
    usleep(100 * 1000);
    memset(buf, 'w', sizeof(buf));
    for (writes = 1; writes <= 50; writes++) {
        n = nosignal ? send(fd, buf, sizeof(buf), MSG_NOSIGNAL)
                     : write(fd, buf, sizeof(buf));
        if (n < 0)
            break;
        usleep(50 * 1000);
    }
    if (n >= 0)
        wrong("writes to a closed peer kept succeeding");
    printf("sigpipe: errno=%s after %d writes\n", errname(errno), writes);
    return 0;
}

/* --- eintr ------------------------------------------------------------- */

static volatile sig_atomic_t usr2_count;
static int eintr_fd;
static pthread_t eintr_reader;

static void
on_usr2(int sig)
{
    (void)sig;
    usr2_count++;
}

static void
on_crash(int sig, siginfo_t *info, void *ctx)
{
    static const char msg[] = "sockcalls: crashed\n";

    (void)info;
    (void)ctx;
    (void)!write(2, msg, sizeof(msg) - 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* A crash reporter's handlers: SA_SIGINFO, no SA_RESTART. */
static void
install_crash_handler(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (sigaction(sigs[i], &sa, NULL) < 0)
            die_io("sigaction", errno);
}

static void *
late_writer(void *arg)
{
    (void)arg;
    usleep(200 * 1000);
    pthread_kill(eintr_reader, SIGUSR2);
    usleep(400 * 1000);
    write_all_or_die(eintr_fd, (const unsigned char *)"late\n", 5);
    return NULL;
}

static int
mode_eintr(int restart, int timeout, int crash_handler)
{
    struct sigaction sa;
    pthread_t th;
    unsigned char buf[64];
    int64_t t0;
    ssize_t n;

    if (crash_handler)
        install_crash_handler();
    eintr_fd = connect_to(host, port, 0, NULL);
    if (timeout) {
        struct timeval tv = {5, 0};
        if (setsockopt(eintr_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
            die_io("setsockopt", errno);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr2;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
    eintr_reader = pthread_self();
    t0 = now_ms();
    if (pthread_create(&th, NULL, late_writer, NULL) != 0)
        die_io("pthread_create", errno);
    n = read(eintr_fd, buf, sizeof(buf));
    int e = errno;
    long long ms = (long long)(now_ms() - t0);
    if (n < 0) {
        printf("eintr: read errno=%s after %lld ms handler=%d\n", errname(e),
               ms, (int)usr2_count);
        if (e != EINTR)
            die_io("read", e);
        /* the stream is intact: the line still comes */
        read_exact(eintr_fd, buf, 5);
    } else {
        printf("eintr: read %zd bytes after %lld ms handler=%d\n", n, ms,
               (int)usr2_count);
        if (n < 5)
            read_exact(eintr_fd, buf + n, (size_t)(5 - n));
    }
    if (memcmp(buf, "late\n", 5) != 0)
        wrong("echo differs");
    pthread_join(th, NULL);
    printf("eintr: echo intact\n");
    return 0;
}

/* --- mmsg -------------------------------------------------------------- */

static int
mode_mmsg(const char *in, const char *out)
{
    size_t len, got = 0;
    unsigned char *msg = read_file(in, &len), *echo = malloc(len + 1);
    struct mmsghdr mv[8];
    struct iovec iov[16];
    unsigned char bufs[8][8192];
    int fd = connect_to(host, port, 0, NULL), calls = 0, msgs = 0;
    size_t part = len / 4;

    if (len < 64 || echo == NULL)
        wrong("input too short");
    memset(mv, 0, sizeof(mv));
    for (int i = 0; i < 4; i++) {
        size_t off = (size_t)i * part, plen = i == 3 ? len - off : part;
        iov[2 * i].iov_base = msg + off;
        iov[2 * i].iov_len = plen / 2;
        iov[2 * i + 1].iov_base = msg + off + plen / 2;
        iov[2 * i + 1].iov_len = plen - plen / 2;
        mv[i].msg_hdr.msg_iov = &iov[2 * i];
        mv[i].msg_hdr.msg_iovlen = 2;
    }
    int n = sendmmsg(fd, mv, 4, 0);
    if (n != 4)
        wrong("sendmmsg did not send 4 messages");
    size_t sent = 0;
    for (int i = 0; i < 4; i++)
        sent += mv[i].msg_len;
    if (sent != len)
        wrong("sendmmsg lengths do not add up");
    printf("mmsg: sendmmsg 4 messages, %zu bytes\n", sent);
    while (got < len) {
        memset(mv, 0, sizeof(mv));
        for (int i = 0; i < 8; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof(bufs[i]);
            mv[i].msg_hdr.msg_iov = &iov[i];
            mv[i].msg_hdr.msg_iovlen = 1;
        }
        n = recvmmsg(fd, mv, 8, MSG_WAITFORONE, NULL);
        if (n <= 0)
            die_io("recvmmsg", n < 0 ? errno : EIO);
        calls++;
        for (int i = 0; i < n; i++) {
            if (mv[i].msg_len == 0)
                wrong("EOF before the whole echo");
            if (got + mv[i].msg_len > len)
                wrong("more bytes than sent");
            memcpy(echo + got, bufs[i], mv[i].msg_len);
            got += mv[i].msg_len;
            msgs++;
        }
    }
    write_file(out, echo, got);
    printf("mmsg: recvmmsg %d messages in %d calls\n", msgs, calls);
    return 0;
}

/* --- sendfile ---------------------------------------------------------- */

static int
mode_sendfile(const char *in, const char *out)
{
    typedef ssize_t (*sendfile_fn)(int, int, off_t *, size_t);
    sendfile_fn plain = (sendfile_fn)dlsym(RTLD_DEFAULT, "sendfile");
    struct stat st;
    int fd = connect_to(host, port, 0, NULL), f = open(in, O_RDONLY);
    off64_t off = 0;
    size_t len, half;
    ssize_t n;

    if (f < 0 || fstat(f, &st) < 0 || plain == NULL)
        die_io(in, errno);
    len = (size_t)st.st_size;
    half = len / 2;
    /* from an offset: the file position stays */
    while ((size_t)off < half) {
        n = sendfile64(fd, f, &off, half - (size_t)off);
        if (n <= 0)
            die_io("sendfile64", n < 0 ? errno : EIO);
    }
    if (lseek(f, 0, SEEK_CUR) != 0)
        wrong("sendfile64 with an offset moved the file position");
    /* from the file position */
    if (lseek(f, (off_t)half, SEEK_SET) < 0)
        die_io("lseek", errno);
    size_t done = half;
    while (done < len) {
        n = plain(fd, f, NULL, len - done);
        if (n <= 0)
            die_io("sendfile", n < 0 ? errno : EIO);
        done += (size_t)n;
    }
    if (lseek(f, 0, SEEK_CUR) != (off_t)len)
        wrong("sendfile did not move the file position to the end");
    echo_to_file(fd, len, out);
    printf("sendfile: %zu bytes\n", len);
    return 0;
}

/* --- splice ------------------------------------------------------------ */

struct feeder {
    int fd;
    const unsigned char *buf;
    size_t len;
};

static void *
feed_pipe(void *arg)
{
    struct feeder *f = arg;

    write_all_or_die(f->fd, f->buf, f->len);
    close(f->fd);
    return NULL;
}

static int
mode_splice(const char *in, const char *out)
{
    size_t len, done = 0;
    unsigned char *msg = read_file(in, &len);
    int fd = connect_to(host, port, 0, NULL), p[2];
    struct feeder f;
    pthread_t th;
    ssize_t n;

    if (pipe(p) < 0)
        die_io("pipe", errno);
    f.fd = p[1];
    f.buf = msg;
    f.len = len;
    if (pthread_create(&th, NULL, feed_pipe, &f) != 0)
        die_io("pthread_create", errno);
    while ((n = splice(p[0], NULL, fd, NULL, 65536, SPLICE_F_MORE)) > 0)
        done += (size_t)n;
    if (n < 0)
        die_io("splice", errno);
    pthread_join(th, NULL);
    if (done != len)
        wrong("splice moved a different count");
    echo_to_file(fd, len, out);
    close(p[0]);
    if (pipe(p) < 0)
        die_io("pipe", errno);
    n = splice(fd, NULL, p[1], NULL, 10, SPLICE_F_NONBLOCK);
    if (n != -1 || errno != EINVAL)
        wrong("splice from a TLS socket did not fail with EINVAL");
    printf("splice: %zu bytes; from the TLS socket: EINVAL\n", done);
    return 0;
}

/* --- cork -------------------------------------------------------------- */

static int
mode_cork(const char *in, const char *out)
{
    size_t len, piece;
    unsigned char *msg = read_file(in, &len);
    int fd = connect_to(host, port, 0, NULL), on = 1, off = 0, v = -1;
    socklen_t vl = sizeof(v);

    if (setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)) < 0)
        die_io("setsockopt TCP_CORK", errno);
    if (getsockopt(fd, IPPROTO_TCP, TCP_CORK, &v, &vl) < 0 || v != 1)
        wrong("TCP_CORK not set on the socket");
    piece = (len + 63) / 64;
    for (size_t sent = 0; sent < len; sent += piece)
        write_all_or_die(fd, msg + sent,
                         len - sent < piece ? len - sent : piece);
    if (setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof(off)) < 0)
        die_io("setsockopt TCP_CORK", errno);
    echo_to_file(fd, len, out);
    printf("cork: %zu bytes in 64 writes\n", len);
    return 0;
}

static void
usage(void)
{
    fprintf(stderr, "usage: sockcalls [-w SECONDS] [-n] [-i] [-r] [-t] [-c] "
                    "MODE HOST PORT [ARGS...]\n");
    exit(EXIT_USAGE);
}

int
main(int argc, char **argv)
{
    int opt, seconds = 30, nosignal = 0, ignore = 0, restart = 0, timeout = 0;
    int crash_handler = 0;
    const char *mode;

    while ((opt = getopt(argc, argv, "w:nirtc")) != -1) {
        switch (opt) {
        case 'w':
            seconds = (int)positive_arg(optarg, "-w");
            break;
        case 'n':
            nosignal = 1;
            break;
        case 'i':
            ignore = 1;
            break;
        case 'r':
            restart = 1;
            break;
        case 't':
            restart = timeout = 1;
            break;
        case 'c':
            crash_handler = 1;
            break;
        default:
            usage();
        }
    }
    if (argc - optind < 3)
        usage();
    mode = argv[optind];
    host = argv[optind + 1];
    port = argv[optind + 2];
    argv += optind + 3;
    argc -= optind + 3;
    /* the watchdog restarts what it interrupts, as signal() does in glibc
     * (not under TSan, whose signal() sets no SA_RESTART: the eintr mode
     * must see SIGUSR2's handler alone decide) */
    struct sigaction alarm_sa;
    memset(&alarm_sa, 0, sizeof(alarm_sa));
    alarm_sa.sa_handler = on_alarm;
    alarm_sa.sa_flags = SA_RESTART;
    sigemptyset(&alarm_sa.sa_mask);
    sigaction(SIGALRM, &alarm_sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm((unsigned)seconds);
    if (strcmp(mode, "sigpipe") != 0)
        signal(SIGPIPE, SIG_IGN);

    if (strcmp(mode, "select") == 0 && argc == 2)
        return mode_select(argv[0], argv[1]);
    if (strcmp(mode, "ppoll") == 0 && argc == 0)
        return mode_ppoll();
    if (strcmp(mode, "flags") == 0 && argc == 2)
        return mode_flags(argv[0], argv[1]);
    if (strcmp(mode, "sigpipe") == 0 && argc == 0)
        return mode_sigpipe(nosignal, ignore);
    if (strcmp(mode, "eintr") == 0 && argc == 0)
        return mode_eintr(restart, timeout, crash_handler);
    if (strcmp(mode, "mmsg") == 0 && argc == 2)
        return mode_mmsg(argv[0], argv[1]);
    if (strcmp(mode, "sendfile") == 0 && argc == 2)
        return mode_sendfile(argv[0], argv[1]);
    if (strcmp(mode, "splice") == 0 && argc == 2)
        return mode_splice(argv[0], argv[1]);
    if (strcmp(mode, "cork") == 0 && argc == 2)
        return mode_cork(argv[0], argv[1]);
    usage();
    return EXIT_USAGE;
}
