/*
 * failalloc.so: an allocation-failure injector for the fault tests
 * (tests/bats/faults.bats).  Preloaded before libtlsshim.so, it wraps
 * connect(): during the FAILALLOC_CONNECT-th call (1-based) of the
 * process, the FAILALLOC_NTH-th malloc/calloc/realloc made by the calling
 * thread returns NULL with errno ENOMEM (0: count only).  Everything the
 * shim and OpenSSL allocate while setting that connection up goes through
 * these, so a test can fail each allocation point in turn and check that
 * only that connection fails.  When the call returns, one line goes to
 * standard error:
 *
 *     failalloc: connect K: M allocations, failed #N
 *
 * The allocations it lets through go to the next malloc, calloc and
 * realloc in the lookup order (dlsym RTLD_NEXT): glibc's, or a sanitizer
 * runtime's preloaded after it, which then also sees every free().
 */
#define _GNU_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void *(*next_malloc)(size_t);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);

/* dlsym() may allocate while it looks the functions up: served from here
 * (and never freed: it happens once, for the loader's own records). */
static unsigned char boot_heap[4096] __attribute__((aligned(16)));
static size_t boot_used;
static int resolving;

static void *
boot_alloc(size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;

    if (need < n || need > sizeof(boot_heap) - boot_used) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = boot_heap + boot_used;
    boot_used += need;
    return p;   /* static storage: already zero */
}

static int
resolve(void)
{
    if (next_malloc != NULL && next_calloc != NULL && next_realloc != NULL)
        return 0;
    if (resolving)
        return -1;
    resolving = 1;
    *(void **)&next_malloc = dlsym(RTLD_NEXT, "malloc");
    *(void **)&next_calloc = dlsym(RTLD_NEXT, "calloc");
    *(void **)&next_realloc = dlsym(RTLD_NEXT, "realloc");
    resolving = 0;
    return next_malloc != NULL && next_calloc != NULL &&
                   next_realloc != NULL
               ? 0
               : -1;
}

__attribute__((constructor)) static void
failalloc_init(void)
{
    if (resolve() < 0) {
        static const char msg[] = "failalloc: no malloc to forward to\n";
        (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
        _exit(127);
    }
}

/* initial-exec: no __tls_get_addr() call, which a sanitizer runtime
 * intercepts and cannot yet forward while it initialises (and calls
 * malloc) */
#define TLS_IE __attribute__((tls_model("initial-exec")))
static __thread int armed TLS_IE;
static __thread long seen TLS_IE;
static long nth;
static int connects;

/* True when this allocation is the one to fail. */
static int
fail_now(void)
{
    if (!armed)
        return 0;
    seen++;
    return nth > 0 && seen == nth;
}

__attribute__((visibility("default"))) void *
malloc(size_t n)
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    if (resolve() < 0)
        return resolving ? boot_alloc(n) : NULL;
    return next_malloc(n);
}

__attribute__((visibility("default"))) void *
calloc(size_t n, size_t size)
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    if (resolve() < 0) {
        if (!resolving || (size != 0 && n > (size_t)-1 / size))
            return NULL;
        return boot_alloc(n * size);
    }
    return next_calloc(n, size);
}

__attribute__((visibility("default"))) void *
realloc(void *p, size_t n)
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    if (resolve() < 0)
        return NULL;
    return next_realloc(p, n);
}

static long
env_long(const char *name)
{
    const char *v = getenv(name);
    return v != NULL ? strtol(v, NULL, 10) : 0;
}

__attribute__((visibility("default"))) int
connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    static int (*next)(int, const struct sockaddr *, socklen_t);
    char line[128];
    int rv, saved, n;

    if (next == NULL)
        next = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(
            RTLD_NEXT, "connect");
    if (next == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (++connects != env_long("FAILALLOC_CONNECT"))
        return next(fd, sa, len);
    nth = env_long("FAILALLOC_NTH");
    seen = 0;
    armed = 1;
    rv = next(fd, sa, len);
    saved = errno;
    armed = 0;
    n = snprintf(line, sizeof(line),
                 "failalloc: connect %d: %ld allocations, failed #%ld\n",
                 connects, seen, nth <= seen ? nth : 0);
    if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nothing more to do */
    }
    errno = saved;
    return rv;
}
