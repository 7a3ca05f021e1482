/*
 * The persistent client session cache (session_cache_dir).
 *
 * A session file is, in this order: the 8 bytes "TLSSHSC1"; the 32-byte
 * name hash (the file's own name, so a file renamed by hand is refused);
 * the expiry, seconds since the epoch, 8 bytes big-endian; the length of
 * the DER session, 4 bytes big-endian; the DER session (i2d_SSL_SESSION).
 *
 * A file is trusted only when it is a regular file (never followed through
 * a symbolic link) owned by our effective user with mode 0600, in a
 * directory owned by that user that nobody else may write: a session file
 * another user could plant would let them choose the session we resume.
 * Descriptors are closed through the real call table, since the program's
 * close() is hooked.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "context.h"
#include "log.h"
#include "sesscache.h"
#include "sys.h"
#include "util.h"

#define MAGIC "TLSSHSC1"
#define MAGIC_LEN 8
#define HASH_LEN 32
#define HEADER_LEN (MAGIC_LEN + HASH_LEN + 8 + 4)

/* Each refusal of a directory is logged once per process. */
static int warned_dir;

static void
put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t
get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The directory dir is ours alone: a directory (not a link to one) owned
 * by our effective user that neither group nor others may write.  With
 * exact_0700, its mode must be 0700 (XDG_RUNTIME_DIR's rule). */
static int
dir_trusted(const char *dir, int exact_0700, char *why, size_t whylen)
{
    struct stat st;

    if (lstat(dir, &st) < 0) {
        snprintf(why, whylen, "%s: %s", dir, strerror(errno));
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, whylen, "%s is not a directory", dir);
        return 0;
    }
    if (st.st_uid != geteuid()) {
        snprintf(why, whylen, "%s is owned by uid %u, not by uid %u", dir,
                 (unsigned)st.st_uid, (unsigned)geteuid());
        return 0;
    }
    if (exact_0700 ? (st.st_mode & 07777) != 0700 : (st.st_mode & 022) != 0) {
        snprintf(why, whylen, "%s has mode %04o (%s)", dir,
                 (unsigned)(st.st_mode & 07777),
                 exact_0700 ? "want 0700" : "writable by group or others");
        return 0;
    }
    return 1;
}

int
sesscache_dir(const struct policy_rule *r, char *out, size_t len)
{
    char why[PATH_MAX + 128];
    const char *d = r->session_cache_dir;

    if (d == NULL || r->session_cache_size <= 0)
        return 0;
    if (getauxval(AT_SECURE)) {
        if (!__atomic_exchange_n(&warned_dir, 1, __ATOMIC_RELAXED))
            log_info("rule %s: session_cache_dir is off in a setuid or "
                     "setgid program", r->name);
        return 0;
    }
    if (strcmp(d, "auto") == 0) {
        const char *x = getenv("XDG_RUNTIME_DIR");
        if (x == NULL || x[0] != '/') {
            if (!__atomic_exchange_n(&warned_dir, 1, __ATOMIC_RELAXED))
                log_info("rule %s: session_cache_dir = auto is off: "
                         "XDG_RUNTIME_DIR is not set", r->name);
            return 0;
        }
        if (!dir_trusted(x, 1, why, sizeof(why))) {
            if (!__atomic_exchange_n(&warned_dir, 1, __ATOMIC_RELAXED))
                log_warn("rule %s: session_cache_dir = auto is off: "
                         "XDG_RUNTIME_DIR %s", r->name, why);
            return 0;
        }
        if ((size_t)snprintf(out, len, "%s/tlsshim", x) >= len)
            return 0;
    } else if (util_strlcpy(out, d, len) >= len) {
        return 0;
    }
    if (mkdir(out, 0700) < 0 && errno != EEXIST) {
        if (!__atomic_exchange_n(&warned_dir, 1, __ATOMIC_RELAXED))
            log_warn("rule %s: session_cache_dir %s cannot be made: %s",
                     r->name, out, strerror(errno));
        return 0;
    }
    if (!dir_trusted(out, 0, why, sizeof(why))) {
        if (!__atomic_exchange_n(&warned_dir, 1, __ATOMIC_RELAXED))
            log_warn("rule %s: session_cache_dir refused: %s", r->name, why);
        return 0;
    }
    return 1;
}

/* Feed one labelled, length-prefixed field into the hash. */
static int
feed(EVP_MD_CTX *md, const char *label, const char *v)
{
    unsigned char n[4];
    size_t l = v != NULL ? strlen(v) : 0;

    put_be(n, v != NULL ? (uint64_t)l : 0xffffffffu, 4);
    return EVP_DigestUpdate(md, label, strlen(label) + 1) &&
           EVP_DigestUpdate(md, n, sizeof(n)) &&
           (l == 0 || EVP_DigestUpdate(md, v, l));
}

