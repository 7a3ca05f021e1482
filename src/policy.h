/*
 * The policy: the INI file of tlsshim.conf(5) parsed once into an immutable
 * structure, and the matchers that pick the rule for a destination or for an
 * accepted connection's local address.  Nothing here touches a socket or
 * OpenSSL; the structure is read without locks once loaded.
 */
#ifndef TLSSHIM_POLICY_H
#define TLSSHIM_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "util.h"

enum policy_action {
    POLICY_TLS = 0,
    POLICY_AUTO,
    POLICY_ENFORCE,
    POLICY_PLAIN,
    POLICY_DENY,
    POLICY_AUDIT,
};

enum policy_role {
    POLICY_ROLE_CLIENT = 0, /* connect = */
    POLICY_ROLE_SERVER,     /* listen = */
};

/* Where an effective setting came from (for --explain). */
enum policy_origin {
    POLICY_ORIGIN_BUILTIN = 0,
    POLICY_ORIGIN_DEFAULTS, /* [defaults] or [listen-defaults] */
    POLICY_ORIGIN_RULE,
};

/* Every rule key of SPEC section 4, plus action/connect/listen. */
enum policy_key {
    PK_ACTION = 0,
    PK_CONNECT,
    PK_LISTEN,
    PK_VERIFY_MODE,
    PK_CA_FILE,
    PK_CA_PATH,
    PK_VERIFYCN_SCHEME,
    PK_VERIFYCN_NAME,
    PK_VERIFYCN_PUBLICSUFFIX,
    PK_FINGERPRINT,
    PK_PUBKEY_PIN,
    PK_CHECK_CRL,
    PK_CRL_FILE,
    PK_OCSP_MODE,
    PK_OCSP_TIMEOUT,
    PK_SECURITY_LEVEL,
    PK_HOSTNAME,
    PK_CERT_FILE,
    PK_KEY_FILE,
    PK_PASSWD_FILE,
    PK_SNI_CERT,
    PK_CLIENT_CA_FILE,
    PK_TICKET_KEY_FILE,
    PK_AUTO_CA_DIR,
    PK_VERSION,
    PK_MIN_VERSION,
    PK_MAX_VERSION,
    PK_CIPHER_LIST,
    PK_CIPHERSUITES,
    PK_ECDH_CURVE,
    PK_HONOR_CIPHER_ORDER,
    PK_ALPN_PROTOCOLS,
    PK_SESSION_CACHE_SIZE,
    PK_SESSION_KEY,
    PK_HANDSHAKE_TIMEOUT,
    PK_STRICT_EOF,
    PK_STARTTLS,
    PK_STARTTLS_REQUIRED,
    PK_REDIRECT,
    PK_KTLS,
    PK_SESSION_CACHE_DIR,
    PK__COUNT
};

/* One HOST:PORT pattern of a connect/listen line. */
struct policy_pattern {
    enum { PAT_ANY_HOST, PAT_IPV4, PAT_IPV6, PAT_NAME } kind;
    unsigned char addr[16]; /* network order; IPv4 in the first 4 bytes */
    int prefix;             /* CIDR prefix length (32/128 for one address) */
    char *name;             /* PAT_NAME: lower case, no trailing dot; for a
                             * wildcard, the part after "*." */
    int wildcard;           /* PAT_NAME: "*.suffix" form */
    uint16_t port_lo, port_hi; /* 0..65535 for any port */
    char *text;             /* the pattern as written, for messages */
};

struct policy_fingerprint {
    char algo[16];               /* "sha256", lower case */
    unsigned char md[64];
    size_t md_len;
    char *text;                  /* as written */
};

struct policy_sni_cert {
    char *name, *cert_file, *key_file;
};

enum policy_verify_mode {
    POLICY_VERIFY_NONE = 0,
    POLICY_VERIFY_PEER,
    POLICY_VERIFY_REQUIRE, /* server rules only */
};

#define POLICY_OCSP_NO_STAPLE   0x01u
#define POLICY_OCSP_TRY_STAPLE  0x02u
#define POLICY_OCSP_MUST_STAPLE 0x04u
#define POLICY_OCSP_FAIL_HARD   0x08u
#define POLICY_OCSP_FULL_CHAIN  0x10u
#define POLICY_OCSP_RESOLVE     0x20u

/*
 * A rule with every setting resolved: its own keys, then [defaults] (or
 * [listen-defaults]), then the built-in default.  Strings are NULL when
 * unset.  Immutable after policy_load().
 */
struct policy_rule {
    char *name;               /* section name */
    const char *file;         /* policy file it came from */
    int line;                 /* line of its [section] header */
    int index;                /* position in file order, from 0 */
    enum policy_role role;
    struct policy_pattern *patterns;
    size_t npatterns;

    enum policy_action action;
    enum policy_verify_mode verify_mode;
    char *ca_file, *ca_path;  /* NULL: "system" (default verify paths) */
    int ca_system;            /* 1 when ca_file and ca_path are both system */
    char *verifycn_scheme;    /* NULL: default for the protocol */
    char *verifycn_name;
    int verifycn_publicsuffix;
    struct policy_fingerprint *fingerprints;
    size_t nfingerprints;
    char **pubkey_pins;       /* "sha256//BASE64" as written */
    size_t npubkey_pins;
    int check_crl;
    char *crl_file;
    unsigned ocsp_mode;       /* POLICY_OCSP_* */
    int ocsp_timeout;         /* seconds */
    int security_level;

