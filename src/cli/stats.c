/*
 * tlsshim --stats REPORT (SPEC sections 1 and 8): summarise a JSON-lines
 * connection report as plain, aligned lines that are easy to grep: totals,
 * counts by outcome, rule, role, version and cipher, the failures grouped
 * by their reason, and the certificates that are expired or expire within
 * EXPIRY_WARN_DAYS.  Every line is checked before it counts: one that is
 * not JSON, not an object, or has a field of the wrong type is reported as
 * REPORT:LINE and skipped, and makes the exit status 1.  A connection
 * reported when its handshake ended ("open") and again when it ended
 * ("close") counts once, from its close line; one whose close line never
 * came (the process was killed) counts from its open line, as unclosed.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "cli.h"
#include "json.h"

#define EXPIRY_WARN_DAYS 30
#define SECONDS_PER_DAY 86400

/* Exit status when some lines were bad. */
#define EXIT_BAD_LINES 1

/* Output: a label, a right-aligned count, then the key. */
#define COUNT_FMT "%-12s%10lld"

/* The outcome classes of SPEC section 8, in the order they are printed. */
static const char *const outcomes[] = {
    "ok", "denied", "connect_failed", "handshake_failed", "verify_failed",
    "starttls_refused", "timeout", "passthrough", "audit",
};

/* Outcomes that are not failures. */
static const char *const good_outcomes[] = {"ok", "passthrough", "audit"};

/* A counted byte string (JSON strings may hold NULs). */
struct str {
    const char *p;
    size_t len;
};

static const struct str dash = {"-", 1};

/* --- a small hash table of counted keys ------------------------------- */

struct entry {
    char *key; /* NULL: empty slot */
    size_t keylen;
    long long count;
    void *data;
};

struct table {
    struct entry *slots;
    size_t cap, n;
    void (*free_data)(void *);
};

static uint64_t
hash_bytes(const char *p, size_t len)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int
table_grow(struct table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    struct entry *slots = calloc(cap, sizeof(*slots));

    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        struct entry *e = &t->slots[i];
        size_t j;

        if (e->key == NULL)
            continue;
        j = hash_bytes(e->key, e->keylen) & (cap - 1);
        while (slots[j].key != NULL)
            j = (j + 1) & (cap - 1);
        slots[j] = *e;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* The entry for key, created (count 0, data NULL) when missing; NULL only
 * when out of memory. */
static struct entry *
table_get(struct table *t, struct str key)
{
    size_t j;

    if ((t->n + 1) * 10 > t->cap * 7 && table_grow(t) < 0)
        return NULL;
    j = hash_bytes(key.p, key.len) & (t->cap - 1);
    while (t->slots[j].key != NULL) {
        struct entry *e = &t->slots[j];

        if (e->keylen == key.len && memcmp(e->key, key.p, key.len) == 0)
            return e;
        j = (j + 1) & (t->cap - 1);
    }
    if ((t->slots[j].key = malloc(key.len + 1)) == NULL)
        return NULL;
    memcpy(t->slots[j].key, key.p, key.len);
    t->slots[j].key[key.len] = '\0';
    t->slots[j].keylen = key.len;
    t->n++;
    return &t->slots[j];
}

/* The entry for key, or NULL. */
static struct entry *
table_find(const struct table *t, struct str key)
{
    size_t j;

    if (t->cap == 0)
        return NULL;
    j = hash_bytes(key.p, key.len) & (t->cap - 1);
    while (t->slots[j].key != NULL) {
        struct entry *e = &t->slots[j];

        if (e->keylen == key.len && memcmp(e->key, key.p, key.len) == 0)
            return e;
        j = (j + 1) & (t->cap - 1);
    }
    return NULL;
}

static void
table_free(struct table *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        free(t->slots[i].key);
        if (t->slots[i].data != NULL && t->free_data != NULL)
            t->free_data(t->slots[i].data);
    }
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

/* The used entries, for sorting; NULL when out of memory (or empty). */
static struct entry **
table_entries(const struct table *t)
{
    struct entry **list = calloc(t->n + 1, sizeof(*list));
    size_t k = 0;

    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].key != NULL)
            list[k++] = &t->slots[i];
    return list;
}

