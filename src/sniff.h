/*
 * What the first bytes of a stream are: for action = auto, whether the
 * program begins a TLS handshake itself (SPEC section 3).
 */
#ifndef TLSSHIM_SNIFF_H
#define TLSSHIM_SNIFF_H

#include <stddef.h>

/* 1 if buf begins (or, when short, could begin) a TLS handshake record
 * 16 03 01..04; 0 otherwise. */
int sniff_is_tls_record(const unsigned char *buf, size_t len);

#endif