    char *hostname;           /* SNI; NULL = derive; "" = no SNI */
    char *cert_file, *key_file, *passwd_file;
    struct policy_sni_cert *sni_certs;
    size_t nsni_certs;
    char *client_ca_file;
    char *ticket_key_file;
    char *auto_ca_dir;
    int min_version, max_version; /* TLS1_VERSION...TLS1_3_VERSION; 0 = none */
    char *cipher_list, *ciphersuites, *ecdh_curve;
    int honor_cipher_order;
    unsigned char *alpn_wire; /* ALPN in wire format (length-prefixed) */
    size_t alpn_wire_len;
    int session_cache_size;
    char *session_key;        /* NULL: HOST:PORT */
    char *session_cache_dir;  /* NULL: off; "auto": $XDG_RUNTIME_DIR/tlsshim */
    int handshake_timeout;    /* seconds */
    int strict_eof;
    char *starttls;           /* protocol name or NULL */
    int starttls_required;
    char *redirect;           /* as written, or NULL */
    enum { POLICY_KTLS_AUTO = 0, POLICY_KTLS_YES, POLICY_KTLS_NO } ktls;

    /* For --explain/--check: the effective text of each key and its origin.
     * value[k] is NULL where the key is unset everywhere (built-in default). */
    const char *value[PK__COUNT];
    enum policy_origin origin[PK__COUNT];
    int value_line[PK__COUNT];
};

struct policy_global {
    enum policy_action default_action;        /* PLAIN, DENY or AUDIT */
    enum policy_action default_listen_action; /* PLAIN, DENY or AUDIT */
    char *log;        /* NULL unless set */
    int debug;        /* -1 unless set */
    char *report;
    int report_open;
    int keylog;
    enum { POLICY_UNCOVERED_WARN = 0, POLICY_UNCOVERED_REFUSE,
           POLICY_UNCOVERED_ALLOW } uncovered;
};

struct policy {
    char *file;              /* path, or "(embedded default)" */
    int embedded;
    struct policy_global global;
    struct policy_rule *rules; /* file order */
    size_t nrules;
    int has_enforce;         /* some rule has action = enforce */
    int has_listen;          /* some rule is a listen rule */
};

/* The embedded default policy of SPEC section 6, as text. */
extern const char policy_default_text[];

/*
 * Load and validate a policy.  path NULL means the embedded default.  On
 * error returns NULL and writes "FILE:LINE: message" (or "FILE: message")
 * into err.  check_perms: refuse files writable by others than owner/root
 * (SPEC section 3).
 */
struct policy *policy_load(const char *path, int check_perms, char *err,
                           size_t errlen) TLSSHIM_WARN_UNUSED;
/* Parse policy text held in memory; name is used in messages. */
struct policy *policy_parse(const char *text, size_t len, const char *name,
                            char *err, size_t errlen) TLSSHIM_WARN_UNUSED;
void policy_free(struct policy *p);

/*
 * Ask whether the host name of a PAT_NAME pattern without wildcard resolves
 * to addr (SPEC section 3, the rule's own resolution).  Returns 1 yes, 0 no.
 */
typedef int (*policy_resolve_fn)(void *arg, const char *host,
                                 const struct sockaddr *addr);

/*
 * The client rule for a destination.  name: the name the program resolved
 * for this address (NULL if none).  resolve: may be NULL (no own
 * resolution).  Returns the first matching rule or NULL.  An IPv4-mapped
 * IPv6 address is matched as IPv4.  *matched_name is set to the name that
 * matched (name or the rule's pattern name) or NULL when an address pattern
 * matched.
 */
const struct policy_rule *policy_match_connect(const struct policy *p,
    const struct sockaddr *addr, const char *name, policy_resolve_fn resolve,
    void *resolve_arg, const char **matched_name);

/* The server rule for an accepted connection's local address. */
const struct policy_rule *policy_match_listen(const struct policy *p,
    const struct sockaddr *local);

/* Whether some listen rule could match a socket bound to addr (which may be
 * a wildcard address): used at listen() to load server keys early. */
int policy_listen_may_match(const struct policy *p,
                            const struct sockaddr *bound);
/* The same for one rule (0 for a connect rule). */
int policy_listen_rule_may_match(const struct policy_rule *r,
                                 const struct sockaddr *bound);

/* Name matching as DNS patterns do: "*.example.com" matches one or more
 * leading labels.  Case-insensitive, trailing dots ignored. */
int policy_name_matches(const struct policy_pattern *pat, const char *name);

const char *policy_action_name(enum policy_action a);
const char *policy_key_name(enum policy_key k);

/* Write the effective rules in policy syntax (tlsshim --check). */
void policy_write(FILE *out, const struct policy *p);
/* Write one rule's effective settings and their origins (--explain). */
void policy_explain(FILE *out, const struct policy *p,
                    const struct policy_rule *r);

#endif
