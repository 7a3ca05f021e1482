/*
 * tlsbench: the client and the server of the tlsshim benchmark
 * (tests/bench/bench.sh).  One source, built twice: tlsbench_native does
 * TLS itself with OpenSSL (verification on: the test PKI's CA, the peer's
 * IP address checked against the certificate's IP SANs); tlsbench_plain,
 * built with -DTLSBENCH_PLAIN, is the same program on plain sockets, which
 * tlsshim or stunnel turn into TLS.  So the only difference between the
 * runs compared is who does TLS.
 *
 *   tlsbench_native server -t CERT KEY     serve on 127.0.0.1, port printed
 *   tlsbench_plain  server                 as "PORT n" on stdout
 *   tlsbench_native client -t CA [-c] -p PORT TEST [ARG]
 *   tlsbench_plain  client [-c] -p PORT TEST [ARG]
 *   tlsbench_plain  port                   print a free port on 127.0.0.1
 *
 * Tests (one line of key=value figures on stdout):
 *
 *   upload BYTES        send BYTES to the server; mbps= (MB/s, 10^6)
 *   download BYTES      receive BYTES from the server; mbps=
 *   handshakes SECONDS  a new connection per request (connect, handshake,
 *                       1-byte request, 1-byte answer, close) for SECONDS;
 *                       hps= and n= (and resumed=, proto=, cipher= when
 *                       native)
 *   resumed SECONDS     the same, offering the latest session (native; the
 *                       plain twin's resumption is tlsshim's or stunnel's)
 *                       (both: ARG "Nx" for exactly N handshakes)
 *   once                one connection, one 1-byte request and answer,
 *                       then exit, as a short-lived program does (bench.sh
 *                       runs it as one process per connection); prints
 *                       nothing
 *   latency COUNT       COUNT 64-byte messages echoed over one connection;
 *                       p50_us= p99_us=
 *   idle COUNT          hold COUNT connections open in one epoll set;
 *                       client_kib= server_kib= (RSS growth per connection)
 *   stats               the server's handshake counters since the last
 *                       stats request, and its latest protocol and cipher
 *
 * -c checks every byte of the bulk transfers against the expected pattern
 * (quick mode).  The server is a single-threaded, non-blocking,
 * level-triggered epoll loop, as event-driven servers are.
 *
 * Wire protocol: the client opens with OP (1 byte) and ARG (8 bytes, big
 * endian); 'U' ARG bytes follow, answered with "k"; 'D' the server sends
 * ARG bytes; 'E' echo until EOF; 'H' answered with "k"; 'M' answered with
 * the server's RSS in KiB and a newline; 'S' answered with a stats line.
 * After an answer the server waits for the next OP or EOF.
 *
 * Exit status: 0 success, 2 usage, 4 a measurement failed.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef TLSBENCH_PLAIN
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif

#define EXIT_USAGE 2
#define EXIT_IO 4

#define CHUNK 65536    /* bulk write and read size */
#define PERIOD 65521   /* bulk payload: a pattern with a prime period */
#define ECHO_BUF 16384 /* server echo buffer, allocated per echo conn */
#define MSG_SIZE 64    /* latency test message */
#define HEADER_SIZE 9  /* OP + 64-bit ARG */

static unsigned char pattern[PERIOD + CHUNK];

static void
die(const char *what)
{
    fprintf(stderr, "tlsbench: %s: %s\n", what,
            errno != 0 ? strerror(errno) : "failed");
    exit(EXIT_IO);
}

static void
diex(const char *what)
{
    fprintf(stderr, "tlsbench: %s\n", what);
    exit(EXIT_IO);
}

#ifndef TLSBENCH_PLAIN
static void
die_ssl(const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256];

    if (e == 0) {
        die(what);
    }
    ERR_error_string_n(e, buf, sizeof(buf));
    fprintf(stderr, "tlsbench: %s: %s\n", what, buf);
    exit(EXIT_IO);
}
#endif

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
pattern_init(void)
{
    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (unsigned char)(((i % PERIOD) * 2654435761u) >> 24);
}

/* Do n bytes received at stream offset off match the payload? */
static int
pattern_ok(uint64_t off, const unsigned char *buf, size_t n)
{
    return memcmp(buf, pattern + off % PERIOD, n) == 0;
}

