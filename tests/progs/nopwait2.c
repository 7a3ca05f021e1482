/*
 * nopwait2.so: epoll_pwait2() as a kernel before Linux 5.11 (or valgrind)
 * has it: failing with ENOSYS, although glibc has the function.
 * Preloaded after libtlsshim.so (tests/bats/events.bats), it is what the
 * shim finds as the real epoll_pwait2.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <time.h>

__attribute__((visibility("default"))) int
epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
             const struct timespec *timeout, const sigset_t *sigmask)
{
    (void)epfd;
    (void)events;
    (void)maxevents;
    (void)timeout;
    (void)sigmask;
    errno = ENOSYS;
    return -1;
}
