/*
 * Unit tests of STARTTLS offered on behalf of a plain server
 * (src/starttls_server.c).  Two tables: what becomes of the client's
 * bytes (passed to the program, answered by tlsshim, the upgrade, the
 * point where the session stays plaintext, bytes discarded after
 * STARTTLS), and what becomes of the program's (capability lists with
 * STARTTLS added, everything else unchanged).  Every row runs with the
 * input whole and split into one-byte pieces.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "starttls_server.h"
#include "unit.h"

struct in_row {
    const char *title;
    enum starttls_proto proto;
    int required;
    const char *client;      /* all the client sends */
    int client_eof;          /* ...then it closes */
    enum stsrv_status want;  /* the status the run ends with */
    const char *program;     /* what the program may read, in order */
    const char *replies;     /* what tlsshim answers itself, in order */
    size_t discarded;        /* bytes thrown away after STARTTLS */
    int silent;              /* the program does not answer what it reads
                              * (else it writes a line after each) */
};

static const struct in_row in_rows[] = {
    /* SMTP */
    { "smtp: EHLO passes, STARTTLS is ours", STARTTLS_SMTP, 0,
      "EHLO a\r\nSTARTTLS\r\n", 0, STSRV_UPGRADE, "EHLO a\r\n",
      "220 2.0.0 Ready to start TLS\r\n", 0, 0 },
    { "smtp: a command after STARTTLS is discarded", STARTTLS_SMTP, 0,
      "starttls\r\nMAIL FROM:<x>\r\n", 0, STSRV_UPGRADE, "",
      "220 2.0.0 Ready to start TLS\r\n", 15, 0 },
    { "smtp: STARTTLS with an argument is refused", STARTTLS_SMTP, 0,
      "STARTTLS now\r\nNOOP\r\n", 0, STSRV_READ, "NOOP\r\n",
      "501 5.5.4 Syntax error (no parameters allowed)\r\n", 0, 0 },
    { "smtp: MAIL without STARTTLS: plaintext for good", STARTTLS_SMTP, 0,
      "EHLO a\r\nMAIL FROM:<x>\r\nRCPT TO:<y>\r\n", 0, STSRV_RELEASE,
      "EHLO a\r\nMAIL FROM:<x>\r\nRCPT TO:<y>\r\n", "", 0, 0 },
    { "smtp required: MAIL and AUTH refused, NOOP passes", STARTTLS_SMTP, 1,
      "MAIL FROM:<x>\r\nAUTH PLAIN x\r\nNOOP\r\nQUIT\r\n", 0, STSRV_READ,
      "NOOP\r\nQUIT\r\n",
      "530 5.7.0 Must issue a STARTTLS command first\r\n"
      "530 5.7.0 Must issue a STARTTLS command first\r\n", 0, 0 },
    { "smtp required: an empty line is refused", STARTTLS_SMTP, 1,
      "\r\n", 0, STSRV_READ, "",
      "530 5.7.0 Must issue a STARTTLS command first\r\n", 0, 0 },
    { "smtp: a last line without its end reaches the program at EOF",
      STARTTLS_SMTP, 0, "QUIT", 1, STSRV_EOF, "QUIT", "", 0, 0 },
    { "smtp required: ...not when it would be refused", STARTTLS_SMTP, 1,
      "MAIL", 1, STSRV_EOF, "", "", 0, 0 },
    /* IMAP */
    { "imap: CAPABILITY passes, STARTTLS answered with the tag as sent",
      STARTTLS_IMAP, 0, "a1 CAPABILITY\r\nb.2 starttls\r\n", 0,
      STSRV_UPGRADE, "a1 CAPABILITY\r\n",
      "b.2 OK Begin TLS negotiation now\r\n", 0, 0 },
    { "imap: LOGIN without STARTTLS: plaintext for good", STARTTLS_IMAP, 0,
      "a1 LOGIN u p\r\n", 0, STSRV_RELEASE, "a1 LOGIN u p\r\n", "", 0, 0 },
    { "imap required: LOGIN gets NO, SELECT gets BAD, NOOP passes",
      STARTTLS_IMAP, 1, "a1 LOGIN u p\r\na2 SELECT INBOX\r\na3 NOOP\r\n", 0,
      STSRV_READ, "a3 NOOP\r\n",
      "a1 NO [PRIVACYREQUIRED] Must issue a STARTTLS command first\r\n"
      "a2 BAD Must issue a STARTTLS command first\r\n", 0, 0 },
    { "imap required: a bad tag gets an untagged BAD", STARTTLS_IMAP, 1,
      "(x) LOGIN\r\n", 0, STSRV_READ, "",
      "* BAD Must issue a STARTTLS command first\r\n", 0, 0 },
    { "imap: a literal passes whole, STARTTLS inside it is data",
      STARTTLS_IMAP, 0, "a1 ID {10}\r\nSTARTTLS\r\n)\r\na2 STARTTLS\r\n", 0,
      STSRV_UPGRADE, "a1 ID {10}\r\nSTARTTLS\r\n)\r\n",
      "a2 OK Begin TLS negotiation now\r\n", 0, 0 },
    { "imap required: a refused LITERAL+ is dropped with its command",
      STARTTLS_IMAP, 1, "a1 LOGIN {2+}\r\nab {1+}\r\nc\r\na2 NOOP\r\n", 0,
      STSRV_READ, "a2 NOOP\r\n",
      "a1 NO [PRIVACYREQUIRED] Must issue a STARTTLS command first\r\n", 0, 0 },
    { "imap required: a refused synchronising literal never comes",
      STARTTLS_IMAP, 1, "a1 LOGIN {2}\r\na2 NOOP\r\n", 0, STSRV_READ,
      "a2 NOOP\r\n",
      "a1 NO [PRIVACYREQUIRED] Must issue a STARTTLS command first\r\n", 0, 0 },
    { "imap required: a LITERAL+ on an allowed command is refused, its "
      "bytes dropped unread", STARTTLS_IMAP, 1,
      "a ID {19+}\r\nb LOGIN user pass\r\n)\r\nc NOOP\r\n", 0, STSRV_READ,
      "c NOOP\r\n", "a BAD No literals before STARTTLS\r\n", 0, 0 },
    { "imap required: a synchronising literal on an allowed command is "
      "refused; what follows is a command", STARTTLS_IMAP, 1,
      "a NOOP {5}\r\nb LOGIN u p\r\nc NOOP\r\n", 0, STSRV_READ,
      "c NOOP\r\n", "a BAD No literals before STARTTLS\r\n"
      "b NO [PRIVACYREQUIRED] Must issue a STARTTLS command first\r\n", 0, 0 },
    { "imap: bytes after STARTTLS are discarded", STARTTLS_IMAP, 0,
      "a1 STARTTLS\r\na2 LOGIN u p\r\n", 0, STSRV_UPGRADE, "",
      "a1 OK Begin TLS negotiation now\r\n", 14, 0 },
    { "smtp: STARTTLS before the program answered NOOP is refused",
      STARTTLS_SMTP, 0, "NOOP\r\nSTARTTLS\r\nEHLO a\r\n", 0, STSRV_READ,
      "NOOP\r\nEHLO a\r\n",
      "503 5.5.1 STARTTLS sent before the answers to earlier commands\r\n",
      0, 1 },
    { "imap: STARTTLS before the program answered NOOP is refused",
      STARTTLS_IMAP, 0, "a NOOP\r\nb STARTTLS\r\n", 0, STSRV_READ,
      "a NOOP\r\n",
      "b BAD STARTTLS sent before the answers to earlier commands\r\n", 0,
      1 },
    /* POP3 */
    { "pop3: CAPA passes, STLS is ours", STARTTLS_POP3, 0,
      "CAPA\r\nSTLS\r\n", 0, STSRV_UPGRADE, "CAPA\r\n",
      "+OK Begin TLS negotiation\r\n", 0, 0 },
    { "pop3: USER passes, PASS makes it plaintext for good", STARTTLS_POP3,
      0, "USER u\r\nPASS p\r\nSTAT\r\n", 0, STSRV_RELEASE,
      "USER u\r\nPASS p\r\nSTAT\r\n", "", 0, 0 },
    { "pop3 required: USER refused, QUIT passes", STARTTLS_POP3, 1,
      "USER u\r\nQUIT\r\n", 0, STSRV_READ, "QUIT\r\n",
      "-ERR Must issue a STLS command first\r\n", 0, 0 },
    { "pop3: STLS before the program answered CAPA is refused",
      STARTTLS_POP3, 0, "CAPA\r\nSTLS\r\n", 0, STSRV_READ, "CAPA\r\n",
      "-ERR STLS sent before the answers to earlier commands\r\n", 0, 1 },
    { "smtp: the same STARTTLS is ours once the program answered",
      STARTTLS_SMTP, 0, "NOOP\r\nSTARTTLS\r\n", 0, STSRV_UPGRADE,
      "NOOP\r\n", "220 2.0.0 Ready to start TLS\r\n", 0, 0 },
    { "pop3: STLS with an argument is refused", STARTTLS_POP3, 0,
      "STLS x\r\n", 0, STSRV_READ, "", "-ERR STLS takes no arguments\r\n",
      0, 0 },
};

