/*
 * Fuzz target: the policy parser and the matchers.  The input is policy
 * text, optionally followed by a NUL byte and a probe: the addresses,
 * ports and names that policy_match_connect and policy_match_listen are
 * asked about (a fixed set is always asked too, so plain policy text
 * reaches the matchers).  A policy that parses must also survive
 * policy_write and policy_explain, and what policy_write prints must parse
 * again and print the same (the round trip that tlsshim --check relies
 * on).
 *
 * Probe layout after the NUL: repeated records of
 *   1 byte flags (bit 0: IPv6, bit 1: give a name, bit 2: resolve says yes)
 *   2 bytes port, 4 or 16 bytes address, then (bit 1) a name up to a NUL.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "policy.h"

struct probe {
    struct sockaddr_storage ss;
    const char *name;     /* NULL: the program resolved nothing */
    int resolve_yes;
};

static int
fake_resolve(void *arg, const char *host, const struct sockaddr *addr)
{
    const struct probe *pr = arg;

    (void)addr;
    /* The rule's own resolution: yes when the probe says so, and for a
     * name that equals the probe's, as if DNS agreed. */
    if (pr->resolve_yes)
        return 1;
    return pr->name != NULL && host != NULL && strcmp(host, pr->name) == 0;
}

static char *
write_policy(const struct policy *p)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (f == NULL)
        return NULL;
    policy_write(f, p);
    fclose(f);
    return buf;
}

/* The written policy without its comments (which say where each value
 * came from, and so differ once the values are written out): what must
 * not change when it is parsed and written again. */
static char *
uncommented(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(n + 1), *o = out;

    if (out == NULL)
        return NULL;
    while (*text != '\0') {
        const char *eol = strchr(text, '\n');
        size_t len = eol ? (size_t)(eol - text) : strlen(text);
        size_t cut = len;
        int quoted = 0;

        for (size_t i = 0; i < len; i++) {
            if (text[i] == '"' && (i == 0 || text[i - 1] != '\\'))
                quoted = !quoted;
            else if (!quoted && (text[i] == '#' || text[i] == ';') &&
                     (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t')) {
                cut = i;
                break;
            }
        }
        while (cut > 0 && (text[cut - 1] == ' ' || text[cut - 1] == '\t'))
            cut--;
        if (cut > 0) {
            memcpy(o, text, cut);
            o += cut;
            *o++ = '\n';
        }
        text += len + (eol ? 1 : 0);
    }
    *o = '\0';
    return out;
}

static void
explain(const struct policy *p, const struct policy_rule *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (f == NULL)
        return;
    policy_explain(f, p, r);
    fclose(f);
    free(buf);
}

static void
ask(const struct policy *p, const struct probe *pr)
{
    const struct sockaddr *sa = (const struct sockaddr *)&pr->ss;
    const struct policy_rule *r;
    const char *matched = NULL;

    r = policy_match_connect(p, sa, pr->name, fake_resolve, (void *)pr,
                             &matched);
    if (r != NULL) {
        if (matched != NULL && strlen(matched) > 4096)
            abort();
        explain(p, r);
    }
    r = policy_match_connect(p, sa, pr->name, NULL, NULL, &matched);
    r = policy_match_listen(p, sa);
    if (r != NULL)
        explain(p, r);
    (void)policy_listen_may_match(p, sa);
    for (size_t i = 0; i < p->nrules; i++)
        (void)policy_listen_rule_may_match(&p->rules[i], sa);
}

static void
set_v4(struct probe *pr, const char *ip, unsigned port, const char *name)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&pr->ss;

    memset(pr, 0, sizeof(*pr));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &sin->sin_addr);
    pr->name = name;
}

static void
set_v6(struct probe *pr, const char *ip, unsigned port, const char *name)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&pr->ss;

    memset(pr, 0, sizeof(*pr));
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, ip, &sin6->sin6_addr);
    pr->name = name;
}

