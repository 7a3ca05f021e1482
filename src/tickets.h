/*
 * Session ticket keys from a ticket_key_file (SPEC section 4): records of
 * 80 bytes (name 16, HMAC key 32, AES key 32), newest first.  Tickets are
 * issued with the first key and accepted with any; the file is read again
 * when it changes (rotation by prepending), at most once a second.
 */
#ifndef TLSSHIM_TICKETS_H
#define TLSSHIM_TICKETS_H

#include <openssl/evp.h>
#include <stddef.h>

struct tickets;

/* Read the keys; NULL with the reason in err. */
struct tickets *tickets_open(const char *path, char *err, size_t errlen);
/* The body of OpenSSL's ticket key callback (enc 1: issue, 0: accept).
 * Returns as SSL_CTX_set_tlsext_ticket_key_evp_cb wants: 1 ok, 2 accepted
 * with an older key (issue a new ticket), 0 unknown key, -1 error. */
int tickets_crypt(struct tickets *t, OSSL_LIB_CTX *libctx,
                  unsigned char name[16], unsigned char iv[16],
                  EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc);
void tickets_free(struct tickets *t);

#endif
