/*
 * Post-handshake OCSP: decisions of ocsp_mode and active queries to the
 * responders named in the certificates (AIA), with OpenSSL's HTTP client
 * driven non-blockingly over tlsshim's own socket BIO, which makes the
 * real system calls and so never meets the program's policy.  Soft and
 * hard failure as IO::Socket::SSL defines them: a revoked certificate
 * always fails; a status that cannot be confirmed fails only with
 * fail_hard.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "conn.h"
#include "ocsp.h"
#include "sys.h"
#include "util.h"

#define MAX_ITEMS 8
#define CACHE_SLOTS 128
#define NO_NEXT_UPDATE_S 60   /* how long to keep an answer without one */
#define TLSEXT_STATUS_REQUEST 5

enum item_state { IT_START = 0, IT_CONNECTING, IT_HTTP, IT_DONE };
enum item_result { R_NONE = 0, R_GOOD, R_REVOKED, R_UNKNOWN, R_FAILED };

struct item {
    X509 *cert, *issuer;          /* references of the job's chain */
    int depth;
    OCSP_CERTID *id;
    enum item_state st;
    enum item_result result;
    int reason;                   /* CRL reason when revoked */
    char why[256];                /* for R_FAILED */
    char url[256];
    char *host, *port, *path;
    int fd;
    BIO *bio;
    OSSL_HTTP_REQ_CTX *rctx;
    OCSP_REQUEST *req;
    int64_t deadline_ms;
};

struct ocsp_job {
    const struct policy_rule *r;
    X509_STORE *store;
    STACK_OF(X509) *chain;
    const char *staple;
    int must;                     /* a staple was required */
    struct item items[MAX_ITEMS];
    int nitems;
};

struct cache_entry {
    unsigned char key[32];        /* SHA-256 of the CERTID */
    int used;
    enum item_result result;
    int reason;
    time_t until;
};

/* guards the cache */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_entry cache[CACHE_SLOTS];
static unsigned cache_next;

static int
certid_key(OCSP_CERTID *id, unsigned char key[32])
{
    unsigned char *der = NULL;
    int len = i2d_OCSP_CERTID(id, &der);
    unsigned int mdlen = 0;
    int ok = len > 0 && EVP_Digest(der, (size_t)len, key, &mdlen,
                                   EVP_sha256(), NULL) && mdlen == 32;

    OPENSSL_free(der);
    return ok ? 0 : -1;
}

