/*
 * Identity checks on a peer certificate: the host name schemes of
 * IO::Socket::SSL (verifycn_scheme), whose verify_hostname_of_cert this
 * module re-implements (tests/bats/verify_names.bats compares the two on
 * generated certificates), the public suffix check with libpsl, and
 * fingerprints.  Chain building itself is OpenSSL's.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libpsl.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util.h"
#include "verify.h"

/*
 * The algorithm, as IO::Socket::SSL 2.081 has it:
 *   - the identity loses its trailing dots; a ':' makes it an IPv6 literal,
 *     digits and dots an IPv4 literal (exactly four decimal parts below
 *     256), anything else a host name, converted to A-labels when it is
 *     not plain ASCII; an identity that is none of these matches nothing;
 *   - an IP literal is compared byte for byte with the iPAddress SANs, a
 *     name with each dNSName SAN (surrounding ASCII white space ignored)
 *     under the scheme's wildcards_in_alt; other SANs are ignored, and so
 *     is a second subjectAltName extension;
 *   - the first CN of the subject, as its bytes are, is then checked when
 *     check_cn is "always", or "when_only" and there was no dNSName SAN (an
 *     IP literal never counts dNSName SANs): a name under wildcards_in_cn,
 *     an IP literal only where ip_in_cn allows it (1 any, 4 IPv4, 6 IPv6)
 *     and only as the very same string;
 *   - a name with trailing dots removed matches the identity ignoring ASCII
 *     case; "anywhere" lets one '*' stand in the first label after label
 *     characters only ("*.a.b", "f*.a.b", "*o.a.b"), "full_label" (and
 *     "leftmost", the same to IO::Socket::SSL, in no scheme) only as the
 *     whole first label ("*.a.b"); the '*' covers one or more of
 *     [A-Za-z0-9_-], never a dot.  A wildcard with text before it ("f*")
 *     never matches an IDN (xn--) first label.  A wildcard match is refused
 *     when the labels after the first one are a public suffix (or the
 *     identity itself is one), unless verifycn_publicsuffix is off.
 *
 * Where tlsshim is stricter than IO::Socket::SSL (each listed with its
 * reason in tests/verify/divergences): the xn-- test ignores case and also
 * refuses wildcards that only end a label ("*x.a.b") over an A-label, as
 * IO::Socket::SSL's own comment intends; names containing a line feed
 * never match (Perl's '.' and '$' stop at one, so "*.a.b\nx" matched
 * "w.a.b" there); IPv4 parts with leading zeros are refused (getaddrinfo
 * reads 010 as octal, IO::Socket::SSL as decimal).  U-labels are
 * lowercased with libpsl (Unicode case mapping plus NFKC, as IDNA's
 * mappings ask) rather than with Perl's lc alone.
 */
enum wild { WILD_NONE = 0, WILD_FULL_LABEL, WILD_ANYWHERE };
enum cn_check { CN_NEVER = 0, CN_ALWAYS, CN_WHEN_ONLY };

struct scheme {
    const char *name;
    enum wild in_cn, in_alt;
    enum cn_check check_cn;
    int ip_in_cn; /* 0 no, 1 any, 4 IPv4 only, 6 IPv6 only */
    int check;    /* 0 for "none" */
};

