/*
 * The strict JSON parser of json.h: recursive descent over one text, every
 * node malloc'ed, the first error recorded with its column and the partial
 * tree freed.  Reports are written by tlsshim itself, but a report file is
 * still input from anyone who could append to it, so nothing here trusts
 * a length, a depth or an encoding it has not checked.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct parser {
    const unsigned char *p, *start, *end;
    int depth;
    char *err;
    size_t errlen;
    int failed;
};

static struct json_value *parse_value(struct parser *ps);

/* Record the first error, at the current position. */
static void fail(struct parser *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
fail(struct parser *ps, const char *fmt, ...)
{
    va_list ap;
    size_t used;

    if (ps->failed)
        return;
    ps->failed = 1;
    if (ps->errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(ps->err, ps->errlen, fmt, ap);
    va_end(ap);
    used = strlen(ps->err);
    snprintf(ps->err + used, ps->errlen - used, " at column %zu",
             (size_t)(ps->p - ps->start) + 1);
}

/* The character at the current position, for messages. */
static const char *
shown(const struct parser *ps, char *buf, size_t len)
{
    if (ps->p >= ps->end)
        return "the end of the line";
    if (*ps->p >= 0x21 && *ps->p < 0x7f)
        snprintf(buf, len, "'%c'", *ps->p);
    else
        snprintf(buf, len, "byte 0x%02x", *ps->p);
    return buf;
}

/* A key for a message: at most len - 4 bytes, anything but printable
 * ASCII as '?', so that a message cannot carry control characters. */
static const char *
printable(const char *s, size_t n, char *buf, size_t len)
{
    size_t i, max = len - 4;

    for (i = 0; i < n && i < max; i++)
        buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    if (i < n)
        memcpy(buf + i, "...", 4);
    else
        buf[i] = '\0';
    return buf;
}

static void
skip_space(struct parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' ||
            *ps->p == '\r'))
        ps->p++;
}

static struct json_value *
new_value(struct parser *ps, enum json_type type)
{
    struct json_value *v = calloc(1, sizeof(*v));

    if (v == NULL)
        fail(ps, "out of memory");
    else
        v->type = type;
    return v;
}

/* A growing byte buffer for decoded strings. */
struct strbuf {
    char *p;
    size_t len, cap;
};

static int
sb_add(struct strbuf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        char *q;

        while (cap < b->len + n + 1)
            cap *= 2;
        if ((q = realloc(b->p, cap)) == NULL)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* Four hex digits of a \u escape; -1 if they are not. */
static long
hex4(const unsigned char *s, const unsigned char *end)
{
    long v = 0;

    if (end - s < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int c = s[i], d;

        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    return v;
}

static size_t
utf8_encode(unsigned long cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xe0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t
json_utf8_length(const unsigned char *s, const unsigned char *end)
{
    unsigned char c = s[0];
    size_t n, i;
    unsigned long cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - s) < n)
        return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return n;
}

/* One \uXXXX escape (two for a surrogate pair), ps->p at the 'u'. */
static int
parse_unicode_escape(struct parser *ps, struct strbuf *b)
{
    unsigned char out[4];
    long hi, lo;
    unsigned long cp;

    if ((hi = hex4(ps->p + 1, ps->end)) < 0) {
        fail(ps, "\\u needs four hex digits");
        return -1;
    }
    if (hi >= 0xdc00 && hi <= 0xdfff) {
        fail(ps, "lone low surrogate \\u%04lX", hi);
        return -1;
    }
    ps->p += 5;
    cp = (unsigned long)hi;
    if (hi >= 0xd800 && hi <= 0xdbff) {
        if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
            (lo = hex4(ps->p + 2, ps->end)) < 0xdc00 || lo > 0xdfff) {
            fail(ps, "high surrogate \\u%04lX without a low surrogate", hi);
            return -1;
        }
        cp = 0x10000 + (((unsigned long)hi - 0xd800) << 10) +
             ((unsigned long)lo - 0xdc00);
        ps->p += 6;
    }
    if (sb_add(b, out, utf8_encode(cp, out)) < 0) {
        fail(ps, "out of memory");
        return -1;
    }
    return 0;
}

