/*
 * FTP data connections of a starttls = ftp session (see ftpdata.h): the
 * control stream's lines, the four forms of a data address, and the
 * table of expected data connections.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ftpdata.h"

#define EXPECT_SLOTS 16

void
ftpdata_feed(struct ftpdata_lines *l, const void *buf, size_t n,
             void (*fn)(void *arg, const char *line), void *arg)
{
    const unsigned char *p = buf;

    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            if (l->len > 0 && l->line[l->len - 1] == '\r')
                l->len--;
            l->line[l->len] = '\0';
            fn(arg, l->line);
            l->len = 0;
            l->overflow = 0;
            continue;
        }
        if (l->len + 1 >= sizeof(l->line)) {
            /* A long line: its first bytes (the reply code or verb) and
             * its tail, where the address is, are what matter.  Half of
             * the rest goes, and the remains of a number cut in two with
             * it, so that no number is made of pieces. */
            size_t drop = (l->len - FTPDATA_HEAD) / 2;
            while (FTPDATA_HEAD + drop < l->len &&
                   ((l->line[FTPDATA_HEAD + drop] >= '0' &&
                     l->line[FTPDATA_HEAD + drop] <= '9') ||
                    l->line[FTPDATA_HEAD + drop] == ','))
                drop++;
            memmove(l->line + FTPDATA_HEAD, l->line + FTPDATA_HEAD + drop,
                    l->len - FTPDATA_HEAD - drop);
            l->len -= drop;
            l->overflow = 1;
        }
        l->line[l->len++] = (char)p[i];
    }
}

static void
mapped4(unsigned char ip[16], const unsigned char v4[4])
{
    memset(ip, 0, 10);
    ip[10] = ip[11] = 0xff;
    memcpy(ip + 12, v4, 4);
}

/* Six numbers 0-255 separated by commas at s: an address and a port. */
static int
six_numbers(const char *s, unsigned char ip[16], unsigned *port)
{
    unsigned v[6];
    unsigned char a[4];
    int used = 0;

    if (sscanf(s, "%3u,%3u,%3u,%3u,%3u,%3u%n", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &used) != 6 || used == 0)
        return 0;
    for (int i = 0; i < 6; i++)
        if (v[i] > 255)
            return 0;
    for (int i = 0; i < 4; i++)
        a[i] = (unsigned char)v[i];
    mapped4(ip, a);
    *port = v[4] * 256 + v[5];
    return *port > 0;
}

/* "|1|a.b.c.d|port|", "|2|v6|port|" or, with allow_empty, "|||port|";
 * any printable delimiter (RFC 2428). */
static int
extended(const char *s, int allow_empty, unsigned char ip[16], int *has_ip,
         unsigned *port)
{
    char d = s[0], proto[4] = "", addr[64] = "", num[8] = "";
    const char *f[4];
    int i;

    if (d < 0x21 || d > 0x7e)
        return 0;
    f[0] = s + 1;
    for (i = 1; i < 4; i++) {
        const char *e = strchr(f[i - 1], d);
        if (e == NULL)
            return 0;
        f[i] = e + 1;
    }
    size_t pl = (size_t)(f[1] - f[0] - 1), al = (size_t)(f[2] - f[1] - 1),
           nl = (size_t)(f[3] - f[2] - 1);
    if (pl >= sizeof(proto) || al >= sizeof(addr) || nl >= sizeof(num) ||
        nl == 0)
        return 0;
    memcpy(proto, f[0], pl);
    memcpy(addr, f[1], al);
    memcpy(num, f[2], nl);
    for (size_t k = 0; k < nl; k++)
        if (num[k] < '0' || num[k] > '9')
            return 0;
    *port = (unsigned)strtoul(num, NULL, 10);
    if (*port == 0 || *port > 65535)
        return 0;
    if (pl == 0 && al == 0) {
        *has_ip = 0;
        return allow_empty;
    }
    *has_ip = 1;
    if (strcmp(proto, "1") == 0) {
        unsigned char a[4];
        if (inet_pton(AF_INET, addr, a) != 1)
            return 0;
        mapped4(ip, a);
        return 1;
    }
    if (strcmp(proto, "2") == 0)
        return inet_pton(AF_INET6, addr, ip) == 1;
    return 0;
}

int
ftpdata_parse_reply(const char *line, unsigned char ip[16], int *has_ip,
                    unsigned *port)
{
    const char *open;

    if (strncmp(line, "227 ", 4) == 0) {
        /* the numbers are in parentheses, or simply after the text */
        for (const char *s = line + 4; *s != '\0'; s++)
            if (*s >= '0' && *s <= '9' && (s[-1] < '0' || s[-1] > '9') &&
                six_numbers(s, ip, port)) {
                *has_ip = 1;
                return 1;
            }
        return 0;
    }
    if (strncmp(line, "229 ", 4) == 0 && (open = strrchr(line, '(')) != NULL)
        return extended(open + 1, 1, ip, has_ip, port);
    return 0;
}

int
ftpdata_parse_command(const char *line, unsigned char ip[16], int *has_ip,
                      unsigned *port)
{
    if (strncasecmp(line, "PORT ", 5) == 0 && six_numbers(line + 5, ip, port)) {
        *has_ip = 1;
        return 1;
    }
    if (strncasecmp(line, "EPRT ", 5) == 0)
        return extended(line + 5, 0, ip, has_ip, port);
    return 0;
}