/* IO::Socket::SSL's %scheme, row for row (RFC 6125 surveys them). */
static const struct scheme schemes[] = {
    {"none", WILD_NONE, WILD_NONE, CN_NEVER, 0, 0},
    {"default", WILD_ANYWHERE, WILD_ANYWHERE, CN_ALWAYS, 1, 1},
    {"rfc2818", WILD_ANYWHERE, WILD_ANYWHERE, CN_WHEN_ONLY, 0, 1},
    {"rfc3920", WILD_ANYWHERE, WILD_ANYWHERE, CN_WHEN_ONLY, 0, 1},
    {"xmpp", WILD_ANYWHERE, WILD_ANYWHERE, CN_WHEN_ONLY, 0, 1},
    {"rfc4217", WILD_ANYWHERE, WILD_ANYWHERE, CN_WHEN_ONLY, 0, 1},
    {"ftp", WILD_ANYWHERE, WILD_ANYWHERE, CN_WHEN_ONLY, 0, 1},
    {"www", WILD_ANYWHERE, WILD_ANYWHERE, CN_WHEN_ONLY, 4, 1},
    {"http", WILD_ANYWHERE, WILD_ANYWHERE, CN_WHEN_ONLY, 4, 1},
    {"rfc4513", WILD_NONE, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"ldap", WILD_NONE, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"rfc2595", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"smtp", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"rfc4642", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"imap", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"pop3", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"acap", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"rfc5539", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"nntp", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"rfc5538", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"netconf", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"rfc5425", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"syslog", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"rfc5953", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"snmp", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_ALWAYS, 0, 1},
    {"rfc5971", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_WHEN_ONLY, 0, 1},
    {"gist", WILD_FULL_LABEL, WILD_FULL_LABEL, CN_WHEN_ONLY, 0, 1},
    {"rfc5922", WILD_NONE, WILD_NONE, CN_ALWAYS, 0, 1},
    {"sip", WILD_NONE, WILD_NONE, CN_ALWAYS, 0, 1},
};

/* Longest identity handled; a DNS name has at most 253 characters. */
#define IDENTITY_MAX 1024

/* An identity ready for matching. */
struct identity {
    char name[IDENTITY_MAX + 1]; /* ASCII; for an IP, as given */
    size_t len;
    unsigned char ip[16];
    size_t iplen; /* 4 or 16 for an IP literal, 0 for a name */
};

/* --- characters, independent of the program's locale ------------------ */

static inline int
ascii_lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

static int
strings_equal_nocase(const char *a, const char *b)
{
    for (; *a != '\0' &&
           ascii_lower((unsigned char)*a) == ascii_lower((unsigned char)*b);
         a++, b++)
        ;
    return *a == '\0' && *b == '\0';
}

static inline int
is_digit(int ch)
{
    return ch >= '0' && ch <= '9';
}

static inline int
is_hex_digit(int ch)
{
    return is_digit(ch) || (ascii_lower(ch) >= 'a' && ascii_lower(ch) <= 'f');
}

/* What a wildcard may cover, and what a host name is made of. */
static inline int
is_label_char(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           is_digit(ch) || ch == '-' || ch == '_';
}

static int
is_hostname(const char *s)
{
    for (; *s != '\0'; s++)
        if (!is_label_char((unsigned char)*s) && *s != '.')
            return 0;
    return 1;
}

static int
bytes_equal_nocase(const unsigned char *a, const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return 0;
    return 1;
}

/* --- IDN: U-labels to A-labels ---------------------------------------- */

/* Decodes strict UTF-8; returns the number of code points or -1. */
static long
utf8_decode(const char *s, uint32_t *out, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;

    while (*p != '\0') {
        uint32_t cp;
        int more;
        if (*p < 0x80) {
            cp = *p;
            more = 0;
        } else if (*p >= 0xc2 && *p <= 0xdf) {
            cp = *p & 0x1f;
            more = 1;
        } else if (*p >= 0xe0 && *p <= 0xef) {
            cp = *p & 0x0f;
            more = 2;
        } else if (*p >= 0xf0 && *p <= 0xf4) {
            cp = *p & 0x07;
            more = 3;
        } else {
            return -1;
        }
        p++;
        for (int i = 0; i < more; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return -1;
            cp = cp << 6 | (*p & 0x3f);
        }
        if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        if (n == max)
            return -1;
        out[n++] = cp;
    }
    return (long)n;
}

/* RFC 3492 section 5 parameters. */
enum {
    PUNY_BASE = 36,
    PUNY_TMIN = 1,
    PUNY_TMAX = 26,
    PUNY_SKEW = 38,
    PUNY_DAMP = 700,
    PUNY_INITIAL_BIAS = 72,
    PUNY_INITIAL_N = 128,
};

static uint32_t
puny_adapt(uint32_t delta, uint32_t numpoints, int first)
{
    uint32_t k = 0;

    delta = first ? delta / PUNY_DAMP : delta / 2;
    delta += delta / numpoints;
    while (delta > ((PUNY_BASE - PUNY_TMIN) * PUNY_TMAX) / 2) {
        delta /= PUNY_BASE - PUNY_TMIN;
        k += PUNY_BASE;
    }
    return k + (PUNY_BASE - PUNY_TMIN + 1) * delta / (delta + PUNY_SKEW);
}

