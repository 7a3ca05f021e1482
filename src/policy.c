/*
 * The policy of tlsshim.conf(5): a strict INI parser that turns untrusted
 * text into the immutable rule table of policy.h, and the matchers that
 * pick a rule for a destination or for an accepted connection's local
 * address.  Parsing is done in two steps: every line is validated as it is
 * read (so that errors name the line at fault), keeping each section's
 * values as normalised text; then every rule is built from its own values,
 * its [defaults] or [listen-defaults], and the built-in defaults, and the
 * settings that depend on each other are checked.  Nothing here touches a
 * socket or an OpenSSL object.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "policy.h"
#include "starttls_server.h"
#include "sys.h"
#include "util.h"

/* Bounds on untrusted input: a policy is small, so anything bigger is a
 * mistake or an attack, and is refused with a clear message. */
enum {
    MAX_FILE_SIZE = 1024 * 1024,
    MAX_LINE = 4096,
    MAX_RULES = 4096,
    MAX_VALUES = 1024,       /* patterns, fingerprints... per key and rule */
    MAX_SECTION_NAME = 128,
    MAX_DNS_NAME = 253,
    MAX_PATTERN = 300,
    MSG_LEN = 1024,
    SHOWN_LEN = 100,         /* user text quoted in a message, at most */
    NORM_LEN = 2 * MAX_LINE, /* a normalised value is never much longer */
};

/* Where a rule key may appear and how it repeats. */
enum key_flag {
    KF_MULTI = 0x01,       /* values split on spaces/commas, accumulate */
    KF_REPEAT = 0x02,      /* repeats; each line is one whole value */
    KF_RULE_ONLY = 0x04,   /* in a rule, never in [defaults] sections */
    KF_SERVER_ONLY = 0x08, /* listen rules and [listen-defaults] only */
    KF_CLIENT_ONLY = 0x10, /* connect rules and [defaults] only */
};

static const struct rule_key {
    const char *name;
    unsigned flags;
} rule_keys[PK__COUNT] = {
    [PK_ACTION] = { "action", 0 },
    [PK_CONNECT] = { "connect", KF_MULTI | KF_RULE_ONLY },
    [PK_LISTEN] = { "listen", KF_MULTI | KF_RULE_ONLY },
    [PK_VERIFY_MODE] = { "verify_mode", 0 },
    [PK_CA_FILE] = { "ca_file", 0 },
    [PK_CA_PATH] = { "ca_path", 0 },
    [PK_VERIFYCN_SCHEME] = { "verifycn_scheme", 0 },
    [PK_VERIFYCN_NAME] = { "verifycn_name", 0 },
    [PK_VERIFYCN_PUBLICSUFFIX] = { "verifycn_publicsuffix", 0 },
    [PK_FINGERPRINT] = { "fingerprint", KF_MULTI },
    [PK_PUBKEY_PIN] = { "pubkey_pin", KF_MULTI },
    [PK_CHECK_CRL] = { "check_crl", 0 },
    [PK_CRL_FILE] = { "crl_file", 0 },
    [PK_OCSP_MODE] = { "ocsp_mode", 0 },
    [PK_OCSP_TIMEOUT] = { "ocsp_timeout", 0 },
    [PK_SECURITY_LEVEL] = { "security_level", 0 },
    [PK_HOSTNAME] = { "hostname", 0 },
    [PK_CERT_FILE] = { "cert_file", 0 },
    [PK_KEY_FILE] = { "key_file", 0 },
    [PK_PASSWD_FILE] = { "passwd_file", 0 },
    [PK_SNI_CERT] = { "sni_cert", KF_REPEAT | KF_SERVER_ONLY },
    [PK_CLIENT_CA_FILE] = { "client_ca_file", KF_SERVER_ONLY },
    [PK_TICKET_KEY_FILE] = { "ticket_key_file", KF_SERVER_ONLY },
    [PK_AUTO_CA_DIR] = { "auto_ca_dir", KF_SERVER_ONLY },
    [PK_VERSION] = { "version", 0 },
    [PK_MIN_VERSION] = { "min_version", 0 },
    [PK_MAX_VERSION] = { "max_version", 0 },
    [PK_CIPHER_LIST] = { "cipher_list", 0 },
    [PK_CIPHERSUITES] = { "ciphersuites", 0 },
    [PK_ECDH_CURVE] = { "ecdh_curve", 0 },
    [PK_HONOR_CIPHER_ORDER] = { "honor_cipher_order", KF_SERVER_ONLY },
    [PK_ALPN_PROTOCOLS] = { "alpn_protocols", 0 },
    [PK_SESSION_CACHE_SIZE] = { "session_cache_size", 0 },
    [PK_SESSION_KEY] = { "session_key", 0 },
    [PK_HANDSHAKE_TIMEOUT] = { "handshake_timeout", 0 },
    [PK_STRICT_EOF] = { "strict_eof", 0 },
    [PK_STARTTLS] = { "starttls", 0 },
    [PK_STARTTLS_REQUIRED] = { "starttls_required", 0 },
    /* The connection goes elsewhere: only an outbound connect can. */
    [PK_REDIRECT] = { "redirect", KF_CLIENT_ONLY },
    [PK_KTLS] = { "ktls", 0 },
    /* Sessions are resumed by connect rules only. */
    [PK_SESSION_CACHE_DIR] = { "session_cache_dir", KF_CLIENT_ONLY },
};

enum global_key {
    GK_DEFAULT_ACTION = 0,
    GK_DEFAULT_LISTEN_ACTION,
    GK_LOG,
    GK_DEBUG,
    GK_REPORT,
    GK_REPORT_OPEN,
    GK_KEYLOG,
    GK_UNCOVERED,
    GK__COUNT
};

static const char *const global_keys[GK__COUNT] = {
    [GK_DEFAULT_ACTION] = "default_action",
    [GK_DEFAULT_LISTEN_ACTION] = "default_listen_action",
    [GK_LOG] = "log",
    [GK_DEBUG] = "debug",
    [GK_REPORT] = "report",
    [GK_REPORT_OPEN] = "report_open",
    [GK_KEYLOG] = "keylog",
    [GK_UNCOVERED] = "uncovered",
};

/*
 * Features the policy language names but tlsshim does not implement yet.
 * A policy that uses one is refused, never silently half-honoured: a
 * setting that is ignored would weaken what the user asked for.  The check
 * runs after the value itself was validated, so a typo is still reported as
 * a typo.  Remove an entry when its feature lands (and the round-trip test
 * of policy_write will then print that key's default for real).
 *
 * value NULL refuses the key whatever its value; otherwise only that
 * normalised value, or that flag of a "|"-list (ocsp_mode).
 */
static const struct unsupported {
    int global;          /* 1: a [global] key (enum global_key) */
    int key;             /* enum policy_key or enum global_key */
    const char *value;
    const char *message; /* NULL: the standard message */
} unsupported[] = {
    /* Nothing is refused at present.  C has no empty initialiser, so this
     * row keeps the table (and its lookup) in place for the next feature
     * that is named before it is built; key -1 matches no key. */
    { 0, -1, NULL, NULL },
};

static const char *const action_names[] = {
    [POLICY_TLS] = "tls",
    [POLICY_AUTO] = "auto",
    [POLICY_ENFORCE] = "enforce",
    [POLICY_PLAIN] = "plain",
    [POLICY_DENY] = "deny",
    [POLICY_AUDIT] = "audit",
};

static const char *const verifycn_schemes[] = {
    "default", "http", "rfc2818", "smtp", "imap", "pop3", "acap", "netconf",
    "syslog", "snmp", "ldap", "sip", "xmpp", "ftp", "gist", "none",
};

static const char *const starttls_protocols[] = {
    "smtp", "imap", "pop3", "ftp", "ldap", "xmpp", "nntp", "postgres",
    "mysql",
};

static const struct ocsp_flag {
    const char *name;
    unsigned flag;
} ocsp_flags[] = {
    { "no_staple", POLICY_OCSP_NO_STAPLE },
    { "try_staple", POLICY_OCSP_TRY_STAPLE },
    { "must_staple", POLICY_OCSP_MUST_STAPLE },
    { "fail_hard", POLICY_OCSP_FAIL_HARD },
    { "full_chain", POLICY_OCSP_FULL_CHAIN },
    { "resolve", POLICY_OCSP_RESOLVE },
};

static const struct fingerprint_algo {
    const char *name;
    size_t md_len;
} fingerprint_algos[] = {
    { "sha1", 20 },
    { "sha224", 28 },
    { "sha256", 32 },
    { "sha384", 48 },
    { "sha512", 64 },
};

/* Protocols of the version syntax, lowest first; a bit each in a mask. */
static const struct protocol {
    const char *name;
    int version;
} protocols[] = {
    { "SSLv2", 0x0002 },
    { "SSLv3", SSL3_VERSION },
    { "TLSv1", TLS1_VERSION },
    { "TLSv1_1", TLS1_1_VERSION },
    { "TLSv1_2", TLS1_2_VERSION },
    { "TLSv1_3", TLS1_3_VERSION },
};
enum { PROTO_FIRST_TLS = 2 };

static const char default_version[] = "SSLv23:!SSLv3:!SSLv2:!TLSv1:!TLSv1_1";

enum section_kind {
    SEC_GLOBAL,
    SEC_DEFAULTS,
    SEC_LISTEN_DEFAULTS,
    SEC_RULE,
};

/* One key in one section, in file order: each value as written (to build
 * rules from, so that patterns keep their text for messages) and
 * normalised (for --check and the unsupported table). */
struct setting {
    char **raw;
    char **vals;
    size_t nvals;
    int line; /* where the key first appears; 0: not set */
};

struct section {
    char *name;
    int line;
    enum section_kind kind;
    struct setting key[PK__COUNT];
    struct setting gkey[GK__COUNT];
    /* The section's own values applied as they are read: validates each
     * line and counts patterns; the effective rule is built afresh. */
    struct policy_rule own;
};

struct parser {
    const char *name; /* for messages */
    char *err;
    size_t errlen;
    int line;
    struct section *sections;
    size_t nsections, cap;
    size_t nrules;
    struct policy_global global;
    char linebuf[MAX_LINE + 1];
    char value[MAX_LINE + 1];   /* the value of the current line */
    char valbuf[MAX_LINE + 1];  /* scratch: one value of a list */
    char norm[NORM_LEN];
    char msg[MSG_LEN];
};

static void rule_clear(struct policy_rule *r);

/* --- small helpers ---------------------------------------------------- */

/* ASCII only: the C library's versions follow the program's locale. */
static int
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int
is_alnum(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_space(int c)
{
    return c == ' ' || c == '\t';
}

static int
to_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int
ascii_ncasecmp(const char *a, const char *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        int ca = to_lower((unsigned char)a[i]);
        int cb = to_lower((unsigned char)b[i]);
        if (ca != cb)
            return ca - cb;
        if (ca == '\0')
            break;
    }
    return 0;
}

static int
ascii_casecmp(const char *a, const char *b)
{
    return ascii_ncasecmp(a, b, SIZE_MAX);
}

static void
lower_copy(char *dst, const char *src, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        dst[i] = (char)to_lower((unsigned char)src[i]);
    dst[n] = '\0';
}

/* Non-empty, decimal digits only (no sign, no space: strtol takes both). */
static int
all_digits(const char *s, size_t n)
{
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++)
        if (!is_digit((unsigned char)s[i]))
            return 0;
    return 1;
}

static int
parse_number(const char *s, long min, long max, long *out)
{
    if (!all_digits(s, strlen(s)) || strlen(s) > 9)
        return -1;
    return util_parse_int(s, min, max, out);
}