static int
compare_keys(const struct entry *a, const struct entry *b)
{
    size_t n = a->keylen < b->keylen ? a->keylen : b->keylen;
    int c = memcmp(a->key, b->key, n);

    if (c != 0)
        return c;
    return a->keylen < b->keylen ? -1 : a->keylen > b->keylen;
}

/* Most frequent first, then by key. */
static int
by_count(const void *a, const void *b)
{
    const struct entry *x = *(const struct entry *const *)a;
    const struct entry *y = *(const struct entry *const *)b;

    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return compare_keys(x, y);
}

/* --- what is kept per group ------------------------------------------- */

struct failure {
    char *outcome, *error;
    size_t outcome_len, error_len;
};

struct cert {
    time_t not_after;
    char *not_after_text, *host, *subject;
    size_t not_after_len, host_len, subject_len;
};

struct open_line {
    char *text;
    size_t len;
    long lineno;
};

static char *
dup_str(struct str s)
{
    char *p = malloc(s.len + 1);

    if (p != NULL) {
        memcpy(p, s.p, s.len);
        p[s.len] = '\0';
    }
    return p;
}

static void
free_failure(void *d)
{
    struct failure *f = d;

    free(f->outcome);
    free(f->error);
    free(f);
}

static void
free_cert(void *d)
{
    struct cert *c = d;

    free(c->not_after_text);
    free(c->host);
    free(c->subject);
    free(c);
}

static void
free_open_line(void *d)
{
    struct open_line *o = d;

    free(o->text);
    free(o);
}

struct stats {
    const char *name;   /* the report, for messages */
    time_t now;
    long long connections, unclosed, bad_lines;
    unsigned long long bytes_in, bytes_out;
    int bytes_overflow;
    struct table outcome, rule, role, version, cipher;
    struct table failures; /* key: outcome NUL error */
    struct table certs;    /* key: certificate NUL host */
    struct table opens;    /* key: id; data: struct open_line, or NULL
                            * once its close line came */
    int oom;
};

/* --- one record ------------------------------------------------------- */

/* A record's fields, checked. */
struct record {
    struct str id, event, role, rule, version, cipher, outcome, error,
        verify, host, peer;
    long long bytes_in, bytes_out;
    int has_cert;
    struct str subject, not_after, sha256;
    time_t not_after_time;
};

static void bad_line(struct stats *st, long lineno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
bad_line(struct stats *st, long lineno, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "tlsshim: %s:%ld: ", st->name, lineno);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    st->bad_lines++;
}

/* A string field: a string, null or absent ("-" then).  -1 when it has
 * another type. */
static int
string_field(const struct json_value *obj, const char *key, struct str *out,
             const char **bad)
{
    const struct json_value *v = json_get(obj, key);

    *out = dash;
    if (v == NULL || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_STRING) {
        *bad = key;
        return -1;
    }
    out->p = v->text;
    out->len = v->len;
    return 0;
}

/* A byte count: a non-negative integer, null or absent (0 then). */
static int
count_field(const struct json_value *obj, const char *key, long long *out,
            const char **bad)
{
    const struct json_value *v = json_get(obj, key);

    *out = 0;
    if (v == NULL || v->type == JSON_NULL)
        return 0;
    if (json_integer(v, out) != 0 || *out < 0) {
        *bad = key;
        return -1;
    }
    return 0;
}

static int
digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* An RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)) as
 * seconds since the epoch; -1 when it is not one. */
static int
parse_rfc3339(struct str s, time_t *out)
{
    struct tm tm;
    const char *p = s.p, *end = s.p + s.len;
    int year, mon, day, hour, min, sec, oh = 0, om = 0, sign = 0;

    if (s.len < 20 || digits(p, 4, &year) || p[4] != '-' ||
        digits(p + 5, 2, &mon) || p[7] != '-' || digits(p + 8, 2, &day) ||
        (p[10] != 'T' && p[10] != 't') || digits(p + 11, 2, &hour) ||
        p[13] != ':' || digits(p + 14, 2, &min) || p[16] != ':' ||
        digits(p + 17, 2, &sec))
        return -1;
    p += 19;
    if (p < end && *p == '.') {
        if (++p >= end || *p < '0' || *p > '9')
            return -1;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'Z' || *p == 'z')) {
        p++;
    } else if (end - p == 6 && (*p == '+' || *p == '-')) {
        sign = *p == '+' ? 1 : -1;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) ||
            oh > 23 || om > 59)
            return -1;
        p += 6;
    } else {
        return -1;
    }
    if (p != end || mon < 1 || mon > 12 || day < 1 || day > 31 ||
        hour > 23 || min > 59 || sec > 60)
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    *out = timegm(&tm) - sign * (oh * 3600 + om * 60);
    return 0;
}