/* Resident set size of this process in KiB, from /proc/self/status. */
static long
rss_kib(void)
{
    char buf[4096], *p;
    ssize_t n;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        die("/proc/self/status");
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        die("/proc/self/status");
    buf[n] = '\0';
    if ((p = strstr(buf, "VmRSS:")) == NULL)
        diex("no VmRSS in /proc/self/status");
    return strtol(p + 6, NULL, 10);
}

/* Room for 10,000 connections and more: the soft limit up to the hard. */
static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void
set_nodelay(int fd)
{
    int on = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

static void
put_header(unsigned char *h, char op, uint64_t arg)
{
    h[0] = (unsigned char)op;
    for (int i = 0; i < 8; i++)
        h[1 + i] = (unsigned char)(arg >> (56 - 8 * i));
}

static uint64_t
get_arg(const unsigned char *h)
{
    uint64_t arg = 0;

    for (int i = 0; i < 8; i++)
        arg = arg << 8 | h[1 + i];
    return arg;
}

/* --- server ------------------------------------------------------------- */

enum conn_state { ST_HEADER, ST_UPLOAD, ST_DOWNLOAD, ST_ECHO, ST_REPLY };
enum want { WANT_IN = EPOLLIN, WANT_OUT = EPOLLOUT };

struct conn {
    int fd;
    uint32_t events; /* registered with epoll */
    uint32_t want;   /* what the last call that would block waits for */
    enum conn_state state;
#ifndef TLSBENCH_PLAIN
    SSL *ssl;
    int handshaken, resumed;
#endif
    unsigned char header[HEADER_SIZE];
    size_t header_len;
    uint64_t total, done; /* bulk transfer: bytes asked, bytes moved */
    unsigned char *buf;   /* echo buffer */
    const unsigned char *out;
    size_t out_len, out_off;
    char reply[160];
};

static struct {
    int epfd, check;
    unsigned long full, resumed;
    char proto[32], cipher[64];
#ifndef TLSBENCH_PLAIN
    SSL_CTX *ctx;
#endif
    unsigned char scratch[CHUNK];
} server;

enum { IO_BLOCKED = -1, IO_ERROR = -2 };

/* >0 bytes read, 0 end of stream, IO_BLOCKED (c->want set), IO_ERROR */
static ssize_t
conn_read(struct conn *c, void *buf, size_t len)
{
#ifndef TLSBENCH_PLAIN
    size_t n;

    ERR_clear_error();
    if (SSL_read_ex(c->ssl, buf, len, &n) == 1)
        return (ssize_t)n;
    switch (SSL_get_error(c->ssl, 0)) {
    case SSL_ERROR_WANT_READ:
        c->want = WANT_IN;
        return IO_BLOCKED;
    case SSL_ERROR_WANT_WRITE:
        c->want = WANT_OUT;
        return IO_BLOCKED;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        return IO_ERROR;
    }
#else
    ssize_t n = read(c->fd, buf, len);

    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        c->want = WANT_IN;
        return IO_BLOCKED;
    }
    return errno == EINTR ? conn_read(c, buf, len) : IO_ERROR;
#endif
}

static ssize_t
conn_write(struct conn *c, const void *buf, size_t len)
{
#ifndef TLSBENCH_PLAIN
    size_t n;

    ERR_clear_error();
    if (SSL_write_ex(c->ssl, buf, len, &n) == 1)
        return (ssize_t)n;
    switch (SSL_get_error(c->ssl, 0)) {
    case SSL_ERROR_WANT_READ:
        c->want = WANT_IN;
        return IO_BLOCKED;
    case SSL_ERROR_WANT_WRITE:
        c->want = WANT_OUT;
        return IO_BLOCKED;
    default:
        return IO_ERROR;
    }
#else
    ssize_t n = write(c->fd, buf, len);

    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        c->want = WANT_OUT;
        return IO_BLOCKED;
    }
    return errno == EINTR ? conn_write(c, buf, len) : IO_ERROR;
#endif
}

static void
conn_free(struct conn *c)
{
    (void)epoll_ctl(server.epfd, EPOLL_CTL_DEL, c->fd, NULL);
#ifndef TLSBENCH_PLAIN
    SSL_free(c->ssl);
#endif
    close(c->fd);
    free(c->buf);
    free(c);
}

