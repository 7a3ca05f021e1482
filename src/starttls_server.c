/*
 * STARTTLS offered on behalf of a plain server (see starttls_server.h).
 * The client's commands are read a line at a time and sorted: passed to
 * the program, answered here (STARTTLS itself; with starttls_required,
 * what the protocol forbids before it), or the point after which the
 * session is plaintext for good (a login or a mail transaction without
 * STARTTLS, where starttls_required = no allows that).  The program's
 * answers are passed on a line at a time, and the few lines that list
 * capabilities get STARTTLS added: RFC 3207 (SMTP), RFC 2595 and 3501
 * (IMAP, LOGINDISABLED), RFC 2595 and 2449 (POP3 STLS).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "starttls_server.h"

int
stsrv_supported(enum starttls_proto proto)
{
    return proto == STARTTLS_SMTP || proto == STARTTLS_IMAP ||
           proto == STARTTLS_POP3;
}

void
stsrv_init(struct stsrv *st, enum starttls_proto proto, int required)
{
    /* the buffers need no clearing: their lengths say what they hold */
    st->proto = proto;
    st->required = required;
    st->in_len = st->pass = 0;
    st->eof = st->cont = st->drop = 0;
    st->literal = 0;
    st->reply_len = st->reply_off = 0;
    st->discarded = 0;
    st->refused = 0;
    st->refused_verb[0] = '\0';
    st->hold_len = 0;
    st->raw_line = 0;
    st->cap_reply = 0;
    st->out_len = st->out_off = 0;
    st->why[0] = '\0';
}

unsigned char *
stsrv_room(struct stsrv *st, size_t *room)
{
    *room = sizeof(st->in) - st->in_len;
    return st->in + st->in_len;
}

void
stsrv_received(struct stsrv *st, size_t n)
{
    if (n == 0)
        st->eof = 1;
    if (n > sizeof(st->in) - st->in_len)
        n = sizeof(st->in) - st->in_len;
    st->in_len += n;
}

static void
consume(struct stsrv *st, size_t n)
{
    if (n > st->in_len)
        n = st->in_len;
    memmove(st->in, st->in + n, st->in_len - n);
    st->in_len -= n;
    st->pass = st->pass > n ? st->pass - n : 0;
}

void
stsrv_consume_pass(struct stsrv *st, size_t n)
{
    if (n > st->pass)
        n = st->pass;
    if (n > 0)
        st->unanswered = 1;
    consume(st, n);
}

/* STARTTLS while the program has not answered what it read: its answer
 * would go out inside TLS, as the answer to the client's first command
 * there (a command injected before STARTTLS, or pipelined: RFC 3207
 * wants STARTTLS answered after everything before it).  Refused with
 * the protocol's error; the client may ask again once it has its
 * answers. */
static int
pipelined(struct stsrv *st)
{
    if (!st->unanswered)
        return 0;
    st->pipelined++;
    return 1;
}

