/*
 * Resolver hooks: every address a lookup returns is remembered with the
 * name that was looked up, for the calling thread and process-wide, so
 * that name rules match and the right name is verified (SPEC section 3).
 */
#include "config.h"

#include <netdb.h>
#include <netinet/in.h>
#include <string.h>

#include "names.h"
#include "shim.h"

static void
record_hostent(const char *name, const struct hostent *h)
{
    if (h == NULL || name == NULL)
        return;
    for (char **a = h->h_addr_list; a != NULL && *a != NULL; a++) {
        if (h->h_addrtype == AF_INET && h->h_length == 4) {
            struct sockaddr_in sin = {.sin_family = AF_INET};
            memcpy(&sin.sin_addr, *a, 4);
            names_record(name, (struct sockaddr *)&sin);
        } else if (h->h_addrtype == AF_INET6 && h->h_length == 16) {
            struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
            memcpy(&sin6.sin6_addr, *a, 16);
            names_record(name, (struct sockaddr *)&sin6);
        }
    }
}

HOOK int
getaddrinfo(const char *node, const char *service,
            const struct addrinfo *hints, struct addrinfo **res)
{
    int rv;

    real_init();
    rv = real.getaddrinfo(node, service, hints, res);
    if (rv == 0 && node != NULL && res != NULL) {
        for (struct addrinfo *ai = *res; ai != NULL; ai = ai->ai_next)
            if (ai->ai_addr != NULL && (ai->ai_family == AF_INET ||
                                        ai->ai_family == AF_INET6))
                names_record(node, ai->ai_addr);
    }
    return rv;
}

HOOK struct hostent *
gethostbyname(const char *name)
{
    struct hostent *h;

    real_init();
    h = real.gethostbyname(name);
    record_hostent(name, h);
    return h;
}

HOOK struct hostent *
gethostbyname2(const char *name, int af)
{
    struct hostent *h;

    real_init();
    h = real.gethostbyname2(name, af);
    record_hostent(name, h);
    return h;
}

HOOK int
gethostbyname_r(const char *name, struct hostent *ret, char *buf,
                size_t buflen, struct hostent **result, int *h_errnop)
{
    int rv;

    real_init();
    rv = real.gethostbyname_r(name, ret, buf, buflen, result, h_errnop);
    if (rv == 0 && result != NULL)
        record_hostent(name, *result);
    return rv;
}

HOOK int
gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf,
                 size_t buflen, struct hostent **result, int *h_errnop)
{
    int rv;

    real_init();
    rv = real.gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop);
    if (rv == 0 && result != NULL)
        record_hostent(name, *result);
    return rv;
}