static int
cache_get(OCSP_CERTID *id, enum item_result *result, int *reason)
{
    unsigned char key[32];
    time_t now = time(NULL);
    int found = 0;

    if (certid_key(id, key) < 0)
        return 0;
    pthread_mutex_lock(&cache_lock);
    for (unsigned i = 0; i < CACHE_SLOTS; i++) {
        if (cache[i].used && cache[i].until > now &&
            memcmp(cache[i].key, key, 32) == 0) {
            *result = cache[i].result;
            *reason = cache[i].reason;
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    return found;
}

static void
cache_put(OCSP_CERTID *id, enum item_result result, int reason,
          ASN1_GENERALIZEDTIME *next)
{
    unsigned char key[32];
    struct tm tm;
    time_t until = time(NULL) + NO_NEXT_UPDATE_S;

    if (certid_key(id, key) < 0)
        return;
    if (next != NULL && ASN1_TIME_to_tm(next, &tm))
        until = timegm(&tm);
    pthread_mutex_lock(&cache_lock);
    struct cache_entry *e = NULL;
    for (unsigned i = 0; i < CACHE_SLOTS && e == NULL; i++)
        if (cache[i].used && memcmp(cache[i].key, key, 32) == 0)
            e = &cache[i];
    if (e == NULL)
        e = &cache[cache_next++ % CACHE_SLOTS];
    memcpy(e->key, key, 32);
    e->used = 1;
    e->result = result;
    e->reason = reason;
    e->until = until;
    pthread_mutex_unlock(&cache_lock);
}

/* The leaf asks for a staple (RFC 7633 TLS feature status_request). */
static int
wants_staple(X509 *leaf)
{
    TLS_FEATURE *f = X509_get_ext_d2i(leaf, NID_tlsfeature, NULL, NULL);
    int yes = 0;

    for (int i = 0; f != NULL && i < sk_ASN1_INTEGER_num(f); i++)
        if (ASN1_INTEGER_get(sk_ASN1_INTEGER_value(f, i)) ==
            TLSEXT_STATUS_REQUEST)
            yes = 1;
    sk_ASN1_INTEGER_pop_free(f, ASN1_INTEGER_free);
    return yes;
}

int
ocsp_needed(const struct policy_rule *r)
{
    return r->verify_mode != POLICY_VERIFY_NONE;
}

static void
item_close(struct item *it)
{
    OSSL_HTTP_REQ_CTX_free(it->rctx);
    it->rctx = NULL;
    BIO_free(it->bio);
    it->bio = NULL;
    if (it->fd >= 0)
        (void)tlsshim_sys.close(it->fd);
    it->fd = -1;
    OCSP_REQUEST_free(it->req);
    it->req = NULL;
}

static void
item_fail(struct item *it, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
item_fail(struct item *it, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(it->why, sizeof(it->why), fmt, ap);
    va_end(ap);
    it->result = R_FAILED;
    it->st = IT_DONE;
    item_close(it);
}

void
ocsp_job_free(struct ocsp_job *job)
{
    if (job == NULL)
        return;
    for (int i = 0; i < job->nitems; i++) {
        struct item *it = &job->items[i];
        item_close(it);
        OCSP_CERTID_free(it->id);
        OPENSSL_free(it->host);
        OPENSSL_free(it->port);
        OPENSSL_free(it->path);
    }
    sk_X509_pop_free(job->chain, X509_free);
    free(job);
}

static const char *
subject_of(X509 *x, char *buf, size_t len)
{
    X509_NAME_oneline(X509_get_subject_name(x), buf, (int)len);
    return buf;
}

/* All answers are in (or failed): the verdict of ocsp_mode. */
static void
decide(struct ocsp_job *job, struct ocsp_result *res)
{
    unsigned mode = job->r->ocsp_mode;
    int hard = (mode & POLICY_OCSP_FAIL_HARD) != 0;
    enum item_result leaf = R_NONE;
    int tried_leaf = 0, others_ok = 1;
    char subj[200];

    res->error[0] = '\0';
    res->note[0] = '\0';
    for (int i = 0; i < job->nitems; i++) {
        struct item *it = &job->items[i];
        if (it->result == R_REVOKED) {
            res->status = "revoked";
            snprintf(res->error, sizeof(res->error),
                     "certificate verify failed: certificate revoked (OCSP "
                     "responder %s, depth %d, %s, reason %s)",
                     it->url, it->depth,
                     subject_of(it->cert, subj, sizeof(subj)),
                     OCSP_crl_reason_str(it->reason));
            return;
        }
    }
    if (job->staple != NULL) {
        leaf = strcmp(job->staple, "good") == 0 ? R_GOOD : R_UNKNOWN;
    }
    for (int i = 0; i < job->nitems; i++) {
        struct item *it = &job->items[i];
        if (it->depth == 0) {
            leaf = it->result;
            tried_leaf = 1;
        } else if (it->result != R_GOOD) {
            others_ok = 0;
            if (hard) {
                res->status = "unknown";
                snprintf(res->error, sizeof(res->error),
                         "certificate verify failed: OCSP status of depth %d "
                         "(%s) not confirmed: %s (ocsp_mode fail_hard)",
                         it->depth, subject_of(it->cert, subj, sizeof(subj)),
                         it->result == R_UNKNOWN ? "the responder does not "
                                                   "know it"
                                                 : it->why);
                return;
            }
        }
    }
    if (leaf != R_GOOD && hard) {
        const char *why = "no staple";
        if (leaf == R_UNKNOWN)
            why = "the status is unknown";
        for (int i = 0; i < job->nitems; i++)
            if (job->items[i].depth == 0 && job->items[i].result == R_FAILED)
                why = job->items[i].why;
        res->status = leaf == R_UNKNOWN ? "unknown" : "none";
        snprintf(res->error, sizeof(res->error),
                 "certificate verify failed: OCSP status of the certificate "
                 "not confirmed: %s (ocsp_mode fail_hard)", why);
        return;
    }
    for (int i = 0; i < job->nitems; i++) {
        struct item *it = &job->items[i];
        if (it->result == R_FAILED || it->result == R_UNKNOWN) {
            snprintf(res->note, sizeof(res->note),
                     "OCSP status of depth %d (%s) not confirmed: %s; "
                     "accepted (soft fail)", it->depth,
                     subject_of(it->cert, subj, sizeof(subj)),
                     it->result == R_UNKNOWN ? "the responder does not know it"
                                             : it->why);
            break;
        }
    }
    if (leaf == R_GOOD)
        res->status = others_ok ? "good" : "soft_fail";
    else if (leaf == R_UNKNOWN)
        res->status = "unknown";
    else
        res->status = tried_leaf || !others_ok ? "soft_fail" : "none";
}

/* Add the certificate at depth to the queries, unless cached. */
static void
add_item(struct ocsp_job *job, int depth)
{
    struct item *it;
    STACK_OF(OPENSSL_STRING) *urls;

    if (job->nitems >= MAX_ITEMS ||
        depth + 1 >= sk_X509_num(job->chain))
        return;
    it = &job->items[job->nitems++];
    memset(it, 0, sizeof(*it));
    it->fd = -1;
    it->depth = depth;
    it->cert = sk_X509_value(job->chain, depth);
    it->issuer = sk_X509_value(job->chain, depth + 1);
    it->id = OCSP_cert_to_id(NULL, it->cert, it->issuer);
    if (it->id == NULL) {
        item_fail(it, "cannot name the certificate for OCSP");
        return;
    }
    if (cache_get(it->id, &it->result, &it->reason)) {
        util_strlcpy(it->url, "(cached)", sizeof(it->url));
        it->st = IT_DONE;
        return;
    }
    urls = X509_get1_ocsp(it->cert);
    if (urls == NULL || sk_OPENSSL_STRING_num(urls) == 0) {
        X509_email_free(urls);
        item_fail(it, "no OCSP responder named in the certificate");
        return;
    }
    util_strlcpy(it->url, sk_OPENSSL_STRING_value(urls, 0), sizeof(it->url));
    X509_email_free(urls);
}

int
ocsp_start(const struct policy_rule *r, SSL *ssl, const char *staple,
           struct ocsp_job **jobp, struct ocsp_result *res)
{
    return ocsp_start_chain(r, SSL_get0_verified_chain(ssl),
                            SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)),
                            !SSL_is_server(ssl), staple, jobp, res);
}

int
ocsp_start_chain(const struct policy_rule *r, STACK_OF(X509) *chain,
                 X509_STORE *store, int client, const char *staple,
                 struct ocsp_job **jobp, struct ocsp_result *res)
{
    struct ocsp_job *job;
    int n;

    *jobp = NULL;
    res->status = staple;
    res->error[0] = '\0';
    res->note[0] = '\0';
    if (chain == NULL || (n = sk_X509_num(chain)) < 1) {
        res->status = NULL;
        return 0;
    }
    X509 *leaf = sk_X509_value(chain, 0);
    if ((job = calloc(1, sizeof(*job))) == NULL) {
        util_strlcpy(res->error, "out of memory", sizeof(res->error));
        return 0;
    }
    job->r = r;
    job->staple = staple;
    job->store = store;
    job->chain = X509_chain_up_ref(chain);
    if (job->chain == NULL) {
        ocsp_job_free(job);
        util_strlcpy(res->error, "out of memory", sizeof(res->error));
        return 0;
    }
    /* a client asked for a staple unless no_staple said otherwise */
    if (client && staple == NULL && !(r->ocsp_mode & POLICY_OCSP_NO_STAPLE) &&
        ((r->ocsp_mode & POLICY_OCSP_MUST_STAPLE) || wants_staple(leaf))) {
        res->status = "none";
        snprintf(res->error, sizeof(res->error),
                 "certificate verify failed: no OCSP staple, and %s",
                 (r->ocsp_mode & POLICY_OCSP_MUST_STAPLE)
                     ? "ocsp_mode must_staple requires one"
                     : "the certificate requires one (TLS feature "
                       "status_request)");
        ocsp_job_free(job);
        return 0;
    }
    if (r->ocsp_mode & POLICY_OCSP_RESOLVE) {
        if (staple == NULL)
            add_item(job, 0);
        if (r->ocsp_mode & POLICY_OCSP_FULL_CHAIN) {
            /* every certificate below the root: a trust anchor is not
             * checked for revocation */
            for (int d = 1; d + 1 < n; d++)
                add_item(job, d);
        }
    }
    for (int i = 0; i < job->nitems; i++) {
        if (job->items[i].st != IT_DONE) {
            *jobp = job;
            return 1;
        }
    }
    decide(job, res);
    ocsp_job_free(job);
    return 0;
}

/* Open the connection to the responder.  Sets st or fails the item. */
static void
item_connect(struct item *it, int timeout_s)
{
    struct addrinfo hints, *ai = NULL;
    int use_ssl = 0, e;

    if (!OSSL_HTTP_parse_url(it->url, &use_ssl, NULL, &it->host, &it->port,
                             NULL, &it->path, NULL, NULL)) {
        item_fail(it, "bad responder URL %s", it->url);
        return;
    }
    if (use_ssl) {
        item_fail(it, "responder %s: https responders are not supported",
                  it->url);
        return;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    e = tlsshim_sys.getaddrinfo(it->host, it->port, &hints, &ai);
    if (e != 0 || ai == NULL) {
        item_fail(it, "responder %s: cannot resolve %s: %s", it->url,
                  it->host, gai_strerror(e));
        return;
    }
    it->deadline_ms = util_now_ms() + (int64_t)timeout_s * 1000;
    it->fd = tlsshim_sys.socket(ai->ai_family,
                                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (it->fd < 0 ||
        (tlsshim_sys.connect(it->fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
         errno != EINPROGRESS)) {
        e = errno;
        tlsshim_sys.freeaddrinfo(ai);
        item_fail(it, "responder %s: %s", it->url, strerror(e));
        return;
    }
    tlsshim_sys.freeaddrinfo(ai);
    it->st = IT_CONNECTING;
}

/* TCP is up: send the request. */
static void
item_request(struct item *it, int timeout_s)
{
    OCSP_CERTID *id = OCSP_CERTID_dup(it->id);

    it->req = OCSP_REQUEST_new();
    if (it->req == NULL || id == NULL || !OCSP_request_add0_id(it->req, id)) {
        OCSP_CERTID_free(id);
        item_fail(it, "cannot make an OCSP request");
        return;
    }
    if (!OCSP_request_add1_nonce(it->req, NULL, -1) ||
        (it->bio = conn_socket_bio(it->fd)) == NULL ||
        (it->rctx = OSSL_HTTP_REQ_CTX_new(it->bio, it->bio, 0)) == NULL ||
        !OSSL_HTTP_REQ_CTX_set_request_line(it->rctx, 1, NULL, NULL,
                                            it->path) ||
        !OSSL_HTTP_REQ_CTX_add1_header(it->rctx, "Host", it->host) ||
        !OSSL_HTTP_REQ_CTX_set_expected(it->rctx,
                                        "application/ocsp-response", 1,
                                        timeout_s, 0) ||
        !OSSL_HTTP_REQ_CTX_set1_req(it->rctx, "application/ocsp-request",
                                    ASN1_ITEM_rptr(OCSP_REQUEST),
                                    (const ASN1_VALUE *)it->req)) {
        item_fail(it, "cannot make an OCSP request");
        return;
    }
    it->st = IT_HTTP;
}

/* The response arrived: check it and note the status. */
static void
item_answer(struct ocsp_job *job, struct item *it, OCSP_RESPONSE *resp)
{
    OCSP_BASICRESP *basic = NULL;
    ASN1_GENERALIZEDTIME *thisupd = NULL, *nextupd = NULL, *rev = NULL;
    int status = -1, reason = 0, st;

    st = OCSP_response_status(resp);
    if (st != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        item_fail(it, "responder %s answered %s", it->url,
                  OCSP_response_status_str(st));
        goto out;
    }
    if ((basic = OCSP_response_get1_basic(resp)) == NULL) {
        item_fail(it, "responder %s: not a basic response", it->url);
        goto out;
    }
    if (OCSP_check_nonce(it->req, basic) == 0) {
        item_fail(it, "responder %s: the nonce does not match", it->url);
        goto out;
    }
    if (OCSP_basic_verify(basic, job->chain, job->store, 0) <= 0) {
        item_fail(it, "responder %s: the response does not verify",
                  it->url);
        goto out;
    }
    if (!OCSP_resp_find_status(basic, it->id, &status, &reason, &rev,
                               &thisupd, &nextupd)) {
        item_fail(it, "responder %s: the response is about another "
                  "certificate", it->url);
        goto out;
    }
    if (!OCSP_check_validity(thisupd, nextupd, 300, -1)) {
        item_fail(it, "responder %s: the response is out of date", it->url);
        goto out;
    }
    it->result = status == V_OCSP_CERTSTATUS_GOOD      ? R_GOOD
                 : status == V_OCSP_CERTSTATUS_REVOKED ? R_REVOKED
                                                       : R_UNKNOWN;
    it->reason = reason;
    cache_put(it->id, it->result, reason, nextupd);
    it->st = IT_DONE;
    item_close(it);
out:
    OCSP_BASICRESP_free(basic);
    ERR_clear_error();
}

/* Advance one query.  Returns 1 while it waits (fd, events set). */
static int
item_step(struct ocsp_job *job, struct item *it, short *events)
{
    int timeout = job->r->ocsp_timeout;

    if (it->st == IT_START)
        item_connect(it, timeout);
    if (it->st != IT_DONE && util_now_ms() >= it->deadline_ms) {
        item_fail(it, "responder %s did not answer within %d s", it->url,
                  timeout);
        return 0;
    }
    if (it->st == IT_CONNECTING) {
        struct pollfd p = {.fd = it->fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof(err);
        if (tlsshim_sys.poll(&p, 1, 0) == 0) {
            *events = POLLOUT;
            return 1;
        }
        if (tlsshim_sys.getsockopt(it->fd, SOL_SOCKET, SO_ERROR, &err,
                                   &len) < 0)
            err = errno;
        if (err != 0) {
            item_fail(it, "responder %s: %s", it->url, strerror(err));
            return 0;
        }
        item_request(it, timeout);
    }
    if (it->st == IT_HTTP) {
        ASN1_VALUE *resp = NULL;
        ERR_clear_error();
        int rv = OSSL_HTTP_REQ_CTX_nbio_d2i(it->rctx, &resp,
                                            ASN1_ITEM_rptr(OCSP_RESPONSE));
        if (rv == 1) {
            item_answer(job, it, (OCSP_RESPONSE *)resp);
            OCSP_RESPONSE_free((OCSP_RESPONSE *)resp);
            return 0;
        }
        if (rv == -1) {
            *events = BIO_should_write(it->bio) ? POLLOUT : POLLIN;
            return 1;
        }
        unsigned long e = ERR_peek_last_error();
        const char *why = e ? ERR_reason_error_string(e) : NULL;
        item_fail(it, "responder %s: %s", it->url,
                  why != NULL ? why : "no valid HTTP answer");
        ERR_clear_error();
    }
    return 0;
}

int
ocsp_continue(struct ocsp_job *job, struct ocsp_result *res, int *fd,
              short *events, int64_t *deadline_ms)
{
    /* one query at a time, in chain order */
    for (int i = 0; i < job->nitems; i++) {
        struct item *it = &job->items[i];
        if (it->st == IT_DONE)
            continue;
        if (item_step(job, it, events)) {
            *fd = it->fd;
            *deadline_ms = it->deadline_ms;
            return 1;
        }
    }
    decide(job, res);
    return 0;
}

int
ocsp_check_staple(const unsigned char *der, long len, STACK_OF(X509) *chain,
                  X509_STORE *store, const char **status, char *err,
                  size_t errlen)
{
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *basic = NULL;
    OCSP_CERTID *id = NULL;
    ASN1_GENERALIZEDTIME *thisupd = NULL, *nextupd = NULL, *revtime = NULL;
    int st = -1, reason = 0, rv = 0;

    *status = NULL;
    err[0] = '\0';
    if (der == NULL || len <= 0)
        return 1;
    if (chain == NULL || sk_X509_num(chain) < 2) {
        /* fingerprint-accepted or unverified peer: a staple adds nothing */
        return 1;
    }
    X509 *leaf = sk_X509_value(chain, 0), *issuer = sk_X509_value(chain, 1);
    if ((resp = d2i_OCSP_RESPONSE(NULL, &der, len)) == NULL ||
        OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL ||
        (basic = OCSP_response_get1_basic(resp)) == NULL) {
        util_strlcpy(err, "OCSP staple is not a successful response",
                     errlen);
        goto out;
    }
    if (OCSP_basic_verify(basic, chain, store, 0) <= 0) {
        util_strlcpy(err, "OCSP staple does not verify", errlen);
        goto out;
    }
    if ((id = OCSP_cert_to_id(NULL, leaf, issuer)) == NULL ||
        !OCSP_resp_find_status(basic, id, &st, &reason, &revtime, &thisupd,
                               &nextupd)) {
        *status = "unknown";   /* the staple is about another certificate */
        rv = 1;
        goto out;
    }
    if (!OCSP_check_validity(thisupd, nextupd, 300, -1)) {
        util_strlcpy(err, "OCSP staple is out of date", errlen);
        goto out;
    }
    if (st == V_OCSP_CERTSTATUS_REVOKED) {
        *status = "revoked";
        snprintf(err, errlen, "certificate verify failed: certificate "
                 "revoked (OCSP staple, reason %s)",
                 OCSP_crl_reason_str(reason));
        goto out;
    }
    *status = st == V_OCSP_CERTSTATUS_GOOD ? "good" : "unknown";
    rv = 1;
out:
    OCSP_CERTID_free(id);
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    ERR_clear_error();
    return rv;
}

void
ocsp_run(struct ocsp_job *job, struct ocsp_result *res)
{
    int fd = -1;
    short events = 0;
    int64_t deadline_ms = 0;

    /* every step is bounded by the query's deadline (ocsp_timeout), after
     * which item_step fails the query: the loop ends */
    while (ocsp_continue(job, res, &fd, &events, &deadline_ms)) {
        struct pollfd p = {.fd = fd, .events = events};
        int64_t left = deadline_ms - util_now_ms();
        if (left < 0)
            left = 0;
        if (tlsshim_sys.poll(&p, 1, left > 1000 ? 1000 : (int)left) < 0 &&
            errno != EINTR)
            break;
    }
}
