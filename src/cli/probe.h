/*
 * tlsshim --learn --probe: ask one address and port whether it answers
 * TLS, and whether its certificate verifies as a rule with the given
 * settings would verify it.  The probe sends a ClientHello and nothing
 * else: no application data ever leaves it.
 */
#ifndef TLSSHIM_CLI_PROBE_H
#define TLSSHIM_CLI_PROBE_H

#include <stddef.h>
#include <sys/socket.h>

#include "policy.h"

/* Seconds for the TCP connect, for a STARTTLS dialogue, and then for the
 * TLS handshake. */
#define PROBE_CONNECT_TIMEOUT_S 3
#define PROBE_DIALOGUE_TIMEOUT_S 5
#define PROBE_HANDSHAKE_TIMEOUT_S 3

enum probe_verdict {
    PROBE_VERIFIED = 0, /* TLS, and the certificate verifies */
    PROBE_TLS_FAILED,   /* TLS answered, but verification or the
                         * handshake failed */
    PROBE_NOT_TLS,      /* the port answered, but not with TLS */
    PROBE_NO_STARTTLS,  /* STARTTLS not offered, refused, or the dialogue
                         * failed */
    PROBE_UNREACHABLE,  /* no TCP connection */
    PROBE_ERROR,        /* could not probe (a local error) */
};

struct probe_result {
    enum probe_verdict verdict;
    char version[16];  /* PROBE_VERIFIED: "TLSv1.3"... */
    char why[400];     /* what happened, printable ASCII */
};

/*
 * Probe addr (with its port) under rule r's verification settings
 * (trust store, fingerprint, pubkey_pin, CRLs, security level, versions,
 * ciphers, verifycn_scheme/_name, hostname), as the shim would connect:
 * the name verified is r's verifycn_name, else name (the name the program
 * used; may be NULL), else the IP address; SNI is r's hostname, else that
 * name unless it is an IP address.  Client certificates are not sent and
 * OCSP is not consulted.  With r->starttls, the protocol's STARTTLS
 * dialogue (the shim's, starttls.c) comes first: its refusal or failure
 * is PROBE_NO_STARTTLS, and res->why of a handshake after it begins
 * "STARTTLS accepted; ".
 */
void probe_tls(const struct sockaddr *addr, const struct policy_rule *r,
               const char *name, struct probe_result *res);

#endif
