/*
 * Identity checks on a peer certificate: the host name schemes of
 * IO::Socket::SSL (verifycn_scheme), IP addresses against IP SANs, the
 * public suffix check (libpsl), and fingerprints.  Chain building itself
 * is OpenSSL's.
 */
#ifndef TLSSHIM_VERIFY_H
#define TLSSHIM_VERIFY_H

#include <openssl/x509.h>
#include <stddef.h>

#include "policy.h"
#include "util.h"

/* 1 if the scheme name is known (SPEC section 4, and its RFC aliases). */
int verify_scheme_known(const char *scheme);

/*
 * Check identity (a DNS name, U-labels allowed, or an IP address literal)
 * against cert under scheme (NULL or "": "default"), as IO::Socket::SSL's
 * verify_hostname_of_cert does; publicsuffix refuses wildcards over a
 * public suffix.  Returns 1 when it matches, 0 when not (also for an
 * unknown scheme or an identity that is no name).  Thread-safe; the first
 * wildcard match of the process loads the public suffix list.
 */
int verify_identity(X509 *cert, const char *identity, const char *scheme,
                    int publicsuffix) TLSSHIM_WARN_UNUSED;

/*
 * The names a certificate carries, for messages: its dNSName and IP SANs,
 * else its first CN ("CN=..."), else "no names"; bytes that are not
 * printable ASCII as \xHH, and "..." where buf is too small.
 */
void verify_cert_names(X509 *cert, char *buf, size_t len);

/*
 * pubkey_pin: 1 when the SHA-256 of some SubjectPublicKeyInfo of the
 * verified chain (leaf, intermediate or root) is one of r's pins.  have
 * (may be NULL) gets the chain's pins, for the message.
 */
int verify_pins(STACK_OF(X509) *chain, const struct policy_rule *r,
                char *have, size_t len);

/* 1 if the leaf's digest equals one of the fingerprints. */
int verify_fingerprint(X509 *cert, const struct policy_fingerprint *fps,
                       size_t nfps) TLSSHIM_WARN_UNUSED;

#endif