static enum stsrv_status
reply(struct stsrv *st, enum stsrv_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Queue tlsshim's own answer to the client. */
static enum stsrv_status
reply(struct stsrv *st, enum stsrv_status s, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(st->reply, sizeof(st->reply), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    st->reply_len = (size_t)n < sizeof(st->reply) ? (size_t)n
                                                   : sizeof(st->reply) - 1;
    st->reply_off = 0;
    return s;
}

/* --- the client's commands ------------------------------------------------ */

enum disposition { PASS, REFUSE, UPGRADE, RELEASE };

/* The word at p[*pos..len): letters, digits and a few marks; *pos moves
 * past it and the blanks after it.  Copied, upper case, into buf. */
static size_t
word(const unsigned char *p, size_t len, size_t *pos, char *buf,
     size_t buflen)
{
    size_t i = *pos, o = 0;

    while (i < len && p[i] != ' ' && p[i] != '\t') {
        if (o + 1 < buflen) {
            unsigned char ch = p[i];
            buf[o++] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32)
                       : ch >= 0x21 && ch < 0x7f ? (char)ch : '?';
        }
        i++;
    }
    buf[o] = '\0';
    size_t wl = i - *pos;
    while (i < len && (p[i] == ' ' || p[i] == '\t'))
        i++;
    *pos = i;
    return wl;
}

static int
one_of(const char *w, const char *const *list)
{
    for (; *list != NULL; list++)
        if (strcmp(w, *list) == 0)
            return 1;
    return 0;
}

/* The line without its line end. */
static size_t
body_len(const unsigned char *l, size_t n)
{
    if (n > 0 && l[n - 1] == '\n')
        n--;
    if (n > 0 && l[n - 1] == '\r')
        n--;
    return n;
}

static void
note_refused(struct stsrv *st, const char *verb)
{
    st->refused++;
    util_strlcpy(st->refused_verb, verb[0] != '\0' ? verb : "(empty)",
                 sizeof(st->refused_verb));
}

static enum disposition
smtp_command(struct stsrv *st, const unsigned char *l, size_t n)
{
    static const char *const allowed[] = {"EHLO", "HELO", "NOOP", "RSET",
                                          "QUIT", NULL};
    /* a mail transaction or a login in plaintext: no STARTTLS after it */
    static const char *const final[] = {"MAIL", "AUTH", NULL};
    char verb[16];
    size_t pos = 0, len = body_len(l, n);

    (void)word(l, len, &pos, verb, sizeof(verb));
    if (strcmp(verb, "STARTTLS") == 0) {
        if (pos < len) {
            note_refused(st, verb);
            (void)reply(st, STSRV_REPLY, "501 5.5.4 Syntax error (no "
                        "parameters allowed)\r\n");
            return REFUSE;
        }
        if (pipelined(st)) {
            (void)reply(st, STSRV_REPLY, "503 5.5.1 STARTTLS sent before "
                        "the answers to earlier commands\r\n");
            return REFUSE;
        }
        (void)reply(st, STSRV_UPGRADE, "220 2.0.0 Ready to start TLS\r\n");
        return UPGRADE;
    }
    if (strcmp(verb, "EHLO") == 0)
        st->cap_reply = 1;
    if (st->required && !one_of(verb, allowed)) {
        note_refused(st, verb);
        (void)reply(st, STSRV_REPLY, "530 5.7.0 Must issue a STARTTLS "
                    "command first\r\n");
        return REFUSE;
    }
    if (!st->required && one_of(verb, final))
        return RELEASE;
    return PASS;
}

static enum disposition
pop3_command(struct stsrv *st, const unsigned char *l, size_t n)
{
    static const char *const allowed[] = {"CAPA", "QUIT", NULL};
    static const char *const final[] = {"PASS", "APOP", "AUTH", NULL};
    char verb[16];
    size_t pos = 0, len = body_len(l, n);

    (void)word(l, len, &pos, verb, sizeof(verb));
    if (strcmp(verb, "STLS") == 0) {
        if (pos < len) {
            note_refused(st, verb);
            (void)reply(st, STSRV_REPLY, "-ERR STLS takes no arguments\r\n");
            return REFUSE;
        }
        if (pipelined(st)) {
            (void)reply(st, STSRV_REPLY, "-ERR STLS sent before the "
                        "answers to earlier commands\r\n");
            return REFUSE;
        }
        (void)reply(st, STSRV_UPGRADE, "+OK Begin TLS negotiation\r\n");
        return UPGRADE;
    }
    if (strcmp(verb, "CAPA") == 0)
        st->cap_reply = 1;
    if (st->required && !one_of(verb, allowed)) {
        note_refused(st, verb);
        (void)reply(st, STSRV_REPLY, "-ERR Must issue a STLS command "
                    "first\r\n");
        return REFUSE;
    }
    if (!st->required && one_of(verb, final))
        return RELEASE;
    return PASS;
}

/* A literal announced at the end of an IMAP line ("{12}" or "{12+}"):
 * its size, and whether the client sends it without waiting (LITERAL+).
 * 0 when there is none. */
static int
imap_literal(const unsigned char *l, size_t len, size_t *size, int *nosync)
{
    size_t i, v = 0, digits = 0;

    if (len < 3 || l[len - 1] != '}')
        return 0;
    i = len - 1;
    *nosync = l[i - 1] == '+';
    if (*nosync)
        i--;
    while (i > 0 && l[i - 1] >= '0' && l[i - 1] <= '9') {
        i--;
        digits++;
    }
    if (digits == 0 || digits > 9 || i == 0 || l[i - 1] != '{')
        return 0;
    for (size_t k = i; k < i + digits; k++)
        v = v * 10 + (size_t)(l[k] - '0');
    *size = v;
    return 1;
}

/* After a line of an IMAP command (its first or a continuation): a
 * literal that follows goes where the line went. */
static void
imap_follow(struct stsrv *st, const unsigned char *l, size_t n, int dropped)
{
    size_t size = 0, len = body_len(l, n);
    int nosync = 0;

    st->cont = 0;
    st->literal = 0;
    if (!imap_literal(l, len, &size, &nosync))
        return;
    /* A refused command's synchronising literal never comes: the client
     * waits for a "+" and gets our answer instead. */
    if (dropped && !nosync)
        return;
    st->literal = size;
    st->cont = 1;
    st->drop = dropped;
}

static enum disposition
imap_command(struct stsrv *st, const unsigned char *l, size_t n)
{
    static const char *const allowed[] = {"CAPABILITY", "NOOP", "LOGOUT",
                                          "ID", NULL};
    static const char *const final[] = {"LOGIN", "AUTHENTICATE", NULL};
    char tag[64], verb[24];
    size_t pos = 0, len = body_len(l, n), tl;
    int tag_ok = 1;

    tl = word(l, len, &pos, tag, sizeof(tag));
    for (size_t i = 0; i < tl; i++)
        if (l[i] < 0x21 || l[i] >= 0x7f || strchr("(){%*\"\\+", l[i]) != NULL)
            tag_ok = 0;
    if (tl == 0 || tl >= sizeof(tag))
        tag_ok = 0;
    else
        memcpy(tag, l, tl);   /* answered as sent, not upper case */
    (void)word(l, len, &pos, verb, sizeof(verb));
    if (tag_ok && strcmp(verb, "STARTTLS") == 0) {
        if (pos < len) {
            note_refused(st, verb);
            (void)reply(st, STSRV_REPLY, "%s BAD STARTTLS takes no "
                        "arguments\r\n", tag);
            imap_follow(st, l, n, 1);
            return REFUSE;
        }
        if (pipelined(st)) {
            (void)reply(st, STSRV_REPLY, "%s BAD STARTTLS sent before the "
                        "answers to earlier commands\r\n", tag);
            return REFUSE;
        }
        (void)reply(st, STSRV_UPGRADE, "%s OK Begin TLS negotiation "
                    "now\r\n", tag);
        return UPGRADE;
    }
    if (st->required && (!tag_ok || !one_of(verb, allowed))) {
        note_refused(st, verb);
        if (!tag_ok)
            (void)reply(st, STSRV_REPLY, "* BAD Must issue a STARTTLS "
                        "command first\r\n");
        else if (one_of(verb, final))
            /* LOGINDISABLED (RFC 3501 6.2.3): the login is refused */
            (void)reply(st, STSRV_REPLY, "%s NO [PRIVACYREQUIRED] Must "
                        "issue a STARTTLS command first\r\n", tag);
        else
            (void)reply(st, STSRV_REPLY, "%s BAD Must issue a STARTTLS "
                        "command first\r\n", tag);
        imap_follow(st, l, n, 1);
        return REFUSE;
    }
    if (!st->required && tag_ok && one_of(verb, final))
        return RELEASE;
    /* starttls_required: a literal is never believed before STARTTLS
     * (its bytes would reach the program unchecked, and a server that
     * rejects the line reads them as commands); none of the allowed
     * commands needs one */
    if (st->required) {
        size_t size;
        int nosync;
        if (imap_literal(l, len, &size, &nosync)) {
            note_refused(st, verb);
            (void)reply(st, STSRV_REPLY, "%s BAD No literals before "
                        "STARTTLS\r\n", tag);
            imap_follow(st, l, n, 1);
            return REFUSE;
        }
    }
    imap_follow(st, l, n, 0);
    return PASS;
}

enum stsrv_status
stsrv_next(struct stsrv *st)
{
    const unsigned char *nl;
    enum disposition d;
    size_t next;

    if (st->pass > 0)
        return STSRV_PASS;
    for (;;) {
        if (st->literal > 0) {
            size_t n = st->literal < st->in_len ? st->literal : st->in_len;
            if (n == 0)
                return st->eof ? STSRV_EOF : STSRV_READ;
            st->literal -= n;
            if (st->drop) {
                consume(st, n);
                continue;
            }
            st->pass = n;
            return STSRV_PASS;
        }
        nl = memchr(st->in, '\n', st->in_len);
        if (nl == NULL) {
            if (st->eof) {
                /* a last line without its end: the program sees it when
                 * it would have seen it anyway */
                if (st->in_len > 0 && !st->required && !st->drop) {
                    st->pass = st->in_len;
                    return STSRV_PASS;
                }
                st->in_len = 0;
                return STSRV_EOF;
            }
            if (st->in_len >= sizeof(st->in)) {
                snprintf(st->why, sizeof(st->why), "the client sent a line "
                         "longer than %zu bytes before STARTTLS",
                         sizeof(st->in));
                return STSRV_FAILED;
            }
            return STSRV_READ;
        }
        next = (size_t)(nl - st->in) + 1;
        if (st->cont) {
            /* an IMAP command goes on after its literal */
            int dropped = st->drop;
            imap_follow(st, st->in, next, dropped);
            if (dropped) {
                consume(st, next);
                continue;
            }
            st->pass = next;
            return STSRV_PASS;
        }
        st->drop = 0;
        switch (st->proto) {
        case STARTTLS_SMTP:
            d = smtp_command(st, st->in, next);
            break;
        case STARTTLS_IMAP:
            d = imap_command(st, st->in, next);
            break;
        case STARTTLS_POP3:
            d = pop3_command(st, st->in, next);
            break;
        default:
            snprintf(st->why, sizeof(st->why), "STARTTLS is not offered "
                     "for %s", starttls_proto_name(st->proto));
            return STSRV_FAILED;
        }
        switch (d) {
        case PASS:
            st->pass = next;
            return STSRV_PASS;
        case REFUSE:
            consume(st, next);
            return STSRV_REPLY;
        case UPGRADE:
            /* what followed came before the handshake: never the
             * program's, as if it had come over TLS */
            st->discarded = st->in_len - next;
            st->in_len = 0;
            st->cont = st->drop = 0;
            st->literal = 0;
            return STSRV_UPGRADE;
        case RELEASE:
        default:
            st->pass = st->in_len;
            return STSRV_RELEASE;
        }
    }
}

/* --- the program's answers ------------------------------------------------ */

static void
put(struct stsrv *st, const void *p, size_t n)
{
    /* callers made sure of the room; never overflow regardless */
    if (n > sizeof(st->out) - st->out_len)
        n = sizeof(st->out) - st->out_len;
    memcpy(st->out + st->out_len, p, n);
    st->out_len += n;
}

static void
puts_(struct stsrv *st, const char *s)
{
    put(st, s, strlen(s));
}

static const unsigned char *
find_ci(const unsigned char *p, size_t len, const char *what)
{
    size_t wl = strlen(what);

    for (size_t i = 0; i + wl <= len; i++)
        if (strncasecmp((const char *)p + i, what, wl) == 0)
            return p + i;
    return NULL;
}

/* 1 when the space-separated list p[0..len) has word (any case). */
static int
has_word(const unsigned char *p, size_t len, const char *word)
{
    size_t wl = strlen(word), i = 0;

    while (i < len) {
        while (i < len && (p[i] == ' ' || p[i] == '['))
            i++;
        size_t s = i;
        while (i < len && p[i] != ' ' && p[i] != ']')
            i++;
        if (i - s == wl && strncasecmp((const char *)p + s, word, wl) == 0)
            return 1;
        if (i < len && p[i] == ']')
            break;
    }
    return 0;
}

/* Could the line that begins with l[0..n) be one we rewrite? */
static int
line_may_change(const struct stsrv *st, const unsigned char *l, size_t n)
{
    switch (st->proto) {
    case STARTTLS_SMTP:
        return st->cap_reply == 1;
    case STARTTLS_POP3:
        return st->cap_reply == 1 || (st->cap_reply == 2 &&
                                      (n == 0 || l[0] == '.'));
    case STARTTLS_IMAP:
        return n == 0 || (l[0] == '*' && (n == 1 || l[1] == ' '));
    default:
        return 0;
    }
}

/* The IMAP capabilities added to a list that has caps[0..len). */
static void
imap_add_caps(struct stsrv *st, const unsigned char *caps, size_t len)
{
    if (!has_word(caps, len, "STARTTLS"))
        puts_(st, " STARTTLS");
    if (st->required && !has_word(caps, len, "LOGINDISABLED"))
        puts_(st, " LOGINDISABLED");
}

/* A whole line l[0..n) (its end included) into out, rewritten. */
static void
rewrite(struct stsrv *st, const unsigned char *l, size_t n)
{
    size_t len = body_len(l, n);
    const char *eol = (const char *)l + len;
    size_t eol_len = n - len;
    char end[3] = "";

    memcpy(end, eol, eol_len < 2 ? eol_len : 2);
    switch (st->proto) {
    case STARTTLS_SMTP:
        st->cap_reply = 0;
        if (len >= 4 && memcmp(l, "250-", 4) == 0) {
            put(st, l, n);
            puts_(st, "250-STARTTLS");
            puts_(st, end);
            return;
        }
        if (len >= 3 && memcmp(l, "250", 3) == 0 && (len == 3 || l[3] == ' ')) {
            /* the last line of the answer: it goes on after it */
            puts_(st, "250-");
            put(st, l + (len > 3 ? 4 : 3), n - (len > 3 ? 4 : 3));
            puts_(st, "250 STARTTLS");
            puts_(st, end);
            return;
        }
        break;   /* EHLO refused: as it is */
    case STARTTLS_POP3:
        if (st->cap_reply == 1) {
            st->cap_reply = len >= 3 && memcmp(l, "+OK", 3) == 0 ? 2 : 0;
            break;
        }
        if (len == 1 && l[0] == '.') {
            st->cap_reply = 0;
            puts_(st, "STLS");
            puts_(st, end);
        }
        break;
    case STARTTLS_IMAP: {
        const unsigned char *b;
        if (len >= 12 && strncasecmp((const char *)l, "* CAPABILITY", 12) ==
                             0 && (len == 12 || l[12] == ' ')) {
            put(st, l, len);
            imap_add_caps(st, l + 12, len - 12);
            put(st, eol, eol_len);
            return;
        }
        if ((b = find_ci(l, len, "[CAPABILITY ")) != NULL) {
            const unsigned char *caps = b + 12;
            const unsigned char *rb = memchr(caps, ']', len - (size_t)(caps - l));
            if (rb != NULL) {
                put(st, l, (size_t)(rb - l));
                imap_add_caps(st, caps, (size_t)(rb - caps));
                put(st, rb, n - (size_t)(rb - l));
                return;
            }
        }
        break;
    }
    default:
        break;
    }
    put(st, l, n);
}

/* Room a line of n bytes may need once rewritten. */
#define REWRITE_SLACK 64

size_t
stsrv_from_program(struct stsrv *st, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t taken = 0;

    while (taken < len) {
        size_t room = sizeof(st->out) - st->out_len;
        const unsigned char *nl = memchr(p + taken, '\n', len - taken);
        size_t n = nl != NULL ? (size_t)(nl - (p + taken)) + 1 : len - taken;

        if (st->raw_line) {
            if (n > room)
                n = room;
            else if (nl != NULL)
                st->raw_line = 0;
            if (n == 0)
                break;
            put(st, p + taken, n);
            taken += n;
            continue;
        }
        if (st->hold_len + n > sizeof(st->hold)) {
            /* too long to be a capability line we rewrite */
            if (room < st->hold_len + 1)
                break;
            put(st, st->hold, st->hold_len);
            st->hold_len = 0;
            st->raw_line = 1;
            continue;
        }
        if (room < st->hold_len + n + REWRITE_SLACK)
            break;
        memcpy(st->hold + st->hold_len, p + taken, n);
        st->hold_len += n;
        taken += n;
        if (nl != NULL) {
            if (line_may_change(st, st->hold, st->hold_len))
                rewrite(st, st->hold, st->hold_len);
            else
                put(st, st->hold, st->hold_len);
            st->hold_len = 0;
        } else if (!line_may_change(st, st->hold, st->hold_len)) {
            put(st, st->hold, st->hold_len);
            st->hold_len = 0;
            st->raw_line = 1;
        }
    }
    if (taken > 0)
        st->unanswered = 0;
    return taken;
}

void
stsrv_flush_hold(struct stsrv *st)
{
    if (st->hold_len == 0)
        return;
    put(st, st->hold, st->hold_len);
    st->hold_len = 0;
    st->raw_line = 1;
}
