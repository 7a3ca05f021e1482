/*
 * Unit tests of the verify module: IO::Socket::SSL's host name schemes
 * (each scheme's wildcards_in_alt, wildcards_in_cn, check_cn and ip_in_cn,
 * checked through their effects), wildcard positions, public suffixes,
 * IDN, IP literals, CN and SAN precedence, the names given in messages,
 * and the public suffix list loaded lazily under threads.  Table-driven,
 * with certificates made in memory (namecert.h); most rows must not
 * match.  tests/bats/verify_names.bats compares the same matcher with
 * IO::Socket::SSL itself on generated cases.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/x509.h>

#include "namecert.h"
#include "unit.h"
#include "util.h"
#include "verify.h"

/* --- the schemes -------------------------------------------------------- */

enum { NONE = 0, FULL, ANY };     /* wildcards_in_alt, wildcards_in_cn */
enum { NEVER = 0, ALWAYS, ONLY }; /* check_cn: always, when_only */

/* IO::Socket::SSL's %scheme, written out again to test against. */
static const struct scheme_row {
    const char *name;
    int cn, alt, check_cn, ip_in_cn;
} scheme_rows[] = {
    { "default", ANY, ANY, ALWAYS, 1 },
    { "rfc2818", ANY, ANY, ONLY, 0 },
    { "rfc3920", ANY, ANY, ONLY, 0 },
    { "xmpp", ANY, ANY, ONLY, 0 },
    { "rfc4217", ANY, ANY, ONLY, 0 },
    { "ftp", ANY, ANY, ONLY, 0 },
    { "www", ANY, ANY, ONLY, 4 },
    { "http", ANY, ANY, ONLY, 4 },
    { "rfc4513", NONE, FULL, ALWAYS, 0 },
    { "ldap", NONE, FULL, ALWAYS, 0 },
    { "rfc2595", FULL, FULL, ALWAYS, 0 },
    { "smtp", FULL, FULL, ALWAYS, 0 },
    { "rfc4642", FULL, FULL, ALWAYS, 0 },
    { "imap", FULL, FULL, ALWAYS, 0 },
    { "pop3", FULL, FULL, ALWAYS, 0 },
    { "acap", FULL, FULL, ALWAYS, 0 },
    { "rfc5539", FULL, FULL, ALWAYS, 0 },
    { "nntp", FULL, FULL, ALWAYS, 0 },
    { "rfc5538", FULL, FULL, ALWAYS, 0 },
    { "netconf", FULL, FULL, ALWAYS, 0 },
    { "rfc5425", FULL, FULL, ALWAYS, 0 },
    { "syslog", FULL, FULL, ALWAYS, 0 },
    { "rfc5953", FULL, FULL, ALWAYS, 0 },
    { "snmp", FULL, FULL, ALWAYS, 0 },
    { "rfc5971", FULL, FULL, ONLY, 0 },
    { "gist", FULL, FULL, ONLY, 0 },
    { "rfc5922", NONE, NONE, ALWAYS, 0 },
    { "sip", NONE, NONE, ALWAYS, 0 },
};

/*
 * Probes of one table attribute each: a certificate, an identity, and
 * what the scheme's row says the answer must be.
 */
struct probe {
    const char *what, *identity, *spec;
    int (*want)(const struct scheme_row *s);
};

static int
alt_any_wildcard(const struct scheme_row *s)
{
    return s->alt != NONE;
}

static int
alt_partial_wildcard(const struct scheme_row *s)
{
    return s->alt == ANY;
}

static int
cn_any_wildcard(const struct scheme_row *s)
{
    return s->check_cn != NEVER && s->cn != NONE;
}

static int
cn_partial_wildcard(const struct scheme_row *s)
{
    return s->check_cn != NEVER && s->cn == ANY;
}

static int
cn_checked(const struct scheme_row *s)
{
    return s->check_cn != NEVER;
}

static int
cn_checked_beside_dns_san(const struct scheme_row *s)
{
    return s->check_cn == ALWAYS;
}

static int
cn_ipv4(const struct scheme_row *s)
{
    return s->check_cn != NEVER && (s->ip_in_cn == 1 || s->ip_in_cn == 4);
}

static int
cn_ipv6(const struct scheme_row *s)
{
    return s->check_cn != NEVER && (s->ip_in_cn == 1 || s->ip_in_cn == 6);
}

static int
yes(const struct scheme_row *s)
{
    return 1;
}

static int
no(const struct scheme_row *s)
{
    return 0;
}

