/*
 * Kernel TLS detection.  OpenSSL hands a connection's keys to the kernel
 * (SSL_OP_ENABLE_KTLS) only when it was built with kernel TLS and the
 * kernel has its tls module; after the handshake, BIO_get_ktls_send() and
 * BIO_get_ktls_recv() tell whether it did (src/conn.c).
 */
#include "config.h"

#include <openssl/opensslconf.h>
#include <stdio.h>
#include <unistd.h>

#include "ktls.h"
#include "util.h"

static int checked;       /* 1 once the answer below is known */
static int available;
static char reason[160];

int
ktls_available(char *why, size_t len)
{
    if (!__atomic_load_n(&checked, __ATOMIC_ACQUIRE)) {
#ifdef OPENSSL_NO_KTLS
        util_strlcpy(reason, "the OpenSSL tlsshim uses was built without "
                     "kernel TLS (OPENSSL_NO_KTLS)", sizeof(reason));
#else
        if (access("/sys/module/tls", F_OK) == 0 ||
            access("/proc/net/tls_stat", F_OK) == 0)
            available = 1;
        else
            util_strlcpy(reason, "the kernel has no tls module loaded "
                         "(no /sys/module/tls)", sizeof(reason));
#endif
        /* racing threads compute the same answer */
        __atomic_store_n(&checked, 1, __ATOMIC_RELEASE);
    }
    if (!available)
        util_strlcpy(why, reason, len);
    return available;
}
