/*
 * Certificates made in memory for the host name tests (test_verify.c,
 * verify_cli.c): a spec lists subjectAltName and subject entries in
 * order, and the certificate is signed with one Ed25519 key.  Header only,
 * like unit.h.
 *
 * A spec is entries separated by one separator character, each TYPE:VALUE,
 * where VALUE may carry any byte as %XX:
 *   dns:V    a dNSName SAN (the bytes of V, unchecked)
 *   ip:TEXT  an iPAddress SAN (IPv4 or IPv6 text)
 *   iphex:H  an iPAddress SAN of any length, as hex
 *   email:V, uri:V  SANs of other kinds, which name checks ignore
 *   dns2:V, ip2:TEXT  the same in a second subjectAltName extension
 *   cn:V     a commonName as UTF8String; cnp: PrintableString, cnt:
 *            T61String, cnb: BMPString (each byte of V widened to two)
 *   o:V      an organizationName
 */
#ifndef TLSSHIM_NAMECERT_H
#define TLSSHIM_NAMECERT_H

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static inline int
namecert_hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Undoes %XX escapes of in[0..len) into out (room for len + 1 bytes). */
static inline int
namecert_unescape(const char *in, size_t len, unsigned char *out,
                  size_t *outlen)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        if (in[i] != '%') {
            out[n++] = (unsigned char)in[i];
            continue;
        }
        if (i + 2 >= len)
            return -1;
        int hi = namecert_hexval(in[i + 1]), lo = namecert_hexval(in[i + 2]);
        if (hi < 0 || lo < 0)
            return -1;
        out[n++] = (unsigned char)(hi << 4 | lo);
        i += 2;
    }
    out[n] = '\0';
    *outlen = n;
    return 0;
}

/* The signing key, made once per process. */
static inline EVP_PKEY *
namecert_key(void)
{
    static EVP_PKEY *key;

    if (key == NULL)
        key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    return key;
}

/*
 * Sets the certificate's public key from the raw Ed25519 key: the same
 * key X509_set_pubkey() would set, without its encoder lookups, which
 * cost ten times the rest of making a certificate.
 */
static inline int
namecert_set_pubkey(X509 *x, EVP_PKEY *key)
{
    unsigned char *raw;
    size_t len = 32;

    if ((raw = OPENSSL_malloc(len)) == NULL)
        return 0;
    if (!EVP_PKEY_get_raw_public_key(key, raw, &len) ||
        !X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x),
                                OBJ_nid2obj(NID_ED25519), V_ASN1_UNDEF, NULL,
                                raw, (int)len)) {
        OPENSSL_free(raw);
        return 0;
    }
    return 1;
}

static inline GENERAL_NAME *
namecert_general_name(int type, const unsigned char *v, size_t len)
{
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_STRING *s =
        type == GEN_IPADD ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();

    if (g == NULL || s == NULL || !ASN1_STRING_set(s, v, (int)len)) {
        GENERAL_NAME_free(g);
        ASN1_STRING_free(s);
        return NULL;
    }
    GENERAL_NAME_set0_value(g, type, s);
    return g;
}

