/*
 * What the first bytes of a stream are: for action = auto, whether the
 * program begins a TLS handshake itself (SPEC section 3); for audit, which
 * protocol a connection speaks (SPEC section 8, first_bytes).
 */
#ifndef TLSSHIM_SNIFF_H
#define TLSSHIM_SNIFF_H

#include <stddef.h>

/* 1 if buf begins (or, when short, could begin) a TLS handshake record
 * 16 03 01..04; 0 otherwise. */
int sniff_is_tls_record(const unsigned char *buf, size_t len);

/*
 * 1 if buf begins with a whole TLS handshake record header: 16, 03
 * 01..04, and a record length TLS allows (1..16384 + 2048).  This is what
 * action = auto and enforce take as the program speaking TLS: a shorter
 * first write (1-4 bytes, a header written in pieces) shows no header
 * yet, and is plaintext (SPEC section 3).
 */
int sniff_tls_header(const unsigned char *buf, size_t len);

/*
 * A ClientHello at the start of buf: 1 with its client random and its SNI
 * host name (sni gets "" when it has none, or one that is not printable
 * ASCII), 0 when buf does not hold that much of a ClientHello.
 */
int sniff_client_hello(const unsigned char *buf, size_t len,
                       unsigned char random[32], char *sni, size_t snilen);

struct sniff_result {
    const char *proto;   /* "tls", "http", "smtp", ..., "unknown" */
    char detail[256];    /* tls: "sni=NAME versions=...", http: method,
                          * else empty: never payload beyond that */
};

/*
 * Classify the first bytes of a stream.  from_client: the bytes were
 * sent by the connecting side (a request, a ClientHello); otherwise by
 * the accepting side (a greeting).
 */
void sniff_classify(const unsigned char *buf, size_t len, int from_client,
                    struct sniff_result *out);

#endif
