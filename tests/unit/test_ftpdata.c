/*
 * Unit tests of the FTP data connection helpers (src/ftpdata.c): the
 * four forms of a data address on the control stream, one row per case
 * with as many that must be refused as accepted, the line splitter, and
 * the expectation table (taken once, by the right connection only).
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "ftpdata.h"
#include "unit.h"

struct row {
    const char *line;
    int command;          /* a command of the program, else a reply */
    int ok;
    const char *ip;       /* the address found, or NULL for none */
    unsigned port;
};

static const struct row rows[] = {
    { "227 Entering Passive Mode (127,0,0,1,94,27).", 0, 1, "127.0.0.1",
      24091 },
    { "227 Entering Passive Mode 10,1,2,3,4,1", 0, 1, "10.1.2.3", 1025 },
    { "227 =192,0,2,7,0,21", 0, 1, "192.0.2.7", 21 },
    { "229 Entering Extended Passive Mode (|||6446|)", 0, 1, NULL, 6446 },
    { "229 Entering Extended Passive Mode (!!!6446!)", 0, 1, NULL, 6446 },
    { "227 Entering Passive Mode (127,0,0,1,300,27)", 0, 0, NULL, 0 },
    { "227 Entering Passive Mode (127,0,0,1)", 0, 0, NULL, 0 },
    { "227 Entering Passive Mode (127,0,0,1,0,0)", 0, 0, NULL, 0 },
    { "229 Entering Extended Passive Mode (|||0|)", 0, 0, NULL, 0 },
    { "229 Entering Extended Passive Mode (|||70000|)", 0, 0, NULL, 0 },
    { "229 Entering Extended Passive Mode (|||12a|)", 0, 0, NULL, 0 },
    { "229 Entering Extended Passive Mode (||6446|)", 0, 0, NULL, 0 },
    { "226 Transfer complete (127,0,0,1,94,27)", 0, 0, NULL, 0 },
    { "PORT 127,0,0,1,200,10", 1, 1, "127.0.0.1", 51210 },
    { "port 127,0,0,1,200,10", 1, 1, "127.0.0.1", 51210 },
    { "EPRT |1|127.0.0.1|40000|", 1, 1, "127.0.0.1", 40000 },
    { "EPRT |2|::1|40001|", 1, 1, "::1", 40001 },
    { "EPRT |1|::1|40001|", 1, 0, NULL, 0 },
    { "EPRT |3|127.0.0.1|40001|", 1, 0, NULL, 0 },
    { "EPRT |||40001|", 1, 0, NULL, 0 },
    { "PORT 127,0,0,1,200", 1, 0, NULL, 0 },
    { "RETR 127,0,0,1,200,10", 1, 0, NULL, 0 },
};

static void
want_ip(const char *text, unsigned char ip[16])
{
    unsigned char a[4];

    memset(ip, 0, 16);
    if (inet_pton(AF_INET, text, a) == 1) {
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, a, 4);
    } else {
        (void)inet_pton(AF_INET6, text, ip);
    }
}

static int lines_seen;
static char last_line[FTPDATA_LINE_MAX];

static void
on_line(void *arg, const char *line)
{
    (void)arg;
    lines_seen++;
    util_strlcpy(last_line, line, sizeof(last_line));
}

static struct sockaddr_in
v4(const char *ip, unsigned port)
{
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    (void)inet_pton(AF_INET, ip, &sin.sin_addr);
    return sin;
}

