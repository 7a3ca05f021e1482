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
 *
 * The one exception is mysql, whose TLS upgrade sits inside the login
 * handshake: the program must see the server's greeting (it carries the
 * scramble the program's login answers) and the SSLRequest must carry the
 * program's own capability flags (the server fixes the session's from
 * it), so the dialogue pauses between the greeting and the handshake
 * (STARTTLS_LOGIN) until the program has written its login packet, and
 * the connection phase's sequence ids are translated afterwards
 * (struct starttls_seq).
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
    STARTTLS_MYSQL,
};

enum starttls_status {
    STARTTLS_READ,     /* give it more of the server's bytes */
    STARTTLS_WRITE,    /* send out[out_off..out_len), then ask again */
    STARTTLS_UPGRADE,  /* the server said go: run the TLS handshake */
    STARTTLS_DONE,     /* over; show[] is what the program reads first */
    STARTTLS_REFUSED,  /* the server does not offer or refused STARTTLS */
    STARTTLS_FAILED,   /* anything else: broken answer, injected bytes */
    STARTTLS_LOGIN,    /* mysql: the program reads show[] (the server's
                        * greeting) and writes its login packet, which
                        * goes to starttls_login(); then ask again */
};

#define STARTTLS_IN_MAX 16384   /* the longest answer we wait for */
#define STARTTLS_LOGIN_MAX 8192 /* mysql: the longest login packet kept */
#define STARTTLS_OUT_MAX STARTTLS_LOGIN_MAX
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
    /* mysql: the program's login packet (header included), as written */
    unsigned char login[STARTTLS_LOGIN_MAX];
    size_t login_len;
};

/*
 * mysql after the handshake.  Packets carry a sequence id that restarts at
 * 0 with every command.  In the connection phase the program counts from
 * its login packet, which it numbers 1 after the greeting (0), while the
 * server has had the SSLRequest as 1 and the login as 2: ids from the
 * program go up by one and ids from the server down by one, until the
 * program's first packet with id 0 (its first command: the login is over,
 * since a client speaks only after the server's last answer) ends the
 * translation for good.
 */
struct starttls_seqdir {
    unsigned header;           /* header bytes seen of the packet under way */
    size_t length;             /* its payload length, as far as seen */
    size_t left;               /* payload bytes still to pass */
};

struct starttls_seq {
    int active;                /* the connection phase: translate */
    struct starttls_seqdir up, down;
};

/* The protocol of a starttls value; STARTTLS_NONE when it has no dialogue
 * here (NULL, an unknown name). */
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
 * (ftp: PBSZ and PROT, mysql: the program's login) and ends with
 * STARTTLS_DONE. */
void starttls_tls_up(struct starttls *st);

/* mysql, after STARTTLS_LOGIN: the program wrote len bytes.  Takes them up
 * to the end of its login packet and returns how many it took (the rest
 * belongs after the login); starttls_next says what comes next. */
size_t starttls_login(struct starttls *st, const void *buf, size_t len);

/* mysql: the translation starts active, both directions at a packet's
 * first byte. */
void starttls_seq_init(struct starttls_seq *sq);
/* n bytes the program writes, copied from src to dst with their ids
 * translated; dst NULL only advances the state (the bytes a partial
 * write took, translated before from a copy of the state). */
void starttls_seq_up(struct starttls_seq *sq, unsigned char *dst,
                     const unsigned char *src, size_t n);
/* n bytes from the server, translated in place before the program sees
 * them. */
void starttls_seq_down(struct starttls_seq *sq, unsigned char *p, size_t n);

#endif
