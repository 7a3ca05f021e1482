/*
 * First-byte classification.  A TLS record header is content type 22
 * (handshake), major version 3 and a minor version of 1 to 4; a write
 * shorter than the header is judged on the bytes it has.
 */
#include "config.h"

#include "sniff.h"

int
sniff_is_tls_record(const unsigned char *buf, size_t len)
{
    if (len < 1 || buf[0] != 0x16)
        return 0;
    if (len >= 2 && buf[1] != 0x03)
        return 0;
    if (len >= 3 && (buf[2] < 0x01 || buf[2] > 0x04))
        return 0;
    return 1;
}
