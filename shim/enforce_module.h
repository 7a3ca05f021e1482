/*
 * Inside libtlsshim-enforce.so: what the OpenSSL and GnuTLS hooks share
 * (shim/enforce.c).  A hooked handshake call notes its object as the
 * calling thread's current one for the duration of the call; a claim from
 * libtlsshim.so is answered by the library whose current object made the
 * ClientHello.
 */
#ifndef TLSSHIM_ENFORCE_MODULE_H
#define TLSSHIM_ENFORCE_MODULE_H

#include "enforce.h"

enum enforce_kind {
    ENFORCE_OPENSSL = 1,
    ENFORCE_GNUTLS,
};

/* Answer of a library's claim: the object is not the one that made the
 * hello (try the next), or enforce.h's 1/0/-1. */
#define ENFORCE_NOT_MINE (-2)

/* libtlsshim.so's side; NULL until it attaches (then nothing is bound). */
extern const struct tlsshim_enforce_core *enforce_core;

/* The calling thread begins (enter) or ends (leave) a hooked call on obj. */
void enforce_enter(enum enforce_kind kind, void *obj);
void enforce_leave(void);

/* Did obj make the ClientHello with this client random?  Bind it to
 * token when it did. */
int enforce_openssl_claim(void *ssl, const unsigned char random[32],
                          void *token);
int enforce_gnutls_claim(void *session, const unsigned char random[32],
                         void *token);

#endif