/* A string, ps->p at the opening quote; the decoded bytes into *out. */
static int
parse_string_raw(struct parser *ps, char **out, size_t *outlen)
{
    struct strbuf b = {0};
    static const char escapes[] = "\"\\/bfnrt";
    static const char decoded[] = "\"\\/\b\f\n\r\t";

    ps->p++;
    if (sb_add(&b, "", 0) < 0)
        goto oom;
    for (;;) {
        const unsigned char *run = ps->p;
        size_t n;

        /* copy a run of plain characters at once */
        while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' &&
               *ps->p >= 0x20 && *ps->p < 0x80)
            ps->p++;
        if (ps->p > run && sb_add(&b, run, (size_t)(ps->p - run)) < 0)
            goto oom;
        if (ps->p >= ps->end) {
            fail(ps, "unterminated string");
            goto err;
        }
        if (*ps->p == '"') {
            ps->p++;
            break;
        }
        if (*ps->p < 0x20) {
            fail(ps, "control character 0x%02x in a string (escape it)",
                 *ps->p);
            goto err;
        }
        if (*ps->p >= 0x80) {
            if ((n = json_utf8_length(ps->p, ps->end)) == 0) {
                fail(ps, "invalid UTF-8 in a string");
                goto err;
            }
            if (sb_add(&b, ps->p, n) < 0)
                goto oom;
            ps->p += n;
            continue;
        }
        /* a backslash */
        if (ps->p + 1 >= ps->end) {
            ps->p++;
            fail(ps, "unterminated string");
            goto err;
        }
        ps->p++;
        if (*ps->p == 'u') {
            if (parse_unicode_escape(ps, &b) < 0)
                goto err;
            continue;
        }
        const char *e = memchr(escapes, *ps->p, sizeof(escapes) - 1);
        if (e == NULL) {
            fail(ps, "unknown escape \\%c", *ps->p >= 0x21 && *ps->p < 0x7f
                                                ? *ps->p : '?');
            goto err;
        }
        if (sb_add(&b, &decoded[e - escapes], 1) < 0)
            goto oom;
        ps->p++;
    }
    *out = b.p;
    *outlen = b.len;
    return 0;
oom:
    fail(ps, "out of memory");
err:
    free(b.p);
    return -1;
}

static struct json_value *
parse_string(struct parser *ps)
{
    struct json_value *v = new_value(ps, JSON_STRING);

    if (v == NULL)
        return NULL;
    if (parse_string_raw(ps, &v->text, &v->len) < 0) {
        free(v);
        return NULL;
    }
    return v;
}

static int
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* RFC 8259 section 6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static struct json_value *
parse_number(struct parser *ps)
{
    const unsigned char *start = ps->p;
    struct json_value *v;

    if (ps->p < ps->end && *ps->p == '-')
        ps->p++;
    if (ps->p >= ps->end || !is_digit(*ps->p)) {
        fail(ps, "a number needs a digit here");
        return NULL;
    }
    if (*ps->p == '0') {
        ps->p++;
        if (ps->p < ps->end && is_digit(*ps->p)) {
            fail(ps, "leading zero in a number");
            return NULL;
        }
    } else {
        while (ps->p < ps->end && is_digit(*ps->p))
            ps->p++;
    }
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (ps->p >= ps->end || !is_digit(*ps->p)) {
            fail(ps, "a fraction needs a digit after '.'");
            return NULL;
        }
        while (ps->p < ps->end && is_digit(*ps->p))
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (ps->p >= ps->end || !is_digit(*ps->p)) {
            fail(ps, "an exponent needs a digit");
            return NULL;
        }
        while (ps->p < ps->end && is_digit(*ps->p))
            ps->p++;
    }
    if ((v = new_value(ps, JSON_NUMBER)) == NULL)
        return NULL;
    v->len = (size_t)(ps->p - start);
    if ((v->text = malloc(v->len + 1)) == NULL) {
        free(v);
        fail(ps, "out of memory");
        return NULL;
    }
    memcpy(v->text, start, v->len);
    v->text[v->len] = '\0';
    return v;
}

static struct json_value *
parse_literal(struct parser *ps, const char *word, enum json_type type)
{
    size_t n = strlen(word);

    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
        fail(ps, "unexpected characters (not %s)", word);
        return NULL;
    }
    ps->p += n;
    return new_value(ps, type);
}

/* Grow an array of pointers or members to hold one more. */
static int
grow(void **arr, size_t n, size_t size)
{
    void *q;

    /* the capacity is 4, then doubles whenever n reaches it */
    if (n != 0 && (n < 4 || (n & (n - 1)) != 0))
        return 0;
    if ((q = realloc(*arr, (n ? n * 2 : 4) * size)) == NULL)
        return -1;
    *arr = q;
    return 0;
}

static struct json_value *
parse_array(struct parser *ps)
{
    struct json_value *v = new_value(ps, JSON_ARRAY), *item;
    char sh[16];

    if (v == NULL)
        return NULL;
    ps->p++;
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return v;
    }
    for (;;) {
        skip_space(ps);
        if (ps->p < ps->end && *ps->p == ']') {
            fail(ps, "trailing comma before ']'");
            goto err;
        }
        if ((item = parse_value(ps)) == NULL)
            goto err;
        if (grow((void **)&v->items, v->n, sizeof(*v->items)) < 0) {
            json_free(item);
            fail(ps, "out of memory");
            goto err;
        }
        v->items[v->n++] = item;
        skip_space(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            return v;
        }
        fail(ps, "expected ',' or ']', not %s", shown(ps, sh, sizeof(sh)));
        goto err;
    }
err:
    json_free(v);
    return NULL;
}

