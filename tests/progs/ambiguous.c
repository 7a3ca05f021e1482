/*
 * ambiguous: connect to a literal address after other threads looked up
 * names for it, for the end-to-end tests of SPEC section 3 (which name a
 * connection to an address carries).
 *
 *     ambiguous [-c NAME] [-g] [-w SECONDS] ADDRESS PORT [LOOKUP...]
 *
 * Each LOOKUP name is resolved in a thread of its own (one after the
 * other, each joined before the next starts), with getaddrinfo(), or with
 * gethostbyname_r() under -g; a lookup that fails, or that does not return
 * ADDRESS, is an error.  Then a fresh thread connects a blocking socket to
 * ADDRESS:PORT, built with inet_pton() so that no lookup happens there,
 * unless -c NAME makes that thread resolve NAME itself first.  It copies
 * standard input to the socket, shuts the sending side down and copies the
 * socket to standard output until EOF.  With no LOOKUP and no -c, this is
 * a client that connects to a literal address and never resolves a name.
 *
 * Errors are reported as "ambiguous: CALL: strerror errno=NAME".
 * Exit status: 0 success, 2 usage or lookup error, 3 connect error, 4 I/O
 * error, 5 the overall timeout (30 s, or -w SECONDS) expired.
 */
#define _GNU_SOURCE
#define PROG "ambiguous"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "progutil.h"

static struct sockaddr_storage target;
static socklen_t target_len;
static int use_gethostbyname;
static const char *own_lookup;

/* Does the raw address addr (4 or 16 bytes of family af) equal target? */
static int
is_target(int af, const void *addr)
{
    if (af == AF_INET && target.ss_family == AF_INET)
        return memcmp(addr, &((struct sockaddr_in *)&target)->sin_addr, 4) == 0;
    if (af == AF_INET6 && target.ss_family == AF_INET6)
        return memcmp(addr, &((struct sockaddr_in6 *)&target)->sin6_addr, 16) ==
               0;
    return 0;
}

/* Resolve name; exit unless the answer contains the target address. */
static void
lookup(const char *name, int with_gethostbyname)
{
    int found = 0;

    if (with_gethostbyname) {
        struct hostent he, *res = NULL;
        char buf[8192];
        int herr = 0;

        if (gethostbyname2_r(name, target.ss_family, &he, buf, sizeof(buf),
                             &res, &herr) != 0 ||
            res == NULL) {
            fprintf(stderr, "ambiguous: gethostbyname2_r: %s: %s\n", name,
                    hstrerror(herr));
            exit(EXIT_USAGE);
        }
        for (char **a = res->h_addr_list; *a != NULL; a++)
            found |= is_target(res->h_addrtype, *a);
    } else {
        struct addrinfo hints, *res, *ai;
        int rc;

        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        if ((rc = getaddrinfo(name, NULL, &hints, &res)) != 0) {
            fprintf(stderr, "ambiguous: getaddrinfo: %s: %s\n", name,
                    gai_strerror(rc));
            exit(EXIT_USAGE);
        }
        for (ai = res; ai != NULL; ai = ai->ai_next) {
            if (ai->ai_family == AF_INET)
                found |= is_target(
                    AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr);
            else if (ai->ai_family == AF_INET6)
                found |= is_target(
                    AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr);
        }
        freeaddrinfo(res);
    }
    if (!found) {
        fprintf(stderr, "ambiguous: %s does not resolve to the address\n",
                name);
        exit(EXIT_USAGE);
    }
}

static void *
lookup_thread(void *arg)
{
    lookup(arg, use_gethostbyname);
    return NULL;
}

static void *
connect_thread(void *arg)
{
    int fd;

    (void)arg;
    if (own_lookup != NULL)
        lookup(own_lookup, 0);
    fd = socket(target.ss_family, SOCK_STREAM, 0);
    if (fd < 0) {
        report("socket", errno);
        exit(EXIT_CONNECT);
    }
    if (connect(fd, (struct sockaddr *)&target, target_len) < 0) {
        report("connect", errno);
        exit(EXIT_CONNECT);
    }
    copy_stdin_to_socket(fd);
    copy_socket_to_stdout(fd);
    if (close(fd) < 0)
        die_io("close", errno);
    return NULL;
}

static int
parse_target(const char *addr, const char *port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&target;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&target;
    char *end;
    unsigned long p;

    errno = 0;
    p = strtoul(port, &end, 10);
    if (errno != 0 || *end != '\0' || p == 0 || p > 65535)
        return -1;
    memset(&target, 0, sizeof(target));
    if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((unsigned short)p);
        target_len = sizeof(*sin);
        return 0;
    }
    if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((unsigned short)p);
        target_len = sizeof(*sin6);
        return 0;
    }
    return -1;
}

int
main(int argc, char **argv)
{
    int opt, rc;
    unsigned timeout_seconds = 30;
    pthread_t t;

    while ((opt = getopt(argc, argv, "c:gw:")) != -1) {
        switch (opt) {
        case 'c':
            own_lookup = optarg;
            break;
        case 'g':
            use_gethostbyname = 1;
            break;
        case 'w':
            if (parse_seconds(optarg, &timeout_seconds) < 0)
                goto usage;
            break;
        default:
            goto usage;
        }
    }
    if (argc - optind < 2 || parse_target(argv[optind], argv[optind + 1]) < 0)
        goto usage;

    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm(timeout_seconds);

    for (int i = optind + 2; i < argc; i++) {
        if ((rc = pthread_create(&t, NULL, lookup_thread, argv[i])) != 0 ||
            (rc = pthread_join(t, NULL)) != 0) {
            report("pthread", rc);
            return EXIT_USAGE;
        }
    }
    if ((rc = pthread_create(&t, NULL, connect_thread, NULL)) != 0 ||
        (rc = pthread_join(t, NULL)) != 0) {
        report("pthread", rc);
        return EXIT_USAGE;
    }
    return 0;

usage:
    fprintf(stderr, "usage: ambiguous [-c NAME] [-g] [-w SECONDS] ADDRESS "
                    "PORT [LOOKUP...]\n");
    return EXIT_USAGE;
}
