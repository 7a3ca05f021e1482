/*
 * One SSL_CTX per rule, built at the first connection that needs it and
 * shared by all of them, in tlsshim's own OpenSSL library context so that
 * the program's OpenSSL configuration never touches ours.  The client
 * session cache of each rule lives here too.
 */
#ifndef TLSSHIM_CONTEXT_H
#define TLSSHIM_CONTEXT_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <sys/socket.h>

#include "policy.h"

/* Initialise OpenSSL for tlsshim (once); 0 or -1. */
int context_init(void) TLSSHIM_WARN_UNUSED;
/* The client context of rule r, or NULL with the reason in err. */
SSL_CTX *context_client(const struct policy_rule *r, char *err, size_t len);
/* The server context of rule r for a socket bound to bound (which only
 * matters for cert_file = auto), built on first use: certificates are
 * read here, at listen().  NULL with the reason in err. */
SSL_CTX *context_server(const struct policy_rule *r,
                        const struct sockaddr *bound, char *err, size_t len);
/* keylog = yes: write the session keys of every later context to path
 * (NSS key log format).  0, or -1 with errno. */
int context_set_keylog(const char *path);
/*
 * The peer check of a connection under rule r, on x (initialised with the
 * rule's trust store and the peer's certificates): the leaf fingerprint
 * first (a match accepts the leaf alone, *fp_accepted = 1), then the chain,
 * the key usage (kx_rsa: the handshake's key exchange is RSA encryption),
 * pubkey_pin and, for a client, the host name verify_name under the rule's
 * scheme.  Returns 1 when it passes; 0 with the reason in why and the
 * X509_V_ERR_* code on x.
 */
int context_verify_chain(const struct policy_rule *r, X509_STORE_CTX *x,
                         int kx_rsa, enum policy_role role,
                         const char *verify_name, char *why, size_t whylen,
                         int *fp_accepted);

/* tlsshim's own OpenSSL library context. */
OSSL_LIB_CTX *context_libctx(void);
/* A copy of the cached session for key (the caller's), or NULL. */
SSL_SESSION *context_session_get(const struct policy_rule *r,
                                 const char *key);
/* Keep a copy of sess under key, and in the rule's
 * session_cache_dir if it has one.  Only for verified connections. */
void context_session_put(const struct policy_rule *r, const char *key,
                         SSL_SESSION *sess);
/* The index of tlsshim's connection pointer in SSL ex_data. */
int context_conn_index(void);
/* Drop every context and session (tests). */
void context_free_all(void);

#endif
