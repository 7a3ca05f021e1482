/*
 * The name memory.  Per thread: a small ring of (address, name), newest
 * wins, in initial-exec TLS so that lookups take no lock and allocate
 * nothing.  Process-wide: an open-addressed table of addresses, each with
 * up to NAMES_PER_ADDR names, replaced in round-robin order when full; at
 * most GLOBAL_CAP addresses, the oldest forgotten first.  Guarded by
 * names_lock.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "names.h"
#include "util.h"

#define THREAD_SLOTS 32
#define GLOBAL_SLOTS 1024     /* power of two */
#define GLOBAL_CAP (GLOBAL_SLOTS / 4 * 3)

struct addr_key {
    unsigned char a[16];      /* IPv4 as IPv4-mapped IPv6 */
};

struct thread_entry {
    struct addr_key key;
    int used;
    char name[NAMES_MAX_LEN];
};

struct global_entry {
    struct addr_key key;
    int used;
    int nnames;
    int next;                 /* slot to replace when full */
    char names[NAMES_PER_ADDR][NAMES_MAX_LEN];
};

static __thread struct {
    struct thread_entry e[THREAD_SLOTS];
    unsigned next;
} tls_names __attribute__((tls_model("initial-exec")));

/* guarded by names_lock */
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static struct global_entry *global_table;
static unsigned global_used;
/* addresses in the order they were added, to forget the oldest first */
static struct addr_key global_order[GLOBAL_CAP];
static unsigned global_order_next;

static int
key_of(const struct sockaddr *sa, struct addr_key *k)
{
    memset(k, 0, sizeof(*k));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        k->a[10] = 0xff;
        k->a[11] = 0xff;
        memcpy(k->a + 12, &sin->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        memcpy(k->a, &sin6->sin6_addr, 16);
        return 0;
    }
    return -1;
}

static unsigned
key_hash(const struct addr_key *k)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < sizeof(k->a); i++)
        h = (h ^ k->a[i]) * 16777619u;
    return h;
}

/* A name worth remembering: not empty, not too long, and not an address
 * literal (a numeric lookup names nothing). */
static int
valid_name(const char *name)
{
    size_t n = strlen(name);
    unsigned char buf[16];

    if (n == 0 || n >= NAMES_MAX_LEN)
        return 0;
    return inet_pton(AF_INET, name, buf) != 1 &&
           inet_pton(AF_INET6, name, buf) != 1;
}

static void
normalise(char *dst, const char *name)
{
    size_t n = util_strlcpy(dst, name, NAMES_MAX_LEN);

    for (size_t i = 0; dst[i] != '\0'; i++)
        if (dst[i] >= 'A' && dst[i] <= 'Z')
            dst[i] = (char)(dst[i] - 'A' + 'a');
    if (n > 1 && dst[n - 1] == '.')
        dst[n - 1] = '\0';
}

/* Remove the entry in slot i, moving later entries of its probe run back
 * so that every remaining key is still found from its home slot
 * (backward-shift deletion for linear probing). */
