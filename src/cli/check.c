/*
 * tlsshim --check and --explain (SPEC section 1): validate the policy the
 * shim would use and print it as it will be applied, with warnings about
 * rules that cannot always match or can never match, and, given a
 * connection report, about the destinations it shows were used in
 * plaintext; and show which rule one destination or local address gets,
 * with every effective setting and where it came from.
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
#include "evidence.h"

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

/* Whether the first prefix bits of a and b agree. */
static int
prefix_covers(const unsigned char *a, const unsigned char *b, int prefix)
{
    int full = prefix / 8, bits = prefix % 8;

    if (memcmp(a, b, (size_t)full) != 0)
        return 0;
    return bits == 0 ||
           ((a[full] ^ b[full]) & (0xff << (8 - bits)) & 0xff) == 0;
}

/*
 * Whether pattern a certainly matches everything pattern b matches, as
 * policy_match_connect() matches: addresses and the program's names
 * first, then the rules' own resolution of names without a wildcard.  So
 * a wildcard covers only wildcards (a plain name can also match by
 * tlsshim's own lookup, which a wildcard never does), an address pattern
 * never covers a name, and a name covers the same name.  Only what is
 * certain counts: unions of patterns are not considered.
 */
static int
pattern_covers(const struct policy_pattern *a, const struct policy_pattern *b)
{
    size_t alen, blen;

    if (a->port_lo > b->port_lo || a->port_hi < b->port_hi)
        return 0;
    switch (a->kind) {
    case PAT_ANY_HOST:
        return 1;
    case PAT_IPV4:
    case PAT_IPV6:
        return b->kind == a->kind && b->prefix >= a->prefix &&
               prefix_covers(a->addr, b->addr, a->prefix);
    case PAT_NAME:
        if (b->kind != PAT_NAME)
            return 0;
        if (!a->wildcard)
            return !b->wildcard && strcmp(a->name, b->name) == 0;
        if (!b->wildcard)
            return 0;
        /* *.s covers *.t when t is s or ends in ".s" */
        alen = strlen(a->name);
        blen = strlen(b->name);
        return strcmp(a->name, b->name) == 0 ||
               (blen > alen + 1 && b->name[blen - alen - 1] == '.' &&
                strcmp(b->name + blen - alen, a->name) == 0);
    }
    return 0;
}

/* The earliest rule before r, of r's role, that covers pattern b. */
static const struct policy_rule *
covering_rule(const struct policy *p, const struct policy_rule *r,
              const struct policy_pattern *b)
{
    for (size_t i = 0; i < p->nrules && &p->rules[i] != r; i++) {
        const struct policy_rule *a = &p->rules[i];

        if (a->role != r->role)
            continue;
        for (size_t j = 0; j < a->npatterns; j++)
            if (pattern_covers(&a->patterns[j], b))
                return a;
    }
    return NULL;
}

/* Rules that can never match: every pattern is covered by an earlier
 * rule's, so the earlier rules always win (first match in file order). */
static void
warn_shadowed_rules(const struct policy *p)
{
    char by[512];

    for (size_t i = 0; i < p->nrules; i++) {
        const struct policy_rule *r = &p->rules[i];
        const struct policy_rule *first[4];
        size_t nfirst = 0, j, k, used = 0;
        int shadowed = r->npatterns > 0;

        for (j = 0; j < r->npatterns && shadowed; j++) {
            const struct policy_rule *a = covering_rule(p, r,
                                                        &r->patterns[j]);
            if (a == NULL) {
                shadowed = 0;
                break;
            }
            for (k = 0; k < nfirst && first[k] != a; k++)
                ;
            if (k == nfirst && nfirst < TLSSHIM_NELEMS(first))
                first[nfirst++] = a;
        }
        if (!shadowed)
            continue;
        by[0] = '\0';
        for (k = 0; k < nfirst && used < sizeof(by); k++)
            used += (size_t)snprintf(by + used, sizeof(by) - used,
                                     "%s%s (line %d)", k ? ", " : "",
                                     first[k]->name, first[k]->line);
        cli_warn("%s:%d: rule %s can never match: %s %s %s it names "
                 "first", r->file, r->line, r->name,
                 nfirst == 1 ? "rule" : "rules", by,
                 r->role == POLICY_ROLE_SERVER
                     ? (nfirst == 1 ? "matches every local address"
                                    : "match every local address")
                     : (nfirst == 1 ? "matches every destination"
                                    : "match every destination"));
    }
}

int
cli_rule_is_catch_all(const struct policy_rule *r)
{
    int v4 = 0, v6 = 0;

    for (size_t i = 0; i < r->npatterns; i++) {
        const struct policy_pattern *pat = &r->patterns[i];

        if (pat->port_lo != 0 || pat->port_hi != 65535)
            continue;
        v4 |= pat->kind == PAT_ANY_HOST ||
              (pat->kind == PAT_IPV4 && pat->prefix == 0);
        v6 |= pat->kind == PAT_ANY_HOST ||
              (pat->kind == PAT_IPV6 && pat->prefix == 0);
    }
    return v4 && v6;
}