/* Check the fields of one object into rec.  0, or -1 with the message
 * printed. */
static int
read_record(struct stats *st, long lineno, const struct json_value *obj,
            struct record *rec)
{
    const struct json_value *cert;
    const char *bad = NULL;
    int rc = 0;

    memset(rec, 0, sizeof(*rec));
    if (obj->type != JSON_OBJECT) {
        bad_line(st, lineno, "not a connection record: %s, not an object",
                 json_type_name(obj->type));
        return -1;
    }
    rc |= string_field(obj, "id", &rec->id, &bad);
    rc |= string_field(obj, "event", &rec->event, &bad);
    rc |= string_field(obj, "role", &rec->role, &bad);
    rc |= string_field(obj, "rule", &rec->rule, &bad);
    rc |= string_field(obj, "version", &rec->version, &bad);
    rc |= string_field(obj, "cipher", &rec->cipher, &bad);
    rc |= string_field(obj, "outcome", &rec->outcome, &bad);
    rc |= string_field(obj, "error", &rec->error, &bad);
    rc |= string_field(obj, "verify", &rec->verify, &bad);
    rc |= string_field(obj, "host", &rec->host, &bad);
    rc |= string_field(obj, "peer", &rec->peer, &bad);
    rc |= count_field(obj, "bytes_in", &rec->bytes_in, &bad);
    rc |= count_field(obj, "bytes_out", &rec->bytes_out, &bad);
    if (rc != 0) {
        bad_line(st, lineno, "bad field \"%s\": %s", bad,
                 strncmp(bad, "bytes_", 6) == 0
                     ? "want a non-negative integer or null"
                     : "want a string or null");
        return -1;
    }
    if (rec->event.p != dash.p && strcmp(rec->event.p, "open") != 0 &&
        strcmp(rec->event.p, "close") != 0) {
        bad_line(st, lineno, "bad field \"event\": want \"open\" or "
                             "\"close\"");
        return -1;
    }
    cert = json_get(obj, "peer_cert");
    if (cert == NULL || cert->type == JSON_NULL)
        return 0;
    if (cert->type != JSON_OBJECT) {
        bad_line(st, lineno, "bad field \"peer_cert\": want an object or "
                             "null");
        return -1;
    }
    rc |= string_field(cert, "subject", &rec->subject, &bad);
    rc |= string_field(cert, "not_after", &rec->not_after, &bad);
    rc |= string_field(cert, "sha256", &rec->sha256, &bad);
    if (rc != 0) {
        bad_line(st, lineno, "bad field \"peer_cert.%s\": want a string or "
                             "null", bad);
        return -1;
    }
    if (rec->not_after.p != dash.p) {
        if (parse_rfc3339(rec->not_after, &rec->not_after_time) != 0) {
            bad_line(st, lineno, "bad field \"peer_cert.not_after\": not "
                                 "an RFC 3339 time");
            return -1;
        }
        rec->has_cert = 1;
    }
    return 0;
}

static int
in_list(struct str s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == s.len && memcmp(list[i], s.p, s.len) == 0)
            return 1;
    return 0;
}

static void
tally(struct stats *st, struct table *t, struct str key)
{
    struct entry *e = table_get(t, key);

    if (e == NULL)
        st->oom = 1;
    else
        e->count++;
}

/* Join a and b with a NUL between them, into a malloc'ed key. */
static char *
join_key(struct str a, struct str b, struct str *key)
{
    char *p = malloc(a.len + b.len + 1);

    if (p == NULL)
        return NULL;
    memcpy(p, a.p, a.len);
    p[a.len] = '\0';
    memcpy(p + a.len + 1, b.p, b.len);
    key->p = p;
    key->len = a.len + 1 + b.len;
    return p;
}

