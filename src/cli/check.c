/*
 * tlsshim --check and --explain (SPEC section 1): validate the policy the
 * shim would use and print it as it will be applied, with warnings about
 * rules that cannot always match; and show which rule one destination or
 * local address gets, with every effective setting and where it came from.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cli.h"

/*
 * A wildcard name can only match through the program's own lookups (SPEC
 * section 3): tlsshim cannot resolve "*.example.com" itself.  Programs with
 * their own DNS code then fall through to the catch-all, which only
 * matters when that catch-all lets the connection out in plaintext.
 */
static void
warn_unresolvable_names(const struct policy *p)
{
    size_t i, j;

    if (p->global.default_action != POLICY_PLAIN)
        return;
    for (i = 0; i < p->nrules; i++) {
        const struct policy_rule *r = &p->rules[i];

        if (r->role != POLICY_ROLE_CLIENT || r->action == POLICY_PLAIN)
            continue;
        for (j = 0; j < r->npatterns; j++) {
            const struct policy_pattern *pat = &r->patterns[j];

            if (pat->kind != PAT_NAME || !pat->wildcard)
                continue;
            cli_warn("%s:%d: rule %s: %s matches only names the program "
                     "looks up through libc; programs with their own DNS "
                     "code (such as c-ares users) get default_action = "
                     "plain there",
                     r->file, r->line, r->name, pat->text);
        }
    }
}

/*
 * SPEC section 9: --check lists what no policy can cover.  As comments, so
 * the output still parses as a policy.
 */
static void
write_limits(const struct policy *p)
{
    const char *uncovered = "warn";

    if (p->global.uncovered == POLICY_UNCOVERED_REFUSE)
        uncovered = "refuse";
    else if (p->global.uncovered == POLICY_UNCOVERED_ALLOW)
        uncovered = "allow";
    printf("\n"
           "# Not covered by any policy (tlsshim(1), LIMITS): statically\n"
           "# linked programs, Go binaries, other architectures and C\n"
           "# libraries (i386, musl), set-id and file-capability programs,\n"
           "# raw syscall() and io_uring.  \"tlsshim COMMAND\" refuses the\n"
           "# ones it can detect; a shimmed program that executes one gets\n"
           "# uncovered = %s.\n", uncovered);
}

int
cli_check(const struct cli_options *o)
{
    struct policy *p;

    if ((p = cli_load_policy(o)) == NULL)
        return CLI_EXIT_USAGE;
    policy_write(stdout, p);
    write_limits(p);
    warn_unresolvable_names(p);
    if (o->report != NULL)
        cli_warn("report analysis is not built yet");
    policy_free(p);
    return 0;
}

/* Whether two addresses hold the same IP, an IPv4-mapped IPv6 address
 * being its IPv4 address. */
static int
same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
    unsigned char ia[16], ib[16];
    size_t la, lb;

    la = a->sa_family == AF_INET ? 4 : 16;
    lb = b->sa_family == AF_INET ? 4 : 16;
    if (a->sa_family == AF_INET)
        memcpy(ia, &((const struct sockaddr_in *)a)->sin_addr, 4);
    else if (a->sa_family == AF_INET6)
        memcpy(ia, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
    else
        return 0;
    if (b->sa_family == AF_INET)
        memcpy(ib, &((const struct sockaddr_in *)b)->sin_addr, 4);
    else if (b->sa_family == AF_INET6)
        memcpy(ib, &((const struct sockaddr_in6 *)b)->sin6_addr, 16);
    else
        return 0;
    if (la == 16 && IN6_IS_ADDR_V4MAPPED((struct in6_addr *)ia)) {
        memmove(ia, ia + 12, 4);
        la = 4;
    }
    if (lb == 16 && IN6_IS_ADDR_V4MAPPED((struct in6_addr *)ib)) {
        memmove(ib, ib + 12, 4);
        lb = 4;
    }
    return la == lb && memcmp(ia, ib, la) == 0;
}

/* The rule's own resolution of a name (SPEC section 3), as the shim does
 * it when nothing the program looked up matched. */