/*
 * What the checked policy does now with a destination the report shows
 * was used in plaintext: 1 when it still lets it through in plaintext
 * (with, in now, how, where that differs from the report); 0 when it makes
 * it TLS, denies it, or names it in a plain rule of its own (a decision).
 */
static int
still_plaintext(const struct policy *p, const struct evidence_dest *d,
                char *now, size_t len)
{
    const struct policy_rule *r = NULL;
    enum policy_action action;
    size_t i;

    now[0] = '\0';
    if (d->role == POLICY_ROLE_SERVER && d->nlocals > 0) {
        /* the listen rules match the local address the report gives */
        r = policy_match_listen(p, (const struct sockaddr *)&d->locals[0]);
        action = r != NULL ? r->action : p->global.default_listen_action;
    } else if (d->role == POLICY_ROLE_SERVER) {
        /* no local address in the report: only the same rule can tell */
        for (i = 0; i < p->nrules && d->rule[0] != '\0'; i++)
            if (p->rules[i].role == POLICY_ROLE_SERVER &&
                strcmp(p->rules[i].name, d->rule) == 0)
                r = &p->rules[i];
        action = r != NULL ? r->action : p->global.default_listen_action;
    } else {
        r = policy_match_connect(p, (const struct sockaddr *)&d->addrs[0],
                                 d->name[0] != '\0' ? d->name : NULL,
                                 cli_resolve_name, NULL, NULL);
        action = r != NULL ? r->action : p->global.default_action;
    }
    if (action == POLICY_TLS || action == POLICY_AUTO ||
        action == POLICY_ENFORCE || action == POLICY_DENY)
        return 0;
    if (r != NULL && action == POLICY_PLAIN && !cli_rule_is_catch_all(r))
        return 0;
    /* say what this policy does only where the report's policy did
     * something else */
    if (r != NULL && strcmp(r->name, d->rule) != 0)
        snprintf(now, len, "; in this policy rule %s (%s:%d) lets it "
                 "through (action %s)", r->name, r->file, r->line,
                 policy_action_name(action));
    else if (r == NULL && (d->rule[0] != '\0' || action != POLICY_AUDIT))
        snprintf(now, len, "; in this policy %s = %s lets it through",
                 d->role == POLICY_ROLE_SERVER ? "default_listen_action"
                                               : "default_action",
                 policy_action_name(action));
    return 1;
}

/*
 * tlsshim --check -r: the destinations the report shows were used in
 * plaintext (audit outcomes; passthrough is the program's own TLS), with
 * the rule or catch-all that let them through, unless the checked policy
 * now covers them.  -1 when the report cannot be read.
 */
static int
warn_plaintext_use(const struct policy *p, const char *report)
{
    struct evidence ev;
    char dest[400], kinds[1024], addrs[512], now[512], through[256];

    if (evidence_read(report, &ev) != 0)
        return -1;
    for (size_t i = 0; i < ev.n; i++) {
        const struct evidence_dest *d = &ev.dests[i];

        if (d->plaintext == 0 || !still_plaintext(p, d, now, sizeof(now)))
            continue;
        evidence_dest_text(d, dest, sizeof(dest));
        evidence_kinds_text(d, kinds, sizeof(kinds));
        evidence_addrs_text(d, addrs, sizeof(addrs));
        if (d->rule[0] != '\0')
            snprintf(through, sizeof(through), "rule %s", d->rule);
        else
            snprintf(through, sizeof(through), "the catch-all (%s = audit)",
                     d->role == POLICY_ROLE_SERVER ? "default_listen_action"
                                                   : "default_action");
        if (d->role == POLICY_ROLE_SERVER)
            cli_warn("%s: %s from %s were plaintext (%u of %u: %s), let "
                     "through by %s%s",
                     report, dest, addrs, d->plaintext, d->connections,
                     kinds, through, now);
        else
            cli_warn("%s: %s%s%s%s was used in plaintext (%u connection%s: "
                     "%s), let through by %s%s",
                     report, dest, d->name[0] != '\0' ? " (" : "",
                     d->name[0] != '\0' ? addrs : "",
                     d->name[0] != '\0' ? ")" : "", d->plaintext,
                     d->plaintext == 1 ? "" : "s", kinds, through, now);
    }
    evidence_free(&ev);
    return 0;
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
    warn_shadowed_rules(p);
    if (o->report != NULL && warn_plaintext_use(p, o->report) != 0) {
        policy_free(p);
        return CLI_EXIT_USAGE;
    }
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
