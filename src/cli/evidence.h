/*
 * What a connection report (SPEC section 8) shows about plaintext use:
 * the connections that action = audit (a rule's, or default_action's)
 * observed, grouped by destination, with what their first bytes were.
 * tlsshim --learn turns these into proposed rules; tlsshim --check -r
 * warns about them.
 */
#ifndef TLSSHIM_CLI_EVIDENCE_H
#define TLSSHIM_CLI_EVIDENCE_H

#include <stddef.h>
#include <sys/socket.h>

#include "policy.h"
#include "util.h"

/* Addresses and kinds of first bytes kept per destination. */
#define EVIDENCE_MAX_ADDRS 8
#define EVIDENCE_MAX_KINDS 6

/* One (first_bytes, first_detail) pair and how many connections had it. */
struct evidence_kind {
    char proto[16];   /* "http", "redis", "tls", "none"... */
    char detail[96];  /* first_detail, "" when none */
    unsigned count;
};

/*
 * A destination (client side: the name the program used, else the
 * address, and the port) or, on the server side, the accepted connections
 * of one rule on one local port (the report's local; where a report has
 * none, those of one rule).
 */
struct evidence_dest {
    enum policy_role role;
    char name[256];   /* client: the name the program used, or "" */
    unsigned port;    /* client: the destination port; server: the
                       * local port, 0 when the report has no local */
    /* The first address seen (client: connected to, with the port;
     * server: the client's). */
    struct sockaddr_storage first_addr;
    /* The addresses of the connections that carried plaintext. */
    struct sockaddr_storage addrs[EVIDENCE_MAX_ADDRS];
    size_t naddrs;
    int more_addrs;   /* there were more than EVIDENCE_MAX_ADDRS */
    unsigned connections;
    unsigned plaintext;  /* connections whose first bytes were plaintext */
    struct evidence_kind kinds[EVIDENCE_MAX_KINDS];
    size_t nkinds;
    int more_kinds;
    char rule[160];   /* the report's rule, "" for the default action */
    /* server: the local addresses (with the port) that accepted
     * plaintext; none when the report has no local */
    struct sockaddr_storage locals[EVIDENCE_MAX_ADDRS];
    size_t nlocals;
    int more_locals;
    int has_local;    /* server: the report gives local */
};

struct evidence {
    struct evidence_dest *dests;   /* in the order first seen */
    size_t n;
    unsigned long audited;         /* audit lines read */
    unsigned long bad_lines;       /* lines skipped */
};

/*
 * Read the audit lines of the report at path.  Lines that are not
 * connection records are skipped with a warning ("PATH:LINE: ...").
 * Returns 0, or -1 when the file cannot be read (message printed).
 */
int evidence_read(const char *path, struct evidence *ev) TLSSHIM_WARN_UNUSED;
void evidence_free(struct evidence *ev);

/* Whether first bytes of this protocol are plaintext: anything but "tls",
 * "ssh" (encrypted by its own protocol) and "none" (nothing was sent). */
int evidence_is_plaintext(const char *proto);

/* The plaintext kind most connections of d had, or NULL. */
const struct evidence_kind *evidence_main_kind(const struct evidence_dest *d);

/* d's destination as text: "NAME:PORT" or "IP:PORT" ("[v6]:PORT"); for
 * the server side, "accepted connections on 127.0.0.1:PORT, ..." (or
 * "accepted connections" where the report has no local). */
void evidence_dest_text(const struct evidence_dest *d, char *buf, size_t len);

/* The kinds of d as "http (method=GET), redis" into buf. */
void evidence_kinds_text(const struct evidence_dest *d, char *buf,
                         size_t len);

/* The addresses of d (those that carried plaintext, else the first one)
 * as "127.0.0.1, ::1" into buf. */
void evidence_addrs_text(const struct evidence_dest *d, char *buf,
                         size_t len);

/* The local addresses of a server-side d as a listen value:
 * "127.0.0.1:8080 [::1]:8080"; "" when there are none. */
void evidence_locals_text(const struct evidence_dest *d, char *buf,
                          size_t len);

/* Copy s into buf with every byte that is not printable ASCII written as
 * \xNN, so that report text can go into a policy comment or a terminal. */
void evidence_printable(const char *s, size_t slen, char *buf, size_t len);

#endif