static void
count_failure(struct stats *st, const struct record *rec)
{
    struct str reason = rec->error.p != dash.p ? rec->error : rec->verify;
    struct str key;
    struct entry *e;
    struct failure *f;
    char *k;

    if ((k = join_key(rec->outcome, reason, &key)) == NULL ||
        (e = table_get(&st->failures, key)) == NULL) {
        free(k);
        st->oom = 1;
        return;
    }
    free(k);
    if (e->data == NULL) {
        if ((f = calloc(1, sizeof(*f))) == NULL ||
            (f->outcome = dup_str(rec->outcome)) == NULL ||
            (f->error = dup_str(reason)) == NULL) {
            if (f != NULL)
                free_failure(f);
            st->oom = 1;
            return;
        }
        f->outcome_len = rec->outcome.len;
        f->error_len = reason.len;
        e->data = f;
    }
    e->count++;
}

static void
count_cert(struct stats *st, const struct record *rec)
{
    struct str host = rec->host.p != dash.p ? rec->host : rec->peer;
    struct str id = rec->sha256.p != dash.p ? rec->sha256 : rec->subject;
    struct str key, key2;
    struct entry *e;
    struct cert *c;
    char *k, *k2 = NULL;

    if (rec->not_after_time - st->now >
        (time_t)EXPIRY_WARN_DAYS * SECONDS_PER_DAY)
        return;
    /* the same certificate seen for the same host is one line; without a
     * digest, the subject and the expiry tell certificates apart */
    if ((k = join_key(id, rec->not_after, &key)) == NULL ||
        (k2 = join_key(key, host, &key2)) == NULL ||
        (e = table_get(&st->certs, key2)) == NULL) {
        free(k);
        free(k2);
        st->oom = 1;
        return;
    }
    free(k);
    free(k2);
    if (e->data == NULL) {
        if ((c = calloc(1, sizeof(*c))) == NULL ||
            (c->not_after_text = dup_str(rec->not_after)) == NULL ||
            (c->host = dup_str(host)) == NULL ||
            (c->subject = dup_str(rec->subject)) == NULL) {
            if (c != NULL)
                free_cert(c);
            st->oom = 1;
            return;
        }
        c->not_after = rec->not_after_time;
        c->not_after_len = rec->not_after.len;
        c->host_len = host.len;
        c->subject_len = rec->subject.len;
        e->data = c;
    }
    e->count++;
}

static void
add_bytes(struct stats *st, long long n, unsigned long long *total)
{
    if (*total > ULLONG_MAX - (unsigned long long)n)
        st->bytes_overflow = 1;
    else
        *total += (unsigned long long)n;
}

/* Count one connection. */
static void
account(struct stats *st, const struct record *rec)
{
    st->connections++;
    add_bytes(st, rec->bytes_in, &st->bytes_in);
    add_bytes(st, rec->bytes_out, &st->bytes_out);
    tally(st, &st->outcome, rec->outcome);
    tally(st, &st->rule, rec->rule);
    tally(st, &st->role, rec->role);
    tally(st, &st->version, rec->version);
    tally(st, &st->cipher, rec->cipher);
    if (rec->outcome.p != dash.p &&
        !in_list(rec->outcome, good_outcomes, TLSSHIM_NELEMS(good_outcomes)))
        count_failure(st, rec);
    if (rec->has_cert)
        count_cert(st, rec);
}

/* Keep an open line until its close line comes (or the report ends). */
static void
remember_open(struct stats *st, const struct record *rec, const char *text,
              size_t len, long lineno)
{
    struct entry *e = table_get(&st->opens, rec->id);
    struct open_line *o;

    if (e == NULL) {
        st->oom = 1;
        return;
    }
    if (e->count > 0)
        return; /* its close line came first: counted there */
    if ((o = calloc(1, sizeof(*o))) == NULL ||
        (o->text = malloc(len + 1)) == NULL) {
        free(o);
        st->oom = 1;
        return;
    }
    memcpy(o->text, text, len);
    o->text[len] = '\0';
    o->len = len;
    o->lineno = lineno;
    if (e->data != NULL)
        free_open_line(e->data);
    e->data = o;
}

