/*
 * The STARTTLS dialogues (see starttls.h).  Each protocol is a few steps:
 * read the greeting where the server speaks first, ask for the upgrade the
 * way the protocol's RFC says (RFC 3207 SMTP, 2595 IMAP and POP3, 4217
 * FTP, 4511 LDAP, 6120 XMPP, 4642 NNTP, PostgreSQL's SSLRequest, MySQL's
 * SSLRequest), and check the positive answer.  Answers are parsed only as
 * far as the decision needs; anything the server says is untrusted until
 * the handshake, so it is never shown to the program (except a refused
 * server's own greeting when the rule allows plaintext, and MySQL's
 * greeting, which the program's login cannot do without: see mysql_next).
 *
 * Not here: server-side STARTTLS (starttls_server.c).
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "starttls.h"

/* The first step after the handshake. */
#define STEP_TLS 100

static const char *const proto_names[] = {
    [STARTTLS_NONE] = "none",
    [STARTTLS_SMTP] = "smtp",
    [STARTTLS_IMAP] = "imap",
    [STARTTLS_POP3] = "pop3",
    [STARTTLS_FTP] = "ftp",
    [STARTTLS_LDAP] = "ldap",
    [STARTTLS_XMPP] = "xmpp",
    [STARTTLS_NNTP] = "nntp",
    [STARTTLS_POSTGRES] = "postgres",
    [STARTTLS_MYSQL] = "mysql",
};

/* verifycn_scheme of each protocol (verify.c's table has these rows);
 * postgres and mysql have none, so the default scheme applies. */
static const char *const proto_schemes[] = {
    [STARTTLS_SMTP] = "smtp",
    [STARTTLS_IMAP] = "imap",
    [STARTTLS_POP3] = "pop3",
    [STARTTLS_FTP] = "ftp",
    [STARTTLS_LDAP] = "ldap",
    [STARTTLS_XMPP] = "xmpp",
    [STARTTLS_NNTP] = "nntp",
};

enum starttls_proto
starttls_proto_of(const char *name)
{
    if (name == NULL)
        return STARTTLS_NONE;
    for (size_t i = 1; i < TLSSHIM_NELEMS(proto_names); i++)
        if (strcmp(proto_names[i], name) == 0)
            return (enum starttls_proto)i;
    return STARTTLS_NONE;
}

const char *
starttls_proto_name(enum starttls_proto proto)
{
    return (unsigned)proto < TLSSHIM_NELEMS(proto_names) ? proto_names[proto]
                                                         : "?";
}

const char *
starttls_scheme(const char *name)
{
    enum starttls_proto p = starttls_proto_of(name);

    return (unsigned)p < TLSSHIM_NELEMS(proto_schemes) ? proto_schemes[p]
                                                       : NULL;
}

int
starttls_server_first(enum starttls_proto proto)
{
    return proto == STARTTLS_SMTP || proto == STARTTLS_IMAP ||
           proto == STARTTLS_POP3 || proto == STARTTLS_FTP ||
           proto == STARTTLS_NNTP || proto == STARTTLS_MYSQL;
}

/* --- buffers -------------------------------------------------------------- */

unsigned char *
starttls_room(struct starttls *st, size_t *room)
{
    *room = sizeof(st->in) - st->in_len;
    return st->in + st->in_len;
}

void
starttls_received(struct starttls *st, size_t n)
{
    if (n > sizeof(st->in) - st->in_len)
        n = sizeof(st->in) - st->in_len;
    st->in_len += n;
}

static void
consume(struct starttls *st, size_t n)
{
    if (n > st->in_len)
        n = st->in_len;
    memmove(st->in, st->in + n, st->in_len - n);
    st->in_len -= n;
}

static enum starttls_status
queue(struct starttls *st, const void *p, size_t n)
{
    if (n > sizeof(st->out))
        n = sizeof(st->out);
    memcpy(st->out, p, n);
    st->out_len = n;
    st->out_off = 0;
    return STARTTLS_WRITE;
}