static char
puny_digit(uint32_t d)
{
    return (char)(d < 26 ? 'a' + d : '0' + d - 26);
}

/*
 * RFC 3492 section 6.3: the Punycode of n code points into out (NUL
 * terminated).  0, or -1 when it does not fit or would overflow.
 */
static int
punycode_encode(const uint32_t *cp, size_t n, char *out, size_t outlen)
{
    uint32_t next = PUNY_INITIAL_N, delta = 0, bias = PUNY_INITIAL_BIAS;
    size_t o = 0, handled, basic = 0;

    for (size_t i = 0; i < n; i++) {
        if (cp[i] < 0x80) {
            if (o + 1 >= outlen)
                return -1;
            out[o++] = (char)cp[i];
            basic++;
        }
    }
    handled = basic;
    if (basic > 0 && basic < n) {
        if (o + 1 >= outlen)
            return -1;
        out[o++] = '-';
    }
    while (handled < n) {
        uint32_t m = UINT32_MAX;
        for (size_t i = 0; i < n; i++)
            if (cp[i] >= next && cp[i] < m)
                m = cp[i];
        if (m - next > (UINT32_MAX - delta) / (handled + 1))
            return -1;
        delta += (m - next) * (uint32_t)(handled + 1);
        next = m;
        for (size_t i = 0; i < n; i++) {
            if (cp[i] < next && ++delta == 0)
                return -1;
            if (cp[i] != next)
                continue;
            uint32_t q = delta;
            for (uint32_t k = PUNY_BASE;; k += PUNY_BASE) {
                uint32_t t = k <= bias               ? PUNY_TMIN
                             : k >= bias + PUNY_TMAX ? PUNY_TMAX
                                                     : k - bias;
                if (q < t)
                    break;
                if (o + 1 >= outlen)
                    return -1;
                out[o++] = puny_digit(t + (q - t) % (PUNY_BASE - t));
                q = (q - t) / (PUNY_BASE - t);
            }
            if (o + 1 >= outlen)
                return -1;
            out[o++] = puny_digit(q);
            bias = puny_adapt(delta, (uint32_t)(handled + 1), handled == basic);
            delta = 0;
            handled++;
        }
        delta++;
        next++;
    }
    out[o] = '\0';
    return 0;
}

/*
 * One label of a non-ASCII identity to its ASCII form, as IDNA2003's
 * ToASCII does it (URI::_idna, which IO::Socket::SSL uses): an ASCII label
 * stays, any other is lowercased and normalised, must not already start
 * with the ACE prefix, and is Punycode-encoded behind "xn--"; every label
 * has 1 to 63 characters.
 */
static int
label_to_ascii(const char *label, char *out, size_t outlen)
{
    uint32_t cps[64];
    char mapped[4 * 64 + 1], *lower = NULL;
    long n;
    int rv = -1;
    const char *p;

    for (p = label; *p != '\0' && (unsigned char)*p < 0x80; p++)
        ;
    if (*p == '\0') {
        if (*label == '\0' || strlen(label) > 63 || strlen(label) >= outlen)
            return -1;
        util_strlcpy(out, label, outlen);
        return 0;
    }
    if (utf8_decode(label, cps, TLSSHIM_NELEMS(cps)) < 0 ||
        strlen(label) >= sizeof(mapped))
        return -1;
    /*
     * Capital sigma becomes small sigma, as in IDNA's mappings and Perl's
     * lc, before libunistring's lowercasing would make a final sigma of
     * it at the end of a word: valid UTF-8 has CE A3 only for U+03A3.
     */
    util_strlcpy(mapped, label, sizeof(mapped));
    for (char *m = mapped; (m = strstr(m, "\xce\xa3")) != NULL; m += 2)
        memcpy(m, "\xcf\x83", 2);
    if (psl_str_to_utf8lower(mapped, "utf-8", NULL, &lower) != PSL_SUCCESS ||
        lower == NULL)
        goto err;
    /* normalising must not make new labels (U+FF0E is a full stop) */
    if (strchr(lower, '.') != NULL)
        goto err;
    for (p = lower; *p != '\0' && (unsigned char)*p < 0x80; p++)
        ;
    if (*p == '\0') {
        if (*lower == '\0' || strlen(lower) > 63 || strlen(lower) >= outlen)
            goto err;
        util_strlcpy(out, lower, outlen);
        rv = 0;
        goto err;
    }
    if (strncmp(lower, "xn--", 4) == 0)
        goto err;
    if ((n = utf8_decode(lower, cps, TLSSHIM_NELEMS(cps))) < 0)
        goto err;
    if (outlen < 63 + 1)
        goto err;
    memcpy(out, "xn--", 4);
    if (punycode_encode(cps, (size_t)n, out + 4, 63 - 4 + 1) < 0)
        goto err;
    rv = 0;
err:
    psl_free_string(lower);
    return rv;
}

