/*
 * Owner words live in anonymous MAP_SHARED pages, so a fork shares them
 * with the child while everything else is copied.  Words of connections
 * that existed at a fork may be referenced by another process and are
 * never reused; the others go back on a process-local free list.
 */
#include "config.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "owner.h"

#define PAGE_WORDS 16384

/* guards the free list and the current page */
static pthread_mutex_t owner_lock = PTHREAD_MUTEX_INITIALIZER;
union slot {
    struct {
        owner_word word;
        _Atomic int relay;     /* pid of the connection's relay, or 0 */
    } live;
    union slot *next_free;     /* while on the free list */
};
static union slot *page;
static size_t page_used;
static union slot *free_slots;
static pid_t self_pid;

pid_t
owner_self(void)
{
    if (self_pid == 0)
        self_pid = getpid();
    return self_pid;
}

/* The child must not hand out words the parent may still hand out: it
 * forgets the parent's free list and partly used page. */
void
owner_after_fork_child(void)
{
    self_pid = getpid();
    pthread_mutex_init(&owner_lock, NULL);
    page = NULL;
    page_used = 0;
    free_slots = NULL;
}

owner_word *
owner_alloc(void)
{
    owner_word *w = NULL;

    pthread_mutex_lock(&owner_lock);
    if (free_slots != NULL) {
        w = &free_slots->live.word;
        free_slots = free_slots->next_free;
    } else {
        if (page == NULL || page_used == PAGE_WORDS) {
            void *p = mmap(NULL, PAGE_WORDS * sizeof(union slot),
                           PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                           -1, 0);
            if (p != MAP_FAILED) {
                page = p;
                page_used = 0;
            }
        }
        if (page != NULL && page_used < PAGE_WORDS)
            w = &page[page_used++].live.word;
    }
    pthread_mutex_unlock(&owner_lock);
    if (w != NULL) {
        atomic_store(w, owner_self());
        atomic_store(&((union slot *)(void *)w)->live.relay, 0);
    }
    return w;
}

void
owner_free(owner_word *w, int shared)
{
    if (w == NULL || shared)
        return;
    /* the word is the first member of its slot */
    union slot *s = (union slot *)(void *)w;
    pthread_mutex_lock(&owner_lock);
    s->next_free = free_slots;
    free_slots = s;
    pthread_mutex_unlock(&owner_lock);
}

int
owner_claim(owner_word *w)
{
    int me = owner_self(), cur = atomic_load(w);

    if (cur == me)
        return 0;
    if (cur == 0 && atomic_compare_exchange_strong(w, &cur, me))
        return 0;
    return atomic_load(w) == me ? 0 : -1;
}

int
owner_mine(const owner_word *w)
{
    return atomic_load(w) == owner_self();
}

void
owner_unclaim(owner_word *w)
{
    int me = owner_self();

    atomic_compare_exchange_strong(w, &me, 0);
}

void
owner_give(owner_word *w, pid_t pid)
{
    atomic_store(w, pid);
}

void
owner_set_relay(owner_word *w, pid_t pid)
{
    atomic_store(&((union slot *)(void *)w)->live.relay, pid);
}

pid_t
owner_relay(const owner_word *w)
{
    return atomic_load(&((const union slot *)(const void *)w)->live.relay);
}