static void
fixed_probes(const struct policy *p)
{
    static const struct {
        int v6;
        const char *ip;
        unsigned port;
        const char *name;
    } fixed[] = {
        { 0, "127.0.0.1", 443, NULL },
        { 0, "127.0.0.1", 8443, "localhost" },
        { 0, "10.1.2.3", 443, "www.example.com" },
        { 0, "10.1.2.3", 8080, "example.com" },
        { 0, "192.168.0.1", 0, "a.b.lab.internal." },
        { 0, "0.0.0.0", 993, NULL },
        { 1, "::1", 443, "LOCALHOST" },
        { 1, "::ffff:10.1.2.3", 8443, "lab.internal" },
        { 1, "fd00::1", 65535, "*.example.com" },
        { 1, "::", 25, NULL },
    };
    struct probe pr;

    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (fixed[i].v6)
            set_v6(&pr, fixed[i].ip, fixed[i].port, fixed[i].name);
        else
            set_v4(&pr, fixed[i].ip, fixed[i].port, fixed[i].name);
        pr.resolve_yes = (int)(i & 1);
        ask(p, &pr);
    }
}

static void
input_probes(const struct policy *p, const uint8_t *d, size_t n)
{
    char name[300];
    struct probe pr;

    while (n >= 1 + 2 + 4) {
        unsigned flags = d[0];
        unsigned port = (unsigned)d[1] << 8 | d[2];
        size_t alen = (flags & 1) ? 16 : 4;

        d += 3;
        n -= 3;
        if (n < alen)
            break;
        memset(&pr, 0, sizeof(pr));
        if (flags & 1) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&pr.ss;
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons((uint16_t)port);
            memcpy(&sin6->sin6_addr, d, 16);
        } else {
            struct sockaddr_in *sin = (struct sockaddr_in *)&pr.ss;
            sin->sin_family = AF_INET;
            sin->sin_port = htons((uint16_t)port);
            memcpy(&sin->sin_addr, d, 4);
        }
        d += alen;
        n -= alen;
        if (flags & 2) {
            size_t k = 0;
            while (k < n && d[k] != 0 && k < sizeof(name) - 1)
                k++;
            memcpy(name, d, k);
            name[k] = '\0';
            pr.name = name;
            d += k;
            n -= k;
            if (n > 0) {   /* the NUL */
                d++;
                n--;
            }
        }
        pr.resolve_yes = (flags & 4) != 0;
        ask(p, &pr);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t text_len = nul ? (size_t)(nul - data) : size;
    char err[1024], err2[1024];
    struct policy *p, *q;
    char *out, *out2;

    /* The parser takes a length: no terminating NUL is promised. */
    char *text = malloc(text_len ? text_len : 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, text_len);
    p = policy_parse(text, text_len, "fuzz.conf", err, sizeof(err));
    free(text);
    if (p == NULL) {
        if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0')
            abort();   /* an error without a message */
        return 0;
    }
    fixed_probes(p);
    if (nul != NULL)
        input_probes(p, nul + 1, size - text_len - 1);

    /* The round trip: what --check prints is a policy that means the
     * same; printing it again gives the same text. */
    if ((out = write_policy(p)) != NULL) {
        q = policy_parse(out, strlen(out), "written.conf", err2,
                         sizeof(err2));
        if (q == NULL) {
            fprintf(stderr, "written policy does not parse: %s\n%s\n",
                    err2, out);
            abort();
        }
        if ((out2 = write_policy(q)) != NULL) {
            char *a = uncommented(out), *b = uncommented(out2);
            if (a != NULL && b != NULL && strcmp(a, b) != 0) {
                fprintf(stderr, "written policy changes when written "
                        "again:\n--- first\n%s--- second\n%s", out, out2);
                abort();
            }
            free(a);
            free(b);
        }
        free(out2);
        policy_free(q);
        free(out);
    }
    policy_free(p);
    return 0;
}