static void
conn_reply(struct conn *c, const char *text)
{
    snprintf(c->reply, sizeof(c->reply), "%s", text);
    c->out = (const unsigned char *)c->reply;
    c->out_len = strlen(c->reply);
    c->out_off = 0;
    c->state = ST_REPLY;
}

/* A whole header has arrived: start what it asks for.  -1 closes. */
static int
conn_dispatch(struct conn *c)
{
    char text[160];
    unsigned long full = server.full, resumed = server.resumed;

    c->header_len = 0;
    c->total = get_arg(c->header);
    c->done = 0;
    switch (c->header[0]) {
    case 'U':
        c->state = c->total > 0 ? ST_UPLOAD : ST_REPLY;
        if (c->total == 0)
            conn_reply(c, "k");
        return 0;
    case 'D':
        c->state = c->total > 0 ? ST_DOWNLOAD : ST_HEADER;
        return 0;
    case 'E':
        if (c->buf == NULL && (c->buf = malloc(ECHO_BUF)) == NULL)
            return -1;
        c->state = ST_ECHO;
        return 0;
    case 'H':
        conn_reply(c, "k");
        return 0;
    case 'M':
        snprintf(text, sizeof(text), "%ld\n", rss_kib());
        conn_reply(c, text);
        return 0;
    case 'S':
#ifndef TLSBENCH_PLAIN
        /* The stats connection's own handshake does not count. */
        if (c->resumed && resumed > 0)
            resumed--;
        else if (!c->resumed && full > 0)
            full--;
#endif
        snprintf(text, sizeof(text),
                 "full=%lu resumed=%lu proto=%s cipher=%s\n", full, resumed,
                 server.proto, server.cipher);
        server.full = server.resumed = 0;
        conn_reply(c, text);
        return 0;
    default:
        return -1;
    }
}

/* Make as much progress as the socket allows.  -1: close the connection. */
static int
conn_run(struct conn *c)
{
    ssize_t n;

#ifndef TLSBENCH_PLAIN
    if (!c->handshaken) {
        ERR_clear_error();
        if (SSL_do_handshake(c->ssl) != 1) {
            switch (SSL_get_error(c->ssl, 0)) {
            case SSL_ERROR_WANT_READ:
                c->want = WANT_IN;
                return 0;
            case SSL_ERROR_WANT_WRITE:
                c->want = WANT_OUT;
                return 0;
            default:
                return -1;
            }
        }
        c->handshaken = 1;
        c->resumed = SSL_session_reused(c->ssl);
        if (c->resumed)
            server.resumed++;
        else
            server.full++;
        snprintf(server.proto, sizeof(server.proto), "%s",
                 SSL_get_version(c->ssl));
        snprintf(server.cipher, sizeof(server.cipher), "%s",
                 SSL_get_cipher_name(c->ssl));
    }
#endif
    for (;;) {
        switch (c->state) {
        case ST_HEADER:
            n = conn_read(c, c->header + c->header_len,
                          HEADER_SIZE - c->header_len);
            if (n <= 0)
                return n == IO_BLOCKED ? 0 : -1;
            c->header_len += (size_t)n;
            if (c->header_len == HEADER_SIZE && conn_dispatch(c) < 0)
                return -1;
            break;
        case ST_UPLOAD: {
            uint64_t left = c->total - c->done;
            n = conn_read(c, server.scratch,
                          left < sizeof(server.scratch)
                              ? (size_t)left
                              : sizeof(server.scratch));
            if (n <= 0)
                return n == IO_BLOCKED ? 0 : -1;
            if (server.check &&
                !pattern_ok(c->done, server.scratch, (size_t)n)) {
                fprintf(stderr,
                        "tlsbench: upload corrupted near byte %" PRIu64 "\n",
                        c->done);
                return -1;
            }
            c->done += (uint64_t)n;
            if (c->done == c->total)
                conn_reply(c, "k");
            break;
        }
        case ST_DOWNLOAD: {
            uint64_t left = c->total - c->done;
            n = conn_write(c, pattern + c->done % PERIOD,
                           left < CHUNK ? (size_t)left : CHUNK);
            if (n < 0)
                return n == IO_BLOCKED ? 0 : -1;
            c->done += (uint64_t)n;
            if (c->done == c->total)
                c->state = ST_HEADER;
            break;
        }
        case ST_ECHO:
            if (c->out_off < c->out_len) {
                n = conn_write(c, c->out + c->out_off, c->out_len - c->out_off);
                if (n < 0)
                    return n == IO_BLOCKED ? 0 : -1;
                c->out_off += (size_t)n;
                break;
            }
            n = conn_read(c, c->buf, ECHO_BUF);
            if (n <= 0)
                return n == IO_BLOCKED ? 0 : -1;
            c->out = c->buf;
            c->out_len = (size_t)n;
            c->out_off = 0;
            break;
        case ST_REPLY:
            n = conn_write(c, c->out + c->out_off, c->out_len - c->out_off);
            if (n < 0)
                return n == IO_BLOCKED ? 0 : -1;
            c->out_off += (size_t)n;
            if (c->out_off == c->out_len) {
                c->out_len = c->out_off = 0;
                c->state = ST_HEADER;
            }
            break;
        }
    }
}

