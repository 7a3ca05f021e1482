/*
 * verify_cli: tlsshim's host name matcher (verify_identity) on cases read
 * from standard input, for the comparison with IO::Socket::SSL in
 * tests/bats/verify_names.bats.  Each input line is
 *
 *     ID <TAB> SCHEME,SCHEME,... <TAB> IDENTITY <TAB> ENTRY <TAB> ENTRY...
 *
 * with IDENTITY %XX-escaped and the entries as tests/unit/namecert.h reads
 * them.  Each output line is
 *
 *     ID <TAB> ANSWERS <TAB> CERTIFICATE
 *
 * where ANSWERS has two digits per scheme, the answer with
 * verifycn_publicsuffix on, then off, and CERTIFICATE is the base64 DER
 * of the certificate the entries made, for the other side to read.
 * "verify_cli -n" prints verify_cert_names() of each certificate instead.
 * Lines starting with '#' and empty lines are skipped.  Exit status 0, or
 * 1 on a line it cannot read.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "namecert.h"
#include "verify.h"

/* Splits off the next TAB-separated field of *line. */
static char *
next_field(char **line)
{
    char *field = *line, *tab;

    if (field == NULL)
        return NULL;
    if ((tab = strchr(field, '\t')) != NULL) {
        *tab = '\0';
        *line = tab + 1;
    } else {
        *line = NULL;
    }
    return field;
}

static int
print_der(X509 *x)
{
    unsigned char *der = NULL, *b64;
    int len = i2d_X509(x, &der);

    if (len <= 0)
        return -1;
    if ((b64 = malloc(4 * ((size_t)len / 3 + 1) + 1)) == NULL) {
        OPENSSL_free(der);
        return -1;
    }
    EVP_EncodeBlock(b64, der, len);
    fputs((char *)b64, stdout);
    free(b64);
    OPENSSL_free(der);
    return 0;
}

static int
run_case(char *line, unsigned long lineno, int names_only)
{
    char *id = next_field(&line), *schemes = next_field(&line);
    char *escaped = next_field(&line);
    unsigned char identity[4096];
    size_t identity_len;
    char err[256];
    X509 *x;

    if (id == NULL || schemes == NULL || escaped == NULL ||
        strlen(escaped) >= sizeof(identity) ||
        namecert_unescape(escaped, strlen(escaped), identity, &identity_len) <
            0) {
        fprintf(stderr, "verify_cli: line %lu: bad case\n", lineno);
        return -1;
    }
    if ((x = namecert_make(line != NULL ? line : "", '\t', err, sizeof(err))) ==
        NULL) {
        fprintf(stderr, "verify_cli: line %lu: %s\n", lineno, err);
        return -1;
    }
    if (names_only) {
        char names[256];
        verify_cert_names(x, names, sizeof(names));
        printf("%s\t%s\n", id, names);
        X509_free(x);
        return 0;
    }
    printf("%s\t", id);
    for (char *s = schemes, *comma; s != NULL; s = comma) {
        if ((comma = strchr(s, ',')) != NULL)
            *comma++ = '\0';
        if (!verify_scheme_known(s)) {
            fprintf(stderr, "verify_cli: line %lu: unknown scheme %s\n", lineno,
                    s);
            X509_free(x);
            return -1;
        }
        for (int ps = 1; ps >= 0; ps--)
            putchar(verify_identity(x, (char *)identity, s, ps) ? '1' : '0');
    }
    putchar('\t');
    int rv = print_der(x);
    putchar('\n');
    X509_free(x);
    return rv;
}

int
main(int argc, char **argv)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned long lineno = 0;
    int names_only = argc > 1 && strcmp(argv[1], "-n") == 0, status = 0;

    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        if (run_case(line, lineno, names_only) < 0) {
            status = 1;
            break;
        }
    }
    free(line);
    if (fflush(stdout) != 0)
        status = 1;
    return status;
}