static void
run_in_row(const struct in_row *r, size_t piece)
{
    static struct stsrv st;
    char program[1024] = "", replies[1024] = "";
    size_t fed = 0, clen = strlen(r->client);
    enum stsrv_status s;

    stsrv_init(&st, r->proto, r->required);
    for (int guard = 0; guard < 1000; guard++) {
        s = stsrv_next(&st);
        if (s == STSRV_PASS) {
            strncat(program, (const char *)st.in, st.pass);
            stsrv_consume_pass(&st, st.pass);
            if (!r->silent) {
                CHECK_INT(stsrv_from_program(&st, "x\r\n", 3), 3);
                st.out_len = 0;
            }
            continue;
        }
        if (s == STSRV_REPLY) {
            strncat(replies, st.reply, st.reply_len);
            st.reply_len = 0;
            continue;
        }
        if (s == STSRV_READ && fed < clen) {
            size_t room, n = clen - fed < piece ? clen - fed : piece;
            unsigned char *p = stsrv_room(&st, &room);
            memcpy(p, r->client + fed, n);
            stsrv_received(&st, n);
            fed += n;
            continue;
        }
        if (s == STSRV_READ && r->client_eof && !st.eof) {
            stsrv_received(&st, 0);
            continue;
        }
        break;
    }
    if (s == STSRV_UPGRADE)
        strncat(replies, st.reply, st.reply_len);
    if (s == STSRV_RELEASE) {
        strncat(program, (const char *)st.in, st.pass);
        /* what was not fed yet goes to the program too */
        strcat(program, r->client + fed);
    }
    CHECK_INT(s, r->want);
    CHECK_STR(program, r->program);
    CHECK_STR(replies, r->replies);
    if (s == STSRV_UPGRADE)
        CHECK_INT(st.discarded + (clen - fed), r->discarded);
}

