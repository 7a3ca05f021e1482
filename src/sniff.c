/*
 * First-byte classification.  A TLS record header is content type 22
 * (handshake), major version 3 and a minor version of 1 to 4; a write
 * shorter than the header is judged on the bytes it has.  For audit, a
 * ClientHello is parsed far enough to name its SNI and offered versions,
 * and plaintext protocols are recognised by their first line or message;
 * nothing else of the payload is kept.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sniff.h"
#include "util.h"

int
sniff_is_tls_record(const unsigned char *buf, size_t len)
{
    if (len < 1 || buf[0] != 0x16)
        return 0;
    if (len >= 2 && buf[1] != 0x03)
        return 0;
    if (len >= 3 && (buf[2] < 0x01 || buf[2] > 0x04))
        return 0;
    return 1;
}

static unsigned
be16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

int
sniff_tls_header(const unsigned char *buf, size_t len)
{
    unsigned rec;

    if (len < 5 || !sniff_is_tls_record(buf, len))
        return 0;
    rec = be16(buf + 3);
    return rec >= 1 && rec <= 16384 + 2048;
}

static const char *
version_name(unsigned v)
{
    switch (v) {
    case 0x0300: return "SSLv3";
    case 0x0301: return "TLSv1";
    case 0x0302: return "TLSv1.1";
    case 0x0303: return "TLSv1.2";
    case 0x0304: return "TLSv1.3";
    default: return NULL;
    }
}

/* Append ",NAME" (or NAME) to buf. */
static void
add_word(char *buf, size_t len, const char *word)
{
    size_t used = strlen(buf);

    snprintf(buf + used, len - used, "%s%s", used ? "," : "", word);
}

/* What a ClientHello in the first record says, as far as its bytes go. */
struct hello {
    int has_random;
    unsigned char random[32];
    char sni[256];          /* "" when none or not printable */
    char sni_shown[256];    /* for messages: odd bytes as '?' */
    char versions[64];
    unsigned legacy;
};

static void
walk_hello(const unsigned char *b, size_t len, struct hello *h)
{
    size_t p = 5, end;

    memset(h, 0, sizeof(*h));
    if (len < 5 + 4 + 2 || b[5] != 1)   /* handshake type client_hello */
        return;
    end = 5 + be16(b + 3);
    if (end > len)
        end = len;
    p = 9;
    h->legacy = be16(b + p);
    if (p + 2 + 32 <= end) {
        memcpy(h->random, b + p + 2, 32);
        h->has_random = 1;
    }
    p += 2 + 32;                        /* version, random */
    if (p + 1 > end)
        return;
    p += 1 + b[p];                      /* session id */
    if (p + 2 > end)
        return;
    p += 2 + be16(b + p);               /* cipher suites */
    if (p + 1 > end)
        return;
    p += 1 + b[p];                      /* compression methods */
    if (p + 2 > end)
        return;
    size_t ext_end = p + 2 + be16(b + p);
    if (ext_end > end)
        ext_end = end;
    p += 2;
    while (p + 4 <= ext_end) {
        unsigned type = be16(b + p), elen = be16(b + p + 2);
        size_t e = p + 4;
        if (e + elen > ext_end)
            break;
        if (type == 0 && elen >= 5 && b[e + 2] == 0) {   /* server_name */
            unsigned nlen = be16(b + e + 3);
            if (e + 5 + nlen <= e + elen && nlen < sizeof(h->sni)) {
                int odd = 0;
                for (unsigned i = 0; i < nlen; i++) {
                    unsigned char ch = b[e + 5 + i];
                    int ok = ch > 0x20 && ch < 0x7f && ch != '"';
                    odd |= !ok;
                    h->sni_shown[i] = ok ? (char)ch : '?';
                }
                h->sni_shown[nlen] = '\0';
                if (!odd)
                    memcpy(h->sni, h->sni_shown, nlen + 1);
            }
        } else if (type == 43 && elen >= 1) {            /* versions */
            for (unsigned i = 0; i + 1 < b[e] && e + 1 + i + 1 < e + elen;
                 i += 2) {
                const char *n = version_name(be16(b + e + 1 + i));
                if (n != NULL)
                    add_word(h->versions, sizeof(h->versions), n);
            }
        }
        p = e + elen;
    }
}

/* SNI and versions of a ClientHello in the first record (as far as the
 * bytes go; a truncated hello yields what it has). */
static void
parse_client_hello(const unsigned char *b, size_t len, char *out, size_t outlen)
{
    struct hello h;

    walk_hello(b, len, &h);
    if (h.versions[0] == '\0' && version_name(h.legacy) != NULL)
        util_strlcpy(h.versions, version_name(h.legacy), sizeof(h.versions));
    snprintf(out, outlen, "sni=%.180s versions=%.60s",
             h.sni_shown[0] ? h.sni_shown : "-",
             h.versions[0] ? h.versions : "-");
}