static const struct probe probes[] = {
    { "SAN *.", "www.example.com", "dns:*.example.com", alt_any_wildcard },
    { "SAN w*", "www.example.com", "dns:w*.example.com",
      alt_partial_wildcard },
    { "SAN *w", "www.example.com", "dns:*w.example.com",
      alt_partial_wildcard },
    { "SAN w*w", "www.example.com", "dns:w*w.example.com",
      alt_partial_wildcard },
    { "CN *.", "www.example.com", "cn:*.example.com", cn_any_wildcard },
    { "CN *. beside an email SAN", "www.example.com",
      "email:a@example.com|cn:*.example.com", cn_any_wildcard },
    { "CN w*", "www.example.com", "cn:w*.example.com", cn_partial_wildcard },
    { "CN alone", "www.example.com", "cn:www.example.com", cn_checked },
    { "CN beside a dNSName SAN", "www.example.com",
      "dns:other.example.net|cn:www.example.com", cn_checked_beside_dns_san },
    { "CN beside an empty dNSName SAN", "www.example.com",
      "dns:|cn:www.example.com", cn_checked_beside_dns_san },
    { "CN beside an IP SAN", "www.example.com",
      "ip:192.0.2.1|cn:www.example.com", cn_checked },
    { "IPv4 in the CN", "192.0.2.1", "cn:192.0.2.1", cn_ipv4 },
    { "IPv4 in the CN beside a dNSName SAN", "192.0.2.1",
      "dns:www.example.com|cn:192.0.2.1", cn_ipv4 },
    { "IPv4 in the CN beside an IP SAN", "192.0.2.1",
      "ip:198.51.100.1|cn:192.0.2.1", cn_ipv4 },
    { "IPv6 in the CN", "::1", "cn:::1", cn_ipv6 },
    { "SAN exact", "www.example.com", "dns:www.example.com", yes },
    { "SAN exact, other case", "WWW.Example.COM", "dns:www.EXAMPLE.com", yes },
    { "IP SAN", "192.0.2.1", "ip:192.0.2.1", yes },
    { "IPv6 SAN", "2001:db8::1", "ip:2001:db8:0:0:0:0:0:1", yes },
    { "SAN other name", "www.example.com", "dns:a.example.com", no },
    { "SAN *. over the base", "example.com", "dns:*.example.com", no },
    { "SAN *. over two labels", "a.b.example.com", "dns:*.example.com", no },
    { "SAN *.com", "example.com", "dns:*.com", no },
    { "SAN * alone", "www", "dns:*", no },
    { "IPv4 against its dNSName", "192.0.2.1", "dns:192.0.2.1", no },
    { "IPv4 against another IP SAN", "192.0.2.1", "ip:192.0.2.2", no },
    { "name against an IP SAN", "www.example.com", "ip:192.0.2.1", no },
    { "CN with a dNSName SAN elsewhere", "www.example.com",
      "dns:a.example.com|cn:w*.example.com",
      NULL /* see probe_want: default only */ },
};

/* The CN w* beside a SAN: only "anywhere" in the CN, checked always. */
static int
probe_want(const struct probe *p, const struct scheme_row *s)
{
    if (p->want == NULL)
        return s->check_cn == ALWAYS && s->cn == ANY;
    return p->want(s);
}

static void
test_schemes(void)
{
    char err[256];

    for (size_t i = 0; i < TLSSHIM_NELEMS(probes); i++) {
        const struct probe *p = &probes[i];
        X509 *x = namecert_make(p->spec, '|', err, sizeof(err));
        unit_row("probe %s (%s)", p->what, p->spec);
        if (!CHECK_MSG(x != NULL, "cannot make the certificate: %s", err))
            continue;
        for (size_t j = 0; j < TLSSHIM_NELEMS(scheme_rows); j++) {
            const struct scheme_row *s = &scheme_rows[j];
            unit_row("scheme %s, probe %s (%s)", s->name, p->what, p->spec);
            CHECK_INT(verify_identity(x, p->identity, s->name, 1),
                      probe_want(p, s));
        }
        /* "none" checks nothing */
        unit_row("scheme none, probe %s", p->what);
        CHECK_INT(verify_identity(x, p->identity, "none", 1), 1);
        /* NULL and "" are the default scheme */
        unit_row("scheme NULL, probe %s", p->what);
        CHECK_INT(verify_identity(x, p->identity, NULL, 1),
                  probe_want(p, &scheme_rows[0]));
        CHECK_INT(verify_identity(x, p->identity, "", 1),
                  probe_want(p, &scheme_rows[0]));
        X509_free(x);
    }
}

static const struct known_row {
    const char *scheme;
    int known;
} known_rows[] = {
    { "default", 1 }, { "http", 1 }, { "HTTP", 1 }, { "www", 1 },
    { "rfc2818", 1 }, { "smtp", 1 }, { "imap", 1 }, { "pop3", 1 },
    { "acap", 1 }, { "netconf", 1 }, { "syslog", 1 }, { "snmp", 1 },
    { "ldap", 1 }, { "sip", 1 }, { "xmpp", 1 }, { "ftp", 1 }, { "gist", 1 },
    { "none", 1 }, { NULL, 1 }, { "", 1 }, { "https", 0 }, { "rfc6125", 0 },
    { "defaults", 0 }, { "default ", 0 }, { " none", 0 }, { "nntps", 0 },
    { "wildcards_in_cn", 0 }, { "callback", 0 },
};