struct out_row {
    const char *title;
    enum starttls_proto proto;
    int required;
    const char *command;     /* the client's command the program answers */
    const char *program;     /* what the program writes */
    const char *want;        /* what the client gets */
};

static const struct out_row out_rows[] = {
    { "smtp: STARTTLS after the first line of EHLO's answer", STARTTLS_SMTP,
      0, "EHLO a\r\n", "250-mx\r\n250 SIZE 10\r\n",
      "250-mx\r\n250-STARTTLS\r\n250 SIZE 10\r\n" },
    { "smtp: a one-line answer goes on", STARTTLS_SMTP, 0, "EHLO a\r\n",
      "250 mx\r\n", "250-mx\r\n250 STARTTLS\r\n" },
    { "smtp: LF line ends kept", STARTTLS_SMTP, 0, "EHLO a\r\n",
      "250 mx\n", "250-mx\n250 STARTTLS\n" },
    { "smtp: a refused EHLO is left alone", STARTTLS_SMTP, 0, "EHLO a\r\n",
      "502 no\r\n", "502 no\r\n" },
    { "smtp: answers to other commands are left alone", STARTTLS_SMTP, 0,
      "NOOP\r\n", "250 ok\r\n", "250 ok\r\n" },
    { "imap: CAPABILITY gets STARTTLS", STARTTLS_IMAP, 0, "a CAPABILITY\r\n",
      "* CAPABILITY IMAP4rev1 ID\r\na OK\r\n",
      "* CAPABILITY IMAP4rev1 ID STARTTLS\r\na OK\r\n" },
    { "imap required: ...and LOGINDISABLED", STARTTLS_IMAP, 1,
      "a CAPABILITY\r\n", "* capability IMAP4rev1\r\n",
      "* capability IMAP4rev1 STARTTLS LOGINDISABLED\r\n" },
    { "imap: the greeting's response code too", STARTTLS_IMAP, 0, "",
      "* OK [CAPABILITY IMAP4rev1 SASL-IR] ready\r\n",
      "* OK [CAPABILITY IMAP4rev1 SASL-IR STARTTLS] ready\r\n" },
    { "imap: a list that has STARTTLS already is left alone", STARTTLS_IMAP,
      0, "", "* CAPABILITY IMAP4rev1 STARTTLS\r\n",
      "* CAPABILITY IMAP4rev1 STARTTLS\r\n" },
    { "imap: other lines are left alone", STARTTLS_IMAP, 0, "",
      "* 1 EXISTS\r\n+ go\r\na OK CAPABILITY done\r\n",
      "* 1 EXISTS\r\n+ go\r\na OK CAPABILITY done\r\n" },
    { "pop3: STLS before the end of CAPA's list", STARTTLS_POP3, 0,
      "CAPA\r\n", "+OK\r\nUSER\r\n.\r\n", "+OK\r\nUSER\r\nSTLS\r\n.\r\n" },
    { "pop3: a refused CAPA is left alone", STARTTLS_POP3, 0, "CAPA\r\n",
      "-ERR no\r\n", "-ERR no\r\n" },
    { "pop3: other answers with dots are left alone", STARTTLS_POP3, 0,
      "LIST\r\n", "+OK\r\n1 5\r\n.\r\n", "+OK\r\n1 5\r\n.\r\n" },
};

