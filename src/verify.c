/*
 * Host name verification with IO::Socket::SSL's per-protocol schemes.
 * Each scheme says where wildcards may stand in subjectAltName and CN
 * entries ("anywhere" in the leftmost label, "full_label" only as the
 * whole leftmost label, or not at all), whether the CN is checked always
 * or only when there are no DNS SANs, and whether an IP may stand in the
 * CN.  A wildcard covers exactly one label and never a public suffix.
 */
#include "config.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"
#include "verify.h"

enum wild { WILD_NONE = 0, WILD_FULL_LABEL, WILD_ANYWHERE };
enum cn_check { CN_NEVER = 0, CN_ALWAYS, CN_WHEN_ONLY };

struct scheme {
    const char *name;
    enum wild in_cn, in_alt;
    enum cn_check check_cn;
    int ip_in_cn;       /* 0 no, 1 any, 4 IPv4 only */
    int check;          /* 0 for "none" */
};

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

static const struct scheme *
scheme_find(const char *name)
{
    if (name == NULL)
        name = "default";
    for (size_t i = 0; i < TLSSHIM_NELEMS(schemes); i++)
        if (strcasecmp(schemes[i].name, name) == 0)
            return &schemes[i];
    return NULL;
}

int
verify_scheme_known(const char *scheme)
{
    return scheme_find(scheme) != NULL;
}

static int
label_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
}

static size_t
count_labels(const char *s)
{
    size_t n = 0;
    int in = 0;

    for (; *s != '\0'; s++) {
        if (*s == '.') {
            in = 0;
        } else if (!in) {
            in = 1;
            n++;
        }
    }
    return n;
}

/*
 * Whether a wildcard match would cover a public suffix.  Without a public
 * suffix list, the last label is taken as the suffix and the last two as
 * the registrable domain: the identity must be longer than that.
 */
static int
covers_public_suffix(const char *identity)
{
    return count_labels(identity) <= 2;
}

/* Compare ignoring case and one trailing dot on either side. */
static int
names_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la > 0 && a[la - 1] == '.')
        la--;
    if (lb > 0 && b[lb - 1] == '.')
        lb--;
    return la == lb && strncasecmp(a, b, la) == 0;
}

static int
match_name(const char *pattern, const char *identity, enum wild wild,
           int publicsuffix)
{
    const char *star = strchr(pattern, '*');
    const char *dot = strchr(pattern, '.');

    if (star == NULL || wild == WILD_NONE || dot == NULL || star > dot)
        return names_equal(pattern, identity);
    if (strchr(star + 1, '*') != NULL)
        return 0;
    size_t prefix_len = (size_t)(star - pattern);
    const char *suffix = star + 1;    /* starts with the rest of the label */
    if (wild == WILD_FULL_LABEL && (prefix_len != 0 || *suffix != '.'))
        return names_equal(pattern, identity);
    for (size_t i = 0; i < prefix_len; i++)
        if (!label_char(pattern[i]))
            return 0;
    /* An A-label (IDN) never matches a partial-label wildcard. */
    if (prefix_len > 0 && strncasecmp(identity, "xn--", 4) == 0)
        return 0;
    size_t id_len = strlen(identity), suf_len = strlen(suffix);
    if (id_len > 0 && identity[id_len - 1] == '.')
        id_len--;
    if (suf_len > 0 && suffix[suf_len - 1] == '.')
        suf_len--;
    if (id_len < prefix_len + 1 + suf_len)
        return 0;
    if (strncasecmp(identity, pattern, prefix_len) != 0)
        return 0;
    if (strncasecmp(identity + id_len - suf_len, suffix, suf_len) != 0)
        return 0;
    /* the part the star covers: one or more label characters */
    for (size_t i = prefix_len; i < id_len - suf_len; i++)
        if (!label_char(identity[i]))
            return 0;
    if (publicsuffix && covers_public_suffix(identity))
        return 0;
    return 1;
}

static int
parse_ip(const char *s, unsigned char *out, size_t *len)
{
    if (inet_pton(AF_INET, s, out) == 1) {
        *len = 4;
        return 1;
    }
    if (inet_pton(AF_INET6, s, out) == 1) {
        *len = 16;
        return 1;
    }
    return 0;
}

