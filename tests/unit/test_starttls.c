/*
 * Unit tests of the STARTTLS dialogues (src/starttls.c): scripted servers,
 * one row per case, each protocol's happy path beside the servers that do
 * not offer STARTTLS, refuse it, answer garbage, or send bytes after their
 * go-ahead (the injection that must fail the dialogue).  The rows check
 * every byte the client sends, the final status, what the program would
 * be shown, and the reason given.  mysql rows also carry what the program
 * writes (its login packet), and the sequence id translation of mysql's
 * connection phase has a table of its own.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "starttls.h"
#include "unit.h"

/* A byte string with its length (LDAP and PostgreSQL carry NULs). */
#define B(s) s, sizeof(s) - 1
/* ...from its byte off on */
#define FROM(s, off) (s) + (off), sizeof(s) - 1 - (off)

/* feed TLS_UP: the handshake succeeded (the row's last step before it
 * must end in STARTTLS_UPGRADE). */
static const char TLS_UP[] = "(tls)";

struct step {
    const char *expect;   /* all the client sends before it waits */
    size_t expect_len;
    const char *feed;     /* what the server sends next; NULL: stop */
    size_t feed_len;      /* with PROG: what the program writes instead
                           * (mysql's login: the dialogue must wait for
                           * it, STARTTLS_LOGIN) */
};

#define PROG ((size_t)1 << 40)
/* the program writes s (from its byte off on) */
#define P(s) s, (sizeof(s) - 1) | PROG
#define P_FROM(s, off) (s) + (off), (sizeof(s) - 1 - (off)) | PROG

struct row {
    const char *title;
    enum starttls_proto proto;
    const char *name;     /* the server's name; NULL: mail.test */
    struct step steps[8];
    enum starttls_status want;
    const char *show;     /* what the program reads first; NULL: nothing */
    const char *why;      /* part of the reason; NULL: none given */
};

static const char ldap_req[] =
    "\x30\x1d\x02\x01\x01\x77\x18\x80\x16" "1.3.6.1.4.1.1466.20037";
#define LDAP_REQ ldap_req, sizeof(ldap_req) - 1
#define LDAP_OK "\x30\x0c\x02\x01\x01\x78\x07\x0a\x01\x00\x04\x00\x04\x00"
#define LDAP_OK_LONG \
    "\x30\x81\x0c\x02\x01\x01\x78\x07\x0a\x01\x00\x04\x00\x04\x00"
#define LDAP_NO \
    "\x30\x17\x02\x01\x01\x78\x12\x0a\x01\x02\x04\x00\x04\x0b" "unsupported"
#define LDAP_NOTICE "\x30\x0c\x02\x01\x00\x78\x07\x0a\x01\x34\x04\x00\x04\x00"
#define PG_REQ "\x00\x00\x00\x08\x04\xd2\x16\x2f"
#define XMPP_HDR                                                        \
    "<?xml version='1.0'?><stream:stream to='mail.test' version='1.0' " \
    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
#define XMPP_SRV                                                        \
    "<?xml version='1.0'?><stream:stream from='mail.test' id='1' "      \
    "version='1.0' xmlns='jabber:client' "                              \
    "xmlns:stream='http://etherx.jabber.org/streams'>"
#define XMPP_STARTTLS "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
#define SMTP_GREET "220 mail.test ESMTP ready (TLS by tlsshim)\r\n"

/* A MariaDB 10.11 greeting: protocol 10, version, connection id,
 * scramble, capability flags 0x81fffffe (CLIENT_SSL 0x0800 among them),
 * MariaDB's extended flags, the scramble's second part, the plugin. */
#define MY_GREET_AT(caps_hi) "\x5a\x00\x00\x00" MY_GREET_BODY(caps_hi)
#define MY_GREET_BODY(caps_hi)                                            \
    "\x0a" "5.5.5-10.11.19-MariaDB\x00"                                   \
    "\x01\x00\x00\x00" "abcdefgh" "\x00" "\xfe" caps_hi "\x2d" "\x02\x00" \
    "\xff\x81" "\x15" "\x00\x00\x00\x00\x00\x00" "\x1d\x00\x00\x00"       \
    "ijklmnopqrst\x00" "mysql_native_password\x00"
#define MY_GREET MY_GREET_AT("\xff")
/* ...as the program is shown it: CLIENT_SSL cleared */
#define MY_GREET_SHOWN MY_GREET_AT("\xf7")
/* ...from a server without SSL (or after a man in the middle stripped it) */
#define MY_GREET_NOSSL MY_GREET_AT("\xf7")
/* The first 32 bytes of a login (HandshakeResponse41): capability flags
 * 0x000fa20d (CLIENT_PROTOCOL_41, no CLIENT_SSL), max packet, charset,
 * 19 zero bytes, MariaDB's extended flags. */
#define MY_LOGIN_FIXED(caps1)                                             \
    "\x0d" caps1 "\x0f\x00" "\x00\x00\x00\x01" "\x21"                     \
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"   \
    "\x00\x00" "\x1d\x00\x00\x00"
#define MY_LOGIN_REST                                                     \
    "u\x00" "\x14" "ABCDEFGHIJKLMNOPQRST" "db\x00" "mysql_native_password\x00"
#define MY_LOGIN_AS(seq, caps1)                                           \
    "\x50\x00\x00" seq MY_LOGIN_FIXED(caps1) MY_LOGIN_REST
/* what the program writes, and what goes over TLS */
#define MY_LOGIN MY_LOGIN_AS("\x01", "\xa2")
#define MY_LOGIN_TLS MY_LOGIN_AS("\x02", "\xaa")
/* the SSLRequest: the login's first 32 bytes with CLIENT_SSL, number 1 */
#define MY_SSLREQ "\x20\x00\x00\x01" MY_LOGIN_FIXED("\xaa")

