/*
 * Ticket keys shared by processes and machines.  The keys are kept in
 * memory that is cleansed when replaced; a file that became unreadable
 * or malformed keeps the keys already loaded (with a warning), so a bad
 * rotation never stops resumption, let alone the server.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "tickets.h"
#include "util.h"

#define RECORD 80
#define MAX_KEYS 64
#define RECHECK_MS 1000

struct ticket_key {
    unsigned char name[16], hmac[32], aes[32];
};

struct tickets {
    pthread_mutex_t lock;
    char *path;
    /* guarded by lock */
    struct ticket_key *keys;
    size_t nkeys;
    struct stat seen;          /* the file as last read */
    int64_t checked_ms;
    int warned;
};

/* Read path into a new key array; -1 with err set. */
static int
read_keys(const char *path, struct ticket_key **keys, size_t *nkeys,
          struct stat *st, char *err, size_t errlen)
{
    unsigned char buf[RECORD * MAX_KEYS + 1];
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        snprintf(err, errlen, "cannot open ticket_key_file %s: %s", path,
                 strerror(errno));
        return -1;
    }
    if (fstat(fd, st) < 0) {
        snprintf(err, errlen, "ticket_key_file %s: %s", path,
                 strerror(errno));
        close(fd);
        return -1;
    }
    /* judged as the policy judges it, on the file actually read */
    int writable = (st->st_mode & S_IWOTH) ||
                   ((st->st_mode & S_IWGRP) && st->st_gid != 0);
    if (writable || (st->st_mode & S_IROTH)) {
        snprintf(err, errlen, "ticket_key_file %s is %s (mode %04o)", path,
                 writable ? "writable by others" : "readable by every user",
                 (unsigned)(st->st_mode & 07777));
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t n = read(fd, buf + got, sizeof(buf) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "cannot read ticket_key_file %s: %s",
                     path, strerror(errno));
            close(fd);
            OPENSSL_cleanse(buf, sizeof(buf));
            return -1;
        }
        if (n == 0 || (got += (size_t)n) == sizeof(buf))
            break;
    }
    close(fd);
    if (got == 0 || got % RECORD != 0 || got > RECORD * MAX_KEYS) {
        snprintf(err, errlen, "ticket_key_file %s: %zu%s bytes, want one "
                 "to %d records of %d bytes (name 16, HMAC 32, AES 32)",
                 path, got, got > RECORD * MAX_KEYS ? " or more" : "",
                 MAX_KEYS, RECORD);
        OPENSSL_cleanse(buf, sizeof(buf));
        return -1;
    }
    *nkeys = got / RECORD;
    *keys = calloc(*nkeys, sizeof(**keys));
    if (*keys == NULL) {
        snprintf(err, errlen, "ticket_key_file %s: out of memory", path);
        OPENSSL_cleanse(buf, sizeof(buf));
        return -1;
    }
    for (size_t i = 0; i < *nkeys; i++) {
        memcpy((*keys)[i].name, buf + i * RECORD, 16);
        memcpy((*keys)[i].hmac, buf + i * RECORD + 16, 32);
        memcpy((*keys)[i].aes, buf + i * RECORD + 48, 32);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

static void
free_keys(struct ticket_key *keys, size_t n)
{
    if (keys != NULL)
        OPENSSL_cleanse(keys, n * sizeof(*keys));
    free(keys);
}

struct tickets *
tickets_open(const char *path, char *err, size_t errlen)
{
    struct tickets *t = calloc(1, sizeof(*t));

    if (t == NULL || (t->path = strdup(path)) == NULL) {
        free(t);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (read_keys(path, &t->keys, &t->nkeys, &t->seen, err, errlen) < 0) {
        free(t->path);
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    t->checked_ms = util_now_ms();
    return t;
}

void
tickets_free(struct tickets *t)
{
    if (t == NULL)
        return;
    free_keys(t->keys, t->nkeys);
    pthread_mutex_destroy(&t->lock);
    free(t->path);
    free(t);
}

/* Read the file again if it changed.  Lock held. */
static void
recheck(struct tickets *t)
{
    int64_t now = util_now_ms();
    struct stat st;
    struct ticket_key *keys;
    size_t n;
    char err[300];

    if (now - t->checked_ms < RECHECK_MS)
        return;
    t->checked_ms = now;
    if (stat(t->path, &st) == 0 && st.st_ino == t->seen.st_ino &&
        st.st_dev == t->seen.st_dev && st.st_size == t->seen.st_size &&
        st.st_mtim.tv_sec == t->seen.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == t->seen.st_mtim.tv_nsec)
        return;
    if (read_keys(t->path, &keys, &n, &st, err, sizeof(err)) < 0) {
        /* a worker that dropped privileges cannot read a root-only
         * file: it keeps what its master loaded */
        if (!t->warned)
            log_warn("%s; keeping the ticket keys loaded before", err);
        t->warned = 1;
        return;
    }
    free_keys(t->keys, t->nkeys);
    t->keys = keys;
    t->nkeys = n;
    t->seen = st;
    t->warned = 0;
    log_flow("ticket_key_file %s: %zu keys loaded", t->path, n);
}

int
tickets_crypt(struct tickets *t, OSSL_LIB_CTX *libctx, unsigned char name[16],
              unsigned char iv[16], EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx,
              int enc)
{
    struct ticket_key k;
    size_t i = 0;
    int found = 0, rv = -1;
    EVP_CIPHER *aes = NULL;

    memset(&k, 0, sizeof(k));
    pthread_mutex_lock(&t->lock);
    recheck(t);
    if (enc) {
        k = t->keys[0];
        found = 1;
    } else {
        for (i = 0; i < t->nkeys && !found; i++)
            if (CRYPTO_memcmp(t->keys[i].name, name, 16) == 0) {
                k = t->keys[i];
                found = 1;
            }
    }
    pthread_mutex_unlock(&t->lock);
    if (!found)
        return 0;   /* unknown key: a full handshake, no error */

    OSSL_PARAM params[3];
    char digest[] = "SHA256";
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac,
                                                  sizeof(k.hmac));
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 digest, 0);
    params[2] = OSSL_PARAM_construct_end();
    aes = EVP_CIPHER_fetch(libctx, "AES-256-CBC", NULL);
    if (aes == NULL)
        goto out;
    if (enc) {
        if (RAND_bytes_ex(libctx, iv, 16, 0) <= 0 ||
            !EVP_EncryptInit_ex2(cctx, aes, k.aes, iv, NULL))
            goto out;
        memcpy(name, k.name, 16);
    } else if (!EVP_DecryptInit_ex2(cctx, aes, k.aes, iv, NULL)) {
        goto out;
    }
    if (!EVP_MAC_CTX_set_params(hctx, params))
        goto out;
    /* accepted with an older key: OpenSSL issues a fresh ticket */
    rv = enc || i == 1 ? 1 : 2;
out:
    EVP_CIPHER_free(aes);
    OPENSSL_cleanse(&k, sizeof(k));
    return rv;
}
