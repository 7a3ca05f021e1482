/*
 * Identity checks on a peer certificate: the host name schemes of
 * IO::Socket::SSL (verifycn_scheme), IP addresses against IP SANs, and
 * fingerprints.  Chain building itself is OpenSSL's.
 */
#ifndef TLSSHIM_VERIFY_H
#define TLSSHIM_VERIFY_H

#include <openssl/x509.h>
#include <stddef.h>

#include "policy.h"

/* 1 if the scheme name is known (SPEC section 4), else 0. */
int verify_scheme_known(const char *scheme);

/*
 * Check identity (a DNS name or an IP address literal) against cert under
 * scheme (NULL: "default").  Returns 1 when it matches, 0 when not.
 */
int verify_identity(X509 *cert, const char *identity, const char *scheme,
                    int publicsuffix);

/* The names a certificate carries (SANs, else CN), for messages. */
void verify_cert_names(X509 *cert, char *buf, size_t len);

/* 1 if the leaf's digest equals one of the fingerprints. */
int verify_fingerprint(X509 *cert, const struct policy_fingerprint *fps,
                       size_t nfps);

#endif