static void
test_known(void)
{
    char err[256];
    X509 *x = namecert_make("dns:www.example.com", '|', err, sizeof(err));

    for (size_t i = 0; i < TLSSHIM_NELEMS(known_rows); i++) {
        const struct known_row *r = &known_rows[i];
        unit_row("scheme \"%s\"", r->scheme ? r->scheme : "(null)");
        CHECK_INT(verify_scheme_known(r->scheme), r->known);
        /* an unknown scheme matches nothing, even the exact name */
        if (x != NULL)
            CHECK_INT(verify_identity(x, "www.example.com", r->scheme, 1),
                      r->known);
    }
    X509_free(x);
}

/* --- matching rows ------------------------------------------------------ */

struct match_row {
    const char *scheme; /* NULL: default */
    int publicsuffix;
    const char *identity;
    const char *spec;
    int want;
};

/* 27 CJK characters make the longest A-label (63), 28 one too long. */
#define CJK27                                                              \
    "\xe4\xb8\xa5\xe4\xb9\x8a\xe4\xb9\xaf\xe4\xba\x94\xe4\xba\xb9\xe4\xbb\x9e"      \
    "\xe4\xbc\x83\xe4\xbc\xa8\xe4\xbd\x8d\xe4\xbd\xb2\xe4\xbe\x97\xe4\xbe\xbc"      \
    "\xe4\xbf\xa1\xe5\x80\x86\xe5\x80\xab\xe5\x81\x90\xe5\x81\xb5\xe5\x82\x9a"      \
    "\xe5\x82\xbf\xe5\x83\xa4\xe5\x84\x89\xe5\x84\xae\xe5\x85\x93\xe5\x85\xb8"      \
    "\xe5\x86\x9d\xe5\x87\x82\xe5\x87\xa7"
#define CJK27_ALABEL \
    "xn--6hq6c1e7f9goiqjqkolwmrnyoqpwq2r8svt0u5vexjyoz0z40ap0ar1at2a"
#define CJK28 CJK27 "\xe5\x88\x8c"
#define CJK28_ALABEL \
    "xn--6hq6c1e7f9goiqjqkolwmrnyoqpwq2r8svt0u5vexjyoz0z40ap0ar1at2av3a"

#define D "default"
#define EX ".example.com"