int
cli_resolve_name(void *arg, const char *host, const struct sockaddr *addr)
{
    struct addrinfo hints, *res = NULL, *ai;
    int found = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return 0;
    for (ai = res; ai != NULL && !found; ai = ai->ai_next)
        found = same_ip(ai->ai_addr, addr);
    freeaddrinfo(res);
    return found;
}

int
cli_split_destination(const char *arg, char *host, size_t hostlen,
                      unsigned *port, int *is_literal)
{
    struct in6_addr a6;
    struct in_addr a4;
    const char *colon, *hend, *h = arg;
    int bracketed = arg[0] == '[';
    long n;

    if (bracketed) {
        if ((hend = strchr(arg, ']')) == NULL || hend[1] != ':')
            goto bad;
        h = arg + 1;
        colon = hend + 1;
    } else {
        if ((colon = strrchr(arg, ':')) == NULL)
            goto bad;
        hend = colon;
        if (memchr(arg, ':', (size_t)(hend - arg)) != NULL) {
            cli_error("%s: write an IPv6 address in brackets, "
                      "as [::1]:443", arg);
            return -1;
        }
    }
    if (hend == h || (size_t)(hend - h) >= hostlen)
        goto bad;
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    if (util_parse_int(colon + 1, 1, 65535, &n) != 0)
        goto bad;
    *port = (unsigned)n;
    if (bracketed) {
        if (inet_pton(AF_INET6, host, &a6) != 1)
            goto bad;
        *is_literal = 1;
    } else {
        *is_literal = inet_pton(AF_INET, host, &a4) == 1;
    }
    return 0;
bad:
    cli_error("'%s' is not HOST:PORT (IPv6 as [ADDRESS]:PORT, "
              "PORT 1-65535)", arg);
    return -1;
}

/*
 * HOST:PORT as an address: a literal as it is, a name through
 * getaddrinfo() (the first answer, as most programs take it).  *is_name
 * tells which.  Prints why on failure.
 */
static int
parse_destination(const char *arg, struct sockaddr_storage *ss,
                  char *host, size_t hostlen, int *is_name)
{
    struct addrinfo hints, *res = NULL;
    unsigned port;
    int literal, rc;

    memset(ss, 0, sizeof(*ss));
    *is_name = 0;
    if (cli_split_destination(arg, host, hostlen, &port, &literal) != 0)
        return -1;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (literal)
        hints.ai_flags = AI_NUMERICHOST;
    if ((rc = getaddrinfo(host, NULL, &hints, &res)) != 0) {
        cli_error("cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    freeaddrinfo(res);
    *is_name = !literal;
    return 0;
}

int
cli_explain(const struct cli_options *o)
{
    struct sockaddr_storage ss;
    const struct sockaddr *sa = (const struct sockaddr *)&ss;
    const struct policy_rule *r;
    const char *matched = NULL;
    char host[256], where[128];
    struct policy *p;
    int is_name, status = CLI_EXIT_USAGE;

    if ((p = cli_load_policy(o)) == NULL)
        return CLI_EXIT_USAGE;
    if (parse_destination(o->args[0], &ss, host, sizeof(host), &is_name) !=
        0)
        goto out;
    util_addr_str(sa, where, sizeof(where));

    if (o->listen) {
        printf("listen %s", where);
        r = policy_match_listen(p, sa);
    } else {
        printf("connect %s", where);
        r = policy_match_connect(p, sa, is_name ? host : NULL,
                                 cli_resolve_name, NULL, &matched);
    }
    if (is_name)
        printf(" (%s)", host);
    putchar('\n');
    if (r == NULL) {
        if (o->listen)
            printf("no rule matches: default_listen_action = %s\n",
                   policy_action_name(p->global.default_listen_action));
        else
            printf("no rule matches: default_action = %s\n",
                   policy_action_name(p->global.default_action));
    } else {
        printf("rule %s (%s:%d)", r->name, r->file, r->line);
        if (matched != NULL)
            printf(" matches the name %s\n", matched);
        else
            printf(" matches the address\n");
        policy_explain(stdout, p, r);
    }
    status = 0;
out:
    policy_free(p);
    return status;
}