/* A close line: its connection's open line, if kept, no longer counts. */
static void
forget_open(struct stats *st, const struct record *rec)
{
    struct entry *e = table_find(&st->opens, rec->id);

    if (e == NULL)
        return;
    e->count++;
    if (e->data != NULL) {
        free_open_line(e->data);
        e->data = NULL;
    }
}

static void
process_line(struct stats *st, const char *text, size_t len, long lineno)
{
    struct json_value *v;
    struct record rec;
    char err[256];

    if ((v = json_parse(text, len, err, sizeof(err))) == NULL) {
        bad_line(st, lineno, "bad JSON: %s", err);
        return;
    }
    if (read_record(st, lineno, v, &rec) == 0) {
        int is_open = rec.event.p != dash.p && strcmp(rec.event.p, "open") == 0;

        if (is_open && rec.id.p != dash.p) {
            remember_open(st, &rec, text, len, lineno);
        } else {
            if (is_open)
                st->unclosed++; /* no id to match a close line with */
            else if (rec.id.p != dash.p)
                forget_open(st, &rec);
            account(st, &rec);
        }
    }
    json_free(v);
}

/* The connections whose close line never came, in file order. */
static int
by_line(const void *a, const void *b)
{
    const struct open_line *x = (*(const struct entry *const *)a)->data;
    const struct open_line *y = (*(const struct entry *const *)b)->data;

    return (x->lineno > y->lineno) - (x->lineno < y->lineno);
}

static void
account_unclosed(struct stats *st)
{
    struct entry **list = table_entries(&st->opens);
    size_t n = 0;

    if (list == NULL) {
        st->oom = st->opens.n > 0;
        return;
    }
    for (size_t i = 0; list[i] != NULL; i++)
        if (list[i]->data != NULL)
            list[n++] = list[i];
    qsort(list, n, sizeof(*list), by_line);
    for (size_t i = 0; i < n; i++) {
        const struct open_line *o = list[i]->data;
        struct json_value *v = json_parse(o->text, o->len, NULL, 0);
        struct record rec;

        /* checked when it was read */
        if (v != NULL && read_record(st, o->lineno, v, &rec) == 0) {
            st->unclosed++;
            account(st, &rec);
        }
        json_free(v);
    }
    free(list);
}

/* --- output ----------------------------------------------------------- */

static void
print_key(const char *key, size_t len)
{
    cli_print_safe(stdout, key, len);
}

static void
print_tally(const char *label, const struct table *t)
{
    struct entry **list = table_entries(t);

    if (list == NULL)
        return;
    qsort(list, t->n, sizeof(*list), by_count);
    for (size_t i = 0; i < t->n; i++) {
        printf(COUNT_FMT "  ", label, list[i]->count);
        print_key(list[i]->key, list[i]->keylen);
        putchar('\n');
    }
    free(list);
}

/* Every outcome class, zeros too, then any other value seen. */
static void
print_outcomes(const struct table *t)
{
    struct entry **list = table_entries(t);
    size_t i;

    for (i = 0; i < TLSSHIM_NELEMS(outcomes); i++) {
        struct str k = {outcomes[i], strlen(outcomes[i])};
        const struct entry *e = table_find(t, k);

        printf(COUNT_FMT "  %s\n", "outcome", e != NULL ? e->count : 0,
               outcomes[i]);
    }
    if (list == NULL)
        return;
    qsort(list, t->n, sizeof(*list), by_count);
    for (i = 0; i < t->n; i++) {
        struct str k = {list[i]->key, list[i]->keylen};

        if (in_list(k, outcomes, TLSSHIM_NELEMS(outcomes)))
            continue;
        printf(COUNT_FMT "  ", "outcome", list[i]->count);
        print_key(list[i]->key, list[i]->keylen);
        putchar('\n');
    }
    free(list);
}