static int msgf(char *msg, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record a message; always returns -1 so that callers can return it. */
static int
msgf(char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return -1;
}

/* User text inside a message, cut short so that the message still says
 * what and where. */
static const char *
shown(const char *s, char *buf, size_t len)
{
    size_t n = strlen(s);

    if (n < len) {
        memcpy(buf, s, n + 1);
    } else {
        memcpy(buf, s, len - 4);
        memcpy(buf + len - 4, "...", 4);
    }
    return buf;
}

static int
set_string(char **field, const char *v, char *msg, size_t msglen)
{
    char *copy = strdup(v);

    if (copy == NULL)
        return msgf(msg, msglen, "out of memory");
    free(*field);
    *field = copy;
    return 0;
}

static int
grow(void **array, size_t n, size_t size)
{
    void *p = realloc(*array, (n + 1) * size);

    if (p == NULL)
        return -1;
    *array = p;
    return 0;
}

static const char *
version_name(int version)
{
    size_t i;

    for (i = 0; i < TLSSHIM_NELEMS(protocols); i++)
        if (protocols[i].version == version)
            return protocols[i].name;
    return "?";
}

static const char *
section_title(const struct section *s, char *buf, size_t len)
{
    snprintf(buf, len, "[%s]", s->name);
    return buf;
}

/* --- value syntax ----------------------------------------------------- */

static int
parse_bool(const char *v, int *out)
{
    static const char *const yes[] = { "yes", "1", "true", "on" };
    static const char *const no[] = { "no", "0", "false", "off" };
    size_t i;

    for (i = 0; i < TLSSHIM_NELEMS(yes); i++) {
        if (ascii_casecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (ascii_casecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int
parse_action(const char *v, enum policy_action *out)
{
    size_t i;

    for (i = 0; i < TLSSHIM_NELEMS(action_names); i++) {
        if (ascii_casecmp(v, action_names[i]) == 0) {
            *out = (enum policy_action)i;
            return 0;
        }
    }
    return -1;
}

/* Strict dotted quad: four decimal octets, no leading zeros (inet_aton
 * would read them as octal), nothing else. */
static int
parse_ipv4(const char *s, size_t len, unsigned char out[4])
{
    size_t i = 0;
    int part;

    for (part = 0; part < 4; part++) {
        size_t start = i;
        unsigned v = 0;

        while (i < len && is_digit((unsigned char)s[i])) {
            v = v * 10 + (unsigned)(s[i] - '0');
            if (i - start >= 3 || v > 255)
                return -1;
            i++;
        }
        if (i == start || (s[start] == '0' && i - start > 1))
            return -1;
        out[part] = (unsigned char)v;
        if (part < 3) {
            if (i >= len || s[i] != '.')
                return -1;
            i++;
        }
    }
    return i == len ? 0 : -1;
}

/* An IPv6 address without brackets; no zone index (it names a local
 * interface, meaningless in a policy shared between machines). */
static int
parse_ipv6(const char *s, size_t len, unsigned char out[16])
{
    char buf[INET6_ADDRSTRLEN + 1];

    if (len == 0 || len >= sizeof(buf) || memchr(s, '%', len) != NULL)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
}

static int
looks_like_ipv6(const char *s, size_t len)
{
    size_t i, colons = 0;

    for (i = 0; i < len; i++) {
        int c = to_lower((unsigned char)s[i]);
        if (c == ':')
            colons++;
        else if (!is_digit(c) && !(c >= 'a' && c <= 'f') && c != '.' &&
                 c != '/' && c != '%')
            return 0;
    }
    return colons >= 2;
}

/*
 * A DNS name: labels of [A-Za-z0-9_-], 1 to 63 characters, not starting or
 * ending with '-', 253 characters at most; one trailing dot is dropped.
 * With allow_wildcard, "*." as the whole leftmost label sets *wildcard and
 * is not copied.  out receives the lower-case name.
 */
static int
check_dns_name(const char *s, int allow_wildcard, char *out, size_t outlen,
               int *wildcard, char *msg, size_t msglen)
{
    char sh[SHOWN_LEN];
    const char *name = s;
    size_t len = strlen(s), i, label = 0, label_start = 0;
    int numeric = 1;

    *wildcard = 0;
    if (len > 0 && s[len - 1] == '.')
        len--;
    if (allow_wildcard && len >= 2 && s[0] == '*' && s[1] == '.') {
        *wildcard = 1;
        name += 2;
        len -= 2;
    }
    if (len == 0)
        return msgf(msg, msglen, "empty DNS name \"%s\"", shown(s, sh,
                    sizeof(sh)));
    if (len > MAX_DNS_NAME || len >= outlen)
        return msgf(msg, msglen, "DNS name \"%s\" is longer than %d "
                    "characters", shown(s, sh, sizeof(sh)), MAX_DNS_NAME);
    for (i = 0; i <= len; i++) {
        int c = i < len ? (unsigned char)name[i] : '.';

        if (c == '.') {
            if (label == 0)
                return msgf(msg, msglen, "empty label in DNS name \"%s\"",
                            shown(s, sh, sizeof(sh)));
            if (name[label_start] == '-' || name[i - 1] == '-')
                return msgf(msg, msglen, "label of DNS name \"%s\" starts "
                            "or ends with '-'", shown(s, sh, sizeof(sh)));
            if (i < len) {
                label = 0;
                label_start = i + 1;
                numeric = 1;
            }
            continue;
        }
        if (c == '*')
            return msgf(msg, msglen, allow_wildcard ?
                        "bad wildcard in \"%s\": \"*.\" may only be the "
                        "whole leftmost label, as in *.example.com" :
                        "wildcard in \"%s\" where none is allowed",
                        shown(s, sh, sizeof(sh)));
        if (!is_alnum(c) && c != '-' && c != '_')
            return msgf(msg, msglen, "bad character in DNS name \"%s\"",
                        shown(s, sh, sizeof(sh)));
        if (!is_digit(c))
            numeric = 0;
        if (++label > 63)
            return msgf(msg, msglen, "label of DNS name \"%s\" is longer "
                        "than 63 characters", shown(s, sh, sizeof(sh)));
    }
    /* No top-level domain is numeric: this is a mistyped address. */
    if (numeric)
        return msgf(msg, msglen, "\"%s\" is neither a DNS name nor an IPv4 "
                    "address", shown(s, sh, sizeof(sh)));
    lower_copy(out, name, len);
    return 0;
}

static int
parse_port_number(const char *s, size_t len, unsigned *out)
{
    char buf[8];
    long v;

    if (!all_digits(s, len) || len > 5)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (util_parse_int(buf, 1, 65535, &v) == -1)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int
parse_ports(const char *s, struct policy_pattern *pat, char *msg,
            size_t msglen)
{
    char sh[SHOWN_LEN];
    const char *dash;
    unsigned lo, hi;

    if (strcmp(s, "*") == 0) {
        pat->port_lo = 0;
        pat->port_hi = 65535;
        return 0;
    }
    if ((dash = strchr(s, '-')) != NULL) {
        if (parse_port_number(s, (size_t)(dash - s), &lo) == -1 ||
            parse_port_number(dash + 1, strlen(dash + 1), &hi) == -1)
            return msgf(msg, msglen, "bad port range \"%s\" (want LO-HI, "
                        "ports 1 to 65535)", shown(s, sh, sizeof(sh)));
        if (lo > hi)
            return msgf(msg, msglen, "port range \"%s\" ends below its "
                        "start", shown(s, sh, sizeof(sh)));
    } else if (parse_port_number(s, strlen(s), &lo) == 0) {
        hi = lo;
    } else {
        return msgf(msg, msglen, "bad port \"%s\" (want 1 to 65535, a range "
                    "LO-HI or *)", shown(s, sh, sizeof(sh)));
    }
    pat->port_lo = (uint16_t)lo;
    pat->port_hi = (uint16_t)hi;
    return 0;
}

static int
parse_prefix(const char *s, size_t len, int max, int *out)
{
    char buf[8];
    long v;

    if (!all_digits(s, len) || len > 3)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (util_parse_int(buf, 0, max, &v) == -1)
        return -1;
    *out = (int)v;
    return 0;
}

/* Clear the host bits, so that 10.1.2.3/8 is stored as 10.0.0.0/8. */
static void
mask_address(unsigned char *addr, size_t len, int prefix)
{
    size_t i;

    for (i = 0; i < len; i++) {
        int bits = prefix - (int)(i * 8);
        if (bits >= 8)
            continue;
        addr[i] &= bits <= 0 ? 0 : (unsigned char)(0xff << (8 - bits));
    }
}

static const unsigned char v4mapped_prefix[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* The canonical text of a pattern, as policy_write prints it. */
static void
format_pattern(const struct policy_pattern *pat, char *buf, size_t len)
{
    char host[MAX_DNS_NAME + 64] = "";
    char ip[INET6_ADDRSTRLEN];
    size_t n;

    switch (pat->kind) {
    case PAT_ANY_HOST:
        break;
    case PAT_IPV4:
        inet_ntop(AF_INET, pat->addr, ip, sizeof(ip));
        if (pat->prefix < 32)
            snprintf(host, sizeof(host), "%s/%d", ip, pat->prefix);
        else
            snprintf(host, sizeof(host), "%s", ip);
        break;
    case PAT_IPV6:
        inet_ntop(AF_INET6, pat->addr, ip, sizeof(ip));
        if (pat->prefix < 128)
            snprintf(host, sizeof(host), "[%s]/%d", ip, pat->prefix);
        else
            snprintf(host, sizeof(host), "[%s]", ip);
        break;
    case PAT_NAME:
        snprintf(host, sizeof(host), "%s%s", pat->wildcard ? "*." : "",
                 pat->name);
        break;
    }
    if (pat->port_lo == 0 && pat->port_hi == 65535) {
        snprintf(buf, len, "%s", pat->kind == PAT_ANY_HOST ? "*" : host);
        return;
    }
    n = (size_t)snprintf(buf, len, "%s:%u", host, pat->port_lo);
    if (pat->port_hi != pat->port_lo && n < len)
        snprintf(buf + n, len - n, "-%u", pat->port_hi);
}

/*
 * HOST:PORT, HOST or :PORT of SPEC section 3.  listen: the pattern matches
 * a local address, so DNS names are refused.
 */
static int
parse_pattern(const char *tok, int listen, struct policy_pattern *pat,
              char *msg, size_t msglen)
{
    char sh[SHOWN_LEN], host[MAX_PATTERN + 1], name[MAX_DNS_NAME + 1];
    const char *port = NULL, *prefix = NULL, *slash;
    size_t toklen = strlen(tok), hostlen, prefixlen = 0;

    memset(pat, 0, sizeof(*pat));
    pat->port_lo = 0;
    pat->port_hi = 65535;
    if (toklen > MAX_PATTERN)
        return msgf(msg, msglen, "pattern \"%s\" is longer than %d "
                    "characters", shown(tok, sh, sizeof(sh)), MAX_PATTERN);

    if (tok[0] == '[') {
        const char *close = strchr(tok, ']');
        const char *rest;

        if (close == NULL)
            return msgf(msg, msglen, "missing ']' in \"%s\"",
                        shown(tok, sh, sizeof(sh)));
        rest = close + 1;
        if (*rest == '/') {
            prefix = rest + 1;
            prefixlen = strcspn(prefix, ":");
            rest = prefix + prefixlen;
        }
        if (*rest == ':')
            port = rest + 1;
        else if (*rest != '\0')
            return msgf(msg, msglen, "junk after ']' in \"%s\" (want "
                        "[IPv6], [IPv6]/LEN or [IPv6]:PORT)",
                        shown(tok, sh, sizeof(sh)));
        if (parse_ipv6(tok + 1, (size_t)(close - tok - 1), pat->addr) == -1)
            return msgf(msg, msglen, "bad IPv6 address in \"%s\"",
                        shown(tok, sh, sizeof(sh)));
        pat->kind = PAT_IPV6;
        pat->prefix = 128;
        if (prefix != NULL &&
            parse_prefix(prefix, prefixlen, 128, &pat->prefix) == -1)
            return msgf(msg, msglen, "bad prefix length in \"%s\" (want 0 "
                        "to 128)", shown(tok, sh, sizeof(sh)));
        /* Mapped destinations are matched as IPv4: store the pattern so. */
        if (memcmp(pat->addr, v4mapped_prefix, 12) == 0 && pat->prefix >= 96) {
            memmove(pat->addr, pat->addr + 12, 4);
            memset(pat->addr + 4, 0, 12);
            pat->kind = PAT_IPV4;
            pat->prefix -= 96;
        }
    } else {
        const char *colon = strchr(tok, ':');

        if (colon != NULL && strchr(colon + 1, ':') != NULL)
            return msgf(msg, msglen, looks_like_ipv6(tok, toklen) ?
                        "IPv6 addresses need brackets: \"%s\" (write [ADDR] "
                        "or [ADDR]:PORT)" : "bad pattern \"%s\" (more than "
                        "one ':')", shown(tok, sh, sizeof(sh)));
        hostlen = colon != NULL ? (size_t)(colon - tok) : toklen;
        if (colon != NULL)
            port = colon + 1;
        memcpy(host, tok, hostlen);
        host[hostlen] = '\0';
        if ((slash = strchr(host, '/')) != NULL) {
            prefix = slash + 1;
            prefixlen = strlen(prefix);
            hostlen = (size_t)(slash - host);
            host[hostlen] = '\0';
        }
        if (hostlen == 0 || strcmp(host, "*") == 0) {
            if (prefix != NULL)
                return msgf(msg, msglen, "a prefix length needs an IP "
                            "address: \"%s\"", shown(tok, sh, sizeof(sh)));
            if (hostlen == 0 && port == NULL)
                return msgf(msg, msglen, "empty pattern");
            pat->kind = PAT_ANY_HOST;
        } else if (strspn(host, "0123456789.") == hostlen) {
            if (parse_ipv4(host, hostlen, pat->addr) == -1)
                return msgf(msg, msglen, "bad IPv4 address in \"%s\"",
                            shown(tok, sh, sizeof(sh)));
            pat->kind = PAT_IPV4;
            pat->prefix = 32;
            if (prefix != NULL &&
                parse_prefix(prefix, prefixlen, 32, &pat->prefix) == -1)
                return msgf(msg, msglen, "bad prefix length in \"%s\" (want "
                            "0 to 32)", shown(tok, sh, sizeof(sh)));
        } else {
            if (prefix != NULL)
                return msgf(msg, msglen, "a prefix length needs an IP "
                            "address: \"%s\"", shown(tok, sh, sizeof(sh)));
            if (listen)
                return msgf(msg, msglen, "DNS name in listen pattern \"%s\" "
                            "(listen matches the local address: use an IP "
                            "address or :PORT)", shown(tok, sh, sizeof(sh)));
            if (check_dns_name(host, 1, name, sizeof(name), &pat->wildcard,
                               msg, msglen) == -1)
                return -1;
            pat->kind = PAT_NAME;
        }
    }

    if (port != NULL) {
        if (*port == '\0')
            return msgf(msg, msglen, "missing port after ':' in \"%s\"",
                        shown(tok, sh, sizeof(sh)));
        if (parse_ports(port, pat, msg, msglen) == -1)
            return -1;
    }
    if (pat->kind == PAT_IPV4)
        mask_address(pat->addr, 4, pat->prefix);
    else if (pat->kind == PAT_IPV6)
        mask_address(pat->addr, 16, pat->prefix);
    if ((pat->text = strdup(tok)) == NULL ||
        (pat->kind == PAT_NAME && (pat->name = strdup(name)) == NULL)) {
        free(pat->text);
        pat->text = NULL;
        return msgf(msg, msglen, "out of memory");
    }
    return 0;
}

static void
pattern_clear(struct policy_pattern *pat)
{
    free(pat->name);
    free(pat->text);
}

/*
 * version in IO::Socket::SSL syntax: ":"-separated terms, each a protocol
 * (SSLv23 meaning all of them) that adds to the enabled set, or "!" and a
 * protocol that removes it, applied left to right.  OpenSSL 3 speaks
 * neither SSL 2 nor 3, so "all" is TLS 1.0 to 1.3, and naming SSLv2/SSLv3
 * is an error unless removed again.
 */
static int
parse_version(const char *v, int *min, int *max, char *msg, size_t msglen)
{
    char sh[SHOWN_LEN], term[16];
    const char *p = v;
    unsigned enabled = 0;
    int i, lo = -1, hi = -1;

    for (;;) {
        size_t len = strcspn(p, ":");
        size_t start = 0, end = len;
        int negate = 0, proto = -1, all = 0;

        while (start < end && is_space((unsigned char)p[start]))
            start++;
        while (end > start && is_space((unsigned char)p[end - 1]))
            end--;
        if (start < end && p[start] == '!') {
            negate = 1;
            start++;
        }
        if (end - start == 0)
            return msgf(msg, msglen, "empty term in version \"%s\"",
                        shown(v, sh, sizeof(sh)));
        if (end - start < sizeof(term)) {
            lower_copy(term, p + start, end - start);
            if (strcmp(term, "sslv23") == 0 || strcmp(term, "sslv2/3") == 0)
                all = 1;
            else if (strcmp(term, "sslv2") == 0)
                proto = 0;
            else if (strcmp(term, "sslv3") == 0)
                proto = 1;
            else if (strcmp(term, "tlsv1") == 0 ||
                     strcmp(term, "tlsv1.0") == 0 ||
                     strcmp(term, "tlsv1_0") == 0)
                proto = 2;
            else if (strncmp(term, "tlsv1", 5) == 0 &&
                     term[5] >= '1' && term[5] <= '3' && term[6] == '\0')
                proto = 2 + term[5] - '0';
            else if (strncmp(term, "tlsv1", 5) == 0 &&
                     (term[5] == '_' || term[5] == '.') &&
                     term[6] >= '1' && term[6] <= '3' && term[7] == '\0')
                proto = 2 + term[6] - '0';
        }
        if (!all && proto == -1) {
            char t[SHOWN_LEN];
            util_strlcpy(t, p + start, end - start + 1 < sizeof(t) ?
                         end - start + 1 : sizeof(t));
            return msgf(msg, msglen, "unknown protocol \"%s\" in version "
                        "(want SSLv23, TLSv1, TLSv1_1, TLSv1_2 or TLSv1_3, "
                        "each optionally with '!' before it, joined by ':')",
                        t);
        }
        {
            unsigned bits = all ? 0x3cu : 1u << proto;
            enabled = negate ? enabled & ~bits : enabled | bits;
        }
        if (p[len] == '\0')
            break;
        p += len + 1;
    }

    if (enabled & 0x01u)
        return msgf(msg, msglen, "SSLv2 is not supported (version \"%s\")",
                    shown(v, sh, sizeof(sh)));
    if (enabled & 0x02u)
        return msgf(msg, msglen, "SSLv3 is not supported (version \"%s\")",
                    shown(v, sh, sizeof(sh)));
    for (i = PROTO_FIRST_TLS; i < (int)TLSSHIM_NELEMS(protocols); i++) {
        if (enabled & (1u << i)) {
            if (lo == -1)
                lo = i;
            hi = i;
        }
    }
    if (lo == -1)
        return msgf(msg, msglen, "version \"%s\" enables no protocol",
                    shown(v, sh, sizeof(sh)));
    for (i = lo; i <= hi; i++)
        if (!(enabled & (1u << i)))
            return msgf(msg, msglen, "version \"%s\" enables %s and %s but "
                        "not %s: the enabled versions must be contiguous",
                        shown(v, sh, sizeof(sh)), protocols[lo].name,
                        protocols[hi].name, protocols[i].name);
    *min = protocols[lo].version;
    *max = protocols[hi].version;
    return 0;
}

/* One protocol for min_version/max_version. */
static int
parse_one_version(const char *v, int *out)
{
    int min, max;
    char msg[8];

    if (strchr(v, ':') != NULL || strchr(v, '!') != NULL ||
        ascii_ncasecmp(v, "tls", 3) != 0 ||
        parse_version(v, &min, &max, msg, sizeof(msg)) == -1 || min != max)
        return -1;
    *out = min;
    return 0;
}

static int
base64_value(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (is_digit(c))
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Standard base64 with padding; -1 on any junk or if out is too small. */
static int
base64_decode(const char *s, unsigned char *out, size_t outmax,
              size_t *outlen)
{
    size_t len = strlen(s), i, n = 0;

    if (len == 0 || len % 4 != 0)
        return -1;
    for (i = 0; i < len; i += 4) {
        int v[4], j, pad = 0;
        uint32_t group = 0;

        for (j = 0; j < 4; j++) {
            if (s[i + j] == '=' && i + 4 == len && j >= 2) {
                v[j] = 0;
                pad++;
                continue;
            }
            if (pad > 0 || (v[j] = base64_value((unsigned char)s[i + j])) < 0)
                return -1;
        }
        group = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
                (uint32_t)v[2] << 6 | (uint32_t)v[3];
        if (n + 3 - (size_t)pad > outmax)
            return -1;
        out[n++] = (unsigned char)(group >> 16);
        if (pad < 2)
            out[n++] = (unsigned char)(group >> 8);
        if (pad < 1)
            out[n++] = (unsigned char)group;
    }
    *outlen = n;
    return 0;
}

static int
hex_value(int c)
{
    c = to_lower(c);
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* ALGO$HEX; the hex may have ':' between bytes (as openssl x509 prints). */
static int
parse_fingerprint(const char *v, struct policy_fingerprint *fp, char *msg,
                  size_t msglen)
{
    char sh[SHOWN_LEN];
    const char *dollar = strchr(v, '$'), *h;
    const struct fingerprint_algo *algo = NULL;
    size_t algolen, i, n = 0;

    memset(fp, 0, sizeof(*fp));
    if (dollar == NULL)
        return msgf(msg, msglen, "bad fingerprint \"%s\" (want ALGO$HEX, "
                    "e.g. sha256$...)", shown(v, sh, sizeof(sh)));
    algolen = (size_t)(dollar - v);
    if (algolen == 3 && ascii_ncasecmp(v, "md5", 3) == 0)
        return msgf(msg, msglen, "md5 fingerprints are too weak: use "
                    "sha256 (\"%s\")", shown(v, sh, sizeof(sh)));
    for (i = 0; i < TLSSHIM_NELEMS(fingerprint_algos); i++)
        if (strlen(fingerprint_algos[i].name) == algolen &&
            ascii_ncasecmp(v, fingerprint_algos[i].name, algolen) == 0)
            algo = &fingerprint_algos[i];
    if (algo == NULL)
        return msgf(msg, msglen, "unknown fingerprint algorithm in \"%s\" "
                    "(want sha1, sha224, sha256, sha384 or sha512)",
                    shown(v, sh, sizeof(sh)));
    for (h = dollar + 1; *h != '\0';) {
        int hi, lo;

        if (n > 0 && *h == ':')
            h++;
        if ((hi = hex_value((unsigned char)h[0])) < 0 || h[1] == '\0' ||
            (lo = hex_value((unsigned char)h[1])) < 0 || n >= algo->md_len)
            return msgf(msg, msglen, "bad fingerprint \"%s\": want %zu "
                        "bytes of hex for %s", shown(v, sh, sizeof(sh)),
                        algo->md_len, algo->name);
        fp->md[n++] = (unsigned char)(hi << 4 | lo);
        h += 2;
    }
    if (n != algo->md_len)
        return msgf(msg, msglen, "bad fingerprint \"%s\": want %zu bytes of "
                    "hex for %s, got %zu", shown(v, sh, sizeof(sh)),
                    algo->md_len, algo->name, n);
    fp->md_len = n;
    util_strlcpy(fp->algo, algo->name, sizeof(fp->algo));
    if ((fp->text = strdup(v)) == NULL)
        return msgf(msg, msglen, "out of memory");
    return 0;
}

static int
check_pubkey_pin(const char *v, char *msg, size_t msglen)
{
    char sh[SHOWN_LEN];
    unsigned char digest[64];
    size_t n;

    if (ascii_ncasecmp(v, "sha256//", 8) != 0)
        return msgf(msg, msglen, "bad pubkey_pin \"%s\" (want "
                    "sha256//BASE64)", shown(v, sh, sizeof(sh)));
    if (base64_decode(v + 8, digest, sizeof(digest), &n) == -1 || n != 32)
        return msgf(msg, msglen, "bad pubkey_pin \"%s\": want the base64 "
                    "of a 32-byte SHA-256", shown(v, sh, sizeof(sh)));
    return 0;
}

/* ocsp_mode: flags joined by '|'; normalised to canonical order. */
static int
parse_ocsp_mode(const char *v, unsigned *out, char *norm, size_t normlen,
                char *msg, size_t msglen)
{
    char sh[SHOWN_LEN], word[32];
    const char *p = v;
    unsigned flags = 0;
    size_t i, n = 0;

    for (;;) {
        size_t len = strcspn(p, "|"), start = 0, end = len;
        int found = 0;

        while (start < end && is_space((unsigned char)p[start]))
            start++;
        while (end > start && is_space((unsigned char)p[end - 1]))
            end--;
        if (end - start > 0 && end - start < sizeof(word)) {
            lower_copy(word, p + start, end - start);
            for (i = 0; i < TLSSHIM_NELEMS(ocsp_flags); i++) {
                if (strcmp(word, ocsp_flags[i].name) == 0) {
                    flags |= ocsp_flags[i].flag;
                    found = 1;
                }
            }
        }
        if (!found)
            return msgf(msg, msglen, "bad value \"%s\" for ocsp_mode (want "
                        "flags joined by '|': no_staple, try_staple, "
                        "must_staple, fail_hard, full_chain, resolve)",
                        shown(v, sh, sizeof(sh)));
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    if ((flags & POLICY_OCSP_NO_STAPLE) &&
        (flags & (POLICY_OCSP_TRY_STAPLE | POLICY_OCSP_MUST_STAPLE)))
        return msgf(msg, msglen, "ocsp_mode \"%s\": no_staple contradicts "
                    "%s", shown(v, sh, sizeof(sh)),
                    flags & POLICY_OCSP_TRY_STAPLE ? "try_staple" :
                    "must_staple");
    if ((flags & POLICY_OCSP_FULL_CHAIN) && !(flags & POLICY_OCSP_RESOLVE))
        return msgf(msg, msglen, "ocsp_mode \"%s\": full_chain needs "
                    "resolve, since a stapled response covers only the "
                    "leaf certificate", shown(v, sh, sizeof(sh)));
    *out = flags;
    if (norm != NULL) {
        norm[0] = '\0';
        for (i = 0; i < TLSSHIM_NELEMS(ocsp_flags); i++) {
            if (!(flags & ocsp_flags[i].flag))
                continue;
            n += (size_t)snprintf(norm + n, n < normlen ? normlen - n : 0,
                                  "%s%s", n > 0 ? "|" : "",
                                  ocsp_flags[i].name);
        }
    }
    return 0;
}

/* alpn_protocols: a comma-separated list into the wire format. */
static int
parse_alpn(const char *v, unsigned char **wire, size_t *wirelen, char *norm,
           size_t normlen, char *msg, size_t msglen)
{
    char sh[SHOWN_LEN];
    unsigned char *buf;
    const char *p = v;
    size_t n = 0, normn = 0, i;
    int rv = -1;

    if ((buf = malloc(strlen(v) + 1)) == NULL)
        return msgf(msg, msglen, "out of memory");
    for (;;) {
        size_t len = strcspn(p, ","), start = 0, end = len;

        while (start < end && is_space((unsigned char)p[start]))
            start++;
        while (end > start && is_space((unsigned char)p[end - 1]))
            end--;
        if (end == start || end - start > 255) {
            msgf(msg, msglen, "bad alpn_protocols \"%s\": each protocol is "
                 "1 to 255 bytes, separated by commas",
                 shown(v, sh, sizeof(sh)));
            goto err;
        }
        for (i = start; i < end; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c <= ' ' || c >= 0x7f) {
                msgf(msg, msglen, "bad alpn_protocols \"%s\": a protocol "
                     "has a space or a non-ASCII byte",
                     shown(v, sh, sizeof(sh)));
                goto err;
            }
        }
        /* The wire format is never longer than the text it comes from. */
        buf[n++] = (unsigned char)(end - start);
        memcpy(buf + n, p + start, end - start);
        n += end - start;
        normn += (size_t)snprintf(norm + normn, normn < normlen ?
                                  normlen - normn : 0, "%s%.*s",
                                  normn > 0 ? "," : "", (int)(end - start),
                                  p + start);
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    free(*wire);
    *wire = buf;
    *wirelen = n;
    buf = NULL;
    rv = 0;
err:
    free(buf);
    return rv;
}

/* verifycn_name: a DNS name, an IPv4 address or an IPv6 address. */
static int
check_verify_name(const char *v, char *norm, size_t normlen, char *msg,
                  size_t msglen)
{
    unsigned char addr[16];
    size_t len = strlen(v);
    int wildcard;

    if (parse_ipv4(v, len, addr) == 0 || parse_ipv6(v, len, addr) == 0) {
        util_strlcpy(norm, v, normlen);
        return 0;
    }
    if (len > 2 && v[0] == '[' && v[len - 1] == ']' &&
        parse_ipv6(v + 1, len - 2, addr) == 0) {
        util_strlcpy(norm, v + 1, len - 1 < normlen ? len - 1 : normlen);
        return 0;
    }
    return check_dns_name(v, 0, norm, normlen, &wildcard, msg, msglen);
}

/* hostname (the SNI): a DNS name, or "" for none; never an address. */
static int
check_sni_name(const char *v, char *norm, size_t normlen, char *msg,
               size_t msglen)
{
    char sh[SHOWN_LEN];
    unsigned char addr[16];
    size_t len = strlen(v);
    int wildcard;

    if (len == 0) {
        norm[0] = '\0';
        return 0;
    }
    if (parse_ipv4(v, len, addr) == 0 || strchr(v, ':') != NULL)
        return msgf(msg, msglen, "hostname \"%s\" is an IP address, which "
                    "SNI cannot carry (use \"\" for no SNI)",
                    shown(v, sh, sizeof(sh)));
    return check_dns_name(v, 0, norm, normlen, &wildcard, msg, msglen);
}

/* redirect: HOST:PORT or :PORT, IPv6 in brackets, one port. */
static int
check_redirect(const char *v, char *msg, size_t msglen)
{
    char sh[SHOWN_LEN], host[MAX_PATTERN + 1], name[MAX_DNS_NAME + 1];
    unsigned char addr[16];
    const char *port;
    size_t hostlen;
    unsigned portnum;
    int wildcard;

    if (strlen(v) > MAX_PATTERN)
        return msgf(msg, msglen, "redirect \"%s\" is too long",
                    shown(v, sh, sizeof(sh)));
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL || close[1] != ':' ||
            parse_ipv6(v + 1, (size_t)(close - v - 1), addr) == -1)
            return msgf(msg, msglen, "bad redirect \"%s\" (want HOST:PORT, "
                        "[IPv6]:PORT or :PORT)", shown(v, sh, sizeof(sh)));
        port = close + 2;
    } else {
        const char *colon = strrchr(v, ':');
        if (colon == NULL)
            return msgf(msg, msglen, "redirect \"%s\" needs a port (want "
                        "HOST:PORT or :PORT)", shown(v, sh, sizeof(sh)));
        if (strchr(v, ':') != colon)
            return msgf(msg, msglen, "IPv6 addresses need brackets in "
                        "redirect \"%s\" (want [ADDR]:PORT)",
                        shown(v, sh, sizeof(sh)));
        hostlen = (size_t)(colon - v);
        memcpy(host, v, hostlen);
        host[hostlen] = '\0';
        port = colon + 1;
        if (hostlen > 0 && strspn(host, "0123456789.") == hostlen) {
            if (parse_ipv4(host, hostlen, addr) == -1)
                return msgf(msg, msglen, "bad IPv4 address in redirect "
                            "\"%s\"", shown(v, sh, sizeof(sh)));
        } else if (hostlen > 0 &&
                   check_dns_name(host, 0, name, sizeof(name), &wildcard,
                                  msg, msglen) == -1) {
            return -1;
        }
    }
    if (parse_port_number(port, strlen(port), &portnum) == -1)
        return msgf(msg, msglen, "bad port in redirect \"%s\" (want one "
                    "port, 1 to 65535)", shown(v, sh, sizeof(sh)));
    return 0;
}

/* OpenSSL cipher, ciphersuite and group strings: checked for the
 * characters they use; OpenSSL itself judges the names later. */
static int
check_openssl_string(const char *key, const char *v, char *msg,
                     size_t msglen)
{
    char sh[SHOWN_LEN];
    size_t i;

    if (strlen(v) > 2048)
        return msgf(msg, msglen, "value of %s is too long", key);
    for (i = 0; v[i] != '\0'; i++) {
        if (!is_alnum((unsigned char)v[i]) &&
            strchr(":+!-@=_.,/", v[i]) == NULL)
            return msgf(msg, msglen, "bad value \"%s\" for %s (an OpenSSL "
                        "list such as ECDHE+AESGCM:!aNULL)",
                        shown(v, sh, sizeof(sh)), key);
    }
    return 0;
}

static int
check_path(const char *key, const char *v, char *msg, size_t msglen)
{
    if (strlen(v) >= PATH_MAX)
        return msgf(msg, msglen, "path of %s is longer than %d bytes", key,
                    PATH_MAX - 1);
    return 0;
}

static int
one_of(const char *v, const char *const *list, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (ascii_casecmp(v, list[i]) == 0)
            return (int)i;
    return -1;
}

/* sni_cert: NAME CERT_FILE KEY_FILE, separated by white space. */
static int
parse_sni_cert(const char *v, struct policy_rule *r, char *norm,
               size_t normlen, char *msg, size_t msglen)
{
    char sh[SHOWN_LEN], host[MAX_DNS_NAME + 1];
    char *parts[3] = { NULL, NULL, NULL };
    struct policy_sni_cert sc = { NULL, NULL, NULL };
    const char *p = v;
    int nparts = 0, wildcard, rv = -1;

    while (*p != '\0') {
        size_t len;

        while (is_space((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        len = strcspn(p, " \t");
        if (nparts == 3) {
            nparts++;
            break;
        }
        if ((parts[nparts++] = strndup(p, len)) == NULL) {
            msgf(msg, msglen, "out of memory");
            goto err;
        }
        p += len;
    }
    if (nparts != 3) {
        msgf(msg, msglen, "bad sni_cert \"%s\" (want NAME CERT_FILE "
             "KEY_FILE)", shown(v, sh, sizeof(sh)));
        goto err;
    }
    if (check_dns_name(parts[0], 1, host, sizeof(host), &wildcard, msg,
                       msglen) == -1 ||
        check_path("sni_cert", parts[1], msg, msglen) == -1 ||
        check_path("sni_cert", parts[2], msg, msglen) == -1)
        goto err;
    snprintf(norm, normlen, "%s%s %s %s", wildcard ? "*." : "", host,
             parts[1], parts[2]);
    if ((sc.name = malloc(strlen(host) + 3)) == NULL ||
        grow((void **)&r->sni_certs, r->nsni_certs, sizeof(sc)) == -1) {
        msgf(msg, msglen, "out of memory");
        goto err;
    }
    snprintf(sc.name, strlen(host) + 3, "%s%s", wildcard ? "*." : "", host);
    sc.cert_file = parts[1];
    sc.key_file = parts[2];
    parts[1] = parts[2] = NULL;
    r->sni_certs[r->nsni_certs++] = sc;
    sc.name = NULL;
    rv = 0;
err:
    free(sc.name);
    free(parts[0]);
    free(parts[1]);
    free(parts[2]);
    return rv;
}

static int
bad_value(char *msg, size_t msglen, const char *v, const char *key,
          const char *want)
{
    char sh[SHOWN_LEN];

    return msgf(msg, msglen, "bad value \"%s\" for %s (want %s)",
                shown(v, sh, sizeof(sh)), key, want);
}

static int
apply_int(const char *v, const char *key, long min, long max, int *field,
          char *norm, size_t normlen, char *msg, size_t msglen)
{
    char want[64];
    long n;

    if (parse_number(v, min, max, &n) == -1) {
        snprintf(want, sizeof(want), "a number from %ld to %ld", min, max);
        return bad_value(msg, msglen, v, key, want);
    }
    *field = (int)n;
    snprintf(norm, normlen, "%ld", n);
    return 0;
}

static int
apply_bool(const char *v, const char *key, int *field, char *norm,
           size_t normlen, char *msg, size_t msglen)
{
    if (parse_bool(v, field) == -1)
        return bad_value(msg, msglen, v, key, "yes or no");
    util_strlcpy(norm, *field ? "yes" : "no", normlen);
    return 0;
}

/*
 * Parse one value of rule key k into r.  Multi-valued keys are applied
 * once per value and append; the others replace.  norm receives the
 * normalised text that --check prints and that the unsupported table
 * compares; msg the reason of an error (without FILE:LINE).
 */
static int
apply_value(struct policy_rule *r, enum policy_key k, const char *v,
            char *norm, size_t normlen, char *msg, size_t msglen)
{
    const char *key = rule_keys[k].name;
    int i;

    util_strlcpy(norm, v, normlen);
    if (*v == '\0' && k != PK_HOSTNAME)
        return msgf(msg, msglen, "empty value for %s", key);

    switch (k) {
    case PK_ACTION:
        if (parse_action(v, &r->action) == -1)
            return bad_value(msg, msglen, v, key,
                             "tls, auto, enforce, plain, deny or audit");
        util_strlcpy(norm, action_names[r->action], normlen);
        return 0;

    case PK_CONNECT:
    case PK_LISTEN: {
        struct policy_pattern pat;

        if (r->npatterns >= MAX_VALUES)
            return msgf(msg, msglen, "more than %d patterns in one rule",
                        MAX_VALUES);
        if (parse_pattern(v, k == PK_LISTEN, &pat, msg, msglen) == -1)
            return -1;
        if (grow((void **)&r->patterns, r->npatterns, sizeof(pat)) == -1) {
            pattern_clear(&pat);
            return msgf(msg, msglen, "out of memory");
        }
        r->patterns[r->npatterns++] = pat;
        format_pattern(&pat, norm, normlen);
        return 0;
    }

    case PK_VERIFY_MODE:
        if (strcmp(v, "0") == 0 || ascii_casecmp(v, "none") == 0)
            r->verify_mode = POLICY_VERIFY_NONE;
        else if (strcmp(v, "1") == 0 || ascii_casecmp(v, "peer") == 0)
            r->verify_mode = POLICY_VERIFY_PEER;
        else if (ascii_casecmp(v, "require") == 0)
            r->verify_mode = POLICY_VERIFY_REQUIRE;
        else
            return bad_value(msg, msglen, v, key, "none, peer or require");
        util_strlcpy(norm, r->verify_mode == POLICY_VERIFY_NONE ? "none" :
                     r->verify_mode == POLICY_VERIFY_PEER ? "peer" :
                     "require", normlen);
        return 0;

    case PK_CA_FILE:
    case PK_CA_PATH: {
        char **field = k == PK_CA_FILE ? &r->ca_file : &r->ca_path;

        if (ascii_casecmp(v, "system") == 0) {
            free(*field);
            *field = NULL;
            util_strlcpy(norm, "system", normlen);
            return 0;
        }
        if (check_path(key, v, msg, msglen) == -1)
            return -1;
        return set_string(field, v, msg, msglen);
    }

    case PK_VERIFYCN_SCHEME:
        if (ascii_casecmp(v, "www") == 0)
            v = "http";
        if ((i = one_of(v, verifycn_schemes,
                        TLSSHIM_NELEMS(verifycn_schemes))) < 0)
            return bad_value(msg, msglen, v, key, "default, http (www), "
                             "rfc2818, smtp, imap, pop3, acap, netconf, "
                             "syslog, snmp, ldap, sip, xmpp, ftp, gist or "
                             "none");
        util_strlcpy(norm, verifycn_schemes[i], normlen);
        return set_string(&r->verifycn_scheme, norm, msg, msglen);

    case PK_VERIFYCN_NAME:
        if (check_verify_name(v, norm, normlen, msg, msglen) == -1)
            return -1;
        return set_string(&r->verifycn_name, norm, msg, msglen);

    case PK_VERIFYCN_PUBLICSUFFIX:
        return apply_bool(v, key, &r->verifycn_publicsuffix, norm, normlen,
                          msg, msglen);

    case PK_FINGERPRINT: {
        struct policy_fingerprint fp;

        if (r->nfingerprints >= MAX_VALUES)
            return msgf(msg, msglen, "more than %d fingerprints in one rule",
                        MAX_VALUES);
        if (parse_fingerprint(v, &fp, msg, msglen) == -1)
            return -1;
        if (grow((void **)&r->fingerprints, r->nfingerprints,
                 sizeof(fp)) == -1) {
            free(fp.text);
            return msgf(msg, msglen, "out of memory");
        }
        r->fingerprints[r->nfingerprints++] = fp;
        return 0;
    }

    case PK_PUBKEY_PIN: {
        char *copy;

        if (r->npubkey_pins >= MAX_VALUES)
            return msgf(msg, msglen, "more than %d pubkey pins in one rule",
                        MAX_VALUES);
        if (check_pubkey_pin(v, msg, msglen) == -1)
            return -1;
        if ((copy = strdup(v)) == NULL ||
            grow((void **)&r->pubkey_pins, r->npubkey_pins,
                 sizeof(char *)) == -1) {
            free(copy);
            return msgf(msg, msglen, "out of memory");
        }
        r->pubkey_pins[r->npubkey_pins++] = copy;
        return 0;
    }

    case PK_CHECK_CRL:
        return apply_bool(v, key, &r->check_crl, norm, normlen, msg, msglen);

    case PK_OCSP_MODE:
        return parse_ocsp_mode(v, &r->ocsp_mode, norm, normlen, msg, msglen);

    case PK_OCSP_TIMEOUT:
        return apply_int(v, key, 1, 300, &r->ocsp_timeout, norm, normlen,
                         msg, msglen);

    case PK_SECURITY_LEVEL:
        return apply_int(v, key, 0, 5, &r->security_level, norm, normlen,
                         msg, msglen);

    case PK_HOSTNAME:
        if (check_sni_name(v, norm, normlen, msg, msglen) == -1)
            return -1;
        return set_string(&r->hostname, norm, msg, msglen);

    case PK_CERT_FILE:
        if (ascii_casecmp(v, "auto") == 0) {
            util_strlcpy(norm, "auto", normlen);
            return set_string(&r->cert_file, "auto", msg, msglen);
        }
        /* FALLTHROUGH */
    case PK_KEY_FILE:
    case PK_PASSWD_FILE:
    case PK_CRL_FILE:
    case PK_CLIENT_CA_FILE:
    case PK_TICKET_KEY_FILE:
    case PK_AUTO_CA_DIR: {
        char **field =
            k == PK_CERT_FILE ? &r->cert_file :
            k == PK_KEY_FILE ? &r->key_file :
            k == PK_PASSWD_FILE ? &r->passwd_file :
            k == PK_CRL_FILE ? &r->crl_file :
            k == PK_CLIENT_CA_FILE ? &r->client_ca_file :
            k == PK_TICKET_KEY_FILE ? &r->ticket_key_file : &r->auto_ca_dir;

        if (check_path(key, v, msg, msglen) == -1)
            return -1;
        return set_string(field, v, msg, msglen);
    }

    case PK_SNI_CERT:
        return parse_sni_cert(v, r, norm, normlen, msg, msglen);

    case PK_VERSION:
        return parse_version(v, &r->min_version, &r->max_version, msg,
                             msglen);

    case PK_MIN_VERSION:
    case PK_MAX_VERSION: {
        int version;

        if (parse_one_version(v, &version) == -1)
            return bad_value(msg, msglen, v, key,
                             "TLSv1, TLSv1_1, TLSv1_2 or TLSv1_3");
        if (k == PK_MIN_VERSION)
            r->min_version = version;
        else
            r->max_version = version;
        util_strlcpy(norm, version_name(version), normlen);
        return 0;
    }

    case PK_CIPHER_LIST:
    case PK_CIPHERSUITES:
    case PK_ECDH_CURVE:
        if (check_openssl_string(key, v, msg, msglen) == -1)
            return -1;
        return set_string(k == PK_CIPHER_LIST ? &r->cipher_list :
                          k == PK_CIPHERSUITES ? &r->ciphersuites :
                          &r->ecdh_curve, v, msg, msglen);

    case PK_HONOR_CIPHER_ORDER:
        return apply_bool(v, key, &r->honor_cipher_order, norm, normlen,
                          msg, msglen);

    case PK_ALPN_PROTOCOLS:
        return parse_alpn(v, &r->alpn_wire, &r->alpn_wire_len, norm, normlen,
                          msg, msglen);

    case PK_SESSION_CACHE_SIZE:
        return apply_int(v, key, 0, 100000, &r->session_cache_size, norm,
                         normlen, msg, msglen);

    case PK_SESSION_KEY:
        if (strlen(v) > 255)
            return msgf(msg, msglen, "session_key is longer than 255 bytes");
        return set_string(&r->session_key, v, msg, msglen);

    case PK_SESSION_CACHE_DIR:
        if (ascii_casecmp(v, "auto") == 0 || ascii_casecmp(v, "off") == 0) {
            util_strlcpy(norm, ascii_casecmp(v, "auto") == 0 ? "auto" : "off",
                         normlen);
            free(r->session_cache_dir);
            r->session_cache_dir = NULL;
            return strcmp(norm, "off") == 0
                       ? 0
                       : set_string(&r->session_cache_dir, "auto", msg,
                                    msglen);
        }
        if (v[0] != '/')
            return bad_value(msg, msglen, v, key,
                             "an absolute directory path, auto or off");
        if (check_path(key, v, msg, msglen) == -1)
            return -1;
        return set_string(&r->session_cache_dir, v, msg, msglen);

    case PK_HANDSHAKE_TIMEOUT:
        return apply_int(v, key, 1, 3600, &r->handshake_timeout, norm,
                         normlen, msg, msglen);

    case PK_STRICT_EOF:
        return apply_bool(v, key, &r->strict_eof, norm, normlen, msg,
                          msglen);

    case PK_STARTTLS:
        if ((i = one_of(v, starttls_protocols,
                        TLSSHIM_NELEMS(starttls_protocols))) < 0)
            return bad_value(msg, msglen, v, key, "smtp, imap, pop3, ftp, "
                             "ldap, xmpp, nntp, postgres or mysql");
        util_strlcpy(norm, starttls_protocols[i], normlen);
        return set_string(&r->starttls, norm, msg, msglen);

    case PK_STARTTLS_REQUIRED:
        return apply_bool(v, key, &r->starttls_required, norm, normlen, msg,
                          msglen);

    case PK_REDIRECT:
        if (check_redirect(v, msg, msglen) == -1)
            return -1;
        return set_string(&r->redirect, v, msg, msglen);

    case PK_KTLS:
        if (ascii_casecmp(v, "auto") == 0) {
            r->ktls = POLICY_KTLS_AUTO;
        } else if (parse_bool(v, &i) == 0) {
            r->ktls = i ? POLICY_KTLS_YES : POLICY_KTLS_NO;
        } else {
            return bad_value(msg, msglen, v, key, "yes, no or auto");
        }
        util_strlcpy(norm, r->ktls == POLICY_KTLS_AUTO ? "auto" :
                     r->ktls == POLICY_KTLS_YES ? "yes" : "no", normlen);
        return 0;

    case PK__COUNT:
        break;
    }
    return msgf(msg, msglen, "internal error: key %d", (int)k);
}

static int
apply_global(struct policy_global *g, enum global_key k, const char *v,
             char *norm, size_t normlen, char *msg, size_t msglen)
{
    static const char *const uncovered[] = { "warn", "refuse", "allow" };
    const char *key = global_keys[k];
    enum policy_action a;
    int i;

    util_strlcpy(norm, v, normlen);
    if (*v == '\0')
        return msgf(msg, msglen, "empty value for %s", key);
    switch (k) {
    case GK_DEFAULT_ACTION:
    case GK_DEFAULT_LISTEN_ACTION:
        if (parse_action(v, &a) == -1 ||
            (a != POLICY_PLAIN && a != POLICY_DENY && a != POLICY_AUDIT))
            return bad_value(msg, msglen, v, key, "plain, deny or audit");
        if (k == GK_DEFAULT_ACTION)
            g->default_action = a;
        else
            g->default_listen_action = a;
        util_strlcpy(norm, action_names[a], normlen);
        return 0;
    case GK_LOG:
        if (check_path(key, v, msg, msglen) == -1)
            return -1;
        return set_string(&g->log, v, msg, msglen);
    case GK_DEBUG:
        return apply_int(v, key, 0, 3, &g->debug, norm, normlen, msg,
                         msglen);
    case GK_REPORT:
        if (check_path(key, v, msg, msglen) == -1)
            return -1;
        return set_string(&g->report, v, msg, msglen);
    case GK_REPORT_OPEN:
        return apply_bool(v, key, &g->report_open, norm, normlen, msg,
                          msglen);
    case GK_KEYLOG:
        return apply_bool(v, key, &g->keylog, norm, normlen, msg, msglen);
    case GK_UNCOVERED:
        if ((i = one_of(v, uncovered, TLSSHIM_NELEMS(uncovered))) < 0)
            return bad_value(msg, msglen, v, key, "refuse, warn or allow");
        g->uncovered = i == 0 ? POLICY_UNCOVERED_WARN :
                       i == 1 ? POLICY_UNCOVERED_REFUSE :
                       POLICY_UNCOVERED_ALLOW;
        util_strlcpy(norm, uncovered[i], normlen);
        return 0;
    case GK__COUNT:
        break;
    }
    return msgf(msg, msglen, "internal error: global key %d", (int)k);
}

/* The refusal of a feature not built yet, or NULL when it is supported. */
static const struct unsupported *
find_unsupported(int global, int key, const char *norm)
{
    size_t i;

    for (i = 0; i < TLSSHIM_NELEMS(unsupported); i++) {
        const struct unsupported *u = &unsupported[i];
        const char *p = norm;

        if (u->global != global || u->key != key)
            continue;
        if (u->value == NULL)
            return u;
        /* A value, or one flag of a "|"-list. */
        for (;;) {
            size_t len = strcspn(p, "|");
            if (len == strlen(u->value) && strncmp(p, u->value, len) == 0)
                return u;
            if (p[len] == '\0')
                break;
            p += len + 1;
        }
    }
    return NULL;
}

static int
unsupported_message(const struct unsupported *u, char *msg, size_t msglen)
{
    const char *key = u->global ? global_keys[u->key] : rule_keys[u->key].name;
    int is_action = u->global ? (u->key == GK_DEFAULT_ACTION ||
                                 u->key == GK_DEFAULT_LISTEN_ACTION) :
                                u->key == PK_ACTION;

    if (u->message != NULL)
        return msgf(msg, msglen, "%s", u->message);
    if (u->value == NULL)
        return msgf(msg, msglen, "key %s is not supported yet", key);
    if (is_action)
        return msgf(msg, msglen, "action %s is not supported yet", u->value);
    return msgf(msg, msglen, "value %s of key %s is not supported yet",
                u->value, key);
}

/* --- the parser ------------------------------------------------------- */

static int fail(struct parser *ps, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "FILE:LINE: message", or "FILE: message" when no line is at fault. */
static int
fail(struct parser *ps, int line, const char *fmt, ...)
{
    char msg[MSG_LEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ps->err == NULL || ps->errlen == 0)
        return -1;
    if (line > 0)
        snprintf(ps->err, ps->errlen, "%s:%d: %s", ps->name, line, msg);
    else
        snprintf(ps->err, ps->errlen, "%s: %s", ps->name, msg);
    return -1;
}

static void
setting_clear(struct setting *s)
{
    size_t i;

    for (i = 0; i < s->nvals; i++) {
        free(s->raw[i]);
        free(s->vals[i]);
    }
    free(s->raw);
    free(s->vals);
    memset(s, 0, sizeof(*s));
}

static int
setting_add(struct setting *s, const char *raw, const char *norm, int line)
{
    char *raw_copy = strdup(raw), *norm_copy = strdup(norm);

    if (raw_copy == NULL || norm_copy == NULL ||
        grow((void **)&s->raw, s->nvals, sizeof(char *)) == -1 ||
        grow((void **)&s->vals, s->nvals, sizeof(char *)) == -1) {
        free(raw_copy);
        free(norm_copy);
        return -1;
    }
    s->raw[s->nvals] = raw_copy;
    s->vals[s->nvals++] = norm_copy;
    if (s->line == 0)
        s->line = line;
    return 0;
}

static void
section_clear(struct section *s)
{
    int k;

    free(s->name);
    for (k = 0; k < PK__COUNT; k++)
        setting_clear(&s->key[k]);
    for (k = 0; k < GK__COUNT; k++)
        setting_clear(&s->gkey[k]);
    rule_clear(&s->own);
}

static int
find_rule_key(const char *name)
{
    int k;

    for (k = 0; k < PK__COUNT; k++)
        if (strcmp(name, rule_keys[k].name) == 0)
            return k;
    return -1;
}

static int
find_global_key(const char *name)
{
    int k;

    for (k = 0; k < GK__COUNT; k++)
        if (strcmp(name, global_keys[k]) == 0)
            return k;
    return -1;
}

static struct section *
current_section(struct parser *ps)
{
    return ps->nsections > 0 ? &ps->sections[ps->nsections - 1] : NULL;
}

static const struct section *
find_section(const struct parser *ps, const char *name)
{
    size_t i;

    for (i = 0; i < ps->nsections; i++)
        if (strcmp(ps->sections[i].name, name) == 0)
            return &ps->sections[i];
    return NULL;
}

/* A rule must say what it matches, when its section ends. */
static int
end_section(struct parser *ps)
{
    struct section *s = current_section(ps);

    if (s == NULL || s->kind != SEC_RULE)
        return 0;
    if (s->key[PK_CONNECT].line == 0 && s->key[PK_LISTEN].line == 0)
        return fail(ps, s->line, "rule [%s] has neither connect nor listen",
                    s->name);
    return 0;
}

static int
parse_header(struct parser *ps, const char *p)
{
    char sh[SHOWN_LEN];
    const char *close = strchr(p, ']'), *after, *start = p + 1;
    const struct section *dup;
    struct section *s;
    size_t len, i;
    enum section_kind kind = SEC_RULE;

    if (close == NULL)
        return fail(ps, ps->line, "missing ']' in section header");
    after = close + 1;
    while (is_space((unsigned char)*after))
        after++;
    if (*after != '\0' && *after != '#' && *after != ';')
        return fail(ps, ps->line, "junk after section header: \"%s\"",
                    shown(after, sh, sizeof(sh)));
    while (start < close && is_space((unsigned char)*start))
        start++;
    len = (size_t)(close - start);
    while (len > 0 && is_space((unsigned char)start[len - 1]))
        len--;
    if (len == 0)
        return fail(ps, ps->line, "empty section name");
    if (len > MAX_SECTION_NAME)
        return fail(ps, ps->line, "section name is longer than %d "
                    "characters", MAX_SECTION_NAME);
    /* Rule names appear in log lines and JSON reports: keep them plain. */
    for (i = 0; i < len; i++) {
        int c = (unsigned char)start[i];
        if (!is_alnum(c) && strchr("-_.:@", c) == NULL)
            return fail(ps, ps->line, "bad section name \"%.*s\" (letters, "
                        "digits and - _ . : @ only)", (int)len, start);
    }
    if (end_section(ps) == -1)
        return -1;

    if (len == 6 && strncmp(start, "global", 6) == 0)
        kind = SEC_GLOBAL;
    else if (len == 8 && strncmp(start, "defaults", 8) == 0)
        kind = SEC_DEFAULTS;
    else if (len == 15 && strncmp(start, "listen-defaults", 15) == 0)
        kind = SEC_LISTEN_DEFAULTS;
    for (i = 0; i < ps->nsections; i++) {
        dup = &ps->sections[i];
        if (strlen(dup->name) == len && strncmp(dup->name, start, len) == 0)
            return fail(ps, ps->line, "duplicate section [%s] (first on line "
                        "%d)", dup->name, dup->line);
    }
    if (kind == SEC_RULE && ps->nrules >= MAX_RULES)
        return fail(ps, ps->line, "too many rules (at most %d)", MAX_RULES);
    if (ps->nsections == ps->cap) {
        size_t cap = ps->cap == 0 ? 8 : ps->cap * 2;
        struct section *n = realloc(ps->sections, cap * sizeof(*n));
        if (n == NULL)
            return fail(ps, ps->line, "out of memory");
        ps->sections = n;
        ps->cap = cap;
    }
    s = &ps->sections[ps->nsections];
    memset(s, 0, sizeof(*s));
    if ((s->name = malloc(len + 1)) == NULL)
        return fail(ps, ps->line, "out of memory");
    memcpy(s->name, start, len);
    s->name[len] = '\0';
    s->line = ps->line;
    s->kind = kind;
    s->own.role = kind == SEC_LISTEN_DEFAULTS ? POLICY_ROLE_SERVER :
                  POLICY_ROLE_CLIENT;
    ps->nsections++;
    if (kind == SEC_RULE)
        ps->nrules++;
    return 0;
}

static int
handle_global_key(struct parser *ps, struct section *s, const char *key,
                  const char *value)
{
    char sh[SHOWN_LEN];
    const struct unsupported *u;
    int k = find_global_key(key);

    if (k < 0) {
        if (find_rule_key(key) >= 0)
            return fail(ps, ps->line, "key %s is a rule setting and cannot "
                        "be in [global] (put it in a rule or in [defaults])",
                        key);
        return fail(ps, ps->line, "unknown key \"%s\" in [global]",
                    shown(key, sh, sizeof(sh)));
    }
    if (s->gkey[k].line != 0)
        return fail(ps, ps->line, "duplicate key %s in [global] (first set "
                    "on line %d)", key, s->gkey[k].line);
    if (apply_global(&ps->global, (enum global_key)k, value, ps->norm,
                     sizeof(ps->norm), ps->msg, sizeof(ps->msg)) == -1)
        return fail(ps, ps->line, "%s", ps->msg);
    if ((u = find_unsupported(1, k, ps->norm)) != NULL) {
        unsupported_message(u, ps->msg, sizeof(ps->msg));
        return fail(ps, ps->line, "%s", ps->msg);
    }
    if (setting_add(&s->gkey[k], value, ps->norm, ps->line) == -1)
        return fail(ps, ps->line, "out of memory");
    return 0;
}

static int
handle_rule_key(struct parser *ps, struct section *s, const char *key,
                const char *value)
{
    char sh[SHOWN_LEN], title[MAX_SECTION_NAME + 3];
    const struct unsupported *u;
    struct setting *set;
    unsigned flags;
    int k = find_rule_key(key);

    section_title(s, title, sizeof(title));
    if (k < 0) {
        if (find_global_key(key) >= 0)
            return fail(ps, ps->line, "key %s belongs in [global], not in %s",
                        key, title);
        return fail(ps, ps->line, "unknown key \"%s\" in %s",
                    shown(key, sh, sizeof(sh)), title);
    }
    flags = rule_keys[k].flags;
    set = &s->key[k];
    if ((flags & KF_RULE_ONLY) && s->kind != SEC_RULE)
        return fail(ps, ps->line, "key %s belongs in a rule, not in %s", key,
                    title);
    if ((flags & KF_SERVER_ONLY) && s->kind == SEC_DEFAULTS)
        return fail(ps, ps->line, "key %s is for listen rules, and [defaults] "
                    "is for connect rules (use [listen-defaults])", key);
    if ((flags & KF_CLIENT_ONLY) && s->kind == SEC_LISTEN_DEFAULTS)
        return fail(ps, ps->line, "key %s is for connect rules, and "
                    "[listen-defaults] is for listen rules (use [defaults])",
                    key);
    if (!(flags & (KF_MULTI | KF_REPEAT)) && set->line != 0)
        return fail(ps, ps->line, "duplicate key %s in %s (first set on line "
                    "%d)", key, title, set->line);
    if ((k == PK_CONNECT && s->key[PK_LISTEN].line != 0) ||
        (k == PK_LISTEN && s->key[PK_CONNECT].line != 0))
        return fail(ps, ps->line, "rule %s has both connect and listen (a "
                    "rule is either a client or a server rule)", title);
    if (k == PK_CONNECT)
        s->own.role = POLICY_ROLE_CLIENT;
    else if (k == PK_LISTEN)
        s->own.role = POLICY_ROLE_SERVER;

    if (flags & KF_MULTI) {
        const char *p = value;
        size_t count = 0;

        for (;;) {
            size_t len;

            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            if (*p == '\0')
                break;
            len = strcspn(p, " \t,");
            memcpy(ps->valbuf, p, len);
            ps->valbuf[len] = '\0';
            p += len;
            if (set->nvals >= MAX_VALUES)
                return fail(ps, ps->line, "too many values for %s in %s (at "
                            "most %d)", key, title, MAX_VALUES);
            if (apply_value(&s->own, (enum policy_key)k, ps->valbuf,
                            ps->norm, sizeof(ps->norm), ps->msg,
                            sizeof(ps->msg)) == -1)
                return fail(ps, ps->line, "%s", ps->msg);
            if (setting_add(set, ps->valbuf, ps->norm, ps->line) == -1)
                return fail(ps, ps->line, "out of memory");
            count++;
        }
        if (count == 0)
            return fail(ps, ps->line, "empty value for %s", key);
        ps->norm[0] = '\0';
    } else {
        if ((flags & KF_REPEAT) && set->nvals >= MAX_VALUES)
            return fail(ps, ps->line, "too many values for %s in %s (at most "
                        "%d)", key, title, MAX_VALUES);
        if (apply_value(&s->own, (enum policy_key)k, value, ps->norm,
                        sizeof(ps->norm), ps->msg, sizeof(ps->msg)) == -1)
            return fail(ps, ps->line, "%s", ps->msg);
        if (setting_add(set, value, ps->norm, ps->line) == -1)
            return fail(ps, ps->line, "out of memory");
    }
    if ((u = find_unsupported(0, k, ps->norm)) != NULL) {
        unsupported_message(u, ps->msg, sizeof(ps->msg));
        return fail(ps, ps->line, "%s", ps->msg);
    }
    return 0;
}

/*
 * The value after '=': double-quoted (with \" and \\ escapes), or bare up
 * to a '#' that follows white space.  A bare ';' is kept, since cipher
 * strings and paths may hold one.  *quoted tells "" from nothing.
 */
static int
parse_value(struct parser *ps, const char *p, char *out, int *quoted)
{
    size_t n = 0;

    *quoted = 0;
    if (*p == '"') {
        *quoted = 1;
        for (p++; *p != '"'; p++) {
            if (*p == '\0')
                return fail(ps, ps->line, "missing closing '\"'");
            if (*p == '\\') {
                p++;
                if (*p != '"' && *p != '\\')
                    return fail(ps, ps->line, "bad escape in quoted value "
                                "(only \\\" and \\\\)");
            }
            out[n++] = *p;
        }
        for (p++; is_space((unsigned char)*p); p++)
            ;
        if (*p != '\0' && *p != '#' && *p != ';')
            return fail(ps, ps->line, "junk after quoted value");
        out[n] = '\0';
        return 0;
    }
    for (; *p != '\0'; p++) {
        /* The caller skipped the white space before the value. */
        if (*p == '#' && (n == 0 || is_space((unsigned char)out[n - 1])))
            break;
        out[n++] = *p;
    }
    while (n > 0 && is_space((unsigned char)out[n - 1]))
        n--;
    out[n] = '\0';
    return 0;
}

static int
parse_assignment(struct parser *ps, const char *p)
{
    char sh[SHOWN_LEN], key[64];
    struct section *s = current_section(ps);
    const char *eq = strchr(p, '=');
    size_t keylen;
    int quoted;

    if (eq == NULL)
        return fail(ps, ps->line, "expected \"key = value\" or \"[section]\", "
                    "got \"%s\"", shown(p, sh, sizeof(sh)));
    keylen = (size_t)(eq - p);
    while (keylen > 0 && is_space((unsigned char)p[keylen - 1]))
        keylen--;
    if (keylen == 0)
        return fail(ps, ps->line, "missing key before '='");
    if (keylen >= sizeof(key) || strcspn(p, " \t") < keylen) {
        char k[SHOWN_LEN];
        util_strlcpy(k, p, keylen + 1 < sizeof(k) ? keylen + 1 : sizeof(k));
        return fail(ps, ps->line, "unknown key \"%s\"", k);
    }
    memcpy(key, p, keylen);
    key[keylen] = '\0';
    if (s == NULL)
        return fail(ps, ps->line, "key %s outside of any section", key);
    for (p = eq + 1; is_space((unsigned char)*p); p++)
        ;
    if (parse_value(ps, p, ps->value, &quoted) == -1)
        return -1;
    if (ps->value[0] == '\0' && !quoted)
        return fail(ps, ps->line, "missing value for %s", key);
    if (s->kind == SEC_GLOBAL)
        return handle_global_key(ps, s, key, ps->value);
    return handle_rule_key(ps, s, key, ps->value);
}

static int
parse_line(struct parser *ps, const char *line)
{
    const char *p = line;

    while (is_space((unsigned char)*p))
        p++;
    if (*p == '\0' || *p == '#' || *p == ';')
        return 0;
    if (*p == '[')
        return parse_header(ps, p);
    return parse_assignment(ps, p);
}

static int
parse_text(struct parser *ps, const char *text, size_t len)
{
    size_t off = 0;

    if (len > MAX_FILE_SIZE)
        return fail(ps, 0, "policy is larger than 1 MiB");
    /* A byte order mark from an editor is not part of the first line. */
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        off = 3;
    while (off < len) {
        const char *start = text + off;
        const char *nl = memchr(start, '\n', len - off);
        size_t linelen = nl != NULL ? (size_t)(nl - start) : len - off;
        size_t i;

        off += linelen + (nl != NULL);
        ps->line++;
        if (linelen > 0 && start[linelen - 1] == '\r')
            linelen--;
        if (linelen > MAX_LINE)
            return fail(ps, ps->line, "line is longer than %d bytes",
                        MAX_LINE);
        for (i = 0; i < linelen; i++) {
            unsigned char c = (unsigned char)start[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return fail(ps, ps->line, "control character (0x%02x) in "
                            "line", c);
        }
        memcpy(ps->linebuf, start, linelen);
        ps->linebuf[linelen] = '\0';
        if (parse_line(ps, ps->linebuf) == -1)
            return -1;
    }
    return end_section(ps);
}

/* --- building the effective rules ------------------------------------- */

/* Built-in defaults of SPEC section 4 that depend on nothing else. */
static void
rule_set_builtin(struct policy_rule *r)
{
    int server = r->role == POLICY_ROLE_SERVER;

    r->action = POLICY_TLS;
    r->verify_mode = server ? POLICY_VERIFY_NONE : POLICY_VERIFY_PEER;
    r->verifycn_publicsuffix = 1;
    r->ocsp_timeout = 5;
    r->security_level = 2;
    r->min_version = TLS1_2_VERSION;
    r->max_version = TLS1_3_VERSION;
    r->honor_cipher_order = 1;
    r->session_cache_size = 64;
    r->handshake_timeout = 30;
    r->strict_eof = 0;
    r->starttls_required = server ? 0 : 1;
    r->ktls = POLICY_KTLS_AUTO;
}

static void
rule_clear(struct policy_rule *r)
{
    size_t i;
    int k;

    free(r->name);
    for (i = 0; i < r->npatterns; i++)
        pattern_clear(&r->patterns[i]);
    free(r->patterns);
    free(r->ca_file);
    free(r->ca_path);
    free(r->verifycn_scheme);
    free(r->verifycn_name);
    for (i = 0; i < r->nfingerprints; i++)
        free(r->fingerprints[i].text);
    free(r->fingerprints);
    for (i = 0; i < r->npubkey_pins; i++)
        free(r->pubkey_pins[i]);
    free(r->pubkey_pins);
    free(r->crl_file);
    free(r->hostname);
    free(r->cert_file);
    free(r->key_file);
    free(r->passwd_file);
    for (i = 0; i < r->nsni_certs; i++) {
        free(r->sni_certs[i].name);
        free(r->sni_certs[i].cert_file);
        free(r->sni_certs[i].key_file);
    }
    free(r->sni_certs);
    free(r->client_ca_file);
    free(r->ticket_key_file);
    free(r->auto_ca_dir);
    free(r->cipher_list);
    free(r->ciphersuites);
    free(r->ecdh_curve);
    free(r->alpn_wire);
    free(r->session_key);
    free(r->session_cache_dir);
    free(r->starttls);
    free(r->redirect);
    /* value[] is const for readers; the rule owns the copies. */
    for (k = 0; k < PK__COUNT; k++)
        free((char *)(uintptr_t)r->value[k]);
    memset(r, 0, sizeof(*r));
}

static char *
join_values(const struct setting *s, const char *sep)
{
    size_t len = 1, seplen = strlen(sep), n = 0, i;
    char *out;

    for (i = 0; i < s->nvals; i++)
        len += strlen(s->vals[i]) + seplen;
    if ((out = malloc(len)) == NULL)
        return NULL;
    for (i = 0; i < s->nvals; i++) {
        size_t vlen = strlen(s->vals[i]);

        if (i > 0) {
            memcpy(out + n, sep, seplen);
            n += seplen;
        }
        memcpy(out + n, s->vals[i], vlen);
        n += vlen;
    }
    out[n] = '\0';
    return out;
}

/*
 * Build the effective rule of section s: each key from s itself, else from
 * defs ([defaults] or [listen-defaults]), else the built-in default.  A
 * multi-valued key (fingerprint, pubkey_pin, sni_cert) set in the rule
 * replaces the defaults' values rather than adding to them, so that a rule
 * can always say exactly which certificates it accepts.
 */
static int
build_rule(struct parser *ps, const struct section *s,
           const struct section *defs, enum policy_role role, int index,
           const char *file, struct policy_rule *r)
{
    int k;

    memset(r, 0, sizeof(*r));
    r->role = role;
    r->index = index;
    r->line = s->line;
    r->file = file;
    if ((r->name = strdup(s->name)) == NULL)
        return fail(ps, s->line, "out of memory");
    rule_set_builtin(r);

    for (k = 0; k < PK__COUNT; k++) {
        const struct section *src = s->key[k].line != 0 ? s :
            defs != NULL && defs->key[k].line != 0 ? defs : NULL;
        const struct setting *set;
        size_t i;

        r->origin[k] = POLICY_ORIGIN_BUILTIN;
        if (src == NULL)
            continue;
        set = &src->key[k];
        for (i = 0; i < set->nvals; i++)
            if (apply_value(r, (enum policy_key)k, set->raw[i], ps->norm,
                            sizeof(ps->norm), ps->msg, sizeof(ps->msg)) == -1)
                return fail(ps, set->line, "%s", ps->msg);
        if ((r->value[k] = join_values(set, k == PK_SNI_CERT ? ", " :
                                       " ")) == NULL)
            return fail(ps, set->line, "out of memory");
        r->origin[k] = src == s ? POLICY_ORIGIN_RULE :
                       POLICY_ORIGIN_DEFAULTS;
        r->value_line[k] = set->line;
    }

    /* Defaults that follow from other settings. */
    if (r->origin[PK_OCSP_MODE] == POLICY_ORIGIN_BUILTIN)
        r->ocsp_mode = r->verify_mode == POLICY_VERIFY_NONE ?
            POLICY_OCSP_NO_STAPLE : POLICY_OCSP_TRY_STAPLE;
    r->ca_system = r->ca_file == NULL && r->ca_path == NULL;
    if (role == POLICY_ROLE_SERVER && r->client_ca_file == NULL &&
        r->ca_file != NULL && (r->client_ca_file = strdup(r->ca_file)) == NULL)
        return fail(ps, s->line, "out of memory");
    return 0;
}

/* The most specific line among settings of r: a line of the rule itself
 * before one of [defaults]; the rule's header when all are built in. */
static int
blame_line(const struct policy_rule *r, enum policy_key a, enum policy_key b)
{
    if (r->origin[a] == POLICY_ORIGIN_RULE)
        return r->value_line[a];
    if (r->origin[b] == POLICY_ORIGIN_RULE)
        return r->value_line[b];
    if (r->value_line[a] != 0)
        return r->value_line[a];
    if (r->value_line[b] != 0)
        return r->value_line[b];
    return r->line;
}

/*
 * Settings that depend on each other or on the rule's role, checked on the
 * effective rule.  is_defaults: r stands for [defaults] or
 * [listen-defaults] alone, which need no pattern or certificate.
 */
static int
check_rule(struct parser *ps, const struct policy_rule *r, int is_defaults)
{
    const char *title = r->name;
    int server = r->role == POLICY_ROLE_SERVER, k, floor_key;

    for (k = 0; k < PK__COUNT; k++) {
        if (r->origin[k] == POLICY_ORIGIN_BUILTIN)
            continue;
        if (!server && (rule_keys[k].flags & KF_SERVER_ONLY))
            return fail(ps, r->value_line[k], "key %s is for listen rules "
                        "only, and [%s] is a connect rule",
                        rule_keys[k].name, title);
        if (server && (rule_keys[k].flags & KF_CLIENT_ONLY))
            return fail(ps, r->value_line[k], "key %s is for connect rules "
                        "only, and [%s] is a listen rule", rule_keys[k].name,
                        title);
    }
    if (!server && r->verify_mode == POLICY_VERIFY_REQUIRE)
        return fail(ps, r->value_line[PK_VERIFY_MODE], "verify_mode = "
                    "require is for listen rules only, and [%s] is a "
                    "connect rule (use peer)", title);
    if (!server && r->cert_file != NULL && strcmp(r->cert_file, "auto") == 0)
        return fail(ps, r->value_line[PK_CERT_FILE], "cert_file = auto is "
                    "for listen rules only, and [%s] is a connect rule",
                    title);
    if (server && (r->action == POLICY_AUTO || r->action == POLICY_ENFORCE))
        return fail(ps, r->value_line[PK_ACTION], "action %s is for connect "
                    "rules only, and [%s] is a listen rule",
                    action_names[r->action], title);
    if (r->min_version > r->max_version)
        return fail(ps, blame_line(r, PK_MIN_VERSION, PK_MAX_VERSION),
                    "the lowest protocol %s is above the highest %s in [%s]",
                    version_name(r->min_version),
                    version_name(r->max_version), title);
    /* OpenSSL 3 refuses TLS 1.0/1.1 above level 0 (SHA-1/MD5 PRF): say so
     * here rather than fail every handshake later. */
    floor_key = r->origin[PK_MIN_VERSION] != POLICY_ORIGIN_BUILTIN ?
        PK_MIN_VERSION : PK_VERSION;
    if (r->min_version < TLS1_2_VERSION && r->security_level > 0)
        return fail(ps, blame_line(r, (enum policy_key)floor_key,
                                   PK_SECURITY_LEVEL),
                    "TLS 1.0/1.1 need security_level = 0 (in [%s], the "
                    "lowest protocol is %s and security_level is %d)", title,
                    version_name(r->min_version), r->security_level);
    /* On listen rules tlsshim offers STARTTLS itself, for the protocols
     * starttls_server.c speaks; starttls_required = yes means nothing
     * without it. */
    if (server && r->starttls != NULL &&
        !stsrv_supported(starttls_proto_of(r->starttls)))
        return fail(ps, r->value_line[PK_STARTTLS], "starttls = %s on listen "
                    "rules is not supported (tlsshim offers STARTTLS to "
                    "clients for smtp, imap and pop3), and [%s] is a listen "
                    "rule", r->starttls, title);
    if (!is_defaults && server && r->starttls_required && r->starttls == NULL)
        return fail(ps, blame_line(r, PK_STARTTLS_REQUIRED, PK_STARTTLS),
                    "starttls_required = yes on a listen rule needs "
                    "starttls (in [%s])", title);
    if (!is_defaults && r->starttls != NULL && r->action != POLICY_TLS)
        return fail(ps, blame_line(r, PK_STARTTLS, PK_ACTION), "starttls "
                    "needs action tls (it is %s in [%s])",
                    action_names[r->action], title);
    /* An XMPP stream has begun by the time its features show no STARTTLS:
     * the program cannot start it afresh in plaintext. */
    if (!server && r->starttls != NULL && strcmp(r->starttls, "xmpp") == 0 &&
        !r->starttls_required)
        return fail(ps, blame_line(r, PK_STARTTLS_REQUIRED, PK_STARTTLS),
                    "starttls_required = no is not possible with starttls = "
                    "xmpp (the XMPP stream has begun when the server's "
                    "features show no STARTTLS) in [%s]", title);
    if (!is_defaults && r->redirect != NULL && r->action != POLICY_TLS &&
        r->action != POLICY_AUTO && r->action != POLICY_ENFORCE)
        return fail(ps, blame_line(r, PK_REDIRECT, PK_ACTION), "redirect "
                    "needs action tls, auto or enforce (it is %s in [%s])",
                    action_names[r->action], title);
    if (r->crl_file != NULL && !r->check_crl)
        return fail(ps, r->value_line[PK_CRL_FILE], "crl_file is only read "
                    "with check_crl = yes, which [%s] does not set", title);
    if (r->key_file != NULL && r->cert_file == NULL)
        return fail(ps, r->value_line[PK_KEY_FILE], "key_file without "
                    "cert_file in [%s]", title);
    if (r->passwd_file != NULL && r->cert_file == NULL)
        return fail(ps, r->value_line[PK_PASSWD_FILE], "passwd_file without "
                    "cert_file in [%s]", title);
    if (!is_defaults && server && r->action == POLICY_TLS &&
        r->cert_file == NULL)
        return fail(ps, r->line, "listen rule [%s] needs cert_file", title);
    if (!is_defaults && server && r->action == POLICY_TLS &&
        strcmp(r->cert_file, "auto") == 0 && r->auto_ca_dir == NULL)
        return fail(ps, r->value_line[PK_CERT_FILE], "cert_file = auto needs "
                    "auto_ca_dir (where the CA that signs it is kept) in [%s]",
                    title);
    if (r->cert_file != NULL && strcmp(r->cert_file, "auto") == 0 &&
        (r->key_file != NULL || r->passwd_file != NULL))
        return fail(ps, blame_line(r, PK_KEY_FILE, PK_PASSWD_FILE),
                    "cert_file = auto makes its own key: key_file and "
                    "passwd_file do not apply in [%s]", title);
    return 0;
}

/* Refuse a file that users other than its owner and root can write. */
static int
writable_by_others(const struct stat *st)
{
    return (st->st_mode & S_IWOTH) ||
           ((st->st_mode & S_IWGRP) && st->st_gid != 0);
}

/* Key and passphrase files named in the policy: checked where they exist
 * now; a missing one is loaded (and judged) later, maybe by root. */
static int
check_secret_file(struct parser *ps, const char *what, const char *path,
                  int line)
{
    char sh[SHOWN_LEN];
    struct stat st;

    if (stat(path, &st) == -1)
        return 0;
    if (writable_by_others(&st))
        return fail(ps, line, "%s %s is writable by others (mode %04o)",
                    what, shown(path, sh, sizeof(sh)),
                    (unsigned)(st.st_mode & 07777));
    if (st.st_mode & S_IROTH)
        return fail(ps, line, "%s %s is readable by every user (mode %04o)",
                    what, shown(path, sh, sizeof(sh)),
                    (unsigned)(st.st_mode & 07777));
    return 0;
}

static int
check_secret_files(struct parser *ps)
{
    size_t i, j;

    for (i = 0; i < ps->nsections; i++) {
        const struct section *s = &ps->sections[i];
        const struct setting *key = &s->key[PK_KEY_FILE];
        const struct setting *pw = &s->key[PK_PASSWD_FILE];
        const struct setting *sni = &s->key[PK_SNI_CERT];
        const struct setting *tk = &s->key[PK_TICKET_KEY_FILE];

        if (key->nvals > 0 &&
            check_secret_file(ps, "key file", key->vals[0], key->line) == -1)
            return -1;
        if (pw->nvals > 0 &&
            check_secret_file(ps, "passphrase file", pw->vals[0],
                              pw->line) == -1)
            return -1;
        if (tk->nvals > 0 &&
            check_secret_file(ps, "ticket key file", tk->vals[0],
                              tk->line) == -1)
            return -1;
        for (j = 0; j < sni->nvals; j++) {
            /* The key is the last of NAME CERT KEY (normalised). */
            const char *sp = strrchr(sni->vals[j], ' ');
            if (check_secret_file(ps, "key file", sp != NULL ? sp + 1 :
                                  sni->vals[j], sni->line) == -1)
                return -1;
        }
    }
    return 0;
}

static void
global_init(struct policy_global *g)
{
    memset(g, 0, sizeof(*g));
    g->default_action = POLICY_PLAIN;
    g->default_listen_action = POLICY_PLAIN;
    g->debug = -1;
    g->uncovered = POLICY_UNCOVERED_WARN;
}

static void
global_clear(struct policy_global *g)
{
    free(g->log);
    free(g->report);
    memset(g, 0, sizeof(*g));
}

static int
build_policy(struct parser *ps, struct policy *p, int check_perms)
{
    const struct section *defs = find_section(ps, "defaults");
    const struct section *ldefs = find_section(ps, "listen-defaults");
    struct policy_rule tmp;
    size_t i;
    int rv;

    /* The defaults sections are checked alone too, so that a mistake in
     * them is reported even before a rule inherits it. */
    if (defs != NULL) {
        rv = build_rule(ps, defs, NULL, POLICY_ROLE_CLIENT, -1, p->file,
                        &tmp);
        if (rv == 0)
            rv = check_rule(ps, &tmp, 1);
        rule_clear(&tmp);
        if (rv == -1)
            return -1;
    }
    if (ldefs != NULL) {
        rv = build_rule(ps, ldefs, NULL, POLICY_ROLE_SERVER, -1, p->file,
                        &tmp);
        if (rv == 0)
            rv = check_rule(ps, &tmp, 1);
        rule_clear(&tmp);
        if (rv == -1)
            return -1;
    }

    if (ps->nrules > 0 &&
        (p->rules = calloc(ps->nrules, sizeof(*p->rules))) == NULL)
        return fail(ps, 0, "out of memory");
    for (i = 0; i < ps->nsections; i++) {
        const struct section *s = &ps->sections[i];
        struct policy_rule *r;
        enum policy_role role;

        if (s->kind != SEC_RULE)
            continue;
        r = &p->rules[p->nrules];
        role = s->key[PK_LISTEN].line != 0 ? POLICY_ROLE_SERVER :
               POLICY_ROLE_CLIENT;
        p->nrules++;
        if (build_rule(ps, s, role == POLICY_ROLE_SERVER ? ldefs : defs,
                       role, (int)p->nrules - 1, p->file, r) == -1 ||
            check_rule(ps, r, 0) == -1)
            return -1;
        if (r->action == POLICY_ENFORCE)
            p->has_enforce = 1;
        if (role == POLICY_ROLE_SERVER)
            p->has_listen = 1;
    }
    if (check_perms && check_secret_files(ps) == -1)
        return -1;
    return 0;
}

static struct policy *
parse_policy(const char *text, size_t len, const char *name, int check_perms,
             char *err, size_t errlen)
{
    struct parser *ps = NULL;
    struct policy *p = NULL, *rv = NULL;
    size_t i;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if ((ps = calloc(1, sizeof(*ps))) == NULL ||
        (p = calloc(1, sizeof(*p))) == NULL ||
        (p->file = strdup(name)) == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: out of memory", name);
        goto err;
    }
    ps->name = name;
    ps->err = err;
    ps->errlen = errlen;
    global_init(&ps->global);
    if (text == NULL) {
        fail(ps, 0, "no policy text");
        goto err;
    }
    if (parse_text(ps, text, len) == -1 ||
        build_policy(ps, p, check_perms) == -1)
        goto err;
    p->global = ps->global;
    global_init(&ps->global);
    rv = p;
    p = NULL;
err:
    policy_free(p);
    if (ps != NULL) {
        for (i = 0; i < ps->nsections; i++)
            section_clear(&ps->sections[i]);
        free(ps->sections);
        global_clear(&ps->global);
        free(ps);
    }
    return rv;
}

struct policy *
policy_parse(const char *text, size_t len, const char *name, char *err,
             size_t errlen)
{
    return parse_policy(text, len, name, 0, err, errlen);
}

struct policy *
policy_load(const char *path, int check_perms, char *err, size_t errlen)
{
    static const char embedded_name[] = "(embedded default)";
    struct policy *p = NULL;
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int fd = -1;

    if (path == NULL) {
        p = parse_policy(policy_default_text, strlen(policy_default_text),
                         embedded_name, 0, err, errlen);
        if (p != NULL)
            p->embedded = 1;
        return p;
    }
    /* O_NONBLOCK: a FIFO must not hang the program's start. */
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) ==
        -1) {
        snprintf(err, errlen, "%s: cannot open policy file: %s", path,
                 strerror(errno));
        goto err;
    }
    if (fstat(fd, &st) == -1) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto err;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: policy file is not a regular file", path);
        goto err;
    }
    if (check_perms && writable_by_others(&st)) {
        snprintf(err, errlen, "%s: policy file is writable by others (mode "
                 "%04o)", path, (unsigned)(st.st_mode & 07777));
        goto err;
    }
    if (st.st_size > MAX_FILE_SIZE) {
        snprintf(err, errlen, "%s: policy file is larger than 1 MiB", path);
        goto err;
    }
    if ((buf = malloc(MAX_FILE_SIZE + 1)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto err;
    }
    /* Read to the end, even if the file grew since fstat. */
    while (len <= MAX_FILE_SIZE) {
        ssize_t n = tlsshim_sys.read(fd, buf + len, MAX_FILE_SIZE + 1 - len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            snprintf(err, errlen, "%s: cannot read policy file: %s", path,
                     strerror(errno));
            goto err;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > MAX_FILE_SIZE) {
        snprintf(err, errlen, "%s: policy file is larger than 1 MiB", path);
        goto err;
    }
    p = parse_policy(buf, len, path, check_perms, err, errlen);
err:
    if (fd != -1)
        tlsshim_sys.close(fd);
    free(buf);
    return p;
}

void
policy_free(struct policy *p)
{
    size_t i;

    if (p == NULL)
        return;
    for (i = 0; i < p->nrules; i++)
        rule_clear(&p->rules[i]);
    free(p->rules);
    global_clear(&p->global);
    free(p->file);
    free(p);
}

/* --- matching --------------------------------------------------------- */

/* A destination or local address, IPv4-mapped IPv6 turned into IPv4. */
struct endpoint {
    int v4;
    unsigned char addr[16];
    unsigned port;
    struct sockaddr_in sin; /* the mapped address as IPv4, for resolve */
    const struct sockaddr *sa;
};

static int
endpoint_init(struct endpoint *e, const struct sockaddr *sa)
{
    memset(e, 0, sizeof(*e));
    if (sa == NULL)
        return -1;
    e->sa = sa;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        e->v4 = 1;
        memcpy(e->addr, &sin->sin_addr, 4);
        e->port = ntohs(sin->sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        e->port = ntohs(sin6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            e->v4 = 1;
            memcpy(e->addr, sin6->sin6_addr.s6_addr + 12, 4);
            e->sin.sin_family = AF_INET;
            e->sin.sin_port = sin6->sin6_port;
            memcpy(&e->sin.sin_addr, e->addr, 4);
            e->sa = (const struct sockaddr *)&e->sin;
        } else {
            memcpy(e->addr, sin6->sin6_addr.s6_addr, 16);
        }
        return 0;
    }
    return -1;
}

static int
prefix_matches(const unsigned char *a, const unsigned char *b, int prefix)
{
    int full = prefix / 8, bits = prefix % 8;

    if (memcmp(a, b, (size_t)full) != 0)
        return 0;
    if (bits == 0)
        return 1;
    return ((a[full] ^ b[full]) & (0xff << (8 - bits)) & 0xff) == 0;
}

static int
port_matches(const struct policy_pattern *pat, unsigned port)
{
    return port >= pat->port_lo && port <= pat->port_hi;
}

static int
address_matches(const struct policy_pattern *pat, const struct endpoint *e)
{
    switch (pat->kind) {
    case PAT_ANY_HOST:
        return 1;
    case PAT_IPV4:
        return e->v4 && prefix_matches(pat->addr, e->addr, pat->prefix);
    case PAT_IPV6:
        return !e->v4 && prefix_matches(pat->addr, e->addr, pat->prefix);
    case PAT_NAME:
        return 0;
    }
    return 0;
}

int
policy_name_matches(const struct policy_pattern *pat, const char *name)
{
    size_t nlen, plen, i;

    if (pat == NULL || pat->kind != PAT_NAME || pat->name == NULL ||
        name == NULL)
        return 0;
    nlen = strlen(name);
    if (nlen > 0 && name[nlen - 1] == '.')
        nlen--;
    plen = strlen(pat->name);
    if (!pat->wildcard)
        return nlen == plen && ascii_ncasecmp(name, pat->name, plen) == 0;
    /* One or more whole labels before ".suffix", never the suffix alone. */
    if (nlen < plen + 2 || name[nlen - plen - 1] != '.' ||
        ascii_ncasecmp(name + nlen - plen, pat->name, plen) != 0)
        return 0;
    if (name[0] == '.')
        return 0;
    for (i = 0; i + 1 < nlen - plen; i++)
        if (name[i] == '.' && name[i + 1] == '.')
            return 0;
    return 1;
}

const struct policy_rule *
policy_match_connect(const struct policy *p, const struct sockaddr *addr,
                     const char *name, policy_resolve_fn resolve,
                     void *resolve_arg, const char **matched_name)
{
    struct endpoint e;
    size_t i, j;

    if (matched_name != NULL)
        *matched_name = NULL;
    if (p == NULL || endpoint_init(&e, addr) == -1)
        return NULL;

    /* Pass 1: addresses and the program's own lookup, no resolution. */
    for (i = 0; i < p->nrules; i++) {
        const struct policy_rule *r = &p->rules[i];

        if (r->role != POLICY_ROLE_CLIENT)
            continue;
        for (j = 0; j < r->npatterns; j++) {
            const struct policy_pattern *pat = &r->patterns[j];

            if (!port_matches(pat, e.port))
                continue;
            if (pat->kind == PAT_NAME ? policy_name_matches(pat, name) :
                address_matches(pat, &e)) {
                /* Any host matches every name: the program's lookup then
                 * names the peer; an address pattern names none. */
                if (matched_name != NULL)
                    *matched_name = pat->kind == PAT_NAME ||
                        pat->kind == PAT_ANY_HOST ? name : NULL;
                return r;
            }
        }
    }

    /* Pass 2, only for what nothing matched: the rules' own resolution of
     * names without wildcard. */
    if (resolve == NULL)
        return NULL;
    for (i = 0; i < p->nrules; i++) {
        const struct policy_rule *r = &p->rules[i];

        if (r->role != POLICY_ROLE_CLIENT)
            continue;
        for (j = 0; j < r->npatterns; j++) {
            const struct policy_pattern *pat = &r->patterns[j];

            if (pat->kind != PAT_NAME || pat->wildcard ||
                !port_matches(pat, e.port))
                continue;
            if (resolve(resolve_arg, pat->name, e.sa) == 1) {
                if (matched_name != NULL)
                    *matched_name = pat->name;
                return r;
            }
        }
    }
    return NULL;
}

const struct policy_rule *
policy_match_listen(const struct policy *p, const struct sockaddr *local)
{
    struct endpoint e;
    size_t i, j;

    if (p == NULL || endpoint_init(&e, local) == -1)
        return NULL;
    for (i = 0; i < p->nrules; i++) {
        const struct policy_rule *r = &p->rules[i];

        if (r->role != POLICY_ROLE_SERVER)
            continue;
        for (j = 0; j < r->npatterns; j++)
            if (port_matches(&r->patterns[j], e.port) &&
                address_matches(&r->patterns[j], &e))
                return r;
    }
    return NULL;
}

int
policy_listen_rule_may_match(const struct policy_rule *r,
                             const struct sockaddr *bound)
{
    static const unsigned char zero[16];
    struct endpoint e;
    size_t j;
    int wildcard;

    if (r->role != POLICY_ROLE_SERVER || endpoint_init(&e, bound) == -1)
        return 0;
    /* 0.0.0.0 and :: accept on every local address, of both families for
     * a dual-stack ::, so any pattern may match. */
    wildcard = memcmp(e.addr, zero, e.v4 ? 4 : 16) == 0;
    for (j = 0; j < r->npatterns; j++) {
        const struct policy_pattern *pat = &r->patterns[j];

        if (!port_matches(pat, e.port))
            continue;
        if (wildcard ? pat->kind != PAT_NAME : address_matches(pat, &e))
            return 1;
    }
    return 0;
}

int
policy_listen_may_match(const struct policy *p, const struct sockaddr *bound)
{
    size_t i;

    if (p == NULL)
        return 0;
    for (i = 0; i < p->nrules; i++)
        if (policy_listen_rule_may_match(&p->rules[i], bound))
            return 1;
    return 0;
}

const char *
policy_action_name(enum policy_action a)
{
    if ((size_t)a < TLSSHIM_NELEMS(action_names))
        return action_names[a];
    return "?";
}

const char *
policy_key_name(enum policy_key k)
{
    if ((size_t)k < TLSSHIM_NELEMS(rule_keys))
        return rule_keys[k].name;
    return "?";
}

/* --- writing ---------------------------------------------------------- */

/* connect or listen first, then action, then the rest in table order. */
static enum policy_key
key_in_order(int i)
{
    if (i == 0)
        return PK_CONNECT;
    if (i == 1)
        return PK_LISTEN;
    if (i == 2)
        return PK_ACTION;
    return (enum policy_key)i;
}

static int
applies_to(const struct policy_rule *r, enum policy_key k)
{
    unsigned flags = rule_keys[k].flags;

    if (r->role == POLICY_ROLE_SERVER)
        return k != PK_CONNECT && !(flags & KF_CLIENT_ONLY);
    return k != PK_LISTEN && !(flags & KF_SERVER_ONLY);
}

/*
 * The text of a key's built-in default for rule r, or NULL when the key
 * has no value by default.  *derived tells a value computed from the
 * rule's other settings (min_version from version...).
 */
static const char *
builtin_text(const struct policy_rule *r, enum policy_key k, int *derived)
{
    int server = r->role == POLICY_ROLE_SERVER;

    *derived = 0;
    switch (k) {
    case PK_ACTION:
        return "tls";
    case PK_VERIFY_MODE:
        return server ? "none" : "peer";
    case PK_CA_FILE:
    case PK_CA_PATH:
        return "system";
    case PK_VERIFYCN_PUBLICSUFFIX:
    case PK_HONOR_CIPHER_ORDER:
        return "yes";
    case PK_CHECK_CRL:
    case PK_STRICT_EOF:
        return "no";
    case PK_OCSP_MODE:
        *derived = r->origin[PK_VERIFY_MODE] != POLICY_ORIGIN_BUILTIN;
        return r->verify_mode == POLICY_VERIFY_NONE ? "no_staple" :
               "try_staple";
    case PK_OCSP_TIMEOUT:
        return "5";
    case PK_SECURITY_LEVEL:
        return "2";
    case PK_VERSION:
        return default_version;
    case PK_MIN_VERSION:
    case PK_MAX_VERSION:
        *derived = r->origin[PK_VERSION] != POLICY_ORIGIN_BUILTIN;
        return version_name(k == PK_MIN_VERSION ? r->min_version :
                            r->max_version);
    case PK_SESSION_CACHE_SIZE:
        return "64";
    case PK_HANDSHAKE_TIMEOUT:
        return "30";
    case PK_STARTTLS_REQUIRED:
        return server ? "no" : "yes";
    case PK_KTLS:
        return "auto";
    case PK_SESSION_CACHE_DIR:
        return server ? NULL : "off";
    case PK_CLIENT_CA_FILE:
        *derived = 1;
        return server ? r->ca_file : NULL;
    default:
        return NULL;
    }
}

/* What an unset key without a default means, for --explain. */
static const char *
unset_text(enum policy_key k)
{
    switch (k) {
    case PK_VERIFYCN_SCHEME:
        return "(the starttls protocol's scheme, else default)";
    case PK_VERIFYCN_NAME:
        return "(the name that matched, else the IP address)";
    case PK_HOSTNAME:
        return "(as verifycn_name, never an IP address)";
    case PK_CIPHER_LIST:
    case PK_CIPHERSUITES:
        return "(secure, forward-secret)";
    case PK_ECDH_CURVE:
        return "(OpenSSL's)";
    case PK_SESSION_KEY:
        return "(HOST:PORT)";
    default:
        return "(none)";
    }
}

static int
write_quoted(FILE *out, const char *v)
{
    int n = 0;

    if (*v != '\0' && strpbrk(v, " \t#;\"\\") == NULL)
        return fprintf(out, "%s", v);
    n += fprintf(out, "\"");
    for (; *v != '\0'; v++) {
        if (*v == '"' || *v == '\\')
            n += fprintf(out, "\\");
        n += fprintf(out, "%c", *v);
    }
    n += fprintf(out, "\"");
    return n;
}

/* "key = value", then a comment at column 40 when there is one. */
static void
write_setting(FILE *out, const char *key, const char *value, int multi,
              const char *comment)
{
    int n = fprintf(out, "%s = ", key);

    n += multi ? fprintf(out, "%s", value) : write_quoted(out, value);
    if (comment != NULL)
        fprintf(out, "%*s# %s", n < 39 ? 39 - n : 1, "", comment);
    fprintf(out, "\n");
}

static void
write_rule(FILE *out, const struct policy_rule *r)
{
    const char *defs = r->role == POLICY_ROLE_SERVER ? "[listen-defaults]" :
                       "[defaults]";
    char comment[64];
    size_t j;
    int i;

    fprintf(out, "\n[%s]\n", r->name);
    for (i = 0; i < PK__COUNT; i++) {
        enum policy_key k = key_in_order(i);
        const struct unsupported *u = find_unsupported(0, (int)k, "");
        int multi = rule_keys[k].flags & KF_MULTI, derived;
        const char *v;

        if (!applies_to(r, k))
            continue;
        snprintf(comment, sizeof(comment), "%s line %d", defs,
                 r->value_line[k]);
        if (k == PK_SNI_CERT && r->origin[k] != POLICY_ORIGIN_BUILTIN) {
            /* One line per certificate, as the key is written. */
            for (j = 0; j < r->nsni_certs; j++)
                fprintf(out, "sni_cert = %s %s %s%s%s\n",
                        r->sni_certs[j].name, r->sni_certs[j].cert_file,
                        r->sni_certs[j].key_file,
                        r->origin[k] == POLICY_ORIGIN_DEFAULTS ? "  # " : "",
                        r->origin[k] == POLICY_ORIGIN_DEFAULTS ? comment :
                        "");
            continue;
        }
        if (r->origin[k] != POLICY_ORIGIN_BUILTIN) {
            write_setting(out, rule_keys[k].name, r->value[k], multi,
                          r->origin[k] == POLICY_ORIGIN_DEFAULTS ? comment :
                          NULL);
            continue;
        }
        if ((v = builtin_text(r, k, &derived)) == NULL)
            continue;
        /* A refused key stays a comment, or the output would not parse. */
        if (u != NULL && u->value == NULL) {
            fprintf(out, "# %s = %s  (default; not supported yet)\n",
                    rule_keys[k].name, v);
            continue;
        }
        write_setting(out, rule_keys[k].name, v, 0,
                      derived ? "derived" : "default");
    }
}

void
policy_write(FILE *out, const struct policy *p)
{
    const struct policy_global *g = &p->global;
    static const char *const uncovered[] = {
        [POLICY_UNCOVERED_WARN] = "warn",
        [POLICY_UNCOVERED_REFUSE] = "refuse",
        [POLICY_UNCOVERED_ALLOW] = "allow",
    };
    char debug[16];
    size_t i;

    /* A file name with a newline would end the comment early. */
    fprintf(out, "# Effective policy of %s.\n",
            strpbrk(p->file, "\r\n") == NULL ? p->file : "(the policy)");
    fprintf(out, "# \"default\": built in; \"derived\": from the rule's "
            "other settings;\n# \"[defaults] line N\": inherited.\n");
    fprintf(out, "\n[global]\n");
    write_setting(out, "default_action",
                  policy_action_name(g->default_action), 0, NULL);
    write_setting(out, "default_listen_action",
                  policy_action_name(g->default_listen_action), 0, NULL);
    if (g->log != NULL)
        write_setting(out, "log", g->log, 0, NULL);
    if (g->debug >= 0) {
        snprintf(debug, sizeof(debug), "%d", g->debug);
        write_setting(out, "debug", debug, 0, NULL);
    }
    if (g->report != NULL)
        write_setting(out, "report", g->report, 0, NULL);
    if (g->report_open)
        write_setting(out, "report_open", "yes", 0, NULL);
    write_setting(out, "keylog", g->keylog ? "yes" : "no", 0, NULL);
    write_setting(out, "uncovered", uncovered[g->uncovered], 0, NULL);
    for (i = 0; i < p->nrules; i++)
        write_rule(out, &p->rules[i]);
}

void
policy_explain(FILE *out, const struct policy *p,
               const struct policy_rule *r)
{
    const char *defs = r->role == POLICY_ROLE_SERVER ? "[listen-defaults]" :
                       "[defaults]";
    int i;

    for (i = 0; i < PK__COUNT; i++) {
        enum policy_key k = key_in_order(i);
        const char *v;
        int n, derived = 0;

        if (!applies_to(r, k))
            continue;
        if (r->origin[k] != POLICY_ORIGIN_BUILTIN)
            v = r->value[k];
        else if ((v = builtin_text(r, k, &derived)) == NULL)
            v = unset_text(k);
        n = fprintf(out, "%s = %s", rule_keys[k].name,
                    *v == '\0' ? "\"\"" : v);
        fprintf(out, "%*s", n < 40 ? 40 - n : 1, "");
        if (r->origin[k] == POLICY_ORIGIN_RULE)
            fprintf(out, "(rule %s line %d)\n", r->name, r->value_line[k]);
        else if (r->origin[k] == POLICY_ORIGIN_DEFAULTS)
            fprintf(out, "(%s line %d)\n", defs, r->value_line[k]);
        else if (derived)
            fprintf(out, "(derived from the rule's other settings)\n");
        else
            fprintf(out, "(built-in default)\n");
    }
    (void)p;
}
