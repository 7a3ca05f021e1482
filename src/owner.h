/*
 * Which process owns a connection after fork() (SPEC section 5): one word
 * per connection in memory shared across fork, holding the owner's pid,
 * or 0 when nobody has used the connection since the last fork.  The
 * first process to do I/O claims it with compare-and-swap; any other
 * gets EIO, and only the owner sends close_notify.
 */
#ifndef TLSSHIM_OWNER_H
#define TLSSHIM_OWNER_H

#include <stdatomic.h>
#include <sys/types.h>

#include "util.h"

typedef _Atomic int owner_word;

/* A word owned by the calling process; NULL when shared memory cannot be
 * had. */
owner_word *owner_alloc(void) TLSSHIM_WARN_UNUSED;
/* Give the word back.  shared: the word was visible to another process
 * (the connection existed at a fork), so it is never reused. */
void owner_free(owner_word *w, int shared);
/* 0 when the calling process owns the connection (claiming it if nobody
 * does), -1 when another process does. */
int owner_claim(owner_word *w);
/* 1 if the calling process is the owner. */
int owner_mine(const owner_word *w);
/* Before fork: a connection this process owns becomes unclaimed. */
void owner_unclaim(owner_word *w);
/* Hand the connection to pid (a relay). */
void owner_give(owner_word *w, pid_t pid);
/* The relay serving the connection (0: none), shared like the owner. */
void owner_set_relay(owner_word *w, pid_t pid);
pid_t owner_relay(const owner_word *w);
/* The calling process's pid, cached (updated in the fork child). */
pid_t owner_self(void);
/* To be called in the child after fork. */
void owner_after_fork_child(void);

#endif