static const struct row rows[] = {
    /* --- SMTP --- */
    { "smtp: offered and accepted", STARTTLS_SMTP, NULL, {
        { B(""), B("220 real.server ESMTP Fake\r\n") },
        { B("EHLO [192.0.2.1]\r\n"),
          B("250-real.server\r\n250-PIPELINING\r\n250 STARTTLS\r\n") },
        { B("STARTTLS\r\n"), B("220 2.0.0 go ahead\r\n") },
        { B(""), TLS_UP, 0 },
        { B(""), NULL, 0 } },
      STARTTLS_DONE, SMTP_GREET, NULL },
    { "smtp: answers split anywhere, keyword in any case", STARTTLS_SMTP,
      NULL, {
        { B(""), B("22") },
        { B(""), B("0-real.server\r\n220 hello\r") },
        { B(""), B("\n") },
        { B("EHLO [192.0.2.1]\r\n"), B("250-real\r\n250-starttls\r") },
        { B(""), B("\n250 SIZE 100\r\n") },
        { B("STARTTLS\r\n"), B("220 go\n") },
        { B(""), NULL, 0 } },
      STARTTLS_UPGRADE, NULL, NULL },
    { "smtp: EHLO answer without STARTTLS", STARTTLS_SMTP, NULL, {
        { B(""), B("220 real.server ESMTP\r\n") },
        { B("EHLO [192.0.2.1]\r\n"),
          B("250-real.server\r\n250-STARTTLSX\r\n250 SIZE\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, "220 real.server ESMTP\r\n",
      "does not offer STARTTLS (not in its EHLO answer)" },
    { "smtp: STARTTLS answered 454", STARTTLS_SMTP, NULL, {
        { B(""), B("220 real.server ESMTP\r\n") },
        { B("EHLO [192.0.2.1]\r\n"), B("250 STARTTLS\r\n") },
        { B("STARTTLS\r\n"), B("454 4.7.0 TLS not available\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, "220 real.server ESMTP\r\n",
      "STARTTLS refused: \"454 4.7.0 TLS not available\"" },
    { "smtp: greeting 554", STARTTLS_SMTP, NULL, {
        { B(""), B("554 no service\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, "554 no service\r\n", "did not greet with 220" },
    { "smtp: EHLO refused", STARTTLS_SMTP, NULL, {
        { B(""), B("220 old\r\n") },
        { B("EHLO [192.0.2.1]\r\n"), B("500 what?\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, "220 old\r\n", "EHLO refused" },
    { "smtp: a response after the go-ahead fails the dialogue",
      STARTTLS_SMTP, NULL, {
        { B(""), B("220 real.server ESMTP\r\n") },
        { B("EHLO [192.0.2.1]\r\n"), B("250 STARTTLS\r\n") },
        { B("STARTTLS\r\n"),
          B("220 go\r\n250-INJECTED\r\n250 AUTH PLAIN\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "30 bytes came after the server's go-ahead" },
    { "smtp: not SMTP at all", STARTTLS_SMTP, NULL, {
        { B(""), B("HTTP/1.1 400 Bad Request\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL,
      "not an SMTP reply: \"HTTP/1.1 400 Bad Request\"" },
    { "ftp: a reply code without a separator", STARTTLS_FTP, NULL, {
        { B(""), B("220x\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "not an FTP reply: \"220x\"" },
    { "nntp: a bare code", STARTTLS_NNTP, NULL, {
        { B(""), B("200\r\n") },
        { B("STARTTLS\r\n"), B("382\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_UPGRADE, NULL, NULL },
    { "smtp: an endless answer", STARTTLS_SMTP, NULL, {
        { B(""), B("220-") },
        { B(""), NULL, 0 } },
      STARTTLS_READ, NULL, NULL },
    { "smtp: an IP address is named in brackets", STARTTLS_SMTP, "192.0.2.7", {
        { B(""), B("220 x\r\n") },
        { B("EHLO [192.0.2.1]\r\n"), B("250 STARTTLS\r\n") },
        { B("STARTTLS\r\n"), B("220 go\r\n") },
        { B(""), TLS_UP, 0 },
        { B(""), NULL, 0 } },
      STARTTLS_DONE, "220 [192.0.2.7] ESMTP ready (TLS by tlsshim)\r\n",
      NULL },
    { "smtp: a name cannot break the greeting's line", STARTTLS_SMTP,
      "a\r\n250 b", {
        { B(""), B("220 x\r\n") },
        { B("EHLO [192.0.2.1]\r\n"), B("250 STARTTLS\r\n") },
        { B("STARTTLS\r\n"), B("220 go\r\n") },
        { B(""), TLS_UP, 0 },
        { B(""), NULL, 0 } },
      STARTTLS_DONE, "220 a250b ESMTP ready (TLS by tlsshim)\r\n", NULL },

    /* --- IMAP --- */
    { "imap: offered and accepted", STARTTLS_IMAP, NULL, {
        { B(""), B("* OK [CAPABILITY IMAP4rev1 STARTTLS] real.server\r\n") },
        { B("T1 CAPABILITY\r\n"),
          B("* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n"
            "T1 OK done\r\n") },
        { B("T2 STARTTLS\r\n"), B("T2 OK begin TLS\r\n") },
        { B(""), TLS_UP, 0 },
        { B(""), NULL, 0 } },
      STARTTLS_DONE, "* OK mail.test ready (TLS by tlsshim)\r\n", NULL },
    { "imap: PREAUTH greeting", STARTTLS_IMAP, NULL, {
        { B(""), B("* PREAUTH logged in\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, "* PREAUTH logged in\r\n", "PREAUTH" },
    { "imap: no STARTTLS capability", STARTTLS_IMAP, NULL, {
        { B(""), B("* OK hi\r\n") },
        { B("T1 CAPABILITY\r\n"), B("* CAPABILITY IMAP4rev1\r\nT1 OK\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, "* OK hi\r\n", "not in its CAPABILITY answer" },
    { "imap: STARTTLS answered NO", STARTTLS_IMAP, NULL, {
        { B(""), B("* OK hi\r\n") },
        { B("T1 CAPABILITY\r\n"), B("* CAPABILITY STARTTLS\r\nT1 OK\r\n") },
        { B("T2 STARTTLS\r\n"), B("T2 NO not now\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, "* OK hi\r\n", "STARTTLS refused: \"T2 NO not now\"" },
    { "imap: an untagged line after the go-ahead fails", STARTTLS_IMAP,
      NULL, {
        { B(""), B("* OK hi\r\n") },
        { B("T1 CAPABILITY\r\n"), B("* CAPABILITY STARTTLS\r\nT1 OK\r\n") },
        { B("T2 STARTTLS\r\n"), B("T2 OK go\r\n* OK [CAPABILITY X]\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "came after the server's go-ahead" },
    { "imap: another tag is no answer", STARTTLS_IMAP, NULL, {
        { B(""), B("* OK hi\r\n") },
        { B("T1 CAPABILITY\r\n"), B("T9 OK\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "not an IMAP answer" },

    /* --- POP3 --- */
    { "pop3: accepted", STARTTLS_POP3, NULL, {
        { B(""), B("+OK real.server POP3 <1.2@real>\r\n") },
        { B("STLS\r\n"), B("+OK begin TLS\r\n") },
        { B(""), TLS_UP, 0 },
        { B(""), NULL, 0 } },
      STARTTLS_DONE, "+OK mail.test ready (TLS by tlsshim)\r\n", NULL },
    { "pop3: refused", STARTTLS_POP3, NULL, {
        { B(""), B("+OK real.server\r\n") },
        { B("STLS\r\n"), B("-ERR unknown command\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, "+OK real.server\r\n", "STLS refused" },
    { "pop3: injected answer", STARTTLS_POP3, NULL, {
        { B(""), B("+OK real.server\r\n") },
        { B("STLS\r\n"), B("+OK begin TLS\r\n+OK logged in\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "15 bytes came after" },
    { "pop3: +OKAY is no answer", STARTTLS_POP3, NULL, {
        { B(""), B("+OKAY\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "not a POP3 answer" },

    /* --- FTP --- */
    { "ftp: AUTH TLS, then PBSZ and PROT over TLS", STARTTLS_FTP, NULL, {
        { B(""), B("120 in a moment\r\n") },
        { B(""), B("220-real.server FTP\r\n banner\r\n220 ready\r\n") },
        { B("AUTH TLS\r\n"), B("234 AUTH TLS ok\r\n") },
        { B(""), TLS_UP, 0 },
        { B("PBSZ 0\r\n"), B("200 PBSZ=0\r\n") },
        { B("PROT P\r\n"), B("200 Protection set to Private\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_DONE, "220 mail.test ready (TLS by tlsshim)\r\n", NULL },
    { "ftp: AUTH TLS refused", STARTTLS_FTP, NULL, {
        { B(""), B("220 ready\r\n") },
        { B("AUTH TLS\r\n"), B("502 not implemented\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, "220 ready\r\n", "AUTH TLS refused" },
    { "ftp: PROT P refused", STARTTLS_FTP, NULL, {
        { B(""), B("220 ready\r\n") },
        { B("AUTH TLS\r\n"), B("234 ok\r\n") },
        { B(""), TLS_UP, 0 },
        { B("PBSZ 0\r\n"), B("200 ok\r\n") },
        { B("PROT P\r\n"), B("536 no\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "PROT P refused" },
    { "ftp: injected reply", STARTTLS_FTP, NULL, {
        { B(""), B("220 ready\r\n") },
        { B("AUTH TLS\r\n"), B("234 ok\r\n230 logged in\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "came after the server's go-ahead" },

    /* --- NNTP --- */
    { "nntp: accepted", STARTTLS_NNTP, NULL, {
        { B(""), B("201 real.server no posting\r\n") },
        { B("STARTTLS\r\n"), B("382 Continue with TLS negotiation\r\n") },
        { B(""), TLS_UP, 0 },
        { B(""), NULL, 0 } },
      STARTTLS_DONE, "200 mail.test ready (TLS by tlsshim)\r\n", NULL },
    { "nntp: refused", STARTTLS_NNTP, NULL, {
        { B(""), B("200 real.server\r\n") },
        { B("STARTTLS\r\n"), B("580 Can not initiate TLS negotiation\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, "200 real.server\r\n", "STARTTLS refused" },
    { "nntp: service unavailable", STARTTLS_NNTP, NULL, {
        { B(""), B("502 go away\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, "502 go away\r\n", "did not greet with 200 or 201" },

    /* --- LDAP --- */
    { "ldap: StartTLS extended operation succeeds", STARTTLS_LDAP, NULL, {
        { LDAP_REQ, B(LDAP_OK) },
        { B(""), TLS_UP, 0 },
        { B(""), NULL, 0 } },
      STARTTLS_DONE, NULL, NULL },
    { "ldap: long-form length, split", STARTTLS_LDAP, NULL, {
        { LDAP_REQ, B("\x30\x81") },
        { B(""), B("\x0c\x02\x01\x01\x78\x07\x0a") },
        { B(""), B("\x01\x00\x04\x00\x04\x00") },
        { B(""), NULL, 0 } },
      STARTTLS_UPGRADE, NULL, NULL },
    { "ldap: long form accepted whole", STARTTLS_LDAP, NULL, {
        { LDAP_REQ, B(LDAP_OK_LONG) },
        { B(""), NULL, 0 } },
      STARTTLS_UPGRADE, NULL, NULL },
    { "ldap: protocolError", STARTTLS_LDAP, NULL, {
        { LDAP_REQ, B(LDAP_NO) },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, NULL, "StartTLS refused: result 2: unsupported" },
    { "ldap: notice of disconnection", STARTTLS_LDAP, NULL, {
        { LDAP_REQ, B(LDAP_NOTICE) },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "message id 0 (result 52)" },
    { "ldap: a second message after success", STARTTLS_LDAP, NULL, {
        { LDAP_REQ, B(LDAP_OK "\x30\x05\x02\x01\x02\x61\x00") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "7 bytes came after" },
    { "ldap: not BER", STARTTLS_LDAP, NULL, {
        { LDAP_REQ, B("220 smtp here\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "not an LDAP message" },

    /* --- XMPP --- */
    { "xmpp: features offer STARTTLS, proceed", STARTTLS_XMPP, NULL, {
        { B(XMPP_HDR), B(XMPP_SRV "<stream:features><starttls xmlns="
                           "'urn:ietf:params:xml:ns:xmpp-tls'><required/>") },
        { B(""), B("</starttls></stream:features>") },
        { B(XMPP_STARTTLS),
          B("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>") },
        { B(""), TLS_UP, 0 },
        { B(""), NULL, 0 } },
      STARTTLS_DONE, NULL, NULL },
    { "xmpp: no STARTTLS feature", STARTTLS_XMPP, NULL, {
        { B(XMPP_HDR), B(XMPP_SRV "<stream:features><mechanisms xmlns="
                           "'urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>"
                           "PLAIN</mechanism></mechanisms>"
                           "</stream:features>") },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, NULL, "not in its stream features" },
    { "xmpp: failure, then the stream's end", STARTTLS_XMPP, NULL, {
        { B(XMPP_HDR), B(XMPP_SRV "<stream:features><starttls xmlns="
                           "'urn:ietf:params:xml:ns:xmpp-tls'/>"
                           "</stream:features>") },
        { B(XMPP_STARTTLS),
          B("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
            "</stream:stream>") },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, NULL, "with <failure/>" },
    { "xmpp: a stream error", STARTTLS_XMPP, NULL, {
        { B(XMPP_HDR), B(XMPP_SRV "<stream:error><host-unknown xmlns="
                           "'urn:ietf:params:xml:ns:xmpp-streams'/>"
                           "</stream:error></stream:stream>") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "stream error" },
    { "xmpp: failure alone", STARTTLS_XMPP, NULL, {
        { B(XMPP_HDR), B(XMPP_SRV "<stream:features><starttls xmlns="
                           "'urn:ietf:params:xml:ns:xmpp-tls'/>"
                           "</stream:features>") },
        { B(XMPP_STARTTLS),
          B("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>") },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, NULL, "with <failure/>" },
    { "xmpp: a stanza after proceed", STARTTLS_XMPP, NULL, {
        { B(XMPP_HDR), B(XMPP_SRV "<stream:features><starttls xmlns="
                           "'urn:ietf:params:xml:ns:xmpp-tls'/>"
                           "</stream:features>") },
        { B(XMPP_STARTTLS),
          B("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'></proceed>"
            "<message>x</message>") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "20 bytes came after" },
    { "xmpp: the name is escaped in the header", STARTTLS_XMPP, "a'b<c", {
        { B("<?xml version='1.0'?><stream:stream to='a&apos;b&lt;c' "
            "version='1.0' xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams'>"),
          NULL, 0 } },
      STARTTLS_READ, NULL, NULL },

    /* --- PostgreSQL --- */
    { "postgres: S", STARTTLS_POSTGRES, NULL, {
        { B(PG_REQ), B("S") },
        { B(""), TLS_UP, 0 },
        { B(""), NULL, 0 } },
      STARTTLS_DONE, NULL, NULL },
    { "postgres: N", STARTTLS_POSTGRES, NULL, {
        { B(PG_REQ), B("N") },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, NULL, "answered N" },
    { "postgres: S and an AuthenticationOk (CVE-2021-23222)",
      STARTTLS_POSTGRES, NULL, {
        { B(PG_REQ), B("SR\x00\x00\x00\x08\x00\x00\x00\x00") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "9 bytes came after" },
    { "postgres: an error message", STARTTLS_POSTGRES, NULL, {
        { B(PG_REQ), B("EFATAL") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "with an error message" },

    /* --- MySQL and MariaDB --- */
    { "mysql: greeting shown without SSL, SSLRequest with the login's "
      "flags, the login over TLS numbered 2", STARTTLS_MYSQL, NULL, {
        { B(""), B(MY_GREET) },
        { B(""), P(MY_LOGIN) },
        { B(MY_SSLREQ), TLS_UP, 0 },
        { B(MY_LOGIN_TLS), NULL, 0 } },
      STARTTLS_DONE, MY_GREET_SHOWN, NULL },
    { "mysql: greeting and login in pieces", STARTTLS_MYSQL, NULL, {
        { B(""), "\x5a\x00", 2 },
        { B(""), "\x00\x00\x0a" "5.5", 6 },
        { B(""), FROM(MY_GREET, 8) },
        { B(""), "\x50\x00", 2 | PROG },
        { B(""), "\x00\x01\x0d\xa2", 4 | PROG },
        { B(""), P_FROM(MY_LOGIN, 6) },
        { B(MY_SSLREQ), TLS_UP, 0 },
        { B(MY_LOGIN_TLS), NULL, 0 } },
      STARTTLS_DONE, MY_GREET_SHOWN, NULL },
    { "mysql: a greeting without CLIENT_SSL is refused, shown as it came",
      STARTTLS_MYSQL, NULL, {
        { B(""), B(MY_GREET_NOSSL) },
        { B(""), NULL, 0 } },
      STARTTLS_REFUSED, MY_GREET_NOSSL,
      "the server does not offer SSL (no CLIENT_SSL" },
    { "mysql: the greeting shown is rebuilt: filler and reserved bytes "
      "zeroed, what follows the plugin name dropped", STARTTLS_MYSQL, NULL, {
        { B(""), B("\x62\x00\x00\x00" "\x0a" "5.5.5-10.11.19-MariaDB\x00"
                   "\x01\x00\x00\x00" "abcdefgh" "\x7f" "\xfe\xff" "\x2d"
                   "\x02\x00" "\xff\x81" "\x15" "\x01\x02\x03\x04\x05\x06"
                   "\x1d\x00\x00\x00" "ijklmnopqrst\x00"
                   "mysql_native_password\x00" "TRAILING") },
        { B(""), P(MY_LOGIN) },
        { B(MY_SSLREQ), TLS_UP, 0 },
        { B(MY_LOGIN_TLS), NULL, 0 } },
      STARTTLS_DONE, MY_GREET_SHOWN, NULL },
    { "mysql: a MySQL 8 greeting: no MariaDB flags, so the reserved bytes "
      "are zeros", STARTTLS_MYSQL, NULL, {
        { B(""), B("\x4a\x00\x00\x00" "\x0a" "8.0.36\x00" "\x09\x00\x00\x00"
                   "abcdefgh" "\x00" "\xff\xff" "\xff" "\x02\x00" "\xff\xdf"
                   "\x15" "\x00\x00\x00\x00\x00\x00" "\x09\x09\x09\x09"
                   "ijklmnopqrst\x00" "caching_sha2_password\x00") },
        { B(""), NULL, 0 } },
      STARTTLS_LOGIN,
      "\x4a\x00\x00\x00" "\x0a" "8.0.36\x00" "\x09\x00\x00\x00" "abcdefgh"
      "\x00" "\xff\xf7" "\xff" "\x02\x00" "\xff\xdf" "\x15"
      "\x00\x00\x00\x00\x00\x00" "\x00\x00\x00\x00" "ijklmnopqrst\x00"
      "caching_sha2_password\x00", NULL },
    { "mysql: a plugin name that ends the packet is shown with its NUL",
      STARTTLS_MYSQL, NULL, {
        { B(""), B("\x59\x00\x00\x00" "\x0a" "5.5.5-10.11.19-MariaDB\x00"
                   "\x01\x00\x00\x00" "abcdefgh" "\x00" "\xfe\xff" "\x2d"
                   "\x02\x00" "\xff\x81" "\x15" "\x00\x00\x00\x00\x00\x00"
                   "\x1d\x00\x00\x00" "ijklmnopqrst\x00"
                   "mysql_native_password") },
        { B(""), NULL, 0 } },
      STARTTLS_LOGIN, MY_GREET_SHOWN, NULL },
    { "mysql: a version text with a control byte", STARTTLS_MYSQL, NULL, {
        { B(""), B("\x15\x00\x00\x00" "\x0a" "5.5\x1b\x00" "\x01\x00\x00\x00"
                   "abcdefgh" "\x00" "\xfe\xff") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "the server's version text is not a short "
      "printable text (4 bytes, byte 3 is 0x1b)" },
    { "mysql: a greeting offering SSL without the protocol 4.1 fields",
      STARTTLS_MYSQL, NULL, {
        { B(""), B("\x15\x00\x00\x00" "\x0a" "5.5.\x00" "\x01\x00\x00\x00"
                   "abcdefgh" "\x00" "\xfe\xff") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "ends before its protocol 4.1 fields (21 "
      "bytes)" },
    { "mysql: a greeting that ends inside its scramble", STARTTLS_MYSQL,
      NULL, {
        { B(""), B("\x3d\x00\x00\x00" "\x0a" "5.5.5-10.11.19-MariaDB\x00"
                   "\x01\x00\x00\x00" "abcdefgh" "\x00" "\xfe\xff" "\x2d"
                   "\x02\x00" "\xff\x81" "\x15" "\x00\x00\x00\x00\x00\x00"
                   "\x1d\x00\x00\x00" "ijklmn") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "ends inside its scramble (61 bytes)" },
    { "mysql: a plugin name with a control byte", STARTTLS_MYSQL, NULL, {
        { B(""), B("\x51\x00\x00\x00" "\x0a" "5.5.5-10.11.19-MariaDB\x00"
                   "\x01\x00\x00\x00" "abcdefgh" "\x00" "\xfe\xff" "\x2d"
                   "\x02\x00" "\xff\x81" "\x15" "\x00\x00\x00\x00\x00\x00"
                   "\x1d\x00\x00\x00" "ijklmnopqrst\x00" "mysql\x01native\x00") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "names an authentication plugin that is not a "
      "short printable name" },
    { "mysql: an OK packet after the greeting, same segment (injected)",
      STARTTLS_MYSQL, NULL, {
        { B(""), B(MY_GREET "\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL,
      "11 bytes came after the server's greeting, before the program's "
      "login (injected?)" },
    { "mysql: server bytes while the program's login is awaited",
      STARTTLS_MYSQL, NULL, {
        { B(""), B(MY_GREET) },
        { B(""), B("\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "11 bytes came after the server's greeting" },
    { "mysql: server bytes while the login is half written: nothing sent",
      STARTTLS_MYSQL, NULL, {
        { B(""), B(MY_GREET) },
        { B(""), "\x50\x00\x00\x01\x0d", 5 | PROG },
        { B(""), B("\x00") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "1 bytes came after the server's greeting" },
    { "mysql: an error packet instead of a greeting", STARTTLS_MYSQL, NULL, {
        { B(""), B("\x17\x00\x00\x00\xff\x10\x04Too many connections") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL,
      "the server sent error 1040 instead of a greeting: "
      "\"Too many connections\"" },
    { "mysql: protocol version 9", STARTTLS_MYSQL, NULL, {
        { B(""), B("\x05\x00\x00\x00\x09" "3.2\x00") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "not a MySQL greeting (protocol version 9" },
    { "mysql: a greeting numbered 1", STARTTLS_MYSQL, NULL, {
        { B(""), B("\x5a\x00\x00\x01" MY_GREET_BODY("\xff")) },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "greeting has sequence id 1, not 0" },
    { "mysql: a greeting that ends before its capability flags",
      STARTTLS_MYSQL, NULL, {
        { B(""), B("\x0c\x00\x00\x00\x0a" "5.5\x00" "\x01\x00\x00\x00"
                   "abc") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "ends before its capability flags" },
    { "mysql: a version text without its end", STARTTLS_MYSQL, NULL, {
        { B(""), B("\x04\x00\x00\x00\x0a" "5.5") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "no end to its version text" },
    { "mysql: not MySQL at all (an HTTP answer read as a length)",
      STARTTLS_MYSQL, NULL, {
        { B(""), B("HTTP/1.1 400 Bad Request\r\n") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "the server's greeting is 5526600 bytes long" },
    { "mysql: a first program packet numbered 0 is no login",
      STARTTLS_MYSQL, NULL, {
        { B(""), B(MY_GREET) },
        { B(""), P(MY_LOGIN_AS("\x00", "\xa2")) },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "first packet has sequence id 0, not 1" },
    { "mysql: a login without CLIENT_PROTOCOL_41", STARTTLS_MYSQL, NULL, {
        { B(""), B(MY_GREET) },
        { B(""), P(MY_LOGIN_AS("\x01", "\xa0")) },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "not a protocol 4.1 HandshakeResponse" },
    { "mysql: a short login", STARTTLS_MYSQL, NULL, {
        { B(""), B(MY_GREET) },
        { B(""), P("\x02\x00\x00\x01\x0d\xa2") },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "not a protocol 4.1 HandshakeResponse (2 bytes" },
    { "mysql: the program's own SSLRequest", STARTTLS_MYSQL, NULL, {
        { B(""), B(MY_GREET) },
        { B(""), P("\x20\x00\x00\x01" MY_LOGIN_FIXED("\xaa")) },
        { B(""), NULL, 0 } },
      STARTTLS_FAILED, NULL, "the program sent an SSLRequest itself" },
};

/* Run the client until it waits, collecting what it sends. */
static enum starttls_status
drive(struct starttls *st, char *sent, size_t *sent_len, size_t cap)
{
    enum starttls_status s;

    while ((s = starttls_next(st)) == STARTTLS_WRITE) {
        size_t n = st->out_len - st->out_off;
        if (*sent_len + n <= cap)
            memcpy(sent + *sent_len, st->out + st->out_off, n);
        *sent_len += n;
        st->out_off = st->out_len;
    }
    return s;
}

static void
run_row(const struct row *r)
{
    static struct starttls st;
    char sent[1024];
    enum starttls_status s = STARTTLS_READ;

    unit_row("%s", r->title);
    starttls_init(&st, r->proto, r->name != NULL ? r->name : "mail.test",
                  "[192.0.2.1]");
    for (size_t i = 0; i < TLSSHIM_NELEMS(r->steps); i++) {
        const struct step *sp = &r->steps[i];
        size_t sent_len = 0;

        s = drive(&st, sent, &sent_len, sizeof(sent));
        CHECK_MSG(sent_len == sp->expect_len &&
                      memcmp(sent, sp->expect, sent_len) == 0,
                  "step %zu: sent %zu bytes \"%.*s\", want \"%s\"", i,
                  sent_len, (int)(sent_len < sizeof(sent) ? sent_len : 0),
                  sent, sp->expect);
        if (sp->feed != NULL && (sp->feed_len & PROG)) {
            size_t n = sp->feed_len & ~PROG;
            if (!CHECK_MSG(s == STARTTLS_LOGIN, "step %zu: status %d before "
                           "the program's login, want LOGIN (why: %s)", i,
                           (int)s, st.why))
                return;
            CHECK_INT(starttls_login(&st, sp->feed, n), n);
            continue;
        }
        if (sp->feed == NULL)
            break;
        if (sp->feed == TLS_UP) {
            if (!CHECK_INT(s, STARTTLS_UPGRADE))
                return;
            starttls_tls_up(&st);
            continue;
        }
        /* mysql: the server may speak while the login is awaited */
        if (!CHECK_MSG(s == STARTTLS_READ ||
                           (s == STARTTLS_LOGIN && r->proto == STARTTLS_MYSQL),
                       "step %zu: status %d before input, want READ (why: "
                       "%s)", i, (int)s, st.why))
            return;
        size_t room;
        unsigned char *p = starttls_room(&st, &room);
        if (!CHECK(room >= sp->feed_len))
            return;
        memcpy(p, sp->feed, sp->feed_len);
        starttls_received(&st, sp->feed_len);
    }
    CHECK_MSG(s == r->want, "status %d, want %d (why: %s)", (int)s,
              (int)r->want, st.why);
    /* mysql shows one packet, NULs inside: its header has its length */
    size_t show_len = r->show == NULL ? 0
                      : r->proto == STARTTLS_MYSQL
                          ? 4 + ((size_t)(unsigned char)r->show[0] |
                                 (size_t)(unsigned char)r->show[1] << 8)
                          : strlen(r->show);
    if (r->show != NULL)
        CHECK_MSG(st.show_len - st.show_off == show_len &&
                      memcmp(st.show + st.show_off, r->show, show_len) == 0,
                  "shows \"%.*s\", want \"%s\"",
                  (int)(st.show_len - st.show_off), st.show + st.show_off,
                  r->show);
    else if (s == STARTTLS_DONE)
        CHECK_INT(st.show_len - st.show_off, 0);
    if (r->why != NULL)
        CHECK_MSG(strstr(st.why, r->why) != NULL, "why \"%s\", want \"%s\"",
                  st.why, r->why);
}

/* An answer that never ends fails once the buffer is full. */
static void
test_too_long(void)
{
    static struct starttls st;
    size_t room;

    unit_row("an answer longer than the buffer");
    starttls_init(&st, STARTTLS_SMTP, "mail.test", "[192.0.2.1]");
    CHECK_INT(starttls_next(&st), STARTTLS_READ);
    unsigned char *p = starttls_room(&st, &room);
    memcpy(p, "220-", 4);
    memset(p + 4, 'x', room - 4);
    starttls_received(&st, room);
    CHECK_INT(starttls_next(&st), STARTTLS_FAILED);
    CHECK_MSG(strstr(st.why, "longer than") != NULL, "%s", st.why);
}

/* mysql: the program's login is taken up to its end, never beyond; an
 * overlong one only as far as its header, and the dialogue fails. */
static void
test_mysql_login_bounds(void)
{
    static struct starttls st;
    static const char login_then_ping[] = MY_LOGIN "\x01\x00\x00\x00\x0e";
    size_t room;
    unsigned char *p;

    unit_row("mysql: the login is taken up to its end");
    starttls_init(&st, STARTTLS_MYSQL, "db.test", "[192.0.2.1]");
    p = starttls_room(&st, &room);
    memcpy(p, MY_GREET, sizeof(MY_GREET) - 1);
    starttls_received(&st, sizeof(MY_GREET) - 1);
    CHECK_INT(starttls_next(&st), STARTTLS_LOGIN);
    CHECK_INT(starttls_login(&st, login_then_ping, sizeof(login_then_ping) - 1),
              sizeof(MY_LOGIN) - 1);
    CHECK_INT(starttls_login(&st, "\x01", 1), 0);
    CHECK_INT(starttls_next(&st), STARTTLS_WRITE);

    unit_row("mysql: a login longer than is kept");
    starttls_init(&st, STARTTLS_MYSQL, "db.test", "[192.0.2.1]");
    p = starttls_room(&st, &room);
    memcpy(p, MY_GREET, sizeof(MY_GREET) - 1);
    starttls_received(&st, sizeof(MY_GREET) - 1);
    CHECK_INT(starttls_next(&st), STARTTLS_LOGIN);
    CHECK_INT(starttls_login(&st, "\x00\x00\x01\x01\x0d\xa2", 6), 4);
    CHECK_INT(starttls_next(&st), STARTTLS_FAILED);
    CHECK_MSG(strstr(st.why, "login packet is 65536 bytes long") != NULL, "%s",
              st.why);

    unit_row("mysql: no login taken before the greeting");
    starttls_init(&st, STARTTLS_MYSQL, "db.test", "[192.0.2.1]");
    CHECK_INT(starttls_login(&st, MY_LOGIN, sizeof(MY_LOGIN) - 1), 0);
    CHECK_INT(starttls_next(&st), STARTTLS_READ);
}

/* mysql's connection phase: the ids of either direction, packets split
 * anywhere, the program's first command ending the translation. */
struct seq_row {
    const char *title;
    int up;               /* 1: the program's bytes, 0: the server's */
    const char *in, *want;
    size_t len;
    size_t split[4];      /* chunk sizes, 0 ends; the rest is one more */
    int active;           /* still translating after it */
};

#define SEQ(in, want) in, want, sizeof(in) - 1

static const struct seq_row seq_rows[] = {
    { "up: an auth switch answer numbered 3 goes as 4", 1,
      SEQ("\x03\x00\x00\x03" "abc", "\x03\x00\x00\x04" "abc"), {0}, 1 },
    { "up: split byte by byte", 1,
      SEQ("\x03\x00\x00\x03" "abc", "\x03\x00\x00\x04" "abc"),
      {1, 1, 1, 1}, 1 },
    { "up: two packets in one write", 1,
      SEQ("\x01\x00\x00\x03" "x" "\x02\x00\x00\x05" "yz",
          "\x01\x00\x00\x04" "x" "\x02\x00\x00\x06" "yz"), {3, 4}, 1 },
    { "up: payload bytes that look like a header are payload", 1,
      SEQ("\x08\x00\x00\x03" "\x00\x00\x00\x03" "\x01\x00\x00\x03",
          "\x08\x00\x00\x04" "\x00\x00\x00\x03" "\x01\x00\x00\x03"),
      {5}, 1 },
    { "up: an empty packet, then another", 1,
      SEQ("\x00\x00\x00\x03" "\x01\x00\x00\x05" "x",
          "\x00\x00\x00\x04" "\x01\x00\x00\x06" "x"), {0}, 1 },
    { "up: the first command (id 0) ends the translation", 1,
      SEQ("\x01\x00\x00\x00" "\x0e", "\x01\x00\x00\x00" "\x0e"), {0}, 0 },
    { "up: an answer, a command, and nothing after it translated", 1,
      SEQ("\x01\x00\x00\x03" "x" "\x05\x00\x00\x00" "\x03" "abcd"
          "\x01\x00\x00\x03" "z",
          "\x01\x00\x00\x04" "x" "\x05\x00\x00\x00" "\x03" "abcd"
          "\x01\x00\x00\x03" "z"), {7, 2}, 0 },
    { "up: a packet longer than 16 bits of length", 1,
      SEQ("\x00\x00\x01\x03" "a", "\x00\x00\x01\x04" "a"), {0}, 1 },
    { "down: an OK numbered 3 is shown as 2", 0,
      SEQ("\x07\x00\x00\x03" "\x00\x00\x00\x02\x00\x00\x00",
          "\x07\x00\x00\x02" "\x00\x00\x00\x02\x00\x00\x00"), {0}, 1 },
    { "down: an AuthSwitchRequest and more, split in the headers", 0,
      SEQ("\x03\x00\x00\x03" "\xfe" "p\x00" "\x02\x00\x00\x05" "\x01\x03",
          "\x03\x00\x00\x02" "\xfe" "p\x00" "\x02\x00\x00\x04" "\x01\x03"),
      {2, 7, 1}, 1 },
    { "down: a server packet numbered 0 wraps (the program refuses it)", 0,
      SEQ("\x01\x00\x00\x00" "x", "\x01\x00\x00\xff" "x"), {0}, 1 },
    { "down: an id 0 does not end the translation", 0,
      SEQ("\x01\x00\x00\x00" "x" "\x01\x00\x00\x04" "y",
          "\x01\x00\x00\xff" "x" "\x01\x00\x00\x03" "y"), {0}, 1 },
};

static void
test_seq(void)
{
    for (size_t i = 0; i < TLSSHIM_NELEMS(seq_rows); i++) {
        const struct seq_row *r = &seq_rows[i];
        struct starttls_seq sq;
        unsigned char out[64];
        size_t off = 0;

        unit_row("seq: %s", r->title);
        starttls_seq_init(&sq);
        memcpy(out, r->in, r->len);
        for (size_t k = 0; off < r->len; k++) {
            size_t n = k < TLSSHIM_NELEMS(r->split) && r->split[k] > 0
                           ? r->split[k] : r->len - off;
            if (n > r->len - off)
                n = r->len - off;
            if (r->up) {
                /* as conn.c writes: a copy translates, the state
                 * advances by what was taken */
                struct starttls_seq ahead = sq;
                starttls_seq_up(&ahead, out + off,
                                (const unsigned char *)r->in + off, n);
                starttls_seq_up(&sq, NULL, (const unsigned char *)r->in + off,
                                n);
            } else {
                starttls_seq_down(&sq, out + off, n);
            }
            off += n;
        }
        CHECK_MSG(memcmp(out, r->want, r->len) == 0, "translated wrong");
        CHECK_INT(sq.active, r->active);
    }
}

/* A packet of 70000 bytes whose payload is all 3s, then one numbered 5,
 * in 1000-byte reads: only the two ids change. */
static void
test_seq_long(void)
{
    static unsigned char buf[70000 + 9];
    struct starttls_seq sq;
    size_t bad = 0;

    unit_row("seq: a long packet read in pieces");
    memset(buf, 3, sizeof(buf));
    memcpy(buf, "\x70\x11\x01\x03", 4);
    memcpy(buf + 70004, "\x01\x00\x00\x05" "x", 5);
    starttls_seq_init(&sq);
    for (size_t off = 0; off < sizeof(buf); off += 1000)
        starttls_seq_down(&sq, buf + off,
                          sizeof(buf) - off < 1000 ? sizeof(buf) - off : 1000);
    CHECK_INT(buf[3], 2);
    CHECK_INT(buf[70007], 4);
    for (size_t i = 4; i < 70004; i++)
        bad += buf[i] != 3;
    CHECK_INT(bad, 0);
    CHECK_INT(sq.active, 1);
}

/* The program's first command ends the translation of both directions. */
static void
test_seq_phase(void)
{
    struct starttls_seq sq;
    unsigned char ping[] = "\x01\x00\x00\x00\x0e";
    unsigned char ok[] = "\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00";
    unsigned char sent[sizeof(ping)];

    unit_row("seq: the command phase is not translated either way");
    starttls_seq_init(&sq);
    starttls_seq_up(&sq, sent, ping, sizeof(ping) - 1);
    CHECK_INT(sq.active, 0);
    starttls_seq_down(&sq, ok, sizeof(ok) - 1);
    CHECK_INT(ok[3], 1);
}

static void
test_names(void)
{
    static const struct {
        const char *name, *scheme;
        enum starttls_proto proto;
        int server_first;
    } names[] = {
        { "smtp", "smtp", STARTTLS_SMTP, 1 },
        { "imap", "imap", STARTTLS_IMAP, 1 },
        { "pop3", "pop3", STARTTLS_POP3, 1 },
        { "ftp", "ftp", STARTTLS_FTP, 1 },
        { "ldap", "ldap", STARTTLS_LDAP, 0 },
        { "xmpp", "xmpp", STARTTLS_XMPP, 0 },
        { "nntp", "nntp", STARTTLS_NNTP, 1 },
        { "postgres", NULL, STARTTLS_POSTGRES, 0 },
        { "mysql", NULL, STARTTLS_MYSQL, 1 },
        { "SMTP", NULL, STARTTLS_NONE, 0 },
        { "", NULL, STARTTLS_NONE, 0 },
        { NULL, NULL, STARTTLS_NONE, 0 },
    };

    for (size_t i = 0; i < TLSSHIM_NELEMS(names); i++) {
        unit_row("names: %s", names[i].name ? names[i].name : "NULL");
        CHECK_INT(starttls_proto_of(names[i].name), names[i].proto);
        CHECK_STR(starttls_scheme(names[i].name), names[i].scheme);
        CHECK_INT(starttls_server_first(names[i].proto),
                  names[i].server_first);
        if (names[i].proto != STARTTLS_NONE)
            CHECK_STR(starttls_proto_name(names[i].proto), names[i].name);
    }
}

int
main(void)
{
    for (size_t i = 0; i < TLSSHIM_NELEMS(rows); i++)
        run_row(&rows[i]);
    test_too_long();
    test_mysql_login_bounds();
    test_seq();
    test_seq_long();
    test_seq_phase();
    test_names();
    unit_row("%s", "");
    return unit_finish();
}
