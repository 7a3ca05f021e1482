/*
 * The test-harness certificate authority.  The CA key and certificate are
 * made once per auto_ca_dir (EC P-256, ten years) under an exclusive lock
 * on the directory, so processes starting together agree on one CA; each
 * listening address then gets a fresh key and a certificate valid for a
 * month, with the names a client on this machine would use for it.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autocert.h"
#include "util.h"

#define CA_DAYS 3650
#define LEAF_DAYS 30
#define SAN_MAX 2048

static const char *
reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    util_strlcpy(buf, r != NULL ? r : "error", len);
    ERR_clear_error();
    return buf;
}

static EVP_PKEY *
new_key(OSSL_LIB_CTX *libctx)
{
    return EVP_PKEY_Q_keygen(libctx, NULL, "EC", "P-256");
}

static int
add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    int ok = ext != NULL && X509_add_ext(x, ext, -1);

    X509_EXTENSION_free(ext);
    return ok;
}

/* A certificate for key named cn, signed by issuer/ikey (itself when
 * issuer is NULL).  exts: NID/value pairs after the key identifiers. */
static X509 *
make_cert(OSSL_LIB_CTX *libctx, EVP_PKEY *key, const char *cn, long days,
          X509 *issuer, EVP_PKEY *ikey, const int *nids,
          const char *const *values, size_t nexts)
{
    X509 *x = X509_new_ex(libctx, NULL);
    X509_NAME *name = X509_NAME_new();
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    X509V3_CTX v3;
    int ok = 0;

    if (x == NULL || name == NULL || md == NULL ||
        RAND_bytes_ex(libctx, serial, sizeof(serial), 0) <= 0)
        goto out;
    serial[0] &= 0x7f;   /* positive */
    serial[0] |= 0x01;   /* and of full length */
    if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
        !X509_set_version(x, X509_VERSION_3) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    (const unsigned char *)cn, -1, -1, 0) ||
        !X509_set_subject_name(x, name) ||
        !X509_set_issuer_name(x, issuer != NULL
                                     ? X509_get_subject_name(issuer)
                                     : name) ||
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) == NULL ||
        !X509_set_pubkey(x, key))
        goto out;
    X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    if (!add_ext(x, &v3, NID_subject_key_identifier, "hash") ||
        !add_ext(x, &v3, NID_authority_key_identifier, "keyid:always"))
        goto out;
    for (size_t i = 0; i < nexts; i++)
        if (!add_ext(x, &v3, nids[i], values[i]))
            goto out;
    if (EVP_DigestSignInit_ex(md, NULL, "SHA256", libctx, NULL,
                              ikey != NULL ? ikey : key, NULL) <= 0 ||
        X509_sign_ctx(x, md) <= 0)
        goto out;
    ok = 1;
out:
    BN_free(bn);
    X509_NAME_free(name);
    EVP_MD_CTX_free(md);
    if (!ok) {
        X509_free(x);
        x = NULL;
    }
    return x;
}

/* Write a PEM file atomically (temporary file, then rename). */
static int
write_pem(int dfd, const char *name, mode_t mode, X509 *cert, EVP_PKEY *key,
          char *err, size_t errlen)
{
    BIO *b = BIO_new(BIO_s_mem());
    char tmp[64], *data;
    long len;
    int fd = -1, rv = -1;

    snprintf(tmp, sizeof(tmp), ".%s.%ld", name, (long)getpid());
    if (b == NULL ||
        (cert != NULL ? !PEM_write_bio_X509(b, cert)
                      : !PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0,
                                                  NULL, NULL))) {
        snprintf(err, errlen, "cannot encode %s", name);
        goto out;
    }
    len = BIO_get_mem_data(b, &data);
    fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || fchmod(fd, mode) < 0 || write(fd, data, (size_t)len) != len ||
        fsync(fd) < 0 || renameat(dfd, tmp, dfd, name) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", name, strerror(errno));
        (void)unlinkat(dfd, tmp, 0);
        goto out;
    }
    rv = 0;
out:
    if (fd >= 0)
        close(fd);
    BIO_free(b);
    return rv;
}