/* A whole identity to A-labels, label by label.  0, or -1. */
static int
identity_to_ascii(const char *in, char *out, size_t outlen)
{
    char label[IDENTITY_MAX + 1], ascii[64];
    size_t used = 0;

    for (;;) {
        const char *dot = strchr(in, '.');
        size_t len = dot != NULL ? (size_t)(dot - in) : strlen(in);
        if (len >= sizeof(label))
            return -1;
        memcpy(label, in, len);
        label[len] = '\0';
        if (label_to_ascii(label, ascii, sizeof(ascii)) < 0)
            return -1;
        size_t alen = strlen(ascii);
        if (used + alen + 1 >= outlen)
            return -1;
        memcpy(out + used, ascii, alen);
        used += alen;
        if (dot == NULL)
            break;
        out[used++] = '.';
        in = dot + 1;
    }
    out[used] = '\0';
    return 0;
}

/* --- schemes ----------------------------------------------------------- */

static const struct scheme *
scheme_find(const char *name)
{
    if (name == NULL || *name == '\0')
        name = "default";
    for (size_t i = 0; i < TLSSHIM_NELEMS(schemes); i++)
        if (strings_equal_nocase(schemes[i].name, name))
            return &schemes[i];
    return NULL;
}

int
verify_scheme_known(const char *scheme)
{
    return scheme_find(scheme) != NULL;
}

/* --- the identity ------------------------------------------------------ */

/*
 * IPv4 as IO::Socket::SSL reads it: four decimal parts, each below 256;
 * tlsshim also refuses leading zeros.  Returns 1 (ip filled), 0 when the
 * text is not made of digits and dots only, -1 for a bad literal.
 */
static int
parse_ipv4(const char *s, unsigned char ip[4])
{
    int parts = 0;

    if (!is_digit((unsigned char)*s))
        return 0;
    for (const char *p = s; *p != '\0'; p++)
        if (!is_digit((unsigned char)*p) && *p != '.')
            return 0;
    for (;;) {
        const char *start = s;
        unsigned value = 0;
        for (; is_digit((unsigned char)*s); s++)
            if ((value = value * 10 + (unsigned)(*s - '0')) > 255)
                return -1;
        if (s == start || (s - start > 1 && *start == '0') || parts == 4)
            return -1;
        ip[parts++] = (unsigned char)value;
        if (*s == '\0')
            return parts == 4 ? 1 : -1;
        s++; /* a dot */
    }
}

static int
identity_parse(const char *in, struct identity *id)
{
    size_t len = strlen(in);
    int v4;

    while (len > 0 && in[len - 1] == '.')
        len--;
    if (len > IDENTITY_MAX)
        return -1;
    memcpy(id->name, in, len);
    id->name[len] = '\0';
    id->len = len;
    id->iplen = 0;

    if (strchr(id->name, ':') != NULL) {
        /* only hex digits, ':' and '.': no zone, no brackets */
        for (const char *p = id->name; *p != '\0'; p++)
            if (!is_hex_digit((unsigned char)*p) && *p != ':' && *p != '.')
                return -1;
        if (inet_pton(AF_INET6, id->name, id->ip) != 1)
            return -1;
        id->iplen = 16;
        return 0;
    }
    if ((v4 = parse_ipv4(id->name, id->ip)) != 0) {
        if (v4 < 0)
            return -1;
        id->iplen = 4;
        return 0;
    }
    if (is_hostname(id->name))
        return 0;
    char ascii[IDENTITY_MAX + 1];
    if (identity_to_ascii(id->name, ascii, sizeof(ascii)) < 0 ||
        !is_hostname(ascii))
        return -1;
    id->len = util_strlcpy(id->name, ascii, sizeof(id->name));
    return 0;
}

