/*
 * The STARTTLS dialogues of client rules (SPEC section 4, starttls): one
 * small state machine per protocol behind one interface.  The module does
 * no I/O: the connection engine feeds it what the server sent, sends what
 * it queues (on the socket before the handshake, over TLS after it), and
 * acts on the status it returns.  So it never blocks, and it can be
 * tested with scripted servers.
 *
 * Nothing received before the handshake ever reaches the program: after
 * the handshake the module makes a neutral greeting for the protocols in
 * which the server speaks first, and a byte that follows the server's
 * go-ahead in the same read (an injection attempt: the bytes are not
 * protected by the TLS that follows) fails the dialogue.
 */
#ifndef TLSSHIM_STARTTLS_H
#define TLSSHIM_STARTTLS_H

#include <stddef.h>

#include "util.h"

enum starttls_proto {
    STARTTLS_NONE = 0,
    STARTTLS_SMTP,
    STARTTLS_IMAP,
    STARTTLS_POP3,
    STARTTLS_FTP,
    STARTTLS_LDAP,
    STARTTLS_XMPP,
    STARTTLS_NNTP,
    STARTTLS_POSTGRES,
};

enum starttls_status {
    STARTTLS_READ,     /* give it more of the server's bytes */
    STARTTLS_WRITE,    /* send out[out_off..out_len), then ask again */
    STARTTLS_UPGRADE,  /* the server said go: run the TLS handshake */
    STARTTLS_DONE,     /* over; show[] is what the program reads first */
    STARTTLS_REFUSED,  /* the server does not offer or refused STARTTLS */
    STARTTLS_FAILED,   /* anything else: broken answer, injected bytes */
};

#define STARTTLS_IN_MAX 16384   /* the longest answer we wait for */
#define STARTTLS_OUT_MAX 512
#define STARTTLS_SHOW_MAX 4096  /* the longest greeting kept */

struct starttls {
    enum starttls_proto proto;
    int step;
    int tls;                   /* the handshake is done */
    char name[256];            /* the server's (verified) name */
    char client[80];           /* what EHLO names: our address literal */
    unsigned char in[STARTTLS_IN_MAX];     /* received, not consumed */
    size_t in_len;
    unsigned char out[STARTTLS_OUT_MAX];   /* to send */
    size_t out_len, out_off;
    /* What the program reads first: the server's own greeting while the
     * connection may still go on in plaintext (starttls_required = no),
     * the neutral greeting once TLS is up. */
    unsigned char show[STARTTLS_SHOW_MAX];
    size_t show_len, show_off;
    int offered;               /* a capability list named STARTTLS */
    char why[256];             /* REFUSED or FAILED: what the server did */
};

/* The protocol of a starttls value; STARTTLS_NONE when it has no dialogue
 * here (NULL, mysql). */
enum starttls_proto starttls_proto_of(const char *name);
const char *starttls_proto_name(enum starttls_proto proto);

/* The verifycn_scheme a protocol implies (SPEC section 4), or NULL for
 * the default scheme. */
const char *starttls_scheme(const char *name);

/* 1 when the server speaks first (the program is shown a greeting). */
int starttls_server_first(enum starttls_proto proto);

/*
 * Start a dialogue.  server_name: the name the certificate is verified
 * against (the greeting names it; XMPP's stream header is addressed to
 * it); client_name: the EHLO argument, an address literal such as
 * "[192.0.2.1]".
 */
void starttls_init(struct starttls *st, enum starttls_proto proto,
                   const char *server_name, const char *client_name);

/* The next thing to do, from what was received so far. */
enum starttls_status starttls_next(struct starttls *st) TLSSHIM_WARN_UNUSED;

/* Where to receive into, and how much room there is (0: the answer is
 * too long, and starttls_next fails the dialogue). */
unsigned char *starttls_room(struct starttls *st, size_t *room);
/* n bytes were received into starttls_room. */
void starttls_received(struct starttls *st, size_t n);

/* The handshake succeeded: starttls_next goes on with what follows it
 * (ftp: PBSZ and PROT) and ends with STARTTLS_DONE. */
void starttls_tls_up(struct starttls *st);

#endif
