/*
 * Default system call table: libc's functions.  The preloaded module
 * replaces every entry with the RTLD_NEXT definition before first use.
 */
#include "config.h"

#include <fcntl.h>
#include <unistd.h>

#include "sys.h"

struct tlsshim_sys tlsshim_sys = {
    .socket = socket,
    .connect = connect,
    .close = close,
    .read = read,
    .write = write,
    .recv = recv,
    .send = send,
    .poll = poll,
    .fcntl = fcntl,
    .shutdown = shutdown,
    .getsockopt = getsockopt,
    .ppoll = ppoll,
    .getaddrinfo = getaddrinfo,
    .freeaddrinfo = freeaddrinfo,
};