static enum starttls_status
queuef(struct starttls *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum starttls_status
queuef(struct starttls *st, const char *fmt, ...)
{
    char buf[512];   /* a command line (STARTTLS_OUT_MAX is for mysql) */
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    return queue(st, buf, (size_t)n < sizeof(buf) ? (size_t)n
                                                  : sizeof(buf) - 1);
}

/* Append to what the program reads first; -1 when it does not fit. */
static int
show_add(struct starttls *st, const void *p, size_t n)
{
    if (n > sizeof(st->show) - st->show_len)
        return -1;
    memcpy(st->show + st->show_len, p, n);
    st->show_len += n;
    return 0;
}

/* A printable copy of a line for messages, at most 120 characters. */
static void
quote(char *dst, size_t dstlen, const unsigned char *p, size_t len)
{
    size_t o = 0;

    if (len > 120)
        len = 120;
    for (size_t i = 0; i < len && o + 1 < dstlen; i++)
        dst[o++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    dst[o] = '\0';
}

static enum starttls_status
verdict(struct starttls *st, enum starttls_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* REFUSED or FAILED, with what the server did in st->why. */
static enum starttls_status
verdict(struct starttls *st, enum starttls_status s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(st->why, sizeof(st->why), fmt, ap);
    va_end(ap);
    return s;
}

/* The line at in[pos]: its length without the line end, and where the
 * next begins; -1 when no line end has arrived yet. */
static long
line_at(const struct starttls *st, size_t pos, size_t *next)
{
    const unsigned char *nl;
    size_t len;

    if (pos >= st->in_len)
        return -1;
    nl = memchr(st->in + pos, '\n', st->in_len - pos);
    if (nl == NULL)
        return -1;
    len = (size_t)(nl - (st->in + pos));
    *next = pos + len + 1;
    if (len > 0 && st->in[pos + len - 1] == '\r')
        len--;
    return (long)len;
}

/* READ while the buffer has room, else FAILED: an answer this long is
 * none we expect. */
static enum starttls_status
need_more(struct starttls *st)
{
    if (st->in_len >= sizeof(st->in))
        return verdict(st, STARTTLS_FAILED, "the server's answer is longer "
                       "than %zu bytes", sizeof(st->in));
    return STARTTLS_READ;
}

static int
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/*
 * A numeric reply (SMTP, FTP, NNTP) at the start of in: "CODE text", or
 * with multiline, "CODE-text" lines up to the line that begins "CODE "
 * (SMTP continues with "CODE-", FTP with any text).  1 complete (*code,
 * *end: the bytes it spans, *first: its first line for messages), 0
 * incomplete, -1 malformed.
 */
static int
numeric_reply(struct starttls *st, int multiline, int *code, size_t *end,
              char *first, size_t firstlen)
{
    size_t pos = 0, next;
    long len = line_at(st, 0, &next);
    const unsigned char *l = st->in;

    if (len < 0)
        return 0;
    quote(first, firstlen, l, (size_t)len);
    if (len < 3 || !is_digit(l[0]) || !is_digit(l[1]) || !is_digit(l[2]) ||
        (len > 3 && l[3] != ' ' && l[3] != '-'))
        return -1;
    *code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
    if (len == 3 || l[3] != '-' || !multiline) {
        *end = next;
        return 1;
    }
    for (;;) {
        pos = next;
        len = line_at(st, pos, &next);
        if (len < 0)
            return 0;
        l = st->in + pos;
        if (len >= 3 && memcmp(l, st->in, 3) == 0 &&
            (len == 3 || l[3] == ' ')) {
            *end = next;
            return 1;
        }
    }
}

/* 1 when a whitespace-separated word of p[0..len) is word (any case). */
static int
has_word(const unsigned char *p, size_t len, const char *word)
{
    size_t wl = strlen(word), i = 0;

    while (i < len) {
        while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '[' ||
                           p[i] == ']'))
            i++;
        size_t s = i;
        while (i < len && p[i] != ' ' && p[i] != '\t' && p[i] != ']')
            i++;
        if (i - s == wl && strncasecmp((const char *)p + s, word, wl) == 0)
            return 1;
    }
    return 0;
}

static const unsigned char *
find(const struct starttls *st, size_t from, const char *what)
{
    size_t wl = strlen(what);

    if (from > st->in_len)
        return NULL;
    return memmem(st->in + from, st->in_len - from, what, wl);
}

/* --- the neutral greeting ------------------------------------------------- */

/* The server's name as the greeting shows it: printable, an IP address
 * in brackets. */
static void
greeting_name(const struct starttls *st, char *buf, size_t len)
{
    unsigned char a[16];
    char clean[sizeof(st->name)];
    size_t o = 0;

    for (const char *p = st->name; *p != '\0' && o + 1 < sizeof(clean); p++)
        if (*p > 0x20 && *p < 0x7f)
            clean[o++] = *p;
    clean[o] = '\0';
    if (o == 0)
        util_strlcpy(clean, "server", sizeof(clean));
    if (inet_pton(AF_INET, clean, a) == 1 || inet_pton(AF_INET6, clean, a) == 1)
        snprintf(buf, len, "[%s]", clean);
    else
        snprintf(buf, len, "%s", clean);
}

/* TLS is up and the dialogue over: what the program reads first is a
 * greeting made here (server-first protocols), then what the server sent
 * over TLS after the dialogue's last answer. */
static enum starttls_status
done(struct starttls *st)
{
    char name[300], g[400];
    int n = 0;

    greeting_name(st, name, sizeof(name));
    switch (st->proto) {
    case STARTTLS_SMTP:
        n = snprintf(g, sizeof(g), "220 %s ESMTP ready (TLS by tlsshim)\r\n",
                     name);
        break;
    case STARTTLS_IMAP:
        n = snprintf(g, sizeof(g), "* OK %s ready (TLS by tlsshim)\r\n",
                     name);
        break;
    case STARTTLS_POP3:
        n = snprintf(g, sizeof(g), "+OK %s ready (TLS by tlsshim)\r\n", name);
        break;
    case STARTTLS_FTP:
        n = snprintf(g, sizeof(g), "220 %s ready (TLS by tlsshim)\r\n", name);
        break;
    case STARTTLS_NNTP:
        n = snprintf(g, sizeof(g), "200 %s ready (TLS by tlsshim)\r\n", name);
        break;
    default:
        break;
    }
    if (n < 0 || (size_t)n >= sizeof(g))
        n = 0;
    /* mysql: the program has been shown the server's greeting already (it
     * answered it with its login) */
    if (st->proto != STARTTLS_MYSQL)
        st->show_len = st->show_off = 0;
    (void)show_add(st, g, (size_t)n);
    if (show_add(st, st->in, st->in_len) < 0)
        return verdict(st, STARTTLS_FAILED, "the server sent %zu bytes over "
                       "TLS before the program asked anything", st->in_len);
    st->in_len = 0;
    return STARTTLS_DONE;
}

/* --- SMTP (RFC 3207) ------------------------------------------------------ */

static enum starttls_status
smtp_next(struct starttls *st)
{
    char line[128];
    size_t end, pos, next;
    int code, r;
    long len;

    r = numeric_reply(st, 1, &code, &end, line, sizeof(line));
    if (r == 0)
        return need_more(st);
    if (r < 0)
        return verdict(st, STARTTLS_FAILED, "not an SMTP reply: \"%s\"",
                       line);
    switch (st->step) {
    case 0:
        if (show_add(st, st->in, end) < 0)
            return verdict(st, STARTTLS_FAILED, "the greeting is too long");
        consume(st, end);
        if (code != 220)
            return verdict(st, STARTTLS_REFUSED, "the server did not greet "
                           "with 220: \"%s\"", line);
        st->step = 1;
        return queuef(st, "EHLO %s\r\n", st->client);
    case 1:
        for (pos = 0; code == 250 && pos < end; pos = next) {
            len = line_at(st, pos, &next);
            if (len > 4 && has_word(st->in + pos + 4, (size_t)len - 4,
                                    "STARTTLS"))
                st->offered = 1;
        }
        consume(st, end);
        if (code != 250)
            return verdict(st, STARTTLS_REFUSED, "EHLO refused: \"%s\"",
                           line);
        if (!st->offered)
            return verdict(st, STARTTLS_REFUSED, "the server does not offer "
                           "STARTTLS (not in its EHLO answer)");
        st->step = 2;
        return queuef(st, "STARTTLS\r\n");
    default:
        consume(st, end);
        if (code != 220)
            return verdict(st, STARTTLS_REFUSED, "STARTTLS refused: \"%s\"",
                           line);
        return STARTTLS_UPGRADE;
    }
}

/* --- IMAP (RFC 3501, 2595) ------------------------------------------------ */

/* "TAG OK|NO|BAD ..." or an untagged line: returns 'O', 'N', 'B' for a
 * tagged answer with tag, 'U' untagged, '?' anything else. */
static int
imap_kind(const unsigned char *l, size_t len, const char *tag)
{
    size_t tl = strlen(tag);

    if (len >= 2 && l[0] == '*' && l[1] == ' ')
        return 'U';
    if (len > tl + 1 && memcmp(l, tag, tl) == 0 && l[tl] == ' ') {
        l += tl + 1;
        len -= tl + 1;
        if (len >= 2 && strncasecmp((const char *)l, "OK", 2) == 0 &&
            (len == 2 || l[2] == ' '))
            return 'O';
        if (len >= 2 && strncasecmp((const char *)l, "NO", 2) == 0 &&
            (len == 2 || l[2] == ' '))
            return 'N';
        if (len >= 3 && strncasecmp((const char *)l, "BAD", 3) == 0 &&
            (len == 3 || l[3] == ' '))
            return 'B';
    }
    return '?';
}

static enum starttls_status
imap_next(struct starttls *st)
{
    char line[128];
    size_t next;
    long len;

    while ((len = line_at(st, 0, &next)) >= 0) {
        const unsigned char *l = st->in;
        const char *tag = st->step == 1 ? "T1" : "T2";
        int kind;

        quote(line, sizeof(line), l, (size_t)len);
        if (st->step == 0) {
            if (len >= 5 && strncasecmp((const char *)l, "* OK ", 5) == 0) {
                if (show_add(st, l, next) < 0)
                    return verdict(st, STARTTLS_FAILED,
                                   "the greeting is too long");
                consume(st, next);
                st->step = 1;
                return queuef(st, "T1 CAPABILITY\r\n");
            }
            (void)show_add(st, l, next);
            consume(st, next);
            if (len >= 10 &&
                strncasecmp((const char *)l, "* PREAUTH ", 10) == 0)
                return verdict(st, STARTTLS_REFUSED, "the server greeted "
                               "with PREAUTH, after which STARTTLS is not "
                               "allowed: \"%s\"", line);
            if (len >= 5 && strncasecmp((const char *)l, "* BYE", 5) == 0)
                return verdict(st, STARTTLS_REFUSED, "the server said BYE: "
                               "\"%s\"", line);
            return verdict(st, STARTTLS_FAILED, "not an IMAP greeting: "
                           "\"%s\"", line);
        }
        kind = imap_kind(l, (size_t)len, tag);
        if (kind == 'U') {
            if (st->step == 1 && len > 13 &&
                strncasecmp((const char *)l, "* CAPABILITY ", 13) == 0 &&
                has_word(l + 13, (size_t)len - 13, "STARTTLS"))
                st->offered = 1;
            consume(st, next);
            continue;
        }
        consume(st, next);
        if (kind == '?')
            return verdict(st, STARTTLS_FAILED, "not an IMAP answer: \"%s\"",
                           line);
        if (kind != 'O')
            return verdict(st, STARTTLS_REFUSED, "%s refused: \"%s\"",
                           st->step == 1 ? "CAPABILITY" : "STARTTLS", line);
        if (st->step == 2)
            return STARTTLS_UPGRADE;
        if (!st->offered)
            return verdict(st, STARTTLS_REFUSED, "the server does not offer "
                           "STARTTLS (not in its CAPABILITY answer)");
        st->step = 2;
        return queuef(st, "T2 STARTTLS\r\n");
    }
    return need_more(st);
}

/* --- POP3 (RFC 2595) ------------------------------------------------------ */

static enum starttls_status
pop3_next(struct starttls *st)
{
    char line[128];
    size_t next;
    long len = line_at(st, 0, &next);
    const unsigned char *l = st->in;
    int ok, err;

    if (len < 0)
        return need_more(st);
    quote(line, sizeof(line), l, (size_t)len);
    ok = len >= 3 && memcmp(l, "+OK", 3) == 0 && (len == 3 || l[3] == ' ');
    err = len >= 4 && memcmp(l, "-ERR", 4) == 0 && (len == 4 || l[4] == ' ');
    if (st->step == 0 && show_add(st, l, next) < 0)
        return verdict(st, STARTTLS_FAILED, "the greeting is too long");
    consume(st, next);
    if (!ok && !err)
        return verdict(st, STARTTLS_FAILED, "not a POP3 answer: \"%s\"",
                       line);
    if (st->step == 0) {
        if (err)
            return verdict(st, STARTTLS_REFUSED, "the server did not greet "
                           "with +OK: \"%s\"", line);
        st->step = 1;
        return queuef(st, "STLS\r\n");
    }
    if (err)
        return verdict(st, STARTTLS_REFUSED, "STLS refused: \"%s\"", line);
    return STARTTLS_UPGRADE;
}

/* --- FTP (RFC 4217) ------------------------------------------------------- */

static enum starttls_status
ftp_next(struct starttls *st)
{
    char line[128];
    size_t end;
    int code, r;

    if (st->step == STEP_TLS) {
        /* The program speaks plain FTP and will not ask for protected
         * transfers itself. */
        st->step = STEP_TLS + 1;
        return queuef(st, "PBSZ 0\r\n");
    }
    r = numeric_reply(st, 1, &code, &end, line, sizeof(line));
    if (r == 0)
        return need_more(st);
    if (r < 0)
        return verdict(st, STARTTLS_FAILED, "not an FTP reply: \"%s\"",
                       line);
    if (st->step == 0 && show_add(st, st->in, end) < 0)
        return verdict(st, STARTTLS_FAILED, "the greeting is too long");
    consume(st, end);
    switch (st->step) {
    case 0:
        if (code >= 100 && code < 200)
            return ftp_next(st);     /* 120: ready in a moment */
        if (code != 220)
            return verdict(st, STARTTLS_REFUSED, "the server did not greet "
                           "with 220: \"%s\"", line);
        st->step = 1;
        return queuef(st, "AUTH TLS\r\n");
    case 1:
        if (code != 234)
            return verdict(st, STARTTLS_REFUSED, "AUTH TLS refused: \"%s\"",
                           line);
        return STARTTLS_UPGRADE;
    case STEP_TLS + 1:
        if (code != 200)
            return verdict(st, STARTTLS_FAILED, "PBSZ 0 refused: \"%s\"",
                           line);
        st->step = STEP_TLS + 2;
        return queuef(st, "PROT P\r\n");
    default:
        if (code != 200)
            return verdict(st, STARTTLS_FAILED, "PROT P refused: \"%s\"",
                           line);
        return done(st);
    }
}

/* --- NNTP (RFC 4642) ------------------------------------------------------ */

static enum starttls_status
nntp_next(struct starttls *st)
{
    char line[128];
    size_t end;
    int code, r;

    r = numeric_reply(st, 0, &code, &end, line, sizeof(line));
    if (r == 0)
        return need_more(st);
    if (r < 0)
        return verdict(st, STARTTLS_FAILED, "not an NNTP reply: \"%s\"",
                       line);
    if (st->step == 0 && show_add(st, st->in, end) < 0)
        return verdict(st, STARTTLS_FAILED, "the greeting is too long");
    consume(st, end);
    if (st->step == 0) {
        if (code != 200 && code != 201)
            return verdict(st, STARTTLS_REFUSED, "the server did not greet "
                           "with 200 or 201: \"%s\"", line);
        st->step = 1;
        return queuef(st, "STARTTLS\r\n");
    }
    if (code != 382)
        return verdict(st, STARTTLS_REFUSED, "STARTTLS refused: \"%s\"",
                       line);
    return STARTTLS_UPGRADE;
}

/* --- LDAP (RFC 4511 section 4.14) ----------------------------------------- */

/* The StartTLS ExtendedRequest, message ID 1:
 * LDAPMessage ::= SEQUENCE { messageID 1,
 *     [APPLICATION 23] { requestName [0] "1.3.6.1.4.1.1466.20037" } } */
static const unsigned char ldap_request[] = {
    0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16,
    '1', '.', '3', '.', '6', '.', '1', '.', '4', '.', '1', '.',
    '1', '4', '6', '6', '.', '2', '0', '0', '3', '7',
};

/* A BER tag and length at p: the content's offset and length.  0 ok,
 * 1 incomplete, -1 malformed. */
static int
ber_item(const unsigned char *p, size_t avail, unsigned char tag,
         size_t *off, size_t *len)
{
    size_t n, i;

    if (avail < 2)
        return 1;
    if (p[0] != tag)
        return -1;
    if (p[1] < 0x80) {
        *off = 2;
        *len = p[1];
        return 0;
    }
    n = p[1] & 0x7f;
    if (n == 0 || n > 3)
        return -1;
    if (avail < 2 + n)
        return 1;
    *len = 0;
    for (i = 0; i < n; i++)
        *len = (*len << 8) | p[2 + i];
    *off = 2 + n;
    return 0;
}

static enum starttls_status
ldap_next(struct starttls *st)
{
    size_t off, len, total, pos, ioff, ilen, rend;
    const unsigned char *p = st->in;
    char diag[128] = "";
    long id = 0;
    int r, rc;

    if (st->step == 0) {
        st->step = 1;
        return queue(st, ldap_request, sizeof(ldap_request));
    }
    r = ber_item(p, st->in_len, 0x30, &off, &len);
    if (r > 0)
        return need_more(st);
    if (r < 0)
        return verdict(st, STARTTLS_FAILED, "not an LDAP message");
    total = off + len;
    if (total > sizeof(st->in))
        return verdict(st, STARTTLS_FAILED, "the server's LDAP message is "
                       "%zu bytes long", total);
    if (st->in_len < total)
        return need_more(st);
    /* messageID */
    pos = off;
    if (ber_item(p + pos, total - pos, 0x02, &ioff, &ilen) != 0 ||
        ilen == 0 || ilen > 4 || pos + ioff + ilen > total)
        return verdict(st, STARTTLS_FAILED, "not an LDAP message");
    for (size_t i = 0; i < ilen; i++)
        id = (id << 8) | p[pos + ioff + i];
    pos += ioff + ilen;
    /* ExtendedResponse [APPLICATION 24] { resultCode, matchedDN,
     * diagnosticMessage, ... } */
    if (ber_item(p + pos, total - pos, 0x78, &ioff, &ilen) != 0 ||
        pos + ioff + ilen > total)
        return verdict(st, STARTTLS_FAILED, "the server did not answer the "
                       "StartTLS request (message id %ld)", id);
    pos += ioff;
    rend = pos + ilen;
    if (ber_item(p + pos, rend - pos, 0x0a, &ioff, &ilen) != 0 ||
        ilen != 1 || pos + ioff + ilen > rend)
        return verdict(st, STARTTLS_FAILED, "not an LDAP result");
    rc = p[pos + ioff];
    pos += ioff + ilen;
    /* matchedDN, then diagnosticMessage for the log */
    if (ber_item(p + pos, rend - pos, 0x04, &ioff, &ilen) == 0 &&
        pos + ioff + ilen <= rend) {
        pos += ioff + ilen;
        if (ber_item(p + pos, rend - pos, 0x04, &ioff, &ilen) == 0 &&
            pos + ioff + ilen <= rend)
            quote(diag, sizeof(diag), p + pos + ioff, ilen);
    }
    consume(st, total);
    if (id != 1)
        return verdict(st, STARTTLS_FAILED, "the server sent message id "
                       "%ld (result %d%s%s) instead of answering", id, rc,
                       diag[0] ? ": " : "", diag);
    if (rc != 0)
        return verdict(st, STARTTLS_REFUSED, "StartTLS refused: result %d%s%s",
                       rc, diag[0] ? ": " : "", diag);
    return STARTTLS_UPGRADE;
}

/* --- XMPP (RFC 6120 section 5) -------------------------------------------- */

static const char xmpp_tls_ns[] = "urn:ietf:params:xml:ns:xmpp-tls";

/* The server's name as an XML attribute value. */
static void
xml_attr(const char *s, char *buf, size_t len)
{
    size_t o = 0;

    for (; *s != '\0'; s++) {
        const char *rep = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" :
                          *s == '>' ? "&gt;" : *s == '\'' ? "&apos;" :
                          *s == '"' ? "&quot;" : NULL;
        size_t rl = rep != NULL ? strlen(rep) : 1;
        if ((unsigned char)*s < 0x20 || o + rl + 1 > len)
            continue;
        if (rep != NULL)
            memcpy(buf + o, rep, rl);
        else
            buf[o] = *s;
        o += rl;
    }
    buf[o] = '\0';
}

/* The end of the element that starts at el (after its '/>' or its closing
 * tag), or NULL when it has not all arrived. */
static const unsigned char *
xml_element_end(const struct starttls *st, const unsigned char *el,
                const char *close_tag)
{
    const unsigned char *gt, *end;
    size_t from = (size_t)(el - st->in);

    gt = memchr(el, '>', st->in_len - from);
    if (gt == NULL)
        return NULL;
    if (gt[-1] == '/')
        return gt + 1;
    end = find(st, (size_t)(gt - st->in), close_tag);
    return end != NULL ? end + strlen(close_tag) : NULL;
}

static enum starttls_status
xmpp_next(struct starttls *st)
{
    const unsigned char *f, *end;
    char to[600];

    if (st->step == 0) {
        xml_attr(st->name, to, sizeof(to));
        st->step = 1;
        return queuef(st, "<?xml version='1.0'?><stream:stream to='%s' "
                      "version='1.0' xmlns='jabber:client' xmlns:stream="
                      "'http://etherx.jabber.org/streams'>", to);
    }
    /* RFC 6120 5.4.2.2: a refusal is <failure/>, then the stream's end */
    if (st->step == 2 && find(st, 0, "<failure") != NULL)
        return verdict(st, STARTTLS_REFUSED, "the server answered STARTTLS "
                       "with <failure/>");
    if (find(st, 0, "<stream:error") != NULL)
        return verdict(st, STARTTLS_FAILED, "the server sent a stream error");
    if (find(st, 0, "</stream:stream>") != NULL)
        return verdict(st, STARTTLS_FAILED, "the server closed the stream");
    if (st->step == 1) {
        if ((f = find(st, 0, "<stream:features")) == NULL ||
            (end = xml_element_end(st, f, "</stream:features>")) == NULL)
            return need_more(st);
        size_t flen = (size_t)(end - f);
        st->offered = memmem(f, flen, "<starttls", 9) != NULL &&
                      memmem(f, flen, xmpp_tls_ns, strlen(xmpp_tls_ns)) !=
                          NULL;
        consume(st, (size_t)(end - st->in));
        if (!st->offered)
            return verdict(st, STARTTLS_REFUSED, "the server does not offer "
                           "STARTTLS (not in its stream features)");
        st->step = 2;
        return queuef(st, "<starttls xmlns='%s'/>", xmpp_tls_ns);
    }
    if ((f = find(st, 0, "<proceed")) == NULL ||
        (end = xml_element_end(st, f, "</proceed>")) == NULL)
        return need_more(st);
    consume(st, (size_t)(end - st->in));
    return STARTTLS_UPGRADE;
}

/* --- PostgreSQL (SSLRequest) ---------------------------------------------- */

static enum starttls_status
postgres_next(struct starttls *st)
{
    static const unsigned char ssl_request[] = {0, 0, 0, 8,
                                                0x04, 0xd2, 0x16, 0x2f};
    unsigned char answer;

    if (st->step == 0) {
        st->step = 1;
        return queue(st, ssl_request, sizeof(ssl_request));
    }
    if (st->in_len == 0)
        return STARTTLS_READ;
    answer = st->in[0];
    consume(st, 1);
    if (answer == 'S')
        return STARTTLS_UPGRADE;
    if (answer == 'N')
        return verdict(st, STARTTLS_REFUSED, "the server does not accept "
                       "SSL (it answered N)");
    if (answer == 'E')
        return verdict(st, STARTTLS_FAILED, "the server answered the "
                       "SSLRequest with an error message");
    return verdict(st, STARTTLS_FAILED, "the server answered the SSLRequest "
                   "with byte 0x%02x", answer);
}

/* --- MySQL and MariaDB (SSLRequest inside the login handshake) ------------ */

#define MYSQL_CLIENT_PROTOCOL_41 0x0200u
#define MYSQL_CLIENT_SSL 0x0800u
#define MYSQL_HEADER 4          /* 3-byte little-endian length, sequence id */
#define MYSQL_SSL_REQUEST 32    /* the SSLRequest's payload */

static size_t
mysql_length(const unsigned char *header)
{
    return (size_t)header[0] | (size_t)header[1] << 8 |
           (size_t)header[2] << 16;
}

/*
 * The server's Initial Handshake packet at the start of in (protocol 10).
 * The program is given it, with CLIENT_SSL cleared so that it does not
 * ask for TLS itself, and answers it with its login packet.
 *
 * These bytes came before the handshake, unprotected, and MySQL never
 * repeats them over TLS: that is the protocol's design.  What a man in
 * the middle can do with them is bounded: a changed scramble makes the
 * login fail (the server checks the answer against its own), the login
 * goes only to the verified server, and a greeting without CLIENT_SSL (a
 * downgrade) is refused unless the rule says starttls_required = no.
 * What cannot be checked: the server version text and the capability
 * flags the program sees (some could be withdrawn, which the program then
 * does without).  tlsshim.conf(5) says so.
 *
 * So that no byte the parser did not understand reaches the program, the
 * greeting it is given is rebuilt from the fields parsed and checked
 * here, never passed through: the version text (printable), connection
 * id, scramble (both parts), capability flags, character set, status,
 * the scramble's length, MariaDB's extended capability flags (when the
 * server says it is MariaDB) and the plugin name (printable); the filler
 * and reserved bytes are written as zeros, and anything after the plugin
 * name is dropped.
 */
#define MYSQL_CLIENT_LONG_PASSWORD 0x00000001u /* MySQL; MariaDB clears it */
#define MYSQL_CLIENT_SECURE_CONNECTION 0x00008000u
#define MYSQL_CLIENT_PLUGIN_AUTH 0x00080000u
#define MYSQL_SCRAMBLE1 8       /* the scramble's first part */
#define MYSQL_SCRAMBLE2_MIN 13  /* its second part, at least */
#define MYSQL_NAME_MAX 64       /* the longest version text or plugin name */

struct mysql_hello {
    const unsigned char *version, *scramble1, *scramble2, *plugin;
    size_t version_len, scramble2_len, plugin_len;
    unsigned char conn_id[4], charset, status[2], auth_len, mariadb_caps[4];
    uint32_t caps;
};

static void
put_le(unsigned char *p, uint32_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* The first byte of p[0..n) that is not printable ASCII, or n. */
static size_t
unprintable_at(const unsigned char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n && p[i] >= 0x20 && p[i] <= 0x7e; i++)
        ;
    return i;
}

/* The fields after the low capability flags (p: the payload, len its
 * length, at: the offset of the character set).  0, or -1 with the
 * verdict given. */
static int
mysql_hello_rest(struct starttls *st, struct mysql_hello *h,
                 const unsigned char *p, size_t len, size_t at)
{
    const unsigned char *nul;

    /* character set, status, high flags, scramble length, reserved */
    if (at + 1 + 2 + 2 + 1 + 10 > len) {
        (void)verdict(st, STARTTLS_FAILED, "the server's greeting ends "
                      "before its protocol 4.1 fields (%zu bytes)", len);
        return -1;
    }
    h->charset = p[at];
    memcpy(h->status, p + at + 1, 2);
    h->caps |= (uint32_t)p[at + 3] << 16 | (uint32_t)p[at + 4] << 24;
    h->auth_len = p[at + 5];
    /* MariaDB's extended flags are the last 4 of the 10 reserved bytes */
    if (!(h->caps & MYSQL_CLIENT_LONG_PASSWORD))
        memcpy(h->mariadb_caps, p + at + 12, 4);
    at += 16;
    if (h->caps & MYSQL_CLIENT_SECURE_CONNECTION) {
        size_t n = h->auth_len > MYSQL_SCRAMBLE1 + MYSQL_SCRAMBLE2_MIN
                       ? (size_t)h->auth_len - MYSQL_SCRAMBLE1
                       : MYSQL_SCRAMBLE2_MIN;
        if (at + n > len) {
            (void)verdict(st, STARTTLS_FAILED, "the server's greeting ends "
                          "inside its scramble (%zu bytes)", len);
            return -1;
        }
        h->scramble2 = p + at;
        h->scramble2_len = n;
        at += n;
    }
    if (h->caps & MYSQL_CLIENT_PLUGIN_AUTH) {
        /* NUL-terminated; some 5.5 servers ended the packet instead */
        nul = memchr(p + at, '\0', len - at);
        h->plugin = p + at;
        h->plugin_len = nul != NULL ? (size_t)(nul - (p + at)) : len - at;
        if (h->plugin_len > MYSQL_NAME_MAX ||
            unprintable_at(h->plugin, h->plugin_len) != h->plugin_len) {
            (void)verdict(st, STARTTLS_FAILED, "the server's greeting names "
                          "an authentication plugin that is not a short "
                          "printable name");
            return -1;
        }
    }
    return 0;
}

/* h as a greeting packet (sequence id 0, CLIENT_SSL cleared) in show[]. */
static int
mysql_hello_show(struct starttls *st, const struct mysql_hello *h)
{
    unsigned char g[4 + 1 + MYSQL_NAME_MAX + 1 + 4 + MYSQL_SCRAMBLE1 + 1 +
                    2 + 1 + 2 + 2 + 1 + 10 + 255 + MYSQL_NAME_MAX + 1];
    uint32_t caps = h->caps & ~(uint32_t)MYSQL_CLIENT_SSL;
    size_t o = 4;

    g[o++] = 10;
    memcpy(g + o, h->version, h->version_len);
    o += h->version_len;
    g[o++] = '\0';
    memcpy(g + o, h->conn_id, 4);
    o += 4;
    memcpy(g + o, h->scramble1, MYSQL_SCRAMBLE1);
    o += MYSQL_SCRAMBLE1;
    g[o++] = 0;                        /* filler */
    put_le(g + o, caps & 0xffff, 2);
    o += 2;
    g[o++] = h->charset;
    memcpy(g + o, h->status, 2);
    o += 2;
    put_le(g + o, caps >> 16, 2);
    o += 2;
    g[o++] = h->auth_len;
    memset(g + o, 0, 6);
    memcpy(g + o + 6, h->mariadb_caps, 4);
    o += 10;
    if (h->scramble2 != NULL) {
        memcpy(g + o, h->scramble2, h->scramble2_len);
        o += h->scramble2_len;
    }
    if (h->plugin != NULL) {
        memcpy(g + o, h->plugin, h->plugin_len);
        o += h->plugin_len;
        g[o++] = '\0';
    }
    put_le(g, (uint32_t)(o - 4), 3);
    g[3] = 0;
    return show_add(st, g, o);
}

static enum starttls_status
mysql_greeting(struct starttls *st)
{
    const unsigned char *p = st->in + MYSQL_HEADER, *nul;
    struct mysql_hello h;
    size_t len, end, caps_at, bad;
    char text[128];

    if (st->in_len < MYSQL_HEADER)
        return need_more(st);
    len = mysql_length(st->in);
    end = MYSQL_HEADER + len;
    if (end > sizeof(st->show))
        return verdict(st, STARTTLS_FAILED, "the server's greeting is %zu "
                       "bytes long", len);
    if (st->in_len < end)
        return need_more(st);
    if (len >= 3 && p[0] == 0xff) {
        /* ERR instead: too many connections, host blocked... */
        quote(text, sizeof(text), p + 3, len - 3);
        return verdict(st, STARTTLS_FAILED, "the server sent error %u "
                       "instead of a greeting: \"%s\"",
                       (unsigned)p[1] | (unsigned)p[2] << 8, text);
    }
    if (st->in[3] != 0)
        return verdict(st, STARTTLS_FAILED, "the server's greeting has "
                       "sequence id %u, not 0", st->in[3]);
    if (len == 0 || p[0] != 10)
        return verdict(st, STARTTLS_FAILED, "not a MySQL greeting "
                       "(protocol version %u, not 10)", len > 0 ? p[0] : 0);
    nul = memchr(p + 1, '\0', len - 1);
    if (nul == NULL)
        return verdict(st, STARTTLS_FAILED, "the server's greeting has no "
                       "end to its version text");
    caps_at = (size_t)(nul - p) + 1 + 4 + MYSQL_SCRAMBLE1 + 1;
    if (caps_at + 2 > len)
        return verdict(st, STARTTLS_FAILED, "the server's greeting ends "
                       "before its capability flags (%zu bytes)", len);
    memset(&h, 0, sizeof(h));
    h.caps = (uint32_t)p[caps_at] | (uint32_t)p[caps_at + 1] << 8;
    if (!(h.caps & MYSQL_CLIENT_SSL)) {
        /* shown as it came, should the rule allow plaintext: the program
         * then talks to this server directly anyway */
        if (show_add(st, st->in, end) < 0)
            return verdict(st, STARTTLS_FAILED, "the greeting is too long");
        consume(st, end);
        return verdict(st, STARTTLS_REFUSED, "the server does not offer "
                       "SSL (no CLIENT_SSL in its greeting's capability "
                       "flags)");
    }
    h.version = p + 1;
    h.version_len = (size_t)(nul - h.version);
    bad = unprintable_at(h.version, h.version_len);
    if (h.version_len == 0 || h.version_len > MYSQL_NAME_MAX)
        return verdict(st, STARTTLS_FAILED, "the server's version text is "
                       "%zu bytes long (1 to %d)", h.version_len,
                       MYSQL_NAME_MAX);
    if (bad != h.version_len)
        return verdict(st, STARTTLS_FAILED, "the server's version text is "
                       "not a short printable text (%zu bytes, byte %zu is "
                       "0x%02x)", h.version_len, bad, h.version[bad]);
    memcpy(h.conn_id, nul + 1, 4);
    h.scramble1 = nul + 1 + 4;
    if (mysql_hello_rest(st, &h, p, len, caps_at + 2) < 0)
        return STARTTLS_FAILED;
    if (mysql_hello_show(st, &h) < 0)
        return verdict(st, STARTTLS_FAILED, "the greeting is too long");
    consume(st, end);
    st->step = 1;
    return STARTTLS_LOGIN;
}

/*
 * The server fixes the session's capabilities from the SSLRequest and
 * reads only the fields after them from the login that follows over TLS
 * (MariaDB's parse_client_handshake_packet; MySQL reads them again), so
 * the SSLRequest must carry the program's own flags, character set and
 * maximum packet size: it is the first 32 bytes of the program's login,
 * with CLIENT_SSL added.  The login then goes over TLS with CLIENT_SSL as
 * well, numbered 2.
 */
static enum starttls_status
mysql_login(struct starttls *st)
{
    unsigned char req[MYSQL_HEADER + MYSQL_SSL_REQUEST];
    const unsigned char *p = st->login + MYSQL_HEADER;
    size_t len;
    unsigned caps;

    if (st->in_len > 0)
        return STARTTLS_LOGIN;   /* starttls_next fails it: injected */
    if (st->login_len < MYSQL_HEADER)
        return STARTTLS_LOGIN;
    len = mysql_length(st->login);
    if (MYSQL_HEADER + len > sizeof(st->login))
        return verdict(st, STARTTLS_FAILED, "the program's login packet is "
                       "%zu bytes long (at most %zu are kept)", len,
                       sizeof(st->login) - MYSQL_HEADER);
    if (st->login_len < MYSQL_HEADER + len)
        return STARTTLS_LOGIN;
    if (st->login[3] != 1)
        return verdict(st, STARTTLS_FAILED, "the program's first packet has "
                       "sequence id %u, not 1: not a login", st->login[3]);
    caps = len >= 2 ? (unsigned)p[0] | (unsigned)p[1] << 8 : 0;
    if (len < MYSQL_SSL_REQUEST || !(caps & MYSQL_CLIENT_PROTOCOL_41))
        return verdict(st, STARTTLS_FAILED, "the program's login packet is "
                       "not a protocol 4.1 HandshakeResponse (%zu bytes, "
                       "capability flags 0x%04x)", len, caps);
    if ((caps & MYSQL_CLIENT_SSL) && len == MYSQL_SSL_REQUEST)
        return verdict(st, STARTTLS_FAILED, "the program sent an SSLRequest "
                       "itself (it speaks TLS: use action = auto or "
                       "enforce instead of starttls)");
    memcpy(req, "\x20\x00\x00\x01", MYSQL_HEADER);
    memcpy(req + MYSQL_HEADER, p, MYSQL_SSL_REQUEST);
    req[MYSQL_HEADER + 1] |= MYSQL_CLIENT_SSL >> 8;
    st->step = 2;
    return queue(st, req, sizeof(req));
}

static enum starttls_status
mysql_next(struct starttls *st)
{
    switch (st->step) {
    case 0:
        return mysql_greeting(st);
    case 1:
        return mysql_login(st);
    case 2:
        return STARTTLS_UPGRADE;
    case STEP_TLS:
        st->login[3] = 2;
        st->login[MYSQL_HEADER + 1] |= MYSQL_CLIENT_SSL >> 8;
        st->step = STEP_TLS + 1;
        return queue(st, st->login, st->login_len);
    default:
        return done(st);
    }
}

size_t
starttls_login(struct starttls *st, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t taken = 0;

    if (st->proto != STARTTLS_MYSQL || st->step != 1)
        return 0;
    while (taken < len) {
        size_t want = MYSQL_HEADER;
        if (st->login_len >= MYSQL_HEADER)
            want += mysql_length(st->login);
        /* an overlong packet: mysql_login fails the dialogue */
        if (want > sizeof(st->login) || st->login_len >= want)
            break;
        size_t n = want - st->login_len;
        if (n > len - taken)
            n = len - taken;
        memcpy(st->login + st->login_len, p + taken, n);
        st->login_len += n;
        taken += n;
    }
    return taken;
}

void
starttls_seq_init(struct starttls_seq *sq)
{
    memset(sq, 0, sizeof(*sq));
    sq->active = 1;
}

/* Walk n bytes of one direction's packets, copying src to dst (NULL: no
 * copy) with each sequence id moved by delta.  Going up, an id 0 is the
 * program's first command: the translation ends there. */
static void
seq_walk(struct starttls_seq *sq, struct starttls_seqdir *d,
         unsigned char *dst, const unsigned char *src, size_t n, int delta)
{
    size_t i = 0;

    while (i < n && sq->active) {
        if (d->header == MYSQL_HEADER) {
            size_t k = d->left < n - i ? d->left : n - i;
            if (dst != NULL && dst + i != src + i)
                memcpy(dst + i, src + i, k);
            i += k;
            d->left -= k;
            if (d->left == 0)
                d->header = 0;
            continue;
        }
        unsigned char b = src[i];
        if (d->header < 3) {
            d->length |= (size_t)b << (8 * d->header);
        } else if (delta > 0 && b == 0) {
            sq->active = 0;
            break;
        } else {
            b = (unsigned char)(b + delta);
        }
        if (dst != NULL)
            dst[i] = b;
        i++;
        if (++d->header == MYSQL_HEADER) {
            d->left = d->length;
            d->length = 0;
            if (d->left == 0)
                d->header = 0;
        }
    }
    if (i < n && dst != NULL && dst + i != src + i)
        memcpy(dst + i, src + i, n - i);
}

void
starttls_seq_up(struct starttls_seq *sq, unsigned char *dst,
                const unsigned char *src, size_t n)
{
    seq_walk(sq, &sq->up, dst, src, n, 1);
}

void
starttls_seq_down(struct starttls_seq *sq, unsigned char *p, size_t n)
{
    seq_walk(sq, &sq->down, p, p, n, -1);
}

/* --- the interface -------------------------------------------------------- */

void
starttls_init(struct starttls *st, enum starttls_proto proto,
              const char *server_name, const char *client_name)
{
    /* the buffers need no clearing: their lengths say what they hold */
    memset(st, 0, offsetof(struct starttls, in));
    st->in_len = st->out_len = st->out_off = 0;
    st->show_len = st->show_off = 0;
    st->offered = 0;
    st->why[0] = '\0';
    st->login_len = 0;
    st->proto = proto;
    util_strlcpy(st->name, server_name != NULL ? server_name : "",
                 sizeof(st->name));
    util_strlcpy(st->client, client_name != NULL ? client_name : "[0.0.0.0]",
                 sizeof(st->client));
}

void
starttls_tls_up(struct starttls *st)
{
    st->tls = 1;
    st->step = STEP_TLS;
}

enum starttls_status
starttls_next(struct starttls *st)
{
    enum starttls_status s;

    if (st->out_off < st->out_len)
        return STARTTLS_WRITE;
    if (st->tls && st->proto != STARTTLS_FTP && st->proto != STARTTLS_MYSQL)
        return done(st);
    switch (st->proto) {
    case STARTTLS_SMTP:
        s = smtp_next(st);
        break;
    case STARTTLS_IMAP:
        s = imap_next(st);
        break;
    case STARTTLS_POP3:
        s = pop3_next(st);
        break;
    case STARTTLS_FTP:
        s = ftp_next(st);
        break;
    case STARTTLS_LDAP:
        s = ldap_next(st);
        break;
    case STARTTLS_XMPP:
        s = xmpp_next(st);
        break;
    case STARTTLS_NNTP:
        s = nntp_next(st);
        break;
    case STARTTLS_POSTGRES:
        s = postgres_next(st);
        break;
    case STARTTLS_MYSQL:
        s = mysql_next(st);
        break;
    default:
        return verdict(st, STARTTLS_FAILED, "no STARTTLS dialogue for this "
                       "protocol");
    }
    /* Whatever followed the go-ahead came before the handshake, unprotected:
     * someone on the path is trying to have it taken for the TLS server's
     * words (CVE-2011-0411 and its kin).  Fail rather than discard, so the
     * attempt is seen. */
    if (s == STARTTLS_UPGRADE && st->in_len > 0) {
        char text[128];
        quote(text, sizeof(text), st->in, st->in_len);
        return verdict(st, STARTTLS_FAILED, "%zu bytes came after the "
                       "server's go-ahead, before the TLS handshake "
                       "(injected?): \"%s\"", st->in_len, text);
    }
    /* mysql: the server has nothing to say between its greeting and the
     * program's login; bytes there would be taken for its answers */
    if (s == STARTTLS_LOGIN && st->in_len > 0) {
        char text[128];
        quote(text, sizeof(text), st->in, st->in_len);
        return verdict(st, STARTTLS_FAILED, "%zu bytes came after the "
                       "server's greeting, before the program's login "
                       "(injected?): \"%s\"", st->in_len, text);
    }
    return s;
}
