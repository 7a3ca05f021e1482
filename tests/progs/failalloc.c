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
 */
#define _GNU_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);

static __thread int armed;
static __thread long seen;
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
    return __libc_malloc(n);
}

__attribute__((visibility("default"))) void *
calloc(size_t n, size_t size)
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(n, size);
}

__attribute__((visibility("default"))) void *
realloc(void *p, size_t n)
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_realloc(p, n);
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
