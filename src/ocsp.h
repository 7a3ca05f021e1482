/*
 * OCSP beyond the staple (SPEC section 4, ocsp_mode): after a handshake,
 * the checks the staple could not settle: must_staple (also when the
 * leaf carries the TLS feature status_request), resolve (ask the
 * responders that the certificates name, the leaf when no staple covered
 * it and, with full_chain, every certificate below the root), and
 * fail_hard.  Queries run on non-blocking sockets of tlsshim's own, made
 * with the real system calls, and are driven step by step by the
 * connection engine, so a slow responder never blocks past ocsp_timeout.
 * Answers are cached per process until their nextUpdate.
 */
#ifndef TLSSHIM_OCSP_H
#define TLSSHIM_OCSP_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

struct ocsp_job;

struct ocsp_result {
    const char *status;  /* good, revoked, unknown, none, soft_fail */
    char error[512];     /* set when the connection must fail */
    char note[512];      /* why a status could not be confirmed (soft) */
};

/* Whether rule r needs anything after the handshake. */
int ocsp_needed(const struct policy_rule *r);

/*
 * Begin.  staple: what the staple said of the leaf ("good", "revoked",
 * "unknown") or NULL for no staple.  Returns 0 when decided (res filled),
 * 1 when queries are under way (*job set; drive with ocsp_continue).
 */
int ocsp_start(const struct policy_rule *r, SSL *ssl, const char *staple,
               struct ocsp_job **job, struct ocsp_result *res);

/* The same for a chain verified elsewhere (leaf first, root last) and the
 * trust store that verified it; client: the peer is a server. */
int ocsp_start_chain(const struct policy_rule *r, STACK_OF(X509) *chain,
                     X509_STORE *store, int client, const char *staple,
                     struct ocsp_job **job, struct ocsp_result *res);

/*
 * Advance without blocking.  Returns 0 when decided (res filled; the job
 * is finished but must still be freed), 1 while waiting: *fd and *events
 * say what for, *deadline_ms until when.
 */
int ocsp_continue(struct ocsp_job *job, struct ocsp_result *res, int *fd,
                  short *events, int64_t *deadline_ms);

/* Drive job to its verdict, waiting in the real poll(): for callers that
 * may block (a program's blocking handshake call), each query bounded by
 * ocsp_timeout.  res is filled; the job must still be freed. */
void ocsp_run(struct ocsp_job *job, struct ocsp_result *res);

void ocsp_job_free(struct ocsp_job *job);

/*
 * A stapled OCSP response (DER, len bytes; NULL or 0: none) about the
 * leaf of chain (verified, leaf first, its issuer second), checked against
 * store.  Returns 1 when it does not fail the connection (*status "good",
 * "unknown", or NULL for no staple or nothing to check), 0 when it does
 * (why in err; *status "revoked" for a revoked leaf).
 */
int ocsp_check_staple(const unsigned char *der, long len,
                      STACK_OF(X509) *chain, X509_STORE *store,
                      const char **status, char *err, size_t errlen);

#endif