int
sniff_client_hello(const unsigned char *buf, size_t len,
                   unsigned char random[32], char *sni, size_t snilen)
{
    struct hello h;

    if (!sniff_is_tls_record(buf, len))
        return 0;
    walk_hello(buf, len, &h);
    if (!h.has_random)
        return 0;
    memcpy(random, h.random, 32);
    util_strlcpy(sni, h.sni, snilen);
    return 1;
}

static int
starts(const unsigned char *b, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);

    return len >= n && memcmp(b, prefix, n) == 0;
}

static int
starts_nocase(const unsigned char *b, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);

    if (len < n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = b[i];
        if (c >= 'a' && c <= 'z')
            c = (unsigned char)(c - 32);
        if (c != (unsigned char)prefix[i])
            return 0;
    }
    return 1;
}

/* A MySQL or MariaDB greeting (Initial Handshake, protocol 10): a packet
 * header with sequence id 0 and a plausible length, version byte 10, then
 * the server version as printable text up to its NUL (as far as seen). */
static int
mysql_greeting(const unsigned char *b, size_t len)
{
    size_t plen, i;

    if (len < 6 || b[3] != 0 || b[4] != 10)
        return 0;
    plen = (size_t)b[0] | (size_t)b[1] << 8 | (size_t)b[2] << 16;
    if (plen < 32 || plen > 1024)
        return 0;
    for (i = 5; i < len && b[i] != '\0'; i++)
        if (b[i] < 0x20 || b[i] > 0x7e)
            return 0;
    return i > 5;
}

void
sniff_classify(const unsigned char *b, size_t len, int from_client,
               struct sniff_result *out)
{
    static const char *const methods[] = {
        "GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH ",
        "CONNECT ", "TRACE ",
    };

    out->proto = "unknown";
    out->detail[0] = '\0';
    if (len == 0) {
        out->proto = "none";
        return;
    }
    if (sniff_is_tls_record(b, len)) {
        out->proto = "tls";
        if (from_client)
            parse_client_hello(b, len, out->detail, sizeof(out->detail));
        return;
    }
    for (size_t i = 0; i < TLSSHIM_NELEMS(methods); i++) {
        if (starts(b, len, methods[i])) {
            out->proto = "http";
            snprintf(out->detail, sizeof(out->detail), "method=%.*s",
                     (int)strlen(methods[i]) - 1, methods[i]);
            return;
        }
    }
    if (starts(b, len, "SSH-")) {
        out->proto = "ssh";
        return;
    }
    if (!from_client) {
        /* greetings of server-first protocols */
        if (starts(b, len, "* OK") || starts(b, len, "* PREAUTH"))
            out->proto = "imap";
        else if (starts(b, len, "+OK"))
            out->proto = "pop3";
        else if (starts(b, len, "220")) {
            /* SMTP and FTP both greet with 220: the text tells */
            int ftp = 0;
            for (size_t i = 3; i + 3 <= len && i < 200; i++)
                if (starts_nocase(b + i, len - i, "FTP"))
                    ftp = 1;
            out->proto = ftp ? "ftp" : "smtp";
        } else if (starts(b, len, "200 ") || starts(b, len, "201 "))
            out->proto = "nntp";
        else if (mysql_greeting(b, len))
            out->proto = "mysql";
        return;
    }
    if (starts_nocase(b, len, "EHLO ") || starts_nocase(b, len, "HELO "))
        out->proto = "smtp";
    else if (b[0] == '*' && len > 1 && b[1] >= '0' && b[1] <= '9')
        out->proto = "redis";   /* RESP array */
    else if (len >= 8 && be16(b + 4) == 3 && be16(b + 6) == 0)
        out->proto = "postgres";   /* StartupMessage, protocol 3.0 */
    else if (len >= 8 && be16(b + 4) == 1234 && be16(b + 6) == 5679)
        out->proto = "postgres";   /* SSLRequest */
    else if (b[0] == 0x30 && len > 2) {
        /* LDAPMessage: SEQUENCE, length, messageID INTEGER, then the
         * protocolOp tag; bindRequest is [APPLICATION 0] = 0x60 */
        size_t p = 1;
        if (b[p] & 0x80)
            p += 1 + (b[p] & 0x7f);
        else
            p += 1;
        if (p + 2 < len && b[p] == 0x02) {
            p += 2 + b[p + 1];
            if (p < len && (b[p] & 0xe0) == 0x60) {
                out->proto = "ldap";
                if (b[p] == 0x60)
                    util_strlcpy(out->detail, "op=bind",
                                 sizeof(out->detail));
            }
        }
    }
}
