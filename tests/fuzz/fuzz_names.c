/*
 * Fuzz target: the name memory (src/names.c).  The input is a program of
 * operations on a few addresses (IPv4, the same as IPv4-mapped IPv6, raw
 * ones) and names: record, look up in this thread and process-wide,
 * record from another thread, fill the process-wide table past the point
 * where it recycles slots, reset.  Besides memory errors it checks what
 * SPEC section 3 promises: right after a thread records a name for an
 * address, its own lookup returns that name (lower-cased, without a
 * trailing dot) and the process-wide lookup lists it.
 *
 * Each operation is one byte, op % 6, followed by its operands:
 *   0 record: ADDR, LEN, LEN bytes of name      1 thread lookup: ADDR, SIZE
 *   2 global lookup: ADDR, MAX                  3 reset
 *   4 record from another thread: as 0          5 fill: COUNT, SEED
 * ADDR is one byte: < 0xf0 a small pool (10.0.0.N, or the same as
 * ::ffff:10.0.0.N, or fd00::N), else four bytes follow, an IPv4 address;
 * 0xff an AF_UNIX address, which is never remembered.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "fuzz.h"
#include "names.h"

struct reader {
    const uint8_t *d;
    size_t n;
};

static int
take(struct reader *r, uint8_t *b)
{
    if (r->n == 0)
        return 0;
    *b = *r->d++;
    r->n--;
    return 1;
}

static int
take_addr(struct reader *r, struct sockaddr_storage *ss)
{
    uint8_t sel;

    memset(ss, 0, sizeof(*ss));
    if (!take(r, &sel))
        return 0;
    if (sel == 0xff) {
        struct sockaddr_un *sun = (struct sockaddr_un *)ss;
        sun->sun_family = AF_UNIX;
        return 1;
    }
    if (sel >= 0xf0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        if (r->n < 4)
            return 0;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, r->d, 4);
        r->d += 4;
        r->n -= 4;
        return 1;
    }
    switch ((sel >> 3) % 3) {
    case 0: {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(0x0a000000u | (sel & 7));
        break;
    }
    case 1: {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr.s6_addr[10] = 0xff;
        sin6->sin6_addr.s6_addr[11] = 0xff;
        sin6->sin6_addr.s6_addr[12] = 10;
        sin6->sin6_addr.s6_addr[15] = (uint8_t)(sel & 7);
        break;
    }
    default: {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr.s6_addr[0] = 0xfd;
        sin6->sin6_addr.s6_addr[15] = (uint8_t)(sel & 7);
        break;
    }
    }
    return 1;
}

/* A name of up to 255 + 45 bytes; NUL-terminated, may contain anything. */
static int
take_name(struct reader *r, char *name, size_t size)
{
    uint8_t len;

    if (!take(r, &len))
        return 0;
    size_t n = len + (len > 200 ? 100 : 0);
    if (n > r->n)
        n = r->n;
    if (n > size - 1)
        n = size - 1;
    memcpy(name, r->d, n);
    name[n] = '\0';
    r->d += n;
    r->n -= n;
    return 1;
}

/* What names.c should remember for name: NULL when it remembers nothing. */
static const char *
expected(const char *name, const struct sockaddr_storage *ss, char *buf)
{
    size_t n = strlen(name);
    unsigned char tmp[16];

    if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6)
        return NULL;
    if (n == 0 || n >= NAMES_MAX_LEN || inet_pton(AF_INET, name, tmp) == 1 ||
        inet_pton(AF_INET6, name, tmp) == 1)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        buf[i] = (char)((name[i] >= 'A' && name[i] <= 'Z')
                            ? name[i] - 'A' + 'a' : name[i]);
    if (n > 1 && buf[n - 1] == '.')
        buf[n - 1] = '\0';
    return buf;
}

static void
check_terminated(const char *s, size_t size)
{
    if (memchr(s, '\0', size) == NULL) {
        fprintf(stderr, "names: a name without its NUL\n");
        abort();
    }
}