/* Adds one TYPE:VALUE entry; 0, or -1 with err set. */
static inline int
namecert_add(const char *entry, size_t len, X509_NAME *subj,
             GENERAL_NAMES *alt[2], char *err, size_t errlen)
{
    const char *colon = memchr(entry, ':', len);
    /* room for the value, or for an IPv6 address made of a short text */
    unsigned char *v = malloc(len + 1 > 16 ? len + 1 : 16), *wide = NULL;
    size_t vlen = 0, tlen;
    int rv = -1, nid = NID_commonName, strtype = -1, gtype = -1, which = 0;
    char type[16];

    if (v == NULL || colon == NULL || (tlen = (size_t)(colon - entry)) == 0 ||
        tlen >= sizeof(type)) {
        snprintf(err, errlen, "bad entry \"%.*s\"", (int)len, entry);
        goto out;
    }
    memcpy(type, entry, tlen);
    type[tlen] = '\0';
    if (namecert_unescape(colon + 1, len - tlen - 1, v, &vlen) < 0) {
        snprintf(err, errlen, "bad escape in \"%.*s\"", (int)len, entry);
        goto out;
    }
    if (strcmp(type, "dns") == 0 || strcmp(type, "dns2") == 0) {
        gtype = GEN_DNS;
        which = type[3] == '2';
    } else if (strcmp(type, "email") == 0) {
        gtype = GEN_EMAIL;
    } else if (strcmp(type, "uri") == 0) {
        gtype = GEN_URI;
    } else if (strcmp(type, "ip") == 0 || strcmp(type, "ip2") == 0) {
        unsigned char ip[16];
        gtype = GEN_IPADD;
        which = type[2] == '2';
        if (inet_pton(AF_INET, (char *)v, ip) == 1)
            vlen = 4;
        else if (inet_pton(AF_INET6, (char *)v, ip) == 1)
            vlen = 16;
        else {
            snprintf(err, errlen, "bad address \"%s\"", (char *)v);
            goto out;
        }
        memcpy(v, ip, vlen);
    } else if (strcmp(type, "iphex") == 0) {
        size_t n = 0;
        gtype = GEN_IPADD;
        for (size_t i = 0; i + 1 < vlen; i += 2) {
            int hi = namecert_hexval(v[i]), lo = namecert_hexval(v[i + 1]);
            if (hi < 0 || lo < 0)
                break;
            v[n++] = (unsigned char)(hi << 4 | lo);
        }
        vlen = n;
    } else if (strcmp(type, "cn") == 0) {
        strtype = V_ASN1_UTF8STRING;
    } else if (strcmp(type, "cnp") == 0) {
        strtype = V_ASN1_PRINTABLESTRING;
    } else if (strcmp(type, "cnt") == 0) {
        strtype = V_ASN1_T61STRING;
    } else if (strcmp(type, "cnb") == 0) {
        strtype = V_ASN1_BMPSTRING;
        if ((wide = malloc(2 * vlen + 1)) == NULL)
            goto out;
        for (size_t i = 0; i < vlen; i++) {
            wide[2 * i] = 0;
            wide[2 * i + 1] = v[i];
        }
        free(v);
        v = wide;
        vlen *= 2;
    } else if (strcmp(type, "o") == 0) {
        strtype = V_ASN1_UTF8STRING;
        nid = NID_organizationName;
    } else {
        snprintf(err, errlen, "unknown entry type \"%s\"", type);
        goto out;
    }
    if (gtype >= 0) {
        GENERAL_NAME *g = namecert_general_name(gtype, v, vlen);
        if (g == NULL || !sk_GENERAL_NAME_push(alt[which], g)) {
            GENERAL_NAME_free(g);
            snprintf(err, errlen, "cannot add \"%s\"", type);
            goto out;
        }
    } else if (!X509_NAME_add_entry_by_NID(subj, nid, strtype, v, (int)vlen, -1,
                                           0)) {
        snprintf(err, errlen, "cannot add \"%s\"", type);
        goto out;
    }
    rv = 0;
out:
    free(v);
    return rv;
}

/*
 * The certificate of spec (entries separated by sep), or NULL with err
 * set.  The caller frees it with X509_free().
 */
static inline X509 *
namecert_make(const char *spec, char sep, char *err, size_t errlen)
{
    X509 *x = X509_new();
    X509_NAME *subj = X509_NAME_new();
    GENERAL_NAMES *alt[2] = {sk_GENERAL_NAME_new_null(),
                             sk_GENERAL_NAME_new_null()};
    EVP_PKEY *key = namecert_key();
    const char *p = spec;
    int ok = 0;

    snprintf(err, errlen, "out of memory");
    if (x == NULL || subj == NULL || alt[0] == NULL || alt[1] == NULL ||
        key == NULL)
        goto out;
    while (*p != '\0') {
        const char *end = strchr(p, sep);
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len > 0 && namecert_add(p, len, subj, alt, err, errlen) < 0)
            goto out;
        p += len;
        if (*p == sep)
            p++;
    }
    for (int i = 0; i < 2; i++)
        if (sk_GENERAL_NAME_num(alt[i]) > 0 &&
            X509_add1_ext_i2d(x, NID_subject_alt_name, alt[i], 0,
                              X509V3_ADD_APPEND) != 1) {
            snprintf(err, errlen, "cannot add subjectAltName");
            goto out;
        }
    if (!X509_set_version(x, X509_VERSION_3) ||
        !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
        X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL ||
        !X509_set_subject_name(x, subj) || !X509_set_issuer_name(x, subj) ||
        !namecert_set_pubkey(x, key) || X509_sign(x, key, NULL) <= 0) {
        snprintf(err, errlen, "cannot sign (a CN that is not UTF-8?)");
        goto out;
    }
    ok = 1;
out:
    X509_NAME_free(subj);
    GENERAL_NAMES_free(alt[0]);
    GENERAL_NAMES_free(alt[1]);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

#endif
