/*
 * Fuzz target: the client STARTTLS dialogues (src/starttls.c) against a
 * malicious server, and mysql's sequence id translation.  The first input
 * byte chooses the protocol (byte % 9 + 1: smtp ... mysql); then ops, one
 * byte each (op % 4) with a length byte and that many bytes where they
 * carry data:
 *   0 the server sends the bytes         1 the program writes them (mysql's
 *                                          login, when the dialogue waits)
 *   2 the handshake succeeds (on UPGRADE) 3 the bytes after the first pass
 *                                          the translation, the program's
 *                                          way (first byte & 8) or the
 *                                          server's, in pieces of first
 *                                          byte % 8 + 1 bytes and whole
 * Checked besides memory errors: every length stays within its buffer;
 * what is sent is sent whole once; mysql shows one whole packet with
 * CLIENT_SSL cleared, rebuilt (filler and reserved bytes zero), and its
 * SSLRequest is 32 bytes with CLIENT_SSL set;
 * the translation does not depend on how the bytes were split.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "starttls.h"

static void
bug(const char *what)
{
    fprintf(stderr, "fuzz_starttls: %s\n", what);
    abort();
}

static void
check_bounds(const struct starttls *st)
{
    if (st->in_len > sizeof(st->in) || st->out_len > sizeof(st->out) ||
        st->out_off > st->out_len || st->show_len > sizeof(st->show) ||
        st->show_off > st->show_len || st->login_len > sizeof(st->login))
        bug("a length beyond its buffer");
    if (memchr(st->why, '\0', sizeof(st->why)) == NULL)
        bug("why not terminated");
}

/* mysql: what the program is shown is one packet, CLIENT_SSL cleared
 * (unless the server did not offer it: REFUSED shows it as it came). */
static void
check_mysql_show(const struct starttls *st, enum starttls_status s)
{
    if (st->proto != STARTTLS_MYSQL || st->show_len == 0)
        return;
    size_t len = (size_t)st->show[0] | (size_t)st->show[1] << 8 |
                 (size_t)st->show[2] << 16;
    if (st->show_len != 4 + len)
        bug("mysql shows other than one packet");
    if (s == STARTTLS_LOGIN) {
        const unsigned char *nul = memchr(st->show + 5, '\0', len - 1);
        size_t caps = (size_t)(nul - st->show) + 1 + 4 + 8 + 1;
        if (nul == NULL || caps + 2 > st->show_len)
            bug("mysql shows a greeting it could not parse");
        if (st->show[caps + 1] & 0x08)
            bug("mysql shows CLIENT_SSL");
        /* rebuilt: the filler and the 6 reserved bytes before MariaDB's
         * flags are zeros, whatever the server sent there */
        static const unsigned char zeros[6];
        if (caps + 2 + 1 + 2 + 2 + 1 + 6 > st->show_len ||
            st->show[caps - 1] != 0 ||
            memcmp(st->show + caps + 8, zeros, sizeof(zeros)) != 0)
            bug("mysql shows a greeting not rebuilt");
    }
}

/* Run the dialogue until it waits; what it sends is checked and taken. */
static enum starttls_status
drive(struct starttls *st)
{
    enum starttls_status s;

    while ((s = starttls_next(st)) == STARTTLS_WRITE) {
        check_bounds(st);
        if (st->out_len == 0 || st->out_off != 0)
            bug("WRITE with nothing new to send");
        if (st->proto == STARTTLS_MYSQL && !st->tls &&
            (st->out_len != 36 || !(st->out[5] & 0x08) || st->out[3] != 1))
            bug("mysql's SSLRequest is malformed");
        st->out_off = st->out_len;
    }
    check_bounds(st);
    check_mysql_show(st, s);
    return s;
}

static int
dir_equal(const struct starttls_seqdir *a, const struct starttls_seqdir *b)
{
    return a->header == b->header && a->length == b->length &&
           a->left == b->left;
}

static int
seq_equal(const struct starttls_seq *a, const struct starttls_seq *b)
{
    return a->active == b->active && dir_equal(&a->up, &b->up) &&
           dir_equal(&a->down, &b->down);
}

/* The bytes in pieces of piece bytes, and whole: the same output and
 * state (a packet split anywhere); going up, a state advanced without
 * output is the state that wrote. */
static void
translate(int up, const unsigned char *p, size_t n, size_t piece)
{
    struct starttls_seq pieces, whole, dry;
    unsigned char out1[256], out2[256];

    starttls_seq_init(&pieces);
    starttls_seq_init(&whole);
    starttls_seq_init(&dry);
    for (size_t off = 0; off < n; off += piece) {
        size_t k = n - off < piece ? n - off : piece;
        if (up) {
            starttls_seq_up(&pieces, out1 + off, p + off, k);
            starttls_seq_up(&dry, NULL, p + off, k);
            if (!seq_equal(&pieces, &dry))
                bug("a state advanced without output differs");
        } else {
            memcpy(out1 + off, p + off, k);
            starttls_seq_down(&pieces, out1 + off, k);
        }
    }
    if (up) {
        starttls_seq_up(&whole, out2, p, n);
    } else {
        memcpy(out2, p, n);
        starttls_seq_down(&whole, out2, n);
    }
    if (memcmp(out1, out2, n) != 0 ||
        !seq_equal(&pieces, &whole))
        bug("the translation depends on how the bytes were split");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct starttls st;
    enum starttls_status s;
    size_t pos = 1;

    if (size < 1)
        return 0;
    starttls_init(&st, (enum starttls_proto)(data[0] % 9 + 1), "db.test",
                  "[192.0.2.1]");
    s = drive(&st);
    while (pos < size) {
        unsigned op = data[pos++] % 4;
        size_t len = 0;
        const uint8_t *p = data + pos;
        if (op != 2) {
            if (pos >= size)
                break;
            len = data[pos++];
            p = data + pos;
            if (len > size - pos)
                len = size - pos;
            pos += len;
        }
        switch (op) {
        case 0:
            if (s != STARTTLS_READ && s != STARTTLS_LOGIN)
                break;
            {
                size_t room;
                unsigned char *in = starttls_room(&st, &room);
                size_t n = len < room ? len : room;
                memcpy(in, p, n);
                starttls_received(&st, n);
            }
            s = drive(&st);
            break;
        case 1:
            if (s != STARTTLS_LOGIN)
                break;
            if (starttls_login(&st, p, len) > len)
                bug("the login took more than was written");
            s = drive(&st);
            break;
        case 2:
            if (s != STARTTLS_UPGRADE)
                break;
            starttls_tls_up(&st);
            s = drive(&st);
            break;
        default:
            /* the first byte: direction and piece size */
            if (len > 0)
                translate(p[0] & 8, p + 1, len - 1, p[0] % 8 + 1);
            break;
        }
    }
    return 0;
}