static struct json_value *
parse_object(struct parser *ps)
{
    struct json_value *v = new_value(ps, JSON_OBJECT), *value;
    char sh[16], shown_key[44], *key;
    size_t key_len, i;

    if (v == NULL)
        return NULL;
    ps->p++;
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return v;
    }
    for (;;) {
        const unsigned char *key_at;

        skip_space(ps);
        if (ps->p < ps->end && *ps->p == '}') {
            fail(ps, "trailing comma before '}'");
            goto err;
        }
        if (ps->p >= ps->end || *ps->p != '"') {
            fail(ps, "expected a string key, not %s",
                 shown(ps, sh, sizeof(sh)));
            goto err;
        }
        key_at = ps->p;
        if (parse_string_raw(ps, &key, &key_len) < 0)
            goto err;
        for (i = 0; i < v->n; i++)
            if (v->members[i].key_len == key_len &&
                memcmp(v->members[i].key, key, key_len) == 0) {
                ps->p = key_at;
                fail(ps, "duplicate key \"%s\"",
                     printable(key, key_len, shown_key, sizeof(shown_key)));
                free(key);
                goto err;
            }
        skip_space(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            fail(ps, "expected ':' after the key, not %s",
                 shown(ps, sh, sizeof(sh)));
            free(key);
            goto err;
        }
        ps->p++;
        skip_space(ps);
        if ((value = parse_value(ps)) == NULL) {
            free(key);
            goto err;
        }
        if (grow((void **)&v->members, v->n, sizeof(*v->members)) < 0) {
            free(key);
            json_free(value);
            fail(ps, "out of memory");
            goto err;
        }
        v->members[v->n].key = key;
        v->members[v->n].key_len = key_len;
        v->members[v->n].value = value;
        v->n++;
        skip_space(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            return v;
        }
        fail(ps, "expected ',' or '}', not %s", shown(ps, sh, sizeof(sh)));
        goto err;
    }
err:
    json_free(v);
    return NULL;
}

static struct json_value *
parse_value(struct parser *ps)
{
    struct json_value *v = NULL;
    char sh[16];

    skip_space(ps);
    if (ps->p >= ps->end) {
        fail(ps, "expected a value, not the end of the line");
        return NULL;
    }
    switch (*ps->p) {
    case '{':
    case '[':
        if (ps->depth >= JSON_MAX_DEPTH) {
            fail(ps, "nested deeper than %d levels", JSON_MAX_DEPTH);
            return NULL;
        }
        ps->depth++;
        v = *ps->p == '{' ? parse_object(ps) : parse_array(ps);
        ps->depth--;
        return v;
    case '"':
        return parse_string(ps);
    case 't':
        return parse_literal(ps, "true", JSON_TRUE);
    case 'f':
        return parse_literal(ps, "false", JSON_FALSE);
    case 'n':
        return parse_literal(ps, "null", JSON_NULL);
    default:
        if (*ps->p == '-' || is_digit(*ps->p))
            return parse_number(ps);
        fail(ps, "expected a value, not %s", shown(ps, sh, sizeof(sh)));
        return NULL;
    }
}

struct json_value *
json_parse(const char *text, size_t len, char *err, size_t errlen)
{
    struct parser ps;
    struct json_value *v;
    char sh[16];

    memset(&ps, 0, sizeof(ps));
    ps.p = ps.start = (const unsigned char *)text;
    ps.end = ps.start + len;
    ps.err = err;
    ps.errlen = errlen;
    if (errlen > 0)
        err[0] = '\0';
    if ((v = parse_value(&ps)) == NULL)
        return NULL;
    skip_space(&ps);
    if (ps.p < ps.end) {
        fail(&ps, "trailing characters after the value (%s)",
             shown(&ps, sh, sizeof(sh)));
        json_free(v);
        return NULL;
    }
    return v;
}

void
json_free(struct json_value *v)
{
    size_t i;

    if (v == NULL)
        return;
    for (i = 0; v->type == JSON_ARRAY && i < v->n; i++)
        json_free(v->items[i]);
    for (i = 0; v->type == JSON_OBJECT && i < v->n; i++) {
        free(v->members[i].key);
        json_free(v->members[i].value);
    }
    free(v->items);
    free(v->members);
    free(v->text);
    free(v);
}

const struct json_value *
json_get(const struct json_value *v, const char *key)
{
    size_t i, len = strlen(key);

    if (v == NULL || v->type != JSON_OBJECT)
        return NULL;
    for (i = 0; i < v->n; i++)
        if (v->members[i].key_len == len &&
            memcmp(v->members[i].key, key, len) == 0)
            return v->members[i].value;
    return NULL;
}

int
json_integer(const struct json_value *v, long long *out)
{
    char *end;
    long long n;

    if (v == NULL || v->type != JSON_NUMBER ||
        strpbrk(v->text, ".eE") != NULL)
        return -1;
    errno = 0;
    n = strtoll(v->text, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = n;
    return 0;
}

const char *
json_type_name(enum json_type t)
{
    switch (t) {
    case JSON_NULL:
        return "null";
    case JSON_FALSE:
    case JSON_TRUE:
        return "a boolean";
    case JSON_NUMBER:
        return "a number";
    case JSON_STRING:
        return "a string";
    case JSON_ARRAY:
        return "an array";
    case JSON_OBJECT:
        return "an object";
    }
    return "?";
}