int
ftpdata_ip16(const struct sockaddr *sa, unsigned char ip[16])
{
    if (sa->sa_family == AF_INET) {
        mapped4(ip, (const unsigned char *)&((const struct sockaddr_in *)sa)
                        ->sin_addr);
        return 1;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(ip, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 1;
    }
    return 0;
}

static unsigned
port_of(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

/* --- the table ------------------------------------------------------------ */

/* guarded by expect_lock; expect_count is read without it (a hint) */
static pthread_mutex_t expect_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ftpdata_expect expects[EXPECT_SLOTS];
static atomic_int expect_count;

/* The control servers whose data connection was not found (BLIND_SLOTS;
 * beyond that, every address until blind_all_until). */
#define BLIND_SLOTS 16
struct blind {
    int on;
    unsigned char ip[16];
    int64_t expires_ms;
};
static struct blind blinds[BLIND_SLOTS];
static int64_t blind_all_until;
static atomic_int blind_count;

int
ftpdata_expect(const struct ftpdata_expect *e)
{
    int64_t now = util_now_ms();
    int rv = -1;

    pthread_mutex_lock(&expect_lock);
    for (unsigned i = 0; i < EXPECT_SLOTS; i++) {
        struct ftpdata_expect *slot = &expects[i];
        if (slot->rule != NULL && slot->expires_ms < now) {
            slot->rule = NULL;
            atomic_fetch_sub(&expect_count, 1);
        }
        if (slot->rule == NULL && rv < 0) {
            *slot = *e;
            atomic_fetch_add(&expect_count, 1);
            rv = 0;
        }
    }
    pthread_mutex_unlock(&expect_lock);
    return rv;
}

int
ftpdata_any(void)
{
    return atomic_load(&expect_count) > 0 || atomic_load(&blind_count) > 0;
}

void
ftpdata_blind(const unsigned char peer_ip[16], int on, int64_t expires_ms)
{
    pthread_mutex_lock(&expect_lock);
    int done = 0;
    for (unsigned i = 0; i < BLIND_SLOTS; i++) {
        struct blind *b = &blinds[i];
        if (b->on && memcmp(b->ip, peer_ip, 16) == 0) {
            if (on) {
                b->expires_ms = expires_ms;
            } else {
                b->on = 0;
                atomic_fetch_sub(&blind_count, 1);
            }
            done = 1;
            break;
        }
    }
    for (unsigned i = 0; i < BLIND_SLOTS && on && !done; i++) {
        struct blind *b = &blinds[i];
        if (b->on)
            continue;
        b->on = 1;
        memcpy(b->ip, peer_ip, 16);
        b->expires_ms = expires_ms;
        atomic_fetch_add(&blind_count, 1);
        done = 1;
    }
    if (on && !done) {
        /* no room: blind for every address, which fails closed */
        if (blind_all_until == 0)
            atomic_fetch_add(&blind_count, 1);
        blind_all_until = expires_ms;
    } else if (!on && blind_all_until != 0) {
        blind_all_until = 0;
        atomic_fetch_sub(&blind_count, 1);
    }
    pthread_mutex_unlock(&expect_lock);
}

/* Whether connections to ip are refused for want of an expectation.
 * expect_lock held. */
static int
blind_to(const unsigned char ip[16], int64_t now)
{
    int hit = 0;

    if (blind_all_until != 0) {
        if (blind_all_until < now) {
            blind_all_until = 0;
            atomic_fetch_sub(&blind_count, 1);
        } else {
            hit = 1;
        }
    }
    for (unsigned i = 0; i < BLIND_SLOTS; i++) {
        struct blind *b = &blinds[i];
        if (!b->on)
            continue;
        if (b->expires_ms < now) {
            b->on = 0;
            atomic_fetch_sub(&blind_count, 1);
            continue;
        }
        if (memcmp(b->ip, ip, 16) == 0)
            hit = 1;
    }
    return hit;
}

int
ftpdata_take(int active, const struct sockaddr *addr,
             const struct sockaddr *peer, struct ftpdata_expect *out)
{
    unsigned char ip[16], pip[16];
    unsigned port = port_of(addr);
    int64_t now = util_now_ms();
    int found = 0, stranger = 0;

    if (!ftpdata_ip16(addr, ip) || (peer != NULL && !ftpdata_ip16(peer, pip)))
        return 0;
    pthread_mutex_lock(&expect_lock);
    for (unsigned i = 0; i < EXPECT_SLOTS && !found; i++) {
        struct ftpdata_expect *e = &expects[i];
        if (e->rule == NULL)
            continue;
        if (e->expires_ms < now) {
            e->rule = NULL;
            atomic_fetch_sub(&expect_count, 1);
            continue;
        }
        if (e->active != active || e->port != port)
            continue;
        if (!active) {
            /* to the control connection's server only (the address a
             * 227 answer names is taken when it is the server's own, as
             * clients that ignore it do); the other address a hostile
             * server named is refused unless a rule decides */
            if (memcmp(e->peer_ip, ip, 16) != 0) {
                if (e->has_ip && memcmp(e->ip, ip, 16) == 0)
                    stranger = 1;
                continue;
            }
        } else {
            /* on the address the program named, from the server; any
             * other connection to the port is a stranger's (port
             * stealing): the expectation stays for the server's */
            if ((e->has_ip && memcmp(e->ip, ip, 16) != 0) || peer == NULL ||
                memcmp(e->peer_ip, pip, 16) != 0) {
                stranger = 1;
                continue;
            }
        }
        *out = *e;
        e->rule = NULL;
        atomic_fetch_sub(&expect_count, 1);
        found = 1;
    }
    int blind = !found && !stranger && !active && blind_to(ip, now);
    pthread_mutex_unlock(&expect_lock);
    return found ? 1 : stranger ? -1 : blind ? -2 : 0;
}