/* --- the public suffix list -------------------------------------------- */

/*
 * libpsl's list: the newest of its built-in copy and the system's file,
 * loaded the first time a wildcard needs it, once per process.
 */
static pthread_once_t psl_once = PTHREAD_ONCE_INIT;
static const psl_ctx_t *psl_list; /* written once, inside psl_once */

static void
psl_load(void)
{
    int saved_errno = errno; /* libpsl looks for files that may be absent */
    const psl_ctx_t *list = psl_latest(NULL);

    psl_list = list != NULL ? list : psl_builtin();
    errno = saved_errno;
}

/* 1 if the ICANN section of the list makes domain a public suffix. */
static int
is_public_suffix(const char *domain)
{
    return psl_is_public_suffix2(psl_list, domain, PSL_TYPE_ICANN) == 1;
}

/*
 * Whether a wildcard that matched identity stood over a public suffix:
 * the labels after the first (or the whole identity) are a public suffix.
 * IO::Socket::SSL uses the ICANN part of the list too, so *.github.io is
 * accepted and *.co.uk is not.  Without a list nothing passes.
 */
static int
covers_public_suffix(const char *identity)
{
    char domain[IDENTITY_MAX + 1];
    size_t n = 0;

    pthread_once(&psl_once, psl_load);
    if (psl_list == NULL)
        return 1;
    /* lowercase, and runs of dots as one, as Perl's split /\.+/ has it */
    for (const char *p = identity; *p != '\0' && n < IDENTITY_MAX; p++) {
        if (*p == '.' && (n == 0 || domain[n - 1] == '.'))
            continue;
        domain[n++] = (char)ascii_lower((unsigned char)*p);
    }
    domain[n] = '\0';
    const char *rest = strchr(domain, '.');
    if (rest == NULL || rest[1] == '\0')
        return 1;
    return is_public_suffix(rest + 1) || is_public_suffix(domain);
}

/* --- matching ---------------------------------------------------------- */

static int
names_equal(const unsigned char *name, size_t len, const struct identity *id)
{
    return len == id->len &&
           bytes_equal_nocase(name, (const unsigned char *)id->name, len);
}

/*
 * The identity is prefix, one or more label characters, then rest,
 * ignoring ASCII case.
 */
static int
wildcard_matches(const struct identity *id, const unsigned char *prefix,
                 size_t prefix_len, const unsigned char *rest, size_t rest_len)
{
    const unsigned char *s = (const unsigned char *)id->name;

    if (id->len < prefix_len + 1 + rest_len)
        return 0;
    if (!bytes_equal_nocase(s, prefix, prefix_len) ||
        !bytes_equal_nocase(s + id->len - rest_len, rest, rest_len))
        return 0;
    for (size_t i = prefix_len; i < id->len - rest_len; i++)
        if (!is_label_char(s[i]))
            return 0;
    return 1;
}

/* IO::Socket::SSL's check_name: one certificate name against identity. */
static int
match_name(const unsigned char *name, size_t len, const struct identity *id,
           enum wild wild, int publicsuffix)
{
    size_t prefix_len = 0;
    const unsigned char *rest;
    size_t rest_len;