static void
print_failures(const struct table *t)
{
    struct entry **list = table_entries(t);

    if (list == NULL)
        return;
    qsort(list, t->n, sizeof(*list), by_count);
    for (size_t i = 0; i < t->n; i++) {
        const struct failure *f = list[i]->data;

        printf(COUNT_FMT "  ", "failure", list[i]->count);
        print_key(f->outcome, f->outcome_len);
        fputs("  ", stdout);
        print_key(f->error, f->error_len);
        putchar('\n');
    }
    free(list);
}

static int
by_expiry(const void *a, const void *b)
{
    const struct entry *x = *(const struct entry *const *)a;
    const struct entry *y = *(const struct entry *const *)b;
    const struct cert *cx = x->data, *cy = y->data;

    if (cx->not_after != cy->not_after)
        return cx->not_after < cy->not_after ? -1 : 1;
    return compare_keys(x, y);
}

/* expired (expired == 1) or expiring certificates, soonest first. */
static void
print_certs(const struct stats *st, int expired)
{
    struct entry **list = table_entries(&st->certs);

    if (list == NULL)
        return;
    qsort(list, st->certs.n, sizeof(*list), by_expiry);
    for (size_t i = 0; i < st->certs.n; i++) {
        const struct cert *c = list[i]->data;
        long long days;

        if ((c->not_after < st->now) != expired)
            continue;
        days = expired ? (long long)(st->now - c->not_after) / SECONDS_PER_DAY
                       : (long long)(c->not_after - st->now) / SECONDS_PER_DAY;
        printf(COUNT_FMT "  ", expired ? "expired" : "expiring",
               list[i]->count);
        print_key(c->not_after_text, c->not_after_len);
        printf("  %lld  ", days);
        print_key(c->host, c->host_len);
        fputs("  ", stdout);
        print_key(c->subject, c->subject_len);
        putchar('\n');
    }
    free(list);
}

static void
print_stats(const struct stats *st)
{
    printf(COUNT_FMT "\n", "connections", st->connections);
    printf(COUNT_FMT "\n", "unclosed", st->unclosed);
    printf(COUNT_FMT "\n", "bad_lines", st->bad_lines);
    printf("%-12s%10llu\n", "bytes_in", st->bytes_in);
    printf("%-12s%10llu\n", "bytes_out", st->bytes_out);
    putchar('\n');
    print_outcomes(&st->outcome);
    putchar('\n');
    print_tally("rule", &st->rule);
    putchar('\n');
    print_tally("role", &st->role);
    putchar('\n');
    print_tally("version", &st->version);
    putchar('\n');
    print_tally("cipher", &st->cipher);
    if (st->failures.n > 0) {
        putchar('\n');
        print_failures(&st->failures);
    }
    if (st->certs.n > 0) {
        putchar('\n');
        print_certs(st, 1);
        print_certs(st, 0);
    }
}

int
cli_stats(const struct cli_options *o)
{
    const char *path = o->args[0];
    struct stats st;
    FILE *in;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long lineno = 0;
    int status = CLI_EXIT_USAGE;

    memset(&st, 0, sizeof(st));
    st.name = path;
    st.now = time(NULL);
    st.failures.free_data = free_failure;
    st.certs.free_data = free_cert;
    st.opens.free_data = free_open_line;
    if (strcmp(path, "-") == 0) {
        in = stdin;
        st.name = "(stdin)";
    } else if ((in = fopen(path, "r")) == NULL) {
        cli_error("cannot open %s: %s", path, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    while ((got = getline(&line, &cap, in)) >= 0) {
        size_t len = (size_t)got;

        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        process_line(&st, line, len, lineno);
        if (st.oom)
            break;
    }
    if (ferror(in)) {
        cli_error("cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    account_unclosed(&st);
    if (st.oom) {
        cli_error("out of memory");
        goto out;
    }
    if (st.bytes_overflow)
        cli_warn("%s: the byte totals overflow; they are too low", st.name);
    print_stats(&st);
    status = st.bad_lines > 0 ? EXIT_BAD_LINES : 0;
out:
    free(line);
    if (in != stdin)
        fclose(in);
    table_free(&st.outcome);
    table_free(&st.rule);
    table_free(&st.role);
    table_free(&st.version);
    table_free(&st.cipher);
    table_free(&st.failures);
    table_free(&st.certs);
    table_free(&st.opens);
    return status;
}
