/*
 * State shared by the hooks: the loaded policy (or why it failed to load),
 * and small helpers to turn the core's negated errno results into the
 * program's errno.
 */
#ifndef TLSSHIM_SHIM_H
#define TLSSHIM_SHIM_H

#include <errno.h>
#include <sys/types.h>
#include <unistd.h>

#include "owner.h"
#include "policy.h"
#include "real.h"
#include "util.h"

#define HOOK TLSSHIM_EXPORT

/* Make sure real symbols are resolved and the policy loaded. */
void shim_init(void);
/* The policy, or NULL when it could not be loaded (fail closed). */
const struct policy *shim_policy(void);
/* Why the policy could not be loaded (for the EACCES log line). */
const char *shim_policy_error(void);
/* Register the exit handler once, after OpenSSL initialised. */
void shim_register_exit(void);

/* Convert a core result (>= 0, or -errno) to the libc convention. */
static inline ssize_t
shim_ret(ssize_t rv)
{
    if (rv < 0) {
        errno = (int)-rv;
        return -1;
    }
    return rv;
}

/* Is fd an inet stream socket?  Costs one getsockopt and getsockname. */
int shim_is_inet_stream(int fd);

/* glibc's fortified entry points have no public prototypes. */
#include <poll.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/socket.h>
ssize_t __read_chk(int, void *, size_t, size_t);
ssize_t __recv_chk(int, void *, size_t, size_t, int);
ssize_t __recvfrom_chk(int, void *, size_t, size_t, int, struct sockaddr *,
                       socklen_t *);
int __poll_chk(struct pollfd *, nfds_t, int, size_t);
int __ppoll_chk(struct pollfd *, nfds_t, const struct timespec *,
                const sigset_t *, size_t);
int __select(int, fd_set *, fd_set *, fd_set *, struct timeval *);
int __dprintf_chk(int, int, const char *, ...);
#include <stdarg.h>
int __vdprintf_chk(int, int, const char *, va_list);

/* action = enforce (hooks_enforce.c): the program's first write on an
 * enforce connection.  Returns 1 when it is a ClientHello that the enforce
 * module's hooks made (the fd is the program's again: write it as is), 0
 * when the engine takes the write: plaintext (tlsshim does the TLS, as
 * for auto) or a failed connection (a ClientHello nobody announced). */
struct conn;
int shim_enforce_first_write(struct conn *c, const void *buf, size_t len);
/* An enforce-rule connection begins: let libtlsshim-enforce.so (when
 * loaded) reach libtlsshim.so before the program's hello is made. */
void shim_enforce_attach(void);
/* How much of a gather write is looked at for that. */
#define SHIM_HELLO_HEAD 2048

/* Set while relay_handoff() forks (the fork handlers leave owners). */
extern __thread int shim_forking_relay;

/*
 * In a vfork() child: the memory (our tables, the connections) is the
 * suspended parent's, the descriptor table the child's own, so nothing
 * of ours may change.  Costs a getpid().
 */
static inline int
shim_in_vfork_child(void)
{
    return getpid() != owner_self();
}

/* epoll bookkeeping for tracked fds (hooks_poll.c), dropped at close. */
void shim_epoll_forget_fd(int fd);
/* The same for every fd from lo to hi (close_range, closefrom). */
void shim_epoll_forget_range(unsigned lo, unsigned hi);
/* newfd became a dup of oldfd, an untracked fd: a dup of an epoll fd is
 * the same set. */
void shim_epoll_dup_fd(int oldfd, int newfd);
/* Forget every epoll fd, set and registration, without a system call (a
 * relay process, which closed them all). */
void shim_epoll_drop_all(void);
/* A program's read or write on tracked fd (c) returned; eagain holds
 * EPOLLIN/EPOLLOUT when it failed with EAGAIN in that direction. */
struct conn;
void shim_epoll_note_io(int fd, struct conn *c, unsigned eagain);

#endif
