/*
 * Resolution of the next definitions.  Runs from the constructor, and
 * lazily from any hook called before it (other libraries' constructors).
 * A missing symbol (an older glibc without epoll_pwait2, say) stays NULL
 * and its hook fails with ENOSYS, as the missing function would.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdatomic.h>

#include "real.h"
#include "sys.h"

struct shim_real real;
static atomic_int real_done;

#define RESOLVE(field, name) \
    (*(void **)&real.field = dlsym(RTLD_NEXT, name))

void
real_init(void)
{
    if (atomic_load_explicit(&real_done, memory_order_acquire))
        return;
    RESOLVE(socket, "socket");
    RESOLVE(connect, "connect");
    RESOLVE(accept, "accept");
    RESOLVE(accept4, "accept4");
    RESOLVE(listen, "listen");
    RESOLVE(getpeername, "getpeername");
    RESOLVE(close, "close");
    RESOLVE(dup, "dup");
    RESOLVE(dup2, "dup2");
    RESOLVE(dup3, "dup3");
    RESOLVE(fcntl, "fcntl");
    RESOLVE(fcntl64, "fcntl64");
    RESOLVE(ioctl, "ioctl");
    RESOLVE(close_range, "close_range");
    RESOLVE(closefrom, "closefrom");
    RESOLVE(read, "read");
    RESOLVE(write, "write");
    RESOLVE(recv, "recv");
    RESOLVE(send, "send");
    RESOLVE(recvfrom, "recvfrom");
    RESOLVE(sendto, "sendto");
    RESOLVE(readv, "readv");
    RESOLVE(writev, "writev");
    RESOLVE(recvmsg, "recvmsg");
    RESOLVE(sendmsg, "sendmsg");
    RESOLVE(read_chk, "__read_chk");
    RESOLVE(recv_chk, "__recv_chk");
    RESOLVE(recvfrom_chk, "__recvfrom_chk");
    RESOLVE(shutdown, "shutdown");
    RESOLVE(getsockopt, "getsockopt");
    RESOLVE(poll, "poll");
    RESOLVE(ppoll, "ppoll");
    RESOLVE(select, "select");
    RESOLVE(pselect, "pselect");
    RESOLVE(epoll_create, "epoll_create");
    RESOLVE(epoll_create1, "epoll_create1");
    RESOLVE(epoll_ctl, "epoll_ctl");
    RESOLVE(epoll_wait, "epoll_wait");
    RESOLVE(epoll_pwait, "epoll_pwait");
    RESOLVE(epoll_pwait2, "epoll_pwait2");
    RESOLVE(getaddrinfo, "getaddrinfo");
    RESOLVE(freeaddrinfo, "freeaddrinfo");
    RESOLVE(gethostbyname, "gethostbyname");
    RESOLVE(gethostbyname2, "gethostbyname2");
    RESOLVE(gethostbyname_r, "gethostbyname_r");
    RESOLVE(gethostbyname2_r, "gethostbyname2_r");
    RESOLVE(recvmmsg, "recvmmsg");
    RESOLVE(sendmmsg, "sendmmsg");
    RESOLVE(sendfile, "sendfile");
    RESOLVE(sendfile64, "sendfile64");
    RESOLVE(splice, "splice");

    tlsshim_sys.socket = real.socket;
    tlsshim_sys.connect = real.connect;
    tlsshim_sys.close = real.close;
    tlsshim_sys.read = real.read;
    tlsshim_sys.write = real.write;
    tlsshim_sys.recv = real.recv;
    tlsshim_sys.send = real.send;
    tlsshim_sys.poll = real.poll;
    tlsshim_sys.fcntl = real.fcntl;
    tlsshim_sys.shutdown = real.shutdown;
    tlsshim_sys.getsockopt = real.getsockopt;
    tlsshim_sys.ppoll = real.ppoll;
    tlsshim_sys.getaddrinfo = real.getaddrinfo;
    tlsshim_sys.freeaddrinfo = real.freeaddrinfo;
    atomic_store_explicit(&real_done, 1, memory_order_release);
}
