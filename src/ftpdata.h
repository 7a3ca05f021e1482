/*
 * The data connections of an FTP session that tlsshim upgraded with
 * starttls = ftp (SPEC section 4).  tlsshim asked for PROT P on the
 * control connection, so the server speaks TLS on every data connection:
 * the control stream is watched for the addresses they will use (the
 * server's 227/229 answers to PASV/EPSV, the program's PORT/EPRT
 * commands), and the matching connection is made a TLS client that
 * resumes the control connection's session (RFC 4217 sections 7 and 10:
 * the FTP client is the TLS client in either mode, and servers such as
 * vsftpd require the session to be reused) and verifies the same name.
 *
 * The parsers are pure; the expectations are a small process-wide table.
 */
#ifndef TLSSHIM_FTPDATA_H
#define TLSSHIM_FTPDATA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "policy.h"
#include "util.h"

#define FTPDATA_LINE_MAX 160
#define FTPDATA_NAME_MAX 256
#define FTPDATA_HEAD 4           /* kept of a long line: the reply code */

/* The lines of one direction of the control stream, as they pass. */
struct ftpdata_lines {
    char line[FTPDATA_LINE_MAX];
    size_t len;
    int overflow;              /* the current line is longer: its head
                                * and its tail are kept */
};

/* Both directions of one control connection. */
struct ftpdata_watch {
    struct ftpdata_lines from_server;   /* 227 and 229 answers */
    struct ftpdata_lines from_program;  /* PORT and EPRT commands */
    int asked;                 /* PASV/EPSV sent, its answer awaited */
    int blind;                 /* a data connection was not found */
};

/* Feed bytes; calls fn(arg, line) for every complete line (no line end,
 * NUL-terminated). */
void ftpdata_feed(struct ftpdata_lines *l, const void *buf, size_t n,
                  void (*fn)(void *arg, const char *line), void *arg);

/*
 * Where a data connection will go.  Each returns 1 and fills ip (16
 * bytes, IPv4 in the last four after ::ffff:, or IPv6), *has_ip and
 * *port; 0 when the line is not such an answer or command.
 *   227 ... (h1,h2,h3,h4,p1,p2)      PASV answer (has_ip)
 *   229 ... (|||port|)               EPSV answer (no ip: the control peer's)
 *   PORT h1,h2,h3,h4,p1,p2           active, IPv4 (has_ip)
 *   EPRT |1|a.b.c.d|port| or |2|v6|port|   active (has_ip)
 */
int ftpdata_parse_reply(const char *line, unsigned char ip[16], int *has_ip,
                        unsigned *port);
int ftpdata_parse_command(const char *line, unsigned char ip[16],
                          int *has_ip, unsigned *port);

/* A data connection expected by one control connection. */
struct ftpdata_expect {
    int active;                /* the program accepts it (PORT/EPRT) */
    unsigned char ip[16];      /* announced address (mapped IPv4) */
    int has_ip;
    unsigned port;
    unsigned char peer_ip[16]; /* the control connection's server */
    const struct policy_rule *rule;
    char verify_name[FTPDATA_NAME_MAX];
    char sni[FTPDATA_NAME_MAX];
    char session_key[FTPDATA_NAME_MAX * 2 + 32];
    int64_t expires_ms;
};

/* Record an expectation: 0, or -1 when the table is full of live ones
 * (none is ever overwritten: the caller refuses blind, ftpdata_blind). */
int ftpdata_expect(const struct ftpdata_expect *e);
/* A control connection to peer_ip asked for a data connection that was
 * not found (a reply not understood, a full table): until on = 0 or
 * expires_ms, a passive connection to peer_ip that no expectation
 * matches makes ftpdata_take answer -1. */
void ftpdata_blind(const unsigned char peer_ip[16], int on,
                   int64_t expires_ms);
/* 1 when any expectation is recorded: the hooks' cheap test. */
int ftpdata_any(void);
/*
 * Take the expectation that a connection matches, if any: passive
 * (active = 0), the program connects to addr; active, the program
 * accepted on addr from peer.  1 with *out filled (and the entry gone),
 * 0 when none matches, -1 when the connection must not be kept plain:
 * active, the port is one an expectation waits on but the local address
 * or the peer is not the expected one (a stranger: refused; the
 * expectation stays for the server's connection); passive, the address
 * is one a 227 answer named that is not the control connection's server
 * (refused unless a rule of its own decides); -2, passive, when none
 * matches but a control connection to that address is blind
 * (ftpdata_blind): refused unless a rule decides.  Passive connections
 * match the control connection's server only.
 */
int ftpdata_take(int active, const struct sockaddr *addr,
                 const struct sockaddr *peer, struct ftpdata_expect *out);

/* The 16-byte form of an address (IPv4 as ::ffff:a.b.c.d); 0 when it is
 * not IPv4 or IPv6. */
int ftpdata_ip16(const struct sockaddr *sa, unsigned char ip[16]);

#endif
