/*
 * The fd table: pages of atomic connection pointers.  Readers never lock;
 * writers (connect, dup, close) exchange entries atomically, and only page
 * allocation takes table_lock.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include "fdtable.h"

_Atomic(_Atomic(struct conn *) *) fdtable_pages[FDTABLE_PAGES];

/* guards page allocation only */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static _Atomic(struct conn *) *
page_for(unsigned u, int create)
{
    _Atomic(struct conn *) *page;
    unsigned p = u >> FDTABLE_PAGE_BITS;

    page = atomic_load_explicit(&fdtable_pages[p], memory_order_acquire);
    if (page != NULL || !create)
        return page;
    pthread_mutex_lock(&table_lock);
    page = atomic_load_explicit(&fdtable_pages[p], memory_order_acquire);
    if (page == NULL) {
        page = calloc(FDTABLE_PAGE_SIZE, sizeof(*page));
        if (page != NULL)
            atomic_store_explicit(&fdtable_pages[p], page,
                                  memory_order_release);
    }
    pthread_mutex_unlock(&table_lock);
    return page;
}

struct conn *
fdtable_exchange(int fd, struct conn *c, int *ok)
{
    unsigned u = (unsigned)fd;
    _Atomic(struct conn *) *page;

    *ok = 0;
    if (u >= FDTABLE_PAGE_SIZE * FDTABLE_PAGES)
        return NULL;
    page = page_for(u, c != NULL);
    if (page == NULL) {
        *ok = (c == NULL);
        return NULL;
    }
    *ok = 1;
    return atomic_exchange_explicit(&page[u & (FDTABLE_PAGE_SIZE - 1)], c,
                                    memory_order_acq_rel);
}

void
fdtable_foreach(void (*fn)(int fd, struct conn *c, void *arg), void *arg)
{
    for (unsigned p = 0; p < FDTABLE_PAGES; p++) {
        _Atomic(struct conn *) *page =
            atomic_load_explicit(&fdtable_pages[p], memory_order_acquire);
        if (page == NULL)
            continue;
        for (unsigned i = 0; i < FDTABLE_PAGE_SIZE; i++) {
            struct conn *c = atomic_load_explicit(&page[i],
                                                  memory_order_acquire);
            if (c != NULL)
                fn((int)(p * FDTABLE_PAGE_SIZE + i), c, arg);
        }
    }
}