static const struct match_row match_rows[] = {
    /* Exact names: case, trailing dots, white space around SANs. */
    { D, 1, "www.example.com", "dns:www.example.com", 1 },
    { D, 1, "WwW.ExAmPlE.cOm", "dns:www.example.com", 1 },
    { D, 1, "www.example.com.", "dns:www.example.com", 1 },
    { D, 1, "www.example.com...", "dns:www.example.com", 1 },
    { D, 1, "www.example.com", "dns:www.example.com.", 1 },
    { D, 1, "www.example.com", "cn:www.example.com..", 1 },
    { D, 1, "www.example.com", "dns:%20www.example.com%09", 1 },
    { D, 1, "www.example.com", "cn:%20www.example.com", 0 },
    { D, 1, "www.example.com", "dns:www.example.com%00.evil.com", 0 },
    { D, 1, "www.example.com", "cn:www.example.com%00.evil.com", 0 },
    { D, 1, "www.example.com", "dns:www.example.co", 0 },
    { D, 1, "www.example.com", "dns:ww.example.com", 0 },
    { D, 1, "www.example.com", "dns:www.example.com.evil", 0 },
    { D, 1, "www.example.com", "dns:example.com", 0 },
    { D, 1, "www.example.com", "dns:", 0 },
    { D, 1, "www.example.com", "dns:.", 0 },
    { D, 1, "www.example.com", "dns:.www.example.com", 0 },
    { D, 1, "", "dns:www.example.com", 0 },
    { D, 1, ".", "dns:www.example.com", 0 },
    { D, 1, "...", "cn:.", 0 },
    { D, 1, "www.example.com", "", 0 },
    { D, 1, "www.example.com", "o:www.example.com", 0 },
    { D, 1, "w\xc3\xa9w.example.com", "cnt:w\xe9w.example.com", 0 },
    { D, 1, "www.example.com", "cnt:www.example.com", 1 },
    { D, 1, "www.example.com", "cnp:www.example.com", 1 },
    { D, 1, "www.example.com", "cnb:www.example.com", 0 },
    { D, 1, "www.example.com", "cn:a.example.com|cn:www.example.com", 0 },
    { D, 1, "www.example.com", "cn:www.example.com|cn:a.example.com", 1 },
    { D, 1, "www.example.com", "dns:a.example.com|dns2:www.example.com", 0 },
    { D, 1, "www.example.com", "uri:www.example.com", 0 },
    { D, 1, "www.example.com", "email:www.example.com", 0 },
    { D, 1, "www.example.com", "dns:www.example.com%0A", 1 },
    { D, 1, "www.example.com", "cn:www.example.com%0A", 0 },
    { D, 1, "ww w.example.com", "dns:ww w.example.com", 0 },
    { D, 1, "*.example.com", "dns:*.example.com", 0 },

    /* Wildcards, "anywhere": one, in the first label, one or more of
     * [A-Za-z0-9_-] */
    { D, 1, "www" EX, "dns:*" EX, 1 },
    { D, 1, "w" EX, "dns:*" EX, 1 },
    { D, 1, "a-b_c" EX, "dns:*" EX, 1 },
    { D, 1, "-" EX, "dns:*" EX, 1 },
    { D, 1, "www" EX, "dns:*" EX ".", 1 },
    { D, 1, "www" EX ".", "dns:*" EX, 1 },
    { D, 1, "www" EX, "dns:*.EXAMPLE.COM", 1 },
    { D, 1, "foo" EX, "dns:f*" EX, 1 },
    { D, 1, "foo" EX, "dns:*o" EX, 1 },
    { D, 1, "foo" EX, "dns:f*o" EX, 1 },
    { D, 1, "fo-o" EX, "dns:f*o" EX, 1 },
    { D, 1, "foo" EX, "dns:F*" EX, 1 },
    { D, 1, "www" EX, "dns:ww*" EX, 1 },
    { D, 1, "x-y" EX, "dns:*-y" EX, 1 },
    { D, 1, "abc", "dns:*c", 0 },
    { D, 0, "abc", "dns:*c", 1 },
    { D, 1, "example.com", "dns:*" EX, 0 },
    { D, 1, "example.com", "dns:*example.com", 0 },
    { D, 1, "a.b" EX, "dns:*" EX, 0 },
    { D, 1, "a.b" EX, "dns:*.b" EX, 1 },
    { D, 1, "a.b" EX, "dns:*.*" EX, 0 },
    { D, 1, "a.b" EX, "dns:a.*" EX, 0 },
    { D, 1, "a.b" EX, "dns:*b" EX, 0 },
    { D, 1, "f" EX, "dns:f*" EX, 0 },
    { D, 1, "f" EX, "dns:*f" EX, 0 },
    { D, 1, "fo" EX, "dns:f*o" EX, 0 },
    { D, 1, "bar" EX, "dns:f*" EX, 0 },
    { D, 1, "oof" EX, "dns:*o" EX, 0 },
    { D, 1, "www" EX, "dns:**" EX, 0 },
    { D, 1, "www" EX, "dns:*", 0 },
    { D, 1, "www", "dns:*", 0 },
    { D, 0, "www", "dns:*", 0 },
    { D, 1, "www" EX, "dns:*.", 0 },
    { D, 1, "www" EX, "dns:*%00" EX, 0 },
    { D, 1, "www" EX, "dns:*.example.com%0Ax", 0 },
    { D, 1, "www" EX, "cn:*.example.com%0A", 0 },
    { D, 1, "www" EX, "dns:%2A" EX, 1 },
    { D, 1, "w.w" EX, "dns:w*w" EX, 0 },
    { D, 1, "www" EX, "dns:w.*" EX, 0 },
    { D, 1, "www" EX, "dns:www.*.com", 0 },
    { D, 1, "www" EX, "dns:*.*.com", 0 },
    { D, 1, "www" EX, "dns:www" EX "*", 0 },
    { D, 1, "www.example.comx", "dns:www.example.com*", 0 },

    /* "full_label": only "*." + rest */
    { "smtp", 1, "www" EX, "dns:*" EX, 1 },
    { "smtp", 1, "www" EX, "cn:*" EX, 1 },
    { "smtp", 1, "www" EX, "dns:w*" EX, 0 },
    { "smtp", 1, "www" EX, "dns:*w" EX, 0 },
    { "smtp", 1, "www" EX, "dns:*ww" EX, 0 },
    { "smtp", 1, "www" EX, "dns:**" EX, 0 },
    { "smtp", 1, "example.com", "dns:*" EX, 0 },
    { "smtp", 1, "a.www" EX, "dns:*" EX, 0 },
    { "smtp", 1, "a.www" EX, "dns:*.*" EX, 0 },
    { "smtp", 1, "www" EX, "dns:*.", 0 },
    { "smtp", 1, "x", "dns:*.", 0 },
    { "smtp", 1, "www" EX, "dns:*", 0 },
    { "ldap", 1, "www" EX, "dns:*" EX, 1 },
    { "ldap", 1, "www" EX, "cn:*" EX, 0 },
    { "ldap", 1, "www" EX, "cn:www" EX, 1 },
    { "sip", 1, "www" EX, "dns:*" EX, 0 },
    { "sip", 1, "www" EX, "dns:www" EX, 1 },
    { "sip", 1, "www" EX, "cn:*" EX, 0 },
    { "http", 1, "www" EX, "dns:a" EX "|cn:www" EX, 0 },
    { "http", 1, "www" EX, "ip:192.0.2.1|cn:www" EX, 1 },
    { "http", 1, "www" EX, "dns:www" EX "|cn:a" EX, 1 },

    /* Public suffixes (ICANN section of the list) */
    { D, 1, "example.com", "dns:*.com", 0 },
    { D, 0, "example.com", "dns:*.com", 1 },
    { D, 1, "example.co.uk", "dns:*.co.uk", 0 },
    { D, 0, "example.co.uk", "dns:*.co.uk", 1 },
    { D, 1, "www.example.co.uk", "dns:*.example.co.uk", 1 },
    { D, 1, "example.co.uk", "dns:e*.co.uk", 0 },
    { D, 1, "example.co.uk", "cn:*.co.uk", 0 },
    { "smtp", 1, "example.co.uk", "dns:*.co.uk", 0 },
    { "smtp", 0, "example.co.uk", "dns:*.co.uk", 1 },
    { D, 1, "co.uk", "dns:*.uk", 0 },
    { D, 1, "example.unknowntld", "dns:*.unknowntld", 0 },
    { D, 1, "a.example.unknowntld", "dns:*.example.unknowntld", 1 },
    { D, 1, "a.foo.ck", "dns:*.foo.ck", 0 },
    { D, 1, "foo.ck", "dns:*.ck", 0 },
    { D, 1, "a.www.ck", "dns:*.www.ck", 1 },
    { D, 1, "a.foo.kawasaki.jp", "dns:*.foo.kawasaki.jp", 0 },
    { D, 1, "foo.kawasaki.jp", "dns:*.kawasaki.jp", 0 },
    { D, 1, "city.kawasaki.jp", "dns:*.kawasaki.jp", 0 },
    { D, 1, "www.city.kawasaki.jp", "dns:*.city.kawasaki.jp", 1 },
    { D, 1, "a.github.io", "dns:*.github.io", 1 },
    { D, 1, "a.blogspot.com", "dns:*.blogspot.com", 1 },
    { D, 1, "example.xn--p1ai", "dns:*.xn--p1ai", 0 },
    { D, 1, "a.b.xn--p1ai", "dns:*.b.xn--p1ai", 1 },
    { D, 1, "example.COM", "dns:*.com", 0 },
    { D, 1, "example.com.", "dns:*.com.", 0 },
    { D, 1, "example..com", "dns:*..com", 0 },
    { D, 0, "example..com", "dns:*..com", 1 },
    { D, 1, "www.example.com", "dns:*.example.com|dns:*.com", 1 },

    /* IDN: A-labels, and U-labels converted (RFC 3492 samples) */
    { D, 1, "xn--bcher-kva" EX, "dns:xn--bcher-kva" EX, 1 },
    { D, 1, "XN--BCHER-KVA" EX, "dns:xn--bcher-kva" EX, 1 },
    { D, 1, "xn--bcher-kva" EX, "dns:*" EX, 1 },
    { "smtp", 1, "xn--bcher-kva" EX, "dns:*" EX, 1 },
    { D, 1, "xn--bcher-kva" EX, "dns:x*" EX, 0 },
    { D, 1, "xn--bcher-kva" EX, "dns:xn--*" EX, 0 },
    { D, 1, "xn--bcher-kva" EX, "dns:xn--bcher-*" EX, 0 },
    { D, 1, "xn--bcher-kva" EX, "dns:*-kva" EX, 0 },
    { D, 1, "xn--bcher-kva" EX, "dns:*n--bcher-kva" EX, 0 },
    { D, 1, "xn--bcher-kva" EX, "cn:x*" EX, 0 },
    { D, 1, "XN--BCHER-KVA" EX, "dns:x*" EX, 0 },
    { D, 1, "Xn--bcher-kva" EX, "dns:X*" EX, 0 },
    { D, 1, "a.xn--bcher-kva" EX, "dns:*.xn--bcher-kva" EX, 1 },
    { D, 1, "xna" EX, "dns:x*" EX, 1 },
    { D, 1, "b\xc3\xbc" "cher" EX, "dns:xn--bcher-kva" EX, 1 },
    { D, 1, "B\xc3\x9c" "CHER" EX, "dns:xn--bcher-kva" EX, 1 },
    { D, 1, "b\xc3\xbc" "cher" EX ".", "dns:xn--bcher-kva" EX, 1 },
    { D, 1, "b\xc3\xbc" "cher" EX, "cn:xn--bcher-kva" EX, 1 },
    { D, 1, "b\xc3\xbc" "cher" EX, "dns:*" EX, 1 },
    { D, 1, "b\xc3\xbc" "cher" EX, "dns:x*" EX, 0 },
    { D, 1, "b\xc3\xbc" "cher" EX, "dns:*kva" EX, 0 },
    { D, 1, "b\xc3\xbc" "cher" EX, "dns:b\xc3\xbc" "cher" EX, 0 },
    { D, 1, "b\xc3\xbc" "cher" EX, "dns:bcher-kva" EX, 0 },
    { D, 1, "b\xc3\xbc" "cher" EX, "dns:xn--bcher-kvb" EX, 0 },
    { D, 1, "www.b\xc3\xbc" "cher" EX, "dns:*.xn--bcher-kva" EX, 1 },
    { D, 1, "\xc3\xbc", "dns:xn--tda", 1 },
    { D, 1, "\xce\xa3\xce\x91\xce\xa3" EX, "dns:xn--mxa9ab" EX, 1 },
    { D, 1, "\xce\xa3\xce\x91\xce\xa3" EX, "dns:xn--mxa8ab" EX, 0 },
    { D, 1, "\xe4\xbb\x96\xe4\xbb\xac\xe4\xb8\xba\xe4\xbb\x80\xe4\xb9\x88"
            "\xe4\xb8\x8d\xe8\xaf\xb4\xe4\xb8\xad\xe6\x96\x87" EX,
      "dns:xn--ihqwcrb4cv8a8dqg056pqjye" EX, 1 },
    { D, 1, "Pro\xc4\x8dprost\xc4\x9bnemluv\xc3\xad\xc4\x8d" "esky" EX,
      "dns:xn--proprostnemluvesky-uyb24dma41a" EX, 1 },
    { D, 1, "\xd7\x9c\xd7\x9e\xd7\x94\xd7\x94\xd7\x9d\xd7\xa4\xd7\xa9\xd7\x95"
            "\xd7\x98\xd7\x9c\xd7\x90\xd7\x9e\xd7\x93\xd7\x91\xd7\xa8\xd7\x99"
            "\xd7\x9d\xd7\xa2\xd7\x91\xd7\xa8\xd7\x99\xd7\xaa" EX,
      "dns:xn--4dbcagdahymbxekheh6e0a7fei0b" EX, 1 },
    { D, 1, "\xd0\xbf\xd0\xbe\xd1\x87\xd0\xb5\xd0\xbc\xd1\x83\xd0\xb6\xd0\xb5"
            "\xd0\xbe\xd0\xbd\xd0\xb8\xd0\xbd\xd0\xb5\xd0\xb3\xd0\xbe\xd0\xb2"
            "\xd0\xbe\xd1\x80\xd1\x8f\xd1\x82\xd0\xbf\xd0\xbe\xd1\x80\xd1\x83"
            "\xd1\x81\xd1\x81\xd0\xba\xd0\xb8" EX,
      "dns:xn--b1abfaaepdrnnbgefbadotcwatmq2g4l" EX, 1 },
    { D, 1, "Porqu\xc3\xa9nopuedensimplementehablarenEspa\xc3\xb1ol" EX,
      "dns:xn--porqunopuedensimplementehablarenespaol-fmd56a" EX, 1 },
    { D, 1, "3\xe5\xb9\xb4" "B\xe7\xb5\x84\xe9\x87\x91\xe5\x85\xab\xe5\x85"
            "\x88\xe7\x94\x9f" EX,
      "dns:xn--3b-ww4c5e180e575a65lsy2b" EX, 1 },
    { D, 1, "\xe5\xae\x89\xe5\xae\xa4\xe5\xa5\x88\xe7\xbe\x8e\xe6\x81\xb5"
            "-with-SUPER-MONKEYS" EX,
      "dns:xn---with-super-monkeys-pc58ag80a8qai00g7n9n" EX, 1 },
    { D, 1, "\xe3\x81\x9d\xe3\x81\xae\xe3\x82\xb9\xe3\x83\x94\xe3\x83\xbc"
            "\xe3\x83\x89\xe3\x81\xa7" EX,
      "dns:xn--d9juau41awczczp" EX, 1 },
    { D, 1, "b\xc3\xbc" "cher..example.com", "dns:*" EX, 0 },
    { D, 1, ".b\xc3\xbc" "cher.example.com", "dns:*" EX, 0 },
    { D, 1, "xn--\xc3\xbc" EX, "dns:*" EX, 0 },
    { D, 1, "b\xc3\xbc" "cher example.com", "dns:*" EX, 0 },
    { D, 1, "*.b\xc3\xbc" "cher" EX, "dns:*.xn--bcher-kva" EX, 0 },
    { D, 1, "b\xfc" "cher" EX, "dns:xn--bcher-kva" EX, 0 },
    { D, 1, "b\xc3" EX, "dns:*" EX, 0 },
    { D, 1, "\xed\xa0\x80" EX, "dns:*" EX, 0 },
    { D, 1, "\xc0\xae" EX, "dns:*" EX, 0 },
    { D, 1, "a\xef\xbc\x8e" "b" EX, "dns:a.b" EX, 0 },
    { D, 1, CJK27 EX, "dns:" CJK27_ALABEL EX, 1 },
    { D, 1, CJK27 EX, "dns:*" EX, 1 },
    { D, 1, CJK28 EX, "dns:" CJK28_ALABEL EX, 0 },
    { D, 1, CJK28 EX, "dns:*" EX, 0 },
    { D, 1, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            ".b\xc3\xbc" "cher" EX, "dns:*.b\xc3\xbc" "cher" EX, 0 },

    /* IP literals */
    { D, 1, "192.0.2.1", "ip:192.0.2.1", 1 },
    { D, 1, "192.0.2.1.", "ip:192.0.2.1", 1 },
    { D, 1, "192.0.2.1", "dns:a" EX "|ip:192.0.2.1", 1 },
    { D, 1, "192.0.2.1", "ip:192.0.2.2|ip2:192.0.2.1", 0 },
    { D, 1, "192.0.2.1", "ip:192.0.2.2", 0 },
    { D, 1, "192.0.2.1", "ip:::ffff:192.0.2.1", 0 },
    { D, 1, "::ffff:192.0.2.1", "ip:192.0.2.1", 0 },
    { D, 1, "::ffff:192.0.2.1", "ip:::ffff:192.0.2.1", 1 },
    { D, 1, "192.0.2.1", "iphex:c0000201ff", 0 },
    { D, 1, "192.0.2.1", "iphex:c00002", 0 },
    { D, 1, "192.0.2.1", "dns:192.0.2.1", 0 },
    { D, 1, "192.0.2.1", "dns:*.0.2.1", 0 },
    { D, 1, "192.0.2.1", "cn:192.0.2.1", 1 },
    { D, 1, "192.0.2.1.", "cn:192.0.2.1", 1 },
    { D, 1, "192.0.2.1", "cn:192.0.2.1.", 0 },
    { D, 1, "192.0.2.1", "cn:192.000.2.1", 0 },
    { D, 1, "192.0.2.1", "cn:*.0.2.1", 0 },
    { D, 1, "192.0.2.01", "ip:192.0.2.1", 0 },
    { D, 1, "192.0.2.01", "cn:192.0.2.01", 0 },
    { D, 1, "00.0.0.0", "ip:0.0.0.0", 0 },
    { D, 1, "0.0.0.0", "ip:0.0.0.0", 1 },
    { D, 1, "192.0.2", "ip:192.0.2.0", 0 },
    { D, 1, "192.0.2", "cn:192.0.2", 0 },
    { D, 1, "192.0.2.1.5", "ip:192.0.2.1", 0 },
    { D, 1, "256.0.2.1", "cn:256.0.2.1", 0 },
    { D, 1, "99999999999.0.2.1", "cn:99999999999.0.2.1", 0 },
    { D, 1, "192..2.1", "cn:192..2.1", 0 },
    { D, 1, "192.0.2.1a", "dns:192.0.2.1a", 1 },
    { D, 1, "::1", "ip:::1", 1 },
    { D, 1, "0:0:0:0:0:0:0:1", "ip:::1", 1 },
    { D, 1, "::0001", "ip:::1", 1 },
    { D, 1, "2001:DB8::1", "ip:2001:db8::1", 1 },
    { D, 1, "2001:db8::1", "ip:2001:db8::2", 0 },
    { D, 1, "2001:db8::1", "ip:192.0.2.1", 0 },
    { D, 1, "::1", "cn:::1", 1 },
    { D, 1, "::1", "cn:0:0:0:0:0:0:0:1", 0 },
    { D, 1, "2001:db8::a", "cn:2001:DB8::A", 0 },
    { D, 1, "::1", "dns:::1", 0 },
    { D, 1, "[::1]", "ip:::1", 0 },
    { D, 1, "::1%lo", "ip:::1", 0 },
    { D, 1, "fe80::1%eth0", "ip:fe80::1", 0 },
    { D, 1, "::g", "dns:::g", 0 },
    { D, 1, "192.0.2.1:443", "ip:192.0.2.1", 0 },
    { "http", 1, "::1", "cn:::1", 0 },
    { "http", 1, "192.0.2.1", "cn:192.0.2.1", 1 },
    { "http", 1, "192.0.2.1", "dns:www" EX "|cn:192.0.2.1", 1 },
    { "rfc2818", 1, "192.0.2.1", "cn:192.0.2.1", 0 },
    { "smtp", 1, "192.0.2.1", "cn:192.0.2.1", 0 },
    { "smtp", 1, "192.0.2.1", "ip:192.0.2.1", 1 },
    { "sip", 1, "2001:db8::1", "ip:2001:db8::1", 1 },
};

