/*
 * Fuzz target: the strict JSON parser that tlsshim --stats reads reports
 * with (src/cli/json.c).  Besides memory errors it checks the parser
 * against itself: an accepted text, written back out (escaping what JSON
 * requires), parses again into the same tree; every decoded string is
 * well-formed UTF-8 (the parser refuses anything else); an error always
 * has a message; integers read back as written.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "json.h"

static void
fail(const char *what)
{
    fprintf(stderr, "json: %s\n", what);
    abort();
}

static void
write_string(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void
check_utf8(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        size_t n = json_utf8_length(p, end);
        if (n == 0 || n > (size_t)(end - p))
            fail("a decoded string is not well-formed UTF-8");
        p += n;
    }
}

static void
write_value(FILE *f, const struct json_value *v, int depth)
{
    long long ll;

    if (depth > JSON_MAX_DEPTH + 1)
        fail("a tree deeper than JSON_MAX_DEPTH");
    (void)json_type_name(v->type);
    switch (v->type) {
    case JSON_NULL: fputs("null", f); break;
    case JSON_FALSE: fputs("false", f); break;
    case JSON_TRUE: fputs("true", f); break;
    case JSON_NUMBER:
        if (v->text == NULL || v->text[0] == '\0')
            fail("a number without its text");
        fputs(v->text, f);
        if (json_integer(v, &ll) == 0) {
            char buf[32];
            snprintf(buf, sizeof(buf), "%lld", ll);
            /* "-0" reads as 0 */
            if (strcmp(buf, v->text) != 0 && strcmp(v->text, "-0") != 0)
                fail("an integer does not read back as written");
        }
        break;
    case JSON_STRING:
        if (v->text == NULL || v->text[v->len] != '\0')
            fail("a string without its NUL");
        check_utf8(v->text, v->len);
        write_string(f, v->text, v->len);
        break;
    case JSON_ARRAY:
        fputc('[', f);
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                fputc(',', f);
            write_value(f, v->items[i], depth + 1);
        }
        fputc(']', f);
        break;
    case JSON_OBJECT:
        fputc('{', f);
        for (size_t i = 0; i < v->n; i++) {
            const struct json_member *m = &v->members[i];
            if (i)
                fputc(',', f);
            check_utf8(m->key, m->key_len);
            write_string(f, m->key, m->key_len);
            fputc(':', f);
            write_value(f, m->value, depth + 1);
            /* Keys are unique: json_get finds this member (unless the key
             * holds a NUL, which json_get cannot be asked for). */
            if (strlen(m->key) == m->key_len &&
                json_get(v, m->key) != m->value)
                fail("json_get does not find a member");
        }
        fputc('}', f);
        break;
    default:
        fail("an unknown type");
    }
}

static int
same(const struct json_value *a, const struct json_value *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case JSON_NUMBER:
        return strcmp(a->text, b->text) == 0;
    case JSON_STRING:
        return a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
    case JSON_ARRAY:
        if (a->n != b->n)
            return 0;
        for (size_t i = 0; i < a->n; i++)
            if (!same(a->items[i], b->items[i]))
                return 0;
        return 1;
    case JSON_OBJECT:
        if (a->n != b->n)
            return 0;
        for (size_t i = 0; i < a->n; i++)
            if (a->members[i].key_len != b->members[i].key_len ||
                memcmp(a->members[i].key, b->members[i].key,
                       a->members[i].key_len) != 0 ||
                !same(a->members[i].value, b->members[i].value))
                return 0;
        return 1;
    default:
        return 1;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256], err2[256];
    struct json_value *v, *w;
    char *out = NULL;
    size_t out_len = 0;
    FILE *f;

    /* Exact size, no NUL after it: the parser takes a length. */
    char *text = malloc(size ? size : 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    err[0] = '\0';
    v = json_parse(text, size, err, sizeof(err));
    free(text);
    if (v == NULL) {
        if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
            fail("an error without a message");
        return 0;
    }
    (void)json_get(v, "outcome");
    (void)json_get(v, "");
    if ((f = open_memstream(&out, &out_len)) == NULL) {
        json_free(v);
        return 0;
    }
    write_value(f, v, 0);
    fclose(f);
    w = json_parse(out, out_len, err2, sizeof(err2));
    if (w == NULL) {
        fprintf(stderr, "json: written back, it does not parse: %s\n%s\n",
                err2, out);
        abort();
    }
    if (!same(v, w)) {
        fprintf(stderr, "json: written back, it parses differently:\n%s\n",
                out);
        abort();
    }
    json_free(w);
    json_free(v);
    free(out);
    return 0;
}
