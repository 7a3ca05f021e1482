/*
 * Unit tests of the name memory: per-thread latest lookup wins, numeric
 * names are never recorded, IPv4 and IPv4-mapped IPv6 are one address,
 * the process-wide table keeps every distinct name (bounded) so that
 * ambiguity is visible, and other threads see only the global view.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "names.h"
#include "unit.h"

static struct sockaddr_storage
addr(const char *ip)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &s6->sin6_addr);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &s4->sin_addr);
    }
    return ss;
}

#define SA(x) ((struct sockaddr *)&(x))

static int other_found;
static char other_name[NAMES_MAX_LEN];

static void *
other_thread(void *arg)
{
    struct sockaddr_storage a = addr(arg);

    other_found = names_thread_lookup(SA(a), other_name, sizeof(other_name));
    return NULL;
}

int
main(void)
{
    char name[NAMES_MAX_LEN];
    char all[NAMES_PER_ADDR][NAMES_MAX_LEN];
    struct sockaddr_storage a = addr("10.1.2.3"), b = addr("10.1.2.4");
    struct sockaddr_storage mapped = addr("::ffff:10.1.2.3");
    struct sockaddr_storage v6 = addr("2001:db8::1");

    /* nothing recorded yet */
    CHECK(!names_thread_lookup(SA(a), name, sizeof(name)));
    CHECK(names_global_lookup(SA(a), all, NAMES_PER_ADDR) == 0);

    names_record("API.Example.COM.", SA(a));
    CHECK(names_thread_lookup(SA(a), name, sizeof(name)));
    CHECK_STR(name, "api.example.com");
    /* the IPv4-mapped form is the same address */
    CHECK(names_thread_lookup(SA(mapped), name, sizeof(name)));
    CHECK_STR(name, "api.example.com");
    CHECK(!names_thread_lookup(SA(b), name, sizeof(name)));

    /* the thread's latest lookup wins */
    names_record("other.example.com", SA(a));
    CHECK(names_thread_lookup(SA(a), name, sizeof(name)));
    CHECK_STR(name, "other.example.com");
    /* ... while the global view keeps both names */
    CHECK(names_global_lookup(SA(a), all, NAMES_PER_ADDR) == 2);

    /* a numeric lookup names nothing */
    names_record("10.1.2.4", SA(b));
    CHECK(!names_thread_lookup(SA(b), name, sizeof(name)));
    names_record("2001:db8::1", SA(v6));
    CHECK(!names_thread_lookup(SA(v6), name, sizeof(name)));
    names_record("", SA(b));
    CHECK(!names_thread_lookup(SA(b), name, sizeof(name)));

    names_record("v6.example.com", SA(v6));
    CHECK(names_thread_lookup(SA(v6), name, sizeof(name)));
    CHECK_STR(name, "v6.example.com");

    /* another thread sees no thread-local name */
    pthread_t t;
    pthread_create(&t, NULL, other_thread, "10.1.2.3");
    pthread_join(t, NULL);
    CHECK(other_found == 0);

    /* the global memory per address is bounded */
    for (int i = 0; i < 10; i++) {
        char n[32];
        snprintf(n, sizeof(n), "n%d.example.com", i);
        names_record(n, SA(b));
    }
    CHECK(names_global_lookup(SA(b), all, NAMES_PER_ADDR) == NAMES_PER_ADDR);

    /* a name too long to be a DNS name is not recorded */
    char longname[NAMES_MAX_LEN + 10];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    struct sockaddr_storage c = addr("10.9.9.9");
    names_record(longname, SA(c));
    CHECK(!names_thread_lookup(SA(c), name, sizeof(name)));

    /* The process-wide table is bounded but never stops remembering:
     * through 20,000 distinct addresses, the newest one and the 500
     * before it are always found, from a thread that did not record
     * them.  (It once filled up and forgot every new address.) */
    int misses = 0, recent_misses = 0;
    for (int i = 0; i < 20000; i++) {
        char ip[32], n[64];
        snprintf(ip, sizeof(ip), "10.%d.%d.%d", 100 + i / 65536,
                 (i / 256) % 256, i % 256);
        snprintf(n, sizeof(n), "h%d.example.com", i);
        struct sockaddr_storage x = addr(ip);
        names_record(n, SA(x));
        if (names_global_lookup(SA(x), all, NAMES_PER_ADDR) != 1 ||
            strcmp(all[0], n) != 0)
            misses++;
        if (i % 1000 == 999) {
            for (int j = i - 500; j <= i; j++) {
                snprintf(ip, sizeof(ip), "10.%d.%d.%d", 100 + j / 65536,
                         (j / 256) % 256, j % 256);
                snprintf(n, sizeof(n), "h%d.example.com", j);
                x = addr(ip);
                if (names_global_lookup(SA(x), all, NAMES_PER_ADDR) != 1 ||
                    strcmp(all[0], n) != 0)
                    recent_misses++;
            }
        }
    }
    CHECK(misses == 0);
    CHECK(recent_misses == 0);

    names_reset();
    CHECK(!names_thread_lookup(SA(a), name, sizeof(name)));
    CHECK(names_global_lookup(SA(a), all, NAMES_PER_ADDR) == 0);
    return unit_finish();
}
