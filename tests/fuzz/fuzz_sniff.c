/*
 * Fuzz target: the first-bytes classifier (src/sniff.c), which parses a
 * ClientHello for its SNI and versions and recognises plaintext
 * protocols.  The first input byte chooses the direction (client or
 * server bytes); the rest is the stream's beginning.  Checked besides
 * memory errors: the result names a protocol, its detail is a terminated
 * string of printable bytes (it goes into log lines and JSON), and every
 * prefix of the input is classified too (the classifier sees whatever
 * one read returned).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sniff.h"

static void
classify(const unsigned char *buf, size_t len, int from_client)
{
    struct sniff_result res;

    memset(&res, 0xa5, sizeof(res));
    sniff_classify(buf, len, from_client, &res);
    if (res.proto == NULL || res.proto[0] == '\0') {
        fprintf(stderr, "sniff: no protocol for %zu bytes\n", len);
        abort();
    }
    if (memchr(res.detail, '\0', sizeof(res.detail)) == NULL) {
        fprintf(stderr, "sniff: detail not terminated\n");
        abort();
    }
    for (const char *p = res.detail; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f) {
            fprintf(stderr, "sniff: control byte 0x%02x in detail \"%s\"\n",
                    (unsigned char)*p, res.detail);
            abort();
        }
    (void)sniff_is_tls_record(buf, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int from_client = data[0] & 1;
    size_t len = size - 1;
    /* An exact-size copy of each prefix: reading past it is caught. */
    size_t step = len > 64 ? len / 16 : 1;

    for (size_t n = 0; n <= len; n += step) {
        unsigned char *buf = malloc(n ? n : 1);
        if (buf == NULL)
            return 0;
        memcpy(buf, data + 1, n);
        classify(buf, n, from_client);
        free(buf);
    }
    if (len % step != 0) {
        unsigned char *buf = malloc(len ? len : 1);
        if (buf == NULL)
            return 0;
        memcpy(buf, data + 1, len);
        classify(buf, len, from_client);
        free(buf);
    }
    return 0;
}
