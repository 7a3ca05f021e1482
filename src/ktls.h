/*
 * Kernel TLS (the ktls key): whether this kernel and this OpenSSL can
 * carry a connection's records in the kernel.  The kernel's tls module is
 * never loaded by tlsshim: it is used only when already present.
 */
#ifndef TLSSHIM_KTLS_H
#define TLSSHIM_KTLS_H

#include <stddef.h>

/* 1 when OpenSSL was built with kernel TLS and the kernel has its tls
 * module (/sys/module/tls, or /proc/net/tls_stat when built in); 0 with
 * the reason in why.  Checked once per process. */
int ktls_available(char *why, size_t len);

#endif
