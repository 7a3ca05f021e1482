/*
 * cert_file = auto (SPEC section 4, auto_ca_dir): a certificate made at
 * listen() for the listening address, signed by a CA that lives in
 * auto_ca_dir and is reused across runs, so that a test suite trusts
 * auto_ca_dir/ca.pem once.
 */
#ifndef TLSSHIM_AUTOCERT_H
#define TLSSHIM_AUTOCERT_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <sys/socket.h>

/* Make (or reuse) the CA in dir, make a certificate for the address
 * bound, and install it with its key in ctx.  0, or -1 with err set. */
int autocert_load(SSL_CTX *ctx, OSSL_LIB_CTX *libctx, const char *dir,
                  const struct sockaddr *bound, char *err, size_t errlen);

#endif
