/*
 * freescan.so: checks that key material is wiped before its memory is
 * freed (tests/bats/secure.bats).  Preloaded before libtlsshim.so, it
 * wraps free(): every block freed is searched for each of the strings
 * FREESCAN_NEEDLE1 .. FREESCAN_NEEDLE4 (a passphrase, a line of a key's
 * PEM text) before it goes back to the allocator, and each block that
 * still holds one is reported on standard error:
 *
 *     freescan: a freed block of N bytes holds needle K
 *
 * At exit one line counts what was seen:
 *
 *     freescan: F blocks freed, H holding a needle
 */
#define _GNU_SOURCE

#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NEEDLES 4
#define NEEDLE_MAX 256

static char needle[NEEDLES][NEEDLE_MAX];
static size_t needle_len[NEEDLES];
static void (*real_free)(void *);
static unsigned long freed, holding;
static __thread int busy;

__attribute__((constructor)) static void
freescan_init(void)
{
    char name[32];

    for (int i = 0; i < NEEDLES; i++) {
        snprintf(name, sizeof(name), "FREESCAN_NEEDLE%d", i + 1);
        const char *v = getenv(name);
        if (v == NULL || *v == '\0' || strlen(v) >= NEEDLE_MAX)
            continue;
        needle_len[i] = strlen(v);
        memcpy(needle[i], v, needle_len[i]);
    }
    *(void **)&real_free = dlsym(RTLD_NEXT, "free");
    char line[64];
    int n = 0;
    for (int i = 0; i < NEEDLES; i++)
        n += needle_len[i] > 0;
    n = snprintf(line, sizeof(line), "freescan: watching %d needles\n", n);
    (void)!write(2, line, (size_t)n);
}

__attribute__((destructor)) static void
freescan_fini(void)
{
    char line[128];
    int n = snprintf(line, sizeof(line),
                     "freescan: %lu blocks freed, %lu holding a needle\n",
                     freed, holding);
    (void)!write(2, line, (size_t)n);
}

__attribute__((visibility("default"))) void
free(void *p)
{
    if (p == NULL)
        return;
    if (real_free == NULL)
        return;   /* before the constructor (dlsym's own use): leak it */
    if (!busy) {
        busy = 1;
        size_t size = malloc_usable_size(p);
        freed++;
        for (int i = 0; i < NEEDLES; i++) {
            if (needle_len[i] == 0 ||
                memmem(p, size, needle[i], needle_len[i]) == NULL)
                continue;
            char line[128];
            int n = snprintf(line, sizeof(line),
                             "freescan: a freed block of %zu bytes holds "
                             "needle %d\n", size, i + 1);
            (void)!write(2, line, (size_t)n);
            holding++;
        }
        busy = 0;
    }
    real_free(p);
}