static void
global_delete(unsigned i)
{
    const unsigned mask = GLOBAL_SLOTS - 1;
    unsigned j = i;

    global_table[i].used = 0;
    global_used--;
    for (;;) {
        j = (j + 1) & mask;
        if (!global_table[j].used)
            return;
        unsigned home = key_hash(&global_table[j].key) & mask;
        /* The entry at j may fill the hole at i unless its home lies
         * cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j)
                           : (home > i || home <= j);
        if (!stays) {
            global_table[i] = global_table[j];
            global_table[j].used = 0;
            i = j;
        }
    }
}

static struct global_entry *
global_find(const struct addr_key *k, unsigned *slot)
{
    unsigned h = key_hash(k) & (GLOBAL_SLOTS - 1);

    for (unsigned i = 0; i < GLOBAL_SLOTS; i++) {
        unsigned s = (h + i) & (GLOBAL_SLOTS - 1);
        if (!global_table[s].used)
            return NULL;
        if (memcmp(&global_table[s].key, k, sizeof(*k)) == 0) {
            if (slot != NULL)
                *slot = s;
            return &global_table[s];
        }
    }
    return NULL;
}

static struct global_entry *
global_slot(const struct addr_key *k, int create)
{
    if (global_table == NULL) {
        if (!create)
            return NULL;
        static struct global_entry table[GLOBAL_SLOTS];
        global_table = table;
    }
    struct global_entry *e = global_find(k, NULL);
    if (e != NULL || !create)
        return e;
    /* Keep the table at most three quarters full: past that, the oldest
     * address goes (the memory is bounded, SPEC 3). */
    if (global_used >= GLOBAL_CAP) {
        unsigned s;
        if (global_find(&global_order[global_order_next], &s) != NULL)
            global_delete(s);
    }
    global_order[global_order_next] = *k;
    global_order_next = (global_order_next + 1) % GLOBAL_CAP;
    unsigned h = key_hash(k) & (GLOBAL_SLOTS - 1);
    for (;; h = (h + 1) & (GLOBAL_SLOTS - 1)) {
        e = &global_table[h];
        if (!e->used) {
            memset(e, 0, sizeof(*e));
            e->used = 1;
            e->key = *k;
            global_used++;
            return e;
        }
    }
}

void
names_record(const char *name, const struct sockaddr *addr)
{
    struct addr_key k;
    char norm[NAMES_MAX_LEN];

    if (name == NULL || !valid_name(name) || key_of(addr, &k) < 0)
        return;
    normalise(norm, name);

    /* Thread memory: replace an entry for the same address, else the
     * oldest slot. */
    struct thread_entry *t = NULL;
    for (unsigned i = 0; i < THREAD_SLOTS; i++) {
        if (tls_names.e[i].used &&
            memcmp(&tls_names.e[i].key, &k, sizeof(k)) == 0) {
            t = &tls_names.e[i];
            break;
        }
    }
    if (t == NULL) {
        t = &tls_names.e[tls_names.next % THREAD_SLOTS];
        tls_names.next++;
    }
    t->key = k;
    t->used = 1;
    util_strlcpy(t->name, norm, sizeof(t->name));

    pthread_mutex_lock(&names_lock);
    struct global_entry *g = global_slot(&k, 1);
    if (g != NULL) {
        int found = -1;
        for (int i = 0; i < g->nnames; i++)
            if (strcmp(g->names[i], norm) == 0)
                found = i;
        if (found < 0) {
            int slot;
            if (g->nnames < NAMES_PER_ADDR) {
                slot = g->nnames++;
            } else {
                slot = g->next;
                g->next = (g->next + 1) % NAMES_PER_ADDR;
            }
            util_strlcpy(g->names[slot], norm, NAMES_MAX_LEN);
        }
    }
    pthread_mutex_unlock(&names_lock);
}

int
names_thread_lookup(const struct sockaddr *addr, char *name, size_t len)
{
    struct addr_key k;

    if (key_of(addr, &k) < 0)
        return 0;
    for (unsigned i = 0; i < THREAD_SLOTS; i++) {
        if (tls_names.e[i].used &&
            memcmp(&tls_names.e[i].key, &k, sizeof(k)) == 0) {
            util_strlcpy(name, tls_names.e[i].name, len);
            return 1;
        }
    }
    return 0;
}

int
names_global_lookup(const struct sockaddr *addr, char names[][NAMES_MAX_LEN],
                    int max)
{
    struct addr_key k;
    int n = 0;

    if (key_of(addr, &k) < 0)
        return 0;
    pthread_mutex_lock(&names_lock);
    struct global_entry *g = global_slot(&k, 0);
    if (g != NULL)
        for (int i = 0; i < g->nnames && n < max; i++)
            util_strlcpy(names[n++], g->names[i], NAMES_MAX_LEN);
    pthread_mutex_unlock(&names_lock);
    return n;
}

void
names_reset(void)
{
    memset(&tls_names, 0, sizeof(tls_names));
    pthread_mutex_lock(&names_lock);
    if (global_table != NULL)
        memset(global_table, 0, sizeof(struct global_entry) * GLOBAL_SLOTS);
    global_used = 0;
    global_order_next = 0;
    pthread_mutex_unlock(&names_lock);
}
