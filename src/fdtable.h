/*
 * fd -> connection, read lock-free on every hooked call.  A two-level
 * array of atomic pointers: an untracked fd costs two loads and a branch.
 * Pages are allocated under table_lock and never freed.
 */
#ifndef TLSSHIM_FDTABLE_H
#define TLSSHIM_FDTABLE_H

#include <stdatomic.h>
#include <stddef.h>

struct conn;

#define FDTABLE_PAGE_BITS 10
#define FDTABLE_PAGE_SIZE (1u << FDTABLE_PAGE_BITS)
#define FDTABLE_PAGES 1024u   /* 1M descriptors */

extern _Atomic(_Atomic(struct conn *) *) fdtable_pages[FDTABLE_PAGES];

/* The connection of fd, without taking a reference; NULL if untracked. */
static inline struct conn *
fdtable_peek(int fd)
{
    unsigned u = (unsigned)fd;
    _Atomic(struct conn *) *page;

    if (u >= FDTABLE_PAGE_SIZE * FDTABLE_PAGES)
        return NULL;
    page = atomic_load_explicit(&fdtable_pages[u >> FDTABLE_PAGE_BITS],
                                memory_order_acquire);
    if (page == NULL)
        return NULL;
    return atomic_load_explicit(&page[u & (FDTABLE_PAGE_SIZE - 1)],
                                memory_order_acquire);
}

/* Map fd to c (c may be NULL); returns the previous entry. -1 on ENOMEM
 * or an fd out of range is reported through *ok = 0. */
struct conn *fdtable_exchange(int fd, struct conn *c, int *ok);

/* Call fn for every tracked fd (exit, fork).  Not lock-free. */
void fdtable_foreach(void (*fn)(int fd, struct conn *c, void *arg), void *arg);

#endif
