/*
 * A small, strict JSON parser (RFC 8259) for reading connection reports
 * (SPEC section 8) in tlsshim --stats.  One text becomes a tree of
 * json_value nodes; anything RFC 8259 does not allow is an error with the
 * column where it was found: trailing commas, leading zeros, control
 * characters in strings, invalid UTF-8, lone surrogates, duplicate keys,
 * trailing characters.  Nesting is limited to JSON_MAX_DEPTH levels.
 */
#ifndef TLSSHIM_CLI_JSON_H
#define TLSSHIM_CLI_JSON_H

#include <stddef.h>

#include "util.h"

#define JSON_MAX_DEPTH 64

enum json_type {
    JSON_NULL = 0,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
};

struct json_member;

struct json_value {
    enum json_type type;
    /* JSON_STRING: the decoded UTF-8, NUL-terminated (it may also hold
     * NULs of its own, from \u0000: len counts them).  JSON_NUMBER: the
     * number as written. */
    char *text;
    size_t len;
    /* JSON_ARRAY: items; JSON_OBJECT: members, in the order written. */
    struct json_value **items;
    struct json_member *members;
    size_t n;
};

struct json_member {
    char *key;          /* decoded, NUL-terminated */
    size_t key_len;
    struct json_value *value;
};

/*
 * Parse exactly one JSON value from text[0..len), surrounded by nothing
 * but whitespace.  Returns the tree, or NULL with the reason (and column,
 * from 1) in err.
 */
struct json_value *json_parse(const char *text, size_t len, char *err,
                              size_t errlen) TLSSHIM_WARN_UNUSED;
void json_free(struct json_value *v);

/* The member key of an object, or NULL (also when v is no object). */
const struct json_value *json_get(const struct json_value *v,
                                  const char *key);

/* A number written as an integer (no fraction or exponent) that fits in
 * long long: 0 and *out; else -1. */
int json_integer(const struct json_value *v, long long *out)
    TLSSHIM_WARN_UNUSED;

/* The length of the well-formed UTF-8 sequence at s (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0. */
size_t json_utf8_length(const unsigned char *s, const unsigned char *end);

/* The name of a type, for messages ("a string", "null"...). */
const char *json_type_name(enum json_type t);

#endif
