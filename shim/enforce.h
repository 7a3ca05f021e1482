/*
 * action = enforce: the interface between libtlsshim.so (the policy, the
 * connections, verification, the log and the report) and
 * libtlsshim-enforce.so (the hooks on the program's own TLS library).
 * They are two modules so that the hooks never catch tlsshim's own TLS:
 * the enforce module binds only the TLS objects whose ClientHello
 * libtlsshim.so saw leave on an enforce-rule socket, and everything else
 * it hands to the next definition unchanged.
 *
 * The flow: the program's handshake call (SSL_connect, gnutls_handshake,
 * ...) runs under the enforce module's hook, which notes the object as
 * the calling thread's current one.  libtlsshim.so sees the first write
 * on an enforce-rule socket; when it is a ClientHello it asks the module,
 * by the hello's client random, whether a hooked handshake on this thread
 * made it (claim).  Yes: the object is bound to the connection (a token)
 * and its certificate is checked against the rule through check(); no:
 * the TLS comes from a library tlsshim cannot see, and the connection is
 * cut before the hello leaves.
 *
 * Before that, when the program's handshake call starts on a socket (its
 * object holds the descriptor), the module asks libtlsshim.so whether it
 * is an enforce-rule connection whose hello has not left (prepare): then
 * the object's offer is narrowed to what the rule allows (versions,
 * cipher suites, security level) and an OCSP staple is requested, so the
 * hello that leaves already asks only for what the rule accepts.
 *
 * The module exports one data symbol, tlsshim_enforce_module, which
 * libtlsshim.so finds with dlsym(RTLD_DEFAULT); libtlsshim.so exports
 * nothing but libc's names.
 */
#ifndef TLSSHIM_ENFORCE_H
#define TLSSHIM_ENFORCE_H

#include <stddef.h>
#include <openssl/x509.h>

#define TLSSHIM_ENFORCE_ABI 3
#define TLSSHIM_ENFORCE_SYMBOL "tlsshim_enforce_module"
#define TLSSHIM_ENFORCE_LIBRARY "libtlsshim-enforce.so"

/* What the program's TLS library negotiated and received. */
struct tlsshim_enforce_peer {
    X509 *leaf;              /* NULL: no certificate to check now */
    STACK_OF(X509) *chain;   /* the peer's certificates, leaf first, or
                              * NULL */
    int version;             /* TLS1_2_VERSION...; 0: not known yet */
    unsigned suite;          /* IANA cipher suite id; 0: not known yet */
    const char *suite_iana;  /* or its IANA name (TLS_AES_128_GCM_SHA256),
                              * when the id is not known */
    const char *version_name;   /* "TLSv1.3", or NULL */
    const char *cipher_name;    /* OpenSSL's name when known, or NULL */
    int kx_rsa;              /* the key exchange is RSA encryption (the
                              * leaf's key usage must allow it) */
    int resumed;
    const char *library;     /* "OpenSSL" or "GnuTLS", for messages */
};

/* What the rule lets the program's hello offer (prepare). */
struct tlsshim_enforce_offer {
    const char *rule;        /* its name, for messages */
    int min_version;         /* TLS1_VERSION...; 0: no bound */
    int max_version;
    int security_level;      /* OpenSSL's, 0-5 */
    int request_staple;      /* ask for an OCSP staple */
    int need_staple;         /* and the rule cannot do without one */
};

/* libtlsshim.so's side, given to the module by attach(). */
struct tlsshim_enforce_core {
    int abi;
    /*
     * Check what p holds against the token's rule: the certificate chain
     * (trust store, the name SPEC section 3 says, scheme, pins,
     * fingerprints, CRLs), the version and the cipher suite.  0 when it
     * passes; -1 when it fails: the failure is logged and reported, the
     * socket is shut down, and *x509_err gets the X509_V_ERR_* code the
     * program's library should report.
     */
    int (*check)(void *token, const struct tlsshim_enforce_peer *p,
                 int *x509_err);
    /* The program's handshake ended well: log and report it. */
    void (*established)(void *token, const struct tlsshim_enforce_peer *p);
    /* The program's handshake failed on its own (an alert, a closed
     * connection, the program's own verification): why. */
    void (*failed)(void *token, const char *why);
    /* The TLS object is gone: drop the token. */
    void (*release)(void *token);
    /*
     * fd is about to carry the program's ClientHello: when it is an
     * enforce-rule connection whose hello has not left, a token (a
     * reference, given back through release()) and *o filled; else NULL.
     */
    void *(*prepare)(int fd, struct tlsshim_enforce_offer *o);
    /* Whether the token's rule allows the cipher suite with this IANA id
     * (TLS 1.3 suites included). */
    int (*allows_suite)(void *token, unsigned id);
    /* Log (debug level 2) what the module did to the program's offer. */
    void (*note)(void *token, const char *what);
    /* Log (a warning, whatever the debug level) something the module
     * refused the program: early data, a renegotiation. */
    void (*warn)(void *token, const char *what);
    /*
     * OCSP after check() passed: the staple the peer sent (DER; NULL or 0
     * when none), then what ocsp_mode asks (must_staple, resolve, which
     * queries the responders and may block up to ocsp_timeout each,
     * fail_hard).  0 when it passes; -1 when it fails (logged, reported,
     * the socket shut down; *x509_err as for check()).
     */
    int (*ocsp)(void *token, const char *library,
                const unsigned char *staple, size_t len, int *x509_err);
};

/* The module's side. */
struct tlsshim_enforce_module {
    int abi;
    /* Called once, before the first claim. */
    void (*attach)(const struct tlsshim_enforce_core *core);
    /*
     * A ClientHello with this client random is about to be written on an
     * enforce-rule socket by the calling thread.  Returns 1 when a hooked
     * handshake in progress on this thread made it: the object is bound
     * to token (the module then owns one reference and gives it back
     * through release()); 0 when none did; -1 when one did but what it
     * offers already fails the rule (a resumed session whose certificate
     * does not verify): check() has logged why.
     */
    int (*claim)(const unsigned char random[32], void *token);
};

#endif
