/*
 * Reading a connection report (SPEC section 8) for what it shows about
 * plaintext: every line whose outcome is "audit" is a connection that
 * passed unchanged, and its first_bytes say whether it carried plaintext.
 * The lines are grouped by destination as a rule would name it: the name
 * the program looked up (the report's host) and the port, else the
 * address and the port.  Report text is untrusted here: it ends up in
 * policy comments and on terminals, so it is kept to printable ASCII.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "evidence.h"
#include "json.h"

/* Bad lines reported one by one; the rest are only counted. */
#define SHOWN_BAD_LINES 5

void
evidence_printable(const char *s, size_t slen, char *buf, size_t len)
{
    size_t used = 0, i;

    if (len == 0)
        return;
    for (i = 0; i < slen && used + 1 < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c < 0x7f) {
            buf[used++] = (char)c;
        } else {
            if (used + 5 > len)
                break;
            snprintf(buf + used, len - used, "\\x%02x", c);
            used += 4;
        }
    }
    buf[used] = '\0';
}

int
evidence_is_plaintext(const char *proto)
{
    return strcmp(proto, "tls") != 0 && strcmp(proto, "ssh") != 0 &&
           strcmp(proto, "none") != 0;
}

/* "IP:PORT" or "[IPv6]:PORT" as the report writes peer; an IPv4-mapped
 * address becomes the IPv4 address, as the policy matches it. */
static int
parse_peer(const char *text, struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon, *h = text;
    size_t hlen;
    long port;

    memset(ss, 0, sizeof(*ss));
    if (text[0] == '[') {
        const char *close = strchr(text, ']');

        if (close == NULL || close[1] != ':')
            return -1;
        h = text + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        if ((colon = strrchr(text, ':')) == NULL)
            return -1;
        hlen = (size_t)(colon - text);
    }
    if (hlen == 0 || hlen >= sizeof(host) ||
        util_parse_int(colon + 1, 1, 65535, &port) != 0)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (text[0] != '[') {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;

        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return -1;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        return 0;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
        return -1;
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
        struct sockaddr_in sin;

        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)port);
        memcpy(&sin.sin_addr, sin6->sin6_addr.s6_addr + 12, 4);
        memset(ss, 0, sizeof(*ss));
        memcpy(ss, &sin, sizeof(sin));
        return 0;
    }
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    return 0;
}

static int
same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

/* The string member key, or NULL when it is missing or null; -1 when it
 * has another type. */
static int
string_member(const struct json_value *obj, const char *key,
              const char **out)
{
    const struct json_value *v = json_get(obj, key);

    *out = NULL;
    if (v == NULL || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_STRING || strlen(v->text) != v->len)
        return -1;
    *out = v->text;
    return 0;
}

/* One connection's facts, as read from its line. */
struct sighting {
    enum policy_role role;
    const char *rule, *host, *proto, *detail;
    struct sockaddr_storage peer;
    unsigned port;
    struct sockaddr_storage local;   /* server: the report's local */
    int has_local;
};

static struct evidence_dest *
find_dest(struct evidence *ev, const struct sighting *s)
{
    for (size_t i = 0; i < ev->n; i++) {
        struct evidence_dest *d = &ev->dests[i];

        if (d->role != s->role)
            continue;
        if (s->role == POLICY_ROLE_SERVER) {
            if (strcmp(d->rule, s->rule != NULL ? s->rule : "") == 0 &&
                d->has_local == s->has_local && d->port == s->port)
                return d;
            continue;
        }
        if (d->port != s->port)
            continue;
        if (s->host != NULL ? strcasecmp(d->name, s->host) == 0
                            : d->name[0] == '\0' &&
                                  same_ip(&d->first_addr, &s->peer))
            return d;
    }
    return NULL;
}