static int
feed_int(EVP_MD_CTX *md, const char *label, long v)
{
    char b[32];

    snprintf(b, sizeof(b), "%ld", v);
    return feed(md, label, b);
}

static int
name_hash(const struct policy_rule *r, const char *key,
          unsigned char out[HASH_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_MD *sha = EVP_MD_fetch(context_libctx(), "SHA256", NULL);
    unsigned int n = 0;
    int ok = md != NULL && sha != NULL && EVP_DigestInit_ex(md, sha, NULL);

    /* Everything that decides whether a peer is accepted, and what we
     * present: a session proves a past verification under exactly these. */
    ok = ok && feed(md, "v", "tlsshim session 1") &&
         feed(md, "rule", r->name) && feed(md, "key", key) &&
         feed_int(md, "verify_mode", r->verify_mode) &&
         feed(md, "ca_file", r->ca_file) && feed(md, "ca_path", r->ca_path) &&
         feed(md, "scheme", r->verifycn_scheme) &&
         feed(md, "name", r->verifycn_name) &&
         feed_int(md, "psl", r->verifycn_publicsuffix) &&
         feed_int(md, "crl", r->check_crl) &&
         feed(md, "crl_file", r->crl_file) &&
         feed_int(md, "ocsp", (long)r->ocsp_mode) &&
         feed_int(md, "level", r->security_level) &&
         feed(md, "hostname", r->hostname) &&
         feed(md, "cert_file", r->cert_file) &&
         feed(md, "key_file", r->key_file) &&
         feed_int(md, "min", r->min_version) &&
         feed_int(md, "max", r->max_version) &&
         feed(md, "cipher_list", r->cipher_list) &&
         feed(md, "ciphersuites", r->ciphersuites) &&
         feed(md, "curves", r->ecdh_curve);
    for (size_t i = 0; ok && i < r->nfingerprints; i++)
        ok = feed(md, "fingerprint", r->fingerprints[i].text);
    for (size_t i = 0; ok && i < r->npubkey_pins; i++)
        ok = feed(md, "pin", r->pubkey_pins[i]);
    if (ok && r->alpn_wire_len > 0)
        ok = EVP_DigestUpdate(md, r->alpn_wire, r->alpn_wire_len);
    ok = ok && EVP_DigestFinal_ex(md, out, &n) && n == HASH_LEN;
    EVP_MD_CTX_free(md);
    EVP_MD_free(sha);
    return ok ? 0 : -1;
}

static void
hex(const unsigned char *h, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 0; i < HASH_LEN; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[2 * HASH_LEN] = '\0';
}

int
sesscache_name(const struct policy_rule *r, const char *key, char *out,
               size_t len)
{
    unsigned char h[HASH_LEN];

    if (len < 2 * HASH_LEN + 1 || name_hash(r, key, h) < 0)
        return -1;
    hex(h, out);
    return 0;
}

int64_t
sesscache_expiry(const SSL_SESSION *s)
{
    return (int64_t)SSL_SESSION_get_time(s) +
           (int64_t)SSL_SESSION_get_timeout(s);
}

/* Read the whole file on fd (at most SESSCACHE_MAX_FILE bytes). */
static ssize_t
read_all(int fd, unsigned char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = tlsshim_sys.read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

SSL_SESSION *
sesscache_load(const struct policy_rule *r, const char *key)
{
    char dir[PATH_MAX], name[2 * HASH_LEN + 1], path[PATH_MAX + 80];
    unsigned char h[HASH_LEN];
    unsigned char *buf = NULL;
    SSL_SESSION *s = NULL;
    struct stat st;
    int fd;

    if (!sesscache_dir(r, dir, sizeof(dir)) || name_hash(r, key, h) < 0)
        return NULL;
    hex(h, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP)
            log_warn("rule %s: session file %s is a symbolic link: ignored",
                     r->name, path);
        else if (errno != ENOENT)
            log_warn("rule %s: cannot open session file %s: %s", r->name,
                     path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        log_warn("rule %s: session file %s is not a regular file: ignored",
                 r->name, path);
        goto out;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 07777) != 0600) {
        log_warn("rule %s: session file %s has owner uid %u and mode %04o "
                 "(want uid %u, 0600): ignored", r->name, path,
                 (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
                 (unsigned)geteuid());
        goto out;
    }
    if (st.st_size < HEADER_LEN || st.st_size > SESSCACHE_MAX_FILE) {
        log_warn("rule %s: session file %s has a bad size (%lld bytes): "
                 "ignored", r->name, path, (long long)st.st_size);
        goto out;
    }
    if ((buf = malloc((size_t)st.st_size)) == NULL)
        goto out;
    ssize_t n = read_all(fd, buf, (size_t)st.st_size);
    if (n != (ssize_t)st.st_size || memcmp(buf, MAGIC, MAGIC_LEN) != 0 ||
        memcmp(buf + MAGIC_LEN, h, HASH_LEN) != 0 ||
        get_be(buf + MAGIC_LEN + HASH_LEN + 8, 4) !=
            (uint64_t)(n - HEADER_LEN)) {
        log_warn("rule %s: session file %s is malformed: ignored", r->name,
                 path);
        goto out;
    }
    int64_t expiry = (int64_t)get_be(buf + MAGIC_LEN + HASH_LEN, 8);
    if (expiry <= (int64_t)time(NULL)) {
        log_flow("rule %s: session file %s expired: not used", r->name,
                 path);
        goto out;
    }
    const unsigned char *p = buf + HEADER_LEN;
    s = d2i_SSL_SESSION(NULL, &p, (long)(n - HEADER_LEN));
    if (s == NULL || p != buf + n || !SSL_SESSION_is_resumable(s) ||
        sesscache_expiry(s) <= (int64_t)time(NULL)) {
        if (s == NULL || p != buf + n)
            log_warn("rule %s: session file %s holds no valid session: "
                     "ignored", r->name, path);
        SSL_SESSION_free(s);
        s = NULL;
        goto out;
    }
    log_flow("rule %s: session loaded from %s", r->name, path);
out:
    free(buf);
    (void)tlsshim_sys.close(fd);
    return s;
}

static int
write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = tlsshim_sys.write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void
sesscache_store(const struct policy_rule *r, const char *key, SSL_SESSION *s)
{
    char dir[PATH_MAX], name[2 * HASH_LEN + 1], path[PATH_MAX + 80],
        tmp[PATH_MAX + 120];
    unsigned char h[HASH_LEN], *buf = NULL;
    int fd = -1, len;

    if (!SSL_SESSION_is_resumable(s) || !sesscache_dir(r, dir, sizeof(dir)))
        return;
    if (name_hash(r, key, h) < 0)
        return;
    len = i2d_SSL_SESSION(s, NULL);
    if (len <= 0 || len > SESSCACHE_MAX_FILE - HEADER_LEN) {
        log_flow("rule %s: session of %d bytes not stored", r->name, len);
        return;
    }
    if ((buf = malloc((size_t)len + HEADER_LEN)) == NULL)
        return;
    memcpy(buf, MAGIC, MAGIC_LEN);
    memcpy(buf + MAGIC_LEN, h, HASH_LEN);
    put_be(buf + MAGIC_LEN + HASH_LEN, (uint64_t)sesscache_expiry(s), 8);
    put_be(buf + MAGIC_LEN + HASH_LEN + 8, (uint64_t)len, 4);
    unsigned char *p = buf + HEADER_LEN;
    if (i2d_SSL_SESSION(s, &p) != len)
        goto out;
    hex(h, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    /* a fresh temporary name in the same directory, then rename(): other
     * processes see the old file or the new one, whole */
    for (int tries = 0; fd < 0 && tries < 8; tries++) {
        unsigned char rnd[8];
        char rhex[17];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1)
            goto out;
        for (int i = 0; i < 8; i++)
            snprintf(rhex + 2 * i, 3, "%02x", rnd[i]);
        snprintf(tmp, sizeof(tmp), "%s/.%s.%ld.%s", dir, name, (long)getpid(),
                 rhex);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        log_warn("rule %s: cannot write a session file in %s: %s", r->name,
                 dir, strerror(errno));
        goto out;
    }
    /* the umask may have taken bits away, never added: 0600 exactly */
    if (fchmod(fd, 0600) < 0 ||
        write_all(fd, buf, (size_t)len + HEADER_LEN) < 0) {
        log_warn("rule %s: cannot write session file %s: %s", r->name, tmp,
                 strerror(errno));
        (void)tlsshim_sys.close(fd);
        (void)unlink(tmp);
        goto out;
    }
    if (tlsshim_sys.close(fd) < 0 || rename(tmp, path) < 0) {
        log_warn("rule %s: cannot store session file %s: %s", r->name, path,
                 strerror(errno));
        (void)unlink(tmp);
        goto out;
    }
    log_flow("rule %s: session stored in %s (expires in %lld s)", r->name,
             path, (long long)(sesscache_expiry(s) - (int64_t)time(NULL)));
out:
    free(buf);
}
