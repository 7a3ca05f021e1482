/*
 * The system calls the core makes on sockets, through pointers.  In the
 * tlsshim command and the unit tests they are libc's own functions; inside
 * the preloaded module shim/real.c points them at the next definitions
 * (RTLD_NEXT), so that the core never re-enters its own hooks.
 */
#ifndef TLSSHIM_SYS_H
#define TLSSHIM_SYS_H

#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

struct tlsshim_sys {
    int (*socket)(int, int, int);
    int (*connect)(int, const struct sockaddr *, socklen_t);
    int (*close)(int);
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*write)(int, const void *, size_t);
    ssize_t (*recv)(int, void *, size_t, int);
    ssize_t (*send)(int, const void *, size_t, int);
    int (*poll)(struct pollfd *, nfds_t, int);
    int (*fcntl)(int, int, ...);
    int (*shutdown)(int, int);
    int (*getsockopt)(int, int, int, void *, socklen_t *);
    int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *,
                 const sigset_t *);
    int (*getaddrinfo)(const char *, const char *, const struct addrinfo *,
                       struct addrinfo **);
    void (*freeaddrinfo)(struct addrinfo *);
};

extern struct tlsshim_sys tlsshim_sys;

#endif