static int
check_cns(X509 *cert, const char *identity, enum wild wild, int publicsuffix,
          int ip)
{
    X509_NAME *subj = X509_get_subject_name(cert);
    int idx = -1;

    while ((idx = X509_NAME_get_index_by_NID(subj, NID_commonName, idx)) >=
           0) {
        X509_NAME_ENTRY *e = X509_NAME_get_entry(subj, idx);
        ASN1_STRING *d = X509_NAME_ENTRY_get_data(e);
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, d);
        int ok = 0;
        if (n > 0 && (size_t)n == strlen((char *)utf8))
            ok = ip ? strcmp((char *)utf8, identity) == 0
                    : match_name((char *)utf8, identity, wild, publicsuffix);
        OPENSSL_free(utf8);
        if (ok)
            return 1;
    }
    return 0;
}

int
verify_identity(X509 *cert, const char *identity, const char *scheme_name,
                int publicsuffix)
{
    const struct scheme *s = scheme_find(scheme_name);
    unsigned char ipbuf[16];
    size_t iplen = 0;
    int is_ip, ndns = 0, matched = 0;
    GENERAL_NAMES *alt;

    if (s == NULL)
        return 0;
    if (!s->check)
        return 1;
    if (identity == NULL || *identity == '\0')
        return 0;
    is_ip = parse_ip(identity, ipbuf, &iplen);

    alt = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; alt != NULL && i < sk_GENERAL_NAME_num(alt); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(alt, i);
        if (g->type == GEN_DNS) {
            ndns++;
            if (is_ip)
                continue;
            const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
            int dl = ASN1_STRING_length(g->d.dNSName);
            char name[256];
            if (dl <= 0 || (size_t)dl >= sizeof(name) ||
                memchr(d, '\0', (size_t)dl) != NULL)
                continue;
            memcpy(name, d, (size_t)dl);
            name[dl] = '\0';
            if (match_name(name, identity, s->in_alt, publicsuffix))
                matched = 1;
        } else if (g->type == GEN_IPADD && is_ip) {
            if ((size_t)ASN1_STRING_length(g->d.iPAddress) == iplen &&
                memcmp(ASN1_STRING_get0_data(g->d.iPAddress), ipbuf, iplen) ==
                    0)
                matched = 1;
        }
    }
    GENERAL_NAMES_free(alt);
    if (matched)
        return 1;
    if (is_ip) {
        if (s->ip_in_cn == 1 || (s->ip_in_cn == 4 && iplen == 4))
            return check_cns(cert, identity, WILD_NONE, 0, 1);
        return 0;
    }
    if (s->check_cn == CN_ALWAYS || (s->check_cn == CN_WHEN_ONLY && ndns == 0))
        return check_cns(cert, identity, s->in_cn, publicsuffix, 0);
    return 0;
}

static void
append(char *buf, size_t len, const char *s)
{
    size_t used = strlen(buf);

    if (used + 3 >= len)
        return;
    if (used > 0) {
        buf[used++] = ',';
        buf[used++] = ' ';
        buf[used] = '\0';
    }
    util_strlcpy(buf + used, s, len - used);
}

void
verify_cert_names(X509 *cert, char *buf, size_t len)
{
    GENERAL_NAMES *alt;
    char tmp[256];

    buf[0] = '\0';
    alt = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; alt != NULL && i < sk_GENERAL_NAME_num(alt); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(alt, i);
        if (g->type == GEN_DNS) {
            int dl = ASN1_STRING_length(g->d.dNSName);
            if (dl <= 0 || (size_t)dl >= sizeof(tmp))
                continue;
            memcpy(tmp, ASN1_STRING_get0_data(g->d.dNSName), (size_t)dl);
            tmp[dl] = '\0';
            append(buf, len, tmp);
        } else if (g->type == GEN_IPADD) {
            int il = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *ip = ASN1_STRING_get0_data(g->d.iPAddress);
            if (il == 4 || il == 16) {
                char a[INET6_ADDRSTRLEN];
                inet_ntop(il == 4 ? AF_INET : AF_INET6, ip, a, sizeof(a));
                snprintf(tmp, sizeof(tmp), "IP:%s", a);
                append(buf, len, tmp);
            }
        }
    }
    GENERAL_NAMES_free(alt);
    X509_NAME *subj = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (idx >= 0) {
        unsigned char *utf8 = NULL;
        if (ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(
                                           X509_NAME_get_entry(subj, idx))) >
            0) {
            snprintf(tmp, sizeof(tmp), "CN=%s", (char *)utf8);
            append(buf, len, tmp);
        }
        OPENSSL_free(utf8);
    }
    if (buf[0] == '\0')
        util_strlcpy(buf, "no names", len);
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
