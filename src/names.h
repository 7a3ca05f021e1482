/*
 * Address -> host name memory, fed by the resolver hooks (SPEC section 3).
 * Each thread remembers the names its own latest lookups returned each
 * address for; a bounded process-wide table keeps every name seen for an
 * address, so that a connect from another thread can tell whether the
 * name is ambiguous.
 */
#ifndef TLSSHIM_NAMES_H
#define TLSSHIM_NAMES_H

#include <stddef.h>
#include <sys/socket.h>

#define NAMES_MAX_LEN 256     /* a DNS name fits in 254 */
#define NAMES_PER_ADDR 4      /* names kept per address process-wide */

/* Record that a lookup of name returned addr (calling thread and global). */
void names_record(const char *name, const struct sockaddr *addr);
/* The calling thread's latest name for addr; 1 found, 0 not. */
int names_thread_lookup(const struct sockaddr *addr, char *name, size_t len);
/* Every name recorded for addr by any thread; returns the count. */
int names_global_lookup(const struct sockaddr *addr,
                        char names[][NAMES_MAX_LEN], int max);
/* Forget everything (tests, and a child after fork keeps it: no call). */
void names_reset(void);

#endif