static void
run_out_row(const struct out_row *r, size_t piece)
{
    static struct stsrv st;
    char got[2048] = "";
    size_t len = strlen(r->program), done = 0;

    stsrv_init(&st, r->proto, r->required);
    if (r->command[0] != '\0') {
        size_t room;
        unsigned char *p = stsrv_room(&st, &room);
        memcpy(p, r->command, strlen(r->command));
        stsrv_received(&st, strlen(r->command));
        CHECK_INT(stsrv_next(&st), STSRV_PASS);
    }
    while (done < len) {
        size_t n = len - done < piece ? len - done : piece;
        size_t t = stsrv_from_program(&st, r->program + done, n);
        CHECK(t == n);
        done += n;
        strncat(got, (const char *)st.out, st.out_len);
        st.out_len = 0;
    }
    CHECK_STR(got, r->want);
    CHECK_INT(st.hold_len, 0);
}

int
main(void)
{
    static const size_t pieces[] = {1, 100000};

    for (size_t k = 0; k < TLSSHIM_NELEMS(pieces); k++) {
        for (size_t i = 0; i < TLSSHIM_NELEMS(in_rows); i++) {
            unit_row("%s (pieces of %zu)", in_rows[i].title, pieces[k]);
            run_in_row(&in_rows[i], pieces[k]);
        }
        for (size_t i = 0; i < TLSSHIM_NELEMS(out_rows); i++) {
            unit_row("%s (pieces of %zu)", out_rows[i].title, pieces[k]);
            run_out_row(&out_rows[i], pieces[k]);
        }
    }
    unit_row("%s", "");
    return unit_finish();
}