int
main(void)
{
    static const struct policy_rule rule = {.name = "ftp"};

    for (size_t i = 0; i < TLSSHIM_NELEMS(rows); i++) {
        const struct row *r = &rows[i];
        unsigned char ip[16], want[16];
        unsigned port = 0;
        int has_ip = -1, ok;

        unit_row("%s", r->line);
        ok = r->command ? ftpdata_parse_command(r->line, ip, &has_ip, &port)
                        : ftpdata_parse_reply(r->line, ip, &has_ip, &port);
        CHECK_INT(ok, r->ok);
        if (!r->ok || !ok)
            continue;
        CHECK_INT(port, r->port);
        CHECK_INT(has_ip, r->ip != NULL);
        if (r->ip != NULL) {
            want_ip(r->ip, want);
            CHECK(memcmp(ip, want, 16) == 0);
        }
    }

    /* lines split anywhere, CRLF or LF, overlong lines ignored */
    unit_row("%s", "ftpdata_feed");
    struct ftpdata_lines l = {.len = 0};
    ftpdata_feed(&l, "229 En", 6, on_line, NULL);
    CHECK_INT(lines_seen, 0);
    ftpdata_feed(&l, "tering (|||1|)\r\n150 ok\n", 23, on_line, NULL);
    CHECK_INT(lines_seen, 2);
    CHECK_STR(last_line, "150 ok");
    char big[400];
    memset(big, 'x', sizeof(big));
    big[sizeof(big) - 1] = '\n';
    ftpdata_feed(&l, big, sizeof(big), on_line, NULL);
    CHECK_INT(lines_seen, 3);   /* a long line: its head and tail */
    CHECK_INT(strlen(last_line) < FTPDATA_LINE_MAX, 1);
    ftpdata_feed(&l, "226 done\r\n", 10, on_line, NULL);
    CHECK_INT(lines_seen, 4);
    CHECK_STR(last_line, "226 done");

    /* long 227 and 229 answers (text of digits and commas before the
     * address) still give their address */
    unit_row("%s", "long answers");
    static const char *const longs[] = {"227 ", "229 "};
    for (int pad = 150; pad < 1200; pad += 37) {
        for (int k = 0; k < 2; k++) {
            char text[1400];
            unsigned char ip[16], want[16];
            unsigned port = 0;
            int has_ip = 0, n;
            n = snprintf(text, sizeof(text), "%s", longs[k]);
            for (int i = 0; i < pad; i++)
                text[n++] = (char)(i % 7 == 0 ? ',' : '0' + i % 10);
            n += snprintf(text + n, sizeof(text) - (size_t)n, "%s",
                          k == 0 ? " (127,0,0,1,94,27).\r\n"
                                 : " (|||6446|)\r\n");
            memset(&l, 0, sizeof(l));
            ftpdata_feed(&l, text, (size_t)n, on_line, NULL);
            CHECK_INT(ftpdata_parse_reply(last_line, ip, &has_ip, &port), 1);
            CHECK_INT(port, k == 0 ? 24091u : 6446u);
            if (k == 0) {
                want_ip("127.0.0.1", want);
                CHECK(memcmp(ip, want, 16) == 0);
            }
        }
    }

    /* the table: passive matches the named address or the control peer,
     * active needs the server as peer; each is taken once */
    unit_row("%s", "expectations");
    struct ftpdata_expect e, got;
    struct sockaddr_in to = v4("127.0.0.1", 5000), other = v4("127.0.0.2", 5000),
                       wrongport = v4("127.0.0.1", 5001),
                       server = v4("127.0.0.1", 20), stranger = v4("10.0.0.9", 20);
    memset(&e, 0, sizeof(e));
    e.rule = &rule;
    e.port = 5000;
    want_ip("127.0.0.1", e.peer_ip);
    e.expires_ms = util_now_ms() + 60000;
    util_strlcpy(e.verify_name, "ftp.test", sizeof(e.verify_name));
    CHECK_INT(ftpdata_any(), 0);
    ftpdata_expect(&e);
    CHECK_INT(ftpdata_any(), 1);
    CHECK_INT(ftpdata_take(0, (struct sockaddr *)&wrongport, NULL, &got), 0);
    CHECK_INT(ftpdata_take(0, (struct sockaddr *)&other, NULL, &got), 0);
    CHECK_INT(ftpdata_take(1, (struct sockaddr *)&to,
                           (struct sockaddr *)&server, &got), 0);
    CHECK_INT(ftpdata_take(0, (struct sockaddr *)&to, NULL, &got), 1);
    CHECK_STR(got.verify_name, "ftp.test");
    CHECK_INT(ftpdata_take(0, (struct sockaddr *)&to, NULL, &got), 0);
    CHECK_INT(ftpdata_any(), 0);

    e.active = 1;
    e.has_ip = 1;
    want_ip("127.0.0.1", e.ip);
    ftpdata_expect(&e);
    /* a stranger on the expected port, or the port on another local
     * address: refused (-1), the expectation stays for the server */
    CHECK_INT(ftpdata_take(1, (struct sockaddr *)&to,
                           (struct sockaddr *)&stranger, &got), -1);
    CHECK_INT(ftpdata_take(1, (struct sockaddr *)&other,
                           (struct sockaddr *)&server, &got), -1);
    CHECK_INT(ftpdata_take(1, (struct sockaddr *)&wrongport,
                           (struct sockaddr *)&stranger, &got), 0);
    CHECK_INT(ftpdata_take(1, (struct sockaddr *)&to,
                           (struct sockaddr *)&server, &got), 1);
    CHECK_INT(ftpdata_take(1, (struct sockaddr *)&to,
                           (struct sockaddr *)&stranger, &got), 0);

    /* a 227 answer that named another host than the control server's:
     * a connection there is refused (-1), one to the control server's
     * port is the data connection */
    struct sockaddr_in named = v4("127.0.0.3", 5000);
    e.active = 0;
    want_ip("127.0.0.3", e.ip);
    ftpdata_expect(&e);
    CHECK_INT(ftpdata_take(0, (struct sockaddr *)&named, NULL, &got), -1);
    CHECK_INT(ftpdata_take(0, (struct sockaddr *)&other, NULL, &got), 0);
    CHECK_INT(ftpdata_take(0, (struct sockaddr *)&to, NULL, &got), 1);
    CHECK_INT(ftpdata_take(0, (struct sockaddr *)&named, NULL, &got), 0);
    /* named = the control server: the same as the control server */
    want_ip("127.0.0.1", e.ip);
    ftpdata_expect(&e);
    CHECK_INT(ftpdata_take(0, (struct sockaddr *)&to, NULL, &got), 1);

    e.active = 0;
    e.expires_ms = util_now_ms() - 1;   /* expired: never matches */
    CHECK_INT(ftpdata_expect(&e), 0);
    CHECK_INT(ftpdata_take(0, (struct sockaddr *)&to, NULL, &got), 0);
    CHECK_INT(ftpdata_any(), 0);

    /* a full table refuses the newest; no live entry is overwritten */
    unit_row("%s", "full table");
    e.expires_ms = util_now_ms() + 60000;
    for (unsigned i = 0; i < 16; i++) {
        e.port = 6000 + i;
        CHECK_INT(ftpdata_expect(&e), 0);
    }
    e.port = 7000;
    CHECK_INT(ftpdata_expect(&e), -1);
    for (unsigned i = 0; i < 16; i++) {
        struct sockaddr_in a = v4("127.0.0.1", (unsigned short)(6000 + i));
        CHECK_INT(ftpdata_take(0, (struct sockaddr *)&a, NULL, &got), 1);
    }
    CHECK_INT(ftpdata_any(), 0);

    /* blind: a connection to the control server that no expectation
     * matches is refused until the transfer is over */
    unit_row("%s", "blind");
    unsigned char srv[16];
    want_ip("127.0.0.1", srv);
    ftpdata_blind(srv, 1, util_now_ms() + 60000);
    CHECK_INT(ftpdata_any(), 1);
    CHECK_INT(ftpdata_take(0, (struct sockaddr *)&to, NULL, &got), -2);
    CHECK_INT(ftpdata_take(0, (struct sockaddr *)&other, NULL, &got), 0);
    e.port = 5000;
    CHECK_INT(ftpdata_expect(&e), 0);
    CHECK_INT(ftpdata_take(0, (struct sockaddr *)&to, NULL, &got), 1);
    ftpdata_blind(srv, 0, 0);
    CHECK_INT(ftpdata_take(0, (struct sockaddr *)&to, NULL, &got), 0);
    CHECK_INT(ftpdata_any(), 0);
    ftpdata_blind(srv, 1, util_now_ms() - 1);   /* expired */
    CHECK_INT(ftpdata_take(0, (struct sockaddr *)&to, NULL, &got), 0);
    CHECK_INT(ftpdata_any(), 0);
    unit_row("%s", "");
    return unit_finish();
}