static void
record_and_check(const char *name, const struct sockaddr_storage *ss)
{
    char want_buf[NAMES_MAX_LEN + 64], got[NAMES_MAX_LEN];
    char all[NAMES_PER_ADDR][NAMES_MAX_LEN];
    const char *want = expected(name, ss, want_buf);
    const struct sockaddr *sa = (const struct sockaddr *)ss;
    int n, found = 0;

    names_record(name, sa);
    if (want == NULL)
        return;
    if (!names_thread_lookup(sa, got, sizeof(got)) || strcmp(got, want) != 0) {
        fprintf(stderr, "names: recorded \"%s\", this thread's lookup "
                "gives \"%s\"\n", want, got);
        abort();
    }
    n = names_global_lookup(sa, all, NAMES_PER_ADDR);
    for (int i = 0; i < n; i++) {
        check_terminated(all[i], NAMES_MAX_LEN);
        found |= strcmp(all[i], want) == 0;
    }
    /* tests/fuzz/crashes/fuzz_names/names-table-full: the table once
     * filled up after about 1900 addresses and recorded nothing new. */
    if (!found) {
        fprintf(stderr, "names: recorded \"%s\", not in the process-wide "
                "lookup (%d names)\n", want, n);
        abort();
    }
}

struct other {
    char name[NAMES_MAX_LEN + 64];
    struct sockaddr_storage ss;
};

static void *
other_thread(void *arg)
{
    struct other *o = arg;
    char got[NAMES_MAX_LEN];

    /* A fresh thread remembers nothing of its own. */
    if (names_thread_lookup((const struct sockaddr *)&o->ss, got,
                            sizeof(got))) {
        fprintf(stderr, "names: a new thread already knows \"%s\"\n", got);
        abort();
    }
    record_and_check(o->name, &o->ss);
    return NULL;
}

static void
fill(uint8_t count, uint8_t seed)
{
    struct sockaddr_in sin;
    char name[32];
    unsigned total = (unsigned)count * 8u;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    for (unsigned i = 0; i < total; i++) {
        sin.sin_addr.s_addr = htonl(0xc0000000u | (unsigned)seed << 16 | i);
        snprintf(name, sizeof(name), "h%u.s%u.fill", i, seed);
        names_record(name, (const struct sockaddr *)&sin);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reader r = { data, size };
    struct sockaddr_storage ss;
    char name[NAMES_MAX_LEN + 64], got[NAMES_MAX_LEN + 8];
    char all[NAMES_PER_ADDR + 2][NAMES_MAX_LEN];
    uint8_t op, b, b2;
    pthread_t t;

    names_reset();
    while (take(&r, &op)) {
        switch (op % 6) {
        case 0:
            if (!take_addr(&r, &ss) || !take_name(&r, name, sizeof(name)))
                return 0;
            record_and_check(name, &ss);
            break;
        case 1:
            if (!take_addr(&r, &ss) || !take(&r, &b))
                return 0;
            /* A buffer of 1..sizeof(got): truncation must terminate. */
            {
                size_t len = (size_t)b % sizeof(got) + 1;
                memset(got, 'X', sizeof(got));
                if (names_thread_lookup((const struct sockaddr *)&ss, got,
                                        len))
                    check_terminated(got, len);
            }
            break;
        case 2:
            if (!take_addr(&r, &ss) || !take(&r, &b))
                return 0;
            {
                int max = b % (NAMES_PER_ADDR + 3);
                int n = names_global_lookup((const struct sockaddr *)&ss,
                                            all, max);
                if (n < 0 || n > max || n > NAMES_PER_ADDR) {
                    fprintf(stderr, "names: %d names for max %d\n", n, max);
                    abort();
                }
                for (int i = 0; i < n; i++)
                    check_terminated(all[i], NAMES_MAX_LEN);
            }
            break;
        case 3:
            names_reset();
            break;
        case 4: {
            struct other o;
            if (!take_addr(&r, &o.ss) || !take_name(&r, o.name,
                                                     sizeof(o.name)))
                return 0;
            if (pthread_create(&t, NULL, other_thread, &o) == 0)
                pthread_join(t, NULL);
            break;
        }
        case 5:
            if (!take(&r, &b) || !take(&r, &b2))
                return 0;
            fill(b, b2);
            break;
        }
    }
    return 0;
}