static void
conn_step(struct conn *c)
{
    if (conn_run(c) < 0) {
        conn_free(c);
        return;
    }
    if (c->want != c->events) {
        struct epoll_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.events = c->want;
        ev.data.ptr = c;
        if (epoll_ctl(server.epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
            die("epoll_ctl");
        c->events = c->want;
    }
}

static void
server_accept(int lfd)
{
    for (;;) {
        struct epoll_event ev;
        struct conn *c;
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                fprintf(stderr, "tlsbench: accept: %s\n", strerror(errno));
                return;
            }
            die("accept4");
        }
        set_nodelay(fd);
        if ((c = calloc(1, sizeof(*c))) == NULL)
            die("calloc");
        c->fd = fd;
        c->events = c->want = WANT_IN;
        c->state = ST_HEADER;
#ifndef TLSBENCH_PLAIN
        if ((c->ssl = SSL_new(server.ctx)) == NULL ||
            SSL_set_fd(c->ssl, fd) != 1)
            die_ssl("SSL_new");
        SSL_set_accept_state(c->ssl);
#endif
        memset(&ev, 0, sizeof(ev));
        ev.events = c->events;
        ev.data.ptr = c;
        if (epoll_ctl(server.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            die("epoll_ctl");
        conn_step(c);
    }
}

static _Noreturn void
server_main(const char *cert, const char *key)
{
    struct sockaddr_in sin;
    socklen_t slen = sizeof(sin);
    struct epoll_event ev, evs[256];
    int lfd, on = 1;

    (void)cert;
    (void)key;
    snprintf(server.proto, sizeof(server.proto), "none");
    snprintf(server.cipher, sizeof(server.cipher), "none");
#ifndef TLSBENCH_PLAIN
    if ((server.ctx = SSL_CTX_new(TLS_server_method())) == NULL)
        die_ssl("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(server.ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(server.ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(server.ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(server.ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(server.ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(server.ctx) != 1)
        die_ssl(cert);
#endif
    if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) <
        0)
        die("socket");
    (void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &slen) < 0)
        die("bind/listen");
    if ((server.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1");
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    if (epoll_ctl(server.epfd, EPOLL_CTL_ADD, lfd, &ev) < 0)
        die("epoll_ctl");
    printf("PORT %u\n", ntohs(sin.sin_port));
    fflush(stdout);
    for (;;) {
        int n = epoll_wait(server.epfd, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                server_accept(lfd);
            else
                conn_step(evs[i].data.ptr);
        }
    }
}

/* --- client ------------------------------------------------------------- */

struct link {
    int fd;
#ifndef TLSBENCH_PLAIN
    SSL *ssl;
#endif
};

static struct {
    int port, check;
#ifndef TLSBENCH_PLAIN
    SSL_CTX *ctx;
    SSL_SESSION *session; /* the latest resumable one, for "resumed" */
#endif
} client;

static void
link_open(struct link *l, int resume)
{
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)client.port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        die("socket");
    set_nodelay(l->fd);
    if (connect(l->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
        die("connect");
#ifndef TLSBENCH_PLAIN
    ERR_clear_error();
    if ((l->ssl = SSL_new(client.ctx)) == NULL ||
        SSL_set_fd(l->ssl, l->fd) != 1)
        die_ssl("SSL_new");
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(l->ssl), "127.0.0.1") != 1)
        die_ssl("X509_VERIFY_PARAM_set1_ip_asc");
    if (resume && client.session != NULL &&
        SSL_set_session(l->ssl, client.session) != 1)
        die_ssl("SSL_set_session");
    if (SSL_connect(l->ssl) != 1)
        die_ssl("handshake");
#else
    (void)resume;
#endif
}

/* The session to offer next: the latest one the server gave us. */
static void
link_keep_session(struct link *l)
{
#ifndef TLSBENCH_PLAIN
    SSL_SESSION *s = SSL_get1_session(l->ssl);

    if (s != NULL && SSL_SESSION_is_resumable(s)) {
        SSL_SESSION_free(client.session);
        client.session = s;
    } else {
        SSL_SESSION_free(s);
    }
#else
    (void)l;
#endif
}

static int
link_resumed(struct link *l)
{
#ifndef TLSBENCH_PLAIN
    return SSL_session_reused(l->ssl);
#else
    (void)l;
    return 0;
#endif
}

static void
link_close(struct link *l)
{
#ifndef TLSBENCH_PLAIN
    (void)SSL_shutdown(l->ssl); /* close_notify, as tlsshim's close() */
    SSL_free(l->ssl);
#endif
    close(l->fd);
}

static void
link_write(struct link *l, const void *buf, size_t len)
{
#ifndef TLSBENCH_PLAIN
    size_t n;

    ERR_clear_error();
    if (SSL_write_ex(l->ssl, buf, len, &n) != 1 || n != len)
        die_ssl("SSL_write");
#else
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(l->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("write");
        p += n;
        len -= (size_t)n;
    }
#endif
}

/* Up to len bytes; dies at the end of the stream. */
static size_t
link_read(struct link *l, void *buf, size_t len)
{
#ifndef TLSBENCH_PLAIN
    size_t n;

    ERR_clear_error();
    if (SSL_read_ex(l->ssl, buf, len, &n) != 1)
        die_ssl("SSL_read (or end of stream)");
    return n;
#else
    ssize_t n;

    while ((n = read(l->fd, buf, len)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        die("read");
    if (n == 0)
        diex("read: end of stream");
    return (size_t)n;
#endif
}

static void
link_read_all(struct link *l, void *buf, size_t len)
{
    char *p = buf;

    while (len > 0) {
        size_t n = link_read(l, p, len);
        p += n;
        len -= n;
    }
}

static void
link_request(struct link *l, char op, uint64_t arg)
{
    unsigned char h[HEADER_SIZE];

    put_header(h, op, arg);
    link_write(l, h, sizeof(h));
}

static void
link_expect_k(struct link *l)
{
    char k;

    link_read_all(l, &k, 1);
    if (k != 'k')
        diex("unexpected answer from the server");
}

/* One line answered by the server, without the newline. */
static void
link_read_line(struct link *l, char *buf, size_t len)
{
    size_t i = 0;

    for (;;) {
        char ch;
        link_read_all(l, &ch, 1);
        if (ch == '\n')
            break;
        if (i + 1 < len)
            buf[i++] = ch;
    }
    buf[i] = '\0';
}

static int
test_upload(uint64_t bytes)
{
    struct link l;
    uint64_t off = 0;
    double t0, t;

    link_open(&l, 0);
    t0 = now_s();
    link_request(&l, 'U', bytes);
    while (off < bytes) {
        size_t n = bytes - off < CHUNK ? (size_t)(bytes - off) : CHUNK;
        link_write(&l, pattern + off % PERIOD, n);
        off += n;
    }
    link_expect_k(&l);
    t = now_s() - t0;
    link_close(&l);
    printf("mbps=%.1f\n", (double)bytes / 1e6 / t);
    return 0;
}

static int
test_download(uint64_t bytes)
{
    static unsigned char buf[CHUNK];
    struct link l;
    uint64_t off = 0;
    double t0, t;

    link_open(&l, 0);
    t0 = now_s();
    link_request(&l, 'D', bytes);
    while (off < bytes) {
        size_t want = bytes - off < CHUNK ? (size_t)(bytes - off) : CHUNK;
        size_t n = link_read(&l, buf, want);
        if (client.check && !pattern_ok(off, buf, n)) {
            fprintf(stderr,
                    "tlsbench: download corrupted near byte %" PRIu64 "\n",
                    off);
            return EXIT_IO;
        }
        off += n;
    }
    t = now_s() - t0;
    link_close(&l);
    printf("mbps=%.1f\n", (double)bytes / 1e6 / t);
    return 0;
}

/* For SECONDS, or, when SECONDS is negative, exactly -SECONDS handshakes
 * ("Nx": the CPU cost part counts them under callgrind, where time says
 * little). */
static int
test_handshakes(double seconds, int resume)
{
    long n = 0, resumed = 0;
    double t0 = now_s(), t;
#ifndef TLSBENCH_PLAIN
    char proto[32] = "none", cipher[64] = "none";
#endif

    do {
        struct link l;
        link_open(&l, resume);
        link_request(&l, 'H', 0);
        link_expect_k(&l);
        resumed += link_resumed(&l);
#ifndef TLSBENCH_PLAIN
        snprintf(proto, sizeof(proto), "%s", SSL_get_version(l.ssl));
        snprintf(cipher, sizeof(cipher), "%s", SSL_get_cipher_name(l.ssl));
#endif
        if (resume)
            link_keep_session(&l);
        link_close(&l);
        n++;
        t = now_s() - t0;
    } while (seconds < 0 ? n < (long)-seconds : t < seconds);
#ifndef TLSBENCH_PLAIN
    printf("hps=%.1f n=%ld resumed=%ld proto=%s cipher=%s\n", (double)n / t, n,
           resumed, proto, cipher);
#else
    (void)resumed;
    printf("hps=%.1f n=%ld\n", (double)n / t, n);
#endif
    return 0;
}

static int
test_once(void)
{
    struct link l;

    link_open(&l, 0);
    link_request(&l, 'H', 0);
    link_expect_k(&l);
    link_close(&l);
    return 0;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static int
test_latency(long count)
{
    unsigned char msg[MSG_SIZE], back[MSG_SIZE];
    long warm = count / 10 < 100 ? count / 10 : 100;
    double *rtt;
    struct link l;

    if (count < 1 || (rtt = calloc((size_t)count, sizeof(*rtt))) == NULL)
        diex("latency: bad count");
    link_open(&l, 0);
    link_request(&l, 'E', 0);
    for (long i = -warm; i < count; i++) {
        double t0;
        memcpy(msg, pattern + (size_t)(i + warm) % PERIOD, sizeof(msg));
        t0 = now_s();
        link_write(&l, msg, sizeof(msg));
        link_read_all(&l, back, sizeof(back));
        if (i >= 0)
            rtt[i] = now_s() - t0;
        if (memcmp(msg, back, sizeof(msg)) != 0)
            diex("latency: the echo differs from the message");
    }
    link_close(&l);
    qsort(rtt, (size_t)count, sizeof(*rtt), cmp_double);
    printf("p50_us=%.1f p99_us=%.1f\n", rtt[(count - 1) / 2] * 1e6,
           rtt[(count * 99 - 1) / 100] * 1e6);
    free(rtt);
    return 0;
}

static long
server_rss(struct link *ctl)
{
    char line[64];

    link_request(ctl, 'M', 0);
    link_read_line(ctl, line, sizeof(line));
    return strtol(line, NULL, 10);
}

static int
test_idle(long count)
{
    struct link ctl, *links;
    long srv0, srv1, own0, own1;
    int ep;

    raise_nofile();
    if (count < 1 || (links = calloc((size_t)count, sizeof(*links))) == NULL)
        diex("idle: bad count");
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1");
    /* The first connection builds whatever is built once per process
     * (tlsshim's context for the rule); the baselines come after it. */
    link_open(&ctl, 0);
    srv0 = server_rss(&ctl);
    own0 = rss_kib();
    for (long i = 0; i < count; i++) {
        struct epoll_event ev;
        link_open(&links[i], 0);
        link_request(&links[i], 'H', 0);
        link_expect_k(&links[i]);
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.u64 = (uint64_t)i;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, links[i].fd, &ev) < 0)
            die("epoll_ctl");
    }
    own1 = rss_kib();
    srv1 = server_rss(&ctl);
    printf("client_kib=%.2f server_kib=%.2f client_rss0=%ld client_rss1=%ld "
           "server_rss0=%ld server_rss1=%ld n=%ld\n",
           (double)(own1 - own0) / (double)count,
           (double)(srv1 - srv0) / (double)count, own0, own1, srv0, srv1,
           count);
    /* Closing 10,000 connections one by one is not part of the figure. */
    fflush(stdout);
    _exit(0);
}

static int
test_stats(void)
{
    char line[160];
    struct link l;

    link_open(&l, 0);
    link_request(&l, 'S', 0);
    link_read_line(&l, line, sizeof(line));
    link_close(&l);
    printf("%s\n", line);
    return 0;
}

static int
client_main(const char *test, const char *arg)
{
    char *end = NULL;
    double value = arg != NULL ? strtod(arg, &end) : 0;

    /* handshakes and resumed: "Nx" is N handshakes, not N seconds */
    if (arg != NULL && end != arg && *end == 'x' && end[1] == '\0' &&
        (strcmp(test, "handshakes") == 0 || strcmp(test, "resumed") == 0) &&
        value >= 1) {
        value = -value;
    } else if (arg != NULL && (end == arg || *end != '\0' || value < 0)) {
        diex("bad test argument");
    }
    pattern_init();
    if (strcmp(test, "upload") == 0 && arg != NULL)
        return test_upload((uint64_t)value);
    if (strcmp(test, "download") == 0 && arg != NULL)
        return test_download((uint64_t)value);
    if (strcmp(test, "handshakes") == 0 && arg != NULL)
        return test_handshakes(value, 0);
    if (strcmp(test, "resumed") == 0 && arg != NULL)
        return test_handshakes(value, 1);
    if (strcmp(test, "latency") == 0 && arg != NULL)
        return test_latency((long)value);
    if (strcmp(test, "idle") == 0 && arg != NULL)
        return test_idle((long)value);
    if (strcmp(test, "stats") == 0)
        return test_stats();
    if (strcmp(test, "once") == 0 && arg == NULL)
        return test_once();
    fprintf(stderr, "tlsbench: unknown test %s\n", test);
    return EXIT_USAGE;
}

static int
free_port(void)
{
    struct sockaddr_in sin;
    socklen_t slen = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &slen) < 0)
        die("bind");
    printf("%u\n", ntohs(sin.sin_port));
    close(fd);
    return 0;
}