/* Read a PEM certificate or key from dir; NULL when absent. */
static void *
read_pem(int dfd, const char *name, int is_key, OSSL_LIB_CTX *libctx,
         int *absent)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    FILE *f;
    void *obj;
    /* stdio's buffer holds the key's PEM text: ours, cleansed after */
    char iobuf[BUFSIZ];

    *absent = fd < 0 && errno == ENOENT;
    if (fd < 0 || (f = fdopen(fd, "r")) == NULL) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    (void)setvbuf(f, iobuf, _IOFBF, sizeof(iobuf));
    obj = is_key ? (void *)PEM_read_PrivateKey_ex(f, NULL, NULL, NULL, libctx,
                                                  NULL)
                 : (void *)PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    OPENSSL_cleanse(iobuf, sizeof(iobuf));
    return obj;
}

/* The CA of dir: loaded, or made and saved.  Directory lock held. */
static int
get_ca(int dfd, const char *dir, OSSL_LIB_CTX *libctx, X509 **ca,
       EVP_PKEY **cakey, char *err, size_t errlen)
{
    static const int nids[] = {NID_basic_constraints, NID_key_usage};
    static const char *const vals[] = {"critical,CA:TRUE",
                                       "critical,keyCertSign,cRLSign"};
    char why[160], cn[128], host[64];
    int absent_key, absent_cert;
    struct stat st;

    *cakey = read_pem(dfd, "ca.key", 1, libctx, &absent_key);
    *ca = read_pem(dfd, "ca.pem", 0, libctx, &absent_cert);
    if (*cakey != NULL && *ca != NULL) {
        if (fstatat(dfd, "ca.key", &st, 0) == 0 &&
            (st.st_mode & (S_IRWXG | S_IRWXO))) {
            snprintf(err, errlen, "auto_ca_dir %s: ca.key is open to other "
                     "users (mode %04o)", dir,
                     (unsigned)(st.st_mode & 07777));
            return -1;
        }
        if (X509_check_private_key(*ca, *cakey) != 1) {
            snprintf(err, errlen, "auto_ca_dir %s: ca.pem and ca.key do not "
                     "fit", dir);
            return -1;
        }
        return 0;
    }
    if (!absent_key || !absent_cert) {
        snprintf(err, errlen, "auto_ca_dir %s: cannot read %s", dir,
                 *cakey == NULL && !absent_key ? "ca.key" : "ca.pem");
        return -1;
    }
    if (gethostname(host, sizeof(host)) < 0)
        util_strlcpy(host, "localhost", sizeof(host));
    host[sizeof(host) - 1] = '\0';
    snprintf(cn, sizeof(cn), "tlsshim test CA (%s)", host);
    if ((*cakey = new_key(libctx)) == NULL ||
        (*ca = make_cert(libctx, *cakey, cn, CA_DAYS, NULL, NULL, nids, vals,
                         2)) == NULL) {
        snprintf(err, errlen, "auto_ca_dir %s: cannot make a CA: %s", dir,
                 reason(why, sizeof(why)));
        return -1;
    }
    if (write_pem(dfd, "ca.key", 0600, NULL, *cakey, err, errlen) < 0 ||
        write_pem(dfd, "ca.pem", 0644, *ca, NULL, err, errlen) < 0)
        return -1;
    return 0;
}