static void
test_match(void)
{
    char err[256];

    for (size_t i = 0; i < TLSSHIM_NELEMS(match_rows); i++) {
        const struct match_row *r = &match_rows[i];
        X509 *x = namecert_make(r->spec, '|', err, sizeof(err));
        unit_row("%s, publicsuffix %d: \"%s\" against \"%s\"", r->scheme,
                 r->publicsuffix, r->identity, r->spec);
        if (!CHECK_MSG(x != NULL, "cannot make the certificate: %s", err))
            continue;
        CHECK_INT(verify_identity(x, r->identity, r->scheme, r->publicsuffix),
                  r->want);
        X509_free(x);
    }
}

/* --- names for messages -------------------------------------------------- */

static const struct names_row {
    const char *spec;
    size_t len;
    const char *want;
} names_rows[] = {
    { "dns:a.example.com|dns:*.example.com", 256,
      "a.example.com, *.example.com" },
    { "dns:a.example.com|ip:192.0.2.1|ip:2001:db8::1|cn:x", 256,
      "a.example.com, IP:192.0.2.1, IP:2001:db8::1" },
    { "ip:192.0.2.1", 256, "IP:192.0.2.1" },
    { "iphex:c00002", 256, "IP:?" },
    { "cn:www.example.com", 256, "CN=www.example.com" },
    { "email:a@b.c|cn:www.example.com", 256, "CN=www.example.com" },
    { "cn:a|cn:b", 256, "CN=a" },
    { "", 256, "no names" },
    { "o:example", 256, "no names" },
    { "dns:a%0Ab%00c%5Cd%FF", 256, "a\\x0ab\\x00c\\x5cd\\xff" },
    { "cn:evil%0A2024 fake log line", 256, "CN=evil\\x0a2024 fake log line" },
    { "dns:aaaa|dns:bbbb|dns:cccc", 12, "aaaa, bbbb" },
    { "dns:aaaa|dns:bbbb|dns:cccc", 16, "aaaa, bbbb ..." },
    { "dns:aaaaaaaaaaaaaaaaaaaa", 8, "..." },
    { "dns:a", 2, "a" },
    { "dns:ab", 2, "" },
    { "dns:"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      256,
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa..." },
};

static void
test_names(void)
{
    char err[256], buf[256];

    for (size_t i = 0; i < TLSSHIM_NELEMS(names_rows); i++) {
        const struct names_row *r = &names_rows[i];
        X509 *x = namecert_make(r->spec, '|', err, sizeof(err));
        unit_row("names of \"%s\" in %zu bytes", r->spec, r->len);
        if (!CHECK_MSG(x != NULL, "cannot make the certificate: %s", err))
            continue;
        memset(buf, 'Z', sizeof(buf));
        verify_cert_names(x, buf, r->len);
        CHECK_STR(buf, r->want);
        CHECK(strlen(buf) < r->len);
        X509_free(x);
    }
}

/* --- the lazily loaded list under threads -------------------------------- */

enum { THREADS = 8, ROUNDS = 200 };

static X509 *thread_certs[2];

static void *
thread_main(void *arg)
{
    long wrong = 0;

    for (int i = 0; i < ROUNDS; i++) {
        wrong += verify_identity(thread_certs[0], "www.example.co.uk", NULL,
                                 1) != 1;
        wrong += verify_identity(thread_certs[1], "example.co.uk", NULL, 1) !=
                 0;
    }
    return (void *)wrong;
}

/* Must run first: the first wildcard check of the process loads the list. */
static void
test_threads(void)
{
    pthread_t threads[THREADS];
    char err[256];
    int started = 0;

    unit_row("public suffix list loaded by %d threads at once", THREADS);
    thread_certs[0] = namecert_make("dns:*.example.co.uk", '|', err,
                                    sizeof(err));
    thread_certs[1] = namecert_make("dns:*.co.uk", '|', err, sizeof(err));
    if (!CHECK(thread_certs[0] != NULL && thread_certs[1] != NULL))
        goto out;
    for (; started < THREADS; started++)
        if (pthread_create(&threads[started], NULL, thread_main, NULL) != 0)
            break;
    CHECK_INT(started, THREADS);
    for (int i = 0; i < started; i++) {
        void *wrong = NULL;
        pthread_join(threads[i], &wrong);
        CHECK_INT((long)wrong, 0);
    }
out:
    X509_free(thread_certs[0]);
    X509_free(thread_certs[1]);
    unit_row("%s", "");
}

int
main(void)
{
    test_threads();
    test_schemes();
    test_known();
    test_match();
    test_names();
    return unit_finish();
}
