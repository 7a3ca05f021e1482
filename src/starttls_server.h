/*
 * STARTTLS offered by a plain server (SPEC section 4, starttls on listen
 * rules): tlsshim sits between the client and the program's accepted
 * socket, passes the plaintext dialogue through, adds STARTTLS to the
 * capability lists the program sends (SMTP EHLO, IMAP CAPABILITY, POP3
 * CAPA), answers the client's STARTTLS (STLS) itself, and after the
 * handshake lets the program see the rest of the session over TLS.  With
 * starttls_required, commands other than the protocol's few allowed ones
 * get the protocol's error answer from tlsshim and never reach the
 * program.
 *
 * Like starttls.h, the module does no I/O: the connection engine feeds it
 * the client's bytes and the program's, sends what it says to send, and
 * acts on the status it returns.  Bytes that follow STARTTLS in the same
 * read came before the handshake, unprotected: they are discarded, never
 * delivered as if they had come over TLS (CVE-2011-0411 and its kin).
 */
#ifndef TLSSHIM_STARTTLS_SERVER_H
#define TLSSHIM_STARTTLS_SERVER_H

#include <stddef.h>

#include "starttls.h"
#include "util.h"

enum stsrv_status {
    STSRV_PASS,     /* in[0..pass) is the program's to read */
    STSRV_READ,     /* give it more of the client's bytes */
    STSRV_REPLY,    /* send reply[] to the client, then ask again */
    STSRV_UPGRADE,  /* reply[] is the go-ahead: send it, then handshake */
    STSRV_RELEASE,  /* plaintext from here: in[] is the program's to read
                     * first, then the socket is the program's own */
    STSRV_EOF,      /* the client closed; nothing more for the program */
    STSRV_FAILED,   /* why[] says what the client did */
};

#define STSRV_IN_MAX 8192     /* the longest command line kept */
#define STSRV_HOLD_MAX 1024   /* the longest program line rewritten */
#define STSRV_OUT_MAX 8192
#define STSRV_REPLY_MAX 256

struct stsrv {
    enum starttls_proto proto;
    int required;              /* starttls_required = yes */

    /* the client's bytes */
    unsigned char in[STSRV_IN_MAX];
    size_t in_len;
    size_t pass;               /* in[0..pass) may go to the program */
    int eof;                   /* the client closed its side */
    int cont;                  /* imap: the next line continues a command */
    int drop;                  /* imap: ...a refused one, dropped */
    size_t literal;            /* imap: literal bytes still to come */
    int unanswered;            /* the program read bytes of the client and
                                * has not written since: STARTTLS now
                                * would put its answer inside TLS */
    unsigned pipelined;        /* STARTTLS refused for that */

    /* tlsshim's own answer to the client */
    char reply[STSRV_REPLY_MAX];
    size_t reply_len, reply_off;
    size_t discarded;          /* bytes after STARTTLS, thrown away */
    unsigned refused;          /* commands refused before STARTTLS */
    char refused_verb[24];     /* the last one, for the log */

    /* the program's bytes, rewritten where they list capabilities */
    unsigned char hold[STSRV_HOLD_MAX];   /* a line that may be rewritten */
    size_t hold_len;
    int raw_line;              /* inside a line passed unchanged */
    int cap_reply;             /* smtp, pop3: the program answers EHLO or
                                * CAPA next (1), inside CAPA's list (2) */
    unsigned char out[STSRV_OUT_MAX];
    size_t out_len, out_off;

    char why[256];
};

/* 1 when tlsshim can offer STARTTLS for this protocol on a listen rule. */
int stsrv_supported(enum starttls_proto proto);

void stsrv_init(struct stsrv *st, enum starttls_proto proto, int required);

/* The client's bytes: where to receive into and how much room there is,
 * then how many came (0 with eof set when the client closed). */
unsigned char *stsrv_room(struct stsrv *st, size_t *room);
void stsrv_received(struct stsrv *st, size_t n);

/* What to do next with the client's bytes.  After STSRV_PASS the caller
 * hands in[0..pass) to the program and calls stsrv_consume_pass. */
enum stsrv_status stsrv_next(struct stsrv *st) TLSSHIM_WARN_UNUSED;
/* n bytes of in[0..pass) went to the program. */
void stsrv_consume_pass(struct stsrv *st, size_t n);

/* The program writes buf: take what fits into out[] (rewritten) and
 * return how much was taken.  Call with out[] empty (sent) to be sure
 * of progress. */
size_t stsrv_from_program(struct stsrv *st, const void *buf, size_t len);
/* Before tlsshim answers the client itself or the handshake starts: move
 * a held line to out[] unchanged, so that everything the program wrote
 * goes first. */
void stsrv_flush_hold(struct stsrv *st);

#endif