static int
is_dns_name(const char *s)
{
    if (*s == '\0' || strlen(s) > 253)
        return 0;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

static void
san_add(char *san, const char *kind, const char *value)
{
    char item[300];
    size_t len = strlen(san);

    size_t ilen;
    const char *p;

    ilen = (size_t)snprintf(item, sizeof(item), "%s:%s", kind, value);
    for (p = san; (p = strstr(p, item)) != NULL; p += ilen)
        if ((p == san || p[-1] == ',') && (p[ilen] == ',' || p[ilen] == '\0'))
            return;   /* already there */
    if (len + ilen + 1 < SAN_MAX) {
        if (len > 0)
            san[len++] = ',';
        memcpy(san + len, item, ilen + 1);
    }
}

/* The names of the listening address (SPEC section 4). */
static void
san_for(const struct sockaddr *bound, char *san, char *cn, size_t cnlen)
{
    static const unsigned char zero[16], lo6[16] = {[15] = 1};
    char ip[80], host[256];
    int wildcard, loopback;

    san[0] = '\0';
    util_ip_str(bound, ip, sizeof(ip));
    if (bound->sa_family == AF_INET) {
        const unsigned char *a =
            (const unsigned char *)&((const struct sockaddr_in *)bound)->sin_addr;
        wildcard = memcmp(a, zero, 4) == 0;
        loopback = a[0] == 127;
    } else {
        const unsigned char *a =
            ((const struct sockaddr_in6 *)bound)->sin6_addr.s6_addr;
        wildcard = memcmp(a, zero, 16) == 0;
        loopback = memcmp(a, lo6, 16) == 0 ||
                   (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a) &&
                    a[12] == 127);
    }
    util_strlcpy(cn, ip, cnlen);
    /* util_ip_str() prints an IPv4-mapped address as the IPv4 one, which
     * is what a client connects to */
    if (!wildcard)
        san_add(san, "IP", ip);
    if (!wildcard && !loopback)
        return;
    util_strlcpy(cn, "localhost", cnlen);
    san_add(san, "DNS", "localhost");
    if (gethostname(host, sizeof(host)) == 0) {
        host[sizeof(host) - 1] = '\0';
        if (is_dns_name(host))
            san_add(san, "DNS", host);
    }
    san_add(san, "IP", "127.0.0.1");
    san_add(san, "IP", "::1");
    if (!wildcard)
        return;
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) < 0)
        return;
    for (struct ifaddrs *i = ifs; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL ||
            (i->ifa_addr->sa_family != AF_INET &&
             i->ifa_addr->sa_family != AF_INET6))
            continue;
        if (i->ifa_addr->sa_family == AF_INET6 &&
            IN6_IS_ADDR_LINKLOCAL(
                &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr))
            continue;   /* needs a scope a certificate cannot carry */
        util_ip_str(i->ifa_addr, ip, sizeof(ip));
        san_add(san, "IP", ip);
    }
    freeifaddrs(ifs);
}

int
autocert_load(SSL_CTX *ctx, OSSL_LIB_CTX *libctx, const char *dir,
              const struct sockaddr *bound, char *err, size_t errlen)
{
    X509 *ca = NULL, *leaf = NULL;
    EVP_PKEY *cakey = NULL, *key = NULL;
    char san[SAN_MAX], cn[80], why[160];
    struct stat st;
    int dfd = -1, rv = -1;

    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create auto_ca_dir %s: %s", dir,
                 strerror(errno));
        return -1;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fstat(dfd, &st) < 0) {
        snprintf(err, errlen, "cannot open auto_ca_dir %s: %s", dir,
                 strerror(errno));
        goto out;
    }
    /* whoever may write here may plant a CA every client trusts */
    if ((st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) && st.st_gid != 0) ||
        (st.st_uid != 0 && st.st_uid != geteuid())) {
        snprintf(err, errlen, "auto_ca_dir %s is writable by others or "
                 "owned by another user (mode %04o)", dir,
                 (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (flock(dfd, LOCK_EX) < 0) {
        snprintf(err, errlen, "cannot lock auto_ca_dir %s: %s", dir,
                 strerror(errno));
        goto out;
    }
    if (get_ca(dfd, dir, libctx, &ca, &cakey, err, errlen) < 0)
        goto out;
    san_for(bound, san, cn, sizeof(cn));
    {
        const int nids[] = {NID_basic_constraints, NID_key_usage,
                            NID_ext_key_usage, NID_subject_alt_name};
        const char *const vals[] = {"critical,CA:FALSE",
                                    "critical,digitalSignature", "serverAuth",
                                    san};
        if ((key = new_key(libctx)) == NULL ||
            (leaf = make_cert(libctx, key, cn, LEAF_DAYS, ca, cakey, nids,
                              vals, 4)) == NULL) {
            snprintf(err, errlen, "cert_file = auto: cannot make a "
                     "certificate for %s: %s", cn, reason(why, sizeof(why)));
            goto out;
        }
    }
    if (SSL_CTX_use_cert_and_key(ctx, leaf, key, NULL, 1) != 1) {
        snprintf(err, errlen, "cert_file = auto: cannot use the certificate: "
                 "%s", reason(why, sizeof(why)));
        goto out;
    }
    rv = 0;
out:
    if (dfd >= 0)
        close(dfd);   /* releases the lock */
    X509_free(ca);
    X509_free(leaf);
    EVP_PKEY_free(cakey);
    EVP_PKEY_free(key);
    return rv;
}