    while (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0)
        return 0;
    if (wild == WILD_ANYWHERE) {
        while (prefix_len < len && is_label_char(name[prefix_len]))
            prefix_len++;
        if (prefix_len + 1 >= len || name[prefix_len] != '*')
            return names_equal(name, len, id);
        rest = name + prefix_len + 1;
        rest_len = len - prefix_len - 1;
        /* only a whole-label wildcard may cover an A-label (RFC 6125) */
        if ((prefix_len > 0 || rest[0] != '.') && id->len >= 4 &&
            bytes_equal_nocase((const unsigned char *)id->name,
                               (const unsigned char *)"xn--", 4))
            return 0;
    } else if (wild == WILD_FULL_LABEL) {
        if (len < 3 || name[0] != '*' || name[1] != '.')
            return names_equal(name, len, id);
        rest = name + 1;
        rest_len = len - 1;
    } else {
        return names_equal(name, len, id);
    }
    if (!wildcard_matches(id, name, prefix_len, rest, rest_len))
        return 0;
    return !publicsuffix || !covers_public_suffix(id->name);
}

static int
is_space(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' ||
           ch == '\v';
}

/* The subjectAltName entries: the first such extension, as Net::SSLeay. */
static GENERAL_NAMES *
cert_alt_names(X509 *cert)
{
    int idx = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1);
    X509_EXTENSION *ext = idx >= 0 ? X509_get_ext(cert, idx) : NULL;

    return ext != NULL ? X509V3_EXT_d2i(ext) : NULL;
}

/* The first CN of the subject, as its bytes; NULL when there is none. */
static const ASN1_STRING *
cert_first_cn(X509 *cert)
{
    X509_NAME *subj = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);

    if (idx < 0)
        return NULL;
    return X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
}

static int
ip_in_cn_allowed(const struct scheme *s, size_t iplen)
{
    switch (s->ip_in_cn) {
    case 1:
        return 1;
    case 4:
        return iplen == 4;
    case 6:
        return iplen == 16;
    default:
        return 0;
    }
}

int
verify_identity(X509 *cert, const char *identity, const char *scheme_name,
                int publicsuffix)
{
    const struct scheme *s = scheme_find(scheme_name);
    struct identity id;
    GENERAL_NAMES *alt = NULL;
    int dns_names = 0, matched = 0;

    if (s == NULL)
        return 0;
    if (!s->check)
        return 1;
    if (cert == NULL || identity == NULL || identity_parse(identity, &id) < 0)
        return 0;

    alt = cert_alt_names(cert);
    for (int i = 0; !matched && alt != NULL && i < sk_GENERAL_NAME_num(alt);
         i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(alt, i);
        if (id.iplen > 0 && g->type == GEN_IPADD) {
            matched = (size_t)ASN1_STRING_length(g->d.iPAddress) == id.iplen &&
                      memcmp(ASN1_STRING_get0_data(g->d.iPAddress), id.ip,
                             id.iplen) == 0;
        } else if (id.iplen == 0 && g->type == GEN_DNS) {
            const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
            int dl = ASN1_STRING_length(g->d.dNSName);
            size_t len = dl > 0 ? (size_t)dl : 0;
            while (len > 0 && is_space(d[len - 1]))
                len--;
            while (len > 0 && is_space(d[0]))
                d++, len--;
            dns_names++;
            matched = match_name(d, len, &id, s->in_alt, publicsuffix);
        }
    }
    GENERAL_NAMES_free(alt);
    if (matched)
        return 1;

    if (s->check_cn == CN_ALWAYS ||
        (s->check_cn == CN_WHEN_ONLY && dns_names == 0)) {
        const ASN1_STRING *cn = cert_first_cn(cert);
        if (cn == NULL || ASN1_STRING_length(cn) <= 0)
            return 0;
        const unsigned char *d = ASN1_STRING_get0_data(cn);
        size_t len = (size_t)ASN1_STRING_length(cn);
        if (id.iplen == 0)
            return match_name(d, len, &id, s->in_cn, publicsuffix);
        /* an address in the CN: the same text, nothing else */
        return ip_in_cn_allowed(s, id.iplen) && len == id.len &&
               memcmp(d, id.name, len) == 0;
    }
    return 0;
}

/* --- names for messages ------------------------------------------------ */

/*
 * Appends one name to buf, separated by ", ", with bytes that are not
 * printable ASCII as \xHH so a certificate cannot forge log lines; a very
 * long name is cut and ends in "...".  When the name does not fit, "..."
 * ends the list.  0, or -1 when buf is full.
 */