static int
usage(void)
{
#ifndef TLSBENCH_PLAIN
    fprintf(stderr,
            "usage: tlsbench_native server -t CERT KEY [-c]\n"
            "       tlsbench_native client -t CA [-c] -p PORT TEST [ARG]\n");
#else
    fprintf(stderr, "usage: tlsbench_plain server [-c]\n"
                    "       tlsbench_plain client [-c] -p PORT TEST [ARG]\n"
                    "       tlsbench_plain port\n");
#endif
    return EXIT_USAGE;
}

int
main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL;
    int argi = 2, check = 0, port = 0;

    if (argc < 2)
        return usage();
    (void)signal(SIGPIPE, SIG_IGN);
    if (strcmp(argv[1], "port") == 0)
        return free_port();
    while (argi < argc && argv[argi][0] == '-') {
        if (strcmp(argv[argi], "-c") == 0) {
            check = 1;
            argi++;
        } else if (strcmp(argv[argi], "-p") == 0 && argi + 1 < argc) {
            char *end;
            long value = strtol(argv[argi + 1], &end, 10);
            if (*end != '\0' || value <= 0 || value > 65535)
                return usage();
            port = (int)value;
            argi += 2;
        } else if (strcmp(argv[argi], "-t") == 0 && argi + 1 < argc) {
            cert = argv[argi + 1];
            argi += 2;
            if (strcmp(argv[1], "server") == 0 && argi < argc)
                key = argv[argi++];
        } else {
            return usage();
        }
    }
#ifndef TLSBENCH_PLAIN
    if (cert == NULL)
        return usage();
#else
    if (cert != NULL)
        return usage();
#endif
    if (strcmp(argv[1], "server") == 0 && argi == argc) {
        raise_nofile();
        pattern_init();
        server.check = check;
        server_main(cert, key);
    }
    if (strcmp(argv[1], "client") != 0 || argi >= argc || port <= 0 ||
        port > 65535)
        return usage();
    client.port = port;
    client.check = check;
#ifndef TLSBENCH_PLAIN
    if ((client.ctx = SSL_CTX_new(TLS_client_method())) == NULL)
        die_ssl("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(client.ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(client.ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(client.ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(client.ctx, cert, NULL) != 1)
        die_ssl(cert);
#endif
    return client_main(argv[argi], argi + 1 < argc ? argv[argi + 1] : NULL);
}