static struct evidence_dest *
new_dest(struct evidence *ev, const struct sighting *s)
{
    struct evidence_dest *grown, *d;

    grown = realloc(ev->dests, (ev->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    ev->dests = grown;
    d = &ev->dests[ev->n++];
    memset(d, 0, sizeof(*d));
    d->role = s->role;
    d->port = s->port;
    d->has_local = s->has_local;
    d->first_addr = s->peer;
    if (s->role == POLICY_ROLE_CLIENT && s->host != NULL) {
        /* names are matched case-insensitively: keep one spelling */
        size_t i;

        util_strlcpy(d->name, s->host, sizeof(d->name));
        for (i = 0; d->name[i] != '\0'; i++)
            if (d->name[i] >= 'A' && d->name[i] <= 'Z')
                d->name[i] = (char)(d->name[i] - 'A' + 'a');
    }
    util_strlcpy(d->rule, s->rule != NULL ? s->rule : "", sizeof(d->rule));
    return d;
}

static void
add_sighting(struct evidence_dest *d, const struct sighting *s)
{
    char detail[96];
    size_t i;

    d->connections++;
    /* The addresses that carried plaintext are the ones to probe: a
     * connection refused or closed at once says nothing about TLS. */
    if (evidence_is_plaintext(s->proto))
        d->plaintext++;
    for (i = 0; i < d->naddrs; i++)
        if (same_ip(&d->addrs[i], &s->peer))
            break;
    if (i == d->naddrs && evidence_is_plaintext(s->proto)) {
        if (d->naddrs < EVIDENCE_MAX_ADDRS)
            d->addrs[d->naddrs++] = s->peer;
        else
            d->more_addrs = 1;
    }
    /* the listening addresses that served plaintext: the ones a listen
     * rule would name */
    for (i = 0; s->has_local && i < d->nlocals; i++)
        if (same_ip(&d->locals[i], &s->local))
            break;
    if (s->has_local && i == d->nlocals && evidence_is_plaintext(s->proto)) {
        if (d->nlocals < EVIDENCE_MAX_ADDRS)
            d->locals[d->nlocals++] = s->local;
        else
            d->more_locals = 1;
    }
    evidence_printable(s->detail != NULL ? s->detail : "",
                       s->detail != NULL ? strlen(s->detail) : 0, detail,
                       sizeof(detail));
    for (i = 0; i < d->nkinds; i++)
        if (strcmp(d->kinds[i].proto, s->proto) == 0 &&
            strcmp(d->kinds[i].detail, detail) == 0) {
            d->kinds[i].count++;
            return;
        }
    if (d->nkinds == EVIDENCE_MAX_KINDS) {
        d->more_kinds = 1;
        return;
    }
    evidence_printable(s->proto, strlen(s->proto), d->kinds[d->nkinds].proto,
                       sizeof(d->kinds[0].proto));
    util_strlcpy(d->kinds[d->nkinds].detail, detail,
                 sizeof(d->kinds[0].detail));
    d->kinds[d->nkinds++].count = 1;
}

/* One line: 0 taken or ignored (not an audit record), -1 bad (why set),
 * -2 out of memory. */
static int
read_line(struct evidence *ev, const char *text, size_t len, char *why,
          size_t whylen)
{
    struct json_value *v;
    const char *event, *outcome, *role, *peer, *local;
    struct sighting s;
    struct evidence_dest *d;
    char err[200];
    int rv = -1;

    memset(&s, 0, sizeof(s));
    if ((v = json_parse(text, len, err, sizeof(err))) == NULL) {
        snprintf(why, whylen, "bad JSON: %s", err);
        return -1;
    }
    if (v->type != JSON_OBJECT) {
        util_strlcpy(why, "not a connection record", whylen);
        goto out;
    }
    if (string_member(v, "event", &event) != 0 ||
        string_member(v, "outcome", &outcome) != 0 ||
        string_member(v, "role", &role) != 0 ||
        string_member(v, "peer", &peer) != 0 ||
        string_member(v, "local", &local) != 0 ||
        string_member(v, "rule", &s.rule) != 0 ||
        string_member(v, "host", &s.host) != 0 ||
        string_member(v, "first_bytes", &s.proto) != 0 ||
        string_member(v, "first_detail", &s.detail) != 0) {
        util_strlcpy(why, "bad field", whylen);
        goto out;
    }
    rv = 0;
    /* Only audit lines tell about plaintext; an audit connection has one
     * line, but an "open" line would repeat its "close" line. */
    if (outcome == NULL || strcmp(outcome, "audit") != 0 ||
        (event != NULL && strcmp(event, "open") == 0))
        goto out;
    rv = -1;
    if (role == NULL || peer == NULL ||
        (strcmp(role, "client") != 0 && strcmp(role, "server") != 0) ||
        parse_peer(peer, &s.peer) != 0) {
        util_strlcpy(why, "bad field", whylen);
        goto out;
    }
    s.role = strcmp(role, "server") == 0 ? POLICY_ROLE_SERVER
                                         : POLICY_ROLE_CLIENT;
    s.port = util_addr_port((const struct sockaddr *)&s.peer);
    if (s.role == POLICY_ROLE_SERVER) {
        /* grouped by the local port; reports of earlier versions have no
         * local, and their server lines are grouped by rule alone */
        s.port = 0;
        if (local != NULL) {
            if (parse_peer(local, &s.local) != 0) {
                util_strlcpy(why, "bad field local", whylen);
                goto out;
            }
            s.has_local = 1;
            s.port = util_addr_port((const struct sockaddr *)&s.local);
        }
    }
    if (s.proto == NULL)
        s.proto = "none";
    if (s.host != NULL && (s.host[0] == '\0' || strlen(s.host) >= 256))
        s.host = NULL;
    ev->audited++;
    if ((d = find_dest(ev, &s)) == NULL && (d = new_dest(ev, &s)) == NULL) {
        rv = -2;
        goto out;
    }
    add_sighting(d, &s);
    rv = 0;
out:
    json_free(v);
    return rv;
}

int
evidence_read(const char *path, struct evidence *ev)
{
    FILE *in;
    char *line = NULL, why[256];
    size_t cap = 0;
    ssize_t got;
    long lineno = 0;
    int rv = -1;

    memset(ev, 0, sizeof(*ev));
    if ((in = fopen(path, "r")) == NULL) {
        cli_error("cannot open the report %s: %s", path, strerror(errno));
        return -1;
    }
    while ((got = getline(&line, &cap, in)) >= 0) {
        size_t len = (size_t)got;
        int r;

        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (len == 0)
            continue;
        why[0] = '\0';
        if ((r = read_line(ev, line, len, why, sizeof(why))) == -2) {
            cli_error("out of memory");
            goto out;
        }
        if (r == -1 && ev->bad_lines++ < SHOWN_BAD_LINES)
            cli_warn("%s:%ld: skipped: %s", path, lineno, why);
    }
    if (ferror(in)) {
        cli_error("cannot read the report %s: %s", path, strerror(errno));
        goto out;
    }
    if (ev->bad_lines > SHOWN_BAD_LINES)
        cli_warn("%s: %lu lines skipped in all", path, ev->bad_lines);
    rv = 0;
out:
    free(line);
    fclose(in);
    if (rv != 0)
        evidence_free(ev);
    return rv;
}

void
evidence_free(struct evidence *ev)
{
    free(ev->dests);
    memset(ev, 0, sizeof(*ev));
}

const struct evidence_kind *
evidence_main_kind(const struct evidence_dest *d)
{
    const struct evidence_kind *best = NULL;
    unsigned best_count = 0;

    /* kinds that differ only in detail count together */
    for (size_t i = 0; i < d->nkinds; i++) {
        unsigned count = 0;

        if (!evidence_is_plaintext(d->kinds[i].proto))
            continue;
        for (size_t j = 0; j < d->nkinds; j++)
            if (strcmp(d->kinds[j].proto, d->kinds[i].proto) == 0)
                count += d->kinds[j].count;
        if (count > best_count) {
            best = &d->kinds[i];
            best_count = count;
        }
    }
    return best;
}

static void append(char *buf, size_t len, size_t *used, const char *s);

void
evidence_dest_text(const struct evidence_dest *d, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN + 8], name[300];

    if (d->role == POLICY_ROLE_SERVER) {
        size_t used = 0;

        buf[0] = '\0';
        append(buf, len, &used, "accepted connections");
        for (size_t i = 0; i < d->nlocals; i++) {
            util_addr_str((const struct sockaddr *)&d->locals[i], ip,
                          sizeof(ip));
            append(buf, len, &used, i ? ", " : " on ");
            append(buf, len, &used, ip);
        }
        if (d->more_locals)
            append(buf, len, &used, ", ...");
        return;
    }
    if (d->name[0] != '\0') {
        evidence_printable(d->name, strlen(d->name), name, sizeof(name));
        snprintf(buf, len, "%s:%u", name, d->port);
        return;
    }
    util_addr_str((const struct sockaddr *)&d->first_addr, ip, sizeof(ip));
    util_strlcpy(buf, ip, len);
}

/* Append to buf at *used, bounded. */
static void
append(char *buf, size_t len, size_t *used, const char *s)
{
    size_t n = strlen(s);

    if (*used + n >= len) {
        n = *used + 1 < len ? len - *used - 1 : 0;
    }
    memcpy(buf + *used, s, n);
    *used += n;
    buf[*used] = '\0';
}

void
evidence_kinds_text(const struct evidence_dest *d, char *buf, size_t len)
{
    size_t used = 0, i, j;
    char part[160];

    if (len == 0)
        return;
    buf[0] = '\0';
    /* One entry per protocol, with its details and count. */
    for (i = 0; i < d->nkinds; i++) {
        unsigned count = 0;
        size_t ndetails = 0;

        for (j = 0; j < i; j++)
            if (strcmp(d->kinds[j].proto, d->kinds[i].proto) == 0)
                break;
        if (j < i)
            continue;
        append(buf, len, &used, used ? ", " : "");
        append(buf, len, &used, d->kinds[i].proto);
        for (j = i; j < d->nkinds; j++) {
            if (strcmp(d->kinds[j].proto, d->kinds[i].proto) != 0)
                continue;
            count += d->kinds[j].count;
            if (d->kinds[j].detail[0] == '\0')
                continue;
            append(buf, len, &used, ndetails++ ? "; " : " (");
            append(buf, len, &used, d->kinds[j].detail);
        }
        if (ndetails > 0)
            append(buf, len, &used, ")");
        snprintf(part, sizeof(part), " x%u", count);
        append(buf, len, &used, part);
    }
    if (d->more_kinds)
        append(buf, len, &used, ", ...");
}

void
evidence_addrs_text(const struct evidence_dest *d, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    size_t used = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    if (d->naddrs == 0) {
        util_ip_str((const struct sockaddr *)&d->first_addr, buf, len);
        return;
    }
    for (size_t i = 0; i < d->naddrs; i++) {
        util_ip_str((const struct sockaddr *)&d->addrs[i], ip, sizeof(ip));
        append(buf, len, &used, i ? ", " : "");
        append(buf, len, &used, ip);
    }
    if (d->more_addrs)
        append(buf, len, &used, ", ...");
}

void
evidence_locals_text(const struct evidence_dest *d, char *buf, size_t len)
{
    char one[INET6_ADDRSTRLEN + 16];
    size_t used = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < d->nlocals; i++) {
        util_addr_str((const struct sockaddr *)&d->locals[i], one,
                      sizeof(one));
        append(buf, len, &used, i ? " " : "");
        append(buf, len, &used, one);
    }
}