static int
append_name(char *buf, size_t len, const char *tag, const unsigned char *name,
            size_t name_len)
{
    char item[128];
    size_t n, i, used = strlen(buf);

    n = util_strlcpy(item, tag, sizeof(item));
    for (i = 0; i < name_len && n + 4 + 3 + 1 < sizeof(item); i++) {
        unsigned char ch = name[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            item[n++] = (char)ch;
        } else {
            snprintf(item + n, sizeof(item) - n, "\\x%02x", ch);
            n += 4;
        }
    }
    if (i < name_len) {
        memcpy(item + n, "...", 3);
        n += 3;
    }
    item[n] = '\0';
    if (used + (used > 0 ? 2 : 0) + n + 1 > len) {
        if (used + 4 + 1 <= len)
            util_strlcpy(buf + used, used > 0 ? " ..." : "...", len - used);
        return -1;
    }
    snprintf(buf + used, len - used, "%s%s", used > 0 ? ", " : "", item);
    return 0;
}

void
verify_cert_names(X509 *cert, char *buf, size_t len)
{
    GENERAL_NAMES *alt;
    int full = 0, any = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    alt = cert_alt_names(cert);
    for (int i = 0; !full && alt != NULL && i < sk_GENERAL_NAME_num(alt); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(alt, i);
        if (g->type == GEN_DNS) {
            full =
                append_name(buf, len, "", ASN1_STRING_get0_data(g->d.dNSName),
                            (size_t)ASN1_STRING_length(g->d.dNSName)) < 0;
            any = 1;
        } else if (g->type == GEN_IPADD) {
            int il = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *ip = ASN1_STRING_get0_data(g->d.iPAddress);
            char a[INET6_ADDRSTRLEN] = "?";
            if (il == 4 || il == 16)
                inet_ntop(il == 4 ? AF_INET : AF_INET6, ip, a, sizeof(a));
            full = append_name(buf, len, "IP:", (const unsigned char *)a,
                               strlen(a)) < 0;
            any = 1;
        }
    }
    GENERAL_NAMES_free(alt);
    if (!any) {
        const ASN1_STRING *cn = cert_first_cn(cert);
        if (cn != NULL)
            (void)append_name(buf, len, "CN=", ASN1_STRING_get0_data(cn),
                              (size_t)ASN1_STRING_length(cn));
        else
            util_strlcpy(buf, "no names", len);
    }
}

int
verify_fingerprint(X509 *cert, const struct policy_fingerprint *fps,
                   size_t nfps)
{
    for (size_t i = 0; i < nfps; i++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        const EVP_MD *type = EVP_get_digestbyname(fps[i].algo);
        if (type == NULL || !X509_digest(cert, type, md, &mdlen))
            continue;
        if (mdlen == fps[i].md_len && CRYPTO_memcmp(md, fps[i].md, mdlen) == 0)
            return 1;
    }
    return 0;
}

int
verify_pins(STACK_OF(X509) *chain, const struct policy_rule *r, char *have,
            size_t len)
{
    int found = 0;

    if (have != NULL && len > 0)
        have[0] = '\0';
    for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
        unsigned char *der = NULL, md[32];
        char b64[64];
        unsigned mdlen = 0;
        int dlen = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(sk_X509_value(chain,
                                                                      i)),
                                   &der);
        if (dlen <= 0 ||
            !EVP_Digest(der, (size_t)dlen, md, &mdlen, EVP_sha256(), NULL)) {
            OPENSSL_free(der);
            continue;
        }
        OPENSSL_free(der);
        EVP_EncodeBlock((unsigned char *)b64, md, (int)mdlen);
        /* pins are "sha256//BASE64", the prefix in any case */
        for (size_t j = 0; j < r->npubkey_pins; j++)
            if (strcmp(r->pubkey_pins[j] + strlen("sha256//"), b64) == 0)
                found = 1;
        if (have == NULL) {
            if (found)
                return 1;
            continue;
        }
        size_t used = strlen(have);
        snprintf(have + used, len - used, "%ssha256//%s", used ? ", " : "",
                 b64);
    }
    return found;
}
